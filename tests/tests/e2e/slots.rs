//! No connection slot can be held forever (issue 8, point 5): a request line that trickles in
//! is cut at its deadline, a client that never reads its answers is cut at the write deadline,
//! a well-behaved client is served even when slow clients hold every slot, and connections
//! trickling into a login's loopback listener cannot keep the browser's callback out.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use latchkey_tests::oauth_server::TokenServer;
use latchkey_tests::{http, raw_exchange, TestEnv};
use serde_json::json;

use super::support::{daemon_with_config, provider_section, Rpc};

const VERSION: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":\"ping\",\"method\":\"version\"}\n";
/// How often a trickler sends its next byte.
const TRICKLE: Duration = Duration::from_millis(200);
/// How long a trickler keeps going at most (the test fails long before without the fix).
const TRICKLE_FOR: Duration = Duration::from_secs(9);

/// Sends `bytes` one at a time, one every [`TRICKLE`], until the peer closes or
/// [`TRICKLE_FOR`] passes; returns how many were sent.
fn trickle<W: Write + Send + 'static>(mut stream: W, bytes: Vec<u8>) -> JoinHandle<usize> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut sent = 0;
        for byte in bytes {
            if started.elapsed() > TRICKLE_FOR || stream.write_all(&[byte]).is_err() {
                break;
            }
            sent += 1;
            // The delay is the behaviour under test: a client that trickles bytes.
            std::thread::sleep(TRICKLE);
        }
        sent
    })
}

/// A valid request line much longer than a trickler can send in [`TRICKLE_FOR`].
fn long_line() -> Vec<u8> {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,{}\"method\":\"version\"}}\n",
        " ".repeat(200)
    )
    .into_bytes()
}

/// Waits until the daemon closes `stream` (end of stream or a reset), at most `bound`;
/// returns how many answer lines arrived before.
fn wait_closed(stream: &mut UnixStream, bound: Duration) -> usize {
    let started = Instant::now();
    let mut received = 0;
    let mut buf = [0u8; 64 * 1024];
    loop {
        let left = bound.saturating_sub(started.elapsed());
        assert!(
            !left.is_zero(),
            "the connection is still open after {bound:?}"
        );
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return received,
            Ok(n) => received += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return received,
            // A signal to the test process (a child exiting) interrupts a read with a timeout
            // even under SA_RESTART: try again.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => panic!("reading: {e}"),
        }
    }
}

/// Pipelines `version` requests without reading until the daemon stops taking them (its
/// answers fill the socket), then keeps offering more until the daemon closes the connection
/// or `bound` passes. Returns the stream and how many request bytes went out.
fn pipeline_without_reading(socket: &Path, bound: Option<Duration>) -> (UnixStream, usize) {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let batch = VERSION.repeat(100);
    let started = Instant::now();
    let mut sent = 0;
    let mut blocked = false;
    loop {
        match stream.write(&batch) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                blocked = true;
                if bound.is_none() {
                    return (stream, sent);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
                assert!(blocked, "closed before the daemon's writes blocked");
                return (stream, sent);
            }
            // A signal to the test process (a child exiting) interrupts a write with a timeout
            // even under SA_RESTART: offer the batch again.
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("writing: {e}"),
        }
        if let Some(bound) = bound {
            assert!(
                started.elapsed() < bound,
                "a client that never reads is still connected after {bound:?}"
            );
        }
    }
}

#[test]
fn a_request_line_that_trickles_in_is_cut_at_its_deadline() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--request-timeout", "1"]);
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    let started = Instant::now();
    let trickler = trickle(stream.try_clone().unwrap(), long_line());
    // Without a line deadline every byte resets the idle timer, and the line never ends.
    let answers = wait_closed(&mut stream, Duration::from_secs(6));
    let elapsed = started.elapsed();
    assert_eq!(answers, 0, "an unfinished line got an answer");
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed before the deadline: {elapsed:?}"
    );
    let sent = trickler.join().unwrap();
    assert!(sent >= 4, "only {sent} bytes trickled in before the close");
    // The daemon serves others as before.
    assert_eq!(raw_exchange(&daemon.socket, VERSION, 1)[0]["id"], "ping");
}

/// Writes a request line that never ends (spaces, no newline) as fast as the daemon takes it,
/// until the daemon closes the connection or 10 s pass; returns whether the daemon closed it.
fn flood(mut stream: UnixStream) -> JoinHandle<bool> {
    std::thread::spawn(move || {
        stream
            .set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let chunk = vec![b' '; 64 * 1024];
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            match stream.write(&chunk) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    })
}

#[test]
fn a_request_line_that_floods_in_without_end_is_cut_at_its_deadline() {
    // The daemon reads whatever is there before it looks at its timers: a line whose bytes
    // never stop coming must still meet the line deadline.
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--request-timeout", "1"]);
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    let started = Instant::now();
    let flooder = flood(stream.try_clone().unwrap());
    // The line is refused as too long once it passes the limit, then cut at its deadline.
    let answers = wait_closed(&mut stream, Duration::from_secs(6));
    assert!(answers <= 1, "{answers} answers to one unfinished line");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the deadline: {:?}",
        started.elapsed()
    );
    assert!(flooder.join().unwrap(), "the flooding client was never cut");
    assert_eq!(raw_exchange(&daemon.socket, VERSION, 1)[0]["id"], "ping");
}

#[test]
fn a_flooding_client_does_not_hold_up_a_shutdown() {
    // Default deadlines (10 s, longer than the daemon may take to stop).
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&[]);
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    stream.write_all(VERSION).unwrap();
    let mut first = String::new();
    BufReader::new(stream.try_clone().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"ping\""), "{first}");
    let flooder = flood(stream);
    let stopping = Instant::now();
    daemon.terminate();
    // `wait_exit` fails the test if the daemon has not exited within its start-up bound.
    let (status, logs) = daemon.wait_exit();
    assert!(status.success(), "{logs}");
    assert!(
        stopping.elapsed() < Duration::from_secs(9),
        "stopping took {:?}: the flood held it up",
        stopping.elapsed()
    );
    assert!(flooder.join().unwrap(), "the flooding client was never cut");
}

#[test]
fn a_client_that_never_reads_its_answers_is_cut_at_the_write_deadline() {
    let env = TestEnv::bare();
    let daemon = env.start_daemon(&["--write-timeout", "1"]);
    let (mut stream, sent) = pipeline_without_reading(&daemon.socket, Some(Duration::from_secs(8)));
    // The answers written before the cut are there to read, then the end.
    let answers = wait_closed(&mut stream, Duration::from_secs(5));
    let requests = sent / VERSION.len();
    assert!(answers > 0);
    assert!(
        answers < requests,
        "{requests} requests and {answers} answers: nothing was held back"
    );
    assert_eq!(raw_exchange(&daemon.socket, VERSION, 1)[0]["id"], "ping");
}

#[test]
fn with_every_slot_held_by_slow_clients_a_good_client_is_still_served() {
    let env = TestEnv::bare();
    // Default deadlines (10 s): only making room, not a deadline, serves the client in time.
    let daemon = env.start_daemon(&["--max-connections", "4"]);
    let tricklers: Vec<_> = (0..2)
        .map(|_| {
            let stream = UnixStream::connect(&daemon.socket).unwrap();
            trickle(stream, long_line())
        })
        .collect();
    let non_readers: Vec<_> = (0..2)
        .map(|_| pipeline_without_reading(&daemon.socket, None).0)
        .collect();
    let started = Instant::now();
    let mut good = UnixStream::connect(&daemon.socket).unwrap();
    good.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    good.write_all(VERSION).unwrap();
    let mut answer = String::new();
    BufReader::new(&good)
        .read_line(&mut answer)
        .expect("the well-behaved client is answered within 3 s");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["id"], "ping", "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(non_readers);
    drop(daemon);
    for trickler in tricklers {
        trickler.join().unwrap();
    }
}

#[test]
fn trickling_connections_cannot_keep_the_browser_callback_out() {
    let server = TokenServer::start();
    let env = TestEnv::bare();
    let daemon = daemon_with_config(&env, &provider_section("test", &server, false), "info");
    let mut rpc = Rpc::connect(&daemon.socket);
    let started = rpc.ok("login", json!({"provider": "test"}));
    let consent = http::get(started["authorization_url"].as_str().unwrap());
    assert_eq!(
        consent.status, 302,
        "the test server approves and redirects"
    );
    let callback = consent.location.unwrap();
    let url = reqwest::Url::parse(&callback).unwrap();
    let address = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    // More half-open connections than the listener serves at once, each sending a request
    // head a byte at a time.
    let tricklers: Vec<_> = (0..40)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).unwrap();
            stream.write_all(b"G").unwrap();
            trickle(
                stream,
                b"ET /callback?state=not-this-one HTTP/1.1\r\n".to_vec(),
            )
        })
        .collect();
    let waiter = {
        let socket = daemon.socket.clone();
        let login_id = started["login_id"].clone();
        std::thread::spawn(move || {
            Rpc::connect(&socket).ok("login_wait", json!({ "login_id": login_id }))
        })
    };
    let reply = http::try_get(&callback).expect("the callback is answered");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("Signed in"), "{}", reply.body);
    let done = waiter.join().unwrap();
    assert_eq!(done["entry"]["service"], "test", "{done}");
    drop(daemon);
    for trickler in tricklers {
        trickler.join().unwrap();
    }
}

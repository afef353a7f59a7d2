//! One client connection: refuse a peer of another user before reading anything, then read
//! request lines under the size cap and answer each in order, and close it when a deadline
//! passes, when its slot is evicted (see `slots`) or on shutdown.
//!
//! Deadlines (all in [`Limits`]):
//! - `idle_timeout`: no complete request for this long since the last answer (or the connect);
//! - `request_timeout`: from the first byte of a request line to its newline, however many
//!   bytes trickle in between, so a slow sender cannot hold the connection line by line;
//! - `write_timeout`: for writing one response, so a client that pipelines requests and never
//!   reads the answers is cut once the socket buffer is full.
//!
//! A handler call in progress has no deadline here (`login_wait` waits for a user; calls bound
//! their own I/O); it is never evicted either.
//!
//! A read waits on the socket first: the slot's closing signal and the deadline's timer are
//! polled only when no byte is there (polling them costs more than a request). So that a
//! client whose bytes never stop still meets them, every turn of the loop checks the deadline
//! against the clock and the slot's phase, which an eviction or a shutdown closes.

use std::pin::Pin;

use futures_util::FutureExt;
use latchkey_proto::codec::{wipe, FrameRef, LineDecoder};
use latchkey_proto::{Id, Request, Response, RpcError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tracing::debug;

use super::slots::{Phase, Slot};
use crate::config::Limits;
use crate::handler::{AuditMemory, Handler};
use crate::peer::Peer;

/// Answers are written once this many bytes of them wait (else once no request is left to
/// answer), so a batch of pipelined requests costs one write.
const FLUSH_AT: usize = 8 * 1024;

pub(super) async fn run<S>(
    stream: S,
    peer: Peer,
    handler: &Handler,
    limits: Limits,
    slot: &Slot,
    shutdown: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !peer.is_own_user("a connection") {
        handler.audit_refused(&peer, crate::handler::STREAM_TRANSPORT);
        return;
    }
    let mut connection = Connection {
        stream,
        decoder: LineDecoder::new(limits.max_line),
        buf: vec![0u8; 16 * 1024],
        out: Vec::new(),
        timer: Timer::new(Instant::now() + limits.idle_timeout),
        limits,
        slot,
    };
    let closed = connection.serve(handler, &peer, shutdown).await;
    match closed {
        Close::Eof | Close::Shutdown => {}
        Close::Evicted => debug!("evicted to make room; closing"),
        Close::Deadline(what) => debug!(deadline = what, "deadline passed; closing"),
        Close::Io(err) => debug!(error = %err, "connection failed; closing"),
    }
}

/// Why a connection ends.
enum Close {
    Eof,
    Shutdown,
    Evicted,
    /// Which deadline passed.
    Deadline(&'static str),
    Io(std::io::Error),
}

/// The connection's closing signal (an eviction or the shutdown), waited on by one future for
/// the whole connection (a fresh waiter per read or write would register and unregister
/// itself every time), and the shutdown token, which tells the two apart.
struct Signals<'p, 'f> {
    closing: Pin<&'p mut WaitForCancellationFuture<'f>>,
    shutdown: &'p CancellationToken,
}

impl Signals<'_, '_> {
    /// Why the closing signal fired (or a move into a phase failed).
    fn reason(&self) -> Close {
        if self.shutdown.is_cancelled() {
            Close::Shutdown
        } else {
            Close::Evicted
        }
    }
}

struct Connection<'a, S> {
    /// Read and written in turn, never at once, so it needs no splitting.
    stream: S,
    decoder: LineDecoder,
    /// Bytes as read; wiped after they are fed to the decoder.
    buf: Vec<u8>,
    /// Answers not yet written; wiped once written (a `get` answer holds a secret).
    out: Vec<u8>,
    timer: Timer,
    limits: Limits,
    slot: &'a Slot,
}

impl<S> Drop for Connection<'_, S> {
    fn drop(&mut self) {
        wipe(&mut self.out);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<'_, S> {
    async fn serve(
        &mut self,
        handler: &Handler,
        peer: &Peer,
        shutdown: &CancellationToken,
    ) -> Close {
        let mut audit = AuditMemory::for_stream();
        let slot = self.slot;
        let closing = slot.closing();
        tokio::pin!(closing);
        let mut signals = Signals {
            closing: closing.as_mut(),
            shutdown,
        };
        let mut idle_since = Instant::now();
        let mut line_started: Option<Instant> = None;
        loop {
            let mut answered = false;
            while let Some(frame) = self.decoder.next_frame_ref() {
                let response = match frame {
                    FrameRef::Line(line) if line.iter().all(u8::is_ascii_whitespace) => continue,
                    FrameRef::Line(line) => match Request::parse(line) {
                        Ok(request) => {
                            if self.slot.enter(Phase::Busy).is_err() {
                                return signals.reason();
                            }
                            // A long call (`login_wait`) must not hold up a shutdown (a busy
                            // connection is not evicted, so only a shutdown closes it here).
                            tokio::select! {
                                biased;
                                () = respond(handler, request, peer, &mut audit, &mut self.out) => {}
                                () = signals.closing.as_mut() => return signals.reason(),
                            }
                            answered = true;
                            if self.out.len() >= FLUSH_AT {
                                if let Err(closed) = self.flush(&mut signals).await {
                                    return closed;
                                }
                            }
                            continue;
                        }
                        Err(bad) => {
                            debug!(code = bad.error.code, kind = %bad.error.data.kind, "bad request");
                            Response::err(bad.id, bad.error)
                        }
                    },
                    FrameRef::TooLong => {
                        debug!(limit = self.decoder.max(), "request line too long");
                        Response::err(Id::Null, RpcError::too_large(self.decoder.max()))
                    }
                };
                answer(response, &mut self.out);
                answered = true;
                if self.out.len() >= FLUSH_AT {
                    if let Err(closed) = self.flush(&mut signals).await {
                        return closed;
                    }
                }
            }
            if answered {
                if let Err(closed) = self.flush(&mut signals).await {
                    return closed;
                }
            }
            let now = Instant::now();
            if answered {
                idle_since = now;
                line_started = None;
            }
            let idle_deadline = idle_since + self.limits.idle_timeout;
            let (phase, deadline, what) = if self.decoder.in_line() {
                let started = *line_started.get_or_insert(now);
                let line_deadline = started + self.limits.request_timeout;
                (
                    Phase::Reading,
                    line_deadline.min(idle_deadline),
                    "request line",
                )
            } else {
                (Phase::Idle, idle_deadline, "idle")
            };
            // Checked here too: the read below does not look at the timer while bytes keep
            // coming.
            if now >= deadline {
                return Close::Deadline(what);
            }
            if self.slot.enter(phase).is_err() {
                return signals.reason();
            }
            let read = tokio::select! {
                biased;
                read = self.stream.read(&mut self.buf) => read,
                () = signals.closing.as_mut() => return signals.reason(),
                () = self.timer.until(deadline) => return Close::Deadline(what),
            };
            match read {
                Ok(0) => return Close::Eof,
                Ok(n) => {
                    self.decoder.feed(&self.buf[..n]);
                    wipe(&mut self.buf[..n]);
                }
                Err(err) => return Close::Io(err),
            }
        }
    }

    /// Writes the waiting answers within the write deadline, then wipes them.
    ///
    /// The socket almost always takes them at once; only when it is full does the connection
    /// enter the writing phase (evictable) and wait, for at most the write deadline.
    async fn flush(&mut self, signals: &mut Signals<'_, '_>) -> Result<(), Close> {
        let mut written = 0;
        let result = loop {
            if written == self.out.len() {
                break Ok(());
            }
            // One try without waiting; a full socket (pending) waits in `write_slowly`.
            match self.stream.write(&self.out[written..]).now_or_never() {
                Some(Ok(0)) => break Err(Close::Io(std::io::ErrorKind::WriteZero.into())),
                Some(Ok(n)) => written += n,
                None => break self.write_slowly(written, signals).await,
                Some(Err(err)) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Some(Err(err)) => break Err(Close::Io(err)),
            }
        };
        recycle(&mut self.out);
        result
    }

    /// Writes `out[written..]` to a full socket, within the write deadline.
    async fn write_slowly(
        &mut self,
        written: usize,
        signals: &mut Signals<'_, '_>,
    ) -> Result<(), Close> {
        if self.slot.enter(Phase::Writing).is_err() {
            return Err(signals.reason());
        }
        let deadline = Instant::now() + self.limits.write_timeout;
        tokio::select! {
            written = self.stream.write_all(&self.out[written..]) => written.map_err(Close::Io),
            () = self.timer.until(deadline) => Err(Close::Deadline("write")),
            () = signals.closing.as_mut() => Err(signals.reason()),
        }
    }
}

/// Runs one request for `peer` and appends its typed reply to `out` as the JSON-RPC answer,
/// encoded in place (no copy of a secret to wipe besides `out`); `audit` is the connection's
/// audit memory.
async fn respond(
    handler: &Handler,
    request: Request,
    peer: &Peer,
    audit: &mut AuditMemory,
    out: &mut Vec<u8>,
) {
    match handler.answer(&request.call, peer, audit).await {
        Ok(crate::handler::Reply::Get(served)) => {
            Response::write_get_result(&request.id, served.view(), out);
        }
        Ok(reply) => Response::write_result(&request.id, &reply, out),
        Err(error) => Response::err(request.id, error).write_line(out),
    }
}

/// The most an idle connection keeps of its answer buffer.
const KEEP_OUT: usize = 64 * 1024;

/// Empties the answer buffer once written: wipes the bytes used (only those: wiping the whole
/// capacity every time would cost more than the request), and gives back all but
/// [`KEEP_OUT`] of its room, so a connection that once answered a `list` of thousands of
/// entries does not hold its megabytes while it idles.
fn recycle(out: &mut Vec<u8>) {
    wipe(out);
    out.clear();
    out.shrink_to(KEEP_OUT);
}

/// Appends `response` to `out` and wipes the result's text (a `get` result holds a secret).
fn answer(response: Response, out: &mut Vec<u8>) {
    response.write_line(out);
    response.wipe();
}

/// One timer for the whole connection, re-armed lazily: re-arming a timer per request costs
/// more than the request, so a later deadline only takes effect when the timer fires early,
/// and only an earlier one resets it at once.
struct Timer {
    sleep: Pin<Box<Sleep>>,
    /// When `sleep` fires (possibly in the past).
    armed: Instant,
}

impl Timer {
    fn new(at: Instant) -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(at)),
            armed: at,
        }
    }

    /// Completes at `at`.
    async fn until(&mut self, at: Instant) {
        if at < self.armed {
            self.sleep.as_mut().reset(at);
            self.armed = at;
        }
        loop {
            self.sleep.as_mut().await;
            if Instant::now() >= at {
                return;
            }
            self.sleep.as_mut().reset(at);
            self.armed = at;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::mpsc;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio_util::sync::CancellationToken;

    use super::{recycle, Close, Connection, Timer, KEEP_OUT};
    use crate::config::{FileConfig, Limits, Overrides};
    use crate::ipc::slots::Slots;
    use crate::DaemonBuilder;

    /// A client whose bytes never stop: every read is a full buffer of spaces (a request line
    /// without end), ready at once; every write is taken whole. A tokio socket would make the
    /// task yield now and then (its cooperative budget); this never does. Says so on its first
    /// read.
    struct Endless(Option<mpsc::Sender<()>>);

    impl AsyncRead for Endless {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if let Some(reading) = self.0.take() {
                let _ = reading.send(());
            }
            let n = buf.remaining();
            buf.initialize_unfilled().fill(b' ');
            buf.advance(n);
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Endless {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Serves [`Endless`] with `limits` on a runtime of its own and says why the connection
    /// closed; `stop` is called on a thread of its own once the connection reads, with the
    /// shutdown token and the slots. Fails after 20 s: a connection that never closes spins,
    /// so its runtime is leaked rather than dropped (dropping would wait for it).
    fn serve_endless(
        limits: Limits,
        stop: impl FnOnce(CancellationToken, Slots) + Send + 'static,
    ) -> String {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let flags = Overrides {
            backend: Some(latchkey_store::Backend::Memory),
            ..Overrides::default()
        };
        let config =
            crate::Config::resolve(FileConfig::default(), flags, dir.path().join("data")).unwrap();
        let (done, closed) = mpsc::channel();
        runtime.spawn(async move {
            let daemon = DaemonBuilder::new(config).build().await.unwrap();
            let shutdown = CancellationToken::new();
            let slots = Slots::new(1, &shutdown);
            let slot = slots.claim().await;
            let (reading, first_read) = mpsc::channel();
            let mut connection = Connection {
                stream: Endless(Some(reading)),
                decoder: latchkey_proto::codec::LineDecoder::new(limits.max_line),
                buf: vec![0u8; 16 * 1024],
                out: Vec::new(),
                timer: Timer::new(tokio::time::Instant::now() + limits.idle_timeout),
                limits,
                slot: &slot,
            };
            let peer = crate::peer::Peer::new(crate::peer::PeerUser::Uid(0), None);
            std::thread::spawn({
                let (shutdown, slots) = (shutdown.clone(), slots.clone());
                move || {
                    if first_read.recv().is_ok() {
                        stop(shutdown, slots);
                    }
                }
            });
            let why = match connection.serve(daemon.handler(), &peer, &shutdown).await {
                Close::Deadline(what) => format!("deadline: {what}"),
                Close::Shutdown => "shutdown".to_owned(),
                Close::Evicted => "evicted".to_owned(),
                Close::Eof => "eof".to_owned(),
                Close::Io(err) => format!("io: {err}"),
            };
            let _ = done.send(why);
        });
        match closed.recv_timeout(Duration::from_secs(20)) {
            Ok(why) => why,
            Err(_) => {
                std::mem::forget(runtime);
                panic!("a client whose bytes never stop kept its connection for 20 s");
            }
        }
    }

    #[test]
    fn a_line_whose_bytes_never_stop_still_meets_its_deadline() {
        let limits = Limits {
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        assert_eq!(serve_endless(limits, |_, _| {}), "deadline: request line");
    }

    #[test]
    fn a_client_whose_bytes_never_stop_is_closed_by_a_shutdown() {
        // Deadlines far away: only the shutdown can end it.
        let limits = Limits {
            request_timeout: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(3600),
            ..Limits::default()
        };
        let why = serve_endless(limits, |shutdown, slots| {
            shutdown.cancel();
            slots.close();
        });
        assert_eq!(why, "shutdown");
    }

    #[test]
    fn a_large_answer_buffer_is_wiped_and_given_back() {
        let mut out = vec![b's'; 3 * 1024 * 1024];
        recycle(&mut out);
        assert!(out.is_empty());
        assert!(out.capacity() <= KEEP_OUT, "{}", out.capacity());
        // What is kept is what small answers need, with nothing left of the old bytes in it.
        let mut small = Vec::with_capacity(1024);
        small.extend_from_slice(b"secret answer");
        recycle(&mut small);
        assert!(small.capacity() >= 1024);
        // SAFETY: the capacity is at least 13 bytes; u8 has no invalid values.
        let spare = unsafe { std::slice::from_raw_parts(small.as_ptr(), 13) };
        assert_eq!(spare, [0u8; 13]);
    }
}

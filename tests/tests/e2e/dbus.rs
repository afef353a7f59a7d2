//! The D-Bus interface on a private bus, with the real tools (`busctl`, `gdbus`) and a zbus
//! subscriber: introspection against the checked-in contract, round trips against the real
//! gnome-keyring, the `Changed` signal, named errors, the caller check, bus activation and
//! socket activation.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use futures_util::StreamExt;
use latchkey_tests::{bin, signal, stderr, stdout, Keyring, SessionBus, TestEnv, START_TIMEOUT};
use serde_json::Value;

const NAME: &str = "dev.latchkey.Latchkey1";
const PATH: &str = "/dev/latchkey/Latchkey1";

fn call(bus: &SessionBus, method: &str, signature: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--json=short", "call", NAME, PATH, NAME, method];
    if !signature.is_empty() {
        all.push(signature);
    }
    all.extend_from_slice(args);
    bus.busctl(&all)
}

fn call_json(bus: &SessionBus, method: &str, signature: &str, args: &[&str]) -> Value {
    let out = call(bus, method, signature, args);
    assert!(out.status.success(), "{method}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// The `<interface name="dev.latchkey.Latchkey1">` element of an introspection document.
fn interface_block(xml: &str) -> String {
    let start = xml
        .find(&format!("<interface name=\"{NAME}\">"))
        .expect("the interface is introspected");
    let end = start + xml[start..].find("</interface>").unwrap() + "</interface>".len();
    xml[start..end].trim().to_owned()
}

#[test]
fn introspection_matches_the_checked_in_contract() {
    let env = TestEnv::with_keyring();
    let _daemon = env.start_daemon(&[]);
    let bus = env.bus();
    let out = bus.busctl(&["introspect", NAME, PATH]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    for member in [
        ".Get", ".Set", ".Clear", ".Status", ".List", ".Changed", ".Version", ".Store",
    ] {
        assert!(table.contains(member), "{member} missing:\n{table}");
    }
    let out = bus.gdbus(&["introspect", "--dest", NAME, "--object-path", PATH, "--xml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let live = interface_block(&stdout(&out));
    let contract_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/dev.latchkey.Latchkey1.xml");
    if std::env::var_os("LATCHKEY_BLESS").is_some() {
        let document = format!(
            "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node name=\"{PATH}\">\n  {live}\n</node>\n"
        );
        std::fs::write(&contract_path, document).unwrap();
    }
    let contract =
        std::fs::read_to_string(&contract_path).expect("dist/dev.latchkey.Latchkey1.xml");
    assert_eq!(
        live,
        interface_block(&contract),
        "the live interface differs from dist/dev.latchkey.Latchkey1.xml; if the change is \
         intended, rerun with LATCHKEY_BLESS=1 and commit the file"
    );
}

#[test]
fn busctl_and_gdbus_round_trip_through_gnome_keyring() {
    let env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&[]);
    let bus = env.bus();
    assert!(
        daemon.logs().contains("dbus=\"dev.latchkey.Latchkey1\""),
        "{}",
        daemon.logs()
    );

    let entry = call_json(
        bus,
        "Set",
        "ssa{sv}",
        &[
            "openai",
            "",
            "2",
            "kind",
            "s",
            "api_key",
            "key",
            "s",
            "sk-over-dbus",
        ],
    );
    assert_eq!(entry["data"][0]["service"]["data"], "openai");
    assert_eq!(entry["data"][0]["account"]["data"], "default");
    let got = call_json(bus, "Get", "ssa{sv}", &["openai", "", "0"]);
    assert_eq!(got["data"][0]["secret"]["data"], "sk-over-dbus");
    assert_eq!(got["data"][0]["kind"]["data"], "api_key");

    // gdbus, with a password and an account.
    let out = bus.call_latchkey(
        "Set",
        &[
            "db",
            "alice",
            "{'kind': <'password'>, 'username': <'alice'>, 'password': <'pw-over-dbus'>}",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bus.call_latchkey("Get", &["db", "alice", "{}"]);
    assert!(
        stdout(&out).contains("'secret': <'pw-over-dbus'>"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("'username': <'alice'>"),
        "{}",
        stdout(&out)
    );

    // OAuth with scopes; the refresh token never comes back.
    let out = bus.call_latchkey("Set", &["github", "",
        "{'kind': <'oauth2'>, 'access_token': <'gho-dbus'>, 'refresh_token': <'ghr-dbus'>, 'expires_in': <int64 3600>, 'scopes': <['repo']>}",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bus.call_latchkey(
        "Get",
        &[
            "github",
            "",
            "{'scopes': <['repo']>, 'min_valid_secs': <uint64 60>}",
        ],
    );
    assert!(
        stdout(&out).contains("'secret': <'gho-dbus'>"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("ghr-dbus"));

    // The socket sees what D-Bus stored, and the keyring holds it.
    assert_eq!(
        stdout(&env.cli(&daemon.socket, &["get", "openai"], "")),
        "sk-over-dbus\n"
    );
    let lookup = Command::new("secret-tool")
        .args(["lookup", "service", "db", "account", "alice"])
        .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&lookup.stdout).contains("pw-over-dbus"));

    let status = call_json(bus, "Status", "ss", &["", ""]);
    assert_eq!(status["data"][0]["store"]["data"], "secret-service");
    assert_eq!(status["data"][1].as_array().unwrap().len(), 3);
    let list = call_json(bus, "List", "", &[]);
    assert_eq!(list["data"][0].as_array().unwrap().len(), 3);
    let store = bus.busctl(&["get-property", NAME, PATH, NAME, "Store"]);
    assert_eq!(stdout(&store).trim(), "s \"secret-service\"");
    let version = bus.busctl(&["get-property", NAME, PATH, NAME, "Version"]);
    assert_eq!(
        stdout(&version).trim(),
        format!("s \"{}\"", env!("CARGO_PKG_VERSION"))
    );

    for (service, account) in [("openai", ""), ("db", "alice"), ("github", "")] {
        let cleared = call_json(bus, "Clear", "ss", &[service, account]);
        assert_eq!(cleared["data"][0], true);
    }
    let cleared = call_json(bus, "Clear", "ss", &["openai", ""]);
    assert_eq!(cleared["data"][0], false);
    assert_eq!(
        call_json(bus, "List", "", &[])["data"][0],
        serde_json::json!([])
    );
}

#[test]
fn changed_is_signalled_for_changes_from_any_transport() {
    let env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&[]);
    let socket = daemon.socket.clone();
    env.bus().with_connection(async |connection| {
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(NAME)
            .unwrap()
            .member("Changed")
            .unwrap()
            .build();
        let mut signals = zbus::MessageStream::for_match_rule(rule, connection, None)
            .await
            .unwrap();
        assert!(env
            .cli(&socket, &["set", "watched", "-a", "me"], "v1")
            .status
            .success());
        assert!(env
            .cli(&socket, &["clear", "watched", "-a", "me"], "")
            .status
            .success());
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let message = tokio::time::timeout(START_TIMEOUT, signals.next())
                .await
                .expect("a Changed signal")
                .unwrap()
                .unwrap();
            let body: (String, String, String) = message.body().deserialize().unwrap();
            seen.push(body);
        }
        assert_eq!(
            seen,
            [
                ("watched".into(), "me".into(), "set".into()),
                ("watched".into(), "me".into(), "cleared".into())
            ]
        );
    });
}

fn error_name(out: &std::process::Output) -> String {
    let text = stderr(out);
    assert!(
        !out.status.success(),
        "expected an error, got {}",
        stdout(out)
    );
    text
}

#[test]
fn errors_come_back_as_named_errors_and_bad_calls_harm_nothing() {
    let env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&[]);
    let bus = env.bus();
    let gdbus_get =
        |service: &str, options: &str| bus.call_latchkey("Get", &[service, "", options]);
    assert!(
        error_name(&gdbus_get("missing", "{}")).contains("dev.latchkey.Latchkey1.Error.NotFound")
    );
    let expired = r#"{"kind":"oauth2","access_token":"a","expires_at":"2001-01-01T00:00:00Z","scopes":["read"]}"#;
    assert!(env
        .cli(&daemon.socket, &["set", "old", "--bundle"], expired)
        .status
        .success());
    assert!(error_name(&gdbus_get("old", "{}"))
        .contains("dev.latchkey.Latchkey1.Error.AuthenticationRequired"));
    let scope = error_name(&gdbus_get("old", "{'scopes': <['write']>}"));
    assert!(
        scope.contains("dev.latchkey.Latchkey1.Error.InsufficientScope"),
        "{scope}"
    );
    assert!(scope.contains("write"), "{scope}");
    assert!(error_name(&gdbus_get("bad\u{1b}name", "{}"))
        .contains("dev.latchkey.Latchkey1.Error.InvalidRequest"));
    assert!(error_name(&gdbus_get("x", "{'scopes': <42>}"))
        .contains("dev.latchkey.Latchkey1.Error.InvalidRequest"));
    let bad_bundle = bus.call_latchkey("Set", &["x", "", "{'kind': <'rocket'>}"]);
    assert!(error_name(&bad_bundle).contains("dev.latchkey.Latchkey1.Error.InvalidRequest"));
    // Wrong argument types are refused by signature, and the daemon keeps serving.
    let wrong = call(bus, "Get", "ii", &["1", "2"]);
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).to_lowercase().contains("signature")
            || stderr(&wrong).contains("InvalidArgs"),
        "{}",
        stderr(&wrong)
    );
    let missing_method = call(bus, "Launch", "", &[]);
    assert!(!missing_method.status.success());
    // Locked keyring: a named Locked error.
    assert!(env.cli(&daemon.socket, &["set", "k"], "v").status.success());
    Keyring::lock(bus);
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    loop {
        let status = call_json(bus, "Status", "ss", &["", ""]);
        if status["data"][0]["locked"]["data"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never saw the lock"
        );
    }
    assert!(error_name(&gdbus_get("k", "{}")).contains("dev.latchkey.Latchkey1.Error.Locked"));
    assert_eq!(
        call_json(bus, "List", "", &[])["data"][0]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn another_user_is_refused_on_the_bus() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root so that this test can switch users"
        );
        eprintln!("not root: cannot call as another user here");
        return;
    }
    let mut env = TestEnv::bare();
    let bus = SessionBus::start(None);
    // Let other users reach the bus, so only the daemon's caller check stands guard.
    std::fs::set_permissions(bus.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.bus = Some(bus);
    let daemon = env.start_daemon(&["--store", "memory"]);
    let bus = env.bus();
    let out = Command::new("busctl")
        .arg(format!("--address={}", bus.address()))
        .args(["call", NAME, PATH, NAME, "List"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("latchkeyd serves only its own user"),
        "{}",
        stderr(&out)
    );
    let logs = daemon.wait_for_log("refused a D-Bus call from another user");
    assert!(logs.contains("uid=65534"), "{logs}");
    assert!(call(bus, "List", "", &[]).status.success());
}

#[test]
fn the_first_call_activates_the_daemon_on_the_bus() {
    let env = TestEnv::bare();
    let services = env.root().join("services");
    std::fs::create_dir_all(&services).unwrap();
    // The call that activates the daemon is handed to it the moment it takes the name. A
    // daemon that listens for calls only after that (as zbus's object server, added to a
    // built connection, once did) loses it now and then, and its caller waits out its
    // timeout: so the first call is made on many fresh buses, not one.
    for round in 0..20 {
        let socket = env.root().join(format!("activated-{round}.sock"));
        std::fs::write(
            services.join("dev.latchkey.Latchkey1.service"),
            format!(
                "[D-BUS Service]\nName={NAME}\nExec={} --store memory --socket {}\n",
                bin("latchkeyd").display(),
                socket.display()
            ),
        )
        .unwrap();
        let bus = SessionBus::start(Some(&services));
        let out = call(&bus, "List", "", &[]);
        assert!(
            out.status.success(),
            "activation {round} failed: {}",
            stderr(&out)
        );
        let pid = bus.with_connection(async |connection| {
            let dbus = zbus::fdo::DBusProxy::new(connection).await.unwrap();
            dbus.get_connection_unix_process_id(zbus::names::BusName::try_from(NAME).unwrap())
                .await
                .unwrap()
        });
        if round == 0 {
            let store = bus.busctl(&["get-property", NAME, PATH, NAME, "Store"]);
            assert_eq!(stdout(&store).trim(), "s \"memory\"");
            // The activated daemon serves its socket too.
            assert!(env.cli(&socket, &["version"], "").status.success());
        }
        // SAFETY: kill by the pid the bus reported for the daemon it started.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    }
}

#[test]
fn a_socket_passed_by_the_service_manager_is_served() {
    latchkey_tests::require_program("systemd-socket-activate", "systemd");
    let env = TestEnv::bare();
    let socket = env.root().join("activated.sock");
    let mut activator = env
        .command(Path::new("systemd-socket-activate"))
        .arg("-l")
        .arg(&socket)
        .arg(bin("latchkeyd"))
        .args(["--store", "memory", "--no-dbus"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(activator.stderr.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    assert!(line.contains("Listening on"), "{line}");
    // Keep reading its log so the daemon never writes into a closed pipe.
    let log =
        std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    let set = env.cli(&socket, &["set", "sa"], "from-socket-activation");
    assert!(set.status.success(), "{}", stderr(&set));
    assert_eq!(
        stdout(&env.cli(&socket, &["get", "sa"], "")),
        "from-socket-activation\n"
    );
    // systemd-socket-activate execs the daemon in its own process: stop it by that pid.
    signal(&activator, libc::SIGTERM);
    let status = activator.wait().unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("passed by the service manager"), "{log}");
}

#[test]
fn the_cli_reaches_the_daemon_over_dbus_when_there_is_no_socket() {
    let env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&["--no-socket"]);
    assert!(!daemon.socket.exists());
    let s = &daemon.socket;
    let out = env.cli(s, &["set", "over-bus", "-a", "me"], "bus-secret");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&env.cli(s, &["get", "over-bus", "-a", "me"], "")),
        "bus-secret\n"
    );
    let forced = env.cli(
        s,
        &[
            "--transport",
            "dbus",
            "get",
            "over-bus",
            "-a",
            "me",
            "--json",
        ],
        "",
    );
    let got: Value = serde_json::from_str(&stdout(&forced)).unwrap();
    assert_eq!(got["secret"], "bus-secret");
    assert_eq!(got["kind"], "api_key");
    let bundle = r#"{"kind":"oauth2","access_token":"at-bus","refresh_token":"rt-bus","expires_in":3600,"scopes":["read"]}"#;
    assert!(env
        .cli(s, &["set", "oauth-bus", "--bundle"], bundle)
        .status
        .success());
    assert_eq!(
        stdout(&env.cli(s, &["get", "oauth-bus", "--scope", "read"], "")),
        "at-bus\n"
    );
    // Error kinds survive the bus as exit codes.
    assert_eq!(env.cli(s, &["get", "missing"], "").status.code(), Some(3));
    assert_eq!(
        env.cli(s, &["get", "oauth-bus", "--scope", "write"], "")
            .status
            .code(),
        Some(5)
    );
    assert_eq!(env.cli(s, &["get", "bad\u{1b}"], "").status.code(), Some(2));
    let status: Value =
        serde_json::from_str(&stdout(&env.cli(s, &["status", "--json"], ""))).unwrap();
    assert_eq!(status["daemon"]["store"], "secret-service");
    assert_eq!(status["entries"].as_array().unwrap().len(), 2);
    let list: Value = serde_json::from_str(&stdout(&env.cli(s, &["list", "--json"], ""))).unwrap();
    assert_eq!(list["entries"].as_array().unwrap().len(), 2);
    assert!(env
        .cli(s, &["clear", "over-bus", "-a", "me"], "")
        .status
        .success());
    assert_eq!(
        env.cli(s, &["get", "over-bus", "-a", "me"], "")
            .status
            .code(),
        Some(3)
    );
    // Only the socket was asked for, and there is none.
    assert_eq!(
        env.cli(s, &["--transport", "socket", "list"], "")
            .status
            .code(),
        Some(7)
    );
}

#[test]
fn the_cli_starts_an_activatable_daemon() {
    let env = TestEnv::bare();
    let services = env.root().join("services");
    std::fs::create_dir_all(&services).unwrap();
    std::fs::write(
        services.join("dev.latchkey.Latchkey1.service"),
        format!(
            "[D-BUS Service]\nName={NAME}\nExec={} --store memory --no-socket\n",
            bin("latchkeyd").display()
        ),
    )
    .unwrap();
    let mut env = env;
    env.bus = Some(SessionBus::start(Some(&services)));
    let socket = env.socket();
    let out = env.cli(&socket, &["set", "activated"], "started-by-the-bus");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&env.cli(&socket, &["get", "activated"], "")),
        "started-by-the-bus\n"
    );
    let bus = env.bus();
    let pid = bus.with_connection(async |connection| {
        let dbus = zbus::fdo::DBusProxy::new(connection).await.unwrap();
        dbus.get_connection_unix_process_id(zbus::names::BusName::try_from(NAME).unwrap())
            .await
            .unwrap()
    });
    // SAFETY: kill by the pid the bus reported for the daemon it started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
}

#[test]
fn the_daemon_stops_cleanly_when_the_bus_goes_away() {
    let mut env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&["--store", "memory"]);
    // Keyring first, then the bus itself.
    drop(env.keyring.take());
    drop(env.bus.take());
    daemon.wait_for_log("lost the session bus");
    let (exit, logs) = daemon.stop();
    assert!(exit.success(), "{logs}");
    assert!(logs.contains("latchkeyd stopped"), "{logs}");
}

#[test]
fn readiness_is_notified_once_both_transports_serve() {
    let env = TestEnv::with_keyring();
    let notify = env.root().join("notify.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    listener.set_read_timeout(Some(START_TIMEOUT)).unwrap();
    let daemon = env.start_daemon_with(&[], &[("NOTIFY_SOCKET", notify.to_str().unwrap())]);
    let mut buf = [0u8; 64];
    let n = listener.recv(&mut buf).expect("READY=1 from the daemon");
    assert_eq!(&buf[..n], b"READY=1");
    // Both transports answer once it said so.
    assert!(env
        .cli(&daemon.socket, &["--transport", "socket", "list"], "")
        .status
        .success());
    assert!(env
        .cli(&daemon.socket, &["--transport", "dbus", "list"], "")
        .status
        .success());
}

#[test]
fn the_python_example_in_the_readme_works() {
    require_python_dbus();
    let env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&[]);
    assert!(env
        .cli(&daemon.socket, &["set", "py"], "from-python")
        .status
        .success());
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/examples/dbus_get.py");
    let run = |args: &[&str]| {
        Command::new(python())
            .arg(&example)
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", env.bus().address())
            .output()
            .unwrap()
    };
    let out = run(&["py"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from-python\n");
    let out = run(&["missing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("dev.latchkey.Latchkey1.Error.NotFound: "),
        "{}",
        stderr(&out)
    );
}

/// Debian's python3, where the python3-dbus package installs (another python3 may come first
/// on PATH).
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn require_python_dbus() {
    let ok = Command::new(python())
        .args(["-c", "import dbus"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "python3 with dbus-python is missing (Debian package python3-dbus); the README's test command installs it");
}

#[test]
fn insufficient_scope_names_only_the_missing_scopes_escaped_and_bounded() {
    let mut env = TestEnv::bare();
    env.bus = Some(SessionBus::start(None));
    let daemon = env.start_daemon(&["--store", "memory"]);
    env.bus().wait_for_name(NAME);
    let bundle = r#"{"kind":"oauth2","access_token":"a","scopes":["granted-scope"]}"#;
    assert!(env
        .cli(&daemon.socket, &["set", "api", "--bundle"], bundle)
        .status
        .success());
    // The caller's scopes: one granted, one hostile, one huge, and many more, twice over.
    let mut scopes = vec![
        "granted-scope".to_owned(),
        "\u{1b}[2J\u{7}evil\nline".to_owned(),
        "x".repeat(100_000),
    ];
    scopes.extend((0..2000).map(|i| format!("want-{i}")));
    scopes.extend(scopes.clone());
    let (name, message) = env.bus().with_connection(async |connection| {
        let options = std::collections::HashMap::from([(
            "scopes",
            zbus::zvariant::Value::from(scopes.clone()),
        )]);
        let reply = connection
            .call_method(Some(NAME), PATH, Some(NAME), "Get", &("api", "", options))
            .await;
        match reply {
            Err(zbus::Error::MethodError(name, message, _)) => {
                (name.to_string(), message.unwrap_or_default())
            }
            other => panic!("expected a method error, got {other:?}"),
        }
    });
    assert_eq!(name, "dev.latchkey.Latchkey1.Error.InsufficientScope");
    assert!(
        message.chars().count() <= 700,
        "{} characters",
        message.len()
    );
    assert!(
        !message.chars().any(char::is_control),
        "control characters: {message:?}"
    );
    assert!(
        message.contains("\\u{1b}[2J\\u{7}evil\\u{a}line"),
        "{message}"
    );
    assert!(!message.contains("granted-scope"), "{message}");
    // The list stops at the huge scope and counts the rest (2002 missing, once each).
    assert!(
        message.ends_with("evil\\u{a}line (and 2001 more)"),
        "{message}"
    );
    assert_eq!(message.matches("evil").count(), 1, "{message}");
}

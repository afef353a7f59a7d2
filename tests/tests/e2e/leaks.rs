//! Secrets never leak: with trace logging on, canary secrets go through set, get, list,
//! status, errors and clear, and then none of them is found in the logs or in any output
//! other than the `get` that asked for it. Refresh tokens are never returned at all.

use latchkey_tests::{stderr, stdout, TestEnv};

const CANARIES: [&str; 6] = [
    "CANARY-apikey-7f3a",
    "CANARY-password-91b2",
    "CANARY-access-44de",
    "CANARY-refresh-c0ff",
    "CANARY-idtoken-5e5e",
    "CANARY-dbuskey-a11c",
];

#[test]
fn canaries_never_reach_logs_listings_or_errors() {
    let env = TestEnv::with_keyring();
    let daemon = env.start_daemon_with(&[], &[("RUST_LOG", "trace")]);
    let s = daemon.socket.clone();
    let public_output = std::cell::RefCell::new(String::new());
    let run = |args: &[&str], stdin: &str| {
        let out = env.cli(&s, args, stdin);
        public_output.borrow_mut().push_str(&stderr(&out));
        out
    };
    assert!(run(&["set", "leak-key"], CANARIES[0]).status.success());
    assert!(run(
        &["set", "leak-pw", "--kind", "password", "--username", "u"],
        CANARIES[1]
    )
    .status
    .success());
    let bundle = format!(
        r#"{{"kind":"oauth2","access_token":"{}","refresh_token":"{}","id_token":"{}","expires_in":3600,"scopes":["read"]}}"#,
        CANARIES[2], CANARIES[3], CANARIES[4]
    );
    assert!(run(&["set", "leak-oauth", "--bundle"], &bundle)
        .status
        .success());

    assert_eq!(stdout(&run(&["get", "leak-key"], "")).trim(), CANARIES[0]);
    assert_eq!(stdout(&run(&["get", "leak-pw"], "")).trim(), CANARIES[1]);
    let got = stdout(&run(&["get", "leak-oauth", "--json"], ""));
    assert!(got.contains(CANARIES[2]));
    assert!(
        !got.contains(CANARIES[3]),
        "a refresh token left the daemon: {got}"
    );
    assert!(
        !got.contains(CANARIES[4]),
        "the ID token is not handed out by get: {got}"
    );
    // The same over D-Bus: a set and gets through the bus, and an error.
    let bus = env.bus();
    let dbus_get = |service: &str, options: &str| bus.call_latchkey("Get", &[service, "", options]);
    let set = bus.call_latchkey(
        "Set",
        &[
            "leak-bus",
            "",
            &format!("{{'kind': <'api_key'>, 'key': <'{}'>}}", CANARIES[5]),
        ],
    );
    assert!(set.status.success(), "{}", stderr(&set));
    assert!(stdout(&dbus_get("leak-bus", "{}")).contains(CANARIES[5]));
    let oauth = stdout(&dbus_get("leak-oauth", "{}"));
    assert!(oauth.contains(CANARIES[2]));
    assert!(
        !oauth.contains(CANARIES[3]) && !oauth.contains(CANARIES[4]),
        "{oauth}"
    );
    let error = dbus_get("leak-oauth", "{'scopes': <['write']>}");
    public_output.borrow_mut().push_str(&stderr(&error));
    // Errors on entries that hold canaries.
    assert_eq!(
        run(&["get", "leak-oauth", "--scope", "write"], "")
            .status
            .code(),
        Some(5)
    );
    assert_eq!(
        run(
            &["set", "leak-oauth", "--bundle"],
            &format!(
                "{{\"kind\":\"oauth2\",\"access_token\":\"{}\",\"expires_in\":-1}}",
                CANARIES[2]
            )
        )
        .status
        .code(),
        Some(2)
    );
    assert_eq!(
        run(&["set", "bad\nname"], CANARIES[0]).status.code(),
        Some(2)
    );
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["status"],
        &["status", "--json"],
    ] {
        let out = run(args, "");
        assert!(out.status.success());
        public_output.borrow_mut().push_str(&stdout(&out));
    }
    for service in ["leak-key", "leak-pw", "leak-oauth", "leak-bus"] {
        assert!(run(&["clear", service], "").status.success());
    }
    let public_output = public_output.into_inner();
    let (exit, logs) = daemon.stop();
    assert!(exit.success());
    assert!(
        logs.contains("TRACE") && logs.contains("zbus"),
        "trace logging (zbus included) was not on"
    );
    for canary in CANARIES {
        assert!(!logs.contains(canary), "{canary} is in the daemon's log");
        assert!(
            !public_output.contains(canary),
            "{canary} is in a listing or an error:\n{public_output}"
        );
    }
}

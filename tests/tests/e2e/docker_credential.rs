//! `docker-credential-latchkey` held to the docker-credential-helpers contract: the binary
//! run with one action, JSON or a server URL on stdin, the answer or a one-line error on
//! stdout (exit 1), exactly as docker runs it; against a real daemon.

use std::process::Output;

use latchkey_tests::git_http::GitServer;
use latchkey_tests::{bin, run_with_stdin, stderr, stdout, Daemon, TestEnv};
use serde_json::{json, Value};

const NOT_FOUND: &str = "credentials not found in native keychain\n";
const SECRET: &str = "docker-CANARY-secret";

struct World {
    env: TestEnv,
    daemon: Daemon,
}

impl World {
    fn new() -> Self {
        let env = TestEnv::bare();
        let daemon = env.start_daemon(&[]);
        Self { env, daemon }
    }

    /// The helper with `args`, as docker runs it.
    fn helper_args(&self, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(
            self.env
                .command(&bin("docker-credential-latchkey"))
                .args(args),
            stdin,
        )
    }

    fn helper(&self, action: &str, stdin: &str) -> Output {
        self.helper_args(&[action], stdin)
    }

    fn store(&self, url: &str, username: &str, secret: &str) {
        let input = json!({"ServerURL": url, "Username": username, "Secret": secret}).to_string();
        let out = self.helper("store", &input);
        assert!(out.status.success(), "store: {}", stdout(&out));
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    }

    fn list(&self) -> Value {
        let out = self.helper("list", "unused");
        assert!(out.status.success(), "list: {}", stdout(&out));
        assert!(stdout(&out).ends_with('\n'));
        serde_json::from_str(&stdout(&out)).unwrap()
    }

    /// Every entry as service/account.
    fn entries(&self) -> Vec<String> {
        let out = self.env.cli(&self.daemon.socket, &["list", "--json"], "");
        assert!(out.status.success(), "{}", stderr(&out));
        let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
        list["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}/{}",
                    e["service"].as_str().unwrap(),
                    e["account"].as_str().unwrap()
                )
            })
            .collect()
    }
}

/// A failure as the contract has it: exit 1, one line on stdout, nothing on stderr.
fn assert_fails_with(out: &Output, message: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(stdout(out), format!("{message}\n"));
    assert!(out.stderr.is_empty(), "{}", stderr(out));
}

fn assert_one_line_failure(out: &Output) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(out);
    assert!(
        text.ends_with('\n') && text.matches('\n').count() == 1,
        "{text:?}"
    );
    assert!(!text.contains(SECRET), "a secret leaked: {text}");
    assert!(out.stderr.is_empty(), "{}", stderr(out));
}

#[test]
fn store_get_list_erase_round_trip() {
    let world = World::new();
    // Something else latchkey holds, which `list` must not show.
    let other = world
        .env
        .cli(&world.daemon.socket, &["set", "openai"], "sk-other\n");
    assert!(other.status.success());

    world.store("https://registry.example.com", "alice", SECRET);
    let get = world.helper("get", "https://registry.example.com\n");
    assert!(get.status.success(), "{}", stdout(&get));
    assert_eq!(
        stdout(&get),
        format!(
            "{{\"ServerURL\":\"https://registry.example.com\",\"Username\":\"alice\",\"Secret\":\"{SECRET}\"}}\n"
        )
    );
    // The same registry without a scheme, with a trailing slash or a default port: the
    // answer names the URL as it was asked for.
    for asked in [
        "registry.example.com",
        "https://Registry.Example.com/",
        "https://registry.example.com:443",
    ] {
        let get = world.helper("get", asked);
        assert!(get.status.success(), "{asked}: {}", stdout(&get));
        let answer: Value = serde_json::from_str(&stdout(&get)).unwrap();
        assert_eq!(
            answer,
            json!({"ServerURL": asked, "Username": "alice", "Secret": SECRET})
        );
    }
    // Another scheme or port is another registry.
    for other in [
        "http://registry.example.com",
        "registry.example.com:5000",
        "https://registry.example.com/v2/other",
    ] {
        assert_fails_with(&world.helper("get", other), NOT_FOUND.trim_end());
    }

    assert_eq!(
        world.list(),
        json!({"https://registry.example.com": "alice"})
    );
    assert_eq!(
        world.entries(),
        [
            "docker:https://registry.example.com/alice",
            "openai/default"
        ]
    );

    let erase = world.helper("erase", "registry.example.com");
    assert!(erase.status.success(), "{}", stdout(&erase));
    assert!(erase.stdout.is_empty());
    assert_fails_with(
        &world.helper("get", "https://registry.example.com"),
        NOT_FOUND.trim_end(),
    );
    assert_eq!(world.list(), json!({}));
    assert_eq!(world.entries(), ["openai/default"]);
    // Erasing what is not there succeeds, as the Secret Service helper's does.
    let erase = world.helper("erase", "registry.example.com");
    assert!(erase.status.success(), "{}", stdout(&erase));
    assert!(!world.daemon.logs().contains(SECRET));
}

#[test]
fn a_missing_entry_is_the_contracts_exact_words() {
    let world = World::new();
    let get = world.helper("get", "https://nothing.example.com");
    assert_eq!(get.status.code(), Some(1));
    assert_eq!(get.stdout, NOT_FOUND.as_bytes());
    assert!(get.stderr.is_empty());
}

#[test]
fn docker_hub_and_loopback_registries() {
    let world = World::new();
    world.store("https://index.docker.io/v1/", "hubuser", SECRET);
    world.store("localhost:5000", "dev", "dev-secret");
    world.store("127.0.0.1:5001", "<token>", "identity-token");
    assert_eq!(
        world.list(),
        json!({
            "https://index.docker.io/v1/": "hubuser",
            "https://localhost:5000": "dev",
            "https://127.0.0.1:5001": "<token>",
        })
    );
    // Each URL `list` gives is one `get` answers (docker gets every listed registry).
    for (url, username) in [
        ("https://index.docker.io/v1/", "hubuser"),
        ("https://localhost:5000", "dev"),
        ("localhost:5000", "dev"),
        ("https://127.0.0.1:5001", "<token>"),
    ] {
        let get = world.helper("get", url);
        assert!(get.status.success(), "{url}: {}", stdout(&get));
        let answer: Value = serde_json::from_str(&stdout(&get)).unwrap();
        assert_eq!(answer["Username"], username);
    }
}

#[test]
fn a_new_username_replaces_the_old_one() {
    let world = World::new();
    world.store("registry.example.com", "alice", "alice-secret");
    world.store("https://registry.example.com", "bob", SECRET);
    assert_eq!(world.list(), json!({"https://registry.example.com": "bob"}));
    assert_eq!(world.entries(), ["docker:https://registry.example.com/bob"]);
    let get = world.helper("get", "registry.example.com");
    let answer: Value = serde_json::from_str(&stdout(&get)).unwrap();
    assert_eq!(answer["Username"], "bob");
    assert_eq!(answer["Secret"], SECRET);
    // Storing the same again keeps one entry.
    world.store("registry.example.com", "bob", "new-secret");
    assert_eq!(world.entries(), ["docker:https://registry.example.com/bob"]);
}

/// A `store` request for this server URL, with username `u` and the canary secret.
fn with_url(url: &str) -> String {
    json!({"ServerURL": url, "Username": "u", "Secret": SECRET}).to_string()
}

/// A `store` request for `r.example.com` with this username and the canary secret.
fn with_username(username: &str) -> String {
    json!({"ServerURL": "r.example.com", "Username": username, "Secret": SECRET}).to_string()
}

/// What `store` must refuse with a one-line error, whose text the contract leaves open.
fn malformed_store_inputs() -> Vec<String> {
    let huge = format!("{SECRET}{}", "x".repeat(70_000));
    vec![
        // Not a JSON object of strings.
        String::new(),
        "not json".into(),
        format!(r#"{{"ServerURL":"r.example.com","Username":"u","Secret":"{SECRET}""#),
        format!(r#"["r.example.com","u","{SECRET}"]"#),
        format!(r#"{{"ServerURL":"r.example.com","Username":["{SECRET}"],"Secret":"s"}}"#),
        json!({"ServerURL": "r.example.com", "Username": "u", "Secret": 5}).to_string(),
        // No secret.
        json!({"ServerURL": "r.example.com", "Username": "u"}).to_string(),
        // A server URL that names no registry, or more than one.
        with_url("ftp://r.example.com"),
        with_url("/r.example.com"),
        with_url("https://u:pw@r.example.com"),
        with_url("r.example.com\nevil.example"),
        with_url("r.example.com\u{0}"),
        // Text a terminal would act on.
        with_username("u\u{1b}[31m"),
        with_username("u\u{202e}"),
        // Too long.
        with_url(&format!("r.example.com/{}", "p".repeat(600))),
        json!({"ServerURL": "r.example.com", "Username": "u", "Secret": huge}).to_string(),
    ]
}

/// What `store` must refuse with the contract's exact answer: a server URL or username missing
/// or blank.
fn store_inputs_without_a_name() -> [(String, &'static str); 3] {
    let no_url = "no credentials server URL";
    [
        (
            json!({"Username": "u", "Secret": SECRET}).to_string(),
            no_url,
        ),
        (with_url("  "), no_url),
        (
            json!({"ServerURL": "r.example.com", "Secret": SECRET}).to_string(),
            "no credentials username",
        ),
    ]
}

#[test]
fn malformed_store_input_stores_nothing() {
    let world = World::new();
    for input in malformed_store_inputs() {
        let out = world.helper("store", &input);
        assert_eq!(out.status.code(), Some(1), "{input:.200}");
        assert_one_line_failure(&out);
    }
    for (input, answer) in store_inputs_without_a_name() {
        let out = world.helper("store", &input);
        assert_one_line_failure(&out);
        assert_fails_with(&out, answer);
    }
    assert!(world.entries().is_empty(), "{:?}", world.entries());
    assert_eq!(world.list(), json!({}));
    assert!(!world.daemon.logs().contains(SECRET));
}

#[test]
fn malformed_server_urls_are_refused() {
    let world = World::new();
    world.store("r.example.com", "u", SECRET);
    let huge = format!("r.example.com/{}", "p".repeat(70_000));
    for action in ["get", "erase"] {
        for input in [
            "",
            " \n ",
            "ftp://r.example.com",
            "/r.example.com",
            "r.example.com\nr.example.com",
            "r.example.com\0",
            "https://u:pw@r.example.com",
            huge.as_str(),
        ] {
            let out = world.helper(action, input);
            assert_one_line_failure(&out);
            assert_ne!(stdout(&out), NOT_FOUND, "{action} {input:?}");
        }
        assert_fails_with(&world.helper(action, ""), "no credentials server URL");
    }
    assert_eq!(world.entries(), ["docker:https://r.example.com/u"]);
}

#[test]
fn usage_errors() {
    let world = World::new();
    let usage = "Usage: docker-credential-latchkey <store|get|erase|list|version>";
    assert_fails_with(&world.helper_args(&[], ""), usage);
    assert_fails_with(&world.helper_args(&["get", "extra"], ""), usage);
    assert_fails_with(
        &world.helper("frobnicate", ""),
        "Unknown credential action `frobnicate`",
    );
    let version = world.helper("version", "");
    assert!(version.status.success());
    assert!(stdout(&version).starts_with("docker-credential-latchkey (latchkey) "));
}

#[test]
fn store_never_writes_over_an_entry_of_another_kind() {
    let world = World::new();
    let set = world.env.cli(
        &world.daemon.socket,
        &["set", "docker:https://r.example.com", "-a", "robot"],
        "robot-token\n",
    );
    assert!(set.status.success(), "{}", stderr(&set));
    let input =
        json!({"ServerURL": "r.example.com", "Username": "alice", "Secret": SECRET}).to_string();
    let out = world.helper("store", &input);
    assert_one_line_failure(&out);
    assert!(stdout(&out).contains("did not store"), "{}", stdout(&out));
    // It is still served, with its account as the username, and `erase` keeps it.
    let get = world.helper("get", "r.example.com");
    let answer: Value = serde_json::from_str(&stdout(&get)).unwrap();
    assert_eq!(
        answer,
        json!({"ServerURL": "r.example.com", "Username": "robot", "Secret": "robot-token"})
    );
    assert!(world.helper("erase", "r.example.com").status.success());
    assert_eq!(world.entries(), ["docker:https://r.example.com/robot"]);
}

#[test]
fn without_a_daemon_the_error_is_not_a_missing_entry() {
    let env = TestEnv::bare();
    let out = run_with_stdin(
        env.command(&bin("docker-credential-latchkey")).arg("get"),
        "registry.example.com",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("latchkeyd is not running"),
        "{}",
        stdout(&out)
    );
    assert_ne!(stdout(&out), NOT_FOUND);
}

/// The real docker CLI with `"credsStore": "latchkey"`: with no docker daemon, `docker login`
/// logs in from the client against a loopback registry that demands Basic auth, and keeps
/// the credentials through the helper.
#[test]
fn docker_login_and_logout_go_through_the_helper() {
    latchkey_tests::require_program("docker", "docker.io");
    let world = World::new();
    let registry_root = world.env.root().join("srv");
    std::fs::create_dir_all(&registry_root).unwrap();
    let registry = GitServer::start(&registry_root);
    registry.accept("alice", SECRET);
    let config_dir = world.env.root().join("docker-config");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.json"),
        r#"{"credsStore":"latchkey"}"#,
    )
    .unwrap();
    let helper_dir = bin("docker-credential-latchkey")
        .parent()
        .unwrap()
        .to_owned();
    let docker = |args: &[&str], stdin: &str| {
        let mut path = vec![helper_dir.clone()];
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let mut cmd = world.env.command(std::path::Path::new("docker"));
        cmd.env("PATH", std::env::join_paths(path).unwrap())
            .env("DOCKER_CONFIG", &config_dir)
            .env(
                "DOCKER_HOST",
                "unix:///nonexistent/latchkey-test-docker.sock",
            )
            .args(args);
        run_with_stdin(&mut cmd, stdin)
    };
    let host = registry.host();

    // A wrong password: the registry refuses it, nothing is stored.
    let login = docker(
        &["login", "-u", "alice", "--password-stdin", &host],
        "wrong-pw\n",
    );
    assert!(!login.status.success(), "{}", stdout(&login));
    assert!(world.entries().is_empty(), "{:?}", world.entries());

    let login = docker(
        &["login", "-u", "alice", "--password-stdin", &host],
        &format!("{SECRET}\n"),
    );
    assert!(
        login.status.success(),
        "{}{}",
        stdout(&login),
        stderr(&login)
    );
    assert!(
        stdout(&login).contains("Login Succeeded"),
        "{}",
        stdout(&login)
    );
    assert_eq!(world.entries(), [format!("docker:https://{host}/alice")]);
    // docker's own file holds no secret, only the registry's name.
    let config = std::fs::read_to_string(config_dir.join("config.json")).unwrap();
    assert!(!config.contains(SECRET), "{config}");

    // A client-side registry call (`docker manifest inspect`, which needs no daemon) takes
    // the stored credentials through the helper's `get`; the test registry has no images,
    // so the call itself fails once it is past authentication.
    let before = registry.attempts().len();
    let inspect = docker(
        &[
            "manifest",
            "inspect",
            "--insecure",
            &format!("{host}/img:latest"),
        ],
        "",
    );
    let attempts = &registry.attempts()[before..];
    assert!(
        !attempts.is_empty(),
        "{}{}",
        stdout(&inspect),
        stderr(&inspect)
    );
    assert!(attempts
        .iter()
        .all(|a| a.username == "alice" && a.password == SECRET && a.accepted));

    let logout = docker(&["logout", &host], "");
    assert!(
        logout.status.success(),
        "{}{}",
        stdout(&logout),
        stderr(&logout)
    );
    assert!(world.entries().is_empty(), "{:?}", world.entries());
    for out in [&login, &inspect, &logout] {
        assert!(!stdout(out).contains(SECRET) && !stderr(out).contains(SECRET));
    }
}

//! `git-credential-latchkey` through the real git client: `git clone` and `git push` against a
//! loopback server that demands HTTP Basic auth (`latchkey_tests::git_http`), with
//! `credential.helper = latchkey` in an isolated git configuration; plus hostile requests fed
//! to the helper directly, as git would run it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use latchkey_tests::git_http::GitServer;
use latchkey_tests::oauth_server::TokenServer;
use latchkey_tests::{bin, run_with_stdin, stderr, stdout, Daemon, TestEnv};
use serde_json::Value;

use crate::support::{daemon_with_config, provider_section};

/// A password no output may show.
const PASSWORD: &str = "pw-CANARY-7f3a";

/// One test's world: a daemon, a git server over one bare repository, and a git
/// configuration of its own (`$HOME/.gitconfig`, no system config, no prompts).
struct World {
    env: TestEnv,
    daemon: Daemon,
    server: GitServer,
}

impl World {
    /// A memory-store daemon and `credential.helper = HELPER`.
    fn new(helper: &str) -> Self {
        let env = TestEnv::bare();
        let daemon = env.start_daemon(&[]);
        Self::with(env, daemon, helper)
    }

    fn with(env: TestEnv, daemon: Daemon, helper: &str) -> Self {
        let server_root = env.root().join("srv");
        std::fs::create_dir_all(&server_root).unwrap();
        let server = GitServer::start(&server_root);
        let world = Self {
            env,
            daemon,
            server,
        };
        world.write_gitconfig(helper);
        world.make_repository(&server_root.join("repo.git"));
        world
    }

    fn write_gitconfig(&self, helper: &str) {
        let config = format!(
            "[user]\n\tname = Latchkey Test\n\temail = test@example.invalid\n\
             [init]\n\tdefaultBranch = main\n\
             [credential]\n\thelper = {helper}\n"
        );
        std::fs::write(self.env.root().join(".gitconfig"), config).unwrap();
    }

    /// A bare repository with one commit holding `README`.
    fn make_repository(&self, bare: &Path) {
        let work = self.env.root().join("seed");
        self.git_ok(&["init", "-q", work.to_str().unwrap()], None);
        std::fs::write(work.join("README"), "hello\n").unwrap();
        self.git_ok(&["add", "README"], Some(&work));
        self.git_ok(&["commit", "-q", "-m", "first"], Some(&work));
        self.git_ok(
            &[
                "clone",
                "-q",
                "--bare",
                work.to_str().unwrap(),
                bare.to_str().unwrap(),
            ],
            None,
        );
    }

    /// `git` with this world's environment: the helper found on PATH, no prompts.
    fn git_command(&self, cwd: Option<&Path>) -> Command {
        let mut cmd = self.env.command(Path::new("git"));
        let helper_dir = bin("git-credential-latchkey").parent().unwrap().to_owned();
        let mut path = vec![helper_dir];
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        cmd.env("PATH", std::env::join_paths(path).unwrap())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .current_dir(cwd.unwrap_or(self.env.root()));
        cmd
    }

    fn git(&self, args: &[&str], cwd: Option<&Path>) -> Output {
        run_with_stdin(self.git_command(cwd).args(args), "")
    }

    fn git_ok(&self, args: &[&str], cwd: Option<&Path>) -> Output {
        let out = self.git(args, cwd);
        assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
        out
    }

    /// `git credential ACTION` with `stdin`.
    fn git_credential(&self, action: &str, stdin: &str) -> Output {
        run_with_stdin(self.git_command(None).args(["credential", action]), stdin)
    }

    /// The helper run directly, as git runs it, with `args` before the action.
    fn helper(&self, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(
            self.env.command(&bin("git-credential-latchkey")).args(args),
            stdin,
        )
    }

    fn latchkey(&self, args: &[&str], stdin: &str) -> Output {
        let out = self.env.cli(&self.daemon.socket, args, stdin);
        assert!(out.status.success(), "latchkey {args:?}: {}", stderr(&out));
        out
    }

    /// Stores `username`/`password` as a password entry for this server.
    fn store_password(&self, username: &str, password: &str) {
        let service = self.service();
        self.latchkey(
            &[
                "set",
                &service,
                "-a",
                username,
                "--kind",
                "password",
                "--username",
                username,
            ],
            &format!("{password}\n"),
        );
    }

    /// The service this helper stores for the server.
    fn service(&self) -> String {
        format!("git:http://{}", self.server.host())
    }

    /// Every entry as (service, account, kind).
    fn entries(&self) -> Vec<(String, String, String)> {
        let out = self.latchkey(&["list", "--json"], "");
        let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
        list["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["service"].as_str().unwrap().to_owned(),
                    e["account"].as_str().unwrap().to_owned(),
                    e["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn clone_into(&self, name: &str) -> (Output, PathBuf) {
        let dest = self.env.root().join(name);
        let out = self.git(
            &[
                "clone",
                "-q",
                &self.server.url("repo.git"),
                dest.to_str().unwrap(),
            ],
            None,
        );
        (out, dest)
    }
}

fn assert_no_secret(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "a secret leaked: {text}");
    }
}

#[test]
fn clone_and_push_with_a_stored_password() {
    let world = World::new("latchkey");
    world.store_password("alice", PASSWORD);
    world.server.accept("alice", PASSWORD);

    let (clone, dest) = world.clone_into("clone");
    assert!(clone.status.success(), "{}", stderr(&clone));
    assert_eq!(
        std::fs::read_to_string(dest.join("README")).unwrap(),
        "hello\n"
    );

    std::fs::write(dest.join("CHANGES"), "pushed\n").unwrap();
    world.git_ok(&["add", "CHANGES"], Some(&dest));
    world.git_ok(&["commit", "-q", "-m", "second"], Some(&dest));
    let push = world.git(&["push", "-q", "origin", "main"], Some(&dest));
    assert!(push.status.success(), "{}", stderr(&push));
    let bare = world.env.root().join("srv/repo.git");
    let log = world.git_ok(
        &["--git-dir", bare.to_str().unwrap(), "log", "--format=%s"],
        None,
    );
    assert_eq!(stdout(&log), "second\nfirst\n");

    // The server was asked without credentials first, then only with alice's.
    assert!(world.server.anonymous_requests() >= 1);
    let attempts = world.server.attempts();
    assert!(!attempts.is_empty());
    assert!(attempts
        .iter()
        .all(|a| a.accepted && a.username == "alice" && a.password == PASSWORD));
    // git's `store` after success changed nothing.
    assert_eq!(
        world.entries(),
        [(world.service(), "alice".into(), "password".into())]
    );
    for out in [&clone, &push] {
        assert_no_secret(&stderr(out), &[PASSWORD]);
        assert_no_secret(&stdout(out), &[PASSWORD]);
    }
    assert_no_secret(&world.daemon.logs(), &[PASSWORD]);
}

#[test]
fn a_refused_password_is_erased_and_the_clone_fails() {
    let world = World::new("latchkey");
    world.store_password("alice", "stale-CANARY-password");
    world.server.accept("alice", PASSWORD);

    let (clone, _) = world.clone_into("clone");
    assert!(!clone.status.success());
    assert!(
        stderr(&clone).contains("Authentication failed"),
        "{}",
        stderr(&clone)
    );
    let attempts = world.server.attempts();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(!attempts[0].accepted);
    assert_eq!(attempts[0].password, "stale-CANARY-password");
    // git called `erase` with the refused password: the entry is gone.
    assert!(world.entries().is_empty(), "{:?}", world.entries());
    assert_no_secret(&stderr(&clone), &["stale-CANARY-password", PASSWORD]);
}

#[test]
fn erase_removes_only_the_password_git_reports_refused() {
    let world = World::new("latchkey");
    world.store_password("alice", PASSWORD);
    world.store_password("bob", "bob-CANARY");
    let host = world.server.host();
    // An old password of alice's: her current one is kept.
    let reject = world.git_credential(
        "reject",
        &format!("protocol=http\nhost={host}\nusername=alice\npassword=old-password\n\n"),
    );
    assert!(reject.status.success(), "{}", stderr(&reject));
    assert_eq!(world.entries().len(), 2);
    // Her current one: removed, bob's kept.
    let reject = world.git_credential(
        "reject",
        &format!("protocol=http\nhost={host}\nusername=alice\npassword={PASSWORD}\n\n"),
    );
    assert!(reject.status.success(), "{}", stderr(&reject));
    assert_eq!(
        world.entries(),
        [(world.service(), "bob".into(), "password".into())]
    );
    // Another host's request removes nothing.
    let reject = world.git_credential(
        "reject",
        "protocol=http\nhost=elsewhere.example\nusername=bob\n\n",
    );
    assert!(reject.status.success(), "{}", stderr(&reject));
    assert_eq!(world.entries().len(), 1);
    assert_no_secret(&stderr(&reject), &["bob-CANARY", PASSWORD]);
}

#[test]
fn without_an_entry_git_fails_cleanly_and_nothing_is_stored() {
    let world = World::new("latchkey");
    world.server.accept("alice", PASSWORD);
    let (clone, dest) = world.clone_into("clone");
    assert!(!clone.status.success());
    let err = stderr(&clone);
    assert!(err.contains("terminal prompts disabled"), "{err}");
    // The helper answered "nothing" without complaining.
    assert!(!err.contains("git-credential-latchkey"), "{err}");
    assert!(world.server.attempts().is_empty());
    assert!(world.entries().is_empty());
    assert!(!dest.join("README").exists());

    // `get` of a missing entry: empty answer, exit 0.
    let get = world.helper(
        &["get"],
        &format!("protocol=http\nhost={}\n\n", world.server.host()),
    );
    assert_eq!(get.status.code(), Some(0), "{}", stderr(&get));
    assert!(get.stdout.is_empty());
}

#[test]
fn approve_stores_what_worked_and_the_next_clone_uses_it() {
    let world = World::new("latchkey");
    let host = world.server.host();
    world.server.accept("bob", PASSWORD);
    let approve = world.git_credential(
        "approve",
        &format!("protocol=http\nhost={host}\nusername=bob\npassword={PASSWORD}\n\n"),
    );
    assert!(approve.status.success(), "{}", stderr(&approve));
    assert_eq!(
        world.entries(),
        [(world.service(), "bob".into(), "password".into())]
    );
    let updated = |world: &World| {
        let out = world.latchkey(&["list", "--json"], "");
        let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
        list["entries"][0]["updated_at"].clone()
    };
    let first = updated(&world);

    let (clone, _) = world.clone_into("clone");
    assert!(clone.status.success(), "{}", stderr(&clone));
    // The clone's own `store` found the same password stored and wrote nothing.
    assert_eq!(updated(&world), first);

    // `git credential fill` hands it back.
    let fill = world.git_credential("fill", &format!("protocol=http\nhost={host}\n\n"));
    assert!(fill.status.success(), "{}", stderr(&fill));
    assert!(
        stdout(&fill).contains(&format!("username=bob\npassword={PASSWORD}\n")),
        "{}",
        stdout(&fill)
    );
}

#[test]
fn credentials_in_the_url_are_stored_once_they_worked() {
    let world = World::new("latchkey");
    world.server.accept("carol", PASSWORD);
    let url = world
        .server
        .url("repo.git")
        .replace("http://", &format!("http://carol:{PASSWORD}@"));
    let dest = world.env.root().join("clone");
    let clone = world.git(&["clone", "-q", &url, dest.to_str().unwrap()], None);
    assert!(clone.status.success(), "{}", stderr(&clone));
    assert_eq!(
        world.entries(),
        [(world.service(), "carol".into(), "password".into())]
    );
}

#[test]
fn with_use_http_path_each_repository_has_its_own_entry() {
    let world = World::new("latchkey");
    let config = world.env.root().join(".gitconfig");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\tuseHttpPath = true\n");
    std::fs::write(&config, text).unwrap();
    world.server.accept("dave", PASSWORD);
    // An entry for the whole host does not serve a request with a path.
    world.store_password("dave", PASSWORD);
    let (clone, _) = world.clone_into("clone");
    assert!(!clone.status.success());
    // The host's entry was not the one refused: git never got it, so it stays.
    assert_eq!(world.entries().len(), 1);

    let service = format!("{}/repo.git", world.service());
    world.latchkey(
        &[
            "set",
            &service,
            "-a",
            "dave",
            "--kind",
            "password",
            "--username",
            "dave",
        ],
        &format!("{PASSWORD}\n"),
    );
    let (clone, _) = world.clone_into("clone2");
    assert!(clone.status.success(), "{}", stderr(&clone));
}

/// An OAuth entry `forge` with an expired access token, refreshed at `tokens`.
fn oauth_world(tokens: &TokenServer, helper: &str) -> World {
    tokens.seed("RTOKEN-0");
    let env = TestEnv::bare();
    let daemon = daemon_with_config(&env, &provider_section("test", tokens, false), "info");
    let world = World::with(env, daemon, helper);
    world.latchkey(
        &["set", "forge", "--bundle"],
        r#"{"kind":"oauth2","access_token":"ATOKEN-0","refresh_token":"RTOKEN-0","expires_at":"2001-01-01T00:00:00Z","provider":"test"}"#,
    );
    world
}

#[test]
fn a_configured_oauth_entry_serves_its_fresh_token_and_survives_a_refusal() {
    let tokens = TokenServer::start();
    tokens.set_expires_in(3600);
    let world = oauth_world(&tokens, "latchkey --service forge");
    // The daemon refreshes the expired token when git asks: the first token the provider
    // issues is ATOKEN-1.
    world.server.accept("x-access-token", "ATOKEN-1");
    let (clone, dest) = world.clone_into("clone");
    assert!(clone.status.success(), "{}", stderr(&clone));
    assert!(dest.join("README").exists());
    assert_eq!(tokens.refresh_requests(), 1);
    let attempts = world.server.attempts();
    assert!(attempts
        .iter()
        .all(|a| a.accepted && a.username == "x-access-token" && a.password == "ATOKEN-1"));
    // git's `store` after success wrote no copy of the token.
    assert_eq!(
        world.entries(),
        [("forge".into(), "default".into(), "oauth2".into())]
    );

    // With its expiry, for git >= 2.41.
    let fill = world.git_credential(
        "fill",
        &format!("protocol=http\nhost={}\n\n", world.server.host()),
    );
    assert!(fill.status.success(), "{}", stderr(&fill));
    let text = stdout(&fill);
    assert!(
        text.contains("username=x-access-token\npassword=ATOKEN-1\n"),
        "{text}"
    );
    let expiry: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("password_expiry_utc="))
        .unwrap_or_else(|| panic!("no expiry: {text}"))
        .parse()
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((now + 3500..=now + 3700).contains(&expiry), "{expiry}");

    // A server that refuses the token: git fails and calls `erase`, which keeps the login.
    let refusing_root = world.env.root().join("srv2");
    std::fs::create_dir_all(&refusing_root).unwrap();
    let refusing = GitServer::start(&refusing_root);
    let clone = world.git(
        &[
            "clone",
            "-q",
            &refusing.url("repo.git"),
            world.env.root().join("clone2").to_str().unwrap(),
        ],
        None,
    );
    assert!(!clone.status.success());
    let err = stderr(&clone);
    assert!(err.contains("latchkey keeps the entry"), "{err}");
    assert_no_secret(&err, &["ATOKEN", "RTOKEN"]);
    assert_eq!(
        world.entries(),
        [("forge".into(), "default".into(), "oauth2".into())]
    );
    assert_eq!(tokens.refresh_requests(), 1);
    assert_no_secret(&world.daemon.logs(), &["ATOKEN-1", "RTOKEN"]);
}

#[test]
fn github_com_maps_to_the_github_entry_over_https_only() {
    let world = World::new("latchkey");
    world.latchkey(&["set", "github"], "ghp_CANARY_token\n");
    let get = world.helper(&["get"], "protocol=https\nhost=github.com\n\n");
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(
        stdout(&get),
        "username=x-access-token\npassword=ghp_CANARY_token\n"
    );
    // git's own username is kept.
    let get = world.helper(&["get"], "protocol=https\nhost=GitHub.com\nusername=me\n\n");
    assert_eq!(stdout(&get), "username=me\npassword=ghp_CANARY_token\n");
    // Never over plain http, nor for a look-alike host.
    for request in [
        "protocol=http\nhost=github.com\n\n",
        "protocol=https\nhost=github.com.evil.example\n\n",
    ] {
        let get = world.helper(&["get"], request);
        assert!(get.status.success(), "{}", stderr(&get));
        assert!(get.stdout.is_empty(), "{request:?}: {}", stdout(&get));
    }
    // git's `store` and `erase` leave the provider's entry alone and add nothing.
    let store = world.helper(
        &["store"],
        "protocol=https\nhost=github.com\nusername=x-access-token\npassword=ghp_CANARY_token\n\n",
    );
    assert!(store.status.success(), "{}", stderr(&store));
    let erase = world.helper(
        &["erase"],
        "protocol=https\nhost=github.com\nusername=x-access-token\npassword=ghp_CANARY_token\n\n",
    );
    assert!(erase.status.success(), "{}", stderr(&erase));
    assert_eq!(
        world.entries(),
        [("github".into(), "default".into(), "api_key".into())]
    );
    assert_no_secret(&stderr(&erase), &["ghp_CANARY"]);
}

#[test]
fn store_never_writes_over_an_entry_of_another_kind() {
    let world = World::new("latchkey");
    let service = world.service();
    world.latchkey(&["set", &service, "-a", "erin"], "key-CANARY\n");
    let store = world.helper(
        &["store"],
        &format!(
            "protocol=http\nhost={}\nusername=erin\npassword={PASSWORD}\n\n",
            world.server.host()
        ),
    );
    assert_eq!(store.status.code(), Some(1), "{}", stderr(&store));
    assert!(
        stderr(&store).contains("did not store"),
        "{}",
        stderr(&store)
    );
    assert_no_secret(&stderr(&store), &[PASSWORD, "key-CANARY"]);
    let get = world.latchkey(&["get", &service, "-a", "erin"], "");
    assert_eq!(stdout(&get), "key-CANARY\n");
}

#[test]
fn hostile_requests_fail_and_change_nothing() {
    let world = World::new("latchkey");
    world.store_password("alice", PASSWORD);
    let host = world.server.host();
    let canary = "hostile-CANARY-secret";
    let huge_value = "x".repeat(16 * 1024 + 1);
    let huge_request = format!(
        "protocol=http\nhost={host}\n{}",
        "wwwauth[]=x\n".repeat(6000)
    );
    let cases = [
        // A carriage return smuggles a second host (CVE-2024-52006).
        format!(
            "protocol=http\nhost=evil.example\rhost={host}\nusername=alice\npassword={canary}\n"
        ),
        format!("protocol=http\r\nhost={host}\nusername=alice\npassword={canary}\n"),
        // A line feed smuggles a second host (CVE-2020-5260).
        format!(
            "protocol=http\nhost=evil.example\nhost={host}\nusername=alice\npassword={canary}\n"
        ),
        format!("protocol=http\nhost={host}\0evil.example\nusername=alice\npassword={canary}\n"),
        format!("protocol=http\nhost={host}\nusername=alice\npassword={canary}\nno equals sign\n"),
        format!("host={host}\nusername=alice\npassword={canary}\n"),
        format!("protocol=http\nusername=alice\npassword={canary}\n"),
        format!("protocol=http\nhost=\nusername=alice\npassword={canary}\n"),
        format!("protocol=http\nhost={host}/evil\nusername=alice\npassword={canary}\n"),
        format!("protocol=http\nhost={host}\nusername=alice\npassword={canary}{huge_value}\n"),
        format!("{huge_request}username=alice\npassword={canary}\n"),
    ];
    for (n, request) in cases.iter().enumerate() {
        for action in ["get", "store", "erase"] {
            let out = world.helper(&[action], request);
            assert_eq!(
                out.status.code(),
                Some(2),
                "case {n} {action}: {}",
                stderr(&out)
            );
            assert!(out.stdout.is_empty(), "case {n} {action}: {}", stdout(&out));
            assert_no_secret(&stderr(&out), &[canary, PASSWORD]);
            assert!(
                stderr(&out).starts_with("git-credential-latchkey: "),
                "case {n}: {}",
                stderr(&out)
            );
        }
    }
    assert_eq!(
        world.entries(),
        [(world.service(), "alice".into(), "password".into())]
    );
    let get = world.latchkey(&["get", &world.service(), "-a", "alice"], "");
    assert_eq!(stdout(&get), format!("{PASSWORD}\n"));
    assert_no_secret(&world.daemon.logs(), &[canary, PASSWORD]);
}

#[test]
fn unknown_keys_and_actions_are_ignored() {
    let world = World::new("latchkey");
    world.store_password("alice", PASSWORD);
    let host = world.server.host();
    let get = world.helper(
        &["get"],
        &format!(
            "capability[]=authtype\ncapability[]=state\nprotocol=http\nwwwauth[]=Basic realm=\"a=b\"\nhost={host}\nfuture_key=value\n\nafter=the blank line\n"
        ),
    );
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(
        stdout(&get),
        format!("username=alice\npassword={PASSWORD}\n")
    );
    let other = world.helper(&["frobnicate"], &format!("protocol=http\nhost={host}\n\n"));
    assert_eq!(other.status.code(), Some(0));
    assert!(other.stdout.is_empty() && other.stderr.is_empty());
}

#[test]
fn without_a_daemon_get_fails_and_says_why() {
    let env = TestEnv::bare();
    let out = run_with_stdin(
        env.command(&bin("git-credential-latchkey")).arg("get"),
        "protocol=https\nhost=example.com\n\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("latchkeyd is not running"),
        "{}",
        stderr(&out)
    );
}

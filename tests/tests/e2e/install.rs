//! Start-at-login files: what `latchkey install` writes, that systemd accepts them, that the
//! launchd agent holds the keys it must, and that `uninstall` takes them away.

use std::path::Path;
use std::process::Command;

#[cfg(target_os = "linux")]
use latchkey_tests::{bin, TestEnv};
use latchkey_tests::{require_program, stderr, stdout};

#[cfg(target_os = "linux")]
fn latchkey(env: &TestEnv, args: &[&str]) -> std::process::Output {
    env.command(&bin("latchkey"))
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .args(args)
        .output()
        .unwrap()
}

#[cfg(target_os = "linux")]
/// Splits `install --print` output into (path, contents) pairs.
fn printed_files(text: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        match line.strip_prefix("# /") {
            Some(path) if !path.contains(' ') => files.push((format!("/{path}"), String::new())),
            _ => {
                let (_, contents) = files.last_mut().expect("output starts with a path");
                contents.push_str(line);
                contents.push('\n');
            }
        }
    }
    files
}

#[cfg(target_os = "linux")]
#[test]
fn install_writes_what_it_prints_and_systemd_accepts_it() {
    require_program("systemd-analyze", "systemd");
    let env = TestEnv::bare();
    let home = env.root();
    let printed = latchkey(&env, &["install", "--print"]);
    assert!(printed.status.success(), "{}", stderr(&printed));
    let files = printed_files(&stdout(&printed));
    let names: Vec<_> = files.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(
        names,
        [
            home.join(".config/systemd/user/latchkeyd.service")
                .display()
                .to_string(),
            home.join(".config/systemd/user/latchkeyd.socket")
                .display()
                .to_string(),
            home.join(".local/share/dbus-1/services/dev.latchkey.Latchkey1.service")
                .display()
                .to_string(),
        ]
    );
    let daemon = bin("latchkeyd").display().to_string();
    assert!(
        files[0].1.contains(&format!("ExecStart={daemon}\n")),
        "{}",
        files[0].1
    );
    assert!(
        files[2].1.contains(&format!("Exec={daemon}\n")),
        "{}",
        files[2].1
    );
    for (path, contents) in &files {
        assert!(!contents.contains('@'), "{path} keeps a placeholder");
        assert!(!Path::new(path).exists(), "--print wrote {path}");
    }

    let dry = latchkey(&env, &["install", "--dry-run"]);
    assert!(dry.status.success());
    assert!(stdout(&dry).contains("would write"), "{}", stdout(&dry));
    assert!(!Path::new(&files[0].0).exists(), "--dry-run wrote a file");

    let installed = latchkey(&env, &["install"]);
    assert!(installed.status.success(), "{}", stderr(&installed));
    for (path, contents) in &files {
        // `--print` adds one blank line after each file.
        let written = std::fs::read_to_string(path).unwrap();
        assert_eq!(format!("{written}\n"), *contents, "{path}");
    }

    let verify = Command::new("systemd-analyze")
        .args(["--user", "verify"])
        .arg(&files[0].0)
        .arg(&files[1].0)
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", &env.runtime_dir)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert_eq!(stderr(&verify), "", "systemd-analyze warned");

    let removed = latchkey(&env, &["uninstall"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    for (path, _) in &files {
        assert!(!Path::new(path).exists(), "{path} is still there");
    }
}

#[test]
fn the_launchd_agent_holds_the_keys_it_must() {
    require_program("python3", "python3");
    // plistlib is in every python3's standard library.
    let template =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../launchd/dev.latchkey.latchkeyd.plist");
    let rendered = std::fs::read_to_string(template)
        .unwrap()
        .replace("@LATCHKEYD@", "/usr/local/bin/latchkeyd")
        .replace("@SOCKET@", "/tmp/latchkey-user/latchkey.sock")
        .replace("@HOME@", "/Users/someone");
    let check = r#"
import plistlib, sys
p = plistlib.loads(sys.stdin.buffer.read())
assert p["Label"] == "dev.latchkey.latchkeyd", p["Label"]
assert p["ProgramArguments"] == ["/usr/local/bin/latchkeyd"], p["ProgramArguments"]
assert p["RunAtLoad"] is True and p["KeepAlive"] is True
listener = p["Sockets"]["Listeners"]
assert listener["SockPathName"] == "/tmp/latchkey-user/latchkey.sock"
assert listener["SockPathMode"] == 0o600
assert p["StandardOutPath"].endswith("/Library/Logs/latchkeyd.log")
assert p["StandardErrorPath"].endswith("/Library/Logs/latchkeyd.log")
assert p["HardResourceLimits"]["Core"] == 0
print("ok")
"#;
    let mut child = Command::new("python3")
        .args(["-c", check])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), rendered.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out).trim(), "ok", "{}", stderr(&out));
}

#[cfg(target_os = "linux")]
#[test]
fn doctor_explains_what_is_missing_and_what_is_fine() {
    // Nothing running, no bus: a failing report with fixes.
    let bare = TestEnv::bare();
    let out = bare.cli(&bare.socket(), &["doctor"], "");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("no session bus"), "{text}");
    assert!(text.contains("FAIL  latchkeyd does not answer"), "{text}");
    assert!(text.contains("fix: start it"), "{text}");
    assert!(text.contains("run `latchkey install`"), "{text}");

    // A keyring, a daemon on both transports, files installed: all fine.
    let env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&[]);
    let installed = env.cli(&daemon.socket, &["install"], "");
    assert!(installed.status.success(), "{}", stderr(&installed));
    let out = env.cli(&daemon.socket, &["doctor"], "");
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    for line in [
        "ok    session bus is reachable",
        "ok    a Secret Service (keyring) is on the session bus",
        "ok    the default keyring is unlocked",
        "ok    latchkeyd answers on",
        "ok    latchkeyd owns dev.latchkey.Latchkey1",
        "ok    store: secret-service",
        "ok    start-at-login files are installed",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    assert!(!text.contains("warn"), "{text}");

    // A locked keyring is reported as such.
    latchkey_tests::Keyring::lock(env.bus());
    let text = stdout(&env.cli(&daemon.socket, &["doctor"], ""));
    assert!(
        text.contains("warn  the default keyring is locked"),
        "{text}"
    );
}

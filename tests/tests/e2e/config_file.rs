//! The config file as latchkeyd meets it: anything but a small regular file that only its
//! owner can write is refused at once with a message saying what to fix, and a key latchkeyd
//! does not know is an error, not a silent no-op.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use latchkey_tests::{bin, TestEnv};

/// How long a refusal may take: a daemon that blocks on the file fails the test.
const PROMPTLY: Duration = Duration::from_secs(10);

/// Runs latchkeyd with `--config path`; its exit code and stderr once it exits, which it must
/// do within [`PROMPTLY`].
fn refused(env: &TestEnv, path: &Path) -> String {
    let child = env
        .command(&bin("latchkeyd"))
        .args(["--store", "memory", "--no-dbus", "--config"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start latchkeyd");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(PROMPTLY) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // SAFETY: kill takes a pid and a signal; the pid is our own child, not yet reaped.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            panic!(
                "latchkeyd did not exit within {PROMPTLY:?} with --config {}",
                path.display()
            );
        }
    };
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(!text.contains("latchkeyd is serving"), "{text}");
    text
}

fn write(path: &Path, text: &[u8], mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_fifo_as_config_is_refused_without_hanging() {
    let env = TestEnv::bare();
    let fifo = env.root().join("config.toml");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path and a mode.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let logs = refused(&env, &fifo);
    assert!(
        logs.contains("FIFO") && logs.contains("not a regular file"),
        "{logs}"
    );
    assert!(logs.contains(fifo.to_str().unwrap()), "{logs}");
}

#[test]
fn devices_and_folders_as_config_are_refused() {
    let env = TestEnv::bare();
    let logs = refused(&env, Path::new("/dev/zero"));
    assert!(logs.contains("/dev/zero is a device"), "{logs}");
    let logs = refused(&env, env.root());
    assert!(logs.contains("is a directory"), "{logs}");
}

#[test]
fn a_huge_config_is_refused() {
    let env = TestEnv::bare();
    let path = env.root().join("config.toml");
    let mut text = b"[store]\nbackend = \"memory\"\n".to_vec();
    text.resize(2 * 1024 * 1024, b'#');
    write(&path, &text, 0o600);
    let logs = refused(&env, &path);
    assert!(logs.contains("larger than"), "{logs}");
}

#[test]
fn unknown_keys_are_refused() {
    let env = TestEnv::bare();
    let path = env.root().join("config.toml");
    for (text, key) in [
        ("[store]\nbackend = \"memory\"\nencrypt = true\n", "encrypt"),
        (
            "socket = \"/tmp/x.sock\"\n[store]\nbackend = \"memory\"\n",
            "socket",
        ),
    ] {
        write(&path, text.as_bytes(), 0o600);
        let logs = refused(&env, &path);
        assert!(logs.contains("invalid configuration"), "{logs}");
        assert!(
            logs.contains("unknown field") && logs.contains(key),
            "{logs}"
        );
    }
}

#[test]
fn a_config_others_can_write_is_refused() {
    let env = TestEnv::bare();
    let path = env.root().join("config.toml");
    for mode in [0o664, 0o646] {
        write(&path, b"[store]\nbackend = \"memory\"\n", mode);
        let logs = refused(&env, &path);
        assert!(logs.contains(path.to_str().unwrap()), "{logs}");
        assert!(logs.contains(&format!("mode {mode:04o}")), "{logs}");
        assert!(logs.contains("chmod go-w"), "{logs}");
    }
    // Fixed as the message says, it is read.
    write(&path, b"[store]\nbackend = \"memory\"\n", 0o644);
    let daemon = env.start_daemon(&["--no-dbus", "--config", path.to_str().unwrap()]);
    assert!(
        daemon.logs().contains("memory store requested"),
        "{}",
        daemon.logs()
    );
}

//! Tests of the settings: how the file and flags combine, what is refused and how the
//! refusal reads, and the checks made before the file is read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use latchkey_store::Backend;

use super::error::{line_column, unquoted};
use super::*;

#[test]
fn flags_beat_the_file() {
    let file: FileConfig = toml::from_str(
        "[store]\nbackend = \"memory\"\n[limits]\nmax_line = 1024\n[providers.github]\nclient_id = \"x\"\n",
    )
    .unwrap();
    let cfg = Config::resolve(
        file,
        Overrides {
            max_line: Some(2048),
            socket: Some("/tmp/x.sock".into()),
            ..Overrides::default()
        },
        "/tmp".into(),
    )
    .unwrap();
    assert_eq!(cfg.backend, Backend::Memory);
    assert_eq!(cfg.limits.max_line, 2048);
    assert_eq!(cfg.socket, PathBuf::from("/tmp/x.sock"));
}

#[test]
fn bad_values_are_refused() {
    let file: FileConfig = toml::from_str("[store]\nbackend = \"floppy\"\n").unwrap();
    assert!(Config::resolve(file, Overrides::default(), "/tmp".into()).is_err());
    let tiny = Overrides {
        max_line: Some(3),
        ..Overrides::default()
    };
    assert!(Config::resolve(FileConfig::default(), tiny, "/tmp".into()).is_err());
    assert!(toml::from_str::<FileConfig>("[limits]\nmax_lines = 3\n").is_err());
    let zero: FileConfig = toml::from_str("[limits]\nwrite_timeout_secs = 0\n").unwrap();
    assert!(Config::resolve(zero, Overrides::default(), "/tmp".into()).is_err());
}

#[test]
fn the_file_store_locks_after_the_idle_time_the_file_gives() {
    let resolve = |text: &str| {
        let file: FileConfig = toml::from_str(text).unwrap();
        Config::resolve(file, Overrides::default(), "/tmp".into())
    };
    assert_eq!(resolve("").unwrap().lock_after, None);
    assert_eq!(
        resolve("[store]\nbackend = \"file\"\nlock_after_secs = 900\n")
            .unwrap()
            .lock_after,
        Some(Duration::from_secs(900))
    );
    for bad in ["0", "2592001", "9223372036854775807"] {
        let err = resolve(&format!("[store]\nlock_after_secs = {bad}\n")).unwrap_err();
        assert!(err.to_string().contains("lock_after_secs"), "{bad}: {err}");
    }
    assert!(toml::from_str::<FileConfig>("[store]\nlock_after_secs = -1\n").is_err());
    assert!(toml::from_str::<FileConfig>("[store]\nlock_after_secs = \"5\"\n").is_err());
    assert!(toml::from_str::<FileConfig>("[store]\nlock_after = 5\n").is_err());
}

#[test]
fn deadlines_come_from_the_file_and_flags() {
    let file: FileConfig =
        toml::from_str("[limits]\nrequest_timeout_secs = 3\nwrite_timeout_secs = 4\n").unwrap();
    let flags = Overrides {
        write_timeout_secs: Some(2),
        ..Overrides::default()
    };
    let limits = Config::resolve(file, flags, "/tmp".into()).unwrap().limits;
    assert_eq!(limits.request_timeout, Duration::from_secs(3));
    assert_eq!(limits.write_timeout, Duration::from_secs(2));
    let defaults = Config::resolve(FileConfig::default(), Overrides::default(), "/tmp".into())
        .unwrap()
        .limits;
    assert_eq!(defaults.request_timeout, Duration::from_secs(10));
    assert_eq!(defaults.write_timeout, Duration::from_secs(10));
}

#[test]
fn unknown_keys_are_refused_in_every_section() {
    for text in [
        "[store]\nbackend = \"memory\"\nbakend = \"memory\"\n",
        "[store]\nlock_after_sec = 60\n",
        "colour = \"blue\"\n",
        "[stores]\nbackend = \"memory\"\n",
        "[daemon]\nsockt = \"/tmp/x\"\n",
        "[oauth]\ntimeout = 3\n",
        "[providers.github]\nclient = \"x\"\n",
    ] {
        let err = toml::from_str::<FileConfig>(text).unwrap_err();
        assert!(err.message().contains("unknown"), "{text}: {err}");
    }
}

/// Parses `text` as if read from /etc/latchkey-test.toml; the error's text.
fn refusal(text: &str) -> String {
    FileConfig::parse(Path::new("/etc/latchkey-test.toml"), text)
        .unwrap_err()
        .to_string()
}

#[test]
fn unknown_sections_and_keys_name_the_file_and_line() {
    for (text, line, key) in [
        ("[provider.github]\nclient_id = \"x\"\n", 1, "provider"),
        ("# a comment\n[store]\nbacknd = \"memory\"\n", 3, "backnd"),
        (
            "[providers.github]\nclient_id = \"x\"\nscope = [\"repo\"]\n",
            3,
            "scope",
        ),
        (
            "[limits]\nmax_line = 4096\n\n[oauth]\nlogin_timeout = 5\n",
            5,
            "login_timeout",
        ),
    ] {
        let err = refusal(text);
        assert!(
            err.starts_with("invalid configuration in /etc/latchkey-test.toml, line "),
            "{err}"
        );
        assert!(
            err.contains(&format!("line {line}, column")),
            "{text}: {err}"
        );
        assert!(err.contains("unknown field") && err.contains(key), "{err}");
        // The message is one line: no excerpt of the file.
        assert!(!err.contains('\n'), "{err}");
    }
    let err = refusal("[store]\nbackend = \"memory\n");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn a_string_in_the_wrong_place_is_not_repeated() {
    let err = refusal("[providers.corp]\nclient_id = \"x\"\nscopes = \"s3cr3t \\\" quote\"\n");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("invalid type: a string"), "{err}");
    assert!(!err.contains("s3cr3t") && !err.contains("quote"), "{err}");
    let err = refusal("[providers.corp]\nclient_secret = \"s3cr3t\"\n");
    assert!(
        err.contains("client_secret") && !err.contains("s3cr3t"),
        "{err}"
    );
}

#[test]
fn positions_count_characters() {
    assert_eq!(line_column("", 0), (1, 1));
    assert_eq!(line_column("ab\ncd", 4), (2, 2));
    assert_eq!(line_column("é = 1\nx", 3), (1, 3));
    // An offset inside a character, or past the end, stays inside the text.
    assert_eq!(line_column("é", 1), (1, 1));
    assert_eq!(line_column("a\n", 99), (2, 1));
}

#[test]
fn the_readme_example_is_accepted() {
    let readme = include_str!("../../../../README.md");
    let section = &readme[readme.find("## Configuration").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    let file = FileConfig::parse(Path::new("README.md"), example).unwrap();
    assert!(file.providers.contains_key("legacy"), "{example}");
    Config::resolve(file, Overrides::default(), "/tmp".into()).unwrap();
}

#[test]
fn value_errors_name_the_file_or_the_flag() {
    let file = FileConfig::parse(Path::new("/etc/l.toml"), "[limits]\nmax_line = 3\n").unwrap();
    let err = Config::resolve(file, Overrides::default(), "/tmp".into()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/etc/l.toml: limits.max_line must be between 256 bytes and 16 MiB"
    );
    let flags = Overrides {
        idle_timeout_secs: Some(0),
        ..Overrides::default()
    };
    let err = Config::resolve(FileConfig::default(), flags, "/tmp".into()).unwrap_err();
    assert!(err.to_string().starts_with("--idle-timeout: "), "{err}");
    let file =
        FileConfig::parse(Path::new("/etc/l.toml"), "[store]\nbackend = \"floppy\"\n").unwrap();
    let err = Config::resolve(file, Overrides::default(), "/tmp".into()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/etc/l.toml: store.backend: unknown store"),
        "{err}"
    );
}

#[test]
fn unquoting_leaves_other_text_alone() {
    assert_eq!(unquoted("unknown field `x`"), "unknown field `x`");
    assert_eq!(
        unquoted("invalid type: string \"a\\\"b\", expected a sequence"),
        "invalid type: a string, expected a sequence"
    );
    assert_eq!(unquoted("string \"unterminated"), "a string");
}

// Modes, devices and FIFOs are Unix things.
#[cfg(unix)]
fn write(dir: &Path, name: &str, text: &[u8], mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

// Modes, devices and FIFOs are Unix things.
#[cfg(unix)]
#[test]
fn only_a_small_private_regular_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.toml",
        b"[store]\nbackend = \"memory\"\n",
        0o600,
    );
    let file = FileConfig::load(&good, true).unwrap();
    assert_eq!(file.store.backend.as_deref(), Some("memory"));
    assert!(FileConfig::load(&write(dir.path(), "ro.toml", b"", 0o644), true).is_ok());

    let group = write(dir.path(), "group.toml", b"", 0o664);
    let err = FileConfig::load(&group, true).unwrap_err();
    assert!(
        matches!(err, ConfigError::Writable { mode: 0o664, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("group.toml") && text.contains("0664"),
        "{text}"
    );
    assert!(text.contains("chmod go-w"), "{text}");
    let others = write(dir.path(), "others.toml", b"", 0o602);
    assert!(matches!(
        FileConfig::load(&others, true),
        Err(ConfigError::Writable { .. })
    ));

    let big = vec![b'#'; MAX_CONFIG_BYTES as usize + 1];
    let big = write(dir.path(), "big.toml", &big, 0o600);
    assert!(matches!(
        FileConfig::load(&big, true),
        Err(ConfigError::TooLarge { .. })
    ));

    let err = FileConfig::load(dir.path(), true).unwrap_err();
    assert!(err.to_string().contains("a directory"), "{err}");
    let err = FileConfig::load(Path::new("/dev/zero"), true).unwrap_err();
    assert!(err.to_string().contains("a device"), "{err}");

    let missing = dir.path().join("missing.toml");
    assert!(FileConfig::load(&missing, false).is_ok());
    assert!(matches!(
        FileConfig::load(&missing, true),
        Err(ConfigError::Read { .. })
    ));
}

// Modes, devices and FIFOs are Unix things.
#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path and a mode.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // Without O_NONBLOCK the open would wait for a writer forever.
    let err = FileConfig::load(&fifo, true).unwrap_err();
    assert!(err.to_string().contains("FIFO"), "{err}");
}

#[test]
fn the_proxy_section_is_left_to_latchkey_proxy() {
    let file: FileConfig = toml::from_str(
        "[proxy.routes.openai]\nupstream = \"https://api.openai.com\"\nservice = \"openai\"\n",
    )
    .unwrap();
    assert!(file.proxy.is_some());
    assert!(Config::resolve(file, Overrides::default(), "/tmp".into()).is_ok());
    // Other unknown sections are still refused.
    assert!(toml::from_str::<FileConfig>("[proxies]\nx = 1\n").is_err());
}

#[test]
fn the_confirm_policy_is_read_and_checked() {
    let resolve = |text: &str| {
        let file = FileConfig::parse(Path::new("/etc/l.toml"), text).unwrap();
        Config::resolve(file, Overrides::default(), "/tmp".into())
    };
    let cfg = resolve("[policy]\nconfirm = [\"bank\", \"github:*\"]\nconfirm_timeout_secs = 5\n")
        .unwrap();
    assert!(cfg.confirm.applies("bank") && cfg.confirm.applies("github:work"));
    assert_eq!(cfg.confirm.timeout(), Duration::from_secs(5));
    assert!(resolve("").unwrap().confirm.is_empty());
    let err = resolve("[policy]\nconfirm = [\"ba*nk\"]\n").unwrap_err();
    assert!(
        err.to_string().starts_with("/etc/l.toml: policy.confirm: "),
        "{err}"
    );
    for secs in ["0", "601", "9223372036854775807"] {
        let err = resolve(&format!(
            "[policy]\nconfirm = [\"bank\"]\nconfirm_timeout_secs = {secs}\n"
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/l.toml: policy.confirm_timeout_secs must be between 1 and 600",
        );
    }
}

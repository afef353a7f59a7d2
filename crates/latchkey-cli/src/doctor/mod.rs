//! `latchkey doctor`: checks what latchkey depends on, one line each, and says how to fix
//! what is wrong. It never unlocks the keyring and never starts the daemon.

#[cfg(unix)]
use std::path::Path;

use latchkey_client::blocking::Client;
use latchkey_client::Target;
use latchkey_proto::StatusParams;

use crate::cli::Cli;
#[cfg(not(windows))]
use crate::install;
use crate::output::sanitize;
use crate::Failure;

#[cfg(target_os = "linux")]
mod bus;
#[cfg(target_os = "macos")]
mod launchd;

/// What makes `auto` choose a store that keeps entries, on this platform.
#[cfg(target_os = "linux")]
const PERSISTENT_STORE_FIX: &str = "make a Secret Service available, then restart latchkeyd";
#[cfg(not(target_os = "linux"))]
const PERSISTENT_STORE_FIX: &str =
    "start latchkeyd with `--store auto` (the platform keychain), not `--store memory`";

/// How to restart a running latchkeyd after an upgrade, on this platform.
#[cfg(not(windows))]
fn restart_hint() -> String {
    install::restart_hint()
}

/// How to restart a running latchkeyd after an upgrade, on this platform.
#[cfg(windows)]
fn restart_hint() -> String {
    "stop latchkeyd.exe (Ctrl-C in its console, or sign out and in again)".to_owned()
}

/// How a check came out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Warn,
    Fail,
}

struct Report {
    failed: bool,
    /// The first failed write to stdout; nothing more is written after it.
    unwritten: Option<crate::out::StdoutError>,
}

impl Report {
    fn line(&mut self, outcome: Outcome, what: &str, fix: Option<&str>) {
        let tag = match outcome {
            Outcome::Ok => "ok  ",
            Outcome::Warn => "warn",
            Outcome::Fail => {
                self.failed = true;
                "FAIL"
            }
        };
        // Lines quote the daemon and the bus (versions, store names, errors): escaped here.
        let mut text = format!("{tag}  {}\n", sanitize(what));
        if let Some(fix) = fix {
            text.push_str(&format!("      fix: {}\n", sanitize(fix)));
        }
        if self.unwritten.is_none() {
            self.unwritten = crate::out::write(text).err();
        }
    }
}

/// The socket's folder must be this user's and closed to others.
#[cfg(unix)]
fn check_socket_folder(report: &mut Report, socket: &Path) {
    let folder = socket.parent().unwrap_or(Path::new("."));
    match latchkey_paths::check_private_dir(folder) {

        Ok(()) => report.line(
            Outcome::Ok,
            &format!("the socket folder {} is private to this user", folder.display()),
            None,
        ),
        Err(err) if err.is_missing() => report.line(
            Outcome::Warn,
            &format!("the socket folder {} does not exist yet", folder.display()),
            Some("start latchkeyd; it creates the folder"),
        ),
        Err(err) => report.line(
            Outcome::Fail,
            &format!("the socket folder cannot be trusted: {err}"),
            Some("latchkey will not talk through it: remove that folder (if it is not yours, ask an administrator) or set XDG_RUNTIME_DIR to a private folder"),
        ),
    }
}

/// How to name where the daemon is asked, in a line.
fn describe(target: &Target) -> String {
    match target {
        Target::Socket(path) => path.display().to_string(),
        Target::Pipe(name) => name.clone(),
        Target::Dbus => "the session bus".to_owned(),
        Target::Auto => "the default endpoint".to_owned(),
    }
}

/// Runs `latchkey doctor`: on Unix the daemon's socket (`--socket` or the default, never the
/// bus), on Windows its pipe.
pub fn run(cli: &Cli) -> Result<(), Failure> {
    #[cfg(windows)]
    let target = crate::target(cli)?;
    #[cfg(not(windows))]
    let target = Target::Socket(
        cli.socket
            .clone()
            .unwrap_or_else(latchkey_paths::default_socket_path),
    );
    check_all(&target).map_err(crate::failure)
}

/// Runs every check on the daemon at `target` (its socket, or its pipe on Windows); `Err` if
/// any failed.
fn check_all(target: &Target) -> anyhow::Result<()> {
    let mut report = Report {
        failed: false,
        unwritten: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    #[cfg(target_os = "linux")]
    let facts = runtime.block_on(bus::facts(&mut report));
    #[cfg(not(target_os = "linux"))]
    let _ = &runtime;

    #[cfg(unix)]
    if let Target::Socket(socket) = target {
        check_socket_folder(&mut report, socket);
    }

    let shown = describe(target);
    let mut daemon_store = None;
    match Client::connect_to(target).and_then(|mut c| {
        let version = c.version()?;
        let status = c.status(StatusParams::default())?;
        Ok((version, status))
    }) {
        Ok((version, status)) => {
            report.line(Outcome::Ok, &format!("latchkeyd answers on {shown}"), None);
            if version.version == env!("CARGO_PKG_VERSION") {
                report.line(
                    Outcome::Ok,
                    &format!("latchkeyd and latchkey are both {}", version.version),
                    None,
                );
            } else {
                report.line(
                    Outcome::Warn,
                    &format!(
                        "latchkeyd is {} but latchkey is {}",
                        sanitize(&version.version),
                        env!("CARGO_PKG_VERSION")
                    ),
                    Some(&format!(
                        "restart latchkeyd after upgrading (`{}`)",
                        restart_hint()
                    )),
                );
            }
            daemon_store = Some(status.daemon);
        }
        Err(err) => report.line(
            Outcome::Fail,
            &format!("latchkeyd does not answer on {shown} ({err})"),
            Some("start it: `latchkeyd`, or `latchkey install` to start it at login"),
        ),
    }
    #[cfg(target_os = "linux")]
    bus::daemon_on_bus(&mut report, facts.as_ref());
    if let Some(daemon) = daemon_store {
        if daemon.persistent {
            report.line(
                Outcome::Ok,
                &format!("store: {}", sanitize(&daemon.store)),
                None,
            );
        } else {
            report.line(
                Outcome::Warn,
                &format!(
                    "store: {} (entries are lost when latchkeyd stops)",
                    sanitize(&daemon.store)
                ),
                Some(PERSISTENT_STORE_FIX),
            );
        }
    }
    check_start_at_login(&mut report);
    if let Some(err) = report.unwritten {
        return Err(err.into());
    }
    if report.failed {
        anyhow::bail!("some checks failed");
    }
    Ok(())
}

/// The Run value must exist and start a daemon that exists.
#[cfg(windows)]
fn check_start_at_login(report: &mut Report) {
    use crate::run_key;
    match run_key::registered() {
        Ok(Some(command)) if std::path::Path::new(run_key::program(&command)).is_file() => report
            .line(
                Outcome::Ok,
                &format!("latchkeyd starts at logon (HKCU Run value: {command})"),
                None,
            ),
        Ok(Some(command)) => report.line(
            Outcome::Warn,
            &format!("the HKCU Run value starts {command}, which does not exist"),
            Some("run `latchkey install` again"),
        ),
        Ok(None) => report.line(
            Outcome::Warn,
            "latchkeyd does not start at logon (no HKCU Run value)",
            Some("run `latchkey install`"),
        ),
        Err(err) => report.line(
            Outcome::Warn,
            &format!("cannot read the Run value ({err:#})"),
            None,
        ),
    }
}

/// The start-at-login files must exist.
#[cfg(not(windows))]
fn check_start_at_login(report: &mut Report) {
    match install::find_daemon(None).and_then(|daemon| install::plan(&daemon)) {
        Ok(plan) => {
            let missing: Vec<String> = plan
                .files
                .iter()
                .filter(|f| !f.path.exists())
                .map(|f| f.path.display().to_string())
                .collect();
            if missing.is_empty() {
                report.line(Outcome::Ok, "start-at-login files are installed", None);
            } else {
                report.line(
                    Outcome::Warn,
                    &format!("start-at-login files are missing: {}", missing.join(", ")),
                    Some("run `latchkey install`"),
                );
            }
        }
        Err(err) => report.line(
            Outcome::Warn,
            &format!("cannot check the start-at-login files ({err:#})"),
            None,
        ),
    }
    #[cfg(target_os = "macos")]
    launchd::agent_loaded(report);
}

//! `latchkey install` / `uninstall`: the files that start latchkeyd at login on this platform,
//! with the daemon's real path, written to the user's folders (never needing root), and the
//! service manager told about them when it is running.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

#[cfg(any(target_os = "macos", all(test, unix)))]
pub(crate) mod launchd;
#[cfg(not(target_os = "macos"))]
mod systemd;

/// One file to write.
pub struct File {
    /// Where it goes.
    pub path: PathBuf,
    /// What it holds.
    pub contents: String,
}

/// What installing means here.
pub struct Plan {
    /// The files.
    pub files: Vec<File>,
    /// Commands that register the files with the service manager, after writing them.
    pub enable: Vec<Vec<String>>,
    /// Commands that unregister them, before removing them.
    pub disable: Vec<Vec<String>>,
}

/// How far to go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Print the files, change nothing.
    Print,
    /// Say what would be done, change nothing.
    DryRun,
    /// Do it.
    Apply,
}

/// The daemon's file name (`latchkeyd.exe` on Windows).
const DAEMON: &str = if cfg!(windows) {
    "latchkeyd.exe"
} else {
    "latchkeyd"
};

/// The daemon to point the files at: `--daemon`, else `latchkeyd` next to this program, else
/// on `PATH`.
pub fn find_daemon(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return std::path::absolute(path).context("cannot resolve the daemon path");
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(DAEMON)))
        .filter(|path| path.is_file());
    if let Some(path) = beside {
        return Ok(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(DAEMON))
            .find(|path| path.is_file())
    });
    on_path.context("cannot find latchkeyd next to latchkey or on PATH; pass --daemon PATH")
}

/// The real paths the templates name, found once for this user.
struct Paths<'a> {
    daemon: &'a Path,
    socket: PathBuf,
    home: PathBuf,
}

/// `template` with `@LATCHKEYD@`, `@SOCKET@` and `@HOME@` replaced, each value passed through
/// `escape` first (plists are XML; unit files take paths as they are).
fn render(template: &str, paths: &Paths<'_>, escape: fn(&str) -> String) -> String {
    let text = |path: &Path| escape(&path.display().to_string());
    template
        .replace("@LATCHKEYD@", &text(paths.daemon))
        .replace("@SOCKET@", &text(&paths.socket))
        .replace("@HOME@", &text(&paths.home))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The plan for this platform.
pub fn plan(daemon: &Path) -> Result<Plan> {
    let dirs = directories::BaseDirs::new().context("cannot find your home folder")?;
    let paths = Paths {
        daemon,
        socket: latchkey_paths::default_socket_path(),
        home: dirs.home_dir().to_owned(),
    };
    #[cfg(target_os = "macos")]
    return Ok(launchd::plan(&paths, launchd::current_uid()));
    #[cfg(not(target_os = "macos"))]
    Ok(systemd::plan(&dirs, &paths))
}

/// How to restart a running latchkeyd after an upgrade, for this platform's service manager.
pub fn restart_hint() -> String {
    #[cfg(target_os = "macos")]
    return launchd::restart_command(launchd::current_uid());
    #[cfg(not(target_os = "macos"))]
    systemd::RESTART.to_owned()
}

/// Whether the service manager these commands talk to is running for this user.
fn manager_running() -> bool {
    let probe: &[&str] = if cfg!(target_os = "macos") {
        &["launchctl", "version"]
    } else {
        &["systemctl", "--user", "show-environment"]
    };
    Command::new(probe[0])
        .args(&probe[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn run_all(commands: &[Vec<String>], mode: Mode) -> Result<()> {
    for command in commands {
        let shown = command.join(" ");
        if mode == Mode::DryRun {
            crate::out::line(format!("would run: {shown}"))?;
            continue;
        }
        let status = Command::new(&command[0])
            .args(&command[1..])
            .status()
            .with_context(|| format!("cannot run {shown}"))?;
        if !status.success() {
            bail!("`{shown}` failed ({status})");
        }
        crate::out::line(format!("ran: {shown}"))?;
    }
    Ok(())
}

/// Writes the files and registers them.
pub fn install(plan: &Plan, mode: Mode) -> Result<()> {
    if mode == Mode::Print {
        for file in &plan.files {
            crate::out::line(format!("# {}", file.path.display()))?;
            crate::out::write(&file.contents)?;
            crate::out::line("")?;
        }
        return Ok(());
    }
    for file in &plan.files {
        if mode == Mode::DryRun {
            crate::out::line(format!("would write {}", file.path.display()))?;
            continue;
        }
        if let Some(dir) = file.path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&file.path, &file.contents)
            .with_context(|| format!("cannot write {}", file.path.display()))?;
        crate::out::line(format!("wrote {}", file.path.display()))?;
    }
    if manager_running() {
        run_all(&plan.enable, mode)
    } else {
        crate::out::line("the service manager is not running for this user; once it is, run:")?;
        for command in &plan.enable {
            crate::out::line(format!("  {}", command.join(" ")))?;
        }
        Ok(())
    }
}

/// Unregisters and removes the files.
pub fn uninstall(plan: &Plan, mode: Mode) -> Result<()> {
    if manager_running() {
        run_all(&plan.disable, mode)?;
    }
    for file in &plan.files {
        if mode == Mode::DryRun {
            crate::out::line(format!("would remove {}", file.path.display()))?;
            continue;
        }
        match std::fs::remove_file(&file.path) {
            Ok(()) => crate::out::line(format!("removed {}", file.path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove {}", file.path.display()))
            }
        }
    }
    Ok(())
}

/// Runs `latchkey install`: `--print` shows the files, `--dry-run` says what would be done.
pub fn run(print: bool, dry_run: bool, daemon: Option<&Path>) -> Result<(), crate::Failure> {
    use crate::failure;
    let daemon = find_daemon(daemon).map_err(crate::usage)?;
    let mode = match (print, dry_run) {
        (true, _) => Mode::Print,
        (_, true) => Mode::DryRun,
        _ => Mode::Apply,
    };
    #[cfg(windows)]
    crate::run_key::install(&daemon, mode).map_err(failure)?;
    #[cfg(not(windows))]
    install(&plan(&daemon).map_err(failure)?, mode).map_err(failure)?;
    Ok(())
}

/// Runs `latchkey uninstall`.
pub fn run_uninstall(dry_run: bool) -> Result<(), crate::Failure> {
    use crate::failure;
    let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
    #[cfg(windows)]
    crate::run_key::uninstall(mode).map_err(failure)?;
    #[cfg(not(windows))]
    uninstall(&plan(Path::new("latchkeyd")).map_err(failure)?, mode).map_err(failure)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each template's comments: `#` lines, and the text inside `<!-- -->`.
    fn comments(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("<!--") {
            let end = rest[start..].find("-->").map_or(rest.len(), |e| start + e);
            found.push(rest[start..end].to_owned());
            rest = &rest[end..];
        }
        found.extend(
            text.lines()
                .filter(|line| line.trim_start().starts_with('#'))
                .map(str::to_owned),
        );
        found
    }

    #[test]
    fn comments_never_show_the_paths_filled_in() {
        let paths = Paths {
            daemon: Path::new("/build/machine/target/debug/latchkeyd"),
            socket: PathBuf::from("/build/machine/run/latchkey.sock"),
            home: PathBuf::from("/build/machine/home"),
        };
        for template in [
            include_str!("../../../systemd/latchkeyd.service"),
            include_str!("../../../systemd/latchkeyd.socket"),
            include_str!("../../../dist/dev.latchkey.Latchkey1.service"),
            include_str!("../../../launchd/dev.latchkey.latchkeyd.plist"),
        ] {
            let rendered = render(template, &paths, |s| s.to_owned());
            assert!(
                rendered.contains("/build/machine/") || !template.contains("@LATCHKEYD@"),
                "{template}"
            );
            for comment in comments(&rendered) {
                assert!(!comment.contains("/build/"), "{comment}");
                assert!(!comment.contains('@'), "{comment}");
            }
        }
    }
}

//! `latchkey install` / `uninstall`: the files that start latchkeyd at login on this platform,
//! with the daemon's real path, written to the user's folders (never needing root), and the
//! service manager told about them when it is running.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const SYSTEMD_SERVICE: &str = include_str!("../../../systemd/latchkeyd.service");
const SYSTEMD_SOCKET: &str = include_str!("../../../systemd/latchkeyd.socket");
const DBUS_SERVICE: &str = include_str!("../../../dist/dev.latchkey.Latchkey1.service");
#[cfg(target_os = "macos")]
const LAUNCHD_PLIST: &str = include_str!("../../../launchd/dev.latchkey.latchkeyd.plist");

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

fn render(template: &str, daemon: &Path) -> String {
    let home = directories::BaseDirs::new()
        .map(|d| d.home_dir().display().to_string())
        .unwrap_or_default();
    template
        .replace("@LATCHKEYD@", &daemon.display().to_string())
        .replace(
            "@SOCKET@",
            &latchkey_paths::default_socket_path().display().to_string(),
        )
        .replace("@HOME@", &home)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The plan for this platform.
pub fn plan(daemon: &Path) -> Result<Plan> {
    let dirs = directories::BaseDirs::new().context("cannot find your home folder")?;
    #[cfg(target_os = "macos")]
    {
        let path = dirs
            .home_dir()
            .join("Library/LaunchAgents/dev.latchkey.latchkeyd.plist");
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let target = format!("gui/{uid}");
        let shown = path.display().to_string();
        return Ok(Plan {
            files: vec![File {
                path,
                contents: render(LAUNCHD_PLIST, daemon),
            }],
            enable: vec![strings(&["launchctl", "bootstrap", &target, &shown])],
            disable: vec![strings(&["launchctl", "bootout", &target, &shown])],
        });
    }
    let units = dirs.config_dir().join("systemd/user");
    Ok(Plan {
        files: vec![
            File {
                path: units.join("latchkeyd.service"),
                contents: render(SYSTEMD_SERVICE, daemon),
            },
            File {
                path: units.join("latchkeyd.socket"),
                contents: render(SYSTEMD_SOCKET, daemon),
            },
            File {
                path: dirs
                    .data_dir()
                    .join("dbus-1/services/dev.latchkey.Latchkey1.service"),
                contents: render(DBUS_SERVICE, daemon),
            },
        ],
        enable: vec![
            strings(&["systemctl", "--user", "daemon-reload"]),
            strings(&[
                "systemctl",
                "--user",
                "enable",
                "--now",
                "latchkeyd.socket",
                "latchkeyd.service",
            ]),
        ],
        disable: vec![strings(&[
            "systemctl",
            "--user",
            "disable",
            "--now",
            "latchkeyd.service",
            "latchkeyd.socket",
        ])],
    })
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
            println!("would run: {shown}");
            continue;
        }
        let status = Command::new(&command[0])
            .args(&command[1..])
            .status()
            .with_context(|| format!("cannot run {shown}"))?;
        if !status.success() {
            bail!("`{shown}` failed ({status})");
        }
        println!("ran: {shown}");
    }
    Ok(())
}

/// Writes the files and registers them.
pub fn install(plan: &Plan, mode: Mode) -> Result<()> {
    if mode == Mode::Print {
        for file in &plan.files {
            println!("# {}", file.path.display());
            print!("{}", file.contents);
            println!();
        }
        return Ok(());
    }
    for file in &plan.files {
        if mode == Mode::DryRun {
            println!("would write {}", file.path.display());
            continue;
        }
        if let Some(dir) = file.path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&file.path, &file.contents)
            .with_context(|| format!("cannot write {}", file.path.display()))?;
        println!("wrote {}", file.path.display());
    }
    if manager_running() {
        run_all(&plan.enable, mode)
    } else {
        println!("the service manager is not running for this user; once it is, run:");
        for command in &plan.enable {
            println!("  {}", command.join(" "));
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
            println!("would remove {}", file.path.display());
            continue;
        }
        match std::fs::remove_file(&file.path) {
            Ok(()) => println!("removed {}", file.path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove {}", file.path.display()))
            }
        }
    }
    Ok(())
}

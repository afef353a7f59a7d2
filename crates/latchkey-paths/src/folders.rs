//! The per-user folders for latchkey's configuration, data and logs, from the platform's
//! conventions (through `directories`).
//!
//! | platform | config | data | logs |
//! |---|---|---|---|
//! | Linux | `~/.config/latchkey` | `~/.local/share/latchkey` | `~/.local/state/latchkey` |
//! | macOS | `~/Library/Application Support/dev.latchkey.latchkey` | the same | `~/Library/Logs/dev.latchkey.latchkey` |
//! | Windows | `%APPDATA%\latchkey\latchkey\config` | `%LOCALAPPDATA%\latchkey\latchkey\data` | `%LOCALAPPDATA%\latchkey\latchkey\logs` |
//!
//! On Windows the data stays in the local (not roaming) profile: it describes items in this
//! machine's Credential Manager, which do not roam with it.

use std::path::PathBuf;

/// Where this user's latchkey files live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folders {
    /// `config.toml`.
    pub config: PathBuf,
    /// The store's index and other state that must survive restarts.
    pub data: PathBuf,
    /// Log files, where the platform has no log service of its own for them.
    pub logs: PathBuf,
}

impl Folders {
    /// This user's folders, or `None` when the system knows no home folder for the user.
    pub fn of_current_user() -> Option<Self> {
        let dirs = directories::ProjectDirs::from("dev", "latchkey", "latchkey")?;
        Some(Self {
            config: dirs.config_dir().to_owned(),
            data: data_dir(&dirs),
            logs: logs_dir(&dirs)?,
        })
    }
}

#[cfg(windows)]
fn data_dir(dirs: &directories::ProjectDirs) -> PathBuf {
    dirs.data_local_dir().to_owned()
}

#[cfg(not(windows))]
fn data_dir(dirs: &directories::ProjectDirs) -> PathBuf {
    dirs.data_dir().to_owned()
}

#[cfg(windows)]
fn logs_dir(dirs: &directories::ProjectDirs) -> Option<PathBuf> {
    Some(dirs.data_local_dir().with_file_name("logs"))
}

#[cfg(target_os = "macos")]
fn logs_dir(dirs: &directories::ProjectDirs) -> Option<PathBuf> {
    let base = directories::BaseDirs::new()?;
    let name = dirs.project_path();
    Some(base.home_dir().join("Library/Logs").join(name))
}

#[cfg(all(not(windows), not(target_os = "macos")))]
fn logs_dir(dirs: &directories::ProjectDirs) -> Option<PathBuf> {
    Some(
        dirs.state_dir()
            .map_or_else(|| dirs.data_dir().join("logs"), ToOwned::to_owned),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_folder_is_latchkeys_own_and_absolute() {
        let folders = Folders::of_current_user().expect("a home folder");
        for dir in [&folders.config, &folders.data, &folders.logs] {
            assert!(dir.is_absolute(), "{}", dir.display());
            assert!(
                dir.components()
                    .any(|c| c.as_os_str().to_string_lossy().contains("latchkey")),
                "{}",
                dir.display()
            );
        }
        assert_ne!(folders.config, folders.logs);
        assert_ne!(folders.data, folders.logs);
    }
}

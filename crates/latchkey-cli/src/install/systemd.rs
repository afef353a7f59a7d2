//! Start at login with systemd's user manager: a socket unit, its service, and the D-Bus
//! activation file that points at the same service.

use directories::BaseDirs;

use super::{render, strings, File, Paths, Plan};

const SERVICE: &str = include_str!("../../../../systemd/latchkeyd.service");
const SOCKET: &str = include_str!("../../../../systemd/latchkeyd.socket");
const DBUS_SERVICE: &str = include_str!("../../../../dist/dev.latchkey.Latchkey1.service");

/// Restarts the user service after an upgrade.
pub(super) const RESTART: &str = "systemctl --user restart latchkeyd";

/// Unit files take paths as they are.
fn verbatim(text: &str) -> String {
    text.to_owned()
}

/// The units under the user's systemd folder and the D-Bus service file.
pub(super) fn plan(dirs: &BaseDirs, paths: &Paths<'_>) -> Plan {
    let units = dirs.config_dir().join("systemd/user");
    Plan {
        files: vec![
            File {
                path: units.join("latchkeyd.service"),
                contents: render(SERVICE, paths, verbatim),
            },
            File {
                path: units.join("latchkeyd.socket"),
                contents: render(SOCKET, paths, verbatim),
            },
            File {
                path: dirs
                    .data_dir()
                    .join("dbus-1/services/dev.latchkey.Latchkey1.service"),
                contents: render(DBUS_SERVICE, paths, verbatim),
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
    }
}

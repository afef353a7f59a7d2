//! `latchkey doctor`: checks what latchkey depends on, one line each, and says how to fix
//! what is wrong. It never unlocks the keyring and never starts the daemon.

use std::path::Path;

use latchkey_client::blocking::Client;
use latchkey_proto::StatusParams;

use crate::install;
use crate::output::sanitize;

/// How a check came out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Warn,
    Fail,
}

struct Report {
    failed: bool,
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
        println!("{tag}  {}", sanitize(what));
        if let Some(fix) = fix {
            println!("      fix: {}", sanitize(fix));
        }
    }
}

/// What the session bus says about the names latchkey cares about.
struct BusFacts {
    secret_service: bool,
    keyring_locked: Option<bool>,
    daemon_on_bus: bool,
    /// The uid the owner of the daemon's name runs as.
    daemon_owner_uid: Option<u32>,
    daemon_activatable: bool,
}

async fn bus_facts() -> zbus::Result<BusFacts> {
    let connection = zbus::Connection::session().await?;
    let dbus = zbus::fdo::DBusProxy::new(&connection).await?;
    let has = |name: &'static str| {
        let dbus = dbus.clone();
        async move {
            dbus.name_has_owner(zbus::names::BusName::try_from(name)?)
                .await
                .map_err(zbus::Error::from)
        }
    };
    let activatable = dbus.list_activatable_names().await.unwrap_or_default();
    let activatable = |name: &str| activatable.iter().any(|n| n.as_str() == name);
    let secret_service =
        has("org.freedesktop.secrets").await? || activatable("org.freedesktop.secrets");
    let keyring_locked = if secret_service {
        keyring_locked(&connection).await.ok()
    } else {
        None
    };
    let daemon_on_bus = has("dev.latchkey.Latchkey1").await?;
    let daemon_owner_uid = if daemon_on_bus {
        let name = zbus::names::BusName::try_from("dev.latchkey.Latchkey1")?;
        dbus.get_connection_unix_user(name).await.ok()
    } else {
        None
    };
    Ok(BusFacts {
        secret_service,
        keyring_locked,
        daemon_on_bus,
        daemon_owner_uid,
        daemon_activatable: activatable("dev.latchkey.Latchkey1"),
    })
}

/// The `Locked` property of the default collection.
async fn keyring_locked(connection: &zbus::Connection) -> zbus::Result<bool> {
    let reply = connection
        .call_method(
            Some("org.freedesktop.secrets"),
            "/org/freedesktop/secrets",
            Some("org.freedesktop.Secret.Service"),
            "ReadAlias",
            &("default",),
        )
        .await?;
    let path: zbus::zvariant::OwnedObjectPath = reply.body().deserialize()?;
    let reply = connection
        .call_method(
            Some("org.freedesktop.secrets"),
            path.as_str(),
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &("org.freedesktop.Secret.Collection", "Locked"),
        )
        .await?;
    let value: zbus::zvariant::OwnedValue = reply.body().deserialize()?;
    bool::try_from(value).map_err(zbus::Error::from)
}

/// Runs every check; `Err` if any failed.
pub fn run(socket: &Path) -> anyhow::Result<()> {
    let mut report = Report { failed: false };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let facts = runtime.block_on(bus_facts());
    match &facts {
        Ok(_) => report.line(Outcome::Ok, "session bus is reachable", None),
        Err(err) => report.line(
            Outcome::Warn,
            &format!("no session bus ({err})"),
            Some("log in to a desktop session, or run under `dbus-run-session`; without it latchkey keeps secrets in memory only"),
        ),
    }
    if let Ok(facts) = &facts {
        if facts.secret_service {
            report.line(
                Outcome::Ok,
                "a Secret Service (keyring) is on the session bus",
                None,
            );
            match facts.keyring_locked {
                Some(false) => report.line(Outcome::Ok, "the default keyring is unlocked", None),
                Some(true) => report.line(
                    Outcome::Warn,
                    "the default keyring is locked: `get` answers `locked` until it is unlocked",
                    Some("unlock it (Seahorse, or log in again); latchkey never prompts"),
                ),
                None => report.line(
                    Outcome::Warn,
                    "cannot tell whether the keyring is locked",
                    None,
                ),
            }
        } else {
            report.line(
                Outcome::Warn,
                "no Secret Service on the session bus: secrets would be kept in memory only",
                Some("install and start gnome-keyring (`apt install gnome-keyring`) or KeePassXC's Secret Service"),
            );
        }
    }

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

    let mut daemon_store = None;
    match Client::connect(socket).and_then(|mut c| {
        let version = c.version()?;
        let status = c.status(StatusParams::default())?;
        Ok((version, status))
    }) {
        Ok((version, status)) => {
            report.line(
                Outcome::Ok,
                &format!("latchkeyd answers on {}", socket.display()),
                None,
            );
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
                    Some(
                        "restart latchkeyd after upgrading (`systemctl --user restart latchkeyd`)",
                    ),
                );
            }
            daemon_store = Some(status.daemon);
        }
        Err(err) => report.line(
            Outcome::Fail,
            &format!("latchkeyd does not answer on {} ({err})", socket.display()),
            Some("start it: `latchkeyd`, or `latchkey install` to start it at login"),
        ),
    }
    if let Ok(facts) = &facts {
        if let Some(uid) = facts
            .daemon_owner_uid
            .filter(|u| !latchkey_paths::is_own_uid(*u))
        {
            report.line(
                Outcome::Fail,
                &format!("dev.latchkey.Latchkey1 is owned by a process of {}, not of this user", latchkey_paths::User(uid)),
                Some("latchkey refuses to use it; find that process with `busctl --user status dev.latchkey.Latchkey1`"),
            );
        } else if facts.daemon_on_bus {
            report.line(
                Outcome::Ok,
                "latchkeyd owns dev.latchkey.Latchkey1 on the session bus",
                None,
            );
        } else if facts.daemon_activatable {
            report.line(
                Outcome::Ok,
                "dev.latchkey.Latchkey1 is activatable: the first D-Bus call starts latchkeyd",
                None,
            );
        } else {
            report.line(
                Outcome::Warn,
                "latchkeyd is not on the session bus",
                Some("`latchkey install` adds D-Bus activation; a daemon started with --no-dbus is not on the bus"),
            );
        }
    }
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
                Some("make a Secret Service available, then restart latchkeyd"),
            );
        }
    }

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
    if report.failed {
        anyhow::bail!("some checks failed");
    }
    Ok(())
}

//! The session bus's part of `latchkey doctor` (Linux): is the bus there, is a Secret Service
//! on it and unlocked, and who owns latchkeyd's name.

use super::{Outcome, Report};

/// What the session bus says about the names latchkey cares about.
pub(super) struct BusFacts {
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

/// Reports the bus and the keyring; what the bus said, for [`daemon_on_bus`].
pub(super) async fn facts(report: &mut Report) -> zbus::Result<BusFacts> {
    let facts = bus_facts().await;
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
    facts
}

/// Reports who owns latchkeyd's name on the bus (nothing without a bus).
pub(super) fn daemon_on_bus(report: &mut Report, facts: Result<&BusFacts, &zbus::Error>) {
    if let Ok(facts) = facts {
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
}

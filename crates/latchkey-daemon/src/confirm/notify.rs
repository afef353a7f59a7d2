//! Asking through the desktop's notification server: a client of `org.freedesktop.Notifications`
//! on the session bus (the Desktop Notifications Specification, 1.2).
//!
//! The session bus is connected to when the first prompt is needed, not at start, so a daemon
//! run with `--no-dbus` (or started before the desktop) still asks; a connection that fails is
//! dropped and made again at the next prompt. For each prompt the signals are subscribed to
//! before `Notify` is called, so an answer given at once is not missed, and only signals from
//! the connection that answered `Notify` count: another program on the bus cannot answer for
//! the user by sending an `ActionInvoked` of its own.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use zbus::message::Type;
use zbus::names::OwnedUniqueName;
use zbus::zvariant::Value;
use zbus::{Connection, MatchRule, MessageStream};

use super::Verdict;

const NAME: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";
const INTERFACE: &str = "org.freedesktop.Notifications";

/// How long `CloseNotification` may take after a prompt timed out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// The notification's actions: keys and labels.
const ACTIONS: [&str; 4] = ["allow", "Allow", "deny", "Deny"];
/// `NotificationClosed` reason: the notification expired.
const CLOSED_EXPIRED: u32 = 1;

/// Shows prompts as desktop notifications.
pub struct Notifier {
    /// The session bus, once connected.
    connection: tokio::sync::Mutex<Option<Connection>>,
}

impl Notifier {
    /// A notifier that connects when first asked.
    pub fn new() -> Self {
        Self {
            connection: tokio::sync::Mutex::new(None),
        }
    }

    async fn connection(&self) -> Result<Connection, Verdict> {
        let mut held = self.connection.lock().await;
        if let Some(connection) = held.as_ref() {
            return Ok(connection.clone());
        }
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
            return Err(Verdict::NoServer(
                "no session bus (DBUS_SESSION_BUS_ADDRESS is not set)".to_owned(),
            ));
        }
        let connection = Connection::session().await.map_err(|err| {
            tracing::debug!(error = %err, "cannot connect to the session bus for a prompt");
            Verdict::NoServer("cannot connect to the session bus".to_owned())
        })?;
        *held = Some(connection.clone());
        Ok(connection)
    }

    async fn forget_connection(&self) {
        *self.connection.lock().await = None;
    }

    /// Shows a notification with `summary` and `body` and Allow and Deny, and waits up to
    /// `timeout` for the answer (closing the notification when none came).
    pub async fn ask(&self, summary: &str, body: &str, timeout: Duration) -> Verdict {
        let deadline = Instant::now() + timeout;
        let connection = match tokio::time::timeout_at(deadline, self.connection()).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(verdict)) => return verdict,
            Err(_) => {
                return Verdict::NoServer("the session bus did not answer".to_owned());
            }
        };
        match show(&connection, summary, body, timeout, deadline).await {
            Ok(verdict) => verdict,
            Err(Shown::NoServer) => Verdict::NoServer(format!(
                "no notification server ({NAME} is not on the session bus)"
            )),
            Err(Shown::Refused) => {
                Verdict::Failed("the notification server refused to show it".to_owned())
            }
            Err(Shown::Bus(err)) => {
                tracing::debug!(error = %err, "the session bus failed during a prompt");
                self.forget_connection().await;
                Verdict::Failed("the session bus failed".to_owned())
            }
            Err(Shown::Ended) => {
                self.forget_connection().await;
                Verdict::Failed("the session bus connection ended".to_owned())
            }
            Err(Shown::TimedOut(Some(id))) => {
                close(&connection, id).await;
                Verdict::TimedOut
            }
            // Timed out before the server gave the notification an id: nothing to close.
            Err(Shown::TimedOut(None)) => Verdict::TimedOut,
        }
    }
}

/// Why a prompt did not get an answer.
enum Shown {
    /// Nobody owns the name.
    NoServer,
    /// The server answered `Notify` with an error.
    Refused,
    /// The bus failed.
    Bus(zbus::Error),
    /// The signal stream ended (the connection closed).
    Ended,
    /// No answer in time (to notification `id`, if the server had given it one).
    TimedOut(Option<u32>),
}

/// Shows the notification and waits for its answer until `deadline`.
async fn show(
    connection: &Connection,
    summary: &str,
    body: &str,
    timeout: Duration,
    deadline: Instant,
) -> Result<Verdict, Shown> {
    let (mut signals, id, server) =
        tokio::time::timeout_at(deadline, notify(connection, summary, body, timeout))
            .await
            .map_err(|_| Shown::TimedOut(None))??;
    let wait = async {
        while let Some(message) = signals.next().await {
            let Ok(message) = message else { continue };
            let header = message.header();
            if header.sender() != Some(&server) {
                continue;
            }
            let verdict = match header.member().map(|m| m.as_str()) {
                Some("ActionInvoked") => match message.body().deserialize::<(u32, String)>() {
                    Ok((nid, action)) if nid == id => match action.as_str() {
                        "allow" => Verdict::Allowed,
                        "deny" => Verdict::Denied,
                        _ => Verdict::Dismissed,
                    },
                    _ => continue,
                },
                Some("NotificationClosed") => match message.body().deserialize::<(u32, u32)>() {
                    Ok((nid, CLOSED_EXPIRED)) if nid == id => Verdict::TimedOut,
                    Ok((nid, _)) if nid == id => Verdict::Dismissed,
                    _ => continue,
                },
                _ => continue,
            };
            return Ok(verdict);
        }
        Err(Shown::Ended)
    };
    tokio::time::timeout_at(deadline, wait)
        .await
        .unwrap_or(Err(Shown::TimedOut(Some(id))))
}

/// Subscribes to the server's signals, then calls `Notify`: the signal stream, the
/// notification's id and the unique name of the server that gave it.
async fn notify(
    connection: &Connection,
    summary: &str,
    body: &str,
    timeout: Duration,
) -> Result<(MessageStream, u32, OwnedUniqueName), Shown> {
    // Subscribed before `Notify`: an answer given at once is queued, not missed.
    let rule = MatchRule::builder()
        .msg_type(Type::Signal)
        .interface(INTERFACE)
        .and_then(|b| b.path(PATH))
        .map_err(Shown::Bus)?
        .build();
    let signals = MessageStream::for_match_rule(rule, connection, Some(64))
        .await
        .map_err(Shown::Bus)?;
    let mut hints: HashMap<&str, Value<'_>> = HashMap::new();
    // Critical: servers keep it on screen until it is answered or closed (by the timeout).
    hints.insert("urgency", Value::U8(2));
    let expire_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let reply = connection
        .call_method(
            Some(NAME),
            PATH,
            Some(INTERFACE),
            "Notify",
            &(
                "latchkey",
                0u32,
                "dialog-password",
                summary,
                body,
                &ACTIONS[..],
                hints,
                expire_ms,
            ),
        )
        .await
        .map_err(|err| match err {
            zbus::Error::MethodError(name, _, _)
                if matches!(
                    name.as_str(),
                    "org.freedesktop.DBus.Error.ServiceUnknown"
                        | "org.freedesktop.DBus.Error.NameHasNoOwner"
                ) =>
            {
                Shown::NoServer
            }
            zbus::Error::MethodError(..) => Shown::Refused,
            other => Shown::Bus(other),
        })?;
    let id: u32 = reply.body().deserialize().map_err(|_| Shown::Refused)?;
    let server = reply
        .header()
        .sender()
        .map(|s| OwnedUniqueName::from(s.to_owned()))
        .ok_or(Shown::Refused)?;
    Ok((signals, id, server))
}

/// Closes notification `id` (a prompt nobody answered).
async fn close(connection: &Connection, id: u32) {
    let args = (id,);
    let closing = connection.call_method(
        Some(NAME),
        PATH,
        Some(INTERFACE),
        "CloseNotification",
        &args,
    );
    match tokio::time::timeout(CLOSE_TIMEOUT, closing).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::debug!(error = %err, "CloseNotification failed"),
        Err(_) => tracing::debug!("CloseNotification did not answer"),
    }
}

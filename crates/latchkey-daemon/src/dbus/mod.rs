//! The D-Bus transport: `dev.latchkey.Latchkey1` at `/dev/latchkey/Latchkey1` on the session bus.
//!
//! A thin adapter: each method builds the same typed request the socket would and runs it
//! through the shared [`Handler`], so both transports share one policy. The object is served
//! before the name is requested, so a client activated by the name never finds the object
//! missing. Changes announced by the service become `Changed` signals.
//!
//! [`start`] never holds up the socket: a session bus that accepts the connection but never
//! answers is tried again in the background, with a growing delay, until it answers.

mod error;
mod interface;

use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use error::{Failure, LatchkeyError};
pub use interface::Latchkey;

use crate::handler::Handler;

/// The well-known bus name.
pub const BUS_NAME: &str = "dev.latchkey.Latchkey1";
/// The object path.
pub const OBJECT_PATH: &str = "/dev/latchkey/Latchkey1";
/// The interface name.
pub const INTERFACE: &str = "dev.latchkey.Latchkey1";

/// Why the D-Bus transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    /// No session bus to connect to.
    #[error("no session bus: {0}")]
    NoBus(zbus::Error),
    /// Another process owns the name.
    #[error("another process already owns {BUS_NAME} on the session bus")]
    NameTaken,
    /// Anything else.
    #[error("D-Bus: {0}")]
    Other(zbus::Error),
}

/// How long one attempt to reach the bus and take the name may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest pause between two attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// How the background start of the D-Bus transport came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusState {
    /// Still trying (the bus has not answered yet).
    Trying,
    /// Serving on the bus.
    Serving,
    /// Not serving on the bus: there is none, or the start failed for good.
    Off,
}

/// Starts the D-Bus transport in the background and returns its state as it changes. A bus
/// that does not answer is tried again after 1 s, then 2 s, 4 s... up to a minute. No bus at
/// all turns the transport off. A name owned by another process is fatal: the task cancels
/// `shutdown` and its result says why.
pub fn start(
    handler: Handler,
    shutdown: CancellationToken,
) -> (
    tokio::sync::watch::Receiver<BusState>,
    tokio::task::JoinHandle<Result<(), DbusError>>,
) {
    let (state, watch) = tokio::sync::watch::channel(BusState::Trying);
    let task = tokio::spawn(async move {
        let mut delay = Duration::from_secs(1);
        loop {
            let attempt =
                tokio::time::timeout(ATTEMPT_TIMEOUT, serve(handler.clone(), shutdown.clone()));
            let outcome = tokio::select! {
                outcome = attempt => outcome,
                () = shutdown.cancelled() => return Ok(()),
            };
            match outcome {
                Ok(Ok(connection)) => {
                    info!(name = BUS_NAME, "serving on the session bus");
                    state.send_replace(BusState::Serving);
                    shutdown.cancelled().await;
                    drop(connection);
                    return Ok(());
                }
                Ok(Err(DbusError::NoBus(err))) => {
                    info!(error = %err, "no session bus: serving the socket only");
                    state.send_replace(BusState::Off);
                    return Ok(());
                }
                Ok(Err(fatal @ DbusError::NameTaken)) => {
                    state.send_replace(BusState::Off);
                    shutdown.cancel();
                    return Err(fatal);
                }
                Ok(Err(err)) => {
                    warn!(error = %err, retry_in = ?delay, "D-Bus start failed; trying again");
                }
                Err(_) => {
                    warn!(retry_in = ?delay, "the session bus does not answer; serving the socket and trying the bus again");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
    });
    (watch, task)
}

/// Connects to the session bus, serves the object, takes the name, and keeps forwarding
/// changes as signals. Cancels `shutdown` if the bus goes away or the name is lost.
pub async fn serve(
    handler: Handler,
    shutdown: CancellationToken,
) -> Result<zbus::Connection, DbusError> {
    let changes = handler.service().subscribe();
    // The object first, then the name: a caller that activated us by name finds it there.
    // Served through the builder, whose `build` returns only once the object server listens
    // for calls. (Adding it to a built connection listens a bus round trip later: a call
    // queued for us by activation could arrive in between, be dropped, and its caller wait
    // out its timeout.)
    let connection = zbus::connection::Builder::session()
        .map_err(DbusError::NoBus)?
        .serve_at(OBJECT_PATH, Latchkey::new(handler))
        .map_err(DbusError::Other)?
        .build()
        .await
        .map_err(DbusError::NoBus)?;
    // Watch for the bus going away (or the name being taken) from before the name is ours,
    // so no loss can slip between taking the name and watching.
    let bus_watch = bus_watch(&connection).await.map_err(DbusError::Other)?;
    connection
        .request_name_with_flags(BUS_NAME, zbus::fdo::RequestNameFlags::DoNotQueue.into())
        .await
        .map_err(|e| match e {
            zbus::Error::NameTaken => DbusError::NameTaken,
            other => DbusError::Other(other),
        })?;
    tokio::spawn(forward_changes(
        connection.clone(),
        changes,
        shutdown.clone(),
    ));
    tokio::spawn(watch_bus(bus_watch, shutdown));
    Ok(connection)
}

async fn forward_changes(
    connection: zbus::Connection,
    mut changes: tokio::sync::broadcast::Receiver<latchkey_core::Change>,
    shutdown: CancellationToken,
) {
    let emitter = match zbus::object_server::SignalEmitter::new(&connection, OBJECT_PATH) {
        Ok(emitter) => emitter,
        Err(err) => {
            warn!(error = %err, "cannot emit D-Bus signals");
            return;
        }
    };
    loop {
        let change = tokio::select! {
            change = changes.recv() => change,
            _ = shutdown.cancelled() => return,
        };
        match change {
            Ok(change) => {
                let sent = Latchkey::changed(
                    &emitter,
                    change.key.service(),
                    change.key.account(),
                    change.what.as_str(),
                )
                .await;
                if let Err(err) = sent {
                    warn!(error = %err, "could not emit Changed");
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                warn!(
                    missed,
                    "Changed signals were dropped: too many changes at once"
                );
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// A stream of `NameLost` signals; it ends when the connection closes.
async fn bus_watch(connection: &zbus::Connection) -> zbus::Result<zbus::MessageStream> {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender("org.freedesktop.DBus")?
        .interface("org.freedesktop.DBus")?
        .member("NameLost")?
        .build();
    zbus::MessageStream::for_match_rule(rule, connection, Some(16)).await
}

/// Ends the daemon when the bus connection closes or the name is taken from us.
async fn watch_bus(mut stream: zbus::MessageStream, shutdown: CancellationToken) {
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            _ = shutdown.cancelled() => return,
        };
        match message {
            None => {
                info!("lost the session bus (connection closed): shutting down");
                break;
            }
            Some(Ok(message)) => {
                let lost: Result<String, _> = message.body().deserialize();
                if lost.as_deref() == Ok(BUS_NAME) {
                    info!("lost the name {BUS_NAME}: shutting down");
                    break;
                }
            }
            Some(Err(err)) => {
                info!(error = %err, "lost the session bus: shutting down");
                break;
            }
        }
    }
    shutdown.cancel();
}

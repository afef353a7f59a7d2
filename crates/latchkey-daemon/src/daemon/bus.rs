//! Starting the D-Bus transport beside the stream endpoint: the bus gets a short grace at
//! start (a D-Bus-only daemon waits longer for it), then keeps being tried in the background.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::DaemonError;
use crate::dbus::{self, BusState};
use crate::handler::Handler;

/// How long start-up waits for the session bus before it serves without it.
const BUS_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// The bus transport's state as it changes, and its task.
pub(super) struct Bus {
    state: tokio::sync::watch::Receiver<BusState>,
    /// Taken once awaited.
    task: Option<JoinHandle<Result<(), dbus::DbusError>>>,
}

impl Bus {
    /// Starts serving on the session bus in the background.
    pub(super) fn start(handler: &Handler, shutdown: &CancellationToken) -> Self {
        let (state, task) = dbus::start(handler.clone(), shutdown.clone());
        Self {
            state,
            task: Some(task),
        }
    }

    /// Gives the bus its grace (a D-Bus-only daemon, `socket == false`, waits for it), then
    /// says where it stands. A start that failed for good (the name is taken, say), or a
    /// D-Bus-only daemon whose bus is not serving, is an error that cancels `shutdown`.
    pub(super) async fn settle(
        &mut self,
        socket: bool,
        shutdown: &CancellationToken,
    ) -> Result<BusState, DaemonError> {
        let mut watching = self.state.clone();
        let wait = if socket {
            BUS_GRACE
        } else {
            dbus::ATTEMPT_TIMEOUT * 2
        };
        let _ = tokio::time::timeout(wait, watching.wait_for(|s| *s != BusState::Trying)).await;
        let now = *self.state.borrow();
        let gave_up = self.task.as_ref().is_some_and(JoinHandle::is_finished);
        if !gave_up && (socket || now == BusState::Serving) {
            return Ok(now);
        }
        let why = match self.task.take().filter(|_| gave_up) {
            Some(task) => match task.await {
                Ok(Err(err)) => Some(err.to_string()),
                _ => None,
            },
            None => None,
        };
        match (why, socket) {
            (Some(why), _) => {
                shutdown.cancel();
                Err(DaemonError::Bus(why))
            }
            (None, false) => {
                shutdown.cancel();
                Err(DaemonError::Bus(
                    "it is not there or does not answer".to_owned(),
                ))
            }
            // No bus at all: the socket serves alone.
            (None, true) => Ok(now),
        }
    }

    /// Waits for the bus transport to end (after `shutdown`); why it failed, if it did.
    pub(super) async fn finish(self) -> Option<DaemonError> {
        match self.task?.await {
            Ok(Err(err)) => Some(DaemonError::Bus(err.to_string())),
            _ => None,
        }
    }

    /// How the start-up log names the bus's state.
    pub(super) fn describe(state: BusState) -> &'static str {
        match state {
            BusState::Serving => dbus::BUS_NAME,
            BusState::Trying => "not answering yet (retrying in the background)",
            BusState::Off => "off",
        }
    }
}

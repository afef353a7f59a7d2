//! Asking the Secret Service to unlock or lock the collection (`Unlock`, `Lock`), and
//! answering the prompt object it may hand back.
//!
//! The calls go to the service's current unique name on the keychain's own bus connection,
//! and the prompt's `Completed` signal is matched on that sender and the prompt's path only,
//! so no other peer on the bus can answer for the service. A prompt is shown with an empty
//! window id (a daemon has no window). The wait for a person is bounded by [`PROMPT_TIMEOUT`]
//! (then the prompt is dismissed), and ends at once if the service leaves the bus.
//!
//! gnome-keyring with no prompter (no desktop session: `org.gnome.keyring.SystemPrompter`
//! is nowhere on the bus) completes the prompt at once as dismissed, so `latchkey unlock`
//! over SSH answers `locked` in milliseconds instead of hanging.

use std::time::Duration;

use futures_util::StreamExt;
use latchkey_core::StoreError;
use tokio::sync::watch;
use tracing::{debug, info};
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue};

use super::SERVICE_NAME;

/// How long a person has to answer the keyring's prompt.
pub(super) const PROMPT_TIMEOUT: Duration = Duration::from_secs(120);

/// How long dismissing an unanswered prompt may take.
const DISMISS_TIMEOUT: Duration = Duration::from_secs(2);

const SERVICE_PATH: &str = "/org/freedesktop/secrets";
const SERVICE_INTERFACE: &str = "org.freedesktop.Secret.Service";
const PROMPT_INTERFACE: &str = "org.freedesktop.Secret.Prompt";

/// What to ask of the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Action {
    Unlock,
    Lock,
}

impl Action {
    fn method(self) -> &'static str {
        match self {
            Action::Unlock => "Unlock",
            Action::Lock => "Lock",
        }
    }
}

/// How the service answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// It did it, at once or after its prompt.
    Done,
    /// Its prompt was dismissed: by the person, or because it could not be shown.
    Dismissed,
    /// Nobody answered its prompt within [`PROMPT_TIMEOUT`]; it was dismissed.
    Unanswered,
}

fn unavailable(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(crate::error_text::bounded(format!("{what}: {err}")))
}

/// Asks the service to `action` the collection at `collection`; `epochs` wakes when the
/// service leaves the bus.
pub(super) async fn ask(
    bus: &zbus::Connection,
    action: Action,
    collection: &ObjectPath<'_>,
    mut epochs: watch::Receiver<u64>,
) -> Result<Answer, StoreError> {
    let dbus = zbus::fdo::DBusProxy::new(bus)
        .await
        .map_err(|e| unavailable("no session bus", e))?;
    let name = zbus::names::BusName::try_from(SERVICE_NAME)
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    let owner = dbus
        .get_name_owner(name)
        .await
        .map_err(|_| StoreError::Unavailable("the Secret Service is not on the bus".into()))?;
    let reply = bus
        .call_method(
            Some(owner.as_str()),
            SERVICE_PATH,
            Some(SERVICE_INTERFACE),
            action.method(),
            &(vec![collection],),
        )
        .await
        .map_err(|e| unavailable("the Secret Service did not answer", e))?;
    let (done, prompt): (Vec<OwnedObjectPath>, OwnedObjectPath) = reply
        .body()
        .deserialize()
        .map_err(|e| StoreError::Backend(format!("unexpected {} reply: {e}", action.method())))?;
    if done.iter().any(|path| path.as_str() == collection.as_str()) || prompt.as_str() == "/" {
        return Ok(Answer::Done);
    }
    debug!(
        method = action.method(),
        "the Secret Service asks for a prompt"
    );

    // Subscribed before the prompt is shown, so its answer cannot be missed.
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(owner.as_str())
        .and_then(|b| b.path(prompt.as_str()))
        .and_then(|b| b.interface(PROMPT_INTERFACE))
        .and_then(|b| b.member("Completed"))
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .build();
    let mut completed = zbus::MessageStream::for_match_rule(rule, bus, Some(4))
        .await
        .map_err(|e| unavailable("cannot wait for the keyring's prompt", e))?;
    bus.call_method(
        Some(owner.as_str()),
        prompt.as_str(),
        Some(PROMPT_INTERFACE),
        "Prompt",
        &("",),
    )
    .await
    .map_err(|e| unavailable("the keyring's prompt could not be shown", e))?;

    let answer = async {
        while let Some(message) = completed.next().await {
            let Ok(message) = message else { continue };
            if let Ok((dismissed, _result)) = message.body().deserialize::<(bool, OwnedValue)>() {
                return Some(dismissed);
            }
        }
        None
    };
    tokio::select! {
        answer = answer => match answer {
            Some(false) => Ok(Answer::Done),
            Some(true) => {
                info!(method = action.method(), "the keyring's prompt was dismissed (or there is no desktop session to show it)");
                Ok(Answer::Dismissed)
            }
            None => Err(StoreError::Unavailable("the session bus connection closed".into())),
        },
        _ = epochs.changed() => Err(StoreError::Unavailable(
            "the Secret Service left the bus while its prompt was open".into(),
        )),
        () = tokio::time::sleep(PROMPT_TIMEOUT) => {
            let dismissing = bus.call_method(
                Some(owner.as_str()),
                prompt.as_str(),
                Some(PROMPT_INTERFACE),
                "Dismiss",
                &(),
            );
            let _ = tokio::time::timeout(DISMISS_TIMEOUT, dismissing).await;
            info!(method = action.method(), secs = PROMPT_TIMEOUT.as_secs(), "nobody answered the keyring's prompt; dismissed it");
            Ok(Answer::Unanswered)
        }
    }
}

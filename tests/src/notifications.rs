//! A desktop notification server for tests: a real D-Bus service that owns
//! `org.freedesktop.Notifications` on the private test bus and implements the parts of the
//! Desktop Notifications Specification a prompt uses (`Notify`, `CloseNotification`,
//! `GetCapabilities`, `GetServerInformation`, and the `ActionInvoked` and
//! `NotificationClosed` signals).
//!
//! It answers every notification the way the test chose ([`Answer`]): Allow or Deny at once
//! (the signal is sent before `Notify` returns, as the fastest real server could), never, or
//! when the test says so. It records what it was asked to show and which notifications were
//! closed, and lets a test wait for a number of `Notify` calls without sleeping.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedValue;

use crate::{SessionBus, START_TIMEOUT};

const NAME: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

/// How the server answers a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Invokes the `allow` action at once.
    Allow,
    /// Invokes the `deny` action at once.
    Deny,
    /// Never answers (the notification stays until it is closed).
    Never,
    /// Waits for [`NotificationServer::answer_all`].
    Held,
}

/// One `Notify` call as the server received it.
#[derive(Clone, Debug)]
pub struct Shown {
    /// The id the server gave it.
    pub id: u32,
    /// `app_name`.
    pub app_name: String,
    /// `summary`.
    pub summary: String,
    /// `body`.
    pub body: String,
    /// `actions`: keys and labels.
    pub actions: Vec<String>,
    /// `expire_timeout`, in milliseconds.
    pub expire_timeout: i32,
}

#[derive(Default)]
struct Seen {
    shown: Vec<Shown>,
    closed: Vec<u32>,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Seen>,
    changed: Condvar,
}

struct Server {
    shared: Arc<Shared>,
    answer: Answer,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Server {
    #[allow(clippy::too_many_arguments)]
    async fn notify(
        &self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        _hints: HashMap<String, OwnedValue>,
        expire_timeout: i32,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> u32 {
        let id = {
            let mut seen = self.shared.seen.lock().unwrap();
            let id = u32::try_from(seen.shown.len()).unwrap() + 1;
            seen.shown.push(Shown {
                id,
                app_name,
                summary,
                body,
                actions,
                expire_timeout,
            });
            id
        };
        self.shared.changed.notify_all();
        let action = match self.answer {
            Answer::Allow => "allow",
            Answer::Deny => "deny",
            Answer::Never | Answer::Held => return id,
        };
        invoke(&emitter, id, action).await;
        id
    }

    async fn close_notification(
        &self,
        id: u32,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) {
        self.shared.seen.lock().unwrap().closed.push(id);
        self.shared.changed.notify_all();
        // Reason 3: closed by a call to CloseNotification.
        let _ = Server::notification_closed(&emitter, id, 3).await;
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["actions".into(), "body".into()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "latchkey-test-notifications".into(),
            "latchkey".into(),
            "0".into(),
            "1.2".into(),
        )
    }

    #[zbus(signal)]
    async fn action_invoked(
        emitter: &SignalEmitter<'_>,
        id: u32,
        action_key: &str,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn notification_closed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        reason: u32,
    ) -> zbus::Result<()>;
}

/// Invokes `action` on notification `id`, then closes it (reason 2, dismissed by the user),
/// as a real server does after a click.
async fn invoke(emitter: &SignalEmitter<'_>, id: u32, action: &str) {
    Server::action_invoked(emitter, id, action)
        .await
        .expect("send ActionInvoked");
    Server::notification_closed(emitter, id, 2)
        .await
        .expect("send NotificationClosed");
}

/// The running server; it leaves the bus when dropped.
pub struct NotificationServer {
    shared: Arc<Shared>,
    commands: Option<tokio::sync::mpsc::UnboundedSender<Answer>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NotificationServer {
    /// Takes `org.freedesktop.Notifications` on `bus` and answers every notification with
    /// `answer`. Returns once the name is owned.
    pub fn start(bus: &SessionBus, answer: Answer) -> Self {
        let address = bus.address().to_owned();
        let shared = Arc::new(Shared::default());
        let server = Server {
            shared: Arc::clone(&shared),
            answer,
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (commands, mut received) = tokio::sync::mpsc::unbounded_channel::<Answer>();
        let shown = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let connection = zbus::connection::Builder::address(address.as_str())
                    .unwrap()
                    .serve_at(PATH, server)
                    .unwrap()
                    .name(NAME)
                    .unwrap()
                    .build()
                    .await
                    .expect("serve the notification server on the private bus");
                ready_tx.send(()).unwrap();
                let emitter = SignalEmitter::new(&connection, PATH).unwrap();
                // Each command answers every notification shown so far; the channel closes
                // when the server is dropped.
                while let Some(answer) = received.recv().await {
                    let action = match answer {
                        Answer::Allow => "allow",
                        Answer::Deny => "deny",
                        Answer::Never | Answer::Held => continue,
                    };
                    let ids: Vec<u32> = shown
                        .seen
                        .lock()
                        .unwrap()
                        .shown
                        .iter()
                        .map(|s| s.id)
                        .collect();
                    for id in ids {
                        invoke(&emitter, id, action).await;
                    }
                }
                drop(connection);
            })
        });
        ready_rx
            .recv_timeout(START_TIMEOUT)
            .expect("the notification server took its name");
        Self {
            shared,
            commands: Some(commands),
            thread: Some(thread),
        }
    }

    /// Answers every notification shown so far with `answer` (Allow or Deny).
    pub fn answer_all(&self, answer: Answer) {
        self.commands
            .as_ref()
            .unwrap()
            .send(answer)
            .expect("the notification server runs");
    }

    /// Every `Notify` call so far.
    pub fn shown(&self) -> Vec<Shown> {
        self.shared.seen.lock().unwrap().shown.clone()
    }

    /// How many `Notify` calls so far.
    pub fn count(&self) -> usize {
        self.shared.seen.lock().unwrap().shown.len()
    }

    /// The ids passed to `CloseNotification` so far.
    pub fn closed(&self) -> Vec<u32> {
        self.shared.seen.lock().unwrap().closed.clone()
    }

    /// Waits until there were `count` `Notify` calls (or fails the test after `timeout`).
    pub fn wait_for_count(&self, count: usize, timeout: Duration) {
        let seen = self.shared.seen.lock().unwrap();
        let (seen, waited) = self
            .shared
            .changed
            .wait_timeout_while(seen, timeout, |s| s.shown.len() < count)
            .unwrap();
        assert!(
            !waited.timed_out(),
            "expected {count} notifications, saw {}",
            seen.shown.len()
        );
    }
}

impl Drop for NotificationServer {
    fn drop(&mut self) {
        self.commands.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

//! The daemon run in-process through its library (`DaemonBuilder`), on a real socket in a
//! private temp folder, reached by the real client: the same code as `latchkeyd`, without a
//! process to start, so these checks cost milliseconds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use latchkey_client::{Client, ClientError};
use latchkey_core::ManualClock;
use latchkey_daemon::config::{FileConfig, Overrides};
use latchkey_daemon::{Config, DaemonBuilder, DaemonError, Endpoints, Running, StreamEndpoint};
use latchkey_proto::{BundleInput, ErrorKind, Secret, State, StatusParams};
use latchkey_store::Backend;
use tokio_util::sync::CancellationToken;

/// Every test finishes well inside this.
const LIMIT: Duration = Duration::from_secs(20);

/// A private folder with the socket and the data in it.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("latchkey-inproc")
            .tempdir()
            .unwrap();
        Self { dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("run/latchkey.sock")
    }

    /// The configuration `latchkeyd --store memory --socket <temp>` would run with.
    fn config(&self) -> Config {
        let flags = Overrides {
            socket: Some(self.socket()),
            backend: Some(Backend::Memory),
            ..Overrides::default()
        };
        Config::resolve(FileConfig::default(), flags, self.dir.path().join("data")).unwrap()
    }

    fn endpoints(&self) -> Endpoints {
        Endpoints {
            stream: Some(StreamEndpoint::Socket(self.socket())),
            dbus: false,
        }
    }

    /// Builds the daemon from `builder` and starts it on the socket; clients can connect
    /// when this returns.
    async fn start(&self, builder: DaemonBuilder, shutdown: &CancellationToken) -> Running {
        builder
            .build()
            .await
            .unwrap()
            .start(self.endpoints(), shutdown.clone())
            .await
            .unwrap()
    }
}

async fn connect(socket: &Path) -> Client {
    let mut client = Client::connect(socket).await.unwrap();
    client.version().await.unwrap();
    client
}

fn api_key(key: &str) -> BundleInput {
    BundleInput::ApiKey {
        key: Secret::from(key),
    }
}

#[tokio::test]
async fn set_get_clear_through_the_builder_on_a_real_socket() {
    tokio::time::timeout(LIMIT, async {
        let world = World::new();
        let shutdown = CancellationToken::new();
        let running = world
            .start(DaemonBuilder::new(world.config()), &shutdown)
            .await;
        let mut client = connect(&world.socket()).await;
        let entry = client
            .set("in-process", None, api_key("key-in-process"))
            .await
            .unwrap();
        assert_eq!(entry.service, "in-process");
        let got = client.get("in-process", None, &[]).await.unwrap();
        assert_eq!(got.secret.expose(), "key-in-process");
        assert_eq!(client.list().await.unwrap().len(), 1);
        let status = client.status(StatusParams::default()).await.unwrap();
        assert_eq!(status.daemon.store, "memory");
        assert!(client.clear("in-process", None).await.unwrap());
        let gone = client.get("in-process", None, &[]).await.unwrap_err();
        assert_eq!(gone.kind(), Some(ErrorKind::NotFound), "{gone}");
        shutdown.cancel();
        running.wait().await.unwrap();
        assert!(!world.socket().exists(), "the socket is removed at exit");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_the_socket_then_returns() {
    tokio::time::timeout(LIMIT, async {
        let world = World::new();
        let shutdown = CancellationToken::new();
        let running = world
            .start(DaemonBuilder::new(world.config()), &shutdown)
            .await;
        let mut idle = connect(&world.socket()).await;
        let mut other = connect(&world.socket()).await;
        other.set("kept", None, api_key("k")).await.unwrap();
        shutdown.cancel();
        // Returns although two clients still hold connections open.
        running.wait().await.unwrap();
        let closed = idle.list().await.unwrap_err();
        assert!(
            matches!(closed, ClientError::Closed | ClientError::Io(_)),
            "{closed:?}"
        );
        let after = Client::connect(world.socket()).await.unwrap_err();
        assert!(matches!(after, ClientError::NotRunning { .. }), "{after:?}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_second_daemon_on_the_same_socket_is_refused_and_the_first_keeps_serving() {
    tokio::time::timeout(LIMIT, async {
        let world = World::new();
        let shutdown = CancellationToken::new();
        let running = world
            .start(DaemonBuilder::new(world.config()), &shutdown)
            .await;
        let second_shutdown = CancellationToken::new();
        let second = DaemonBuilder::new(world.config())
            .build()
            .await
            .unwrap()
            .start(world.endpoints(), second_shutdown.clone())
            .await;
        assert!(
            matches!(
                second,
                Err(DaemonError::Bind(
                    latchkey_daemon::ipc::unix::bind::BindError::AlreadyRunning(_)
                ))
            ),
            "{:?}",
            second.err()
        );
        assert!(second_shutdown.is_cancelled(), "a failed start cancels");
        let mut client = connect(&world.socket()).await;
        client.set("still", None, api_key("here")).await.unwrap();
        shutdown.cancel();
        running.wait().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_builder_s_clock_decides_when_an_entry_expires() {
    tokio::time::timeout(LIMIT, async {
        let world = World::new();
        let start = "2030-01-01T00:00:00Z".parse().unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let shutdown = CancellationToken::new();
        let builder = DaemonBuilder::new(world.config()).clock(clock.clone());
        let running = world.start(builder, &shutdown).await;
        let mut client = connect(&world.socket()).await;
        let bundle = BundleInput::Oauth2 {
            access_token: Secret::from("short-lived"),
            refresh_token: None,
            token_type: None,
            expires_at: None,
            expires_in: Some(3600),
            scopes: Vec::new(),
            provider: None,
            id_token: None,
        };
        let entry = client.set("clocked", None, bundle).await.unwrap();
        assert_eq!(entry.expires_at, Some(start + chrono::Duration::hours(1)));
        assert_eq!(entry.state, State::Valid);
        clock.advance(chrono::Duration::hours(2));
        let listed = client.list().await.unwrap();
        assert_eq!(listed[0].state, State::Expired, "{listed:?}");
        shutdown.cancel();
        running.wait().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_daemon_with_no_endpoint_refuses_to_start() {
    tokio::time::timeout(LIMIT, async {
        let world = World::new();
        let shutdown = CancellationToken::new();
        let started = DaemonBuilder::new(world.config())
            .build()
            .await
            .unwrap()
            .start(Endpoints::default(), shutdown.clone())
            .await;
        assert!(
            matches!(started, Err(DaemonError::NothingToServe)),
            "{:?}",
            started.err()
        );
        assert!(shutdown.is_cancelled());
    })
    .await
    .unwrap();
}

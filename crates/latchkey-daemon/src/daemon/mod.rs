//! The daemon as a library: [`DaemonBuilder`] takes the configuration and, where a caller
//! wants its own, the store, the clock and the refresher, and builds a [`Daemon`];
//! [`Daemon::start`] opens the [`Endpoints`] and serves them until the shutdown token is
//! cancelled, [`Running::wait`] then drains connections and saves what only memory holds.
//! `main.rs` and the in-process tests run the daemon the same way.

#[cfg(target_os = "linux")]
mod bus;
mod endpoints;
mod error;

use std::sync::Arc;

use latchkey_core::{Clock, Refresher, Store, SystemClock, TokenService};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use endpoints::{Endpoints, StreamEndpoint};
pub use error::DaemonError;

use crate::config::Config;
use crate::handler::Handler;
use crate::login::Logins;
use crate::reload::Reloader;

/// Builds a [`Daemon`]. Everything but the configuration has a default: the store named by
/// the configuration (`auto` picks one), the system clock, and OAuth refreshing through the
/// configured providers.
pub struct DaemonBuilder {
    config: Config,
    store: Option<Arc<dyn Store>>,
    clock: Arc<dyn Clock>,
    refresher: Option<Arc<dyn Refresher>>,
}

impl DaemonBuilder {
    /// A daemon configured by `config`.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            store: None,
            clock: Arc::new(SystemClock),
            refresher: None,
        }
    }

    /// Keeps entries in `store` instead of the one the configuration names.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Tells time by `clock`.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Refreshes OAuth entries through `refresher` instead of the configured providers
    /// (logins still use the configured providers).
    pub fn refresher(mut self, refresher: Arc<dyn Refresher>) -> Self {
        self.refresher = Some(refresher);
        self
    }

    /// Makes the data folder private, opens the store and reads its entries. Must run inside
    /// a tokio runtime.
    pub async fn build(self) -> Result<Daemon, DaemonError> {
        let config = self.config;
        private_data_dir(&config.data_dir)?;
        let (store, reason) = match self.store {
            Some(store) => (store, "given by the caller".to_owned()),
            None => open_store(&config).await?,
        };
        let settings = crate::reload::login_settings(&config).map_err(DaemonError::OAuth)?;
        if let Some(oauth) = &settings.oauth {
            info!(
                providers = oauth.providers().count(),
                "OAuth providers configured for logins and refreshing"
            );
        }
        let refresh_through_providers = self.refresher.is_none();
        let refresher = match self.refresher {
            Some(refresher) => Some(refresher),
            None => settings.oauth.clone().map(|o| o as Arc<dyn Refresher>),
        };
        let service = TokenService::open_with_refresher(store, self.clock, refresher)
            .await
            .map_err(DaemonError::Entries)?;
        crate::reload::attach_secrets(&settings, &service);
        let logins = Logins::new(service.clone(), settings);
        let reloader = Reloader::new(
            config.clone(),
            service.clone(),
            logins.clone(),
            refresh_through_providers,
        );
        let grants = crate::grants::Grants::new(service.clone(), config.policy.clone());
        if !config.policy.require_grant.is_empty() {
            grants.preload().await;
        }
        let audit = start_audit(&config);
        let confirm = crate::confirm::Confirm::new(&service, config.confirm.clone());
        Ok(Daemon {
            handler: Handler::new(
                service,
                logins,
                reason.clone(),
                latchkey_store::StoreOptions {
                    data_dir: config.data_dir.clone(),
                    lock_after: config.lock_after,
                },
                reloader,
                grants,
            )
            .with_audit(audit)
            .with_confirm(confirm),
            reason,
        })
    }
}

/// A daemon ready to serve: its handler over an open store.
pub struct Daemon {
    handler: Handler,
    /// Why this store, for the start-up log.
    reason: String,
}

impl Daemon {
    /// The handler every transport shares.
    pub fn handler(&self) -> &Handler {
        &self.handler
    }

    /// Serves `endpoints` until `shutdown` is cancelled (or an endpoint is lost), then drains
    /// connections and saves what only memory holds: [`Daemon::start`] then [`Running::wait`].
    pub async fn serve(
        self,
        endpoints: Endpoints,
        shutdown: CancellationToken,
    ) -> Result<(), DaemonError> {
        self.start(endpoints, shutdown).await?.wait().await
    }

    /// Opens `endpoints` and starts serving them; when it returns, clients can connect. A
    /// start that fails cancels `shutdown`, so whatever did start stops.
    pub async fn start(
        self,
        endpoints: Endpoints,
        shutdown: CancellationToken,
    ) -> Result<Running, DaemonError> {
        let started = self.start_endpoints(endpoints, &shutdown).await;
        if started.is_err() {
            shutdown.cancel();
        }
        started
    }

    async fn start_endpoints(
        self,
        endpoints: Endpoints,
        shutdown: &CancellationToken,
    ) -> Result<Running, DaemonError> {
        if endpoints.stream.is_none() && !endpoints.dbus {
            return Err(DaemonError::NothingToServe);
        }
        let service = self.handler.service().clone();
        tokio::spawn(save_unsaved_periodically(service.clone(), shutdown.clone()));
        let stream = endpoints
            .stream
            .map(|endpoint| {
                let limits = self.handler.reloader().limits();
                endpoint.open(&self.handler, limits, shutdown)
            })
            .transpose()?;
        let store = service.store_info();
        #[cfg(target_os = "linux")]
        let (bus, bus_state) = if endpoints.dbus {
            let mut bus = bus::Bus::start(&self.handler, shutdown);
            let state = bus.settle(stream.is_some(), shutdown).await?;
            (Some(bus), bus::Bus::describe(state))
        } else {
            (None, "off")
        };
        #[cfg(not(target_os = "linux"))]
        let bus_state = if endpoints.dbus {
            return Err(DaemonError::Unsupported("D-Bus"));
        } else {
            "off"
        };
        crate::platform::notify_ready();
        info!(
            version = crate::handler::VERSION,
            // Shown as written: a pipe name's backslashes would be doubled by `?`.
            socket = %stream.as_ref().map_or("off", |s| s.name.as_str()),
            dbus = bus_state,
            store = store.name,
            persistent = store.persistent,
            locked = lock_state(store.locked),
            reason = %self.reason,
            entries = store.entries,
            config = %self.handler.reloader().describe_file(),
            "latchkeyd is serving"
        );
        // Entries served from the index are checked against the keychain in the background.
        tokio::spawn(async move { service.reconcile().await });
        Ok(Running {
            handler: self.handler,
            stream,
            #[cfg(target_os = "linux")]
            bus,
            shutdown: shutdown.clone(),
        })
    }
}

/// A daemon that serves; see [`Running::wait`].
pub struct Running {
    handler: Handler,
    stream: Option<endpoints::Serving>,
    #[cfg(target_os = "linux")]
    bus: Option<bus::Bus>,
    shutdown: CancellationToken,
}

impl Running {
    /// The handler every transport shares.
    pub fn handler(&self) -> &Handler {
        &self.handler
    }

    /// Serves until shutdown is cancelled (or the socket file is lost, which cancels it),
    /// waits for open connections to finish their requests, gives refreshed tokens only
    /// memory holds a last chance to reach the store, and says why it stopped if it failed.
    pub async fn wait(mut self) -> Result<(), DaemonError> {
        let lost = match &self.stream {
            Some(stream) => stream.watch(&self.shutdown).await,
            None => {
                self.shutdown.cancelled().await;
                None
            }
        };
        if let Some(stream) = &mut self.stream {
            stream.drain().await;
        }
        #[cfg(target_os = "linux")]
        let bus_failed = match self.bus.take() {
            Some(bus) => bus.finish().await,
            None => None,
        };
        #[cfg(not(target_os = "linux"))]
        let bus_failed: Option<DaemonError> = None;
        let left = self.handler.service().save_unsaved().await;
        if left > 0 {
            warn!(
                entries = left,
                "refreshed tokens the keychain refused are lost at shutdown; those entries will need a login"
            );
        }
        // The last records reach the audit file (bounded: a stuck disk does not hold the exit).
        let audit = self.handler.audit().clone();
        let _ = tokio::task::spawn_blocking(move || audit.flush(AUDIT_FLUSH)).await;
        // The socket file goes now, after the last answer.
        drop(self.stream.take());
        if let Some(err) = bus_failed {
            return Err(err);
        }
        if let Some(reason) = lost {
            return Err(DaemonError::EndpointLost(reason));
        }
        info!("latchkeyd stopped");
        Ok(())
    }
}

/// How long a stopping daemon waits for the audit file to take its last records.
const AUDIT_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// Starts the audit file's writer, if the configuration names a file. Trouble with the file
/// itself shows later, in the writer's log lines; the daemon serves either way.
fn start_audit(config: &Config) -> latchkey_audit::AuditLog {
    let Some(settings) = config.audit.settings() else {
        return latchkey_audit::AuditLog::disabled();
    };
    let path = settings.path.display().to_string();
    match latchkey_audit::AuditLog::start(settings) {
        Ok(log) => {
            info!(path, "audit trail: `latchkey audit` reads it");
            log
        }
        Err(err) => {
            warn!(error = %err, "cannot start the audit writer; requests are served without an audit file");
            latchkey_audit::AuditLog::disabled()
        }
    }
}

/// The store's lock state for the start-up line.
fn lock_state(locked: Option<bool>) -> &'static str {
    match locked {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

/// Creates the data folder, refusing one others could change.
fn private_data_dir(dir: &std::path::Path) -> Result<(), DaemonError> {
    let refused = |source: Box<dyn std::error::Error + Send + Sync>| DaemonError::DataDir {
        path: dir.to_owned(),
        source,
    };
    #[cfg(unix)]
    let made = latchkey_paths::create_private_dir(dir).map_err(|e| refused(e.into()));
    // WINDOWS: the folder under the user's profile; an ACL check belongs in latchkey-paths.
    #[cfg(not(unix))]
    let made = std::fs::create_dir_all(dir).map_err(|e| refused(e.into()));
    made
}

/// The store the configuration names (or, for `auto`, the one `latchkey migrate` moved the
/// entries to), and why it was chosen.
async fn open_store(config: &Config) -> Result<(Arc<dyn Store>, String), DaemonError> {
    let options = latchkey_store::StoreOptions {
        data_dir: config.data_dir.clone(),
        lock_after: config.lock_after,
    };
    let selection = crate::store_choice::open_at_start(config.backend, &options)
        .await
        .map_err(DaemonError::Store)?;
    if selection.fallback {
        warn!(
            reason = %selection.reason,
            "no keychain available: entries are kept IN MEMORY ONLY and are lost when latchkeyd stops"
        );
    }
    Ok((selection.store, selection.reason))
}

/// Writes again, every few seconds, refreshed tokens the keychain refused to save.
async fn save_unsaved_periodically(service: TokenService, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                service.save_unsaved().await;
            }
            () = shutdown.cancelled() => return,
        }
    }
}

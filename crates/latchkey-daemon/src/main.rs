//! `latchkeyd`: parse flags, set up logging, harden the process, open the store, bind the
//! socket and serve until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use latchkey_core::{SystemClock, TokenService};
use latchkey_daemon::config::{FileConfig, Overrides};
use latchkey_daemon::dbus::{self, BusState};
use latchkey_daemon::login::{Logins, Problems, StoredClientSecrets};
use latchkey_daemon::{activation, hardening, ipc, Config, Handler};
use latchkey_store::Backend;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// latchkey's per-user credential daemon.
#[derive(Debug, Parser)]
#[command(name = "latchkeyd", version, about)]
struct Args {
    /// Socket to listen on [default: $XDG_RUNTIME_DIR/latchkey/latchkey.sock]
    #[arg(long, env = "LATCHKEY_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Where secrets are kept: auto, secret-service or memory [default: auto]
    #[arg(long, value_name = "STORE")]
    store: Option<Backend>,
    /// Configuration file [default: <config dir>/latchkey/config.toml, if present]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Longest accepted request line in bytes [default: 65536]
    #[arg(long, value_name = "BYTES")]
    max_line: Option<usize>,
    /// Connections served at once [default: 512]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Close connections idle for this many seconds [default: 60]
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// Close a connection still inside one request line after this many seconds [default: 10]
    #[arg(long, value_name = "SECS")]
    request_timeout: Option<u64>,
    /// Close a connection that does not read a response for this many seconds [default: 10]
    #[arg(long, value_name = "SECS")]
    write_timeout: Option<u64>,
    /// Do not serve on the D-Bus session bus.
    #[arg(long)]
    no_dbus: bool,
    /// Do not serve on the Unix socket (D-Bus only).
    #[arg(long, conflicts_with = "no_dbus")]
    no_socket: bool,
}

/// Which transports to serve, and a socket handed over by the service manager.
struct Transports {
    socket: bool,
    dbus: bool,
    inherited: Option<std::os::unix::net::UnixListener>,
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("dev", "latchkey", "latchkey")
}

fn load_config(args: &Args) -> Result<Config> {
    let dirs = project_dirs();
    let (path, required) = match args.config.clone() {
        Some(path) => (Some(path), true),
        None => (
            dirs.as_ref().map(|d| d.config_dir().join("config.toml")),
            false,
        ),
    };
    let file = match path {
        Some(path) => FileConfig::load(&path, required)?,
        None => FileConfig::default(),
    };
    // LATCHKEY_DATA_DIR is set by the systemd unit (its state folder); otherwise the
    // platform's data folder.
    let data_dir = match std::env::var_os("LATCHKEY_DATA_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => dirs
            .map(|d| d.data_dir().to_owned())
            .context("cannot find a home folder for latchkey's data")?,
    };
    let flags = Overrides {
        socket: args.socket.clone(),
        backend: args.store,
        max_line: args.max_line,
        max_connections: args.max_connections,
        idle_timeout_secs: args.idle_timeout,
        request_timeout_secs: args.request_timeout,
        write_timeout_secs: args.write_timeout,
    };
    Ok(Config::resolve(file, flags, data_dir)?)
}

/// How long start-up waits for the session bus before it serves without it (the bus keeps
/// being tried in the background).
const BUS_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

async fn run(config: Config, transports: Transports) -> Result<()> {
    let shutdown = CancellationToken::new();
    latchkey_paths::create_private_dir(&config.data_dir)
        .context("refusing the data folder (LATCHKEY_DATA_DIR, or the platform's data folder)")?;
    let (listener, guard, socket_from) =
        open_socket(&config, transports.socket, transports.inherited)?;
    let selection = latchkey_store::open(config.backend, config.data_dir.clone())
        .await
        .context("cannot open the store")?;
    if selection.fallback {
        warn!(
            reason = %selection.reason,
            "no keychain available: entries are kept IN MEMORY ONLY and are lost when latchkeyd stops"
        );
    }
    let store_name = selection.store.name();
    let (oauth, problems) = oauth(&config)?;
    let refresher = oauth
        .clone()
        .map(|o| o as Arc<dyn latchkey_core::Refresher>);
    let service =
        TokenService::open_with_refresher(selection.store, Arc::new(SystemClock), refresher)
            .await
            .context("cannot read the store's entries")?;
    if let Some(oauth) = &oauth {
        oauth.set_client_secrets(Arc::new(StoredClientSecrets(service.clone())));
    }
    tokio::spawn(save_unsaved_periodically(service.clone(), shutdown.clone()));
    let reconciling = service.clone();
    let entries = service.store_info().entries;
    let logins = Logins::new(service.clone(), oauth, problems, config.login_timeout);
    let handler = Handler::new(service, logins);
    // The socket serves from here on; the bus gets a short grace, then its own pace.
    let socket = listener.map(|listener| {
        tokio::spawn(ipc::serve(
            listener,
            handler.clone(),
            config.limits,
            shutdown.clone(),
        ))
    });
    let mut bus = transports
        .dbus
        .then(|| dbus::start(handler.clone(), store_name.to_owned(), shutdown.clone()));
    let bus_state = settle_bus(&mut bus, socket.is_some(), &shutdown).await?;
    activation::notify_ready();
    info!(
        version = latchkey_daemon::handler::VERSION,
        socket = %socket_from,
        dbus = match bus_state {
            BusState::Serving => dbus::BUS_NAME,
            BusState::Trying => "not answering yet (retrying in the background)",
            BusState::Off => "off",
        },
        store = store_name,
        reason = %selection.reason,
        entries,
        "latchkeyd is serving"
    );
    tokio::spawn(watch_signals(shutdown.clone()));
    // Entries served from the index are checked against the keychain in the background.
    tokio::spawn(async move { reconciling.reconcile().await });
    let socket_lost = match &guard {
        Some(guard) => guard.watch(shutdown.clone()).await,
        None => {
            shutdown.cancelled().await;
            None
        }
    };
    if let Some(socket) = socket {
        let _ = socket.await;
    }
    let bus_failed = match bus {
        Some((_, task)) => task.await.ok().and_then(Result::err),
        None => None,
    };
    // A rotated refresh token only memory holds gets one last chance to reach the keychain.
    let left = handler.service().save_unsaved().await;
    if left > 0 {
        warn!(
            entries = left,
            "refreshed tokens the keychain refused are lost at shutdown; those entries will need a login"
        );
    }
    drop(guard);
    if let Some(err) = bus_failed {
        return Err(err).context("cannot serve on the session bus");
    }
    if let Some(reason) = socket_lost {
        anyhow::bail!(reason);
    }
    info!("latchkeyd stopped");
    Ok(())
}

/// The socket to serve, the guard that removes it at exit (none for a socket the service
/// manager passed), and how to name it in the log.
fn open_socket(
    config: &Config,
    wanted: bool,
    inherited: Option<std::os::unix::net::UnixListener>,
) -> Result<(
    Option<tokio::net::UnixListener>,
    Option<ipc::bind::SocketGuard>,
    String,
)> {
    Ok(match (wanted, inherited) {
        (false, _) => (None, None, "off".to_owned()),
        (true, Some(std_listener)) => {
            std_listener.set_nonblocking(true)?;
            let listener = tokio::net::UnixListener::from_std(std_listener)
                .context("cannot use the socket passed by the service manager")?;
            (
                Some(listener),
                None,
                "passed by the service manager".to_owned(),
            )
        }
        (true, None) => {
            let (listener, guard) = ipc::bind::bind(&config.socket)?;
            (
                Some(listener),
                Some(guard),
                config.socket.display().to_string(),
            )
        }
    })
}

type BusStart = (
    tokio::sync::watch::Receiver<BusState>,
    tokio::task::JoinHandle<Result<(), dbus::DbusError>>,
);

/// Gives the bus its grace (a D-Bus-only daemon waits for it), then says where it stands. A
/// start that failed for good (the name is taken, say), or a D-Bus-only daemon whose bus is
/// not serving, is an error that cancels `shutdown`.
async fn settle_bus(
    bus: &mut Option<BusStart>,
    socket: bool,
    shutdown: &CancellationToken,
) -> Result<BusState> {
    let state = match bus.as_ref() {
        None => return Ok(BusState::Off),
        Some((state, _)) => state.clone(),
    };
    let mut watching = state.clone();
    let wait = if socket {
        BUS_GRACE
    } else {
        dbus::ATTEMPT_TIMEOUT * 2
    };
    let _ = tokio::time::timeout(wait, watching.wait_for(|s| *s != BusState::Trying)).await;
    let now = *state.borrow();
    let gave_up = matches!(bus.as_ref(), Some((_, task)) if task.is_finished());
    if !gave_up && (socket || now == BusState::Serving) {
        return Ok(now);
    }
    let why = match bus.take() {
        Some((_, task)) => match task.await {
            Ok(Err(err)) => Some(err.to_string()),
            _ => None,
        },
        None => None,
    };
    match (why, socket) {
        (Some(why), _) => {
            shutdown.cancel();
            anyhow::bail!("cannot serve on the session bus: {why}")
        }
        (None, false) => {
            shutdown.cancel();
            anyhow::bail!("cannot serve on the session bus: it is not there or does not answer")
        }
        // No bus at all: the socket serves alone.
        (None, true) => Ok(now),
    }
}

/// The OAuth client for the configured providers (none configured: no refreshing or
/// logins), and the providers whose settings were refused, with why.
fn oauth(config: &Config) -> Result<(Option<Arc<latchkey_oauth::OAuth>>, Problems)> {
    let mut providers = std::collections::BTreeMap::new();
    let mut problems = Vec::new();
    for (name, spec) in &config.providers {
        match latchkey_oauth::Provider::from_spec(name, spec) {
            Ok(provider) => {
                providers.insert(name.clone(), provider);
            }
            Err(err) => {
                warn!(provider = %name, error = %err, "provider not usable");
                problems.push((name.clone(), err.to_string()));
            }
        }
    }
    if providers.is_empty() {
        return Ok((None, problems));
    }
    info!(
        providers = providers.len(),
        "OAuth providers configured for logins and refreshing"
    );
    let oauth = latchkey_oauth::OAuth::with_timeout(providers, config.http_timeout)?;
    Ok((Some(Arc::new(oauth)), problems))
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

async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // First, while the process has one thread: taking the socket edits the environment.
    let transports = Transports {
        socket: !args.no_socket,
        dbus: !args.no_dbus,
        inherited: activation::inherited_listener(),
    };
    // Log lines are written by a background thread, so an audit line per request costs the
    // request its formatting only, not a write to stderr. Lines still queued flush on exit.
    let (stderr, _flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(err) = hardening::disable_core_dumps() {
        warn!(error = %err, "could not disable core dumps");
    }
    let result = load_config(&args).and_then(|config| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(run(config, transports))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("latchkeyd: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

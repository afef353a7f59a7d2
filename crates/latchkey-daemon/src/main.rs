//! `latchkeyd`: parse flags, set up logging, hardening and signals, then run the daemon
//! library ([`DaemonBuilder`]) until SIGINT or SIGTERM (on Windows: a console control event);
//! SIGHUP reloads the configuration file.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Parser;
use latchkey_daemon::config::Overrides;
use latchkey_daemon::{platform, Config, DaemonBuilder, Endpoints, StreamEndpoint};
use latchkey_store::Backend;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// latchkey's per-user credential daemon.
#[derive(Debug, Parser)]
#[command(name = "latchkeyd", version, about)]
struct Args {
    /// Socket to listen on [default: latchkey.sock in $XDG_RUNTIME_DIR/latchkey, else in ~/.local/state/latchkey (macOS: the per-user temporary folder)]
    #[cfg_attr(windows, arg(hide = true))]
    #[arg(long, env = "LATCHKEY_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Named pipe to serve: \\.\pipe\NAME or a bare NAME [default: \\.\pipe\latchkey-<your SID>]
    #[cfg(windows)]
    #[arg(long, env = "LATCHKEY_PIPE", value_name = "NAME")]
    pipe: Option<String>,
    /// Where secrets are kept [default: auto]
    #[arg(long, value_name = "STORE", value_parser = store_parser())]
    store: Option<Backend>,
    // Help given as an attribute: rustdoc would read `<config dir>` as an HTML tag.
    #[arg(
        long,
        value_name = "FILE",
        help = "Configuration file [default: <config dir>/latchkey/config.toml, if present]"
    )]
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
    /// Do not serve on the Unix socket (D-Bus only; Linux).
    #[arg(long, conflicts_with = "no_dbus")]
    no_socket: bool,
}

/// `--store` takes the stores this platform has, and help and errors list exactly those.
fn store_parser() -> impl TypedValueParser<Value = Backend> {
    let names = Backend::on_this_platform().into_iter().map(Backend::name);
    PossibleValuesParser::new(names).map(|name| {
        name.parse()
            .expect("every listed store has a name that parses")
    })
}

/// A listening socket the service manager passed. Call it first, while the process has one
/// thread: taking it edits the environment.
fn inherited() -> Option<StreamEndpoint> {
    #[cfg(unix)]
    return latchkey_daemon::platform::activation::inherited_listener()
        .map(StreamEndpoint::Inherited);
    #[cfg(not(unix))]
    None
}

/// The endpoints the flags and the configuration ask for.
fn endpoints(args: &Args, config: &Config, inherited: Option<StreamEndpoint>) -> Result<Endpoints> {
    #[cfg(unix)]
    let stream = inherited.or_else(|| Some(StreamEndpoint::Socket(config.socket.clone())));
    #[cfg(windows)]
    let stream = {
        let _ = (config, inherited);
        Some(StreamEndpoint::Pipe(pipe_name(args)?))
    };
    #[cfg(not(any(unix, windows)))]
    let stream = {
        let _ = (config, inherited);
        None
    };
    Ok(Endpoints {
        stream: stream.filter(|_| !args.no_socket),
        dbus: cfg!(target_os = "linux") && !args.no_dbus,
    })
}

/// `--pipe` (or `LATCHKEY_PIPE`), else this user's default pipe.
#[cfg(windows)]
fn pipe_name(args: &Args) -> Result<String> {
    let name = match &args.pipe {
        Some(name) => latchkey_paths::parse_pipe_name(name),
        None => latchkey_paths::default_pipe_name(),
    };
    name.context("cannot name the pipe to serve")
}

fn overrides(args: &Args) -> Overrides {
    Overrides {
        socket: args.socket.clone(),
        backend: args.store,
        max_line: args.max_line,
        max_connections: args.max_connections,
        idle_timeout_secs: args.idle_timeout,
        request_timeout_secs: args.request_timeout,
        write_timeout_secs: args.write_timeout,
    }
}

async fn run(endpoints: Endpoints, config: Config) -> Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            platform::shutdown_signal().await;
            shutdown.cancel();
        }
    });
    // Caught from now on: a SIGHUP during start-up must not end the daemon.
    let mut hangups =
        platform::ReloadSignal::install().context("cannot install the SIGHUP handler")?;
    let daemon = DaemonBuilder::new(config).build().await?;
    let reloader = daemon.handler().reloader().clone();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            loop {
                tokio::select! {
                    () = hangups.recv() => {
                        // The outcome is logged either way; a bad file leaves the old settings.
                        let _ = reloader.reload("SIGHUP").await;
                    }
                    () = shutdown.cancelled() => return,
                }
            }
        }
    });
    daemon.serve(endpoints, shutdown).await?;
    Ok(())
}

/// Log lines waiting for the writer thread, at most.
const LOG_QUEUE_LINES: usize = 8_192;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let inherited = inherited();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    platform::return_large_buffers();
    // Log lines are written by a background thread, so an audit line per request costs the
    // request its formatting only, not a write to stderr. Lines still queued flush on exit.
    // The queue's slots are allocated up front: 8,192 lines (256 KiB) instead of the default
    // 128,000 (4 MiB). A full queue makes loggers wait (lossy off: no audit line is dropped).
    let (stderr, _flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
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
    if let Err(err) = platform::disable_core_dumps() {
        warn!(error = %err, "could not disable core dumps");
    }
    let result = Config::load(args.config.clone(), overrides(&args))
        .map_err(anyhow::Error::from)
        .and_then(|config| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(async {
                    let endpoints = endpoints(&args, &config, inherited)?;
                    run(endpoints, config).await
                })
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("latchkeyd: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! `latchkey proxy`: reads the `[proxy]` routes, binds 127.0.0.1 (never another address) and
//! serves until Ctrl-C or SIGTERM. The first line on stdout says where it listens; then one
//! log line per request goes to stderr (route, method, status, time: no header value).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use anyhow::{anyhow, Context};
use latchkey_proxy::{Proxy, ProxyConfig};

use crate::cli::Cli;
use crate::{failure, usage, Failure};

/// Largest configuration file read, as the daemon's limit.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

fn read_config(path: Option<&Path>) -> Result<ProxyConfig, Failure> {
    let path = match path {
        Some(path) => path.to_owned(),
        None => latchkey_paths::Folders::of_current_user()
            .ok_or_else(|| failure(anyhow!("no home folder: name the file with --config")))?
            .config
            .join("config.toml"),
    };
    let file = std::fs::File::open(&path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(usage)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(usage)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(usage(anyhow!("{} is too large", path.display())));
    }
    ProxyConfig::from_toml(&text)
        .with_context(|| format!("in {}", path.display()))
        .map_err(usage)
}

/// Runs the proxy until it is told to stop.
pub fn run(cli: &Cli, port: Option<u16>, config: Option<&Path>) -> Result<(), Failure> {
    // The socket (or pipe) only: D-Bus `Get` cannot say that a request is proxied (the
    // socket's `proxy` flag), so `auto` never falls back to the bus here.
    let target = match crate::target(cli)? {
        latchkey_client::Target::Dbus => {
            return Err(usage(anyhow!(
                "latchkey proxy talks to latchkeyd over its socket, not the session bus"
            )))
        }
        latchkey_client::Target::Auto => {
            latchkey_client::Target::Socket(latchkey_paths::default_socket_path())
        }
        other => other,
    };
    let config = read_config(config)?;
    let port = port.or(config.port).unwrap_or(0);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "latchkey=info".into()),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| failure(e.into()))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))
            .map_err(failure)?;
        let port = listener.local_addr().map_err(|e| failure(e.into()))?.port();
        let proxy = Proxy::new(config, target, port).map_err(|e| usage(e.into()))?;
        let mut stdout = std::io::stdout();
        writeln!(
            stdout,
            "latchkey proxy: listening on http://127.0.0.1:{port}"
        )
        .and_then(|()| stdout.flush())
        .map_err(|e| failure(e.into()))?;
        latchkey_proxy::serve(listener, proxy, stopped()).await;
        Ok(())
    })
}

/// Completes on Ctrl-C, or SIGTERM on Unix.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

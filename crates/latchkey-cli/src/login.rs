//! `latchkey login`: asks the daemon to start a login, shows the user where to go (opening
//! the browser unless told not to), waits with a spinner on a terminal, and cancels the
//! pending login on Ctrl-C. The daemon does the OAuth work and keeps the tokens.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::anyhow;
use latchkey_client::{Client, ClientError, Target};
use latchkey_proto::{LoginParams, LoginStarted, Metadata};

use crate::cli::Cli;
use crate::exit_codes::ExitCode;
use crate::out::{note, note_raw};
use crate::output::sanitize;
use crate::{print_json, Failure};

/// What `login` was asked to do.
struct Request {
    /// The login.
    pub params: LoginParams,
    /// Whether to open a browser.
    pub open_browser: bool,
    /// Where the daemon is.
    pub target: Target,
    /// Whether stdout is kept for the JSON result (the URL then goes to stderr).
    pub json: bool,
}

async fn connect(target: &Target) -> Result<Client, ClientError> {
    let mut client = Client::connect_to(target).await?;
    client.version().await?;
    Ok(client)
}

/// The URL (or the device page) alone on its own line: on stdout for people and for scripts,
/// on stderr when stdout is kept for the JSON result.
fn link(url: &str, json: bool) -> Result<(), crate::out::StdoutError> {
    if json {
        note!("{}", sanitize(url));
        Ok(())
    } else {
        crate::out::line(sanitize(url))
    }
}

fn show(
    started: &LoginStarted,
    open: bool,
    json: bool,
    provider: &str,
) -> Result<(), crate::out::StdoutError> {
    if let Some(url) = &started.authorization_url {
        note!("Open this URL in a browser to log in:");
        link(url, json)?;
        if open {
            crate::browser::open(url, Some(provider), &mut std::io::stderr().lock());
        }
    } else if let (Some(uri), Some(code)) = (&started.verification_uri, &started.user_code) {
        note!(
            "On any device, open {} and enter the code: {}",
            sanitize(uri),
            sanitize(code)
        );
        let direct = started.verification_uri_complete.as_deref().unwrap_or(uri);
        link(direct, json)?;
        if open {
            crate::browser::open(direct, None, &mut std::io::stderr().lock());
        }
    }
    note!(
        "The login expires at {}.",
        started.expires_at.format("%H:%M:%S UTC")
    );
    Ok(())
}

/// Runs `latchkey login`: the login, then what was stored (JSON, or a line saying whether
/// latchkey will refresh it).
pub fn run(cli: &Cli, params: LoginParams, open_browser: bool, json: bool) -> Result<(), Failure> {
    let entry = log_in(Request {
        params,
        open_browser,
        target: crate::target(cli)?,
        json,
    })?;
    if json {
        print_json(&entry)?;
    } else {
        note!(
            "logged in: {}/{}{}",
            sanitize(&entry.service),
            sanitize(&entry.account),
            if entry.has_refresh_token {
                " (latchkey will refresh it)"
            } else {
                " (no refresh token: log in again when it expires)"
            }
        );
    }
    Ok(())
}

/// Runs the login; the stored entry once it completes.
fn log_in(request: Request) -> Result<Metadata, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::failure(e.into()))?;
    runtime.block_on(async move {
        // Listen for Ctrl-C before anything is shown: a user (or a test) reacting to the URL
        // must find the handler in place.
        #[cfg(unix)]
        let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
        #[cfg(windows)]
        let interrupt = tokio::signal::windows::ctrl_c();
        let mut interrupt = interrupt.map_err(|e| crate::failure(e.into()))?;
        let mut client = connect(&request.target).await?;
        let provider = request.params.provider.clone();
        let started = client.login(request.params).await?;
        show(&started, request.open_browser, request.json, &provider)?;
        let spinner = std::io::stderr().is_terminal();
        let mut tick = tokio::time::interval(Duration::from_millis(120));
        let frames = ['|', '/', '-', '\\'];
        let mut frame = 0usize;
        let wait = client.login_wait(&started.login_id);
        tokio::pin!(wait);
        let outcome = loop {
            tokio::select! {
                outcome = &mut wait => break outcome,
                _ = interrupt.recv() => {
                    if spinner {
                        note_raw!("\r");
                    }
                    // The waiting connection is busy: cancel over a second one.
                    let cancelled = match connect(&request.target).await {
                        Ok(mut other) => other.login_cancel(&started.login_id).await.unwrap_or(false),
                        Err(_) => false,
                    };
                    return Err(Failure::new(
                        ExitCode::Interrupted,
                        anyhow!(if cancelled {
                            "interrupted: the pending login was cancelled"
                        } else {
                            "interrupted"
                        }),
                    ));
                }
                _ = tick.tick(), if spinner => {
                    frame = (frame + 1) % frames.len();
                    note_raw!("\r{} waiting for you to finish logging in... ", frames[frame]);
                }
            }
        };
        if spinner {
            note_raw!("\r{:50}\r", "");
        }
        Ok(outcome?)
    })
}

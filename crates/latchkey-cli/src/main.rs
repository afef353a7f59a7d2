//! `latchkey`: parse the command line, talk to latchkeyd, print the result, exit with a code
//! a script can branch on.

mod browser;
mod cli;
mod doctor;
mod exit_codes;
mod input;
// On Windows only `find_daemon` and `Mode` are used: start at login is a Run value there
// (`run_key`), not files for a service manager.
#[cfg_attr(windows, allow(dead_code))]
mod install;
mod lock;
mod login;
mod migrate;
mod min_valid;
mod output;
mod reload;
#[cfg(windows)]
mod run_key;

use std::io::Write;
#[cfg(not(windows))]
use std::path::Path;

use anyhow::{anyhow, Context};
use clap::Parser;
use cli::{Cli, Command, ProviderCommand, SetKind, TransportArg};
use exit_codes::ExitCode;
use latchkey_client::{blocking::Client, ClientError, Target, Transport};
use latchkey_proto::{BundleInput, GetParams, LoginParams, Secret, StatusParams};

/// A failure, with the code to exit with.
struct Failure {
    code: ExitCode,
    error: anyhow::Error,
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        let code = ExitCode::of(&err);
        let error = match &err {
            ClientError::Daemon(e) => {
                // A rogue or confused daemon's message could carry escape sequences.
                let mut text = output::sanitize(&e.message);
                if !e.data.missing_scopes.is_empty() {
                    text.push_str(&format!(
                        "; missing: {}",
                        output::sanitize(&e.data.missing_scopes.join(" "))
                    ));
                }
                if let Some(hint) = &e.data.hint {
                    text.push_str(&format!(" ({})", output::sanitize(hint)));
                }
                if let Some(url) = &e.data.login_url {
                    text.push_str(&format!("\nlog in here: {}", output::sanitize(url)));
                }
                anyhow!(text)
            }
            _ => anyhow!(err),
        };
        Failure { code, error }
    }
}

fn failure(error: anyhow::Error) -> Failure {
    Failure {
        code: ExitCode::Failure,
        error,
    }
}

fn usage(error: anyhow::Error) -> Failure {
    Failure {
        code: ExitCode::Usage,
        error,
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure {
        code: ExitCode::Failure,
        error: e.into(),
    })?;
    println!("{}", output::json_safe(&text));
    Ok(())
}

/// Where to reach the daemon: a socket named with `--socket` or `LATCHKEY_SOCKET` is used
/// alone, never swapped for the bus. On Windows `auto` is the named pipe (`--pipe`,
/// `LATCHKEY_PIPE` or this user's default pipe).
fn target(cli: &Cli) -> Result<Target, Failure> {
    Ok(match (cli.transport, &cli.socket) {
        (TransportArg::Dbus, _) => Target::Dbus,
        (TransportArg::Socket, None) => Target::Socket(latchkey_paths::default_socket_path()),
        (TransportArg::Socket, Some(path)) => Target::Socket(path.clone()),
        #[cfg(windows)]
        (TransportArg::Pipe | TransportArg::Auto, _) => Target::Pipe(pipe_name(cli)?),
        #[cfg(not(windows))]
        (TransportArg::Auto, Some(path)) => Target::Socket(path.clone()),
        #[cfg(not(windows))]
        (TransportArg::Auto, None) => Target::Auto,
    })
}

/// `--pipe` (or `LATCHKEY_PIPE`), else this user's default pipe.
#[cfg(windows)]
fn pipe_name(cli: &Cli) -> Result<String, Failure> {
    match &cli.pipe {
        Some(name) => latchkey_paths::parse_pipe_name(name).map_err(|e| usage(e.into())),
        None => latchkey_paths::default_pipe_name().map_err(|e| failure(e.into())),
    }
}

fn connect(cli: &Cli) -> Result<Client, Failure> {
    let target = target(cli)?;
    let mut client = Client::connect_to(&target)?;
    if cli.verbose {
        match (client.transport(), &target) {
            (Transport::Socket, Target::Socket(path)) => {
                eprintln!("latchkey: using the socket {}", path.display())
            }
            (Transport::Socket, _) => eprintln!(
                "latchkey: using the socket {}",
                latchkey_paths::default_socket_path().display()
            ),
            (Transport::Pipe, Target::Pipe(name)) => {
                eprintln!("latchkey: using the named pipe {name}")
            }
            (Transport::Pipe, _) => eprintln!("latchkey: using the named pipe"),
            (Transport::Dbus, _) => {
                eprintln!("latchkey: using the session bus (dev.latchkey.Latchkey1)")
            }
        }
    }
    client.version()?;
    Ok(client)
}

fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Get {
            service,
            account,
            scopes,
            min_valid,
            json,
        } => {
            let mut client = connect(&cli)?;
            let result = client.get_with(GetParams {
                service: service.clone(),
                account: account.clone(),
                scopes: scopes.clone(),
                min_valid_secs: *min_valid,
            })?;
            let expires_at = result.expires_at.map(|at| at.timestamp());
            if let Some(note) = min_valid::note(expires_at, *min_valid, min_valid::unix_now()) {
                eprintln!("latchkey: {note}");
            }
            if *json {
                print_json(&result)?;
            } else {
                let mut out = std::io::stdout().lock();
                let written = out
                    .write_all(result.secret.expose().as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .and_then(|()| out.flush());
                written
                    .context("cannot write to stdout")
                    .map_err(|e| Failure {
                        code: ExitCode::Failure,
                        error: e,
                    })?;
            }
        }
        Command::Set {
            service,
            account,
            kind,
            username,
            bundle,
        } => {
            let input = if *bundle {
                let text = input::read_stdin().map_err(usage)?;
                BundleInput::from_json(&text).map_err(|e| {
                    usage(anyhow!(
                        "the bundle on stdin is not valid: {e}; see `latchkey set --help`"
                    ))
                })?
            } else {
                match kind {
                    SetKind::ApiKey => {
                        if username.is_some() {
                            return Err(usage(anyhow!("--username goes with --kind password")));
                        }
                        let key = input::read_secret("API key: ").map_err(usage)?;
                        BundleInput::ApiKey {
                            key: Secret::new(key.as_str().to_owned()),
                        }
                    }
                    SetKind::Password => {
                        let username = username
                            .clone()
                            .ok_or_else(|| usage(anyhow!("--kind password needs --username")))?;
                        let password = input::read_secret("Password: ").map_err(usage)?;
                        BundleInput::Password {
                            username,
                            password: Secret::new(password.as_str().to_owned()),
                        }
                    }
                }
            };
            let mut client = connect(&cli)?;
            let entry = client.set(service, account.as_deref(), input)?;
            eprintln!(
                "stored {} for {}/{}",
                entry.kind.as_str(),
                output::sanitize(&entry.service),
                output::sanitize(&entry.account)
            );
        }
        Command::Clear { service, account } => {
            let mut client = connect(&cli)?;
            if client.clear(service, account.as_deref())? {
                eprintln!("removed");
            } else {
                eprintln!("nothing to remove");
            }
        }
        Command::Status {
            service,
            account,
            json,
        } => {
            let mut client = connect(&cli)?;
            let status = client.status(StatusParams {
                service: service.clone(),
                account: account.clone(),
            })?;
            if *json {
                print_json(&status)?;
            } else {
                print!("{}", output::daemon_summary(&status.daemon));
                print!("{}", output::entries_table(&status.entries));
            }
        }
        Command::List { json } => {
            let mut client = connect(&cli)?;
            let entries = client.list()?;
            if *json {
                print_json(&serde_json::json!({ "entries": entries }))?;
            } else {
                print!("{}", output::entries_table(&entries));
            }
        }
        Command::Login {
            provider,
            account,
            scopes,
            device,
            no_browser,
            json,
        } => {
            let entry = login::run(login::Request {
                params: LoginParams {
                    provider: provider.clone(),
                    account: account.clone(),
                    scopes: scopes.clone(),
                    device: *device,
                },
                open_browser: !no_browser,
                target: target(&cli)?,
                json: *json,
            })?;
            if *json {
                print_json(&entry)?;
            } else {
                eprintln!(
                    "logged in: {}/{}{}",
                    output::sanitize(&entry.service),
                    output::sanitize(&entry.account),
                    if entry.has_refresh_token {
                        " (latchkey will refresh it)"
                    } else {
                        " (no refresh token: log in again when it expires)"
                    }
                );
            }
        }
        Command::Migrate { to, json } => migrate::run(&mut connect(&cli)?, to, *json)?,
        Command::Logout {
            service,
            account,
            json,
        } => {
            let mut client = connect(&cli)?;
            let result = client.logout(service, account.as_deref())?;
            if *json {
                print_json(&result)?;
            } else if !result.removed {
                eprintln!("nothing to remove");
            } else {
                let said = match result.revocation {
                    latchkey_proto::RevocationOutcome::Revoked => "the provider revoked the tokens",
                    latchkey_proto::RevocationOutcome::Unconfirmed => {
                        "the provider did not confirm the revocation: the tokens may still work until they expire"
                    }
                    latchkey_proto::RevocationOutcome::Unsupported => {
                        "the provider offers no revocation: the tokens work until they expire (revoke the app's access in the provider's settings)"
                    }
                    latchkey_proto::RevocationOutcome::Failed => {
                        "the provider refused the revocation: the tokens may still work until they expire"
                    }
                };
                eprintln!("removed; {said}");
            }
        }
        Command::Provider { command } => match command {
            ProviderCommand::List { json } => {
                let mut client = connect(&cli)?;
                let providers = client.providers()?;
                if *json {
                    print_json(&serde_json::json!({ "providers": providers }))?;
                } else {
                    print!("{}", output::providers_table(&providers));
                }
            }
            ProviderCommand::SetSecret { provider } => {
                let secret = input::read_secret("Client secret: ").map_err(usage)?;
                let mut client = connect(&cli)?;
                client
                    .set_provider_secret(provider, Some(Secret::new(secret.as_str().to_owned())))?;
                eprintln!(
                    "stored the client secret for {}",
                    output::sanitize(provider)
                );
            }
            ProviderCommand::ClearSecret { provider } => {
                let mut client = connect(&cli)?;
                client.set_provider_secret(provider, None)?;
                eprintln!(
                    "removed the client secret for {}",
                    output::sanitize(provider)
                );
            }
        },
        Command::Install {
            print,
            dry_run,
            daemon,
        } => {
            let daemon = install::find_daemon(daemon.as_deref()).map_err(usage)?;
            let mode = match (print, dry_run) {
                (true, _) => install::Mode::Print,
                (_, true) => install::Mode::DryRun,
                _ => install::Mode::Apply,
            };
            #[cfg(windows)]
            run_key::install(&daemon, mode).map_err(failure)?;
            #[cfg(not(windows))]
            install::install(&install::plan(&daemon).map_err(failure)?, mode).map_err(failure)?;
        }
        Command::Uninstall { dry_run } => {
            let mode = if *dry_run {
                install::Mode::DryRun
            } else {
                install::Mode::Apply
            };
            #[cfg(windows)]
            run_key::uninstall(mode).map_err(failure)?;
            #[cfg(not(windows))]
            install::uninstall(
                &install::plan(Path::new("latchkeyd")).map_err(failure)?,
                mode,
            )
            .map_err(failure)?;
        }
        Command::Doctor => {
            #[cfg(windows)]
            let target = target(&cli)?;
            #[cfg(not(windows))]
            let target = Target::Socket(
                cli.socket
                    .clone()
                    .unwrap_or_else(latchkey_paths::default_socket_path),
            );
            doctor::run(&target).map_err(failure)?;
        }
        Command::Unlock => lock::unlock(&cli)?,
        Command::Lock => lock::lock(&cli)?,
        Command::Passwd => lock::passwd(&cli)?,
        Command::Reload { json } => reload::run(&cli, *json)?,
        Command::Version { json } => {
            let mut client = connect(&cli)?;
            let daemon = client.version()?;
            if *json {
                print_json(&serde_json::json!({
                    "cli": env!("CARGO_PKG_VERSION"),
                    "daemon": daemon.version,
                    "protocol": daemon.protocol,
                }))?;
            } else {
                println!(
                    "latchkey {} / latchkeyd {} (protocol {})",
                    env!("CARGO_PKG_VERSION"),
                    output::sanitize(&daemon.version),
                    daemon.protocol
                );
            }
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::Success.into(),
        Err(failure) => {
            // Errors can quote the daemon or the bus: escaped again, line by line (escaping twice
            // changes nothing).
            let text = format!("{:#}", failure.error);
            eprintln!("latchkey: {}", output::sanitize_lines(&text));
            failure.code.into()
        }
    }
}

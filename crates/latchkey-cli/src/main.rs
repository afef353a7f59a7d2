//! `latchkey`: parse the command line, talk to latchkeyd, print the result, exit with a code
//! a script can branch on.

mod audit;
mod browser;
mod cli;
mod completions;
mod doctor;
mod exit_codes;
mod get;
mod grant;
mod input;
// On Windows only `find_daemon` and `Mode` are used: start at login is a Run value there
// (`run_key`), not files for a service manager.
#[cfg_attr(windows, allow(dead_code))]
mod install;
mod kube;
mod lock;
mod login;
mod logout;
mod migrate;
mod min_valid;
mod out;
mod output;
mod provider;
mod proxy;
mod reload;
mod run;
#[cfg(windows)]
mod run_key;
mod set;
mod status;
mod version;

use anyhow::anyhow;
use clap::FromArgMatches;
use cli::{Cli, Command, TransportArg};
use exit_codes::ExitCode;
use latchkey_client::{blocking::Client, ClientError, Target, Transport};
use latchkey_proto::LoginParams;
use out::note;

/// A failure, with the code to exit with.
struct Failure {
    code: ExitCode,
    /// The daemon's error kind, when it said what went wrong (the `kind` of a JSON error;
    /// else the exit code's name is).
    kind: Option<&'static str>,
    error: anyhow::Error,
}

impl Failure {
    fn new(code: ExitCode, error: anyhow::Error) -> Self {
        Failure {
            code,
            kind: None,
            error,
        }
    }
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        let code = ExitCode::of(&err);
        let kind = err.kind().map(|k| k.as_str());
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
        Failure { code, kind, error }
    }
}

impl From<out::StdoutError> for Failure {
    fn from(err: out::StdoutError) -> Self {
        failure(err.into())
    }
}

fn failure(error: anyhow::Error) -> Failure {
    Failure::new(ExitCode::Failure, error)
}

fn usage(error: anyhow::Error) -> Failure {
    Failure::new(ExitCode::Usage, error)
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| failure(e.into()))?;
    out::line(output::json_safe(&text))?;
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

/// Under `--verbose`, says on stderr which way the daemon was reached.
pub(crate) fn say_transport(cli: &Cli, client: &Client, target: &Target) {
    if !cli.verbose {
        return;
    }
    match (client.transport(), target) {
        (Transport::Socket, Target::Socket(path)) => {
            note!("latchkey: using the socket {}", path.display())
        }
        (Transport::Socket, _) => note!(
            "latchkey: using the socket {}",
            latchkey_paths::default_socket_path().display()
        ),
        (Transport::Pipe, Target::Pipe(name)) => {
            note!("latchkey: using the named pipe {name}")
        }
        (Transport::Pipe, _) => note!("latchkey: using the named pipe"),
        (Transport::Dbus, _) => {
            note!("latchkey: using the session bus (dev.latchkey.Latchkey1)")
        }
    }
}

fn connect(cli: &Cli) -> Result<Client, Failure> {
    let target = target(cli)?;
    let mut client = Client::connect_to(&target)?;
    say_transport(cli, &client, &target);
    client.version()?;
    grant::present(cli, &mut client)?;
    Ok(client)
}

/// Runs the command: one function per command, in its module.
fn run(cli: Cli) -> Result<(), Failure> {
    let cli = &cli;
    match &cli.command {
        Command::Get {
            service,
            account,
            scopes,
            min_valid,
            json,
        } => get::run(
            cli,
            get::Request {
                service,
                account: account.as_deref(),
                scopes,
                min_valid: *min_valid,
                json: *json,
            },
        ),
        Command::Set {
            service,
            account,
            kind,
            username,
            bundle,
            stray,
        } => set::run(
            cli,
            set::Request {
                service,
                account: account.as_deref(),
                kind: *kind,
                username: username.as_deref(),
                bundle: *bundle,
                stray,
            },
        ),
        Command::Clear { service, account } => status::clear(cli, service, account.as_deref()),
        Command::Status {
            service,
            account,
            json,
        } => status::status(cli, service.as_deref(), account.as_deref(), *json),
        Command::List { json } => status::list(cli, *json),
        Command::Login {
            provider,
            account,
            scopes,
            device,
            no_browser,
            json,
        } => login::run(
            cli,
            LoginParams {
                provider: provider.clone(),
                account: account.clone(),
                scopes: scopes.clone(),
                device: *device,
            },
            !no_browser,
            *json,
        ),
        Command::Migrate { to, json } => migrate::run(&mut connect(cli)?, to, *json),
        Command::Logout {
            service,
            account,
            json,
        } => logout::run(cli, service, account.as_deref(), *json),
        Command::Grant { command } => grant::run(cli, command),
        Command::Provider { command } => provider::run(cli, command),
        Command::Proxy { port, config } => proxy::run(cli, *port, config.as_deref()),
        Command::Install {
            print,
            dry_run,
            daemon,
        } => install::run(*print, *dry_run, daemon.as_deref()),
        Command::Uninstall { dry_run } => install::run_uninstall(*dry_run),
        Command::Doctor => doctor::run(cli),
        Command::Unlock => lock::unlock(cli),
        Command::Lock => lock::lock(cli),
        Command::Passwd => lock::passwd(cli),
        Command::Reload { json } => reload::run(cli, *json),
        Command::Version { json } => version::run(cli, *json),
        Command::Audit(args) => audit::run(args),
        Command::Run {
            env,
            env_file,
            min_valid,
            command,
        } => run::run(
            cli,
            run::Request {
                env,
                env_file: env_file.as_deref(),
                min_valid: *min_valid,
                command,
            },
        ),
        Command::KubeCredential { service, account } => kube::run(cli, service, account.as_deref()),
        Command::Completions { shell } => completions::completions(*shell),
        Command::Man { dir } => completions::man(dir),
    }
}

/// Whether the raw arguments ask for JSON (before a `--`), for errors clap finds before
/// there is a parsed command to ask.
fn json_in_args() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--json")
}

/// Prints an error: `latchkey: ...` for people, or `{"error":{"kind":...,"message":...}}`
/// when the command was asked for JSON. Both on stderr.
fn report(kind: &str, text: &str, json: bool) {
    if json {
        let value = serde_json::json!({ "error": { "kind": kind, "message": text } });
        note!("{}", output::json_safe(&value.to_string()));
    } else {
        // Errors can quote the daemon or the bus: escaped again, line by line (escaping twice
        // changes nothing).
        note!("latchkey: {}", output::sanitize_lines(text));
    }
}

/// The command line, or the exit code of clap's answer (help, version or a usage error).
fn parse() -> Result<Cli, std::process::ExitCode> {
    let parsed = cli::command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let err = match parsed {
        Ok(cli) => return Ok(cli),
        Err(err) => err,
    };
    let asked = matches!(
        err.kind(),
        clap::error::ErrorKind::DisplayHelp
            | clap::error::ErrorKind::DisplayVersion
            | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !asked && json_in_args() {
        let text = err.render().to_string();
        let text = text.trim().trim_start_matches("error: ");
        report(ExitCode::Usage.name(), text, true);
    } else {
        // Help into a closed pipe (`latchkey --help | head -1`) is not an error.
        let _ = err.print();
    }
    Err(std::process::ExitCode::from(err.exit_code() as u8))
}

fn main() -> std::process::ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let json = cli.command.json();
    match run(cli) {
        Ok(()) => ExitCode::Success.into(),
        // The reader went away (`latchkey list | head -1`): nothing more to say to anyone.
        Err(failure) if out::StdoutError::is_closed(&failure.error) => ExitCode::Success.into(),
        Err(failure) => {
            let text = format!("{:#}", failure.error);
            report(failure.kind.unwrap_or(failure.code.name()), &text, json);
            failure.code.into()
        }
    }
}

//! `latchkey run`: fetch every secret a command needs, then run it with them in its
//! environment. It fails closed: if one secret cannot be had, the command is not started and
//! the exit code says why (not found, locked, log in again, ...), so a script never runs with
//! an empty token.
//!
//! On Unix latchkey then becomes the command (`exec`): it keeps latchkey's pid, so signals
//! (Ctrl-C, `kill`) reach it and its exit status is the caller's, and no parent process is
//! left holding the secrets. Rust's runtime ignores `SIGPIPE`; `exec` through
//! `std::process::Command` puts it back to the default, as the command expects. On Windows,
//! where there is no `exec`, latchkey starts the command, ignores Ctrl-C itself (the command
//! gets it from the console) and exits with the command's code.
//!
//! Secrets travel only from the daemon into the command's environment: never into argv, a log
//! or an error message.

mod mapping;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use latchkey_proto::{GetParams, Secret};

use crate::cli::Cli;
use crate::exit_codes::ExitCode;
use crate::{output, usage, Failure};

/// What `latchkey run` was asked to do.
pub struct Request<'a> {
    /// `-e` values.
    pub env: &'a [String],
    /// `--env-file`.
    pub env_file: Option<&'a Path>,
    /// `--min-valid`.
    pub min_valid: Option<u64>,
    /// The command and its arguments.
    pub command: &'a [OsString],
}

/// The mappings from `-e` and `--env-file`, checked.
fn mappings(request: &Request<'_>) -> Result<Vec<mapping::Mapping>, Failure> {
    let from_file = match request.env_file {
        Some(path) => mapping::read_file(path).map_err(usage)?,
        None => Vec::new(),
    };
    let from_args = request
        .env
        .iter()
        .map(|text| {
            mapping::parse(text).map_err(|e| usage(anyhow!("-e {}: {e}", output::sanitize(text))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let all = mapping::combine(from_file, from_args).map_err(usage)?;
    if all.is_empty() {
        return Err(usage(anyhow!(
            "nothing to put in the environment: give -e VAR=SERVICE or --env-file FILE"
        )));
    }
    Ok(all)
}

/// Fetches every mapping's secret, in order; the first failure stops it.
fn fetch(
    cli: &Cli,
    mappings: &[mapping::Mapping],
    min_valid: Option<u64>,
) -> Result<Vec<(String, Secret)>, Failure> {
    let mut client = crate::connect(cli)?;
    let mut secrets = Vec::with_capacity(mappings.len());
    for m in mappings {
        // Escaped here: a name with a line break must not forge a line of the message.
        let entry = format!(
            "{} ({}{})",
            m.var,
            output::sanitize(&m.service),
            m.account
                .as_deref()
                .map(|a| format!(":{}", output::sanitize(a)))
                .unwrap_or_default()
        );
        let result = client
            .get_with(GetParams {
                service: m.service.clone(),
                account: m.account.clone(),
                scopes: m.scopes.clone(),
                min_valid_secs: min_valid,
                grant: None,
                proxy: false,
                rejected: None,
            })
            .map_err(|e| {
                let mut failure = Failure::from(e);
                failure.error = failure
                    .error
                    .context(format!("the command was not started: {entry}"));
                failure
            })?;
        if result.secret.expose().contains('\0') {
            return Err(crate::failure(anyhow!(
                "the command was not started: {entry}: the secret holds a NUL byte, which no \
                 environment variable can"
            )));
        }
        secrets.push((m.var.clone(), result.secret));
    }
    Ok(secrets)
}

/// Why the command could not be started, as a shell would say it (127: not found, 126: found
/// but not runnable).
fn not_started(program: &OsString, err: std::io::Error) -> Failure {
    let shown = PathBuf::from(program).display().to_string();
    let shown = output::sanitize(&shown);
    match err.kind() {
        std::io::ErrorKind::NotFound => Failure::new(
            ExitCode::CommandNotFound,
            anyhow!("cannot run {shown}: not found"),
        ),
        _ => Failure::new(
            ExitCode::CommandNotRunnable,
            anyhow!("cannot run {shown}: {err}"),
        ),
    }
}

/// Runs `latchkey run`. On Unix it returns only when the command could not be started.
pub fn run(cli: &Cli, request: Request<'_>) -> Result<(), Failure> {
    let mappings = mappings(&request)?;
    let Some((program, args)) = request.command.split_first() else {
        return Err(usage(anyhow!("no command given after --")));
    };
    let secrets = fetch(cli, &mappings, request.min_valid)?;
    let mut command = std::process::Command::new(program);
    command.args(args);
    for (var, secret) in &secrets {
        command.env(var, secret.expose());
    }
    drop(secrets);
    start(command, program)
}

#[cfg(unix)]
fn start(mut command: std::process::Command, program: &OsString) -> Result<(), Failure> {
    use std::os::unix::process::CommandExt;
    // Only returns on failure.
    let err = command.exec();
    Err(not_started(program, err))
}

#[cfg(windows)]
fn start(mut command: std::process::Command, program: &OsString) -> Result<(), Failure> {
    // The console sends Ctrl-C to the command and to us: let the command decide, and wait.
    // SAFETY: a null handler with TRUE makes this process ignore Ctrl-C; no pointers kept.
    unsafe {
        windows_sys::Win32::System::Console::SetConsoleCtrlHandler(None, 1);
    }
    let mut child = command.spawn().map_err(|e| not_started(program, e))?;
    drop(command);
    let status = child
        .wait()
        .map_err(|e| crate::failure(anyhow!("cannot wait for the command: {e}")))?;
    std::process::exit(status.code().unwrap_or(1));
}

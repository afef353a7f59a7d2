//! `docker-credential-latchkey`: docker's credential helper backed by latchkeyd
//! (`"credsStore": "latchkey"` in `~/.docker/config.json`). This file reads the action and
//! stdin, and writes the answer or the one-line error on stdout with exit 1, as the
//! docker-credential-helpers contract has it. The work is in the library's `docker` module.

use std::io::Write;
use std::process::ExitCode;

use latchkey_credential_helpers::docker::{self, entry::ServerUrl, protocol};
use latchkey_credential_helpers::{daemon, input, Error};

const USAGE: &str = "Usage: docker-credential-latchkey <store|get|erase|list|version>";

/// Writes `text` on stdout.
fn write_out(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::Write)
}

fn read_stdin() -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
    Ok(input::read_all(std::io::stdin().lock(), input::MAX_INPUT)?)
}

/// The server URL on stdin, as given and normalised.
fn server_url() -> Result<(String, ServerUrl), Error> {
    let raw = protocol::parse_server_url(&read_stdin()?)?;
    let url = ServerUrl::parse(&raw)?;
    Ok((raw, url))
}

fn run(action: &str) -> Result<(), Error> {
    match action {
        "store" => {
            let credentials = protocol::parse_credentials(&read_stdin()?)?;
            // Checked before the daemon is reached.
            ServerUrl::parse(&credentials.server_url)?.key(&credentials.username)?;
            docker::store(&mut daemon::connect(None)?, &credentials)
        }
        "get" => {
            let (raw, url) = server_url()?;
            let found = docker::get(&mut daemon::connect(None)?, &url)?;
            write_out(&protocol::render_credentials(
                &raw,
                &found.username,
                &found.secret,
            ))
        }
        "erase" => {
            let (_, url) = server_url()?;
            docker::erase(&mut daemon::connect(None)?, &url).map(drop)
        }
        "list" => {
            // docker writes a placeholder; it is read (bounded) and ignored.
            read_stdin()?;
            let entries = docker::list(&mut daemon::connect(None)?)?;
            write_out(&protocol::render_list(&entries))
        }
        _ => unreachable!("actions are checked in main"),
    }
}

/// The contract's failure: one line on stdout, exit 1.
fn fail(message: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", latchkey_proto::text::escape(message));
    let _ = out.flush();
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let [action] = args.as_slice() else {
        return fail(USAGE);
    };
    match action.to_str() {
        Some(action @ ("store" | "get" | "erase" | "list")) => match run(action) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&err.to_string()),
        },
        Some("version") => match write_out(&format!(
            "docker-credential-latchkey (latchkey) {}\n",
            env!("CARGO_PKG_VERSION")
        )) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        _ => fail(&format!(
            "Unknown credential action `{}`",
            action.to_string_lossy()
        )),
    }
}

//! `latchkey version`: the CLI's version always, and the daemon's when it runs. A daemon that
//! is not running is an answer here, not an error (exit 0): the first thing a newcomer types
//! should work before anything is set up.

use latchkey_client::ClientError;

use crate::cli::Cli;
use crate::{out, output, print_json, Failure};

const CLI: &str = env!("CARGO_PKG_VERSION");

/// Whether `err` only means that no daemon answers.
fn not_running(err: &ClientError) -> bool {
    matches!(
        err,
        ClientError::NotRunning { .. } | ClientError::PipeNotServed { .. } | ClientError::NotOnBus
    )
}

/// Runs `latchkey version [--json]`.
pub fn run(cli: &Cli, json: bool) -> Result<(), Failure> {
    let target = crate::target(cli)?;
    let answer = latchkey_client::blocking::Client::connect_to(&target)
        .and_then(|mut client| client.version());
    match answer {
        Ok(daemon) if json => print_json(&serde_json::json!({
            "cli": CLI,
            "running": true,
            "daemon": daemon.version,
            "protocol": daemon.protocol,
        })),
        Ok(daemon) => Ok(out::line(format!(
            "latchkey {CLI} / latchkeyd {} (protocol {})",
            output::sanitize(&daemon.version),
            daemon.protocol
        ))?),
        Err(err) if not_running(&err) && json => print_json(&serde_json::json!({
            "cli": CLI,
            "running": false,
            "daemon": null,
            "protocol": null,
            "problem": err.to_string(),
        })),
        Err(err) if not_running(&err) => Ok(out::line(format!(
            "latchkey {CLI} / latchkeyd not running: {}",
            output::sanitize(&err.to_string())
        ))?),
        Err(err) => Err(err.into()),
    }
}

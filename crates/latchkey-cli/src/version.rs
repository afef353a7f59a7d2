//! `latchkey version`: the CLI's version always, and the daemon's when it runs. Without a
//! daemon it still prints the CLI's version (stdout), then says that latchkeyd is not running
//! and how to start it (stderr) and exits 7, so `latchkey version` stays a check that the
//! daemon answers.

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
    // `-v` says which way the daemon was reached, as every other command does.
    let answer = latchkey_client::blocking::Client::connect_to(&target).and_then(|mut client| {
        crate::say_transport(cli, &client, &target);
        client.version()
    });
    match answer {
        Ok(daemon) if json => print_json(&serde_json::json!({
            "cli": CLI,
            "daemon": daemon.version,
            "protocol": daemon.protocol,
        })),
        Ok(daemon) => Ok(out::line(format!(
            "latchkey {CLI} / latchkeyd {} (protocol {})",
            output::sanitize(&daemon.version),
            daemon.protocol
        ))?),
        Err(err) if not_running(&err) => {
            if json {
                print_json(&serde_json::json!({
                    "cli": CLI,
                    "daemon": null,
                    "protocol": null,
                }))?;
            } else {
                out::line(format!("latchkey {CLI} / latchkeyd not running"))?;
            }
            Err(err.into())
        }
        Err(err) => Err(err.into()),
    }
}

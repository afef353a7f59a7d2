//! `latchkey status`, `latchkey list` and `latchkey clear`: what the daemon holds, as a
//! table or JSON, and removing one entry without revoking anything.

use latchkey_proto::StatusParams;

use crate::cli::Cli;
use crate::out::note;
use crate::{out, output, print_json, Failure};

/// Runs `latchkey status`: the daemon's summary, then the entries (all, or those matching).
pub fn status(
    cli: &Cli,
    service: Option<&str>,
    account: Option<&str>,
    json: bool,
) -> Result<(), Failure> {
    let mut client = crate::connect(cli)?;
    let status = client.status(StatusParams {
        service: service.map(str::to_owned),
        account: account.map(str::to_owned),
    })?;
    if json {
        print_json(&status)?;
    } else {
        out::write(format!(
            "{}{}",
            output::daemon_summary(&status.daemon),
            output::entries_table(&status.entries)
        ))?;
    }
    Ok(())
}

/// Runs `latchkey list`: every entry's metadata.
pub fn list(cli: &Cli, json: bool) -> Result<(), Failure> {
    let mut client = crate::connect(cli)?;
    let entries = client.list()?;
    if json {
        print_json(&serde_json::json!({ "entries": entries }))?;
    } else {
        out::write(output::entries_table(&entries))?;
    }
    Ok(())
}

/// Runs `latchkey clear`: removes the entry and says whether there was one.
pub fn clear(cli: &Cli, service: &str, account: Option<&str>) -> Result<(), Failure> {
    let mut client = crate::connect(cli)?;
    if client.clear(service, account)? {
        note!("removed");
    } else {
        note!("nothing to remove");
    }
    Ok(())
}

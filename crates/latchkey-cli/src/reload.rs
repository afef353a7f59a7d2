//! `latchkey reload`: asks latchkeyd to read its configuration file again (what SIGHUP does)
//! and says what changed, what waits for a restart, or why nothing changed (the daemon's
//! error names the file and the line). Served over the socket (or the pipe) only.

use anyhow::anyhow;
use latchkey_client::blocking::Client;

use crate::cli::{Cli, TransportArg};
use crate::{output, Failure};

/// Connects over the socket: `auto` means the socket here, never the bus.
fn connect(cli: &Cli) -> Result<Client, Failure> {
    if cli.transport == TransportArg::Dbus {
        return Err(crate::usage(anyhow!(
            "reload is served over the socket only; drop --transport dbus"
        )));
    }
    #[cfg(not(windows))]
    if cli.transport == TransportArg::Auto && cli.socket.is_none() {
        let target = latchkey_client::Target::Socket(latchkey_paths::default_socket_path());
        let mut client = Client::connect_to(&target)?;
        crate::grant::present(cli, &mut client)?;
        return Ok(client);
    }
    crate::connect(cli)
}

/// Runs `latchkey reload`.
pub fn run(cli: &Cli, json: bool) -> Result<(), Failure> {
    let mut client = connect(cli)?;
    let result = client.reload()?;
    if json {
        return crate::print_json(&result);
    }
    let config = output::sanitize(&result.config);
    if result.changed.is_empty() {
        println!("reloaded {config}: nothing changed");
    } else {
        println!(
            "reloaded {config}: in force now: {}",
            output::sanitize(&result.changed.join(", "))
        );
    }
    if !result.restart_needed.is_empty() {
        println!(
            "changed in the file, in force after latchkeyd restarts: {}",
            output::sanitize(&result.restart_needed.join(", "))
        );
    }
    Ok(())
}

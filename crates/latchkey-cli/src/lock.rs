//! `latchkey unlock`, `lock` and `passwd`: the store's lock, driven from the command line.
//!
//! A passphrase is read from a no-echo prompt or stdin (never argv) and sent only over the
//! socket (or the pipe on Windows), whose owner the client checks before sending anything; the
//! session bus is never used for it.

use anyhow::anyhow;
use latchkey_client::blocking::Client;
use latchkey_proto::{ErrorKind, LockResult, Secret, UnlockWith};

use crate::cli::{Cli, TransportArg};
use crate::exit_codes::ExitCode;
use crate::out::note;
use crate::{input, output, Failure};

/// Connects for a passphrase: `auto` means the socket here, never the bus.
fn connect_for_secrets(cli: &Cli) -> Result<Client, Failure> {
    if cli.transport == TransportArg::Dbus {
        return Err(crate::usage(anyhow!(
            "passphrases are sent over the socket only; drop --transport dbus"
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

fn how_it_unlocks(client: &mut Client) -> Result<(String, UnlockWith), Failure> {
    let status = client.status(Default::default())?;
    let daemon = status.daemon;
    // A daemon from before `unlock_with` existed has keychain stores only.
    Ok((
        daemon.store,
        daemon.unlock_with.unwrap_or(UnlockWith::Keychain),
    ))
}

fn secret(text: &str) -> Secret {
    Secret::new(text.to_owned())
}

/// Reads a new passphrase (twice on a terminal, one line from stdin).
fn new_passphrase() -> Result<Secret, Failure> {
    let passphrase = input::read_new_passphrase().map_err(crate::usage)?;
    Ok(secret(&passphrase))
}

fn said(result: &LockResult) -> String {
    let state = match result.locked {
        Some(true) => "locked",
        Some(false) => "unlocked",
        None => "done",
    };
    format!("{state} ({} store)", output::sanitize(&result.store))
}

/// `latchkey unlock`.
pub fn unlock(cli: &Cli) -> Result<(), Failure> {
    let mut client = connect_for_secrets(cli)?;
    let (store, how) = how_it_unlocks(&mut client)?;
    let result = match how {
        UnlockWith::Nothing => {
            return Err(Failure::new(
                ExitCode::Usage,
                anyhow!(
                    "the {} store has no lock: nothing to unlock",
                    output::sanitize(&store)
                ),
            ))
        }
        UnlockWith::Keychain => match client.unlock(None, false) {
            Err(err) if err.kind() == Some(ErrorKind::Locked) => {
                return Err(Failure::new(
                    ExitCode::Locked,
                    anyhow!(
                        "the {} keychain stayed locked: its unlock prompt was dismissed or no \
                         prompt could be shown (unlock it from the desktop session)",
                        output::sanitize(&store)
                    ),
                ))
            }
            other => other?,
        },
        UnlockWith::Passphrase => {
            let passphrase = input::read_secret("Passphrase: ").map_err(crate::usage)?;
            client.unlock(Some(secret(&passphrase)), false)?
        }
        UnlockWith::NewPassphrase => {
            note!(
                "latchkey: the {} store has no passphrase yet; choose one (it cannot be recovered)",
                output::sanitize(&store)
            );
            let passphrase = new_passphrase()?;
            client.unlock(Some(passphrase), true)?
        }
    };
    note!("{}", said(&result));
    Ok(())
}

/// `latchkey lock`.
pub fn lock(cli: &Cli) -> Result<(), Failure> {
    let mut client = crate::connect(cli)?;
    let result = client.lock()?;
    note!("{}", said(&result));
    Ok(())
}

/// `latchkey passwd`.
pub fn passwd(cli: &Cli) -> Result<(), Failure> {
    let mut client = connect_for_secrets(cli)?;
    let (store, how) = how_it_unlocks(&mut client)?;
    if how != UnlockWith::Passphrase {
        return Err(crate::usage(anyhow!(
            "the {} store has no passphrase to change{}",
            output::sanitize(&store),
            if how == UnlockWith::NewPassphrase {
                " yet: `latchkey unlock` chooses one"
            } else {
                ""
            }
        )));
    }
    let (old, new) = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let old = input::read_secret("Current passphrase: ").map_err(crate::usage)?;
        (secret(&old), new_passphrase()?)
    } else {
        let both = input::read_secrets(&["", ""]).map_err(|_| {
            crate::usage(anyhow!(
                "give the current and the new passphrase on stdin, one line each"
            ))
        })?;
        (secret(&both[0]), secret(&both[1]))
    };
    let result = client.change_passphrase(old, new)?;
    note!("passphrase changed; {}", said(&result));
    Ok(())
}

//! Reaching latchkeyd as the `latchkey` CLI does: a socket named with `--socket` (or
//! `LATCHKEY_SOCKET`) is used alone; otherwise the default socket if a daemon listens there,
//! else the session bus (Linux), or this user's named pipe (Windows). The client checks that
//! whatever answers is this user's own before it sends anything, and the protocol version is
//! checked first.
//!
//! Plus the few reads both helpers build on: the entries of one service, the newest of them,
//! and a `get` that tells "no such entry" apart from failures.

use std::path::PathBuf;

use latchkey_client::blocking::Client;
use latchkey_client::{ClientError, Target};
use latchkey_core::EntryKey;
use latchkey_proto::{ErrorKind, GetResult, Metadata, StatusParams};

/// Connects (socket, bus or pipe, as described above) and checks the daemon's protocol.
pub fn connect(socket: Option<PathBuf>) -> Result<Client, ClientError> {
    let target = match socket {
        Some(path) => Target::Socket(path),
        None => Target::Auto,
    };
    let mut client = Client::connect_to(&target)?;
    client.version()?;
    Ok(client)
}

/// The metadata of every entry of `service` (never a secret).
pub fn entries(client: &mut Client, service: &str) -> Result<Vec<Metadata>, ClientError> {
    Ok(client
        .status(StatusParams {
            service: Some(service.to_owned()),
            account: None,
        })?
        .entries)
}

/// The metadata of one entry, if it exists.
pub fn entry(client: &mut Client, key: &EntryKey) -> Result<Option<Metadata>, ClientError> {
    Ok(client
        .status(StatusParams {
            service: Some(key.service().to_owned()),
            account: Some(key.account().to_owned()),
        })?
        .entries
        .into_iter()
        .next())
}

/// The entry written last: the one a helper serves when a service holds several.
pub fn newest(entries: &[Metadata]) -> Option<&Metadata> {
    entries
        .iter()
        .max_by(|a, b| (a.updated_at, &a.account).cmp(&(b.updated_at, &b.account)))
}

/// The secret of an entry; `None` if it does not exist.
pub fn get(client: &mut Client, key: &EntryKey) -> Result<Option<GetResult>, ClientError> {
    match client.get(key.service(), Some(key.account()), &[]) {
        Ok(result) => Ok(Some(result)),
        Err(err) if err.kind() == Some(ErrorKind::NotFound) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Whether two secrets are equal, in time that depends only on their lengths.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |differ, (x, y)| differ | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(same_secret("", ""));
    }
}

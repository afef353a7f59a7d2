//! `docker-credential-latchkey`: docker's `store`, `get`, `erase` and `list` against
//! latchkey's entries ([`entry`] says which names, [`protocol`] what goes over stdin and
//! stdout).
//!
//! docker keeps one credential per registry: `store` writes the new username's entry first
//! and only then removes the entries of other usernames at that URL, so a failed write loses
//! nothing. It never writes where an entry of another kind (an OAuth login or API key kept
//! under a `docker:` name by the user) exists. `get` serves any kind (a token with its
//! account as the username), the newest entry when several exist. `erase` removes the
//! registry's `password` entries and succeeds when there are none, as the Secret Service and
//! Windows helpers do. `list` shows the `docker:` entries only, never anything else latchkey
//! holds.

pub mod entry;
pub mod protocol;

use std::collections::BTreeMap;

use latchkey_client::blocking::Client;
use latchkey_proto::{BundleInput, Kind, Secret};

use crate::daemon;
use crate::Error;
use entry::ServerUrl;
use protocol::Credentials;

/// A username and its secret, as `get` found them.
#[derive(Debug)]
pub struct Found {
    /// The username.
    pub username: String,
    /// The password or token.
    pub secret: Secret,
}

/// `store`: keeps `credentials` as the registry's one entry.
pub fn store(client: &mut Client, credentials: &Credentials) -> Result<(), Error> {
    let url = ServerUrl::parse(&credentials.server_url)?;
    let key = url.key(&credentials.username)?;
    let existing = daemon::entries(client, &url.service())?;
    if let Some(other) = existing.iter().find(|e| e.kind != Kind::Password) {
        return Err(Error::NotOurs {
            service: other.service.clone(),
            account: other.account.clone(),
            kind: other.kind,
        });
    }
    client.set(
        key.service(),
        Some(key.account()),
        BundleInput::Password {
            username: credentials.username.clone(),
            password: credentials.secret.clone(),
        },
    )?;
    for old in existing.iter().filter(|e| e.account != key.account()) {
        client.clear(&old.service, Some(&old.account))?;
    }
    Ok(())
}

/// `get`: the registry's credentials, or [`Error::CredentialsNotFound`].
pub fn get(client: &mut Client, url: &ServerUrl) -> Result<Found, Error> {
    let entries = daemon::entries(client, &url.service())?;
    let newest = daemon::newest(&entries).ok_or(Error::CredentialsNotFound)?;
    let key = url.key(&newest.account)?;
    let result = daemon::get(client, &key)?.ok_or(Error::CredentialsNotFound)?;
    let username = match (result.kind, result.username) {
        (Kind::Password, Some(username)) => username,
        _ => key.account().to_owned(),
    };
    Ok(Found {
        username,
        secret: result.secret,
    })
}

/// `erase`: removes the registry's `password` entries; how many there were.
pub fn erase(client: &mut Client, url: &ServerUrl) -> Result<usize, Error> {
    let mut removed = 0;
    for entry in daemon::entries(client, &url.service())? {
        if entry.kind == Kind::Password && client.clear(&entry.service, Some(&entry.account))? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// `list`: every registry with a `docker:` entry, and its username (the newest entry's
/// account).
pub fn list(client: &mut Client) -> Result<BTreeMap<String, String>, Error> {
    let mut by_url: BTreeMap<String, Vec<latchkey_proto::Metadata>> = BTreeMap::new();
    for entry in client.list()? {
        if let Some(url) = ServerUrl::from_service(&entry.service) {
            by_url.entry(url.to_owned()).or_default().push(entry);
        }
    }
    Ok(by_url
        .into_iter()
        .filter_map(|(url, entries)| daemon::newest(&entries).map(|e| (url, e.account.clone())))
        .collect())
}

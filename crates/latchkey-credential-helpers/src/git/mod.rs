//! `git-credential-latchkey`: git's `get`, `store` and `erase` against latchkey's entries.
//!
//! - `get` answers from the provider entry, else from the stored entry for the request's
//!   username, else from the newest stored entry of the request's service
//!   ([`entry`] says which names). No entry: an empty answer, so git asks its next helper or
//!   the user.
//! - `store` saves the username and password git used successfully as a `password` entry.
//!   It writes nothing when a provider entry serves the request (git hands back the token it
//!   was given), when the same password is stored already, or over an entry of another kind.
//! - `erase` (git's answer to a refused credential) removes stored `password` entries of the
//!   request's service whose username matches (when git sends one) and whose password is the
//!   one refused (when git sends one), so a password changed since is kept. Provider entries
//!   are never removed: a refused token is reported, and the login stays for the user to
//!   renew.

pub mod entry;
pub mod protocol;

use latchkey_client::blocking::Client;
use latchkey_core::EntryKey;
use latchkey_proto::{BundleInput, GetResult, Kind, Secret};

use crate::daemon;
use crate::Error;
use entry::{NameError, Options, Provider};
use protocol::{Answer, Request};

/// A request with the entry names it maps to, checked before the daemon is contacted.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The request.
    pub request: Request,
    /// The provider entry that serves it, if any.
    pub provider: Option<Provider>,
    /// The service of the entries `store` keeps for it.
    pub stored_service: String,
    /// The stored entry of the request's username, if it has one.
    pub stored_key: Option<EntryKey>,
}

impl Plan {
    /// Maps `request` to entry names.
    pub fn new(request: Request, options: &Options) -> Result<Self, NameError> {
        Ok(Self {
            provider: entry::provider(&request, options)?,
            stored_service: entry::stored_service(&request)?,
            stored_key: entry::stored_key(&request)?,
            request,
        })
    }
}

/// What `store` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Saved the password.
    Saved,
    /// The same password was stored already.
    Unchanged,
    /// A provider entry serves this request; nothing was written.
    ProviderServes(EntryKey),
}

/// What `erase` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    /// Stored entries removed.
    pub removed: usize,
    /// The provider entry that serves the request, kept.
    pub provider_kept: Option<EntryKey>,
}

/// `get`: the answer for git, or `None` when no entry serves the request.
pub fn get(client: &mut Client, plan: &Plan) -> Result<Option<Answer>, Error> {
    if let Some(provider) = &plan.provider {
        match daemon::get(client, &provider.key)? {
            Some(result) => return Ok(Some(answer(result, &provider.username))),
            None if provider.explicit => return Ok(None),
            None => {}
        }
    }
    let key = match &plan.stored_key {
        Some(key) => key.clone(),
        None => {
            let entries = daemon::entries(client, &plan.stored_service)?;
            match daemon::newest(&entries) {
                Some(newest) => EntryKey::new(&newest.service, Some(&newest.account))
                    .map_err(NameError::from)?,
                None => return Ok(None),
            }
        }
    };
    Ok(daemon::get(client, &key)?.map(|result| answer(result, key.account())))
}

/// The answer for a `get` result; `username` goes with a token or key.
fn answer(result: GetResult, username: &str) -> Answer {
    let username = match (result.kind, &result.username) {
        (Kind::Password, Some(stored)) => stored.clone(),
        _ => username.to_owned(),
    };
    Answer {
        username,
        expiry_utc: result.expires_at.map(|at| at.timestamp()),
        password: result.secret,
    }
}

/// `store`: saves what git used successfully (see the module's documentation).
pub fn store(client: &mut Client, plan: &Plan) -> Result<Stored, Error> {
    let request = &plan.request;
    let username = request
        .username
        .as_deref()
        .ok_or(protocol::RequestError::Missing("username"))?;
    let password = request
        .password
        .as_ref()
        .ok_or(protocol::RequestError::Missing("password"))?;
    if let Some(provider) = &plan.provider {
        if provider.explicit || daemon::entry(client, &provider.key)?.is_some() {
            return Ok(Stored::ProviderServes(provider.key.clone()));
        }
    }
    let key = plan
        .stored_key
        .clone()
        .ok_or(protocol::RequestError::Missing("username"))?;
    if let Some(existing) = daemon::entry(client, &key)? {
        if existing.kind != Kind::Password {
            return Err(Error::NotOurs {
                service: existing.service,
                account: existing.account,
                kind: existing.kind,
            });
        }
        if let Some(current) = daemon::get(client, &key)? {
            let same = current.kind == Kind::Password
                && current.username.as_deref() == Some(username)
                && daemon::same_secret(current.secret.expose(), password.expose());
            if same {
                return Ok(Stored::Unchanged);
            }
        }
    }
    client.set(
        key.service(),
        Some(key.account()),
        BundleInput::Password {
            username: username.to_owned(),
            password: Secret::new(password.expose().to_owned()),
        },
    )?;
    Ok(Stored::Saved)
}

/// `erase`: removes the stored passwords git reports refused (see the module's
/// documentation).
pub fn erase(client: &mut Client, plan: &Plan) -> Result<Erased, Error> {
    let mut erased = Erased::default();
    if let Some(provider) = &plan.provider {
        if provider.explicit {
            erased.provider_kept = Some(provider.key.clone());
            return Ok(erased);
        }
        if daemon::entry(client, &provider.key)?.is_some() {
            erased.provider_kept = Some(provider.key.clone());
        }
    }
    let request = &plan.request;
    let candidates = daemon::entries(client, &plan.stored_service)?
        .into_iter()
        .filter(|e| e.kind == Kind::Password)
        .filter(|e| request.username.as_deref().is_none_or(|u| u == e.account));
    for candidate in candidates {
        let key =
            EntryKey::new(&candidate.service, Some(&candidate.account)).map_err(NameError::from)?;
        if let Some(refused) = &request.password {
            let matches = daemon::get(client, &key)?.is_some_and(|current| {
                current.kind == Kind::Password
                    && daemon::same_secret(current.secret.expose(), refused.expose())
            });
            if !matches {
                continue;
            }
        }
        if client.clear(key.service(), Some(key.account()))? {
            erased.removed += 1;
        }
    }
    Ok(erased)
}

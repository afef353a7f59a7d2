//! Getting a route's credential from latchkeyd, under the agent's grant.
//!
//! Every request is a `get` with the agent's grant as its own `grant` and `proxy = true`, so
//! the daemon checks the grant (signature, expiry, revocation, service, account, scopes and
//! the `proxy` operation) each time; the proxy holds no grant of its own and never a refresh
//! token. Connections to the daemon are kept in a small pool and reused.

use std::sync::Mutex;

use latchkey_client::{Client, ClientError, Target};
use latchkey_proto::{ErrorKind, GetParams, GrantTokenText, Secret, TokenFingerprint};

use crate::config::Route;

/// Idle daemon connections kept for reuse.
const POOL: usize = 16;

/// Why no credential came back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The daemon refused the grant (or it does not cover the route).
    #[error("the grant was refused")]
    Refused,
    /// The daemon answered with another error.
    #[error("latchkeyd could not give the credential ({0})")]
    Daemon(&'static str),
    /// The daemon could not be reached.
    #[error("latchkeyd is not reachable: {0}")]
    Unreachable(String),
}

/// The daemon, and the idle connections to it.
#[derive(Debug)]
pub struct Credentials {
    target: Target,
    idle: Mutex<Vec<Client>>,
}

impl Credentials {
    /// Credentials from the daemon at `target`.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            idle: Mutex::new(Vec::new()),
        }
    }

    async fn connection(&self) -> Result<Client, CredentialError> {
        let reused = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(client) = reused {
            return Ok(client);
        }
        let unreachable = |e: ClientError| CredentialError::Unreachable(e.to_string());
        let mut client = Client::connect_to(&self.target)
            .await
            .map_err(unreachable)?;
        client.version().await.map_err(unreachable)?;
        Ok(client)
    }

    fn put_back(&self, client: Client) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL {
            idle.push(client);
        }
    }

    /// `route`'s secret, if `grant` allows proxying to it. `rejected`: the upstream refused the
    /// secret with this fingerprint; the daemon refreshes it if it still holds it (once,
    /// however many requests say so) or gives the one it holds now.
    pub async fn get(
        &self,
        route: &Route,
        grant: GrantTokenText,
        rejected: Option<TokenFingerprint>,
    ) -> Result<Secret, CredentialError> {
        let mut client = self.connection().await?;
        let params = GetParams {
            service: route.service.clone(),
            account: route.account.clone(),
            scopes: route.scopes.clone(),
            min_valid_secs: None,
            grant: Some(grant),
            proxy: true,
            rejected,
        };
        match client.get_with(params).await {
            Ok(result) => {
                self.put_back(client);
                Ok(result.secret)
            }
            Err(ClientError::Daemon(e)) => {
                self.put_back(client);
                Err(match e.kind() {
                    ErrorKind::PermissionDenied => CredentialError::Refused,
                    kind => CredentialError::Daemon(kind.as_str()),
                })
            }
            // The connection is in doubt: drop it.
            Err(e) => Err(CredentialError::Unreachable(e.to_string())),
        }
    }
}

//! Logins run by the daemon: `login` starts one (browser or device) as a task, `login_wait`
//! waits for its outcome, `login_cancel` ends it, and `logout` revokes then deletes. Pending
//! logins are single-use, expire after [`LIFETIME`] and are removed afterwards; their codes,
//! verifiers and tokens stay inside the task.
//!
//! Client secrets of confidential clients are entries of their own under the reserved
//! service [`CLIENT_SECRET_SERVICE`], written only through `provider_secret`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use latchkey_core::{EntryKey, TokenService};
use latchkey_oauth::{LoginError, OAuth};
use latchkey_proto::{
    BundleInput, ErrorKind, GetParams, KeyParams, LoginParams, LoginStarted, LogoutResult,
    Metadata, ProviderInfo, RevocationOutcome, RpcError, Secret, SetParams,
};
use tokio::sync::watch;
use tracing::{info, warn};

/// How long a login waits for the user unless configured otherwise.
pub const LIFETIME: Duration = Duration::from_secs(600);
/// How long a finished login's outcome stays for a late `login_wait`.
const OUTCOME_KEPT: Duration = Duration::from_secs(60);
/// Logins pending at once; more are refused.
const MAX_PENDING: usize = 16;
/// Services under this prefix belong to the daemon; clients cannot read or write them.
pub const RESERVED_PREFIX: &str = latchkey_core::RESERVED_PREFIX;
/// The service whose accounts are provider names and whose entries are client secrets.
pub const CLIENT_SECRET_SERVICE: &str = "latchkey:client-secret";

type Outcome = Option<Result<Metadata, RpcError>>;

/// Where a login is; changed under its mutex so a cancel and a completion cannot both win.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for the user (or the provider).
    Waiting,
    /// Cancelled while waiting; whatever the flow brings is dropped.
    Cancelled,
    /// The tokens arrived and are being stored, or are stored: too late to cancel.
    Storing,
}

struct Pending {
    key: EntryKey,
    scopes: Vec<String>,
    started: LoginStarted,
    outcome: watch::Receiver<Outcome>,
    stage: Arc<Mutex<Stage>>,
    cancel: tokio_util::sync::CancellationToken,
}

/// A place among the [`MAX_PENDING`] logins that may wait at once; given back on drop.
struct Slot(Arc<Inner>);

impl Slot {
    fn take(inner: &Arc<Inner>) -> Option<Self> {
        inner
            .waiting
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| (n < MAX_PENDING).then_some(n + 1),
            )
            .ok()
            .map(|_| Self(Arc::clone(inner)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0
            .waiting
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn stage(stage: &Mutex<Stage>) -> std::sync::MutexGuard<'_, Stage> {
    stage.lock().unwrap_or_else(|p| p.into_inner())
}

/// Provider settings refused at start-up, kept to explain them in `providers`.
pub type Problems = Vec<(String, String)>;

/// What logins work with, from the configuration; a reload replaces it whole. Logins already
/// started keep the provider they started with.
#[derive(Debug)]
pub struct LoginSettings {
    /// The OAuth client for the usable providers (none configured: every login is refused).
    pub oauth: Option<Arc<OAuth>>,
    /// Providers whose settings were refused, and why.
    pub problems: Problems,
    /// How long a login waits for the user.
    pub lifetime: Duration,
    /// The configuration file, for messages that say where to configure a provider.
    pub config_file: Option<std::path::PathBuf>,
}

struct Inner {
    service: TokenService,
    /// Replaced whole by a reload; read with [`Logins::settings`].
    settings: std::sync::RwLock<Arc<LoginSettings>>,
    pending: Mutex<HashMap<String, Pending>>,
    /// Logins waiting for the user now (finished ones no longer count).
    waiting: std::sync::atomic::AtomicUsize,
}

/// The daemon's logins. Cheap to clone.
#[derive(Clone)]
pub struct Logins {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Logins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logins").finish_non_exhaustive()
    }
}

fn login_failed(err: &LoginError) -> RpcError {
    let mut rpc = match err {
        LoginError::UnknownProvider(_) | LoginError::Unsupported(_) => {
            RpcError::new(ErrorKind::InvalidRequest, err.to_string())
        }
        _ => RpcError::new(ErrorKind::LoginFailed, err.to_string()),
    };
    if rpc.data.kind == ErrorKind::LoginFailed {
        rpc.data.retryable = Some(err.retryable());
    }
    rpc
}

/// Whether `service` is reserved for the daemon's own entries.
pub fn reserved(service: &str) -> bool {
    latchkey_core::is_reserved(service)
}

fn invalid(message: impl Into<String>) -> RpcError {
    RpcError::new(ErrorKind::InvalidRequest, message)
}

impl Logins {
    /// Logins for `service` with `settings`.
    pub fn new(service: TokenService, settings: LoginSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                service,
                settings: std::sync::RwLock::new(Arc::new(settings)),
                pending: Mutex::new(HashMap::new()),
                waiting: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    /// The settings in force now.
    pub fn settings(&self) -> Arc<LoginSettings> {
        Arc::clone(
            &self
                .inner
                .settings
                .read()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Uses `settings` from now on (a reload); pending logins finish with what they started
    /// with.
    pub fn replace_settings(&self, settings: LoginSettings) {
        *self
            .inner
            .settings
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(settings);
    }

    /// How long a login waits for the user.
    pub fn lifetime(&self) -> Duration {
        self.settings().lifetime
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.inner.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The OAuth client, if any provider is configured.
    pub fn oauth(&self) -> Option<Arc<OAuth>> {
        self.settings().oauth.clone()
    }

    /// Starts a login; its outcome is stored as the entry (provider, account).
    pub async fn start(&self, params: &LoginParams) -> Result<LoginStarted, RpcError> {
        let key = EntryKey::new(&params.provider, params.account.as_deref())
            .map_err(|e| invalid(e.to_string()))?;
        if reserved(key.service()) {
            return Err(invalid("that name is reserved for latchkey's own use"));
        }
        let settings = self.settings();
        let oauth = settings
            .oauth
            .clone()
            .filter(|o| o.provider(key.service()).is_some())
            .ok_or_else(|| crate::login_help::not_configured(key.service(), &settings))?;
        // The place is taken before any network wait, so bursts cannot overshoot the cap.
        let slot = Slot::take(&self.inner).ok_or_else(|| {
            invalid(format!(
                "{MAX_PENDING} logins are already pending; finish or cancel one first"
            ))
        })?;
        let provider = key.service().to_owned();
        let login_id = latchkey_oauth::random_id();
        let lifetime = settings.lifetime;
        let expires_at = Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or_default();
        let (started, flow) = if params.device {
            let (device, flow) = oauth
                .start_device(&provider, &params.scopes, lifetime)
                .await
                .map_err(|e| login_failed(&e))?;
            let expires_at =
                Utc::now() + chrono::Duration::from_std(device.expires_in).unwrap_or_default();
            (
                LoginStarted {
                    login_id: login_id.clone(),
                    authorization_url: None,
                    verification_uri: Some(device.verification_uri),
                    verification_uri_complete: device.verification_uri_complete,
                    user_code: Some(device.user_code),
                    expires_at,
                },
                flow,
            )
        } else {
            let (browser, flow) = oauth
                .start_browser(&provider, &params.scopes, lifetime)
                .await
                .map_err(|e| login_failed(&e))?;
            (
                LoginStarted {
                    login_id: login_id.clone(),
                    authorization_url: Some(browser.authorization_url),
                    verification_uri: None,
                    verification_uri_complete: None,
                    user_code: None,
                    expires_at,
                },
                flow,
            )
        };
        let (tx, rx) = watch::channel(None);
        let this = self.clone();
        let id = login_id.clone();
        let requested = oauth.login_scopes_for(&provider, &params.scopes);
        let entry = key.clone();
        let stage_of_task = Arc::new(Mutex::new(Stage::Waiting));
        let cancel = tokio_util::sync::CancellationToken::new();
        let (task_stage, task_cancel) = (Arc::clone(&stage_of_task), cancel.clone());
        tokio::spawn(async move {
            let arrived = tokio::select! {
                arrived = flow => arrived,
                () = task_cancel.cancelled() => Err(LoginError::Cancelled),
            };
            drop(slot);
            // Once the tokens are here, storing them finishes even if a cancel comes now.
            let arrived = {
                let mut stage = stage(&task_stage);
                match (*stage, arrived) {
                    (Stage::Cancelled, Ok(completed)) => {
                        completed.finish(Err("the login was cancelled".into()));
                        Err(LoginError::Cancelled)
                    }
                    (_, Ok(completed)) => {
                        *stage = Stage::Storing;
                        Ok(completed)
                    }
                    (_, Err(err)) => Err(err),
                }
            };
            let outcome = match arrived {
                Ok(completed) => {
                    let tokens = &completed.tokens;
                    let bundle = BundleInput::Oauth2 {
                        access_token: tokens.access_token.clone(),
                        refresh_token: tokens.refresh_token.clone(),
                        token_type: Some(tokens.token_type.clone()),
                        expires_at: None,
                        expires_in: tokens.expires_in,
                        scopes: tokens.scopes.clone().unwrap_or(requested),
                        id_token: tokens.id_token.clone(),
                        provider: Some(key.service().to_owned()),
                    };
                    let stored = this
                        .inner
                        .service
                        .set(SetParams {
                            service: key.service().to_owned(),
                            account: Some(key.account().to_owned()),
                            bundle,
                        })
                        .await
                        .map_err(|e| e.to_rpc());
                    completed.finish(stored.as_ref().map(|_| ()).map_err(|e| {
                        format!("latchkey could not store the tokens: {}", e.message)
                    }));
                    stored
                }
                Err(err) => Err(login_failed(&err)),
            };
            let result = match &outcome {
                Ok(_) => "ok",
                Err(e) => e.data.kind.as_str(),
            };
            info!(target: "latchkey::audit", method = "login", entry = %key, result, "login finished");
            let _ = tx.send(Some(outcome));
            tokio::time::sleep(OUTCOME_KEPT).await;
            this.pending().remove(&id);
        });
        self.pending().insert(
            login_id,
            Pending {
                key: entry,
                scopes: params.scopes.clone(),
                started: started.clone(),
                outcome: rx,
                stage: stage_of_task,
                cancel,
            },
        );
        // The task also ends a login nobody completes: the flow gives up after `lifetime`.
        Ok(started)
    }

    /// Whether the login `login_id` is still waiting for the user.
    pub fn is_waiting(&self, login_id: &str) -> bool {
        self.pending()
            .get(login_id)
            .is_some_and(|p| *stage(&p.stage) == Stage::Waiting && p.outcome.borrow().is_none())
    }

    /// The start of a login that is still waiting, if it logs (provider, account) in with
    /// `scopes`.
    pub fn waiting_login(
        &self,
        login_id: &str,
        provider: &str,
        account: &str,
        scopes: &[String],
    ) -> Option<LoginStarted> {
        let pending = self.pending();
        let p = pending.get(login_id)?;
        (p.key.service() == provider && p.key.account() == account && p.scopes == scopes)
            .then(|| p.started.clone())
            .filter(|_| *stage(&p.stage) == Stage::Waiting && p.outcome.borrow().is_none())
    }

    /// Waits for a login's outcome.
    pub async fn wait(&self, login_id: &str) -> Result<Metadata, RpcError> {
        let mut outcome = self
            .pending()
            .get(login_id)
            .map(|p| p.outcome.clone())
            .ok_or_else(|| {
                RpcError::new(
                    ErrorKind::NotFound,
                    "no login with that id (it may have finished or expired)",
                )
            })?;
        let done = match outcome.wait_for(Option::is_some).await {
            Ok(done) => done.clone(),
            Err(_) => None,
        };
        done.unwrap_or_else(|| Err(login_failed(&LoginError::Cancelled)))
    }

    /// Cancels a pending login; `true` if it was still waiting (a login whose tokens have
    /// arrived is stored regardless, and `false` says so).
    pub fn cancel(&self, login_id: &str) -> bool {
        let pending = self.pending();
        let Some(p) = pending.get(login_id) else {
            return false;
        };
        let mut stage = stage(&p.stage);
        if *stage != Stage::Waiting || p.outcome.borrow().is_some() {
            return false;
        }
        *stage = Stage::Cancelled;
        p.cancel.cancel();
        true
    }

    /// Revokes an entry's tokens at its provider, then deletes it. The entry is retired first:
    /// from then on it answers as gone, and a refresh in flight that lands later revokes the
    /// refresh token it received instead of saving it (logout wins, without waiting for it).
    pub async fn logout(&self, params: KeyParams) -> Result<LogoutResult, RpcError> {
        let key = EntryKey::new(&params.service, params.account.as_deref())
            .map_err(|e| invalid(e.to_string()))?;
        let service = &self.inner.service;
        let tokens = match service.retire(&key).await {
            Ok(tokens) => tokens,
            Err(latchkey_core::Error::NotFound) => {
                return Ok(LogoutResult {
                    removed: false,
                    revocation: RevocationOutcome::Unsupported,
                })
            }
            Err(err) => return Err(err.to_rpc()),
        };
        let oauth = self.oauth();
        let revocation = match (&tokens, &oauth) {
            (Some(bundle), Some(oauth)) => match bundle.provider.as_deref() {
                Some(provider) if oauth.provider(provider).is_some() => {
                    // An expired access token is not sent: nothing is left to revoke.
                    let live = bundle.expires_at.is_none_or(|at| at > Utc::now());
                    let access =
                        (live && !bundle.access_token.is_empty()).then_some(&bundle.access_token);
                    oauth
                        .revoke(provider, bundle.refresh_token.as_ref(), access)
                        .await
                }
                _ => RevocationOutcome::Unsupported,
            },
            _ => RevocationOutcome::Unsupported,
        };
        let removed = service
            .clear(KeyParams {
                service: key.service().to_owned(),
                account: Some(key.account().to_owned()),
            })
            .await
            .map_err(|e| e.to_rpc())?;
        Ok(LogoutResult {
            removed,
            revocation,
        })
    }

    /// Stores (or with `None`, removes) a confidential client's secret. Only a provider
    /// latchkey knows (a built-in template or one in the configuration) takes one: a typo
    /// would otherwise store a secret nothing ever uses. Removing works for any name, so a
    /// secret left by a provider since removed from the configuration can go too.
    pub async fn set_client_secret(
        &self,
        provider: &str,
        secret: Option<Secret>,
    ) -> Result<bool, RpcError> {
        EntryKey::new(CLIENT_SECRET_SERVICE, Some(provider)).map_err(|e| invalid(e.to_string()))?;
        let service = &self.inner.service;
        match secret {
            Some(key) if !key.is_empty() => {
                let settings = self.settings();
                let known = settings.known_providers();
                if !known.iter().any(|name| name == provider) {
                    // The name is the client's input: the message lists ours instead.
                    let mut rpc = RpcError::new(
                        ErrorKind::NotFound,
                        format!(
                            "no provider of that name; the known providers are {}",
                            known.join(", ")
                        ),
                    );
                    rpc.data.hint = Some(format!(
                        "configure it first under [providers.NAME] in {}, then run `latchkey reload`",
                        crate::login_help::config_file_name(&settings)
                    ));
                    return Err(rpc);
                }
                service
                    .set(SetParams {
                        service: CLIENT_SECRET_SERVICE.to_owned(),
                        account: Some(provider.to_owned()),
                        bundle: BundleInput::ApiKey { key },
                    })
                    .await
                    .map_err(|e| e.to_rpc())?;
                Ok(true)
            }
            Some(_) => Err(invalid("the client secret is empty")),
            None => {
                service
                    .clear(KeyParams {
                        service: CLIENT_SECRET_SERVICE.to_owned(),
                        account: Some(provider.to_owned()),
                    })
                    .await
                    .map_err(|e| e.to_rpc())?;
                Ok(false)
            }
        }
    }

    /// Built-in and configured providers, and what each can do.
    pub async fn providers(&self) -> Vec<ProviderInfo> {
        let settings = self.settings();
        let oauth = settings.oauth.as_ref();
        let secrets = self.inner.service.status(&latchkey_proto::StatusParams {
            service: Some(CLIENT_SECRET_SERVICE.to_owned()),
            account: None,
        });
        let mut out = Vec::new();
        for name in settings.known_providers() {
            let builtin = latchkey_oauth::BUILTIN.contains(&name.as_str());
            let provider = oauth.and_then(|o| o.provider(&name));
            let problem = settings
                .problems
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, p)| p.clone());
            let mut info = ProviderInfo {
                name: name.clone(),
                builtin,
                configured: provider.is_some() || problem.is_some(),
                usable: provider.is_some(),
                flows: Vec::new(),
                revocation: false,
                issuer: None,
                client_secret: secrets.iter().any(|m| m.account == name),
                problem: problem.or_else(|| {
                    provider.is_none().then(|| {
                        format!(
                            "not configured: add [providers.{name}] with a client_id to {}",
                            crate::login_help::config_file_name(&settings)
                        )
                    })
                }),
            };
            if let Some(provider) = provider {
                if let latchkey_oauth::Source::Issuer(issuer) = &provider.source {
                    info.issuer = Some(issuer.to_string());
                }
                if let Some(e) = oauth.and_then(|o| o.known_endpoints(&name)) {
                    if e.authorization.is_some() {
                        info.flows.push("browser".into());
                    }
                    if e.device_authorization.is_some() {
                        info.flows.push("device".into());
                    }
                    info.revocation = e.revocation.is_some();
                }
            }
            out.push(info);
        }
        out
    }
}

impl LoginSettings {
    /// The built-in templates and every configured provider (usable or refused), sorted.
    pub fn known_providers(&self) -> Vec<String> {
        let mut names: Vec<String> = latchkey_oauth::BUILTIN
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        if let Some(oauth) = &self.oauth {
            names.extend(oauth.providers().map(|p| p.name.clone()));
        }
        names.extend(self.problems.iter().map(|(n, _)| n.clone()));
        names.sort();
        names.dedup();
        names
    }
}

/// Looks client secrets up in the daemon's own store, for the OAuth client.
pub struct StoredClientSecrets(pub TokenService);

impl latchkey_oauth::ClientSecrets for StoredClientSecrets {
    fn client_secret<'a>(
        &'a self,
        provider: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Secret>> + Send + 'a>> {
        Box::pin(async move {
            let params = GetParams {
                service: CLIENT_SECRET_SERVICE.to_owned(),
                account: Some(provider.to_owned()),
                scopes: Vec::new(),
                min_valid_secs: None,
                grant: None,
                proxy: false,
                rejected: None,
            };
            match self.0.get(&params).await {
                Ok(result) => Some(result.secret),
                Err(latchkey_core::Error::NotFound) => None,
                Err(err) => {
                    warn!(provider, error = %err, "cannot read the provider's client secret");
                    None
                }
            }
        })
    }
}

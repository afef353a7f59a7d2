//! Turns a parsed request into a typed [`Reply`] by calling the [`TokenService`], and audits
//! it twice: a human line in the daemon's log (target `latchkey::audit`) and a record in the
//! audit file ([`latchkey_audit`]): who asked, which method, which entry, and the outcome —
//! never a secret. See [`Handler::answer`] for which requests get a record in the file. Each
//! transport encodes the reply its own way (a JSON line, an `a{sv}`), so no transport decodes
//! another's encoding.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use latchkey_audit::{AuditLog, Record, Transport};
use latchkey_core::{EntryKey, Error, TokenService, Unlocking};
use latchkey_proto::{
    AuthenticateResult, Call, CancelResult, ClearResult, DaemonInfo, ErrorKind, GrantCreateResult,
    GrantListResult, GrantRevokeResult, GrantTokenText, ListResult, LockResult, LoginStarted,
    LogoutResult, MigrateResult, ProviderSecretResult, ProvidersResult, ReloadResult, RpcError,
    SetResult, StatusParams, StatusResult, UnlockWith, VersionResult, PROTOCOL_VERSION,
};
use serde::Serialize;
use tracing::info;

use crate::confirm::Confirm;
use crate::connect::Connect;
use crate::grants::Grants;
use crate::login::{reserved, Logins};
use crate::migrate::Migrations;
use crate::peer::Peer;
use crate::reload::Reloader;

/// The daemon's version, reported by `version` and `status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Answers requests for every transport.
#[derive(Clone, Debug)]
pub struct Handler {
    service: TokenService,
    logins: Logins,
    connect: Connect,
    /// Why the daemon uses its store, for `status`; `migrate` changes it.
    store_reason: Arc<Mutex<String>>,
    /// Runs `migrate`.
    migrations: Migrations,
    /// Runs `reload` (and SIGHUP).
    reloader: Reloader,
    /// The grant policy and the grant methods.
    grants: Grants,
    /// The audit file's writer (disabled when the daemon has none).
    audit: AuditLog,
    /// Confirm prompts (`[policy] confirm`), asked after the grant check.
    confirm: Confirm,
}

/// What a method answers, typed; the socket encodes it as the JSON-RPC `result`, D-Bus as
/// its own records.
#[derive(Debug, Serialize)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum Reply {
    Version(VersionResult),
    Get(latchkey_core::Served),
    /// `set`, and `login_wait` once the login completed.
    Entry(SetResult),
    Clear(ClearResult),
    Status(StatusResult),
    List(ListResult),
    Login(LoginStarted),
    Cancel(CancelResult),
    Logout(LogoutResult),
    Providers(ProvidersResult),
    ProviderSecret(ProviderSecretResult),
    /// `unlock`, `lock`, `passwd`.
    Lock(LockResult),
    Migrate(MigrateResult),
    Reload(ReloadResult),
    Authenticate(AuthenticateResult),
    GrantCreate(GrantCreateResult),
    GrantList(GrantListResult),
    GrantRevoke(GrantRevokeResult),
}

/// Refuses client access to the daemon's own entries (client secrets).
fn not_reserved(service: &str) -> Result<(), RpcError> {
    if reserved(service) {
        return Err(RpcError::new(
            ErrorKind::PermissionDenied,
            "entries under latchkey: are the daemon's own (use `latchkey provider set-secret`)",
        ));
    }
    Ok(())
}

/// This platform's stream transport: the Unix socket, or the named pipe on Windows.
pub const STREAM_TRANSPORT: Transport = if cfg!(windows) {
    Transport::Pipe
} else {
    Transport::Socket
};

/// What one connection has already had audited, so a client that reads the same entry in a
/// loop is audited once per connection instead of once per request. Writes, failures and every
/// other method are always audited. It also knows the transport and the grant the connection
/// presented, for the audit file's records.
///
/// Entries are remembered by their names, not by a hash of them: a name crafted to collide
/// with another must not get its reads past the audit.
///
/// It also holds what the connection presented with `authenticate` (its grant, checked again at
/// every request, so a revocation or expiry takes effect at once) and the id of the grant the
/// current request ran under, for the audit.
#[derive(Debug)]
pub struct AuditMemory {
    /// How the connection reached the daemon.
    transport: Transport,
    /// The grant this connection presented with `authenticate`, if any. Never logged.
    grant: Option<GrantTokenText>,
    /// The id (`jti`) of the grant the last request ran under, if any: for the audit, never
    /// the token.
    pub grant_id: Option<String>,
    /// The entry read last as `service\naccount` (valid names hold no newline), checked first:
    /// a client reading one entry in a loop costs a comparison, no hashing.
    last: String,
    /// Every entry already read on this connection, in the same form.
    reads: HashSet<String>,
    /// The grant id those reads ran under: reads under another grant (or none) are new.
    reads_grant: Option<String>,
}

impl AuditMemory {
    /// Most distinct entries remembered per connection; past it every read is audited again.
    const LIMIT: usize = 1024;

    /// Forgets which entries were read, so the next read of each is audited again.
    fn forget_reads(&mut self) {
        self.last.clear();
        self.reads.clear();
    }

    /// The memory of a new connection (or D-Bus caller) over `transport`.
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            grant: None,
            grant_id: None,
            last: String::new(),
            reads: HashSet::new(),
            reads_grant: None,
        }
    }

    /// The memory of a connection on this platform's stream transport (the Unix socket, or
    /// the named pipe on Windows).
    pub fn for_stream() -> Self {
        Self::new(STREAM_TRANSPORT)
    }

    /// How the connection reached the daemon.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Whether `service`/`account` is read for the first time on this connection (only asked
    /// for valid names, after a successful read).
    fn first_read(&mut self, service: &str, account: Option<&str>) -> bool {
        let account = account.unwrap_or(latchkey_proto::DEFAULT_ACCOUNT);
        let same_as_last = self.last.len() == service.len() + 1 + account.len()
            && self.last.starts_with(service)
            && self.last.as_bytes()[service.len()] == b'\n'
            && self.last.ends_with(account);
        if same_as_last {
            return false;
        }
        self.last.clear();
        self.last.push_str(service);
        self.last.push('\n');
        self.last.push_str(account);
        if self.reads.contains(&self.last) {
            return false;
        }
        if self.reads.len() < Self::LIMIT {
            self.reads.insert(self.last.clone());
        }
        true
    }
}

/// Refuses `status` filters that no entry could match because no valid name looks like them.
fn checked_filters(params: &StatusParams) -> Result<&StatusParams, RpcError> {
    let service = params.service.as_deref().map(latchkey_core::check_service);
    let account = params.account.as_deref().map(latchkey_core::check_account);
    for checked in [service, account].into_iter().flatten() {
        checked.map_err(|e| Error::InvalidKey(e).to_rpc())?;
    }
    Ok(params)
}

/// The entry as the audit file records it: only a valid key, never a client's raw input.
fn audit_entry(record: Record, service: &str, account: Option<&str>) -> Record {
    match EntryKey::new(service, account) {
        Ok(_) => record.entry(
            service,
            Some(account.unwrap_or(latchkey_proto::DEFAULT_ACCOUNT)),
        ),
        Err(_) => record,
    }
}

fn audit_name(service: &str, account: Option<&str>) -> String {
    match EntryKey::new(service, account) {
        Ok(key) => key.to_string(),
        Err(_) => "<invalid name>".to_owned(),
    }
}

impl Handler {
    /// A handler over `service`, running logins through `logins`; `store_reason` says why
    /// the daemon uses its store, `data_dir` is where stores keep their indexes (and where
    /// `migrate` records the store it moved to); `reloader` reloads the configuration.
    pub fn new(
        service: TokenService,
        logins: Logins,
        store_reason: String,
        store_options: latchkey_store::StoreOptions,
        reloader: Reloader,
        grants: Grants,
    ) -> Self {
        let connect = Connect::new(logins.clone());
        Self {
            grants,
            service,
            logins,
            connect,
            store_reason: Arc::new(Mutex::new(store_reason)),
            migrations: Migrations::new(store_options),
            reloader,
            audit: AuditLog::disabled(),
            confirm: Confirm::default(),
        }
    }

    /// The grant policy and methods.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// Writes audit records to `audit` from now on.
    pub fn with_audit(mut self, audit: AuditLog) -> Self {
        self.audit = audit;
        self
    }

    /// Asks the user before serving the entries of `confirm`'s policy.
    pub fn with_confirm(mut self, confirm: Confirm) -> Self {
        self.confirm = confirm;
        self
    }

    /// The audit file's writer.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Records in the audit file that `peer`, another user, was refused over `transport`.
    pub fn audit_refused(&self, peer: &Peer, transport: Transport) {
        self.audit.record(peer_record(
            Record::new(transport, "connect", ErrorKind::PermissionDenied.as_str()),
            peer,
        ));
    }

    /// Reloads the configuration file (what `reload` and SIGHUP do).
    pub fn reloader(&self) -> &Reloader {
        &self.reloader
    }

    /// The store's state after `unlock`, `lock` or `passwd`.
    fn lock_result(&self) -> Reply {
        let store = self.service.store_info();
        Reply::Lock(LockResult {
            store: store.name.to_owned(),
            locked: store.locked,
        })
    }

    /// `get`, with a login link when the entry needs a login at a configured provider.
    async fn get(&self, params: &latchkey_proto::GetParams) -> Result<Reply, RpcError> {
        not_reserved(&params.service)?;
        match self.service.serve(params).await {
            Ok(served) => Ok(Reply::Get(served)),
            Err(err @ (Error::NotFound | Error::AuthenticationRequired { .. })) => {
                let account = params
                    .account
                    .as_deref()
                    .unwrap_or(latchkey_proto::DEFAULT_ACCOUNT);
                let Some(url) = self
                    .connect
                    .link(&params.service, account, &params.scopes)
                    .await
                else {
                    return Err(err.to_rpc());
                };
                let mut rpc = RpcError::new(
                    ErrorKind::AuthenticationRequired,
                    match err {
                        Error::NotFound => "no token yet: log in to get one".to_owned(),
                        other => other.to_string(),
                    },
                );
                rpc.data.hint = Some(format!(
                    "run `latchkey login {}` or open the login_url",
                    params.service
                ));
                rpc.data.login_url = Some(url);
                Err(rpc)
            }
            Err(err) => Err(err.to_rpc()),
        }
    }

    /// The service behind it.
    pub fn service(&self) -> &TokenService {
        &self.service
    }

    /// What `status` reports about the daemon.
    pub fn daemon_info(&self) -> DaemonInfo {
        let store = self.service.store_info();
        DaemonInfo {
            version: VERSION.to_owned(),
            protocol: PROTOCOL_VERSION,
            store: store.name.to_owned(),
            persistent: store.persistent,
            locked: store.locked,
            entries: store.entries,
            unlock_with: Some(match store.unlocking {
                Unlocking::Never => UnlockWith::Nothing,
                Unlocking::Keychain => UnlockWith::Keychain,
                Unlocking::Passphrase { set: true } => UnlockWith::Passphrase,
                Unlocking::Passphrase { set: false } => UnlockWith::NewPassphrase,
            }),
            store_reason: Some(
                self.store_reason
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            ),
        }
    }

    /// Runs one call; its typed result, or the error to send.
    async fn dispatch(&self, call: &Call, memory: &mut AuditMemory) -> Result<Reply, RpcError> {
        Ok(match call {
            Call::Authenticate(params) => {
                let grant = self.grants.verify(&params.grant).await?;
                memory.grant = Some(params.grant.clone());
                memory.grant_id = Some(grant.jti().to_string());
                // Reads under the new grant are audited afresh.
                memory.forget_reads();
                Reply::Authenticate(AuthenticateResult {
                    id: grant.jti().to_string(),
                    expires_at: chrono::DateTime::from_timestamp(
                        i64::try_from(grant.claims().exp).unwrap_or(i64::MAX),
                        0,
                    )
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
                })
            }
            Call::GrantCreate(params) => Reply::GrantCreate(self.grants.create(params).await?),
            Call::GrantList => Reply::GrantList(GrantListResult {
                grants: self.grants.list().await?,
            }),
            Call::GrantRevoke(params) => Reply::GrantRevoke(GrantRevokeResult {
                revoked: self.grants.revoke(&params.id).await?,
            }),
            Call::Version => Reply::Version(VersionResult {
                version: VERSION.to_owned(),
                protocol: PROTOCOL_VERSION,
            }),
            Call::Get(params) => self.get(params).await?,
            Call::Set(params) => {
                not_reserved(&params.service)?;
                let entry = self
                    .service
                    .set(params.clone())
                    .await
                    .map_err(|e| e.to_rpc())?;
                Reply::Entry(SetResult { entry })
            }
            Call::Clear(params) => {
                not_reserved(&params.service)?;
                let removed = self
                    .service
                    .clear(params.clone())
                    .await
                    .map_err(|e| e.to_rpc())?;
                Reply::Clear(ClearResult { removed })
            }
            Call::Status(params) => Reply::Status(StatusResult {
                entries: self.service.status(checked_filters(params)?),
                daemon: self.daemon_info(),
            }),
            Call::List => Reply::List(ListResult {
                entries: self.service.list(),
            }),
            Call::Login(params) => Reply::Login(self.logins.start(params).await?),
            Call::LoginWait(params) => Reply::Entry(SetResult {
                entry: self.logins.wait(&params.login_id).await?,
            }),
            Call::LoginCancel(params) => Reply::Cancel(CancelResult {
                cancelled: self.logins.cancel(&params.login_id),
            }),
            Call::Logout(params) => {
                not_reserved(&params.service)?;
                Reply::Logout(self.logins.logout(params.clone()).await?)
            }
            Call::Providers => Reply::Providers(ProvidersResult {
                providers: self.logins.providers().await,
            }),
            Call::ProviderSecret(params) => Reply::ProviderSecret(ProviderSecretResult {
                stored: self
                    .logins
                    .set_client_secret(&params.provider, params.secret.clone())
                    .await?,
            }),
            Call::Unlock(params) => {
                self.service
                    .unlock(params.passphrase.as_ref(), params.create)
                    .await
                    .map_err(|e| e.to_rpc())?;
                self.lock_result()
            }
            Call::Lock => {
                self.service.lock().await.map_err(|e| e.to_rpc())?;
                self.lock_result()
            }
            Call::Passwd(params) => {
                self.service
                    .change_passphrase(&params.old, &params.new)
                    .await
                    .map_err(|e| e.to_rpc())?;
                self.lock_result()
            }
            Call::Migrate(params) => Reply::Migrate(
                self.migrations
                    .run(&self.service, params, &self.store_reason)
                    .await?,
            ),
            Call::Reload => Reply::Reload(
                self.reloader
                    .reload("reload")
                    .await
                    .map_err(|e| e.to_rpc())?,
            ),
        })
    }

    /// Runs one call for `peer` and audits it; the typed result, for a transport to encode.
    /// `memory` is the connection's (or D-Bus caller's) audit memory.
    pub async fn answer(
        &self,
        call: &Call,
        peer: &Peer,
        memory: &mut AuditMemory,
    ) -> Result<Reply, RpcError> {
        let method = call.method();
        // A move's audit names the store it left.
        let moving_from = match call {
            Call::Migrate(_) => Some(self.service.store_info().name),
            _ => None,
        };
        let outcome = match self.grants.admit(call, memory.grant.as_ref()).await {
            Ok(grant) => {
                memory.grant_id = grant.map(|g| g.jti().to_string());
                match call {
                    // Straight to `get`, not through `dispatch`, whose future is as large as
                    // its largest call's (the most common request should not move it).
                    Call::Get(params) => match self.confirm.check(params, peer).await {
                        Ok(()) => self.get(params).await,
                        Err(refused) => Err(refused),
                    },
                    _ => self.dispatch(call, memory).await,
                }
            }
            Err(refused) => {
                memory.grant_id = None;
                Err(refused)
            }
        };
        // A read is audited once per connection, entry and grant: a client sending the same
        // grant with every request (the proxy, `LATCHKEY_GRANT` over one connection) is
        // audited at its first read of each entry, and again whenever the grant changes.
        if let (Call::Get(params), Ok(_)) = (call, &outcome) {
            if memory.reads_grant != memory.grant_id {
                memory.forget_reads();
                memory.reads_grant.clone_from(&memory.grant_id);
            }
            if !memory.first_read(&params.service, params.account.as_deref()) {
                return outcome;
            }
        }
        let result = match &outcome {
            Ok(_) => "ok",
            Err(e) => e.data.kind.as_str(),
        };
        // The audit names an entry only once it is a valid key: invalid names are the client's
        // raw input and never reach a log line.
        let entry = match call {
            Call::Get(p) => Some(audit_name(&p.service, p.account.as_deref())),
            Call::Set(p) => Some(audit_name(&p.service, p.account.as_deref())),
            Call::Clear(p) | Call::Logout(p) => Some(audit_name(&p.service, p.account.as_deref())),
            Call::Login(p) => Some(audit_name(&p.provider, p.account.as_deref())),
            Call::ProviderSecret(p) => Some(audit_name(
                crate::login::CLIENT_SECRET_SERVICE,
                Some(&p.provider),
            )),
            Call::Migrate(p) => moving_from.map(|from| crate::migrate::audit_name(from, &p.to)),
            _ => None,
        };
        let (pid, exe) = peer.log_fields();
        info!(
            target: "latchkey::audit",
            method,
            entry = entry.as_deref().unwrap_or("-"),
            uid = peer.user.uid(),
            sid = peer.user.sid(),
            pid,
            exe,
            grant = memory.grant_id.as_deref().unwrap_or("-"),
            result,
        );
        if self.audit.is_enabled() {
            if let Some(record) = file_record(call, &outcome, result, memory) {
                self.audit.record(peer_record(record, peer));
            }
        }
        outcome
    }
}

/// The audit file's record of `call`, or `None` for the requests it leaves out: those that
/// name no entry and change nothing (`version`, `list`, `providers`, `status` of every entry,
/// `login_cancel`, `grant_list`). The daemon's log still has a line for each of them.
fn file_record(
    call: &Call,
    outcome: &Result<Reply, RpcError>,
    result: &str,
    memory: &AuditMemory,
) -> Option<Record> {
    let record =
        Record::new(memory.transport, call.method(), result).grant(memory.grant_id.as_deref());
    Some(match call {
        Call::Version | Call::List | Call::Providers | Call::LoginCancel(_) | Call::GrantList => {
            return None
        }
        Call::Status(p) => {
            let service = p.service.as_deref()?;
            match EntryKey::new(service, p.account.as_deref()) {
                Ok(_) => record.entry(service, p.account.as_deref()),
                Err(_) => record,
            }
        }
        Call::Get(p) => audit_entry(record, &p.service, p.account.as_deref()),
        Call::Set(p) => audit_entry(record, &p.service, p.account.as_deref()),
        Call::Clear(p) | Call::Logout(p) => audit_entry(record, &p.service, p.account.as_deref()),
        Call::Login(p) => audit_entry(record, &p.provider, p.account.as_deref()),
        Call::LoginWait(_) => match outcome {
            Ok(Reply::Entry(SetResult { entry })) => {
                record.entry(&entry.service, Some(&entry.account))
            }
            _ => record,
        },
        Call::ProviderSecret(p) => audit_entry(
            record,
            crate::login::CLIENT_SECRET_SERVICE,
            Some(&p.provider),
        ),
        // Grants name services by pattern (`github:*`), not entries: the record has the method,
        // the outcome and the grant id.
        Call::Unlock(_)
        | Call::Lock
        | Call::Passwd(_)
        | Call::Migrate(_)
        | Call::Reload
        | Call::Authenticate(_)
        | Call::GrantCreate(_)
        | Call::GrantRevoke(_) => record,
    })
}

/// `record` with the caller's identity.
fn peer_record(mut record: Record, peer: &Peer) -> Record {
    record.pid = peer.pid;
    record.uid = peer.user.uid();
    record.sid = peer.user.sid().map(str::to_owned);
    record.exe = peer.exe.clone();
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(line: &str) -> Call {
        latchkey_proto::Request::parse(line.as_bytes())
            .unwrap_or_else(|_| panic!("{line}"))
            .call
    }

    fn record_of(line: &str) -> Option<Record> {
        let memory = AuditMemory::new(Transport::Dbus);
        let failed = Err(RpcError::new(ErrorKind::NotFound, "no"));
        file_record(&call(line), &failed, "not_found", &memory)
    }

    #[test]
    fn the_file_records_entries_and_management_but_not_metadata_reads() {
        for method in ["version", "list", "providers"] {
            let line = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}"}}"#);
            assert!(record_of(&line).is_none(), "{method}");
        }
        assert!(record_of(r#"{"jsonrpc":"2.0","id":1,"method":"status"}"#).is_none());
        assert!(record_of(
            r#"{"jsonrpc":"2.0","id":1,"method":"login_cancel","params":{"login_id":"x"}}"#
        )
        .is_none());

        let get =
            record_of(r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"github"}}"#)
                .unwrap();
        assert_eq!(get.method, "get");
        assert_eq!(get.outcome, "not_found");
        assert_eq!(get.transport, Transport::Dbus);
        let entry = get.entry.unwrap();
        assert_eq!(
            (entry.service.as_str(), entry.account.as_deref()),
            ("github", Some("default"))
        );

        // A name that is not valid is the client's raw input: no entry is recorded.
        let bad = record_of(
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"a\u001b[2Jb"}}"#,
        )
        .unwrap();
        assert!(bad.entry.is_none());

        let status = record_of(
            r#"{"jsonrpc":"2.0","id":1,"method":"status","params":{"service":"github"}}"#,
        )
        .unwrap();
        assert_eq!(status.entry.unwrap().account, None);
        let lock = record_of(r#"{"jsonrpc":"2.0","id":1,"method":"lock"}"#).unwrap();
        assert!(lock.entry.is_none());
    }

    #[test]
    fn a_grant_set_on_the_memory_is_in_its_records() {
        let mut memory = AuditMemory::for_stream();
        memory.grant_id = Some("g-123".into());
        let record = file_record(
            &call(r#"{"jsonrpc":"2.0","id":1,"method":"lock"}"#),
            &Err(RpcError::new(ErrorKind::Locked, "no")),
            "locked",
            &memory,
        )
        .unwrap();
        assert_eq!(record.grant.as_deref(), Some("g-123"));
        assert_eq!(record.transport, STREAM_TRANSPORT);
    }

    #[test]
    fn audit_memory_remembers_each_entry_read_once_per_connection() {
        let mut memory = AuditMemory::for_stream();
        assert!(memory.first_read("github", None));
        assert!(!memory.first_read("github", None));
        assert!(!memory.first_read("github", Some("default")));
        assert!(memory.first_read("github", Some("work")));
        assert!(memory.first_read("git", Some("hub")));
        assert!(memory.first_read("githu", Some("b")));
        assert!(!memory.first_read("github", None));
        assert!(!memory.first_read("git", Some("hub")));
        memory.forget_reads();
        assert!(memory.first_read("github", None));
        assert!(memory.first_read("git", Some("hub")));
    }
}

//! The latchkey domain, with no I/O of its own.
//!
//! - [`EntryKey`]: a validated service + account pair.
//! - [`TokenBundle`] and [`StoredBundle`]: the secret credential and its versioned JSON document,
//!   which keeps fields it does not know so newer data survives an older daemon.
//! - [`EntryRecord`]: the non-secret facts about an entry, from which [`Metadata`] is computed
//!   against a [`Clock`].
//! - [`Store`]: the one trait every keychain backend implements.
//! - [`TokenService`]: the metadata cache, the secret cache and the policy of `get`, `set`,
//!   `clear`, `status` and `list`, shared by every transport.
//!
//! [`Metadata`]: latchkey_proto::Metadata
#![deny(missing_docs)]

mod bundle;
pub mod clock;
mod error;
mod key;
mod record;
mod refresh;
mod service;
mod store;

pub use bundle::{BundleError, OAuth2Bundle, StoredBundle, TokenBundle, DOCUMENT_VERSION};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use key::{
    check_account, check_service, is_internal, is_reserved, EntryKey, KeyError, KeyRef, KeyView,
    INTERNAL_SERVICES, MAX_ACCOUNT_LEN, MAX_SERVICE_LEN, RESERVED_PREFIX,
};
pub use record::{refresh_window, EntryRecord};
pub use refresh::{
    RefreshError, RefreshFuture, RefreshRequest, Refreshed, Refresher, RevokeFuture,
};
pub use service::{Change, ChangeKind, MigrateError, Migrated, Served, StoreInfo, TokenService};
pub use store::{
    refused_lock, Listed, RefreshLock, SecretBytes, Store, StoreError, StoreFuture, Unlocking,
};

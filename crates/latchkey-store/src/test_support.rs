//! What the store crate's own tests share: a plain record to write.

use std::sync::Arc;

use chrono::Utc;
use latchkey_core::{EntryKey, EntryRecord};
use latchkey_proto::Kind;

/// The record of an API key `key`, created and updated now.
pub(crate) fn api_key_record(key: EntryKey) -> Arc<EntryRecord> {
    Arc::new(EntryRecord {
        key,
        kind: Kind::ApiKey,
        scopes: vec![],
        expires_at: None,
        has_refresh_token: false,
        provider: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        last_refreshed_at: None,
        needs_login: false,
    })
}

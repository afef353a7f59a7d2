//! Between the protocol's JSON records and D-Bus `a{sv}` dictionaries (feature `dbus`), and the
//! D-Bus error names of the error kinds.
//!
//! Strings stay `s`, booleans `b`, non-negative integers `t`, negative ones `x`, string lists
//! `as`, nested records `a{sv}`; JSON `null` fields are left out. The daemon and the client
//! both convert through here, so the two sides cannot drift apart.
//!
//! The records the daemon sends often (`get`'s result, an entry's metadata, the daemon's state)
//! are built field by field from their types, with the same names and types the JSON route
//! gives, and `Get`'s options are read straight from the dictionary: no JSON in between.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Number, Value as Json};
use zvariant::{OwnedValue, Value};

use crate::{DaemonInfo, ErrorKind, GetResult, Metadata};

/// An `a{sv}` dictionary.
pub type Dict = HashMap<String, OwnedValue>;

/// Why a dictionary could not be converted. Names the problem, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError(pub &'static str);

impl std::fmt::Display for ConvertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ConvertError {}

fn invalid(message: &'static str) -> ConvertError {
    ConvertError(message)
}

fn to_value(json: &Json) -> Option<Value<'static>> {
    Some(match json {
        Json::Null => return None,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::U64(u),
            (None, Some(i)) => Value::I64(i),
            _ => Value::F64(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Value::from(s.clone()),
        Json::Array(items) => {
            let strings: Option<Vec<String>> = items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect();
            Value::from(strings?)
        }
        Json::Object(map) => {
            let dict: HashMap<String, Value<'static>> = map
                .iter()
                .filter_map(|(k, v)| to_value(v).map(|v| (k.clone(), v)))
                .collect();
            Value::from(dict)
        }
    })
}

/// A JSON object as `a{sv}`.
pub fn to_dict(json: &Json) -> Result<Dict, ConvertError> {
    let Json::Object(map) = json else {
        return Err(invalid("the value is not a record"));
    };
    let mut dict = Dict::new();
    for (key, value) in map {
        if let Some(value) = to_value(value) {
            let owned =
                OwnedValue::try_from(value).map_err(|_| invalid("cannot encode a field"))?;
            dict.insert(key.clone(), owned);
        }
    }
    Ok(dict)
}

fn from_value(value: &Value<'_>) -> Result<Json, ConvertError> {
    Ok(match value {
        Value::Value(inner) => from_value(inner)?,
        Value::Bool(b) => Json::Bool(*b),
        Value::Str(s) => Json::String(s.to_string()),
        Value::U8(n) => Json::from(*n),
        Value::U16(n) => Json::from(*n),
        Value::U32(n) => Json::from(*n),
        Value::U64(n) => Json::from(*n),
        Value::I16(n) => Json::from(*n),
        Value::I32(n) => Json::from(*n),
        Value::I64(n) => Json::from(*n),
        Value::F64(f) => {
            Json::Number(Number::from_f64(*f).ok_or_else(|| invalid("a number is not finite"))?)
        }
        Value::Dict(dict) => {
            let mut map = Map::new();
            for (key, value) in dict.iter() {
                let Value::Str(key) = key else {
                    return Err(invalid("record keys must be strings"));
                };
                map.insert(key.to_string(), from_value(value)?);
            }
            Json::Object(map)
        }
        Value::Array(array) => Json::Array(
            array
                .iter()
                .map(|item| match item {
                    Value::Str(s) => Ok(Json::String(s.to_string())),
                    _ => Err(invalid("lists must hold strings (as)")),
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(invalid("unsupported value type in a record")),
    })
}

/// An `a{sv}` from a client as a JSON object.
pub fn from_dict(dict: &HashMap<String, OwnedValue>) -> Result<Json, ConvertError> {
    let mut map = Map::new();
    for (key, value) in dict {
        map.insert(key.clone(), from_value(value)?);
    }
    Ok(Json::Object(map))
}

/// Builds an `a{sv}` one field at a time; absent fields are left out, as JSON `null`s are.
struct Record(Result<Dict, ConvertError>);

impl Record {
    fn new() -> Self {
        Self(Ok(Dict::new()))
    }

    fn put(mut self, key: &str, value: Value<'_>) -> Self {
        if let Ok(dict) = &mut self.0 {
            match OwnedValue::try_from(value) {
                Ok(value) => {
                    dict.insert(key.to_owned(), value);
                }
                Err(_) => self.0 = Err(invalid("cannot encode a field")),
            }
        }
        self
    }

    fn text(self, key: &str, value: &str) -> Self {
        self.put(key, Value::from(value))
    }

    fn maybe_text(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.text(key, value),
            None => self,
        }
    }

    fn time(self, key: &str, value: Option<DateTime<Utc>>) -> Self {
        match value {
            // The text serde gives a time, so both routes agree.
            Some(time) => self.put(
                key,
                Value::from(time.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            ),
            None => self,
        }
    }

    fn texts(self, key: &str, values: &[String]) -> Self {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        self.put(key, Value::from(values))
    }

    fn done(self) -> Result<Dict, ConvertError> {
        self.0
    }
}

/// `get`'s result as `a{sv}`: `{secret, kind, token_type?, username?, expires_at?, scopes}`.
pub fn get_result(result: &GetResult) -> Result<Dict, ConvertError> {
    Record::new()
        .text("secret", result.secret.expose())
        .text("kind", result.kind.as_str())
        .maybe_text("token_type", result.token_type.as_deref())
        .maybe_text("username", result.username.as_deref())
        .time("expires_at", result.expires_at)
        .texts("scopes", &result.scopes)
        .done()
}

/// An entry's metadata as `a{sv}`.
pub fn metadata(entry: &Metadata) -> Result<Dict, ConvertError> {
    let record = Record::new()
        .text("service", &entry.service)
        .text("account", &entry.account)
        .text("kind", entry.kind.as_str())
        .texts("scopes", &entry.scopes)
        .time("expires_at", entry.expires_at)
        .put("has_refresh_token", Value::Bool(entry.has_refresh_token))
        .maybe_text("provider", entry.provider.as_deref())
        .time("created_at", Some(entry.created_at))
        .time("updated_at", Some(entry.updated_at))
        .time("last_used_at", entry.last_used_at)
        .time("last_refreshed_at", entry.last_refreshed_at)
        .text("state", entry.state.as_str());
    if entry.unsaved {
        record.put("unsaved", Value::Bool(true)).done()
    } else {
        record.done()
    }
}

/// The daemon part of `status` as `a{sv}`.
pub fn daemon_info(info: &DaemonInfo) -> Result<Dict, ConvertError> {
    let record = Record::new()
        .text("version", &info.version)
        .put("protocol", Value::U64(info.protocol.into()))
        .text("store", &info.store)
        .put("persistent", Value::Bool(info.persistent));
    let record = match info.locked {
        Some(locked) => record.put("locked", Value::Bool(locked)),
        None => record,
    }
    .put("entries", Value::U64(info.entries as u64));
    let record = match info.unlock_with {
        Some(with) => {
            let name = serde_json::to_value(with).map_err(|_| invalid("unlock_with"))?;
            record.text("unlock_with", name.as_str().unwrap_or_default())
        }
        None => record,
    };
    match &info.store_reason {
        Some(reason) => record.text("store_reason", reason),
        None => record,
    }
    .done()
}

/// What `Get`'s options hold: the required scopes and `min_valid_secs`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// `scopes` (as).
    pub scopes: Vec<String>,
    /// `min_valid_secs` (any non-negative integer type).
    pub min_valid_secs: Option<u64>,
    /// `grant` (s): a grant token for this call (at most [`crate::MAX_GRANT_TOKEN_LEN`] bytes).
    pub grant: Option<crate::GrantTokenText>,
}

fn unwrapped<'a>(value: &'a Value<'a>) -> &'a Value<'a> {
    match value {
        Value::Value(inner) => unwrapped(inner),
        other => other,
    }
}

/// Reads `Get`'s options; other keys are ignored, as the socket ignores unknown params.
pub fn get_options(options: &HashMap<String, OwnedValue>) -> Result<GetOptions, ConvertError> {
    const WRONG: &str = "options may hold scopes (as), min_valid_secs (t) and grant (s)";
    let mut parsed = GetOptions::default();
    for (key, value) in options {
        let value = unwrapped(value);
        match key.as_str() {
            "scopes" => {
                let Value::Array(items) = value else {
                    return Err(invalid(WRONG));
                };
                parsed.scopes = items
                    .iter()
                    .map(|item| match item {
                        Value::Str(s) => Ok(s.to_string()),
                        _ => Err(invalid(WRONG)),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "min_valid_secs" => {
                let secs = match *value {
                    Value::U8(n) => Some(n.into()),
                    Value::U16(n) => Some(n.into()),
                    Value::U32(n) => Some(n.into()),
                    Value::U64(n) => Some(n),
                    Value::I16(n) => u64::try_from(n).ok(),
                    Value::I32(n) => u64::try_from(n).ok(),
                    Value::I64(n) => u64::try_from(n).ok(),
                    _ => None,
                };
                parsed.min_valid_secs = Some(secs.ok_or_else(|| invalid(WRONG))?);
            }
            "grant" => {
                let Value::Str(token) = value else {
                    return Err(invalid(WRONG));
                };
                // Checked before copying: an oversized token is never held twice.
                if token.len() > crate::MAX_GRANT_TOKEN_LEN {
                    return Err(invalid("the grant token is too long"));
                }
                parsed.grant = crate::GrantTokenText::new(token.to_string());
            }
            _ => {}
        }
    }
    Ok(parsed)
}

/// The D-Bus error name of a kind: `dev.latchkey.Latchkey1.Error.NotFound` for `not_found`.
pub fn error_name(kind: ErrorKind) -> String {
    let camel: String = kind
        .as_str()
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("{ERROR_PREFIX}.{camel}")
}

/// The prefix of latchkey's D-Bus error names.
pub const ERROR_PREFIX: &str = "dev.latchkey.Latchkey1.Error";

/// The kind of a D-Bus error name, if it is one of latchkey's.
pub fn error_kind(name: &str) -> Option<ErrorKind> {
    ErrorKind::ALL
        .into_iter()
        .find(|kind| error_name(*kind) == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UnlockWith;

    #[test]
    fn records_round_trip() {
        let json = serde_json::json!({
            "service": "gh", "count": 3, "neg": -1, "ok": true,
            "scopes": ["a", "b"], "gone": null
        });
        let dict = to_dict(&json).unwrap();
        assert!(!dict.contains_key("gone"));
        let back = from_dict(&dict).unwrap();
        assert_eq!(back["service"], "gh");
        assert_eq!(back["count"], 3);
        assert_eq!(back["neg"], -1);
        assert_eq!(back["scopes"], serde_json::json!(["a", "b"]));
    }

    fn time(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// The typed records are exactly what the JSON route gives, for every optional field
    /// present and absent.
    #[test]
    fn typed_records_match_the_json_route() {
        use crate::{Kind, Secret, State};
        let full = GetResult {
            secret: Secret::from("s3cret"),
            kind: Kind::Oauth2,
            token_type: Some("Bearer".into()),
            username: Some("ann".into()),
            expires_at: Some(time("2030-01-02T03:04:05.123456Z")),
            scopes: vec!["read".into(), "write".into()],
        };
        let bare = GetResult {
            secret: Secret::from("k"),
            kind: Kind::ApiKey,
            token_type: None,
            username: None,
            expires_at: None,
            scopes: vec![],
        };
        for result in [full, bare] {
            let json = to_dict(&serde_json::to_value(&result).unwrap()).unwrap();
            assert_eq!(get_result(&result).unwrap(), json);
        }
        let mut entry = Metadata {
            service: "gh".into(),
            account: "default".into(),
            kind: Kind::Oauth2,
            scopes: vec!["repo".into()],
            expires_at: Some(time("2030-01-02T03:04:05Z")),
            has_refresh_token: true,
            provider: Some("github".into()),
            created_at: time("2029-01-02T03:04:05.5Z"),
            updated_at: time("2029-02-02T03:04:05Z"),
            last_used_at: Some(time("2029-03-02T03:04:05.000001Z")),
            last_refreshed_at: Some(time("2029-04-02T03:04:05Z")),
            state: State::Expiring,
            unsaved: true,
        };
        for _ in 0..2 {
            let json = to_dict(&serde_json::to_value(&entry).unwrap()).unwrap();
            assert_eq!(metadata(&entry).unwrap(), json);
            entry.expires_at = None;
            entry.provider = None;
            entry.last_used_at = None;
            entry.last_refreshed_at = None;
            entry.unsaved = false;
            entry.kind = Kind::Password;
            entry.state = State::NeedsLogin;
        }
        for locked in [Some(true), Some(false), None] {
            let info = DaemonInfo {
                version: "1.2.3".into(),
                protocol: 1,
                store: "memory".into(),
                persistent: false,
                locked,
                entries: 7,
                unlock_with: locked.map(|_| UnlockWith::Passphrase),
                store_reason: locked.map(|_| "requested".into()),
            };
            let json = to_dict(&serde_json::to_value(&info).unwrap()).unwrap();
            assert_eq!(daemon_info(&info).unwrap(), json);
        }
    }

    #[test]
    fn get_options_are_read_like_the_socket_params() {
        let mut options = HashMap::new();
        assert_eq!(get_options(&options).unwrap(), GetOptions::default());
        options.insert(
            "scopes".to_owned(),
            OwnedValue::try_from(Value::from(vec!["a", "b"])).unwrap(),
        );
        options.insert(
            "min_valid_secs".to_owned(),
            OwnedValue::try_from(Value::U32(30)).unwrap(),
        );
        options.insert(
            "other".to_owned(),
            OwnedValue::try_from(Value::Bool(true)).unwrap(),
        );
        let parsed = get_options(&options).unwrap();
        assert_eq!(parsed.scopes, ["a", "b"]);
        assert_eq!(parsed.min_valid_secs, Some(30));
        for (key, wrong) in [
            ("min_valid_secs", Value::I64(-1)),
            ("min_valid_secs", Value::from("30")),
            ("scopes", Value::from("a")),
            ("scopes", Value::from(vec![1u32])),
        ] {
            let mut options = HashMap::new();
            options.insert(key.to_owned(), OwnedValue::try_from(wrong).unwrap());
            assert!(get_options(&options).is_err(), "{key}");
        }
    }

    #[test]
    fn unsupported_types_are_refused() {
        let mut dict = HashMap::new();
        dict.insert(
            "x".to_owned(),
            OwnedValue::try_from(Value::from(vec![1u32, 2])).unwrap(),
        );
        assert!(from_dict(&dict).is_err());
    }

    #[test]
    fn error_names_round_trip() {
        assert_eq!(
            error_name(ErrorKind::AuthenticationRequired),
            "dev.latchkey.Latchkey1.Error.AuthenticationRequired"
        );
        for kind in ErrorKind::ALL {
            assert_eq!(error_kind(&error_name(kind)), Some(kind));
        }
        assert_eq!(error_kind("org.freedesktop.DBus.Error.Failed"), None);
    }
}

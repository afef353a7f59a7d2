//! Between the protocol's JSON records and D-Bus `a{sv}` dictionaries (feature `dbus`), and the
//! D-Bus error names of the error kinds.
//!
//! Strings stay `s`, booleans `b`, non-negative integers `t`, negative ones `x`, string lists
//! `as`, nested records `a{sv}`; JSON `null` fields are left out. The daemon and the client
//! both convert through here, so the two sides cannot drift apart.

use std::collections::HashMap;

use serde_json::{Map, Number, Value as Json};
use zvariant::{OwnedValue, Value};

use crate::ErrorKind;

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

//! Between the protocol's JSON records and D-Bus `a{sv}` dictionaries.
//!
//! Strings stay `s`, booleans `b`, non-negative integers `t`, negative ones `x`, string lists
//! `as`, nested records `a{sv}`; JSON `null` fields are left out.

use std::collections::HashMap;

use serde_json::{Map, Number, Value as Json};
use zbus::zvariant::{OwnedValue, Value};

use super::LatchkeyError;

/// An `a{sv}` dictionary.
pub type Dict = HashMap<String, OwnedValue>;

fn invalid(message: &str) -> LatchkeyError {
    LatchkeyError::InvalidRequest(message.to_owned())
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
pub fn to_dict(json: &Json) -> Result<Dict, LatchkeyError> {
    let Json::Object(map) = json else {
        return Err(LatchkeyError::Internal("result is not a record".into()));
    };
    let mut dict = Dict::new();
    for (key, value) in map {
        if let Some(value) = to_value(value) {
            let owned = OwnedValue::try_from(value)
                .map_err(|_| LatchkeyError::Internal("cannot encode a result field".into()))?;
            dict.insert(key.clone(), owned);
        }
    }
    Ok(dict)
}

fn from_value(value: &Value<'_>) -> Result<Json, LatchkeyError> {
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
pub fn from_dict(dict: &HashMap<String, OwnedValue>) -> Result<Json, LatchkeyError> {
    let mut map = Map::new();
    for (key, value) in dict {
        map.insert(key.clone(), from_value(value)?);
    }
    Ok(Json::Object(map))
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
        assert!(matches!(
            from_dict(&dict),
            Err(LatchkeyError::InvalidRequest(_))
        ));
    }
}

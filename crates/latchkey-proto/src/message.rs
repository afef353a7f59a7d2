//! The JSON-RPC 2.0 envelope: turning one request line into a typed [`Request`], and one
//! response line back into a result or an [`RpcError`].
//!
//! Parsing never quotes the client's bytes in an error: messages name the problem and, for
//! syntax errors, the position.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::RpcError;
use crate::types::{GetParams, KeyParams, SetParams, StatusParams};

/// A request id as JSON-RPC allows it: a number, a string or null.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    /// A numeric id.
    Number(serde_json::Number),
    /// A string id.
    String(String),
    /// `null`, also used when the id of a broken request could not be read.
    Null,
}

impl From<u64> for Id {
    fn from(value: u64) -> Self {
        Id::Number(value.into())
    }
}

/// A method call with its typed params.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `version`
    Version,
    /// `get`
    Get(GetParams),
    /// `set`
    Set(SetParams),
    /// `clear`
    Clear(KeyParams),
    /// `status`
    Status(StatusParams),
    /// `list`
    List,
}

impl Call {
    /// The method name on the wire.
    pub fn method(&self) -> &'static str {
        match self {
            Call::Version => "version",
            Call::Get(_) => "get",
            Call::Set(_) => "set",
            Call::Clear(_) => "clear",
            Call::Status(_) => "status",
            Call::List => "list",
        }
    }

    fn params(&self) -> Option<Value> {
        let value = match self {
            Call::Version | Call::List => return None,
            Call::Get(p) => serde_json::to_value(p),
            Call::Set(p) => serde_json::to_value(p),
            Call::Clear(p) => serde_json::to_value(p),
            Call::Status(p) => serde_json::to_value(p),
        };
        // Serializing these plain structs cannot fail.
        value.ok()
    }
}

/// One parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The id to answer with.
    pub id: Id,
    /// What to do.
    pub call: Call,
}

/// A request that could not be parsed: the id to answer with (null when unknown) and the error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRequest {
    /// The id read from the request, or null.
    pub id: Id,
    /// What was wrong.
    pub error: RpcError,
}

impl Request {
    /// Parses one request line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Request, Box<BadRequest>> {
        let bad = |id: Id, error: RpcError| Box::new(BadRequest { id, error });
        let text = std::str::from_utf8(line)
            .map_err(|_| bad(Id::Null, RpcError::parse("request is not valid UTF-8")))?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            bad(
                Id::Null,
                RpcError::parse(format!(
                    "request is not valid JSON (line {}, column {})",
                    e.line(),
                    e.column()
                )),
            )
        })?;
        let mut object = match value {
            Value::Object(object) => object,
            Value::Array(_) => {
                return Err(bad(
                    Id::Null,
                    RpcError::invalid_request("batch requests are not supported"),
                ))
            }
            _ => {
                return Err(bad(
                    Id::Null,
                    RpcError::invalid_request("a request must be a JSON object"),
                ))
            }
        };
        let id = match object.remove("id") {
            None => {
                return Err(bad(
                    Id::Null,
                    RpcError::invalid_request(
                        "every request needs an \"id\"; notifications are not supported",
                    ),
                ))
            }
            Some(Value::Null) => Id::Null,
            Some(Value::Number(n)) => Id::Number(n),
            Some(Value::String(s)) => Id::String(s),
            Some(_) => {
                return Err(bad(
                    Id::Null,
                    RpcError::invalid_request("\"id\" must be a number, a string or null"),
                ))
            }
        };
        if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(bad(
                id,
                RpcError::invalid_request("\"jsonrpc\" must be \"2.0\""),
            ));
        }
        let method = match object.remove("method") {
            Some(Value::String(method)) => method,
            _ => {
                return Err(bad(
                    id,
                    RpcError::invalid_request("\"method\" must be a string"),
                ))
            }
        };
        let params = match object.remove("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(params)) => params,
            Some(_) => {
                return Err(bad(
                    id,
                    RpcError::invalid_params("\"params\" must be an object"),
                ))
            }
        };
        let call = match method.as_str() {
            "version" => Call::Version,
            "list" => Call::List,
            "get" => Call::Get(typed_params("get", params).map_err(|e| bad(id.clone(), e))?),
            "set" => Call::Set(typed_params("set", params).map_err(|e| bad(id.clone(), e))?),
            "clear" => Call::Clear(typed_params("clear", params).map_err(|e| bad(id.clone(), e))?),
            "status" => {
                Call::Status(typed_params("status", params).map_err(|e| bad(id.clone(), e))?)
            }
            _ => return Err(bad(id, RpcError::method_not_found())),
        };
        Ok(Request { id, call })
    }

    /// Serializes the request as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut object = Map::new();
        object.insert("jsonrpc".into(), Value::from("2.0"));
        object.insert(
            "id".into(),
            serde_json::to_value(&self.id).unwrap_or(Value::Null),
        );
        object.insert("method".into(), Value::from(self.call.method()));
        if let Some(params) = self.call.params() {
            object.insert("params".into(), params);
        }
        let mut line = serde_json::to_vec(&Value::Object(object)).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// Deserializes params without letting serde quote the client's values in the message.
fn typed_params<T: DeserializeOwned>(
    method: &str,
    params: Map<String, Value>,
) -> Result<T, RpcError> {
    serde_json::from_value(Value::Object(params)).map_err(|e| {
        let text = e.to_string();
        // "missing field `x`" names one of our own fields, never client data.
        if text.starts_with("missing field") {
            RpcError::invalid_params(format!("invalid params for {method}: {text}"))
        } else {
            RpcError::invalid_params(format!(
                "invalid params for {method}: a field has the wrong type or an unknown value"
            ))
        }
    })
}

/// One response, as read by a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The id of the request it answers.
    pub id: Id,
    /// The result, or the error.
    pub outcome: Result<Value, RpcError>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    jsonrpc: String,
    id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<RpcError>,
}

impl Response {
    /// A success response.
    pub fn ok(id: Id, result: impl Serialize) -> Self {
        match serde_json::to_value(result) {
            Ok(value) => Self {
                id,
                outcome: Ok(value),
            },
            Err(_) => Self::err(
                id,
                RpcError::new(crate::ErrorKind::Internal, "could not encode the result"),
            ),
        }
    }

    /// An error response.
    pub fn err(id: Id, error: RpcError) -> Self {
        Self {
            id,
            outcome: Err(error),
        }
    }

    /// Serializes the response as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let (result, error) = match &self.outcome {
            Ok(value) => (Some(value.clone()), None),
            Err(error) => (None, Some(error.clone())),
        };
        let envelope = Envelope {
            jsonrpc: "2.0".into(),
            id: self.id.clone(),
            result,
            error,
        };
        let mut line = serde_json::to_vec(&envelope).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// Parses one response line.
    pub fn parse(line: &[u8]) -> Result<Response, RpcError> {
        let envelope: Envelope = serde_json::from_slice(line)
            .map_err(|_| RpcError::parse("response is not a valid JSON-RPC response"))?;
        let outcome = match (envelope.result, envelope.error) {
            (_, Some(error)) => Err(error),
            (Some(result), None) => Ok(result),
            (None, None) => Ok(Value::Null),
        };
        Ok(Response {
            id: envelope.id,
            outcome,
        })
    }
}

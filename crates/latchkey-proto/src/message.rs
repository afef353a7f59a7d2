//! The JSON-RPC 2.0 envelope: turning one request line into a typed [`Request`], and one
//! response line back into a result or an [`RpcError`].
//!
//! Parsing never quotes the client's bytes in an error: messages name the problem and, for
//! syntax errors, the position.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::RpcError;
use crate::grant::{AuthenticateParams, GrantCreateParams, GrantRevokeParams};
use crate::types::{
    GetParams, GetResultRef, KeyParams, LoginIdParams, LoginParams, MigrateParams, PasswdParams,
    ProviderSecretParams, SetParams, StatusParams, UnlockParams,
};

/// A request id as JSON-RPC allows it: a number, a string or null.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Id {
    /// A numeric id.
    Number(serde_json::Number),
    /// A string id.
    String(String),
    /// `null`, also used when the id of a broken request could not be read.
    Null,
}

/// Read by the JSON value's own type, as `#[serde(untagged)]` would, without buffering the
/// value first (every request has an id).
impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Id;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("data did not match any variant of untagged enum Id")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Id, E> {
                Ok(Id::Number(v.into()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Id, E> {
                Ok(Id::Number(v.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Id, E> {
                serde_json::Number::from_f64(v)
                    .map(Id::Number)
                    .ok_or_else(|| E::custom("data did not match any variant of untagged enum Id"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Id, E> {
                Ok(Id::String(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Id, E> {
                Ok(Id::String(v))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Id, E> {
                Ok(Id::Null)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Id, E> {
                Ok(Id::Null)
            }
        }
        deserializer.deserialize_any(Visit)
    }
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
    /// `login`
    Login(LoginParams),
    /// `login_wait`
    LoginWait(LoginIdParams),
    /// `login_cancel`
    LoginCancel(LoginIdParams),
    /// `logout`
    Logout(KeyParams),
    /// `providers`
    Providers,
    /// `provider_secret`
    ProviderSecret(ProviderSecretParams),
    /// `unlock`
    Unlock(UnlockParams),
    /// `lock`
    Lock,
    /// `passwd`
    Passwd(PasswdParams),
    /// `migrate`
    Migrate(MigrateParams),
    /// `reload`: read the configuration file again.
    Reload,
    /// `authenticate`: bind a grant to this connection.
    Authenticate(AuthenticateParams),
    /// `grant_create`
    GrantCreate(GrantCreateParams),
    /// `grant_list`
    GrantList,
    /// `grant_revoke`
    GrantRevoke(GrantRevokeParams),
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
            Call::Login(_) => "login",
            Call::LoginWait(_) => "login_wait",
            Call::LoginCancel(_) => "login_cancel",
            Call::Logout(_) => "logout",
            Call::Providers => "providers",
            Call::ProviderSecret(_) => "provider_secret",
            Call::Unlock(_) => "unlock",
            Call::Lock => "lock",
            Call::Passwd(_) => "passwd",
            Call::Migrate(_) => "migrate",
            Call::Reload => "reload",
            Call::Authenticate(_) => "authenticate",
            Call::GrantCreate(_) => "grant_create",
            Call::GrantList => "grant_list",
            Call::GrantRevoke(_) => "grant_revoke",
        }
    }

    fn params(&self) -> Option<Value> {
        let value = match self {
            Call::Version
            | Call::List
            | Call::Providers
            | Call::Lock
            | Call::Reload
            | Call::GrantList => return None,
            Call::Get(p) => serde_json::to_value(p),
            Call::Set(p) => serde_json::to_value(p),
            Call::Clear(p) => serde_json::to_value(p),
            Call::Status(p) => serde_json::to_value(p),
            Call::Login(p) => serde_json::to_value(p),
            Call::LoginWait(p) | Call::LoginCancel(p) => serde_json::to_value(p),
            Call::Logout(p) => serde_json::to_value(p),
            Call::ProviderSecret(p) => serde_json::to_value(p),
            Call::Unlock(p) => serde_json::to_value(p),
            Call::Passwd(p) => serde_json::to_value(p),
            Call::Migrate(p) => serde_json::to_value(p),
            Call::Authenticate(p) => serde_json::to_value(p),
            Call::GrantCreate(p) => serde_json::to_value(p),
            Call::GrantRevoke(p) => serde_json::to_value(p),
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

/// The common shape of a well-formed request, read without building a JSON tree.
#[derive(Deserialize)]
struct FastRequest<'a> {
    #[serde(borrow)]
    jsonrpc: &'a str,
    id: Id,
    #[serde(borrow)]
    method: &'a str,
    #[serde(default, borrow)]
    params: Option<&'a RawValue>,
}

/// A well-formed `get` request, its params typed in the same pass as the envelope: the request
/// a client sends most, read without scanning its params twice.
#[derive(Deserialize)]
struct FastGet<'a> {
    #[serde(borrow)]
    jsonrpc: &'a str,
    id: Id,
    #[serde(borrow)]
    method: &'a str,
    params: ObjectOnly<GetParams>,
}

/// Params that must be a JSON object: serde would also read a struct from an array, which
/// the protocol refuses (positional params).
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Visit(std::marker::PhantomData))
            .map(ObjectOnly)
    }
}

/// Params as found: raw JSON text (fast path) or an already parsed object (slow path).
enum Params<'a> {
    Raw(&'a str),
    Object(Map<String, Value>),
}

impl Request {
    /// Parses one request line (without its newline).
    ///
    /// Well-formed requests take a fast path that borrows from the line; anything else is
    /// parsed step by step to give the precise error.
    pub fn parse(line: &[u8]) -> Result<Request, Box<BadRequest>> {
        let bad = |id: Id, error: RpcError| Box::new(BadRequest { id, error });
        if let Some((id, params)) = crate::fast_get::parse(line) {
            return Ok(Request {
                id,
                call: Call::Get(params),
            });
        }
        let text = std::str::from_utf8(line)
            .map_err(|_| bad(Id::Null, RpcError::parse("request is not valid UTF-8")))?;
        Self::parse_with_serde(text)
    }

    /// [`Request::parse`] without the plain `get` reader: everything through `serde_json`.
    pub(crate) fn parse_with_serde(text: &str) -> Result<Request, Box<BadRequest>> {
        let bad = |id: Id, error: RpcError| Box::new(BadRequest { id, error });
        // Only a guess at which shape to try; a line that is not a well-formed `get` after all
        // goes on to the general parse below, so the answer never depends on the guess.
        if mentions_get(text) {
            if let Ok(fast) = serde_json::from_str::<FastGet<'_>>(text) {
                if fast.jsonrpc == "2.0" && fast.method == "get" {
                    return Ok(Request {
                        id: fast.id,
                        call: Call::Get(fast.params.0),
                    });
                }
            }
        }
        if let Ok(fast) = serde_json::from_str::<FastRequest<'_>>(text) {
            let params = fast.params.map(|p| p.get().trim()).unwrap_or("null");
            if fast.jsonrpc == "2.0" && (params.starts_with('{') || params == "null") {
                let params = if params == "null" { "{}" } else { params };
                return dispatch(fast.method, Params::Raw(params))
                    .map(|call| Request {
                        id: fast.id.clone(),
                        call,
                    })
                    .map_err(|e| bad(fast.id, e));
            }
        }
        Self::parse_slowly(text)
    }

    fn parse_slowly(text: &str) -> Result<Request, Box<BadRequest>> {
        let bad = |id: Id, error: RpcError| Box::new(BadRequest { id, error });
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
        match dispatch(&method, Params::Object(params)) {
            Ok(call) => Ok(Request { id, call }),
            Err(error) => Err(bad(id, error)),
        }
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

/// Whether `text` may be a `get` request: it holds `"get"`.
fn mentions_get(text: &str) -> bool {
    // `str::contains` searches with SIMD; a window-by-window compare cost more than the rest
    // of the guess.
    text.contains("\"get\"")
}

fn dispatch(method: &str, params: Params<'_>) -> Result<Call, RpcError> {
    Ok(match method {
        "version" => Call::Version,
        "list" => Call::List,
        "get" => Call::Get(typed_params("get", params)?),
        "set" => Call::Set(typed_params("set", params)?),
        "clear" => Call::Clear(typed_params("clear", params)?),
        "status" => Call::Status(typed_params("status", params)?),
        "login" => Call::Login(typed_params("login", params)?),
        "login_wait" => Call::LoginWait(typed_params("login_wait", params)?),
        "login_cancel" => Call::LoginCancel(typed_params("login_cancel", params)?),
        "logout" => Call::Logout(typed_params("logout", params)?),
        "providers" => Call::Providers,
        "provider_secret" => Call::ProviderSecret(typed_params("provider_secret", params)?),
        "unlock" => Call::Unlock(typed_params("unlock", params)?),
        "lock" => Call::Lock,
        "passwd" => Call::Passwd(typed_params("passwd", params)?),
        "migrate" => Call::Migrate(typed_params("migrate", params)?),
        "reload" => Call::Reload,
        "authenticate" => Call::Authenticate(typed_params("authenticate", params)?),
        "grant_create" => Call::GrantCreate(typed_params("grant_create", params)?),
        "grant_list" => Call::GrantList,
        "grant_revoke" => Call::GrantRevoke(typed_params("grant_revoke", params)?),
        _ => return Err(RpcError::method_not_found()),
    })
}

/// For `set` params whose bundle is what failed: which of its fields is wrong (the message
/// names latchkey's own fields only).
fn bundle_problem(method: &str, params: &Params<'_>) -> Option<crate::BundleJsonError> {
    if method != "set" {
        return None;
    }
    let bundle = match params {
        Params::Raw(text) => serde_json::from_str::<Map<String, Value>>(text)
            .ok()?
            .remove("bundle")?,
        Params::Object(map) => map.get("bundle")?.clone(),
    };
    crate::types::BundleInput::from_json_value(bundle).err()
}

/// Deserializes params without letting serde quote the client's values in the message.
fn typed_params<T: DeserializeOwned>(method: &str, params: Params<'_>) -> Result<T, RpcError> {
    let parsed = match &params {
        Params::Raw(text) => serde_json::from_str(text),
        Params::Object(map) => serde_json::from_value(Value::Object(map.clone())),
    };
    parsed.map_err(|e| {
        let text = e.to_string();
        // "missing field `x`" names one of our own fields, never client data.
        if text.starts_with("missing field") {
            RpcError::invalid_params(format!("invalid params for {method}: {text}"))
        } else if let Some(problem) = bundle_problem(method, &params) {
            RpcError::invalid_params(format!("invalid params for {method}: bundle: {problem}"))
        } else {
            RpcError::invalid_params(format!(
                "invalid params for {method}: a field has the wrong type or an unknown value"
            ))
        }
    })
}

/// One response, as read by a client.
///
/// Its `Debug` shows the size of a result, never its text: a `get` result holds a secret.
#[derive(Clone)]
pub struct Response {
    /// The id of the request it answers.
    pub id: Id,
    /// The result as JSON text, or the error.
    pub outcome: Result<Box<RawValue>, RpcError>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("Response");
        out.field("id", &self.id);
        match &self.outcome {
            Ok(raw) => out.field("result_bytes", &raw.get().len()),
            Err(error) => out.field("error", error),
        };
        out.finish()
    }
}

/// Room for the envelope around a result: `{"jsonrpc":"2.0","id":…,"result":…}` and the
/// newline, with a long id.
const ENVELOPE_RESERVE: usize = 96;

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    jsonrpc: &'static str,
    id: &'a Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RpcError>,
}

#[derive(Deserialize)]
struct EnvelopeIn {
    id: Id,
    #[serde(default)]
    result: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<RpcError>,
}

impl Response {
    /// A success response.
    pub fn ok(id: Id, result: impl Serialize) -> Self {
        match serde_json::value::to_raw_value(&result) {
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
        let mut line = Vec::new();
        self.write_line(&mut line);
        line
    }

    /// Appends the response to `out` as one line, newline included: the same bytes as
    /// [`Response::to_line`], without a buffer of its own.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        let (result, error) = match &self.outcome {
            Ok(value) => {
                // The envelope is short: one growth of `out` instead of a doubling series
                // (a `list` of 10,000 entries is about 3 MB).
                out.reserve(value.get().len() + ENVELOPE_RESERVE);
                (Some(value.as_ref()), None)
            }
            Err(error) => (None, Some(error)),
        };
        let envelope = EnvelopeOut {
            jsonrpc: "2.0",
            id: &self.id,
            result,
            error,
        };
        let start = out.len();
        if serde_json::to_writer(&mut *out, &envelope).is_err() {
            // Writing to a Vec cannot fail; should it, no half line is left behind.
            out.truncate(start);
            return;
        }
        out.push(b'\n');
    }

    /// Appends the success answer to `id` with `result` to `out` as one line, newline
    /// included: the same bytes as `Response::ok(id, result).write_line(out)`, with the result
    /// encoded straight into `out` instead of into a buffer of its own first. Should `result`
    /// fail to encode, the line is the internal error that [`Response::ok`] gives.
    pub fn write_result(id: &Id, result: &impl Serialize, out: &mut Vec<u8>) {
        Self::write_result_with(id, out, |out| serde_json::to_writer(out, result));
    }

    /// [`Response::write_result`] for a `get`, the answer clients ask for most: the same
    /// bytes, with the result written by [`GetResultRef::write_json`].
    pub fn write_get_result(id: &Id, result: GetResultRef<'_>, out: &mut Vec<u8>) {
        Self::write_result_with(id, out, |out| result.write_json(out));
    }

    /// The answer line around the result `write` appends.
    fn write_result_with(
        id: &Id,
        out: &mut Vec<u8>,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) {
        let start = out.len();
        out.reserve(ENVELOPE_RESERVE + 160);
        out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        let written = serde_json::to_writer(&mut *out, id).and_then(|()| {
            out.extend_from_slice(b",\"result\":");
            write(out)
        });
        if written.is_err() {
            // The part already written may hold a secret.
            crate::codec::wipe(&mut out[start..]);
            out.truncate(start);
            Self::err(
                id.clone(),
                RpcError::new(crate::ErrorKind::Internal, "could not encode the result"),
            )
            .write_line(out);
            return;
        }
        out.extend_from_slice(b"}\n");
    }

    /// Drops the response, wiping the text of its result first (a `get` result holds a
    /// secret).
    pub fn wipe(self) {
        if let Ok(result) = self.outcome {
            let text = Box::<str>::from(result);
            let mut bytes = Box::<[u8]>::from(text);
            // One memset, not a byte-at-a-time loop: a `list` answer is megabytes.
            crate::codec::wipe(&mut bytes);
        }
    }

    /// Parses one response line.
    pub fn parse(line: &[u8]) -> Result<Response, RpcError> {
        let envelope: EnvelopeIn = serde_json::from_slice(line)
            .map_err(|_| RpcError::parse("response is not a valid JSON-RPC response"))?;
        let outcome = match (envelope.result, envelope.error) {
            (_, Some(error)) => Err(error),
            (Some(result), None) => Ok(result),
            (None, None) => Err(RpcError::parse("response has neither result nor error")),
        };
        Ok(Response {
            id: envelope.id,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::BundleInput;
    use crate::ErrorKind;
    use crate::Kind;

    fn parse(text: &str) -> Result<Request, Box<BadRequest>> {
        Request::parse(text.as_bytes())
    }

    #[test]
    fn request_line_is_pinned() {
        let request = Request {
            id: Id::from(7),
            call: Call::Get(GetParams {
                service: "github".into(),
                account: None,
                scopes: vec!["repo".into()],
                min_valid_secs: Some(30),
                grant: None,
                proxy: false,
                rejected: None,
            }),
        };
        assert_eq!(
            String::from_utf8(request.to_line()).unwrap(),
            "{\"id\":7,\"jsonrpc\":\"2.0\",\"method\":\"get\",\"params\":{\"min_valid_secs\":30,\"scopes\":[\"repo\"],\"service\":\"github\"}}\n"
        );
        assert_eq!(
            parse(std::str::from_utf8(&request.to_line()).unwrap().trim_end()).unwrap(),
            request
        );
    }

    #[test]
    fn a_proxy_get_says_so_on_the_wire() {
        let line =
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"s","proxy":true}}"#;
        let Call::Get(params) = parse(line).unwrap().call else {
            panic!("not a get");
        };
        assert!(params.proxy);
        let plain = r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"s"}}"#;
        let Call::Get(params) = parse(plain).unwrap().call else {
            panic!("not a get");
        };
        assert!(!params.proxy);
        let bad =
            r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":"s","proxy":"yes"}}"#;
        assert!(parse(bad).is_err());
    }

    #[test]
    fn a_rejected_token_is_named_by_its_fingerprint() {
        let get = |params: &str| {
            parse(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"get","params":{{"service":"s"{params}}}}}"#
            ))
            .map(|request| match request.call {
                Call::Get(params) => params,
                other => panic!("not a get: {other:?}"),
            })
        };
        let params = get(r#","rejected":"ba7816bf8f01cfea""#).unwrap();
        assert_eq!(
            params.rejected,
            Some(crate::TokenFingerprint::of(&crate::Secret::from("abc")))
        );
        // Absent (or null): no rejected token, and nothing on the wire.
        assert_eq!(get("").unwrap().rejected, None);
        assert_eq!(get(r#","rejected":null"#).unwrap().rejected, None);
        let request = Request {
            id: Id::from(1),
            call: Call::Get(get("").unwrap()),
        };
        assert!(!String::from_utf8(request.to_line())
            .unwrap()
            .contains("rejected"));
        // Round trip.
        let request = Request {
            id: Id::from(1),
            call: Call::Get(params),
        };
        let line = request.to_line();
        assert!(String::from_utf8(line.clone())
            .unwrap()
            .contains(r#""rejected":"ba7816bf8f01cfea""#));
        assert_eq!(
            parse(std::str::from_utf8(&line).unwrap().trim_end()).unwrap(),
            request
        );
        for bad in [
            r#","rejected":true"#,
            r#","rejected":12"#,
            r#","rejected":["ba7816bf8f01cfea"]"#,
            r#","rejected":"""#,
            r#","rejected":"BA7816BF8F01CFEA""#,
            r#","rejected":"ba7816bf8f01cfea00""#,
            r#","rejected":"not-a-fingerprint""#,
        ] {
            let refused = get(bad).unwrap_err();
            assert_eq!(refused.error.code, -32602, "{bad}");
        }
    }

    #[test]
    fn fast_and_slow_paths_agree() {
        // Escapes in "jsonrpc" and params given as null force the slow path.
        let fast = parse(r#"{"jsonrpc":"2.0","id":"a","method":"clear","params":{"service":"s"}}"#)
            .unwrap();
        let slow =
            parse(r#"{"jsonrpc":"2\u002e0","id":"a","method":"clear","params":{"service":"s"}}"#)
                .unwrap();
        assert_eq!(fast, slow);
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":1,"method":"list","params":null}"#)
                .unwrap()
                .call,
            Call::List
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":1,"method":"status"}"#)
                .unwrap()
                .call,
            Call::Status(StatusParams::default())
        );
    }

    #[test]
    fn ids_read_as_before() {
        for (text, id) in [
            ("7", Id::from(7)),
            ("-3", Id::Number((-3i64).into())),
            (
                "1.5",
                Id::Number(serde_json::Number::from_f64(1.5).unwrap()),
            ),
            ("\"x\"", Id::String("x".into())),
            ("\"a\\u0062\"", Id::String("ab".into())),
            ("null", Id::Null),
        ] {
            assert_eq!(serde_json::from_str::<Id>(text).unwrap(), id, "{text}");
        }
        for text in ["true", "[1]", "{}"] {
            assert!(serde_json::from_str::<Id>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn get_in_one_pass_agrees_with_the_general_parse() {
        let one_pass = parse(
            r#"{"id":1,"jsonrpc":"2.0","method":"get","params":{"service":"s","scopes":["a"]}}"#,
        )
        .unwrap();
        // Params before the method, and an escape in the method: the general path.
        let general = parse(r#"{"params":{"service":"s","scopes":["a"]},"jsonrpc":"2.0","id":1,"method":"g\u0065t"}"#)
            .unwrap();
        assert_eq!(one_pass, general);
        // A duplicate field in get's params is refused either way.
        let err = parse(
            r#"{"id":1,"jsonrpc":"2.0","method":"get","params":{"service":"s","service":"t"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.error.code, crate::error::INVALID_PARAMS);
        // "get" elsewhere in the line does not make another method a get.
        let clear =
            parse(r#"{"id":1,"jsonrpc":"2.0","method":"clear","params":{"service":"get"}}"#)
                .unwrap();
        assert!(matches!(clear.call, Call::Clear(_)));
    }

    #[test]
    fn write_result_writes_what_ok_writes() {
        let result = serde_json::json!({"secret": "canary", "scopes": ["a\"b"]});
        for id in [Id::from(3), Id::String("x\"y".into()), Id::Null] {
            let mut direct = b"before\n".to_vec();
            Response::write_result(&id, &result, &mut direct);
            let mut copied = b"before\n".to_vec();
            Response::ok(id, &result).write_line(&mut copied);
            assert_eq!(direct, copied);
        }
    }

    #[test]
    fn a_get_answer_written_directly_is_what_serde_writes() {
        use crate::GetResult;
        use chrono::TimeZone;
        let texts = [
            "",
            "sk-plain-0123456789",
            "quote\" backslash\\ slash/",
            "controls \u{0}\u{1}\n\r\t\u{1f}\u{7f}",
            "unicode é ✓ 🔑 \u{2028}\u{202e}",
        ];
        let times = [
            None,
            Some(chrono::Utc.with_ymd_and_hms(2026, 12, 3, 13, 5, 0).unwrap()),
            Some(
                chrono::Utc
                    .timestamp_opt(1_800_000_000, 123_456_789)
                    .unwrap(),
            ),
        ];
        let mut checked = 0;
        for secret in texts {
            for other in [None, Some(texts[2]), Some(texts[4])] {
                for expires_at in times {
                    for scopes in [vec![], vec!["repo".to_owned(), texts[3].to_owned()]] {
                        for kind in [Kind::Oauth2, Kind::ApiKey, Kind::Password] {
                            let result = GetResult {
                                secret: secret.into(),
                                kind,
                                token_type: other.map(str::to_owned),
                                username: other.map(|u| format!("user {u}")),
                                expires_at,
                                scopes: scopes.clone(),
                            };
                            for id in [Id::from(7), Id::String("x\"y".into())] {
                                let mut direct = b"before\n".to_vec();
                                Response::write_get_result(&id, result.as_view(), &mut direct);
                                let mut serde = b"before\n".to_vec();
                                Response::write_result(&id, &result, &mut serde);
                                assert_eq!(
                                    String::from_utf8(direct).unwrap(),
                                    String::from_utf8(serde).unwrap()
                                );
                                // The borrowed form serializes as the result, and copies back.
                                assert_eq!(
                                    serde_json::to_string(&result.as_view()).unwrap(),
                                    serde_json::to_string(&result).unwrap()
                                );
                                assert_eq!(result.as_view().to_result(), result);
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 5 * 3 * 3 * 2 * 3 * 2);
    }

    #[test]
    fn positional_params_are_refused() {
        let err =
            parse(r#"{"jsonrpc":"2.0","id":1,"method":"get","params":["github"]}"#).unwrap_err();
        assert_eq!(err.error.code, crate::error::INVALID_PARAMS);
        assert_eq!(err.id, Id::from(1));
    }

    #[test]
    fn errors_keep_the_id_when_it_was_readable() {
        let err = parse(r#"{"jsonrpc":"2.0","id":"x","method":"nope"}"#).unwrap_err();
        assert_eq!(err.id, Id::String("x".into()));
        assert_eq!(err.error.code, crate::error::METHOD_NOT_FOUND);
        let err = parse(r#"{"jsonrpc":"2.0","method":"list"}"#).unwrap_err();
        assert_eq!(err.id, Id::Null);
        assert_eq!(err.error.kind(), ErrorKind::InvalidRequest);
    }

    #[test]
    fn set_carries_its_bundle() {
        let request = parse(r#"{"jsonrpc":"2.0","id":1,"method":"set","params":{"service":"s","bundle":{"kind":"password","username":"u","password":"p"}}}"#).unwrap();
        let Call::Set(params) = request.call else {
            panic!("not a set")
        };
        assert_eq!(
            params.bundle,
            BundleInput::Password {
                username: "u".into(),
                password: "p".into()
            }
        );
        assert!(!format!("{params:?}").contains("\"p\""));
    }

    #[test]
    fn a_bad_bundle_names_its_field_on_both_paths() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"set","params":{"service":"s","bundle":{"kind":"oauth2","access_token":"SECRET-x","expires_in":"SECRET-y"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"set","params":null,"params":{"service":"s","bundle":{"kind":"oauth2","access_token":"SECRET-x","expires_in":"SECRET-y"}}}"#,
            r#"{"jsonrpc":"2\u002e0","id":1,"method":"set","params":{"service":"s","bundle":{"kind":"oauth2","access_token":"SECRET-x","expires_in":"SECRET-y"}}}"#,
        ] {
            let err = parse(line).unwrap_err().error;
            assert_eq!(
                err.message,
                "invalid params for set: bundle: `expires_in` must be a whole number of seconds",
                "{line}"
            );
        }
        // Other methods keep the general message.
        let err = parse(r#"{"jsonrpc":"2.0","id":1,"method":"get","params":{"service":5}}"#)
            .unwrap_err()
            .error;
        assert!(err.message.contains("wrong type"), "{}", err.message);
    }

    #[test]
    fn response_round_trips_and_debug_hides_results() {
        let response = Response::ok(Id::from(3), serde_json::json!({"secret": "canary"}));
        let line = response.to_line();
        assert_eq!(
            line,
            b"{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"secret\":\"canary\"}}\n"
        );
        assert!(!format!("{response:?}").contains("canary"));
        let back = Response::parse(&line).unwrap();
        assert_eq!(back.id, Id::from(3));
        assert_eq!(back.outcome.unwrap().get(), "{\"secret\":\"canary\"}");
        let err = Response::err(Id::Null, RpcError::too_large(10));
        let back = Response::parse(&err.to_line()).unwrap();
        assert_eq!(back.outcome.unwrap_err().kind(), ErrorKind::TooLarge);
    }
}

//! One audit record: a line of `audit.jsonl`.
//!
//! Every field is always written (`null` when unknown), so a program reading the file sees one
//! shape. The record holds names and identities only; nothing a request carries as a secret has
//! a field here to go into.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How a request reached the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// The Unix socket.
    Socket,
    /// The D-Bus session bus.
    Dbus,
    /// The Windows named pipe.
    Pipe,
}

impl Transport {
    /// Its name in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Socket => "socket",
            Transport::Dbus => "dbus",
            Transport::Pipe => "pipe",
        }
    }
}

/// The entry a request named: a service and an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The service (`github`, `https://idp.example.com`; a provider for `login`).
    pub service: String,
    /// The account (`default` when the request named none); `None` for a `status` of every
    /// account of the service.
    #[serde(default)]
    pub account: Option<String>,
}

/// One audited request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When the request was answered (RFC 3339, UTC).
    #[serde(serialize_with = "write_ts", deserialize_with = "read_ts")]
    pub ts: DateTime<Utc>,
    /// How it arrived.
    pub transport: Transport,
    /// The caller's process id, where the platform tells it.
    #[serde(default)]
    pub pid: Option<u32>,
    /// The caller's uid (Unix).
    #[serde(default)]
    pub uid: Option<u32>,
    /// The caller's user SID (Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The caller's executable, where it can be read.
    #[serde(default)]
    pub exe: Option<String>,
    /// The method (`get`, `set`, `migrate`, ...).
    pub method: String,
    /// The entry it named, if it named a valid one.
    #[serde(default)]
    pub entry: Option<Entry>,
    /// The grant the caller presented, if any.
    #[serde(default)]
    pub grant: Option<String>,
    /// `ok`, or the error kind (`not_found`, `locked`, ...).
    pub outcome: String,
}

impl Record {
    /// A record of `method` answered now over `transport`, with `outcome`; the caller's
    /// identity, entry and grant are filled in with the builder methods.
    pub fn new(transport: Transport, method: &str, outcome: &str) -> Self {
        Self {
            ts: Utc::now(),
            transport,
            pid: None,
            uid: None,
            sid: None,
            exe: None,
            method: method.to_owned(),
            entry: None,
            grant: None,
            outcome: outcome.to_owned(),
        }
    }

    /// With the entry `service`/`account` (`None`: every account of the service).
    pub fn entry(mut self, service: &str, account: Option<&str>) -> Self {
        self.entry = Some(Entry {
            service: service.to_owned(),
            account: account.map(str::to_owned),
        });
        self
    }

    /// With the id of the grant the caller presented.
    pub fn grant(mut self, grant: Option<&str>) -> Self {
        self.grant = grant.map(str::to_owned);
        self
    }

    /// Whether the request succeeded.
    pub fn is_ok(&self) -> bool {
        self.outcome == "ok"
    }

    /// The record as one line of JSON, newline included.
    pub fn to_line(&self, out: &mut Vec<u8>) {
        // A record of strings and numbers always serializes.
        if serde_json::to_writer(&mut *out, self).is_ok() {
            out.push(b'\n');
        }
    }
}

fn write_ts<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ts.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn read_ts<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = std::borrow::Cow::<str>::deserialize(d)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_line_with_every_field() {
        let mut record =
            Record::new(Transport::Socket, "get", "ok").entry("github", Some("default"));
        record.pid = Some(42);
        record.uid = Some(1000);
        record.exe = Some("/usr/bin/git\nfake".into());
        let mut line = Vec::new();
        record.to_line(&mut line);
        let text = String::from_utf8(line).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.ends_with('\n'));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for field in [
            "ts",
            "transport",
            "pid",
            "uid",
            "exe",
            "method",
            "entry",
            "grant",
            "outcome",
        ] {
            assert!(value.get(field).is_some(), "{field} missing: {text}");
        }
        assert!(value.get("sid").is_none());
        assert_eq!(value["transport"], "socket");
        assert_eq!(value["entry"]["service"], "github");
        assert!(value["ts"].as_str().unwrap().ends_with('Z'));
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(back.exe, record.exe);
        assert_eq!(back.ts.timestamp_millis(), record.ts.timestamp_millis());
    }
}

//! What a confirmation prompt says, and what its outcome tells the client: pure text, no I/O.
//!
//! The prompt names the asking program (its executable path) and the entry (service and
//! account), never a secret: the daemon asks before it reads the entry. The path comes from
//! `/proc/PID/exe` and may hold any byte a file name can, so it is escaped twice: characters
//! that could pose as other text (controls, bidirectional and zero-width characters) as
//! `\u{..}`, and the markup characters a notification server may interpret (`&`, `<`, `>`).

use latchkey_core::EntryKey;
use latchkey_proto::{ErrorKind, RpcError};

/// How a prompt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The user chose Allow.
    Allowed,
    /// The user chose Deny.
    Denied,
    /// The notification was closed (or another action chosen) without Allow or Deny.
    Dismissed,
    /// Nobody answered within the timeout (or the server let the notification expire).
    TimedOut,
    /// There was nobody to ask: no session bus, or no notification server on it. Says which.
    NoServer(String),
    /// The notification server or the bus failed. Says how, without quoting the server.
    Failed(String),
}

impl Verdict {
    /// Whether this is the user's answer, kept until the entry changes (Allow and Deny are;
    /// a dismissed, expired or failed prompt asks again next time).
    pub fn is_answer(&self) -> bool {
        matches!(self, Verdict::Allowed | Verdict::Denied)
    }

    /// A short name for log lines.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Denied => "denied",
            Verdict::Dismissed => "dismissed",
            Verdict::TimedOut => "timed_out",
            Verdict::NoServer(_) => "no_notification_server",
            Verdict::Failed(_) => "prompt_failed",
        }
    }

    /// The client's answer: `Ok` for Allow, else `not_confirmed` with a message that says
    /// which way it failed. `remembered` says the answer was given before, not just now.
    pub fn to_result(&self, remembered: bool, timeout_secs: u64) -> Result<(), RpcError> {
        let message = match self {
            Verdict::Allowed => return Ok(()),
            Verdict::Denied if remembered => {
                "the user denied this program access to this entry (remembered until the entry \
                 changes or latchkeyd restarts)"
                    .to_owned()
            }
            Verdict::Denied => "the user denied this program access to this entry".to_owned(),
            Verdict::Dismissed => "the confirmation prompt was closed without an answer".to_owned(),
            Verdict::TimedOut => {
                format!("nobody answered the confirmation prompt within {timeout_secs} s")
            }
            Verdict::NoServer(why) => {
                format!(
                    "this entry needs the user's confirmation, but there is no one to ask: {why}"
                )
            }
            Verdict::Failed(why) => format!("the confirmation prompt failed: {why}"),
        };
        Err(not_confirmed(message))
    }
}

/// `not_confirmed` with `message` and the hint every such refusal carries.
pub fn not_confirmed(message: impl Into<String>) -> RpcError {
    let mut err = RpcError::new(ErrorKind::NotConfirmed, message);
    err.data.hint = Some(
        "entries in [policy] confirm are served only after the user allows the program in a \
         desktop notification"
            .to_owned(),
    );
    err
}

/// The refusal of a program whose executable the daemon cannot read.
pub fn unknown_program() -> RpcError {
    not_confirmed(
        "this entry needs the user's confirmation, and the daemon cannot tell which program is \
         asking (its executable is unknown), so it does not ask",
    )
}

/// The refusal when too many prompts are already waiting for the user.
pub fn too_many() -> RpcError {
    not_confirmed(
        "too many confirmation prompts are already waiting for the user; answer them or try \
         again later",
    )
}

/// Escapes `text` for a notification's summary or body.
fn shown(text: &str) -> String {
    let escaped = latchkey_proto::text::escape(text);
    let mut out = String::with_capacity(escaped.len());
    for c in escaped.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The notification's summary and body for `exe` asking for `key`.
pub fn text(exe: &str, key: &EntryKey) -> (String, String) {
    let summary = format!("Allow a program to use {}?", shown(key.service()));
    let body = format!(
        "{} asks latchkey for the entry {} (account {}). Allow lets this program read it until \
         the entry changes or latchkeyd restarts.",
        shown(exe),
        shown(key.service()),
        shown(key.account()),
    );
    (summary, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_the_program_and_the_entry_escaped() {
        let key = EntryKey::new("bank", Some("work")).unwrap();
        let (summary, body) = text("/usr/bin/curl", &key);
        assert_eq!(summary, "Allow a program to use bank?");
        assert!(body.starts_with("/usr/bin/curl asks latchkey for the entry bank (account work)."));

        let (_, body) = text("/tmp/<b>x</b>&\u{202e}\n", &key);
        assert!(
            body.starts_with("/tmp/&lt;b&gt;x&lt;/b&gt;&amp;\\u{202e}\\u{a} asks"),
            "{body}"
        );
        assert!(!body.contains('\n') && !body.contains('\u{202e}'));
    }

    #[test]
    fn each_outcome_has_its_own_message_and_one_kind() {
        assert_eq!(Verdict::Allowed.to_result(false, 60), Ok(()));
        let outcomes = [
            Verdict::Denied,
            Verdict::Dismissed,
            Verdict::TimedOut,
            Verdict::NoServer("no session bus".into()),
            Verdict::Failed("the server answered with an error".into()),
        ];
        let mut messages = Vec::new();
        for verdict in &outcomes {
            let err = verdict.to_result(false, 60).unwrap_err();
            assert_eq!(err.data.kind, ErrorKind::NotConfirmed);
            assert!(err.data.hint.is_some());
            messages.push(err.message);
        }
        messages.sort();
        messages.dedup();
        assert_eq!(messages.len(), outcomes.len(), "{messages:?}");
        let timed_out = Verdict::TimedOut.to_result(false, 7).unwrap_err();
        assert!(
            timed_out.message.contains("within 7 s"),
            "{}",
            timed_out.message
        );
        let remembered = Verdict::Denied.to_result(true, 60).unwrap_err();
        assert!(
            remembered.message.contains("remembered"),
            "{}",
            remembered.message
        );
        assert_eq!(unknown_program().data.kind, ErrorKind::NotConfirmed);
        assert_eq!(too_many().data.kind, ErrorKind::NotConfirmed);
    }

    #[test]
    fn only_allow_and_deny_are_answers() {
        assert!(Verdict::Allowed.is_answer());
        assert!(Verdict::Denied.is_answer());
        assert!(!Verdict::Dismissed.is_answer());
        assert!(!Verdict::TimedOut.is_answer());
        assert!(!Verdict::NoServer(String::new()).is_answer());
        assert!(!Verdict::Failed(String::new()).is_answer());
    }
}

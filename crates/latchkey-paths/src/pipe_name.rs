//! The per-user named pipe's name (Windows), computed the same way by the daemon and the clients.
//!
//! `$LATCHKEY_PIPE` wins (`\\.\pipe\NAME` or a bare `NAME`). Otherwise the name is
//! `\\.\pipe\latchkey-<SID>`, with the string form of the user's SID (`S-1-5-21-...-1001`),
//! not the user name, because:
//!
//! - user names are not unique on one machine: a local `bob` and a domain `CORP\bob` (or two
//!   domains' `bob`s on a terminal server) would both want `latchkey-bob`, and whichever
//!   daemon started second could not start at all. A SID names one account on every machine
//!   and survives renames.
//! - a user name needs sanitising (spaces, `\`, characters outside ASCII); a SID is plain ASCII.
//!
//! The pipe namespace is shared by every user of the machine, so no name keeps another user
//! from creating it first. That is noticed, not prevented: the daemon creates the pipe with
//! `first_pipe_instance` (a squatter's pipe makes it fail to start), and a client checks the
//! pipe's server process runs as itself before it sends anything (see `pipe_server_sid`). A
//! SID is not a secret, so putting it in the name reveals nothing.

use crate::TrustError;

/// Environment variable that overrides the pipe name for the daemon and the clients.
pub const PIPE_ENV: &str = "LATCHKEY_PIPE";

/// The prefix of every local named pipe.
pub const PIPE_PREFIX: &str = r"\\.\pipe\";

/// The longest pipe name Windows accepts, prefix included.
const MAX_PIPE_NAME: usize = 256;

/// `\\.\pipe\latchkey-<sid>`, the default pipe name of the user with this SID.
pub fn pipe_name_for_sid(sid: &str) -> Result<String, TrustError> {
    check_sid(sid)?;
    Ok(format!("{PIPE_PREFIX}latchkey-{sid}"))
}

/// A pipe name given by the user (`$LATCHKEY_PIPE`): `\\.\pipe\NAME` (the prefix in any case)
/// is taken as is, a bare `NAME` gets the prefix. Remote pipes (`\\host\pipe\...`), empty names
/// and names with `\` or control characters are refused.
pub fn parse_pipe_name(value: &str) -> Result<String, TrustError> {
    let bad = || TrustError::BadPipeName(value.to_owned());
    let name = match value.get(..PIPE_PREFIX.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(PIPE_PREFIX) => &value[PIPE_PREFIX.len()..],
        _ => value,
    };
    if name.is_empty() || name.contains(['\\', '/']) || name.chars().any(char::is_control) {
        return Err(bad());
    }
    let full = format!("{PIPE_PREFIX}{name}");
    if full.len() > MAX_PIPE_NAME {
        return Err(bad());
    }
    Ok(full)
}

/// Checks the string form of a SID: `S-1-` and then numbers separated by `-`.
fn check_sid(sid: &str) -> Result<(), TrustError> {
    let well_formed = sid.strip_prefix("S-1-").is_some_and(|rest| {
        rest.split('-').all(|part| {
            !part.is_empty() && part.len() <= 10 && part.bytes().all(|b| b.is_ascii_digit())
        })
    });
    if well_formed {
        Ok(())
    } else {
        Err(TrustError::BadSid(sid.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sid_names_the_pipe() {
        assert_eq!(
            pipe_name_for_sid("S-1-5-21-1004336348-1177238915-682003330-1001").unwrap(),
            r"\\.\pipe\latchkey-S-1-5-21-1004336348-1177238915-682003330-1001"
        );
        assert_eq!(
            pipe_name_for_sid("S-1-5-18").unwrap(),
            r"\\.\pipe\latchkey-S-1-5-18"
        );
    }

    #[test]
    fn what_is_not_a_sid_is_refused() {
        for bad in [
            "",
            "bob",
            "S-1-",
            "S-1-5--18",
            "S-1-5-18-",
            "S-2-5-18",
            r"S-1-5-18\..\x",
            "S-1-5-18 ",
            "S-1-5-99999999999",
        ] {
            assert!(
                matches!(pipe_name_for_sid(bad), Err(TrustError::BadSid(s)) if s == bad),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_override_is_a_local_pipe() {
        assert_eq!(parse_pipe_name("mine").unwrap(), r"\\.\pipe\mine");
        assert_eq!(parse_pipe_name(r"\\.\pipe\mine").unwrap(), r"\\.\pipe\mine");
        assert_eq!(parse_pipe_name(r"\\.\PIPE\mine").unwrap(), r"\\.\pipe\mine");
    }

    #[test]
    fn a_remote_empty_or_odd_override_is_refused() {
        let long = "x".repeat(MAX_PIPE_NAME);
        for bad in [
            "",
            r"\\.\pipe\",
            r"\\host\pipe\mine",
            r"\\.\pipe\a\b",
            "a/b",
            "line\nbreak",
            "nul\0",
            long.as_str(),
        ] {
            let err = parse_pipe_name(bad).unwrap_err();
            assert!(
                matches!(&err, TrustError::BadPipeName(v) if v == bad),
                "{bad:?}"
            );
            assert!(err.to_string().contains("LATCHKEY_PIPE"), "{err}");
        }
    }
}

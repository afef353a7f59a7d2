//! `latchkey logout`: revoke an entry's tokens at its provider where it can, then remove the
//! entry, and say which of the two happened. An API key or a password has nothing to revoke:
//! it is simply removed, and says so.

use latchkey_proto::{Kind, LogoutResult, RevocationOutcome, StatusParams};

use crate::cli::Cli;
use crate::out::note;
use crate::{print_json, Failure};

/// What to tell a person about a removed entry.
fn said(result: &LogoutResult, kind: Option<Kind>) -> &'static str {
    if !result.removed {
        return "nothing to remove";
    }
    if matches!(kind, Some(Kind::ApiKey | Kind::Password)) {
        return "removed (nothing to revoke)";
    }
    match result.revocation {
        RevocationOutcome::Revoked => "removed; the provider revoked the tokens",
        RevocationOutcome::Unconfirmed => {
            "removed; the provider did not confirm the revocation: the tokens may still work until they expire"
        }
        RevocationOutcome::Unsupported => {
            "removed; the provider offers no revocation: the tokens work until they expire (revoke the app's access in the provider's settings)"
        }
        RevocationOutcome::Failed => {
            "removed; the provider refused the revocation: the tokens may still work until they expire"
        }
    }
}

/// Runs `latchkey logout`.
pub fn run(cli: &Cli, service: &str, account: Option<&str>, json: bool) -> Result<(), Failure> {
    let mut client = crate::connect(cli)?;
    // The kind decides what is said; the entry's metadata never holds a secret.
    let kind = if json {
        None
    } else {
        client
            .status(StatusParams {
                service: Some(service.to_owned()),
                account: Some(
                    account
                        .unwrap_or(latchkey_proto::DEFAULT_ACCOUNT)
                        .to_owned(),
                ),
            })
            .ok()
            .and_then(|status| status.entries.first().map(|e| e.kind))
    };
    let result = client.logout(service, account)?;
    if json {
        return print_json(&result);
    }
    note!("{}", said(&result, kind));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_passwords_have_nothing_to_revoke() {
        let removed = LogoutResult {
            removed: true,
            revocation: RevocationOutcome::Unsupported,
        };
        assert_eq!(
            said(&removed, Some(Kind::ApiKey)),
            "removed (nothing to revoke)"
        );
        assert_eq!(
            said(&removed, Some(Kind::Password)),
            "removed (nothing to revoke)"
        );
        assert!(said(&removed, Some(Kind::Oauth2)).contains("offers no revocation"));
        let gone = LogoutResult {
            removed: false,
            revocation: RevocationOutcome::Unsupported,
        };
        assert_eq!(said(&gone, Some(Kind::ApiKey)), "nothing to remove");
    }
}

//! `latchkey set`: a credential read from stdin or a no-echo prompt, never from the command
//! line. A value given as an argument by mistake (`latchkey set openai sk-123`) is refused
//! without being stored or shown, with the command that does it right.

use anyhow::anyhow;
use latchkey_proto::{BundleInput, Secret};

use crate::cli::{Cli, SetKind, Stray};
use crate::out::note;
use crate::{input, output, usage, Failure};

/// What `latchkey set` was asked to do.
pub struct Request<'a> {
    /// The service.
    pub service: &'a str,
    /// The account.
    pub account: Option<&'a str>,
    /// The kind read without `--bundle`.
    pub kind: SetKind,
    /// `--username`.
    pub username: Option<&'a str>,
    /// `--bundle`.
    pub bundle: bool,
    /// Extra arguments: a secret typed on the command line.
    pub stray: &'a [Stray],
}

/// `name` as it can be pasted into a shell unquoted, else `placeholder`.
fn pasteable<'a>(name: &'a str, placeholder: &'a str) -> &'a str {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@+-".contains(c))
        && !name.starts_with('-');
    if plain {
        name
    } else {
        placeholder
    }
}

/// The refusal of a secret given as an argument; it never quotes the arguments.
fn refuse_argument(request: &Request<'_>) -> Failure {
    let mut command = format!("latchkey set {}", pasteable(request.service, "SERVICE"));
    if let Some(account) = request.account {
        command.push_str(&format!(" -a {}", pasteable(account, "ACCOUNT")));
    }
    if request.kind == SetKind::Password {
        command.push_str(" --kind password --username USER");
    }
    usage(anyhow!(
        "`latchkey set` takes no secret on the command line (other processes and the shell's \
         history can read it there); nothing was stored.\n\
         Pipe it in, or run the command alone to be asked for it without echo:\n  \
         printf %s \"$KEY\" | {command}"
    ))
}

fn read(request: &Request<'_>) -> Result<BundleInput, Failure> {
    if request.bundle {
        let text = input::read_stdin().map_err(usage)?;
        return BundleInput::from_json(&text).map_err(|e| {
            usage(anyhow!(
                "the bundle on stdin is not valid: {e}; see `latchkey set --help`"
            ))
        });
    }
    Ok(match request.kind {
        SetKind::ApiKey => {
            if request.username.is_some() {
                return Err(usage(anyhow!("--username goes with --kind password")));
            }
            let key = input::read_secret("API key: ").map_err(usage)?;
            BundleInput::ApiKey {
                key: Secret::new(key.as_str().to_owned()),
            }
        }
        SetKind::Password => {
            let username = request
                .username
                .ok_or_else(|| usage(anyhow!("--kind password needs --username")))?;
            let password = input::read_secret("Password: ").map_err(usage)?;
            BundleInput::Password {
                username: username.to_owned(),
                password: Secret::new(password.as_str().to_owned()),
            }
        }
    })
}

/// Runs `latchkey set`.
pub fn run(cli: &Cli, request: Request<'_>) -> Result<(), Failure> {
    if !request.stray.is_empty() {
        return Err(refuse_argument(&request));
    }
    let input = read(&request)?;
    let mut client = crate::connect(cli)?;
    let entry = client.set(request.service, request.account, input)?;
    note!(
        "stored {} for {}/{}",
        entry.kind.as_str(),
        output::sanitize(&entry.service),
        output::sanitize(&entry.account)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_shows_a_pasteable_command() {
        let stray = [Stray];
        let request = Request {
            service: "openai",
            account: Some("$(rm -rf ~)"),
            kind: SetKind::ApiKey,
            username: None,
            bundle: false,
            stray: &stray,
        };
        let text = format!("{:#}", refuse_argument(&request).error);
        assert!(
            text.contains("printf %s \"$KEY\" | latchkey set openai -a ACCOUNT"),
            "{text}"
        );
    }
}

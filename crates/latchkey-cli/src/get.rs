//! `latchkey get`: one entry's secret on stdout (or its JSON), with a note on stderr when
//! the daemon could not give as much validity as `--min-valid` asked for.

use latchkey_proto::GetParams;
use zeroize::Zeroizing;

use crate::cli::Cli;
use crate::out::note;
use crate::{min_valid, out, print_json, Failure};

/// What `get` was asked for.
pub struct Request<'a> {
    /// The entry's service.
    pub service: &'a str,
    /// Its account, if not the default.
    pub account: Option<&'a str>,
    /// Scopes the token must have.
    pub scopes: &'a [String],
    /// Seconds the token must stay valid.
    pub min_valid: Option<u64>,
    /// Print JSON.
    pub json: bool,
}

/// Runs `latchkey get`.
pub fn run(cli: &Cli, request: Request<'_>) -> Result<(), Failure> {
    let mut client = crate::connect(cli)?;
    let result = client.get_with(GetParams {
        service: request.service.to_owned(),
        account: request.account.map(str::to_owned),
        scopes: request.scopes.to_vec(),
        min_valid_secs: request.min_valid,
        grant: None,
        proxy: false,
        rejected: None,
    })?;
    let expires_at = result.expires_at.map(|at| at.timestamp());
    if let Some(note) = min_valid::note(expires_at, request.min_valid, min_valid::unix_now()) {
        note!("latchkey: {note}");
    }
    if request.json {
        print_json(&result)?;
    } else {
        let secret = result.secret.expose();
        let mut text = Zeroizing::new(String::with_capacity(secret.len() + 1));
        text.push_str(secret);
        text.push('\n');
        out::write(text.as_bytes())?;
    }
    Ok(())
}

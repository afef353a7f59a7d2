//! `latchkey grant create|list|revoke`, and presenting a grant: `$LATCHKEY_GRANT` or
//! `--grant-file` (never argv, which other processes can read) is sent with `authenticate`
//! first on every connection the CLI opens, so `get`, `run` and the rest run under it.

use std::io::Read;
use std::path::Path;

use anyhow::anyhow;
use latchkey_client::blocking::Client;
use latchkey_proto::{
    GrantCaps, GrantCreateParams, GrantInfo, GrantTokenText, MAX_GRANT_TOKEN_LEN,
};
use zeroize::Zeroizing;

use crate::cli::{Cli, GrantCommand};
use crate::out::note;
use crate::{output, usage, Failure};

/// The environment variable that carries a grant token.
pub const GRANT_ENV: &str = "LATCHKEY_GRANT";

/// The grant to present: `--grant-file`, else `$LATCHKEY_GRANT` (unset or empty: none).
pub fn token(cli: &Cli) -> Result<Option<GrantTokenText>, Failure> {
    let text = match &cli.grant_file {
        Some(path) => Zeroizing::new(read_file(path)?),
        None => match std::env::var(GRANT_ENV) {
            Ok(text) => Zeroizing::new(text),
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(usage(anyhow!("{GRANT_ENV} is not valid UTF-8")))
            }
        },
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    GrantTokenText::new(text.to_owned())
        .map(Some)
        .ok_or_else(|| {
            usage(anyhow!(
                "the grant is longer than {MAX_GRANT_TOKEN_LEN} bytes"
            ))
        })
}

fn read_file(path: &Path) -> Result<String, Failure> {
    let file = std::fs::File::open(path).map_err(|e| {
        usage(anyhow!(
            "cannot read the grant file {}: {e}",
            path.display()
        ))
    })?;
    let mut text = String::new();
    file.take(MAX_GRANT_TOKEN_LEN as u64 + 64)
        .read_to_string(&mut text)
        .map_err(|e| {
            usage(anyhow!(
                "cannot read the grant file {}: {e}",
                path.display()
            ))
        })?;
    Ok(text)
}

/// Presents the grant, if one is given, on `client`'s connection.
pub fn present(cli: &Cli, client: &mut Client) -> Result<(), Failure> {
    if let Some(grant) = token(cli)? {
        client.authenticate(grant)?;
    }
    Ok(())
}

/// Reads `90s`, `30m`, `1h`, `7d` (or bare seconds) as seconds.
fn ttl_secs(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().ok()?;
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(per)
}

fn table(grants: &[GrantInfo]) -> String {
    let rows: Vec<Vec<String>> = grants
        .iter()
        .map(|g| {
            let caps = &g.caps;
            let mut what = caps.services.join(",");
            if let Some(account) = &caps.account {
                what.push_str(&format!(" account={account}"));
            }
            if !caps.scopes.is_empty() {
                what.push_str(&format!(" scopes={}", caps.scopes.join(",")));
            }
            vec![
                g.id.clone(),
                output::sanitize(&g.name),
                output::sanitize(&what),
                caps.ops.join(","),
                g.expires_at.format("%Y-%m-%d %H:%M:%SZ").to_string(),
                if g.revoked { "revoked" } else { "active" }.to_owned(),
            ]
        })
        .collect();
    output::table(&["ID", "NAME", "ALLOWS", "OPS", "EXPIRES", "STATE"], &rows)
}

/// Runs `latchkey grant ...`.
pub fn run(cli: &Cli, command: &GrantCommand) -> Result<(), Failure> {
    let mut client = crate::connect(cli)?;
    match command {
        GrantCommand::Create {
            services,
            account,
            scopes,
            ops,
            ttl,
            name,
            json,
        } => {
            let ttl_secs = ttl_secs(ttl).ok_or_else(|| {
                usage(anyhow!("--ttl takes a duration such as 90s, 30m, 1h or 7d"))
            })?;
            let created = client.grant_create(GrantCreateParams {
                caps: GrantCaps {
                    services: services.clone(),
                    account: account.clone(),
                    scopes: scopes.clone(),
                    ops: ops.clone(),
                },
                ttl_secs,
                name: name.clone(),
            })?;
            if *json {
                return crate::print_json(&created);
            }
            note!(
                "latchkey: grant {} ({}) works until {}; give it to the client in ${GRANT_ENV}",
                created.grant.id,
                output::sanitize(&created.grant.name),
                created.grant.expires_at.format("%Y-%m-%d %H:%M:%SZ"),
            );
            crate::out::line(created.token.expose())?;
        }
        GrantCommand::List { json } => {
            let grants = client.grant_list()?;
            if *json {
                return crate::print_json(&serde_json::json!({ "grants": grants }));
            }
            if grants.is_empty() {
                note!("latchkey: no grants");
            } else {
                crate::out::line(table(&grants).trim_end())?;
            }
        }
        GrantCommand::Revoke { id } => {
            client.grant_revoke(id)?;
            note!("latchkey: revoked grant {}", output::sanitize(id));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ttl_secs;

    #[test]
    fn durations_read_with_their_unit() {
        assert_eq!(ttl_secs("90s"), Some(90));
        assert_eq!(ttl_secs("30m"), Some(1800));
        assert_eq!(ttl_secs("1h"), Some(3600));
        assert_eq!(ttl_secs("7d"), Some(604_800));
        assert_eq!(ttl_secs("45"), Some(45));
        for bad in [
            "",
            "h",
            "1x",
            "-1h",
            "1.5h",
            "1h30m",
            "99999999999999999999d",
        ] {
            assert_eq!(ttl_secs(bad), None, "{bad}");
        }
    }
}

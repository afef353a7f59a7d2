//! `latchkey migrate --to STORE`: asks the daemon to move every entry to another store, which
//! it uses from then on, and prints what moved. When the daemon answers that the store takes a
//! passphrase, it is read from a no-echo prompt (twice when this move chooses it) or from
//! stdin, never from the command line, and the move is asked for again with it.

use anyhow::anyhow;
use latchkey_client::blocking::Client;
use latchkey_client::ClientError;
use latchkey_proto::{
    ErrorKind, MigrateParams, MigrateResult, Secret, UnlockWith, MAX_PASSPHRASE_LEN,
};

use crate::out::note;
use crate::output::sanitize;
use crate::{input, print_json, usage, Failure};

/// Runs the move to `to` and prints its counts (as JSON with `json`).
pub fn run(client: &mut Client, to: &str, json: bool) -> Result<(), Failure> {
    let mut params = MigrateParams {
        to: to.to_owned(),
        passphrase: None,
        create: false,
    };
    let moved = match client.migrate(params.clone()) {
        Err(ClientError::Daemon(e)) if e.kind() == ErrorKind::Locked => {
            let Some(with) = e.data.unlock_with else {
                return Err(ClientError::Daemon(e).into());
            };
            note!("latchkey: {}", sanitize(&e.message));
            let create = with == UnlockWith::NewPassphrase;
            params.passphrase = Some(ask(create)?);
            params.create = create;
            client.migrate(params)?
        }
        answer => answer?,
    };
    if json {
        return print_json(&moved);
    }
    crate::out::write(summary(&moved))?;
    Ok(())
}

/// Reads the passphrase; a new one twice on a terminal.
fn ask(new: bool) -> Result<Secret, Failure> {
    let prompt = if new {
        "New passphrase: "
    } else {
        "Passphrase: "
    };
    let first = if new {
        input::read_new_passphrase().map_err(usage)?
    } else {
        input::read_secret(prompt).map_err(usage)?
    };
    if first.len() > MAX_PASSPHRASE_LEN {
        return Err(usage(anyhow!(
            "the passphrase is longer than {MAX_PASSPHRASE_LEN} bytes"
        )));
    }
    Ok(Secret::new(first.as_str().to_owned()))
}

/// What moved, for people. Store names come from the daemon: escaped.
fn summary(moved: &MigrateResult) -> String {
    let (from, to) = (sanitize(&moved.from), sanitize(&moved.to));
    let mut text = format!(
        "moved {} entries from {from} to {to}: {} copied, {} already there; {} removed from {from}\n",
        moved.copied + moved.already_there,
        moved.copied,
        moved.already_there,
        moved.removed,
    );
    if moved.adopted > 0 {
        text.push_str(&format!(
            "{} entries the {to} store held already are served too\n",
            moved.adopted
        ));
    }
    if moved.left > 0 {
        text.push_str(&format!(
            "{} entries stay in the {from} store (latchkeyd's log says why)\n",
            moved.left
        ));
    }
    if moved.to == "memory" {
        text.push_str("the memory store keeps entries only until latchkeyd stops\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_and_escapes() {
        let mut moved = MigrateResult {
            from: "memory".into(),
            to: "secret-service\u{1b}[2J".into(),
            copied: 7,
            already_there: 3,
            removed: 10,
            left: 0,
            adopted: 0,
        };
        let text = summary(&moved);
        assert!(
            text.starts_with("moved 10 entries from memory to secret-service\\u{1b}[2J: 7 copied, 3 already there; 10 removed from memory\n"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1);
        moved.left = 2;
        moved.adopted = 1;
        moved.to = "memory".into();
        let text = summary(&moved);
        assert!(
            text.contains("2 entries stay in the memory store"),
            "{text}"
        );
        assert!(text.contains("1 entries the memory store held"), "{text}");
        assert!(text.contains("only until latchkeyd stops"), "{text}");
    }
}

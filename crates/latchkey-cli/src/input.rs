//! Reading secrets: from stdin when it is a pipe or a file, from a no-echo prompt on a
//! terminal. Never from the command line.

use std::io::{IsTerminal, Read};

use anyhow::{bail, Context, Result};
use zeroize::Zeroizing;

/// Largest secret or bundle read from stdin.
const MAX_INPUT: u64 = 64 * 1024;

/// Reads one secret. One trailing newline is removed; an empty secret is refused.
pub fn read_secret(prompt: &str) -> Result<Zeroizing<String>> {
    let stdin = std::io::stdin();
    let secret = if stdin.is_terminal() {
        Zeroizing::new(rpassword::prompt_password(prompt).context("cannot read from the terminal")?)
    } else {
        let mut text = read_stdin()?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        text
    };
    if secret.is_empty() {
        bail!("no secret given on stdin");
    }
    Ok(secret)
}

/// Reads several secrets: one prompt each on a terminal, else one line each from stdin (and
/// nothing more). Empty secrets are refused.
pub fn read_secrets(prompts: &[&str]) -> Result<Vec<Zeroizing<String>>> {
    let stdin = std::io::stdin();
    let secrets = if stdin.is_terminal() {
        let mut secrets = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            secrets.push(Zeroizing::new(
                rpassword::prompt_password(*prompt).context("cannot read from the terminal")?,
            ));
        }
        secrets
    } else {
        split_lines(&read_stdin()?, prompts.len())?
    };
    if secrets.iter().any(|s| s.is_empty()) {
        bail!("an empty passphrase or secret is not accepted");
    }
    Ok(secrets)
}

/// Exactly `count` lines of `text` (a last newline is optional; CRLF is accepted).
fn split_lines(text: &str, count: usize) -> Result<Vec<Zeroizing<String>>> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<_> = text
        .split('\n')
        .map(|line| Zeroizing::new(line.strip_suffix('\r').unwrap_or(line).to_owned()))
        .collect();
    if lines.len() != count {
        bail!(
            "expected {count} line{} on stdin, got {}",
            if count == 1 { "" } else { "s" },
            lines.len()
        );
    }
    Ok(lines)
}

/// Reads a new passphrase: twice on a terminal (the two must match), one line from stdin
/// (a pipe is not mistyped).
pub fn read_new_passphrase() -> Result<Zeroizing<String>> {
    if std::io::stdin().is_terminal() {
        let mut two = read_secrets(&["New passphrase: ", "The same again: "])?;
        if two[0] != two[1] {
            bail!("the two passphrases differ; nothing changed");
        }
        return Ok(two.swap_remove(0));
    }
    let mut one = read_secrets(&["New passphrase: "])?;
    Ok(one.remove(0))
}

/// Reads all of stdin (for `--bundle`).
pub fn read_stdin() -> Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new(Vec::new());
    std::io::stdin()
        .take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .context("cannot read stdin")?;
    if bytes.len() as u64 > MAX_INPUT {
        bail!("input on stdin is larger than {MAX_INPUT} bytes");
    }
    let text = std::str::from_utf8(&bytes).context("input on stdin is not UTF-8")?;
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::split_lines;

    #[test]
    fn stdin_lines_are_counted_exactly() {
        let two = split_lines("old pass\r\nnew pass\n", 2).unwrap();
        assert_eq!(
            two.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            ["old pass", "new pass"]
        );
        assert!(split_lines("only one\n", 2).is_err());
        assert!(split_lines("a\nb\nc", 2).is_err());
        let one = split_lines("x", 1).unwrap();
        assert_eq!(one[0].as_str(), "x");
        // An error never quotes the input.
        let err = split_lines("hunter2\nhunter3\nhunter4", 1).unwrap_err();
        assert!(!err.to_string().contains("hunter"), "{err}");
    }
}

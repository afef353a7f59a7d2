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

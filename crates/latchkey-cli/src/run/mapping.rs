//! The mappings of `latchkey run`: which entry's secret goes into which environment variable.
//! They come from `-e VAR=SERVICE[:ACCOUNT][#SCOPE,...]` and from an env file of such lines,
//! and name entries only: nothing here is ever a secret, so errors may quote what they read
//! (escaped by `main` before it is shown).
//!
//! `#` is split off first, then `:`, so scopes may hold `:` (`#https://x.example/read`); a
//! service cannot hold `:` or `#` here. Names are checked by the daemon; this module refuses
//! only what could never work (an empty service, a variable name a shell cannot use).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Largest env file read.
pub const MAX_FILE: u64 = 64 * 1024;

/// Longest variable name accepted.
pub const MAX_VAR: usize = 255;

/// One variable and the entry whose secret it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The environment variable.
    pub var: String,
    /// The entry's service.
    pub service: String,
    /// The entry's account (the daemon's default when absent).
    pub account: Option<String>,
    /// Scopes the token must have.
    pub scopes: Vec<String>,
}

/// Why a mapping was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// No `=` at all.
    #[error("expected VAR=SERVICE[:ACCOUNT][#SCOPE,...]")]
    NoEquals,
    /// Nothing before `=`.
    #[error("the variable name before '=' is empty")]
    EmptyVar,
    /// Not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("{0:?} is not a variable name (letters, digits and _, not starting with a digit)")]
    BadVar(String),
    /// Longer than [`MAX_VAR`].
    #[error("the variable name is longer than {MAX_VAR} bytes")]
    LongVar,
    /// Nothing between `=` and `:`/`#`.
    #[error("the service after '=' is empty")]
    EmptyService,
    /// `:` with nothing after it.
    #[error("the account after ':' is empty")]
    EmptyAccount,
    /// `#` with an empty scope in its list.
    #[error("a scope after '#' is empty")]
    EmptyScope,
    /// A NUL character, which no environment can hold.
    #[error("it holds a NUL character")]
    Nul,
}

fn check_var(var: &str) -> Result<(), MappingError> {
    let mut chars = var.chars();
    let Some(first) = chars.next() else {
        return Err(MappingError::EmptyVar);
    };
    if var.len() > MAX_VAR {
        return Err(MappingError::LongVar);
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if first.is_ascii_digit() || !word(first) || !chars.all(word) {
        return Err(MappingError::BadVar(var.to_owned()));
    }
    Ok(())
}

/// Parses `VAR=SERVICE[:ACCOUNT][#SCOPE,...]`.
pub fn parse(text: &str) -> Result<Mapping, MappingError> {
    if text.contains('\0') {
        return Err(MappingError::Nul);
    }
    let (var, target) = text.split_once('=').ok_or(MappingError::NoEquals)?;
    check_var(var)?;
    let (entry, scopes) = match target.split_once('#') {
        Some((entry, scopes)) => {
            let scopes: Vec<String> = scopes.split(',').map(str::to_owned).collect();
            if scopes.iter().any(String::is_empty) {
                return Err(MappingError::EmptyScope);
            }
            (entry, scopes)
        }
        None => (target, Vec::new()),
    };
    let (service, account) = match entry.split_once(':') {
        Some((_, "")) => return Err(MappingError::EmptyAccount),
        Some((service, account)) => (service, Some(account.to_owned())),
        None => (entry, None),
    };
    if service.is_empty() {
        return Err(MappingError::EmptyService);
    }
    Ok(Mapping {
        var: var.to_owned(),
        service: service.to_owned(),
        account,
        scopes,
    })
}

/// Parses the text of an env file; errors name `name` and the line (from 1).
pub fn parse_file_text(name: &str, text: &str) -> anyhow::Result<Vec<Mapping>> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut mappings = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mapping = parse(line).map_err(|e| anyhow::anyhow!("{name}:{number}: {e}"))?;
        if let Some(first) = seen.insert(mapping.var.clone(), number) {
            anyhow::bail!(
                "{name}:{number}: {} is already mapped on line {first}",
                mapping.var
            );
        }
        mappings.push(mapping);
    }
    Ok(mappings)
}

/// Reads and parses an env file (at most [`MAX_FILE`] bytes of UTF-8).
pub fn read_file(path: &Path) -> anyhow::Result<Vec<Mapping>> {
    // Escaped: a path with a line break must not forge a line of the message.
    let name = latchkey_proto::text::escape(&path.display().to_string());
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("cannot open {name}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow::anyhow!("cannot read {name}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE {
        anyhow::bail!("{name} is larger than {} KiB", MAX_FILE / 1024);
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        anyhow::anyhow!("{name}:{line}: not UTF-8 text")
    })?;
    parse_file_text(&name, text)
}

/// The file's mappings, then those of `-e` (which replace the file's for the same variable).
/// A variable given twice with `-e` is an error.
pub fn combine(file: Vec<Mapping>, args: Vec<Mapping>) -> anyhow::Result<Vec<Mapping>> {
    let mut given: HashMap<&str, ()> = HashMap::new();
    for mapping in &args {
        if given.insert(&mapping.var, ()).is_some() {
            anyhow::bail!("-e {} is given twice", mapping.var);
        }
    }
    let mut all: Vec<Mapping> = file
        .into_iter()
        .filter(|m| !given.contains_key(m.var.as_str()))
        .collect();
    all.extend(args.iter().cloned());
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Mapping {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_three_parts_are_read() {
        assert_eq!(
            ok("GH=github"),
            Mapping {
                var: "GH".into(),
                service: "github".into(),
                account: None,
                scopes: vec![],
            }
        );
        let full = ok("_T1=google:me@example.com#https://x.example/a,openid");
        assert_eq!(full.service, "google");
        assert_eq!(full.account.as_deref(), Some("me@example.com"));
        assert_eq!(full.scopes, ["https://x.example/a", "openid"]);
        // Only the first '=' splits.
        assert_eq!(ok("A=b=c").service, "b=c");
    }

    #[test]
    fn what_could_never_work_is_refused() {
        let cases = [
            ("github", MappingError::NoEquals),
            ("=github", MappingError::EmptyVar),
            ("1X=github", MappingError::BadVar("1X".into())),
            ("A-B=github", MappingError::BadVar("A-B".into())),
            ("A B=github", MappingError::BadVar("A B".into())),
            ("É=github", MappingError::BadVar("É".into())),
            ("X=", MappingError::EmptyService),
            ("X=:work", MappingError::EmptyService),
            ("X=#read", MappingError::EmptyService),
            ("X=github:", MappingError::EmptyAccount),
            ("X=github#", MappingError::EmptyScope),
            ("X=github#a,,b", MappingError::EmptyScope),
            ("X\0Y=github", MappingError::Nul),
            ("X=git\0hub", MappingError::Nul),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Err(want), "{text:?}");
        }
        assert_eq!(
            parse(&format!("{}=s", "V".repeat(MAX_VAR + 1))),
            Err(MappingError::LongVar)
        );
        assert!(parse(&format!("{}=s", "V".repeat(MAX_VAR))).is_ok());
    }

    #[test]
    fn an_env_file_skips_comments_and_names_the_bad_line() {
        let text = "# the project's tokens\n\nGH=github\r\n  OPENAI = openai\n";
        let err = parse_file_text(".latchkey.env", text).unwrap_err();
        assert!(err.to_string().starts_with(".latchkey.env:4: "), "{err}");
        let good = parse_file_text("f", "# c\n\n GH=github \r\nAI=openai:work#x\n").unwrap();
        assert_eq!(
            good.iter().map(|m| m.var.as_str()).collect::<Vec<_>>(),
            ["GH", "AI"]
        );
        let twice = parse_file_text("f", "A=x\nB=y\nA=z\n").unwrap_err();
        assert_eq!(twice.to_string(), "f:3: A is already mapped on line 1");
    }

    #[test]
    fn arguments_replace_the_files_mappings() {
        let file = vec![ok("A=one"), ok("B=two")];
        let all = combine(file.clone(), vec![ok("A=three")]).unwrap();
        assert_eq!(
            all.iter()
                .map(|m| (m.var.as_str(), m.service.as_str()))
                .collect::<Vec<_>>(),
            [("B", "two"), ("A", "three")]
        );
        assert!(combine(file, vec![ok("C=x"), ok("C=y")]).is_err());
    }
}

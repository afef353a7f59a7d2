//! How results are shown to people: tables with escaped names, times relative to now.

use latchkey_proto::{DaemonInfo, Metadata};

/// Replaces control characters so that a name from the daemon cannot move the cursor or
/// rewrite the terminal.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn expires(entry: &Metadata) -> String {
    match entry.expires_at {
        None => "-".to_owned(),
        Some(at) => at.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    }
}

/// A table of entries.
pub fn entries_table(entries: &[Metadata]) -> String {
    if entries.is_empty() {
        return "no entries\n".to_owned();
    }
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            [
                sanitize(&e.service),
                sanitize(&e.account),
                e.kind.as_str().to_owned(),
                e.state.as_str().to_owned(),
                expires(e),
                if e.scopes.is_empty() {
                    "-".to_owned()
                } else {
                    sanitize(&e.scopes.join(" "))
                },
            ]
        })
        .collect();
    let header = ["SERVICE", "ACCOUNT", "KIND", "STATE", "EXPIRES", "SCOPES"];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: &[String]| {
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    };
    push_row(&header.map(str::to_owned));
    for row in &rows {
        push_row(row);
    }
    out
}

/// The daemon part of `status`.
pub fn daemon_summary(info: &DaemonInfo) -> String {
    let locked = match info.locked {
        Some(true) => "locked",
        Some(false) => "unlocked",
        None => "n/a",
    };
    format!(
        "latchkeyd {} (protocol {})\nstore: {} ({}, keychain {})\nentries: {}\n",
        sanitize(&info.version),
        info.protocol,
        sanitize(&info.store),
        if info.persistent {
            "persistent"
        } else {
            "memory only: entries are lost when latchkeyd stops"
        },
        locked,
        info.entries
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(sanitize("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\u{a}");
        assert_eq!(sanitize("José 😀"), "José 😀");
    }
}

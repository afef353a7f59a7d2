//! How results are shown to people: tables with escaped names, times relative to now.

use latchkey_proto::{DaemonInfo, Metadata, ProviderInfo};

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

fn refresh(entry: &Metadata) -> String {
    match (entry.has_refresh_token, entry.last_refreshed_at) {
        (false, _) => "-".to_owned(),
        (true, None) => "auto".to_owned(),
        (true, Some(at)) => format!("auto, last {}", at.format("%Y-%m-%d %H:%M:%SZ")),
    }
}

/// Lays out rows under a header, columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: &[String]| {
        let line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    };
    push_row(&header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>());
    for row in rows {
        push_row(row);
    }
    out
}

/// A table of entries.
pub fn entries_table(entries: &[Metadata]) -> String {
    if entries.is_empty() {
        return "no entries\n".to_owned();
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                sanitize(&e.service),
                sanitize(&e.account),
                e.kind.as_str().to_owned(),
                if e.unsaved {
                    format!("{} (unsaved: retrying)", e.state.as_str())
                } else {
                    e.state.as_str().to_owned()
                },
                expires(e),
                refresh(e),
                if e.scopes.is_empty() {
                    "-".to_owned()
                } else {
                    sanitize(&e.scopes.join(" "))
                },
            ]
        })
        .collect();
    table(
        &[
            "SERVICE", "ACCOUNT", "KIND", "STATE", "EXPIRES", "REFRESH", "SCOPES",
        ],
        &rows,
    )
}

/// A table of providers.
pub fn providers_table(providers: &[ProviderInfo]) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let rows: Vec<Vec<String>> = providers
        .iter()
        .map(|p| {
            vec![
                sanitize(&p.name),
                yes(p.usable),
                if p.flows.is_empty() {
                    if p.issuer.is_some() {
                        "by discovery".to_owned()
                    } else {
                        "-".to_owned()
                    }
                } else {
                    p.flows.join(",")
                },
                yes(p.revocation),
                yes(p.client_secret),
                if p.builtin { "built-in" } else { "config" }.to_owned(),
                sanitize(p.problem.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    table(
        &[
            "PROVIDER", "USABLE", "LOGIN", "REVOKE", "SECRET", "FROM", "NOTE",
        ],
        &rows,
    )
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

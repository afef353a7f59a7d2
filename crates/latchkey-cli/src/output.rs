//! How results are shown to people: tables with escaped names, times relative to now.

use latchkey_proto::{DaemonInfo, Metadata, ProviderInfo, UnlockWith};

/// Escapes control characters (ANSI sequences, newlines), bidirectional controls, zero-width
/// characters and line separators, so that text from another process cannot move the cursor,
/// rewrite the terminal, or show itself in another order than it is. Every string the daemon
/// sent goes through here before it is printed.
pub fn sanitize(text: &str) -> String {
    latchkey_proto::text::escape(text)
}

/// [`sanitize`] line by line: the line breaks of a message this program composed are kept,
/// everything else is escaped.
pub fn sanitize_lines(text: &str) -> String {
    text.split('\n')
        .map(sanitize)
        .collect::<Vec<_>>()
        .join("\n")
}

/// JSON text with the characters [`sanitize`] escapes written as `\uXXXX` escapes (serde_json
/// escapes only C0 controls). Those characters only occur inside strings, where the escape
/// means the same character, so the JSON is unchanged for a program.
pub fn json_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if latchkey_proto::text::unsafe_to_show(c) && c != '\n' {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
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
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
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
                    sanitize(&p.flows.join(","))
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
        _ if info.unlock_with == Some(UnlockWith::Nothing) => "never locked",
        Some(true) => "locked",
        Some(false) => "unlocked",
        None => "lock state unknown",
    };
    let unlock = match info.unlock_with {
        Some(UnlockWith::Passphrase) => "; `latchkey unlock` asks for its passphrase",
        Some(UnlockWith::NewPassphrase) => "; no passphrase yet: `latchkey unlock` chooses one",
        _ => "",
    };
    let reason = match &info.store_reason {
        Some(reason) => format!("why: {}\n", sanitize(reason)),
        None => String::new(),
    };
    format!(
        "latchkeyd {} (protocol {})\nstore: {} ({}, {}{})\n{}entries: {}\n",
        sanitize(&info.version),
        info.protocol,
        sanitize(&info.store),
        if info.persistent {
            "persistent"
        } else {
            "memory only: entries are lost when latchkeyd stops"
        },
        locked,
        unlock,
        reason,
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

    #[test]
    fn hidden_characters_are_escaped() {
        assert_eq!(
            sanitize("gh\u{202E}bad\u{2066}\u{200F}\u{61C}"),
            "gh\\u{202e}bad\\u{2066}\\u{200f}\\u{61c}"
        );
        assert_eq!(
            sanitize("a\u{200B}\u{200D}\u{2060}\u{FEFF}"),
            "a\\u{200b}\\u{200d}\\u{2060}\\u{feff}"
        );
        assert_eq!(sanitize("a\u{2028}b\u{2029}"), "a\\u{2028}b\\u{2029}");
        assert_eq!(
            sanitize_lines("one\u{1b}]0;t\u{7}\ntwo\u{202E}"),
            "one\\u{1b}]0;t\\u{7}\ntwo\\u{202e}"
        );
    }

    #[test]
    fn json_stays_json_without_hidden_characters() {
        let value = serde_json::json!({"service": "a\u{202E}b\u{1b}\u{85}\u{2028}😀"});
        let text = json_safe(&serde_json::to_string_pretty(&value).unwrap());
        assert!(!text
            .chars()
            .any(|c| c != '\n' && latchkey_proto::text::unsafe_to_show(c)));
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }
}

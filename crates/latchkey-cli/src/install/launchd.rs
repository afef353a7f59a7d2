//! Start at login with launchd: one LaunchAgent plist under `~/Library/LaunchAgents`, in which
//! launchd owns the socket and hands it to latchkeyd when a client connects. Pure text and
//! argument lists, so the Linux tests check them too.

use std::path::{Path, PathBuf};

use super::{render, strings, File, Paths, Plan};

const PLIST: &str = include_str!("../../../../launchd/dev.latchkey.latchkeyd.plist");

/// The agent's launchd label (also the plist's file name).
pub(crate) const LABEL: &str = "dev.latchkey.latchkeyd";

/// The uid whose GUI domain the agent joins.
#[cfg(target_os = "macos")]
pub(crate) fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

/// Where the agent's plist goes.
fn agent_path(home: &Path) -> PathBuf {
    home.join("Library/LaunchAgents")
        .join(format!("{LABEL}.plist"))
}

/// The launchd domain of the user's login session.
fn domain(uid: u32) -> String {
    format!("gui/{uid}")
}

/// The agent inside that domain, as `launchctl print` and `kickstart` name it.
fn service(uid: u32) -> String {
    format!("{}/{LABEL}", domain(uid))
}

/// Restarts the agent after an upgrade.
pub(crate) fn restart_command(uid: u32) -> String {
    format!("launchctl kickstart -k {}", service(uid))
}

/// Succeeds when the agent is loaded in the user's domain.
pub(crate) fn print_command(uid: u32) -> Vec<String> {
    strings(&["launchctl", "print", &service(uid)])
}

/// Plist values are XML text: a path with `&` or `<` must not break the document.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The plist, and the `launchctl` calls that load and unload it for `uid`.
pub(super) fn plan(paths: &Paths<'_>, uid: u32) -> Plan {
    let path = agent_path(&paths.home);
    let shown = path.display().to_string();
    let domain = domain(uid);
    Plan {
        files: vec![File {
            path,
            contents: render(PLIST, paths, xml_escape),
        }],
        enable: vec![strings(&["launchctl", "bootstrap", &domain, &shown])],
        disable: vec![strings(&["launchctl", "bootout", &domain, &shown])],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths<'a>(daemon: &'a Path, home: &str) -> Paths<'a> {
        Paths {
            daemon,
            socket: PathBuf::from("/var/folders/xy/T/latchkey/latchkey.sock"),
            home: PathBuf::from(home),
        }
    }

    /// The text between `<key>KEY</key>` and the next closing `</string>`.
    fn string_after(plist: &str, key: &str) -> String {
        let at = plist
            .find(&format!("<key>{key}</key>"))
            .unwrap_or_else(|| panic!("no {key} in the plist"));
        let rest = &plist[at..];
        let open = rest.find("<string>").unwrap() + "<string>".len();
        let close = rest.find("</string>").unwrap();
        rest[open..close].to_owned()
    }

    #[test]
    fn the_plist_names_the_daemon_the_socket_and_the_log_with_real_paths() {
        let daemon = Path::new("/Applications/latchkey/bin/latchkeyd");
        let plan = plan(&paths(daemon, "/Users/ada"), 501);
        assert_eq!(plan.files.len(), 1);
        let file = &plan.files[0];
        assert_eq!(
            file.path,
            Path::new("/Users/ada/Library/LaunchAgents/dev.latchkey.latchkeyd.plist")
        );
        let plist = &file.contents;
        assert!(!plist.contains('@'), "a placeholder is left:\n{plist}");
        assert_eq!(string_after(plist, "Label"), LABEL);
        assert_eq!(
            string_after(plist, "ProgramArguments"),
            "/Applications/latchkey/bin/latchkeyd"
        );
        assert_eq!(
            string_after(plist, "SockPathName"),
            "/var/folders/xy/T/latchkey/latchkey.sock"
        );
        assert_eq!(
            string_after(plist, "StandardErrorPath"),
            "/Users/ada/Library/Logs/latchkeyd.log"
        );
    }

    #[test]
    fn the_socket_is_private_and_core_dumps_are_off() {
        let plan = plan(&paths(Path::new("/bin/latchkeyd"), "/Users/ada"), 501);
        let plist = &plan.files[0].contents;
        // 384 is 0o600 (socket), 63 is 0o077 (umask): launchd takes them as decimal.
        assert!(plist.contains("<key>SockPathMode</key>\n            <integer>384</integer>"));
        assert!(plist.contains("<key>Umask</key>\n    <integer>63</integer>"));
        assert!(plist.contains("<key>Core</key>\n        <integer>0</integer>"));
    }

    #[test]
    fn paths_with_xml_characters_are_escaped() {
        let daemon = Path::new("/Users/a&b/<bin>/latchkeyd");
        let plan = plan(&paths(daemon, "/Users/a&b"), 501);
        let plist = &plan.files[0].contents;
        assert_eq!(
            string_after(plist, "ProgramArguments"),
            "/Users/a&amp;b/&lt;bin&gt;/latchkeyd"
        );
        assert_eq!(
            string_after(plist, "StandardOutPath"),
            "/Users/a&amp;b/Library/Logs/latchkeyd.log"
        );
        assert!(!plist.contains("a&b"));
        // The file's own path is a path, not XML.
        assert!(plan.files[0]
            .path
            .starts_with("/Users/a&b/Library/LaunchAgents"));
    }

    #[test]
    fn launchctl_loads_and_unloads_the_agent_in_the_users_gui_domain() {
        let plan = plan(&paths(Path::new("/bin/latchkeyd"), "/Users/ada"), 501);
        let plist = "/Users/ada/Library/LaunchAgents/dev.latchkey.latchkeyd.plist";
        assert_eq!(
            plan.enable,
            vec![strings(&["launchctl", "bootstrap", "gui/501", plist])]
        );
        assert_eq!(
            plan.disable,
            vec![strings(&["launchctl", "bootout", "gui/501", plist])]
        );
        assert_eq!(
            print_command(501),
            strings(&["launchctl", "print", "gui/501/dev.latchkey.latchkeyd"])
        );
        assert_eq!(
            restart_command(501),
            "launchctl kickstart -k gui/501/dev.latchkey.latchkeyd"
        );
    }

    #[test]
    fn xml_escape_leaves_plain_text_alone() {
        assert_eq!(
            xml_escape("/usr/local/bin/latchkeyd"),
            "/usr/local/bin/latchkeyd"
        );
        assert_eq!(xml_escape("\"'"), "&quot;&apos;");
    }
}

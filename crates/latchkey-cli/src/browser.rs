//! Opening the user's browser for a login, and saying at once when that cannot work: no
//! graphical session (on Linux and the BSDs: neither `DISPLAY` nor `WAYLAND_DISPLAY`, and no
//! `BROWSER` naming one), no opener installed, or an opener that fails. The login then goes on
//! (the URL is printed; it can be opened by hand), and the message suggests `--device`, which
//! needs no browser on this machine.

use std::ffi::OsString;
use std::io::Write;

use crate::out::note;

/// The program that hands a URL to the desktop's browser.
fn opener() -> &'static str {
    if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    }
}

/// Why no browser can be opened in an environment read through `var`, if it is plain without
/// trying: a Unix desktop other than macOS needs a display (or a `BROWSER` to run).
fn no_display(var: impl Fn(&str) -> Option<OsString>) -> Option<&'static str> {
    if cfg!(any(target_os = "macos", windows)) {
        return None;
    }
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    (!set("DISPLAY") && !set("WAYLAND_DISPLAY") && !set("BROWSER"))
        .then_some("no graphical session: neither DISPLAY nor WAYLAND_DISPLAY is set")
}

/// What to do instead, for a browser login of `provider` (its name as the user typed it).
fn instead(provider: Option<&str>) -> String {
    match provider {
        Some(provider) => format!(
            "open the URL above in a browser yourself, or log in from another device with \
             `latchkey login {} --device`",
            crate::output::sanitize(provider)
        ),
        None => "open the URL above on any device".to_owned(),
    }
}

/// Asks the browser to open `url` and says on `err` what happened. `provider` is set for a
/// browser login, whose alternative is `--device`. An opener that starts and then fails is
/// reported when it exits, from a thread of its own.
pub fn open(url: &str, provider: Option<&str>, err: &mut impl Write) {
    if let Some(why) = no_display(|name| std::env::var_os(name)) {
        let _ = writeln!(
            err,
            "No browser can be opened here ({why}): {}.",
            instead(provider)
        );
        return;
    }
    let child = std::process::Command::new(opener())
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                format!("{} is not installed", opener())
            } else {
                format!("{} cannot be started: {e}", opener())
            };
            let _ = writeln!(
                err,
                "No browser can be opened here ({why}): {}.",
                instead(provider)
            );
            return;
        }
    };
    let _ = writeln!(err, "(a browser was asked to open it)");
    let then = instead(provider);
    std::thread::spawn(move || {
        if let Ok(status) = child.wait() {
            if !status.success() {
                note!(
                    "\rThe browser could not be opened ({} failed, {status}): {then}.",
                    opener()
                );
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(any(target_os = "macos", windows)))]
    #[test]
    fn a_session_without_a_display_is_known_without_trying() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert!(no_display(env(&[])).is_some());
        assert!(no_display(env(&[("DISPLAY", "")])).is_some());
        assert!(no_display(env(&[("DISPLAY", ":0")])).is_none());
        assert!(no_display(env(&[("WAYLAND_DISPLAY", "wayland-0")])).is_none());
        assert!(no_display(env(&[("BROWSER", "w3m")])).is_none());
    }

    #[test]
    fn the_alternative_is_the_device_flow_for_a_browser_login() {
        assert!(instead(Some("github")).contains("`latchkey login github --device`"));
        assert!(instead(Some("gi\u{1b}[2Jt")).contains("\\u{1b}"));
        assert!(!instead(None).contains("--device"));
    }
}

//! launchd's part of `latchkey doctor` (macOS): is the LaunchAgent loaded in this user's login
//! session, so that launchd holds the socket and starts latchkeyd on the first connection.

use std::process::{Command, Stdio};

use super::{Outcome, Report};
use crate::install::launchd;

/// Reports whether `launchctl print` knows the agent.
pub(super) fn agent_loaded(report: &mut Report) {
    let uid = launchd::current_uid();
    let probe = launchd::print_command(uid);
    let loaded = Command::new(&probe[0])
        .args(&probe[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success());
    match loaded {
        Ok(true) => report.line(
            Outcome::Ok,
            &format!("the LaunchAgent {} is loaded", launchd::LABEL),
            None,
        ),
        Ok(false) => report.line(
            Outcome::Warn,
            &format!("the LaunchAgent {} is not loaded", launchd::LABEL),
            Some("run `latchkey install`, or log out and in again"),
        ),
        Err(err) => report.line(
            Outcome::Warn,
            &format!("cannot run launchctl ({err})"),
            None,
        ),
    }
}

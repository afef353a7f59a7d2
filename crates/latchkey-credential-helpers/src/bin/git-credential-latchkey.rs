//! `git-credential-latchkey`: git's credential helper backed by latchkeyd. git runs it as
//! `git credential-latchkey [OPTIONS] get|store|erase` when `credential.helper` is
//! `latchkey [OPTIONS]`; this file parses the arguments, reads the request, and writes the
//! answer and an exit status. The work is in the library's `git` module.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use latchkey_credential_helpers::git::{self, entry::Options, protocol, Plan, Stored};
use latchkey_credential_helpers::{daemon, input, Error};

/// A git credential helper that takes passwords and OAuth tokens from latchkeyd.
///
/// Configure it with `git config --global credential.helper latchkey`; to serve one
/// latchkey entry (an OAuth login, say) for a host:
/// `git config --global credential.https://example.com.helper "latchkey --service example"`.
#[derive(Debug, Parser)]
#[command(name = "git-credential-latchkey", version)]
struct Args {
    /// Serve this latchkey entry for every request (github.com and gitlab.com over https
    /// use the `github` and `gitlab` entries without it, when they exist).
    #[arg(long, value_name = "SERVICE")]
    service: Option<String>,
    /// The account of that entry [default: default]
    #[arg(short, long, value_name = "ACCOUNT")]
    account: Option<String>,
    /// The username to give git with a token [default: git's own, else the host's
    /// convention, else x-access-token]
    #[arg(long, value_name = "NAME")]
    username: Option<String>,
    /// latchkeyd's socket, and only it [default: LATCHKEY_SOCKET, else the default socket,
    /// else the session bus]
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// What git asks for: get, store or erase (anything else is ignored, as git expects).
    action: String,
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Get,
    Store,
    Erase,
}

fn run(action: Action, args: &Args) -> Result<(), Error> {
    let request = {
        let input = input::read_until_blank_line(std::io::stdin().lock(), input::MAX_INPUT)?;
        protocol::parse(&input)?
    };
    let options = Options {
        service: args.service.clone(),
        account: args.account.clone(),
        username: args.username.clone(),
    };
    let plan = Plan::new(request, &options)?;
    let mut client = daemon::connect(args.socket.clone())?;
    match action {
        Action::Get => {
            if let Some(answer) = git::get(&mut client, &plan)? {
                let text = answer.render()?;
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(Error::Write)?;
            }
        }
        Action::Store => match git::store(&mut client, &plan)? {
            Stored::Saved | Stored::Unchanged | Stored::ProviderServes(_) => {}
        },
        Action::Erase => {
            if let Some(key) = git::erase(&mut client, &plan)?.provider_kept {
                // Validated entry names hold no control characters.
                let _ = writeln!(
                    std::io::stderr(),
                    "git-credential-latchkey: the server refused the credential of {key}; latchkey \
                     keeps the entry (if it keeps being refused, log in again: latchkey login {})",
                    key.service()
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let action = match args.action.as_str() {
        "get" => Action::Get,
        "store" => Action::Store,
        "erase" => Action::Erase,
        // gitcredentials(7): a helper ignores operations it does not know.
        _ => return ExitCode::SUCCESS,
    };
    match run(action, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // git shows a helper's stderr to the user; a daemon's message is escaped.
            let text = latchkey_proto::text::escape(&err.to_string());
            let _ = writeln!(std::io::stderr(), "git-credential-latchkey: {text}");
            ExitCode::from(if err.is_bad_input() { 2 } else { 1 })
        }
    }
}

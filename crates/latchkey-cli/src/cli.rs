//! The command line, as clap parses it.
//!
//! The options that reach the daemon (`--socket`, `--transport`, `--verbose`, and `--pipe` on
//! Windows) are global: they are accepted after any subcommand but shown once, under "Global
//! options" in `latchkey --help`, and not again in every subcommand's help ([`command`]).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

/// The heading the global options are shown under in `latchkey --help`.
const GLOBAL: &str = "Global options";

/// What each subcommand's help says instead of repeating the global options.
const GLOBAL_NOTE: &str =
    "Global options (--socket, --transport, --verbose) are listed by `latchkey --help`.";

/// The whole command line, built, with the global options hidden from the subcommands' help.
///
/// clap copies a global option into every subcommand when it builds the command, and the help
/// of each then lists it. Once built, the copies are marked hidden (in place, so clap's index
/// of the options stays valid); they still parse.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    hide_globals(cmd, true)
}

fn hide_globals(cmd: clap::Command, root: bool) -> clap::Command {
    let cmd = if root {
        cmd
    } else {
        let cmd = cmd.mut_args(|arg| {
            if arg.is_global_set() {
                arg.hide(true)
            } else {
                arg
            }
        });
        if cmd.get_after_help().is_none() {
            cmd.after_help(GLOBAL_NOTE)
        } else {
            cmd
        }
    };
    cmd.mut_subcommands(|sub| hide_globals(sub, false))
}

/// latchkey: get and store credentials held by latchkeyd.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about, after_help = crate::exit_codes::HELP)]
pub struct Cli {
    /// The daemon's socket, and only it [default: latchkey.sock in $XDG_RUNTIME_DIR/latchkey, else in ~/.local/state/latchkey (macOS: $TMPDIR/latchkey)]
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_SOCKET",
        value_name = "PATH",
        help_heading = GLOBAL
    )]
    pub socket: Option<PathBuf>,
    /// The daemon's named pipe, and only it: \\.\pipe\NAME or a bare NAME
    /// [default: \\.\pipe\latchkey-<your SID>]
    #[cfg(windows)]
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_PIPE",
        value_name = "NAME",
        help_heading = GLOBAL
    )]
    pub pipe: Option<String>,
    /// How to reach the daemon: the socket, the session bus, or the socket if a daemon listens
    /// there and the bus otherwise (which also starts an activatable daemon).
    /// A socket named with --socket or LATCHKEY_SOCKET is used alone, never swapped for the bus.
    #[arg(long, global = true, value_enum, default_value_t = TransportArg::Auto, help_heading = GLOBAL)]
    pub transport: TransportArg,
    /// Say on stderr which way the daemon was reached.
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub verbose: bool,
    /// Present the grant in this file (instead of $LATCHKEY_GRANT): every request then runs
    /// under it and may do only what it allows. A grant is never taken from the command line.
    #[arg(long, global = true, value_name = "PATH", help_heading = GLOBAL)]
    pub grant_file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--transport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    /// Socket first, then D-Bus.
    Auto,
    /// Only the Unix socket.
    Socket,
    /// Only the D-Bus session bus.
    Dbus,
    /// Only the named pipe (Windows; what auto means there).
    #[cfg(windows)]
    Pipe,
}

/// An argument `set` refuses because it is probably a secret: its value is dropped as soon
/// as it is parsed, so only its presence is kept (and nothing can print it).
#[derive(Clone, Copy, Debug)]
pub struct Stray;

/// The credential kinds `set` can read from stdin without `--bundle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SetKind {
    /// An API key.
    ApiKey,
    /// A password (needs --username).
    Password,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print an entry's secret (access token, API key or password) on stdout.
    Get {
        /// The service, e.g. `github`.
        service: String,
        /// The account [default: default]
        #[arg(short, long)]
        account: Option<String>,
        /// A scope the token must have been granted (repeatable).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// The token must stay valid at least this many seconds.
        #[arg(long, value_name = "SECS")]
        min_valid: Option<u64>,
        /// Print the whole result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Store a credential read from stdin (or a no-echo prompt on a terminal).
    Set {
        /// The service, e.g. `openai`.
        service: String,
        /// The account [default: default]
        #[arg(short, long)]
        account: Option<String>,
        /// What the secret on stdin is.
        #[arg(long, value_enum, default_value_t = SetKind::ApiKey, conflicts_with = "bundle")]
        kind: SetKind,
        /// The username, for `--kind password`.
        #[arg(long)]
        username: Option<String>,
        /// Read a whole JSON bundle from stdin, e.g. {"kind":"oauth2","access_token":...}.
        #[arg(long)]
        bundle: bool,
        /// A secret given on the command line by mistake: refused, never shown (argv is
        /// visible to other processes and kept in shell history).
        #[arg(
            hide = true,
            num_args = 0..,
            value_name = "SECRET",
            value_parser = clap::builder::OsStringValueParser::new().map(|_| Stray)
        )]
        stray: Vec<Stray>,
    },
    /// Remove an entry.
    Clear {
        /// The service.
        service: String,
        /// The account [default: default]
        #[arg(short, long)]
        account: Option<String>,
    },
    /// Show the daemon's state and the entries (never a secret).
    Status {
        /// Only this service.
        service: Option<String>,
        /// Only this account.
        #[arg(short, long)]
        account: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List every entry (never a secret).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Log in at an OAuth provider (run by the daemon, which keeps and refreshes the tokens).
    /// Opens the browser, or with --device shows a code to enter on any device.
    Login {
        /// The provider (github, google, microsoft, gitlab, discord or one from config.toml);
        /// the entry is stored under this name.
        provider: String,
        /// The account [default: default]
        #[arg(short, long)]
        account: Option<String>,
        /// A scope to ask for (repeatable) [default: the provider's]
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Use the device flow: enter a code on another device instead of a browser here.
        #[arg(long)]
        device: bool,
        /// Do not open a browser; only print the URL.
        #[arg(long)]
        no_browser: bool,
        /// Print the stored entry as JSON when done.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an entry's tokens at its provider (where it can) and remove the entry.
    Logout {
        /// The service.
        service: String,
        /// The account [default: default]
        #[arg(short, long)]
        account: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move every entry to another store, which latchkeyd uses from then on (also after a
    /// restart with --store auto). Each entry is copied and read back before it is removed
    /// from the old store; safe to run again after an interruption. A store that takes a
    /// passphrase asks for it (or reads it from stdin).
    Migrate {
        /// The store to move to: secret-service (Linux), keychain (macOS),
        /// credential-manager (Windows), memory, ...
        #[arg(long, value_name = "STORE")]
        to: String,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Capability grants: let an agent or tool use some entries, for a while, and nothing
    /// else (see `[policy] require_grant` in config.toml).
    Grant {
        /// What to do.
        #[command(subcommand)]
        command: GrantCommand,
    },
    /// Run a loopback HTTP proxy for agents: requests to http://127.0.0.1:PORT/ROUTE/... carry
    /// a grant (with the proxy operation) where the route's header holds the API key; the proxy
    /// swaps it for the credential and forwards them (routes: [proxy.routes.NAME] in config.toml).
    Proxy {
        // Help given as an attribute: rustdoc would read `[proxy]` as a link.
        #[arg(
            long,
            value_name = "N",
            help = "The port on 127.0.0.1 [default: [proxy] port in config.toml, else one the system picks]"
        )]
        port: Option<u16>,
        /// The configuration file [default: config.toml in latchkey's config folder]
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// OAuth providers: list them, store a confidential client's secret.
    Provider {
        /// What to do.
        #[command(subcommand)]
        command: ProviderCommand,
    },
    /// Install latchkeyd to start at login (systemd user units and D-Bus activation on Linux,
    /// a launchd agent on macOS, a Run value under HKCU on Windows). Never needs root.
    Install {
        /// Only print the files, with their paths.
        #[arg(long, conflicts_with = "dry_run")]
        print: bool,
        /// Say what would be written and run, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The daemon binary [default: latchkeyd next to latchkey, else on PATH]
        #[arg(long, value_name = "PATH")]
        daemon: Option<PathBuf>,
    },
    /// Undo `install`: stop latchkeyd at login and remove the files.
    Uninstall {
        /// Say what would be removed and run, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check the session bus, the keyring, the daemon and the start-at-login files, and say
    /// how to fix what is wrong.
    Doctor,
    /// Unlock the daemon's store: the file store with its passphrase (read from a no-echo
    /// prompt or stdin; the first unlock chooses it), a keychain by asking it (which may show
    /// its own prompt). Sent over the socket only.
    Unlock,
    /// Lock the daemon's store: no secret is served until `latchkey unlock`; `set` still works
    /// for the file store.
    Lock,
    /// Change the file store's passphrase (current, then new, from a prompt; or two lines on
    /// stdin).
    Passwd,
    /// Make latchkeyd read its configuration file again (as SIGHUP does) and say what changed
    /// and what needs a restart; a file with an error changes nothing. Over the socket only.
    Reload {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the daemon's audit trail (who did what to which entry, and the outcome), read from
    /// its file; no daemon needed.
    Audit(crate::audit::AuditArgs),
    /// Show the CLI's and the daemon's versions. Without a daemon: the CLI's, a note on how to
    /// start latchkeyd, and exit code 7.
    Version {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a command with secrets in its environment; it is not started if one is missing.
    ///
    /// Every secret is fetched first; if one cannot be had the command is not started, and the
    /// exit code says why. On Unix latchkey then becomes the command (exec): signals reach it,
    /// its exit status is latchkey's, and no other process keeps the secrets.
    ///
    /// Example: latchkey run -e GITHUB_TOKEN=github -e OPENAI_API_KEY=openai:work -- make deploy
    Run {
        /// Put an entry's secret in $VAR: VAR=SERVICE[:ACCOUNT][#SCOPE,...] (repeatable; wins
        /// over the same VAR in --env-file).
        #[arg(
            short = 'e',
            long = "env",
            value_name = "VAR=SERVICE[:ACCOUNT][#SCOPES]"
        )]
        env: Vec<String>,
        /// A file of VAR=SERVICE[:ACCOUNT][#SCOPES] lines, one per variable; blank lines and
        /// lines starting with # are skipped. It names entries only, so a project can commit it.
        #[arg(long, value_name = "FILE")]
        env_file: Option<PathBuf>,
        /// Every token must stay valid at least this many seconds.
        #[arg(long, value_name = "SECS")]
        min_valid: Option<u64>,
        /// The command and its arguments (after --).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<OsString>,
    },
    /// Print an entry's token as a Kubernetes ExecCredential (a kubectl exec plugin).
    ///
    /// In a kubeconfig: users[].user.exec with apiVersion client.authentication.k8s.io/v1,
    /// command latchkey and args [kube-credential, SERVICE]. kubectl caches the token until
    /// the expirationTimestamp it is given (none for an entry that does not expire).
    KubeCredential {
        /// The service.
        service: String,
        /// The account [default: default]
        #[arg(short, long)]
        account: Option<String>,
    },
    /// Print a shell completion script, e.g. `source <(latchkey completions bash)`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages for latchkey and each subcommand into DIR.
    #[command(hide = true)]
    Man {
        /// The folder (created if missing).
        dir: PathBuf,
    },
}

impl Command {
    /// Whether this command was asked for JSON (its errors are JSON too, on stderr).
    pub fn json(&self) -> bool {
        match self {
            Command::Get { json, .. }
            | Command::Status { json, .. }
            | Command::List { json }
            | Command::Login { json, .. }
            | Command::Logout { json, .. }
            | Command::Migrate { json, .. }
            | Command::Version { json } => *json,
            Command::Provider {
                command: ProviderCommand::List { json },
            } => *json,
            _ => false,
        }
    }
}

/// `latchkey grant ...`.
#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Make a grant and print its token (once: it is not kept). Give the token to the client
    /// in $LATCHKEY_GRANT (or a file for --grant-file), never on a command line.
    Create {
        /// A service the grant covers: a name, `prefix:*` or `*` (repeatable).
        #[arg(short, long = "service", required = true, value_name = "SERVICE")]
        services: Vec<String>,
        /// The only account it covers [default: any]
        #[arg(short, long)]
        account: Option<String>,
        /// A scope a `get` under it may ask for (repeatable) [default: any]
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// What it allows: get, proxy (comma-separated) [default: get]
        #[arg(long, value_delimiter = ',', value_name = "OPS")]
        ops: Vec<String>,
        /// How long it works: 90s, 30m, 1h, 7d (up to 366d).
        #[arg(long, value_name = "DURATION")]
        ttl: String,
        /// A label, shown by `grant list`.
        #[arg(long)]
        name: Option<String>,
        /// Print JSON (with the token).
        #[arg(long)]
        json: bool,
    },
    /// List the grants not yet expired (never their tokens).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a grant by id: it stops working at once, on every connection.
    Revoke {
        /// The grant's id (from `grant list` or `grant create`).
        id: String,
    },
}

/// `latchkey provider ...`.
#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// List built-in and configured providers and whether each is usable.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Store the client secret of a confidential client, read from stdin (or a no-echo
    /// prompt). It is kept in the keychain, never in config.toml.
    SetSecret {
        /// The provider.
        provider: String,
    },
    /// Remove a stored client secret.
    ClearSecret {
        /// The provider.
        provider: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::FromArgMatches;

    use super::*;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_show_once_and_parse_everywhere() {
        let mut cmd = command();
        let top = cmd.render_long_help().to_string();
        assert_eq!(top.matches("--socket <PATH>").count(), 1, "{top}");
        let get = cmd
            .find_subcommand_mut("get")
            .unwrap()
            .render_long_help()
            .to_string();
        for hidden in ["--socket <PATH>", "--transport <", "-v, --verbose"] {
            assert!(!get.contains(hidden), "{get}");
        }
        assert!(get.contains(GLOBAL_NOTE), "{get}");
        let list = cmd
            .find_subcommand_mut("provider")
            .and_then(|p| p.find_subcommand_mut("list"))
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(!list.contains("--socket <PATH>"), "{list}");
        let matches = command()
            .try_get_matches_from(["latchkey", "get", "x", "--socket", "/s", "-v"])
            .unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        assert_eq!(cli.socket, Some(PathBuf::from("/s")));
        assert!(cli.verbose);
    }
}

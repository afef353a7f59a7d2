//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// latchkey: get and store credentials held by latchkeyd.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about, after_help = crate::exit_codes::HELP)]
pub struct Cli {
    /// The daemon's socket, and only it [default: latchkey.sock in $XDG_RUNTIME_DIR/latchkey, else in ~/.local/state/latchkey (macOS: $TMPDIR/latchkey)]
    #[arg(long, global = true, env = "LATCHKEY_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The daemon's named pipe, and only it: \\.\pipe\NAME or a bare NAME
    /// [default: \\.\pipe\latchkey-<your SID>]
    #[cfg(windows)]
    #[arg(long, global = true, env = "LATCHKEY_PIPE", value_name = "NAME")]
    pub pipe: Option<String>,
    /// How to reach the daemon: the socket, the session bus, or the socket if a daemon listens
    /// there and the bus otherwise (which also starts an activatable daemon).
    /// A socket named with --socket or LATCHKEY_SOCKET is used alone, never swapped for the bus.
    #[arg(long, global = true, value_enum, default_value_t = TransportArg::Auto)]
    pub transport: TransportArg,
    /// Say on stderr which way the daemon was reached.
    #[arg(short, long, global = true)]
    pub verbose: bool,
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
    /// Show the CLI's and the daemon's versions.
    Version {
        /// Print JSON.
        #[arg(long)]
        json: bool,
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

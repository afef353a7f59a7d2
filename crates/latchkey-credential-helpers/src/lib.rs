//! Credential helpers that hand latchkey's secrets to git and docker, the way those tools
//! already ask for them: `git-credential-latchkey` (git's credential protocol,
//! gitcredentials(7)) and `docker-credential-latchkey` (the docker-credential-helpers
//! contract). Both talk to latchkeyd through `latchkey-client`, with the CLI's transport
//! choice and trust checks ([`daemon`]).
//!
//! # Entry names
//!
//! What a helper stores lives in its own namespace of services, so it never collides with
//! the entries people make with `latchkey set` or `latchkey login`:
//!
//! | helper | service | account |
//! |---|---|---|
//! | git | `git:PROTOCOL://HOST[:PORT]` (`git:https://example.com`), with `/PATH` appended when git sends one (`credential.useHttpPath`) | the git username |
//! | docker | `docker:` + the normalised server URL (`docker:https://registry.example.com:5000`) | the registry username |
//!
//! The host is lower-cased; a docker server URL without a scheme is `https` (as the
//! reference helpers read it), default ports and an empty path are dropped, and a query is
//! ignored. Each entry is a `password` entry (username and password).
//!
//! git can also be served from an entry the user keeps for an OAuth provider: a helper
//! configured with `--service NAME` serves that entry for every request it gets, and a few
//! well-known hosts map to their provider's entry when git asks over https (`github.com` →
//! `github`, `gitlab.com` → `gitlab`; see [`git::entry`]). Such an entry is only read: the
//! daemon refreshes its token, git's `store` never writes over it and git's `erase` never
//! removes it (a refused token means "log in again", which only the user can do; removing
//! the entry would throw away its refresh token).
//!
//! # Failing safely
//!
//! Input is capped ([`input`]) and checked before the daemon is contacted; a request that is
//! malformed, hostile or too large ends the helper with a non-zero exit, nothing written to
//! stdout and nothing stored. Error messages never quote a secret or the raw input.
#![deny(missing_docs)]

pub mod daemon;
pub mod docker;
pub mod error;
pub mod git;
pub mod input;

pub use error::Error;

//! Where latchkey's per-user files and endpoints live, and whether they can be trusted.
//!
//! The daemon and every client agree on the socket's place through [`default_socket_path`]
//! and, on Windows, on the named pipe through `default_pipe_name`. Both sides check what they
//! touch. On Unix: [`check_private_dir`] (a folder owned by this user that nobody else can
//! write into, reached through folders only root or this user can change) and [`is_own_uid`]
//! (the other end of a connection runs as this user). On Windows: `PipeSecurity` (a pipe only
//! this user can open) and `pipe_client_sid` / `pipe_server_sid` compared with
//! `current_user_sid` (the other end runs as this user). So a second local user can neither
//! squat the endpoint nor pose as the daemon or as a client. [`Folders`] names the
//! configuration, data and log folders.
#![deny(missing_docs)]

mod error;
mod folders;
mod location;
mod pipe_name;
#[cfg(unix)]
mod trust;
#[cfg(windows)]
mod windows;

pub use error::TrustError;
pub use folders::Folders;
pub use location::{default_socket_path, runtime_dir, RUNTIME_DIR_ENV, SOCKET_ENV};
pub use pipe_name::{parse_pipe_name, pipe_name_for_sid, PIPE_ENV, PIPE_PREFIX};
#[cfg(unix)]
pub use trust::{check_private_dir, create_private_dir, effective_uid, is_own_uid, User};
#[cfg(windows)]
pub use windows::{
    current_user_sid, default_pipe_name, pipe_client_pid, pipe_client_sid, pipe_exists,
    pipe_server_sid, PipeSecurity,
};

//! Where latchkey's per-user files live, and whether they can be trusted.
//!
//! The daemon and every client agree on the socket's place through [`default_socket_path`].
//! Both sides check what they touch with [`check_private_dir`] (a folder owned by this user
//! that nobody else can write into, reached through folders only root or this user can
//! change) and [`is_own_uid`] (the other end of a connection runs as this user), so a second
//! local user can neither squat the socket's folder nor pose as the daemon or as a client.
#![deny(missing_docs)]

mod location;
#[cfg(unix)]
mod trust;

pub use location::{default_socket_path, runtime_dir, RUNTIME_DIR_ENV, SOCKET_ENV};
#[cfg(unix)]
pub use trust::{
    check_private_dir, create_private_dir, effective_uid, is_own_uid, TrustError, User,
};

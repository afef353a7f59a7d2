//! Who is who on Windows: the user SID of this process and of a named pipe's other end, and
//! the security descriptor that keeps the pipe closed to other users.
//!
//! The daemon serves a pipe client only when [`pipe_client_sid`] equals
//! [`current_user_sid`]; a client talks to a pipe only when [`pipe_server_sid`] does. Both
//! read the peer's process id from the pipe, open that process and read its token's user.

mod local;
mod probe;
mod security;
mod sid;

pub use probe::pipe_exists;
pub use security::PipeSecurity;
pub use sid::{
    current_user_sid, default_pipe_name, pipe_client_pid, pipe_client_sid, pipe_server_sid,
};

use crate::TrustError;

/// A [`TrustError::System`] for `call`, with the thread's last Windows error.
fn last_error(call: &'static str) -> TrustError {
    TrustError::System {
        call,
        source: std::io::Error::last_os_error(),
    }
}

#[cfg(test)]
mod tests;

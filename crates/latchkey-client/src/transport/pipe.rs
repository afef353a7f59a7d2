//! The Windows named pipe: open it (waiting briefly while every instance is busy), then,
//! before anything is sent, check that the process serving it runs as this user (its token's
//! user SID). The pipe namespace is shared by every user of the machine, so the name alone
//! proves nothing: another user could have created it first.

use std::os::windows::io::AsHandle;
use std::time::Duration;

use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeClient};
use tokio::time::Instant;

use super::line::LineConnection;
use crate::{ClientError, Untrusted};

/// `ERROR_PIPE_BUSY`: the pipe exists but every instance is serving someone.
const ERROR_PIPE_BUSY: i32 = 231;

/// How long to keep trying a busy pipe (the daemon creates the next instance as soon as it
/// accepts one, so this is a blink unless the daemon is overloaded).
const BUSY_WAIT: Duration = Duration::from_secs(2);

/// Connects to the pipe `name` (`\\.\pipe\...`) and checks its server.
pub(crate) async fn connect(name: &str) -> Result<LineConnection, ClientError> {
    let pipe = open(name).await?;
    check_server(name, &pipe)?;
    Ok(LineConnection::new(Box::new(pipe)))
}

async fn open(name: &str) -> Result<NamedPipeClient, ClientError> {
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        match ClientOptions::new().open(name) {
            Ok(pipe) => return Ok(pipe),
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::PipeNotServed {
                    name: name.to_owned(),
                })
            }
            Err(e) => return Err(ClientError::Io(e)),
        }
    }
}

/// The pipe's server process must run as this user.
fn check_server(name: &str, pipe: &NamedPipeClient) -> Result<(), ClientError> {
    let identity = |e| ClientError::Untrusted(Untrusted::Identity(e));
    let server = latchkey_paths::pipe_server_sid(pipe.as_handle()).map_err(identity)?;
    let me = latchkey_paths::current_user_sid().map_err(identity)?;
    if server != me {
        return Err(ClientError::Untrusted(Untrusted::PipeServer {
            name: name.to_owned(),
            sid: server,
        }));
    }
    Ok(())
}

//! JSON-RPC over a byte stream, one object per line: what the socket (and, later, the named
//! pipe) speaks once its transport has connected and checked the other end.

use latchkey_proto::codec::{Frame, LineDecoder};
use latchkey_proto::{Call, Id, Request, Response};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{ClientError, DaemonError};

/// Longest response line accepted (a `list` of many entries is large).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// A connected, checked byte stream to the daemon.
pub(crate) trait ByteStream:
    AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug
{
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> ByteStream for S {}

/// Requests written as lines, answers read as lines, one at a time.
#[derive(Debug)]
pub(crate) struct LineConnection {
    stream: Box<dyn ByteStream>,
    decoder: LineDecoder,
    next_id: u64,
}

impl LineConnection {
    /// Speaks the line protocol over `stream`, which its transport has already checked.
    pub(crate) fn new(stream: Box<dyn ByteStream>) -> Self {
        Self {
            stream,
            decoder: LineDecoder::new(MAX_RESPONSE),
            next_id: 1,
        }
    }

    /// Sends `call` and reads its answer.
    pub(crate) async fn call<T: DeserializeOwned>(&mut self, call: Call) -> Result<T, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let request = Request {
            id: Id::from(id),
            call,
        };
        self.stream
            .write_all(&request.to_line())
            .await
            .map_err(|e| match e.kind() {
                // The daemon hung up first (for example: it refused this user).
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                    ClientError::Closed
                }
                _ => ClientError::Io(e),
            })?;
        let line = self.read_line().await?;
        let response = Response::parse(&line).map_err(|_| ClientError::Protocol)?;
        // An error about a request the daemon could not read (too large, say) carries a null
        // id; requests go one at a time, so it is ours.
        let unidentified_error = response.id == Id::Null && response.outcome.is_err();
        if response.id != Id::from(id) && !unidentified_error {
            return Err(ClientError::Protocol);
        }
        match response.outcome {
            Ok(raw) => serde_json::from_str(raw.get()).map_err(|_| ClientError::Protocol),
            Err(err) => Err(ClientError::Daemon(DaemonError {
                message: err.message,
                data: err.data,
            })),
        }
    }

    async fn read_line(&mut self) -> Result<Vec<u8>, ClientError> {
        let mut buf = [0u8; 8192];
        loop {
            match self.decoder.next_frame() {
                Some(Frame::Line(line)) => return Ok(line),
                Some(Frame::TooLong) => return Err(ClientError::Protocol),
                None => {}
            }
            let n = match self.stream.read(&mut buf).await {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.decoder.feed(&buf[..n]);
        }
    }
}

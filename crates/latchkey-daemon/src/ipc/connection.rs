//! One client connection: refuse a peer of another user before reading anything, then read
//! request lines under the size cap, answer each in order, and close when idle or shutting down.

use latchkey_proto::codec::{Frame, LineDecoder};
use latchkey_proto::{Id, Request, Response, RpcError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::UnixStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::peer::Peer;
use crate::config::Limits;
use crate::handler::{AuditMemory, Handler};

pub(super) async fn run(
    stream: UnixStream,
    handler: &Handler,
    limits: Limits,
    shutdown: &CancellationToken,
) {
    let peer = match Peer::of(&stream) {
        Ok(peer) => peer,
        Err(err) => {
            warn!(error = %err, "cannot read peer credentials; closing");
            return;
        }
    };
    if !peer.is_own_user("a connection") {
        return;
    }
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    let mut decoder = LineDecoder::new(limits.max_line);
    let mut buf = vec![0u8; 16 * 1024];
    let mut audit = AuditMemory::default();
    // One idle timer and one shutdown waiter for the whole connection: re-arming a timer per
    // request costs more than the request. The timer is pushed back lazily, when it fires.
    let mut last_activity = Instant::now();
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    loop {
        let mut answered = false;
        while let Some(frame) = decoder.next_frame() {
            let response = match frame {
                Frame::Line(line) if line.iter().all(u8::is_ascii_whitespace) => continue,
                Frame::Line(line) => match Request::parse(&line) {
                    // A long call (`login_wait`) must not hold up a shutdown.
                    Ok(request) => tokio::select! {
                        response = handler.handle(request, &peer, &mut audit) => response,
                        () = &mut cancelled => return,
                    },
                    Err(bad) => {
                        debug!(code = bad.error.code, kind = %bad.error.data.kind, "bad request");
                        Response::err(bad.id, bad.error)
                    }
                },
                Frame::TooLong => {
                    debug!(limit = decoder.max(), "request line too long");
                    Response::err(Id::Null, RpcError::too_large(decoder.max()))
                }
            };
            if writer.write_all(&response.to_line()).await.is_err() {
                return;
            }
            answered = true;
        }
        if answered {
            if writer.flush().await.is_err() {
                return;
            }
            last_activity = Instant::now();
        }
        let read = tokio::select! {
            read = reader.read(&mut buf) => read,
            () = &mut idle => {
                let deadline = last_activity + limits.idle_timeout;
                if Instant::now() >= deadline {
                    debug!("idle timeout; closing");
                    return;
                }
                idle.as_mut().reset(deadline);
                continue;
            }
            () = &mut cancelled => return,
        };
        match read {
            Ok(0) => return,
            Ok(n) => {
                decoder.feed(&buf[..n]);
                last_activity = Instant::now();
            }
            Err(err) => {
                debug!(error = %err, "read failed; closing");
                return;
            }
        }
    }
}

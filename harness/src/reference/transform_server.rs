//! The poetry transformation server of part 12: one netstring request
//! `name.poem` per connection, one netstring reply, then close.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio_util::codec::Decoder;

use super::linger::close_gracefully;
use crate::net::{TcpListener, TcpStream};
use crate::protocol::netstring::{self, NetstringCodec, DEFAULT_MAX_PAYLOAD};
use crate::protocol::transform;

/// No byte for this long and the server hangs up (XFORM idle clause).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A transform server's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformServer {
    /// Largest request payload accepted, in bytes.
    pub max_payload: usize,
    /// Longest silence tolerated while a request is incomplete.
    pub idle_timeout: Duration,
}

impl Default for TransformServer {
    fn default() -> Self {
        TransformServer {
            max_payload: DEFAULT_MAX_PAYLOAD,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Why a connection got no reply (for logs; the peer only sees the close).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The request was not a valid netstring.
    #[error(transparent)]
    Framing(#[from] netstring::NetstringError),
    /// The payload was not a valid transform request.
    #[error(transparent)]
    Request(#[from] transform::RequestError),
    /// The client went quiet mid-request.
    #[error("no byte for {0:?}")]
    Idle(Duration),
    /// The client closed before a whole request arrived.
    #[error("client closed after {0} bytes of an incomplete request")]
    Closed(usize),
    /// A socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl TransformServer {
    /// Accepts connections forever, one task each.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let _ = self.handle(stream).await;
            });
        }
    }

    /// Serves one connection: read one request, reply or hang up.
    pub async fn handle(&self, mut stream: TcpStream) -> Result<(), Refusal> {
        match self.read_request(&mut stream).await {
            Ok(payload) => match transform::respond(&payload) {
                Ok(poem) => {
                    netstring::write_netstring(&mut stream, poem.as_bytes()).await?;
                    close_gracefully(stream).await?;
                    Ok(())
                }
                Err(e) => {
                    drop(stream);
                    Err(e.into())
                }
            },
            // Dropping the stream hangs up without a byte of reply.
            Err(e) => Err(e),
        }
    }

    /// Reads one netstring, tolerating at most `idle_timeout` of silence
    /// between two reads.
    async fn read_request(&self, stream: &mut TcpStream) -> Result<bytes::Bytes, Refusal> {
        let mut codec = NetstringCodec::new(self.max_payload);
        let mut buf = BytesMut::with_capacity(1024);
        let mut total = 0;
        loop {
            if let Some(frame) = codec.decode(&mut buf)? {
                return Ok(frame);
            }
            let n = tokio::time::timeout(self.idle_timeout, stream.read_buf(&mut buf))
                .await
                .map_err(|_| Refusal::Idle(self.idle_timeout))??;
            if n == 0 {
                return Err(Refusal::Closed(total));
            }
            total += n;
        }
    }
}

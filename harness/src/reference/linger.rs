//! Closing a connection cleanly, shared by every reference server.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::TcpStream;

/// How long a server waits for the peer's FIN after sending its own.
///
/// Closing a socket with unread input sends RST instead of FIN, which can
/// destroy the poem still in flight to the peer. So after `shutdown` a
/// server reads (and discards) until the peer closes, for at most this long:
/// long enough for any client that reads its poem, short enough that a
/// silent client cannot hold the connection.
pub const LINGER: Duration = Duration::from_secs(5);

/// Sends FIN, then drains what the peer still sends until it closes or
/// [`LINGER`] passes.
pub async fn close_gracefully(mut stream: TcpStream) -> std::io::Result<()> {
    stream.shutdown().await?;
    drain_then_close(stream, LINGER).await
}

/// Reads and discards what the peer still sends until it closes or
/// `limit` passes, then closes: the second half of [`close_gracefully`],
/// for a stream whose FIN is sent already.
pub(crate) async fn drain_then_close(
    mut stream: TcpStream,
    limit: Duration,
) -> std::io::Result<()> {
    let mut sink = [0u8; 1024];
    let drain = async {
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(limit, drain).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

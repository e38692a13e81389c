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
    let mut sink = [0u8; 1024];
    let drain = async {
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(LINGER, drain).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

//! [`TcpListener`] and [`TcpStream`]: the tokio, turmoil and turmoil-net
//! sockets behind one type each.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use turmoil_net::shim::tokio::net as simnet;

/// A listening socket on either network.
pub struct TcpListener(Listener);

enum Listener {
    Tokio(tokio::net::TcpListener),
    Sim(turmoil::net::TcpListener),
    Simnet(simnet::TcpListener),
}

impl From<tokio::net::TcpListener> for TcpListener {
    fn from(l: tokio::net::TcpListener) -> Self {
        TcpListener(Listener::Tokio(l))
    }
}

impl From<turmoil::net::TcpListener> for TcpListener {
    fn from(l: turmoil::net::TcpListener) -> Self {
        TcpListener(Listener::Sim(l))
    }
}

impl From<simnet::TcpListener> for TcpListener {
    fn from(l: simnet::TcpListener) -> Self {
        TcpListener(Listener::Simnet(l))
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

impl TcpListener {
    /// The real socket, to hand to another runtime (real sockets only).
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        match self.0 {
            Listener::Tokio(l) => l.into_std(),
            Listener::Sim(_) | Listener::Simnet(_) => {
                Err(io::Error::other("a simulated listener has no real socket"))
            }
        }
    }

    /// Accepts the next connection.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        match &self.0 {
            Listener::Tokio(l) => l.accept().await.map(|(s, a)| (s.into(), a)),
            Listener::Sim(l) => l.accept().await.map(|(s, a)| (s.into(), a)),
            Listener::Simnet(l) => l.accept().await.map(|(s, a)| (s.into(), a)),
        }
    }

    /// The address this listener is bound to (with the port the OS chose).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.0 {
            Listener::Tokio(l) => l.local_addr(),
            Listener::Sim(l) => l.local_addr(),
            Listener::Simnet(l) => l.local_addr(),
        }
    }
}

/// A connected TCP stream on either network; `AsyncRead + AsyncWrite`.
///
/// `shutdown()` sends FIN; dropping closes (RST if unread data remains, as
/// a real socket does); [`TcpStream::abort`] always sends RST.
#[derive(Debug)]
pub struct TcpStream(Stream);

#[derive(Debug)]
enum Stream {
    Tokio(tokio::net::TcpStream),
    Sim(turmoil::net::TcpStream),
    Simnet(simnet::TcpStream),
}

impl From<tokio::net::TcpStream> for TcpStream {
    fn from(s: tokio::net::TcpStream) -> Self {
        TcpStream(Stream::Tokio(s))
    }
}

impl From<turmoil::net::TcpStream> for TcpStream {
    fn from(s: turmoil::net::TcpStream) -> Self {
        TcpStream(Stream::Sim(s))
    }
}

impl From<simnet::TcpStream> for TcpStream {
    fn from(s: simnet::TcpStream) -> Self {
        TcpStream(Stream::Simnet(s))
    }
}

impl TcpStream {
    /// A handle that can hold this connection's next segment back until
    /// the FIN joins it (real sockets only; `None` in the simulator, whose
    /// segments carry one write each). It stays valid after the stream is
    /// split.
    pub fn last_segment_holder(&self) -> Option<LastSegment> {
        match &self.0 {
            Stream::Tokio(s) => socket2::SockRef::from(s).try_clone().ok().map(LastSegment),
            Stream::Sim(_) | Stream::Simnet(_) => None,
        }
    }

    /// Asks the kernel for a send buffer of about `bytes` (real sockets
    /// only; turmoil has no byte buffers, and turmoil-net sizes them on
    /// its `TcpSocket`, before the connection, not on a stream). A small one makes a
    /// writer block as soon as its reader stops reading, as a slow link
    /// would, instead of after the megabytes loopback would hold.
    pub fn set_send_buffer(&self, bytes: usize) -> io::Result<()> {
        match &self.0 {
            Stream::Tokio(s) => {
                nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::SndBuf, &bytes)
                    .map_err(io::Error::from)
            }
            Stream::Sim(_) | Stream::Simnet(_) => Ok(()),
        }
    }

    /// Writes all of `bytes`, as `write_all(&bytes)` does. On
    /// [`crate::net::Net::Simnet`] the simulated kernel keeps what it
    /// accepts as slices of `bytes`, not copies: a server holding an
    /// 8 MiB poem does not copy it into its send buffer. Elsewhere it is
    /// `write_all`, and the segments on the wire are the same either way.
    pub async fn write_all_shared(&mut self, bytes: Bytes) -> io::Result<()> {
        write_all_by(bytes, |cx, b| self.poll_write_shared(cx, b)).await
    }

    /// `poll_write` of a prefix of `bytes`, kept by the simulated kernel
    /// as a slice of them on [`crate::net::Net::Simnet`] (as
    /// [`TcpStream::write_all_shared`] does); a plain `poll_write`
    /// elsewhere. For a writer that shares the stream with a reader in
    /// one task (see [`write_all_shared_in`]).
    pub fn poll_write_shared(
        &mut self,
        cx: &mut Context<'_>,
        bytes: &Bytes,
    ) -> Poll<io::Result<usize>> {
        match &mut self.0 {
            Stream::Simnet(s) => s.poll_write_shared(cx, bytes),
            _ => Pin::new(self).poll_write(cx, bytes),
        }
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match &self.0 {
            Stream::Tokio(s) => s.peer_addr(),
            Stream::Sim(s) => s.peer_addr(),
            Stream::Simnet(s) => s.peer_addr(),
        }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.0 {
            Stream::Tokio(s) => s.local_addr(),
            Stream::Sim(s) => s.local_addr(),
            Stream::Simnet(s) => s.local_addr(),
        }
    }

    /// Closes abortively: the peer gets a RST, not a FIN.
    ///
    /// On real sockets this is `SO_LINGER` 0 followed by close; in the
    /// simulator it is the vendored turmoil's `abort`, which sends a real
    /// RST segment through the simulated network (turmoil-net's `abort`
    /// on [`crate::net::Net::Simnet`]).
    pub fn abort(self) {
        match self.0 {
            Stream::Tokio(s) => {
                #[allow(deprecated)]
                // set_linger is deprecated only because it can block; zero cannot
                let _ = s.set_linger(Some(Duration::ZERO));
                drop(s);
            }
            Stream::Sim(s) => s.abort(),
            Stream::Simnet(s) => s.abort(),
        }
    }
}

/// Holds a connection's last data back so the FIN travels in the same
/// segment (`TCP_CORK`; the kernel sends data and FIN together at
/// shutdown). A reader then finds the last bytes and the end of the
/// stream in one wake-up, as it often does on a real network.
pub struct LastSegment(socket2::Socket);

impl LastSegment {
    /// From now on, hold partial segments until the shutdown.
    pub fn hold(&self) -> io::Result<()> {
        self.0.set_tcp_cork(true)
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Stream::Tokio(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Sim(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Simnet(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Stream::Tokio(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Sim(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Simnet(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Stream::Tokio(s) => Pin::new(s).poll_flush(cx),
            Stream::Sim(s) => Pin::new(s).poll_flush(cx),
            Stream::Simnet(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Stream::Tokio(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Sim(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Simnet(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// [`TcpStream::write_all_shared`] on a stream that a reader in the same
/// task also uses (each locks it only while it is polled): what
/// `tokio::io::split`'s write half does, without copying `bytes` into the
/// simulated send queue.
pub async fn write_all_shared_in(stream: &Mutex<TcpStream>, bytes: Bytes) -> io::Result<()> {
    write_all_by(bytes, |cx, b| locked(stream).poll_write_shared(cx, b)).await
}

/// The stream, locked only for one poll: never contended, as its reader
/// and writer run in one task (and a poll that panicked left it whole).
fn locked(stream: &Mutex<TcpStream>) -> std::sync::MutexGuard<'_, TcpStream> {
    stream
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes all of `bytes` through `poll_write`, as `write_all` does.
async fn write_all_by(
    mut bytes: Bytes,
    mut poll_write: impl FnMut(&mut Context<'_>, &Bytes) -> Poll<io::Result<usize>>,
) -> io::Result<()> {
    use bytes::Buf;
    while !bytes.is_empty() {
        let n = std::future::poll_fn(|cx| poll_write(cx, &bytes)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes.advance(n);
    }
    Ok(())
}

/// `read` on a stream that a writer in the same task also uses (see
/// [`write_all_shared_in`]).
pub async fn read_in(stream: &Mutex<TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        let mut rb = ReadBuf::new(buf);
        Pin::new(&mut *locked(stream))
            .poll_read(cx, &mut rb)
            .map_ok(|()| rb.filled().len())
    })
    .await
}

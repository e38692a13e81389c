//! Drop-in replacement for [`tokio::net::TcpStream`].
//!
//! PATCH (poetry-harness): the stream knows its host (every `sys_on(self.host, ..)` was `sys(..)`); `abort`, `set_linger`, `linger`.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::kernel::{Addr, Domain, Fd, SocketOption, SocketOptionKind, Type};
use crate::shim::tokio::net::tcp::split::{split, ReadHalf, WriteHalf};
use crate::shim::tokio::net::tcp::split_owned::{split_owned, OwnedReadHalf, OwnedWriteHalf};
use crate::shim::tokio::net::ToSocketAddrs;
// PATCH (poetry-harness): sockets know their host (`sys_on`).
use crate::{current_host, sys, sys_on, HostId};

#[derive(Debug)]
pub struct TcpStream {
    fd: Fd,
    /// PATCH (poetry-harness): the host whose kernel holds `fd`.
    host: HostId,
}

impl TcpStream {
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<Self> {
        let peer = addr.to_socket_addr()?;
        // The fd is allocated before the handshake awaits, so anything
        // short of a successful return would leak it — cancellation
        // (timeout, select!) and handshake errors alike. FdGuard
        // handles both: it closes the fd on drop unless `disarm` is
        // called, which we only do after poll_connect returns Ok.
        let host = current_host();
        let guard = FdGuard::new(sys(|k| k.open(domain_of(&peer), Type::Stream)), host);
        poll_fn(|cx| sys_on(host, |k| k.poll_connect(guard.fd, cx, &Addr::Inet(peer)))).await?;
        Ok(Self {
            fd: guard.disarm(),
            host,
        })
    }

    pub(crate) fn from_fd(fd: Fd, host: HostId) -> Self {
        Self { fd, host }
    }

    /// PATCH (poetry-harness): the host whose kernel holds this socket.
    pub(crate) fn host(&self) -> HostId {
        self.host
    }

    pub(super) fn fd(&self) -> Fd {
        self.fd
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match sys_on(self.host, |k| k.local_addr(self.fd))? {
            Addr::Inet(sa) => Ok(sa),
            Addr::Unix(_) => panic!("TcpStream is Addr::Inet"),
        }
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match sys_on(self.host, |k| k.peer_addr(self.fd))? {
            Addr::Inet(sa) => Ok(sa),
            Addr::Unix(_) => panic!("TcpStream is Addr::Inet"),
        }
    }

    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match sys_on(self.host, |k| k.poll_recv(self.fd, &mut noop_cx(), buf)) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match sys_on(self.host, |k| k.poll_send(self.fd, &mut noop_cx(), buf)) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// PATCH (poetry-harness): writes all of `bytes`, as `write_all`
    /// does, but the kernel keeps each written part as a slice of
    /// `bytes`, not a copy (see `Kernel::poll_send_shared`).
    pub async fn write_all_shared(&mut self, mut bytes: Bytes) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = poll_fn(|cx| self.poll_write_shared(cx, &bytes)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            bytes.advance(n);
        }
        Ok(())
    }

    /// PATCH (poetry-harness): `poll_write` of a prefix of `bytes`, kept
    /// by the kernel as a slice of them (see `write_all_shared`). Takes
    /// `&self`, as the split halves' writes do.
    pub fn poll_write_shared(
        &self,
        cx: &mut Context<'_>,
        bytes: &Bytes,
    ) -> Poll<io::Result<usize>> {
        let fd = self.fd;
        sys_on(self.host, |k| k.poll_send_shared(fd, cx, bytes))
    }

    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| sys_on(self.host, |k| k.poll_peek(self.fd, cx, buf))).await
    }

    pub fn poll_peek(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        let fd = self.fd;
        let unfilled = buf.initialize_unfilled();
        match sys_on(self.host, |k| k.poll_peek(fd, cx, unfilled)) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl: u8 = ttl
            .try_into()
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        sys_on(self.host, |k| {
            k.set_option(self.fd, SocketOption::IpTtl(ttl))
        })
    }

    pub fn ttl(&self) -> io::Result<u32> {
        match sys_on(self.host, |k| {
            k.get_option(self.fd, SocketOptionKind::IpTtl)
        })? {
            SocketOption::IpTtl(v) => Ok(v as u32),
            _ => unreachable!(),
        }
    }

    /// Set `TCP_NODELAY`. Round-trips for API parity but has no
    /// effect on simulated traffic — we never model Nagle, so every
    /// write goes out at the next `egress` pass regardless. See the
    /// `TcpNoDelay` variant of `SocketOption` for the follow-up TODO.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        sys_on(self.host, |k| {
            k.set_option(self.fd, SocketOption::TcpNoDelay(nodelay))
        })
    }

    pub fn nodelay(&self) -> io::Result<bool> {
        match sys_on(self.host, |k| {
            k.get_option(self.fd, SocketOptionKind::TcpNoDelay)
        })? {
            SocketOption::TcpNoDelay(v) => Ok(v),
            _ => unreachable!(),
        }
    }

    /// PATCH (poetry-harness): `SO_LINGER`. `Some(Duration::ZERO)` makes
    /// dropping the stream abortive: a RST instead of a FIN, unsent and
    /// unread data discarded. Any other value closes as without it.
    pub fn set_linger(&self, dur: Option<std::time::Duration>) -> io::Result<()> {
        sys_on(self.host, |k| {
            k.set_option(self.fd, SocketOption::Linger(dur))
        })
    }

    /// PATCH (poetry-harness): `SO_LINGER` as set.
    pub fn linger(&self) -> io::Result<Option<std::time::Duration>> {
        match sys_on(self.host, |k| {
            k.get_option(self.fd, SocketOptionKind::Linger)
        })? {
            SocketOption::Linger(v) => Ok(v),
            _ => unreachable!(),
        }
    }

    /// PATCH (poetry-harness): reset the connection now: a RST to the
    /// peer, whose reads and writes then fail with `ConnectionReset`;
    /// unsent and unread data are discarded. Not in tokio (there it is
    /// `set_linger(Some(Duration::ZERO))` and drop); the same as
    /// turmoil's patched `TcpStream::abort` in this repository.
    pub fn abort(self) {
        let _ = sys_on(self.host, |k| k.abort(self.fd));
    }

    /// Splits a `TcpStream` into a borrowed read half and write half.
    /// More efficient than [`into_split`], but the halves can't move
    /// to independently spawned tasks.
    ///
    /// [`into_split`]: TcpStream::into_split
    #[allow(clippy::needless_lifetimes)]
    pub fn split<'a>(&'a mut self) -> (ReadHalf<'a>, WriteHalf<'a>) {
        split(self)
    }

    /// Splits a `TcpStream` into owned read and write halves, each
    /// movable across tasks. Dropping the write half shuts down the
    /// write side of the stream.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split_owned(self)
    }
}

pub(super) fn noop_cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        sys_on(self.host, |k| k.close(self.fd));
    }
}

// AsyncRead/AsyncWrite are implemented on `TcpStream` only, matching
// tokio. The `poll_*_priv` methods take `&self` so the split/borrowed
// halves can call them through their inner reference without needing
// `&TcpStream` trait impls.

impl TcpStream {
    pub(super) fn poll_read_priv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let fd = self.fd;
        match sys_on(self.host, |k| k.poll_recv_stream(fd, cx, buf)) {
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    pub(super) fn poll_write_priv(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let fd = self.fd;
        sys_on(self.host, |k| k.poll_send(fd, cx, buf))
    }

    pub(super) fn poll_shutdown_priv(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let fd = self.fd;
        sys_on(self.host, |k| k.poll_shutdown_write(fd, cx))
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_read_priv(cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_priv(cx, buf)
    }

    /// No-op — bytes are copied into the kernel's send buffer in
    /// `poll_write` and drained by `egress()`. There's no userspace
    /// buffer to flush.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_shutdown_priv(cx)
    }
}

fn domain_of(peer: &SocketAddr) -> Domain {
    match peer {
        SocketAddr::V4(_) => Domain::Inet,
        SocketAddr::V6(_) => Domain::Inet6,
    }
}

/// Closes an fd on drop unless disarmed. Used in shim paths that
/// allocate an fd before an `await` boundary — without it, a dropped
/// future (timeout, select!, panic) would leak the socket into the
/// kernel table.
struct FdGuard {
    fd: Fd,
    host: HostId,
    armed: bool,
}

impl FdGuard {
    fn new(fd: Fd, host: HostId) -> Self {
        Self {
            fd,
            host,
            armed: true,
        }
    }

    fn disarm(mut self) -> Fd {
        self.armed = false;
        self.fd
    }
}

impl Drop for FdGuard {
    fn drop(&mut self) {
        if self.armed {
            sys_on(self.host, |k| k.close(self.fd));
        }
    }
}

// PATCH (poetry-harness): shared writes.
#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::TcpStream;
    use crate::fixture;
    use crate::shim::tokio::net::TcpListener;
    use crate::sys;

    /// The first write the kernel holds for `s`, unsent or unacknowledged.
    fn first_write(s: &TcpStream) -> Bytes {
        sys(|k| {
            let tcb = k.lookup(s.fd).unwrap().tcb.as_ref().unwrap();
            tcb.send_buf.first_write().unwrap().clone()
        })
    }

    #[test]
    fn a_shared_write_is_queued_as_a_slice_and_arrives_whole() {
        fixture::lo(async {
            let listener = TcpListener::bind("127.0.0.1:7000").await.unwrap();
            let mut client = TcpStream::connect("127.0.0.1:7000").await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            let poem: Bytes = (0..3000u32)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<_>>()
                .into();

            server.write_all_shared(poem.slice(..1000)).await.unwrap();
            let held = first_write(&server);
            assert_eq!(&held[..], &poem[..1000]);
            assert_eq!(
                held.as_ptr(),
                poem.as_ptr(),
                "the poem's own bytes, not a copy"
            );

            // A write from a slice is copied, as `write_all` always was.
            server.write_all(&poem[1000..2000]).await.unwrap();
            server.write_all_shared(poem.slice(2000..)).await.unwrap();
            server.shutdown().await.unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, poem);
        });
    }
}

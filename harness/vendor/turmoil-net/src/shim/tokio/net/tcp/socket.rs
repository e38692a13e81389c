//! PATCH (poetry-harness): drop-in replacement for
//! [`tokio::net::TcpSocket`], so that a listener can have its own backlog
//! (`listen(n)`) and a socket its own `SO_SNDBUF`, `SO_RCVBUF` and
//! `SO_LINGER`.
//!
//! Unlike tokio's, this `TcpSocket` makes its kernel socket only at
//! `connect` or `listen`, applying the options it recorded; so an
//! address conflict in `bind` is reported by `listen` or `connect`.
//!
//! [`tokio::net::TcpSocket`]: https://docs.rs/tokio/latest/tokio/net/struct.TcpSocket.html

use std::cell::Cell;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::kernel::{Addr, Domain, Fd, Kernel, SocketOption, Type};
use crate::shim::tokio::net::{TcpListener, TcpStream};
use crate::{current_host, sys, sys_on};

/// A TCP socket not yet connected or listening.
#[derive(Debug)]
pub struct TcpSocket {
    domain: Domain,
    bind: Cell<Option<SocketAddr>>,
    send_buf: Cell<Option<usize>>,
    recv_buf: Cell<Option<usize>>,
    linger: Cell<Option<Option<Duration>>>,
}

impl TcpSocket {
    /// An IPv4 TCP socket.
    pub fn new_v4() -> io::Result<TcpSocket> {
        Ok(Self::new(Domain::Inet))
    }

    /// An IPv6 TCP socket.
    pub fn new_v6() -> io::Result<TcpSocket> {
        Ok(Self::new(Domain::Inet6))
    }

    fn new(domain: Domain) -> Self {
        Self {
            domain,
            bind: Cell::new(None),
            send_buf: Cell::new(None),
            recv_buf: Cell::new(None),
            linger: Cell::new(None),
        }
    }

    /// Record the local address; taken by `listen` or `connect`.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.bind.set(Some(addr));
        Ok(())
    }

    /// `SO_SNDBUF`: the bytes a writer may queue (sent and unacknowledged
    /// included) before `write` blocks.
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        self.send_buf.set(Some(size as usize));
        Ok(())
    }

    /// `SO_SNDBUF` as set, or the kernel's default.
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        Ok(self
            .send_buf
            .get()
            .unwrap_or_else(|| sys(|k| k.send_buf_cap)) as u32)
    }

    /// `SO_RCVBUF`: the bytes received and not yet read before the
    /// advertised window closes.
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        self.recv_buf.set(Some(size as usize));
        Ok(())
    }

    /// `SO_RCVBUF` as set, or the kernel's default.
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        Ok(self
            .recv_buf
            .get()
            .unwrap_or_else(|| sys(|k| k.recv_buf_cap)) as u32)
    }

    /// `SO_LINGER`; `Some(Duration::ZERO)` makes close send a RST.
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        self.linger.set(Some(dur));
        Ok(())
    }

    /// Make the kernel socket: bound if `bind` was called, with the
    /// recorded options.
    fn open(&self, k: &mut Kernel) -> io::Result<Fd> {
        let fd = match self.bind.get() {
            Some(addr) => k.bind(&Addr::Inet(addr), Type::Stream)?,
            None => k.open(self.domain, Type::Stream),
        };
        if let Some(v) = self.send_buf.get() {
            k.set_option(fd, SocketOption::SendBufferSize(v))?;
        }
        if let Some(v) = self.recv_buf.get() {
            k.set_option(fd, SocketOption::RecvBufferSize(v))?;
        }
        if let Some(v) = self.linger.get() {
            k.set_option(fd, SocketOption::Linger(v))?;
        }
        Ok(fd)
    }

    /// `listen(2)` with this `backlog`: handshaking and accept-ready
    /// connections together; further SYNs are dropped (the client
    /// resends them on its SYN timer). Needs a `bind` first.
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        if self.bind.get().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "listen needs a bound socket",
            ));
        }
        let host = current_host();
        let fd = sys(|k| {
            let fd = self.open(k)?;
            k.listen(fd, backlog as usize)?;
            Ok::<_, io::Error>(fd)
        })?;
        Ok(TcpListener::from_fd(fd, host))
    }

    /// Connect to `addr`; completes when the handshake does.
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        let host = current_host();
        let fd = sys(|k| self.open(k))?;
        let stream = TcpStream::from_fd(fd, host);
        poll_fn(|cx| sys_on(host, |k| k.poll_connect(fd, cx, &Addr::Inet(addr)))).await?;
        Ok(stream)
    }
}

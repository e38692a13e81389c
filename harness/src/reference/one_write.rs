//! The reference poetry server's path for a poem sent in one write on a
//! real machine (`serve fast`, or `serve slow` with a chunk as long as the
//! poem): what [`super::PoetryServer`] does, in fewer system calls.
//!
//! For a small poem a server's cost is the kernel's: accept, write, close.
//! The general path adds, per connection, a task and a reactor
//! registration (`epoll_ctl` to add and remove it, a wake-up, a read that
//! finds nothing yet, a timer for [`LINGER`]), and per batch of
//! connections an `epoll_wait` and an `accept` that finds none. Here, like
//! the minimal server (`fixtures/ceiling`), one thread per core blocks in
//! `accept` on the shared listener (the kernel wakes one thread per
//! connection), and a connection costs accept, send, shutdown, one read
//! that sees the client's FIN, and close:
//!
//! 1. accept, then `send` the poem without blocking (`MSG_DONTWAIT`); the
//!    socket is corked (`TCP_CORK`, inherited from the listener), so the
//!    poem waits for the FIN and both leave in one segment;
//! 2. all of it sent: `shutdown` (FIN), and the socket joins the thread's
//!    lingering list, which a sweep every [`SWEEP`] reads without blocking:
//!    the client's FIN closes it, bytes it sent are discarded (NET-1:
//!    closing with unread input would send RST). The accept gives up after
//!    a [`SWEEP`] (`SO_RCVTIMEO`), so sweeps go on when connections stop:
//!    an idle server wakes every millisecond per thread, measured at 0.2%
//!    of a core;
//! 3. anything else goes the general way, on a tokio runtime: a poem the
//!    socket could not take at once (larger than the send buffer, or a
//!    client not reading) is written to the end and closed gracefully; a
//!    socket still open after [`SWEEPS_BEFORE_HANDOVER`] reads, backing
//!    off (about 128 ms in all), is drained
//!    for the rest of [`LINGER`], so a silent client costs no more than on
//!    the general path.
//!
//! Measured (`bench --reference --manifest fixtures/strategies/ceiling.toml
//! --baseline rust-ceiling --connections 8,32,64 --force`, BENCHMARKS.md):
//! the server's CPU per poem 10.7, 11.1 and 11.8 µs at 8, 32 and 64
//! connections, against 12.4 and 13.7 µs (8, 32) for the same steps on
//! the reactor and 7.8 to 10.2 µs for the minimal server. Corked, one
//! segment fewer per fetch (7 against the minimal server's 8): 0.92 to
//! 1.07 of the minimal server's poems/s at 1 to 64 connections.
//!
//! The clauses are the general path's: the poem unchanged, FIN after its
//! last byte, early leavers end only their own connection, one slow client
//! never holds up another.

use std::io::ErrorKind;
use std::net::TcpStream as StdStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nix::sys::socket::{recv, send, MsgFlags};
use tokio::io::AsyncWriteExt;

use super::linger::{close_gracefully, drain_then_close, LINGER};
use crate::net::TcpStream;

/// How often the lingering sockets are read for the client's FIN.
pub const SWEEP: Duration = Duration::from_millis(1);

/// Reads that find a lingering socket still open before it goes to the
/// reactor, there to be drained for the rest of [`LINGER`]. The reads
/// back off: one sweep after the FIN, then 2, 4, ... sweeps apart, so a
/// socket lingers about 2^N sweeps (128 ms) at most. A busy client takes
/// milliseconds to close (measured: with 64 connections on 2 cores, half
/// the fetches took 1.5 ms); handing its socket to the reactor after two
/// sweeps tripled the CPU per poem.
pub const SWEEPS_BEFORE_HANDOVER: u8 = 7;

/// A socket whose poem and FIN are sent, waiting for the client's FIN.
struct Lingering {
    stream: StdStream,
    misses: u8,
    /// When the FIN was sent.
    since: Instant,
    /// When to read it next.
    due: Instant,
}

/// Serves `poem` to every connection on `listener`, one write each, from
/// `loops` threads accepting on it; what goes the general way runs on a
/// tokio runtime of as many workers. Returns only on an error of the
/// listener itself.
pub fn serve(listener: std::net::TcpListener, poem: Bytes, loops: usize) -> std::io::Result<()> {
    let reactor = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(loops.max(1))
        .enable_all()
        .build()?;
    listener.set_nonblocking(false)?;
    // A blocking accept that gives up after a sweep's time, so a quiet
    // listener still sweeps (one file description: every loop's too).
    nix::sys::socket::setsockopt(
        &listener,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(0, SWEEP.as_micros() as _),
    )?;
    cork(&listener)?;
    std::thread::scope(|scope| {
        let loops: Vec<_> = (0..loops.max(1))
            .map(|_| {
                let listener = listener.try_clone();
                let (poem, reactor) = (poem.clone(), reactor.handle().clone());
                scope.spawn(move || accept_loop(&listener?, &poem, &reactor))
            })
            .collect();
        for l in loops {
            l.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("a serving loop panicked")))?;
        }
        Ok(())
    })
}

/// Sets `TCP_CORK` on the listener, which every accepted socket inherits:
/// the poem then waits in the socket until the `shutdown`, which puts the
/// FIN on its last segment, so a small poem and its FIN leave as one
/// segment instead of two (one wake-up of the client instead of two).
fn cork(listener: &std::net::TcpListener) -> std::io::Result<()> {
    socket2::SockRef::from(listener).set_tcp_cork(true)
}

/// One thread's loop: accept, send, sweep.
fn accept_loop(
    listener: &std::net::TcpListener,
    poem: &Bytes,
    reactor: &tokio::runtime::Handle,
) -> std::io::Result<()> {
    let mut lingering: Vec<Lingering> = Vec::new();
    let mut last_sweep = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Some(l) = start(stream, poem, reactor) {
                    lingering.push(l);
                }
            }
            // A sweep's time without a connection.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // A connection that ended before it was accepted: the next one.
            Err(e) if gone(&e) => {}
            // Out of file descriptors for now: the lingering sockets free
            // theirs within a sweep or two.
            Err(e) if out_of_fds(&e) => std::thread::sleep(SWEEP),
            Err(e) => return Err(e),
        }
        if !lingering.is_empty() && last_sweep.elapsed() >= SWEEP {
            last_sweep = Instant::now();
            lingering = std::mem::take(&mut lingering)
                .into_iter()
                .filter_map(|l| still_lingering(l, last_sweep, reactor))
                .collect();
        }
    }
}

/// Accept errors that concern one connection only.
fn gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    )
}

/// The process or the system is out of file descriptors.
fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EMFILE | nix::libc::ENFILE)
    )
}

/// Sends the poem and FIN on a new connection: the socket to linger on,
/// or `None` when it is done with or handed to the reactor.
fn start(stream: StdStream, poem: &Bytes, reactor: &tokio::runtime::Handle) -> Option<Lingering> {
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    let sent = match send(stream.as_raw_fd(), poem, flags) {
        Ok(n) => n,
        Err(nix::errno::Errno::EAGAIN) => 0,
        // The client left already: its connection only.
        Err(_) => return None,
    };
    if sent < poem.len() {
        let rest = poem.slice(sent..);
        hand_over(reactor, stream, move |mut s| async move {
            s.write_all(&rest).await?;
            close_gracefully(s).await
        });
        return None;
    }
    if stream.shutdown(std::net::Shutdown::Write).is_err() {
        return None;
    }
    let now = Instant::now();
    Some(Lingering {
        stream,
        misses: 0,
        since: now,
        due: now + SWEEP,
    })
}

/// Reads what the client sent without blocking: the socket back while it
/// still waits for the client's FIN, else `None` (it is closed, or on the
/// reactor).
fn still_lingering(
    mut l: Lingering,
    now: Instant,
    reactor: &tokio::runtime::Handle,
) -> Option<Lingering> {
    if now < l.due {
        return Some(l);
    }
    let mut sink = [0u8; 1024];
    loop {
        match recv(l.stream.as_raw_fd(), &mut sink, MsgFlags::MSG_DONTWAIT) {
            // The client's FIN: close.
            Ok(0) => return None,
            // Bytes the client sent: discard, read on.
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => break,
            // Reset or gone: nothing to wait for.
            Err(_) => return None,
        }
    }
    l.misses += 1;
    if l.misses < SWEEPS_BEFORE_HANDOVER {
        l.due = now + SWEEP * (1 << l.misses);
        return Some(l);
    }
    let waited = now.saturating_duration_since(l.since);
    hand_over(reactor, l.stream, move |s| {
        drain_then_close(s, LINGER.saturating_sub(waited))
    });
    None
}

/// Puts `stream` on the reactor, in a task of its own running `then`.
fn hand_over<F, Fut>(reactor: &tokio::runtime::Handle, stream: StdStream, then: F)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    reactor.spawn(async move {
        let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
            return;
        };
        // A client that leaves early only ends its own connection.
        let _ = then(TcpStream::from(stream)).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpStream as Client};

    /// A one-write server on 127.0.0.1:0, on a runtime of its own thread
    /// (ended with the test process).
    fn server(poem: &'static [u8]) -> std::net::SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let _ = serve(listener, Bytes::from_static(poem), 2);
        });
        addr
    }

    fn client(addr: std::net::SocketAddr) -> Client {
        let c = Client::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c
    }

    /// Reads to the end: the bytes, and whether the end was a FIN (not a
    /// reset or a timeout).
    fn read_all(c: &mut Client) -> (Vec<u8>, std::io::Result<()>) {
        let mut got = Vec::new();
        let end = c.read_to_end(&mut got).map(|_| ());
        (got, end)
    }

    #[test]
    fn a_small_poem_arrives_whole_and_ends_with_fin() {
        let addr = server(b"tyger tyger");
        for _ in 0..50 {
            let (got, end) = read_all(&mut client(addr));
            assert_eq!(got, b"tyger tyger");
            end.unwrap();
        }
    }

    #[test]
    fn bytes_the_client_sends_are_drained_so_the_close_is_fin_not_rst() {
        let addr = server(b"burning bright");
        let mut c = client(addr);
        c.write_all(&[b'x'; 4000]).unwrap();
        let (got, end) = read_all(&mut c);
        assert_eq!(got, b"burning bright");
        end.unwrap();
        // Sweeps later the server still drains: had it closed with the
        // bytes unread, its RST would fail this write (EPIPE).
        std::thread::sleep(SWEEP * 5);
        c.write_all(&[b'y'; 4000])
            .expect("the server reads on: no RST");
        c.shutdown(Shutdown::Write).unwrap();
        let mut more = [0u8; 16];
        assert_eq!(c.read(&mut more).unwrap(), 0, "EOF again, not a reset");
    }

    #[test]
    fn a_poem_larger_than_the_send_buffer_goes_whole_through_the_reactor() {
        static BIG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let big: &'static [u8] = BIG.get_or_init(|| (0..8_000_000u32).map(|i| i as u8).collect());
        let addr = server(big);
        // A client that waits before reading: the first send cannot take
        // the poem, the rest is written as the client reads.
        let mut c = client(addr);
        std::thread::sleep(Duration::from_millis(50));
        let (got, end) = read_all(&mut c);
        assert_eq!(got.len(), big.len());
        assert!(got == big, "the poem arrives unchanged");
        end.unwrap();
    }

    #[test]
    fn a_client_that_never_closes_holds_up_no_one() {
        let addr = server(b"in the forests of the night");
        // Silent clients that read nothing and never close: they linger,
        // then go to the reactor.
        let silent: Vec<Client> = (0..20).map(|_| client(addr)).collect();
        std::thread::sleep(SWEEP * 10);
        for _ in 0..20 {
            let (got, end) = read_all(&mut client(addr));
            assert_eq!(got, b"in the forests of the night");
            end.unwrap();
        }
        // The silent ones got theirs too.
        for mut s in silent {
            s.shutdown(Shutdown::Write).unwrap();
            let (got, end) = read_all(&mut s);
            assert_eq!(got, b"in the forests of the night");
            end.unwrap();
        }
    }
}

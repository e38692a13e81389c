//! The closed loop on real sockets: `connections` fetchers on one mio event
//! loop, each starting its next fetch as soon as the last one ends.
//!
//! This is the generator's hot path, written against mio (the poller under
//! tokio) rather than as tokio tasks, so that a poem costs the generator
//! no more than the kernel's work for it: per fetch it makes `socket`,
//! `connect`, one `epoll_ctl`, the reads and `close`, and no timer, task,
//! waker or `getsockopt`. A refused or reset connection shows in the
//! first read, so the connect's outcome is not asked for separately, and
//! the socket is not deregistered before it is closed: closing its only
//! descriptor takes it out of the epoll set.
//!
//! Simulated targets and the open loop stay on tokio (`load.rs`), where
//! turmoil and the rate's timers live.

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use tokio::time::Instant;

use super::load::{failure, FetchError, Progress, Tally};

/// One fetcher's fetch in progress.
struct Fetch {
    stream: TcpStream,
    progress: Progress,
}

/// What reading a fetch's socket came to.
enum Step {
    /// Nothing more to read for now.
    Wait,
    /// The fetch is over.
    Done(super::load::FetchResult),
}

/// Runs `connections` fetchers of `poem` from `addr` until `end` (or a
/// signal), each fetch for at most `timeout`, and tallies them.
pub(super) fn run(
    addr: SocketAddr,
    poem: &[u8],
    connections: usize,
    end: Instant,
    timeout: Duration,
    stopped: impl Fn() -> bool,
) -> std::io::Result<Tally> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(connections.clamp(16, 1024));
    let mut buf = vec![0u8; super::load::READ_BUF];
    let mut tally = Tally::default();
    let mut fetches: Vec<Option<Fetch>> = (0..connections).map(|_| None).collect();
    let first = Instant::now();
    for (i, slot) in fetches.iter_mut().enumerate() {
        *slot = start(&poll, addr, i, &mut tally, end);
    }
    // No fetch times out before this: every fetch started since it was
    // worked out started later, so it stays a lower bound, and the fetches
    // are scanned only once it passes, not on every wake-up.
    let mut next_timeout = first + timeout;
    loop {
        let now = Instant::now();
        if now >= end || stopped() {
            break;
        }
        let wake = next_timeout.min(end);
        match poll.poll(&mut events, Some(wake.saturating_duration_since(now))) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            let i = event.token().0;
            let Some(fetch) = fetches.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            // FIN, not RST: a reset sets EPOLLERR too, and then the read
            // after the poem must report it.
            let fin = event.is_read_closed() && !event.is_error();
            if let Step::Done(result) = read(fetch, poem, &mut buf, fin) {
                tally.count(result, end);
                fetches[i] = start(&poll, addr, i, &mut tally, end);
            }
        }
        let now = Instant::now();
        if now < next_timeout {
            continue;
        }
        next_timeout = end;
        for (i, slot) in fetches.iter_mut().enumerate() {
            if slot
                .as_ref()
                .is_some_and(|f| now >= f.progress.start + timeout)
            {
                tally.count(Err((FetchError::Timeout, None)), end);
                *slot = start(&poll, addr, i, &mut tally, end);
            }
            if let Some(f) = slot {
                next_timeout = next_timeout.min(f.progress.start + timeout);
            }
        }
    }
    Ok(tally)
}

/// Starts fetcher `i`'s next fetch, unless the window is over. A fetch
/// that cannot even start is counted at once, and the next one is tried.
fn start(
    poll: &Poll,
    addr: SocketAddr,
    i: usize,
    tally: &mut Tally,
    end: Instant,
) -> Option<Fetch> {
    while Instant::now() < end {
        let started = Instant::now();
        let opened = TcpStream::connect(addr).and_then(|mut stream| {
            poll.registry()
                .register(
                    &mut stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map(|()| stream)
        });
        match opened {
            Ok(stream) => {
                return Some(Fetch {
                    stream,
                    progress: Progress::new(started),
                })
            }
            Err(e) => tally.count(Err(failure(&e)), end),
        }
    }
    None
}

/// Reads what the socket has, checking it against `poem`. `closed`: the
/// event said the server had closed with FIN (EPOLLRDHUP, no EPOLLERR), so
/// everything it sent was already queued, and a read that does not fill
/// `buf` has taken the last of it: the end of the poem, without a read
/// that returns 0. After a reset, Linux still gives the data queued before
/// it, and the next read the reset: that read must be made.
fn read(fetch: &mut Fetch, poem: &[u8], buf: &mut [u8], closed: bool) -> Step {
    loop {
        match fetch.stream.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Err(e) = fetch.progress.received(&buf[..n], poem) {
                    return Step::Done(Err(e));
                }
                if closed && n < buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                // Woken with nothing to read: the handshake is done (or
                // the connect is still under way, which an event for a
                // connecting socket does not leave it).
                fetch.progress.connected();
                return Step::Wait;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Step::Done(Err(failure(&e))),
        }
    }
    // The server closed: the poem is whatever came.
    let progress = std::mem::replace(&mut fetch.progress, Progress::new(Instant::now()));
    Step::Done(progress.finish(poem))
}

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

use super::load::{FetchError, FetchResult, Fetched, Tally};

/// One fetcher's fetch in progress.
struct Fetch {
    stream: TcpStream,
    /// When it started.
    start: Instant,
    /// Time to connected, once known.
    connect: Option<Duration>,
    /// Time to the first byte, once one came.
    first_byte: Option<Duration>,
    /// Bytes read so far, all of them the poem's.
    got: usize,
}

/// What reading a fetch's socket came to.
enum Step {
    /// Nothing more to read for now.
    Wait,
    /// The fetch is over.
    Done(FetchResult),
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
    for (i, slot) in fetches.iter_mut().enumerate() {
        *slot = start(&poll, addr, i, &mut tally, end);
    }
    loop {
        let now = Instant::now();
        if now >= end || stopped() {
            break;
        }
        // Wake for the window's end or the first fetch to time out.
        let wake = fetches
            .iter()
            .flatten()
            .map(|f| f.start + timeout)
            .fold(end, Instant::min);
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
            if let Step::Done(result) = read(fetch, poem, &mut buf, event.is_read_closed()) {
                tally.count(result, end);
                fetches[i] = start(&poll, addr, i, &mut tally, end);
            }
        }
        let now = Instant::now();
        for (i, slot) in fetches.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|f| now >= f.start + timeout) {
                tally.count(Err((FetchError::Timeout, None)), end);
                *slot = start(&poll, addr, i, &mut tally, end);
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
                    start: started,
                    connect: None,
                    first_byte: None,
                    got: 0,
                })
            }
            Err(e) => tally.count(Err(failure(&e)), end),
        }
    }
    None
}

/// Reads what the socket has, checking it against `poem`. `closed`: the
/// event said the server had closed (EPOLLRDHUP), so everything it sent
/// was already queued, and a read that does not fill `buf` has taken the
/// last of it: the end of the poem, without a read that returns 0.
fn read(fetch: &mut Fetch, poem: &[u8], buf: &mut [u8], closed: bool) -> Step {
    loop {
        match fetch.stream.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                let at = fetch.start.elapsed();
                fetch.connect.get_or_insert(at);
                fetch.first_byte.get_or_insert(at);
                if poem.get(fetch.got..fetch.got + n) != Some(&buf[..n]) {
                    return Step::Done(Err((FetchError::Wrong, None)));
                }
                fetch.got += n;
                if closed && n < buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                // Woken with nothing to read: the handshake is done (or
                // the connect is still under way, which an event for a
                // connecting socket does not leave it).
                fetch.connect.get_or_insert_with(|| fetch.start.elapsed());
                return Step::Wait;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Step::Done(Err(failure(&e))),
        }
    }
    // The server closed: the poem is whatever came.
    let last_byte = fetch.start.elapsed();
    // An empty answer never made the connection known.
    let connect = fetch.connect.unwrap_or(last_byte);
    Step::Done(if fetch.got < poem.len() {
        Err((FetchError::Short, None))
    } else {
        Ok(Fetched {
            connect,
            first_byte: fetch.first_byte.unwrap_or(last_byte),
            last_byte,
            bytes: fetch.got,
            done: Instant::now(),
        })
    })
}

/// A failed fetch's kind, and a message for kinds not otherwise named.
fn failure(e: &std::io::Error) -> (FetchError, Option<String>) {
    let kind = FetchError::of(e);
    (kind, (kind == FetchError::Other).then(|| e.to_string()))
}

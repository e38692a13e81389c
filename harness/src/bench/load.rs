//! The load generator: fetches the poem from a server over and over, in
//! one of two labelled modes, checking every poem byte for byte.
//!
//! - **Closed loop**: `connections` fetchers, each starting its next fetch
//!   when the last one ends. Throughput is what the server sustains at
//!   that concurrency; a slow server slows the generator down with it.
//! - **Open loop**: fetches start at a fixed `rate`, whether or not earlier
//!   ones have finished. Latency counts from each fetch's *intended* start
//!   (as wrk2 does), so a server that stalls cannot hide the fetches that
//!   queued behind it (coordinated omission); sends the generator itself
//!   could not make on time are counted as `late`.
//!
//! Fetches that finish after the measuring window are not counted; slow
//! readers, if any, load the server throughout and are not measured.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::stats;

/// How load is offered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum Mode {
    /// A fixed number of fetchers, each fetching back to back.
    Closed {
        /// Fetchers.
        connections: usize,
    },
    /// Fetches started at a fixed rate.
    Open {
        /// Fetches per second.
        rate: f64,
    },
}

impl Mode {
    /// `closed loop, 32 connections` or `open loop, 1000 poems/s`.
    pub fn describe(&self) -> String {
        match self {
            Mode::Closed { connections } => format!("closed loop, {connections} connections"),
            Mode::Open { rate } => format!("open loop, {rate} poems/s"),
        }
    }
}

/// One measurement's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Load {
    /// How load is offered.
    #[serde(flatten)]
    pub mode: Mode,
    /// How long to measure.
    #[serde(rename = "duration_s", serialize_with = "seconds")]
    pub duration: Duration,
    /// A fetch still unfinished after this is a `timeout`.
    #[serde(rename = "timeout_s", serialize_with = "seconds")]
    pub timeout: Duration,
    /// Connections that read slowly ([`SLOW_READ`] every [`SLOW_PAUSE`])
    /// alongside the measured ones, for the whole window.
    pub slow_readers: usize,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Bytes a slow reader takes at a time.
pub const SLOW_READ: usize = 1024;

/// How long a slow reader waits between reads.
pub const SLOW_PAUSE: Duration = Duration::from_millis(100);

/// Open loop: at most this many fetches in flight; past it a fetch is not
/// started and counts as the error `overload`, so a server that stops
/// answering cannot exhaust the generator's descriptors.
pub const MAX_IN_FLIGHT: usize = 4096;

/// Open loop: a fetch started more than this after its intended time was
/// late (the generator, not the server, fell behind).
pub const LATE_AFTER: Duration = Duration::from_millis(5);

/// Where the server is: a real address, or a simulated host's (inside a
/// turmoil simulation, where the generator's arithmetic can be checked in
/// exact, simulated time).
#[derive(Debug, Clone)]
pub enum Target {
    /// Real sockets (tokio).
    Real(SocketAddr),
    /// turmoil's simulated network (`host:port`).
    Sim(Arc<str>),
}

impl Target {
    async fn connect(&self) -> std::io::Result<crate::net::TcpStream> {
        match self {
            Target::Real(a) => TcpStream::connect(*a).await.map(Into::into),
            Target::Sim(a) => crate::net::Net::Sim.connect(a).await,
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FetchError {
    /// The connection was refused.
    Refused,
    /// The connection was reset.
    Reset,
    /// Not done within the timeout.
    Timeout,
    /// The server closed before the whole poem.
    Short,
    /// Bytes that are not the poem, or more than it.
    Wrong,
    /// Open loop: not started, [`MAX_IN_FLIGHT`] fetches already waiting.
    Overload,
    /// Any other failure (named in the report's notes).
    Other,
}

impl FetchError {
    /// The label reports use.
    pub fn label(self) -> &'static str {
        match self {
            FetchError::Refused => "refused",
            FetchError::Reset => "reset",
            FetchError::Timeout => "timeout",
            FetchError::Short => "short poem",
            FetchError::Wrong => "wrong bytes",
            FetchError::Overload => "overload",
            FetchError::Other => "other",
        }
    }

    pub(super) fn of(e: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => FetchError::Refused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => FetchError::Reset,
            K::TimedOut => FetchError::Timeout,
            _ => FetchError::Other,
        }
    }
}

/// What one measurement saw.
#[derive(Debug, Clone)]
pub struct Tally {
    /// From the fetch's start (intended start, open loop) to connected.
    pub connect: Histogram<u64>,
    /// To the first byte of the poem.
    pub first_byte: Histogram<u64>,
    /// To the last byte (the poem is whole at the server's close).
    pub last_byte: Histogram<u64>,
    /// Whole, correct poems.
    pub poems: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Failed fetches by kind.
    pub errors: BTreeMap<FetchError, u64>,
    /// Open loop: fetches started later than [`LATE_AFTER`].
    pub late: u64,
    /// The measuring window.
    pub window: Duration,
    /// CPU time the generator (this process) used in the window.
    pub generator_cpu: Duration,
    /// CPU time the server's program used in the window, where it can be
    /// read (a live program on Linux).
    pub server_cpu: Option<Duration>,
    /// One message per kind of `other` failure.
    pub notes: BTreeMap<String, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            connect: stats::histogram(),
            first_byte: stats::histogram(),
            last_byte: stats::histogram(),
            poems: 0,
            bytes: 0,
            errors: BTreeMap::new(),
            late: 0,
            window: Duration::ZERO,
            generator_cpu: Duration::ZERO,
            server_cpu: None,
            notes: BTreeMap::new(),
        }
    }
}

impl Tally {
    /// Adds another tally's counts (the window and CPU are kept).
    pub fn merge(&mut self, other: &Tally) {
        let _ = self.connect.add(&other.connect);
        let _ = self.first_byte.add(&other.first_byte);
        let _ = self.last_byte.add(&other.last_byte);
        self.poems += other.poems;
        self.bytes += other.bytes;
        for (k, n) in &other.errors {
            *self.errors.entry(*k).or_default() += n;
        }
        for (k, n) in &other.notes {
            *self.notes.entry(k.clone()).or_default() += n;
        }
        self.late += other.late;
    }

    /// Poems per second over the window.
    pub fn poems_per_s(&self) -> f64 {
        self.poems as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Bytes per second over the window.
    pub fn bytes_per_s(&self) -> f64 {
        self.bytes as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Failed fetches.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The generator's CPU use as a share of one core over the window.
    pub fn generator_cpu_share(&self) -> f64 {
        self.generator_cpu.as_secs_f64() / self.window.as_secs_f64().max(1e-9)
    }

    pub(super) fn count(&mut self, result: FetchResult, end: Instant) {
        match result {
            Ok(f) if f.done <= end => {
                stats::record(&mut self.connect, f.connect);
                stats::record(&mut self.first_byte, f.first_byte);
                stats::record(&mut self.last_byte, f.last_byte);
                self.poems += 1;
                self.bytes += f.bytes as u64;
            }
            // Finished after the window: neither counted nor failed.
            Ok(_) => {}
            Err((kind, note)) => {
                *self.errors.entry(kind).or_default() += 1;
                if let Some(n) = note {
                    *self.notes.entry(n).or_default() += 1;
                }
            }
        }
    }
}

/// One whole, correct poem's timings, from the fetch's start.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fetched {
    connect: Duration,
    first_byte: Duration,
    last_byte: Duration,
    bytes: usize,
    done: Instant,
}

/// What a fetch gives: a whole poem, or why not (and a message for
/// failures of no known kind).
pub(super) type FetchResult = Result<Fetched, (FetchError, Option<String>)>;

/// Fetches the poem once, for at most `timeout`; `start` is when the fetch
/// was meant to start.
async fn fetch(
    target: &Target,
    poem: &[u8],
    start: Instant,
    timeout: Duration,
    buf: &mut [u8],
) -> FetchResult {
    match tokio::time::timeout_at(start + timeout, fetch_untimed(target, poem, start, buf)).await {
        Ok(r) => r,
        Err(_) => Err((FetchError::Timeout, None)),
    }
}

async fn fetch_untimed(
    target: &Target,
    poem: &[u8],
    start: Instant,
    buf: &mut [u8],
) -> FetchResult {
    let mut s = target.connect().await.map_err(|e| failure(&e))?;
    let mut fetch = Progress::new(start);
    fetch.connected();
    loop {
        let n = s.read(buf).await.map_err(|e| failure(&e))?;
        if n == 0 {
            return fetch.finish(poem);
        }
        fetch.received(&buf[..n], poem)?;
    }
}

/// A failed fetch's kind, and a message for kinds not otherwise named.
pub(super) fn failure(e: &std::io::Error) -> (FetchError, Option<String>) {
    let kind = FetchError::of(e);
    (kind, (kind == FetchError::Other).then(|| e.to_string()))
}

/// One fetch under way: its times so far, and how much of the poem came.
/// The one place a fetch's bytes are checked, for every loop.
#[derive(Debug)]
pub(super) struct Progress {
    /// When it started (meant to, in an open loop).
    pub(super) start: Instant,
    connect: Option<Duration>,
    first_byte: Option<Duration>,
    got: usize,
}

impl Progress {
    pub(super) fn new(start: Instant) -> Self {
        Progress {
            start,
            connect: None,
            first_byte: None,
            got: 0,
        }
    }

    /// The connection is up (the first call counts).
    pub(super) fn connected(&mut self) {
        self.connect.get_or_insert_with(|| self.start.elapsed());
    }

    /// `bytes` came: they must be the poem's next ones.
    pub(super) fn received(
        &mut self,
        bytes: &[u8],
        poem: &[u8],
    ) -> Result<(), (FetchError, Option<String>)> {
        self.connected();
        self.first_byte.get_or_insert_with(|| self.start.elapsed());
        if poem.get(self.got..self.got + bytes.len()) != Some(bytes) {
            return Err((FetchError::Wrong, None));
        }
        self.got += bytes.len();
        Ok(())
    }

    /// The server closed: a poem if all of it came.
    pub(super) fn finish(self, poem: &[u8]) -> FetchResult {
        if self.got < poem.len() {
            return Err((FetchError::Short, None));
        }
        let last_byte = self.start.elapsed();
        Ok(Fetched {
            connect: self.connect.unwrap_or(last_byte),
            first_byte: self.first_byte.unwrap_or(last_byte),
            last_byte,
            bytes: self.got,
            done: Instant::now(),
        })
    }
}

/// Buffer each fetcher reads into.
pub(super) const READ_BUF: usize = 64 * 1024;

/// Offers `load` to the server at `addr`, which serves `poem`, and tallies
/// what it saw. The generator runs one single-threaded event loop per core
/// (as wrk does), each with its share of the connections or of the rate:
/// no work stealing and no wake-ups across threads on the hot path. The
/// closed loop's are plain mio loops (`closed_loop.rs`),
/// the open loop's tokio runtimes.
pub async fn measure(addr: SocketAddr, poem: Arc<[u8]>, load: Load) -> Tally {
    tokio::task::spawn_blocking(move || measure_on_threads(addr, poem, load))
        .await
        .unwrap_or_default()
}

/// [`measure`] on the current runtime, in one loop: inside a turmoil
/// simulation (a [`Target::Sim`]), where its times are simulated and exact.
pub async fn measure_here(target: Target, poem: Arc<[u8]>, load: Load) -> Tally {
    let start = Instant::now();
    let end = start + load.duration;
    let slow: Vec<_> = (0..load.slow_readers)
        .map(|_| tokio::spawn(slow_reader(target.clone(), end, None)))
        .collect();
    let mut tally = match load.mode {
        Mode::Closed { connections } => closed(&target, poem, &load, connections, end).await,
        Mode::Open { rate } => open(&target, poem, &load, rate, start, end).await,
    };
    for s in slow {
        s.abort();
    }
    tally.window = load.duration;
    tally
}

/// Event loops for `load`: one per core, no more than there is work for.
fn threads_for(load: &Load) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match load.mode {
        Mode::Closed { connections } => cores.min(connections).max(1),
        // A slow schedule is kept best by one loop.
        Mode::Open { rate } if rate < 1000.0 => 1,
        Mode::Open { .. } => cores,
    }
}

fn measure_on_threads(addr: SocketAddr, poem: Arc<[u8]>, load: Load) -> Tally {
    let threads = threads_for(&load);
    let cpu_before = cpu_time();
    let start = Instant::now();
    let end = start + load.duration;
    // Each slow reader says when its first connection is made, and the
    // fetchers start after: the slow readers are in the mix from the start
    // of the window, not whenever their thread got going on a loaded
    // machine (a one-at-a-time server must meet them first to show it).
    let (connected, slow_ready) = mpsc::channel();
    let parts: Vec<Tally> = std::thread::scope(|scope| {
        // Slow readers load the server from a loop of their own.
        let slow = (load.slow_readers > 0).then(|| {
            scope.spawn(move || {
                let Ok(rt) = current_thread_runtime() else {
                    return;
                };
                rt.block_on(async move {
                    let slow: Vec<_> = (0..load.slow_readers)
                        .map(|_| {
                            let tx = Some(connected.clone());
                            tokio::spawn(slow_reader(Target::Real(addr), end, tx))
                        })
                        .collect();
                    drop(connected);
                    tokio::time::sleep_until(end).await;
                    for s in slow {
                        s.abort();
                    }
                });
            })
        });
        for _ in 0..load.slow_readers {
            // Ends early if the slow readers' loop could not start.
            if slow_ready.recv_timeout(load.timeout).is_err() {
                break;
            }
        }
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let poem = poem.clone();
                scope.spawn(move || match load.mode {
                    Mode::Closed { connections } => {
                        // This loop's share: they differ by one at most.
                        let share = connections / threads + usize::from(k < connections % threads);
                        super::closed_loop::run(addr, &poem, share, end, load.timeout, stopped).ok()
                    }
                    Mode::Open { rate } => {
                        // Loop k takes every threads-th start of the
                        // schedule, from the k-th on.
                        let first = start + Duration::from_secs_f64(k as f64 / rate);
                        let target = Target::Real(addr);
                        let rate = rate / threads as f64;
                        let rt = current_thread_runtime().ok()?;
                        Some(rt.block_on(open(&target, poem, &load, rate, first, end)))
                    }
                })
            })
            .collect();
        let parts = handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect();
        if let Some(s) = slow {
            let _ = s.join();
        }
        parts
    });
    let mut tally = Tally::default();
    for part in &parts {
        tally.merge(part);
    }
    tally.window = load.duration;
    tally.generator_cpu = cpu_time().saturating_sub(cpu_before);
    tally
}

/// A single-threaded runtime for one of the generator's loops.
fn current_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

async fn closed(
    target: &Target,
    poem: Arc<[u8]>,
    load: &Load,
    connections: usize,
    end: Instant,
) -> Tally {
    let timeout = load.timeout;
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (poem, target) = (poem.clone(), target.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut buf = vec![0u8; READ_BUF];
                while Instant::now() < end && !stopped() {
                    let start = Instant::now();
                    let r = fetch(&target, &poem, start, timeout, &mut buf).await;
                    tally.count(r, end);
                }
                tally
            })
        })
        .collect();
    let mut tally = Tally::default();
    for w in workers {
        if let Ok(t) = w.await {
            tally.merge(&t);
        }
    }
    tally
}

async fn open(
    target: &Target,
    poem: Arc<[u8]>,
    load: &Load,
    rate: f64,
    start: Instant,
    end: Instant,
) -> Tally {
    let shared = Arc::new(Mutex::new(Tally::default()));
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-6));
    let timeout = load.timeout;
    let mut tasks = tokio::task::JoinSet::new();
    let mut i: u32 = 0;
    loop {
        let intended = start + interval * i;
        if intended >= end || stopped() {
            break;
        }
        i = i.saturating_add(1);
        tokio::time::sleep_until(intended).await;
        // Reap what has finished, so the set stays small.
        while tasks.try_join_next().is_some() {}
        let mut t = shared.lock().expect("tally lock");
        if Instant::now().saturating_duration_since(intended) > LATE_AFTER {
            t.late += 1;
        }
        if in_flight.load(std::sync::atomic::Ordering::Relaxed) >= MAX_IN_FLIGHT {
            *t.errors.entry(FetchError::Overload).or_default() += 1;
            continue;
        }
        drop(t);
        in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (poem, shared, in_flight, target) = (
            poem.clone(),
            shared.clone(),
            in_flight.clone(),
            target.clone(),
        );
        tasks.spawn(async move {
            let mut buf = vec![0u8; READ_BUF.min(poem.len().max(1))];
            let r = fetch(&target, &poem, intended, timeout, &mut buf).await;
            shared.lock().expect("tally lock").count(r, end);
            in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
    // Fetches still running at the end of the window do not count.
    if !stopped() {
        tokio::time::sleep_until(end).await;
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let t = shared.lock().expect("tally lock").clone();
    t
}

/// A connection that reads [`SLOW_READ`] bytes every [`SLOW_PAUSE`], and
/// starts over when the poem ends, until `end`.
/// A client that reads a poem slowly, again and again until `end`; tells
/// `connected` once its first connection attempt has ended (made or not).
async fn slow_reader(target: Target, end: Instant, mut connected: Option<mpsc::Sender<()>>) {
    let mut buf = vec![0u8; SLOW_READ];
    while Instant::now() < end {
        let attempt = target.connect().await;
        if let Some(tx) = connected.take() {
            let _ = tx.send(());
        }
        let Ok(mut s) = attempt else {
            tokio::time::sleep(SLOW_PAUSE).await;
            continue;
        };
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 || Instant::now() >= end {
                break;
            }
            tokio::time::sleep(SLOW_PAUSE).await;
        }
    }
}

/// Whether the run was interrupted (a signal): no new fetch starts.
fn stopped() -> bool {
    crate::backend::live::process::interrupted_by().is_some()
}

/// CPU time (user and system) this process has used.
fn cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF).map_or(Duration::ZERO, |u| {
        let tv = |t: nix::sys::time::TimeVal| {
            Duration::from_secs(t.tv_sec().max(0) as u64)
                + Duration::from_micros(t.tv_usec().max(0) as u64)
        };
        tv(u.user_time()) + tv(u.system_time())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A server on 127.0.0.1:0 that answers every connection with `reply`.
    async fn server(reply: &'static [u8]) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let _ = s.write_all(reply).await;
                });
            }
        });
        addr
    }

    fn load(mode: Mode) -> Load {
        Load {
            mode,
            duration: Duration::from_millis(200),
            timeout: Duration::from_secs(5),
            slow_readers: 0,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_correct_server_gives_poems_and_no_errors() {
        let addr = server(b"Tyger Tyger").await;
        let t = measure(
            addr,
            Arc::from(&b"Tyger Tyger"[..]),
            load(Mode::Closed { connections: 4 }),
        )
        .await;
        assert!(t.poems > 0, "{t:?}");
        assert_eq!(t.failed(), 0, "{t:?}");
        assert_eq!(t.bytes, t.poems * 11);
        assert_eq!(t.last_byte.len(), t.poems);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_poem_of_many_reads_is_checked_whole() {
        // Three and a bit read buffers, every byte telling its place.
        let poem: Vec<u8> = (0..READ_BUF * 3 + 77).map(|i| (i % 251) as u8).collect();
        let poem: &'static [u8] = Box::leak(poem.into_boxed_slice());
        let addr = server(poem).await;
        let t = measure(addr, Arc::from(poem), load(Mode::Closed { connections: 2 })).await;
        assert!(t.poems > 0, "{t:?}");
        assert_eq!(t.failed(), 0, "{t:?}");
        assert_eq!(t.bytes, t.poems * poem.len() as u64);
        // One byte short of it, or one byte more, is never a poem.
        let mut longer = poem.to_vec();
        longer.push(0);
        let addr = server(Box::leak(longer.into_boxed_slice())).await;
        let t = measure(addr, Arc::from(poem), load(Mode::Closed { connections: 2 })).await;
        assert_eq!(t.poems, 0, "{t:?}");
        let addr = server(&poem[..poem.len() - 1]).await;
        let t = measure(addr, Arc::from(poem), load(Mode::Closed { connections: 2 })).await;
        assert_eq!(t.poems, 0, "{t:?}");
        assert!(t.errors.contains_key(&FetchError::Short), "{t:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_and_short_poems_are_errors_not_poems() {
        let wrong = server(b"Tyger Tyber").await;
        let t = measure(
            wrong,
            Arc::from(&b"Tyger Tyger"[..]),
            load(Mode::Closed { connections: 2 }),
        )
        .await;
        assert_eq!(t.poems, 0);
        assert!(
            t.errors.get(&FetchError::Wrong).is_some_and(|n| *n > 0),
            "{t:?}"
        );
        let short = server(b"Tyger").await;
        let t = measure(
            short,
            Arc::from(&b"Tyger Tyger"[..]),
            load(Mode::Closed { connections: 2 }),
        )
        .await;
        assert_eq!(t.poems, 0);
        assert!(
            t.errors.get(&FetchError::Short).is_some_and(|n| *n > 0),
            "{t:?}"
        );
        let longer = server(b"Tyger Tyger!").await;
        let t = measure(
            longer,
            Arc::from(&b"Tyger Tyger"[..]),
            load(Mode::Closed { connections: 2 }),
        )
        .await;
        assert_eq!(t.poems, 0, "{t:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_loop_offers_the_rate_whatever_the_server_does() {
        let addr = server(b"Tyger Tyger").await;
        let t = measure(
            addr,
            Arc::from(&b"Tyger Tyger"[..]),
            load(Mode::Open { rate: 100.0 }),
        )
        .await;
        // 200 ms at 100/s: 20 intended starts; a loaded machine may finish
        // a few after the window, so fewer count, never more.
        assert!(t.poems <= 20 && t.poems > 0, "{t:?}");
        assert_eq!(t.failed(), 0, "{t:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_never_answers_times_out_and_one_that_resets_is_reset() {
        // Accepts and holds every connection, writing nothing.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let mut slow_load = load(Mode::Closed { connections: 2 });
        // Many timeouts fit in the window even on a loaded machine.
        slow_load.duration = Duration::from_secs(2);
        slow_load.timeout = Duration::from_millis(50);
        let t = measure(addr, Arc::from(&b"Tyger"[..]), slow_load).await;
        assert_eq!(t.poems, 0, "{t:?}");
        assert!(
            t.errors.get(&FetchError::Timeout).is_some_and(|n| *n > 0),
            "{t:?}"
        );
        // Writes part of the poem, or all of it, then resets: never a poem
        // (the series' servers close with FIN; a reset may destroy the
        // poem in flight, so a bench must not count it).
        for written in [&b"Ty"[..], b"Tyger"] {
            let resets = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = resets.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = resets.accept().await {
                    let _ = s.write_all(written).await;
                    let _ = s.set_zero_linger();
                    drop(s);
                }
            });
            let t = measure(
                addr,
                Arc::from(&b"Tyger"[..]),
                load(Mode::Closed { connections: 2 }),
            )
            .await;
            assert_eq!(t.poems, 0, "{t:?}");
            assert!(
                t.errors.get(&FetchError::Reset).is_some_and(|n| *n > 0),
                "{t:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_listening_is_refused() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let t = measure(
            addr,
            Arc::from(&b"x"[..]),
            load(Mode::Closed { connections: 1 }),
        )
        .await;
        assert_eq!(t.poems, 0);
        assert!(
            t.errors.get(&FetchError::Refused).is_some_and(|n| *n > 0),
            "{t:?}"
        );
    }
}

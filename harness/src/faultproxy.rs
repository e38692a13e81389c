//! A fault-injecting TCP proxy: sits between two programs (a student's
//! client and the same student's server, a proxy and its upstream) and
//! delays, throttles, slices, resets, stalls or slowly closes what the
//! server sends back.
//!
//! Written against [`Net`], so it runs on real sockets
//! (`poetry-harness faultproxy`) and inside the simulator.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::net::{Net, TcpListener, TcpStream};

/// What the proxy does to the server-to-client direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every chunk arrives this much later (each direction).
    pub latency: Duration,
    /// At most this many bytes per second towards the client.
    pub rate: Option<u64>,
    /// Forward in pieces of at most this many bytes.
    pub slice: Option<usize>,
    /// After this many bytes towards the client, reset both connections.
    pub reset_after: Option<u64>,
    /// After this many bytes towards the client, forward nothing more and
    /// keep both connections open (a blackhole).
    pub stall_after: Option<u64>,
    /// Wait this long after the server's FIN before passing it on.
    pub slow_close: Duration,
}

/// Chunk size when slicing is off.
const READ_SIZE: usize = 16 * 1024;

/// Pieces queued between reading from the server and writing to the
/// client. Small, so a slow client or `--rate` stops the proxy reading
/// (the server's writes block, as on a slow link) instead of buffering a
/// whole reply.
const QUEUE: usize = 8;

/// Most bytes one connection holds on their way to the client: the queue,
/// the piece waiting to enter it and the piece being written.
pub const MAX_HELD: usize = (QUEUE + 2) * READ_SIZE;

/// Pause after a failed accept (EMFILE, ECONNABORTED...): long enough not
/// to spin while descriptors are short, short enough to serve again soon.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Counters of a running proxy, for tests and diagnostics.
#[derive(Debug, Default)]
pub struct Stats {
    open: AtomicUsize,
    held: AtomicUsize,
    peak_held: AtomicUsize,
    accept_errors: AtomicU64,
}

impl Stats {
    /// Connection pairs being relayed now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Bytes read from servers and not yet passed to clients, now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// The most bytes [`Stats::held`] ever was.
    pub fn peak_held(&self) -> usize {
        self.peak_held.load(Ordering::SeqCst)
    }

    /// Accepts that failed and were survived.
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::SeqCst)
    }
}

/// Bytes counted in [`Stats::held`] until dropped.
struct Held {
    stats: Arc<Stats>,
    n: usize,
}

impl Held {
    fn new(stats: &Arc<Stats>, n: usize) -> Self {
        let now = stats.held.fetch_add(n, Ordering::SeqCst) + n;
        stats.peak_held.fetch_max(now, Ordering::SeqCst);
        Held {
            stats: stats.clone(),
            n,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stats.held.fetch_sub(self.n, Ordering::SeqCst);
    }
}

/// One relayed connection pair, counted in [`Stats::open`] while alive.
struct OpenGuard(Arc<Stats>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts clients for ever, each relayed to `target` with `faults`.
///
/// Accept errors are logged on stderr and survived; the result is an
/// `io::Result` only for callers that spawn it next to fallible tasks.
pub async fn serve(
    net: Net,
    listener: TcpListener,
    target: String,
    faults: Faults,
) -> io::Result<()> {
    serve_counted(net, listener, target, faults, Arc::default()).await
}

/// [`serve`], counting into `stats`.
pub async fn serve_counted(
    net: Net,
    listener: TcpListener,
    target: String,
    faults: Faults,
    stats: Arc<Stats>,
) -> io::Result<()> {
    loop {
        let client = next_client(|| listener.accept(), &stats).await.0;
        let target = target.clone();
        let stats = stats.clone();
        stats.open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let _open = OpenGuard(stats.clone());
            match net.connect(&target).await {
                Ok(server) => relay(client, server, faults, stats).await,
                // The target refused: so does the proxy, as far as it can.
                Err(_) => client.abort(),
            }
        });
    }
}

/// Waits for the next successful `accept()`: a failed one (out of
/// descriptors, a connection aborted before it was accepted) is logged on
/// stderr and retried after [`ACCEPT_PAUSE`], never the end of the proxy.
pub async fn next_client<T, F, Fut>(mut accept: F, stats: &Stats) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    loop {
        match accept().await {
            Ok(c) => return c,
            Err(e) => {
                stats.accept_errors.fetch_add(1, Ordering::SeqCst);
                eprintln!(
                    "faultproxy: accept failed: {e}; retrying in {}ms",
                    ACCEPT_PAUSE.as_millis()
                );
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

enum Piece {
    Data(Vec<u8>, Held),
    Fin,
    Reset,
}

/// How the client-to-server direction ended.
enum ClientEnd {
    /// The client sent FIN (passed on; the reply may still come).
    Fin,
    /// The client reset, or the server stopped taking its bytes.
    Gone,
}

/// Relays one connection pair until either side is done.
async fn relay(client: TcpStream, server: TcpStream, f: Faults, stats: Arc<Stats>) {
    let (mut c_rd, mut c_wr) = tokio::io::split(client);
    let (mut s_rd, mut s_wr) = tokio::io::split(server);
    let outcome = {
        // Client to server: only latency.
        let upstream = async {
            let mut buf = vec![0u8; READ_SIZE];
            loop {
                match c_rd.read(&mut buf).await {
                    Ok(0) => {
                        tokio::time::sleep(f.latency).await;
                        let _ = s_wr.shutdown().await;
                        return ClientEnd::Fin;
                    }
                    Err(_) => {
                        tokio::time::sleep(f.latency).await;
                        return ClientEnd::Gone;
                    }
                    Ok(n) => {
                        tokio::time::sleep(f.latency).await;
                        if s_wr.write_all(&buf[..n]).await.is_err() {
                            return ClientEnd::Gone;
                        }
                    }
                }
            }
        };
        // Server to client: read into a short timed queue, deliver with the
        // faults. The queue is bounded: the reader waits while it is full.
        let (tx, mut rx) = mpsc::channel::<(tokio::time::Instant, Piece)>(QUEUE);
        let reader = async {
            let tx = tx;
            let mut buf = vec![0u8; f.slice.unwrap_or(READ_SIZE).clamp(1, READ_SIZE)];
            loop {
                let piece = match s_rd.read(&mut buf).await {
                    Ok(0) => Piece::Fin,
                    Ok(n) => Piece::Data(buf[..n].to_vec(), Held::new(&stats, n)),
                    Err(_) => Piece::Reset,
                };
                let last = !matches!(piece, Piece::Data(..));
                if tx
                    .send((tokio::time::Instant::now() + f.latency, piece))
                    .await
                    .is_err()
                    || last
                {
                    return;
                }
            }
        };
        let writer = async {
            let mut sent = 0u64;
            while let Some((due, piece)) = rx.recv().await {
                tokio::time::sleep_until(due).await;
                match piece {
                    Piece::Data(mut data, _held) => {
                        for limit in [f.reset_after, f.stall_after].into_iter().flatten() {
                            if sent + data.len() as u64 >= limit {
                                data.truncate(limit.saturating_sub(sent) as usize);
                            }
                        }
                        if !data.is_empty() {
                            if c_wr.write_all(&data).await.is_err() {
                                return Outcome::ClientGone;
                            }
                            sent += data.len() as u64;
                            if let Some(rate) = f.rate.filter(|r| *r > 0) {
                                tokio::time::sleep(Duration::from_secs_f64(
                                    data.len() as f64 / rate as f64,
                                ))
                                .await;
                            }
                        }
                        if f.reset_after.is_some_and(|n| sent >= n) {
                            return Outcome::Reset;
                        }
                        if f.stall_after.is_some_and(|n| sent >= n) {
                            return Outcome::Stall;
                        }
                    }
                    Piece::Fin => {
                        tokio::time::sleep(f.slow_close).await;
                        let _ = c_wr.shutdown().await;
                        return Outcome::Done;
                    }
                    Piece::Reset => return Outcome::Reset,
                }
            }
            Outcome::Done
        };
        // The run ends with the server-to-client direction, or when the
        // client goes: the other direction is forwarded meanwhile and
        // dropped then, with whatever the queue still holds.
        tokio::pin!(upstream, reader, writer);
        let (mut up_done, mut read_done) = (false, false);
        loop {
            tokio::select! {
                o = &mut writer => break o,
                _ = &mut reader, if !read_done => read_done = true,
                end = &mut upstream, if !up_done => match end {
                    ClientEnd::Fin => up_done = true,
                    ClientEnd::Gone => break Outcome::ClientGone,
                },
            }
        }
    };
    match outcome {
        Outcome::Reset => c_rd.unsplit(c_wr).abort(),
        Outcome::Stall => stall(c_rd, s_rd.unsplit(s_wr)).await,
        Outcome::Done | Outcome::ClientGone => {}
    }
}

/// A blackhole: nothing more reaches either side, but both are watched so
/// that a side that leaves frees the proxy's sockets. When the client
/// leaves, both connections close; when the server leaves, its connection
/// closes and the client's stays held (the stall goes on for it).
async fn stall(mut client: tokio::io::ReadHalf<TcpStream>, server: TcpStream) {
    let mut server = Some(server);
    let mut from_client = vec![0u8; READ_SIZE];
    let mut from_server = vec![0u8; READ_SIZE];
    loop {
        let server_read = async {
            match server.as_mut() {
                Some(s) => s.read(&mut from_server).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = client.read(&mut from_client) => {
                if matches!(r, Ok(0) | Err(_)) {
                    return;
                }
            }
            r = server_read => {
                if matches!(r, Ok(0) | Err(_)) {
                    server = None;
                }
            }
        }
    }
}

enum Outcome {
    Done,
    ClientGone,
    Reset,
    Stall,
}

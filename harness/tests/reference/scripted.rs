//! Scripted peers: tiny servers that misbehave on purpose (reset, stall,
//! trickle) and a [`Probe`] on which they record what they saw, with the
//! simulated time it happened.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use poetry_harness::net::{TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::backend::{Ctx, Scenario};

/// One thing a scripted server saw on connection `conn` (0 for the first
/// accepted connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// What happened: `accepted`, `peer closed`, ...
    pub what: &'static str,
    /// Which connection, in order of acceptance.
    pub conn: usize,
    /// Simulated time; `None` on real sockets.
    pub at: Option<Duration>,
}

/// A shared log of [`Event`]s that a test body can wait on.
#[derive(Clone)]
pub struct Probe(Arc<watch::Sender<Vec<Event>>>);

impl Default for Probe {
    fn default() -> Self {
        Probe(Arc::new(watch::channel(Vec::new()).0))
    }
}

impl Probe {
    /// Records `what` on connection `conn`, now.
    pub fn record(&self, conn: usize, what: &'static str) {
        let at = turmoil::sim_elapsed();
        self.0
            .send_modify(|events| events.push(Event { what, conn, at }));
    }

    /// How many times `what` was recorded.
    pub fn count(&self, what: &str) -> usize {
        self.0.borrow().iter().filter(|e| e.what == what).count()
    }

    /// Waits until `what` is recorded on connection `conn`; gives up after
    /// `limit` (simulated time in the simulator).
    pub async fn wait_for(&self, conn: usize, what: &str, limit: Duration) -> Event {
        let mut rx = self.0.subscribe();
        let found = tokio::time::timeout(
            limit,
            rx.wait_for(|events| events.iter().any(|e| e.conn == conn && e.what == what)),
        )
        .await;
        match found {
            Ok(Ok(events)) => *events
                .iter()
                .find(|e| e.conn == conn && e.what == what)
                .expect("event seen"),
            _ => panic!(
                "no '{what}' on connection {conn} within {limit:?}; saw {:?}",
                self.0.borrow()
            ),
        }
    }
}

impl Scenario {
    /// Adds a server that records `accepted` for each connection, then
    /// runs `script(conn, stream, probe)` on it in its own task.
    pub fn scripted<F, Fut>(self, name: &'static str, probe: &Probe, script: F) -> Self
    where
        F: Fn(usize, TcpStream, Probe) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (probe, script) = (probe.clone(), Arc::new(script));
        self.server(name, move |_: Ctx, listener: TcpListener| {
            let (probe, script) = (probe.clone(), Arc::clone(&script));
            async move {
                for conn in 0.. {
                    let (stream, _) = listener.accept().await?;
                    probe.record(conn, "accepted");
                    tokio::spawn(script(conn, stream, probe.clone()));
                }
                Ok(())
            }
        })
    }
}

/// Reads and discards until the peer closes (FIN or RST), then records
/// `peer closed`.
pub async fn until_peer_closes(conn: usize, stream: &mut TcpStream, probe: &Probe) {
    let mut sink = [0u8; 1024];
    while let Ok(n) = stream.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
    probe.record(conn, "peer closed");
}

/// Writes `prefix`, then holds the connection silently until the peer
/// closes it.
pub async fn send_then_stall(conn: usize, mut stream: TcpStream, probe: Probe, prefix: &[u8]) {
    if stream.write_all(prefix).await.is_ok() {
        until_peer_closes(conn, &mut stream, &probe).await;
    }
}

/// Writes `prefix`, then resets the connection.
pub async fn send_then_reset(mut stream: TcpStream, prefix: bytes::Bytes) {
    let _ = stream.write_all(&prefix).await;
    let _ = stream.flush().await;
    stream.abort();
}

/// Writes the poem at once, then closes with FIN and lingers as the
/// reference servers do.
pub async fn send_poem(stream: TcpStream, poem: &[u8]) {
    let _ = send_poem_io(stream, poem).await;
}

async fn send_poem_io(mut stream: TcpStream, poem: &[u8]) -> io::Result<()> {
    stream.write_all(poem).await?;
    poetry_harness::reference::close_gracefully(stream).await
}

/// Sends the poem one byte every `every` while watching the peer: records
/// `peer closed` if the peer leaves first, `poem sent` otherwise.
pub async fn trickle(
    conn: usize,
    mut stream: TcpStream,
    probe: Probe,
    poem: &[u8],
    every: Duration,
) {
    let mut sink = [0u8; 64];
    for byte in poem.chunks(1) {
        let pause = tokio::time::sleep(every);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                read = stream.read(&mut sink) => match read {
                    Ok(n) if n > 0 => continue,
                    _ => return probe.record(conn, "peer closed"),
                },
                _ = &mut pause => break,
            }
        }
        if stream.write_all(byte).await.is_err() {
            return probe.record(conn, "peer closed");
        }
    }
    probe.record(conn, "poem sent");
    let _ = poetry_harness::reference::close_gracefully(stream).await;
}

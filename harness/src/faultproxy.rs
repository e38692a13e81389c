//! A fault-injecting TCP proxy: sits between two programs (a student's
//! client and the same student's server, a proxy and its upstream) and
//! delays, throttles, slices, resets, stalls or slowly closes what the
//! server sends back.
//!
//! Written against [`Net`], so it runs on real sockets
//! (`poetry-harness faultproxy`) and inside the simulator.

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

/// Accepts clients for ever, each relayed to `target` with `faults`.
pub async fn serve(
    net: Net,
    listener: TcpListener,
    target: String,
    faults: Faults,
) -> std::io::Result<()> {
    loop {
        let (client, _) = listener.accept().await?;
        let target = target.clone();
        tokio::spawn(async move {
            match net.connect(&target).await {
                Ok(server) => relay(client, server, faults).await,
                // The target refused: so does the proxy, as far as it can.
                Err(_) => client.abort(),
            }
        });
    }
}

enum Piece {
    Data(Vec<u8>),
    Fin,
    Reset,
}

/// Relays one connection pair until both sides are done.
async fn relay(client: TcpStream, server: TcpStream, f: Faults) {
    let (mut c_rd, mut c_wr) = tokio::io::split(client);
    let (mut s_rd, mut s_wr) = tokio::io::split(server);
    // Client to server: only latency.
    let upstream = async {
        let mut buf = vec![0u8; READ_SIZE];
        loop {
            match c_rd.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    tokio::time::sleep(f.latency).await;
                    let _ = s_wr.shutdown().await;
                    return;
                }
                Ok(n) => {
                    tokio::time::sleep(f.latency).await;
                    if s_wr.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    // Server to client: read into a timed queue, deliver with the faults.
    let (tx, mut rx) = mpsc::unbounded_channel::<(tokio::time::Instant, Piece)>();
    let reader = async move {
        let mut buf = vec![0u8; f.slice.unwrap_or(READ_SIZE).clamp(1, READ_SIZE)];
        loop {
            let piece = match s_rd.read(&mut buf).await {
                Ok(0) => Piece::Fin,
                Ok(n) => Piece::Data(buf[..n].to_vec()),
                Err(_) => Piece::Reset,
            };
            let last = !matches!(piece, Piece::Data(_));
            if tx
                .send((tokio::time::Instant::now() + f.latency, piece))
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
                Piece::Data(mut data) => {
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
    // The run ends with the server-to-client direction; the other one is
    // forwarded meanwhile and dropped then.
    let outcome = {
        let down = async { tokio::join!(reader, writer).1 };
        tokio::pin!(down, upstream);
        let mut up_done = false;
        loop {
            tokio::select! {
                o = &mut down => break o,
                _ = &mut upstream, if !up_done => up_done = true,
            }
        }
    };
    match outcome {
        Outcome::Reset => c_rd.unsplit(c_wr).abort(),
        Outcome::Stall => std::future::pending::<()>().await,
        Outcome::Done | Outcome::ClientGone => {}
    }
}

enum Outcome {
    Done,
    ClientGone,
    Reset,
    Stall,
}

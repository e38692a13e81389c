//! The fault-injecting proxy between the reference server and client, in
//! the simulator, where its effects are exact; then the proxy under load:
//! bounded buffers, connections freed when a side leaves, accept errors
//! survived (issue 9, item 7).

use std::time::Duration;

use std::sync::{Arc, Mutex};

use poetry_harness::faultproxy::{self, Faults, Stats};
use poetry_harness::net::Net;
use poetry_harness::reference::{get_poem, ClientConfig, FetchError, PoetryServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POEM: &[u8] = include_bytes!("../../fixtures/poems/loreley.txt");
const LATENCY: Duration = Duration::from_millis(10);

/// Runs the reference client through the fault proxy; returns its result
/// and the simulated time it took.
fn through(faults: Faults, idle: Duration) -> (Result<Vec<u8>, FetchError>, Duration) {
    let mut sim = turmoil::Builder::new()
        .tick_duration(LATENCY)
        .min_message_latency(LATENCY)
        .max_message_latency(LATENCY)
        .simulation_duration(Duration::from_secs(120))
        .build();
    sim.host("poet", || async {
        let l = Net::Sim.bind("0.0.0.0:10000").await?;
        PoetryServer::fast(POEM).serve(l).await?;
        Ok(())
    });
    sim.host("faults", move || async move {
        let l = Net::Sim.bind("0.0.0.0:10000").await?;
        faultproxy::serve(Net::Sim, l, "poet:10000".into(), faults).await?;
        Ok(())
    });
    let out = std::sync::Arc::new(std::sync::Mutex::new(None));
    let out2 = out.clone();
    sim.client("reader", async move {
        let config = ClientConfig {
            idle_timeout: idle,
            ..ClientConfig::default()
        };
        let start = turmoil::sim_elapsed().unwrap_or_default();
        let r = get_poem(Net::Sim, "faults:10000", config)
            .await
            .map(|b| b.to_vec());
        let took = turmoil::sim_elapsed().unwrap_or_default() - start;
        *out2.lock().unwrap() = Some((r, took));
        Ok(())
    });
    sim.run().expect("simulation runs");
    let r = out.lock().unwrap().take().expect("the client finished");
    r
}

const IDLE: Duration = Duration::from_secs(5);

#[test]
fn no_faults_relays_the_poem_exactly() {
    let (r, _) = through(Faults::default(), IDLE);
    assert_eq!(r.unwrap(), POEM);
}

#[test]
fn slicing_keeps_the_bytes_exact() {
    let (r, _) = through(
        Faults {
            slice: Some(7),
            ..Faults::default()
        },
        IDLE,
    );
    assert_eq!(r.unwrap(), POEM);
}

#[test]
fn reset_after_n_bytes_is_a_reset_at_the_client() {
    let (r, _) = through(
        Faults {
            reset_after: Some(100),
            ..Faults::default()
        },
        IDLE,
    );
    assert_eq!(r.unwrap_err(), FetchError::Reset { after: 100 });
}

#[test]
fn stall_after_n_bytes_ends_in_the_client_idle_timeout() {
    let (r, took) = through(
        Faults {
            stall_after: Some(100),
            ..Faults::default()
        },
        IDLE,
    );
    assert!(
        matches!(r, Err(FetchError::Timeout { after: 100, .. })),
        "{r:?}"
    );
    assert!(
        took >= IDLE && took < IDLE + Duration::from_secs(1),
        "{took:?}"
    );
}

#[test]
fn latency_and_slow_close_add_their_time() {
    let (_, plain) = through(Faults::default(), IDLE);
    let faults = Faults {
        latency: Duration::from_millis(300),
        slow_close: Duration::from_secs(2),
        ..Faults::default()
    };
    let (r, slow) = through(faults, IDLE);
    assert_eq!(r.unwrap(), POEM);
    // The poem and its FIN are each held 300 ms; the FIN 2 s more.
    assert_eq!(
        slow - plain,
        Duration::from_millis(2300),
        "plain {plain:?}, slow {slow:?}"
    );
}

#[test]
fn rate_limit_paces_the_poem() {
    let faults = Faults {
        rate: Some(100),
        slice: Some(10),
        ..Faults::default()
    };
    let (r, took) = through(faults, IDLE);
    assert_eq!(r.unwrap(), POEM);
    // 279 bytes at 100 bytes a second: at least 2.7 s.
    assert!(took >= Duration::from_millis(2700), "{took:?}");
}

/// A simulator with the proxy (`faults:10000`, counting into the returned
/// stats) in front of `upstream` (`poet:10000`).
fn proxied<F, Fut>(faults: Faults, upstream: F) -> (turmoil::Sim<'static>, Arc<Stats>)
where
    F: Fn() -> Fut + 'static,
    Fut: std::future::Future<Output = turmoil::Result> + 'static,
{
    let mut sim = turmoil::Builder::new()
        .tick_duration(LATENCY)
        .min_message_latency(LATENCY)
        .max_message_latency(LATENCY)
        .simulation_duration(Duration::from_secs(120))
        .build();
    sim.host("poet", upstream);
    let stats = Arc::new(Stats::default());
    let counted = stats.clone();
    sim.host("faults", move || {
        let stats = counted.clone();
        async move {
            let l = Net::Sim.bind("0.0.0.0:10000").await?;
            faultproxy::serve_counted(Net::Sim, l, "poet:10000".into(), faults, stats).await?;
            Ok(())
        }
    });
    (sim, stats)
}

/// An upstream that writes `reply`, then reads until its client leaves and
/// notes when (simulated time), keeping its side open meanwhile.
fn replies_then_watches(
    reply: Vec<u8>,
    closed_at: Arc<Mutex<Option<Duration>>>,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = turmoil::Result>>> {
    move || {
        let (reply, closed_at) = (reply.clone(), closed_at.clone());
        Box::pin(async move {
            let l = Net::Sim.bind("0.0.0.0:10000").await?;
            let (mut s, _) = l.accept().await?;
            s.write_all(&reply).await?;
            let mut buf = [0u8; 1024];
            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            *closed_at.lock().unwrap() = turmoil::sim_elapsed();
            std::future::pending::<()>().await;
            Ok(())
        })
    }
}

/// Regression (issue 9): with `--stall-after`, connections were never
/// freed, and the proxy ran out of descriptors.
#[test]
fn stalled_connection_whose_client_leaves_has_its_upstream_closed() {
    let closed_at = Arc::new(Mutex::new(None));
    let faults = Faults {
        stall_after: Some(100),
        ..Faults::default()
    };
    let (mut sim, stats) = proxied(
        faults,
        replies_then_watches(vec![b'x'; 1000], closed_at.clone()),
    );
    let left_at = Arc::new(Mutex::new(None));
    let (left, counted) = (left_at.clone(), stats.clone());
    sim.client("reader", async move {
        let mut s = Net::Sim.connect("faults:10000").await?;
        let mut got = vec![0u8; 100];
        s.read_exact(&mut got).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Stalled: both connections still open.
        assert_eq!(counted.open(), 1);
        *left.lock().unwrap() = turmoil::sim_elapsed();
        drop(s);
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    });
    sim.run().expect("simulation runs");
    let left = left_at.lock().unwrap().expect("the client left");
    let closed = closed_at.lock().unwrap().expect("the upstream was closed");
    // The client's FIN reaches the proxy, the proxy's reaches the server.
    assert_eq!(closed - left, 2 * LATENCY);
    assert_eq!(stats.open(), 0);
}

#[test]
fn client_reset_closes_a_silent_upstream() {
    let closed_at = Arc::new(Mutex::new(None));
    let (mut sim, stats) = proxied(
        Faults::default(),
        replies_then_watches(Vec::new(), closed_at.clone()),
    );
    let counted = stats.clone();
    sim.client("reader", async move {
        let s = Net::Sim.connect("faults:10000").await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(counted.open(), 1);
        s.abort();
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    });
    sim.run().expect("simulation runs");
    assert!(
        closed_at.lock().unwrap().is_some(),
        "the upstream stayed open"
    );
    assert_eq!(stats.open(), 0);
}

/// Regression (issue 9): `--rate` read the whole reply into memory (300 MB
/// for a big one); now the proxy reads only as fast as it forwards.
#[test]
fn rate_forwards_a_large_poem_holding_a_bounded_number_of_bytes() {
    const SIZE: usize = 4 * 1024 * 1024;
    let poem: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let served = poem.clone();
    let faults = Faults {
        rate: Some(1024 * 1024),
        ..Faults::default()
    };
    let (mut sim, stats) = proxied(faults, move || {
        let served = served.clone();
        async move {
            let l = Net::Sim.bind("0.0.0.0:10000").await?;
            let (mut s, _) = l.accept().await?;
            s.write_all(&served).await?;
            s.shutdown().await?;
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    let out = Arc::new(Mutex::new(None));
    let got = out.clone();
    sim.client("reader", async move {
        let mut s = Net::Sim.connect("faults:10000").await?;
        let mut poem = Vec::new();
        s.read_to_end(&mut poem).await?;
        *got.lock().unwrap() = Some((poem, turmoil::sim_elapsed().unwrap_or_default()));
        Ok(())
    });
    sim.run().expect("simulation runs");
    let (received, took) = out.lock().unwrap().take().expect("the client finished");
    assert!(
        received == poem,
        "{} bytes of {SIZE}, or other bytes",
        received.len()
    );
    // 4 MiB at 1 MiB a second.
    assert!(took >= Duration::from_secs(3), "{took:?}");
    let peak = stats.peak_held();
    assert!(
        peak > 0 && peak <= faultproxy::MAX_HELD,
        "held {peak} bytes at most"
    );
    const { assert!(faultproxy::MAX_HELD < SIZE / 8) };
    assert_eq!(stats.held(), 0);
}

/// Regression (issue 9): an accept error (EMFILE under load) ended the
/// proxy. Errors injected into the accept loop are counted and waited out.
#[test]
fn accept_errors_are_survived_after_a_pause() {
    let mut sim = turmoil::Builder::new().tick_duration(LATENCY).build();
    let out = Arc::new(Mutex::new(None));
    let got = out.clone();
    sim.client("proxy", async move {
        let stats = Stats::default();
        let mut errors = vec![
            std::io::Error::from_raw_os_error(24), // EMFILE
            std::io::Error::from(std::io::ErrorKind::ConnectionAborted),
            std::io::Error::from_raw_os_error(24),
        ];
        let start = turmoil::sim_elapsed().unwrap_or_default();
        let client = faultproxy::next_client(
            || {
                let r = errors.pop().map_or(Ok("client"), Err);
                async move { r }
            },
            &stats,
        )
        .await;
        let took = turmoil::sim_elapsed().unwrap_or_default() - start;
        *got.lock().unwrap() = Some((client, stats.accept_errors(), took));
        Ok(())
    });
    sim.run().expect("simulation runs");
    let (client, errors, took) = out.lock().unwrap().take().expect("the loop returned");
    assert_eq!(client, "client");
    assert_eq!(errors, 3);
    assert_eq!(took, 3 * faultproxy::ACCEPT_PAUSE);
}

/// Waits (at most 10 s, real time) until `cond` holds; false if it never
/// does.
async fn eventually(cond: impl Fn() -> bool) -> bool {
    for _ in 0..1000 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// The same regression on real sockets (127.0.0.1): stalled connections
/// whose clients leave are all freed, so descriptors do not pile up.
#[tokio::test]
async fn live_stalled_connections_are_freed_when_their_clients_leave() {
    const CLIENTS: usize = 50;
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = upstream.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = upstream.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = s.write_all(&vec![b'x'; 1_000_000]).await;
                let mut buf = [0u8; 1024];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    let listener = Net::Tokio.bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    let faults = Faults {
        stall_after: Some(100),
        ..Faults::default()
    };
    let proxy = tokio::spawn(faultproxy::serve_counted(
        Net::Tokio,
        listener,
        target,
        faults,
        stats.clone(),
    ));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut got = [0u8; 100];
        c.read_exact(&mut got).await.unwrap();
        clients.push(c);
    }
    assert!(
        eventually(|| stats.open() == CLIENTS).await,
        "{} of {CLIENTS} connections open",
        stats.open()
    );
    drop(clients);
    assert!(
        eventually(|| stats.open() == 0).await,
        "{} connections still open after their clients left",
        stats.open()
    );
    proxy.abort();
    server.abort();
}

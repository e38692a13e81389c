//! The bench's arithmetic, checked in simulated time (turmoil), where every
//! duration is exact: the load generator run against scripted servers of
//! known behaviour must report exactly what that behaviour implies.
//! No wall clock is involved, so nothing here can flake on a loaded
//! machine.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use poetry_harness::bench::load::{measure_here, Load, Mode, Tally, Target};
use poetry_harness::bench::stats::Percentiles;
use poetry_harness::net::Net;
use tokio::io::AsyncWriteExt;

const POEM: &[u8] = b"Tyger Tyger, burning bright\n";

/// How the scripted server serves each connection.
#[derive(Clone, Copy)]
enum Serving {
    /// Each connection on its own: wait `delay`, write, close.
    Concurrent(Duration),
    /// One connection at a time, `delay` each: the series' blocking server.
    OneAtATime(Duration),
}

/// Runs the generator with `mode` for `window` against a server `serving`,
/// on a simulated network whose every message takes `latency`.
fn run(serving: Serving, mode: Mode, window: Duration, latency: Duration) -> Tally {
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(120))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(latency)
        .max_message_latency(latency)
        .tcp_capacity(1 << 16)
        .build();
    sim.host("poet", move || async move {
        let listener = Net::Sim.bind("0.0.0.0:10000").await?;
        loop {
            let (mut s, _) = listener.accept().await?;
            match serving {
                Serving::Concurrent(delay) => {
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = s.write_all(POEM).await;
                    });
                }
                Serving::OneAtATime(delay) => {
                    tokio::time::sleep(delay).await;
                    let _ = s.write_all(POEM).await;
                }
            }
        }
    });
    let out: Arc<Mutex<Option<Tally>>> = Arc::default();
    let slot = out.clone();
    sim.client("bench", async move {
        let load = Load {
            mode,
            duration: window,
            timeout: Duration::from_secs(30),
            slow_readers: 0,
        };
        let tally = measure_here(Target::Sim("poet:10000".into()), Arc::from(POEM), load).await;
        *slot.lock().unwrap() = Some(tally);
        Ok(())
    });
    sim.run().expect("the simulation runs");
    let tally = out.lock().unwrap().take().expect("a tally");
    tally
}

fn ms(d: u64) -> Duration {
    Duration::from_millis(d)
}

#[test]
fn a_server_with_a_fixed_delay_gives_that_latency_at_every_percentile() {
    // 1 ms links, 20 ms of service: every fetch takes the same time, so
    // every percentile is that time, and a closed loop of 4 fetches
    // 4 poems per fetch time (Little's law).
    let t = run(
        Serving::Concurrent(ms(20)),
        Mode::Closed { connections: 4 },
        Duration::from_secs(2),
        ms(1),
    );
    assert_eq!(t.failed(), 0, "{t:?}");
    let p = Percentiles::of(&t.last_byte);
    let each = p.p50;
    assert!(each >= 20_000, "{p:?}");
    assert_eq!((p.p99, p.p999, p.max), (each, each, each), "{p:?}");
    let per_fetch = Duration::from_micros(each);
    let expected = 4.0 * 2.0 / per_fetch.as_secs_f64();
    assert!(
        (t.poems as f64 - expected).abs() <= 4.0,
        "{} poems, expected {expected:.1} ({p:?})",
        t.poems
    );
    assert_eq!(t.bytes, t.poems * POEM.len() as u64);
}

#[test]
fn a_one_at_a_time_server_serves_one_poem_per_service_time_whatever_the_load() {
    // 10 ms a poem, one at a time. One fetcher leaves the server idle
    // between its fetches (the round trips), so it gets one poem per fetch
    // time; eight keep it busy, and it serves one poem per 10 ms, no more:
    // throughput stops at 100 poems/s while each fetch waits for the seven
    // ahead of it.
    let window = Duration::from_secs(1);
    let one = run(
        Serving::OneAtATime(ms(10)),
        Mode::Closed { connections: 1 },
        window,
        ms(1),
    );
    let eight = run(
        Serving::OneAtATime(ms(10)),
        Mode::Closed { connections: 8 },
        window,
        ms(1),
    );
    let each = Percentiles::of(&one.last_byte);
    assert_eq!(each.p50, each.max, "one fetcher never waits: {each:?}");
    let expected = window.as_secs_f64() / Duration::from_micros(each.p50).as_secs_f64();
    assert!(
        (one.poems as f64 - expected).abs() <= 1.0,
        "{} poems, expected {expected:.1}",
        one.poems
    );
    assert!((95..=100).contains(&eight.poems), "{} poems", eight.poems);
    let p = Percentiles::of(&eight.last_byte);
    // Seven poems ahead and its own: 80 ms, plus the links (a few ms).
    assert!((80_000..=85_000).contains(&p.p50), "{p:?}");
}

#[test]
fn open_loop_latency_counts_from_the_intended_start_in_exact_time() {
    // 10 ms a poem, one at a time, offered 200 poems/s (twice its rate) for
    // 1 s: the queue grows by one every 10 ms, so the last fetch that
    // finishes within the window waited about half the window. From their
    // intended starts, latencies spread from the service time up.
    let t = run(
        Serving::OneAtATime(ms(10)),
        Mode::Open { rate: 200.0 },
        Duration::from_secs(1),
        ms(1),
    );
    let p = Percentiles::of(&t.last_byte);
    assert!(t.poems >= 90 && t.poems <= 100, "{} poems", t.poems);
    assert!(p.max >= 400_000, "{p:?}");
    assert!(p.p50 >= 200_000, "{p:?}");
    assert_eq!(
        t.late, 0,
        "the generator itself is never late in simulated time"
    );
}

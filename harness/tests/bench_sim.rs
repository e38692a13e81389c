//! The bench's arithmetic, checked in simulated time (turmoil), where every
//! duration is exact: the load generator run against scripted servers of
//! known behaviour must report exactly what that behaviour implies; and
//! the simulated comparison (`bench --sim`, `bench::sim`) of real Rust
//! implementations through the role traits must match its models fetch
//! for fetch. No wall clock is involved, so nothing here can flake on a
//! loaded machine.

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

// The simulated comparison: real implementations through the role traits
// (`bench::sim`), against the models of `bench::sim::predict`.

mod comparison {
    use std::sync::Arc;
    use std::time::Duration;

    use poetry_harness::bench::load::{Load, Mode};
    use poetry_harness::bench::sim::{self, Model, Setup};
    use poetry_harness::bench::stats::Percentiles;
    use poetry_harness::reference::Pacing;
    use poetry_harness::roles::{Implementation, PoetryServerRole};

    /// The series' "The Tyger" is 806 bytes; any size will do without
    /// pacing, and with 100-byte chunks this one is 9 of them.
    const POEM_BYTES: usize = 806;

    fn poem() -> Arc<[u8]> {
        (0..POEM_BYTES).map(|i| b'a' + (i % 26) as u8).collect()
    }

    fn server(name: &str) -> Arc<dyn PoetryServerRole> {
        let imp = if name == "reference" {
            Implementation::reference()
        } else {
            (poetry_harness::mutants::by_name(name)
                .expect("a mutant")
                .build)()
        };
        imp.server.expect("a server")
    }

    fn closed(connections: usize, window: Duration) -> Load {
        Load {
            mode: Mode::Closed { connections },
            duration: window,
            timeout: Duration::from_secs(30),
            slow_readers: 0,
        }
    }

    fn ms(d: u64) -> Duration {
        Duration::from_millis(d)
    }

    /// Measures `name` and checks it against `model`'s prediction: the
    /// same number of poems, and every fetch's time to the last byte in
    /// the histogram bucket (3 significant digits, 64 us wide at 80 ms,
    /// narrower than the 1 ms tick) of its predicted time. Returns the
    /// measured percentiles.
    fn matches_model(name: &str, model: Model, setup: Setup, load: Load) -> Percentiles {
        let m = sim::measure(server(name), poem(), load, setup).expect("the simulation runs");
        let p = sim::predict(model, setup, POEM_BYTES, &load).expect("a prediction");
        let t = &m.tally;
        assert_eq!(t.failed(), 0, "{name}: {t:?}");
        assert_eq!(m.server_error, None, "{name}");
        assert_eq!(t.poems, p.poems, "{name}: poems, {}", load.mode.describe());
        assert_eq!(t.bytes, t.poems * POEM_BYTES as u64);
        let (got, want) = (Percentiles::of(&t.last_byte), Percentiles::of(&p.last_byte));
        assert!(
            t.last_byte == p.last_byte,
            "{name}, {}: every fetch's time, measured {got:?}, predicted {want:?}",
            load.mode.describe()
        );
        // The mean of the histogram is within its resolution of the exact
        // mean.
        let exact = p.mean.as_secs_f64() * 1e6;
        assert!(
            (t.last_byte.mean() - exact).abs() <= exact * 1e-3,
            "{name}: mean {} us, exact {exact} us",
            t.last_byte.mean()
        );
        got
    }

    #[test]
    fn a_serial_server_serves_one_poem_per_service_time_and_each_fetch_waits_n_of_them() {
        // 10 ms links, the whole poem at once: S = 2L = 20 ms. Over 3 s,
        // M = 150 poems whatever N (throughput 1/S = 50 poems/s); the
        // first N fetches take S, 2S, ..., N*S, every later one N*S.
        let setup = Setup {
            latency: ms(10),
            pacing: None,
        };
        for n in [1u64, 4, 16] {
            let load = closed(n as usize, Duration::from_secs(3));
            let p = matches_model("server-one-at-a-time", Model::Serial, setup, load);
            assert_eq!(p.count, 150, "N = {n}");
            let predicted = sim::predict(Model::Serial, setup, POEM_BYTES, &load).unwrap();
            assert_eq!(predicted.poems_per_s, 50.0);
            // The exact mean: N*S - N(N-1)S / 2M, with S = 20 ms, M = 150.
            let mean_us = n as f64 * 20_000.0 - (n * (n - 1)) as f64 * 20_000.0 / 300.0;
            assert_eq!(
                predicted.mean.as_micros() as f64,
                mean_us.round(),
                "N = {n}"
            );
            // The steady state, N*S, is the median and the maximum.
            let h = sim::predict(Model::Serial, setup, POEM_BYTES, &load)
                .unwrap()
                .last_byte;
            assert!(h.equivalent(p.p50, n * 20_000), "N = {n}: {p:?}");
            assert!(h.equivalent(p.max, n * 20_000), "N = {n}: {p:?}");
        }
    }

    #[test]
    fn a_paced_serial_server_adds_its_write_time_to_the_service_time() {
        // 5 ms links, 100 bytes every 2 ms: 9 chunks, W = 8 x 2 = 16 ms,
        // S = 2 x 5 + 16 = 26 ms.
        let setup = Setup {
            latency: ms(5),
            pacing: Some(Pacing {
                num_bytes: 100,
                delay: ms(2),
            }),
        };
        assert_eq!(setup.service(POEM_BYTES), ms(26));
        for n in [1, 4, 16] {
            matches_model(
                "server-one-at-a-time",
                Model::Serial,
                setup,
                closed(n, Duration::from_secs(2)),
            );
        }
    }

    #[test]
    fn a_window_shorter_than_the_queue_holds_only_the_first_fetches() {
        // 16 fetchers, S = 20 ms, a 200 ms window: M = 10 < N, so only the
        // first ten fetches finish, at S, 2S, ..., 10S.
        let setup = Setup {
            latency: ms(10),
            pacing: None,
        };
        let p = matches_model(
            "server-one-at-a-time",
            Model::Serial,
            setup,
            closed(16, ms(200)),
        );
        assert_eq!(p.count, 10);
    }

    #[test]
    fn the_concurrent_reference_gives_every_fetch_the_service_time_whatever_n() {
        // Every fetch takes S = 20 ms, at any N: latency does not grow, and
        // throughput grows as N / S.
        let setup = Setup {
            latency: ms(10),
            pacing: None,
        };
        let mut medians = Vec::new();
        for n in [1u64, 4, 16] {
            let p = matches_model(
                "reference",
                Model::Concurrent,
                setup,
                closed(n as usize, Duration::from_secs(3)),
            );
            assert_eq!(p.count, n * 150, "N = {n}");
            assert_eq!(p.p50, p.max, "N = {n}: {p:?}");
            medians.push(p.max);
        }
        assert!(medians.iter().all(|m| *m == medians[0]), "{medians:?}");
        // Paced, too: S = 2 x 5 + 16 = 26 ms whatever N.
        let paced = Setup {
            latency: ms(5),
            pacing: Some(Pacing {
                num_bytes: 100,
                delay: ms(2),
            }),
        };
        for n in [1, 16] {
            matches_model(
                "reference",
                Model::Concurrent,
                paced,
                closed(n, Duration::from_secs(2)),
            );
        }
    }

    #[test]
    fn open_loop_a_serial_server_queues_once_fetches_come_faster_than_one_per_service_time() {
        // S = 20 ms. At 25/s (40 ms apart) and 50/s (20 ms) nothing waits:
        // every fetch takes S, on both servers. At 100/s the serial server
        // still serves one per S, so the i-th fetch takes 20 + 10i ms,
        // while the reference gives every one 20 ms. The open loop counts
        // only poems whole strictly before the window's end (see
        // `sim::predict`): 1 s at 50/s is 49 poems, not 50.
        let setup = Setup {
            latency: ms(10),
            pacing: None,
        };
        let open = |rate: f64| Load {
            mode: Mode::Open { rate },
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
            slow_readers: 0,
        };
        for rate in [25.0, 50.0, 100.0] {
            let serial = matches_model("server-one-at-a-time", Model::Serial, setup, open(rate));
            let concurrent = matches_model("reference", Model::Concurrent, setup, open(rate));
            assert_eq!(concurrent.p50, concurrent.max, "{rate}/s: {concurrent:?}");
            if rate <= 50.0 {
                assert_eq!(serial, concurrent, "{rate}/s");
            }
        }
        let p = sim::predict(Model::Serial, setup, POEM_BYTES, &open(100.0)).unwrap();
        // Done at (i + 1) x 20 ms < 1 s: i = 0..48, latencies 20..500 ms.
        assert_eq!(p.poems, 49);
        assert_eq!(p.mean, ms(20 + 10 * 24));
        // A rate whose interval is not a whole number of ticks has no
        // prediction (the generator's starts would be rounded).
        assert!(sim::predict(Model::Serial, setup, POEM_BYTES, &open(300.0)).is_none());
    }

    #[test]
    fn no_prediction_where_fetches_time_out_or_slow_readers_hold_the_server() {
        let setup = Setup {
            latency: ms(10),
            pacing: None,
        };
        // 16 x 20 ms = 320 ms of queue: a 300 ms timeout fails fetches,
        // even those that would end after the window.
        let load = Load {
            timeout: ms(300),
            ..closed(16, Duration::from_secs(1))
        };
        assert!(sim::predict(Model::Serial, setup, POEM_BYTES, &load).is_none());
        assert!(sim::predict(Model::Concurrent, setup, POEM_BYTES, &load).is_some());
        let m = sim::measure(server("server-one-at-a-time"), poem(), load, setup).unwrap();
        assert!(m.tally.failed() > 0, "{:?}", m.tally);
        let slow = Load {
            slow_readers: 1,
            ..closed(4, Duration::from_secs(1))
        };
        assert!(sim::predict(Model::Concurrent, setup, POEM_BYTES, &slow).is_none());
    }

    #[test]
    fn the_simulated_comparison_is_deterministic() {
        let setup = Setup {
            latency: ms(3),
            pacing: None,
        };
        let run = || {
            sim::measure(
                server("server-one-at-a-time"),
                poem(),
                closed(8, Duration::from_secs(1)),
                setup,
            )
            .expect("the simulation runs")
            .tally
        };
        let (a, b) = (run(), run());
        assert_eq!(a.poems, b.poems);
        assert!(a.last_byte == b.last_byte && a.connect == b.connect);
    }

    #[test]
    fn only_whole_milliseconds_of_latency_are_accepted() {
        assert!(sim::check_ticks("--sim-latency", ms(1), true).is_ok());
        let zero = sim::check_ticks("--sim-latency", Duration::ZERO, true).unwrap_err();
        assert!(zero.to_string().contains("at least 1ms"), "{zero}");
        let frac =
            sim::check_ticks("--sim-latency", Duration::from_micros(1500), true).unwrap_err();
        assert!(
            frac.to_string().contains("whole number of milliseconds"),
            "{frac}"
        );
    }
}

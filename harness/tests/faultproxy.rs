//! The fault-injecting proxy between the reference server and client, in
//! the simulator, where its effects are exact.

use std::time::Duration;

use poetry_harness::faultproxy::{self, Faults};
use poetry_harness::net::Net;
use poetry_harness::reference::{get_poem, ClientConfig, FetchError, PoetryServer};

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

//! A slow download of more than ten minutes, at the series' own pace,
//! timed exactly in simulated time (the simulator only: on real sockets it
//! would take ten minutes).

use std::time::Duration;

use bytes::Bytes;
use poetry_harness::reference::{get_poem, ClientConfig, Pacing, PoetryServer};
use tokio::io::AsyncReadExt;

use super::backend::{Backend, Scenario, SimTiming, CLIENT};
use super::loreley;

/// One tick, and the latency of every message: equal, so every event falls
/// on a tick and simulated times are exact.
const STEP: Duration = Duration::from_millis(100);

/// Part 2's pace: 10 bytes every 0.7 s (both multiples of [`STEP`]).
const PACING: Pacing = Pacing {
    num_bytes: 10,
    delay: Duration::from_millis(700),
};

/// Lore-Ley 31 times over: 8,649 bytes, 865 chunks, 604.8 s of pauses.
fn long_poem() -> Bytes {
    loreley().repeat(31).into()
}

fn timing() -> SimTiming {
    SimTiming {
        tick: STEP,
        latency: STEP,
        duration: Duration::from_secs(700),
    }
}

/// When chunk `i` reaches the client, counted from its connection attempt:
/// the SYN takes one latency, the server writes chunk 0 as it accepts and
/// chunk i `i` delays later, and each chunk takes one latency to arrive.
fn chunk_arrival(i: u32) -> Duration {
    STEP + PACING.delay * i + STEP
}

#[test]
fn slow_poem_of_over_ten_minutes_arrives_intact_and_on_schedule() {
    let poem = long_poem();
    let chunks = poem.len().div_ceil(PACING.num_bytes) as u32;
    // The FIN follows the last chunk at once.
    let expected = chunk_arrival(chunks - 1);
    assert!(expected > Duration::from_secs(600));
    let served = poem.clone();
    Scenario::new()
        .timing(timing())
        .server("poet", move |_, l| {
            PoetryServer::slow(served.clone(), PACING).serve(l)
        })
        .run(Backend::Sim, move |cx| async move {
            let start = cx.sim_now().expect("simulated");
            let got = get_poem(cx.net, &cx.addr("poet"), ClientConfig::default()).await?;
            let took = cx.sim_now().expect("simulated") - start;
            assert_eq!(got, poem);
            assert_eq!(took, expected, "download time of {chunks} chunks");
            cx.assert_no_connections(&["poet", CLIENT]).await;
            Ok(())
        });
}

#[test]
fn every_chunk_of_a_slow_poem_arrives_on_its_tick() {
    // A shorter poem, read chunk by chunk: each arrives exactly when the
    // pacing says, never early or late, and the reads add up to the poem.
    let poem = loreley();
    let served = poem.clone();
    Scenario::new()
        .timing(timing())
        .server("poet", move |_, l| {
            PoetryServer::slow(served.clone(), PACING).serve(l)
        })
        .run(Backend::Sim, move |cx| async move {
            let start = cx.sim_now().expect("simulated");
            let mut stream = cx.net.connect(&cx.addr("poet")).await?;
            let mut got = Vec::new();
            let mut arrivals = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                let n = stream.read(&mut buf).await?;
                let at = cx.sim_now().expect("simulated") - start;
                if n == 0 {
                    arrivals.push((at, 0));
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                arrivals.push((at, n));
            }
            assert_eq!(got, poem);
            let chunks = poem.len().div_ceil(PACING.num_bytes);
            let mut want: Vec<_> = (0..chunks)
                .map(|i| {
                    let len = PACING.num_bytes.min(poem.len() - i * PACING.num_bytes);
                    (chunk_arrival(i as u32), len)
                })
                .collect();
            // EOF arrives with the last chunk.
            want.push((chunk_arrival(chunks as u32 - 1), 0));
            assert_eq!(arrivals, want);
            Ok(())
        });
}

//! The simulated comparison (issue 10, item 7): in-process Rust
//! implementations of the poetry-server role, loaded by the bench's own
//! generator ([`load::measure_here`]) inside turmoil, where every time is
//! simulated: exact, deterministic and free of noise. A strategy's
//! throughput and latency then follow from its structure, and [`predict`]
//! says what they must be.
//!
//! ## The model
//!
//! The simulated network has a fixed one-way latency `L` per message and
//! no bandwidth limit; nothing costs CPU time. A server that paces its
//! poem (`num_bytes` every `delay`) takes `W = (chunks - 1) * delay` to
//! write it (`W = 0` for the fast server). One fetch, from the
//! generator's side, from the moment it connects:
//!
//! 1. the SYN reaches the server after `L`, and waits there until the
//!    server accepts it; turmoil has no handshake, so `connect` returns the
//!    moment the server accepts ([`crate::backend::sim`] explains);
//! 2. the server writes for `W`, then sends FIN; the last byte and the FIN
//!    reach the client `L` later: the fetch is done;
//! 3. the client closes; its FIN reaches the server `L` later, and a
//!    reference-style server, which lingers for the client's FIN before
//!    it lets the connection go ([`crate::reference::LINGER`]), is done
//!    with it only then. The client's next SYN, sent when it closed,
//!    arrives at that same instant.
//!
//! So a fetch the server accepts at once takes `S = 2L + W`, and a server
//! is busy with each connection for `S` as well.
//!
//! - **Concurrent** (the reference: a task per connection): every fetch
//!   takes `S`, whatever the number `N` of closed-loop fetchers; each
//!   finishes a poem every `S`, so over a window `T` there are
//!   `N * floor(T / S)` poems.
//! - **Serial** (one connection at a time): poems leave the server one
//!   per `S`, the `j`-th (from 1) at `j * S`, so a window holds
//!   `M = floor(T / S)` of them: throughput `1 / S` whatever `N`, and
//!   already at `N = 1`, whose next SYN arrives just as the server is
//!   free. The first `N` fetches, queued at once, take `S, 2S, ..., N*S`;
//!   every later one waits for the `N - 1` others and takes exactly
//!   `N * S`. Over the window the mean is
//!   `N*S - N(N-1)S / (2M)` (when `M >= N`), which tends to `N * S`: the
//!   queueing delay `(N - 1) * S` is Little's law with `N` fetches always
//!   in flight.
//! - **Open loop** at `R` fetches per second (`I = 1/R` apart): a
//!   concurrent server gives every fetch `S`; a serial one too while
//!   `I >= S`, and beyond it the `i`-th fetch (from 0) is accepted at
//!   `L + i*S` and takes `S + i*(S - I)`: the queue grows by `S - I` per
//!   fetch, and throughput stays `1 / S`.
//!
//! Every prediction is exact to the simulator's tick (1 ms, which is why
//! every duration here is a whole number of milliseconds): the tests
//! (`harness/tests/bench_sim.rs`) check each fetch's latency into the
//! histogram bucket it must fall in.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use poetry_harness::bench::load::{Load, Mode};
//! use poetry_harness::bench::sim::{self, Setup};
//!
//! // The serial mutant, 4 fetchers, 10 ms links: S = 20 ms, 50 poems in 1 s.
//! let serial = poetry_harness::mutants::by_name("server-one-at-a-time").unwrap();
//! let server = (serial.build)().server.unwrap();
//! let setup = Setup { latency: Duration::from_millis(10), pacing: None };
//! let load = Load {
//!     mode: Mode::Closed { connections: 4 },
//!     duration: Duration::from_secs(1),
//!     timeout: Duration::from_secs(10),
//!     slow_readers: 0,
//! };
//! let measured = sim::measure(server, Arc::from(&b"Tyger Tyger\n"[..]), load, setup).unwrap();
//! let model = sim::model_of("server-one-at-a-time").unwrap();
//! let predicted = sim::predict(model, setup, 12, &load).unwrap();
//! assert_eq!((measured.tally.poems, predicted.poems), (50, 50));
//! assert!(measured.tally.last_byte == predicted.last_byte);
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::load::{self, Load, Mode, Tally, Target};
use super::stats;
use crate::net::Net;
use crate::reference::Pacing;
use crate::roles::PoetryServerRole;

/// The simulator's tick: every duration of a simulated bench is a whole
/// number of them, so that nothing is rounded.
pub const TICK: Duration = Duration::from_millis(1);

/// The server's host and port in the simulation.
const SERVER: &str = "poet";
const PORT: u16 = 10000;

/// At least this many pending connections and segments per stream: the
/// simulator's backlog and buffers (turmoil panics when a backlog
/// overflows; see [`crate::backend::sim`]).
const TCP_CAPACITY: usize = 4096;

/// After the window, how long the simulation may run on beyond the fetch
/// timeout before it is a failure: fetches in flight at the end finish
/// (or time out) first.
const TAIL: Duration = Duration::from_secs(1);

/// The simulated network and the server's pacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// Every message's one-way latency (`L`), a whole number of ticks and
    /// at least one.
    pub latency: Duration,
    /// The server's pacing, if it is a slow server.
    pub pacing: Option<Pacing>,
}

impl Serialize for Setup {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Setup", 3)?;
        st.serialize_field("latency_ms", &(self.latency.as_secs_f64() * 1e3))?;
        st.serialize_field("num_bytes", &self.pacing.map(|p| p.num_bytes))?;
        st.serialize_field(
            "delay_ms",
            &self.pacing.map(|p| p.delay.as_secs_f64() * 1e3),
        )?;
        st.end()
    }
}

impl Setup {
    /// `10 ms links, fast server` or `10 ms links, 10 bytes every 5 ms`.
    pub fn describe(&self) -> String {
        let pace = match self.pacing {
            None => "server unpaced".to_string(),
            Some(p) => format!(
                "server paced {} bytes every {}",
                p.num_bytes,
                crate::bench::stats::show_us(p.delay.as_micros() as u64)
            ),
        };
        format!(
            "links {} one way, {pace}",
            crate::bench::stats::show_us(self.latency.as_micros() as u64)
        )
    }

    /// The server's time to write a poem of `poem_bytes` (`W`).
    pub fn write_time(&self, poem_bytes: usize) -> Duration {
        match self.pacing {
            None => Duration::ZERO,
            Some(p) => {
                let chunks = poem_bytes.div_ceil(p.num_bytes.max(1)).max(1);
                p.delay * (chunks as u32).saturating_sub(1)
            }
        }
    }

    /// The service time `S = 2L + W`.
    pub fn service(&self, poem_bytes: usize) -> Duration {
        self.latency * 2 + self.write_time(poem_bytes)
    }
}

/// Why a setting cannot be simulated exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError(String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

/// Checks that `d` (the value of `flag`) is a whole number of ticks; at
/// least one if `positive`.
pub fn check_ticks(flag: &str, d: Duration, positive: bool) -> Result<(), SetupError> {
    if d.as_nanos() % TICK.as_nanos() != 0 {
        return Err(SetupError(format!(
            "{flag} '{}' must be a whole number of milliseconds (the simulator's tick)",
            crate::duration::format_duration(d)
        )));
    }
    if positive && d.is_zero() {
        return Err(SetupError(format!(
            "{flag} must be at least 1ms: with no latency a fetch takes no time, and a closed loop never lets time move"
        )));
    }
    Ok(())
}

/// Why a simulated measurement failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// The implementation (or the simulator) panicked.
    Panicked(String),
    /// The simulation failed or did not end in time.
    Failed(String),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::Panicked(m) => write!(f, "the simulation panicked: {m}"),
            SimError::Failed(m) => write!(f, "the simulation failed: {m}"),
        }
    }
}

impl std::error::Error for SimError {}

/// What one simulated measurement gives: the generator's tally, and the
/// server's error if its `serve` returned one (it then stopped serving).
#[derive(Debug, Clone)]
pub struct Measured {
    /// The generator's figures, in simulated time.
    pub tally: Tally,
    /// The server's `serve` ended with this error.
    pub server_error: Option<String>,
}

/// Offers `load` to `server`, which serves `poem` with `setup`'s pacing on
/// a network with `setup`'s latency, inside turmoil: the bench's own
/// generator, on the simulated network, in simulated time.
pub fn measure(
    server: Arc<dyn PoetryServerRole>,
    poem: Arc<[u8]>,
    load: Load,
    setup: Setup,
) -> Result<Measured, SimError> {
    let connections = match load.mode {
        Mode::Closed { connections } => connections,
        Mode::Open { .. } => load::MAX_IN_FLIGHT,
    };
    let capacity = TCP_CAPACITY.max(connections + load.slow_readers + 1);
    let mut sim = turmoil::Builder::new()
        .simulation_duration(load.duration + load.timeout + TAIL)
        .tick_duration(TICK)
        .min_message_latency(setup.latency)
        .max_message_latency(setup.latency)
        .tcp_capacity(capacity)
        .rng_seed(1)
        .build();
    let server_error: Arc<Mutex<Option<String>>> = Arc::default();
    let served = Bytes::copy_from_slice(&poem);
    let error_slot = server_error.clone();
    sim.host(SERVER, move || {
        let (server, poem, slot) = (server.clone(), served.clone(), error_slot.clone());
        async move {
            let listener = Net::Sim.bind(&format!("0.0.0.0:{PORT}")).await?;
            if let Err(e) = server.serve(Net::Sim, listener, poem, setup.pacing).await {
                *slot.lock().expect("server error lock") = Some(e.to_string());
            }
            Ok(())
        }
    });
    let out: Arc<Mutex<Option<Tally>>> = Arc::default();
    let slot = out.clone();
    sim.client("bench", async move {
        let target = Target::Sim(format!("{SERVER}:{PORT}").into());
        let tally = load::measure_here(target, poem, load).await;
        *slot.lock().expect("tally lock") = Some(tally);
        Ok(())
    });
    match catch_unwind(AssertUnwindSafe(|| sim.run())) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(SimError::Failed(e.to_string())),
        Err(panic) => return Err(SimError::Panicked(panic_message(&*panic))),
    }
    drop(sim);
    let tally = out
        .lock()
        .expect("tally lock")
        .take()
        .ok_or_else(|| SimError::Failed("the generator gave no figures".into()))?;
    let server_error = server_error.lock().expect("server error lock").take();
    Ok(Measured {
        tally,
        server_error,
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic with no message".into())
}

/// How a server serves its connections, as far as time goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    /// Each connection in its own task.
    Concurrent,
    /// One connection at a time, to its end.
    Serial,
}

impl Model {
    /// `concurrent` or `serial`.
    pub fn label(self) -> &'static str {
        match self {
            Model::Concurrent => "concurrent",
            Model::Serial => "serial",
        }
    }
}

/// The model of each implementation whose strategy is known: the
/// reference, and the mutant that serves one client at a time. The other
/// mutants break other things (their closes, their bytes), some of which
/// change their timing, and have no model.
pub fn model_of(name: &str) -> Option<Model> {
    match name {
        "reference" => Some(Model::Concurrent),
        "server-one-at-a-time" => Some(Model::Serial),
        _ => None,
    }
}

/// What a model says one measurement must give.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The model.
    pub model: Model,
    /// The service time `S`.
    pub service: Duration,
    /// Whole poems within the window.
    pub poems: u64,
    /// Poems per second over the window.
    pub poems_per_s: f64,
    /// The exact mean time to the last byte.
    pub mean: Duration,
    /// Every fetch's time to the last byte, recorded as the generator
    /// records them: its percentiles compare bucket for bucket.
    pub last_byte: Histogram<u64>,
}

/// What `model` predicts for `load` on `setup` with a poem of
/// `poem_bytes`; `None` where the model does not reach: with slow readers
/// (their hold on a serial server depends on the poem's size), when a
/// fetch would time out, or in an open loop whose interval is not a whole
/// number of ticks (its starts would be rounded) or that would reach
/// [`load::MAX_IN_FLIGHT`].
pub fn predict(model: Model, setup: Setup, poem_bytes: usize, load: &Load) -> Option<Prediction> {
    if load.slow_readers > 0 {
        return None;
    }
    let s = setup.service(poem_bytes);
    if s.is_zero() || s > load.timeout {
        return None;
    }
    let spread = match load.mode {
        Mode::Closed { connections } => closed_spread(model, s, connections as u64, load)?,
        Mode::Open { rate } => open_spread(model, setup, s, rate, load)?,
    };
    Some(finish(model, s, load.duration, &spread))
}

/// Closed loop: the latencies of the fetches within the window, as
/// (value, how many fetches).
fn closed_spread(model: Model, s: Duration, n: u64, load: &Load) -> Option<Vec<(Duration, u64)>> {
    if n == 0 {
        return None;
    }
    let rounds = (load.duration.as_nanos() / s.as_nanos()) as u64;
    Some(match model {
        Model::Concurrent => vec![(s, n * rounds)],
        Model::Serial => {
            let first = rounds.min(n);
            let mut v: Vec<(Duration, u64)> = (1..=first).map(|k| (s * k as u32, 1)).collect();
            if rounds > n {
                // Every later fetch waits for the N - 1 others.
                if let Some(last) = v.last_mut() {
                    last.1 += rounds - n;
                }
            }
            // A fetch that waits past the timeout fails, even one that
            // would end after the window: no model then.
            if s.checked_mul(u32::try_from(n).ok()?)? > load.timeout {
                return None;
            }
            v
        }
    })
}

/// Open loop: fetch `i` is meant to start at `i * I` (`I = 1 / rate`, as
/// the generator computes it); its SYN arrives `L` later. A concurrent
/// server accepts it then; a serial one when it is also done with the
/// previous fetch (`S` after accepting it), in arrival order. The poem is
/// whole `W + L` after the accept, and its latency counts from `i * I`.
/// The `rate`'s interval must be a whole number of ticks, or the starts
/// are rounded to the tick.
fn open_spread(
    model: Model,
    setup: Setup,
    s: Duration,
    rate: f64,
    load: &Load,
) -> Option<Vec<(Duration, u64)>> {
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-6));
    if interval.is_zero() || interval.as_nanos() % TICK.as_nanos() != 0 {
        return None;
    }
    let to_last_byte = s - setup.latency;
    let mut spread: Vec<(Duration, u64)> = Vec::new();
    let mut free = Duration::ZERO;
    let mut i: u32 = 0;
    loop {
        let intended = interval * i;
        if intended >= load.duration {
            break;
        }
        let arrives = intended + setup.latency;
        let accepted = match model {
            Model::Concurrent => arrives,
            Model::Serial => arrives.max(free),
        };
        free = accepted + s;
        let done = accepted + to_last_byte;
        let latency = done - intended;
        if latency > load.timeout {
            return None;
        }
        // Fetches still in flight at a start: at most one per interval
        // of the longest latency so far.
        if (latency.as_nanos() / interval.as_nanos()) as usize >= load::MAX_IN_FLIGHT {
            return None;
        }
        // Strictly before the end: the open loop aborts the fetches in
        // flight when its window ends, and one whose last byte arrives in
        // that very tick is aborted before it is tallied (the closed loop,
        // which waits for its fetchers, counts it).
        if done < load.duration {
            match spread.last_mut() {
                Some((d, n)) if *d == latency => *n += 1,
                _ => spread.push((latency, 1)),
            }
        }
        i = i.checked_add(1)?;
    }
    Some(spread)
}

/// The prediction from the latencies of the fetches within `window`.
fn finish(model: Model, s: Duration, window: Duration, spread: &[(Duration, u64)]) -> Prediction {
    let poems: u64 = spread.iter().map(|(_, c)| c).sum();
    let mut last_byte = stats::histogram();
    let mut total = 0u128;
    for (d, count) in spread {
        stats::record_n(&mut last_byte, *d, *count);
        total += d.as_nanos() * *count as u128;
    }
    let mean = if poems == 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos((total / poems as u128) as u64)
    };
    Prediction {
        model,
        service: s,
        poems,
        poems_per_s: poems as f64 / window.as_secs_f64(),
        mean,
        last_byte,
    }
}

/// The model in one line, with the setup's numbers: what the report
/// prints under its tables.
pub fn explain(model: Model, setup: Setup, poem_bytes: usize) -> String {
    let l = setup.latency.as_secs_f64() * 1e3;
    let w = setup.write_time(poem_bytes).as_secs_f64() * 1e3;
    let s = setup.service(poem_bytes).as_secs_f64() * 1e3;
    let service = format!("S = 2L + W = 2 x {l:.0} + {w:.0} = {s:.0} ms");
    match model {
        Model::Concurrent => format!(
            "concurrent: every fetch takes {service}, whatever N; throughput N / S = N x {:.2} poems/s (over a window T, N x floor(T / S) / T: only whole poems count)",
            1e3 / s
        ),
        Model::Serial => format!(
            "serial: one poem per {service}: throughput 1 / S = {:.2} poems/s whatever N (over a window T, floor(T / S) / T); the first N fetches take S, 2S, ..., N*S and every later one N*S, so over the M = floor(T / S) poems of the window T the mean is N*S - N(N-1)S / 2M; open loop at R poems/s: every fetch takes S while R <= 1/S, beyond it the i-th (from 0) takes S + i(S - 1/R)",
            1e3 / s
        ),
    }
}

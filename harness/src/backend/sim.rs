//! The sim backend: one case, one implementation, one seed, inside turmoil.
//!
//! Hosts: `subject` (the program under test), the server peers (`s1`, ...),
//! the client peers (`c1`, ...), `xform`, and `harness`, which waits for
//! every actor, lets the network settle, and counts the subject's open
//! connections.
//!
//! Time. turmoil 0.7.2 spends wall time per tick of simulated time, and a
//! message takes one tick when the link has no latency, so a large tick is
//! fast but shifts times. We give every link a fixed latency and pick the
//! tick as the greatest common divisor of every duration the case names
//! (latency included): every timer and delivery then falls on a tick
//! boundary, so transcript times are exact, and a slow poem paced at 0.7 s
//! over 50 ms links ticks every 50 ms, not every 1 ms (50x fewer ticks).
//!
//! Loss. turmoil's `fail_rate` drops messages, but its TCP has no
//! retransmission, so a lossy link would break or hang connections instead
//! of slowing them, which no real TCP does. We do not expose it: network
//! trouble is scripted by the peers instead (delays, jitter, stalls,
//! resets, a held link for a connect that never completes), each of which
//! a real network produces and a real program meets the same way.
//!
//! Resets. turmoil 0.7.2 sends a RST only when a stream is dropped with
//! unread data, so a server peer could not reset a client that sends
//! nothing. We considered turmoil-net (a separate socket stack that models
//! SO_LINGER, but without turmoil's hosts, clock or Sim) and a relay host
//! (which has the same limit on its own sockets), and chose a one-function
//! patch to a vendored turmoil: `TcpStream::abort` sends a real RST segment
//! through the simulated network, which the subject meets as
//! `ConnectionReset`, exactly as on a real network.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::{RunEnd, RunOutcome, SubjectResult};
use crate::case::{Case, Role};
use crate::net::Net;
use crate::peers::{self, Observations, Recorder, PORT};
use crate::reference::{ClientConfig, Pacing, PoetryProxy, TransformClient, TransformServer};
use crate::roles::Implementation;
use crate::transcript::Transcript;

/// How long after the last actor finishes the harness waits before
/// counting open connections: the spec's promptness bound P (NET-5).
pub const SETTLE: Duration = Duration::from_secs(1);

/// Socket backlog and buffer capacity in the simulator: large enough for
/// the "many connections" cases (turmoil panics when a backlog overflows).
const TCP_CAPACITY: usize = 4096;

/// Options of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// Seeds random chunking and turmoil's own choices.
    pub seed: u64,
    /// Re-chunk every server peer's writes at random (exploration).
    pub perturb: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            seed: 1,
            perturb: false,
        }
    }
}

/// The simulator tick for a case: the gcd of its durations, in whole
/// milliseconds, at least 1 ms.
pub fn tick_for(case: &Case) -> Duration {
    fn gcd(a: u128, b: u128) -> u128 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let ms = case
        .durations()
        .into_iter()
        .map(|d| d.as_millis())
        .filter(|m| *m > 0)
        .fold(0, gcd);
    Duration::from_millis(ms.max(1) as u64)
}

fn addr(host: &str) -> String {
    format!("{host}:{PORT}")
}

/// Runs one case against one implementation inside turmoil.
pub fn run(case: &Case, imp: &Implementation, opts: RunOptions) -> RunOutcome {
    let tick = tick_for(case);
    let rec = Recorder::new();
    let seen: peers::Shared = Arc::new(Mutex::new(Observations::default()));
    let result: Arc<Mutex<(SubjectResult, Option<Duration>)>> = Arc::default();
    let leaks: Arc<Mutex<Option<usize>>> = Arc::default();
    let finished: Arc<Mutex<Option<Duration>>> = Arc::default();

    let mut sim = turmoil::Builder::new()
        .tick_duration(tick)
        .min_message_latency(case.net.latency.0)
        .max_message_latency(case.net.latency.0)
        .simulation_duration(case.limit.0 + SETTLE + tick)
        .tcp_capacity(TCP_CAPACITY)
        .rng_seed(opts.seed)
        .build();

    let server_names = case.server_names();
    let server_addrs: Vec<String> = server_names.iter().map(|n| addr(n)).collect();
    for (i, (name, spec)) in server_names.iter().zip(&case.servers).enumerate() {
        let (name, spec, rec, seen) = (name.clone(), spec.clone(), rec.clone(), seen.clone());
        let seed = opts.seed.wrapping_add(i as u64 + 1);
        let perturb = opts.perturb;
        let host = name.clone();
        sim.host(host.as_str(), move || {
            let (name, spec, rec, seen) = (name.clone(), spec.clone(), rec.clone(), seen.clone());
            async move {
                let bind = format!("0.0.0.0:{PORT}");
                let _ =
                    peers::poetry_server::run(Net::Sim, name, spec, bind, seed, perturb, rec, seen)
                        .await;
                Ok(())
            }
        });
    }
    if let Some(x) = &case.xform {
        let (x, rec, seen) = (x.clone(), rec.clone(), seen.clone());
        sim.host(peers::transform_server::NAME, move || {
            let (x, rec, seen) = (x.clone(), rec.clone(), seen.clone());
            async move {
                let _ =
                    peers::transform_server::run(Net::Sim, x, format!("0.0.0.0:{PORT}"), rec, seen)
                        .await;
                Ok(())
            }
        });
    }

    // Actors: turmoil clients whose end ends the run.
    let done = Arc::new((AtomicUsize::new(0), Notify::new()));
    let mut actors = 0usize;
    let finish = |done: &Arc<(AtomicUsize, Notify)>| {
        done.0.fetch_add(1, Ordering::SeqCst);
        done.1.notify_waiters();
    };

    let s = &case.subject;
    let client_config = ClientConfig {
        connect_timeout: s.connect_timeout.0,
        idle_timeout: s.idle_timeout.0,
    };
    match case.role {
        Role::Client | Role::TransformClient => {
            actors += 1;
            let (imp, rec, result, done) = (imp.clone(), rec.clone(), result.clone(), done.clone());
            let addrs = server_addrs.clone();
            let role = case.role;
            let tclient = TransformClient {
                xform_addr: addr(peers::transform_server::NAME),
                transform: s.transform.clone(),
                client: client_config,
                transform_timeout: s.transform_timeout.0,
            };
            sim.client("subject", async move {
                rec.log("subject", format!("start with {}", addrs.join(" ")));
                let r = if role == Role::Client {
                    let client = imp.client.clone().expect("checked by the engine");
                    SubjectResult::Poems(client.get_poems(Net::Sim, addrs, client_config).await)
                } else {
                    let client = imp.transform_client.clone().expect("checked by the engine");
                    SubjectResult::Transformed(client.run(Net::Sim, addrs, tclient).await)
                };
                log_result(&rec, &r);
                *result.lock().expect("result lock") = (r, Some(rec.now()));
                finish(&done);
                Ok(())
            });
        }
        Role::Server | Role::TransformServer | Role::Proxy => {
            let imp = imp.clone();
            let role = case.role;
            let poem = s.poem.bytes();
            let pacing = s.num_bytes.map(|n| Pacing {
                num_bytes: n,
                delay: s.delay.map_or(Duration::ZERO, |d| d.0),
            });
            let xserver = TransformServer {
                max_payload: s.max_payload,
                idle_timeout: s.idle_timeout.0,
            };
            let proxy = PoetryProxy {
                upstream: server_addrs.first().cloned().unwrap_or_default(),
                client: client_config,
            };
            let rec = rec.clone();
            sim.host("subject", move || {
                let (imp, poem, proxy, rec) =
                    (imp.clone(), poem.clone(), proxy.clone(), rec.clone());
                async move {
                    let listener = Net::Sim.bind(&format!("0.0.0.0:{PORT}")).await?;
                    let r = match role {
                        Role::Server => {
                            let server = imp.server.clone().expect("checked by the engine");
                            server.serve(Net::Sim, listener, poem, pacing).await
                        }
                        Role::TransformServer => {
                            let server =
                                imp.transform_server.clone().expect("checked by the engine");
                            server.serve(Net::Sim, listener, xserver).await
                        }
                        _ => {
                            let server = imp.proxy.clone().expect("checked by the engine");
                            server.serve(Net::Sim, listener, proxy).await
                        }
                    };
                    rec.log("subject", format!("stopped serving: {r:?}"));
                    Ok(())
                }
            });
        }
    }
    for (base, spec) in case.client_names().iter().zip(&case.clients) {
        for k in 0..spec.count {
            actors += 1;
            let name = if spec.count == 1 {
                base.clone()
            } else {
                format!("{base}-{}", k + 1)
            };
            let start = spec.start.0 + spec.stagger.0 * k as u32;
            let (spec, rec, seen, done) = (spec.clone(), rec.clone(), seen.clone(), done.clone());
            let host = name.clone();
            // A host, not a turmoil client: a client host stops running when
            // its future ends, and then answers nothing, where a real
            // kernel answers data for a closed socket with RST.
            sim.host(host.as_str(), move || {
                let (name, spec, rec, seen, done) = (
                    name.clone(),
                    spec.clone(),
                    rec.clone(),
                    seen.clone(),
                    done.clone(),
                );
                async move {
                    peers::client::run(Net::Sim, name, spec, addr("subject"), start, rec, seen)
                        .await;
                    finish(&done);
                    std::future::pending::<()>().await;
                    Ok(())
                }
            });
        }
    }
    // Blackholed servers: the link to them holds every message.
    for (name, spec) in server_names.iter().zip(&case.servers) {
        if spec.blackhole {
            sim.hold("subject", name.as_str());
        }
    }

    // The harness host: waits for the actors, settles, counts leaks.
    {
        let (rec, leaks, done, finished) =
            (rec.clone(), leaks.clone(), done.clone(), finished.clone());
        sim.client("harness", async move {
            while done.0.load(Ordering::SeqCst) < actors {
                let notified = done.1.notified();
                if done.0.load(Ordering::SeqCst) >= actors {
                    break;
                }
                notified.await;
            }
            *finished.lock().expect("finished lock") = Some(rec.now());
            tokio::time::sleep(SETTLE).await;
            let open = turmoil::established_tcp_stream_count_on("subject");
            rec.log(
                "harness",
                format!("{open} connection(s) of the subject still open"),
            );
            *leaks.lock().expect("leaks lock") = Some(open);
            Ok(())
        });
    }

    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run()));
    let elapsed = sim.elapsed();
    let end = match run {
        Ok(Ok(())) => RunEnd::Finished(
            finished
                .lock()
                .expect("finished lock")
                .unwrap_or(elapsed.saturating_sub(SETTLE)),
        ),
        Ok(Err(e)) if e.to_string().contains("Ran for duration") => RunEnd::TimedOut(case.limit.0),
        Ok(Err(e)) => RunEnd::Crashed(e.to_string()),
        Err(panic) => RunEnd::Crashed(panic_message(&panic)),
    };
    drop(sim);
    let (result, subject_done) = std::mem::take(&mut *result.lock().expect("result lock"));
    let seen = std::mem::take(&mut *seen.lock().expect("observations lock"));
    let leaks = *leaks.lock().expect("leaks lock");
    RunOutcome {
        end,
        result,
        subject_done,
        seen,
        leaks,
        transcript: Transcript {
            events: rec.events(),
            untimed: false,
            origin: Duration::ZERO,
        },
        seed: opts.seed,
        tick,
        exit_status: None,
        stray_output: None,
        timed_from: Duration::ZERO,
        startup: None,
        tolerance: None,
    }
}

fn log_result(rec: &Recorder, r: &SubjectResult) {
    use crate::transcript::preview;
    match r {
        SubjectResult::Serving => {}
        SubjectResult::Poems(results) => {
            for (i, r) in results.iter().enumerate() {
                match r {
                    Ok(p) => rec.log("subject", format!("result {}: poem {}", i + 1, preview(p))),
                    Err(e) => rec.log("subject", format!("result {}: failed: {e}", i + 1)),
                }
            }
        }
        SubjectResult::Transformed(results) => {
            for (i, r) in results.iter().enumerate() {
                match r {
                    crate::reference::Transformed::Poem(p) => rec.log(
                        "subject",
                        format!("result {}: transformed {}", i + 1, preview(p.as_bytes())),
                    ),
                    crate::reference::Transformed::Fallback { original, failure } => rec.log(
                        "subject",
                        format!(
                            "result {}: original {} ({failure})",
                            i + 1,
                            preview(original)
                        ),
                    ),
                    crate::reference::Transformed::DownloadFailed(e) => {
                        rec.log("subject", format!("result {}: download failed: {e}", i + 1))
                    }
                }
            }
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let msg = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    format!("panicked: {msg}")
}

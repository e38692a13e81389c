//! One catalog case on [`Sim`]: the sim backend's hosts, peers, recorder
//! and leak count, on turmoil-net's TCP (`run --engine simnet`).
//!
//! The same shape as [`crate::backend::sim::run`]: the subject, the server
//! peers (`s1`, ...), the client peers (`c1`, ...), `xform` and `harness`
//! are hosts; every link has the case's latency; blackholed servers sit
//! behind a held link. Every task gets [`Net::Simnet`] with its own host,
//! so a socket the subject makes in a task of its own lands on the
//! subject. The recorder's clock is [`super::now`] (through
//! [`crate::transcript::Recorder::now`]). The leak count is the subject's
//! TCP sockets in `ESTABLISHED` or `CLOSE_WAIT` (open on the subject's
//! side) in turmoil-net's netstat, [`SETTLE`] after the last actor.
//! Every host's sockets at the end of the run (the same netstat, host by
//! host) go into [`RunOutcome::sockets`]: a failing transcript ends with
//! them (see [`crate::engine`]).
//!
//! Differences from turmoil, by design: `connect` completes on the
//! handshake, so a connection is up one round trip later; bytes, not
//! writes, cross the network, with flow control (windows scaled, buffers
//! growing as on Linux: see [`super`]); data reaching a socket its
//! program closed is answered with a RST, so the sender learns the
//! client left (and its connection leaves the netstat the leak count
//! reads) where turmoil's host simply vanishes; a subject's panic in a
//! task it spawned itself is tokio's (the task ends) rather than the
//! run's.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Notify;

use super::Sim;
use crate::backend::sim::{
    addr, log_result, panic_message, stopped_serving, tick_for, RunOptions, SETTLE,
};
use crate::backend::{RunEnd, RunOutcome, SubjectResult};
use crate::case::{Case, Role};
use crate::net::Net;
use crate::peers::{self, Observations, Recorder, PORT};
use crate::reference::{ClientConfig, Pacing, PoetryProxy, TransformClient, TransformServer};
use crate::roles::Implementation;
use crate::transcript::Transcript;

/// The listen backlog of every host, as turmoil's `tcp_capacity` in the
/// sim backend: large enough for the "many connections" cases. A case's
/// `net.backlog` replaces it on the subject (see [`crate::case::net`]).
const BACKLOG: usize = 4096;

/// The tick a simnet outcome reports: none (time is event-driven), but
/// not zero, which reports and verdicts read as a live run.
const NO_TICK: Duration = Duration::from_nanos(1);

/// Shared state of one run, on the simulation's one thread.
#[derive(Default)]
struct Ends {
    /// Actors finished.
    done: Cell<usize>,
    /// A task's panic, which ends the run.
    crashed: RefCell<Option<String>>,
    /// Rung on either.
    bell: Notify,
}

/// Runs one case against one implementation on [`Sim`].
pub fn run_case(case: &Case, imp: &Implementation, opts: RunOptions) -> RunOutcome {
    let rec = Recorder::new();
    let seen: peers::Shared = Arc::new(Mutex::new(Observations::default()));
    let result: Arc<Mutex<(SubjectResult, Option<Duration>)>> = Arc::default();
    let leaks: Arc<Mutex<Option<usize>>> = Arc::default();
    let finished: Arc<Mutex<Option<Duration>>> = Arc::default();
    let ends = Rc::new(Ends::default());

    let kernel = super::KernelConfig {
        default_backlog: BACKLOG,
        ..super::KernelConfig::default()
    };
    let mut sim = Sim::builder()
        .latency(case.net.latency.0)
        .seed(opts.seed())
        .limit(case.limit.0 + SETTLE + tick_for(case))
        .kernel(kernel.clone())
        .socket_dump(true)
        .build();

    // Every host first, so that every name resolves from the start.
    let server_names = case.server_names();
    let server_addrs: Vec<String> = server_names.iter().map(|n| addr(n)).collect();
    let server_hosts: Vec<_> = server_names.iter().map(|n| sim.add_host(n)).collect();
    let xform_host = case
        .xform
        .as_ref()
        .map(|_| sim.add_host(peers::transform_server::NAME));
    // The subject's listen backlog: the case's, else the default.
    let subject = sim.add_host_with_config(
        "subject",
        super::KernelConfig {
            default_backlog: case.net.backlog.unwrap_or(BACKLOG),
            ..kernel.clone()
        },
    );
    let mut clients = Vec::new();
    // Every peer host by name, with the base name its faults are under.
    let mut peer_links: Vec<(String, String)> = server_names
        .iter()
        .map(|n| (n.clone(), n.clone()))
        .chain(xform_host.map(|_| {
            let n = peers::transform_server::NAME.to_string();
            (n.clone(), n)
        }))
        .collect();
    for (base, spec) in case.client_names().iter().zip(&case.clients) {
        for k in 0..spec.count {
            let name = if spec.count == 1 {
                base.clone()
            } else {
                format!("{base}-{}", k + 1)
            };
            let start = spec.start.0 + spec.stagger.0 * k as u32;
            let host = sim.add_host(&name);
            peer_links.push((name.clone(), base.clone()));
            clients.push((host, name, spec.clone(), start));
        }
    }
    let harness = sim.add_host("harness");
    // A network profile (`--network`): on every link of the subject, both
    // ways; then the case's own faults (see `crate::case::net`), which
    // replace it on the links and directions they name.
    if let Some(faults) = opts.network().and_then(|n| super::Faults::profile(n).ok()) {
        for (peer, _) in &peer_links {
            let _ = sim.faults("subject", peer, faults);
            let _ = sim.faults(peer, "subject", faults);
        }
    }
    let mut bad_faults = None;
    for (peer, base) in &peer_links {
        let Some(spec) = case.net.faults_for(base) else {
            continue;
        };
        match spec.faults() {
            Ok(faults) => {
                use crate::case::FaultDirection;
                if spec.direction != FaultDirection::FromSubject {
                    let _ = sim.faults(peer, "subject", faults);
                }
                if spec.direction != FaultDirection::ToSubject {
                    let _ = sim.faults("subject", peer, faults);
                }
            }
            // A case the catalog did not check (built in code).
            Err((field, why)) => {
                bad_faults
                    .get_or_insert(format!("the case's net faults for {peer}: {field}: {why}"));
            }
        }
    }
    // Blackholed servers: the link to them holds every packet.
    for (name, spec) in server_names.iter().zip(&case.servers) {
        if spec.blackhole {
            sim.hold("subject", name);
        }
    }

    for (i, ((name, spec), host)) in server_names
        .iter()
        .zip(&case.servers)
        .zip(&server_hosts)
        .enumerate()
    {
        let (name, spec, rec, seen) = (name.clone(), spec.clone(), rec.clone(), seen.clone());
        let seed = opts.seed().wrapping_add(i as u64 + 1);
        let perturb = opts.perturbed_chunking();
        let net = Net::Simnet(*host);
        let fut = async move {
            let bind = format!("0.0.0.0:{PORT}");
            let _ =
                peers::poetry_server::run(net, name, spec, bind, seed, perturb, rec, seen).await;
        };
        sim.spawn_daemon(*host, guarded(&ends, fut));
    }
    if let (Some(x), Some(host)) = (&case.xform, xform_host) {
        let (x, rec, seen) = (x.clone(), rec.clone(), seen.clone());
        let fut = async move {
            let bind = format!("0.0.0.0:{PORT}");
            let _ = peers::transform_server::run(Net::Simnet(host), x, bind, rec, seen).await;
        };
        sim.spawn_daemon(host, guarded(&ends, fut));
    }

    let mut actors = 0usize;
    let s = &case.subject;
    let client_config = ClientConfig {
        connect_timeout: s.connect_timeout.0,
        idle_timeout: s.idle_timeout.0,
    };
    let net = Net::Simnet(subject);
    match case.role {
        Role::Client | Role::TransformClient => {
            actors += 1;
            let (imp, rec, result, ends2) =
                (imp.clone(), rec.clone(), result.clone(), ends.clone());
            let addrs = server_addrs.clone();
            let role = case.role;
            let tclient = TransformClient {
                xform_addr: addr(peers::transform_server::NAME),
                transform: s.transform.clone(),
                client: client_config,
                transform_timeout: s.transform_timeout.0,
            };
            let fut = async move {
                rec.log("subject", format!("start with {}", addrs.join(" ")));
                let r = if role == Role::Client {
                    let client = imp.client.clone().expect("checked by the engine");
                    SubjectResult::Poems(client.get_poems(net, addrs, client_config).await)
                } else {
                    let client = imp.transform_client.clone().expect("checked by the engine");
                    SubjectResult::Transformed(client.run(net, addrs, tclient).await)
                };
                log_result(&rec, &r);
                *result.lock().expect("result lock") = (r, Some(rec.now()));
                finish(&ends2);
            };
            sim.spawn_daemon(subject, guarded(&ends, fut));
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
            let fut = async move {
                let listener = match net.bind(&format!("0.0.0.0:{PORT}")).await {
                    Ok(l) => l,
                    Err(e) => {
                        rec.log("subject", format!("could not listen: {e}"));
                        return;
                    }
                };
                let r = match role {
                    Role::Server => {
                        let server = imp.server.clone().expect("checked by the engine");
                        server.serve(net, listener, poem, pacing).await
                    }
                    Role::TransformServer => {
                        let server = imp.transform_server.clone().expect("checked by the engine");
                        server.serve(net, listener, xserver).await
                    }
                    _ => {
                        let server = imp.proxy.clone().expect("checked by the engine");
                        server.serve(net, listener, proxy).await
                    }
                };
                rec.log("subject", stopped_serving(&r));
            };
            sim.spawn_daemon(subject, guarded(&ends, fut));
        }
    }
    for (host, name, spec, start) in clients {
        actors += 1;
        let (rec, seen, ends2) = (rec.clone(), seen.clone(), ends.clone());
        let fut = async move {
            let net = Net::Simnet(host);
            peers::client::run(net, name, spec, addr("subject"), start, rec, seen).await;
            finish(&ends2);
        };
        sim.spawn_daemon(host, guarded(&ends, fut));
    }

    // The harness: waits for the actors (or a panic), settles, counts
    // the subject's open connections. The only task the run waits for.
    {
        let (rec, leaks, finished, ends) =
            (rec.clone(), leaks.clone(), finished.clone(), ends.clone());
        sim.spawn(harness, async move {
            while ends.done.get() < actors && ends.crashed.borrow().is_none() {
                ends.bell.notified().await;
            }
            if ends.crashed.borrow().is_some() {
                return;
            }
            *finished.lock().expect("finished lock") = Some(rec.now());
            tokio::time::sleep(SETTLE).await;
            let open = open_connections("subject");
            rec.log(
                "harness",
                format!("{open} connection(s) of the subject still open"),
            );
            *leaks.lock().expect("leaks lock") = Some(open);
        });
    }

    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run()));
    let sockets = run
        .as_ref()
        .ok()
        .map(|report| super::render_sockets(&report.sockets));
    let crashed = ends.crashed.borrow_mut().take().or(bad_faults);
    let end = match (run, crashed) {
        (_, Some(why)) => RunEnd::Crashed(why),
        (Err(panic), None) => RunEnd::Crashed(panic_message(&panic)),
        (Ok(report), None) if report.timed_out => RunEnd::TimedOut(case.limit.0),
        (Ok(report), None) => RunEnd::Finished(
            finished
                .lock()
                .expect("finished lock")
                .unwrap_or(report.end.saturating_sub(SETTLE)),
        ),
    };
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
        seed: opts.seed(),
        // `replay --engine simnet` (with the same seed and network
        // profile) repeats this run byte for byte.
        replay: crate::replay::Replay::of(case, imp, opts),
        tick: NO_TICK,
        exit_status: None,
        stray_output: None,
        timed_from: Duration::ZERO,
        startup: None,
        tolerance: None,
        sockets,
    }
}

fn finish(ends: &Ends) {
    ends.done.set(ends.done.get() + 1);
    ends.bell.notify_waiters();
}

/// `host`'s TCP connections still open on its side: `ESTABLISHED` (in
/// use, or accepted by the kernel and never taken) or `CLOSE_WAIT` (the
/// peer closed, this side not). A socket this side closed is in a FIN
/// state or gone, as it would be in a real netstat.
fn open_connections(host: &str) -> usize {
    use turmoil_net::{NetstatState, Proto};
    turmoil_net::netstat(host)
        .entries
        .iter()
        .filter(|e| e.proto == Proto::Tcp)
        .filter(|e| {
            matches!(
                e.state,
                Some(NetstatState::Established | NetstatState::CloseWait)
            )
        })
        .count()
}

/// `fut`, whose panic ends the run as a crash (as a panicking turmoil
/// host does) instead of silently ending the task.
fn guarded(ends: &Rc<Ends>, fut: impl Future<Output = ()> + 'static) -> impl Future<Output = ()> {
    let ends = ends.clone();
    CatchPanic {
        inner: Box::pin(fut),
        on_panic: move |why: String| {
            ends.crashed.borrow_mut().get_or_insert(why);
            ends.bell.notify_waiters();
        },
    }
}

struct CatchPanic<F> {
    inner: Pin<Box<dyn Future<Output = ()>>>,
    on_panic: F,
}

impl<F: Fn(String) + Unpin> Future for CatchPanic<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &mut self.inner;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(p) => p,
            Err(panic) => {
                (self.on_panic)(panic_message(&panic));
                Poll::Ready(())
            }
        }
    }
}

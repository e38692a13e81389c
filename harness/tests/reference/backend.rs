//! "The same body against two backends": a [`Scenario`] names its servers,
//! then runs one client body against them on real loopback sockets
//! ([`Backend::Real`]) or inside turmoil ([`Backend::Sim`]).
//!
//! Bodies get a [`Ctx`]: the [`Net`] to use, each server's address, and the
//! simulator-only observations ([`Ctx::sim_now`], [`Ctx::connections_on`]),
//! which are `None` on real sockets. Timing assertions are made on
//! simulated time only; on real sockets the only clock is the bound that
//! stops a hung test.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use poetry_harness::net::{Net, TcpListener};
use poetry_harness::reference::LINGER;

/// The promptness bound P of the spec (`suites/SPEC.md`, Terms).
pub const P: Duration = Duration::from_secs(1);

/// What a test body returns; a failed assertion panics instead.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A server's future, boxed so scenarios can hold different ones.
type ServerFuture = Pin<Box<dyn Future<Output = io::Result<()>>>>;

/// Builds a server's future from its listener; called again if turmoil
/// restarts the host.
type ServerFn = Rc<dyn Fn(Ctx, TcpListener) -> ServerFuture>;

/// Where a test body runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// turmoil: one host per server, the body in a client host.
    Sim,
    /// Real sockets on 127.0.0.1, one current-thread tokio runtime.
    Real,
}

/// The simulated network of a scenario. Latency is fixed (min = max) and a
/// multiple of the tick, so that simulated times are exact.
#[derive(Debug, Clone, Copy)]
pub struct SimTiming {
    /// Simulated time per step.
    pub tick: Duration,
    /// One-way latency of every message.
    pub latency: Duration,
    /// The simulation fails if the body has not finished by then.
    pub duration: Duration,
}

impl Default for SimTiming {
    fn default() -> Self {
        SimTiming {
            tick: Duration::from_millis(1),
            latency: Duration::from_millis(10),
            // Long enough for the slowest default timeout (30 s idle) plus
            // a linger, short enough that a hung case fails fast.
            duration: Duration::from_secs(120),
        }
    }
}

/// Fixed so every simulated run is the same run.
const RNG_SEED: u64 = 15;

/// The port every simulated server listens on (each host has its own IP).
const SIM_PORT: u16 = 10000;

/// The turmoil host that runs the test body.
pub const CLIENT: &str = "client";

/// A real-socket body that takes longer than this has hung. No timeout the
/// reference code waits on in these tests comes near it, but the 30 s
/// defaults exceed it, so a body that silently waits for one fails.
const REAL_LIMIT: Duration = Duration::from_secs(20);

/// What a test body (and a server) knows about its world.
#[derive(Clone)]
pub struct Ctx {
    /// The network to use.
    pub net: Net,
    addrs: Arc<HashMap<&'static str, String>>,
}

impl Ctx {
    /// The address of the server called `name` (`host:port`).
    pub fn addr(&self, name: &str) -> String {
        self.addrs
            .get(name)
            .unwrap_or_else(|| panic!("no server called {name} in this scenario"))
            .clone()
    }

    /// Simulated time since the simulation started; `None` on real sockets.
    pub fn sim_now(&self) -> Option<Duration> {
        turmoil::sim_elapsed()
    }

    /// Established TCP streams on the simulated host `name`; `None` on real
    /// sockets.
    pub fn connections_on(&self, name: &str) -> Option<usize> {
        match self.net {
            Net::Sim => Some(turmoil::established_tcp_stream_count_on(name)),
            Net::Tokio | Net::Simnet(_) => None,
        }
    }

    /// In the simulator: waits until every server's linger time has passed
    /// (simulated, so free), then asserts that no connection is left on
    /// `hosts`. On real sockets the OS does not tell, so this does nothing.
    pub async fn assert_no_connections(&self, hosts: &[&str]) {
        if self.net != Net::Sim {
            return;
        }
        tokio::time::sleep(LINGER + P).await;
        for host in hosts {
            assert_eq!(
                self.connections_on(host),
                Some(0),
                "connections still established on {host}"
            );
        }
    }
}

/// Servers by name, then one body run against them.
#[derive(Default)]
pub struct Scenario {
    servers: Vec<(&'static str, Option<ServerFn>)>,
    timing: SimTiming,
}

impl Scenario {
    /// An empty scenario with the default [`SimTiming`].
    pub fn new() -> Self {
        Scenario::default()
    }

    /// Adds a server: `serve` gets the listener and runs until the test ends.
    pub fn server<F, Fut>(mut self, name: &'static str, serve: F) -> Self
    where
        F: Fn(Ctx, TcpListener) -> Fut + 'static,
        Fut: Future<Output = io::Result<()>> + 'static,
    {
        let serve: ServerFn = Rc::new(move |cx, listener| Box::pin(serve(cx, listener)));
        self.servers.push((name, Some(serve)));
        self
    }

    /// Adds an address where nothing listens: connecting to it is refused.
    pub fn refusing(mut self, name: &'static str) -> Self {
        self.servers.push((name, None));
        self
    }

    /// Replaces the simulated network's timing.
    pub fn timing(mut self, timing: SimTiming) -> Self {
        self.timing = timing;
        self
    }

    /// Runs `body` against the servers on `backend`.
    pub fn run<F, Fut>(self, backend: Backend, body: F)
    where
        F: FnOnce(Ctx) -> Fut + 'static,
        Fut: Future<Output = TestResult> + 'static,
    {
        match backend {
            Backend::Sim => self.run_sim(body),
            Backend::Real => self.run_real(body),
        }
    }

    fn run_sim<F, Fut>(self, body: F)
    where
        F: FnOnce(Ctx) -> Fut + 'static,
        Fut: Future<Output = TestResult> + 'static,
    {
        let t = self.timing;
        let mut sim = turmoil::Builder::new()
            .rng_seed(RNG_SEED)
            .tick_duration(t.tick)
            .min_message_latency(t.latency)
            .max_message_latency(t.latency)
            .simulation_duration(t.duration)
            .build();
        let addrs: HashMap<_, _> = self
            .servers
            .iter()
            .map(|(name, _)| (*name, format!("{name}:{SIM_PORT}")))
            .collect();
        let cx = Ctx {
            net: Net::Sim,
            addrs: Arc::new(addrs),
        };
        for (name, serve) in self.servers {
            let cx = cx.clone();
            match serve {
                Some(serve) => sim.host(name, move || {
                    let (serve, cx) = (Rc::clone(&serve), cx.clone());
                    async move {
                        let listener = Net::Sim.bind(&format!("0.0.0.0:{SIM_PORT}")).await?;
                        serve(cx, listener).await?;
                        Ok(())
                    }
                }),
                // A host that never binds: its port refuses connections. It
                // must keep running, or turmoil stops delivering to it.
                None => sim.host(name, std::future::pending),
            }
        }
        sim.client(CLIENT, body(cx));
        sim.run().expect("simulation failed");
    }

    fn run_real<F, Fut>(self, body: F)
    where
        F: FnOnce(Ctx) -> Fut + 'static,
        Fut: Future<Output = TestResult> + 'static,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            // Bind everything first: every address is known before any
            // server or the body starts.
            let mut addrs = HashMap::new();
            let mut listeners = Vec::new();
            for (name, serve) in self.servers {
                let listener = Net::Tokio.bind("127.0.0.1:0").await.expect("bind");
                addrs.insert(name, listener.local_addr().expect("local addr").to_string());
                match serve {
                    Some(serve) => listeners.push((name, serve, listener)),
                    // Closed before anyone connects: the port refuses.
                    None => drop(listener),
                }
            }
            let cx = Ctx {
                net: Net::Tokio,
                addrs: Arc::new(addrs),
            };
            let servers: Vec<_> = listeners
                .into_iter()
                .map(|(name, serve, listener)| {
                    (name, tokio::task::spawn_local(serve(cx.clone(), listener)))
                })
                .collect();
            match tokio::time::timeout(REAL_LIMIT, body(cx)).await {
                Err(_) => panic!("test body still running after {REAL_LIMIT:?}"),
                Ok(result) => result.expect("test body failed"),
            }
            for (name, server) in servers {
                if server.is_finished() {
                    match server.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => panic!("server {name} failed: {e}"),
                        Err(e) => panic!("server {name} panicked: {e}"),
                    }
                }
            }
        });
        // Dropping the runtime cancels the servers and closes their sockets.
    }
}

/// `Some(now - start)` in the simulator.
pub fn since(cx: &Ctx, start: Option<Duration>) -> Option<Duration> {
    Some(cx.sim_now()? - start?)
}

//! The event-driven scheduler: hosts' tasks on one paused tokio runtime,
//! packets held for the link latency, time jumping from event to event.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use indexmap::IndexMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::task::{JoinHandle, LocalSet};
use tokio::time::Instant;
use turmoil_net::{EnterGuard, HostId, KernelConfig, Net, Packet, Transport};

use super::faults::{Direction, Faults};

thread_local! {
    /// The running simulation's state, for the free functions ([`now`],
    /// [`spawn`], [`trace`]) that tasks call.
    static RUNNING: RefCell<Option<Running>> = const { RefCell::new(None) };
    /// The host whose task is being polled.
    static CURRENT_HOST: Cell<Option<HostId>> = const { Cell::new(None) };
    /// The simulated time, once read since the runtime last parked (see
    /// [`elapsed`]).
    static ELAPSED: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// Simulated time since `start`, the running simulation's start. tokio's
/// paused clock only moves while the runtime parks (when nothing can run,
/// it jumps to the next timer), so it is read once after each park, not on
/// every socket call, task poll and pass: the runtime's `on_thread_unpark`
/// hook forgets the value ([`forget_elapsed`]). In a debug build every
/// value given is checked against the clock.
fn elapsed(start: Instant) -> Duration {
    let t = ELAPSED.with(|e| {
        e.get().unwrap_or_else(|| {
            let t = Instant::now() - start;
            e.set(Some(t));
            t
        })
    });
    debug_assert_eq!(
        t,
        Instant::now() - start,
        "the paused clock moved without a park"
    );
    t
}

/// Forgets the time [`elapsed`] read: the runtime parked (the clock may
/// have moved), or a run starts or ends.
fn forget_elapsed() {
    ELAPSED.with(|e| e.set(None));
}

/// What tasks reach through the free functions while a [`Sim`] runs.
struct Running {
    start: Instant,
    poke: Rc<Poke>,
    trace: Vec<String>,
}

/// The scheduler's doorbell, rung by every task poll and socket call:
/// there may be packets to collect before the scheduler may wait. A ring
/// while it waits wakes it (a task of the runtime's own queue, started
/// with `tokio::spawn`, runs while the scheduler waits).
#[derive(Default)]
struct Poke {
    rung: Cell<bool>,
    waiting: RefCell<Option<Waker>>,
}

impl Poke {
    fn ring(&self) {
        self.rung.set(true);
        if let Some(w) = self.waiting.borrow_mut().take() {
            w.wake();
        }
    }
}

/// Simulated time since the simulation started. Panics outside a
/// running [`Sim`].
pub fn now() -> Duration {
    RUNNING.with(|r| {
        let r = r.borrow();
        let r = r.as_ref().expect("simnet::now outside a running Sim");
        elapsed(r.start)
    })
}

/// Simulated time since the simulation started, or `None` outside a
/// running [`Sim`] (what a clock shared with other simulators asks).
pub fn try_now() -> Option<Duration> {
    RUNNING.with(|r| r.borrow().as_ref().map(|r| elapsed(r.start)))
}

/// Add `line` to the run's trace ([`Report::trace`]), stamped with the
/// simulated time. Panics outside a running [`Sim`].
pub fn trace(line: impl AsRef<str>) {
    let t = now();
    RUNNING.with(|r| {
        let mut r = r.borrow_mut();
        let r = r.as_mut().expect("simnet::trace outside a running Sim");
        r.trace.push(stamp(t, line.as_ref()));
    });
}

fn stamp(t: Duration, line: &str) -> String {
    format!("{:10.3} ms  {line}", t.as_secs_f64() * 1e3)
}

/// Spawn `fut` on the current task's host (what `tokio::spawn` is to a
/// program: its sockets belong to that host). Panics outside a task of a
/// running [`Sim`].
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let host = CURRENT_HOST
        .with(Cell::get)
        .expect("simnet::spawn outside a simulated host's task");
    tokio::task::spawn_local(host_scoped(host, fut))
}

fn host_scoped<F: Future>(host: HostId, fut: F) -> HostScoped<F> {
    HostScoped {
        host,
        inner: Box::pin(fut),
    }
}

/// A host's task. turmoil-net's sockets do not know their host: every
/// socket call goes to the thread's current host. So each poll (and the
/// drop, where sockets close) first pins this task's host and the
/// simulated time, and each poll ends by poking the scheduler, which
/// then collects what the task sent.
struct HostScoped<F: ?Sized> {
    host: HostId,
    inner: Pin<Box<F>>,
}

impl<F: Future + ?Sized> Future for HostScoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        enter_host(self.host);
        let out = self.inner.as_mut().poll(cx);
        CURRENT_HOST.with(|c| c.set(None));
        RUNNING.with(|r| {
            if let Some(r) = r.borrow().as_ref() {
                r.poke.ring();
            }
        });
        out
    }
}

impl<F: ?Sized> Drop for HostScoped<F> {
    fn drop(&mut self) {
        // After the run (daemons dropped with the runtime gone) the clock
        // is not the simulation's: keep the last time.
        if tokio::runtime::Handle::try_current().is_ok() {
            enter_host(self.host);
        } else {
            turmoil_net::set_current(self.host);
        }
    }
}

fn enter_host(host: HostId) {
    turmoil_net::set_current(host);
    RUNNING.with(|r| {
        if let Some(r) = r.borrow().as_ref() {
            turmoil_net::set_now(elapsed(r.start));
        }
    });
    CURRENT_HOST.with(|c| c.set(Some(host)));
}

/// Settings of a simulation. Build one with [`Sim::builder`].
#[derive(Debug, Clone)]
pub struct SimBuilder {
    latency: Duration,
    loss: f64,
    seed: u64,
    limit: Duration,
    trace_packets: bool,
    socket_dump: bool,
    kernel: KernelConfig,
}

impl Default for SimBuilder {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(50),
            loss: 0.0,
            seed: 0,
            limit: Duration::from_secs(60),
            trace_packets: false,
            socket_dump: false,
            kernel: KernelConfig::default(),
        }
    }
}

impl SimBuilder {
    /// One-way latency of every link between two hosts (default 50 ms,
    /// the sim backend's).
    pub fn latency(&mut self, latency: Duration) -> &mut Self {
        self.latency = latency;
        self
    }

    /// Probability, from 0 to 1, that a packet between two hosts is lost
    /// (default 0). Draws are seeded by [`SimBuilder::seed`].
    pub fn loss(&mut self, p: f64) -> &mut Self {
        self.loss = p;
        self
    }

    /// Seed of the loss draws (default 0).
    pub fn seed(&mut self, seed: u64) -> &mut Self {
        self.seed = seed;
        self
    }

    /// Simulated time after which the run stops, finished or not
    /// (default 60 s).
    pub fn limit(&mut self, limit: Duration) -> &mut Self {
        self.limit = limit;
        self
    }

    /// Record every packet sent, delivered or lost in the trace (default
    /// off: it costs a line per packet).
    pub fn trace_packets(&mut self, on: bool) -> &mut Self {
        self.trace_packets = on;
        self
    }

    /// Take every host's sockets at the end of the run, before the tasks
    /// still running are dropped, into [`Report::sockets`] (default off).
    pub fn socket_dump(&mut self, on: bool) -> &mut Self {
        self.socket_dump = on;
        self
    }

    /// Kernel settings of hosts added with [`Sim::add_host`] (buffer
    /// sizes, default backlog, retransmission timers).
    pub fn kernel(&mut self, cfg: KernelConfig) -> &mut Self {
        self.kernel = cfg;
        self
    }

    /// A simulation with these settings and no hosts. Panics if the loss
    /// is not a probability.
    pub fn build(&self) -> Sim {
        assert!(
            (0.0..=1.0).contains(&self.loss),
            "loss {} is not a probability",
            self.loss
        );
        Sim {
            net: Net::with_config(self.kernel.clone()),
            cfg: self.clone(),
            names: IndexMap::new(),
            tasks: Vec::new(),
            held: Vec::new(),
            faults: BTreeMap::new(),
        }
    }
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// A simulation: hosts, their tasks, the network between them.
pub struct Sim {
    net: Net,
    cfg: SimBuilder,
    /// Host names by address, for the packet trace.
    names: IndexMap<IpAddr, String>,
    /// (host, awaited, task), in the order spawned.
    tasks: Vec<(HostId, bool, Task)>,
    /// Pairs of hosts whose link holds every packet, both ways.
    held: Vec<(IpAddr, IpAddr)>,
    /// Faults by direction (from, to).
    faults: BTreeMap<(IpAddr, IpAddr), Faults>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("cfg", &self.cfg)
            .field("hosts", &self.names.values().collect::<Vec<_>>())
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

/// How a run went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Simulated time when the last awaited task finished, or the limit.
    pub end: Duration,
    /// The limit passed before every awaited task finished.
    pub timed_out: bool,
    /// Lines from [`trace`] (and packets, if traced), in order, stamped.
    pub trace: Vec<String>,
    /// Packets sent between hosts (loopback not counted).
    pub packets: u64,
    /// Of those, lost on the way.
    pub lost: u64,
    /// Of those, delivered twice ([`Faults::duplicate`]).
    pub duplicated: u64,
    /// Times the scheduler waited for a timer, a delivery or a task (a
    /// measure of its own cost).
    pub wakes: u64,
    /// With [`SimBuilder::socket_dump`]: every socket of every host at the
    /// end of the run, host by host in the order they were added, each
    /// host's in its socket table's order.
    pub sockets: Vec<SocketRow>,
}

/// One socket at the end of a run, as netstat shows it, addresses by
/// host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketRow {
    /// The host that holds it.
    pub host: String,
    /// `tcp` or `udp`.
    pub proto: String,
    /// Bytes received, not yet read by the program (a listener: the
    /// connections waiting for `accept`).
    pub recv_q: usize,
    /// Bytes written, not yet acknowledged by the peer (a listener: its
    /// backlog).
    pub send_q: usize,
    /// `host:port` of this end.
    pub local: String,
    /// `host:port` of the other end, `*:*` for none.
    pub peer: String,
    /// The TCP state (`ESTABLISHED`, `FIN_WAIT2`, ...), empty for UDP.
    pub state: String,
}

/// `rows` as a table with a header, columns aligned (Recv-Q and Send-Q
/// to the right, as netstat), one line each, no trailing spaces.
pub fn render_sockets(rows: &[SocketRow]) -> Vec<String> {
    let header = [
        "Host", "Proto", "Recv-Q", "Send-Q", "Local", "Foreign", "State",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.host.clone(),
                r.proto.clone(),
                r.recv_q.to_string(),
                r.send_q.to_string(),
                r.local.clone(),
                r.peer.clone(),
                r.state.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    std::iter::once(header.map(String::from))
        .chain(cells)
        .map(|row| {
            let line: Vec<String> = row
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if matches!(i, 2 | 3) {
                        format!("{c:>w$}")
                    } else {
                        format!("{c:<w$}")
                    }
                })
                .collect();
            line.join(" ").trim_end().to_string()
        })
        .collect()
}

/// Every socket of every host named in `names`, by host name.
fn snapshot_sockets(names: &IndexMap<IpAddr, String>) -> Vec<SocketRow> {
    let name = |a: std::net::SocketAddr| {
        let host = names
            .get(&a.ip())
            .cloned()
            .unwrap_or_else(|| a.ip().to_string());
        format!("{host}:{}", a.port())
    };
    let mut rows = Vec::new();
    for (ip, host) in names {
        for e in turmoil_net::netstat(*ip).entries {
            rows.push(SocketRow {
                host: host.clone(),
                proto: e.proto.to_string(),
                recv_q: e.recv_q,
                send_q: e.send_q,
                // A wildcard bind (a listener on 0.0.0.0) is the host's.
                local: if e.local.ip().is_unspecified() {
                    format!("{host}:{}", e.local.port())
                } else {
                    name(e.local)
                },
                peer: e.peer.map_or_else(|| "*:*".to_string(), name),
                state: e.state.map(|s| s.to_string()).unwrap_or_default(),
            });
        }
    }
    rows
}

impl Sim {
    /// Settings, starting from the defaults.
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }

    /// Add a host named `name` (resolvable by that name from every host).
    pub fn add_host(&mut self, name: &str) -> HostId {
        let cfg = self.cfg.kernel.clone();
        self.add_host_with_config(name, cfg)
    }

    /// Add a host with its own kernel settings.
    pub fn add_host_with_config(&mut self, name: &str, cfg: KernelConfig) -> HostId {
        let id = self.net.add_host_with_config(name, cfg);
        let ip = self.net.lookup(name);
        self.names.insert(ip, name.to_string());
        id
    }

    /// Hold every packet between hosts `a` and `b`, both ways, for the
    /// whole run (a blackholed server: a SYN is never answered, and is
    /// resent until `connect` times out). Panics if a name is not a host.
    pub fn hold(&mut self, a: &str, b: &str) {
        let (a, b) = (self.net.lookup(a), self.net.lookup(b));
        self.held.push((a, b));
    }

    /// Faults on the packets from host `from` to host `to` (one direction;
    /// call again the other way for both), replacing any set before for
    /// that direction: see [`Faults`] for what each does and in which
    /// order. An error if a probability is not one; panics if a name is
    /// not a host.
    pub fn faults(&mut self, from: &str, to: &str, faults: Faults) -> Result<(), String> {
        faults.check()?;
        let (a, b) = (self.net.lookup(from), self.net.lookup(to));
        self.faults.insert((a, b), faults);
        Ok(())
    }

    /// Run `fut` on `host`; the run lasts until every such task is done.
    pub fn spawn(&mut self, host: HostId, fut: impl Future<Output = ()> + 'static) {
        self.tasks.push((host, true, Box::pin(fut)));
    }

    /// Run `fut` on `host` without waiting for it (a server).
    pub fn spawn_daemon(&mut self, host: HostId, fut: impl Future<Output = ()> + 'static) {
        self.tasks.push((host, false, Box::pin(fut)));
    }

    /// Run until every task from [`Sim::spawn`] is done or the limit
    /// passes. Panics if another simulation runs on this thread.
    pub fn run(self) -> Report {
        let Sim {
            mut net,
            cfg,
            names,
            tasks,
            held,
            faults,
        } = self;
        // Every socket call reads the simulated time and pokes the
        // scheduler, whichever task makes it (one started with plain
        // `tokio::task::spawn_local` too: its sockets know their host).
        let poke = Rc::new(Poke::default());
        let start: Rc<Cell<Option<Instant>>> = Rc::new(Cell::new(None));
        let last = Rc::new(Cell::new(Duration::ZERO));
        let clock_start = start.clone();
        let on_call_poke = poke.clone();
        net.set_driver(
            move || {
                // After the run (no runtime) the time stays where it was.
                if let (Some(s), Ok(_)) = (clock_start.get(), tokio::runtime::Handle::try_current())
                {
                    last.set(last.get().max(elapsed(s)));
                }
                last.get()
            },
            move || on_call_poke.ring(),
        );
        // Segmentation offload (64 KiB a packet) only where every packet
        // of an instant arrives together, one latency later: a host that
        // sends over a link with faults (any host, with the run's own
        // loss) sends one MSS a packet, so that each is dropped, delayed
        // or metered on its own.
        let one_mss_a_packet: Vec<IpAddr> = if cfg.loss > 0.0 {
            names.keys().copied().collect()
        } else {
            faults
                .iter()
                .filter(|(_, f)| **f != Faults::default())
                .map(|(&(from, _), _)| from)
                .collect()
        };
        for ip in one_mss_a_packet {
            net.set_segment_offload(ip, 0);
        }
        let guard = net.enter();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .on_thread_unpark(forget_elapsed)
            .build()
            .expect("a current-thread runtime builds");
        let local = LocalSet::new();
        // A panic out of the loop still ends this run: the next one on
        // this thread must find no simulation running, and no time read
        // ([`elapsed`]).
        struct Clear;
        impl Drop for Clear {
            fn drop(&mut self) {
                RUNNING.with(|r| r.borrow_mut().take());
                forget_elapsed();
            }
        }
        let clear = Clear;
        let links = Links {
            names: &names,
            held: &held,
            faults: faults
                .into_iter()
                .map(|(k, f)| (k, Direction::new(f)))
                .collect(),
        };
        let mut report = rt.block_on(drive(&guard, &cfg, links, &local, tasks, poke, start));
        if cfg.socket_dump {
            report.sockets = snapshot_sockets(&names);
        }
        // Tasks still alive (daemons) drop here, closing their sockets in
        // their own host's kernel, while the network is still installed.
        drop(local);
        drop(rt);
        drop(guard);
        let trace = RUNNING
            .with(|r| r.borrow_mut().take())
            .map(|r| r.trace)
            .unwrap_or_default();
        drop(clear);
        Report { trace, ..report }
    }
}

/// The hosts' names and the held links, for [`drive`].
struct Links<'a> {
    names: &'a IndexMap<IpAddr, String>,
    held: &'a [(IpAddr, IpAddr)],
    /// Faulty directions, with their state.
    faults: BTreeMap<(IpAddr, IpAddr), Direction>,
}

impl Links<'_> {
    fn holds(&self, pkt: &Packet) -> bool {
        self.held
            .iter()
            .any(|&(a, b)| (pkt.src, pkt.dst) == (a, b) || (pkt.src, pkt.dst) == (b, a))
    }
}

/// The scheduler's loop. Each step, at the current simulated time: a
/// pass ([`Network::pass`]), then one round of the hosts' ready tasks.
/// When a task ran (it pokes: it may have sent), the runtime's own tasks
/// (`tokio::spawn`) run next, then the next step. When none did, the
/// loop waits for the next delivery or TCP timer, or a task's own timer
/// (with nothing runnable, the paused clock jumps to the earliest of
/// them), or a poke from a task of the runtime ([`Poke::ring`]).
///
/// A step is one poll of the `LocalSet`'s `run_until` with the pass as
/// its future, so the pass runs inside the set's context (a task it
/// wakes joins the set's queue) and the round follows it. That is the
/// order of the loop it replaces, a future in the set that awaited a
/// `Notify` or its timer in a `select!` (every transcript, and the loss
/// cases on 900 seeds, byte for byte the same), without the cost of the
/// `Notify`, the `select!` and the second future on each wake (the
/// ten-minute case 9.6% fewer instructions, the catalog 4.6%).
async fn drive(
    guard: &EnterGuard,
    cfg: &SimBuilder,
    links: Links<'_>,
    local: &LocalSet,
    tasks: Vec<(HostId, bool, Task)>,
    poke: Rc<Poke>,
    start_cell: Rc<Cell<Option<Instant>>>,
) -> Report {
    let start = Instant::now();
    start_cell.set(Some(start));
    RUNNING.with(|r| {
        let mut r = r.borrow_mut();
        assert!(r.is_none(), "another Sim is running on this thread");
        *r = Some(Running {
            start,
            poke: poke.clone(),
            trace: Vec::new(),
        });
    });
    let awaited = tasks.iter().filter(|t| t.1).count();
    let done = Rc::new(Cell::new(0usize));
    for (host, wait, fut) in tasks {
        if wait {
            let done = done.clone();
            local.spawn_local(host_scoped(host, async move {
                fut.await;
                done.set(done.get() + 1);
            }));
        } else {
            local.spawn_local(host_scoped(host, fut));
        }
    }
    let mut net = Network {
        guard,
        cfg,
        links,
        start,
        rng: ChaCha8Rng::seed_from_u64(cfg.seed),
        pending: BTreeMap::new(),
        spare: Vec::new(),
        sent: 0,
        out: Vec::new(),
        report: Report::default(),
        done,
        awaited,
        next: start,
    };
    // One timer for the whole run, moved to each wait's deadline: a new
    // `Sleep` per wait registered and dropped a timer entry every time.
    let wake_at = tokio::time::sleep_until(start);
    tokio::pin!(wake_at);
    std::future::poll_fn(|cx| loop {
        poke.waiting.borrow_mut().take();
        poke.rung.set(false);
        let over = {
            let step = local.run_until(std::future::poll_fn(|_| {
                if net.pass() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }));
            tokio::pin!(step);
            step.poll(cx).is_ready()
        };
        if over {
            return Poll::Ready(());
        }
        if poke.rung.get() {
            // A task ran: the runtime's own tasks (woken by this step's
            // deliveries or tasks) run first, then the next step.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        net.report.wakes += 1;
        if wake_at.deadline() != net.next {
            wake_at.as_mut().reset(net.next);
        }
        // A task that its own timer wakes wakes the runtime through the
        // `LocalSet`, which `run_until` registered with `cx`.
        if wake_at.as_mut().poll(cx).is_pending() {
            *poke.waiting.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
    })
    .await;
    net.report
}

/// Emptied lists of packets kept for reuse, at most (see
/// [`Network::spare`]).
const SPARE_LISTS: usize = 8;

/// The network between the hosts, for [`drive`]: packets in flight and
/// what the run has counted.
struct Network<'a> {
    guard: &'a EnterGuard,
    cfg: &'a SimBuilder,
    links: Links<'a>,
    start: Instant,
    rng: ChaCha8Rng,
    /// Packets in flight by due time, then flow, then send order. Packets
    /// due at the same instant are delivered flow by flow, in the order of
    /// their addresses, not in the order they were sent: tasks woken at
    /// one instant run in an order tokio does not promise (a `watch`
    /// channel wakes its waiters through buckets drawn from tokio's own
    /// unseeded RNG), so the order in which they send must not reach the
    /// order in which their peers receive. Within a flow, send order.
    /// One entry per instant, its packets sorted when it falls due: a
    /// megabyte poem puts thousands of packets in flight, and a tree keyed
    /// by every packet cost more than the TCP itself.
    pending: BTreeMap<Duration, Vec<Queued>>,
    /// Emptied lists of [`Network::pending`], kept with their capacity
    /// for the next instants: each new instant's list grew from nothing
    /// (2% of the catalog's instructions, in a megabyte's bursts).
    spare: Vec<Vec<Queued>>,
    sent: u64,
    out: Vec<Packet>,
    report: Report,
    done: Rc<Cell<usize>>,
    awaited: usize,
    /// When the loop must next look, if no task runs before.
    next: Instant,
}

impl Network<'_> {
    /// At the current simulated time: deliver every packet that is due,
    /// drain every host's outbound packets (firing due TCP timers), and
    /// queue each for delivery after the latency (or lose it); repeat
    /// until nothing moves. True when the run is over (every awaited task
    /// done, or the limit reached); else sets [`Network::next`].
    fn pass(&mut self) -> bool {
        let cfg = self.cfg;
        let t = elapsed(self.start);
        let names = self.links.names;
        let name = |ip: &IpAddr| names.get(ip).cloned().unwrap_or_else(|| ip.to_string());
        loop {
            let mut moved = false;
            self.guard.set_now(t);
            while let Some(entry) = self.pending.first_entry() {
                if *entry.key() > t {
                    break;
                }
                let mut due = entry.remove();
                due.sort_unstable_by_key(|(flow, sent, _)| (*flow, *sent));
                for (_, _, pkt) in due.drain(..) {
                    if cfg.trace_packets {
                        push_trace(stamp(t, &format!("recv {}", describe(&pkt, &name))));
                    }
                    self.guard.deliver(pkt);
                    moved = true;
                }
                if self.spare.len() < SPARE_LISTS {
                    self.spare.push(due);
                }
            }
            self.guard.egress_all_at(t, &mut self.out);
            // Flow by flow (send order within each), as deliveries are:
            // fault draws follow this order, and the order in which
            // tasks woken at one instant sent is tokio's, not ours.
            self.out.sort_by_key(flow);
            for pkt in self.out.drain(..) {
                moved = true;
                self.report.packets += 1;
                // A held packet never arrives: dropped, it costs the same
                // (the sender resends into the same hold) and no memory.
                let held = self.links.holds(&pkt);
                let lost = held || (cfg.loss > 0.0 && self.rng.random_bool(cfg.loss));
                if cfg.trace_packets {
                    let what = if held {
                        "held"
                    } else if lost {
                        "lost"
                    } else {
                        "send"
                    };
                    push_trace(stamp(t, &format!("{what} {}", describe(&pkt, &name))));
                }
                if held {
                    continue;
                }
                if lost {
                    self.report.lost += 1;
                    continue;
                }
                let Some(dir) = self.links.faults.get_mut(&(pkt.src, pkt.dst)) else {
                    list_at(&mut self.pending, &mut self.spare, t + cfg.latency).push((
                        flow(&pkt),
                        self.sent,
                        pkt,
                    ));
                    self.sent += 1;
                    continue;
                };
                let arrivals = dir.arrivals(t, pkt.size(), cfg.latency, &mut self.rng);
                if arrivals.is_empty() {
                    self.report.lost += 1;
                    if cfg.trace_packets {
                        push_trace(stamp(t, &format!("lost {}", describe(&pkt, &name))));
                    }
                }
                self.report.duplicated += arrivals.len().saturating_sub(1) as u64;
                for at in arrivals {
                    list_at(&mut self.pending, &mut self.spare, at).push((
                        flow(&pkt),
                        self.sent,
                        pkt.clone(),
                    ));
                    self.sent += 1;
                }
            }
            if !moved {
                break;
            }
        }
        if self.done.get() == self.awaited && self.awaited > 0 {
            self.report.end = t;
            return true;
        }
        if t >= cfg.limit {
            self.report.end = t;
            self.report.timed_out = self.awaited > 0;
            return true;
        }
        let next = [
            self.pending.first_key_value().map(|(k, _)| *k),
            self.guard.next_deadline(),
            Some(cfg.limit),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("the limit is always there")
        .max(t + Duration::from_nanos(1));
        self.next = self.start + next;
        false
    }
}

/// The list of packets due at `at` in `pending`; a new instant's is a
/// spare list if there is one.
fn list_at<'p>(
    pending: &'p mut BTreeMap<Duration, Vec<Queued>>,
    spare: &mut Vec<Vec<Queued>>,
    at: Duration,
) -> &'p mut Vec<Queued> {
    pending
        .entry(at)
        .or_insert_with(|| spare.pop().unwrap_or_default())
}

/// A packet in flight: its flow, its send order, the packet.
type Queued = (Flow, u64, Packet);

/// A packet's flow: source and destination address and port.
type Flow = (IpAddr, u16, IpAddr, u16);

fn flow(pkt: &Packet) -> Flow {
    let (sport, dport) = match &pkt.payload {
        Transport::Tcp(s) => (s.src_port, s.dst_port),
        Transport::Udp(d) => (d.src_port, d.dst_port),
    };
    (pkt.src, sport, pkt.dst, dport)
}

fn push_trace(line: String) {
    RUNNING.with(|r| {
        if let Some(r) = r.borrow_mut().as_mut() {
            r.trace.push(line);
        }
    });
}

/// `c1:49152 > server:10000 [S.] seq=1 ack=2 win=65535 wscale=7 len=0`
/// (`wscale`: the window scale option of a SYN or SYN-ACK).
fn describe(pkt: &Packet, name: &impl Fn(&IpAddr) -> String) -> String {
    match &pkt.payload {
        Transport::Tcp(s) => {
            let f = &s.flags;
            let flags: String = [
                (f.syn, 'S'),
                (f.fin, 'F'),
                (f.rst, 'R'),
                (f.psh, 'P'),
                (f.ack, '.'),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, c)| *c)
            .collect();
            format!(
                "{}:{} > {}:{} [{flags}] seq={} ack={} win={}{} len={}",
                name(&pkt.src),
                s.src_port,
                name(&pkt.dst),
                s.dst_port,
                s.seq,
                s.ack,
                s.window,
                s.wscale.map(|w| format!(" wscale={w}")).unwrap_or_default(),
                s.payload.len()
            )
        }
        Transport::Udp(d) => format!(
            "{}:{} > {}:{} udp len={}",
            name(&pkt.src),
            d.src_port,
            name(&pkt.dst),
            d.dst_port,
            d.payload.len()
        ),
    }
}

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
//!
//! # Choosing the TCP model (issue 11 spike)
//!
//! Issue 11 asks for byte-accurate TCP (send and receive buffers in bytes,
//! a listen backlog, RST that discards unread data, `connect` completing on
//! the handshake, retransmission under loss) and event-driven time, either
//! on turmoil-net 0.1.0 driven by a scheduler of ours or by extending the
//! vendored turmoil. Measured on 2026-11-30 before any rewrite, on this
//! project's 2-core machine, in process CPU time.
//!
//! **Decision: move the sim backend onto turmoil-net, vendored at 0.1.0 and
//! patched, driven by our own event-driven scheduler; do not grow the
//! vendored turmoil.** turmoil-net already has the TCP the issue asks for
//! and leaves time to its caller, which is what event-driven time needs;
//! unpatched (retransmission off and a larger backlog, both settings)
//! and driven by a 100-line scheduler it ran 2,000 clients at once in
//! 0.15 s of CPU. The vendored turmoil would need both its TCP and
//! its time loop rewritten, which is most of the crate. turmoil-net still
//! needs patches (listed below) before it can carry our cases, and the
//! handshake moves case times by one round trip.
//!
//! ## Status: the default engine (since 2026-12-01)
//!
//! simnet is the simulator's default engine: `run`, `replay` and
//! `mutants` use it unless `--engine turmoil` (this module, turmoil
//! 0.7.2) is given; the catalog's snapshots are simnet's, and replay
//! commands name `--engine turmoil` for a turmoil run. It was wired
//! behind `--engine simnet` first (2026-11-30). simnet runs every
//! catalog case on [`super::simnet`]: [`super::simnet::run_case`] builds
//! the same hosts as [`run`] (subject, server and client peers, `xform`,
//! `harness`), every link with the case's latency, the listen backlog at
//! 4,096 as here; the implementations and peers get
//! [`crate::net::Net::Simnet`], which carries its host so that a socket
//! made in a task spawned with plain `tokio::spawn` lands on it; the
//! recorder's clock is [`super::simnet::now`]; the leak count is the
//! subject's TCP sockets in `ESTABLISHED` or `CLOSE_WAIT` in turmoil-net's
//! netstat, [`SETTLE`] after the last actor; a blackholed server sits
//! behind a held link ([`super::simnet::Sim::hold`]: its SYNs are never
//! answered, and resent); a panic of a task ends the run as a crash; the
//! seed seeds the peers' chunking as here (the scheduler's loss draws too,
//! unused: no case has loss). A simnet run prints its replay command
//! (`replay --engine simnet`, with `--network` if the run had one), and
//! `--explore` and `--shrink-to` run on it; there a perturbed write's
//! pieces go out 1 ms apart
//! ([`crate::peers::poetry_server::plan_spread`]), since a byte stream
//! would deliver them as one read. `harness/tests/simnet_engine.rs` holds
//! what follows.
//!
//! Since 2026-12-01 the catalog also has four cases that only simnet runs
//! (packet faults or a listen backlog in their `[case.net]`, see
//! [`crate::case::net`]; UNSUPPORTED here): the reference passes them on
//! simnet, and all 120 pass there since the case below moved its bound.
//! Before them:
//!
//! Measured, the reference on the 116 cases of the catalog: **115 PASS**
//! (112 before window scaling and the RST rules, 2026-12-01), none
//! UNSUPPORTED, none crashed. The one other is a property of the case's
//! times, not of the reference or the TCP model:
//!
//! - `server.slow-first-chunk-at-once` (0.2 s, bound 0.15 s): the
//!   handshake moves the first chunk to 200 ms (SYN, SYN-ACK, ACK: the
//!   server accepts at 150 ms and its first chunk arrives 50 ms later, so
//!   POEM-8's "t0 + tau" holds). The bound is turmoil's accept at 50 ms
//!   plus tau; no TCP with a three-way handshake over 50 ms links
//!   delivers a byte before 200 ms. Decided (2026-12-01): the bound is
//!   t0 + tau with a three-way handshake's t0, 150 ms + 100 ms = 250 ms,
//!   which turmoil's earlier accept also meets; the two mutants it kills
//!   deliver at 550 ms or later on both engines.
//!
//! Fixed by the TCP model: `server.large-poem-written-whole` (0.6 s now,
//! bound 1.05 s; 1.8 s before), `proxy.large-poem-cached-at-once` and
//! `server.stalled-reader-does-not-block-others` (c2 has its 8 MiB at
//! 1.7 s) needed window scaling: without it a connection moved at most
//! 64 KiB per round trip, 655 kB/s over 50 ms links. And the leak count
//! of `server.slow-first-chunk-at-once` (1 open before): turmoil-net
//! ACKed the paced server's second chunk to a client that had closed;
//! now, as on Linux, the client answers with a RST, and the connection
//! is gone from the server's netstat by the count at 1.2 s.
//!
//! Every other case passes with its turmoil bounds although the handshake
//! moves most times by a round trip (100 ms at 50 ms links): their bounds
//! have that much slack. The mutants: every one is still killed on simnet
//! by a case the reference passes there. `server-one-at-a-time` on
//! `server.stalled-reader-does-not-block-others` is held up by flow
//! control itself (its one write to the stalled reader blocks once the
//! reader's window and its send buffer are full; c2 gets 0 bytes):
//! NON-STRICT, as on turmoil. (It was FAIL while turmoil-net ACKed data
//! for a closed socket: writing to c2 after c2 had left, the mutant was
//! never told, and the connection counted open.)
//!
//! Determinism: two runs of the catalog give the same transcripts. It
//! took a change to the scheduler: tasks woken at one instant run in an
//! order tokio does not fix (a `watch` channel, which the reference proxy
//! uses, wakes its waiters through buckets drawn from tokio's unseeded
//! RNG), and that order reached the transcript through the order of
//! packets (three clients of the proxy received in a different order from
//! run to run). Packets due at the same instant are now delivered flow by
//! flow, in address order, whatever order they were sent in.
//!
//! Cost, in process CPU time (user + sys), release build, `--jobs 1`,
//! three runs each on a quiet machine (`/usr/bin/time
//! target/release/poetry-harness run --engine simnet --jobs 1`, then
//! `--engine turmoil`): the whole catalog 0.15-0.16 s on simnet, 0.27-0.28 s
//! on turmoil (0.22-0.32 s and 0.40-0.46 s wall); the ten-minute case
//! (`client.slow-poem-ten-minutes`, two runs) 0.01-0.02 s on simnet,
//! 0.03 s on turmoil. Earlier, with a build running beside them,
//! 0.30-0.40 s and 0.57-0.83 s for the catalog. The targets, in
//! criterion (`cargo bench -p poetry-harness --bench sim_scaling --
//! simnet/`, process CPU), on 2026-12-02: the ten-minute case 2.8-3.7 ms
//! (target 5 ms), the whole catalog with one job 25-30 ms (target 50 ms),
//! in seven rounds, three of them beside two busy loops; another host of
//! the same kind read 5.1-6.3 ms and 39-56 ms for the same instructions
//! (BENCHMARKS.md, "The two CPU targets on today's host").
//!
//! The switch, tried on 2026-12-01 (every test passed, 189 snapshots
//! regenerated and reviewed), was held back because the catalog's elapsed
//! bounds were derived from turmoil's t0, the accept one latency after the
//! connect; on simnet the accept comes a round trip later, so a spec-legal
//! implementation at a bound's edge got a false FAIL. Example: POEM-8 lets
//! a slow server send its FIN one --delay after the last chunk, by
//! t0 + k*D + tau; on `server.slow-pacing` that FIN arrived at 7.2 s on
//! simnet, over the case's 7.15 s. Now every upper bound counts from t0
//! as a three-way handshake places it (s + 150 ms over 50 ms links) and
//! every lower bound from turmoil's earlier t0, so each holds on both
//! engines (52 bounds moved, by the handshake's 50 to 200 ms on the
//! critical path; each suite's header gives the arithmetic). Programs at
//! the late edge of the spec pass every case on both engines
//! (`simnet_engine.rs`): a server whose slow FIN comes one --delay late
//! (it failed six cases on simnet before) and whose fast write waits as
//! long as POEM-10 allows, a transformation server that replies 900 ms
//! after the request, and every timeout a second late (NET-4).
//!
//! The foundation this builds on:
//!
//! - turmoil-net 0.1.0 is vendored at `harness/vendor/turmoil-net`, every
//!   change marked `PATCH (poetry-harness)`. The patches, each tested in
//!   `harness/tests/simnet.rs` with exact simulated times: retransmission
//!   on an RFC 6298 timer in simulated time (`EnterGuard::egress_all_at`
//!   takes the time; SYN resent at 1, 3, 7, 15, 31, 63 s and `TimedOut`
//!   at 127 s; data after SRTT + max(4 RTTVAR, 200 ms), 300 ms over
//!   50 ms links, doubling, back to the estimate on progress), with ACKs
//!   for duplicate and out-of-order segments so a lost ACK costs a
//!   resend, not the connection; a persist timer and window updates per
//!   MSS opened (a reader that fell behind and reads 4 KiB at a time
//!   completes); `TcpStream::abort` and `set_linger` (linger 0 closes
//!   with RST); a `TcpSocket` with `listen(n)` and `SO_SNDBUF` /
//!   `SO_RCVBUF`, and `Net::add_host_with_config`; an index of listeners,
//!   a dirty set of sockets and of hosts, and O(log N) closes instead of
//!   sweeps; sockets that know their host, and `Net::set_driver` (the
//!   driver's clock and doorbell on every socket call), so a socket moved
//!   into a task spawned with plain tokio works; window scaling (RFC
//!   7323) with Linux's buffer sizes, the receive buffer growing from
//!   128 KiB to 6 MiB as the application reads and the send buffer from
//!   64 KiB to 4 MiB with the peer's window; a RST for new data reaching
//!   a socket its program closed, and from a reset connection (Linux's
//!   rules; upstream ACKed such data). [`super::simnet`]'s module doc
//!   has the model in short.
//! - [`super::simnet`] is the scheduler, public and documented: one
//!   paused current-thread runtime, host-scoped tasks, packets held for
//!   the latency, seeded loss, time jumping to the next timer or
//!   delivery, a trace.
//! - `benches/simnet_scaling.rs`: 2,000 clients at once (accept, write
//!   1,000 bytes, close, 50 ms links) cost 30 ms of CPU or less (the issue's
//!   target is 1 s; BENCHMARKS.md has the figures).
//!
//! Known gaps of the TCP: no out-of-order
//! queue, fast retransmit or congestion control (under 10% loss a
//! 100 KB transfer takes 6.2 s instead of 0.3 s: each loss costs an RTO
//! and a go-back-N resend of the window), no TIME-WAIT (a FIN resent
//! after the socket is reaped meets a RST), the SYN and accept queues
//! are one (`listen(n)` counts both).
//!
//! ## Where today's time goes
//!
//! `cargo bench -p poetry-harness --bench sim_scaling` (BENCHMARKS.md has
//! the table): one case of N clients connecting at once to the reference
//! fast server costs 7.2 ms of CPU for 50 clients, 41 ms for 100,
//! 0.63-0.79 s for 200 and 11-14 s for 500 (two runs, the second on a
//! busier machine); 2,000 is not run (the growth from 200 to 500, about
//! N^3.1, predicts 14 to 18 minutes; the run had not finished
//! after 12). The ten-minute case costs 27 ms, the catalog 0.2 s.
//!
//! `perf record --call-graph dwarf` of the 200-client run: 98.6% of the
//! samples are in `Sim::step`, and 88% in `Topology::deliver_messages`
//! (71% in its own loop, 13% in the `IndexMap` entry it makes per link);
//! running the hosts' runtimes (`Rt::tick`) is 6%, ticking the links
//! (`Topology::tick_by`) 3%, the harness itself under 2%. The tick loop
//! is `Sim::step` (vendor/turmoil/src/sim.rs): each tick it ticks every
//! link, then for every running host delivers that host's messages, runs
//! the host's own paused tokio runtime for one tick
//! (`block_on(run_until(sleep(tick)))`) and advances its clock. turmoil
//! registers a link for every pair of hosts (`World::register`), and
//! `deliver_messages` finds a host's links by scanning all of them, so a
//! tick costs hosts x links = O(N^3): 202 hosts, 20,301 links and 22
//! ticks (1.1 s at 50 ms) make about 90 million link visits for 200
//! clients. Time per tick, not per event, is the smaller term here (22
//! ticks); in the ten-minute case (about 6,030 ticks of 100 ms, 3 hosts)
//! it is the whole cost.
//!
//! ## turmoil-net 0.1.0, driven by our scheduler
//!
//! The spike is a scratch crate (`/tmp/spike`, not kept in the repository):
//! one current-thread tokio runtime with a paused clock and one `LocalSet`
//! for every host. Each host's tasks are wrapped so that every poll (and the
//! drop) first pins turmoil-net's current host, because its sockets do not
//! remember their host (every call goes through a thread-local current
//! host), and then pokes the scheduler. The scheduler drains
//! `EnterGuard::egress_all`, holds each packet for the link's latency
//! (50 ms), `deliver`s it when due, and otherwise waits for a poke or the
//! next delivery. Tokio's paused clock then jumps straight to whichever
//! comes first, a host's timer or a delivery: time is event-driven. What
//! it showed:
//!
//! - Determinism: two runs of 2,000 clients gave the same event trace
//!   (same hash, same 2,000 lines).
//! - Cost, accept-write-close of a 1,000-byte poem over 50 ms links, every
//!   client getting the whole poem (`spike scale N event noretx
//!   backlog=8192`): 200 clients 3 ms of CPU, 500 11 ms, 2,000 0.145 s,
//!   5,000 1.08 s. With a fixed 1 ms tick instead, 2,000 clients took
//!   0.141 s (only 200 ms are simulated here). The growth is still
//!   super-linear (N^1.9 from 2,000 to 5,000). perf: `tcp::find_listener`
//!   scans every accepted child sharing the listener's address for each
//!   inbound segment (42%), and every `egress` sweeps every socket
//!   (`check_retx`, `segment_all`, `reap_closed`: 32%). Both can be fixed
//!   locally: an index of listeners, a set of sockets with work.
//! - Byte flow control works: a writer whose reader does not read blocks
//!   after 131,072 bytes (a 64 KiB send buffer and the 64 KiB window), and
//!   resumes when the reader reads (in large reads: see below).
//! - `connect` completes on the handshake: with a backlog of 5 and a server
//!   that first accepts at 5 s, five of twelve clients are connected at
//!   100 ms (one round trip). The backlog drops the other SYNs.
//! - RST discards unread data: a client that reads only after the data and
//!   the RST have arrived gets `ConnectionReset`, not the data.
//! - The API has bind, accept, connect, read, write and shutdown (FIN), in
//!   the shape of `tokio::net`, and a netstat per host (our leak count).
//!
//! What turmoil-net 0.1.0 lacks, each a patch to a vendored copy, as
//! turmoil has today (all are now patched, the last in part: see
//! "Status"):
//!
//! - Retransmission is counted in `egress` calls, not in time: after 3
//!   calls without progress it goes back N, after 5 attempts it aborts.
//!   Our scheduler calls `egress` whenever a host ran, so with the default
//!   settings all 200 simultaneous connects failed with `TimedOut` within
//!   50 ms, and a 100 KB transfer sent 209 data segments instead of 70.
//!   Under turmoil-net's own 1 ms tick every connect over 50 ms links timed
//!   out at 12 ms. With retransmission off, a single lost segment hangs the
//!   connection for good, and SYNs dropped by a full backlog are never sent
//!   again (7 of 12 clients hung; Linux resends at 1 s, 3 s, 7 s, ...). It
//!   needs a retransmission timer in simulated time, with backoff: the
//!   kernel has no clock, so `egress` would take the time.
//! - No persist timer, and a window update only when one read frees half
//!   the receive buffer. A reader that falls behind until the window
//!   closes, then reads 4 KiB at a time, stalls for good (of 1 MiB, 65,535
//!   bytes arrived, then nothing until the 60 s limit). With 64 KiB reads
//!   it completes. This is the slow-reader case issue 11 wants to show.
//! - No RST on demand and no SO_LINGER: `TcpStream` has no `abort` or
//!   `set_linger` (both fail to compile), `Kernel::set_option(Linger)`
//!   reaches `unimplemented!()` (so the note above, that it models
//!   SO_LINGER, holds for its enum, not its code), and the kernel is
//!   private. RST comes only from dropping with unread data. It needs a
//!   `Kernel::abort(fd)`; the pieces (emitting a RST, `abort_connection`)
//!   exist.
//! - Buffers and the backlog come from one `KernelConfig` for every host
//!   of a `Net`: there is no per-host config, no `TcpSocket`, no
//!   per-listener backlog (`listen(5)`) and no SO_SNDBUF. The default
//!   backlog is 1,024 (SOMAXCONN), so 2,000 clients at once without
//!   retransmission left 976 hanging: a real effect, but load cases must
//!   size it.
//! - Host identity: tasks that implementations start with `tokio::spawn`
//!   carry no host, so `Net::Sim` would carry its host and our sim
//!   `TcpStream` would pin it before every call and on drop. `Net` is
//!   public; the change reaches every implementation that builds one.
//!
//! Times move: with a handshake, a server accepts one round trip later.
//! The spike's 200 clients (the case's shape, 50 ms links) have the poem
//! at 200 ms (SYN, SYN-ACK, ACK, data); the case ends at 100 ms on turmoil
//! today. Every case's expected times have
//! to be checked, and each change explained, as the issue asks.
//!
//! ## Extending the vendored turmoil instead
//!
//! turmoil 0.7.2's TCP carries writes, not bytes (vendor/turmoil/src/
//! host.rs): a stream is a channel of `tcp_capacity` segments, there is no
//! ACK, no window and no handshake, a SYN goes straight into the
//! listener's queue (which panics when full), and `connect` completes when
//! the listener's side answers. Byte flow control, a backlog, RST that
//! discards and connect-on-handshake mean writing a TCP state machine into
//! it: what turmoil-net's `kernel/tcp.rs` (1,341 lines) and
//! `kernel/socket.rs` (604) already are.
//!
//! Event-driven time needs the next event: the earliest of every link's
//! next delivery and every host's next timer. Each host has its own paused
//! tokio runtime (`rt.rs`), and tokio does not tell when its next timer is
//! due, so the hosts would have to move onto one runtime with host-scoped
//! tasks (turmoil-net's shape), `Sim::step` would jump to the next event
//! instead of adding a tick, and `Topology` would keep a delivery queue
//! instead of ticking every link. That is `sim.rs`, `rt.rs`, `top.rs` and
//! the TCP of `host.rs`: most of the crate.
//!
//! One cheap fix does not need any of that: indexing each host's links so
//! that `deliver_messages` visits only them, and skipping links with
//! nothing for the host. It keeps every result (same links in the same
//! order, same random draws): on a scratch copy, `poetry-harness run
//! --transcripts` printed the whole catalog byte for byte as before. Not
//! applied here, this being a measurement task. With 50, 100, 200, 500
//! and 2,000 clients the case costs 4.2 ms, 13 ms, 43 ms, 0.32 s and 7.2 s
//! of CPU (same verdicts and end times), 15 times less at 200 and 35 times
//! less at 500, but still O(N^2) and 730 MB of peak RSS at 2,000: what is
//! left is every pair of hosts. perf at 1,000 clients: `Topology::tick_by` 47% (it asks
//! the runtime for the time once per link: `Rt::now` is 35%),
//! `deliver_messages` 23% (each host still visits its N links),
//! `World::register` 18% (creating the N^2/2 links). Creating links on
//! first use and reading the time once per tick would make the tick cost
//! linear; time per tick would remain.
//!
//! ## Not measured
//!
//! turmoil-net's memory; the per-event cost of a long paced case on
//! turmoil-net, alone (the catalog as a whole, the ten-minute case
//! included, is measured in "Status"); the many-client cases at their
//! bench sizes on simnet. (Loss with a time-based
//! retransmission timer, unwritten at the spike, is now written and
//! tested: see "Status" above.)

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

/// Options of one run: which seed, and whether it perturbs the chunking.
///
/// The one place that decides what `--seed` means, for `run`, `replay` and
/// the replay command a report prints (see [`crate::replay`]): without a
/// seed, a run is the catalog's own (seed [`RunOptions::CATALOG_SEED`],
/// chunking as the case says); with `--seed N`, every server peer's writes
/// are re-chunked at random from `N` (exploration). The fields are private
/// so that no run exists that the command line cannot name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// Seeds random chunking and turmoil's own choices.
    seed: u64,
    /// Re-chunk every server peer's writes at random (exploration).
    perturb: bool,
    /// Which simulator runs the case (`run --engine`).
    engine: SimEngine,
    /// A named network profile on every link of the subject, both ways
    /// (`run --engine simnet --network NAME`; simnet only).
    network: Option<&'static str>,
}

/// Which simulator runs a case: `run --engine`. `Turmoil` is this
/// module's [`run`]; `Simnet` is [`super::simnet::run_case`] (issue 11),
/// whose differences the module doc's "Status" lists. (The variants'
/// own docs are `--help` text.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SimEngine {
    /// turmoil 0.7.2, in ticks: the former engine (no handshake, flow
    /// control counted in writes, no loss or backlog)
    Turmoil,
    /// turmoil-net's byte-accurate TCP, event-driven: the default
    #[default]
    Simnet,
}

impl RunOptions {
    /// The seed of a run without `--seed`: arbitrary, fixed so that the
    /// catalog's runs (and their snapshots) never change.
    pub const CATALOG_SEED: u64 = 1;

    /// The catalog's own run: chunking as each case says, seed
    /// [`RunOptions::CATALOG_SEED`].
    pub const fn catalog() -> Self {
        RunOptions {
            seed: Self::CATALOG_SEED,
            perturb: false,
            engine: SimEngine::Simnet,
            network: None,
        }
    }

    /// An exploring run: every server peer's writes re-chunked at random
    /// from `seed`.
    pub const fn perturbed(seed: u64) -> Self {
        RunOptions {
            seed,
            perturb: true,
            engine: SimEngine::Simnet,
            network: None,
        }
    }

    /// The same run (engine, network profile) perturbed from `seed`
    /// instead: what `--explore` runs for each seed it tries, so that a
    /// seed found on one engine, or under one network profile, is
    /// explored and replayed there. On the default engine without a profile,
    /// exactly [`RunOptions::perturbed`].
    pub const fn reseeded(mut self, seed: u64) -> Self {
        self.seed = seed;
        self.perturb = true;
        self
    }

    /// The run that `--seed` asks for: none, the catalog's; `N`, perturbed
    /// from `N`. The inverse of [`RunOptions::seed_flag`].
    pub const fn from_seed_flag(seed: Option<u64>) -> Self {
        match seed {
            None => Self::catalog(),
            Some(seed) => Self::perturbed(seed),
        }
    }

    /// The `--seed` that gives this run back (none for the catalog's).
    pub const fn seed_flag(&self) -> Option<u64> {
        if self.perturb {
            Some(self.seed)
        } else {
            None
        }
    }

    /// The seed.
    pub const fn seed(&self) -> u64 {
        self.seed
    }

    /// Whether every server peer's writes are re-chunked at random.
    pub const fn perturbed_chunking(&self) -> bool {
        self.perturb
    }

    /// The same run on `engine`.
    pub const fn on_engine(mut self, engine: SimEngine) -> Self {
        self.engine = engine;
        self
    }

    /// Which simulator runs the case.
    pub const fn engine(&self) -> SimEngine {
        self.engine
    }

    /// The same run with the named network profile on every link of the
    /// subject (see [`super::simnet::faults::PROFILES`]): an error naming
    /// the profiles if there is none of that name.
    pub fn on_network(mut self, name: &str) -> Result<Self, String> {
        super::simnet::Faults::profile(name)?;
        self.network = super::simnet::faults::PROFILES
            .iter()
            .map(|(n, _)| *n)
            .find(|n| *n == name);
        Ok(self)
    }

    /// The network profile on the subject's links, if any.
    pub const fn network(&self) -> Option<&'static str> {
        self.network
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions::catalog()
    }
}

impl std::fmt::Display for RunOptions {
    /// `seed 1` for the catalog's run, `seed 7, perturbed` for an
    /// exploring one; then `, on turmoil` for a run off the default
    /// engine, and `, network NAME` for a run under a profile.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seed {}", self.seed)?;
        if self.perturb {
            f.write_str(", perturbed")?;
        }
        if self.engine == SimEngine::Turmoil {
            f.write_str(", on turmoil")?;
        }
        if let Some(network) = self.network {
            write!(f, ", network {network}")?;
        }
        Ok(())
    }
}

/// The transcript line for a subject server whose `serve` returned `r`
/// (both engines: simnet's printed the `Result`'s debug text).
pub(super) fn stopped_serving(r: &std::io::Result<()>) -> String {
    match r {
        Ok(()) => "stopped serving".to_string(),
        Err(e) => format!("stopped serving: {e}"),
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

pub(super) fn addr(host: &str) -> String {
    format!("{host}:{PORT}")
}

/// Runs one case against one implementation inside turmoil, or on
/// [`super::simnet`] if `opts` asks for that engine.
pub fn run(case: &Case, imp: &Implementation, opts: RunOptions) -> RunOutcome {
    if opts.engine == SimEngine::Simnet {
        return super::simnet::run_case(case, imp, opts);
    }
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
                    rec.log("subject", stopped_serving(&r));
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
        replay: crate::replay::Replay::of(case, imp, opts),
        tick,
        exit_status: None,
        stray_output: None,
        timed_from: Duration::ZERO,
        startup: None,
        tolerance: None,
        sockets: None,
    }
}

pub(super) fn log_result(rec: &Recorder, r: &SubjectResult) {
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

pub(super) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let msg = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    format!("panicked: {msg}")
}

//! The simulator of issue 11: byte-accurate TCP (turmoil-net, vendored and
//! patched at `harness/vendor/turmoil-net`) driven by our own
//! event-driven scheduler.
//!
//! The simulator's default engine: `poetry-harness run` runs the catalog
//! here through [`run_case`] (`--engine turmoil` on the former engine,
//! turmoil 0.7.2; [`super::sim`] compares them). The scheduler is tested
//! on its own in `harness/tests/simnet.rs` and `simnet_faults.rs`, the
//! engine in `harness/tests/simnet_engine.rs`, and measured by
//! `benches/simnet_scaling.rs`.
//!
//! What it models, per connection: send and receive buffers in bytes
//! (a writer blocks when its peer does not read), a listen backlog,
//! `connect` completing on the handshake (one round trip), RST as
//! Linux (closing with unread data resets; the resetting side discards
//! what it had not read and what it had not sent, after sending what the
//! window took of its writes; the other side reads the bytes it had
//! received, then the reset), RST on demand ([`TcpStream::abort`],
//! `SO_LINGER` 0), and retransmission on a timer in simulated time (SYN
//! resent at 1 s, 3 s, 7 s, ...; data after an RTO of at least 200 ms,
//! doubling), so that loss slows a connection instead of breaking it.
//! No congestion control: a sender sends as much as the window allows.
//!
//! Segmentation offload, as Linux's TSO/GSO and GRO: over a link without
//! faults a sender hands the network up to 64 KiB a packet
//! ([`KernelConfig::segment_offload`]) instead of one 1,460-byte MSS.
//! Every packet of an instant arrives together there, one latency later,
//! so the bytes, the reads, the windows and the times are the same either
//! way (tested; every catalog transcript is byte for byte the same), and
//! a megabyte costs 17 packets instead of 720. A host that sends over a
//! link with [`Faults`] (every host, with the run's own loss) sends one
//! MSS a packet, each dropped, delayed or metered on its own.
//!
//! Windows and buffers, as Linux's defaults: the SYNs negotiate window
//! scaling (RFC 7323, shift 7), so a window can pass 64 KiB. A receive
//! buffer starts at 128 KiB and, while the application keeps up, grows
//! to twice what it read in a round trip, up to 6 MiB (a simple receive
//! autotuning); a send buffer starts at 64 KiB and grows to twice the
//! peer's largest window, up to 4 MiB. `SO_RCVBUF` / `SO_SNDBUF` fix
//! them. So a reader that keeps up gets 1 MiB in four round trips after
//! the handshake (128 KiB, 128 KiB, 512 KiB, the rest), and a writer to
//! a reader that never reads blocks once 384 KiB are buffered (128 KiB
//! on the reader's side, 256 KiB on its own). [`KernelConfig`] has the
//! sizes and `window_scaling(false)`.
//!
//! RST, as Linux: closing a socket with unread data, or with `SO_LINGER`
//! 0, or [`TcpStream::abort`], resets the connection; new data reaching a
//! socket its program closed (after `close`, not a half-close) is
//! answered with a RST, so the peer's next write fails instead of going
//! nowhere; a segment for a socket that is gone, or was reset, gets a
//! RST.
//!
//! Links can carry packet faults, per direction ([`faults`]): bandwidth,
//! random or bursty (Gilbert-Elliott) loss, duplication, jitter and
//! reordering, and named profiles of them; `run --engine simnet --network
//! NAME` puts one on every link of the implementation, and a case can ask
//! for its own, on every link of the subject or on its link with one peer,
//! and for the subject's listen backlog ([`crate::case::net`]; such a
//! case is UNSUPPORTED on the other engines). Fault draws are made flow by
//! flow from the run's seed.
//!
//! Time is event-driven: one current-thread tokio runtime with a paused
//! clock runs every host's tasks; packets wait for their link's latency
//! in a queue; when nothing is runnable the clock jumps straight to the
//! next event, a host's timer (a `sleep`, a retransmission) or a
//! delivery. The cost is per event, not per tick, and linear in
//! connections. Everything is deterministic: no wall clock, no OS
//! randomness (loss draws come from a seeded ChaCha8), no hash-order
//! iteration.
//!
//! Sockets at the end: with [`SimBuilder::socket_dump`], the [`Report`]
//! holds every host's sockets when the run ends (netstat: state, bytes
//! queued each way, the host that holds it and its peer, by name);
//! [`render_sockets`] makes a table of them. A failing case's transcript
//! on `--engine simnet` ends with it.
//!
//! Hosts: a task started with [`Sim::spawn`] or [`spawn`] runs on its
//! host, and the sockets it makes belong to that host. A socket knows its
//! host, so it can be moved into a task started with plain
//! `tokio::task::spawn_local`; but a socket *made* in such a task lands
//! on whichever host was pinned last.
//!
//! ```
//! use std::time::Duration;
//! use poetry_harness::backend::simnet::{self, Sim, TcpListener, TcpStream};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let mut sim = Sim::builder().latency(Duration::from_millis(50)).build();
//! let server = sim.add_host("server");
//! let client = sim.add_host("client");
//! sim.spawn_daemon(server, async {
//!     let listener = TcpListener::bind(("0.0.0.0", 10000)).await.unwrap();
//!     loop {
//!         let (mut stream, _) = listener.accept().await.unwrap();
//!         simnet::spawn(async move {
//!             stream.write_all(b"a poem").await.unwrap();
//!         });
//!     }
//! });
//! sim.spawn(client, async {
//!     let mut stream = TcpStream::connect(("server", 10000)).await.unwrap();
//!     // SYN out and SYN-ACK back: one round trip.
//!     assert_eq!(simnet::now(), Duration::from_millis(100));
//!     let mut poem = String::new();
//!     stream.read_to_string(&mut poem).await.unwrap();
//!     simnet::trace(format!("got {poem:?}"));
//! });
//! let report = sim.run();
//! assert!(!report.timed_out);
//! // The server's FIN follows the poem: ACK, then data and FIN, 150 ms
//! // after the handshake's last ACK left at 100 ms.
//! assert_eq!(report.trace, vec!["   200.000 ms  got \"a poem\"".to_string()]);
//! ```

pub mod faults;
mod runner;
mod sched;

pub use faults::{Faults, Loss};
pub use runner::run_case;

pub use sched::{now, render_sockets, spawn, trace, try_now, Report, Sim, SimBuilder, SocketRow};
pub use turmoil_net::shim::tokio::net::{TcpListener, TcpSocket, TcpStream};
pub use turmoil_net::{lookup_host, HostId, KernelConfig};

//! Kernel socket types and the per-host socket table.
//!
//! PATCH (poetry-harness): TCB timer state, `SO_LINGER` and buffer caps per socket, an index of listeners, O(log N) removal.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::task::Waker;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

/// Linux default `ip_local_port_range`.
pub const DEFAULT_EPHEMERAL_PORTS: RangeInclusive<u16> = 49152..=65535;

/// Default per-socket TCP send buffer cap (bytes). Bounds the sum of
/// queued-but-unsent and sent-but-unACK'd data, matching Linux
/// `SO_SNDBUF` semantics. Overridable via [`KernelConfig`].
///
/// PATCH (poetry-harness): the initial size; unless `SO_SNDBUF` is set, it
/// grows to twice the peer's largest advertised window, up to
/// [`DEFAULT_SEND_BUF_MAX`] (Linux grows it with the congestion window,
/// which this stack does not model).
pub const DEFAULT_SEND_BUF_CAP: usize = 64 * 1024;

/// PATCH (poetry-harness): the most the send buffer grows to (Linux's
/// `tcp_wmem[2]`, 4 MiB).
pub const DEFAULT_SEND_BUF_MAX: usize = 4 * 1024 * 1024;

/// Default per-socket TCP receive buffer cap (bytes). Advertised as
/// the TCP window in outgoing segments. Overridable via
/// [`KernelConfig`].
///
/// PATCH (poetry-harness): Linux's `tcp_rmem[1]` (128 KiB, upstream had 64
/// KiB), the initial size; unless `SO_RCVBUF` is set, it grows as the
/// application reads (see `tcp::autotune_recv`), up to
/// [`DEFAULT_RECV_BUF_MAX`].
pub const DEFAULT_RECV_BUF_CAP: usize = 128 * 1024;

/// PATCH (poetry-harness): the most the receive buffer grows to (Linux's
/// `tcp_rmem[2]`, 6 MiB). It also sets the window scale a SYN offers.
pub const DEFAULT_RECV_BUF_MAX: usize = 6 * 1024 * 1024;

/// Communication domain — POSIX `socket(2)`'s first argument. Variants
/// we don't construct yet (Unix) are forward-declared for parity.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// IPv4 (`AF_INET`).
    Inet,
    /// IPv6 (`AF_INET6`).
    Inet6,
    /// Unix domain sockets (`AF_UNIX`).
    Unix,
}

/// Socket type — POSIX `socket(2)`'s second argument. SeqPacket is
/// forward-declared; the dispatch layer panics on it today.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    /// Reliable, ordered, connection-oriented byte stream (`SOCK_STREAM`).
    Stream,
    /// Connectionless datagrams (`SOCK_DGRAM`).
    Dgram,
    /// Reliable, ordered, connection-oriented messages (`SOCK_SEQPACKET`).
    SeqPacket,
}

/// Socket address. Unifies `AF_INET`/`AF_INET6` (via [`SocketAddr`]) and
/// `AF_UNIX` (via a path) so a single `bind`/`connect` surface works across
/// domains. Named [`Addr`] to avoid colliding with [`std::net::SocketAddr`].
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Inet(SocketAddr),
    Unix(PathBuf),
}

/// Options. Each variant is tagged inline:
///
/// - **simulated** — observable in tests (affects send/recv/listen/close).
/// - **stored** — round-trips through get/set but doesn't change behavior.
///
/// Many variants are forward-declared for API parity with tokio/libc
/// and aren't yet wired to behavior.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketOption {
    // ---- SOL_SOCKET ----
    /// `SO_BROADCAST`. simulated.
    Broadcast(bool),
    /// `SO_REUSEADDR`. simulated (affects bind conflict rules).
    ReuseAddr(bool),
    /// `SO_REUSEPORT`. simulated (load-balances accept across listeners).
    ReusePort(bool),
    /// `SO_LINGER`. simulated (controls close behavior for SOCK_STREAM).
    Linger(Option<Duration>),
    /// `SO_RCVBUF`. simulated (receive-side backpressure capacity).
    RecvBufferSize(usize),
    /// `SO_SNDBUF`. simulated (send-side backpressure capacity).
    SendBufferSize(usize),
    /// `SO_KEEPALIVE`. simulated (probe timer + dead-peer RST).
    KeepAlive(bool),

    // ---- IPPROTO_TCP ----
    /// `TCP_NODELAY`. stored — we don't model Nagle at all (every
    /// `poll_write` copies to `send_buf`, `segment_all` emits
    /// immediately), so this round-trips without affecting traffic.
    /// TODO: if we ever model Nagle, gate segmentation on `!nodelay`
    /// and coalesce sub-MSS payloads the way real TCP does.
    TcpNoDelay(bool),
    /// `TCP_KEEPIDLE`. simulated (idle time before first keepalive probe).
    TcpKeepIdle(Duration),
    /// `TCP_KEEPINTVL`. simulated (interval between keepalive probes).
    TcpKeepInterval(Duration),
    /// `TCP_KEEPCNT`. simulated (probe count before giving up).
    TcpKeepCount(u32),

    // ---- IPPROTO_IP ----
    /// `IP_TTL`. stored.
    IpTtl(u8),
    /// `IP_MULTICAST_TTL`. stored.
    IpMulticastTtl(u8),
    /// `IP_MULTICAST_LOOP`. simulated (whether sender sees own multicast).
    IpMulticastLoop(bool),
    /// `IP_ADD_MEMBERSHIP`. simulated.
    IpAddMembership { group: Ipv4Addr, iface: Ipv4Addr },
    /// `IP_DROP_MEMBERSHIP`. simulated.
    IpDropMembership { group: Ipv4Addr, iface: Ipv4Addr },

    // ---- IPPROTO_IPV6 ----
    /// `IPV6_V6ONLY`. simulated.
    Ipv6Only(bool),
    /// `IPV6_MULTICAST_HOPS`. stored.
    Ipv6MulticastHops(u8),
    /// `IPV6_MULTICAST_LOOP`. simulated.
    Ipv6MulticastLoop(bool),
    /// `IPV6_JOIN_GROUP`. simulated.
    Ipv6JoinGroup { group: Ipv6Addr, iface: u32 },
    /// `IPV6_LEAVE_GROUP`. simulated.
    Ipv6LeaveGroup { group: Ipv6Addr, iface: u32 },
}

/// Discriminant used to name which option to read back. Separate from
/// [`SocketOption`] because getters don't carry a value.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketOptionKind {
    Broadcast,
    ReuseAddr,
    ReusePort,
    Linger,
    RecvBufferSize,
    SendBufferSize,
    KeepAlive,
    TcpNoDelay,
    TcpKeepIdle,
    TcpKeepInterval,
    TcpKeepCount,
    IpTtl,
    IpMulticastTtl,
    IpMulticastLoop,
    Ipv6Only,
    Ipv6MulticastHops,
    Ipv6MulticastLoop,
}

/// A kernel socket handle. Opaque, fd-like, `Copy` — carries no state
/// on its own; all lookups go through the owning kernel's table.
// PATCH (poetry-harness): `Ord`, so that timers can be kept in a
// `BTreeSet<(deadline, Fd)>` (deterministic order, no hashing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fd(u64);

/// TCP connection state.
///
/// We intentionally skip `TimeWait` and go straight from
/// `FinWait2`/`LastAck` to `Closed`. Its two jobs in real TCP — late-
/// duplicate protection on 4-tuple reuse and re-ACKing a retransmitted
/// FIN — only matter on an unreliable transport. The simulated fabric
/// doesn't lose or duplicate packets, and we have no simulated clock
/// to run a 2×MSL timer against.
///
/// Once the fabric grows drop/duplicate faults or a virtual clock,
/// revisit this: `TimeWait` is additive (new state + timer) and won't
/// break existing transitions. The other user-visible effect — that
/// `bind()` to a recently-closed 4-tuple returns `EADDRINUSE` without
/// `SO_REUSEADDR` — isn't modeled either, and can be bolted on via a
/// "recently closed" bit on the bind table without a full state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    SynSent,
    SynReceived,
    Established,
    /// We sent FIN, waiting for its ACK and/or the peer's FIN. From
    /// here either `FinWait2` (peer ACK'd our FIN) or `Closing` (peer
    /// sent FIN before ACKing ours).
    FinWait1,
    /// Peer ACK'd our FIN; still waiting for the peer's FIN.
    FinWait2,
    /// Peer sent FIN; we've ACK'd it and may still write until the app
    /// calls `shutdown(Write)` or closes.
    CloseWait,
    /// Both sides have sent FIN; we're waiting for the peer's ACK of
    /// ours.
    LastAck,
    /// Simultaneous close — we sent FIN, then received theirs before
    /// ours was ACK'd. Waiting for our FIN's ACK.
    Closing,
    /// Terminal. Resources can be reaped.
    Closed,
}

/// PATCH (poetry-harness): bytes written and not yet acknowledged, one
/// `Bytes` per write. A segment within one write is a slice of it, shared,
/// not copied; an acknowledgement drops whole writes off the front. A
/// `BytesMut` here copied everything it held each time it grew, and
/// copied each segment out.
///
/// Each write is kept with the stream offset of its end (counted from the
/// connection's first byte, so acknowledgements do not renumber it), and a
/// segment finds its write by binary search: a program that makes many
/// small writes into a full window pays a logarithm per segment, not a
/// walk over every write in flight.
#[derive(Debug, Default)]
pub struct SendQueue {
    /// Writes held, each with the stream offset just past its last byte.
    chunks: VecDeque<(usize, Bytes)>,
    /// Stream offset of the first byte held.
    base: usize,
    len: usize,
}

impl SendQueue {
    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Drops every byte held.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.base += self.len;
        self.len = 0;
    }

    /// Appends `bytes` after those held: the write's own bytes, shared
    /// (a write from a `&[u8]` is copied into them by its caller).
    pub fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.chunks.push_back((self.base + self.len, bytes));
        }
    }

    /// PATCH (poetry-harness): the first write held (tests: whether it
    /// is the writer's bytes or a copy).
    #[cfg(test)]
    pub(crate) fn first_write(&self) -> Option<&Bytes> {
        self.chunks.front().map(|(_, b)| b)
    }

    /// Drops the first `n` bytes held (at most [`Self::len`]). A write
    /// goes when all of it is acknowledged; until then it is kept whole,
    /// its offsets unchanged, and slices skip its acknowledged front.
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.len);
        self.base += n;
        self.len -= n;
        while self
            .chunks
            .front()
            .is_some_and(|(end, _)| *end <= self.base)
        {
            self.chunks.pop_front();
        }
    }

    /// Bytes `start..end` of those held (`end` at most [`Self::len`]): a
    /// slice of one write when they lie in one, else a copy.
    pub fn slice(&self, start: usize, end: usize) -> Bytes {
        let end = end.min(self.len);
        if start >= end {
            return Bytes::new();
        }
        let (start, end) = (self.base + start, self.base + end);
        // The first write that ends past `start` holds it.
        let first = self
            .chunks
            .partition_point(|(chunk_end, _)| *chunk_end <= start);
        let mut out: Option<BytesMut> = None;
        for (chunk_end, chunk) in self.chunks.range(first..) {
            let chunk_start = chunk_end - chunk.len();
            let from = start.max(chunk_start) - chunk_start;
            let to = end.min(*chunk_end) - chunk_start;
            match &mut out {
                None if end <= *chunk_end => return chunk.slice(from..to),
                None => {
                    let mut buf = BytesMut::with_capacity(end - start);
                    buf.extend_from_slice(&chunk[from..to]);
                    out = Some(buf);
                }
                Some(buf) => buf.extend_from_slice(&chunk[from..to]),
            }
            if end <= *chunk_end {
                break;
            }
        }
        out.map(BytesMut::freeze).unwrap_or_default()
    }
}

/// PATCH (poetry-harness): received bytes, kept as the payloads of the
/// segments that carried them (a `Bytes` each, shared, not copied) until
/// the application reads them out. A `BytesMut` here copied every
/// segment in, and copied everything it held each time it grew: on the
/// catalog's megabyte poems, about a twentieth of the simulator's
/// instructions.
#[derive(Debug, Default)]
pub struct RecvQueue {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl RecvQueue {
    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops every byte held.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// Appends `bytes` after those held.
    pub fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.chunks.push_back(bytes);
        }
    }

    /// Copies the first `out.len()` bytes held (at most [`Self::len`])
    /// into `out`, and keeps them.
    pub fn peek(&self, out: &mut [u8]) {
        let mut at = 0;
        for chunk in &self.chunks {
            if at == out.len() {
                break;
            }
            let n = chunk.len().min(out.len() - at);
            out[at..at + n].copy_from_slice(&chunk[..n]);
            at += n;
        }
    }

    /// Hands the first `n` bytes held (at most [`Self::len`]) to `put`,
    /// in order, and drops them.
    pub fn take(&mut self, mut n: usize, mut put: impl FnMut(&[u8])) {
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let k = front.len().min(n);
            put(&front[..k]);
            self.len -= k;
            n -= k;
            if k == front.len() {
                self.chunks.pop_front();
            } else {
                bytes::Buf::advance(front, k);
            }
        }
    }
}

/// TCP control block. Present on a socket once it's paired with a peer
/// (either via `connect` or `accept`). Mirrors the subset of fields a
/// real TCB needs for the pieces we model today; close-state
/// bookkeeping (`FIN`/`RST` states, `TIME-WAIT`) comes later.
///
/// `send_buf` layout — `[in-flight | queued]`:
/// - Bytes 0..(snd_nxt - snd_una) are on the wire, unACK'd. Kept so
///   retransmit can re-emit from `snd_una`.
/// - Bytes (snd_nxt - snd_una).. are queued for the next egress pass.
/// - ACK'd bytes are `advance()`d off the front.
#[derive(Debug)]
pub struct Tcb {
    pub state: TcpState,
    /// Remote endpoint. Mirrored in `Socket::peer` for UDP parity.
    pub peer: SocketAddr,
    /// Next sequence number we'll send (advances as egress chops and
    /// emits segments).
    pub snd_nxt: u32,
    /// Oldest unACK'd sequence number. `snd_nxt - snd_una` == in-flight.
    pub snd_una: u32,
    /// Peer's last-advertised receive window, in bytes. Bounds how far
    /// beyond `snd_una` we're allowed to push `snd_nxt` before pausing.
    /// PATCH (poetry-harness): in bytes after window scaling (a `u32`).
    pub snd_wnd: u32,
    /// Next sequence number we expect to receive.
    pub rcv_nxt: u32,
    /// Outgoing byte queue — see type-level doc for layout.
    /// PATCH (poetry-harness): the application's writes, not a
    /// `BytesMut` (see [`SendQueue`]).
    pub send_buf: SendQueue,
    /// Incoming byte queue. App drains via `poll_read`; advertised
    /// window shrinks as this fills.
    /// PATCH (poetry-harness): the received segments' payloads, not a
    /// `BytesMut` (see [`RecvQueue`]).
    pub recv_buf: RecvQueue,
    /// App has closed the write side (FIN sent). Further `poll_write`
    /// calls return `BrokenPipe`.
    pub wr_closed: bool,
    /// Peer has sent FIN. Readers see `Ready(0)` after `recv_buf`
    /// drains.
    pub peer_fin: bool,
    /// Sequence number occupied by our FIN — ACK of `fin_seq + 1`
    /// confirms the peer received it. `None` until we emit FIN.
    pub fin_seq: Option<u32>,
    /// Connection was aborted by a RST (sent or received). Further ops
    /// return `ConnectionReset`; distinguishes the error from a clean
    /// `Closed` transition.
    pub reset: bool,
    /// Connection was aborted by retransmit exhaustion. Further ops
    /// return `TimedOut`, matching Linux's `ETIMEDOUT` from
    /// `tcp_retries2`. Distinct from `reset` because retx exhaustion
    /// doesn't send a RST (it can't — the fabric is dropping our
    /// traffic), it just fails locally.
    pub timed_out: bool,
    /// Retransmit attempts for the current unacked window. Reset on
    /// any ACK that advances `snd_una`. When it hits the max the
    /// connection is aborted with `TimedOut`.
    pub retx_attempts: u32,
    // PATCH (poetry-harness): retransmission in simulated time instead of
    // counting egress passes (`egress_since_ack` is gone). The fields
    // below are the RFC 6298 timer, the persist timer and the state a
    // go-back-N sender needs to accept ACKs for bytes it rewound over.
    /// Highest sequence number sent so far (one past the last byte or
    /// FIN). `snd_nxt` rewinds to `snd_una` on a retransmission timeout;
    /// `snd_max` does not, so ACKs up to it stay acceptable.
    pub snd_max: u32,
    /// Current retransmission timeout, backed off (doubled) on every
    /// expiry and recomputed from the RTT estimate on ACK progress.
    pub rto: Duration,
    /// Smoothed round-trip time (RFC 6298 SRTT); `None` before the
    /// first sample.
    pub srtt: Option<Duration>,
    /// Round-trip time variation (RFC 6298 RTTVAR).
    pub rttvar: Duration,
    /// The segment being timed for an RTT sample: (sequence number its
    /// ACK must reach, time sent). Cleared on retransmission (Karn).
    pub rtt_probe: Option<(u32, Duration)>,
    /// The armed timer, if any: when it fires and what it is for.
    pub timer: Option<(Duration, TimerKind)>,
    /// Receive window last advertised to the peer, to decide when a
    /// read has opened enough room to be worth a window update. In
    /// bytes, as the peer reads it (after scaling).
    pub last_adv_wnd: u32,
    /// PATCH (poetry-harness): window scaling (RFC 7323). The shift the
    /// peer applies to the windows it advertises (0 unless both SYNs
    /// carried the option)...
    pub snd_wscale: u8,
    /// ...and the shift this side applies to its own: offered in its SYN
    /// or SYN-ACK, 0 if the peer's SYN or SYN-ACK did not carry one.
    pub rcv_wscale: u8,
    /// The option this side's SYN or SYN-ACK carries (and carries again
    /// when resent).
    pub syn_wscale: Option<u8>,
    /// PATCH (poetry-harness): the receive buffer (the most the window
    /// offers) unless `SO_RCVBUF` is set: the kernel's default, grown by
    /// receive autotuning.
    pub rcv_cap: usize,
    /// PATCH (poetry-harness): the send buffer unless `SO_SNDBUF` is set:
    /// the kernel's default, grown with the peer's window.
    pub snd_cap: usize,
    /// PATCH (poetry-harness): receive autotuning's measurement: when the
    /// current period (one smoothed RTT) began, and the bytes the
    /// application read since.
    pub rcv_space: Option<(Duration, usize)>,
}

/// PATCH (poetry-harness): what a TCB's timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// Retransmission timeout: resend the SYN / SYN-ACK, or rewind to
    /// `snd_una` and resend the unacknowledged data (go-back-N).
    Retransmit,
    /// Persist timer: the peer's window is zero and nothing is in
    /// flight, so send a window probe (an old sequence number, which
    /// the peer must answer with an ACK carrying its window).
    Persist,
}

/// Listener state. Attached to a socket by `listen(2)`.
#[derive(Debug)]
pub struct ListenState {
    /// Configured backlog. Real Linux clamps to `somaxconn`; we don't.
    pub backlog: usize,
    /// PATCH (poetry-harness): children still in `SynReceived`, counted
    /// against the backlog with `ready` (upstream scanned every
    /// connection on the listener's address for each SYN).
    /// A `BTreeSet` (fd order): an `IndexSet`'s `shift_remove` made
    /// 2,000 handshakes completing at once quadratic.
    pub handshaking: BTreeSet<Fd>,
    /// Fully-established connections waiting to be `accept`-ed. Each
    /// entry is the server-side Fd of a finished handshake.
    pub ready: VecDeque<Fd>,
    /// Tasks parked in `poll_accept`.
    pub accept_wakers: Vec<Waker>,
}

impl ListenState {
    pub fn new(backlog: usize) -> Self {
        Self {
            backlog,
            handshaking: BTreeSet::new(),
            ready: VecDeque::new(),
            accept_wakers: Vec::new(),
        }
    }
}

/// Kernel-internal per-socket state. Tracks creation parameters, the
/// bound local address (if any), reuse-option state, the default peer
/// (for connected sockets), and the inbound datagram queue for
/// SOCK_DGRAM.
#[derive(Debug)]
pub struct Socket {
    pub domain: Domain,
    pub ty: Type,
    pub bound: Option<BindKey>,
    /// Default peer set by `connect(2)`. For UDP, filters inbound to
    /// datagrams from this peer and lets `send`/`recv` be used without
    /// `_to`/`_from`. For TCP this is the connected remote endpoint.
    pub peer: Option<Addr>,
    pub broadcast: bool,
    /// `IP_TTL` — stored only; not applied to simulated packets yet.
    pub ttl: u8,
    /// `TCP_NODELAY` — stored only. We don't model Nagle at all, so
    /// reading it back round-trips whatever the app set. See the
    /// `TcpNoDelay` variant on [`SocketOption`] for the TODO.
    pub tcp_nodelay: bool,
    /// Datagrams queued for this socket, in arrival order. Only UDP
    /// populates this today. Bounded by `SO_RCVBUF` later.
    pub recv_queue: VecDeque<(Addr, Bytes)>,
    /// Tasks waiting on this socket becoming readable — TCP bytes in
    /// `recv_buf`, UDP datagram in `recv_queue`, FIN for EOF, or RST
    /// for ConnectionReset. `Vec` because both `&TcpStream` and
    /// `&UdpSocket` permit concurrent pollers. Dedup'd on insert via
    /// `Waker::will_wake`; drained wholesale on every event, so a
    /// normal workload holds at most one entry per live reader.
    pub read_wakers: Vec<Waker>,
    /// Tasks waiting on this socket becoming writable — TCP send_buf
    /// draining below cap after an ACK. UDP sends never park, so this
    /// stays empty for Dgram sockets. Same dedup/drain semantics as
    /// `read_wakers`.
    pub write_wakers: Vec<Waker>,
    /// TCP control block — populated on connect (client) or accept
    /// (server) once a socket is paired with a peer.
    pub tcb: Option<Tcb>,
    /// Listener state — populated by `listen(2)`.
    pub listen: Option<ListenState>,
    /// Waker for a `connect` parked in `SynSent` waiting for SYN-ACK.
    /// Single-slot: connect is not callable on `&self`, so only one
    /// task ever parks here.
    pub connect_waker: Option<Waker>,
    /// The shim dropped its `Fd` handle, but the kernel is still
    /// draining queued bytes / FIN / waiting for a final ACK. The
    /// socket is reaped from the table once TCP reaches a terminal
    /// state. Behaves like Linux's `close(2)` — returns immediately
    /// but the kernel keeps running the state machine.
    pub fd_closed: bool,
    /// PATCH (poetry-harness): `SO_LINGER`. `Some(Duration::ZERO)` makes
    /// `close` abortive (RST, unsent and unread data discarded); any
    /// other value closes gracefully, as without it (a simulated close
    /// never blocks).
    pub linger: Option<Duration>,
    /// PATCH (poetry-harness): `SO_SNDBUF`; `None` takes the kernel's.
    pub send_buf_cap: Option<usize>,
    /// PATCH (poetry-harness): `SO_RCVBUF`; `None` takes the kernel's.
    pub recv_buf_cap: Option<usize>,
}

impl Socket {
    pub fn new(domain: Domain, ty: Type) -> Self {
        Self {
            domain,
            ty,
            bound: None,
            peer: None,
            broadcast: false,
            ttl: 64,
            tcp_nodelay: false,
            recv_queue: VecDeque::new(),
            read_wakers: Vec::new(),
            write_wakers: Vec::new(),
            tcb: None,
            listen: None,
            connect_waker: None,
            fd_closed: false,
            linger: None,
            send_buf_cap: None,
            recv_buf_cap: None,
        }
    }

    /// Register `waker` as interested in read-side readiness, dedup'd
    /// against existing entries via `will_wake`.
    pub fn register_read_waker(&mut self, waker: &Waker) {
        register(&mut self.read_wakers, waker);
    }

    /// Register `waker` as interested in write-side readiness, dedup'd
    /// against existing entries via `will_wake`.
    pub fn register_write_waker(&mut self, waker: &Waker) {
        register(&mut self.write_wakers, waker);
    }

    /// Wake every task currently parked on read-side readiness.
    pub fn wake_read(&mut self) {
        wake_all(&mut self.read_wakers);
    }

    /// Wake every task currently parked on write-side readiness.
    pub fn wake_write(&mut self) {
        wake_all(&mut self.write_wakers);
    }
}

fn register(slot: &mut Vec<Waker>, waker: &Waker) {
    if slot.iter().any(|w| w.will_wake(waker)) {
        return;
    }
    slot.push(waker.clone());
}

fn wake_all(slot: &mut Vec<Waker>) {
    for w in slot.drain(..) {
        w.wake();
    }
}

/// Binding key. Matches the granularity real kernels index on:
/// transport protocol, local address, local port. With `SO_REUSEPORT`,
/// multiple sockets can share one key — the table value is a list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BindKey {
    pub domain: Domain,
    pub ty: Type,
    pub local_addr: IpAddr,
    pub local_port: u16,
}

/// Per-host socket table.
#[derive(Debug)]
pub struct SocketTable {
    next_id: u64,
    // PATCH (poetry-harness): a BTreeMap by fd (fds only grow, so this is
    // insertion order, as upstream's IndexMap with `shift_remove`), whose
    // removal does not shift every later socket (O(N) per close, with
    // thousands of connections on one server).
    sockets: BTreeMap<Fd, Socket>,
    /// Reverse index for inbound demux: bound tuple → sockets. List
    /// (not single `Fd`) because `SO_REUSEPORT` permits multiple
    /// sockets to share the exact same tuple.
    // PATCH (poetry-harness): a set per key (fd order = bind order):
    // every accepted child shares its listener's key, and removing one
    // from a Vec of thousands was O(N).
    bindings: crate::FastMap<BindKey, BTreeSet<Fd>>,
    /// 4-tuple index for TCP inbound demux: (local, remote) → fd.
    /// Populated by `poll_connect` and `accept_syn`, cleared on
    /// socket removal. Never contains wildcard locals — client
    /// sockets auto-bind concretely, and listener children inherit
    /// the concrete accepted local address.
    connections: crate::FastMap<(SocketAddr, SocketAddr), Fd>,
    /// PATCH (poetry-harness): listening sockets by bound tuple. Accepted
    /// children share their listener's binding, so upstream's
    /// `find_listener` walked every child for each inbound SYN and each
    /// completed handshake (42% of the CPU with 2,000 clients).
    listeners: crate::FastMap<BindKey, Fd>,
    ports: PortAllocator,
}

impl SocketTable {
    pub fn new() -> Self {
        Self {
            next_id: 1,
            sockets: BTreeMap::new(),
            bindings: crate::FastMap::default(),
            connections: crate::FastMap::default(),
            listeners: crate::FastMap::default(),
            ports: PortAllocator::new(DEFAULT_EPHEMERAL_PORTS),
        }
    }

    pub fn insert(&mut self, socket: Socket) -> Fd {
        let fd = Fd(self.next_id);
        self.next_id += 1;
        self.sockets.insert(fd, socket);
        fd
    }

    pub fn get(&self, fd: Fd) -> Option<&Socket> {
        self.sockets.get(&fd)
    }

    pub fn iter(&self) -> impl Iterator<Item = (Fd, &Socket)> {
        self.sockets.iter().map(|(&fd, s)| (fd, s))
    }

    pub fn get_mut(&mut self, fd: Fd) -> Option<&mut Socket> {
        self.sockets.get_mut(&fd)
    }

    /// Remove a socket from the table, also clearing any binding or
    /// 4-tuple connection entry that points at it.
    pub fn remove(&mut self, fd: Fd) -> Option<Socket> {
        // PATCH (poetry-harness): remove the socket's own entries by key
        // instead of sweeping every binding and connection (quadratic
        // when a server closes thousands of connections). A socket is in
        // `bindings` under `bound` only, and in `connections` under
        // (its local endpoint, its peer) only.
        let st = self.sockets.get(&fd)?;
        if let Some(key) = st.bound.clone() {
            if let Some(fds) = self.bindings.get_mut(&key) {
                fds.remove(&fd);
                if fds.is_empty() {
                    self.bindings.shift_remove(&key);
                }
            }
            if self.listeners.get(&key) == Some(&fd) {
                self.listeners.shift_remove(&key);
            }
            if let Some(tcb) = st.tcb.as_ref() {
                let local = SocketAddr::new(key.local_addr, key.local_port);
                if self.connections.get(&(local, tcb.peer)) == Some(&fd) {
                    // Only looked up, never iterated in order: swap_remove.
                    self.connections.swap_remove(&(local, tcb.peer));
                } else {
                    // Bound to a wildcard and indexed under a concrete
                    // source address: the rare case, swept.
                    self.connections.retain(|_, f| *f != fd);
                }
            }
        }
        self.sockets.remove(&fd)
    }

    /// PATCH (poetry-harness): index `fd` as the listener on `key`.
    pub fn insert_listener(&mut self, key: BindKey, fd: Fd) {
        self.listeners.insert(key, fd);
    }

    /// PATCH (poetry-harness): the listener bound exactly to `key`.
    pub fn find_listener(&self, key: &BindKey) -> Option<Fd> {
        self.listeners.get(key).copied()
    }

    /// All sockets bound to `key`, in bind order.
    pub fn find_by_bind(&self, key: &BindKey) -> impl Iterator<Item = Fd> + '_ {
        // PATCH (poetry-harness): an iterator over the set, not a slice.
        self.bindings.get(key).into_iter().flatten().copied()
    }

    pub fn insert_binding(&mut self, key: BindKey, fd: Fd) {
        self.bindings.entry(key).or_default().insert(fd);
    }

    /// Index a TCP connection by 4-tuple. Panics if `local` is
    /// unspecified — the index invariant requires concrete addrs.
    pub fn insert_connection(&mut self, local: SocketAddr, remote: SocketAddr, fd: Fd) {
        assert!(
            !local.ip().is_unspecified(),
            "connection index requires concrete local addr"
        );
        self.connections.insert((local, remote), fd);
    }

    /// Look up a connected socket by its 4-tuple.
    pub fn find_connection(&self, local: SocketAddr, remote: SocketAddr) -> Option<Fd> {
        self.connections.get(&(local, remote)).copied()
    }

    /// Iterate all bindings on `(domain, ty, port)` regardless of local
    /// address. Used to evaluate wildcard↔specific conflicts at bind
    /// time.
    pub fn bindings_on_port(
        &self,
        domain: Domain,
        ty: Type,
        port: u16,
    ) -> impl Iterator<Item = (&BindKey, &BTreeSet<Fd>)> {
        // PATCH (poetry-harness): sets, not slices (see `bindings`).
        self.bindings
            .iter()
            .filter(move |(k, _)| k.domain == domain && k.ty == ty && k.local_port == port)
    }

    /// Allocate an ephemeral port with no existing binding on
    /// `(domain, ty, port)` at any local address. Matches Linux's
    /// `inet_csk_get_port` for `:0` — it searches globally and skips
    /// any port already in use, without considering `SO_REUSE*`.
    pub fn allocate_port(&mut self, domain: Domain, ty: Type) -> Option<u16> {
        let bindings = &self.bindings;
        self.ports.allocate(|p| {
            bindings
                .keys()
                .any(|k| k.domain == domain && k.ty == ty && k.local_port == p)
        })
    }
}

impl Default for SocketTable {
    fn default() -> Self {
        Self::new()
    }
}

/// Ephemeral port allocator. Linear scan with a rotating cursor.
#[derive(Debug)]
pub struct PortAllocator {
    range: RangeInclusive<u16>,
    cursor: u16,
}

impl PortAllocator {
    pub fn new(range: RangeInclusive<u16>) -> Self {
        let cursor = *range.start();
        Self { range, cursor }
    }

    /// Allocate the next free port, given a predicate that returns
    /// `true` when a port is already in use. Returns `None` if the
    /// range is exhausted.
    pub fn allocate(&mut self, mut in_use: impl FnMut(u16) -> bool) -> Option<u16> {
        let start = self.cursor;
        loop {
            let p = self.cursor;
            self.cursor = if p == *self.range.end() {
                *self.range.start()
            } else {
                p + 1
            };
            if !in_use(p) {
                return Some(p);
            }
            if self.cursor == start {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_allocator_skips_in_use() {
        let mut a = PortAllocator::new(10..=12);
        let used = [10u16];
        assert_eq!(a.allocate(|p| used.contains(&p)), Some(11));
        assert_eq!(a.allocate(|p| used.contains(&p)), Some(12));
    }

    #[test]
    fn port_allocator_exhausts() {
        let mut a = PortAllocator::new(10..=11);
        let used = [10u16, 11];
        assert_eq!(a.allocate(|p| used.contains(&p)), None);
    }

    #[test]
    fn fds_are_unique() {
        let mut t = SocketTable::new();
        let a = t.insert(Socket::new(Domain::Inet, Type::Dgram));
        let b = t.insert(Socket::new(Domain::Inet, Type::Dgram));
        assert_ne!(a, b);
    }

    #[test]
    fn multiple_bindings_on_same_key() {
        let mut t = SocketTable::new();
        let a = t.insert(Socket::new(Domain::Inet, Type::Dgram));
        let b = t.insert(Socket::new(Domain::Inet, Type::Dgram));
        let key = BindKey {
            domain: Domain::Inet,
            ty: Type::Dgram,
            local_addr: "10.0.0.1".parse().unwrap(),
            local_port: 5000,
        };
        t.insert_binding(key.clone(), a);
        t.insert_binding(key.clone(), b);
        assert_eq!(t.find_by_bind(&key).collect::<Vec<_>>(), [a, b]);
    }

    // PATCH (poetry-harness): the byte queues.
    #[test]
    fn a_segment_within_one_write_shares_it_and_one_across_writes_copies() {
        let mut q = SendQueue::default();
        q.push(Bytes::from_static(b"hello "));
        q.push(Bytes::from_static(b"world"));
        assert_eq!(q.len(), 11);
        let first = q.chunks[0].1.clone();
        let within = q.slice(1, 5);
        assert_eq!(&within[..], b"ello");
        assert_eq!(within.as_ptr(), first[1..].as_ptr(), "a slice, not a copy");
        assert_eq!(&q.slice(4, 9)[..], b"o wor");
        let at_a_boundary = q.slice(6, 11);
        assert_eq!(&at_a_boundary[..], b"world");
        assert_eq!(
            at_a_boundary.as_ptr(),
            q.chunks[1].1.as_ptr(),
            "a segment that starts where a write starts is a slice of it"
        );
        q.advance(8);
        assert_eq!(q.len(), 3);
        assert_eq!(&q.slice(0, 3)[..], b"rld");
        q.advance(3);
        assert_eq!((q.len(), q.chunks.len()), (0, 0));
        q.push(Bytes::new());
        assert_eq!(q.chunks.len(), 0, "an empty write holds nothing");
    }

    #[test]
    fn the_send_queue_agrees_with_a_flat_buffer() {
        // Writes of 0 to 9 bytes, acknowledgements and segments in a fixed
        // pseudo-random order, against a plain `Vec` of the bytes held.
        let mut q = SendQueue::default();
        let mut flat: Vec<u8> = Vec::new();
        let mut x: u32 = 0x2545_f491;
        let mut next = |m: u32| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % m) as usize
        };
        let mut byte = 0u8;
        for step in 0..5_000 {
            match next(3) {
                0 => {
                    let write: Vec<u8> = (0..next(10))
                        .map(|_| {
                            byte = byte.wrapping_add(1);
                            byte
                        })
                        .collect();
                    q.push(Bytes::copy_from_slice(&write));
                    flat.extend_from_slice(&write);
                }
                1 => {
                    let n = next(flat.len() as u32 + 1);
                    q.advance(n);
                    flat.drain(..n);
                }
                _ => {
                    let start = next(flat.len() as u32 + 1);
                    let end = start + next((flat.len() - start) as u32 + 1);
                    assert_eq!(&q.slice(start, end)[..], &flat[start..end], "step {step}");
                }
            }
            assert_eq!(q.len(), flat.len(), "step {step}");
        }
        q.clear();
        q.push(Bytes::from_static(b"after"));
        assert_eq!(&q.slice(1, 4)[..], b"fte", "offsets go on after a clear");
    }

    #[test]
    fn received_bytes_are_read_in_order_across_segments() {
        let mut q = RecvQueue::default();
        q.push(Bytes::from_static(b"abc"));
        q.push(Bytes::new());
        q.push(Bytes::from_static(b"defg"));
        assert_eq!((q.len(), q.is_empty()), (7, false));
        let mut peeked = [0u8; 5];
        q.peek(&mut peeked);
        assert_eq!(&peeked, b"abcde");
        assert_eq!(q.len(), 7, "a peek keeps the bytes");
        let mut out = Vec::new();
        q.take(5, |b| out.extend_from_slice(b));
        assert_eq!((&out[..], q.len()), (&b"abcde"[..], 2));
        q.take(2, |b| out.extend_from_slice(b));
        assert_eq!(&out[..], b"abcdefg");
        assert!(q.is_empty());
        q.push(Bytes::from_static(b"x"));
        q.clear();
        assert!(q.is_empty());
    }
}

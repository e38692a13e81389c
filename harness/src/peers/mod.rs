//! Scripted peers: the harness playing the other side of the subject.
//!
//! Peers are written once against [`crate::net::Net`], so the sim backend
//! and a live backend drive them unchanged. They log every step to the
//! [`Recorder`] and note what verdicts need in the shared [`Observations`].

pub mod client;
pub mod poetry_server;
pub mod transform_server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;

pub use crate::transcript::Recorder;

/// The port every simulated host listens on.
pub const PORT: u16 = 10000;

/// How the other side ended a connection, as a peer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ending {
    /// Clean close (read returned 0).
    Fin,
    /// Reset (read or write failed with a reset).
    Rst,
    /// The peer itself left first.
    Left,
    /// Connecting was refused.
    Refused,
    /// Connecting failed for another reason (not the subject's doing).
    ConnectFailed,
}

/// Bytes a peer keeps of what a subject sends it. Above the largest poem
/// of the catalog (8 MiB), so every comparison a case makes normally sees
/// whole bytes; past it a peer only counts and hashes, so a subject that
/// floods it cannot grow the harness without bound.
pub const KEEP_CAP: usize = 16 * 1024 * 1024;

/// Bytes the client peers of one run keep together: [`KEEP_CAP`] too, so
/// a server that sends endless poems to a case's fifty clients costs the
/// harness 16 MiB, not fifty times that. Far above what the catalog's
/// cases send all their clients together (a few MiB).
pub const RUN_KEEP_CAP: usize = KEEP_CAP;

/// A kept prefix that outgrows this many bytes gets the room for all it
/// may still keep (its cap, or what the run's budget has left) in one
/// allocation; only the pages written take memory. Below, it doubles as a
/// `Vec` does: most peers keep a few KiB. Above, the doubling of the
/// 8 MiB that `server.stalled-reader-does-not-block-others`'s second
/// client keeps had glibc shrink its heap (`madvise`) and fault the pages
/// back in on every run of the case: in a process that runs the catalog
/// again and again (the criterion bench, `mutants`, `--explore`) the
/// kernel took 19.5% of the CPU time, and 1.2% with this (BENCHMARKS.md,
/// eighth session).
const GROW_ALL_PAST: usize = 1024 * 1024;

/// What the client peers of one run may still keep, shared among them
/// (see [`RUN_KEEP_CAP`]).
#[derive(Debug, Clone)]
pub struct KeepBudget(Arc<std::sync::atomic::AtomicUsize>);

impl Default for KeepBudget {
    fn default() -> Self {
        KeepBudget(Arc::new(std::sync::atomic::AtomicUsize::new(RUN_KEEP_CAP)))
    }
}

impl KeepBudget {
    /// What the budget still holds.
    fn left(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes up to `want` bytes from the budget; returns how many it got.
    fn take(&self, want: usize) -> usize {
        use std::sync::atomic::Ordering;
        match self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left - left.min(want))
            }) {
            Ok(left) | Err(left) => left.min(want),
        }
    }
}

/// XXH3 of a byte stream as it arrives: the same digest for the same bytes
/// in every run, however they were cut into pieces. Not SipHash
/// (`DefaultHasher`): every byte a peer receives goes through it, and on
/// the 8 MiB poem of `server.stalled-reader-does-not-block-others` SipHash
/// was a large share of the case's CPU (BENCHMARKS.md, simulator CPU).
/// Digests are only compared within one process.
#[derive(Clone, Default)]
struct StreamDigest(Box<xxhash_rust::xxh3::Xxh3>);

impl std::fmt::Debug for StreamDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamDigest({:#018x})", self.0.digest())
    }
}

/// What a peer keeps of a byte stream: a prefix of at most a cap, the
/// count of every byte, and a digest of every byte.
#[derive(Debug, Clone)]
pub struct Kept {
    prefix: Vec<u8>,
    len: u64,
    /// The digest of every byte seen, from the first byte not kept on.
    /// Until then every byte seen is in `prefix`, hashed only if
    /// [`Kept::digest`] is asked: most peers keep all they are sent, and
    /// hashing each byte they receive was 2% of the catalog's CPU.
    hasher: Option<StreamDigest>,
    cap: usize,
    budget: Option<KeepBudget>,
}

impl Default for Kept {
    fn default() -> Self {
        Kept::with_cap(KEEP_CAP)
    }
}

impl Kept {
    /// Keeps at most `cap` bytes.
    pub fn with_cap(cap: usize) -> Self {
        Kept {
            prefix: Vec::new(),
            len: 0,
            hasher: None,
            cap,
            budget: None,
        }
    }

    /// Keeps at most [`KEEP_CAP`], and no more than `budget` allows (what
    /// every client peer of a run shares).
    pub fn with_budget(budget: KeepBudget) -> Self {
        Kept {
            budget: Some(budget),
            ..Kept::default()
        }
    }

    /// The bytes kept, moved out (none are kept afterwards).
    pub fn take_prefix(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.prefix)
    }

    /// Takes the next bytes of the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        let mut room = self.cap.saturating_sub(self.prefix.len()).min(bytes.len());
        if let Some(budget) = &self.budget {
            room = budget.take(room);
        }
        let needed = self.prefix.len() + room;
        if needed > self.prefix.capacity() && needed > GROW_ALL_PAST {
            // Room for all it may still keep, at once: only the pages
            // written take memory, and a large stream is not copied and
            // faulted in again each time its prefix doubles.
            let left = self.budget.as_ref().map_or(usize::MAX, KeepBudget::left);
            let most = self.cap.min(needed.saturating_add(left));
            self.prefix.reserve_exact(most - self.prefix.len());
        }
        self.prefix.extend_from_slice(&bytes[..room]);
        self.len += bytes.len() as u64;
        match &mut self.hasher {
            Some(h) => h.0.update(bytes),
            None if room < bytes.len() => {
                // The first byte not kept: the stream so far is the
                // prefix, then the rest of `bytes`.
                let mut h = self.prefix_digest();
                h.0.update(&bytes[room..]);
                self.hasher = Some(h);
            }
            None => {}
        }
    }

    /// Every byte seen, kept or not.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes kept: the first ones, up to the cap.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Whether bytes were seen past the cap.
    pub fn truncated(&self) -> bool {
        self.len > self.prefix.len() as u64
    }

    /// The digest of every byte seen.
    pub fn digest(&self) -> u64 {
        match &self.hasher {
            Some(h) => h.0.digest(),
            None => self.prefix_digest().0.digest(),
        }
    }

    /// A digest that has taken the prefix (until the first byte not kept,
    /// every byte seen).
    fn prefix_digest(&self) -> StreamDigest {
        let mut h = StreamDigest::default();
        h.0.update(&self.prefix);
        h
    }

    /// The digest [`Kept::digest`] gives for exactly `bytes`.
    pub fn digest_of(bytes: &[u8]) -> u64 {
        let mut k = Kept::with_cap(0);
        k.push(bytes);
        k.digest()
    }
}

/// What one scripted client saw.
#[derive(Debug, Clone, Default)]
pub struct ClientSeen {
    /// The bytes the subject sent it, up to [`KEEP_CAP`]. Shared, not
    /// owned: a case's result is cloned for each report, and the stalled
    /// reader's neighbour keeps 8 MiB.
    pub received: Bytes,
    /// How many bytes the subject sent it, kept or not.
    pub received_len: u64,
    /// [`Kept::digest`] of every byte the subject sent it, when more
    /// arrived than [`ClientSeen::received`] keeps (the digest is then all
    /// there is to compare the rest by); 0 when every byte is kept.
    pub received_digest: u64,
    /// How the connection ended (None: it did not end).
    pub ending: Option<Ending>,
    /// When it left, if it left first.
    pub left_at: Option<Duration>,
    /// The request payload it sent, if any.
    pub request: Option<Vec<u8>>,
}

impl ClientSeen {
    /// Whether more arrived than [`ClientSeen::received`] keeps.
    pub fn received_truncated(&self) -> bool {
        self.received_len > self.received.len() as u64
    }

    /// Whether the subject sent exactly `expected`: byte for byte, or by
    /// length and digest when more arrived than was kept.
    pub fn received_equals(&self, expected: &[u8]) -> bool {
        if self.received_truncated() {
            self.received_len == expected.len() as u64
                && self.received_digest == Kept::digest_of(expected)
        } else {
            self.received == expected
        }
    }

    /// Whether what the subject sent is a prefix of `whole`.
    pub fn received_prefix_of(&self, whole: &[u8]) -> bool {
        if self.received_truncated() {
            self.received_len <= whole.len() as u64
                && self.received_digest == Kept::digest_of(&whole[..self.received_len as usize])
        } else {
            whole.starts_with(&self.received)
        }
    }
}

/// What the peers observed of the subject during one run.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// Connections each server peer accepted, by peer name.
    pub accepts: IndexMap<String, usize>,
    /// When the subject closed each of a server peer's connections.
    pub closes: IndexMap<String, Vec<(Duration, Ending)>>,
    /// Per client copy (`c1`, `c2-3`, ...).
    pub clients: IndexMap<String, ClientSeen>,
    /// Request payloads the transform peer received, in order.
    pub requests: Vec<Vec<u8>>,
    /// Requests the transform peer could not decode, with the reason.
    pub bad_requests: Vec<String>,
    /// Connections each server peer ended itself with a reset, by peer
    /// name: neither open nor closed by the subject.
    pub resets: IndexMap<String, usize>,
    /// When a server peer (poetry or transform) first accepted a
    /// connection from the subject: when a client's work began.
    pub first_accept: Option<Duration>,
    /// What the harness itself ran short of during the run (descriptors,
    /// memory, ports), by peer: a case with any is a harness error, never
    /// a verdict on the subject ([`is_harness_shortage`]).
    pub harness_faults: Vec<String>,
    /// What the client peers may still keep of what the subject sends.
    pub keep_budget: KeepBudget,
}

impl Observations {
    /// Notes an accepted connection at `at`.
    pub fn accepted(&mut self, at: Duration) {
        self.first_accept.get_or_insert(at);
    }
}

/// Whether an IO error is the harness running short of its own resources
/// (open files, kernel memory, local ports), as opposed to anything the
/// subject did: such a failure must not become the subject's verdict.
pub fn is_harness_shortage(e: &std::io::Error) -> bool {
    use nix::libc;
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

/// Notes that peer `who` could not `what` for want of the harness's own
/// resources (see [`Observations::harness_faults`]).
pub fn note_shortage(seen: &Shared, rec: &Recorder, who: &str, what: &str, e: &std::io::Error) {
    let fault = format!("{who} could not {what}: {e}");
    rec.log(
        who,
        format!("harness short of resources: could not {what}: {e}"),
    );
    note(seen, |o| o.harness_faults.push(fault));
}

/// The next connection on a peer's listener. A shortage of the harness's
/// own (too many open files) is noted as a harness fault and retried, so
/// the case ends as a harness error rather than with a subject left
/// waiting; any other accept error ends the peer, logged.
pub async fn accept(
    listener: &crate::net::TcpListener,
    who: &str,
    rec: &Recorder,
    seen: &Shared,
) -> std::io::Result<crate::net::TcpStream> {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return Ok(stream),
            Err(e) if is_harness_shortage(&e) => {
                note_shortage(seen, rec, who, "accept a connection", &e);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => {
                rec.log(who, format!("accept failed: {e}"));
                return Err(e);
            }
        }
    }
}

/// Where a peer listens: an address to bind (the simulator), or a
/// listener bound already (live: bound before the program starts, so the
/// program can never connect before the peer listens).
pub enum Endpoint {
    /// Bind this address.
    Addr(String),
    /// Use this listener.
    Bound(crate::net::TcpListener),
}

impl From<String> for Endpoint {
    fn from(addr: String) -> Self {
        Endpoint::Addr(addr)
    }
}

impl From<crate::net::TcpListener> for Endpoint {
    fn from(l: crate::net::TcpListener) -> Self {
        Endpoint::Bound(l)
    }
}

impl Endpoint {
    /// The listener, binding it if need be.
    pub async fn listen(self, net: crate::net::Net) -> std::io::Result<crate::net::TcpListener> {
        match self {
            Endpoint::Addr(a) => net.bind(&a).await,
            Endpoint::Bound(l) => Ok(l),
        }
    }
}

/// Shared [`Observations`].
pub type Shared = Arc<Mutex<Observations>>;

/// Locks the observations (a poisoned lock means a peer panicked: a bug).
pub fn note<R>(shared: &Shared, f: impl FnOnce(&mut Observations) -> R) -> R {
    f(&mut shared.lock().expect("observations lock"))
}

/// Decodes hex digits (whitespace allowed between bytes).
pub fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// Whether an IO error is a reset (as opposed to any other failure).
pub fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peers_of_a_run_share_one_keep_budget() {
        let budget = KeepBudget::default();
        let chunk = vec![7u8; 1024 * 1024];
        let mut peers: Vec<Kept> = (0..3).map(|_| Kept::with_budget(budget.clone())).collect();
        // Each is sent 10 MiB: 30 MiB in all, 16 MiB kept in all.
        for _ in 0..10 {
            for k in &mut peers {
                k.push(&chunk);
            }
        }
        let kept: usize = peers.iter().map(|k| k.prefix().len()).sum();
        assert_eq!(kept, RUN_KEEP_CAP);
        let whole = vec![7u8; 10 * 1024 * 1024];
        for k in &peers {
            assert_eq!(k.len(), whole.len() as u64);
            assert_eq!(k.digest(), Kept::digest_of(&whole));
            assert!(k.prefix().len() <= KEEP_CAP);
        }
        // A run of its own has a budget of its own.
        let mut other = Kept::with_budget(KeepBudget::default());
        other.push(&chunk);
        assert_eq!(other.prefix().len(), chunk.len());
    }

    #[test]
    fn a_prefix_past_a_mib_gets_room_for_all_it_may_keep_at_once() {
        let stream: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        // Alone in its run: room up to its cap once past 1 MiB, and the
        // bytes as sent.
        let mut alone = Kept::with_budget(KeepBudget::default());
        let mut capacities = Vec::new();
        for piece in stream.chunks(64 * 1024) {
            alone.push(piece);
            if capacities.last() != Some(&alone.prefix.capacity()) {
                capacities.push(alone.prefix.capacity());
            }
        }
        assert_eq!(alone.prefix(), &stream[..]);
        assert_eq!(alone.prefix.capacity(), KEEP_CAP, "{capacities:?}");
        assert!(
            capacities
                .iter()
                .all(|&c| c <= GROW_ALL_PAST || c == KEEP_CAP),
            "{capacities:?}"
        );
        // With 2 MiB of its run's budget left: room for those 2 MiB, no
        // more.
        let budget = KeepBudget::default();
        assert_eq!(
            budget.take(RUN_KEEP_CAP - 2 * 1024 * 1024),
            RUN_KEEP_CAP - 2 * 1024 * 1024
        );
        let mut shared = Kept::with_budget(budget);
        for piece in stream.chunks(64 * 1024) {
            shared.push(piece);
        }
        assert_eq!(shared.prefix(), &stream[..2 * 1024 * 1024]);
        assert_eq!(shared.prefix.capacity(), 2 * 1024 * 1024);
        assert_eq!(shared.len(), stream.len() as u64);
    }

    #[test]
    fn a_peer_fed_past_the_cap_keeps_a_prefix_the_count_and_the_digest() {
        let stream: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let mut kept = Kept::with_cap(1000);
        for piece in stream.chunks(333) {
            kept.push(piece);
        }
        assert_eq!(kept.prefix(), &stream[..1000]);
        assert_eq!(kept.len(), 10_000);
        assert!(kept.truncated());
        assert_eq!(kept.digest(), Kept::digest_of(&stream));
        assert_ne!(kept.digest(), Kept::digest_of(&stream[..9_999]));
        let seen = ClientSeen {
            received: Bytes::copy_from_slice(kept.prefix()),
            received_len: kept.len(),
            received_digest: kept.digest(),
            ..ClientSeen::default()
        };
        assert!(seen.received_equals(&stream));
        assert!(!seen.received_equals(&stream[..1000]));
        let mut longer = stream.clone();
        longer.push(b'!');
        assert!(seen.received_prefix_of(&longer));
        longer[5000] ^= 1;
        assert!(!seen.received_prefix_of(&longer));
    }

    #[test]
    fn the_digest_is_the_same_however_the_stream_is_cut_and_kept() {
        let stream: Vec<u8> = (0..5_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let want = Kept::digest_of(&stream);
        for cap in [0, 1, 999, 1000, 4_999, 5_000, KEEP_CAP] {
            for piece in [1, 333, 1000, 5_000] {
                let mut kept = Kept::with_cap(cap);
                for p in stream.chunks(piece) {
                    kept.push(p);
                }
                assert_eq!(kept.digest(), want, "cap {cap}, pieces of {piece}");
                assert_eq!(kept.truncated(), cap < stream.len(), "cap {cap}");
            }
        }
    }

    #[test]
    fn under_the_cap_everything_is_kept() {
        let mut kept = Kept::default();
        kept.push(b"Tyger ");
        kept.push(b"Tyger");
        assert_eq!(kept.prefix(), b"Tyger Tyger");
        assert!(!kept.truncated());
        assert_eq!(kept.digest(), Kept::digest_of(b"Tyger Tyger"));
    }

    #[test]
    fn hex_decodes_and_refuses_odd_digits() {
        assert_eq!(decode_hex("ff 00 41").unwrap(), vec![0xff, 0, 0x41]);
        assert!(decode_hex("abc").is_none());
        assert!(decode_hex("zz").is_none());
    }
}

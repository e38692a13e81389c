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

/// What one scripted client saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ClientSeen {
    /// Every byte the subject sent it.
    pub received: Vec<u8>,
    /// How the connection ended (None: it did not end).
    pub ending: Option<Ending>,
    /// When it left, if it left first.
    pub left_at: Option<Duration>,
    /// The request payload it sent, if any.
    pub request: Option<Vec<u8>>,
}

/// What the peers observed of the subject during one run.
#[derive(Debug, Clone, Default, serde::Serialize)]
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
}

impl Observations {
    /// Notes an accepted connection at `at`.
    pub fn accepted(&mut self, at: Duration) {
        self.first_accept.get_or_insert(at);
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
    fn hex_decodes_and_refuses_odd_digits() {
        assert_eq!(decode_hex("ff 00 41").unwrap(), vec![0xff, 0, 0x41]);
        assert!(decode_hex("abc").is_none());
        assert!(decode_hex("zz").is_none());
    }
}

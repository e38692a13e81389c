//! What the harness's scripted peers do, as data.
//!
//! A case tests one program (the subject); the harness plays every other
//! side: poetry servers ([`ServerPeer`]), clients ([`ClientPeer`]) and a
//! transform server ([`XformPeer`]). The behaviour lives in
//! [`crate::peers`]; these structs only say what to do.

use serde::Deserialize;

use super::poem::PoemSpec;
use crate::duration::Dur;

/// How a scripted poetry server ends its side of a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum End {
    /// A clean close: FIN.
    #[default]
    Fin,
    /// An abortive close: RST.
    Rst,
    /// Keep the connection open and send nothing more, for ever.
    Stall,
}

/// A scripted poetry server (for a client, a transforming client or a proxy).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerPeer {
    /// Host name in the simulator and in transcripts (default s1, s2, ...).
    #[serde(default)]
    pub name: Option<String>,
    /// The poem it serves.
    #[serde(default)]
    pub poem: PoemSpec,
    /// Sizes of successive writes; the last size repeats. Default: one write.
    #[serde(default)]
    pub chunks: Option<Vec<usize>>,
    /// Seeded random write sizes between these two bounds (inclusive).
    #[serde(default)]
    pub random_chunks: Option<[usize; 2]>,
    /// Put the first write boundary inside the poem's first multi-byte
    /// UTF-8 character.
    #[serde(default)]
    pub split_utf8: bool,
    /// Pause between two writes.
    #[serde(default)]
    pub delay: Dur,
    /// Seeded random extra pause before each write after the first: from
    /// zero to this much, in steps of [`JITTER_STEP`].
    #[serde(default)]
    pub jitter: Dur,
    /// Pause between accepting and the first write.
    #[serde(default)]
    pub first_delay: Dur,
    /// Send only the first N bytes of the poem.
    #[serde(default)]
    pub truncate: Option<usize>,
    /// After this many bytes, pause for `pause`, then go on.
    #[serde(default)]
    pub pause_after: Option<usize>,
    /// How long to pause at `pause_after`.
    #[serde(default)]
    pub pause: Dur,
    /// How the connection ends after the last byte.
    #[serde(default)]
    pub end: End,
    /// Pause between the last byte and the end (a late FIN).
    #[serde(default)]
    pub end_delay: Dur,
    /// Give up on a write that cannot complete within this long (the
    /// subject has stopped reading and the connection's buffers are full):
    /// close with RST, as a server with a send timeout does. Only a client
    /// that keeps reading every connection gets the poem. Note that the
    /// sim backend's buffers count writes, not bytes (4096 writes fill
    /// them), so a poem must be cut into more writes than that to block.
    #[serde(default)]
    pub write_timeout: Option<Dur>,
    /// Misbehave (truncate, end, pause, delays) on the first N connections
    /// only; later ones get the whole poem at once and a FIN. Default: all.
    #[serde(default)]
    pub misbehave_first: Option<usize>,
    /// Nothing listens: connections are refused.
    #[serde(default)]
    pub refuse: bool,
    /// The host never answers: connection attempts hang.
    #[serde(default)]
    pub blackhole: bool,
}

impl ServerPeer {
    /// The bytes it sends on a connection where it misbehaves: its poem,
    /// cut at `truncate`.
    pub fn sent_poem(&self) -> bytes::Bytes {
        let p = self.poem.bytes();
        p.slice(..self.truncate.unwrap_or(p.len()).min(p.len()))
    }
}

/// Jitter comes in steps of this much, so that simulated times stay on
/// the tick (the step joins the durations the tick is chosen from).
pub const JITTER_STEP: std::time::Duration = std::time::Duration::from_millis(10);

/// How a scripted client leaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Leave {
    /// Close cleanly (FIN).
    #[default]
    Fin,
    /// Close abortively (RST).
    Rst,
}

/// A scripted client (for a server, a transform server or a proxy).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPeer {
    /// Name in transcripts and expectations (default c1, c2, ...).
    #[serde(default)]
    pub name: Option<String>,
    /// How many identical clients (named `name-1`, `name-2`, ... when > 1).
    #[serde(default = "one")]
    pub count: usize,
    /// When the first copy connects.
    #[serde(default)]
    pub start: Dur,
    /// Time between two copies' starts.
    #[serde(default)]
    pub stagger: Dur,
    /// Bytes to send once connected (a TOML string; `\u` escapes allowed).
    #[serde(default)]
    pub send: Option<String>,
    /// Bytes to send, in hex (for bytes that are not UTF-8).
    #[serde(default)]
    pub send_hex: Option<String>,
    /// Send a transform request: this netstring payload is sent after
    /// `send` (`name.poem`; see `request_poem`).
    #[serde(default)]
    pub request: Option<String>,
    /// The poem appended to `request` after a dot, if given.
    #[serde(default)]
    pub request_poem: Option<PoemSpec>,
    /// Send the request this many times on the one connection.
    #[serde(default = "one")]
    pub repeat: usize,
    /// Write what is sent in pieces of this many bytes.
    #[serde(default)]
    pub send_chunk: Option<usize>,
    /// Pause between two pieces.
    #[serde(default)]
    pub send_delay: Dur,
    /// Shut down the sending side (FIN) after sending.
    #[serde(default)]
    pub half_close: bool,
    /// Stop reading after this many bytes and leave.
    #[serde(default)]
    pub read_limit: Option<usize>,
    /// Read at most this many bytes at a time (a slow reader, with `read_delay`).
    #[serde(default)]
    pub read_chunk: Option<usize>,
    /// Pause between two reads.
    #[serde(default)]
    pub read_delay: Dur,
    /// Leave this long after connecting, whatever has arrived.
    #[serde(default)]
    pub leave_at: Option<Dur>,
    /// Leave this long after its own start, connected or not, whatever has
    /// arrived: a client that waits at most this long for its poem. Unlike
    /// `leave_at` it also counts the wait for the subject to accept, which
    /// in the sim backend is when a connection is established.
    #[serde(default)]
    pub deadline: Option<Dur>,
    /// Read this many bytes, then read nothing more while holding the
    /// connection open (its receive buffer fills) until `leave_at` or
    /// `deadline`.
    #[serde(default)]
    pub stop_reading_after: Option<usize>,
    /// How to leave early (at `read_limit` or `leave_at`).
    #[serde(default)]
    pub leave: Leave,
}

fn one() -> usize {
    1
}

/// What the scripted transform server does with a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum XformBehaviour {
    /// Reply correctly (using the requested transform), then FIN.
    #[default]
    Answer,
    /// Close (FIN) without a reply.
    Close,
    /// Reset (RST) without a reply.
    Reset,
    /// Read the request, then never reply nor close.
    Stall,
    /// Nothing listens.
    Absent,
    /// Reply with a malformed netstring (bad length).
    Malformed,
    /// Reply with a netstring cut short, then FIN.
    Truncated,
    /// Reply with a well-formed netstring whose payload is not UTF-8
    /// (Latin-1 text), then FIN.
    InvalidUtf8,
}

/// A scripted transform server (for a transforming client).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XformPeer {
    /// What it does with each request.
    #[serde(default)]
    pub behaviour: XformBehaviour,
    /// Pause before replying.
    #[serde(default)]
    pub delay: Dur,
}

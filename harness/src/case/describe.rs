//! A case in words, for `poetry-harness explain`: what each scripted peer
//! does and what the case expects, written for people (no Rust debug
//! text).

use std::fmt::Write as _;

use super::expect::words;
use super::{
    Case, ClientPeer, End, Expect, Leave, PoemSpec, ServerPeer, XformBehaviour, XformPeer,
};
use crate::duration::format_duration;
use crate::transcript::preview;

impl std::fmt::Display for PoemSpec {
    /// `the poem 'tyger' (843 bytes)`, `a generated poem of 1048576 bytes`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.bytes().len();
        match self {
            PoemSpec::Fixture(name) => write!(f, "the poem '{name}' ({len} bytes)"),
            PoemSpec::Text(_) | PoemSpec::Raw(_) => {
                write!(f, "the poem {}", preview(&self.bytes()))
            }
            PoemSpec::Size(_) => write!(f, "a generated poem of {len} bytes"),
            PoemSpec::Capitalised(_) => {
                write!(f, "a generated poem of {len} bytes, lines capitalised")
            }
        }
    }
}

fn dur(d: crate::duration::Dur) -> String {
    format_duration(d.0)
}

/// What a scripted poetry server does, in a sentence.
pub fn server_peer(name: &str, s: &ServerPeer) -> String {
    if s.refuse {
        return format!("{name}: nothing listens; every connection is refused");
    }
    if s.blackhole {
        return format!("{name}: never answers; connection attempts hang");
    }
    let mut parts = vec![format!("{name}: serves {}", s.poem)];
    if let Some(n) = s.truncate {
        parts.push(format!("but only its first {n} bytes"));
    }
    if !s.first_delay.0.is_zero() {
        parts.push(format!(
            "waits {} before the first write",
            dur(s.first_delay)
        ));
    }
    match (&s.chunks, &s.random_chunks) {
        (Some(c), _) => parts.push(format!(
            "in writes of {} byte(s) (the last size repeats)",
            c.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        (None, Some([lo, hi])) => parts.push(format!("in writes of {lo} to {hi} bytes (seeded)")),
        (None, None) => parts.push("in one write".into()),
    }
    if s.split_utf8 {
        parts.push("the first write ending inside a multi-byte character".into());
    }
    if !s.delay.0.is_zero() {
        parts.push(format!("{} between writes", dur(s.delay)));
    }
    if !s.jitter.0.is_zero() {
        parts.push(format!("plus up to {} of random pause", dur(s.jitter)));
    }
    if let Some(n) = s.pause_after {
        parts.push(format!("pausing {} after {n} bytes", dur(s.pause)));
    }
    let end = match s.end {
        End::Fin => "then closes cleanly (FIN)",
        End::Rst => "then resets the connection (RST)",
        End::Stall => "then stalls: sends nothing more and never closes",
    };
    if s.end_delay.0.is_zero() {
        parts.push(end.into());
    } else {
        parts.push(format!("{end}, {} after the last byte", dur(s.end_delay)));
    }
    if let Some(t) = s.write_timeout {
        parts.push(format!(
            "resets if a write cannot complete within {}",
            dur(t)
        ));
    }
    if let Some(n) = s.misbehave_first {
        parts.push(format!(
            "(only on its first {n} connection(s); later ones get the whole poem at once)"
        ));
    }
    parts.join(", ")
}

/// What a scripted client does, in a sentence.
pub fn client_peer(name: &str, c: &ClientPeer) -> String {
    let who = if c.count > 1 {
        format!(
            "{name} ({} clients, {name}-1 to {name}-{})",
            c.count, c.count
        )
    } else {
        name.to_string()
    };
    let when = if c.start.0.is_zero() {
        "at the start".to_string()
    } else {
        format!("at {}", dur(c.start))
    };
    let mut parts = vec![format!("{who}: connects {when}")];
    if c.count > 1 && !c.stagger.0.is_zero() {
        parts.push(format!("one every {}", dur(c.stagger)));
    }
    if let Some(s) = &c.send {
        parts.push(format!("sends {}", preview(s.as_bytes())));
    }
    if let Some(h) = &c.send_hex {
        parts.push(format!("sends the bytes {h} (hex)"));
    }
    if let Some(r) = &c.request {
        match &c.request_poem {
            Some(p) => parts.push(format!("requests '{r}' of {p}")),
            None => parts.push(format!("sends the request {}", preview(r.as_bytes()))),
        }
        if c.repeat > 1 {
            parts.push(format!("{} times on the one connection", c.repeat));
        }
    }
    if let Some(n) = c.send_chunk {
        parts.push(format!(
            "{n} byte(s) at a time, {} apart",
            dur(c.send_delay)
        ));
    }
    if c.half_close {
        parts.push("then shuts down its sending side (FIN)".into());
    }
    if let Some(n) = c.read_chunk {
        if c.read_delay.0.is_zero() {
            parts.push(format!("reads {n} byte(s) at a time"));
        } else {
            parts.push(format!(
                "reads {n} byte(s) at a time, {} apart",
                dur(c.read_delay)
            ));
        }
    }
    if let Some(n) = c.stop_reading_after {
        parts.push(format!(
            "stops reading after {n} bytes, holding the connection"
        ));
    }
    let how = match c.leave {
        Leave::Fin => "cleanly (FIN)",
        Leave::Rst => "with a reset (RST)",
    };
    if let Some(n) = c.read_limit {
        parts.push(format!("leaves {how} after {n} bytes"));
    }
    if let Some(t) = c.leave_at {
        parts.push(format!("leaves {how} {} after connecting", dur(t)));
    }
    if let Some(t) = c.deadline {
        parts.push(format!("gives up {} after it starts", dur(t)));
    }
    parts.join(", ")
}

/// What the scripted transform server does, in a sentence.
pub fn xform_peer(x: &XformPeer) -> String {
    let what = match x.behaviour {
        XformBehaviour::Answer => "replies correctly, then closes (FIN)",
        XformBehaviour::Close => "closes (FIN) without a reply",
        XformBehaviour::Reset => "resets (RST) without a reply",
        XformBehaviour::Stall => "reads the request, then never replies nor closes",
        XformBehaviour::Absent => "is absent: nothing listens",
        XformBehaviour::Malformed => "replies with a malformed netstring (a bad length)",
        XformBehaviour::Truncated => "replies with a netstring cut short, then closes (FIN)",
        XformBehaviour::InvalidUtf8 => {
            "replies with a well-formed netstring that is not UTF-8, then closes (FIN)"
        }
    };
    if x.delay.0.is_zero() {
        format!("transform server: {what}")
    } else {
        format!("transform server: waits {}, then {what}", dur(x.delay))
    }
}

/// `c1`, or `each of c1's 50 clients` for a peer with copies.
fn each(case: &Case, peer: &str) -> String {
    let count = case
        .client_names()
        .iter()
        .zip(&case.clients)
        .find(|(n, _)| n.as_str() == peer)
        .map_or(1, |(_, c)| c.count);
    if count > 1 {
        format!("each of {peer}'s {count} clients")
    } else {
        peer.to_string()
    }
}

/// What `e` expects of the subject of `case`, one line each.
pub fn expectations(case: &Case, e: &Expect) -> Vec<String> {
    let mut out = Vec::new();
    let servers = case.server_names();
    let server = |i: usize| servers.get(i).map_or("the server", String::as_str);
    for (i, r) in e.results.iter().flatten().enumerate() {
        out.push(format!("result {}: {}", i + 1, words::result(r, server(i))));
    }
    for (i, o) in e.outputs.iter().flatten().enumerate() {
        out.push(format!("output {}: {}", i + 1, words::output(o, server(i))));
    }
    for (peer, r) in e.received.iter().flatten() {
        out.push(format!(
            "{} receives {}",
            each(case, peer),
            words::received(r)
        ));
    }
    for (peer, end) in e.end.iter().flatten() {
        out.push(format!(
            "the connection of {} ends with {}",
            each(case, peer),
            words::end(end)
        ));
    }
    if let Some(d) = e.elapsed_min {
        out.push(format!("the run takes at least {}", dur(d)));
    }
    if let Some(d) = e.elapsed_max {
        out.push(format!("the run takes at most {}", dur(d)));
    }
    if let Some(n) = e.upstream_connections {
        out.push(format!("the upstream server gets {n} connection(s) in all"));
    }
    if let Some(d) = e.upstream_closed_within {
        out.push(format!(
            "every upstream connection is closed within {} of the last client leaving",
            dur(d)
        ));
    }
    if let Some(t) = &e.request_transform {
        out.push(format!(
            "each request to the transform server is '{t}.<the poem>'"
        ));
    }
    out
}

/// The whole case in words: role, network, peers and expectations, one
/// item a line.
pub fn case(c: &Case) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: {}", c.id, c.title);
    let _ = writeln!(out, "role under test: {}", c.role);
    let _ = writeln!(
        out,
        "network: {} one-way latency; time limit {}",
        c.net.latency, c.limit
    );
    if let Some(f) = &c.net.faults {
        let _ = writeln!(
            out,
            "packet faults on every link of the subject: {}",
            f.describe()
        );
    }
    for (peer, f) in &c.net.peer_faults {
        let _ = writeln!(
            out,
            "packet faults on the link with {peer}: {}",
            f.describe()
        );
    }
    if let Some(b) = c.net.backlog {
        let _ = writeln!(out, "the subject's listen backlog: {b}");
    }
    if let Some(what) = c.net.needs_simnet() {
        let _ = writeln!(
            out,
            "engine: simnet (the default) only, for its {what}; UNSUPPORTED on --engine turmoil and live"
        );
    }
    for (name, s) in c.server_names().iter().zip(&c.servers) {
        let _ = writeln!(out, "server peer {}", server_peer(name, s));
    }
    for (name, p) in c.client_names().iter().zip(&c.clients) {
        let _ = writeln!(out, "client peer {}", client_peer(name, p));
    }
    if let Some(x) = &c.xform {
        let _ = writeln!(out, "{}", xform_peer(x));
    }
    let _ = writeln!(out, "expects (strict profile):");
    for line in expectations(c, &c.expect) {
        let _ = writeln!(out, "  - {line}");
    }
    if c.expect.no_leaks != Some(false) {
        let _ = writeln!(out, "  - no connection of the program is open at the end");
    }
    if let Some(t) = &c.tutorial {
        let _ = writeln!(out, "the tutorial profile accepts instead:");
        for line in expectations(c, t) {
            let _ = writeln!(out, "  - {line}");
        }
    }
    out
}

//! Hints: what a failure's symptom usually means, and what to change.
//!
//! Each hint is keyed to a symptom that the run shows, found in the bytes
//! compared ([`Check::compared`]), the subject's results, or how the run
//! ended; a hint is given only when its symptom is detected, never because
//! a case or role might have it. The symptoms are those of the classic
//! bugs in the mutant zoo (`fixtures/mutants/`): a reset read as the end
//! of a poem, UTF-8 decoded per read, no timeout, a length counted in
//! characters, CR LF turned into LF, and so on.

use bytes::Bytes;

use std::time::Duration;

use crate::backend::{RunEnd, RunOutcome, SubjectResult};
use crate::case::{Case, End, Role};
use crate::reference::{FetchError, Transformed};
use crate::verdict::{Check, Compared, Kind};

/// One hint: the symptom it is keyed to and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hint {
    /// A stable name for the symptom, e.g. `utf8-decoded-per-read`.
    pub symptom: &'static str,
    /// The hint, in a sentence or two.
    pub text: String,
}

fn hint(symptom: &'static str, text: impl Into<String>) -> Hint {
    Hint {
        symptom,
        text: text.into(),
    }
}

/// U+FFFD, the replacement character, in UTF-8.
const REPLACEMENT: &[u8] = "\u{fffd}".as_bytes();

/// The UTF-8 byte-order mark.
const BOM: &[u8] = b"\xef\xbb\xbf";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The hints for a run judged `kind` whose failed checks are `failed`,
/// each symptom once, in a fixed order.
pub fn detect(case: &Case, out: &RunOutcome, kind: Kind, failed: &[Check]) -> Vec<Hint> {
    let mut hints = Vec::new();
    if kind == Kind::Timeout {
        hints.extend(timed_out(case));
    }
    hints.extend(results(case, out));
    hints.extend(in_transcript(case, out, failed));
    for c in failed {
        if let Some(bytes) = &c.compared {
            hints.extend(in_bytes(case, bytes));
        }
        hints.extend(in_check(case, c));
    }
    let mut seen = Vec::new();
    hints.retain(|h: &Hint| {
        let new = !seen.contains(&h.symptom);
        seen.push(h.symptom);
        new
    });
    hints
}

/// A run that hit the case's time limit, where the case needs a timeout
/// of the program: the program waited for ever on a peer that stalled.
fn timed_out(case: &Case) -> Option<Hint> {
    if !case.requires.contains(&crate::case::Feature::Timeouts) {
        return None;
    }
    let stalled = case
        .servers
        .iter()
        .zip(case.server_names())
        .find(|(s, _)| s.blackhole || s.end == End::Stall);
    let text = match (case.role, stalled) {
        (Role::Client | Role::TransformClient | Role::Proxy, Some((s, name))) if s.blackhole => {
            format!(
                "{name} never answers the connection attempt, and the program waited for ever: give every connect a timeout (the connect timeout) and report it as a timeout"
            )
        }
        (Role::Client | Role::TransformClient | Role::Proxy, Some((_, name))) => format!(
            "{name} stops sending without closing, and the program waited for ever: give every read a timeout (the idle timeout) that restarts on every byte, and report it as a timeout"
        ),
        (Role::TransformClient, None) => "the transform server never replies, and the program waited for ever: bound the wait for a reply (the transform timeout), then fall back to the original poem".to_string(),
        (Role::Server | Role::TransformServer, _) => "a client stalls, and the program waited for ever: an idle timeout must close a connection on which nothing arrives".to_string(),
        _ => return None,
    };
    Some(hint("no-timeout", text))
}

/// Symptoms in a client's results: a reset taken for the end of a poem,
/// an empty poem taken for a failure, a refusal reported as something
/// else, missing results, results in another order.
fn results(case: &Case, out: &RunOutcome) -> Vec<Hint> {
    let mut hints = Vec::new();
    let names = case.server_names();
    let poems: Vec<Bytes> = case.servers.iter().map(|s| s.sent_poem()).collect();
    match &out.result {
        SubjectResult::Poems(got) => {
            let want = case.expect.results.as_deref().unwrap_or_default();
            for (i, (w, g)) in want.iter().zip(got).enumerate() {
                let name = &names[i];
                match (w.as_str(), g) {
                    ("fail:reset", Ok(p)) => hints.push(hint(
                        "reset-read-as-end",
                        format!(
                            "{name} reset the connection (RST) and the client took the {} byte(s) before it for the whole poem: only a clean close (FIN, a read that returns 0 bytes) ends a poem; a reset is a failure to report as one",
                            p.len()
                        ),
                    )),
                    ("empty", Err(_)) => hints.push(hint(
                        "empty-poem-as-failure",
                        format!(
                            "{name} closed cleanly without sending a byte: that is an empty poem, a success, not a failure"
                        ),
                    )),
                    ("fail:refused", Err(e)) if !matches!(e, FetchError::Refused) => {
                        // The words may well say "refused" (the OS's own
                        // message): what is wrong is the kind of failure.
                        let reported_as = match e {
                            FetchError::Reset { .. } => "a reset",
                            FetchError::Timeout { .. } => "a timeout",
                            FetchError::Unrecognised(_) => {
                                "a failure whose reason the harness cannot read"
                            }
                            _ => "some other error",
                        };
                        hints.push(hint(
                            "refused-reported-as-other",
                            format!(
                                "nothing listens at {name}, so connecting is refused (ECONNREFUSED), but the client reported it as {reported_as} ('{e}'): a refused connection is the failure with reason `refused`"
                            ),
                        ))
                    }
                    ("poem", Err(FetchError::Timeout { after, .. })) if *after > 0 => {
                        let server = &case.servers[i];
                        let gap = server.delay.0 + server.jitter.0;
                        if gap < case.subject.idle_timeout.0 {
                            hints.push(hint(
                                "idle-timer-not-restarted",
                                format!(
                                    "the client timed out after {after} bytes although {name} sends something at least every {}, within the idle timeout ({}): restart the idle timer on every byte that arrives, rather than bounding the whole download",
                                    crate::duration::format_duration(gap),
                                    case.subject.idle_timeout
                                ),
                            ));
                        }
                    }
                    _ => {}
                }
            }
            if got.len() < want.len() {
                hints.push(hint(
                    "missing-results",
                    format!(
                        "{} address(es) given, {} result(s): every address gets a result (a poem or a failure), and one failure must not stop the other downloads",
                        want.len(),
                        got.len()
                    ),
                ));
            }
            let distinct = poems
                .iter()
                .enumerate()
                .all(|(i, p)| !poems[..i].contains(p));
            let swapped = got
                .iter()
                .enumerate()
                .any(|(i, g)| matches!(g, Ok(p) if poems.get(i) != Some(p) && poems.contains(p)));
            if distinct && swapped {
                hints.push(hint(
                    "completion-order",
                    "the poems are all there, in another order: output them in the order of the addresses given, not in the order the downloads finished",
                ));
            }
        }
        SubjectResult::Transformed(got) => {
            let want = case.expect.outputs.as_deref().unwrap_or_default();
            for (i, (w, g)) in want.iter().zip(got).enumerate() {
                let name = names.get(i).map_or("the server", String::as_str);
                match (w.as_str(), g) {
                    ("none", Transformed::Poem(_) | Transformed::Fallback { .. }) => {
                        hints.push(hint(
                            "failed-download-output",
                            format!(
                                "the download from {name} failed, yet a poem was output for it: a failed download has no poem to transform; report the failure and output nothing"
                            ),
                        ))
                    }
                    ("original", Transformed::Poem(_)) => hints.push(hint(
                        "silent-fallback",
                        "the transformation failed, and the original poem was passed off as transformed: fall back to the original, and report the transform failure",
                    )),
                    ("original" | "transformed", Transformed::DownloadFailed(_)) => {
                        hints.push(hint(
                            "poem-lost-on-transform-failure",
                            format!(
                                "the poem from {name} downloaded, but nothing was output for it: when the transformation fails, output the original poem"
                            ),
                        ))
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    hints
}

/// Symptoms in two byte strings that should have been equal.
fn in_bytes(case: &Case, c: &Compared) -> Vec<Hint> {
    let (e, r) = (&c.expected[..], &c.received[..]);
    let mut hints = Vec::new();
    let at = crate::byte_diff::first_difference(e, r).unwrap_or(0);
    let expected_utf8 = std::str::from_utf8(e).is_ok();
    let replaced = (at.saturating_sub(REPLACEMENT.len() - 1)..=at)
        .any(|p| r.get(p..).is_some_and(|t| t.starts_with(REPLACEMENT)));
    if e.is_empty() && contains(r, REPLACEMENT) {
        hints.push(hint(
            "lossy-decoding",
            "the reply holds U+FFFD (ef bf bd): bytes that are not UTF-8 were decoded lossily instead of refused. A request whose poem is not UTF-8 gets no reply, only a close",
        ));
    } else if replaced && !contains(e, REPLACEMENT) {
        if expected_utf8 {
            hints.push(hint(
                "utf8-decoded-per-read",
                "U+FFFD (ef bf bd) stands where the poem has a multi-byte character: a character split between two reads was decoded piece by piece. Keep the bytes as they arrive, and decode (if at all) the whole poem once",
            ));
        } else {
            hints.push(hint(
                "lossy-decoding",
                "U+FFFD (ef bf bd) stands where the poem has bytes that are not UTF-8: the poem was decoded as text and re-encoded. A poem is bytes: pass them on unchanged",
            ));
        }
    }
    if contains(e, b"\r\n") && !contains(r, b"\r\n") && strip_cr(e) == strip_cr(r) {
        hints.push(hint(
            "line-ends-normalised",
            "every CR LF line end became LF: the poem went through text mode or line-by-line reading. Read and write bytes, not lines",
        ));
    }
    if e.starts_with(BOM) && !r.starts_with(BOM) && e[BOM.len()..].starts_with(r) {
        hints.push(hint(
            "bom-stripped",
            "the byte-order mark (ef bb bf) at the start of the poem is missing: a decoder such as utf-8-sig strips it. The poem is bytes: keep every one",
        ));
    }
    if let Some(h) = netstring_length_in_characters(e, r) {
        hints.push(h);
    }
    let (e_len, r_len) = (c.expected_len, c.received_len);
    if r_len < e_len && e.starts_with(r) {
        let fixed = r_len >= 1024 && r_len.is_power_of_two();
        let client = matches!(case.role, Role::Client | Role::TransformClient);
        let text = match (client, r_len) {
            (true, 0) => Some(format!(
                "the client kept none of the {e_len} bytes: bytes that arrive together with the FIN are still part of the poem. Keep what every read returns, until a read returns 0 bytes"
            )),
            (true, _) => {
                let mut t = format!(
                    "only the first {r_len} of {e_len} bytes were kept: the client stopped before the server's FIN. Read until a read returns 0 bytes (end of stream), not once and not up to a fixed size"
                );
                if fixed {
                    t.push_str(&format!(" ({r_len} bytes is a buffer's size)"));
                }
                Some(t)
            }
            (false, 0) => None,
            (false, _) => Some(format!(
                "the client got the first {r_len} of {e_len} bytes and then the connection ended: write everything before the close"
            )),
        };
        hints.extend(text.map(|t| hint("stopped-early", t)));
    }
    let second = case.role == Role::TransformServer
        && !e.is_empty()
        && r_len > e_len
        && r.starts_with(e)
        && netstring(&r[e.len()..]).is_some();
    if second {
        hints.push(hint(
            "second-reply",
            "a second netstring came after the reply: answer the first request on a connection only, then close it",
        ));
    }
    if case.role == Role::TransformServer && e.is_empty() && netstring(r).is_some() {
        hints.push(hint(
            "replied-to-a-bad-request",
            "the program replied where the spec (quoted above) wants no reply, only a close: the request breaks a rule of the netstring format or of the transform request, so check that the parser refuses it",
        ));
    }
    if expected_utf8 && std::str::from_utf8(r).is_err() && !r.is_empty() {
        hints.push(hint(
            "broken-utf8",
            "the bytes received are not valid UTF-8 although the expected ones are: a multi-byte character was cut or its bytes reordered. Work on characters, not bytes",
        ));
    }
    let payload = |b: &'_ [u8]| -> Vec<u8> {
        match netstring(b) {
            Some((_, p)) => p.strip_suffix(b",").unwrap_or(p).to_vec(),
            None => b.to_vec(),
        }
    };
    let (pe, pr) = (payload(e), payload(r));
    // A transform server's reply: a transforming client's fallback shows
    // the untransformed poem, whose letters differ in case for another
    // reason.
    let transformed = case.role == Role::TransformServer;
    if let (true, Ok(e), Ok(r)) = (
        transformed,
        std::str::from_utf8(&pe),
        std::str::from_utf8(&pr),
    ) {
        if e != r && e.to_lowercase() == r.to_lowercase() {
            let ascii_only = e
                .chars()
                .zip(r.chars())
                .filter(|(a, b)| a != b)
                .all(|(_, b)| !b.is_ascii());
            let text = if ascii_only {
                "only letters outside ASCII (Ä, Ö, Ü, ...) differ in case: change the case of every letter, not only a-z"
            } else {
                "the bytes differ only in the case of letters: check which transform was asked for, and apply it to every letter"
            };
            hints.push(hint("letter-case", text));
        }
    }
    hints
}

fn strip_cr(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for (i, &x) in b.iter().enumerate() {
        if !(x == b'\r' && b.get(i + 1) == Some(&b'\n')) {
            out.push(x);
        }
    }
    out
}

/// `len:payload,` split into its length and payload.
fn netstring(b: &[u8]) -> Option<(usize, &[u8])> {
    let colon = b.iter().position(|&x| x == b':')?;
    let len = std::str::from_utf8(&b[..colon]).ok()?.parse().ok()?;
    Some((len, &b[colon + 1..]))
}

/// A netstring whose length counts the payload's characters, not its bytes.
fn netstring_length_in_characters(e: &[u8], r: &[u8]) -> Option<Hint> {
    let (want, payload) = netstring(e)?;
    let (got, _) = netstring(r)?;
    let chars = std::str::from_utf8(payload.strip_suffix(b",")?)
        .ok()?
        .chars()
        .count();
    (got != want && got == chars).then(|| {
        hint(
            "length-in-characters",
            format!(
                "the netstring's length is {got}, the payload's number of characters; its bytes number {want}: a netstring's length counts bytes (encode first, then measure)"
            ),
        )
    })
}

/// Symptoms of one failed check that needs no bytes: how a connection
/// ended, connections left open, the upstream fetched too often.
fn in_check(case: &Case, c: &Check) -> Option<Hint> {
    let words = crate::case::expect::words::end;
    if c.what.ends_with(" connection end") {
        let peer = c.peer(case).unwrap_or_default();
        let sent = case
            .client_names()
            .into_iter()
            .zip(&case.clients)
            .any(|(n, cl)| peer.starts_with(&n) && (cl.send.is_some() || cl.send_hex.is_some()));
        let upstream_fine = case
            .servers
            .first()
            .is_some_and(|s| s.end == End::Fin && !s.refuse && !s.blackhole);
        if case.role == Role::Proxy
            && upstream_fine
            && c.actual == words("rst")
            && c.expected == words("fin")
        {
            // A slow upstream (pauses, or packets lost and resent) that
            // the proxy gave up on while no client had left: a timer
            // shorter than the idle timeout. (When a client left, the
            // fetch was cancelled for the ones still waiting: below.)
            let someone_left = case.clients.iter().any(|c| c.leave_at.is_some());
            let slow_upstream = !someone_left
                && case.servers.first().is_some_and(|s| {
                    [s.delay, s.first_delay, s.pause]
                        .iter()
                        .any(|d| !d.0.is_zero())
                        || case.net.faults_for(&case.server_names()[0]).is_some()
                });
            if slow_upstream {
                let idle = crate::duration::format_duration(case.subject.idle_timeout.0);
                return Some(hint(
                    "fetch-timed-out-early",
                    format!(
                        "{peer} was reset while a slow upstream was still sending, under the idle timeout of {idle}: the fetch was given up too early. An upstream's idle timer restarts on every byte and fires only after the whole idle timeout (NET-4); a lost packet only delays bytes"
                    ),
                ));
            }
            return Some(hint(
                "fetch-abandoned",
                format!(
                    "{peer} was reset while the upstream server was sending the whole poem: the fetch {peer} waited for was given up. Cancel a fetch only when the last client waiting for it has left"
                ),
            ));
        }
        let server = matches!(case.role, Role::Server | Role::TransformServer);
        if server && c.actual == words("rst") && c.expected == words("fin") {
            let text = if sent {
                format!(
                    "{peer} sent bytes the program never read, and closing a socket with unread bytes sends RST: read (drain) what the client sent before closing"
                )
            } else {
                format!(
                    "the program reset the connection to {peer} (RST) instead of closing it: after the last write, close normally (no SO_LINGER of 0, no abort)"
                )
            };
            return Some(hint("rst-instead-of-fin", text));
        }
        if case.role == Role::Proxy && c.expected == words("rst") && c.actual == words("fin") {
            return Some(hint(
                "failed-fetch-as-poem",
                format!(
                    "{peer} got a clean close (FIN) where the fetch from upstream had failed: a FIN says 'this is the whole poem'. Reset (RST) every client waiting for a failed fetch, and cache nothing of it"
                ),
            ));
        }
        let never_closed = c.actual == "still open" || c.actual == "the client left first";
        if never_closed && case.requires.contains(&crate::case::Feature::Timeouts) {
            return Some(hint(
                "no-idle-timeout",
                format!(
                    "the program never closed the connection to {peer}: {peer} went quiet, and an idle timeout must close a connection on which nothing arrives"
                ),
            ));
        }
    }
    if c.what == "request" && c.actual.contains("missing ','") {
        let poem = case.servers.first().map(|s| s.sent_poem())?;
        let payload = [case.subject.transform.as_bytes(), b".", &poem].concat();
        let chars = std::str::from_utf8(&payload).ok()?.chars().count();
        if chars != payload.len() {
            return Some(hint(
                "length-in-characters",
                format!(
                    "the transform server found no ',' where the request's length said its payload ends: the payload '{}.<poem>' has {} bytes but {chars} characters. A netstring's length counts bytes (encode first, then measure)",
                    case.subject.transform,
                    payload.len()
                ),
            ));
        }
    }
    if c.what == "open connections at the end" {
        return Some(hint(
            "connection-leak",
            format!(
                "{} connection(s) of the program were still open when the case ended: close every connection once its work is done",
                c.actual
            ),
        ));
    }
    if c.what == "upstream connections" {
        let (want, got) = (
            c.expected.parse::<usize>().ok()?,
            c.actual.parse::<usize>().ok()?,
        );
        if got > want {
            return Some(hint(
                "fetched-too-often",
                format!(
                    "the upstream server was asked for the poem {got} times, not {want}: keep the poem once fetched, and let clients that come during a fetch wait for that fetch"
                ),
            ));
        }
    }
    if c.what == "upstream closed" && c.actual.contains("never closed") {
        return Some(hint(
            "fetch-not-cancelled",
            "the upstream connection stayed open after every waiting client had left: cancel a fetch nobody waits for",
        ));
    }
    None
}

/// Symptoms in the order and timing of the run's events: connections
/// served one after another, a server that stopped serving, connections
/// closed only by the idle timeout, pacing off.
fn in_transcript(case: &Case, out: &RunOutcome, failed: &[Check]) -> Vec<Hint> {
    let mut hints = Vec::new();
    let events = &out.transcript.events;
    if let Some(e) = events
        .iter()
        .find(|e| e.who == "subject" && e.what.starts_with("stopped serving"))
    {
        hints.push(hint(
            "server-stopped",
            format!(
                "the program stopped serving at {} ({}) while clients still wanted it: an error on one connection (a client that left) ends that connection only, never the server",
                crate::transcript::secs(e.at),
                e.what
            ),
        ));
    }
    let elapsed = |bound: &str| {
        failed
            .iter()
            .any(|c| c.what == "elapsed" && c.expected.starts_with(bound))
    };
    let paced = case.subject.num_bytes.zip(case.subject.delay);
    if elapsed("at most") {
        if let Some(h) = one_at_a_time(case, out) {
            hints.push(h);
        }
        let idle = case.subject.idle_timeout.0;
        let ended = match out.end {
            RunEnd::Finished(t) => t,
            _ => Duration::ZERO,
        };
        if case.role == Role::TransformServer && ended >= idle {
            hints.push(hint(
                "closed-by-idle-timeout",
                format!(
                    "the connections were closed only when the idle timeout ({}) fired: a request that can never be valid is refused at once, as soon as the byte that shows it arrives",
                    case.subject.idle_timeout
                ),
            ));
        }
        if let Some((_, delay)) = paced {
            let first = events
                .iter()
                .filter(|e| e.what.starts_with("recv "))
                .map(|e| e.at)
                .min();
            if first.is_some_and(|t| t >= delay.0) {
                hints.push(hint(
                    "first-chunk-late",
                    format!(
                        "the first chunk came {} after the start: a slow server writes its first chunk at once, and waits --delay ({}) between chunks, not before each",
                        crate::transcript::secs(first.unwrap_or_default()),
                        delay
                    ),
                ));
            }
        }
    }
    if let (true, Some((n, delay))) = (elapsed("at least"), paced) {
        hints.push(hint(
            "pacing",
            format!(
                "the poem came faster than its pacing allows: a slow server writes --num-bytes ({n}) bytes, then waits --delay ({delay}); count bytes, not characters, and take the number given"
            ),
        ));
    }
    hints
}

/// Connections served one after another: each peer's exchange with the
/// subject (from its first `accept` or `recv` to its last event) starts
/// only when the one before has ended.
fn one_at_a_time(case: &Case, out: &RunOutcome) -> Option<Hint> {
    let mut spans: Vec<(Duration, Duration)> = Vec::new();
    let mut peers: Vec<&str> = Vec::new();
    for e in &out.transcript.events {
        if e.who == "subject" || e.who == "harness" || peers.contains(&e.who.as_str()) {
            continue;
        }
        peers.push(&e.who);
    }
    for who in peers {
        let of = || out.transcript.events.iter().filter(|e| e.who == who);
        let Some(start) = of()
            .find(|e| e.what.starts_with("accept") || e.what.starts_with("recv "))
            .map(|e| e.at)
        else {
            continue;
        };
        let end = of()
            .map(|e| e.run.map_or(e.at, |r| r.until))
            .max()
            .unwrap_or(start);
        spans.push((start, end));
    }
    spans.sort();
    let serial = spans.len() >= 2 && spans.windows(2).all(|w| w[1].0 >= w[0].1);
    if !serial {
        return None;
    }
    let text = match case.role {
        Role::Client | Role::TransformClient => format!(
            "the {} downloads ran one after another, each server reached only when the one before had finished: start every download at once",
            spans.len()
        ),
        _ => format!(
            "the {} connections were served one after another, each only once the one before had ended: serve every connection at once (an event loop, or a task per connection)",
            spans.len()
        ),
    };
    Some(hint("one-at-a-time", text))
}

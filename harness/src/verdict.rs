//! Verdicts: judging a run's outcome against a case's expectations.
//!
//! Every expectation is checked by one shared verifier that yields a
//! [`Check`] with what was expected and what was received, so failures read
//! the same in every case.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::backend::{RunEnd, RunOutcome, SubjectResult};
use crate::case::{Case, Expect, Role};
use crate::peers::Ending;
use crate::protocol::{netstring, transform};
use crate::reference::{FetchError, Transformed};
use crate::roles::Implementation;
use crate::transcript::{preview, secs};

/// The profile a run judges against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Every clause.
    #[default]
    Strict,
    /// Accepts what the series' own programs do.
    Tutorial,
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "strict" => Ok(Profile::Strict),
            "tutorial" => Ok(Profile::Tutorial),
            _ => Err(format!("unknown profile '{s}' (known: strict, tutorial)")),
        }
    }
}

/// The kinds of verdict, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Kind {
    /// Hit the case's time limit.
    Timeout,
    /// Broke a clause no profile accepts.
    Fail,
    /// Passes the tutorial profile only.
    NonStrict,
    /// Did what the case expects.
    Pass,
    /// Recorded, not judged.
    Info,
    /// Not judged: the implementation does not do this.
    Unsupported,
}

impl Kind {
    /// Upper-case label as in reports.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Timeout => "TIMEOUT",
            Kind::Fail => "FAIL",
            Kind::NonStrict => "NON-STRICT",
            Kind::Pass => "PASS",
            Kind::Info => "INFO",
            Kind::Unsupported => "UNSUPPORTED",
        }
    }

    /// Whether this verdict fails a run under `profile`.
    pub fn fails(self, profile: Profile) -> bool {
        match self {
            Kind::Timeout | Kind::Fail => true,
            Kind::NonStrict => profile == Profile::Strict,
            Kind::Pass | Kind::Info | Kind::Unsupported => false,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One expectation, judged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// What was checked (`result 2`, `c1 received`, `elapsed`).
    pub what: String,
    /// What the case expects.
    pub expected: String,
    /// What happened.
    pub actual: String,
    /// Whether they agree.
    pub ok: bool,
    /// A disagreement the tutorial profile accepts by itself (as the
    /// spec's `Tutorial profile:` paragraphs say), without a
    /// `[case.tutorial]` table.
    pub tutorial_ok: bool,
}

/// A case's verdict with its one-line reason and the failing checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// The kind.
    pub kind: Kind,
    /// One line saying why.
    pub reason: String,
    /// Checks that failed under the strict expectations (empty on PASS).
    pub failed: Vec<Check>,
}

impl Verdict {
    fn new(kind: Kind, reason: impl Into<String>) -> Self {
        Verdict {
            kind,
            reason: reason.into(),
            failed: Vec::new(),
        }
    }
}

/// Whether the implementation can run the case at all, before running it.
pub fn precheck(case: &Case, imp: &Implementation, profile: Profile) -> Option<Verdict> {
    precheck_parts(case, &imp.name, imp.plays(case.role), &imp.lacks, profile)
}

/// [`precheck`] from the parts of any kind of implementation.
pub fn precheck_parts(
    case: &Case,
    name: &str,
    plays: bool,
    lacks: &[crate::case::Feature],
    profile: Profile,
) -> Option<Verdict> {
    if !plays {
        return Some(Verdict::new(
            Kind::Unsupported,
            format!("{name} does not play the {} role", case.role),
        ));
    }
    let paced = case
        .subject
        .num_bytes
        .is_some()
        .then_some(crate::case::Feature::Pacing);
    if let Some(f) = case
        .requires
        .iter()
        .chain(paced.iter())
        .find(|f| lacks.contains(f))
    {
        return Some(Verdict::new(
            Kind::Unsupported,
            format!("{name} declares it lacks {f:?}"),
        ));
    }
    if profile == Profile::Tutorial && case.tutorial_unsupported {
        return Some(Verdict::new(
            Kind::Unsupported,
            "unsupported under the tutorial profile",
        ));
    }
    None
}

/// Judges a run. The verdict is the same under both profiles; whether it
/// fails a run depends on the profile ([`Kind::fails`]).
pub fn judge(case: &Case, out: &RunOutcome) -> Verdict {
    match &out.end {
        RunEnd::Crashed(why) => return Verdict::new(Kind::Fail, format!("the run crashed: {why}")),
        RunEnd::TimedOut(limit) => {
            return Verdict::new(
                Kind::Timeout,
                format!("not finished after {} of simulated time", secs(*limit)),
            )
        }
        RunEnd::Unsupported(why) => return Verdict::new(Kind::Unsupported, why.clone()),
        RunEnd::Finished(_) => {}
    }
    // The same verdict under both profiles: a behaviour only the tutorial
    // alternative accepts is NON-STRICT, which fails a strict run and not a
    // tutorial one (see `Kind::fails`).
    let strict_failed: Vec<Check> = checks(case, &case.expect, out)
        .into_iter()
        .filter(|c| !c.ok)
        .collect();
    let tutorial_accepts = || {
        let relaxed = case
            .tutorial
            .as_ref()
            .map_or_else(|| case.expect.clone(), |t| case.expect.overridden_by(t));
        checks(case, &relaxed, out)
            .iter()
            .all(|c| c.ok || c.tutorial_ok)
    };
    let kind = if strict_failed.is_empty() {
        Kind::Pass
    } else if tutorial_accepts() {
        Kind::NonStrict
    } else {
        Kind::Fail
    };
    let failed = strict_failed;
    let kind = if case.info { Kind::Info } else { kind };
    let reason = match failed.first() {
        None => "as expected".to_string(),
        Some(c) => format!("{}: expected {}, got {}", c.what, c.expected, c.actual),
    };
    Verdict {
        kind,
        reason,
        failed,
    }
}

fn check(
    what: impl Into<String>,
    expected: impl Into<String>,
    actual: impl Into<String>,
    ok: bool,
) -> Check {
    Check {
        what: what.into(),
        expected: expected.into(),
        actual: actual.into(),
        ok,
        tutorial_ok: false,
    }
}

/// Every check an expectation implies.
pub fn checks(case: &Case, exp: &Expect, out: &RunOutcome) -> Vec<Check> {
    let mut v = Vec::new();
    let poems: Vec<Bytes> = case.servers.iter().map(|s| s.sent_poem()).collect();
    if let (Some(want), SubjectResult::Poems(got)) = (&exp.results, &out.result) {
        for (i, w) in want.iter().enumerate() {
            let got = got.get(i);
            let actual = got.map_or("no result".to_string(), describe_fetch);
            let unrecognised = matches!(got, Some(Err(FetchError::Unrecognised(_))));
            let ok = got.is_some_and(|g| fetch_matches(w, g, &poems[i]))
                || (unrecognised && w.starts_with("fail:"));
            v.push(check(format!("result {}", i + 1), w.clone(), actual, ok));
            // A failure whose reason cannot be read is its own check:
            // the download failed as it should, but the spec's word for
            // why is missing (CLIENT-6).
            if let (true, Some(reason)) = (unrecognised, w.strip_prefix("fail:")) {
                let mut c = check(
                    format!("result {} reason", i + 1),
                    format!("a stderr line naming the address with the word '{reason}'"),
                    format!(
                        "no reason recognised (accepted words and errors: see SPEC.md, Failure reasons: {})",
                        crate::backend::live::reasons::words(crate::backend::live::reasons::DOWNLOAD)
                    ),
                    false,
                );
                c.tutorial_ok = true;
                v.push(c);
            }
        }
        if got.len() != want.len() {
            v.push(check(
                "result count",
                want.len().to_string(),
                got.len().to_string(),
                false,
            ));
        }
    } else if exp.results.is_some() {
        v.push(check("results", "poetry client results", "none", false));
    }
    if let (Some(want), SubjectResult::Transformed(got)) = (&exp.outputs, &out.result) {
        for (i, w) in want.iter().enumerate() {
            let got = got.get(i);
            let actual = got.map_or("no result".to_string(), describe_transformed);
            let ok =
                got.is_some_and(|g| transformed_matches(w, g, &poems[i], &case.subject.transform));
            v.push(check(format!("output {}", i + 1), w.clone(), actual, ok));
        }
        if got.len() != want.len() {
            v.push(check(
                "output count",
                want.len().to_string(),
                got.len().to_string(),
                false,
            ));
        }
    } else if exp.outputs.is_some() {
        v.push(check(
            "outputs",
            "transforming client results",
            "none",
            false,
        ));
    }
    if let Some(name) = &exp.request_transform {
        let downloaded: Vec<&Bytes> = match &out.result {
            SubjectResult::Transformed(r) => poems
                .iter()
                .zip(r)
                .filter(|(_, t)| !matches!(t, Transformed::DownloadFailed(_)))
                .map(|(p, _)| p)
                .collect(),
            _ => Vec::new(),
        };
        for bad in &out.seen.bad_requests {
            v.push(check(
                "request",
                "a well-formed netstring",
                bad.clone(),
                false,
            ));
        }
        let mut expected: Vec<Vec<u8>> = downloaded
            .iter()
            .map(|p| [name.as_bytes(), b".", p].concat())
            .collect();
        let mut got = out.seen.requests.clone();
        expected.sort();
        got.sort();
        let ok = expected == got;
        v.push(check(
            "requests",
            format!("{} request(s) '{name}.<poem>'", expected.len()),
            format!(
                "{} request(s){}",
                got.len(),
                got.first()
                    .map(|r| format!(", first {}", preview(r)))
                    .unwrap_or_default()
            ),
            ok,
        ));
    }
    let served: Bytes = match case.role {
        Role::Proxy => poems.first().cloned().unwrap_or_default(),
        _ => case.subject.poem.bytes(),
    };
    let full: Bytes = match case.role {
        Role::Proxy => case
            .servers
            .first()
            .map(|s| s.poem.bytes())
            .unwrap_or_default(),
        _ => served.clone(),
    };
    for (name, want) in exp.received.iter().flatten() {
        for (copy, seen) in copies(out, name) {
            let expected_bytes: Option<Vec<u8>> = match want.as_str() {
                "poem" => Some(served.to_vec()),
                // The upstream's whole poem, whatever a misbehaving first
                // connection cut off (proxy cases with `misbehave_first`).
                "full" => Some(full.to_vec()),
                "nothing" => Some(Vec::new()),
                "reply" => seen
                    .request
                    .as_deref()
                    .and_then(|r| transform::respond(r).ok())
                    .map(|t| netstring::encode(t.as_bytes())),
                text => text
                    .strip_prefix("reply:")
                    .map(|t| netstring::encode(t.as_bytes())),
            };
            let ok = match (want.as_str(), &expected_bytes) {
                ("prefix", _) => served.starts_with(&seen.received),
                (_, Some(e)) => *e == seen.received,
                _ => false,
            };
            let expected = match &expected_bytes {
                Some(e) if want != "prefix" => {
                    let kind = want.split(':').next().unwrap_or(want);
                    format!("{kind} {}", preview(e))
                }
                _ => want.clone(),
            };
            v.push(check(
                format!("{copy} received"),
                expected,
                preview(&seen.received),
                ok,
            ));
        }
    }
    for (name, want) in exp.end.iter().flatten() {
        for (copy, seen) in copies(out, name) {
            let actual = match seen.ending {
                None => "still open".to_string(),
                Some(Ending::Fin) => "fin".to_string(),
                Some(Ending::Rst) => "rst".to_string(),
                Some(Ending::Left) => "the client left first".to_string(),
                Some(Ending::Refused) => "connection refused".to_string(),
            };
            let ok = match want.as_str() {
                "closed" => matches!(seen.ending, Some(Ending::Fin | Ending::Rst)),
                w => actual == w,
            };
            v.push(check(
                format!("{copy} connection end"),
                want.clone(),
                actual,
                ok,
            ));
        }
    }
    let elapsed = match (case.role, out.subject_done, &out.end) {
        (Role::Client | Role::TransformClient, Some(t), _) => t,
        (_, _, RunEnd::Finished(t)) => *t,
        _ => Duration::MAX,
    };
    let tol = out.tolerance.unwrap_or_default();
    if let Some(max) = exp.elapsed_max {
        let slack = tol.above(max.0);
        v.push(check(
            "elapsed",
            format!("at most {}{}", secs(max.0), plus(slack)),
            secs(elapsed),
            elapsed <= max.0 + slack,
        ));
    }
    if let Some(min) = exp.elapsed_min {
        v.push(check(
            "elapsed",
            format!("at least {}{}", secs(min.0), minus(tol.early)),
            secs(elapsed),
            elapsed + tol.early >= min.0,
        ));
    }
    if let Some((took, budget)) = out.startup {
        v.push(check(
            "start-up",
            format!("first connection within {} of starting", secs(budget)),
            format!("first connection {} after starting", secs(took)),
            took <= budget,
        ));
    }
    if let Some(stray) = &out.stray_output {
        v.push(check(
            "stdout after the poems",
            "nothing (the exact output contract: the poems and only the poems)",
            preview(stray),
            false,
        ));
    }
    // A program's exit status (live runs): 0 only when every download
    // succeeded (CLIENT-12, TCLIENT-9); the series' clients exit 0 after
    // failures, which the tutorial profile accepts.
    if let (Some(code), Role::Client | Role::TransformClient) = (out.exit_status, case.role) {
        let any_fail = exp.results.iter().flatten().any(|r| r.starts_with("fail"))
            || exp.outputs.iter().flatten().any(|o| o == "none");
        if exp.results.is_some() || exp.outputs.is_some() {
            let mut c = check(
                "exit status",
                if any_fail { "non-zero" } else { "0" },
                code.to_string(),
                (code == 0) != any_fail,
            );
            c.tutorial_ok = any_fail && code == 0;
            v.push(c);
        }
    }
    let upstream = case.server_names().first().cloned().unwrap_or_default();
    if let Some(n) = exp.upstream_connections {
        let got = out.seen.accepts.get(&upstream).copied().unwrap_or(0);
        v.push(check(
            "upstream connections",
            n.to_string(),
            got.to_string(),
            got == n,
        ));
    }
    if let Some(within) = exp.upstream_closed_within {
        let left = out.seen.clients.values().filter_map(|c| c.left_at).max();
        let accepted = out.seen.accepts.get(&upstream).copied().unwrap_or(0);
        let closes = out.seen.closes.get(&upstream).cloned().unwrap_or_default();
        let (ok, actual) = match left {
            None => (false, "no client left".to_string()),
            Some(_) if closes.len() < accepted => (
                false,
                format!(
                    "{} of {accepted} upstream connection(s) never closed",
                    accepted - closes.len()
                ),
            ),
            Some(l) => {
                let last = closes.iter().map(|(t, _)| *t).max().unwrap_or_default();
                let lag = last.saturating_sub(l);
                (
                    lag <= within.0 + tol.above(within.0),
                    format!("closed {} after the client left", secs(lag)),
                )
            }
        };
        v.push(check(
            "upstream closed",
            format!(
                "within {}{} of the client leaving",
                secs(within.0),
                plus(tol.above(within.0))
            ),
            actual,
            ok,
        ));
    }
    // Only the simulator can count the subject's connections; a live run
    // leaves `leaks` unset and this check out.
    if let (true, Some(open)) = (exp.no_leaks.unwrap_or(true), out.leaks) {
        v.push(check(
            "open connections at the end",
            "0",
            open.to_string(),
            open == 0,
        ));
    }
    v
}

/// ` (+0.012s tolerance)`, or nothing for an exact bound.
fn plus(d: Duration) -> String {
    if d.is_zero() {
        String::new()
    } else {
        format!(" (+{} tolerance)", secs(d))
    }
}

/// ` (-0.003s tolerance)`, or nothing for an exact bound.
fn minus(d: Duration) -> String {
    if d.is_zero() {
        String::new()
    } else {
        format!(" (-{} tolerance)", secs(d))
    }
}

/// The copies of a client peer: `c1`, or `c1-1`, `c1-2`, ...
fn copies<'a>(
    out: &'a RunOutcome,
    base: &'a str,
) -> impl Iterator<Item = (&'a String, &'a crate::peers::ClientSeen)> {
    out.seen.clients.iter().filter(move |(k, _)| {
        k.as_str() == base
            || k.strip_prefix(base)
                .and_then(|r| r.strip_prefix('-'))
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn fetch_matches(want: &str, got: &Result<Bytes, FetchError>, poem: &Bytes) -> bool {
    match (want, got) {
        ("poem", Ok(p)) => p == poem,
        ("empty", Ok(p)) => p.is_empty(),
        ("prefix", Ok(p)) => poem.starts_with(p),
        ("fail", Err(_)) => true,
        ("fail:refused", Err(FetchError::Refused)) => true,
        ("fail:reset", Err(FetchError::Reset { .. })) => true,
        ("fail:timeout", Err(FetchError::Timeout { .. })) => true,
        _ => false,
    }
}

fn describe_fetch(got: &Result<Bytes, FetchError>) -> String {
    match got {
        Ok(p) => format!("poem {}", preview(p)),
        Err(e) => format!("fail:{} ({e})", e.kind()),
    }
}

fn transformed_matches(want: &str, got: &Transformed, poem: &Bytes, name: &str) -> bool {
    match (want, got) {
        ("transformed", Transformed::Poem(p)) => std::str::from_utf8(poem)
            .ok()
            .zip(transform::Transform::from_name(name))
            .is_some_and(|(text, t)| t.apply(text) == *p),
        ("original", Transformed::Fallback { original, .. }) => original == poem,
        ("none", Transformed::DownloadFailed(_)) => true,
        _ => false,
    }
}

fn describe_transformed(got: &Transformed) -> String {
    match got {
        Transformed::Poem(p) => format!("transformed {}", preview(p.as_bytes())),
        Transformed::Fallback { original, failure } => {
            format!("original {} ({failure})", preview(original))
        }
        Transformed::DownloadFailed(e) => format!("none (download failed: {e})"),
    }
}

//! Verdicts: judging a run's outcome against a case's expectations.
//!
//! Every expectation is checked by one shared verifier that yields a
//! [`Check`] with what was expected and what was received, so failures read
//! the same in every case.

use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;

use crate::backend::{RunEnd, RunOutcome, SubjectResult};
use crate::case::{Case, End, Expect, Feature, Role};
use crate::peers::Ending;
use crate::protocol::{netstring, transform};
use crate::reference::{FetchError, Transformed};
use crate::roles::Implementation;
use crate::spec::Relaxation;
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

impl std::fmt::Display for Profile {
    /// As it is spelled on the command line and in manifests.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Profile::Strict => "strict",
            Profile::Tutorial => "tutorial",
        })
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
    /// Run several times (`run --repeat N`), passed some runs and failed
    /// others under the profile. Fails a run under either profile: it
    /// failed the profile's own bar at least once (runs that differ only
    /// in PASS and NON-STRICT are not FLAKY under the tutorial profile).
    Flaky,
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
    /// Every kind, in the order reports count them.
    pub const ALL: [Kind; 7] = [
        Kind::Pass,
        Kind::Fail,
        Kind::NonStrict,
        Kind::Timeout,
        Kind::Flaky,
        Kind::Info,
        Kind::Unsupported,
    ];

    /// The kind with this report label (`PASS`, `NON-STRICT`, ...).
    pub fn from_label(label: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.label() == label)
    }

    /// Upper-case label as in reports.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Timeout => "TIMEOUT",
            Kind::Fail => "FAIL",
            Kind::Flaky => "FLAKY",
            Kind::NonStrict => "NON-STRICT",
            Kind::Pass => "PASS",
            Kind::Info => "INFO",
            Kind::Unsupported => "UNSUPPORTED",
        }
    }

    /// Whether this verdict fails a run under `profile`.
    pub fn fails(self, profile: Profile) -> bool {
        match self {
            Kind::Timeout | Kind::Fail | Kind::Flaky => true,
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
    /// The relaxation that accepts this disagreement by itself, when the
    /// case is granted it (see [`grants`]); most relaxations work on the
    /// expectations instead (see [`relaxed`]).
    pub accepted_by: Option<Relaxation>,
    /// The bytes compared, when the check compares bytes: what a failure
    /// report diffs (see [`crate::byte_diff`]) and reads symptoms from
    /// (see [`crate::hints`]). Not in reports.
    #[serde(skip)]
    pub compared: Option<Compared>,
}

/// The two sides of a byte comparison, each cut at [`COMPARED_CAP`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compared {
    /// The bytes the case expects (the first [`COMPARED_CAP`]).
    pub expected: Bytes,
    /// The bytes the program gave (the first [`COMPARED_CAP`]).
    pub received: Bytes,
    /// How many bytes the case expects in all.
    pub expected_len: usize,
    /// How many bytes the program gave in all.
    pub received_len: usize,
}

/// Bytes of each side a failed comparison keeps: enough for the window
/// around a first difference and for the symptoms hints look for, and a
/// fixed cost per failed check however much a program floods (the
/// payload itself is dropped once a run is judged).
pub const COMPARED_CAP: usize = 64 * 1024;

impl Check {
    /// The same check with the bytes it compared, `(expected, received)`,
    /// when it failed: a passing check keeps no copy.
    fn comparing(mut self, bytes: impl FnOnce() -> (Bytes, Bytes)) -> Self {
        if !self.ok {
            let (expected, received) = bytes();
            self.compared = Some(Compared {
                expected_len: expected.len(),
                received_len: received.len(),
                expected: expected.slice(..expected.len().min(COMPARED_CAP)),
                received: received.slice(..received.len().min(COMPARED_CAP)),
            });
        }
        self
    }

    /// The peer the check is about (`s1` of `result 1`, `c3-2` of
    /// `c3-2 received`), if it names one; `result N` names the case's
    /// Nth server peer.
    pub fn peer(&self, case: &Case) -> Option<String> {
        if let Some(n) = self
            .what
            .strip_prefix("result ")
            .or_else(|| self.what.strip_prefix("output "))
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse::<usize>().ok())
        {
            return case.server_names().get(n.checked_sub(1)?).cloned();
        }
        let name = self
            .what
            .strip_suffix(" received")
            .or_else(|| self.what.strip_suffix(" connection end"))?;
        Some(name.to_string())
    }
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
    /// What the failure's symptoms suggest (see [`crate::hints`]).
    pub hints: Vec<crate::hints::Hint>,
}

impl Verdict {
    pub(crate) fn new(kind: Kind, reason: impl Into<String>) -> Self {
        Verdict {
            kind,
            reason: reason.into(),
            failed: Vec::new(),
            hints: Vec::new(),
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
            format!("{name} declares it lacks {f}"),
        ));
    }
    if profile == Profile::Tutorial {
        if let Some(g) = grants(case)
            .into_iter()
            .find(|g| g.relaxation.unsupports() && exercises(case, g.relaxation))
        {
            return Some(Verdict::new(
                Kind::Unsupported,
                format!("unsupported under the tutorial profile ({g})"),
            ));
        }
    }
    None
}

/// Judges a run. The verdict is the same under both profiles; whether it
/// fails a run depends on the profile ([`Kind::fails`]).
pub fn judge(case: &Case, out: &RunOutcome) -> Verdict {
    match &out.end {
        RunEnd::Crashed(why) => return Verdict::new(Kind::Fail, format!("the run crashed: {why}")),
        RunEnd::TimedOut(limit) => {
            // Only the simulator has a tick (at least 1 ms): a live run
            // waits in real time, the case's limit scaled plus a grace.
            let reason = if out.tick.is_zero() {
                format!(
                    "not finished within the case's time limit ({} at this time scale, plus {} of grace)",
                    secs(*limit),
                    secs(crate::backend::live::LIMIT_GRACE)
                )
            } else {
                format!("not finished after {} of simulated time", secs(*limit))
            };
            return Verdict {
                hints: crate::hints::detect(case, out, Kind::Timeout, &[]),
                ..Verdict::new(Kind::Timeout, reason)
            };
        }
        RunEnd::Unsupported(why) => return Verdict::new(Kind::Unsupported, why.clone()),
        RunEnd::Finished(_) => {}
    }
    // The same verdict under both profiles: a behaviour only the tutorial
    // profile accepts is NON-STRICT, which fails a strict run and not a
    // tutorial one (see `Kind::fails`).
    let strict_failed: Vec<Check> = checks(case, &case.expect, out)
        .into_iter()
        .filter(|c| !c.ok)
        .collect();
    let (kind, reason) = match strict_failed.first() {
        None => (Kind::Pass, "as expected".to_string()),
        Some(first) => match tutorial_accepts(case, out) {
            Some(by) => (
                Kind::NonStrict,
                format!(
                    "{}; the tutorial profile accepts it ({by})",
                    describe_check(first)
                ),
            ),
            None => (Kind::Fail, describe_check(first)),
        },
    };
    let kind = if case.info { Kind::Info } else { kind };
    let hints = if kind == Kind::Pass || kind == Kind::Info {
        Vec::new()
    } else {
        crate::hints::detect(case, out, kind, &strict_failed)
    };
    Verdict {
        kind,
        reason,
        failed: strict_failed,
        hints,
    }
}

fn describe_check(c: &Check) -> String {
    format!("{}: expected {}, got {}", c.what, c.expected, c.actual)
}

/// The clause whose tutorial paragraph accepts a client held up by another
/// that stopped reading (the part-2 blocking server).
const HELD_UP_CLAUSE: &str = "POEM-7";

/// A relaxation a case is granted, and the clause whose tutorial
/// paragraph grants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// What the tutorial profile accepts.
    pub relaxation: Relaxation,
    /// The clause whose `Tutorial profile [...]:` paragraph grants it.
    pub clause: String,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.clause, self.relaxation)
    }
}

/// Clauses the shared verifiers check in every case of a role, whether the
/// case cites them or not: a client's exit status (CLIENT-12, TCLIENT-9)
/// and failure lines (CLIENT-8, TCLIENT-4).
pub fn implied_clauses(role: Role) -> &'static [&'static str] {
    match role {
        Role::Client => &["CLIENT-8", "CLIENT-12"],
        Role::TransformClient => &["TCLIENT-4", "TCLIENT-9"],
        Role::Server | Role::TransformServer | Role::Proxy => &[],
    }
}

/// The relaxations the tutorial profile grants a case: those of the
/// tutorial paragraphs of the clauses it cites and of its role's
/// [`implied_clauses`], each once, with the first clause granting it.
pub fn grants(case: &Case) -> Vec<Grant> {
    let clauses = crate::spec::shipped();
    let mut out: Vec<Grant> = Vec::new();
    let ids = case
        .clauses
        .iter()
        .map(String::as_str)
        .chain(implied_clauses(case.role).iter().copied());
    for id in ids {
        let Some(t) = clauses.get(id).and_then(|c| c.tutorial.as_ref()) else {
            continue;
        };
        for &relaxation in &t.relaxations {
            if out.iter().all(|g| g.relaxation != relaxation) {
                out.push(Grant {
                    relaxation,
                    clause: id.to_string(),
                });
            }
        }
    }
    out
}

/// Whether `r` changes anything for this case: makes it UNSUPPORTED under
/// `tutorial`, relaxes one of its expectations, or accepts a check that
/// every run of it makes (the exit status, the failure reasons).
pub fn exercises(case: &Case, r: Relaxation) -> bool {
    let expects_failure = case
        .expect
        .results
        .iter()
        .flatten()
        .any(|v| v.starts_with("fail"))
        || case
            .expect
            .outputs
            .iter()
            .flatten()
            .any(|v| v == "none" || v == "original");
    match r {
        Relaxation::NoTimeouts => case.requires.contains(&Feature::Timeouts),
        Relaxation::CummingsifyOnly => case.requires.contains(&Feature::ExtraTransforms),
        Relaxation::ExitZeroAfterFailure | Relaxation::FailureInOwnWords => {
            matches!(case.role, Role::Client | Role::TransformClient) && expects_failure
        }
        _ => changes_expectations(case, r),
    }
}

/// Whether `r` relaxes one of this case's expectations.
fn changes_expectations(case: &Case, r: Relaxation) -> bool {
    format!("{:?}", relaxed(case, &case.expect, &[r])) != format!("{:?}", case.expect)
}

/// `exp` with what each of `relaxations` accepts written into it: the
/// expectations a program behaving as the series' programs do meets.
/// Relaxations that make cases UNSUPPORTED, or that accept a check by
/// itself ([`Check::accepted_by`]), change nothing here.
pub fn relaxed(case: &Case, exp: &Expect, relaxations: &[Relaxation]) -> Expect {
    let mut e = exp.clone();
    let resets = |s: &crate::case::ServerPeer| s.end == End::Rst && !s.refuse && !s.blackhole;
    let set = |map: &mut Option<indexmap::IndexMap<String, String>>,
               f: &dyn Fn(&str, &str) -> Option<&'static str>| {
        for (peer, v) in map.iter_mut().flatten() {
            if let Some(new) = f(peer, v) {
                *v = new.to_string();
            }
        }
    };
    for &r in relaxations {
        match r {
            Relaxation::NoTimeouts
            | Relaxation::CummingsifyOnly
            | Relaxation::ExitZeroAfterFailure => {}
            Relaxation::ResetIsEnd => match case.role {
                Role::Client => {
                    for (v, s) in e.results.iter_mut().flatten().zip(&case.servers) {
                        if resets(s) && v.starts_with("fail") {
                            *v = "prefix".into();
                        }
                    }
                }
                Role::TransformClient => {
                    for (v, s) in e.outputs.iter_mut().flatten().zip(&case.servers) {
                        if resets(s) && v == "none" {
                            *v = "transformed".into();
                        }
                    }
                }
                Role::Proxy if case.servers.first().is_some_and(resets) => {
                    // The bytes before the reset are the poem, served and
                    // cached: `poem` is the upstream's poem cut there.
                    set(&mut e.received, &|_, v| {
                        matches!(v, "nothing" | "prefix" | "full").then_some("poem")
                    });
                    set(&mut e.end, &|_, v| (v == "rst").then_some("fin"));
                    e.upstream_connections = None;
                }
                _ => {}
            },
            Relaxation::FinAfterFailedFetch => {
                if case.role == Role::Proxy && case.servers.first().is_some_and(|s| s.refuse) {
                    set(&mut e.end, &|_, v| (v == "rst").then_some("fin"));
                }
            }
            Relaxation::FailureInOwnWords => {
                for v in e.results.iter_mut().flatten() {
                    if v.starts_with("fail:") {
                        *v = "fail".into();
                    }
                }
            }
            Relaxation::OneAtATime => {
                let n = match case.role {
                    Role::Client | Role::TransformClient => case.servers.len(),
                    Role::Server | Role::TransformServer | Role::Proxy => {
                        case.clients.iter().map(|c| c.count).sum()
                    }
                };
                if let Some(max) = e.elapsed_max.as_mut() {
                    max.0 *= u32::try_from(n.max(1)).unwrap_or(u32::MAX);
                }
                // POEM-7's paragraph: a client that stops reading holds up
                // every other, which may then get only part of its poem
                // before it leaves, and no end of its own.
                if case.clauses.iter().any(|c| c == HELD_UP_CLAUSE) {
                    for want in e.received.iter_mut().flat_map(|r| r.values_mut()) {
                        if want == "poem" {
                            *want = "prefix".to_string();
                        }
                    }
                    e.end = None;
                }
            }
            Relaxation::CloseWithoutReading => {
                if matches!(
                    case.role,
                    Role::Server | Role::TransformServer | Role::Proxy
                ) {
                    let senders: Vec<String> = case
                        .client_names()
                        .into_iter()
                        .zip(&case.clients)
                        .filter(|(_, c)| c.send.is_some() || c.send_hex.is_some())
                        .map(|(n, _)| n)
                        .collect();
                    set(&mut e.end, &|peer, v| {
                        (v == "fin" && senders.iter().any(|s| s == peer)).then_some("closed")
                    });
                }
            }
            Relaxation::NeverCancels => {
                if case.role == Role::Proxy {
                    // The fetch runs to its end: the upstream connection
                    // closes then (within the case's limit, NET-6 still
                    // applies), and later clients get the cached poem.
                    if e.upstream_closed_within.is_some() {
                        e.upstream_closed_within = Some(case.limit);
                    }
                    e.upstream_connections = None;
                }
            }
            Relaxation::FetchPerRequest => {
                if case.role == Role::Proxy {
                    e.upstream_connections = None;
                }
            }
        }
    }
    e
}

/// Most relaxations changing a case's expectations that
/// [`tutorial_accepts`] tries in every combination (2^N alternatives);
/// beyond, none, each alone and all.
const MAX_COMBINED: usize = 6;

/// What makes the tutorial profile accept this run, if anything: a
/// combination of the granted relaxations (or the case's `[case.tutorial]`
/// table, for a SHOULD clause, with them) under whose relaxed expectations
/// every check passes or is accepted by a granted relaxation. One
/// combination judges the whole run, so a program cannot take one check
/// from strict and the next from a relaxation that contradicts it.
fn tutorial_accepts(case: &Case, out: &RunOutcome) -> Option<String> {
    let grants = grants(case);
    // Only the relaxations that change an expectation of this case are
    // combined; the others accept single checks (`accepted_by`) in all.
    let changing: Vec<&Grant> = grants
        .iter()
        .filter(|g| changes_expectations(case, g.relaxation))
        .collect();
    let n = changing.len();
    let mut subsets: Vec<Vec<&Grant>> = if n <= MAX_COMBINED {
        (0..1u32 << n)
            .map(|bits| {
                (0..n)
                    .filter(|i| bits & (1 << i) != 0)
                    .map(|i| changing[i])
                    .collect()
            })
            .collect()
    } else {
        std::iter::once(Vec::new())
            .chain(changing.iter().map(|g| vec![*g]))
            .chain([changing.clone()])
            .collect()
    };
    // The fewest relaxations first, so the reason names what was needed.
    subsets.sort_by_key(Vec::len);
    let mut alternatives: Vec<(Vec<&Grant>, Expect)> = subsets
        .into_iter()
        .map(|subset| {
            let rs: Vec<Relaxation> = subset.iter().map(|g| g.relaxation).collect();
            let e = relaxed(case, &case.expect, &rs);
            (subset, e)
        })
        .collect();
    if let Some(t) = &case.tutorial {
        let rs: Vec<Relaxation> = changing.iter().map(|g| g.relaxation).collect();
        alternatives.push((
            changing.clone(),
            relaxed(case, &case.expect.overridden_by(t), &rs),
        ));
    }
    let table = alternatives.len() - 1;
    alternatives
        .into_iter()
        .enumerate()
        .find_map(|(k, (mut used, e))| {
            for c in checks(case, &e, out).iter().filter(|c| !c.ok) {
                let g = grants
                    .iter()
                    .find(|g| Some(g.relaxation) == c.accepted_by)?;
                if !used.contains(&g) {
                    used.push(g);
                }
            }
            let mut label: Vec<String> = used.iter().map(|g| g.to_string()).collect();
            if case.tutorial.is_some() && k == table {
                label.push("the case's [case.tutorial] table".into());
            }
            Some(label.join(", "))
        })
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
        accepted_by: None,
        compared: None,
    }
}

/// Every check an expectation implies.
pub fn checks(case: &Case, exp: &Expect, out: &RunOutcome) -> Vec<Check> {
    let mut v = Vec::new();
    let poems: Vec<Bytes> = case.servers.iter().map(|s| s.sent_poem()).collect();
    let servers = case.server_names();
    let server = |i: usize| servers.get(i).map_or("the server", String::as_str);
    if let (Some(want), SubjectResult::Poems(got)) = (&exp.results, &out.result) {
        for (i, w) in want.iter().enumerate() {
            let got = got.get(i);
            let actual = got.map_or("no result".to_string(), describe_fetch);
            let unrecognised = matches!(got, Some(Err(FetchError::Unrecognised(_))));
            let ok = got.is_some_and(|g| fetch_matches(w, g, &poems[i]))
                || (unrecognised && w.starts_with("fail:"));
            let mut expected = crate::case::expect::words::result(w, server(i));
            if w == "poem" {
                let _ = write!(expected, " ({} bytes)", poems[i].len());
            }
            let c = check(format!("result {}", i + 1), expected, actual, ok);
            v.push(match (w.as_str(), got) {
                ("poem" | "empty" | "prefix", Some(Ok(p))) => {
                    let want = if w == "empty" {
                        Bytes::new()
                    } else {
                        poems[i].clone()
                    };
                    c.comparing(|| (want, p.clone()))
                }
                _ => c,
            });
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
                c.accepted_by = Some(crate::spec::Relaxation::FailureInOwnWords);
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
            let c = check(
                format!("output {}", i + 1),
                crate::case::expect::words::output(w, server(i)),
                actual,
                ok,
            );
            let want_bytes: Option<Bytes> = match w.as_str() {
                "transformed" => std::str::from_utf8(&poems[i])
                    .ok()
                    .zip(transform::Transform::from_name(&case.subject.transform))
                    .map(|(text, t)| Bytes::from(t.apply(text))),
                "original" => Some(poems[i].clone()),
                _ => None,
            };
            v.push(match (want_bytes, got) {
                (Some(e), Some(g @ (Transformed::Poem(_) | Transformed::Fallback { .. }))) => {
                    c.comparing(|| (e, Bytes::copy_from_slice(g.output())))
                }
                _ => c,
            });
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
            // Bytes, not Vec: fifty clients of a 1 MiB poem share one copy.
            let expected_bytes: Option<Bytes> = match want.as_str() {
                "poem" => Some(served.clone()),
                // The upstream's whole poem, whatever a misbehaving first
                // connection cut off (proxy cases with `misbehave_first`).
                "full" => Some(full.clone()),
                "nothing" => Some(Bytes::new()),
                "reply" => seen
                    .request
                    .as_deref()
                    .and_then(|r| transform::respond(r).ok())
                    .map(|t| Bytes::from(netstring::encode(t.as_bytes()))),
                text => text
                    .strip_prefix("reply:")
                    .map(|t| Bytes::from(netstring::encode(t.as_bytes()))),
            };
            let ok = match (want.as_str(), &expected_bytes) {
                ("prefix", _) => seen.received_prefix_of(&served),
                (_, Some(e)) => seen.received_equals(e),
                _ => false,
            };
            let words = crate::case::expect::words::received(want);
            let expected = match &expected_bytes {
                Some(e) if want != "prefix" && !e.is_empty() => {
                    format!("{words}: {}", preview(e))
                }
                _ => words,
            };
            let actual = if seen.received_truncated() {
                format!(
                    "{} bytes, first {}",
                    seen.received_len,
                    preview(&seen.received)
                )
            } else {
                preview(&seen.received)
            };
            let c = check(format!("{copy} received"), expected, actual, ok);
            let compare_with = match (want.as_str(), expected_bytes) {
                ("prefix", _) => Some(served.clone()),
                (_, e) => e,
            };
            v.push(match compare_with {
                Some(e) => {
                    let mut c = c.comparing(|| {
                        let kept = &seen.received[..seen.received.len().min(COMPARED_CAP)];
                        (e, Bytes::copy_from_slice(kept))
                    });
                    if let Some(b) = &mut c.compared {
                        b.received_len = usize::try_from(seen.received_len).unwrap_or(usize::MAX);
                    }
                    c
                }
                None => c,
            });
        }
    }
    for (name, want) in exp.end.iter().flatten() {
        for (copy, seen) in copies(out, name) {
            let token = match seen.ending {
                None => "still open".to_string(),
                Some(Ending::Fin) => "fin".to_string(),
                Some(Ending::Rst) => "rst".to_string(),
                Some(Ending::Left) => "the client left first".to_string(),
                Some(Ending::Refused) => "connection refused".to_string(),
                Some(Ending::ConnectFailed) => {
                    "the harness could not connect (see the transcript)".to_string()
                }
            };
            let ok = match want.as_str() {
                "closed" => matches!(seen.ending, Some(Ending::Fin | Ending::Rst)),
                w => token == w,
            };
            v.push(check(
                format!("{copy} connection end"),
                crate::case::expect::words::end(want),
                crate::case::expect::words::end(&token),
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
            c.accepted_by = (any_fail && code == 0).then_some(Relaxation::ExitZeroAfterFailure);
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
        Ok(p) => format!("a poem of {}", preview(p)),
        Err(e) => format!("a failure ({e})"),
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
        Transformed::Poem(p) => format!("a poem given as transformed: {}", preview(p.as_bytes())),
        Transformed::Fallback { original, failure } => {
            format!(
                "the poem untransformed, {} (transform failure reported: {failure})",
                preview(original)
            )
        }
        Transformed::DownloadFailed(e) => format!("no poem (download failed: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn case(id: &str) -> Case {
        Catalog::builtin().unwrap().get(id).unwrap().clone()
    }

    #[test]
    fn a_cited_clause_grants_its_tutorial_relaxations() {
        let c = case("client.reset-mid-poem");
        let g = grants(&c);
        assert!(g.contains(&Grant {
            relaxation: Relaxation::ResetIsEnd,
            clause: "CLIENT-5".into()
        }));
        // The exit status and failure lines are checked in every client case.
        assert!(g
            .iter()
            .any(|g| g.relaxation == Relaxation::ExitZeroAfterFailure));
        let e = relaxed(&c, &c.expect, &[Relaxation::ResetIsEnd]);
        assert_eq!(e.results, Some(vec!["prefix".to_string()]));
    }

    #[test]
    fn one_at_a_time_multiplies_the_bound_by_the_connections() {
        let c = case("server.slow-five-at-once");
        let e = relaxed(&c, &c.expect, &[Relaxation::OneAtATime]);
        assert_eq!(
            e.elapsed_max.unwrap().0,
            c.expect.elapsed_max.unwrap().0 * 5
        );
        assert_eq!(e.elapsed_min, c.expect.elapsed_min);
    }

    #[test]
    fn no_timeouts_makes_a_timeout_case_unsupported_under_tutorial_only() {
        let c = case("client.stall-forever");
        let imp = Implementation::reference();
        let v = precheck(&c, &imp, Profile::Tutorial).expect("not run");
        assert_eq!(v.kind, Kind::Unsupported);
        assert!(v.reason.contains("no-timeouts"), "{}", v.reason);
        assert!(precheck(&c, &imp, Profile::Strict).is_none());
        // A case citing CLIENT-10 that needs no timeout still runs.
        assert!(precheck(&case("client.stall-then-resume"), &imp, Profile::Tutorial).is_none());
    }

    #[test]
    fn a_relaxation_is_not_granted_to_a_case_that_cites_no_clause_of_it() {
        let c = case("client.fast-poem");
        assert!(grants(&c)
            .iter()
            .all(|g| g.relaxation != Relaxation::ResetIsEnd));
        assert!(!exercises(&c, Relaxation::ResetIsEnd));
    }
}

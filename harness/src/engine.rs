//! The engine: runs cases against an implementation, in parallel, each in
//! its own deterministic simulation, and collects verdicts in catalog order.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::backend::live::{self, LiveSubject};
use crate::backend::sim::{self, RunOptions};
use crate::backend::RunOutcome;
use crate::case::Case;
use crate::roles::Implementation;
use crate::verdict::{self, Kind, Profile, Verdict};

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// Its verdict.
    pub verdict: Verdict,
    /// The run, unless the case was not run (UNSUPPORTED).
    pub outcome: Option<RunOutcome>,
    /// Whether the verdict judges the implementation, or something else
    /// ended the case.
    pub status: Status,
    /// Wall time the harness spent on the case (reports' durations; never
    /// in a transcript, whose clock in the simulator is simulated).
    pub wall: Duration,
    /// With `run --repeat N`, how its runs went (see [`crate::repeat`]).
    pub repeats: Option<crate::repeat::Repeats>,
}

/// What ended a case, besides a verdict on the implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    /// The verdict judges the implementation.
    #[default]
    Judged,
    /// The run was interrupted (a signal) before or while the case ran;
    /// its verdict says which.
    Interrupted,
    /// The harness failed (a panic), or the command could not run at all:
    /// not the implementation's fault, and not a verdict on it.
    HarnessError,
}

impl Status {
    /// The label reports show instead of the verdict's, if any.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Status::Judged => None,
            Status::Interrupted => Some("INTERRUPTED"),
            Status::HarnessError => Some("ERROR"),
        }
    }
}

/// Set once the run is to stop (an interrupt): no further case starts.
static STOP: AtomicBool = AtomicBool::new(false);

/// Asks every running [`run_all`] and [`run_all_live`] to start no further
/// case; those running finish (their programs are killed by the caller)
/// and are marked [`Status::Interrupted`], the rest are not run.
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether [`request_stop`] was called.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// How to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Profile to judge against.
    pub profile: Profile,
    /// Seed, and whether to perturb chunking with it.
    pub run: RunOptions,
    /// Worker threads (each runs whole cases).
    pub jobs: usize,
    /// Start no further case once one fails (`run --fail-fast`); the cases
    /// not started are reported as not run.
    pub fail_fast: bool,
    /// Runs of each case (`run --repeat N`), judged together by
    /// [`crate::repeat::aggregate`]; 1 runs each case once.
    pub repeat: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            profile: Profile::Strict,
            run: RunOptions::default(),
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            fail_fast: false,
            repeat: 1,
        }
    }
}

impl CaseResult {
    /// The run's transcript as text (empty for a case that was not run).
    pub fn transcript(&self) -> String {
        self.outcome
            .as_ref()
            .map(|o| o.transcript.render())
            .unwrap_or_default()
    }

    /// `ID KIND: reason`, then the transcript: a failure as a test shows it.
    pub fn explained(&self) -> String {
        format!(
            "{} {}: {}\n{}",
            self.case.id,
            self.verdict.kind,
            self.verdict.reason,
            self.transcript()
        )
    }

    /// A case that was not run.
    fn not_run(case: &Case, verdict: Verdict) -> Self {
        CaseResult {
            case: case.clone(),
            verdict,
            outcome: None,
            status: Status::Judged,
            wall: Duration::ZERO,
            repeats: None,
        }
    }

    /// A case the harness could not judge: `why` says what went wrong.
    pub fn harness_error(case: &Case, why: String, outcome: Option<RunOutcome>) -> Self {
        CaseResult {
            case: case.clone(),
            verdict: Verdict {
                kind: Kind::Fail,
                reason: why,
                failed: Vec::new(),
                hints: Vec::new(),
            },
            outcome,
            status: Status::HarnessError,
            wall: Duration::ZERO,
            repeats: None,
        }
    }

    /// A case the interrupt kept from starting.
    pub fn interrupted(case: &Case) -> Self {
        CaseResult {
            case: case.clone(),
            verdict: Verdict {
                kind: Kind::Fail,
                reason: "not run: the run was interrupted".into(),
                failed: Vec::new(),
                hints: Vec::new(),
            },
            outcome: None,
            status: Status::Interrupted,
            wall: Duration::ZERO,
            repeats: None,
        }
    }

    /// The label reports show: the status's, else the verdict's.
    pub fn label(&self) -> &'static str {
        self.status.label().unwrap_or(self.verdict.kind.label())
    }

    /// A run, judged against `judged_as` (the case itself, or its scaled
    /// copy in a live run).
    fn judged(case: &Case, judged_as: &Case, outcome: RunOutcome) -> Self {
        if let Some(first) = outcome.seen.harness_faults.first() {
            let more = match outcome.seen.harness_faults.len() - 1 {
                0 => String::new(),
                n => format!(" (and {n} more, see the transcript)"),
            };
            let why = format!(
                "harness error, not a verdict on the program: {first}{more}; \
                 rerun with fewer --jobs or a higher open-file limit (ulimit -n)"
            );
            return CaseResult::harness_error(case, why, Some(outcome));
        }
        let verdict = verdict::judge(judged_as, &outcome);
        let mut outcome = outcome;
        let passed = verdict.kind == Kind::Pass || (case.info && verdict.kind == Kind::Info);
        if !passed {
            append_sockets(&mut outcome);
        }
        CaseResult {
            case: case.clone(),
            verdict,
            outcome: Some(outcome),
            status: Status::Judged,
            wall: Duration::ZERO,
            repeats: None,
        }
    }
}

/// A failing run on simnet: its transcript ends with the socket dump, the
/// harness's events at the transcript's last time: every socket of every
/// host at the end of the run, netstat-style (state, bytes queued each
/// way, which host holds it and its peer). Other engines have none.
fn append_sockets(outcome: &mut RunOutcome) {
    let Some(rows) = outcome.sockets.as_ref() else {
        return;
    };
    let at = outcome.transcript.span();
    let mut add = |what: String| {
        outcome.transcript.events.push(crate::transcript::Event {
            at,
            who: "harness".to_string(),
            what,
            run: None,
        });
    };
    if rows.len() <= 1 {
        add("sockets at the end: none".to_string());
        return;
    }
    add("sockets at the end (every host, netstat):".to_string());
    for row in rows {
        add(row.clone());
    }
}

/// Runs and judges one case.
pub fn run_case(case: &Case, imp: &Implementation, opts: &EngineOptions) -> CaseResult {
    if let Some(v) = sim_precheck(case, imp, opts) {
        return CaseResult::not_run(case, v);
    }
    let started = std::time::Instant::now();
    let mut judged = CaseResult::judged(case, case, sim::run(case, imp, opts.run));
    judged.wall = started.elapsed();
    judged
}

/// Why the simulator cannot give `case` to `imp` (UNSUPPORTED): what
/// [`verdict::precheck`] says, or a network only simnet models (packet
/// faults, a listen backlog) on another engine.
pub fn sim_precheck(case: &Case, imp: &Implementation, opts: &EngineOptions) -> Option<Verdict> {
    verdict::precheck(case, imp, opts.profile).or_else(|| {
        if opts.run.engine() == sim::SimEngine::Simnet {
            return None;
        }
        case.net.needs_simnet().map(|what| {
            Verdict::new(
                Kind::Unsupported,
                format!(
                    "case {} needs --engine simnet: its {what} cannot run on turmoil, which has no retransmission and no listen backlog",
                    case.id
                ),
            )
        })
    })
}

/// Why a live run cannot give `case` to any program because of its
/// network, naming the case: packet faults or a listen backlog.
fn live_net_unsupported(case: &Case) -> Option<Verdict> {
    case.net.needs_simnet().map(|what| {
        Verdict::new(
            Kind::Unsupported,
            format!(
                "case {} needs --engine simnet: its {what} cannot be made on real sockets, which cannot drop packets",
                case.id
            ),
        )
    })
}

/// Runs every case on `opts.jobs` threads; results come back in the order
/// of `cases`, whatever order they finished in. `progress` is called as
/// each finishes.
pub fn run_all(
    cases: &[&Case],
    imp: &Implementation,
    opts: &EngineOptions,
    progress: &(dyn Fn(&CaseResult) + Sync),
) -> Vec<CaseResult> {
    run_parallel(
        cases,
        opts,
        &|case| repeated(opts, &|| run_case(case, imp, opts)),
        progress,
    )
}

/// `run_one` run `opts.repeat` times and judged together; once when the
/// case is not run (UNSUPPORTED), or when a run is not judged (a harness
/// error, an interrupt), which ends the repeats.
fn repeated(opts: &EngineOptions, run_one: &dyn Fn() -> CaseResult) -> CaseResult {
    let first = run_one();
    if opts.repeat <= 1 || first.outcome.is_none() || first.status != Status::Judged {
        return first;
    }
    let mut runs = vec![first];
    while runs.len() < opts.repeat && !stop_requested() {
        let next = run_one();
        let judged = next.status == Status::Judged;
        runs.push(next);
        if !judged {
            break;
        }
    }
    crate::repeat::aggregate(runs, opts.profile)
}

/// Runs and judges one case against a program (live backend).
pub fn run_case_live(case: &Case, target: &LiveTarget, opts: &EngineOptions) -> CaseResult {
    let started = std::time::Instant::now();
    let mut result = run_case_live_untimed(case, target, opts);
    result.wall = started.elapsed();
    result
}

/// Why a program cannot be given `case` (UNSUPPORTED: no program for its
/// role, a declared lack, the profile, or a case only the simulator can
/// run), or `None` when it runs. The one decision, for runs and
/// `--dry-run` alike.
pub fn live_precheck(case: &Case, target: &LiveTarget, profile: Profile) -> Option<Verdict> {
    let subject = target.roles.get(&case.role);
    let mut lacks = target.lacks.clone();
    lacks.extend(subject.map(|s| s.lacks.clone()).unwrap_or_default());
    verdict::precheck_parts(case, &target.name, subject.is_some(), &lacks, profile)
        .or_else(|| live_net_unsupported(case))
        .or_else(|| {
            live::live_unsupported(case).map(|why| Verdict {
                kind: Kind::Unsupported,
                reason: why.into(),
                failed: Vec::new(),
                hints: Vec::new(),
            })
        })
}

fn run_case_live_untimed(case: &Case, target: &LiveTarget, opts: &EngineOptions) -> CaseResult {
    let subject = target.roles.get(&case.role);
    let unsupported = live_precheck(case, target, opts.profile);
    let (Some(subject), None) = (subject, &unsupported) else {
        let why = unsupported.expect("unsupported when there is no subject");
        return CaseResult::not_run(case, why);
    };
    // Judged against the scaled case: its time bounds are scaled too.
    let scaled = live::scaled(case, subject.scale_for(case));
    let outcome = live::run(&scaled, subject, opts.run.seed());
    if let Some(message) = cannot_run(&outcome) {
        return CaseResult::harness_error(
            case,
            format!(
                "the command cannot run: {message} (command '{}')",
                subject.command
            ),
            Some(outcome),
        );
    }
    let mut judged = CaseResult::judged(case, &scaled, outcome);
    if let Some(o) = &mut judged.outcome {
        o.shed_payload();
    }
    judged
}

/// The shell's own message, when a live run shows that the command could
/// not run at all (exit 126 or 127 with `not found`): never a verdict, and
/// never the exit-127 "unsupported" convention.
fn cannot_run(outcome: &RunOutcome) -> Option<String> {
    use crate::backend::RunEnd;
    let status = match (&outcome.end, outcome.exit_status) {
        (RunEnd::Unsupported(_), _) => Some(live::UNSUPPORTED_STATUS),
        (_, Some(code @ (126 | 127))) => Some(code),
        _ => None,
    };
    let stderr: String = outcome
        .transcript
        .events
        .iter()
        .filter(|e| e.who == "subject")
        .filter_map(|e| e.what.strip_prefix("stderr: "))
        .map(|l| format!("{l}\n"))
        .collect();
    live::launch::shell_cannot_run(status, &stderr)
}

/// Programs under test, one per role they play (live backend).
#[derive(Debug, Clone, Default)]
pub struct LiveTarget {
    /// Shown in reports.
    pub name: String,
    /// Features the programs lack.
    pub lacks: Vec<crate::case::Feature>,
    /// The program of each role.
    pub roles: indexmap::IndexMap<crate::case::Role, LiveSubject>,
    /// The profile the manifest asks for, if any.
    pub profile: Option<Profile>,
}

/// [`run_all`] for programs on real sockets.
pub fn run_all_live(
    cases: &[&Case],
    target: &LiveTarget,
    opts: &EngineOptions,
    progress: &(dyn Fn(&CaseResult) + Sync),
) -> Vec<CaseResult> {
    run_parallel(
        cases,
        opts,
        &|case| repeated(opts, &|| run_case_live(case, target, opts)),
        progress,
    )
}

fn run_parallel(
    cases: &[&Case],
    opts: &EngineOptions,
    run_one: &(dyn Fn(&Case) -> CaseResult + Sync),
    progress: &(dyn Fn(&CaseResult) + Sync),
) -> Vec<CaseResult> {
    let jobs = opts.jobs;
    let next = AtomicUsize::new(0);
    // The first case that failed, under --fail-fast.
    let failed_first: Mutex<Option<String>> = Mutex::new(None);
    let stop_now = || stop_requested() || failed_first.lock().map(|f| f.is_some()).unwrap_or(false);
    let slots: Vec<Mutex<Option<CaseResult>>> = cases.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, cases.len().max(1)) {
            scope.spawn(|| loop {
                if stop_now() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                // A panic is the harness's failure in this case alone.
                let mut result =
                    catch_unwind(AssertUnwindSafe(|| run_one(case))).unwrap_or_else(|panic| {
                        CaseResult::harness_error(
                            case,
                            format!(
                                "harness error: the case panicked: {}",
                                panic_message(&*panic)
                            ),
                            None,
                        )
                    });
                if stop_requested() && result.status == Status::Judged {
                    result.status = Status::Interrupted;
                    result.verdict.reason =
                        format!("interrupted while running ({})", result.verdict.reason);
                }
                if opts.fail_fast && result.verdict.kind.fails(opts.profile) {
                    if let Ok(mut first) = failed_first.lock() {
                        first.get_or_insert_with(|| case.id.clone());
                    }
                }
                progress(&result);
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(result);
                }
            });
        }
    });
    let failed_first = failed_first.into_inner().ok().flatten();
    slots
        .into_iter()
        .zip(cases)
        .map(|(s, case)| {
            s.into_inner().ok().flatten().unwrap_or_else(|| {
                match (&failed_first, stop_requested()) {
                    (Some(first), false) => CaseResult::not_run(
                        case,
                        Verdict {
                            kind: Kind::Unsupported,
                            reason: format!(
                                "not run: --fail-fast stopped the run when {first} failed"
                            ),
                            failed: Vec::new(),
                            hints: Vec::new(),
                        },
                    ),
                    _ => CaseResult::interrupted(case),
                }
            })
        })
        .collect()
}

/// The text of a panic's payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Runs `case` with `count` perturbed seeds (1..=count, offset by `base`)
/// and returns the runs whose verdict fails under the profile. Each run
/// keeps `opts.run`'s engine and network profile
/// ([`RunOptions::reseeded`]): the seed perturbs the server peers'
/// chunking on either engine (and, on simnet, seeds the links' fault
/// draws), and the run returned replays on the engine that found it.
pub fn explore(
    case: &Case,
    imp: &Implementation,
    opts: &EngineOptions,
    base: u64,
    count: u64,
) -> Vec<(RunOptions, Kind)> {
    if sim_precheck(case, imp, opts).is_some() {
        return Vec::new();
    }
    (1..=count)
        .map(|k| opts.run.reseeded(base.wrapping_add(k)))
        .filter_map(|run| {
            let v = verdict::judge(case, &sim::run(case, imp, run));
            v.kind.fails(opts.profile).then_some((run, v.kind))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_fast_starts_nothing_after_the_first_failure() {
        let catalog = crate::catalog::Catalog::builtin().unwrap();
        let cases = catalog.select(&["client.".to_string()]);
        let imp = (crate::mutants::by_name("client-reads-once").unwrap().build)();
        let mut opts = EngineOptions {
            jobs: 1,
            ..EngineOptions::default()
        };
        let all = run_all(&cases, &imp, &opts, &|_| {});
        let failures = |rs: &[CaseResult]| {
            rs.iter()
                .filter(|r| r.verdict.kind.fails(opts.profile))
                .count()
        };
        assert!(failures(&all) > 1);
        opts.fail_fast = true;
        let fast = run_all(&cases, &imp, &opts, &|_| {});
        assert_eq!(fast.len(), cases.len());
        assert_eq!(failures(&fast), 1);
        let first = fast
            .iter()
            .position(|r| r.verdict.kind.fails(opts.profile))
            .unwrap();
        for r in &fast[first + 1..] {
            assert_eq!(r.verdict.kind, Kind::Unsupported, "{}", r.case.id);
            assert!(
                r.verdict
                    .reason
                    .starts_with("not run: --fail-fast stopped the run when client."),
                "{}",
                r.verdict.reason
            );
            assert!(r.outcome.is_none());
        }
    }

    #[test]
    fn a_panic_in_one_case_is_a_harness_error_and_the_others_run() {
        let catalog = crate::catalog::Catalog::builtin().unwrap();
        let cases: Vec<&Case> = catalog
            .select(&["client.".to_string()])
            .into_iter()
            .take(3)
            .collect();
        let panicky = cases[1].id.clone();
        let results = run_parallel(
            &cases,
            &EngineOptions {
                jobs: 2,
                ..EngineOptions::default()
            },
            &|case| {
                if case.id == panicky {
                    panic!("boom in {}", case.id);
                }
                CaseResult::not_run(
                    case,
                    Verdict {
                        kind: Kind::Pass,
                        reason: "fine".into(),
                        failed: Vec::new(),
                        hints: Vec::new(),
                    },
                )
            },
            &|_| {},
        );
        assert_eq!(results.len(), 3);
        assert_eq!(results[1].status, Status::HarnessError);
        assert!(
            results[1].verdict.reason.contains("boom in"),
            "{}",
            results[1].verdict.reason
        );
        assert_eq!(results[0].verdict.kind, Kind::Pass);
        assert_eq!(results[2].verdict.kind, Kind::Pass);
    }
}

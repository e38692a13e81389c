//! The engine: runs cases against an implementation, in parallel, each in
//! its own deterministic simulation, and collects verdicts in catalog order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

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
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            profile: Profile::Strict,
            run: RunOptions::default(),
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl CaseResult {
    /// A case that was not run.
    fn not_run(case: &Case, verdict: Verdict) -> Self {
        CaseResult {
            case: case.clone(),
            verdict,
            outcome: None,
        }
    }

    /// A run, judged against `judged_as` (the case itself, or its scaled
    /// copy in a live run).
    fn judged(case: &Case, judged_as: &Case, outcome: RunOutcome) -> Self {
        CaseResult {
            case: case.clone(),
            verdict: verdict::judge(judged_as, &outcome),
            outcome: Some(outcome),
        }
    }
}

/// Runs and judges one case.
pub fn run_case(case: &Case, imp: &Implementation, opts: &EngineOptions) -> CaseResult {
    if let Some(v) = verdict::precheck(case, imp, opts.profile) {
        return CaseResult::not_run(case, v);
    }
    CaseResult::judged(case, case, sim::run(case, imp, opts.run))
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
        opts.jobs,
        &|case| run_case(case, imp, opts),
        progress,
    )
}

/// Runs and judges one case against a program (live backend).
pub fn run_case_live(case: &Case, target: &LiveTarget, opts: &EngineOptions) -> CaseResult {
    let subject = target.roles.get(&case.role);
    let mut lacks = target.lacks.clone();
    lacks.extend(subject.map(|s| s.lacks.clone()).unwrap_or_default());
    let unsupported =
        verdict::precheck_parts(case, &target.name, subject.is_some(), &lacks, opts.profile)
            .or_else(|| {
                live::live_unsupported(case).map(|why| Verdict {
                    kind: Kind::Unsupported,
                    reason: why.into(),
                    failed: Vec::new(),
                })
            });
    let (Some(subject), None) = (subject, &unsupported) else {
        let why = unsupported.expect("unsupported when there is no subject");
        return CaseResult::not_run(case, why);
    };
    // Judged against the scaled case: its time bounds are scaled too.
    let scaled = live::scaled(case, subject.time_scale);
    CaseResult::judged(case, &scaled, live::run(&scaled, subject, opts.run.seed))
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
        opts.jobs,
        &|case| run_case_live(case, target, opts),
        progress,
    )
}

fn run_parallel(
    cases: &[&Case],
    jobs: usize,
    run_one: &(dyn Fn(&Case) -> CaseResult + Sync),
    progress: &(dyn Fn(&CaseResult) + Sync),
) -> Vec<CaseResult> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<CaseResult>>> = cases.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, cases.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                let result = run_one(case);
                progress(&result);
                *slots[i].lock().expect("slot lock") = Some(result);
            });
        }
    });
    slots
        .into_iter()
        .map(|s| s.into_inner().expect("slot lock").expect("every case ran"))
        .collect()
}

/// Runs `case` with `count` perturbed seeds (1..=count, offset by `base`)
/// and returns the seeds whose verdict fails under the profile.
pub fn explore(
    case: &Case,
    imp: &Implementation,
    opts: &EngineOptions,
    base: u64,
    count: u64,
) -> Vec<(u64, Kind)> {
    if verdict::precheck(case, imp, opts.profile).is_some() {
        return Vec::new();
    }
    (1..=count)
        .map(|k| base.wrapping_add(k))
        .filter_map(|seed| {
            let run = RunOptions {
                seed,
                perturb: true,
            };
            let v = verdict::judge(case, &sim::run(case, imp, run));
            v.kind.fails(opts.profile).then_some((seed, v.kind))
        })
        .collect()
}

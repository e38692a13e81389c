//! `run --repeat N`: each case run N times, and its runs judged together.
//!
//! A case whose runs all pass (or all fail) under the profile keeps the
//! verdict of its worst run, and its reason says how many runs passed. A
//! case that passed some runs and failed others is FLAKY: its reason gives
//! the pass rate and the first failing run's reason, and its transcript
//! and failed checks are that run's, so the report shows what went wrong.
//!
//! The simulator is deterministic: its repeats always agree. Repeats are
//! for live programs, whose behaviour may depend on scheduling.

use crate::engine::{CaseResult, Status};
use crate::verdict::{Kind, Profile};

/// How a repeated case's runs went.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Repeats {
    /// Runs made.
    pub runs: usize,
    /// Runs that passed under the profile.
    pub passed: usize,
    /// `passed / runs`, from 0 to 1.
    pub pass_rate: f64,
}

impl Repeats {
    /// `passed` of `runs`.
    pub fn new(runs: usize, passed: usize) -> Self {
        Repeats {
            runs,
            passed,
            pass_rate: if runs == 0 {
                0.0
            } else {
                passed as f64 / runs as f64
            },
        }
    }
}

impl std::fmt::Display for Repeats {
    /// `passed 3 of 4 runs (75%)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "passed {} of {} runs ({:.0}%)",
            self.passed,
            self.runs,
            100.0 * self.pass_rate
        )
    }
}

/// One result for the runs of one case (in the order they ran), judged
/// under `profile`. A run that was not judged (a harness error, an
/// interrupt) stands for the case: the repeats say nothing then.
///
/// # Panics
/// When `runs` is empty: every case runs at least once.
pub fn aggregate(runs: Vec<CaseResult>, profile: Profile) -> CaseResult {
    assert!(!runs.is_empty(), "a repeated case ran at least once");
    let wall = runs.iter().map(|r| r.wall).sum();
    if let Some(unjudged) = runs.iter().find(|r| r.status != Status::Judged) {
        let mut r = unjudged.clone();
        r.wall = wall;
        return r;
    }
    let passes = |r: &CaseResult| !r.verdict.kind.fails(profile);
    let repeats = Repeats::new(runs.len(), runs.iter().filter(|r| passes(r)).count());
    let mut result = if repeats.passed > 0 && repeats.passed < repeats.runs {
        let (i, failing) = runs
            .iter()
            .enumerate()
            .find(|(_, r)| !passes(r))
            .expect("a failing run");
        let mut r = failing.clone();
        r.verdict.reason = format!(
            "{repeats}; run {} {}: {}",
            i + 1,
            failing.verdict.kind,
            failing.verdict.reason
        );
        r.verdict.kind = Kind::Flaky;
        r
    } else {
        // The worst run (kinds are ordered worst first), the first of
        // equals.
        let worst = runs.iter().min_by_key(|r| r.verdict.kind).expect("a run");
        let mut r = worst.clone();
        r.verdict.reason = format!("{}; {repeats}", worst.verdict.reason);
        r
    };
    result.wall = wall;
    result.repeats = Some(repeats);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Verdict;

    fn run(kind: Kind, reason: &str) -> CaseResult {
        let catalog = crate::catalog::Catalog::builtin().unwrap();
        let case = catalog.select(&[]).into_iter().next().unwrap();
        let mut r = CaseResult::interrupted(case);
        r.status = Status::Judged;
        r.verdict = Verdict {
            kind,
            reason: reason.into(),
            failed: Vec::new(),
            hints: Vec::new(),
        };
        r.wall = std::time::Duration::from_millis(100);
        r
    }

    #[test]
    fn runs_that_agree_keep_their_verdict_and_say_how_many_passed() {
        let r = aggregate(
            vec![run(Kind::Pass, "ok"), run(Kind::Pass, "ok")],
            Profile::Strict,
        );
        assert_eq!(r.verdict.kind, Kind::Pass);
        assert_eq!(r.verdict.reason, "ok; passed 2 of 2 runs (100%)");
        assert_eq!(r.repeats, Some(Repeats::new(2, 2)));
        assert_eq!(r.wall, std::time::Duration::from_millis(200));
        let r = aggregate(
            vec![run(Kind::Fail, "short"), run(Kind::Timeout, "hung")],
            Profile::Strict,
        );
        assert_eq!(r.verdict.kind, Kind::Timeout, "the worst run");
        assert_eq!(r.verdict.reason, "hung; passed 0 of 2 runs (0%)");
    }

    #[test]
    fn a_case_that_passed_and_failed_is_flaky_with_the_first_failure() {
        let r = aggregate(
            vec![
                run(Kind::Pass, "ok"),
                run(Kind::Fail, "got 3 bytes"),
                run(Kind::Pass, "ok"),
                run(Kind::Timeout, "hung"),
            ],
            Profile::Strict,
        );
        assert_eq!(r.verdict.kind, Kind::Flaky);
        assert_eq!(
            r.verdict.reason,
            "passed 2 of 4 runs (50%); run 2 FAIL: got 3 bytes"
        );
        assert_eq!(r.repeats.unwrap().pass_rate, 0.5);
        assert!(Kind::Flaky.fails(Profile::Strict));
        assert!(Kind::Flaky.fails(Profile::Tutorial));
    }

    #[test]
    fn flaky_depends_on_the_profile() {
        let runs = || vec![run(Kind::Pass, "ok"), run(Kind::NonStrict, "reset")];
        assert_eq!(aggregate(runs(), Profile::Strict).verdict.kind, Kind::Flaky);
        // Both runs pass the tutorial profile: the worser one stands.
        let r = aggregate(runs(), Profile::Tutorial);
        assert_eq!(r.verdict.kind, Kind::NonStrict);
        assert_eq!(r.repeats.unwrap().passed, 2);
    }

    #[test]
    fn a_run_that_was_not_judged_stands_for_the_case() {
        let mut error = run(Kind::Fail, "the command cannot run");
        error.status = Status::HarnessError;
        let r = aggregate(vec![run(Kind::Pass, "ok"), error], Profile::Strict);
        assert_eq!(r.status, Status::HarnessError);
        assert_eq!(r.repeats, None);
    }

    #[test]
    fn the_simulator_repeats_agree() {
        let catalog = crate::catalog::Catalog::builtin().unwrap();
        let cases = catalog.select(&["client.".to_string()]);
        let imp = (crate::mutants::by_name("client-reads-once").unwrap().build)();
        let opts = crate::engine::EngineOptions {
            repeat: 3,
            ..Default::default()
        };
        let results = crate::engine::run_all(&cases, &imp, &opts, &|_| {});
        for r in &results {
            assert_ne!(r.verdict.kind, Kind::Flaky, "{}", r.case.id);
            if r.outcome.is_some() {
                let rep = r.repeats.expect("repeats");
                assert_eq!(rep.runs, 3, "{}", r.case.id);
                assert!(rep.passed == 0 || rep.passed == 3, "{}", r.case.id);
            }
        }
        assert!(results.iter().any(|r| r.verdict.kind == Kind::Fail));
    }
}

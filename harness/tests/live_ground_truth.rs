//! Ground truth for the live backend (DESIGN.md, "Ground truth for every
//! verdict path"): the reference implementations, run as real programs from
//! this crate's own binary (`poetry-harness serve|get`), pass every case the
//! live backend can run, and every case it cannot run says why.
//!
//! Strict profile, the default time scale, as many jobs as cores: the
//! settings a teacher gets by default. A failure lists every failing case
//! with its verdict, reason and transcript.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use poetry_harness::backend::live::reference_programs::ReferencePrograms;
use poetry_harness::catalog::Catalog;
use poetry_harness::engine::{run_all_live, CaseResult, EngineOptions};
use poetry_harness::verdict::{Kind, Profile};

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// Every case of the catalog against the reference programs.
fn run_reference_programs() -> Vec<CaseResult> {
    let catalog = Catalog::builtin().expect("the built-in catalog loads");
    let cases: Vec<_> = catalog.cases.iter().collect();
    let target = ReferencePrograms::new(BIN)
        .expect("the test binary's path can be a command")
        .reference();
    let opts = EngineOptions {
        profile: Profile::Strict,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..EngineOptions::default()
    };
    run_all_live(&cases, &target, &opts, &|_| {})
}

/// Each failing case with its verdict, reason and transcript.
fn describe_failures(results: &[CaseResult]) -> String {
    let failing: Vec<String> = results
        .iter()
        .filter(|r| r.verdict.kind.fails(Profile::Strict))
        .map(CaseResult::explained)
        .collect();
    format!(
        "{} of {} cases fail the reference programs live:\n{}",
        failing.len(),
        results.len(),
        failing.join("\n")
    )
}

/// The ground truth itself: most of the catalog runs, every case that
/// cannot run says why, and no case fails.
fn assert_ground_truth(results: &[CaseResult], context: &str) {
    let ran = results
        .iter()
        .filter(|r| r.verdict.kind != Kind::Unsupported)
        .count();
    // Most of the catalog runs live: a template that starts nothing would
    // make every case UNSUPPORTED or crash, never a quiet pass.
    assert!(
        ran * 2 > results.len(),
        "{context}: only {ran} of {} cases ran live",
        results.len()
    );
    let silent: Vec<&str> = results
        .iter()
        .filter(|r| r.verdict.kind == Kind::Unsupported && r.verdict.reason.trim().is_empty())
        .map(|r| r.case.id.as_str())
        .collect();
    assert!(
        silent.is_empty(),
        "{context}: UNSUPPORTED live without a reason: {}",
        silent.join(", ")
    );
    assert!(
        results
            .iter()
            .all(|r| !r.verdict.kind.fails(Profile::Strict)),
        "{context}: {}",
        describe_failures(results)
    );
}

#[test]
fn reference_programs_pass_every_case_the_live_backend_can_run() {
    assert_ground_truth(&run_reference_programs(), "one run");
}

/// Busy loops on their own threads, stopped (and joined) on drop, even
/// when the test fails.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn busy_loops(n: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Load { stop, threads }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Issue 8: verdicts must not flip on a loaded machine. Three runs in a
/// row while two busy loops compete for the cores; each must hold the
/// ground truth. Slow (three whole catalogs), so `.ci/run` runs it apart.
#[test]
#[ignore = "three live catalogs under load: run by .ci/run with --ignored"]
fn reference_programs_hold_the_ground_truth_three_times_on_a_loaded_machine() {
    let _load = Load::busy_loops(2);
    for run in 1..=3 {
        let context = format!("run {run} of 3 under load");
        assert_ground_truth(&run_reference_programs(), &context);
    }
}

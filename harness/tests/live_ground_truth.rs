//! Ground truth for the live backend (DESIGN.md, "Ground truth for every
//! verdict path"): the reference implementations, run as real programs from
//! this crate's own binary (`poetry-harness serve|get`), pass every case the
//! live backend can run, and every case it cannot run says why.
//!
//! Strict profile, the default time scale, as many jobs as cores: the
//! settings a teacher gets by default. A failure lists every failing case
//! with its verdict, reason and transcript.

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
        .map(|r| {
            let transcript = r
                .outcome
                .as_ref()
                .map(|o| o.transcript.render())
                .unwrap_or_default();
            format!(
                "{} {}: {}\n{transcript}",
                r.case.id, r.verdict.kind, r.verdict.reason
            )
        })
        .collect();
    format!(
        "{} of {} cases fail the reference programs live:\n{}",
        failing.len(),
        results.len(),
        failing.join("\n")
    )
}

#[test]
fn reference_programs_pass_every_case_the_live_backend_can_run() {
    let results = run_reference_programs();
    let ran = results
        .iter()
        .filter(|r| r.verdict.kind != Kind::Unsupported)
        .count();
    // Most of the catalog runs live: a template that starts nothing would
    // make every case UNSUPPORTED or crash, never a quiet pass.
    assert!(
        ran * 2 > results.len(),
        "only {ran} of {} cases ran live",
        results.len()
    );
    assert!(
        results
            .iter()
            .all(|r| !r.verdict.kind.fails(Profile::Strict)),
        "{}",
        describe_failures(&results)
    );
    // Every case that cannot run live says why.
    for r in results
        .iter()
        .filter(|r| r.verdict.kind == Kind::Unsupported)
    {
        assert!(
            !r.verdict.reason.trim().is_empty(),
            "{} is UNSUPPORTED live without a reason",
            r.case.id
        );
    }
}

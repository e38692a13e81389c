//! The mutant zoo, live (DESIGN.md, "Ground truth for every verdict path"):
//! every mutant, run as a program (`poetry-harness serve|get --mutant NAME`),
//! against the cases it lists. The live backend must kill at least 95% of
//! them, and a survivor is acceptable only when every case it lists is one
//! the live backend cannot run.
//!
//! This is the `cargo test` form of `poetry-harness mutants --live`, so
//! `.ci/run` runs it with the other tests.

use poetry_harness::backend::live::reference_programs::{
    assess_mutants, live_score_percent, LiveAssessment, MutantCases, ReferencePrograms,
    MIN_LIVE_SCORE_PERCENT,
};
use poetry_harness::catalog::Catalog;

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// One line per unexplained survivor, then the verdict of each case it lists.
fn describe_survivors(assessments: &[LiveAssessment]) -> String {
    let mut lines = Vec::new();
    for a in assessments.iter().filter(|a| !a.acceptable()) {
        lines.push(format!(
            "{} ({}) survived live: {}",
            a.assessment.mutant.name, a.assessment.mutant.role, a.assessment.mutant.bug
        ));
        let listed = a
            .results
            .iter()
            .filter(|r| a.assessment.mutant.killed_by.contains(&r.case.id.as_str()));
        for r in listed {
            lines.push(format!(
                "    {} {}: {}",
                r.case.id, r.verdict.kind, r.verdict.reason
            ));
        }
    }
    lines.join("\n")
}

#[test]
fn the_live_backend_kills_the_zoo_run_as_programs() {
    let catalog = Catalog::builtin().expect("the built-in catalog loads");
    let cases: Vec<_> = catalog.cases.iter().collect();
    let programs = ReferencePrograms::new(BIN).expect("the test binary's path can be a command");
    let zoo = poetry_harness::mutants::all();
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let assessments = assess_mutants(&programs, &zoo, &cases, MutantCases::Listed, jobs);
    assert_eq!(assessments.len(), zoo.len(), "every mutant was assessed");
    // A kill must come from the mutant's bug, never from a program that
    // crashed in the plumbing that runs it.
    for a in &assessments {
        for r in &a.results {
            let transcript = r.transcript();
            assert!(
                !transcript.contains("panicked at"),
                "{} panicked in {}:\n{transcript}",
                a.assessment.mutant.name,
                r.case.id
            );
        }
    }
    let score = live_score_percent(&assessments);
    let unexplained = describe_survivors(&assessments);
    assert!(
        score >= MIN_LIVE_SCORE_PERCENT && unexplained.is_empty(),
        "live mutation score {score:.0}% (at least {MIN_LIVE_SCORE_PERCENT:.0}% required); \
         unexplained survivors:\n{unexplained}"
    );
    // An explained survivor names the case it needs and why it cannot run live.
    for a in assessments.iter().filter(|a| !a.killed()) {
        let why = a.explanation().unwrap_or_default();
        assert!(
            a.assessment
                .mutant
                .killed_by
                .iter()
                .all(|id| why.contains(id)),
            "{}: explanation {why:?} does not name every case it lists",
            a.assessment.mutant.name
        );
    }
}

//! Failure output that teaches (issue 12, item 1): what the terminal report
//! shows for every mutant of the zoo (`fixtures/mutants/`) on the first
//! case it lists, snapshotted and reviewed. Each snapshot must read as a
//! lesson: the spec clause the case checks, expected against received in
//! plain words (with a byte diff where bytes are compared), the hint its
//! symptom calls for, the command that reproduces it, and a transcript
//! folded to what matters. And no Rust debug text reaches a reader.
//!
//! Simulator only: every snapshot is the same on every machine.

use poetry_harness::backend::sim::SimEngine;
use poetry_harness::catalog::Catalog;
use poetry_harness::engine::{run_case, CaseResult, EngineOptions};
use poetry_harness::mutants;
use poetry_harness::report;
use poetry_harness::verdict::Profile;

fn strict() -> EngineOptions {
    EngineOptions {
        profile: Profile::Strict,
        jobs: 1,
        ..EngineOptions::default()
    }
}

/// The report of `mutant` on the first case it lists that the default
/// engine runs; a mutant that lists only cases with packet faults or a
/// listen backlog, on the first of them, on simnet.
fn first_kill(catalog: &Catalog, mutant: &mutants::Mutant) -> (CaseResult, String) {
    let case = |id: &str| {
        catalog
            .get(id)
            .unwrap_or_else(|| panic!("{}: no case {id}", mutant.name))
    };
    let mut opts = strict();
    let on_turmoil = mutant
        .killed_by
        .iter()
        .map(|id| case(id))
        .find(|c| c.net.needs_simnet().is_none());
    let case = on_turmoil.unwrap_or_else(|| {
        opts.run = opts.run.on_engine(SimEngine::Simnet);
        case(mutant.killed_by[0])
    });
    let r = run_case(case, &(mutant.build)(), &opts);
    let table = report::table(
        std::slice::from_ref(&r),
        mutant.name,
        Profile::Strict,
        false,
        false,
    );
    (r, table)
}

/// What a reader must never see: Rust's debug formatting of a struct,
/// an enum or an option.
fn debug_text(text: &str) -> Option<&'static str> {
    [
        "Some(", "None,", "Dur(", "Fixture(", " { name:", "Expect {", "Ok(", "Err(",
    ]
    .into_iter()
    .find(|p| text.contains(p))
}

#[test]
fn every_mutant_fails_with_output_that_teaches() {
    let catalog = Catalog::builtin().expect("the shipped catalog loads");
    for mutant in mutants::all() {
        let (r, table) = first_kill(&catalog, &mutant);
        assert!(
            r.verdict.kind.fails(Profile::Strict),
            "{} is not killed by {}",
            mutant.name,
            r.case.id
        );
        assert!(
            table.contains("    spec: "),
            "{}: no clause quoted\n{table}",
            mutant.name
        );
        // simnet runs print no replay command (`replay` has no --engine).
        assert!(
            table.contains("    reproduce: poetry-harness replay ")
                || r.case.net.needs_simnet().is_some(),
            "{}: no command to reproduce\n{table}",
            mutant.name
        );
        if let Some(p) = debug_text(&table) {
            panic!("{}: debug text '{p}' in\n{table}", mutant.name);
        }
        let folded = table.lines().count();
        assert!(
            folded <= 150,
            "{}: {folded} lines of report\n{table}",
            mutant.name
        );
        insta::assert_snapshot!(mutant.name, table);
    }
}

#[test]
fn a_failing_fifty_connection_case_is_folded_around_the_failure() {
    let catalog = Catalog::builtin().expect("the shipped catalog loads");
    let mutant = mutants::by_name("server-one-at-a-time").expect("the mutant exists");
    let case = catalog
        .get("server.fifty-connections-at-once")
        .expect("the case exists");
    let r = run_case(case, &(mutant.build)(), &strict());
    let whole = r.transcript().lines().count();
    assert!(whole > 100, "only {whole} lines: nothing to fold");
    let table = report::table(
        std::slice::from_ref(&r),
        mutant.name,
        Profile::Strict,
        false,
        false,
    );
    let transcript: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("    transcript ("))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(
        transcript.len() < 50,
        "{} transcript lines shown:\n{table}",
        transcript.len()
    );
    assert!(
        transcript.iter().any(|l| l.contains("lines folded")),
        "{table}"
    );
}

#[test]
fn explain_describes_every_case_in_words_without_debug_text() {
    let catalog = Catalog::builtin().expect("the shipped catalog loads");
    for case in &catalog.cases {
        let text = poetry_harness::case::describe::case(case);
        if let Some(p) = debug_text(&text) {
            panic!("{}: debug text '{p}' in\n{text}", case.id);
        }
        assert!(text.contains("expects (strict profile):"), "{text}");
    }
    let fast = catalog.get("client.fast-poem").expect("the case exists");
    insta::assert_snapshot!(
        "explain_client.fast-poem",
        poetry_harness::case::describe::case(fast)
    );
}

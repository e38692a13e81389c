//! Shrinking (issue 11, item 5): a failure that `--explore` finds against a
//! mutant shrinks to a case that
//! (a) loads through the catalog loader (`--suites FILE`),
//! (b) still fails the mutant with the same verdict kind,
//! (c) passes the reference,
//! (d) is no larger than the original on every knob and strictly smaller
//!     on at least one;
//! and the replay command written on top of the file reproduces the
//! failure byte for byte. Shrinking is deterministic. The same on both
//! engines: simnet, the default, and `--engine turmoil`, where the shrunk
//! case's replay command carries `--engine turmoil`.

use poetry_harness::backend::sim::{self, RunOptions, SimEngine};
use poetry_harness::catalog::Catalog;
use poetry_harness::engine::{self, EngineOptions};
use poetry_harness::mutants;
use poetry_harness::replay::{self, Replay};
use poetry_harness::roles::Implementation;
use poetry_harness::shrink::{shrink, shrunk_id, Budget, ShrinkError, Size};
use poetry_harness::verdict::Profile;
use rstest::rstest;

fn strict(run: RunOptions) -> EngineOptions {
    EngineOptions {
        profile: Profile::Strict,
        run,
        jobs: 1,
        ..EngineOptions::default()
    }
}

/// Explores `case_id` against `mutant` (10 seeds, as `run --explore 10`),
/// shrinks the first failing seed, writes the file to a temporary folder
/// and checks (a) to (d) and the replay.
fn explore_shrink_and_check(case_id: &str, mutant: &str) -> String {
    explore_shrink_and_check_on(SimEngine::Turmoil, case_id, mutant)
}

/// [`explore_shrink_and_check`] on `engine`.
fn explore_shrink_and_check_on(engine: SimEngine, case_id: &str, mutant: &str) -> String {
    let catalog = Catalog::builtin().expect("the shipped catalog loads");
    let case = catalog.get(case_id).expect("case exists");
    let imp = (mutants::by_name(mutant).expect("mutant exists").build)();
    let on_engine = strict(RunOptions::catalog().on_engine(engine));
    let found = engine::explore(case, &imp, &on_engine, 0, 10);
    let (run, kind) = *found
        .first()
        .unwrap_or_else(|| panic!("--explore 10 finds no failure of {mutant} in {case_id}"));
    assert_eq!(run.engine(), engine, "{run}");
    let shrunk = shrink(case, &imp, run, Profile::Strict, Budget::default()).expect("shrinks");
    assert_eq!(shrunk.kind, kind);

    // (a) The file loads through the catalog loader, alone.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let id = shrunk_id(case_id, run);
    let path = dir.path().join(format!("{id}.toml"));
    std::fs::write(&path, &shrunk.toml).expect("write the shrunk case");
    let loaded = Catalog::load_path(&path)
        .unwrap_or_else(|e| panic!("the shrunk case does not load: {e}\n{}", shrunk.toml));
    assert_eq!(loaded.cases.len(), 1);
    let small = &loaded.cases[0];
    assert_eq!(small.id, id);
    assert_eq!(small.source.as_deref(), Some(path.as_path()));

    // (b) It still fails the mutant, the same way.
    let r = engine::run_case(small, &imp, &strict(run));
    assert_eq!(r.verdict.kind, kind, "{}\n{}", shrunk.toml, r.explained());
    // (c) The reference passes it.
    let good = engine::run_case(small, &Implementation::reference(), &strict(run));
    assert!(
        !good.verdict.kind.fails(Profile::Strict),
        "the reference fails the shrunk case:\n{}\n{}",
        shrunk.toml,
        good.explained()
    );
    // (d) No knob larger, one smaller.
    let (before, after) = (Size::of(case), Size::of(small));
    assert_eq!(shrunk.sizes, (before, after));
    assert!(
        after.strictly_smaller_than(&before),
        "not smaller: {after} against {before}"
    );

    // The replay command on top of the file reproduces the failure.
    let command = Replay::of(small, &imp, run)
        .expect("a mutant is replayable")
        .to_string();
    assert_eq!(
        command.contains(" --engine turmoil "),
        engine == SimEngine::Turmoil,
        "{command}"
    );
    assert!(
        shrunk.cuts.iter().all(|c| shrunk.toml.contains(c.as_str())),
        "the file lists its cuts"
    );
    let words = replay::split_words(&command).unwrap();
    let again = poetry_harness::cli::parse_replay(&words)
        .unwrap_or_else(|e| panic!("'{command}' does not parse: {e:#}"))
        .run()
        .unwrap_or_else(|e| panic!("'{command}' does not run: {e}"));
    assert_eq!(again.verdict.kind, kind, "{command}");
    // The simulator's own transcript; on simnet a failing one then ends
    // with the socket dump.
    let simulated = sim::run(small, &imp, run).transcript.render();
    match engine {
        SimEngine::Turmoil => assert_eq!(again.transcript(), simulated, "{command}"),
        SimEngine::Simnet => assert!(again.transcript().starts_with(&simulated), "{command}"),
    }
    assert_eq!(again.transcript(), r.transcript(), "{command}");
    shrunk.toml
}

#[test]
fn a_failure_only_explore_finds_shrinks_to_a_smaller_case_that_still_fails() {
    // client.jittered-pace passes the mutant as the catalog writes it; a
    // perturbed seed splits a character, and the poem shrinks to the few
    // bytes around that split.
    let toml = explore_shrink_and_check("client.jittered-pace", "client-decodes-per-chunk");
    assert!(toml.contains("servers[1].poem"), "{toml}");
}

#[rstest]
#[case::client_serial("client.three-slow-at-once", "client-serial")]
#[case::client_stops_at_first_failure(
    "client.one-refused-among-three",
    "client-stops-at-first-failure"
)]
#[case::proxy_no_cancel("proxy.client-leaves-fetch-cancelled", "proxy-no-cancel")]
#[case::xclient_no_fallback("xclient.transform-resets", "xclient-no-fallback")]
#[case::server_one_at_a_time("server.slow-five-at-once", "server-one-at-a-time")]
fn explored_failures_of_other_roles_shrink(#[case] case_id: &str, #[case] mutant: &str) {
    explore_shrink_and_check(case_id, mutant);
}

#[rstest]
#[case::client_decodes_per_chunk("client.jittered-pace", "client-decodes-per-chunk")]
#[case::client_serial("client.three-slow-at-once", "client-serial")]
#[case::client_stops_at_first_failure(
    "client.one-refused-among-three",
    "client-stops-at-first-failure"
)]
#[case::proxy_no_cancel("proxy.client-leaves-fetch-cancelled", "proxy-no-cancel")]
#[case::xclient_no_fallback("xclient.transform-resets", "xclient-no-fallback")]
#[case::server_one_at_a_time("server.slow-five-at-once", "server-one-at-a-time")]
fn explored_failures_shrink_on_simnet(#[case] case_id: &str, #[case] mutant: &str) {
    explore_shrink_and_check_on(SimEngine::Simnet, case_id, mutant);
}

#[test]
fn shrinking_on_simnet_twice_writes_the_same_file() {
    let a = explore_shrink_and_check_on(
        SimEngine::Simnet,
        "client.jittered-pace",
        "client-decodes-per-chunk",
    );
    let b = explore_shrink_and_check_on(
        SimEngine::Simnet,
        "client.jittered-pace",
        "client-decodes-per-chunk",
    );
    assert_eq!(a, b);
    assert!(a.contains("(seed 2, perturbed; "), "{a}");
}

#[test]
fn shrinking_twice_writes_the_same_file() {
    let a = explore_shrink_and_check("client.three-slow-at-once", "client-serial");
    let b = explore_shrink_and_check("client.three-slow-at-once", "client-serial");
    assert_eq!(a, b);
}

#[test]
fn a_case_that_passes_is_not_shrunk_and_says_so() {
    let catalog = Catalog::builtin().unwrap();
    let case = catalog.get("client.jittered-pace").unwrap();
    let err = shrink(
        case,
        &Implementation::reference(),
        RunOptions::perturbed(2),
        Profile::Strict,
        Budget::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ShrinkError::DoesNotFail { .. }));
    assert_eq!(
        err.to_string(),
        "case 'client.jittered-pace' does not fail with seed 2, perturbed (its verdict: PASS); nothing to shrink"
    );
}

#[test]
fn a_spent_budget_still_gives_a_case_that_fails() {
    let catalog = Catalog::builtin().unwrap();
    let case = catalog.get("client.three-slow-at-once").unwrap();
    let imp = (mutants::by_name("client-serial").unwrap().build)();
    let shrunk = shrink(
        case,
        &imp,
        RunOptions::catalog(),
        Profile::Strict,
        Budget(6),
    )
    .unwrap();
    assert!(shrunk.runs <= 6, "{} runs", shrunk.runs);
    assert!(!shrunk.fixpoint);
    assert!(shrunk.toml.contains("the budget of runs is spent"));
    let r = engine::run_case(&shrunk.case, &imp, &strict(RunOptions::catalog()));
    assert_eq!(r.verdict.kind, shrunk.kind);
}

/// Network faults shrink too: a loss case given a bandwidth limit it does not
/// need loses it, and keeps the loss that kills the mutant (a client that
/// gives up on a pause shorter than TCP's retransmission timeout).
#[test]
fn network_faults_the_failure_does_not_need_are_cut() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("lossy.toml");
    std::fs::write(
        &path,
        r#"
[[case]]
id = "client.lossy-narrow"
title = "a poem over a lossy, narrow link"
clauses = ["CLIENT-3", "CLIENT-10"]
role = "client"
[case.net.faults]
loss = 0.1
bandwidth = 10000000
[[case.servers]]
poem = { size = 20000 }
[case.expect]
results = ["poem"]
"#,
    )
    .expect("write the case");
    let catalog = Catalog::load_path(&path).expect("loads");
    let case = catalog.get("client.lossy-narrow").expect("case exists");
    let imp = (mutants::by_name("client-short-read-timeout")
        .expect("mutant exists")
        .build)();
    let run = RunOptions::catalog().on_engine(SimEngine::Simnet);
    let shrunk = shrink(case, &imp, run, Profile::Strict, Budget::default()).expect("shrinks");
    assert!(
        shrunk
            .cuts
            .iter()
            .any(|c| c == "net.faults.bandwidth removed"),
        "{:?}",
        shrunk.cuts
    );
    let kept = shrunk.case.net.faults.as_ref().expect("the loss is kept");
    assert_eq!(
        (kept.loss, kept.bandwidth),
        (Some(0.1), None),
        "{}",
        shrunk.toml
    );
}

//! Replay that reproduces (issue 11, item 6): the `poetry-harness replay`
//! command a report prints, parsed as the binary parses it and run through
//! the `replay` subcommand's own path ([`Replay::run`]), gives the
//! transcript of the run that printed it, byte for byte: for every case
//! of the catalog against the reference (as the catalog writes it, and
//! perturbed), for every failure of every mutant of the zoo, and for a
//! failure only `--explore` finds; on the default engine (simnet, whose
//! commands carry `--network PROFILE` when the run had one) and on
//! `--engine turmoil`, whose commands carry `--engine turmoil`.
//!
//! The regression this pins: the transcript header printed
//! `replay ... --seed 1` for a run without a seed, and `--seed` switches
//! perturbation on: `client.random-chunks` replayed with 105 sends
//! instead of 58.

use poetry_harness::backend::sim::{self, RunOptions, SimEngine};
use poetry_harness::case::Case;
use poetry_harness::catalog::Catalog;
use poetry_harness::engine::{self, CaseResult, EngineOptions};
use poetry_harness::mutants;
use poetry_harness::replay::{self, Replay};
use poetry_harness::report;
use poetry_harness::roles::Implementation;
use poetry_harness::verdict::Profile;

fn catalog() -> Catalog {
    Catalog::builtin().expect("the shipped catalog loads")
}

fn opts(run: RunOptions) -> EngineOptions {
    EngineOptions {
        profile: Profile::Strict,
        run,
        jobs: jobs(),
        ..EngineOptions::default()
    }
}

/// The replay command a report prints above a transcript, as printed.
fn printed_replay(result: &CaseResult) -> String {
    let table = report::table_scored(
        std::slice::from_ref(result),
        "any",
        Profile::Strict,
        true,
        false,
        None,
    );
    table
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("reproduce: "))
        .unwrap_or_else(|| panic!("{}: no reproduce line in\n{table}", result.case.id))
        .to_string()
}

/// Runs the command `result`'s report printed, as `poetry-harness replay`
/// does, and says how its transcript differs, if it does.
fn replay_differs(result: &CaseResult) -> Option<String> {
    let command = printed_replay(result);
    let words = replay::split_words(&command).expect("the printed command splits");
    let replay = poetry_harness::cli::parse_replay(&words)
        .unwrap_or_else(|e| panic!("'{command}' does not parse: {e:#}"));
    let again = replay
        .run()
        .unwrap_or_else(|e| panic!("'{command}' does not run: {e}"));
    let (want, got) = (result.transcript(), again.transcript());
    (want != got || again.verdict.kind != result.verdict.kind).then(|| {
        format!(
            "{}: '{command}' gives another run ({} then {}):\n--- the run\n{want}--- the replay\n{got}",
            result.case.id, result.verdict.kind, again.verdict.kind
        )
    })
}

fn jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Every case of `cases` against `imp` with `run`; `keep` chooses the
/// results whose replay is checked. Returns how many were checked and how
/// those that differ differ.
fn check_all(
    cases: &[&Case],
    imp: &Implementation,
    run: RunOptions,
    keep: impl Fn(&CaseResult) -> bool,
) -> (usize, Vec<String>) {
    let results = engine::run_all(cases, imp, &opts(run), &|_| {});
    let checked: Vec<&CaseResult> = results
        .iter()
        .filter(|r| r.outcome.is_some() && keep(r))
        .collect();
    let per_thread = checked.len().div_ceil(jobs()).max(1);
    let problems = std::thread::scope(|scope| {
        let handles: Vec<_> = checked
            .chunks(per_thread)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .filter_map(|r| replay_differs(r))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a replay thread panicked"))
            .collect()
    });
    (checked.len(), problems)
}

#[test]
fn the_catalog_run_is_replayed_without_a_seed_and_random_chunks_keeps_its_58_sends() {
    let catalog = catalog();
    let case = catalog.get("client.random-chunks").expect("case exists");
    let r = engine::run_case(
        case,
        &Implementation::reference(),
        &opts(RunOptions::catalog()),
    );
    assert_eq!(
        printed_replay(&r),
        "poetry-harness replay client.random-chunks"
    );
    assert!(r.transcript().contains("send x58 "), "{}", r.transcript());
    assert_eq!(replay_differs(&r), None);
}

#[test]
fn every_case_against_the_reference_replays_byte_for_byte_on_turmoil() {
    let catalog = catalog();
    // On turmoil a case with packet faults or a listen backlog is
    // UNSUPPORTED and has no run to replay; the simnet test below replays
    // those too.
    let cases: Vec<_> = catalog
        .select(&[])
        .into_iter()
        .filter(|c| c.net.needs_simnet().is_none())
        .collect();
    assert!(
        cases.len() < catalog.cases.len(),
        "the catalog has net cases"
    );
    let imp = Implementation::reference();
    for run in [RunOptions::catalog(), RunOptions::perturbed(42)].map(turmoil) {
        let (checked, problems) = check_all(&cases, &imp, run, |_| true);
        assert_eq!(checked, cases.len(), "the reference plays every role");
        assert!(
            problems.is_empty(),
            "{} of {checked} replays differ ({run}):\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
}

#[test]
fn every_failure_of_every_mutant_replays_byte_for_byte_on_turmoil() {
    // The cases each mutant lists as its killers (tests/mutants.rs holds
    // that each kills it), as the catalog writes them and perturbed; the
    // failures among them are replayed.
    let catalog = catalog();
    let mut failures = 0;
    let mut problems = Vec::new();
    for mutant in mutants::all() {
        let cases: Vec<&Case> = catalog
            .cases
            .iter()
            .filter(|c| mutant.killed_by.contains(&c.id.as_str()))
            .collect();
        let imp = (mutant.build)();
        for run in [RunOptions::catalog(), RunOptions::perturbed(42)].map(turmoil) {
            let (checked, mut p) =
                check_all(&cases, &imp, run, |r| r.verdict.kind.fails(Profile::Strict));
            failures += checked;
            problems.append(&mut p);
        }
    }
    assert!(failures > 0, "no mutant failed a case");
    assert!(
        problems.is_empty(),
        "{} of {failures} replays differ:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn a_failure_only_explore_finds_replays_byte_for_byte_on_turmoil() {
    // The mutant decodes every chunk on its own: the catalog's run of
    // client.jittered-pace (chunks of 40 bytes, all ASCII at the
    // boundaries) passes, and a perturbed seed splits a character.
    let catalog = catalog();
    let case = catalog.get("client.jittered-pace").expect("case exists");
    let imp = (mutants::by_name("client-decodes-per-chunk")
        .expect("mutant exists")
        .build)();
    let strict = opts(turmoil(RunOptions::catalog()));
    assert!(
        !engine::run_case(case, &imp, &strict)
            .verdict
            .kind
            .fails(Profile::Strict),
        "the catalog's run already catches the mutant: pick a case only --explore catches"
    );
    let found = engine::explore(case, &imp, &strict, 0, 10);
    assert!(!found.is_empty(), "--explore 10 found nothing");
    for (run, kind) in found {
        let command = Replay::of(case, &imp, run)
            .expect("a mutant is replayable")
            .to_string();
        assert_eq!(
            command,
            format!(
                "poetry-harness replay client.jittered-pace --seed {} --engine turmoil --mutant client-decodes-per-chunk",
                run.seed()
            )
        );
        let explored = sim::run(case, &imp, run).transcript.render();
        let words = replay::split_words(&command).unwrap();
        let again = poetry_harness::cli::parse_replay(&words)
            .unwrap()
            .run()
            .unwrap();
        assert_eq!(again.verdict.kind, kind, "{command}");
        assert_eq!(again.transcript(), explored, "{command}");
    }
}

fn simnet(run: RunOptions) -> RunOptions {
    run.on_engine(SimEngine::Simnet)
}

fn turmoil(run: RunOptions) -> RunOptions {
    run.on_engine(SimEngine::Turmoil)
}

#[test]
fn every_case_against_the_reference_replays_byte_for_byte_on_simnet() {
    let catalog = catalog();
    let cases = catalog.select(&[]);
    let imp = Implementation::reference();
    for run in [RunOptions::catalog(), RunOptions::perturbed(42)].map(simnet) {
        let (checked, problems) = check_all(&cases, &imp, run, |_| true);
        assert_eq!(checked, cases.len(), "the reference plays every role");
        assert!(
            problems.is_empty(),
            "{} of {checked} replays differ ({run}):\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
}

#[test]
fn every_failure_of_every_mutant_replays_byte_for_byte_on_simnet() {
    // As on turmoil: each mutant's killers, as the catalog writes them
    // and perturbed. A failing transcript on simnet ends with the socket
    // dump: the replay's ends with the same.
    let catalog = catalog();
    let mut failures = 0;
    let dumps = std::cell::Cell::new(0);
    let mut problems = Vec::new();
    for mutant in mutants::all() {
        let cases: Vec<&Case> = catalog
            .cases
            .iter()
            .filter(|c| mutant.killed_by.contains(&c.id.as_str()))
            .collect();
        let imp = (mutant.build)();
        for run in [RunOptions::catalog(), RunOptions::perturbed(42)].map(simnet) {
            let (checked, mut p) = check_all(&cases, &imp, run, |r| {
                dumps.set(dumps.get() + usize::from(r.transcript().contains("sockets at the end")));
                r.verdict.kind.fails(Profile::Strict)
            });
            failures += checked;
            problems.append(&mut p);
        }
    }
    assert!(failures > 50, "only {failures} mutant failures on simnet");
    assert!(dumps.get() > 0, "no failing transcript with a socket dump");
    assert!(
        problems.is_empty(),
        "{} of {failures} replays differ:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn a_run_under_a_network_profile_replays_byte_for_byte() {
    // `--network flaky` loses, duplicates and reorders packets, drawn
    // from the seed: the printed command names the profile, and the
    // replay draws the same faults.
    let catalog = catalog();
    let cases = catalog.select(&["client.".to_string(), "proxy.".to_string()]);
    let imp = Implementation::reference();
    for run in [RunOptions::catalog(), RunOptions::perturbed(5)] {
        let run = simnet(run).on_network("flaky").expect("a profile");
        let (checked, problems) = check_all(&cases, &imp, run, |_| true);
        assert_eq!(checked, cases.len());
        assert!(
            problems.is_empty(),
            "{} of {checked} replays differ ({run}):\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
    let case = catalog.get("client.random-chunks").expect("case exists");
    let run = simnet(RunOptions::perturbed(5))
        .on_network("flaky")
        .expect("a profile");
    let r = engine::run_case(case, &imp, &opts(run));
    assert_eq!(
        printed_replay(&r),
        "poetry-harness replay client.random-chunks --seed 5 --network flaky"
    );
}

#[test]
fn a_failure_only_explore_finds_on_simnet_replays_byte_for_byte() {
    // On simnet a perturbed write's pieces go out 1 ms apart (a byte
    // stream would deliver pieces written at one instant as one read):
    // exploring finds the split character there too, and the printed
    // command repeats it on simnet.
    let catalog = catalog();
    let case = catalog.get("client.jittered-pace").expect("case exists");
    let imp = (mutants::by_name("client-decodes-per-chunk")
        .expect("mutant exists")
        .build)();
    let on_simnet = opts(simnet(RunOptions::catalog()));
    let catalog_run = engine::run_case(case, &imp, &on_simnet);
    assert!(
        !catalog_run.verdict.kind.fails(Profile::Strict),
        "the catalog's run already catches the mutant on simnet:\n{}",
        catalog_run.explained()
    );
    let found = engine::explore(case, &imp, &on_simnet, 0, 10);
    assert!(!found.is_empty(), "--explore 10 found nothing on simnet");
    for (run, kind) in found {
        assert_eq!(run.engine(), SimEngine::Simnet, "{run}");
        let command = Replay::of(case, &imp, run)
            .expect("a mutant is replayable")
            .to_string();
        assert_eq!(
            command,
            format!(
                "poetry-harness replay client.jittered-pace --seed {} --mutant client-decodes-per-chunk",
                run.seed()
            )
        );
        // The run explore judged, as a report shows it (with its dump).
        let explored = engine::run_case(case, &imp, &opts(run));
        assert_eq!(explored.verdict.kind, kind, "{command}");
        assert!(
            explored
                .transcript()
                .starts_with(&sim::run(case, &imp, run).transcript.render()),
            "{command}"
        );
        let words = replay::split_words(&command).unwrap();
        let again = poetry_harness::cli::parse_replay(&words)
            .unwrap()
            .run()
            .unwrap();
        assert_eq!(again.verdict.kind, kind, "{command}");
        assert_eq!(again.transcript(), explored.transcript(), "{command}");
        assert_eq!(replay_differs(&explored), None);
    }
}

#[test]
fn a_network_profile_without_simnet_is_refused_by_replay() {
    let words: Vec<String> = [
        "poetry-harness",
        "replay",
        "client.fast-poem",
        "--engine",
        "turmoil",
        "--network",
        "flaky",
    ]
    .map(String::from)
    .to_vec();
    let err = poetry_harness::cli::parse_replay(&words).unwrap_err();
    assert!(
        format!("{err:#}").contains("--network needs --engine simnet"),
        "{err:#}"
    );
    let words: Vec<String> = [
        "poetry-harness",
        "replay",
        "client.fast-poem",
        "--engine",
        "simnet",
        "--network",
        "nosuch",
    ]
    .map(String::from)
    .to_vec();
    let err = poetry_harness::cli::parse_replay(&words).unwrap_err();
    assert!(format!("{err:#}").contains("flaky"), "{err:#}");
}

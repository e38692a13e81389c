//! The catalog against the reference implementations, in the simulator:
//! every case passes, every transcript matches its reviewed snapshot, and
//! the same seed gives the same transcript byte for byte. And the tutorial
//! profile follows from the spec: every `Tutorial profile [...]:` paragraph
//! of SPEC.md reaches a case it changes, and the mutants whose one bug is
//! a behaviour of the series' programs never FAIL under `tutorial`.

use poetry_harness::backend::sim::{self, RunOptions, SimEngine};
use poetry_harness::case::Feature;
use poetry_harness::case::Role;
use poetry_harness::catalog::Catalog;
use poetry_harness::engine::run_all;
use poetry_harness::engine::{run_case, EngineOptions};
use poetry_harness::mutants;
use poetry_harness::roles::Implementation;
use poetry_harness::spec::{self, Relaxation};
use poetry_harness::verdict::{self, Kind, Profile};
use rstest::rstest;

fn catalog() -> Catalog {
    Catalog::builtin().expect("the shipped catalog loads")
}

fn strict() -> EngineOptions {
    EngineOptions {
        profile: Profile::Strict,
        ..EngineOptions::default()
    }
}

#[rstest]
fn reference_passes_every_case_and_matches_its_snapshot(
    #[values(
        Role::Server,
        Role::Client,
        Role::TransformServer,
        Role::TransformClient,
        Role::Proxy
    )]
    role: Role,
) {
    let catalog = catalog();
    let imp = Implementation::reference();
    let cases: Vec<_> = catalog.cases.iter().filter(|c| c.role == role).collect();
    assert!(!cases.is_empty(), "no {role} cases in the catalog");
    let mut failures = Vec::new();
    for case in cases {
        // A case with packet faults or a listen backlog runs on simnet only
        // (UNSUPPORTED on turmoil): its snapshot is simnet's.
        let mut opts = strict();
        if case.net.needs_simnet().is_some() {
            opts.run = opts.run.on_engine(sim::SimEngine::Simnet);
        }
        let r = run_case(case, &imp, &opts);
        if r.verdict.kind != Kind::Pass && !(case.info && r.verdict.kind == Kind::Info) {
            failures.push(format!(
                "{}: {} {}",
                case.id, r.verdict.kind, r.verdict.reason
            ));
        }
        let outcome = r.outcome.expect("the reference plays every role");
        // simnet has no tick: its clock jumps from event to event.
        let tick = match outcome.tick.as_millis() {
            0 => String::new(),
            ms => format!(", tick {ms}ms"),
        };
        let snapshot = format!(
            "{}: {}\nclauses: {}\nverdict: {} ({})\nseed {}{tick}\n\n{}",
            case.id,
            case.title,
            case.clauses.join(", "),
            r.verdict.kind,
            r.verdict.reason,
            outcome.seed,
            outcome.transcript.render()
        );
        insta::assert_snapshot!(case.id.clone(), snapshot);
    }
    assert!(
        failures.is_empty(),
        "the reference failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn same_seed_gives_the_same_transcript_byte_for_byte() {
    let catalog = catalog();
    let imp = Implementation::reference();
    for case in &catalog.cases {
        for mut opts in [RunOptions::default(), RunOptions::perturbed(42)] {
            if case.net.needs_simnet().is_some() {
                opts = opts.on_engine(sim::SimEngine::Simnet);
            }
            let a = sim::run(case, &imp, opts).transcript.render();
            let b = sim::run(case, &imp, opts).transcript.render();
            assert_eq!(a, b, "{} is not deterministic with {opts:?}", case.id);
        }
    }
}

#[test]
fn ten_minute_slow_poem_takes_its_simulated_time_exactly() {
    let catalog = catalog();
    let case = catalog
        .get("client.slow-poem-ten-minutes")
        .expect("case exists");
    let out = sim::run(case, &Implementation::reference(), RunOptions::default());
    // The handshake takes three 100 ms hops (SYN, SYN-ACK, ACK), so the
    // server accepts and sends its first 10 bytes at 0.3 s; 860 pauses of
    // 0.7 s later (602 s) it sends the last ones and its FIN, which reach
    // the client one hop later.
    let done = out.subject_done.expect("the client finished");
    assert_eq!(
        done.as_millis(),
        300 + 860 * 700 + 100,
        "{}",
        out.transcript.render()
    );
    assert!(done.as_secs() > 600, "more than ten simulated minutes");
}

#[test]
fn every_tutorial_paragraph_reaches_a_case_it_changes() {
    let catalog = catalog();
    let mut problems = Vec::new();
    for clause in spec::shipped().values() {
        let Some(t) = &clause.tutorial else { continue };
        if t.relaxations.is_empty() {
            problems.push(format!(
                "{}: the tutorial paragraph grants nothing",
                clause.id
            ));
        }
        for &r in &t.relaxations {
            let reached: Vec<&str> = catalog
                .cases
                .iter()
                .filter(|c| {
                    c.clauses.contains(&clause.id)
                        || verdict::implied_clauses(c.role).contains(&clause.id.as_str())
                })
                .filter(|c| verdict::exercises(c, r))
                .map(|c| c.id.as_str())
                .collect();
            if reached.is_empty() {
                problems.push(format!(
                    "{} [{r}]: no case citing the clause is changed by it",
                    clause.id
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_case_needing_a_timeout_or_another_transform_is_unsupported_under_tutorial() {
    // Otherwise a program with neither, as the series' are, would get a
    // TIMEOUT or a FAIL that no tutorial paragraph stands behind.
    let catalog = catalog();
    let imp = Implementation::reference();
    for case in &catalog.cases {
        let needs = [
            (Feature::Timeouts, Relaxation::NoTimeouts),
            (Feature::ExtraTransforms, Relaxation::CummingsifyOnly),
        ];
        for (feature, relaxation) in needs {
            if !case.requires.contains(&feature) {
                continue;
            }
            let v = verdict::precheck(case, &imp, Profile::Tutorial);
            assert!(
                v.as_ref().is_some_and(|v| v.kind == Kind::Unsupported),
                "{} requires {feature:?} but cites no clause granting {relaxation}",
                case.id
            );
            assert!(
                verdict::precheck(case, &imp, Profile::Strict).is_none(),
                "{} is not run under strict",
                case.id
            );
        }
    }
}

#[test]
fn tutorial_tables_only_state_should_clauses() {
    // What a tutorial paragraph accepts is applied from the spec; a
    // `[case.tutorial]` table is left only for a SHOULD clause's violation.
    let catalog = catalog();
    let clauses = spec::shipped();
    for case in catalog.cases.iter().filter(|c| c.tutorial.is_some()) {
        assert!(
            case.clauses
                .iter()
                .any(|id| clauses[id].level.starts_with("SHOULD")),
            "{} has a [case.tutorial] table but cites no SHOULD clause",
            case.id
        );
    }
}

/// Mutants whose one bug is what a series' program does, and the
/// relaxation that accepts it.
const TUTORIAL_MUTANTS: &[(&str, Relaxation)] = &[
    ("client-reset-is-end", Relaxation::ResetIsEnd),
    ("client-serial", Relaxation::OneAtATime),
    ("client-no-timeout", Relaxation::NoTimeouts),
    (
        "server-closes-without-draining",
        Relaxation::CloseWithoutReading,
    ),
    ("xclient-no-transform-timeout", Relaxation::NoTimeouts),
    ("proxy-caches-truncated", Relaxation::ResetIsEnd),
    ("proxy-no-cancel", Relaxation::NeverCancels),
    ("proxy-fetch-per-request", Relaxation::FetchPerRequest),
    ("proxy-fin-on-failure", Relaxation::FinAfterFailedFetch),
];

/// Cases where such a mutant does more than the series' program, and so
/// rightly fails.
const BEYOND_THE_SERIES: &[(&str, &[&str], &str)] = &[
    (
        "proxy-fetch-per-request",
        &["proxy.one-leaves-other-still-served"],
        "it still cancels, and its per-request fetches share one count of \
         waiting clients: the leaver's departure cancels the stayer's fetch",
    ),
    (
        "proxy-fin-on-failure",
        &[
            "proxy.upstream-reset-mid-poem",
            "proxy.truncated-poem-not-cached",
            "proxy.failed-fetch-resets-every-waiter",
            "proxy.reset-fetch-then-whole-poem",
        ],
        "after an upstream reset it sends an empty poem and FIN; the \
         series' proxy sends the bytes it got (PROXY-5)",
    ),
];

/// On both engines: simnet's TCP must not fail what the series does
/// where turmoil accepts it (a reset after the poem, say, must leave the
/// poem readable, as on Linux).
#[rstest]
#[case::turmoil(SimEngine::Turmoil)]
#[case::simnet(SimEngine::Simnet)]
fn mutants_that_behave_as_the_series_never_fail_under_tutorial(#[case] engine: SimEngine) {
    let catalog = catalog();
    let all = mutants::all();
    let opts = EngineOptions {
        profile: Profile::Tutorial,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        run: RunOptions::catalog().on_engine(engine),
        ..EngineOptions::default()
    };
    let mut problems = Vec::new();
    for (name, relaxation) in TUTORIAL_MUTANTS {
        let m = all
            .iter()
            .find(|m| m.name == *name)
            .unwrap_or_else(|| panic!("no mutant {name}"));
        let cases: Vec<_> = catalog.cases.iter().filter(|c| c.role == m.role).collect();
        let results = run_all(&cases, &(m.build)(), &opts, &|_| {});
        for r in &results {
            let beyond = BEYOND_THE_SERIES
                .iter()
                .any(|(m, ids, _)| m == name && ids.contains(&r.case.id.as_str()));
            if r.verdict.kind.fails(Profile::Tutorial) && !beyond {
                problems.push(format!(
                    "{name} ({relaxation}): {} {}: {}",
                    r.case.id, r.verdict.kind, r.verdict.reason
                ));
            }
        }
        // Its killers are still killers under strict: NON-STRICT at worst.
        let strict_killed = m.killed_by.iter().all(|id| {
            results
                .iter()
                .find(|r| r.case.id == *id)
                .is_some_and(|r| r.verdict.kind != Kind::Pass)
        });
        assert!(strict_killed, "{name}: a case it lists passed");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn one_combination_of_relaxations_judges_the_whole_run() {
    // proxy-fin-on-failure answers a fetch reset mid-poem with an empty
    // poem and FIN: the empty poem is what strict accepts, the FIN what
    // reset-is-end accepts, and nothing accepts both together.
    let catalog = catalog();
    let case = catalog
        .get("proxy.upstream-reset-mid-poem")
        .expect("case exists");
    let m = mutants::all()
        .into_iter()
        .find(|m| m.name == "proxy-fin-on-failure")
        .expect("mutant exists");
    let opts = EngineOptions {
        profile: Profile::Tutorial,
        ..EngineOptions::default()
    };
    let r = run_case(case, &(m.build)(), &opts);
    assert_eq!(r.verdict.kind, Kind::Fail, "{}", r.verdict.reason);
    // The series' proxy, which sends the bytes it got, then FIN, is accepted.
    let m = mutants::all()
        .into_iter()
        .find(|m| m.name == "proxy-caches-truncated")
        .expect("mutant exists");
    let r = run_case(case, &(m.build)(), &opts);
    assert_eq!(r.verdict.kind, Kind::NonStrict, "{}", r.verdict.reason);
    assert!(
        r.verdict.reason.contains("reset-is-end"),
        "{}",
        r.verdict.reason
    );
}

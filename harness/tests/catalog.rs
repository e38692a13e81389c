//! The catalog against the reference implementations, in the simulator:
//! every case passes, every transcript matches its reviewed snapshot, and
//! the same seed gives the same transcript byte for byte.

use poetry_harness::backend::sim::{self, RunOptions};
use poetry_harness::case::Role;
use poetry_harness::catalog::Catalog;
use poetry_harness::engine::{run_case, EngineOptions};
use poetry_harness::roles::Implementation;
use poetry_harness::verdict::{Kind, Profile};
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
        let r = run_case(case, &imp, &strict());
        if r.verdict.kind != Kind::Pass && !(case.info && r.verdict.kind == Kind::Info) {
            failures.push(format!(
                "{}: {} {}",
                case.id, r.verdict.kind, r.verdict.reason
            ));
        }
        let outcome = r.outcome.expect("the reference plays every role");
        let snapshot = format!(
            "{}: {}\nclauses: {}\nverdict: {} ({})\nseed {}, tick {}ms\n\n{}",
            case.id,
            case.title,
            case.clauses.join(", "),
            r.verdict.kind,
            r.verdict.reason,
            outcome.seed,
            outcome.tick.as_millis(),
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
        for opts in [
            RunOptions::default(),
            RunOptions {
                seed: 42,
                perturb: true,
            },
        ] {
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
    // The SYN takes one 100 ms hop, so the server accepts and sends its
    // first 10 bytes at 0.1 s; 860 pauses of 0.7 s later (602 s) it sends
    // the last ones and its FIN, which reaches the client one hop later.
    let done = out.subject_done.expect("the client finished");
    assert_eq!(
        done.as_millis(),
        100 + 860 * 700 + 100,
        "{}",
        out.transcript.render()
    );
    assert!(done.as_secs() > 600, "more than ten simulated minutes");
}

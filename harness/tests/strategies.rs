//! The strategy fixtures (`fixtures/strategies/`, one manifest each), run
//! live on loopback: the blocking, threads and selectors poetry servers and
//! clients. Each passes every case but those its strategy cannot pass, and
//! the concurrency cases tell the strategies apart: the blocking server and
//! client, serving or downloading one at a time, fail them; the threads and
//! selectors ones pass them.
//!
//! The quick tests run a small selection; the whole catalog of each role is
//! an `#[ignore]`d test (`cargo test --test strategies -- --ignored`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use poetry_harness::backend::live::manifest::Manifest;
use poetry_harness::backend::live::{probe, LiveSubject};
use poetry_harness::case::Role;
use poetry_harness::catalog::Catalog;
use poetry_harness::engine::{run_all_live, CaseResult, EngineOptions, LiveTarget};
use poetry_harness::verdict::{Kind, Profile};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `fixtures/strategies/{strategy}.toml`'s program for `role`, its paths
/// made absolute (the manifest's are relative to the repository root).
fn target(strategy: &str, role: Role) -> LiveTarget {
    let path = repo().join(format!("fixtures/strategies/{strategy}.toml"));
    let manifest = Manifest::load(&path).expect("the manifest loads");
    assert_eq!(manifest.profile(), Profile::Strict, "{strategy}");
    let rc = manifest
        .role(role)
        .unwrap_or_else(|| panic!("{strategy}.toml has no {role}"));
    let fixtures = format!("{}/", repo().join("fixtures").display());
    let command = rc.command.replace("fixtures/", &fixtures);
    let subject = LiveSubject {
        exit_127_unsupported: probe(&command),
        contract: rc.contract,
        lacks: rc.lacks.clone(),
        ..LiveSubject::new(role, command)
    };
    assert!(
        subject.exit_127_unsupported,
        "{strategy} {role}: the program does not follow the exit-127 convention"
    );
    let mut target = LiveTarget {
        name: manifest.name,
        lacks: manifest.lacks,
        profile: manifest.profile,
        ..LiveTarget::default()
    };
    target.roles.insert(role, subject);
    target
}

/// Runs the cases of `role` (all, or those named) under strict.
fn run(strategy: &str, role: Role, only: &[&str]) -> BTreeMap<String, CaseResult> {
    let catalog = Catalog::builtin().expect("catalog loads");
    let cases: Vec<_> = catalog
        .cases
        .iter()
        .filter(|c| c.role == role && (only.is_empty() || only.contains(&c.id.as_str())))
        .collect();
    assert!(
        only.is_empty() || cases.len() == only.len(),
        "a selected case is missing from the catalog"
    );
    let opts = EngineOptions {
        profile: Profile::Strict,
        jobs: 2,
        ..EngineOptions::default()
    };
    run_all_live(&cases, &target(strategy, role), &opts, &|_| {})
        .into_iter()
        .map(|r| (r.case.id.clone(), r))
        .collect()
}

/// The cases the blocking programs fail by their nature: one client (or
/// one download) at a time. The catalog's judgement names it: NON-STRICT,
/// with the tutorial relaxation `one-at-a-time` (the series' part-2
/// programs do the same); no Feature declares it. Kept in step with the
/// table in `fixtures/strategies/README.md`.
const BLOCKING_INHERENT: &[&str] = &[
    "server.slow-five-at-once",
    "server.slow-staggered-in-parallel",
    "server.early-fin-does-not-disturb-others",
    "server.early-rst-does-not-disturb-others",
    "server.slow-reader-does-not-hold-up-others",
    "server.stalled-reader-does-not-block-others",
    "server.client-sends-garbage",
    "client.three-slow-at-once",
];

/// The quick selection: the basics, failures, and the concurrency cases
/// that tell the strategies apart.
const SERVER_CASES: &[&str] = &[
    "server.one-client-fast",
    "server.empty-poem-fast",
    "server.slow-pacing",
    "server.half-close",
    // concurrency: a stalled reader holds up a blocking server for good,
    // and five paced clients take five times as long.
    "server.stalled-reader-does-not-block-others",
    "server.slow-five-at-once",
];
const CLIENT_CASES: &[&str] = &[
    "client.fast-poem",
    "client.byte-by-byte",
    "client.order-of-arguments",
    "client.reset-mid-poem",
    "client.one-refused-among-three",
    "client.stall-forever",
    // concurrency: three slow poems, one after another, take the sum.
    "client.three-slow-at-once",
];

/// Asserts that exactly the `inherent` cases among `results` fail, each
/// for being one at a time, and that every other case passes.
fn assert_verdicts(strategy: &str, results: &BTreeMap<String, CaseResult>, inherent: &[&str]) {
    let mut wrong = Vec::new();
    for (id, r) in results {
        let ok = if inherent.contains(&id.as_str()) {
            r.verdict.kind.fails(Profile::Strict) && r.verdict.reason.contains("one-at-a-time")
        } else {
            matches!(r.verdict.kind, Kind::Pass | Kind::Unsupported)
        };
        if !ok {
            let expected = if inherent.contains(&id.as_str()) {
                "a one-at-a-time failure"
            } else {
                "PASS"
            };
            wrong.push(format!(
                "{strategy}: {id}: expected {expected}\n{}",
                r.explained()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let passed = results
        .values()
        .filter(|r| r.verdict.kind == Kind::Pass)
        .count();
    assert!(passed >= 3, "{strategy}: only {passed} cases passed");
}

fn quick(strategy: &str, inherent: &[&str]) {
    for (role, cases) in [(Role::Server, SERVER_CASES), (Role::Client, CLIENT_CASES)] {
        let results = run(strategy, role, cases);
        assert_verdicts(strategy, &results, inherent);
    }
}

#[test]
fn blocking_fails_the_concurrency_cases_and_passes_the_rest() {
    let inherent: Vec<&str> = BLOCKING_INHERENT
        .iter()
        .copied()
        .filter(|id| SERVER_CASES.contains(id) || CLIENT_CASES.contains(id))
        .collect();
    // The selection holds concurrency cases of both roles.
    assert!(inherent.contains(&"server.stalled-reader-does-not-block-others"));
    assert!(inherent.contains(&"client.three-slow-at-once"));
    quick("blocking", &inherent);
}

#[test]
fn threads_pass_the_concurrency_cases() {
    quick("threads", &[]);
}

#[test]
fn selectors_pass_the_concurrency_cases() {
    quick("selectors", &[]);
}

#[test]
#[ignore = "the whole client and server catalog for three strategies: about a minute"]
fn every_strategy_fails_only_what_its_nature_makes_it_fail() {
    for (strategy, inherent) in [
        ("blocking", BLOCKING_INHERENT),
        ("threads", &[][..]),
        ("selectors", &[][..]),
    ] {
        for role in [Role::Server, Role::Client] {
            let results = run(strategy, role, &[]);
            assert_verdicts(strategy, &results, inherent);
        }
    }
}

#[test]
fn blocking_inherent_cases_exist() {
    let catalog = Catalog::builtin().expect("catalog loads");
    for id in BLOCKING_INHERENT {
        assert!(catalog.get(id).is_some(), "{id} is not in the catalog");
    }
}

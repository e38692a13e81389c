//! The live backend driving real programs: the Python examples in
//! `fixtures/python/` on loopback, with the same catalog as the simulator.
//!
//! The asyncio programs need only python3. The Twisted ones need a Python
//! with Twisted: they are `#[ignore]`d with that reason, and `.ci/run` runs
//! them with `POETRY_HARNESS_TWISTED_PYTHON` pointing at a venv.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use poetry_harness::backend::live::contract::Contract;
use poetry_harness::backend::live::{probe, LiveSubject};
use poetry_harness::case::{Feature, Role};
use poetry_harness::catalog::Catalog;
use poetry_harness::engine::{run_all_live, CaseResult, EngineOptions, LiveTarget};
use poetry_harness::verdict::{Kind, Profile};

/// Live cases use 2% of their simulated durations: a 0.7 s pause is 14 ms.
const TIME_SCALE: f64 = 0.05;

fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/python")
}

fn program(python: &str, rel: &str, args: &str) -> String {
    format!("{python} {} {args}", python_dir().join(rel).display())
}

fn target(role: Role, command: String, contract: Contract, lacks: Vec<Feature>) -> LiveTarget {
    let subject = LiveSubject {
        role,
        exit_127_unsupported: probe(&command),
        command,
        contract,
        startup_timeout: Duration::from_secs(10),
        time_scale: TIME_SCALE,
    };
    let mut roles = IndexMap::new();
    roles.insert(role, subject);
    LiveTarget {
        name: "python".into(),
        lacks,
        roles,
    }
}

fn run(target: &LiveTarget, role: Role, profile: Profile) -> Vec<CaseResult> {
    let catalog = Catalog::builtin().expect("catalog loads");
    let cases: Vec<_> = catalog.cases.iter().filter(|c| c.role == role).collect();
    let opts = EngineOptions {
        profile,
        jobs: 2,
        ..EngineOptions::default()
    };
    run_all_live(&cases, target, &opts, &|_| {})
}

fn failing(results: &[CaseResult], profile: Profile) -> BTreeSet<String> {
    results
        .iter()
        .filter(|r| r.verdict.kind.fails(profile))
        .map(|r| r.case.id.clone())
        .collect()
}

fn describe(results: &[CaseResult], profile: Profile) -> String {
    results
        .iter()
        .filter(|r| r.verdict.kind.fails(profile))
        .map(|r| {
            let transcript = r.outcome.as_ref().map(|o| o.transcript.render()).unwrap_or_default();
            format!("{} {}: {}\n{transcript}", r.case.id, r.verdict.kind, r.verdict.reason)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn asyncio_client() -> LiveTarget {
    let cmd = program("python3", "asyncio/get_poetry.py", "--timeout {timeout} {addrs}");
    target(Role::Client, cmd, Contract::Exact, vec![])
}

#[test]
fn asyncio_client_passes_the_client_catalog() {
    let results = run(&asyncio_client(), Role::Client, Profile::Strict);
    assert!(failing(&results, Profile::Strict).is_empty(), "{}", describe(&results, Profile::Strict));
    let ran = results.iter().filter(|r| r.verdict.kind == Kind::Pass).count();
    assert!(ran >= 10, "only {ran} cases ran live");
}

#[test]
fn asyncio_client_follows_the_exit_127_convention() {
    let cmd = program("python3", "asyncio/get_poetry.py", "{addrs}");
    assert!(probe(&cmd), "the probe did not see exit 127");
    assert!(!probe("exit 0"), "a program that ignores POETRY_CASE was taken as following it");
}

#[rstest::rstest]
#[case::decodes_per_chunk(
    "broken/client_decodes_per_chunk.py",
    &["client.byte-by-byte", "client.utf8-split", "client.random-chunks"]
)]
#[case::reads_once(
    "broken/client_reads_once.py",
    &["client.byte-by-byte", "client.order-of-arguments", "client.three-slow-at-once"]
)]
fn broken_client_fails_the_cases_that_expose_its_bug(#[case] prog: &str, #[case] expected: &[&str]) {
    let cmd = program("python3", prog, "--timeout {timeout} {addrs}");
    let results = run(&target(Role::Client, cmd, Contract::Exact, vec![]), Role::Client, Profile::Strict);
    let failed = failing(&results, Profile::Strict);
    for id in expected {
        assert!(failed.contains(*id), "{prog} was not caught by {id}; failing: {failed:?}");
    }
}

fn twisted_python() -> String {
    std::env::var("POETRY_HARNESS_TWISTED_PYTHON")
        .expect("set POETRY_HARNESS_TWISTED_PYTHON to a python with Twisted (see .ci/run)")
}

#[test]
#[ignore = "needs Twisted: set POETRY_HARNESS_TWISTED_PYTHON (.ci/run does)"]
fn twisted_client_passes_the_tutorial_profile_and_is_non_strict_on_resets() {
    let cmd = program(&twisted_python(), "twisted/get_poetry.py", "--timeout {timeout} {addrs}");
    let results = run(&target(Role::Client, cmd, Contract::Exact, vec![]), Role::Client, Profile::Tutorial);
    assert!(failing(&results, Profile::Tutorial).is_empty(), "{}", describe(&results, Profile::Tutorial));
    // The series' clients take a reset for the end of the poem: accepted by
    // the tutorial profile, and only by it.
    let reset = results.iter().find(|r| r.case.id == "client.reset-mid-poem").expect("case exists");
    assert_eq!(reset.verdict.kind, Kind::NonStrict, "{}", reset.verdict.reason);
}

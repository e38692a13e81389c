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

/// A program for one role, with the defaults of these tests.
fn subject(role: Role, command: String) -> LiveSubject {
    LiveSubject {
        role,
        exit_127_unsupported: false,
        command,
        contract: Contract::Exact,
        startup_timeout: Duration::from_secs(10),
        time_scale: TIME_SCALE,
        lacks: Vec::new(),
        env: Vec::new(),
    }
}

/// One program as a live target; probes it for the exit-127 convention.
fn target(role: Role, command: String, contract: Contract, lacks: Vec<Feature>) -> LiveTarget {
    let subject = LiveSubject {
        exit_127_unsupported: probe(&command),
        contract,
        ..subject(role, command)
    };
    let mut roles = IndexMap::new();
    roles.insert(role, subject);
    LiveTarget {
        name: "python".into(),
        lacks,
        roles,
        profile: None,
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
        .map(CaseResult::explained)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fails with every failing case's reason and transcript.
fn assert_no_failures(results: &[CaseResult], profile: Profile) {
    assert!(
        failing(results, profile).is_empty(),
        "{}",
        describe(results, profile)
    );
}

fn asyncio_client() -> LiveTarget {
    let cmd = program(
        "python3",
        "asyncio/get_poetry.py",
        "--timeout {timeout} {addrs}",
    );
    target(Role::Client, cmd, Contract::Exact, vec![])
}

#[test]
fn asyncio_client_passes_the_client_catalog() {
    let results = run(&asyncio_client(), Role::Client, Profile::Strict);
    assert_no_failures(&results, Profile::Strict);
    let ran = results
        .iter()
        .filter(|r| r.verdict.kind == Kind::Pass)
        .count();
    assert!(ran >= 10, "only {ran} cases ran live");
}

#[test]
fn asyncio_client_follows_the_exit_127_convention() {
    let cmd = program("python3", "asyncio/get_poetry.py", "{addrs}");
    assert!(probe(&cmd), "the probe did not see exit 127");
    assert!(
        !probe("exit 0"),
        "a program that ignores POETRY_CASE was taken as following it"
    );
}

#[rstest::rstest]
// A client that decodes each read on its own is caught only when a
// character is split between its reads, which live means between writes far
// enough apart that the client has read the first before the second comes.
// At the other tests' scale (0.05) utf8-split's writes are 5 ms apart, and on
// a loaded machine (load 4 and more, with this binary's other tests starting
// Python programs) the client's reads sometimes took both at once; it is
// never caught by byte-by-byte's 0.5 ms. At 0.5, utf8-split's writes are
// 50 ms apart and random-chunks' 25 ms: a teacher's default scale, 1, gives
// twice that.
#[case::decodes_per_chunk(
    "broken/client_decodes_per_chunk.py",
    &["client.utf8-split", "client.random-chunks"],
    0.5
)]
#[case::reads_once(
    "broken/client_reads_once.py",
    &["client.byte-by-byte", "client.order-of-arguments", "client.three-slow-at-once"],
    TIME_SCALE
)]
fn broken_client_fails_the_cases_that_expose_its_bug(
    #[case] prog: &str,
    #[case] expected: &[&str],
    #[case] scale: f64,
) {
    let cmd = program("python3", prog, "--timeout {timeout} {addrs}");
    let mut target = target(Role::Client, cmd, Contract::Exact, vec![]);
    for subject in target.roles.values_mut() {
        subject.time_scale = scale;
    }
    let catalog = Catalog::builtin().expect("catalog loads");
    let cases: Vec<_> = expected
        .iter()
        .map(|id| catalog.get(id).expect("a case of the catalog"))
        .collect();
    let opts = EngineOptions {
        profile: Profile::Strict,
        jobs: 2,
        ..EngineOptions::default()
    };
    let results = run_all_live(&cases, &target, &opts, &|_| {});
    let failed = failing(&results, Profile::Strict);
    for id in expected {
        assert!(
            failed.contains(*id),
            "{prog} was not caught by {id}; failing: {failed:?}"
        );
    }
}

fn twisted_python() -> String {
    std::env::var("POETRY_HARNESS_TWISTED_PYTHON")
        .expect("set POETRY_HARNESS_TWISTED_PYTHON to a python with Twisted (see .ci/run)")
}

#[test]
#[ignore = "needs Twisted: set POETRY_HARNESS_TWISTED_PYTHON (.ci/run does)"]
fn twisted_client_passes_the_tutorial_profile_and_is_non_strict_on_resets() {
    let cmd = program(
        &twisted_python(),
        "twisted/get_poetry.py",
        "--timeout {timeout} {addrs}",
    );
    let results = run(
        &target(Role::Client, cmd, Contract::Exact, vec![]),
        Role::Client,
        Profile::Tutorial,
    );
    assert_no_failures(&results, Profile::Tutorial);
    // The series' clients take a reset for the end of the poem: accepted by
    // the tutorial profile, and only by it.
    let reset = results
        .iter()
        .find(|r| r.case.id == "client.reset-mid-poem")
        .expect("case exists");
    assert_eq!(
        reset.verdict.kind,
        Kind::NonStrict,
        "{}",
        reset.verdict.reason
    );
}

fn asyncio_server() -> LiveTarget {
    let args = "--port {port} --num-bytes {num_bytes} --delay {delay} {poem}";
    target(
        Role::Server,
        program("python3", "asyncio/poetry_server.py", args),
        Contract::Exact,
        vec![],
    )
}

#[test]
fn asyncio_server_passes_the_server_catalog() {
    let results = run(&asyncio_server(), Role::Server, Profile::Strict);
    assert_no_failures(&results, Profile::Strict);
}

#[test]
fn serial_server_is_caught_serving_one_client_at_a_time() {
    let args = "--port {port} --num-bytes {num_bytes} --delay {delay} {poem}";
    let cmd = program("python3", "broken/server_serial.py", args);
    let results = run(
        &target(Role::Server, cmd, Contract::Exact, vec![]),
        Role::Server,
        Profile::Strict,
    );
    let five = results
        .iter()
        .find(|r| r.case.id == "server.slow-five-at-once")
        .expect("case exists");
    // Serving one at a time is what the part-2 blocking server does: the
    // tutorial profile accepts it, the strict one does not.
    assert_eq!(
        five.verdict.kind,
        Kind::NonStrict,
        "{}",
        five.verdict.reason
    );
}

#[test]
fn asyncio_transform_server_passes_the_transform_server_catalog() {
    let cmd = program("python3", "asyncio/transform_server.py", "--port {port}");
    // It has no idle timeout: the cases that need one are UNSUPPORTED.
    let t = target(
        Role::TransformServer,
        cmd,
        Contract::Exact,
        vec![Feature::Timeouts],
    );
    let results = run(&t, Role::TransformServer, Profile::Strict);
    assert_no_failures(&results, Profile::Strict);
}

#[test]
fn transform_server_counting_characters_is_caught_by_a_non_ascii_poem() {
    let cmd = program(
        "python3",
        "broken/transform_counts_chars.py",
        "--port {port}",
    );
    let t = target(
        Role::TransformServer,
        cmd,
        Contract::Exact,
        vec![Feature::Timeouts],
    );
    let failed = failing(
        &run(&t, Role::TransformServer, Profile::Strict),
        Profile::Strict,
    );
    assert!(
        failed.contains("xserver.cummingsify-loreley"),
        "failing: {failed:?}"
    );
    // An ASCII-only request hides the bug.
    assert!(
        !failed.contains("xserver.empty-poem"),
        "failing: {failed:?}"
    );
}

#[test]
#[ignore = "needs Twisted: set POETRY_HARNESS_TWISTED_PYTHON (.ci/run does)"]
fn twisted_servers_pass_the_tutorial_profile() {
    let py = twisted_python();
    // A fast server only: the paced cases are UNSUPPORTED for it.
    let server = target(
        Role::Server,
        program(&py, "twisted/fastpoetry.py", "--port {port} {poem}"),
        Contract::Exact,
        vec![Feature::Pacing],
    );
    let results = run(&server, Role::Server, Profile::Tutorial);
    assert_no_failures(&results, Profile::Tutorial);
    let xform = target(
        Role::TransformServer,
        program(&py, "twisted/transform_server.py", "--port {port}"),
        Contract::Exact,
        vec![Feature::Timeouts],
    );
    let results = run(&xform, Role::TransformServer, Profile::Tutorial);
    assert_no_failures(&results, Profile::Tutorial);
}

/// Runs `case_id` against `command`, a program that prints nothing, and
/// asserts that it passes and was found ready by its listening port.
fn assert_silent_program_passes(role: Role, command: String, case_id: &str) {
    let t = target(role, command, Contract::Exact, vec![]);
    let catalog = Catalog::builtin().expect("catalog loads");
    let case = catalog.get(case_id).expect("case exists");
    let r = poetry_harness::engine::run_case_live(case, &t, &EngineOptions::default());
    let transcript = r.outcome.as_ref().expect("it ran").transcript.render();
    assert_eq!(
        r.verdict.kind,
        Kind::Pass,
        "{}\n{transcript}",
        r.verdict.reason
    );
    assert!(
        transcript.contains("is listening (no line announced it)"),
        "{transcript}"
    );
}

#[test]
fn silent_server_is_ready_when_its_port_listens() {
    // Its announcement goes nowhere: readiness must come from the port.
    let args = "--port {port} --num-bytes {num_bytes} --delay {delay} {poem} > /dev/null";
    let command = program("python3", "asyncio/poetry_server.py", args);
    assert_silent_program_passes(Role::Server, command, "server.one-client-fast");
}

/// The readiness probe must not be a connection: a one-at-a-time server
/// would serve it first (one chunk, then a delay's sleep before its next
/// write fails) and only then accept the case's client, whose first chunk
/// would come a whole delay late. With a probe that connected, this case
/// failed: c1's first chunk after 0.14 s, against 0.05 s.
#[test]
fn a_silent_one_at_a_time_server_is_not_held_up_by_the_readiness_probe() {
    let args = "--port {port} --num-bytes {num_bytes} --delay {delay} {poem} > /dev/null";
    let command = program("python3", "tutorial/poetry_server.py", args);
    assert_silent_program_passes(Role::Server, command, "server.slow-first-chunk-at-once");
}

/// A proxy is never connected to before its case (a connection would make
/// it fetch), yet one that prints nothing is ready once it listens.
#[test]
fn silent_proxy_is_ready_when_its_port_listens() {
    use poetry_harness::backend::live::reference_programs::TEMPLATES;
    let exe = env!("CARGO_BIN_EXE_poetry-harness");
    let (_, args) = TEMPLATES
        .iter()
        .find(|(role, _)| *role == Role::Proxy)
        .expect("the reference has a proxy");
    let command = format!("{exe} {args} > /dev/null");
    assert_silent_program_passes(Role::Proxy, command, "proxy.first-request-fetches");
}

#[test]
fn asyncio_client_and_server_pass_every_pair_scenario() {
    use poetry_harness::backend::live::pair;
    let server = subject(
        Role::Server,
        program(
            "python3",
            "asyncio/poetry_server.py",
            "--port {port} {poem}",
        ),
    );
    let client = subject(
        Role::Client,
        program(
            "python3",
            "asyncio/get_poetry.py",
            "--timeout {timeout} {addrs}",
        ),
    );
    for sc in pair::SCENARIOS {
        let r = pair::run(&server, &client, sc);
        assert_eq!(
            r.kind,
            Kind::Pass,
            "{}: {}\n{}",
            sc.id,
            r.reason,
            r.transcript.join("\n")
        );
    }
}

#[test]
fn pair_with_a_client_that_reads_once_fails_on_a_sliced_link() {
    use poetry_harness::backend::live::pair;
    let server = subject(
        Role::Server,
        program(
            "python3",
            "asyncio/poetry_server.py",
            "--port {port} {poem}",
        ),
    );
    let client = subject(
        Role::Client,
        program(
            "python3",
            "broken/client_reads_once.py",
            "--timeout {timeout} {addrs}",
        ),
    );
    let sliced = pair::SCENARIOS
        .iter()
        .find(|s| s.id == "pair.sliced")
        .expect("scenario exists");
    let r = pair::run(&server, &client, sliced);
    assert_eq!(r.kind, Kind::Fail, "{}", r.reason);
}

#[test]
fn client_that_exits_0_after_a_failure_is_non_strict() {
    // The series' clients exit 0 whatever happened: the tutorial profile
    // accepts it, the strict one does not (CLIENT-12).
    let cmd = format!(
        "{}; exit 0",
        program("python3", "asyncio/get_poetry.py", "{addrs}")
    );
    let t = target(Role::Client, cmd, Contract::Exact, vec![]);
    let catalog = Catalog::builtin().expect("catalog loads");
    let case = catalog.get("client.refused").expect("case exists");
    let r = poetry_harness::engine::run_case_live(case, &t, &EngineOptions::default());
    assert_eq!(r.verdict.kind, Kind::NonStrict, "{}", r.verdict.reason);
    assert!(
        r.verdict.reason.starts_with("exit status"),
        "{}",
        r.verdict.reason
    );
}

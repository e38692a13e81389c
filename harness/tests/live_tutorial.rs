//! The tutorial profile against programs written as the series writes them
//! (`fixtures/python/tutorial/`, declared in `fixtures/python/tutorial.toml`),
//! run live on loopback: no timeouts, a reset read as the end of a poem,
//! exit status 0 after failures, progress lines, `Cummingsify failed!`, one
//! client at a time. Under `tutorial` no case may FAIL or TIMEOUT; under
//! `strict` the cases that expose each of those behaviours must fail.
//!
//! Modules, one per role the fixtures play:
//! - client: `get_poetry.py`, a select loop with progress lines on stdout
//!   (the `contains` contract);
//! - transforming client: `get_transformed_poetry.py`;
//! - server: `poetry_server.py`, part 2's blocking slow server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use poetry_harness::backend::live::manifest::Manifest;
use poetry_harness::backend::live::{probe, LiveSubject};
use poetry_harness::case::Role;
use poetry_harness::catalog::Catalog;
use poetry_harness::engine::{run_all_live, CaseResult, EngineOptions, LiveTarget};
use poetry_harness::verdict::{Kind, Profile};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The manifest's program for `role`, its paths made absolute (the
/// manifest's are relative to the repository root).
fn target(role: Role) -> LiveTarget {
    let path = repo().join("fixtures/python/tutorial.toml");
    let manifest = Manifest::load(&path).expect("the tutorial manifest loads");
    assert_eq!(manifest.profile(), Profile::Tutorial);
    let rc = manifest
        .role(role)
        .unwrap_or_else(|| panic!("the tutorial manifest has no {role}"));
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
        "{role}: the program does not follow the exit-127 convention"
    );
    let mut roles = IndexMap::new();
    roles.insert(role, subject);
    LiveTarget {
        name: manifest.name,
        lacks: manifest.lacks,
        roles,
        profile: Some(manifest.profile.unwrap_or_default()),
    }
}

/// Runs the cases of `role` (all, or those named) under `profile`.
fn run(role: Role, profile: Profile, only: &[&str]) -> Vec<CaseResult> {
    let catalog = Catalog::builtin().expect("catalog loads");
    let cases: Vec<_> = catalog
        .cases
        .iter()
        .filter(|c| c.role == role && (only.is_empty() || only.contains(&c.id.as_str())))
        .collect();
    assert!(!cases.is_empty(), "no {role} case selected");
    let opts = EngineOptions {
        profile,
        jobs: 2,
        ..EngineOptions::default()
    };
    run_all_live(&cases, &target(role), &opts, &|_| {})
}

/// Cases the series-style fixtures FAIL under tutorial for a reason the
/// tutorial profile does not (yet) cover. They are left out of the "never
/// FAIL under tutorial" assertion only, and each names its cause. Remove
/// an entry once its case passes.
const LIVE_BACKEND_KNOWN: &[(&str, &str)] = &[(
    "xclient.transform-reply-not-utf8",
    "the series' client prints whatever the transform server replied, even \
     bytes that are not UTF-8; TCLIENT-10 has no tutorial paragraph that \
     accepts it (an open spec question, not a backend bug)",
)];

/// Asserts no case FAILs or TIMEOUTs under tutorial (but the known live
/// backend problems), that some ran and passed, and that some showed a
/// tutorial behaviour (NON-STRICT).
fn assert_tutorial_accepts(role: Role) -> BTreeMap<String, Kind> {
    let results = run(role, Profile::Tutorial, &[]);
    let bad: Vec<String> = results
        .iter()
        .filter(|r| matches!(r.verdict.kind, Kind::Fail | Kind::Timeout))
        .filter(|r| LIVE_BACKEND_KNOWN.iter().all(|(id, _)| *id != r.case.id))
        .map(CaseResult::explained)
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let kinds: BTreeMap<String, Kind> = results
        .iter()
        .map(|r| (r.case.id.clone(), r.verdict.kind))
        .collect();
    let count = |k: Kind| kinds.values().filter(|v| **v == k).count();
    assert!(count(Kind::Pass) >= 5, "too few cases passed: {kinds:?}");
    assert!(
        count(Kind::NonStrict) >= 1,
        "no tutorial behaviour seen: {kinds:?}"
    );
    kinds
}

/// Under strict, each case that exposes a tutorial behaviour fails: FAIL
/// or NON-STRICT; for a missing timeout, a hang (TIMEOUT). NON-STRICT
/// names the relaxation that accepts it under tutorial.
fn assert_strict_rejects(role: Role, exposing: &[(&str, &str)]) {
    let ids: Vec<&str> = exposing.iter().map(|(id, _)| *id).collect();
    let results = run(role, Profile::Strict, &ids);
    for (id, relaxation) in exposing {
        let r = results
            .iter()
            .find(|r| r.case.id == *id)
            .unwrap_or_else(|| panic!("{id} did not run"));
        let ok = match (*relaxation, r.verdict.kind) {
            ("no-timeouts", Kind::Timeout | Kind::Fail) => true,
            (_, Kind::Fail) => true,
            (_, Kind::NonStrict) => r.verdict.reason.contains(relaxation),
            _ => false,
        };
        assert!(
            ok,
            "{id} should fail strict ({relaxation} under tutorial): {}",
            r.explained()
        );
    }
}

fn assert_unsupported(kinds: &BTreeMap<String, Kind>, id: &str) {
    assert_eq!(kinds.get(id), Some(&Kind::Unsupported), "{id}: {kinds:?}");
}

#[test]
fn manifest_paths_exist() {
    let manifest = Manifest::load(&repo().join("fixtures/python/tutorial.toml")).unwrap();
    for role in Role::ALL {
        let Some(rc) = manifest.role(role) else {
            continue;
        };
        let script = rc
            .command
            .split_whitespace()
            .find(|w| w.ends_with(".py"))
            .expect("a python script");
        assert!(Path::new(&repo().join(script)).is_file(), "{script}");
    }
}

mod client {
    use super::*;

    #[test]
    fn tutorial_accepts_every_case() {
        let kinds = assert_tutorial_accepts(Role::Client);
        // No timeouts: the cases that need one are not run.
        assert_unsupported(&kinds, "client.stall-forever");
        assert_eq!(kinds["client.reset-mid-poem"], Kind::NonStrict);
        assert_eq!(kinds["client.refused"], Kind::NonStrict);
    }

    #[test]
    fn strict_rejects_each_tutorial_behaviour() {
        assert_strict_rejects(
            Role::Client,
            &[
                ("client.reset-mid-poem", "reset-is-end"),
                ("client.reset-before-any-byte", "reset-is-end"),
                ("client.refused", "exit-zero-after-failure"),
                ("client.one-refused-among-three", "exit-zero-after-failure"),
                ("client.stall-forever", "no-timeouts"),
            ],
        );
    }
}

mod transform_client {
    use super::*;

    #[test]
    fn tutorial_accepts_every_case() {
        let kinds = assert_tutorial_accepts(Role::TransformClient);
        assert_unsupported(&kinds, "xclient.transform-stalls-times-out");
        // It always asks for cummingsify.
        assert_unsupported(&kinds, "xclient.transform-name-shout");
        assert_eq!(kinds["xclient.download-reset"], Kind::NonStrict);
    }

    #[test]
    fn strict_rejects_each_tutorial_behaviour() {
        assert_strict_rejects(
            Role::TransformClient,
            &[
                ("xclient.download-reset", "reset-is-end"),
                ("xclient.order-mixed-outcomes", "reset-is-end"),
                ("xclient.transform-stalls-times-out", "no-timeouts"),
                ("xclient.transform-name-shout", "cummingsify-only"),
            ],
        );
    }
}

mod server {
    use super::*;

    #[test]
    fn tutorial_accepts_every_case() {
        let kinds = assert_tutorial_accepts(Role::Server);
        assert_eq!(kinds["server.client-sends-garbage"], Kind::NonStrict);
        assert_eq!(kinds["server.slow-five-at-once"], Kind::NonStrict);
    }

    #[test]
    fn strict_rejects_each_tutorial_behaviour() {
        assert_strict_rejects(
            Role::Server,
            &[
                // Its clients send while the slow poem is still going, so
                // the bytes are unread at the close. (In
                // server.no-leaked-connections the fast poem may be closed
                // with FIN before the client's bytes arrive: it may PASS.)
                ("server.client-sends-garbage", "close-without-reading"),
                ("server.slow-five-at-once", "one-at-a-time"),
            ],
        );
    }
}

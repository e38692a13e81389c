//! Output contracts on real programs: what a client prints besides its
//! poems, judged by the live backend (`backend::live::contract`).
//!
//! The sim backend cannot express these cases: the reference client runs
//! in process and returns its results, it has no stdout. So they are live
//! tests against small Python programs of `fixtures/python/broken/`.
//!
//! - junk after the poems: `exact` must refuse it, `contains` allows it.

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use poetry_harness::backend::live::contract::Contract;
use poetry_harness::backend::live::LiveSubject;
use poetry_harness::case::Role;
use poetry_harness::catalog::Catalog;
use poetry_harness::engine::{run_case_live, CaseResult, EngineOptions, LiveTarget};
use poetry_harness::verdict::Kind;

/// The live tests' scale: a 0.7 s pause takes 35 ms.
const TIME_SCALE: f64 = 0.05;

/// The client that prints `Got N poems.` on stdout after its poems.
const PRINTS_SUMMARY: &str = "broken/client_prints_summary.py";

/// Cases whose every download succeeds: the poems on stdout are right,
/// and only the summary after them is wrong.
const CASES: [&str; 2] = ["client.fast-poem", "client.order-of-arguments"];

fn client(prog: &str, contract: Contract) -> LiveTarget {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/python")
        .join(prog);
    let subject = LiveSubject {
        role: Role::Client,
        exit_127_unsupported: false,
        command: format!("python3 {} --timeout {{timeout}} {{addrs}}", path.display()),
        contract,
        startup_timeout: Duration::from_secs(10),
        time_scale: TIME_SCALE,
        lacks: Vec::new(),
        env: Vec::new(),
    };
    let mut roles = IndexMap::new();
    roles.insert(Role::Client, subject);
    LiveTarget {
        name: "python".into(),
        lacks: Vec::new(),
        roles,
        profile: None,
    }
}

fn run(target: &LiveTarget, id: &str) -> CaseResult {
    let catalog = Catalog::builtin().expect("the shipped catalog loads");
    let case = catalog.get(id).expect("case exists");
    run_case_live(case, target, &EngineOptions::default())
}

#[test]
fn summary_after_the_poems_fails_under_exact() {
    let target = client(PRINTS_SUMMARY, Contract::Exact);
    for id in CASES {
        let r = run(&target, id);
        assert_eq!(
            r.verdict.kind,
            Kind::Fail,
            "{id}: {}\n{}",
            r.verdict.reason,
            r.transcript()
        );
    }
}

#[test]
fn summary_after_the_poems_passes_under_contains() {
    // The poems are right and `contains` allows other text: the same
    // program passes, so the exact test above fails for the junk alone.
    let target = client(PRINTS_SUMMARY, Contract::Contains);
    for id in CASES {
        let r = run(&target, id);
        assert_eq!(
            r.verdict.kind,
            Kind::Pass,
            "{id}: {}\n{}",
            r.verdict.reason,
            r.transcript()
        );
    }
}

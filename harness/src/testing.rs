//! Running the catalog from your own `cargo test`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use poetry_harness::roles::{Implementation, Reference};
//! use poetry_harness::testing::assert_conforms;
//! use poetry_harness::verdict::Profile;
//!
//! #[test]
//! fn my_client_conforms() {
//!     let mine = Implementation {
//!         name: "mine".into(),
//!         client: Some(Arc::new(Reference)), // your PoetryClientRole here
//!         ..Implementation::default()
//!     };
//!     assert_conforms(&mine, Profile::Strict);
//! }
//! ```

use crate::catalog::Catalog;
use crate::engine::{run_all, CaseResult, EngineOptions};
use crate::report;
use crate::roles::Implementation;
use crate::verdict::Profile;

/// Runs every shipped case of the roles `imp` plays, judged by `profile`.
pub fn check(imp: &Implementation, profile: Profile) -> Vec<CaseResult> {
    let catalog = Catalog::builtin().expect("the shipped catalog loads (tested)");
    let cases: Vec<_> = catalog.cases.iter().filter(|c| imp.plays(c.role)).collect();
    let opts = EngineOptions {
        profile,
        ..EngineOptions::default()
    };
    run_all(&cases, imp, &opts, &|_| {})
}

/// Panics, with the report of the failures and their transcripts, unless
/// every case of the roles `imp` plays passes under `profile`.
pub fn assert_conforms(imp: &Implementation, profile: Profile) {
    let results = check(imp, profile);
    assert!(!results.is_empty(), "{} plays no role", imp.name);
    let failed: Vec<CaseResult> = results
        .into_iter()
        .filter(|r| r.verdict.kind.fails(profile))
        .collect();
    if !failed.is_empty() {
        panic!(
            "{} case(s) failed:\n{}",
            failed.len(),
            report::table(&failed, &imp.name, profile, false, false)
        );
    }
}

//! The suite must be able to fail (DESIGN.md): every mutant of the zoo
//! (`fixtures/mutants/`) is killed by at least one case of the catalog,
//! and by each case it lists in `killed_by`; the reference implementations
//! pass every case. The same check as `poetry-harness mutants`.

use std::collections::BTreeSet;

use poetry_harness::catalog::Catalog;
use poetry_harness::engine::{run_all, EngineOptions};
use poetry_harness::mutants::{self, Assessment};
use poetry_harness::roles::Implementation;
use poetry_harness::verdict::{Kind, Profile};

fn catalog() -> Catalog {
    Catalog::builtin().expect("the shipped catalog loads")
}

fn jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One line per broken promise of one mutant.
fn problems(a: &Assessment) -> Vec<String> {
    let m = &a.mutant;
    let mut out = Vec::new();
    if !a.killed() && !a.only_elsewhere() {
        out.push(format!(
            "{} ({}: {}) survived all {} {} case(s)",
            m.name, m.role, m.bug, a.cases_run, m.role
        ));
    }
    for id in &a.missed {
        out.push(format!("{} was not killed by {id}, which it lists", m.name));
    }
    for id in &a.unknown {
        out.push(format!(
            "{} lists {id}, which is not a {} case of the catalog",
            m.name, m.role
        ));
    }
    out
}

#[test]
fn every_mutant_is_killed_by_each_case_it_lists() {
    let catalog = catalog();
    let cases = catalog.select(&[]);
    let assessments = mutants::assess_all(&cases, jobs());
    assert!(!assessments.is_empty(), "the zoo is empty");
    let problems: Vec<String> = assessments.iter().flat_map(problems).collect();
    assert!(
        problems.is_empty(),
        "{} problem(s) in the mutant zoo (mutation score {}/{}):\n  {}",
        problems.len(),
        assessments.iter().filter(|a| a.killed()).count(),
        assessments.len(),
        problems.join("\n  ")
    );
}

#[test]
fn the_reference_passes_every_case_under_strict() {
    let catalog = catalog();
    let cases = catalog.select(&[]);
    let opts = EngineOptions {
        profile: Profile::Strict,
        jobs: jobs(),
        ..EngineOptions::default()
    };
    // A case with packet faults or a listen backlog is UNSUPPORTED on
    // turmoil: the reference must pass it on simnet.
    let (simnet_only, turmoil): (Vec<_>, Vec<_>) = cases
        .iter()
        .copied()
        .partition(|c| c.net.needs_simnet().is_some());
    let mut on_simnet = opts;
    on_simnet.run = on_simnet
        .run
        .on_engine(poetry_harness::backend::sim::SimEngine::Simnet);
    let mut results = run_all(&turmoil, &Implementation::reference(), &opts, &|_| {});
    results.extend(run_all(
        &simnet_only,
        &Implementation::reference(),
        &on_simnet,
        &|_| {},
    ));
    assert!(
        !simnet_only.is_empty(),
        "no case of the catalog needs simnet"
    );
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.verdict.kind != Kind::Pass && !(r.case.info && r.verdict.kind == Kind::Info))
        .map(|r| format!("{}: {} {}", r.case.id, r.verdict.kind, r.verdict.reason))
        .collect();
    assert!(
        failed.is_empty(),
        "the reference failed {} case(s):\n  {}",
        failed.len(),
        failed.join("\n  ")
    );
}

#[test]
fn mutants_are_well_formed() {
    let all = mutants::all();
    assert!(all.len() >= 25, "only {} mutants", all.len());
    let mut names = BTreeSet::new();
    let mut problems = Vec::new();
    for m in &all {
        if !names.insert(m.name) {
            problems.push(format!("{}: the name is used twice", m.name));
        }
        let prefix = format!("{}-", m.role.id_prefix().trim_end_matches('.'));
        if !m.name.starts_with(&prefix) {
            problems.push(format!("{}: the name does not start with {prefix}", m.name));
        }
        if m.killed_by.is_empty() {
            problems.push(format!("{}: lists no killing case", m.name));
        }
        for id in m.killed_by {
            if !id.starts_with(m.role.id_prefix()) {
                problems.push(format!("{}: {id} is not a {} case", m.name, m.role));
            }
        }
        let imp = (m.build)();
        if imp.name != m.name {
            problems.push(format!(
                "{}: builds an implementation named {}",
                m.name, imp.name
            ));
        }
        if !poetry_harness::case::Role::ALL
            .iter()
            .all(|r| imp.plays(*r))
        {
            problems.push(format!("{}: does not play every role", m.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn readme_matrix_is_what_the_mutants_command_prints() {
    let catalog = catalog();
    let cases: Vec<_> = catalog.cases.iter().collect();
    let table = poetry_harness::cli::mutants::markdown(&mutants::assess_all(&cases, jobs()));
    let readme = include_str!("../../README.md");
    let start = readme
        .find("<!-- mutants:start -->\n")
        .expect("README has the start marker")
        + 23;
    let end = readme
        .find("<!-- mutants:end -->")
        .expect("README has the end marker");
    assert_eq!(
        readme[start..end].trim_end(),
        table.trim_end(),
        "README's mutant table is stale: paste `poetry-harness mutants --markdown` between the markers"
    );
}

#[test]
fn every_case_catches_at_least_one_mutant() {
    // A case no broken implementation fails proves nothing: each one must
    // kill some mutant of its role (add the mutant with the bug it targets).
    let catalog = catalog();
    let cases: Vec<_> = catalog.cases.iter().collect();
    // Cases whose network only simnet models (packet faults, a listen
    // backlog) are UNSUPPORTED on turmoil: their kills are simnet's.
    let (simnet_only, turmoil): (Vec<_>, Vec<_>) = cases
        .iter()
        .copied()
        .partition(|c| c.net.needs_simnet().is_some());
    let killers: BTreeSet<String> = mutants::assess_all(&turmoil, jobs())
        .into_iter()
        .chain(mutants::assess_all_on(
            &simnet_only,
            jobs(),
            poetry_harness::backend::sim::SimEngine::Simnet,
        ))
        .flat_map(|a| a.killers.into_iter().map(|(id, _)| id))
        .collect();
    let idle: Vec<&str> = cases
        .iter()
        .map(|c| c.id.as_str())
        .filter(|id| !killers.contains(*id))
        .collect();
    assert!(idle.is_empty(), "cases that kill no mutant: {idle:?}");
}

#[test]
fn the_cli_scores_the_zoo_on_simnet_too() {
    // Every mutant is killed on turmoil-net's TCP as well, by each case it
    // lists: the CLI's exit status says so (1 on a survivor or a broken
    // promise, each marked !!).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poetry-harness"))
        .args(["mutants", "--engine", "simnet"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let n = mutants::all().len();
    assert!(
        stdout.contains(&format!("mutation score: {n}/{n} (100%)")),
        "{stdout}"
    );
    assert!(!stdout.contains("!!"), "{stdout}");
}

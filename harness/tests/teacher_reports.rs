//! Teacher reports (issue 12, item 2): the HTML matrix a teacher reads at
//! a glance, and Gradescope's `results.json`.
//!
//! - `the_html_matrix_*`: the page's parts, checked without a screenshot,
//!   on a real simulated run of the reference and a mutant;
//! - `gradescope_*`: the file's structure, score and visibility through
//!   the binary (with and without a policy), a snapshot of a small one,
//!   and an unwritable path refused before any case runs.
//!
//! Simulator only: every run is the same on every machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use poetry_harness::catalog::Catalog;
use poetry_harness::engine::{run_all, CaseResult, EngineOptions};
use poetry_harness::mutants;
use poetry_harness::policy::Policy;
use poetry_harness::report::{self, RunState, Summary};
use poetry_harness::roles::Implementation;
use poetry_harness::verdict::Profile;

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// Exit status when a case failed.
const FAILED: i32 = 1;

/// Exit status for bad usage and harness errors.
const USAGE: i32 = 2;

/// The mutant the reports are about: it fails `client.utf8-split`.
const MUTANT: &str = "client-decodes-per-chunk";

/// A throwaway directory; removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "poetry-harness-teacher-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the directory");
        Dir(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary in `cwd`, with PATH only (simulated runs: no program is
/// started, and each takes a fraction of a second).
fn run(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run poetry-harness")
}

fn mutant(name: &str) -> Implementation {
    let m = mutants::all()
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no mutant {name}"));
    (m.build)()
}

/// `imp` on the catalog's client and server cases, in the simulator.
fn simulated(imp: &Implementation) -> Vec<CaseResult> {
    let catalog = Catalog::builtin().expect("the shipped catalog loads");
    let cases: Vec<_> = catalog
        .select(&[])
        .into_iter()
        .filter(|c| c.id.starts_with("client.") || c.id.starts_with("server."))
        .collect();
    let opts = EngineOptions {
        profile: Profile::Strict,
        ..EngineOptions::default()
    };
    run_all(&cases, imp, &opts, &|_| {})
}

/// `text` as the page escapes it.
fn html_escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The text between `start` (included) and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in\n{text}"));
    let rest = &text[from..];
    let to = rest.find(end).map_or(rest.len(), |i| i + end.len());
    &rest[..to]
}

#[test]
fn the_html_matrix_has_a_title_legend_totals_role_groups_and_each_reason_a_click_away() {
    let reference = simulated(&Implementation::reference());
    let broken = simulated(&mutant(MUTANT));
    let cases = reference.len();
    let columns = vec![
        ("reference".to_string(), Profile::Strict, reference),
        (MUTANT.to_string(), Profile::Strict, broken),
    ];
    let policy = Policy::parse("p.toml", "[weights]\n\"client.utf8-split\" = 5\n").unwrap();
    let selected: Vec<_> = columns[0].2.iter().map(|r| &r.case).collect();
    let scores: Vec<_> = columns
        .iter()
        .map(|(_, p, rs)| Some(policy.scoring(&selected, None).score(rs, *p)))
        .collect();
    let html = report::matrix_html_scored(&columns, &scores);

    // A title saying what was run, and nothing dated.
    let title = format!("poetry-harness: 2 implementations by {cases} cases");
    assert!(html.contains(&format!("<title>{title}</title>")), "{html}");
    assert!(html.contains(&format!("<h1>{title}</h1>")), "{html}");
    // A legend naming every label a cell can show.
    let legend = between(&html, "<dl class=\"legend\">", "</dl>");
    for label in report::tally(&[]).keys() {
        assert!(
            legend.contains(&format!("<dt class=\"{label}\">{label}</dt><dd>")),
            "{label} not in the legend:\n{legend}"
        );
    }
    // Each implementation's totals and score.
    let totals = between(&html, "<tr class=\"totals\">", "</tr>");
    for (i, (_, p, rs)) in columns.iter().enumerate() {
        let summary = Summary::of(rs, *p).to_string();
        assert!(totals.contains(&summary), "{summary} not in {totals}");
        let score = scores[i].unwrap().to_string();
        assert!(
            totals.contains(&html_escaped(&score)),
            "{score} not in {totals}"
        );
    }
    // The cases grouped by role, each group under a heading row with
    // its count, and only its role's cases in it.
    for role in ["client", "server"] {
        let group = between(&html, &format!("<tbody id=\"role-{role}\">"), "</tbody>");
        let n = columns[0]
            .2
            .iter()
            .filter(|r| r.case.role.name() == role)
            .count();
        assert!(
            group.contains(&format!("<tr class=\"role\"><th>{role} ({n} cases)</th>")),
            "{group}"
        );
        assert_eq!(group.matches("<span class=\"id\">").count(), n, "{group}");
        assert_eq!(
            group
                .matches(&format!("<span class=\"id\">{role}."))
                .count(),
            n,
            "{group}"
        );
    }
    // A failing cell links to a section holding its reason and transcript.
    let (i, failing) = columns[1]
        .2
        .iter()
        .enumerate()
        .find(|(_, r)| r.case.id == "client.utf8-split")
        .expect("client.utf8-split ran");
    assert_eq!(failing.label(), "FAIL");
    let cell = format!("<td class=\"FAIL\"><a href=\"#r1-{i}\"");
    assert!(html.contains(&cell), "no {cell} in\n{html}");
    let section = between(
        &html,
        &format!("<section class=\"detail\" id=\"r1-{i}\">"),
        "</section>",
    );
    let reason = html_escaped(&failing.verdict.reason);
    assert!(
        section.contains(&format!("<p class=\"reason\">{reason}</p>")),
        "{section}"
    );
    assert!(section.contains("transcript (seed "), "{section}");
    assert!(
        section.contains("s1         accept connection 1"),
        "{section}"
    );
    assert!(section.contains("spec: CLIENT-"), "{section}");
    assert!(section.contains("<a href=\"#matrix\">"), "{section}");
    // Standalone: no script, nothing fetched from elsewhere.
    for outside in ["<script", "src=", "http://", "https://", "<link"] {
        assert!(!html.contains(outside), "{outside} in the page");
    }
}

#[test]
fn run_html_writes_the_page_of_one_implementation() {
    let dir = Dir::new();
    let got = run(
        &dir.0,
        &[
            "run",
            "client.fast-poem",
            "client.utf8-split",
            "--mutant",
            MUTANT,
            "--html",
            "r.html",
        ],
    );
    assert_eq!(got.status.code(), Some(FAILED), "{got:?}");
    let html = std::fs::read_to_string(dir.0.join("r.html")).expect("the page");
    assert!(
        html.contains(&format!("<h1>poetry-harness: {MUTANT} on 2 cases</h1>")),
        "{html}"
    );
    assert!(
        html.contains("<td class=\"FAIL\"><a href=\"#r0-1\""),
        "{html}"
    );
    assert!(
        html.contains("<section class=\"detail\" id=\"r0-1\">"),
        "{html}"
    );
}

/// Client cases, 2 points each and 5 for the one the mutant fails,
/// which students see only after publication; the rest after the due
/// date.
const POLICY: &str = r#"cases = ["client."]
default_visibility = "after_due_date"

[weights]
"client." = 2
"client.utf8-split" = 5

[visibility]
"client.utf8-split" = "after_published"
"#;

fn parse(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("results.json"))
        .expect("results.json is JSON")
}

/// Each test's points and status agree, and the top score is the sum of
/// the passed tests' points; the sum of every test's `max_score`.
fn check_scores(doc: &serde_json::Value) -> f64 {
    let tests = doc["tests"].as_array().expect("tests");
    let mut earned = 0.0;
    let mut possible = 0.0;
    for t in tests {
        let (score, max) = (
            t["score"].as_f64().unwrap(),
            t["max_score"].as_f64().unwrap(),
        );
        match t["status"].as_str() {
            Some("passed") => assert_eq!(score, max, "{t}"),
            Some("failed") => assert_eq!(score, 0.0, "{t}"),
            other => panic!("status {other:?} in {t}"),
        }
        earned += score;
        possible += max;
        assert!(t["name"].as_str().is_some_and(|n| n.contains(": ")), "{t}");
        assert_eq!(t["tags"], serde_json::json!(["client"]), "{t}");
    }
    assert_eq!(doc["score"].as_f64(), Some(earned), "{doc}");
    assert_eq!(
        doc["extra_data"]["poetry_harness"]["possible"].as_f64(),
        Some(possible)
    );
    possible
}

#[test]
fn gradescope_results_take_points_and_visibility_from_the_policy() {
    let dir = Dir::new();
    std::fs::write(dir.0.join("policy.toml"), POLICY).unwrap();
    let got = run(
        &dir.0,
        &[
            "run",
            "--policy",
            "policy.toml",
            "--mutant",
            MUTANT,
            "--gradescope",
            "results.json",
            "--json",
            "r.json",
        ],
    );
    assert_eq!(got.status.code(), Some(FAILED), "{got:?}");
    let doc = parse(&dir.path("results.json"));
    let json = parse(&dir.path("r.json"));
    let tests = doc["tests"].as_array().unwrap();
    assert_eq!(tests.len(), json["cases"].as_array().unwrap().len());
    let possible = check_scores(&doc);
    assert_eq!(doc["score"], json["score"]["earned"]);
    assert_eq!(possible, json["score"]["possible"].as_f64().unwrap());
    assert_eq!(doc["visibility"], "after_due_date");
    assert_eq!(doc["stdout_visibility"], "hidden");
    assert!(doc["execution_time"].is_u64(), "{doc}");
    let output = doc["output"].as_str().unwrap();
    assert!(output.contains("score: "), "{output}");
    let (i, failing) = tests
        .iter()
        .enumerate()
        .find(|(_, t)| {
            t["name"]
                .as_str()
                .unwrap()
                .starts_with("client.utf8-split: ")
        })
        .expect("client.utf8-split");
    assert_eq!(failing["status"], "failed");
    assert_eq!(failing["max_score"], 5.0);
    assert_eq!(failing["visibility"], "after_published");
    let reason = json["cases"][i]["reason"].as_str().unwrap();
    let text = failing["output"].as_str().unwrap();
    assert!(text.starts_with(&format!("FAIL: {reason}\n")), "{text}");
    // The explanation the terminal shows, one indentation less.
    assert!(text.contains("\nspec: CLIENT-"), "{text}");
    assert!(text.contains("\nhint: "), "{text}");
    assert!(
        text.contains("\nreproduce: poetry-harness replay client.utf8-split"),
        "{text}"
    );
    for t in tests.iter().filter(|t| t["name"] != failing["name"]) {
        assert_eq!(t["visibility"], "after_due_date", "{t}");
    }
}

#[test]
fn gradescope_results_without_a_policy_weigh_every_case_1_and_show_it() {
    let dir = Dir::new();
    let got = run(
        &dir.0,
        &[
            "run",
            "client.fast-poem",
            "client.utf8-split",
            "client.empty-poem",
            "--mutant",
            MUTANT,
            "--gradescope",
            "results.json",
        ],
    );
    assert_eq!(got.status.code(), Some(FAILED), "{got:?}");
    let doc = parse(&dir.path("results.json"));
    assert_eq!(check_scores(&doc), 3.0);
    assert_eq!(doc["score"], 2.0);
    assert_eq!(doc["visibility"], "visible");
    for t in doc["tests"].as_array().unwrap() {
        assert_eq!(t["max_score"], 1.0, "{t}");
        assert_eq!(t["visibility"], "visible", "{t}");
    }
}

#[test]
fn gradescope_to_an_unwritable_path_is_refused_before_any_case_runs() {
    let dir = Dir::new();
    let got = run(
        &dir.0,
        &[
            "run",
            "client.fast-poem",
            "--gradescope",
            "/nonexistent-dir/results.json",
        ],
    );
    assert_eq!(got.status.code(), Some(USAGE), "{got:?}");
    let err = String::from_utf8_lossy(&got.stderr);
    assert!(
        err.contains("--gradescope '/nonexistent-dir/results.json' cannot be written"),
        "{err}"
    );
    assert!(got.stdout.is_empty(), "a case ran: {got:?}");
}

/// A small results.json, as Gradescope reads it: a pass worth 2, a
/// failure worth 5 and hidden, with the failure's explanation.
#[test]
fn gradescope_results_of_a_pass_and_a_failure() {
    let catalog = Catalog::builtin().unwrap();
    let cases: Vec<_> = ["client.fast-poem", "client.utf8-split"]
        .iter()
        .map(|id| catalog.get(id).unwrap())
        .collect();
    let policy = Policy::parse(
        "p.toml",
        "[weights]\n\"client.\" = 2\n\"client.utf8-split\" = 5\n[visibility]\n\"client.utf8-split\" = \"hidden\"\n",
    )
    .unwrap();
    let opts = EngineOptions {
        profile: Profile::Strict,
        jobs: 1,
        ..EngineOptions::default()
    };
    let results = run_all(&cases, &mutant(MUTANT), &opts, &|_| {});
    // No time in the file: the execution time is given as zero.
    let text = report::gradescope(
        &results,
        MUTANT,
        Profile::Strict,
        &RunState::Complete,
        &policy.scoring(&cases, None),
        Duration::ZERO,
    );
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(check_scores(&doc), 7.0);
    insta::assert_snapshot!(text);
}

/// With several manifests, `--html` writes the matrix of them all, and
/// `--gradescope` (one submission's file) is refused before any case runs.
#[test]
fn several_manifests_get_one_html_matrix_and_no_gradescope_file() {
    let dir = Dir::new();
    // Programs that declare every case unsupported (exit 127): quick.
    for name in ["a", "b"] {
        std::fs::write(
            dir.0.join(format!("{name}.toml")),
            format!("name = \"{name}\"\n[client]\ncommand = \"exit 127\"\n"),
        )
        .unwrap();
    }
    let manifests = ["--manifest", "a.toml", "--manifest", "b.toml"];
    let mut args = vec!["run", "client.fast-poem"];
    args.extend(manifests);
    let refused = run(
        &dir.0,
        &[&args[..], &["--gradescope", "results.json"]].concat(),
    );
    assert_eq!(refused.status.code(), Some(USAGE), "{refused:?}");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("--gradescope"), "{err}");
    assert!(!dir.0.join("results.json").exists());
    let got = run(&dir.0, &[&args[..], &["--html", "m.html"]].concat());
    assert!(got.status.code().is_some(), "{got:?}");
    let html = std::fs::read_to_string(dir.0.join("m.html")).expect("the page");
    assert!(
        html.contains("<h1>poetry-harness: 2 implementations by 1 case</h1>"),
        "{html}"
    );
    assert!(html.contains("<tbody id=\"role-client\">"), "{html}");
}

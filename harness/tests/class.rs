//! A class at scale, through the binary: `run --shard K/N`, `merge` of the
//! shards' JSON reports (and of a class, into a matrix), and `run --repeat`.
//!
//! Every run is in the simulator (deterministic, a fraction of a second),
//! in a throwaway directory with a cleared environment.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// Exit statuses (`cli::Exit`).
const FAILED: i32 = 1;
const USAGE: i32 = 2;

fn harness(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run poetry-harness")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read report")).expect("JSON")
}

/// The case IDs a `--dry-run` prints, one a line before the blank line.
fn dry_run_ids(dir: &Path, args: &[&str]) -> Vec<String> {
    let o = harness(dir, &[&["run", "--dry-run"], args].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// Each case's (ID, verdict, reason): what must survive a merge.
fn verdicts(doc: &Value) -> Vec<(String, String, String)> {
    doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("id"), s("verdict"), s("reason"))
        })
        .collect()
}

#[test]
fn bad_shards_are_usage_errors_that_say_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    for (shard, why) in [
        ("0/3", "has K = 0: shards count from 1"),
        ("4/3", "has K = 4 above N = 3"),
        ("x/y", "has K 'x', not a whole number"),
        ("3", "has no '/'"),
    ] {
        let o = harness(dir.path(), &["run", "--shard", shard]);
        assert_eq!(o.status.code(), Some(USAGE), "{shard}");
        let err = stderr(&o);
        assert!(
            err.contains(&format!("shard '{shard}' {why}; write K/N, e.g. 2/3")),
            "{shard}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn the_shards_of_a_selection_are_disjoint_and_together_are_the_selection() {
    let dir = tempfile::tempdir().unwrap();
    for selection in [&[][..], &["client.", "--exclude", "*utf8*"][..]] {
        let whole = dry_run_ids(dir.path(), selection);
        assert!(whole.len() > 10);
        let mut union = Vec::new();
        for k in 1..=3 {
            let shard = format!("{k}/3");
            let ids = dry_run_ids(dir.path(), &[selection, &["--shard", &shard]].concat());
            // Round-robin: every shard gets about a third, of each role.
            assert!(ids.len() >= whole.len() / 3, "{shard}: {}", ids.len());
            union.extend(ids);
        }
        let distinct: BTreeSet<_> = union.iter().collect();
        assert_eq!(distinct.len(), union.len(), "shards overlap");
        assert_eq!(distinct, whole.iter().collect(), "union of the shards");
    }
    // The slices are the same every time.
    assert_eq!(
        dry_run_ids(dir.path(), &["--shard", "2/5"]),
        dry_run_ids(dir.path(), &["--shard", "2/5"])
    );
}

#[test]
fn merged_shards_hold_the_verdicts_of_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A mutant, so that the verdicts differ from case to case.
    let run = ["run", "client.", "--mutant", "client-reads-once"];
    let whole = harness(d, &[&run[..], &["--json", "whole.json"]].concat());
    assert_eq!(whole.status.code(), Some(FAILED), "{}", stderr(&whole));
    for k in 1..=3 {
        let o = harness(
            d,
            &[
                &run[..],
                &[
                    "--shard",
                    &format!("{k}/3"),
                    "--json",
                    &format!("s{k}.json"),
                ],
            ]
            .concat(),
        );
        assert!(
            o.status.code() == Some(FAILED) || o.status.success(),
            "{}",
            stderr(&o)
        );
        assert_eq!(
            read_json(&d.join(format!("s{k}.json")))["run"]["shard"]["index"],
            k
        );
    }
    // Given in any order.
    let o = harness(
        d,
        &[
            "merge",
            "s3.json",
            "s1.json",
            "s2.json",
            "--json",
            "merged.json",
            "--junit",
            "merged.xml",
            "--markdown",
            "merged.md",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(FAILED),
        "a case failed: {}",
        stderr(&o)
    );
    let (whole, merged) = (
        read_json(&d.join("whole.json")),
        read_json(&d.join("merged.json")),
    );
    assert_eq!(verdicts(&merged), verdicts(&whole));
    for key in [
        "implementation",
        "profile",
        "summary",
        "totals",
        "schema_version",
    ] {
        assert_eq!(merged[key], whole[key], "{key}");
    }
    assert_eq!(merged["run"]["state"], "complete");
    assert_eq!(merged["run"]["selection"], whole["run"]["selection"]);
    let junit = std::fs::read_to_string(d.join("merged.xml")).unwrap();
    let failures = whole["totals"]["failed"].as_u64().unwrap();
    assert!(
        junit.contains(&format!("failures=\"{failures}\"")),
        "{junit}"
    );
    let markdown = std::fs::read_to_string(d.join("merged.md")).unwrap();
    assert!(
        markdown.contains("| `client.byte-by-byte` | FAIL |"),
        "{markdown}"
    );
    assert!(
        stdout(&o).contains(&format!("from 3 report(s): {}", {
            let t = &whole["totals"];
            format!("{} passed, {failures} failed", t["passed"])
        })),
        "{}",
        stdout(&o)
    );

    // A shard missing: partial, and the exit status says so even though
    // the cases present all passed.
    let green = ["run", "server.", "--json"];
    harness(d, &[&green[..], &["g1.json", "--shard", "1/2"]].concat());
    let o = harness(d, &["merge", "g1.json", "--json", "partial.json"]);
    assert_eq!(o.status.code(), Some(FAILED));
    assert!(
        stdout(&o).contains("partial: shard(s) 2/2 missing"),
        "{}",
        stdout(&o)
    );
    let partial = read_json(&d.join("partial.json"));
    assert_eq!(partial["run"]["state"], "partial");
    assert_eq!(partial["run"]["partial"][0], "shard(s) 2/2 missing");
    harness(d, &[&green[..], &["g2.json", "--shard", "2/2"]].concat());
    let o = harness(d, &["merge", "g1.json", "g2.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn merge_refuses_reports_that_do_not_belong_together_naming_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    harness(
        d,
        &["run", "client.", "--shard", "1/2", "--json", "ref.json"],
    );
    harness(
        d,
        &[
            "run",
            "client.",
            "--shard",
            "2/2",
            "--json",
            "mut.json",
            "--mutant",
            "client-serial",
        ],
    );
    harness(
        d,
        &["run", "server.", "--shard", "2/2", "--json", "other.json"],
    );
    harness(
        d,
        &["run", "client.", "--shard", "1/3", "--json", "third.json"],
    );
    harness(
        d,
        &[
            "run",
            "client.",
            "--json",
            "whole.json",
            "--profile",
            "tutorial",
        ],
    );
    std::fs::write(d.join("junk.json"), "<testsuites/>").unwrap();
    std::fs::write(d.join("old.json"), r#"{"schema_version": 0}"#).unwrap();
    for (inputs, want) in [
        (
            &["ref.json", "mut.json"][..],
            "implementation: 'ref.json' has 'reference', 'mut.json' has 'client-serial'",
        ),
        (
            &["ref.json", "other.json"][..],
            "selection: 'ref.json' has ",
        ),
        (
            &["ref.json", "third.json"][..],
            "shard: 'ref.json' has shard 1/2, 'third.json' has shard 1/3",
        ),
        (
            &["ref.json", "whole.json"][..],
            "profile: 'ref.json' has strict, 'whole.json' has tutorial",
        ),
        (
            &["ref.json", "./ref.json"][..],
            "'./ref.json' is given twice",
        ),
        (
            &["junk.json"][..],
            "'junk.json' is not JSON: expected value at line 1 column 1",
        ),
        (
            &["old.json"][..],
            "'old.json': schema_version 0 is not the one this harness reads",
        ),
        (&["missing.json"][..], "cannot read 'missing.json'"),
    ] {
        let o = harness(d, &[&["merge"], inputs, &["--json", "out.json"]].concat());
        assert_eq!(o.status.code(), Some(USAGE), "{inputs:?}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(err.contains(want), "{inputs:?}: want {want}\n got {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!d.join("out.json").exists(), "{inputs:?} wrote a report");
    }
    // A case twice: two unsharded runs that overlap.
    harness(d, &["run", "client.fast-poem", "--json", "a.json"]);
    harness(d, &["run", "client.fast", "--json", "b.json"]);
    let o = harness(d, &["merge", "a.json", "b.json"]);
    assert_eq!(o.status.code(), Some(USAGE));
    assert!(
        stderr(&o).contains("case 'client.fast-poem' is in both 'a.json' and 'b.json'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_interrupted_shard_merges_as_partial() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    harness(
        d,
        &["run", "server.", "--shard", "1/2", "--json", "s1.json"],
    );
    harness(
        d,
        &["run", "server.", "--shard", "2/2", "--json", "s2.json"],
    );
    // What the run's interrupt writes (report::RunState::Interrupted):
    // its unfinished cases marked INTERRUPTED.
    let mut doc = read_json(&d.join("s2.json"));
    doc["run"]["state"] = "interrupted".into();
    doc["run"]["signal"] = "SIGTERM".into();
    doc["cases"][1]["verdict"] = "INTERRUPTED".into();
    std::fs::write(d.join("s2.json"), doc.to_string()).unwrap();
    let o = harness(d, &["merge", "s1.json", "s2.json", "--json", "m.json"]);
    assert_eq!(o.status.code(), Some(FAILED));
    assert!(
        stdout(&o).contains("1 interrupted")
            && stdout(&o).contains("partial: 's2.json' was interrupted by SIGTERM"),
        "{}",
        stdout(&o)
    );
    let m = read_json(&d.join("m.json"));
    assert_eq!(m["run"]["state"], "partial");
    assert_eq!(m["totals"]["interrupted"], 1);
}

#[test]
fn merge_makes_a_class_matrix_with_a_column_per_implementation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    harness(d, &["run", "client.", "--json", "ref.json"]);
    harness(
        d,
        &[
            "run",
            "client.",
            "--json",
            "mut.json",
            "--mutant",
            "client-serial",
        ],
    );
    let o = harness(
        d,
        &["merge", "mut.json", "ref.json", "--matrix", "class.md"],
    );
    assert_eq!(
        o.status.code(),
        Some(FAILED),
        "a mutant fails: {}",
        stderr(&o)
    );
    let matrix = std::fs::read_to_string(d.join("class.md")).unwrap();
    assert!(
        matrix.starts_with("| case | client-serial (strict) | reference (strict) |\n|---|---|---|\n| `client.fast-poem` | PASS | PASS |\n"),
        "{matrix}"
    );
    assert!(
        matrix.contains("| `client.three-slow-at-once` | NON-STRICT | PASS |"),
        "{matrix}"
    );
    // One implementation's reports only for --json.
    let o = harness(
        d,
        &[
            "merge", "mut.json", "ref.json", "--matrix", "c.md", "--json", "x.json",
        ],
    );
    assert_eq!(o.status.code(), Some(USAGE));
    assert!(
        stderr(&o).contains("take the reports of one implementation"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn repeat_must_be_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let o = harness(dir.path(), &["run", "--repeat", "0"]);
    assert_eq!(o.status.code(), Some(USAGE));
    assert!(
        stderr(&o).contains("--repeat '0' must be at least 1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn repeats_in_the_simulator_agree_and_report_a_pass_rate() {
    let dir = tempfile::tempdir().unwrap();
    let o = harness(
        dir.path(),
        &[
            "run",
            "client.",
            "--mutant",
            "client-reads-once",
            "--repeat",
            "3",
            "--json",
            "r.json",
        ],
    );
    assert_eq!(o.status.code(), Some(FAILED));
    let doc = read_json(&dir.path().join("r.json"));
    assert_eq!(doc["summary"]["FLAKY"], 0);
    let cases = doc["cases"].as_array().unwrap();
    let rate = |c: &Value| c["repeats"]["pass_rate"].as_f64();
    assert!(
        cases.iter().any(|c| rate(c) == Some(0.0)),
        "a failure every run"
    );
    assert!(
        cases.iter().any(|c| rate(c) == Some(1.0)),
        "a pass every run"
    );
    for c in cases.iter().filter(|c| c["verdict"] != "UNSUPPORTED") {
        assert_eq!(c["repeats"]["runs"], 3, "{c}");
        assert!(matches!(rate(c), Some(r) if r == 0.0 || r == 1.0), "{c}");
    }
}

/// A client that works on every other invocation
/// (`fixtures/flaky/alternating-client.py`), run live (on 127.0.0.1; the
/// harness starts and ends it) four times: two passes, two failures.
#[test]
fn a_program_that_fails_every_other_run_is_flaky_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/flaky/alternating-client.py");
    let cmd = format!(
        "python3 {} {} {{addrs}}",
        fixture.display(),
        d.join("count").display()
    );
    let o = harness(
        d,
        &[
            "run",
            "client.fast-poem",
            "--role",
            "client",
            "--cmd",
            &cmd,
            "--repeat",
            "4",
            "--json",
            "r.json",
            "--junit",
            "r.xml",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(FAILED),
        "{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("FLAKY        passed 2 of 4 runs (50%); run 2 FAIL: "),
        "{}",
        stdout(&o)
    );
    assert_eq!(std::fs::read_to_string(d.join("count")).unwrap(), "4");
    let doc = read_json(&d.join("r.json"));
    let case = &doc["cases"][0];
    assert_eq!(case["verdict"], "FLAKY");
    assert_eq!(
        case["repeats"],
        serde_json::json!({ "runs": 4, "passed": 2, "pass_rate": 0.5 })
    );
    assert_eq!(doc["summary"]["FLAKY"], 1);
    assert_eq!(doc["totals"]["failed"], 1);
    // The transcript shown is the failing run's.
    assert!(
        case["transcript"]
            .as_str()
            .unwrap()
            .contains("failing on purpose"),
        "{case}"
    );
    let junit = std::fs::read_to_string(d.join("r.xml")).unwrap();
    assert!(
        junit.contains("<failure message=\"FLAKY: passed 2 of 4 runs"),
        "{junit}"
    );
    // And a merge keeps it.
    let o = harness(d, &["merge", "r.json"]);
    assert_eq!(o.status.code(), Some(FAILED));
    assert!(
        stdout(&o).contains("client.fast-poem  FLAKY"),
        "{}",
        stdout(&o)
    );
}

/// Two manifests run side by side (`--jobs 2`: one case of each at a
/// time), live on 127.0.0.1: the matrix's columns keep the order the
/// manifests were given in, whichever finished first.
#[test]
fn manifests_run_side_by_side_keep_their_column_order() {
    use poetry_harness::backend::live::reference_programs::ReferencePrograms;
    use poetry_harness::case::Role;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let programs = ReferencePrograms::new(BIN).unwrap();
    let manifest = |name: &str, mutant: Option<&str>| {
        let command = programs.command(Role::Client, mutant);
        let text = format!(
            "name = \"{name}\"\n[client]\ncommand = {}\n",
            toml_string(&command)
        );
        std::fs::write(d.join(format!("{name}.toml")), text).unwrap();
    };
    manifest("zed", Some("client-strips-bom"));
    manifest("amy", None);
    let cases = ["client.fast-poem", "client.raw-bytes-unchanged"];
    for order in [["zed", "amy"], ["amy", "zed"]] {
        let mut args = vec!["run", cases[0], cases[1], "--jobs", "2", "--matrix", "m.md"];
        let files: Vec<String> = order.iter().map(|n| format!("{n}.toml")).collect();
        for f in &files {
            args.extend(["--manifest", f.as_str()]);
        }
        let o = harness(d, &args);
        assert_eq!(
            o.status.code(),
            Some(FAILED),
            "{}\n{}",
            stdout(&o),
            stderr(&o)
        );
        let matrix = std::fs::read_to_string(d.join("m.md")).unwrap();
        let header = format!("| case | {} (strict) | {} (strict) |", order[0], order[1]);
        assert!(matrix.starts_with(&header), "{matrix}");
        let row = matrix
            .lines()
            .find(|l| l.contains("client.raw-bytes-unchanged"))
            .unwrap();
        let want = match order[0] {
            "zed" => "| FAIL | PASS |",
            _ => "| PASS | FAIL |",
        };
        assert!(row.ends_with(want), "{matrix}");
    }
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// What `ci/class-matrix.yml` does: each student's run in shards, named
/// by `--name`, and one `merge --matrix` over every report.
#[test]
fn a_class_of_sharded_runs_named_by_student_merges_into_one_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (student, mutant) in [("bob", Some("client-strips-bom")), ("alice", None)] {
        for k in 1..=2 {
            let shard = format!("{k}/2");
            let json = format!("{student}-{k}.json");
            let mut args = vec!["run", "client.", "--name", student, "--shard", &shard];
            args.extend(["--json", &json]);
            if let Some(m) = mutant {
                args.extend(["--mutant", m]);
            }
            harness(d, &args);
        }
    }
    let o = harness(
        d,
        &[
            "merge",
            "bob-2.json",
            "alice-1.json",
            "bob-1.json",
            "alice-2.json",
            "--matrix",
            "class.md",
        ],
    );
    assert_eq!(o.status.code(), Some(FAILED), "bob fails: {}", stderr(&o));
    let matrix = std::fs::read_to_string(d.join("class.md")).unwrap();
    assert!(
        matrix.starts_with("| case | bob (strict) | alice (strict) |"),
        "{matrix}"
    );
    assert!(
        matrix.contains("| `client.raw-bytes-unchanged` | FAIL | PASS |"),
        "{matrix}"
    );
    assert!(!matrix.contains("partial"), "{matrix}");
}

/// The `poetry-harness` commands of `ci/class-matrix.yml` (backslash
/// continuations joined, `${{ ... }}` and `$SHARDS` replaced by 1, other
/// `$VARS` by a word,
/// quotes dropped), each parsed as the binary parses it.
#[test]
fn the_class_workflow_runs_commands_the_cli_accepts() {
    use clap::Parser;
    use poetry_harness::cli::Cli;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/class-matrix.yml");
    let text = std::fs::read_to_string(path).unwrap().replace("\\\n", " ");
    let mut seen = Vec::new();
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("poetry-harness ") else {
            continue;
        };
        let mut words = vec!["poetry-harness".to_string()];
        let mut cleaned = rest.replace('"', "").replace("$SHARDS", "1");
        while let Some(start) = cleaned.find("${{") {
            let end = cleaned[start..]
                .find("}}")
                .map_or(cleaned.len(), |e| start + e + 2);
            cleaned.replace_range(start..end, "1");
        }
        for w in cleaned.split_whitespace() {
            // `$RUNNER_TEMP/report.json` and the like: a path.
            words.push(if w.contains('$') {
                w.replace('$', "x")
            } else {
                w.to_string()
            });
        }
        if let Err(e) = Cli::try_parse_from(&words) {
            panic!("the workflow's command does not parse: {e}\n{words:?}");
        }
        seen.push(words[1].clone());
    }
    assert_eq!(seen, ["run", "merge"]);
}

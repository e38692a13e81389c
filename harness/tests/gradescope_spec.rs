//! `run --gradescope results.json` against Gradescope's own specification
//! ("Autograder Specifications", "Output format":
//! <https://gradescope-autograders.readthedocs.io/en/latest/specs/#output-format>,
//! source `docs/specs.md` of github.com/gradescope/autograder_samples):
//! every field the file holds is one the spec names, of the type and with
//! a value the spec allows, at the top level and in every test; the
//! statuses agree with the scores as Gradescope reads them; the top-level
//! output is escaped for its `simple_format`. Checked on files the binary
//! writes, for every visibility a policy can give and for a case not
//! counted.

use std::path::Path;
use std::process::Command;

use poetry_harness::report::gradescope::OUTPUT_FORMATS;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// The spec's visibility values (tests, the submission, stdout).
const VISIBILITIES: [&str; 4] = ["hidden", "after_due_date", "after_published", "visible"];

/// The top-level keys of the spec's "Output format".
const TOP: [&str; 11] = [
    "score",
    "execution_time",
    "output",
    "output_format",
    "test_output_format",
    "test_name_format",
    "visibility",
    "stdout_visibility",
    "extra_data",
    "tests",
    "leaderboard",
];

/// The keys of one test in the spec's "Output format".
const TEST: [&str; 11] = [
    "score",
    "max_score",
    "status",
    "name",
    "name_format",
    "number",
    "output",
    "output_format",
    "tags",
    "visibility",
    "extra_data",
];

/// Every way `doc` departs from the spec (none: conforms).
fn departures(doc: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let Some(top) = doc.as_object() else {
        return vec![format!("not an object: {doc}")];
    };
    for key in top.keys() {
        if !TOP.contains(&key.as_str()) {
            bad.push(format!("top-level key '{key}' is not in the spec"));
        }
    }
    let format_ok = |v: &Value| v.as_str().is_some_and(|f| OUTPUT_FORMATS.contains(&f));
    let visibility_ok = |v: &Value| v.as_str().is_some_and(|f| VISIBILITIES.contains(&f));
    for (key, v) in top {
        let ok = match key.as_str() {
            "score" => v.is_number(),
            "execution_time" => v.is_u64(),
            "output" => v.is_string(),
            "output_format" | "test_output_format" | "test_name_format" => format_ok(v),
            "visibility" | "stdout_visibility" => visibility_ok(v),
            "extra_data" => v.is_object(),
            "tests" | "leaderboard" => v.is_array(),
            _ => true,
        };
        if !ok {
            bad.push(format!(
                "top-level '{key}' has a value the spec does not allow: {v}"
            ));
        }
    }
    // "optional, but required if not on each test case": here both.
    if !top.contains_key("score") {
        bad.push("no top-level score".into());
    }
    let tests = doc["tests"].as_array().cloned().unwrap_or_default();
    let mut sum = 0.0;
    for (i, t) in tests.iter().enumerate() {
        let Some(fields) = t.as_object() else {
            bad.push(format!("test {i} is not an object"));
            continue;
        };
        for (key, v) in fields {
            if !TEST.contains(&key.as_str()) {
                bad.push(format!("test {i}: key '{key}' is not in the spec"));
                continue;
            }
            let ok = match key.as_str() {
                "score" | "max_score" => v.is_number(),
                "status" => matches!(v.as_str(), Some("passed" | "failed")),
                "name" | "output" => v.as_str().is_some_and(|s| !s.contains('\r')),
                "number" => v.is_string(),
                "name_format" | "output_format" => format_ok(v),
                "tags" => v
                    .as_array()
                    .is_some_and(|tags| tags.iter().all(Value::is_string)),
                "visibility" => visibility_ok(v),
                _ => v.is_object(), // extra_data
            };
            if !ok {
                bad.push(format!(
                    "test {i}: '{key}' has a value the spec does not allow: {v}"
                ));
            }
        }
        // "score: optional, but required if not on top level": here always,
        // with max_score, so that the statuses below mean what they say.
        let (Some(score), Some(max)) = (t["score"].as_f64(), t["max_score"].as_f64()) else {
            bad.push(format!("test {i}: no score and max_score: {t}"));
            continue;
        };
        sum += score;
        // Without a status, Gradescope shows full marks as passing.
        let shown_passing = score >= max;
        match t["status"].as_str() {
            Some("passed") if score != max => {
                bad.push(format!("test {i}: passed with {score} of {max}"))
            }
            Some("failed") if shown_passing && max > 0.0 => {
                bad.push(format!("test {i}: failed with all {max} points"))
            }
            None if !t["name"].as_str().unwrap_or("").ends_with(" (not counted)") => bad.push(
                format!("test {i}: no status, and not a case the policy leaves uncounted"),
            ),
            _ => {}
        }
    }
    if let Some(score) = doc["score"].as_f64() {
        if (score - sum).abs() > 1e-9 {
            bad.push(format!(
                "top-level score {score} is not the tests' sum {sum}"
            ));
        }
    }
    bad
}

/// Runs the binary in `dir` and reads the results.json it wrote.
fn results(dir: &Path, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(args)
        .args(["--gradescope", "results.json"])
        .current_dir(dir)
        .output()
        .expect("the binary runs");
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.join("results.json")).expect("results.json");
    serde_json::from_str(&text).expect("results.json is JSON")
}

#[test]
fn results_json_has_only_fields_types_and_values_the_spec_allows() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    // Every visibility, and weights.
    std::fs::write(
        dir.path().join("policy.toml"),
        "cases = [\"client.\"]\n\
         default_visibility = \"after_due_date\"\n\
         [weights]\n\"client.\" = 2\n\
         [visibility]\n\
         \"client.utf8-split\" = \"hidden\"\n\
         \"client.fast-poem\" = \"visible\"\n\
         \"client.empty-poem\" = \"after_published\"\n",
    )
    .unwrap();
    let doc = results(
        dir.path(),
        &[
            "run",
            "--mutant",
            "client-decodes-per-chunk",
            "--policy",
            "policy.toml",
        ],
    );
    let bad = departures(&doc);
    assert!(bad.is_empty(), "{}\n{doc:#}", bad.join("\n"));
    let tests = doc["tests"].as_array().unwrap();
    let visibility = |id: &str| {
        tests
            .iter()
            .find(|t| t["extra_data"]["id"] == id)
            .map(|t| t["visibility"].clone())
            .unwrap_or_else(|| panic!("no test {id}"))
    };
    assert_eq!(visibility("client.utf8-split"), "hidden");
    assert_eq!(visibility("client.fast-poem"), "visible");
    assert_eq!(visibility("client.empty-poem"), "after_published");
    assert_eq!(visibility("client.random-chunks"), "after_due_date");
    assert_eq!(doc["visibility"], "after_due_date");
    assert_eq!(doc["stdout_visibility"], "hidden");
    assert_eq!(doc["output_format"], "simple_format");
    assert_eq!(doc["test_output_format"], "text");
    assert_eq!(doc["test_name_format"], "text");
    assert!(tests.iter().any(|t| t["status"] == "failed"));
    assert!(tests.iter().any(|t| t["status"] == "passed"));
}

#[test]
fn a_case_not_counted_is_worth_0_of_0_without_a_status_and_says_so() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(
        dir.path().join("policy.toml"),
        "cases = [\"client.stall-forever\"]\nallowed_lacks = [\"timeouts\"]\n",
    )
    .unwrap();
    // A program that lacks timeouts, as its manifest declares: the
    // timeout cases are UNSUPPORTED and excused.
    std::fs::write(
        dir.path().join("m.toml"),
        "name = \"no-timers\"\nlacks = [\"timeouts\"]\n[client]\ncommand = \"exit 127\"\n",
    )
    .unwrap();
    let doc = results(
        dir.path(),
        &["run", "--manifest", "m.toml", "--policy", "policy.toml"],
    );
    let bad = departures(&doc);
    assert!(bad.is_empty(), "{}\n{doc:#}", bad.join("\n"));
    let t = &doc["tests"][0];
    assert_eq!(t["status"], Value::Null, "{t}");
    assert_eq!(t["score"], 0.0);
    assert_eq!(t["max_score"], 0.0);
    assert!(
        t["name"].as_str().unwrap().ends_with(" (not counted)"),
        "{t}"
    );
    assert!(
        t["output"].as_str().unwrap().contains("not counted: "),
        "{t}"
    );
    assert_eq!(t["extra_data"]["verdict"], "UNSUPPORTED");
}

#[test]
fn the_top_level_output_is_escaped_for_simple_format() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let doc = results(
        dir.path(),
        &["run", "client.fast-poem", "--name", "<b>me & you</b>"],
    );
    let bad = departures(&doc);
    assert!(bad.is_empty(), "{}\n{doc:#}", bad.join("\n"));
    let output = doc["output"].as_str().unwrap();
    assert!(
        output.contains("against &lt;b&gt;me &amp; you&lt;/b&gt; ("),
        "{output}"
    );
    assert!(!output.contains('<'), "{output}");
    // extra_data keeps the name as given.
    assert_eq!(
        doc["extra_data"]["poetry_harness"]["implementation"],
        "<b>me & you</b>"
    );
}

#[test]
fn the_checker_catches_what_the_spec_does_not_allow() {
    // The checker itself: each of these departs from the spec.
    let cases = [
        serde_json::json!({"score": 1, "tests": [{"score": 1, "max_score": 1, "status": "ok"}]}),
        serde_json::json!({"score": 1, "visibility": "public", "tests": []}),
        serde_json::json!({"score": 1, "execution_time": 1.5, "tests": []}),
        serde_json::json!({"score": 0, "tests": [{"score": 0, "max_score": 1, "weight": 1, "status": "failed"}]}),
        serde_json::json!({"score": 0, "tests": [{"score": 0, "max_score": 1, "tags": "client", "status": "failed"}]}),
        serde_json::json!({"score": 0, "output_format": "markdown", "tests": []}),
        serde_json::json!({"score": 2, "tests": [{"score": 1, "max_score": 1, "status": "passed"}]}),
        serde_json::json!({"score": 0, "tests": [{"score": 0, "max_score": 1, "status": "passed"}]}),
    ];
    for doc in cases {
        assert!(!departures(&doc).is_empty(), "accepted: {doc}");
    }
}

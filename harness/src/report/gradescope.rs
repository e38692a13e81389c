//! Gradescope's `results.json` (`run --gradescope FILE`): the
//! submission's score, and one test per case with its points, status,
//! visibility and, for a failure, the explanation the terminal shows.
//!
//! The format is Gradescope's "Autograder Specifications", section
//! "Output format"
//! (<https://gradescope-autograders.readthedocs.io/en/latest/specs/#output-format>;
//! its source is `docs/specs.md` of `github.com/gradescope/autograder_samples`,
//! read as of its 2023-05 version). What this file uses of it, field by field:
//!
//! - top level: `score` (a number; "overrides total of tests if
//!   specified": here it is their sum), `execution_time` (whole seconds),
//!   `output` with `output_format`, `test_output_format` and
//!   `test_name_format`, `visibility`, `stdout_visibility`, `extra_data`
//!   (an object Gradescope stores and shows nobody) and `tests`. No
//!   `leaderboard`.
//! - per test: `name`, `status`, `score`, `max_score`, `output`, `tags`
//!   (strings), `visibility` and `extra_data`. No `number`: Gradescope
//!   numbers tests in the order of the array, which is the catalog's.
//! - visibility, of a test, of the whole submission and of stdout: one of
//!   `hidden`, `after_due_date`, `after_published` and `visible` (the
//!   spec's default) ([`Visibility`]).
//! - status: `passed` or `failed`. Without one, Gradescope shows a test
//!   as passing when its `score` is its `max_score`, failing otherwise.
//! - formats: `text` (the default for a test's output and name: nothing
//!   rendered), `html`, `simple_format` (the default for the top-level
//!   output: HTML, with `\n` as a line break), `md` and `ansi`. A test's
//!   output and name are `text`, said explicitly; the top-level output is
//!   `simple_format`, with `<`, `>` and `&` escaped, so that an
//!   implementation's name is shown as written and never read as HTML.
//!   Line ends are `\n`, as the spec asks.
//!
//! Points, the cases excused and each case's visibility come from the
//! grading policy ([`Scoring`]); without one, every case is worth 1 and
//! visible. A case not counted (UNSUPPORTED by something the student is
//! excused from) is listed worth 0 of 0 with no status. Gradescope has no
//! status but passed and failed, and shows a test with all its (zero)
//! points as passing, so its name ends with `(not counted)` and its
//! output says why.

use std::time::Duration;

use serde::Serialize;

use super::{case_details, RunState, Summary};
use crate::engine::{CaseResult, Status};
use crate::policy::{CaseScore, Scoring, Visibility};
use crate::transcript::sanitise;
use crate::verdict::{Kind, Profile};

/// The output formats of the spec's "Output String Formatting".
pub const OUTPUT_FORMATS: [&str; 5] = ["text", "html", "simple_format", "md", "ansi"];

/// The whole file.
#[derive(Debug, Serialize)]
struct Results {
    /// Points earned: the sum of the tests' `score`.
    score: f64,
    /// Seconds the run took.
    execution_time: u64,
    /// What the submission page shows above the tests, HTML-escaped.
    output: String,
    /// `simple_format`: the spec's default for the top-level output,
    /// written out (line breaks kept, the escaped text shown as is).
    output_format: &'static str,
    /// `text`: the tests' outputs are shown as written.
    test_output_format: &'static str,
    /// `text`: the tests' names are shown as written.
    test_name_format: &'static str,
    /// Who sees the submission's score: the policy's default visibility.
    visibility: Visibility,
    /// Who sees the harness's stdout: nobody but the teacher, as it
    /// explains every case, hidden ones included.
    stdout_visibility: Visibility,
    /// Kept by Gradescope, shown to nobody: the run's facts.
    extra_data: serde_json::Value,
    tests: Vec<Test>,
}

/// One case.
#[derive(Debug, Serialize)]
struct Test {
    /// `ID: title`.
    name: String,
    /// `passed` or `failed`; none for a case not counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    score: f64,
    max_score: f64,
    /// The verdict and its reason; for a failure, the clauses, checks,
    /// hints, the command that reproduces it and the folded transcript.
    output: String,
    /// The case's role.
    tags: Vec<&'static str>,
    visibility: Visibility,
    /// Stored by Gradescope, shown to nobody: the case's ID and the
    /// verdict's label (`PASS`, `FAIL`, ...).
    extra_data: serde_json::Value,
}

/// `text` with `&`, `<` and `>` escaped, for an `html` or
/// `simple_format` output.
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The text of one test's `output`: the verdict line, then what the
/// terminal shows under it, one level of indentation less.
fn test_output(r: &CaseResult, profile: Profile, counted: &CaseScore) -> String {
    let mut out = format!("{}: {}\n", r.label(), sanitise(&r.verdict.reason));
    match counted {
        CaseScore::NotCounted => out.push_str(
            "not counted: the grading policy excuses this case (an allowed lack, the \
             tutorial profile, or a case only the simulator can run)\n",
        ),
        CaseScore::Lost(_) if r.status == Status::Judged && r.verdict.kind == Kind::Unsupported => {
            out.push_str("scores 0: the grading policy does not excuse this case\n");
        }
        _ => {}
    }
    let details = case_details(r, profile, false);
    if !details.is_empty() {
        out.push('\n');
        for line in details.lines() {
            out.push_str(line.strip_prefix("    ").unwrap_or(line));
            out.push('\n');
        }
    }
    out
}

/// Gradescope's `results.json` for `results` of `impl_name`, judged
/// under `profile` and scored by `scoring`; `state` says how far the run
/// got (an interrupted run's unfinished cases score 0), `elapsed` how
/// long it took.
pub fn gradescope(
    results: &[CaseResult],
    impl_name: &str,
    profile: Profile,
    state: &RunState,
    scoring: &Scoring,
    elapsed: Duration,
) -> String {
    let tests: Vec<Test> = results
        .iter()
        .map(|r| {
            let counted = scoring.case_score(r, profile);
            let (status, score, max_score) = match counted {
                CaseScore::NotCounted => (None, 0.0, 0.0),
                CaseScore::Earned(p) => (Some("passed"), p, p),
                CaseScore::Lost(p) => (Some("failed"), 0.0, p),
            };
            let not_counted = match counted {
                CaseScore::NotCounted => " (not counted)",
                _ => "",
            };
            Test {
                name: format!("{}: {}{not_counted}", r.case.id, sanitise(&r.case.title)),
                status,
                score,
                max_score,
                output: test_output(r, profile, &counted),
                tags: vec![r.case.role.name()],
                visibility: scoring.visibility_of(&r.case.id),
                extra_data: serde_json::json!({ "id": r.case.id, "verdict": r.label() }),
            }
        })
        .collect();
    let score = scoring.score(results, profile);
    let mut output = format!(
        "{} case(s) against {} ({profile} profile): {}\n{score}\n",
        results.len(),
        sanitise(impl_name),
        Summary::of(results, profile)
    );
    let mut run = match state {
        RunState::Complete => serde_json::json!({ "state": "complete" }),
        RunState::Running { of } => {
            output.push_str(&format!(
                "the run is still going: {} of {of} case(s) so far\n",
                results.len()
            ));
            serde_json::json!({ "state": "running", "cases": of })
        }
        RunState::Interrupted(signal) => {
            let finished = results
                .iter()
                .filter(|r| r.status != Status::Interrupted)
                .count();
            output.push_str(&format!(
                "interrupted by {signal}: {finished} of {} case(s) finished; the others score 0\n",
                results.len()
            ));
            serde_json::json!({ "state": "interrupted", "signal": signal })
        }
    };
    run["implementation"] = sanitise(impl_name).into();
    run["profile"] = profile.to_string().into();
    run["possible"] = score.possible.into();
    run["not_counted"] = score.not_counted.into();
    let doc = Results {
        score: score.earned,
        execution_time: elapsed.as_secs_f64().round() as u64,
        output: escape_html(&output),
        output_format: "simple_format",
        test_output_format: "text",
        test_name_format: "text",
        visibility: scoring.default_visibility,
        stdout_visibility: Visibility::Hidden,
        extra_data: serde_json::json!({ "poetry_harness": run }),
        tests,
    };
    serde_json::to_string_pretty(&doc).expect("results.json serialises")
}

//! Grading policies through the real binary: a graded run's score, the
//! refusals that keep a manifest or a flag from relaxing grading, and a
//! manifest's `env` list reaching the programs (and nothing else).
//!
//! Every command runs with PATH and HOME only, bounded by [`LIMIT`], on a
//! handful of cases so the file stays quick.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use poetry_harness::catalog::Catalog;
use poetry_harness::policy::Policy;
use rstest::rstest;

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// A command still running after this has hung (and is killed).
const LIMIT: Duration = Duration::from_secs(60);

/// Exit status for bad usage and harness errors.
const USAGE: i32 = 2;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A throwaway directory; removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "poetry-harness-policy-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the directory");
        Dir(dir)
    }

    /// Writes `text` to `name` here; its path, as a string.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a fixture");
        path.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary in `cwd` with PATH, HOME and `env` only, within [`LIMIT`].
fn run(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn poetry-harness");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("poetry-harness {args:?} still running after {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        code: status.code(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Three cases the asyncio programs pass, one their transformation server
/// is excused from (it lacks timeouts, which the policy allows), and the
/// proxy role they leave out.
const GRADING: &str = r#"profile = "strict"
allowed_lacks = ["timeouts"]
cases = ["client.fast-poem", "client.empty-poem", "xserver.shout-loreley",
         "xserver.silent-client-timed-out", "proxy.first-request-fetches"]

[weights]
"client." = 2
"xserver.shout-loreley" = 3
"proxy." = 4
"#;

#[test]
fn a_graded_run_reports_the_score_in_the_table_and_the_json_report() {
    let dir = Dir::new();
    let policy = dir.file("policy.toml", GRADING);
    let json = dir.0.join("report.json").display().to_string();
    let gradescope = dir.0.join("results.json").display().to_string();
    let got = run(
        &repo(),
        &[
            "run",
            "--policy",
            &policy,
            "--manifest",
            "fixtures/python/asyncio.toml",
            "--json",
            &json,
            "--gradescope",
            &gradescope,
        ],
        &[],
    );
    assert_eq!(got.code, Some(0), "{}\n{}", got.stdout, got.stderr);
    for line in [
        "client.fast-poem ",
        "client.empty-poem ",
        "xserver.shout-loreley ",
    ] {
        assert!(
            got.stdout
                .lines()
                .any(|l| l.starts_with(line) && l.contains("PASS")),
            "{line} did not pass:\n{}",
            got.stdout
        );
    }
    // 2 + 2 + 3 earned; the proxy's 4 possible but not earned (the role
    // is left out); the excused timeout case counted out.
    assert!(
        got.stdout.contains(
            "score: 7 of 11 points (63.6%); 1 case(s) not counted (an allowed lack, the tutorial profile, or simulator only)"
        ),
        "{}",
        got.stdout
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report"))
            .expect("JSON");
    assert_eq!(doc["score"]["earned"], 7.0);
    assert_eq!(doc["score"]["possible"], 11.0);
    assert_eq!(doc["score"]["not_counted"], 1);
    assert_eq!(doc["profile"], "strict");
    assert_eq!(doc["cases"].as_array().map(Vec::len), Some(5));
    // Gradescope's file scores the same: the excused case worth 0 and
    // neither passed nor failed, the left-out role's case failed.
    let gs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&gradescope).expect("the Gradescope results"),
    )
    .expect("JSON");
    assert_eq!(gs["score"], 7.0);
    let test = |id: &str| {
        gs["tests"]
            .as_array()
            .and_then(|ts| {
                ts.iter()
                    .find(|t| t["name"].as_str().is_some_and(|n| n.starts_with(id)))
            })
            .unwrap_or_else(|| panic!("no {id} in {gs}"))
            .clone()
    };
    let excused = test("xserver.silent-client-timed-out: ");
    assert_eq!(excused["max_score"], 0.0, "{excused}");
    assert!(excused.get("status").is_none(), "{excused}");
    assert!(
        excused["output"]
            .as_str()
            .is_some_and(|o| o.contains("not counted: ")),
        "{excused}"
    );
    let left_out = test("proxy.first-request-fetches: ");
    assert_eq!(left_out["status"], "failed", "{left_out}");
    assert_eq!(left_out["max_score"], 4.0, "{left_out}");
    assert_eq!(test("xserver.shout-loreley: ")["score"], 3.0);
}

#[test]
fn a_run_without_a_policy_reports_no_score() {
    let dir = Dir::new();
    let json = dir.0.join("report.json").display().to_string();
    let got = run(&repo(), &["run", "client.empty-poem", "--json", &json], &[]);
    assert_eq!(got.code, Some(0), "{}\n{}", got.stdout, got.stderr);
    assert!(!got.stdout.contains("score:"), "{}", got.stdout);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report"))
            .expect("JSON");
    assert!(doc.get("score").is_none(), "{doc}");
}

const CLIENT: &str = "[client]\ncommand = \"exit 127\"\n";

/// What cannot relax grading, and what a policy file gets wrong: one
/// error line naming the place, exit 2, before any case runs.
#[rstest]
#[case::manifest_profile(
    "profile = \"strict\"\n",
    "name = \"a\"\nprofile = \"tutorial\"\n",
    &[],
    "m.toml:2: profile: the grading policy (",
)]
#[case::manifest_lack_not_allowed(
    "allowed_lacks = [\"extra-transforms\"]\n",
    "name = \"a\"\n\nlacks = [\"timeouts\"]\n",
    &[],
    "m.toml:3: lacks: the grading policy (",
)]
#[case::manifest_time_scale(
    "time_scale = 0.1\n",
    "name = \"a\"\ntime_scale = 1\n",
    &[],
    "m.toml:2: time_scale: the grading policy (",
)]
#[case::manifest_env_not_allowed(
    "allowed_env = [\"JAVA_OPTS\"]\n",
    "name = \"a\"\nenv = [\"GITHUB_TOKEN\"]\n",
    &[],
    "m.toml:2: env: the grading policy (",
)]
#[case::cli_profile("", "name = \"a\"\n", &["--profile", "tutorial"], "--profile 'tutorial': the grading policy")]
#[case::cli_time_scale("", "name = \"a\"\n", &["--time-scale", "1"], "--time-scale '1': the grading policy")]
#[case::cli_lacks("", "name = \"a\"\n", &["--lacks", "timeouts"], "--lacks: with a grading policy")]
#[case::cli_cases("", "name = \"a\"\n", &["client."], "case arguments (client.): the grading policy")]
#[case::policy_unknown_field("profile = \"strict\"\nweight = 1\n", "name = \"a\"\n", &[], "policy.toml:2: unknown field `weight`")]
#[case::policy_prefix_matches_nothing("cases = [\"client.\",\n  \"clinet.\"]\n", "name = \"a\"\n", &[], "policy.toml:2: cases: 'clinet.' matches no case")]
#[case::policy_visibility("default_visibility = \"secret\"\n", "name = \"a\"\n", &[], "policy.toml:1: default_visibility: 'secret' is not a visibility")]
#[case::policy_weight_nan("[weights]\n\"client.\" = nan\n", "name = \"a\"\n", &[], "policy.toml:2: weights: 'NaN' must be at least 0")]
fn what_would_relax_grading_is_refused_naming_the_place(
    #[case] policy: &str,
    #[case] manifest: &str,
    #[case] flags: &[&str],
    #[case] says: &str,
) {
    let dir = Dir::new();
    let p = dir.file("policy.toml", policy);
    let m = dir.file("m.toml", &format!("{manifest}{CLIENT}"));
    let mut args = vec!["run", "--policy", &p, "--manifest", &m];
    args.extend(flags);
    let got = run(&dir.0, &args, &[]);
    assert_eq!(got.code, Some(USAGE), "{}\n{}", got.stdout, got.stderr);
    let lines: Vec<&str> = got.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", got.stderr);
    assert!(
        lines[0].contains(says),
        "wanted {says:?} in:\n{}",
        got.stderr
    );
    assert!(got.stdout.is_empty(), "a case ran:\n{}", got.stdout);
}

#[test]
fn the_variables_a_manifest_lists_reach_the_program_and_no_others() {
    let dir = Dir::new();
    let seen = dir.0.join("seen");
    std::fs::create_dir(&seen).unwrap();
    // The client records its environment, once per start (probe and case).
    let manifest = dir.file(
        "m.toml",
        &format!(
            "name = \"env\"\nenv = [\"POETRY_TEST_LISTED\"]\n[client]\ncommand = \"env > {}/$POETRY_CASE.env\"\nenv = [\"POETRY_TEST_ROLE\"]\n",
            seen.display()
        ),
    );
    let got = run(
        &dir.0,
        &["run", "client.empty-poem", "--manifest", &manifest],
        &[
            ("POETRY_TEST_LISTED", "listed-value"),
            ("POETRY_TEST_ROLE", "role-value"),
            ("POETRY_TEST_UNLISTED", "secret-value"),
        ],
    );
    assert_ne!(got.code, Some(USAGE), "{}\n{}", got.stdout, got.stderr);
    let env = std::fs::read_to_string(seen.join("client.empty-poem.env"))
        .unwrap_or_else(|e| panic!("the program did not run ({e}):\n{}", got.stdout));
    assert!(
        env.lines().any(|l| l == "POETRY_TEST_LISTED=listed-value"),
        "{env}"
    );
    assert!(
        env.lines().any(|l| l == "POETRY_TEST_ROLE=role-value"),
        "{env}"
    );
    assert!(
        env.lines().any(|l| l == "POETRY_CASE=client.empty-poem"),
        "{env}"
    );
    assert!(!env.contains("POETRY_TEST_UNLISTED"), "{env}");
    assert!(!env.contains("secret-value"), "{env}");
}

#[test]
fn a_bad_env_name_is_an_error_naming_the_line() {
    let dir = Dir::new();
    let m = dir.file(
        "m.toml",
        "name = \"a\"\n[client]\ncommand = \"exit 127\"\nenv = [\"TOKEN=abc\"]\n",
    );
    let got = run(&dir.0, &["run", "--manifest", &m], &[]);
    assert_eq!(got.code, Some(USAGE), "{}\n{}", got.stdout, got.stderr);
    assert!(
        got.stderr
            .contains("m.toml:4: [client] env: 'TOKEN=abc' holds '='"),
        "{}",
        got.stderr
    );
}

/// The example policy the CI docs point at parses and selects cases of
/// the built-in catalog, so it never goes stale.
#[test]
fn the_example_policy_parses_and_selects_cases() {
    let path = repo().join("ci/policy.example.toml");
    let policy = Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let catalog = Catalog::builtin().unwrap();
    let cases = policy.select(&catalog).unwrap_or_else(|e| panic!("{e}"));
    assert!(!cases.is_empty());
    assert!(
        cases.len() < catalog.select(&[]).len(),
        "the example shows an exclude"
    );
    assert!(!policy.weights.is_empty(), "the example shows weights");
}

#[test]
fn a_graded_matrix_scores_each_implementation_under_the_policy() {
    let dir = Dir::new();
    let policy = dir.file(
        "policy.toml",
        "cases = [\"client.empty-poem\", \"client.fast-poem\"]\n[weights]\n\"client.fast-poem\" = 3\n",
    );
    // Programs that decline every case (exit 127, the probe agrees).
    let a = dir.file(
        "a.toml",
        "name = \"alpha\"\n[client]\ncommand = \"exit 127\"\n",
    );
    let b = dir.file(
        "b.toml",
        "name = \"beta\"\n[server]\ncommand = \"exit 127\"\n",
    );
    let got = run(
        &dir.0,
        &[
            "run",
            "--policy",
            &policy,
            "--manifest",
            &a,
            "--manifest",
            &b,
        ],
        &[],
    );
    assert_eq!(got.code, Some(0), "{}\n{}", got.stdout, got.stderr);
    // Declining a case, or leaving its role out, scores 0 of its points.
    assert!(
        got.stdout
            .contains("\nalpha: score: 0 of 4 points (0.0%)\n"),
        "{}",
        got.stdout
    );
    assert!(
        got.stdout.contains("\nbeta: score: 0 of 4 points (0.0%)\n"),
        "{}",
        got.stdout
    );
}

//! `run --github` as a GitHub Actions job meets it, and the student
//! workflow template (ci/poetry-harness.yml) kept in step with the CLI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use poetry_harness::cli::Cli;

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// Longest a simulated one-case run may take, however loaded the machine.
const LIMIT: Duration = Duration::from_secs(120);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the binary with `summary` as `$GITHUB_STEP_SUMMARY` (or without
/// the variable), within [`LIMIT`].
fn run(args: &[&str], summary: Option<&Path>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = summary {
        cmd.env("GITHUB_STEP_SUMMARY", path);
    }
    let child = cmd.spawn().expect("spawn poetry-harness");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(out) => out.expect("wait for poetry-harness"),
        Err(_) => {
            // Ours, by PID: the run is stuck.
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("poetry-harness {args:?} still running after {LIMIT:?}");
        }
    }
}

#[test]
fn a_failure_becomes_an_annotation_and_is_explained_on_the_summary_page() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    std::fs::write(&summary, "an earlier step's summary\n").unwrap();
    let started = Instant::now();
    let out = run(
        &[
            "run",
            "client.utf8-split",
            "client.fast-poem",
            "--mutant",
            "client-decodes-per-chunk",
            "--github",
        ],
        Some(&summary),
    );
    assert!(started.elapsed() < LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let errors: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("::error"))
        .collect();
    assert_eq!(errors.len(), 1, "{stdout}");
    assert!(
        errors[0].starts_with("::error title=FAIL client.utf8-split::"),
        "{}",
        errors[0]
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    // Appended: what other steps wrote stays.
    assert!(md.starts_with("an earlier step's summary\n"), "{md}");
    assert!(
        md.contains("## poetry-harness: client-decodes-per-chunk (strict profile)"),
        "{md}"
    );
    assert!(md.contains("❌ 2 case(s): 1 PASS, 1 FAIL"), "{md}");
    assert!(
        md.contains("<details><summary><code>client.utf8-split</code> FAIL:"),
        "{md}"
    );
    // The explanation the terminal shows: the clause and how to reproduce.
    assert!(
        md.contains("reproduce: poetry-harness replay client.utf8-split"),
        "{md}"
    );
    assert!(md.contains("| `client.fast-poem` | PASS |"), "{md}");
}

#[test]
fn a_clean_run_gets_a_green_summary_and_no_annotation() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    let out = run(&["run", "client.fast-poem", "--github"], Some(&summary));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains("::error"), "{stdout}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("✅ 1 case(s): 1 PASS"), "{md}");
    assert!(!md.contains("<details>"), "{md}");
}

#[test]
fn outside_github_actions_the_flag_is_refused_before_anything_runs() {
    let out = run(&["run", "--github"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("GITHUB_STEP_SUMMARY is not set"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "ran anyway");
}

/// The `poetry-harness ...` command lines of a workflow's `run:` steps
/// (one line, or a folded `>-` block), with `$VARS` left as words.
fn harness_commands(workflow: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = workflow.lines().collect();
    let mut commands = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let t = t.strip_prefix("- ").unwrap_or(t);
        let text = if let Some(rest) = t.strip_prefix("run: poetry-harness ") {
            format!("poetry-harness {rest}")
        } else if t == "run: >-" {
            let indent = lines[i + 1].len() - lines[i + 1].trim_start().len();
            lines[i + 1..]
                .iter()
                .take_while(|l| l.len() - l.trim_start().len() == indent && !l.trim().is_empty())
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            continue;
        };
        if text.starts_with("poetry-harness ") {
            commands.push(
                text.split_whitespace()
                    .map(|w| w.replace('"', ""))
                    .collect(),
            );
        }
    }
    commands
}

#[test]
fn the_student_template_runs_a_command_the_cli_accepts() {
    let text = std::fs::read_to_string(root().join("ci/poetry-harness.yml")).unwrap();
    let commands = harness_commands(&text);
    assert_eq!(commands.len(), 1, "{commands:?}");
    let words = &commands[0];
    for flag in ["--policy", "--manifest", "--junit", "--json", "--github"] {
        assert!(words.iter().any(|w| w == flag), "{flag} missing: {words:?}");
    }
    if let Err(e) = Cli::try_parse_from(words) {
        panic!("the template's command does not parse: {e}\n{words:?}");
    }
    // What the template's comments promise a student may set.
    for word in ["time_scale", "startup_timeout", "POETRY_HARNESS_GIT"] {
        assert!(text.contains(word), "{word} is not mentioned");
    }
    assert!(!text.contains("example.invalid"), "a placeholder URL");
}

#[test]
fn the_template_reader_finds_folded_and_plain_commands() {
    let yaml = "      - run: poetry-harness list\n      - run: >-\n          poetry-harness run\n          --github\n      - name: x\n";
    assert_eq!(
        harness_commands(yaml),
        vec![
            vec!["poetry-harness".to_string(), "list".into()],
            vec![
                "poetry-harness".to_string(),
                "run".into(),
                "--github".into()
            ],
        ]
    );
}

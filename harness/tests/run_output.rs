//! What `run` prints on the terminal: each case's line as it finishes,
//! `--quiet` and `--verbose`, `--color` (with `NO_COLOR` and
//! `CLICOLOR_FORCE`), and the progress bar on a terminal's stderr only.
//!
//! Every command runs with a cleared environment (only `PATH`, and what a
//! test sets) in a throwaway directory, and every wait is bounded. Lines
//! stream in the order cases finish, which several `--jobs` make
//! nondeterministic: the tests compare sets of lines and the summary, and
//! only an order `--jobs 1` or the test's own program decides.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// A command still running after this has hung (and is killed).
const LIMIT: Duration = Duration::from_secs(60);

/// The labels of cases that fail under the strict profile.
const FAILING: [&str; 5] = ["FAIL", "TIMEOUT", "NON-STRICT", "FLAKY", "ERROR"];

/// Kills the child on every path out of a test.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null());
    cmd
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Waits for the child within [`LIMIT`]; its exit code.
fn wait_bounded(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        assert!(Instant::now() < deadline, "still running after {LIMIT:?}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// A finished command: exit code, stdout, stderr.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut child = command(dir, args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn poetry-harness");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let mut child = Guard(child);
    let code = wait_bounded(&mut child.0);
    Ran {
        code,
        stdout: String::from_utf8(stdout.join().unwrap()).expect("UTF-8 stdout"),
        stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
    }
}

fn run(args: &[&str]) -> Ran {
    let dir = tempfile::tempdir().expect("temporary directory");
    run_in(dir.path(), args, &[])
}

/// The case lines of a run's stdout, in the order printed: (ID, label).
fn case_lines(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let id = words.next()?;
            let label = words.next()?;
            let is_case = ["client.", "server.", "xserver.", "xclient.", "proxy."]
                .iter()
                .any(|role| id.starts_with(role));
            is_case.then(|| (id.to_string(), label.to_string()))
        })
        .collect()
}

/// Everything from the summary's first line (`N case(s) against ...`) on.
fn footer(stdout: &str) -> &str {
    let at = stdout.find(" case(s) against ").expect("a summary");
    let start = stdout[..at].rfind('\n').map_or(0, |i| i + 1);
    &stdout[start..]
}

/// `--quiet` leaves out the passing cases' lines and keeps every failure
/// (with its explanation) and the very same summary.
#[test]
fn quiet_prints_only_the_failures_and_the_summary() {
    let args = [
        "run",
        "client.",
        "--mutant",
        "client-reads-once",
        "--jobs",
        "2",
    ];
    let normal = run(&args);
    let quiet = run(&[&args[..], &["--quiet"]].concat());
    assert_eq!(normal.code, Some(1), "{}", normal.stderr);
    assert_eq!(quiet.code, Some(1), "{}", quiet.stderr);
    let all: BTreeMap<String, String> = case_lines(&normal.stdout).into_iter().collect();
    let failing: BTreeMap<String, String> = all
        .iter()
        .filter(|(_, label)| FAILING.contains(&label.as_str()))
        .map(|(id, label)| (id.clone(), label.clone()))
        .collect();
    assert!(
        all.values().any(|l| l == "PASS"),
        "the mutant passes some cases: {all:?}"
    );
    assert!(!failing.is_empty(), "the mutant fails some cases: {all:?}");
    let shown: BTreeMap<String, String> = case_lines(&quiet.stdout).into_iter().collect();
    assert_eq!(shown, failing, "quiet output:\n{}", quiet.stdout);
    assert_eq!(case_lines(&quiet.stdout).len(), failing.len(), "each once");
    // The failures keep their explanation and reproduce command.
    assert!(quiet.stdout.contains("    hint: "), "{}", quiet.stdout);
    assert!(
        quiet.stdout.contains(
            "reproduce: poetry-harness replay client.fast-poem --mutant client-reads-once"
        ),
        "{}",
        quiet.stdout
    );
    assert_eq!(footer(&quiet.stdout), footer(&normal.stdout));
    assert!(footer(&quiet.stdout).contains(&format!("{} failed", failing.len())));
}

/// How many cases `run client.` selects.
fn client_cases() -> usize {
    poetry_harness::catalog::Catalog::builtin()
        .expect("the built-in catalog loads")
        .cases
        .iter()
        .filter(|c| c.id.starts_with("client."))
        .count()
}

/// A quiet run that passes prints the summary alone.
#[test]
fn quiet_prints_the_summary_alone_when_everything_passes() {
    let got = run(&["run", "client.", "--quiet"]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    assert_eq!(case_lines(&got.stdout), Vec::new(), "{}", got.stdout);
    assert_eq!(got.stdout, footer(&got.stdout).to_string());
    assert!(
        got.stdout
            .starts_with(&format!("{} case(s) against reference", client_cases())),
        "{}",
        got.stdout
    );
}

/// With several jobs the lines come in the order cases finish; they are
/// the same lines as with one job (which prints the catalog's order),
/// with the same summary, and the report keeps the catalog's order.
#[test]
fn lines_stream_in_any_order_but_the_summary_and_reports_keep_the_catalog_order() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mutant = ["--mutant", "client-reads-once"];
    let one = run_in(
        dir.path(),
        &[
            &["run", "client.", "--jobs", "1", "--json", "one.json"],
            &mutant[..],
        ]
        .concat(),
        &[],
    );
    let four = run_in(
        dir.path(),
        &[
            &["run", "client.", "--jobs", "4", "--json", "four.json"],
            &mutant[..],
        ]
        .concat(),
        &[],
    );
    assert_eq!(one.code, Some(1), "{}", one.stderr);
    assert_eq!(four.code, Some(1), "{}", four.stderr);
    let ids_in_report = |name: &str| -> Vec<(String, String)> {
        let text = std::fs::read_to_string(dir.path().join(name)).expect("report");
        let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        json["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap().to_string(),
                    c["verdict"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let catalog = ids_in_report("one.json");
    assert_eq!(catalog.len(), client_cases());
    assert_eq!(
        ids_in_report("four.json"),
        catalog,
        "report in catalog order"
    );
    // One job: the stream is the catalog's order.
    assert_eq!(case_lines(&one.stdout), catalog);
    // Four jobs: the same lines, in whatever order they finished.
    let sorted = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&four.stdout), sorted(&one.stdout));
    assert_eq!(footer(&four.stdout), footer(&one.stdout));
}

/// A case's line is on stdout as soon as it has finished, while the next
/// case is still running; an interrupt then prints the unfinished case
/// and the summary, and no line twice.
#[test]
fn a_case_line_is_printed_when_the_case_finishes_not_at_the_end() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let started = dir.path().join("started");
    // The second case says it has started, then sleeps far beyond this
    // test's wait.
    let program = format!(
        "[ \"$POETRY_CASE\" = client.byte-by-byte ] && touch '{}' && exec sleep 30; exit 3",
        started.display()
    );
    let mut child = command(
        dir.path(),
        &[
            "run",
            "client.fast-poem",
            "client.byte-by-byte",
            "--jobs",
            "1",
            "--role",
            "client",
            "--cmd",
            &program,
        ],
        &[],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn poetry-harness");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = drain(child.stderr.take().expect("stderr"));
    let mut child = Guard(child);
    let (tx, lines) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + LIMIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no line for client.fast-poem ({e}); stdout: {seen:?}"));
        let done = line.starts_with("client.fast-poem ");
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(
        child.0.try_wait().expect("wait").is_none(),
        "the run is still on its second case"
    );
    assert!(
        !seen.iter().any(|l| l.contains(" case(s) against ")),
        "no summary before the end: {seen:?}"
    );
    // Interrupted once its program runs (an interrupt while the harness
    // is still starting it makes the case a harness error instead).
    while !started.exists() {
        assert!(Instant::now() < deadline, "the second case never started");
        thread::sleep(Duration::from_millis(10));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal");
    assert_eq!(wait_bounded(&mut child.0), Some(143));
    reader.join().expect("reader");
    seen.extend(lines.try_iter());
    let out = seen.join("\n");
    let err = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    assert_eq!(
        case_lines(&out),
        vec![
            ("client.fast-poem".to_string(), "FAIL".to_string()),
            ("client.byte-by-byte".to_string(), "INTERRUPTED".to_string()),
        ],
        "stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        out.contains("interrupted by SIGTERM: 1 of 2 case(s) finished"),
        "{out}"
    );
    assert!(
        out.contains("0 passed, 1 failed, 0 unsupported, 1 interrupted"),
        "{out}"
    );
}

/// `--verbose`: each case's title, times and replay command; the command
/// replays the case.
#[test]
fn verbose_adds_each_cases_title_times_and_replay_command() {
    let got = run(&[
        "run",
        "client.fast-poem",
        "client.utf8-split",
        "--jobs",
        "1",
        "--verbose",
    ]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    let lines: Vec<&str> = got.stdout.lines().collect();
    let at = |id: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no line for {id}:\n{}", got.stdout))
    };
    for (id, title) in [
        (
            "client.fast-poem",
            "a poem sent in one write arrives exactly",
        ),
        (
            "client.utf8-split",
            "a multi-byte character split between two writes survives",
        ),
    ] {
        let i = at(id);
        assert_eq!(lines[i + 1], format!("    title: {title}"));
        let time = lines[i + 2];
        assert!(
            time.starts_with("    time: ")
                && time.contains("s on the harness's clock, ")
                && time.ends_with("s simulated"),
            "{time}"
        );
        assert_eq!(
            lines[i + 3],
            format!("    reproduce: poetry-harness replay {id}")
        );
    }
    let replayed = run(&["replay", "client.utf8-split"]);
    assert_eq!(replayed.code, Some(0), "{}", replayed.stderr);
    assert!(replayed.stdout.contains("client.utf8-split  PASS"));
    // A failure's explanation already names the case: no title line.
    let failing = run(&[
        "run",
        "client.fast-poem",
        "--mutant",
        "client-reads-once",
        "-v",
    ]);
    assert_eq!(failing.code, Some(1), "{}", failing.stderr);
    assert!(
        failing.stdout.contains("\n    time: "),
        "{}",
        failing.stdout
    );
    assert!(failing
        .stdout
        .contains("\n    case: a poem sent in one write"));
    assert!(!failing.stdout.contains("title:"), "{}", failing.stdout);
}

#[test]
fn quiet_and_verbose_conflict() {
    let got = run(&["run", "client.fast-poem", "--quiet", "--verbose"]);
    assert_eq!(got.code, Some(2));
    assert!(got.stderr.contains("cannot be used with"), "{}", got.stderr);
}

/// `--color` and the environment: verdict words coloured or not, and
/// report files never.
#[test]
fn color_always_colours_the_verdicts_and_never_or_a_pipe_does_not() {
    const ESC: char = '\x1b';
    let dir = tempfile::tempdir().expect("temporary directory");
    /// Arguments, environment, whether the verdicts are coloured.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], bool);
    let cases: [Case; 8] = [
        (&["run", "--color", "always"], &[], true),
        (&["--color", "always", "run"], &[], true),
        (&["run", "--color", "never"], &[], false),
        (&["run"], &[], false),
        (&["run"], &[("CLICOLOR_FORCE", "1")], true),
        (
            &["run"],
            &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
            false,
        ),
        (
            &["run", "--color", "never"],
            &[("CLICOLOR_FORCE", "1")],
            false,
        ),
        (&["run", "--color", "always"], &[("NO_COLOR", "1")], true),
    ];
    for (args, env, coloured) in cases {
        let args = [args, &["client.fast-poem", "client.utf8-split"]].concat();
        let got = run_in(dir.path(), &args, env);
        assert_eq!(got.code, Some(0), "{args:?}: {}", got.stderr);
        assert_eq!(
            got.stdout.contains("\x1b[32mPASS"),
            coloured,
            "{args:?} {env:?}:\n{}",
            got.stdout
        );
        if !coloured {
            assert!(
                !got.stdout.contains(ESC),
                "{args:?} {env:?}: {}",
                got.stdout
            );
        }
    }
    // A failure in red; the report files plain.
    let got = run_in(
        dir.path(),
        &[
            "run",
            "client.fast-poem",
            "--mutant",
            "client-reads-once",
            "--color",
            "always",
            "--json",
            "r.json",
            "--junit",
            "r.xml",
            "--html",
            "r.html",
            "--gradescope",
            "results.json",
        ],
        &[],
    );
    assert_eq!(got.code, Some(1), "{}", got.stderr);
    assert!(got.stdout.contains("\x1b[31mFAIL"), "{}", got.stdout);
    for file in ["r.json", "r.xml", "r.html", "results.json"] {
        let text = std::fs::read_to_string(dir.path().join(file)).expect("report");
        assert!(text.contains("client.fast-poem"), "{file}");
        assert!(!text.contains(ESC), "{file} has a colour code");
    }
}

#[test]
fn help_teaches_quiet_verbose_and_color_with_examples() {
    let run_help = run(&["run", "--help"]);
    assert_eq!(run_help.code, Some(0));
    for needle in [
        "-q, --quiet",
        "poetry-harness run client. --mutant client-reads-once --quiet",
        "-v, --verbose",
        "poetry-harness run client.fast-poem client.utf8-split --verbose",
        "--color <WHEN>",
        "poetry-harness run --color never",
    ] {
        assert!(
            run_help.stdout.contains(needle),
            "{needle}:\n{}",
            run_help.stdout
        );
    }
    let top = run(&["--help"]);
    assert!(top
        .stdout
        .contains("poetry-harness --color always run client. | less -R"));
}

/// A pseudo-terminal: (the side the test reads, the side the harness
/// writes).
fn pty() -> (std::fs::File, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new descriptors into the two ints; the
    // name, termios and window size pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nothing else.
    unsafe {
        (
            std::fs::File::from_raw_fd(master),
            OwnedFd::from_raw_fd(slave),
        )
    }
}

/// On a terminal's stderr: a progress bar with cases done of all,
/// failures so far and the ETA; stdout (a pipe) gets none of it. With
/// stderr a pipe there is no bar at all.
#[test]
fn the_progress_bar_is_drawn_on_a_terminal_only_and_never_on_stdout() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let args = [
        "run",
        "client.",
        "--mutant",
        "client-reads-once",
        "--jobs",
        "1",
    ];
    let (mut master, slave) = pty();
    let mut cmd = command(dir.path(), &args, &[]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::from(slave));
    let mut child = cmd.spawn().expect("spawn poetry-harness");
    // The test's copy of the terminal's writing side closes with `cmd`.
    drop(cmd);
    let stdout = drain(child.stdout.take().expect("stdout"));
    let terminal = thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once every writer of the terminal has closed it.
        while let Ok(n @ 1..) = master.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let mut child = Guard(child);
    assert_eq!(wait_bounded(&mut child.0), Some(1));
    let stdout = String::from_utf8(stdout.join().unwrap()).expect("UTF-8");
    let terminal = terminal.join().expect("terminal reader");
    let total = format!("/{} cases", client_cases());
    assert!(terminal.contains(&format!("{total}, ")), "{terminal:?}");
    assert!(terminal.contains(" failed"), "{terminal:?}");
    assert!(terminal.contains("ETA"), "{terminal:?}");
    assert!(
        !stdout.contains("ETA") && !stdout.contains(&total),
        "{stdout}"
    );
    assert_eq!(case_lines(&stdout).len(), client_cases());
    // Piped stderr: no bar.
    let piped = run_in(dir.path(), &args, &[]);
    assert_eq!(piped.code, Some(1));
    assert!(!piped.stderr.contains("ETA"), "{}", piped.stderr);
    assert!(!piped.stderr.contains("cases, "), "{}", piped.stderr);
}

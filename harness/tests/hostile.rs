//! Hostile programs as subjects of the live backend (`fixtures/hostile/`):
//! each gets a verdict, the harness stays standing and writes its reports,
//! and no process started for the program is left once the harness has
//! exited (found by the run token in their environment).
//!
//! The harness runs as a real binary with a cleared environment (`PATH`
//! and a made-up secret) in a throwaway directory; every wait is bounded.
//! Memory under floods is measured in benchmarks, not here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rstest::rstest;

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// A harness still running after this has hung (and is killed).
const LIMIT: Duration = Duration::from_secs(60);

/// A variable the programs must not see.
const SECRET: (&str, &str) = ("POETRY_TEST_SECRET", "hunter2");

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/hostile")
        .join(name)
        .display()
        .to_string()
}

/// The harness, killed and reaped on drop.
struct Harness {
    child: Child,
    dir: tempfile::TempDir,
}

impl Harness {
    fn start(args: &[&str]) -> Harness {
        let dir = tempfile::tempdir().expect("a throwaway directory");
        let child = Command::new(BIN)
            .args(args)
            .args(["--json", "r.json"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(SECRET.0, SECRET.1)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn poetry-harness");
        Harness { child, dir }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (within [`LIMIT`]) for it to exit.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "still running after {LIMIT:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn json(&self) -> serde_json::Value {
        let path: PathBuf = self.dir.path().join("r.json");
        let text = std::fs::read_to_string(&path).expect("the JSON report");
        serde_json::from_str(&text).expect("valid JSON")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Live processes started for programs of the harness `pid`: their
/// environment carries its run token.
fn left_behind(pid: u32) -> Vec<u32> {
    running_for(pid, "")
}

/// Live processes started for programs of the harness `pid` whose
/// environment also holds `also` (a `NAME=value`), if not empty.
fn running_for(pid: u32, also: &str) -> Vec<u32> {
    let token = format!("POETRY_HARNESS_RUN={pid}-");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let zombie = std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            });
            !zombie
                && std::fs::read(format!("/proc/{p}/environ")).is_ok_and(|env| {
                    env.split(|&b| b == 0)
                        .any(|v| v.starts_with(token.as_bytes()))
                        && (also.is_empty() || env.split(|&b| b == 0).any(|v| v == also.as_bytes()))
                })
        })
        .collect()
}

/// Runs `client.fast-poem` against the program: the verdict is `verdict`,
/// the harness exits `status`, and nothing is left running.
#[rstest]
#[case::double_forks("sh DIR/double-fork.sh {addrs}", "FAIL", 1)]
#[case::floods_stdout_without_newline("sh DIR/flood-no-newline.sh {addrs}", "FAIL", 1)]
#[case::kills_its_parent("sh DIR/kills-parent.sh {addrs}", "FAIL", 1)]
#[case::spawns_hundreds_of_children("sh DIR/many-children.sh {addrs}", "FAIL", 1)]
#[case::floods_stderr_without_newline("sh DIR/flood-stderr.sh {addrs}", "FAIL", 1)]
#[case::closes_stdout("sh DIR/closes-stdout.sh {addrs}", "FAIL", 1)]
#[case::holds_every_fd_it_can("python3 DIR/many-fds.py {addrs}", "FAIL", 1)]
#[case::reads_the_environment_and_its_directory("python3 DIR/clean-client.py {addrs}", "PASS", 0)]
fn a_hostile_client_gets_a_verdict_and_leaves_nothing_running(
    #[case] command: &str,
    #[case] verdict: &str,
    #[case] status: i32,
) {
    let dir = fixture("");
    let command = command.replace("DIR/", &dir);
    let mut harness = Harness::start(&[
        "run",
        "client.fast-poem",
        "--role",
        "client",
        "--cmd",
        &command,
    ]);
    let got = harness.wait();
    assert_eq!(got.code(), Some(status), "{command}: {got:?}");
    let json = harness.json();
    let case = &json["cases"][0];
    assert_eq!(case["verdict"], verdict, "{command}: {case:#}");
    // many-fds.py says how many files it could open: the cap holds.
    if let Some(n) = case["transcript"].as_str().and_then(|t| {
        let at = t.find("opened ")? + "opened ".len();
        t[at..].split(' ').next()?.parse::<u64>().ok()
    }) {
        assert!((1..=1024).contains(&n), "{n} files open");
    }
    assert_eq!(left_behind(harness.pid()), Vec::<u32>::new(), "{command}");
}

/// A program that ignores SIGTERM, SIGINT and SIGHUP: a SIGTERM to the
/// harness still stops it (SIGKILL), and the harness writes its reports.
#[test]
fn a_program_that_ignores_sigterm_is_stopped_when_the_harness_is() {
    let command = format!("sh {} {{addrs}}", fixture("ignores-sigterm.sh"));
    let mut harness = Harness::start(&[
        "run",
        "client.fast-poem",
        "--role",
        "client",
        "--cmd",
        &command,
    ]);
    // The case's program, not the probe's.
    let deadline = Instant::now() + LIMIT;
    while running_for(harness.pid(), "POETRY_CASE=client.fast-poem").is_empty() {
        assert!(Instant::now() < deadline, "the program never started");
        thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(harness.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal");
    let got = harness.wait();
    assert_eq!(got.code(), Some(143));
    assert_eq!(harness.json()["cases"][0]["verdict"], "INTERRUPTED");
    assert_eq!(left_behind(harness.pid()), Vec::<u32>::new());
}

/// A server that never listens on the port it was given: not ready within
/// its start-up budget, a failed case, and nothing left listening.
#[test]
fn a_server_on_the_wrong_port_fails_and_leaves_nothing_running() {
    let manifest = fixture("wrong-port.toml");
    let mut harness = Harness::start(&["run", "server.one-client-fast", "--manifest", &manifest]);
    let got = harness.wait();
    assert_eq!(got.code(), Some(1), "{got:?}");
    let case = &harness.json()["cases"][0];
    assert_eq!(case["verdict"], "FAIL", "{case:#}");
    assert!(
        case["reason"].as_str().is_some_and(|r| r.contains("port")),
        "{case:#}"
    );
    assert_eq!(left_behind(harness.pid()), Vec::<u32>::new());
}

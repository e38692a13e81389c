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

/// Ports of 127.0.0.1 named in a transcript (`127.0.0.1:PORT`, `port PORT`).
fn ports_in(transcript: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    for marker in ["127.0.0.1:", "port "] {
        for (at, _) in transcript.match_indices(marker) {
            let digits: String = transcript[at + marker.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(p) = digits.parse::<u16>() {
                if p != 0 && !ports.contains(&p) {
                    ports.push(p);
                }
            }
        }
    }
    ports
}

/// Bytes the peer `who` received, by its transcript lines: `recv N bytes`
/// alone, or folded (`recv xK ... (N bytes in all)`).
fn received_by(transcript: &str, who: &str) -> u64 {
    transcript
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip(1);
            (words.next()? == who).then_some(())?;
            let what: Vec<&str> = words.collect();
            match what.as_slice() {
                ["recv", n, "bytes", ..] => n.parse::<u64>().ok(),
                ["recv", run, ..] if run.starts_with('x') => {
                    let at = l.rfind('(')?;
                    l[at + 1..].split(' ').next()?.parse().ok()
                }
                _ => None,
            }
        })
        .sum()
}

/// Inodes of the TCP sockets listening on `port` (any address, v4 or v6).
fn listening(port: u16) -> Vec<u64> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is ADDR:PORT in hex; state 0A is LISTEN.
            let local_port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && f.get(3) == Some(&"0A") {
                if let Some(inode) = f.get(9).and_then(|i| i.parse().ok()) {
                    inodes.push(inode);
                }
            }
        }
    }
    inodes
}

/// Processes holding the socket `inode` open (those whose fds we may read).
fn holders(inode: u64) -> Vec<u32> {
    let want = format!("socket:[{inode}]");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_dir(format!("/proc/{p}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|fd| {
                    std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str())
                })
        })
        .collect()
}

/// Nothing listens on `ports` for the programs of the harness `pid`: a
/// listening socket there is a failure if a process carrying the run token
/// holds it, or if no process we can see does (an unrelated program that
/// took the port since, found holding it, is not).
fn assert_nothing_listens(pid: u32, ports: &[u16]) {
    let ours = left_behind(pid);
    for &port in ports {
        for inode in listening(port) {
            let by = holders(inode);
            assert!(
                !by.is_empty() && by.iter().all(|p| !ours.contains(p)),
                "port {port} still listening (socket {inode}, held by {by:?}; run token carried by {ours:?})"
            );
        }
    }
}

/// Runs `client.fast-poem` against the program: the verdict is `verdict`,
/// its reason or transcript says `said`, the harness exits `status`, and
/// nothing is left running or listening.
#[rstest]
#[case::double_forks("sh DIR/double-fork.sh {addrs}", "FAIL", "got a poem of 0 bytes", 1)]
#[case::floods_stdout_without_newline(
    "sh DIR/flood-no-newline.sh {addrs}",
    "FAIL",
    "stdout truncated: kept the first 4194304 of 268435456 bytes",
    1
)]
#[case::floods_stdout_with_newlines(
    "sh DIR/flood-lines.sh {addrs}",
    "FAIL",
    "stdout truncated: kept the first 4194304 of 67108864 bytes",
    1
)]
#[case::kills_its_parent(
    "sh DIR/kills-parent.sh {addrs}",
    "FAIL",
    "a signal ended the program",
    1
)]
#[case::spawns_hundreds_of_children(
    "sh DIR/many-children.sh {addrs}",
    "FAIL",
    "got a poem of 0 bytes",
    1
)]
#[case::floods_stderr_without_newline(
    "sh DIR/flood-stderr.sh {addrs}",
    "FAIL",
    "stderr truncated: kept the first 4194304 of 268435456 bytes",
    1
)]
#[case::closes_stdout("sh DIR/closes-stdout.sh {addrs}", "FAIL", "got a poem of 0 bytes", 1)]
#[case::holds_every_fd_it_can("python3 DIR/many-fds.py {addrs}", "FAIL", "Too many open files", 1)]
#[case::hangs_without_connecting(
    "sh DIR/hangs.sh {addrs}",
    "TIMEOUT",
    "not finished within the case's time limit",
    1
)]
// CLIENT-2 (a client sends nothing) is cited by no case yet: the junk is
// read and counted (checked below), bounded, and not judged.
#[case::sends_megabytes_of_junk("python3 DIR/junk-client.py {addrs}", "PASS", "bytes in all)", 0)]
#[case::reads_the_environment_and_its_directory(
    "python3 DIR/clean-client.py {addrs}",
    "PASS",
    "as expected",
    0
)]
fn a_hostile_client_gets_a_verdict_and_leaves_nothing_running(
    #[case] command: &str,
    #[case] verdict: &str,
    #[case] said: &str,
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
    assert!(
        [&case["reason"], &case["transcript"]]
            .iter()
            .any(|t| t.as_str().is_some_and(|t| t.contains(said))),
        "{command}: no {said:?} in {case:#}"
    );
    if command.contains("junk-client") {
        let t = case["transcript"].as_str().unwrap_or_default();
        // All of it but what was still in flight when the client exited
        // (the case ends then): far more than a peer keeps.
        let got = received_by(t, "s1");
        assert!((16 << 20..=64 << 20).contains(&got), "{got} bytes: {t}");
    }
    // many-fds.py says how many files it could open: the cap holds.
    if let Some(n) = case["transcript"].as_str().and_then(|t| {
        let at = t.find("opened ")? + "opened ".len();
        t[at..].split(' ').next()?.parse::<u64>().ok()
    }) {
        assert!((1..=1024).contains(&n), "{n} files open");
    }
    assert_eq!(left_behind(harness.pid()), Vec::<u32>::new(), "{command}");
    // The harness's server peers, named in the command it started: closed
    // with the harness, not held open by anything the program left.
    let ports = ports_in(case["transcript"].as_str().unwrap_or_default());
    assert!(!ports.is_empty(), "{command}: no port in {case:#}");
    assert_nothing_listens(harness.pid(), &ports);
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

/// Runs `server.one-client-fast` against the server of the hostile
/// fixture manifest `name`, which never becomes ready: a failed case and
/// nothing left running. Returns the case's reason.
fn never_ready(name: &str) -> String {
    let manifest = fixture(name);
    let mut harness = Harness::start(&["run", "server.one-client-fast", "--manifest", &manifest]);
    let got = harness.wait();
    assert_eq!(got.code(), Some(1), "{got:?}");
    let case = &harness.json()["cases"][0];
    assert_eq!(case["verdict"], "FAIL", "{case:#}");
    assert_eq!(left_behind(harness.pid()), Vec::<u32>::new());
    case["reason"].as_str().unwrap_or_default().to_string()
}

/// A server that never listens on the port it was given: not ready within
/// its start-up budget, a failed case, and nothing left listening.
#[test]
fn a_server_on_the_wrong_port_fails_and_leaves_nothing_running() {
    let reason = never_ready("wrong-port.toml");
    assert!(reason.contains("port"), "{reason}");
}

/// A server whose port is taken by something that does not listen (here
/// the program itself, connected to its own port): not ready, and the
/// reason says what holds the port, so a port the program could not bind
/// is not mistaken for a program that never tried.
#[test]
fn a_port_held_without_a_listener_is_named_in_the_reason() {
    let reason = never_ready("holds-its-port.toml");
    let port: String = reason
        .split("naming port ")
        .nth(1)
        .unwrap_or_default()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(!port.is_empty(), "{reason}");
    let held = format!("(port {port} is in use: ESTABLISHED 127.0.0.1:{port} -> 127.0.0.1:{port}");
    assert!(reason.contains(&held), "{reason}");
}

/// A server that serves an endless poem to the harness's clients: the
/// case times out (the clients never see the end), the harness is bounded
/// (its peers keep 16 MiB and count the rest), and the port the server
/// listened on is closed with it.
#[test]
fn an_endless_server_times_out_and_its_port_is_closed() {
    let command = format!("python3 {} {{port}}", fixture("endless-server.py"));
    let mut harness = Harness::start(&[
        "run",
        "server.one-client-fast",
        "--role",
        "server",
        "--cmd",
        &command,
    ]);
    let got = harness.wait();
    assert_eq!(got.code(), Some(1), "{got:?}");
    let case = &harness.json()["cases"][0];
    assert_eq!(case["verdict"], "TIMEOUT", "{case:#}");
    assert!(
        case["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not finished within the case's time limit")),
        "{case:#}"
    );
    let transcript = case["transcript"].as_str().unwrap_or_default();
    // It was ready, on the port it announced, and sent more than a peer keeps.
    let at = transcript
        .find("ready: serving endless poems on port ")
        .unwrap_or_else(|| panic!("never ready: {case:#}"));
    let ports = ports_in(&transcript[at..]);
    assert!(!ports.is_empty(), "{case:#}");
    let received: u64 = transcript
        .split(" bytes in all)")
        .next()
        .and_then(|t| t.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count: {case:#}"));
    assert!(received > 16 << 20, "{received} bytes");
    assert_eq!(left_behind(harness.pid()), Vec::<u32>::new());
    assert_nothing_listens(harness.pid(), &ports[..1]);
}

/// A program that writes a 100 MiB file in its working directory and a
/// file into the harness's directory by its absolute path. What the
/// default containment guarantees: the file-size limit stops the big file
/// at 64 MiB, and the working directory is gone after the case. What it
/// does not: an absolute path is written like any program of the user's
/// would write it (a sandbox is needed for that).
#[test]
fn writing_files_is_capped_and_the_working_directory_removed_but_absolute_paths_are_reachable() {
    let command = format!("sh {} {{addrs}}", fixture("writes-outside.sh"));
    let mut harness = Harness::start(&[
        "run",
        "client.fast-poem",
        "--role",
        "client",
        "--cmd",
        &command,
    ]);
    let got = harness.wait();
    assert_eq!(got.code(), Some(1), "{got:?}");
    let case = &harness.json()["cases"][0];
    assert_eq!(case["verdict"], "FAIL", "{case:#}");
    assert!(
        case["reason"]
            .as_str()
            .is_some_and(|r| r.contains("got a poem of 0 bytes")),
        "{case:#}"
    );
    let transcript = case["transcript"].as_str().unwrap_or_default();
    let said = "stderr: wrote 67108864 bytes in ";
    let at = transcript
        .find(said)
        .unwrap_or_else(|| panic!("the file was not cut at 64 MiB: {case:#}"));
    let workdir = PathBuf::from(
        transcript[at + said.len()..]
            .lines()
            .next()
            .unwrap_or_default()
            .trim(),
    );
    assert!(
        workdir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("poetry-harness-program-")),
        "{}",
        workdir.display()
    );
    assert!(!workdir.exists(), "{} left behind", workdir.display());
    // Not prevented without a sandbox: the README says so.
    let escaped = harness.dir.path().join("escaped.txt");
    assert_eq!(
        std::fs::read_to_string(&escaped).ok().as_deref(),
        Some("escaped\n"),
        "{case:#}"
    );
    assert_eq!(left_behind(harness.pid()), Vec::<u32>::new());
}

/// The checks above can fail: a listening socket held by a process that
/// carries a run token is found, by its port, and named.
#[test]
fn a_listener_left_behind_is_found() {
    use std::io::BufRead;
    // Posing as the harness `me`: the token starts with its PID.
    let me = std::process::id();
    let mut server = Command::new("python3")
        .args([
            "-c",
            "import socket,sys,time\n\
             s=socket.create_server(('127.0.0.1',0))\n\
             print(s.getsockname()[1],flush=True)\n\
             time.sleep(60)",
        ])
        .env("POETRY_HARNESS_RUN", format!("{me}-0"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("its port");
    let ports = ports_in(&format!("ready: listening on port {}", line.trim()));
    assert_eq!(ports.len(), 1, "{line}");
    let found = std::panic::catch_unwind(|| assert_nothing_listens(me, &ports));
    let _ = server.kill();
    let _ = server.wait();
    assert!(found.is_err(), "port {} not found listening", ports[0]);
    assert_nothing_listens(me, &ports);
}

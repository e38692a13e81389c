//! `--sandbox`: the real binary runs in new user, mount, network and PID
//! namespaces (see `backend::live::sandbox`). What each test shows:
//!
//! - a normal client and a normal server still PASS under `--sandbox`;
//! - only loopback: a program sees no interface but `lo`, cannot reach a
//!   non-loopback address (not even the host's own) nor a service on the
//!   host's loopback, cannot see or signal the test process, and cannot
//!   stop the harness (PID 1 of its namespace) with SIGKILL, SIGTERM,
//!   SIGINT or SIGHUP;
//! - nothing survives the harness: after a SIGKILL of the harness inside
//!   the namespace, or of the outer process, no process started for a
//!   program is left, not even one that cleared its environment and left
//!   the session (found by a marker in its command line);
//! - where the kernel refuses (here: a user namespace whose user is not
//!   mapped may not create another), `--sandbox` is exit 2 with a message.
//!
//! Every test first checks that this host allows user namespaces
//! (`unshare -Ur true`), and says on stderr that it was skipped if not.
//! Every wait is bounded.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// A harness still running after this has hung (and is killed).
const LIMIT: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether this host lets an unprivileged process create user namespaces;
/// says so on stderr when it does not (the test is then skipped).
fn user_namespaces(test: &str) -> bool {
    let ok = Command::new("unshare")
        .args(["-Ur", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED {test}: this host does not allow user namespaces (`unshare -Ur true` \
             failed), so --sandbox cannot run here"
        );
    }
    ok
}

/// The harness, killed and reaped on drop.
struct Harness {
    child: Child,
    dir: tempfile::TempDir,
    /// Readers of its stdout and stderr (so that it never blocks on a
    /// full pipe).
    stdout: Option<thread::JoinHandle<String>>,
    stderr: Option<thread::JoinHandle<String>>,
}

/// Reads a pipe to its end, on a thread.
fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> Option<thread::JoinHandle<String>> {
    let mut pipe = pipe?;
    Some(thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    }))
}

impl Harness {
    /// Starts the harness from the repository's root (manifests name
    /// files relative to it), writing its JSON report to the throwaway
    /// directory.
    fn start(args: &[&str]) -> Harness {
        let dir = tempfile::tempdir().expect("a throwaway directory");
        let child = Command::new(BIN)
            .args(args)
            .arg("--json")
            .arg(dir.path().join("r.json"))
            .current_dir(repo())
            // Its temporary files (the programs' working directories) in
            // the throwaway directory: a harness killed with SIGKILL
            // cannot remove them itself.
            .env("TMPDIR", dir.path())
            // A process group of its own, as a shell gives a command.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn poetry-harness");
        let mut child = child;
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        Harness {
            child,
            dir,
            stdout,
            stderr,
        }
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

    /// Its stdout and stderr, once it has exited.
    fn output(&mut self) -> (String, String) {
        let read = |r: Option<thread::JoinHandle<String>>| {
            r.map(|r| r.join().unwrap_or_default()).unwrap_or_default()
        };
        (read(self.stdout.take()), read(self.stderr.take()))
    }

    fn json(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.path().join("r.json")).expect("JSON report");
        serde_json::from_str(&text).expect("valid JSON")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fields of `/proc/PID/stat` after the command name: state, ppid.
fn stat(pid: u32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = s[s.rfind(')')? + 1..].split_whitespace();
    let state = f.next()?.chars().next()?;
    Some((state, f.next()?.parse().ok()?))
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// Live (not zombie) processes on the host whose environment carries the
/// run token of the harness `outer` (tokens carry the outer PID under
/// --sandbox), or whose command line holds `marker`.
fn left_behind(outer: u32, marker: &str) -> Vec<u32> {
    let token = format!("POETRY_HARNESS_RUN={outer}-");
    pids()
        .into_iter()
        .filter(|&p| stat(p).is_some_and(|(state, _)| state != 'Z' && state != 'X'))
        .filter(|&p| {
            let env = std::fs::read(format!("/proc/{p}/environ")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            env.split(|&b| b == 0)
                .any(|v| v.starts_with(token.as_bytes()))
                || String::from_utf8_lossy(&cmdline).contains(marker)
        })
        .collect()
}

/// Waits (bounded) until `check` holds; whether it did.
fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// The asyncio client of `fixtures/python`, as a --cmd.
const CLIENT: &str = "python3 fixtures/python/asyncio/get_poetry.py {addrs}";

#[test]
fn a_normal_client_and_server_pass_under_the_sandbox() {
    if !user_namespaces("a_normal_client_and_server_pass_under_the_sandbox") {
        return;
    }
    let mut h = Harness::start(&[
        "run",
        "client.fast-poem",
        "--role",
        "client",
        "--cmd",
        CLIENT,
        "--sandbox",
    ]);
    let status = h.wait();
    let (out, err) = h.output();
    assert_eq!(status.code(), Some(0), "{out}\n{err}");
    let json = h.json();
    assert_eq!(json["cases"][0]["verdict"], "PASS", "{json:#}");
    let mut h = Harness::start(&[
        "run",
        "server.one-client-fast",
        "--manifest",
        "fixtures/python/asyncio.toml",
        "--sandbox",
    ]);
    let status = h.wait();
    let (out, err) = h.output();
    assert_eq!(status.code(), Some(0), "{out}\n{err}");
    let json = h.json();
    assert_eq!(json["cases"][0]["verdict"], "PASS", "{json:#}");
}

/// This host's address on the route to other hosts, if it has one (a UDP
/// `connect` sends nothing).
fn host_address() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("10.255.255.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// What the probe program finds out, before it runs the real client.
const PROBE: &str = r#"
import errno, os, signal, socket, sys
out, host, host_lo_port, test_pid, test_name = sys.argv[1:6]
# Given backwards, so that this program's own command line does not hold it.
test_name = test_name[::-1]
def tcp(addr, port):
    s = socket.socket()
    s.settimeout(5)
    try:
        return errno.errorcode.get(s.connect_ex((addr, int(port))), "connected")
    finally:
        s.close()
lines = []
with open("/proc/net/dev") as f:
    lines.append("interfaces=" + ",".join(sorted(l.split(":")[0].strip() for l in f.readlines()[2:])))
lines.append("far=" + tcp("10.255.255.1", 9))
if host != "none":
    lines.append("host=" + tcp(host, 9))
lines.append("host_loopback=" + tcp("127.0.0.1", host_lo_port))
try:
    os.kill(int(test_pid), 0)
    lines.append("signal_test=delivered")
except OSError as e:
    lines.append("signal_test=" + errno.errorcode[e.errno])
seen = []
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            seen.append(open("/proc/%s/cmdline" % p, "rb").read().decode(errors="replace"))
        except OSError:
            pass
lines.append("sees_test=%s" % any(test_name in c for c in seen))
lines.append("pid1=" + open("/proc/1/cmdline", "rb").read().split(b"\0")[0].decode())
for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    os.kill(1, sig)
lines.append("signalled_pid1=tried")
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
"#;

#[test]
fn a_program_reaches_only_its_own_loopback_and_sees_no_host_process() {
    if !user_namespaces("a_program_reaches_only_its_own_loopback_and_sees_no_host_process") {
        return;
    }
    let dir = tempfile::tempdir().expect("a throwaway directory");
    let probe = dir.path().join("probe.py");
    std::fs::write(&probe, PROBE).expect("write the probe");
    let found = dir.path().join("found.txt");
    // A service on the host's loopback: the program must not reach it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("address").port();
    let host = host_address().map_or("none".to_string(), |ip| ip.to_string());
    let test_name = std::env::current_exe()
        .expect("this test's path")
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .chars()
        .rev()
        .collect::<String>();
    // The probe runs in the case only (not in the harness's start-up
    // probe), then the real client downloads the poem.
    let script = dir.path().join("client.sh");
    std::fs::write(
        &script,
        format!(
            "if [ \"$POETRY_CASE\" = client.fast-poem ]; then python3 {} {} {host} {port} {} {test_name} || exit 3; fi\n\
             exec python3 \"$POETRY_HARNESS_DIR/fixtures/python/asyncio/get_poetry.py\" \"$@\"\n",
            probe.display(),
            found.display(),
            std::process::id(),
        ),
    )
    .expect("write the client");
    let command = format!("sh {} {{addrs}}", script.display());
    let mut h = Harness::start(&[
        "run",
        "client.fast-poem",
        "--role",
        "client",
        "--cmd",
        &command,
        "--sandbox",
    ]);
    let status = h.wait();
    let (out, err) = h.output();
    let found = std::fs::read_to_string(&found).unwrap_or_default();
    // The program sent SIGKILL, SIGTERM, SIGINT and SIGHUP to PID 1, the
    // harness: it ran on.
    assert_eq!(status.code(), Some(0), "{found}\n{out}\n{err}");
    let json = h.json();
    assert_eq!(json["cases"][0]["verdict"], "PASS", "{json:#}");
    let mut want = vec![
        "interfaces=lo",
        "far=ENETUNREACH",
        "signal_test=ESRCH",
        "sees_test=False",
        "signalled_pid1=tried",
    ];
    let host_line = format!("host={}", "ENETUNREACH");
    if host != "none" {
        want.push(&host_line);
    } else {
        eprintln!("note: this host has no non-loopback address; that check was left out");
    }
    for line in want {
        assert!(found.lines().any(|l| l == line), "{line} not in:\n{found}");
    }
    assert!(
        found
            .lines()
            .any(|l| l.starts_with("pid1=") && l.ends_with("poetry-harness")),
        "{found}"
    );
    // Refused or (rarely) a peer of the harness on the same port number:
    // either way never the host's service.
    assert!(found.contains("host_loopback="), "{found}");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the program reached a service on the host's loopback:\n{found}"
    );
}

/// A client that leaves behind a sleeper in its session, one that left the
/// session, and one that also cleared its environment (no token: found by
/// `marker` in its command line), then hangs.
fn escaping_client(dir: &Path, marker: &str) -> String {
    let script = dir.join("escapes.sh");
    std::fs::write(
        &script,
        format!(
            "case \"$POETRY_CASE\" in bogus*) exit 0 ;; esac\n\
             sleep 3600 &\n\
             setsid sh -c 'sleep 3600' </dev/null >/dev/null 2>&1 &\n\
             setsid env -i sleep {marker} </dev/null >/dev/null 2>&1 &\n\
             sleep 3600\n"
        ),
    )
    .expect("write the client");
    format!("sh {} {{addrs}}", script.display())
}

/// A sleep duration no other process has in its command line.
fn marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("3599.{}{nanos}", std::process::id())
}

/// Starts a harness whose program escapes, and waits (bounded) until its
/// every sleeper runs.
fn harness_with_escapees(marker: &str) -> (Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a throwaway directory");
    let command = escaping_client(dir.path(), marker);
    // Ten times the catalog's durations: the case would hang for well
    // over a minute, so only the kernel's killing of the namespace ends
    // the sleepers within the tests' bounds.
    let h = Harness::start(&[
        "run",
        "client.fast-poem",
        "--role",
        "client",
        "--cmd",
        &command,
        "--time-scale",
        "10",
        "--sandbox",
    ]);
    let outer = h.pid();
    assert!(
        eventually(|| {
            let left = left_behind(outer, marker);
            left.len() >= 4
                && left.iter().any(|&p| {
                    std::fs::read(format!("/proc/{p}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
                })
        }),
        "the program's sleepers never all ran: {:?}",
        left_behind(outer, marker)
    );
    (h, dir)
}

fn sigkill(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
}

#[test]
fn a_sigkill_of_the_harness_inside_leaves_nothing_running() {
    if !user_namespaces("a_sigkill_of_the_harness_inside_leaves_nothing_running") {
        return;
    }
    let marker = marker();
    let (mut h, _dir) = harness_with_escapees(&marker);
    let outer = h.pid();
    // PID 1 of the namespace, as the host sees it: the outer's child.
    let inner = pids()
        .into_iter()
        .find(|&p| stat(p).is_some_and(|(_, ppid)| ppid == outer))
        .expect("the harness inside");
    sigkill(inner);
    let status = h.wait();
    assert_eq!(status.code(), Some(128 + 9), "{status:?}");
    assert!(
        eventually(|| left_behind(outer, &marker).is_empty()),
        "left running: {:?}",
        left_behind(outer, &marker)
    );
}

#[test]
fn a_sigkill_of_the_outer_harness_leaves_nothing_running() {
    if !user_namespaces("a_sigkill_of_the_outer_harness_leaves_nothing_running") {
        return;
    }
    let marker = marker();
    let (mut h, _dir) = harness_with_escapees(&marker);
    let outer = h.pid();
    sigkill(outer);
    let status = h.wait();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(
        eventually(|| left_behind(outer, &marker).is_empty()),
        "left running: {:?}",
        left_behind(outer, &marker)
    );
}

/// An interrupt of the outer process, or of its process group (as a
/// Ctrl-C at a terminal sends), reaches the harness inside once: the run
/// stops, writes its reports and exits 128 + the signal, and nothing is
/// left running.
#[rstest::rstest]
#[case::sigterm_to_the_process(nix::sys::signal::Signal::SIGTERM, false)]
#[case::sigint_to_the_process_group(nix::sys::signal::Signal::SIGINT, true)]
fn an_interrupt_stops_the_run_and_the_reports_are_written(
    #[case] signal: nix::sys::signal::Signal,
    #[case] to_group: bool,
) {
    if !user_namespaces("an_interrupt_stops_the_run_and_the_reports_are_written") {
        return;
    }
    let marker = marker();
    let (mut h, _dir) = harness_with_escapees(&marker);
    let outer = nix::unistd::Pid::from_raw(h.pid() as i32);
    if to_group {
        nix::sys::signal::killpg(outer, signal).expect("signal the group");
    } else {
        nix::sys::signal::kill(outer, signal).expect("signal");
    }
    let status = h.wait();
    let (out, err) = h.output();
    assert_eq!(
        status.code(),
        Some(128 + signal as i32),
        "{status:?}\n{out}\n{err}"
    );
    assert_eq!(h.json()["cases"][0]["verdict"], "INTERRUPTED", "{out}");
    assert!(out.contains("interrupted by"), "{out}");
    let outer = h.pid();
    assert!(
        eventually(|| left_behind(outer, &marker).is_empty()),
        "left running: {:?}",
        left_behind(outer, &marker)
    );
}

#[test]
fn where_the_kernel_refuses_the_sandbox_is_an_error_saying_what_to_do() {
    if !user_namespaces("where_the_kernel_refuses_the_sandbox_is_an_error_saying_what_to_do") {
        return;
    }
    // In a user namespace whose user has no mapping, creating another is
    // refused (EPERM): as where user namespaces are disabled.
    let unmapped = Command::new("unshare")
        .args(["-U", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !unmapped {
        eprintln!("SKIPPED: `unshare -U true` failed here; no way to make the kernel refuse");
        return;
    }
    let out: Output = Command::new("unshare")
        .args(["-U", BIN, "run", "client.fast-poem", "--role", "client"])
        .args(["--cmd", CLIENT, "--sandbox"])
        .current_dir(repo())
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in [
        "poetry-harness: error: --sandbox: creating user, mount, network and PID namespaces",
        "EPERM",
        "Run without --sandbox",
    ] {
        assert!(err.contains(want), "{want} not in {err}");
    }
    // Nothing ran.
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

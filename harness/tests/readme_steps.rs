//! The README's "Try the protocols by hand" steps, run as written.
//!
//! The test reads the section's code blocks from `README.md` itself, so a
//! step edited there is the step tested here; a line it cannot read fails
//! the test rather than being skipped. Each `serve` runs as written except
//! for its port (0, a free one, in place of 10000 and the like, and every
//! mention of that port in later steps follows it) and, for the slow
//! server, a shorter `--delay` so the poem arrives in a second or two, not
//! a minute. What the shortened delay no longer tests, that the waits of
//! the steps as written fit `get`'s idle timeout, is checked by arithmetic
//! from the slow server's own announcement (its poem size and pacing) and
//! `get --help`'s default: no wall-clock assertion anywhere.
//!
//! Also here: `get` on a terminal shows a poem as it arrives (the README's
//! "ten bytes at a time"), driven by a server in the test that sends the
//! rest of the poem only once the first line has shown on the terminal.
//!
//! Every process is killed by its guard (by PID) and reaped, even when a
//! test fails; every wait is bounded; everything listens on 127.0.0.1.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use poetry_harness::duration::parse_duration;

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// A command still running after this has hung (and is killed). Generous:
/// the slowest step takes a few seconds on a loaded machine.
const LIMIT: Duration = Duration::from_secs(120);

/// The slow server's pause in the test, in place of its default 0.7 s.
const TEST_DELAY: &str = "20ms";

/// How README commands start; what follows is the binary's arguments.
const CARGO_RUN: &str = "cargo run --release -- ";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the harness crate is in the workspace")
        .to_path_buf()
}

/// One line of a by-hand code block.
#[derive(Debug)]
enum Step {
    /// `cargo run --release -- ARGS`, with the README line for messages.
    Run { args: Vec<String>, line: String },
    /// `# listening on ...`: what the `serve` just before it prints.
    Announces(String),
}

/// The code blocks of the README's "Try the protocols by hand" section.
fn readme_steps() -> Vec<Step> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let start = readme
        .find("## Try the protocols by hand")
        .expect("README has the section 'Try the protocols by hand'");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |e| e + 3);
    let section = &section[..end];
    let mut steps = Vec::new();
    let mut in_block = false;
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            if in_block {
                assert_eq!(line, "```sh", "a by-hand block is sh");
            }
            continue;
        }
        if !in_block || line.trim().is_empty() {
            continue;
        }
        if let Some(announce) = line.strip_prefix("# ") {
            steps.push(Step::Announces(announce.to_string()));
            continue;
        }
        let command = line.split(" #").next().unwrap_or_default().trim();
        let args = command
            .strip_prefix(CARGO_RUN)
            .unwrap_or_else(|| panic!("README step {line:?} does not start {CARGO_RUN:?}"));
        assert!(
            !args.contains(['\'', '"', '\\', '$', '|', '>']),
            "README step {line:?} needs a shell; this test splits on spaces"
        );
        steps.push(Step::Run {
            args: args.split_whitespace().map(String::from).collect(),
            line: line.to_string(),
        });
    }
    assert!(!in_block, "a code block of the section is not closed");
    steps
}

/// A running process, killed (by its PID) and reaped on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn command(args: &[String]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // As the README's `cargo run` does: from the repository's root.
        .current_dir(workspace_root())
        .stdin(Stdio::null());
    cmd
}

/// Starts a server; returns it and its `listening on ...` line.
fn start(args: &[String]) -> (Guard, String) {
    let mut child = command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn poetry-harness serve");
    let stdout = child.stdout.take().expect("stdout");
    let guard = Guard(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut first = String::new();
        let _ = lines.read_line(&mut first);
        let _ = tx.send(first);
        // Keep reading so the server never blocks on a full pipe.
        let _ = std::io::copy(&mut lines, &mut std::io::sink());
    });
    let line = rx
        .recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("{args:?} printed no line within {LIMIT:?}"));
    (guard, line.trim_end().to_string())
}

/// `127.0.0.1:PORT` from `listening on 127.0.0.1:PORT: what`.
fn listening_addr(line: &str) -> &str {
    line.strip_prefix("listening on ")
        .and_then(|rest| rest.split(": ").next())
        .unwrap_or_else(|| panic!("not a listening line: {line:?}"))
}

/// Reads a pipe to its end on a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut all = Vec::new();
        let _ = pipe.read_to_end(&mut all);
        all
    })
}

/// Waits for `child` within [`LIMIT`]; kills it and fails past that.
fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command to completion: exit status, stdout, stderr.
fn run(args: &[String]) -> (ExitStatus, Vec<u8>, String) {
    let mut child = command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn poetry-harness");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = wait_bounded(&mut child, &format!("{args:?}"));
    let stdout = stdout.join().expect("stdout reader");
    let stderr = String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned();
    (status, stdout, stderr)
}

/// A slow server's pacing, from its announcement:
/// `... (806 bytes, 10 bytes every 0.7s)`.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    size: u64,
    num_bytes: u64,
    delay: Duration,
}

impl Pacing {
    fn from_announcement(line: &str) -> Pacing {
        let bad = format!("no '(N bytes, B bytes every D)' in {line:?}");
        let inner = line
            .rsplit_once('(')
            .and_then(|(_, rest)| rest.strip_suffix(')'))
            .expect(&bad);
        let (size, pacing) = inner.split_once(" bytes, ").expect(&bad);
        let (num_bytes, delay) = pacing.split_once(" bytes every ").expect(&bad);
        Pacing {
            size: size.parse().expect(&bad),
            num_bytes: num_bytes.parse().expect(&bad),
            delay: parse_duration(delay).expect(&bad),
        }
    }

    /// How long the whole poem takes at this pacing: a pause per chunk,
    /// counted generously.
    fn whole_poem(&self) -> Duration {
        self.delay * self.size.div_ceil(self.num_bytes) as u32
    }
}

/// What a server of the README is, as far as the test's expectations go.
#[derive(Debug, Clone)]
enum Role {
    Poetry {
        poem: Vec<u8>,
        /// For a slow server: its pacing as written in the README.
        pacing: Option<Pacing>,
    },
    Transform,
    Proxy {
        upstream: u16,
        /// Whether a download through it has ended: later ones come from
        /// its cache at once.
        cached: bool,
    },
}

/// A server started from a README step.
struct Served {
    role: Role,
    port: u16,
    _process: Guard,
}

/// The poem `serve slow|fast POEM` serves, by the rule `serve --help`
/// states: a file, else a built-in poem by name.
fn poem_named(arg: &str) -> Vec<u8> {
    let root = workspace_root();
    std::fs::read(root.join(arg))
        .or_else(|_| std::fs::read(root.join("fixtures/poems").join(format!("{arg}.txt"))))
        .unwrap_or_else(|_| panic!("README serves poem {arg:?}: neither a file nor a built-in"))
}

/// The value after `--name` in `args`.
fn option<'a>(args: &'a [String], name: &str) -> Option<&'a String> {
    let at = args.iter().position(|a| a == name)?;
    Some(
        args.get(at + 1)
            .unwrap_or_else(|| panic!("{name} has no value in {args:?}")),
    )
}

/// The default of `get`'s `--idle-timeout`, from `get --help`.
fn default_idle_timeout() -> Duration {
    let (status, stdout, _) = run(&["get".to_string(), "--help".to_string()]);
    assert!(status.success(), "get --help: {status:?}");
    let help = String::from_utf8_lossy(&stdout);
    let after = &help[help
        .find("--idle-timeout")
        .expect("--idle-timeout in get --help")..];
    let default = after
        .split_once("[default: ")
        .and_then(|(_, rest)| rest.split_once(']'))
        .expect("a default for --idle-timeout")
        .0;
    parse_duration(default).expect("a duration")
}

/// The README's by-hand steps work as written: every server starts and
/// announces what the README says, every `get` exits 0 and prints exactly
/// the poems its addresses serve, and every wait of the steps at the
/// README's own pacing fits the `get`'s idle timeout.
#[test]
fn every_readme_by_hand_step_works_as_written() {
    let default_idle = default_idle_timeout();
    let mut servers: HashMap<u16, Served> = HashMap::new();
    let mut announced: Option<(String, String)> = None; // (line, README line)
    let mut gets = 0;
    let steps = readme_steps();
    let readme_port = |arg: &str, servers: &HashMap<u16, Served>, line: &str| -> Option<u16> {
        let port: u16 = arg.parse().ok()?;
        assert!(
            servers.contains_key(&port),
            "README step {line:?} names port {port}, which no earlier step serves"
        );
        Some(port)
    };
    for step in &steps {
        let (args, line) = match step {
            Step::Announces(expected) => {
                let (got, serve_line) = announced
                    .take()
                    .unwrap_or_else(|| panic!("README line '# {expected}' follows no serve"));
                assert_eq!(
                    &got, expected,
                    "what `{serve_line}` prints (free port in place of the README's)"
                );
                continue;
            }
            Step::Run { args, line } => (args, line),
        };
        announced = None;
        match args.first().map(String::as_str) {
            Some("serve") => {
                let kind = args.get(1).map(String::as_str);
                let port: u16 = option(args, "--port")
                    .unwrap_or_else(|| panic!("README step {line:?} has no --port"))
                    .parse()
                    .expect("a port");
                assert!(!servers.contains_key(&port), "port {port} served twice");
                // As written, on a free port (and a proxy's upstream where
                // the test's server of that README port listens).
                let mut written = args.clone();
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 && args[i - 1] == "--port" {
                        written[i] = "0".into();
                    } else if kind == Some("proxy") && i == 2 {
                        let upstream = readme_port(arg, &servers, line)
                            .unwrap_or_else(|| panic!("README proxy {line:?}: upstream a port"));
                        written[i] = servers[&upstream].port.to_string();
                    }
                }
                let (process, got) = start(&written);
                let addr = listening_addr(&got).to_string();
                assert!(addr.starts_with("127.0.0.1:"), "{got:?}: not loopback");
                let actual: u16 = addr[10..].parse().expect("a port");
                // Compared with a README `# listening on` line as if the
                // server had the README's port.
                let as_readme = got.replacen(&addr, &format!("127.0.0.1:{port}"), 1);
                announced = Some((as_readme, line.clone()));
                let (role, process, actual) = match kind {
                    Some("fast") => (
                        Role::Poetry {
                            poem: poem_named(&args[2]),
                            pacing: None,
                        },
                        process,
                        actual,
                    ),
                    Some("slow") => {
                        // The same server with a short pause.
                        drop(process);
                        let pacing = Pacing::from_announcement(&got);
                        let mut quick = written.clone();
                        match quick.iter().position(|a| a == "--delay") {
                            Some(at) => quick[at + 1] = TEST_DELAY.into(),
                            None => quick.extend(["--delay".into(), TEST_DELAY.into()]),
                        }
                        let (process, quick_line) = start(&quick);
                        let quick_port = listening_addr(&quick_line)[10..].parse().expect("port");
                        let poem = poem_named(&args[2]);
                        assert_eq!(pacing.size, poem.len() as u64, "{got:?}");
                        let role = Role::Poetry {
                            poem,
                            pacing: Some(pacing),
                        };
                        (role, process, quick_port)
                    }
                    Some("transform") => (Role::Transform, process, actual),
                    Some("proxy") => {
                        let upstream = args[2].parse().expect("checked above");
                        let role = Role::Proxy {
                            upstream,
                            cached: false,
                        };
                        (role, process, actual)
                    }
                    other => panic!("README step {line:?}: unknown server {other:?}"),
                };
                servers.insert(
                    port,
                    Served {
                        role,
                        port: actual,
                        _process: process,
                    },
                );
            }
            Some("get") => {
                gets += 1;
                let mut real = args.clone();
                let mut addrs = Vec::new();
                let mut transform = None;
                let mut idle = default_idle;
                let mut i = 1;
                while i < args.len() {
                    let arg = args[i].as_str();
                    match arg {
                        "--transform" | "--idle-timeout" => {
                            let value = option(args, arg).expect("a value");
                            if arg == "--idle-timeout" {
                                idle = parse_duration(value).expect("a duration");
                            } else {
                                let port = readme_port(value, &servers, line)
                                    .expect("--transform names a README port");
                                real[i + 1] = servers[&port].port.to_string();
                                transform = Some(port);
                            }
                            i += 2;
                        }
                        _ if arg.starts_with('-') => {
                            panic!("README step {line:?}: this test does not know option {arg}")
                        }
                        _ => {
                            let port = readme_port(arg, &servers, line)
                                .unwrap_or_else(|| panic!("{line:?}: address {arg:?}"));
                            real[i] = servers[&port].port.to_string();
                            addrs.push(port);
                            i += 1;
                        }
                    }
                }
                if let Some(port) = transform {
                    assert!(matches!(servers[&port].role, Role::Transform));
                }
                let mut expected = Vec::new();
                for &port in &addrs {
                    let (poem, silence) = serves(&servers, port);
                    assert!(
                        silence + silence / 4 + Duration::from_secs(1) < idle,
                        "README step {line:?}: at the README's pacing, {port} may be silent \
                         for {silence:?}, too close to the idle timeout, {idle:?}"
                    );
                    match transform {
                        Some(_) => expected.extend(
                            String::from_utf8(poem)
                                .expect("a UTF-8 poem")
                                .to_lowercase()
                                .into_bytes(),
                        ),
                        None => expected.extend(poem),
                    }
                }
                let (status, stdout, stderr) = run(&real);
                assert!(
                    status.success(),
                    "README step {line:?} (run as {real:?}): {status:?}, stderr:\n{stderr}"
                );
                assert!(
                    stdout == expected,
                    "README step {line:?} (run as {real:?}) printed:\n{}\nnot:\n{}",
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&expected)
                );
                for port in addrs {
                    if let Role::Proxy { cached, .. } =
                        &mut servers.get_mut(&port).expect("served").role
                    {
                        *cached = true;
                    }
                }
            }
            _ => panic!("README step {line:?}: this test runs only serve and get"),
        }
    }
    assert!(
        servers.len() >= 2 && gets >= 2,
        "the README section has lost its steps: {steps:?}"
    );
}

/// The poem the README's server on `port` serves, and the longest silence
/// a download from it may meet at the README's pacing.
fn serves(servers: &HashMap<u16, Served>, port: u16) -> (Vec<u8>, Duration) {
    match &servers[&port].role {
        Role::Poetry { poem, pacing } => (poem.clone(), pacing.map_or(Duration::ZERO, |p| p.delay)),
        Role::Proxy { upstream, cached } => {
            let (poem, _) = serves(servers, *upstream);
            // A proxy sends nothing until it has the whole poem.
            let fetch = match (&servers[upstream].role, cached) {
                (_, true) => Duration::ZERO,
                (Role::Poetry { pacing, .. }, false) => {
                    pacing.map_or(Duration::ZERO, |p| p.whole_poem())
                }
                (other, _) => panic!("a proxy in front of {other:?}"),
            };
            (poem, fetch)
        }
        Role::Transform => panic!("{port} is a transform server, not a poetry server"),
    }
}

/// A pseudo-terminal: (the side the test reads, the side `get` writes).
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

/// Collects what `get` writes to the terminal; `None` once it has ended.
fn terminal_reader(mut master: std::fs::File) -> mpsc::Receiver<Option<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            // EIO once every writer of the terminal has closed it.
            match master.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(n) => {
                    if tx.send(Some(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Reads the terminal, within [`LIMIT`], until what it shows ends with
/// `ending` (`None`: until the terminal ends); carriage returns (the
/// terminal's, before each newline) dropped.
fn read_terminal(rx: &mpsc::Receiver<Option<Vec<u8>>>, seen: &mut Vec<u8>, ending: Option<&[u8]>) {
    let deadline = Instant::now() + LIMIT;
    let waiting_for = match ending {
        Some(e) => format!("{:?}", String::from_utf8_lossy(e)),
        None => "the end of the terminal".to_string(),
    };
    while !ending.is_some_and(|e| seen.ends_with(e)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Some(bytes)) => seen.extend(bytes.into_iter().filter(|&b| b != b'\r')),
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                assert!(
                    ending.is_none(),
                    "the terminal ended before {waiting_for}; it shows {:?}",
                    String::from_utf8_lossy(seen)
                );
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "{waiting_for} not on the terminal within {LIMIT:?}; it shows {:?}",
                String::from_utf8_lossy(seen)
            ),
        }
    }
}

/// A poetry server in the test: sends `first`, waits for the test's word,
/// then sends `rest` and closes.
fn stepped_server(first: &'static [u8], rest: &'static [u8]) -> (u16, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (go, wait) = mpsc::channel();
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.write_all(first).expect("send the first part");
        // The test never answering within LIMIT fails it on its own side.
        let _ = wait.recv_timeout(LIMIT);
        let _ = conn.write_all(rest);
    });
    (port, go)
}

/// `get` with stdout a terminal, its stderr drained.
fn get_on_terminal(ports: &[u16]) -> (Guard, mpsc::Receiver<Option<Vec<u8>>>) {
    let (master, slave) = pty();
    let mut args = vec!["get".to_string()];
    args.extend(ports.iter().map(u16::to_string));
    let mut cmd = command(&args);
    cmd.stdout(Stdio::from(slave)).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn poetry-harness get");
    // The test's copy of the terminal's writing side closes with `cmd`, so
    // the terminal ends when `get` does.
    drop(cmd);
    drain(child.stderr.take().expect("stderr"));
    (Guard(child), terminal_reader(master))
}

/// The README says the slow server's poem "arrives ten bytes at a time":
/// on a terminal, `get` must show bytes as they come, not only once the
/// poem has ended. The server sends the rest only after the first line
/// has shown on the terminal, so a `get` that waits for the end never
/// shows it and fails here, whatever the machine's speed.
#[test]
fn get_on_a_terminal_shows_the_poem_as_it_arrives() {
    let (port, go) = stepped_server(b"Tyger Tyger, burning bright,\n", b"In the forests\n");
    let (mut get, rx) = get_on_terminal(&[port]);
    let mut seen = Vec::new();
    // Before the server sends the rest: a `get` that prints only whole
    // poems shows nothing, times out waiting for data, and fails here.
    read_terminal(&rx, &mut seen, Some(b"bright,\n"));
    go.send(()).expect("server waits");
    read_terminal(&rx, &mut seen, None);
    let status = wait_bounded(&mut get.0, "get");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        String::from_utf8_lossy(&seen),
        "Tyger Tyger, burning bright,\nIn the forests\n",
        "exactly the poem, once"
    );
}

/// Several downloads on a terminal: the poems still come whole, in
/// argument order (the counters go to stderr, here not a terminal).
#[test]
fn get_on_a_terminal_prints_several_poems_in_argument_order() {
    let (first, go_first) = stepped_server(b"first poem, ", b"whole\n");
    let (second, go_second) = stepped_server(b"second poem\n", b"");
    let (mut get, rx) = get_on_terminal(&[first, second]);
    go_second.send(()).expect("server waits");
    go_first.send(()).expect("server waits");
    let mut seen = Vec::new();
    read_terminal(&rx, &mut seen, None);
    let status = wait_bounded(&mut get.0, "get");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        String::from_utf8_lossy(&seen),
        "first poem, whole\nsecond poem\n"
    );
}

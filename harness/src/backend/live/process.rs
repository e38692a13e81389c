//! Starting, watching and ending the program under test, contained.
//!
//! Every program runs as `sh -c 'sh -c "$1"; ...'`: the program's
//! parent is a shell of its own, never the harness, so a program that
//! kills its parent (`kill -9 $PPID`) kills that shell only. Containment,
//! per program:
//! - its own session (`setsid`): ending the session's process group ends
//!   every process that stayed in it;
//! - the harness is a child subreaper ([`become_subreaper`]), so processes
//!   that escape the session (double fork + `setsid`) are re-parented to
//!   the harness instead of init, and are found by the token
//!   `POETRY_HARNESS_RUN` in their environment, by session, or by
//!   ancestry, killed and reaped when the program is ended ([`Program::kill`]);
//! - rlimits set in the child only: open files, processes (the user's
//!   current count plus headroom: the limit is per user), file size, no
//!   core dumps, CPU seconds;
//! - a fresh temporary working directory, removed when the program ends;
//!   relative paths typed in the command are made absolute first
//!   ([`super::launch::absolutize`]) and the harness's directory is in
//!   `POETRY_HARNESS_DIR`;
//! - an environment built from an allowlist ([`ENV_ALLOWLIST`]), plus what
//!   the caller passes (`POETRY_CASE`, `PYTHONUNBUFFERED`).
//!
//! Output is bounded: at most [`OUTPUT_CAP`] bytes kept of each of stdout
//! and stderr (the rest counted), stdout lines cut at [`LINE_CAP`] bytes
//! and queued in a bounded channel (dropped and counted when nobody reads
//! them); [`Program::notes`] says what was cut.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use nix::sys::signal::Signal;

/// Most bytes kept of each of stdout and stderr: room for the catalog's
/// largest client poem (1 MB) with progress lines, and a fixed cost per
/// program whatever it prints.
pub const OUTPUT_CAP: usize = 4 * 1024 * 1024;

/// Most bytes of one stdout line passed on for readiness detection (a
/// line naming a port is short; the rest of a longer line is dropped).
pub const LINE_CAP: usize = 4096;

/// Stdout lines queued for [`Program::wait_for_line`]; more are dropped
/// (and counted) until it reads them, so a program that prints a line per
/// connection after it is ready never blocks and never fills memory.
pub const LINE_QUEUE: usize = 256;

/// Variables passed from the harness's environment to every program (a
/// trailing `*` is a prefix). Everything else, secrets included, is left
/// out.
pub const ENV_ALLOWLIST: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TERM",
    "TMPDIR",
    "PYTHON*",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "JAVA_HOME",
    "CLASSPATH",
    "GOPATH",
    "GOROOT",
    "GOCACHE",
    "GOFLAGS",
    "NODE_PATH",
    "NODE_OPTIONS",
    "RUBYLIB",
    "GEM_HOME",
    "GEM_PATH",
    "PERL5LIB",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "DOTNET_ROOT",
    "LD_LIBRARY_PATH",
];

/// The variable holding the token that marks every process started for
/// one program.
pub const RUN_TOKEN_VAR: &str = "POETRY_HARNESS_RUN";

/// The variable holding the harness's working directory (programs run in
/// a temporary one).
pub const ORIGIN_DIR_VAR: &str = "POETRY_HARNESS_DIR";

/// Open files per process.
const NOFILE: u64 = 1024;
/// Processes a program may add to the user's current count (the limit is
/// per user, so it is set relative to what already runs).
const NPROC_HEADROOM: u64 = 256;
/// Largest file a program may write.
const FSIZE: u64 = 64 * 1024 * 1024;
/// CPU seconds per process: far above any case at any time scale, low
/// enough to stop a spinning leftover.
const CPU_SECONDS: u64 = 120;

/// The outer shell: runs the program as its child, so the program's parent
/// is this shell and not the harness; a program killed by a signal is
/// passed on as the same signal (the shell's status 128 + N would read as
/// an exit status).
const WRAPPER: &str = "sh -c \"$1\"; s=$?; \
    if [ $s -gt 128 ] && [ $s -lt 160 ]; then kill -$((s - 128)) $$; fi; exit $s";

/// Programs this harness started and has not ended yet: session ID and token.
fn live_programs() -> &'static Mutex<BTreeMap<i32, String>> {
    static PROGRAMS: OnceLock<Mutex<BTreeMap<i32, String>>> = OnceLock::new();
    PROGRAMS.get_or_init(Mutex::default)
}

/// Makes this process a child subreaper (once): orphans of programs come
/// back to it, where [`Program::kill`] finds them. Returns whether it is one.
pub fn become_subreaper() -> bool {
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(|| nix::sys::prctl::set_child_subreaper(true).is_ok())
}

/// Raises the harness's own soft limit on open files to its hard limit
/// (once), as Go's runtime does: the peers of parallel cases hold a socket
/// per connection, and a program that opens many connections should not
/// starve another case's peers. Programs get their own lower limit
/// (1024). Returns the soft limit now in force.
pub fn raise_open_file_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    static DONE: OnceLock<u64> = OnceLock::new();
    *DONE.get_or_init(|| match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 0,
    })
}

/// What an interrupt calls, on the signal thread, before killing the
/// programs; it must not block.
type Hook = Box<dyn Fn(Signal) + Send + Sync>;

fn hook() -> &'static Mutex<Option<Hook>> {
    static HOOK: OnceLock<Mutex<Option<Hook>>> = OnceLock::new();
    HOOK.get_or_init(Mutex::default)
}

/// Set by the first interrupt: no program starts after it.
static INTERRUPTED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The signal that interrupted the run, if one did.
pub fn interrupted_by() -> Option<Signal> {
    Signal::try_from(INTERRUPTED.load(Ordering::SeqCst)).ok()
}

/// The exit status for a run ended by `signal`: 128 plus its number
/// (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).
pub fn exit_status_for(signal: Signal) -> i32 {
    128 + signal as i32
}

/// The write end of the pipe the signal handler writes signal numbers to
/// (-1 until installed).
static SIGNAL_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Set under `--sandbox`, where the harness is PID 1 of its PID
/// namespace and every other process in it was started for a program:
/// only signals sent from outside the namespace (the outer process, which
/// forwards them; a terminal) interrupt the run. See [`from_outside_only`].
static FROM_OUTSIDE_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on, an interrupt sent by a process of this PID namespace is
/// ignored (its sender's PID reads as 0 only from outside): a program
/// cannot stop the run. For `--sandbox`, where nothing but programs runs
/// inside.
pub fn from_outside_only() {
    FROM_OUTSIDE_ONLY.store(true, Ordering::SeqCst);
}

/// The signal handler: writes the signal's number to the pipe, which is
/// all a handler may safely do; the signal thread does the rest.
extern "C" fn note_signal(
    signal: nix::libc::c_int,
    info: *mut nix::libc::siginfo_t,
    _context: *mut nix::libc::c_void,
) {
    if FROM_OUTSIDE_ONLY.load(Ordering::Relaxed) && !info.is_null() {
        // SAFETY: an SA_SIGINFO handler gets a valid siginfo_t; `si_pid`
        // is 0 unless a process of this PID namespace sent the signal.
        if unsafe { (*info).si_pid() } != 0 {
            return;
        }
    }
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: the write end is never closed once installed.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = nix::unistd::write(fd, &[signal as u8]);
    }
}

/// Handles SIGINT, SIGTERM and SIGHUP (once per process; any thread may
/// receive them). A SIGHUP ignored when the harness started (`nohup`)
/// stays ignored. On the first: no program starts any more, the hook set
/// with [`on_interrupt`] runs (without one: exit 128 + the signal's
/// number), then every program still running is killed. On a second:
/// kill again and exit at once.
pub fn install_interrupt_handler() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
        use std::io::Read;
        use std::os::fd::IntoRawFd;
        let Ok((mut rx, tx)) = std::os::unix::net::UnixStream::pair() else {
            return;
        };
        // The handler must never block.
        if tx.set_nonblocking(true).is_err() {
            return;
        }
        SIGNAL_PIPE.store(tx.into_raw_fd(), Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name("poetry-harness-signals".into())
            .spawn(move || loop {
                let mut byte = [0u8];
                if rx.read_exact(&mut byte).is_err() {
                    return;
                }
                let Ok(signal) = Signal::try_from(i32::from(byte[0])) else {
                    continue;
                };
                let first = INTERRUPTED
                    .compare_exchange(0, signal as i32, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok();
                if !first {
                    kill_all();
                    std::process::exit(exit_status_for(signal));
                }
                eprintln!(
                    "poetry-harness: interrupted by {signal}; stopping the programs under test"
                );
                // The hook first (it tells the run to stop), so that a case
                // ended by the kill below is known to be interrupted.
                match hook().lock().ok().and_then(|mut h| h.take()) {
                    Some(f) => {
                        f(signal);
                        kill_all();
                    }
                    None => {
                        kill_all();
                        std::process::exit(exit_status_for(signal));
                    }
                }
            });
        if spawned.is_err() {
            return;
        }
        let action = SigAction::new(
            SigHandler::SigAction(note_signal),
            SaFlags::SA_RESTART | SaFlags::SA_SIGINFO,
            SigSet::empty(),
        );
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            // SAFETY: the handler only loads an atomic and calls write(2).
            let old = unsafe { sigaction(signal, &action) };
            if let Ok(old) = old {
                if signal == Signal::SIGHUP && old.handler() == SigHandler::SigIgn {
                    // SAFETY: restores what was there.
                    let _ = unsafe { sigaction(signal, &old) };
                }
            }
        }
    });
}

/// What to do on an interrupt, before the programs are killed: tell the
/// run to stop, arrange for reports. Runs on the signal thread, once, and
/// must not block.
pub fn on_interrupt(f: impl Fn(Signal) + Send + Sync + 'static) {
    if let Ok(mut h) = hook().lock() {
        *h = Some(Box::new(f));
    }
}

/// Kills every program this harness started and has not ended, with their
/// escaped descendants, and every orphan re-parented to the harness.
pub fn kill_all() {
    let programs = live_programs()
        .lock()
        .map(|g| g.clone())
        .unwrap_or_default();
    for (sid, token) in programs {
        // The session leader is the program's direct child: its status
        // belongs to its `Child`, never reaped here.
        sweep(sid, &token, Some(sid));
    }
    kill_orphans();
}

/// Kills and reaps every child of this process that is not a program it
/// started: the orphans a subreaper inherits. For the end of a run, when
/// programs whose descendants changed their environment and session are
/// beyond [`Program::kill`]'s reach.
pub fn kill_orphans() {
    let me = std::process::id() as i32;
    let running: BTreeSet<i32> = live_programs()
        .lock()
        .map(|g| g.keys().copied().collect())
        .unwrap_or_default();
    for _ in sweep_rounds() {
        let orphans: Vec<i32> = processes()
            .into_iter()
            .filter(|p| p.ppid == me && !running.contains(&p.pid) && !running.contains(&p.sid))
            .map(|p| p.pid)
            .collect();
        if orphans.is_empty() {
            return;
        }
        for pid in orphans {
            signal(pid);
            reap(pid);
        }
    }
}

/// Captured output, capped at [`OUTPUT_CAP`].
#[derive(Debug, Default, Clone)]
pub struct Captured {
    /// The bytes kept.
    pub bytes: Vec<u8>,
    /// Whether more arrived than was kept.
    pub truncated: bool,
    /// How many bytes arrived in all.
    pub seen: u64,
}

/// A running program under test.
#[derive(Debug)]
pub struct Program {
    child: Child,
    /// Its session and process group (the outer shell's PID).
    sid: i32,
    token: String,
    stdout: Arc<Mutex<Captured>>,
    stderr: Arc<Mutex<Captured>>,
    lines: mpsc::Receiver<String>,
    /// Lines dropped: queue full, or cut at [`LINE_CAP`].
    dropped_lines: Arc<AtomicU64>,
    cut_lines: Arc<AtomicU64>,
    /// The most CPU ticks [`Program::cpu_time`] has read for the session.
    cpu_ticks_seen: AtomicU64,
    readers: Vec<JoinHandle<()>>,
    workdir: Option<super::workdir::Workdir>,
    ended: bool,
}

/// Limits applied in the child, computed by the parent.
#[derive(Debug, Clone, Copy)]
struct Limits {
    nproc: u64,
}

impl Limits {
    fn now() -> Self {
        let uid = nix::unistd::getuid().as_raw();
        let mine = std::fs::read_dir("/proc")
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_str()
                            .is_some_and(|n| n.parse::<u32>().is_ok())
                    })
                    .filter(|e| {
                        use std::os::unix::fs::MetadataExt;
                        e.metadata().is_ok_and(|m| m.uid() == uid)
                    })
                    .count() as u64
            })
            .unwrap_or(0);
        Limits {
            nproc: mine + NPROC_HEADROOM,
        }
    }

    /// In the child, between fork and exec: only system calls.
    fn apply(self) -> std::io::Result<()> {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let lower = |r: Resource, want: u64| -> std::io::Result<()> {
            let (soft, hard) = getrlimit(r)?;
            let hard = hard.min(want.max(1));
            setrlimit(r, soft.min(hard), hard)?;
            Ok(())
        };
        lower(Resource::RLIMIT_NOFILE, NOFILE)?;
        lower(Resource::RLIMIT_NPROC, self.nproc)?;
        lower(Resource::RLIMIT_FSIZE, FSIZE)?;
        lower(Resource::RLIMIT_CPU, CPU_SECONDS)?;
        let (_, hard) = getrlimit(Resource::RLIMIT_CORE)?;
        setrlimit(Resource::RLIMIT_CORE, 0, hard)?;
        Ok(())
    }
}

/// The harness's values of the variables `names` (those it has), to pass
/// to a program beyond [`ENV_ALLOWLIST`]: what a manifest's `env` list
/// names, for example.
pub fn pass_through(names: &[String]) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|n| Some((n.clone(), std::env::var(n).ok()?)))
        .collect()
}

/// The number every token of this run starts with: the harness's PID, or
/// under `--sandbox` the PID of the outer process as the host sees it
/// (fixed by the first call, which [`super::sandbox::enter`] makes before
/// it forks), so that tokens read from the host name this run.
pub fn run_id() -> u32 {
    static ID: OnceLock<u32> = OnceLock::new();
    *ID.get_or_init(std::process::id)
}

fn next_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", run_id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn allowed(name: &str) -> bool {
    ENV_ALLOWLIST.iter().any(|a| match a.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == *a,
    })
}

impl Program {
    /// Starts `command` with `sh`, contained (see the module docs), with
    /// these extra environment variables.
    pub fn spawn(command: &str, env: &[(String, String)]) -> std::io::Result<Program> {
        if interrupted_by().is_some() {
            return Err(std::io::Error::other("the run was interrupted"));
        }
        become_subreaper();
        raise_open_file_limit();
        let origin = std::env::current_dir()?;
        // Once per harness: the directories of harnesses that were killed.
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| {
            super::workdir::sweep(&std::env::temp_dir());
        });
        let workdir = super::workdir::Workdir::create_in(&std::env::temp_dir())?;
        let command = super::launch::absolutize(command, &origin);
        let token = next_token();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WRAPPER)
            .arg("sh")
            .arg(&command)
            .current_dir(workdir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .env_clear();
        for (k, v) in std::env::vars_os() {
            if k.to_str().is_some_and(allowed) {
                cmd.env(k, v);
            }
        }
        cmd.env(ORIGIN_DIR_VAR, &origin).env(RUN_TOKEN_VAR, &token);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let limits = Limits::now();
        // SAFETY: only async-signal-safe system calls run between fork and
        // exec: setsid, sigprocmask, getrlimit and setrlimit. (Signal
        // handlers are reset by exec.)
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid()?;
                // Whatever the harness's threads block, the program starts
                // with no signal blocked.
                nix::sys::signal::sigprocmask(
                    nix::sys::signal::SigmaskHow::SIG_SETMASK,
                    Some(&nix::sys::signal::SigSet::empty()),
                    None,
                )?;
                limits.apply()
            });
        }
        let mut child = cmd.spawn()?;
        let sid = child.id().map(|id| id as i32).unwrap_or(0);
        live_programs()
            .lock()
            .expect("programs lock")
            .insert(sid, token.clone());
        let (tx, lines) = mpsc::channel(LINE_QUEUE);
        let stdout = Arc::new(Mutex::new(Captured::default()));
        let stderr = Arc::new(Mutex::new(Captured::default()));
        let dropped_lines = Arc::new(AtomicU64::new(0));
        let cut_lines = Arc::new(AtomicU64::new(0));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            let lines = LineSink {
                tx,
                dropped: dropped_lines.clone(),
                cut: cut_lines.clone(),
            };
            readers.push(tokio::spawn(capture(out, stdout.clone(), Some(lines))));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(capture(err, stderr.clone(), None)));
        }
        Ok(Program {
            child,
            sid,
            token,
            stdout,
            stderr,
            lines,
            dropped_lines,
            cut_lines,
            cpu_ticks_seen: AtomicU64::new(0),
            readers,
            workdir: Some(workdir),
            ended: false,
        })
    }

    /// Waits for a stdout line that `matches`, for at most `limit`. Once
    /// stdout has ended (a server may close it, or `exec` without it), it
    /// waits for the program to exit instead: `None` at once for a program
    /// that crashed, and time left, within `limit`, for a port probe run
    /// alongside to find a live server ready.
    pub async fn wait_for_line(
        &mut self,
        limit: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Option<String> {
        tokio::time::timeout(limit, async {
            while let Some(line) = self.lines.recv().await {
                if matches(&line) {
                    return Some(line);
                }
            }
            let _ = self.child.wait().await;
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// Waits for the program to exit, for at most `limit`, then briefly
    /// for its output to be read to the end.
    pub async fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()?
            .ok();
        self.drain(OUTPUT_DRAIN).await;
        status
    }

    /// Waits up to `limit` for stdout and stderr to reach their end (a
    /// descendant still holding them open keeps them from it).
    async fn drain(&mut self, limit: Duration) {
        let readers = std::mem::take(&mut self.readers);
        let _ = tokio::time::timeout(limit, async {
            for r in readers {
                let _ = r.await;
            }
        })
        .await;
    }

    /// Its stderr once the program has exited and the pipe is read to its
    /// end (or 200 ms have passed), as text.
    pub async fn stderr_after_exit(&mut self) -> String {
        self.drain(OUTPUT_DRAIN).await;
        String::from_utf8_lossy(&self.stderr().bytes).into_owned()
    }

    /// Whether it has exited already.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills the program and everything it started: its session, then
    /// every process carrying its token or descending from it, escaped
    /// ones included; reaps those re-parented to the harness; removes its
    /// working directory.
    pub fn kill(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        sweep(self.sid, &self.token, Some(self.sid));
        let _ = self.child.start_kill();
        live_programs()
            .lock()
            .expect("programs lock")
            .remove(&self.sid);
        if let Some(dir) = self.workdir.take() {
            let _ = dir.close();
        }
    }

    /// The CPU time (user and system) its session has used so far: every
    /// process in it, and the children they have waited for. Read from
    /// `/proc` in clock ticks (usually 10 ms); `None` where there is no
    /// `/proc`. A process that escaped the session is not counted.
    ///
    /// A child's time moves into its parent's at the moment it is reaped,
    /// so one scan of `/proc` that reads the parent just before and the
    /// child just after misses that child's time (a CI run read no time at
    /// all for a shell whose busy child had just exited). The session's
    /// time is read twice and the larger kept, and never less than an
    /// earlier call returned: the time used so far cannot shrink, though
    /// it seems to when a child outlives its parent and is reaped by the
    /// harness.
    pub fn cpu_time(&self) -> Option<Duration> {
        let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|&t| t > 0)?;
        let read = || {
            let procs = processes();
            (!procs.is_empty()).then(|| session_ticks(&procs, self.sid))
        };
        let ticks = read()?.max(read().unwrap_or(0));
        let ticks = ticks.max(self.cpu_ticks_seen.fetch_max(ticks, Ordering::Relaxed));
        Some(Duration::from_secs_f64(ticks as f64 / tick as f64))
    }

    /// What it wrote on stdout so far.
    pub fn stdout(&self) -> Captured {
        self.stdout.lock().expect("capture lock").clone()
    }

    /// What it wrote on stderr so far.
    pub fn stderr(&self) -> Captured {
        self.stderr.lock().expect("capture lock").clone()
    }

    /// What was cut from its output, one sentence each, for the transcript
    /// (none when nothing was): stdout or stderr past [`OUTPUT_CAP`],
    /// lines past [`LINE_CAP`] or dropped from the line queue.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for (name, c) in [("stdout", self.stdout()), ("stderr", self.stderr())] {
            if c.truncated {
                notes.push(format!(
                    "{name} truncated: kept the first {} of {} bytes",
                    c.bytes.len(),
                    c.seen
                ));
            }
        }
        let cut = self.cut_lines.load(Ordering::Relaxed);
        if cut > 0 {
            notes.push(format!(
                "{cut} stdout line(s) longer than {LINE_CAP} bytes were cut for readiness detection"
            ));
        }
        let dropped = self.dropped_lines.load(Ordering::Relaxed);
        if dropped > 0 {
            notes.push(format!(
                "{dropped} stdout line(s) not examined for readiness (more than {LINE_QUEUE} queued)"
            ));
        }
        notes
    }

    /// Logs [`Program::notes`] in the transcript as the subject's events,
    /// so a student reads that output was cut.
    pub fn log_notes(&self, rec: &crate::transcript::Recorder) {
        for note in self.notes() {
            rec.log("subject", note);
        }
    }

    /// Its token (the value of [`RUN_TOKEN_VAR`] in its environment).
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How long to wait, once a program has exited, for its output pipes to
/// reach their end.
const OUTPUT_DRAIN: Duration = Duration::from_millis(200);

/// Where complete stdout lines go.
struct LineSink {
    tx: mpsc::Sender<String>,
    dropped: Arc<AtomicU64>,
    cut: Arc<AtomicU64>,
}

impl LineSink {
    fn send(&self, line: &[u8], cut: bool) {
        if cut {
            self.cut.fetch_add(1, Ordering::Relaxed);
        }
        let text = String::from_utf8_lossy(line).trim_end().to_string();
        if self.tx.try_send(text).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Reads a pipe to its end in fixed chunks: keeps up to [`OUTPUT_CAP`]
/// bytes, counts the rest, and passes lines (cut at [`LINE_CAP`]) on.
/// Memory stays bounded whatever the program writes, newlines or not.
async fn capture(
    mut pipe: impl AsyncRead + Unpin,
    into: Arc<Mutex<Captured>>,
    lines: Option<LineSink>,
) {
    let mut chunk = vec![0u8; 16 * 1024];
    let mut line: Vec<u8> = Vec::new();
    let mut line_cut = false;
    loop {
        let n = match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let buf = &chunk[..n];
        {
            let mut c = into.lock().expect("capture lock");
            let room = OUTPUT_CAP.saturating_sub(c.bytes.len());
            c.truncated |= buf.len() > room;
            c.seen += buf.len() as u64;
            c.bytes.extend_from_slice(&buf[..buf.len().min(room)]);
        }
        let Some(sink) = &lines else { continue };
        let mut rest = buf;
        while !rest.is_empty() {
            let (part, newline) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (&rest[..at], true),
                None => (rest, false),
            };
            let room = LINE_CAP.saturating_sub(line.len());
            line_cut |= part.len() > room;
            line.extend_from_slice(&part[..part.len().min(room)]);
            rest = &rest[(part.len() + usize::from(newline)).min(rest.len())..];
            if newline {
                sink.send(&line, line_cut);
                line.clear();
                line_cut = false;
            }
        }
    }
    if let (Some(sink), false) = (&lines, line.is_empty()) {
        sink.send(&line, line_cut);
    }
}

/// One process, from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy)]
struct Proc {
    pid: i32,
    ppid: i32,
    pgrp: i32,
    sid: i32,
    zombie: bool,
    /// CPU time in clock ticks: its own (user and system) and that of
    /// its children it has waited for.
    cpu_ticks: u64,
}

/// Every process visible in `/proc`.
fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name may hold spaces and parentheses: fields
            // follow the last ')'.
            let after = &stat[stat.rfind(')')? + 1..];
            let mut f = after.split_whitespace();
            let state = f.next()?;
            let ppid = f.next()?.parse().ok()?;
            let pgrp = f.next()?.parse().ok()?;
            let sid = f.next()?.parse().ok()?;
            // Fields 14 to 17 of proc(5): utime, stime, cutime, cstime.
            let cpu_ticks = f
                .skip(7)
                .take(4)
                .map(|t| t.parse::<i64>().map_or(0, |t| t.max(0) as u64))
                .sum();
            Some(Proc {
                pid,
                ppid,
                pgrp,
                sid,
                zombie: state == "Z" || state == "X",
                cpu_ticks,
            })
        })
        .collect()
}

/// The CPU ticks of the processes of session `sid`, with their reaped
/// children's.
fn session_ticks(procs: &[Proc], sid: i32) -> u64 {
    procs
        .iter()
        .filter(|p| p.sid == sid)
        .map(|p| p.cpu_ticks)
        .sum()
}

/// Whether `/proc/PID/environ` holds `NAME=token`.
fn carries(pid: i32, token: &str) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let want = format!("{RUN_TOKEN_VAR}={token}");
    env.split(|&b| b == 0).any(|v| v == want.as_bytes())
}

/// How long a sweep goes on while processes it killed are still alive:
/// a program that forks as fast as it can may add some between a scan and
/// the kills, and a process sent SIGKILL still has to be scheduled to die,
/// which on a loaded machine took longer than 20 rounds 2 ms apart (the
/// earlier bound: a stress run saw a killed `sleep` outlive an interrupted
/// harness). A sweep ends as soon as nothing it looks for is alive.
const SWEEP_LIMIT: Duration = Duration::from_secs(2);

/// The rounds of a sweep: at least 20, then until [`SWEEP_LIMIT`] has
/// passed; each after the first starts 2 ms after the one before.
fn sweep_rounds() -> impl Iterator<Item = ()> {
    let start = std::time::Instant::now();
    let mut round = 0usize;
    std::iter::from_fn(move || {
        if round >= 20 && start.elapsed() >= SWEEP_LIMIT {
            return None;
        }
        if round > 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        round += 1;
        Some(())
    })
}

fn signal(pid: i32) {
    use nix::sys::signal::{kill, Signal};
    let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
}

/// Reaps `pid` if it is a (zombie) child of this process; never blocks.
fn reap(pid: i32) {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    let _ = waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
}

/// Kills every process of the program whose session is `sid`: the
/// session's group, then, until none is left, every process in that
/// session or group, descending from `root`, or carrying `token`. Reaps
/// those re-parented to the harness (not `root` itself, whose status
/// belongs to its `Child`).
fn sweep(sid: i32, token: &str, root: Option<i32>) {
    if sid <= 1 {
        return;
    }
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(sid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let me = std::process::id() as i32;
    for _ in sweep_rounds() {
        let all = processes();
        let mut family: BTreeSet<i32> = root.into_iter().collect();
        // Descendants of root: grow the set until it is closed.
        loop {
            let before = family.len();
            for p in &all {
                if family.contains(&p.ppid) {
                    family.insert(p.pid);
                }
            }
            if family.len() == before {
                break;
            }
        }
        let targets: Vec<Proc> = all
            .iter()
            .filter(|p| p.pid != me && p.pid > 1)
            .filter(|p| {
                p.sid == sid || p.pgrp == sid || family.contains(&p.pid) || carries(p.pid, token)
            })
            .copied()
            .collect();
        let alive = targets.iter().filter(|p| !p.zombie).count();
        let ours = targets
            .iter()
            .filter(|p| p.ppid == me && Some(p.pid) != root)
            .count();
        if alive == 0 && ours == 0 {
            return;
        }
        for p in &targets {
            if !p.zombie {
                signal(p.pid);
            }
            if p.ppid == me && Some(p.pid) != root {
                reap(p.pid);
            }
        }
    }
}

/// Finds a free port on 127.0.0.1 for a program to listen on: one that
/// any program could bind now, with or without `SO_REUSEADDR`, let go. It
/// is taken below the kernel's ephemeral range
/// (`ip_local_port_range`), so that between letting it go and the program
/// binding it no outgoing connection, of this process or any other, can be
/// given it: a port from `bind(0)` could be, and then a correct program
/// failed to start with "address in use" on a busy machine. Successive
/// calls move on through the range from a place that depends on the PID, so
/// concurrent cases and harnesses do not offer each other the same port.
pub fn free_port() -> std::io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, high) = (FREE_PORTS_FROM, ephemeral_low.min(65536));
    if high <= low + 100 {
        // No room below the ephemeral range: let the kernel choose.
        return Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port());
    }
    let span = high - low;
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let candidates = (0..span).map(|_| {
        let port = low + NEXT.fetch_add(1, Ordering::Relaxed) % span;
        u16::try_from(port).unwrap_or(u16::MAX)
    });
    first_bindable(candidates).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("no free port on 127.0.0.1 from {low} to {high}"),
        )
    })
}

/// The first of `candidates` that any program could bind now.
fn first_bindable(mut candidates: impl Iterator<Item = u16>) -> Option<u16> {
    candidates.find(|&port| bindable_by_any_program(port))
}

/// Whether a program could bind `port` on 127.0.0.1 now, whether or not
/// it sets `SO_REUSEADDR`: the bind is tried without it, which fails on
/// any socket left on the port, a connection in `TIME_WAIT` included.
/// std's `TcpListener::bind` sets `SO_REUSEADDR` and so ignores those: a
/// port a server closed a connection on less than a minute before (a
/// poetry server closes first, so its side waits) passed that check, and
/// a program that binds without the option (a plain Python `socket`
/// server, say) then failed to start with "address already in use".
fn bindable_by_any_program(port: u16) -> bool {
    use socket2::{Domain, Socket, Type};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    Socket::new(Domain::IPV4, Type::STREAM, None).is_ok_and(|s| s.bind(&addr.into()).is_ok())
}

/// The lowest port [`free_port`] offers: above the ports the README's
/// by-hand examples use (10000 to 12000).
const FREE_PORTS_FROM: u32 = 20000;

/// PIDs of the processes whose environment carries [`RUN_TOKEN_VAR`] with
/// a value starting with `prefix` (zombies left out): what a test checks
/// is zero after a run.
pub fn processes_with_token(prefix: &str) -> Vec<i32> {
    let want = format!("{RUN_TOKEN_VAR}={prefix}");
    processes()
        .into_iter()
        .filter(|p| !p.zombie)
        .filter(|p| {
            std::fs::read(format!("/proc/{}/environ", p.pid)).is_ok_and(|env| {
                env.split(|&b| b == 0)
                    .any(|v| v.starts_with(want.as_bytes()))
            })
        })
        .map(|p| p.pid)
        .collect()
}

/// Whether `path` is the working directory a program was given (for tests).
pub fn is_program_workdir(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(super::workdir::PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_below_the_ephemeral_range_bindable_and_not_repeated() {
        let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let ports: Vec<u16> = (0..50).map(|_| free_port().unwrap()).collect();
        for &p in &ports {
            assert!((20000..ephemeral_low).contains(&p), "{p}");
            assert!(bindable_by_any_program(p), "{p}");
            std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
    }

    /// A server's side of a connection it closed first waits in
    /// `TIME_WAIT` on the server's port: a listener with `SO_REUSEADDR`
    /// (std's, the check `free_port` made before) binds there, a program
    /// without it cannot, and `free_port` must not offer the port.
    #[test]
    fn a_port_a_connection_waits_on_is_not_bindable_by_any_program() {
        use std::io::Read;
        let port = free_port().unwrap();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (served, _) = listener.accept().unwrap();
        // The server closes first; the client reads the FIN and closes.
        drop(served);
        assert_eq!(client.read(&mut [0u8; 8]).unwrap(), 0);
        drop(client);
        drop(listener);
        // The server side reaches TIME_WAIT once the client's FIN is in.
        let mut waits = 0;
        while bindable_by_any_program(port) {
            waits += 1;
            assert!(waits < 200, "port {port} never held a TIME_WAIT");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "SO_REUSEADDR binds beside a TIME_WAIT"
        );
        // free_port's choice passes it over for the next port.
        let next = free_port().unwrap();
        assert_eq!(first_bindable([port, next].into_iter()), Some(next));
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    const LIMIT: Duration = Duration::from_secs(10);

    /// A shell loop that burns CPU for `n` rounds.
    fn busy(n: u32) -> String {
        format!("i=0; while [ $i -lt {n} ]; do i=$((i+1)); done")
    }

    #[test]
    fn double_forked_grandchildren_are_killed_with_the_program() {
        rt().block_on(async {
            // The grandchild leaves the session and the process tree.
            let mut p = Program::spawn(
                "sh -c 'setsid sh -c \"sleep 30\" & sleep 30' & echo started",
                &[],
            )
            .unwrap();
            let token = p.token().to_string();
            p.wait_for_line(LIMIT, |l| l == "started").await.unwrap();
            // Give the grandchildren a moment to exist (bounded).
            for _ in 0..200 {
                if processes_with_token(&token).len() >= 3 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(!processes_with_token(&token).is_empty());
            p.kill();
            assert_eq!(processes_with_token(&token), Vec::<i32>::new());
        });
    }

    #[test]
    fn cpu_time_counts_the_whole_session_children_included() {
        rt().block_on(async {
            // A child of the session's shell burns CPU (about 0.1-1 s),
            // then the program idles until killed.
            let mut p = Program::spawn(
                &format!("sh -c '{}; echo done' ; sleep 30", busy(300_000)),
                &[],
            )
            .unwrap();
            let before = p.cpu_time().expect("Linux has /proc");
            p.wait_for_line(Duration::from_secs(60), |l| l == "done")
                .await
                .unwrap();
            // The loop's child said done: its time is its own, or the
            // shell's once reaped.
            let after = p.cpu_time().unwrap();
            assert!(after > before, "{before:?} then {after:?}");
            p.kill();
        });
    }

    #[test]
    fn cpu_time_never_goes_back_while_children_come_and_go() {
        rt().block_on(async {
            // Busy children a few ticks long each, reaped one after
            // another: scans race the reaping.
            let mut p = Program::spawn(&format!("while :; do sh -c '{}'; done", busy(20_000)), &[])
                .unwrap();
            let mut last = Duration::ZERO;
            for _ in 0..2000 {
                let now = p.cpu_time().unwrap();
                assert!(now >= last, "{last:?} then {now:?}");
                last = now;
                if last >= Duration::from_millis(500) {
                    break;
                }
            }
            assert!(last > Duration::ZERO, "no CPU time read");
            p.kill();
        });
    }

    #[test]
    fn the_environment_is_an_allowlist_and_the_directory_is_fresh() {
        std::env::set_var("POETRY_HARNESS_TEST_SECRET", "hunter2");
        rt().block_on(async {
            let mut p = Program::spawn(
                "env; pwd",
                &[("POETRY_CASE".to_string(), "x.y".to_string())],
            )
            .unwrap();
            assert!(p.wait(LIMIT).await.is_some_and(|s| s.success()));
            let out = String::from_utf8(p.stdout().bytes).unwrap();
            assert!(!out.contains("hunter2"), "{out}");
            assert!(out.contains("POETRY_CASE=x.y"), "{out}");
            assert!(out.lines().any(|l| l.starts_with("PATH=")), "{out}");
            let pwd = Path::new(out.lines().last().unwrap()).to_path_buf();
            assert!(is_program_workdir(&pwd), "{out}");
            p.kill();
            assert!(!pwd.exists(), "{} left behind", pwd.display());
        });
    }

    #[test]
    fn a_program_that_kills_its_parent_kills_only_its_shell() {
        rt().block_on(async {
            let mut p = Program::spawn("kill -9 $PPID; sleep 0.1; echo alive", &[]).unwrap();
            let status = p.wait(LIMIT).await;
            assert!(status.is_some_and(|s| !s.success()), "{status:?}");
            p.kill();
            assert_eq!(processes_with_token(p.token()), Vec::<i32>::new());
        });
    }

    #[test]
    fn output_without_newlines_is_capped_and_said_to_be() {
        rt().block_on(async {
            // 8 MiB without a newline.
            let mut p = Program::spawn(
                "head -c 8388608 /dev/zero | tr '\\0' x; echo; echo 1234",
                &[],
            )
            .unwrap();
            assert!(p.wait(LIMIT).await.is_some_and(|s| s.success()));
            let out = p.stdout();
            assert_eq!(out.bytes.len(), OUTPUT_CAP);
            assert!(out.truncated);
            assert_eq!(out.seen, 8 * 1024 * 1024 + 6);
            let line = p
                .wait_for_line(LIMIT, |l| l.starts_with('x'))
                .await
                .unwrap();
            assert_eq!(line.len(), LINE_CAP);
            assert_eq!(
                p.wait_for_line(LIMIT, |l| l == "1234").await.as_deref(),
                Some("1234")
            );
            let notes = p.notes().join("\n");
            assert!(
                notes.contains(&format!(
                    "stdout truncated: kept the first {OUTPUT_CAP} of 8388614 bytes"
                )),
                "{notes}"
            );
            assert!(notes.contains("cut"), "{notes}");
        });
    }

    #[test]
    fn a_closed_stdout_waits_for_the_exit_not_the_limit() {
        rt().block_on(async {
            // Closes stdout, keeps running a moment, then exits 3.
            let mut p = Program::spawn("exec >&-; sleep 0.2; exit 3", &[]).unwrap();
            let line = p.wait_for_line(LIMIT, |_| true).await;
            assert_eq!(line, None);
            assert_eq!(p.try_status().and_then(|s| s.code()), Some(3));
        });
    }

    #[test]
    fn a_program_killed_by_a_signal_reads_as_killed_by_it() {
        use std::os::unix::process::ExitStatusExt;
        rt().block_on(async {
            let mut p = Program::spawn("kill -TERM $$", &[]).unwrap();
            let status = p.wait(LIMIT).await.unwrap();
            assert_eq!(status.signal(), Some(15), "{status:?}");
            let mut p = Program::spawn("exit 3", &[]).unwrap();
            assert_eq!(p.wait(LIMIT).await.unwrap().code(), Some(3));
        });
    }

    #[test]
    fn rlimits_apply_to_the_program() {
        rt().block_on(async {
            let mut p = Program::spawn("ulimit -c; ulimit -n", &[]).unwrap();
            assert!(p.wait(LIMIT).await.is_some_and(|s| s.success()));
            let out = String::from_utf8(p.stdout().bytes).unwrap();
            let mut lines = out.lines();
            assert_eq!(lines.next(), Some("0"), "{out}");
            let nofile: u64 = lines.next().unwrap().parse().unwrap();
            assert!(nofile <= NOFILE, "{out}");
        });
    }
}

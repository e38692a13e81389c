//! The live backend: a real program, started from a command template, on
//! real loopback sockets, against the same scripted peers and verdicts as
//! the simulator.
//!
//! Per case: the peers listen on free ports of 127.0.0.1; the program is
//! started with the placeholders filled in and `POETRY_CASE` set to the
//! case ID; a server is ready when it prints a line naming its port (or
//! listens on it, see [`readiness`]); a client runs to its exit; then the
//! whole process group is killed. Every delay and timeout of the case is
//! multiplied by the time scale, so a 0.7 s pause can take 35 ms. Transcripts carry no times: wall-clock
//! times would differ on every run.

pub mod contract;
pub mod launch;
pub mod manifest;
pub mod pair;
pub mod process;
pub mod readiness;
pub mod reasons;
pub mod reference_programs;
pub mod sandbox;
pub mod template;
pub mod timing;
pub mod workdir;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;

use self::contract::Contract;
pub use self::launch::{probe, PROBE_CASE, UNSUPPORTED_STATUS};
use self::process::{free_port, Program};
pub use self::readiness::wait_ready;
use super::{RunEnd, RunOutcome, SubjectResult};
use crate::case::{Case, Role};
use crate::duration::Dur;
use crate::net::Net;
use crate::peers::{self, note, Observations, Recorder};
use crate::transcript::{preview, Transcript};

/// A program under test for one role.
#[derive(Debug, Clone)]
pub struct LiveSubject {
    /// The role it plays.
    pub role: Role,
    /// Its command template.
    pub command: String,
    /// Clients: how stdout holds the poems.
    pub contract: Contract,
    /// Longest wait for a server to announce its port.
    pub startup_timeout: Duration,
    /// Delays and timeouts are multiplied by this.
    pub time_scale: f64,
    /// Whether exit status 127 means "unsupported" (learned by [`probe`]).
    pub exit_127_unsupported: bool,
    /// Features this program lacks.
    pub lacks: Vec<crate::case::Feature>,
    /// Extra variables passed from the harness's environment to the
    /// program, beyond [`process::ENV_ALLOWLIST`] (a manifest's `env`).
    pub env: Vec<String>,
}

impl LiveSubject {
    /// A program for `role` with the defaults: exact output, 10 s to start,
    /// the default time scale, no exit-127 convention, nothing lacking.
    pub fn new(role: Role, command: impl Into<String>) -> Self {
        LiveSubject {
            role,
            command: command.into(),
            contract: Contract::Exact,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            time_scale: DEFAULT_TIME_SCALE,
            exit_127_unsupported: false,
            lacks: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The scale `case`'s durations take for this program: its time scale,
    /// or the case's `min_time_scale` if that is larger. The one place a
    /// live case's scale is decided.
    pub fn scale_for(&self, case: &Case) -> f64 {
        self.time_scale.max(case.min_time_scale.unwrap_or(0.0))
    }
}

/// Longest wait for a program to get ready, unless a manifest says otherwise.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Real time a live case may run past its (scaled) time limit before it
/// is a timeout: a program's start-up and tear-down are not scaled.
pub const LIMIT_GRACE: Duration = Duration::from_secs(5);

/// Delays and timeouts of live runs are multiplied by this unless told
/// otherwise: a 0.7 s pause takes 35 ms.
pub const DEFAULT_TIME_SCALE: f64 = 0.05;

/// Multiplies every duration of a case by `scale` (whole milliseconds, at
/// least 1 ms where the original was not zero).
pub fn scaled(case: &Case, scale: f64) -> Case {
    let s = |d: &mut Dur| {
        if !d.0.is_zero() {
            let ms = (d.0.as_secs_f64() * 1000.0 * scale).round().max(1.0);
            d.0 = Duration::from_millis(ms as u64);
        }
    };
    let mut c = case.clone();
    s(&mut c.limit);
    for d in c.durations_mut() {
        s(d);
    }
    for e in std::iter::once(&mut c.expect).chain(c.tutorial.as_mut()) {
        for d in [
            &mut e.elapsed_max,
            &mut e.elapsed_min,
            &mut e.upstream_closed_within,
        ]
        .into_iter()
        .flatten()
        {
            s(d);
        }
    }
    c
}

/// The shortest non-zero pause or timeout of a (scaled) case: every pause
/// of a real program may overshoot by a timer's lateness (see [`timing`]).
pub fn shortest_pause(case: &Case) -> Duration {
    let mut c = case.clone();
    c.durations_mut()
        .into_iter()
        .map(|d| d.0)
        .filter(|d| !d.is_zero())
        .min()
        .unwrap_or_default()
}

/// Whether the case can run on real sockets at all.
pub fn live_unsupported(case: &Case) -> Option<&'static str> {
    if case.servers.iter().any(|s| s.blackhole) {
        return Some("a connection that never completes needs the simulator");
    }
    if case.net.needs_simnet().is_some() {
        return Some("its packet faults or listen backlog need the simulator (--engine simnet)");
    }
    if case.sim_only {
        return Some("this case runs in the simulator only (see its sim_only note)");
    }
    None
}

/// Runs one case, already [`scaled`], against a program.
pub fn run(case: &Case, subject: &LiveSubject, seed: u64) -> RunOutcome {
    process::raise_open_file_limit();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            // Out of descriptors or memory: the harness's fault.
            let why = format!("the harness could not start a runtime for the case: {e}");
            let mut outcome = not_started(seed);
            outcome.seen.harness_faults.push(why.clone());
            outcome.end = RunEnd::Crashed(why);
            return outcome;
        }
    };
    // Measured once per run, before the first case, outside any runtime.
    let jitter = timing::Jitter::get();
    rt.block_on(run_async(case, subject, seed, jitter))
}

async fn run_async(
    case: &Case,
    subject: &LiveSubject,
    seed: u64,
    jitter: timing::Jitter,
) -> RunOutcome {
    let rec = Recorder::live();
    let seen: peers::Shared = Arc::new(Mutex::new(Observations::default()));
    let mut outcome = not_started(seed);
    let end = match drive(case, subject, seed, &rec, &seen, &mut outcome).await {
        Ok(end) => end,
        Err(e) => RunEnd::Crashed(e),
    };
    outcome.end = end;
    outcome.seen = std::mem::take(&mut *seen.lock().expect("observations lock"));
    let latency = case.net.latency.0.mul_f64(subject.scale_for(case));
    outcome.tolerance = Some(jitter.tolerance(shortest_pause(case), latency));
    outcome.transcript = Transcript {
        // Moved, not copied: a flood's transcript is large.
        events: rec.take_events(),
        untimed: false,
        origin: outcome.timed_from,
    };
    // Runs folded now, not only when rendered: a flood's tens of thousands
    // of `recv` events become one before the result is kept and copied
    // into the reports for the rest of the run.
    outcome.transcript.compact();
    outcome
}

/// An outcome before anything ran.
fn not_started(seed: u64) -> RunOutcome {
    RunOutcome {
        end: RunEnd::Finished(Duration::ZERO),
        result: SubjectResult::Serving,
        subject_done: None,
        seen: Observations::default(),
        leaks: None,
        transcript: Transcript::default(),
        seed,
        replay: None,
        tick: Duration::ZERO,
        exit_status: None,
        stray_output: None,
        timed_from: Duration::ZERO,
        startup: None,
        tolerance: None,
        sockets: None,
    }
}

async fn drive(
    case: &Case,
    subject: &LiveSubject,
    seed: u64,
    rec: &Recorder,
    seen: &peers::Shared,
    outcome: &mut RunOutcome,
) -> Result<RunEnd, String> {
    // Setting up is the harness's own business: a failure here is a
    // harness fault (the case is an ERROR), never the program's.
    let io = |e: std::io::Error| {
        let why = format!("the harness could not set up its peers: {e}");
        note(seen, |o| o.harness_faults.push(why.clone()));
        why
    };
    // Peers first, bound before the program starts, so the program can be
    // told where they are and can never connect before they listen.
    // `_refusing` holds the refusing ports for the whole case.
    let Peers {
        addrs,
        xform: xform_addr,
        tasks,
        refusing: _refusing,
    } = start_peers(case, seed, rec, seen, None).await.map_err(io)?;
    let poem_file = tempfile::NamedTempFile::new().map_err(io)?;
    std::fs::write(poem_file.path(), case.subject.poem.bytes()).map_err(io)?;
    let port = free_port().map_err(io)?;
    let s = &case.subject;
    let mut values = template_values(case, &addrs, &xform_addr, port);
    values.insert(
        "poem",
        template::shell_quote(&poem_file.path().display().to_string()),
    );
    let command = template::expand(&subject.command, &values, false)?;
    let mut env = process::pass_through(&subject.env);
    env.push(("POETRY_CASE".to_string(), case.id.clone()));
    env.push(("PYTHONUNBUFFERED".to_string(), "1".to_string()));
    rec.log("subject", format!("start: {command}"));
    let mut program = Program::spawn(&command, &env).map_err(|e| {
        let why = format!("the harness could not start '{command}': {e}");
        note(seen, |o| o.harness_faults.push(why.clone()));
        why
    })?;
    let limit = case.limit.0 + LIMIT_GRACE;
    let end = match case.role {
        Role::Client | Role::TransformClient => {
            let status = program.wait(limit).await;
            let stdout = program.stdout();
            let stderr = String::from_utf8_lossy(&program.stderr().bytes).into_owned();
            log_output(rec, &stdout.bytes, &stderr);
            program.log_notes(rec);
            let Some(status) = status else {
                rec.log("subject", "still running at the time limit: killed");
                return Ok(RunEnd::TimedOut(case.limit.0));
            };
            rec.log(
                "subject",
                format!(
                    "exit status {}",
                    status.code().map_or("signal".into(), |c| c.to_string())
                ),
            );
            if subject.exit_127_unsupported && status.code() == Some(UNSUPPORTED_STATUS) {
                return Ok(RunEnd::Unsupported(
                    "the program exited 127: it does not support this case".into(),
                ));
            }
            let exited = rec.now();
            // A client is timed from its first connection to the last thing
            // the peers saw it do (most often, closing its last
            // connection): an interpreter's start-up is judged on its own,
            // against its own budget, and its tear-down is not timed.
            let first = seen.lock().expect("observations lock").first_accept;
            if let Some(first) = first {
                outcome.timed_from = first;
                outcome.startup = Some((first, subject.startup_timeout));
            }
            let last_seen = rec.latest(|e| e.who != "subject" && e.at <= exited);
            let done = last_seen.unwrap_or(exited);
            outcome.subject_done = Some(done.saturating_sub(outcome.timed_from));
            outcome.exit_status = status.code();
            let poems: Vec<Bytes> = case.servers.iter().map(|p| p.sent_poem()).collect();
            let out = contract::Output {
                stdout: &stdout.bytes,
                stderr: &stderr,
                exit: status.code(),
            };
            let stray = if case.role == Role::Client {
                let parsed = contract::parse(subject.contract, &out, &addrs, &poems);
                outcome.result = SubjectResult::Poems(parsed.results);
                parsed.stray
            } else {
                let parsed = contract::parse_transformed(
                    subject.contract,
                    &out,
                    &addrs,
                    &xform_addr,
                    &poems,
                    &s.transform,
                );
                outcome.result = SubjectResult::Transformed(parsed.results);
                parsed.stray
            };
            outcome.stray_output = (!stray.is_empty()).then(|| Bytes::from(stray));
            RunEnd::Finished(outcome.subject_done.unwrap_or_default())
        }
        Role::Server | Role::TransformServer | Role::Proxy => {
            // A connection would make a proxy fetch.
            let may_connect = case.role != Role::Proxy;
            let ready = wait_ready(&mut program, port, subject.startup_timeout, may_connect).await;
            // Server cases are timed from readiness, not from the start of a
            // slow interpreter.
            let ready_at = rec.now();
            outcome.timed_from = ready_at;
            match ready {
                Ok(how) => rec.log("subject", format!("ready: {how}")),
                Err(not_ready) => {
                    let stderr = String::from_utf8_lossy(&program.stderr().bytes).into_owned();
                    log_output(rec, &program.stdout().bytes, &stderr);
                    program.log_notes(rec);
                    let exited = match program.try_status() {
                        Some(st) => format!("; it exited with {}", describe_status(st)),
                        None => String::new(),
                    };
                    return Err(format!("the program {not_ready}{exited}"));
                }
            }
            let mut clients = Vec::new();
            for (base, spec) in case.client_names().iter().zip(&case.clients) {
                for k in 0..spec.count {
                    let name = if spec.count == 1 {
                        base.clone()
                    } else {
                        format!("{base}-{}", k + 1)
                    };
                    let start = spec.start.0 + spec.stagger.0 * k as u32;
                    let (spec, rec, seen, target) = (
                        spec.clone(),
                        rec.clone(),
                        seen.clone(),
                        format!("127.0.0.1:{port}"),
                    );
                    clients.push(tokio::spawn(peers::client::run(
                        Net::Tokio,
                        name,
                        spec,
                        target,
                        start,
                        rec,
                        seen,
                    )));
                }
            }
            let all = async {
                for c in clients {
                    let _ = c.await;
                }
            };
            let finished = tokio::time::timeout(limit, all).await.is_ok();
            let at = rec.now();
            // Let the program close what it should, as the sim's settle time.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let stderr = String::from_utf8_lossy(&program.stderr().bytes).into_owned();
            log_output(rec, &program.stdout().bytes, &stderr);
            program.log_notes(rec);
            if !finished {
                return Ok(RunEnd::TimedOut(case.limit.0));
            }
            // Connections the program still holds open to the harness's
            // server peers (a proxy's upstream): the peers' view of what
            // the simulator counts on the subject's host.
            outcome.leaks = Some(note(seen, |o| {
                o.accepts
                    .iter()
                    .map(|(name, n)| {
                        let closed = o.closes.get(name).map_or(0, Vec::len);
                        let reset = o.resets.get(name).copied().unwrap_or(0);
                        n.saturating_sub(closed + reset)
                    })
                    .sum()
            }));
            if let Some(status) = program.try_status() {
                rec.log(
                    "subject",
                    format!("exited early with {}", describe_status(status)),
                );
            }
            RunEnd::Finished(at.saturating_sub(ready_at))
        }
    };
    program.kill();
    for t in tasks {
        t.abort();
    }
    Ok(end)
}

/// A port of 127.0.0.1 that refuses connections: bound, never listening.
fn refusing_port(addr: &str) -> std::io::Result<tokio::net::TcpSocket> {
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(addr)?;
    Ok(socket)
}

/// The scripted peers of a live case, listening on 127.0.0.1 (or refusing
/// there, as the case says), their tasks running until aborted.
pub struct Peers {
    /// The server peers' addresses, in the order the subject is given them.
    pub addrs: Vec<String>,
    /// The transform server's address (empty when the case has none).
    pub xform: String,
    /// The peers' tasks: they accept until aborted.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Ports that refuse: bound and never listening, held for as long as
    /// the peers run so that no other program can take them.
    pub refusing: Vec<tokio::net::TcpSocket>,
}

/// Starts a case's scripted server peers and its transform server (if
/// any) on 127.0.0.1, exactly as a live run does: on free ports, or, with
/// `base`, on consecutive ports from it (servers in order, then the
/// transform server). The one place live peers are started (`run` with a
/// program, and `serve case`).
pub async fn start_peers(
    case: &Case,
    seed: u64,
    rec: &Recorder,
    seen: &peers::Shared,
    base: Option<u16>,
) -> std::io::Result<Peers> {
    let mut next = base;
    let mut bind_addr = || -> std::io::Result<String> {
        match &mut next {
            None => Ok("127.0.0.1:0".to_string()),
            Some(p) => {
                let port = *p;
                *p = p.checked_add(1).ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("no port left after {port} for the case's next peer"),
                    )
                })?;
                Ok(format!("127.0.0.1:{port}"))
            }
        }
    };
    let mut peers = Peers {
        addrs: Vec::new(),
        xform: String::new(),
        tasks: Vec::new(),
        refusing: Vec::new(),
    };
    for (i, (name, spec)) in case
        .server_names()
        .into_iter()
        .zip(&case.servers)
        .enumerate()
    {
        let at = bind_addr()?;
        let endpoint = if spec.refuse {
            let socket = refusing_port(&at)?;
            peers.addrs.push(socket.local_addr()?.to_string());
            peers.refusing.push(socket);
            None
        } else {
            let listener = Net::Tokio.bind(&at).await?;
            peers.addrs.push(listener.local_addr()?.to_string());
            Some(listener)
        };
        let bind = peers.addrs.last().cloned().unwrap_or_default();
        let (rec, seen, spec) = (rec.clone(), seen.clone(), spec.clone());
        peers.tasks.push(tokio::spawn(async move {
            let endpoint = match endpoint {
                Some(l) => peers::Endpoint::Bound(l),
                None => peers::Endpoint::Addr(bind),
            };
            let _ = peers::poetry_server::run(
                Net::Tokio,
                name,
                spec,
                endpoint,
                seed.wrapping_add(i as u64 + 1),
                false,
                rec,
                seen,
            )
            .await;
        }));
    }
    if let Some(x) = &case.xform {
        let at = bind_addr()?;
        let endpoint = if x.behaviour == crate::case::XformBehaviour::Absent {
            let socket = refusing_port(&at)?;
            peers.xform = socket.local_addr()?.to_string();
            peers.refusing.push(socket);
            peers::Endpoint::Addr(peers.xform.clone())
        } else {
            let listener = Net::Tokio.bind(&at).await?;
            peers.xform = listener.local_addr()?.to_string();
            peers::Endpoint::Bound(listener)
        };
        let (rec, seen, x) = (rec.clone(), seen.clone(), x.clone());
        peers.tasks.push(tokio::spawn(async move {
            let _ = peers::transform_server::run(Net::Tokio, x, endpoint, rec, seen).await;
        }));
    }
    Ok(peers)
}

/// The values a command template's placeholders take for `case` (already
/// [`scaled`]) with its peers at `addrs` and `xform` and the program's own
/// port `port`: every placeholder but `{poem}` (a file the caller writes).
/// The one place a live case's template is filled.
pub fn template_values(
    case: &Case,
    addrs: &[String],
    xform: &str,
    port: u16,
) -> IndexMap<&'static str, String> {
    let s = &case.subject;
    let mut values: IndexMap<&'static str, String> = IndexMap::new();
    values.insert("port", port.to_string());
    values.insert("addr", addrs.first().cloned().unwrap_or_default());
    values.insert("addrs", addrs.join(" "));
    values.insert("upstream", addrs.first().cloned().unwrap_or_default());
    values.insert("xform", xform.to_string());
    values.insert("transform", template::shell_quote(&s.transform));
    let seconds = |d: Duration| format!("{}", d.as_secs_f64());
    values.insert("timeout", seconds(s.idle_timeout.0));
    values.insert("connect_timeout", seconds(s.connect_timeout.0));
    values.insert("idle_timeout", seconds(s.idle_timeout.0));
    values.insert("transform_timeout", seconds(s.transform_timeout.0));
    // An unpaced case still passes numbers any program can parse: the whole
    // poem in one write, no pause.
    let unpaced = s.poem.bytes().len().max(1);
    values.insert("num_bytes", s.num_bytes.unwrap_or(unpaced).to_string());
    values.insert("delay", seconds(s.delay.map_or(Duration::ZERO, |d| d.0)));
    values
}

/// `status 3`, or `signal 9` for a program a signal ended.
pub(crate) fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("status {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "an unknown status".to_string(),
    }
}

/// Lines of a program's stderr a transcript keeps: the first 5, and the
/// rest from the end (where a traceback says what went wrong).
pub const STDERR_LINES: usize = 40;

/// Lines kept from the start of a long stderr.
const STDERR_HEAD: usize = 5;

fn log_output(rec: &Recorder, stdout: &[u8], stderr: &str) {
    if !stdout.is_empty() {
        rec.log("subject", format!("stdout {}", preview(stdout)));
    }
    let lines: Vec<&str> = stderr.lines().collect();
    // The end of a program's stderr says most (a traceback's last line,
    // the error after the progress): the first lines and the tail are
    // kept, the middle folded.
    let folded = lines.len().saturating_sub(STDERR_LINES);
    let head = if folded > 0 { STDERR_HEAD } else { lines.len() };
    for (i, line) in lines.iter().enumerate() {
        if i == head && folded > 0 {
            rec.log("subject", format!("stderr: … {folded} lines folded …"));
        }
        if i >= head && i < head + folded {
            continue;
        }
        // A line is cut at LINE_CAP bytes: a program that floods stderr
        // without a newline must not put megabytes into every report.
        let (line, cut) = cut_line(line, process::LINE_CAP);
        // Escaped here too, not only by the writers: the engine reads these
        // lines back for its hints.
        let line = crate::transcript::sanitise(line);
        match cut {
            Some(len) => rec.log("subject", format!("stderr: {line}… (cut, {len} bytes)")),
            None => rec.log("subject", format!("stderr: {line}")),
        }
    }
}

/// The first `cap` bytes of `line` at most (cut on a character boundary),
/// and its whole length if it was cut.
fn cut_line(line: &str, cap: usize) -> (&str, Option<usize>) {
    if line.len() <= cap {
        return (line, None);
    }
    let mut end = cap;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    (&line[..end], Some(line.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_stderr_lines_are_cut_on_a_character_boundary() {
        assert_eq!(cut_line("short", 8), ("short", None));
        let long = "é".repeat(10); // 20 bytes
        assert_eq!(cut_line(&long, 5), ("éé", Some(20)));
        let rec = Recorder::live();
        log_output(&rec, b"", &format!("{}\nnext", "x".repeat(10_000)));
        let lines: Vec<String> = rec.events().into_iter().map(|e| e.what).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].len() < process::LINE_CAP + 64,
            "{}",
            lines[0].len()
        );
        assert!(
            lines[0].ends_with("… (cut, 10000 bytes)"),
            "{}",
            &lines[0][4000..]
        );
        assert_eq!(lines[1], "stderr: next");
    }

    #[test]
    fn a_long_stderr_keeps_its_head_and_tail_and_folds_the_middle() {
        let rec = Recorder::live();
        let text: Vec<String> = (1..=100).map(|i| format!("line {i}")).collect();
        log_output(&rec, b"", &text.join("\n"));
        let lines: Vec<String> = rec.events().into_iter().map(|e| e.what).collect();
        assert_eq!(lines.len(), STDERR_LINES + 1, "{lines:?}");
        assert_eq!(lines[0], "stderr: line 1");
        assert_eq!(lines[STDERR_HEAD - 1], "stderr: line 5");
        assert_eq!(lines[STDERR_HEAD], "stderr: … 60 lines folded …");
        assert_eq!(lines[STDERR_HEAD + 1], "stderr: line 66");
        assert_eq!(lines.last().unwrap(), "stderr: line 100");
    }

    #[test]
    fn scaling_reaches_every_duration_that_drives_a_run() {
        let text = r#"
[[case]]
id = "client.x"
title = "t"
clauses = ["CLIENT-3"]
role = "client"
limit = "100s"
subject = { delay = "2s", connect_timeout = "4s", idle_timeout = "6s", transform_timeout = "8s" }
[[case.servers]]
delay = "10s"
first_delay = "12s"
pause = "14s"
end_delay = "16s"
jitter = "18s"
[case.expect]
elapsed_min = "20s"
"#;
        let case = crate::catalog::parse_file("t.toml", text, &crate::spec::clauses())
            .unwrap()
            .remove(0);
        let mut before = case.clone();
        let mut after = scaled(&case, 0.5);
        let b: Vec<_> = before.durations_mut().into_iter().map(|d| d.0).collect();
        let a: Vec<_> = after.durations_mut().into_iter().map(|d| d.0).collect();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(*x * 2, *y, "{x:?} is not half of {y:?}");
        }
        assert_eq!(after.limit.0, Duration::from_secs(50));
        assert_eq!(after.expect.elapsed_min.unwrap().0, Duration::from_secs(10));
    }

    #[test]
    fn a_case_scale_floor_wins_over_a_smaller_time_scale_only() {
        let catalog = crate::catalog::Catalog::builtin().unwrap();
        let stalled = catalog
            .get("server.stalled-reader-does-not-block-others")
            .unwrap();
        let plain = catalog
            .cases
            .iter()
            .find(|c| c.min_time_scale.is_none())
            .unwrap();
        let mut subject = LiveSubject::new(Role::Server, "x");
        subject.time_scale = 0.05;
        assert_eq!(subject.scale_for(stalled), 0.5);
        assert_eq!(subject.scale_for(plain), 0.05);
        subject.time_scale = 2.0;
        assert_eq!(subject.scale_for(stalled), 2.0);
    }
}

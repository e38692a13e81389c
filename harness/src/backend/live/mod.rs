//! The live backend: a real program, started from a command template, on
//! real loopback sockets, against the same scripted peers and verdicts as
//! the simulator.
//!
//! Per case: the peers listen on free ports of 127.0.0.1; the program is
//! started with the placeholders filled in and `POETRY_CASE` set to the
//! case ID; a server is ready when it prints a line naming its port; a
//! client runs to its exit; then the whole process group is killed. Every
//! delay and timeout of the case is multiplied by the time scale, so a
//! 0.7 s pause can take 35 ms. Transcripts carry no times: wall-clock
//! times would differ on every run.

pub mod contract;
pub mod launch;
pub mod manifest;
pub mod pair;
pub mod process;
pub mod template;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;

use self::contract::Contract;
pub use self::launch::{probe, PROBE_CASE, UNSUPPORTED_STATUS};
use self::process::{free_port, Program};
use super::{RunEnd, RunOutcome, SubjectResult};
use crate::case::{Case, Role};
use crate::duration::Dur;
use crate::net::Net;
use crate::peers::{self, Observations, Recorder};
use crate::reference::{FetchError, TransformFailure, Transformed};
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
        }
    }
}

/// Longest wait for a program to get ready, unless a manifest says otherwise.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

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
        // Real programs start slowly and real timers overshoot a little on
        // every pause: upper bounds get slack; lower bounds stay, since
        // nothing real runs early.
        for d in [&mut e.elapsed_max, &mut e.upstream_closed_within]
            .into_iter()
            .flatten()
        {
            d.0 += LIVE_SLACK + d.0.mul_f64(LIVE_SLACK_RATIO);
        }
    }
    c
}

/// Slack added to every upper time bound in a live run: an interpreter's
/// start-up and a loaded machine's scheduling.
pub const LIVE_SLACK: Duration = Duration::from_millis(300);

/// Further slack, as a share of the bound: timer overshoot adds up over
/// many pauses.
pub const LIVE_SLACK_RATIO: f64 = 0.5;

/// Whether the case can run on real sockets at all.
pub fn live_unsupported(case: &Case) -> Option<&'static str> {
    if case.servers.iter().any(|s| s.blackhole) {
        return Some("a connection that never completes needs the simulator");
    }
    if case.sim_only {
        return Some("this case runs in the simulator only (see its sim_only note)");
    }
    None
}

/// Runs one case, already [`scaled`], against a program.
pub fn run(case: &Case, subject: &LiveSubject, seed: u64) -> RunOutcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(run_async(case, subject, seed))
}

async fn run_async(case: &Case, subject: &LiveSubject, seed: u64) -> RunOutcome {
    let rec = Recorder::live();
    let seen: peers::Shared = Arc::new(Mutex::new(Observations::default()));
    let mut outcome = RunOutcome {
        end: RunEnd::Finished(Duration::ZERO),
        result: SubjectResult::Serving,
        subject_done: None,
        seen: Observations::default(),
        leaks: None,
        transcript: Transcript::default(),
        seed,
        tick: Duration::ZERO,
        exit_status: None,
    };
    let end = match drive(case, subject, seed, &rec, &seen, &mut outcome).await {
        Ok(end) => end,
        Err(e) => RunEnd::Crashed(e),
    };
    outcome.end = end;
    outcome.seen = std::mem::take(&mut *seen.lock().expect("observations lock"));
    outcome.transcript = Transcript {
        events: rec.events(),
        untimed: true,
    };
    outcome
}

async fn drive(
    case: &Case,
    subject: &LiveSubject,
    seed: u64,
    rec: &Recorder,
    seen: &peers::Shared,
    outcome: &mut RunOutcome,
) -> Result<RunEnd, String> {
    let io = |e: std::io::Error| e.to_string();
    // Peers first, so the program can be told where they are.
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    for (i, (name, spec)) in case
        .server_names()
        .into_iter()
        .zip(&case.servers)
        .enumerate()
    {
        let port = free_port().map_err(io)?;
        let bind = format!("127.0.0.1:{port}");
        addrs.push(bind.clone());
        let (rec, seen, spec) = (rec.clone(), seen.clone(), spec.clone());
        tasks.push(tokio::spawn(async move {
            let _ = peers::poetry_server::run(
                Net::Tokio,
                name,
                spec,
                bind,
                seed.wrapping_add(i as u64 + 1),
                false,
                rec,
                seen,
            )
            .await;
        }));
    }
    let mut xform_addr = String::new();
    if let Some(x) = &case.xform {
        let port = free_port().map_err(io)?;
        xform_addr = format!("127.0.0.1:{port}");
        let (rec, seen, x, bind) = (rec.clone(), seen.clone(), x.clone(), xform_addr.clone());
        tasks.push(tokio::spawn(async move {
            let _ = peers::transform_server::run(Net::Tokio, x, bind, rec, seen).await;
        }));
    }
    let poem_file = tempfile::NamedTempFile::new().map_err(io)?;
    std::fs::write(poem_file.path(), case.subject.poem.bytes()).map_err(io)?;
    let port = free_port().map_err(io)?;
    let s = &case.subject;
    let mut values: IndexMap<&str, String> = IndexMap::new();
    values.insert("port", port.to_string());
    values.insert("addr", addrs.first().cloned().unwrap_or_default());
    values.insert("addrs", addrs.join(" "));
    values.insert(
        "poem",
        template::shell_quote(&poem_file.path().display().to_string()),
    );
    values.insert("upstream", addrs.first().cloned().unwrap_or_default());
    values.insert("xform", xform_addr);
    values.insert("transform", template::shell_quote(&s.transform));
    values.insert("timeout", format!("{}", s.idle_timeout.0.as_secs_f64()));
    values.insert(
        "num_bytes",
        s.num_bytes.unwrap_or(usize::MAX / 2).to_string(),
    );
    values.insert(
        "delay",
        format!("{}", s.delay.map_or(0.0, |d| d.0.as_secs_f64())),
    );
    let command = template::expand(&subject.command, &values, false)?;
    let env = [
        ("POETRY_CASE".to_string(), case.id.clone()),
        ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
    ];
    rec.log("subject", format!("start: {command}"));
    let mut program =
        Program::spawn(&command, &env).map_err(|e| format!("cannot start '{command}': {e}"))?;
    let limit = case.limit.0 + Duration::from_secs(5);
    let end = match case.role {
        Role::Client | Role::TransformClient => {
            let status = program.wait(limit).await;
            let stdout = program.stdout();
            let stderr = String::from_utf8_lossy(&program.stderr().bytes).into_owned();
            log_output(rec, &stdout.bytes, &stderr);
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
            outcome.subject_done = Some(rec.now());
            outcome.exit_status = status.code();
            let poems: Vec<Option<Bytes>> = case
                .servers
                .iter()
                .map(|p| {
                    let b = p.poem.bytes();
                    Some(b.slice(..p.truncate.unwrap_or(b.len()).min(b.len())))
                })
                .collect();
            outcome.result = if case.role == Role::Client {
                SubjectResult::Poems(contract::parse(
                    subject.contract,
                    &stdout.bytes,
                    &stderr,
                    &addrs,
                    &poems,
                ))
            } else {
                SubjectResult::Transformed(transformed(
                    &stdout.bytes,
                    &stderr,
                    &addrs,
                    &poems,
                    &s.transform,
                ))
            };
            RunEnd::Finished(rec.now())
        }
        Role::Server | Role::TransformServer | Role::Proxy => {
            // Ready when it prints a line naming its port, or (servers
            // only: a probe would make a proxy fetch) when the port accepts.
            // Block-buffered output may never show the line before exit.
            let port_text = port.to_string();
            let names_port = |l: &str| {
                l.split(|c: char| !c.is_ascii_digit())
                    .any(|w| w == port_text)
            };
            let may_probe = case.role != Role::Proxy;
            let ready = tokio::select! {
                line = program.wait_for_line(subject.startup_timeout, names_port) => line,
                probed = probe_port(port, subject.startup_timeout), if may_probe => probed,
            };
            // Server cases are timed from readiness, not from the start of a
            // slow interpreter.
            let ready_at = rec.now();
            match ready {
                Some(how) => rec.log("subject", format!("ready: {how}")),
                None => {
                    let stderr = String::from_utf8_lossy(&program.stderr().bytes).into_owned();
                    log_output(rec, &program.stdout().bytes, &stderr);
                    return Err(format!(
                        "the program neither printed a line naming port {port} nor accepted on it within {:?}",
                        subject.startup_timeout
                    ));
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
            if !finished {
                return Ok(RunEnd::TimedOut(case.limit.0));
            }
            if let Some(status) = program.try_status() {
                rec.log(
                    "subject",
                    format!("exited early with status {:?}", status.code()),
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

/// Grace before probing a port, so that programs that announce themselves
/// are not probed at all.
const PROBE_AFTER: Duration = Duration::from_millis(500);

/// Waits until `port` accepts a connection (closed at once), polling.
async fn probe_port(port: u16, limit: Duration) -> Option<String> {
    tokio::time::sleep(PROBE_AFTER).await;
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(format!("port {port} accepts (no line announced it)"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn log_output(rec: &Recorder, stdout: &[u8], stderr: &str) {
    if !stdout.is_empty() {
        rec.log("subject", format!("stdout {}", preview(stdout)));
    }
    for line in stderr.lines().take(8) {
        rec.log("subject", format!("stderr: {line}"));
    }
}

/// A transforming client's results from its output (exact contract): the
/// transformed poem, else the original (a fallback, whose failure stderr
/// should name), else nothing (a failed download).
fn transformed(
    stdout: &[u8],
    stderr: &str,
    addrs: &[String],
    poems: &[Option<Bytes>],
    name: &str,
) -> Vec<Transformed> {
    let mut rest = stdout;
    let t = crate::protocol::transform::Transform::from_name(name);
    addrs
        .iter()
        .zip(poems)
        .map(|(addr, poem)| {
            let poem = poem.clone().unwrap_or_default();
            let text = std::str::from_utf8(&poem).ok();
            let want = text.zip(t).map(|(p, t)| t.apply(p)).unwrap_or_default();
            if !want.is_empty() && rest.starts_with(want.as_bytes()) {
                rest = &rest[want.len()..];
                return Transformed::Poem(want);
            }
            if !poem.is_empty() && rest.starts_with(&poem) {
                rest = &rest[poem.len()..];
                let named = stderr
                    .lines()
                    .any(|l| l.contains(addr) || l.to_lowercase().contains("transform"));
                let failure = if named {
                    TransformFailure::NoReply
                } else {
                    TransformFailure::BadReply("no failure reported on stderr".into())
                };
                if named {
                    return Transformed::Fallback {
                        original: poem,
                        failure,
                    };
                }
                // A silent fallback reads as a transformed poem that is wrong.
                return Transformed::Poem(String::from_utf8_lossy(&poem).into_owned());
            }
            Transformed::DownloadFailed(FetchError::Other("nothing printed for this poem".into()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! Pair tests: a program's client against the same implementation's
//! server, with the fault-injecting proxy between them.
//!
//! The scripted peers test each program alone; a pair test checks that two
//! programs of one implementation work together when the network between
//! them misbehaves: sliced, delayed, reset, stalled, slowly closed.

use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;

use super::contract;
use super::process::{self, free_port, Program};
use super::{template, LiveSubject};
use crate::faultproxy::{self, Faults};
use crate::net::Net;
use crate::reference::FetchError;
use crate::transcript::preview;
use crate::verdict::Kind;

/// One pair scenario: the faults between the programs and the result the
/// client must report.
#[derive(Debug, Clone, Copy)]
pub struct PairScenario {
    /// Stable ID.
    pub id: &'static str,
    /// One line.
    pub title: &'static str,
    /// Spec clauses it checks.
    pub clauses: &'static [&'static str],
    /// What the proxy does (durations are scaled by the time scale).
    pub faults: Faults,
    /// `poem`, `fail:reset` or `fail:timeout`.
    pub expect: &'static str,
    /// What the tutorial profile accepts instead, if anything.
    pub tutorial: Option<&'static str>,
}

const fn faults() -> Faults {
    Faults {
        latency: Duration::ZERO,
        rate: None,
        slice: None,
        reset_after: None,
        stall_after: None,
        slow_close: Duration::ZERO,
    }
}

/// The client's idle timeout in pair tests, before scaling.
pub const PAIR_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The scenarios, in order.
pub const SCENARIOS: &[PairScenario] = &[
    PairScenario {
        id: "pair.clean",
        title: "the client gets the server's poem through a clean link",
        clauses: &["CLIENT-3", "POEM-1"],
        faults: faults(),
        expect: "poem",
        tutorial: None,
    },
    PairScenario {
        id: "pair.sliced",
        title: "the poem arrives in 3-byte pieces, spread over about 0.4 s, and survives",
        clauses: &["CLIENT-3", "CLIENT-11"],
        // Spread out, so the pieces reach the client one by one even when
        // a loaded machine starts it late: back to back, they would pile
        // up in its receive buffer and one read would take them all.
        faults: Faults {
            slice: Some(3),
            rate: Some(2000),
            ..faults()
        },
        expect: "poem",
        tutorial: None,
    },
    PairScenario {
        id: "pair.slow-link",
        title: "a link with 1 s latency and 200 bytes/s still delivers the poem",
        clauses: &["CLIENT-3", "CLIENT-10"],
        faults: Faults {
            latency: Duration::from_secs(1),
            rate: Some(200),
            slice: Some(50),
            ..faults()
        },
        expect: "poem",
        tutorial: None,
    },
    PairScenario {
        id: "pair.slow-close",
        title: "a FIN passed on 3 s late still ends the poem",
        clauses: &["CLIENT-3"],
        faults: Faults {
            slow_close: Duration::from_secs(3),
            ..faults()
        },
        expect: "poem",
        tutorial: None,
    },
    PairScenario {
        id: "pair.reset-mid-poem",
        title: "a reset after 100 bytes is a failure, not a short poem",
        clauses: &["CLIENT-5"],
        faults: Faults {
            reset_after: Some(100),
            ..faults()
        },
        expect: "fail:reset",
        tutorial: Some("prefix"),
    },
    PairScenario {
        id: "pair.stall",
        title: "a link that goes silent after 100 bytes ends in the client's idle timeout",
        clauses: &["CLIENT-10", "NET-5"],
        faults: Faults {
            stall_after: Some(100),
            ..faults()
        },
        expect: "fail:timeout",
        tutorial: None,
    },
];

/// A pair scenario's result.
#[derive(Debug, Clone)]
pub struct PairResult {
    /// The scenario.
    pub scenario: PairScenario,
    /// PASS, FAIL, NON-STRICT, TIMEOUT.
    pub kind: Kind,
    /// One line.
    pub reason: String,
    /// What the programs printed.
    pub transcript: Vec<String>,
}

/// The poem served in pair tests: non-ASCII, several hundred bytes.
fn poem() -> Bytes {
    Bytes::from_static(include_bytes!("../../../fixtures/poems/loreley.txt"))
}

fn scale(d: Duration, by: f64) -> Duration {
    d.mul_f64(by)
}

/// Runs one scenario: the server program, the fault proxy, the client
/// program; both programs are killed at the end.
pub fn run(server: &LiveSubject, client: &LiveSubject, sc: &PairScenario) -> PairResult {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (kind, reason, transcript) = rt
        .block_on(drive(server, client, sc))
        .unwrap_or_else(|e| (Kind::Fail, e, Vec::new()));
    PairResult {
        scenario: *sc,
        kind,
        reason,
        transcript,
    }
}

async fn drive(
    server: &LiveSubject,
    client: &LiveSubject,
    sc: &PairScenario,
) -> Result<(Kind, String, Vec<String>), String> {
    let io = |e: std::io::Error| e.to_string();
    let by = client.time_scale;
    let mut log = Vec::new();
    let poem_file = tempfile::NamedTempFile::new().map_err(io)?;
    std::fs::write(poem_file.path(), poem()).map_err(io)?;
    let port = free_port().map_err(io)?;
    let mut values: IndexMap<&str, String> = IndexMap::new();
    values.insert("port", port.to_string());
    values.insert(
        "poem",
        template::shell_quote(&poem_file.path().display().to_string()),
    );
    values.insert("num_bytes", (usize::MAX / 2).to_string());
    values.insert("delay", "0".into());
    // Each program gets its own manifest's extra variables.
    let env_of = |subject: &LiveSubject| {
        let mut env = process::pass_through(&subject.env);
        env.push(("POETRY_CASE".to_string(), sc.id.to_string()));
        env.push(("PYTHONUNBUFFERED".to_string(), "1".to_string()));
        env
    };
    let cmd = template::expand(&server.command, &values, false)?;
    log.push(format!("server: start: {cmd}"));
    let mut srv =
        Program::spawn(&cmd, &env_of(server)).map_err(|e| format!("cannot start '{cmd}': {e}"))?;
    if let Err(not_ready) = super::wait_ready(&mut srv, port, server.startup_timeout, true).await {
        return Err(format!("the server {not_ready}"));
    }
    let listener = Net::Tokio.bind("127.0.0.1:0").await.map_err(io)?;
    let proxy_addr = listener.local_addr().map_err(io)?.to_string();
    let f = Faults {
        latency: scale(sc.faults.latency, by),
        slow_close: scale(sc.faults.slow_close, by),
        // A rate is bytes per time: a shorter time scale means a faster link.
        rate: sc.faults.rate.map(|r| (r as f64 / by).ceil() as u64),
        ..sc.faults
    };
    let proxy = tokio::spawn(faultproxy::serve(
        Net::Tokio,
        listener,
        format!("127.0.0.1:{port}"),
        f,
    ));
    values.insert("addrs", proxy_addr.clone());
    values.insert("addr", proxy_addr.clone());
    values.insert(
        "timeout",
        format!("{}", scale(PAIR_IDLE_TIMEOUT, by).as_secs_f64()),
    );
    let cmd = template::expand(&client.command, &values, false)?;
    log.push(format!("client: start: {cmd}"));
    let mut cli =
        Program::spawn(&cmd, &env_of(client)).map_err(|e| format!("cannot start '{cmd}': {e}"))?;
    let status = cli.wait(Duration::from_secs(20)).await;
    let stdout = cli.stdout().bytes;
    let stderr = String::from_utf8_lossy(&cli.stderr().bytes).into_owned();
    log.push(format!("client: stdout {}", preview(&stdout)));
    log.extend(
        stderr
            .lines()
            .take(6)
            .map(|l| format!("client: stderr: {}", crate::transcript::sanitise(l))),
    );
    let server_err = String::from_utf8_lossy(&srv.stderr().bytes).into_owned();
    log.extend(
        server_err
            .lines()
            .take(4)
            .map(|l| format!("server: stderr: {}", crate::transcript::sanitise(l))),
    );
    proxy.abort();
    srv.kill();
    let Some(status) = status else {
        cli.kill();
        return Ok((
            Kind::Timeout,
            "the client did not exit within 20 s".into(),
            log,
        ));
    };
    log.push(format!(
        "client: exited with {}",
        super::describe_status(status)
    ));
    let out = contract::Output {
        stdout: &stdout,
        stderr: &stderr,
        exit: status.code(),
    };
    let got = contract::parse(
        client.contract,
        &out,
        std::slice::from_ref(&proxy_addr),
        &[poem()],
    )
    .results
    .remove(0);
    let matches = |want: &str| match (want, &got) {
        ("poem", Ok(p)) => *p == poem(),
        ("prefix", Ok(p)) => poem().starts_with(p),
        ("fail:reset", Err(FetchError::Reset { .. })) => true,
        ("fail:timeout", Err(FetchError::Timeout { .. })) => true,
        _ => false,
    };
    let actual = match &got {
        Ok(p) => format!("poem {}", preview(p)),
        Err(e) => format!("fail:{}", e.kind()),
    };
    Ok(if matches(sc.expect) {
        (Kind::Pass, "as expected".into(), log)
    } else if sc.tutorial.is_some_and(matches) {
        (
            Kind::NonStrict,
            format!(
                "expected {}, got {actual} (the tutorial profile accepts it)",
                sc.expect
            ),
            log,
        )
    } else {
        (
            Kind::Fail,
            format!("expected {}, got {actual}", sc.expect),
            log,
        )
    })
}

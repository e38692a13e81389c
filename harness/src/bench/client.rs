//! Clients under bench: how long a client takes to fetch N poems from N
//! slow servers, against the ideal (the slowest server alone) and serial
//! (one after another, the sum). The harness plays the servers, paced, and
//! notes when each connection was accepted and closed: each download is a
//! bar on a timeline, the series' own figure of the synchronous, threaded
//! and asynchronous models, drawn from measurement.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;
use serde::Serialize;

use crate::backend::live::{contract, process, template, LiveSubject};
use crate::case::{PoemSpec, ServerPeer};
use crate::duration::Dur;
use crate::net::Net;
use crate::peers::{self, Observations, Recorder};

/// The servers a client fetches from.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// One poem per server, in argument order.
    #[serde(skip)]
    pub poems: Vec<Bytes>,
    /// Bytes per write.
    pub num_bytes: usize,
    /// Pause between writes.
    #[serde(rename = "delay_s", serialize_with = "seconds")]
    pub delay: Duration,
    /// A client still running after this is stopped (a failed run).
    #[serde(rename = "timeout_s", serialize_with = "seconds")]
    pub timeout: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Scenario {
    /// How long server `i` takes to send its poem when nothing slows it:
    /// its writes after the first, each after a pause.
    pub fn alone(&self, i: usize) -> Duration {
        let writes = self.poems[i].len().div_ceil(self.num_bytes.max(1)).max(1);
        self.delay * (writes as u32 - 1)
    }

    /// The ideal: the slowest server alone.
    pub fn ideal(&self) -> Duration {
        (0..self.poems.len())
            .map(|i| self.alone(i))
            .max()
            .unwrap_or_default()
    }

    /// One server after another.
    pub fn serial(&self) -> Duration {
        (0..self.poems.len()).map(|i| self.alone(i)).sum()
    }
}

/// One download as the server saw it, in ms from the first accept.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Bar {
    /// Which server (from 0, argument order).
    pub server: usize,
    /// Accepted.
    pub start_ms: f64,
    /// The server closed after the poem's last byte (or the run's end).
    pub end_ms: f64,
}

/// One run of a client.
#[derive(Debug, Clone, Serialize)]
pub struct ClientRun {
    /// From the first accept to the last server's close after its poem.
    #[serde(rename = "total_s", serialize_with = "seconds")]
    pub total: Duration,
    /// The downloads.
    pub bars: Vec<Bar>,
    /// Why the run failed (a poem missing or wrong, a timeout), if it did.
    pub failure: Option<String>,
}

/// Runs `client` once against paced servers serving `scenario`'s poems.
pub async fn run_once(client: &LiveSubject, scenario: &Scenario) -> anyhow::Result<ClientRun> {
    let rec = Recorder::live();
    let seen: peers::Shared = Arc::new(Mutex::new(Observations::default()));
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    for (i, poem) in scenario.poems.iter().enumerate() {
        let listener = Net::Tokio.bind("127.0.0.1:0").await?;
        addrs.push(listener.local_addr()?.to_string());
        let spec = ServerPeer {
            name: Some(name(i)),
            poem: PoemSpec::Raw(poem.clone()),
            chunks: Some(vec![scenario.num_bytes.max(1)]),
            delay: Dur(scenario.delay),
            ..ServerPeer::default()
        };
        let (rec, seen) = (rec.clone(), seen.clone());
        tasks.push(tokio::spawn(peers::poetry_server::run(
            Net::Tokio,
            name(i),
            spec,
            peers::Endpoint::Bound(listener),
            i as u64,
            false,
            rec,
            seen,
        )));
    }
    let mut values: IndexMap<&str, String> = IndexMap::new();
    let t = |d: Duration| format!("{}", d.as_secs_f64());
    values.insert("addrs", addrs.join(" "));
    values.insert("addr", addrs.first().cloned().unwrap_or_default());
    values.insert("timeout", t(scenario.timeout));
    values.insert("idle_timeout", t(scenario.timeout));
    values.insert("connect_timeout", t(scenario.timeout));
    let command = template::expand(&client.command, &values, false).map_err(anyhow::Error::msg)?;
    let mut program = process::Program::spawn(&command, &super::program_env(client))
        .map_err(|e| anyhow::anyhow!("cannot start '{command}': {e}"))?;
    let status = program.wait(scenario.timeout).await;
    program.kill();
    for t in tasks {
        t.abort();
    }
    let events = rec.events();
    let seen = std::mem::take(&mut *seen.lock().expect("observations lock"));
    let accepted = |i: usize| {
        events
            .iter()
            .find(|e| e.who == name(i) && e.what.starts_with("accept connection"))
            .map(|e| e.at)
    };
    let first = (0..addrs.len()).filter_map(accepted).min();
    let end = rec.now();
    let mut bars = Vec::new();
    let mut last = Duration::ZERO;
    for i in 0..addrs.len() {
        let Some(start) = accepted(i) else { continue };
        // Done when the server sent its last byte and closed: the client
        // cannot have started its next download before reading that.
        let closed = events
            .iter()
            .find(|e| e.who == name(i) && e.what.starts_with("close "))
            .map(|e| e.at)
            .or_else(|| {
                seen.closes
                    .get(&name(i))
                    .and_then(|c| c.first())
                    .map(|c| c.0)
            })
            .unwrap_or(end);
        last = last.max(closed);
        let from = first.unwrap_or_default();
        let ms = |d: Duration| d.saturating_sub(from).as_secs_f64() * 1e3;
        bars.push(Bar {
            server: i,
            start_ms: ms(start),
            end_ms: ms(closed),
        });
    }
    let total = last.saturating_sub(first.unwrap_or_default());
    let failure = match status {
        None => Some(format!(
            "still running after {}",
            crate::transcript::secs(scenario.timeout)
        )),
        Some(status) => {
            let stdout = program.stdout().bytes;
            let stderr = String::from_utf8_lossy(&program.stderr().bytes).into_owned();
            let out = contract::Output {
                stdout: &stdout,
                stderr: &stderr,
                exit: status.code(),
            };
            let parsed = contract::parse(client.contract, &out, &addrs, &scenario.poems);
            parsed
                .results
                .iter()
                .zip(&scenario.poems)
                .enumerate()
                .find_map(|(i, (got, want))| match got {
                    Ok(p) if p == want => None,
                    Ok(p) => Some(format!(
                        "poem {} wrong: {} bytes, expected {}",
                        i + 1,
                        p.len(),
                        want.len()
                    )),
                    Err(e) => Some(format!("poem {} failed: {e:?}", i + 1)),
                })
        }
    };
    Ok(ClientRun {
        total,
        bars,
        failure,
    })
}

fn name(i: usize) -> String {
    format!("s{}", i + 1)
}

/// The runs drawn as text: one line per download, `#` while it ran.
pub fn timeline(run: &ClientRun, width: usize) -> String {
    let span = run
        .bars
        .iter()
        .map(|b| b.end_ms)
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let mut out = String::new();
    for b in &run.bars {
        let from = ((b.start_ms / span) * width as f64).round() as usize;
        let to = (((b.end_ms / span) * width as f64).round() as usize).clamp(from + 1, width);
        out.push_str(&format!(
            "  poem {:<2} |{}{}{}| {:.0}-{:.0} ms\n",
            b.server + 1,
            " ".repeat(from),
            "#".repeat(to - from),
            " ".repeat(width - to),
            b.start_ms,
            b.end_ms
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(sizes: &[usize]) -> Scenario {
        Scenario {
            poems: sizes.iter().map(|n| Bytes::from(vec![b'x'; *n])).collect(),
            num_bytes: 100,
            delay: Duration::from_millis(10),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn ideal_is_the_slowest_alone_and_serial_the_sum() {
        let s = scenario(&[100, 250, 1000]);
        assert_eq!(s.alone(0), Duration::ZERO);
        assert_eq!(s.alone(1), Duration::from_millis(20));
        assert_eq!(s.alone(2), Duration::from_millis(90));
        assert_eq!(s.ideal(), Duration::from_millis(90));
        assert_eq!(s.serial(), Duration::from_millis(110));
    }

    #[test]
    fn timelines_draw_each_download_where_it_ran() {
        let run = ClientRun {
            total: Duration::from_millis(100),
            bars: vec![
                Bar {
                    server: 0,
                    start_ms: 0.0,
                    end_ms: 50.0,
                },
                Bar {
                    server: 1,
                    start_ms: 50.0,
                    end_ms: 100.0,
                },
            ],
            failure: None,
        };
        let t = timeline(&run, 10);
        assert_eq!(
            t,
            "  poem 1  |#####     | 0-50 ms\n  poem 2  |     #####| 50-100 ms\n"
        );
    }
}

//! Bench results: the data (serialised as JSON for CI to track), and the
//! side-by-side table and Markdown summary.

use serde::Serialize;

use super::load::{Load, Tally};
use super::stats::{show_us, Estimate, Percentiles};

/// The JSON report's schema version.
pub const SCHEMA: u32 = 1;

/// How a server fared against its conformance cases before it was measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verified {
    /// Cases passed.
    pub passed: usize,
    /// Cases failed (a verdict or a harness error), by ID.
    pub failed: Vec<String>,
    /// Why each failed, in the same order.
    pub reasons: Vec<String>,
    /// Cases not run (unsupported live or lacked).
    pub unsupported: usize,
    /// Cases that failed once and passed when run again (a loaded
    /// machine's timing), by ID: counted as passed.
    pub passed_on_retry: Vec<String>,
    /// Measured although it failed (`--force`).
    pub forced: bool,
}

/// One load point's figures for one server.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// The load offered.
    pub load: Load,
    /// The poem's size in bytes.
    pub poem_bytes: usize,
    /// Poems per second, over runs.
    pub poems_per_s: Estimate,
    /// Bytes per second, over runs.
    pub bytes_per_s: Estimate,
    /// Latency percentiles over every run, in microseconds.
    pub latency_us: Latencies,
    /// Failed fetches by kind, over every run.
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Open loop: fetches the generator started late, over every run.
    pub late: u64,
    /// The generator's CPU, as a share of one core, mean over runs.
    pub generator_cpu: f64,
    /// The server's CPU time per whole poem, in microseconds, over every
    /// run: where the server's time goes, and a figure a loaded machine
    /// disturbs far less than a rate. `None` where it cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_poem: Option<f64>,
    /// Messages of `other` failures, with counts.
    pub notes: std::collections::BTreeMap<String, u64>,
    /// A simulated bench's exact figures and its model's prediction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim: Option<SimPoint>,
}

/// A simulated load point's exact figures, and what the server's model
/// predicts for it (`bench --sim`).
#[derive(Debug, Clone, Serialize)]
pub struct SimPoint {
    /// Whole poems within the window.
    pub poems: u64,
    /// The mean time to the last byte, in microseconds (from the
    /// histogram: within its 0.1% resolution).
    pub last_byte_mean_us: f64,
    /// The model's prediction, if the server has a model.
    pub predicted: Option<Predicted>,
}

/// A model's prediction for one load point.
#[derive(Debug, Clone, Serialize)]
pub struct Predicted {
    /// The server's model.
    pub model: super::sim::Model,
    /// The service time `S = 2L + W`, in milliseconds.
    pub service_ms: f64,
    /// Whole poems within the window.
    pub poems: u64,
    /// Poems per second.
    pub poems_per_s: f64,
    /// The exact mean time to the last byte, in microseconds.
    pub last_byte_mean_us: f64,
    /// Percentiles of the predicted times to the last byte, as the
    /// generator's histogram records them.
    pub last_byte_us: Percentiles,
}

impl Predicted {
    /// The report's form of `p`.
    pub fn of(p: &super::sim::Prediction) -> Self {
        Predicted {
            model: p.model,
            service_ms: p.service.as_secs_f64() * 1e3,
            poems: p.poems,
            poems_per_s: p.poems_per_s,
            last_byte_mean_us: p.mean.as_secs_f64() * 1e6,
            last_byte_us: Percentiles::of(&p.last_byte),
        }
    }
}

/// Percentiles of each phase of a fetch.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latencies {
    /// To connected.
    pub connect: Percentiles,
    /// To the first byte.
    pub first_byte: Percentiles,
    /// To the last byte.
    pub last_byte: Percentiles,
}

impl Point {
    /// The figures of `runs` (one tally per run) at one load point.
    pub fn of(load: Load, poem_bytes: usize, runs: &[Tally]) -> Self {
        let mut all = Tally::default();
        for r in runs {
            all.merge(r);
        }
        let per_run = |f: &dyn Fn(&Tally) -> f64| runs.iter().map(f).collect::<Vec<_>>();
        Point {
            load,
            poem_bytes,
            poems_per_s: Estimate::of(&per_run(&|t| t.poems_per_s())),
            bytes_per_s: Estimate::of(&per_run(&|t| t.bytes_per_s())),
            latency_us: Latencies {
                connect: Percentiles::of(&all.connect),
                first_byte: Percentiles::of(&all.first_byte),
                last_byte: Percentiles::of(&all.last_byte),
            },
            errors: all
                .errors
                .iter()
                .map(|(k, n)| (k.label().to_string(), *n))
                .collect(),
            late: all.late,
            generator_cpu: Estimate::of(&per_run(&|t| t.generator_cpu_share())).mean,
            server_cpu_us_per_poem: server_cpu_per_poem(runs),
            notes: all.notes,
            sim: None,
        }
    }

    /// Failed fetches.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The server's CPU time per whole poem over `runs`, in microseconds:
/// known only when every run read it and some poem was fetched.
fn server_cpu_per_poem(runs: &[Tally]) -> Option<f64> {
    let cpu: Option<Vec<_>> = runs.iter().map(|t| t.server_cpu).collect();
    let cpu: std::time::Duration = cpu?.into_iter().sum();
    let poems: u64 = runs.iter().map(|t| t.poems).sum();
    (poems > 0).then(|| cpu.as_secs_f64() * 1e6 / poems as f64)
}

/// One server's results.
#[derive(Debug, Clone, Serialize)]
pub struct ServerResult {
    /// Its name in reports.
    pub name: String,
    /// Its command template.
    pub command: String,
    /// Its conformance check.
    pub verified: Verified,
    /// Why it was not measured, if it was not.
    pub skipped: Option<String>,
    /// Its figures, one per load point and poem size.
    pub points: Vec<Point>,
}

/// One client's results.
#[derive(Debug, Clone, Serialize)]
pub struct ClientResult {
    /// Its name in reports.
    pub name: String,
    /// Its command template.
    pub command: String,
    /// Its conformance check.
    pub verified: Verified,
    /// Why it was not measured, if it was not.
    pub skipped: Option<String>,
    /// Total time over the runs that fetched every poem, in seconds.
    pub total_s: Estimate,
    /// Runs that failed (a poem missing or wrong, or too slow).
    pub failed_runs: usize,
    /// Every run, with its download bars.
    pub runs: Vec<super::client::ClientRun>,
}

/// A whole bench.
#[derive(Debug, Clone, Serialize)]
pub struct Bench {
    /// [`SCHEMA`].
    pub schema: u32,
    /// Cores this machine has (the generator and the servers share them).
    pub cores: usize,
    /// Warm-up before each load point, in seconds.
    pub warmup_s: f64,
    /// Runs per load point.
    pub runs: usize,
    /// The server every ratio is against (the first measured, unless
    /// named).
    pub baseline: Option<String>,
    /// The servers, in the order given (a server bench).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerResult>,
    /// The client scenario (a client bench).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<ClientScenario>,
    /// The clients, in the order given (a client bench).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientResult>,
    /// The signal that interrupted the bench: its results are those so far.
    pub interrupted: Option<String>,
    /// A simulated bench (`--sim`): its network, and that its times are
    /// simulated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim: Option<SimInfo>,
}

/// What a simulated bench ran on.
#[derive(Debug, Clone, Serialize)]
pub struct SimInfo {
    /// Always true: every time in the report is simulated (turmoil).
    pub simulated: bool,
    /// The simulator's tick, in milliseconds.
    pub tick_ms: f64,
    /// The simulated links and the server's pacing.
    pub setup: super::sim::Setup,
}

/// A client bench's servers, and what their timing allows.
#[derive(Debug, Clone, Serialize)]
pub struct ClientScenario {
    /// The servers' pacing.
    #[serde(flatten)]
    pub scenario: super::client::Scenario,
    /// Each server's poem size, in argument order.
    pub poem_bytes: Vec<usize>,
    /// The slowest server alone, in seconds.
    pub ideal_s: f64,
    /// Every server one after another, in seconds.
    pub serial_s: f64,
}

/// Rows as text columns, each as wide as its widest cell, two spaces apart.
fn aligned<R: AsRef<[String]>>(rows: &[R]) -> String {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.as_ref().get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .as_ref()
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The client bench's table and timelines, for a terminal.
pub fn client_table(b: &Bench) -> String {
    let Some(sc) = &b.scenario else {
        return String::new();
    };
    let mut out = format!(
        "\n{} slow servers ({} bytes every {:.0} ms; poems of {} bytes): ideal {:.0} ms (the slowest alone), serial {:.0} ms (the sum); {} run(s) after a warm-up\n",
        sc.poem_bytes.len(),
        sc.scenario.num_bytes,
        sc.scenario.delay.as_secs_f64() * 1e3,
        sc.poem_bytes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", "),
        sc.ideal_s * 1e3,
        sc.serial_s * 1e3,
        b.runs,
    );
    let mut rows = vec![[
        "client".to_string(),
        "total ms (95% CI)".into(),
        "x ideal".into(),
        "x serial".into(),
        "failed runs".into(),
    ]];
    for c in &b.clients {
        let t = c.total_s;
        let ms = Estimate {
            mean: t.mean * 1e3,
            ci95: t.ci95 * 1e3,
            runs: t.runs,
        };
        let ratio = |to: f64| {
            if t.runs > 0 && to > 0.0 {
                format!("{:.2}", t.mean / to)
            } else {
                "-".into()
            }
        };
        let mut name = c.name.clone();
        if c.verified.forced {
            name.push_str(" (failed conformance)");
        }
        rows.push([
            name,
            if t.runs > 0 { ms.show() } else { "-".into() },
            ratio(sc.ideal_s),
            ratio(sc.serial_s),
            c.failed_runs.to_string(),
        ]);
    }
    out.push_str(&aligned(&rows));
    for c in &b.clients {
        if let Some(why) = &c.skipped {
            out.push_str(&format!("\n{}: not measured: {why}\n", c.name));
            continue;
        }
        if let Some(run) = c.runs.last() {
            out.push_str(&format!(
                "\n{}, last run ({:.0} ms):\n",
                c.name,
                run.total.as_secs_f64() * 1e3
            ));
            out.push_str(&super::client::timeline(run, 50));
            if let Some(f) = &run.failure {
                out.push_str(&format!("  failed: {f}\n"));
            }
        }
    }
    out
}

fn mib(bytes_per_s: f64) -> String {
    format!("{:.1}", bytes_per_s / (1024.0 * 1024.0))
}

fn size(bytes: usize) -> String {
    match bytes {
        0..=9_999 => format!("{bytes} B"),
        10_000..=9_999_999 => format!("{} KiB", bytes / 1024),
        _ => format!("{} MiB", bytes / (1024 * 1024)),
    }
}

fn errors(p: &Point) -> String {
    if p.errors.is_empty() {
        return "0".into();
    }
    p.errors
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The load points of the bench, in order, as (load, poem size) keys.
fn keys(b: &Bench) -> Vec<(Load, usize)> {
    let mut keys: Vec<(Load, usize)> = Vec::new();
    for s in &b.servers {
        for p in &s.points {
            if !keys.contains(&(p.load, p.poem_bytes)) {
                keys.push((p.load, p.poem_bytes));
            }
        }
    }
    keys
}

const HEADER: [&str; 9] = [
    "server",
    "poems/s (95% CI)",
    "ratio",
    "MiB/s",
    "last byte p50",
    "p99",
    "p99.9",
    "max",
    "errors",
];

/// The columns after [`HEADER`] in a live bench's tables: the server's
/// CPU per poem, and the generator's own CPU.
const TAIL: [&str; 2] = ["srv CPU/poem", "gen CPU"];

/// Rows of one load point: one per server measured at it.
fn rows(b: &Bench, key: &(Load, usize)) -> Vec<[String; 11]> {
    let at_key = |s: &ServerResult| {
        s.points
            .iter()
            .find(|p| (p.load, p.poem_bytes) == *key)
            .map(|p| p.poems_per_s.mean)
    };
    let mut base: Option<f64> = b
        .baseline
        .as_ref()
        .and_then(|name| b.servers.iter().find(|s| &s.name == name))
        .and_then(at_key);
    let mut rows = Vec::new();
    for s in &b.servers {
        let Some(p) = s.points.iter().find(|p| (p.load, p.poem_bytes) == *key) else {
            continue;
        };
        let rate = p.poems_per_s.mean;
        let base = *base.get_or_insert(rate);
        let l = p.latency_us.last_byte;
        let mut name = s.name.clone();
        if s.verified.forced {
            name.push_str(" (failed conformance)");
        }
        rows.push([
            name,
            p.poems_per_s.show(),
            if base > 0.0 {
                format!("{:.2}", rate / base)
            } else {
                "-".into()
            },
            mib(p.bytes_per_s.mean),
            us_or_dash(l.count, l.p50),
            us_or_dash(l.count, l.p99),
            us_or_dash(l.count, l.p999),
            us_or_dash(l.count, l.max),
            errors(p),
            p.server_cpu_us_per_poem
                .map_or("-".into(), |us| format!("{us:.1} µs")),
            format!("{:.0}%", p.generator_cpu * 100.0),
        ]);
    }
    rows
}

/// A latency, or `-` when no fetch finished.
fn us_or_dash(count: u64, us: u64) -> String {
    if count == 0 {
        "-".into()
    } else {
        show_us(us)
    }
}

fn title(b: &Bench, key: &(Load, usize)) -> String {
    let (load, poem) = key;
    let slow = match load.slow_readers {
        0 => String::new(),
        n => format!(", {n} slow reader(s)"),
    };
    // The runs made, which an interrupt can leave short of those asked.
    let runs = b
        .servers
        .iter()
        .flat_map(|s| &s.points)
        .filter(|p| (p.load, p.poem_bytes) == *key)
        .map(|p| p.poems_per_s.runs)
        .max()
        .unwrap_or(b.runs);
    format!(
        "{}, {} poem{slow}: {} run(s) of {:.1}s after {:.1}s warm-up",
        load.mode.describe(),
        size(*poem),
        runs,
        load.duration.as_secs_f64(),
        b.warmup_s
    )
}

/// The side-by-side table for a terminal (a simulated bench's, with its
/// predictions, for `--sim`).
pub fn table(b: &Bench) -> String {
    if b.sim.is_some() {
        return sim_table(b);
    }
    let mut out = String::new();
    for key in keys(b) {
        out.push_str(&format!("\n{}\n", title(b, &key)));
        let mut all = vec![HEADER
            .iter()
            .map(|h| h.to_string())
            .chain(TAIL.iter().map(|h| h.to_string()))
            .collect::<Vec<_>>()];
        all.extend(rows(b, &key).into_iter().map(|r| r.to_vec()));
        out.push_str(&aligned(&all));
    }
    out.push_str(&notes(b));
    if b.servers.iter().any(|s| !s.points.is_empty()) {
        out.push_str(
            "\nratio: poems/s against the baseline (--baseline, else the first server of each table); srv CPU/poem: the server program's CPU time (user and system, its whole session) per whole poem; gen CPU: the load generator's own CPU, share of one core\n",
        );
    }
    out
}

/// What the tables cannot say: servers not measured, load points where
/// nothing finished, late starts, failures of no known kind.
fn notes(b: &Bench) -> String {
    let mut out = String::new();
    for s in &b.servers {
        if let Some(why) = &s.skipped {
            out.push_str(&format!("\n{}: not measured: {why}\n", s.name));
        }
        for p in &s.points {
            if p.latency_us.last_byte.count == 0 && p.failed() == 0 {
                out.push_str(&format!(
                    "{}: no fetch finished within the {:.1}s window ({}): the server is held up\n",
                    s.name,
                    p.load.duration.as_secs_f64(),
                    p.load.mode.describe()
                ));
            }
            if p.late > 0 {
                out.push_str(&format!(
                    "{}: the generator started {} fetch(es) late ({}): latencies count from the intended start\n",
                    s.name,
                    p.late,
                    p.load.mode.describe()
                ));
            }
            for (note, n) in &p.notes {
                out.push_str(&format!("{}: {n} x {note}\n", s.name));
            }
        }
    }
    out
}

/// The simulated bench's header: what its times are.
fn sim_header(sim: &SimInfo) -> String {
    format!(
        "SIMULATED (turmoil, {:.0} ms tick, {}): every time below is simulated time, exact and deterministic; one run per load point, no warm-up, no CPU cost and no bandwidth limit modelled; no conformance check (the mutants are wrong on purpose), but every poem is checked byte for byte",
        sim.tick_ms,
        sim.setup.describe()
    )
}

const SIM_HEADER: [&str; 13] = [
    "server",
    "model",
    "poems/s",
    "predicted",
    "ratio",
    "last byte mean",
    "predicted",
    "ratio",
    "p50",
    "predicted",
    "p99",
    "max",
    "errors",
];

/// A ratio of measured to predicted, or `-`.
fn ratio(measured: f64, predicted: Option<f64>) -> String {
    match predicted {
        Some(p) if p > 0.0 => format!("{:.3}", measured / p),
        _ => "-".into(),
    }
}

/// Rows of one simulated load point: one per server measured at it.
fn sim_rows(b: &Bench, key: &(Load, usize)) -> Vec<[String; 13]> {
    let mut rows = Vec::new();
    for s in &b.servers {
        let Some(p) = s.points.iter().find(|p| (p.load, p.poem_bytes) == *key) else {
            continue;
        };
        let Some(sim) = &p.sim else { continue };
        let pred = sim.predicted.as_ref();
        let l = p.latency_us.last_byte;
        let mean = if l.count == 0 {
            "-".to_string()
        } else {
            show_us(sim.last_byte_mean_us.round() as u64)
        };
        rows.push([
            s.name.clone(),
            pred.map_or("-".into(), |q| q.model.label().to_string()),
            format!("{:.2}", p.poems_per_s.mean),
            pred.map_or("-".into(), |q| format!("{:.2}", q.poems_per_s)),
            ratio(p.poems_per_s.mean, pred.map(|q| q.poems_per_s)),
            mean,
            pred.map_or("-".into(), |q| show_us(q.last_byte_mean_us.round() as u64)),
            if l.count == 0 {
                "-".into()
            } else {
                ratio(sim.last_byte_mean_us, pred.map(|q| q.last_byte_mean_us))
            },
            us_or_dash(l.count, l.p50),
            pred.map_or("-".into(), |q| {
                us_or_dash(q.last_byte_us.count, q.last_byte_us.p50)
            }),
            us_or_dash(l.count, l.p99),
            us_or_dash(l.count, l.max),
            errors(p),
        ]);
    }
    rows
}

fn sim_title(key: &(Load, usize)) -> String {
    let (load, poem) = key;
    let slow = match load.slow_readers {
        0 => String::new(),
        n => format!(", {n} slow reader(s)"),
    };
    format!(
        "{}, {} poem{slow}: {:.1}s of simulated time",
        load.mode.describe(),
        size(*poem),
        load.duration.as_secs_f64(),
    )
}

/// The models of the servers measured, explained with the setup's
/// numbers, once per poem size.
fn sim_models(b: &Bench, sim: &SimInfo) -> String {
    let mut out = String::new();
    let mut seen: Vec<(super::sim::Model, usize)> = Vec::new();
    for p in b.servers.iter().flat_map(|s| &s.points) {
        let Some(q) = p.sim.as_ref().and_then(|x| x.predicted.as_ref()) else {
            continue;
        };
        if !seen.contains(&(q.model, p.poem_bytes)) {
            seen.push((q.model, p.poem_bytes));
        }
    }
    seen.sort_by_key(|(m, n)| (*n, m.label()));
    for (model, poem) in seen {
        out.push_str(&format!(
            "model, {} poem: {}\n",
            size(poem),
            super::sim::explain(model, sim.setup, poem)
        ));
    }
    out
}

/// The simulated bench's tables: measured next to predicted.
fn sim_table(b: &Bench) -> String {
    let Some(sim) = &b.sim else {
        return String::new();
    };
    let mut out = format!("\n{}\n", sim_header(sim));
    for key in keys(b) {
        out.push_str(&format!("\n{}\n", sim_title(&key)));
        let mut all = vec![SIM_HEADER.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
        all.extend(sim_rows(b, &key).into_iter().map(|r| r.to_vec()));
        out.push_str(&aligned(&all));
    }
    out.push_str(&notes(b));
    if b.servers.iter().any(|s| !s.points.is_empty()) {
        out.push('\n');
        out.push_str(&sim_models(b, sim));
        out.push_str(
            "L: one-way link latency; W: the server's time to write the poem (its pacing); N: connections; ratio: measured / predicted; '-': no model for this server or load\np50, p99, max: the top of the generator's histogram bucket (3 significant digits: 80 ms shows as 80.1ms), predicted ones recorded the same way\n",
        );
    }
    out
}

/// How a program fared against its conformance cases, in words.
fn verdict(v: &Verified) -> String {
    if v.failed.is_empty() {
        format!("passed {} conformance case(s)", v.passed)
    } else {
        format!(
            "failed {} conformance case(s) ({}){}",
            v.failed.len(),
            v.failed.join(", "),
            if v.forced {
                ", measured with --force"
            } else {
                ""
            }
        )
    }
}

/// The Markdown summary.
pub fn markdown(b: &Bench) -> String {
    if let Some(sim) = &b.sim {
        return sim_markdown(b, sim);
    }
    let mut out = format!(
        "# poetry-harness bench\n\n{} core(s), shared by the load generator and the servers.\n",
        b.cores
    );
    for s in &b.servers {
        out.push_str(&format!(
            "\n- **{}**: {}; `{}`",
            s.name,
            verdict(&s.verified),
            s.command
        ));
        if let Some(why) = &s.skipped {
            out.push_str(&format!("; not measured: {why}"));
        }
    }
    for c in &b.clients {
        out.push_str(&format!(
            "\n- **{}**: {}; `{}`",
            c.name,
            verdict(&c.verified),
            c.command
        ));
        if let Some(why) = &c.skipped {
            out.push_str(&format!("; not measured: {why}"));
        }
    }
    out.push('\n');
    let clients = client_table(b);
    if !clients.is_empty() {
        out.push_str(&format!("\n## Clients\n\n```\n{}\n```\n", clients.trim()));
    }
    for key in keys(b) {
        out.push_str(&format!("\n## {}\n\n", title(b, &key)));
        out.push_str(&format!(
            "| {} | {} |\n",
            HEADER.join(" | "),
            TAIL.join(" | ")
        ));
        out.push_str(&format!("|{}\n", "---|".repeat(HEADER.len() + TAIL.len())));
        for r in rows(b, &key) {
            let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
    }
    out
}

/// The simulated bench's Markdown summary: measured next to predicted.
fn sim_markdown(b: &Bench, sim: &SimInfo) -> String {
    let mut out = format!("# poetry-harness bench --sim\n\n{}.\n", sim_header(sim));
    for s in &b.servers {
        out.push_str(&format!("\n- **{}**", s.name));
        if let Some(why) = &s.skipped {
            out.push_str(&format!(": not measured: {why}"));
        }
    }
    out.push('\n');
    for key in keys(b) {
        out.push_str(&format!("\n## {}\n\n", sim_title(&key)));
        out.push_str(&format!("| {} |\n", SIM_HEADER.join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(SIM_HEADER.len())));
        for r in sim_rows(b, &key) {
            let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
    }
    let models = sim_models(b, sim);
    if !models.is_empty() {
        out.push('\n');
        for line in models.lines() {
            out.push_str(&format!("- {line}\n"));
        }
    }
    out
}

//! `poetry-harness bench`: verify each server, then measure it under load.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use indexmap::IndexMap;

use super::{duration_arg, Exit};
use crate::backend::live::{self, manifest::Manifest, process, template, LiveSubject};
use crate::bench::client;
use crate::bench::load::{self, Load, Mode};
use crate::bench::report::{self, Bench, ClientResult, Point, ServerResult, Verified};
use crate::bench::sim;
use crate::bench::stats::Estimate;
use crate::case::{poem, Role};
use crate::engine::{self, EngineOptions, LiveTarget};

/// Measure poetry servers under load, side by side.
///
/// Each server is first run against the catalog's server cases as a live
/// program; one that fails them is not measured (unless --force, which the
/// report then says). Then the very same command is started once per poem
/// size, warmed up, and loaded for --runs runs at each load point. Every
/// poem is checked byte for byte: a short, wrong or reset poem is an error,
/// never a poem. Figures: poems/s and MiB/s (mean and 95% confidence
/// interval over runs), latency percentiles (HdrHistogram) to connect,
/// first and last byte, errors by kind, and the load generator's own CPU.
///
/// Two load modes, labelled in every table:
///   --connections N   closed loop: N fetchers, each fetching back to back
///   --rate R          open loop: R fetches per second whatever the server
///                     does; latency counts from the intended start, so a
///                     stalling server cannot hide the fetches queued
///                     behind it (coordinated omission)
///
/// A comma-separated list sweeps: --connections 1,8,64,512 or
/// --poem-size 1KiB,1MiB,16MiB. --slow-readers N adds N connections that
/// read 1 KiB every 100 ms throughout: a server one slow reader holds up
/// shows it in the others' numbers.
///
/// Servers: the built-in reference (--reference, the default when no
/// other is given), --cmd TEMPLATE (placeholders {port} {poem}
/// {num_bytes} {delay}, as in `run`), and --manifest FILE (its [server]).
/// --cmd and --manifest may be given several times. They are measured
/// in that order (the reference, each --cmd, each --manifest), and every
/// ratio is against the first, or the one --baseline names.
///
/// Simulated (--sim): in-process Rust implementations of the server role
/// (the reference, and the mutant zoo's servers by name with --sim-impl)
/// are loaded by the same generator inside the turmoil simulator, where
/// every time is simulated: exact, deterministic, free of noise. Links
/// take --sim-latency one way; --sim-delay paces the server. One run per
/// load point, no warm-up and no conformance check (the mutants are wrong
/// on purpose; every poem is still checked byte for byte). For servers
/// whose strategy is known the table prints the model's prediction next
/// to the measurement, and their ratio: a server that serves one
/// connection at a time (server-one-at-a-time) gives one poem per
/// S = 2L + W (L the link latency, W its pacing time), whatever the
/// number N of connections, and each fetch waits ~N*S; the concurrent
/// reference gives every fetch S, whatever N.
///
/// Examples:
///   poetry-harness bench
///   poetry-harness bench --sim --connections 1,4,16
///   poetry-harness bench --sim --sim-impl reference --sim-impl server-one-at-a-time --sim-latency 5ms --sim-delay 2ms
///   poetry-harness bench --reference --manifest fixtures/python/asyncio.toml --connections 1,32
///   poetry-harness bench --rate 2000 --duration 5s --json bench.json --markdown bench.md
///   poetry-harness bench --reference --manifest fixtures/strategies/ceiling.toml --baseline rust-ceiling
#[derive(Debug, clap::Args)]
// The last of a repeated flag wins (`--runs 2 ... --runs 5`).
#[command(verbatim_doc_comment, args_override_self = true)]
pub struct BenchArgs {
    /// What to bench: poetry servers under load, or poetry clients
    /// fetching from slow servers.
    #[arg(long, value_enum, default_value = "server")]
    role: BenchRole,
    /// Bench the built-in reference (the default with no other).
    #[arg(long)]
    reference: bool,
    /// A program's command template (repeatable).
    #[arg(long, value_name = "TEMPLATE")]
    cmd: Vec<String>,
    /// A manifest whose [server] (or [client]) to bench (repeatable).
    #[arg(long, value_name = "FILE")]
    manifest: Vec<PathBuf>,
    /// Clients: how many slow servers to fetch from at once.
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// Clients: bytes each slow server writes at a time.
    #[arg(long, default_value_t = 100)]
    num_bytes: usize,
    /// Clients: pause between a slow server's writes.
    #[arg(long, default_value = "50ms", value_parser = duration_arg)]
    delay: Duration,
    /// Closed loop: fetchers, a list sweeps (1 to 10000).
    #[arg(long, value_delimiter = ',', default_value = "32")]
    connections: Vec<usize>,
    /// Open loop instead: fetches per second, a list sweeps.
    #[arg(long, value_delimiter = ',')]
    rate: Vec<f64>,
    /// Poem sizes (bytes, or with KiB/MiB), a list sweeps; the default is
    /// the series' "The Tyger" (806 bytes).
    #[arg(long, value_delimiter = ',', value_parser = size_arg)]
    poem_size: Vec<usize>,
    /// Connections reading 1 KiB every 100 ms alongside the measured ones.
    #[arg(long, default_value_t = 0)]
    slow_readers: usize,
    /// How long each run measures.
    #[arg(long, default_value = "3s", value_parser = duration_arg)]
    duration: Duration,
    /// Load before each load point's runs, not measured.
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    warmup: Duration,
    /// Runs per load point (the confidence interval needs at least 2).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// A fetch unfinished after this is a timeout.
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    timeout: Duration,
    /// Measure servers that fail their conformance cases too.
    #[arg(long)]
    force: bool,
    /// The server every ratio is against, by name (`reference`, `cmd 2`,
    /// a manifest's name); default: the first one measured. Servers are
    /// measured in this order: --reference, each --cmd, each --manifest.
    #[arg(long, value_name = "NAME")]
    baseline: Option<String>,
    /// Write the results as JSON (schema 1) to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a Markdown summary to this file.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Write SVG plots into this folder (created if need be): throughput
    /// and latency against the load, and the clients' download timelines.
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
    /// Bench in-process Rust servers inside the turmoil simulator, in
    /// simulated time (see above): by default the reference and
    /// server-one-at-a-time.
    #[arg(long, conflicts_with_all = ["cmd", "manifest", "force", "baseline"])]
    sim: bool,
    /// With --sim: a server to bench, `reference` or a server mutant's
    /// name (repeatable; `poetry-harness mutants` lists them).
    #[arg(long, value_name = "NAME", requires = "sim")]
    sim_impl: Vec<String>,
    /// With --sim: every message's one-way latency, in whole milliseconds
    /// (default 10ms).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg, requires = "sim")]
    sim_latency: Option<Duration>,
    /// With --sim: the server paces its poem, writing --sim-num-bytes at a
    /// time with this pause between writes (whole milliseconds); default:
    /// the whole poem at once.
    #[arg(long, value_name = "DURATION", value_parser = duration_arg, requires = "sim")]
    sim_delay: Option<Duration>,
    /// With --sim-delay: bytes per write (default 10, the series' slow
    /// server's).
    #[arg(long, value_name = "N", requires = "sim_delay")]
    sim_num_bytes: Option<usize>,
}

/// The role `bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchRole {
    /// Poetry servers, under load.
    Server,
    /// Poetry clients, fetching from slow servers.
    Client,
}

impl BenchRole {
    fn role(self) -> Role {
        match self {
            BenchRole::Server => Role::Server,
            BenchRole::Client => Role::Client,
        }
    }
}

/// Limits on the knobs: beyond them a bench measures the machine's
/// limits, not the server.
const MAX_CONNECTIONS: usize = 10_000;
const MAX_RATE: f64 = 1_000_000.0;
const MAX_RUNS: usize = 100;
const MAX_DURATION: Duration = Duration::from_secs(3600);
const MAX_CLIENT_SERVERS: usize = 100;

/// Conformance failures run again before a program is refused, at most.
const MAX_RETRIED: usize = 3;

/// `806`, `64KiB`, `1MiB`, `16MB` (MB and KB are taken as MiB and KiB).
fn size_arg(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (like 806, 64KiB or 1MiB)"))?;
    let by = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        other => return Err(format!("'{s}': unknown unit '{other}' (use B, KiB or MiB)")),
    };
    let bytes = n
        .checked_mul(by)
        .filter(|b| *b <= poem::MAX_POEM_SIZE)
        .ok_or_else(|| format!("'{s}' is over the largest poem, 64 MiB"))?;
    Ok(bytes)
}

fn check(args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(c) = args
        .connections
        .iter()
        .find(|c| !(1..=MAX_CONNECTIONS).contains(*c))
    {
        anyhow::bail!("--connections '{c}' must be between 1 and {MAX_CONNECTIONS}");
    }
    if let Some(r) = args
        .rate
        .iter()
        .find(|r| !(r.is_finite() && **r > 0.0 && **r <= MAX_RATE))
    {
        anyhow::bail!("--rate '{r}' must be above 0 and at most {MAX_RATE} poems/s");
    }
    if !(1..=MAX_RUNS).contains(&args.runs) {
        anyhow::bail!("--runs '{}' must be between 1 and {MAX_RUNS}", args.runs);
    }
    for (flag, d) in [("--duration", args.duration), ("--timeout", args.timeout)] {
        if d.is_zero() || d > MAX_DURATION {
            anyhow::bail!("{flag} must be above 0 and at most an hour");
        }
    }
    if args.warmup > MAX_DURATION {
        anyhow::bail!("--warmup must be at most an hour");
    }
    if args.slow_readers > MAX_CONNECTIONS {
        anyhow::bail!(
            "--slow-readers '{}' must be at most {MAX_CONNECTIONS}",
            args.slow_readers
        );
    }
    if !(1..=MAX_CLIENT_SERVERS).contains(&args.servers) {
        anyhow::bail!(
            "--servers '{}' must be between 1 and {MAX_CLIENT_SERVERS}",
            args.servers
        );
    }
    if args.num_bytes == 0 {
        anyhow::bail!("--num-bytes '0' must be at least 1");
    }
    if args.delay > MAX_DURATION {
        anyhow::bail!("--delay must be at most an hour");
    }
    if args.poem_size.contains(&0) {
        anyhow::bail!(
            "--poem-size 0: an empty poem measures only connect and close; give at least 1 byte"
        );
    }
    for (flag, path) in [("--json", &args.json), ("--markdown", &args.markdown)] {
        if let Some(path) = path {
            crate::report::check_writable(flag, path).map_err(anyhow::Error::msg)?;
        }
    }
    // Found now, not after the whole bench.
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("--plots '{}' cannot be created: {e}", dir.display()))?;
    }
    Ok(())
}

/// A program to bench: a name and a live subject.
struct Server {
    name: String,
    subject: LiveSubject,
}

/// The programs to bench, in the order given: the reference first if
/// asked for (or if nothing else is), then each --cmd, then each manifest.
fn subjects(args: &BenchArgs) -> anyhow::Result<Vec<Server>> {
    let role = args.role.role();
    let table = live::manifest::table(role);
    let mut out = Vec::new();
    let reference = args.reference || (args.cmd.is_empty() && args.manifest.is_empty());
    if reference {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let programs =
            live::reference_programs::ReferencePrograms::new(exe).map_err(anyhow::Error::msg)?;
        out.push(Server {
            name: "reference".into(),
            subject: LiveSubject::new(role, programs.command(role, None)),
        });
    }
    for (i, cmd) in args.cmd.iter().enumerate() {
        template::check(cmd).map_err(|e| anyhow::anyhow!("--cmd '{cmd}': {e}"))?;
        let exit_127_unsupported =
            live::launch::probe_command(cmd).map_err(|e| anyhow::anyhow!("--cmd '{cmd}': {e}"))?;
        out.push(Server {
            name: format!("cmd {}", i + 1),
            subject: LiveSubject {
                exit_127_unsupported,
                ..LiveSubject::new(role, cmd.clone())
            },
        });
    }
    for path in &args.manifest {
        let m = Manifest::load(path).map_err(anyhow::Error::msg)?;
        let Some(rc) = m.role(role) else {
            anyhow::bail!(
                "{}: declares no [{table}] to bench (--role {table})",
                path.display()
            );
        };
        let exit_127_unsupported = live::launch::probe_command(&rc.command)
            .map_err(|e| anyhow::anyhow!("{}: [{table}] command: {e}", path.display()))?;
        let mut lacks = m.lacks.clone();
        lacks.extend(rc.lacks.iter().cloned());
        let mut env = m.env.clone();
        env.extend(rc.env.iter().cloned());
        out.push(Server {
            name: m.name.clone(),
            subject: LiveSubject {
                exit_127_unsupported,
                lacks,
                env,
                contract: rc.contract,
                startup_timeout: Duration::from_secs_f64(rc.startup_timeout.clamp(0.1, 3600.0)),
                time_scale: m.time_scale.unwrap_or(live::DEFAULT_TIME_SCALE),
                ..LiveSubject::new(role, rc.command.clone())
            },
        });
    }
    Ok(out)
}

/// Runs the catalog's cases of its role against `server`.
fn verify(server: &Server) -> anyhow::Result<Verified> {
    let catalog = crate::catalog::Catalog::builtin()?;
    let role = server.subject.role;
    let cases: Vec<&crate::case::Case> = catalog.cases.iter().filter(|c| c.role == role).collect();
    let mut roles = IndexMap::new();
    roles.insert(role, server.subject.clone());
    let target = LiveTarget {
        name: server.name.clone(),
        lacks: server.subject.lacks.clone(),
        roles,
        profile: None,
    };
    let opts = EngineOptions::default();
    let results = engine::run_all_live(&cases, &target, &opts, &|_| {});
    let mut v = Verified::default();
    // A few failures are run once more: a loaded machine can break a time
    // bound once, a bug breaks it again. A program failing more is broken,
    // and not kept waiting for twice.
    let failures = results.iter().filter(|r| r.label() == "FAIL").count();
    for r in &results {
        let again = (r.label() == "FAIL" && failures <= MAX_RETRIED)
            .then(|| engine::run_case_live(&r.case, &target, &opts));
        if again.as_ref().is_some_and(|a| a.label() == "PASS") {
            v.passed += 1;
            v.passed_on_retry.push(r.case.id.clone());
            continue;
        }
        match r.label() {
            "PASS" => v.passed += 1,
            "UNSUPPORTED" => v.unsupported += 1,
            _ => {
                v.failed.push(r.case.id.clone());
                v.reasons.push(r.verdict.reason.clone());
            }
        }
    }
    Ok(v)
}

/// A running server program, killed on drop.
struct Running {
    program: process::Program,
    addr: std::net::SocketAddr,
    _poem_file: tempfile::NamedTempFile,
}

async fn start(server: &Server, poem: &[u8]) -> anyhow::Result<Running> {
    let poem_file = tempfile::NamedTempFile::new()?;
    std::fs::write(poem_file.path(), poem)?;
    let port = process::free_port()?;
    let mut values: IndexMap<&str, String> = IndexMap::new();
    values.insert("port", port.to_string());
    values.insert(
        "poem",
        template::shell_quote(&poem_file.path().display().to_string()),
    );
    // The whole poem in one write, no pause: as fast as it can.
    values.insert("num_bytes", poem.len().max(1).to_string());
    values.insert("delay", "0".into());
    let command =
        template::expand(&server.subject.command, &values, false).map_err(anyhow::Error::msg)?;
    let mut program =
        process::Program::spawn(&command, &crate::bench::program_env(&server.subject))
            .with_context(|| format!("cannot start '{command}'"))?;
    if let Err(not_ready) =
        live::wait_ready(&mut program, port, server.subject.startup_timeout, true).await
    {
        program.kill();
        anyhow::bail!("'{command}' {not_ready}");
    }
    Ok(Running {
        program,
        addr: ([127, 0, 0, 1], port).into(),
        _poem_file: poem_file,
    })
}

impl Drop for Running {
    fn drop(&mut self) {
        self.program.kill();
    }
}

/// The poems to serve: the sizes asked for, or "The Tyger".
fn poems(args: &BenchArgs) -> Vec<Arc<[u8]>> {
    if args.poem_size.is_empty() {
        let tyger = poem::fixture(poem::DEFAULT_POEM).unwrap_or(b"Tyger Tyger, burning bright\n");
        return vec![Arc::from(tyger)];
    }
    args.poem_size
        .iter()
        .map(|n| Arc::from(&poem::generated(*n)[..]))
        .collect()
}

/// The load `args` put on a server at one of its [`modes`].
fn load_at(args: &BenchArgs, mode: Mode) -> Load {
    Load {
        mode,
        duration: args.duration,
        timeout: args.timeout,
        slow_readers: args.slow_readers,
    }
}

fn modes(args: &BenchArgs) -> Vec<Mode> {
    if args.rate.is_empty() {
        args.connections
            .iter()
            .map(|&connections| Mode::Closed { connections })
            .collect()
    } else {
        args.rate.iter().map(|&rate| Mode::Open { rate }).collect()
    }
}

/// After an interrupt, how long the bench may take to stop its runs and
/// write what it has before it exits regardless.
const INTERRUPT_GRACE: Duration = Duration::from_secs(30);

pub fn run(args: BenchArgs) -> anyhow::Result<Exit> {
    process::install_interrupt_handler();
    // An interrupt stops the verification and the load (no new fetch
    // starts; the programs are killed), then the results so far are
    // printed and written, the run cut short left out.
    process::on_interrupt(|signal| {
        engine::request_stop();
        std::thread::spawn(move || {
            std::thread::sleep(INTERRUPT_GRACE);
            process::kill_all();
            std::process::exit(process::exit_status_for(signal));
        });
    });
    check(&args)?;
    if args.sim {
        return run_sim(&args);
    }
    let subjects = subjects(&args)?;
    if let Some(name) = &args.baseline {
        if !subjects.iter().any(|s| &s.name == name) {
            let names: Vec<&str> = subjects.iter().map(|s| s.name.as_str()).collect();
            anyhow::bail!(
                "--baseline '{name}' names no server of this bench (its servers: {})",
                names.join(", ")
            );
        }
    }
    let rt = super::runtime()?;
    let mut bench = Bench {
        schema: report::SCHEMA,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        warmup_s: args.warmup.as_secs_f64(),
        runs: args.runs,
        baseline: args.baseline.clone(),
        servers: Vec::new(),
        scenario: None,
        clients: Vec::new(),
        interrupted: None,
        sim: None,
    };
    let scenario = client_scenario(&args);
    if args.role == BenchRole::Client {
        bench.scenario = Some(report::ClientScenario {
            poem_bytes: scenario.poems.iter().map(|p| p.len()).collect(),
            ideal_s: scenario.ideal().as_secs_f64(),
            serial_s: scenario.serial().as_secs_f64(),
            scenario: scenario.clone(),
        });
    }
    let mut refused = false;
    for subject in &subjects {
        if process::interrupted_by().is_some() {
            break;
        }
        eprintln!(
            "{}: checking its conformance (the catalog's {} cases)",
            subject.name, subject.subject.role
        );
        let mut verified = verify(subject)?;
        let mut skipped = None;
        if !verified.failed.is_empty() {
            if args.force {
                verified.forced = true;
            } else {
                refused = true;
                skipped = Some(format!(
                    "it failed {} conformance case(s): {} (see them with `poetry-harness run --role {} --cmd ...`; --force measures it anyway)",
                    verified.failed.len(),
                    verified.failed.join(", "),
                    subject.subject.role
                ));
            }
        }
        match args.role {
            BenchRole::Server => {
                let mut result = ServerResult {
                    name: subject.name.clone(),
                    command: subject.subject.command.clone(),
                    verified,
                    skipped,
                    points: Vec::new(),
                };
                if result.skipped.is_none() {
                    for poem in poems(&args) {
                        if process::interrupted_by().is_some() {
                            break;
                        }
                        rt.block_on(measure_server(subject, &poem, &args, &mut result))?;
                    }
                }
                bench.servers.push(result);
            }
            BenchRole::Client => {
                let mut result = ClientResult {
                    name: subject.name.clone(),
                    command: subject.subject.command.clone(),
                    verified,
                    skipped,
                    total_s: Estimate::default(),
                    failed_runs: 0,
                    runs: Vec::new(),
                };
                if result.skipped.is_none() {
                    rt.block_on(measure_client(subject, &scenario, &args, &mut result))?;
                }
                bench.clients.push(result);
            }
        }
    }
    bench.interrupted = process::interrupted_by().map(|s| s.to_string());
    if let Some(signal) = &bench.interrupted {
        println!("interrupted by {signal}: the results so far");
    }
    print!("{}", report::table(&bench));
    print!("{}", report::client_table(&bench));
    write_outputs(&args, &bench)?;
    process::kill_orphans();
    if let Some(signal) = process::interrupted_by() {
        std::process::exit(process::exit_status_for(signal));
    }
    Ok(if refused { Exit::Failed } else { Exit::Ok })
}

/// The default one-way link latency of `--sim`.
const SIM_LATENCY: Duration = Duration::from_millis(10);

/// The servers `--sim` benches by default: the concurrent reference and
/// the serial mutant, the comparison the model explains.
const SIM_DEFAULT: [&str; 2] = ["reference", "server-one-at-a-time"];

/// At most this many fetches, estimated, per simulated load point: the
/// simulator makes about 3,000 a second (debug build, 2,000 connections),
/// so a point stays within minutes.
const MAX_SIM_FETCHES: f64 = 1_000_000.0;

/// The simulated setup `args` ask for, checked.
fn sim_setup(args: &BenchArgs) -> anyhow::Result<sim::Setup> {
    let latency = args.sim_latency.unwrap_or(SIM_LATENCY);
    sim::check_ticks("--sim-latency", latency, true)?;
    if latency > MAX_DURATION {
        anyhow::bail!("--sim-latency must be at most an hour");
    }
    sim::check_ticks("--duration", args.duration, false)?;
    sim::check_ticks("--timeout", args.timeout, false)?;
    let pacing = match args.sim_delay {
        None => None,
        Some(delay) => {
            sim::check_ticks("--sim-delay", delay, false)?;
            if delay > MAX_DURATION {
                anyhow::bail!("--sim-delay must be at most an hour");
            }
            let num_bytes = args
                .sim_num_bytes
                .unwrap_or(crate::reference::poetry_server::DEFAULT_NUM_BYTES);
            if num_bytes == 0 {
                anyhow::bail!("--sim-num-bytes '0' must be at least 1");
            }
            Some(crate::reference::Pacing { num_bytes, delay })
        }
    };
    if args.role != BenchRole::Server {
        anyhow::bail!("--sim benches servers only (--role server)");
    }
    if !args.rate.is_empty() && args.rate.iter().any(|r| *r > 100_000.0) {
        anyhow::bail!("--sim: --rate must be at most 100000 poems/s in the simulator");
    }
    // The most fetches a point can make: every connection back to back
    // with the fastest possible fetch (two link latencies).
    let most = args
        .connections
        .iter()
        .map(|&c| c as f64)
        .chain(args.rate.iter().map(|r| r * 2.0 * latency.as_secs_f64()))
        .fold(0.0, f64::max)
        * args.duration.as_secs_f64()
        / (2.0 * latency.as_secs_f64());
    if most > MAX_SIM_FETCHES {
        anyhow::bail!(
            "--sim: up to {most:.0} fetches per load point is too many to simulate (at most {MAX_SIM_FETCHES:.0}): shorten --duration, or lengthen --sim-latency"
        );
    }
    Ok(sim::Setup { latency, pacing })
}

/// The implementations `--sim` benches, by name, in the order given.
fn sim_implementations(args: &BenchArgs) -> anyhow::Result<Vec<crate::roles::Implementation>> {
    let mut names: Vec<&str> = Vec::new();
    if args.reference {
        names.push("reference");
    }
    names.extend(args.sim_impl.iter().map(String::as_str));
    if names.is_empty() {
        names.extend(SIM_DEFAULT);
    }
    let mut out: Vec<crate::roles::Implementation> = Vec::new();
    for name in names {
        if out.iter().any(|i| i.name == name) {
            anyhow::bail!("--sim-impl '{name}' is given twice");
        }
        let imp = if name == "reference" {
            crate::roles::Implementation::reference()
        } else {
            match crate::mutants::by_name(name) {
                Some(m) if m.role == Role::Server => (m.build)(),
                found => {
                    let mut valid = vec!["reference"];
                    valid.extend(crate::mutants::names_of_role(Role::Server));
                    let what = match found {
                        Some(m) => format!("is a {} mutant, not a server", m.role),
                        None => "is not an implementation of the server role".to_string(),
                    };
                    anyhow::bail!("--sim-impl '{name}' {what} (valid: {})", valid.join(", "));
                }
            }
        };
        out.push(crate::roles::Implementation {
            name: name.to_string(),
            ..imp
        });
    }
    Ok(out)
}

/// `bench --sim`: each implementation at each load point, in turmoil.
fn run_sim(args: &BenchArgs) -> anyhow::Result<Exit> {
    let setup = sim_setup(args)?;
    let imps = sim_implementations(args)?;
    let mut bench = Bench {
        schema: report::SCHEMA,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        warmup_s: 0.0,
        runs: 1,
        baseline: None,
        servers: Vec::new(),
        scenario: None,
        clients: Vec::new(),
        interrupted: None,
        sim: Some(report::SimInfo {
            simulated: true,
            tick_ms: sim::TICK.as_secs_f64() * 1e3,
            setup,
        }),
    };
    for imp in &imps {
        let mut result = ServerResult {
            name: imp.name.clone(),
            command: format!("in-process ({})", imp.name),
            verified: Verified::default(),
            skipped: None,
            points: Vec::new(),
        };
        let Some(server) = imp.server.clone() else {
            continue;
        };
        'points: for poem in poems(args) {
            for mode in modes(args) {
                if process::interrupted_by().is_some() {
                    break 'points;
                }
                let load = load_at(args, mode);
                eprintln!(
                    "{}: {}, {}-byte poem (simulated)",
                    imp.name,
                    mode.describe(),
                    poem.len()
                );
                let measured = match sim::measure(server.clone(), poem.clone(), load, setup) {
                    Ok(m) => m,
                    Err(e) => {
                        result.skipped = Some(format!("{} ({})", e, mode.describe()));
                        break 'points;
                    }
                };
                let mut point = Point::of(load, poem.len(), std::slice::from_ref(&measured.tally));
                // The generator's CPU is the simulator's, not a cost of the load.
                point.generator_cpu = 0.0;
                if let Some(e) = measured.server_error {
                    point.notes.insert(
                        format!("the server's serve returned '{e}' and it stopped serving"),
                        1,
                    );
                }
                let predicted = sim::model_of(&imp.name)
                    .and_then(|m| sim::predict(m, setup, poem.len(), &load));
                point.sim = Some(report::SimPoint {
                    poems: measured.tally.poems,
                    last_byte_mean_us: if measured.tally.last_byte.is_empty() {
                        0.0
                    } else {
                        measured.tally.last_byte.mean()
                    },
                    predicted: predicted.as_ref().map(report::Predicted::of),
                });
                result.points.push(point);
            }
        }
        bench.servers.push(result);
    }
    bench.interrupted = process::interrupted_by().map(|s| s.to_string());
    if let Some(signal) = &bench.interrupted {
        println!("interrupted by {signal}: the results so far");
    }
    print!("{}", report::table(&bench));
    write_outputs(args, &bench)?;
    if let Some(signal) = process::interrupted_by() {
        std::process::exit(process::exit_status_for(signal));
    }
    Ok(Exit::Ok)
}

/// Writes the JSON, Markdown and plots `args` ask for.
fn write_outputs(args: &BenchArgs, bench: &Bench) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(bench)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, report::markdown(bench))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let plots = crate::bench::plot::plots(bench)
            .map_err(|e| anyhow::anyhow!("cannot draw the plots: {e}"))?;
        for p in plots {
            let path = dir.join(&p.name);
            std::fs::write(&path, p.svg)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("plot: {}", path.display());
        }
    }
    Ok(())
}

/// The client bench's servers: the series' poems in turn, paced.
fn client_scenario(args: &BenchArgs) -> client::Scenario {
    const POEMS: [&str; 3] = ["tyger", "science", "loreley"];
    let poems = (0..args.servers)
        .map(
            |i| match args.poem_size.get(i % args.poem_size.len().max(1)) {
                Some(n) => poem::generated(*n),
                None => bytes::Bytes::from_static(
                    poem::fixture(POEMS[i % POEMS.len()]).unwrap_or(b"a poem\n"),
                ),
            },
        )
        .collect();
    client::Scenario {
        poems,
        num_bytes: args.num_bytes,
        delay: args.delay,
        timeout: args.timeout,
    }
}

async fn measure_client(
    subject: &Server,
    scenario: &client::Scenario,
    args: &BenchArgs,
    result: &mut ClientResult,
) -> anyhow::Result<()> {
    eprintln!(
        "{}: fetching from {} slow servers",
        subject.name,
        scenario.poems.len()
    );
    if !args.warmup.is_zero() {
        // One unmeasured run: caches warm, interpreters compiled.
        let _ = client::run_once(&subject.subject, scenario).await?;
    }
    let mut totals = Vec::new();
    for _ in 0..args.runs {
        if process::interrupted_by().is_some() {
            break;
        }
        let run = client::run_once(&subject.subject, scenario).await?;
        if process::interrupted_by().is_some() {
            break;
        }
        if run.failure.is_some() {
            result.failed_runs += 1;
        } else {
            totals.push(run.total.as_secs_f64());
        }
        result.runs.push(run);
    }
    result.total_s = Estimate::of(&totals);
    Ok(())
}

async fn measure_server(
    server: &Server,
    poem: &Arc<[u8]>,
    args: &BenchArgs,
    result: &mut ServerResult,
) -> anyhow::Result<()> {
    let running = match start(server, poem).await {
        Ok(r) => r,
        Err(e) => {
            result.skipped = Some(format!("{e:#}"));
            return Ok(());
        }
    };
    for mode in modes(args) {
        if process::interrupted_by().is_some() {
            break;
        }
        let load = load_at(args, mode);
        eprintln!(
            "{}: {}, {}-byte poem",
            server.name,
            mode.describe(),
            poem.len()
        );
        if !args.warmup.is_zero() {
            let _ = load::measure(
                running.addr,
                poem.clone(),
                Load {
                    duration: args.warmup,
                    ..load
                },
            )
            .await;
        }
        let mut runs = Vec::new();
        for _ in 0..args.runs {
            let cpu_before = running.program.cpu_time();
            let mut tally = load::measure(running.addr, poem.clone(), load).await;
            tally.server_cpu = cpu_before
                .zip(running.program.cpu_time())
                .map(|(before, after)| after.saturating_sub(before));
            // A run cut short by an interrupt would understate the rate.
            if process::interrupted_by().is_some() {
                break;
            }
            runs.push(tally);
        }
        if !runs.is_empty() {
            result.points.push(Point::of(load, poem.len(), &runs));
        }
    }
    drop(running);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_refuse_nonsense() {
        assert_eq!(size_arg("806"), Ok(806));
        assert_eq!(size_arg("64KiB"), Ok(64 * 1024));
        assert_eq!(size_arg("1MB"), Ok(1024 * 1024));
        assert!(size_arg("65MiB").unwrap_err().contains("64 MiB"));
        assert!(size_arg("1GB").unwrap_err().contains("unknown unit"));
        assert!(size_arg("lots").unwrap_err().contains("not a size"));
        assert!(size_arg("99999999999999999999").is_err());
    }
}

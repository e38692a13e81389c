//! CPU cost of the simulator as a case grows (issue 11's baseline, on
//! `--engine turmoil`): one case of N clients connecting at once to the
//! reference fast server (the shape of `server.fifty-connections-at-once`),
//! for N = 50, 100, 200, 500 and 2,000; the ten-minute case
//! (`client.slow-poem-ten-minutes`); and the whole catalog, one job; the
//! last two also on simnet, the default engine (group `simnet/`; its
//! curve in N is `benches/simnet_scaling.rs`).
//!
//! Measured in process CPU time (`CLOCK_PROCESS_CPUTIME_ID`: every thread
//! of the bench, user and system), not wall time, so that a shared
//! machine does not inflate the figures and the issue's CPU targets are
//! read directly: 2,000 clients under 1 s, the ten-minute case at 5 ms or
//! less, the whole catalog at 50 ms or less.
//!
//! Each N is first run once outside criterion, through the engine, to
//! print its verdict, its simulated end and its CPU. An N whose single
//! run took, or is predicted to take, more than 15 s (the
//! `SIM_SCALING_LIMIT_S` environment variable changes this) is skipped
//! with a line saying so; the prediction extends the growth between the
//! two largest N measured (cost ~ N^k) and skips an N without running it
//! only when it says three times the limit. Large N are sampled flat (one
//! run per sample, ten samples), so N = 500 at about 11 s per run takes
//! about two minutes and the whole bench about three on an idle machine.
//! `SIM_SCALING_CLIENTS=200` (a comma-separated list) measures only those
//! N, for a profiler: `SIM_SCALING_CLIENTS=200 perf record -g
//! target/release/deps/sim_scaling-HASH --bench --profile-time 10
//! clients_at_once/200`.
//!
//! Run: `cargo bench -p poetry-harness --bench sim_scaling` (or with
//! `-- --quick` for one or two runs per figure).

mod cpu_time;
use cpu_time::{cpu_criterion, process_cpu, ProcessCpu};

use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use poetry_harness::backend::sim::{self, RunOptions, SimEngine};
use poetry_harness::backend::simnet;
use poetry_harness::backend::RunEnd;
use poetry_harness::case::Case;
use poetry_harness::catalog::{self, Catalog};
use poetry_harness::engine::{run_all, run_case, EngineOptions};
use poetry_harness::roles::Implementation;

/// The client counts measured, smallest first.
const CLIENTS: &[usize] = &[50, 100, 200, 500, 2000];

/// The baseline groups run on turmoil, the former default engine (the
/// issue's "before"); group `simnet/` on the default engine.
const TURMOIL: RunOptions = RunOptions::catalog().on_engine(SimEngine::Turmoil);

/// One run longer than this (seconds) is not benchmarked.
const DEFAULT_LIMIT_S: f64 = 15.0;

/// The `server.fifty-connections-at-once` case with `n` clients, from a
/// suite text through the catalog's own parser and checks (as `--suites`
/// would load it).
fn n_clients_case(n: usize) -> Case {
    let text = format!(
        r#"
[[case]]
id = "server.{n}-connections-at-once"
title = "{n} clients connecting at once all get the whole poem within P"
clauses = ["POEM-1", "POEM-2", "POEM-10", "NET-6"]
role = "server"
[[case.clients]]
count = {n}
[case.expect]
received = {{ c1 = "poem" }}
end = {{ c1 = "fin" }}
elapsed_max = "1150ms"
"#
    );
    let mut cases =
        catalog::parse_file("sim_scaling.toml", &text, &poetry_harness::spec::clauses())
            .expect("the scaling case parses");
    cases.remove(0)
}

/// The client counts to measure: `SIM_SCALING_CLIENTS`, or [`CLIENTS`].
fn clients() -> Vec<usize> {
    match std::env::var("SIM_SCALING_CLIENTS") {
        Ok(list) => list
            .split(',')
            .map(|n| n.trim().parse().expect("SIM_SCALING_CLIENTS: numbers"))
            .collect(),
        Err(_) => CLIENTS.to_vec(),
    }
}

fn limit_s() -> f64 {
    std::env::var("SIM_SCALING_LIMIT_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_LIMIT_S)
}

/// CPU seconds of one engine run of `case`, with what it ended as.
fn probe(case: &Case, imp: &Implementation) -> f64 {
    let opts = EngineOptions {
        jobs: 1,
        run: TURMOIL,
        ..EngineOptions::default()
    };
    let start = process_cpu();
    let result = run_case(case, imp, &opts);
    let cpu = (process_cpu() - start).as_secs_f64();
    let (end, tick) = match &result.outcome {
        Some(o) => (
            match &o.end {
                RunEnd::Finished(t) => format!("finished at {t:?}"),
                RunEnd::TimedOut(t) => format!("timed out at {t:?}"),
                other => format!("{other:?}"),
            },
            format!("{:?}", o.tick),
        ),
        None => ("not run".into(), "-".into()),
    };
    println!(
        "probe {}: {} ({}), simulated {end}, tick {tick}, {cpu:.3} s CPU",
        case.id,
        result.label(),
        result.verdict.reason,
    );
    cpu
}

fn scaling(c: &mut Criterion<ProcessCpu>) {
    let imp = Implementation::reference();
    let builtin = Catalog::builtin().expect("catalog loads");

    // The generated case has the shipped case's shape.
    let fifty = n_clients_case(50);
    let shipped = builtin
        .get("server.fifty-connections-at-once")
        .expect("case exists");
    let same = |c: &Case| format!("{:?}{:?}{:?}", c.clients, c.subject, c.expect);
    assert_eq!(
        same(&fifty),
        same(shipped),
        "same shape as the shipped case"
    );

    let limit = limit_s();
    let mut group = c.benchmark_group("sim_scaling/clients_at_once");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(500));
    let mut measured: Vec<(usize, f64)> = Vec::new();
    for n in clients() {
        if let [.., (n0, t0), (n1, t1)] = measured[..] {
            let k = ((t1 / t0).ln() / (n1 as f64 / n0 as f64).ln()).max(1.0);
            let predicted = t1 * (n as f64 / n1 as f64).powf(k);
            // The prediction only spares runs far over the limit: from
            // small N the exponent overshoots (N = 100 to 200 says N^3.9).
            if predicted > 3.0 * limit {
                println!(
                    "skipped N = {n}: one run predicted at {predicted:.0} s CPU \
                     (cost ~ N^{k:.2}, from N = {n0} and {n1}), over the {limit} s limit"
                );
                continue;
            }
        }
        let case = n_clients_case(n);
        let cpu = probe(&case, &imp);
        if cpu > limit {
            println!("skipped N = {n}: one run took {cpu:.1} s CPU, over the {limit} s limit");
            measured.push((n, cpu));
            continue;
        }
        measured.push((n, cpu));
        // At least 2 s in all; for a long run, a budget just under ten
        // runs, so that criterion's flat sampling (iterations per sample =
        // ceil(budget / (10 x one run))) takes one run per sample, ten in all.
        group.measurement_time(Duration::from_secs_f64((cpu * 9.0).max(2.0)));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &case, |b, case| {
            b.iter(|| sim::run(case, &imp, TURMOIL))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("sim_scaling");
    group.sample_size(10);
    let slow = builtin
        .get("client.slow-poem-ten-minutes")
        .expect("case exists");
    probe(slow, &imp);
    group.bench_function("ten-minute slow poem (client.slow-poem-ten-minutes)", |b| {
        b.iter(|| sim::run(slow, &imp, TURMOIL))
    });
    let cases: Vec<&Case> = builtin.cases.iter().collect();
    let one_job = EngineOptions {
        jobs: 1,
        run: TURMOIL,
        ..EngineOptions::default()
    };
    group.bench_function(
        format!("whole catalog ({} cases, 1 job)", cases.len()),
        |b| b.iter(|| run_all(&cases, &imp, &one_job, &|_| {})),
    );
    group.finish();

    // The same two figures on `--engine simnet`, event-driven: the issue's
    // targets are read here.
    let mut group = c.benchmark_group("simnet");
    group.sample_size(10);
    let on_simnet = RunOptions::catalog().on_engine(SimEngine::Simnet);
    group.bench_function("ten-minute slow poem (client.slow-poem-ten-minutes)", |b| {
        b.iter(|| simnet::run_case(slow, &imp, on_simnet))
    });
    let one_job_simnet = EngineOptions {
        run: on_simnet,
        ..one_job
    };
    group.bench_function(
        format!("whole catalog ({} cases, 1 job)", cases.len()),
        |b| b.iter(|| run_all(&cases, &imp, &one_job_simnet, &|_| {})),
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = cpu_criterion();
    targets = scaling
}
criterion_main!(benches);

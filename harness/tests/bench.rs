//! `poetry-harness bench` as a user runs it: a correct server is verified
//! and measured, every poem checked; a server that fails its conformance
//! cases is not measured unless forced, and then its broken poems are
//! errors, never throughput.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// Runs `bench` with short runs plus `args`: its exit code and JSON.
fn bench(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let dir = tempfile::tempdir().expect("a throwaway directory");
    bench_in(&dir, &[&["--connections", "4"], args].concat())
}

/// [`bench`] without a default load, writing into `dir`.
fn bench_in(dir: &tempfile::TempDir, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let json = dir.path().join("bench.json");
    // From the project's root, where manifests' relative paths point.
    let status = Command::new(BIN)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args([
            "bench",
            "--duration",
            "300ms",
            "--warmup",
            "0s",
            "--runs",
            "2",
        ])
        .arg("--json")
        .arg(&json)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run poetry-harness bench");
    let text = std::fs::read_to_string(&json).expect("the JSON report");
    (
        status.code(),
        serde_json::from_str(&text).expect("valid JSON"),
    )
}

fn mutant_server(name: &str) -> String {
    format!(
        "{BIN} serve slow {{poem}} --port {{port}} --num-bytes {{num_bytes}} --delay {{delay}} --mutant {name}"
    )
}

#[test]
fn the_reference_is_verified_then_measured_with_every_poem_whole() {
    let (code, json) = bench(&[]);
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["schema"], 1);
    let server = &json["servers"][0];
    assert_eq!(server["name"], "reference");
    assert_eq!(server["verified"]["failed"], serde_json::json!([]));
    assert!(
        server["verified"]["passed"].as_u64() > Some(10),
        "{server:#}"
    );
    let point = &server["points"][0];
    assert_eq!(point["load"]["mode"], "closed");
    assert_eq!(point["load"]["connections"], 4);
    assert_eq!(point["poem_bytes"], 806);
    assert_eq!(point["poems_per_s"]["runs"], 2);
    assert!(
        point["poems_per_s"]["mean"].as_f64() > Some(0.0),
        "{point:#}"
    );
    assert_eq!(point["errors"], serde_json::json!({}), "{point:#}");
    // The server's CPU per poem is read from /proc (10 ms ticks: it may
    // round to 0 over a short run, never below).
    assert!(
        point["server_cpu_us_per_poem"].as_f64() >= Some(0.0),
        "{point:#}"
    );
    let last = &point["latency_us"]["last_byte"];
    assert!(last["count"].as_u64() > Some(0));
    assert!(last["p50"].as_u64() <= last["p99"].as_u64());
    assert!(last["p99"].as_u64() <= last["max"].as_u64());
}

#[test]
fn a_server_failing_conformance_is_not_measured() {
    let cmd = mutant_server("server-aborts-instead-of-fin");
    let (code, json) = bench(&["--cmd", &cmd]);
    assert_eq!(code, Some(1), "{json:#}");
    let server = &json["servers"][0];
    assert!(
        server["verified"]["failed"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "{server:#}"
    );
    assert!(
        server["skipped"]
            .as_str()
            .is_some_and(|s| s.contains("--force")),
        "{server:#}"
    );
    assert_eq!(server["points"], serde_json::json!([]));
}

#[test]
fn forced_a_broken_server_shows_errors_not_poems() {
    // It resets every connection instead of closing it: no poem is whole.
    let cmd = mutant_server("server-aborts-instead-of-fin");
    let (code, json) = bench(&["--cmd", &cmd, "--force"]);
    assert_eq!(code, Some(0), "{json:#}");
    let server = &json["servers"][0];
    assert_eq!(server["verified"]["forced"], true);
    let point = &server["points"][0];
    assert_eq!(point["poems_per_s"]["mean"], 0.0, "{point:#}");
    assert!(point["errors"]["reset"].as_u64() > Some(0), "{point:#}");
}

#[test]
fn bad_knobs_are_usage_errors() {
    for args in [
        &["bench", "--connections", "0"][..],
        &["bench", "--rate=-5"],
        &["bench", "--runs", "0"],
        &["bench", "--poem-size", "1GB"],
        &["bench", "--duration", "0s"],
    ] {
        let out = Command::new(BIN).args(args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let flag = args[1].split('=').next().unwrap_or_default();
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}

#[test]
fn a_sweep_draws_throughput_and_latency_plots() {
    let dir = tempfile::tempdir().expect("a throwaway directory");
    let plots = dir.path().join("plots");
    let plots_arg = plots.display().to_string();
    let (code, json) = bench_in(&dir, &["--connections", "1,4", "--plots", &plots_arg]);
    assert_eq!(code, Some(0), "{json:#}");
    let points = json["servers"][0]["points"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(points.len(), 2, "{json:#}");
    for name in ["throughput-806B.svg", "latency-806B.svg"] {
        let svg = std::fs::read_to_string(plots.join(name)).expect(name);
        assert!(
            svg.starts_with("<svg") && svg.contains("reference"),
            "{name}"
        );
    }
}

/// Each client's download bars, `(start, end)` in ms, in server order.
fn bars(client: &serde_json::Value) -> Vec<(f64, f64)> {
    let run = &client["runs"][0];
    run["bars"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["start_ms"].as_f64().unwrap_or(-1.0),
                b["end_ms"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect()
}

#[test]
fn client_timelines_show_the_strategy() {
    // The blocking client fails the concurrency case (so --force), and
    // downloads one poem after another; the threaded one overlaps them.
    let strategies = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/strategies");
    let blocking = format!("{strategies}/blocking.toml");
    let threads = format!("{strategies}/threads.toml");
    let dir = tempfile::tempdir().expect("a throwaway directory");
    let (code, json) = bench_in(
        &dir,
        &[
            "--role",
            "client",
            "--force",
            "--runs",
            "1",
            "--num-bytes",
            "200",
            "--delay",
            "20ms",
            "--manifest",
            &blocking,
            "--manifest",
            &threads,
        ],
    );
    assert_eq!(code, Some(0), "{json:#}");
    let scenario = &json["scenario"];
    assert_eq!(scenario["poem_bytes"], serde_json::json!([806, 674, 279]));
    // 806 bytes in 5 writes, 20 ms apart: the slowest alone takes 80 ms;
    // the sum is 80 + 60 + 20.
    assert!((scenario["ideal_s"].as_f64().unwrap_or(0.0) - 0.08).abs() < 1e-9);
    assert!((scenario["serial_s"].as_f64().unwrap_or(0.0) - 0.16).abs() < 1e-9);
    let (blocking, threads) = (&json["clients"][0], &json["clients"][1]);
    assert_eq!(blocking["verified"]["forced"], true, "{blocking:#}");
    assert_eq!(
        threads["verified"]["failed"],
        serde_json::json!([]),
        "{threads:#}"
    );
    for c in [blocking, threads] {
        assert_eq!(c["failed_runs"], 0, "{c:#}");
        assert_eq!(bars(c).len(), 3, "{c:#}");
    }
    let b = bars(blocking);
    assert!(
        b.windows(2).all(|w| w[1].0 >= w[0].1),
        "blocking downloads overlap: {b:?}"
    );
    let t = bars(threads);
    assert!(
        t.iter().all(|bar| bar.0 < t[0].1),
        "threaded downloads do not overlap: {t:?}"
    );
}

/// Poems fetched at the first load point of server `i`.
fn poems_fetched(json: &serde_json::Value, i: usize) -> f64 {
    let p = &json["servers"][i]["points"][0];
    p["poems_per_s"]["mean"].as_f64().unwrap_or(-1.0)
        * p["load"]["duration_s"].as_f64().unwrap_or(0.0)
}

#[test]
fn one_slow_reader_holds_up_a_blocking_server_and_shows_in_its_numbers() {
    // A slow reader takes 1 KiB every 100 ms of a 4 MiB poem: a server
    // that serves one client at a time waits on it (for the whole window),
    // a threaded one does not.
    let strategies = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/strategies");
    let blocking = format!("{strategies}/blocking.toml");
    let threads = format!("{strategies}/threads.toml");
    let dir = tempfile::tempdir().expect("a throwaway directory");
    let (code, json) = bench_in(
        &dir,
        &[
            "--force",
            "--runs",
            "1",
            "--duration",
            "1s",
            "--timeout",
            "3s",
            "--connections",
            "2",
            "--poem-size",
            "4MiB",
            "--slow-readers",
            "1",
            "--manifest",
            &blocking,
            "--manifest",
            &threads,
        ],
    );
    assert_eq!(code, Some(0), "{json:#}");
    // The slow reader connects before the fetchers start, so the blocking
    // server meets it first and then serves nothing for the whole window
    // (2 allowed: one each for fetchers that raced it all the same); the
    // threaded one keeps serving. Counts, not speeds.
    let (held, free) = (poems_fetched(&json, 0), poems_fetched(&json, 1));
    assert!(
        held <= 2.0,
        "the blocking server fetched {held} poems: {json:#}"
    );
    assert!(
        free >= 3.0,
        "the threaded server fetched {free} poems: {json:#}"
    );
}

#[test]
fn an_interrupted_bench_writes_what_it_has_and_exits_130() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("a throwaway directory");
    let json = dir.path().join("bench.json");
    let mut child = Command::new(BIN)
        .args([
            "bench",
            "--connections",
            "1,2",
            "--duration",
            "2s",
            "--runs",
            "5",
        ])
        .args(["--warmup", "0s", "--json"])
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn poetry-harness bench");
    // Its table (stdout) is small and comes at the end: read after exit.
    let mut stdout = child.stdout.take().expect("stdout");
    // Interrupt once the load has started (its progress line on stderr).
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let started = lines.by_ref().map_while(Result::ok).any(|l| {
        let found = l.contains("closed loop, 1 connections");
        seen.push(l);
        found
    });
    if !started {
        // What the bench said instead (a conformance case that failed
        // twice on a loaded machine, say) is the diagnosis.
        let _ = child.kill();
        let _ = child.wait();
        let mut table = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut table);
        panic!("the load never started:\n{}\n{table}", seen.join("\n"));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("signal");
    // Drain stderr so the bench never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("bench still running 60 s after SIGINT");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let text = std::fs::read_to_string(&json).expect("the JSON report");
    let report: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(report["interrupted"], "SIGINT");
    let server = &report["servers"][0];
    assert!(
        server["verified"]["passed"].as_u64() > Some(10),
        "{server:#}"
    );
    // Only whole runs count: fewer than asked for, never a partial one.
    for p in server["points"].as_array().into_iter().flatten() {
        assert!(p["poems_per_s"]["runs"].as_u64() < Some(5), "{p:#}");
    }
}

/// Runs `bench --sim` plus `args` in a throwaway directory: its exit
/// code, stdout, stderr, and its JSON report if it wrote one.
fn sim_bench(args: &[&str]) -> (Option<i32>, String, String, Option<serde_json::Value>) {
    let dir = tempfile::tempdir().expect("a throwaway directory");
    let json = dir.path().join("bench.json");
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .args(["bench", "--sim", "--json"])
        .arg(&json)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run poetry-harness bench --sim");
    let report = std::fs::read_to_string(&json)
        .ok()
        .map(|t| serde_json::from_str(&t).expect("valid JSON"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        report,
    )
}

#[test]
fn bench_sim_prints_the_serial_servers_predicted_figures_next_to_the_measured_ones() {
    let (code, out, err, json) = sim_bench(&["--connections", "1,4", "--duration", "1s"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("SIMULATED"), "{out}");
    assert!(out.contains("simulated time"), "{out}");
    for column in ["poems/s", "predicted", "ratio", "last byte mean"] {
        assert!(out.contains(column), "{column}: {out}");
    }
    // The default comparison: the concurrent reference and the serial
    // mutant, each exactly as its model predicts.
    let serial: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("server-one-at-a-time"))
        .collect();
    assert_eq!(serial.len(), 2, "{out}");
    for line in &serial {
        assert!(line.contains("serial"), "{line}");
        assert_eq!(line.matches("1.000").count(), 2, "{line}");
    }
    assert!(out.contains("S = 2L + W = 2 x 10 + 0 = 20 ms"), "{out}");
    assert!(!out.contains("gen CPU"), "{out}");
    let json = json.expect("the JSON report");
    assert_eq!(json["sim"]["simulated"], true);
    assert_eq!(json["sim"]["setup"]["latency_ms"], 10.0);
    let point = &json["servers"][1]["points"][1];
    assert_eq!(json["servers"][1]["name"], "server-one-at-a-time");
    assert_eq!(point["load"]["connections"], 4);
    // 1 s over S = 20 ms: 50 poems, whatever N.
    assert_eq!(point["sim"]["poems"], 50, "{point:#}");
    assert_eq!(point["sim"]["predicted"]["poems"], 50, "{point:#}");
    assert_eq!(point["sim"]["predicted"]["model"], "serial");
}

#[test]
fn bench_sim_names_an_unknown_implementation_and_lists_the_valid_ones() {
    for (name, why) in [
        ("nope", "is not an implementation of the server role"),
        (
            "client-decodes-per-chunk",
            "is a client mutant, not a server",
        ),
    ] {
        let (code, out, err, _) = sim_bench(&["--sim-impl", name]);
        assert_eq!(code, Some(2), "{out}\n{err}");
        assert!(err.contains(&format!("--sim-impl '{name}' {why}")), "{err}");
        assert!(
            err.contains("valid: reference, server-aborts-instead-of-fin"),
            "{err}"
        );
        assert!(err.contains("server-one-at-a-time"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn bench_sim_refuses_what_it_cannot_simulate_exactly() {
    for (args, says) in [
        (
            &["--sim-latency", "1500us"][..],
            "whole number of milliseconds",
        ),
        (&["--sim-latency", "0s"], "at least 1ms"),
        (&["--sim-delay", "0.5ms"], "--sim-delay"),
        (&["--role", "client"], "servers only"),
        (
            &["--connections", "10000", "--duration", "1h"],
            "too many to simulate",
        ),
    ] {
        let (code, out, err, _) = sim_bench(args);
        assert_eq!(code, Some(2), "{args:?}: {out}\n{err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // The --sim flags need --sim.
    let out = Command::new(BIN)
        .args(["bench", "--sim-impl", "reference"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bench_sim_prints_the_same_report_run_after_run() {
    // Simulated time: no noise, so two runs agree byte for byte, open
    // loop included.
    let args = ["--connections", "1,4", "--rate", "100", "--duration", "1s"];
    let (code, out, err, json) = sim_bench(&args);
    assert_eq!(code, Some(0), "{err}");
    let (_, again, _, json_again) = sim_bench(&args);
    assert_eq!(out, again);
    assert_eq!(json, json_again);
    assert!(out.contains("open loop, 100 poems/s"), "{out}");
}

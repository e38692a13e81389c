//! `poetry-harness bench` as a user runs it: a correct server is verified
//! and measured, every poem checked; a server that fails its conformance
//! cases is not measured unless forced, and then its broken poems are
//! errors, never throughput.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// Runs `bench` with short runs plus `args`: its exit code and JSON.
fn bench(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let dir = tempfile::tempdir().expect("a throwaway directory");
    let json = dir.path().join("bench.json");
    let status = Command::new(BIN)
        .args([
            "bench",
            "--duration",
            "300ms",
            "--warmup",
            "0s",
            "--runs",
            "2",
        ])
        .args(["--connections", "4", "--json"])
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

//! The harness's own shortages are never the program's fault: a case
//! whose peers cannot connect, accept or bind for want of the harness's
//! open files is an ERROR naming the cause (exit 2), and the same case
//! with room to run PASSes against the same correct program.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// Runs `server.fifty-connections-at-once` against the reference server
/// (as a program), the harness's open files capped at `nofile` if given.
/// Returns the exit code and the case's JSON.
fn fifty_clients(nofile: Option<u64>) -> (Option<i32>, serde_json::Value) {
    let server = format!(
        "{BIN} serve slow {{poem}} --port {{port}} --num-bytes {{num_bytes}} --delay {{delay}}"
    );
    run_case(
        "server.fifty-connections-at-once",
        "server",
        &server,
        nofile,
    )
}

/// Runs one case against `command` as `role`, the harness's open files
/// capped at `nofile` if given: the exit code and the case's JSON.
fn run_case(
    id: &str,
    role: &str,
    command: &str,
    nofile: Option<u64>,
) -> (Option<i32>, serde_json::Value) {
    let dir = tempfile::tempdir().expect("a throwaway directory");
    let json = dir.path().join("r.json");
    let mut cmd = Command::new(BIN);
    cmd.args(["run", id, "--role", role])
        .args(["--cmd", command, "--json"])
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(n) = nofile {
        // SAFETY: only setrlimit(2) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, n, n)
                    .map_err(std::io::Error::from)
            });
        }
    }
    // Bounded: the case's own limit ends it (its programs are the
    // harness's to kill).
    let status = cmd.status().expect("run poetry-harness");
    let text = std::fs::read_to_string(&json).expect("the JSON report");
    let report: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    (status.code(), report["cases"][0].clone())
}

#[test]
fn a_harness_out_of_open_files_is_a_harness_error_naming_the_cause() {
    // 50 client peers need 50 sockets, beyond what 40 descriptors leave.
    let (code, case) = fifty_clients(Some(40));
    assert_eq!(case["verdict"], "ERROR", "{case:#}");
    let reason = case["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("harness error, not a verdict on the program")
            && reason.contains("Too many open files"),
        "{reason}"
    );
    assert_eq!(code, Some(2), "{case:#}");
}

#[test]
fn the_same_case_with_room_to_run_passes() {
    let (code, case) = fifty_clients(None);
    assert_eq!(case["verdict"], "PASS", "{case:#}");
    assert_eq!(code, Some(0));
}

#[test]
fn peers_the_harness_cannot_set_up_are_a_harness_error() {
    // Three server peers and a program to start do not fit in 16
    // descriptors (the runtime holds some): binding or spawning fails.
    let client = format!("{BIN} get --quiet {{addrs}}");
    let (code, case) = run_case(
        "client.one-refused-among-three",
        "client",
        &client,
        Some(16),
    );
    assert_eq!(case["verdict"], "ERROR", "{case:#}");
    let reason = case["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("Too many open files"), "{reason}");
    assert_eq!(code, Some(2));
}

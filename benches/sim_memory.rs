//! The simulator's peak memory against the size of the poem in flight
//! (issue 11: "peak memory at most about one copy of the largest poem in
//! flight"; on turmoil a 64 MiB poem took about 3x the poem).
//!
//! For each role (a client subject downloading one poem from a scripted
//! server, a server subject sending one poem to a scripted client) and
//! each engine, one case per poem size runs through the harness binary,
//! and its peak RSS is read from the JSON report (`run.peak_rss_kib`, the
//! harness process's `VmHWM`: in the simulator the subject is in that
//! process too). The figure that matters is the slope: bytes of peak RSS
//! per byte of poem between the smallest and the largest size, so that
//! the harness's fixed costs (the binary, the runtime, the socket buffers)
//! cancel out. Prints a table and exits 1 if a slope on the default engine
//! is over its budget:
//!
//! - a client subject: 2 copies. The scripted server sends from the one
//!   copy of the poem the case holds (its chunks are slices of it, and the
//!   expectation is the same bytes), and the client subject, our reference
//!   client running in this process, keeps the poem it returns: that copy
//!   is the subject's, which a live program would hold in its own process.
//! - a server subject: 1 copy. The subject sends the case's poem, which is
//!   also the expectation; the scripted client keeps at most 16 MiB of what
//!   it receives (`KEEP_CAP`) and a digest of the rest.
//!
//! Run: `cargo bench -p poetry-harness --bench sim_memory` (about ten
//! seconds; cargo builds the harness binary, optimised, first).
//! `POETRY_HARNESS_BIN=path` measures another binary.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Poem sizes, MiB: the slope is taken between the first and the last.
const SIZES_MIB: &[u64] = &[16, 64];

/// Headroom over a budget in copies: allocator rounding and pages touched
/// by the socket buffers as the poem passes.
const SLACK: f64 = 0.15;

struct Role {
    role: &'static str,
    /// Copies of the poem allowed per poem byte on the default engine.
    budget: f64,
    /// The case, with `SIZE` for the poem's bytes.
    suite: &'static str,
}

const ROLES: &[Role] = &[
    Role {
        role: "client",
        budget: 2.0,
        suite: r#"[[case]]
id = "client.large-poem-memory"
title = "a large poem arrives exactly"
clauses = ["CLIENT-3"]
role = "client"
limit = "600s"
[[case.servers]]
poem = { size = SIZE }
chunks = [65536]
[case.expect]
results = ["poem"]
"#,
    },
    Role {
        role: "server",
        budget: 1.0,
        suite: r#"[[case]]
id = "server.large-poem-memory"
title = "a large poem is written whole, then FIN"
clauses = ["POEM-1"]
role = "server"
limit = "600s"
subject = { poem = { size = SIZE } }
[[case.clients]]
[case.expect]
received = { c1 = "poem" }
end = { c1 = "fin" }
"#,
    },
];

const ENGINES: &[&str] = &["simnet", "turmoil"];

fn harness_binary() -> PathBuf {
    std::env::var_os("POETRY_HARNESS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_poetry-harness")))
}

/// The case's verdict and the harness's peak RSS in KiB.
fn measure(bin: &PathBuf, role: &Role, engine: &str, mib: u64) -> Result<(String, u64), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("a throwaway directory: {e}"))?;
    let suite = dir.path().join("case.toml");
    std::fs::write(
        &suite,
        role.suite.replace("SIZE", &(mib * 1024 * 1024).to_string()),
    )
    .map_err(|e| format!("writing {}: {e}", suite.display()))?;
    let status = Command::new(bin)
        .args(["run", "--jobs", "1", "--engine", engine, "--suites"])
        .arg(&suite)
        .args(["--json", "r.json"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("running {}: {e}", bin.display()))?;
    let text = std::fs::read_to_string(dir.path().join("r.json"))
        .map_err(|e| format!("no JSON report (exit {status}): {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("the JSON report: {e}"))?;
    let verdict = json["cases"][0]["verdict"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let peak = json["run"]["peak_rss_kib"]
        .as_u64()
        .ok_or("the report has no run.peak_rss_kib")?;
    Ok((verdict, peak))
}

fn main() {
    let bin = harness_binary();
    println!("harness: {}", bin.display());
    println!();
    let sizes: Vec<String> = SIZES_MIB.iter().map(|m| format!("{m} MiB poem")).collect();
    println!(
        "| role | engine | {} | peak RSS per poem byte (slope) | budget |",
        sizes.join(" | ")
    );
    println!("|---|---|{}---|---|", "---|".repeat(SIZES_MIB.len()));
    let mut over = Vec::new();
    for role in ROLES {
        for &engine in ENGINES {
            let mut cells = Vec::new();
            let mut peaks = Vec::new();
            for &mib in SIZES_MIB {
                match measure(&bin, role, engine, mib) {
                    Ok((verdict, kib)) => {
                        cells.push(format!("{:.1} MiB ({verdict})", kib as f64 / 1024.0));
                        if verdict != "PASS" {
                            over.push(format!("{} on {engine}, {mib} MiB: {verdict}", role.role));
                        }
                        peaks.push((mib, kib));
                    }
                    Err(e) => {
                        cells.push("(none)".to_string());
                        over.push(format!("{} on {engine}, {mib} MiB: {e}", role.role));
                    }
                }
            }
            let slope = match (peaks.first(), peaks.last()) {
                (Some(&(m0, k0)), Some(&(m1, k1))) if m1 > m0 => {
                    Some((k1 as f64 - k0 as f64) / ((m1 - m0) as f64 * 1024.0))
                }
                _ => None,
            };
            let default = engine == ENGINES[0];
            let budget = if default {
                format!("<= {}", role.budget)
            } else {
                "-".to_string()
            };
            println!(
                "| {} | {engine} | {} | {} | {budget} |",
                role.role,
                cells.join(" | "),
                slope.map_or("-".to_string(), |s| format!("{s:.2}"))
            );
            if let (true, Some(s)) = (default, slope) {
                if s > role.budget + SLACK {
                    over.push(format!(
                        "{} on {engine}: {s:.2} copies per poem byte, budget {}",
                        role.role, role.budget
                    ));
                }
            }
        }
    }
    if !over.is_empty() {
        eprintln!();
        for o in &over {
            eprintln!("over budget or not measured: {o}");
        }
        std::process::exit(1);
    }
}

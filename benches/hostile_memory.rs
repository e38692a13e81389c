//! The harness's own peak memory while hostile programs flood it
//! (`fixtures/hostile/`): each kind runs as the subject of one case, and
//! the harness's peak RSS is read from its JSON report (`run.peak_rss_kib`,
//! `VmHWM`: the harness only, not the program). Prints a table and exits 1
//! if any kind takes the harness above 64 MiB (README, "Running untrusted
//! programs": a program printing gigabytes costs a fixed amount).
//!
//! Run: `cargo bench -p poetry-harness --bench hostile_memory`. Cargo
//! builds the harness binary with the bench profile (release, optimised)
//! before the bench and passes its path in `CARGO_BIN_EXE_poetry-harness`;
//! `POETRY_HARNESS_BIN=path` measures another binary instead (a
//! `cargo build --release` one, for example). Needs `sh`, `head`, `tr`,
//! `yes` and `python3`. About a minute: the endless server runs until the
//! case's time limit (6 s at the default time scale, plus 5 s of grace),
//! twice. A filter argument runs only the kinds whose name holds it
//! (`cargo bench --bench hostile_memory -- endless`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The most the harness may take, in KiB.
const CEILING_KIB: u64 = 64 * 1024;

/// A harness still running after this has hung (and is killed).
const LIMIT: Duration = Duration::from_secs(120);

struct Kind {
    name: &'static str,
    /// The cases run: an ID, or a prefix selecting several.
    case: &'static str,
    role: &'static str,
    /// `DIR/` stands for `fixtures/hostile/`.
    command: &'static str,
}

const KINDS: &[Kind] = &[
    Kind {
        name: "stdout flood, no newline (256 MiB)",
        case: "client.fast-poem",
        role: "client",
        command: "sh DIR/flood-no-newline.sh {addrs}",
    },
    Kind {
        name: "stdout flood, short lines (64 MiB)",
        case: "client.fast-poem",
        role: "client",
        command: "sh DIR/flood-lines.sh {addrs}",
    },
    Kind {
        name: "stderr flood, no newline (256 MiB)",
        case: "client.fast-poem",
        role: "client",
        command: "sh DIR/flood-stderr.sh {addrs}",
    },
    Kind {
        name: "endless server (to the time limit)",
        case: "server.one-client-fast",
        role: "server",
        command: "python3 DIR/endless-server.py {port}",
    },
    Kind {
        name: "endless server, 50 clients at once",
        case: "server.fifty-connections-at-once",
        role: "server",
        command: "python3 DIR/endless-server.py {port}",
    },
    Kind {
        name: "stdout flood, every client case (20)",
        case: "client.",
        role: "client",
        command: "sh DIR/flood-no-newline.sh {addrs}",
    },
    Kind {
        name: "junk client (64 MiB sent)",
        case: "client.fast-poem",
        role: "client",
        command: "python3 DIR/junk-client.py {addrs}",
    },
    Kind {
        name: "200 children",
        case: "client.fast-poem",
        role: "client",
        command: "sh DIR/many-children.sh {addrs}",
    },
    Kind {
        name: "every fd it can",
        case: "client.fast-poem",
        role: "client",
        command: "python3 DIR/many-fds.py {addrs}",
    },
    Kind {
        name: "baseline: a correct client",
        case: "client.fast-poem",
        role: "client",
        command: "python3 DIR/clean-client.py {addrs}",
    },
];

struct Measured {
    verdict: String,
    exit: Option<i32>,
    peak_kib: Option<u64>,
    wall: Duration,
}

fn harness_binary() -> PathBuf {
    std::env::var_os("POETRY_HARNESS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_poetry-harness")))
}

fn measure(bin: &Path, fixtures: &Path, kind: &Kind) -> Measured {
    let dir = tempfile::tempdir().expect("a throwaway directory");
    let command = kind
        .command
        .replace("DIR/", &format!("{}/", fixtures.display()));
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["run", kind.case, "--role", kind.role, "--cmd", &command])
        .args(["--json", "r.json"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn poetry-harness");
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed();
    let json: Option<serde_json::Value> = std::fs::read_to_string(dir.path().join("r.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    Measured {
        verdict: json.as_ref().map_or_else(|| "(no report)".into(), verdicts),
        exit: status.and_then(|s| s.code()),
        peak_kib: json
            .as_ref()
            .and_then(|j| j["run"]["peak_rss_kib"].as_u64()),
        wall,
    }
}

/// The verdict of a one-case run; the counts of a longer one
/// (`18 FAIL, 2 UNSUPPORTED`).
fn verdicts(json: &serde_json::Value) -> String {
    let cases = json["cases"].as_array().map_or(0, Vec::len);
    if cases == 1 {
        return json["cases"][0]["verdict"]
            .as_str()
            .unwrap_or("?")
            .to_string();
    }
    json["summary"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, n)| n.as_u64().is_some_and(|n| n > 0))
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn main() {
    // `cargo bench` passes `--bench` (and any filter): a filter picks kinds.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let bin = harness_binary();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/hostile")
        .canonicalize()
        .expect("fixtures/hostile");
    println!("harness: {}", bin.display());
    println!();
    println!("| kind | verdict | exit | harness peak RSS (MiB) | wall (s) |");
    println!("|---|---|---|---|---|");
    let mut over = Vec::new();
    let mut peaks = Vec::new();
    for kind in KINDS
        .iter()
        .filter(|k| filters.is_empty() || filters.iter().any(|f| k.name.contains(f.as_str())))
    {
        let m = measure(&bin, &fixtures, kind);
        let peak = m.peak_kib.map_or("(none)".to_string(), |k| {
            format!("{:.1}", k as f64 / 1024.0)
        });
        println!(
            "| {} | {} | {} | {} | {:.1} |",
            kind.name,
            m.verdict,
            m.exit.map_or("killed".to_string(), |c| c.to_string()),
            peak,
            m.wall.as_secs_f64()
        );
        match m.peak_kib {
            Some(k) if k <= CEILING_KIB => peaks.push(k),
            _ => over.push(kind.name),
        }
    }
    if let Some(max) = peaks.iter().max() {
        println!();
        println!(
            "max harness peak RSS: {:.1} MiB (ceiling {} MiB)",
            *max as f64 / 1024.0,
            CEILING_KIB / 1024
        );
    }
    if !over.is_empty() {
        eprintln!("above {} MiB or not measured: {over:?}", CEILING_KIB / 1024);
        std::process::exit(1);
    }
}

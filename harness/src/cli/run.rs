//! `poetry-harness run` and `replay`: the catalog against an implementation.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::Exit;
use crate::backend::sim::RunOptions;
use crate::catalog::Catalog;
use crate::engine::{self, EngineOptions};
use crate::report;
use crate::roles::Implementation;
use crate::verdict::Profile;

/// Runs conformance cases in the simulator and prints a verdict per case.
///
/// With no arguments: every case against the built-in reference
/// implementations. Exit status: 0 if no case failed, 1 if one did,
/// 2 for bad usage or a harness error.
///
/// Examples:
///   poetry-harness run                         # the whole catalog
///   poetry-harness run client.                 # the cases whose ID starts with 'client.'
///   poetry-harness run client.reset-mid-poem --transcripts
///   poetry-harness run --explore 20            # 20 random seeds per case
///   poetry-harness run --junit report.xml --json report.json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// Case IDs or ID prefixes to run (default: all).
    cases: Vec<String>,
    /// Profile to judge against: strict or tutorial.
    #[arg(long, default_value = "strict")]
    profile: Profile,
    /// Seed the run and re-chunk every server peer's writes from it
    /// (what --explore prints for a failing seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Also run each case with this many random seeds; print failing seeds.
    #[arg(long, default_value_t = 0)]
    explore: u64,
    /// Read the catalog from this folder of .toml files instead of the built-in one.
    #[arg(long, value_name = "DIR")]
    suites: Option<PathBuf>,
    /// Worker threads (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print every transcript, not only those of failures.
    #[arg(long)]
    transcripts: bool,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a JSON report here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Loads the catalog the arguments name.
pub fn load_catalog(suites: Option<&PathBuf>) -> anyhow::Result<Catalog> {
    Ok(match suites {
        Some(dir) => Catalog::load_dir(dir)?,
        None => Catalog::builtin()?,
    })
}

pub fn run(args: RunArgs) -> anyhow::Result<Exit> {
    let catalog = load_catalog(args.suites.as_ref())?;
    let cases = catalog.select(&args.cases);
    if cases.is_empty() {
        anyhow::bail!("no case matches {}", args.cases.join(" "));
    }
    let imp = Implementation::reference();
    let mut opts = EngineOptions {
        profile: args.profile,
        ..EngineOptions::default()
    };
    if let Some(jobs) = args.jobs {
        opts.jobs = jobs.max(1);
    }
    if let Some(seed) = args.seed {
        opts.run = RunOptions {
            seed,
            perturb: true,
        };
    }
    let total = cases.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let show_progress = report::use_colour() && total > 1;
    let progress = |r: &engine::CaseResult| {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if show_progress {
            eprint!("\r[{n}/{total}] {:<50}", r.case.id);
            if n == total {
                eprint!("\r{:<60}\r", "");
            }
        }
    };
    let results = engine::run_all(&cases, &imp, &opts, &progress);
    // Reports are written before anything can fail, so nothing is lost.
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&results, &imp.name, args.profile))
            .with_context(|| format!("cannot write JUnit report '{}'", path.display()))?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, report::json(&results, &imp.name, args.profile))
            .with_context(|| format!("cannot write JSON report '{}'", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    out.write_all(
        report::table(
            &results,
            &imp.name,
            args.profile,
            args.transcripts,
            report::use_colour(),
        )
        .as_bytes(),
    )?;
    let mut failed = results.iter().any(|r| r.verdict.kind.fails(args.profile));
    if args.explore > 0 {
        writeln!(out, "\nexploring {} random seed(s) per case", args.explore)?;
        let base = args.seed.unwrap_or(0);
        let mut any = false;
        for case in &cases {
            for (seed, kind) in engine::explore(case, &imp, &opts, base, args.explore) {
                any = true;
                writeln!(
                    out,
                    "  {} {kind} with seed {seed}: poetry-harness replay {} --seed {seed}",
                    case.id, case.id
                )?;
            }
        }
        if !any {
            writeln!(out, "  every seed passed")?;
        }
        failed |= any;
    }
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}

/// Replays one case with a seed and prints its transcript.
///
/// Example: poetry-harness replay client.utf8-split --seed 7
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The case ID.
    case: String,
    /// The seed to replay (as printed by --explore).
    #[arg(long)]
    seed: u64,
    /// Profile to judge against.
    #[arg(long, default_value = "strict")]
    profile: Profile,
    /// Read the catalog from this folder instead of the built-in one.
    #[arg(long, value_name = "DIR")]
    suites: Option<PathBuf>,
}

pub fn replay(args: ReplayArgs) -> anyhow::Result<Exit> {
    let catalog = load_catalog(args.suites.as_ref())?;
    if catalog.get(&args.case).is_none() {
        anyhow::bail!("no case '{}' (try: poetry-harness list)", args.case);
    }
    run(RunArgs {
        cases: vec![args.case],
        profile: args.profile,
        seed: Some(args.seed),
        explore: 0,
        suites: args.suites,
        jobs: Some(1),
        transcripts: true,
        junit: None,
        json: None,
    })
}

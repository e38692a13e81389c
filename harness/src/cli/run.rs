//! `poetry-harness run` and `replay`: the catalog against an implementation.

use std::io::{IsTerminal, Write};
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

/// Run conformance cases and print a verdict per case
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
///
/// Any program, in any language, on real loopback sockets (live backend):
///   poetry-harness run --role client --cmd 'python3 get_poetry.py {addrs}'
///   poetry-harness run --manifest impl.toml
/// Placeholders: {port} {addr} {addrs} {poem} {upstream} {xform} {transform}
/// {timeout} {num_bytes} {delay}. The program sees the case ID in POETRY_CASE;
/// exit status 127 declares a case unsupported, if a probe shows the program
/// follows that convention.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// Case IDs or ID prefixes to run (default: all).
    cases: Vec<String>,
    /// Profile to judge against: strict or tutorial (default: the
    /// manifest's, else strict).
    #[arg(long)]
    profile: Option<Profile>,
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
    /// Live backend: the role the program given with --cmd plays.
    #[arg(long, requires = "cmd")]
    role: Option<crate::case::Role>,
    /// Live backend: the program's command template.
    #[arg(long, requires = "role", conflicts_with = "manifest")]
    cmd: Option<String>,
    /// Live backend: how a client's stdout holds the poems (exact or contains).
    #[arg(long, default_value = "exact")]
    contract: crate::backend::live::contract::Contract,
    /// Live backend: features the program lacks (e.g. timeouts); their cases are UNSUPPORTED.
    #[arg(long, value_delimiter = ',')]
    lacks: Vec<String>,
    /// Live backend: the roles and commands of an implementation, in a TOML
    /// manifest. Give it several times to compare implementations (see --matrix).
    #[arg(long, value_name = "FILE")]
    manifest: Vec<PathBuf>,
    /// With several manifests: write the implementations-by-cases matrix
    /// here (HTML if the name ends in .html, else Markdown).
    #[arg(long, value_name = "FILE")]
    matrix: Option<PathBuf>,
    /// Live backend: multiply every delay and timeout of the cases by this.
    #[arg(long, default_value_t = crate::backend::live::DEFAULT_TIME_SCALE)]
    time_scale: f64,
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
    let mut targets = live_targets(&args)?;
    if targets.len() > 1 {
        return run_matrix(&args, &cases, &targets);
    }
    let live = targets.pop();
    let profile = args
        .profile
        .or(live.as_ref().and_then(|t| t.profile))
        .unwrap_or_default();
    let imp = Implementation::reference();
    let mut opts = EngineOptions {
        profile,
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
    // A progress bar on a terminal (stderr), nothing when piped or in CI.
    let bar = if std::io::stderr().is_terminal() && total > 1 {
        indicatif::ProgressBar::new(total as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .expect("a valid progress template"),
    );
    let progress = |r: &engine::CaseResult| {
        bar.set_message(r.case.id.clone());
        bar.inc(1);
    };
    let (results, name) = match &live {
        Some(target) => {
            crate::backend::live::process::install_interrupt_handler();
            (
                engine::run_all_live(&cases, target, &opts, &progress),
                target.name.clone(),
            )
        }
        None => (
            engine::run_all(&cases, &imp, &opts, &progress),
            imp.name.clone(),
        ),
    };
    bar.finish_and_clear();
    // Reports are written before anything can fail, so nothing is lost.
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&results, &name, profile))
            .with_context(|| format!("cannot write JUnit report '{}'", path.display()))?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, report::json(&results, &name, profile))
            .with_context(|| format!("cannot write JSON report '{}'", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    out.write_all(
        report::table(
            &results,
            &name,
            profile,
            args.transcripts,
            report::use_colour(),
        )
        .as_bytes(),
    )?;
    let mut failed = results.iter().any(|r| r.verdict.kind.fails(profile));
    if args.explore > 0 && live.is_none() {
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

/// Replay one case with a seed and print its transcript
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
        profile: Some(args.profile),
        seed: Some(args.seed),
        explore: 0,
        suites: args.suites,
        jobs: Some(1),
        transcripts: true,
        junit: None,
        json: None,
        role: None,
        cmd: None,
        contract: Default::default(),
        lacks: Vec::new(),
        manifest: Vec::new(),
        matrix: None,
        time_scale: crate::backend::live::DEFAULT_TIME_SCALE,
    })
}

/// Runs every manifest's programs and prints (and writes) the matrix of
/// implementations by cases.
fn run_matrix(
    args: &RunArgs,
    cases: &[&crate::case::Case],
    targets: &[engine::LiveTarget],
) -> anyhow::Result<Exit> {
    if args.junit.is_some() || args.json.is_some() {
        anyhow::bail!(
            "--junit and --json take one implementation; with several manifests use --matrix"
        );
    }
    crate::backend::live::process::install_interrupt_handler();
    let mut columns = Vec::new();
    let mut failed = false;
    for target in targets {
        let profile = args.profile.or(target.profile).unwrap_or_default();
        let mut opts = EngineOptions {
            profile,
            ..EngineOptions::default()
        };
        if let Some(jobs) = args.jobs {
            opts.jobs = jobs.max(1);
        }
        let results = engine::run_all_live(cases, target, &opts, &|_| {});
        failed |= results.iter().any(|r| r.verdict.kind.fails(profile));
        columns.push((target.name.clone(), profile, results));
    }
    let html = args
        .matrix
        .as_ref()
        .is_some_and(|p| p.extension().is_some_and(|e| e == "html"));
    let markdown = report::matrix_markdown(&columns);
    if let Some(path) = &args.matrix {
        let text = if html {
            report::matrix_html(&columns)
        } else {
            markdown.clone()
        };
        std::fs::write(path, text)
            .with_context(|| format!("cannot write matrix '{}'", path.display()))?;
    }
    std::io::stdout().lock().write_all(markdown.as_bytes())?;
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}

/// The programs under test, from --role/--cmd or each --manifest; none for
/// the simulator.
fn live_targets(args: &RunArgs) -> anyhow::Result<Vec<engine::LiveTarget>> {
    let mut targets = Vec::new();
    if args.cmd.is_some() {
        targets.extend(live_target(args, None)?);
    }
    for path in &args.manifest {
        targets.extend(live_target(args, Some(path))?);
    }
    Ok(targets)
}

/// One program (from --role/--cmd) or one manifest's programs.
fn live_target(
    args: &RunArgs,
    manifest: Option<&PathBuf>,
) -> anyhow::Result<Option<engine::LiveTarget>> {
    use crate::backend::live::{manifest::Manifest, probe, template, LiveSubject};
    use crate::case::{Feature, Role};
    use std::time::Duration;
    if !(args.time_scale > 0.0 && args.time_scale <= 10.0) {
        anyhow::bail!(
            "--time-scale {} must be above 0 and at most 10",
            args.time_scale
        );
    }
    let parse_lacks = |names: &[String]| -> anyhow::Result<Vec<Feature>> {
        names
            .iter()
            .map(|n| {
                toml::Value::String(n.clone())
                    .try_into::<Feature>()
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "unknown feature '{n}' (known: timeouts, extra-transforms, pacing)"
                        )
                    })
            })
            .collect()
    };
    let subject =
        |role: Role, command: &str, contract, startup: f64, scale: f64, lacks: Vec<Feature>| {
            LiveSubject {
                role,
                command: command.to_string(),
                contract,
                startup_timeout: Duration::from_secs_f64(startup),
                time_scale: scale,
                exit_127_unsupported: probe(command),
                lacks,
            }
        };
    if let (None, Some(role), Some(cmd)) = (manifest, args.role, &args.cmd) {
        template::check(cmd).map_err(|e| anyhow::anyhow!("--cmd: {e}"))?;
        let mut roles = indexmap::IndexMap::new();
        roles.insert(
            role,
            subject(role, cmd, args.contract, 10.0, args.time_scale, Vec::new()),
        );
        return Ok(Some(engine::LiveTarget {
            name: cmd.clone(),
            lacks: parse_lacks(&args.lacks)?,
            roles,
            profile: None,
        }));
    }
    let Some(path) = manifest else {
        return Ok(None);
    };
    let m = Manifest::load(path).map_err(|e| anyhow::anyhow!(e))?;
    let scale = m.time_scale.unwrap_or(args.time_scale);
    let mut roles = indexmap::IndexMap::new();
    for role in Role::ALL {
        if let Some(rc) = m.role(role) {
            roles.insert(
                role,
                subject(
                    role,
                    &rc.command,
                    rc.contract,
                    rc.startup_timeout,
                    scale,
                    rc.lacks.clone(),
                ),
            );
        }
    }
    Ok(Some(engine::LiveTarget {
        name: m.name.clone(),
        lacks: m.lacks.clone(),
        roles,
        profile: Some(m.profile),
    }))
}

//! `poetry-harness run` and `replay`: the catalog against an implementation.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::Exit;
use crate::backend::live::process;
use crate::backend::sim::{RunOptions, SimEngine};
use crate::catalog::Catalog;
use crate::engine::{self, EngineOptions};
use crate::policy::{Policy, Scoring};
use crate::replay::{self, Replay};
use crate::report;
use crate::transcript::sanitise;
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
///   poetry-harness run '*.utf8-*' --exclude 'server.*'   # globs match whole IDs
///   poetry-harness run client. --manifest impl.toml --dry-run   # what would run, and how
///   poetry-harness run client.reset-mid-poem --transcripts
///   poetry-harness run --explore 20            # 20 random seeds per case
///   poetry-harness run client. --mutant client-decodes-per-chunk --explore 20 --shrink-to shrunk
///                                              # a mutant; each failure shrunk to shrunk/ID.shrunk-seed-N.toml
///   poetry-harness run --junit report.xml --json report.json --html report.html
///
/// Any program, in any language, on real loopback sockets (live backend):
///   poetry-harness run --role client --cmd 'python3 get_poetry.py {addrs}'
///   poetry-harness run --manifest impl.toml
///   poetry-harness run --manifest impl.toml --sandbox   # only loopback, own PIDs
/// Placeholders: {port} {addr} {addrs} {poem} {upstream} {xform} {transform}
/// {timeout} {num_bytes} {delay}. The program sees the case ID in POETRY_CASE;
/// exit status 127 declares a case unsupported, if a probe shows the program
/// follows that convention.
///
/// Graded runs: the teacher's grading policy decides the profile, time
/// scale, cases and points; the student's manifest can only narrow it:
///   poetry-harness run --policy policy.toml --manifest poetry.toml
///   poetry-harness run --policy policy.toml --manifest poetry.toml \
///       --gradescope /autograder/results/results.json
/// (see ci/policy.example.toml; --profile, --time-scale, --lacks and case
/// arguments are refused with --policy)
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// Cases to run (default: all): an ID, an ID prefix (`client.`), or a
    /// glob matching whole IDs (`'*.utf8-*'`; quote it for the shell).
    cases: Vec<String>,
    /// Leave out the cases this ID, prefix or glob matches (repeatable).
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Print the cases the run would run, against what and how, and
    /// exit without running any (checks the arguments, the manifest and
    /// the policy as a real run does).
    #[arg(long)]
    dry_run: bool,
    /// Start no further case once one fails (those running finish); the
    /// rest are reported as not run. For a quick red or green.
    #[arg(long)]
    fail_fast: bool,
    /// Profile to judge against: strict or tutorial (default: the
    /// manifest's, else strict).
    #[arg(long)]
    profile: Option<Profile>,
    /// A teacher's grading policy (TOML): its profile, time scale, cases
    /// and points hold, a manifest may not relax them, and the run
    /// reports a score (points earned of points possible).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Seed the run and re-chunk every server peer's writes from it
    /// (what --explore prints for a failing seed). Without it, each case
    /// runs as the catalog writes it.
    #[arg(long)]
    seed: Option<u64>,
    /// Also run each case with this many random seeds (--seed plus 1, 2,
    /// ...); print each failing seed with the replay command that repeats it.
    #[arg(long, default_value_t = 0)]
    explore: u64,
    /// With --explore: shrink the first failing seed of each case to a
    /// smallest case that still fails the same way (shorter poem, fewer
    /// chunks, faults and clients), write it to DIR as a catalog file and
    /// print its replay command.
    #[arg(long, value_name = "DIR")]
    shrink_to: Option<PathBuf>,
    /// Run this mutant of the zoo (see `poetry-harness mutants`) in place
    /// of the reference implementation, in the simulator.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["cmd", "manifest", "role"])]
    mutant: Option<String>,
    /// Simulator of in-process runs: simnet (the default) is a
    /// byte-accurate TCP (handshake, flow control in bytes, listen
    /// backlog, retransmission) on an event-driven scheduler; turmoil is
    /// the former engine (no handshake, so times one round trip earlier
    /// per connection; no packet faults or backlog). Replay commands,
    /// --explore and --shrink-to run on the engine the run used.
    #[arg(
        long,
        value_enum,
        default_value_t = SimEngine::Simnet,
        conflicts_with_all = ["cmd", "manifest"]
    )]
    engine: SimEngine,
    /// On simnet (the default engine): put a named network profile's packet faults
    /// (bandwidth, loss, jitter, duplication, reordering) on every link
    /// of the implementation, both ways. Profiles: gprs (5 KB/s, 2% loss,
    /// 200 ms jitter), lossy-wifi (1 MB/s, loss in bursts), satellite
    /// (100 KB/s, 0.5% loss), flaky (1% lost, duplicated; 5% reordered).
    /// Cases keep their time bounds, so a slow profile fails the timing
    /// cases: a stress test, not the catalog's verdict.
    #[arg(long, value_name = "PROFILE")]
    network: Option<String>,
    /// Read the catalog from this .toml file, or this folder of .toml
    /// files, instead of the built-in one.
    #[arg(long, value_name = "PATH")]
    suites: Option<PathBuf>,
    /// Run only the K-th of N slices of the selected cases (1-based,
    /// e.g. 2/3). Cases are dealt round-robin in catalog order, so every
    /// shard gets some of each role, and the same arguments always make
    /// the same slices. Run every K from 1 to N (e.g. as CI jobs), each
    /// with --json, then `poetry-harness merge` their reports.
    #[arg(long, value_name = "K/N")]
    shard: Option<crate::shard::Shard>,
    /// Worker threads: cases run at once (default: the number of cores).
    /// With several manifests, the implementations run side by side and
    /// share them (e.g. 4 jobs and 3 manifests: 3 at once, 1 case each),
    /// so the machine is never busier than with one implementation: live
    /// verdicts measure time, and an overloaded machine fails cases that
    /// would pass. On a small or shared machine, lower it.
    #[arg(long)]
    jobs: Option<usize>,
    /// Run each case N times and judge its runs together: a case that
    /// passes some runs and fails others is FLAKY, which fails the run
    /// (under either profile), and every case's reason (and JSON
    /// `repeats`) gives its pass rate. For live programs, whose behaviour
    /// may depend on timing; the simulator's repeats always agree.
    #[arg(long, value_name = "N", default_value_t = 1)]
    repeat: usize,
    /// Print every transcript, not only those of failures.
    #[arg(long)]
    transcripts: bool,
    /// Print only the failing cases (each with its explanation and
    /// transcript), harness errors, and the summary: the passing and
    /// unsupported cases' lines are left out. Reports are unchanged.
    /// (With several manifests the matrix is printed whole, as without.)
    ///   poetry-harness run client. --mutant client-reads-once --quiet
    #[arg(long, short, conflicts_with = "verbose", verbatim_doc_comment)]
    quiet: bool,
    /// Under every case's line, also print its title, its times (the
    /// harness's wall time, and the transcript's span: simulated time in
    /// the simulator) and, for a simulated case that passed, the command
    /// that replays it. (One implementation: not the matrix of several.)
    ///   poetry-harness run client.fast-poem client.utf8-split --verbose
    #[arg(long, short, verbatim_doc_comment)]
    verbose: bool,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a JSON report here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write Gradescope's results.json here: the score, and one test per
    /// case with its points and visibility from --policy (without one,
    /// each case is worth 1 and visible) and a failure's explanation.
    #[arg(long, value_name = "FILE")]
    gradescope: Option<PathBuf>,
    /// Write an HTML page here: a legend, the totals, the cases grouped
    /// by role, each verdict a click from its reason and transcript
    /// (with several manifests, the matrix of them all).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// In a GitHub Actions job: each failing case becomes an error
    /// annotation, and the job's summary page ($GITHUB_STEP_SUMMARY) gets
    /// the totals, the score, every case and each failure's explanation.
    #[arg(long)]
    github: bool,
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
    /// The implementation's name in every report (default: the manifest's
    /// `name`, the command, or `reference`), e.g. the student's login when
    /// a class's reports are merged into one matrix (`merge --matrix`
    /// makes a column per name). One implementation only.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Live backend: the roles and commands of an implementation, in a TOML
    /// manifest. Give it several times to compare implementations side by
    /// side (see --matrix and --jobs).
    #[arg(long, value_name = "FILE")]
    manifest: Vec<PathBuf>,
    /// With several manifests: write the implementations-by-cases matrix
    /// here (HTML if the name ends in .html, else Markdown).
    #[arg(long, value_name = "FILE")]
    matrix: Option<PathBuf>,
    /// Live backend: multiply every delay and timeout of the cases by this
    /// (default: the manifest's, else 0.05).
    #[arg(long)]
    time_scale: Option<f64>,
    /// Run in new user, mount, network and PID namespaces with only a
    /// loopback of their own: programs cannot reach the network or the
    /// host's processes, and nothing they start outlives the run. An error
    /// (exit 2) where the kernel does not allow it.
    #[arg(long)]
    pub(super) sandbox: bool,
}

/// Smallest time scale: below it every pause rounds to the 1 ms floor and
/// a case's timing means nothing.
pub(super) const MIN_TIME_SCALE: f64 = 0.001;

/// Largest time scale: ten times slower than the catalog says is already
/// longer than anyone waits.
pub(super) const MAX_TIME_SCALE: f64 = 10.0;

/// Longest start-up budget a manifest may give, in seconds.
const MAX_STARTUP_SECS: f64 = 3600.0;

/// A number as a person would write it: `1e300`, not three hundred digits.
pub(super) fn number(x: f64) -> String {
    if x != 0.0 && x.is_finite() && !(1e-3..1e6).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        x.to_string()
    }
}

/// Loads the catalog the arguments name (a file or a folder).
pub fn load_catalog(suites: Option<&PathBuf>) -> anyhow::Result<Catalog> {
    Ok(match suites {
        Some(path) => Catalog::load_path(path)?,
        None => Catalog::builtin()?,
    })
}

pub fn run(args: RunArgs) -> anyhow::Result<Exit> {
    // First: an interrupt from here on kills the programs under test.
    process::install_interrupt_handler();
    if args.jobs == Some(0) {
        anyhow::bail!("--jobs '0' must be at least 1");
    }
    if args.repeat == 0 {
        anyhow::bail!("--repeat '0' must be at least 1 (1 runs each case once)");
    }
    let policy = match &args.policy {
        Some(path) => Some(load_policy(&args, path)?),
        None => None,
    };
    let catalog = load_catalog(args.suites.as_ref())?;
    let cases = match &policy {
        Some(p) => p.select(&catalog).map_err(anyhow::Error::msg)?,
        None => crate::selection::select(&catalog, &args.cases, &args.exclude)
            .map_err(anyhow::Error::msg)?,
    };
    // Recorded in the JSON report, so `merge` can check the shards of a
    // run belong together and are all there.
    let run_fields = selection_fields(&cases, args.shard);
    let cases = match args.shard {
        Some(shard) => shard.slice(&cases),
        None => cases,
    };
    // An unwritable report path is found now, not after the whole run.
    for (flag, path) in [
        ("--junit", &args.junit),
        ("--json", &args.json),
        ("--gradescope", &args.gradescope),
        ("--html", &args.html),
        ("--matrix", &args.matrix),
    ] {
        if let Some(path) = path {
            report::check_writable(flag, path).map_err(anyhow::Error::msg)?;
        }
    }
    if args.network.is_some() && args.engine != SimEngine::Simnet {
        anyhow::bail!(
            "--network needs --engine simnet: only its TCP retransmits what a link loses"
        );
    }
    if let Some(dir) = &args.shrink_to {
        check_shrink_dir(&args, dir)?;
    }
    let github = match args.github {
        true => Some(crate::github::summary_path().map_err(anyhow::Error::msg)?),
        false => None,
    };
    let mut targets = live_targets(&args, policy.as_ref())?;
    if let Some(name) = &args.name {
        if targets.len() > 1 {
            anyhow::bail!(
                "--name '{}' names one implementation; these manifests name theirs",
                sanitise(name)
            );
        }
        if name.trim().is_empty() {
            anyhow::bail!("--name must not be empty");
        }
        for t in &mut targets {
            t.name = name.clone();
        }
    }
    if targets.len() > 1 {
        return run_matrix(&args, policy.as_ref(), &cases, &targets);
    }
    let live = targets.pop();
    let profile = match &policy {
        Some(p) => p.profile,
        None => args
            .profile
            .or(live.as_ref().and_then(|t| t.profile))
            .unwrap_or_default(),
    };
    let scoring = policy.as_ref().map(|p| p.scoring(&cases, live.as_ref()));
    // Gradescope needs points even without a policy: 1 per case.
    let grading = scoring
        .clone()
        .unwrap_or_else(|| Policy::none(profile).scoring(&cases, live.as_ref()));
    let imp = replay::implementation(
        Replay::implementation_named(args.mutant.as_deref()).map_err(anyhow::Error::msg)?,
    );
    let mut opts = EngineOptions {
        profile,
        ..EngineOptions::default()
    };
    if let Some(jobs) = args.jobs {
        opts.jobs = jobs.max(1);
    }
    opts.run = RunOptions::from_seed_flag(args.seed).on_engine(args.engine);
    if let Some(name) = &args.network {
        opts.run = opts.run.on_network(name).map_err(anyhow::Error::msg)?;
    }
    opts.fail_fast = args.fail_fast;
    opts.repeat = args.repeat;
    let name = live
        .as_ref()
        .map_or_else(|| imp.name.clone(), |t| t.name.clone());
    let name = args.name.clone().unwrap_or(name);
    if args.dry_run {
        print!(
            "{}",
            dry_run_plan(&cases, &name, (&imp, &opts), live.as_ref())
        );
        if let Some(shard) = args.shard {
            println!(
                "shard {shard}: {} of the {} selected case(s)",
                cases.len(),
                run_fields["selection"]["cases"]
            );
        }
        return Ok(Exit::Ok);
    }
    // Reports stream to disk as live cases finish (a simulated catalog
    // takes a fraction of a second: written at the end).
    let sink = Arc::new(
        report::Sink::new(
            report::ReportPaths {
                junit: args.junit.clone(),
                json: args.json.clone(),
                gradescope: args.gradescope.clone(),
                html: args.html.clone(),
            },
            name.clone(),
            profile,
            &cases,
            live.is_some(),
        )
        .with_scoring(scoring.clone())
        .with_grading(grading)
        .with_run_fields(run_fields),
    );
    // Each case's line as it finishes, a progress bar on a terminal.
    let verbosity = match (args.quiet, args.verbose) {
        (true, _) => report::terminal::Verbosity::Quiet,
        (_, true) => report::terminal::Verbosity::Verbose,
        _ => report::terminal::Verbosity::Normal,
    };
    let printer = Arc::new(report::terminal::Printer::for_terminal(
        &cases,
        profile,
        verbosity,
        args.transcripts,
    ));
    {
        let sink = sink.clone();
        let printer = printer.clone();
        let name = name.clone();
        let scoring = scoring.clone();
        let github = github.clone();
        interrupt_then(move |signal| {
            let results = sink.so_far();
            if let Ok(true) =
                sink.write_final(&results, &report::RunState::Interrupted(signal.to_string()))
            {
                let scoring = scoring.as_ref();
                print_interrupted(&printer, &results, &name, scoring, signal);
                publish_github(github.as_deref(), &results, &name, profile, scoring);
                std::process::exit(process::exit_status_for(signal));
            }
        });
    }
    let progress = |r: &engine::CaseResult| {
        sink.finished(r);
        printer.finished(r);
    };
    if live.is_some() {
        // The run header: how far this run's time bounds bend (measured
        // now, before the first case; see backend::live::timing).
        printer.header(&format!(
            "live timing: {}",
            crate::backend::live::timing::Jitter::get()
        ));
    }
    let results = match &live {
        Some(target) => engine::run_all_live(&cases, target, &opts, &progress),
        None => engine::run_all(&cases, &imp, &opts, &progress),
    };
    if let Some(signal) = process::interrupted_by() {
        // The interrupt's watchdog may have written them already.
        let state = report::RunState::Interrupted(signal.to_string());
        if sink
            .write_final(&results, &state)
            .map_err(anyhow::Error::msg)?
        {
            process::kill_orphans();
            print_interrupted(&printer, &results, &name, scoring.as_ref(), signal);
            publish_github(
                github.as_deref(),
                &results,
                &name,
                profile,
                scoring.as_ref(),
            );
            std::process::exit(process::exit_status_for(signal));
        }
        // Wait for the watchdog to exit the process.
        loop {
            std::thread::park();
        }
    }
    process::kill_orphans();
    // Reports are written before anything can fail, so nothing is lost.
    sink.write_final(&results, &report::RunState::Complete)
        .map_err(anyhow::Error::msg)?;
    // The cases streamed as they finished; the rest and the summary now.
    printer.finish(&results, &name, scoring.as_ref())?;
    let mut out = std::io::stdout().lock();
    publish_github(
        github.as_deref(),
        &results,
        &name,
        profile,
        scoring.as_ref(),
    );
    if let Some(e) = results
        .iter()
        .find(|r| r.status == engine::Status::HarnessError)
    {
        out.flush()?;
        anyhow::bail!("{}: {}", e.case.id, e.verdict.reason);
    }
    let mut failed = results.iter().any(|r| r.verdict.kind.fails(profile));
    if args.explore > 0 && live.is_none() {
        writeln!(out, "\nexploring {} random seed(s) per case", args.explore)?;
        let base = args.seed.unwrap_or(0);
        let mut any = false;
        for case in &cases {
            let found = engine::explore(case, &imp, &opts, base, args.explore);
            for (run, kind) in &found {
                any = true;
                let how = Replay::of(case, &imp, *run)
                    .map(|r| format!(": {}", sanitise(&r.judged_by(profile).to_string())))
                    .unwrap_or_default();
                writeln!(out, "  {} {kind} with {run}{how}", case.id)?;
            }
            if let (Some(dir), Some((run, _))) = (&args.shrink_to, found.first()) {
                out.flush()?;
                shrink_into(dir, case, &imp, *run, profile, &mut out)?;
            }
        }
        if !any {
            writeln!(out, "  every seed passed")?;
        }
        failed |= any;
    }
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}

/// The JSON report's `run.selection` (how many cases the run's
/// arguments select, before any shard, and their fingerprint) and
/// `run.shard`.
fn selection_fields(
    selected: &[&crate::case::Case],
    shard: Option<crate::shard::Shard>,
) -> report::RunFields {
    let mut fields = report::RunFields::new();
    fields.insert(
        "selection".into(),
        serde_json::json!({
            "cases": selected.len(),
            "fingerprint": crate::shard::fingerprint(selected.iter().map(|c| c.id.as_str())),
        }),
    );
    if let Some(shard) = shard {
        fields.insert("shard".into(), serde_json::json!(shard));
    }
    fields
}

/// `--shrink-to DIR`: only with --explore, in the simulator, and DIR is a
/// folder this run can write in (made if missing), checked before any
/// case runs.
fn check_shrink_dir(args: &RunArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let shown = dir.display();
    if args.explore == 0 {
        anyhow::bail!(
            "--shrink-to '{shown}' shrinks what --explore finds: add --explore N (e.g. --explore 20)"
        );
    }
    if args.cmd.is_some() || !args.manifest.is_empty() {
        anyhow::bail!(
            "--shrink-to '{shown}': --explore and shrinking run in the simulator, not with --cmd or --manifest"
        );
    }
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!("--shrink-to '{shown}' is not a folder");
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("--shrink-to '{shown}' cannot be made: {e}"))?;
    tempfile::Builder::new()
        .prefix(".poetry-harness-shrink-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| anyhow::anyhow!("--shrink-to '{shown}' cannot be written in: {e}"))
}

/// Shrinks one failing run of `case`, writes the shrunk case to
/// `DIR/ID.toml` with its replay command on top, and says so.
fn shrink_into(
    dir: &std::path::Path,
    case: &crate::case::Case,
    imp: &crate::roles::Implementation,
    run: RunOptions,
    profile: Profile,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    use crate::shrink::{shrink, Budget};
    let mut shrunk = match shrink(case, imp, run, profile, Budget::default()) {
        Ok(s) => s,
        Err(e) => {
            writeln!(out, "    not shrunk: {}", sanitise(&e.to_string()))?;
            return Ok(());
        }
    };
    let path = dir.join(format!("{}.toml", shrunk.case.id));
    shrunk.case.source = Some(path.clone());
    let replay = Replay::of(&shrunk.case, imp, run).map(|r| r.judged_by(profile));
    let text = match &replay {
        Some(r) => format!("# Replay: {r}\n{}", shrunk.toml),
        None => shrunk.toml.clone(),
    };
    std::fs::write(&path, text)
        .map_err(|e| anyhow::anyhow!("cannot write the shrunk case '{}': {e}", path.display()))?;
    writeln!(
        out,
        "    shrunk in {} run(s) to {} ({}), written to {}",
        shrunk.runs,
        shrunk.sizes.1,
        if shrunk.fixpoint {
            "no single cut keeps the failure"
        } else {
            "the budget of runs is spent"
        },
        sanitise(&path.display().to_string())
    )?;
    if let Some(r) = replay {
        writeln!(out, "    {}", sanitise(&r.to_string()))?;
    }
    Ok(())
}

/// Replay one case in the simulator and print its transcript
///
/// Repeats a run byte for byte: every transcript header and every seed
/// that --explore finds prints the replay command to copy.
///
/// Examples:
///   poetry-harness replay client.utf8-split              # as the catalog writes it
///   poetry-harness replay client.random-chunks --seed 7  # perturbed from seed 7
///   poetry-harness replay client.jittered-pace --seed 2 --mutant client-decodes-per-chunk
///   poetry-harness replay server.slow-pacing --seed 3 --network flaky
///   poetry-harness replay client.utf8-split --engine turmoil   # a run on the former engine
///   poetry-harness replay client.jittered-pace.shrunk-seed-2 --seed 2 --mutant client-decodes-per-chunk \
///       --suites shrunk/client.jittered-pace.shrunk-seed-2.toml   # a case --shrink-to wrote
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ReplayArgs {
    /// The case ID.
    case: String,
    /// The seed that re-chunked the run (as printed); without it, the case
    /// runs as the catalog writes it.
    #[arg(long)]
    seed: Option<u64>,
    /// The simulator the run used (as printed: --engine turmoil for a run
    /// of `run --engine turmoil`).
    #[arg(long, value_enum, default_value_t = SimEngine::Simnet)]
    engine: SimEngine,
    /// On simnet (the default engine): the network profile the run put on every
    /// link of the implementation (as printed).
    #[arg(long, value_name = "PROFILE")]
    network: Option<String>,
    /// The mutant of the zoo the run used in place of the reference.
    #[arg(long, value_name = "NAME")]
    mutant: Option<String>,
    /// Profile to judge against.
    #[arg(long, default_value = "strict")]
    profile: Profile,
    /// Read the catalog from this .toml file, or this folder of .toml
    /// files, instead of the built-in one.
    #[arg(long, value_name = "PATH")]
    suites: Option<PathBuf>,
}

impl ReplayArgs {
    /// The replay these arguments name (the mutant is checked here).
    pub fn to_replay(&self) -> anyhow::Result<Replay> {
        let mut run = RunOptions::from_seed_flag(self.seed).on_engine(self.engine);
        if let Some(name) = &self.network {
            if self.engine != SimEngine::Simnet {
                anyhow::bail!(
                    "--network needs --engine simnet: only its TCP retransmits what a link loses"
                );
            }
            run = run.on_network(name).map_err(anyhow::Error::msg)?;
        }
        Ok(Replay {
            case: self.case.clone(),
            run,
            implementation: Replay::implementation_named(self.mutant.as_deref())
                .map_err(anyhow::Error::msg)?,
            suites: self.suites.clone(),
            profile: self.profile,
        })
    }
}

pub fn replay(args: ReplayArgs) -> anyhow::Result<Exit> {
    let replay = args.to_replay()?;
    let result = replay.run().map_err(anyhow::Error::msg)?;
    let name = replay::implementation(replay.implementation).name;
    let results = [result];
    std::io::stdout().lock().write_all(
        report::table_scored(
            &results,
            &name,
            replay.profile,
            true,
            report::use_colour(),
            None,
        )
        .as_bytes(),
    )?;
    if results[0].status == engine::Status::HarnessError {
        anyhow::bail!("{}: {}", results[0].case.id, results[0].verdict.reason);
    }
    Ok(if results[0].verdict.kind.fails(replay.profile) {
        Exit::Failed
    } else {
        Exit::Ok
    })
}

/// Runs every manifest's programs and prints (and writes) the matrix of
/// implementations by cases.
fn run_matrix(
    args: &RunArgs,
    policy: Option<&Policy>,
    cases: &[&crate::case::Case],
    targets: &[engine::LiveTarget],
) -> anyhow::Result<Exit> {
    if args.junit.is_some() || args.json.is_some() || args.gradescope.is_some() || args.github {
        anyhow::bail!(
            "--junit, --json, --gradescope and --github take one implementation; with several manifests use --matrix or --html"
        );
    }
    interrupt_then(|_| {});
    // Implementations run side by side, sharing the --jobs budget: no
    // more cases run at once than one implementation alone would run.
    let jobs = args
        .jobs
        .unwrap_or_else(|| EngineOptions::default().jobs)
        .max(1);
    let (at_once, per_target) = split_jobs(jobs, targets.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    // Each implementation's column and, under a policy, its score line.
    type Slot = std::sync::Mutex<Option<(report::Column, Option<crate::policy::Score>)>>;
    let slots: Vec<Slot> = targets
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..at_once {
            scope.spawn(|| loop {
                if engine::stop_requested() {
                    break;
                }
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(target) = targets.get(i) else { break };
                let profile = match policy {
                    Some(p) => p.profile,
                    None => args.profile.or(target.profile).unwrap_or_default(),
                };
                let opts = EngineOptions {
                    profile,
                    jobs: per_target,
                    repeat: args.repeat,
                    ..EngineOptions::default()
                };
                let results = engine::run_all_live(cases, target, &opts, &|_| {});
                let score = policy.map(|p| p.scoring(cases, Some(target)).score(&results, profile));
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(((target.name.clone(), profile, results), score));
                }
            });
        }
    });
    // In the order the manifests were given, whatever order they ended in;
    // after an interrupt, those that ran.
    let mut columns = Vec::new();
    let mut scores = Vec::new();
    let mut graded = Vec::new();
    for slot in slots {
        if let Some((column, score)) = slot.into_inner().ok().flatten() {
            if let Some(score) = &score {
                scores.push(format!("{}: {score}\n", sanitise(&column.0)));
            }
            graded.push(score);
            columns.push(column);
        }
    }
    let failed = columns
        .iter()
        .any(|(_, profile, results)| results.iter().any(|r| r.verdict.kind.fails(*profile)));
    let html = args
        .matrix
        .as_ref()
        .is_some_and(|p| p.extension().is_some_and(|e| e == "html"));
    let markdown = report::matrix_markdown(&columns);
    if let Some(path) = &args.matrix {
        let text = if html {
            report::matrix_html_scored(&columns, &graded)
        } else {
            markdown.clone()
        };
        std::fs::write(path, text)
            .with_context(|| format!("cannot write matrix '{}'", path.display()))?;
    }
    if let Some(path) = &args.html {
        report::write_atomic(path, &report::matrix_html_scored(&columns, &graded))
            .with_context(|| format!("cannot write HTML matrix '{}'", path.display()))?;
    }
    std::io::stdout().lock().write_all(markdown.as_bytes())?;
    if !scores.is_empty() {
        std::io::stdout()
            .lock()
            .write_all(format!("\n{}", scores.concat()).as_bytes())?;
    }
    process::kill_orphans();
    if let Some(signal) = process::interrupted_by() {
        std::io::stdout().lock().flush()?;
        std::process::exit(process::exit_status_for(signal));
    }
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}

/// How `run_matrix` shares `jobs` worker threads between `targets`
/// implementations: how many run at once, and the jobs each gets. At
/// most `jobs` cases run at once in all, as with one implementation, so
/// live timing verdicts see no more load than a single run puts on the
/// machine.
fn split_jobs(jobs: usize, targets: usize) -> (usize, usize) {
    let jobs = jobs.max(1);
    let at_once = targets.clamp(1, jobs);
    (at_once, (jobs / at_once).max(1))
}

/// Longest wait, after an interrupt has killed the programs, for the
/// cases in flight to finish before `fallback` writes what there is.
const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

/// On an interrupt (SIGINT, SIGTERM, SIGHUP): the programs are killed
/// (see `process::install_interrupt_handler`), no case starts any more,
/// the cases in flight finish and the run writes its reports and exits
/// 128 + the signal. Should that take longer than [`INTERRUPT_GRACE`],
/// `fallback` runs (write what is there), then the process exits anyway.
fn interrupt_then(fallback: impl Fn(process::Signal) + Send + Sync + 'static) {
    let fallback = Arc::new(fallback);
    process::on_interrupt(move |signal| {
        engine::request_stop();
        let fallback = fallback.clone();
        std::thread::spawn(move || {
            std::thread::sleep(INTERRUPT_GRACE);
            fallback(signal);
            process::kill_all();
            let _ = std::io::stdout().lock().flush();
            std::process::exit(process::exit_status_for(signal));
        });
    });
}

/// `--dry-run`: one line per case that would run, then what runs them:
/// the same prechecks as the run (a case the engine cannot run says
/// UNSUPPORTED and why).
fn dry_run_plan(
    cases: &[&crate::case::Case],
    name: &str,
    (imp, opts): (&crate::roles::Implementation, &EngineOptions),
    live: Option<&engine::LiveTarget>,
) -> String {
    use std::fmt::Write as _;
    let profile = opts.profile;
    let width = cases.iter().map(|c| c.id.len()).max().unwrap_or(10);
    let mut out = String::new();
    for case in cases {
        let unsupported = match live {
            None => engine::sim_precheck(case, imp, opts),
            Some(target) => engine::live_precheck(case, target, profile),
        };
        let how = match (unsupported, live) {
            (Some(v), _) => format!("{}: {}", v.kind.label(), sanitise(&v.reason)),
            (None, None) => "simulator".to_string(),
            (None, Some(_)) => "live".to_string(),
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<8}  {how}",
            case.id,
            case.role.to_string()
        );
    }
    let backend = match live {
        None => "in the simulator",
        Some(_) => "as programs on 127.0.0.1",
    };
    let _ = writeln!(
        out,
        "\ndry run: {} case(s) against {} ({profile} profile), {backend}; nothing was run",
        cases.len(),
        sanitise(name)
    );
    out
}

/// `--github`: the step summary and the annotations; a failure to write
/// them is reported, and the run's verdicts stand.
fn publish_github(
    path: Option<&std::path::Path>,
    results: &[engine::CaseResult],
    name: &str,
    profile: Profile,
    scoring: Option<&Scoring>,
) {
    if let Some(path) = path {
        if let Err(e) = crate::github::publish(path, results, name, profile, scoring) {
            eprintln!("poetry-harness: {e}");
        }
    }
}

/// The end of an interrupted run: the cases not printed yet, the
/// summary, and a line saying so.
fn print_interrupted(
    printer: &report::terminal::Printer,
    results: &[engine::CaseResult],
    name: &str,
    scoring: Option<&Scoring>,
    signal: process::Signal,
) {
    let _ = printer.finish(results, name, scoring);
    let mut out = std::io::stdout().lock();
    let finished = results
        .iter()
        .filter(|r| r.status != engine::Status::Interrupted)
        .count();
    let _ = writeln!(
        out,
        "interrupted by {signal}: {finished} of {} case(s) finished",
        results.len()
    );
    let _ = out.flush();
}

/// The programs under test, from --role/--cmd or each --manifest; none for
/// the simulator.
fn live_targets(
    args: &RunArgs,
    policy: Option<&Policy>,
) -> anyhow::Result<Vec<engine::LiveTarget>> {
    let mut targets = Vec::new();
    if args.cmd.is_some() {
        targets.extend(live_target(args, policy, None)?);
    }
    for path in &args.manifest {
        targets.extend(live_target(args, policy, Some(path))?);
    }
    Ok(targets)
}

/// Reads the grading policy, refusing the flags it decides instead.
fn load_policy(args: &RunArgs, path: &std::path::Path) -> anyhow::Result<Policy> {
    let policy = Policy::load(path).map_err(anyhow::Error::msg)?;
    let file = path.display();
    if let Some(p) = args.profile {
        anyhow::bail!(
            "--profile '{}': the grading policy '{file}' sets the profile ({}); drop --profile",
            profile_name(p),
            profile_name(policy.profile)
        );
    }
    if let Some(s) = args.time_scale {
        anyhow::bail!(
            "--time-scale '{}': the grading policy '{file}' sets the time scale ({}); drop --time-scale",
            number(s),
            number(policy.time_scale)
        );
    }
    if !args.lacks.is_empty() {
        anyhow::bail!(
            "--lacks: with a grading policy, lacks are declared in the manifest and checked against the policy's allowed_lacks ('{file}'); drop --lacks"
        );
    }
    if !args.exclude.is_empty() {
        anyhow::bail!(
            "--exclude: the grading policy '{file}' selects the cases (its `cases` and `exclude`); drop --exclude"
        );
    }
    if !args.cases.is_empty() {
        anyhow::bail!(
            "case arguments ({}): the grading policy '{file}' selects the cases (its `cases` and `exclude`); drop them, or run without --policy to try a few cases",
            sanitise(&args.cases.join(" "))
        );
    }
    Ok(policy)
}

fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::Strict => "strict",
        Profile::Tutorial => "tutorial",
    }
}

/// One program (from --role/--cmd) or one manifest's programs.
fn live_target(
    args: &RunArgs,
    policy: Option<&Policy>,
    manifest: Option<&PathBuf>,
) -> anyhow::Result<Option<engine::LiveTarget>> {
    use crate::backend::live::{
        launch::probe_command_with,
        manifest::{key_line, Manifest},
        template, LiveSubject, DEFAULT_TIME_SCALE,
    };
    use crate::case::{Feature, Role};
    use std::time::Duration;
    if let Some(s) = args.time_scale {
        if !(MIN_TIME_SCALE..=MAX_TIME_SCALE).contains(&s) {
            anyhow::bail!(
                "--time-scale '{}' must be between {MIN_TIME_SCALE} and {MAX_TIME_SCALE}",
                number(s)
            );
        }
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
    // A command that cannot run is a usage error naming it, found before
    // any case runs; the exit-127 probe is only trusted from a command
    // that demonstrably ran.
    let subject = |role: Role,
                   command: &str,
                   contract,
                   startup: f64,
                   scale: f64,
                   lacks: Vec<Feature>,
                   env: Vec<String>,
                   place: &dyn Fn(&str) -> String|
     -> anyhow::Result<LiveSubject> {
        if !(startup.is_finite() && startup > 0.0 && startup <= MAX_STARTUP_SECS) {
            anyhow::bail!(
                "{}: '{}' must be above 0 and at most {MAX_STARTUP_SECS} seconds",
                place("startup_timeout"),
                number(startup)
            );
        }
        let exit_127_unsupported = probe_command_with(command, &env)
            .map_err(|e| anyhow::anyhow!("{}: {e}", place("command")))?;
        Ok(LiveSubject {
            role,
            command: command.to_string(),
            contract,
            startup_timeout: Duration::from_secs_f64(startup),
            time_scale: scale,
            exit_127_unsupported,
            lacks,
            env,
        })
    };
    if let (None, Some(role), Some(cmd)) = (manifest, args.role, &args.cmd) {
        template::check(cmd).map_err(|e| anyhow::anyhow!("--cmd: {e}"))?;
        let mut roles = indexmap::IndexMap::new();
        let place = |_: &str| "--cmd".to_string();
        // Under a policy: its time scale, and no longer a start-up than
        // it allows.
        let startup = policy
            .and_then(|p| p.max_startup_timeout.get(&role).copied())
            .map_or(10.0, |max| max.min(10.0));
        let scale = policy.map_or(args.time_scale.unwrap_or(DEFAULT_TIME_SCALE), |p| {
            p.time_scale_for(None)
        });
        roles.insert(
            role,
            subject(
                role,
                cmd,
                args.contract,
                startup,
                scale,
                Vec::new(),
                Vec::new(),
                &place,
            )?,
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
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if let Some(p) = policy {
        p.check_manifest(&m, &path.display().to_string(), &text)
            .map_err(anyhow::Error::msg)?;
    }
    let scale = match policy {
        Some(p) => p.time_scale_for(Some(&m)),
        None => args
            .time_scale
            .or(m.time_scale)
            .unwrap_or(DEFAULT_TIME_SCALE),
    };
    if !(MIN_TIME_SCALE..=MAX_TIME_SCALE).contains(&scale) {
        anyhow::bail!(
            "{}: time_scale '{}' must be between {MIN_TIME_SCALE} and {MAX_TIME_SCALE}",
            path.display(),
            number(scale)
        );
    }
    let mut roles = indexmap::IndexMap::new();
    for role in Role::ALL {
        if let Some(rc) = m.role(role) {
            let table = crate::backend::live::manifest::table(role);
            let place = |key: &str| {
                let line = key_line(&text, Some(table), key)
                    .map(|l| format!(":{l}"))
                    .unwrap_or_default();
                format!("{}{line}: [{table}] {key}", path.display())
            };
            roles.insert(
                role,
                subject(
                    role,
                    &rc.command,
                    rc.contract,
                    rc.startup_timeout,
                    scale,
                    rc.lacks.clone(),
                    m.env_of(role),
                    &place,
                )?,
            );
        }
    }
    Ok(Some(engine::LiveTarget {
        name: m.name.clone(),
        lacks: m.lacks.clone(),
        roles,
        profile: Some(m.profile()),
    }))
}

#[cfg(test)]
mod tests {
    use super::split_jobs;

    #[test]
    fn implementations_side_by_side_never_run_more_cases_at_once_than_jobs() {
        for jobs in 1..=16 {
            for targets in 1..=20 {
                let (at_once, each) = split_jobs(jobs, targets);
                assert!(at_once * each <= jobs, "{jobs} jobs, {targets} targets");
                assert!((1..=targets).contains(&at_once));
                assert!(each >= 1);
            }
        }
        assert_eq!(split_jobs(2, 3), (2, 1));
        assert_eq!(split_jobs(8, 3), (3, 2));
        assert_eq!(split_jobs(4, 1), (1, 4));
    }
}

//! `poetry-harness mutants`: the catalog against the mutant zoo
//! (`fixtures/mutants/`), the kill matrix and the mutation score.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;

use super::run::load_catalog;
use super::Exit;
use crate::backend::live::reference_programs::{
    assess_mutants, live_score_percent, LiveAssessment, MutantCases, ReferencePrograms,
    MIN_LIVE_SCORE_PERCENT,
};
use crate::backend::sim::SimEngine;
use crate::case::Case;
use crate::mutants::{self, Assessment};
use crate::verdict::Kind;

/// Arguments of `mutants`. The help text is `AFTER_HELP`: the doc comment
/// of the `Mutants` variant in `cli/mod.rs` replaces a doc comment here.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct MutantsArgs {
    /// Worker threads (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print a Markdown table instead of the terminal matrix.
    #[arg(long)]
    markdown: bool,
    /// Read the catalog from this .toml file, or this folder of .toml
    /// files, instead of the built-in one.
    #[arg(long, value_name = "PATH")]
    suites: Option<PathBuf>,
    /// The simulator that runs the cases (without --live): simnet (the
    /// default, turmoil-net's byte-accurate TCP) or turmoil (the former
    /// engine). A case a mutant lists as its killer that does not kill it
    /// on the engine chosen is marked !!.
    #[arg(long, value_enum, default_value_t = SimEngine::Simnet, conflicts_with = "live")]
    engine: SimEngine,
    /// Run every mutant as a program (serve|get --mutant NAME) through the
    /// live backend: the live kill matrix and mutation score.
    #[arg(long, conflicts_with = "markdown")]
    live: bool,
    /// With --live: multiply every delay and timeout of the cases by this.
    #[arg(long, requires = "live", default_value_t = crate::backend::live::DEFAULT_TIME_SCALE)]
    time_scale: f64,
    /// With --live: run every case of a mutant's role, not only the cases
    /// it lists.
    #[arg(long, requires = "live")]
    all_cases: bool,
    /// With --live: run in new user, mount, network and PID namespaces with only a
    /// loopback of their own: programs cannot reach the network or the
    /// host's processes, and nothing they start outlives the run. An error
    /// (exit 2) where the kernel does not allow it.
    #[arg(long, requires = "live")]
    pub(super) sandbox: bool,
}

const AFTER_HELP: &str = "\
Each mutant is a reference implementation with one classic bug (decoding
UTF-8 per chunk, reading once, a server that serves one client at a time, a
netstring length counted in characters, a proxy that caches a truncated
poem, ...). The cases of its role run against it under the strict profile;
a case kills it when its verdict is FAIL, TIMEOUT or NON-STRICT.

Prints one row per mutant with the cases that killed it, marks with !! a
mutant that survived or a case it lists in killed_by that did not kill it,
and ends with the mutation score, killed/total (P%).

Exit status: 0 if every mutant is killed, each by every case it lists;
1 otherwise; 2 for bad usage or a harness error.

With --live, each mutant runs as a real program (this binary's `serve` or
`get` with the mutant swapped in) through the live backend, against the
cases it lists (every case of its role with --all-cases). Prints the live
kill matrix and the live mutation score. A survivor is explained when
every case it lists is one the live backend cannot run (the reason is
printed); an unexplained survivor is marked !!. Exit status 0 if the live
score is at least 95% and every survivor is explained; 1 otherwise.

Examples:
  poetry-harness mutants
  poetry-harness mutants --markdown      # the table for the README
  poetry-harness mutants --jobs 1
  poetry-harness mutants --engine turmoil  # on the former engine
  poetry-harness mutants --live          # the zoo as programs, on loopback
  poetry-harness mutants --live --all-cases --time-scale 0.1";

pub fn run(args: MutantsArgs) -> anyhow::Result<Exit> {
    let catalog = load_catalog(args.suites.as_ref())?;
    let cases = catalog.select(&[]);
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    if args.live {
        return run_live(&args, &cases, jobs);
    }
    let assessments = mutants::assess_all_on(&cases, jobs, args.engine);
    let text = if args.markdown {
        markdown(&assessments)
    } else {
        matrix(&assessments)
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    let ok = assessments.iter().all(Assessment::as_promised);
    Ok(if ok { Exit::Ok } else { Exit::Failed })
}

/// `mutants --live`: the zoo as programs, its kill matrix and score.
fn run_live(args: &MutantsArgs, cases: &[&Case], jobs: usize) -> anyhow::Result<Exit> {
    if !(args.time_scale > 0.0 && args.time_scale <= 10.0) {
        anyhow::bail!(
            "--time-scale '{}' must be above 0 and at most 10",
            args.time_scale
        );
    }
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find this program's own executable: {e}"))?;
    let mut programs = ReferencePrograms::new(exe).map_err(|e| anyhow::anyhow!(e))?;
    programs.time_scale(args.time_scale);
    let which = if args.all_cases {
        MutantCases::All
    } else {
        MutantCases::Listed
    };
    crate::backend::live::process::install_interrupt_handler();
    let assessments = assess_mutants(&programs, &mutants::all(), cases, which, jobs);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "live: every mutant as a program ({} serve|get --mutant NAME), time scale {}, {}\n",
        programs.exe().display(),
        args.time_scale,
        match which {
            MutantCases::Listed => "the cases each mutant lists",
            MutantCases::All => "every case of each mutant's role",
        }
    )?;
    out.write_all(live_matrix(&assessments).as_bytes())?;
    let ok = live_score_percent(&assessments) >= MIN_LIVE_SCORE_PERCENT
        && assessments.iter().all(LiveAssessment::acceptable);
    Ok(if ok { Exit::Ok } else { Exit::Failed })
}

/// The live kill matrix: one row per mutant with the cases that killed it,
/// or SURVIVED with its explanation, or !! and the verdict of each case it
/// lists, one per line. Ends with the live mutation score.
pub fn live_matrix(assessments: &[LiveAssessment]) -> String {
    let mut s = String::new();
    let width = assessments
        .iter()
        .map(|a| a.assessment.mutant.name.len())
        .chain(["MUTANT".len()])
        .max()
        .unwrap_or(0);
    let _ = writeln!(s, "{:<width$}  {:<16}  KILLED BY", "MUTANT", "ROLE");
    for live in assessments {
        let a = &live.assessment;
        let mut row = format!("{:<width$}  {:<16}  ", a.mutant.name, a.mutant.role.name());
        let mut details = Vec::new();
        if live.killed() {
            row.push_str(&killers(a));
            if !a.missed.is_empty() {
                let _ = write!(row, "  (listed, not killed live: {})", a.missed.join(", "));
            }
        } else if let Some(why) = live.explanation() {
            let _ = write!(row, "SURVIVED  explained: {why}");
        } else {
            let _ = write!(row, "SURVIVED  !! unexplained");
            if a.mutant.killed_by.is_empty() {
                row.push_str(": lists no killing case");
            }
            if !a.unknown.is_empty() {
                let _ = write!(
                    row,
                    "; no such {} case: {}",
                    a.mutant.role,
                    a.unknown.join(", ")
                );
            }
            // The verdicts of the cases it lists: why each let it through.
            let listed = live
                .results
                .iter()
                .filter(|r| a.mutant.killed_by.contains(&r.case.id.as_str()));
            for r in listed {
                details.push(format!(
                    "    {} {}: {}",
                    r.case.id, r.verdict.kind, r.verdict.reason
                ));
            }
        }
        let _ = writeln!(s, "{}", row.trim_end());
        for d in details {
            let _ = writeln!(s, "{d}");
        }
    }
    let total = assessments.len();
    let killed = assessments.iter().filter(|a| a.killed()).count();
    let _ = writeln!(
        s,
        "\nlive mutation score: {killed}/{total} ({:.0}%, at least {MIN_LIVE_SCORE_PERCENT:.0}% required)",
        live_score_percent(assessments)
    );
    let explained = assessments
        .iter()
        .filter(|a| a.explanation().is_some())
        .count();
    let unexplained = assessments.iter().filter(|a| !a.acceptable()).count();
    if explained + unexplained > 0 {
        let _ = writeln!(
            s,
            "{explained} survivor(s) explained by cases the live backend cannot run; {unexplained} unexplained (marked !!)"
        );
    }
    s
}

/// `killed/total (P%)`.
pub fn score(assessments: &[Assessment]) -> String {
    let total = assessments.len();
    let killed = assessments.iter().filter(|a| a.killed()).count();
    let percent = if total == 0 {
        0.0
    } else {
        100.0 * killed as f64 / total as f64
    };
    format!("{killed}/{total} ({percent:.0}%)")
}

/// The IDs that killed a mutant, comma-separated; verdicts other than
/// FAIL are named (`client.reset-mid-poem (NON-STRICT)`).
fn killers(a: &Assessment) -> String {
    a.killers
        .iter()
        .map(|(id, kind)| match kind {
            Kind::Fail => id.clone(),
            other => format!("{id} ({other})"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What went wrong with a mutant's promises, if anything.
fn problems(a: &Assessment) -> Vec<String> {
    let mut out = Vec::new();
    if !a.killed() && !a.only_elsewhere() {
        out.push(format!(
            "survived all {} {} case(s)",
            a.cases_run, a.mutant.role
        ));
    }
    if !a.missed.is_empty() {
        out.push(format!("not killed by {}", a.missed.join(", ")));
    }
    if !a.unknown.is_empty() {
        out.push(format!(
            "no such {} case: {}",
            a.mutant.role,
            a.unknown.join(", ")
        ));
    }
    if a.mutant.killed_by.is_empty() {
        out.push("lists no killing case".into());
    }
    out
}

/// The kill matrix: one row per mutant with the cases that kill it, and
/// what it promised that did not happen.
fn matrix(assessments: &[Assessment]) -> String {
    let mut s = String::new();
    let width = assessments
        .iter()
        .map(|a| a.mutant.name.len())
        .chain(["MUTANT".len()])
        .max()
        .unwrap_or(0);
    let _ = writeln!(s, "{:<width$}  {:<16}  KILLED BY", "MUTANT", "ROLE");
    for a in assessments {
        let by = killers(a);
        let mut row = format!(
            "{:<width$}  {:<16}  {}",
            a.mutant.name,
            a.mutant.role.name(),
            if by.is_empty() { "SURVIVED" } else { &by }
        );
        if !a.elsewhere.is_empty() {
            let _ = write!(
                row,
                "  (listed, needs --engine simnet: {})",
                a.elsewhere.join(", ")
            );
        }
        let problems = problems(a);
        if !problems.is_empty() {
            let _ = write!(row, "  !! {}", problems.join("; "));
        }
        let _ = writeln!(s, "{}", row.trim_end());
    }
    let _ = writeln!(s, "\nmutation score: {}", score(assessments));
    let broken = assessments.iter().filter(|a| !a.as_promised()).count();
    if broken > 0 {
        let _ = writeln!(
            s,
            "{broken} mutant(s) survived or were not killed as listed (marked !!)"
        );
    }
    s
}

/// A Markdown table for the README: each mutant with the cases it lists
/// that did kill it, and how many other cases kill it too.
pub fn markdown(assessments: &[Assessment]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| Mutant | Role | Bug | Killed by | Status |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for a in assessments {
        let kind_of = |id: &str| {
            a.killers
                .iter()
                .find(|(k, _)| k == id)
                .map(|(_, kind)| *kind)
        };
        let mut by: Vec<String> = a
            .mutant
            .killed_by
            .iter()
            .filter_map(|id| {
                if a.elsewhere.contains(id) {
                    return Some(format!("`{id}` (simnet only)"));
                }
                kind_of(id).map(|kind| match kind {
                    Kind::Fail => format!("`{id}`"),
                    other => format!("`{id}` ({other})"),
                })
            })
            .collect();
        let others = a
            .killers
            .iter()
            .filter(|(id, _)| !a.mutant.killed_by.contains(&id.as_str()))
            .count();
        if others > 0 {
            by.push(format!(
                "{} other case{}",
                others,
                if others == 1 { "" } else { "s" }
            ));
        }
        let status = match problems(a) {
            p if p.is_empty() => "killed".to_string(),
            p => format!("**{}**", p.join("; ")),
        };
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} |",
            a.mutant.name,
            a.mutant.role,
            a.mutant.bug.replace('|', "\\|"),
            if by.is_empty() {
                "—".to_string()
            } else {
                by.join(", ")
            },
            status
        );
    }
    let _ = writeln!(s, "\nMutation score: **{}**", score(assessments));
    s
}

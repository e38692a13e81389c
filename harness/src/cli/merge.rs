//! `poetry-harness merge`: the JSON reports of shards, or of a class, as one.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indexmap::IndexSet;

use super::Exit;
use crate::merge::{self, Merged, Report};
use crate::report;

/// Merge the JSON reports of shards (or of a class) into one
///
/// Each input is a report `run --json` wrote. Shards of one run
/// (`run --shard K/N`) make one report, their cases back in catalog order;
/// with --matrix, the reports of many implementations (one per student)
/// make a matrix of implementations by cases.
///
/// Refused, naming the file and the field: a file that is not such a
/// report, a schema version this harness does not read, reports of
/// different implementations or profiles (without --matrix), shards of
/// different selections or counts, and a case or a shard given twice.
/// A shard missing, or a run that did not finish (interrupted, killed),
/// makes the merged report partial: its run.state says `partial` and
/// run.partial says why.
///
/// Exit status: 0 if the merged run is whole and no case failed, 1 if a
/// case failed (or was interrupted, or a harness error) or the merge is
/// partial, 2 for bad usage or a report that cannot be merged.
///
/// Examples:
///   poetry-harness run --shard 1/2 --json shard-1.json
///   poetry-harness run --shard 2/2 --json shard-2.json
///   poetry-harness merge shard-*.json --json all.json --junit all.xml
///   poetry-harness merge results/*.json --matrix class.md   # one report per student
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct MergeArgs {
    /// The JSON reports to merge.
    #[arg(required = true, value_name = "REPORT.json")]
    inputs: Vec<PathBuf>,
    /// Write the merged JSON report here (run --json's schema).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the merged JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a Markdown summary here: totals, score, what is missing, and
    /// the failing cases (e.g. "$GITHUB_STEP_SUMMARY").
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Reports of several implementations: group them by implementation,
    /// merge each group, and write the implementations-by-cases matrix
    /// here (HTML if the name ends in .html, else Markdown).
    #[arg(long, value_name = "FILE")]
    matrix: Option<PathBuf>,
    /// The catalog whose order the merged cases take (the one the runs
    /// used: a .toml file or a folder of them; default: the built-in one).
    #[arg(long, value_name = "PATH")]
    suites: Option<PathBuf>,
}

pub fn run(args: MergeArgs) -> anyhow::Result<Exit> {
    for (flag, path) in [
        ("--json", &args.json),
        ("--junit", &args.junit),
        ("--markdown", &args.markdown),
        ("--matrix", &args.matrix),
    ] {
        if let Some(path) = path {
            report::check_writable(flag, path).map_err(anyhow::Error::msg)?;
        }
    }
    let mut given = IndexSet::new();
    for path in &args.inputs {
        let same = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        if !given.insert(same) {
            anyhow::bail!("'{}' is given twice", path.display());
        }
    }
    let reports = args
        .inputs
        .iter()
        .map(|p| Report::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let catalog = super::run::load_catalog(args.suites.as_ref())?;
    let order: IndexSet<String> = catalog
        .select(&[])
        .into_iter()
        .map(|c| c.id.clone())
        .collect();
    let columns = if args.matrix.is_some() {
        merge::class(&reports, &order)?
    } else {
        vec![merge::merge(&reports, &order)?]
    };
    if columns.len() > 1 && (args.json.is_some() || args.junit.is_some() || args.markdown.is_some())
    {
        anyhow::bail!(
            "--json, --junit and --markdown take the reports of one implementation; these hold {} ({}): use --matrix alone, or merge each implementation's reports on its own",
            columns.len(),
            columns
                .iter()
                .map(|m| format!("'{}'", m.implementation))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let write = |path: &PathBuf, what: &str, text: String| {
        report::write_atomic(path, &text)
            .with_context(|| format!("cannot write {what} '{}'", path.display()))
    };
    if let [m] = columns.as_slice() {
        if let Some(path) = &args.json {
            write(path, "the JSON report", m.json())?;
        }
        if let Some(path) = &args.junit {
            write(path, "the JUnit report", m.junit())?;
        }
        if let Some(path) = &args.markdown {
            write(path, "the Markdown summary", m.markdown())?;
        }
    }
    let mut out = std::io::stdout().lock();
    if let Some(path) = &args.matrix {
        let html = path.extension().is_some_and(|e| e == "html");
        let markdown = merge::matrix_markdown(&columns, &order);
        let text = match html {
            true => merge::matrix_html(&columns, &order),
            false => markdown.clone(),
        };
        write(path, "the matrix", text)?;
        out.write_all(markdown.as_bytes())?;
        out.write_all(b"\n")?;
    }
    for m in &columns {
        out.write_all(summary(m).as_bytes())?;
    }
    out.flush()?;
    Ok(if columns.iter().all(Merged::passed) {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

/// What `merge` prints for one implementation: each failing case, the
/// totals, and why the merge is partial.
fn summary(m: &Merged) -> String {
    use crate::transcript::sanitise;
    use std::fmt::Write as _;
    let mut out = String::new();
    let failing: Vec<_> = m
        .cases
        .iter()
        .filter(|c| merge::label_fails(c["verdict"].as_str().unwrap_or_default(), m.profile))
        .collect();
    let width = failing
        .iter()
        .map(|c| c["id"].as_str().unwrap_or_default().len())
        .max()
        .unwrap_or(0);
    for c in &failing {
        let _ = writeln!(
            out,
            "{:<width$}  {:<11}  {}",
            sanitise(c["id"].as_str().unwrap_or_default()),
            c["verdict"].as_str().unwrap_or_default(),
            sanitise(c.get("reason").and_then(|r| r.as_str()).unwrap_or_default())
        );
    }
    let _ = writeln!(
        out,
        "{} case(s) of {} ({} profile) from {} report(s): {}",
        m.cases.len(),
        sanitise(&m.implementation),
        m.profile,
        m.from.len(),
        m.totals()
    );
    if let Some((earned, possible, _)) = m.score {
        let _ = writeln!(out, "score: {earned} of {possible} points");
    }
    for why in &m.partial {
        let _ = writeln!(out, "partial: {}", sanitise(why));
    }
    out
}

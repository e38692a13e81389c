//! `poetry-harness list` and `explain`: browse the catalog and the spec.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::run::load_catalog;
use super::Exit;

/// List the cases: ID, role, clauses and title
///
/// Example: poetry-harness list proxy.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only IDs starting with these prefixes.
    prefixes: Vec<String>,
    /// Read the catalog from this .toml file, or this folder of .toml
    /// files, instead of the built-in one.
    #[arg(long, value_name = "PATH")]
    suites: Option<PathBuf>,
}

pub fn list(args: ListArgs) -> anyhow::Result<Exit> {
    let catalog = load_catalog(args.suites.as_ref())?;
    let cases = catalog.select(&args.prefixes);
    if cases.is_empty() {
        // As `run` does: a selection that matches nothing is a mistake.
        anyhow::bail!(
            "no case matches '{}' (try: poetry-harness list)",
            args.prefixes.join(" ")
        );
    }
    let width = cases.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for c in &cases {
        writeln!(
            out,
            "{:<width$}  {:<16}  {:<22}  {}",
            c.id,
            c.role.name(),
            c.clauses.join(","),
            c.title
        )?;
    }
    writeln!(out, "{} case(s)", cases.len())?;
    Ok(Exit::Ok)
}

/// Explain a case (its peers, expectations and clauses) or a spec clause
///
/// Example: poetry-harness explain client.reset-mid-poem
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The case ID (or a clause ID such as CLIENT-5).
    id: String,
    /// Read the catalog from this .toml file, or this folder of .toml
    /// files, instead of the built-in one.
    #[arg(long, value_name = "PATH")]
    suites: Option<PathBuf>,
}

pub fn explain(args: ExplainArgs) -> anyhow::Result<Exit> {
    let catalog = load_catalog(args.suites.as_ref())?;
    let clauses = crate::spec::clauses();
    let mut out = std::io::stdout().lock();
    if let Some(clause) = clauses.get(&args.id) {
        writeln!(
            out,
            "{} ({}) {}\n\n{}\n",
            clause.id, clause.level, clause.title, clause.body
        )?;
        let citing: Vec<_> = catalog
            .cases
            .iter()
            .filter(|c| c.clauses.contains(&clause.id))
            .map(|c| c.id.as_str())
            .collect();
        writeln!(
            out,
            "cases citing it: {}",
            if citing.is_empty() {
                "none".into()
            } else {
                citing.join(", ")
            }
        )?;
        return Ok(Exit::Ok);
    }
    let Some(case) = catalog.get(&args.id) else {
        anyhow::bail!("no case or clause '{}' (try: poetry-harness list)", args.id);
    };
    out.write_all(crate::case::describe::case(case).as_bytes())?;
    for id in &case.clauses {
        if let Some(c) = clauses.get(id) {
            writeln!(out, "\n{} ({}) {}\n\n{}", c.id, c.level, c.title, c.body)?;
        }
    }
    Ok(Exit::Ok)
}

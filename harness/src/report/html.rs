//! The HTML matrix (`run --matrix FILE.html`, `run --html FILE`): a page a
//! teacher reads at a glance. A title saying what was run, a legend of the
//! verdicts, each implementation's totals (and score, under a grading
//! policy), the cases grouped by role with each role's totals, and every
//! cell a link to its reason and transcript further down the page.
//!
//! One standalone file: no script, no external resource, every text the
//! programs or the catalog wrote escaped.

use std::fmt::Write as _;

use super::{case_details, Column, Summary};
use crate::case::Role;
use crate::engine::{CaseResult, Status};
use crate::policy::Score;
use crate::transcript::sanitise;
use crate::verdict::Kind;

/// Every label a cell can show, with what it means, in the order the
/// legend lists them.
pub fn legend() -> Vec<(&'static str, &'static str)> {
    let kind = |k: Kind| match k {
        Kind::Pass => "did what the case expects",
        Kind::Fail => "broke a clause of the spec that no profile accepts",
        Kind::NonStrict => {
            "does what the tutorial's own programs do, which the strict profile does not \
             accept: a failure under the strict profile, a pass under the tutorial one"
        }
        Kind::Timeout => "did not finish by the case's time limit: a failure",
        Kind::Flaky => "passed some of its runs (--repeat) and failed others: a failure",
        Kind::Info => "behaviour recorded, not judged: never a failure",
        Kind::Unsupported => {
            "not run: the implementation does not play this role, declares it lacks the \
             feature, or only the simulator can run the case; never counted as passed"
        }
    };
    let status = |s: Status| match s {
        Status::Judged => "",
        Status::Interrupted => "not finished: the run was interrupted",
        Status::HarnessError => {
            "the harness failed, or the command could not run: not a verdict on the \
             implementation"
        }
    };
    Kind::ALL
        .into_iter()
        .map(|k| (k.label(), kind(k)))
        .chain(
            [Status::Interrupted, Status::HarnessError]
                .into_iter()
                .filter_map(|s| Some((s.label()?, status(s)))),
        )
        .collect()
}

/// `text` safe in HTML text and attribute values: control characters
/// escaped as the terminal report does, then the markup characters.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in sanitise(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1 case`, `2 cases`.
fn count(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// The anchor of the details of column `col`'s result for row `row`.
fn anchor(col: usize, row: usize) -> String {
    format!("r{col}-{row}")
}

/// The line under the title: how many implementations and cases, judged
/// how.
fn description(columns: &[Column]) -> String {
    let cases = columns.first().map_or(0, |(_, _, rs)| rs.len());
    let names: Vec<String> = columns
        .iter()
        .map(|(n, p, _)| format!("{} ({p} profile)", esc(n)))
        .collect();
    format!(
        "{} by {}: {}.",
        count(columns.len(), "implementation"),
        count(cases, "case"),
        names.join(", ")
    )
}

const STYLE: &str = "\
body{font-family:sans-serif;margin:1em 2em;color:#222}
table{border-collapse:collapse}
th,td{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top}
td,.id,pre,dt{font-family:monospace}
.title{font-size:smaller;color:#555;font-weight:normal}
tr.role th,tr.role td{background:#e8e8f0;font-weight:bold}
tr.totals th,tr.totals td{background:#f4f4f4;font-weight:bold}
td a{color:inherit;display:block}
.PASS{background:#cfc}.FAIL,.TIMEOUT,.FLAKY,.ERROR{background:#fcc}.NON-STRICT{background:#ffc}
.INFO,.UNSUPPORTED{background:#def}.INTERRUPTED{background:#ecf}
dl.legend{display:grid;grid-template-columns:max-content auto;gap:2px 1em}
dl.legend dt{padding:0 6px}dl.legend dd{margin:0}
section.detail{border-top:1px solid #ccc;margin-top:1em}
section.detail:target{background:#ffd}
pre{background:#f8f8f8;padding:6px;overflow-x:auto}
";

/// The matrix as a standalone HTML page.
pub fn matrix_html(columns: &[Column]) -> String {
    matrix_html_scored(columns, &[])
}

/// [`matrix_html`], each implementation's totals ending in its score
/// (`scores[i]` for column `i`) when a grading policy scores the run.
pub fn matrix_html_scored(columns: &[Column], scores: &[Option<Score>]) -> String {
    let rows = columns.first().map_or(&[][..], |(_, _, rs)| &rs[..]);
    let cases = rows.len();
    let title = match columns {
        [(name, _, _)] => format!("poetry-harness: {} on {}", esc(name), count(cases, "case")),
        _ => format!(
            "poetry-harness: {} by {}",
            count(columns.len(), "implementation"),
            count(cases, "case")
        ),
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <style>\n{STYLE}</style>\n<h1>{title}</h1>\n<p class=\"run\">{}</p>\n",
        description(columns)
    );
    out.push_str("<h2>Legend</h2>\n<dl class=\"legend\">\n");
    for (label, meaning) in legend() {
        let _ = writeln!(out, "<dt class=\"{label}\">{label}</dt><dd>{meaning}</dd>");
    }
    out.push_str(
        "</dl>\n<p>Click a verdict for its reason and transcript.</p>\n\
         <h2 id=\"matrix\">Matrix</h2>\n<table>\n<thead>\n<tr><th>case</th>",
    );
    for (n, p, _) in columns {
        let _ = write!(
            out,
            "<th>{}<div class=\"title\">{p} profile</div></th>",
            esc(n)
        );
    }
    out.push_str("</tr>\n<tr class=\"totals\"><th>total</th>");
    for (i, (_, p, rs)) in columns.iter().enumerate() {
        let _ = write!(out, "<td>{}", Summary::of(rs, *p));
        if let Some(Some(score)) = scores.get(i) {
            let _ = write!(out, "<br>{}", esc(&score.to_string()));
        }
        out.push_str("</td>");
    }
    out.push_str("</tr>\n</thead>\n");
    for role in Role::ALL {
        let in_role: Vec<usize> = (0..cases).filter(|&i| rows[i].case.role == role).collect();
        if in_role.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "<tbody id=\"role-{role}\">\n<tr class=\"role\"><th>{role} ({})</th>",
            count(in_role.len(), "case")
        );
        for (_, p, rs) in columns {
            let of_role: Vec<CaseResult> =
                in_role.iter().filter_map(|&i| rs.get(i)).cloned().collect();
            let _ = write!(out, "<td>{}</td>", Summary::of(&of_role, *p));
        }
        out.push_str("</tr>\n");
        for &i in &in_role {
            let case = &rows[i].case;
            let _ = write!(
                out,
                "<tr><th><span class=\"id\">{}</span><div class=\"title\">{}</div></th>",
                esc(&case.id),
                esc(&case.title)
            );
            for (col, (_, _, rs)) in columns.iter().enumerate() {
                match rs.get(i) {
                    Some(r) => {
                        let label = r.label();
                        let _ = write!(
                            out,
                            "<td class=\"{label}\"><a href=\"#{}\" title=\"{}\">{label}</a></td>",
                            anchor(col, i),
                            esc(&r.verdict.reason)
                        );
                    }
                    None => out.push_str("<td>-</td>"),
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n");
    }
    out.push_str("</table>\n<h2>Details</h2>\n");
    for (col, (name, profile, rs)) in columns.iter().enumerate() {
        for (i, r) in rs.iter().enumerate() {
            details(&mut out, &anchor(col, i), name, *profile, r);
        }
    }
    out.push_str("</html>\n");
    out
}

/// The section a cell links to: the case, the verdict and its reason,
/// then what the terminal shows for it (for a failure, the clauses,
/// checks, hints and the folded transcript; otherwise the whole
/// transcript).
fn details(
    out: &mut String,
    id: &str,
    name: &str,
    profile: crate::verdict::Profile,
    r: &CaseResult,
) {
    let label = r.label();
    let _ = write!(
        out,
        "<section class=\"detail\" id=\"{id}\">\n<h3><span class=\"id\">{}</span> against {}: \
         <span class=\"{label}\">{label}</span></h3>\n<p class=\"title\">{}</p>\n\
         <p class=\"reason\">{}</p>\n",
        esc(&r.case.id),
        esc(name),
        esc(&r.case.title),
        esc(&r.verdict.reason)
    );
    let fails = r.verdict.kind.fails(profile) || r.status != Status::Judged;
    let text = case_details(r, profile, !fails);
    if text.is_empty() {
        out.push_str("<p>No transcript: the case did not run.</p>\n");
    } else {
        out.push_str("<pre>");
        for line in text.lines() {
            let _ = writeln!(out, "{}", esc(line.strip_prefix("    ").unwrap_or(line)));
        }
        out.push_str("</pre>\n");
    }
    out.push_str("<p><a href=\"#matrix\">back to the matrix</a></p>\n</section>\n");
}

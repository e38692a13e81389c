//! Reports: the terminal table, JSON and JUnit.

use std::fmt::Write as _;
use std::io::IsTerminal;

use indexmap::IndexMap;

use crate::engine::CaseResult;
use crate::verdict::{Kind, Profile};

/// Counts per verdict kind, in a fixed order.
pub fn tally(results: &[CaseResult]) -> IndexMap<Kind, usize> {
    let mut t: IndexMap<Kind, usize> = [
        Kind::Pass,
        Kind::Fail,
        Kind::NonStrict,
        Kind::Timeout,
        Kind::Info,
        Kind::Unsupported,
    ]
    .into_iter()
    .map(|k| (k, 0))
    .collect();
    for r in results {
        *t.entry(r.verdict.kind).or_default() += 1;
    }
    t
}

fn colour(kind: Kind, text: &str, on: bool) -> String {
    if !on {
        return text.to_string();
    }
    let code = match kind {
        Kind::Pass => "32",
        Kind::Fail | Kind::Timeout => "31",
        Kind::NonStrict => "33",
        Kind::Info | Kind::Unsupported => "36",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Whether to colour stdout: a terminal, and NO_COLOR unset.
pub fn use_colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// The table: one line per case, the transcripts of failures, a summary.
pub fn table(
    results: &[CaseResult],
    impl_name: &str,
    profile: Profile,
    transcripts: bool,
    colour_on: bool,
) -> String {
    let mut out = String::new();
    let width = results.iter().map(|r| r.case.id.len()).max().unwrap_or(10);
    for r in results {
        let v = &r.verdict;
        let label = format!("{:<11}", v.kind.label());
        let _ = writeln!(
            out,
            "{:<width$}  {}  {}",
            r.case.id,
            colour(v.kind, &label, colour_on),
            v.reason
        );
        let show = transcripts || v.kind.fails(profile);
        if let (true, Some(o)) = (show, &r.outcome) {
            if v.kind.fails(profile) {
                for c in &v.failed {
                    let _ = writeln!(
                        out,
                        "    {}: expected {}\n    {}  received {}",
                        c.what,
                        c.expected,
                        " ".repeat(c.what.len()),
                        c.actual
                    );
                }
            }
            if o.tolerance.is_some() {
                let _ = writeln!(
                    out,
                    "    transcript (live run; times from when the subject was ready, or a client's first connection):"
                );
            } else {
                let _ = writeln!(
                    out,
                    "    transcript (seed {}, tick {}ms; replay: poetry-harness replay {} --seed {}):",
                    o.seed,
                    o.tick.as_millis(),
                    r.case.id,
                    o.seed
                );
            }
            for line in o.transcript.render().lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    let t = tally(results);
    let summary: Vec<String> = t
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{n} {}", k.label()))
        .collect();
    let _ = writeln!(
        out,
        "\n{} case(s) against {impl_name} ({profile:?} profile): {}",
        results.len(),
        summary.join(", ")
    );
    let failed = results
        .iter()
        .filter(|r| r.verdict.kind.fails(profile))
        .count();
    let passed = results.len() - failed;
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    out
}

/// One case in the JSON report.
#[derive(Debug, serde::Serialize)]
struct JsonCase<'a> {
    id: &'a str,
    title: &'a str,
    role: crate::case::Role,
    clauses: &'a [String],
    verdict: Kind,
    reason: &'a str,
    failed_checks: &'a [crate::verdict::Check],
    seed: Option<u64>,
    transcript: Option<String>,
}

/// The JSON report.
pub fn json(results: &[CaseResult], impl_name: &str, profile: Profile) -> String {
    let cases: Vec<JsonCase<'_>> = results
        .iter()
        .map(|r| JsonCase {
            id: &r.case.id,
            title: &r.case.title,
            role: r.case.role,
            clauses: &r.case.clauses,
            verdict: r.verdict.kind,
            reason: &r.verdict.reason,
            failed_checks: &r.verdict.failed,
            seed: r.outcome.as_ref().map(|o| o.seed),
            transcript: r.outcome.as_ref().map(|o| o.transcript.render()),
        })
        .collect();
    let doc = serde_json::json!({
        "implementation": impl_name,
        "profile": profile,
        "summary": tally(results).iter().map(|(k, n)| (k.label().to_string(), *n)).collect::<IndexMap<_, _>>(),
        "cases": cases,
    });
    serde_json::to_string_pretty(&doc).expect("report serialises")
}

/// The JUnit XML report: one testsuite per role, one testcase per case.
pub fn junit(results: &[CaseResult], impl_name: &str, profile: Profile) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new(format!("poetry-harness: {impl_name}"));
    for role in crate::case::Role::ALL {
        let mut suite = TestSuite::new(role.name());
        for r in results.iter().filter(|r| r.case.role == role) {
            let v = &r.verdict;
            let status = if v.kind.fails(profile) {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!("{}: {}", v.kind.label(), v.reason));
                s.set_type(v.kind.label());
                if let Some(o) = &r.outcome {
                    s.set_description(o.transcript.render());
                }
                s
            } else if matches!(v.kind, Kind::Unsupported) {
                let mut s = TestCaseStatus::skipped();
                s.set_message(v.reason.clone());
                s
            } else {
                TestCaseStatus::success()
            };
            let mut tc = TestCase::new(r.case.id.clone(), status);
            tc.set_classname(role.name());
            suite.add_test_case(tc);
        }
        if !suite.test_cases.is_empty() {
            report.add_test_suite(suite);
        }
    }
    report.to_string().expect("junit serialises")
}

/// One implementation's column of a matrix: name, profile, results.
pub type Column = (String, Profile, Vec<CaseResult>);

/// Implementations by cases, in Markdown: a row per case, a verdict per
/// implementation, and a summary row.
pub fn matrix_markdown(columns: &[Column]) -> String {
    let mut out = String::new();
    let names: Vec<String> = columns
        .iter()
        .map(|(n, p, _)| format!("{n} ({p:?})"))
        .collect();
    let _ = writeln!(out, "| case | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(columns.len()));
    let Some((_, _, first)) = columns.first() else {
        return out;
    };
    for (i, r) in first.iter().enumerate() {
        let cells: Vec<&str> = columns
            .iter()
            .map(|(_, _, rs)| rs.get(i).map_or("-", |r| r.verdict.kind.label()))
            .collect();
        let _ = writeln!(out, "| `{}` | {} |", r.case.id, cells.join(" | "));
    }
    let summary: Vec<String> = columns
        .iter()
        .map(|(_, p, rs)| {
            let failed = rs.iter().filter(|r| r.verdict.kind.fails(*p)).count();
            format!("{} passed, {failed} failed", rs.len() - failed)
        })
        .collect();
    let _ = writeln!(out, "| **total** | {} |", summary.join(" | "));
    out
}

/// The same matrix as a small standalone HTML page.
pub fn matrix_html(columns: &[Column]) -> String {
    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }
    let mut out = String::from("<!doctype html>\n<meta charset=\"utf-8\">\n<title>poetry-harness matrix</title>\n<style>td,th{padding:2px 8px;font-family:monospace}.PASS{background:#cfc}.FAIL,.TIMEOUT{background:#fcc}.NON-STRICT{background:#ffc}</style>\n<table>\n<tr><th>case</th>");
    for (n, p, _) in columns {
        let _ = write!(out, "<th>{} ({p:?})</th>", esc(n));
    }
    out.push_str("</tr>\n");
    if let Some((_, _, first)) = columns.first() {
        for (i, r) in first.iter().enumerate() {
            let _ = write!(out, "<tr><td>{}</td>", esc(&r.case.id));
            for (_, _, rs) in columns {
                let (label, reason) = rs.get(i).map_or(("-", String::new()), |r| {
                    (r.verdict.kind.label(), r.verdict.reason.clone())
                });
                let _ = write!(
                    out,
                    "<td class=\"{label}\" title=\"{}\">{label}</td>",
                    esc(&reason).replace('"', "&quot;")
                );
            }
            out.push_str("</tr>\n");
        }
    }
    out.push_str("</table>\n");
    out
}

//! `run --github`: what a GitHub Actions job shows without anyone
//! downloading a report. Each failing case becomes an error annotation
//! (workflow commands on stdout), and the job's summary page
//! (`$GITHUB_STEP_SUMMARY`) gets the run as Markdown: the totals, the
//! score under a grading policy, a table of every case and, folded under
//! each failure, the same explanation the terminal shows.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::engine::CaseResult;
use crate::policy::Scoring;
use crate::report;
use crate::transcript::sanitise;
use crate::verdict::Profile;

/// The environment variable naming the step summary file.
pub const SUMMARY_VAR: &str = "GITHUB_STEP_SUMMARY";

/// Where the summary goes: `$GITHUB_STEP_SUMMARY`, checked before the run
/// (an error naming the variable when it is missing, so a run outside
/// GitHub Actions is told at once, not after the whole run).
pub fn summary_path() -> Result<PathBuf, String> {
    match std::env::var_os(SUMMARY_VAR) {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(format!(
            "--github: {SUMMARY_VAR} is not set (it is inside a GitHub Actions job); \
             use --junit or --json elsewhere"
        )),
    }
}

/// One `::error` workflow command per failing case, in catalog order.
pub fn annotations(results: &[CaseResult], profile: Profile) -> String {
    let mut out = String::new();
    for r in results.iter().filter(|r| failed(r, profile)) {
        let title = format!("{} {}", r.label(), r.case.id);
        let message = format!("{}: {}", r.case.title, r.verdict.reason);
        let _ = writeln!(
            out,
            "::error title={}::{}",
            escape_property(&sanitise(&title)),
            escape_data(&sanitise(&message))
        );
    }
    out
}

/// The run as Markdown for the job's summary page.
pub fn summary(
    results: &[CaseResult],
    impl_name: &str,
    profile: Profile,
    scoring: Option<&Scoring>,
) -> String {
    let mut out = String::new();
    let failures: Vec<&CaseResult> = results.iter().filter(|r| failed(r, profile)).collect();
    let _ = writeln!(
        out,
        "## poetry-harness: {} ({profile} profile)\n",
        md_text(&sanitise(impl_name))
    );
    let totals: Vec<String> = report::tally(results)
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(label, n)| format!("{n} {label}"))
        .collect();
    let mark = if failures.is_empty() { "✅" } else { "❌" };
    let _ = writeln!(
        out,
        "{mark} {} case(s): {}\n",
        results.len(),
        totals.join(", ")
    );
    if let Some(scoring) = scoring {
        let _ = writeln!(
            out,
            "**{}**\n",
            md_text(&scoring.score(results, profile).to_string())
        );
    }
    if !failures.is_empty() {
        let _ = writeln!(out, "### Failures\n");
        for r in &failures {
            let _ = writeln!(
                out,
                "<details><summary><code>{}</code> {}: {}</summary>\n",
                html(&r.case.id),
                r.label(),
                html(&sanitise(&r.verdict.reason))
            );
            let _ = writeln!(
                out,
                "```text\n{}```\n</details>\n",
                fence_safe(&explain(r, profile))
            );
        }
    }
    let _ = writeln!(out, "### Every case\n");
    let _ = writeln!(out, "| case | verdict | reason |\n|---|---|---|");
    for r in results {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            r.case.id,
            r.label(),
            md_cell(&sanitise(&r.verdict.reason))
        );
    }
    out
}

/// What the terminal shows under one failing case, unindented.
fn explain(r: &CaseResult, profile: Profile) -> String {
    report::case_details(r, profile, false)
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .fold(String::new(), |mut out, l| {
            out.push_str(l);
            out.push('\n');
            out
        })
}

/// Appends the summary to `$GITHUB_STEP_SUMMARY` (other steps' and
/// tools' summaries stay) and prints the annotations on stdout.
pub fn publish(
    path: &std::path::Path,
    results: &[CaseResult],
    impl_name: &str,
    profile: Profile,
    scoring: Option<&Scoring>,
) -> Result<(), String> {
    use std::io::Write;
    let text = summary(results, impl_name, profile, scoring);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| {
            format!(
                "--github: cannot write the step summary '{}': {e}",
                path.display()
            )
        })?;
    let mut out = std::io::stdout().lock();
    out.write_all(annotations(results, profile).as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| format!("--github: cannot print the annotations: {e}"))
}

fn failed(r: &CaseResult, profile: Profile) -> bool {
    r.verdict.kind.fails(profile) || r.status.label().is_some()
}

/// A workflow command's message: `%`, CR and LF escaped.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property: also `:` and `,`.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Text inside HTML (the `<summary>` line).
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text in Markdown, outside a table.
fn md_text(s: &str) -> String {
    html(s)
}

/// A table cell: one line, no column break.
fn md_cell(s: &str) -> String {
    html(s).replace('|', "\\|").replace('\n', " ")
}

/// Text inside a ``` fence: a line of backticks in a program's output
/// must not close it.
fn fence_safe(s: &str) -> String {
    let mut out = s.replace("```", "ˋˋˋ");
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Kind, Verdict};

    fn result(id: &str, kind: Kind, reason: &str) -> CaseResult {
        let catalog = crate::catalog::Catalog::builtin().unwrap();
        let mut r = CaseResult::interrupted(catalog.get(id).unwrap());
        r.status = crate::engine::Status::Judged;
        r.verdict = Verdict {
            kind,
            reason: reason.into(),
            failed: Vec::new(),
            hints: Vec::new(),
        };
        r
    }

    #[test]
    fn one_error_annotation_per_failure_escaped() {
        let results = [
            result("client.fast-poem", Kind::Pass, "ok"),
            result("client.utf8-split", Kind::Fail, "100% wrong\nsecond line"),
        ];
        let a = annotations(&results, Profile::Strict);
        assert_eq!(a.lines().count(), 1, "{a}");
        assert!(
            a.starts_with("::error title=FAIL client.utf8-split::"),
            "{a}"
        );
        // The program's text is sanitised first (a newline shown as \n),
        // then escaped: it cannot end the command or start another.
        assert!(a.contains("100%25 wrong\\nsecond line"), "{a}");
        assert_eq!(escape_data("a\r\nb"), "a%0D%0Ab");
    }

    #[test]
    fn a_property_cannot_end_early() {
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
    }

    #[test]
    fn the_summary_folds_each_failure_and_lists_every_case() {
        let results = [
            result("client.fast-poem", Kind::Pass, "ok"),
            result("client.utf8-split", Kind::Fail, "got <b>|x</b>"),
        ];
        let md = summary(&results, "alice", Profile::Strict, None);
        assert!(
            md.contains("## poetry-harness: alice (strict profile)"),
            "{md}"
        );
        assert!(md.contains("❌ 2 case(s): 1 PASS, 1 FAIL"), "{md}");
        assert!(
            md.contains("<details><summary><code>client.utf8-split</code> FAIL: got &lt;b&gt;|x&lt;/b&gt;</summary>"),
            "{md}"
        );
        assert!(
            md.contains("| `client.utf8-split` | FAIL | got &lt;b&gt;\\|x&lt;/b&gt; |"),
            "{md}"
        );
        assert!(md.contains("| `client.fast-poem` | PASS | ok |"), "{md}");
        // Nothing fails: no failure section.
        let md = summary(&results[..1], "alice", Profile::Strict, None);
        assert!(md.contains("✅ 1 case(s): 1 PASS"), "{md}");
        assert!(!md.contains("### Failures"), "{md}");
    }

    #[test]
    fn backticks_in_output_cannot_close_the_fence() {
        assert_eq!(fence_safe("a\n```\nb"), "a\nˋˋˋ\nb\n");
    }

    #[test]
    fn without_the_variable_the_error_says_where_it_works() {
        if std::env::var_os(SUMMARY_VAR).is_none() {
            let e = summary_path().unwrap_err();
            assert!(e.contains("GITHUB_STEP_SUMMARY is not set"), "{e}");
        }
    }
}

//! Failure output that teaches: what a failed case shows under its verdict
//! line in the terminal report.
//!
//! In order: what the case checks, the text of the spec clauses it cites
//! (from the `suites/SPEC.md` built into the binary), each failed check as
//! expected against received in plain words with a byte-level diff where
//! bytes were compared, the hints whose symptoms the run shows (see
//! [`crate::hints`]), and the command that reproduces the run. The
//! transcript that follows is folded to its interesting part by
//! [`fold_transcript`].

use std::fmt::Write as _;

use crate::engine::CaseResult;
use crate::transcript::sanitise;
use crate::verdict::{Check, Kind, Profile};

/// Indentation of the block under a verdict line.
const INDENT: &str = "    ";

/// Failed checks shown in full; the rest are named in one line.
pub const CHECKS_SHOWN: usize = 3;

/// Width hints are wrapped to.
const WRAP: usize = 78;

/// Transcripts longer than this many lines are folded.
pub const FOLD_OVER: usize = 40;

/// Lines kept at the start of a folded transcript.
const HEAD: usize = 8;

/// Lines kept at the end of a folded transcript.
const TAIL: usize = 6;

/// Lines kept on each side of a line the failure points at.
const AROUND: usize = 3;

/// Words of `text` wrapped to [`WRAP`] columns, the first line after
/// `first`, the others after as many spaces.
fn wrapped(first: &str, text: &str) -> String {
    let pad = " ".repeat(first.chars().count());
    let mut out = String::new();
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > WRAP {
            out.push_str(line.trim_end());
            out.push('\n');
            line = pad.clone();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// The clauses to quote for a result: those the case cites, then the
/// clauses the shared verifiers check in every case of its role when one
/// of their checks failed (the exit status, a failure's reason).
fn clauses_of(r: &CaseResult) -> Vec<String> {
    let mut ids = r.case.clauses.clone();
    let implied = r
        .verdict
        .failed
        .iter()
        .any(|c| c.what == "exit status" || c.what.ends_with(" reason"));
    if implied {
        for id in crate::verdict::implied_clauses(r.case.role) {
            if !ids.iter().any(|i| i == id) {
                ids.push((*id).to_string());
            }
        }
    }
    ids
}

/// The clause `id` as the failure block quotes it: its heading, then its
/// paragraphs under a bar; the tutorial paragraph only when `tutorial`
/// (a NON-STRICT verdict, which that paragraph explains).
pub fn quote_clause(id: &str, tutorial: bool) -> String {
    let Some(c) = crate::spec::shipped().get(id) else {
        return format!("{INDENT}spec: {id} (not in SPEC.md)\n");
    };
    let mut out = format!("{INDENT}spec: {} ({}) {}\n", c.id, c.level, c.title);
    let mut first = true;
    for para in c.body.split("\n\n") {
        if !tutorial && para.trim_start().starts_with("Tutorial profile") {
            continue;
        }
        if !first {
            let _ = writeln!(out, "{INDENT}  |");
        }
        first = false;
        for line in para.lines() {
            let _ = writeln!(out, "{INDENT}  | {line}");
        }
    }
    out
}

/// One failed check: what was checked, expected and received in words,
/// and where bytes were compared, the window around their first
/// difference.
fn check(out: &mut String, r: &CaseResult, c: &Check) {
    let about = match c.peer(&r.case) {
        Some(p) if c.what.starts_with("result ") || c.what.starts_with("output ") => {
            format!(" (the download from {})", sanitise(&p))
        }
        _ => String::new(),
    };
    let _ = writeln!(out, "{INDENT}failed: {}{about}", sanitise(&c.what));
    let _ = writeln!(out, "{INDENT}    expected: {}", sanitise(&c.expected));
    let _ = writeln!(out, "{INDENT}    received: {}", sanitise(&c.actual));
    let Some(b) = &c.compared else {
        return;
    };
    // Nothing against something needs no window: `received` says it.
    if b.expected_len == 0 || b.received_len == 0 {
        return;
    }
    let diff =
        crate::byte_diff::render_cut(&b.expected, &b.received, b.expected_len, b.received_len);
    match diff {
        Some(diff) => {
            for line in diff.lines() {
                let _ = writeln!(out, "{INDENT}    {line}");
            }
        }
        None if b.expected_len != b.received_len => {
            let _ = writeln!(
                out,
                "{INDENT}    the first {} bytes agree; {} bytes expected in all, {} received",
                b.expected.len(),
                b.expected_len,
                b.received_len
            );
        }
        None => {}
    }
}

/// The block shown under a failed case's verdict line: the case's title,
/// the clauses it checks, the failed checks, the hints and the command
/// that reproduces the run (the transcript comes after it).
pub fn details(r: &CaseResult, profile: Profile) -> String {
    let v = &r.verdict;
    let mut out = String::new();
    let _ = writeln!(out, "{INDENT}case: {}", r.case.title);
    for id in clauses_of(r) {
        out.push_str(&quote_clause(&id, v.kind == Kind::NonStrict));
    }
    if v.kind == Kind::Timeout {
        out.push_str(&wrapped(
            &format!("{INDENT}failed: "),
            &format!(
                "the run did not end by the case's time limit ({}); the end of the transcript shows what the program was still waiting for",
                r.case.limit
            ),
        ));
    }
    for c in v.failed.iter().take(CHECKS_SHOWN) {
        check(&mut out, r, c);
    }
    if v.failed.len() > CHECKS_SHOWN {
        let rest: Vec<String> = v.failed[CHECKS_SHOWN..]
            .iter()
            .map(|c| sanitise(&c.what).into_owned())
            .collect();
        let named = rest.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
        let more = if rest.len() > 8 { ", ..." } else { "" };
        let _ = writeln!(
            out,
            "{INDENT}and {} more failed check(s): {named}{more}",
            rest.len()
        );
    }
    for h in &v.hints {
        out.push_str(&wrapped(&format!("{INDENT}hint: "), &sanitise(&h.text)));
    }
    let _ = profile;
    out
}

/// The command that reproduces a simulated run, judged by `profile`.
pub fn reproduce(r: &CaseResult, profile: Profile) -> Option<String> {
    let replay = r.outcome.as_ref()?.replay.clone()?;
    Some(sanitise(&replay.judged_by(profile).to_string()).into_owned())
}

/// For a live run of a client, transforming client or proxy case: the
/// command that serves the case's scripted servers by hand
/// (`poetry-harness serve case ID`), to run the program against them in a
/// debugger. A live run cannot be replayed; this is the nearest thing.
pub fn by_hand(r: &CaseResult) -> Option<String> {
    let live = r.outcome.as_ref()?.tolerance.is_some();
    let served = matches!(
        r.case.role,
        crate::case::Role::Client | crate::case::Role::TransformClient | crate::case::Role::Proxy
    );
    if !live || !served || crate::backend::live::live_unsupported(&r.case).is_some() {
        return None;
    }
    let suites = r.case.source.as_ref().map_or(String::new(), |p| {
        format!(
            " --suites {}",
            crate::backend::live::template::shell_quote(&p.display().to_string())
        )
    });
    Some(sanitise(&format!("poetry-harness serve case {}{suites}", r.case.id)).into_owned())
}

/// Who speaks on a rendered transcript line: the word after the time, or
/// the first word of an untimed line.
fn speaker(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    let first = words.next()?;
    let is_time = first
        .strip_suffix('s')
        .is_some_and(|t| t.trim_start_matches('-').parse::<f64>().is_ok());
    if is_time {
        words.next()
    } else {
        Some(first)
    }
}

/// The lines of `transcript` a failure points at: the first and last
/// lines of the peer its first failed check is about, and the subject's
/// line giving the result it checks.
fn focus(r: &CaseResult, lines: &[&str]) -> Vec<usize> {
    let Some(c) = r.verdict.failed.first() else {
        return Vec::new();
    };
    let mut at = Vec::new();
    if let Some(peer) = c.peer(&r.case) {
        let of_peer: Vec<usize> = (0..lines.len())
            .filter(|&i| speaker(lines[i]) == Some(peer.as_str()))
            .collect();
        at.extend(of_peer.first());
        at.extend(of_peer.last());
    }
    if let Some(n) = c.what.strip_prefix("result ") {
        let said = format!("result {}:", n.split(' ').next().unwrap_or(n));
        at.extend(
            (0..lines.len())
                .find(|&i| speaker(lines[i]) == Some("subject") && lines[i].contains(&said)),
        );
    }
    at.sort_unstable();
    at.dedup();
    at
}

/// `transcript` (rendered) with its middle folded when it is longer than
/// [`FOLD_OVER`] lines: the first lines, the lines around those the failure
/// points at, and the last lines are kept, each run of the others replaced
/// by `… N lines folded …`.
pub fn fold_transcript(r: &CaseResult, transcript: &str) -> String {
    let lines: Vec<&str> = transcript.lines().collect();
    let focus = focus(r, &lines);
    fold(&lines, &focus)
}

/// [`fold_transcript`] on lines, keeping those around `focus`.
pub fn fold(lines: &[&str], focus: &[usize]) -> String {
    let n = lines.len();
    let mut out = String::new();
    if n <= FOLD_OVER {
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
        return out;
    }
    let mut keep = vec![false; n];
    for k in keep.iter_mut().take(HEAD) {
        *k = true;
    }
    for k in keep.iter_mut().skip(n - TAIL) {
        *k = true;
    }
    for &f in focus {
        for k in keep
            .iter_mut()
            .take((f + AROUND + 1).min(n))
            .skip(f.saturating_sub(AROUND))
        {
            *k = true;
        }
    }
    let mut i = 0;
    while i < n {
        if keep[i] {
            out.push_str(lines[i]);
            out.push('\n');
            i += 1;
            continue;
        }
        let start = i;
        while i < n && !keep[i] {
            i += 1;
        }
        if i - start == 1 {
            out.push_str(lines[start]);
            out.push('\n');
        } else {
            let _ = writeln!(out, "    … {} lines folded …", i - start);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_transcript_is_not_folded() {
        let lines: Vec<String> = (0..FOLD_OVER).map(|i| format!("line {i}")).collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert_eq!(fold(&lines, &[]).lines().count(), FOLD_OVER);
    }

    #[test]
    fn a_long_transcript_keeps_head_focus_and_tail() {
        let lines: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let text = fold(&lines, &[50]);
        let kept: Vec<&str> = text.lines().collect();
        assert_eq!(kept[0], "line 0");
        assert_eq!(kept[HEAD - 1], "line 7");
        assert_eq!(kept[HEAD], "    … 39 lines folded …");
        assert_eq!(kept[HEAD + 1], "line 47");
        assert!(
            text.contains("line 53\n    … 40 lines folded …\nline 94\n"),
            "{text}"
        );
        assert_eq!(kept.last(), Some(&"line 99"));
    }

    #[test]
    fn one_hidden_line_is_shown_rather_than_folded() {
        let lines: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        // Head 0-7, focus 12 keeps 9-15: line 8 alone between them.
        let text = fold(&lines, &[12]);
        assert!(text.contains("line 7\nline 8\nline 9\n"), "{text}");
    }

    #[test]
    fn the_speaker_is_read_with_or_without_a_time() {
        assert_eq!(speaker("    0.050s  s1         send 3 bytes"), Some("s1"));
        assert_eq!(speaker("   -0.100s  subject    start"), Some("subject"));
        assert_eq!(speaker("c1-2       recv x4"), Some("c1-2"));
    }

    #[test]
    fn a_clause_is_quoted_without_its_tutorial_paragraph_unless_asked() {
        let strict = quote_clause("CLIENT-5", false);
        assert!(strict.starts_with("    spec: CLIENT-5 (MUST) "), "{strict}");
        assert!(!strict.contains("Tutorial profile"), "{strict}");
        assert!(quote_clause("CLIENT-5", true).contains("Tutorial profile"));
    }

    #[test]
    fn hints_wrap_under_their_label() {
        let text = wrapped("    hint: ", &"word ".repeat(30));
        for line in text.lines() {
            assert!(line.chars().count() <= WRAP, "{line}");
        }
        assert!(text.lines().nth(1).unwrap().starts_with("          word"));
    }
}

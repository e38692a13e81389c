//! Reports: the terminal table, JSON, JUnit, the matrix (Markdown and
//! [`mod@html`]) and Gradescope's `results.json` ([`mod@gradescope`]), and the
//! [`Sink`] that keeps a run's report files on disk as it goes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use indexmap::IndexMap;

use crate::engine::{CaseResult, Status};
use crate::policy::Scoring;
use crate::transcript::{sanitise, sanitise_lines};
use crate::verdict::{Kind, Profile};

pub mod gradescope;
pub mod html;
pub mod terminal;

pub use gradescope::gradescope;
pub use html::{matrix_html, matrix_html_scored};

/// Counts per label (verdict kind, or `INTERRUPTED` / `ERROR`), in a
/// fixed order.
pub fn tally(results: &[CaseResult]) -> IndexMap<&'static str, usize> {
    let mut t: IndexMap<&'static str, usize> = Kind::ALL
        .into_iter()
        .map(|k| (k.label(), 0))
        .chain([("INTERRUPTED", 0), ("ERROR", 0)])
        .collect();
    for r in results {
        *t.entry(r.label()).or_default() += 1;
    }
    t
}

/// The summary of a run: every case counted once. UNSUPPORTED is never
/// counted as passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Judged and not failing under the profile (PASS, INFO, and
    /// NON-STRICT under the tutorial profile).
    pub passed: usize,
    /// Judged and failing under the profile.
    pub failed: usize,
    /// Not run: the implementation does not do this, or only the simulator can.
    pub unsupported: usize,
    /// Not finished: the run was interrupted.
    pub interrupted: usize,
    /// The harness failed, or the command could not run.
    pub errors: usize,
}

impl Summary {
    /// Counts `results` under `profile`.
    pub fn of(results: &[CaseResult], profile: Profile) -> Self {
        let mut s = Summary::default();
        for r in results {
            match r.status {
                Status::Interrupted => s.interrupted += 1,
                Status::HarnessError => s.errors += 1,
                Status::Judged if r.verdict.kind == Kind::Unsupported => s.unsupported += 1,
                Status::Judged if r.verdict.kind.fails(profile) => s.failed += 1,
                Status::Judged => s.passed += 1,
            }
        }
        s
    }
}

impl std::fmt::Display for Summary {
    /// `63 passed, 0 failed, 48 unsupported`, then interrupted cases and
    /// harness errors when there are any.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} unsupported",
            self.passed, self.failed, self.unsupported
        )?;
        if self.interrupted > 0 {
            write!(f, ", {} interrupted", self.interrupted)?;
        }
        if self.errors > 0 {
            write!(f, ", {} harness error(s)", self.errors)?;
        }
        Ok(())
    }
}

fn colour(r: &CaseResult, text: &str, on: bool) -> String {
    if !on {
        return text.to_string();
    }
    let code = match (r.status, r.verdict.kind) {
        (Status::Interrupted | Status::HarnessError, _) => "35",
        (_, Kind::Pass) => "32",
        (_, Kind::Fail | Kind::Timeout | Kind::Flaky) => "31",
        (_, Kind::NonStrict) => "33",
        (_, Kind::Info | Kind::Unsupported) => "36",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Whether to colour stdout, as `--color` chose (see
/// [`terminal::colour_wanted`]; `auto` unless a command set it).
pub fn use_colour() -> bool {
    terminal::use_colour()
}

/// The table: one line per case, the transcripts of failures, a summary.
pub fn table(
    results: &[CaseResult],
    impl_name: &str,
    profile: Profile,
    transcripts: bool,
    colour_on: bool,
) -> String {
    table_scored(results, impl_name, profile, transcripts, colour_on, None)
}

/// [`table`], its footer ending in the score when a grading policy
/// scores the run.
pub fn table_scored(
    results: &[CaseResult],
    impl_name: &str,
    profile: Profile,
    transcripts: bool,
    colour_on: bool,
    scoring: Option<&Scoring>,
) -> String {
    let mut out = String::new();
    let width = id_width(results.iter().map(|r| &r.case));
    for r in results {
        out.push_str(&case_line(r, width, colour_on));
        out.push_str(&case_details(r, profile, transcripts));
    }
    out.push_str(&footer(results, impl_name, profile, scoring));
    out
}

/// The width of the ID column for these cases.
pub fn id_width<'a>(cases: impl Iterator<Item = &'a crate::case::Case>) -> usize {
    cases.map(|c| c.id.len()).max().unwrap_or(10)
}

/// A case's line in the table: its ID, its label (coloured when
/// `colour_on`) and its reason.
pub fn case_line(r: &CaseResult, width: usize, colour_on: bool) -> String {
    let label = format!("{:<11}", r.label());
    format!(
        "{:<width$}  {}  {}\n",
        r.case.id,
        colour(r, &label, colour_on),
        sanitise(&r.verdict.reason)
    )
}

/// The table's footer: a blank line, the count of each label, the
/// [`Summary`] and, when a grading policy scores the run, the score.
pub fn footer(
    results: &[CaseResult],
    impl_name: &str,
    profile: Profile,
    scoring: Option<&Scoring>,
) -> String {
    let mut out = String::new();
    let t = tally(results);
    let summary: Vec<String> = t
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(label, n)| format!("{n} {label}"))
        .collect();
    let _ = writeln!(
        out,
        "\n{} case(s) against {} ({profile} profile): {}",
        results.len(),
        sanitise(impl_name),
        summary.join(", ")
    );
    let _ = writeln!(out, "{}", Summary::of(results, profile));
    if let Some(scoring) = scoring {
        let _ = writeln!(out, "{}", scoring.score(results, profile));
    }
    out
}

/// What the table shows under a case's line: for a failure (or every case
/// with `transcripts`), the explanation (clauses, checks, hints), the
/// command that reproduces it and the transcript, each line indented.
/// Empty for a case that passed. Also the body of each failure in
/// `run --github`'s summary.
pub fn case_details(r: &CaseResult, profile: Profile, transcripts: bool) -> String {
    let mut out = String::new();
    let v = &r.verdict;
    let show = transcripts || v.kind.fails(profile);
    if let (true, Some(o)) = (show, &r.outcome) {
        // An interrupted case's checks judge a killed program: noise.
        let teach = v.kind.fails(profile) && r.status == Status::Judged;
        if teach {
            out.push_str(&crate::failure::details(r, profile));
        }
        // The command comes from what the run used (see crate::replay):
        // it repeats this transcript byte for byte.
        if let Some(command) = crate::failure::reproduce(r, profile) {
            let _ = writeln!(out, "    reproduce: {command}");
        }
        if teach {
            if let Some(command) = crate::failure::by_hand(r) {
                let _ = writeln!(
                    out,
                    "    by hand: {command} (its servers on 127.0.0.1, and the command line to run against them)"
                );
            }
        }
        if o.tolerance.is_some() {
            let _ = writeln!(
                out,
                "    transcript (live run; times from when the subject was ready, or a client's first connection):"
            );
        } else {
            // turmoil moves in ticks; simnet jumps from event to event
            // (its outcome's tick is a nanosecond: none to show).
            let tick = if o.tick.as_millis() == 0 {
                String::new()
            } else {
                format!(", tick {}ms", o.tick.as_millis())
            };
            let _ = writeln!(
                out,
                "    transcript ({}{tick}):",
                o.replay
                    .as_ref()
                    .map_or_else(|| format!("seed {}", o.seed), |r| r.run.to_string()),
            );
        }
        let text = sanitise_lines(&o.transcript.render());
        // Every line when asked for (--transcripts, replay); a
        // failure's folded to what matters otherwise.
        let text = if transcripts {
            text
        } else {
            crate::failure::fold_transcript(r, &text)
        };
        for line in text.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    out
}

/// One case in the JSON report.
#[derive(Debug, serde::Serialize)]
struct JsonCase<'a> {
    id: &'a str,
    title: &'a str,
    role: crate::case::Role,
    clauses: &'a [String],
    verdict: &'static str,
    reason: String,
    failed_checks: Vec<crate::verdict::Check>,
    seed: Option<u64>,
    /// Wall time the harness spent on the case, in seconds.
    duration_s: f64,
    /// The case's length on its transcript's clock, in seconds: simulated
    /// time in the simulator (exact), wall time live.
    transcript_span_s: Option<f64>,
    /// The command that repeats a simulated run byte for byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    replay: Option<String>,
    /// With `run --repeat N`: runs, runs passed, pass rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    repeats: Option<crate::repeat::Repeats>,
    transcript: Option<String>,
}

/// A failed check with the program's text in it escaped.
fn sanitised_check(c: &crate::verdict::Check) -> crate::verdict::Check {
    crate::verdict::Check {
        what: sanitise(&c.what).into_owned(),
        expected: sanitise(&c.expected).into_owned(),
        actual: sanitise(&c.actual).into_owned(),
        ..c.clone()
    }
}

/// The JSON report's `schema_version`: raised when a field changes
/// meaning or goes away (new fields do not raise it).
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// The JSON report of a finished run.
pub fn json(results: &[CaseResult], impl_name: &str, profile: Profile) -> String {
    json_with(results, impl_name, profile, &RunState::Complete, None)
}

/// The harness's own peak resident memory so far, in KiB, for the JSON
/// report's `run.peak_rss_kib`: this process only, not the programs it
/// runs. Read from `VmHWM` in `/proc/self/status`, the peak of this
/// process's own memory: `getrusage(RUSAGE_SELF).ru_maxrss` also counts
/// the memory of the process image replaced at `exec` (the parent's, for
/// a `vfork`ed or freshly forked harness: `cargo`, a shell, a CI runner),
/// so it is only the fallback where `/proc` is not mounted.
pub fn peak_rss_kib() -> Option<u64> {
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        });
    from_proc.or_else(|| {
        let usage =
            nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).ok()?;
        // Kilobytes on Linux.
        u64::try_from(usage.max_rss()).ok()
    })
}

/// How far a run got when a report was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Every case has a result.
    Complete,
    /// Written as cases finish: these results so far, of this many cases.
    Running {
        /// Cases in the whole run.
        of: usize,
    },
    /// Stopped by this signal (its name, e.g. `SIGTERM`).
    Interrupted(String),
}

/// The JSON report, saying how far the run got (`complete`, `running`
/// with the number of cases, or `interrupted` with the signal), with a
/// `score` (`earned`, `possible`, `not_counted`) when a grading policy
/// scores the run.
pub fn json_with(
    results: &[CaseResult],
    impl_name: &str,
    profile: Profile,
    state: &RunState,
    scoring: Option<&Scoring>,
) -> String {
    json_with_run_fields(
        results,
        impl_name,
        profile,
        state,
        scoring,
        &RunFields::new(),
    )
}

/// More fields of the JSON report's `run` object (`run --shard` adds
/// `shard` and `selection`; see `crate::merge`).
pub type RunFields = serde_json::Map<String, serde_json::Value>;

/// [`json_with`], with `extra` fields in `run`.
pub fn json_with_run_fields(
    results: &[CaseResult],
    impl_name: &str,
    profile: Profile,
    state: &RunState,
    scoring: Option<&Scoring>,
    extra: &RunFields,
) -> String {
    let cases: Vec<JsonCase<'_>> = results
        .iter()
        .map(|r| JsonCase {
            id: &r.case.id,
            title: &r.case.title,
            role: r.case.role,
            clauses: &r.case.clauses,
            verdict: r.label(),
            reason: sanitise(&r.verdict.reason).into_owned(),
            failed_checks: r.verdict.failed.iter().map(sanitised_check).collect(),
            seed: r.outcome.as_ref().map(|o| o.seed),
            duration_s: r.wall.as_secs_f64(),
            transcript_span_s: r
                .outcome
                .as_ref()
                .map(|o| o.transcript.span().as_secs_f64()),
            replay: r
                .outcome
                .as_ref()
                .and_then(|o| o.replay.clone())
                .map(|replay| sanitise(&replay.judged_by(profile).to_string()).into_owned()),
            repeats: r.repeats,
            transcript: r
                .outcome
                .as_ref()
                .map(|o| sanitise_lines(&o.transcript.render())),
        })
        .collect();
    let mut run = match state {
        RunState::Complete => serde_json::json!({ "state": "complete" }),
        RunState::Running { of } => serde_json::json!({ "state": "running", "cases": of }),
        RunState::Interrupted(signal) => {
            serde_json::json!({ "state": "interrupted", "signal": signal })
        }
    };
    if let Some(kib) = peak_rss_kib() {
        run["peak_rss_kib"] = kib.into();
    }
    for (k, v) in extra {
        run[k] = v.clone();
    }
    let mut doc = serde_json::json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "implementation": sanitise(impl_name),
        "profile": profile,
        "run": run,
        "summary": tally(results).iter().map(|(k, n)| (k.to_string(), *n)).collect::<IndexMap<_, _>>(),
        "totals": Summary::of(results, profile),
        "cases": cases,
    });
    if let Some(scoring) = scoring {
        doc["score"] = serde_json::json!(scoring.score(results, profile));
    }
    serde_json::to_string_pretty(&doc).expect("report serialises")
}

/// The JUnit XML report: one testsuite per role, one testcase per case,
/// each with its wall time (`time`), skips as `skipped` (the count too, as
/// the common junit-10.xsd has it), and `started` as every suite's
/// `timestamp`.
pub fn junit(
    results: &[CaseResult],
    impl_name: &str,
    profile: Profile,
    started: std::time::SystemTime,
) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let started = chrono::DateTime::<chrono::Utc>::from(started).fixed_offset();
    let mut report = Report::new(format!("poetry-harness: {}", sanitise(impl_name)));
    report.set_timestamp(started);
    report.set_time(results.iter().map(|r| r.wall).sum());
    for role in crate::case::Role::ALL {
        let mut suite = TestSuite::new(role.name());
        suite.set_timestamp(started);
        for r in results.iter().filter(|r| r.case.role == role) {
            let v = &r.verdict;
            let status = if let Some(label) = r.status.label() {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_message(format!("{label}: {}", sanitise(&v.reason)));
                s.set_type(label);
                if let Some(o) = &r.outcome {
                    s.set_description(sanitise_lines(&o.transcript.render()));
                }
                s
            } else if v.kind.fails(profile) {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!("{}: {}", v.kind.label(), sanitise(&v.reason)));
                s.set_type(v.kind.label());
                if let Some(o) = &r.outcome {
                    s.set_description(sanitise_lines(&o.transcript.render()));
                }
                s
            } else if matches!(v.kind, Kind::Unsupported) {
                let mut s = TestCaseStatus::skipped();
                s.set_message(sanitise(&v.reason).into_owned());
                s
            } else {
                TestCaseStatus::success()
            };
            let mut tc = TestCase::new(r.case.id.clone(), status);
            tc.set_classname(role.name());
            tc.set_time(r.wall);
            suite.add_test_case(tc);
        }
        let in_suite = || results.iter().filter(|r| r.case.role == role);
        suite.set_time(in_suite().map(|r| r.wall).sum());
        // The cases given `TestCaseStatus::skipped()` above.
        let skipped = in_suite()
            .filter(|r| r.status.label().is_none() && r.verdict.kind == Kind::Unsupported)
            .count();
        suite
            .extra
            .insert("skipped".into(), skipped.to_string().into());
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
        .map(|(n, p, _)| format!("{} ({p})", sanitise(n).replace('|', "\\|")))
        .collect();
    let _ = writeln!(out, "| case | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(columns.len()));
    let Some((_, _, first)) = columns.first() else {
        return out;
    };
    for (i, r) in first.iter().enumerate() {
        let cells: Vec<&str> = columns
            .iter()
            .map(|(_, _, rs)| rs.get(i).map_or("-", |r| r.label()))
            .collect();
        let _ = writeln!(out, "| `{}` | {} |", r.case.id, cells.join(" | "));
    }
    let summary: Vec<String> = columns
        .iter()
        .map(|(_, p, rs)| Summary::of(rs, *p).to_string())
        .collect();
    let _ = writeln!(out, "| **total** | {} |", summary.join(" | "));
    out
}

/// Writes `text` to `path` atomically: a temporary file in the same
/// folder, renamed over `path`, so a reader (or a killed harness) never
/// sees half a report.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Readable as any file the user writes (0666 less the umask), not the
    // 0600 of a temporary file: a teacher may serve the HTML page.
    let mut tmp = tempfile::Builder::new()
        .prefix(".poetry-harness-report-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Checks that a report can be written at `path` (given with `flag`): a
/// temporary file can be made in its folder, and it is not a folder.
pub fn check_writable(flag: &str, path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!("{flag} '{}' is a directory", path.display()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".poetry-harness-report-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| format!("{flag} '{}' cannot be written: {e}", path.display()))
}

/// Where a run writes its report files; each is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportPaths {
    /// `--junit`: JUnit XML.
    pub junit: Option<PathBuf>,
    /// `--json`: the JSON report.
    pub json: Option<PathBuf>,
    /// `--gradescope`: Gradescope's `results.json`.
    pub gradescope: Option<PathBuf>,
    /// `--html`: the HTML matrix of this one implementation.
    pub html: Option<PathBuf>,
}

/// A kind of report file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFile {
    /// JUnit XML.
    Junit,
    /// The JSON report.
    Json,
    /// Gradescope's `results.json`.
    Gradescope,
    /// The HTML matrix.
    Html,
}

impl ReportFile {
    /// The flag that names its path.
    pub fn flag(self) -> &'static str {
        match self {
            ReportFile::Junit => "--junit",
            ReportFile::Json => "--json",
            ReportFile::Gradescope => "--gradescope",
            ReportFile::Html => "--html",
        }
    }

    /// What it is, in messages.
    fn what(self) -> &'static str {
        match self {
            ReportFile::Junit => "JUnit report",
            ReportFile::Json => "JSON report",
            ReportFile::Gradescope => "Gradescope results",
            ReportFile::Html => "HTML matrix",
        }
    }
}

impl ReportPaths {
    /// Each path given, with the kind of report it is for.
    pub fn given(&self) -> Vec<(ReportFile, &Path)> {
        [
            (ReportFile::Junit, &self.junit),
            (ReportFile::Json, &self.json),
            (ReportFile::Gradescope, &self.gradescope),
            (ReportFile::Html, &self.html),
        ]
        .into_iter()
        .filter_map(|(kind, p)| Some((kind, p.as_deref()?)))
        .collect()
    }
}

/// The report files of one run (JUnit, JSON, Gradescope, HTML), kept on
/// disk as it goes: each finished case rewrites them (when streaming), an
/// interrupt writes them with the unfinished cases marked, and the end of
/// the run writes them whole. A harness killed outright still leaves
/// every case finished before its last rewrite readable.
#[derive(Debug)]
pub struct Sink {
    paths: ReportPaths,
    name: String,
    profile: Profile,
    cases: Vec<crate::case::Case>,
    index: IndexMap<String, usize>,
    done: Mutex<Vec<Option<CaseResult>>>,
    stream: bool,
    /// Taken by whoever writes the final reports (the run's end, or an
    /// interrupt's watchdog), so they are written once.
    final_written: Mutex<bool>,
    /// The grading policy's scoring, when there is one.
    scoring: Option<Scoring>,
    /// The Gradescope report's points, excused cases and visibility:
    /// the policy's, or without one every case worth 1 and visible.
    grading: Scoring,
    /// When the run started (the JUnit report's timestamp).
    started: std::time::SystemTime,
    /// The same, for the Gradescope report's execution time.
    clock: std::time::Instant,
    /// More fields of the JSON report's `run` object.
    run_fields: RunFields,
}

impl Sink {
    /// Reports for these cases, to these paths; `stream` rewrites them as
    /// each case finishes.
    pub fn new(
        paths: ReportPaths,
        name: String,
        profile: Profile,
        cases: &[&crate::case::Case],
        stream: bool,
    ) -> Self {
        Sink {
            paths,
            name,
            profile,
            cases: cases.iter().map(|c| (*c).clone()).collect(),
            index: cases
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id.clone(), i))
                .collect(),
            done: Mutex::new(vec![None; cases.len()]),
            stream,
            final_written: Mutex::new(false),
            scoring: None,
            grading: Scoring::default(),
            started: std::time::SystemTime::now(),
            clock: std::time::Instant::now(),
            run_fields: RunFields::new(),
        }
    }

    /// The JSON report's `run` object gets these fields too.
    pub fn with_run_fields(mut self, fields: RunFields) -> Self {
        self.run_fields = fields;
        self
    }

    /// The JSON and HTML reports scored as `scoring` says (a grading
    /// policy's).
    pub fn with_scoring(mut self, scoring: Option<Scoring>) -> Self {
        self.scoring = scoring;
        self
    }

    /// The Gradescope report's points, excused cases and visibility
    /// (default: every case worth 1, none excused, all visible).
    pub fn with_grading(mut self, grading: Scoring) -> Self {
        self.grading = grading;
        self
    }

    /// Checks, before the run, that every report path can be written:
    /// an unwritable path is an error now, not after the whole run.
    pub fn check_writable(&self) -> Result<(), String> {
        for (kind, path) in self.paths.given() {
            check_writable(kind.flag(), path)?;
        }
        Ok(())
    }

    /// Records a finished case and, when streaming, rewrites the reports
    /// with every case finished so far.
    pub fn finished(&self, result: &CaseResult) {
        let Some(&i) = self.index.get(&result.case.id) else {
            return;
        };
        let so_far: Vec<CaseResult> = {
            let Ok(mut done) = self.done.lock() else {
                return;
            };
            done[i] = Some(result.clone());
            if !self.stream {
                return;
            }
            done.iter().flatten().cloned().collect()
        };
        let state = RunState::Running {
            of: self.cases.len(),
        };
        // Best effort: the final write reports errors.
        let _ = self.write_unless_final(&so_far, &state);
    }

    /// Every case: its result if it finished, else marked interrupted.
    pub fn so_far(&self) -> Vec<CaseResult> {
        let done = self.done.lock().map(|d| d.clone()).unwrap_or_default();
        self.cases
            .iter()
            .zip(done)
            .map(|(case, r)| r.unwrap_or_else(|| CaseResult::interrupted(case)))
            .collect()
    }

    fn write_unless_final(&self, results: &[CaseResult], state: &RunState) -> Result<(), String> {
        let Ok(written) = self.final_written.lock() else {
            return Ok(());
        };
        if *written {
            return Ok(());
        }
        self.write(results, state)
    }

    /// Writes the final reports, once: `Ok(false)` when they were written
    /// already (by the other of the run's end and an interrupt).
    pub fn write_final(&self, results: &[CaseResult], state: &RunState) -> Result<bool, String> {
        let Ok(mut written) = self.final_written.lock() else {
            return Ok(false);
        };
        if *written {
            return Ok(false);
        }
        *written = true;
        self.write(results, state).map(|()| true)
    }

    /// Writes every report file given, each whole or not at all.
    fn write(&self, results: &[CaseResult], state: &RunState) -> Result<(), String> {
        for (kind, path) in self.paths.given() {
            let text = match kind {
                ReportFile::Junit => junit(results, &self.name, self.profile, self.started),
                ReportFile::Json => json_with_run_fields(
                    results,
                    &self.name,
                    self.profile,
                    state,
                    self.scoring.as_ref(),
                    &self.run_fields,
                ),
                ReportFile::Gradescope => gradescope(
                    results,
                    &self.name,
                    self.profile,
                    state,
                    &self.grading,
                    self.clock.elapsed(),
                ),
                ReportFile::Html => matrix_html_scored(
                    &[(self.name.clone(), self.profile, results.to_vec())],
                    &[self
                        .scoring
                        .as_ref()
                        .map(|s| s.score(results, self.profile))],
                ),
            };
            write_atomic(path, &text)
                .map_err(|e| format!("cannot write {} '{}': {e}", kind.what(), path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::CaseResult;
    use crate::verdict::Verdict;

    #[test]
    fn a_report_file_has_the_permissions_of_any_file_the_user_writes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        write_atomic(&path, "<p>hi</p>").unwrap();
        let umask = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("Umask:"))?.to_owned();
                u32::from_str_radix(line.split_whitespace().nth(1)?, 8).ok()
            })
            .unwrap_or(0o022);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask, "{mode:o}");
    }

    fn result(case: &crate::case::Case, kind: Kind) -> CaseResult {
        let mut r = CaseResult::interrupted(case);
        r.status = Status::Judged;
        r.verdict = Verdict {
            kind,
            reason: "r".into(),
            failed: Vec::new(),
            hints: Vec::new(),
        };
        r
    }

    /// What a hostile program might print: a carriage return that would
    /// overwrite the line with a forged PASS, colour, a bell, a NUL.
    const HOSTILE: &str = "\r PASS \x1b[32m \x07 \0";

    fn hostile_result(case: &crate::case::Case) -> CaseResult {
        use crate::backend::{RunEnd, RunOutcome, SubjectResult};
        let mut r = result(case, Kind::Fail);
        r.verdict.reason = format!("exited 1: {HOSTILE}");
        r.verdict.failed.push(crate::verdict::Check {
            what: "stderr".into(),
            expected: "nothing".into(),
            actual: HOSTILE.into(),
            ok: false,
            accepted_by: None,
            compared: None,
        });
        let rec = crate::transcript::Recorder::new();
        rec.log_at(
            std::time::Duration::ZERO,
            "subject",
            format!("stderr: {HOSTILE}"),
        );
        r.outcome = Some(RunOutcome {
            end: RunEnd::Finished(std::time::Duration::ZERO),
            result: SubjectResult::Serving,
            subject_done: None,
            seen: Default::default(),
            leaks: None,
            transcript: crate::transcript::Transcript {
                events: rec.events(),
                ..Default::default()
            },
            seed: 1,
            replay: None,
            tick: std::time::Duration::ZERO,
            exit_status: Some(1),
            stray_output: None,
            timed_from: std::time::Duration::ZERO,
            startup: None,
            tolerance: None,
            sockets: None,
        });
        r
    }

    fn assert_no_raw_controls(what: &str, text: &str) {
        let bad: Vec<char> = text
            .chars()
            .filter(|&c| c.is_control() && c != '\n' && c != '\t')
            .collect();
        assert!(bad.is_empty(), "{what} holds raw {bad:?}:\n{text}");
    }

    #[test]
    fn a_programs_control_characters_reach_no_report_raw() {
        let catalog = crate::catalog::Catalog::builtin().unwrap();
        let case = catalog.select(&[]).into_iter().next().unwrap();
        let results = vec![hostile_result(case)];
        let escaped = "\\r PASS \\u{1b}[32m \\u{7} \\u{0}";
        let table = table(&results, "x", Profile::Strict, true, false);
        let junit = junit(
            &results,
            "x",
            Profile::Strict,
            std::time::SystemTime::UNIX_EPOCH,
        );
        let json = json(&results, "x", Profile::Strict);
        let gradescope = gradescope(
            &results,
            "x",
            Profile::Strict,
            &RunState::Complete,
            &Scoring::default(),
            std::time::Duration::ZERO,
        );
        let column = ("x\x1b".to_string(), Profile::Strict, results);
        let html = matrix_html(std::slice::from_ref(&column));
        let markdown = matrix_markdown(std::slice::from_ref(&column));
        for (what, text) in [
            ("table", &table),
            ("junit", &junit),
            ("html", &html),
            ("markdown", &markdown),
        ] {
            assert_no_raw_controls(what, text);
        }
        // JSON escapes controls itself (`\u001b`); decoded, the strings
        // must still be free of them, for `jq -r` and the like.
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        let case = &doc["cases"][0];
        for field in [
            &case["reason"],
            &case["transcript"],
            &case["failed_checks"][0]["actual"],
        ] {
            let s = field.as_str().unwrap();
            assert_no_raw_controls("json", s);
            assert!(s.contains(escaped), "json: {s}");
        }
        let doc: serde_json::Value = serde_json::from_str(&gradescope).unwrap();
        let output = doc["tests"][0]["output"].as_str().unwrap();
        assert_no_raw_controls("gradescope", output);
        assert!(output.contains(escaped), "gradescope: {output}");
        assert!(table.contains(&format!("exited 1: {escaped}")), "{table}");
        assert!(table.contains(&format!("stderr: {escaped}")), "{table}");
        assert!(junit.contains(escaped), "{junit}");
        assert!(html.contains("\\r PASS \\u{1b}[32m"), "{html}");
        assert!(markdown.contains("x\\u{1b} (strict)"), "{markdown}");
    }

    #[test]
    fn junit_has_times_a_timestamp_and_skips_as_skipped_and_json_a_schema_version() {
        let catalog = crate::catalog::Catalog::builtin().unwrap();
        let cases: Vec<_> = catalog
            .select(&[])
            .into_iter()
            .filter(|c| c.role == crate::case::Role::Server)
            .take(3)
            .collect();
        let mut results = vec![
            result(cases[0], Kind::Pass),
            result(cases[1], Kind::Unsupported),
            result(cases[2], Kind::Fail),
        ];
        results[0].wall = std::time::Duration::from_millis(1500);
        results[2].wall = std::time::Duration::from_millis(250);
        let started = std::time::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        let xml = junit(&results, "x", Profile::Strict, started);
        let suite = xml
            .lines()
            .find(|l| l.contains("<testsuite "))
            .expect("a testsuite");
        for attr in [
            "tests=\"3\"",
            "failures=\"1\"",
            "skipped=\"1\"",
            "time=\"1.750\"",
            "timestamp=\"1970-01-02T00:00:00",
        ] {
            assert!(suite.contains(attr), "{attr} in {suite}");
        }
        assert!(xml.contains("time=\"1.500\""), "{xml}");
        assert!(xml.contains("<skipped"), "{xml}");
        let doc: serde_json::Value =
            serde_json::from_str(&json(&results, "x", Profile::Strict)).unwrap();
        assert_eq!(doc["schema_version"], JSON_SCHEMA_VERSION);
        assert_eq!(doc["cases"][0]["duration_s"], 1.5);
        assert_eq!(doc["cases"][1]["duration_s"], 0.0);
    }

    #[test]
    fn unsupported_is_never_counted_as_passed() {
        let catalog = crate::catalog::Catalog::builtin().unwrap();
        let cases: Vec<_> = catalog.select(&[]).into_iter().take(4).collect();
        let results = vec![
            result(cases[0], Kind::Pass),
            result(cases[1], Kind::Unsupported),
            result(cases[2], Kind::Unsupported),
            CaseResult::interrupted(cases[3]),
        ];
        let s = Summary::of(&results, Profile::Strict);
        assert_eq!(
            s.to_string(),
            "1 passed, 0 failed, 2 unsupported, 1 interrupted"
        );
        let table = table(&results, "x", Profile::Strict, false, false);
        assert!(
            table.contains("1 passed, 0 failed, 2 unsupported"),
            "{table}"
        );
        let matrix = matrix_markdown(&[("x".into(), Profile::Strict, results)]);
        assert!(
            matrix.contains("| **total** | 1 passed, 0 failed, 2 unsupported, 1 interrupted |"),
            "{matrix}"
        );
    }

    #[test]
    fn a_sink_streams_finished_cases_and_marks_the_rest_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = crate::catalog::Catalog::builtin().unwrap();
        let cases: Vec<_> = catalog.select(&[]).into_iter().take(3).collect();
        let json_path = dir.path().join("r.json");
        let sink = Sink::new(
            ReportPaths {
                json: Some(json_path.clone()),
                ..ReportPaths::default()
            },
            "x".into(),
            Profile::Strict,
            &cases,
            true,
        );
        sink.check_writable().unwrap();
        sink.finished(&result(cases[1], Kind::Pass));
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
        assert_eq!(doc["run"]["state"], "running");
        assert_eq!(doc["cases"][0]["id"], cases[1].id.as_str());
        let all = sink.so_far();
        assert_eq!(all[0].label(), "INTERRUPTED");
        assert_eq!(all[1].label(), "PASS");
        assert!(sink
            .write_final(&all, &RunState::Interrupted("SIGTERM".into()))
            .unwrap());
        assert!(!sink.write_final(&all, &RunState::Complete).unwrap());
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
        assert_eq!(doc["run"]["signal"], "SIGTERM");
        assert_eq!(doc["summary"]["INTERRUPTED"], 2);
    }

    /// `VmHWM` of `/proc/self/status`, in KiB: the kernel's peak RSS.
    fn high_water_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn the_json_report_gives_the_harness_peak_memory_in_kib() {
        // 32 MiB touched: the peak is at least that.
        let touched = vec![1u8; 32 * 1024 * 1024];
        assert_eq!(touched.iter().map(|&b| u64::from(b)).sum::<u64>(), 32 << 20);
        let before = high_water_kib();
        let doc: serde_json::Value =
            serde_json::from_str(&json(&[], "x", Profile::Strict)).unwrap();
        let after = high_water_kib();
        let peak = doc["run"]["peak_rss_kib"]
            .as_u64()
            .expect("run.peak_rss_kib");
        assert!(peak >= 32 * 1024, "{peak} KiB");
        // The kernel's own peak, in the same unit.
        assert!(
            (before..=after).contains(&peak),
            "{before} <= {peak} <= {after}"
        );
        drop(touched);
    }

    #[test]
    fn an_unwritable_report_path_is_named_before_the_run() {
        let sink = Sink::new(
            ReportPaths {
                junit: Some(PathBuf::from("/nonexistent-dir/r.xml")),
                ..ReportPaths::default()
            },
            "x".into(),
            Profile::Strict,
            &[],
            false,
        );
        let err = sink.check_writable().unwrap_err();
        assert!(err.contains("--junit '/nonexistent-dir/r.xml'"), "{err}");
    }
}

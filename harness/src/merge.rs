//! `poetry-harness merge`: JSON reports of one implementation's shards
//! (`run --shard K/N --json FILE`) made into one report, or the reports of
//! a class made into a matrix of implementations by cases.
//!
//! Reports are read as `report::json_with` writes them (schema version
//! [`JSON_SCHEMA_VERSION`]), checked field by field, and refused with the
//! file and the field named when they are not such reports, when they
//! judge different implementations or profiles, hold the same case twice,
//! or are shards of different selections. A report of a run that did not
//! finish (interrupted, or still running when its harness died) merges as
//! what it is: the merged report's `run.state` is `partial`, and
//! `run.partial` says why. Each case's object is carried over as it was
//! written, fields this version does not know included.

use std::fmt::Write as _;
use std::path::Path;

use indexmap::{IndexMap, IndexSet};
use serde_json::{json, Map, Value};

use crate::report::JSON_SCHEMA_VERSION;
use crate::shard::Shard;
use crate::verdict::{Kind, Profile};

/// Why reports cannot be merged. Each names the file, and the field where
/// there is one.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The file cannot be read.
    #[error("cannot read '{file}': {why}")]
    Read { file: String, why: String },
    /// The file is not JSON.
    #[error("'{file}' is not JSON: {why}")]
    NotJson { file: String, why: String },
    /// A field is missing or has the wrong type or value.
    #[error("'{file}': field '{field}' {why}")]
    Field {
        file: String,
        field: String,
        why: String,
    },
    /// Written by a harness whose JSON this one does not read.
    #[error("'{file}': schema_version {found} is not the one this harness reads ({JSON_SCHEMA_VERSION}); merge with the poetry-harness version that wrote it")]
    SchemaVersion { file: String, found: String },
    /// Two reports disagree on something all must share.
    #[error("{0}")]
    Mismatch(Box<Mismatch>),
    /// A case is in two reports.
    #[error("case '{id}' is in both '{first}' and '{second}': the reports overlap (merge each shard once, and shards of one run only)")]
    DuplicateCase {
        id: String,
        first: String,
        second: String,
    },
    /// The same shard twice.
    #[error("'{first}' and '{second}' are both shard {shard}")]
    DuplicateShard {
        shard: Shard,
        first: String,
        second: String,
    },
}

/// Two reports that disagree on `field`: the first has `a`, the second `b`.
#[derive(Debug, thiserror::Error)]
#[error("{field}: '{first}' has {a}, '{second}' has {b}; {advice}")]
pub struct Mismatch {
    /// What they disagree on.
    pub field: &'static str,
    /// The first report's file.
    pub first: String,
    /// What the first has.
    pub a: String,
    /// The other report's file.
    pub second: String,
    /// What the other has.
    pub b: String,
    /// What to do about it.
    pub advice: &'static str,
}

/// One `run --json` report, checked.
#[derive(Debug, Clone)]
pub struct Report {
    /// The file it was read from, as given.
    pub file: String,
    /// The implementation it judges.
    pub implementation: String,
    /// The profile it was judged against.
    pub profile: Profile,
    /// How far its run got.
    pub state: State,
    /// The shard it is, if it is one.
    pub shard: Option<Shard>,
    /// How many cases the run's arguments selected before any shard, and
    /// their fingerprint (see [`crate::shard::fingerprint`]).
    pub selection: Option<(u64, String)>,
    /// Every case's object, as written; each has a string `id`, `role`
    /// and a known `verdict` label.
    pub cases: Vec<Map<String, Value>>,
    /// The grading policy's score: earned, possible, not counted.
    pub score: Option<(f64, f64, u64)>,
}

/// How far the run of a report got.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Every case has a result.
    Complete,
    /// Written while running: the harness died with `of` cases selected.
    Running { of: u64 },
    /// Stopped by this signal.
    Interrupted(String),
    /// A merged report that was partial, and why.
    Partial(Vec<String>),
}

/// The labels a case's `verdict` may have, in the order reports count them.
fn labels() -> Vec<&'static str> {
    Kind::ALL
        .iter()
        .map(|k| k.label())
        .chain(["INTERRUPTED", "ERROR"])
        .collect()
}

impl Report {
    /// Reads and checks the report at `path`.
    pub fn load(path: &Path) -> Result<Report, MergeError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| MergeError::Read {
            file: file.clone(),
            why: e.to_string(),
        })?;
        Report::parse(&file, &text)
    }

    /// Checks `text`, the report read from `file`.
    pub fn parse(file: &str, text: &str) -> Result<Report, MergeError> {
        let doc: Value = serde_json::from_str(text).map_err(|e| MergeError::NotJson {
            file: file.into(),
            why: e.to_string(),
        })?;
        let field = |field: &str, why: &str| MergeError::Field {
            file: file.into(),
            field: field.into(),
            why: why.into(),
        };
        let Some(top) = doc.as_object() else {
            return Err(field(
                "(top level)",
                "is not an object: is this a `run --json` report?",
            ));
        };
        let version = top.get("schema_version").ok_or_else(|| {
            field(
                "schema_version",
                "is missing: is this a `run --json` report?",
            )
        })?;
        if version.as_u64() != Some(u64::from(JSON_SCHEMA_VERSION)) {
            return Err(MergeError::SchemaVersion {
                file: file.into(),
                found: version.to_string(),
            });
        }
        let string =
            |map: &Map<String, Value>, path: &str, key: &str| -> Result<String, MergeError> {
                match map.get(key) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(_) => Err(field(path, "is not a string")),
                    None => Err(field(path, "is missing")),
                }
            };
        let implementation = string(top, "implementation", "implementation")?;
        let profile_text = string(top, "profile", "profile")?;
        let profile: Profile = profile_text.parse().map_err(|_| {
            field(
                "profile",
                &format!("is '{profile_text}', not strict or tutorial"),
            )
        })?;
        let run = match top.get("run") {
            Some(Value::Object(run)) => run,
            Some(_) => return Err(field("run", "is not an object")),
            None => return Err(field("run", "is missing")),
        };
        let state = match string(run, "run.state", "state")?.as_str() {
            "complete" => State::Complete,
            "running" => State::Running {
                of: run
                    .get("cases")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| field("run.cases", "is missing or not a count"))?,
            },
            "interrupted" => State::Interrupted(string(run, "run.signal", "signal")?),
            "partial" => State::Partial(
                run.get("partial")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            other => {
                return Err(field(
                    "run.state",
                    &format!("is '{other}', not complete, running, interrupted or partial"),
                ))
            }
        };
        let shard = match run.get("shard") {
            None => None,
            Some(v) => {
                let n = |k: &str| v.get(k).and_then(Value::as_u64);
                match (n("index"), n("count")) {
                    (Some(k), Some(count)) if k >= 1 && k <= count => Some(Shard {
                        index: k as usize,
                        count: count as usize,
                    }),
                    _ => {
                        return Err(field(
                            "run.shard",
                            "is not {\"index\": K, \"count\": N} with 1 <= K <= N",
                        ))
                    }
                }
            }
        };
        let selection = match run.get("selection") {
            None => None,
            Some(v) => match (
                v.get("cases").and_then(Value::as_u64),
                v.get("fingerprint").and_then(Value::as_str),
            ) {
                (Some(n), Some(fp)) => Some((n, fp.to_string())),
                _ => {
                    return Err(field(
                        "run.selection",
                        "is not {\"cases\": N, \"fingerprint\": \"...\"}",
                    ))
                }
            },
        };
        let Some(list) = top.get("cases") else {
            return Err(field("cases", "is missing"));
        };
        let Some(list) = list.as_array() else {
            return Err(field("cases", "is not a list"));
        };
        let known = labels();
        let mut cases = Vec::with_capacity(list.len());
        for (i, case) in list.iter().enumerate() {
            let at = |key: &str| format!("cases[{i}].{key}");
            let Some(case) = case.as_object() else {
                return Err(field(&format!("cases[{i}]"), "is not an object"));
            };
            string(case, &at("id"), "id")?;
            string(case, &at("role"), "role")?;
            let verdict = string(case, &at("verdict"), "verdict")?;
            if !known.contains(&verdict.as_str()) {
                return Err(field(
                    &at("verdict"),
                    &format!("is '{verdict}', not one of {}", known.join(", ")),
                ));
            }
            cases.push(case.clone());
        }
        let score = match top.get("score") {
            None => None,
            Some(s) => match (
                s.get("earned").and_then(Value::as_f64),
                s.get("possible").and_then(Value::as_f64),
                s.get("not_counted").and_then(Value::as_u64),
            ) {
                (Some(e), Some(p), Some(n)) => Some((e, p, n)),
                _ => {
                    return Err(field(
                        "score",
                        "is not {\"earned\": X, \"possible\": Y, \"not_counted\": N}",
                    ))
                }
            },
        };
        Ok(Report {
            file: file.into(),
            implementation,
            profile,
            state,
            shard,
            selection,
            cases,
            score,
        })
    }
}

/// Reports of one implementation, merged.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The implementation.
    pub implementation: String,
    /// Its profile.
    pub profile: Profile,
    /// Every case, in catalog order (cases the catalog does not know
    /// follow, in the order of the reports).
    pub cases: Vec<Map<String, Value>>,
    /// Why the merged report is not the whole run; empty when it is.
    pub partial: Vec<String>,
    /// The reports merged: file, state, shard.
    pub from: Vec<Value>,
    /// The selection every shard shares.
    pub selection: Option<(u64, String)>,
    /// The sum of the reports' scores, when each has one.
    pub score: Option<(f64, f64, u64)>,
}

/// Advice for a mismatch of implementations.
const ONE_IMPLEMENTATION: &str =
    "merge the reports of one implementation (for a class, `merge --matrix FILE` takes many)";

/// Merges the reports of one implementation. `order` is the catalog's
/// order of case IDs, which is every run's (and every shard's) order.
pub fn merge(reports: &[Report], order: &IndexSet<String>) -> Result<Merged, MergeError> {
    let Some(first) = reports.first() else {
        return Ok(Merged {
            implementation: String::new(),
            profile: Profile::default(),
            cases: Vec::new(),
            partial: vec!["no report was given".into()],
            from: Vec::new(),
            selection: None,
            score: None,
        });
    };
    let mismatch = |field, a: String, r: &Report, b: String, advice| {
        MergeError::Mismatch(Box::new(Mismatch {
            field,
            first: first.file.clone(),
            a,
            second: r.file.clone(),
            b,
            advice,
        }))
    };
    let describe_shard = |s: Option<Shard>| match s {
        Some(s) => format!("shard {s}"),
        None => "no shard (a whole run)".to_string(),
    };
    for r in &reports[1..] {
        if r.implementation != first.implementation {
            return Err(mismatch(
                "implementation",
                format!("'{}'", first.implementation),
                r,
                format!("'{}'", r.implementation),
                ONE_IMPLEMENTATION,
            ));
        }
        if r.profile != first.profile {
            return Err(mismatch(
                "profile",
                first.profile.to_string(),
                r,
                r.profile.to_string(),
                "run every shard with the same profile (or the same --policy)",
            ));
        }
        if r.shard.map(|s| s.count) != first.shard.map(|s| s.count) {
            return Err(mismatch(
                "shard",
                describe_shard(first.shard),
                r,
                describe_shard(r.shard),
                "merge the shards of one run, all with the same N",
            ));
        }
        if first.shard.is_some() && r.selection != first.selection {
            let show = |s: &Option<(u64, String)>| match s {
                Some((n, fp)) => format!("{n} cases (fingerprint {fp})"),
                None => "no selection".into(),
            };
            return Err(mismatch(
                "selection",
                show(&first.selection),
                r,
                show(&r.selection),
                "run every shard with the same case patterns, --exclude, --suites and policy",
            ));
        }
        if r.score.is_some() != first.score.is_some() {
            let scored = |r: &Report| match r.score {
                Some(_) => "a score".to_string(),
                None => "no score".to_string(),
            };
            return Err(mismatch(
                "score",
                scored(first),
                r,
                scored(r),
                "run every shard with the same --policy, or none",
            ));
        }
    }
    // Each shard once, each case once.
    let mut shards: IndexMap<usize, &str> = IndexMap::new();
    let mut seen: IndexMap<String, &str> = IndexMap::new();
    for r in reports {
        if let Some(s) = r.shard {
            if let Some(other) = shards.insert(s.index, &r.file) {
                return Err(MergeError::DuplicateShard {
                    shard: s,
                    first: other.into(),
                    second: r.file.clone(),
                });
            }
        }
        for case in &r.cases {
            let id = case["id"].as_str().unwrap_or_default().to_string();
            if let Some(other) = seen.insert(id.clone(), &r.file) {
                return Err(MergeError::DuplicateCase {
                    id,
                    first: other.into(),
                    second: r.file.clone(),
                });
            }
        }
    }
    let mut partial = Vec::new();
    if let Some(count) = first.shard.map(|s| s.count) {
        let missing: Vec<String> = (1..=count)
            .filter(|k| !shards.contains_key(k))
            .map(|k| format!("{k}/{count}"))
            .collect();
        if !missing.is_empty() {
            partial.push(format!("shard(s) {} missing", missing.join(", ")));
        }
    }
    for r in reports {
        match &r.state {
            State::Complete => {}
            State::Running { of } => partial.push(format!(
                "'{}' holds {} of its {of} case(s): its run did not finish",
                r.file,
                r.cases.len()
            )),
            State::Interrupted(signal) => {
                partial.push(format!("'{}' was interrupted by {signal}", r.file))
            }
            State::Partial(why) if why.is_empty() => {
                partial.push(format!("'{}' is partial", r.file))
            }
            State::Partial(why) => partial.extend(why.iter().map(|w| format!("'{}': {w}", r.file))),
        }
    }
    let mut cases: Vec<Map<String, Value>> = reports
        .iter()
        .flat_map(|r| r.cases.iter().cloned())
        .collect();
    let rank = |c: &Map<String, Value>| {
        let id = c["id"].as_str().unwrap_or_default();
        order.get_index_of(id).unwrap_or(usize::MAX)
    };
    // Stable: cases the catalog does not know keep the reports' order.
    cases.sort_by_key(rank);
    if partial.is_empty() {
        if let (Some(_), Some((n, _))) = (first.shard, &first.selection) {
            if cases.len() as u64 != *n {
                partial.push(format!(
                    "{} of the {n} selected case(s) are in the shards",
                    cases.len()
                ));
            }
        }
    }
    let score = reports
        .iter()
        .map(|r| r.score)
        .try_fold((0.0, 0.0, 0), |acc, s| {
            s.map(|(e, p, n)| (acc.0 + e, acc.1 + p, acc.2 + n))
        });
    Ok(Merged {
        implementation: first.implementation.clone(),
        profile: first.profile,
        cases,
        partial,
        from: reports
            .iter()
            .map(|r| {
                let mut v = json!({ "file": r.file, "state": state_name(&r.state) });
                if let Some(s) = r.shard {
                    v["shard"] = s.to_string().into();
                }
                v
            })
            .collect(),
        selection: first.shard.and(first.selection.clone()),
        score,
    })
}

fn state_name(s: &State) -> &'static str {
    match s {
        State::Complete => "complete",
        State::Running { .. } => "running",
        State::Interrupted(_) => "interrupted",
        State::Partial(_) => "partial",
    }
}

/// The totals of a report: the same counts as a run's summary.
pub type Totals = crate::report::Summary;

fn label_of(case: &Map<String, Value>) -> &str {
    case["verdict"].as_str().unwrap_or_default()
}

/// Whether a case with this label fails a run under `profile` (harness
/// errors and unfinished cases included: neither is a pass).
pub fn label_fails(label: &str, profile: Profile) -> bool {
    match Kind::from_label(label) {
        Some(k) => k.fails(profile),
        None => true,
    }
}

impl Merged {
    /// The counts of every label, in the order reports count them.
    pub fn summary(&self) -> IndexMap<&'static str, usize> {
        let mut t: IndexMap<&'static str, usize> = labels().into_iter().map(|l| (l, 0)).collect();
        for c in &self.cases {
            if let Some(n) = t.get_mut(label_of(c)) {
                *n += 1;
            }
        }
        t
    }

    /// The totals under the profile.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for c in &self.cases {
            match label_of(c) {
                "INTERRUPTED" => t.interrupted += 1,
                "ERROR" => t.errors += 1,
                "UNSUPPORTED" => t.unsupported += 1,
                l if label_fails(l, self.profile) => t.failed += 1,
                _ => t.passed += 1,
            }
        }
        t
    }

    /// Whether the merged run is green: whole, and no case failing,
    /// interrupted or in error.
    pub fn passed(&self) -> bool {
        let t = self.totals();
        self.partial.is_empty() && t.failed == 0 && t.interrupted == 0 && t.errors == 0
    }

    /// The merged JSON report, in `run --json`'s schema; `run.state` is
    /// `complete` or `partial` (with `run.partial`, the reasons), and
    /// `run.merged_from` lists the reports.
    pub fn json(&self) -> String {
        let mut run = json!({
            "state": if self.partial.is_empty() { "complete" } else { "partial" },
        });
        if !self.partial.is_empty() {
            run["partial"] = json!(self.partial);
        }
        run["merged_from"] = json!(self.from);
        if let Some((n, fp)) = &self.selection {
            run["selection"] = json!({ "cases": n, "fingerprint": fp });
        }
        let mut doc = json!({
            "schema_version": JSON_SCHEMA_VERSION,
            "implementation": self.implementation,
            "profile": self.profile,
            "run": run,
            "summary": self.summary(),
            "totals": self.totals(),
            "cases": self.cases,
        });
        if let Some((earned, possible, not_counted)) = self.score {
            doc["score"] =
                json!({ "earned": earned, "possible": possible, "not_counted": not_counted });
        }
        serde_json::to_string_pretty(&doc).expect("a merged report serialises")
    }

    /// The merged JUnit report: a testsuite per role, a testcase per case
    /// with its time, as `run --junit` writes them.
    pub fn junit(&self) -> String {
        use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
        let mut report = Report::new(format!("poetry-harness: {}", self.implementation));
        let secs = |c: &Map<String, Value>| {
            std::time::Duration::from_secs_f64(
                c.get("duration_s")
                    .and_then(Value::as_f64)
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .unwrap_or(0.0),
            )
        };
        report.set_time(self.cases.iter().map(secs).sum());
        let roles: IndexSet<&str> = self
            .cases
            .iter()
            .map(|c| c["role"].as_str().unwrap_or_default())
            .collect();
        for role in roles {
            let mut suite = TestSuite::new(role);
            let in_suite: Vec<_> = self
                .cases
                .iter()
                .filter(|c| c["role"].as_str() == Some(role))
                .collect();
            let mut skipped = 0;
            for c in &in_suite {
                let label = label_of(c);
                let reason = c.get("reason").and_then(Value::as_str).unwrap_or_default();
                let transcript = c.get("transcript").and_then(Value::as_str);
                let non_success = |kind| {
                    let mut s = TestCaseStatus::non_success(kind);
                    s.set_message(format!("{label}: {reason}"));
                    s.set_type(label);
                    if let Some(t) = transcript {
                        s.set_description(t);
                    }
                    s
                };
                let status = match label {
                    "INTERRUPTED" | "ERROR" => non_success(NonSuccessKind::Error),
                    "UNSUPPORTED" => {
                        skipped += 1;
                        let mut s = TestCaseStatus::skipped();
                        s.set_message(reason);
                        s
                    }
                    l if label_fails(l, self.profile) => non_success(NonSuccessKind::Failure),
                    _ => TestCaseStatus::success(),
                };
                let mut tc = TestCase::new(c["id"].as_str().unwrap_or_default(), status);
                tc.set_classname(role);
                tc.set_time(secs(c));
                suite.add_test_case(tc);
            }
            suite.set_time(in_suite.iter().map(|c| secs(c)).sum());
            suite
                .extra
                .insert("skipped".into(), skipped.to_string().into());
            report.add_test_suite(suite);
        }
        report.to_string().expect("junit serialises")
    }

    /// A Markdown summary: totals, whether it is whole, the score, and a
    /// row per failing case.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## poetry-harness: {} ({} profile)\n",
            md(&self.implementation),
            self.profile
        );
        let _ = writeln!(
            out,
            "{} case(s) from {} report(s): {}\n",
            self.cases.len(),
            self.from.len(),
            self.totals()
        );
        if let Some((earned, possible, _)) = self.score {
            let _ = writeln!(out, "score: {earned} of {possible} points\n");
        }
        for why in &self.partial {
            let _ = writeln!(out, "- **partial**: {}", md(why));
        }
        if !self.partial.is_empty() {
            out.push('\n');
        }
        let failing: Vec<_> = self
            .cases
            .iter()
            .filter(|c| label_fails(label_of(c), self.profile))
            .collect();
        if !failing.is_empty() {
            let _ = writeln!(out, "| case | verdict | reason |\n|---|---|---|");
            for c in failing {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} |",
                    md(c["id"].as_str().unwrap_or_default()),
                    label_of(c),
                    md(c.get("reason").and_then(Value::as_str).unwrap_or_default())
                );
            }
        }
        out
    }
}

/// Text made safe for a Markdown table cell: a report is a file anyone
/// could have edited, so its control characters are escaped too.
fn md(s: &str) -> String {
    crate::transcript::sanitise(s)
        .replace('|', "\\|")
        .replace('\n', " ")
}

/// Implementations by cases: every report grouped by implementation (in
/// the order first given), each group merged, a row per case in catalog
/// order, a verdict per implementation (`-` where its reports do not
/// have the case), and a totals row.
pub fn class(reports: &[Report], order: &IndexSet<String>) -> Result<Vec<Merged>, MergeError> {
    let mut groups: IndexMap<&str, Vec<Report>> = IndexMap::new();
    for r in reports {
        groups
            .entry(r.implementation.as_str())
            .or_default()
            .push(r.clone());
    }
    groups.values().map(|rs| merge(rs, order)).collect()
}

/// The class matrix in Markdown.
pub fn matrix_markdown(columns: &[Merged], order: &IndexSet<String>) -> String {
    let (ids, cells) = matrix_cells(columns, order);
    let mut out = String::new();
    let names: Vec<String> = columns
        .iter()
        .map(|m| format!("{} ({})", md(&m.implementation), m.profile))
        .collect();
    let _ = writeln!(out, "| case | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(columns.len()));
    for (id, row) in ids.iter().zip(&cells) {
        let _ = writeln!(out, "| `{}` | {} |", md(id), row.join(" | "));
    }
    let totals: Vec<String> = columns
        .iter()
        .map(|m| {
            let partial = if m.partial.is_empty() {
                ""
            } else {
                " (partial)"
            };
            format!("{}{partial}", m.totals())
        })
        .collect();
    let _ = writeln!(out, "| **total** | {} |", totals.join(" | "));
    out
}

/// The class matrix as a small standalone HTML page.
pub fn matrix_html(columns: &[Merged], order: &IndexSet<String>) -> String {
    fn esc(s: &str) -> String {
        crate::transcript::sanitise(s)
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }
    let (ids, cells) = matrix_cells(columns, order);
    let mut out = String::from(
        "<!doctype html>\n<meta charset=\"utf-8\">\n<title>poetry-harness class matrix</title>\n<style>td,th{padding:2px 8px;font-family:monospace}.PASS{background:#cfc}.FAIL,.TIMEOUT,.FLAKY{background:#fcc}.NON-STRICT{background:#ffc}</style>\n<table>\n<tr><th>case</th>",
    );
    for m in columns {
        let _ = write!(out, "<th>{} ({})</th>", esc(&m.implementation), m.profile);
    }
    out.push_str("</tr>\n");
    for (id, row) in ids.iter().zip(&cells) {
        let _ = write!(out, "<tr><td>{}</td>", esc(id));
        for label in row {
            let label = esc(label);
            let _ = write!(out, "<td class=\"{label}\">{label}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("<tr><th>total</th>");
    for m in columns {
        let partial = if m.partial.is_empty() {
            ""
        } else {
            " (partial)"
        };
        let _ = write!(out, "<td>{}{partial}</td>", m.totals());
    }
    out.push_str("</tr>\n</table>\n");
    out
}

/// The rows of a class matrix: every case ID of any column, in catalog
/// `order` (IDs it does not know last, as first met), and each column's
/// label for it.
fn matrix_cells(columns: &[Merged], order: &IndexSet<String>) -> (Vec<String>, Vec<Vec<String>>) {
    let mut ids: IndexSet<String> = IndexSet::new();
    for m in columns {
        for c in &m.cases {
            ids.insert(c["id"].as_str().unwrap_or_default().to_string());
        }
    }
    let mut ids: Vec<String> = ids.into_iter().collect();
    ids.sort_by_key(|id| order.get_index_of(id).unwrap_or(usize::MAX));
    let cells = ids
        .iter()
        .map(|id| {
            columns
                .iter()
                .map(|m| {
                    m.cases
                        .iter()
                        .find(|c| c["id"].as_str() == Some(id))
                        .map_or("-".to_string(), |c| label_of(c).to_string())
                })
                .collect()
        })
        .collect();
    (ids, cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as `run --json` writes one: `cases` are (id, verdict).
    fn doc(implementation: &str, shard: Option<&str>, cases: &[(&str, &str)]) -> Value {
        let mut run =
            json!({ "state": "complete", "selection": { "cases": 4, "fingerprint": "f" } });
        if let Some(s) = shard {
            let s: Shard = s.parse().unwrap();
            run["shard"] = json!(s);
        }
        json!({
            "schema_version": JSON_SCHEMA_VERSION,
            "implementation": implementation,
            "profile": "strict",
            "run": run,
            "cases": cases.iter().map(|(id, v)| json!({
                "id": id, "role": "client", "verdict": v, "reason": "r", "duration_s": 0.5,
            })).collect::<Vec<_>>(),
        })
    }

    fn parse(file: &str, v: &Value) -> Result<Report, MergeError> {
        Report::parse(file, &v.to_string())
    }

    fn order() -> IndexSet<String> {
        ["c.a", "c.b", "c.c", "c.d"]
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn shards() -> Vec<Report> {
        vec![
            parse(
                "s2.json",
                &doc("x", Some("2/2"), &[("c.b", "FAIL"), ("c.d", "PASS")]),
            )
            .unwrap(),
            parse(
                "s1.json",
                &doc("x", Some("1/2"), &[("c.a", "PASS"), ("c.c", "PASS")]),
            )
            .unwrap(),
        ]
    }

    #[test]
    fn shards_merge_back_in_catalog_order() {
        let m = merge(&shards(), &order()).unwrap();
        let ids: Vec<_> = m.cases.iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["c.a", "c.b", "c.c", "c.d"]);
        assert!(m.partial.is_empty(), "{:?}", m.partial);
        assert_eq!(m.totals().to_string(), "3 passed, 1 failed, 0 unsupported");
        assert!(!m.passed());
        // The merged report reads back as a report, and merges again.
        let again = parse("m.json", &serde_json::from_str(&m.json()).unwrap()).unwrap();
        assert_eq!(again.state, State::Complete);
        assert_eq!(again.cases, m.cases);
    }

    #[test]
    fn a_missing_shard_or_an_unfinished_run_makes_the_merge_partial() {
        let m = merge(&shards()[..1], &order()).unwrap();
        assert_eq!(m.partial, ["shard(s) 1/2 missing"]);
        let mut killed = doc("x", Some("1/2"), &[("c.a", "PASS")]);
        killed["run"]["state"] = "running".into();
        killed["run"]["cases"] = 2.into();
        let mut stopped = doc("x", Some("2/2"), &[("c.b", "PASS"), ("c.d", "INTERRUPTED")]);
        stopped["run"]["state"] = "interrupted".into();
        stopped["run"]["signal"] = "SIGTERM".into();
        let m = merge(
            &[
                parse("k.json", &killed).unwrap(),
                parse("i.json", &stopped).unwrap(),
            ],
            &order(),
        )
        .unwrap();
        assert_eq!(
            m.partial,
            [
                "'k.json' holds 1 of its 2 case(s): its run did not finish",
                "'i.json' was interrupted by SIGTERM"
            ]
        );
        let json: Value = serde_json::from_str(&m.json()).unwrap();
        assert_eq!(json["run"]["state"], "partial");
        assert_eq!(json["totals"]["interrupted"], 1);
        assert!(!m.passed());
        // Partial stays partial when merged again.
        let again = parse("m.json", &json).unwrap();
        assert!(matches!(again.state, State::Partial(ref why) if why.len() == 2));
    }

    #[test]
    fn reports_that_do_not_belong_together_are_refused_naming_both_files() {
        let base = doc("x", Some("1/2"), &[("c.a", "PASS")]);
        let mut other = doc("y", Some("2/2"), &[("c.b", "PASS")]);
        let check = |other: &Value, want: &str| {
            let err = merge(
                &[
                    parse("a.json", &base).unwrap(),
                    parse("b.json", other).unwrap(),
                ],
                &order(),
            )
            .unwrap_err()
            .to_string();
            assert!(err.starts_with(want), "{err}");
        };
        check(&other, "implementation: 'a.json' has 'x', 'b.json' has 'y'; merge the reports of one implementation");
        other["implementation"] = "x".into();
        other["profile"] = "tutorial".into();
        check(
            &other,
            "profile: 'a.json' has strict, 'b.json' has tutorial",
        );
        other["profile"] = "strict".into();
        other["run"]["shard"] = json!({ "index": 2, "count": 3 });
        check(
            &other,
            "shard: 'a.json' has shard 1/2, 'b.json' has shard 2/3",
        );
        other["run"]["shard"] = json!({ "index": 2, "count": 2 });
        other["run"]["selection"]["fingerprint"] = "g".into();
        check(
            &other,
            "selection: 'a.json' has 4 cases (fingerprint f), 'b.json' has 4 cases (fingerprint g)",
        );
        other["run"]["selection"]["fingerprint"] = "f".into();
        other["run"]["shard"] = json!({ "index": 1, "count": 2 });
        check(&other, "'a.json' and 'b.json' are both shard 1/2");
        other["run"]["shard"] = json!({ "index": 2, "count": 2 });
        other["cases"][0]["id"] = "c.a".into();
        check(&other, "case 'c.a' is in both 'a.json' and 'b.json'");
        other["cases"][0]["id"] = "c.b".into();
        other["score"] = json!({ "earned": 1.0, "possible": 1.0, "not_counted": 0 });
        check(&other, "score: 'a.json' has no score, 'b.json' has a score");
    }

    #[test]
    fn malformed_reports_are_refused_naming_the_file_and_the_field() {
        let good = doc("x", None, &[("c.a", "PASS")]);
        let cases: Vec<(Value, &str)> = vec![
            (
                json!([1, 2]),
                "'f.json': field '(top level)' is not an object",
            ),
            (
                json!({ "cases": [] }),
                "'f.json': field 'schema_version' is missing",
            ),
            (
                {
                    let mut d = good.clone();
                    d["schema_version"] = 99.into();
                    d
                },
                "'f.json': schema_version 99 is not the one this harness reads (1)",
            ),
            (
                {
                    let mut d = good.clone();
                    d.as_object_mut().unwrap().remove("implementation");
                    d
                },
                "'f.json': field 'implementation' is missing",
            ),
            (
                {
                    let mut d = good.clone();
                    d["profile"] = "lax".into();
                    d
                },
                "'f.json': field 'profile' is 'lax', not strict or tutorial",
            ),
            (
                {
                    let mut d = good.clone();
                    d["run"]["state"] = "done".into();
                    d
                },
                "'f.json': field 'run.state' is 'done'",
            ),
            (
                {
                    let mut d = good.clone();
                    d["run"]["shard"] = json!({ "index": 0, "count": 2 });
                    d
                },
                "'f.json': field 'run.shard' is not",
            ),
            (
                {
                    let mut d = good.clone();
                    d["cases"][0]["verdict"] = "GREAT".into();
                    d
                },
                "'f.json': field 'cases[0].verdict' is 'GREAT', not one of PASS, FAIL",
            ),
            (
                {
                    let mut d = good.clone();
                    d["cases"][0]["id"] = 7.into();
                    d
                },
                "'f.json': field 'cases[0].id' is not a string",
            ),
            (
                {
                    let mut d = good.clone();
                    d["cases"] = json!({});
                    d
                },
                "'f.json': field 'cases' is not a list",
            ),
        ];
        for (v, want) in cases {
            let err = parse("f.json", &v).unwrap_err().to_string();
            assert!(err.starts_with(want), "want {want}\n got {err}");
        }
        let err = Report::parse("f.json", "{ not json")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("'f.json' is not JSON: key must be a string at line 1 column 3"),
            "{err}"
        );
        let err = Report::load(Path::new("/nonexistent/r.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot read '/nonexistent/r.json': "),
            "{err}"
        );
    }

    #[test]
    fn a_class_matrix_has_a_column_per_implementation_in_the_order_given() {
        let reports = [
            parse(
                "bob.json",
                &doc("bob", None, &[("c.b", "FAIL"), ("c.a", "PASS")]),
            )
            .unwrap(),
            parse(
                "amy.json",
                &doc("amy", None, &[("c.a", "PASS"), ("c.c", "TIMEOUT")]),
            )
            .unwrap(),
        ];
        let columns = class(&reports, &order()).unwrap();
        assert_eq!(
            matrix_markdown(&columns, &order()),
            "| case | bob (strict) | amy (strict) |\n\
             |---|---|---|\n\
             | `c.a` | PASS | PASS |\n\
             | `c.b` | FAIL | - |\n\
             | `c.c` | - | TIMEOUT |\n\
             | **total** | 1 passed, 1 failed, 0 unsupported | 1 passed, 1 failed, 0 unsupported |\n"
        );
        let html = matrix_html(&columns, &order());
        assert!(
            html.contains("<td class=\"TIMEOUT\">TIMEOUT</td>"),
            "{html}"
        );
    }

    #[test]
    fn an_edited_reports_control_characters_reach_no_summary_or_matrix_raw() {
        let mut d = doc("x\x1b[31m", None, &[("c.a\r", "FAIL")]);
        d["cases"][0]["reason"] = "\x07 bell | pipe\nline".into();
        let columns = class(&[parse("f.json", &d).unwrap()], &order()).unwrap();
        for text in [
            columns[0].markdown(),
            matrix_markdown(&columns, &order()),
            matrix_html(&columns, &order()),
        ] {
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "{text:?}"
            );
        }
        assert!(columns[0].markdown().contains("\\| pipe"));
    }
}

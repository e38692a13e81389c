//! Grading policies: the teacher's rules for a graded run, in a TOML file
//! kept apart from the student's manifest (`poetry-harness run --policy`).
//!
//! ```toml
//! profile = "strict"                  # strict (default) or tutorial
//! time_scale = 0.05                   # the harness's default when absent
//! max_manifest_time_scale = 0.2       # absent: a manifest may not set time_scale
//! allowed_lacks = ["extra-transforms"] # features a student may declare lacking
//! allowed_env = ["JAVA_OPTS"]         # variables a manifest's `env` may name
//! cases = ["client.", "server."]      # ID prefixes, as `run`'s arguments (default: all)
//! exclude = ["client.huge-poem"]      # ID prefixes left out of those
//! default_visibility = "visible"      # Gradescope, see [visibility]
//!
//! [max_startup_timeout]               # seconds, per role (default: 3600)
//! server = 20
//!
//! [weights]                           # points per case: the longest matching
//! "client." = 2                       # ID prefix wins; a case no key
//! "client.reset-mid-poem" = 5         # matches is worth 1
//!
//! [visibility]                        # Gradescope: who sees a case's result
//! "proxy." = "after_due_date"         # (visible, hidden, after_due_date,
//! "server.fifty-" = "hidden"          # after_published); the longest matching
//!                                     # ID prefix wins, else default_visibility
//! ```
//!
//! Under a policy the profile, time scale and case selection are the
//! policy's; `--profile`, `--time-scale`, `--lacks` and case arguments
//! are refused. A student's manifest can only narrow what it claims
//! (leave roles out, declare allowed lacks); whatever would relax grading
//! is refused with an error naming the manifest's line, never ignored:
//! - a `profile` other than the policy's;
//! - a lack (top-level or per role) not in `allowed_lacks`;
//! - a `time_scale` when the policy sets no `max_manifest_time_scale`,
//!   or one above it;
//! - a role's `startup_timeout` above the policy's maximum for it;
//! - an `env` name (top-level or per role) not in `allowed_env`: the
//!   harness's environment may hold the teacher's secrets.
//!
//! The score ([`Score`]) counts each selected case's points as possible,
//! except a case left UNSUPPORTED by something the student is excused
//! from: a lack the policy allows, a relaxation of the policy's tutorial
//! profile, or a case only the simulator can run. A role the manifest
//! leaves out, a program exiting 127, a failure, a harness error and an
//! interrupted case all score 0 of their points. A case is earned when it
//! is judged and does not fail under the policy's profile (PASS, INFO,
//! and NON-STRICT under the tutorial profile).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use crate::backend::live::manifest::{at, key_line, table, Manifest};
use crate::case::{Case, Feature, Role};
use crate::catalog::Catalog;
use crate::engine::{CaseResult, LiveTarget, Status};
use crate::verdict::{Kind, Profile};

/// Smallest time scale a policy may set (as `--time-scale`).
pub const MIN_TIME_SCALE: f64 = 0.001;
/// Largest time scale a policy may set (as `--time-scale`).
pub const MAX_TIME_SCALE: f64 = 10.0;
/// Longest start-up budget, in seconds, a policy may allow.
pub const MAX_STARTUP_SECS: f64 = 3600.0;
/// Most points one case may be worth.
pub const MAX_POINTS: f64 = 1e6;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    profile: Profile,
    #[serde(default)]
    time_scale: Option<Spanned<f64>>,
    #[serde(default)]
    max_manifest_time_scale: Option<Spanned<f64>>,
    #[serde(default)]
    allowed_lacks: Vec<Feature>,
    #[serde(default)]
    allowed_env: Vec<Spanned<String>>,
    #[serde(default)]
    cases: Vec<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    #[serde(default)]
    max_startup_timeout: StartupMaxima,
    #[serde(default)]
    weights: IndexMap<Spanned<String>, Spanned<f64>>,
    #[serde(default)]
    default_visibility: Option<Spanned<String>>,
    #[serde(default)]
    visibility: IndexMap<Spanned<String>, Spanned<String>>,
}

/// Who sees a case's result on Gradescope (`run --gradescope`), in
/// Gradescope's own words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Students see it at once.
    #[default]
    Visible,
    /// Students never see it.
    Hidden,
    /// Students see it after the assignment's due date.
    AfterDueDate,
    /// Students see it once the grades are published.
    AfterPublished,
}

impl Visibility {
    /// Every visibility, in the order messages list them.
    pub const ALL: [Visibility; 4] = [
        Visibility::Visible,
        Visibility::Hidden,
        Visibility::AfterDueDate,
        Visibility::AfterPublished,
    ];

    /// As written in policies and in Gradescope's `results.json`.
    pub fn name(self) -> &'static str {
        match self {
            Visibility::Visible => "visible",
            Visibility::Hidden => "hidden",
            Visibility::AfterDueDate => "after_due_date",
            Visibility::AfterPublished => "after_published",
        }
    }
}

impl std::str::FromStr for Visibility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Visibility::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Visibility::ALL.iter().map(|v| v.name()).collect();
                format!(
                    "'{}' is not a visibility (known: {})",
                    s.escape_debug(),
                    known.join(", ")
                )
            })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartupMaxima {
    server: Option<Spanned<f64>>,
    client: Option<Spanned<f64>>,
    transform_server: Option<Spanned<f64>>,
    transform_client: Option<Spanned<f64>>,
    proxy: Option<Spanned<f64>>,
}

/// An ID prefix of `cases`, `exclude`, `weights` or `visibility`, with
/// its line.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// The prefix.
    pub prefix: String,
    /// Its line in the policy file (from 1).
    pub line: usize,
}

/// A grading policy (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The file it was read from, for messages.
    pub file: String,
    /// The profile every case is judged against.
    pub profile: Profile,
    /// Delays and timeouts of the cases are multiplied by this.
    pub time_scale: f64,
    /// Largest `time_scale` a manifest may set; `None`: it may set none.
    pub max_manifest_time_scale: Option<f64>,
    /// Features a manifest may declare lacking.
    pub allowed_lacks: Vec<Feature>,
    /// Variables a manifest's `env` may pass from the harness's environment.
    pub allowed_env: Vec<String>,
    /// Longest `startup_timeout` a manifest may give each role, in seconds.
    pub max_startup_timeout: IndexMap<Role, f64>,
    /// The cases graded: ID prefixes (all cases when empty).
    pub cases: Vec<Pattern>,
    /// ID prefixes left out of `cases`.
    pub exclude: Vec<Pattern>,
    /// Points per ID prefix (the longest matching wins; otherwise 1).
    pub weights: Vec<(Pattern, f64)>,
    /// Who sees a case's result on Gradescope when no `visibility`
    /// prefix matches its ID.
    pub default_visibility: Visibility,
    /// Who sees a case's result on Gradescope, per ID prefix (the
    /// longest matching wins; otherwise `default_visibility`).
    pub visibility: Vec<(Pattern, Visibility)>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// A kebab-case feature name, as written in files.
pub fn feature_name(f: Feature) -> &'static str {
    match f {
        Feature::Timeouts => "timeouts",
        Feature::ExtraTransforms => "extra-transforms",
        Feature::Pacing => "pacing",
    }
}

/// `1e300`, not three hundred digits.
fn number(x: f64) -> String {
    if x != 0.0 && x.is_finite() && !(1e-3..1e6).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        x.to_string()
    }
}

impl Policy {
    /// Reads and checks a policy; errors name the file, line and field.
    pub fn load(path: &Path) -> Result<Policy, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read policy '{}': {e}", path.display()))?;
        Policy::parse(&path.display().to_string(), &text)
    }

    /// Parses and checks policy text.
    pub fn parse(file: &str, text: &str) -> Result<Policy, String> {
        let raw: PolicyFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            format!("{file}{}: {}", at(line), e.message().trim())
        })?;
        let ranged = |v: &Spanned<f64>, field: &str, lo: f64, hi: f64, low_open: bool| {
            let x = *v.get_ref();
            let ok = x.is_finite() && x <= hi && if low_open { x > lo } else { x >= lo };
            if ok {
                Ok(x)
            } else {
                Err(format!(
                    "{file}:{}: {field}: '{}' must be {} {} and at most {}",
                    line_of(text, v.span().start),
                    number(x),
                    if low_open { "above" } else { "at least" },
                    number(lo),
                    number(hi)
                ))
            }
        };
        let time_scale = match &raw.time_scale {
            Some(v) => ranged(v, "time_scale", MIN_TIME_SCALE, MAX_TIME_SCALE, false)?,
            None => crate::backend::live::DEFAULT_TIME_SCALE,
        };
        let max_manifest_time_scale = raw
            .max_manifest_time_scale
            .as_ref()
            .map(|v| {
                ranged(
                    v,
                    "max_manifest_time_scale",
                    MIN_TIME_SCALE,
                    MAX_TIME_SCALE,
                    false,
                )
            })
            .transpose()?;
        let mut max_startup_timeout = IndexMap::new();
        let m = &raw.max_startup_timeout;
        for (role, v) in [
            (Role::Server, &m.server),
            (Role::Client, &m.client),
            (Role::TransformServer, &m.transform_server),
            (Role::TransformClient, &m.transform_client),
            (Role::Proxy, &m.proxy),
        ] {
            if let Some(v) = v {
                let field = format!("max_startup_timeout.{}", table(role));
                let secs = ranged(v, &field, 0.0, MAX_STARTUP_SECS, true)?;
                max_startup_timeout.insert(role, secs);
            }
        }
        let patterns = |list: &[Spanned<String>]| -> Vec<Pattern> {
            list.iter()
                .map(|p| Pattern {
                    prefix: p.get_ref().clone(),
                    line: line_of(text, p.span().start),
                })
                .collect()
        };
        for name in &raw.allowed_env {
            crate::backend::live::manifest::check_env_name(name.get_ref()).map_err(|e| {
                format!(
                    "{file}:{}: allowed_env: {e}",
                    line_of(text, name.span().start)
                )
            })?;
        }
        let mut weights = Vec::new();
        for (key, points) in &raw.weights {
            let x = ranged(points, "weights", 0.0, MAX_POINTS, false)?;
            weights.push((
                Pattern {
                    prefix: key.get_ref().clone(),
                    line: line_of(text, key.span().start),
                },
                x,
            ));
        }
        let visibility_of = |v: &Spanned<String>, field: &str| {
            v.get_ref()
                .parse::<Visibility>()
                .map_err(|e| format!("{file}:{}: {field}: {e}", line_of(text, v.span().start)))
        };
        let default_visibility = raw
            .default_visibility
            .as_ref()
            .map(|v| visibility_of(v, "default_visibility"))
            .transpose()?
            .unwrap_or_default();
        let mut visibility = Vec::new();
        for (key, v) in &raw.visibility {
            let field = format!("visibility.\"{}\"", key.get_ref().escape_debug());
            visibility.push((
                Pattern {
                    prefix: key.get_ref().clone(),
                    line: line_of(text, key.span().start),
                },
                visibility_of(v, &field)?,
            ));
        }
        Ok(Policy {
            file: file.to_string(),
            profile: raw.profile,
            time_scale,
            max_manifest_time_scale,
            allowed_lacks: raw.allowed_lacks,
            allowed_env: raw
                .allowed_env
                .iter()
                .map(|n| n.get_ref().clone())
                .collect(),
            max_startup_timeout,
            cases: patterns(&raw.cases),
            exclude: patterns(&raw.exclude),
            weights,
            default_visibility,
            visibility,
        })
    }

    /// The policy of a run without one: every case under `profile`,
    /// worth 1 point and visible.
    pub fn none(profile: Profile) -> Policy {
        let mut p = Policy::parse("(no policy)", "").expect("the empty policy parses");
        p.profile = profile;
        p
    }

    /// The cases the policy grades, in catalog order. A `cases`, `exclude`
    /// or `weights` prefix matching no case of the catalog is an error
    /// (a typo would silently change the grade), as is a selection
    /// left empty.
    pub fn select<'a>(&self, catalog: &'a Catalog) -> Result<Vec<&'a Case>, String> {
        let all = catalog.select(&[]);
        let matches = |p: &Pattern| all.iter().any(|c| c.id.starts_with(&p.prefix));
        for (field, list) in [("cases", &self.cases), ("exclude", &self.exclude)] {
            if let Some(p) = list.iter().find(|p| !matches(p)) {
                return Err(format!(
                    "{}:{}: {field}: '{}' matches no case (see: poetry-harness list)",
                    self.file,
                    p.line,
                    p.prefix.escape_debug()
                ));
            }
        }
        let keyed = self
            .weights
            .iter()
            .map(|(p, _)| ("weights", p))
            .chain(self.visibility.iter().map(|(p, _)| ("visibility", p)));
        for (field, p) in keyed {
            if !matches(p) {
                return Err(format!(
                    "{}:{}: {field}: '{}' matches no case (see: poetry-harness list)",
                    self.file,
                    p.line,
                    p.prefix.escape_debug()
                ));
            }
        }
        let chosen: Vec<&Case> = all
            .into_iter()
            .filter(|c| {
                (self.cases.is_empty() || self.cases.iter().any(|p| c.id.starts_with(&p.prefix)))
                    && !self.exclude.iter().any(|p| c.id.starts_with(&p.prefix))
            })
            .collect();
        if chosen.is_empty() {
            return Err(format!(
                "{}: cases and exclude leave no case to grade",
                self.file
            ));
        }
        Ok(chosen)
    }

    /// A case's points: those of the longest matching `weights` prefix,
    /// else 1.
    pub fn points(&self, id: &str) -> f64 {
        self.weights
            .iter()
            .filter(|(p, _)| id.starts_with(&p.prefix))
            .max_by_key(|(p, _)| p.prefix.len())
            .map_or(1.0, |(_, x)| *x)
    }

    /// Who sees a case's result on Gradescope: the longest matching
    /// `visibility` prefix's, else `default_visibility`.
    pub fn visibility(&self, id: &str) -> Visibility {
        self.visibility
            .iter()
            .filter(|(p, _)| id.starts_with(&p.prefix))
            .max_by_key(|(p, _)| p.prefix.len())
            .map_or(self.default_visibility, |(_, v)| *v)
    }

    /// How `cases` are scored against `target` (none: the simulator's
    /// reference implementations): each case's points, and the cases
    /// excused when UNSUPPORTED (see the module docs).
    pub fn scoring(&self, cases: &[&Case], target: Option<&LiveTarget>) -> Scoring {
        let mut scoring = Scoring {
            default_visibility: self.default_visibility,
            ..Scoring::default()
        };
        for case in cases {
            scoring
                .points
                .insert(case.id.clone(), self.points(&case.id));
            scoring
                .visibility
                .insert(case.id.clone(), self.visibility(&case.id));
            let excused = match target {
                Some(t) => {
                    let mut lacks = t.lacks.clone();
                    if let Some(s) = t.roles.get(&case.role) {
                        lacks.extend(s.lacks.iter().copied());
                    }
                    // Whether it plays the role or not: leaving a role
                    // out is not excused, a lack of it is.
                    crate::verdict::precheck_parts(case, &t.name, true, &lacks, self.profile)
                        .is_some()
                        || crate::backend::live::live_unsupported(case).is_some()
                }
                None => crate::verdict::precheck_parts(case, "", true, &[], self.profile).is_some(),
            };
            if excused {
                scoring.excused.insert(case.id.clone());
            }
        }
        scoring
    }

    /// Checks that a manifest relaxes nothing (see the module docs);
    /// `file` and `text` are the manifest's, for `file:line: field`
    /// messages.
    pub fn check_manifest(&self, m: &Manifest, file: &str, text: &str) -> Result<(), String> {
        if let Some(p) = m.profile {
            if p != self.profile {
                return Err(format!(
                    "{file}{}: profile: the grading policy ({}) judges every case under the {} profile; \
                     a manifest cannot choose {} (remove `profile`)",
                    at(key_line(text, None, "profile")),
                    self.file,
                    profile_name(self.profile),
                    profile_name(p)
                ));
            }
        }
        let refuse_lack = |f: Feature, line: Option<usize>, field: &str| {
            let allowed = if self.allowed_lacks.is_empty() {
                "none".to_string()
            } else {
                self.allowed_lacks
                    .iter()
                    .map(|f| feature_name(*f))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "{file}{}: {field}: the grading policy ({}) does not allow declaring '{}' lacking \
                 (allowed: {allowed}); remove it, and its cases are graded",
                at(line),
                self.file,
                feature_name(f)
            )
        };
        if let Some(f) = m.lacks.iter().find(|f| !self.allowed_lacks.contains(f)) {
            return Err(refuse_lack(*f, key_line(text, None, "lacks"), "lacks"));
        }
        let refuse_env = |name: &str, line: Option<usize>, field: &str| {
            let allowed = if self.allowed_env.is_empty() {
                "none".to_string()
            } else {
                self.allowed_env.join(", ")
            };
            format!(
                "{file}{}: {field}: the grading policy ({}) does not pass '{}' to programs \
                 (allowed_env: {allowed})",
                at(line),
                self.file,
                name.escape_debug()
            )
        };
        if let Some(n) = m.env.iter().find(|n| !self.allowed_env.contains(n)) {
            return Err(refuse_env(n, key_line(text, None, "env"), "env"));
        }
        for role in Role::ALL {
            let Some(rc) = m.role(role) else { continue };
            let t = table(role);
            if let Some(f) = rc.lacks.iter().find(|f| !self.allowed_lacks.contains(f)) {
                return Err(refuse_lack(
                    *f,
                    key_line(text, Some(t), "lacks"),
                    &format!("[{t}] lacks"),
                ));
            }
            if let Some(n) = rc.env.iter().find(|n| !self.allowed_env.contains(n)) {
                return Err(refuse_env(
                    n,
                    key_line(text, Some(t), "env"),
                    &format!("[{t}] env"),
                ));
            }
            let max = self
                .max_startup_timeout
                .get(&role)
                .copied()
                .unwrap_or(MAX_STARTUP_SECS);
            if rc.startup_timeout > max {
                return Err(format!(
                    "{file}{}: [{t}] startup_timeout: '{}' is above the grading policy's maximum \
                     for {t} ({} seconds, {})",
                    at(key_line(text, Some(t), "startup_timeout")),
                    number(rc.startup_timeout),
                    number(max),
                    self.file
                ));
            }
        }
        if let Some(s) = m.time_scale {
            let line = at(key_line(text, None, "time_scale"));
            match self.max_manifest_time_scale {
                None => {
                    return Err(format!(
                        "{file}{line}: time_scale: the grading policy ({}) sets the time scale \
                         ({}); remove `time_scale` from the manifest",
                        self.file,
                        number(self.time_scale)
                    ))
                }
                Some(max) if s > max => {
                    return Err(format!(
                        "{file}{line}: time_scale: '{}' is above the grading policy's \
                         max_manifest_time_scale ({}, {})",
                        number(s),
                        number(max),
                        self.file
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The time scale a manifest's programs run at: the manifest's when
    /// the policy lets it set one (see [`Policy::check_manifest`]), else
    /// the policy's.
    pub fn time_scale_for(&self, m: Option<&Manifest>) -> f64 {
        match (self.max_manifest_time_scale, m.and_then(|m| m.time_scale)) {
            (Some(_), Some(s)) => s,
            _ => self.time_scale,
        }
    }
}

fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::Strict => "strict",
        Profile::Tutorial => "tutorial",
    }
}

/// Points earned of points possible.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Score {
    /// Points of the cases judged and not failing.
    pub earned: f64,
    /// Points of every case counted.
    pub possible: f64,
    /// Cases not counted (UNSUPPORTED by something the student is excused from).
    pub not_counted: usize,
}

impl std::fmt::Display for Score {
    /// `score: 7 of 9 points (77.8%)`, and the cases not counted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "score: {} of {} points",
            number(self.earned),
            number(self.possible)
        )?;
        if self.possible > 0.0 {
            write!(f, " ({:.1}%)", 100.0 * self.earned / self.possible)?;
        }
        if self.not_counted > 0 {
            write!(
                f,
                "; {} case(s) not counted (an allowed lack, the tutorial profile, or simulator only)",
                self.not_counted
            )?;
        }
        Ok(())
    }
}

/// What a run needs to score its results: each case's points, and the
/// cases excused when UNSUPPORTED.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scoring {
    /// Points per case ID.
    pub points: HashMap<String, f64>,
    /// Case IDs whose UNSUPPORTED verdict does not count.
    pub excused: HashSet<String>,
    /// Who sees each case's result on Gradescope, per case ID.
    pub visibility: HashMap<String, Visibility>,
    /// Who sees the result of a case missing from `visibility`, and the
    /// submission's own (its score) on Gradescope.
    pub default_visibility: Visibility,
}

impl Scoring {
    /// A case's points (1 when `points` does not name it).
    pub fn points_of(&self, id: &str) -> f64 {
        self.points.get(id).copied().unwrap_or(1.0)
    }

    /// Who sees a case's result on Gradescope.
    pub fn visibility_of(&self, id: &str) -> Visibility {
        self.visibility
            .get(id)
            .copied()
            .unwrap_or(self.default_visibility)
    }

    /// How one result scores, judged under `profile`.
    pub fn case_score(&self, r: &CaseResult, profile: Profile) -> CaseScore {
        let points = self.points_of(&r.case.id);
        let judged = r.status == Status::Judged;
        if judged && r.verdict.kind == Kind::Unsupported && self.excused.contains(&r.case.id) {
            CaseScore::NotCounted
        } else if judged && r.verdict.kind != Kind::Unsupported && !r.verdict.kind.fails(profile) {
            CaseScore::Earned(points)
        } else {
            CaseScore::Lost(points)
        }
    }

    /// Scores `results`, judged under `profile`. A case missing from
    /// `points` is worth 1.
    pub fn score(&self, results: &[CaseResult], profile: Profile) -> Score {
        let mut s = Score::default();
        for r in results {
            match self.case_score(r, profile) {
                CaseScore::NotCounted => s.not_counted += 1,
                CaseScore::Earned(points) => {
                    s.possible += points;
                    s.earned += points;
                }
                CaseScore::Lost(points) => s.possible += points,
            }
        }
        s
    }
}

/// How one case scores (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CaseScore {
    /// UNSUPPORTED by something the student is excused from: no points
    /// possible.
    NotCounted,
    /// Judged and not failing: its points earned.
    Earned(f64),
    /// Anything else: its points possible, none earned.
    Lost(f64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Manifest {
        Manifest::parse("m.toml", text).unwrap()
    }

    fn refuses(policy: &str, m: &str, want: &str) {
        let p = Policy::parse("p.toml", policy).unwrap();
        let err = p.check_manifest(&manifest(m), "m.toml", m).unwrap_err();
        assert!(err.starts_with(want), "{err}\nwanted: {want}");
    }

    #[test]
    fn an_empty_policy_is_strict_with_the_default_scale() {
        let p = Policy::parse("p.toml", "").unwrap();
        assert_eq!(p.profile, Profile::Strict);
        assert_eq!(p.time_scale, crate::backend::live::DEFAULT_TIME_SCALE);
        assert_eq!(p.points("client.anything"), 1.0);
    }

    #[test]
    fn parse_errors_name_the_file_line_and_field() {
        for (text, want) in [
            (
                "profile = \"strict\"\nprofil = \"x\"\n",
                "p.toml:2: unknown field `profil`",
            ),
            (
                "profile = \"lenient\"\n",
                "p.toml:1: unknown variant `lenient`",
            ),
            (
                "allowed_lacks = [\"timeouts\", \"flying\"]\n",
                "p.toml:1: unknown variant `flying`",
            ),
            (
                "\n\ntime_scale = 0\n",
                "p.toml:3: time_scale: '0' must be at least 0.001",
            ),
            (
                "time_scale = 1e300\n",
                "p.toml:1: time_scale: '1e300' must be at least",
            ),
            ("time_scale = nan\n", "p.toml:1: time_scale: 'NaN'"),
            (
                "max_manifest_time_scale = 11\n",
                "p.toml:1: max_manifest_time_scale: '11'",
            ),
            (
                "[max_startup_timeout]\nserver = 0\n",
                "p.toml:2: max_startup_timeout.server: '0' must be above 0",
            ),
            (
                "[max_startup_timeout]\nservr = 3\n",
                "p.toml:2: unknown field `servr`",
            ),
            (
                "[weights]\n\"client.\" = -1\n",
                "p.toml:2: weights: '-1' must be at least 0",
            ),
            (
                "[weights]\n\"client.\" = \"two\"\n",
                "p.toml:2: invalid type",
            ),
            ("cases = \"client.\"\n", "p.toml:1: invalid type"),
            (
                "allowed_env = [\"A\",\n\"B=1\"]\n",
                "p.toml:2: allowed_env: 'B=1' holds '='",
            ),
            (
                "\ndefault_visibility = \"secret\"\n",
                "p.toml:2: default_visibility: 'secret' is not a visibility (known: visible, hidden, after_due_date, after_published)",
            ),
            (
                "[visibility]\n\"client.\" = \"visible\"\n\"proxy.\" = \"later\"\n",
                "p.toml:3: visibility.\"proxy.\": 'later' is not a visibility",
            ),
            (
                "[visibility]\n\"client.\" = 2\n",
                "p.toml:2: invalid type",
            ),
        ] {
            let err = Policy::parse("p.toml", text).unwrap_err();
            assert!(err.starts_with(want), "{text:?}: {err}\nwanted: {want}");
        }
    }

    #[test]
    fn selection_and_weights_follow_the_prefixes() {
        let catalog = Catalog::builtin().unwrap();
        let p = Policy::parse(
            "p.toml",
            "cases = [\"client.\", \"server.\"]\nexclude = [\"client.reset\"]\n[weights]\n\"client.\" = 2\n\"client.utf8-split\" = 5\n",
        )
        .unwrap();
        let chosen = p.select(&catalog).unwrap();
        assert!(!chosen.is_empty());
        assert!(chosen.iter().all(|c| (c.id.starts_with("client.")
            || c.id.starts_with("server."))
            && !c.id.starts_with("client.reset")));
        assert!(chosen.iter().any(|c| c.id.starts_with("server.")));
        assert_eq!(p.points("client.utf8-split"), 5.0);
        assert_eq!(p.points("client.other"), 2.0);
        assert_eq!(p.points("server.x"), 1.0);
    }

    #[test]
    fn visibility_follows_the_longest_prefix_else_the_default() {
        let catalog = Catalog::builtin().unwrap();
        let p = Policy::parse(
            "p.toml",
            "default_visibility = \"after_published\"\n[visibility]\n\"client.\" = \"visible\"\n\"client.utf8-split\" = \"hidden\"\n",
        )
        .unwrap();
        assert_eq!(p.visibility("client.utf8-split"), Visibility::Hidden);
        assert_eq!(p.visibility("client.fast-poem"), Visibility::Visible);
        assert_eq!(p.visibility("server.x"), Visibility::AfterPublished);
        let cases = p.select(&catalog).unwrap();
        let scoring = p.scoring(&cases, None);
        assert_eq!(
            scoring.visibility_of("client.utf8-split"),
            Visibility::Hidden
        );
        assert_eq!(scoring.default_visibility, Visibility::AfterPublished);
        // Without a policy: every case visible, worth 1.
        let none = Policy::none(Profile::Tutorial);
        assert_eq!(none.profile, Profile::Tutorial);
        assert_eq!(none.visibility("client.utf8-split"), Visibility::Visible);
        assert_eq!(none.points("client.utf8-split"), 1.0);
    }

    #[test]
    fn a_prefix_matching_no_case_is_an_error_naming_its_line() {
        let catalog = Catalog::builtin().unwrap();
        for (text, want) in [
            (
                "cases = [\"clent.\"]\n",
                "p.toml:1: cases: 'clent.' matches no case",
            ),
            (
                "\nexclude = [\n\"nope\"]\n",
                "p.toml:3: exclude: 'nope' matches no case",
            ),
            (
                "[weights]\n\"client.\" = 1\n\"clint.\" = 2\n",
                "p.toml:3: weights: 'clint.' matches no case",
            ),
            (
                "[visibility]\n\"clint.\" = \"hidden\"\n",
                "p.toml:2: visibility: 'clint.' matches no case",
            ),
            (
                "cases = [\"client.\"]\nexclude = [\"client.\"]\n",
                "p.toml: cases and exclude leave no case",
            ),
        ] {
            let err = Policy::parse("p.toml", text)
                .unwrap()
                .select(&catalog)
                .unwrap_err();
            assert!(err.starts_with(want), "{err}\nwanted: {want}");
        }
    }

    const CLIENT: &str = "name = \"a\"\n[client]\ncommand = \"p {addrs}\"\n";

    #[test]
    fn a_manifest_cannot_relax_the_profile() {
        refuses(
            "profile = \"strict\"\n",
            &format!("profile = \"tutorial\"\n{CLIENT}"),
            "m.toml:1: profile: the grading policy (p.toml) judges every case under the strict profile; a manifest cannot choose tutorial",
        );
        // Nor choose another one at all: the policy's holds.
        refuses(
            "profile = \"tutorial\"\n",
            &format!("\nprofile = \"strict\"\n{CLIENT}"),
            "m.toml:2: profile: the grading policy (p.toml) judges every case under the tutorial profile; a manifest cannot choose strict",
        );
        let p = Policy::parse("p.toml", "profile = \"tutorial\"\n").unwrap();
        let m = format!("profile = \"tutorial\"\n{CLIENT}");
        assert_eq!(p.check_manifest(&manifest(&m), "m.toml", &m), Ok(()));
    }

    #[test]
    fn a_manifest_declares_only_allowed_lacks() {
        let policy = "allowed_lacks = [\"extra-transforms\"]\n";
        refuses(
            policy,
            &format!("lacks = [\"extra-transforms\", \"timeouts\"]\n{CLIENT}"),
            "m.toml:1: lacks: the grading policy (p.toml) does not allow declaring 'timeouts' lacking (allowed: extra-transforms)",
        );
        refuses(
            policy,
            &format!("{CLIENT}lacks = [\"pacing\"]\n"),
            "m.toml:4: [client] lacks: the grading policy (p.toml) does not allow declaring 'pacing'",
        );
        refuses(
            "",
            &format!("lacks = [\"timeouts\"]\n{CLIENT}"),
            "m.toml:1: lacks: the grading policy (p.toml) does not allow declaring 'timeouts' lacking (allowed: none)",
        );
        let p = Policy::parse("p.toml", policy).unwrap();
        let m = format!("lacks = [\"extra-transforms\"]\n{CLIENT}");
        assert_eq!(p.check_manifest(&manifest(&m), "m.toml", &m), Ok(()));
    }

    #[test]
    fn a_manifest_passes_only_allowed_variables() {
        let policy = "allowed_env = [\"JAVA_OPTS\"]\n";
        refuses(
            policy,
            &format!("env = [\"JAVA_OPTS\", \"AWS_SECRET_ACCESS_KEY\"]\n{CLIENT}"),
            "m.toml:1: env: the grading policy (p.toml) does not pass 'AWS_SECRET_ACCESS_KEY' to programs (allowed_env: JAVA_OPTS)",
        );
        refuses(
            "",
            &format!("{CLIENT}env = [\"GITHUB_TOKEN\"]\n"),
            "m.toml:4: [client] env: the grading policy (p.toml) does not pass 'GITHUB_TOKEN' to programs (allowed_env: none)",
        );
        let p = Policy::parse("p.toml", policy).unwrap();
        let m = format!("env = [\"JAVA_OPTS\"]\n{CLIENT}");
        assert_eq!(p.check_manifest(&manifest(&m), "m.toml", &m), Ok(()));
    }

    #[test]
    fn a_manifest_cannot_relax_time_scale_or_startup() {
        refuses(
            "time_scale = 0.1\n",
            &format!("time_scale = 1\n{CLIENT}"),
            "m.toml:1: time_scale: the grading policy (p.toml) sets the time scale (0.1)",
        );
        refuses(
            "max_manifest_time_scale = 0.2\n",
            &format!("time_scale = 0.5\n{CLIENT}"),
            "m.toml:1: time_scale: '0.5' is above the grading policy's max_manifest_time_scale (0.2",
        );
        refuses(
            "[max_startup_timeout]\nclient = 5\n",
            &format!("{CLIENT}startup_timeout = 6\n"),
            "m.toml:4: [client] startup_timeout: '6' is above the grading policy's maximum for client (5 seconds",
        );
        let p = Policy::parse("p.toml", "max_manifest_time_scale = 0.2\n").unwrap();
        let m = manifest(&format!("time_scale = 0.1\n{CLIENT}"));
        assert_eq!(p.time_scale_for(Some(&m)), 0.1);
        let strict = Policy::parse("p.toml", "time_scale = 0.3\n").unwrap();
        assert_eq!(strict.time_scale_for(Some(&manifest(CLIENT))), 0.3);
    }

    #[test]
    fn the_score_counts_excused_unsupported_cases_out() {
        use crate::verdict::Verdict;
        let catalog = Catalog::builtin().unwrap();
        let cases: Vec<&Case> = catalog.select(&[]).into_iter().take(5).collect();
        let result = |c: &Case, kind: Kind| {
            let mut r = CaseResult::interrupted(c);
            r.status = Status::Judged;
            r.verdict = Verdict {
                kind,
                reason: "r".into(),
                failed: Vec::new(),
                hints: Vec::new(),
            };
            r
        };
        let results = vec![
            result(cases[0], Kind::Pass),
            result(cases[1], Kind::Fail),
            result(cases[2], Kind::Unsupported), // excused
            result(cases[3], Kind::Unsupported), // not excused: 0 points
            CaseResult::interrupted(cases[4]),
        ];
        let scoring = Scoring {
            points: cases.iter().map(|c| (c.id.clone(), 2.0)).collect(),
            excused: [cases[2].id.clone()].into(),
            ..Scoring::default()
        };
        let s = scoring.score(&results, Profile::Strict);
        assert_eq!(
            s,
            Score {
                earned: 2.0,
                possible: 8.0,
                not_counted: 1
            }
        );
        assert_eq!(
            s.to_string(),
            "score: 2 of 8 points (25.0%); 1 case(s) not counted (an allowed lack, the tutorial profile, or simulator only)"
        );
        // NON-STRICT earns its points only under the tutorial profile.
        let ns = vec![result(cases[0], Kind::NonStrict)];
        assert_eq!(scoring.score(&ns, Profile::Strict).earned, 0.0);
        assert_eq!(scoring.score(&ns, Profile::Tutorial).earned, 2.0);
    }
}

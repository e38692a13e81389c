//! The reference implementations, or one mutant of the zoo, as real
//! programs: the `poetry-harness serve` and `get` commands as command
//! templates for the live backend.
//!
//! This is the live backend's ground truth. The reference run this way must
//! pass every case the live backend can run, and each mutant run this way
//! (`serve … --mutant NAME`, `get … --mutant NAME`) must be killed by the
//! cases it lists, as in the simulator.
//!
//! ```no_run
//! use poetry_harness::backend::live::reference_programs::ReferencePrograms;
//!
//! let exe = std::env::current_exe().unwrap();
//! let programs = ReferencePrograms::new(exe).unwrap();
//! let target = programs.reference();
//! assert_eq!(target.roles.len(), 5);
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use indexmap::IndexMap;

use super::{live_unsupported, template, LiveSubject, DEFAULT_TIME_SCALE};
use crate::case::{Case, Role};
use crate::engine::{self, CaseResult, EngineOptions, LiveTarget};
use crate::mutants::{Assessment, Mutant};
use crate::verdict::{Kind, Profile};

/// The arguments after the executable, one template per role.
///
/// Every server case runs `serve slow`: an unpaced case passes the poem's
/// size for `{num_bytes}` and 0 for `{delay}`, which is the fast server's
/// behaviour (the whole poem in one write). Clients run with `--quiet`, so
/// stderr holds only failure and fallback lines.
pub const TEMPLATES: &[(Role, &str)] = &[
    (
        Role::Server,
        "serve slow {poem} --port {port} --num-bytes {num_bytes} --delay {delay}",
    ),
    (
        Role::Client,
        "get --quiet --connect-timeout {connect_timeout} --idle-timeout {idle_timeout} {addrs}",
    ),
    (
        Role::TransformServer,
        "serve transform --port {port} --idle-timeout {idle_timeout}",
    ),
    (
        Role::TransformClient,
        "get --quiet --transform {xform} --transform-name {transform} \
         --connect-timeout {connect_timeout} --idle-timeout {idle_timeout} \
         --transform-timeout {transform_timeout} {addrs}",
    ),
    (
        Role::Proxy,
        "serve proxy {upstream} --port {port} \
         --connect-timeout {connect_timeout} --idle-timeout {idle_timeout}",
    ),
];

/// Builds live targets that run the `poetry-harness` executable at a given
/// path: tests pass `env!("CARGO_BIN_EXE_poetry-harness")`, the CLI its
/// own `std::env::current_exe()`.
#[derive(Debug, Clone)]
pub struct ReferencePrograms {
    exe: PathBuf,
    time_scale: f64,
}

impl ReferencePrograms {
    /// Programs run from `exe`, at the default time scale. A path with a
    /// brace is refused: command templates reserve braces for placeholders.
    pub fn new(exe: impl Into<PathBuf>) -> Result<Self, String> {
        let exe = exe.into();
        let text = exe.to_str().ok_or_else(|| {
            format!(
                "executable path '{}' is not valid UTF-8, so no command template can name it",
                exe.display()
            )
        })?;
        if text.contains(['{', '}']) {
            return Err(format!(
                "executable path '{text}' has a brace, which command templates reserve for placeholders"
            ));
        }
        Ok(ReferencePrograms {
            exe,
            time_scale: DEFAULT_TIME_SCALE,
        })
    }

    /// Multiplies every delay and timeout of the cases by `scale`.
    pub fn time_scale(&mut self, scale: f64) -> &mut Self {
        self.time_scale = scale;
        self
    }

    /// The executable the commands run.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// The command template of `role`: the reference, or with `mutant` the
    /// mutant of that name (which must be of `role` for the program to start).
    pub fn command(&self, role: Role, mutant: Option<&str>) -> String {
        let args = TEMPLATES
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, args)| *args)
            .unwrap_or_default();
        // `new` checked the path is UTF-8.
        let exe = template::shell_quote(&self.exe.to_string_lossy());
        match mutant {
            Some(name) => format!("{exe} {args} --mutant {}", template::shell_quote(name)),
            None => format!("{exe} {args}"),
        }
    }

    /// A program for `role`.
    fn subject(&self, role: Role, mutant: Option<&str>) -> LiveSubject {
        LiveSubject {
            time_scale: self.time_scale,
            ..LiveSubject::new(role, self.command(role, mutant))
        }
    }

    /// The reference implementations of all five roles.
    pub fn reference(&self) -> LiveTarget {
        let roles: IndexMap<Role, LiveSubject> = Role::ALL
            .into_iter()
            .map(|role| (role, self.subject(role, None)))
            .collect();
        LiveTarget {
            name: "reference (programs)".into(),
            lacks: Vec::new(),
            roles,
            profile: None,
        }
    }

    /// One mutant as a program, for its role only: the cases of the other
    /// roles would only run the reference again.
    pub fn mutant(&self, mutant: &Mutant) -> LiveTarget {
        let mut roles = IndexMap::new();
        roles.insert(mutant.role, self.subject(mutant.role, Some(mutant.name)));
        LiveTarget {
            name: mutant.name.to_string(),
            lacks: (mutant.build)().lacks,
            roles,
            profile: None,
        }
    }
}

/// The live mutation score the project promises (DESIGN.md, "Targets"): the
/// share of mutants killed when run as programs, in percent.
pub const MIN_LIVE_SCORE_PERCENT: f64 = 95.0;

/// Killed mutants and all mutants, as a percentage (0 for no mutants).
pub fn live_score_percent(assessments: &[LiveAssessment]) -> f64 {
    let killed = assessments.iter().filter(|a| a.killed()).count();
    if assessments.is_empty() {
        0.0
    } else {
        100.0 * killed as f64 / assessments.len() as f64
    }
}

/// Which cases a live assessment runs against each mutant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MutantCases {
    /// Only the cases its `killed_by` lists: fast enough for CI.
    #[default]
    Listed,
    /// Every case of its role.
    All,
}

/// What running one mutant as a program showed.
#[derive(Debug, Clone)]
pub struct LiveAssessment {
    /// Killers, missed and unknown cases, as in the simulator's assessment;
    /// a listed case the live backend cannot run is neither killer nor missed.
    pub assessment: Assessment,
    /// The cases of its `killed_by` that the live backend cannot run, with why.
    pub live_unsupported: Vec<(&'static str, &'static str)>,
    /// Every case run (or found unsupported), in catalog order.
    pub results: Vec<CaseResult>,
}

impl LiveAssessment {
    /// Whether at least one case killed the mutant live.
    pub fn killed(&self) -> bool {
        self.assessment.killed()
    }

    /// For a survivor: why the live backend could not kill it, when every
    /// case of its `killed_by` is one it cannot run (`case: reason`, joined
    /// by `; `). `None` for a killed mutant and for an unexplained survivor.
    pub fn explanation(&self) -> Option<String> {
        if let (false, Some(why)) = (
            self.killed(),
            crate::mutants::live_blind(self.assessment.mutant.name),
        ) {
            return Some(format!(
                "{}: not observable outside the process: {why}",
                self.assessment.mutant.killed_by.join(", ")
            ));
        }
        let listed = self.assessment.mutant.killed_by;
        let all_unsupported = !listed.is_empty()
            && listed
                .iter()
                .all(|id| self.live_unsupported.iter().any(|(u, _)| u == id));
        (!self.killed() && all_unsupported).then(|| {
            self.live_unsupported
                .iter()
                .map(|(id, why)| format!("{id}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Whether the live backend did its part: killed it, or it survived
    /// only cases the live backend cannot run.
    pub fn acceptable(&self) -> bool {
        self.killed() || self.explanation().is_some()
    }
}

/// Runs every mutant of `zoo` as a program against its cases from `cases`
/// under the strict profile, on `jobs` threads (each runs one mutant's
/// cases at a time); results in the order of `zoo`.
pub fn assess_mutants(
    programs: &ReferencePrograms,
    zoo: &[Mutant],
    cases: &[&Case],
    which: MutantCases,
    jobs: usize,
) -> Vec<LiveAssessment> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<LiveAssessment>>> = zoo.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, zoo.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(mutant) = zoo.get(i) else { break };
                let assessment = assess_mutant(programs, mutant, cases, which);
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(assessment);
                }
            });
        }
    });
    slots
        .into_iter()
        .filter_map(|s| s.into_inner().ok().flatten())
        .collect()
}

/// Runs one mutant as a program against its cases (see [`assess_mutants`]).
pub fn assess_mutant(
    programs: &ReferencePrograms,
    mutant: &Mutant,
    cases: &[&Case],
    which: MutantCases,
) -> LiveAssessment {
    let of_role = |c: &&&Case| c.role == mutant.role;
    let listed = |c: &&&Case| mutant.killed_by.contains(&c.id.as_str());
    let mine: Vec<&Case> = match which {
        MutantCases::Listed => cases
            .iter()
            .filter(of_role)
            .filter(listed)
            .copied()
            .collect(),
        MutantCases::All => cases.iter().filter(of_role).copied().collect(),
    };
    let opts = EngineOptions {
        profile: Profile::Strict,
        jobs: 1,
        ..EngineOptions::default()
    };
    let results = engine::run_all_live(&mine, &programs.mutant(mutant), &opts, &|_| {});
    let killers: Vec<(String, Kind)> = results
        .iter()
        .filter(|r| r.verdict.kind.fails(opts.profile))
        .map(|r| (r.case.id.clone(), r.verdict.kind))
        .collect();
    let find = |id: &str| cases.iter().find(|c| c.id == id && c.role == mutant.role);
    let live_unsupported: Vec<(&'static str, &'static str)> = mutant
        .killed_by
        .iter()
        .filter_map(|id| {
            find(id)
                .and_then(|c| live_unsupported(c))
                .map(|why| (*id, why))
        })
        .collect();
    let ran = |id: &str| {
        results
            .iter()
            .any(|r| r.case.id == id && r.verdict.kind != Kind::Unsupported)
    };
    let killed_by = |id: &str| killers.iter().any(|(k, _)| k == id);
    let assessment = Assessment {
        mutant: mutant.clone(),
        missed: mutant
            .killed_by
            .iter()
            .copied()
            .filter(|id| ran(id) && !killed_by(id))
            .collect(),
        unknown: mutant
            .killed_by
            .iter()
            .copied()
            .filter(|id| find(id).is_none())
            .collect(),
        // Live, a case it cannot run is in `live_unsupported`, with why.
        elsewhere: Vec::new(),
        killers,
        cases_run: results
            .iter()
            .filter(|r| r.verdict.kind != Kind::Unsupported)
            .count(),
    };
    LiveAssessment {
        assessment,
        live_unsupported,
        results,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_a_template_with_known_placeholders() {
        let programs = ReferencePrograms::new("/usr/bin/poetry-harness").unwrap();
        for role in Role::ALL {
            let cmd = programs.command(role, None);
            assert!(cmd.starts_with("/usr/bin/poetry-harness "), "{role}: {cmd}");
            template::check(&cmd).unwrap_or_else(|e| panic!("{role}: {e}"));
        }
    }

    #[test]
    fn a_mutant_is_named_by_the_hidden_flag() {
        let programs = ReferencePrograms::new("/bin/ph").unwrap();
        let cmd = programs.command(Role::Client, Some("client-serial"));
        assert!(cmd.ends_with(" {addrs} --mutant client-serial"), "{cmd}");
    }

    #[test]
    fn a_path_with_a_brace_is_refused_and_quoted() {
        let err = ReferencePrograms::new("/tmp/{x}/poetry-harness").unwrap_err();
        assert!(err.contains("'/tmp/{x}/poetry-harness'"), "{err}");
    }

    fn survivor(
        killed_by: &'static [&'static str],
        unsupported: &[&'static str],
    ) -> LiveAssessment {
        let mutant = Mutant {
            name: "client-test",
            role: Role::Client,
            bug: "a bug",
            killed_by,
            build: crate::roles::Implementation::reference,
        };
        LiveAssessment {
            assessment: Assessment {
                mutant,
                killers: Vec::new(),
                missed: Vec::new(),
                unknown: Vec::new(),
                elsewhere: Vec::new(),
                cases_run: 0,
            },
            live_unsupported: unsupported
                .iter()
                .map(|id| (*id, "needs the simulator"))
                .collect(),
            results: Vec::new(),
        }
    }

    #[test]
    fn a_survivor_is_explained_only_when_every_listed_case_cannot_run_live() {
        let explained = survivor(&["client.a", "client.b"], &["client.a", "client.b"]);
        let why = explained.explanation().expect("explained");
        assert!(why.contains("client.a: needs the simulator"), "{why}");
        assert!(why.contains("client.b"), "{why}");
        assert!(explained.acceptable());
        let unexplained = survivor(&["client.a", "client.b"], &["client.a"]);
        assert_eq!(unexplained.explanation(), None);
        assert!(!unexplained.acceptable());
        let lists_nothing = survivor(&[], &[]);
        assert_eq!(lists_nothing.explanation(), None);
    }

    #[test]
    fn a_killed_mutant_needs_no_explanation() {
        let mut killed = survivor(&["client.a"], &["client.a"]);
        killed
            .assessment
            .killers
            .push(("client.b".into(), Kind::Fail));
        assert_eq!(killed.explanation(), None);
        assert!(killed.acceptable());
        assert_eq!(
            live_score_percent(&[killed.clone(), survivor(&[], &[])]),
            50.0
        );
    }

    #[test]
    fn a_path_with_a_space_is_quoted() {
        let programs = ReferencePrograms::new("/tmp/my dir/ph").unwrap();
        let cmd = programs.command(Role::Server, None);
        assert!(cmd.starts_with("'/tmp/my dir/ph' serve slow"), "{cmd}");
    }
}

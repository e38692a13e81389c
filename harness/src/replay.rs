//! The command that repeats a simulated run: `poetry-harness replay ID
//! [--seed N] [--engine turmoil] [--network PROFILE] [--mutant NAME]
//! [--profile P] [--suites FILE]`.
//!
//! A [`Replay`] is made from what a run used (the case and the catalog
//! file it came from, the implementation, the [`RunOptions`]) and nothing
//! else, so the command a report prints gives the same transcript byte for
//! byte; the `replay` subcommand parses that command back into a [`Replay`]
//! and runs it with [`Replay::run`]. What `--seed` means is decided once,
//! by [`RunOptions::from_seed_flag`] and its inverse
//! [`RunOptions::seed_flag`].

use std::fmt;
use std::path::{Path, PathBuf};

use crate::backend::sim::{RunOptions, SimEngine};
use crate::case::Case;
use crate::catalog::{Catalog, CatalogError};
use crate::engine::{self, CaseResult, EngineOptions};
use crate::roles::{Builtin, Implementation};
use crate::verdict::Profile;

/// One simulated run, as the command line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The case ID.
    pub case: String,
    /// Seed and chunking, the engine and the network profile.
    pub run: RunOptions,
    /// The reference, or a mutant of the zoo.
    pub implementation: Builtin,
    /// The catalog file the case is read from (`None`: the built-in catalog).
    pub suites: Option<PathBuf>,
    /// The profile the replay judges against.
    pub profile: Profile,
}

/// Why a replay cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The catalog does not load.
    #[error("{0}")]
    Catalog(#[from] CatalogError),
    /// No case has the ID.
    #[error("no case '{id}' in {catalog} (try: poetry-harness list{suites})")]
    UnknownCase {
        /// The ID asked for.
        id: String,
        /// Which catalog was searched.
        catalog: String,
        /// ` --suites PATH`, or nothing for the built-in catalog.
        suites: String,
    },
    /// No mutant has the name.
    #[error("unknown mutant '{name}' (known: {known})")]
    UnknownMutant {
        /// The name asked for.
        name: String,
        /// The names of the zoo, comma-separated.
        known: String,
    },
}

impl Replay {
    /// The replay of `case` run against `imp` with `run`, judged by the
    /// strict profile; `None` for an implementation the binary cannot run
    /// by name (one of your own).
    pub fn of(case: &Case, imp: &Implementation, run: RunOptions) -> Option<Replay> {
        Some(Replay {
            case: case.id.clone(),
            run,
            implementation: imp.builtin?,
            suites: case.source.clone(),
            profile: Profile::Strict,
        })
    }

    /// The same replay, judged by `profile`.
    pub fn judged_by(mut self, profile: Profile) -> Replay {
        self.profile = profile;
        self
    }

    /// The arguments after `poetry-harness`, flags in a fixed order.
    pub fn args(&self) -> Vec<String> {
        let mut out = vec!["replay".to_string(), self.case.clone()];
        if let Some(seed) = self.run.seed_flag() {
            out.extend(["--seed".to_string(), seed.to_string()]);
        }
        if self.run.engine() == SimEngine::Turmoil {
            out.extend(["--engine".to_string(), "turmoil".to_string()]);
        }
        if let Some(network) = self.run.network() {
            out.extend(["--network".to_string(), network.to_string()]);
        }
        if let Builtin::Mutant(name) = self.implementation {
            out.extend(["--mutant".to_string(), name.to_string()]);
        }
        if self.profile != Profile::Strict {
            out.extend(["--profile".to_string(), "tutorial".to_string()]);
        }
        if let Some(path) = &self.suites {
            out.extend(["--suites".to_string(), path.display().to_string()]);
        }
        out
    }

    /// The implementation of `--mutant NAME`, or the reference without it.
    pub fn implementation_named(name: Option<&str>) -> Result<Builtin, ReplayError> {
        let Some(name) = name else {
            return Ok(Builtin::Reference);
        };
        crate::mutants::by_name(name)
            .map(|m| Builtin::Mutant(m.name))
            .ok_or_else(|| ReplayError::UnknownMutant {
                name: name.to_string(),
                known: crate::mutants::all()
                    .iter()
                    .map(|m| m.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Loads the catalog, finds the case, and runs it once in the simulator.
    pub fn run(&self) -> Result<CaseResult, ReplayError> {
        let catalog = load(self.suites.as_deref())?;
        let case = catalog
            .get(&self.case)
            .ok_or_else(|| ReplayError::UnknownCase {
                id: self.case.clone(),
                catalog: match &self.suites {
                    Some(p) => format!("'{}'", p.display()),
                    None => "the built-in catalog".into(),
                },
                suites: self
                    .suites
                    .as_ref()
                    .map(|p| format!(" --suites {}", quote(&p.display().to_string())))
                    .unwrap_or_default(),
            })?;
        let opts = EngineOptions {
            profile: self.profile,
            run: self.run,
            jobs: 1,
            fail_fast: false,
            repeat: 1,
        };
        Ok(engine::run_case(
            case,
            &implementation(self.implementation),
            &opts,
        ))
    }
}

/// The catalog at `suites` (a file or a folder), or the built-in one.
fn load(suites: Option<&Path>) -> Result<Catalog, CatalogError> {
    match suites {
        Some(path) => Catalog::load_path(path),
        None => Catalog::builtin(),
    }
}

/// The implementation a [`Builtin`] names.
pub fn implementation(b: Builtin) -> Implementation {
    match b {
        Builtin::Reference => Implementation::reference(),
        Builtin::Mutant(name) => crate::mutants::by_name(name)
            .map(|m| (m.build)())
            .expect("a Builtin::Mutant names a mutant of the zoo"),
    }
}

impl fmt::Display for Replay {
    /// The command, quoted for a POSIX shell where a word needs it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("poetry-harness")?;
        for a in self.args() {
            write!(f, " {}", quote(&a))?;
        }
        Ok(())
    }
}

/// `word` as a POSIX shell reads it back: as is when it holds only safe
/// characters, else in single quotes.
pub fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The words of a command line as [`Replay`]'s `Display` writes it (plain
/// words and single-quoted ones, `'\''` for a quote), so a test can run
/// exactly what was printed.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(format!("unclosed quote in '{line}'")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(format!("a backslash ends '{line}'")),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_flag_and_options_are_inverse() {
        for run in [
            RunOptions::catalog(),
            RunOptions::perturbed(0),
            RunOptions::perturbed(1),
            RunOptions::perturbed(u64::MAX),
        ] {
            assert_eq!(RunOptions::from_seed_flag(run.seed_flag()), run);
        }
        assert_eq!(RunOptions::catalog().seed_flag(), None);
    }

    #[test]
    fn an_explored_seed_keeps_the_engine_and_the_network_profile() {
        // On the default engine without a profile, exactly the perturbed
        // run; on turmoil, turmoil's perturbed run.
        assert_eq!(RunOptions::catalog().reseeded(5), RunOptions::perturbed(5));
        let old = RunOptions::catalog().on_engine(SimEngine::Turmoil);
        assert_eq!(old.reseeded(5).engine(), SimEngine::Turmoil);
        assert_eq!(
            Replay {
                case: "client.x".into(),
                run: old.reseeded(5),
                implementation: Builtin::Reference,
                suites: None,
                profile: Profile::Strict,
            }
            .to_string(),
            "poetry-harness replay client.x --seed 5 --engine turmoil"
        );
        let run = RunOptions::catalog()
            .on_engine(SimEngine::Simnet)
            .on_network("flaky")
            .unwrap()
            .reseeded(5);
        assert_eq!(run.engine(), SimEngine::Simnet);
        assert_eq!(run.network(), Some("flaky"));
        assert_eq!(run.to_string(), "seed 5, perturbed, network flaky");
        let r = Replay {
            case: "client.x".into(),
            run,
            implementation: Builtin::Reference,
            suites: None,
            profile: Profile::Strict,
        };
        assert_eq!(
            r.to_string(),
            "poetry-harness replay client.x --seed 5 --network flaky"
        );
        let words = split_words(&r.to_string()).unwrap();
        assert_eq!(crate::cli::parse_replay(&words).unwrap(), r);
    }

    #[test]
    fn a_quoted_path_splits_back_into_one_word() {
        let r = Replay {
            case: "client.x".into(),
            run: RunOptions::perturbed(7),
            implementation: Builtin::Mutant("client-reads-once"),
            suites: Some(PathBuf::from("/tmp/it's here/c.toml")),
            profile: Profile::Tutorial,
        };
        let line = r.to_string();
        assert_eq!(
            line,
            r"poetry-harness replay client.x --seed 7 --mutant client-reads-once --profile tutorial --suites '/tmp/it'\''s here/c.toml'"
        );
        let mut want = vec!["poetry-harness".to_string()];
        want.extend(r.args());
        assert_eq!(split_words(&line).unwrap(), want);
    }

    #[test]
    fn the_catalog_run_needs_no_seed() {
        let catalog = Catalog::builtin().unwrap();
        let r = Replay::of(
            &catalog.cases[0],
            &Implementation::reference(),
            RunOptions::catalog(),
        )
        .unwrap();
        assert_eq!(
            r.to_string(),
            format!("poetry-harness replay {}", catalog.cases[0].id)
        );
    }
}

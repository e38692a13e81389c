//! The clauses of `suites/SPEC.md`, parsed so cases can cite them,
//! `explain` can quote them and the verdict can apply their `Tutorial
//! profile:` paragraphs.
//!
//! A tutorial paragraph names the relaxations it grants in brackets,
//! `Tutorial profile [reset-is-end]: ...`; each name is a [`Relaxation`],
//! whose meaning the verdict applies to every case citing the clause.

use indexmap::IndexMap;

/// The spec as shipped, built into the binary.
pub const SPEC_MD: &str = include_str!("../suites/SPEC.md");

/// What the tutorial profile accepts instead of a clause: the behaviours
/// of the series' own programs, named once here and granted by the
/// `Tutorial profile [...]:` paragraphs of SPEC.md. Every one is
/// NON-STRICT (it fails `strict`), except the two that make a case
/// UNSUPPORTED under `tutorial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relaxation {
    /// The program has no timers: a case that requires the `timeouts`
    /// feature is UNSUPPORTED under `tutorial` (instead of a TIMEOUT).
    NoTimeouts,
    /// The only transform is `cummingsify`: a case that requires
    /// `extra-transforms` is UNSUPPORTED under `tutorial`.
    CummingsifyOnly,
    /// A reset is read as the end of the poem: a client's result for a
    /// server that resets is the bytes received before it (a short poem,
    /// maybe empty, instead of `fail:reset`), a transforming client
    /// transforms that short poem, and a proxy serves and caches it, then
    /// closes with FIN (and the next client gets it from the cache).
    ResetIsEnd,
    /// A proxy closes the clients waiting for a refused fetch with FIN
    /// (an empty poem) instead of RST.
    FinAfterFailedFetch,
    /// A client exits with status 0 even after failed downloads.
    ExitZeroAfterFailure,
    /// Failures are reported in the program's own words: any failure
    /// reason is accepted where the spec names one.
    FailureInOwnWords,
    /// Work is done one connection at a time (the part-2 blocking server
    /// and client): the run may take as long as its downloads or clients
    /// one after the other, `elapsed_max` times their number.
    OneAtATime,
    /// A server that never reads closes with RST, instead of FIN, a
    /// connection on which the client sent bytes.
    CloseWithoutReading,
    /// A proxy never cancels a fetch nobody waits for: it finishes and
    /// caches it, closing the upstream connection only when the fetch
    /// ends.
    NeverCancels,
    /// A proxy starts one upstream fetch per downstream connection until
    /// its cache holds the poem.
    FetchPerRequest,
}

impl Relaxation {
    /// Every relaxation, in the order of the enum.
    pub const ALL: [Relaxation; 10] = [
        Relaxation::NoTimeouts,
        Relaxation::CummingsifyOnly,
        Relaxation::ResetIsEnd,
        Relaxation::FinAfterFailedFetch,
        Relaxation::ExitZeroAfterFailure,
        Relaxation::FailureInOwnWords,
        Relaxation::OneAtATime,
        Relaxation::CloseWithoutReading,
        Relaxation::NeverCancels,
        Relaxation::FetchPerRequest,
    ];

    /// The name used in SPEC.md's `Tutorial profile [...]:` brackets.
    pub fn name(self) -> &'static str {
        match self {
            Relaxation::NoTimeouts => "no-timeouts",
            Relaxation::CummingsifyOnly => "cummingsify-only",
            Relaxation::ResetIsEnd => "reset-is-end",
            Relaxation::FinAfterFailedFetch => "fin-after-failed-fetch",
            Relaxation::ExitZeroAfterFailure => "exit-zero-after-failure",
            Relaxation::FailureInOwnWords => "failure-in-own-words",
            Relaxation::OneAtATime => "one-at-a-time",
            Relaxation::CloseWithoutReading => "close-without-reading",
            Relaxation::NeverCancels => "never-cancels",
            Relaxation::FetchPerRequest => "fetch-per-request",
        }
    }

    /// Whether it makes cases UNSUPPORTED rather than NON-STRICT.
    pub fn unsupports(self) -> bool {
        matches!(self, Relaxation::NoTimeouts | Relaxation::CummingsifyOnly)
    }
}

impl std::fmt::Display for Relaxation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Relaxation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Relaxation::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Relaxation::ALL.iter().map(|r| r.name()).collect();
                format!("unknown relaxation '{s}' (known: {})", known.join(", "))
            })
    }
}

/// A clause's `Tutorial profile [...]:` paragraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tutorial {
    /// The relaxations it grants, in the order written (at least one).
    pub relaxations: Vec<Relaxation>,
    /// The paragraph as written, from `Tutorial profile` on.
    pub text: String,
}

/// One normative clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// Stable ID, e.g. `CLIENT-5`.
    pub id: String,
    /// MUST, MUST NOT, SHOULD, SHOULD NOT or MAY.
    pub level: String,
    /// One-line title.
    pub title: String,
    /// The clause's paragraphs, as written.
    pub body: String,
    /// Its `Tutorial profile [...]:` paragraph, if it has one.
    pub tutorial: Option<Tutorial>,
}

/// The start of a tutorial paragraph.
const TUTORIAL_PREFIX: &str = "Tutorial profile";

/// Parses the tutorial paragraph of a clause body, if any: a paragraph
/// starting `Tutorial profile [name, name]:`.
fn parse_tutorial(id: &str, body: &str) -> Result<Option<Tutorial>, String> {
    let mut found = None;
    for para in body.split("\n\n") {
        let Some(rest) = para.trim().strip_prefix(TUTORIAL_PREFIX) else {
            continue;
        };
        let bad = |why: &str| format!("SPEC.md: clause {id}: tutorial paragraph {why}");
        if found.is_some() {
            return Err(bad("appears twice"));
        }
        let names = rest
            .strip_prefix(" [")
            .and_then(|r| r.split_once("]:"))
            .map(|(names, _)| names)
            .ok_or_else(|| {
                bad("does not start 'Tutorial profile [relaxation, ...]:' (name what it accepts)")
            })?;
        let relaxations = names
            .split(',')
            .map(|n| n.trim().parse::<Relaxation>().map_err(|e| bad(&e)))
            .collect::<Result<Vec<_>, _>>()?;
        found = Some(Tutorial {
            relaxations,
            text: para.trim().to_string(),
        });
    }
    Ok(found)
}

/// Parses every `### ID (LEVEL) title` heading and the text up to the next
/// heading, keyed by ID in document order.
pub fn parse(markdown: &str) -> Result<IndexMap<String, Clause>, String> {
    let mut clauses = IndexMap::new();
    let mut current: Option<Clause> = None;
    for (n, line) in markdown.lines().enumerate() {
        if line.starts_with('#') {
            if let Some(c) = current.take() {
                clauses.insert(c.id.clone(), c);
            }
        }
        if let Some(rest) = line.strip_prefix("### ") {
            let bad = || {
                format!(
                    "SPEC.md:{}: clause heading is not '### ID (LEVEL) title': {line}",
                    n + 1
                )
            };
            let (id, rest) = rest.split_once(' ').ok_or_else(bad)?;
            let rest = rest.strip_prefix('(').ok_or_else(bad)?;
            let (level, title) = rest.split_once(") ").ok_or_else(bad)?;
            if clauses.contains_key(id) {
                return Err(format!("SPEC.md:{}: clause {id} appears twice", n + 1));
            }
            current = Some(Clause {
                id: id.to_string(),
                level: level.to_string(),
                title: title.trim().to_string(),
                body: String::new(),
                tutorial: None,
            });
        } else if let Some(c) = current.as_mut() {
            c.body.push_str(line);
            c.body.push('\n');
        }
    }
    if let Some(c) = current.take() {
        clauses.insert(c.id.clone(), c);
    }
    for c in clauses.values_mut() {
        c.body = c.body.trim().to_string();
        c.tutorial = parse_tutorial(&c.id, &c.body)?;
    }
    Ok(clauses)
}

/// The shipped spec's clauses.
pub fn clauses() -> IndexMap<String, Clause> {
    shipped().clone()
}

/// The shipped spec's clauses, parsed once.
pub fn shipped() -> &'static IndexMap<String, Clause> {
    static CLAUSES: std::sync::OnceLock<IndexMap<String, Clause>> = std::sync::OnceLock::new();
    CLAUSES.get_or_init(|| parse(SPEC_MD).expect("the shipped SPEC.md parses (tested)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_spec_parses_with_every_prefix() {
        let clauses = parse(SPEC_MD).unwrap();
        for prefix in [
            "NET-", "POEM-", "CLIENT-", "NSTR-", "XFORM-", "TCLIENT-", "PROXY-",
        ] {
            assert!(
                clauses.keys().any(|id| id.starts_with(prefix)),
                "no {prefix} clause"
            );
        }
        let c = &clauses["CLIENT-5"];
        assert_eq!(c.level, "MUST");
        assert!(!c.body.is_empty());
    }

    #[test]
    fn malformed_heading_is_reported_with_its_line() {
        let err = parse("# Spec\n\n### NET-1 MUST no parens\n").unwrap_err();
        assert!(err.starts_with("SPEC.md:3:"), "{err}");
    }

    #[test]
    fn duplicate_id_is_refused() {
        let err = parse("### A-1 (MUST) x\n\n### A-1 (MAY) y\n").unwrap_err();
        assert!(err.contains("A-1 appears twice"), "{err}");
    }

    #[test]
    fn tutorial_paragraph_grants_the_relaxations_it_names() {
        let clauses = parse(
            "### A-1 (MUST) x\n\nBody.\n\nTutorial profile [reset-is-end, no-timeouts]: the\nseries does it; accepted as NON-STRICT.\n",
        )
        .unwrap();
        let t = clauses["A-1"].tutorial.as_ref().unwrap();
        assert_eq!(
            t.relaxations,
            [Relaxation::ResetIsEnd, Relaxation::NoTimeouts]
        );
        assert!(t.text.starts_with("Tutorial profile [reset-is-end"));
    }

    #[test]
    fn tutorial_paragraph_without_a_relaxation_is_refused() {
        let err = parse("### A-1 (MUST) x\n\nTutorial profile: anything goes.\n").unwrap_err();
        assert!(
            err.contains("clause A-1") && err.contains("[relaxation"),
            "{err}"
        );
        let err = parse("### A-1 (MUST) x\n\nTutorial profile [anything]: no.\n").unwrap_err();
        assert!(err.contains("unknown relaxation 'anything'"), "{err}");
    }

    #[test]
    fn the_profiles_table_defines_every_relaxation_once() {
        let rows: Vec<&str> = SPEC_MD
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once("` |").map(|(name, _)| name))
            .filter(|name| name.parse::<Relaxation>().is_ok())
            .collect();
        let names: Vec<&str> = Relaxation::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(rows, names, "SPEC.md's relaxation table");
    }

    #[test]
    fn every_shipped_tutorial_paragraph_names_a_relaxation() {
        let clauses = clauses();
        let with: Vec<_> = clauses.values().filter(|c| c.tutorial.is_some()).collect();
        assert!(with.len() >= 10, "only {} tutorial paragraphs", with.len());
        for c in clauses.values() {
            let paragraphs = c.body.matches(TUTORIAL_PREFIX).count();
            assert_eq!(
                paragraphs,
                usize::from(c.tutorial.is_some()),
                "{}: 'Tutorial profile' appears outside its one paragraph",
                c.id
            );
        }
    }
}

//! The clauses of `suites/SPEC.md`, parsed so cases can cite them and
//! `explain` can quote them.

use indexmap::IndexMap;

/// The spec as shipped, built into the binary.
pub const SPEC_MD: &str = include_str!("../../suites/SPEC.md");

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
    }
    Ok(clauses)
}

/// The shipped spec's clauses.
pub fn clauses() -> IndexMap<String, Clause> {
    parse(SPEC_MD).expect("the shipped SPEC.md parses (tested)")
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
}

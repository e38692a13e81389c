//! Which cases a command runs: ID prefixes or glob patterns to include,
//! and patterns to leave out (`run client.* --exclude '*timeout*'`).
//!
//! A pattern with a glob character (`*`, `?`, `[`) matches whole IDs
//! (`client.*-poem`, `*.utf8-*`); any other pattern is an ID or an ID
//! prefix, as the catalog has always taken it (`client.` is every client
//! case). A pattern that matches no case is an error naming it: a typo
//! must not turn into a run of nothing, or of everything but one case.

use globset::{Glob, GlobMatcher};

use crate::case::Case;
use crate::catalog::Catalog;

/// One include or exclude pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    glob: Option<GlobMatcher>,
}

impl Pattern {
    /// Parses `text`; `flag` names where it came from in an error.
    pub fn parse(text: &str, flag: &str) -> Result<Pattern, String> {
        let glob = if text.contains(['*', '?', '[']) {
            let g = Glob::new(text)
                .map_err(|e| format!("{flag} '{text}': not a valid pattern: {}", e.kind()))?;
            Some(g.compile_matcher())
        } else {
            None
        };
        Ok(Pattern {
            text: text.to_string(),
            glob,
        })
    }

    /// Whether the case with this ID is matched.
    pub fn matches(&self, id: &str) -> bool {
        match &self.glob {
            Some(g) => g.is_match(id),
            None => id.starts_with(&self.text),
        }
    }
}

/// The cases of `catalog`, in catalog order, that some `include` pattern
/// matches (all when there is none) and no `exclude` pattern does.
pub fn select<'a>(
    catalog: &'a Catalog,
    include: &[String],
    exclude: &[String],
) -> Result<Vec<&'a Case>, String> {
    let parse = |texts: &[String], flag: &str| -> Result<Vec<Pattern>, String> {
        texts.iter().map(|t| Pattern::parse(t, flag)).collect()
    };
    let include = parse(include, "case")?;
    let exclude = parse(exclude, "--exclude")?;
    let all = catalog.select(&[]);
    for (p, flag) in include
        .iter()
        .map(|p| (p, "case"))
        .chain(exclude.iter().map(|p| (p, "--exclude")))
    {
        if !all.iter().any(|c| p.matches(&c.id)) {
            let what = match flag {
                "case" => String::new(),
                flag => format!("{flag}: "),
            };
            return Err(format!(
                "{what}no case matches '{}' (try: poetry-harness list)",
                p.text
            ));
        }
    }
    let chosen: Vec<&Case> = all
        .into_iter()
        .filter(|c| include.is_empty() || include.iter().any(|p| p.matches(&c.id)))
        .filter(|c| !exclude.iter().any(|p| p.matches(&c.id)))
        .collect();
    if chosen.is_empty() {
        return Err("every case selected is excluded: nothing to run".into());
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(include: &[&str], exclude: &[&str]) -> Result<Vec<String>, String> {
        let catalog = Catalog::builtin().unwrap();
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        select(&catalog, &s(include), &s(exclude))
            .map(|cases| cases.iter().map(|c| c.id.clone()).collect())
    }

    #[test]
    fn a_plain_pattern_is_a_prefix_and_a_glob_matches_whole_ids() {
        let by_prefix = ids(&["client.utf8"], &[]).unwrap();
        assert!(by_prefix.iter().all(|id| id.starts_with("client.utf8")));
        assert!(!by_prefix.is_empty());
        let by_glob = ids(&["*.utf8-*"], &[]).unwrap();
        assert!(by_glob.contains(&"client.utf8-split".to_string()));
        assert!(by_glob.iter().all(|id| id.contains(".utf8-")));
        // A glob is anchored: "utf8" alone matches no whole ID.
        assert!(ids(&["utf8*"], &[]).is_err());
    }

    #[test]
    fn exclusions_apply_after_inclusions_in_catalog_order() {
        let all_clients = ids(&["client."], &[]).unwrap();
        let fewer = ids(&["client."], &["*timeout*", "client.utf8-split"]).unwrap();
        assert!(fewer.len() < all_clients.len());
        assert!(fewer.iter().all(|id| !id.contains("timeout")));
        assert!(!fewer.contains(&"client.utf8-split".to_string()));
        // Catalog order is kept.
        let order: Vec<_> = all_clients.iter().filter(|id| fewer.contains(id)).collect();
        assert_eq!(order, fewer.iter().collect::<Vec<_>>());
    }

    #[test]
    fn a_pattern_matching_nothing_is_named() {
        assert_eq!(
            ids(&["clinet."], &[]).unwrap_err(),
            "no case matches 'clinet.' (try: poetry-harness list)"
        );
        assert_eq!(
            ids(&[], &["*.no-such-*"]).unwrap_err(),
            "--exclude: no case matches '*.no-such-*' (try: poetry-harness list)"
        );
        assert!(ids(&["client."], &["client."])
            .unwrap_err()
            .contains("nothing to run"));
        assert!(ids(&["client.[a"], &[])
            .unwrap_err()
            .starts_with("case 'client.[a': not a valid pattern"));
    }
}

//! Loading and checking the case catalog (`suites/*.toml`).
//!
//! A malformed file fails with the file, the line and the field named:
//! `suites/client.toml:14: case 'client.reset': field 'expect.results': ...`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use crate::case::{Case, Role};
use crate::spec::Clause;

/// The catalog as shipped, built into the binary.
pub const BUILTIN: &[(&str, &str)] = &[
    ("suites/server.toml", include_str!("../suites/server.toml")),
    ("suites/client.toml", include_str!("../suites/client.toml")),
    (
        "suites/transform-server.toml",
        include_str!("../suites/transform-server.toml"),
    ),
    (
        "suites/transform-client.toml",
        include_str!("../suites/transform-client.toml"),
    ),
    ("suites/proxy.toml", include_str!("../suites/proxy.toml")),
];

/// A catalog problem, located as precisely as it can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    /// The file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The case ID, when known.
    pub case: Option<String>,
    /// The field, when known (`expect.results`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(case) = &self.case {
            write!(f, ": case '{case}'")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field '{field}'")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for CatalogError {}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default, rename = "case")]
    cases: Vec<Case>,
}

/// A checked list of cases, in file order.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The cases.
    pub cases: Vec<Case>,
}

impl Catalog {
    /// The shipped catalog, checked against the shipped spec.
    pub fn builtin() -> Result<Catalog, CatalogError> {
        let clauses = crate::spec::clauses();
        Catalog::from_sources(
            BUILTIN.iter().map(|(f, t)| (f.to_string(), t.to_string())),
            &clauses,
        )
    }

    /// Every `*.toml` in `dir`, in name order, checked against the shipped spec.
    pub fn load_dir(dir: &Path) -> Result<Catalog, CatalogError> {
        let err = |message: String| CatalogError {
            file: dir.display().to_string(),
            line: None,
            case: None,
            field: None,
            message,
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| err(format!("cannot read the folder: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(err("no .toml catalog files here".into()));
        }
        Catalog::load_files(&paths)
    }

    /// A catalog file, or every `*.toml` of a folder ([`Catalog::load_dir`]):
    /// what `--suites` names.
    pub fn load_path(path: &Path) -> Result<Catalog, CatalogError> {
        if path.is_dir() {
            Catalog::load_dir(path)
        } else {
            Catalog::load_files(&[path.to_path_buf()])
        }
    }

    /// These files, in this order; each case remembers its file
    /// ([`Case::source`]).
    fn load_files(paths: &[std::path::PathBuf]) -> Result<Catalog, CatalogError> {
        let mut sources = Vec::new();
        for p in paths {
            let text = std::fs::read_to_string(p).map_err(|e| CatalogError {
                file: p.display().to_string(),
                line: None,
                case: None,
                field: None,
                message: format!("cannot read: {e}"),
            })?;
            sources.push((p.display().to_string(), text, Some(p.clone())));
        }
        Catalog::from_located(sources, &crate::spec::clauses())
    }

    /// Parses and checks named sources (file name, text).
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
        clauses: &indexmap::IndexMap<String, Clause>,
    ) -> Result<Catalog, CatalogError> {
        Catalog::from_located(
            sources.into_iter().map(|(file, text)| (file, text, None)),
            clauses,
        )
    }

    /// [`Catalog::from_sources`], each case remembering the file on disk
    /// it came from, if any ([`Case::source`]).
    fn from_located(
        sources: impl IntoIterator<Item = (String, String, Option<std::path::PathBuf>)>,
        clauses: &indexmap::IndexMap<String, Clause>,
    ) -> Result<Catalog, CatalogError> {
        let mut cases = Vec::new();
        let mut seen = BTreeSet::new();
        for (file, text, path) in sources {
            for mut case in parse_file(&file, &text, clauses)? {
                if !seen.insert(case.id.clone()) {
                    return Err(CatalogError {
                        line: id_line(&text, &case.id),
                        case: Some(case.id.clone()),
                        field: Some("id".into()),
                        message: "this ID is used by another case".into(),
                        file,
                    });
                }
                case.source = path.clone();
                cases.push(case);
            }
        }
        Ok(Catalog { cases })
    }

    /// The TOML table a case was read from, as written (for
    /// [`crate::shrink`], which edits the case as data): from the file of
    /// [`Case::source`], else from the built-in catalog.
    pub fn case_table(case: &Case) -> Result<toml::Table, CatalogError> {
        let sources: Vec<(String, String)> = match &case.source {
            Some(path) => {
                let file = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| CatalogError {
                    file: file.clone(),
                    line: None,
                    case: Some(case.id.clone()),
                    field: None,
                    message: format!("cannot read: {e}"),
                })?;
                vec![(file, text)]
            }
            None => BUILTIN
                .iter()
                .map(|(f, t)| (f.to_string(), t.to_string()))
                .collect(),
        };
        for (file, text) in &sources {
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| CatalogError {
                file: file.clone(),
                line: None,
                case: None,
                field: None,
                message: e.message().trim().to_string(),
            })?;
            let found = table
                .get("case")
                .and_then(toml::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(toml::Value::as_table)
                .find(|t| t.get("id").and_then(toml::Value::as_str) == Some(case.id.as_str()));
            if let Some(t) = found {
                return Ok(t.clone());
            }
        }
        Err(CatalogError {
            file: case.source.as_ref().map_or_else(
                || "the built-in catalog".into(),
                |p| p.display().to_string(),
            ),
            line: None,
            case: Some(case.id.clone()),
            field: None,
            message: "the case is no longer in this file".into(),
        })
    }

    /// The case with this ID.
    pub fn get(&self, id: &str) -> Option<&Case> {
        self.cases.iter().find(|c| c.id == id)
    }

    /// Cases whose ID equals or starts with one of the prefixes (all if none).
    pub fn select(&self, prefixes: &[String]) -> Vec<&Case> {
        self.cases
            .iter()
            .filter(|c| {
                prefixes.is_empty() || prefixes.iter().any(|p| c.id.starts_with(p.as_str()))
            })
            .collect()
    }
}

/// Parses one catalog file and checks each case.
pub fn parse_file(
    file: &str,
    text: &str,
    clauses: &indexmap::IndexMap<String, Clause>,
) -> Result<Vec<Case>, CatalogError> {
    let parsed: CatalogFile = toml::from_str(text).map_err(|e| CatalogError {
        file: file.to_string(),
        line: e.span().map(|s| line_of(text, s.start)),
        case: e.span().and_then(|s| case_at(text, s.start)),
        field: e.span().and_then(|s| field_at(text, s.start)),
        message: e.message().trim().to_string(),
    })?;
    for case in &parsed.cases {
        check_case(case, clauses).map_err(|(field, message)| CatalogError {
            file: file.to_string(),
            line: id_line(text, &case.id),
            case: Some(case.id.clone()),
            field: Some(field),
            message,
        })?;
    }
    Ok(parsed.cases)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The field written on the line holding `offset`, as a reader finds it:
/// `servers.poem` for `poem = ...` under `[[case.servers]]`, `limit` for
/// `limit = ...` under `[[case]]`; `None` when the line assigns no key.
fn field_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("").trim();
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = |k: &str| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    };
    if !bare(key) {
        return None;
    }
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim())
        .and_then(|t| t.strip_prefix("case"))
        .map(|t| t.trim_start_matches('.'))
        .filter(|t| bare(t));
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

/// The ID of the case whose `[[case]]` table holds `offset`, if it has
/// one written (`id = "..."`), for a parse error to name the case.
fn case_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind("[[case]]")?;
    let end = text[offset..]
        .find("[[case]]")
        .map_or(text.len(), |i| offset + i);
    text[start..end].lines().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        let value = value.trim();
        (key.trim() == "id" && value.len() >= 2 && value.starts_with('"') && value.ends_with('"'))
            .then(|| value[1..value.len() - 1].to_string())
    })
}

/// The line of a case's `id = "..."`.
fn id_line(text: &str, id: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim();
            l.starts_with("id") && l.contains(&format!("\"{id}\""))
        })
        .map(|n| n + 1)
}

type Problem = (String, String);

fn problem(field: &str, message: impl Into<String>) -> Problem {
    (field.to_string(), message.into())
}

const RESULTS: &[&str] = &[
    "poem",
    "empty",
    "prefix",
    "fail",
    "fail:refused",
    "fail:reset",
    "fail:timeout",
];
const OUTPUTS: &[&str] = &["transformed", "original", "none"];
const RECEIVED: &[&str] = &["poem", "full", "nothing", "prefix", "reply"];
const ENDS: &[&str] = &["fin", "rst", "closed"];

/// Semantic checks that serde cannot express.
/// A transforming client's output is judged by what it printed for each
/// address, so the cases must make the outcomes tell apart: a poem the
/// transform leaves unchanged would make a silent fallback look
/// transformed, and a failing address whose poem equals another's invites
/// crediting one with the other's output.
fn check_outputs_are_telling(case: &Case) -> Result<(), Problem> {
    let Some(outputs) = &case.expect.outputs else {
        return Ok(());
    };
    let t = crate::protocol::transform::Transform::from_name(&case.subject.transform);
    for (i, (server, want)) in case.servers.iter().zip(outputs).enumerate() {
        let poem = server.sent_poem();
        let unchanged = std::str::from_utf8(&poem)
            .ok()
            .zip(t)
            .is_some_and(|(p, t)| t.apply(p).as_bytes() == &poem[..]);
        if want != "none" && !poem.is_empty() && unchanged {
            return Err(problem(
                "servers",
                format!(
                    "server {}'s poem is unchanged by '{}': a fallback could not be told from a transformation (give it capitals)",
                    i + 1,
                    case.subject.transform
                ),
            ));
        }
        let shared = case
            .servers
            .iter()
            .enumerate()
            .any(|(j, other)| j != i && other.sent_poem() == poem);
        if want == "none" && !poem.is_empty() && shared {
            return Err(problem(
                "servers",
                format!(
                    "server {} fails the download but its poem equals another server's: give it a poem of its own",
                    i + 1
                ),
            ));
        }
    }
    Ok(())
}

fn check_case(case: &Case, clauses: &indexmap::IndexMap<String, Clause>) -> Result<(), Problem> {
    check_outputs_are_telling(case)?;
    let id_ok = case
        .id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !id_ok
        || !case.id.starts_with(case.role.id_prefix())
        || case.id.len() == case.role.id_prefix().len()
    {
        return Err(problem(
            "id",
            format!(
                "'{}' must be '{}<name>' in lower case, digits, '-' and '.'",
                case.id,
                case.role.id_prefix()
            ),
        ));
    }
    if case.title.trim().is_empty() {
        return Err(problem("title", "is empty"));
    }
    if case.clauses.is_empty() {
        return Err(problem("clauses", "a case must cite at least one clause"));
    }
    for c in &case.clauses {
        if !clauses.contains_key(c) {
            return Err(problem(
                "clauses",
                format!("'{c}' is not a clause of SPEC.md"),
            ));
        }
    }
    for d in case.durations() {
        if d.subsec_nanos() % 1_000_000 != 0 {
            return Err(problem(
                "duration",
                format!(
                    "{} is not a whole number of milliseconds",
                    crate::duration::format_duration(d)
                ),
            ));
        }
    }
    if case.net.latency.0.is_zero() {
        return Err(problem("net.latency", "must be at least 1ms"));
    }
    let mut peers = case.server_names();
    peers.extend(case.client_names());
    if case.xform.is_some() {
        peers.push(crate::peers::transform_server::NAME.to_string());
    }
    case.net.check(&peers)?;
    if let Some(s) = case.min_time_scale {
        if !(s > 0.0 && s <= 1.0) {
            return Err(problem(
                "min_time_scale",
                format!("{s} must be above 0 and at most 1"),
            ));
        }
    }
    let (servers, clients) = (case.servers.len(), case.clients.len());
    match case.role {
        Role::Client | Role::TransformClient => {
            if servers == 0 {
                return Err(problem(
                    "servers",
                    "a client case needs at least one server peer",
                ));
            }
            if clients > 0 {
                return Err(problem("clients", "a client case has no client peers"));
            }
        }
        Role::Server | Role::TransformServer => {
            if clients == 0 {
                return Err(problem(
                    "clients",
                    "a server case needs at least one client peer",
                ));
            }
            if servers > 0 {
                return Err(problem("servers", "a server case has no server peers"));
            }
        }
        Role::Proxy => {
            if servers != 1 {
                return Err(problem(
                    "servers",
                    "a proxy case has exactly one upstream server peer",
                ));
            }
            if clients == 0 {
                return Err(problem(
                    "clients",
                    "a proxy case needs at least one downstream client",
                ));
            }
        }
    }
    if (case.role == Role::TransformClient) != case.xform.is_some() {
        return Err(problem(
            "xform",
            "a transform peer goes with, and only with, transform-client cases",
        ));
    }
    for c in &case.clients {
        if c.count == 0 {
            return Err(problem("clients.count", "must be at least 1"));
        }
        if c.stop_reading_after.is_some() && c.leave_at.is_none() && c.deadline.is_none() {
            return Err(problem(
                "clients.stop_reading_after",
                "needs leave_at or deadline: a client that holds its connection for ever never ends the run",
            ));
        }
        if let Some(hex) = &c.send_hex {
            if crate::peers::decode_hex(hex).is_none() {
                return Err(problem(
                    "clients.send_hex",
                    format!("'{hex}' is not an even number of hex digits"),
                ));
            }
        }
    }
    let names = case.client_names();
    let mut expects = vec![("expect", &case.expect)];
    if let Some(t) = &case.tutorial {
        expects.push(("tutorial", t));
    }
    for (table, e) in expects {
        let field = |f: &str| format!("{table}.{f}");
        if let Some(r) = &e.results {
            if r.len() != servers {
                return Err(problem(
                    &field("results"),
                    format!("{} entries for {servers} server peers", r.len()),
                ));
            }
            if let Some(bad) = r.iter().find(|v| !RESULTS.contains(&v.as_str())) {
                return Err(problem(
                    &field("results"),
                    format!("'{bad}' is not one of {}", RESULTS.join(", ")),
                ));
            }
        }
        if let Some(o) = &e.outputs {
            if o.len() != servers {
                return Err(problem(
                    &field("outputs"),
                    format!("{} entries for {servers} server peers", o.len()),
                ));
            }
            if let Some(bad) = o.iter().find(|v| !OUTPUTS.contains(&v.as_str())) {
                return Err(problem(
                    &field("outputs"),
                    format!("'{bad}' is not one of {}", OUTPUTS.join(", ")),
                ));
            }
        }
        for (f, map, allowed) in [("received", &e.received, RECEIVED), ("end", &e.end, ENDS)] {
            for (k, v) in map.iter().flatten() {
                if !names.contains(k) {
                    return Err(problem(
                        &field(f),
                        format!("'{k}' is not a client peer (peers: {})", names.join(", ")),
                    ));
                }
                let reply_text = f == "received" && v.starts_with("reply:");
                if !allowed.contains(&v.as_str()) && !reply_text {
                    return Err(problem(
                        &field(f),
                        format!("'{v}' is not one of {}", allowed.join(", ")),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Case>, CatalogError> {
        parse_file("t.toml", text, &crate::spec::clauses())
    }

    const GOOD: &str = r#"
[[case]]
id = "client.ok"
title = "a poem arrives"
clauses = ["CLIENT-3"]
role = "client"
[[case.servers]]
[case.expect]
results = ["poem"]
"#;

    #[test]
    fn builtin_catalog_loads() {
        let catalog = Catalog::builtin().unwrap();
        assert!(!catalog.cases.is_empty());
    }

    #[test]
    fn good_case_parses() {
        assert_eq!(parse(GOOD).unwrap()[0].id, "client.ok");
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let text = GOOD.replace("[[case.servers]]", "[[case.servers]]\nchunk = 3");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("t.toml:8:"), "{err}");
        assert!(err.contains("unknown field `chunk`"), "{err}");
    }

    #[test]
    fn bad_duration_is_located() {
        let text = GOOD.replace("[[case.servers]]", "[[case.servers]]\ndelay = \"soon\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("t.toml:8:") && err.contains("'soon'"),
            "{err}"
        );
    }

    #[test]
    fn unknown_clause_names_case_and_field() {
        let text = GOOD.replace("CLIENT-3", "CLIENT-999");
        let err = parse(&text).unwrap_err().to_string();
        assert_eq!(
            err,
            "t.toml:3: case 'client.ok': field 'clauses': 'CLIENT-999' is not a clause of SPEC.md"
        );
    }

    #[test]
    fn min_time_scale_must_be_a_share_of_one() {
        for bad in ["0.0", "-0.5", "1.5"] {
            let text = GOOD.replace("role = ", &format!("min_time_scale = {bad}\nrole = "));
            let err = parse(&text).unwrap_err().to_string();
            assert!(
                err.contains("case 'client.ok': field 'min_time_scale'")
                    && err.contains("must be above 0 and at most 1"),
                "{bad}: {err}"
            );
        }
        let text = GOOD.replace("role = ", "min_time_scale = 0.5\nrole = ");
        assert_eq!(parse(&text).unwrap()[0].min_time_scale, Some(0.5));
    }

    #[test]
    fn result_count_must_match_servers() {
        let text = GOOD.replace("results = [\"poem\"]", "results = [\"poem\", \"poem\"]");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("field 'expect.results': 2 entries for 1 server peers"),
            "{err}"
        );
    }

    const XCLIENT: &str = r#"
[[case]]
id = "xclient.ok"
title = "a poem is transformed"
clauses = ["TCLIENT-2"]
role = "transform-client"
[[case.servers]]
poem = { size = 100 }
[[case.servers]]
refuse = true
poem = { size = 100, capitals = true }
[case.xform]
[case.expect]
outputs = ["transformed", "none"]
"#;

    #[test]
    fn a_transform_must_change_the_poem_and_a_failing_poem_must_be_its_own() {
        // Regression: live, a poem the transform leaves as it is made a
        // silent fallback look transformed (xclient.reply-over-limit).
        let err = parse(XCLIENT).unwrap_err().to_string();
        assert!(
            err.contains("field 'servers': server 1's poem is unchanged by 'cummingsify'"),
            "{err}"
        );
        let capitals = XCLIENT.replacen(
            "poem = { size = 100 }",
            "poem = { size = 100, capitals = true }",
            1,
        );
        let err = parse(&capitals).unwrap_err().to_string();
        assert!(
            err.contains("server 2 fails the download but its poem equals another server's"),
            "{err}"
        );
        let own = capitals.replace(
            "refuse = true\npoem = { size = 100, capitals = true }",
            "refuse = true\npoem = { text = \"Never sent.\" }",
        );
        parse(&own).unwrap();
    }

    #[test]
    fn id_must_carry_the_role_prefix() {
        let text = GOOD.replace("client.ok", "server.ok");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("field 'id'"), "{err}");
    }

    #[test]
    fn a_client_that_stops_reading_must_leave_some_time() {
        let text = r#"
[[case]]
id = "server.holds"
title = "a client holds its connection"
clauses = ["POEM-7"]
role = "server"
[[case.clients]]
stop_reading_after = 10
[case.expect]
received = { c1 = "prefix" }
"#;
        let err = parse(text).unwrap_err().to_string();
        assert!(
            err.contains("field 'clients.stop_reading_after'") && err.contains("leave_at"),
            "{err}"
        );
        let ok = text.replace(
            "stop_reading_after = 10",
            "stop_reading_after = 10\nleave_at = \"2s\"",
        );
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let sources = [
            ("a.toml".to_string(), GOOD.to_string()),
            ("b.toml".to_string(), GOOD.to_string()),
        ];
        let err = Catalog::from_sources(sources, &crate::spec::clauses()).unwrap_err();
        assert_eq!(err.file, "b.toml");
        assert!(err.message.contains("used by another case"));
    }
}

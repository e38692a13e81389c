//! Shrinking a failure: from a case that fails with a seed, the smallest
//! case found that still fails the same way, as a catalog file.
//!
//! The case is edited as data (its TOML table, as the catalog wrote it):
//! a shorter poem, fewer chunk sizes, fewer faults (a peer's, and the
//! network's: each `[case.net]` fault field and the backlog), fewer servers and
//! clients. Each candidate is written out and read back through the
//! catalog's own parser ([`catalog::parse_file`]), then run with the same
//! [`RunOptions`]; it is kept when the implementation still fails it with
//! the same verdict kind *and* the reference implementations still pass
//! it, so a candidate that only broke the case (an expectation left
//! pointing at a removed server) is never kept. Greedy: the first
//! candidate kept restarts the search from it, biggest cuts first, until
//! none is kept (a fixpoint: no single cut keeps the failure) or the
//! budget of runs is spent. Deterministic: the same case, implementation
//! and seed give the same file.
//!
//! ```no_run
//! use poetry_harness::backend::sim::RunOptions;
//! use poetry_harness::catalog::Catalog;
//! use poetry_harness::shrink::{shrink, Budget};
//! use poetry_harness::verdict::Profile;
//!
//! let catalog = Catalog::builtin().unwrap();
//! let case = catalog.get("client.jittered-pace").unwrap();
//! let mutant = poetry_harness::mutants::by_name("client-decodes-per-chunk").unwrap();
//! let shrunk = shrink(case, &(mutant.build)(), RunOptions::perturbed(2), Profile::Strict, Budget::default()).unwrap();
//! println!("{}", shrunk.toml);
//! ```

use std::fmt;

use bytes::Bytes;
use serde::Deserialize;
use toml::{Table, Value};

use crate::backend::sim::RunOptions;
use crate::case::{Case, End, Leave, PoemSpec, XformBehaviour};
use crate::catalog::{self, Catalog, CatalogError};
use crate::engine::{self, EngineOptions, Status};
use crate::roles::Implementation;
use crate::verdict::{Kind, Profile};

/// How many runs a shrink may spend (each candidate costs two: the
/// implementation's and the reference's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget(pub usize);

impl Default for Budget {
    /// 400 runs: a catalog case shrinks to its fixpoint in well under
    /// that (a poem of a few KiB halves in a dozen steps), and 400
    /// simulated runs take about a second.
    fn default() -> Self {
        Budget(400)
    }
}

/// Why a case cannot be shrunk.
#[derive(Debug, thiserror::Error)]
pub enum ShrinkError {
    /// The case's catalog file cannot be read again.
    #[error("{0}")]
    Catalog(#[from] CatalogError),
    /// The case does not fail with these options: nothing to shrink.
    #[error("case '{id}' does not fail with {run} (its verdict: {kind}); nothing to shrink")]
    DoesNotFail {
        /// The case.
        id: String,
        /// The run options.
        run: RunOptions,
        /// The verdict it got.
        kind: Kind,
    },
}

/// The result of a shrink.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The smallest case found, as loaded from [`Shrunk::toml`].
    pub case: Case,
    /// The catalog file holding it (one `[[case]]`), with a comment on
    /// where it came from.
    pub toml: String,
    /// The verdict kind it keeps.
    pub kind: Kind,
    /// The original case's size and the shrunk one's.
    pub sizes: (Size, Size),
    /// Runs spent.
    pub runs: usize,
    /// Whether the search stopped at a fixpoint (no single cut kept the
    /// failure) rather than at the budget.
    pub fixpoint: bool,
    /// Each cut kept, in order (`servers[1].poem: 279 -> 139 bytes`).
    pub cuts: Vec<String>,
}

/// How big a case is, knob by knob: what shrinking makes smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Size {
    /// Bytes of every poem the case names (servers', the subject's,
    /// clients' requests).
    pub poem_bytes: usize,
    /// Chunk sizes listed (`chunks`), plus one per `random_chunks`.
    pub chunks: usize,
    /// Faults: every misbehaviour a peer is scripted with.
    pub faults: usize,
    /// Server peers.
    pub servers: usize,
    /// Client peers, each copy counted.
    pub clients: usize,
}

impl Size {
    /// The size of `case`.
    pub fn of(case: &Case) -> Size {
        // The subject's own poem only matters when it is a server.
        let mut poem_bytes = if case.role == crate::case::Role::Server {
            case.subject.poem.bytes().len()
        } else {
            0
        };
        let mut chunks = 0;
        let mut faults = 0;
        for s in &case.servers {
            poem_bytes += s.poem.bytes().len();
            chunks +=
                s.chunks.as_ref().map_or(0, Vec::len) + usize::from(s.random_chunks.is_some());
            faults += [
                s.split_utf8,
                !s.delay.0.is_zero(),
                !s.jitter.0.is_zero(),
                !s.first_delay.0.is_zero(),
                s.truncate.is_some(),
                s.pause_after.is_some(),
                s.end != End::Fin,
                !s.end_delay.0.is_zero(),
                s.write_timeout.is_some(),
                s.misbehave_first.is_some(),
                s.refuse,
                s.blackhole,
            ]
            .into_iter()
            .filter(|f| *f)
            .count();
        }
        for c in &case.clients {
            poem_bytes += c.request_poem.as_ref().map_or(0, |p| p.bytes().len());
            faults += [
                !c.stagger.0.is_zero(),
                c.send_chunk.is_some(),
                !c.send_delay.0.is_zero(),
                c.half_close,
                c.read_limit.is_some(),
                c.read_chunk.is_some(),
                !c.read_delay.0.is_zero(),
                c.leave_at.is_some(),
                c.deadline.is_some(),
                c.stop_reading_after.is_some(),
                c.leave != Leave::Fin,
            ]
            .into_iter()
            .filter(|f| *f)
            .count();
        }
        if let Some(x) = &case.xform {
            faults += usize::from(x.behaviour != XformBehaviour::Answer)
                + usize::from(!x.delay.0.is_zero());
        }
        for f in case.net.faults.iter().chain(case.net.peer_faults.values()) {
            faults += [
                f.profile.is_some(),
                f.loss.is_some(),
                f.burst.is_some(),
                f.bandwidth.is_some(),
                f.duplicate.is_some(),
                f.jitter.is_some(),
                f.reorder.is_some(),
                f.reorder_delay.is_some(),
            ]
            .into_iter()
            .filter(|f| *f)
            .count();
        }
        faults += usize::from(case.net.backlog.is_some());
        Size {
            poem_bytes,
            chunks,
            faults,
            servers: case.servers.len(),
            clients: case.clients.iter().map(|c| c.count).sum(),
        }
    }

    fn knobs(&self) -> [usize; 5] {
        [
            self.poem_bytes,
            self.chunks,
            self.faults,
            self.servers,
            self.clients,
        ]
    }

    /// No knob larger than `other`'s, and at least one smaller.
    pub fn strictly_smaller_than(&self, other: &Size) -> bool {
        let (a, b) = (self.knobs(), other.knobs());
        a.iter().zip(&b).all(|(x, y)| x <= y) && a != b
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} poem byte(s), {} chunk size(s), {} fault(s), {} server(s), {} client(s)",
            self.poem_bytes, self.chunks, self.faults, self.servers, self.clients
        )
    }
}

/// Server peer keys that script a fault, removed one at a time.
const SERVER_FAULTS: &[&str] = &[
    "refuse",
    "blackhole",
    "truncate",
    "pause_after",
    "pause",
    "end",
    "end_delay",
    "misbehave_first",
    "write_timeout",
    "split_utf8",
    "first_delay",
    "jitter",
    "delay",
];

/// Client peer keys that script a fault, removed one at a time.
const CLIENT_FAULTS: &[&str] = &[
    "leave_at",
    "deadline",
    "stop_reading_after",
    "read_limit",
    "leave",
    "half_close",
    "read_chunk",
    "read_delay",
    "send_chunk",
    "send_delay",
    "stagger",
];

/// Transform peer keys that script a fault.
const XFORM_FAULTS: &[&str] = &["behaviour", "delay"];

/// The fields of a `[case.net]` fault table that are faults (its
/// `direction` only places them).
const NET_FAULTS: &[&str] = &[
    "profile",
    "loss",
    "burst",
    "bandwidth",
    "duplicate",
    "jitter",
    "reorder",
    "reorder_delay",
];

/// Shrinks `case`, which `imp` fails with `run` under `profile`, to the
/// smallest case found that still fails the same way and that the
/// reference passes. The shrunk case's ID is the original's with
/// `.shrunk` (and `-seed-N` for a perturbed run) appended.
pub fn shrink(
    case: &Case,
    imp: &Implementation,
    run: RunOptions,
    profile: Profile,
    budget: Budget,
) -> Result<Shrunk, ShrinkError> {
    let opts = EngineOptions {
        profile,
        run,
        jobs: 1,
        fail_fast: false,
        repeat: 1,
    };
    let first = engine::run_case(case, imp, &opts);
    let kind = first.verdict.kind;
    if first.status != Status::Judged || !kind.fails(profile) {
        return Err(ShrinkError::DoesNotFail {
            id: case.id.clone(),
            run,
            kind,
        });
    }
    let id = shrunk_id(&case.id, run);
    let mut best = Catalog::case_table(case)?;
    best.insert("id".into(), Value::String(id.clone()));
    let mut best_case = load(&best).ok_or_else(|| {
        ShrinkError::Catalog(CatalogError {
            file: "the shrunk case".into(),
            line: None,
            case: Some(id.clone()),
            field: None,
            message: "the case's own table does not load again".into(),
        })
    })?;
    let reference = Implementation::reference();
    let mut runs = 0;
    let mut cuts = Vec::new();
    let mut fixpoint = false;
    'search: loop {
        let mut kept = false;
        for (what, candidate) in candidates(&best) {
            if runs + 2 > budget.0 {
                break 'search;
            }
            let Some(c) = load(&candidate) else { continue };
            runs += 1;
            let r = engine::run_case(&c, imp, &opts);
            if r.status != Status::Judged || r.verdict.kind != kind {
                continue;
            }
            runs += 1;
            let good = engine::run_case(&c, &reference, &opts);
            if good.status != Status::Judged || good.verdict.kind.fails(profile) {
                continue;
            }
            cuts.push(what);
            best = candidate;
            best_case = c;
            kept = true;
            break;
        }
        if !kept {
            fixpoint = true;
            break;
        }
    }
    let sizes = (Size::of(case), Size::of(&best_case));
    let header = format!(
        "# Shrunk by poetry-harness from {} ({run}; {}): still {kind}, and the reference passes.\n\
         # Original: {}.\n\
         # Shrunk:   {} ({} cut(s) in {runs} run(s), {}).\n",
        case.id,
        imp.name,
        sizes.0,
        sizes.1,
        cuts.len(),
        if fixpoint {
            "no single cut keeps the failure"
        } else {
            "the budget of runs is spent"
        },
    );
    Ok(Shrunk {
        toml: format!(
            "{header}{}\n{}",
            cuts.iter()
                .map(|c| format!("#   cut: {}\n", crate::transcript::sanitise(c)))
                .collect::<String>(),
            file_text(&best)
        ),
        case: best_case,
        kind,
        sizes,
        runs,
        fixpoint,
        cuts,
    })
}

/// `client.x.shrunk-seed-7`, or `client.x.shrunk` for the catalog's run.
pub fn shrunk_id(id: &str, run: RunOptions) -> String {
    match run.seed_flag() {
        Some(seed) => format!("{id}.shrunk-seed-{seed}"),
        None => format!("{id}.shrunk"),
    }
}

/// A catalog file holding the one case `table`.
fn file_text(table: &Table) -> String {
    let mut file = Table::new();
    file.insert(
        "case".into(),
        Value::Array(vec![Value::Table(table.clone())]),
    );
    toml::to_string(&file).expect("a TOML table serialises")
}

/// The case `table` as the catalog loads it, if it loads.
fn load(table: &Table) -> Option<Case> {
    let text = file_text(table);
    catalog::parse_file("shrunk.toml", &text, &crate::spec::clauses())
        .ok()?
        .pop()
}

/// Every single cut of `t`, biggest first: whole peers, then poems, then
/// faults, then chunk sizes, then client copies.
fn candidates(t: &Table) -> Vec<(String, Table)> {
    let mut out = Vec::new();
    let servers = array_len(t, "servers");
    let clients = array_len(t, "clients");
    // A whole server, with its place in the per-server expectations.
    if servers > 1 {
        for i in (0..servers).rev() {
            let mut c = t.clone();
            remove_at(&mut c, "servers", i);
            for table in ["expect", "tutorial"] {
                for key in ["results", "outputs"] {
                    if let Some(list) = c
                        .get_mut(table)
                        .and_then(Value::as_table_mut)
                        .and_then(|e| e.get_mut(key))
                        .and_then(Value::as_array_mut)
                    {
                        if i < list.len() {
                            list.remove(i);
                        }
                    }
                }
            }
            out.push((format!("servers[{}] removed", i + 1), c));
        }
    }
    // The last client (its name's expectations go with it).
    if clients > 1 {
        let mut c = t.clone();
        let name = peer(t, "clients", clients - 1)
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .map_or_else(|| format!("c{clients}"), str::to_string);
        remove_at(&mut c, "clients", clients - 1);
        for table in ["expect", "tutorial"] {
            for key in ["received", "end"] {
                if let Some(map) = c
                    .get_mut(table)
                    .and_then(Value::as_table_mut)
                    .and_then(|e| e.get_mut(key))
                    .and_then(Value::as_table_mut)
                {
                    map.retain(|k, _| *k != name && !k.starts_with(&format!("{name}-")));
                }
            }
        }
        out.push((format!("clients[{clients}] ({name}) removed"), c));
    }
    // Shorter poems.
    for i in 0..servers {
        out.extend(shorter_poems(t, &["servers"], i, "poem"));
    }
    if t.get("role").and_then(Value::as_str) == Some("server") {
        out.extend(shorter_poems(t, &["subject"], usize::MAX, "poem"));
    }
    for i in 0..clients {
        out.extend(shorter_poems(t, &["clients"], i, "request_poem"));
    }
    // Fewer faults.
    for (list, keys) in [("servers", SERVER_FAULTS), ("clients", CLIENT_FAULTS)] {
        for i in 0..array_len(t, list) {
            for key in keys {
                if peer(t, list, i).is_some_and(|p| p.contains_key(*key)) {
                    let mut c = t.clone();
                    if let Some(p) = peer_mut(&mut c, list, i) {
                        p.remove(*key);
                    }
                    out.push((format!("{list}[{}].{key} removed", i + 1), c));
                }
            }
        }
    }
    for key in XFORM_FAULTS {
        if t.get("xform")
            .and_then(Value::as_table)
            .is_some_and(|x| x.contains_key(*key))
        {
            let mut c = t.clone();
            if let Some(x) = c.get_mut("xform").and_then(Value::as_table_mut) {
                x.remove(*key);
            }
            out.push((format!("xform.{key} removed"), c));
        }
    }
    out.extend(fewer_net_faults(t));
    // Fewer chunk sizes.
    for i in 0..servers {
        let Some(p) = peer(t, "servers", i) else {
            continue;
        };
        if p.contains_key("random_chunks") {
            let mut c = t.clone();
            if let Some(p) = peer_mut(&mut c, "servers", i) {
                p.remove("random_chunks");
            }
            out.push((format!("servers[{}].random_chunks removed", i + 1), c));
        }
        if let Some(chunks) = p.get("chunks").and_then(Value::as_array) {
            let mut c = t.clone();
            if let Some(p) = peer_mut(&mut c, "servers", i) {
                p.remove("chunks");
            }
            out.push((format!("servers[{}].chunks removed", i + 1), c));
            for at in (0..chunks.len()).rev().filter(|_| chunks.len() > 1) {
                let mut c = t.clone();
                if let Some(list) = peer_mut(&mut c, "servers", i)
                    .and_then(|p| p.get_mut("chunks"))
                    .and_then(Value::as_array_mut)
                {
                    list.remove(at);
                }
                out.push((
                    format!(
                        "servers[{}].chunks: size {} of {} removed",
                        i + 1,
                        at + 1,
                        chunks.len()
                    ),
                    c,
                ));
            }
        }
    }
    // Fewer copies of a client.
    for i in 0..clients {
        let count = peer(t, "clients", i)
            .and_then(|p| p.get("count"))
            .and_then(Value::as_integer)
            .unwrap_or(1);
        let mut fewer: Vec<i64> = vec![1, count / 2, count - 1];
        fewer.retain(|n| *n >= 1 && *n < count);
        fewer.dedup();
        for n in fewer {
            let mut c = t.clone();
            if let Some(p) = peer_mut(&mut c, "clients", i) {
                p.insert("count".into(), Value::Integer(n));
            }
            out.push((format!("clients[{}].count: {count} -> {n}", i + 1), c));
        }
    }
    out
}

/// Each fault of the case's network cut: a field of `net.faults` or of a
/// `net.peer_faults.NAME` (the table with it, when it was the last), and
/// `net.backlog`.
fn fewer_net_faults(t: &Table) -> Vec<(String, Table)> {
    let mut out = Vec::new();
    let Some(net) = t.get("net").and_then(Value::as_table) else {
        return out;
    };
    // Each fault table, by its path under `net`.
    let mut tables: Vec<Vec<String>> = Vec::new();
    if net.get("faults").is_some_and(Value::is_table) {
        tables.push(vec!["faults".into()]);
    }
    if let Some(peers) = net.get("peer_faults").and_then(Value::as_table) {
        for name in peers.keys() {
            tables.push(vec!["peer_faults".into(), name.clone()]);
        }
    }
    for path in tables {
        let Some(table) = table_at(net, &path) else {
            continue;
        };
        for key in NET_FAULTS.iter().filter(|k| table.contains_key(**k)) {
            let mut c = t.clone();
            let Some(net) = c.get_mut("net").and_then(Value::as_table_mut) else {
                continue;
            };
            let (parent, last) = path.split_at(path.len() - 1);
            let Some(parent) = table_at_mut(net, parent) else {
                continue;
            };
            let name = &last[0];
            let left = parent.get_mut(name).and_then(Value::as_table_mut).map(|f| {
                f.remove(*key);
                NET_FAULTS.iter().any(|k| f.contains_key(*k))
            });
            if left == Some(false) {
                // Only `direction` is left, or nothing: no faults at all.
                parent.remove(name);
            }
            out.push((format!("net.{}.{key} removed", path.join(".")), c));
        }
    }
    if net.contains_key("backlog") {
        let mut c = t.clone();
        if let Some(net) = c.get_mut("net").and_then(Value::as_table_mut) {
            net.remove("backlog");
        }
        out.push(("net.backlog removed".into(), c));
    }
    out
}

fn table_at<'a>(t: &'a Table, path: &[String]) -> Option<&'a Table> {
    path.iter()
        .try_fold(t, |t, key| t.get(key).and_then(Value::as_table))
}

fn table_at_mut<'a>(t: &'a mut Table, path: &[String]) -> Option<&'a mut Table> {
    path.iter()
        .try_fold(t, |t, key| t.get_mut(key).and_then(Value::as_table_mut))
}

fn array_len(t: &Table, key: &str) -> usize {
    t.get(key).and_then(Value::as_array).map_or(0, Vec::len)
}

fn remove_at(t: &mut Table, key: &str, i: usize) {
    if let Some(list) = t.get_mut(key).and_then(Value::as_array_mut) {
        list.remove(i);
    }
}

/// The `i`-th table of the array `list` (`subject` for `usize::MAX`).
fn peer<'a>(t: &'a Table, list: &str, i: usize) -> Option<&'a Table> {
    if i == usize::MAX {
        return t.get(list).and_then(Value::as_table);
    }
    t.get(list)?.as_array()?.get(i)?.as_table()
}

fn peer_mut<'a>(t: &'a mut Table, list: &str, i: usize) -> Option<&'a mut Table> {
    if i == usize::MAX {
        if !t.contains_key(list) {
            t.insert(list.into(), Value::Table(Table::new()));
        }
        return t.get_mut(list).and_then(Value::as_table_mut);
    }
    t.get_mut(list)?.as_array_mut()?.get_mut(i)?.as_table_mut()
}

/// Cuts of the poem at `key` of a peer: to nothing, to half, then to
/// less and less short of the whole (a greedy halving once kept).
fn shorter_poems(t: &Table, list: &[&str], i: usize, key: &str) -> Vec<(String, Table)> {
    let list = list[0];
    let Some(p) = peer(t, list, i) else {
        return Vec::new();
    };
    let spec = match p.get(key) {
        Some(v) => match PoemSpec::deserialize(v.clone()) {
            Ok(spec) => spec,
            Err(_) => return Vec::new(),
        },
        // Only a server's poem has a default; a client's request has none.
        None if key == "poem" => PoemSpec::default(),
        None => return Vec::new(),
    };
    let bytes = spec.bytes();
    let len = bytes.len();
    let mut lengths = vec![0, len / 2];
    let mut step = len / 4;
    while step > 0 {
        lengths.push(len - step);
        step /= 2;
    }
    lengths.push(len.saturating_sub(1));
    lengths.retain(|n| *n < len);
    lengths.dedup();
    let place = if i == usize::MAX {
        format!("{list}.{key}")
    } else {
        format!("{list}[{}].{key}", i + 1)
    };
    lengths
        .into_iter()
        .filter_map(|n| {
            let value = shorter(&spec, &bytes, n)?;
            let got = PoemSpec::deserialize(value.clone()).ok()?.bytes().len();
            let mut c = t.clone();
            peer_mut(&mut c, list, i)?.insert(key.into(), value);
            Some((format!("{place}: {len} -> {got} bytes"), c))
        })
        .collect()
}

/// The first `n` bytes of a poem, written as the catalog reads it: a
/// generated poem stays generated, text stays text (cut at a character
/// boundary), anything else becomes hex.
fn shorter(spec: &PoemSpec, bytes: &Bytes, n: usize) -> Option<Value> {
    let mut table = Table::new();
    match spec {
        PoemSpec::Size(_) => {
            table.insert("size".into(), Value::Integer(i64::try_from(n).ok()?));
        }
        PoemSpec::Capitalised(_) => {
            table.insert("size".into(), Value::Integer(i64::try_from(n).ok()?));
            table.insert("capitals".into(), Value::Boolean(true));
        }
        _ => match std::str::from_utf8(bytes) {
            Ok(text) => {
                let mut end = n;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                table.insert("text".into(), Value::String(text[..end].to_string()));
            }
            Err(_) => {
                let hex: String = bytes[..n].iter().map(|b| format!("{b:02x}")).collect();
                table.insert("hex".into(), Value::String(hex));
            }
        },
    }
    Some(Value::Table(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuts(text: &str) -> Vec<(String, Table)> {
        fewer_net_faults(&toml::from_str(text).expect("a table"))
    }

    #[test]
    fn each_network_fault_is_cut_and_a_table_left_without_one_goes() {
        let found = cuts(
            r#"
            [net]
            backlog = 4
            [net.faults]
            loss = 0.1
            jitter = "5ms"
            direction = "to-subject"
            [net.peer_faults.s1]
            burst = { to_bad = 0.1, to_good = 0.5 }
            "#,
        );
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "net.faults.loss removed",
                "net.faults.jitter removed",
                "net.peer_faults.s1.burst removed",
                "net.backlog removed"
            ]
        );
        let net = |i: usize| found[i].1["net"].as_table().unwrap().clone();
        // One of two faults cut: the table stays, with its direction.
        let f = net(0)["faults"].as_table().unwrap().clone();
        assert!(!f.contains_key("loss") && f.contains_key("jitter") && f.contains_key("direction"));
        // The only fault cut: the table goes.
        assert!(net(2)["peer_faults"].as_table().unwrap().is_empty());
        assert!(!net(3).contains_key("backlog") && net(3).contains_key("faults"));
    }

    #[test]
    fn a_network_without_faults_has_nothing_to_cut() {
        assert!(cuts("[net]\nlatency = \"10ms\"\n").is_empty());
        assert!(cuts("id = \"x\"\n").is_empty());
    }
}

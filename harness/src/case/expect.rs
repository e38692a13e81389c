//! What a case expects of the subject, as data; judged in [`crate::verdict`].

use indexmap::IndexMap;
use serde::Deserialize;

use crate::duration::Dur;

/// Expectations. Every field is optional; a case's `[case.tutorial]` table
/// has the same fields and replaces, for the tutorial profile, the fields it
/// sets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Client roles, one per server peer in order: `poem` (exactly that
    /// server's poem), `empty`, `prefix` (a prefix of it, maybe all),
    /// `fail`, `fail:refused`, `fail:reset`, `fail:timeout`.
    #[serde(default)]
    pub results: Option<Vec<String>>,
    /// Transforming client, one per server peer in order: `transformed`,
    /// `original` (fallback, failure reported) or `none` (download failed).
    #[serde(default)]
    pub outputs: Option<Vec<String>>,
    /// Server roles, per client peer name: `poem` (the subject's poem
    /// exactly; for a proxy, what the upstream sends, cut at `truncate`),
    /// `full` (a proxy's upstream poem, uncut), `nothing`, `prefix`, `reply`
    /// (the netstring of the correctly transformed request) or `reply:TEXT`.
    #[serde(default)]
    pub received: Option<IndexMap<String, String>>,
    /// Server roles, per client peer name: how the subject ended the
    /// connection: `fin`, `rst` or `closed` (either).
    #[serde(default)]
    pub end: Option<IndexMap<String, String>>,
    /// The run (the subject's work, or the last peer's) ends no later.
    #[serde(default)]
    pub elapsed_max: Option<Dur>,
    /// The run ends no sooner.
    #[serde(default)]
    pub elapsed_min: Option<Dur>,
    /// Proxy: how many connections the upstream peer accepts in all.
    #[serde(default)]
    pub upstream_connections: Option<usize>,
    /// Proxy: every upstream connection is closed within this long of the
    /// last downstream client leaving.
    #[serde(default)]
    pub upstream_closed_within: Option<Dur>,
    /// Transforming client: each request payload the transform peer gets
    /// is `TRANSFORM.POEM` for a poem it downloaded; this names TRANSFORM.
    #[serde(default)]
    pub request_transform: Option<String>,
    /// At the end, no connection of the subject is still established
    /// (default true).
    #[serde(default)]
    pub no_leaks: Option<bool>,
}

impl Expect {
    /// `self` with every field `over` sets replaced.
    pub fn overridden_by(&self, over: &Expect) -> Expect {
        fn pick<T: Clone>(base: &Option<T>, over: &Option<T>) -> Option<T> {
            over.clone().or_else(|| base.clone())
        }
        Expect {
            results: pick(&self.results, &over.results),
            outputs: pick(&self.outputs, &over.outputs),
            received: pick(&self.received, &over.received),
            end: pick(&self.end, &over.end),
            elapsed_max: pick(&self.elapsed_max, &over.elapsed_max),
            elapsed_min: pick(&self.elapsed_min, &over.elapsed_min),
            upstream_connections: pick(&self.upstream_connections, &over.upstream_connections),
            upstream_closed_within: pick(
                &self.upstream_closed_within,
                &over.upstream_closed_within,
            ),
            request_transform: pick(&self.request_transform, &over.request_transform),
            no_leaks: pick(&self.no_leaks, &over.no_leaks),
        }
    }
}

/// What the catalog's expectation words mean, in plain words: for failure
/// reports and `explain`, so a reader never has to know that `fail:timeout`
/// is a token.
pub mod words {
    /// A client's `results` entry for the server peer `server`.
    pub fn result(token: &str, server: &str) -> String {
        match token {
            "poem" => format!("the whole poem {server} sends, byte for byte"),
            "empty" => format!("an empty poem ({server} closes without sending a byte)"),
            "prefix" => format!("the start of the poem {server} sends (all of it, or a part)"),
            "fail" => format!("the client reports a failure for {server}"),
            "fail:refused" => format!("the client reports that {server} refused the connection"),
            "fail:reset" => format!("the client reports a failure: {server} reset the connection"),
            "fail:timeout" => format!("the client gives up on {server} with a timeout error"),
            other => other.to_string(),
        }
    }

    /// A transforming client's `outputs` entry for the server peer `server`.
    pub fn output(token: &str, server: &str) -> String {
        match token {
            "transformed" => format!("the poem of {server}, transformed"),
            "original" => {
                format!("the poem of {server} untransformed, and the transform failure reported")
            }
            "none" => format!("no poem for {server}: its download failed, and says so"),
            other => other.to_string(),
        }
    }

    /// A server role's `received` entry for a client peer.
    pub fn received(token: &str) -> String {
        match token {
            "poem" => "the whole poem, byte for byte".into(),
            "full" => "the upstream's whole poem, uncut".into(),
            "nothing" => "nothing, not a byte".into(),
            "prefix" => "the start of the poem (all of it, or a part)".into(),
            "reply" => "the reply: the netstring of the transformed poem".into(),
            other => match other.strip_prefix("reply:") {
                Some(text) => format!("the reply: the netstring of '{text}'"),
                None => other.to_string(),
            },
        }
    }

    /// A server role's `end` entry, or how a connection ended.
    pub fn end(token: &str) -> String {
        match token {
            "fin" => "a clean close (FIN)".into(),
            "rst" => "a reset (RST)".into(),
            "closed" => "a close, clean (FIN) or not (RST)".into(),
            other => other.to_string(),
        }
    }
}

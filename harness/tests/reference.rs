//! Integration tests for the reference implementations
//! (`poetry_harness::reference`), each body run twice: on real loopback
//! sockets and inside turmoil's simulated network (turmoil's own tests do
//! the same).
//!
//! Modules:
//! - `backend`: the two backends and the [`backend::Scenario`] that runs a
//!   test body against named servers on either.
//! - `scripted`: misbehaving peers (reset, stall, trickle) and the probe
//!   they report to.
//! - `poetry`: the fast and slow poetry servers and the poetry client.
//! - `transform_server`: replies, refusals, one request per connection.
//! - `transform_client`: transformed output and every fallback.
//! - `proxy`: relaying, caching, not caching failures, cancelling.
//! - `simulated_time`: a download longer than ten minutes, timed to the
//!   tick (simulator only).
//!
//! The modules live in `tests/reference/` (a crate root resolves `mod`
//! next to itself, hence the `#[path]`s).

#[path = "reference/backend.rs"]
mod backend;
#[path = "reference/scripted.rs"]
mod scripted;

#[path = "reference/poetry.rs"]
mod poetry;
#[path = "reference/proxy.rs"]
mod proxy;
#[path = "reference/simulated_time.rs"]
mod simulated_time;
#[path = "reference/transform_client.rs"]
mod transform_client;
#[path = "reference/transform_server.rs"]
mod transform_server;

use bytes::Bytes;

/// A fixture poem's bytes (`fixtures/poems/`).
fn poem(name: &str) -> Bytes {
    let path = format!("{}/../fixtures/poems/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
        .into()
}

/// Heine's "Die Lore-Ley": umlauts and ß, so bytes and characters differ
/// (part 15's test poem is non-ASCII on purpose too).
fn loreley() -> Bytes {
    poem("loreley.txt")
}

/// Poe's sonnet, with a multi-byte em dash.
fn science() -> Bytes {
    poem("science.txt")
}

/// Blake's "The Tyger", plain ASCII.
fn tyger() -> Bytes {
    poem("tyger.txt")
}

/// `poem` as text, lower-cased as `cummingsify` must (Unicode-aware).
fn lower(poem: &[u8]) -> String {
    std::str::from_utf8(poem)
        .expect("fixture is utf-8")
        .to_lowercase()
}

//! `bench`: poetry servers measured under load, side by side.
//!
//! A bench first **verifies**: the server runs the catalog's server cases
//! as a live program, and one that fails them is not measured unless the
//! user insists (`--force`), which the report then says. Then it
//! **measures** the very command it verified: the server is started once
//! per poem size, warmed up, and loaded for a number of runs per load
//! point ([`load`]); every poem is checked byte for byte. [`stats`] turns
//! the runs into figures: latency percentiles from HdrHistograms, and a
//! mean with a 95% confidence interval over runs. [`report`] prints them
//! side by side, with each server as a ratio of the first, and writes JSON
//! and Markdown.

pub mod client;
mod closed_loop;
pub mod load;
pub mod plot;
pub mod report;
pub mod sim;
pub mod stats;

/// A benched program's environment beyond the allowlist: its manifest's
/// `env`, and the case name `bench`.
pub fn program_env(subject: &crate::backend::live::LiveSubject) -> Vec<(String, String)> {
    let mut env = crate::backend::live::process::pass_through(&subject.env);
    env.push(("POETRY_CASE".to_string(), "bench".to_string()));
    env.push(("PYTHONUNBUFFERED".to_string(), "1".to_string()));
    env
}

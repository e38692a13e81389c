//! Where cases run. [`sim`]: in-process Rust implementations inside
//! turmoil, simulated time, seeded and exact. [`live`]: any program,
//! started from a command template, on real loopback sockets.

pub mod live;
pub mod sim;
pub mod simnet;

use std::time::Duration;

use bytes::Bytes;

use crate::peers::Observations;
use crate::reference::{FetchError, Transformed};
use crate::transcript::Transcript;

/// What the subject itself returned (client roles).
#[derive(Debug, Clone, Default)]
pub enum SubjectResult {
    /// A server role: nothing to return.
    #[default]
    Serving,
    /// A poetry client's results, one per address.
    Poems(Vec<Result<Bytes, FetchError>>),
    /// A transforming client's results, one per address.
    Transformed(Vec<Transformed>),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Every actor finished; at this simulated time.
    Finished(Duration),
    /// The case's time limit passed first.
    TimedOut(Duration),
    /// The subject panicked or the harness failed.
    Crashed(String),
    /// The program declared it does not support the case (exit 127).
    Unsupported(String),
}

/// Everything one run produced, for the verdict and the report.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// How the run ended.
    pub end: RunEnd,
    /// What the subject returned.
    pub result: SubjectResult,
    /// When the subject (client roles) finished, measured from when its
    /// timing starts (see [`RunOutcome::timed_from`]).
    pub subject_done: Option<Duration>,
    /// Where elapsed times count from, on the transcript's clock: zero in
    /// the simulator; live, when a server became ready, or when a client
    /// first connected (its start-up is judged on its own).
    pub timed_from: Duration,
    /// Live: how long a client took from its start to its first
    /// connection, and the budget it had.
    pub startup: Option<(Duration, Duration)>,
    /// Live: how far time bounds bend (`None`: exact, as in the simulator).
    pub tolerance: Option<crate::backend::live::timing::Tolerance>,
    /// simnet: every socket of every host at the end of the run, a
    /// netstat table ([`crate::backend::simnet::render_sockets`]), which a
    /// failing verdict's transcript ends with. `None` elsewhere.
    pub sockets: Option<Vec<String>>,
    /// What the peers observed.
    pub seen: Observations,
    /// Established connections left on the subject's host at the end.
    pub leaks: Option<usize>,
    /// The events.
    pub transcript: Transcript,
    /// The seed used.
    pub seed: u64,
    /// Simulator runs of a built-in implementation: the command that
    /// repeats this run byte for byte.
    pub replay: Option<crate::replay::Replay>,
    /// The simulator tick chosen for the case.
    pub tick: Duration,
    /// A program's exit status (live runs of client roles).
    pub exit_status: Option<i32>,
    /// What a client program printed on stdout beyond its poems, under the
    /// `exact` output contract (live runs).
    pub stray_output: Option<Bytes>,
}

impl RunOutcome {
    /// Drops what only the verdict needed, once it is judged: the poems
    /// and stray output the subject produced (up to 4 MiB per stream) and
    /// what the peers kept of it (up to 16 MiB per peer). What reports use,
    /// the transcript and the seed, stays: a run of many cases against a
    /// program that floods every one keeps a fixed amount per case.
    pub fn shed_payload(&mut self) {
        self.result = SubjectResult::default();
        self.stray_output = None;
        self.seen = Observations::default();
    }
}

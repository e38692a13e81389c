//! How much a live run's time bounds bend, measured rather than guessed.
//!
//! Real timers never fire early, but they fire late: by the timer wheel's
//! granularity (1 ms in tokio, about as much in asyncio) and by however
//! long a loaded machine takes to schedule the woken thread. So a lower
//! bound needs only a little tolerance (clock reads in two processes, the
//! rounding of scaled durations), while an upper bound must allow every
//! pause of the case to overshoot a little: a slow server's 80 pauses of
//! 35 ms each add up to more than one pause of lateness.
//!
//! The lateness of one pause is measured once per run, at the start, by
//! sleeping a few times and keeping the worst overshoot. From it:
//! - late tolerance = `BASE_PAUSES` overshoots + `bound` x overshoot /
//!   shortest pause of the case (every pause may overshoot once);
//! - early tolerance = [`EARLY`] + [`LATENCY_TRIPS`] simulated link
//!   latencies (scaled), which loopback does not spend.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A lower bound may be missed by this much: two clocks read in different
/// processes, and each scaled duration rounded to a whole millisecond.
pub const EARLY: Duration = Duration::from_millis(3);

/// Simulated link trips a lower bound may count (connect, request,
/// reply, close) that a loopback run does not spend.
pub const LATENCY_TRIPS: u32 = 4;

/// Overshoots allowed to every upper bound whatever its length: the
/// subject waking up, the harness's peer waking up, the verdict's clock
/// read, and the subject's exit or close being noticed.
pub const BASE_PAUSES: u32 = 4;

/// The smallest overshoot assumed, so a quiet machine's lucky measurement
/// does not make the bounds brittle.
pub const MIN_OVERSHOOT: Duration = Duration::from_millis(2);

/// The largest overshoot believed: beyond it the machine is too loaded for
/// timing verdicts to mean anything, and they should fail loudly.
pub const MAX_OVERSHOOT: Duration = Duration::from_millis(25);

/// Samples taken when measuring.
const SAMPLES: u32 = 20;

/// The pause each sample sleeps.
const SAMPLE_PAUSE: Duration = Duration::from_millis(2);

/// The measured lateness of one pause on this machine, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jitter {
    /// The worst overshoot seen, clamped to
    /// [`MIN_OVERSHOOT`]..=[`MAX_OVERSHOOT`].
    pub overshoot: Duration,
    /// The worst overshoot actually seen.
    pub measured: Duration,
}

impl Jitter {
    /// Measured once per process, on first use.
    pub fn get() -> Jitter {
        static JITTER: OnceLock<Jitter> = OnceLock::new();
        *JITTER.get_or_init(Jitter::measure)
    }

    /// Sleeps a few (20) times on a tokio timer and keeps the worst
    /// overshoot.
    pub fn measure() -> Jitter {
        let worst = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map(|rt| {
                rt.block_on(async {
                    let mut worst = Duration::ZERO;
                    for _ in 0..SAMPLES {
                        let t = Instant::now();
                        tokio::time::sleep(SAMPLE_PAUSE).await;
                        worst = worst.max(t.elapsed().saturating_sub(SAMPLE_PAUSE));
                    }
                    worst
                })
            })
            .unwrap_or(MAX_OVERSHOOT);
        Jitter::from_measured(worst)
    }

    /// The jitter for a measured worst overshoot.
    pub fn from_measured(measured: Duration) -> Jitter {
        Jitter {
            overshoot: measured.clamp(MIN_OVERSHOOT, MAX_OVERSHOOT),
            measured,
        }
    }

    /// The tolerance of one case, whose shortest pause (scaled) is
    /// `shortest_pause` (zero: the case has no pause), and whose simulated
    /// link latency, scaled, is `latency`: a simulated bound counts a few
    /// trips over links that loopback crosses in no time, so a real run
    /// may beat a lower bound by [`LATENCY_TRIPS`] of them.
    pub fn tolerance(&self, shortest_pause: Duration, latency: Duration) -> Tolerance {
        let per_pause = if shortest_pause.is_zero() {
            0.0
        } else {
            self.overshoot.as_secs_f64() / shortest_pause.as_secs_f64()
        };
        Tolerance {
            early: EARLY + latency * LATENCY_TRIPS,
            late: self.overshoot * BASE_PAUSES,
            late_ratio: per_pause.min(1.0),
        }
    }
}

impl std::fmt::Display for Jitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "timer overshoot measured {:.1} ms, used {:.1} ms: upper bounds +{} ms plus one overshoot per pause, lower bounds -{} ms",
            self.measured.as_secs_f64() * 1000.0,
            self.overshoot.as_secs_f64() * 1000.0,
            (self.overshoot * BASE_PAUSES).as_millis(),
            EARLY.as_millis()
        )
    }
}

/// How far one live case's time bounds bend.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Tolerance {
    /// A lower bound may be missed by this much.
    pub early: Duration,
    /// An upper bound may be exceeded by this much...
    pub late: Duration,
    /// ...plus this share of the bound (one overshoot per pause).
    pub late_ratio: f64,
}

impl Tolerance {
    /// The tolerance above an upper bound.
    pub fn above(&self, bound: Duration) -> Duration {
        self.late + bound.mul_f64(self.late_ratio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lucky_measurement_is_raised_and_a_wild_one_capped() {
        assert_eq!(
            Jitter::from_measured(Duration::ZERO).overshoot,
            MIN_OVERSHOOT
        );
        assert_eq!(
            Jitter::from_measured(Duration::from_secs(1)).overshoot,
            MAX_OVERSHOOT
        );
    }

    #[test]
    fn each_pause_may_overshoot_once() {
        let j = Jitter::from_measured(Duration::from_millis(2));
        let t = j.tolerance(Duration::from_millis(10), Duration::ZERO);
        // 100 pauses of 10 ms: 1 s, each up to 2 ms late.
        assert_eq!(
            t.above(Duration::from_secs(1)),
            Duration::from_millis(8) + Duration::from_millis(200)
        );
        assert_eq!(t.early, EARLY);
    }

    #[test]
    fn a_case_without_pauses_gets_the_base_only() {
        let j = Jitter::from_measured(Duration::from_millis(3));
        let t = j.tolerance(Duration::ZERO, Duration::from_millis(2));
        assert_eq!(t.early, EARLY + Duration::from_millis(8));
        assert_eq!(t.above(Duration::from_secs(5)), Duration::from_millis(12));
    }
}

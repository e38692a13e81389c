//! Packet-level faults of one direction of a link (issue 11, item 3):
//! bandwidth, loss (random or bursty), duplication, delay with jitter,
//! reordering. Set with [`super::Sim::faults`]; named profiles with
//! [`Faults::profile`].
//!
//! A packet sent at `t` on a faulty direction meets the faults in this
//! order, each on its own (none overrides another):
//!
//! 1. **bandwidth**: the packet leaves when the link has sent the packets
//!    before it, `size / bandwidth` after it starts (a queue of unbounded
//!    length; a lost packet still used the link);
//! 2. **loss**: the Gilbert-Elliott chain (if set) moves one step, then
//!    the packet is lost with the loss probability of its state (random
//!    loss is the one-state case); the builder's loss on every link
//!    ([`super::SimBuilder::loss`]) draws separately, before;
//! 3. **duplication**: a surviving packet arrives twice with this
//!    probability, each copy delayed on its own;
//! 4. **delay**: the link's latency plus a jitter drawn uniformly from 0
//!    to [`Faults::jitter`] (jitter alone can reorder packets);
//! 5. **reordering**: with this probability a copy is held back a further
//!    [`Faults::reorder_delay`].
//!
//! Every draw comes from the simulation's seeded generator, in the order
//! packets are sent: the same seed gives the same faults.

use std::time::Duration;

use rand::Rng;

/// How packets are lost.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Loss {
    /// None lost.
    #[default]
    None,
    /// Each packet lost with this probability, on its own.
    Random(f64),
    /// Bursts: a two-state (good, bad) Markov chain stepped once per
    /// packet, losing packets with each state's probability.
    GilbertElliott {
        /// Probability of going from good to bad, per packet.
        to_bad: f64,
        /// Probability of going from bad back to good, per packet.
        to_good: f64,
        /// Loss probability in the good state (often 0).
        loss_good: f64,
        /// Loss probability in the bad state (often 1).
        loss_bad: f64,
    },
}

/// The faults of one direction of a link. The default has none.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// Bytes per second the direction carries, if limited.
    pub bandwidth: Option<u64>,
    /// How packets are lost.
    pub loss: Loss,
    /// Probability that a packet arrives twice.
    pub duplicate: f64,
    /// Greatest extra delay, drawn uniformly from 0 to this per packet.
    pub jitter: Duration,
    /// Probability that a packet is held back by [`Faults::reorder_delay`].
    pub reorder: f64,
    /// How long a reordered packet is held back.
    pub reorder_delay: Duration,
}

/// The named profiles, with what each models.
pub const PROFILES: [(&str, &str); 4] = [
    (
        "gprs",
        "a 2G data link: 5 KB/s, 200 ms of jitter, 2% loss",
    ),
    (
        "lossy-wifi",
        "a crowded Wi-Fi: 1 MB/s, 20 ms of jitter, losses in bursts (about 3% of packets, 4 at a time)",
    ),
    (
        "satellite",
        "a geostationary hop's variance: 100 KB/s, 50 ms of jitter, 0.5% loss",
    ),
    (
        "flaky",
        "a link that duplicates 1% and reorders 5% of packets (by 30 ms) and loses 1%",
    ),
];

impl Faults {
    /// The faults of a named profile (see [`PROFILES`]), or an error that
    /// lists the names.
    pub fn profile(name: &str) -> Result<Faults, String> {
        let ms = Duration::from_millis;
        Ok(match name {
            "gprs" => Faults {
                bandwidth: Some(5_000),
                loss: Loss::Random(0.02),
                jitter: ms(200),
                ..Faults::default()
            },
            "lossy-wifi" => Faults {
                bandwidth: Some(1_000_000),
                // Stationary share of bad: 0.01 / (0.01 + 0.25) = 3.8%;
                // a burst lasts 1 / 0.25 = 4 packets on average.
                loss: Loss::GilbertElliott {
                    to_bad: 0.01,
                    to_good: 0.25,
                    loss_good: 0.0,
                    loss_bad: 0.8,
                },
                jitter: ms(20),
                ..Faults::default()
            },
            "satellite" => Faults {
                bandwidth: Some(100_000),
                loss: Loss::Random(0.005),
                jitter: ms(50),
                ..Faults::default()
            },
            "flaky" => Faults {
                loss: Loss::Random(0.01),
                duplicate: 0.01,
                reorder: 0.05,
                reorder_delay: ms(30),
                ..Faults::default()
            },
            _ => {
                let names: Vec<&str> = PROFILES.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "no network profile named '{name}'; the profiles are: {}",
                    names.join(", ")
                ));
            }
        })
    }

    /// Whether the probabilities are probabilities: an error naming the
    /// first that is not.
    pub fn check(&self) -> Result<(), String> {
        let mut named = vec![("duplicate", self.duplicate), ("reorder", self.reorder)];
        match self.loss {
            Loss::None => {}
            Loss::Random(p) => named.push(("loss", p)),
            Loss::GilbertElliott {
                to_bad,
                to_good,
                loss_good,
                loss_bad,
            } => named.extend([
                ("to_bad", to_bad),
                ("to_good", to_good),
                ("loss_good", loss_good),
                ("loss_bad", loss_bad),
            ]),
        }
        for (what, p) in named {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{what} {p} is not a probability from 0 to 1"));
            }
        }
        if self.bandwidth == Some(0) {
            return Err("a bandwidth of 0 bytes per second carries nothing".into());
        }
        Ok(())
    }
}

/// One faulty direction's state during a run.
#[derive(Debug, Clone)]
pub(super) struct Direction {
    faults: Faults,
    /// When the link has sent every packet queued so far.
    free_at: Duration,
    /// The Gilbert-Elliott chain is in its bad state.
    bad: bool,
}

impl Direction {
    pub(super) fn new(faults: Faults) -> Self {
        Direction {
            faults,
            free_at: Duration::ZERO,
            bad: false,
        }
    }

    /// When each copy of a packet of `size` bytes sent at `now` arrives,
    /// over a link of `latency`: none if it is lost, two if duplicated.
    pub(super) fn arrivals(
        &mut self,
        now: Duration,
        size: u32,
        latency: Duration,
        rng: &mut impl Rng,
    ) -> Vec<Duration> {
        let f = self.faults;
        // 1. Bandwidth.
        let leaves = match f.bandwidth {
            Some(bps) => {
                let start = self.free_at.max(now);
                self.free_at = start + Duration::from_secs_f64(f64::from(size) / bps as f64);
                self.free_at
            }
            None => now,
        };
        // 2. Loss.
        let p = match f.loss {
            Loss::None => 0.0,
            Loss::Random(p) => p,
            Loss::GilbertElliott {
                to_bad,
                to_good,
                loss_good,
                loss_bad,
            } => {
                let flip = if self.bad { to_good } else { to_bad };
                if rng.random_bool(flip) {
                    self.bad = !self.bad;
                }
                if self.bad {
                    loss_bad
                } else {
                    loss_good
                }
            }
        };
        if p > 0.0 && rng.random_bool(p) {
            return Vec::new();
        }
        // 3. Duplication.
        let copies = if f.duplicate > 0.0 && rng.random_bool(f.duplicate) {
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| {
                // 4. Delay with jitter.
                let mut at = leaves + latency;
                if !f.jitter.is_zero() {
                    at += f.jitter.mul_f64(rng.random::<f64>());
                }
                // 5. Reordering.
                if f.reorder > 0.0 && rng.random_bool(f.reorder) {
                    at += f.reorder_delay;
                }
                at
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(3)
    }

    #[test]
    fn bandwidth_queues_packets_one_after_another() {
        let mut d = Direction::new(Faults {
            bandwidth: Some(1000),
            ..Faults::default()
        });
        let l = Duration::from_millis(50);
        let mut r = rng();
        // 500 bytes take 0.5 s each: they leave at 0.5, 1.0 and 1.5 s.
        let at: Vec<_> = (0..3)
            .map(|_| d.arrivals(Duration::ZERO, 500, l, &mut r)[0])
            .collect();
        assert_eq!(at, [550, 1050, 1550].map(Duration::from_millis).to_vec());
        // An idle link starts at once.
        assert_eq!(
            d.arrivals(Duration::from_secs(10), 500, l, &mut r),
            vec![Duration::from_millis(10_550)]
        );
    }

    #[test]
    fn gilbert_elliott_loses_in_bursts_at_its_stationary_rate() {
        let mut d = Direction::new(Faults {
            loss: Loss::GilbertElliott {
                to_bad: 0.02,
                to_good: 0.2,
                loss_good: 0.0,
                loss_bad: 1.0,
            },
            ..Faults::default()
        });
        let mut r = rng();
        let lost: Vec<bool> = (0..100_000)
            .map(|_| {
                d.arrivals(Duration::ZERO, 100, Duration::ZERO, &mut r)
                    .is_empty()
            })
            .collect();
        let share = lost.iter().filter(|l| **l).count() as f64 / lost.len() as f64;
        // Stationary: 0.02 / (0.02 + 0.2) = 9.1%.
        assert!((share - 0.091).abs() < 0.01, "{share}");
        // In bursts: mean run of losses 1 / 0.2 = 5 packets.
        let runs = lost.windows(2).filter(|w| !w[0] && w[1]).count() as f64;
        let mean_run = lost.iter().filter(|l| **l).count() as f64 / runs;
        assert!((mean_run - 5.0).abs() < 0.5, "{mean_run}");
    }

    #[test]
    fn duplication_jitter_and_reordering_stay_within_their_bounds() {
        let mut d = Direction::new(Faults {
            duplicate: 0.5,
            jitter: Duration::from_millis(10),
            reorder: 0.5,
            reorder_delay: Duration::from_millis(100),
            ..Faults::default()
        });
        let mut r = rng();
        let l = Duration::from_millis(50);
        let all: Vec<Vec<Duration>> = (0..1000)
            .map(|_| d.arrivals(Duration::ZERO, 100, l, &mut r))
            .collect();
        let twice = all.iter().filter(|a| a.len() == 2).count();
        assert!((400..600).contains(&twice), "{twice}");
        for at in all.iter().flatten() {
            let ms = at.as_millis();
            assert!(
                (50..=60).contains(&ms) || (150..=160).contains(&ms),
                "{at:?}"
            );
        }
        assert!(all.iter().flatten().any(|a| a.as_millis() >= 150));
    }

    #[test]
    fn profiles_are_named_checked_and_an_unknown_one_lists_them() {
        for (name, _) in PROFILES {
            Faults::profile(name).unwrap().check().unwrap();
        }
        let err = Faults::profile("3g").unwrap_err();
        assert!(
            err.contains("'3g'") && err.contains("gprs, lossy-wifi"),
            "{err}"
        );
        let bad = Faults {
            loss: Loss::Random(1.5),
            ..Faults::default()
        };
        assert_eq!(
            bad.check().unwrap_err(),
            "loss 1.5 is not a probability from 0 to 1"
        );
    }
}

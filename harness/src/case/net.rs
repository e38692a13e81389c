//! The network of a case, as data: the latency of every link and, for
//! the simnet engine only, packet faults and the subject's listen backlog.
//!
//! ```toml
//! [case.net]
//! latency = "50ms"
//! backlog = 4                    # the subject's listen backlog
//! [case.net.faults]              # every link of the subject, both ways
//! loss = 0.1
//! [case.net.peer_faults.s1]      # the link with s1 only, in place of `faults`
//! profile = "lossy-wifi"
//! direction = "to-subject"
//! [case.net.peer_faults.s2]      # losses in bursts (Gilbert-Elliott)
//! burst = { to_bad = 0.01, to_good = 0.25, loss_bad = 0.8 }
//! ```
//!
//! Placement: `faults` is on every link between the subject and one of
//! its peers (server peers, client peers, the transform peer), both ways
//! unless `direction` says otherwise; never on a link between two peers.
//! `peer_faults.NAME` puts faults on the subject's link with that peer
//! instead (a server peer's name, a client peer's base name, which covers
//! all its `count` copies, or `xform`): a proxy's upstream is its server
//! peer, so `peer_faults.s1` is "a lossy upstream" and the downstream
//! clients' links stay clean. A peer named there gets no `faults`.
//!
//! A fault table starts from its `profile` (one of
//! [`crate::backend::simnet::faults::PROFILES`], or none), and each field
//! written replaces the profile's: `loss` (random loss, a probability),
//! or `burst` (losses in bursts: a Gilbert-Elliott chain, good and bad
//! states, stepped once per packet: `to_bad` and `to_good` the chances
//! of moving per packet, `loss_good` and `loss_bad` the loss in each
//! state, 0 and 1 by default; about `to_bad / (to_bad + to_good)` of
//! packets fall in bursts of `1 / to_good` packets on average; a table
//! cannot have both, since they are two models of the same loss),
//! `bandwidth` (bytes per second), `duplicate` and `reorder`
//! (probabilities), `jitter` and `reorder_delay` (durations). The order
//! in which a packet meets them is [`crate::backend::simnet::faults`]'s.
//!
//! Only `--engine simnet` runs a case with faults or a backlog: turmoil
//! has no retransmission (a lost packet would be lost for ever, which no
//! TCP does) and no listen backlog, and real loopback sockets cannot drop
//! packets. Elsewhere the case is UNSUPPORTED ([`NetSpec::needs_simnet`]).

use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;

use crate::backend::simnet::{Faults, Loss};
use crate::duration::Dur;

/// The simulated network of a case.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSpec {
    /// One-way latency of every link.
    #[serde(default = "default_latency")]
    pub latency: Dur,
    /// Packet faults on every link of the subject (simnet only).
    #[serde(default)]
    pub faults: Option<FaultSpec>,
    /// Packet faults on the subject's link with one peer, by peer name, in
    /// place of `faults` (simnet only).
    #[serde(default)]
    pub peer_faults: IndexMap<String, FaultSpec>,
    /// The subject's listen backlog: connections handshaking or waiting to
    /// be accepted, beyond which a SYN is dropped (simnet only; default
    /// 4096, as the turmoil engine's).
    #[serde(default)]
    pub backlog: Option<usize>,
}

/// One-way latency when a case names none: a continental link. Large enough
/// that the simulator's tick can be large too (see the sim backend).
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(50);

fn default_latency() -> Dur {
    Dur(DEFAULT_LATENCY)
}

impl Default for NetSpec {
    fn default() -> Self {
        NetSpec {
            latency: default_latency(),
            faults: None,
            peer_faults: IndexMap::new(),
            backlog: None,
        }
    }
}

impl NetSpec {
    /// What of this network only the simnet engine models, if anything:
    /// "packet faults", "listen backlog" or both.
    pub fn needs_simnet(&self) -> Option<&'static str> {
        let faults = self.faults.is_some() || !self.peer_faults.is_empty();
        match (faults, self.backlog.is_some()) {
            (false, false) => None,
            (true, false) => Some("packet faults"),
            (false, true) => Some("listen backlog"),
            (true, true) => Some("packet faults and listen backlog"),
        }
    }

    /// The faults on the subject's link with the peer whose base name is
    /// `peer`, if any: its own table, else the table for every link.
    pub fn faults_for(&self, peer: &str) -> Option<&FaultSpec> {
        self.peer_faults.get(peer).or(self.faults.as_ref())
    }

    /// Checks every fault table: an error naming the field (as the
    /// catalog writes it, `net.peer_faults.s1.loss`) and what is wrong.
    pub fn check(&self, peers: &[String]) -> Result<(), (String, String)> {
        if let Some(f) = &self.faults {
            f.faults()
                .map_err(|(k, m)| (format!("net.faults.{k}"), m))?;
        }
        for (name, f) in &self.peer_faults {
            if !peers.contains(name) {
                return Err((
                    format!("net.peer_faults.{name}"),
                    format!(
                        "'{name}' is not a peer of this case (its peers: {})",
                        peers.join(", ")
                    ),
                ));
            }
            f.faults()
                .map_err(|(k, m)| (format!("net.peer_faults.{name}.{k}"), m))?;
        }
        if self.backlog == Some(0) {
            return Err((
                "net.backlog".into(),
                "a backlog of 0 refuses every connection; use a server peer with refuse = true"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Which way a fault table applies on a link of the subject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultDirection {
    /// Packets both ways.
    #[default]
    Both,
    /// Packets the peer sends to the subject.
    ToSubject,
    /// Packets the subject sends to the peer.
    FromSubject,
}

/// Packet faults as a case writes them: a profile, fields that replace
/// the profile's, and a direction.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// A named profile to start from.
    #[serde(default)]
    pub profile: Option<String>,
    /// Each packet lost with this probability, on its own.
    #[serde(default)]
    pub loss: Option<f64>,
    /// Losses in bursts (in place of `loss`).
    #[serde(default)]
    pub burst: Option<BurstSpec>,
    /// Bytes per second the direction carries.
    #[serde(default)]
    pub bandwidth: Option<u64>,
    /// Probability that a packet arrives twice.
    #[serde(default)]
    pub duplicate: Option<f64>,
    /// Greatest extra delay of a packet, drawn uniformly.
    #[serde(default)]
    pub jitter: Option<Dur>,
    /// Probability that a packet is held back by `reorder_delay`.
    #[serde(default)]
    pub reorder: Option<f64>,
    /// How long a reordered packet is held back.
    #[serde(default)]
    pub reorder_delay: Option<Dur>,
    /// Which way the faults apply.
    #[serde(default)]
    pub direction: FaultDirection,
}

/// Bursty loss as a case writes it: a Gilbert-Elliott chain.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstSpec {
    /// Chance per packet of going from the good state to the bad.
    pub to_bad: f64,
    /// Chance per packet of going from the bad state back to the good.
    pub to_good: f64,
    /// Loss in the good state.
    #[serde(default)]
    pub loss_good: f64,
    /// Loss in the bad state.
    #[serde(default = "all")]
    pub loss_bad: f64,
}

fn all() -> f64 {
    1.0
}

impl BurstSpec {
    /// The simulator's loss, checked: an error naming the field
    /// (`burst.to_good`, ...) and what is wrong.
    fn loss(&self) -> Result<Loss, (String, String)> {
        let fields = [
            ("to_bad", self.to_bad),
            ("to_good", self.to_good),
            ("loss_good", self.loss_good),
            ("loss_bad", self.loss_bad),
        ];
        for (field, p) in fields {
            if !(0.0..=1.0).contains(&p) {
                return Err((
                    format!("burst.{field}"),
                    format!("{p} is not a probability from 0 to 1"),
                ));
            }
        }
        if self.to_good == 0.0 && self.to_bad > 0.0 && self.loss_bad > 0.0 {
            return Err((
                "burst.to_good".into(),
                "0 never leaves the bad state: the first burst would last for ever".into(),
            ));
        }
        Ok(Loss::GilbertElliott {
            to_bad: self.to_bad,
            to_good: self.to_good,
            loss_good: self.loss_good,
            loss_bad: self.loss_bad,
        })
    }

    /// The share of packets lost in the long run (the chain's stationary
    /// loss) and the mean length of a stay in the bad state, in packets.
    pub fn shape(&self) -> (f64, f64) {
        let moves = self.to_bad + self.to_good;
        let bad = if moves == 0.0 {
            0.0
        } else {
            self.to_bad / moves
        };
        let lost = bad * self.loss_bad + (1.0 - bad) * self.loss_good;
        (lost, 1.0 / self.to_good)
    }
}

impl FaultSpec {
    /// The simulator's faults: the profile's, with the fields written
    /// replacing them, checked. An error names the field (`profile`,
    /// `loss`, ...) and what is wrong.
    pub fn faults(&self) -> Result<Faults, (String, String)> {
        let mut f = match &self.profile {
            Some(name) => Faults::profile(name).map_err(|m| ("profile".to_string(), m))?,
            None => Faults::default(),
        };
        if let Some(p) = self.loss {
            f.loss = Loss::Random(p);
        }
        if let Some(b) = &self.burst {
            if self.loss.is_some() {
                return Err((
                    "burst".into(),
                    "`loss` (random) and `burst` (in bursts) are two models of the same \
                     loss; write one"
                        .into(),
                ));
            }
            f.loss = b.loss()?;
        }
        if let Some(b) = self.bandwidth {
            f.bandwidth = Some(b);
        }
        if let Some(p) = self.duplicate {
            f.duplicate = p;
        }
        if let Some(d) = self.jitter {
            f.jitter = d.0;
        }
        if let Some(p) = self.reorder {
            f.reorder = p;
        }
        if let Some(d) = self.reorder_delay {
            f.reorder_delay = d.0;
        }
        let probabilities = [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ];
        for (field, p) in probabilities {
            if let Some(p) = p.filter(|p| !(0.0..=1.0).contains(p)) {
                return Err((
                    field.into(),
                    format!("{p} is not a probability from 0 to 1"),
                ));
            }
        }
        if self.bandwidth == Some(0) {
            return Err((
                "bandwidth".into(),
                "a bandwidth of 0 bytes per second carries nothing".into(),
            ));
        }
        f.check().map_err(|m| ("profile".to_string(), m))?;
        Ok(f)
    }

    /// The direction's words, for `explain`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.profile {
            parts.push(format!("profile {p}"));
        }
        if let Some(p) = self.loss {
            parts.push(format!("{}% loss", p * 100.0));
        }
        if let Some(b) = &self.burst {
            let (lost, run) = b.shape();
            parts.push(format!(
                "losses in bursts (about {:.1}% of packets, {:.1} at a time)",
                lost * 100.0,
                run
            ));
        }
        if let Some(b) = self.bandwidth {
            parts.push(format!("{b} B/s"));
        }
        if let Some(p) = self.duplicate {
            parts.push(format!("{}% duplicated", p * 100.0));
        }
        if let Some(d) = self.jitter {
            parts.push(format!("jitter up to {d}"));
        }
        if let Some(p) = self.reorder {
            parts.push(format!("{}% reordered", p * 100.0));
        }
        if let Some(d) = self.reorder_delay {
            parts.push(format!("held back {d}"));
        }
        let way = match self.direction {
            FaultDirection::Both => "both ways",
            FaultDirection::ToSubject => "towards the subject",
            FaultDirection::FromSubject => "from the subject",
        };
        format!("{} ({way})", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> FaultSpec {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn fields_replace_the_profiles() {
        let f = spec("profile = \"gprs\"\nloss = 0.1").faults().unwrap();
        assert_eq!(f.loss, Loss::Random(0.1));
        assert_eq!(f.bandwidth, Some(5_000));
    }

    #[test]
    fn burst_is_a_gilbert_elliott_chain_with_defaults_for_its_losses() {
        let s = spec("burst = { to_bad = 0.01, to_good = 0.25 }");
        assert_eq!(
            s.faults().unwrap().loss,
            Loss::GilbertElliott {
                to_bad: 0.01,
                to_good: 0.25,
                loss_good: 0.0,
                loss_bad: 1.0
            }
        );
        // It replaces a profile's loss, as `loss` does.
        let s = spec("profile = \"gprs\"\nburst = { to_bad = 0.1, to_good = 0.4, loss_bad = 0.5 }");
        let f = s.faults().unwrap();
        assert!(matches!(f.loss, Loss::GilbertElliott { loss_bad, .. } if loss_bad == 0.5));
        assert_eq!(f.bandwidth, Some(5_000));
        // 0.1 / 0.5 of packets in the bad state, half of them lost: 10%,
        // in stays of 2.5 packets.
        let (lost, run) = s.burst.unwrap().shape();
        assert!((lost - 0.1).abs() < 1e-12 && (run - 2.5).abs() < 1e-12);
        assert_eq!(
            s.describe(),
            "profile gprs, losses in bursts (about 10.0% of packets, 2.5 at a time) (both ways)"
        );
    }

    #[test]
    fn burst_refuses_bad_probabilities_a_chain_stuck_bad_and_loss_beside_it() {
        let err = |t: &str| spec(t).faults().unwrap_err();
        assert_eq!(
            err("burst = { to_bad = 0.01, to_good = 1.25 }"),
            (
                "burst.to_good".to_string(),
                "1.25 is not a probability from 0 to 1".to_string()
            )
        );
        let (field, msg) = err("burst = { to_bad = 0.01, to_good = 0.0 }");
        assert_eq!(field, "burst.to_good");
        assert!(msg.contains("never leaves the bad state"), "{msg}");
        let (field, msg) = err("loss = 0.1\nburst = { to_bad = 0.01, to_good = 0.5 }");
        assert_eq!(field, "burst");
        assert!(msg.contains("write one"), "{msg}");
        let e = toml::from_str::<FaultSpec>("burst = { to_bad = 0.01 }").unwrap_err();
        assert!(e.to_string().contains("missing field `to_good`"), "{e}");
        let e = toml::from_str::<FaultSpec>("burst = { to_bad = 0.01, to_good = 0.1, bad = 1 }")
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `bad`"), "{e}");
    }

    #[test]
    fn a_bad_profile_or_probability_names_its_field() {
        let (field, msg) = spec("profile = \"3g\"").faults().unwrap_err();
        assert_eq!(field, "profile");
        assert!(msg.contains("'3g'") && msg.contains("lossy-wifi"), "{msg}");
        let (field, msg) = spec("loss = 1.5").faults().unwrap_err();
        assert_eq!(
            (field.as_str(), msg.as_str()),
            ("loss", "1.5 is not a probability from 0 to 1")
        );
    }
}

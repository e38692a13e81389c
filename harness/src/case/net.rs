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

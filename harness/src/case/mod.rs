//! Conformance cases as data: a stable ID, the clauses checked, the role
//! under test, what the scripted peers do, and what is expected.
//!
//! Cases live in `suites/*.toml` (see [`crate::catalog`]); one case reads:
//!
//! ```toml
//! [[case]]
//! id = "client.utf8-split"
//! title = "a character split between two reads survives"
//! clauses = ["CLIENT-11"]
//! role = "client"
//! [[case.servers]]
//! poem = "loreley"
//! split_utf8 = true
//! delay = "100ms"
//! [case.expect]
//! results = ["poem"]
//! ```

pub mod describe;
pub mod expect;
pub mod net;
pub mod peers;
pub mod poem;

use std::time::Duration;

use serde::Deserialize;

pub use expect::Expect;
pub use net::{BurstSpec, FaultDirection, FaultSpec, NetSpec, DEFAULT_LATENCY};
pub use peers::{ClientPeer, End, Leave, ServerPeer, XformBehaviour, XformPeer};
pub use poem::PoemSpec;

use crate::duration::Dur;

/// The role of the program under test.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Poetry server, slow or fast.
    Server,
    /// Poetry client.
    Client,
    /// Transformation server.
    TransformServer,
    /// Transforming client.
    TransformClient,
    /// Caching proxy.
    Proxy,
}

impl Role {
    /// Every role, in catalog order.
    pub const ALL: [Role; 5] = [
        Role::Server,
        Role::Client,
        Role::TransformServer,
        Role::TransformClient,
        Role::Proxy,
    ];

    /// The name used in catalog files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
            Role::TransformServer => "transform-server",
            Role::TransformClient => "transform-client",
            Role::Proxy => "proxy",
        }
    }

    /// The prefix every case ID of this role starts with.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Role::Server => "server.",
            Role::Client => "client.",
            Role::TransformServer => "xserver.",
            Role::TransformClient => "xclient.",
            Role::Proxy => "proxy.",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Role::ALL.iter().map(|r| r.name()).collect();
                format!("unknown role '{s}' (known: {})", known.join(", "))
            })
    }
}

/// Something an implementation may declare it does not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    /// Connect and idle timeouts.
    Timeouts,
    /// Transforms other than cummingsify.
    ExtraTransforms,
    /// A paced (slow) poetry server: `--num-bytes` and `--delay`. Every
    /// case whose subject is paced needs it.
    Pacing,
}

impl std::fmt::Display for Feature {
    /// As manifests spell it (`lacks = ["timeouts"]`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Feature::Timeouts => "timeouts",
            Feature::ExtraTransforms => "extra-transforms",
            Feature::Pacing => "pacing",
        })
    }
}

/// How the program under test is configured for a case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// Servers and proxies: the poem the subject serves (server role).
    #[serde(default)]
    pub poem: PoemSpec,
    /// Slow server: bytes per write (absent: the fast server).
    #[serde(default)]
    pub num_bytes: Option<usize>,
    /// Slow server: pause between writes.
    #[serde(default)]
    pub delay: Option<Dur>,
    /// Clients and proxy: connect timeout.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Dur,
    /// Clients, proxy and transform server: idle timeout.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Dur,
    /// Transforming client: transform to request.
    #[serde(default = "default_transform")]
    pub transform: String,
    /// Transforming client: transform timeout.
    #[serde(default = "default_transform_timeout")]
    pub transform_timeout: Dur,
    /// Transform server: payload limit.
    #[serde(default = "default_max_payload")]
    pub max_payload: usize,
}

impl Default for Subject {
    fn default() -> Self {
        // Same defaults as serde's, from an empty table.
        toml::from_str("").expect("empty subject table parses")
    }
}

fn default_connect_timeout() -> Dur {
    Dur(crate::reference::poetry_client::DEFAULT_CONNECT_TIMEOUT)
}
fn default_idle_timeout() -> Dur {
    Dur(crate::reference::poetry_client::DEFAULT_IDLE_TIMEOUT)
}
fn default_transform() -> String {
    "cummingsify".into()
}
fn default_transform_timeout() -> Dur {
    Dur(crate::reference::transform_client::DEFAULT_TRANSFORM_TIMEOUT)
}
fn default_max_payload() -> usize {
    crate::protocol::netstring::DEFAULT_MAX_PAYLOAD
}

/// Simulated time a case may take before it is a TIMEOUT (the spec's
/// default case time limit).
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(120);

fn default_limit() -> Dur {
    Dur(DEFAULT_LIMIT)
}

/// One conformance case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Stable ID, `<role prefix>.<name>`, e.g. `client.utf8-split`.
    pub id: String,
    /// One line saying what is checked.
    pub title: String,
    /// Spec clauses checked (IDs of `suites/SPEC.md`).
    pub clauses: Vec<String>,
    /// Role of the program under test.
    pub role: Role,
    /// Features the program must have; UNSUPPORTED otherwise.
    #[serde(default)]
    pub requires: Vec<Feature>,
    /// Recorded, not judged (MAY clauses): the verdict is INFO.
    #[serde(default)]
    pub info: bool,
    /// The simulated network.
    #[serde(default)]
    pub net: NetSpec,
    /// Simulated time after which the case is a TIMEOUT.
    #[serde(default = "default_limit")]
    pub limit: Dur,
    /// How the subject is configured.
    #[serde(default)]
    pub subject: Subject,
    /// Scripted poetry servers, in the order the subject is given them.
    #[serde(default)]
    pub servers: Vec<ServerPeer>,
    /// Scripted clients.
    #[serde(default)]
    pub clients: Vec<ClientPeer>,
    /// The scripted transform server (transforming-client cases).
    #[serde(default)]
    pub xform: Option<XformPeer>,
    /// What the strict profile expects.
    pub expect: Expect,
    /// What the tutorial profile accepts instead (fields replace `expect`'s),
    /// for what no tutorial paragraph grants: a SHOULD clause's violation.
    /// The clauses' `Tutorial profile [...]:` paragraphs apply without it
    /// (see [`crate::verdict::grants`]).
    #[serde(default)]
    pub tutorial: Option<Expect>,
    /// Only the simulator runs it (a live run would take too long even
    /// scaled, or needs what real sockets cannot do); say why in a comment.
    #[serde(default)]
    pub sim_only: bool,
    /// Live runs scale this case's durations by at least this much, whatever
    /// the time scale asked for: a case that moves megabytes needs its
    /// deadlines long enough for a loaded machine to move them. Every
    /// duration of the case takes the same scale, so their order (a client
    /// giving up before another leaves) holds.
    #[serde(default)]
    pub min_time_scale: Option<f64>,
    /// The catalog file on disk the case was read from (`--suites`), for
    /// a replay command to name; `None` for the built-in catalog. Not
    /// written in the file itself.
    #[serde(skip)]
    pub source: Option<std::path::PathBuf>,
}

impl Case {
    /// Names of the server peers, in order: given, or s1, s2, ...
    pub fn server_names(&self) -> Vec<String> {
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| s.name.clone().unwrap_or_else(|| format!("s{}", i + 1)))
            .collect()
    }

    /// Base names of the client peers, in order: given, or c1, c2, ...
    pub fn client_names(&self) -> Vec<String> {
        self.clients
            .iter()
            .enumerate()
            .map(|(i, c)| c.name.clone().unwrap_or_else(|| format!("c{}", i + 1)))
            .collect()
    }

    /// Every duration that drives the run (subject settings and peer
    /// scripts; not the expectations), for scaling a live run.
    pub fn durations_mut(&mut self) -> Vec<&mut Dur> {
        let s = &mut self.subject;
        let mut out = vec![
            &mut s.connect_timeout,
            &mut s.idle_timeout,
            &mut s.transform_timeout,
        ];
        out.extend(s.delay.as_mut());
        for p in &mut self.servers {
            out.extend([
                &mut p.delay,
                &mut p.first_delay,
                &mut p.pause,
                &mut p.end_delay,
                &mut p.jitter,
            ]);
            out.extend(p.write_timeout.as_mut());
        }
        for c in &mut self.clients {
            out.extend([
                &mut c.start,
                &mut c.stagger,
                &mut c.send_delay,
                &mut c.read_delay,
            ]);
            out.extend(c.leave_at.as_mut());
            out.extend(c.deadline.as_mut());
        }
        if let Some(x) = &mut self.xform {
            out.push(&mut x.delay);
        }
        out
    }

    /// Every duration the case names, for choosing the simulator's tick:
    /// the latency, [`Case::durations_mut`], and the jitter step if any.
    pub fn durations(&self) -> Vec<Duration> {
        let mut copy = self.clone();
        let mut out: Vec<Duration> = copy.durations_mut().into_iter().map(|d| d.0).collect();
        out.push(self.net.latency.0);
        if self.servers.iter().any(|p| !p.jitter.0.is_zero()) {
            out.push(peers::JITTER_STEP);
        }
        out
    }
}

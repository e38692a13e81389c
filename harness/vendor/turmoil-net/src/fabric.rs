//! Inter-host packet routing.
//!
//! `Fabric` is a pure router: it owns the host registry and exposes
//! `egress_all` / `deliver` as primitives.
//!
//! PATCH (poetry-harness): time passed in, per-host config, and only hosts with work visited by `egress_all`.

use std::collections::BTreeSet;
use std::io::{Error, ErrorKind};
use std::net::IpAddr;
use std::time::Duration;

use crate::kernel::{Kernel, KernelConfig, Packet};

// PATCH (poetry-harness): `Ord`, to visit hosts with work in host order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(u32);

#[derive(Debug)]
pub struct Host {
    #[allow(dead_code)]
    pub addrs: Vec<IpAddr>,
    pub kernel: Kernel,
    /// PATCH (poetry-harness): the kernel's earliest timer as last seen,
    /// i.e. this host's entry in `Fabric::deadlines`.
    deadline: Option<Duration>,
    /// PATCH (poetry-harness): listed in `Fabric::active`.
    active: bool,
}

#[derive(Debug)]
pub struct Fabric {
    hosts: crate::FastMap<HostId, Host>,
    ip_to_host: crate::FastMap<IpAddr, HostId>,
    next_id: u32,
    default_cfg: KernelConfig,
    /// PATCH (poetry-harness): hosts touched (a socket call, a delivery)
    /// since their last egress. With `deadlines`, the only hosts
    /// `egress_all` visits: an untouched host with no timer due has
    /// nothing to send. Upstream visited every host on every call, which
    /// made a scheduler pass cost O(hosts). A list with a flag per host,
    /// sorted when visited: a set of a few hosts built and consumed on
    /// every pass allocated and freed a tree node each time (3.5% of the
    /// ten-minute case's instructions).
    active: Vec<HostId>,
    /// PATCH (poetry-harness): the emptied list of the last visit, kept
    /// with its capacity for the next.
    visited: Vec<HostId>,
    /// PATCH (poetry-harness): each host's earliest TCP timer.
    deadlines: BTreeSet<(Duration, HostId)>,
}

impl Fabric {
    pub fn new(cfg: KernelConfig) -> Self {
        Self {
            hosts: crate::FastMap::default(),
            ip_to_host: crate::FastMap::default(),
            next_id: 0,
            default_cfg: cfg,
            active: Vec::new(),
            visited: Vec::new(),
            deadlines: BTreeSet::new(),
        }
    }

    /// Loopback is implicit; passing it explicitly panics. Panics
    /// if any address is already claimed.
    pub fn add_host(&mut self, addrs: Vec<IpAddr>) -> HostId {
        let cfg = self.default_cfg.clone();
        self.try_add_host(addrs, cfg)
            .expect("add_host validation failed")
    }

    /// PATCH (poetry-harness): a host with its own kernel settings.
    pub fn add_host_with_config(&mut self, addrs: Vec<IpAddr>, cfg: KernelConfig) -> HostId {
        self.try_add_host(addrs, cfg)
            .expect("add_host validation failed")
    }

    fn try_add_host(&mut self, addrs: Vec<IpAddr>, cfg: KernelConfig) -> std::io::Result<HostId> {
        for a in &addrs {
            if a.is_loopback() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "loopback is implicit; do not register it explicitly",
                ));
            }
            if self.ip_to_host.contains_key(a) {
                return Err(Error::from(ErrorKind::AddrInUse));
            }
        }

        let id = HostId(self.next_id);
        self.next_id += 1;

        let mut kernel = Kernel::with_config(cfg);
        for a in &addrs {
            kernel.add_address(*a);
        }
        for a in &addrs {
            self.ip_to_host.insert(*a, id);
        }
        debug_assert_eq!(id.0 as usize, self.hosts.len(), "ids are indices");
        self.hosts.insert(
            id,
            Host {
                addrs,
                kernel,
                deadline: None,
                active: false,
            },
        );
        Ok(id)
    }

    pub fn host_ids(&self) -> impl Iterator<Item = HostId> + '_ {
        self.hosts.keys().copied()
    }

    pub fn kernel_mut(&mut self, id: HostId) -> &mut Kernel {
        &mut self.host_mut(id).kernel
    }

    pub fn kernel(&self, id: HostId) -> &Kernel {
        &self.hosts[id.0 as usize].kernel
    }

    /// PATCH (poetry-harness): host `id` by its index, not its hash: ids
    /// are given in order from 0 and a host is never removed.
    fn host_mut(&mut self, id: HostId) -> &mut Host {
        &mut self.hosts[id.0 as usize]
    }

    /// Reverse the IP→host mapping. Returns `None` for loopback (which
    /// every host implicitly owns) and for unclaimed IPs.
    pub fn host_for_ip(&self, ip: IpAddr) -> Option<HostId> {
        self.ip_to_host.get(&ip).copied()
    }

    /// Drain outbound packets from every host, in host-insertion order,
    /// appending to `out`. The caller decides what happens to each
    /// packet — deliver, drop, schedule for later — and reuses the
    /// buffer across ticks. Loopback packets fold back through the
    /// source host's `deliver` inline (inside `Kernel::egress`) and
    /// never appear in `out`.
    pub fn egress_all(&mut self, now: Duration, out: &mut Vec<Packet>) {
        // PATCH (poetry-harness): only the hosts touched since their last
        // egress or with a timer due, in host order (upstream's order,
        // minus hosts that would emit nothing); each kernel learns the
        // time first (its timers fire in `egress`).
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            self.host_mut(id).deadline = None;
            self.mark_active(id);
        }
        // The hosts to visit, in host order; `active` starts empty again
        // (with the capacity of the list before) for the next call.
        std::mem::swap(&mut self.active, &mut self.visited);
        let mut due = std::mem::take(&mut self.visited);
        due.sort_unstable();
        for &id in &due {
            let host = self.host_mut(id);
            host.active = false;
            host.kernel.set_now(now);
            host.kernel.egress(out);
            self.sync_deadline(id);
        }
        due.clear();
        self.visited = due;
    }

    /// PATCH (poetry-harness): lists `id` for the next `egress_all`, once.
    fn mark_active(&mut self, id: HostId) {
        let host = self.host_mut(id);
        if !host.active {
            host.active = true;
            self.active.push(id);
        }
    }

    /// PATCH (poetry-harness): the earliest TCP timer of any host.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.deadlines.first().map(|(d, _)| *d)
    }

    /// PATCH (poetry-harness): `id`'s kernel was used (a socket call): it
    /// may have packets to send, and its earliest timer may have moved.
    pub fn touched(&mut self, id: HostId) {
        self.mark_active(id);
        self.sync_deadline(id);
    }

    fn sync_deadline(&mut self, id: HostId) {
        let host = &mut self.hosts[id.0 as usize];
        let now = host.kernel.next_deadline();
        if now == host.deadline {
            return;
        }
        if let Some(old) = host.deadline {
            self.deadlines.remove(&(old, id));
        }
        if let Some(new) = now {
            self.deadlines.insert((new, id));
        }
        host.deadline = now;
    }

    /// Route a packet to the host bound to its destination IP. Drops
    /// silently if the destination isn't registered — matches real-
    /// world "packet hit an unreachable address" behavior, and keeps
    /// the harness free of routing concerns.
    pub fn deliver(&mut self, now: std::time::Duration, pkt: Packet) {
        if let Some(&dst) = self.ip_to_host.get(&pkt.dst) {
            let kernel = &mut self.host_mut(dst).kernel;
            // PATCH (poetry-harness): timers armed on delivery start now.
            kernel.set_now(now);
            kernel.deliver(pkt);
            self.touched(dst);
        }
    }
}

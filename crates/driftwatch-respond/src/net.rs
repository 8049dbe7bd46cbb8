//! Network enforcement (`--enforce` with `network.enforce = true`): a container whose workload
//! finished learning its network baseline may connect only to its baseline's peers, and a
//! process that ran drifted code may connect nowhere; both are refused in the kernel
//! (`cgroup/connect4|6`, `cgroup/sendmsg4|6`, see `driftwatch-bpf`) before a packet leaves.
//!
//! [`NetEnforcer`] keeps the kernel's `dw_net_allow` and `dw_net_drifted` equal to what the
//! baselines and the processes say: [`NetEnforcer::sync`] writes the difference for one
//! container. What a baseline names by DNS name is allowed at the addresses the container itself
//! resolved for it (the caller passes them).
//!
//! Fail-open: the kernel programs are attached through links owned by the agent process and
//! never pinned; when the agent exits (or dies) they are detached and nothing stays refused.

use driftwatch_baseline::{Baseline, Networks, Peer, Port, Proto};
use driftwatch_bpf::{BpfError, ExecSensor, NetPeer, IPPROTO_TCP, IPPROTO_UDP};
use driftwatch_event::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// What is enforced for one container cgroup.
#[derive(Debug, Default)]
struct Enforced {
    peers: HashSet<NetPeer>,
}

/// The kernel side of network enforcement, for every enforced container.
#[derive(Debug, Default)]
pub struct NetEnforcer {
    by_cgroup: HashMap<u64, Enforced>,
    /// Processes that ran drifted code, marked in the kernel: tgid → start time.
    drifted: HashMap<u32, u64>,
}

fn protocol(p: Proto) -> u8 {
    match p {
        Proto::Tcp => IPPROTO_TCP,
        Proto::Udp => IPPROTO_UDP,
    }
}

/// The peers a baseline allows for `cgroup_id`; `resolved(name)` gives the addresses the
/// container resolved for a DNS name (or `*.domain` pattern) of the baseline.
pub fn allowed_peers(
    cgroup_id: u64,
    b: &Baseline,
    networks: &Networks,
    resolved: &dyn Fn(&str) -> Vec<IpAddr>,
) -> HashSet<NetPeer> {
    let mut out = HashSet::new();
    for o in &b.connect {
        let port = match o.port {
            Port::Any => None,
            Port::One(p) => Some(p),
        };
        let mut put = |net: IpNet| {
            let peer = NetPeer {
                cgroup_id,
                protocol: protocol(o.proto),
                net,
                port,
            };
            out.insert(peer.normalized());
        };
        match &o.peer {
            Peer::Address(net) => put(*net),
            Peer::Network(name) => {
                for net in networks.get(name).unwrap_or_default() {
                    put(*net);
                }
            }
            Peer::Name(name) => {
                for ip in resolved(name) {
                    put(IpNet::host(ip));
                }
            }
        }
    }
    out
}

impl NetEnforcer {
    /// Whether a container cgroup is enforced.
    pub fn is_enforced(&self, cgroup_id: u64) -> bool {
        self.by_cgroup.contains_key(&cgroup_id)
    }

    /// How many container cgroups are enforced.
    pub fn enforced(&self) -> usize {
        self.by_cgroup.len()
    }

    /// Enforces `cgroup_id` with exactly `peers` allowed (adding and removing the difference
    /// from what was written before); returns the cgroup's new policy flags.
    pub fn sync(
        &mut self,
        sensor: &mut ExecSensor,
        cgroup_id: u64,
        peers: HashSet<NetPeer>,
    ) -> Result<u32, BpfError> {
        let e = self.by_cgroup.entry(cgroup_id).or_default();
        for gone in e.peers.difference(&peers) {
            sensor.remove_net_peer(gone)?;
        }
        for new in peers.difference(&e.peers) {
            sensor.allow_net_peer(new)?;
        }
        e.peers = peers;
        sensor.set_net_enforce(cgroup_id, true)
    }

    /// Stops enforcing a cgroup (its container is gone, or enforcement was turned off) and
    /// removes its entries.
    pub fn release(&mut self, sensor: &mut ExecSensor, cgroup_id: u64) -> Result<(), BpfError> {
        if self.by_cgroup.remove(&cgroup_id).is_some() {
            sensor.clear_net_peers(cgroup_id)?;
            sensor.set_net_enforce(cgroup_id, false)?;
        }
        Ok(())
    }

    /// A process ran drifted code: none of its connections is allowed any more (in enforced
    /// containers). `start_ns` is the process's start time as its exec record gave it, so a
    /// reused PID is never refused.
    pub fn mark_drifted(
        &mut self,
        sensor: &mut ExecSensor,
        tgid: u32,
        start_ns: u64,
    ) -> Result<(), BpfError> {
        if self.drifted.get(&tgid) == Some(&start_ns) {
            return Ok(());
        }
        sensor.mark_net_drifted(tgid, start_ns)?;
        self.drifted.insert(tgid, start_ns);
        Ok(())
    }

    /// A process exited: its mark goes.
    pub fn exited(&mut self, sensor: &mut ExecSensor, tgid: u32) -> Result<(), BpfError> {
        if let Some(start) = self.drifted.remove(&tgid) {
            sensor.unmark_net_drifted(tgid, start)?;
        }
        Ok(())
    }

    /// Compares the kernel's maps with what was written, repairs them, and returns what someone
    /// else changed.
    pub fn check(&self, sensor: &mut ExecSensor) -> Result<Vec<String>, BpfError> {
        if self.by_cgroup.is_empty() && self.drifted.is_empty() {
            return Ok(Vec::new());
        }
        let peers: HashSet<NetPeer> = self
            .by_cgroup
            .values()
            .flat_map(|e| e.peers.iter().cloned())
            .collect();
        Ok(sensor
            .check_net_integrity(&peers, &self.drifted)?
            .iter()
            .map(|t| format!("{t} (repaired)"))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_baseline_becomes_kernel_entries() {
        let mut b = Baseline::new("w", 0, 0);
        let ip = |s: &str| -> IpAddr { s.parse().unwrap_or_else(|e| panic!("{s}: {e}")) };
        let mut nets = std::collections::BTreeMap::new();
        nets.insert(
            "cluster".to_string(),
            vec![IpNet::parse("10.96.0.0/12").unwrap_or_else(|| panic!("cidr"))],
        );
        let networks = Networks::new(nets);
        b.learn_peer(Proto::Tcp, ip("192.0.2.1"), 443, None, &networks, 1);
        b.learn_peer(Proto::Udp, ip("10.96.0.10"), 53, None, &networks, 1);
        b.learn_peer(
            Proto::Tcp,
            ip("203.0.113.1"),
            443,
            Some("api.test"),
            &networks,
            1,
        );
        let resolved = |n: &str| {
            if n == "api.test" {
                vec![ip("203.0.113.1"), ip("2001:db8::1")]
            } else {
                Vec::new()
            }
        };
        let peers = allowed_peers(7, &b, &networks, &resolved);
        assert_eq!(peers.len(), 4, "{peers:?}");
        assert!(peers.contains(&NetPeer {
            cgroup_id: 7,
            protocol: IPPROTO_UDP,
            net: IpNet::parse("10.96.0.0/12").unwrap_or_else(|| panic!("cidr")),
            port: Some(53),
        }));
        assert!(peers
            .iter()
            .any(|p| p.net == IpNet::host(ip("2001:db8::1")) && p.port == Some(443)));
    }
}

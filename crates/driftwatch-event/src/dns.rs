//! DNS answers containers received (issue 10: `fd.sip.name` and friends, learnt passively).

use std::net::SocketAddr;

/// A UDP datagram from port 53 that a socket of a tracked container received: a DNS answer,
/// seen by the kernel before the socket queued it. No task: the kernel delivers packets outside
/// any process's context; `cgroup_id` is the receiving socket's cgroup. DNS over TCP is not seen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsEvent {
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// cgroup v2 id of the socket that received it (the container's cgroup).
    pub cgroup_id: u64,
    /// The server that answered (its address and port 53).
    pub server: Option<SocketAddr>,
    /// The DNS message (the UDP payload), at most the kernel's 512 bytes.
    pub payload: Vec<u8>,
    /// The datagram was longer than what was kept: `payload` is its beginning.
    pub truncated: bool,
}

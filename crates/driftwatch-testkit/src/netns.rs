//! A network peer for a container: a network namespace made by the test, joined to the
//! container's network namespace (which `ctr run` gives only loopback) by a veth pair.
//!
//! Each [`PeerNet`] gets `n`, unique in the process: the namespace `dwpeer-<pid>-<n>`, the
//! subnets `10.213.<n>.0/24` and `fd00:dd:<n>::/64` (the peer is `.1`/`::1`, the container
//! `.2`/`::2`). The container gets an address on its end of the pair and, through it, a route
//! to the peer's subnet only: nothing else becomes reachable from it. IPv6 addresses are added
//! with `nodad`, so they are usable at once. Dropping the peer kills every process in its
//! namespace (what [`PeerNet::spawn`] started) and deletes the namespace, which removes the pair.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Result, TestkitError};
use crate::subprocess::run_checked;

/// How long one `ip`/`nsenter` call may take.
const IP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the pair may take to come up (carrier on both ends).
const UP_TIMEOUT: Duration = Duration::from_secs(5);
/// The peer end's name, inside the peer's namespace.
const PEER_IF: &str = "dwpeer0";

/// A test-made network namespace joined to a container's by a veth pair.
#[derive(Debug)]
pub struct PeerNet {
    /// The namespace's name (`ip netns exec <netns> …`).
    pub netns: String,
    pub peer_v4: Ipv4Addr,
    pub container_v4: Ipv4Addr,
    pub peer_v6: Ipv6Addr,
    pub container_v6: Ipv6Addr,
}

fn ip_cmd(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    run_checked(cmd, IP_TIMEOUT).map(|_| ())
}

/// `ip …` run in the network namespace of `pid` (the host's `ip`, the container's network).
fn ip_in(pid: u32, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &pid.to_string(), "-n", "ip"]).args(args);
    run_checked(cmd, IP_TIMEOUT).map(|_| ())
}

impl PeerNet {
    /// Creates the namespace and the pair, moves one end into the network namespace of
    /// `container_pid` (the container's init), addresses both ends and waits until the link is
    /// up. On failure whatever was made is removed.
    pub fn attach(container_pid: u32) -> Result<PeerNet> {
        static SEQ: AtomicU8 = AtomicU8::new(1);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        if n == 0 || n == 255 {
            return Err(TestkitError::Parse {
                what: "PeerNet subnet".to_string(),
                detail: "more than 254 peers in one process (10.213.<n>.0/24)".to_string(),
            });
        }
        let peer = PeerNet {
            netns: format!("dwpeer-{}-{n}", std::process::id()),
            peer_v4: Ipv4Addr::new(10, 213, n, 1),
            container_v4: Ipv4Addr::new(10, 213, n, 2),
            peer_v6: Ipv6Addr::new(0xfd00, 0xdd, u16::from(n), 0, 0, 0, 0, 1),
            container_v6: Ipv6Addr::new(0xfd00, 0xdd, u16::from(n), 0, 0, 0, 0, 2),
        };
        ip_cmd(&["netns", "add", &peer.netns])?;
        // From here on, Drop cleans up.
        peer.set_up(container_pid, n)?;
        Ok(peer)
    }

    fn set_up(&self, pid: u32, n: u8) -> Result<()> {
        let ns = self.netns.as_str();
        let cif = format!("dwc{n}");
        let pid_s = pid.to_string();
        ip_cmd(&[
            "-n", ns, "link", "add", PEER_IF, "type", "veth", "peer", "name", &cif,
        ])?;
        ip_cmd(&["-n", ns, "link", "set", &cif, "netns", &pid_s])?;
        let v4 = |a: Ipv4Addr| format!("{a}/24");
        let v6 = |a: Ipv6Addr| format!("{a}/64");
        ip_cmd(&["-n", ns, "link", "set", "lo", "up"])?;
        ip_cmd(&["-n", ns, "addr", "add", &v4(self.peer_v4), "dev", PEER_IF])?;
        ip_cmd(&[
            "-n",
            ns,
            "addr",
            "add",
            &v6(self.peer_v6),
            "dev",
            PEER_IF,
            "nodad",
        ])?;
        ip_cmd(&["-n", ns, "link", "set", PEER_IF, "up"])?;
        // The container's end: its address gives it the route to the peer's subnet, and only
        // that (no default route).
        ip_in(pid, &["addr", "add", &v4(self.container_v4), "dev", &cif])?;
        ip_in(
            pid,
            &["addr", "add", &v6(self.container_v6), "dev", &cif, "nodad"],
        )?;
        ip_in(pid, &["link", "set", &cif, "up"])?;
        self.wait_up()
    }

    /// Bounded wait for the peer end's carrier (both ends up).
    fn wait_up(&self) -> Result<()> {
        let deadline = Instant::now() + UP_TIMEOUT;
        loop {
            let out = Command::new("ip")
                .args(["-n", &self.netns, "link", "show", PEER_IF])
                .output()
                .map_err(|source| TestkitError::Spawn {
                    program: "ip".to_string(),
                    source,
                })?;
            let text = String::from_utf8_lossy(&out.stdout);
            if text.contains("LOWER_UP") && !text.contains("NO-CARRIER") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TestkitError::Timeout {
                    command: format!("ip -n {} link show {PEER_IF} (carrier)", self.netns),
                    timeout: UP_TIMEOUT,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `argv` in the peer's namespace (`ip netns exec`), stdin closed; killed when the
    /// peer is dropped.
    pub fn spawn(&self, argv: &[&str]) -> std::io::Result<Child> {
        Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(argv)
            .stdin(Stdio::null())
            .spawn()
    }

    /// The processes in the peer's namespace.
    fn pids(&self) -> Vec<String> {
        Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for PeerNet {
    fn drop(&mut self) {
        // Bounded: a process that survives SIGKILL (none should) is given up on.
        for _ in 0..50 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            let _ = Command::new("kill").arg("-KILL").args(&pids).status();
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

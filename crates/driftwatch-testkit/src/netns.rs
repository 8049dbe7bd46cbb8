//! A network peer for a container, made by the test: a network namespace of its own and a veth
//! pair from it into the container's network namespace, with addresses of the test's choosing.
//! A container made by `ctr run` has only loopback; with a [`PeerNet`] it can reach servers the
//! test runs in the peer namespace ([`PeerNet::spawn`]) and nothing else (the container gets a
//! route to the peer's subnet only). Dropping it kills what runs in the peer namespace and
//! deletes the namespace, which removes the veth pair.

use crate::error::{Result, TestkitError};
use crate::subprocess::run_checked;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static NEXT: AtomicU32 = AtomicU32::new(0);
const TIMEOUT: Duration = Duration::from_secs(20);

/// A test-made network namespace joined to a container by a veth pair.
#[derive(Debug)]
pub struct PeerNet {
    /// The peer namespace (`ip netns` name).
    pub netns: String,
    pub peer_v4: Ipv4Addr,
    pub container_v4: Ipv4Addr,
    pub peer_v6: Ipv6Addr,
    pub container_v6: Ipv6Addr,
    /// The veth end inside the container.
    pub container_if: String,
    container_pid: u32,
}

fn ip(args: &[&str]) -> Result<()> {
    let mut c = Command::new("ip");
    c.args(args);
    run_checked(c, TIMEOUT).map(|_| ())
}

impl PeerNet {
    /// Joins the network namespace of `container_pid` (the container's init process) to a new
    /// peer namespace: the peer is 10.213.N.1/24 and fd00:dd:N::1/64, the container 10.213.N.2
    /// and fd00:dd:N::2 (N unique in this process).
    pub fn attach(container_pid: u32) -> Result<PeerNet> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let sub = (std::process::id() + n) % 250 + 1;
        let netns = format!("dwpeer-{}-{n}", std::process::id());
        let tag = format!("{:x}", (std::process::id() % 0xfffff) * 64 + n % 64);
        let (vp, vc) = (format!("dwp{tag}"), format!("dwc{tag}"));
        let peer = PeerNet {
            netns: netns.clone(),
            peer_v4: Ipv4Addr::new(10, 213, sub as u8, 1),
            container_v4: Ipv4Addr::new(10, 213, sub as u8, 2),
            peer_v6: format!("fd00:dd:{sub:x}::1")
                .parse()
                .unwrap_or(Ipv6Addr::LOCALHOST),
            container_v6: format!("fd00:dd:{sub:x}::2")
                .parse()
                .unwrap_or(Ipv6Addr::LOCALHOST),
            container_if: vc.clone(),
            container_pid,
        };
        ip(&["netns", "add", &netns])?;
        // From here on, Drop cleans up whatever was made.
        let pid = container_pid.to_string();
        let (p4, c4) = (
            format!("{}/24", peer.peer_v4),
            format!("{}/24", peer.container_v4),
        );
        let (p6, c6) = (
            format!("{}/64", peer.peer_v6),
            format!("{}/64", peer.container_v6),
        );
        ip(&["link", "add", &vp, "type", "veth", "peer", "name", &vc])?;
        ip(&["link", "set", &vp, "netns", &netns])?;
        ip(&["link", "set", &vc, "netns", &pid])?;
        for args in [
            vec!["link", "set", "lo", "up"],
            vec!["addr", "add", &p4, "dev", &vp],
            vec!["-6", "addr", "add", &p6, "dev", &vp, "nodad"],
            vec!["link", "set", &vp, "up"],
        ] {
            let mut full = vec!["netns", "exec", &netns, "ip"];
            full.extend(args);
            ip(&full)?;
        }
        for args in [
            vec!["addr", "add", &c4, "dev", &vc],
            vec!["-6", "addr", "add", &c6, "dev", &vc, "nodad"],
            vec!["link", "set", &vc, "up"],
        ] {
            peer.in_container(&args)?;
        }
        Ok(peer)
    }

    /// Runs `ip ARGS` in the container's network namespace.
    pub fn in_container(&self, args: &[&str]) -> Result<()> {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.container_pid.to_string())
            .arg("-n")
            .arg("ip")
            .args(args);
        run_checked(c, TIMEOUT).map(|_| ())
    }

    /// Gives the peer one more address (`169.254.169.254`), routed to it from the container.
    pub fn add_peer_address(&self, addr: std::net::IpAddr) -> Result<()> {
        let (len, v6) = if addr.is_ipv4() {
            (32, None)
        } else {
            (128, Some("-6"))
        };
        let a = format!("{addr}/{len}");
        let vp = self.container_if.replacen("dwc", "dwp", 1);
        let mut args = vec!["netns", "exec", &self.netns, "ip"];
        args.extend(v6);
        args.extend(["addr", "add", &a, "dev", &vp]);
        if v6.is_some() {
            args.push("nodad");
        }
        ip(&args)?;
        let mut route: Vec<&str> = v6.into_iter().collect();
        route.extend(["route", "add", &a, "dev", &self.container_if]);
        self.in_container(&route)
    }

    /// Starts `argv` in the peer namespace (stdin closed, output discarded unless piped by the
    /// caller through the returned child). It is killed when the [`PeerNet`] drops.
    pub fn spawn(&self, argv: &[&str]) -> std::io::Result<Child> {
        Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }
}

impl Drop for PeerNet {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    if let Some(p) = rustix::process::Pid::from_raw(pid) {
                        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                    }
                }
            }
        }
        if let Err(e) = ip(&["netns", "del", &self.netns]) {
            let err: TestkitError = e;
            eprintln!("cannot delete network namespace {}: {err}", self.netns);
        }
    }
}

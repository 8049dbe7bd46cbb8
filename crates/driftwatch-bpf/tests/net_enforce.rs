//! Network enforcement against the running kernel (need root): `cgroup/connect4|6` and
//! `cgroup/sendmsg4|6` refusing a container's connects and datagrams outside `dw_net_allow`, and
//! every one of a drifted process.
//!
//! Each test makes its own network namespace (`ip netns add`) with one interface (a veth pair
//! with both ends in it: this kernel has no `dummy` driver) holding 10.214.0.0/24 and
//! fd00:214::/64 addresses, and TCP listeners on `[::]:8080` and `[::]:8081`
//! in it (created by a thread of this process that entered the namespace). No traffic goes
//! anywhere else: every destination is one of those addresses or loopback, in that namespace.
//! The client (`dwenfc`, a static helper reading one command per line) runs in a test-made
//! cgroup v2 directory and, through `ip netns exec`, in that namespace and a new mount
//! namespace (a container task for the sensor, loaded with this process's mount namespace as
//! the host's).

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{collect, compile_static, decoded, ns_ino, TestCgroup};
use driftwatch_abi::{
    NetRecord, Record, NET_F_DENIED, NET_F_NO_SYSCALL, POLICY_F_NET_ENFORCE, POLICY_F_TRACKED,
};
use driftwatch_bpf::{EventStream, ExecSensor, NetPeer, SensorOptions, IPPROTO_TCP, IPPROTO_UDP};
use driftwatch_event::IpNet;
use driftwatch_event::{ip_from_raw, NetOp};
use driftwatch_testkit::NetProbe;

const EPERM: i32 = 1;

/// `dwenfc`: reads commands on stdin, answers each with one line, `ok` or `err <errno>`:
/// `tcp IP PORT` (TCP connect), `udpc IP PORT` (UDP connect), `udp IP PORT N` (N datagrams to
/// IP:PORT from one unconnected UDP socket, by sendto; the first error), `msg IP PORT` (one
/// datagram by sendmsg), `uring IP PORT` (a TCP connect through io_uring; `nouring` if
/// io_uring is not available), `tfo IP PORT` (a TCP Fast Open `sendto(MSG_FASTOPEN)`, which
/// connects without connect(2)), `loop IP PORT N` (N UDP socket+connect+close), `quit`. An IP
/// with a `:` is IPv6 (`::ffff:a.b.c.d` is an IPv4-mapped destination of an AF_INET6 socket).
const DWENFC_C: &str = r#"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/io_uring.h>




int main(void) {
    char line[256], cmd[16], ip[64];
    int port, n;
    while (fgets(line, sizeof(line), stdin)) {
        n = 1;
        if (sscanf(line, "%15s %63s %d %d", cmd, ip, &port, &n) < 1)
            continue;
        if (!strcmp(cmd, "quit"))
            return 0;
        struct sockaddr_storage ss;
        socklen_t len = sa_of(ip, port, &ss);
        if (!len) {
            printf("bad %s", line);
            fflush(stdout);
            continue;
        }
        int err = 0;
        if (!strcmp(cmd, "tcp") || !strcmp(cmd, "udpc") || !strcmp(cmd, "uring")) {
            int s = socket(ss.ss_family, strcmp(cmd, "udpc") ? SOCK_STREAM : SOCK_DGRAM, 0);
            if (s < 0) {
                reply(errno);
                continue;
            }
            if (!strcmp(cmd, "uring")) {
                int r = uring_connect(s, (struct sockaddr *)&ss, len);
                if (r <= -1000) {
                    printf("nouring\n");
                    fflush(stdout);
                    close(s);
                    continue;
                }
                err = r < 0 ? -r : 0;
            } else if (connect(s, (struct sockaddr *)&ss, len) != 0) {
                err = errno;
            }
            close(s);
        } else if (!strcmp(cmd, "udp") || !strcmp(cmd, "msg")) {
            int s = socket(ss.ss_family, SOCK_DGRAM, 0);
            if (s < 0) {
                reply(errno);
                continue;
            }
            for (int i = 0; i < n; i++) {
                int r;
                if (!strcmp(cmd, "udp")) {
                    r = sendto(s, "x", 1, 0, (struct sockaddr *)&ss, len);
                } else {
                    struct iovec iov = {.iov_base = "m", .iov_len = 1};
                    struct msghdr msg = {.msg_name = &ss, .msg_namelen = len, .msg_iov = &iov,
                                         .msg_iovlen = 1};
                    r = sendmsg(s, &msg, 0);
                }
                if (r != 1 && !err)
                    err = errno;
            }
            close(s);
        } else if (!strcmp(cmd, "tfo")) {
            int s = socket(ss.ss_family, SOCK_STREAM, 0);
            if (s < 0) {
                reply(errno);
                continue;
            }
            if (sendto(s, "f", 1, MSG_FASTOPEN, (struct sockaddr *)&ss, len) != 1)
                err = errno;
            close(s);
        } else if (!strcmp(cmd, "loop")) {
            for (int i = 0; i < n; i++) {
                int s = socket(ss.ss_family, SOCK_DGRAM, 0);
                if (s < 0 || connect(s, (struct sockaddr *)&ss, len) != 0) {
                    if (!err)
                        err = errno;
                }
                if (s >= 0)
                    close(s);
            }
        } else {
            printf("bad %s", line);
            fflush(stdout);
            continue;
        }
        reply(err);
    }
    return 0;
}
"#;

fn dwenfc() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        compile_static(
            "driftwatch-bpf-net-enforce",
            "dwenfc",
            &common::with_uring_connect(&format!(
                "{}{DWENFC_C}",
                driftwatch_testkit::PROBE_PRELUDE_C
            )),
        )
    })
}

/// The addresses of the test namespace's dummy interface.
const V4_ADDRS: [&str; 6] = [
    "10.214.0.1",
    "10.214.0.2",
    "10.214.0.3",
    "10.214.0.17",
    "10.214.0.30",
    "10.214.0.33",
];
const V6_ADDRS: [&str; 3] = ["fd00:214::1", "fd00:214::2", "fd00:214::105"];

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace made for one test, with listeners on `[::]:8080` and `[::]:8081`;
/// deleted on drop.
struct TestNet {
    name: String,
    _listeners: Vec<TcpListener>,
}

impl TestNet {
    fn new() -> TestNet {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "dwenf-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        // Deleted on drop from here on, whatever fails below.
        let mut net = TestNet {
            name,
            _listeners: Vec::new(),
        };
        let name = net.name.clone();
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        // This kernel has no dummy driver: a veth pair with both ends in the namespace.
        ip(&[
            "-n", &name, "link", "add", "dw0", "type", "veth", "peer", "name", "dw1",
        ]);
        for a in V4_ADDRS {
            ip(&["-n", &name, "addr", "add", &format!("{a}/24"), "dev", "dw0"]);
        }
        for a in V6_ADDRS {
            ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{a}/64"),
                "dev",
                "dw0",
                "nodad",
            ]);
        }
        ip(&["-n", &name, "link", "set", "dw1", "up"]);
        ip(&["-n", &name, "link", "set", "dw0", "up"]);
        // Sockets belong to the namespace of the thread that made them.
        let path = format!("/run/netns/{name}");
        let listeners = std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open netns");
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns");
            [8080u16, 8081]
                .into_iter()
                .map(|p| TcpListener::bind(("::", p)).expect("listen in the test netns"))
                .collect::<Vec<_>>()
        })
        .join()
        .expect("listener thread");
        net._listeners = listeners;
        net
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A running `dwenfc` in the test namespace (and in `cg`, if given).
struct Client {
    probe: NetProbe,
}

impl Client {
    fn start(net: &TestNet, cg: Option<&TestCgroup>) -> Client {
        let script = match cg {
            Some(cg) => format!(
                "echo $$ > '{}' && exec ip netns exec {} \"$@\"",
                cg.procs().display(),
                net.name
            ),
            None => format!("exec ip netns exec {} \"$@\"", net.name),
        };
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", &script, "sh"]).arg(dwenfc());
        let mut c = Client {
            probe: NetProbe::spawn(cmd).expect("spawn dwenfc"),
        };
        // The first answer also says the exec into the namespace is done.
        assert_eq!(c.call("tcp 127.0.0.1 8080"), Ok(()), "client started");
        c
    }

    fn pid(&self) -> u32 {
        self.probe.pid()
    }

    /// Runs one command: `Ok` or `Err(errno)`.
    fn call(&mut self, cmd: &str) -> Result<(), i32> {
        self.probe.call(cmd)
    }
}

fn load(enforce: bool) -> (ExecSensor, EventStream) {
    let opts = SensorOptions {
        enforce,
        agent_tgid: std::process::id(),
        host_mntns_ino: u32::try_from(ns_ino("mnt")).expect("mntns inode fits u32"),
        files: false,
        net: true,
    };
    let mut sensor = ExecSensor::load(&opts).unwrap_or_else(|e| panic!("load sensor: {e:?}"));
    assert!(sensor.net_enforce_available(), "cgroup programs attached");
    let events = sensor.take_events().expect("events");
    (sensor, events)
}

/// A sensor enforcing on a new cgroup: (sensor, events, cgroup).
fn enforcing() -> (ExecSensor, EventStream, TestCgroup) {
    let (mut sensor, events) = load(true);
    let cg = TestCgroup::new();
    let flags = sensor.set_net_enforce(cg.id(), true).expect("enforce");
    assert_eq!(flags, POLICY_F_TRACKED | POLICY_F_NET_ENFORCE);
    (sensor, events, cg)
}

fn peer(cg: &TestCgroup, protocol: u8, addr: &str, prefix_len: u8, port: Option<u16>) -> NetPeer {
    NetPeer {
        cgroup_id: cg.id(),
        protocol,
        net: IpNet::new(addr.parse().expect("address"), prefix_len).expect("prefix"),
        port,
    }
}

fn remote(n: &NetRecord) -> SocketAddr {
    SocketAddr::new(ip_from_raw(n.family, &n.raddr).expect("inet"), n.rport)
}

fn nets(raw: &[Vec<u8>]) -> Vec<NetRecord> {
    decoded(raw)
        .iter()
        .filter_map(|r| match r {
            Record::Net(n) => Some(*n),
            _ => None,
        })
        .collect()
}

/// Reads `pid`'s records until `done` holds for its network records; returns them.
async fn net_records_until(
    events: &mut EventStream,
    pid: u32,
    mut done: impl FnMut(&[NetRecord]) -> bool,
) -> Vec<NetRecord> {
    let raw = collect(events, &HashSet::from([pid]), |g| done(&nets(g))).await;
    nets(&raw)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// Whether `n` is a refused `op` to `to` reported by the syscall's exit record.
fn denied_syscall(n: &NetRecord, op: NetOp, to: SocketAddr) -> bool {
    n.op == op.raw() && n.has(NET_F_DENIED) && !n.has(NET_F_NO_SYSCALL) && remote(n) == to
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_enforcement_every_peer_is_reachable() {
    let net = TestNet::new();
    // Enforcement on, the cgroup only tracked.
    let (mut sensor, mut events) = load(true);
    let cg = TestCgroup::new();
    sensor
        .set_policy(cg.id(), POLICY_F_TRACKED)
        .expect("policy");
    let mut c = Client::start(&net, Some(&cg));
    for cmd in [
        "tcp 10.214.0.1 8080",
        "tcp fd00:214::2 8081",
        "udpc 10.214.0.3 53",
        "udp 10.214.0.2 5353 3",
        "msg fd00:214::1 5353",
        "tcp ::ffff:10.214.0.1 8080",
    ] {
        assert_eq!(c.call(cmd), Ok(()), "{cmd}");
    }
    let pid = c.pid();
    drop(c);
    let recs = net_records_until(&mut events, pid, |n| {
        n.iter().any(|n| n.op == NetOp::Sendmsg.raw())
    })
    .await;
    assert!(recs.iter().all(|n| !n.has(NET_F_DENIED)), "{recs:#?}");
    drop(sensor);

    // NET_ENFORCE set, but the sensor's global switch off: nothing is refused either.
    let (mut sensor, _events) = load(false);
    sensor.set_net_enforce(cg.id(), true).expect("enforce flag");
    let mut c = Client::start(&net, Some(&cg));
    assert_eq!(c.call("tcp 10.214.0.1 8080"), Ok(()));
    assert_eq!(c.call("udp 10.214.0.2 5353 1"), Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enforced_cgroup_reaches_only_its_allowed_peers() {
    let net = TestNet::new();
    let (mut sensor, mut events, cg) = enforcing();
    // One address and port; one address on any port; a network on one port.
    for p in [
        peer(&cg, IPPROTO_TCP, "10.214.0.1", 32, Some(8080)),
        peer(&cg, IPPROTO_TCP, "10.214.0.2", 32, None),
        peer(&cg, IPPROTO_TCP, "10.214.0.16", 28, Some(8081)),
        peer(&cg, IPPROTO_UDP, "10.214.0.1", 32, Some(53)),
    ] {
        sensor.allow_net_peer(&p).expect("allow");
    }
    let mut c = Client::start(&net, Some(&cg));
    for cmd in [
        "tcp 10.214.0.1 8080",
        "tcp 10.214.0.2 8080",
        "tcp 10.214.0.2 8081",
        "tcp 10.214.0.17 8081",
        "tcp 10.214.0.30 8081",
        "udpc 10.214.0.1 53",
        "udp 10.214.0.1 53 2",
        // An IPv4-mapped destination of an IPv6 socket matches the IPv4 entry.
        "tcp ::ffff:10.214.0.1 8080",
        // TCP Fast Open connects from sendto, through the same hook.
        "tfo 10.214.0.1 8080",
    ] {
        assert_eq!(c.call(cmd), Ok(()), "allowed: {cmd}");
    }
    for cmd in [
        "tcp 10.214.0.1 8081",  // allowed address, other port
        "tcp 10.214.0.3 8080",  // other address
        "tcp 10.214.0.33 8081", // outside the network
        "tcp 10.214.0.30 8080", // in the network, other port
        "udpc 10.214.0.1 8080", // an allowed TCP peer is not a UDP one
        "tcp ::ffff:10.214.0.3 8080",
        "tfo 10.214.0.3 8080",
    ] {
        assert_eq!(c.call(cmd), Err(EPERM), "refused: {cmd}");
    }
    // The refused connect is reported by its syscall, with EPERM and the address it asked for.
    let pid = c.pid();
    let recs = net_records_until(&mut events, pid, |n| {
        n.iter()
            .any(|n| denied_syscall(n, NetOp::Connect, sa("10.214.0.3:8080")))
    })
    .await;
    let refused: Vec<_> = recs.iter().filter(|n| n.has(NET_F_DENIED)).collect();
    let r = refused
        .iter()
        .find(|n| remote(n) == sa("10.214.0.1:8081"))
        .expect("the refused connect to 10.214.0.1:8081 is reported");
    assert_eq!((r.op, r.ret), (NetOp::Connect.raw(), -1), "{r:#?}");
    assert!(recs
        .iter()
        .filter(|n| n.op == NetOp::Connect.raw() && remote(n) == sa("10.214.0.1:8080"))
        .all(|n| (n.protocol == 6) == (!n.has(NET_F_DENIED) && n.ret == 0)));

    // The decoded event says so too.
    let clock = driftwatch_bpf::decode::Clock::new();
    let mut buf = driftwatch_abi::NetEvent::default();
    buf.hdr.kind = driftwatch_abi::DW_EV_NET;
    buf.hdr.version = driftwatch_abi::DW_ABI_VERSION;
    buf.hdr.len = u32::try_from(driftwatch_abi::NET_EVENT_SIZE).expect("fits");
    buf.op = r.op;
    buf.family = r.family;
    buf.flags = r.flags;
    buf.ret = r.ret;
    let Ok(driftwatch_event::Event::Net(ev)) =
        driftwatch_bpf::decode::decode(&buf.to_bytes(), &clock)
    else {
        panic!("decodes");
    };
    assert!(ev.denied);

    // Entries removed one by one, then all of the cgroup's.
    let listed = sensor.net_peers(cg.id()).expect("list");
    assert_eq!(listed.len(), 4, "{listed:#?}");
    sensor
        .remove_net_peer(&peer(&cg, IPPROTO_TCP, "10.214.0.1", 32, Some(8080)))
        .expect("remove");
    assert_eq!(c.call("tcp 10.214.0.1 8080"), Err(EPERM));
    assert_eq!(c.call("tcp 10.214.0.2 8081"), Ok(()));
    // A network written with host bits is the same entry.
    sensor
        .remove_net_peer(&peer(&cg, IPPROTO_TCP, "10.214.0.20", 28, Some(8081)))
        .expect("remove network");
    assert_eq!(c.call("tcp 10.214.0.17 8081"), Err(EPERM));
    assert_eq!(sensor.clear_net_peers(cg.id()).expect("clear"), 2);
    assert!(sensor.net_peers(cg.id()).expect("list").is_empty());
    assert_eq!(c.call("tcp 10.214.0.2 8081"), Err(EPERM));
    assert_eq!(c.call("udp 10.214.0.1 53 1"), Err(EPERM));
    // Enforcement off again: allowed.
    let flags = sensor.set_net_enforce(cg.id(), false).expect("off");
    assert_eq!(flags, POLICY_F_TRACKED);
    assert_eq!(c.call("tcp 10.214.0.3 8080"), Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_never_refused() {
    let net = TestNet::new();
    let (_sensor, _events, cg) = enforcing();
    let mut c = Client::start(&net, Some(&cg));
    for cmd in [
        "tcp 127.0.0.1 8080",
        "tcp 127.3.2.1 8081",
        "tcp ::1 8080",
        "tcp ::ffff:127.0.0.1 8081",
        "udpc 127.0.0.1 53",
        "udp 127.0.0.1 5353 2",
        "msg ::1 5353",
        "udp ::ffff:127.0.0.9 5353 1",
    ] {
        assert_eq!(c.call(cmd), Ok(()), "loopback: {cmd}");
    }
    assert_eq!(c.call("tcp 10.214.0.1 8080"), Err(EPERM), "no entries");
    assert_eq!(c.call("tcp fd00:214::1 8080"), Err(EPERM), "no entries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconnected_udp_to_a_refused_peer_is_eperm_and_reported_once_per_socket() {
    let net = TestNet::new();
    let (mut sensor, mut events, cg) = enforcing();
    sensor
        .allow_net_peer(&peer(&cg, IPPROTO_UDP, "10.214.0.1", 32, Some(53)))
        .expect("allow");
    sensor
        .allow_net_peer(&peer(&cg, IPPROTO_UDP, "fd00:214::1", 128, None))
        .expect("allow v6");
    let mut c = Client::start(&net, Some(&cg));
    assert_eq!(c.call("udp 10.214.0.1 53 3"), Ok(()));
    assert_eq!(c.call("msg 10.214.0.1 53"), Ok(()));
    assert_eq!(c.call("udp fd00:214::1 9999 1"), Ok(()));
    assert_eq!(c.call("udp 10.214.0.1 54 3"), Err(EPERM));
    assert_eq!(c.call("udp 10.214.0.2 53 1"), Err(EPERM));
    assert_eq!(c.call("msg 10.214.0.3 53"), Err(EPERM));
    assert_eq!(c.call("udp fd00:214::2 53 1"), Err(EPERM));
    assert_eq!(c.call("udp ::ffff:10.214.0.2 53 1"), Err(EPERM));
    let pid = c.pid();
    let recs = net_records_until(&mut events, pid, |n| {
        n.iter()
            .any(|n| denied_syscall(n, NetOp::Sendto, sa("[fd00:214::2]:53")))
    })
    .await;
    let denied = |op: NetOp, to: &str| {
        recs.iter()
            .filter(|n| denied_syscall(n, op, sa(to)))
            .count()
    };
    assert_eq!(
        denied(NetOp::Sendto, "10.214.0.1:54"),
        1,
        "three refused datagrams from one socket, one record: {recs:#?}"
    );
    assert_eq!(denied(NetOp::Sendto, "10.214.0.2:53"), 1);
    assert_eq!(denied(NetOp::Sendmsg, "10.214.0.3:53"), 1);
    let r = recs
        .iter()
        .find(|n| denied_syscall(n, NetOp::Sendto, sa("10.214.0.1:54")))
        .expect("record");
    assert_eq!(r.ret, -1, "EPERM");
    let allowed: Vec<_> = recs
        .iter()
        .filter(|n| n.op == NetOp::Sendto.raw() && remote(n) == sa("10.214.0.1:53"))
        .collect();
    assert_eq!(allowed.len(), 1, "first datagram per peer: {allowed:#?}");
    assert!(!allowed[0].has(NET_F_DENIED) && allowed[0].ret == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_peers_and_networks() {
    let net = TestNet::new();
    let (mut sensor, _events, cg) = enforcing();
    sensor
        .allow_net_peer(&peer(&cg, IPPROTO_TCP, "fd00:214::1", 128, Some(8080)))
        .expect("allow");
    sensor
        .allow_net_peer(&peer(&cg, IPPROTO_TCP, "fd00:214::100", 120, None))
        .expect("allow network");
    // Written as an IPv4-mapped IPv6 address: the IPv4 entry.
    sensor
        .allow_net_peer(&peer(
            &cg,
            IPPROTO_TCP,
            "::ffff:10.214.0.2",
            128,
            Some(8081),
        ))
        .expect("allow mapped");
    let listed = sensor.net_peers(cg.id()).expect("list");
    assert!(
        listed.contains(&peer(&cg, IPPROTO_TCP, "10.214.0.2", 32, Some(8081))),
        "{listed:#?}"
    );
    let mut c = Client::start(&net, Some(&cg));
    for cmd in [
        "tcp fd00:214::1 8080",
        "tcp fd00:214::105 8080",
        "tcp fd00:214::105 8081",
        "tcp 10.214.0.2 8081",
        "tcp ::ffff:10.214.0.2 8081",
    ] {
        assert_eq!(c.call(cmd), Ok(()), "allowed: {cmd}");
    }
    for cmd in [
        "tcp fd00:214::1 8081",
        "tcp fd00:214::2 8080",
        "udpc fd00:214::1 8080",
        "tcp 10.214.0.2 8080",
    ] {
        assert_eq!(c.call(cmd), Err(EPERM), "refused: {cmd}");
    }
    assert!(
        IpNet::new("10.214.0.1".parse().expect("ip"), 33).is_none(),
        "no peer with a prefix longer than its address can be made"
    );
}

/// The exec records of `pid` carry the process's start time, the same in each (an exec keeps
/// it): the value `mark_net_drifted` needs.
async fn start_ns_of(events: &mut EventStream, pid: u32) -> u64 {
    let raw = collect(events, &HashSet::from([pid]), |g| {
        decoded(g).iter().any(|r| {
            matches!(r, Record::Exec(e) if e.task.tgid == pid && e.task.comm_bytes() == b"dwenfc")
        })
    })
    .await;
    let starts: HashSet<u64> = decoded(&raw)
        .iter()
        .filter_map(|r| match r {
            Record::Exec(e) if e.task.tgid == pid => Some(e.task.start_ns),
            _ => None,
        })
        .collect();
    assert_eq!(starts.len(), 1, "one start time over the execs: {starts:?}");
    let start = starts.into_iter().next().expect("one");
    assert!(start > 0 && start < driftwatch_bpf::boot_time_ns());
    start
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drifted_process_is_refused_even_to_allowed_peers() {
    let net = TestNet::new();
    let (mut sensor, mut events, cg) = enforcing();
    sensor
        .allow_net_peer(&peer(&cg, IPPROTO_TCP, "10.214.0.1", 32, Some(8080)))
        .expect("allow");
    sensor
        .allow_net_peer(&peer(&cg, IPPROTO_UDP, "10.214.0.1", 32, None))
        .expect("allow udp");
    let mut drifted = Client::start(&net, Some(&cg));
    let mut other = Client::start(&net, Some(&cg));
    let start = start_ns_of(&mut events, drifted.pid()).await;

    // Another start time for the same PID is another process: not refused.
    sensor
        .mark_net_drifted(drifted.pid(), start + 1)
        .expect("mark");
    assert_eq!(drifted.call("tcp 10.214.0.1 8080"), Ok(()), "a reused PID");
    sensor.mark_net_drifted(drifted.pid(), start).expect("mark");
    assert_eq!(drifted.call("tcp 10.214.0.1 8080"), Err(EPERM));
    assert_eq!(drifted.call("udp 10.214.0.1 53 1"), Err(EPERM));
    assert_eq!(drifted.call("tcp 127.0.0.1 8080"), Ok(()), "loopback");
    assert_eq!(other.call("tcp 10.214.0.1 8080"), Ok(()), "another process");
    assert_eq!(other.call("udp 10.214.0.1 53 1"), Ok(()));
    let recs = net_records_until(&mut events, drifted.pid(), |n| {
        n.iter()
            .any(|n| denied_syscall(n, NetOp::Sendto, sa("10.214.0.1:53")))
    })
    .await;
    assert!(recs
        .iter()
        .any(|n| denied_syscall(n, NetOp::Connect, sa("10.214.0.1:8080"))));
    assert!(recs.iter().all(|n| n.task.start_ns == start));

    assert!(!sensor
        .unmark_net_drifted(drifted.pid(), start + 1)
        .expect("unmark"));
    assert_eq!(
        drifted.call("tcp 10.214.0.1 8080"),
        Err(EPERM),
        "still marked"
    );
    assert!(sensor
        .unmark_net_drifted(drifted.pid(), start)
        .expect("unmark"));
    assert_eq!(drifted.call("tcp 10.214.0.1 8080"), Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_io_uring_connect_is_reported_without_a_syscall() {
    let net = TestNet::new();
    let (mut sensor, mut events, cg) = enforcing();
    sensor
        .allow_net_peer(&peer(&cg, IPPROTO_TCP, "10.214.0.1", 32, Some(8080)))
        .expect("allow");
    let mut c = Client::start(&net, Some(&cg));
    let line = c.probe.ask("uring 10.214.0.2 8080");
    if line.trim() == "nouring" {
        println!("io_uring not available: skipped");
        return;
    }
    assert_eq!(
        line.trim(),
        format!("err {EPERM}"),
        "refused through io_uring"
    );
    assert_eq!(c.call("uring 10.214.0.1 8080"), Ok(()), "allowed");
    let pid = c.pid();
    let recs = net_records_until(&mut events, pid, |n| {
        n.iter()
            .any(|n| n.has(NET_F_NO_SYSCALL) && n.has(NET_F_DENIED))
    })
    .await;
    let uring: Vec<_> = recs.iter().filter(|n| n.has(NET_F_NO_SYSCALL)).collect();
    let refused = uring
        .iter()
        .find(|n| n.has(NET_F_DENIED))
        .expect("refused record");
    assert_eq!(remote(refused), sa("10.214.0.2:8080"));
    assert_eq!((refused.op, refused.fd), (NetOp::Connect.raw(), -1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_drifted_map_is_an_error_that_names_it() {
    let (mut sensor, _events) = load(true);
    // PIDs above any pid_max: no process of this machine is named.
    let base = 1 << 30;
    for i in 0..driftwatch_abi::DW_NET_DRIFTED_MAX_ENTRIES {
        sensor.mark_net_drifted(base + i, 1).expect("mark");
    }
    let full = sensor.mark_net_drifted(base - 1, 1);
    assert!(
        matches!(
            full,
            Err(driftwatch_bpf::BpfError::MapFull {
                map: "dw_net_drifted",
                capacity: 16384
            })
        ),
        "{full:?}"
    );
    assert!(sensor.unmark_net_drifted(base, 1).expect("unmark"));
    sensor.mark_net_drifted(base - 1, 1).expect("room again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_the_network_maps_is_found_and_repaired() {
    use driftwatch_bpf::Tamper;
    use std::collections::HashMap;
    let net = TestNet::new();
    let (mut sensor, _events, cg) = enforcing();
    let kept = peer(&cg, IPPROTO_TCP, "10.214.0.1", 32, Some(8080));
    let deleted = peer(&cg, IPPROTO_UDP, "10.214.0.0", 24, None);
    let foreign = peer(&cg, IPPROTO_TCP, "10.214.0.2", 32, None);
    let base = 1 << 30;
    for p in [kept, deleted, foreign] {
        sensor.allow_net_peer(&p).expect("allow");
    }
    for (tgid, start) in [(base, 1), (base + 1, 2), (base + 2, 3)] {
        sensor.mark_net_drifted(tgid, start).expect("mark");
    }
    // What the agent wrote: `foreign` and `base + 2` are someone else's; `deleted` was
    // deleted and `base + 1` rewritten, behind its back.
    sensor.remove_net_peer(&deleted).expect("tamper");
    sensor.mark_net_drifted(base + 1, 99).expect("tamper");
    let peers = HashSet::from([kept, deleted]);
    let drifted = HashMap::from([(base, 1), (base + 1, 2)]);
    let found = sensor.check_net_integrity(&peers, &drifted).expect("check");
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(found.contains(&Tamper::NetPeerAdded {
        peer: Some(foreign)
    }));
    assert!(found.contains(&Tamper::NetPeerRemoved { peer: deleted }));
    assert!(found.contains(&Tamper::NetDriftedAdded {
        tgid: base + 2,
        start_ns: 3
    }));
    assert!(found.contains(&Tamper::NetDriftedChanged {
        tgid: base + 1,
        expected: 2,
        found: Some(99)
    }));
    assert!(found.iter().all(|t| !t.to_string().is_empty()));
    // Repaired: the foreign peer is refused again, the deleted one allowed.
    let mut c = Client::start(&net, Some(&cg));
    assert_eq!(c.call("tcp 10.214.0.2 8080"), Err(EPERM));
    assert_eq!(c.call("udp 10.214.0.3 53 1"), Ok(()));
    assert_eq!(
        sensor.check_net_integrity(&peers, &drifted).expect("check"),
        []
    );
}

/// Set by `enforcement_fails_open_when_the_loader_is_killed` for the child it re-executes
/// this test binary as: the cgroup id to enforce on.
const CHILD_ENV: &str = "DW_NET_ENFORCE_CHILD_CGROUP";
const READY: &str = "DW_NET_ENFORCE_READY";

/// Not a test of its own: the loader process of
/// `enforcement_fails_open_when_the_loader_is_killed` (returns at once otherwise). Loads the
/// sensor, enforces on the cgroup it is given with no allowed peer, says so and waits to be
/// killed.
#[test]
fn enforcing_loader_child() {
    let Some(cgroup) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let cgroup: u64 = cgroup
        .to_str()
        .and_then(|s| s.parse().ok())
        .expect("cgroup id");
    let opts = SensorOptions {
        enforce: true,
        agent_tgid: std::process::id(),
        host_mntns_ino: u32::try_from(ns_ino("mnt")).expect("fits"),
        files: false,
        net: true,
    };
    let mut sensor = ExecSensor::load(&opts).expect("load");
    sensor.set_net_enforce(cgroup, true).expect("enforce");
    println!("{READY}");
    // Bounded: the parent kills it long before.
    std::thread::sleep(Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcement_fails_open_when_the_loader_is_killed() {
    let net = TestNet::new();
    let cg = TestCgroup::new();
    let mut loader = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "enforcing_loader_child", "--nocapture"])
        .env(CHILD_ENV, cg.id().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the loader");
    let mut out = BufReader::new(loader.stdout.take().expect("stdout"));
    let mut line = String::new();
    while line.trim() != READY {
        line.clear();
        let n = out.read_line(&mut line).expect("read the loader");
        assert!(n > 0, "the loader exited before enforcing");
    }
    let mut c = Client::start(&net, Some(&cg));
    assert_eq!(c.call("tcp 10.214.0.1 8080"), Err(EPERM), "enforced");
    assert_eq!(c.call("udp 10.214.0.1 53 1"), Err(EPERM), "enforced");
    loader.kill().expect("kill -9 the loader (SIGKILL)");
    let status = loader.wait().expect("wait the loader");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    // Its links closed with its fds: the programs are detached, nothing is refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.call("tcp 10.214.0.1 8080").is_err() {
        assert!(
            Instant::now() < deadline,
            "still refused after the loader died"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.call("udp 10.214.0.1 53 1"), Ok(()));
}

/// What the cgroup programs cost per call (the kernel's run-time statistics,
/// `BPF_ENABLE_STATS`): N UDP connects (the connect hook's full path, no handshake) and N
/// datagrams, from a host task, a tracked (unenforced) container task and an enforced one
/// whose peer is allowed by port, or by an any-port entry (two lookups). Not run by default:
/// `cargo test -p driftwatch-bpf --release --test net_enforce -- --ignored --nocapture`
/// (`DW_COST_CONNS`, default 20000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn bpf_cost_of_the_connect_hook_by_kind_of_task() {
    let n: usize = std::env::var("DW_COST_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20000);
    let net = TestNet::new();
    let (mut sensor, events) = load(true);
    let drain = common::drain(events, 120);
    let tracked = TestCgroup::new();
    sensor
        .set_policy(tracked.id(), POLICY_F_TRACKED)
        .expect("policy");
    let enforced = TestCgroup::new();
    sensor
        .set_net_enforce(enforced.id(), true)
        .expect("enforce");
    sensor
        .allow_net_peer(&peer(&enforced, IPPROTO_UDP, "10.214.0.1", 32, Some(53)))
        .expect("allow");
    sensor
        .allow_net_peer(&peer(&enforced, IPPROTO_UDP, "10.214.0.2", 32, None))
        .expect("allow any port");
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).expect("BPF_ENABLE_STATS");
    let mut clients = [
        Client::start(&net, None),
        Client::start(&net, Some(&tracked)),
        Client::start(&net, Some(&enforced)),
    ];
    let cases = [
        ("host task", 0, "10.214.0.1 53"),
        ("unenforced container task", 1, "10.214.0.1 53"),
        ("enforced, allowed by port", 2, "10.214.0.1 53"),
        ("enforced, allowed by any-port entry", 2, "10.214.0.2 53"),
    ];
    let stat = |s: &ExecSensor, prog: &str| -> (u64, u64) {
        s.program_run_stats()
            .into_iter()
            .find(|(name, _, _)| name == prog)
            .map(|(_, runs, ns)| (runs, ns))
            .unwrap_or_default()
    };
    for (what, client, dest) in cases {
        for (cmd, prog) in [("loop", "dw_net_connect4"), ("udp", "dw_net_sendmsg4")] {
            // The syscall tracepoints too: under enforcement every datagram's arguments are
            // kept from entry to exit.
            let progs = [prog, "dw_net_enter", "dw_net_exit"];
            let before = progs.map(|p| stat(&sensor, p));
            assert_eq!(
                clients[client].call(&format!("{cmd} {dest} {n}")),
                Ok(()),
                "{what}"
            );
            for (p, (r0, t0)) in progs.iter().zip(before) {
                let (r1, t1) = stat(&sensor, p);
                let runs = r1 - r0;
                println!(
                    "{what}: {cmd}: {p}: {runs} runs, {:.0} ns per run",
                    (t1 - t0) as f64 / runs.max(1) as f64
                );
            }
        }
    }
    drain.abort();
}

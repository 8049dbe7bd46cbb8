//! The network sensor against the running kernel (need root).
//!
//! As in `file_ops.rs`, the sensor is loaded with this process's mount namespace as the host's;
//! the "container" task is a static helper run in a new mount namespace from a cgroup in
//! `dw_policy`. It talks to itself over loopback only (127.0.0.1 and ::1; listeners on
//! 0.0.0.0/:: bound to port 0, so nothing is reachable from elsewhere for long) with a bounded
//! number of calls, and prints the fds and ports the kernel gave it. The same helper run on the
//! host, or outside any policed cgroup, must produce no network record at all.

mod common;

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::{collect, compile_static, decoded, load_with, ns_ino, TestCgroup};
use driftwatch_abi::{
    NetRecord, Record, AF_INET, AF_INET6, NET_F_HAVE_SOCK, NET_F_IN_POLICY, NET_F_NO_SYSCALL,
    NET_F_REMOTE_ARG, NET_F_REMOTE_SOCK, POLICY_F_TRACKED,
};
use driftwatch_bpf::{EventStream, ExecSensor};
use driftwatch_event::{ip_from_raw, NetOp};

/// Every network call the sensor covers, over loopback; prints `name value` lines.
const DWNET_C: &str = r#"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "failed at line %d: %s\n", __LINE__, strerror(errno)); return 10; } } while (0)

static socklen_t sa_of(int family, const char *ip, int port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        inet_pton(AF_INET, ip, &s->sin_addr);
        return sizeof(*s);
    }
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &s->sin6_addr);
    return sizeof(*s);
}

static int port_of(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* A socket bound to ip:0 (and listening with backlog 7 unless type is not SOCK_STREAM). */
static int bound(int family, int type, const char *ip, int do_listen) {
    struct sockaddr_storage ss;
    int s = socket(family, type, 0);
    if (s < 0)
        return -1;
    if (family == AF_INET6) {
        int one = 1;
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    socklen_t len = sa_of(family, ip, 0, &ss);
    if (bind(s, (struct sockaddr *)&ss, len) != 0)
        return -1;
    if (do_listen && listen(s, 7) != 0)
        return -1;
    return s;
}


static int connect_to(int s, int family, const char *ip, int port) {
    struct sockaddr_storage ss;
    socklen_t len = sa_of(family, ip, port, &ss);
    return connect(s, (struct sockaddr *)&ss, len);
}

int main(void) {
    struct sockaddr_storage ss;
    socklen_t len;
    setvbuf(stdout, NULL, _IONBF, 0);

    /* TCP over IPv4 loopback: listener, connect, accept. */
    int l4 = bound(AF_INET, SOCK_STREAM, "127.0.0.1", 1);
    CHECK(l4 >= 0);
    int c4 = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(c4 >= 0);
    CHECK(connect_to(c4, AF_INET, "127.0.0.1", port_of(l4)) == 0);
    int a4 = accept(l4, NULL, NULL);
    CHECK(a4 >= 0);
    printf("l4 %d\np4 %d\nc4 %d\ncp4 %d\na4 %d\n", l4, port_of(l4), c4, port_of(c4), a4);

    /* TCP over IPv6 loopback, accept4. */
    int l6 = bound(AF_INET6, SOCK_STREAM, "::1", 1);
    CHECK(l6 >= 0);
    int c6 = socket(AF_INET6, SOCK_STREAM, 0);
    CHECK(connect_to(c6, AF_INET6, "::1", port_of(l6)) == 0);
    int a6 = accept4(l6, NULL, NULL, SOCK_CLOEXEC);
    CHECK(a6 >= 0);
    printf("l6 %d\np6 %d\nc6 %d\ncp6 %d\na6 %d\n", l6, port_of(l6), c6, port_of(c6), a6);

    /* Listeners on the unspecified addresses, port 0. */
    int w4 = bound(AF_INET, SOCK_STREAM, "0.0.0.0", 1);
    int w6 = bound(AF_INET6, SOCK_STREAM, "::", 1);
    CHECK(w4 >= 0 && w6 >= 0);
    printf("w4 %d\npw4 %d\nw6 %d\npw6 %d\n", w4, port_of(w4), w6, port_of(w6));

    /* A failed connect: a port bound but not listening refuses. */
    int closed = bound(AF_INET, SOCK_STREAM, "127.0.0.1", 0);
    CHECK(closed >= 0);
    int cr = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect_to(cr, AF_INET, "127.0.0.1", port_of(closed)) == -1 && errno == ECONNREFUSED);
    printf("cr %d\npcr %d\n", cr, port_of(closed));

    /* A non-blocking connect to the 0.0.0.0 listener through 127.0.0.1. */
    int nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(nb >= 0);
    int r = connect_to(nb, AF_INET, "127.0.0.1", port_of(w4));
    CHECK(r == 0 || errno == EINPROGRESS);
    printf("nb %d\n", nb);

    /* A connect through io_uring: no connect syscall. */
    int ur = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(ur >= 0);
    len = sa_of(AF_INET, "127.0.0.1", port_of(w4), &ss);
    printf("ur %d\nurres %d\n", ur, uring_connect(ur, (struct sockaddr *)&ss, len));

    /* Unconnected UDP: two peers, two datagrams each, by sendto; one peer twice by sendmsg. */
    int u1 = bound(AF_INET, SOCK_DGRAM, "127.0.0.1", 0);
    int u2 = bound(AF_INET, SOCK_DGRAM, "127.0.0.1", 0);
    int us = socket(AF_INET, SOCK_DGRAM, 0);
    int um = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(u1 >= 0 && u2 >= 0 && us >= 0 && um >= 0);
    for (int i = 0; i < 2; i++) {
        len = sa_of(AF_INET, "127.0.0.1", port_of(u1), &ss);
        CHECK(sendto(us, "x", 1, 0, (struct sockaddr *)&ss, len) == 1);
        len = sa_of(AF_INET, "127.0.0.1", port_of(u2), &ss);
        CHECK(sendto(us, "y", 1, 0, (struct sockaddr *)&ss, len) == 1);
        struct iovec iov = {.iov_base = "z", .iov_len = 1};
        len = sa_of(AF_INET, "127.0.0.1", port_of(u1), &ss);
        struct msghdr msg = {.msg_name = &ss, .msg_namelen = len, .msg_iov = &iov, .msg_iovlen = 1};
        CHECK(sendmsg(um, &msg, 0) == 1);
    }
    /* A connected datagram socket's send carries no address: not reported. */
    CHECK(connect_to(um, AF_INET, "127.0.0.1", port_of(u2)) == 0);
    CHECK(send(um, "w", 1, 0) == 1);
    printf("us %d\num %d\npu1 %d\npu2 %d\n", us, um, port_of(u1), port_of(u2));

    /* UDP connect over IPv6. */
    int v6 = bound(AF_INET6, SOCK_DGRAM, "::1", 0);
    int uc6 = socket(AF_INET6, SOCK_DGRAM, 0);
    CHECK(v6 >= 0 && uc6 >= 0);
    CHECK(connect_to(uc6, AF_INET6, "::1", port_of(v6)) == 0);
    printf("uc6 %d\npv6 %d\n", uc6, port_of(v6));

    /* A packet socket (Falco's "Packet socket created in container"), if permitted. */
    int pk = socket(AF_PACKET, SOCK_RAW, htons(3 /* ETH_P_ALL */));
    printf("pk %d\n", pk);
    if (pk >= 0)
        close(pk);

    /* dup of a socket here; dup2 of it onto stdin and stdout in a child (a reverse shell). */
    int d = dup(c4);
    CHECK(d >= 0);
    printf("dup %d\n", d);
    pid_t child = fork();
    if (child == 0) {
        int n = open("/dev/null", O_RDONLY);
        dup2(n, 0); /* not a socket: not reported */
        if (dup2(c4, 0) != 0 || dup2(c4, 1) != 1)
            _exit(3);
        _exit(0);
    }
    CHECK(child > 0);
    int st = 0;
    CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    printf("child %d\n", child);
    return 0;
}
"#;

fn dwnet() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        compile_static(
            "driftwatch-bpf-net-ops",
            "dwnet",
            &common::with_uring_connect(DWNET_C),
        )
    })
}

fn load() -> (ExecSensor, EventStream) {
    let host = u32::try_from(ns_ino("mnt")).expect("mntns inode fits u32");
    load_with(false, host)
}

/// Runs `argv` (optionally from a shell that first moves itself into `cg`); its pid and the
/// `name value` lines it printed.
fn run_helper(cg: Option<&TestCgroup>, argv: &[&OsStr]) -> (u32, HashMap<String, i64>) {
    let script = match cg {
        Some(cg) => format!("echo $$ > '{}' && exec \"$@\"", cg.procs().display()),
        None => "exec \"$@\"".to_string(),
    };
    let child = Command::new("/bin/sh")
        .args(["-c", &script, "sh"])
        .args(argv)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn helper");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait helper");
    assert!(out.status.success(), "helper failed: {out:?}");
    let vals = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect();
    (pid, vals)
}

fn exited(raw: &[Vec<u8>], pid: u32) -> bool {
    decoded(raw)
        .iter()
        .any(|r| matches!(r, Record::Exit(e) if e.task.pid == pid))
}

fn nets_of(recs: &[Record<'_>]) -> Vec<NetRecord> {
    recs.iter()
        .filter_map(|r| match r {
            Record::Net(n) => Some(*n),
            _ => None,
        })
        .collect()
}

fn local(n: &NetRecord) -> SocketAddr {
    SocketAddr::new(ip_from_raw(n.family, &n.laddr).expect("inet"), n.lport)
}

fn remote(n: &NetRecord) -> SocketAddr {
    SocketAddr::new(ip_from_raw(n.family, &n.raddr).expect("inet"), n.rport)
}

fn addr(ip: &str, port: i64) -> SocketAddr {
    SocketAddr::new(
        ip.parse::<IpAddr>().expect("ip"),
        u16::try_from(port).expect("port"),
    )
}

/// The one record of `op` on `fd`.
fn one(nets: &[NetRecord], op: NetOp, fd: i64) -> NetRecord {
    let found: Vec<_> = nets
        .iter()
        .filter(|n| n.op == op.raw() && i64::from(n.fd) == fd)
        .collect();
    assert_eq!(found.len(), 1, "{op:?} on fd {fd}: {nets:#?}");
    *found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_network_calls_are_reported_with_kernel_addresses() {
    let (mut sensor, mut events) = load();
    let cg = TestCgroup::new();
    sensor
        .set_policy(cg.id(), POLICY_F_TRACKED)
        .expect("policy");
    let (pid, v) = run_helper(
        Some(&cg),
        &[OsStr::new("unshare"), OsStr::new("-m"), dwnet().as_os_str()],
    );
    let child = u32::try_from(v["child"]).expect("child pid");
    let raw = collect(&mut events, &HashSet::from([pid, child]), |g| {
        exited(g, pid) && exited(g, child)
    })
    .await;
    let recs = decoded(&raw);
    let all = nets_of(&recs);
    let nets: Vec<NetRecord> = all.iter().copied().filter(|n| n.task.tgid == pid).collect();
    assert!(
        nets.iter().all(|n| n.has(NET_F_IN_POLICY)),
        "container tasks only"
    );
    // The task, as every other record has it.
    let t = nets.first().expect("records").task;
    assert_eq!((t.pid, t.tgid, t.uid, t.euid), (pid, pid, 0, 0));
    assert_eq!(t.comm_bytes(), b"dwnet");
    assert_eq!(u64::from(t.pidns_ino), ns_ino("pid"));
    assert_ne!(
        u64::from(t.mntns_ino),
        ns_ino("mnt"),
        "a new mount namespace"
    );
    assert_eq!(t.cgroup_id, cg.id());
    assert!(t.ppid > 1);
    // The process's start time, the same in every record of it (the network sensor reads it
    // by direct loads, the exec program by CO-RE reads) and not the forked child's.
    assert!(t.start_ns > 0 && t.start_ns < driftwatch_bpf::boot_time_ns());
    assert!(
        recs.iter()
            .filter_map(|r| r.task())
            .filter(|task| task.tgid == pid)
            .all(|task| task.start_ns == t.start_ns),
        "one start time per process"
    );
    let child_start = all
        .iter()
        .find(|n| n.task.tgid == child)
        .expect("child records")
        .task
        .start_ns;
    assert!(child_start > t.start_ns, "the child started later");

    // socket: one record per socket, with its arguments.
    let sockets: Vec<_> = nets
        .iter()
        .filter(|n| n.op == NetOp::Socket.raw())
        .collect();
    let c4s = one(&nets, NetOp::Socket, v["c4"]);
    assert_eq!((c4s.family, c4s.arg, c4s.protocol), (AF_INET, 1, 0));
    let nbs = one(&nets, NetOp::Socket, v["nb"]);
    assert_eq!(nbs.arg & 0xf, 1, "SOCK_STREAM");
    assert_ne!(
        nbs.arg & 0o4000,
        0,
        "SOCK_NONBLOCK kept in the type argument"
    );
    let pk = sockets
        .iter()
        .find(|n| n.family == 17)
        .expect("AF_PACKET socket reported");
    assert_eq!(pk.ret, v["pk"], "{pk:#?}");
    assert_eq!(pk.arg, 3, "SOCK_RAW");

    // TCP v4: bind and listen carry the real port; connect and accept both ends.
    let p4 = v["p4"];
    let bind4 = one(&nets, NetOp::Bind, v["l4"]);
    assert_eq!(bind4.ret, 0);
    assert_eq!(local(&bind4), addr("127.0.0.1", p4), "the kernel's port");
    assert!(bind4.has(NET_F_HAVE_SOCK) && !bind4.has(NET_F_REMOTE_SOCK));
    assert!(
        bind4.has(driftwatch_abi::NET_F_PORT_CHOSEN),
        "bind asked for port 0"
    );
    let listen4 = one(&nets, NetOp::Listen, v["l4"]);
    assert_eq!(
        (listen4.arg, listen4.sock_type, listen4.protocol),
        (7, 1, 6)
    );
    assert_eq!(local(&listen4), addr("127.0.0.1", p4));
    let conn4 = one(&nets, NetOp::Connect, v["c4"]);
    assert_eq!((conn4.ret, conn4.family, conn4.protocol), (0, AF_INET, 6));
    assert!(conn4.has(NET_F_REMOTE_SOCK), "{conn4:#?}");
    assert_eq!(remote(&conn4), addr("127.0.0.1", p4));
    assert_eq!(local(&conn4), addr("127.0.0.1", v["cp4"]));
    let acc4 = one(&nets, NetOp::Accept, v["a4"]);
    assert_eq!(i64::from(acc4.fd2), v["l4"]);
    assert_eq!(local(&acc4), addr("127.0.0.1", p4));
    assert_eq!(remote(&acc4), addr("127.0.0.1", v["cp4"]));

    // TCP v6.
    let conn6 = one(&nets, NetOp::Connect, v["c6"]);
    assert_eq!((conn6.ret, conn6.family), (0, AF_INET6));
    assert_eq!(remote(&conn6), addr("::1", v["p6"]));
    assert_eq!(local(&conn6), addr("::1", v["cp6"]));
    let acc6 = one(&nets, NetOp::Accept4, v["a6"]);
    assert_eq!(acc6.arg, 0o2000000, "SOCK_CLOEXEC");
    assert_eq!(remote(&acc6), addr("::1", v["cp6"]));
    assert_eq!(local(&acc6), addr("::1", v["p6"]));

    // Listeners on 0.0.0.0 and ::, with the port the kernel chose.
    let lw4 = one(&nets, NetOp::Listen, v["w4"]);
    assert_eq!(local(&lw4), addr("0.0.0.0", v["pw4"]));
    assert_ne!(v["pw4"], 0);
    let lw6 = one(&nets, NetOp::Listen, v["w6"]);
    assert_eq!(local(&lw6), addr("::", v["pw6"]));
    assert_eq!(
        local(&one(&nets, NetOp::Bind, v["w6"])),
        addr("::", v["pw6"])
    );

    // The refused connect: its errno, and the address it asked for.
    let refused = one(&nets, NetOp::Connect, v["cr"]);
    assert_eq!(refused.ret, -111, "ECONNREFUSED");
    assert!(refused.has(NET_F_REMOTE_SOCK) || refused.has(NET_F_REMOTE_ARG));
    assert_eq!(remote(&refused), addr("127.0.0.1", v["pcr"]));

    // The non-blocking connect: EINPROGRESS (or 0), the peer known already.
    let nb = one(&nets, NetOp::Connect, v["nb"]);
    assert!(nb.ret == -115 || nb.ret == 0, "{nb:#?}");
    assert_eq!(remote(&nb), addr("127.0.0.1", v["pw4"]));

    // The io_uring connect: seen by cgroup/connect4 only, without a result; the syscall connects
    // are not reported twice.
    let no_syscall: Vec<_> = nets.iter().filter(|n| n.has(NET_F_NO_SYSCALL)).collect();
    assert!(
        sensor.uring_connects_seen(),
        "cgroup/connect4|6 attached at the cgroup v2 root"
    );
    println!("io_uring connect: {}", v["urres"]);
    if v["urres"] != -1000 {
        assert_eq!(no_syscall.len(), 1, "{no_syscall:#?}");
        let ur = no_syscall[0];
        assert_eq!((ur.op, ur.fd, ur.ret), (NetOp::Connect.raw(), -1, 0));
        assert_eq!((ur.family, ur.sock_type, ur.protocol), (AF_INET, 1, 6));
        assert_eq!(remote(ur), addr("127.0.0.1", v["pw4"]));
        assert!(
            v["urres"] == 0 || v["urres"] == -115,
            "io_uring connect: {}",
            v["urres"]
        );
    } else {
        assert!(no_syscall.is_empty(), "{no_syscall:#?}");
    }
    assert!(
        !nets
            .iter()
            .any(|n| n.op == NetOp::Connect.raw() && i64::from(n.fd) == v["ur"]),
        "the io_uring connect made no connect syscall"
    );

    // Unconnected UDP: one record per (socket, peer), the destination as given.
    let sent: Vec<_> = nets
        .iter()
        .filter(|n| n.op == NetOp::Sendto.raw())
        .collect();
    assert_eq!(sent.len(), 2, "first datagram per peer only: {sent:#?}");
    let mut peers: Vec<SocketAddr> = sent.iter().map(|n| remote(n)).collect();
    peers.sort();
    let mut want = vec![addr("127.0.0.1", v["pu1"]), addr("127.0.0.1", v["pu2"])];
    want.sort();
    assert_eq!(peers, want);
    for s in &sent {
        assert_eq!(i64::from(s.fd), v["us"]);
        assert_eq!((s.ret, s.sock_type, s.protocol), (1, 2, 17));
        assert!(s.has(NET_F_REMOTE_ARG));
    }
    let msg = one(&nets, NetOp::Sendmsg, v["um"]);
    assert_eq!(remote(&msg), addr("127.0.0.1", v["pu1"]));
    assert_eq!(
        nets.iter()
            .filter(|n| n.op == NetOp::Sendto.raw() && i64::from(n.fd) == v["um"])
            .count(),
        0,
        "send() on a connected socket carries no address"
    );

    // UDP connect over IPv6.
    let uc6 = one(&nets, NetOp::Connect, v["uc6"]);
    assert_eq!((uc6.ret, uc6.sock_type, uc6.protocol), (0, 2, 17));
    assert_eq!(remote(&uc6), addr("::1", v["pv6"]));

    // dup here, dup2 onto stdin/stdout in the child: the socket's ends; /dev/null not reported.
    let d = one(&nets, NetOp::Dup, v["dup"]);
    assert_eq!(i64::from(d.fd2), v["c4"]);
    assert_eq!(remote(&d), addr("127.0.0.1", p4));
    let dup2s: Vec<_> = all
        .iter()
        .filter(|n| n.task.tgid == child && n.op == NetOp::Dup2.raw())
        .collect();
    assert_eq!(dup2s.len(), 2, "{dup2s:#?}");
    let mut fds: Vec<i32> = dup2s.iter().map(|n| n.fd).collect();
    fds.sort();
    assert_eq!(fds, [0, 1]);
    for n in &dup2s {
        assert_eq!((n.task.pid, n.task.ppid), (child, pid));
        assert_eq!(i64::from(n.fd2), v["c4"]);
        assert_eq!(remote(n), addr("127.0.0.1", p4));
        assert_eq!(local(n), addr("127.0.0.1", v["cp4"]));
    }
    let stats = sensor.stats().expect("stats");
    assert_eq!((stats.lost_net, stats.net_args_full), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_activity_produces_no_record() {
    let (mut sensor, mut events) = load();
    let cg = TestCgroup::new();
    sensor
        .set_policy(cg.id(), POLICY_F_TRACKED)
        .expect("policy");
    // The same calls in this (the "host") mount namespace, even from a policed cgroup …
    let (host_pid, hv) = run_helper(Some(&cg), &[dwnet().as_os_str()]);
    // … and in a new mount namespace outside any policed cgroup.
    let (unknown_pid, uv) = run_helper(
        None,
        &[OsStr::new("unshare"), OsStr::new("-m"), dwnet().as_os_str()],
    );
    let children = [hv["child"], uv["child"]].map(|c| u32::try_from(c).expect("pid"));
    let pids = HashSet::from([host_pid, unknown_pid, children[0], children[1]]);
    let raw = collect(&mut events, &pids, |g| pids.iter().all(|p| exited(g, *p))).await;
    let recs = decoded(&raw);
    let nets = nets_of(&recs);
    assert!(nets.is_empty(), "{nets:#?}");
    assert!(
        recs.iter().any(|r| matches!(r, Record::Exec(_))),
        "the processes were seen"
    );
    let stats = sensor.stats().expect("stats");
    assert_eq!((stats.lost_net, stats.net_args_full), (0, 0));
}

/// `dwconn N`: N loopback TCP socket+connect+accept+close pairs, then N UDP datagrams to 16
/// rotating loopback peers from one socket; prints the CPU time (user+system, ns) of each part.
const DWCONN_C: &str = r#"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static long long cpu_ns(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000000LL +
           (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1000LL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l, 64) != 0 ||
        getsockname(l, (struct sockaddr *)&sa, &len) != 0)
        return 1;
    long long t0 = cpu_ns();
    for (int i = 0; i < n; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) != 0)
            return 2;
        int a = accept(l, NULL, NULL);
        if (a < 0)
            return 3;
        close(a);
        close(c);
    }
    long long t1 = cpu_ns();
    struct sockaddr_in peers[16];
    int rx[16];
    for (int p = 0; p < 16; p++) {
        struct sockaddr_in b = {.sin_family = AF_INET};
        socklen_t bl = sizeof(b);
        inet_pton(AF_INET, "127.0.0.1", &b.sin_addr);
        rx[p] = socket(AF_INET, SOCK_DGRAM, 0);
        if (rx[p] < 0 || bind(rx[p], (struct sockaddr *)&b, sizeof(b)) != 0 ||
            getsockname(rx[p], (struct sockaddr *)&b, &bl) != 0)
            return 4;
        peers[p] = b;
    }
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    char buf[4];
    long long t2 = cpu_ns();
    for (int i = 0; i < n; i++) {
        if (sendto(u, "x", 1, 0, (struct sockaddr *)&peers[i % 16], sizeof(peers[0])) != 1)
            return 5;
        if (recv(rx[i % 16], buf, sizeof(buf), 0) != 1)
            return 6;
    }
    long long t3 = cpu_ns();
    printf("%lld %lld\n", t1 - t0, t3 - t2);
    return 0;
}
"#;

/// The kernel-side cost of the network programs (no agent, no userspace reader work): CPU time
/// of N loopback connect+accept+close pairs and N datagrams to rotating peers, in a container
/// task, sensor loaded or not, interleaved rounds. Not run by default:
/// `cargo test -p driftwatch-bpf --release --test net_ops -- --ignored --nocapture`
/// (`DW_COST_CONNS`, default 5000; `DW_COST_ROUNDS`, default 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn bpf_cost_of_loopback_connects_in_a_container_task() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (n, rounds) = (env("DW_COST_CONNS", 5000), env("DW_COST_ROUNDS", 5));
    let bin = compile_static("driftwatch-bpf-net-ops", "dwconn", DWCONN_C);
    let cg = TestCgroup::new();
    // In the policed cgroup and a new mount namespace (a container task), or on the host.
    let measure_as = |container: bool| -> (f64, f64) {
        let script = if container {
            format!("echo $$ > '{}' && exec \"$@\"", cg.procs().display())
        } else {
            "exec \"$@\"".to_string()
        };
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", &script, "sh"]);
        if container {
            cmd.args(["unshare", "-m"]);
        }
        let out = cmd
            .arg(&bin)
            .arg(n.to_string())
            .output()
            .expect("run dwconn");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text
            .split_whitespace()
            .map(|v| v.parse::<f64>().expect("ns"));
        (it.next().expect("tcp"), it.next().expect("udp"))
    };
    let measure = || measure_as(true);
    let (mut base, mut with) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        base.push(measure());
        let (mut sensor, events) = load();
        sensor
            .set_policy(cg.id(), POLICY_F_TRACKED)
            .expect("policy");
        let drain = common::drain(events, 60);
        // Run-time statistics of the programs while this round runs (BPF_ENABLE_STATS: on only
        // while the fd is open), then the mean cost of a call of each program that ran.
        let run_stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).ok();
        with.push(measure());
        let print = |what: &str, before: &[(String, u64, u64)], after: &[(String, u64, u64)]| {
            for ((name, r0, t0), (_, r1, t1)) in before.iter().zip(after) {
                if r1 > r0 && name.starts_with("dw_net") {
                    let (runs, ns) = (r1 - r0, t1 - t0);
                    println!(
                        "  {what}: {name}: {runs} runs, {:.0} ns per run",
                        ns as f64 / runs as f64
                    );
                }
            }
        };
        let zero: Vec<(String, u64, u64)> = sensor
            .program_run_stats()
            .into_iter()
            .map(|(n, _, _)| (n, 0, 0))
            .collect();
        let after_container = sensor.program_run_stats();
        print("container", &zero, &after_container);
        // The same calls from the host: what the filters cost a task outside any container.
        let _ = measure_as(false);
        print("host", &after_container, &sensor.program_run_stats());
        drop(run_stats);
        drain.abort();
        let stats = sensor.stats().expect("stats");
        assert_eq!(stats.lost_net, 0);
        drop(sensor);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut bt, mut bu): (Vec<f64>, Vec<f64>) = base.into_iter().unzip();
    let (mut wt, mut wu): (Vec<f64>, Vec<f64>) = with.into_iter().unzip();
    let (bt, bu, wt, wu) = (
        median(&mut bt),
        median(&mut bu),
        median(&mut wt),
        median(&mut wu),
    );
    let nf = n as f64;
    println!(
        "N={n}, {rounds} rounds, median CPU: TCP connect+accept+close pair: base {:.0} ns, with \
         the sensor {:.0} ns, +{:.0} ns ({:.3}x); UDP datagram to one of 16 peers: base {:.0} ns, \
         with {:.0} ns, +{:.0} ns ({:.3}x)",
        bt / nf,
        wt / nf,
        (wt - bt) / nf,
        wt / bt,
        bu / nf,
        wu / nf,
        (wu - bu) / nf,
        wu / bu
    );
}

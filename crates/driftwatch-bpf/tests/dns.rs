//! The DNS program (`cgroup_skb/ingress`) against the running kernel (needs root).
//!
//! A static helper, moved by its shell into a test-made cgroup v2 directory, enters a network
//! namespace of its own (only loopback, brought up by the helper, so port 53 is free and nothing
//! leaves the machine) and sends UDP datagrams from a socket bound to port 53 to a socket of its
//! own, over 127.0.0.1 and ::1, a bounded number of times. In a cgroup TRACKED in `dw_policy`
//! each datagram is one DNS record with its payload; in an untracked cgroup, nothing.

mod common;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::{compile_static, load_with, ns_ino, TestCgroup, WAIT};
use driftwatch_abi::{decode, Record, AF_INET, AF_INET6, DNS_F_TRUNCATED, POLICY_F_TRACKED};
use driftwatch_bpf::{EventStream, ExecSensor};

/// `dwdns answers`: three datagrams from port 53 (40 bytes over IPv4, 41 over IPv6, 600 over
/// IPv4) and one from port 5353 (not DNS), each received; prints `port4 P` and `port6 P`, the
/// receiving ports. `dwdns bench N PORT`: N datagrams of 64 bytes from port PORT (53 or 5353)
/// over IPv4, each received.
const DWDNS_C: &str = r#"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "failed at line %d: %s\n", __LINE__, strerror(errno)); return 10; } } while (0)

static socklen_t sa_of(int family, int port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sizeof(*s);
    }
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    s->sin6_addr = in6addr_loopback;
    return sizeof(*s);
}

static int udp(int family, int port) {
    struct sockaddr_storage ss;
    int s = socket(family, SOCK_DGRAM, 0);
    if (s < 0)
        return -1;
    struct timeval tv = {2, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    socklen_t len = sa_of(family, port, &ss);
    if (bind(s, (struct sockaddr *)&ss, len) != 0)
        return -1;
    return s;
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

/* from -> to (a bound socket of the same family), len bytes of a pattern starting at seed; 0 when
 * received whole */
static int one(int from, int to, int family, size_t len, int seed) {
    static unsigned char buf[2048], got[2048];
    struct sockaddr_storage ss;
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(seed + i);
    socklen_t sl = sa_of(family, port_of(to), &ss);
    if (sendto(from, buf, len, 0, (struct sockaddr *)&ss, sl) != (ssize_t)len)
        return -1;
    ssize_t n = recv(to, got, sizeof(got), 0);
    return n == (ssize_t)len && memcmp(buf, got, len) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    CHECK(unshare(CLONE_NEWNET) == 0);
    int c = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, "lo");
    CHECK(ioctl(c, SIOCGIFFLAGS, &ifr) == 0);
    ifr.ifr_flags |= IFF_UP;
    CHECK(ioctl(c, SIOCSIFFLAGS, &ifr) == 0);
    close(c);
    int srv4 = udp(AF_INET, 53), other4 = udp(AF_INET, 5353), cli4 = udp(AF_INET, 0);
    CHECK(srv4 >= 0 && other4 >= 0 && cli4 >= 0);
    if (strcmp(argv[1], "bench") == 0 && argc > 3) {
        long n = atol(argv[2]);
        int from = atoi(argv[3]) == 53 ? srv4 : other4;
        for (long i = 0; i < n && i < 10000000; i++)
            CHECK(one(from, cli4, AF_INET, 64, (int)i) == 0);
        return 0;
    }
    int srv6 = -1, cli6 = -1;
    /* IPv6 loopback needs a moment after lo comes up (bounded) */
    for (int i = 0; i < 50 && (srv6 < 0 || cli6 < 0); i++) {
        if (srv6 < 0)
            srv6 = udp(AF_INET6, 53);
        if (cli6 < 0)
            cli6 = udp(AF_INET6, 0);
        if (srv6 < 0 || cli6 < 0)
            usleep(20000);
    }
    CHECK(srv6 >= 0 && cli6 >= 0);
    CHECK(one(srv4, cli4, AF_INET, 40, 1) == 0);
    CHECK(one(srv6, cli6, AF_INET6, 41, 2) == 0);
    CHECK(one(srv4, cli4, AF_INET, 600, 3) == 0);
    CHECK(one(other4, cli4, AF_INET, 40, 4) == 0);
    printf("port4 %d\nport6 %d\n", port_of(cli4), port_of(cli6));
    return 0;
}
"#;

fn dwdns() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| compile_static("driftwatch-bpf-dns", "dwdns", DWDNS_C))
}

fn load() -> (ExecSensor, EventStream) {
    let host = u32::try_from(ns_ino("mnt")).expect("mntns inode fits u32");
    load_with(false, host)
}

/// Runs the helper from a shell that first moves itself into `cg`; its stdout.
fn run_in(cg: &TestCgroup, args: &[&str]) -> String {
    let script = format!("echo $$ > '{}' && exec \"$@\"", cg.procs().display());
    let out = Command::new("/bin/sh")
        .args(["-c", &script, "sh"])
        .arg(dwdns())
        .args(args.iter().map(OsStr::new))
        .stderr(Stdio::inherit())
        .output()
        .expect("run dwdns");
    assert!(out.status.success(), "dwdns failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A DNS record as the test keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dns {
    cgroup_id: u64,
    family: u16,
    sport: u16,
    dport: u16,
    truncated: bool,
    udp_len: u32,
    payload: Vec<u8>,
}

/// DNS records of `cgroups` until `want` of them came (or the wait ran out, a failure).
async fn dns_records(events: &mut EventStream, cgroups: &HashSet<u64>, want: usize) -> Vec<Dns> {
    let mut got = Vec::new();
    let res = tokio::time::timeout(WAIT, async {
        while got.len() < want {
            events
                .for_each_record(64, |bytes| {
                    if let Ok(Record::Dns(d)) = decode(bytes) {
                        if cgroups.contains(&d.cgroup_id) {
                            got.push(Dns {
                                cgroup_id: d.cgroup_id,
                                family: d.family,
                                sport: d.sport,
                                dport: d.dport,
                                truncated: d.has(DNS_F_TRUNCATED),
                                udp_len: d.udp_len,
                                payload: d.payload.to_vec(),
                            });
                        }
                    }
                })
                .await
                .expect("ring buffer read");
        }
    })
    .await;
    assert!(res.is_ok(), "timed out; got {got:#?}");
    got
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_to_tracked_cgroups_are_copied_and_untracked_ones_are_not() {
    let (mut sensor, mut events) = load();
    assert!(
        sensor.dns_answers_seen(),
        "cgroup_skb/ingress attached at the cgroup v2 root"
    );
    let untracked = TestCgroup::new();
    let tracked = TestCgroup::new();
    sensor
        .set_policy(tracked.id(), POLICY_F_TRACKED)
        .expect("policy");
    // The untracked run first: anything it produced would come before the tracked records.
    run_in(&untracked, &["answers"]);
    let out = run_in(&tracked, &["answers"]);
    let port = |name: &str| -> u16 {
        out.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {out:?}"))
    };
    let cgroups = HashSet::from([untracked.id(), tracked.id()]);
    let got = dns_records(&mut events, &cgroups, 3).await;
    let want = [
        (AF_INET, port("port4"), 40, pattern(40, 1), false),
        (AF_INET6, port("port6"), 41, pattern(41, 2), false),
        (AF_INET, port("port4"), 600, pattern(512, 3), true),
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (g, (family, dport, udp_len, payload, truncated)) in got.iter().zip(want) {
        assert_eq!(
            g.cgroup_id,
            tracked.id(),
            "only the tracked cgroup: {got:#?}"
        );
        assert_eq!((g.family, g.sport, g.dport), (family, 53, dport));
        assert_eq!((g.udp_len, g.truncated), (udp_len, truncated));
        assert_eq!(g.payload, payload);
    }
    // Nothing more: the datagram from port 5353 and everything of the untracked cgroup.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut extra = 0;
    events.drain_records(1 << 20, |bytes| {
        if let Ok(Record::Dns(d)) = decode(bytes) {
            extra += usize::from(cgroups.contains(&d.cgroup_id));
        }
    });
    assert_eq!(extra, 0, "no other DNS record");
    assert_eq!(sensor.stats().expect("stats").lost_dns, 0);
}

/// What the DNS program costs per packet, from the kernel's own run-time statistics
/// (`BPF_ENABLE_STATS`): a datagram that is not from port 53 (what every other packet costs), a
/// DNS answer to an untracked cgroup (the host) and one to a tracked cgroup (copied into a
/// record). Not run by default:
/// `cargo test -p driftwatch-bpf --release --test dns -- --ignored --nocapture`
/// (`DW_COST_PACKETS`, default 20000; `DW_COST_ROUNDS`, default 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn bpf_cost_of_dns_answers_for_host_and_container_sockets() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (n, rounds) = (env("DW_COST_PACKETS", 20000), env("DW_COST_ROUNDS", 3));
    let (mut sensor, events) = load();
    let host = TestCgroup::new();
    let container = TestCgroup::new();
    sensor
        .set_policy(container.id(), POLICY_F_TRACKED)
        .expect("policy");
    let drain = common::drain(events, 600);
    let run_stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).ok();
    let dns_prog = |s: &ExecSensor| -> (u64, u64) {
        s.program_run_stats()
            .into_iter()
            .find(|(name, ..)| name == "dw_dns_ingress")
            .map(|(_, runs, ns)| (runs, ns))
            .expect("dw_dns_ingress")
    };
    let cases = [
        ("host, not DNS (port 5353)", &host, "5353"),
        ("host DNS answer (untracked cgroup)", &host, "53"),
        ("container DNS answer (tracked: a record)", &container, "53"),
        ("container, not DNS (port 5353)", &container, "5353"),
    ];
    for round in 0..rounds {
        for (what, cg, port) in cases {
            let (r0, t0) = dns_prog(&sensor);
            run_in(cg, &["bench", &n.to_string(), port]);
            let (r1, t1) = dns_prog(&sensor);
            let (runs, ns) = (r1 - r0, t1 - t0);
            // runs also counts whatever else the machine received meanwhile
            println!(
                "round {round}: {what}: {runs} runs for {n} datagrams, {:.0} ns per run",
                ns as f64 / runs.max(1) as f64
            );
        }
    }
    drop(run_stats);
    drain.abort();
    assert_eq!(sensor.stats().expect("stats").lost_dns, 0);
}

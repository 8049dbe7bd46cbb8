//! Network drift against real containers: a workload learns its network baseline, and after
//! learning the four network-drift rules fire with the right fields. The container's only peer
//! is a network namespace this test makes (a veth pair into the container's namespace,
//! addresses 10.213.N.0/24 and fd00:dd:N::/64): traffic goes there and to loopback, nowhere
//! else; every server in the peer exits by itself.

use crate::harness::*;
use driftwatch_testkit::{Container, ImageBuilder, PeerNet, RunOpts};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// `netc OP PROTO ADDR PORT [SECS]`: `connect` (a UDP connect also sends one datagram), `send`
/// (one unconnected datagram), `listen` (TCP) or `bind` (UDP), held SECS seconds (at most 10).
/// Prints `ok` or `err ERRNO`.
const NETC_C: &str = r#"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static int addr(const char *a, int port, struct sockaddr_storage *ss, socklen_t *len) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s4 = (void *)ss;
    struct sockaddr_in6 *s6 = (void *)ss;
    if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET; s4->sin_port = htons(port); *len = sizeof *s4; return AF_INET;
    }
    if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6; s6->sin6_port = htons(port); *len = sizeof *s6; return AF_INET6;
    }
    return -1;
}
int main(int argc, char **argv) {
    if (argc < 5) { fputs("usage: netc connect|send|listen|bind tcp|udp ADDR PORT [SECS]\n", stderr); return 2; }
    const char *op = argv[1];
    int udp = !strcmp(argv[2], "udp");
    struct sockaddr_storage ss;
    socklen_t len;
    int fam = addr(argv[3], atoi(argv[4]), &ss, &len);
    if (fam < 0) { fputs("bad address\n", stderr); return 2; }
    int s = socket(fam, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (s < 0) { printf("err %d\n", errno); return 1; }
    if (!strcmp(op, "connect")) {
        if (connect(s, (void *)&ss, len)) { printf("err %d\n", errno); return 1; }
        if (udp) send(s, "x", 1, 0);
        printf("ok\n");
        return 0;
    }
    if (!strcmp(op, "send")) {
        if (sendto(s, "x", 1, 0, (void *)&ss, len) < 0) { printf("err %d\n", errno); return 1; }
        printf("ok\n");
        return 0;
    }
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fam == AF_INET6) setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(s, (void *)&ss, len)) { printf("err %d\n", errno); return 1; }
    if (!udp && listen(s, 4)) { printf("err %d\n", errno); return 1; }
    printf("ok\n");
    fflush(stdout);
    int secs = argc > 5 ? atoi(argv[5]) : 0;
    if (secs > 10) secs = 10;
    if (secs > 0) sleep(secs);
    return 0;
}
"#;

/// TCP servers that accept and close, on each `addr port` given, for at most TTL seconds.
const PEER_SERVERS_PY: &str = r#"
import socket, sys, threading, time
ttl = float(sys.argv[1])
def serve(fam, addr, port):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(16); s.settimeout(0.2)
    end = time.time() + ttl
    while time.time() < end:
        try:
            c, _ = s.accept(); c.close()
        except socket.timeout:
            pass
args = sys.argv[2:]
for i in range(0, len(args), 2):
    fam = socket.AF_INET6 if ':' in args[i] else socket.AF_INET
    threading.Thread(target=serve, args=(fam, args[i], int(args[i + 1])), daemon=True).start()
print("ready", flush=True)
time.sleep(ttl)
"#;

fn f<'a>(a: &'a Value, k: &str) -> &'a Value {
    &a["output_fields"][k]
}

struct Net {
    c: Container,
    peer: PeerNet,
    servers: std::process::Child,
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = self.servers.kill();
        let _ = self.servers.wait();
    }
}

impl Net {
    fn netc(&self, args: &str) -> String {
        let (_, out) = sh(&self.c, &format!("/usr/bin/netc {args}"));
        out.trim().to_string()
    }
}

/// A container with `netc` (its image declares 8080/tcp) and a peer namespace running TCP
/// servers on ports 5432 and 7000 of both its addresses (and 80 of 169.254.169.254).
fn setup(env: &Env, prefix: &str) -> Net {
    let img = ImageBuilder::new("driftwatch-test/netdrift:1")
        .busybox()
        .static_helper("/usr/bin/netc", NETC_C)
        .expose("8080/tcp")
        .import(&env.containerd, ns())
        .expect("import netdrift image");
    let id = driftwatch_testkit::unique_id(prefix);
    let c = Container::run(
        &env.containerd,
        ns(),
        &img.reference,
        &id,
        RunOpts::default(),
    )
    .expect("run container");
    let peer = PeerNet::attach(c.init_pid()).expect("peer network namespace");
    peer.add_peer_address("169.254.169.254".parse().expect("ip"))
        .expect("metadata address");
    let (p4, p6) = (peer.peer_v4.to_string(), peer.peer_v6.to_string());
    let mut servers = peer
        .spawn(&[
            "python3",
            "-c",
            PEER_SERVERS_PY,
            "120",
            &p4,
            "5432",
            &p4,
            "7000",
            &p6,
            "5432",
            &p6,
            "7000",
            "169.254.169.254",
            "80",
        ])
        .expect("peer servers");
    let mut line = String::new();
    let stdout = servers.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("peer servers ready");
    assert_eq!(line.trim(), "ready");
    Net { c, peer, servers }
}

fn network_alerts(agent: &Agent, id: &str) -> Vec<Value> {
    agent
        .alerts()
        .into_iter()
        .filter(|a| {
            f(a, "container.id") == id
                && a["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "network_drift"))
        })
        .collect()
}

fn baseline_file(dir: &Path) -> (std::path::PathBuf, String) {
    let entries: Vec<_> = std::fs::read_dir(dir)
        .expect("baseline dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .contains("driftwatch-test/netdrift")
        })
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "one baseline file for the workload: {entries:?}"
    );
    let text = std::fs::read_to_string(&entries[0]).expect("read baseline");
    (entries[0].clone(), text)
}

/// Learning, the baseline file and a restart, then each network-drift rule with its fields.
#[test]
fn network_baseline_is_learned_kept_across_a_restart_and_then_judges() {
    let env = env();
    let n = setup(&env, "netdrift");
    let id = n.c.id().to_string();
    let (p4, p6) = (n.peer.peer_v4.to_string(), n.peer.peer_v6.to_string());
    let state = tempfile::tempdir().expect("tempdir");
    let dir = state.path().join("baselines");
    let dir_s = dir.to_str().expect("utf-8").to_string();
    let learn = ["--baseline-dir", &dir_s, "--learn-for", "12s"];
    let agent = Agent::start(&learn);
    let learning_from = Instant::now();

    // Learning: listeners (also on ::), TCP peers over IPv4 and IPv6, a UDP peer. A dropped
    // copy of netc connects to port 7000: drifted code is never learned.
    assert_eq!(n.netc("listen tcp 0.0.0.0 9090"), "ok");
    assert_eq!(n.netc("listen tcp :: 9191"), "ok");
    assert_eq!(n.netc("bind udp 0.0.0.0 5353"), "ok");
    assert_eq!(n.netc(&format!("connect tcp {p4} 5432")), "ok");
    assert_eq!(n.netc(&format!("connect tcp {p6} 5432")), "ok");
    assert_eq!(n.netc(&format!("send udp {p4} 9999")), "ok");
    assert_eq!(
        n.netc("connect tcp 127.0.0.1 1"),
        "err 111",
        "loopback, refused"
    );
    let (code, out) = sh(
        &n.c,
        &format!("cp /usr/bin/netc /tmp/netc2 && /tmp/netc2 connect tcp {p4} 7000"),
    );
    assert_eq!((code, out.trim()), (Some(0), "ok"));
    let drifted = agent.wait_alert(30, "drifted code while learning", |a| {
        a["rule"] == "Network Activity by Drifted Code in Container"
            && f(a, "container.id") == id.as_str()
    });
    assert_eq!(f(&drifted, "proc.drifted"), true);
    assert_eq!(f(&drifted, "proc.exe_origin"), "added");
    assert_eq!(f(&drifted, "net.baseline"), "learning");
    assert_eq!(f(&drifted, "fd.rport"), 7000);
    let during: Vec<Value> = network_alerts(&agent, &id)
        .into_iter()
        .filter(|a| a["rule"] != "Network Activity by Drifted Code in Container")
        .collect();
    assert!(
        during.is_empty(),
        "nothing alerts while learning: {during:#?}"
    );

    // What was learned is in the workload's file, with the image's port and digest.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (file, text) = loop {
        let (file, text) = baseline_file(&dir);
        if text.contains("port: 9999") || Instant::now() > deadline {
            break (file, text);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for needle in [
        "workload: \"image:driftwatch-test/netdrift/",
        "{proto: tcp, port: 8080, source: image",
        "{proto: tcp, port: 9090, source: learned",
        "{proto: tcp, port: 9191, source: learned",
        "{proto: udp, port: 5353, source: learned",
        &format!("{{proto: tcp, port: 5432, address: \"{p4}\", source: learned"),
        &format!("{{proto: tcp, port: 5432, address: \"{p6}\", source: learned"),
        &format!("{{proto: udp, port: 9999, address: \"{p4}\", source: learned"),
        "\"sha256:",
    ] {
        assert!(
            text.contains(needle),
            "{needle} in {}:\n{text}",
            file.display()
        );
    }
    assert!(
        !text.contains("port: 7000"),
        "drifted code is not learned:\n{text}"
    );
    assert!(
        !text.contains("127.0.0.1"),
        "loopback is not learned:\n{text}"
    );
    let until = text
        .lines()
        .find(|l| l.trim_start().starts_with("until:"))
        .expect("until")
        .to_string();
    let listed = std::process::Command::new(agent_bin())
        .args(["baseline", "list", "--dir", &dir_s])
        .output()
        .expect("baseline list");
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.contains("learning until"), "{listed}");

    // Host network activity never crosses the ring buffer: 50 loopback connects and datagrams
    // of this (host) process leave the agent's network event count where it was.
    let series = r#"driftwatch_events_total{kind="net"}"#;
    let before = agent.wait_metric(series, 10, |_| true);
    std::thread::sleep(Duration::from_millis(500));
    let settled = agent.wait_metric(series, 10, |_| true);
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("host listener");
    let addr = l.local_addr().expect("addr");
    let u = std::net::UdpSocket::bind("127.0.0.1:0").expect("host udp");
    for i in 0..50u16 {
        drop(std::net::TcpStream::connect(addr).expect("host connect"));
        let _ = u.send_to(b"x", ("127.0.0.1", 40000 + i));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let after = agent.wait_metric(series, 10, |_| true);
    assert!(before <= settled);
    assert_eq!(after, settled, "host traffic produced network records");

    // A restart in the middle of learning neither restarts nor extends it.
    assert!(agent.stop().success());
    let agent = Agent::start(&learn);
    let wait = Duration::from_secs(13).saturating_sub(learning_from.elapsed());
    std::thread::sleep(wait);
    let (_, text) = baseline_file(&dir);
    assert!(
        text.contains(&until),
        "learning.until kept: {until}\n{text}"
    );

    // After learning: what was learned (and the image's port, and loopback) is quiet.
    assert_eq!(n.netc("listen tcp 0.0.0.0 9090"), "ok");
    assert_eq!(n.netc("listen tcp 0.0.0.0 8080"), "ok");
    assert_eq!(n.netc(&format!("connect tcp {p6} 5432")), "ok");
    assert_eq!(n.netc(&format!("send udp {p4} 9999")), "ok");
    assert_eq!(n.netc("listen tcp 127.0.0.1 6000"), "ok");
    assert_eq!(n.netc("connect tcp 127.0.0.1 1"), "err 111");
    // ... what was not is drift: listeners on 0.0.0.0 and ::, TCP peers on IPv4 and IPv6, a
    // refused attempt, a new UDP peer, the metadata service.
    assert_eq!(n.netc("listen tcp 0.0.0.0 4444"), "ok");
    assert_eq!(n.netc("listen tcp :: 4445"), "ok");
    assert_eq!(n.netc(&format!("connect tcp {p4} 7000")), "ok");
    assert_eq!(n.netc(&format!("connect tcp {p6} 7000")), "ok");
    assert_eq!(n.netc(&format!("connect tcp {p4} 7001")), "err 111");
    assert_eq!(n.netc(&format!("send udp {p4} 9998")), "ok");
    assert_eq!(n.netc("connect tcp 169.254.169.254 80"), "ok");
    // ... and the dropped binary connecting to a learned peer.
    let (code, out) = sh(&n.c, &format!("/tmp/netc2 connect tcp {p4} 5432"));
    assert_eq!((code, out.trim()), (Some(0), "ok"));

    let rule_for = |rule: &str, pred: &dyn Fn(&Value) -> bool| {
        agent.wait_alert(30, rule, |a| {
            a["rule"] == rule && f(a, "container.id") == id.as_str() && pred(a)
        })
    };
    let l4 = rule_for("Unexpected Listening Port in Container", &|a| {
        f(a, "fd.name") == "0.0.0.0:4444"
    });
    assert_eq!(f(&l4, "net.baseline"), "unexpected");
    assert_eq!(f(&l4, "evt.type"), "listen");
    assert!(f(&l4, "net.workload")
        .as_str()
        .unwrap_or("")
        .starts_with("image:driftwatch-test/netdrift/"));
    assert_eq!(l4["priority"], "Warning");
    rule_for("Unexpected Listening Port in Container", &|a| {
        f(a, "fd.name") == ":::4445"
    });
    let o4 = rule_for("Unexpected Outbound Connection from Container", &|a| {
        f(a, "fd.rport") == 7000 && f(a, "fd.rip") == p4.as_str()
    });
    assert_eq!(f(&o4, "evt.res"), "SUCCESS");
    assert_eq!(f(&o4, "proc.drifted"), false);
    assert_eq!(f(&o4, "proc.exe_origin"), "image");
    rule_for("Unexpected Outbound Connection from Container", &|a| {
        f(a, "fd.rport") == 7000 && f(a, "fd.rip") == p6.as_str() && f(a, "fd.type") == "ipv6"
    });
    let refused = rule_for("Unexpected Outbound Connection from Container", &|a| {
        f(a, "fd.rport") == 7001
    });
    assert_eq!(f(&refused, "evt.res"), "ECONNREFUSED");
    let udp = rule_for("Unexpected Outbound Connection from Container", &|a| {
        f(a, "fd.rport") == 9998
    });
    assert_eq!(f(&udp, "fd.l4proto"), "udp");
    assert_eq!(f(&udp, "evt.type"), "sendto");
    let meta = rule_for("Contact Cloud Metadata Service from Container", &|_| true);
    assert_eq!(f(&meta, "fd.rip"), "169.254.169.254");
    let dropped = rule_for("Network Activity by Drifted Code in Container", &|a| {
        f(a, "fd.rport") == 5432 && f(a, "net.baseline") == "expected"
    });
    assert_eq!(f(&dropped, "proc.exepath"), "/tmp/netc2");
    assert_eq!(f(&dropped, "proc.exe_origin"), "added");
    // A last event as a sentinel: every event before it was processed; nothing else alerted.
    let _ = sh(&n.c, "/tmp/netc2 connect tcp 127.0.0.1 2");
    rule_for("Network Activity by Drifted Code in Container", &|a| {
        f(a, "fd.rport") == 2
    });
    let quiet_ports = [9090, 8080, 6000, 1];
    let noisy: Vec<Value> = network_alerts(&agent, &id)
        .into_iter()
        .filter(|a| {
            let port = |k| f(a, k).as_u64().unwrap_or(0);
            let listen_port = f(a, "fd.name")
                .as_str()
                .and_then(|n| n.rsplit(':').next())
                .and_then(|p| p.parse::<u64>().ok())
                .unwrap_or(0);
            (a["rule"] == "Unexpected Listening Port in Container"
                && quiet_ports.contains(&listen_port))
                || (a["rule"] == "Unexpected Outbound Connection from Container"
                    && port("fd.rport") == 5432)
                || (port("fd.rport") == 9999)
        })
        .collect();
    assert!(
        noisy.is_empty(),
        "learned and loopback activity is quiet: {noisy:#?}"
    );
    // Counted as network drift in the container's summary.
    let (status, body) = http_get(agent.port, "/containers").expect("containers");
    assert_eq!(status, 200);
    let all: Value = serde_json::from_str(&body).expect("json");
    let mine = all
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id.as_str()).cloned())
        .expect("summary");
    assert!(
        mine["counts"]["network"].as_u64().unwrap_or(0) >= 7,
        "{mine}"
    );
    assert!(agent.stop().success());
}

/// Under `--enforce --enforce-network`, once the workload finished learning: learned peers and
/// loopback still work, any other connect and datagram fails with EPERM before a packet leaves
/// and is alerted as denied; an agent that dies leaves nothing refused; a restarted agent
/// enforces again.
#[test]
fn network_enforcement_refuses_what_was_not_learned_and_fails_open() {
    let env = env();
    let n = setup(&env, "netenf");
    let id = n.c.id().to_string();
    let p4 = n.peer.peer_v4.to_string();
    let p6 = n.peer.peer_v6.to_string();
    let state = tempfile::tempdir().expect("tempdir");
    let dir = state.path().join("baselines");
    let dir_s = dir.to_str().expect("utf-8").to_string();
    let args = [
        "--baseline-dir",
        &dir_s,
        "--learn-for",
        "6s",
        "--enforce",
        "--enforce-network",
    ];
    let agent = Agent::start(&args);
    let started = Instant::now();
    assert_eq!(n.netc(&format!("connect tcp {p4} 5432")), "ok");
    assert_eq!(n.netc(&format!("connect tcp {p6} 5432")), "ok");
    assert_eq!(n.netc(&format!("send udp {p4} 9999")), "ok");
    assert_eq!(
        n.netc(&format!("connect tcp {p4} 7000")),
        "ok",
        "nothing is refused while learning"
    );
    // ... port 7000 was learned too; 7001 has no server, 7002 neither: they stay unknown.
    std::thread::sleep(Duration::from_secs(8).saturating_sub(started.elapsed()));
    let refused_until = Instant::now() + Duration::from_secs(10);
    // Enforcement starts within a second of the end of learning.
    loop {
        let r = n.netc(&format!("connect tcp {p4} 7001"));
        if r == "err 1" {
            break;
        }
        assert!(Instant::now() < refused_until, "not refused: {r}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(n.netc(&format!("connect tcp {p4} 5432")), "ok", "learned");
    assert_eq!(
        n.netc(&format!("connect tcp {p6} 5432")),
        "ok",
        "learned, IPv6"
    );
    assert_eq!(n.netc(&format!("connect tcp {p4} 7000")), "ok", "learned");
    assert_eq!(
        n.netc(&format!("send udp {p4} 9999")),
        "ok",
        "learned datagram peer"
    );
    assert_eq!(
        n.netc("connect tcp 127.0.0.1 1"),
        "err 111",
        "loopback is never refused"
    );
    assert_eq!(
        n.netc(&format!("connect tcp {p6} 7001")),
        "err 1",
        "IPv6 refused"
    );
    assert_eq!(
        n.netc(&format!("send udp {p4} 9998")),
        "err 1",
        "datagram refused"
    );
    let denied = agent.wait_alert(30, "denied connect", |a| {
        a["rule"] == "Unexpected Outbound Connection from Container"
            && f(a, "container.id") == id.as_str()
            && f(a, "fd.rport") == 7001
            && f(a, "response.action") == "denied"
    });
    assert_eq!(f(&denied, "evt.res"), "EPERM");
    agent.wait_alert(30, "denied datagram", |a| {
        a["rule"] == "Unexpected Outbound Connection from Container"
            && f(a, "fd.rport") == 9998
            && f(a, "response.action") == "denied"
    });
    // The agent dies: nothing stays refused.
    agent.signal(rustix::process::Signal::KILL);
    drop(agent);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        n.netc(&format!("connect tcp {p4} 7001")),
        "err 111",
        "fail-open: refused by the peer, not by us"
    );
    // A new agent enforces the learned baseline again.
    let agent = Agent::start(&args);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let r = n.netc(&format!("connect tcp {p4} 7001"));
        if r == "err 1" {
            break;
        }
        assert!(Instant::now() < until, "not refused after the restart: {r}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(n.netc(&format!("connect tcp {p4} 5432")), "ok");
    assert!(agent.stop().success());
    assert_eq!(
        n.netc(&format!("connect tcp {p4} 7001")),
        "err 111",
        "released at a clean stop"
    );
}

/// A peer the container reached by a DNS name is learned as the name, and under enforcement is
/// allowed at the addresses the container itself resolved for it: after an agent restart (which
/// forgets the names) the address is refused until the container resolves the name again.
#[test]
fn dns_named_peers_are_learned_by_name_and_enforced_at_the_resolved_addresses() {
    let env = env();
    let img = ImageBuilder::new("driftwatch-test/netdns:1")
        .busybox()
        .static_helper("/usr/bin/netc", NETC_C)
        .static_helper("/usr/bin/dnsconn", crate::dns::DNSCONN_C)
        .import(&env.containerd, ns())
        .expect("import netdns image");
    let id = driftwatch_testkit::unique_id("netdns");
    let c = Container::run(
        &env.containerd,
        ns(),
        &img.reference,
        &id,
        RunOpts::default(),
    )
    .expect("run container");
    let peer = PeerNet::attach(c.init_pid()).expect("peer network");
    let (p4, p6) = (peer.peer_v4.to_string(), peer.peer_v6.to_string());
    let mut servers = peer
        .spawn(&[
            "/usr/bin/python3",
            "-c",
            crate::dns::PEER_PY,
            &p4,
            &p6,
            "svc.drift.test",
            &p4,
            "8080",
        ])
        .expect("peer servers");
    crate::dns::wait_ready(&mut servers);
    let netc = |args: &str| {
        sh(&c, &format!("/usr/bin/netc {args}"))
            .1
            .trim()
            .to_string()
    };
    let dnsconn = || {
        c.exec(&["/usr/bin/dnsconn", &p4, "svc.drift.test", "8080", &p6])
            .expect("exec dnsconn")
    };
    let state = tempfile::tempdir().expect("tempdir");
    let dir = state.path().join("baselines");
    let dir_s = dir.to_str().expect("utf-8").to_string();
    let args = [
        "--baseline-dir",
        &dir_s,
        "--learn-for",
        "6s",
        "--enforce",
        "--enforce-network",
    ];
    let agent = Agent::start(&args);
    let out = dnsconn();
    assert!(out.success(), "dnsconn while learning: {out:?}");
    let enforced = |what: &str| {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let r = netc(&format!("connect tcp {p4} 8081"));
            if r == "err 1" {
                break;
            }
            assert!(Instant::now() < until, "{what}: not enforced ({r})");
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    enforced("after learning");
    let file = std::fs::read_dir(&dir)
        .expect("baseline dir")
        .filter_map(Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .find(|t| t.contains("driftwatch-test/netdns"))
        .expect("the workload's baseline");
    assert!(
        file.contains("{proto: tcp, port: 8080, name: \"svc.drift.test\", source: learned"),
        "learned by name:\n{file}"
    );
    assert!(
        file.contains(&format!("{{proto: tcp, port: 8080, address: \"{p6}\"")),
        "the unnamed IPv6 address by address:\n{file}"
    );
    assert!(
        !file.contains(&format!("port: 8080, address: \"{p4}\"")),
        "the resolved address is the name's:\n{file}"
    );
    assert!(
        file.contains(&format!("{{proto: udp, port: 53, address: \"{p4}\"")),
        "the DNS server:\n{file}"
    );
    assert_eq!(
        netc(&format!("connect tcp {p4} 8080")),
        "ok",
        "the name's address"
    );
    assert_eq!(
        netc(&format!("connect tcp {p6} 8080")),
        "ok",
        "the learned address"
    );

    // A new agent knows no names yet: the address is refused until the container resolves
    // the name again.
    agent.signal(rustix::process::Signal::KILL);
    drop(agent);
    let agent = Agent::start(&args);
    enforced("after the restart");
    assert_eq!(
        netc(&format!("connect tcp {p4} 8080")),
        "err 1",
        "no name known yet"
    );
    let out = dnsconn();
    assert!(out.success(), "dnsconn after resolving again: {out:?}");
    assert_eq!(
        netc(&format!("connect tcp {p4} 8080")),
        "ok",
        "resolved again"
    );
    let denied = agent.wait_alert(30, "the refused name address", |a| {
        a["rule"] == "Unexpected Outbound Connection from Container"
            && f(a, "container.id") == id.as_str()
            && f(a, "fd.rport") == 8080
            && f(a, "response.action") == "denied"
    });
    assert_eq!(f(&denied, "fd.rip"), p4.as_str());
    assert!(agent.stop().success());
    let _ = servers.kill();
    let _ = servers.wait();
}

//! `fd.sip.name` from the container's own DNS answer: a peer network namespace (made by the
//! test, joined to the container's by a veth pair) runs a tiny DNS responder and a TCP server;
//! the container resolves `svc.drift.test` there and connects to the answer. The only traffic
//! is between the container and that peer, with bounded retries.

use crate::harness::*;
use driftwatch_testkit::{Container, ImageBuilder, PeerNet, RunOpts, MARKER_HELPER_C};
use serde_json::Value;
use std::process::Child;

/// `dnsconn SERVER NAME PORT ADDR6`: an A query for NAME to SERVER:53 (at most 20 tries of
/// 500 ms), a TCP connect to the address of the answer's last A record on PORT, then one to
/// [ADDR6]:PORT (never resolved); each connect retried at most 25 times while refused. Prints
/// `resolved IP`, `connected4`, `connected6`.
pub(crate) const DNSCONN_C: &str = r#"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int tcp(int family, const void *addr, int port) {
    for (int i = 0; i < 25; i++) {
        int s = socket(family, SOCK_STREAM, 0);
        int r;
        if (family == AF_INET) {
            struct sockaddr_in a = {0};
            a.sin_family = AF_INET;
            a.sin_port = htons(port);
            memcpy(&a.sin_addr, addr, 4);
            r = connect(s, (struct sockaddr *)&a, sizeof a);
        } else {
            struct sockaddr_in6 a = {0};
            a.sin6_family = AF_INET6;
            a.sin6_port = htons(port);
            memcpy(&a.sin6_addr, addr, 16);
            r = connect(s, (struct sockaddr *)&a, sizeof a);
        }
        close(s);
        if (r == 0)
            return 0;
        usleep(200000);
    }
    return -1;
}

int main(int argc, char **argv) {
    if (argc < 5)
        return 2;
    unsigned char q[512], a[512];
    int n = 12;
    memset(q, 0, sizeof q);
    q[0] = 0x42; q[1] = 0x17; q[2] = 0x01; /* RD */ q[5] = 1; /* QDCOUNT */
    for (char *l = strtok(argv[2], "."); l; l = strtok(0, ".")) {
        size_t len = strlen(l);
        if (len > 63 || n + len + 6 > sizeof q) return 3;
        q[n++] = (unsigned char)len;
        memcpy(q + n, l, len);
        n += len;
    }
    q[n++] = 0;
    q[n++] = 0; q[n++] = 1; /* A */
    q[n++] = 0; q[n++] = 1; /* IN */
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in srv = {0};
    srv.sin_family = AF_INET;
    srv.sin_port = htons(53);
    if (inet_pton(AF_INET, argv[1], &srv.sin_addr) != 1) return 4;
    struct timeval tv = {0, 500000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(s, (struct sockaddr *)&srv, sizeof srv)) return 5;
    ssize_t got = -1;
    for (int i = 0; i < 20 && got < 0; i++) {
        if (send(s, q, n, 0) != n) { usleep(200000); continue; }
        got = recv(s, a, sizeof a, 0);
        if (got >= 0 && (got < n + 16 || a[0] != q[0] || a[1] != q[1] || !(a[2] & 0x80))) got = -1;
    }
    if (got < 0) return 6;
    /* the responder's one A record ends the message */
    unsigned char ip[4];
    memcpy(ip, a + got - 4, 4);
    printf("resolved %u.%u.%u.%u\n", ip[0], ip[1], ip[2], ip[3]);
    if (tcp(AF_INET, ip, atoi(argv[3]))) return 7;
    printf("connected4\n");
    unsigned char ip6[16];
    if (inet_pton(AF_INET6, argv[4], ip6) != 1) return 8;
    if (tcp(AF_INET6, ip6, atoi(argv[3]))) return 9;
    printf("connected6\n");
    return 0;
}
"#;

/// The peer's servers: a DNS responder on V4:53 answering an A query for NAME with ANSWER (and
/// anything else with no answer), TCP listeners on V4:PORT and [V6]:PORT that accept and close;
/// prints `ready` once all are bound; everything stops after 120 s.
pub(crate) const PEER_PY: &str = r#"
import socket, sys, threading, time
v4, v6, name, answer, port = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
deadline = time.time() + 120

def serve(s):
    s.settimeout(0.5)
    while time.time() < deadline:
        try:
            c, _ = s.accept()
            c.close()
        except OSError:
            pass

for fam, addr in ((socket.AF_INET, v4), (socket.AF_INET6, v6)):
    t = socket.socket(fam, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((addr, port))
    t.listen(16)
    threading.Thread(target=serve, args=(t,), daemon=True).start()

u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((v4, 53))
u.settimeout(0.5)
print("ready", flush=True)
while time.time() < deadline:
    try:
        q, peer = u.recvfrom(512)
    except OSError:
        continue
    if len(q) < 17:
        continue
    i, labels = 12, []
    while i < len(q) and q[i] != 0 and len(labels) < 64:
        labels.append(q[i + 1:i + 1 + q[i]].decode('ascii', 'replace'))
        i += q[i] + 1
    qend = i + 5
    if qend > len(q):
        continue
    qtype = q[i + 1:i + 3]
    hit = '.'.join(labels).lower() == name and qtype == b'\x00\x01'
    resp = q[:2] + b'\x81\x80\x00\x01' + (b'\x00\x01' if hit else b'\x00\x00') + b'\x00\x00\x00\x00'
    resp += q[12:qend]
    if hit:
        resp += b'\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04' + socket.inet_aton(answer)
    u.sendto(resp, peer)
"#;

/// Waits (at most 60 s: the machine may be busy) for the peer's servers to say `ready`.
pub(crate) fn wait_ready(child: &mut Child) {
    use std::io::BufRead;
    let out = child.stdout.take().expect("the peer's stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_default();
    if line.trim() != "ready" {
        let _ = child.kill();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        let _ = child.wait();
        panic!("the peer's servers did not start: {line:?} {err}");
    }
}

fn f<'a>(a: &'a Value, k: &str) -> &'a Value {
    &a["output_fields"][k]
}

/// Kills the peer's servers when the test ends (PeerNet's drop kills them too).
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sip_name_comes_from_the_containers_own_dns_answer() {
    let env = env();
    let img = ImageBuilder::new("driftwatch-test/dns:1")
        .busybox()
        .static_helper("/bin/marker", MARKER_HELPER_C)
        .static_helper("/usr/bin/dnsconn", DNSCONN_C)
        .import(&env.containerd, ns())
        .expect("import dns image");
    let id = driftwatch_testkit::unique_id("dns");
    let c = Container::run(
        &env.containerd,
        ns(),
        &img.reference,
        &id,
        RunOpts::default(),
    )
    .expect("run container");
    let peer = PeerNet::attach(c.init_pid()).expect("peer network");
    let (_dir, rules) = rules_file(&peer);
    let agent = Agent::start(&["--rules", rules.to_str().expect("utf-8")]);
    // the container is tracked (its cgroup in the kernel policy) once its drift is seen
    agent.sentinel(&c);
    let (p4, p6) = (peer.peer_v4.to_string(), peer.peer_v6.to_string());
    let mut servers = Reap(
        peer.spawn(&[
            "/usr/bin/python3",
            "-c",
            PEER_PY,
            &p4,
            &p6,
            "svc.drift.test",
            &p4,
            "8080",
        ])
        .expect("spawn the peer's servers"),
    );
    wait_ready(&mut servers.0);
    let out = c
        .exec(&["/usr/bin/dnsconn", &p4, "svc.drift.test", "8080", &p6])
        .expect("exec dnsconn");
    assert!(out.success(), "dnsconn: {out:?}");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            format!("resolved {p4}").as_str(),
            "connected4",
            "connected6"
        ]
    );
    let named = agent.wait_alert(30, "a connect to svc.drift.test", |a| {
        a["rule"] == "Connect to a resolved name" && f(a, "container.id") == c.id()
    });
    assert_eq!(f(&named, "fd.sip.name"), "svc.drift.test");
    assert_eq!(f(&named, "fd.rip.name"), "svc.drift.test");
    assert_eq!(f(&named, "fd.sip"), p4.as_str());
    assert_eq!(f(&named, "fd.sport"), 8080);
    assert_eq!(
        f(&named, "fd.cip.name"),
        &Value::Null,
        "the container's own address"
    );
    let unnamed = agent.wait_alert(30, "the IPv6 connect", |a| {
        a["rule"] == "Connect to the peer over IPv6" && f(a, "container.id") == c.id()
    });
    assert_eq!(f(&unnamed, "fd.sip"), p6.as_str());
    assert_eq!(
        f(&unnamed, "fd.sip.name"),
        &Value::Null,
        "never resolved: no name"
    );
    // the IPv6 connect never matched the name rule
    assert!(!agent
        .alerts()
        .iter()
        .any(|a| a["rule"] == "Connect to a resolved name"
            && f(a, "container.id") == c.id()
            && f(a, "fd.sip") == p6.as_str()));
    assert!(
        agent
            .metric("driftwatch_events_total{kind=\"dns\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        agent.metric("driftwatch_ringbuf_lost_events_total{kind=\"dns\"}"),
        Some(0.0)
    );
    assert!(agent.stop().success());
    drop(peer);
}

/// The test's rules: a connect to the resolved name, and any TCP connect to port 8080 over
/// IPv6, each printing the name fields.
fn rules_file(peer: &PeerNet) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dns_rules.yaml");
    let text = format!(
        r#"- rule: Connect to a resolved name
  desc: a connect to the address svc.drift.test resolved to in this container
  condition: evt.type = connect and fd.sip.name = "svc.drift.test"
  output: "connect to %fd.sip.name (%fd.sip:%fd.sport) rip.name=%fd.rip.name cip.name=%fd.cip.name"
  priority: NOTICE
- rule: Connect to the peer over IPv6
  desc: a connect to the peer's IPv6 address, which nothing resolved
  condition: evt.type = connect and fd.sip = "{}" and fd.sport = 8080
  output: "connect to %fd.sip name=%fd.sip.name"
  priority: NOTICE
"#,
        peer.peer_v6
    );
    std::fs::write(&file, text).expect("write rules");
    (dir, file)
}

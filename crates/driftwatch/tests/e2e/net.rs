//! Falco's stock network rules, loaded unchanged from the peers' rule files, fire on the
//! network sensor's events (loopback traffic inside the container only).

use crate::harness::*;
use driftwatch_testkit::{Container, ImageBuilder, RunOpts};
use serde_json::Value;
use std::path::PathBuf;

/// `netdup`: a packet socket, then a loopback TCP connection (from 127.0.0.1:2000 to
/// 127.0.0.1:4444, in the container's own network namespace: the client on the lower port, so
/// only the connect seen before tells the dup which end is the client) whose client end is
/// dup2'ed onto stdin and stdout (a reverse shell's moves, to itself); prints "netdup ok" on the saved
/// stdout.
const NETDUP_C: &str = r#"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
    int p = socket(AF_PACKET, SOCK_RAW, 0);
    if (p >= 0) close(p);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(4444);
    if (bind(l, (struct sockaddr *)&a, sizeof a)) return 3;
    if (listen(l, 1)) return 4;
    socklen_t len = sizeof a;
    if (getsockname(l, (struct sockaddr *)&a, &len)) return 5;
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in b = a;
    b.sin_port = htons(2000);
    if (bind(c, (struct sockaddr *)&b, sizeof b)) return 10;
    if (connect(c, (struct sockaddr *)&a, sizeof a)) return 6;
    int s = accept(l, 0, 0);
    if (s < 0) return 7;
    int out = dup(1);
    if (dup2(c, 0) < 0) return 8;
    if (dup2(c, 1) < 0) return 9;
    dup2(out, 1);
    write(1, "netdup ok\n", 10);
    return 0;
}
"#;

fn f<'a>(a: &'a Value, k: &str) -> &'a Value {
    &a["output_fields"][k]
}

/// The peers' Falco rules, or `None` (the test is skipped) when the folder is absent; under CI
/// the folder must be there.
fn falco_rules() -> Option<PathBuf> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/peers/falco-rules/falco_rules.yaml");
    if file.is_file() {
        return Some(file);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is absent (needed under CI)",
        file.display()
    );
    println!("skipped: {} is absent", file.display());
    None
}

#[test]
fn falco_packet_socket_and_stdout_redirect_rules_fire_unchanged() {
    let Some(rules) = falco_rules() else { return };
    let env = env();
    let img = ImageBuilder::new("driftwatch-test/net:1")
        .busybox()
        .static_helper("/usr/bin/netdup", NETDUP_C)
        .import(&env.containerd, ns())
        .expect("import net image");
    let agent = Agent::start(&["--rules", rules.to_str().unwrap(), "--skip-unknown"]);
    let id = driftwatch_testkit::unique_id("net-falco");
    let c = Container::run(
        &env.containerd,
        ns(),
        &img.reference,
        &id,
        RunOpts::default(),
    )
    .expect("run container");
    let (code, out) = sh(&c, "/usr/bin/netdup");
    assert_eq!((code, out.trim()), (Some(0), "netdup ok"));
    let packet = agent.wait_alert(30, "Packet socket created in container", |a| {
        a["rule"] == "Packet socket created in container" && f(a, "container.id") == c.id()
    });
    assert_eq!(packet["priority"], "Notice");
    assert_eq!(f(&packet, "evt.type"), "socket");
    assert_eq!(f(&packet, "proc.name"), "netdup");
    let redirect = agent.wait_alert(30, "Redirect STDOUT/STDIN", |a| {
        a["rule"] == "Redirect STDOUT/STDIN to Network Connection in Container"
            && f(a, "container.id") == c.id()
    });
    assert_eq!(f(&redirect, "evt.type"), "dup2");
    assert_eq!(f(&redirect, "fd.type"), "ipv4");
    assert_eq!(f(&redirect, "fd.l4proto"), "tcp");
    assert_eq!(f(&redirect, "fd.sip"), "127.0.0.1");
    let name = f(&redirect, "fd.name")
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (client, server) = name.split_once("->").unwrap_or_default();
    assert!(
        client.starts_with("127.0.0.1:") && server.starts_with("127.0.0.1:"),
        "{name}"
    );
    assert_eq!(
        server, "127.0.0.1:4444",
        "the listener is the server: {name}"
    );
    assert_eq!(f(&redirect, "fd.rport"), 4444, "the peer is the listener");
    assert_eq!(
        f(&redirect, "fd.lport").to_string(),
        client.trim_start_matches("127.0.0.1:")
    );
    // both stdin and stdout were redirected
    let redirects = agent
        .alerts()
        .into_iter()
        .filter(|a| {
            a["rule"] == "Redirect STDOUT/STDIN to Network Connection in Container"
                && f(a, "container.id") == c.id()
        })
        .count();
    assert!(redirects >= 2, "{redirects} redirect alerts");
    assert!(agent.stop().success());
}

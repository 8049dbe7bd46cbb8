//! Network isolation (`isolate.bpf.c`, `driftwatch_bpf::isolate`) against the running kernel
//! (needs root, bpffs at /sys/fs/bpf, the cgroup v2 hierarchy, `ip`, `nsenter`, `unshare`).
//!
//! The isolated task is a static helper (`dwiso`, one command per line on stdin, one answer
//! line) in a test-made cgroup v2 directory and a new network namespace whose only peer is a
//! second test-made namespace joined by a veth pair (`driftwatch_testkit::PeerNet`): traffic goes
//! there and to loopback, nowhere else. Every test pins under a directory of its own on bpffs,
//! removed at the end. The `Isolator` holds no fd after a call returns, so every check after an
//! `isolate()` is of what the pins alone keep in the kernel.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{compile_static, TestCgroup};
use driftwatch_bpf::isolate::{IsolateError, Isolator, LINKS_PER_ISOLATION};
use driftwatch_testkit::PeerNet;

const EPERM: i32 = 1;
const ETIMEDOUT: i32 = 110;
/// The helper's listener (in the isolated namespace) and the peer's echo server.
const HELPER_PORT: u16 = 9100;
const PEER_PORT: u16 = 7000;

/// `dwiso`: `hello`; `tcp IP PORT` (a connect, 1 s at most: `err 110` when nothing answers);
/// `udp IP PORT` (one datagram by sendto); `hold IP PORT` (a connect kept open); `ping` (one
/// byte on the held connection, then wait 1 s at most for the echo); `listen PORT` (a
/// dual-stack listener on `[::]:PORT` served by a child that echoes, killed with the helper);
/// `quit`. Answers `ok` or `err ERRNO`.
const DWISO_C: &str = r#"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

static socklen_t sa_of(const char *ip, int port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof(*ss));
    if (!strchr(ip, ':')) {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        return inet_pton(AF_INET, ip, &s->sin_addr) == 1 ? sizeof(*s) : 0;
    }
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    return inet_pton(AF_INET6, ip, &s->sin6_addr) == 1 ? sizeof(*s) : 0;
}

/* A TCP connect of at most 1 s: the socket, or -errno. */
static int tcp_connect(struct sockaddr_storage *ss, socklen_t len) {
    int s = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s < 0)
        return -errno;
    if (connect(s, (struct sockaddr *)ss, len) != 0) {
        int e = errno;
        if (e != EINPROGRESS) {
            close(s);
            return -e;
        }
        struct pollfd p = {.fd = s, .events = POLLOUT};
        if (poll(&p, 1, 1000) != 1) {
            close(s);
            return -ETIMEDOUT;
        }
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            close(s);
            return -err;
        }
    }
    fcntl(s, F_SETFL, 0);
    return s;
}

static void serve(int l) {
    struct pollfd p[17];
    int n = 1;
    p[0].fd = l;
    p[0].events = POLLIN;
    for (int round = 0; round < 100000; round++) {
        if (poll(p, n, 1000) < 0)
            continue;
        if ((p[0].revents & POLLIN) && n < 17) {
            int c = accept(l, 0, 0);
            if (c >= 0) {
                p[n].fd = c;
                p[n].events = POLLIN;
                n++;
            }
        }
        for (int i = 1; i < n; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char b[256];
            ssize_t r = read(p[i].fd, b, sizeof(b));
            if (r <= 0 || write(p[i].fd, b, r) != r) {
                close(p[i].fd);
                p[i] = p[--n];
                i--;
            }
        }
    }
    _exit(0);
}

static void reply(int err) {
    if (err)
        printf("err %d\n", err);
    else
        printf("ok\n");
    fflush(stdout);
}

int main(void) {
    char line[256], cmd[16], ip[64];
    int port, held = -1;
    while (fgets(line, sizeof(line), stdin)) {
        ip[0] = 0;
        port = 0;
        if (sscanf(line, "%15s %63s %d", cmd, ip, &port) < 1)
            continue;
        if (!strcmp(cmd, "quit"))
            return 0;
        if (!strcmp(cmd, "hello")) {
            reply(0);
        } else if (!strcmp(cmd, "listen")) {
            int l = socket(AF_INET6, SOCK_STREAM, 0), zero = 0, one = 1;
            struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(ip))};
            setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
            setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 16)) {
                reply(errno);
                continue;
            }
            pid_t pid = fork();
            if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                serve(l);
            }
            close(l);
            reply(pid < 0 ? errno : 0);
        } else if (!strcmp(cmd, "ping")) {
            if (held < 0 || write(held, "x", 1) != 1) {
                reply(held < 0 ? EBADF : errno);
                continue;
            }
            struct pollfd p = {.fd = held, .events = POLLIN};
            char b[256];
            if (poll(&p, 1, 1000) != 1)
                reply(ETIMEDOUT);
            else
                reply(read(held, b, sizeof(b)) > 0 ? 0 : EPIPE);
        } else {
            struct sockaddr_storage ss;
            socklen_t len = sa_of(ip, port, &ss);
            if (!len) {
                printf("bad %s", line);
                fflush(stdout);
                continue;
            }
            if (!strcmp(cmd, "udp")) {
                int s = socket(ss.ss_family, SOCK_DGRAM, 0);
                int r = s < 0 ? -1 : sendto(s, "u", 1, 0, (struct sockaddr *)&ss, len);
                reply(r == 1 ? 0 : errno);
                if (s >= 0)
                    close(s);
            } else {
                int s = tcp_connect(&ss, len);
                if (s >= 0 && !strcmp(cmd, "hold")) {
                    if (held >= 0)
                        close(held);
                    held = s;
                } else if (s >= 0) {
                    close(s);
                }
                reply(s < 0 ? -s : 0);
            }
        }
    }
    return 0;
}
"#;

fn dwiso() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| compile_static("driftwatch-bpf-isolate", "dwiso", DWISO_C))
}

/// A pin directory of this test's own on bpffs, removed on drop.
struct PinDir(PathBuf);

impl PinDir {
    fn new() -> PinDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        PinDir(PathBuf::from(format!(
            "/sys/fs/bpf/dwtest-isolate-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        )))
    }

    fn isolator(&self) -> Isolator {
        Isolator::new(&self.0)
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        // Unpinning every link detaches it; then the map and the directories.
        if let Ok(list) = self.isolator().list() {
            for iso in list {
                let _ = self.isolator().release(iso.cgroup_id);
            }
        }
        let _ = std::fs::remove_file(self.0.join("dw_isolated"));
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The helper in `cg` and a new network namespace (loopback up), with a peer namespace
/// (`PeerNet`) running an echo server on `[::]:PEER_PORT`; the helper listens on HELPER_PORT.
struct Setup {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    peer: PeerNet,
}

impl Setup {
    fn new(cg: &TestCgroup) -> Setup {
        let script = format!(
            "echo $$ > '{}' && exec unshare -n sh -c 'ip link set lo up && exec \"$0\"' \"$1\"",
            cg.procs().display()
        );
        let mut child = Command::new("/bin/sh")
            .args(["-c", &script])
            .arg("sh")
            .arg(dwiso())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn dwiso");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let pid = child.id();
        let mut s = Setup {
            child,
            stdin,
            stdout,
            // Replaced below once the namespace exists; `attach` needs it.
            peer: wait_peer(pid),
        };
        assert_eq!(s.call("hello"), Ok(()));
        assert_eq!(s.call(&format!("listen {HELPER_PORT}")), Ok(()));
        s.start_echo();
        s
    }

    /// A thread in the peer namespace serving TCP echo on `[::]:PEER_PORT` for 120 s at most.
    fn start_echo(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        let ns = format!("/run/netns/{}", self.peer.netns);
        std::thread::spawn(move || {
            enter_netns(&ns);
            let l = TcpListener::bind(("::", PEER_PORT)).expect("peer echo listener");
            l.set_nonblocking(true).expect("nonblocking");
            let _ = tx.send(());
            let end = Instant::now() + Duration::from_secs(120);
            while Instant::now() < end {
                match l.accept() {
                    Ok((mut c, _)) => {
                        std::thread::spawn(move || {
                            let _ = c.set_nonblocking(false);
                            let mut b = [0u8; 256];
                            for _ in 0..10_000 {
                                match c.read(&mut b) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => {
                                        if c.write_all(&b[..n]).is_err() {
                                            break;
                                        }
                                    }
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("peer echo server up");
    }

    /// Runs one command: `Ok` or `Err(errno)`.
    fn call(&mut self, cmd: &str) -> Result<(), i32> {
        writeln!(self.stdin, "{cmd}").expect("write command");
        self.stdin.flush().expect("flush command");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read answer");
        let line = line.trim();
        match line.split_once(' ') {
            _ if line == "ok" => Ok(()),
            Some(("err", e)) => Err(e.parse().expect("errno")),
            _ => panic!("{cmd}: unexpected answer {line:?}"),
        }
    }

    fn peer_v4(&self) -> String {
        self.peer.peer_v4.to_string()
    }

    fn peer_v6(&self) -> String {
        self.peer.peer_v6.to_string()
    }

    /// A TCP connect from the peer namespace to the helper's listener (1 s at most).
    fn from_peer(&self, v6: bool) -> std::io::Result<TcpStream> {
        let ip: IpAddr = if v6 {
            self.peer.container_v6.into()
        } else {
            self.peer.container_v4.into()
        };
        let ns = format!("/run/netns/{}", self.peer.netns);
        std::thread::spawn(move || {
            enter_netns(&ns);
            let s = TcpStream::connect_timeout(
                &SocketAddr::new(ip, HELPER_PORT),
                Duration::from_secs(1),
            )?;
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            Ok(s)
        })
        .join()
        .expect("peer connect thread")
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Moves this thread into a network namespace.
fn enter_netns(path: &str) {
    let ns = std::fs::File::open(path).expect("open netns");
    rustix::thread::move_into_link_name_space(
        ns.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .expect("setns");
}

/// Waits until `pid` is in a network namespace other than ours, then joins a peer to it.
fn wait_peer(pid: u32) -> PeerNet {
    let ours = std::fs::read_link("/proc/self/ns/net").expect("own netns");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
        // The helper's own exec (after `ip link set lo up`) leaves its comm as "dwiso".
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if theirs.is_some_and(|t| t != ours) && comm.trim() == "dwiso" {
            break;
        }
        assert!(Instant::now() < deadline, "helper not in its namespace");
        std::thread::sleep(Duration::from_millis(20));
    }
    PeerNet::attach(pid).expect("peer namespace")
}

/// An echo round trip on a connection (1 s read timeout).
fn echo(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 16];
    s.write_all(b"e").is_ok() && matches!(s.read(&mut b), Ok(n) if n > 0)
}

/// The programs attached to a cgroup directory, by `bpftool cgroup show`.
fn attached(cg_dir: &Path) -> Vec<String> {
    let out = Command::new("bpftool")
        .args(["cgroup", "show"])
        .arg(cg_dir)
        .output()
        .expect("run bpftool");
    assert!(out.status.success(), "bpftool cgroup show failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("dw_iso_"))
        .map(str::to_owned)
        .collect()
}

fn now_ns() -> u64 {
    driftwatch_bpf::boot_time_ns()
}

#[test]
fn an_isolated_cgroup_reaches_nothing_but_loopback_and_release_restores_it() {
    let pins = PinDir::new();
    let cg = TestCgroup::new();
    let mut s = Setup::new(&cg);
    let (p4, p6) = (s.peer_v4(), s.peer_v6());

    // Before: every direction works, and two connections are established.
    for cmd in [
        format!("tcp {p4} {PEER_PORT}"),
        format!("tcp {p6} {PEER_PORT}"),
        format!("udp {p4} 5353"),
        format!("udp {p6} 5353"),
        format!("hold {p4} {PEER_PORT}"),
        "ping".to_owned(),
    ] {
        assert_eq!(s.call(&cmd), Ok(()), "{cmd} before isolation");
    }
    let mut inbound = s.from_peer(false).expect("peer reaches the task (v4)");
    assert!(echo(&mut inbound), "inbound echo before isolation");
    s.from_peer(true).expect("peer reaches the task (v6)");

    let iso = pins
        .isolator()
        .isolate(cg.dir(), cg.id(), None)
        .expect("isolate");
    assert_eq!((iso.cgroup_id, iso.until_ns, iso.links), (cg.id(), None, 6));
    assert_eq!(attached(cg.dir()).len(), LINKS_PER_ISOLATION);

    // After: new connects and datagrams are refused, established connections are cut both
    // ways, the peer cannot connect; loopback works.
    for cmd in [
        format!("tcp {p4} {PEER_PORT}"),
        format!("tcp {p6} {PEER_PORT}"),
        format!("udp {p4} 5353"),
        format!("udp {p6} 5353"),
    ] {
        assert_eq!(s.call(&cmd), Err(EPERM), "{cmd} isolated");
    }
    assert_eq!(s.call("ping"), Err(ETIMEDOUT), "outbound established cut");
    assert!(!echo(&mut inbound), "inbound established cut");
    assert!(s.from_peer(false).is_err(), "peer cannot connect (v4)");
    assert!(s.from_peer(true).is_err(), "peer cannot connect (v6)");
    for cmd in [
        format!("tcp 127.0.0.1 {HELPER_PORT}"),
        format!("tcp ::1 {HELPER_PORT}"),
        format!("tcp ::ffff:127.0.0.1 {HELPER_PORT}"),
        "udp 127.0.0.1 5353".to_owned(),
    ] {
        assert_eq!(s.call(&cmd), Ok(()), "{cmd} (loopback) isolated");
    }

    // A second call attaches nothing more, keeps the start, takes the new end.
    let until = now_ns() + 3_600_000_000_000;
    let again = pins
        .isolator()
        .isolate(cg.dir(), cg.id(), Some(until))
        .expect("isolate again");
    assert_eq!(
        (again.since_ns, again.until_ns),
        (iso.since_ns, Some(until))
    );
    assert_eq!(attached(cg.dir()).len(), LINKS_PER_ISOLATION);
    let list = pins.isolator().list().expect("list");
    assert_eq!(list, vec![again]);
    assert_eq!(s.call(&format!("tcp {p4} {PEER_PORT}")), Err(EPERM));

    assert!(pins.isolator().release(cg.id()).expect("release"));
    assert!(attached(cg.dir()).is_empty());
    assert!(pins.isolator().list().expect("list").is_empty());
    assert_eq!(s.call(&format!("tcp {p4} {PEER_PORT}")), Ok(()));
    assert_eq!(s.call(&format!("tcp {p6} {PEER_PORT}")), Ok(()));
    assert_eq!(s.call(&format!("udp {p4} 5353")), Ok(()));
    s.from_peer(false).expect("peer reaches the task again");
    // The held connections resume once TCP retransmits (its backoff: a few seconds).
    let resumed = (0..15).any(|_| s.call("ping").is_ok());
    assert!(resumed, "the outbound connection passes data again");
    assert!(!pins.isolator().release(cg.id()).expect("release again"));
}

#[test]
fn the_ttl_holds_in_the_kernel_without_anyone_running() {
    let pins = PinDir::new();
    let cg = TestCgroup::new();
    let mut s = Setup::new(&cg);
    let p4 = s.peer_v4();
    let until = now_ns() + 1_500_000_000;
    pins.isolator()
        .isolate(cg.dir(), cg.id(), Some(until))
        .expect("isolate with a TTL");
    assert_eq!(s.call(&format!("tcp {p4} {PEER_PORT}")), Err(EPERM));
    assert!(s.from_peer(false).is_err(), "peer cannot connect");
    while now_ns() < until + 100_000_000 {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing ran in userspace: the kernel read the end from the map.
    assert_eq!(s.call(&format!("tcp {p4} {PEER_PORT}")), Ok(()));
    s.from_peer(false)
        .expect("peer reaches the task after the TTL");
    let list = pins.isolator().list().expect("list");
    assert_eq!(list.len(), 1);
    assert!(!list[0].in_force(now_ns()), "{list:?}");
    assert_eq!(list[0].links, LINKS_PER_ISOLATION);
    assert!(pins.isolator().release(cg.id()).expect("release"));
}

#[test]
fn a_task_in_a_cgroup_below_the_isolated_one_is_isolated() {
    let pins = PinDir::new();
    let cg = TestCgroup::new();
    let child = cg.child("inner");
    let mut s = Setup::new(&child);
    let p4 = s.peer_v4();
    pins.isolator()
        .isolate(cg.dir(), cg.id(), None)
        .expect("isolate the parent");
    assert_eq!(s.call(&format!("tcp {p4} {PEER_PORT}")), Err(EPERM));
    assert_eq!(s.call(&format!("tcp 127.0.0.1 {HELPER_PORT}")), Ok(()));
    assert!(s.from_peer(false).is_err(), "peer cannot connect");
    // The parent's TTL governs its children too.
    pins.isolator()
        .isolate(cg.dir(), cg.id(), Some(now_ns()))
        .expect("end now");
    assert_eq!(s.call(&format!("tcp {p4} {PEER_PORT}")), Ok(()));
    assert!(pins.isolator().release(cg.id()).expect("release"));
    drop(s);
    drop(child);
}

#[test]
fn errors_name_the_problem() {
    let pins = PinDir::new();
    let cg = TestCgroup::new();
    let (dir, id) = (cg.dir().to_path_buf(), cg.id());
    let e = pins
        .isolator()
        .isolate(&dir, id + 1, None)
        .expect_err("wrong id");
    assert!(matches!(e, IsolateError::CgroupMismatch { .. }), "{e:?}");
    let e = pins
        .isolator()
        .isolate(Path::new("/tmp"), id, None)
        .expect_err("not a cgroup");
    assert!(matches!(e, IsolateError::NotCgroup2 { .. }), "{e:?}");
    drop(cg);
    let e = pins
        .isolator()
        .isolate(&dir, id, None)
        .expect_err("cgroup gone");
    assert!(matches!(e, IsolateError::CgroupGone { .. }), "{e:?}");
    assert!(e.to_string().contains("gone"), "{e}");
    assert!(pins.isolator().list().expect("list").is_empty());
}

//! Network isolation (`isolate.bpf.c`, `driftwatch_bpf::isolate`) against the running kernel
//! (needs root, bpffs at /sys/fs/bpf, the cgroup v2 hierarchy, `ip`, `nsenter`, `unshare`).
//!
//! The isolated task is the testkit's network probe (`net_probe_c`, one command per line on
//! stdin, one answer line) in a test-made cgroup v2 directory and a new network namespace whose only peer is a
//! second test-made namespace joined by a veth pair (`driftwatch_testkit::PeerNet`): traffic goes
//! there and to loopback, nowhere else. Every test pins under a directory of its own on bpffs,
//! removed at the end. The `Isolator` holds no fd after a call returns, so every check after an
//! `isolate()` is of what the pins alone keep in the kernel.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{compile_static, TestCgroup};
use driftwatch_bpf::isolate::{IsolateError, Isolator, LINKS_PER_ISOLATION};
use driftwatch_testkit::{echo_round_trip, net_probe_c, NetProbe, PeerNet};

const EPERM: i32 = 1;
const ETIMEDOUT: i32 = 110;
/// The helper's listener (in the isolated namespace) and the peer's echo server.
const HELPER_PORT: u16 = 9100;
const PEER_PORT: u16 = 7000;

fn dwiso() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| compile_static("driftwatch-bpf-isolate", "dwiso", &net_probe_c()))
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
        let _ = self.isolator().remove_unused();
    }
}

/// The probe in `cg` and a new network namespace (loopback up), listening on HELPER_PORT, with
/// a peer namespace (`PeerNet`) serving TCP echo on `[::]:PEER_PORT`.
struct Setup {
    probe: NetProbe,
    peer: PeerNet,
}

impl Setup {
    fn new(cg: &TestCgroup) -> Setup {
        let script = format!(
            "echo $$ > '{}' && exec unshare -n sh -c 'ip link set lo up && exec \"$0\"' \"$1\"",
            cg.procs().display()
        );
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", &script]).arg("sh").arg(dwiso());
        let mut probe = NetProbe::spawn(cmd).expect("spawn the probe");
        let peer = wait_peer(probe.pid());
        assert_eq!(probe.call("hello"), Ok(()));
        assert_eq!(probe.call(&format!("listen {HELPER_PORT}")), Ok(()));
        peer.echo_server(PEER_PORT, 120).expect("peer echo server");
        Setup { probe, peer }
    }

    fn call(&mut self, cmd: &str) -> Result<(), i32> {
        self.probe.call(cmd)
    }

    fn peer_v4(&self) -> String {
        self.peer.peer_v4.to_string()
    }

    fn peer_v6(&self) -> String {
        self.peer.peer_v6.to_string()
    }

    /// A TCP connect from the peer namespace to the probe's listener (1 s at most).
    fn peer_connects(&self, v6: bool) -> std::io::Result<TcpStream> {
        self.peer.connect_container(v6, HELPER_PORT)
    }
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

/// Whether the isolation programs leave `cg_dir` within a second (the kernel detaches an
/// unpinned link from a work queue).
fn detached(cg_dir: &Path) -> bool {
    (0..50).any(|_| {
        let gone = attached(cg_dir).is_empty();
        if !gone {
            std::thread::sleep(Duration::from_millis(20));
        }
        gone
    })
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
    let mut inbound = s.peer_connects(false).expect("peer reaches the task (v4)");
    assert!(
        echo_round_trip(&mut inbound),
        "inbound echo before isolation"
    );
    s.peer_connects(true).expect("peer reaches the task (v6)");

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
    assert!(!echo_round_trip(&mut inbound), "inbound established cut");
    assert!(s.peer_connects(false).is_err(), "peer cannot connect (v4)");
    assert!(s.peer_connects(true).is_err(), "peer cannot connect (v6)");
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
    // Traffic passes at once (the entry ended), before the kernel has detached the links.
    assert_eq!(s.call(&format!("tcp {p4} {PEER_PORT}")), Ok(()));
    assert!(pins.isolator().list().expect("list").is_empty());
    assert!(detached(cg.dir()), "links detached after the release");
    assert_eq!(s.call(&format!("tcp {p6} {PEER_PORT}")), Ok(()));
    assert_eq!(s.call(&format!("udp {p4} 5353")), Ok(()));
    s.peer_connects(false).expect("peer reaches the task again");
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
    // Prepared ahead: the programs verified and pinned once, nothing isolated yet.
    pins.isolator().prepare().expect("prepare");
    let programs: Vec<_> = std::fs::read_dir(&pins.0)
        .expect("pin dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("programs-"))
        .collect();
    assert_eq!(programs.len(), 1, "one directory of pinned programs");
    let pinned = std::fs::read_dir(programs[0].path())
        .expect("programs")
        .count();
    assert_eq!(pinned, LINKS_PER_ISOLATION);
    assert!(pins.isolator().list().expect("list").is_empty());
    assert_eq!(
        s.call(&format!("tcp {p4} {PEER_PORT}")),
        Ok(()),
        "not isolated yet"
    );
    let until = now_ns() + 1_500_000_000;
    pins.isolator()
        .isolate(cg.dir(), cg.id(), Some(until))
        .expect("isolate with a TTL");
    assert_eq!(s.call(&format!("tcp {p4} {PEER_PORT}")), Err(EPERM));
    assert!(s.peer_connects(false).is_err(), "peer cannot connect");
    while now_ns() < until + 100_000_000 {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing ran in userspace: the kernel read the end from the map.
    assert_eq!(s.call(&format!("tcp {p4} {PEER_PORT}")), Ok(()));
    s.peer_connects(false)
        .expect("peer reaches the task after the TTL");
    let list = pins.isolator().list().expect("list");
    assert_eq!(list.len(), 1);
    assert!(!list[0].in_force(now_ns()), "{list:?}");
    assert_eq!(list[0].links, LINKS_PER_ISOLATION);
    assert!(
        !pins.isolator().remove_unused().expect("remove unused"),
        "pins kept while an isolation is listed"
    );
    assert!(pins.isolator().release(cg.id()).expect("release"));
    assert!(pins.isolator().remove_unused().expect("remove unused"));
    assert!(!pins.0.exists(), "every pin removed");
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
    assert!(s.peer_connects(false).is_err(), "peer cannot connect");
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

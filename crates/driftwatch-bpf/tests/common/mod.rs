//! Helpers shared by the sensor integration tests (need root).

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use driftwatch_abi::{decode, ExecRecord, MapRecord, Record};
use driftwatch_bpf::{EventStream, ExecSensor, SensorOptions};

pub const WAIT: Duration = Duration::from_secs(10);

/// Compiles `source` with `cc -static -O2` into `<target tmpdir>/<dir>/<name>` (static: the
/// helpers run chrooted into an overlay) and returns its path. Built under a private name, then
/// renamed into place: concurrent test binaries never see a half-written file.
pub fn compile_static(dir: &str, name: &str, source: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
    fs::create_dir_all(&dir).expect("mkdir");
    let src = dir.join(format!("{name}.{}.c", std::process::id()));
    let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
    let bin = dir.join(name);
    fs::write(&src, source).expect("write helper source");
    let out = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&tmp)
        .arg(&src)
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc -static failed (gcc and a static libc are needed): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::rename(&tmp, &bin).expect("rename helper");
    let _ = fs::remove_file(&src);
    bin
}

/// Loads a sensor that ignores this test process; `host_mntns_ino` 0 = no host exemption.
pub fn load_with(enforce: bool, host_mntns_ino: u32) -> (ExecSensor, EventStream) {
    let opts = SensorOptions {
        enforce,
        agent_tgid: std::process::id(),
        host_mntns_ino,
        // DW_TEST_NO_FILES=1 leaves the file programs out (to measure what they cost).
        files: std::env::var_os("DW_TEST_NO_FILES").is_none(),
        // DW_TEST_NO_NET=1 leaves the network programs out.
        net: std::env::var_os("DW_TEST_NO_NET").is_none(),
    };
    let mut sensor = ExecSensor::load(&opts).unwrap_or_else(|e| panic!("load sensor: {e:?}"));
    assert!(sensor.programs_attached());
    let events = sensor.take_events().expect("events");
    (sensor, events)
}

/// The inode of one of this process's namespaces (`/proc/self/ns/<ns>`).
pub fn ns_ino(ns: &str) -> u64 {
    fs::metadata(format!("/proc/self/ns/{ns}"))
        .expect("ns")
        .ino()
}

/// Reads events until `done` says the collected records (of the given tgids) are enough.
pub async fn collect(
    events: &mut EventStream,
    pids: &HashSet<u32>,
    mut done: impl FnMut(&[Vec<u8>]) -> bool,
) -> Vec<Vec<u8>> {
    let mut got: Vec<Vec<u8>> = Vec::new();
    let res = tokio::time::timeout(WAIT, async {
        while !done(&got) {
            events
                .for_each_record(64, |bytes| {
                    let rec = decode(bytes).expect("kernel record decodes");
                    if rec.task().is_some_and(|t| pids.contains(&t.tgid)) {
                        got.push(bytes.to_vec());
                    }
                })
                .await
                .expect("ring buffer read");
        }
    })
    .await;
    assert!(
        res.is_ok(),
        "timed out; got {} records: {:#?}",
        got.len(),
        decoded(&got)
    );
    got
}

pub fn decoded(raw: &[Vec<u8>]) -> Vec<Record<'_>> {
    raw.iter().map(|b| decode(b).expect("decodes")).collect()
}

/// At least `want_exec` exec records of `pid`, and its fork and exit records.
pub fn has_kinds(raw: &[Vec<u8>], pid: u32, want_exec: usize) -> bool {
    let recs = decoded(raw);
    let execs = recs
        .iter()
        .filter(|r| matches!(r, Record::Exec(e) if e.task.tgid == pid))
        .count();
    let fork = recs
        .iter()
        .any(|r| matches!(r, Record::Fork(f) if f.child.pid == pid));
    let exit = recs
        .iter()
        .any(|r| matches!(r, Record::Exit(e) if e.task.pid == pid));
    execs >= want_exec && fork && exit
}

pub fn last_exec<'a>(recs: &'a [Record<'a>], pid: u32) -> &'a ExecRecord<'a> {
    recs.iter()
        .rev()
        .find_map(|r| match r {
            Record::Exec(e) if e.task.tgid == pid => Some(e),
            _ => None,
        })
        .expect("exec record")
}

pub fn maps_of<'a>(recs: &'a [Record<'a>], pid: u32) -> Vec<&'a MapRecord<'a>> {
    recs.iter()
        .filter_map(|r| match r {
            Record::Map(m) if m.task.tgid == pid => Some(m),
            _ => None,
        })
        .collect()
}

/// An overlay mount in a tempdir, unmounted on drop.
pub struct Overlay {
    _dir: tempfile::TempDir,
    pub merged: PathBuf,
}

impl Overlay {
    /// lower/ holds `lowtrue`; `uptrue` is written through the merged dir (so it is upper).
    pub fn new() -> Self {
        Self::with_lower(&[])
    }

    /// As [`Overlay::new`], with more files (name, source) copied into lower/.
    pub fn with_lower(extra: &[(&str, &Path)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = fs::canonicalize(dir.path()).expect("canonicalize");
        for d in ["lower", "upper", "work", "merged"] {
            fs::create_dir(root.join(d)).expect("mkdir");
        }
        fs::copy("/usr/bin/true", root.join("lower/lowtrue")).expect("copy lower");
        for (name, src) in extra {
            let dst = root.join("lower").join(name);
            if let Some(parent) = dst.parent() {
                fs::create_dir_all(parent).expect("mkdir lower extra");
            }
            fs::copy(src, dst).expect("copy lower extra");
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            root.join("lower").display(),
            root.join("upper").display(),
            root.join("work").display()
        );
        let merged = root.join("merged");
        let st = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(&merged)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount overlay failed");
        fs::copy("/usr/bin/true", merged.join("uptrue")).expect("copy upper");
        Self { _dir: dir, merged }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.merged).status();
    }
}

/// Runs a command to completion; (pid, status).
pub fn run_cmd(cmd: &mut Command) -> (u32, ExitStatus) {
    let child = cmd.spawn().expect("spawn");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    (pid, out.status)
}

pub fn run(path: &Path) -> (u32, ExitStatus) {
    run_cmd(&mut Command::new(path))
}

/// A cgroup v2 directory for the test's children, removed on drop.
pub struct TestCgroup {
    dir: PathBuf,
}

impl TestCgroup {
    pub fn new() -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let mounts = fs::read_to_string("/proc/mounts").expect("read /proc/mounts");
        let base = mounts
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (_src, dst, ty) = (f.next()?, f.next()?, f.next()?);
                (ty == "cgroup2").then(|| PathBuf::from(dst))
            })
            .next()
            .expect("cgroup2 is mounted");
        let dir = base.join(format!(
            "driftwatch-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&dir).expect("create cgroup");
        Self { dir }
    }

    /// The cgroup v2 id is the inode number of its directory.
    pub fn id(&self) -> u64 {
        fs::metadata(&self.dir).expect("stat cgroup").ino()
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A cgroup below this one (drop it first).
    pub fn child(&self, name: &str) -> TestCgroup {
        let dir = self.dir.join(name);
        fs::create_dir(&dir).expect("create child cgroup");
        TestCgroup { dir }
    }

    /// The cgroup's `cgroup.procs` file.
    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// Runs `exe` from a shell that first moves itself into this cgroup.
    pub fn run_inside(&self, exe: &Path) -> (u32, ExitStatus) {
        self.run_args_inside(&[exe.as_os_str()])
    }

    /// Runs `argv` from a shell that first moves itself into this cgroup.
    pub fn run_args_inside(&self, argv: &[&OsStr]) -> (u32, ExitStatus) {
        let script = format!(
            "echo $$ > '{}' && exec \"$@\"",
            self.dir.join("cgroup.procs").display(),
        );
        run_cmd(
            Command::new("/bin/sh")
                .args(["-c", &script, "sh"])
                .args(argv),
        )
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.dir);
    }
}

/// C: `uring_connect(s, sa, len)`, connect(2) through io_uring (`IORING_OP_CONNECT`, no connect
/// syscall): the completion's result, or -1000 when io_uring is not available. Prepended to the
/// test programs that need it ([`with_uring_connect`]).
const URING_CONNECT_C: &str = r#"
#include <linux/io_uring.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
static int uring_connect(int s, struct sockaddr *sa, socklen_t len) {
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    int fd = syscall(__NR_io_uring_setup, 4, &p);
    if (fd < 0)
        return -1000;
    size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    char *sq = mmap(0, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                    IORING_OFF_SQ_RING);
    char *cq = mmap(0, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                    IORING_OFF_CQ_RING);
    struct io_uring_sqe *sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe),
                                     PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                                     IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
        return -1000;
    unsigned *tail = (unsigned *)(sq + p.sq_off.tail);
    unsigned mask = *(unsigned *)(sq + p.sq_off.ring_mask);
    unsigned *array = (unsigned *)(sq + p.sq_off.array);
    unsigned t = *tail, idx = t & mask;
    struct io_uring_sqe *e = &sqes[idx];
    memset(e, 0, sizeof(*e));
    e->opcode = IORING_OP_CONNECT;
    e->fd = s;
    e->addr = (unsigned long)sa;
    e->off = len;
    array[idx] = idx;
    __atomic_store_n(tail, t + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
        return -1001;
    unsigned *head = (unsigned *)(cq + p.cq_off.head);
    unsigned cmask = *(unsigned *)(cq + p.cq_off.ring_mask);
    struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    int res = cqes[*head & cmask].res;
    __atomic_store_n(head, *head + 1, __ATOMIC_RELEASE);
    close(fd);
    return res;
}
"#;

/// A test program's C source with [`URING_CONNECT_C`] in front.
#[allow(dead_code, reason = "used by the network tests only")]
pub fn with_uring_connect(source: &str) -> String {
    format!("{URING_CONNECT_C}{source}")
}

/// Reads and discards every record of `events` for at most `secs` seconds in a task of its own
/// (a benchmark's sensor must not fill its ring buffer); abort the handle to stop it.
#[allow(dead_code, reason = "used by the benchmarks only")]
pub fn drain(mut events: EventStream, secs: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(secs), async {
            loop {
                let _ = events.for_each_record(4096, |_| {}).await;
            }
        })
        .await;
    })
}

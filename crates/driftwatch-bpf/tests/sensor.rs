//! End-to-end tests of the exec sensor against the running kernel (need root, as in CI).
//!
//! Every test loads its own sensor and filters the system-wide event stream by the pids of the
//! children it spawns, so the tests can run in parallel.

mod common;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use common::{collect, decoded, has_kinds, last_exec, load_with, run, Overlay, TestCgroup};

use driftwatch_abi::{
    Record, EXEC_F_IN_POLICY, EXEC_F_KILLED, EXEC_F_MEMFD, EXEC_F_ON_ROOT_MNT, EXEC_F_OVL_UPPER,
    EXEC_F_PATH_OUTSIDE_ROOT, EXEC_F_SCRIPT, OVERLAYFS_SUPER_MAGIC, POLICY_F_ENFORCE,
    POLICY_F_TRACKED,
};
use driftwatch_bpf::{EventStream, ExecSensor};

fn load(enforce: bool) -> (ExecSensor, EventStream) {
    // The test's children stay in the host's mount namespace: no exemption for it here.
    load_with(enforce, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_fork_exit_of_a_child() {
    let (sensor, mut events) = load(false);
    let me = std::process::id();
    let status_child = Command::new("/bin/true")
        .args(["a", "b c", ""])
        .spawn()
        .expect("spawn");
    let pid = status_child.id();
    let out = status_child.wait_with_output().expect("wait");
    assert!(out.status.success());

    let raw = collect(&mut events, &HashSet::from([pid]), |g| has_kinds(g, pid, 1)).await;
    let recs = decoded(&raw);

    let fork = recs
        .iter()
        .find_map(|r| match r {
            Record::Fork(f) if f.child.pid == pid => Some(f),
            _ => None,
        })
        .expect("fork");
    assert_eq!(fork.child.tgid, pid);
    assert_eq!(fork.child.ppid, me);

    let e = last_exec(&recs, pid);
    assert_eq!(e.task.pid, pid);
    assert_eq!(e.task.ppid, me);
    assert_eq!(e.old_pid, pid);
    assert_eq!(e.task.comm_bytes(), b"true");
    assert_eq!(e.task.uid, rustix::process::getuid().as_raw());
    let ns_ino = common::ns_ino;
    assert_eq!(u64::from(e.task.mntns_ino), ns_ino("mnt"));
    assert_eq!(u64::from(e.task.pidns_ino), ns_ino("pid"));
    assert_eq!(e.task.cgroup_id, fork.child.cgroup_id);
    assert_ne!(e.task.cgroup_id, 0);
    assert_eq!(e.filename, b"/bin/true");
    assert_eq!(
        e.path().to_string(),
        "/usr/bin/true",
        "flags {:#x}",
        e.flags
    );
    assert_eq!(usize::from(e.path_components), 3);
    let args: Vec<&[u8]> = e.args().collect();
    assert_eq!(args, [&b"/bin/true"[..], b"a", b"b c", b""]);
    // Not a script; with no host mount namespace configured every task gets its cwd.
    assert!(
        e.interp.is_empty() && !e.has(EXEC_F_SCRIPT),
        "flags {:#x}",
        e.flags
    );
    let cwd = std::env::current_dir().expect("cwd");
    assert_eq!(e.cwd().to_string(), cwd.display().to_string());
    assert_eq!(usize::from(e.cwd_components), cwd.components().count() - 1);
    assert!(e.has(EXEC_F_ON_ROOT_MNT), "flags {:#x}", e.flags);
    assert!(!e.has(EXEC_F_OVL_UPPER) && !e.has(EXEC_F_MEMFD) && !e.has(EXEC_F_KILLED));
    assert!(!e.has(EXEC_F_IN_POLICY));
    let meta = fs::metadata("/usr/bin/true").expect("stat");
    assert_eq!(e.exe_ino, meta.ino());
    assert_eq!(e.exe_size, meta.size());
    assert_eq!(e.exe_mode, meta.mode());
    assert_eq!(u64::from(e.exe_nlink), meta.nlink());
    assert_eq!(e.exe_mtime_sec, meta.mtime() as u64);
    assert_eq!(i64::from(e.exe_mtime_nsec), meta.mtime_nsec());
    assert_eq!(e.exe_ctime_sec, meta.ctime() as u64);
    assert_eq!(i64::from(e.exe_ctime_nsec), meta.ctime_nsec());
    // The kernel's dev_t encoding: major << 20 | minor.
    let dev = meta.dev();
    let kdev = (rustix::fs::major(dev) << 20) | rustix::fs::minor(dev);
    assert_eq!(e.exe_dev, kdev);

    let exit = recs
        .iter()
        .find_map(|r| match r {
            Record::Exit(x) if x.task.pid == pid => Some(x),
            _ => None,
        })
        .expect("exit");
    assert_eq!(exit.exit_code, 0);
    assert_eq!(exit.task.comm_bytes(), b"true");

    let stats = sensor.stats().expect("stats");
    assert_eq!(stats.kills, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_upper_binary_is_flagged() {
    let ovl = Overlay::new();
    let (_sensor, mut events) = load(false);
    let (low_pid, st) = run(&ovl.merged.join("lowtrue"));
    assert!(st.success());
    let (up_pid, st) = run(&ovl.merged.join("uptrue"));
    assert!(st.success());

    let raw = collect(&mut events, &HashSet::from([low_pid, up_pid]), |g| {
        has_kinds(g, low_pid, 1) && has_kinds(g, up_pid, 1)
    })
    .await;
    let recs = decoded(&raw);

    let low = last_exec(&recs, low_pid);
    assert_eq!(low.exe_s_magic, OVERLAYFS_SUPER_MAGIC);
    assert!(!low.has(EXEC_F_OVL_UPPER), "flags {:#x}", low.flags);
    assert!(
        !low.has(EXEC_F_ON_ROOT_MNT),
        "a separate mount is not the root mount"
    );
    assert_eq!(
        low.path().to_string(),
        ovl.merged.join("lowtrue").display().to_string()
    );

    let up = last_exec(&recs, up_pid);
    assert_eq!(up.exe_s_magic, OVERLAYFS_SUPER_MAGIC);
    assert!(up.has(EXEC_F_OVL_UPPER), "flags {:#x}", up.flags);
    assert_eq!(
        up.path().to_string(),
        ovl.merged.join("uptrue").display().to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memfd_exec_is_flagged() {
    use rustix::fs::{memfd_create, open, MemfdFlags, Mode, OFlags};
    use std::os::fd::AsRawFd;

    let (_sensor, mut events) = load(false);
    let rw = memfd_create("dwtest", MemfdFlags::CLOEXEC).expect("memfd_create");
    let bytes = fs::read("/usr/bin/true").expect("read true");
    rustix::io::write(&rw, &bytes).expect("write memfd");
    // Exec needs no writer left (ETXTBSY): reopen read-only, inheritable, and drop the rw fd.
    let ro = open(
        format!("/proc/self/fd/{}", rw.as_raw_fd()).as_str(),
        OFlags::RDONLY,
        Mode::empty(),
    )
    .expect("reopen memfd");
    drop(rw);
    let (pid, st) = run(Path::new(&format!("/proc/self/fd/{}", ro.as_raw_fd())));
    drop(ro);
    assert!(st.success());

    let raw = collect(&mut events, &HashSet::from([pid]), |g| has_kinds(g, pid, 1)).await;
    let recs = decoded(&raw);
    let e = last_exec(&recs, pid);
    assert!(e.has(EXEC_F_MEMFD), "flags {:#x}", e.flags);
    assert!(e.has(EXEC_F_PATH_OUTSIDE_ROOT), "flags {:#x}", e.flags);
    assert!(!e.has(EXEC_F_ON_ROOT_MNT));
    let comps: Vec<&[u8]> = e.path_components_root_first().collect();
    assert_eq!(comps, [&b"memfd:dwtest"[..]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_kills_drifted_exec_in_policy_cgroup() {
    let ovl = Overlay::new();
    let cg = TestCgroup::new();
    let (mut sensor, mut events) = load(true);
    sensor
        .set_policy(cg.id(), POLICY_F_TRACKED | POLICY_F_ENFORCE)
        .expect("set policy");

    // Drift (written into the overlay's upper layer): killed before it runs.
    let (killed_pid, st) = cg.run_inside(&ovl.merged.join("uptrue"));
    assert_eq!(st.signal(), Some(9), "status {st:?}");
    // Image binary on the root mount: allowed.
    let (ok_pid, st) = cg.run_inside(Path::new("/bin/true"));
    assert!(st.success(), "status {st:?}");
    // Drifted binary outside any policy cgroup: reported, not killed.
    let (free_pid, st) = run(&ovl.merged.join("uptrue"));
    assert!(st.success(), "status {st:?}");

    let pids = HashSet::from([killed_pid, ok_pid, free_pid]);
    let raw = collect(&mut events, &pids, |g| {
        has_kinds(g, killed_pid, 2) && has_kinds(g, ok_pid, 2) && has_kinds(g, free_pid, 1)
    })
    .await;
    let recs = decoded(&raw);

    let k = last_exec(&recs, killed_pid);
    assert_eq!(k.task.cgroup_id, cg.id());
    assert!(
        k.has(EXEC_F_IN_POLICY | EXEC_F_OVL_UPPER | EXEC_F_KILLED),
        "flags {:#x}",
        k.flags
    );
    let exit = recs
        .iter()
        .find_map(|r| match r {
            Record::Exit(x) if x.task.pid == killed_pid => Some(x),
            _ => None,
        })
        .expect("exit of killed");
    assert_eq!(exit.exit_code & 0x7f, 9, "terminated by SIGKILL");

    let ok = last_exec(&recs, ok_pid);
    assert!(
        ok.has(EXEC_F_IN_POLICY) && !ok.has(EXEC_F_KILLED),
        "flags {:#x}",
        ok.flags
    );

    let free = last_exec(&recs, free_pid);
    assert!(free.has(EXEC_F_OVL_UPPER), "flags {:#x}", free.flags);
    assert!(
        !free.has(EXEC_F_IN_POLICY) && !free.has(EXEC_F_KILLED),
        "flags {:#x}",
        free.flags
    );

    assert!(sensor.stats().expect("stats").kills >= 1);
    sensor.remove_policy(cg.id()).expect("remove policy");
    sensor
        .remove_policy(cg.id())
        .expect("removing twice is fine");
}

//! Executable mappings and script execs against the running kernel (need root).
//!
//! Executable mappings are reported only for tasks outside the host's mount namespace, so each
//! sensor here is loaded with this process's mount namespace as the host's, and the children that
//! should be seen run in a new one (`unshare -m`), chrooted into an overlay like a container's
//! root: image (lower) files are then on the task's root mount, as in a container.

mod common;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;

use common::{
    collect, compile_static, decoded, has_kinds, last_exec, load_with, maps_of, ns_ino, run_cmd,
    Overlay, TestCgroup,
};
use driftwatch_abi::{
    Record, EXEC_F_ALLOWED, EXEC_F_CWD_OUTSIDE_ROOT, EXEC_F_CWD_TRUNCATED, EXEC_F_IN_POLICY,
    EXEC_F_KILLED, EXEC_F_MEMFD, EXEC_F_ON_ROOT_MNT, EXEC_F_OVL_UPPER, EXEC_F_SCRIPT,
    OVERLAYFS_SUPER_MAGIC, POLICY_F_ENFORCE, POLICY_F_TRACKED,
};
use driftwatch_bpf::{EventStream, ExecSensor, UpperFile};
use driftwatch_event::MapHow;

const PROT_READ: u32 = 1;
const PROT_EXEC: u32 = 4;
const MAP_PRIVATE: u32 = 2;

/// `dwmap MODE FILE [MARKER]`: maps FILE (MODE exec: PROT_READ|PROT_EXEC; read: PROT_READ;
/// mprotect: PROT_READ, then mprotect to PROT_READ|PROT_EXEC; pkey: the same with
/// pkey_mprotect (pkey -1, the default key); memfd: a new memfd named FILE,
/// mapped PROT_READ|PROT_EXEC), then creates MARKER. Exit 0 on success.
const DWMAP_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    static char page[4096];
    if (argc < 3)
        return 2;
    const char *mode = argv[1], *file = argv[2];
    int fd;
    if (strcmp(mode, "memfd") == 0) {
        fd = memfd_create(file, 0);
        if (fd >= 0 && write(fd, page, sizeof(page)) != sizeof(page))
            return 7;
    } else {
        fd = open(file, O_RDONLY);
    }
    if (fd < 0) {
        perror("open");
        return 3;
    }
    int exec = strcmp(mode, "exec") == 0 || strcmp(mode, "memfd") == 0;
    void *p = mmap(NULL, 4096, PROT_READ | (exec ? PROT_EXEC : 0), MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 4;
    }
    if (strcmp(mode, "mprotect") == 0 && mprotect(p, 4096, PROT_READ | PROT_EXEC) != 0) {
        perror("mprotect");
        return 5;
    }
    if (strcmp(mode, "pkey") == 0 && pkey_mprotect(p, 4096, PROT_READ | PROT_EXEC, -1) != 0) {
        perror("pkey_mprotect");
        return 5;
    }
    if (argc > 3) {
        int m = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (m < 0)
            return 6;
        close(m);
    }
    return 0;
}
"#;

/// The helper, compiled once per test binary (static: it runs chrooted into an overlay).
fn dwmap() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| compile_static("driftwatch-bpf-exec-maps", "dwmap", DWMAP_C))
}

/// A sensor for which this process's mount namespace is the host's.
fn load(enforce: bool) -> (ExecSensor, EventStream) {
    let host = u32::try_from(ns_ino("mnt")).expect("mntns inode fits u32");
    load_with(enforce, host)
}

/// A container-like root: an overlay whose lower layer holds the helper (`/dwmap`) and
/// `/lowtrue`, and whose upper layer holds `/uptrue` (written through the merged dir).
fn rootfs() -> Overlay {
    Overlay::with_lower(&[("dwmap", dwmap())])
}

/// The argv that runs `/dwmap args…` in a new mount namespace, chrooted into `root`.
fn in_container(root: &Overlay, args: &[&str]) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec!["unshare".into(), "-m".into(), "chroot".into()];
    v.push(root.merged.clone().into_os_string());
    v.push("/dwmap".into());
    v.extend(args.iter().map(Into::into));
    v
}

fn run_argv(argv: &[std::ffi::OsString]) -> (u32, ExitStatus) {
    run_cmd(Command::new(&argv[0]).args(&argv[1..]))
}

/// Collects every record of `pids` until each has exited (fork and exit seen, `execs` execs).
async fn records_until_exit(events: &mut EventStream, pids: &[(u32, usize)]) -> Vec<Vec<u8>> {
    let set: HashSet<u32> = pids.iter().map(|(p, _)| *p).collect();
    collect(events, &set, |g| {
        pids.iter().all(|(pid, execs)| has_kinds(g, *pid, *execs))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executable_mappings_of_suspicious_files_are_reported() {
    let root = rootfs();
    let (sensor, mut events) = load(false);

    let (up, st) = run_argv(&in_container(&root, &["exec", "/uptrue"]));
    assert!(st.success(), "{st:?}");
    let (up_read, st) = run_argv(&in_container(&root, &["read", "/uptrue"]));
    assert!(st.success(), "{st:?}");
    let (low, st) = run_argv(&in_container(&root, &["exec", "/lowtrue"]));
    assert!(st.success(), "{st:?}");
    let (mprot, st) = run_argv(&in_container(&root, &["mprotect", "/uptrue"]));
    assert!(st.success(), "{st:?}");
    let (pkey, st) = run_argv(&in_container(&root, &["pkey", "/uptrue"]));
    assert!(st.success(), "{st:?}");
    // mprotect of an image file: judged through overlayfs' backing file, still not reported.
    let (mprot_low, st) = run_argv(&in_container(&root, &["mprotect", "/lowtrue"]));
    assert!(st.success(), "{st:?}");
    let (memfd, st) = run_argv(&in_container(&root, &["memfd", "dwjit"]));
    assert!(st.success(), "{st:?}");
    // The same suspicious file mapped by a task still in the host's mount namespace.
    let (host, st) = run_cmd(
        Command::new(dwmap())
            .arg("exec")
            .arg(root.merged.join("uptrue")),
    );
    assert!(st.success(), "{st:?}");

    // unshare, chroot and dwmap: three execs each (the host one: one).
    let all = [
        (up, 3),
        (up_read, 3),
        (low, 3),
        (mprot, 3),
        (pkey, 3),
        (mprot_low, 3),
        (memfd, 3),
        (host, 1),
    ];
    let raw = records_until_exit(&mut events, &all).await;
    let recs = decoded(&raw);

    // Exactly one record for the upper file mapped executable: `chroot` (dynamic, in the new
    // mount namespace) mapped its libraries from the root mount without any record.
    let maps = maps_of(&recs, up);
    assert_eq!(maps.len(), 1, "{maps:#?}");
    let m = maps[0];
    assert_eq!(m.how, MapHow::Mmap.raw());
    assert_eq!(m.prot, PROT_READ | PROT_EXEC);
    assert_eq!(m.map_flags & 0xf, MAP_PRIVATE);
    assert_eq!((m.len, m.off), (4096, 0));
    assert!(
        m.has(EXEC_F_OVL_UPPER | EXEC_F_ON_ROOT_MNT),
        "flags {:#x}",
        m.flags
    );
    assert!(!m.has(EXEC_F_KILLED) && !m.has(EXEC_F_IN_POLICY) && !m.has(EXEC_F_MEMFD));
    assert_eq!(m.path().to_string(), "/uptrue");
    assert_eq!(m.path_components, 1);
    assert_eq!(m.file.s_magic, OVERLAYFS_SUPER_MAGIC);
    let meta = fs::metadata(root.merged.join("uptrue")).expect("stat");
    assert_eq!(m.file.size, meta.size());
    assert_eq!(m.file.mode, meta.mode());
    assert_eq!(u64::from(m.file.nlink), meta.nlink());
    assert_eq!(m.file.mtime_sec, meta.mtime() as u64);
    assert_eq!(u64::from(m.task.mntns_ino), {
        let e = last_exec(&recs, up);
        u64::from(e.task.mntns_ino)
    });
    assert_ne!(u64::from(m.task.mntns_ino), ns_ino("mnt"));
    assert_eq!(m.task.comm_bytes(), b"dwmap");
    // The process's start time, as its exec record has it: what names it to dw_net_drifted.
    assert_eq!(m.task.start_ns, last_exec(&recs, up).task.start_ns);
    assert!(m.task.start_ns > 0);

    // The exec of the image helper itself: on the root mount, not upper.
    let e = last_exec(&recs, up);
    assert_eq!(e.path().to_string(), "/dwmap");
    assert!(e.has(EXEC_F_ON_ROOT_MNT) && !e.has(EXEC_F_OVL_UPPER));

    assert!(maps_of(&recs, up_read).is_empty(), "PROT_READ only");
    assert!(maps_of(&recs, low).is_empty(), "image (lower) file");
    assert!(maps_of(&recs, host).is_empty(), "host mount namespace");
    assert!(maps_of(&recs, mprot_low).is_empty(), "image file, mprotect");

    let maps = maps_of(&recs, mprot);
    assert_eq!(maps.len(), 1, "{maps:#?}");
    let m = maps[0];
    assert_eq!(m.how, MapHow::Mprotect.raw());
    assert_eq!(m.prot, PROT_READ | PROT_EXEC);
    assert_eq!((m.map_flags, m.len, m.off), (0, 4096, 0));
    assert_ne!(m.addr, 0);
    // The overlay file, not overlayfs' backing file on its internal upper mount.
    assert!(
        m.has(EXEC_F_OVL_UPPER | EXEC_F_ON_ROOT_MNT),
        "flags {:#x}",
        m.flags
    );
    assert_eq!(m.path().to_string(), "/uptrue");
    assert_eq!(m.file.s_magic, OVERLAYFS_SUPER_MAGIC);

    // pkey_mprotect(2) is mprotect with a protection key: the same record.
    let maps = maps_of(&recs, pkey);
    assert_eq!(maps.len(), 1, "{maps:#?}");
    assert_eq!(maps[0].how, MapHow::Mprotect.raw());
    assert_eq!(maps[0].prot, PROT_READ | PROT_EXEC);
    assert_eq!(maps[0].path().to_string(), "/uptrue");

    let maps = maps_of(&recs, memfd);
    assert_eq!(maps.len(), 1, "{maps:#?}");
    let m = maps[0];
    assert_eq!(m.how, MapHow::Mmap.raw());
    assert!(m.has(EXEC_F_MEMFD), "flags {:#x}", m.flags);
    assert!(!m.has(EXEC_F_ON_ROOT_MNT) && !m.has(EXEC_F_OVL_UPPER));
    assert_eq!(m.file.nlink, 0);
    assert_eq!(m.file.size, 4096);
    let comps: Vec<&[u8]> = m.path_components_root_first().collect();
    assert_eq!(comps, [&b"memfd:dwjit"[..]]);

    let stats = sensor.stats().expect("stats");
    assert_eq!((stats.lost_map, stats.kills), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_kills_a_suspicious_mapping_before_mmap_returns() {
    let root = rootfs();
    let cg = TestCgroup::new();
    let (mut sensor, mut events) = load(true);
    sensor
        .set_policy(cg.id(), POLICY_F_TRACKED | POLICY_F_ENFORCE)
        .expect("set policy");

    // The helper writes its marker right after mmap returns: a kill at syscall entry means the
    // marker never exists.
    let argv = in_container(&root, &["exec", "/uptrue", "/killed-marker"]);
    let args: Vec<&OsStr> = argv.iter().map(|a| a.as_os_str()).collect();
    let (killed, st) = cg.run_args_inside(&args);
    assert_eq!(st.signal(), Some(9), "status {st:?}");
    assert!(!root.merged.join("killed-marker").exists());

    // An image file mapped executable in the same cgroup is allowed.
    let argv = in_container(&root, &["exec", "/lowtrue", "/ok-marker"]);
    let args: Vec<&OsStr> = argv.iter().map(|a| a.as_os_str()).collect();
    let (ok, st) = cg.run_args_inside(&args);
    assert!(st.success(), "status {st:?}");
    assert!(root.merged.join("ok-marker").exists());

    // sh, unshare, chroot, dwmap: four execs each.
    let raw = records_until_exit(&mut events, &[(killed, 4), (ok, 4)]).await;
    let recs = decoded(&raw);
    let maps = maps_of(&recs, killed);
    assert_eq!(maps.len(), 1, "{maps:#?}");
    let m = maps[0];
    assert!(
        m.has(EXEC_F_KILLED | EXEC_F_IN_POLICY | EXEC_F_OVL_UPPER),
        "flags {:#x}",
        m.flags
    );
    assert_eq!(m.task.cgroup_id, cg.id());
    let exit = recs
        .iter()
        .find_map(|r| match r {
            Record::Exit(x) if x.task.pid == killed => Some(x),
            _ => None,
        })
        .expect("exit of killed");
    assert_eq!(exit.exit_code & 0x7f, 9, "terminated by SIGKILL");
    assert!(maps_of(&recs, ok).is_empty());
    // No exec of the chain was killed (image files and host binaries on their root mounts).
    for r in &recs {
        if let Record::Exec(e) = r {
            assert!(!e.has(EXEC_F_KILLED), "{e:#?}");
        }
    }
    assert!(sensor.stats().expect("stats").kills >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shebang_script_exec_has_interp_and_cwd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = fs::canonicalize(dir.path()).expect("canonicalize");
    let script = work.join("x.sh");
    fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    let (_sensor, mut events) = load(false);

    // In a new mount namespace (a container's task): relative script path, cwd recorded.
    let (ns_pid, st) = run_cmd(
        Command::new("unshare")
            .args(["-m", "--", "./x.sh"])
            .current_dir(&work),
    );
    assert!(st.success(), "{st:?}");
    // In the host's mount namespace: the script is still flagged, the cwd is not walked.
    let (host_pid, st) = run_cmd(Command::new("./x.sh").current_dir(&work));
    assert!(st.success(), "{st:?}");

    let raw = records_until_exit(&mut events, &[(ns_pid, 2), (host_pid, 1)]).await;
    let recs = decoded(&raw);

    let e = last_exec(&recs, ns_pid);
    assert!(e.has(EXEC_F_SCRIPT), "flags {:#x}", e.flags);
    assert_eq!(e.filename, b"./x.sh");
    assert_eq!(e.interp, b"/bin/sh");
    // The executed file is the interpreter.
    let sh = fs::canonicalize("/bin/sh").expect("canonicalize /bin/sh");
    assert_eq!(e.path().to_string(), sh.display().to_string());
    assert_eq!(e.cwd().to_string(), work.display().to_string());
    let comps: Vec<String> = e
        .cwd_components_root_first()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let want: Vec<String> = work
        .components()
        .skip(1)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    assert_eq!(comps, want);
    assert_eq!(usize::from(e.cwd_components), want.len());
    assert!(!e.has(EXEC_F_CWD_TRUNCATED) && !e.has(EXEC_F_CWD_OUTSIDE_ROOT));
    let args: Vec<&[u8]> = e.args().collect();
    assert_eq!(args, [&b"/bin/sh"[..], b"./x.sh"]);

    // `unshare` itself (not a script, exec'd before the namespace was created): host task.
    let first = recs
        .iter()
        .find_map(|r| match r {
            Record::Exec(x) if x.task.tgid == ns_pid => Some(x),
            _ => None,
        })
        .expect("exec of unshare");
    assert!(!first.has(EXEC_F_SCRIPT) && first.interp.is_empty());
    assert!(first.cwd_raw.is_empty(), "host task: no cwd walk");

    let h = last_exec(&recs, host_pid);
    assert!(h.has(EXEC_F_SCRIPT), "flags {:#x}", h.flags);
    assert_eq!((h.filename, h.interp), (&b"./x.sh"[..], &b"/bin/sh"[..]));
    assert!(h.cwd_raw.is_empty() && h.cwd_components == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_map_entry_lets_an_upper_file_run_until_its_inode_changes() {
    let root = rootfs();
    let cg = TestCgroup::new();
    let (mut sensor, mut events) = load(true);
    sensor
        .set_policy(cg.id(), POLICY_F_TRACKED | POLICY_F_ENFORCE)
        .expect("set policy");
    let mut gate = sensor.take_gate_maps().expect("gate maps");
    assert!(sensor.take_gate_maps().is_none(), "taken once");
    // The verdict names the upper layer's own inode, as the exec gate does.
    let upper = root.merged.parent().expect("parent").join("upper/uptrue");
    let m = fs::metadata(&upper).expect("stat upper");
    let file = UpperFile::from_stat(m.dev(), m.ino(), m.ctime(), m.ctime_nsec());
    gate.allow(&file).expect("allow");
    assert_eq!(gate.allowed_len(), 1);

    let run = |marker: &str| {
        let argv = in_container(&root, &["exec", "/uptrue", marker]);
        let args: Vec<&OsStr> = argv.iter().map(|a| a.as_os_str()).collect();
        cg.run_args_inside(&args)
    };
    let (allowed, st) = run("/allowed-marker");
    assert!(st.success(), "allowed upper file mapped: {st:?}");
    assert!(root.merged.join("allowed-marker").exists());

    // A chmod changes the upper inode's ctime: the verdict no longer holds.
    fs::set_permissions(
        root.merged.join("uptrue"),
        fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
    let (killed, st) = run("/changed-marker");
    assert_eq!(st.signal(), Some(9), "status {st:?}");
    assert!(!root.merged.join("changed-marker").exists());

    let raw = records_until_exit(&mut events, &[(allowed, 4), (killed, 4)]).await;
    let recs = decoded(&raw);
    // The allowed mapping is not even reported; the changed one is, killed.
    assert!(maps_of(&recs, allowed).is_empty());
    let maps = maps_of(&recs, killed);
    assert_eq!(maps.len(), 1, "{maps:#?}");
    assert!(maps[0].has(EXEC_F_KILLED) && !maps[0].has(EXEC_F_ALLOWED));

    gate.forget(&file).expect("forget");
    gate.forget(&file).expect("forgetting twice is fine");
    assert_eq!(gate.allowed_len(), 0);
}

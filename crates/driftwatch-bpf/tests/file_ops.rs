//! The file sensor against the running kernel (need root).
//!
//! As in `exec_maps.rs`, the sensor is loaded with this process's mount namespace as the host's;
//! the "container" task is a static helper run in a new mount namespace, chrooted into an
//! overlay whose lower layer plays the image. The same helper run on the host must produce no
//! file record at all.

mod common;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{
    collect, compile_static, decoded, has_kinds, load_with, ns_ino, run_cmd, Overlay, TestCgroup,
};
use driftwatch_abi::{
    FileOpRecord, Record, AT_FDCWD, FILE_F_HAVE_FILE, FILE_F_IN_POLICY, FILE_F_NAME1_TRUNCATED,
    FILE_F_ON_ROOT_MNT, FILE_F_OVERLAY, FILE_F_OVL_LOWER, FILE_F_OVL_UPPER, POLICY_F_TRACKED,
};
use driftwatch_bpf::{EventStream, ExecSensor};
use driftwatch_event::FileOp;

/// Every file-changing call the sensor covers, on paths relative to the root it runs in.
const DWFILE_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct how { uint64_t flags, mode, resolve; };
static char longname[4200];
#define S(...) syscall(__VA_ARGS__)

int main(int argc, char **argv) {
    const char *base = argc > 1 ? argv[1] : "/";
    if (chdir(base) != 0)
        return 2;
    long fd = S(SYS_open, "etc/conf", O_RDONLY); /* read-only: never reported */
    if (fd >= 0)
        close(fd);
    fd = S(SYS_open, "etc/conf", O_WRONLY | O_APPEND); /* an image file: copied up */
    if (fd < 0)
        return 3;
    if (write(fd, "x\n", 2) != 2)
        return 4;
    close(fd);
    fd = S(SYS_openat, AT_FDCWD, "newfile", O_WRONLY | O_CREAT | O_TRUNC, 0640); /* upper only */
    if (fd < 0)
        return 5;
    S(SYS_fchmod, fd, 0600);
    S(SYS_fchown, fd, 1, 2);
    close(fd);
    S(SYS_mkdir, "dir", 0750);
    long dfd = S(SYS_open, "dir", O_RDONLY | O_DIRECTORY); /* read-only: not reported */
    S(SYS_mkdirat, dfd, "sub", 0700);
    struct how how = {.flags = O_WRONLY | O_CREAT, .mode = 0644};
    fd = S(437 /* openat2 */, dfd, "o2", &how, sizeof(how));
    if (fd >= 0)
        close(fd);
    S(SYS_rename, "newfile", "dir/renamed");
    S(SYS_renameat, dfd, "renamed", AT_FDCWD, "etc/moved");
    S(SYS_renameat2, dfd, "o2", dfd, "o3", 1 /* RENAME_NOREPLACE */);
    S(SYS_chmod, "etc/moved", 0644);
    S(SYS_fchmodat, dfd, "sub", 0711);
    S(SYS_chown, "etc/moved", 3, 4);
    S(SYS_fchownat, dfd, "o3", 5, 6, 0);
    S(SYS_symlink, "/etc/conf", "dir/link");
    S(SYS_symlinkat, "../etc/conf", dfd, "link2");
    S(SYS_lchown, "dir/link", 7, 8);
    S(SYS_link, "etc/moved", "dir/hard");
    S(SYS_linkat, dfd, "hard", AT_FDCWD, "hard2", 0);
    S(SYS_unlink, "dir/hard");
    S(SYS_unlinkat, dfd, "link", 0);
    S(SYS_rmdir, "dir/sub");
    /* hostile names: a newline and a byte that is not UTF-8; an over-long name */
    fd = S(SYS_creat, "bad\nname\xff", 0600);
    if (fd >= 0)
        close(fd);
    memset(longname, 'a', sizeof(longname) - 1);
    fd = S(SYS_open, longname, O_WRONLY | O_CREAT, 0600); /* ENAMETOOLONG */
    if (fd >= 0)
        close(fd);
    return 0;
}
"#;

fn dwfile() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| compile_static("driftwatch-bpf-file-ops", "dwfile", DWFILE_C))
}

fn load() -> (ExecSensor, EventStream) {
    let host = u32::try_from(ns_ino("mnt")).expect("mntns inode fits u32");
    load_with(false, host)
}

fn files_of<'a>(recs: &'a [Record<'a>], pid: u32) -> Vec<&'a FileOpRecord<'a>> {
    recs.iter()
        .filter_map(|r| match r {
            Record::File(f) if f.task.tgid == pid => Some(f),
            _ => None,
        })
        .collect()
}

fn root_first(raw: impl Iterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for c in raw {
        out.push(b'/');
        out.extend_from_slice(&c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn dir1(f: &FileOpRecord<'_>) -> Vec<u8> {
    root_first(f.dir1_components_root_first().map(<[u8]>::to_vec))
}

fn dir2(f: &FileOpRecord<'_>) -> Vec<u8> {
    root_first(f.dir2_components_root_first().map(<[u8]>::to_vec))
}

fn one<'a>(files: &[&'a FileOpRecord<'a>], op: FileOp) -> &'a FileOpRecord<'a> {
    let found: Vec<_> = files.iter().filter(|f| f.op == op.raw()).collect();
    assert_eq!(found.len(), 1, "{op:?}: {files:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_file_changes_are_reported_with_in_container_paths_and_layers() {
    let conf_src = tempfile::NamedTempFile::new().expect("tempfile");
    fs::write(conf_src.path(), b"image\n").expect("conf");
    let ovl = Overlay::with_lower(&[("dwfile", dwfile()), ("etc/conf", conf_src.path())]);
    let (mut sensor, mut events) = load();
    let cg = TestCgroup::new();
    sensor
        .set_policy(cg.id(), POLICY_F_TRACKED)
        .expect("policy");
    let merged = ovl.merged.clone().into_os_string();
    let argv: Vec<&OsStr> = vec![
        OsStr::new("unshare"),
        OsStr::new("-m"),
        OsStr::new("chroot"),
        &merged,
        OsStr::new("/dwfile"),
        OsStr::new("/"),
    ];
    let (pid, st) = cg.run_args_inside(&argv);
    assert!(st.success(), "helper failed: {st:?}");
    let raw = collect(&mut events, &HashSet::from([pid]), |g| has_kinds(g, pid, 2)).await;
    let recs = decoded(&raw);
    let files = files_of(&recs, pid);

    // The read-only opens are not there; the write opens are.
    let opens: Vec<_> = files
        .iter()
        .filter(|f| f.op == FileOp::Open.raw() && f.ret >= 0)
        .collect();
    assert_eq!(opens.len(), 1, "{opens:#?}");
    let conf = opens[0];
    assert_eq!(conf.path().to_string(), "/etc/conf");
    assert!(
        conf.has(FILE_F_HAVE_FILE | FILE_F_OVERLAY | FILE_F_OVL_UPPER | FILE_F_OVL_LOWER),
        "an image file copied up: {:#x}",
        conf.flags
    );
    assert!(conf.has(FILE_F_ON_ROOT_MNT | FILE_F_IN_POLICY));
    assert!(
        conf.name1.is_empty(),
        "a successful open carries the resolved path only"
    );

    let newf = one(&files, FileOp::Openat);
    assert_eq!(newf.path().to_string(), "/newfile");
    assert!(newf.has(FILE_F_OVL_UPPER) && !newf.has(FILE_F_OVL_LOWER));
    assert_eq!(newf.mode, 0o640);
    assert_eq!(newf.op_flags & 0o1103, 0o1101, "O_WRONLY|O_CREAT|O_TRUNC");
    let o2 = one(&files, FileOp::Openat2);
    assert_eq!(o2.path().to_string(), "/dir/o2");
    assert_eq!(o2.mode, 0o644);

    let fchmod = one(&files, FileOp::Fchmod);
    assert_eq!(fchmod.path().to_string(), "/newfile");
    assert_eq!((fchmod.mode, fchmod.ret), (0o600, 0));
    let fchown = one(&files, FileOp::Fchown);
    assert_eq!((fchown.uid, fchown.gid), (1, 2));

    let mkdir = one(&files, FileOp::Mkdir);
    assert_eq!((mkdir.name1, mkdir.mode), (&b"dir"[..], 0o750));
    assert_eq!(dir1(mkdir), b"/");
    let mkdirat = one(&files, FileOp::Mkdirat);
    assert_eq!(mkdirat.name1, b"sub");
    assert_eq!(dir1(mkdirat), b"/dir", "relative to the dirfd");

    let rename = one(&files, FileOp::Rename);
    assert_eq!(
        (rename.name1, rename.name2),
        (&b"newfile"[..], &b"dir/renamed"[..])
    );
    assert_eq!((dir1(rename), dir2(rename)), (b"/".to_vec(), b"/".to_vec()));
    let renameat = one(&files, FileOp::Renameat);
    assert_eq!(dir1(renameat), b"/dir");
    assert_eq!(renameat.dirfd2, AT_FDCWD);
    assert_eq!(renameat.name2, b"etc/moved");
    assert_eq!(renameat.ret, 0);
    let renameat2 = one(&files, FileOp::Renameat2);
    assert_eq!((dir2(renameat2), renameat2.op_flags), (b"/dir".to_vec(), 1));

    let chmod = one(&files, FileOp::Chmod);
    assert_eq!((chmod.name1, chmod.mode), (&b"etc/moved"[..], 0o644));
    let fchmodat = one(&files, FileOp::Fchmodat);
    assert_eq!(
        (dir1(fchmodat), fchmodat.name1),
        (b"/dir".to_vec(), &b"sub"[..])
    );
    let chown = one(&files, FileOp::Chown);
    assert_eq!((chown.uid, chown.gid), (3, 4));
    let fchownat = one(&files, FileOp::Fchownat);
    assert_eq!(
        (fchownat.uid, fchownat.gid, dir1(fchownat)),
        (5, 6, b"/dir".to_vec())
    );
    let lchown = one(&files, FileOp::Lchown);
    assert_eq!((lchown.uid, lchown.gid, lchown.ret), (7, 8, 0));

    let symlink = one(&files, FileOp::Symlink);
    assert_eq!(symlink.name1, b"/etc/conf");
    assert!(
        symlink.dir1_raw.is_empty(),
        "a symlink target is not resolved"
    );
    assert_eq!(
        (symlink.name2, dir2(symlink)),
        (&b"dir/link"[..], b"/".to_vec())
    );
    let symlinkat = one(&files, FileOp::Symlinkat);
    assert_eq!(
        (symlinkat.name1, dir2(symlinkat)),
        (&b"../etc/conf"[..], b"/dir".to_vec())
    );
    let link = one(&files, FileOp::Link);
    assert_eq!(
        (link.name1, link.name2),
        (&b"etc/moved"[..], &b"dir/hard"[..])
    );
    let linkat = one(&files, FileOp::Linkat);
    assert_eq!(
        (dir1(linkat), dir2(linkat)),
        (b"/dir".to_vec(), b"/".to_vec())
    );
    assert_eq!(one(&files, FileOp::Unlink).name1, b"dir/hard");
    let unlinkat = one(&files, FileOp::Unlinkat);
    assert_eq!(
        (dir1(unlinkat), unlinkat.name1),
        (b"/dir".to_vec(), &b"link"[..])
    );
    let rmdir = one(&files, FileOp::Rmdir);
    assert_eq!((rmdir.name1, rmdir.ret), (&b"dir/sub"[..], 0));

    let creat = one(&files, FileOp::Creat);
    assert_eq!(
        creat.path_raw, b"bad\nname\xff\0",
        "hostile name, faithfully"
    );
    assert_eq!(creat.op_flags & 0o1103, 0o1101);
    // The 4199-byte name fails (ENAMETOOLONG); the user string is kept, truncated.
    let long = files
        .iter()
        .find(|f| f.op == FileOp::Open.raw() && f.ret < 0)
        .expect("failed open reported");
    assert_eq!(long.ret, -36);
    assert!(long.has(FILE_F_NAME1_TRUNCATED));
    assert_eq!(long.name1.len(), 4095);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_file_activity_produces_no_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
    fs::write(dir.path().join("etc/conf"), b"host\n").expect("conf");
    let conf_src = tempfile::NamedTempFile::new().expect("tempfile");
    fs::write(conf_src.path(), b"image\n").expect("conf");
    let ovl = Overlay::with_lower(&[("dwfile", dwfile()), ("etc/conf", conf_src.path())]);
    let (mut sensor, mut events) = load();
    let cg = TestCgroup::new();
    sensor
        .set_policy(cg.id(), POLICY_F_TRACKED)
        .expect("policy");
    // The same calls in this (the "host") mount namespace, even from a policed cgroup …
    let (host_pid, st) = cg.run_args_inside(&[dwfile().as_os_str(), dir.path().as_os_str()]);
    assert!(st.success(), "helper failed: {st:?}");
    // … and in a new mount namespace outside any policed cgroup (a service with private mounts).
    let merged = ovl.merged.clone().into_os_string();
    let (unknown_pid, st) = run_cmd(
        Command::new("unshare")
            .args(["-m", "chroot"])
            .arg(&merged)
            .args(["/dwfile", "/"]),
    );
    assert!(st.success(), "helper failed: {st:?}");
    let pids = HashSet::from([host_pid, unknown_pid]);
    let raw = collect(&mut events, &pids, |g| {
        has_kinds(g, host_pid, 1) && has_kinds(g, unknown_pid, 1)
    })
    .await;
    let recs = decoded(&raw);
    let files: Vec<_> = recs
        .iter()
        .filter(|r| matches!(r, Record::File(_)))
        .collect();
    assert!(files.is_empty(), "{files:#?}");
    assert!(
        recs.iter().any(|r| matches!(r, Record::Exec(_))),
        "the processes were seen"
    );
    let stats = sensor.stats().expect("stats");
    assert_eq!((stats.lost_file, stats.file_args_full), (0, 0));
}

/// `dwwrite N`: N creates+writes+closes of small files in the working directory; prints the CPU
/// time (user+system) in ns: what the file programs add to, robust to other load.
const DWWRITE_C: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    char name[32];
    if (argc > 2 && chdir(argv[2]) != 0)
        return 2;
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, "x\n", 2) != 2)
            return 1;
        close(fd);
    }
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    printf("%lld\n", (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000000LL +
                         (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1000LL);
    return 0;
}
"#;

/// The kernel-side cost of the file programs per create+write (no agent, no userspace reader
/// work): CPU time of N creates in a container-like task, sensor loaded or not, interleaved.
/// Not run by default:
/// `cargo test -p driftwatch-bpf --release --test file_ops -- --ignored --nocapture`
/// (`DW_COST_FILES`, default 20000; `DW_COST_ROUNDS`, default 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn bpf_cost_of_file_creates_in_a_container_task() {
    let n: usize = std::env::var("DW_COST_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rounds: usize = std::env::var("DW_COST_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("driftwatch-bpf-file-ops");
    fs::create_dir_all(&dir).expect("mkdir");
    let src = dir.join(format!("dwwrite.{}.c", std::process::id()));
    let bin = dir.join(format!("dwwrite.{}", std::process::id()));
    fs::write(&src, DWWRITE_C).expect("write source");
    let st = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success());
    let ovl = Overlay::with_lower(&[("dwwrite", bin.as_path())]);
    let cg = TestCgroup::new();
    let merged = ovl.merged.clone();
    let procs = cg.procs();
    let measure = |k: usize| -> f64 {
        let d = merged.join(format!("run{k}"));
        fs::create_dir_all(&d).expect("mkdir run");
        let out = Command::new("/bin/sh")
            .args(["-c", "echo $$ > \"$0\" && exec \"$@\""])
            .arg(&procs)
            .args(["unshare", "-m", "chroot"])
            .arg(&merged)
            .arg("/dwwrite")
            .arg(n.to_string())
            .arg(format!("/run{k}"))
            .output()
            .expect("run dwwrite");
        assert!(out.status.success(), "{out:?}");
        let _ = fs::remove_dir_all(&d);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<f64>()
            .expect("ns")
    };
    let mut base = Vec::new();
    let mut with = Vec::new();
    let mut k = 0;
    for _ in 0..rounds {
        k += 1;
        base.push(measure(k));
        let (mut sensor, mut events) = load();
        sensor
            .set_policy(cg.id(), POLICY_F_TRACKED)
            .expect("policy");
        let drain = tokio::spawn(async move {
            let mut files = 0usize;
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), async {
                loop {
                    let _ = events
                        .for_each_record(1024, |b| {
                            if matches!(driftwatch_abi::decode(b), Ok(Record::File(_))) {
                                files += 1;
                            }
                        })
                        .await;
                }
            })
            .await;
            files
        });
        k += 1;
        with.push(measure(k));
        drain.abort();
        let stats = sensor.stats().expect("stats");
        assert_eq!(stats.lost_file, 0);
        drop(sensor);
    }
    base.sort_by(f64::total_cmp);
    with.sort_by(f64::total_cmp);
    let (b, w) = (base[base.len() / 2], with[with.len() / 2]);
    println!(
        "file creates+writes: N={n}, {rounds} rounds, median CPU: base {:.0} ns/file, with the \
         file programs {:.0} ns/file, +{:.0} ns ({:.3}x)",
        b / n as f64,
        w / n as f64,
        (w - b) / n as f64,
        w / b
    );
}

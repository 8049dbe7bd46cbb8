//! Cross-check of `lookup` against a real overlayfs mount of a generated tree.

use super::{mount, MountGuard, Tree};
use crate::lookup::{lookup, EntryKind};
use proptest::prelude::*;
use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;

/// What the merged view shows at `path`, resolved beneath the mount without following any
/// symlink (the same contract as `lookup`).
fn merged_kind(merged: &OwnedFd, path: &[u8]) -> Option<EntryKind> {
    // IN_ROOT: `..` stops at the mount's root, like `lookup`'s.
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV;
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rfs::openat2(merged, path, flags, Mode::empty(), resolve) {
        Ok(fd) => {
            let st = rfs::fstat(&fd).expect("fstat");
            Some(match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => EntryKind::File,
                FileType::Directory => EntryKind::Dir,
                FileType::Symlink => EntryKind::Symlink,
                _ => EntryKind::Other,
            })
        }
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => None,
        Err(e) => panic!("{}: {e}", String::from_utf8_lossy(path)),
    }
}

fn build(t: &Tree) {
    let (u, l0, l1, l2) = (t.upper(), t.lower(0), t.lower(1), t.lower(2));
    // Plain image files in various layers, and shadowing between lowers.
    t.file(l2, b"/usr/bin/ls", b"l2");
    t.file(l1, b"/usr/bin/ls", b"l1");
    t.file(l2, b"/usr/bin/cat", b"l2");
    t.file(l0, b"/usr/bin/top", b"l0");
    // Added and modified.
    t.file(u, b"/tmp/dropped", b"u");
    t.file(u, b"/usr/bin/cat", b"u");
    // Whiteouts: upper, middle lower, of a directory.
    t.file(l2, b"/bin/gone", b"l2");
    t.whiteout(u, b"/bin/gone");
    t.file(l2, b"/bin/mid", b"l2");
    t.whiteout(l1, b"/bin/mid");
    t.file(u, b"/bin/mid2", b"u");
    t.file(l2, b"/bin/mid2", b"l2");
    t.whiteout(l1, b"/bin/mid2");
    t.file(l2, b"/etc/app/conf", b"l2");
    t.whiteout(l0, b"/etc/app");
    // xwhiteout in a lower layer.
    t.file(l2, b"/xw/x", b"l2");
    t.file(l2, b"/xw/keep", b"l2");
    t.xwhiteout(l1, b"/xw/x");
    // Opaque directories: upper, middle lower.
    t.file(l1, b"/srv/old", b"l1");
    t.opaque(u, b"/srv");
    t.file(u, b"/srv/new", b"u");
    t.file(l2, b"/opt/b", b"l2");
    t.file(l2, b"/opt/a", b"l2");
    t.opaque(l1, b"/opt");
    t.file(l1, b"/opt/a", b"l1");
    t.dir(l0, b"/opt");
    // Type changes: file over directory, directory over file, symlink over directory.
    t.file(l2, b"/app/tool/inner", b"l2");
    t.file(u, b"/app/tool", b"u");
    t.file(l1, b"/app/conf", b"l1");
    t.file(u, b"/app/conf/sub", b"u");
    t.file(l2, b"/lib/x/y", b"l2");
    t.symlink(l1, b"/lib/x", b"/etc");
    // Symlinks that must not be followed, a loop.
    t.symlink(u, b"/esc", b"/etc");
    t.symlink(u, b"/up", b"../../../..");
    t.symlink(l0, b"/loop", b"loop");
    t.symlink(l2, b"/usr/sbin", b"bin");
    // Odd names.
    t.file(l2, b"/odd/\xff\xfe", b"l2");
    t.file(u, b"/odd/\xff\xfe", b"u");
    t.file(u, b"/odd/new\nline", b"u");
}

const PATHS: &[&[u8]] = &[
    b"/",
    b"/usr",
    b"/usr/bin",
    b"/usr/bin/ls",
    b"/usr/bin/cat",
    b"/usr/bin/top",
    b"/usr/bin/none",
    b"/tmp/dropped",
    b"/bin/gone",
    b"/bin/mid",
    b"/bin/mid2",
    b"/etc/app",
    b"/etc/app/conf",
    b"/xw/x",
    b"/xw/keep",
    b"/srv",
    b"/srv/old",
    b"/srv/new",
    b"/opt",
    b"/opt/a",
    b"/opt/b",
    b"/app/tool",
    b"/app/tool/inner",
    b"/app/conf",
    b"/app/conf/sub",
    b"/lib/x",
    b"/lib/x/y",
    b"/esc",
    b"/esc/passwd",
    b"/up/etc/passwd",
    b"/loop",
    b"/loop/x",
    b"/usr/sbin",
    b"/usr/sbin/ls",
    b"/odd/\xff\xfe",
    b"/odd/new\nline",
    b"/nonexistent/deeper",
    b"/usr/bin/ls/",
    b"/usr/bin/ls/..",
    b"/esc/.",
    b"/esc/..",
    b"/app/tool/../conf/sub",
    b"/../usr/./bin/../bin/cat",
    b"/usr/nothing/../bin/cat",
];

#[test]
fn lookup_agrees_with_a_real_overlay_mount() {
    let Some(t) = Tree::new(3) else { return };
    build(&t);
    let merged = t.scratch.root.join("merged");
    std::fs::create_dir(&merged).unwrap();
    let lowers: Vec<String> = t
        .layers
        .lowerdirs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        t.upper().display(),
        t.layers.workdir.as_ref().unwrap().display()
    );
    let args = [
        OsString::from("-t"),
        "overlay".into(),
        "overlay".into(),
        "-o".into(),
        opts.into(),
        merged.clone().into(),
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    if let Err(e) = mount(&args) {
        eprintln!("SKIP: cannot mount overlayfs: {e}");
        return;
    }
    let _guard = MountGuard(merged.clone());
    let merged_fd = rfs::open(&merged, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();

    for path in PATHS {
        let ours = lookup(&t.layers, path).unwrap();
        assert_eq!(
            ours.merged_kind(),
            merged_kind(&merged_fd, path),
            "{}: {ours:?}",
            String::from_utf8_lossy(path)
        );
    }

    // And for arbitrary paths over the tree's names.
    let names: Vec<Vec<u8>> = [
        &b"usr"[..],
        b"bin",
        b"ls",
        b"cat",
        b"gone",
        b"mid",
        b"mid2",
        b"etc",
        b"app",
        b"conf",
        b"tool",
        b"inner",
        b"xw",
        b"x",
        b"y",
        b"keep",
        b"srv",
        b"old",
        b"new",
        b"opt",
        b"a",
        b"b",
        b"lib",
        b"esc",
        b"up",
        b"loop",
        b"sbin",
        b"tmp",
        b"dropped",
        b"odd",
        b"\xff\xfe",
        b"new\nline",
        b".",
        b"..",
        b"",
    ]
    .iter()
    .map(|n| n.to_vec())
    .collect();
    let strategy = prop::collection::vec(prop::sample::select(names), 0..5)
        .prop_map(|comps| [b"/".as_slice(), &comps.join(&b'/')].concat());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 3000,
        ..ProptestConfig::default()
    });
    runner
        .run(&strategy, |path| {
            let ours = lookup(&t.layers, &path).unwrap();
            let theirs = merged_kind(&merged_fd, &path);
            prop_assert_eq!(
                ours.merged_kind(),
                theirs,
                "{:?}: {:?}",
                OsString::from_vec(path.clone()),
                ours
            );
            Ok(())
        })
        .unwrap();
}

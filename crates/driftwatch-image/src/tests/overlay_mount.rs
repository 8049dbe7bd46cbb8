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

fn mount_overlay(t: &Tree, extra: &str) -> Option<(std::path::PathBuf, MountGuard)> {
    let merged = t.scratch.root.join("merged");
    std::fs::create_dir(&merged).unwrap();
    let lowers: Vec<String> = t
        .layers
        .lowerdirs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}{extra}",
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
        return None;
    }
    Some((merged.clone(), MountGuard(merged)))
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
    // Renamed directories (redirect_dir): absolute and relative, in the upper and in a lower
    // layer, one pointing nowhere, one hidden by a whiteout on the way.
    t.file(l2, b"/orig/tool", b"l2");
    t.file(l2, b"/orig/sub/f", b"l2");
    t.redirect(u, b"/renamed", b"/orig");
    t.whiteout(u, b"/orig");
    t.file(u, b"/renamed/new", b"u");
    t.file(l1, b"/rel/src/f", b"l1");
    t.redirect(u, b"/rel/dst", b"src");
    t.whiteout(u, b"/rel/src");
    t.file(l2, b"/deep/a/f", b"l2");
    t.redirect(l0, b"/deep/b", b"/deep/a");
    t.whiteout(l0, b"/deep/a");
    t.redirect(u, b"/nowhere", b"/no/such/dir");
    t.file(l2, b"/gone2/d/f", b"l2");
    t.whiteout(l1, b"/gone2/d");
    t.redirect(l0, b"/via", b"/gone2/d");
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
    b"/renamed",
    b"/renamed/tool",
    b"/renamed/sub/f",
    b"/renamed/new",
    b"/orig/tool",
    b"/rel/dst/f",
    b"/rel/src/f",
    b"/deep/b/f",
    b"/deep/a/f",
    b"/nowhere/x",
    b"/via/f",
];

#[test]
fn lookup_agrees_with_a_real_overlay_mount() {
    let Some(t) = Tree::new(3) else { return };
    build(&t);
    // redirect_dir=on: the renamed directories in the tree are followed.
    let Some((merged, _guard)) = mount_overlay(&t, ",redirect_dir=on") else {
        return;
    };
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

    // A renamed directory's image files are where the image has them.
    for (path, layer, at) in [
        (&b"/renamed/tool"[..], 2, "orig/tool"),
        (b"/renamed/sub/f", 2, "orig/sub/f"),
        (b"/rel/dst/f", 1, "rel/src/f"),
        (b"/deep/b/f", 2, "deep/a/f"),
    ] {
        let hit = lookup(&t.layers, path).unwrap().lower;
        let hit = hit.unwrap_or_else(|| panic!("{}: no image file", String::from_utf8_lossy(path)));
        assert_eq!(hit.layer_index, layer);
        assert_eq!(hit.path, t.lower(layer).join(at));
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
        b"orig",
        b"renamed",
        b"sub",
        b"f",
        b"rel",
        b"src",
        b"dst",
        b"deep",
        b"nowhere",
        b"via",
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

/// Directories renamed and files copied up by the kernel itself (through a real mount with
/// `redirect_dir=on,metacopy=on`): the renamed files are still the image's, and "copied up
/// unchanged" holds for a metadata-only copy-up and for a full copy-up of unchanged bytes,
/// and not for a written file.
#[test]
fn kernel_renames_and_copy_ups_are_followed() {
    let Some(t) = Tree::new(1) else { return };
    let l0 = t.lower(0);
    for name in [&b"meta"[..], b"full", b"written"] {
        t.file(
            l0,
            &[b"/app/bin/".as_slice(), name].concat(),
            b"image bytes\n",
        );
    }
    let Some((merged, guard)) = mount_overlay(&t, ",redirect_dir=on,metacopy=on") else {
        return;
    };
    std::fs::rename(merged.join("app/bin"), merged.join("app/tools")).expect("rename");
    std::fs::create_dir(merged.join("moved")).expect("mkdir");
    std::fs::rename(merged.join("app/tools"), merged.join("moved/tools")).expect("rename");
    use std::os::unix::fs::PermissionsExt as _;
    let p = merged.join("moved/tools/meta");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    drop(
        std::fs::OpenOptions::new()
            .append(true)
            .open(merged.join("moved/tools/full")),
    );
    std::fs::write(merged.join("moved/tools/written"), b"other bytes\n").expect("write");
    drop(guard);

    let upper_tools = t.upper().join("moved/tools");
    assert!(
        rfs::lgetxattr(
            &upper_tools,
            c"trusted.overlay.redirect",
            &mut [0u8; 64][..]
        )
        .is_ok(),
        "the kernel did not mark the renamed directory"
    );
    for (name, unchanged) in [("meta", true), ("full", true), ("written", false)] {
        let path = format!("/moved/tools/{name}");
        let found = lookup(&t.layers, path.as_bytes()).unwrap();
        assert_eq!(found.upper, Some(EntryKind::File), "{path}");
        let hit = found
            .lower
            .unwrap_or_else(|| panic!("{path}: no image file"));
        assert_eq!(hit.path, l0.join("app/bin").join(name), "{path}");
        let mut upper = crate::open_in_layer(t.upper(), path.as_bytes()).expect("open upper");
        let metacopy = crate::overlay::is_metacopy(
            std::os::fd::AsFd::as_fd(&upper),
            crate::XattrNamespace::Trusted,
        );
        assert_eq!(metacopy, name == "meta", "{path}: metacopy");
        assert_eq!(
            crate::copied_up_unchanged(&t.layers, path.as_bytes(), &mut upper).unwrap(),
            unchanged,
            "{path}"
        );
    }
}

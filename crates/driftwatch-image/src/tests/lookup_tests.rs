use super::{mount, rel, MountGuard, Tree};
use crate::classify::{classify, decide, ExecFacts, Rule};
use crate::lookup::{lookup, lookup_with, LookupOptions};
use crate::overlay::XattrNamespace;
use crate::{EntryKind, Hidden, HideRule, ImageError, LayerRef};
use driftwatch_event::ExeOrigin;
use std::ffi::OsStr;

/// An exec of an overlay file with an upper dentry.
fn upper_exec(path: &[u8]) -> ExecFacts<'_> {
    ExecFacts {
        in_container: true,
        memfd: false,
        on_root_mount: true,
        overlay_upper: true,
        overlay_fs: true,
        nlink: 1,
        path,
        path_reliable: true,
    }
}

fn origin(t: &Tree, path: &[u8]) -> ExeOrigin {
    classify(&upper_exec(path), Some(&t.layers)).expect("classify")
}

macro_rules! tree {
    ($n:expr) => {
        match Tree::new($n) {
            Some(t) => t,
            None => return,
        }
    };
}

#[test]
fn only_in_upper_is_added() {
    let t = tree!(2);
    t.dir(t.lower(0), b"/usr/bin");
    t.file(t.upper(), b"/tmp/x", b"\x7fELF");
    let l = lookup(&t.layers, b"/tmp/x").unwrap();
    assert_eq!(l.upper, Some(EntryKind::File));
    assert_eq!(l.lower, None);
    assert_eq!(l.hidden_by, None);
    assert!(!l.upper_origin);
    assert_eq!(origin(&t, b"/tmp/x"), ExeOrigin::Added);
    let d = decide(&upper_exec(b"/tmp/x"), Some(&t.layers));
    assert_eq!(d.rule, Rule::OnlyInUpper);
}

#[test]
fn in_lower_and_upper_is_modified() {
    let t = tree!(3);
    t.file(t.lower(2), b"/usr/bin/ls", b"bottom");
    let mid = t.file(t.lower(1), b"/usr/bin/ls", b"middle!");
    let up = t.file(t.upper(), b"/usr/bin/ls", b"evil");
    t.xattr(&up, c"trusted.overlay.origin", b"");
    let l = lookup(&t.layers, b"/usr/bin/ls").unwrap();
    assert_eq!(l.upper, Some(EntryKind::File));
    assert!(l.upper_origin);
    let hit = l.lower.expect("lower hit");
    assert_eq!(hit.layer_index, 1);
    assert_eq!(hit.kind, EntryKind::File);
    assert_eq!(hit.size, 7);
    assert_eq!(hit.path, mid);
    assert_eq!(origin(&t, b"/usr/bin/ls"), ExeOrigin::Modified);
    // Lexical `.`/`..` and duplicate slashes resolve to the same entry, never above the root.
    for p in [
        &b"/usr//bin/./ls"[..],
        b"/usr/bin/../bin/ls",
        b"/../../../usr/bin/ls",
        b"/usr/bin/.././../usr/./bin/ls",
    ] {
        assert_eq!(
            lookup(&t.layers, p).unwrap(),
            lookup(&t.layers, b"/usr/bin/ls").unwrap()
        );
    }
    // What `.`, `..` and a trailing slash step out of must be a directory.
    for p in [
        &b"/usr/lib/../bin/ls"[..],
        b"/usr/bin/ls/../ls",
        b"/usr/bin/ls/",
        b"/usr/bin/ls/.",
        b"/usr/bin/ls/..",
    ] {
        assert!(!lookup(&t.layers, p).unwrap().exists(), "{p:?}");
    }
    for p in [
        &b"/usr/bin/"[..],
        b"/usr/bin/.",
        b"/usr/bin/../../usr/bin//",
    ] {
        assert_eq!(
            lookup(&t.layers, p).unwrap().merged_kind(),
            Some(EntryKind::Dir)
        );
    }
}

#[test]
fn image_file_without_upper_entry() {
    let t = tree!(1);
    t.file(t.lower(0), b"/bin/sh", b"sh");
    let l = lookup(&t.layers, b"/bin/sh").unwrap();
    assert_eq!(l.upper, None);
    assert_eq!(l.lower.map(|h| h.layer_index), Some(0));
    // The kernel said "upper dentry" but the upper layer holds nothing there (raced).
    let d = decide(&upper_exec(b"/bin/sh"), Some(&t.layers));
    assert_eq!(
        (d.origin, d.rule),
        (ExeOrigin::Unknown, Rule::UpperMismatch)
    );
}

#[test]
fn whiteout_in_upper_hides_and_recreation() {
    let t = tree!(1);
    t.file(t.lower(0), b"/bin/gone", b"x");
    t.file(t.lower(0), b"/opt/app/run", b"old");
    t.file(t.lower(0), b"/bin/again", b"old");
    // Deleted: a whiteout in the upper layer.
    t.whiteout(t.upper(), b"/bin/gone");
    let l = lookup(&t.layers, b"/bin/gone").unwrap();
    assert!(!l.exists());
    let wh = Hidden {
        rule: HideRule::Whiteout,
        layer: LayerRef::Upper,
        depth: 2,
    };
    assert_eq!(l.hidden_by, Some(wh));
    assert_eq!(origin(&t, b"/bin/gone"), ExeOrigin::Unknown);
    // A directory deleted and re-created: overlayfs makes the new directory opaque.
    t.opaque(t.upper(), b"/opt/app");
    t.file(t.upper(), b"/opt/app/run", b"new");
    let l = lookup(&t.layers, b"/opt/app/run").unwrap();
    assert_eq!(l.lower, None);
    let op = Hidden {
        rule: HideRule::Opaque,
        layer: LayerRef::Upper,
        depth: 2,
    };
    assert_eq!(l.hidden_by, Some(op));
    assert_eq!(origin(&t, b"/opt/app/run"), ExeOrigin::Added);
    // A file deleted and re-created: overlayfs replaces the whiteout by a plain upper file
    // without `overlay.origin`. Indistinguishable from a copied-up hard link: `Modified`.
    t.file(t.upper(), b"/bin/again", b"new");
    let l = lookup(&t.layers, b"/bin/again").unwrap();
    assert!(!l.upper_origin);
    assert_eq!(origin(&t, b"/bin/again"), ExeOrigin::Modified);
}

#[test]
fn opaque_upper_dir_hides_lower_file() {
    let t = tree!(2);
    t.file(t.lower(1), b"/srv/bin/tool", b"image");
    t.opaque(t.upper(), b"/srv");
    t.file(t.upper(), b"/srv/bin/tool", b"new");
    let l = lookup(&t.layers, b"/srv/bin/tool").unwrap();
    assert_eq!(l.lower, None);
    let op = Hidden {
        rule: HideRule::Opaque,
        layer: LayerRef::Upper,
        depth: 1,
    };
    assert_eq!(l.hidden_by, Some(op));
    assert_eq!(origin(&t, b"/srv/bin/tool"), ExeOrigin::Added);
    // An opaque value other than "y" is not opaque ("x" marks xwhiteout directories).
    let t = tree!(1);
    t.file(t.lower(0), b"/srv/tool", b"image");
    t.dir(t.upper(), b"/srv");
    t.xattr(&rel(t.upper(), b"/srv"), c"trusted.overlay.opaque", b"x");
    t.file(t.upper(), b"/srv/tool", b"new");
    assert_eq!(origin(&t, b"/srv/tool"), ExeOrigin::Modified);
}

#[test]
fn user_namespace_opaque_is_honoured_by_default() {
    let t = tree!(1);
    t.file(t.lower(0), b"/srv/tool", b"image");
    t.dir(t.upper(), b"/srv");
    t.xattr(&rel(t.upper(), b"/srv"), c"user.overlay.opaque", b"y");
    t.file(t.upper(), b"/srv/tool", b"new");
    assert_eq!(origin(&t, b"/srv/tool"), ExeOrigin::Added);
    let trusted = LookupOptions {
        xattrs: XattrNamespace::Trusted,
    };
    let l = lookup_with(&t.layers, b"/srv/tool", &trusted).unwrap();
    assert!(l.lower.is_some());
}

#[test]
fn whiteout_in_middle_lower_hides_bottom() {
    let t = tree!(3);
    t.file(t.lower(2), b"/bin/x", b"bottom");
    t.whiteout(t.lower(1), b"/bin/x");
    t.dir(t.lower(0), b"/bin");
    let l = lookup(&t.layers, b"/bin/x").unwrap();
    assert!(!l.exists());
    let wh = Hidden {
        rule: HideRule::Whiteout,
        layer: LayerRef::Lower(1),
        depth: 2,
    };
    assert_eq!(l.hidden_by, Some(wh));
    t.file(t.upper(), b"/bin/x", b"new");
    let l = lookup(&t.layers, b"/bin/x").unwrap();
    assert_eq!(l.lower, None);
    assert_eq!(l.hidden_by, Some(wh));
    assert_eq!(origin(&t, b"/bin/x"), ExeOrigin::Added);
    // A whiteout of a directory hides everything beneath it.
    t.file(t.lower(2), b"/etc/app/conf", b"c");
    t.whiteout(t.lower(1), b"/etc/app");
    let l = lookup(&t.layers, b"/etc/app/conf").unwrap();
    assert!(!l.exists());
    assert_eq!(l.hidden_by.map(|h| h.rule), Some(HideRule::Whiteout));
}

#[test]
fn xwhiteout_in_lower_hides_bottom() {
    let t = tree!(2);
    t.file(t.lower(1), b"/d/x", b"bottom");
    t.xwhiteout(t.lower(0), b"/d/x");
    let l = lookup(&t.layers, b"/d/x").unwrap();
    assert!(!l.exists());
    assert_eq!(l.hidden_by.map(|h| h.rule), Some(HideRule::Whiteout));
    // A zero-size file without the xattr is an ordinary empty file.
    t.file(t.lower(0), b"/d/empty", b"");
    let l = lookup(&t.layers, b"/d/empty").unwrap();
    assert_eq!(l.lower.map(|h| (h.layer_index, h.size)), Some((0, 0)));
}

#[test]
fn opaque_dir_in_middle_lower() {
    let t = tree!(3);
    t.file(t.lower(2), b"/opt/b", b"bottom");
    t.file(t.lower(2), b"/opt/a", b"bottom");
    t.opaque(t.lower(1), b"/opt");
    t.file(t.lower(1), b"/opt/a", b"middle");
    t.dir(t.lower(0), b"/opt");
    let l = lookup(&t.layers, b"/opt/b").unwrap();
    assert!(!l.exists());
    let op = Hidden {
        rule: HideRule::Opaque,
        layer: LayerRef::Lower(1),
        depth: 1,
    };
    assert_eq!(l.hidden_by, Some(op));
    assert_eq!(
        lookup(&t.layers, b"/opt/a")
            .unwrap()
            .lower
            .unwrap()
            .layer_index,
        1
    );
    t.file(t.upper(), b"/opt/b", b"new");
    assert_eq!(origin(&t, b"/opt/b"), ExeOrigin::Added);
    t.file(t.upper(), b"/opt/a", b"new");
    assert_eq!(origin(&t, b"/opt/a"), ExeOrigin::Modified);
    // The top lower layer's opaque directory itself is found; opacity hides only below.
    let l = lookup(&t.layers, b"/opt").unwrap();
    assert_eq!(
        l.lower.map(|h| (h.layer_index, h.kind)),
        Some((0, EntryKind::Dir))
    );
}

#[test]
fn upper_file_replacing_lower_dir() {
    let t = tree!(1);
    t.file(t.lower(0), b"/srv/tool/inner", b"image");
    t.file(t.upper(), b"/srv/tool", b"new");
    let l = lookup(&t.layers, b"/srv/tool").unwrap();
    assert_eq!(l.upper, Some(EntryKind::File));
    assert_eq!(l.lower, None);
    let rep = Hidden {
        rule: HideRule::Replaced,
        layer: LayerRef::Upper,
        depth: 2,
    };
    assert_eq!(l.hidden_by, Some(rep));
    assert_eq!(origin(&t, b"/srv/tool"), ExeOrigin::Added);
    // Beneath the replacing file nothing resolves.
    let l = lookup(&t.layers, b"/srv/tool/inner").unwrap();
    assert!(!l.exists());
    assert_eq!(l.hidden_by, Some(rep));
    // The other way round: an upper directory over a lower file.
    t.file(t.lower(0), b"/x", b"file");
    t.dir(t.upper(), b"/x");
    let l = lookup(&t.layers, b"/x").unwrap();
    assert_eq!((l.upper, l.lower.is_none()), (Some(EntryKind::Dir), true));
    assert_eq!(l.hidden_by.map(|h| h.rule), Some(HideRule::Replaced));
}

#[test]
fn symlinks_in_components_are_never_followed() {
    let t = tree!(1);
    t.file(t.lower(0), b"/real/bin/tool", b"image");
    // Absolute, relative-escaping and in-layer symlinks where a directory is needed.
    t.symlink(t.upper(), b"/etc-link", b"/etc");
    t.symlink(t.upper(), b"/up", b"../../../../../../..");
    t.symlink(t.upper(), b"/alias", b"real");
    t.symlink(t.lower(0), b"/lalias", b"/real");
    for p in [
        &b"/etc-link/passwd"[..],
        b"/etc-link/hostname",
        b"/up/etc/passwd",
        b"/alias/bin/tool",
        b"/lalias/bin/tool",
    ] {
        let l = lookup(&t.layers, p).unwrap();
        assert!(!l.exists(), "{}", String::from_utf8_lossy(p));
        assert_eq!(origin(&t, p), ExeOrigin::Unknown);
    }
    // The symlink itself is an entry.
    let l = lookup(&t.layers, b"/etc-link").unwrap();
    assert_eq!(l.upper, Some(EntryKind::Symlink));
    assert_eq!(origin(&t, b"/etc-link"), ExeOrigin::Unknown);
    // A symlink in the upper layer over a lower directory hides it (non-directory).
    t.symlink(t.upper(), b"/real", b"/etc");
    let l = lookup(&t.layers, b"/real/bin/tool").unwrap();
    assert!(!l.exists());
    assert_eq!(l.hidden_by.map(|h| h.rule), Some(HideRule::Replaced));
}

#[test]
fn symlink_loop_is_not_followed() {
    let t = tree!(1);
    t.symlink(t.upper(), b"/a", b"b");
    t.symlink(t.upper(), b"/b", b"a");
    t.symlink(t.lower(0), b"/self", b"self");
    for p in [&b"/a/x"[..], b"/b/a/b/x", b"/self/self/x"] {
        assert!(!lookup(&t.layers, p).unwrap().exists());
    }
    assert_eq!(
        lookup(&t.layers, b"/self").unwrap().lower.map(|h| h.kind),
        Some(EntryKind::Symlink)
    );
}

#[test]
fn non_utf8_and_newline_names() {
    let t = tree!(1);
    let names: [&[u8]; 4] = [
        b"/bin/\xff\xfe\x80",
        b"/bin/new\nline",
        b"/dir\nwith\r\x01ctl/\xc3(x",
        b"/sp ace/t\tab",
    ];
    for n in names {
        let lower = t.file(t.lower(0), n, b"image");
        t.file(t.upper(), n, b"changed");
        let l = lookup(&t.layers, n).unwrap();
        assert_eq!(l.lower.as_ref().map(|h| &h.path), Some(&lower));
        assert_eq!(origin(&t, n), ExeOrigin::Modified);
    }
    t.file(t.upper(), b"/bin/\xfe\nnew", b"new");
    assert_eq!(origin(&t, b"/bin/\xfe\nnew"), ExeOrigin::Added);
}

#[test]
fn long_paths_are_errors_not_panics() {
    let t = tree!(1);
    let mut long = b"/".to_vec();
    long.extend(b"a/".repeat(2100));
    assert!(matches!(
        lookup(&t.layers, &long),
        Err(ImageError::PathTooLong {
            len: 4201,
            max: 4095
        })
    ));
    let comp = [b"/".as_slice(), &[b'n'; 256]].concat();
    assert!(matches!(
        lookup(&t.layers, &comp),
        Err(ImageError::NameTooLong { len: 256, .. })
    ));
    assert!(classify(&upper_exec(&long), Some(&t.layers)).is_err());
    // Just under the limits: looked up, not found.
    let mut deep = b"/a".repeat(2047);
    deep.push(b'x');
    assert_eq!(deep.len(), 4095);
    assert!(!lookup(&t.layers, &deep).unwrap().exists());
    let max_name = [b"/".as_slice(), &[b'n'; 255]].concat();
    assert!(!lookup(&t.layers, &max_name).unwrap().exists());
    // A real deep tree close to PATH_MAX resolves.
    let deep_real = [b"/d".repeat(1000).as_slice(), b"/exe"].concat();
    t.file(t.lower(0), &deep_real, b"x");
    t.file(t.upper(), &deep_real, b"y");
    assert_eq!(origin(&t, &deep_real), ExeOrigin::Modified);
}

#[test]
fn invalid_paths() {
    let t = tree!(1);
    for (p, reason) in [
        (&b"relative/x"[..], "not an absolute path"),
        (b"", "not an absolute path"),
        (b"/bin/\0x", "contains a NUL byte"),
    ] {
        match lookup(&t.layers, p) {
            Err(ImageError::InvalidPath { reason: r }) => assert_eq!(r, reason),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn root_path() {
    let t = tree!(2);
    let l = lookup(&t.layers, b"/").unwrap();
    assert_eq!(l.upper, Some(EntryKind::Dir));
    assert_eq!(l.lower.map(|h| h.layer_index), Some(0));
    assert_eq!(
        lookup(&t.layers, b"/..").unwrap().upper,
        Some(EntryKind::Dir)
    );
}

#[test]
fn removed_layer_dir_is_layer_gone() {
    let t = tree!(2);
    t.file(t.upper(), b"/x", b"x");
    std::fs::remove_dir_all(t.lower(1)).unwrap();
    match lookup(&t.layers, b"/x") {
        Err(ImageError::LayerGone { layer, path, .. }) => {
            assert_eq!(layer, LayerRef::Lower(1));
            assert_eq!(path, t.lower(1));
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(t.upper()).unwrap();
    let err = lookup(&t.layers, b"/x").unwrap_err();
    assert!(matches!(
        err,
        ImageError::LayerGone {
            layer: LayerRef::Upper,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        format!(
            "overlay upper layer directory {} is gone",
            t.upper().display()
        )
    );
    // The decision: the layers cannot be read, so the origin is unknown (never Added).
    let d = decide(&upper_exec(b"/x"), Some(&t.layers));
    assert_eq!((d.origin, d.rule), (ExeOrigin::Unknown, Rule::LookupFailed));
    assert!(matches!(d.error, Some(ImageError::LayerGone { .. })));
    assert_eq!(origin(&t, b"/x"), ExeOrigin::Unknown);
}

#[test]
fn mount_inside_a_layer_is_refused() {
    let t = tree!(1);
    let mnt = rel(t.lower(0), b"/mnt");
    std::fs::create_dir(&mnt).unwrap();
    if let Err(e) = mount(&[
        OsStr::new("-t"),
        OsStr::new("tmpfs"),
        OsStr::new("tmpfs"),
        mnt.as_os_str(),
    ]) {
        eprintln!("SKIP: {e}");
        return;
    }
    let _guard = MountGuard(mnt.clone());
    std::fs::write(mnt.join("x"), b"x").unwrap();
    for p in [&b"/mnt/x"[..], b"/mnt"] {
        let err = lookup(&t.layers, p).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::Layer {
                    layer: LayerRef::Lower(0),
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

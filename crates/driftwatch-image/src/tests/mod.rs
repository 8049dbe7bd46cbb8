//! Tests on layer trees generated in temporary directories (root required for whiteouts and
//! `trusted.*` xattrs; cases that cannot run say why on stderr and pass).

mod classify_tests;
mod hash_tests;
mod lookup_tests;
mod overlay_mount;
mod prop;

use driftwatch_event::OverlayLayers;
use rustix::fs::{self as rfs, FileType, Mode, XattrFlags, CWD};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Unmounts on drop.
pub(crate) struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let status = Command::new("umount").arg(&self.0).status();
        if !matches!(status, Ok(s) if s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

pub(crate) fn mount(args: &[&OsStr]) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn trusted_xattrs_work(dir: &Path) -> bool {
    let probe = c"trusted.overlay.driftwatch-probe";
    let ok = rfs::lsetxattr(dir, probe, b"y", XattrFlags::empty()).is_ok();
    let _ = rfs::lremovexattr(dir, probe);
    ok
}

/// A scratch directory whose filesystem accepts `trusted.*` xattrs and device nodes: a
/// temporary directory, or a fresh tmpfs mounted on it.
pub(crate) struct Scratch {
    // Field order: unmount before the directory is removed.
    _tmpfs: Option<MountGuard>,
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Scratch {
    pub fn new() -> Option<Scratch> {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        if trusted_xattrs_work(&root) {
            return Some(Scratch {
                _tmpfs: None,
                _dir: dir,
                root,
            });
        }
        let tmpfs = [
            OsStr::new("-t"),
            OsStr::new("tmpfs"),
            OsStr::new("tmpfs"),
            root.as_os_str(),
        ];
        if let Err(e) = mount(&tmpfs) {
            eprintln!("SKIP: {} refuses trusted xattrs and {e}", root.display());
            return None;
        }
        let guard = MountGuard(root.clone());
        if !trusted_xattrs_work(&root) {
            eprintln!("SKIP: neither the temp dir nor a tmpfs accepts trusted xattrs");
            return None;
        }
        Some(Scratch {
            _tmpfs: Some(guard),
            _dir: dir,
            root,
        })
    }
}

/// A generated overlay layer tree: `u` (upper), `w` (work), `l0`.. (lowers, topmost first).
pub(crate) struct Tree {
    pub layers: OverlayLayers,
    pub scratch: Scratch,
}

pub(crate) fn rel(layer: &Path, path: &[u8]) -> PathBuf {
    let mut p = layer.to_path_buf();
    for c in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        p.push(OsStr::from_bytes(c));
    }
    p
}

impl Tree {
    /// `None` (with the reason printed) when the machine cannot host the tree.
    pub fn new(nlower: usize) -> Option<Tree> {
        let scratch = Scratch::new()?;
        let mk = |name: &str| {
            let p = scratch.root.join(name);
            std::fs::create_dir(&p).expect("mkdir layer");
            p
        };
        let upper = mk("u");
        let work = mk("w");
        let lowerdirs = (0..nlower).map(|i| mk(&format!("l{i}"))).collect();
        Some(Tree {
            layers: OverlayLayers {
                lowerdirs,
                upperdir: Some(upper),
                workdir: Some(work),
            },
            scratch,
        })
    }

    pub fn upper(&self) -> &Path {
        self.layers.upperdir.as_deref().expect("upper")
    }

    pub fn lower(&self, i: usize) -> &Path {
        &self.layers.lowerdirs[i]
    }

    fn parent(layer: &Path, path: &[u8]) -> PathBuf {
        let p = rel(layer, path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir -p");
        p
    }

    pub fn file(&self, layer: &Path, path: &[u8], content: &[u8]) -> PathBuf {
        let p = Self::parent(layer, path);
        std::fs::write(&p, content).expect("write file");
        p
    }

    pub fn dir(&self, layer: &Path, path: &[u8]) {
        std::fs::create_dir_all(rel(layer, path)).expect("mkdir -p");
    }

    pub fn whiteout(&self, layer: &Path, path: &[u8]) {
        let p = Self::parent(layer, path);
        rfs::mknodat(CWD, &p, FileType::CharacterDevice, Mode::empty(), 0).expect("mknod 0:0");
    }

    /// A zero-size file with `trusted.overlay.whiteout`, its directory marked `opaque=x`.
    pub fn xwhiteout(&self, layer: &Path, path: &[u8]) {
        let p = self.file(layer, path, b"");
        self.xattr(&p, c"trusted.overlay.whiteout", b"");
        let parent = p.parent().expect("parent").to_path_buf();
        self.xattr(&parent, c"trusted.overlay.opaque", b"x");
    }

    pub fn opaque(&self, layer: &Path, path: &[u8]) {
        self.dir(layer, path);
        self.xattr(&rel(layer, path), c"trusted.overlay.opaque", b"y");
    }

    /// A directory renamed by overlayfs' `redirect_dir`: its lower content is at `from`.
    pub fn redirect(&self, layer: &Path, path: &[u8], from: &[u8]) {
        self.dir(layer, path);
        self.xattr(&rel(layer, path), c"trusted.overlay.redirect", from);
    }

    pub fn symlink(&self, layer: &Path, path: &[u8], target: &[u8]) {
        let p = Self::parent(layer, path);
        std::os::unix::fs::symlink(OsStr::from_bytes(target), p).expect("symlink");
    }

    pub fn xattr(&self, p: &Path, name: &std::ffi::CStr, value: &[u8]) {
        rfs::lsetxattr(p, name, value, XattrFlags::empty()).expect("setxattr");
    }
}

//! Where the code a container process runs came from: verdicts for executables and mapped files
//! (from the kernel's facts and the container's layers) and for script files (from the layers
//! and the container's mounts), with the content checks that keep precision:
//!
//! * an image file copied up without a content change (`chmod`, `touch`) is
//!   `copied-up-unchanged`, not drift: its bytes are compared with the lower file of the same path;
//! * a new file whose bytes equal an image file elsewhere is still drift (the path is not in the
//!   image) but the verdict names the image file it copies (`drift.image_copy_of`).
//!
//! Verdicts for kernel-identified files are cached by (container, path, device, inode, ctime): a
//! changed file gets a new ctime and a new verdict.

use driftwatch_event::{ContainerInfo, ExeFile, ExeOrigin, ExecFlags, OverlayLayers};
use driftwatch_image::{
    copied_up_unchanged, decide, lookup, open_in_layer, EntryKind, ExecFacts, ImageError,
    SizeIndex, OVERLAYFS_SUPER_MAGIC,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// procfs' superblock magic name in mountinfo.
const PROC_FSTYPE: &str = "proc";
/// Most image files indexed to find relocated copies.
const SIZE_INDEX_MAX_FILES: usize = 200_000;
/// Most same-size candidates compared per new file.
const RELOCATION_CANDIDATES: usize = 16;
/// Symlinks followed (inside the container's layers) to reach a script file.
const MAX_SYMLINK_HOPS: usize = 8;

/// The origin of one file, and for a new file the image file it is a byte-for-byte copy of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub origin: ExeOrigin,
    pub image_copy_of: Option<Arc<[u8]>>,
}

impl Verdict {
    pub fn of(origin: ExeOrigin) -> Verdict {
        Verdict {
            origin,
            image_copy_of: None,
        }
    }
}

/// The kernel's facts about one executed or mapped file.
#[derive(Debug, Clone, Copy)]
pub struct FileFacts<'a> {
    pub path: &'a [u8],
    pub file: &'a ExeFile,
    pub flags: &'a ExecFlags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    container: Arc<str>,
    path: Vec<u8>,
    dev: u32,
    ino: u64,
    ctime_sec: u64,
    ctime_nsec: u32,
    flags: u8,
}

/// A [`Key`] made of borrowed parts: the cache is looked up on every exec without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct KeyParts<'a> {
    container: &'a str,
    path: &'a [u8],
    dev: u32,
    ino: u64,
    ctime_sec: u64,
    ctime_nsec: u32,
    flags: u8,
}

trait KeyView {
    fn parts(&self) -> KeyParts<'_>;
}

impl KeyView for Key {
    fn parts(&self) -> KeyParts<'_> {
        KeyParts {
            container: &self.container,
            path: &self.path,
            dev: self.dev,
            ino: self.ino,
            ctime_sec: self.ctime_sec,
            ctime_nsec: self.ctime_nsec,
            flags: self.flags,
        }
    }
}

impl KeyView for KeyParts<'_> {
    fn parts(&self) -> KeyParts<'_> {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn KeyView + 'a> for Key {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl std::hash::Hash for dyn KeyView + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn KeyView + '_ {}

/// A container's mount points other than `/` (paths inside the container, innermost first) with
/// their filesystem types.
type MountPoints = Vec<(Vec<u8>, String)>;

/// Verdict caches and per-container knowledge (image size index, mount points).
#[derive(Debug)]
pub struct Origins {
    files: HashMap<Key, Verdict>,
    max: usize,
    size_index: HashMap<Arc<str>, Arc<SizeIndex>>,
    mounts: HashMap<(Arc<str>, u64), Arc<MountPoints>>,
}

impl Origins {
    pub fn new(max: usize) -> Origins {
        Origins {
            files: HashMap::new(),
            max,
            size_index: HashMap::new(),
            mounts: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Forget everything about a removed container.
    pub fn forget_container(&mut self, id: &str) {
        self.files.retain(|k, _| &*k.container != id);
        self.size_index.remove(id);
        self.mounts.retain(|(c, _), _| &**c != id);
    }

    /// The verdict for an executed or mapped file of a process in `container`. Errors reading
    /// the layers give [`ExeOrigin::Unknown`] (treated as drift), reported through `on_error`
    /// and not cached.
    pub fn file(
        &mut self,
        facts: FileFacts<'_>,
        container: &ContainerInfo,
        mut on_error: impl FnMut(&ImageError),
    ) -> Verdict {
        let f = facts.flags;
        if f.allowed && f.overlay_upper && !f.memfd && f.on_root_mount {
            // The kernel checked, at exec time, that this upper inode is unchanged since the
            // exec gate found its bytes equal to the image's. Userspace looking now could see
            // later writes to the file instead.
            return Verdict::of(ExeOrigin::CopiedUpUnchanged);
        }
        let parts = KeyParts {
            container: &container.id,
            path: facts.path,
            dev: facts.file.dev,
            ino: facts.file.ino,
            ctime_sec: facts.file.ctime_sec,
            ctime_nsec: facts.file.ctime_nsec,
            flags: u8::from(f.overlay_upper)
                | u8::from(f.memfd) << 1
                | u8::from(f.on_root_mount) << 2
                | u8::from(f.path_truncated || f.path_outside_root) << 3,
        };
        if let Some(v) = self.files.get(&parts as &dyn KeyView) {
            return v.clone();
        }
        let key = Key {
            container: Arc::from(container.id.as_str()),
            path: facts.path.to_vec(),
            dev: parts.dev,
            ino: parts.ino,
            ctime_sec: parts.ctime_sec,
            ctime_nsec: parts.ctime_nsec,
            flags: parts.flags,
        };
        let exec_facts = ExecFacts {
            in_container: true,
            memfd: f.memfd,
            on_root_mount: f.on_root_mount,
            overlay_upper: f.overlay_upper,
            overlay_fs: facts.file.s_magic == OVERLAYFS_SUPER_MAGIC,
            nlink: facts.file.nlink,
            path: facts.path,
            path_reliable: !(f.path_truncated || f.path_outside_root),
        };
        let layers = container.rootfs.as_ref();
        let decision = decide(&exec_facts, layers);
        if let Some(e) = &decision.error {
            on_error(e);
            return Verdict::of(ExeOrigin::Unknown);
        }
        let verdict = match (decision.origin, layers) {
            (ExeOrigin::Modified | ExeOrigin::Added, Some(layers)) => {
                self.refine_upper(&key.container, layers, facts.path, decision.origin)
            }
            (origin, _) => Verdict::of(origin),
        };
        if self.files.len() >= self.max {
            self.files.clear();
        }
        self.files.insert(key, verdict.clone());
        verdict
    }

    /// A file in the upper layer: `modified` becomes `copied-up-unchanged` when its bytes are the
    /// lower file's; `added` names the image file it copies, if any.
    fn refine_upper(
        &mut self,
        container: &Arc<str>,
        layers: &OverlayLayers,
        path: &[u8],
        origin: ExeOrigin,
    ) -> Verdict {
        let Some(upperdir) = layers.upperdir.as_deref() else {
            return Verdict::of(origin);
        };
        let Ok(mut upper) = open_in_layer(upperdir, path) else {
            return Verdict::of(origin);
        };
        if origin == ExeOrigin::Modified {
            let unchanged = copied_up_unchanged(layers, path, &mut upper).unwrap_or(false);
            return Verdict::of(if unchanged {
                ExeOrigin::CopiedUpUnchanged
            } else {
                ExeOrigin::Modified
            });
        }
        let index = self
            .size_index
            .entry(container.clone())
            .or_insert_with(|| Arc::new(SizeIndex::build(&layers.lowerdirs, SIZE_INDEX_MAX_FILES)))
            .clone();
        Verdict {
            origin,
            image_copy_of: index
                .find_same(&layers.lowerdirs, &mut upper, RELOCATION_CANDIDATES)
                .map(Arc::from),
        }
    }

    /// The verdict for a script file at absolute container path `path`, run by process `pid`
    /// (mount namespace `mntns`) of `container`. `None` when the file is not there at all (a
    /// mistyped name runs no code; a dropper that deleted its script already is not told apart).
    pub fn script(
        &mut self,
        container: &ContainerInfo,
        pid: u32,
        mntns: u64,
        path: &[u8],
    ) -> Option<Verdict> {
        let cid: Arc<str> = Arc::from(container.id.as_str());
        if let Some(fstype) = self.mount_of(&cid, pid, mntns, path) {
            return Some(Verdict::of(if fstype == PROC_FSTYPE {
                // /proc/self/fd/N, /dev/fd/N: fileless.
                ExeOrigin::Anonymous
            } else {
                ExeOrigin::WritableMount
            }));
        }
        let Some(layers) = container.rootfs.as_ref() else {
            return Some(Verdict::of(ExeOrigin::Unknown));
        };
        let mut path = path.to_vec();
        for _ in 0..=MAX_SYMLINK_HOPS {
            let Ok(l) = lookup(layers, &path) else {
                return Some(Verdict::of(ExeOrigin::Unknown));
            };
            match l.merged_kind() {
                None => return None,
                Some(EntryKind::Symlink) => match read_link(layers, &l, &path) {
                    Some(target) => path = crate::script::absolute(&target, Some(parent(&path)))?,
                    None => return Some(Verdict::of(ExeOrigin::Unknown)),
                },
                Some(EntryKind::File) => {
                    let origin = match (l.upper.is_some(), l.lower.is_some()) {
                        (false, true) => return Some(Verdict::of(ExeOrigin::Image)),
                        (true, true) => ExeOrigin::Modified,
                        _ => ExeOrigin::Added,
                    };
                    return Some(self.refine_upper(&cid, layers, &path, origin));
                }
                Some(_) => return None,
            }
        }
        Some(Verdict::of(ExeOrigin::Unknown))
    }

    /// The fstype of the mount (other than the root) that holds `path`, if any.
    fn mount_of(&mut self, cid: &Arc<str>, pid: u32, mntns: u64, path: &[u8]) -> Option<String> {
        let mounts = self
            .mounts
            .entry((cid.clone(), mntns))
            .or_insert_with(|| {
                let text =
                    std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
                let mut v: Vec<(Vec<u8>, String)> = driftwatch_runtime::mountinfo::parse(&text)
                    .into_iter()
                    .filter(|m| m.mount_point != "/")
                    .map(|m| (m.mount_point.into_bytes(), m.fstype))
                    .collect();
                // Longest mount point first: the innermost mount wins.
                v.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
                Arc::new(v)
            })
            .clone();
        mounts
            .iter()
            .find(|(mp, _)| {
                path.starts_with(mp)
                    && (path.len() == mp.len() || path.get(mp.len()) == Some(&b'/'))
            })
            .map(|(_, fstype)| fstype.clone())
    }
}

fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(0) | None => b"/",
        Some(i) => &path[..i],
    }
}

/// Read a symlink's target from the layer that provides it, without following anything.
fn read_link(
    layers: &OverlayLayers,
    l: &driftwatch_image::LayerLookup,
    path: &[u8],
) -> Option<Vec<u8>> {
    let dir: &Path = if l.upper.is_some() {
        layers.upperdir.as_deref()?
    } else {
        layers.lowerdirs.get(l.lower.as_ref()?.layer_index)?
    };
    driftwatch_image::read_link_in_layer(dir, path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftwatch_event::ExeFile;

    fn container(root: &Path, id: &str) -> ContainerInfo {
        for d in ["lower/bin", "upper/bin"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        ContainerInfo {
            id: id.to_string(),
            rootfs: Some(OverlayLayers {
                lowerdirs: vec![root.join("lower")],
                upperdir: Some(root.join("upper")),
                workdir: None,
            }),
            ..ContainerInfo::default()
        }
    }

    #[test]
    fn verdicts_are_cached_per_container_path_and_inode_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = container(dir.path(), "a");
        let b = container(dir.path(), "b");
        std::fs::write(dir.path().join("lower/bin/tool"), b"image").expect("write");
        std::fs::write(dir.path().join("upper/bin/tool"), b"image").expect("write");
        std::fs::write(dir.path().join("upper/bin/new"), b"new").expect("write");
        let file = ExeFile {
            ino: 7,
            dev: 1,
            nlink: 1,
            mode: 0o100755,
            ctime_sec: 100,
            s_magic: OVERLAYFS_SUPER_MAGIC,
            ..ExeFile::default()
        };
        let flags = ExecFlags {
            overlay_upper: true,
            on_root_mount: true,
            ..ExecFlags::default()
        };
        let mut o = Origins::new(100);
        let facts = |path: &'static [u8], file: &'static ExeFile| FileFacts {
            path,
            file,
            flags: Box::leak(Box::new(flags)),
        };
        let file: &'static ExeFile = Box::leak(Box::new(file));
        let no_err = |e: &ImageError| panic!("{e}");
        let v = o.file(facts(b"/bin/tool", file), &a, no_err);
        assert_eq!(v.origin, ExeOrigin::CopiedUpUnchanged);
        assert_eq!(o.len(), 1);
        // A hit: same verdict, nothing added, even with the files gone from the layers.
        std::fs::remove_file(dir.path().join("upper/bin/tool")).expect("rm");
        assert_eq!(o.file(facts(b"/bin/tool", file), &a, no_err), v);
        assert_eq!(o.len(), 1);
        // Another container, another path, another ctime: each its own entry.
        o.file(facts(b"/bin/tool", file), &b, |_| {});
        assert_eq!(o.len(), 2);
        assert_eq!(
            o.file(facts(b"/bin/new", file), &a, no_err).origin,
            ExeOrigin::Added
        );
        assert_eq!(o.len(), 3);
        let changed: &'static ExeFile = Box::leak(Box::new(ExeFile {
            ctime_sec: 101,
            ..*file
        }));
        o.file(facts(b"/bin/tool", changed), &a, |_| {});
        assert_eq!(o.len(), 4);
        o.forget_container("a");
        assert_eq!(o.len(), 1);
    }
}

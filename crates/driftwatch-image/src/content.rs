//! Content comparisons between a container's files and its image: is a copied-up file still the
//! image's bytes (a `chmod` or `touch` copies a file up without changing it), and is a new file a
//! copy of some image file (a relocated image binary)?
//!
//! Files are opened beneath a layer directory with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`: no name in the container can lead outside the layer. Only regular files
//! are read, never more than [`MAX_COMPARE_BYTES`].

use crate::error::ImageError;
use crate::lookup::EntryKind;
use crate::overlay::{self, XattrNamespace};
use driftwatch_event::OverlayLayers;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Files larger than this are never compared (reported as different).
pub const MAX_COMPARE_BYTES: u64 = 512 << 20;

/// Open the regular file at container path `path` (absolute, e.g. `/usr/bin/x`) inside the
/// layer directory `layer`, following no symlink at all.
pub fn open_in_layer(layer: &Path, path: &[u8]) -> Result<File, ImageError> {
    let rel = path.strip_prefix(b"/").unwrap_or(path);
    let host = layer.join(OsStr::from_bytes(rel));
    let dir = rustix::fs::open(
        layer,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ImageError::read(layer, e.into()))?;
    let fd: OwnedFd = rustix::fs::openat2(
        &dir,
        OsStr::from_bytes(rel),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| ImageError::read(&host, e.into()))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| ImageError::read(&host, e))?;
    if !meta.file_type().is_file() {
        return Err(ImageError::read(
            &host,
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    Ok(file)
}

/// The target of the symlink at container path `path` inside the layer directory `layer`; no
/// symlink on the way is followed.
pub fn read_link_in_layer(layer: &Path, path: &[u8]) -> Result<Vec<u8>, ImageError> {
    let rel = path.strip_prefix(b"/").unwrap_or(path);
    let host = layer.join(OsStr::from_bytes(rel));
    let (parent, name): (&[u8], &[u8]) = match rel.iter().rposition(|b| *b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (b".", rel),
    };
    if name.is_empty() || name == b"." || name == b".." {
        return Err(ImageError::InvalidPath {
            reason: "a symlink path must end in a name",
        });
    }
    let dir = rustix::fs::open(
        layer,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ImageError::read(layer, e.into()))?;
    let parent_fd = rustix::fs::openat2(
        &dir,
        OsStr::from_bytes(if parent.is_empty() { b"." } else { parent }),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| ImageError::read(&host, e.into()))?;
    let target = rustix::fs::readlinkat(&parent_fd, OsStr::from_bytes(name), Vec::new())
        .map_err(|e| ImageError::read(&host, e.into()))?;
    Ok(target.into_bytes())
}

/// Is `upper`, the upper-layer file at container path `path`, still its image file (a `chmod`,
/// a `touch` or an open for writing copies a file up without changing its bytes)?
///
/// The image file is what [`lookup()`](crate::lookup()) finds in the lower layers (through a
/// renamed directory too); it must be a regular file. An upper file with `overlay.metacopy` was
/// copied up for its metadata only, so its data is that file's; otherwise the bytes are compared
/// ([`same_content`]: never more than [`MAX_COMPARE_BYTES`]). This is the one definition of
/// "copied up unchanged", used by the origin verdicts and by the exec gate.
pub fn copied_up_unchanged(
    layers: &OverlayLayers,
    path: &[u8],
    upper: &mut File,
) -> Result<bool, ImageError> {
    let Some(hit) = crate::lookup(layers, path)?.lower else {
        return Ok(false);
    };
    if hit.kind != EntryKind::File {
        return Ok(false);
    }
    let Some(dir) = layers.lowerdirs.get(hit.layer_index) else {
        return Ok(false);
    };
    if overlay::is_metacopy(upper.as_fd(), XattrNamespace::default()) {
        return Ok(true);
    }
    // The file's path in its layer: not `path` when a renamed directory led there.
    let in_layer = hit.path.strip_prefix(dir).map_or_else(
        |_| path.to_vec(),
        |rel| [b"/".as_slice(), rel.as_os_str().as_bytes()].concat(),
    );
    let mut lower = open_in_layer(dir, &in_layer)?;
    same_content(upper, &mut lower).map_err(|e| ImageError::read(&hit.path, e))
}

/// True when both files hold the same bytes (sizes first, then a streaming compare).
pub fn same_content(a: &mut File, b: &mut File) -> io::Result<bool> {
    let (la, lb) = (a.metadata()?.len(), b.metadata()?.len());
    if la != lb || la > MAX_COMPARE_BYTES {
        return Ok(false);
    }
    let mut ba = vec![0u8; 64 << 10];
    let mut bb = vec![0u8; 64 << 10];
    loop {
        let n = read_full(a, &mut ba)?;
        let m = read_full(b, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Fill `buf` from `f` as far as the file goes (short reads and `EINTR` retried); returns how
/// many bytes were read, less than `buf.len()` only at end of file.
pub fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Regular files of an image's lower layers, by size: the candidates a new file could be a copy
/// of. Built once per image by walking the layer directories without following symlinks.
#[derive(Debug, Default)]
pub struct SizeIndex {
    by_size: HashMap<u64, Vec<(usize, Vec<u8>)>>,
    /// The walk stopped at the file limit: a miss is not proof.
    pub truncated: bool,
    pub files: usize,
}

impl SizeIndex {
    /// Walk `lowerdirs` (topmost first) and index their non-empty regular files, at most
    /// `max_files` of them.
    pub fn build(lowerdirs: &[PathBuf], max_files: usize) -> SizeIndex {
        let mut idx = SizeIndex::default();
        for (layer, dir) in lowerdirs.iter().enumerate() {
            let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(dir.clone(), Vec::new())];
            while let Some((host, rel)) = stack.pop() {
                let Ok(rd) = std::fs::read_dir(&host) else {
                    continue;
                };
                for ent in rd.flatten() {
                    // The dirent's type: a symlink is never followed.
                    let Ok(ft) = ent.file_type() else { continue };
                    let name = ent.file_name();
                    let mut child = rel.clone();
                    child.push(b'/');
                    child.extend_from_slice(name.as_bytes());
                    if ft.is_dir() {
                        stack.push((ent.path(), child));
                    } else if ft.is_file() {
                        let Ok(meta) = ent.metadata() else { continue };
                        if meta.len() == 0 {
                            continue;
                        }
                        if idx.files >= max_files {
                            idx.truncated = true;
                            return idx;
                        }
                        idx.files += 1;
                        idx.by_size
                            .entry(meta.len())
                            .or_default()
                            .push((layer, child));
                    }
                }
            }
        }
        idx
    }

    /// The container path of an image file with the same bytes as `file`, comparing at most
    /// `max_candidates` files of the same size.
    pub fn find_same(
        &self,
        lowerdirs: &[PathBuf],
        file: &mut File,
        max_candidates: usize,
    ) -> Option<Vec<u8>> {
        let size = file.metadata().ok()?.len();
        for (layer, rel) in self.by_size.get(&size)?.iter().take(max_candidates) {
            let Some(dir) = lowerdirs.get(*layer) else {
                continue;
            };
            let Ok(mut cand) = open_in_layer(dir, rel) else {
                continue;
            };
            if io::Seek::rewind(file).is_err() {
                return None;
            }
            if same_content(file, &mut cand).unwrap_or(false) {
                return Some(rel.clone());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn open_in_layer_never_follows_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let layer = d.path().join("layer");
        std::fs::create_dir_all(layer.join("bin")).unwrap();
        std::fs::write(layer.join("bin/ok"), b"x").unwrap();
        std::fs::write(d.path().join("outside"), b"secret").unwrap();
        symlink("../../outside", layer.join("bin/esc")).unwrap();
        symlink("/etc/passwd", layer.join("bin/abs")).unwrap();
        std::fs::create_dir(layer.join("real")).unwrap();
        std::fs::write(layer.join("real/f"), b"y").unwrap();
        symlink("real", layer.join("dirlink")).unwrap();
        assert!(open_in_layer(&layer, b"/bin/ok").is_ok());
        assert!(open_in_layer(&layer, b"/bin/esc").is_err());
        assert!(open_in_layer(&layer, b"/bin/abs").is_err());
        assert!(
            open_in_layer(&layer, b"/dirlink/f").is_err(),
            "intermediate symlink"
        );
        assert!(
            open_in_layer(&layer, b"/../outside").is_err(),
            "beneath only"
        );
        assert!(
            open_in_layer(&layer, b"/bin").is_err(),
            "directories are not files"
        );
        assert!(open_in_layer(&layer, b"/missing").is_err());
        assert_eq!(
            read_link_in_layer(&layer, b"/bin/abs").unwrap(),
            b"/etc/passwd"
        );
        assert_eq!(read_link_in_layer(&layer, b"/dirlink").unwrap(), b"real");
        assert!(
            read_link_in_layer(&layer, b"/dirlink/f").is_err(),
            "through a symlink"
        );
        assert!(
            read_link_in_layer(&layer, b"/bin/ok").is_err(),
            "not a symlink"
        );
    }

    #[test]
    fn same_content_compares_bytes() {
        let d = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut other = big.clone();
        other[150_000] ^= 1;
        std::fs::write(d.path().join("a"), &big).unwrap();
        std::fs::write(d.path().join("b"), &big).unwrap();
        std::fs::write(d.path().join("c"), &other).unwrap();
        std::fs::write(d.path().join("d"), &big[..1000]).unwrap();
        let open = |n: &str| File::open(d.path().join(n)).unwrap();
        assert!(same_content(&mut open("a"), &mut open("b")).unwrap());
        assert!(!same_content(&mut open("a"), &mut open("c")).unwrap());
        assert!(!same_content(&mut open("a"), &mut open("d")).unwrap());
    }

    #[test]
    fn size_index_finds_relocated_copies_only_by_content() {
        let d = tempfile::tempdir().unwrap();
        let (l0, l1) = (d.path().join("l0"), d.path().join("l1"));
        std::fs::create_dir_all(l0.join("usr/bin")).unwrap();
        std::fs::create_dir_all(l1.join("bin")).unwrap();
        std::fs::write(l0.join("usr/bin/tool"), b"tool-bytes").unwrap();
        std::fs::write(l1.join("bin/same-size"), b"TOOL-BYTES").unwrap();
        std::fs::write(l1.join("bin/empty"), b"").unwrap();
        symlink("/etc", l1.join("bin/etc-link")).unwrap();
        let layers = vec![l0.clone(), l1.clone()];
        let idx = SizeIndex::build(&layers, 1000);
        assert_eq!(idx.files, 2, "regular non-empty files only");
        assert!(!idx.truncated);
        std::fs::write(d.path().join("copy"), b"tool-bytes").unwrap();
        let mut copy = File::open(d.path().join("copy")).unwrap();
        assert_eq!(
            idx.find_same(&layers, &mut copy, 8),
            Some(b"/usr/bin/tool".to_vec())
        );
        std::fs::write(d.path().join("new"), b"evil-bytes").unwrap();
        let mut new = File::open(d.path().join("new")).unwrap();
        assert_eq!(idx.find_same(&layers, &mut new, 8), None);
        let small = SizeIndex::build(&layers, 1);
        assert!(small.truncated);
    }
}

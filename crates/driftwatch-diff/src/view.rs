//! Read-only views of a container's filesystem straight from its layers: the image (lower
//! layers only) or the container (upper + lower, as overlayfs merges them). Used to read
//! package databases and `/etc/passwd`; never follows a symlink (see [`driftwatch_image::overlay`]).

use driftwatch_event::OverlayLayers;
use driftwatch_image::overlay::{self, LayerDir};
use driftwatch_image::XattrNamespace;
use rustix::fs::FileType;
use std::ffi::CString;
use std::io::Read as _;
use std::os::fd::AsFd;

/// Which layers a [`View`] sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    /// The image: lower layers only.
    Image,
    /// The running container: upper over lower layers.
    Container,
}

/// A merged read-only view of some layers.
#[derive(Debug)]
pub struct View {
    roots: Vec<LayerDir>,
    xattrs: XattrNamespace,
}

impl View {
    /// Open the layer roots. Layers that cannot be opened are left out (and logged).
    pub fn open(layers: &OverlayLayers, kind: ViewKind, xattrs: XattrNamespace) -> View {
        let mut roots = Vec::new();
        if kind == ViewKind::Container {
            if let Some(up) = &layers.upperdir {
                match overlay::open_root(up, 0, true) {
                    Ok(r) => roots.push(r),
                    Err(e) => {
                        tracing::warn!(dir = %up.display(), error = %e, "cannot open upper layer")
                    }
                }
            }
        }
        for (i, p) in layers.lowerdirs.iter().enumerate() {
            match overlay::open_root(p, i + 1, false) {
                Ok(r) => roots.push(r),
                Err(e) => tracing::warn!(dir = %p.display(), error = %e, "cannot open lower layer"),
            }
        }
        View { roots, xattrs }
    }

    fn components(path: &[u8]) -> Option<Vec<CString>> {
        path.split(|b| *b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .map(|c| {
                if c == b".." {
                    None
                } else {
                    CString::new(c).ok()
                }
            })
            .collect()
    }

    fn dup_roots(&self) -> Vec<LayerDir> {
        self.roots.iter().map(LayerDir::share).collect()
    }

    /// The directory at `comps` in every contributing layer (empty: not a directory).
    fn dir_chain(&self, comps: &[CString]) -> Vec<LayerDir> {
        let mut chain = self.dup_roots();
        for c in comps {
            let p = overlay::probe(&chain, c, true, self.xattrs);
            match p.hit {
                Some(h) if overlay::is_dir(&h.st) => chain = p.dirs,
                _ => return Vec::new(),
            }
        }
        chain
    }

    /// The content of the regular file at `path`, at most `max` bytes (`None`: not a regular
    /// file, or unreadable).
    pub fn read_file(&self, path: &[u8], max: u64) -> Option<Vec<u8>> {
        let comps = Self::components(path)?;
        let (name, parent) = comps.split_last()?;
        let chain = self.dir_chain(parent);
        let hit = overlay::probe(&chain, name, false, self.xattrs).hit?;
        if FileType::from_raw_mode(hit.st.st_mode) != FileType::RegularFile {
            return None;
        }
        let fd = overlay::open_file(chain.get(hit.pos)?.fd.as_fd(), name).ok()?;
        let mut out = Vec::new();
        std::fs::File::from(fd)
            .take(max)
            .read_to_end(&mut out)
            .ok()?;
        Some(out)
    }

    /// The merged listing of the directory at `path`: names (sorted) and types.
    pub fn read_dir(&self, path: &[u8]) -> Vec<(Vec<u8>, FileType)> {
        let Some(comps) = Self::components(path) else {
            return Vec::new();
        };
        let chain = self.dir_chain(&comps);
        let mut seen = std::collections::BTreeMap::new();
        for ld in &chain {
            let Ok(names) = overlay::read_names(ld.fd.as_fd()) else {
                continue;
            };
            for n in names {
                if seen.contains_key(n.to_bytes()) {
                    continue;
                }
                let Ok(st) = rustix::fs::statat(&ld.fd, &n, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                else {
                    continue;
                };
                let ft = if overlay::is_whiteout(
                    ld.fd.as_fd(),
                    n.to_bytes(),
                    &st,
                    ld.upper,
                    self.xattrs,
                )
                .unwrap_or(false)
                {
                    None
                } else {
                    Some(FileType::from_raw_mode(st.st_mode))
                };
                seen.insert(n.into_bytes(), ft);
            }
        }
        seen.into_iter()
            .filter_map(|(n, t)| Some((n, t?)))
            .collect()
    }

    /// Does a non-whiteout entry exist at `path`?
    pub fn exists(&self, path: &[u8]) -> bool {
        let Some(comps) = Self::components(path) else {
            return false;
        };
        let Some((name, parent)) = comps.split_last() else {
            return !self.roots.is_empty();
        };
        let chain = self.dir_chain(parent);
        overlay::probe(&chain, name, false, self.xattrs)
            .hit
            .is_some()
    }
}

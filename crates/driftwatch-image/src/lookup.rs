//! Where a container path resolves in its overlay stack, decided the way overlayfs decides it.
//!
//! The layers are searched in overlayfs order: the upper directory, then the lower directories
//! topmost first. Every layer is walked one component at a time from its root with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)` on a
//! single name, so a symlink inside a layer is never followed (a symlink where a directory is
//! needed simply ends the walk in that layer, like any other non-directory), `..` never appears
//! in a name handed to the kernel, and a mount inside a layer directory is refused (overlayfs
//! itself would look beneath it).
//!
//! The overlay rules applied at every component are [`crate::overlay`]'s (whiteouts and
//! xwhiteouts, opaque directories, a non-directory hiding a directory and the reverse, renamed
//! directories): xwhiteouts are honoured in any lower layer (the kernel only honours them in
//! layers where it has seen an `overlay.opaque=x` directory), which can only turn `Modified`
//! into `Added`. A renamed directory (`overlay.redirect`, overlayfs' `redirect_dir`) takes its
//! lower content from the path it names, in the upper layer or in a lower one; an absolute
//! redirect brings every layer below back into the walk from its root, as overlayfs does, and
//! [`LowerHit::path`] is then the file's real path in its layer.
//!
//! Not modelled: data-only lower layers (`lowerdir=a::b`), casefolding, and an absolute
//! redirect below an opaque directory (overlayfs follows it; here its lower files look added,
//! which fails towards "drift").
//!
//! `.`, `..` and trailing slashes behave as in the kernel's path walk (`x/..` and `x/` need
//! `x` to be a directory), `..` stopping at the root.

use crate::error::ImageError;
use crate::overlay::{self, XattrNamespace};
use driftwatch_event::OverlayLayers;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// `PATH_MAX`, including the terminating NUL: the longest accepted path is one byte shorter.
pub const PATH_MAX: usize = 4096;
pub use crate::overlay::NAME_MAX;

/// One layer of an overlay stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerRef {
    /// The writable upper directory.
    Upper,
    /// A lower directory, by index into [`OverlayLayers::lowerdirs`] (0 is the topmost).
    Lower(usize),
}

impl fmt::Display for LayerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerRef::Upper => f.write_str("upper layer"),
            LayerRef::Lower(i) => write!(f, "lower layer {i}"),
        }
    }
}

/// The type of a directory entry found in a layer (whiteouts are never reported as entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// Device node (other than a whiteout), FIFO or socket.
    Other,
}

impl EntryKind {
    fn of(st: &Stat) -> EntryKind {
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => EntryKind::File,
            FileType::Directory => EntryKind::Dir,
            FileType::Symlink => EntryKind::Symlink,
            _ => EntryKind::Other,
        }
    }
}

/// The overlay rule that hid a lower-layer entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HideRule {
    /// A whiteout (character device 0:0, or an xwhiteout in a lower layer).
    Whiteout,
    /// An opaque directory (`overlay.opaque` = `y`).
    Opaque,
    /// A non-directory over a directory, or a directory over a non-directory.
    Replaced,
}

/// Why a lower layer's entry at the looked-up path does not show through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hidden {
    pub rule: HideRule,
    /// The layer holding the whiteout, the opaque directory or the replacing entry.
    pub layer: LayerRef,
    /// How many leading path components name the hiding entry (1 for `/opt` in `/opt/x`).
    pub depth: usize,
}

/// The entry a lower layer provides for the looked-up path.
///
/// Carries the identity a content cache needs (`dev`, `ino`, `size`, mtime) and the host path
/// to hash ([`crate::sha256_file`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LowerHit {
    /// Index into [`OverlayLayers::lowerdirs`] (0 is the topmost).
    pub layer_index: usize,
    pub kind: EntryKind,
    pub size: u64,
    /// Host path of the entry: the lower directory joined with the container path.
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
}

/// Where a container path resolves in the overlay stack.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LayerLookup {
    /// What the upper layer holds at the path (`None`: nothing, or a whiteout).
    pub upper: Option<EntryKind>,
    /// The upper entry is a regular file carrying `overlay.origin`, the kernel's copy-up mark.
    ///
    /// Informational: a copy-up of a lower file with several hard links (and no `index=on`)
    /// carries no origin either, so its absence does not prove the file was written anew.
    pub upper_origin: bool,
    /// The first lower layer that provides the path, given the whiteouts and opaque
    /// directories of the layers above it, including the upper layer's. This is what the
    /// container saw at the path before the upper layer got an entry there: the copy-up
    /// source of an upper non-directory. `None` when the upper entry and the lower entry
    /// differ in being a directory (see `hidden_by`).
    pub lower: Option<LowerHit>,
    /// When `lower` is `None` although some lower layer holds an entry at the path: the rule
    /// that hides the topmost such entry.
    pub hidden_by: Option<Hidden>,
}

impl LayerLookup {
    /// True when the path exists in the merged (container) view.
    pub fn exists(&self) -> bool {
        self.merged_kind().is_some()
    }

    /// The type of the entry in the merged view.
    pub fn merged_kind(&self) -> Option<EntryKind> {
        self.upper.or(self.lower.as_ref().map(|l| l.kind))
    }
}

/// Options of [`lookup_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LookupOptions {
    pub xattrs: XattrNamespace,
}

/// Where `path` (absolute, inside the container, raw bytes) resolves in `layers`, with the
/// default [`LookupOptions`]. See the module documentation for the rules.
pub fn lookup(layers: &OverlayLayers, path: &[u8]) -> Result<LayerLookup, ImageError> {
    lookup_with(layers, path, &LookupOptions::default())
}

/// [`lookup`] with explicit options.
pub fn lookup_with(
    layers: &OverlayLayers,
    path: &[u8],
    opts: &LookupOptions,
) -> Result<LayerLookup, ImageError> {
    let parsed = parse(path)?;
    let roots = open_roots(layers)?;
    let walk = |comps: &[&[u8]]| {
        Walk {
            roots: &roots,
            comps,
            lowerdirs: &layers.lowerdirs,
            opts,
        }
        .run()
    };
    // `x/..`, `x/.` and `x/` need `x` to be a directory, as in the kernel's path walk.
    for prefix in &parsed.must_be_dirs {
        if walk(prefix)?.merged_kind() != Some(EntryKind::Dir) {
            return Ok(LayerLookup::default());
        }
    }
    let found = walk(&parsed.comps)?;
    if parsed.final_dir && found.merged_kind() != Some(EntryKind::Dir) {
        return Ok(LayerLookup::default());
    }
    Ok(found)
}

/// A container path split into components, `.` and `..` resolved.
struct Parsed<'p> {
    comps: Vec<&'p [u8]>,
    /// The path ends in `/`, `/.` or `/..`-that-lands-here: the final entry must be a directory.
    final_dir: bool,
    /// Other prefixes that must resolve to directories (a `..` climbed out of them). Prefixes
    /// of `comps` are not listed: the walk of `comps` requires them to be directories anyway.
    must_be_dirs: Vec<Vec<&'p [u8]>>,
}

/// Split an absolute path into components, resolving `.` and `..` lexically (at the root `..`
/// stays at the root, as in a chroot). Lexical `..` is exact here because the walk only ever
/// descends through real directories, never symlinks; what a `.` or `..` needs of the entry
/// before it (being a directory) is kept in [`Parsed`]. No allocation beyond `comps` unless
/// the path holds `.`, `..` or a trailing slash.
fn parse(path: &[u8]) -> Result<Parsed<'_>, ImageError> {
    if path.len() >= PATH_MAX {
        return Err(ImageError::PathTooLong {
            len: path.len(),
            max: PATH_MAX - 1,
        });
    }
    if path.first() != Some(&b'/') {
        return Err(ImageError::InvalidPath {
            reason: "not an absolute path",
        });
    }
    if path.contains(&0) {
        return Err(ImageError::InvalidPath {
            reason: "contains a NUL byte",
        });
    }
    let mut comps = Vec::new();
    let mut checkpoints: Vec<Vec<&[u8]>> = Vec::new();
    let last = path.split(|&b| b == b'/').count() - 1;
    for (i, c) in path.split(|&b| b == b'/').enumerate() {
        match c {
            b"" if i != last => {}
            b"" | b"." | b".." => {
                if !comps.is_empty() && checkpoints.last() != Some(&comps) {
                    checkpoints.push(comps.clone());
                }
                if c == b".." {
                    comps.pop();
                }
            }
            c if c.len() > NAME_MAX => {
                return Err(ImageError::NameTooLong {
                    len: c.len(),
                    max: NAME_MAX,
                })
            }
            c => comps.push(c),
        }
    }
    let final_dir = checkpoints.contains(&comps);
    checkpoints.retain(|p| !comps.starts_with(p));
    // Each distinct prefix is walked once (`/a/b/../b/../b/..` needs one check, not many).
    checkpoints.sort_unstable();
    checkpoints.dedup();
    Ok(Parsed {
        comps,
        final_dir,
        must_be_dirs: checkpoints,
    })
}

struct Root {
    layer: LayerRef,
    fd: OwnedFd,
    dev: u64,
}

/// Open every layer's root up front, so a vanished layer is always reported, whichever
/// layers the walk would have needed.
fn open_roots(layers: &OverlayLayers) -> Result<Vec<Root>, ImageError> {
    let mut roots = Vec::with_capacity(layers.lowerdirs.len() + 1);
    let upper = layers.upperdir.iter().map(|p| (LayerRef::Upper, p));
    let lowers = (layers.lowerdirs.iter().enumerate()).map(|(i, p)| (LayerRef::Lower(i), p));
    for (layer, path) in upper.chain(lowers) {
        // The layer paths come from the host's mount table: following host symlinks is fine.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rfs::open(path, flags, Mode::empty()).map_err(|e| match e {
            Errno::NOENT | Errno::NOTDIR => ImageError::LayerGone {
                layer,
                path: path.clone(),
                source: e.into(),
            },
            e => layer_err(layer, "opening the layer directory", e),
        })?;
        let st = rfs::fstat(&fd).map_err(|e| layer_err(layer, "stat of the layer directory", e))?;
        roots.push(Root {
            layer,
            fd,
            dev: overlay::st_dev(&st),
        });
    }
    Ok(roots)
}

fn layer_err(layer: LayerRef, op: &'static str, e: Errno) -> ImageError {
    ImageError::Layer {
        layer,
        op,
        source: e.into(),
    }
}

/// A directory of one layer that is part of the merged directory being walked.
struct Live {
    /// Index into `roots`.
    slot: usize,
    /// `None` while at the layer root (use `roots[slot].fd`).
    fd: Option<OwnedFd>,
    /// This layer's own path to the directory when a renamed directory (`redirect_dir`) led
    /// the walk elsewhere than the looked-up path; `None`: the looked-up path's prefix.
    at: Option<Vec<Vec<u8>>>,
}

/// What one layer holds under one name.
enum Found {
    Missing,
    Whiteout,
    Dir(OwnedFd),
    NonDir,
}

/// Where the layers below a renamed directory look for its lower content.
enum Redirect {
    /// A name in their own parent directory.
    Relative(Vec<u8>),
    /// A path from their roots.
    Absolute(Vec<Vec<u8>>),
}

/// A redirected lookup in one layer: the directory holding the entry and the entry's name.
struct Place<'r> {
    /// `None`: the layer's current directory.
    dir: Option<OwnedFd>,
    name: &'r [u8],
    /// The entry's path in this layer.
    at: Vec<Vec<u8>>,
}

fn extend(at: &[Vec<u8>], name: &[u8]) -> Vec<Vec<u8>> {
    let mut v = Vec::with_capacity(at.len() + 1);
    v.extend(at.iter().cloned());
    v.push(name.to_vec());
    v
}

struct Walk<'a, 'p> {
    roots: &'a [Root],
    comps: &'a [&'p [u8]],
    lowerdirs: &'a [PathBuf],
    opts: &'a LookupOptions,
}

impl Walk<'_, '_> {
    fn fd<'f>(&'f self, live: &'f Live) -> BorrowedFd<'f> {
        match &live.fd {
            Some(fd) => fd.as_fd(),
            None => self.roots[live.slot].fd.as_fd(),
        }
    }

    fn run(&self) -> Result<LayerLookup, ImageError> {
        let mut live: Vec<Live> = (0..self.roots.len())
            .map(|slot| Live {
                slot,
                fd: None,
                at: None,
            })
            .collect();
        // Per root slot: the rule that cut that layer off while it was still part of the walk.
        let mut cut: Vec<Option<Hidden>> = vec![None; self.roots.len()];

        let Some((last, dirs)) = self.comps.split_last() else {
            return self.root_lookup();
        };

        for (i, name) in dirs.iter().enumerate() {
            let depth = i + 1;
            let mut next = Vec::with_capacity(live.len());
            // Set by a renamed directory: where the layers below it look instead of `name`.
            let mut redirect: Option<Redirect> = None;
            let mut pos = 0;
            while pos < live.len() {
                let entry = &live[pos];
                let root = &self.roots[entry.slot];
                let layer = root.layer;
                let below = pos + 1 < live.len();
                let (found, at) = match &redirect {
                    None => (
                        self.probe_dir(root, self.fd(entry), name)?,
                        entry.at.as_deref().map(|a| extend(a, name)),
                    ),
                    Some(r) => match self.redirected(entry, r, &self.comps[..i])? {
                        Err(found) => (found, None),
                        Ok(place) => {
                            let dirfd = place.dir.as_ref().map_or(self.fd(entry), AsFd::as_fd);
                            (self.probe_dir(root, dirfd, place.name)?, Some(place.at))
                        }
                    },
                };
                let slot = entry.slot;
                let stop = match found {
                    Found::Missing => {
                        pos += 1;
                        continue;
                    }
                    Found::Dir(fd) => {
                        let opaque = below && self.is_opaque(layer, &fd)?;
                        if !opaque && slot + 1 < self.roots.len() {
                            if let Some(r) = self.redirect_of(&fd) {
                                redirect = Some(r);
                            }
                        }
                        next.push(Live {
                            slot,
                            fd: Some(fd),
                            at,
                        });
                        opaque.then_some(HideRule::Opaque)
                    }
                    Found::Whiteout => Some(HideRule::Whiteout),
                    Found::NonDir => Some(HideRule::Replaced),
                };
                if let Some(rule) = stop {
                    let hidden = Hidden { rule, layer, depth };
                    for e in &live[pos + 1..] {
                        cut[e.slot] = Some(hidden);
                    }
                    break;
                }
                if matches!(redirect, Some(Redirect::Absolute(_))) {
                    self.restart_below_from_roots(&mut live, pos);
                }
                pos += 1;
            }
            if next.is_empty() {
                // Nothing, or a non-directory, where a directory is needed.
                return Ok(LayerLookup {
                    hidden_by: self.hidden_below(&cut)?,
                    ..LayerLookup::default()
                });
            }
            live = next;
        }

        let depth = self.comps.len();
        let parent = &self.comps[..depth - 1];
        let mut out = LayerLookup::default();
        // The upper entry is a directory / a non-directory.
        let mut upper_dir = false;
        let mut upper_nondir = false;
        let mut redirect: Option<Redirect> = None;
        let mut pos = 0;
        while pos < live.len() {
            let entry = &live[pos];
            pos += 1;
            let root = &self.roots[entry.slot];
            let layer = root.layer;
            let below = pos < live.len();
            let (place_dir, name, at) = match &redirect {
                None => (None, *last, entry.at.as_deref().map(|a| extend(a, last))),
                Some(r) => match self.redirected(entry, r, parent)? {
                    Err(Found::Missing | Found::Dir(_)) => continue,
                    Err(found) => {
                        let rule = match found {
                            Found::Whiteout => HideRule::Whiteout,
                            _ => HideRule::Replaced,
                        };
                        let hidden = Hidden { rule, layer, depth };
                        for e in &live[pos..] {
                            cut[e.slot] = Some(hidden);
                        }
                        break;
                    }
                    Ok(place) => (place.dir, place.name, Some(place.at)),
                },
            };
            let dirfd = place_dir.as_ref().map_or(self.fd(entry), AsFd::as_fd);
            let st = match rfs::statat(dirfd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(layer_err(layer, "stat", e)),
            };
            if overlay::st_dev(&st) != root.dev {
                return Err(layer_err(
                    layer,
                    "lookup (mount point inside layer)",
                    Errno::XDEV,
                ));
            }
            let kind = EntryKind::of(&st);
            let mut stop = None;
            if self.is_whiteout(layer, dirfd, name, &st)? {
                stop = Some(Hidden {
                    rule: HideRule::Whiteout,
                    layer,
                    depth,
                });
            } else if let LayerRef::Lower(layer_index) = layer {
                let replaced = if kind == EntryKind::Dir {
                    upper_nondir
                } else {
                    upper_dir
                };
                if replaced {
                    out.hidden_by = Some(Hidden {
                        rule: HideRule::Replaced,
                        layer: LayerRef::Upper,
                        depth,
                    });
                } else {
                    let (mtime_sec, mtime_nsec) = overlay::st_mtime(&st);
                    out.lower = Some(LowerHit {
                        layer_index,
                        kind,
                        size: overlay::st_size(&st),
                        path: self.host_path(layer_index, at.as_deref()),
                        dev: overlay::st_dev(&st),
                        ino: overlay::st_ino(&st),
                        mtime_sec,
                        mtime_nsec,
                    });
                }
                return Ok(out);
            } else {
                out.upper = Some(kind);
                if kind == EntryKind::Dir {
                    upper_dir = true;
                    if entry.slot + 1 < self.roots.len() {
                        let (opaque, renamed) = self.dir_marks_at(layer, dirfd, name)?;
                        if opaque && below {
                            stop = Some(Hidden {
                                rule: HideRule::Opaque,
                                layer,
                                depth,
                            });
                        }
                        redirect = renamed;
                    }
                } else {
                    // overlayfs stops here; keep looking for the entry this one shadows.
                    upper_nondir = true;
                    out.upper_origin =
                        kind == EntryKind::File && self.has_origin(layer, dirfd, name)?;
                }
            }
            if let Some(hidden) = stop {
                for e in &live[pos..] {
                    cut[e.slot] = Some(hidden);
                }
                break;
            }
            if matches!(redirect, Some(Redirect::Absolute(_))) {
                self.restart_below_from_roots(&mut live, pos - 1);
            }
        }
        out.hidden_by = self.hidden_below(&cut)?;
        Ok(out)
    }

    /// The path `/`: every layer's root, merged (overlayfs ignores `opaque` on the upper root).
    fn root_lookup(&self) -> Result<LayerLookup, ImageError> {
        let mut out = LayerLookup::default();
        for root in self.roots {
            match root.layer {
                LayerRef::Upper => out.upper = Some(EntryKind::Dir),
                LayerRef::Lower(layer_index) => {
                    let st = rfs::fstat(&root.fd).map_err(|e| layer_err(root.layer, "stat", e))?;
                    let (mtime_sec, mtime_nsec) = overlay::st_mtime(&st);
                    out.lower = Some(LowerHit {
                        layer_index,
                        kind: EntryKind::Dir,
                        size: overlay::st_size(&st),
                        path: self.lowerdirs[layer_index].clone(),
                        dev: overlay::st_dev(&st),
                        ino: overlay::st_ino(&st),
                        mtime_sec,
                        mtime_nsec,
                    });
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Host path of the entry in a lower layer: its path in that layer (`at`, when a renamed
    /// directory led there) or the looked-up path.
    fn host_path(&self, layer_index: usize, at: Option<&[Vec<u8>]>) -> PathBuf {
        let mut p = self.lowerdirs[layer_index].clone();
        match at {
            Some(at) => at.iter().for_each(|c| p.push(OsStr::from_bytes(c))),
            None => self.comps.iter().for_each(|c| p.push(OsStr::from_bytes(c))),
        }
        p
    }

    /// Where a layer below a renamed directory holds that directory's lower content: the
    /// directory to look in and the name, or what ended the search on the way (an absolute
    /// redirect walks from the layer root; a whiteout or non-directory on the way hides it).
    /// `parent`: the looked-up path of the renamed directory's parent.
    fn redirected<'r>(
        &self,
        entry: &Live,
        r: &'r Redirect,
        parent: &[&[u8]],
    ) -> Result<Result<Place<'r>, Found>, ImageError> {
        match r {
            Redirect::Relative(name) => {
                let at = match &entry.at {
                    Some(a) => extend(a, name),
                    None => {
                        let mut v: Vec<Vec<u8>> = parent.iter().map(|c| c.to_vec()).collect();
                        v.push(name.clone());
                        v
                    }
                };
                Ok(Ok(Place {
                    dir: None,
                    name,
                    at,
                }))
            }
            Redirect::Absolute(comps) => {
                let root = &self.roots[entry.slot];
                let Some((name, dirs)) = comps.split_last() else {
                    return Ok(Err(Found::Missing));
                };
                let mut dir: Option<OwnedFd> = None;
                for c in dirs {
                    let dirfd = dir.as_ref().map_or(root.fd.as_fd(), AsFd::as_fd);
                    match self.probe_dir(root, dirfd, c)? {
                        Found::Dir(fd) => dir = Some(fd),
                        other => return Ok(Err(other)),
                    }
                }
                // At the root: open it again, as the entry's own fd is its current directory.
                let dir = match dir {
                    Some(d) => d,
                    None => rustix::io::dup(&root.fd)
                        .map_err(|e| layer_err(root.layer, "duplicating a descriptor", e))?,
                };
                Ok(Ok(Place {
                    dir: Some(dir),
                    name,
                    at: comps.clone(),
                }))
            }
        }
    }

    /// After an absolute redirect at `live[pos]`: every layer below it takes part again, from
    /// its root, whether or not it held the renamed directory's parent (overlayfs restarts
    /// from the root's layer stack).
    fn restart_below_from_roots(&self, live: &mut Vec<Live>, pos: usize) {
        let slot = live[pos].slot;
        live.truncate(pos + 1);
        live.extend((slot + 1..self.roots.len()).map(|slot| Live {
            slot,
            fd: None,
            at: Some(Vec::new()),
        }));
    }

    /// The redirect of a directory of a layer with layers below it.
    fn redirect_of(&self, dir: &OwnedFd) -> Option<Redirect> {
        let value = overlay::redirect(dir.as_fd(), self.opts.xattrs)?;
        // A value overlayfs would refuse is ignored: the directory's content is then its own
        // (its lower files look added, which fails towards "drift").
        let mut target = overlay::redirect_target(&value, &[])?;
        if value.starts_with(b"/") {
            Some(Redirect::Absolute(target))
        } else {
            target.pop().map(Redirect::Relative)
        }
    }

    /// Open `name` in the layer directory `dirfd` as a directory, or say what else it is.
    fn probe_dir(
        &self,
        root: &Root,
        dirfd: BorrowedFd<'_>,
        name: &[u8],
    ) -> Result<Found, ImageError> {
        match overlay::open_dir(dirfd, name, root.dev) {
            Ok(fd) => Ok(Found::Dir(fd)),
            Err(Errno::NOENT) => Ok(Found::Missing),
            // Not a directory, or a symlink (never followed): find out which.
            Err(Errno::NOTDIR | Errno::LOOP) => {
                let st = match rfs::statat(dirfd, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(Errno::NOENT) => return Ok(Found::Missing),
                    Err(e) => return Err(layer_err(root.layer, "stat", e)),
                };
                if self.is_whiteout(root.layer, dirfd, name, &st)? {
                    Ok(Found::Whiteout)
                } else if EntryKind::of(&st) == EntryKind::Dir {
                    Err(layer_err(
                        root.layer,
                        "lookup (entry changed during lookup)",
                        Errno::AGAIN,
                    ))
                } else {
                    Ok(Found::NonDir)
                }
            }
            Err(e @ Errno::XDEV) => Err(layer_err(
                root.layer,
                "lookup (mount point inside layer)",
                e,
            )),
            Err(e) => Err(layer_err(root.layer, "opening a directory", e)),
        }
    }

    fn is_whiteout(
        &self,
        layer: LayerRef,
        dirfd: BorrowedFd<'_>,
        name: &[u8],
        st: &Stat,
    ) -> Result<bool, ImageError> {
        let upper = layer == LayerRef::Upper;
        overlay::is_whiteout(dirfd, name, st, upper, self.opts.xattrs)
            .map_err(|e| layer_err(layer, "reading an overlay xattr", e))
    }

    fn has_origin(
        &self,
        layer: LayerRef,
        dirfd: BorrowedFd<'_>,
        name: &[u8],
    ) -> Result<bool, ImageError> {
        overlay::has_origin(dirfd, name, self.opts.xattrs)
            .map_err(|e| layer_err(layer, "reading an overlay xattr", e))
    }

    fn is_opaque(&self, layer: LayerRef, dir: &OwnedFd) -> Result<bool, ImageError> {
        overlay::is_opaque(dir.as_fd(), self.opts.xattrs)
            .map_err(|e| layer_err(layer, "reading overlay.opaque", e))
    }

    /// Whether the directory `name` of `dirfd` is opaque, and where it was renamed from.
    fn dir_marks_at(
        &self,
        layer: LayerRef,
        dirfd: BorrowedFd<'_>,
        name: &[u8],
    ) -> Result<(bool, Option<Redirect>), ImageError> {
        let oflags = OFlags::RDONLY
            | OFlags::DIRECTORY
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NOCTTY;
        match rfs::openat(dirfd, name, oflags, Mode::empty()) {
            Ok(fd) => {
                if self.is_opaque(layer, &fd)? {
                    Ok((true, None))
                } else {
                    Ok((false, self.redirect_of(&fd)))
                }
            }
            // Replaced by a non-directory since the stat: no opaque directory any more.
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => Ok((false, None)),
            Err(e) => Err(layer_err(layer, "opening a directory", e)),
        }
    }

    /// After the walk found no lower entry: the rule that cut off the topmost lower layer that
    /// does hold an entry at the path, if any.
    fn hidden_below(&self, cut: &[Option<Hidden>]) -> Result<Option<Hidden>, ImageError> {
        for (slot, hidden) in cut.iter().enumerate() {
            if let Some(hidden) = hidden {
                if self.raw_exists(slot)? {
                    return Ok(Some(*hidden));
                }
            }
        }
        Ok(None)
    }

    /// Does this one layer, on its own, hold a (non-whiteout) entry at the looked-up path?
    fn raw_exists(&self, slot: usize) -> Result<bool, ImageError> {
        let root = &self.roots[slot];
        let Some((last, dirs)) = self.comps.split_last() else {
            return Ok(true);
        };
        let mut dir: Option<OwnedFd> = None;
        for name in dirs {
            let dirfd = dir.as_ref().map_or(root.fd.as_fd(), AsFd::as_fd);
            match self.probe_dir(root, dirfd, name)? {
                Found::Dir(fd) => dir = Some(fd),
                Found::Missing | Found::Whiteout | Found::NonDir => return Ok(false),
            }
        }
        let dirfd = dir.as_ref().map_or(root.fd.as_fd(), AsFd::as_fd);
        match rfs::statat(dirfd, *last, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(!self.is_whiteout(root.layer, dirfd, last, &st)?),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(layer_err(root.layer, "stat", e)),
        }
    }
}

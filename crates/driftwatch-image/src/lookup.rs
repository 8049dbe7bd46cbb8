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
//! Overlay rules applied at every component (`fs/overlayfs/namei.c`, `ovl_lookup_single`):
//!
//! * a whiteout hides the name in every layer below it. A whiteout is a character device 0:0
//!   in any layer, or — in a lower layer only — a zero-size regular file with the
//!   `overlay.whiteout` xattr (an "xwhiteout"; the kernel only honours those in layers it has
//!   seen an `overlay.opaque=x` directory in; this module honours them in any lower layer,
//!   which can only turn `Modified` into `Added`);
//! * a directory with `overlay.opaque` = `y` hides everything below it in lower layers
//!   (the value `x` is *not* opaque: it marks a directory holding xwhiteouts);
//! * a non-directory hides everything of the same name below it, and a directory found above
//!   ignores (and stops at) a non-directory below it.
//!
//! Xattrs are looked up in the `trusted.overlay.` namespace, the `user.overlay.` namespace
//! (overlay mounted with `userxattr`), or both ([`XattrNamespace`]). Honouring both, the default,
//! can only hide more lower-layer entries, i.e. fail towards "drift".
//!
//! Not modelled: `redirect_dir` (a renamed directory looks like a new one: its files are
//! `Added`), metacopy (an upper metacopy file is reported like any upper file; its data lives
//! in the lower layer), data-only lower layers (`lowerdir=a::b`), and casefolding.
//!
//! `.`, `..` and trailing slashes behave as in the kernel's path walk (`x/..` and `x/` need
//! `x` to be a directory), `..` stopping at the root.

use crate::error::ImageError;
use driftwatch_event::OverlayLayers;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use std::ffi::{CStr, OsStr};
use std::fmt;
use std::io::{self, Write as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// `PATH_MAX`, including the terminating NUL: the longest accepted path is one byte shorter.
pub const PATH_MAX: usize = 4096;
/// `NAME_MAX`: the longest accepted path component.
pub const NAME_MAX: usize = 255;

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

/// Which xattr namespace holds overlayfs' private xattrs in the layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XattrNamespace {
    /// `trusted.overlay.*` (the default overlay mount).
    Trusted,
    /// `user.overlay.*` (an overlay mounted with `userxattr`, e.g. rootless).
    User,
    /// Either: a whiteout or opaque mark in either namespace hides lower entries.
    #[default]
    Both,
}

impl XattrNamespace {
    fn names(self, pair: &'static [&'static CStr; 2]) -> &'static [&'static CStr] {
        match self {
            XattrNamespace::Trusted => &pair[..1],
            XattrNamespace::User => &pair[1..],
            XattrNamespace::Both => &pair[..],
        }
    }
}

static OPAQUE: [&CStr; 2] = [c"trusted.overlay.opaque", c"user.overlay.opaque"];
static WHITEOUT: [&CStr; 2] = [c"trusted.overlay.whiteout", c"user.overlay.whiteout"];
static ORIGIN: [&CStr; 2] = [c"trusted.overlay.origin", c"user.overlay.origin"];

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
            dev: stat_dev(&st),
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

// `Stat` field types differ between architectures; these keep the casts in one place.
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn stat_dev(st: &Stat) -> u64 {
    st.st_dev as u64
}
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn stat_rdev(st: &Stat) -> u64 {
    st.st_rdev as u64
}
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn stat_ino(st: &Stat) -> u64 {
    st.st_ino as u64
}
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn stat_size(st: &Stat) -> u64 {
    u64::try_from(st.st_size as i64).unwrap_or(0)
}
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn stat_mtime(st: &Stat) -> (i64, u32) {
    (st.st_mtime as i64, st.st_mtime_nsec as u32)
}

/// A directory of one layer that is part of the merged directory being walked.
struct Live {
    /// Index into `roots`.
    slot: usize,
    /// `None` while at the layer root (use `roots[slot].fd`).
    fd: Option<OwnedFd>,
}

/// What one layer holds under one name.
enum Probe {
    Missing,
    Whiteout,
    Dir(OwnedFd),
    NonDir,
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
            .map(|slot| Live { slot, fd: None })
            .collect();
        // Per root slot: the rule that cut that layer off while it was still part of the walk.
        let mut cut: Vec<Option<Hidden>> = vec![None; self.roots.len()];

        let Some((last, dirs)) = self.comps.split_last() else {
            return self.root_lookup();
        };

        for (i, name) in dirs.iter().enumerate() {
            let depth = i + 1;
            let mut next = Vec::with_capacity(live.len());
            for (pos, entry) in live.iter().enumerate() {
                let layer = self.roots[entry.slot].layer;
                let below = pos + 1 < live.len();
                let stop = match self.probe_dir(entry, name)? {
                    Probe::Missing => continue,
                    Probe::Dir(fd) => {
                        let opaque = below && self.is_opaque(layer, &fd)?;
                        next.push(Live {
                            slot: entry.slot,
                            fd: Some(fd),
                        });
                        opaque.then_some(HideRule::Opaque)
                    }
                    Probe::Whiteout => Some(HideRule::Whiteout),
                    Probe::NonDir => Some(HideRule::Replaced),
                };
                if let Some(rule) = stop {
                    let hidden = Hidden { rule, layer, depth };
                    for e in &live[pos + 1..] {
                        cut[e.slot] = Some(hidden);
                    }
                    break;
                }
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
        let mut out = LayerLookup::default();
        // The upper entry is a directory / a non-directory.
        let mut upper_dir = false;
        let mut upper_nondir = false;
        for (pos, entry) in live.iter().enumerate() {
            let root = &self.roots[entry.slot];
            let layer = root.layer;
            let below = pos + 1 < live.len();
            let dirfd = self.fd(entry);
            let st = match rfs::statat(dirfd, *last, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(layer_err(layer, "stat", e)),
            };
            if stat_dev(&st) != root.dev {
                return Err(layer_err(
                    layer,
                    "lookup (mount point inside layer)",
                    Errno::XDEV,
                ));
            }
            let kind = EntryKind::of(&st);
            let mut stop = None;
            if self.is_whiteout(layer, dirfd, last, &st)? {
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
                    let (mtime_sec, mtime_nsec) = stat_mtime(&st);
                    out.lower = Some(LowerHit {
                        layer_index,
                        kind,
                        size: stat_size(&st),
                        path: self.host_path(layer_index),
                        dev: stat_dev(&st),
                        ino: stat_ino(&st),
                        mtime_sec,
                        mtime_nsec,
                    });
                }
                return Ok(out);
            } else {
                out.upper = Some(kind);
                if kind == EntryKind::Dir {
                    upper_dir = true;
                    if below && self.is_opaque_at(layer, dirfd, last)? {
                        stop = Some(Hidden {
                            rule: HideRule::Opaque,
                            layer,
                            depth,
                        });
                    }
                } else {
                    // overlayfs stops here; keep looking for the entry this one shadows.
                    upper_nondir = true;
                    out.upper_origin =
                        kind == EntryKind::File && self.has_origin(layer, dirfd, last)?;
                }
            }
            if let Some(hidden) = stop {
                for e in &live[pos + 1..] {
                    cut[e.slot] = Some(hidden);
                }
                break;
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
                    let (mtime_sec, mtime_nsec) = stat_mtime(&st);
                    out.lower = Some(LowerHit {
                        layer_index,
                        kind: EntryKind::Dir,
                        size: stat_size(&st),
                        path: self.lowerdirs[layer_index].clone(),
                        dev: stat_dev(&st),
                        ino: stat_ino(&st),
                        mtime_sec,
                        mtime_nsec,
                    });
                    break;
                }
            }
        }
        Ok(out)
    }

    fn host_path(&self, layer_index: usize) -> PathBuf {
        let mut p = self.lowerdirs[layer_index].clone();
        for c in self.comps {
            p.push(OsStr::from_bytes(c));
        }
        p
    }

    /// Open `name` in the layer directory as a directory, or say what else it is.
    fn probe_dir(&self, entry: &Live, name: &[u8]) -> Result<Probe, ImageError> {
        let root = &self.roots[entry.slot];
        let dirfd = self.fd(entry);
        let oflags = OFlags::RDONLY
            | OFlags::DIRECTORY
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NOCTTY;
        let resolve = ResolveFlags::BENEATH
            | ResolveFlags::NO_SYMLINKS
            | ResolveFlags::NO_MAGICLINKS
            | ResolveFlags::NO_XDEV;
        let mut attempts = 0;
        let opened = loop {
            match rfs::openat2(dirfd, name, oflags, Mode::empty(), resolve) {
                Err(Errno::AGAIN) if attempts < 3 => attempts += 1,
                Err(Errno::NOSYS) => break open_dir_fallback(dirfd, name, root.dev),
                r => break r,
            }
        };
        match opened {
            Ok(fd) => Ok(Probe::Dir(fd)),
            Err(Errno::NOENT) => Ok(Probe::Missing),
            // Not a directory, or a symlink (never followed): find out which.
            Err(Errno::NOTDIR | Errno::LOOP) => {
                let st = match rfs::statat(dirfd, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(Errno::NOENT) => return Ok(Probe::Missing),
                    Err(e) => return Err(layer_err(root.layer, "stat", e)),
                };
                if self.is_whiteout(root.layer, dirfd, name, &st)? {
                    Ok(Probe::Whiteout)
                } else if EntryKind::of(&st) == EntryKind::Dir {
                    Err(layer_err(
                        root.layer,
                        "lookup (entry changed during lookup)",
                        Errno::AGAIN,
                    ))
                } else {
                    Ok(Probe::NonDir)
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
        match FileType::from_raw_mode(st.st_mode) {
            FileType::CharacterDevice => Ok(stat_rdev(st) == 0),
            FileType::RegularFile if layer != LayerRef::Upper && stat_size(st) == 0 => {
                let names = self.opts.xattrs.names(&WHITEOUT);
                xattr_present_at(layer, dirfd, name, names)
            }
            _ => Ok(false),
        }
    }

    fn has_origin(
        &self,
        layer: LayerRef,
        dirfd: BorrowedFd<'_>,
        name: &[u8],
    ) -> Result<bool, ImageError> {
        xattr_present_at(layer, dirfd, name, self.opts.xattrs.names(&ORIGIN))
    }

    fn is_opaque(&self, layer: LayerRef, dir: &OwnedFd) -> Result<bool, ImageError> {
        for xname in self.opts.xattrs.names(&OPAQUE) {
            // overlayfs reads exactly one byte: a longer value (ERANGE) is not opaque.
            let mut val = [0u8; 1];
            match rfs::fgetxattr(dir, *xname, &mut val[..]) {
                Ok(1) if val[0] == b'y' => return Ok(true),
                Ok(_) | Err(Errno::NODATA | Errno::NOTSUP | Errno::RANGE) => {}
                Err(e) => return Err(layer_err(layer, "reading overlay.opaque", e)),
            }
        }
        Ok(false)
    }

    fn is_opaque_at(
        &self,
        layer: LayerRef,
        dirfd: BorrowedFd<'_>,
        name: &[u8],
    ) -> Result<bool, ImageError> {
        let oflags = OFlags::RDONLY
            | OFlags::DIRECTORY
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NOCTTY;
        match rfs::openat(dirfd, name, oflags, Mode::empty()) {
            Ok(fd) => self.is_opaque(layer, &fd),
            // Replaced by a non-directory since the stat: no opaque directory any more.
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => Ok(false),
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

    /// Does this one layer, on its own, hold a (non-whiteout) entry at the path?
    fn raw_exists(&self, slot: usize) -> Result<bool, ImageError> {
        let root = &self.roots[slot];
        let Some((last, dirs)) = self.comps.split_last() else {
            return Ok(true);
        };
        let mut entry = Live { slot, fd: None };
        for name in dirs {
            match self.probe_dir(&entry, name)? {
                Probe::Dir(fd) => entry.fd = Some(fd),
                Probe::Missing | Probe::Whiteout | Probe::NonDir => return Ok(false),
            }
        }
        let dirfd = self.fd(&entry);
        match rfs::statat(dirfd, *last, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(!self.is_whiteout(root.layer, dirfd, last, &st)?),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(layer_err(root.layer, "stat", e)),
        }
    }
}

/// `openat2` is missing (kernel < 5.6, or filtered): `openat(O_NOFOLLOW)` on a single name is
/// just as safe; mount crossing is detected by comparing device numbers.
fn open_dir_fallback(dirfd: BorrowedFd<'_>, name: &[u8], dev: u64) -> rustix::io::Result<OwnedFd> {
    let oflags =
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = rfs::openat(dirfd, name, oflags, Mode::empty())?;
    if stat_dev(&rfs::fstat(&fd)?) != dev {
        return Err(Errno::XDEV);
    }
    Ok(fd)
}

/// Is any of `xnames` set on the entry `name` of directory `dirfd`, without following it?
///
/// There is no `getxattrat` in rustix and `fgetxattr` refuses `O_PATH` descriptors, so this
/// goes through `/proc/self/fd/<dirfd>/<name>`: the magic link leads to the directory already
/// opened, and `lgetxattr` does not follow `name`. No file is opened (a device node never is).
fn xattr_present_at(
    layer: LayerRef,
    dirfd: BorrowedFd<'_>,
    name: &[u8],
    xnames: &[&CStr],
) -> Result<bool, ImageError> {
    // "/proc/self/fd/" + i32 + "/" + NAME_MAX + NUL
    let mut buf = [0u8; 14 + 11 + 1 + NAME_MAX + 1];
    let len = {
        let mut w = &mut buf[..];
        let room = w.len();
        // Cannot fail: the buffer is sized for the longest fd number and name.
        write!(w, "/proc/self/fd/{}/", dirfd.as_raw_fd())
            .and_then(|()| w.write_all(name))
            .map_err(|e: io::Error| ImageError::Layer {
                layer,
                op: "building a /proc path",
                source: e,
            })?;
        room - w.len()
    };
    let path = CStr::from_bytes_with_nul(&buf[..=len]).map_err(|_| ImageError::InvalidPath {
        reason: "contains a NUL byte",
    })?;
    for xname in xnames {
        match rfs::lgetxattr_query(path, *xname) {
            Ok(_) => return Ok(true),
            Err(Errno::NODATA | Errno::NOTSUP) => {}
            Err(e) => return Err(layer_err(layer, "reading an overlay xattr", e)),
        }
    }
    Ok(false)
}

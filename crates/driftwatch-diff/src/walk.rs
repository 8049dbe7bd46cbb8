//! The walk of the upper (writable) layer against the image's lower layers.
//!
//! Streaming and bounded: one directory level is read at a time (its names, sorted), only the
//! directories on the current path are held open (one per layer that provides them), and every
//! entry is handed to the caller as soon as it is decided. Each upper entry costs one `statat`
//! in the upper layer and one per lower layer until overlayfs' rules stop the search; regular
//! files are read at most once (hash, ELF check and the comparison with the image file in the
//! same pass), and an image file is only read when its size equals the container file's.
//!
//! Hostile trees: symlinks are never followed (each name is opened beneath its directory with
//! `RESOLVE_NO_SYMLINKS`), paths are bytes built from components (no `PATH_MAX` limit on what
//! is reported), subtrees deeper than [`WalkOptions::max_depth`] are reported and not walked,
//! and an entry that vanishes while being looked at is skipped.

use crate::classify::{Classifier, Facts};
use crate::error::DiffError;
use crate::layers::{self, LayerDir};
use crate::model::{ChangeKind, FileEntry, FileType, Side, UnmanagedChange};
use crate::packages::dpkg::DpkgFiles;
use driftwatch_event::OverlayLayers;
use driftwatch_image::{read_full, XattrNamespace};
use md5::Md5;
use rustix::fs::{self as rfs, AtFlags, Stat};
use sha2::{Digest, Sha256};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Which regular files get a SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashMode {
    /// None: only the comparison with the image file (same size only) and the ELF check.
    None,
    /// Every regular file of the container side that is reported (the default); computed in
    /// the same read as the comparison, so no file is read twice.
    #[default]
    Changed,
    /// Also the image side of modified and copied-up files (one more read of those).
    All,
}

/// Options of the walk.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    pub hash: HashMode,
    /// Directories deeper than this (components) are reported, not walked.
    pub max_depth: usize,
    pub xattrs: XattrNamespace,
    /// Call the progress callback every this many entries.
    pub progress_every: u64,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            hash: HashMode::default(),
            max_depth: 256,
            xattrs: XattrNamespace::default(),
            progress_every: 4096,
        }
    }
}

/// Counters of a walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStats {
    pub entries: u64,
    pub bytes_read: u64,
    /// Subtrees not walked.
    pub incomplete: bool,
}

/// What the walk reports to its caller.
pub trait WalkSink {
    fn entry(&mut self, entry: FileEntry) -> Result<(), DiffError>;
    fn unmanaged(&mut self, _change: UnmanagedChange) {}
    fn progress(&mut self, _stats: &WalkStats) {}
}

struct Frame {
    upper: OwnedFd,
    path: Vec<u8>,
    lowers: Vec<LayerDir>,
    names: Vec<CString>,
    next: usize,
    depth: usize,
}

struct Walker<'a, S: WalkSink> {
    opts: &'a WalkOptions,
    classifier: &'a Classifier,
    dpkg: Option<&'a DpkgFiles>,
    sink: &'a mut S,
    stats: WalkStats,
    upper_dev: u64,
    buf_a: Vec<u8>,
    buf_b: Vec<u8>,
}

/// Walk `layers.upperdir` against `layers.lowerdirs`, reporting every change to `sink`.
pub fn walk<S: WalkSink>(
    layers: &OverlayLayers,
    opts: &WalkOptions,
    classifier: &Classifier,
    dpkg: Option<&DpkgFiles>,
    sink: &mut S,
) -> Result<WalkStats, DiffError> {
    let upper_path = layers.upperdir.as_ref().ok_or(DiffError::NoUpperDir)?;
    let layer_err = |path: &std::path::Path, source| DiffError::Layer {
        path: path.to_path_buf(),
        source,
    };
    let upper = layers::open_root(upper_path, 0, true).map_err(|e| layer_err(upper_path, e))?;
    let mut lowers = Vec::with_capacity(layers.lowerdirs.len());
    for (i, p) in layers.lowerdirs.iter().enumerate() {
        lowers.push(layers::open_root(p, i + 1, false).map_err(|e| layer_err(p, e))?);
    }
    let names =
        layers::read_names(upper.fd.as_fd()).map_err(|e| layer_err(upper_path, e.into()))?;
    let mut w = Walker {
        opts,
        classifier,
        dpkg,
        sink,
        stats: WalkStats::default(),
        upper_dev: upper.dev,
        buf_a: vec![0; 128 << 10],
        buf_b: vec![0; 128 << 10],
    };
    let mut stack = vec![Frame {
        upper: upper.fd,
        path: Vec::new(),
        lowers,
        names,
        next: 0,
        depth: 0,
    }];
    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.names.get(frame.next).cloned() else {
            stack.pop();
            continue;
        };
        frame.next += 1;
        let mut path = Vec::with_capacity(frame.path.len() + 1 + name.to_bytes().len());
        path.extend_from_slice(&frame.path);
        path.push(b'/');
        path.extend_from_slice(name.to_bytes());
        let child = w.entry(frame, &name, path)?;
        w.stats.entries += 1;
        if w.stats.entries.is_multiple_of(opts.progress_every.max(1)) {
            let s = w.stats;
            w.sink.progress(&s);
        }
        if let Some(child) = child {
            stack.push(child);
        }
    }
    let s = w.stats;
    w.sink.progress(&s);
    Ok(w.stats)
}

fn side_of(st: &Stat) -> Side {
    let mode = layers::st_mode(st);
    let ft = FileType::of_mode(mode);
    let rdev = layers::st_rdev(st);
    Side {
        file_type: Some(ft),
        mode: Some(mode & 0o7777),
        uid: Some(st.st_uid),
        gid: Some(st.st_gid),
        size: matches!(ft, FileType::File | FileType::Symlink).then(|| layers::st_size(st)),
        rdev: matches!(ft, FileType::CharDevice | FileType::BlockDevice).then(|| {
            format!(
                "{}:{}",
                rustix::fs::major(rdev as _),
                rustix::fs::minor(rdev as _)
            )
        }),
        ..Side::default()
    }
}

fn meta_changes(a: &Side, b: &Side, out: &mut Vec<String>) {
    if a.mode != b.mode && a.file_type != Some(FileType::Symlink) {
        out.push("mode".into());
    }
    if a.uid != b.uid || a.gid != b.gid {
        out.push("owner".into());
    }
}

/// What one read of a container file found.
#[derive(Default)]
struct ReadOut {
    sha256: Option<[u8; 32]>,
    md5: Option<[u8; 16]>,
    head: [u8; 4],
    head_len: usize,
    /// With an image file to compare: whether the bytes differ.
    differs: Option<bool>,
}

impl<S: WalkSink> Walker<'_, S> {
    /// Read `upper` once: optional SHA-256 and MD5, the first bytes, and the comparison with
    /// `lower` (same size). Stops early when nothing more is needed.
    fn read_pass(
        &mut self,
        upper: OwnedFd,
        lower: Option<OwnedFd>,
        want_sha: bool,
        want_md5: bool,
    ) -> io::Result<ReadOut> {
        let mut out = ReadOut::default();
        let mut fu = std::fs::File::from(upper);
        let mut fl = lower.map(std::fs::File::from);
        let mut sha = want_sha.then(Sha256::new);
        let mut md5 = want_md5.then(Md5::new);
        let mut equal = fl.is_some();
        let mut first = true;
        loop {
            let n = read_full(&mut fu, &mut self.buf_a)?;
            self.stats.bytes_read += n as u64;
            if first {
                out.head_len = n.min(4);
                out.head[..out.head_len].copy_from_slice(&self.buf_a[..out.head_len]);
                first = false;
            }
            if let Some(h) = sha.as_mut() {
                h.update(&self.buf_a[..n]);
            }
            if let Some(h) = md5.as_mut() {
                h.update(&self.buf_a[..n]);
            }
            if equal {
                if let Some(fl) = fl.as_mut() {
                    let m = read_full(fl, &mut self.buf_b[..n.max(1)])?;
                    self.stats.bytes_read += m as u64;
                    if m != n || self.buf_a[..n] != self.buf_b[..m] {
                        equal = false;
                    }
                }
            }
            let more_needed = sha.is_some() || md5.is_some() || equal;
            if n < self.buf_a.len() || !more_needed {
                break;
            }
        }
        if fl.is_some() {
            out.differs = Some(!equal);
        }
        out.sha256 = sha.map(|h| h.finalize().into());
        out.md5 = md5.map(|h| h.finalize().into());
        Ok(out)
    }

    fn sha256_of(&mut self, fd: OwnedFd) -> io::Result<[u8; 32]> {
        let mut f = std::fs::File::from(fd);
        let mut h = Sha256::new();
        loop {
            let n = read_full(&mut f, &mut self.buf_b)?;
            self.stats.bytes_read += n as u64;
            h.update(&self.buf_b[..n]);
            if n < self.buf_b.len() {
                return Ok(h.finalize().into());
            }
        }
    }

    fn owner(&self, path: &[u8]) -> Option<String> {
        self.dpkg.and_then(|d| d.owner(path)).map(str::to_owned)
    }

    /// Decide one upper entry; returns the frame to descend into, if any.
    fn entry(
        &mut self,
        frame: &Frame,
        name: &CString,
        path: Vec<u8>,
    ) -> Result<Option<Frame>, DiffError> {
        let dir = frame.upper.as_fd();
        let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) => {
                tracing::debug!(path = %crate::pathfmt::escape(&path), error = %e, "entry vanished");
                return Ok(None);
            }
        };
        let up = side_of(&st);
        let ut = up.file_type.unwrap_or(FileType::File);
        // A whiteout: something of the image is deleted.
        if ut == FileType::CharDevice && layers::st_rdev(&st) == 0 {
            let p = layers::probe(&frame.lowers, name, false, self.opts.xattrs);
            let Some(hit) = p.hit else {
                return Ok(None);
            };
            let img = side_of(&hit.st);
            let mut e = FileEntry::new(&path, ChangeKind::Deleted);
            let facts = Facts {
                file_type: img.file_type,
                package_owned: self.dpkg.is_some_and(|d| d.owner(&path).is_some()),
                ..Facts::default()
            };
            e.image = Some(img);
            self.finish(&mut e, &path, &facts);
            if let Some(d) = self.dpkg {
                if let Some(u) = d.check(&path, None) {
                    e.notes.push(format!(
                        "package-owned file deleted without the package manager ({})",
                        u.package
                    ));
                    self.sink.unmanaged(u);
                }
            }
            self.sink.entry(e)?;
            return Ok(None);
        }
        if layers::st_dev(&st) != self.upper_dev {
            let mut e = FileEntry::new(&path, ChangeKind::Added);
            e.container = Some(up);
            e.notes
                .push("a mount point inside the upper layer: not walked".into());
            self.stats.incomplete = true;
            self.finish(&mut e, &path, &Facts::default());
            self.sink.entry(e)?;
            return Ok(None);
        }
        let want_dirs = ut == FileType::Dir;
        let mut probe = layers::probe(&frame.lowers, name, want_dirs, self.opts.xattrs);
        let lower = probe.hit.as_ref().map(|h| (side_of(&h.st), h.pos));
        match ut {
            FileType::Dir => self.dir_entry(
                frame,
                name,
                path,
                up,
                lower,
                std::mem::take(&mut probe.dirs),
            ),
            FileType::File => {
                self.file_entry(frame, name, &path, up, lower)?;
                Ok(None)
            }
            FileType::Symlink => {
                self.symlink_entry(frame, name, &path, up, lower)?;
                Ok(None)
            }
            _ => {
                self.other_entry(&path, up, lower)?;
                Ok(None)
            }
        }
    }

    fn finish(&self, e: &mut FileEntry, path: &[u8], facts: &Facts) {
        e.category = self.classifier.classify(path, facts);
        if e.package.is_none() {
            e.package = self.owner(path);
        }
        e.drift = e.change != ChangeKind::CopiedUp && !e.category.expected();
    }

    fn dir_entry(
        &mut self,
        frame: &Frame,
        name: &CString,
        path: Vec<u8>,
        up: Side,
        lower: Option<(Side, usize)>,
        lower_dirs: Vec<LayerDir>,
    ) -> Result<Option<Frame>, DiffError> {
        let facts = Facts {
            file_type: Some(FileType::Dir),
            ..Facts::default()
        };
        let child_fd = match layers::open_dir(frame.upper.as_fd(), name) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::debug!(path = %crate::pathfmt::escape(&path), error = %e, "cannot open upper directory");
                None
            }
        };
        let opaque = child_fd
            .as_ref()
            .is_some_and(|fd| layers::is_opaque(fd.as_fd(), self.opts.xattrs));
        let had_lower = lower.is_some();
        let (entry, child_lowers) = match lower {
            None => {
                let mut e = FileEntry::new(&path, ChangeKind::Added);
                e.container = Some(up);
                (Some(e), Vec::new())
            }
            Some((img, _)) if img.file_type != Some(FileType::Dir) => {
                let mut e = FileEntry::new(&path, ChangeKind::TypeChanged);
                e.changed.push("type".into());
                e.image = Some(img);
                e.container = Some(up);
                (Some(e), Vec::new())
            }
            Some((img, _)) if opaque => {
                let mut e = FileEntry::new(&path, ChangeKind::Replaced);
                meta_changes(&img, &up, &mut e.changed);
                e.notes
                    .push("opaque directory: the image's content below it is hidden".into());
                e.image = Some(img);
                e.container = Some(up);
                (Some(e), Vec::new())
            }
            Some((img, _)) => {
                let mut changed = Vec::new();
                meta_changes(&img, &up, &mut changed);
                let e = (!changed.is_empty()).then(|| {
                    let mut e = FileEntry::new(&path, ChangeKind::Metadata);
                    e.changed = changed;
                    e.image = Some(img);
                    e.container = Some(up);
                    e
                });
                (e, lower_dirs)
            }
        };
        let depth = frame.depth + 1;
        let mut note = None;
        let child = match child_fd {
            None => {
                note = Some("directory could not be opened: not walked".to_owned());
                None
            }
            Some(_) if depth >= self.opts.max_depth => {
                note = Some(format!(
                    "deeper than {} levels: not walked",
                    self.opts.max_depth
                ));
                None
            }
            Some(fd) => match layers::read_names(fd.as_fd()) {
                Ok(names) => Some(Frame {
                    upper: fd,
                    path: path.clone(),
                    lowers: child_lowers,
                    names,
                    next: 0,
                    depth,
                }),
                Err(e) => {
                    note = Some(format!("directory could not be read ({e}): not walked"));
                    None
                }
            },
        };
        let entry = match (entry, note) {
            (e, None) => e,
            (e, Some(n)) => {
                self.stats.incomplete = true;
                let mut e = e.unwrap_or_else(|| {
                    let mut e = FileEntry::new(&path, ChangeKind::Metadata);
                    e.container = had_lower.then(Side::default);
                    e
                });
                e.notes.push(n);
                Some(e)
            }
        };
        if let Some(mut e) = entry {
            self.finish(&mut e, &path, &facts);
            self.sink.entry(e)?;
        }
        Ok(child)
    }

    fn file_entry(
        &mut self,
        frame: &Frame,
        name: &CString,
        path: &[u8],
        mut up: Side,
        lower: Option<(Side, usize)>,
    ) -> Result<(), DiffError> {
        let (change, img) = match lower {
            None => (ChangeKind::Added, None),
            Some((img, pos)) if img.file_type == Some(FileType::File) => {
                (ChangeKind::Modified, Some((img, pos)))
            }
            Some((img, _)) => {
                let mut e = FileEntry::new(path, ChangeKind::TypeChanged);
                e.changed.push("type".into());
                e.image = Some(img);
                let facts = self
                    .read_facts(frame.upper.as_fd(), name, None, &mut up, path)
                    .0;
                e.container = Some(up);
                self.finish(&mut e, path, &facts);
                return self.sink.entry(e);
            }
        };
        let lower_fd = img.as_ref().and_then(|(img, pos)| {
            (img.size == up.size)
                .then(|| frame.lowers.get(*pos))
                .flatten()
        });
        let (facts, differs) = self.read_facts(
            frame.upper.as_fd(),
            name,
            lower_fd.map(|l| (l.fd.as_fd(), name)),
            &mut up,
            path,
        );
        let mut e = FileEntry::new(path, change);
        if let Some((mut img, pos)) = img {
            let differs = differs.unwrap_or(img.size != up.size);
            e.content_changed = Some(differs);
            meta_changes(&img, &up, &mut e.changed);
            if !differs {
                e.change = if e.changed.is_empty() {
                    ChangeKind::CopiedUp
                } else {
                    ChangeKind::Metadata
                };
            }
            if self.opts.hash == HashMode::All {
                if let Some(l) = frame.lowers.get(pos) {
                    if !differs && up.sha256.is_some() {
                        img.sha256.clone_from(&up.sha256);
                    } else if let Ok(fd) = layers::open_file(l.fd.as_fd(), name) {
                        img.sha256 = self.sha256_of(fd).ok().map(hex::encode);
                    }
                }
            }
            e.image = Some(img);
        }
        e.container = Some(up);
        self.finish(&mut e, path, &facts);
        self.sink.entry(e)
    }

    /// Read a container file: its facts for classification, its hashes into `up`, the
    /// debsums check; returns whether it differs from the given image file.
    fn read_facts(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CString,
        lower: Option<(BorrowedFd<'_>, &CString)>,
        up: &mut Side,
        path: &[u8],
    ) -> (Facts, Option<bool>) {
        let mut facts = Facts {
            file_type: Some(FileType::File),
            exec_bits: up.mode.is_some_and(|m| m & 0o111 != 0),
            package_owned: self.dpkg.is_some_and(|d| d.owner(path).is_some()),
            ..Facts::default()
        };
        let want_md5 = self.dpkg.is_some_and(|d| d.has_md5(path));
        let want_sha = self.opts.hash != HashMode::None;
        let upper_fd = match layers::open_file(dir, name) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::debug!(path = %crate::pathfmt::escape(path), error = %e, "cannot open container file");
                return (facts, None);
            }
        };
        let lower_fd = lower.and_then(|(d, n)| layers::open_file(d, n).ok());
        let out = match self.read_pass(upper_fd, lower_fd, want_sha, want_md5) {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(path = %crate::pathfmt::escape(path), error = %e, "cannot read container file");
                return (facts, None);
            }
        };
        let head = &out.head[..out.head_len];
        facts.elf = head == b"\x7fELF";
        facts.script = head.starts_with(b"#!");
        up.sha256 = out.sha256.map(hex::encode);
        if let (Some(d), Some(md5)) = (self.dpkg, out.md5) {
            if let Some(u) = d.check(path, Some(&md5)) {
                self.sink.unmanaged(u);
            }
        }
        (facts, out.differs)
    }

    fn symlink_entry(
        &mut self,
        frame: &Frame,
        name: &CString,
        path: &[u8],
        mut up: Side,
        lower: Option<(Side, usize)>,
    ) -> Result<(), DiffError> {
        let target =
            rfs::readlinkat(frame.upper.as_fd(), name, Vec::new()).map(CString::into_bytes);
        if let Ok(t) = &target {
            up.set_link_target(t);
        }
        let facts = Facts {
            file_type: Some(FileType::Symlink),
            package_owned: self.dpkg.is_some_and(|d| d.owner(path).is_some()),
            ..Facts::default()
        };
        let mut e = match lower {
            None => FileEntry::new(path, ChangeKind::Added),
            Some((mut img, pos)) if img.file_type == Some(FileType::Symlink) => {
                let old = frame
                    .lowers
                    .get(pos)
                    .and_then(|l| rfs::readlinkat(l.fd.as_fd(), name, Vec::new()).ok())
                    .map(CString::into_bytes);
                if let Some(o) = &old {
                    img.set_link_target(o);
                }
                let mut e = FileEntry::new(path, ChangeKind::CopiedUp);
                meta_changes(&img, &up, &mut e.changed);
                if old.as_deref() != target.as_deref().ok() {
                    e.change = ChangeKind::Modified;
                    e.changed.insert(0, "target".into());
                } else if !e.changed.is_empty() {
                    e.change = ChangeKind::Metadata;
                }
                e.image = Some(img);
                e
            }
            Some((img, _)) => {
                let mut e = FileEntry::new(path, ChangeKind::TypeChanged);
                e.changed.push("type".into());
                e.image = Some(img);
                e
            }
        };
        e.container = Some(up);
        self.finish(&mut e, path, &facts);
        self.sink.entry(e)
    }

    fn other_entry(
        &mut self,
        path: &[u8],
        up: Side,
        lower: Option<(Side, usize)>,
    ) -> Result<(), DiffError> {
        let facts = Facts {
            file_type: up.file_type,
            ..Facts::default()
        };
        let mut e = match lower {
            None => FileEntry::new(path, ChangeKind::Added),
            Some((img, _)) if img.file_type == up.file_type => {
                let mut e = FileEntry::new(path, ChangeKind::CopiedUp);
                meta_changes(&img, &up, &mut e.changed);
                if img.rdev != up.rdev {
                    e.change = ChangeKind::Modified;
                    e.changed.insert(0, "rdev".into());
                } else if !e.changed.is_empty() {
                    e.change = ChangeKind::Metadata;
                }
                e.image = Some(img);
                e
            }
            Some((img, _)) => {
                let mut e = FileEntry::new(path, ChangeKind::TypeChanged);
                e.changed.push("type".into());
                e.image = Some(img);
                e
            }
        };
        e.container = Some(up);
        self.finish(&mut e, path, &facts);
        self.sink.entry(e)
    }
}

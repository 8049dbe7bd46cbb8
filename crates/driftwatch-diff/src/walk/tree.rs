//! The walking thread: the upper layer's directories, depth first in name order, each entry
//! stat'ed and looked up in the lower layers through the overlay model
//! ([`driftwatch_image::overlay`]), and decided here unless it is a regular file (which goes to
//! [`super::read`], through the pool).
//!
//! What it decides: whiteouts (a deleted image entry), mount points inside the upper layer (not
//! walked), directories (added, type changed, opaque, renamed by overlayfs' `redirect_dir`, or
//! changed in metadata; then walked against the image directories below them), symlinks
//! (target and metadata) and the other types (device number and metadata).

use super::pool::Ordered;
use super::read::FileJob;
use super::{meta_changes, Ctx, Done, WalkSink, WalkStats};
use crate::classify::Facts;
use crate::error::DiffError;
use crate::model::{ChangeKind, FileEntry, FileType, Side};
use driftwatch_image::overlay::{self, LayerDir};
use rustix::fs::{self as rfs, AtFlags, Stat};
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A directory of the upper layer on the current path, with the image directories it is
/// walked against.
pub(super) struct Frame {
    upper: Arc<OwnedFd>,
    path: Vec<u8>,
    lowers: Vec<LayerDir>,
    /// Its names, sorted; `next` is the next to decide.
    names: Vec<CString>,
    next: usize,
    depth: usize,
}

impl Frame {
    /// The upper layer's root, walked against the lower layers' roots.
    pub(super) fn root(upper: Arc<OwnedFd>, lowers: Vec<LayerDir>, names: Vec<CString>) -> Frame {
        Frame {
            upper,
            path: Vec::new(),
            lowers,
            names,
            next: 0,
            depth: 0,
        }
    }
}

/// The walking thread's state.
pub(super) struct Walker<'c, 'a, S: WalkSink> {
    ctx: &'c Ctx<'a>,
    sink: &'c mut S,
    stats: WalkStats,
    /// The upper layer's device: an entry on another is a mount point.
    upper_dev: u64,
    /// The lower layers' root directories (for `redirect_dir` targets).
    lower_roots: Vec<LayerDir>,
    /// The decided entries and the files being read, on their way to the sink.
    out: Ordered<'c, 'a>,
}

/// What the image has at a directory's place, once overlayfs' rules have been applied.
struct DirImage {
    /// The image entry (the directory it was renamed from, for a redirected one).
    lower: Option<Side>,
    /// The image directories it is walked against.
    dirs: Vec<LayerDir>,
    /// An opaque directory: the image below it is hidden.
    opaque: bool,
    /// A directory renamed by overlayfs, and the note that says from where.
    redirect_note: Option<String>,
}

impl<'c, 'a, S: WalkSink> Walker<'c, 'a, S> {
    pub(super) fn new(
        ctx: &'c Ctx<'a>,
        sink: &'c mut S,
        upper_dev: u64,
        lower_roots: Vec<LayerDir>,
        out: Ordered<'c, 'a>,
    ) -> Self {
        Walker {
            ctx,
            sink,
            stats: WalkStats::default(),
            upper_dev,
            lower_roots,
            out,
        }
    }

    /// Walk the tree below `root`, then hand what is left to the sink.
    pub(super) fn run(mut self, root: Frame) -> Result<WalkStats, DiffError> {
        let every = self.ctx.opts.progress_every.max(1);
        let mut stack = vec![root];
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
            let child = self.entry(frame, name, path)?;
            self.stats.entries += 1;
            if self.stats.entries.is_multiple_of(every) {
                self.progress();
            }
            if let Some(child) = child {
                stack.push(child);
            }
        }
        self.out.finish(self.sink)?;
        self.progress();
        Ok(self.stats)
    }

    fn progress(&mut self) {
        self.stats.bytes_read = self.ctx.bytes_read.load(Ordering::Relaxed);
        let s = self.stats;
        self.sink.progress(&s);
    }

    fn emit(&mut self, done: Done) -> Result<(), DiffError> {
        self.out.emit(done, self.sink)
    }

    fn emit_entry(&mut self, e: FileEntry) -> Result<(), DiffError> {
        self.emit(Done::entry(e))
    }

    /// Decide one upper entry; returns the frame to descend into, if any.
    fn entry(
        &mut self,
        frame: &Frame,
        name: CString,
        path: Vec<u8>,
    ) -> Result<Option<Frame>, DiffError> {
        let dir = frame.upper.as_fd();
        let st = match rfs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) => {
                tracing::debug!(path = %crate::pathfmt::escape(&path), error = %e, "entry vanished");
                return Ok(None);
            }
        };
        let up = side_of(&st);
        let ut = up.file_type.unwrap_or(FileType::File);
        let xattrs = self.ctx.opts.xattrs;
        if ut == FileType::CharDevice && overlay::st_rdev(&st) == 0 {
            return self.whiteout(frame, &name, &path).map(|()| None);
        }
        if overlay::st_dev(&st) != self.upper_dev {
            return self.mount_point(&path, up).map(|()| None);
        }
        let want_dirs = ut == FileType::Dir;
        let mut probe = overlay::probe(&frame.lowers, &name, want_dirs, xattrs);
        let lower = probe.hit.as_ref().map(|h| (side_of(&h.st), h.pos));
        match ut {
            FileType::Dir => {
                let dirs = std::mem::take(&mut probe.dirs);
                self.dir_entry(frame, &name, path, up, lower.map(|(img, _)| img), dirs)
            }
            FileType::File => {
                let lower = lower
                    .and_then(|(img, pos)| Some((img, Arc::clone(&frame.lowers.get(pos)?.fd))));
                let job = FileJob {
                    dir: Arc::clone(&frame.upper),
                    name,
                    path,
                    up,
                    up_blocks: overlay::st_blocks(&st),
                    lower,
                };
                self.out.submit(job, self.sink)?;
                Ok(None)
            }
            FileType::Symlink => {
                let e = self.symlink_entry(frame, &name, &path, up, lower);
                self.emit_entry(e).map(|()| None)
            }
            _ => {
                let e = self.other_entry(&path, up, lower);
                self.emit_entry(e).map(|()| None)
            }
        }
    }

    /// A whiteout: something of the image is deleted (nothing, when the image has nothing
    /// there).
    fn whiteout(&mut self, frame: &Frame, name: &CString, path: &[u8]) -> Result<(), DiffError> {
        let p = overlay::probe(&frame.lowers, name, false, self.ctx.opts.xattrs);
        let Some(hit) = p.hit else {
            return Ok(());
        };
        let img = side_of(&hit.st);
        let mut e = FileEntry::new(path, ChangeKind::Deleted);
        let dpkg = self.ctx.dpkg;
        let facts = Facts {
            file_type: img.file_type,
            package_owned: dpkg.is_some_and(|d| d.owner(path).is_some()),
            ..Facts::default()
        };
        e.image = Some(img);
        self.ctx.finish(&mut e, path, &facts);
        let unmanaged = dpkg.and_then(|d| d.check(path, None));
        if let Some(u) = &unmanaged {
            e.notes.push(format!(
                "package-owned file deleted without the package manager ({})",
                u.package
            ));
        }
        self.emit(Done {
            unmanaged,
            entry: Some(e),
        })
    }

    /// Another filesystem mounted inside the upper layer: reported, not walked.
    fn mount_point(&mut self, path: &[u8], up: Side) -> Result<(), DiffError> {
        let mut e = FileEntry::new(path, ChangeKind::Added);
        e.container = Some(up);
        e.notes
            .push("a mount point inside the upper layer: not walked".into());
        self.stats.incomplete = true;
        self.ctx.finish(&mut e, path, &Facts::default());
        self.emit_entry(e)
    }

    /// Decide a directory of the upper layer (`lower`: the image entry at its path, `dirs`:
    /// the image directories there); returns the frame to descend into, if it can be walked.
    fn dir_entry(
        &mut self,
        frame: &Frame,
        name: &CString,
        path: Vec<u8>,
        up: Side,
        lower: Option<Side>,
        dirs: Vec<LayerDir>,
    ) -> Result<Option<Frame>, DiffError> {
        let child_fd = match overlay::open_dir(frame.upper.as_fd(), name.as_c_str(), self.upper_dev)
        {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::debug!(path = %crate::pathfmt::escape(&path), error = %e, "cannot open upper directory");
                None
            }
        };
        let image = self.dir_image(frame, child_fd.as_ref(), lower, dirs);
        let had_lower = image.lower.is_some();
        let (mut entry, child_lowers) = dir_change(&path, up, image);
        let (child, not_walked) = self.descend(frame, &path, child_fd, child_lowers);
        if let Some(n) = not_walked {
            self.stats.incomplete = true;
            let e = entry.get_or_insert_with(|| {
                let mut e = FileEntry::new(&path, ChangeKind::Metadata);
                e.container = had_lower.then(Side::default);
                e
            });
            e.notes.push(n);
        }
        if let Some(mut e) = entry {
            let facts = Facts {
                file_type: Some(FileType::Dir),
                ..Facts::default()
            };
            self.ctx.finish(&mut e, &path, &facts);
            self.emit_entry(e)?;
        }
        Ok(child)
    }

    /// What the image has at an upper directory's place: what overlayfs found at its path
    /// (`lower`, `dirs`), hidden when the directory is opaque, or the directory it was renamed
    /// from when it carries a redirect.
    fn dir_image(
        &self,
        frame: &Frame,
        child_fd: Option<&OwnedFd>,
        lower: Option<Side>,
        dirs: Vec<LayerDir>,
    ) -> DirImage {
        let xattrs = self.ctx.opts.xattrs;
        let opaque =
            child_fd.is_some_and(|fd| overlay::is_opaque(fd.as_fd(), xattrs).unwrap_or(false));
        // A directory renamed by overlayfs (redirect_dir): its image content is the directory
        // it was renamed from, not whatever the image has at this path.
        let redirect = child_fd
            .filter(|_| !opaque)
            .and_then(|fd| overlay::redirect(fd.as_fd(), xattrs));
        let Some(target) = redirect else {
            return DirImage {
                lower,
                dirs,
                opaque,
                redirect_note: None,
            };
        };
        let chain = self.redirect_chain(frame, &target);
        let shown = crate::pathfmt::escape(&target);
        let img = chain
            .first()
            .and_then(|d| rfs::fstat(&d.fd).ok())
            .map(|st| side_of(&st));
        let note = match &img {
            Some(_) => format!(
                "renamed directory (overlay redirect from {shown}): compared with that image directory"
            ),
            None => format!(
                "renamed directory (overlay redirect from {shown}, not found in the image)"
            ),
        };
        DirImage {
            lower: img,
            dirs: chain,
            opaque,
            redirect_note: Some(note),
        }
    }

    /// The image directory a `redirect_dir` directory was renamed from, in every layer.
    fn redirect_chain(&self, frame: &Frame, target: &[u8]) -> Vec<LayerDir> {
        // A relative redirect names a sibling: only its name is needed, not the parent's path.
        overlay::redirect_chain(
            &self.lower_roots,
            &frame.lowers,
            &[],
            target,
            self.ctx.opts.xattrs,
        )
    }

    /// The frame of an upper directory (`child_fd`, walked against `lowers`), or why it is not
    /// walked.
    fn descend(
        &self,
        frame: &Frame,
        path: &[u8],
        child_fd: Option<OwnedFd>,
        lowers: Vec<LayerDir>,
    ) -> (Option<Frame>, Option<String>) {
        let depth = frame.depth + 1;
        let max_depth = self.ctx.opts.max_depth;
        let Some(fd) = child_fd else {
            return (
                None,
                Some("directory could not be opened: not walked".to_owned()),
            );
        };
        if depth >= max_depth {
            return (
                None,
                Some(format!("deeper than {max_depth} levels: not walked")),
            );
        }
        match overlay::read_names(fd.as_fd()) {
            Ok(names) => (
                Some(Frame {
                    upper: Arc::new(fd),
                    path: path.to_vec(),
                    lowers,
                    names,
                    next: 0,
                    depth,
                }),
                None,
            ),
            Err(e) => (
                None,
                Some(format!("directory could not be read ({e}): not walked")),
            ),
        }
    }

    fn symlink_entry(
        &self,
        frame: &Frame,
        name: &CString,
        path: &[u8],
        mut up: Side,
        lower: Option<(Side, usize)>,
    ) -> FileEntry {
        let target =
            rfs::readlinkat(frame.upper.as_fd(), name, Vec::new()).map(CString::into_bytes);
        if let Ok(t) = &target {
            up.set_link_target(t);
        }
        let facts = Facts {
            file_type: Some(FileType::Symlink),
            package_owned: self.ctx.dpkg.is_some_and(|d| d.owner(path).is_some()),
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
        self.ctx.finish(&mut e, path, &facts);
        e
    }

    fn other_entry(&self, path: &[u8], up: Side, lower: Option<(Side, usize)>) -> FileEntry {
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
        self.ctx.finish(&mut e, path, &facts);
        e
    }
}

/// The verdict on an upper directory against what the image has at its place, and the image
/// directories its content is walked against (none below an added, retyped or opaque one).
/// `None`: a directory with nothing to report by itself.
fn dir_change(path: &[u8], up: Side, image: DirImage) -> (Option<FileEntry>, Vec<LayerDir>) {
    let DirImage {
        lower,
        dirs,
        opaque,
        redirect_note,
    } = image;
    let redirected = redirect_note.is_some();
    let (mut entry, dirs) = match lower {
        None => {
            let mut e = FileEntry::new(path, ChangeKind::Added);
            e.container = Some(up);
            (Some(e), Vec::new())
        }
        Some(img) if img.file_type != Some(FileType::Dir) => {
            let mut e = FileEntry::new(path, ChangeKind::TypeChanged);
            e.changed.push("type".into());
            e.image = Some(img);
            e.container = Some(up);
            (Some(e), Vec::new())
        }
        Some(img) if opaque => {
            let mut e = FileEntry::new(path, ChangeKind::Replaced);
            meta_changes(&img, &up, &mut e.changed);
            e.notes
                .push("opaque directory: the image's content below it is hidden".into());
            e.image = Some(img);
            e.container = Some(up);
            (Some(e), Vec::new())
        }
        Some(img) if redirected => {
            // Renamed: a new path whatever its metadata.
            let mut e = FileEntry::new(path, ChangeKind::Added);
            meta_changes(&img, &up, &mut e.changed);
            e.image = Some(img);
            e.container = Some(up);
            (Some(e), dirs)
        }
        Some(img) => {
            let mut changed = Vec::new();
            meta_changes(&img, &up, &mut changed);
            let e = (!changed.is_empty()).then(|| {
                let mut e = FileEntry::new(path, ChangeKind::Metadata);
                e.changed = changed;
                e.image = Some(img);
                e.container = Some(up);
                e
            });
            (e, dirs)
        }
    };
    if let (Some(e), Some(n)) = (entry.as_mut(), redirect_note) {
        e.notes.push(n);
    }
    (entry, dirs)
}

/// An entry's metadata as `statat` gives it.
fn side_of(st: &Stat) -> Side {
    let mode = overlay::st_mode(st);
    let ft = FileType::of_mode(mode);
    let rdev = overlay::st_rdev(st);
    Side {
        file_type: Some(ft),
        mode: Some(mode & 0o7777),
        uid: Some(st.st_uid),
        gid: Some(st.st_gid),
        size: matches!(ft, FileType::File | FileType::Symlink).then(|| overlay::st_size(st)),
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

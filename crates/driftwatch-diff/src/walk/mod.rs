//! The walk of the upper (writable) layer against the image's lower layers.
//!
//! Streaming and bounded: one directory level is read at a time (its names, sorted), only the
//! directories on the current path are held open (one per layer that provides them), and every
//! entry is handed to the caller as soon as it is decided, in walk order. Each upper entry costs
//! one `statat` in the upper layer and one per lower layer until overlayfs' rules stop the
//! search; regular files are read at most once (hash, ELF check and the comparison with the
//! image file in the same pass, exactly `st_size` bytes, so no read is spent finding the end),
//! and an image file is only read when its size equals the container file's.
//!
//! Two stages: the walking thread reads directories, stats and looks entries up in the lower
//! layers; regular files go, through a bounded channel, to [`WalkOptions::threads`] workers that
//! open, read, hash, compare and classify them. Results come back tagged with their place in the
//! walk and are handed to the sink in that order, so the output does not depend on scheduling;
//! at most [`MAX_IN_FLIGHT`] entries wait for a worker, which bounds memory and open files.
//!
//! Overlay features: an opaque directory hides the image below it; a directory renamed by
//! overlayfs (`redirect_dir`: an `overlay.redirect` xattr) is compared with the image directory
//! it was renamed from; a metadata-only copy-up (`metacopy`: an `overlay.metacopy` xattr on a
//! data-less upper file) is compared by metadata, its data being the image file's.
//!
//! Hostile trees: symlinks are never followed (each name is opened beneath its directory with
//! `RESOLVE_NO_SYMLINKS`), paths are bytes built from components (no `PATH_MAX` limit on what
//! is reported), subtrees deeper than [`WalkOptions::max_depth`] are reported and not walked,
//! and an entry that vanishes while being looked at is skipped.

use crate::classify::{Classifier, Facts};
use crate::error::DiffError;
use crate::model::{ChangeKind, FileEntry, FileType, Side, UnmanagedChange};
use crate::packages::dpkg::DpkgFiles;
use driftwatch_event::OverlayLayers;
use driftwatch_image::overlay::{self, LayerDir};
use driftwatch_image::{read_full, XattrNamespace};
use md5::Md5;
use rustix::fs::{self as rfs, AtFlags, Stat};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// Entries decided or being decided but not yet handed to the sink, at most.
pub const MAX_IN_FLIGHT: usize = 2048;
/// Files go to the workers, and come back, this many at a time (fewer wake-ups).
const BATCH: usize = 32;
/// Batches waiting for a worker, at most. A file not yet read holds its upper and lower
/// directories open: at most (`JOB_QUEUE` + 1 + workers) × `BATCH` files wait or are being read,
/// so at most 448 directory descriptors with 4 workers besides those on the walker's path,
/// whatever the shape of the tree (a file per directory included).
const JOB_QUEUE: usize = 2;
/// Read buffer of a worker (and the same again for the image file).
const READ_BUF: usize = 128 << 10;

/// Which regular files get a SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashMode {
    /// None: only the comparison with the image file (same size only) and the ELF check.
    None,
    /// Every regular file of the container side that is reported (the default); computed in
    /// the same read as the comparison, so no file is read twice.
    #[default]
    Changed,
    /// Also the image side of modified files whose bytes differ (one more read of those; an
    /// unchanged file's image hash is the container hash, not read again).
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
    /// File workers beside the walking thread: `None` is one per CPU (at most 4); `Some(0)`
    /// reads files on the walking thread.
    pub threads: Option<usize>,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            hash: HashMode::default(),
            max_depth: 256,
            xattrs: XattrNamespace::default(),
            progress_every: 4096,
            threads: None,
        }
    }
}

impl WalkOptions {
    fn workers(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(std::num::NonZeroUsize::get)
                .unwrap_or(1)
                .min(4)
        })
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
    upper: Arc<OwnedFd>,
    path: Vec<u8>,
    lowers: Vec<LayerDir>,
    names: Vec<CString>,
    next: usize,
    depth: usize,
}

/// The read-only part of a walk, shared by the walking thread and the file workers.
struct Ctx<'a> {
    opts: &'a WalkOptions,
    classifier: &'a Classifier,
    dpkg: Option<&'a DpkgFiles>,
    bytes_read: AtomicU64,
}

/// One regular file of the upper layer to read.
struct FileJob {
    dir: Arc<OwnedFd>,
    name: CString,
    path: Vec<u8>,
    up: Side,
    /// 512-byte blocks allocated to the upper file (0 with data: maybe a metacopy).
    up_blocks: u64,
    /// The image's entry and the lower directory that holds it.
    lower: Option<(Side, Arc<OwnedFd>)>,
}

/// What one upper entry produced: handed to the sink in walk order.
#[derive(Default)]
struct Done {
    unmanaged: Option<UnmanagedChange>,
    entry: Option<FileEntry>,
}

struct Bufs {
    a: Vec<u8>,
    b: Vec<u8>,
}

impl Bufs {
    fn new() -> Bufs {
        Bufs {
            a: vec![0; READ_BUF],
            b: vec![0; READ_BUF],
        }
    }
}

/// The channels to the file workers.
struct Pool {
    jobs: SyncSender<Vec<(u64, FileJob)>>,
    results: Receiver<Vec<(u64, Done)>>,
    /// Files not sent yet.
    batch: Vec<(u64, FileJob)>,
}

struct Walker<'c, 'a, S: WalkSink> {
    ctx: &'c Ctx<'a>,
    sink: &'c mut S,
    stats: WalkStats,
    upper_dev: u64,
    /// The lower layers' root directories (for `redirect_dir` targets).
    lower_roots: Vec<LayerDir>,
    /// Entries not yet given to the sink; the front is number `base` of the walk.
    queue: VecDeque<Option<Done>>,
    base: u64,
    pool: Option<Pool>,
    /// Buffers for files read on the walking thread (no workers).
    bufs: Option<Bufs>,
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
    let upper = overlay::open_root(upper_path, 0, true).map_err(|e| layer_err(upper_path, e))?;
    let mut lowers = Vec::with_capacity(layers.lowerdirs.len());
    for (i, p) in layers.lowerdirs.iter().enumerate() {
        lowers.push(overlay::open_root(p, i + 1, false).map_err(|e| layer_err(p, e))?);
    }
    let names =
        overlay::read_names(upper.fd.as_fd()).map_err(|e| layer_err(upper_path, e.into()))?;
    let ctx = Ctx {
        opts,
        classifier,
        dpkg,
        bytes_read: AtomicU64::new(0),
    };
    let root = Frame {
        upper: upper.fd,
        path: Vec::new(),
        lowers,
        names,
        next: 0,
        depth: 0,
    };
    let workers = opts.workers();
    let mut w = Walker {
        ctx: &ctx,
        sink,
        stats: WalkStats::default(),
        upper_dev: upper.dev,
        lower_roots: root.lowers.iter().map(LayerDir::share).collect(),
        queue: VecDeque::with_capacity(MAX_IN_FLIGHT),
        base: 0,
        pool: None,
        bufs: None,
    };
    if workers == 0 {
        w.bufs = Some(Bufs::new());
        return w.run(root);
    }
    std::thread::scope(|scope| {
        let (job_tx, job_rx) = mpsc::sync_channel::<Vec<(u64, FileJob)>>(JOB_QUEUE);
        let (res_tx, res_rx) = mpsc::channel::<Vec<(u64, Done)>>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        for _ in 0..workers {
            let job_rx = Arc::clone(&job_rx);
            let res_tx = res_tx.clone();
            let ctx = &ctx;
            scope.spawn(move || {
                let mut bufs = Bufs::new();
                loop {
                    // One worker waits on the channel, the others on the lock.
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(jobs) = job else { return };
                    let mut out = Vec::with_capacity(jobs.len());
                    for (seq, job) in jobs {
                        // A panic must not leave the walking thread waiting for this entry.
                        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            ctx.file(job, &mut bufs)
                        }))
                        .unwrap_or_else(|_| {
                            tracing::error!(entry = seq, "file worker panicked: entry left out");
                            bufs = Bufs::new();
                            Done::default()
                        });
                        out.push((seq, done));
                    }
                    if res_tx.send(out).is_err() {
                        return;
                    }
                }
            });
        }
        drop(res_tx);
        w.pool = Some(Pool {
            jobs: job_tx,
            results: res_rx,
            batch: Vec::with_capacity(BATCH),
        });
        // Returning (also early, on a sink error) drops the job sender: the workers stop.
        w.run(root)
    })
}

impl<S: WalkSink> Walker<'_, '_, S> {
    fn run(mut self, root: Frame) -> Result<WalkStats, DiffError> {
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
                self.stats.bytes_read = self.ctx.bytes_read.load(Ordering::Relaxed);
                let s = self.stats;
                self.sink.progress(&s);
            }
            if let Some(child) = child {
                stack.push(child);
            }
        }
        self.drain(true)?;
        self.stats.bytes_read = self.ctx.bytes_read.load(Ordering::Relaxed);
        let s = self.stats;
        self.sink.progress(&s);
        Ok(self.stats)
    }

    /// Queue a decided entry.
    fn emit(&mut self, done: Done) -> Result<(), DiffError> {
        self.queue.push_back(Some(done));
        self.drain(false)
    }

    fn emit_entry(&mut self, e: FileEntry) -> Result<(), DiffError> {
        self.emit(Done {
            unmanaged: None,
            entry: Some(e),
        })
    }

    /// Queue a regular file: read by a worker, or here when there is none.
    fn submit(&mut self, job: FileJob) -> Result<(), DiffError> {
        let seq = self.base + self.queue.len() as u64;
        if let Some(pool) = &mut self.pool {
            self.queue.push_back(None);
            pool.batch.push((seq, job));
            if pool.batch.len() >= BATCH {
                Self::send_batch(pool)?;
            }
            return self.drain(false);
        }
        let mut bufs = self.bufs.take().unwrap_or_else(Bufs::new);
        let done = self.ctx.file(job, &mut bufs);
        self.bufs = Some(bufs);
        self.emit(done)
    }

    fn send_batch(pool: &mut Pool) -> Result<(), DiffError> {
        if pool.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut pool.batch, Vec::with_capacity(BATCH));
        pool.jobs
            .send(batch)
            .map_err(|_| DiffError::output(io::Error::other("file workers stopped")))
    }

    fn store(&mut self, seq: u64, done: Done) {
        let idx = seq
            .checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok());
        if let Some(slot) = idx.and_then(|i| self.queue.get_mut(i)) {
            *slot = Some(done);
        }
    }

    /// Hand the decided front of the queue to the sink; wait for workers while the queue is
    /// full (or, with `all`, until it is empty).
    fn drain(&mut self, all: bool) -> Result<(), DiffError> {
        loop {
            if let Some(pool) = &self.pool {
                let mut got = Vec::new();
                while let Ok(r) = pool.results.try_recv() {
                    got.push(r);
                }
                for (seq, done) in got.into_iter().flatten() {
                    self.store(seq, done);
                }
            }
            while let Some(Some(_)) = self.queue.front() {
                if let Some(Some(done)) = self.queue.pop_front() {
                    self.base += 1;
                    if let Some(u) = done.unmanaged {
                        self.sink.unmanaged(u);
                    }
                    if let Some(e) = done.entry {
                        self.sink.entry(e)?;
                    }
                }
            }
            let must_wait = if all {
                !self.queue.is_empty()
            } else {
                self.queue.len() >= MAX_IN_FLIGHT
            };
            if !must_wait {
                return Ok(());
            }
            let Some(pool) = &mut self.pool else {
                return Ok(());
            };
            // Whatever waits must be on its way before waiting for it.
            Self::send_batch(pool)?;
            match pool.results.recv() {
                Ok(done) => {
                    for (seq, d) in done {
                        self.store(seq, d);
                    }
                }
                Err(_) => return Err(DiffError::output(io::Error::other("file workers stopped"))),
            }
        }
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
        // A whiteout: something of the image is deleted.
        if ut == FileType::CharDevice && overlay::st_rdev(&st) == 0 {
            let p = overlay::probe(&frame.lowers, &name, false, xattrs);
            let Some(hit) = p.hit else {
                return Ok(None);
            };
            let img = side_of(&hit.st);
            let mut e = FileEntry::new(&path, ChangeKind::Deleted);
            let dpkg = self.ctx.dpkg;
            let facts = Facts {
                file_type: img.file_type,
                package_owned: dpkg.is_some_and(|d| d.owner(&path).is_some()),
                ..Facts::default()
            };
            e.image = Some(img);
            self.ctx.finish(&mut e, &path, &facts);
            let unmanaged = dpkg.and_then(|d| d.check(&path, None));
            if let Some(u) = &unmanaged {
                e.notes.push(format!(
                    "package-owned file deleted without the package manager ({})",
                    u.package
                ));
            }
            return self
                .emit(Done {
                    unmanaged,
                    entry: Some(e),
                })
                .map(|()| None);
        }
        if overlay::st_dev(&st) != self.upper_dev {
            let mut e = FileEntry::new(&path, ChangeKind::Added);
            e.container = Some(up);
            e.notes
                .push("a mount point inside the upper layer: not walked".into());
            self.stats.incomplete = true;
            self.ctx.finish(&mut e, &path, &Facts::default());
            return self.emit_entry(e).map(|()| None);
        }
        let want_dirs = ut == FileType::Dir;
        let mut probe = overlay::probe(&frame.lowers, &name, want_dirs, xattrs);
        let lower = probe.hit.as_ref().map(|h| (side_of(&h.st), h.pos));
        match ut {
            FileType::Dir => {
                let dirs = std::mem::take(&mut probe.dirs);
                self.dir_entry(frame, &name, path, up, lower, dirs)
            }
            FileType::File => {
                let lower = lower
                    .and_then(|(img, pos)| Some((img, Arc::clone(&frame.lowers.get(pos)?.fd))));
                self.submit(FileJob {
                    dir: Arc::clone(&frame.upper),
                    name,
                    path,
                    up,
                    up_blocks: overlay::st_blocks(&st),
                    lower,
                })?;
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

    #[allow(clippy::too_many_lines)]
    fn dir_entry(
        &mut self,
        frame: &Frame,
        name: &CString,
        path: Vec<u8>,
        up: Side,
        mut lower: Option<(Side, usize)>,
        mut lower_dirs: Vec<LayerDir>,
    ) -> Result<Option<Frame>, DiffError> {
        let facts = Facts {
            file_type: Some(FileType::Dir),
            ..Facts::default()
        };
        let xattrs = self.ctx.opts.xattrs;
        let child_fd = match overlay::open_dir(frame.upper.as_fd(), name.as_c_str(), self.upper_dev)
        {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::debug!(path = %crate::pathfmt::escape(&path), error = %e, "cannot open upper directory");
                None
            }
        };
        let opaque = child_fd
            .as_ref()
            .is_some_and(|fd| overlay::is_opaque(fd.as_fd(), xattrs).unwrap_or(false));
        // A directory renamed by overlayfs (redirect_dir): its image content is the directory
        // it was renamed from, not whatever the image has at this path.
        let redirect = child_fd
            .as_ref()
            .filter(|_| !opaque)
            .and_then(|fd| overlay::redirect(fd.as_fd(), xattrs));
        let mut redirect_note = None;
        if let Some(target) = &redirect {
            let chain = self.redirect_chain(frame, target);
            let shown = crate::pathfmt::escape(target);
            let img = chain
                .first()
                .and_then(|d| rfs::fstat(&d.fd).ok())
                .map(|st| side_of(&st));
            redirect_note = Some(match &img {
                Some(_) => format!(
                    "renamed directory (overlay redirect from {shown}): compared with that image directory"
                ),
                None => format!(
                    "renamed directory (overlay redirect from {shown}, not found in the image)"
                ),
            });
            lower = img.map(|i| (i, 0));
            lower_dirs = chain;
        }
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
            Some((img, _)) if redirect.is_some() => {
                // Renamed: a new path whatever its metadata.
                let mut e = FileEntry::new(&path, ChangeKind::Added);
                meta_changes(&img, &up, &mut e.changed);
                e.image = Some(img);
                e.container = Some(up);
                (Some(e), lower_dirs)
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
        let entry = match (entry, redirect_note) {
            (Some(mut e), Some(n)) => {
                e.notes.push(n);
                Some(e)
            }
            (e, _) => e,
        };
        let depth = frame.depth + 1;
        let mut note = None;
        let child = match child_fd {
            None => {
                note = Some("directory could not be opened: not walked".to_owned());
                None
            }
            Some(_) if depth >= self.ctx.opts.max_depth => {
                note = Some(format!(
                    "deeper than {} levels: not walked",
                    self.ctx.opts.max_depth
                ));
                None
            }
            Some(fd) => match overlay::read_names(fd.as_fd()) {
                Ok(names) => Some(Frame {
                    upper: Arc::new(fd),
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
            self.ctx.finish(&mut e, &path, &facts);
            self.emit_entry(e)?;
        }
        Ok(child)
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

fn meta_changes(a: &Side, b: &Side, out: &mut Vec<String>) {
    if a.mode != b.mode && a.file_type != Some(FileType::Symlink) {
        out.push("mode".into());
    }
    if a.uid != b.uid || a.gid != b.gid {
        out.push("owner".into());
    }
}

/// Lower-case hex (the `hex` crate goes through a `char` iterator: slower on 100,000 hashes).
fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
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
    /// The image file's SHA-256, when asked for and the bytes differ.
    lower_sha256: Option<[u8; 32]>,
}

/// What a read pass computes besides the head.
#[derive(Clone, Copy)]
struct Want {
    sha: bool,
    md5: bool,
    /// The image file's SHA-256 when it differs (`--hash all`).
    lower_sha: bool,
}

impl Ctx<'_> {
    fn finish(&self, e: &mut FileEntry, path: &[u8], facts: &Facts) {
        e.category = self.classifier.classify(path, facts);
        if e.package.is_none() {
            e.package = self.dpkg.and_then(|d| d.owner(path)).map(str::to_owned);
        }
        e.drift = e.change != ChangeKind::CopiedUp && !e.category.expected();
    }

    /// Decide a regular file of the upper layer (on a worker).
    fn file(&self, job: FileJob, bufs: &mut Bufs) -> Done {
        let FileJob {
            dir,
            name,
            path,
            mut up,
            up_blocks,
            lower,
        } = job;
        let mut done = Done::default();
        let (change, img) = match lower {
            None => (ChangeKind::Added, None),
            Some((img, ldir)) if img.file_type == Some(FileType::File) => {
                (ChangeKind::Modified, Some((img, ldir)))
            }
            Some((img, _)) => {
                let mut e = FileEntry::new(&path, ChangeKind::TypeChanged);
                e.changed.push("type".into());
                e.image = Some(img);
                let (facts, _, _) =
                    self.read_facts(&dir, &name, None, &mut up, &path, bufs, &mut done);
                e.container = Some(up);
                self.finish(&mut e, &path, &facts);
                done.entry = Some(e);
                return done;
            }
        };
        let size = up.size.unwrap_or(0);
        // A metadata-only copy-up (overlay metacopy) has no data of its own: its bytes are the
        // image file's. Only a data-less upper file is asked (no xattr call for the others).
        let metacopy = up_blocks == 0
            && size > 0
            && overlay::open_file(dir.as_fd(), &name)
                .is_ok_and(|fd| overlay::is_metacopy(fd.as_fd(), self.opts.xattrs));
        let same_size = img.as_ref().is_some_and(|(i, _)| i.size == up.size);
        let (facts, differs, lower_sha) = if metacopy {
            match img.as_ref().filter(|_| same_size) {
                // Read the image file as the container's data: hashed once, nothing compared.
                Some((_, ldir)) => {
                    let (f, _, _) =
                        self.read_facts(ldir, &name, None, &mut up, &path, bufs, &mut done);
                    (f, Some(false), None)
                }
                None => (
                    Facts {
                        file_type: Some(FileType::File),
                        exec_bits: up.mode.is_some_and(|m| m & 0o111 != 0),
                        ..Facts::default()
                    },
                    None,
                    None,
                ),
            }
        } else {
            let lower_dir = img
                .as_ref()
                .filter(|_| same_size)
                .map(|(_, ldir)| ldir.as_fd());
            self.read_facts(&dir, &name, lower_dir, &mut up, &path, bufs, &mut done)
        };
        let mut e = FileEntry::new(&path, change);
        if metacopy {
            e.notes.push(if differs.is_some() {
                "metadata-only copy-up (overlay metacopy): the data is the image file's".into()
            } else {
                "metadata-only copy-up (overlay metacopy) whose data is not at this path in the image: content not compared".into()
            });
        }
        if let Some((mut img, ldir)) = img {
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
                if !differs && up.sha256.is_some() {
                    img.sha256.clone_from(&up.sha256);
                } else if let Some(h) = lower_sha {
                    // Hashed in the comparison's read.
                    img.sha256 = Some(to_hex(&h));
                } else if let Ok(fd) = overlay::open_file(ldir.as_fd(), &name) {
                    img.sha256 = self
                        .sha256_of(fd, img.size.unwrap_or(0), &mut bufs.b)
                        .ok()
                        .map(|h| to_hex(&h));
                }
            }
            e.image = Some(img);
        }
        e.container = Some(up);
        self.finish(&mut e, &path, &facts);
        done.entry = Some(e);
        done
    }

    /// Read a container file (`name` in `dir`): its facts for classification, its hashes into
    /// `up`, the debsums check into `done`; returns whether it differs from the same name in
    /// `lower` (an image file of the same size) and, with `--hash all`, the image file's hash
    /// when it differs.
    #[allow(clippy::too_many_arguments)]
    fn read_facts(
        &self,
        dir: &OwnedFd,
        name: &CString,
        lower: Option<std::os::fd::BorrowedFd<'_>>,
        up: &mut Side,
        path: &[u8],
        bufs: &mut Bufs,
        done: &mut Done,
    ) -> (Facts, Option<bool>, Option<[u8; 32]>) {
        let mut facts = Facts {
            file_type: Some(FileType::File),
            exec_bits: up.mode.is_some_and(|m| m & 0o111 != 0),
            package_owned: self.dpkg.is_some_and(|d| d.owner(path).is_some()),
            ..Facts::default()
        };
        let want_md5 = self.dpkg.is_some_and(|d| d.has_md5(path));
        let want_sha = self.opts.hash != HashMode::None;
        let upper_fd = match overlay::open_file(dir.as_fd(), name) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::debug!(path = %crate::pathfmt::escape(path), error = %e, "cannot open container file");
                return (facts, None, None);
            }
        };
        let lower_fd = lower.and_then(|d| overlay::open_file(d, name).ok());
        let size = up.size.unwrap_or(0);
        let want = Want {
            sha: want_sha,
            md5: want_md5,
            lower_sha: self.opts.hash == HashMode::All,
        };
        let out = match self.read_pass(upper_fd, size, lower_fd, want, bufs) {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(path = %crate::pathfmt::escape(path), error = %e, "cannot read container file");
                return (facts, None, None);
            }
        };
        let head = &out.head[..out.head_len];
        facts.elf = head == b"\x7fELF";
        facts.script = head.starts_with(b"#!");
        up.sha256 = out.sha256.as_ref().map(|h| to_hex(h));
        if let (Some(d), Some(md5)) = (self.dpkg, out.md5) {
            done.unmanaged = d.check(path, Some(&md5));
        }
        (facts, out.differs, out.lower_sha256)
    }

    /// Read the first `size` bytes of `upper` (its size when it was stat'ed: the hash is of
    /// what was reported) once: optional SHA-256 and MD5, the first bytes, and the comparison
    /// with `lower` (an image file of that size). Stops as soon as nothing more is needed, and
    /// never reads past `size`, so no read is spent on finding the end of the file.
    ///
    /// With `want.lower_sha`, once the bytes differ the image file is read on to its end in the
    /// same pass and hashed: its hash starts from the container hash's state before the first
    /// differing chunk (the bytes before it are equal), so no byte is hashed twice and no file
    /// opened twice.
    fn read_pass(
        &self,
        upper: OwnedFd,
        size: u64,
        lower: Option<OwnedFd>,
        want: Want,
        bufs: &mut Bufs,
    ) -> io::Result<ReadOut> {
        let mut out = ReadOut::default();
        let mut fu = std::fs::File::from(upper);
        let mut fl = lower.map(std::fs::File::from);
        let mut sha = want.sha.then(Sha256::new);
        let mut md5 = want.md5.then(Md5::new);
        let want_lower_sha = want.lower_sha && sha.is_some() && fl.is_some();
        // The image file's hash, once it differs.
        let mut lower_sha: Option<Sha256> = None;
        let mut equal = fl.is_some();
        let mut first = true;
        let mut remaining = size;
        let mut read = 0u64;
        while remaining > 0 {
            let more_needed = sha.is_some() || md5.is_some() || equal || lower_sha.is_some();
            // Only the head is needed: read just that.
            let cap = if more_needed { bufs.a.len() } else { 4 };
            let want = usize::try_from(remaining).unwrap_or(usize::MAX).min(cap);
            let n = read_full(&mut fu, &mut bufs.a[..want])?;
            read += n as u64;
            if first {
                out.head_len = n.min(4);
                out.head[..out.head_len].copy_from_slice(&bufs.a[..out.head_len]);
                first = false;
            }
            // Compare (and hash the image side) before the container hash takes this chunk.
            if equal || lower_sha.is_some() {
                if let Some(fl) = fl.as_mut() {
                    let m = read_full(fl, &mut bufs.b[..n])?;
                    read += m as u64;
                    if equal && (m != n || bufs.a[..n] != bufs.b[..m]) {
                        equal = false;
                        if want_lower_sha {
                            lower_sha.clone_from(&sha);
                        }
                    }
                    if let Some(h) = lower_sha.as_mut() {
                        h.update(&bufs.b[..m]);
                    }
                }
            }
            if let Some(h) = sha.as_mut() {
                h.update(&bufs.a[..n]);
            }
            if let Some(h) = md5.as_mut() {
                h.update(&bufs.a[..n]);
            }
            if n < want {
                // Shorter than when it was stat'ed: changing under us, not the image's bytes;
                // the image file was not read to its end.
                equal = false;
                lower_sha = None;
                break;
            }
            remaining -= n as u64;
            if !(sha.is_some() || md5.is_some() || equal || lower_sha.is_some()) {
                break;
            }
        }
        self.bytes_read.fetch_add(read, Ordering::Relaxed);
        if fl.is_some() {
            out.differs = Some(!equal);
        }
        out.lower_sha256 = lower_sha.map(|h| h.finalize().into());
        out.sha256 = sha.map(|h| h.finalize().into());
        out.md5 = md5.map(|h| h.finalize().into());
        Ok(out)
    }

    fn sha256_of(&self, fd: OwnedFd, size: u64, buf: &mut [u8]) -> io::Result<[u8; 32]> {
        let mut f = std::fs::File::from(fd);
        let mut h = Sha256::new();
        let mut remaining = size;
        while remaining > 0 {
            let want = usize::try_from(remaining)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = read_full(&mut f, &mut buf[..want])?;
            self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
            h.update(&buf[..n]);
            if n < want {
                break;
            }
            remaining -= n as u64;
        }
        Ok(h.finalize().into())
    }
}

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
//!
//! One job per file:
//! * this file: the public API ([`walk()`], its options, counters and sink) and what the three
//!   others share (the read-only context of a walk, what one entry produced, classification);
//! * `tree.rs`: the walking thread (directories, `statat`, the lower-layer lookup through
//!   [`driftwatch_image::overlay`], whiteouts, opaque and redirected directories, symlinks);
//! * `pool.rs`: the file workers and the queue that puts their results back in walk order;
//! * `read.rs`: deciding a regular file (one read: hashes, ELF check, comparison with the image
//!   file, metacopy).

mod pool;
mod read;
mod tree;

use crate::classify::{Classifier, Facts};
use crate::error::DiffError;
use crate::model::{ChangeKind, FileEntry, FileType, Side, UnmanagedChange};
use crate::packages::dpkg::DpkgFiles;
use driftwatch_event::OverlayLayers;
use driftwatch_image::overlay::{self, LayerDir};
use driftwatch_image::XattrNamespace;
use std::os::fd::AsFd;
use std::sync::atomic::AtomicU64;

/// Entries decided or being decided but not yet handed to the sink, at most.
pub const MAX_IN_FLIGHT: usize = 2048;

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
    let lower_roots = lowers.iter().map(LayerDir::share).collect();
    let root = tree::Frame::root(upper.fd, lowers, names);
    // Returning (also early, on a sink error) drops the walker and with it the job sender: the
    // workers stop.
    pool::run(&ctx, opts.workers(), |out| {
        tree::Walker::new(&ctx, sink, upper.dev, lower_roots, out).run(root)
    })
}

/// The read-only part of a walk, shared by the walking thread and the file workers.
struct Ctx<'a> {
    opts: &'a WalkOptions,
    classifier: &'a Classifier,
    dpkg: Option<&'a DpkgFiles>,
    /// Bytes read from files so far (container and image side), by every thread.
    bytes_read: AtomicU64,
}

impl Ctx<'_> {
    /// Classify a decided entry, name its package, and tell whether it is drift.
    fn finish(&self, e: &mut FileEntry, path: &[u8], facts: &Facts) {
        e.category = self.classifier.classify(path, facts);
        if e.package.is_none() {
            e.package = self.dpkg.and_then(|d| d.owner(path)).map(str::to_owned);
        }
        e.drift = e.change != ChangeKind::CopiedUp && !e.category.expected();
    }
}

/// What one upper entry produced: handed to the sink in walk order.
#[derive(Default)]
struct Done {
    unmanaged: Option<UnmanagedChange>,
    entry: Option<FileEntry>,
}

impl Done {
    fn entry(e: FileEntry) -> Done {
        Done {
            unmanaged: None,
            entry: Some(e),
        }
    }
}

/// The metadata that differs between an image entry `a` and a container entry `b`, by name
/// (`mode`, ignored on symlinks; `owner`).
fn meta_changes(a: &Side, b: &Side, out: &mut Vec<String>) {
    if a.mode != b.mode && a.file_type != Some(FileType::Symlink) {
        out.push("mode".into());
    }
    if a.uid != b.uid || a.gid != b.gid {
        out.push("owner".into());
    }
}

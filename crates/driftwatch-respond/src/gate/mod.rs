//! The exec gate (`--enforce` only): holds every exec of a file in a tracked container's overlay
//! root filesystem until the agent has put its verdict in the kernel, so that enforcement can
//! tell a copied-up-unchanged image file (a `chmod` or `touch` copied it to the upper layer,
//! the bytes are the image's) from drift *before* the new program runs an instruction.
//!
//! How:
//! - One fanotify group (`FAN_CLASS_CONTENT`) with a `FAN_OPEN_EXEC_PERM` mark on each tracked
//!   container's overlay superblock (`FAN_MARK_FILESYSTEM` on `/proc/<init>/root`). The kernel
//!   blocks the exec's open until this thread answers.
//! - A file only in the lower layers is image code: allowed at once. Its identity as `fstat`
//!   reports it through overlayfs (device, inode, ctime — overlayfs reports the *real* inode's
//!   ctime, and a copy-up creates a new upper inode with a new ctime) is cached, so the next
//!   execs of an image binary cost one `fstat` and a cache lookup while they wait. No fanotify
//!   ignore marks: a `chmod` or `touch` copies an image file up without any event that would
//!   clear one, and the copied-up file would then run unjudged (and be killed).
//! - A file in the upper layer is compared byte for byte with the lower file of the same path.
//!   Unchanged: the upper inode (kernel dev, ino, ctime) goes into the BPF map `dw_allow` first,
//!   then the open is allowed; the exec program lets an upper file run only while its ctime
//!   still matches, so a write or chmod after the comparison is drift again. Changed: allowed
//!   here, and the exec program kills it (it is not in `dw_allow`); a drifted `#!` script also
//!   puts the process in `dw_doom`, so the interpreter is killed at its exec before it reads a
//!   line.
//! - Every failure answers "allow" and leaves the decision to the kernel policy alone (which
//!   kills upper-layer execs it has no verdict for): the gate can only ever let *more* run when
//!   it knows the file is the image's.
//! - **Nothing stays held if the agent dies**: when the fanotify descriptor closes (exit, crash,
//!   SIGKILL) the kernel answers every pending and future event "allow", and the BPF programs
//!   detach with the agent. If the agent is stopped (SIGSTOP) or this thread is stuck, execs in
//!   the marked containers wait: the thread does bounded work per event (one comparison of at
//!   most [`MAX_GATE_COMPARE_BYTES`]).
//!
//! A background scanner also judges the files already copied up when a container is first
//! watched (a container started before the agent, a library that was `chmod`ed): shared
//! libraries are mapped, not exec'd, and are never held.

mod scanner;
mod worker;

use crate::approvals::Approvals;
use driftwatch_bpf::{GateMaps, UpperFile};
use driftwatch_event::{ContainerInfo, OverlayLayers};
use driftwatch_image::{copied_up_unchanged, OVERLAYFS_SUPER_MAGIC};
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use scanner::ScanJob;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use scanner::SCAN_QUEUE_MAX;

/// Upper files larger than this are not compared while an exec waits (they stay drift).
pub const MAX_GATE_COMPARE_BYTES: u64 = 64 << 20;
/// The start-up scan of a container's upper layer looks at no more entries than this.
pub const SCAN_MAX_ENTRIES: usize = 50_000;
/// Deepest directory the start-up scan descends to.
const SCAN_MAX_DEPTH: usize = 64;
/// An execve's kept argv older than this (boot-time ns) is not the one of the exec being held.
const EXEC_ARGS_FRESH_NS: u64 = 2_000_000_000;
/// Cached verdicts per gate (cleared when full).
const VERDICT_CACHE_MAX: usize = 65_536;

/// What the gate counts (`driftwatch_gate_*` in `/metrics`).
#[derive(Debug, Default)]
pub struct GateMetrics {
    /// Exec-permission events answered.
    pub events: Counter,
    /// Upper-layer files found to hold unchanged image bytes.
    pub unchanged: Counter,
    /// Upper-layer files allowed because an approval names them (path or SHA-256).
    pub approved: Counter,
    /// Processes doomed for a drifted script.
    pub doomed: Counter,
    /// Failures (marks, reads, map writes).
    pub errors: Counter,
    /// Scan jobs dropped because the scanner's queue was full.
    pub scan_dropped: Counter,
    /// Upper-layer files in the kernel allow map.
    pub allowed_files: Gauge,
}

impl GateMetrics {
    /// Registers every gate metric (names without the `driftwatch_` prefix of the caller's
    /// registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "gate_events",
            "Exec-permission events held by the exec gate (--enforce) until its verdict was in the kernel",
            self.events.clone(),
        );
        registry.register(
            "gate_unchanged",
            "Upper-layer files the exec gate found to hold unchanged image bytes (allowed to run)",
            self.unchanged.clone(),
        );
        registry.register(
            "gate_approved",
            "Upper-layer files the exec gate allowed to run because an approval names them",
            self.approved.clone(),
        );
        registry.register(
            "gate_doomed",
            "Execs of drifted scripts the exec gate had the kernel kill before the interpreter ran",
            self.doomed.clone(),
        );
        registry.register(
            "gate_errors",
            "Exec-gate failures (marks, reads, map writes); the kernel policy then decides alone",
            self.errors.clone(),
        );
        registry.register(
            "gate_scan_dropped",
            "Upper-layer scan jobs dropped because the scanner's queue was full (fail-closed)",
            self.scan_dropped.clone(),
        );
        registry.register(
            "gate_allowed_files",
            "Upper-layer files in the kernel allow map (copied-up-unchanged image files)",
            self.allowed_files.clone(),
        );
    }
}

/// A count for a gauge.
fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Why the gate could not start.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("fanotify_init failed (needs CAP_SYS_ADMIN and CONFIG_FANOTIFY_ACCESS_PERMISSIONS)")]
    Init(#[source] nix::Error),
    #[error("cannot start the exec gate thread")]
    Thread(#[source] std::io::Error),
}

/// The running gate. Dropping it stops the thread and closes the fanotify group (every held
/// exec is then allowed by the kernel).
pub struct ExecGate {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    scanner: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ExecGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecGate").finish_non_exhaustive()
    }
}

/// Verdicts in the kernel, by container (to withdraw them when the container goes).
struct Allowed {
    maps: GateMaps,
    by_container: HashMap<String, Vec<UpperFile>>,
}

impl Allowed {
    fn allow(&mut self, container: &str, file: UpperFile) -> Result<(), driftwatch_bpf::BpfError> {
        self.maps.allow(&file)?;
        let v = self.by_container.entry(container.to_string()).or_default();
        if !v.contains(&file) {
            v.push(file);
        }
        Ok(())
    }

    fn forget_container(&mut self, container: &str) {
        for f in self.by_container.remove(container).unwrap_or_default() {
            if let Err(e) = self.maps.forget(&f) {
                tracing::debug!(error = %e, "cannot withdraw an allow entry");
            }
        }
    }

    fn len(&self) -> usize {
        self.by_container.values().map(Vec::len).sum()
    }
}

struct Watched {
    id: String,
    layers: OverlayLayers,
    info: Box<ContainerInfo>,
}

#[derive(Default)]
struct Watching {
    /// Overlay `st_dev` (userspace encoding) of each watched container's root filesystem.
    by_dev: HashMap<u64, Watched>,
    /// Devices of containers gone since the worker last looked (their cache entries go).
    gone: Vec<u64>,
    /// Watched containers whose root is read-only (not marked).
    read_only: HashSet<String>,
}

/// What the caller's thread (watch/unwatch), the gate thread and the scanner share.
struct Shared {
    fan: Fanotify,
    watching: Mutex<Watching>,
    allowed: Mutex<Allowed>,
    metrics: Arc<GateMetrics>,
    scan_tx: Mutex<Option<mpsc::SyncSender<ScanJob>>>,
    own_root_dev: Option<u64>,
    /// Approved drift: files it names are allowed like copied-up-unchanged image files.
    approvals: Arc<Approvals>,
}

impl Shared {
    /// The container a watched container id is.
    fn info_of(&self, id: &str) -> Option<Box<ContainerInfo>> {
        let w = self.watching.lock().ok()?;
        w.by_dev
            .values()
            .find(|x| x.id == id)
            .map(|x| x.info.clone())
    }
}

impl ExecGate {
    /// Creates the fanotify group and starts the gate and scanner threads. Upper-layer files
    /// that `approvals` names (path, SHA-256) are allowed in the kernel like copied-up-unchanged
    /// image files.
    pub fn start(
        maps: GateMaps,
        metrics: Arc<GateMetrics>,
        approvals: Arc<Approvals>,
    ) -> Result<ExecGate, GateError> {
        let fan = Fanotify::init(
            InitFlags::FAN_CLASS_CONTENT | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
        )
        .map_err(GateError::Init)?;
        let (scan_tx, scan_rx) = mpsc::sync_channel::<ScanJob>(SCAN_QUEUE_MAX);
        let shared = Arc::new(Shared {
            fan,
            watching: Mutex::new(Watching::default()),
            allowed: Mutex::new(Allowed {
                maps,
                by_container: HashMap::new(),
            }),
            metrics,
            scan_tx: Mutex::new(Some(scan_tx)),
            own_root_dev: std::fs::metadata("/").map(|m| m.dev()).ok(),
            approvals,
        });
        let scanner = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("dw-gate-scan".into())
                .spawn(move || scanner::run(&shared, scan_rx))
                .map_err(GateError::Thread)?
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut worker = worker::Worker::new(shared.clone());
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("dw-exec-gate".into())
            .spawn(move || worker.run(&thread_stop))
            .map_err(GateError::Thread)?;
        Ok(ExecGate {
            shared,
            stop,
            thread: Some(thread),
            scanner: Some(scanner),
        })
    }

    /// Hold the execs of this container's root filesystem from now on (marked before this
    /// returns), and judge what its upper layer already holds (in the background).
    pub fn watch(&self, c: &ContainerInfo) {
        let sh = &self.shared;
        let (Some(pid), Some(layers)) = (c.init_pid, c.rootfs.as_ref()) else {
            return;
        };
        let Ok(mut watching) = sh.watching.lock() else {
            return;
        };
        if watching.read_only.contains(&c.id) || watching.by_dev.values().any(|w| w.id == c.id) {
            return;
        }
        let root = match File::open(format!("/proc/{pid}/root")) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(container = %c.id, error = %e, "exec gate: container root gone");
                return;
            }
        };
        // Never mark anything but a container's own overlay: a recycled init pid could name a
        // host process, whose root is the host's.
        let is_overlay = rustix::fs::fstatfs(&root)
            .map(|s| s.f_type == OVERLAYFS_SUPER_MAGIC as i64)
            .unwrap_or(false);
        let Ok(meta) = root.metadata() else { return };
        let mntns_ok = c.mntns.is_none_or(|ns| {
            std::fs::metadata(format!("/proc/{pid}/ns/mnt")).is_ok_and(|m| m.ino() == ns)
        });
        if !is_overlay || Some(meta.dev()) == sh.own_root_dev || !mntns_ok {
            tracing::debug!(container = %c.id, "exec gate: root is not the container's overlay");
            return;
        }
        // A read-only root (readOnlyRootFilesystem) cannot copy anything up from inside: no
        // exec there needs holding; what its upper layer already holds is still judged below.
        let read_only = rustix::fs::fstatvfs(&root)
            .is_ok_and(|v| v.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
        if read_only {
            tracing::debug!(container = %c.id, "exec gate: read-only root, execs not held");
            watching.read_only.insert(c.id.clone());
        } else if let Err(e) = sh.fan.mark(
            MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_FILESYSTEM,
            MaskFlags::FAN_OPEN_EXEC_PERM,
            root.as_fd(),
            None::<&Path>,
        ) {
            sh.metrics.errors.inc();
            tracing::warn!(container = %c.id, error = %e, "exec gate: cannot mark the container's root filesystem");
            return;
        }
        tracing::debug!(container = %c.id, dev = meta.dev(), "exec gate: watching");
        watching.by_dev.insert(
            meta.dev(),
            Watched {
                id: c.id.clone(),
                layers: layers.clone(),
                info: Box::new(c.clone()),
            },
        );
        self.queue(ScanJob::Upper {
            id: c.id.clone(),
            layers: layers.clone(),
        });
    }

    /// A file of a watched container may just have been copied up (a file event: chmod, chown,
    /// utimes, an open for write): judge it in the background, so that a copied-up image library
    /// is allowed before it is mapped. Best effort: the exec of a file is held and judged anyway.
    pub fn judge_path(&self, c: &ContainerInfo, path: &[u8]) {
        let Some(layers) = c.rootfs.as_ref() else {
            return;
        };
        let watched = self
            .shared
            .watching
            .lock()
            .is_ok_and(|w| w.by_dev.values().any(|x| x.id == c.id));
        if watched {
            self.queue(ScanJob::Path {
                id: c.id.clone(),
                layers: layers.clone(),
                path: path.to_vec(),
            });
        }
    }

    /// Queues a scan job; a full queue drops it (counted, see [`scanner`]).
    fn queue(&self, job: ScanJob) {
        let Ok(tx) = self.shared.scan_tx.lock() else {
            return;
        };
        let Some(tx) = tx.as_ref() else { return };
        if let Err(mpsc::TrySendError::Full(_)) = tx.try_send(job) {
            self.shared.metrics.scan_dropped.inc();
            tracing::debug!("exec gate: scan queue full, job dropped");
        }
    }

    /// The container is gone: withdraw its verdicts. (The superblock's marks go with the
    /// filesystem itself.)
    pub fn unwatch(&self, id: &str) {
        let sh = &self.shared;
        if let Ok(mut w) = sh.watching.lock() {
            let devs: Vec<u64> = w
                .by_dev
                .iter()
                .filter(|(_, x)| x.id == id)
                .map(|(d, _)| *d)
                .collect();
            w.by_dev.retain(|_, x| x.id != id);
            w.read_only.remove(id);
            w.gone.extend(devs);
        }
        if let Ok(mut a) = sh.allowed.lock() {
            a.forget_container(id);
            sh.metrics.allowed_files.set(gauge(a.len()));
        }
    }
}

impl Drop for ExecGate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Closing the scan queue ends the scanner after its current job.
        if let Ok(mut tx) = self.shared.scan_tx.lock() {
            tx.take();
        }
        if let Some(t) = self.scanner.take() {
            let _ = t.join();
        }
    }
}

/// The kernel identity of an upper file, as `dw_allow` keys it.
fn upper_file(m: &std::fs::Metadata) -> UpperFile {
    UpperFile::from_stat(m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
}

/// The upper file is still its image file ([`copied_up_unchanged`]), and the upper inode was
/// not changed while they were compared.
fn unchanged_image_bytes(
    layers: &OverlayLayers,
    path: &[u8],
    upper: &mut File,
    before: &UpperFile,
) -> bool {
    copied_up_unchanged(layers, path, upper).unwrap_or(false)
        && upper.metadata().is_ok_and(|m| upper_file(&m) == *before)
}

/// Now, in seconds since the epoch (approvals expire).
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// SHA-256 of an open file from its start (at most [`MAX_GATE_COMPARE_BYTES`]).
fn sha256_of(f: &mut File) -> Option<[u8; 32]> {
    use std::io::{Seek, SeekFrom};
    if f.metadata().ok()?.len() > MAX_GATE_COMPARE_BYTES {
        return None;
    }
    f.seek(SeekFrom::Start(0)).ok()?;
    driftwatch_image::sha256_fd(f.try_clone().ok()?).ok()
}

/// The upper file at container path `path` of `info` is approved (an approvals entry or the
/// rule allow-lists name it by path or SHA-256), and its upper inode was not changed while it
/// was hashed.
fn approved_upper(
    approvals: &Approvals,
    info: &ContainerInfo,
    path: &[u8],
    upper: &mut File,
    before: &UpperFile,
) -> bool {
    if !approvals.has_file_entries() {
        return false;
    }
    let approved = approvals
        .file(info, path, &mut || sha256_of(upper), now_secs())
        .map(|a| (a.reason.clone(), a.origin.clone()));
    let Some((reason, origin)) = approved else {
        return false;
    };
    let unchanged = upper.metadata().is_ok_and(|m| upper_file(&m) == *before);
    if unchanged {
        tracing::debug!(container = %info.id, path = %driftwatch_event::text::lossy(path), reason = %reason, origin = %origin, "exec gate: approved file allowed");
    }
    unchanged
}

/// Whether the file at container path `path` of `info` is approved.
fn approved_path(approvals: &Approvals, info: &ContainerInfo, path: &[u8]) -> bool {
    approvals
        .file_in_container(info, path, now_secs())
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn layers(root: &Path) -> OverlayLayers {
        for d in ["lower", "upper"] {
            std::fs::create_dir_all(root.join(d).join("bin")).expect("mkdir");
        }
        OverlayLayers {
            lowerdirs: vec![root.join("lower")],
            upperdir: Some(root.join("upper")),
            workdir: None,
        }
    }

    fn judge(l: &OverlayLayers, path: &[u8]) -> bool {
        let upperdir = l.upperdir.as_deref().expect("upper");
        let mut f = driftwatch_image::open_in_layer(upperdir, path).expect("open upper");
        let m = f.metadata().expect("stat");
        unchanged_image_bytes(l, path, &mut f, &upper_file(&m))
    }

    #[test]
    fn copied_up_bytes_are_unchanged_and_anything_else_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = layers(dir.path());
        let lower = dir.path().join("lower/bin");
        let upper = dir.path().join("upper/bin");
        std::fs::write(lower.join("tool"), b"\x7fELF image bytes").expect("write");
        // chmod: same bytes, other mode.
        std::fs::write(upper.join("tool"), b"\x7fELF image bytes").expect("write");
        std::fs::set_permissions(upper.join("tool"), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        assert!(judge(&l, b"/bin/tool"));
        // Same size, other bytes.
        std::fs::write(lower.join("same-size"), b"aaaa").expect("write");
        std::fs::write(upper.join("same-size"), b"aaab").expect("write");
        assert!(!judge(&l, b"/bin/same-size"));
        // Only in the upper layer.
        std::fs::write(upper.join("new"), b"x").expect("write");
        assert!(!judge(&l, b"/bin/new"));
        // The lower path is a directory.
        std::fs::create_dir(lower.join("dir")).expect("mkdir");
        std::fs::write(upper.join("dir"), b"x").expect("write");
        assert!(!judge(&l, b"/bin/dir"));
        // A lower symlink to the same bytes is not the same file.
        std::os::unix::fs::symlink("tool", lower.join("link")).expect("symlink");
        std::fs::write(upper.join("link"), b"\x7fELF image bytes").expect("write");
        assert!(!judge(&l, b"/bin/link"));
    }
}

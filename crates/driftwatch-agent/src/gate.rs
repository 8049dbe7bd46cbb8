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

use crate::metrics::Metrics;
use driftwatch_bpf::{GateMaps, UpperFile};
use driftwatch_event::{ContainerInfo, OverlayLayers};
use driftwatch_image::{lookup, open_in_layer, same_content, EntryKind, OVERLAYFS_SUPER_MAGIC};
use nix::sys::fanotify::{
    EventFFlags, Fanotify, FanotifyEvent, FanotifyResponse, InitFlags, MarkFlags, MaskFlags,
    Response,
};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Upper files larger than this are not compared while an exec waits (they stay drift).
pub const MAX_GATE_COMPARE_BYTES: u64 = 64 << 20;
/// The start-up scan of a container's upper layer looks at no more entries than this.
pub const SCAN_MAX_ENTRIES: usize = 50_000;
const SCAN_MAX_DEPTH: usize = 64;
/// An execve's kept argv older than this (boot-time ns) is not the one of the exec being held.
const EXEC_ARGS_FRESH_NS: u64 = 2_000_000_000;
/// Cached verdicts per gate (cleared when full).
const VERDICT_CACHE_MAX: usize = 65_536;

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

enum ScanJob {
    /// Everything a container's upper layer holds (bounded).
    Upper { id: String, layers: OverlayLayers },
    /// One container path.
    Path {
        id: String,
        layers: OverlayLayers,
        path: Vec<u8>,
    },
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
    metrics: Arc<Metrics>,
    scan_tx: Mutex<Option<mpsc::Sender<ScanJob>>>,
    own_root_dev: Option<u64>,
}

impl ExecGate {
    /// Creates the fanotify group and starts the gate and scanner threads.
    pub fn start(maps: GateMaps, metrics: Arc<Metrics>) -> Result<ExecGate, GateError> {
        let fan = Fanotify::init(
            InitFlags::FAN_CLASS_CONTENT | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
        )
        .map_err(GateError::Init)?;
        let (scan_tx, scan_rx) = mpsc::channel::<ScanJob>();
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
        });
        let scanner = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("dw-gate-scan".into())
                .spawn(move || {
                    while let Ok(job) = scan_rx.recv() {
                        match job {
                            ScanJob::Upper { id, layers } => {
                                scan_upper(&id, &layers, &shared.allowed, &shared.metrics)
                            }
                            ScanJob::Path { id, layers, path } => {
                                judge_upper_path(
                                    &id,
                                    &layers,
                                    &path,
                                    &shared.allowed,
                                    &shared.metrics,
                                );
                            }
                        }
                    }
                })
                .map_err(GateError::Thread)?
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut worker = Worker {
            shared: shared.clone(),
            verdicts: HashMap::new(),
            lower_only: HashMap::new(),
            origins: crate::origin::Origins::new(VERDICT_CACHE_MAX),
        };
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
            sh.metrics.gate_errors.fetch_add(1, Ordering::Relaxed);
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

    fn queue(&self, job: ScanJob) {
        if let Ok(tx) = self.shared.scan_tx.lock() {
            if let Some(tx) = tx.as_ref() {
                let _ = tx.send(job);
            }
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
            sh.metrics
                .gate_allowed_files
                .store(a.len() as u64, Ordering::Relaxed);
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

struct Worker {
    shared: Arc<Shared>,
    /// Upper files already compared: true = unchanged image bytes.
    verdicts: HashMap<UpperFile, bool>,
    /// Files seen only in the lower layers, as overlayfs' `fstat` names them (dev, ino, ctime),
    /// and whether each may be a script interpreter (its path, for [`Worker::check_script`]).
    lower_only: HashMap<(u64, u64, i64, i64), Option<Vec<u8>>>,
    /// Script verdicts for interpreters' program files (mount and layer lookups, cached).
    origins: crate::origin::Origins,
}

impl Worker {
    fn run(&mut self, stop: &AtomicBool) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        while !stop.load(Ordering::Acquire) {
            let gone: Vec<u64> = match self.shared.watching.lock() {
                Ok(mut w) => std::mem::take(&mut w.gone),
                Err(_) => Vec::new(),
            };
            if !gone.is_empty() {
                self.lower_only.retain(|k, _| !gone.contains(&k.0));
            }
            let ready = {
                let mut fds = [PollFd::new(self.shared.fan.as_fd(), PollFlags::POLLIN)];
                matches!(poll(&mut fds, PollTimeout::from(200u16)), Ok(n) if n > 0)
            };
            if !ready {
                continue;
            }
            let events = match self.shared.fan.read_events() {
                Ok(ev) => ev,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "exec gate: cannot read fanotify events");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            for ev in events {
                self.answer(&ev);
            }
        }
    }

    fn answer(&mut self, ev: &FanotifyEvent) {
        let Some(fd) = ev.fd() else {
            // Queue overflow: nothing to answer.
            return;
        };
        if !ev.mask().contains(MaskFlags::FAN_OPEN_EXEC_PERM) {
            return;
        }
        self.shared
            .metrics
            .gate_events
            .fetch_add(1, Ordering::Relaxed);
        let tgid = u32::try_from(ev.pid()).unwrap_or(0);
        self.judge(fd, tgid);
        // Always allow: drift is stopped by the exec program, which has the last word.
        if let Err(e) = self
            .shared
            .fan
            .write_response(FanotifyResponse::new(fd, Response::FAN_ALLOW))
        {
            self.shared
                .metrics
                .gate_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "exec gate: cannot answer a permission event");
        }
    }

    /// An interpreter is being exec'd by `tgid`: if its program file (from the argv kept at
    /// `execve` entry, `dw_exec_args`) is drift, the process is doomed: the kernel kills it at
    /// the exec, before the interpreter reads a line.
    fn check_script(&mut self, exepath: &[u8], tgid: u32, dev: u64) {
        use crate::script;
        let info = match self.shared.watching.lock() {
            Ok(w) => w.by_dev.get(&dev).map(|x| x.info.clone()),
            Err(_) => None,
        };
        let Some(info) = info else { return };
        let args = match self.shared.allowed.lock() {
            Ok(a) => a.maps.exec_args(tgid),
            Err(_) => None,
        };
        let Some(args) = args else { return };
        // The entry must be this exec's: kept a moment ago.
        let now = driftwatch_bpf::boot_time_ns();
        if now.saturating_sub(args.ktime_ns) > EXEC_ARGS_FRESH_NS {
            return;
        }
        let Some(it) = script::interpreter_of(exepath, args.args.first().map(Vec::as_slice)) else {
            return;
        };
        let Some(file) = script::script_argument(it, &args.args) else {
            return;
        };
        if file.len() >= driftwatch_abi::DW_EXEC_ARG_LEN - 1 {
            // Possibly cut: the agent judges it after the start instead.
            return;
        }
        let cwd = std::fs::read_link(format!("/proc/{tgid}/cwd"))
            .ok()
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .filter(|c| c.starts_with(b"/") && !c.ends_with(b" (deleted)"));
        let Some(abs) = script::absolute(file, cwd.as_deref()) else {
            return;
        };
        let drift = self
            .origins
            .script(&info, tgid, info.mntns.unwrap_or(0), &abs)
            .is_some_and(|v| v.origin.is_drift());
        if !drift {
            return;
        }
        self.doom(tgid);
    }

    /// Has the kernel kill process `tgid` at its exec (within `DW_DOOM_TTL_NS`).
    fn doom(&self, tgid: u32) {
        let Ok(mut a) = self.shared.allowed.lock() else {
            return;
        };
        let m = &self.shared.metrics;
        match a.maps.doom(tgid) {
            Ok(()) => {
                m.gate_doomed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                m.gate_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "exec gate: cannot write the doom map");
            }
        }
    }

    /// This inode's execs are not held again (until it is written: fanotify clears ignore
    /// marks on modification).
    fn ignore(&self, fd: BorrowedFd<'_>) {
        if let Err(e) = self.shared.fan.mark(
            MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_IGNORED_MASK,
            MaskFlags::FAN_OPEN_EXEC_PERM,
            fd,
            None::<&Path>,
        ) {
            tracing::debug!(error = %e, "exec gate: cannot add an ignore mark");
        }
    }

    /// Puts the verdict on the file being exec'd in the kernel (or nothing, when in doubt).
    fn judge(&mut self, fd: BorrowedFd<'_>, tgid: u32) {
        let Ok(meta) = rustix::fs::fstat(fd) else {
            return;
        };
        let seen = (
            meta.st_dev,
            meta.st_ino,
            meta.st_ctime,
            meta.st_ctime_nsec as i64,
        );
        if let Some(interp) = self.lower_only.get(&seen) {
            if let Some(exepath) = interp.clone() {
                self.check_script(&exepath, tgid, meta.st_dev);
            }
            return;
        }
        let (id, layers) = match self.shared.watching.lock() {
            Ok(w) => match w.by_dev.get(&meta.st_dev) {
                Some(x) => (x.id.clone(), x.layers.clone()),
                None => return,
            },
            Err(_) => return,
        };
        let Some(path) = fd_path(fd) else { return };
        let Some(upperdir) = layers.upperdir.clone() else {
            // No upper layer: nothing in this container can be drift on its root filesystem.
            return;
        };
        let mut upper = match open_in_layer(&upperdir, &path) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => {
                // Only in the lower layers: image code.
                if is_dynamic_loader(&path) {
                    // Opened for exec by every dynamic exec (as its ELF interpreter): not held
                    // again. The exec program still judges it at every exec; a copy-up of it is
                    // re-judged from the file event, and a write clears the ignore mark.
                    self.ignore(fd);
                    return;
                }
                if self.lower_only.len() >= VERDICT_CACHE_MAX {
                    self.lower_only.clear();
                }
                let interp = may_interpret(&path);
                self.lower_only.insert(seen, interp.then(|| path.clone()));
                if interp {
                    self.check_script(&path, tgid, meta.st_dev);
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "exec gate: cannot open the upper file");
                return;
            }
        };
        let Ok(um) = upper.metadata() else { return };
        let file = upper_file(&um);
        let unchanged = match self.verdicts.get(&file) {
            Some(v) => *v,
            None => {
                let v = um.len() <= MAX_GATE_COMPARE_BYTES
                    && unchanged_image_bytes(&layers, &path, &mut upper, &file);
                if self.verdicts.len() >= VERDICT_CACHE_MAX {
                    self.verdicts.clear();
                }
                self.verdicts.insert(file, v);
                if v {
                    self.shared
                        .metrics
                        .gate_unchanged
                        .fetch_add(1, Ordering::Relaxed);
                }
                v
            }
        };
        if unchanged {
            let Ok(mut allowed) = self.shared.allowed.lock() else {
                return;
            };
            if let Err(e) = allowed.allow(&id, file) {
                self.shared
                    .metrics
                    .gate_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "exec gate: cannot write the allow map");
            }
            self.shared
                .metrics
                .gate_allowed_files
                .store(allowed.len() as u64, Ordering::Relaxed);
        } else if is_script(&mut upper) && tgid != 0 {
            self.doom(tgid);
        }
    }
}

/// A file that may interpret a program file given as an argument (a shell, python, …, or
/// busybox, whose applet is named by argv[0]).
fn may_interpret(path: &[u8]) -> bool {
    let name = crate::script::basename(path);
    name == b"busybox" || crate::script::interpreter_of(path, None).is_some()
}

/// The dynamic loaders (`ld-linux*.so*`, `ld-musl-*.so*`) in the usual library directories.
fn is_dynamic_loader(path: &[u8]) -> bool {
    let (dir, name) = match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => return false,
    };
    let in_lib_dir = [&b"/lib"[..], b"/lib64", b"/usr/lib", b"/usr/lib64"]
        .iter()
        .any(|d| dir == *d || (dir.starts_with(d) && dir.get(d.len()) == Some(&b'/')));
    in_lib_dir && (name.starts_with(b"ld-linux") || name.starts_with(b"ld-musl-"))
}

/// The container path of an open file on a container's root filesystem: the kernel prints it
/// relative to that mount's root, which the agent cannot reach from its own root.
fn fd_path(fd: BorrowedFd<'_>) -> Option<Vec<u8>> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    let bytes = link.as_os_str().as_bytes().to_vec();
    if !bytes.starts_with(b"/") || bytes.ends_with(b" (deleted)") {
        return None;
    }
    Some(bytes)
}

fn upper_file(m: &std::fs::Metadata) -> UpperFile {
    UpperFile::from_stat(m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
}

/// The upper file's bytes equal the lower file's at the same path, and the upper inode was not
/// changed while they were compared.
fn unchanged_image_bytes(
    layers: &OverlayLayers,
    path: &[u8],
    upper: &mut File,
    before: &UpperFile,
) -> bool {
    let Some(hit) = lookup(layers, path).ok().and_then(|l| l.lower) else {
        return false;
    };
    if hit.kind != EntryKind::File {
        return false;
    }
    let Some(dir) = layers.lowerdirs.get(hit.layer_index) else {
        return false;
    };
    let Ok(mut lower) = open_in_layer(dir, path) else {
        return false;
    };
    if !same_content(upper, &mut lower).unwrap_or(false) {
        return false;
    }
    upper.metadata().is_ok_and(|m| upper_file(&m) == *before)
}

/// Starts with `#!`.
fn is_script(f: &mut File) -> bool {
    use std::io::{Seek, SeekFrom};
    let mut magic = [0u8; 2];
    f.seek(SeekFrom::Start(0)).is_ok() && f.read_exact(&mut magic).is_ok() && &magic == b"#!"
}

/// Judges the files a container's upper layer already holds (bounded), so that copied-up
/// image files that are mapped (libraries) or run before the first held exec are allowed too.
fn scan_upper(id: &str, layers: &OverlayLayers, allowed: &Mutex<Allowed>, metrics: &Metrics) {
    let Some(upperdir) = layers.upperdir.as_deref() else {
        return;
    };
    let mut stack: Vec<(PathBuf, usize)> = vec![(PathBuf::from("/"), 0)];
    let mut seen = 0usize;
    let mut found = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        let host = upperdir.join(dir.strip_prefix("/").unwrap_or(&dir));
        let Ok(entries) = std::fs::read_dir(&host) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > SCAN_MAX_ENTRIES {
                tracing::info!(
                    container = id,
                    "exec gate: upper layer scan stopped at the entry limit"
                );
                return;
            }
            // file_type() does not follow symlinks.
            let Ok(ft) = entry.file_type() else { continue };
            let path = dir.join(entry.file_name());
            if ft.is_dir() {
                if depth < SCAN_MAX_DEPTH {
                    stack.push((path, depth + 1));
                }
                continue;
            }
            if ft.is_file()
                && judge_upper_path(id, layers, path.as_os_str().as_bytes(), allowed, metrics)
            {
                found += 1;
            }
        }
    }
    tracing::debug!(
        container = id,
        entries = seen,
        unchanged = found,
        "exec gate: upper layer scanned"
    );
}

/// Puts the upper file at container path `path` in `dw_allow` if it holds unchanged image bytes.
fn judge_upper_path(
    id: &str,
    layers: &OverlayLayers,
    path: &[u8],
    allowed: &Mutex<Allowed>,
    metrics: &Metrics,
) -> bool {
    let Some(upperdir) = layers.upperdir.as_deref() else {
        return false;
    };
    let Ok(mut upper) = open_in_layer(upperdir, path) else {
        return false;
    };
    let Ok(um) = upper.metadata() else {
        return false;
    };
    if um.len() > MAX_GATE_COMPARE_BYTES {
        return false;
    }
    let file = upper_file(&um);
    if !unchanged_image_bytes(layers, path, &mut upper, &file) {
        return false;
    }
    if let Ok(mut a) = allowed.lock() {
        if a.allow(id, file).is_ok() {
            metrics.gate_unchanged.fetch_add(1, Ordering::Relaxed);
        }
        metrics
            .gate_allowed_files
            .store(a.len() as u64, Ordering::Relaxed);
    }
    true
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
        let mut f = open_in_layer(upperdir, path).expect("open upper");
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

    #[test]
    fn dynamic_loaders_are_told_by_name_and_directory() {
        assert!(is_dynamic_loader(b"/lib64/ld-linux-x86-64.so.2"));
        assert!(is_dynamic_loader(
            b"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
        ));
        assert!(is_dynamic_loader(b"/lib/ld-musl-x86_64.so.1"));
        assert!(is_dynamic_loader(b"/usr/lib/ld-linux-aarch64.so.1"));
        assert!(!is_dynamic_loader(b"/tmp/ld-linux-x86-64.so.2"));
        assert!(!is_dynamic_loader(b"/library/ld-linux.so"));
        assert!(!is_dynamic_loader(b"/lib/libc.so.6"));
        assert!(!is_dynamic_loader(b"ld-linux.so"));
    }

    #[test]
    fn scripts_are_told_by_their_first_two_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("s");
        std::fs::write(&p, b"#!/bin/sh\necho\n").expect("write");
        assert!(is_script(&mut File::open(&p).expect("open")));
        std::fs::write(&p, b"#").expect("write");
        assert!(!is_script(&mut File::open(&p).expect("open")));
        std::fs::write(&p, b"\x7fELF").expect("write");
        assert!(!is_script(&mut File::open(&p).expect("open")));
    }
}

//! The gate thread: answers each fanotify exec-permission event after the file's verdict is in
//! the kernel, and dooms processes whose interpreter was given a drifted script.

use super::{
    approved_path, approved_upper, gauge, unchanged_image_bytes, upper_file, Shared,
    EXEC_ARGS_FRESH_NS, MAX_GATE_COMPARE_BYTES, VERDICT_CACHE_MAX,
};
use driftwatch_bpf::UpperFile;
use driftwatch_image::open_in_layer;
use driftwatch_origin::{script, Origins};
use nix::sys::fanotify::{FanotifyEvent, FanotifyResponse, MarkFlags, MaskFlags, Response};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(super) struct Worker {
    shared: Arc<Shared>,
    /// Upper files already compared: true = unchanged image bytes.
    verdicts: HashMap<UpperFile, bool>,
    /// Files seen only in the lower layers, as overlayfs' `fstat` names them (dev, ino, ctime),
    /// and whether each may be a script interpreter (its path, for [`Worker::check_script`]).
    lower_only: HashMap<(u64, u64, i64, i64), Option<Vec<u8>>>,
    /// Script verdicts for interpreters' program files (mount and layer lookups, cached).
    origins: Origins,
}

impl Worker {
    pub(super) fn new(shared: Arc<Shared>) -> Worker {
        Worker {
            shared,
            verdicts: HashMap::new(),
            lower_only: HashMap::new(),
            origins: Origins::new(VERDICT_CACHE_MAX),
        }
    }

    pub(super) fn run(&mut self, stop: &AtomicBool) {
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
        self.shared.metrics.events.inc();
        let tgid = u32::try_from(ev.pid()).unwrap_or(0);
        self.judge(fd, tgid);
        // Always allow: drift is stopped by the exec program, which has the last word.
        if let Err(e) = self
            .shared
            .fan
            .write_response(FanotifyResponse::new(fd, Response::FAN_ALLOW))
        {
            self.shared.metrics.errors.inc();
            tracing::error!(error = %e, "exec gate: cannot answer a permission event");
        }
    }

    /// An interpreter is being exec'd by `tgid`: if its program file (from the argv kept at
    /// `execve` entry, `dw_exec_args`) is drift, the process is doomed: the kernel kills it at
    /// the exec, before the interpreter reads a line.
    fn check_script(&mut self, exepath: &[u8], tgid: u32, dev: u64) {
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
        if !drift || approved_path(&self.shared.approvals, &info, &abs) {
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
                m.doomed.inc();
            }
            Err(e) => {
                m.errors.inc();
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
        let (id, layers, info) = match self.shared.watching.lock() {
            Ok(w) => match w.by_dev.get(&meta.st_dev) {
                Some(x) => (x.id.clone(), x.layers.clone(), x.info.clone()),
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
                    self.shared.metrics.unchanged.inc();
                }
                v
            }
        };
        // Approved drift runs like image code (not cached: an approval may expire).
        let approved =
            !unchanged && approved_upper(&self.shared.approvals, &info, &path, &mut upper, &file);
        if approved {
            self.shared.metrics.approved.inc();
        }
        if unchanged || approved {
            let Ok(mut allowed) = self.shared.allowed.lock() else {
                return;
            };
            if let Err(e) = allowed.allow(&id, file) {
                self.shared.metrics.errors.inc();
                tracing::warn!(error = %e, "exec gate: cannot write the allow map");
            }
            self.shared.metrics.allowed_files.set(gauge(allowed.len()));
        } else if is_script(&mut upper) && tgid != 0 {
            self.doom(tgid);
        }
    }
}

/// A file that may interpret a program file given as an argument (a shell, python, …, or
/// busybox, whose applet is named by `argv[0]`).
fn may_interpret(path: &[u8]) -> bool {
    let name = script::basename(path);
    name == b"busybox" || script::interpreter_of(path, None).is_some()
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

/// Starts with `#!`.
fn is_script(f: &mut File) -> bool {
    use std::io::{Seek, SeekFrom};
    let mut magic = [0u8; 2];
    f.seek(SeekFrom::Start(0)).is_ok() && f.read_exact(&mut magic).is_ok() && &magic == b"#!"
}

#[cfg(test)]
mod tests {
    use super::*;

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

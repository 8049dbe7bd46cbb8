//! The scanner thread: judges what a container's upper layer already holds when it is first
//! watched, and single paths a file event says may just have been copied up, so that copied-up
//! image libraries (mapped, never exec'd, so never held) are allowed before they are mapped.
//!
//! Its queue is bounded ([`SCAN_QUEUE_MAX`]): a job that does not fit is dropped and counted
//! (`driftwatch_gate_scan_dropped_total`). A dropped job fails closed: a copied-up library that
//! was not judged is killed when it is mapped under `--enforce`, exactly as if the agent had not
//! seen the copy-up; execs are held and judged by the gate thread whatever the queue holds.

use super::{
    approved_upper, gauge, unchanged_image_bytes, upper_file, Shared, MAX_GATE_COMPARE_BYTES,
    SCAN_MAX_DEPTH, SCAN_MAX_ENTRIES,
};
use driftwatch_event::OverlayLayers;
use driftwatch_image::open_in_layer;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;

/// Jobs waiting for the scanner at most.
pub const SCAN_QUEUE_MAX: usize = 4096;

pub(super) enum ScanJob {
    /// Everything a container's upper layer holds (bounded).
    Upper { id: String, layers: OverlayLayers },
    /// One container path.
    Path {
        id: String,
        layers: OverlayLayers,
        path: Vec<u8>,
    },
}

/// The scanner thread's loop: one job at a time until the queue closes.
pub(super) fn run(shared: &Arc<Shared>, jobs: mpsc::Receiver<ScanJob>) {
    while let Ok(job) = jobs.recv() {
        match job {
            ScanJob::Upper { id, layers } => scan_upper(&id, &layers, shared),
            ScanJob::Path { id, layers, path } => {
                judge_upper_path(&id, &layers, &path, shared);
            }
        }
    }
}

/// Judges the files a container's upper layer already holds (bounded), so that copied-up
/// image files that are mapped (libraries) or run before the first held exec are allowed too.
fn scan_upper(id: &str, layers: &OverlayLayers, shared: &Shared) {
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
            if ft.is_file() && judge_upper_path(id, layers, path.as_os_str().as_bytes(), shared) {
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

/// Puts the upper file at container path `path` in `dw_allow` if it holds unchanged image bytes
/// or an approval names it.
fn judge_upper_path(id: &str, layers: &OverlayLayers, path: &[u8], shared: &Shared) -> bool {
    let (allowed, metrics) = (&shared.allowed, &shared.metrics);
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
    let unchanged = unchanged_image_bytes(layers, path, &mut upper, &file);
    let approved = !unchanged
        && shared.approvals.has_file_entries()
        && shared
            .info_of(id)
            .is_some_and(|info| approved_upper(&shared.approvals, &info, path, &mut upper, &file));
    if !unchanged && !approved {
        return false;
    }
    if let Ok(mut a) = allowed.lock() {
        if a.allow(id, file).is_ok() {
            if unchanged {
                metrics.unchanged.inc();
            } else {
                metrics.approved.inc();
            }
        }
        metrics.allowed_files.set(gauge(a.len()));
    }
    true
}

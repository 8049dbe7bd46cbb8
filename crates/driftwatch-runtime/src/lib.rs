//! Container discovery and metadata for driftwatch.
//!
//! Every kernel event carries a cgroup v2 id and a mount-namespace inode; the [`Registry`]
//! maps both to the [`ContainerInfo`] of the container they belong to. [`start`] takes the
//! initial inventory and then keeps it current in a background task:
//!
//! - **containerd** (preferred): the gRPC API lists namespaces, containers (labels, image,
//!   runtime spec), tasks (init pid) and images (manifest digest); the event stream
//!   (`/tasks/start`, `/tasks/exit`, `/tasks/delete`, `/containers/create`,
//!   `/containers/delete`) follows changes, and a broken stream is re-established with
//!   backoff followed by a full re-list.
//! - **/proc** (fallback when containerd is not reachable at start): processes whose root
//!   mount is an overlay in a non-host mount namespace, grouped by namespace, re-scanned
//!   periodically.
//!
//! Process facts always come from procfs: mount namespace = inode of `/proc/<pid>/ns/mnt`,
//! cgroup id = inode of the process's cgroup2 directory (what `bpf_get_current_cgroup_id()`
//! returns), overlay layers from the root mount in `/proc/<pid>/mountinfo` (or the
//! snapshotter's `Mounts` when that is unreadable or relative).
//!
//! Architecture invariant: this crate never panics on input from containerd or /proc; a
//! process or container vanishing mid-scan is normal and only leaves facts empty.

#![forbid(unsafe_code)]

pub mod cgroup;
mod config;
mod containerd;
pub mod control;
pub mod cri;
mod error;
mod events;
pub mod inspect;
pub mod inventory;
pub mod mountinfo;
pub mod proc_scan;
pub mod procfs;
mod registry;
mod resolve;
pub mod spec;

pub use config::{RuntimeConfig, SourceMode};
pub use containerd::TOPICS as CONTAINERD_TOPICS;
pub use driftwatch_event::{ContainerInfo, OverlayLayers, HOST_CONTAINER_ID};
pub use error::RuntimeError;
pub use registry::{ContainerKey, DiscoverySource, Registry, RegistryUpdate};

use registry::{Inner, Resolver};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Discover the running containers and keep following them.
///
/// Returns once the initial inventory is in the registry (read it with [`Registry::all`]);
/// the receiver then carries every later change. Must be called inside a tokio runtime; the
/// background task ends when the last [`Registry`] clone is dropped (or on
/// [`Registry::shutdown`]).
pub async fn start(
    cfg: RuntimeConfig,
) -> Result<(Registry, mpsc::Receiver<RegistryUpdate>, DiscoverySource), RuntimeError> {
    let proc = procfs::ProcFs::new(cfg.proc_root.clone(), cfg.cgroup2_mount.clone());
    if proc.cgroup2_mount().is_none() {
        tracing::warn!("no cgroup2 mount found: containers will have no cgroup id");
    }
    let (tx, rx) = mpsc::channel(cfg.update_capacity.max(1));

    if cfg.source != SourceMode::Proc {
        let inner = Arc::new(Inner::new(
            cfg.clone(),
            proc.clone(),
            Resolver::Containerd(Mutex::new(None)),
            DiscoverySource::Containerd,
            tx.clone(),
        ));
        match events::resync(&inner, false).await {
            Ok((conn, subscription)) => {
                let task = tokio::spawn(events::follow(Arc::downgrade(&inner), conn, subscription));
                *registry::lock(&inner.task) = Some(task.abort_handle());
                tracing::info!(
                    socket = %cfg.containerd_socket.display(),
                    containers = inner.len(),
                    "container discovery from containerd"
                );
                return Ok((Registry { inner }, rx, DiscoverySource::Containerd));
            }
            Err(e) if cfg.source == SourceMode::Containerd => {
                return Err(RuntimeError::ContainerdRequired {
                    socket: cfg.containerd_socket.clone(),
                    source: Box::new(e),
                });
            }
            Err(e) => {
                tracing::warn!(
                    socket = %cfg.containerd_socket.display(),
                    error = %crate::error::chain(&e),
                    "containerd is not reachable; discovering containers from /proc (no image or pod metadata)"
                );
            }
        }
    }

    let period = cfg.proc_rescan_ms;
    let inner = Arc::new(Inner::new(
        cfg,
        proc,
        Resolver::Proc,
        DiscoverySource::Proc,
        tx,
    ));
    // The initial inventory is read through `all()`, not announced.
    drop(proc_scan::rescan(&inner).await);
    let task = tokio::spawn(proc_scan::follow(Arc::downgrade(&inner), period));
    *registry::lock(&inner.task) = Some(task.abort_handle());
    tracing::info!(containers = inner.len(), "container discovery from /proc");
    Ok((Registry { inner }, rx, DiscoverySource::Proc))
}

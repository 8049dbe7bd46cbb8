//! Enrichment: an exec event gets its container, its process ancestry, its user name and the
//! origin of its executable.

use crate::proctable::{ProcEntry, ProcessTable};
use crate::users::UserNames;
use driftwatch_event::{ContainerInfo, ExeOrigin, ExecEvent, HOST_CONTAINER_ID};
use std::collections::HashMap;
use std::sync::Arc;

/// overlayfs' superblock magic.
pub const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;

/// An exec with everything the detections and outputs need.
#[derive(Debug, Clone)]
pub struct ExecContext {
    pub event: ExecEvent,
    /// `None` on the host.
    pub container: Option<Arc<ContainerInfo>>,
    pub origin: ExeOrigin,
    pub process: ProcEntry,
    pub parent: Option<ProcEntry>,
    pub user_name: Option<String>,
}

impl ExecContext {
    pub fn container_id(&self) -> &str {
        self.container
            .as_deref()
            .map_or(HOST_CONTAINER_ID, |c| c.id.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OriginKey {
    container: Arc<str>,
    path: Vec<u8>,
    dev: u32,
    ino: u64,
    ctime_sec: u64,
    ctime_nsec: u32,
    flags: u8,
}

/// Origin verdicts cached by (container, path, device, inode, ctime): a changed file gets a new
/// ctime and so a new verdict.
#[derive(Debug)]
pub struct OriginCache {
    map: HashMap<OriginKey, ExeOrigin>,
    max: usize,
}

impl OriginCache {
    pub fn new(max: usize) -> OriginCache {
        OriginCache {
            map: HashMap::new(),
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forget verdicts of a removed container.
    pub fn forget_container(&mut self, id: &str) {
        self.map.retain(|k, _| &*k.container != id);
    }

    /// The origin of `ev`'s executable in `container`. Errors reading the layers yield
    /// [`ExeOrigin::Unknown`] (reported through `on_error`), which is treated as drift.
    pub fn origin(
        &mut self,
        ev: &ExecEvent,
        container: Option<&Arc<ContainerInfo>>,
        host_mntns: u64,
        mut on_error: impl FnMut(&driftwatch_image::ImageError),
    ) -> ExeOrigin {
        // A process is in a container only once it is in the container's mount namespace:
        // runc's own setup (including its memfd re-exec) runs in the container's cgroup but
        // still in the host's mount namespace.
        let Some(container) = container.filter(|_| ev.task.mntns != host_mntns) else {
            return ExeOrigin::Host;
        };
        let f = &ev.flags;
        let flag_bits = u8::from(f.overlay_upper)
            | u8::from(f.memfd) << 1
            | u8::from(f.on_root_mount) << 2
            | u8::from(f.path_truncated || f.path_outside_root) << 3;
        let key = OriginKey {
            container: Arc::from(container.id.as_str()),
            path: ev.exepath.clone(),
            dev: ev.exe.dev,
            ino: ev.exe.ino,
            ctime_sec: ev.exe.ctime_sec,
            ctime_nsec: ev.exe.ctime_nsec,
            flags: flag_bits,
        };
        if let Some(o) = self.map.get(&key) {
            return *o;
        }
        let facts = driftwatch_image::ExecFacts {
            in_container: true,
            memfd: f.memfd,
            on_root_mount: f.on_root_mount,
            overlay_upper: f.overlay_upper,
            overlay_fs: ev.exe.s_magic == OVERLAYFS_SUPER_MAGIC,
            nlink: ev.exe.nlink,
            path: &ev.exepath,
            path_reliable: !(f.path_truncated || f.path_outside_root),
        };
        let origin = match driftwatch_image::classify(&facts, container.rootfs.as_ref()) {
            Ok(o) => o,
            Err(e) => {
                on_error(&e);
                // Not cached: the layers may be readable next time.
                return ExeOrigin::Unknown;
            }
        };
        if self.map.len() >= self.max {
            self.map.clear();
        }
        self.map.insert(key, origin);
        origin
    }
}

/// Build the context of an exec: the process table has already recorded it.
pub fn context(
    ev: ExecEvent,
    container: Option<Arc<ContainerInfo>>,
    origin: ExeOrigin,
    table: &ProcessTable,
    users: &mut UserNames,
) -> ExecContext {
    let process = table.get(ev.task.tgid).cloned().unwrap_or_default();
    let parent = table.get(ev.task.ppid).cloned();
    let root_key: Arc<str> = Arc::from(
        container
            .as_deref()
            .map_or(HOST_CONTAINER_ID, |c| c.id.as_str()),
    );
    let user_name = users.name(&root_key, Some(ev.task.tgid), ev.task.euid);
    ExecContext {
        event: ev,
        container,
        origin,
        process,
        parent,
        user_name,
    }
}

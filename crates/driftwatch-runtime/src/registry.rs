//! The container registry: running containers indexed by cgroup v2 id and mount namespace.
//!
//! Lookups take a read lock on a few hash maps and clone an `Arc`; writers are the discovery
//! task and [`Registry::resolve_unknown`]. Every change is also sent as a [`RegistryUpdate`].

use crate::config::RuntimeConfig;
use crate::containerd::Containerd;
use crate::procfs::ProcFs;
use driftwatch_event::ContainerInfo;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// Where the registry's containers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoverySource {
    /// The containerd gRPC API (with event subscription).
    Containerd,
    /// Periodic /proc scans (containerd not reachable).
    Proc,
}

impl fmt::Display for DiscoverySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Containerd => "containerd",
            Self::Proc => "proc",
        })
    }
}

/// A change to the set of running containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryUpdate {
    /// A container started, or what is known about it changed (an upsert: the same container
    /// may be `Added` more than once, e.g. after a reconnect found new facts).
    Added(Arc<ContainerInfo>),
    /// A container stopped or was deleted; carries the last known info.
    Removed(Arc<ContainerInfo>),
}

impl RegistryUpdate {
    pub fn info(&self) -> &Arc<ContainerInfo> {
        match self {
            Self::Added(i) | Self::Removed(i) => i,
        }
    }
}

/// containerd namespace and container id: unique across the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerKey {
    pub namespace: String,
    pub id: String,
}

impl ContainerKey {
    pub fn new(namespace: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            id: id.into(),
        }
    }

    pub fn of(info: &ContainerInfo) -> Self {
        Self::new(info.namespace.clone(), info.id.clone())
    }
}

#[derive(Debug)]
struct Entry {
    info: Arc<ContainerInfo>,
    /// Extra cgroup ids (nested cgroups of the container) learned by `resolve_unknown`.
    aliases: Vec<u64>,
}

#[derive(Debug, Default)]
struct State {
    containers: HashMap<ContainerKey, Entry>,
    by_cgroup: HashMap<u64, Arc<ContainerInfo>>,
    by_mntns: HashMap<u64, Arc<ContainerInfo>>,
    /// Containers created but not started yet (from `/containers/create`), metadata only.
    pending: HashMap<ContainerKey, Arc<ContainerInfo>>,
}

impl State {
    fn unindex(&mut self, key: &ContainerKey, entry: &Entry) {
        let same = |i: &Arc<ContainerInfo>| i.id == key.id && i.namespace == key.namespace;
        for id in entry.info.cgroup_id.iter().chain(entry.aliases.iter()) {
            if self.by_cgroup.get(id).is_some_and(same) {
                self.by_cgroup.remove(id);
            }
        }
        if let Some(ns) = entry.info.mntns {
            if self.by_mntns.get(&ns).is_some_and(same) {
                self.by_mntns.remove(&ns);
            }
        }
    }

    fn index(&mut self, entry: &Entry) {
        for id in entry.info.cgroup_id.iter().chain(entry.aliases.iter()) {
            self.by_cgroup.insert(*id, Arc::clone(&entry.info));
        }
        if let Some(ns) = entry.info.mntns {
            self.by_mntns.insert(ns, Arc::clone(&entry.info));
        }
    }
}

/// What `resolve_unknown` can ask when a cgroup id is unknown.
#[derive(Debug)]
pub(crate) enum Resolver {
    Containerd(Mutex<Option<Containerd>>),
    Proc,
}

pub(crate) struct Inner {
    state: RwLock<State>,
    /// cgroup id → time until which it is a known miss.
    negative: Mutex<HashMap<u64, Instant>>,
    pub(crate) resolver: Resolver,
    pub(crate) updates: mpsc::Sender<RegistryUpdate>,
    pub(crate) proc: ProcFs,
    pub(crate) cfg: RuntimeConfig,
    pub(crate) source: DiscoverySource,
    pub(crate) task: Mutex<Option<AbortHandle>>,
    /// Serialises /proc rescans triggered by `resolve_unknown` with the periodic ones.
    pub(crate) scan_lock: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("source", &self.source)
            .field("containers", &self.read().containers.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Largest number of cached misses; the cache is cleared when it grows past this.
const NEGATIVE_CACHE_MAX: usize = 65_536;

impl Inner {
    pub(crate) fn new(
        cfg: RuntimeConfig,
        proc: ProcFs,
        resolver: Resolver,
        source: DiscoverySource,
        updates: mpsc::Sender<RegistryUpdate>,
    ) -> Self {
        Self {
            state: RwLock::default(),
            negative: Mutex::default(),
            resolver,
            updates,
            proc,
            cfg,
            source,
            task: Mutex::new(None),
            scan_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Insert or replace a running container; `Some(Added)` when anything changed.
    pub(crate) fn upsert(&self, info: ContainerInfo) -> Option<RegistryUpdate> {
        let key = ContainerKey::of(&info);
        if let Some(id) = info.cgroup_id {
            lock(&self.negative).remove(&id);
        }
        let mut state = self.write();
        state.pending.remove(&key);
        let mut aliases = Vec::new();
        if let Some(old) = state.containers.remove(&key) {
            if *old.info == info {
                state.containers.insert(key, old);
                return None;
            }
            state.unindex(&key, &old);
            aliases = old.aliases;
        }
        let info = Arc::new(info);
        let entry = Entry {
            info: Arc::clone(&info),
            aliases,
        };
        state.index(&entry);
        state.containers.insert(key, entry);
        Some(RegistryUpdate::Added(info))
    }

    /// Remove a container (and its pending record); `Some(Removed)` when it was running.
    pub(crate) fn remove(&self, key: &ContainerKey) -> Option<RegistryUpdate> {
        let mut state = self.write();
        state.pending.remove(key);
        let old = state.containers.remove(key)?;
        state.unindex(key, &old);
        Some(RegistryUpdate::Removed(old.info))
    }

    /// Make the registry hold exactly `infos`; returns the differences as updates.
    pub(crate) fn replace_all(&self, infos: Vec<ContainerInfo>) -> Vec<RegistryUpdate> {
        let keep: std::collections::HashSet<ContainerKey> =
            infos.iter().map(ContainerKey::of).collect();
        let gone: Vec<ContainerKey> = self
            .read()
            .containers
            .keys()
            .filter(|k| !keep.contains(k))
            .cloned()
            .collect();
        let mut updates: Vec<RegistryUpdate> = gone.iter().filter_map(|k| self.remove(k)).collect();
        updates.extend(infos.into_iter().filter_map(|i| self.upsert(i)));
        updates
    }

    pub(crate) fn set_pending(&self, info: ContainerInfo) {
        let key = ContainerKey::of(&info);
        let mut state = self.write();
        if !state.containers.contains_key(&key) {
            state.pending.insert(key, Arc::new(info));
        }
    }

    /// Pending records whose id is `id`, in any namespace.
    pub(crate) fn pending_by_id(&self, id: &str) -> Vec<Arc<ContainerInfo>> {
        self.read()
            .pending
            .values()
            .filter(|i| i.id == id)
            .cloned()
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.read().containers.len()
    }

    pub(crate) fn get(&self, key: &ContainerKey) -> Option<Arc<ContainerInfo>> {
        self.read().containers.get(key).map(|e| Arc::clone(&e.info))
    }

    pub(crate) fn by_cgroup(&self, id: u64) -> Option<Arc<ContainerInfo>> {
        self.read().by_cgroup.get(&id).cloned()
    }

    /// The container indexed under mount namespace inode `ino`, only if its init process is
    /// still in that namespace: namespace inode numbers are recycled, so an entry whose removal
    /// has not been processed yet could otherwise name an unrelated new container.
    pub(crate) fn by_mntns(&self, ino: u64) -> Option<Arc<ContainerInfo>> {
        let info = self.read().by_mntns.get(&ino).cloned()?;
        let pid = info.init_pid?;
        (self.proc.mntns(pid).ok() == Some(ino)).then_some(info)
    }

    /// Index an extra cgroup id (a nested cgroup) for a running container.
    pub(crate) fn add_alias(
        &self,
        cgroup_id: u64,
        key: &ContainerKey,
    ) -> Option<Arc<ContainerInfo>> {
        let mut state = self.write();
        let entry = state.containers.get_mut(key)?;
        if !entry.aliases.contains(&cgroup_id) && entry.info.cgroup_id != Some(cgroup_id) {
            entry.aliases.push(cgroup_id);
        }
        let info = Arc::clone(&entry.info);
        state.by_cgroup.insert(cgroup_id, Arc::clone(&info));
        Some(info)
    }

    pub(crate) fn is_negative(&self, cgroup_id: u64, now: Instant) -> bool {
        let mut neg = lock(&self.negative);
        match neg.get(&cgroup_id) {
            Some(until) if *until > now => true,
            Some(_) => {
                neg.remove(&cgroup_id);
                false
            }
            None => false,
        }
    }

    pub(crate) fn set_negative(&self, cgroup_id: u64, until: Instant) {
        let mut neg = lock(&self.negative);
        if neg.len() >= NEGATIVE_CACHE_MAX {
            neg.retain(|_, t| *t > Instant::now());
            if neg.len() >= NEGATIVE_CACHE_MAX {
                neg.clear();
            }
        }
        neg.insert(cgroup_id, until);
    }

    /// Send updates from a background task (waits when the channel is full).
    pub(crate) async fn publish(&self, updates: Vec<RegistryUpdate>) {
        for u in updates {
            log_update(&u);
            // A dropped receiver only means nobody listens; lookups keep working.
            let _ = self.updates.send(u).await;
        }
    }

    /// Send an update from a lookup path without waiting.
    pub(crate) fn publish_now(&self, update: RegistryUpdate) {
        log_update(&update);
        match self.updates.try_send(update) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(update)) => {
                let tx = self.updates.clone();
                tracing::debug!("registry update channel full; sending in the background");
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        let _ = tx.send(update).await;
                    });
                }
            }
        }
    }
}

fn log_update(u: &RegistryUpdate) {
    let (what, i) = match u {
        RegistryUpdate::Added(i) => ("added", i),
        RegistryUpdate::Removed(i) => ("removed", i),
    };
    tracing::debug!(
        container.id = %i.id,
        container.namespace = %i.namespace,
        cgroup_id = ?i.cgroup_id,
        mntns = ?i.mntns,
        "container {what}"
    );
}

/// Running containers known to the agent, indexed by cgroup v2 id and mount namespace.
/// Cheap to clone; all clones share one registry.
#[derive(Debug, Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

impl Registry {
    /// The container whose cgroup (or a nested cgroup learned by `resolve_unknown`) has this id.
    pub fn by_cgroup(&self, cgroup_id: u64) -> Option<Arc<ContainerInfo>> {
        self.inner.by_cgroup(cgroup_id)
    }

    /// The container whose init process has this mount namespace inode (checked against the
    /// live process: namespace inodes are recycled).
    pub fn by_mntns(&self, mntns: u64) -> Option<Arc<ContainerInfo>> {
        self.inner.by_mntns(mntns)
    }

    /// A container by containerd namespace (empty for /proc discovery) and id.
    pub fn get(&self, namespace: &str, id: &str) -> Option<Arc<ContainerInfo>> {
        self.inner.get(&ContainerKey::new(namespace, id))
    }

    /// All running containers, sorted by namespace and id.
    pub fn all(&self) -> Vec<Arc<ContainerInfo>> {
        let state = self.inner.read();
        let mut all: Vec<_> = state
            .containers
            .values()
            .map(|e| Arc::clone(&e.info))
            .collect();
        all.sort_by(|a, b| (&a.namespace, &a.id).cmp(&(&b.namespace, &b.id)));
        all
    }

    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the containers come from.
    pub fn source(&self) -> DiscoverySource {
        self.inner.source
    }

    /// Stop the background discovery task (also done when the last clone is dropped).
    pub fn shutdown(&self) {
        if let Some(task) = lock(&self.inner.task).take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (Registry, mpsc::Receiver<RegistryUpdate>) {
        let (tx, rx) = mpsc::channel(16);
        let inner = Inner::new(
            RuntimeConfig::default(),
            ProcFs::new("/proc", None),
            Resolver::Proc,
            DiscoverySource::Proc,
            tx,
        );
        (
            Registry {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    fn info(id: &str, cg: u64, mnt: u64) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            name: id.into(),
            namespace: "default".into(),
            cgroup_id: Some(cg),
            mntns: Some(mnt),
            // by_mntns checks the init process is still in the namespace: use this process.
            init_pid: Some(std::process::id()),
            ..ContainerInfo::default()
        }
    }

    fn own_mntns() -> u64 {
        ProcFs::new("/proc", None)
            .mntns(std::process::id())
            .expect("own mntns")
    }

    #[test]
    fn recycled_mount_namespace_inode_does_not_match_a_stale_entry() {
        let (r, _rx) = registry();
        let me = own_mntns();
        // A container whose removal was not processed yet; its init process is gone and the
        // kernel handed its namespace inode number to someone else.
        let mut gone = info("gone", 10, me);
        gone.init_pid = Some(u32::MAX - 1);
        r.inner.upsert(gone);
        assert!(r.by_mntns(me).is_none());
        assert_eq!(
            r.by_cgroup(10).unwrap().id,
            "gone",
            "cgroup ids are never recycled"
        );
    }

    #[test]
    fn upsert_indexes_and_reports_only_changes() {
        let (r, _rx) = registry();
        assert!(matches!(
            r.inner.upsert(info("a", 10, 100)),
            Some(RegistryUpdate::Added(_))
        ));
        let me = own_mntns();
        assert!(
            r.inner.upsert(info("a", 10, me)).is_some(),
            "new mntns: changed"
        );
        assert_eq!(r.inner.upsert(info("a", 10, me)), None);
        assert_eq!(r.by_cgroup(10).unwrap().id, "a");
        assert_eq!(r.by_mntns(me).unwrap().id, "a");
        // Changed facts re-index.
        assert!(r.inner.upsert(info("a", 11, 101)).is_some());
        assert!(r.by_cgroup(10).is_none());
        assert!(r.by_mntns(me).is_none());
        assert_eq!(r.by_cgroup(11).unwrap().id, "a");
        assert_eq!(r.len(), 1);
        assert_eq!(r.get("default", "a").unwrap().cgroup_id, Some(11));
    }

    #[test]
    fn remove_and_replace_all_report_differences() {
        let (r, _rx) = registry();
        r.inner.upsert(info("a", 10, 100));
        r.inner.upsert(info("b", 20, 200));
        r.inner
            .add_alias(21, &ContainerKey::new("default", "b"))
            .unwrap();
        assert_eq!(r.by_cgroup(21).unwrap().id, "b");
        let updates = r
            .inner
            .replace_all(vec![info("b", 20, 200), info("c", 30, 300)]);
        assert_eq!(updates.len(), 2);
        assert!(matches!(&updates[0], RegistryUpdate::Removed(i) if i.id == "a"));
        assert!(matches!(&updates[1], RegistryUpdate::Added(i) if i.id == "c"));
        assert!(r.by_cgroup(10).is_none());
        assert_eq!(
            r.by_cgroup(21).unwrap().id,
            "b",
            "aliases survive an unchanged upsert"
        );
        let removed = r.inner.remove(&ContainerKey::new("default", "b")).unwrap();
        assert_eq!(removed.info().id, "b");
        assert!(r.by_cgroup(21).is_none());
        assert!(r.by_cgroup(20).is_none());
        assert_eq!(r.inner.remove(&ContainerKey::new("default", "b")), None);
        assert_eq!(
            r.all().iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["c"]
        );
    }

    #[test]
    fn negative_cache_expires() {
        let (r, _rx) = registry();
        let now = Instant::now();
        r.inner
            .set_negative(5, now + std::time::Duration::from_secs(60));
        assert!(r.inner.is_negative(5, now));
        r.inner.set_negative(6, now);
        assert!(!r
            .inner
            .is_negative(6, now + std::time::Duration::from_millis(1)));
        // A container appearing with that cgroup id clears the miss.
        r.inner.upsert(info("x", 5, 50));
        assert!(!r.inner.is_negative(5, now));
    }

    #[test]
    fn pending_records_are_dropped_on_start_and_delete() {
        let (r, _rx) = registry();
        let mut p = info("p", 0, 0);
        p.cgroup_id = None;
        p.mntns = None;
        r.inner.set_pending(p.clone());
        assert_eq!(r.inner.pending_by_id("p").len(), 1);
        r.inner.upsert(info("p", 1, 2));
        assert!(r.inner.pending_by_id("p").is_empty());
        r.inner.remove(&ContainerKey::new("default", "p"));
        r.inner.set_pending(p);
        r.inner.remove(&ContainerKey::new("default", "p"));
        assert!(r.inner.pending_by_id("p").is_empty());
    }
}

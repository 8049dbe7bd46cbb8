//! Resolving a cgroup id the registry does not know yet: a process can exec before the event
//! for its container arrives. One read of `/proc/<pid>/cgroup` decides whether the cgroup
//! names a container; a miss is cached per cgroup id so host processes cost a hash lookup.

use crate::cgroup;
use crate::config::RuntimeConfig;
use crate::containerd::complete_from_proc;
use crate::proc_scan;
use crate::registry::{lock, ContainerKey, DiscoverySource, Registry, Resolver};
use driftwatch_event::ContainerInfo;
use std::sync::Arc;
use std::time::Instant;

impl Registry {
    /// The container of a process whose cgroup id is not indexed (yet), or `None` for a host
    /// process. `mntns` is the process's mount namespace inode (0 when unknown).
    ///
    /// Known ids answer from the index; cached misses answer `None` at once; otherwise the
    /// cgroup path of `pid` is read and, when it names a container, the container is fetched
    /// (from the pending `/containers/create` record, containerd, or a /proc scan), inserted
    /// and announced as [`crate::RegistryUpdate::Added`]. Concurrent calls for the same id
    /// while one is in flight answer `None`.
    pub async fn resolve_unknown(
        &self,
        cgroup_id: u64,
        mntns: u64,
        pid: u32,
    ) -> Option<Arc<ContainerInfo>> {
        let inner = &self.inner;
        if let Some(info) = inner.by_cgroup(cgroup_id) {
            return Some(info);
        }
        let now = Instant::now();
        if inner.is_negative(cgroup_id, now) {
            return None;
        }
        if mntns != 0 {
            if let Some(info) = inner.by_mntns(mntns) {
                // A nested cgroup of a known container.
                return inner.add_alias(cgroup_id, &ContainerKey::of(&info));
            }
        }
        let long = now + RuntimeConfig::dur(inner.cfg.negative_ttl_ms);
        let short = now + RuntimeConfig::dur(inner.cfg.pending_negative_ttl_ms);
        // Mark in flight (a short miss) so concurrent callers do not repeat the work.
        inner.set_negative(cgroup_id, short);
        let path = match inner.proc.cgroup_path(pid) {
            Ok(Some(p)) => p,
            _ => return None,
        };
        let found = match inner.source {
            DiscoverySource::Proc => {
                if inner.proc.host_mntns() == Some(mntns) {
                    None
                } else {
                    for u in proc_scan::rescan(inner).await {
                        inner.publish_now(u);
                    }
                    inner
                        .by_cgroup(cgroup_id)
                        .or_else(|| (mntns != 0).then(|| inner.by_mntns(mntns)).flatten())
                }
            }
            DiscoverySource::Containerd => {
                let Some(target) = cgroup::container_from_path(&path) else {
                    inner.set_negative(cgroup_id, long);
                    return None;
                };
                match self.fetch(&target, pid).await {
                    Fetched::Found(info) => {
                        let key = ContainerKey::of(&info);
                        if let Some(update) = inner.upsert(*info) {
                            inner.publish_now(update);
                        }
                        inner.get(&key)
                    }
                    // containerd may not have committed it yet: try again soon.
                    Fetched::NotYet => return None,
                    Fetched::NotAContainer => None,
                }
            }
        };
        match found {
            Some(info) => {
                if info.cgroup_id == Some(cgroup_id) {
                    Some(info)
                } else {
                    inner.add_alias(cgroup_id, &ContainerKey::of(&info))
                }
            }
            None => {
                inner.set_negative(cgroup_id, long);
                None
            }
        }
    }

    async fn fetch(&self, target: &cgroup::CgroupContainerRef, pid: u32) -> Fetched {
        let inner = &self.inner;
        // Created but not started: complete the metadata from /proc, no containerd call.
        let pending = inner.pending_by_id(&target.id).into_iter().find(|p| {
            target
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == p.namespace)
        });
        if let Some(p) = pending {
            let mut info = (*p).clone();
            complete_from_proc(&mut info, pid, &inner.proc);
            return Fetched::Found(Box::new(info));
        }
        let Resolver::Containerd(slot) = &inner.resolver else {
            return Fetched::NotYet;
        };
        let Some(conn) = lock(slot).clone() else {
            return Fetched::NotYet;
        };
        let namespaces = match &target.namespace {
            Some(ns) => vec![ns.clone()],
            None => match conn.namespaces().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(error = %crate::error::chain(&e), "cannot list containerd namespaces");
                    return Fetched::NotYet;
                }
            },
        };
        let mut unreachable = false;
        for ns in namespaces {
            match conn.get_running(&ns, &target.id, &inner.proc).await {
                Ok(Some(info)) => return Fetched::Found(Box::new(info)),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(namespace = %ns, id = %target.id, error = %crate::error::chain(&e), "containerd lookup failed");
                    unreachable = true;
                }
            }
        }
        if unreachable {
            Fetched::NotYet
        } else {
            // containerd registers a task before its process can exec anything, so a cgroup
            // it does not know is not one of its containers (a host cgroup that looks like
            // one): a long miss.
            Fetched::NotAContainer
        }
    }
}

/// The outcome of a one-shot lookup.
enum Fetched {
    Found(Box<ContainerInfo>),
    /// Could not tell now (containerd unreachable): ask again after the short miss.
    NotYet,
    NotAContainer,
}

//! Discovery without containerd: processes whose root mount is an overlay and whose mount
//! namespace is not the host's, grouped by mount namespace.

use crate::cgroup;
use crate::config::RuntimeConfig;
use crate::procfs::ProcFs;
use crate::registry::{Inner, RegistryUpdate};
use driftwatch_event::ContainerInfo;
use std::collections::BTreeMap;
use std::sync::Weak;

/// The stable id of a container found in /proc: the container id its cgroup path names, else
/// `mntns-<inode>`.
pub fn container_id(cgroup_path: Option<&str>, mntns: u64) -> String {
    cgroup_path
        .and_then(cgroup::container_from_path)
        .map_or_else(|| format!("mntns-{mntns}"), |r| r.id)
}

/// The container whose lowest process is `pid` in mount namespace `mntns`; `None` when its
/// root is not an overlay (or the process vanished).
pub fn container_of(proc: &ProcFs, pid: u32, mntns: u64) -> Option<ContainerInfo> {
    let facts = proc.facts(pid);
    let rootfs = facts.rootfs?;
    if facts.mntns != Some(mntns) {
        return None;
    }
    let id = container_id(facts.cgroup_path.as_deref(), mntns);
    Some(ContainerInfo {
        name: id.clone(),
        id,
        init_pid: Some(pid),
        cgroup_path: facts.cgroup_path,
        cgroup_id: facts.cgroup_id,
        mntns: Some(mntns),
        rootfs: Some(rootfs),
        ..ContainerInfo::default()
    })
}

/// One full scan of /proc.
pub fn scan(proc: &ProcFs) -> Vec<ContainerInfo> {
    let host = proc.host_mntns();
    let pids = match proc.pids() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(proc = %proc.root().display(), error = %e, "cannot list processes");
            return Vec::new();
        }
    };
    // Lowest pid of each non-host mount namespace (pids are sorted).
    let mut groups: BTreeMap<u64, u32> = BTreeMap::new();
    for pid in pids {
        let Ok(ns) = proc.mntns(pid) else { continue };
        if Some(ns) != host {
            groups.entry(ns).or_insert(pid);
        }
    }
    let mut out: Vec<ContainerInfo> = groups
        .into_iter()
        .filter_map(|(ns, pid)| container_of(proc, pid, ns))
        .collect();
    // Two namespaces naming the same container id (should not happen) keep distinct ids.
    out.sort_by(|a, b| a.id.cmp(&b.id));
    for i in 1..out.len() {
        if out[i].id == out[i - 1].id {
            if let Some(ns) = out[i].mntns {
                let id = format!("mntns-{ns}");
                out[i].name.clone_from(&id);
                out[i].id = id;
            }
        }
    }
    out
}

/// Scan and apply to the registry; returns the differences.
pub(crate) async fn rescan(inner: &Inner) -> Vec<RegistryUpdate> {
    let _guard = inner.scan_lock.lock().await;
    let proc = inner.proc.clone();
    match tokio::task::spawn_blocking(move || scan(&proc)).await {
        Ok(infos) => inner.replace_all(infos),
        Err(e) => {
            tracing::warn!(error = %e, "proc scan task failed");
            Vec::new()
        }
    }
}

/// The background task of the /proc fallback.
pub(crate) async fn follow(weak: Weak<Inner>, period_ms: u64) {
    let mut tick = tokio::time::interval(RuntimeConfig::dur(period_ms.max(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let updates = rescan(&inner).await;
        inner.publish(updates).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_cgroup_paths_or_the_mount_namespace() {
        let hex = "ab".repeat(32);
        assert_eq!(container_id(Some(&format!("/kubepods/pod1/{hex}")), 7), hex);
        assert_eq!(container_id(Some("/default/web"), 7), "web");
        assert_eq!(container_id(Some("/"), 7), "mntns-7");
        assert_eq!(container_id(None, 9), "mntns-9");
    }

    #[test]
    fn our_own_process_is_not_a_container_unless_in_one() {
        let proc = ProcFs::new("/proc", None);
        let me = std::process::id();
        let ns = proc.mntns(me).unwrap();
        if proc.host_mntns() == Some(ns) {
            assert!(!scan(&proc).iter().any(|c| c.mntns == Some(ns)));
        }
    }
}

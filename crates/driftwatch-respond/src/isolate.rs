//! `isolate`: cut a container's network at the node, without a CNI (issue 11). Thin over
//! [`driftwatch_bpf::isolate`]: the container's cgroup v2 directory gets six cgroup programs by
//! bpf links pinned in bpffs — every new connect and datagram refused with `EPERM`, every
//! packet of its sockets dropped both ways (established connections included), loopback
//! untouched — and a pinned map holds each isolation's end (its TTL), which the kernel itself
//! honours. Nothing here needs the agent: an isolation outlives whoever made it and is undone by
//! [`Isolations::release`] or by its TTL ([`Isolations::expire`] then removes its pins).
//!
//! Times are wall-clock here ([`SystemTime`]); the kernel keeps boot time.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use driftwatch_bpf::isolate::{IsolateError, DEFAULT_PIN_DIR, LINKS_PER_ISOLATION};
use driftwatch_bpf::isolate::{Isolation as KernelIsolation, Isolator};

/// Directories visited at most when looking for the cgroups of isolations.
const CGROUP_WALK_MAX: usize = 100_000;
/// Depth of the cgroup hierarchy looked at.
const CGROUP_WALK_DEPTH: usize = 32;

/// One isolated cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// The cgroup v2 id of the container.
    pub cgroup_id: u64,
    /// When it began (`None`: links without a map entry, an interrupted call; still in force).
    pub since: Option<SystemTime>,
    /// When the kernel stops enforcing it; `None`: until released.
    pub until: Option<SystemTime>,
    /// Whether the kernel enforces it now.
    pub in_force: bool,
    /// Links pinned ([`LINKS_PER_ISOLATION`] when whole).
    pub links: usize,
}

/// The isolations pinned under one bpffs directory (default [`DEFAULT_PIN_DIR`]).
#[derive(Debug, Clone, Default)]
pub struct Isolations {
    kernel: Isolator,
}

/// The wall-clock time of a boot-time instant, given both clocks now.
fn wall(boot_ns: u64, now_boot_ns: u64, now_wall: SystemTime) -> SystemTime {
    if boot_ns >= now_boot_ns {
        now_wall + Duration::from_nanos(boot_ns - now_boot_ns)
    } else {
        now_wall
            .checked_sub(Duration::from_nanos(now_boot_ns - boot_ns))
            .filter(|t| *t >= SystemTime::UNIX_EPOCH)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

fn from_kernel(k: &KernelIsolation, now_boot_ns: u64, now_wall: SystemTime) -> Isolation {
    Isolation {
        cgroup_id: k.cgroup_id,
        since: (k.since_ns != 0).then(|| wall(k.since_ns, now_boot_ns, now_wall)),
        until: k.until_ns.map(|u| wall(u, now_boot_ns, now_wall)),
        in_force: k.in_force(now_boot_ns),
        links: k.links,
    }
}

impl Isolations {
    /// Isolations pinned under `pin_dir` (on a bpffs).
    pub fn new(pin_dir: impl Into<PathBuf>) -> Self {
        Self {
            kernel: Isolator::new(pin_dir),
        }
    }

    /// The pin directory.
    pub fn pin_dir(&self) -> &Path {
        self.kernel.pin_dir()
    }

    /// Creates the map and verifies and pins the programs now (the first isolation on a node
    /// otherwise pays tens of milliseconds for it): for the agent to call at start.
    pub fn prepare(&self) -> Result<(), IsolateError> {
        self.kernel.prepare()
    }

    /// Isolates the cgroup v2 directory `cgroup_dir` (cgroup `cgroup_id`) for `ttl` (`None`:
    /// until released). Idempotent: isolating an isolated cgroup attaches nothing more and sets
    /// the new end (from now). Errors say what is missing: no bpffs, not cgroup v2, the
    /// cgroup gone or replaced.
    pub fn isolate(
        &self,
        cgroup_dir: &Path,
        cgroup_id: u64,
        ttl: Option<Duration>,
    ) -> Result<Isolation, IsolateError> {
        let now = driftwatch_bpf::boot_time_ns();
        let wall_now = SystemTime::now();
        let until = ttl.map(|t| {
            now.saturating_add(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX))
                .max(1)
        });
        let k = self.kernel.isolate(cgroup_dir, cgroup_id, until)?;
        tracing::info!(
            cgroup_id,
            cgroup = %cgroup_dir.display(),
            ttl_s = ttl.map(|t| t.as_secs_f64()),
            "container network isolated"
        );
        Ok(from_kernel(&k, now, wall_now))
    }

    /// Undoes an isolation (its links detached, its entry removed); whether there was one.
    pub fn release(&self, cgroup_id: u64) -> Result<bool, IsolateError> {
        let found = self.kernel.release(cgroup_id)?;
        if found {
            tracing::info!(cgroup_id, "container network isolation released");
        }
        Ok(found)
    }

    /// Every isolation, in force or expired, by cgroup id.
    pub fn list(&self) -> Result<Vec<Isolation>, IsolateError> {
        let now = driftwatch_bpf::boot_time_ns();
        let wall_now = SystemTime::now();
        Ok(self
            .kernel
            .list()?
            .iter()
            .map(|k| from_kernel(k, now, wall_now))
            .collect())
    }

    /// When nothing is isolated, removes the pinned programs, the map and the pin directory
    /// (uninstalling); whether it did.
    pub fn remove_unused(&self) -> Result<bool, IsolateError> {
        self.kernel.remove_unused()
    }

    /// Removes the pins of expired isolations and of isolations whose cgroup no longer exists
    /// (a cgroup is judged gone only when the whole hierarchy was searched); the cgroup ids
    /// released.
    pub fn expire(&self) -> Result<Vec<u64>, IsolateError> {
        let list = self.list()?;
        let mut released = Vec::new();
        let alive: Vec<u64> = list
            .iter()
            .filter(|i| i.in_force)
            .map(|i| i.cgroup_id)
            .collect();
        let existing = existing_cgroups(&alive);
        for iso in &list {
            let gone = existing
                .as_ref()
                .is_some_and(|found| !found.contains(&iso.cgroup_id));
            if (!iso.in_force || gone) && self.kernel.release(iso.cgroup_id)? {
                tracing::info!(
                    cgroup_id = iso.cgroup_id,
                    reason = if iso.in_force {
                        "cgroup gone"
                    } else {
                        "expired"
                    },
                    "container network isolation removed"
                );
                released.push(iso.cgroup_id);
            }
        }
        Ok(released)
    }
}

/// Which of `wanted` exist as cgroup v2 directories; `None` when that cannot be told (no
/// cgroup v2 mount, or the hierarchy is larger than the walk's bounds).
fn existing_cgroups(wanted: &[u64]) -> Option<HashSet<u64>> {
    if wanted.is_empty() {
        return Some(HashSet::new());
    }
    let root = driftwatch_runtime::procfs::ProcFs::new("/proc", None)
        .cgroup2_mount()?
        .to_path_buf();
    let wanted: HashSet<u64> = wanted.iter().copied().collect();
    let mut found = HashSet::new();
    let mut stack = vec![(root, 0usize)];
    let mut visited = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        visited += 1;
        if visited > CGROUP_WALK_MAX {
            return None;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue; // removed meanwhile
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let ino = std::os::unix::fs::DirEntryExt::ino(&e);
            if wanted.contains(&ino) {
                found.insert(ino);
                if found.len() == wanted.len() {
                    return Some(found);
                }
            }
            if depth + 1 < CGROUP_WALK_DEPTH {
                stack.push((e.path(), depth + 1));
            } else {
                return None;
            }
        }
    }
    Some(found)
}

/// [`Isolations::isolate`] under [`DEFAULT_PIN_DIR`].
pub fn isolate(
    cgroup_dir: &Path,
    cgroup_id: u64,
    ttl: Option<Duration>,
) -> Result<Isolation, IsolateError> {
    Isolations::default().isolate(cgroup_dir, cgroup_id, ttl)
}

/// [`Isolations::release`] under [`DEFAULT_PIN_DIR`].
pub fn release(cgroup_id: u64) -> Result<bool, IsolateError> {
    Isolations::default().release(cgroup_id)
}

/// [`Isolations::list`] under [`DEFAULT_PIN_DIR`].
pub fn list() -> Result<Vec<Isolation>, IsolateError> {
    Isolations::default().list()
}

/// [`Isolations::expire`] under [`DEFAULT_PIN_DIR`].
pub fn expire() -> Result<Vec<u64>, IsolateError> {
    Isolations::default().expire()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_times_become_wall_times() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(
            wall(5_000_000_000, 2_000_000_000, now),
            now + Duration::from_secs(3)
        );
        assert_eq!(
            wall(1_000_000_000, 2_000_000_000, now),
            now - Duration::from_secs(1)
        );
        assert_eq!(wall(0, u64::MAX, now), SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn our_own_cgroup_exists_and_an_unknown_id_does_not() {
        let root = driftwatch_runtime::procfs::ProcFs::new("/proc", None)
            .cgroup2_mount()
            .map(Path::to_path_buf)
            .expect("the cgroup v2 hierarchy is mounted (tests run as root on the node)");
        let child = root.join(format!("dwtest-respond-{}", std::process::id()));
        std::fs::create_dir(&child).expect("make a cgroup");
        let id = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&child).expect("stat"));
        let found = existing_cgroups(&[id, u64::MAX]).expect("searched");
        let _ = std::fs::remove_dir(&child);
        assert!(found.contains(&id));
        assert!(!found.contains(&u64::MAX));
    }
}

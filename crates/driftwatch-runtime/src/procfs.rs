//! Facts about host processes read from procfs: mount namespace, cgroup v2 path and id, root
//! overlay layers. Processes vanish at any time; every read tolerates that.

use crate::{cgroup, mountinfo};
use driftwatch_event::OverlayLayers;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A procfs mount and the cgroup2 mount point seen from this process.
#[derive(Debug, Clone)]
pub struct ProcFs {
    root: PathBuf,
    cgroup2: Option<PathBuf>,
}

/// What procfs says about one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessFacts {
    pub mntns: Option<u64>,
    pub cgroup_path: Option<String>,
    pub cgroup_id: Option<u64>,
    /// Root overlay layers; `None` when the root is not an overlay or mountinfo is unreadable.
    pub rootfs: Option<OverlayLayers>,
    /// The root mount's filesystem type, when mountinfo was readable.
    pub root_fstype: Option<String>,
}

impl ProcFs {
    /// `proc_root` is usually `/proc`; the cgroup2 mount is taken from `cgroup2` when given,
    /// else found in `<proc_root>/self/mountinfo`.
    pub fn new(proc_root: impl Into<PathBuf>, cgroup2: Option<PathBuf>) -> Self {
        let root = proc_root.into();
        let cgroup2 = cgroup2.or_else(|| {
            std::fs::read_to_string(root.join("self/mountinfo"))
                .ok()
                .and_then(|m| mountinfo::cgroup2_mount(&m))
        });
        Self { root, cgroup2 }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cgroup2 mount point, if there is one.
    pub fn cgroup2_mount(&self) -> Option<&Path> {
        self.cgroup2.as_deref()
    }

    fn pid_path(&self, pid: u32, rest: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(rest)
    }

    /// Inode of `/proc/<pid>/ns/mnt`.
    pub fn mntns(&self, pid: u32) -> io::Result<u64> {
        std::fs::metadata(self.pid_path(pid, "ns/mnt")).map(|m| m.ino())
    }

    /// The host's mount namespace: pid 1's (we share the host pid namespace), else our own
    /// when pid 1's is not readable (an init that is not dumpable).
    pub fn host_mntns(&self) -> Option<u64> {
        self.mntns(1).ok().or_else(|| {
            std::fs::metadata(self.root.join("self/ns/mnt"))
                .map(|m| m.ino())
                .ok()
        })
    }

    /// The `0::` path of `/proc/<pid>/cgroup`.
    pub fn cgroup_path(&self, pid: u32) -> io::Result<Option<String>> {
        let content = std::fs::read_to_string(self.pid_path(pid, "cgroup"))?;
        Ok(cgroup::unified_path(&content).map(str::to_string))
    }

    /// cgroup v2 id of a cgroup path (needs the cgroup2 mount).
    pub fn cgroup_id(&self, path: &str) -> Option<u64> {
        cgroup::cgroup_id(self.cgroup2.as_deref()?, path).ok()
    }

    /// Content of `/proc/<pid>/mountinfo`.
    pub fn mountinfo(&self, pid: u32) -> io::Result<String> {
        std::fs::read_to_string(self.pid_path(pid, "mountinfo"))
    }

    /// All facts that can be read now; missing pieces stay `None`.
    pub fn facts(&self, pid: u32) -> ProcessFacts {
        let mut facts = ProcessFacts {
            mntns: self.mntns(pid).ok(),
            ..ProcessFacts::default()
        };
        if let Ok(Some(path)) = self.cgroup_path(pid) {
            facts.cgroup_id = self.cgroup_id(&path);
            facts.cgroup_path = Some(path);
        }
        if let Ok(content) = self.mountinfo(pid) {
            if let Some(root) = mountinfo::root_mount(&content) {
                facts.rootfs = mountinfo::overlay_layers(&root);
                facts.root_fstype = Some(root.fstype);
            }
        }
        facts
    }

    /// Numeric entries of the procfs root.
    pub fn pids(&self) -> io::Result<Vec<u32>> {
        let mut pids: Vec<u32> = std::fs::read_dir(&self.root)?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }
}

/// The fields of `/proc/<pid>/stat` driftwatch reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub comm: String,
    pub ppid: u32,
    /// The process's start after boot, ns (`starttime`, field 22, in clock ticks of 10 ms);
    /// `None` when the line stops before it.
    pub start_boot_ns: Option<u64>,
}

/// Parses `/proc/<pid>/stat`. The comm is between the first '(' and the *last* ')', since it
/// may itself contain parentheses and spaces; the other fields follow the last ')'.
pub fn parse_stat(stat: &[u8]) -> Option<ProcStat> {
    let open = stat.iter().position(|b| *b == b'(')?;
    let close = stat.iter().rposition(|b| *b == b')')?;
    if close <= open {
        return None;
    }
    let comm = driftwatch_event::text::lossy(&stat[open + 1..close]);
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    // After ')': state is field 3, ppid field 4, starttime field 22.
    let fields: Vec<&str> = rest.split_ascii_whitespace().take(20).collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let start_boot_ns = fields
        .get(19)
        .and_then(|t| t.parse::<u64>().ok())
        .map(|ticks| ticks * 10_000_000);
    Some(ProcStat {
        comm,
        ppid,
        start_boot_ns,
    })
}

/// [`parse_stat`] of `/proc/<pid>/stat` under `proc_root`; `None` when it vanished.
pub fn read_stat(proc_root: &Path, pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read(proc_root.join(pid.to_string()).join("stat")).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_hostile_comms() {
        let short = parse_stat(b"42 (a) b (c)) S 7 42 42 0").unwrap();
        assert_eq!((short.comm.as_str(), short.ppid), ("a) b (c)", 7));
        assert_eq!(short.start_boot_ns, None, "the line stops before starttime");
        assert_eq!(parse_stat(b"42 (x"), None);
        assert_eq!(parse_stat(b")( S 1"), None);
        let fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        let full = parse_stat(format!("7 (a) b) (c) {}\n", fields.join(" ")).as_bytes()).unwrap();
        assert_eq!(full.ppid, 4);
        assert_eq!(full.start_boot_ns, Some(22 * 10_000_000));
    }

    #[test]
    fn own_facts_are_readable_and_missing_pids_are_not_errors() {
        let proc = ProcFs::new("/proc", None);
        let me = std::process::id();
        let facts = proc.facts(me);
        assert_eq!(facts.mntns, proc.mntns(me).ok());
        assert!(facts.mntns.is_some());
        assert!(facts.root_fstype.is_some());
        if proc.cgroup2_mount().is_some() {
            assert!(facts.cgroup_id.is_some());
        }
        // pid_max is at most 2^22: this pid never exists.
        let gone = proc.facts(u32::MAX - 1);
        assert_eq!(gone, ProcessFacts::default());
        assert!(proc.pids().unwrap().contains(&me));
    }
}

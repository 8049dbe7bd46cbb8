//! The process table: who is the parent of whom, with names and command lines, fed by fork, exec
//! and exit events and seeded from /proc at start, so ancestors are known also for processes that
//! existed before the agent.
//!
//! Architecture invariant: memory is bounded. Exited processes are removed (kept a short while in
//! a bounded "recently exited" queue so a child's event that arrives after its parent's exit still
//! finds the parent's name); when the table is full, the oldest entries are evicted.

use driftwatch_event::{ExecEvent, ExitEvent, ForkEvent};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

/// What is known about one process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcEntry {
    pub tgid: u32,
    pub ppid: u32,
    /// Kernel comm (≤ 15 bytes).
    pub comm: Arc<str>,
    /// Executable path as seen by the process.
    pub exepath: Arc<str>,
    /// argv (lossily decoded; non-UTF-8 bytes escaped).
    pub args: Arc<[String]>,
    /// Origin of the executable, decided at its exec (unknown for processes seeded from /proc
    /// and for host processes).
    pub exe_origin: Option<driftwatch_event::ExeOrigin>,
    /// The process ran code that is drift (`proc.drifted`): its executable, a script it
    /// interprets or a file it mapped executable — in this process, or before the fork that made
    /// it. Kept across exec: a dropped binary that execs an image program does not clean it.
    pub drifted: bool,
    /// Monotonic insertion stamp, for eviction order.
    pub(crate) stamp: u64,
}

impl ProcEntry {
    /// Falco's `proc.cmdline`: the process name followed by its arguments (argv[1..]).
    pub fn cmdline(&self) -> String {
        cmdline(&self.comm, &self.args)
    }
}

/// Falco's `proc.cmdline`: name + " " + argv[1..] joined by spaces.
pub fn cmdline(comm: &str, args: &[String]) -> String {
    let mut s = String::from(comm);
    for a in args.iter().skip(1) {
        s.push(' ');
        s.push_str(a);
    }
    s
}

#[derive(Debug)]
pub struct ProcessTable {
    live: HashMap<u32, ProcEntry>,
    exited: VecDeque<ProcEntry>,
    exited_max: usize,
    max: usize,
    next_stamp: u64,
}

impl ProcessTable {
    pub fn new(max: usize) -> ProcessTable {
        ProcessTable {
            live: HashMap::with_capacity(max.min(8192)),
            exited: VecDeque::new(),
            exited_max: (max / 16).clamp(64, 4096),
            max,
            next_stamp: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Look a process up, among live ones first, then recently exited ones.
    pub fn get(&self, tgid: u32) -> Option<&ProcEntry> {
        self.live
            .get(&tgid)
            .or_else(|| self.exited.iter().rev().find(|e| e.tgid == tgid))
    }

    /// The ancestor `n` levels up (`n = 1` is the parent), as Falco's `proc.aname[n]`.
    pub fn ancestor(&self, tgid: u32, n: usize) -> Option<&ProcEntry> {
        let mut cur = self.get(tgid)?;
        for _ in 0..n {
            if cur.ppid == 0 || cur.ppid == cur.tgid {
                return None;
            }
            cur = self.get(cur.ppid)?;
        }
        Some(cur)
    }

    pub fn insert(&mut self, mut e: ProcEntry) {
        e.stamp = self.next_stamp;
        self.next_stamp += 1;
        self.live.insert(e.tgid, e);
        if self.live.len() > self.max {
            self.evict_oldest(self.max / 8 + 1);
        }
    }

    fn evict_oldest(&mut self, n: usize) {
        let mut stamps: Vec<(u64, u32)> = self.live.values().map(|e| (e.stamp, e.tgid)).collect();
        stamps.sort_unstable();
        for (_, tgid) in stamps.into_iter().take(n) {
            self.live.remove(&tgid);
        }
    }

    pub fn on_fork(&mut self, ev: &ForkEvent) {
        let child = &ev.child;
        // The child runs the parent's image until it execs.
        let entry = match self.get(child.ppid) {
            Some(parent) => ProcEntry {
                tgid: child.tgid,
                ppid: child.ppid,
                comm: parent.comm.clone(),
                exepath: parent.exepath.clone(),
                args: parent.args.clone(),
                exe_origin: parent.exe_origin,
                drifted: parent.drifted,
                stamp: 0,
            },
            None => ProcEntry {
                tgid: child.tgid,
                ppid: child.ppid,
                comm: Arc::from(child.comm.as_str()),
                exepath: Arc::from(""),
                args: Arc::from(Vec::new()),
                exe_origin: None,
                drifted: false,
                stamp: 0,
            },
        };
        self.insert(entry);
    }

    /// Record an exec; returns the entry as it is now.
    pub fn on_exec(&mut self, ev: &ExecEvent) -> &ProcEntry {
        let args: Vec<String> = ev
            .args
            .iter()
            .map(|a| driftwatch_event::text::lossy(a))
            .collect();
        let entry = ProcEntry {
            tgid: ev.task.tgid,
            ppid: ev.task.ppid,
            comm: Arc::from(ev.task.comm.as_str()),
            exepath: Arc::from(driftwatch_event::text::lossy(&ev.exepath)),
            args: Arc::from(args),
            exe_origin: None,
            drifted: self.live.get(&ev.task.tgid).is_some_and(|e| e.drifted),
            stamp: 0,
        };
        let tgid = entry.tgid;
        self.insert(entry);
        // insert() may evict, but never the entry it just inserted (it has the newest stamp).
        self.live.entry(tgid).or_insert_with(|| ProcEntry {
            tgid,
            ..ProcEntry::default()
        })
    }

    /// Record the origin decided for a process's executable.
    pub fn set_exe_origin(&mut self, tgid: u32, origin: driftwatch_event::ExeOrigin) {
        if let Some(e) = self.live.get_mut(&tgid) {
            e.exe_origin = Some(origin);
        }
    }

    /// Mark a process as having run drifted code (see [`ProcEntry::drifted`]).
    pub fn mark_drifted(&mut self, tgid: u32) {
        if let Some(e) = self.live.get_mut(&tgid) {
            e.drifted = true;
        }
    }

    pub fn on_exit(&mut self, ev: &ExitEvent) {
        if let Some(e) = self.live.remove(&ev.task.tgid) {
            self.exited.push_back(e);
            while self.exited.len() > self.exited_max {
                self.exited.pop_front();
            }
        }
    }

    /// Seed from a procfs directory (normally `/proc`). Processes that vanish mid-scan are
    /// skipped. Returns how many processes were read.
    pub fn seed_from_proc(&mut self, proc_root: &Path) -> usize {
        let Ok(dir) = std::fs::read_dir(proc_root) else {
            return 0;
        };
        let mut n = 0;
        for ent in dir.flatten() {
            let name = ent.file_name();
            let Some(tgid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(e) = read_proc_entry(&ent.path(), tgid) {
                self.insert(e);
                n += 1;
            }
        }
        n
    }

    /// Drop live entries whose process no longer exists (exit events lost or never seen).
    pub fn sweep(&mut self, proc_root: &Path) -> usize {
        let before = self.live.len();
        self.live
            .retain(|tgid, _| proc_root.join(tgid.to_string()).exists());
        before - self.live.len()
    }
}

/// Read one process from `/proc/<pid>`; `None` when it vanished or is unreadable.
pub fn read_proc_entry(dir: &Path, tgid: u32) -> Option<ProcEntry> {
    let stat = std::fs::read(dir.join("stat")).ok()?;
    let driftwatch_runtime::procfs::ProcStat { comm, ppid, .. } =
        driftwatch_runtime::procfs::parse_stat(&stat)?;
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(driftwatch_event::text::lossy)
        .collect();
    let exepath = std::fs::read_link(dir.join("exe"))
        .map(|p| driftwatch_event::text::lossy(p.as_os_str().as_encoded_bytes()))
        .unwrap_or_default();
    Some(ProcEntry {
        tgid,
        ppid,
        comm: Arc::from(comm),
        exepath: Arc::from(exepath),
        args: Arc::from(args),
        exe_origin: None,
        drifted: false,
        stamp: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftwatch_event::TaskInfo;

    fn exec(tgid: u32, ppid: u32, comm: &str, path: &str, args: &[&str]) -> ExecEvent {
        ExecEvent {
            task: TaskInfo {
                pid: tgid,
                tgid,
                ppid,
                comm: comm.into(),
                ..TaskInfo::default()
            },
            exepath: path.as_bytes().to_vec(),
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            ..ExecEvent::default()
        }
    }

    #[test]
    fn fork_exec_exit_keep_ancestry() {
        let mut t = ProcessTable::new(1024);
        t.on_exec(&exec(10, 1, "bash", "/bin/bash", &["bash", "-c", "x"]));
        t.on_fork(&ForkEvent {
            time_ns: 0,
            child: TaskInfo {
                tgid: 11,
                pid: 11,
                ppid: 10,
                ..TaskInfo::default()
            },
        });
        assert_eq!(
            &*t.get(11).unwrap().comm,
            "bash",
            "child inherits the parent image"
        );
        let e = t.on_exec(&exec(
            11,
            10,
            "evil",
            "/tmp/evil",
            &["/tmp/evil", "-x", "y"],
        ));
        assert_eq!(e.cmdline(), "evil -x y");
        assert_eq!(&*t.ancestor(11, 1).unwrap().comm, "bash");
        assert!(t.ancestor(11, 3).is_none());
        t.on_exit(&ExitEvent {
            task: TaskInfo {
                tgid: 10,
                ..TaskInfo::default()
            },
            ..ExitEvent::default()
        });
        assert_eq!(t.len(), 1);
        // Recently exited parents are still found for late events.
        assert_eq!(&*t.ancestor(11, 1).unwrap().comm, "bash");
    }

    #[test]
    fn table_is_bounded() {
        let mut t = ProcessTable::new(1024);
        for i in 0..10_000u32 {
            t.on_exec(&exec(i + 2, 1, "x", "/x", &["x"]));
        }
        assert!(t.len() <= 1024, "len {}", t.len());
        // The newest survive.
        assert!(t.get(10_001).is_some());
    }

    #[test]
    fn seeds_from_real_proc() {
        let mut t = ProcessTable::new(1 << 16);
        let n = t.seed_from_proc(Path::new("/proc"));
        assert!(n > 0);
        let me = t.get(std::process::id()).expect("own process is seeded");
        assert!(me.ppid > 0);
        assert!(!me.exepath.is_empty());
    }
}

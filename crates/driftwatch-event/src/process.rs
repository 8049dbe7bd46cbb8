//! Process events as the agent sees them after decoding the kernel records.

/// Identity of the task an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskInfo {
    /// Thread id.
    pub pid: u32,
    /// Process id (thread-group id); what Falco calls `proc.pid`.
    pub tgid: u32,
    /// Parent process id.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// Mount namespace inode.
    pub mntns: u64,
    /// Pid namespace inode.
    pub pidns: u64,
    /// The 15-character kernel comm (`proc.name`).
    pub comm: String,
    /// The process's start as the kernel knows it (its thread-group leader's `start_boottime`,
    /// boot-time ns; an exec keeps it). With `tgid` it names one process whatever PIDs are
    /// reused: the value to give `ExecSensor::mark_net_drifted` for a drifted process.
    pub start_ns: u64,
}

/// Identity of the executable file of an exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExeFile {
    pub ino: u64,
    /// Kernel `s_dev` of the file's superblock.
    pub dev: u32,
    pub nlink: u32,
    pub ctime_sec: u64,
    pub ctime_nsec: u32,
    pub mtime_sec: u64,
    pub mtime_nsec: u32,
    pub size: u64,
    pub mode: u32,
    /// Superblock magic of the file's filesystem.
    pub s_magic: u64,
}

/// What the kernel could tell about the exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExecFlags {
    /// Overlay inode with an upper dentry (written or copied up in the container).
    pub overlay_upper: bool,
    /// The file is a memfd.
    pub memfd: bool,
    /// The file's mount is the task's root mount (the container's rootfs).
    pub on_root_mount: bool,
    pub path_truncated: bool,
    /// The dentry walk did not reach the task's root (file outside the root, e.g. memfd).
    pub path_outside_root: bool,
    pub argv_truncated: bool,
    pub filename_truncated: bool,
    /// The kernel sent SIGKILL before the new program ran (enforce policy).
    pub killed: bool,
    /// The task's cgroup was in the kernel policy map (a container the agent knew).
    pub in_policy: bool,
    /// The exec ran a script through its `#!` interpreter (`interp` differs from `filename`).
    pub script: bool,
    /// An upper-layer file the kernel let run under enforcement (the agent had judged it
    /// copied-up-unchanged).
    pub allowed: bool,
    /// The kernel killed this exec because the exec gate had judged its script drifted.
    pub doomed: bool,
}

/// An `execve`/`execveat` that succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecEvent {
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    pub task: TaskInfo,
    /// The file name passed to exec (`bprm->filename`), raw bytes.
    pub filename: Vec<u8>,
    /// The resolved path of the executable inside the task's root, raw bytes.
    pub exepath: Vec<u8>,
    /// argv, raw bytes per argument.
    pub args: Vec<Vec<u8>>,
    pub exe: ExeFile,
    pub flags: ExecFlags,
    /// `bprm->interp`: the interpreter of a `#!` script (equal to `filename` otherwise).
    pub interp: Vec<u8>,
    /// The working directory inside the task's root, when the kernel reported it (container
    /// tasks only).
    pub cwd: Option<Vec<u8>>,
}

/// How a file was mapped executable. The discriminants are `DW_MAP_HOW_*` of `abi.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u16)]
pub enum MapHow {
    /// `mmap(…, PROT_EXEC, …, fd, …)`.
    #[default]
    Mmap = 1,
    /// `mprotect(…, PROT_EXEC)` of a file mapping.
    Mprotect = 2,
    /// The ELF interpreter (`PT_INTERP`) the kernel mapped at exec: reported as part of the
    /// exec (`evt.type` `execve`).
    Interp = 3,
}

impl MapHow {
    /// Every value, in `DW_MAP_HOW_*` order (value = index + 1).
    pub const ALL: [MapHow; 3] = [MapHow::Mmap, MapHow::Mprotect, MapHow::Interp];

    /// From a `DW_MAP_HOW_*` value.
    pub fn from_raw(how: u16) -> Option<MapHow> {
        MapHow::ALL.get(usize::from(how).checked_sub(1)?).copied()
    }

    /// The `DW_MAP_HOW_*` value.
    pub fn raw(self) -> u16 {
        self as u16
    }

    /// Falco's `evt.type` of the event that mapped the file (the ELF interpreter is mapped by
    /// the exec itself).
    pub fn evt_type(self) -> &'static str {
        match self {
            MapHow::Mmap => "mmap",
            MapHow::Mprotect => "mprotect",
            MapHow::Interp => "execve",
        }
    }
}

/// A file mapped executable into a container process whose file the kernel found suspicious
/// (written in the container, on another mount, memory-backed or deleted). Image files mapped by
/// every dynamic executable are filtered out in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MapEvent {
    pub time_ns: u64,
    pub task: TaskInfo,
    pub file: ExeFile,
    /// The same verdict flags as for an exec (`overlay_upper`, `memfd`, `on_root_mount`, …).
    pub flags: ExecFlags,
    /// `PROT_*` bits requested.
    pub prot: u32,
    pub how: MapHow,
    /// Resolved path of the mapped file inside the task's root.
    pub path: Vec<u8>,
}

/// A new process (not a thread).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForkEvent {
    pub time_ns: u64,
    pub child: TaskInfo,
}

/// A process (thread-group leader) exited.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExitEvent {
    pub time_ns: u64,
    pub task: TaskInfo,
    pub exit_code: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Exec(ExecEvent),
    Fork(ForkEvent),
    Exit(ExitEvent),
    Map(MapEvent),
    /// A file-changing syscall of a container process.
    File(crate::file::FileEvent),
    /// A network syscall of a container process.
    Net(crate::net::NetEvent),
    /// A DNS answer a container received.
    Dns(crate::dns::DnsEvent),
}

impl Event {
    /// Falco's `evt.type` for the event.
    pub fn evt_type(&self) -> &'static str {
        match self {
            Event::Exec(_) => "execve",
            Event::Fork(_) => "clone",
            Event::Exit(_) => "procexit",
            Event::Map(m) => m.how.evt_type(),
            Event::File(f) => f.op.as_str(),
            Event::Net(n) => n.op.as_str(),
            // not a syscall: no rule is evaluated on it
            Event::Dns(_) => "dns",
        }
    }

    /// Metric label for the event kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Exec(_) => "exec",
            Event::Fork(_) => "fork",
            Event::Exit(_) => "exit",
            Event::Map(_) => "map",
            Event::File(_) => "file",
            Event::Net(_) => "net",
            Event::Dns(_) => "dns",
        }
    }
}

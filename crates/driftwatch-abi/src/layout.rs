//! `#[repr(C)]` mirrors of the structs in `crates/driftwatch-bpf/bpf/include/abi.h`.
//!
//! Field order, widths and explicit padding follow the header exactly; the compile-time
//! assertions below pin the sizes, and `driftwatch-bpf`'s `abi_layout` test compares every size
//! and offset with the BTF of the compiled BPF object.

use core::mem::{offset_of, size_of};

use crate::{
    DW_ARGV_MAX, DW_COMM_LEN, DW_CWD_MAX, DW_DNS_PAYLOAD_MAX, DW_FILENAME_MAX, DW_INTERP_MAX,
    DW_PATH_MAX,
};

/// `struct dw_event_header`: the first 16 bytes of every ring-buffer record.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// `enum dw_event_kind` (`DW_EV_*`).
    pub kind: u16,
    /// `DW_ABI_VERSION` of the writer.
    pub version: u16,
    /// Meaningful bytes of the record, header included.
    pub len: u32,
    /// `bpf_ktime_get_boot_ns()` at the event.
    pub ktime_ns: u64,
}

/// `struct dw_task`: identity of the task an event is about.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Task {
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub mntns_ino: u32,
    pub cgroup_id: u64,
    pub pidns_ino: u32,
    pub _pad0: u32,
    pub comm: [u8; DW_COMM_LEN],
    /// The process's start: its thread-group leader's `start_boottime` (boot-time ns). With
    /// `tgid` it names one process across PID reuse (`dw_net_drifted`).
    pub start_ns: u64,
}

/// `struct dw_file_id`: identity of a file (an executable, or a file mapped executable).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileId {
    pub ino: u64,
    pub ctime_sec: u64,
    pub mtime_sec: u64,
    pub ctime_nsec: u32,
    pub mtime_nsec: u32,
    /// `inode->i_sb->s_dev` (kernel `dev_t` encoding: `major << 20 | minor`).
    pub dev: u32,
    pub nlink: u32,
    pub size: u64,
    /// `inode->i_sb->s_magic`.
    pub s_magic: u64,
    pub mode: u32,
    pub _pad0: u32,
}

impl FileId {
    const ZERO: FileId = FileId {
        ino: 0,
        ctime_sec: 0,
        mtime_sec: 0,
        ctime_nsec: 0,
        mtime_nsec: 0,
        dev: 0,
        nlink: 0,
        size: 0,
        s_magic: 0,
        mode: 0,
        _pad0: 0,
    };
}

const ZERO_TASK: Task = Task {
    pid: 0,
    tgid: 0,
    ppid: 0,
    uid: 0,
    gid: 0,
    euid: 0,
    egid: 0,
    mntns_ino: 0,
    cgroup_id: 0,
    pidns_ino: 0,
    _pad0: 0,
    comm: [0; DW_COMM_LEN],
    start_ns: 0,
};

const ZERO_HEADER: EventHeader = EventHeader {
    kind: 0,
    version: 0,
    len: 0,
    ktime_ns: 0,
};

/// `struct dw_exec_event` (11184 bytes; the kernel emits it packed, see
/// [`EXEC_EVENT_MIN_SIZE`]).
#[repr(C)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecEvent {
    pub hdr: EventHeader,
    pub task: Task,
    /// `bprm->file`: the interpreter for a script.
    pub exe: FileId,
    pub flags: u32,
    pub old_pid: u32,
    pub filename_len: u16,
    pub interp_len: u16,
    pub path_len: u16,
    pub path_components: u16,
    pub argv_len: u16,
    pub cwd_len: u16,
    pub cwd_components: u16,
    pub _pad1: u16,
    pub filename: [u8; DW_FILENAME_MAX],
    pub interp: [u8; DW_INTERP_MAX],
    pub path: [u8; DW_PATH_MAX],
    pub argv: [u8; DW_ARGV_MAX],
    pub cwd: [u8; DW_CWD_MAX],
}

impl ExecEvent {
    /// An all-zero record (`Default` is not available for arrays this large).
    pub const fn zeroed() -> Self {
        Self {
            hdr: ZERO_HEADER,
            task: ZERO_TASK,
            exe: FileId::ZERO,
            flags: 0,
            old_pid: 0,
            filename_len: 0,
            interp_len: 0,
            path_len: 0,
            path_components: 0,
            argv_len: 0,
            cwd_len: 0,
            cwd_components: 0,
            _pad1: 0,
            filename: [0; DW_FILENAME_MAX],
            interp: [0; DW_INTERP_MAX],
            path: [0; DW_PATH_MAX],
            argv: [0; DW_ARGV_MAX],
            cwd: [0; DW_CWD_MAX],
        }
    }
}

/// `struct dw_map_event` (4288 bytes; the kernel emits the fixed part and `path_len` bytes of
/// `path`, see [`MAP_EVENT_MIN_SIZE`]): a suspicious file mapped executable.
#[repr(C)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEvent {
    pub hdr: EventHeader,
    pub task: Task,
    pub file: FileId,
    /// `EXEC_F_*` (the file, path and kill bits).
    pub flags: u32,
    /// `PROT_*` asked for.
    pub prot: u32,
    /// mmap `MAP_*` flags; 0 for mprotect.
    pub map_flags: u32,
    /// `MAP_HOW_*`.
    pub how: u16,
    pub path_len: u16,
    pub path_components: u16,
    pub _pad0: u16,
    pub _pad1: u32,
    /// mmap address hint / mprotect start.
    pub addr: u64,
    pub len: u64,
    /// Offset in the file of `addr` (mmap: the offset argument).
    pub off: u64,
    pub path: [u8; DW_PATH_MAX],
}

impl MapEvent {
    /// An all-zero record.
    pub const fn zeroed() -> Self {
        Self {
            hdr: ZERO_HEADER,
            task: ZERO_TASK,
            file: FileId::ZERO,
            flags: 0,
            prot: 0,
            map_flags: 0,
            how: 0,
            path_len: 0,
            path_components: 0,
            _pad0: 0,
            _pad1: 0,
            addr: 0,
            len: 0,
            off: 0,
            path: [0; DW_PATH_MAX],
        }
    }
}

/// `struct dw_file_event`: a file-changing syscall of a container task, at its exit.
#[repr(C)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEvent {
    pub hdr: EventHeader,
    pub task: Task,
    pub file: FileId,
    pub ret: i64,
    pub flags: u32,
    pub op_flags: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub fd: i32,
    pub dirfd1: i32,
    pub dirfd2: i32,
    pub op: u16,
    pub path_len: u16,
    pub path_components: u16,
    pub name1_len: u16,
    pub dir1_len: u16,
    pub dir1_components: u16,
    pub name2_len: u16,
    pub dir2_len: u16,
    pub dir2_components: u16,
    pub _pad0: u16,
    pub _pad1: u32,
    pub path: [u8; DW_PATH_MAX],
    pub name1: [u8; DW_PATH_MAX],
    pub dir1: [u8; DW_PATH_MAX],
    pub name2: [u8; DW_PATH_MAX],
    pub dir2: [u8; DW_PATH_MAX],
}

impl FileEvent {
    /// An all-zero record.
    pub const fn zeroed() -> Self {
        Self {
            hdr: ZERO_HEADER,
            task: ZERO_TASK,
            file: FileId::ZERO,
            ret: 0,
            flags: 0,
            op_flags: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            fd: 0,
            dirfd1: 0,
            dirfd2: 0,
            op: 0,
            path_len: 0,
            path_components: 0,
            name1_len: 0,
            dir1_len: 0,
            dir1_components: 0,
            name2_len: 0,
            dir2_len: 0,
            dir2_components: 0,
            _pad0: 0,
            _pad1: 0,
            path: [0; DW_PATH_MAX],
            name1: [0; DW_PATH_MAX],
            dir1: [0; DW_PATH_MAX],
            name2: [0; DW_PATH_MAX],
            dir2: [0; DW_PATH_MAX],
        }
    }
}

/// `struct dw_net_event`: a network syscall of a container task, at its exit (fixed size).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetEvent {
    pub hdr: EventHeader,
    pub task: Task,
    /// The syscall's return value.
    pub ret: i64,
    pub fd: i32,
    pub fd2: i32,
    /// `enum dw_net_op`.
    pub op: u16,
    /// `AF_*`.
    pub family: u16,
    pub sock_type: u16,
    pub protocol: u16,
    /// `NET_F_*`.
    pub flags: u32,
    /// socket: the type argument; listen: the backlog; accept4/dup3: the flags.
    pub arg: u32,
    /// Host byte order.
    pub lport: u16,
    /// Host byte order.
    pub rport: u16,
    pub _pad0: u32,
    /// IPv4 in the first 4 bytes (network order), IPv6 in all 16.
    pub laddr: [u8; 16],
    pub raddr: [u8; 16],
}

/// `struct dw_dns_event`: a UDP datagram from port 53 received by a socket of a tracked cgroup
/// (a DNS answer a container received). The largest record; on the wire the payload is cut to
/// `payload_len` bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsEvent {
    pub hdr: EventHeader,
    /// The receiving socket's cgroup v2 id.
    pub cgroup_id: u64,
    /// `AF_INET`, `AF_INET6`.
    pub family: u16,
    /// The server's port (53), host byte order.
    pub sport: u16,
    /// The receiving socket's port, host byte order.
    pub dport: u16,
    /// Bytes of `payload` kept (at most [`DW_DNS_PAYLOAD_MAX`]).
    pub payload_len: u16,
    /// `DNS_F_*`.
    pub flags: u32,
    /// The UDP payload's length as the datagram says.
    pub udp_len: u32,
    /// The server that answered: IPv4 in the first 4 bytes (network order), IPv6 in all 16.
    pub saddr: [u8; 16],
    /// The receiving end.
    pub daddr: [u8; 16],
    pub payload: [u8; DW_DNS_PAYLOAD_MAX],
}

impl Default for DnsEvent {
    fn default() -> Self {
        DnsEvent {
            hdr: EventHeader::default(),
            cgroup_id: 0,
            family: 0,
            sport: 0,
            dport: 0,
            payload_len: 0,
            flags: 0,
            udp_len: 0,
            saddr: [0; 16],
            daddr: [0; 16],
            payload: [0; DW_DNS_PAYLOAD_MAX],
        }
    }
}

/// `struct dw_fork_event`: a new thread-group leader.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForkEvent {
    pub hdr: EventHeader,
    /// The child; `ppid` is the parent's tgid.
    pub child: Task,
}

/// `struct dw_exit_event`: a thread-group leader exited.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExitEvent {
    pub hdr: EventHeader,
    pub task: Task,
    /// `task->exit_code` (wait-status encoding: `code << 8 | signal`).
    pub exit_code: u32,
    pub _pad0: u32,
}

/// `struct dw_config`: value of the single-entry `dw_config` array map.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Config {
    /// Events whose tgid is this are not reported.
    pub agent_tgid: u32,
    /// Global switch: 0 = never kill, whatever `dw_policy` says.
    pub enforce: u32,
    /// The host's mount namespace inode: tasks still in it are never killed, and their
    /// executable mappings are not looked at (0 = unknown).
    pub host_mntns_ino: u32,
    /// The running kernel's `FMODE_BACKING` bit (see [`crate::fmode_backing_for_release`]);
    /// 0 = the kernel has no backing files.
    pub fmode_backing: u32,
}

impl Config {
    /// The map value bytes, in the layout of `struct dw_config` (native endianness).
    pub fn to_bytes(&self) -> [u8; size_of::<Config>()] {
        let mut out = [0u8; size_of::<Config>()];
        out[offset_of!(Config, agent_tgid)..][..4].copy_from_slice(&self.agent_tgid.to_ne_bytes());
        out[offset_of!(Config, enforce)..][..4].copy_from_slice(&self.enforce.to_ne_bytes());
        out[offset_of!(Config, host_mntns_ino)..][..4]
            .copy_from_slice(&self.host_mntns_ino.to_ne_bytes());
        out[offset_of!(Config, fmode_backing)..][..4]
            .copy_from_slice(&self.fmode_backing.to_ne_bytes());
        out
    }
}

/// Size of `struct dw_exec_event`.
pub const EXEC_EVENT_SIZE: usize = size_of::<ExecEvent>();
/// Smallest valid exec record: the fixed part, everything before `filename`. On the wire the
/// variable part follows packed (ABI version 3): `filename_len` bytes of filename,
/// `interp_len` of interp, `path_len` of path, `argv_len` of argv, `cwd_len` of cwd.
pub const EXEC_EVENT_MIN_SIZE: usize = offset_of!(ExecEvent, filename);
/// Size of `struct dw_map_event`.
pub const MAP_EVENT_SIZE: usize = size_of::<MapEvent>();
/// Smallest valid map record: the fixed part, everything before `path`; `path_len` bytes of
/// path follow.
pub const MAP_EVENT_MIN_SIZE: usize = offset_of!(MapEvent, path);
/// Size of `struct dw_file_event` (the largest file record).
pub const FILE_EVENT_SIZE: usize = size_of::<FileEvent>();
/// The fixed part of a file record (`offsetof(struct dw_file_event, path)`).
pub const FILE_EVENT_MIN_SIZE: usize = offset_of!(FileEvent, path);
/// Size of `struct dw_net_event` (network records are always whole).
pub const NET_EVENT_SIZE: usize = size_of::<NetEvent>();
/// Size of `struct dw_dns_event` (the largest DNS record).
pub const DNS_EVENT_SIZE: usize = size_of::<DnsEvent>();
/// The fixed part of a DNS record (`offsetof(struct dw_dns_event, payload)`); `payload_len`
/// bytes of payload follow.
pub const DNS_EVENT_MIN_SIZE: usize = offset_of!(DnsEvent, payload);
/// Size of `struct dw_fork_event`.
pub const FORK_EVENT_SIZE: usize = size_of::<ForkEvent>();
/// Size of `struct dw_exit_event`.
pub const EXIT_EVENT_SIZE: usize = size_of::<ExitEvent>();
/// Size of `struct dw_event_header`.
pub const EVENT_HEADER_SIZE: usize = size_of::<EventHeader>();

// The header promises "no implicit holes": the sums below only hold if that is true.
const _: () = assert!(size_of::<EventHeader>() == 16);
const _: () = assert!(size_of::<Task>() == 72);
const _: () = assert!(size_of::<FileId>() == 64);
const _: () = assert!(offset_of!(ExecEvent, filename) == 176);
const _: () = assert!(offset_of!(ExecEvent, interp) == 176 + DW_FILENAME_MAX);
const _: () = assert!(offset_of!(ExecEvent, path) == 176 + DW_FILENAME_MAX + DW_INTERP_MAX);
const _: () = assert!(offset_of!(ExecEvent, argv) == offset_of!(ExecEvent, path) + DW_PATH_MAX);
const _: () = assert!(offset_of!(ExecEvent, cwd) == offset_of!(ExecEvent, argv) + DW_ARGV_MAX);
const _: () = assert!(size_of::<ExecEvent>() == 11184);
const _: () = assert!(offset_of!(MapEvent, path) == 200);
const _: () = assert!(size_of::<MapEvent>() == 200 + DW_PATH_MAX);
const _: () = assert!(offset_of!(FileEvent, ret) == 152);
const _: () = assert!(offset_of!(FileEvent, path) == 216);
const _: () = assert!(size_of::<FileEvent>() == 216 + 5 * DW_PATH_MAX);
const _: () = assert!(offset_of!(NetEvent, ret) == 88);
const _: () = assert!(offset_of!(NetEvent, laddr) == 128);
const _: () = assert!(size_of::<NetEvent>() == 160);
const _: () = assert!(offset_of!(DnsEvent, payload) == 72);
const _: () = assert!(size_of::<DnsEvent>() == 72 + DW_DNS_PAYLOAD_MAX);
const _: () = assert!(size_of::<ForkEvent>() == 88);
const _: () = assert!(size_of::<ExitEvent>() == 96);
const _: () = assert!(size_of::<Config>() == 16);

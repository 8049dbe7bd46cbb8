//! The driftwatch kernel/user ABI.
//!
//! `bpf/include/abi.h` in `driftwatch-bpf` is the source of truth; this crate holds its
//! `#[repr(C)]` mirrors ([`layout`]), the constants, a byte encoder for tests and tools
//! ([`encode`]) and a safe decoder ([`decode()`]) that turns one ring-buffer record into a
//! borrowed [`Record`] without copying and never panics, whatever the input.
//!
//! Architecture invariant: no IO, no allocation, no `unsafe`.
//! Multi-byte fields are in the host's native byte order (the BPF program runs on the same host).
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod decode;
pub mod encode;
pub mod layout;

pub use decode::{
    decode, DecodeError, DnsRecord, ExecRecord, ExitRecord, FileOpRecord, FileRecord, ForkRecord,
    MapRecord, NetRecord, PathDisplay, Record, TaskRecord,
};
pub use layout::{
    Config, DnsEvent, EventHeader, ExecEvent, ExitEvent, FileEvent, FileId, ForkEvent, MapEvent,
    NetEvent, Task, DNS_EVENT_MIN_SIZE, DNS_EVENT_SIZE, EVENT_HEADER_SIZE, EXEC_EVENT_MIN_SIZE,
    EXEC_EVENT_SIZE, EXIT_EVENT_SIZE, FILE_EVENT_MIN_SIZE, FILE_EVENT_SIZE, FORK_EVENT_SIZE,
    MAP_EVENT_MIN_SIZE, MAP_EVENT_SIZE, NET_EVENT_SIZE,
};

/// `DW_ABI_VERSION`: bumped whenever a layout in `abi.h` changes.
pub const DW_ABI_VERSION: u16 = 7;

/// `DW_COMM_LEN`.
pub const DW_COMM_LEN: usize = 16;
/// `DW_FILENAME_MAX`: size of `dw_exec_event.filename` (a truncated filename keeps
/// `DW_FILENAME_MAX - 1` bytes).
pub const DW_FILENAME_MAX: usize = 512;
/// `DW_PATH_MAX`: size of `dw_exec_event.path`.
pub const DW_PATH_MAX: usize = 4096;
/// `DW_PATH_MAX_COMPONENTS`: most components the kernel-side dentry walk records.
pub const DW_PATH_MAX_COMPONENTS: usize = 64;
/// `DW_ARGV_MAX`: size of `dw_exec_event.argv`.
pub const DW_ARGV_MAX: usize = 2048;
/// `DW_INTERP_MAX`: size of `dw_exec_event.interp`.
pub const DW_INTERP_MAX: usize = 256;
/// `DW_CWD_MAX`: size of `dw_exec_event.cwd`.
pub const DW_CWD_MAX: usize = DW_PATH_MAX;

/// `DW_EV_EXEC`.
pub const DW_EV_EXEC: u16 = 1;
/// `DW_EV_FORK`.
pub const DW_EV_FORK: u16 = 2;
/// `DW_EV_EXIT`.
pub const DW_EV_EXIT: u16 = 3;
/// `DW_EV_MAP`.
pub const DW_EV_MAP: u16 = 4;
/// `DW_EV_FILE`.
pub const DW_EV_FILE: u16 = 5;
/// `DW_EV_NET`.
pub const DW_EV_NET: u16 = 6;
/// `DW_EV_DNS`.
pub const DW_EV_DNS: u16 = 7;

/// `DW_DNS_PAYLOAD_MAX`: bytes of a DNS answer kept (`dw_dns_event.payload`).
pub const DW_DNS_PAYLOAD_MAX: usize = 512;
/// `dw_dns_event.flags`: the UDP payload was longer than [`DW_DNS_PAYLOAD_MAX`].
pub const DNS_F_TRUNCATED: u32 = 1 << 0;

/// `DW_NET_OP_MAX`: network ops are `1..=DW_NET_OP_MAX` (`enum dw_net_op`; named by
/// `driftwatch_event::NetOp`, whose discriminants the `abi_layout` test checks against the
/// header).
pub const DW_NET_OP_MAX: u16 = 11;
/// `dw_net_event.flags`: the cgroup was found in `dw_policy`.
pub const NET_F_IN_POLICY: u32 = 1 << 0;
/// `dw_net_event.flags`: family, type, protocol and the local address come from the kernel's
/// socket.
pub const NET_F_HAVE_SOCK: u32 = 1 << 1;
/// `dw_net_event.flags`: the remote address is the kernel socket's peer.
pub const NET_F_REMOTE_SOCK: u32 = 1 << 2;
/// `dw_net_event.flags`: the remote address is the call's sockaddr argument (connect when the
/// kernel has no peer, sendto/sendmsg's destination).
pub const NET_F_REMOTE_ARG: u32 = 1 << 3;
/// `dw_net_event.flags`: a connect that did not go through the connect syscall (io_uring), seen
/// by `cgroup/connect4|6` before it ran: `ret` is 0 and means "not known", `fd` is -1.
pub const NET_F_NO_SYSCALL: u32 = 1 << 4;
/// `dw_net_event.flags`: refused by network enforcement (a cgroup connect/sendmsg program
/// returned 0): the caller got `EPERM` and nothing left the socket.
pub const NET_F_DENIED: u32 = 1 << 5;
/// `dw_net_event.flags`: a bind that asked for port 0 (the local port is the kernel's choice: a
/// client's source port, not a listener's).
pub const NET_F_PORT_CHOSEN: u32 = 1 << 6;
/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// The file's overlay inode has an upper dentry (created in the container, or copied up).
pub const FILE_F_OVL_UPPER: u32 = 1 << 0;
/// The file's overlay inode has a lower (image) dentry; with [`FILE_F_OVL_UPPER`], an image file
/// copied up to the writable layer.
pub const FILE_F_OVL_LOWER: u32 = 1 << 1;
/// The file's vfsmount is the task's root mount.
pub const FILE_F_ON_ROOT_MNT: u32 = 1 << 2;
/// The path walk ran out of components or space; the path is a suffix.
pub const FILE_F_PATH_TRUNCATED: u32 = 1 << 3;
/// The path walk reached the top of the mount tree without meeting the task's root.
pub const FILE_F_PATH_OUTSIDE_ROOT: u32 = 1 << 4;
/// `file` and `path` come from the kernel's `struct file` (an opened fd).
pub const FILE_F_HAVE_FILE: u32 = 1 << 5;
/// `name1` was longer than `DW_PATH_MAX - 1`.
pub const FILE_F_NAME1_TRUNCATED: u32 = 1 << 6;
/// `name2` was longer than `DW_PATH_MAX - 1`.
pub const FILE_F_NAME2_TRUNCATED: u32 = 1 << 7;
/// The walk of `name1`'s directory did not reach the task's root (or its dirfd was not open).
pub const FILE_F_DIR1_INCOMPLETE: u32 = 1 << 8;
/// The walk of `name2`'s directory did not reach the task's root (or its dirfd was not open).
pub const FILE_F_DIR2_INCOMPLETE: u32 = 1 << 9;
/// The cgroup was found in `dw_policy`.
pub const FILE_F_IN_POLICY: u32 = 1 << 10;
/// The file is on overlayfs.
pub const FILE_F_OVERLAY: u32 = 1 << 11;

/// `DW_FILE_OP_MAX`: file ops are `1..=DW_FILE_OP_MAX` (`enum dw_file_op`; named by
/// `driftwatch_event::FileOp`, whose discriminants the `abi_layout` test checks against the BTF).
pub const DW_FILE_OP_MAX: u16 = 23;

/// `AT_FDCWD`, as `dw_file_event.dirfd1`/`dirfd2` hold it.
pub const AT_FDCWD: i32 = -100;

/// Overlay inode has an upper dentry (written in the container, or copied up).
pub const EXEC_F_OVL_UPPER: u32 = 1 << 0;
/// Executable is a memfd (`memfd:` file on shmem/hugetlbfs).
pub const EXEC_F_MEMFD: u32 = 1 << 1;
/// The executable's vfsmount is the task's root mount.
pub const EXEC_F_ON_ROOT_MNT: u32 = 1 << 2;
/// The dentry walk ran out of components or space; the path is a suffix.
pub const EXEC_F_PATH_TRUNCATED: u32 = 1 << 3;
/// The walk reached the top of the mount tree without meeting the task's root.
pub const EXEC_F_PATH_OUTSIDE_ROOT: u32 = 1 << 4;
/// argv was longer than [`DW_ARGV_MAX`].
pub const EXEC_F_ARGV_TRUNCATED: u32 = 1 << 5;
/// `bprm->filename` was longer than [`DW_FILENAME_MAX`].
pub const EXEC_F_FILENAME_TRUNCATED: u32 = 1 << 6;
/// The kernel sent SIGKILL (enforce policy).
pub const EXEC_F_KILLED: u32 = 1 << 7;
/// The cgroup was found in `dw_policy`.
pub const EXEC_F_IN_POLICY: u32 = 1 << 8;
/// A binfmt handler (shebang script, binfmt_misc) ran: `interp` is the interpreter's name as the
/// handler gave it, `filename` the script, and the file identity is the interpreter's.
pub const EXEC_F_SCRIPT: u32 = 1 << 9;
/// `bprm->interp` was longer than [`DW_INTERP_MAX`] - 1.
pub const EXEC_F_INTERP_TRUNCATED: u32 = 1 << 10;
/// The cwd walk ran out of components or space; the cwd is a suffix.
pub const EXEC_F_CWD_TRUNCATED: u32 = 1 << 11;
/// The cwd walk reached the top of the mount tree without meeting the task's root.
pub const EXEC_F_CWD_OUTSIDE_ROOT: u32 = 1 << 12;
/// An upper-layer file that `dw_allow` (the agent's copied-up-unchanged verdict, ctime still
/// matching) let run under enforcement.
pub const EXEC_F_ALLOWED: u32 = 1 << 13;
/// Killed because `dw_doom` named the task: the exec gate saw it open a drifted script.
pub const EXEC_F_DOOMED: u32 = 1 << 14;
/// How long a `dw_doom` entry counts, in ns of boot time.
pub const DW_DOOM_TTL_NS: u64 = 5_000_000_000;
/// `dw_exec_args`: arguments kept per execve.
pub const DW_EXEC_ARGS_MAX: usize = 8;
/// `dw_exec_args`: bytes per argument, NUL included.
pub const DW_EXEC_ARG_LEN: usize = 256;

/// `dw_map_event.how`: `mmap(2)` of a file with `PROT_EXEC`.
pub const MAP_HOW_MMAP: u16 = 1;
/// `dw_map_event.how`: `mprotect(2)` adding `PROT_EXEC` to a file mapping.
pub const MAP_HOW_MPROTECT: u16 = 2;
/// `dw_map_event.how`: the ELF interpreter (`PT_INTERP`) the kernel mapped at exec.
pub const MAP_HOW_INTERP: u16 = 3;

/// `dw_policy` value flag: a container cgroup the agent knows.
pub const POLICY_F_TRACKED: u32 = 1 << 0;
/// `dw_policy` value flag: kill drifted execs in this cgroup.
pub const POLICY_F_ENFORCE: u32 = 1 << 1;
/// `dw_policy` value flag: refuse this cgroup's connects and datagrams to peers outside
/// `dw_net_allow`, and every one by a process in `dw_net_drifted` (loopback excepted); only
/// with `dw_config.enforce`.
pub const POLICY_F_NET_ENFORCE: u32 = 1 << 2;

/// `DW_NET_ALLOW_FIXED_BITS`: the bits of a `dw_net_allow` key (protocol, family, port, cgroup
/// id) that always match whole, before the address's prefix.
pub const DW_NET_ALLOW_FIXED_BITS: u32 = 96;
/// `DW_NET_ALLOW_MAX_ENTRIES`: capacity of `dw_net_allow`.
pub const DW_NET_ALLOW_MAX_ENTRIES: u32 = 65536;
/// `DW_NET_ALLOW_VALUE`: what a `dw_net_allow` entry holds (reserved).
pub const DW_NET_ALLOW_VALUE: u32 = 1;
/// `DW_NET_DRIFTED_MAX_ENTRIES`: capacity of `dw_net_drifted`.
pub const DW_NET_DRIFTED_MAX_ENTRIES: u32 = 16384;

/// `dw_stats` index: exec records lost (ring buffer full).
pub const DW_STAT_RINGBUF_LOST_EXEC: u32 = 0;
/// `dw_stats` index: fork records lost.
pub const DW_STAT_RINGBUF_LOST_FORK: u32 = 1;
/// `dw_stats` index: exit records lost.
pub const DW_STAT_RINGBUF_LOST_EXIT: u32 = 2;
/// `dw_stats` index: SIGKILLs sent (drifted execs and suspicious executable mappings).
pub const DW_STAT_KILLS: u32 = 3;
/// `dw_stats` index: map records lost.
pub const DW_STAT_RINGBUF_LOST_MAP: u32 = 4;
/// `dw_stats` index: file records lost.
pub const DW_STAT_RINGBUF_LOST_FILE: u32 = 5;
/// `dw_stats` index: file syscalls whose arguments could not be kept until their exit.
pub const DW_STAT_FILE_ARGS_FULL: u32 = 6;
/// `dw_stats` index: network records lost.
pub const DW_STAT_RINGBUF_LOST_NET: u32 = 7;
/// `dw_stats` index: network syscalls whose arguments could not be kept until their exit.
pub const DW_STAT_NET_ARGS_FULL: u32 = 8;
/// `dw_stats` index: DNS records lost.
pub const DW_STAT_RINGBUF_LOST_DNS: u32 = 9;
/// Number of `dw_stats` entries.
pub const DW_STAT_MAX: u32 = 10;

/// `OVERLAYFS_SUPER_MAGIC`, for reading `exe_s_magic`.
pub const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;
/// `TMPFS_MAGIC` (shmem).
pub const TMPFS_MAGIC: u64 = 0x0102_1994;

/// The kernel's `FMODE_BACKING` bit for a kernel release string (`/proc/sys/kernel/osrelease`,
/// e.g. `6.18.0-1-amd64`): `1 << 25` from 6.5 (backing files appeared) to 6.13, `1 << 24`
/// since 6.14; 0 before 6.5 or for an unparsable release. `dw_config.fmode_backing`.
pub fn fmode_backing_for_release(release: &str) -> u32 {
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    let (Some(Some(major)), Some(Some(minor))) = (nums.next(), nums.next()) else {
        return 0;
    };
    match (major, minor) {
        (0..=5, _) | (6, 0..=4) => 0,
        (6, 5..=13) => 1 << 25,
        _ => 1 << 24,
    }
}

/// Bytes of a fixed-size C string up to (not including) the first NUL.
pub fn c_str_bytes(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|b| *b == 0) {
        Some(end) => bytes.get(..end).unwrap_or(bytes),
        None => bytes,
    }
}

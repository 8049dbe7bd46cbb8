//! Safe decoding of one ring-buffer record.
//!
//! Every read is bounds-checked against `hdr.len` and the input slice; every `*_len` is checked
//! against its array. Nothing here can panic: malformed input is a [`DecodeError`].

use core::fmt;
use core::mem::offset_of;

use crate::layout::{
    DnsEvent, EventHeader, ExecEvent, ExitEvent, FileEvent, FileId, ForkEvent, MapEvent, NetEvent,
    Task,
};
use crate::{
    c_str_bytes, DNS_EVENT_MIN_SIZE, DNS_EVENT_SIZE, DW_ABI_VERSION, DW_ARGV_MAX, DW_COMM_LEN,
    DW_CWD_MAX, DW_DNS_PAYLOAD_MAX, DW_EV_DNS, DW_EV_EXEC, DW_EV_EXIT, DW_EV_FILE, DW_EV_FORK,
    DW_EV_MAP, DW_EV_NET, DW_FILENAME_MAX, DW_FILE_OP_MAX, DW_INTERP_MAX, DW_NET_OP_MAX,
    DW_PATH_MAX, DW_PATH_MAX_COMPONENTS, EVENT_HEADER_SIZE, EXEC_EVENT_MIN_SIZE, EXEC_EVENT_SIZE,
    EXIT_EVENT_SIZE, FILE_EVENT_MIN_SIZE, FILE_EVENT_SIZE, FORK_EVENT_SIZE, MAP_EVENT_MIN_SIZE,
    MAP_EVENT_SIZE, MAP_HOW_INTERP, MAP_HOW_MMAP, NET_EVENT_SIZE,
};

/// Why a record was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer is shorter than the header, or than `hdr.len`.
    Truncated { need: usize, got: usize },
    /// `hdr.kind` is not a known `DW_EV_*`.
    UnknownKind(u16),
    /// `hdr.version` is not [`DW_ABI_VERSION`].
    BadVersion(u16),
    /// `hdr.len` is outside what the kind allows.
    BadLength {
        kind: u16,
        len: u32,
        min: usize,
        max: usize,
    },
    /// A `*_len` (or `path_components`) field exceeds its array.
    LengthExceedsArray {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// A variable-length field ends beyond `hdr.len`.
    FieldBeyondRecord {
        field: &'static str,
        end: usize,
        len: usize,
    },
    /// `dw_map_event.how` is not a known `DW_MAP_HOW_*`.
    UnknownMapHow(u16),
    /// `dw_file_event.op` is not a known `DW_FILE_OP_*`.
    UnknownFileOp(u16),
    /// `dw_net_event.op` is not a known `DW_NET_OP_*`.
    UnknownNetOp(u16),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { need, got } => {
                write!(f, "truncated record: need {need} bytes, got {got}")
            }
            Self::UnknownKind(k) => write!(f, "unknown event kind {k}"),
            Self::BadVersion(v) => {
                write!(
                    f,
                    "ABI version {v} does not match this build ({DW_ABI_VERSION})"
                )
            }
            Self::BadLength {
                kind,
                len,
                min,
                max,
            } => {
                write!(
                    f,
                    "record of kind {kind} has length {len}, expected {min}..={max}"
                )
            }
            Self::LengthExceedsArray { field, len, max } => {
                write!(f, "{field} length {len} exceeds its array ({max})")
            }
            Self::UnknownMapHow(h) => write!(f, "unknown map record `how` {h}"),
            Self::UnknownFileOp(op) => write!(f, "unknown file record op {op}"),
            Self::UnknownNetOp(op) => write!(f, "unknown network record op {op}"),
            Self::FieldBeyondRecord { field, end, len } => {
                write!(
                    f,
                    "{field} ends at byte {end}, beyond the record length {len}"
                )
            }
        }
    }
}

impl core::error::Error for DecodeError {}

/// One decoded record, borrowing the variable-length parts from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    Exec(ExecRecord<'a>),
    Fork(ForkRecord),
    Exit(ExitRecord),
    /// A suspicious file mapped executable (`DW_EV_MAP`).
    Map(MapRecord<'a>),
    /// A file-changing syscall of a container task (`DW_EV_FILE`).
    File(FileOpRecord<'a>),
    /// A network syscall of a container task (`DW_EV_NET`).
    Net(NetRecord),
    /// A DNS answer a container's socket received (`DW_EV_DNS`).
    Dns(DnsRecord<'a>),
}

impl Record<'_> {
    /// `hdr.ktime_ns` of the record.
    pub fn ktime_ns(&self) -> u64 {
        match self {
            Record::Exec(e) => e.ktime_ns,
            Record::Fork(f) => f.ktime_ns,
            Record::Exit(e) => e.ktime_ns,
            Record::Map(m) => m.ktime_ns,
            Record::File(f) => f.ktime_ns,
            Record::Net(n) => n.ktime_ns,
            Record::Dns(d) => d.ktime_ns,
        }
    }

    /// The task the record is about (the child for a fork); none for a DNS answer, which the
    /// kernel delivers to a socket outside any task's context (its cgroup is the socket's).
    pub fn task(&self) -> Option<&TaskRecord> {
        Some(match self {
            Record::Exec(e) => &e.task,
            Record::Fork(f) => &f.child,
            Record::Exit(e) => &e.task,
            Record::Map(m) => &m.task,
            Record::File(f) => &f.task,
            Record::Net(n) => &n.task,
            Record::Dns(_) => return None,
        })
    }
}

/// Decoded `struct dw_task`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskRecord {
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
    pub comm: [u8; DW_COMM_LEN],
    /// The process's start (thread-group leader's `start_boottime`, boot-time ns).
    pub start_ns: u64,
}

impl TaskRecord {
    /// `comm` up to the first NUL.
    pub fn comm_bytes(&self) -> &[u8] {
        c_str_bytes(&self.comm)
    }
}

/// Decoded `struct dw_file_id`: the identity of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileRecord {
    pub ino: u64,
    pub ctime_sec: u64,
    pub ctime_nsec: u32,
    pub mtime_sec: u64,
    pub mtime_nsec: u32,
    /// Kernel `dev_t` encoding: `major << 20 | minor`.
    pub dev: u32,
    /// 0 for a deleted file (and a memfd).
    pub nlink: u32,
    pub size: u64,
    pub s_magic: u64,
    pub mode: u32,
}

/// Decoded `struct dw_exec_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecRecord<'a> {
    pub ktime_ns: u64,
    pub task: TaskRecord,
    pub exe_ino: u64,
    pub exe_ctime_sec: u64,
    pub exe_ctime_nsec: u32,
    pub exe_mtime_sec: u64,
    pub exe_mtime_nsec: u32,
    pub exe_dev: u32,
    pub exe_nlink: u32,
    pub exe_size: u64,
    pub exe_s_magic: u64,
    pub exe_mode: u32,
    pub flags: u32,
    pub old_pid: u32,
    /// `bprm->filename` as given to exec (no NUL): the script for a script.
    pub filename: &'a [u8],
    /// `bprm->interp` (no NUL) when a binfmt handler replaced it ([`crate::EXEC_F_SCRIPT`]):
    /// the interpreter as named by the shebang line (`/bin/sh`) or binfmt_misc; empty otherwise.
    pub interp: &'a [u8],
    /// Resolved path of the executed file (the interpreter for a script), leaf component first,
    /// each component followed by one NUL.
    pub path_raw: &'a [u8],
    pub path_components: u16,
    /// argv as in process memory: arguments each followed by NUL (the last one possibly not,
    /// if truncated).
    pub argv: &'a [u8],
    /// The task's working directory, encoded as `path_raw`; empty for tasks in the host's mount
    /// namespace (the kernel does not walk it for them).
    pub cwd_raw: &'a [u8],
    pub cwd_components: u16,
}

/// Components of a leaf-first raw path, root first.
fn components_root_first(raw: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    raw.split(|b| *b == 0).rev().filter(|c| !c.is_empty())
}

impl<'a> ExecRecord<'a> {
    /// The path components from the root down to the executable's name.
    pub fn path_components_root_first(&self) -> impl DoubleEndedIterator<Item = &'a [u8]> + 'a {
        components_root_first(self.path_raw)
    }

    /// The resolved path as `/a/b/c` (lossy UTF-8 when displayed).
    pub fn path(&self) -> PathDisplay<'a> {
        PathDisplay { raw: self.path_raw }
    }

    /// The working directory's components, root first (none for host tasks).
    pub fn cwd_components_root_first(&self) -> impl DoubleEndedIterator<Item = &'a [u8]> + 'a {
        components_root_first(self.cwd_raw)
    }

    /// The working directory as `/a/b/c` (`/` also when it was not recorded: check
    /// `cwd_raw.is_empty()`).
    pub fn cwd(&self) -> PathDisplay<'a> {
        PathDisplay { raw: self.cwd_raw }
    }

    /// The identity of the executed file (the interpreter for a script).
    pub fn exe(&self) -> FileRecord {
        FileRecord {
            ino: self.exe_ino,
            ctime_sec: self.exe_ctime_sec,
            ctime_nsec: self.exe_ctime_nsec,
            mtime_sec: self.exe_mtime_sec,
            mtime_nsec: self.exe_mtime_nsec,
            dev: self.exe_dev,
            nlink: self.exe_nlink,
            size: self.exe_size,
            s_magic: self.exe_s_magic,
            mode: self.exe_mode,
        }
    }

    /// The arguments (`argv[0]`, `argv[1]`, …) as byte strings.
    pub fn args(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let raw: &'a [u8] = self.argv;
        let body = raw.strip_suffix(&[0]).unwrap_or(raw);
        // An empty argv has no arguments, not one empty argument.
        let skip_all = raw.is_empty();
        body.split(|b| *b == 0)
            .take(if skip_all { 0 } else { usize::MAX })
    }

    /// Whether `flag` (an `EXEC_F_*` constant) is set.
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag == flag
    }
}

/// Decoded `struct dw_map_event`: a task outside the host's mount namespace mapped a suspicious
/// file executable (written in the container, a memfd, on another mount than its root, or
/// deleted). Only suspicious files are reported; image files never are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRecord<'a> {
    pub ktime_ns: u64,
    pub task: TaskRecord,
    pub file: FileRecord,
    /// `EXEC_F_*`: `OVL_UPPER`, `MEMFD`, `ON_ROOT_MNT`, `PATH_*`, `IN_POLICY`, `KILLED`.
    pub flags: u32,
    /// `PROT_*` asked for (always includes `PROT_EXEC`).
    pub prot: u32,
    /// mmap's `MAP_*` flags; 0 for mprotect.
    pub map_flags: u32,
    /// `DW_MAP_HOW_*` (checked to be one of them; `driftwatch_event::MapHow::from_raw` names it).
    pub how: u16,
    /// mmap's address hint, or mprotect's start.
    pub addr: u64,
    pub len: u64,
    /// Offset in the file of `addr`.
    pub off: u64,
    /// Resolved path of the file, leaf component first, each component followed by one NUL.
    pub path_raw: &'a [u8],
    pub path_components: u16,
}

impl<'a> MapRecord<'a> {
    /// The path components from the root down to the file's name.
    pub fn path_components_root_first(&self) -> impl DoubleEndedIterator<Item = &'a [u8]> + 'a {
        components_root_first(self.path_raw)
    }

    /// The resolved path as `/a/b/c`.
    pub fn path(&self) -> PathDisplay<'a> {
        PathDisplay { raw: self.path_raw }
    }

    /// Whether `flag` (an `EXEC_F_*` constant) is set.
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag == flag
    }
}

/// Decoded `struct dw_file_event`: a file-changing syscall of a task outside the host's mount
/// namespace, at its exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOpRecord<'a> {
    pub ktime_ns: u64,
    pub task: TaskRecord,
    /// `DW_FILE_OP_*` (checked to be in `1..=DW_FILE_OP_MAX`; `driftwatch_event::FileOp::from_raw`
    /// names it).
    pub op: u16,
    /// The file's identity; meaningful only with [`crate::FILE_F_HAVE_FILE`].
    pub file: FileRecord,
    /// The syscall's return value.
    pub ret: i64,
    /// `FILE_F_*`.
    pub flags: u32,
    /// open flags (`O_*`), or the flags argument of unlinkat/renameat2/linkat/fchownat.
    pub op_flags: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// fchmod/fchown's fd; -1 otherwise.
    pub fd: i32,
    pub dirfd1: i32,
    pub dirfd2: i32,
    /// The file's path as the kernel resolved it, leaf first, each component followed by NUL.
    pub path_raw: &'a [u8],
    pub path_components: u16,
    /// The first path argument as given (no NUL).
    pub name1: &'a [u8],
    /// For a relative `name1`: its directory, encoded as `path_raw`.
    pub dir1_raw: &'a [u8],
    pub dir1_components: u16,
    /// The second path argument as given (no NUL).
    pub name2: &'a [u8],
    /// For a relative `name2`: its directory, encoded as `path_raw`.
    pub dir2_raw: &'a [u8],
    pub dir2_components: u16,
}

impl<'a> FileOpRecord<'a> {
    /// Whether `flag` (a `FILE_F_*` constant) is set.
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag == flag
    }

    /// The kernel-resolved path's components, root first.
    pub fn path_components_root_first(&self) -> impl DoubleEndedIterator<Item = &'a [u8]> + 'a {
        components_root_first(self.path_raw)
    }

    /// `dir1`'s components, root first.
    pub fn dir1_components_root_first(&self) -> impl DoubleEndedIterator<Item = &'a [u8]> + 'a {
        components_root_first(self.dir1_raw)
    }

    /// `dir2`'s components, root first.
    pub fn dir2_components_root_first(&self) -> impl DoubleEndedIterator<Item = &'a [u8]> + 'a {
        components_root_first(self.dir2_raw)
    }

    /// The kernel-resolved path as `/a/b/c`.
    pub fn path(&self) -> PathDisplay<'a> {
        PathDisplay { raw: self.path_raw }
    }
}

/// Displays a leaf-first raw path root-first as `/a/b/c`.
#[derive(Debug, Clone, Copy)]
pub struct PathDisplay<'a> {
    raw: &'a [u8],
}

impl fmt::Display for PathDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for comp in components_root_first(self.raw) {
            any = true;
            f.write_str("/")?;
            for chunk in comp.utf8_chunks() {
                f.write_str(chunk.valid())?;
                if !chunk.invalid().is_empty() {
                    f.write_str("\u{fffd}")?;
                }
            }
        }
        if !any {
            f.write_str("/")?;
        }
        Ok(())
    }
}

/// Decoded `struct dw_net_event`: a network syscall of a container task, at its exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetRecord {
    pub ktime_ns: u64,
    pub task: TaskRecord,
    /// `DW_NET_OP_*` (checked to be in `1..=DW_NET_OP_MAX`; `driftwatch_event::NetOp::from_raw`
    /// names it).
    pub op: u16,
    /// The syscall's return value.
    pub ret: i64,
    /// The socket (connect, bind, listen, sendto, sendmsg), the new fd (socket, accept, dup).
    pub fd: i32,
    /// accept: the listening fd; dup: the old fd; -1 otherwise.
    pub fd2: i32,
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
    /// IPv4 in the first 4 bytes (network order), IPv6 in all 16.
    pub laddr: [u8; 16],
    pub raddr: [u8; 16],
}

impl NetRecord {
    /// Whether `flag` (a `NET_F_*` constant) is set.
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag == flag
    }
}

/// Decoded `struct dw_dns_event`: a UDP datagram from port 53 that a socket of a tracked cgroup
/// received (a DNS answer), its payload cut to at most [`DW_DNS_PAYLOAD_MAX`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsRecord<'a> {
    pub ktime_ns: u64,
    /// The receiving socket's cgroup v2 id.
    pub cgroup_id: u64,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Host byte order.
    pub sport: u16,
    /// Host byte order.
    pub dport: u16,
    /// `DNS_F_*`.
    pub flags: u32,
    /// The UDP payload's length as the datagram says (more than `payload.len()` when cut).
    pub udp_len: u32,
    /// IPv4 in the first 4 bytes (network order), IPv6 in all 16.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// The DNS message (as much of it as was kept).
    pub payload: &'a [u8],
}

impl DnsRecord<'_> {
    /// Whether `flag` (a `DNS_F_*` constant) is set.
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag == flag
    }
}

/// Decoded `struct dw_fork_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForkRecord {
    pub ktime_ns: u64,
    /// The new thread-group leader; `ppid` is the parent's tgid.
    pub child: TaskRecord,
}

/// Decoded `struct dw_exit_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitRecord {
    pub ktime_ns: u64,
    pub task: TaskRecord,
    /// Wait-status encoding: `exit_status << 8 | terminating_signal`.
    pub exit_code: u32,
}

/// A bounds-checked view of `rec[base..]`; out-of-range reads yield zero (callers check the
/// length first, so that never happens for valid records, and it can never panic).
#[derive(Clone, Copy)]
struct View<'a> {
    rec: &'a [u8],
    base: usize,
}

impl<'a> View<'a> {
    fn at(self, off: usize) -> View<'a> {
        View {
            rec: self.rec,
            base: self.base.saturating_add(off),
        }
    }
    fn bytes<const N: usize>(self, off: usize) -> [u8; N] {
        let start = self.base.saturating_add(off);
        let mut out = [0u8; N];
        if let Some(src) = self.rec.get(start..start.saturating_add(N)) {
            out.copy_from_slice(src);
        }
        out
    }
    fn u16(self, off: usize) -> u16 {
        u16::from_ne_bytes(self.bytes(off))
    }
    fn u32(self, off: usize) -> u32 {
        u32::from_ne_bytes(self.bytes(off))
    }
    fn u64(self, off: usize) -> u64 {
        u64::from_ne_bytes(self.bytes(off))
    }
    fn slice(self, off: usize, len: usize) -> &'a [u8] {
        let start = self.base.saturating_add(off);
        self.rec
            .get(start..start.saturating_add(len))
            .unwrap_or_default()
    }
}

fn file(v: View<'_>) -> FileRecord {
    FileRecord {
        ino: v.u64(offset_of!(FileId, ino)),
        ctime_sec: v.u64(offset_of!(FileId, ctime_sec)),
        ctime_nsec: v.u32(offset_of!(FileId, ctime_nsec)),
        mtime_sec: v.u64(offset_of!(FileId, mtime_sec)),
        mtime_nsec: v.u32(offset_of!(FileId, mtime_nsec)),
        dev: v.u32(offset_of!(FileId, dev)),
        nlink: v.u32(offset_of!(FileId, nlink)),
        size: v.u64(offset_of!(FileId, size)),
        s_magic: v.u64(offset_of!(FileId, s_magic)),
        mode: v.u32(offset_of!(FileId, mode)),
    }
}

fn task(v: View<'_>) -> TaskRecord {
    TaskRecord {
        pid: v.u32(offset_of!(Task, pid)),
        tgid: v.u32(offset_of!(Task, tgid)),
        ppid: v.u32(offset_of!(Task, ppid)),
        uid: v.u32(offset_of!(Task, uid)),
        gid: v.u32(offset_of!(Task, gid)),
        euid: v.u32(offset_of!(Task, euid)),
        egid: v.u32(offset_of!(Task, egid)),
        mntns_ino: v.u32(offset_of!(Task, mntns_ino)),
        cgroup_id: v.u64(offset_of!(Task, cgroup_id)),
        pidns_ino: v.u32(offset_of!(Task, pidns_ino)),
        comm: v.bytes(offset_of!(Task, comm)),
        start_ns: v.u64(offset_of!(Task, start_ns)),
    }
}

/// Decodes one ring-buffer record. Bytes after `hdr.len` are ignored.
pub fn decode(buf: &[u8]) -> Result<Record<'_>, DecodeError> {
    if buf.len() < EVENT_HEADER_SIZE {
        return Err(DecodeError::Truncated {
            need: EVENT_HEADER_SIZE,
            got: buf.len(),
        });
    }
    let whole = View { rec: buf, base: 0 };
    let kind = whole.u16(offset_of!(EventHeader, kind));
    let version = whole.u16(offset_of!(EventHeader, version));
    let len = whole.u32(offset_of!(EventHeader, len));
    let ktime_ns = whole.u64(offset_of!(EventHeader, ktime_ns));
    if version != DW_ABI_VERSION {
        return Err(DecodeError::BadVersion(version));
    }
    let (min, max) = match kind {
        DW_EV_EXEC => (EXEC_EVENT_MIN_SIZE, EXEC_EVENT_SIZE),
        DW_EV_FORK => (FORK_EVENT_SIZE, FORK_EVENT_SIZE),
        DW_EV_EXIT => (EXIT_EVENT_SIZE, EXIT_EVENT_SIZE),
        DW_EV_MAP => (MAP_EVENT_MIN_SIZE, MAP_EVENT_SIZE),
        DW_EV_FILE => (FILE_EVENT_MIN_SIZE, FILE_EVENT_SIZE),
        DW_EV_NET => (NET_EVENT_SIZE, NET_EVENT_SIZE),
        DW_EV_DNS => (DNS_EVENT_MIN_SIZE, DNS_EVENT_SIZE),
        other => return Err(DecodeError::UnknownKind(other)),
    };
    let rec_len = usize::try_from(len).unwrap_or(usize::MAX);
    if rec_len < min || rec_len > max {
        return Err(DecodeError::BadLength {
            kind,
            len,
            min,
            max,
        });
    }
    let Some(rec) = buf.get(..rec_len) else {
        return Err(DecodeError::Truncated {
            need: rec_len,
            got: buf.len(),
        });
    };
    let v = View { rec, base: 0 };
    match kind {
        DW_EV_EXEC => decode_exec(v, ktime_ns).map(Record::Exec),
        DW_EV_MAP => decode_map(v, ktime_ns).map(Record::Map),
        DW_EV_FILE => decode_file(v, ktime_ns).map(Record::File),
        DW_EV_NET => decode_net(v, ktime_ns).map(Record::Net),
        DW_EV_DNS => decode_dns(v, ktime_ns).map(Record::Dns),
        DW_EV_FORK => Ok(Record::Fork(ForkRecord {
            ktime_ns,
            child: task(v.at(offset_of!(ForkEvent, child))),
        })),
        _ => Ok(Record::Exit(ExitRecord {
            ktime_ns,
            task: task(v.at(offset_of!(ExitEvent, task))),
            exit_code: v.u32(offset_of!(ExitEvent, exit_code)),
        })),
    }
}

fn checked_len(field: &'static str, len: u16, max: usize) -> Result<usize, DecodeError> {
    let len = usize::from(len);
    if len > max {
        return Err(DecodeError::LengthExceedsArray { field, len, max });
    }
    Ok(len)
}

/// Lays out packed variable-length fields from `start`: their offsets, each checked to end
/// within the record.
fn packed<const N: usize>(
    v: View<'_>,
    start: usize,
    fields: [(&'static str, usize); N],
) -> Result<[usize; N], DecodeError> {
    let mut at = [0usize; N];
    let mut end = start;
    for (slot, (field, len)) in at.iter_mut().zip(fields) {
        *slot = end;
        end = end.saturating_add(len);
        if end > v.rec.len() {
            return Err(DecodeError::FieldBeyondRecord {
                field,
                end,
                len: v.rec.len(),
            });
        }
    }
    Ok(at)
}

fn decode_exec(v: View<'_>, ktime_ns: u64) -> Result<ExecRecord<'_>, DecodeError> {
    let filename_len = checked_len(
        "filename",
        v.u16(offset_of!(ExecEvent, filename_len)),
        DW_FILENAME_MAX,
    )?;
    let interp_len = checked_len(
        "interp",
        v.u16(offset_of!(ExecEvent, interp_len)),
        DW_INTERP_MAX,
    )?;
    let path_len = checked_len("path", v.u16(offset_of!(ExecEvent, path_len)), DW_PATH_MAX)?;
    let argv_len = checked_len("argv", v.u16(offset_of!(ExecEvent, argv_len)), DW_ARGV_MAX)?;
    let cwd_len = checked_len("cwd", v.u16(offset_of!(ExecEvent, cwd_len)), DW_CWD_MAX)?;
    let path_components = v.u16(offset_of!(ExecEvent, path_components));
    checked_len("path_components", path_components, DW_PATH_MAX_COMPONENTS)?;
    let cwd_components = v.u16(offset_of!(ExecEvent, cwd_components));
    checked_len("cwd_components", cwd_components, DW_PATH_MAX_COMPONENTS)?;
    // The variable part is packed right after the fixed part, in the order of the arrays.
    let [filename_at, interp_at, path_at, argv_at, cwd_at] = packed(
        v,
        offset_of!(ExecEvent, filename),
        [
            ("filename", filename_len),
            ("interp", interp_len),
            ("path", path_len),
            ("argv", argv_len),
            ("cwd", cwd_len),
        ],
    )?;
    let exe = file(v.at(offset_of!(ExecEvent, exe)));
    Ok(ExecRecord {
        ktime_ns,
        task: task(v.at(offset_of!(ExecEvent, task))),
        exe_ino: exe.ino,
        exe_ctime_sec: exe.ctime_sec,
        exe_ctime_nsec: exe.ctime_nsec,
        exe_mtime_sec: exe.mtime_sec,
        exe_mtime_nsec: exe.mtime_nsec,
        exe_dev: exe.dev,
        exe_nlink: exe.nlink,
        exe_size: exe.size,
        exe_s_magic: exe.s_magic,
        exe_mode: exe.mode,
        flags: v.u32(offset_of!(ExecEvent, flags)),
        old_pid: v.u32(offset_of!(ExecEvent, old_pid)),
        filename: v.slice(filename_at, filename_len),
        interp: v.slice(interp_at, interp_len),
        path_raw: v.slice(path_at, path_len),
        path_components,
        argv: v.slice(argv_at, argv_len),
        cwd_raw: v.slice(cwd_at, cwd_len),
        cwd_components,
    })
}

fn decode_map(v: View<'_>, ktime_ns: u64) -> Result<MapRecord<'_>, DecodeError> {
    let path_len = checked_len("path", v.u16(offset_of!(MapEvent, path_len)), DW_PATH_MAX)?;
    let path_components = v.u16(offset_of!(MapEvent, path_components));
    checked_len("path_components", path_components, DW_PATH_MAX_COMPONENTS)?;
    let how = v.u16(offset_of!(MapEvent, how));
    if !(MAP_HOW_MMAP..=MAP_HOW_INTERP).contains(&how) {
        return Err(DecodeError::UnknownMapHow(how));
    }
    let [path_at] = packed(v, offset_of!(MapEvent, path), [("path", path_len)])?;
    Ok(MapRecord {
        ktime_ns,
        task: task(v.at(offset_of!(MapEvent, task))),
        file: file(v.at(offset_of!(MapEvent, file))),
        flags: v.u32(offset_of!(MapEvent, flags)),
        prot: v.u32(offset_of!(MapEvent, prot)),
        map_flags: v.u32(offset_of!(MapEvent, map_flags)),
        how,
        addr: v.u64(offset_of!(MapEvent, addr)),
        len: v.u64(offset_of!(MapEvent, len)),
        off: v.u64(offset_of!(MapEvent, off)),
        path_raw: v.slice(path_at, path_len),
        path_components,
    })
}

fn decode_file(v: View<'_>, ktime_ns: u64) -> Result<FileOpRecord<'_>, DecodeError> {
    let op = v.u16(offset_of!(FileEvent, op));
    if !(1..=DW_FILE_OP_MAX).contains(&op) {
        return Err(DecodeError::UnknownFileOp(op));
    }
    let len = |field: &'static str, off: usize| checked_len(field, v.u16(off), DW_PATH_MAX);
    let comps = |field: &'static str, off: usize| {
        let c = v.u16(off);
        checked_len(field, c, DW_PATH_MAX_COMPONENTS).map(|_| c)
    };
    let path_len = len("path", offset_of!(FileEvent, path_len))?;
    let name1_len = len("name1", offset_of!(FileEvent, name1_len))?;
    let dir1_len = len("dir1", offset_of!(FileEvent, dir1_len))?;
    let name2_len = len("name2", offset_of!(FileEvent, name2_len))?;
    let dir2_len = len("dir2", offset_of!(FileEvent, dir2_len))?;
    let path_components = comps("path_components", offset_of!(FileEvent, path_components))?;
    let dir1_components = comps("dir1_components", offset_of!(FileEvent, dir1_components))?;
    let dir2_components = comps("dir2_components", offset_of!(FileEvent, dir2_components))?;
    let [path_at, name1_at, dir1_at, name2_at, dir2_at] = packed(
        v,
        offset_of!(FileEvent, path),
        [
            ("path", path_len),
            ("name1", name1_len),
            ("dir1", dir1_len),
            ("name2", name2_len),
            ("dir2", dir2_len),
        ],
    )?;
    let i32_at = |off: usize| i32::from_ne_bytes(v.bytes(off));
    Ok(FileOpRecord {
        ktime_ns,
        task: task(v.at(offset_of!(FileEvent, task))),
        op,
        file: file(v.at(offset_of!(FileEvent, file))),
        ret: i64::from_ne_bytes(v.bytes(offset_of!(FileEvent, ret))),
        flags: v.u32(offset_of!(FileEvent, flags)),
        op_flags: v.u32(offset_of!(FileEvent, op_flags)),
        mode: v.u32(offset_of!(FileEvent, mode)),
        uid: v.u32(offset_of!(FileEvent, uid)),
        gid: v.u32(offset_of!(FileEvent, gid)),
        fd: i32_at(offset_of!(FileEvent, fd)),
        dirfd1: i32_at(offset_of!(FileEvent, dirfd1)),
        dirfd2: i32_at(offset_of!(FileEvent, dirfd2)),
        path_raw: v.slice(path_at, path_len),
        path_components,
        name1: v.slice(name1_at, name1_len),
        dir1_raw: v.slice(dir1_at, dir1_len),
        dir1_components,
        name2: v.slice(name2_at, name2_len),
        dir2_raw: v.slice(dir2_at, dir2_len),
        dir2_components,
    })
}

fn decode_net(v: View<'_>, ktime_ns: u64) -> Result<NetRecord, DecodeError> {
    let op = v.u16(offset_of!(NetEvent, op));
    if !(1..=DW_NET_OP_MAX).contains(&op) {
        return Err(DecodeError::UnknownNetOp(op));
    }
    let i32_at = |off: usize| i32::from_ne_bytes(v.bytes(off));
    Ok(NetRecord {
        ktime_ns,
        task: task(v.at(offset_of!(NetEvent, task))),
        op,
        ret: i64::from_ne_bytes(v.bytes(offset_of!(NetEvent, ret))),
        fd: i32_at(offset_of!(NetEvent, fd)),
        fd2: i32_at(offset_of!(NetEvent, fd2)),
        family: v.u16(offset_of!(NetEvent, family)),
        sock_type: v.u16(offset_of!(NetEvent, sock_type)),
        protocol: v.u16(offset_of!(NetEvent, protocol)),
        flags: v.u32(offset_of!(NetEvent, flags)),
        arg: v.u32(offset_of!(NetEvent, arg)),
        lport: v.u16(offset_of!(NetEvent, lport)),
        rport: v.u16(offset_of!(NetEvent, rport)),
        laddr: v.bytes(offset_of!(NetEvent, laddr)),
        raddr: v.bytes(offset_of!(NetEvent, raddr)),
    })
}

fn decode_dns(v: View<'_>, ktime_ns: u64) -> Result<DnsRecord<'_>, DecodeError> {
    let payload_len = checked_len(
        "payload",
        v.u16(offset_of!(DnsEvent, payload_len)),
        DW_DNS_PAYLOAD_MAX,
    )?;
    let [payload_at] = packed(v, offset_of!(DnsEvent, payload), [("payload", payload_len)])?;
    Ok(DnsRecord {
        ktime_ns,
        cgroup_id: v.u64(offset_of!(DnsEvent, cgroup_id)),
        family: v.u16(offset_of!(DnsEvent, family)),
        sport: v.u16(offset_of!(DnsEvent, sport)),
        dport: v.u16(offset_of!(DnsEvent, dport)),
        flags: v.u32(offset_of!(DnsEvent, flags)),
        udp_len: v.u32(offset_of!(DnsEvent, udp_len)),
        saddr: v.bytes(offset_of!(DnsEvent, saddr)),
        daddr: v.bytes(offset_of!(DnsEvent, daddr)),
        payload: v.slice(payload_at, payload_len),
    })
}

#[cfg(test)]
mod tests;

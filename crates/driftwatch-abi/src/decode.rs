//! Safe decoding of one ring-buffer record.
//!
//! Every read is bounds-checked against `hdr.len` and the input slice; every `*_len` is checked
//! against its array. Nothing here can panic: malformed input is a [`DecodeError`].

use core::fmt;
use core::mem::offset_of;

use crate::layout::{EventHeader, ExecEvent, ExitEvent, ForkEvent, Task};
use crate::{
    c_str_bytes, DW_ABI_VERSION, DW_ARGV_MAX, DW_COMM_LEN, DW_EV_EXEC, DW_EV_EXIT, DW_EV_FORK,
    DW_FILENAME_MAX, DW_PATH_MAX, DW_PATH_MAX_COMPONENTS, EVENT_HEADER_SIZE, EXEC_EVENT_MIN_SIZE,
    EXEC_EVENT_SIZE, EXIT_EVENT_SIZE, FORK_EVENT_SIZE,
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
}

impl Record<'_> {
    /// `hdr.ktime_ns` of the record.
    pub fn ktime_ns(&self) -> u64 {
        match self {
            Record::Exec(e) => e.ktime_ns,
            Record::Fork(f) => f.ktime_ns,
            Record::Exit(e) => e.ktime_ns,
        }
    }

    /// The task the record is about (the child for a fork).
    pub fn task(&self) -> &TaskRecord {
        match self {
            Record::Exec(e) => &e.task,
            Record::Fork(f) => &f.child,
            Record::Exit(e) => &e.task,
        }
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
}

impl TaskRecord {
    /// `comm` up to the first NUL.
    pub fn comm_bytes(&self) -> &[u8] {
        c_str_bytes(&self.comm)
    }
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
    /// `bprm->filename` as given to exec (no NUL).
    pub filename: &'a [u8],
    /// Resolved path, leaf component first, each component followed by one NUL.
    pub path_raw: &'a [u8],
    pub path_components: u16,
    /// argv as in process memory: arguments each followed by NUL (the last one possibly not,
    /// if truncated).
    pub argv: &'a [u8],
}

impl<'a> ExecRecord<'a> {
    /// The path components from the root down to the executable's name.
    pub fn path_components_root_first(&self) -> impl DoubleEndedIterator<Item = &'a [u8]> + 'a {
        let raw: &'a [u8] = self.path_raw;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        raw.split(|b| *b == 0).rev().filter(|c| !c.is_empty())
    }

    /// The resolved path as `/a/b/c` (lossy UTF-8 when displayed).
    pub fn path(&self) -> PathDisplay<'a> {
        PathDisplay { raw: self.path_raw }
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

/// Displays a leaf-first raw path root-first as `/a/b/c`.
#[derive(Debug, Clone, Copy)]
pub struct PathDisplay<'a> {
    raw: &'a [u8],
}

impl fmt::Display for PathDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rec = ExecRecord {
            path_raw: self.raw,
            ..EMPTY_EXEC
        };
        let mut any = false;
        for comp in rec.path_components_root_first() {
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

const EMPTY_EXEC: ExecRecord<'static> = ExecRecord {
    ktime_ns: 0,
    task: TaskRecord {
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
        comm: [0; DW_COMM_LEN],
    },
    exe_ino: 0,
    exe_ctime_sec: 0,
    exe_ctime_nsec: 0,
    exe_mtime_sec: 0,
    exe_mtime_nsec: 0,
    exe_dev: 0,
    exe_nlink: 0,
    exe_size: 0,
    exe_s_magic: 0,
    exe_mode: 0,
    flags: 0,
    old_pid: 0,
    filename: &[],
    path_raw: &[],
    path_components: 0,
    argv: &[],
};

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

fn decode_exec(v: View<'_>, ktime_ns: u64) -> Result<ExecRecord<'_>, DecodeError> {
    let filename_len = checked_len(
        "filename",
        v.u16(offset_of!(ExecEvent, filename_len)),
        DW_FILENAME_MAX,
    )?;
    let path_len = checked_len("path", v.u16(offset_of!(ExecEvent, path_len)), DW_PATH_MAX)?;
    let argv_len = checked_len("argv", v.u16(offset_of!(ExecEvent, argv_len)), DW_ARGV_MAX)?;
    let path_components = v.u16(offset_of!(ExecEvent, path_components));
    checked_len("path_components", path_components, DW_PATH_MAX_COMPONENTS)?;
    // The variable part is packed right after the fixed part: filename, path, argv.
    let filename_at = offset_of!(ExecEvent, filename);
    let path_at = filename_at + filename_len;
    let argv_at = path_at + path_len;
    for (field, end) in [
        ("filename", path_at),
        ("path", argv_at),
        ("argv", argv_at + argv_len),
    ] {
        if end > v.rec.len() {
            return Err(DecodeError::FieldBeyondRecord {
                field,
                end,
                len: v.rec.len(),
            });
        }
    }
    Ok(ExecRecord {
        ktime_ns,
        task: task(v.at(offset_of!(ExecEvent, task))),
        exe_ino: v.u64(offset_of!(ExecEvent, exe_ino)),
        exe_ctime_sec: v.u64(offset_of!(ExecEvent, exe_ctime_sec)),
        exe_ctime_nsec: v.u32(offset_of!(ExecEvent, exe_ctime_nsec)),
        exe_mtime_sec: v.u64(offset_of!(ExecEvent, exe_mtime_sec)),
        exe_mtime_nsec: v.u32(offset_of!(ExecEvent, exe_mtime_nsec)),
        exe_dev: v.u32(offset_of!(ExecEvent, exe_dev)),
        exe_nlink: v.u32(offset_of!(ExecEvent, exe_nlink)),
        exe_size: v.u64(offset_of!(ExecEvent, exe_size)),
        exe_s_magic: v.u64(offset_of!(ExecEvent, exe_s_magic)),
        exe_mode: v.u32(offset_of!(ExecEvent, exe_mode)),
        flags: v.u32(offset_of!(ExecEvent, flags)),
        old_pid: v.u32(offset_of!(ExecEvent, old_pid)),
        filename: v.slice(filename_at, filename_len),
        path_raw: v.slice(path_at, path_len),
        path_components,
        argv: v.slice(argv_at, argv_len),
    })
}

#[cfg(test)]
mod tests;

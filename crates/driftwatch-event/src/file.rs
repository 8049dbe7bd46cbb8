//! File-changing syscalls of container processes (issue 5: live file drift).

use crate::process::{ExeFile, TaskInfo};

/// The syscall of a [`FileEvent`], named as Falco names the event (`evt.type`).
///
/// The one definition of the file syscalls: the discriminants are `enum dw_file_op` of
/// `driftwatch-bpf/bpf/include/abi.h` (the `abi_layout` test compares them with the compiled
/// object's BTF), and the rule engine's event types are built from [`FileOp::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u16)]
pub enum FileOp {
    #[default]
    Open = 1,
    Openat = 2,
    Openat2 = 3,
    Creat = 4,
    Unlink = 5,
    Unlinkat = 6,
    Rename = 7,
    Renameat = 8,
    Renameat2 = 9,
    Link = 10,
    Linkat = 11,
    Symlink = 12,
    Symlinkat = 13,
    Chmod = 14,
    Fchmod = 15,
    Fchmodat = 16,
    Chown = 17,
    Fchown = 18,
    Lchown = 19,
    Fchownat = 20,
    Mkdir = 21,
    Mkdirat = 22,
    Rmdir = 23,
}

impl FileOp {
    /// Every op, in `DW_FILE_OP_*` order (value = index + 1).
    pub const ALL: [FileOp; 23] = [
        FileOp::Open,
        FileOp::Openat,
        FileOp::Openat2,
        FileOp::Creat,
        FileOp::Unlink,
        FileOp::Unlinkat,
        FileOp::Rename,
        FileOp::Renameat,
        FileOp::Renameat2,
        FileOp::Link,
        FileOp::Linkat,
        FileOp::Symlink,
        FileOp::Symlinkat,
        FileOp::Chmod,
        FileOp::Fchmod,
        FileOp::Fchmodat,
        FileOp::Chown,
        FileOp::Fchown,
        FileOp::Lchown,
        FileOp::Fchownat,
        FileOp::Mkdir,
        FileOp::Mkdirat,
        FileOp::Rmdir,
    ];

    /// From a `DW_FILE_OP_*` value.
    pub fn from_raw(op: u16) -> Option<FileOp> {
        FileOp::ALL.get(usize::from(op).checked_sub(1)?).copied()
    }

    /// The `DW_FILE_OP_*` value.
    pub fn raw(self) -> u16 {
        self as u16
    }

    /// Falco's `evt.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileOp::Open => "open",
            FileOp::Openat => "openat",
            FileOp::Openat2 => "openat2",
            FileOp::Creat => "creat",
            FileOp::Unlink => "unlink",
            FileOp::Unlinkat => "unlinkat",
            FileOp::Rename => "rename",
            FileOp::Renameat => "renameat",
            FileOp::Renameat2 => "renameat2",
            FileOp::Link => "link",
            FileOp::Linkat => "linkat",
            FileOp::Symlink => "symlink",
            FileOp::Symlinkat => "symlinkat",
            FileOp::Chmod => "chmod",
            FileOp::Fchmod => "fchmod",
            FileOp::Fchmodat => "fchmodat",
            FileOp::Chown => "chown",
            FileOp::Fchown => "fchown",
            FileOp::Lchown => "lchown",
            FileOp::Fchownat => "fchownat",
            FileOp::Mkdir => "mkdir",
            FileOp::Mkdirat => "mkdirat",
            FileOp::Rmdir => "rmdir",
        }
    }

    /// open, openat, openat2, creat.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            FileOp::Open | FileOp::Openat | FileOp::Openat2 | FileOp::Creat
        )
    }
}

/// Where the file an event is about lives, as the kernel saw it at the syscall's exit (known
/// only when the kernel had the file: a successful open, fchmod, fchown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileLayer {
    /// Only in the container's writable (upper) layer: created in the container.
    Upper,
    /// An image (lower-layer) file copied up to the writable layer (by this call or earlier).
    CopiedUp,
    /// An image file not copied up (on overlayfs, no upper dentry).
    Lower,
    /// On a mount other than the container's root filesystem (volume, tmpfs, bind mount).
    WritableMount,
    /// On the root mount but not overlayfs.
    Other,
}

impl FileLayer {
    /// The `fd.layer` value.
    pub fn as_str(self) -> &'static str {
        match self {
            FileLayer::Upper => "upper",
            FileLayer::CopiedUp => "copied-up",
            FileLayer::Lower => "lower",
            FileLayer::WritableMount => "writable-mount",
            FileLayer::Other => "other",
        }
    }
}

/// A file-changing syscall of a task outside the host's mount namespace, at its exit.
///
/// Paths are inside the task's root (the container's view), absolute and lexically normalised
/// when they could be resolved, bytes (not necessarily UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileEvent {
    pub time_ns: u64,
    pub task: TaskInfo,
    pub op: FileOp,
    /// The syscall's return value (an fd, 0, or `-errno`).
    pub ret: i64,
    /// The file the call opened or changed (`fd.name`): the opened file; unlink/rmdir/mkdir/
    /// chmod/chown's path; rename/link's old path; symlink's link path.
    pub path: Vec<u8>,
    /// The second path: rename/link's new path, symlink's link path.
    pub path2: Option<Vec<u8>>,
    /// symlink's target, as given (never resolved).
    pub target: Option<Vec<u8>>,
    /// Whether `path` (and `path2`) are complete absolute paths; false when a name was
    /// truncated, or a relative name's directory could not be walked to the root.
    pub resolved: bool,
    /// open flags (`O_*`, Linux values), or the flags argument of unlinkat/renameat2/linkat/
    /// fchownat.
    pub flags: u32,
    /// The mode argument (open/creat/mkdir/chmod), if the call has one.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The fd: an open's result, or fchmod/fchown's argument.
    pub fd: Option<i64>,
    /// The file's identity, when the kernel had it.
    pub file: Option<ExeFile>,
    pub layer: Option<FileLayer>,
}

impl FileEvent {
    /// Falco's `evt.is_open_write`: an open for writing (`O_WRONLY` or `O_RDWR`).
    pub fn is_open_write(&self) -> bool {
        self.op.is_open() && self.flags & 3 != 0
    }

    /// Falco's `evt.is_open_read`: an open for reading (`O_RDONLY` or `O_RDWR`).
    pub fn is_open_read(&self) -> bool {
        self.op.is_open() && (self.flags & 3 == 0 || self.flags & 3 == 2)
    }
}

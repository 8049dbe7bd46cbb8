//! The agent's events as a rule-engine [`FieldSource`]: every field of `driftwatch_rules::FIELDS`
//! read from the event, the process table, the container and the drift arrival, without
//! allocating (computed strings go to the engine's scratch buffer).

use crate::detect::Action;
use crate::enrich::{AlertCtx, Arrival};
use crate::proctable::ProcessTable;
use driftwatch_event::{FileEvent, FileLayer, FileOp};
use driftwatch_rules::{EventType, FieldArg, FieldId, FieldSource, Scratch, Value, FIELDS};

/// The agent's meaning of each rule-engine field, indexed by [`FieldId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum F {
    EvtType,
    EvtDir,
    EvtTime,
    EvtNum,
    EvtHostname,
    ProcName,
    ProcPname,
    ProcAname,
    ProcExe,
    ProcExepath,
    ProcCmdline,
    ProcArgs,
    ProcPcmdline,
    ProcCwd,
    ProcPid,
    ProcPpid,
    ProcApid,
    Tid,
    IsUpper,
    IsLower,
    IsMemfd,
    IsWritable,
    ExeIno,
    ExeCtime,
    ExeMtime,
    ExeOrigin,
    UserUid,
    UserName,
    GroupGid,
    ContainerId,
    ContainerName,
    ContainerImage,
    ContainerRepository,
    ContainerTag,
    ContainerDigest,
    K8sNs,
    K8sPod,
    K8sPodUid,
    DriftVia,
    DriftPath,
    DriftOrigin,
    DriftCopyOf,
    Action,
    RawRes,
    Res,
    IsOpenWrite,
    IsOpenRead,
    ArgFlags,
    ArgMode,
    /// `evt.arg.<name>` of a path argument: which ops carry it.
    ArgPath(PathArg),
    ArgTarget,
    ArgUid,
    ArgGid,
    ArgFd,
    FdName,
    FdDirectory,
    FdFilename,
    FdTypechar,
    FdNum,
    FdUpper,
    FdLower,
    FdLayer,
    /// A field the agent cannot provide for its events (no value).
    None,
}

/// Falco's path argument names (they differ per syscall).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathArg {
    Name,
    Path,
    Pathname,
    Filename,
    Oldpath,
    Newpath,
    Linkpath,
}

/// The event's value for a path argument, when its syscall has an argument of that name.
fn path_arg(f: &FileEvent, which: PathArg) -> Option<&[u8]> {
    use FileOp as O;
    let first = Some(f.path.as_slice());
    match (which, f.op) {
        (PathArg::Name, O::Open | O::Openat | O::Openat2 | O::Creat | O::Unlinkat) => first,
        (PathArg::Path, O::Unlink | O::Mkdir | O::Mkdirat | O::Rmdir | O::Chown | O::Lchown) => {
            first
        }
        (PathArg::Pathname, O::Fchownat) => first,
        (PathArg::Filename, O::Chmod | O::Fchmodat) => first,
        (PathArg::Oldpath, O::Rename | O::Renameat | O::Renameat2 | O::Link | O::Linkat) => first,
        (PathArg::Newpath, O::Rename | O::Renameat | O::Renameat2 | O::Link | O::Linkat) => {
            f.path2.as_deref()
        }
        (PathArg::Linkpath, O::Symlink | O::Symlinkat) => first,
        _ => None,
    }
}

/// Falco's rendering of open flags (`O_WRONLY|O_CREAT|O_TRUNC`).
fn open_flags(flags: u32, out: &mut Vec<u8>) {
    const NAMES: &[(u32, &str)] = &[
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o400, "O_NOCTTY"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"),
        (0o10000, "O_DSYNC"),
        (0o40000, "O_DIRECT"),
        (0o100000, "O_LARGEFILE"),
        (0o200000, "O_DIRECTORY"),
        (0o400000, "O_NOFOLLOW"),
        (0o1000000, "O_NOATIME"),
        (0o2000000, "O_CLOEXEC"),
        (0o10000000, "O_PATH"),
    ];
    out.extend_from_slice(match flags & 3 {
        0 => b"O_RDONLY".as_slice(),
        1 => b"O_WRONLY",
        _ => b"O_RDWR",
    });
    // O_TMPFILE includes O_DIRECTORY; O_SYNC includes O_DSYNC.
    let tmpfile = 0o20200000;
    let sync = 0o4010000;
    for &(bit, name) in NAMES {
        if flags & bit == 0
            || (bit == 0o200000 && flags & tmpfile == tmpfile)
            || (bit == 0o10000 && flags & sync == sync)
        {
            continue;
        }
        out.push(b'|');
        out.extend_from_slice(name.as_bytes());
    }
    if flags & tmpfile == tmpfile {
        out.extend_from_slice(b"|O_TMPFILE");
    }
    if flags & sync == sync {
        out.extend_from_slice(b"|O_SYNC");
    }
}

/// The flags argument of the `*at` calls that have one.
fn at_flags(op: FileOp, flags: u32, out: &mut Vec<u8>) {
    let names: &[(u32, &str)] = match op {
        FileOp::Unlinkat => &[(0x200, "AT_REMOVEDIR")],
        FileOp::Renameat2 => &[
            (1, "RENAME_NOREPLACE"),
            (2, "RENAME_EXCHANGE"),
            (4, "RENAME_WHITEOUT"),
        ],
        FileOp::Linkat => &[(0x400, "AT_SYMLINK_FOLLOW"), (0x1000, "AT_EMPTY_PATH")],
        FileOp::Fchownat => &[(0x100, "AT_SYMLINK_NOFOLLOW"), (0x1000, "AT_EMPTY_PATH")],
        _ => &[],
    };
    for &(bit, name) in names {
        if flags & bit != 0 {
            if !out.is_empty() {
                out.push(b'|');
            }
            out.extend_from_slice(name.as_bytes());
        }
    }
}

/// Falco's rendering of a mode argument (`S_IRUSR|S_IWUSR|…`).
fn mode_names(mode: u32, out: &mut Vec<u8>) {
    const NAMES: &[(u32, &str)] = &[
        (0o1, "S_IXOTH"),
        (0o2, "S_IWOTH"),
        (0o4, "S_IROTH"),
        (0o10, "S_IXGRP"),
        (0o20, "S_IWGRP"),
        (0o40, "S_IRGRP"),
        (0o100, "S_IXUSR"),
        (0o200, "S_IWUSR"),
        (0o400, "S_IRUSR"),
        (0o1000, "S_ISVTX"),
        (0o2000, "S_ISGID"),
        (0o4000, "S_ISUID"),
    ];
    for &(bit, name) in NAMES {
        if mode & bit != 0 {
            if !out.is_empty() {
                out.push(b'|');
            }
            out.extend_from_slice(name.as_bytes());
        }
    }
}

/// The error name of a negative return value (Falco's `evt.res`).
fn errno_name(ret: i64) -> &'static str {
    match -ret {
        1 => "EPERM",
        2 => "ENOENT",
        5 => "EIO",
        9 => "EBADF",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        18 => "EXDEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        26 => "ETXTBSY",
        27 => "EFBIG",
        28 => "ENOSPC",
        30 => "EROFS",
        31 => "EMLINK",
        36 => "ENAMETOOLONG",
        39 => "ENOTEMPTY",
        40 => "ELOOP",
        95 => "EOPNOTSUPP",
        122 => "EDQUOT",
        _ => "E",
    }
}

fn split_dir(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(0) => (b"/", path.get(1..).unwrap_or_default()),
        Some(i) => (
            path.get(..i).unwrap_or_default(),
            path.get(i + 1..).unwrap_or_default(),
        ),
        None => (b"", path),
    }
}

/// Field ids resolved once at start.
#[derive(Debug, Clone)]
pub struct FieldMap(Vec<F>);

impl Default for FieldMap {
    fn default() -> Self {
        FieldMap(
            FIELDS
                .iter()
                .map(|d| match d.name {
                    "evt.type" => F::EvtType,
                    "evt.dir" => F::EvtDir,
                    "evt.time" | "evt.rawtime" => F::EvtTime,
                    "evt.num" => F::EvtNum,
                    "evt.hostname" => F::EvtHostname,
                    "proc.name" => F::ProcName,
                    "proc.pname" => F::ProcPname,
                    "proc.aname" => F::ProcAname,
                    "proc.exe" => F::ProcExe,
                    "proc.exepath" => F::ProcExepath,
                    "proc.cmdline" => F::ProcCmdline,
                    "proc.args" => F::ProcArgs,
                    "proc.pcmdline" => F::ProcPcmdline,
                    "proc.cwd" => F::ProcCwd,
                    "proc.pid" => F::ProcPid,
                    "proc.ppid" => F::ProcPpid,
                    "proc.apid" => F::ProcApid,
                    "proc.tid" | "thread.tid" => F::Tid,
                    "proc.is_exe_upper_layer" => F::IsUpper,
                    "proc.is_exe_lower_layer" => F::IsLower,
                    "proc.is_exe_from_memfd" => F::IsMemfd,
                    "proc.is_exe_writable" => F::IsWritable,
                    "proc.exe_ino" => F::ExeIno,
                    "proc.exe_ino.ctime" => F::ExeCtime,
                    "proc.exe_ino.mtime" => F::ExeMtime,
                    "proc.exe_origin" => F::ExeOrigin,
                    "user.uid" => F::UserUid,
                    "user.name" => F::UserName,
                    "group.gid" => F::GroupGid,
                    "container.id" => F::ContainerId,
                    "container.name" => F::ContainerName,
                    "container.image" => F::ContainerImage,
                    "container.image.repository" => F::ContainerRepository,
                    "container.image.tag" => F::ContainerTag,
                    "container.image.digest" => F::ContainerDigest,
                    "k8s.ns.name" => F::K8sNs,
                    "k8s.pod.name" => F::K8sPod,
                    "k8s.pod.uid" => F::K8sPodUid,
                    "drift.via" => F::DriftVia,
                    "drift.path" => F::DriftPath,
                    "drift.origin" => F::DriftOrigin,
                    "drift.image_copy_of" => F::DriftCopyOf,
                    "response.action" => F::Action,
                    "evt.rawres" => F::RawRes,
                    "evt.res" => F::Res,
                    "evt.is_open_write" => F::IsOpenWrite,
                    "evt.is_open_read" => F::IsOpenRead,
                    "evt.arg.flags" => F::ArgFlags,
                    "evt.arg.mode" => F::ArgMode,
                    "evt.arg.name" => F::ArgPath(PathArg::Name),
                    "evt.arg.path" => F::ArgPath(PathArg::Path),
                    "evt.arg.pathname" => F::ArgPath(PathArg::Pathname),
                    "evt.arg.filename" => F::ArgPath(PathArg::Filename),
                    "evt.arg.oldpath" => F::ArgPath(PathArg::Oldpath),
                    "evt.arg.newpath" => F::ArgPath(PathArg::Newpath),
                    "evt.arg.linkpath" => F::ArgPath(PathArg::Linkpath),
                    "evt.arg.target" => F::ArgTarget,
                    "evt.arg.uid" => F::ArgUid,
                    "evt.arg.gid" => F::ArgGid,
                    "evt.arg.fd" => F::ArgFd,
                    "fd.name" => F::FdName,
                    "fd.directory" => F::FdDirectory,
                    "fd.filename" => F::FdFilename,
                    "fd.typechar" => F::FdTypechar,
                    "fd.num" => F::FdNum,
                    "fd.is_upper_layer" => F::FdUpper,
                    "fd.is_lower_layer" => F::FdLower,
                    "fd.layer" => F::FdLayer,
                    _ => F::None,
                })
                .collect(),
        )
    }
}

/// One event as the rules see it.
#[derive(Debug)]
pub struct EventSource<'a> {
    pub fields: &'a FieldMap,
    pub evt_type: EventType,
    pub num: u64,
    pub ctx: &'a AlertCtx,
    pub arrival: Option<&'a Arrival>,
    pub action: Action,
    pub cwd: Option<&'a [u8]>,
    /// The file event, for file syscalls.
    pub file: Option<&'a FileEvent>,
    pub table: &'a ProcessTable,
    pub hostname: &'a str,
}

fn s(v: &str) -> Option<Value<'_>> {
    (!v.is_empty()).then_some(Value::Str(v.as_bytes()))
}

fn cmdline<'s>(comm: &str, args: &[String], out: &'s mut Scratch) -> Value<'s> {
    out.bytes.extend_from_slice(comm.as_bytes());
    for a in args.iter().skip(1) {
        out.bytes.push(b' ');
        out.bytes.extend_from_slice(a.as_bytes());
    }
    Value::Str(&out.bytes)
}

impl FieldSource for EventSource<'_> {
    fn event_type(&self) -> EventType {
        self.evt_type
    }

    fn get<'a>(
        &'a self,
        field: FieldId,
        arg: &FieldArg,
        scratch: &'a mut Scratch,
    ) -> Option<Value<'a>> {
        let c = self.ctx.container.as_deref();
        let p = &self.ctx.process;
        let exe = self.ctx.exe.as_ref();
        let f = self
            .fields
            .0
            .get(usize::from(field.0))
            .copied()
            .unwrap_or(F::None);
        match f {
            F::EvtType => Some(Value::Str(self.ctx.evt_type.as_bytes())),
            F::EvtDir => Some(Value::Str(b"<")),
            F::EvtTime => Some(Value::U64(self.ctx.time_ns)),
            F::EvtNum => Some(Value::U64(self.num)),
            F::EvtHostname => s(self.hostname),
            F::ProcName => s(&self.ctx.task.comm),
            F::ProcPname => self.ctx.parent.as_ref().and_then(|p| s(&p.comm)),
            F::ProcAname | F::ProcApid => {
                let tgid = self.ctx.task.tgid;
                let value = |e: &crate::proctable::ProcEntry| e.comm.clone();
                match arg {
                    FieldArg::Index(n) => {
                        let e = self.table.ancestor(tgid, usize::try_from(*n).ok()?)?;
                        if f == F::ProcApid {
                            Some(Value::U64(u64::from(e.tgid)))
                        } else {
                            scratch.bytes.extend_from_slice(value(e).as_bytes());
                            Some(Value::Str(&scratch.bytes))
                        }
                    }
                    FieldArg::None => {
                        for n in 1..64 {
                            let Some(e) = self.table.ancestor(tgid, n) else {
                                break;
                            };
                            if f == F::ProcApid {
                                scratch.nums.push(u64::from(e.tgid));
                            } else {
                                scratch.push_str(e.comm.as_bytes());
                            }
                        }
                        Some(if f == F::ProcApid {
                            Value::NumList(scratch)
                        } else {
                            Value::StrList(scratch)
                        })
                    }
                }
            }
            F::ProcExe => p.args.first().and_then(|a| s(a)),
            F::ProcExepath => s(&p.exepath),
            F::ProcCmdline => Some(cmdline(&p.comm, &p.args, scratch)),
            F::ProcArgs => {
                for (i, a) in p.args.iter().skip(1).enumerate() {
                    if i > 0 {
                        scratch.bytes.push(b' ');
                    }
                    scratch.bytes.extend_from_slice(a.as_bytes());
                }
                Some(Value::Str(&scratch.bytes))
            }
            F::ProcPcmdline => {
                let parent = self.ctx.parent.as_ref()?;
                Some(cmdline(&parent.comm, &parent.args, scratch))
            }
            F::ProcCwd => self.cwd.map(Value::Str),
            F::ProcPid => Some(Value::U64(u64::from(self.ctx.task.tgid))),
            F::ProcPpid => Some(Value::U64(u64::from(self.ctx.task.ppid))),
            F::Tid => Some(Value::U64(u64::from(self.ctx.task.pid))),
            F::IsUpper => exe.map(|(_, fl)| Value::Bool(fl.overlay_upper)),
            F::IsLower => exe.map(|(file, fl)| {
                Value::Bool(
                    !fl.overlay_upper
                        && fl.on_root_mount
                        && file.s_magic == driftwatch_image::OVERLAYFS_SUPER_MAGIC,
                )
            }),
            F::IsMemfd => exe.map(|(_, fl)| Value::Bool(fl.memfd)),
            F::IsWritable => exe.map(|(_, fl)| Value::Bool(fl.overlay_upper || !fl.on_root_mount)),
            F::ExeIno => exe.map(|(file, _)| Value::U64(file.ino)),
            F::ExeCtime => exe.map(|(file, _)| {
                Value::U64(file.ctime_sec * 1_000_000_000 + u64::from(file.ctime_nsec))
            }),
            F::ExeMtime => exe.map(|(file, _)| {
                Value::U64(file.mtime_sec * 1_000_000_000 + u64::from(file.mtime_nsec))
            }),
            F::ExeOrigin => p.exe_origin.map(|o| Value::Str(o.as_str().as_bytes())),
            F::UserUid => Some(Value::U64(u64::from(self.ctx.task.euid))),
            F::UserName => self.ctx.user_name.as_deref().and_then(s),
            F::GroupGid => Some(Value::U64(u64::from(self.ctx.task.egid))),
            F::ContainerId => Some(Value::Str(self.ctx.container_id().as_bytes())),
            F::ContainerName => Some(Value::Str(
                c.map_or(driftwatch_event::HOST_CONTAINER_ID, |c| c.name.as_str())
                    .as_bytes(),
            )),
            F::ContainerImage => c.and_then(|c| s(&c.image_ref)),
            F::ContainerRepository => c.and_then(|c| s(&c.image_repository)),
            F::ContainerTag => c.and_then(|c| s(&c.image_tag)),
            F::ContainerDigest => c.and_then(|c| c.image_digest.as_deref()).and_then(s),
            F::K8sNs => c.and_then(|c| c.pod_namespace.as_deref()).and_then(s),
            F::K8sPod => c.and_then(|c| c.pod_name.as_deref()).and_then(s),
            F::K8sPodUid => c.and_then(|c| c.pod_uid.as_deref()).and_then(s),
            F::DriftVia => self.arrival.map(|a| Value::Str(a.via.as_str().as_bytes())),
            F::DriftPath => self.arrival.map(|a| Value::Str(&a.path)),
            F::DriftOrigin => self
                .arrival
                .map(|a| Value::Str(a.verdict.origin.as_str().as_bytes())),
            F::DriftCopyOf => self
                .arrival
                .and_then(|a| a.verdict.image_copy_of.as_deref())
                .map(Value::Str),
            F::Action => Some(Value::Str(self.action.as_str().as_bytes())),
            _ => self.file_field(f, scratch),
        }
    }
}

impl EventSource<'_> {
    /// The file-event fields (none for other events).
    fn file_field<'a>(&'a self, f: F, scratch: &'a mut Scratch) -> Option<Value<'a>> {
        let ev = self.file?;
        match f {
            F::RawRes => Some(Value::I64(ev.ret)),
            F::Res => Some(Value::Str(if ev.ret >= 0 {
                b"SUCCESS"
            } else {
                let name = errno_name(ev.ret);
                if name.len() > 1 {
                    name.as_bytes()
                } else {
                    let _ = std::io::Write::write_fmt(
                        &mut scratch.bytes,
                        format_args!("E{}", ev.ret.unsigned_abs()),
                    );
                    &scratch.bytes
                }
            })),
            F::IsOpenWrite => ev.op.is_open().then(|| Value::Bool(ev.is_open_write())),
            F::IsOpenRead => ev.op.is_open().then(|| Value::Bool(ev.is_open_read())),
            F::ArgFlags => {
                if ev.op.is_open() {
                    open_flags(ev.flags, &mut scratch.bytes);
                } else {
                    match ev.op {
                        FileOp::Unlinkat
                        | FileOp::Renameat2
                        | FileOp::Linkat
                        | FileOp::Fchownat => at_flags(ev.op, ev.flags, &mut scratch.bytes),
                        _ => return None,
                    }
                }
                Some(Value::Str(&scratch.bytes))
            }
            F::ArgMode => {
                mode_names(ev.mode?, &mut scratch.bytes);
                Some(Value::Str(&scratch.bytes))
            }
            F::ArgPath(which) => path_arg(ev, which).map(Value::Str),
            F::ArgTarget => ev.target.as_deref().map(Value::Str),
            F::ArgUid | F::ArgGid | F::ArgFd => {
                let n = match f {
                    F::ArgUid => i64::from(ev.uid?),
                    F::ArgGid => i64::from(ev.gid?),
                    _ => ev.fd?,
                };
                // Falco's evt.arg.* are strings: the decimal, written into the scratch buffer.
                let _ = std::io::Write::write_fmt(&mut scratch.bytes, format_args!("{n}"));
                Some(Value::Str(&scratch.bytes))
            }
            F::FdNum => ev.fd.map(Value::I64),
            F::FdName => Some(Value::Str(&ev.path)),
            F::FdDirectory => Some(Value::Str(split_dir(&ev.path).0)),
            F::FdFilename => Some(Value::Str(split_dir(&ev.path).1)),
            F::FdTypechar => {
                let mode = ev.file.as_ref()?.mode & 0o170000;
                Some(Value::Str(match mode {
                    0o100000 => b"f",
                    0o040000 => b"d",
                    0o120000 => b"l",
                    0o010000 => b"p",
                    0o140000 => b"u",
                    _ => b"o",
                }))
            }
            F::FdUpper => ev
                .layer
                .map(|l| Value::Bool(matches!(l, FileLayer::Upper | FileLayer::CopiedUp))),
            F::FdLower => ev.layer.map(|l| Value::Bool(l == FileLayer::Lower)),
            F::FdLayer => ev.layer.map(|l| Value::Str(l.as_str().as_bytes())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn open_flags_render_as_falco_names() {
        assert_eq!(text(|o| open_flags(0o1101, o)), "O_WRONLY|O_CREAT|O_TRUNC");
        assert_eq!(text(|o| open_flags(0o2002, o)), "O_RDWR|O_APPEND");
        assert_eq!(
            text(|o| open_flags(0o20200002, o)),
            "O_RDWR|O_TMPFILE",
            "O_TMPFILE is not also O_DIRECTORY"
        );
        assert_eq!(text(|o| open_flags(0o4010001, o)), "O_WRONLY|O_SYNC");
        assert_eq!(text(|o| open_flags(0, o)), "O_RDONLY");
    }

    #[test]
    fn modes_and_at_flags_render_as_names() {
        assert_eq!(
            text(|o| mode_names(0o4755, o)),
            "S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IXUSR|S_IWUSR|S_IRUSR|S_ISUID"
        );
        assert_eq!(text(|o| mode_names(0, o)), "");
        assert_eq!(
            text(|o| at_flags(FileOp::Unlinkat, 0x200, o)),
            "AT_REMOVEDIR"
        );
        assert_eq!(
            text(|o| at_flags(FileOp::Renameat2, 3, o)),
            "RENAME_NOREPLACE|RENAME_EXCHANGE"
        );
        assert_eq!(text(|o| at_flags(FileOp::Chmod, 0x200, o)), "");
    }

    #[test]
    fn errno_names_and_directory_split() {
        assert_eq!(errno_name(-2), "ENOENT");
        assert_eq!(errno_name(-36), "ENAMETOOLONG");
        assert_eq!(errno_name(-4095), "E");
        assert_eq!(split_dir(b"/etc/passwd"), (&b"/etc"[..], &b"passwd"[..]));
        assert_eq!(split_dir(b"/x"), (&b"/"[..], &b"x"[..]));
        assert_eq!(split_dir(b"rel"), (&b""[..], &b"rel"[..]));
    }

    #[test]
    fn path_arguments_follow_falco_names_per_syscall() {
        let ev = FileEvent {
            op: FileOp::Renameat2,
            path: b"/tmp/a".to_vec(),
            path2: Some(b"/usr/bin/a".to_vec()),
            ..FileEvent::default()
        };
        assert_eq!(path_arg(&ev, PathArg::Oldpath), Some(&b"/tmp/a"[..]));
        assert_eq!(path_arg(&ev, PathArg::Newpath), Some(&b"/usr/bin/a"[..]));
        assert_eq!(path_arg(&ev, PathArg::Name), None);
        let ev = FileEvent {
            op: FileOp::Openat,
            path: b"/etc/x".to_vec(),
            ..FileEvent::default()
        };
        assert_eq!(path_arg(&ev, PathArg::Name), Some(&b"/etc/x"[..]));
        assert_eq!(path_arg(&ev, PathArg::Path), None);
        let ev = FileEvent {
            op: FileOp::Symlinkat,
            path: b"/l".to_vec(),
            ..FileEvent::default()
        };
        assert_eq!(path_arg(&ev, PathArg::Linkpath), Some(&b"/l"[..]));
    }
}

//! The agent's events as a rule-engine [`FieldSource`]: every field of `driftwatch_rules::FIELDS`
//! read from the event, the process table, the container and the drift arrival, without
//! allocating (computed strings go to the engine's scratch buffer).
//!
//! Invariant: every field of the table is provided here or is marked not provided in the table
//! (then rules cannot load with it); the test `every_field_in_the_table_is_provided_or_rejected_at_load`
//! walks the table.

mod net;

use crate::detect::Action;
use crate::dns::DnsNames;
use crate::enrich::{AlertCtx, Arrival};
use crate::proctable::ProcessTable;
use driftwatch_event::{FileEvent, FileLayer, FileOp, NetEvent};
use driftwatch_rules::{EventType, FieldArg, FieldId, FieldSource, Scratch, Value, FIELDS};
use net::Sock;
pub use net::SocketRoles;

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
    ContainerKind,
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
    FdType,
    FdSockfamily,
    FdL4proto,
    /// An address of a socket (`fd.cip`, `fd.cnet`, …).
    Addr(End),
    /// A port of a socket.
    Port(End),
    /// The DNS name of an end's address (`fd.sip.name`, …), from the container's answers.
    AddrName(End),
    /// Both ends' addresses (`fd.ip`, `fd.net`).
    EitherAddr,
    /// Both ends' ports (`fd.port`).
    EitherPort,
    FdIsServer,
    FdConnected,
    FdNameChanged,
    ArgDomain,
    ArgType,
    ArgBacklog,
    ProcDrifted,
    NetWorkload,
    NetBaseline,
    NetActivity,
    /// A field the agent cannot provide for its events (no value).
    None,
}

/// Which end of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Client,
    Server,
    Local,
    Remote,
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
        _ => net::errno_name(ret).unwrap_or("E"),
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
                    "container.kind" => F::ContainerKind,
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
                    "fd.type" => F::FdType,
                    "fd.sockfamily" => F::FdSockfamily,
                    "fd.l4proto" => F::FdL4proto,
                    "fd.cip" | "fd.cnet" => F::Addr(End::Client),
                    "fd.sip" | "fd.snet" => F::Addr(End::Server),
                    "fd.lip" | "fd.lnet" => F::Addr(End::Local),
                    "fd.rip" | "fd.rnet" => F::Addr(End::Remote),
                    "fd.cip.name" => F::AddrName(End::Client),
                    "fd.sip.name" => F::AddrName(End::Server),
                    "fd.lip.name" => F::AddrName(End::Local),
                    "fd.rip.name" => F::AddrName(End::Remote),
                    "fd.cport" => F::Port(End::Client),
                    "fd.sport" => F::Port(End::Server),
                    "fd.lport" => F::Port(End::Local),
                    "fd.rport" => F::Port(End::Remote),
                    "fd.ip" | "fd.net" => F::EitherAddr,
                    "fd.port" => F::EitherPort,
                    "fd.is_server" => F::FdIsServer,
                    "fd.connected" => F::FdConnected,
                    "fd.name_changed" => F::FdNameChanged,
                    "evt.arg.domain" => F::ArgDomain,
                    "evt.arg.type" => F::ArgType,
                    "evt.arg.backlog" => F::ArgBacklog,
                    "proc.drifted" => F::ProcDrifted,
                    "net.workload" => F::NetWorkload,
                    "net.baseline" => F::NetBaseline,
                    "net.activity" => F::NetActivity,
                    _ => F::None,
                })
                .collect(),
        )
    }
}

/// The syscall an event is, when it is one (file and network events).
#[derive(Debug, Clone, Copy, Default)]
pub enum Call<'a> {
    /// An exec or a mapping.
    #[default]
    None,
    File(&'a FileEvent),
    /// A network syscall and what the agent knows of it besides the event.
    Net(&'a NetEvent, NetFacts<'a>),
}

/// What the agent adds to a network event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetFacts<'a> {
    /// Whether the process is the server end of its socket when an earlier connect or accept
    /// said so ([`SocketRoles`], for a dup).
    pub local_is_server: Option<bool>,
    /// The workload whose baseline judged the event (`net.workload`).
    pub workload: Option<&'a str>,
    /// How the event compares with that baseline (`net.baseline`).
    pub baseline: Option<driftwatch_baseline::Verdict>,
    /// What the baseline judged it as (`net.activity`: `listen` or `connect`).
    pub activity: Option<&'static str>,
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
    /// The file or network syscall.
    pub call: Call<'a>,
    pub table: &'a ProcessTable,
    /// The names the containers' DNS answers gave addresses (`fd.sip.name`, …).
    pub dns: &'a DnsNames,
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
            F::ProcDrifted => Some(Value::Bool(p.drifted)),
            F::UserUid => Some(Value::U64(u64::from(self.ctx.task.euid))),
            F::UserName => self.ctx.user_name.as_deref().and_then(s),
            F::GroupGid => Some(Value::U64(u64::from(self.ctx.task.egid))),
            F::ContainerId => Some(Value::Str(self.ctx.container_id().as_bytes())),
            F::ContainerName => Some(Value::Str(
                c.map_or(driftwatch_event::HOST_CONTAINER_ID, |c| c.name.as_str())
                    .as_bytes(),
            )),
            F::ContainerKind => Some(Value::Str(
                c.map_or(driftwatch_event::HOST_CONTAINER_ID, |c| c.kind.as_str())
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
            F::AddrName(e) => match self.call {
                Call::Net(ev, facts) => {
                    let ip = sock_end(ev, facts.local_is_server, e)?.ip();
                    self.dns
                        .name_of(&c?.id, ip)
                        .map(|n| Value::Str(n.as_bytes()))
                }
                _ => None,
            },
            _ => match self.call {
                Call::File(ev) => file_field(ev, f, scratch),
                Call::Net(_, facts) if f == F::NetWorkload => facts.workload.and_then(s),
                Call::Net(_, facts) if f == F::NetBaseline => {
                    facts.baseline.map(|v| Value::Str(v.as_str().as_bytes()))
                }
                Call::Net(_, facts) if f == F::NetActivity => {
                    facts.activity.map(|a| Value::Str(a.as_bytes()))
                }
                Call::Net(ev, facts) => net_field(ev, facts.local_is_server, f, scratch),
                Call::None => None,
            },
        }
    }
}

/// `evt.res` of a return value.
fn res<'a>(ret: i64, scratch: &'a mut Scratch) -> Value<'a> {
    Value::Str(if ret >= 0 {
        b"SUCCESS"
    } else {
        let name = errno_name(ret);
        if name.len() > 1 {
            name.as_bytes()
        } else {
            let _ = std::io::Write::write_fmt(
                &mut scratch.bytes,
                format_args!("E{}", ret.unsigned_abs()),
            );
            &scratch.bytes
        }
    })
}

/// A decimal number as a string value (Falco's `evt.arg.*` are strings).
fn decimal(n: impl std::fmt::Display, scratch: &mut Scratch) -> Value<'_> {
    let _ = std::io::Write::write_fmt(&mut scratch.bytes, format_args!("{n}"));
    Value::Str(&scratch.bytes)
}

/// One end of a network event's socket.
fn sock_end(ev: &NetEvent, local_is_server: Option<bool>, e: End) -> Option<std::net::SocketAddr> {
    let s = Sock::of(ev, local_is_server);
    match e {
        End::Client => s.client(),
        End::Server => s.server(),
        End::Local => s.local(),
        End::Remote => s.remote(),
    }
}

/// The network-event fields (see [`net`]).
fn net_field<'a>(
    ev: &NetEvent,
    local_is_server: Option<bool>,
    f: F,
    scratch: &'a mut Scratch,
) -> Option<Value<'a>> {
    let sock = || Sock::of(ev, local_is_server);
    let addr = |a: std::net::SocketAddr, scratch: &'a mut Scratch| {
        let _ = std::io::Write::write_fmt(&mut scratch.bytes, format_args!("{}", a.ip()));
        Value::Str(&scratch.bytes)
    };
    let end = |e: End| {
        let s = sock();
        match e {
            End::Client => s.client(),
            End::Server => s.server(),
            End::Local => s.local(),
            End::Remote => s.remote(),
        }
    };
    match f {
        F::RawRes => (!ev.no_syscall).then_some(Value::I64(ev.ret)),
        F::Res => (!ev.no_syscall).then(|| res(ev.ret, scratch)),
        F::FdNum => net::fd_num(ev).map(Value::I64),
        F::FdName => sock()
            .write_name(&mut scratch.bytes)
            .then_some(Value::Str(&scratch.bytes)),
        F::FdTypechar => net::fd_type(ev).map(|(_, c)| Value::Str(c.as_bytes())),
        F::FdType => net::fd_type(ev).map(|(t, _)| Value::Str(t.as_bytes())),
        F::FdSockfamily => net::sock_family(ev).map(|t| Value::Str(t.as_bytes())),
        F::FdL4proto => net::l4proto(ev).map(|t| Value::Str(t.as_bytes())),
        F::Addr(e) => end(e).map(|a| addr(a, scratch)),
        F::Port(e) => end(e).map(|a| Value::U64(u64::from(a.port()))),
        F::EitherAddr => {
            for a in sock().either() {
                let _ = std::io::Write::write_fmt(&mut scratch.bytes, format_args!("{}", a.ip()));
                scratch.ends.push(scratch.bytes.len());
            }
            (!scratch.ends.is_empty()).then_some(Value::StrList(scratch))
        }
        F::EitherPort => {
            scratch
                .nums
                .extend(sock().either().map(|a| u64::from(a.port())));
            (!scratch.nums.is_empty()).then_some(Value::NumList(scratch))
        }
        F::FdIsServer => ev.is_inet().then(|| Value::Bool(sock().is_server())),
        F::FdConnected => ev
            .is_inet()
            .then(|| Value::Bool(net::connected(ev, sock()))),
        F::FdNameChanged => Some(Value::Bool(ev.is_inet() && net::name_changed(ev))),
        F::ArgDomain => (ev.op == driftwatch_event::NetOp::Socket).then(|| {
            net::write_domain(ev.family, &mut scratch.bytes);
            Value::Str(&scratch.bytes)
        }),
        F::ArgType => ev.type_arg.map(|t| decimal(t, scratch)),
        F::ArgBacklog => ev.backlog.map(|b| decimal(b, scratch)),
        _ => None,
    }
}

/// The file-event fields.
fn file_field<'a>(ev: &'a FileEvent, f: F, scratch: &'a mut Scratch) -> Option<Value<'a>> {
    match f {
        F::RawRes => Some(Value::I64(ev.ret)),
        F::Res => Some(res(ev.ret, scratch)),
        F::IsOpenWrite => ev.op.is_open().then(|| Value::Bool(ev.is_open_write())),
        F::IsOpenRead => ev.op.is_open().then(|| Value::Bool(ev.is_open_read())),
        F::ArgFlags => {
            if ev.op.is_open() {
                open_flags(ev.flags, &mut scratch.bytes);
            } else {
                match ev.op {
                    FileOp::Unlinkat | FileOp::Renameat2 | FileOp::Linkat | FileOp::Fchownat => {
                        at_flags(ev.op, ev.flags, &mut scratch.bytes)
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::Via;
    use crate::proctable::ProcEntry;
    use driftwatch_event::{
        ContainerInfo, ExeFile, ExeOrigin, ExecFlags, NetOp, TaskInfo, AF_INET,
    };
    use driftwatch_origin::Verdict;
    use driftwatch_rules::{
        compile, load_str, ArgKind, CompileOptions, EventKind, EventKinds, FieldDef,
    };
    use std::sync::Arc;

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

    fn sa(text: &str) -> std::net::SocketAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// One network event of every op, each as the sensor reports it.
    fn synthetic_net_events() -> Vec<NetEvent> {
        let tcp4 = |op: NetOp, ret: i64, local: Option<&str>, remote: Option<&str>| NetEvent {
            op,
            ret,
            fd: Some(3),
            fd2: Some(4),
            family: AF_INET,
            sock_type: 1,
            protocol: 6,
            local: local.map(sa),
            remote: remote.map(sa),
            ..NetEvent::default()
        };
        let mut out = Vec::new();
        for op in NetOp::ALL {
            out.push(match op {
                NetOp::Socket => NetEvent {
                    type_arg: Some(3),
                    family: 17,
                    sock_type: 3,
                    ..tcp4(op, 3, None, None)
                },
                NetOp::Listen => NetEvent {
                    backlog: Some(128),
                    ..tcp4(op, 0, Some("0.0.0.0:8080"), None)
                },
                NetOp::Bind => tcp4(op, 0, Some("0.0.0.0:8080"), None),
                NetOp::Accept | NetOp::Accept4 => {
                    tcp4(op, 5, Some("10.0.0.1:8080"), Some("10.0.0.2:40000"))
                }
                _ => tcp4(op, 0, Some("10.0.0.2:40000"), Some("10.0.0.1:8080")),
            });
        }
        out
    }

    /// A DNS response naming one IPv4 address `name` (the answer's owner compressed).
    pub(super) fn dns_answer(name: &str, ip: [u8; 4]) -> Vec<u8> {
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        for label in name.split('.') {
            m.push(u8::try_from(label.len()).unwrap());
            m.extend_from_slice(label.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        m.extend_from_slice(&ip);
        m
    }

    /// The synthetic events of one kind that [`every_field_in_the_table_is_provided_or_rejected_at_load`]
    /// reads fields from, built as the processor builds them (an exec carries its executable's
    /// facts and working directory, a mapping its drift arrival, a file event its syscall).
    struct Synthetic {
        fields: FieldMap,
        table: ProcessTable,
        /// Names for the synthetic network events' addresses (`fd.sip.name`, …).
        dns: DnsNames,
        arrival: Arrival,
        events: Vec<Synthetic1>,
    }

    /// One synthetic event.
    struct Synthetic1 {
        evt_type: EventType,
        ctx: AlertCtx,
        /// Whether it carries [`Synthetic::arrival`].
        arrival: bool,
        cwd: Option<Vec<u8>>,
        file: Option<FileEvent>,
        net: Option<NetEvent>,
    }

    fn process(tgid: u32, ppid: u32, comm: &str, exepath: &str) -> ProcEntry {
        ProcEntry {
            tgid,
            ppid,
            comm: Arc::from(comm),
            exepath: Arc::from(exepath),
            args: Arc::from(vec![exepath.to_string(), "-c".to_string(), "x".to_string()]),
            exe_origin: Some(ExeOrigin::Added),
            ..ProcEntry::default()
        }
    }

    impl Synthetic {
        /// Every event carries everything its kind can carry.
        fn new() -> Synthetic {
            let mut table = ProcessTable::new(16);
            table.insert(process(1, 0, "init", "/sbin/init"));
            table.insert(process(
                10,
                1,
                "containerd-shim",
                "/usr/bin/containerd-shim",
            ));
            table.insert(process(20, 10, "bash", "/bin/bash"));
            table.insert(process(30, 20, "sh", "/tmp/sh"));
            let ctx = |evt_type: &'static str, exe: bool| AlertCtx {
                time_ns: 1_700_000_000_123_456_789,
                evt_type,
                task: TaskInfo {
                    pid: 31,
                    tgid: 30,
                    ppid: 20,
                    euid: 1000,
                    egid: 1000,
                    comm: "sh".into(),
                    ..TaskInfo::default()
                },
                container: Some(Arc::new(ContainerInfo {
                    id: "0123456789abcdef".into(),
                    name: "web".into(),
                    image_ref: "docker.io/library/app:1".into(),
                    image_repository: "docker.io/library/app".into(),
                    image_tag: "1".into(),
                    image_digest: Some("sha256:00".into()),
                    pod_name: Some("web-0".into()),
                    pod_namespace: Some("prod".into()),
                    pod_uid: Some("uid-0".into()),
                    ..ContainerInfo::default()
                })),
                process: process(30, 20, "sh", "/tmp/sh"),
                parent: Some(process(20, 10, "bash", "/bin/bash")),
                user_name: Some("app".into()),
                exe: exe.then(|| {
                    let file = ExeFile {
                        ino: 7,
                        ctime_sec: 1,
                        mtime_sec: 2,
                        mode: 0o100755,
                        s_magic: driftwatch_image::OVERLAYFS_SUPER_MAGIC,
                        ..ExeFile::default()
                    };
                    let flags = ExecFlags {
                        overlay_upper: true,
                        on_root_mount: true,
                        ..ExecFlags::default()
                    };
                    (file, flags)
                }),
            };
            let mut events = vec![
                Synthetic1 {
                    evt_type: EventType::Execve,
                    ctx: ctx("execve", true),
                    arrival: true,
                    cwd: Some(b"/work".to_vec()),
                    file: None,
                    net: None,
                },
                Synthetic1 {
                    evt_type: EventType::Mmap,
                    ctx: ctx("mmap", false),
                    arrival: true,
                    cwd: None,
                    file: None,
                    net: None,
                },
            ];
            for op in FileOp::ALL {
                let file = FileEvent {
                    op,
                    ret: 3,
                    path: b"/etc/app.conf".to_vec(),
                    path2: Some(b"/etc/app.conf.new".to_vec()),
                    target: Some(b"../x".to_vec()),
                    resolved: true,
                    flags: 0o1101 | 0x200 | 0x400 | 0x100 | 1,
                    mode: Some(0o644),
                    uid: Some(1000),
                    gid: Some(1000),
                    fd: Some(3),
                    file: Some(ExeFile {
                        mode: 0o100644,
                        ..ExeFile::default()
                    }),
                    layer: Some(FileLayer::CopiedUp),
                    ..FileEvent::default()
                };
                events.push(Synthetic1 {
                    evt_type: EventType::File(op),
                    ctx: ctx(op.as_str(), false),
                    arrival: false,
                    cwd: None,
                    file: Some(file),
                    net: None,
                });
            }
            for ev in synthetic_net_events() {
                events.push(Synthetic1 {
                    evt_type: EventType::Net(ev.op),
                    ctx: ctx(ev.op.as_str(), false),
                    arrival: false,
                    cwd: None,
                    file: None,
                    net: Some(ev),
                });
            }
            let mut dns = DnsNames::new(16);
            for (name, ip) in [
                ("server.test", [10, 0, 0, 1]),
                ("client.test", [10, 0, 0, 2]),
            ] {
                assert_eq!(dns.learn("0123456789abcdef", &dns_answer(name, ip)), 1);
            }
            Synthetic {
                fields: FieldMap::default(),
                table,
                dns,
                arrival: Arrival {
                    via: Via::Exec,
                    path: b"/tmp/sh".to_vec(),
                    verdict: Verdict {
                        origin: ExeOrigin::Added,
                        image_copy_of: Some(Arc::from(&b"/bin/sh"[..])),
                    },
                },
                events,
            }
        }

        /// The events of these kinds where the agent has a value for `field[arg]`.
        fn with_value(&self, kinds: EventKinds, field: FieldId, arg: &FieldArg) -> usize {
            let mut scratch = Scratch::default();
            let mut n = 0;
            for e in &self.events {
                let kind = match e.evt_type.kind() {
                    EventKind::Exec => EventKinds::EXEC,
                    EventKind::Map => EventKinds::MAP,
                    EventKind::File => EventKinds::FILE,
                    EventKind::Net => EventKinds::NET,
                };
                if kinds.0 & kind.0 == 0 {
                    continue;
                }
                let src = EventSource {
                    fields: &self.fields,
                    evt_type: e.evt_type,
                    num: 1,
                    ctx: &e.ctx,
                    arrival: e.arrival.then_some(&self.arrival),
                    action: Action::Killed,
                    cwd: e.cwd.as_deref(),
                    call: match (&e.file, &e.net) {
                        (Some(f), _) => Call::File(f),
                        (None, Some(n)) => Call::Net(
                            n,
                            NetFacts {
                                local_is_server: None,
                                workload: Some("image:example/app"),
                                baseline: Some(driftwatch_baseline::Verdict::Expected),
                                activity: Some("connect"),
                            },
                        ),
                        (None, None) => Call::None,
                    },
                    table: &self.table,
                    dns: &self.dns,
                    hostname: "node-1",
                };
                scratch.clear();
                n += usize::from(src.get(field, arg, &mut scratch).is_some());
            }
            n
        }
    }

    /// The table's invariant: every field of `FIELDS` is provided by the agent (it has a value
    /// for some event of every kind the table says carries it) or is marked not provided, which
    /// the agent then really does not fill and which a rule cannot load with. A field added to
    /// the table without a meaning in [`FieldMap`] and [`EventSource::get`] fails here.
    #[test]
    fn every_field_in_the_table_is_provided_or_rejected_at_load() {
        let s = Synthetic::new();
        let kinds = [
            EventKinds::EXEC,
            EventKinds::MAP,
            EventKinds::FILE,
            EventKinds::NET,
        ];
        assert_eq!(
            kinds.iter().fold(0, |m, k| m | k.0),
            EventKinds::ALL.0,
            "a new event kind needs synthetic events here"
        );
        for (i, def) in FIELDS.iter().enumerate() {
            let id = FieldId(u16::try_from(i).unwrap_or(u16::MAX));
            let mapped = s.fields.0.get(i).is_some_and(|f| *f != F::None);
            if !def.provided {
                assert!(
                    !mapped,
                    "field '{}' is marked not provided but the agent fills it: drop .not_provided()",
                    def.name
                );
                assert_rejected_at_load(def);
                continue;
            }
            assert!(
                mapped,
                "field '{}' is in driftwatch_rules::FIELDS but the agent does not provide it: give \
                 it a meaning in FieldMap and EventSource::get, or mark it .not_provided()",
                def.name
            );
            let args: &[FieldArg] = match def.arg {
                ArgKind::None => &[FieldArg::None],
                ArgKind::Index => &[FieldArg::Index(1)],
                ArgKind::IndexOrAll => &[FieldArg::None, FieldArg::Index(1)],
            };
            for kind in kinds.into_iter().filter(|k| def.events.0 & k.0 != 0) {
                for arg in args {
                    assert!(
                        s.with_value(kind, id, arg) > 0,
                        "field '{}' ({arg:?}) has no value for any {} event, though the table \
                         says it is carried there",
                        def.name,
                        kind.describe()
                    );
                }
            }
        }
    }

    /// A rule using a field that is not provided does not load: an error naming the field, or
    /// with `--skip-unknown` a skipped rule.
    fn assert_rejected_at_load(def: &FieldDef) {
        let field = match def.arg {
            ArgKind::Index => format!("{}[1]", def.name),
            ArgKind::None | ArgKind::IndexOrAll => def.name.to_string(),
        };
        let text = format!(
            "- rule: uses {field}\n  desc: d\n  condition: evt.type = execve and {field} exists\n  \
             output: o\n  priority: NOTICE\n"
        );
        let load = load_str("r.yaml", &text);
        assert!(!load.has_errors(), "{:?}", load.diagnostics);
        let c = compile(&load, &CompileOptions::default());
        assert!(
            c.has_errors() && c.stats.loaded == 0,
            "a rule using '{}' (not provided) loaded",
            def.name
        );
        let message = format!("field '{}' is not provided by driftwatch", def.name);
        assert!(
            c.diagnostics.iter().any(|d| d.message.contains(&message)),
            "{:?}",
            c.diagnostics
        );
        let skip = CompileOptions {
            skip_unknown: true,
            ..CompileOptions::default()
        };
        let c = compile(&load, &skip);
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        assert_eq!((c.stats.loaded, c.stats.skipped_unknown), (0, 1));
    }
}

#[cfg(test)]
mod net_tests {
    use super::*;
    use crate::enrich::AlertCtx;
    use driftwatch_event::{ContainerInfo, NetOp, TaskInfo, AF_INET, AF_INET6};
    use driftwatch_rules::{compile, load_str, lookup_field as lookup, CompileOptions, EvalCtx};
    use std::sync::Arc;

    fn sa(text: &str) -> std::net::SocketAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn tcp(op: NetOp, ret: i64, local: Option<&str>, remote: Option<&str>) -> NetEvent {
        let v6 = local.or(remote).is_some_and(|a| a.starts_with('['));
        NetEvent {
            op,
            ret,
            fd: Some(3),
            fd2: Some(4),
            family: if v6 { AF_INET6 } else { AF_INET },
            sock_type: 1,
            protocol: 6,
            local: local.map(sa),
            remote: remote.map(sa),
            ..NetEvent::default()
        }
    }

    fn ctx() -> AlertCtx {
        AlertCtx {
            time_ns: 1,
            evt_type: "connect",
            task: TaskInfo {
                tgid: 30,
                pid: 30,
                comm: "nc".into(),
                ..TaskInfo::default()
            },
            container: Some(Arc::new(ContainerInfo {
                id: "0123456789abcdef".into(),
                ..ContainerInfo::default()
            })),
            process: crate::proctable::ProcEntry::default(),
            parent: None,
            user_name: None,
            exe: None,
        }
    }

    /// Each field's value for `ev`, as an output prints it (`None` when it has none).
    fn fields_of(ev: &NetEvent, names: &[&str]) -> Vec<Option<String>> {
        fields_hinted(ev, None, names)
    }

    /// [`fields_of`] with what [`SocketRoles`] knows of the socket.
    /// The field source of network event `ev` in a bare process context, handed to `f`.
    fn with_net_source<R>(
        ev: &NetEvent,
        local_is_server: Option<bool>,
        f: impl FnOnce(&EventSource<'_>) -> R,
    ) -> R {
        let map = FieldMap::default();
        let table = ProcessTable::new(4);
        let ctx = ctx();
        let src = EventSource {
            fields: &map,
            evt_type: EventType::Net(ev.op),
            num: 1,
            ctx: &ctx,
            arrival: None,
            action: Action::None,
            cwd: None,
            call: Call::Net(
                ev,
                NetFacts {
                    local_is_server,
                    ..NetFacts::default()
                },
            ),
            table: &table,
            dns: &DnsNames::new(1),
            hostname: "node",
        };
        f(&src)
    }

    fn fields_hinted(
        ev: &NetEvent,
        local_is_server: Option<bool>,
        names: &[&str],
    ) -> Vec<Option<String>> {
        with_net_source(ev, local_is_server, |src| {
            names
                .iter()
                .map(|name| {
                    let id = lookup(name).unwrap_or_else(|| panic!("{name} not provided"));
                    let mut scratch = Scratch::default();
                    src.get(id, &FieldArg::None, &mut scratch).map(|v| match v {
                        Value::Str(b) => String::from_utf8_lossy(b).into_owned(),
                        Value::U64(n) => n.to_string(),
                        Value::I64(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::StrList(l) => l
                            .strs()
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .collect::<Vec<_>>()
                            .join(","),
                        Value::NumList(l) => l
                            .nums
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                    })
                })
                .collect()
        })
    }

    fn one(ev: &NetEvent, name: &str) -> Option<String> {
        fields_of(ev, &[name]).pop().flatten()
    }

    const CONN: &[&str] = &[
        "fd.name",
        "fd.cip",
        "fd.cport",
        "fd.sip",
        "fd.sport",
        "fd.lip",
        "fd.lport",
        "fd.rip",
        "fd.rport",
        "fd.is_server",
        "fd.connected",
        "fd.type",
        "fd.typechar",
    ];

    fn all(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|s| Some((*s).to_string())).collect()
    }

    #[test]
    fn connect_v4_and_v6_names_client_first() {
        let ev = tcp(
            NetOp::Connect,
            0,
            Some("10.0.0.2:40000"),
            Some("10.0.0.1:80"),
        );
        assert_eq!(
            fields_of(&ev, CONN),
            all(&[
                "10.0.0.2:40000->10.0.0.1:80",
                "10.0.0.2",
                "40000",
                "10.0.0.1",
                "80",
                "10.0.0.2",
                "40000",
                "10.0.0.1",
                "80",
                "false",
                "true",
                "ipv4",
                "4"
            ])
        );
        assert_eq!(one(&ev, "fd.sockfamily").as_deref(), Some("ip"));
        assert_eq!(one(&ev, "fd.l4proto").as_deref(), Some("tcp"));
        assert_eq!(one(&ev, "fd.ip").as_deref(), Some("10.0.0.2,10.0.0.1"));
        assert_eq!(one(&ev, "fd.port").as_deref(), Some("40000,80"));
        assert_eq!(one(&ev, "fd.name_changed").as_deref(), Some("true"));
        assert_eq!(one(&ev, "evt.res").as_deref(), Some("SUCCESS"));
        let ev = tcp(
            NetOp::Connect,
            0,
            Some("[fd00::2]:40000"),
            Some("[fd00::1]:443"),
        );
        assert_eq!(
            one(&ev, "fd.name").as_deref(),
            Some("fd00::2:40000->fd00::1:443"),
            "IPv6 without brackets, as Falco's ipv6tuple_to_string"
        );
        assert_eq!(one(&ev, "fd.type").as_deref(), Some("ipv6"));
        assert_eq!(one(&ev, "fd.typechar").as_deref(), Some("6"));
        assert_eq!(one(&ev, "fd.sip").as_deref(), Some("fd00::1"));
        let ev = tcp(
            NetOp::Connect,
            0,
            Some("[::ffff:127.0.0.1]:40000"),
            Some("[::ffff:127.0.0.1]:80"),
        );
        assert_eq!(
            (
                one(&ev, "fd.name").as_deref(),
                one(&ev, "fd.type").as_deref()
            ),
            (Some("127.0.0.1:40000->127.0.0.1:80"), Some("ipv4")),
            "IPv4-mapped ends are an IPv4 socket"
        );
    }

    #[test]
    fn accept_puts_the_peer_as_client() {
        let ev = tcp(
            NetOp::Accept4,
            5,
            Some("10.0.0.1:8080"),
            Some("10.0.0.2:40000"),
        );
        assert_eq!(
            fields_of(&ev, CONN),
            all(&[
                "10.0.0.2:40000->10.0.0.1:8080",
                "10.0.0.2",
                "40000",
                "10.0.0.1",
                "8080",
                "10.0.0.1",
                "8080",
                "10.0.0.2",
                "40000",
                "true",
                "true",
                "ipv4",
                "4"
            ])
        );
        assert_eq!(one(&ev, "fd.num").as_deref(), Some("3"));
        assert_eq!(one(&ev, "evt.rawres").as_deref(), Some("5"));
    }

    #[test]
    fn listeners_on_any_address() {
        let ev = NetEvent {
            backlog: Some(511),
            ..tcp(NetOp::Listen, 0, Some("0.0.0.0:8080"), None)
        };
        assert_eq!(
            fields_of(
                &ev,
                &[
                    "fd.name",
                    "fd.sip",
                    "fd.sport",
                    "fd.lport",
                    "fd.is_server",
                    "fd.connected",
                    "evt.arg.backlog",
                    "fd.name_changed",
                    "fd.ip",
                ]
            ),
            all(&[
                "0.0.0.0:8080",
                "0.0.0.0",
                "8080",
                "8080",
                "true",
                "false",
                "511",
                "false",
                "0.0.0.0"
            ])
        );
        assert_eq!(one(&ev, "fd.cip"), None);
        assert_eq!(one(&ev, "fd.rport"), None);
        let ev = tcp(NetOp::Bind, 0, Some("[::]:8080"), None);
        assert_eq!(one(&ev, "fd.name").as_deref(), Some(":::8080"));
        assert_eq!(one(&ev, "fd.sip").as_deref(), Some("::"));
        assert_eq!(one(&ev, "fd.type").as_deref(), Some("ipv6"));
    }

    #[test]
    fn failed_and_pending_connects() {
        let refused = NetEvent {
            remote_from_arg: true,
            ..tcp(NetOp::Connect, -111, None, Some("10.0.0.1:81"))
        };
        assert_eq!(
            fields_of(
                &refused,
                &["evt.res", "evt.rawres", "fd.name", "fd.connected"]
            ),
            all(&["ECONNREFUSED", "-111", "0.0.0.0:0->10.0.0.1:81", "false"])
        );
        let pending = tcp(
            NetOp::Connect,
            -115,
            Some("10.0.0.2:40001"),
            Some("10.0.0.1:80"),
        );
        assert_eq!(
            fields_of(&pending, &["evt.res", "evt.rawres", "fd.connected"]),
            all(&["EINPROGRESS", "-115", "false"])
        );
        let unreachable = tcp(NetOp::Connect, -101, None, Some("[fd00::9]:80"));
        assert_eq!(one(&unreachable, "evt.res").as_deref(), Some("ENETUNREACH"));
        assert_eq!(
            one(&unreachable, "fd.name").as_deref(),
            Some(":::0->fd00::9:80")
        );
        let uring = NetEvent {
            no_syscall: true,
            ..tcp(NetOp::Connect, 0, None, Some("10.0.0.1:80"))
        };
        assert_eq!(
            fields_of(&uring, &["evt.res", "evt.rawres"]),
            vec![None, None]
        );
    }

    #[test]
    fn sockets_datagrams_and_dups() {
        let packet = NetEvent {
            op: NetOp::Socket,
            ret: 3,
            fd: Some(3),
            family: 17,
            sock_type: 3,
            protocol: 768,
            type_arg: Some(3),
            ..NetEvent::default()
        };
        assert_eq!(
            fields_of(
                &packet,
                &["evt.arg.domain", "evt.arg.type", "fd.num", "evt.res"]
            ),
            all(&["AF_PACKET", "3", "3", "SUCCESS"])
        );
        assert_eq!(
            fields_of(&packet, &["fd.name", "fd.type", "fd.l4proto", "fd.sip"]),
            vec![None, None, None, None]
        );
        let inet = NetEvent {
            family: AF_INET6,
            sock_type: 2,
            protocol: 0,
            type_arg: Some(2 | 0o4000 | 0o2000000),
            ..packet.clone()
        };
        assert_eq!(
            fields_of(
                &inet,
                &["evt.arg.domain", "evt.arg.type", "fd.type", "fd.l4proto"]
            ),
            all(&["AF_INET6", "526338", "ipv6", "udp"])
        );
        let unix = NetEvent {
            family: 1,
            ..packet.clone()
        };
        assert_eq!(one(&unix, "evt.arg.domain").as_deref(), Some("AF_LOCAL"));
        let udp = NetEvent {
            sock_type: 2,
            protocol: 17,
            remote_from_arg: true,
            ..tcp(NetOp::Sendto, 5, Some("0.0.0.0:5353"), Some("10.0.0.53:53"))
        };
        assert_eq!(
            fields_of(
                &udp,
                &["fd.name", "fd.l4proto", "fd.connected", "fd.name_changed"]
            ),
            all(&["0.0.0.0:5353->10.0.0.53:53", "udp", "false", "true"])
        );
        // a reverse shell: the connected socket (fd 3) onto stdin
        let dup = NetEvent {
            fd: Some(0),
            fd2: Some(3),
            ..tcp(
                NetOp::Dup2,
                0,
                Some("127.0.0.1:45678"),
                Some("127.0.0.1:4444"),
            )
        };
        assert_eq!(
            fields_of(
                &dup,
                &[
                    "evt.rawres",
                    "fd.num",
                    "fd.type",
                    "fd.name",
                    "fd.is_server",
                    "fd.connected",
                    "fd.name_changed"
                ]
            ),
            all(&[
                "0",
                "3",
                "ipv4",
                "127.0.0.1:45678->127.0.0.1:4444",
                "false",
                "true",
                "false"
            ])
        );
    }

    /// A dup'ed socket's client and server are what its connect or accept said; without them,
    /// the client is the end on the higher port.
    #[test]
    fn dups_take_the_role_their_connect_or_accept_gave() {
        let mut roles = SocketRoles::default();
        // a client whose ephemeral port is lower than the server's
        let connect = tcp(
            NetOp::Connect,
            0,
            Some("127.0.0.1:33000"),
            Some("127.0.0.1:45000"),
        );
        let dup = NetEvent {
            fd: Some(1),
            fd2: Some(3),
            ..tcp(
                NetOp::Dup2,
                1,
                Some("127.0.0.1:33000"),
                Some("127.0.0.1:45000"),
            )
        };
        assert_eq!(roles.local_is_server(&dup), None);
        let names = ["fd.name", "fd.is_server", "fd.rport"];
        assert_eq!(
            fields_of(&dup, &names),
            all(&["127.0.0.1:45000->127.0.0.1:33000", "true", "45000"]),
            "unknown: the higher port is the client"
        );
        roles.learn(&connect);
        assert_eq!(roles.local_is_server(&connect), None, "only dups ask");
        let hint = roles.local_is_server(&dup);
        assert_eq!(hint, Some(false));
        assert_eq!(
            fields_hinted(&dup, hint, &names),
            all(&["127.0.0.1:33000->127.0.0.1:45000", "false", "45000"])
        );
        // the accepting side of the same connection, in another container
        let accept = NetEvent {
            task: TaskInfo {
                mntns: 7,
                ..TaskInfo::default()
            },
            ..tcp(
                NetOp::Accept,
                4,
                Some("127.0.0.1:45000"),
                Some("127.0.0.1:33000"),
            )
        };
        roles.learn(&accept);
        let server_dup = NetEvent {
            local: accept.local,
            remote: accept.remote,
            task: accept.task.clone(),
            ..dup.clone()
        };
        assert_eq!(roles.local_is_server(&server_dup), Some(true));
        assert_eq!(roles.local_is_server(&dup), Some(false));
        // a refused connect teaches nothing; the memory is bounded
        roles.learn(&NetEvent {
            remote_from_arg: true,
            ..tcp(NetOp::Connect, -111, None, Some("127.0.0.1:1"))
        });
        assert_eq!(roles.len(), 2);
        for port in 0..u16::try_from(SocketRoles::MAX + 10).unwrap_or(u16::MAX) {
            roles.learn(&NetEvent {
                local: Some(std::net::SocketAddr::from(([10, 0, 0, 1], port))),
                ..connect.clone()
            });
        }
        assert!(roles.len() <= SocketRoles::MAX);
    }

    /// Falco's network conditions on the agent's events: CIDR networks, either endpoint.
    #[test]
    fn conditions_on_network_events() {
        let text = |cond: &str| {
            format!(
                "- rule: r\n  desc: d\n  condition: '{}'\n  output: o\n  priority: NOTICE\n",
                cond.replace('\'', "''")
            )
        };
        let matches = |cond: &str, ev: &NetEvent| {
            let load = load_str("r.yaml", &text(cond));
            let c = compile(&load, &CompileOptions::default());
            assert!(!c.has_errors(), "{cond}: {:?}", c.diagnostics);
            with_net_source(ev, None, |src| {
                !c.rules.matching_names(src, &mut EvalCtx::new()).is_empty()
            })
        };
        let out = tcp(
            NetOp::Connect,
            -115,
            Some("172.17.0.2:40000"),
            Some("10.1.2.3:443"),
        );
        // Falco's `outbound` macro, minus its RFC 1918 exemption
        let outbound = "evt.type = connect and (fd.typechar = 4 or fd.typechar = 6) and \
                        (fd.ip != \"0.0.0.0\" and fd.net != \"127.0.0.0/8\") and \
                        (evt.rawres >= 0 or evt.res = EINPROGRESS)";
        assert!(matches(outbound, &out));
        assert!(matches(
            "evt.type = connect and fd.snet = \"10.0.0.0/8\"",
            &out
        ));
        assert!(matches(
            "evt.type = connect and fd.cnet = \"172.16.0.0/12\"",
            &out
        ));
        assert!(matches(
            "evt.type = connect and fd.lnet = \"172.16.0.0/12\"",
            &out
        ));
        assert!(matches(
            "evt.type = connect and fd.rnet != \"172.16.0.0/12\"",
            &out
        ));
        assert!(matches(
            "evt.type = connect and fd.net in (\"192.168.0.0/16\", \"10.0.0.0/8\")",
            &out
        ));
        assert!(!matches(
            "evt.type = connect and fd.net != \"10.0.0.0/8\"",
            &out
        ));
        assert!(matches("evt.type = connect and fd.port = 443", &out));
        assert!(!matches("evt.type = connect and fd.port != 443", &out));
        assert!(matches(
            "evt.type = connect and fd.sip = \"10.1.2.3\"",
            &out
        ));
        let local = tcp(
            NetOp::Connect,
            0,
            Some("127.0.0.1:40000"),
            Some("127.0.0.1:80"),
        );
        assert!(!matches(outbound, &local), "loopback is not outbound");
        let v6 = tcp(
            NetOp::Connect,
            0,
            Some("[fd00::2]:40000"),
            Some("[fd00:0::1]:80"),
        );
        assert!(matches(
            "evt.type = connect and fd.snet = \"fd00::/8\"",
            &v6
        ));
        assert!(matches(
            "evt.type = connect and fd.sip = \"fd00::0:1\"",
            &v6
        ));
        assert!(!matches(
            "evt.type = connect and fd.net = \"10.0.0.0/8\"",
            &v6
        ));
        // a listener on 0.0.0.0: Falco's `inbound` compares fd.ip with it
        let listen = tcp(NetOp::Listen, 0, Some("0.0.0.0:8080"), None);
        assert!(matches(
            "evt.type = listen and fd.ip = \"0.0.0.0\" and fd.sport = 8080",
            &listen
        ));
        assert!(!matches("evt.type = connect", &listen));
    }

    #[test]
    fn peer_names_come_from_the_containers_own_answers() {
        let mut dns = DnsNames::new(16);
        dns.learn(
            "c1",
            &super::tests::dns_answer("svc.drift.test", [10, 0, 0, 1]),
        );
        let ev = NetEvent {
            op: NetOp::Connect,
            family: AF_INET,
            sock_type: 1,
            protocol: 6,
            local: Some(sa("10.0.0.2:40000")),
            remote: Some(sa("10.0.0.1:8080")),
            ..NetEvent::default()
        };
        let map = FieldMap::default();
        let table = ProcessTable::new(4);
        let mut ctx = ctx();
        let names = ["fd.sip.name", "fd.rip.name", "fd.cip.name", "fd.lip.name"];
        let get = |ctx: &AlertCtx, dns: &DnsNames| -> Vec<Option<String>> {
            let src = EventSource {
                fields: &map,
                evt_type: EventType::Net(ev.op),
                num: 1,
                ctx,
                arrival: None,
                action: Action::None,
                cwd: None,
                call: Call::Net(&ev, NetFacts::default()),
                table: &table,
                dns,
                hostname: "node",
            };
            names
                .iter()
                .map(|n| {
                    let mut scratch = Scratch::default();
                    src.get(lookup(n).unwrap(), &FieldArg::None, &mut scratch)
                        .map(|v| match v {
                            Value::Str(b) => String::from_utf8_lossy(b).into_owned(),
                            other => format!("{other:?}"),
                        })
                })
                .collect()
        };
        let mine = ctx.container.as_ref().map(|c| c.id.clone()).unwrap();
        dns.learn(
            &mine,
            &super::tests::dns_answer("svc.drift.test", [10, 0, 0, 1]),
        );
        let svc = Some("svc.drift.test".to_string());
        assert_eq!(get(&ctx, &dns), [svc.clone(), svc, None, None]);
        // another container's answers say nothing about this one's peers; the host has none
        dns.forget(&mine);
        assert_eq!(get(&ctx, &dns), [None, None, None, None]);
        ctx.container = None;
        assert_eq!(get(&ctx, &dns), [None, None, None, None]);
    }
}

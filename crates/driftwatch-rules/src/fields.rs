//! The field table: every field driftwatch provides to rule conditions and outputs, as data.
//!
//! Names and meanings follow Falco's (libsinsp filterchecks) wherever the fact is the same;
//! facts Falco does not have get driftwatch names (`proc.exe_origin`, `drift.*`). The docs
//! page `docs/fields.md` is generated from this table (`driftwatch rules fields --markdown`).

use driftwatch_event::{FileOp, NetOp};
use std::fmt::Write as _;

/// Index of a field in [`FIELDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub u16);

impl FieldId {
    /// The field's definition.
    #[must_use]
    pub fn def(self) -> &'static FieldDef {
        &FIELDS[usize::from(self.0)]
    }

    /// The field's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        self.def().name
    }
}

/// The type of a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Bytes, usually text.
    String,
    /// A path (string operators plus `pmatch`).
    Path,
    /// Unsigned integer.
    U64,
    /// Signed integer.
    I64,
    /// `true` / `false`.
    Bool,
    /// Nanoseconds since the Unix epoch; printed as a time of day in outputs (Falco's abstime).
    AbsTime,
    /// An IPv4 or IPv6 address (Falco's ipaddr): the value is the address as text (`10.0.0.1`,
    /// `fd00::1`, IPv6 as `inet_ntop` writes it, no brackets); the values a rule compares it
    /// with are parsed as addresses, so `fd.sip = "fd00:0::1"` matches `fd00::1`. Operators:
    /// `=`, `!=`, `in`, `intersects`, `exists`.
    IpAddr,
    /// An address compared with networks (Falco's ipnet, `fd.net = "10.0.0.0/8"`): the value
    /// is an address as for [`FieldType::IpAddr`], the values a rule gives are CIDR networks
    /// (or single addresses); `=` holds when the address is in the network.
    IpNet,
}

impl FieldType {
    /// Name used in the docs table.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Path => "path",
            FieldType::U64 => "u64",
            FieldType::I64 => "i64",
            FieldType::Bool => "bool",
            FieldType::AbsTime => "abstime",
            FieldType::IpAddr => "ipaddr",
            FieldType::IpNet => "ipnet",
        }
    }

    /// Integer-valued types (compared numerically).
    #[must_use]
    pub const fn is_numeric(self) -> bool {
        matches!(self, FieldType::U64 | FieldType::I64 | FieldType::AbsTime)
    }

    /// Byte-string-valued types.
    #[must_use]
    pub const fn is_string(self) -> bool {
        matches!(self, FieldType::String | FieldType::Path)
    }

    /// Address-valued types (compared as addresses or networks, not as text).
    #[must_use]
    pub const fn is_ip(self) -> bool {
        matches!(self, FieldType::IpAddr | FieldType::IpNet)
    }
}

/// Whether and how a field takes a `[…]` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArgKind {
    /// No argument.
    None,
    /// A required non-negative index (`proc.aname[2]`).
    Index,
    /// An optional index; without it the field is every ancestor and a check holds when it holds
    /// for any of them (Falco's `proc.aname` / `proc.apid`).
    IndexOrAll,
}

/// Which events carry a field (a bit set of [`EventKind`]s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventKinds(pub u8);

impl EventKinds {
    pub const EXEC: EventKinds = EventKinds(1);
    pub const MAP: EventKinds = EventKinds(2);
    /// Exec and executable-mapping events (the process-code events).
    pub const PROC: EventKinds = EventKinds(3);
    pub const FILE: EventKinds = EventKinds(4);
    pub const NET: EventKinds = EventKinds(8);
    /// File and network events (the syscall events, which have a result and an fd).
    pub const CALL: EventKinds = EventKinds(12);
    pub const ALL: EventKinds = EventKinds(15);

    /// Docs text.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self.0 {
            1 => "exec",
            2 => "mmap/mprotect",
            3 => "exec, mmap/mprotect",
            4 => "file",
            5 => "exec, file",
            6 => "mmap/mprotect, file",
            7 => "exec, mmap/mprotect, file",
            8 => "network",
            9 => "exec, network",
            10 => "mmap/mprotect, network",
            11 => "exec, mmap/mprotect, network",
            12 => "file, network",
            13 => "exec, file, network",
            14 => "mmap/mprotect, file, network",
            15 => "all",
            _ => "none",
        }
    }
}

/// The kinds of events driftwatch produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A program was executed (`execve`, `execveat`).
    Exec,
    /// A file was mapped executable (`mmap`, `mprotect`).
    Map,
    /// A file was opened for writing, created, removed, renamed, linked or had its mode or
    /// owner changed (`open`, `openat`, `unlink`, `rename`, `chmod`, …).
    File,
    /// A network syscall of a container process (`connect`, `accept`, `bind`, `listen`,
    /// `socket`, `sendto`, `dup2`, …).
    Net,
}

/// The `evt.type` values driftwatch produces. Rules are indexed by these.
///
/// The file syscalls are [`FileOp`], their one definition: a syscall added there is an event
/// type here, named by [`FileOp::as_str`]. The network syscalls are [`NetOp`], the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Execve,
    Execveat,
    Mmap,
    Mprotect,
    /// A file-changing syscall.
    File(FileOp),
    /// A network syscall.
    Net(NetOp),
}

impl EventType {
    /// The process-code event types, in index order (the file syscalls follow).
    const PROC: [EventType; 4] = [
        EventType::Execve,
        EventType::Execveat,
        EventType::Mmap,
        EventType::Mprotect,
    ];

    /// Index of the first network type in [`EventType::ALL`].
    const NET_START: usize = EventType::PROC.len() + FileOp::ALL.len();

    /// Every event type, in index order: the process-code types, then every [`FileOp::ALL`],
    /// then every [`NetOp::ALL`].
    pub const ALL: [EventType; EventType::NET_START + NetOp::ALL.len()] = {
        let mut all = [EventType::Execve; EventType::NET_START + NetOp::ALL.len()];
        let mut i = 0;
        while i < all.len() {
            all[i] = if i < EventType::PROC.len() {
                EventType::PROC[i]
            } else if i < EventType::NET_START {
                EventType::File(FileOp::ALL[i - EventType::PROC.len()])
            } else {
                EventType::Net(NetOp::ALL[i - EventType::NET_START])
            };
            i += 1;
        }
        all
    };

    /// The `evt.type` value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Execve => "execve",
            EventType::Execveat => "execveat",
            EventType::Mmap => "mmap",
            EventType::Mprotect => "mprotect",
            EventType::File(op) => op.as_str(),
            EventType::Net(op) => op.as_str(),
        }
    }

    /// Parses an `evt.type` value.
    #[must_use]
    pub fn parse(s: &[u8]) -> Option<EventType> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str().as_bytes() == s)
    }

    /// The kind of event.
    #[must_use]
    pub const fn kind(self) -> EventKind {
        match self {
            EventType::Execve | EventType::Execveat => EventKind::Exec,
            EventType::Mmap | EventType::Mprotect => EventKind::Map,
            EventType::File(_) => EventKind::File,
            EventType::Net(_) => EventKind::Net,
        }
    }

    /// Position in [`EventType::ALL`].
    #[must_use]
    pub const fn index(self) -> usize {
        match self {
            EventType::Execve => 0,
            EventType::Execveat => 1,
            EventType::Mmap => 2,
            EventType::Mprotect => 3,
            // `FileOp::ALL[i]` has the value `i + 1`
            EventType::File(op) => EventType::PROC.len() + (op as usize - 1),
            // likewise `NetOp::ALL[i]`
            EventType::Net(op) => EventType::NET_START + (op as usize - 1),
        }
    }
}

impl From<FileOp> for EventType {
    fn from(op: FileOp) -> EventType {
        EventType::File(op)
    }
}

impl From<NetOp> for EventType {
    fn from(op: NetOp) -> EventType {
        EventType::Net(op)
    }
}

/// Ordered by [`EventType::index`].
impl Ord for EventType {
    fn cmp(&self, other: &EventType) -> std::cmp::Ordering {
        self.index().cmp(&other.index())
    }
}

impl PartialOrd for EventType {
    fn partial_cmp(&self, other: &EventType) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One field of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    pub name: &'static str,
    pub ty: FieldType,
    pub arg: ArgKind,
    pub events: EventKinds,
    /// True when the name and meaning are Falco's; false for driftwatch's own fields.
    pub falco: bool,
    pub desc: &'static str,
    /// False for a field the table declares but the agent does not fill (yet): [`lookup`] does
    /// not find it, so a rule using it is a load-time error like one using an unknown field (or
    /// is skipped with `--skip-unknown`), and the docs leave it out. A field marked provided is
    /// one the agent fills; a test in `driftwatch-agent` walks the table to keep both true.
    pub provided: bool,
    /// True for a field that is either of two values (Falco's `fd.ip`, `fd.port`, `fd.net`:
    /// the client or the server end of a connection): the source gives both as a list, `=` and
    /// `in` hold when either does, and `!=` only when neither is equal (Falco's `compare_ip`).
    pub either: bool,
}

impl FieldDef {
    /// The same field, marked as not provided by the agent (see [`FieldDef::provided`]).
    #[must_use]
    pub const fn not_provided(self) -> FieldDef {
        FieldDef {
            provided: false,
            ..self
        }
    }

    /// The same field, as a field that is either of two values (see [`FieldDef::either`]).
    #[must_use]
    pub const fn either(self) -> FieldDef {
        FieldDef {
            either: true,
            ..self
        }
    }
}

const fn f(
    name: &'static str,
    ty: FieldType,
    arg: ArgKind,
    events: EventKinds,
    falco: bool,
    desc: &'static str,
) -> FieldDef {
    FieldDef {
        name,
        ty,
        arg,
        events,
        falco,
        desc,
        provided: true,
        either: false,
    }
}

use ArgKind as A;
use EventKinds as E;
use FieldType as T;

/// Every field, grouped by class. The order is the docs order; [`FieldId`]s index it. A field
/// the agent does not fill is marked `.not_provided()` (see [`FieldDef::provided`]).
pub static FIELDS: &[FieldDef] = &[
    f("evt.type", T::String, A::None, E::ALL, true, "The event type: execve, execveat, mmap, mprotect, or a file syscall (open, openat, openat2, creat, unlink, unlinkat, rename, renameat, renameat2, link, linkat, symlink, symlinkat, chmod, fchmod, fchmodat, chown, fchown, lchown, fchownat, mkdir, mkdirat, rmdir), or a network syscall (socket, connect, accept, accept4, bind, listen, sendto, sendmsg, dup, dup2, dup3)."),
    f("evt.dir", T::String, A::None, E::ALL, true, "Event direction; always `<` (driftwatch reports completed calls)."),
    f("evt.time", T::AbsTime, A::None, E::ALL, true, "Event time; in outputs the UTC time of day `hh:mm:ss.nnnnnnnnn`."),
    f("evt.rawtime", T::U64, A::None, E::ALL, true, "Event time in nanoseconds since the Unix epoch."),
    f("evt.num", T::U64, A::None, E::ALL, true, "Event sequence number, counted by the agent from its start."),
    f("evt.hostname", T::String, A::None, E::ALL, true, "Name of the node the agent runs on."),
    f("evt.rawres", T::I64, A::None, E::CALL, true, "The syscall's return value: an fd, 0, a byte count, or a negative errno (a non-blocking connect's `-115`, EINPROGRESS); none for a connect made through io_uring."),
    f("evt.res", T::String, A::None, E::CALL, true, "`SUCCESS`, or the error name (`ENOENT`, `EACCES`, `ECONNREFUSED`, `EINPROGRESS`, …) of a failed call."),
    f("evt.is_open_write", T::Bool, A::None, E::FILE, true, "True for an open (open, openat, openat2, creat) for writing (O_WRONLY or O_RDWR)."),
    f("evt.is_open_read", T::Bool, A::None, E::FILE, true, "True for an open for reading (O_RDONLY or O_RDWR). driftwatch reports opens only when they write, create or truncate."),
    f("evt.arg.flags", T::String, A::None, E::FILE, true, "Open flags as names (`O_WRONLY|O_CREAT|O_TRUNC`); the flags argument of unlinkat (`AT_REMOVEDIR`), renameat2 (`RENAME_*`), linkat and fchownat (`AT_*`)."),
    f("evt.arg.mode", T::String, A::None, E::FILE, true, "Mode argument of open, creat, mkdir and the chmod calls as names (`S_IRUSR|S_IWUSR|…`, `S_ISUID`…)."),
    f("evt.arg.name", T::Path, A::None, E::FILE, true, "open/openat/openat2/creat and unlinkat: the file's path (absolute inside the container)."),
    f("evt.arg.path", T::Path, A::None, E::FILE, true, "unlink, mkdir, mkdirat, rmdir, chown, lchown: the path argument (absolute inside the container)."),
    f("evt.arg.pathname", T::Path, A::None, E::FILE, true, "fchownat: the path argument (absolute inside the container)."),
    f("evt.arg.filename", T::Path, A::None, E::FILE, true, "chmod, fchmodat: the path argument (absolute inside the container)."),
    f("evt.arg.oldpath", T::Path, A::None, E::FILE, true, "rename*, link*: the existing path (absolute inside the container)."),
    f("evt.arg.newpath", T::Path, A::None, E::FILE, true, "rename*, link*: the new path (absolute inside the container)."),
    f("evt.arg.target", T::String, A::None, E::FILE, true, "symlink, symlinkat: the link's target, as given (not resolved)."),
    f("evt.arg.linkpath", T::Path, A::None, E::FILE, true, "symlink, symlinkat: the new link's path (absolute inside the container)."),
    f("evt.arg.uid", T::String, A::None, E::FILE, true, "chown calls: the new owner, in decimal (`4294967295` = unchanged). Like every `evt.arg.*`, a string."),
    f("evt.arg.gid", T::String, A::None, E::FILE, true, "chown calls: the new group, in decimal (`4294967295` = unchanged)."),
    f("evt.arg.fd", T::String, A::None, E::FILE, true, "open calls: the new fd (or negative errno); fchmod, fchown: the fd argument."),
    f("evt.arg.domain", T::String, A::None, E::NET, true, "socket: the address family as Falco names it (`AF_INET`, `AF_INET6`, `AF_PACKET`, …; Falco's first name of a value, so 1 is `AF_LOCAL` and 16 `AF_ROUTE`; an unnamed family in decimal)."),
    f("evt.arg.type", T::String, A::None, E::NET, true, "socket: the type argument as passed, in decimal as Falco prints it (`1` SOCK_STREAM, `2` SOCK_DGRAM, `3` SOCK_RAW, `526337` SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC)."),
    f("evt.arg.backlog", T::String, A::None, E::NET, true, "listen: the backlog argument, in decimal."),
    f("fd.name", T::Path, A::None, E::CALL, true, "File events: the file the call opened or changed, absolute inside the container: the opened file, the path of unlink/rmdir/mkdir/chmod/chown, the old path of rename/link, the link path of symlink (names that could not be resolved stay as given). Network events: a connection as `cip:cport->sip:sport` (the client is the side that connected: for accept the peer; `10.0.0.2:40000->10.0.0.1:80`, IPv6 without brackets as Falco writes it, `::1:40000->::1:80`), a bound or listening socket as `ip:port` (`0.0.0.0:8080`, `:::8080`); none for a socket with no address yet."),
    f("fd.directory", T::Path, A::None, E::FILE, true, "The directory part of fd.name."),
    f("fd.filename", T::String, A::None, E::FILE, true, "The last component of fd.name."),
    f("fd.typechar", T::String, A::None, E::CALL, true, "Type of the opened file: `f` regular file, `d` directory, `l` symlink, `p` pipe, `u` socket, `o` other; only when the kernel had the file (a successful open, fchmod, fchown). For a socket: `4` IPv4, `6` IPv6, `u` unix, `n` netlink; none for other families (AF_PACKET)."),
    f("fd.type", T::String, A::None, E::NET, true, "Type of the socket: `ipv4`, `ipv6` (an IPv6 socket whose ends are IPv4-mapped addresses is `ipv4`, as in Falco), `unix`, `netlink`; none for other families (AF_PACKET)."),
    f("fd.sockfamily", T::String, A::None, E::NET, true, "`ip` for an IPv4 or IPv6 socket, `unix` for a unix socket; none for other families."),
    f("fd.l4proto", T::String, A::None, E::NET, true, "Protocol of an IP socket: `tcp`, `udp`, `icmp` or `raw`."),
    f("fd.num", T::I64, A::None, E::CALL, true, "The fd: an open's result (negative errno when it failed), or fchmod/fchown's fd; for a network call the socket: the fd argument of connect/bind/listen/sendto/sendmsg, the new fd of socket and accept, the old fd of dup."),
    f("fd.cip", T::IpAddr, A::None, E::NET, true, "Client address of a connection (the side that connected)."),
    f("fd.sip", T::IpAddr, A::None, E::NET, true, "Server address of a connection (the side that accepted), or the address of a bound or listening socket."),
    f("fd.lip", T::IpAddr, A::None, E::NET, true, "Local address of a connection (this process's end)."),
    f("fd.rip", T::IpAddr, A::None, E::NET, true, "Remote address of a connection (the peer's end)."),
    f("fd.cip.name", T::String, A::None, E::NET, true, "DNS name of fd.cip: the question name (lower-cased, no trailing dot) of a DNS answer the container itself received that resolved to that address (directly or through CNAMEs), learnt passively from the answers (UDP only, not DNS over TCP; never a lookup by the agent); none when the container resolved no name to it."),
    f("fd.sip.name", T::String, A::None, E::NET, true, "DNS name of fd.sip, from the container's own DNS answers (see fd.cip.name)."),
    f("fd.lip.name", T::String, A::None, E::NET, true, "DNS name of fd.lip, from the container's own DNS answers (see fd.cip.name)."),
    f("fd.rip.name", T::String, A::None, E::NET, true, "DNS name of fd.rip, from the container's own DNS answers (see fd.cip.name)."),
    f("fd.cport", T::U64, A::None, E::NET, true, "Client port of a connection."),
    f("fd.sport", T::U64, A::None, E::NET, true, "Server port of a connection, or the port of a bound or listening socket."),
    f("fd.lport", T::U64, A::None, E::NET, true, "Local port of a connection."),
    f("fd.rport", T::U64, A::None, E::NET, true, "Remote port of a connection."),
    f("fd.ip", T::IpAddr, A::None, E::NET, true, "Either address of a connection (client or server), or a bound socket's address: `fd.ip = X` holds when either end is X, `fd.ip != X` when neither is.").either(),
    f("fd.port", T::U64, A::None, E::NET, true, "Either port of a connection (client or server), or a bound socket's port; compared like fd.ip.").either(),
    f("fd.net", T::IpNet, A::None, E::NET, true, "Either address of a connection, or a bound socket's address, compared with networks: `fd.net = \"10.0.0.0/8\"` holds when either end is in 10.0.0.0/8, `!=` when neither is.").either(),
    f("fd.cnet", T::IpNet, A::None, E::NET, true, "fd.cip compared with networks (`fd.cnet = \"10.0.0.0/8\"`)."),
    f("fd.snet", T::IpNet, A::None, E::NET, true, "fd.sip compared with networks."),
    f("fd.lnet", T::IpNet, A::None, E::NET, true, "fd.lip compared with networks."),
    f("fd.rnet", T::IpNet, A::None, E::NET, true, "fd.rip compared with networks."),
    f("fd.is_server", T::Bool, A::None, E::NET, true, "True when the process is the server end: a bound or listening socket, an accepted connection; false for a connect or a datagram sent."),
    f("fd.connected", T::Bool, A::None, E::NET, true, "True when the socket is connected: a successful connect (not one still in progress, EINPROGRESS), an accepted connection, a dup of a connected socket."),
    f("fd.name_changed", T::Bool, A::None, E::NET, true, "True when the event changed fd.name (Falco: the name after the event differs from the one before): a connect, accept or bind, and a datagram sent to a new peer (sendto/sendmsg are reported only for the first datagram to each peer of an unconnected socket); false for socket, listen and dup."),
    f("fd.is_upper_layer", T::Bool, A::None, E::FILE, true, "True when the file is in the container's overlayfs upper (writable) layer: created in the container or copied up (known when the kernel had the file)."),
    f("fd.is_lower_layer", T::Bool, A::None, E::FILE, true, "True when the file is an image (lower layer) file not copied up."),
    f("fd.layer", T::String, A::None, E::FILE, false, "Where the file is: upper (created in the container), copied-up (an image file copied to the writable layer), lower, writable-mount (a volume, tmpfs…), other; absent when unknown."),
    f("proc.name", T::String, A::None, E::ALL, true, "Process name: the kernel comm, at most 15 bytes."),
    f("proc.pname", T::String, A::None, E::ALL, true, "Name (comm) of the parent process."),
    f("proc.aname", T::String, A::IndexOrAll, E::ALL, true, "Name of an ancestor: `[0]` the process, `[1]` the parent, `[2]` the grandparent…; without an index, any ancestor (parent and up)."),
    f("proc.exe", T::String, A::None, E::ALL, true, "First command-line argument (argv[0])."),
    f("proc.exepath", T::Path, A::None, E::ALL, true, "Path of the executable file inside the container's root."),
    f("proc.cmdline", T::String, A::None, E::ALL, true, "proc.name followed by the arguments (argv[1..]), space separated."),
    f("proc.args", T::String, A::None, E::ALL, true, "The arguments argv[1..], space separated."),
    f("proc.pcmdline", T::String, A::None, E::ALL, true, "proc.cmdline of the parent process."),
    f("proc.cwd", T::Path, A::None, E::EXEC, true, "Working directory of the process inside the container's root (container tasks)."),
    f("proc.pid", T::U64, A::None, E::ALL, true, "Process id (thread-group id)."),
    f("proc.ppid", T::U64, A::None, E::ALL, true, "Parent process id."),
    f("proc.apid", T::U64, A::IndexOrAll, E::ALL, true, "Pid of an ancestor, indexed like proc.aname."),
    f("proc.tid", T::U64, A::None, E::ALL, false, "Thread id of the calling thread (Falco: thread.tid)."),
    f("thread.tid", T::U64, A::None, E::ALL, true, "Thread id of the calling thread."),
    f("proc.is_exe_upper_layer", T::Bool, A::None, E::EXEC, true, "True when the executable is in the container's overlayfs upper (writable) layer."),
    f("proc.is_exe_lower_layer", T::Bool, A::None, E::EXEC, true, "True when the executable is in an image (lower) layer."),
    f("proc.is_exe_from_memfd", T::Bool, A::None, E::EXEC, true, "True when the executable is a memfd_create file (fileless execution)."),
    f("proc.is_exe_writable", T::Bool, A::None, E::EXEC, true, "True when the executable file has a write permission bit set."),
    f("proc.exe_ino", T::U64, A::None, E::EXEC, true, "Inode number of the executable file."),
    f("proc.exe_ino.ctime", T::AbsTime, A::None, E::EXEC, true, "Last status change time of the executable file."),
    f("proc.exe_ino.mtime", T::AbsTime, A::None, E::EXEC, true, "Last modification time of the executable file."),
    f("proc.exe_origin", T::String, A::None, E::ALL, false, "Where the executed code came from: image, added, modified, copied-up-unchanged, writable-mount, memfd, anonymous, host or unknown."),
    f("proc.drifted", T::Bool, A::None, E::ALL, false, "The process ran code that is drift: its executable, a script it interprets or a file it mapped executable was drift, in this process or before the fork that made it (kept across exec: a dropped binary that execs an image program stays drifted)."),
    f("user.uid", T::U64, A::None, E::ALL, true, "Effective user id."),
    f("user.name", T::String, A::None, E::ALL, true, "Effective user name, from the container's /etc/passwd."),
    f("group.gid", T::U64, A::None, E::ALL, true, "Effective group id."),
    f("container.id", T::String, A::None, E::ALL, true, "Container id (12 characters), or `host`."),
    f("container.name", T::String, A::None, E::ALL, true, "Container name, or `host`."),
    f("container.kind", T::String, A::None, E::ALL, false, "What the container is to its pod: `app`, `init`, `ephemeral` (a `kubectl debug` container), `sandbox` or `unknown` (not a CRI container; `host` outside containers). Init containers cannot be told from app containers on the node: they are `app`."),
    f("container.image", T::String, A::None, E::ALL, true, "Image reference the container was created from."),
    f("container.image.repository", T::String, A::None, E::ALL, true, "Image repository."),
    f("container.image.tag", T::String, A::None, E::ALL, true, "Image tag."),
    f("container.image.digest", T::String, A::None, E::ALL, true, "Image digest (`sha256:…`)."),
    f("k8s.ns.name", T::String, A::None, E::ALL, true, "Kubernetes namespace of the pod (from CRI labels)."),
    f("k8s.pod.name", T::String, A::None, E::ALL, true, "Kubernetes pod name (from CRI labels)."),
    f("k8s.pod.uid", T::String, A::None, E::ALL, true, "Kubernetes pod uid (from CRI labels)."),
    f("drift.via", T::String, A::None, E::PROC, false, "How drifted code arrived: exec, shebang, interpreter, loader or mapping; absent when nothing drifted."),
    f("drift.path", T::Path, A::None, E::PROC, false, "The drifted file inside the container; absent when nothing drifted."),
    f("drift.origin", T::String, A::None, E::PROC, false, "Origin of the drifted file (values as proc.exe_origin)."),
    f("drift.image_copy_of", T::Path, A::None, E::PROC, false, "For a file copied from the image, the image path it is a copy of."),
    f("response.action", T::String, A::None, E::ALL, false, "What enforcement did: none, killed, killed-after-start, or denied (a connection refused in the kernel under network enforcement)."),
    f("net.workload", T::String, A::None, E::NET, false, "The workload whose network baseline judges this event: `k8s:<namespace>/<owner>/<container>` (the owner is the pod name without its controller's generated suffix) or `image:<repository>/<container>`."),
    f("net.activity", T::String, A::None, E::NET, false, "What the network baseline judged the event as: `listen` (a TCP listen, a UDP bind to a port, an accept, a datagram a UDP listener answers with) or `connect` (a connect, the first datagram to a new peer); none for other network events."),
    f("net.baseline", T::String, A::None, E::NET, false, "A listen, accept, connect or new datagram peer compared with the workload's network baseline: `learning` (the workload is still learning), `expected` (in the baseline, or loopback) or `unexpected`; none for other network events (socket, dup, a bind that is not a UDP listener) and when baselines are off."),
];

/// The field named `name`, if driftwatch provides it (a field of the table marked not
/// provided is not found: rules and outputs treat it as unknown).
#[must_use]
pub fn lookup(name: &str) -> Option<FieldId> {
    lookup_in(FIELDS, name)
}

/// [`lookup`] in `table`.
fn lookup_in(table: &[FieldDef], name: &str) -> Option<FieldId> {
    let (i, _) = table
        .iter()
        .enumerate()
        .find(|(_, d)| d.name == name)
        .filter(|(_, d)| d.provided)?;
    u16::try_from(i).ok().map(FieldId)
}

fn arg_text(d: &FieldDef) -> &'static str {
    match d.arg {
        ArgKind::None => "",
        ArgKind::Index => "[N]",
        ArgKind::IndexOrAll => "[N] (optional)",
    }
}

/// The table as aligned text columns (`driftwatch rules fields`).
#[must_use]
pub fn fields_text() -> String {
    text_of(FIELDS)
}

/// [`fields_text`] of `table`: the provided fields.
fn text_of(table: &[FieldDef]) -> String {
    let name_w = table
        .iter()
        .filter(|d| d.provided)
        .map(|d| d.name.len() + arg_text(d).len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:name_w$}  {:7}  {:19}  DESCRIPTION",
        "FIELD", "TYPE", "EVENTS"
    );
    for d in table.iter().filter(|d| d.provided) {
        let name = format!("{}{}", d.name, arg_text(d));
        let origin = if d.falco { "" } else { " (driftwatch)" };
        let _ = writeln!(
            out,
            "{name:name_w$}  {:7}  {:19}  {}{origin}",
            d.ty.as_str(),
            d.events.describe(),
            d.desc
        );
    }
    out
}

/// The table as the Markdown page `docs/fields.md` (`driftwatch rules fields --markdown`).
#[must_use]
pub fn fields_markdown() -> String {
    markdown_of(FIELDS)
}

/// [`fields_markdown`] of `table`: the provided fields.
fn markdown_of(table: &[FieldDef]) -> String {
    let mut out = String::from(
        "# Rule fields\n\n\
         <!-- Generated by `driftwatch rules fields --markdown`; do not edit. -->\n\n\
         Fields driftwatch provides to rule conditions and outputs. Names and meanings follow \
         Falco's where the fact is the same; fields marked *driftwatch* are driftwatch's own. \
         A rule that uses any other field is a load-time error (or, with `--skip-unknown` or \
         the rule's `skip-if-unknown-filter: true`, the rule is skipped with a warning; a field \
         used only in an output then prints `<NA>`). A \
         check on a field with no value for an event is false; outputs print `<NA>` for it and \
         JSON `output_fields` hold `null`.\n\n\
         | Field | Type | Argument | Events | Origin | Description |\n\
         |---|---|---|---|---|---|\n",
    );
    for d in table.iter().filter(|d| d.provided) {
        let arg = match d.arg {
            ArgKind::None => "",
            ArgKind::Index => "index",
            ArgKind::IndexOrAll => "index (optional)",
        };
        let origin = if d.falco { "Falco" } else { "driftwatch" };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            d.name,
            d.ty.as_str(),
            arg,
            d.events.describe(),
            origin,
            d.desc.replace('|', "\\|")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for (i, d) in FIELDS.iter().enumerate() {
            assert_eq!(
                FIELDS.iter().position(|e| e.name == d.name),
                Some(i),
                "{} is in the table twice",
                d.name
            );
            let found = d
                .provided
                .then(|| FieldId(u16::try_from(i).unwrap_or(u16::MAX)));
            assert_eq!(lookup(d.name), found, "{}", d.name);
        }
        assert_eq!(lookup("fd.nosuchfield"), None);
    }

    #[test]
    fn a_field_not_provided_is_not_found_nor_documented() {
        let table = [
            f("a.b", T::String, A::None, E::ALL, true, "provided"),
            f("c.d", T::String, A::None, E::ALL, true, "declared only").not_provided(),
        ];
        assert_eq!(lookup_in(&table, "a.b"), Some(FieldId(0)));
        assert_eq!(lookup_in(&table, "c.d"), None);
        assert_eq!(lookup_in(&table, "e.f"), None);
        assert!(markdown_of(&table).contains("| `a.b` |"));
        assert!(!markdown_of(&table).contains("c.d"));
        assert!(text_of(&table).contains("a.b "));
        assert!(!text_of(&table).contains("c.d"));
    }

    #[test]
    fn docs_page_is_generated_from_the_table() {
        assert_eq!(
            include_str!("../../../docs/fields.md"),
            fields_markdown(),
            "regenerate with: driftwatch rules fields --markdown > docs/fields.md"
        );
    }

    #[test]
    fn event_types_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str().as_bytes()), Some(t));
            assert_eq!(EventType::ALL[t.index()], t);
        }
        for op in FileOp::ALL {
            let t = EventType::File(op);
            assert_eq!(EventType::parse(op.as_str().as_bytes()), Some(t));
            assert_eq!(t.kind(), EventKind::File);
        }
        for op in NetOp::ALL {
            let t = EventType::Net(op);
            assert_eq!(EventType::parse(op.as_str().as_bytes()), Some(t));
            assert_eq!(t.kind(), EventKind::Net);
        }
        assert_eq!(
            EventType::ALL.len(),
            4 + FileOp::ALL.len() + NetOp::ALL.len()
        );
        assert!(EventType::ALL.len() <= 64, "the rule index masks are u64");
    }
}

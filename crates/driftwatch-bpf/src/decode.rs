//! Kernel records (driftwatch-abi) to events (driftwatch-event), with kernel boot time turned
//! into wall-clock time. The sensor's [`crate::EventStream`] hands out what this produces, so no
//! other crate sees a kernel record.

use std::net::SocketAddr;

use driftwatch_abi::{
    DecodeError, DnsRecord, ExecRecord, FileOpRecord, FileRecord, MapRecord, NetRecord, Record,
    TaskRecord,
};
use driftwatch_event::{
    ip_from_raw, DnsEvent, Event, ExeFile, ExecEvent, ExecFlags, ExitEvent, FileEvent, FileLayer,
    FileOp, ForkEvent, MapEvent, MapHow, NetEvent, NetOp, TaskInfo,
};
use rustix::time::{clock_gettime, ClockId};

/// Converts `bpf_ktime_get_boot_ns()` stamps to nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// realtime - boottime, in nanoseconds, measured once at start.
    offset_ns: i128,
}

impl Clock {
    pub fn new() -> Clock {
        let ns = |t: rustix::time::Timespec| {
            i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
        };
        let boot = ns(clock_gettime(ClockId::Boottime));
        let real = ns(clock_gettime(ClockId::Realtime));
        Clock {
            offset_ns: real - boot,
        }
    }

    pub fn wall_ns(&self, boot_ns: u64) -> u64 {
        u64::try_from(i128::from(boot_ns) + self.offset_ns).unwrap_or(0)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

fn task(t: &TaskRecord) -> TaskInfo {
    let comm_len = t.comm.iter().position(|b| *b == 0).unwrap_or(t.comm.len());
    TaskInfo {
        pid: t.pid,
        tgid: t.tgid,
        ppid: t.ppid,
        uid: t.uid,
        gid: t.gid,
        euid: t.euid,
        egid: t.egid,
        cgroup_id: t.cgroup_id,
        mntns: u64::from(t.mntns_ino),
        pidns: u64::from(t.pidns_ino),
        comm: driftwatch_event::text::lossy(&t.comm[..comm_len]),
        start_ns: t.start_ns,
    }
}

/// Join dentry-walk components (root first) into an absolute path.
fn join<'a>(components: impl Iterator<Item = &'a [u8]>, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity + 1);
    for c in components {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn file(f: &FileRecord) -> ExeFile {
    ExeFile {
        ino: f.ino,
        dev: f.dev,
        nlink: f.nlink,
        ctime_sec: f.ctime_sec,
        ctime_nsec: f.ctime_nsec,
        mtime_sec: f.mtime_sec,
        mtime_nsec: f.mtime_nsec,
        size: f.size,
        mode: f.mode,
        s_magic: f.s_magic,
    }
}

fn flags(has: impl Fn(u32) -> bool) -> ExecFlags {
    use driftwatch_abi as abi;
    ExecFlags {
        overlay_upper: has(abi::EXEC_F_OVL_UPPER),
        memfd: has(abi::EXEC_F_MEMFD),
        on_root_mount: has(abi::EXEC_F_ON_ROOT_MNT),
        path_truncated: has(abi::EXEC_F_PATH_TRUNCATED),
        path_outside_root: has(abi::EXEC_F_PATH_OUTSIDE_ROOT),
        argv_truncated: has(abi::EXEC_F_ARGV_TRUNCATED),
        filename_truncated: has(abi::EXEC_F_FILENAME_TRUNCATED),
        killed: has(abi::EXEC_F_KILLED),
        in_policy: has(abi::EXEC_F_IN_POLICY),
        script: has(abi::EXEC_F_SCRIPT),
        allowed: has(abi::EXEC_F_ALLOWED),
        doomed: has(abi::EXEC_F_DOOMED),
    }
}

fn map(r: &MapRecord<'_>, clock: &Clock) -> Result<MapEvent, DecodeError> {
    Ok(MapEvent {
        time_ns: clock.wall_ns(r.ktime_ns),
        task: task(&r.task),
        file: file(&r.file),
        flags: flags(|f| r.has(f)),
        prot: r.prot,
        how: MapHow::from_raw(r.how).ok_or(DecodeError::UnknownMapHow(r.how))?,
        path: join(r.path_components_root_first(), r.path_raw.len()),
    })
}

fn exec(r: &ExecRecord<'_>, clock: &Clock) -> ExecEvent {
    // Arguments are NUL-terminated; a missing final NUL means argv was truncated mid-argument.
    let raw = r.argv.strip_suffix(&[0]).unwrap_or(r.argv);
    let args = if r.argv.is_empty() {
        Vec::new()
    } else {
        raw.split(|b| *b == 0).map(<[u8]>::to_vec).collect()
    };
    let flags = flags(|f| r.has(f));
    ExecEvent {
        time_ns: clock.wall_ns(r.ktime_ns),
        task: task(&r.task),
        filename: r.filename.to_vec(),
        exepath: join(r.path_components_root_first(), r.path_raw.len()),
        args,
        exe: file(&r.exe()),
        flags,
        interp: if flags.script {
            r.interp.to_vec()
        } else {
            r.filename.to_vec()
        },
        // The kernel walks the working directory for container tasks only; an incomplete walk is
        // no working directory at all (a relative script path then stays unresolved).
        cwd: (!r.cwd_raw.is_empty()
            && !r.has(driftwatch_abi::EXEC_F_CWD_TRUNCATED)
            && !r.has(driftwatch_abi::EXEC_F_CWD_OUTSIDE_ROOT))
        .then(|| join(r.cwd_components_root_first(), r.cwd_raw.len())),
    }
}

/// Lexically normalised absolute path: `.` and empty components dropped, `..` removes the
/// previous component (never above `/`). Symlinks are not followed: `a/link/..` becomes `a`
/// even when `link` points elsewhere (the kernel resolved the directory part already; only the
/// name the caller gave is handled lexically).
pub fn normalize(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    join(parts.into_iter(), path.len())
}

/// A path argument made absolute: as given when it starts with `/`, else appended to its
/// directory (the dirfd's or working directory's walk). `None` when the directory is not known.
fn absolute<'a>(
    name: &[u8],
    dir: impl Iterator<Item = &'a [u8]>,
    dir_raw_len: usize,
    dir_ok: bool,
) -> Option<Vec<u8>> {
    if name.first() == Some(&b'/') {
        return Some(normalize(name));
    }
    if !dir_ok || dir_raw_len == 0 {
        return None;
    }
    let mut full = join(dir, dir_raw_len + name.len() + 1);
    full.push(b'/');
    full.extend_from_slice(name);
    Some(normalize(&full))
}

fn file_event(r: &FileOpRecord<'_>, clock: &Clock) -> Result<FileEvent, DecodeError> {
    use driftwatch_abi as abi;
    let op = FileOp::from_raw(r.op).ok_or(DecodeError::UnknownFileOp(r.op))?;
    let have_file = r.has(abi::FILE_F_HAVE_FILE);
    let dir1_ok = !r.has(abi::FILE_F_DIR1_INCOMPLETE);
    let dir2_ok = !r.has(abi::FILE_F_DIR2_INCOMPLETE);
    let kernel_path = have_file.then(|| join(r.path_components_root_first(), r.path_raw.len()));
    let name1 = absolute(
        r.name1,
        r.dir1_components_root_first(),
        r.dir1_raw.len(),
        dir1_ok,
    );
    let name2 =
        (!r.name2.is_empty() || op == FileOp::Symlink || op == FileOp::Symlinkat).then(|| {
            absolute(
                r.name2,
                r.dir2_components_root_first(),
                r.dir2_raw.len(),
                dir2_ok,
            )
        });
    let symlink = matches!(op, FileOp::Symlink | FileOp::Symlinkat);
    let mut resolved = !r.has(abi::FILE_F_NAME1_TRUNCATED) && !r.has(abi::FILE_F_NAME2_TRUNCATED);
    // fd.name: the opened file (kernel path), else the first path argument (the link path for
    // symlink, whose first argument is the target's text).
    let primary = if let Some(p) = kernel_path.clone().filter(|_| op.is_open()) {
        resolved &= !r.has(abi::FILE_F_PATH_TRUNCATED) && !r.has(abi::FILE_F_PATH_OUTSIDE_ROOT);
        p
    } else if symlink {
        match name2.clone().flatten() {
            Some(p) => p,
            None => {
                resolved = false;
                r.name2.to_vec()
            }
        }
    } else if let Some(p) = name1.clone() {
        p
    } else if let Some(p) = kernel_path.clone() {
        // fchmod / fchown: the fd's file.
        p
    } else {
        resolved = false;
        r.name1.to_vec()
    };
    let path2 = if symlink {
        None
    } else {
        name2.map(|p| {
            p.unwrap_or_else(|| {
                resolved = false;
                r.name2.to_vec()
            })
        })
    };
    let layer = have_file.then(|| {
        let upper = r.has(abi::FILE_F_OVL_UPPER);
        let lower = r.has(abi::FILE_F_OVL_LOWER);
        if !r.has(abi::FILE_F_ON_ROOT_MNT) {
            FileLayer::WritableMount
        } else if !r.has(abi::FILE_F_OVERLAY) {
            FileLayer::Other
        } else if upper && lower {
            FileLayer::CopiedUp
        } else if upper {
            FileLayer::Upper
        } else {
            FileLayer::Lower
        }
    });
    let has_mode = matches!(
        op,
        FileOp::Open
            | FileOp::Openat
            | FileOp::Openat2
            | FileOp::Creat
            | FileOp::Chmod
            | FileOp::Fchmod
            | FileOp::Fchmodat
            | FileOp::Mkdir
            | FileOp::Mkdirat
    );
    let has_owner = matches!(
        op,
        FileOp::Chown | FileOp::Fchown | FileOp::Lchown | FileOp::Fchownat
    );
    Ok(FileEvent {
        time_ns: clock.wall_ns(r.ktime_ns),
        task: task(&r.task),
        op,
        ret: r.ret,
        path: primary,
        path2,
        target: symlink.then(|| r.name1.to_vec()),
        resolved,
        flags: r.op_flags,
        mode: has_mode.then_some(r.mode),
        uid: has_owner.then_some(r.uid),
        gid: has_owner.then_some(r.gid),
        fd: if op.is_open() {
            Some(r.ret)
        } else {
            (r.fd >= 0).then_some(i64::from(r.fd))
        },
        file: have_file.then(|| file(&r.file)),
        layer,
    })
}

/// `SOCK_NONBLOCK | SOCK_CLOEXEC`: flags in socket's type argument, not the type.
const SOCK_TYPE_MASK: u32 = 0xf;

fn net_event(r: &NetRecord, clock: &Clock) -> Result<NetEvent, DecodeError> {
    use driftwatch_abi as abi;
    let op = NetOp::from_raw(r.op).ok_or(DecodeError::UnknownNetOp(r.op))?;
    let ok = r.ret >= 0;
    let addr =
        |raw: &[u8; 16], port: u16| ip_from_raw(r.family, raw).map(|ip| SocketAddr::new(ip, port));
    let have_sock = r.has(abi::NET_F_HAVE_SOCK);
    let remote_known = r.has(abi::NET_F_REMOTE_SOCK) || r.has(abi::NET_F_REMOTE_ARG);
    let fd = match op {
        // The new fd is the result.
        NetOp::Socket | NetOp::Accept | NetOp::Accept4 | NetOp::Dup | NetOp::Dup2 | NetOp::Dup3 => {
            ok.then_some(r.ret)
        }
        _ => (r.fd >= 0).then_some(i64::from(r.fd)),
    };
    let (sock_type, type_arg) = if op == NetOp::Socket {
        (
            u16::try_from(r.arg & SOCK_TYPE_MASK).unwrap_or(0),
            Some(r.arg),
        )
    } else {
        (r.sock_type, None)
    };
    Ok(NetEvent {
        time_ns: clock.wall_ns(r.ktime_ns),
        task: task(&r.task),
        op,
        ret: r.ret,
        fd,
        fd2: (r.fd2 >= 0).then_some(i64::from(r.fd2)),
        family: r.family,
        sock_type,
        protocol: r.protocol,
        type_arg,
        backlog: (op == NetOp::Listen).then_some(r.arg),
        call_flags: matches!(op, NetOp::Accept4 | NetOp::Dup3).then_some(r.arg),
        local: if have_sock {
            addr(&r.laddr, r.lport)
        } else {
            None
        },
        remote: if remote_known {
            addr(&r.raddr, r.rport)
        } else {
            None
        },
        remote_from_arg: r.has(abi::NET_F_REMOTE_ARG) && !r.has(abi::NET_F_REMOTE_SOCK),
        no_syscall: r.has(abi::NET_F_NO_SYSCALL),
        denied: r.has(abi::NET_F_DENIED),
        port_chosen: r.has(abi::NET_F_PORT_CHOSEN),
    })
}

fn dns_event(r: &DnsRecord<'_>, clock: &Clock) -> DnsEvent {
    DnsEvent {
        time_ns: clock.wall_ns(r.ktime_ns),
        cgroup_id: r.cgroup_id,
        server: ip_from_raw(r.family, &r.saddr).map(|ip| SocketAddr::new(ip, r.sport)),
        payload: r.payload.to_vec(),
        truncated: r.has(driftwatch_abi::DNS_F_TRUNCATED),
    }
}

/// Decode one ring-buffer record into an event.
pub fn decode(buf: &[u8], clock: &Clock) -> Result<Event, DecodeError> {
    Ok(match driftwatch_abi::decode(buf)? {
        Record::Exec(r) => Event::Exec(exec(&r, clock)),
        Record::Fork(r) => Event::Fork(ForkEvent {
            time_ns: clock.wall_ns(r.ktime_ns),
            child: task(&r.child),
        }),
        Record::Exit(r) => Event::Exit(ExitEvent {
            time_ns: clock.wall_ns(r.ktime_ns),
            task: task(&r.task),
            exit_code: r.exit_code,
        }),
        Record::Map(r) => Event::Map(map(&r, clock)?),
        Record::File(r) => Event::File(file_event(&r, clock)?),
        Record::Net(r) => Event::Net(net_event(&r, clock)?),
        Record::Dns(r) => Event::Dns(dns_event(&r, clock)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftwatch_abi::{FileEvent as Raw, FILE_EVENT_MIN_SIZE, FILE_EVENT_SIZE};

    fn net_raw(op: NetOp, f: impl FnOnce(&mut driftwatch_abi::NetEvent)) -> Vec<u8> {
        let mut ev = driftwatch_abi::NetEvent {
            op: op.raw(),
            fd2: -1,
            ..Default::default()
        };
        ev.hdr.kind = driftwatch_abi::DW_EV_NET;
        ev.hdr.version = driftwatch_abi::DW_ABI_VERSION;
        ev.hdr.len = driftwatch_abi::NET_EVENT_SIZE as u32;
        f(&mut ev);
        ev.to_bytes().to_vec()
    }

    #[test]
    fn net_records_become_net_events_with_socket_addresses() {
        use driftwatch_abi as abi;
        let buf = net_raw(NetOp::Connect, |e| {
            e.ret = -111;
            e.fd = 4;
            e.family = abi::AF_INET;
            e.sock_type = 1;
            e.protocol = 6;
            e.flags = abi::NET_F_HAVE_SOCK | abi::NET_F_REMOTE_ARG;
            e.laddr[..4].copy_from_slice(&[0, 0, 0, 0]);
            e.raddr[..4].copy_from_slice(&[127, 0, 0, 1]);
            e.rport = 9;
        });
        let Event::Net(n) = decode(&buf, &Clock::new()).expect("decodes") else {
            panic!("not a net event");
        };
        assert_eq!(
            (n.op, n.ret, n.fd, n.fd2),
            (NetOp::Connect, -111, Some(4), None)
        );
        assert_eq!(n.remote, Some("127.0.0.1:9".parse().unwrap()));
        assert!(n.remote_from_arg && !n.denied);
        assert_eq!(n.local, Some("0.0.0.0:0".parse().unwrap()));
        let buf = net_raw(NetOp::Connect, |e| {
            e.ret = -1;
            e.family = abi::AF_INET;
            e.flags = abi::NET_F_HAVE_SOCK | abi::NET_F_REMOTE_ARG | abi::NET_F_DENIED;
            e.task.tgid = 77;
            e.task.start_ns = 123_456_789;
        });
        let Event::Net(n) = decode(&buf, &Clock::new()).expect("decodes") else {
            panic!("not a net event");
        };
        assert!(n.denied, "DW_NET_F_DENIED decoded");
        assert_eq!((n.ret, n.task.tgid, n.task.start_ns), (-1, 77, 123_456_789));
        let buf = net_raw(NetOp::Socket, |e| {
            e.ret = 5;
            e.family = 17;
            e.arg = 3 | 0o4000; // SOCK_RAW | SOCK_NONBLOCK
            e.protocol = 0x300;
        });
        let Event::Net(n) = decode(&buf, &Clock::new()).expect("decodes") else {
            panic!("not a net event");
        };
        assert_eq!(
            (n.fd, n.sock_type, n.type_arg),
            (Some(5), 3, Some(3 | 0o4000))
        );
        assert_eq!((n.local, n.remote), (None, None));
        let buf = net_raw(NetOp::Listen, |e| {
            e.family = abi::AF_INET6;
            e.arg = 128;
            e.lport = 8080;
            e.flags = abi::NET_F_HAVE_SOCK;
        });
        let Event::Net(n) = decode(&buf, &Clock::new()).expect("decodes") else {
            panic!("not a net event");
        };
        assert_eq!(n.backlog, Some(128));
        assert_eq!(n.local, Some("[::]:8080".parse().unwrap()));
        assert_eq!(n.remote, None);
        let buf = net_raw(NetOp::Connect, |e| {
            e.fd = -1;
            e.family = abi::AF_INET6;
            e.flags = abi::NET_F_REMOTE_ARG | abi::NET_F_NO_SYSCALL;
            e.raddr[15] = 1;
            e.rport = 80;
        });
        let Event::Net(n) = decode(&buf, &Clock::new()).expect("decodes") else {
            panic!("not a net event");
        };
        assert!(n.no_syscall && n.remote_from_arg && !n.denied);
        assert_eq!((n.fd, n.local), (None, None));
        assert_eq!(n.remote, Some("[::1]:80".parse().unwrap()));
        assert_eq!(
            decode(&net_raw(NetOp::Listen, |e| e.op = 99), &Clock::new()),
            Err(DecodeError::UnknownNetOp(99))
        );
    }

    #[test]
    fn dns_records_become_dns_events_with_the_server_and_payload() {
        use driftwatch_abi as abi;
        let mut ev = abi::DnsEvent {
            cgroup_id: 7,
            family: abi::AF_INET6,
            sport: 53,
            dport: 40000,
            payload_len: 14,
            flags: abi::DNS_F_TRUNCATED,
            ..abi::DnsEvent::default()
        };
        ev.hdr.kind = abi::DW_EV_DNS;
        ev.hdr.version = abi::DW_ABI_VERSION;
        ev.hdr.len = (abi::DNS_EVENT_MIN_SIZE + 14) as u32;
        ev.saddr[15] = 1;
        ev.payload[..14].copy_from_slice(b"0123456789abcd");
        let bytes = ev.to_bytes();
        let Event::Dns(d) =
            decode(&bytes[..abi::DNS_EVENT_MIN_SIZE + 14], &Clock::new()).expect("decodes")
        else {
            panic!("not a DNS event");
        };
        assert_eq!(d.cgroup_id, 7);
        assert_eq!(d.server, Some("[::1]:53".parse().unwrap()));
        assert_eq!(d.payload, b"0123456789abcd");
        assert!(d.truncated);
    }

    #[test]
    fn normalize_is_lexical_and_never_above_root() {
        assert_eq!(normalize(b"/a//b/./c/../d"), b"/a/b/d");
        assert_eq!(normalize(b"/../../etc/x"), b"/etc/x");
        assert_eq!(normalize(b"/"), b"/");
        assert_eq!(normalize(b"/a/b/.."), b"/a");
        assert_eq!(normalize(b"/a\nb/\xff"), b"/a\nb/\xff");
    }

    fn raw(op: FileOp, f: impl FnOnce(&mut Raw)) -> Vec<u8> {
        let mut ev = Raw::zeroed();
        ev.op = op.raw();
        ev.fd = -1;
        f(&mut ev);
        let len = FILE_EVENT_MIN_SIZE
            + usize::from(ev.path_len)
            + usize::from(ev.name1_len)
            + usize::from(ev.dir1_len)
            + usize::from(ev.name2_len)
            + usize::from(ev.dir2_len);
        ev.hdr.kind = driftwatch_abi::DW_EV_FILE;
        ev.hdr.version = driftwatch_abi::DW_ABI_VERSION;
        ev.hdr.len = len as u32;
        let mut buf = vec![0u8; FILE_EVENT_SIZE];
        let n = ev.encode(&mut buf);
        buf.truncate(n);
        buf
    }

    fn set(dst: &mut [u8], len: &mut u16, v: &[u8]) {
        dst[..v.len()].copy_from_slice(v);
        *len = v.len() as u16;
    }

    #[test]
    fn relative_names_are_joined_to_their_directory() {
        let buf = raw(FileOp::Renameat, |e| {
            set(&mut e.name1, &mut e.name1_len, b"../x");
            set(&mut e.dir1, &mut e.dir1_len, b"d\0etc\0");
            set(&mut e.name2, &mut e.name2_len, b"/usr/bin/./y");
        });
        let Event::File(f) = decode(&buf, &Clock::new()).expect("decodes") else {
            panic!("not a file event");
        };
        assert_eq!(f.op.as_str(), "renameat");
        assert_eq!(f.path, b"/etc/x");
        assert_eq!(f.path2.as_deref(), Some(&b"/usr/bin/y"[..]));
        assert!(f.resolved);
        assert_eq!((f.mode, f.uid, f.fd), (None, None, None));
    }

    #[test]
    fn unknown_directory_keeps_the_name_and_says_so() {
        let buf = raw(FileOp::Unlinkat, |e| {
            set(&mut e.name1, &mut e.name1_len, b"x");
            e.flags = driftwatch_abi::FILE_F_DIR1_INCOMPLETE;
        });
        let Event::File(f) = decode(&buf, &Clock::new()).expect("decodes") else {
            panic!("not a file event");
        };
        assert_eq!(f.path, b"x");
        assert!(!f.resolved);
    }

    #[test]
    fn open_uses_the_kernel_path_and_layer() {
        use driftwatch_abi as abi;
        let buf = raw(FileOp::Openat, |e| {
            set(&mut e.path, &mut e.path_len, b"passwd\0etc\0");
            e.ret = 3;
            e.op_flags = 0o1101;
            e.flags = abi::FILE_F_HAVE_FILE
                | abi::FILE_F_OVERLAY
                | abi::FILE_F_OVL_UPPER
                | abi::FILE_F_OVL_LOWER
                | abi::FILE_F_ON_ROOT_MNT;
        });
        let Event::File(f) = decode(&buf, &Clock::new()).expect("decodes") else {
            panic!("not a file event");
        };
        assert_eq!(f.path, b"/etc/passwd");
        assert_eq!(f.layer, Some(FileLayer::CopiedUp));
        assert_eq!(f.fd, Some(3));
        assert!(f.is_open_write() && !f.is_open_read());
        let buf = raw(FileOp::Symlink, |e| {
            set(&mut e.name1, &mut e.name1_len, b"/etc/shadow");
            set(&mut e.name2, &mut e.name2_len, b"/tmp/l");
        });
        let Event::File(f) = decode(&buf, &Clock::new()).expect("decodes") else {
            panic!("not a file event");
        };
        assert_eq!(f.path, b"/tmp/l");
        assert_eq!(f.target.as_deref(), Some(&b"/etc/shadow"[..]));
        assert_eq!(f.path2, None);
    }
}

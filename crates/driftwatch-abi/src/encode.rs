//! Byte encoders for the ABI structs, in the exact layout the BPF programs write.
//!
//! Used by tests (here and in other crates) to build well-formed or deliberately broken records
//! without `unsafe` transmutes. Writes past the end of `out` are dropped, never a panic.

use core::mem::offset_of;

use crate::layout::{
    DnsEvent, EventHeader, ExecEvent, ExitEvent, FileEvent, FileId, ForkEvent, MapEvent, NetEvent,
    Task,
};
use crate::{
    DNS_EVENT_SIZE, EXEC_EVENT_SIZE, EXIT_EVENT_SIZE, FILE_EVENT_SIZE, FORK_EVENT_SIZE,
    MAP_EVENT_SIZE, NET_EVENT_SIZE,
};

struct Out<'a> {
    buf: &'a mut [u8],
    base: usize,
}

impl Out<'_> {
    fn put(&mut self, off: usize, bytes: &[u8]) {
        let start = self.base.saturating_add(off);
        let end = start.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(start..end) {
            dst.copy_from_slice(bytes);
        } else if let Some(dst) = self.buf.get_mut(start..) {
            // Partially fits: keep the prefix, drop the rest.
            let n = dst.len();
            dst.copy_from_slice(bytes.get(..n).unwrap_or_default());
        }
    }
    fn at(&mut self, base: usize) -> Out<'_> {
        Out {
            buf: self.buf,
            base: self.base.saturating_add(base),
        }
    }
}

fn put_header(out: &mut Out<'_>, h: &EventHeader) {
    out.put(offset_of!(EventHeader, kind), &h.kind.to_ne_bytes());
    out.put(offset_of!(EventHeader, version), &h.version.to_ne_bytes());
    out.put(offset_of!(EventHeader, len), &h.len.to_ne_bytes());
    out.put(offset_of!(EventHeader, ktime_ns), &h.ktime_ns.to_ne_bytes());
}

fn put_task(out: &mut Out<'_>, t: &Task) {
    out.put(offset_of!(Task, pid), &t.pid.to_ne_bytes());
    out.put(offset_of!(Task, tgid), &t.tgid.to_ne_bytes());
    out.put(offset_of!(Task, ppid), &t.ppid.to_ne_bytes());
    out.put(offset_of!(Task, uid), &t.uid.to_ne_bytes());
    out.put(offset_of!(Task, gid), &t.gid.to_ne_bytes());
    out.put(offset_of!(Task, euid), &t.euid.to_ne_bytes());
    out.put(offset_of!(Task, egid), &t.egid.to_ne_bytes());
    out.put(offset_of!(Task, mntns_ino), &t.mntns_ino.to_ne_bytes());
    out.put(offset_of!(Task, cgroup_id), &t.cgroup_id.to_ne_bytes());
    out.put(offset_of!(Task, pidns_ino), &t.pidns_ino.to_ne_bytes());
    out.put(offset_of!(Task, _pad0), &t._pad0.to_ne_bytes());
    out.put(offset_of!(Task, comm), &t.comm);
    out.put(offset_of!(Task, start_ns), &t.start_ns.to_ne_bytes());
}

fn put_file(out: &mut Out<'_>, f: &FileId) {
    out.put(offset_of!(FileId, ino), &f.ino.to_ne_bytes());
    out.put(offset_of!(FileId, ctime_sec), &f.ctime_sec.to_ne_bytes());
    out.put(offset_of!(FileId, mtime_sec), &f.mtime_sec.to_ne_bytes());
    out.put(offset_of!(FileId, ctime_nsec), &f.ctime_nsec.to_ne_bytes());
    out.put(offset_of!(FileId, mtime_nsec), &f.mtime_nsec.to_ne_bytes());
    out.put(offset_of!(FileId, dev), &f.dev.to_ne_bytes());
    out.put(offset_of!(FileId, nlink), &f.nlink.to_ne_bytes());
    out.put(offset_of!(FileId, size), &f.size.to_ne_bytes());
    out.put(offset_of!(FileId, s_magic), &f.s_magic.to_ne_bytes());
    out.put(offset_of!(FileId, mode), &f.mode.to_ne_bytes());
    out.put(offset_of!(FileId, _pad0), &f._pad0.to_ne_bytes());
}

/// The used prefix (`len` clamped to the array) of a variable-length array.
fn used(array: &[u8], len: u16) -> &[u8] {
    array.get(..usize::from(len)).unwrap_or(array)
}

impl ExecEvent {
    /// Writes the record as the BPF program emits it into `out` (truncated if `out` is
    /// shorter): the fixed part, then the used bytes of filename, path and argv packed one after
    /// the other. Returns `min(hdr.len, EXEC_EVENT_SIZE)`, the length a BPF program would emit.
    pub fn encode(&self, out: &mut [u8]) -> usize {
        let mut o = Out { buf: out, base: 0 };
        put_header(&mut o.at(offset_of!(ExecEvent, hdr)), &self.hdr);
        put_task(&mut o.at(offset_of!(ExecEvent, task)), &self.task);
        put_file(&mut o.at(offset_of!(ExecEvent, exe)), &self.exe);
        o.put(offset_of!(ExecEvent, flags), &self.flags.to_ne_bytes());
        o.put(offset_of!(ExecEvent, old_pid), &self.old_pid.to_ne_bytes());
        for (off, v) in [
            (offset_of!(ExecEvent, filename_len), self.filename_len),
            (offset_of!(ExecEvent, interp_len), self.interp_len),
            (offset_of!(ExecEvent, path_len), self.path_len),
            (offset_of!(ExecEvent, path_components), self.path_components),
            (offset_of!(ExecEvent, argv_len), self.argv_len),
            (offset_of!(ExecEvent, cwd_len), self.cwd_len),
            (offset_of!(ExecEvent, cwd_components), self.cwd_components),
            (offset_of!(ExecEvent, _pad1), self._pad1),
        ] {
            o.put(off, &v.to_ne_bytes());
        }
        // The wire format packs the used bytes of the arrays after the fixed part.
        let mut at = offset_of!(ExecEvent, filename);
        for part in [
            used(&self.filename, self.filename_len),
            used(&self.interp, self.interp_len),
            used(&self.path, self.path_len),
            used(&self.argv, self.argv_len),
            used(&self.cwd, self.cwd_len),
        ] {
            o.put(at, part);
            at += part.len();
        }
        usize::try_from(self.hdr.len).map_or(EXEC_EVENT_SIZE, |l| l.min(EXEC_EVENT_SIZE))
    }
}

impl MapEvent {
    /// Writes the record as the BPF program emits it into `out` (truncated if `out` is
    /// shorter): the fixed part, then the used bytes of path. Returns
    /// `min(hdr.len, MAP_EVENT_SIZE)`, the length a BPF program would emit.
    pub fn encode(&self, out: &mut [u8]) -> usize {
        let mut o = Out { buf: out, base: 0 };
        put_header(&mut o.at(offset_of!(MapEvent, hdr)), &self.hdr);
        put_task(&mut o.at(offset_of!(MapEvent, task)), &self.task);
        put_file(&mut o.at(offset_of!(MapEvent, file)), &self.file);
        o.put(offset_of!(MapEvent, flags), &self.flags.to_ne_bytes());
        o.put(offset_of!(MapEvent, prot), &self.prot.to_ne_bytes());
        o.put(
            offset_of!(MapEvent, map_flags),
            &self.map_flags.to_ne_bytes(),
        );
        o.put(offset_of!(MapEvent, how), &self.how.to_ne_bytes());
        o.put(offset_of!(MapEvent, path_len), &self.path_len.to_ne_bytes());
        o.put(
            offset_of!(MapEvent, path_components),
            &self.path_components.to_ne_bytes(),
        );
        o.put(offset_of!(MapEvent, _pad0), &self._pad0.to_ne_bytes());
        o.put(offset_of!(MapEvent, _pad1), &self._pad1.to_ne_bytes());
        o.put(offset_of!(MapEvent, addr), &self.addr.to_ne_bytes());
        o.put(offset_of!(MapEvent, len), &self.len.to_ne_bytes());
        o.put(offset_of!(MapEvent, off), &self.off.to_ne_bytes());
        o.put(offset_of!(MapEvent, path), used(&self.path, self.path_len));
        usize::try_from(self.hdr.len).map_or(MAP_EVENT_SIZE, |l| l.min(MAP_EVENT_SIZE))
    }
}

impl FileEvent {
    /// Writes the record as the BPF program emits it into `out` (truncated if `out` is
    /// shorter): the fixed part, then the used bytes of path, name1, dir1, name2 and dir2 packed
    /// one after the other. Returns `min(hdr.len, FILE_EVENT_SIZE)`.
    pub fn encode(&self, out: &mut [u8]) -> usize {
        let mut o = Out { buf: out, base: 0 };
        put_header(&mut o.at(offset_of!(FileEvent, hdr)), &self.hdr);
        put_task(&mut o.at(offset_of!(FileEvent, task)), &self.task);
        put_file(&mut o.at(offset_of!(FileEvent, file)), &self.file);
        o.put(offset_of!(FileEvent, ret), &self.ret.to_ne_bytes());
        for (off, v) in [
            (offset_of!(FileEvent, flags), self.flags),
            (offset_of!(FileEvent, op_flags), self.op_flags),
            (offset_of!(FileEvent, mode), self.mode),
            (offset_of!(FileEvent, uid), self.uid),
            (offset_of!(FileEvent, gid), self.gid),
            (offset_of!(FileEvent, _pad1), self._pad1),
        ] {
            o.put(off, &v.to_ne_bytes());
        }
        for (off, v) in [
            (offset_of!(FileEvent, fd), self.fd),
            (offset_of!(FileEvent, dirfd1), self.dirfd1),
            (offset_of!(FileEvent, dirfd2), self.dirfd2),
        ] {
            o.put(off, &v.to_ne_bytes());
        }
        for (off, v) in [
            (offset_of!(FileEvent, op), self.op),
            (offset_of!(FileEvent, path_len), self.path_len),
            (offset_of!(FileEvent, path_components), self.path_components),
            (offset_of!(FileEvent, name1_len), self.name1_len),
            (offset_of!(FileEvent, dir1_len), self.dir1_len),
            (offset_of!(FileEvent, dir1_components), self.dir1_components),
            (offset_of!(FileEvent, name2_len), self.name2_len),
            (offset_of!(FileEvent, dir2_len), self.dir2_len),
            (offset_of!(FileEvent, dir2_components), self.dir2_components),
            (offset_of!(FileEvent, _pad0), self._pad0),
        ] {
            o.put(off, &v.to_ne_bytes());
        }
        let mut at = offset_of!(FileEvent, path);
        for part in [
            used(&self.path, self.path_len),
            used(&self.name1, self.name1_len),
            used(&self.dir1, self.dir1_len),
            used(&self.name2, self.name2_len),
            used(&self.dir2, self.dir2_len),
        ] {
            o.put(at, part);
            at += part.len();
        }
        usize::try_from(self.hdr.len).map_or(FILE_EVENT_SIZE, |l| l.min(FILE_EVENT_SIZE))
    }
}

impl ForkEvent {
    /// The record's bytes.
    pub fn to_bytes(&self) -> [u8; FORK_EVENT_SIZE] {
        let mut buf = [0u8; FORK_EVENT_SIZE];
        let mut o = Out {
            buf: &mut buf,
            base: 0,
        };
        put_header(&mut o.at(offset_of!(ForkEvent, hdr)), &self.hdr);
        put_task(&mut o.at(offset_of!(ForkEvent, child)), &self.child);
        buf
    }
}

impl ExitEvent {
    /// The record's bytes.
    pub fn to_bytes(&self) -> [u8; EXIT_EVENT_SIZE] {
        let mut buf = [0u8; EXIT_EVENT_SIZE];
        let mut o = Out {
            buf: &mut buf,
            base: 0,
        };
        put_header(&mut o.at(offset_of!(ExitEvent, hdr)), &self.hdr);
        put_task(&mut o.at(offset_of!(ExitEvent, task)), &self.task);
        o.put(
            offset_of!(ExitEvent, exit_code),
            &self.exit_code.to_ne_bytes(),
        );
        o.put(offset_of!(ExitEvent, _pad0), &self._pad0.to_ne_bytes());
        buf
    }
}

impl NetEvent {
    /// The record's bytes.
    pub fn to_bytes(&self) -> [u8; NET_EVENT_SIZE] {
        let mut buf = [0u8; NET_EVENT_SIZE];
        let mut o = Out {
            buf: &mut buf,
            base: 0,
        };
        put_header(&mut o.at(offset_of!(NetEvent, hdr)), &self.hdr);
        put_task(&mut o.at(offset_of!(NetEvent, task)), &self.task);
        o.put(offset_of!(NetEvent, ret), &self.ret.to_ne_bytes());
        o.put(offset_of!(NetEvent, fd), &self.fd.to_ne_bytes());
        o.put(offset_of!(NetEvent, fd2), &self.fd2.to_ne_bytes());
        for (off, v) in [
            (offset_of!(NetEvent, op), self.op),
            (offset_of!(NetEvent, family), self.family),
            (offset_of!(NetEvent, sock_type), self.sock_type),
            (offset_of!(NetEvent, protocol), self.protocol),
            (offset_of!(NetEvent, lport), self.lport),
            (offset_of!(NetEvent, rport), self.rport),
        ] {
            o.put(off, &v.to_ne_bytes());
        }
        for (off, v) in [
            (offset_of!(NetEvent, flags), self.flags),
            (offset_of!(NetEvent, arg), self.arg),
            (offset_of!(NetEvent, _pad0), self._pad0),
        ] {
            o.put(off, &v.to_ne_bytes());
        }
        o.put(offset_of!(NetEvent, laddr), &self.laddr);
        o.put(offset_of!(NetEvent, raddr), &self.raddr);
        buf
    }
}

impl DnsEvent {
    /// The record's bytes, the whole struct (`hdr.len` says how much of the payload counts).
    pub fn to_bytes(&self) -> [u8; DNS_EVENT_SIZE] {
        let mut buf = [0u8; DNS_EVENT_SIZE];
        let mut o = Out {
            buf: &mut buf,
            base: 0,
        };
        put_header(&mut o.at(offset_of!(DnsEvent, hdr)), &self.hdr);
        o.put(
            offset_of!(DnsEvent, cgroup_id),
            &self.cgroup_id.to_ne_bytes(),
        );
        for (off, v) in [
            (offset_of!(DnsEvent, family), self.family),
            (offset_of!(DnsEvent, sport), self.sport),
            (offset_of!(DnsEvent, dport), self.dport),
            (offset_of!(DnsEvent, payload_len), self.payload_len),
        ] {
            o.put(off, &v.to_ne_bytes());
        }
        o.put(offset_of!(DnsEvent, flags), &self.flags.to_ne_bytes());
        o.put(offset_of!(DnsEvent, udp_len), &self.udp_len.to_ne_bytes());
        o.put(offset_of!(DnsEvent, saddr), &self.saddr);
        o.put(offset_of!(DnsEvent, daddr), &self.daddr);
        o.put(offset_of!(DnsEvent, payload), &self.payload);
        buf
    }
}

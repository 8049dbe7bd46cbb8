//! Kernel records (driftwatch-abi) to events (driftwatch-event), with kernel boot time turned
//! into wall-clock time.

use driftwatch_abi::{ExecRecord, FileRecord, MapRecord, Record, TaskRecord};
use driftwatch_event::{
    Event, ExeFile, ExecEvent, ExecFlags, ExitEvent, ForkEvent, MapEvent, MapHow, TaskInfo,
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
        comm: crate::text::lossy(&t.comm[..comm_len]),
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

fn map(r: &MapRecord<'_>, clock: &Clock) -> MapEvent {
    MapEvent {
        time_ns: clock.wall_ns(r.ktime_ns),
        task: task(&r.task),
        file: file(&r.file),
        flags: flags(|f| r.has(f)),
        prot: r.prot,
        how: match r.how {
            driftwatch_abi::MapHow::Mmap => MapHow::Mmap,
            driftwatch_abi::MapHow::Mprotect => MapHow::Mprotect,
        },
        path: join(r.path_components_root_first(), r.path_raw.len()),
    }
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

/// Decode one ring-buffer record into an event.
pub fn decode(buf: &[u8], clock: &Clock) -> Result<Event, driftwatch_abi::DecodeError> {
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
        Record::Map(r) => Event::Map(map(&r, clock)),
    })
}

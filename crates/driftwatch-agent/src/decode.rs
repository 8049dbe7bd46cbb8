//! Kernel records (driftwatch-abi) to events (driftwatch-event), with kernel boot time turned
//! into wall-clock time.

use driftwatch_abi::{ExecRecord, Record, TaskRecord};
use driftwatch_event::{Event, ExeFile, ExecEvent, ExecFlags, ExitEvent, ForkEvent, TaskInfo};
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

/// Join the dentry-walk components (root first) into an absolute path.
fn exepath(r: &ExecRecord<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.path_raw.len() + 1);
    for c in r.path_components_root_first() {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn exec(r: &ExecRecord<'_>, clock: &Clock) -> ExecEvent {
    use driftwatch_abi as abi;
    // Arguments are NUL-terminated; a missing final NUL means argv was truncated mid-argument.
    let raw = r.argv.strip_suffix(&[0]).unwrap_or(r.argv);
    let args = if r.argv.is_empty() {
        Vec::new()
    } else {
        raw.split(|b| *b == 0).map(<[u8]>::to_vec).collect()
    };
    ExecEvent {
        time_ns: clock.wall_ns(r.ktime_ns),
        task: task(&r.task),
        filename: r.filename.to_vec(),
        exepath: exepath(r),
        args,
        exe: ExeFile {
            ino: r.exe_ino,
            dev: r.exe_dev,
            nlink: r.exe_nlink,
            ctime_sec: r.exe_ctime_sec,
            ctime_nsec: r.exe_ctime_nsec,
            mtime_sec: r.exe_mtime_sec,
            mtime_nsec: r.exe_mtime_nsec,
            size: r.exe_size,
            mode: r.exe_mode,
            s_magic: r.exe_s_magic,
        },
        flags: ExecFlags {
            overlay_upper: r.has(abi::EXEC_F_OVL_UPPER),
            memfd: r.has(abi::EXEC_F_MEMFD),
            on_root_mount: r.has(abi::EXEC_F_ON_ROOT_MNT),
            path_truncated: r.has(abi::EXEC_F_PATH_TRUNCATED),
            path_outside_root: r.has(abi::EXEC_F_PATH_OUTSIDE_ROOT),
            argv_truncated: r.has(abi::EXEC_F_ARGV_TRUNCATED),
            filename_truncated: r.has(abi::EXEC_F_FILENAME_TRUNCATED),
            killed: r.has(abi::EXEC_F_KILLED),
            in_policy: r.has(abi::EXEC_F_IN_POLICY),
            script: false,
        },
        interp: Vec::new(),
        cwd: None,
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
    })
}

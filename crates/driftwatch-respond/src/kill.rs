//! The userspace kill: a drifted process the kernel could not stop before it ran (a container
//! not yet in the kernel policy, a script named past the kept arguments) is killed as soon as
//! its event is seen.

/// Sends SIGKILL to process `tgid`. `false` when there is no such process any more (it exited)
/// or the pid is not valid.
pub fn kill_process(tgid: u32) -> bool {
    let Some(pid) = i32::try_from(tgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).is_ok()
}

/// Why a verified kill was not sent.
#[derive(Debug, thiserror::Error)]
pub enum KillError {
    #[error("process {0} has exited")]
    Gone(u32),
    #[error(
        "pid {pid} is another process now (started {found_ms} ms after boot, not {expected_ms})"
    )]
    Reused {
        pid: u32,
        expected_ms: u64,
        found_ms: u64,
    },
    #[error("cannot signal process {pid}")]
    Signal {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot kill the processes of cgroup {path}")]
    Cgroup {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How far the start time read from `/proc/<pid>/stat` (10 ms ticks) may be from the one the
/// alert gives (converted from wall-clock to boot time): a PID reused within this long of the
/// first process's start is not told apart.
pub const START_TOLERANCE_NS: u64 = 30_000_000;

/// Nanoseconds from boot to the Unix epoch now (`CLOCK_REALTIME` − `CLOCK_BOOTTIME`): a wall
/// time minus this is a boot time.
pub fn boot_to_wall_offset_ns() -> u64 {
    let ns = |t: rustix::time::Timespec| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
    };
    let wall = ns(rustix::time::clock_gettime(rustix::time::ClockId::Realtime));
    let boot = ns(rustix::time::clock_gettime(rustix::time::ClockId::Boottime));
    wall.saturating_sub(boot)
}

/// The start of process `pid` after boot, ns (field 22 of `/proc/<pid>/stat`, in clock ticks
/// of 10 ms).
pub fn proc_start_boot_ns(proc_root: &std::path::Path, pid: u32) -> Option<u64> {
    driftwatch_runtime::procfs::read_stat(proc_root, pid)?.start_boot_ns
}

/// Sends SIGKILL to process `tgid` only while it is the process that started at
/// `start_wall_ns` (ns since the epoch, the alert's `proc.pid.ts`): a pidfd is opened first, then
/// the start time is checked, then the signal goes through the pidfd — a PID reused after the
/// check cannot receive it.
pub fn kill_verified(tgid: u32, start_wall_ns: u64) -> Result<(), KillError> {
    let pid = i32::try_from(tgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or(KillError::Gone(tgid))?;
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .map_err(|_| KillError::Gone(tgid))?;
    let expected = start_wall_ns.saturating_sub(boot_to_wall_offset_ns());
    let found =
        proc_start_boot_ns(std::path::Path::new("/proc"), tgid).ok_or(KillError::Gone(tgid))?;
    if found.abs_diff(expected) > START_TOLERANCE_NS {
        return Err(KillError::Reused {
            pid: tgid,
            expected_ms: expected / 1_000_000,
            found_ms: found / 1_000_000,
        });
    }
    rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL).map_err(|e| {
        if e == rustix::io::Errno::SRCH {
            KillError::Gone(tgid)
        } else {
            KillError::Signal {
                pid: tgid,
                source: e.into(),
            }
        }
    })
}

/// Kills every process of a cgroup v2 (`cgroup.kill`, Linux 5.14): the whole container task.
pub fn kill_cgroup(cgroup_dir: &std::path::Path) -> Result<(), KillError> {
    std::fs::write(cgroup_dir.join("cgroup.kill"), b"1").map_err(|source| KillError::Cgroup {
        path: cgroup_dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verified_kill_reaches_its_process_and_refuses_a_wrong_start_time() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = proc_start_boot_ns(std::path::Path::new("/proc"), pid).unwrap();
        let wall = start + boot_to_wall_offset_ns();
        // A start time one second off is another process that had the same PID.
        let e = kill_verified(pid, wall + 1_000_000_000).unwrap_err();
        assert!(matches!(e, KillError::Reused { .. }), "{e}");
        assert!(child.try_wait().unwrap().is_none(), "not signalled");
        kill_verified(pid, wall).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(matches!(kill_verified(pid, wall), Err(KillError::Gone(_))));
    }

    #[test]
    fn stat_with_a_hostile_command_name_parses() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("7")).unwrap();
        let fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        let stat = format!("7 (a) b) (c) {}\n", fields.join(" "));
        std::fs::write(dir.path().join("7/stat"), stat).unwrap();
        assert_eq!(proc_start_boot_ns(dir.path(), 7), Some(22 * 10_000_000));
    }
}

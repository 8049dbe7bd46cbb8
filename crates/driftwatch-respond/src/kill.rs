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

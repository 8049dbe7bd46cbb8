//! Acting on one container through containerd, for `driftwatch respond` and the playbook
//! engine: find it as the command line names it (the one resolver, shared with `diff`), pause it
//! (containerd's `Tasks.Pause`: the cgroup freezer), resume it, read its task's state, and tell
//! whether its cgroup is frozen.
//!
//! A [`Control`] keeps one connection for many calls; the free functions connect per call.

use crate::containerd::Containerd;
use crate::error::RuntimeError;
use crate::inspect::{find_container, InspectError};
use crate::procfs::ProcFs;
use containerd_client::services::v1::{ListTasksRequest, PauseTaskRequest, ResumeTaskRequest};
use containerd_client::types::v1::Status;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::Code;

/// The state of a container's task, as containerd reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Created,
    Running,
    Stopped,
    Paused,
    Pausing,
    Unknown,
}

impl TaskState {
    pub(crate) fn from_raw(status: i32) -> TaskState {
        match Status::try_from(status) {
            Ok(Status::Created) => TaskState::Created,
            Ok(Status::Running) => TaskState::Running,
            Ok(Status::Stopped) => TaskState::Stopped,
            Ok(Status::Paused) => TaskState::Paused,
            Ok(Status::Pausing) => TaskState::Pausing,
            _ => TaskState::Unknown,
        }
    }
}

impl TaskState {
    /// Whether the task's init process exists (created, running, paused or pausing).
    pub fn has_process(self) -> bool {
        matches!(
            self,
            TaskState::Created | TaskState::Running | TaskState::Paused | TaskState::Pausing
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Created => "created",
            TaskState::Running => "running",
            TaskState::Stopped => "stopped",
            TaskState::Paused => "paused",
            TaskState::Pausing => "pausing",
            TaskState::Unknown => "unknown",
        })
    }
}

/// What [`Control::apply`] does to a container's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskAction {
    /// containerd's `Tasks.Pause`: the cgroup freezer holds every process.
    Pause,
    /// containerd's `Tasks.Resume`: thaw.
    Resume,
}

/// A container found for an action: where it is and, when its task runs, its cgroup v2
/// directory and id (what isolation attaches to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub id: String,
    pub state: TaskState,
    /// Init pid of its task; `None` without a task.
    pub pid: Option<u32>,
    /// The cgroup v2 path (`/proc/<pid>/cgroup`'s `0::` line).
    pub cgroup_path: Option<String>,
    /// That path under the cgroup v2 mount.
    pub cgroup_dir: Option<PathBuf>,
    /// The cgroup v2 id (the directory's inode).
    pub cgroup_id: Option<u64>,
}

/// Why an action on a container failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No container, or several, match the name given.
    #[error(transparent)]
    Find(#[from] InspectError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The container or its task went away (before or during the call).
    #[error("container {namespace}/{id} is gone (no such container or task any more)")]
    Gone { namespace: String, id: String },
    /// The task is not in a state the action applies to.
    #[error("container {namespace}/{id} cannot be {action}: its task is {state}")]
    WrongState {
        namespace: String,
        id: String,
        action: &'static str,
        state: TaskState,
    },
}

/// A containerd connection for actions on containers.
#[derive(Debug, Clone)]
pub struct Control {
    cd: Containerd,
    proc: ProcFs,
}

impl Control {
    /// Connects to containerd at `socket`; each call then waits at most `timeout`.
    pub async fn connect(socket: &Path, timeout: Duration) -> Result<Control, RuntimeError> {
        Ok(Control {
            cd: Containerd::connect(socket, timeout, timeout).await?,
            proc: ProcFs::new("/proc", None),
        })
    }

    /// Finds the container `query` names (an id, a unique id prefix or a name; in `namespace`
    /// or in every namespace) and, when its task has a process, its cgroup.
    pub async fn locate(
        &self,
        namespace: Option<&str>,
        query: &str,
    ) -> Result<Target, ControlError> {
        let (ns, c) = find_container(&self.cd, namespace, query).await?;
        let task = self.cd.task(&ns, &c.id).await?;
        let mut t = Target {
            namespace: ns,
            id: c.id,
            state: task
                .as_ref()
                .map_or(TaskState::Stopped, |p| TaskState::from_raw(p.status)),
            pid: None,
            cgroup_path: None,
            cgroup_dir: None,
            cgroup_id: None,
        };
        // A stopped task keeps its pid, which another process may have by now.
        let Some(pid) = task
            .map(|p| p.pid)
            .filter(|&p| p != 0 && t.state.has_process())
        else {
            return Ok(t);
        };
        t.pid = Some(pid);
        self.fill_cgroup(&mut t, pid);
        Ok(t)
    }

    /// Every container with a task in every namespace, with its cgroup (to name the container
    /// an isolated cgroup belongs to).
    pub async fn running(&self) -> Result<Vec<Target>, ControlError> {
        let mut out = Vec::new();
        for ns in self.cd.namespaces().await? {
            let req = Containerd::request(&ns, ListTasksRequest::default())?;
            let tasks = self
                .cd
                .call("tasks.list", self.cd.client().tasks().list(req))
                .await?;
            for t in tasks.tasks {
                // containerd 1.6 fills only `id` (= container id for init processes).
                let id = if t.container_id.is_empty() {
                    t.id
                } else {
                    t.container_id
                };
                let mut target = Target {
                    namespace: ns.clone(),
                    id,
                    state: TaskState::from_raw(t.status),
                    pid: (t.pid != 0).then_some(t.pid),
                    cgroup_path: None,
                    cgroup_dir: None,
                    cgroup_id: None,
                };
                if let Some(pid) = target.pid.filter(|_| target.state.has_process()) {
                    self.fill_cgroup(&mut target, pid);
                }
                out.push(target);
            }
        }
        Ok(out)
    }

    fn fill_cgroup(&self, t: &mut Target, pid: u32) {
        // A process that exits now leaves the cgroup facts empty.
        if let Ok(Some(path)) = self.proc.cgroup_path(pid) {
            if let Some(mount) = self.proc.cgroup2_mount() {
                t.cgroup_dir = Some(crate::cgroup::cgroup_dir(mount, &path));
            }
            t.cgroup_id = self.proc.cgroup_id(&path);
            t.cgroup_path = Some(path);
        }
    }

    /// The state of the task of container `id` in `namespace`.
    pub async fn task_state(&self, namespace: &str, id: &str) -> Result<TaskState, ControlError> {
        match self.cd.task(namespace, id).await? {
            Some(p) => Ok(TaskState::from_raw(p.status)),
            None => Err(gone(namespace, id)),
        }
    }

    /// Freezes every process of the container (containerd's pause: the cgroup freezer). A
    /// paused container stays paused; a task that is not running is an error. The state after.
    pub async fn pause(&self, namespace: &str, id: &str) -> Result<TaskState, ControlError> {
        self.apply(namespace, id, TaskAction::Pause).await
    }

    /// Thaws a paused container; a running one stays running. The state after.
    pub async fn resume(&self, namespace: &str, id: &str) -> Result<TaskState, ControlError> {
        self.apply(namespace, id, TaskAction::Resume).await
    }

    /// Pauses or resumes; the state after.
    pub async fn apply(
        &self,
        namespace: &str,
        id: &str,
        action: TaskAction,
    ) -> Result<TaskState, ControlError> {
        let (done, verb) = match action {
            TaskAction::Pause => (TaskState::Paused, "paused"),
            TaskAction::Resume => (TaskState::Running, "resumed"),
        };
        match self.task_state(namespace, id).await? {
            s if s == done => return Ok(done),
            TaskState::Running | TaskState::Paused | TaskState::Pausing => {}
            state => return Err(wrong_state(namespace, id, verb, state)),
        }
        let container_id = id.to_owned();
        let mut tasks = self.cd.client().tasks();
        match action {
            TaskAction::Pause => {
                let req = Containerd::request(namespace, PauseTaskRequest { container_id })?;
                self.act("tasks.pause", namespace, id, tasks.pause(req))
                    .await?;
            }
            TaskAction::Resume => {
                let req = Containerd::request(namespace, ResumeTaskRequest { container_id })?;
                self.act("tasks.resume", namespace, id, tasks.resume(req))
                    .await?;
            }
        }
        self.task_state(namespace, id).await
    }

    async fn act<T>(
        &self,
        call: &'static str,
        namespace: &str,
        id: &str,
        fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ControlError> {
        match self.cd.call(call, fut).await {
            Ok(v) => Ok(v),
            Err(RuntimeError::Call { source, .. }) if source.code() == Code::NotFound => {
                Err(gone(namespace, id))
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn gone(namespace: &str, id: &str) -> ControlError {
    ControlError::Gone {
        namespace: namespace.to_owned(),
        id: id.to_owned(),
    }
}

fn wrong_state(namespace: &str, id: &str, action: &'static str, state: TaskState) -> ControlError {
    ControlError::WrongState {
        namespace: namespace.to_owned(),
        id: id.to_owned(),
        action,
        state,
    }
}

/// Pauses or resumes container `id` of `namespace` over a connection of its own (see
/// [`Control::apply`]); the state after.
pub async fn apply(
    socket: &Path,
    timeout: Duration,
    namespace: &str,
    id: &str,
    action: TaskAction,
) -> Result<TaskState, ControlError> {
    Control::connect(socket, timeout)
        .await?
        .apply(namespace, id, action)
        .await
}

/// Whether the freezer holds the cgroup of process `pid`: cgroup v2's `cgroup.events`
/// (`frozen 1`) when the process has no v1 freezer, else the v1 freezer's `freezer.state`
/// (`FROZEN`; a hybrid layout, where runc uses the v1 freezer); a root cgroup is never frozen.
/// `None` when neither is readable (the process is gone).
pub fn frozen(pid: u32) -> Option<bool> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let v1 = cgroups.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        controllers
            .split(',')
            .any(|c| c == "freezer")
            .then(|| path.to_owned())
    });
    // A root cgroup is never frozen (and has neither file).
    if let Some(path) = v1 {
        if path == "/" {
            return Some(false);
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let mount = crate::mountinfo::cgroup1_mount(&mountinfo, "freezer")?;
        let state =
            std::fs::read_to_string(crate::cgroup::cgroup_dir(&mount, &path).join("freezer.state"))
                .ok()?;
        return Some(state.trim() == "FROZEN");
    }
    let path = crate::cgroup::unified_path(&cgroups)?;
    if path == "/" {
        return Some(false);
    }
    let proc = ProcFs::new("/proc", None);
    let dir = crate::cgroup::cgroup_dir(proc.cgroup2_mount()?, path);
    let events = std::fs::read_to_string(dir.join("cgroup.events")).ok()?;
    Some(events.lines().any(|l| l.trim() == "frozen 1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_states_from_containerd() {
        assert_eq!(
            TaskState::from_raw(Status::Paused as i32),
            TaskState::Paused
        );
        assert_eq!(
            TaskState::from_raw(Status::Running as i32),
            TaskState::Running
        );
        assert_eq!(TaskState::from_raw(99), TaskState::Unknown);
        assert_eq!(TaskState::Pausing.to_string(), "pausing");
    }

    #[test]
    fn our_own_cgroup_is_not_frozen_and_a_missing_process_has_no_answer() {
        assert_eq!(frozen(std::process::id()), Some(false));
        assert_eq!(frozen(u32::MAX - 1), None);
    }
}

//! Enrichment: an event gets its container, its process ancestry and its user name; drifted code
//! becomes an [`Arrival`] (how the code got into the process, which file, its origin).

use crate::proctable::{ProcEntry, ProcessTable};
use crate::users::UserNames;
use driftwatch_event::{ContainerInfo, ExeFile, ExeOrigin, ExecFlags, TaskInfo, HOST_CONTAINER_ID};
use driftwatch_origin::Verdict;
use std::sync::Arc;

/// How code that is not in the image got into a process (`drift.via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The process executes the file itself (`execve`/`execveat`).
    Exec,
    /// The kernel ran a `#!` script through its interpreter.
    Shebang,
    /// An interpreter was given the file as its program (`python3 /tmp/x.py`).
    Interpreter,
    /// The dynamic loader mapped the file (`ld-linux-x86-64.so.2 /tmp/x`).
    Loader,
    /// The file was mapped executable by other means (`dlopen`, `LD_PRELOAD`, a custom loader).
    Mapping,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Exec => "exec",
            Via::Shebang => "shebang",
            Via::Interpreter => "interpreter",
            Via::Loader => "loader",
            Via::Mapping => "mapping",
        }
    }
}

/// Drifted code reaching a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub via: Via,
    /// The drifted file's path inside the container.
    pub path: Vec<u8>,
    pub verdict: Verdict,
}

/// The process side of an alert.
#[derive(Debug, Clone)]
pub struct AlertCtx {
    pub time_ns: u64,
    /// Falco's `evt.type`.
    pub evt_type: &'static str,
    pub task: TaskInfo,
    /// `None` on the host.
    pub container: Option<Arc<ContainerInfo>>,
    pub process: ProcEntry,
    pub parent: Option<ProcEntry>,
    pub user_name: Option<String>,
    /// The executable's kernel facts, when the event is the exec itself.
    pub exe: Option<(ExeFile, ExecFlags)>,
}

impl AlertCtx {
    pub fn container_id(&self) -> &str {
        self.container
            .as_deref()
            .map_or(HOST_CONTAINER_ID, |c| c.id.as_str())
    }

    /// The origin of the process's executable, as last decided.
    pub fn exe_origin(&self) -> Option<ExeOrigin> {
        self.process.exe_origin
    }
}

/// Build the process context of an event for `task`; the process table is up to date.
pub fn alert_ctx(
    time_ns: u64,
    evt_type: &'static str,
    task: &TaskInfo,
    container: Option<Arc<ContainerInfo>>,
    exe: Option<(ExeFile, ExecFlags)>,
    table: &ProcessTable,
    users: &mut UserNames,
) -> AlertCtx {
    let process = table.get(task.tgid).cloned().unwrap_or_else(|| ProcEntry {
        tgid: task.tgid,
        ppid: task.ppid,
        comm: Arc::from(task.comm.as_str()),
        ..ProcEntry::default()
    });
    let parent = table.get(task.ppid).cloned();
    let root_key = container
        .as_deref()
        .map_or(HOST_CONTAINER_ID, |c| c.id.as_str());
    // The container's init process shares the root and outlives the event's process.
    let init = container.as_deref().and_then(|c| c.init_pid);
    let pids = [init.unwrap_or(task.tgid), task.tgid];
    let user_name = users.name(root_key, &pids, task.euid);
    AlertCtx {
        time_ns,
        evt_type,
        task: task.clone(),
        container,
        process,
        parent,
        user_name,
        exe,
    }
}

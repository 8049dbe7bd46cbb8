//! driftwatch's responders: what the agent does about drift besides reporting it.
//!
//! * [`approvals`]: approved drift (the approvals file and the rule allow-lists): not alerted,
//!   not killed — the container left out of the enforce policy, the file allowed by the gate.
//! * [`capture`]: the `capture` action: an evidence bundle of a container (alert, identity,
//!   runtime spec, `diff --json`, process tree, sockets, drifted files, a hashed and optionally
//!   signed manifest).
//! * [`config`]: the `[response]` section of the agent's configuration.
//! * [`gate`]: the exec gate (`--enforce`): holds each exec of a file on a tracked container's
//!   writable root until its verdict is in the kernel (copied-up-unchanged image files are
//!   allowed, drift is killed by the BPF program).
//! * [`isolate`]: network isolation of a container at the node (pinned cgroup programs, a TTL
//!   the kernel honours), made and undone by the CLI (`driftwatch respond`) or the agent;
//!   pausing a container is `driftwatch_runtime::control`.
//! * [`kill`]: the userspace kill of a drifted process the kernel could not stop first.
//! * [`playbook`]: the playbooks file (`--response FILE`): which alerts start which actions, in
//!   which mode, with which guards, and the plan of what an alert would make the agent do.
//! * [`kube`]: the Kubernetes actions (quarantine label, deny-all NetworkPolicy, eviction),
//!   tested against API-reference fixtures (no API server here).
//! * [`net`]: network enforcement: the kernel's allowed peers of each container, from its
//!   workload's network baseline, and the processes that ran drifted code.
//!
//! Architecture invariant: every action of the agent here can only be triggered under
//! `--enforce`, and every failure leaves the kernel policy alone: the gate can only let *more*
//! run, and only files it proved to hold the image's bytes; network enforcement fails open
//! (links owned by the agent, never pinned). Isolation is the one pinned action: it is asked
//! for explicitly (the CLI, a playbook) and lasts until released or its TTL ends.
#![forbid(unsafe_code)]

pub mod approvals;
pub mod capture;
pub mod config;
pub mod gate;
pub mod incident;
pub mod isolate;
pub mod kill;
pub mod kube;
pub mod metrics;
pub mod net;
pub mod playbook;
mod yaml;
pub use yaml::YamlFileError;

pub use approvals::{Approval, Approvals, ApprovalsError, PathGlob};
pub use config::ResponseConfig;
pub use gate::{ExecGate, GateError, GateMetrics};
pub use metrics::ResponseMetrics;
pub use net::NetEnforcer;
pub use playbook::{Mode, PlaybookError, Playbooks};

//! Approved drift in the processor: one decision for the alerts and for enforcement.
//!
//! The approvals file (`--approvals`, `[response] approvals`) and the rules' drift allow-lists
//! (`drift_allowed_paths`, `drift_allowed_images`, `known_init_containers`, with the user's
//! overrides) are one [`Approvals`]. What it approves is neither alerted as drift nor killed:
//!
//! * a whole container (entries with container matchers only) is put in the kernel policy
//!   without `POLICY_F_ENFORCE` (tracked, never killed), and enforced within a second of the
//!   entry's expiry;
//! * a file (path glob, path prefix, SHA-256) is allowed by the exec gate (`dw_allow`) and its
//!   arrival is not evaluated as drift here (no alert, no userspace kill, no drifted mark).
//!
//! The drift rule's exception values on the image repository, the container name and
//! `drift.path` (`=`, `startswith`) are approvals too. What is not told to the kernel:
//! `user_known_drift_activities` (an arbitrary condition) and exceptions on other fields are
//! evaluated by the rules after the fact; they silence the rule but cannot stop a kernel kill,
//! which is then reported by the agent's own `Drifted Code Killed` alert.

use crate::processor::Processor;
use crate::rules::AllowLists;
use driftwatch_event::ContainerInfo;
use driftwatch_respond::{Approval, Approvals, ApprovalsError};
use std::path::Path;

/// The approvals file (if any) and the rule allow-lists.
pub(crate) fn load(file: Option<&Path>, lists: &AllowLists) -> Result<Approvals, ApprovalsError> {
    let mut a = match file {
        Some(p) => Approvals::from_file(p)?,
        None => Approvals::none(),
    };
    let from_file = a.len();
    a.add_rule_lists(&lists.paths, &lists.images, &lists.init_containers);
    for e in &lists.exceptions {
        a.push(Approval {
            reason: format!(
                "rules: exception {} of {}",
                e.name,
                crate::rules::DRIFT_RULE
            ),
            origin: format!("rules exception {}", e.name),
            image: e.image.clone(),
            container: e.container.clone(),
            path_starts: e.path_starts.as_ref().map(|p| p.as_bytes().to_vec()),
            path_is: e.path_is.as_ref().map(|p| p.as_bytes().to_vec()),
            ..Approval::default()
        });
    }
    if lists.exceptions_not_enforceable > 0 {
        tracing::info!(
            values = lists.exceptions_not_enforceable,
            "values of the drift rule's exceptions on other fields silence the rule only: under --enforce those execs are still killed (and alerted as Drifted Code Killed)"
        );
    }
    if !a.is_empty() {
        tracing::info!(
            file = from_file,
            rules = a.len() - from_file,
            "approvals loaded: approved drift is neither alerted nor killed"
        );
    }
    Ok(a)
}

/// Now, in seconds since the epoch.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Processor {
    /// The kernel policy flags of a container: tracked, and enforced under `--enforce` unless an
    /// approval covers the whole container.
    pub(crate) fn policy_flags(&self, info: &ContainerInfo) -> u32 {
        let mut flags = driftwatch_abi::POLICY_F_TRACKED;
        if !self.kernel.enforce {
            return flags;
        }
        match self.kernel.approvals.container(info, now_secs()) {
            Some(a) => {
                tracing::info!(container = %info.id, reason = %a.reason, origin = %a.origin, "container approved: drift in it is not killed");
            }
            None => flags |= driftwatch_abi::POLICY_F_ENFORCE,
        }
        flags
    }

    /// Approved drift: the file at container path `path` of `c`, or `c` as a whole.
    pub(crate) fn approved(&self, c: &ContainerInfo, path: &[u8]) -> bool {
        let now = now_secs();
        let a = &self.kernel.approvals;
        if a.is_empty() {
            return false;
        }
        a.container(c, now).is_some() || a.file_in_container(c, path, now).is_some()
    }

    /// Under `--enforce`, containers left out of enforcement by an approval that has expired
    /// since are enforced (once a second).
    pub(crate) fn expire_container_approvals(&mut self) {
        if !self.kernel.enforce || self.kernel.approvals.is_empty() {
            return;
        }
        let unenforced: Vec<(u64, u32)> = self
            .kernel
            .policed
            .iter()
            .filter(|(_, f)| *f & driftwatch_abi::POLICY_F_ENFORCE == 0)
            .map(|(c, f)| (*c, *f))
            .collect();
        let now = now_secs();
        for (cg, flags) in unenforced {
            let Some(info) = self.enrich.registry.by_cgroup(cg) else {
                continue;
            };
            if self.kernel.approvals.container(&info, now).is_some() {
                continue;
            }
            let flags = flags | driftwatch_abi::POLICY_F_ENFORCE;
            match self.kernel.sensor.set_policy(cg, flags) {
                Ok(()) => {
                    self.kernel.policed.insert(cg, flags);
                    tracing::info!(container = %info.id, "container approval expired: drift in it is killed");
                }
                Err(e) => {
                    tracing::warn!(container = %info.id, error = %e, "cannot write the kernel policy")
                }
            }
        }
    }
}

//! Configuration of container discovery (the agent's `[runtime]` section).

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Where container metadata comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceMode {
    /// containerd when reachable at start, else /proc.
    #[default]
    Auto,
    /// containerd only: `start` fails when it is not reachable.
    Containerd,
    /// /proc only.
    Proc,
}

/// Settings for [`crate::start`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    pub source: SourceMode,
    /// containerd gRPC socket.
    pub containerd_socket: PathBuf,
    /// How long to wait for the first containerd connection before falling back.
    pub connect_timeout_ms: u64,
    /// Per-call timeout for containerd requests.
    pub call_timeout_ms: u64,
    /// Reconnect backoff after the event stream breaks: first and largest delay.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// Re-scan period of the /proc fallback.
    pub proc_rescan_ms: u64,
    /// procfs mount (`/proc`; the host's, so the agent needs hostPID).
    pub proc_root: PathBuf,
    /// cgroup2 mount point; found in mountinfo when unset.
    pub cgroup2_mount: Option<PathBuf>,
    /// Capacity of the update channel.
    pub update_capacity: usize,
    /// How long an unknown cgroup id whose path names no container stays a cached miss.
    pub negative_ttl_ms: u64,
    /// How long a cgroup id whose path names a container containerd did not know yet stays a
    /// cached miss (short: the container is probably being created).
    pub pending_negative_ttl_ms: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            source: SourceMode::Auto,
            containerd_socket: PathBuf::from("/run/containerd/containerd.sock"),
            connect_timeout_ms: 2_000,
            call_timeout_ms: 5_000,
            reconnect_min_ms: 250,
            reconnect_max_ms: 10_000,
            proc_rescan_ms: 2_000,
            proc_root: PathBuf::from("/proc"),
            cgroup2_mount: None,
            update_capacity: 1024,
            negative_ttl_ms: 60_000,
            pending_negative_ttl_ms: 500,
        }
    }
}

impl RuntimeConfig {
    pub(crate) fn dur(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let c: RuntimeConfig =
            serde_json::from_str(r#"{"source":"proc","proc_rescan_ms":500}"#).unwrap();
        assert_eq!(c.source, SourceMode::Proc);
        assert_eq!(c.proc_rescan_ms, 500);
        assert_eq!(
            c.containerd_socket,
            RuntimeConfig::default().containerd_socket
        );
        assert!(serde_json::from_str::<RuntimeConfig>(r#"{"sokcet":"/x"}"#).is_err());
    }
}

//! The `[response]` section of the agent's configuration (this crate owns it).

use serde::Deserialize;
use std::path::PathBuf;

/// Where incidents are kept by default.
pub const DEFAULT_INCIDENTS_FILE: &str = "/var/lib/driftwatch/incidents.jsonl";
/// Where evidence bundles go by default.
pub const DEFAULT_EVIDENCE_DIR: &str = "/var/lib/driftwatch/evidence";

/// `[response]`: what the agent does about drift besides reporting it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    /// The approvals file (`--approvals FILE`): approved drift is neither alerted nor killed.
    pub approvals: Option<PathBuf>,
    /// The playbooks file (`--response FILE`): which alerts start which actions.
    pub file: Option<PathBuf>,
    /// Evidence bundles of the `capture` action.
    pub evidence_dir: PathBuf,
    /// Bundles kept at most (the oldest are removed).
    pub evidence_max_bundles: usize,
    /// Bytes per bundle at most.
    pub evidence_max_bytes: u64,
    /// Bytes copied per drifted file at most.
    pub evidence_max_file_bytes: u64,
    /// An ed25519 secret key (64 hex digits) that signs each bundle's manifest.
    pub evidence_signing_key: Option<PathBuf>,
    /// The incidents, one JSON line per change, read back at start.
    pub incidents_file: PathBuf,
    /// Alerts waiting for the responder at most (past it they are counted in
    /// `driftwatch_response_dropped_alerts_total` and logged; the alerts themselves still go
    /// to the outputs).
    pub queue: usize,
    /// The Kubernetes API for the `label`, `networkpolicy` and `evict` actions.
    pub kubernetes: KubernetesConfig,
}

/// `[response.kubernetes]`: how the agent reaches the API server. The pod's service account is
/// used when the agent runs in a cluster (`in_cluster`, the default); else `kubeconfig`, else
/// `api_server` with `token_file` and `ca_file`. Without any, the Kubernetes actions fail with
/// a clear reason.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    pub in_cluster: bool,
    pub kubeconfig: Option<PathBuf>,
    pub api_server: Option<String>,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            in_cluster: true,
            kubeconfig: None,
            api_server: None,
            token_file: None,
            ca_file: None,
        }
    }
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            approvals: None,
            file: None,
            evidence_dir: PathBuf::from(DEFAULT_EVIDENCE_DIR),
            evidence_max_bundles: 50,
            evidence_max_bytes: 512 << 20,
            evidence_max_file_bytes: 64 << 20,
            evidence_signing_key: None,
            incidents_file: PathBuf::from(DEFAULT_INCIDENTS_FILE),
            queue: 1024,
            kubernetes: KubernetesConfig::default(),
        }
    }
}

impl ResponseConfig {
    /// Every problem of the section, as `response.<key>: <what is wrong>`.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (key, path) in [
            ("approvals", self.approvals.as_ref()),
            ("file", self.file.as_ref()),
            ("evidence_signing_key", self.evidence_signing_key.as_ref()),
            ("evidence_dir", Some(&self.evidence_dir)),
            ("incidents_file", Some(&self.incidents_file)),
        ] {
            if path.is_some_and(|a| a.as_os_str().is_empty()) {
                p.push(format!("response.{key}: must not be empty"));
            }
        }
        if self.evidence_max_bundles == 0 {
            p.push("response.evidence_max_bundles: must be at least 1".into());
        }
        if self.evidence_max_bytes < 1 << 20 {
            p.push("response.evidence_max_bytes: must be at least 1048576 (1 MiB)".into());
        }
        if let Some(s) = &self.kubernetes.api_server {
            if !(s.starts_with("https://")
                || s.starts_with("http://127.")
                || s.starts_with("http://[::1]")
                || s.starts_with("http://localhost"))
            {
                p.push(format!("response.kubernetes.api_server: {s:?} must be https:// (plain http only on loopback)"));
            }
        }
        if self.queue == 0 {
            p.push("response.queue: must be at least 1".into());
        }
        p
    }

    /// The capture bounds.
    pub fn capture_limits(&self) -> crate::capture::CaptureLimits {
        crate::capture::CaptureLimits {
            max_bundles: self.evidence_max_bundles,
            max_bytes: self.evidence_max_bytes,
            max_file_bytes: self.evidence_max_file_bytes,
        }
    }
}

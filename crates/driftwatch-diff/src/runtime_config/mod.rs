//! Configuration drift: the container's effective runtime configuration (the OCI runtime spec
//! containerd holds) against the image configuration, runtime defaults and an optional
//! baseline (a saved `diff --json` report or a Kubernetes pod spec, JSON or YAML).
//!
//! One job per file, everything public re-exported here:
//! * `spec.rs`: the runtime side, [`RuntimeSummary`] read from an OCI runtime spec, and what
//!   the runtime grants by default;
//! * `image.rs`: the image side, [`ImageConfig`] and [`resolve_user`];
//! * `baseline.rs`: the approved configuration, [`Baseline`] read from a saved report or a pod
//!   spec;
//! * `compare.rs`: [`compare()`], one function per compared aspect, and [`etc_file_finding`];
//! * `risk.rs`: how much a capability, an environment variable, a host mount or a file under
//!   `/etc` matters.

mod baseline;
mod compare;
mod image;
mod risk;
mod spec;

pub use baseline::Baseline;
pub use compare::{compare, etc_file_finding};
pub use image::{resolve_user, ImageConfig};
pub use spec::{MountSummary, RuntimeSummary, DEFAULT_CAPS};

use serde_json::Value;
use std::collections::BTreeMap;

/// The strings of a JSON array (nothing for anything else).
fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `KEY=value` strings as a map (a bare `KEY` has an empty value).
fn env_map(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.clone(), String::new()),
        })
        .collect()
}

/// The runtime spec the tests of every part read: root, CAP_SYS_ADMIN with all devices, the
/// host network, `/` mounted read-write and a read-only data mount.
#[cfg(test)]
const TEST_SPEC: &str = r#"{"process":{"user":{"uid":0,"gid":0},"args":["sh"],"env":["PATH=/bin","LD_PRELOAD=/tmp/x.so"],
      "capabilities":{"bounding":["CAP_CHOWN","CAP_SYS_ADMIN"],"effective":["CAP_CHOWN","CAP_SYS_ADMIN"]},"noNewPrivileges":false},
      "root":{"path":"rootfs","readonly":false},
      "mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/host","type":"bind","source":"/","options":["rbind","rw"]},
                {"destination":"/data","type":"bind","source":"/srv/data","options":["rbind","ro"]}],
      "linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"}],
               "resources":{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"access":"rwm"}]}}}"#;

/// The pod spec the tests read as a baseline: read-only root, no privilege escalation, every
/// capability dropped but `NET_BIND_SERVICE`.
#[cfg(test)]
const TEST_POD: &[u8] = b"apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: app\n    securityContext:\n      readOnlyRootFilesystem: true\n      allowPrivilegeEscalation: false\n      capabilities:\n        drop: [ALL]\n        add: [NET_BIND_SERVICE]\n";

//! The runtime side: the container's effective configuration read from its OCI runtime spec
//! (`config.json`), normalised into a [`RuntimeSummary`] (also what a saved report stores), and
//! what the runtime sets up by itself.

use super::{env_map, strs};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The capabilities containerd, Docker and CRI grant by default.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A mount of the container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MountSummary {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub read_only: bool,
}

/// The effective runtime configuration (what a saved report stores for later comparison).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeSummary {
    pub env: BTreeMap<String, String>,
    pub args: Vec<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Effective ∪ bounding capabilities.
    pub capabilities: BTreeSet<String>,
    pub privileged: bool,
    /// All devices allowed by the device cgroup.
    pub all_devices: bool,
    pub readonly_rootfs: bool,
    /// Namespaces shared with the host (absent from the spec): `pid`, `network`, `ipc`, `uts`,
    /// `mount`.
    pub host_namespaces: BTreeSet<String>,
    pub mounts: Vec<MountSummary>,
    pub seccomp: bool,
    pub apparmor_profile: Option<String>,
    pub no_new_privileges: bool,
}

/// Where the runtime mounts its own filesystems and files.
pub(super) const DEFAULT_MOUNT_DESTS: &[&str] = &[
    "/proc",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/sys",
    "/sys/fs/cgroup",
    "/run",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/dev/termination-log",
];

impl RuntimeSummary {
    /// From an OCI runtime spec (`config.json`).
    pub fn from_spec(json: &[u8]) -> Result<RuntimeSummary, serde_json::Error> {
        let v: Value = serde_json::from_slice(json)?;
        let p = &v["process"];
        let linux = &v["linux"];
        let capabilities = spec_capabilities(&p["capabilities"]);
        let all_devices = spec_all_devices(&linux["resources"]["devices"]);
        let privileged = capabilities.contains("CAP_SYS_ADMIN") && all_devices;
        Ok(RuntimeSummary {
            env: env_map(&strs(&p["env"])),
            args: strs(&p["args"]),
            uid: p["user"]["uid"]
                .as_u64()
                .and_then(|u| u32::try_from(u).ok()),
            gid: p["user"]["gid"]
                .as_u64()
                .and_then(|u| u32::try_from(u).ok()),
            capabilities,
            privileged,
            all_devices,
            readonly_rootfs: v["root"]["readonly"].as_bool().unwrap_or(false),
            host_namespaces: spec_host_namespaces(&linux["namespaces"]),
            mounts: spec_mounts(&v["mounts"]),
            seccomp: !linux["seccomp"].is_null(),
            apparmor_profile: p["apparmorProfile"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            no_new_privileges: p["noNewPrivileges"].as_bool().unwrap_or(false),
        })
    }

    /// Bind mounts (host paths) other than the runtime's own files.
    pub fn host_mounts(&self) -> impl Iterator<Item = &MountSummary> {
        self.mounts
            .iter()
            .filter(|m| m.kind == "bind" || m.kind.is_empty() && m.source.starts_with('/'))
    }
}

/// Bounding ∪ effective ∪ permitted (`process.capabilities`).
fn spec_capabilities(caps: &Value) -> BTreeSet<String> {
    let mut capabilities = BTreeSet::new();
    for set in ["bounding", "effective", "permitted"] {
        capabilities.extend(strs(&caps[set]));
    }
    capabilities
}

/// Whether the device cgroup (`linux.resources.devices`) allows every device: an allow rule
/// of type `a` (or none) without major or minor.
fn spec_all_devices(devices: &Value) -> bool {
    devices.as_array().is_some_and(|devs| {
        devs.iter().any(|d| {
            d["allow"].as_bool() == Some(true)
                && d["type"].as_str().is_none_or(|t| t == "a")
                && d["major"].is_null()
                && d["minor"].is_null()
        })
    })
}

/// The namespaces missing from `linux.namespaces`, so shared with the host.
fn spec_host_namespaces(namespaces: &Value) -> BTreeSet<String> {
    let present: BTreeSet<String> = namespaces
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["type"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ["pid", "network", "ipc", "uts", "mount"]
        .iter()
        .filter(|n| !present.contains(**n))
        .map(|n| (*n).to_owned())
        .collect()
}

/// The `mounts` of the spec (read-only when the options have `ro`).
fn spec_mounts(mounts: &Value) -> Vec<MountSummary> {
    mounts
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    let opts = strs(&m["options"]);
                    MountSummary {
                        destination: m["destination"].as_str().unwrap_or("").to_owned(),
                        kind: m["type"].as_str().unwrap_or("").to_owned(),
                        source: m["source"].as_str().unwrap_or("").to_owned(),
                        read_only: opts.iter().any(|o| o == "ro"),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_summary() {
        let rt = RuntimeSummary::from_spec(super::super::TEST_SPEC.as_bytes()).unwrap();
        assert!(rt.privileged);
        assert!(rt.host_namespaces.contains("network"));
        assert_eq!(rt.host_mounts().count(), 2);
    }
}

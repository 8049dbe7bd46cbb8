use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `container.id` of processes that are not in a container, as in Falco.
pub const HOST_CONTAINER_ID: &str = "host";

/// The overlay filesystem behind a container's rootfs, as host paths.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OverlayLayers {
    /// Lower directories, topmost first (the order of overlayfs' `lowerdir=` option).
    pub lowerdirs: Vec<PathBuf>,
    pub upperdir: Option<PathBuf>,
    pub workdir: Option<PathBuf>,
}

/// What a container is to its pod (`container.kind`): told from the CRI annotations and labels
/// the node sees (see `driftwatch-runtime`'s `cri.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerKind {
    /// One of a pod's `containers`.
    App,
    /// One of a pod's `initContainers`.
    Init,
    /// An ephemeral (debug) container (`kubectl debug`).
    Ephemeral,
    /// A pod's sandbox (pause) container.
    Sandbox,
    /// Not known (not a Kubernetes container, or discovered from /proc).
    #[default]
    Unknown,
}

impl ContainerKind {
    /// The name rules and approvals use: `app`, `init`, `ephemeral`, `sandbox`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerKind::App => "app",
            ContainerKind::Init => "init",
            ContainerKind::Ephemeral => "ephemeral",
            ContainerKind::Sandbox => "sandbox",
            ContainerKind::Unknown => "unknown",
        }
    }

    /// The kind named `s` (as [`ContainerKind::as_str`] writes it).
    pub fn parse(s: &str) -> Option<ContainerKind> {
        [
            ContainerKind::App,
            ContainerKind::Init,
            ContainerKind::Ephemeral,
            ContainerKind::Sandbox,
            ContainerKind::Unknown,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Everything the agent knows about one container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Full container id (containerd id; 64 hex chars for Docker/CRI).
    pub id: String,
    /// `io.kubernetes.container.name` when present, else the id.
    pub name: String,
    /// containerd namespace (`default`, `k8s.io`, `moby`, ...); empty when discovered from /proc.
    pub namespace: String,
    /// Image reference as containerd knows it (`docker.io/library/busybox:1.36`).
    pub image_ref: String,
    /// Repository part of the reference (`docker.io/library/busybox`).
    pub image_repository: String,
    /// Tag part of the reference (`1.36`), empty when the reference has none.
    pub image_tag: String,
    /// Manifest digest (`sha256:...`) when known.
    pub image_digest: Option<String>,
    /// The listening ports the image declares (`ExposedPorts` of its config: `8080/tcp`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// `io.kubernetes.pod.name`, `.namespace`, `.uid` CRI labels.
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    pub pod_uid: Option<String>,
    /// App, init, ephemeral or sandbox container of its pod (`container.kind`).
    #[serde(default)]
    pub kind: ContainerKind,
    /// Host pid of the task's init process, when running.
    pub init_pid: Option<u32>,
    /// cgroup path from the runtime spec (`/default/<id>`), when known.
    pub cgroup_path: Option<String>,
    /// cgroup v2 id (inode number of the cgroup2 directory), when known.
    pub cgroup_id: Option<u64>,
    /// Mount namespace inode of the init process, when known.
    pub mntns: Option<u64>,
    /// Overlay layers of the rootfs, when the rootfs is an overlay.
    pub rootfs: Option<OverlayLayers>,
}

impl ContainerInfo {
    /// Split an image reference into (repository, tag) the way Falco shows them. A digest
    /// reference (`repo@sha256:...`) has an empty tag.
    pub fn split_image_ref(reference: &str) -> (String, String) {
        let without_digest = reference.split('@').next().unwrap_or(reference);
        // A ':' after the last '/' separates the tag; one before it is a registry port.
        let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
        match without_digest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (
                    without_digest[..at].to_string(),
                    without_digest[at + 1..].to_string(),
                )
            }
            None => (without_digest.to_string(), String::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_image_ref_handles_ports_tags_and_digests() {
        assert_eq!(
            ContainerInfo::split_image_ref("docker.io/library/busybox:1.36"),
            ("docker.io/library/busybox".into(), "1.36".into())
        );
        assert_eq!(
            ContainerInfo::split_image_ref("localhost:5000/app"),
            ("localhost:5000/app".into(), String::new())
        );
        assert_eq!(
            ContainerInfo::split_image_ref("localhost:5000/app:v2@sha256:abcd"),
            ("localhost:5000/app".into(), "v2".into())
        );
        assert_eq!(
            ContainerInfo::split_image_ref("app@sha256:abcd"),
            ("app".into(), String::new())
        );
    }
}

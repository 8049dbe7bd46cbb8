//! The few parts of an OCI runtime spec (`config.json`, stored by containerd as the JSON value
//! of a `prost_types::Any`) that driftwatch uses. Everything is optional and unknown fields are
//! ignored, so specs from any runtime version parse.

use serde::Deserialize;
use std::collections::BTreeMap;

/// What driftwatch takes from a runtime spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecSummary {
    /// `linux.cgroupsPath` as written (`/default/<id>` or `slice:prefix:name`).
    pub cgroups_path: Option<String>,
    /// `linux.cgroupsPath` as a cgroupfs path (systemd form expanded).
    pub cgroup_fs_path: Option<String>,
    /// `root.readonly`.
    pub readonly_rootfs: bool,
    /// `root.path` (usually `rootfs`, relative to the bundle).
    pub root_path: Option<String>,
    /// `process.args`.
    pub args: Vec<String>,
    /// `annotations` (CRI puts sandbox and container metadata here).
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSpec {
    root: Option<RawRoot>,
    process: Option<RawProcess>,
    linux: Option<RawLinux>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawRoot {
    path: Option<String>,
    readonly: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawProcess {
    args: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawLinux {
    #[serde(rename = "cgroupsPath")]
    cgroups_path: Option<String>,
}

/// Parse the spec JSON. Returns the error for the caller to log; a container with an
/// unreadable spec is still reported (without these facts).
pub fn parse(json: &[u8]) -> Result<SpecSummary, serde_json::Error> {
    let raw: RawSpec = serde_json::from_slice(json)?;
    let cgroups_path = raw
        .linux
        .and_then(|l| l.cgroups_path)
        .filter(|p| !p.is_empty());
    let cgroup_fs_path = cgroups_path
        .as_deref()
        .and_then(crate::cgroup::spec_cgroups_path_to_fs);
    let (root_path, readonly_rootfs) = raw
        .root
        .map(|r| (r.path, r.readonly.unwrap_or(false)))
        .unwrap_or_default();
    Ok(SpecSummary {
        cgroups_path,
        cgroup_fs_path,
        readonly_rootfs,
        root_path,
        args: raw.process.and_then(|p| p.args).unwrap_or_default(),
        annotations: raw.annotations.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cgroupfs_spec() {
        let json = br#"{"ociVersion":"1.0.2","process":{"args":["/bin/sh","-c","sleep 1"],"cwd":"/"},
            "root":{"path":"rootfs","readonly":true},
            "linux":{"cgroupsPath":"/default/web","namespaces":[{"type":"pid"}],"resources":{"devices":[]}},
            "annotations":{"io.kubernetes.cri.container-type":"container"},
            "unknownField":{"x":[1,2,3]}}"#;
        let s = parse(json).unwrap();
        assert_eq!(s.cgroups_path.as_deref(), Some("/default/web"));
        assert_eq!(s.cgroup_fs_path.as_deref(), Some("/default/web"));
        assert!(s.readonly_rootfs);
        assert_eq!(s.root_path.as_deref(), Some("rootfs"));
        assert_eq!(s.args, ["/bin/sh", "-c", "sleep 1"]);
        assert_eq!(
            s.annotations["io.kubernetes.cri.container-type"],
            "container"
        );
    }

    #[test]
    fn parses_systemd_spec() {
        let json = br#"{"linux":{"cgroupsPath":"kubepods-pod1.slice:cri-containerd:abc"}}"#;
        let s = parse(json).unwrap();
        assert_eq!(
            s.cgroup_fs_path.as_deref(),
            Some("/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope")
        );
        assert!(!s.readonly_rootfs);
    }

    #[test]
    fn minimal_null_and_broken_specs() {
        assert_eq!(parse(b"{}").unwrap(), SpecSummary::default());
        let s = parse(br#"{"root":null,"linux":{"cgroupsPath":""},"annotations":null}"#).unwrap();
        assert_eq!(s, SpecSummary::default());
        assert!(parse(b"not json").is_err());
        assert!(parse(br#"{"linux":{"cgroupsPath":7}}"#).is_err());
    }
}

//! The approved configuration: a [`Baseline`] read from a saved `driftwatch diff --json`
//! report or from a Kubernetes pod spec (a Pod, a workload's pod template or a bare pod spec).

use super::spec::{RuntimeSummary, DEFAULT_CAPS};
use super::strs;
use crate::error::DiffError;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// What a baseline says the container should look like (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    /// Where it came from: `report` or `pod-spec`.
    pub kind: &'static str,
    pub env: Option<BTreeMap<String, String>>,
    pub args: Option<Vec<String>>,
    pub uid: Option<u32>,
    pub run_as_non_root: bool,
    pub capabilities: Option<BTreeSet<String>>,
    pub privileged: Option<bool>,
    pub readonly_rootfs: Option<bool>,
    pub host_namespaces: Option<BTreeSet<String>>,
    /// Host mounts: destination → source.
    pub host_mounts: Option<BTreeMap<String, String>>,
    pub no_new_privileges: Option<bool>,
    pub seccomp: Option<bool>,
    /// File entries of a saved report (path → change), to tell new drift from known drift.
    pub files: Option<BTreeSet<String>>,
}

impl Baseline {
    /// Parse a baseline file (JSON or YAML): a saved `driftwatch diff --json` report, a Pod,
    /// a workload with a pod template, or a bare pod spec. `container` picks the container of
    /// a pod (default: the only one, or the first).
    pub fn parse(
        path: &std::path::Path,
        bytes: &[u8],
        container: Option<&str>,
    ) -> Result<Baseline, DiffError> {
        let err = |reason: String| DiffError::Baseline {
            path: path.to_path_buf(),
            reason,
        };
        let v: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(_) => serde_yaml::from_slice(bytes)
                .map_err(|e| err(format!("neither JSON nor YAML: {e}")))?,
        };
        if let Some(rt) = v.get("runtime").filter(|r| r.is_object()) {
            return Baseline::from_report(rt, &v["files"]).map_err(err);
        }
        let spec = if v["spec"]["template"]["spec"].is_object() {
            &v["spec"]["template"]["spec"]
        } else if v["spec"]["containers"].is_array() {
            &v["spec"]
        } else if v["containers"].is_array() {
            &v
        } else {
            return Err(err(
                "not a driftwatch report (no `runtime`) nor a pod spec (no `containers`)".into(),
            ));
        };
        Baseline::from_pod_spec(spec, container).map_err(err)
    }

    /// From the `runtime` and `files` sections of a saved report: everything it recorded.
    fn from_report(rt: &Value, files: &Value) -> Result<Baseline, String> {
        let s: RuntimeSummary =
            serde_json::from_value(rt.clone()).map_err(|e| format!("bad runtime section: {e}"))?;
        let files = files.as_array().map(|a| {
            a.iter()
                .filter_map(|f| f["path"].as_str().map(str::to_owned))
                .collect()
        });
        Ok(Baseline {
            kind: "report",
            env: Some(s.env.clone()),
            args: Some(s.args.clone()),
            uid: s.uid,
            run_as_non_root: false,
            capabilities: Some(s.capabilities.clone()),
            privileged: Some(s.privileged),
            readonly_rootfs: Some(s.readonly_rootfs),
            host_namespaces: Some(s.host_namespaces.clone()),
            host_mounts: Some(
                s.host_mounts()
                    .map(|m| (m.destination.clone(), m.source.clone()))
                    .collect(),
            ),
            no_new_privileges: Some(s.no_new_privileges),
            seccomp: Some(s.seccomp),
            files,
        })
    }

    /// From a pod spec, for the container named `container` (default: the first): its security
    /// context over the pod's, host namespaces and host paths, env and command.
    fn from_pod_spec(spec: &Value, container: Option<&str>) -> Result<Baseline, String> {
        let containers = spec["containers"].as_array().cloned().unwrap_or_default();
        let c = match container {
            Some(name) => containers.iter().find(|c| c["name"].as_str() == Some(name)),
            None => containers.first(),
        }
        .ok_or_else(|| format!("no container {:?} in the pod spec", container.unwrap_or("")))?;
        let psc = &spec["securityContext"];
        let sc = &c["securityContext"];
        let pick = |k: &str| if sc[k].is_null() { &psc[k] } else { &sc[k] };
        let privileged = sc["privileged"].as_bool().unwrap_or(false);
        let mut args = strs(&c["command"]);
        args.extend(strs(&c["args"]));
        Ok(Baseline {
            kind: "pod-spec",
            env: pod_env(c),
            args: (!args.is_empty()).then_some(args),
            uid: pick("runAsUser")
                .as_u64()
                .and_then(|u| u32::try_from(u).ok()),
            run_as_non_root: pick("runAsNonRoot").as_bool().unwrap_or(false),
            capabilities: (!privileged).then(|| pod_capabilities(sc)),
            privileged: Some(privileged),
            readonly_rootfs: Some(sc["readOnlyRootFilesystem"].as_bool().unwrap_or(false)),
            host_namespaces: Some(pod_host_namespaces(spec)),
            host_mounts: Some(pod_host_mounts(spec, c)),
            no_new_privileges: sc["allowPrivilegeEscalation"].as_bool().map(|a| !a),
            seccomp: None,
            files: None,
        })
    }
}

/// The runtime's default capabilities (none after `drop: [ALL]`), minus the dropped ones, plus
/// the added ones, of a container's security context.
fn pod_capabilities(sc: &Value) -> BTreeSet<String> {
    let mut caps: BTreeSet<String> = if strs(&sc["capabilities"]["drop"])
        .iter()
        .any(|d| d.eq_ignore_ascii_case("all"))
    {
        BTreeSet::new()
    } else {
        DEFAULT_CAPS.iter().map(|s| (*s).to_owned()).collect()
    };
    for d in strs(&sc["capabilities"]["drop"]) {
        caps.remove(&cap_name(&d));
    }
    for a in strs(&sc["capabilities"]["add"]) {
        caps.insert(cap_name(&a));
    }
    caps
}

/// The namespaces a pod shares with the host (`hostNetwork`, `hostPID`, `hostIPC`).
fn pod_host_namespaces(spec: &Value) -> BTreeSet<String> {
    let mut host_ns = BTreeSet::new();
    for (k, n) in [
        ("hostNetwork", "network"),
        ("hostPID", "pid"),
        ("hostIPC", "ipc"),
    ] {
        if spec[k].as_bool() == Some(true) {
            host_ns.insert(n.to_owned());
        }
    }
    host_ns
}

/// The container's mounts of the pod's `hostPath` volumes: mount path → host path.
fn pod_host_mounts(spec: &Value, c: &Value) -> BTreeMap<String, String> {
    let host_paths: BTreeMap<String, String> = spec["volumes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|vol| {
                    Some((
                        vol["name"].as_str()?.to_owned(),
                        vol["hostPath"]["path"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    c["volumeMounts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    let src = host_paths.get(m["name"].as_str()?)?;
                    Some((m["mountPath"].as_str()?.to_owned(), src.clone()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The container's literal `env` values (those from `valueFrom` are not known here).
fn pod_env(c: &Value) -> Option<BTreeMap<String, String>> {
    c["env"].as_array().map(|a| {
        a.iter()
            .filter_map(|e| {
                Some((
                    e["name"].as_str()?.to_owned(),
                    e["value"].as_str()?.to_owned(),
                ))
            })
            .collect()
    })
}

fn cap_name(s: &str) -> String {
    let up = s.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn pod_spec_baseline() {
        let b = Baseline::parse(Path::new("pod.yaml"), super::super::TEST_POD, None).unwrap();
        assert_eq!(b.readonly_rootfs, Some(true));
        assert!(Baseline::parse(Path::new("x"), b"{\"a\":1}", None).is_err());
        assert!(Baseline::parse(Path::new("x"), b"\x00\xff: [", None).is_err());
    }
}

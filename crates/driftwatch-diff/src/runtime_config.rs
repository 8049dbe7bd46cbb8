//! Configuration drift: the container's effective runtime configuration (the OCI runtime spec
//! containerd holds) against the image configuration, runtime defaults and an optional
//! baseline (a saved `diff --json` report or a Kubernetes pod spec, JSON or YAML).

use crate::error::DiffError;
use crate::model::{ConfigFinding, Risk};
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

const CRITICAL_CAPS: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_BPF",
];
const HIGH_CAPS: &[&str] = &[
    "CAP_SYS_PTRACE",
    "CAP_NET_ADMIN",
    "CAP_DAC_READ_SEARCH",
    "CAP_PERFMON",
    "CAP_SYS_BOOT",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_SYSLOG",
    "CAP_SYS_TIME",
    "CAP_LINUX_IMMUTABLE",
];

/// Environment variables that change what code runs.
const CODE_ENV: &[&str] = &[
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "PATH",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "NODE_OPTIONS",
    "PERL5OPT",
    "PERL5LIB",
    "RUBYOPT",
    "JAVA_TOOL_OPTIONS",
    "BASH_ENV",
    "ENV",
];

/// Host paths whose mounting gives the container the node.
const SENSITIVE_HOST: &[&str] = &[
    "/",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/root",
    "/home",
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd",
    "/var/run/containerd",
    "/var/lib/kubelet",
    "/var/lib/containerd",
    "/var/lib/docker",
    "/boot",
    "/lib/modules",
    "/usr",
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

const DEFAULT_MOUNT_DESTS: &[&str] = &[
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

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn env_map(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.clone(), String::new()),
        })
        .collect()
}

impl RuntimeSummary {
    /// From an OCI runtime spec (`config.json`).
    pub fn from_spec(json: &[u8]) -> Result<RuntimeSummary, serde_json::Error> {
        let v: Value = serde_json::from_slice(json)?;
        let p = &v["process"];
        let caps = &p["capabilities"];
        let mut capabilities = BTreeSet::new();
        for set in ["bounding", "effective", "permitted"] {
            capabilities.extend(strs(&caps[set]));
        }
        let linux = &v["linux"];
        let all_devices = linux["resources"]["devices"]
            .as_array()
            .is_some_and(|devs| {
                devs.iter().any(|d| {
                    d["allow"].as_bool() == Some(true)
                        && d["type"].as_str().is_none_or(|t| t == "a")
                        && d["major"].is_null()
                        && d["minor"].is_null()
                })
            });
        let present: BTreeSet<String> = linux["namespaces"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n["type"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let host_namespaces = ["pid", "network", "ipc", "uts", "mount"]
            .iter()
            .filter(|n| !present.contains(**n))
            .map(|n| (*n).to_owned())
            .collect();
        let mounts = v["mounts"]
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
            .unwrap_or_default();
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
            host_namespaces,
            mounts,
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

/// The parts of an OCI image config that the runtime config is compared with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
}

impl ImageConfig {
    /// From the image config blob (`{"config": {...}, "rootfs": …}`).
    pub fn parse(json: &[u8]) -> Result<ImageConfig, serde_json::Error> {
        let v: Value = serde_json::from_slice(json)?;
        let c = &v["config"];
        let keys = |x: &Value| {
            x.as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        Ok(ImageConfig {
            env: env_map(&strs(&c["Env"])),
            user: c["User"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            entrypoint: strs(&c["Entrypoint"]),
            cmd: strs(&c["Cmd"]),
            exposed_ports: keys(&c["ExposedPorts"]),
            volumes: keys(&c["Volumes"]),
        })
    }
}

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
            let s: RuntimeSummary = serde_json::from_value(rt.clone())
                .map_err(|e| err(format!("bad runtime section: {e}")))?;
            let files = v["files"].as_array().map(|a| {
                a.iter()
                    .filter_map(|f| f["path"].as_str().map(str::to_owned))
                    .collect()
            });
            return Ok(Baseline {
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
            });
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
        let containers = spec["containers"].as_array().cloned().unwrap_or_default();
        let c = match container {
            Some(name) => containers.iter().find(|c| c["name"].as_str() == Some(name)),
            None => containers.first(),
        }
        .ok_or_else(|| {
            err(format!(
                "no container {:?} in the pod spec",
                container.unwrap_or("")
            ))
        })?;
        let psc = &spec["securityContext"];
        let sc = &c["securityContext"];
        let pick = |k: &str| if sc[k].is_null() { &psc[k] } else { &sc[k] };
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
        let privileged = sc["privileged"].as_bool().unwrap_or(false);
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
        let host_mounts = c["volumeMounts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| {
                        let src = host_paths.get(m["name"].as_str()?)?;
                        Some((m["mountPath"].as_str()?.to_owned(), src.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let env = c["env"].as_array().map(|a| {
            a.iter()
                .filter_map(|e| {
                    Some((
                        e["name"].as_str()?.to_owned(),
                        e["value"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        });
        let mut args = strs(&c["command"]);
        args.extend(strs(&c["args"]));
        Ok(Baseline {
            kind: "pod-spec",
            env,
            args: (!args.is_empty()).then_some(args),
            uid: pick("runAsUser")
                .as_u64()
                .and_then(|u| u32::try_from(u).ok()),
            run_as_non_root: pick("runAsNonRoot").as_bool().unwrap_or(false),
            capabilities: (!privileged).then_some(caps),
            privileged: Some(privileged),
            readonly_rootfs: Some(sc["readOnlyRootFilesystem"].as_bool().unwrap_or(false)),
            host_namespaces: Some(host_ns),
            host_mounts: Some(host_mounts),
            no_new_privileges: sc["allowPrivilegeEscalation"].as_bool().map(|a| !a),
            seccomp: None,
            files: None,
        })
    }
}

fn cap_name(s: &str) -> String {
    let up = s.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

fn cap_risk(cap: &str) -> Risk {
    if CRITICAL_CAPS.contains(&cap) {
        Risk::Critical
    } else if HIGH_CAPS.contains(&cap) {
        Risk::High
    } else {
        Risk::Medium
    }
}

fn env_risk(key: &str) -> Risk {
    if key.starts_with("LD_") {
        Risk::Critical
    } else if CODE_ENV.contains(&key) {
        Risk::High
    } else {
        Risk::Low
    }
}

fn mount_risk(m: &MountSummary) -> Risk {
    let sensitive = SENSITIVE_HOST
        .iter()
        .any(|s| m.source == *s || (*s != "/" && m.source.starts_with(&format!("{s}/"))));
    match (sensitive, m.read_only) {
        (true, false) => Risk::Critical,
        (true, true) => Risk::High,
        (false, false) => Risk::Medium,
        (false, true) => Risk::Low,
    }
}

fn finding(
    field: &str,
    against: &str,
    risk: Risk,
    message: String,
    expected: Option<String>,
    actual: Option<String>,
) -> ConfigFinding {
    ConfigFinding {
        field: field.into(),
        against: against.into(),
        risk,
        message,
        expected,
        actual,
    }
}

/// Resolve an image `User` (`name`, `uid`, `name:group`, `uid:gid`) to a uid with the image's
/// `/etc/passwd`.
pub fn resolve_user(user: &str, passwd: Option<&str>) -> Option<u32> {
    let u = user.split(':').next().unwrap_or(user);
    if let Ok(n) = u.parse() {
        return Some(n);
    }
    passwd?.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == u).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// Every deviation of `rt` from the image config, the runtime defaults and the baseline.
pub fn compare(
    rt: &RuntimeSummary,
    image: Option<&ImageConfig>,
    image_passwd: Option<&str>,
    baseline: Option<&Baseline>,
) -> Vec<ConfigFinding> {
    let mut out = Vec::new();
    // Against the image.
    if let Some(img) = image {
        for (k, v) in &rt.env {
            match img.env.get(k) {
                None if matches!(k.as_str(), "HOSTNAME" | "HOME" | "TERM")
                    || k.starts_with("KUBERNETES_")
                    || k.ends_with("_SERVICE_HOST")
                    || k.ends_with("_SERVICE_PORT")
                    || k.contains("_PORT_")
                    || k.ends_with("_PORT") => {}
                None => out.push(finding(
                    "env",
                    "image",
                    env_risk(k),
                    format!("environment variable {k} set at run time"),
                    None,
                    Some(format!("{k}={v}")),
                )),
                Some(iv) if iv != v => out.push(finding(
                    "env",
                    "image",
                    env_risk(k),
                    format!("environment variable {k} changed"),
                    Some(format!("{k}={iv}")),
                    Some(format!("{k}={v}")),
                )),
                Some(_) => {}
            }
        }
        for (k, iv) in &img.env {
            if !rt.env.contains_key(k) {
                out.push(finding(
                    "env",
                    "image",
                    Risk::Low,
                    format!("environment variable {k} of the image removed"),
                    Some(format!("{k}={iv}")),
                    None,
                ));
            }
        }
        let mut img_args = img.entrypoint.clone();
        img_args.extend(img.cmd.iter().cloned());
        if !img_args.is_empty() && rt.args != img_args {
            out.push(finding(
                "args",
                "image",
                // Overriding the command at run time is ordinary; a baseline makes it a deviation.
                Risk::Info,
                "the command differs from the image's Entrypoint/Cmd".into(),
                Some(format!("{img_args:?}")),
                Some(format!("{:?}", rt.args)),
            ));
        }
        let img_uid = img.user.as_deref().map(|u| resolve_user(u, image_passwd));
        match (img_uid, rt.uid) {
            (Some(Some(iu)), Some(ru)) if iu != ru => out.push(finding(
                "user",
                "image",
                if ru == 0 { Risk::High } else { Risk::Medium },
                format!(
                    "runs as uid {ru}, the image says {}",
                    img.user.as_deref().unwrap_or("")
                ),
                Some(iu.to_string()),
                Some(ru.to_string()),
            )),
            (Some(None), Some(ru)) => out.push(finding(
                "user",
                "image",
                Risk::Low,
                format!(
                    "image user {:?} is not in the image's /etc/passwd",
                    img.user.as_deref().unwrap_or("")
                ),
                img.user.clone(),
                Some(ru.to_string()),
            )),
            _ => {}
        }
        for vol in &img.volumes {
            if !rt.mounts.iter().any(|m| &m.destination == vol) {
                out.push(finding(
                    "volumes",
                    "image",
                    Risk::Info,
                    format!("image volume {vol} has no mount: its data is in the writable layer"),
                    Some(vol.clone()),
                    None,
                ));
            }
        }
        if rt.host_namespaces.contains("network") && !img.exposed_ports.is_empty() {
            out.push(finding(
                "ports",
                "image",
                Risk::Medium,
                format!(
                    "exposed ports {} are on the host network",
                    img.exposed_ports.join(", ")
                ),
                None,
                Some(img.exposed_ports.join(",")),
            ));
        }
    }
    // Against runtime defaults (or the baseline when it says otherwise).
    let b = baseline;
    let b_against = |has: bool| if has { "baseline" } else { "default" };
    if rt.privileged && b.and_then(|b| b.privileged) != Some(true) {
        out.push(finding(
            "privileged",
            b_against(b.is_some()),
            Risk::Critical,
            "privileged container (CAP_SYS_ADMIN and all devices)".into(),
            Some("false".into()),
            Some("true".into()),
        ));
    } else if rt.all_devices && b.and_then(|b| b.privileged) != Some(true) {
        out.push(finding(
            "devices",
            "default",
            Risk::High,
            "all host devices are allowed".into(),
            None,
            Some("a *:* rwm".into()),
        ));
    }
    let allowed: BTreeSet<String> = b
        .and_then(|b| b.capabilities.clone())
        .unwrap_or_else(|| DEFAULT_CAPS.iter().map(|s| (*s).to_owned()).collect());
    if !(rt.privileged && b.and_then(|b| b.privileged) == Some(true)) {
        for cap in rt.capabilities.difference(&allowed) {
            out.push(finding(
                "capabilities",
                b_against(b.and_then(|b| b.capabilities.as_ref()).is_some()),
                cap_risk(cap),
                format!("capability {cap} added"),
                None,
                Some(cap.clone()),
            ));
        }
    }
    match b.and_then(|b| b.readonly_rootfs) {
        Some(true) if !rt.readonly_rootfs => out.push(finding(
            "rootfs",
            "baseline",
            Risk::High,
            "root filesystem is writable, the baseline has it read-only".into(),
            Some("read-only".into()),
            Some("writable".into()),
        )),
        _ if !rt.readonly_rootfs => out.push(finding(
            "rootfs",
            "default",
            Risk::Info,
            "root filesystem is writable".into(),
            None,
            Some("writable".into()),
        )),
        _ => {}
    }
    let allowed_ns = b
        .and_then(|b| b.host_namespaces.clone())
        .unwrap_or_default();
    for ns in rt.host_namespaces.difference(&allowed_ns) {
        let risk = match ns.as_str() {
            "pid" | "network" | "mount" => Risk::High,
            "ipc" => Risk::Medium,
            _ => Risk::Low,
        };
        out.push(finding(
            "namespaces",
            b_against(b.is_some()),
            risk,
            format!("shares the host's {ns} namespace"),
            None,
            Some(ns.clone()),
        ));
    }
    let allowed_mounts = b.and_then(|b| b.host_mounts.clone()).unwrap_or_default();
    let volumes: Vec<&String> = image
        .map(|i| i.volumes.iter().collect())
        .unwrap_or_default();
    for m in rt.host_mounts() {
        if DEFAULT_MOUNT_DESTS.contains(&m.destination.as_str())
            && !m.source.starts_with("/var/lib/kubelet/pods")
            && m.destination.starts_with("/etc/")
        {
            continue;
        }
        if allowed_mounts.get(&m.destination) == Some(&m.source) {
            continue;
        }
        let mut risk = mount_risk(m);
        if volumes.contains(&&m.destination) && risk < Risk::High {
            risk = Risk::Low;
        }
        out.push(finding(
            "mounts",
            b_against(b.is_some()),
            risk,
            format!(
                "host path {} mounted at {} ({})",
                m.source,
                m.destination,
                if m.read_only {
                    "read-only"
                } else {
                    "read-write"
                }
            ),
            None,
            Some(format!("{}:{}", m.source, m.destination)),
        ));
    }
    if !rt.seccomp {
        let risk = if b.and_then(|b| b.seccomp) == Some(true) {
            Risk::High
        } else {
            Risk::Info
        };
        out.push(finding(
            "seccomp",
            b_against(risk > Risk::Info),
            risk,
            "no seccomp profile".into(),
            None,
            None,
        ));
    }
    if rt
        .apparmor_profile
        .as_deref()
        .is_none_or(|p| p == "unconfined")
    {
        out.push(finding(
            "apparmor",
            "default",
            Risk::Info,
            "no AppArmor profile".into(),
            None,
            rt.apparmor_profile.clone(),
        ));
    }
    if let Some(b) = b {
        if b.no_new_privileges == Some(true) && !rt.no_new_privileges {
            out.push(finding(
                "no-new-privileges",
                "baseline",
                Risk::Medium,
                "privilege escalation (setuid) is allowed, the baseline forbids it".into(),
                Some("true".into()),
                Some("false".into()),
            ));
        }
        if let (Some(bu), Some(ru)) = (b.uid, rt.uid) {
            if bu != ru {
                out.push(finding(
                    "user",
                    "baseline",
                    if ru == 0 { Risk::High } else { Risk::Medium },
                    format!("runs as uid {ru}, the baseline says {bu}"),
                    Some(bu.to_string()),
                    Some(ru.to_string()),
                ));
            }
        }
        if b.run_as_non_root && rt.uid == Some(0) {
            out.push(finding(
                "user",
                "baseline",
                Risk::High,
                "runs as root, the baseline requires runAsNonRoot".into(),
                Some("non-root".into()),
                Some("0".into()),
            ));
        }
        if let Some(benv) = &b.env {
            for (k, v) in &rt.env {
                match benv.get(k) {
                    Some(bv) if bv != v => out.push(finding(
                        "env",
                        "baseline",
                        env_risk(k),
                        format!("environment variable {k} differs from the baseline"),
                        Some(format!("{k}={bv}")),
                        Some(format!("{k}={v}")),
                    )),
                    None if b.kind == "report" || env_risk(k) > Risk::Low => out.push(finding(
                        "env",
                        "baseline",
                        env_risk(k),
                        format!("environment variable {k} not in the baseline"),
                        None,
                        Some(format!("{k}={v}")),
                    )),
                    _ => {}
                }
            }
        }
        if let Some(bargs) = &b.args {
            if *bargs != rt.args {
                out.push(finding(
                    "args",
                    "baseline",
                    Risk::Medium,
                    "the command differs from the baseline".into(),
                    Some(format!("{bargs:?}")),
                    Some(format!("{:?}", rt.args)),
                ));
            }
        }
    }
    out
}

/// A finding for a changed file under `/etc` (configuration drift in files).
pub fn etc_file_finding(path: &str, change: &str) -> ConfigFinding {
    let high = [
        "/etc/passwd",
        "/etc/shadow",
        "/etc/group",
        "/etc/sudoers",
        "/etc/ld.so.conf",
        "/etc/pam.d",
        "/etc/ssh",
        "/etc/cron",
        "/etc/profile",
        "/etc/security",
        "/etc/apt/sources.list",
        "/etc/hosts",
    ];
    let risk = if path == "/etc/ld.so.preload" {
        Risk::Critical
    } else if high.iter().any(|h| path.starts_with(h)) {
        Risk::High
    } else {
        Risk::Medium
    };
    finding(
        "file",
        "image",
        risk,
        format!("{path} {change}"),
        None,
        Some(change.to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{"process":{"user":{"uid":0,"gid":0},"args":["sh"],"env":["PATH=/bin","LD_PRELOAD=/tmp/x.so"],
      "capabilities":{"bounding":["CAP_CHOWN","CAP_SYS_ADMIN"],"effective":["CAP_CHOWN","CAP_SYS_ADMIN"]},"noNewPrivileges":false},
      "root":{"path":"rootfs","readonly":false},
      "mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/host","type":"bind","source":"/","options":["rbind","rw"]},
                {"destination":"/data","type":"bind","source":"/srv/data","options":["rbind","ro"]}],
      "linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"}],
               "resources":{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"access":"rwm"}]}}}"#;

    #[test]
    fn spec_summary_and_findings() {
        let rt = RuntimeSummary::from_spec(SPEC.as_bytes()).unwrap();
        assert!(rt.privileged);
        assert!(rt.host_namespaces.contains("network"));
        assert_eq!(rt.host_mounts().count(), 2);
        let img = ImageConfig::parse(
            br#"{"config":{"Env":["PATH=/bin"],"User":"app","Cmd":["sh"],"Volumes":{"/data":{}}}}"#,
        )
        .unwrap();
        let f = compare(
            &rt,
            Some(&img),
            Some("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"),
            None,
        );
        let has = |field: &str, risk: Risk| f.iter().any(|x| x.field == field && x.risk == risk);
        assert!(has("env", Risk::Critical), "{f:#?}");
        assert!(has("privileged", Risk::Critical));
        assert!(has("capabilities", Risk::Critical));
        assert!(has("user", Risk::High));
        assert!(has("mounts", Risk::Critical), "/ mounted rw");
        assert!(has("mounts", Risk::Low), "declared volume");
        assert!(has("namespaces", Risk::High));
        assert!(!f.iter().any(|x| x.field == "args"));
    }

    #[test]
    fn pod_spec_baseline() {
        let yaml = b"apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: app\n    securityContext:\n      readOnlyRootFilesystem: true\n      allowPrivilegeEscalation: false\n      capabilities:\n        drop: [ALL]\n        add: [NET_BIND_SERVICE]\n";
        let b = Baseline::parse(std::path::Path::new("pod.yaml"), yaml, None).unwrap();
        assert_eq!(b.readonly_rootfs, Some(true));
        let rt = RuntimeSummary::from_spec(SPEC.as_bytes()).unwrap();
        let f = compare(&rt, None, None, Some(&b));
        assert!(f
            .iter()
            .any(|x| x.field == "rootfs" && x.risk == Risk::High));
        assert!(f
            .iter()
            .any(|x| x.field == "capabilities" && x.actual.as_deref() == Some("CAP_CHOWN")));
        assert!(f.iter().any(|x| x.field == "no-new-privileges"));
        assert!(Baseline::parse(std::path::Path::new("x"), b"{\"a\":1}", None).is_err());
        assert!(Baseline::parse(std::path::Path::new("x"), b"\x00\xff: [", None).is_err());
    }

    #[test]
    fn users() {
        assert_eq!(resolve_user("1000:1000", None), Some(1000));
        assert_eq!(
            resolve_user("app", Some("app:x:42:42::/:/bin/sh")),
            Some(42)
        );
        assert_eq!(resolve_user("nobody", Some("app:x:42:42::/:/bin/sh")), None);
    }
}

//! The comparison: every deviation of the runtime configuration from the image config, the
//! runtime defaults and the baseline, as [`ConfigFinding`]s.

use super::baseline::Baseline;
use super::image::{resolve_user, ImageConfig};
use super::risk::{cap_risk, env_risk, etc_file_risk, mount_risk};
use super::spec::{RuntimeSummary, DEFAULT_CAPS, DEFAULT_MOUNT_DESTS};
use crate::model::{ConfigFinding, Risk};
use std::collections::BTreeSet;

/// A finding (the one constructor, so every finding has the same shape).
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

/// Every deviation of `rt` from the image config, the runtime defaults and the baseline.
///
/// The findings come in a fixed order: against the image (env, args, user, volumes, ports),
/// against the runtime defaults or the baseline (privileged/devices, capabilities, rootfs,
/// namespaces, host mounts, seccomp, AppArmor), then against the baseline only
/// (no-new-privileges, user, env, args).
pub fn compare(
    rt: &RuntimeSummary,
    image: Option<&ImageConfig>,
    image_passwd: Option<&str>,
    baseline: Option<&Baseline>,
) -> Vec<ConfigFinding> {
    let mut out = Vec::new();
    if let Some(img) = image {
        image_env(&mut out, rt, img);
        image_args(&mut out, rt, img);
        image_user(&mut out, rt, img, image_passwd);
        image_volumes(&mut out, rt, img);
        image_ports(&mut out, rt, img);
    }
    privileged_or_devices(&mut out, rt, baseline);
    capabilities(&mut out, rt, baseline);
    rootfs(&mut out, rt, baseline);
    namespaces(&mut out, rt, baseline);
    host_mounts(&mut out, rt, image, baseline);
    seccomp(&mut out, rt, baseline);
    apparmor(&mut out, rt);
    if let Some(b) = baseline {
        baseline_no_new_privileges(&mut out, rt, b);
        baseline_user(&mut out, rt, b);
        baseline_env(&mut out, rt, b);
        baseline_args(&mut out, rt, b);
    }
    out
}

/// What a default-or-baseline finding is against: `baseline` when the baseline has a say.
fn against(baseline_says: bool) -> &'static str {
    if baseline_says {
        "baseline"
    } else {
        "default"
    }
}

/// Variables the runtime or Kubernetes sets by itself: not drift from the image.
fn set_by_runtime(k: &str) -> bool {
    matches!(k, "HOSTNAME" | "HOME" | "TERM")
        || k.starts_with("KUBERNETES_")
        || k.ends_with("_SERVICE_HOST")
        || k.ends_with("_SERVICE_PORT")
        || k.contains("_PORT_")
        || k.ends_with("_PORT")
}

/// Variables set or changed at run time, then image variables removed.
fn image_env(out: &mut Vec<ConfigFinding>, rt: &RuntimeSummary, img: &ImageConfig) {
    for (k, v) in &rt.env {
        match img.env.get(k) {
            None if set_by_runtime(k) => {}
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
}

/// The command against the image's `Entrypoint` + `Cmd`.
fn image_args(out: &mut Vec<ConfigFinding>, rt: &RuntimeSummary, img: &ImageConfig) {
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
}

/// The uid against the image's `User` (resolved with the image's `/etc/passwd`).
fn image_user(
    out: &mut Vec<ConfigFinding>,
    rt: &RuntimeSummary,
    img: &ImageConfig,
    image_passwd: Option<&str>,
) {
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
}

/// Image volumes with nothing mounted on them.
fn image_volumes(out: &mut Vec<ConfigFinding>, rt: &RuntimeSummary, img: &ImageConfig) {
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
}

/// Exposed ports on the host network.
fn image_ports(out: &mut Vec<ConfigFinding>, rt: &RuntimeSummary, img: &ImageConfig) {
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

/// A privileged container, or else all host devices allowed, unless the baseline is
/// privileged.
fn privileged_or_devices(out: &mut Vec<ConfigFinding>, rt: &RuntimeSummary, b: Option<&Baseline>) {
    if rt.privileged && b.and_then(|b| b.privileged) != Some(true) {
        out.push(finding(
            "privileged",
            against(b.is_some()),
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
}

/// Capabilities beyond the baseline's (or the runtime's defaults); none when both the container
/// and the baseline are privileged.
fn capabilities(out: &mut Vec<ConfigFinding>, rt: &RuntimeSummary, b: Option<&Baseline>) {
    let allowed: BTreeSet<String> = b
        .and_then(|b| b.capabilities.clone())
        .unwrap_or_else(|| DEFAULT_CAPS.iter().map(|s| (*s).to_owned()).collect());
    if !(rt.privileged && b.and_then(|b| b.privileged) == Some(true)) {
        for cap in rt.capabilities.difference(&allowed) {
            out.push(finding(
                "capabilities",
                against(b.and_then(|b| b.capabilities.as_ref()).is_some()),
                cap_risk(cap),
                format!("capability {cap} added"),
                None,
                Some(cap.clone()),
            ));
        }
    }
}

/// A writable root filesystem (a high risk when the baseline has it read-only).
fn rootfs(out: &mut Vec<ConfigFinding>, rt: &RuntimeSummary, b: Option<&Baseline>) {
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
}

/// Host namespaces the baseline does not share.
fn namespaces(out: &mut Vec<ConfigFinding>, rt: &RuntimeSummary, b: Option<&Baseline>) {
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
            against(b.is_some()),
            risk,
            format!("shares the host's {ns} namespace"),
            None,
            Some(ns.clone()),
        ));
    }
}

/// Host paths mounted other than the runtime's own `/etc` files and the baseline's mounts (an
/// image volume lowers the risk of a harmless path).
fn host_mounts(
    out: &mut Vec<ConfigFinding>,
    rt: &RuntimeSummary,
    image: Option<&ImageConfig>,
    b: Option<&Baseline>,
) {
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
            against(b.is_some()),
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
}

/// No seccomp profile (a high risk when the baseline has one).
fn seccomp(out: &mut Vec<ConfigFinding>, rt: &RuntimeSummary, b: Option<&Baseline>) {
    if !rt.seccomp {
        let risk = if b.and_then(|b| b.seccomp) == Some(true) {
            Risk::High
        } else {
            Risk::Info
        };
        out.push(finding(
            "seccomp",
            against(risk > Risk::Info),
            risk,
            "no seccomp profile".into(),
            None,
            None,
        ));
    }
}

/// No AppArmor profile, or `unconfined`.
fn apparmor(out: &mut Vec<ConfigFinding>, rt: &RuntimeSummary) {
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
}

/// Privilege escalation allowed where the baseline forbids it.
fn baseline_no_new_privileges(out: &mut Vec<ConfigFinding>, rt: &RuntimeSummary, b: &Baseline) {
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
}

/// The uid against the baseline's, then root against `runAsNonRoot`.
fn baseline_user(out: &mut Vec<ConfigFinding>, rt: &RuntimeSummary, b: &Baseline) {
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
}

/// Variables that differ from the baseline's, or that it lacks (all of them against a report,
/// only those that change what code runs against a pod spec).
fn baseline_env(out: &mut Vec<ConfigFinding>, rt: &RuntimeSummary, b: &Baseline) {
    let Some(benv) = &b.env else {
        return;
    };
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

/// The command against the baseline's.
fn baseline_args(out: &mut Vec<ConfigFinding>, rt: &RuntimeSummary, b: &Baseline) {
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

/// A finding for a changed file under `/etc` (configuration drift in files).
pub fn etc_file_finding(path: &str, change: &str) -> ConfigFinding {
    finding(
        "file",
        "image",
        etc_file_risk(path),
        format!("{path} {change}"),
        None,
        Some(change.to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::super::{TEST_POD, TEST_SPEC};
    use super::*;

    #[test]
    fn spec_findings() {
        let rt = RuntimeSummary::from_spec(TEST_SPEC.as_bytes()).unwrap();
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
    fn pod_spec_baseline_findings() {
        let b = Baseline::parse(std::path::Path::new("pod.yaml"), TEST_POD, None).unwrap();
        let rt = RuntimeSummary::from_spec(TEST_SPEC.as_bytes()).unwrap();
        let f = compare(&rt, None, None, Some(&b));
        assert!(f
            .iter()
            .any(|x| x.field == "rootfs" && x.risk == Risk::High));
        assert!(f
            .iter()
            .any(|x| x.field == "capabilities" && x.actual.as_deref() == Some("CAP_CHOWN")));
        assert!(f.iter().any(|x| x.field == "no-new-privileges"));
    }
}

//! The comparison: every deviation of the runtime configuration from the image config, the
//! runtime defaults and the baseline, as [`ConfigFinding`]s.

use super::baseline::Baseline;
use super::image::{resolve_user, ImageConfig};
use super::risk::{cap_risk, env_risk, mount_risk};
use super::spec::{RuntimeSummary, DEFAULT_CAPS, DEFAULT_MOUNT_DESTS};
use crate::model::{ConfigFinding, Risk};
use std::collections::BTreeSet;

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

//! The Pod Security Standards, check for check as Kubernetes' pod-security admission
//! (`k8s.io/pod-security-admission/policy`) implements them, with its check ids and its
//! versions: a check applies from its minimum version, a versioned change from its version,
//! and `latest` is the newest. Containers are init, regular and ephemeral ones, in that order.
//!
//! Where the admission reports one result per check and pod, this reports one [`Hit`] per
//! offending field (with its position and a fix); the check ids are the admission's.

use crate::fix::FixBuilder;
use crate::hit::Hit;
use crate::model::{Ctr, Level, PodCtx, Version};
use crate::yaml::{Node, Pos};
use serde_json::json;

/// A check of the standards: its id, level and the minor version it applies from.
#[derive(Debug, Clone, Copy)]
pub struct CheckInfo {
    pub id: &'static str,
    pub level: Level,
    pub since_minor: u32,
    pub summary: &'static str,
}

macro_rules! info {
    ($id:literal, $level:ident, $since:literal, $summary:literal) => {
        CheckInfo {
            id: $id,
            level: Level::$level,
            since_minor: $since,
            summary: $summary,
        }
    };
}

/// Every check of the standards, baseline first (as the admission orders them).
pub const CHECKS: &[CheckInfo] = &[
    info!("appArmorProfile", Baseline, 0, "AppArmor profile must be RuntimeDefault or Localhost"),
    info!("capabilities_baseline", Baseline, 0, "only the default capabilities may be added"),
    info!("hostNamespaces", Baseline, 0, "hostNetwork, hostPID and hostIPC must not be set"),
    info!("hostPathVolumes", Baseline, 0, "hostPath volumes are forbidden"),
    info!("hostPorts", Baseline, 0, "hostPort must not be set"),
    info!("hostProbesAndHostLifecycle", Baseline, 34, "probes and lifecycle handlers must not set host"),
    info!("privileged", Baseline, 0, "privileged containers are forbidden"),
    info!("procMount", Baseline, 0, "procMount must be Default"),
    info!("seLinuxOptions", Baseline, 0, "SELinux type must be a container type; user and role must not be set"),
    info!("seccompProfile_baseline", Baseline, 0, "seccomp profile must not be Unconfined"),
    info!("sysctls", Baseline, 0, "only the safe sysctls are allowed"),
    info!("windowsHostProcess", Baseline, 0, "Windows HostProcess containers are forbidden"),
    info!("allowPrivilegeEscalation", Restricted, 8, "allowPrivilegeEscalation must be false"),
    info!("capabilities_restricted", Restricted, 22, "capabilities must drop ALL and add only NET_BIND_SERVICE"),
    info!("procMount_restricted", Restricted, 35, "procMount must be Default, user namespace or not"),
    info!("restrictedVolumes", Restricted, 0, "only configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected and secret volumes"),
    info!("runAsNonRoot", Restricted, 0, "runAsNonRoot must be true"),
    info!("runAsUser", Restricted, 23, "runAsUser must not be 0"),
    info!("seccompProfile_restricted", Restricted, 19, "seccomp profile must be RuntimeDefault or Localhost"),
];

/// Whether check `id` runs at `level` and `version`, the restricted overrides applied
/// (restricted replaces `capabilities_baseline`, `hostPathVolumes`, `seccompProfile_baseline`
/// and, from v1.35, `procMount`).
pub fn enabled(id: &str, level: Level, version: Version) -> bool {
    let Some(c) = CHECKS.iter().find(|c| c.id == id) else {
        return false;
    };
    if c.level > level || !version.at_least(c.since_minor) {
        return false;
    }
    if level == Level::Restricted {
        let overridden = match id {
            "capabilities_baseline" => version.at_least(22),
            "hostPathVolumes" => true,
            "seccompProfile_baseline" => version.at_least(19),
            "procMount" => version.at_least(35),
            _ => false,
        };
        if overridden {
            return false;
        }
    }
    true
}

/// Runs every check enabled at `level` and `version` on one pod spec.
pub fn check(pod: &PodCtx<'_>, level: Level, version: Version, out: &mut Vec<Hit>) {
    type CheckFn = fn(&PodCtx<'_>, Version, &mut Vec<Hit>);
    const RUN: &[(&str, CheckFn)] = &[
        ("appArmorProfile", app_armor),
        ("capabilities_baseline", capabilities_baseline),
        ("hostNamespaces", host_namespaces),
        ("hostPathVolumes", host_path_volumes),
        ("hostPorts", host_ports),
        ("hostProbesAndHostLifecycle", host_probes),
        ("privileged", privileged),
        ("procMount", proc_mount_baseline),
        ("seLinuxOptions", se_linux),
        ("seccompProfile_baseline", seccomp_baseline),
        ("sysctls", sysctls),
        ("windowsHostProcess", windows_host_process),
        ("allowPrivilegeEscalation", allow_privilege_escalation),
        ("capabilities_restricted", capabilities_restricted),
        ("procMount_restricted", proc_mount_restricted),
        ("restrictedVolumes", restricted_volumes),
        ("runAsNonRoot", run_as_non_root),
        ("runAsUser", run_as_user),
        ("seccompProfile_restricted", seccomp_restricted),
    ];
    for (id, f) in RUN {
        if enabled(id, level, version) {
            f(pod, version, out);
        }
    }
}

/// Where a missing field is reported: the nearest node that exists.
fn near(c: &Ctr<'_>, path: &[&str]) -> Pos {
    let mut node = c.node;
    let mut pos = c.node.start;
    if let Some((k, _)) = node.entry("name") {
        pos = k.start;
    }
    for k in path {
        match node.entry(k) {
            Some((key, v)) if !v.is_null() => {
                pos = key.start;
                node = v;
            }
            Some((key, _)) => return key.start,
            None => return pos,
        }
    }
    pos
}

fn set_true_false(
    out: &mut Vec<Hit>,
    check: &'static str,
    base: &Node,
    base_ptr: &str,
    path: &[&str],
    who: &str,
    want: bool,
) {
    if let Some(v) = base.at(path) {
        out.push(Hit::new(
            check,
            v.start,
            format!("{who} sets {}={}", path.join("."), !want),
            FixBuilder::new(format!("set {}={want}", path.join(".")))
                .set(base, base_ptr, path, json!(want))
                .build(),
        ));
    }
}

fn privileged(pod: &PodCtx<'_>, _: Version, out: &mut Vec<Hit>) {
    for c in &pod.containers {
        if c.sc_at(&["privileged"]).is_some_and(Node::is_true) {
            set_true_false(
                out,
                "privileged",
                c.node,
                &c.ptr,
                &["securityContext", "privileged"],
                &c.label(),
                false,
            );
        }
    }
}

fn host_namespaces(pod: &PodCtx<'_>, _: Version, out: &mut Vec<Hit>) {
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod.spec.get(key).is_some_and(Node::is_true) {
            set_true_false(
                out,
                "hostNamespaces",
                pod.spec,
                &pod.spec_ptr,
                &[key],
                "pod",
                false,
            );
        }
    }
}

fn volumes<'a>(pod: &PodCtx<'a>) -> impl Iterator<Item = (usize, &'a Node)> {
    pod.spec
        .get("volumes")
        .map_or(&[][..], Node::seq)
        .iter()
        .enumerate()
}

fn volume_name(v: &Node) -> &str {
    v.get("name").and_then(Node::str).unwrap_or("")
}

/// Replaces a volume's source `key` with an `emptyDir`.
fn to_empty_dir(pod: &PodCtx<'_>, i: usize, v: &Node, key: &str) -> crate::fix::Fix {
    let ptr = format!("{}/volumes/{i}", pod.spec_ptr);
    let mut fix = FixBuilder::new(format!(
        "replace the {key} volume {:?} with an emptyDir (or remove it and its mounts)",
        volume_name(v)
    ))
    .remove_key(v, &ptr, key)
    .build();
    fix.patch.push(crate::fix::PatchOp {
        op: "add",
        path: format!("{ptr}/emptyDir"),
        value: Some(json!({})),
    });
    if let (Some((k, _)), Some(edit)) = (v.entry(key), fix.edits.last_mut()) {
        if edit.start == k.start {
            edit.text = "emptyDir: {}".into();
        }
    }
    fix
}

fn host_path_volumes(pod: &PodCtx<'_>, _: Version, out: &mut Vec<Hit>) {
    for (i, v) in volumes(pod) {
        if let Some((k, _)) = v.entry("hostPath").filter(|(_, v)| !v.is_null()) {
            out.push(Hit::new(
                "hostPathVolumes",
                k.start,
                format!("volume {:?} is a hostPath volume", volume_name(v)),
                to_empty_dir(pod, i, v, "hostPath"),
            ));
        }
    }
}

fn host_ports(pod: &PodCtx<'_>, _: Version, out: &mut Vec<Hit>) {
    for c in &pod.containers {
        let Some(ports) = c.node.get("ports") else {
            continue;
        };
        for (i, p) in ports.seq().iter().enumerate() {
            let Some(hp) = p.get("hostPort") else {
                continue;
            };
            if hp.int() == Some(0) {
                continue;
            }
            let ptr = format!("{}/ports/{i}", c.ptr);
            out.push(Hit::new(
                "hostPorts",
                hp.start,
                format!("{} uses hostPort {}", c.label(), hp.str().unwrap_or("?")),
                FixBuilder::new("remove hostPort")
                    .remove_key(p, &ptr, "hostPort")
                    .build(),
            ));
        }
    }
}

const CAPS_BASELINE: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Capabilities added by `c` that `allowed` refuses: one hit for the container.
fn bad_adds(c: &Ctr<'_>, check: &'static str, allowed: &[&str], out: &mut Vec<Hit>) {
    let Some(add) = c.sc_at(&["capabilities", "add"]) else {
        return;
    };
    let bad: Vec<(usize, &Node)> = add
        .seq()
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.str().is_some_and(|s| allowed.contains(&s)))
        .collect();
    let Some(&(_, first)) = bad.first() else {
        return;
    };
    let names: Vec<&str> = bad.iter().map(|(_, n)| n.str().unwrap_or("?")).collect();
    let ptr = format!("{}/securityContext/capabilities/add", c.ptr);
    let mut fix = FixBuilder::new(format!("remove {} from capabilities.add", names.join(", ")));
    for &(i, _) in bad.iter().rev() {
        fix = fix.remove_item(add, &ptr, i);
    }
    out.push(Hit::new(
        check,
        first.start,
        format!("{} adds capabilities {}", c.label(), names.join(", ")),
        fix.build(),
    ));
}

fn capabilities_baseline(pod: &PodCtx<'_>, _: Version, out: &mut Vec<Hit>) {
    for c in &pod.containers {
        bad_adds(c, "capabilities_baseline", CAPS_BASELINE, out);
    }
}

fn capabilities_restricted(pod: &PodCtx<'_>, v: Version, out: &mut Vec<Hit>) {
    if v.at_least(25) && pod.windows() {
        return;
    }
    for c in &pod.containers {
        let drop = c.sc_at(&["capabilities", "drop"]);
        let drops_all = drop.is_some_and(|d| d.seq().iter().any(|n| n.str() == Some("ALL")));
        if !drops_all {
            out.push(Hit::new(
                "capabilities_restricted",
                near(c, &["securityContext", "capabilities", "drop"]),
                format!("{} does not drop ALL capabilities", c.label()),
                FixBuilder::new("add ALL to securityContext.capabilities.drop")
                    .append(
                        c.node,
                        &c.ptr,
                        &["securityContext", "capabilities", "drop"],
                        json!("ALL"),
                    )
                    .build(),
            ));
        }
        bad_adds(c, "capabilities_restricted", &["NET_BIND_SERVICE"], out);
    }
}

fn app_armor_type_ok(t: Option<&str>) -> bool {
    matches!(t, Some("RuntimeDefault" | "Localhost"))
}

fn app_armor(pod: &PodCtx<'_>, _: Version, out: &mut Vec<Hit>) {
    let mut profile = |base: &Node, ptr: &str, prefix: &[&str], who: String| {
        let Some(p) = base.at(prefix) else {
            return;
        };
        let t = p.get("type").and_then(Node::str);
        if app_armor_type_ok(t) {
            return;
        }
        let mut path = prefix.to_vec();
        path.push("type");
        out.push(Hit::new(
            "appArmorProfile",
            p.get("type").map_or(p.start, |n| n.start),
            format!("{who} sets AppArmor profile type {:?}", t.unwrap_or("")),
            FixBuilder::new("set appArmorProfile.type=RuntimeDefault")
                .set(base, ptr, &path, json!("RuntimeDefault"))
                .build(),
        ));
    };
    profile(
        pod.spec,
        &pod.spec_ptr,
        &["securityContext", "appArmorProfile"],
        "pod".into(),
    );
    for c in &pod.containers {
        profile(
            c.node,
            &c.ptr,
            &["securityContext", "appArmorProfile"],
            c.label(),
        );
    }
    for (k, v) in pod.annotations() {
        let Some(key) = k.str() else { continue };
        if !key.starts_with("container.apparmor.security.beta.kubernetes.io/") {
            continue;
        }
        let val = v.str().unwrap_or("");
        if val.is_empty() || val == "runtime/default" || val.starts_with("localhost/") {
            continue;
        }
        out.push(annotation_hit(pod, "appArmorProfile", key, v, "AppArmor"));
    }
}

/// A deprecated profile annotation with a forbidden value; the fix sets `runtime/default`.
fn annotation_hit(pod: &PodCtx<'_>, check: &'static str, key: &str, val: &Node, what: &str) -> Hit {
    Hit::new(
        check,
        val.start,
        format!(
            "annotation {key}={:?} sets a forbidden {what} profile",
            val.str().unwrap_or("")
        ),
        FixBuilder::new("set the annotation to runtime/default")
            .set(
                pod.meta.unwrap_or(pod.spec),
                &pod.meta_ptr,
                &["annotations", key],
                json!("runtime/default"),
            )
            .build(),
    )
}

fn se_linux(pod: &PodCtx<'_>, v: Version, out: &mut Vec<Hit>) {
    let allowed: &[&str] = if v.at_least(31) {
        &[
            "",
            "container_t",
            "container_init_t",
            "container_kvm_t",
            "container_engine_t",
        ]
    } else {
        &["", "container_t", "container_init_t", "container_kvm_t"]
    };
    let mut opts = |base: &Node, ptr: &str, who: String| {
        let Some(o) = base.at(&["securityContext", "seLinuxOptions"]) else {
            return;
        };
        let sp = &["securityContext", "seLinuxOptions"];
        let optr = format!("{ptr}/securityContext/seLinuxOptions");
        let t = o.get("type").and_then(Node::str).unwrap_or("");
        if !allowed.contains(&t) {
            out.push(Hit::new(
                "seLinuxOptions",
                o.get("type").map_or(o.start, |n| n.start),
                format!("{who} sets seLinuxOptions.type {t:?}"),
                FixBuilder::new("set seLinuxOptions.type=container_t")
                    .set(base, ptr, &[sp[0], sp[1], "type"], json!("container_t"))
                    .build(),
            ));
        }
        for key in ["user", "role"] {
            if let Some(n) = o.get(key).filter(|n| n.str().is_none_or(|s| !s.is_empty())) {
                out.push(Hit::new(
                    "seLinuxOptions",
                    n.start,
                    format!("{who} sets seLinuxOptions.{key}"),
                    FixBuilder::new(format!("remove seLinuxOptions.{key}"))
                        .remove_key(o, &optr, key)
                        .build(),
                ));
            }
        }
    };
    opts(pod.spec, &pod.spec_ptr, "pod".into());
    for c in &pod.containers {
        opts(c.node, &c.ptr, c.label());
    }
}

fn proc_mount(pod: &PodCtx<'_>, check: &'static str, out: &mut Vec<Hit>) {
    for c in &pod.containers {
        let Some(pm) = c.sc_at(&["procMount"]) else {
            continue;
        };
        if pm.str() == Some("Default") {
            continue;
        }
        out.push(Hit::new(
            check,
            pm.start,
            format!("{} sets procMount {:?}", c.label(), pm.str().unwrap_or("?")),
            FixBuilder::new("set procMount=Default")
                .set(
                    c.node,
                    &c.ptr,
                    &["securityContext", "procMount"],
                    json!("Default"),
                )
                .build(),
        ));
    }
}

fn proc_mount_baseline(pod: &PodCtx<'_>, v: Version, out: &mut Vec<Hit>) {
    if v.at_least(35) && pod.user_namespace() {
        return;
    }
    proc_mount(pod, "procMount", out);
}

fn proc_mount_restricted(pod: &PodCtx<'_>, _: Version, out: &mut Vec<Hit>) {
    proc_mount(pod, "procMount_restricted", out);
}

fn seccomp_type_ok(t: Option<&str>) -> bool {
    matches!(t, Some("RuntimeDefault" | "Localhost"))
}

fn seccomp_annotation_ok(v: &str) -> bool {
    v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/")
}

/// An explicit seccomp profile whose type is not allowed: the hit, or `None`.
fn bad_seccomp(check: &'static str, base: &Node, ptr: &str, who: &str) -> Option<Hit> {
    let p = base.at(&["securityContext", "seccompProfile"])?;
    let t = p.get("type").and_then(Node::str);
    if seccomp_type_ok(t) {
        return None;
    }
    Some(Hit::new(
        check,
        p.get("type").map_or(p.start, |n| n.start),
        format!("{who} sets seccompProfile.type {:?}", t.unwrap_or("")),
        FixBuilder::new("set seccompProfile.type=RuntimeDefault")
            .set(
                base,
                ptr,
                &["securityContext", "seccompProfile", "type"],
                json!("RuntimeDefault"),
            )
            .build(),
    ))
}

fn seccomp_baseline(pod: &PodCtx<'_>, v: Version, out: &mut Vec<Hit>) {
    if v.at_least(19) {
        out.extend(bad_seccomp(
            "seccompProfile_baseline",
            pod.spec,
            &pod.spec_ptr,
            "pod",
        ));
        for c in &pod.containers {
            out.extend(bad_seccomp(
                "seccompProfile_baseline",
                c.node,
                &c.ptr,
                &c.label(),
            ));
        }
        return;
    }
    let names: Vec<String> =
        std::iter::once("seccomp.security.alpha.kubernetes.io/pod".to_string())
            .chain(
                pod.containers
                    .iter()
                    .map(|c| format!("container.seccomp.security.alpha.kubernetes.io/{}", c.name)),
            )
            .collect();
    for (k, val) in pod.annotations() {
        let Some(key) = k.str() else { continue };
        if !names.iter().any(|n| n == key) {
            continue;
        }
        let s = val.str().unwrap_or("");
        if seccomp_annotation_ok(s) {
            continue;
        }
        out.push(annotation_hit(
            pod,
            "seccompProfile_baseline",
            key,
            val,
            "seccomp",
        ));
    }
}

fn seccomp_restricted(pod: &PodCtx<'_>, v: Version, out: &mut Vec<Hit>) {
    if v.at_least(25) && pod.windows() {
        return;
    }
    let pod_bad = bad_seccomp("seccompProfile_restricted", pod.spec, &pod.spec_ptr, "pod");
    let pod_set = pod_bad.is_none() && pod.psc_at(&["seccompProfile"]).is_some();
    let pod_explicitly_bad = pod_bad.is_some();
    out.extend(pod_bad);
    let mut explicit = false;
    let mut implicit = Vec::new();
    for c in &pod.containers {
        if c.sc_at(&["seccompProfile"]).is_some() {
            if let Some(h) = bad_seccomp("seccompProfile_restricted", c.node, &c.ptr, &c.label()) {
                explicit = true;
                out.push(h);
            }
        } else if !pod_set {
            implicit.push(Hit::new(
                "seccompProfile_restricted",
                near(c, &["securityContext"]),
                format!(
                    "pod or {} must set securityContext.seccompProfile.type to RuntimeDefault or Localhost",
                    c.label()
                ),
                FixBuilder::new("set seccompProfile.type=RuntimeDefault")
                    .set(
                        c.node,
                        &c.ptr,
                        &["securityContext", "seccompProfile", "type"],
                        json!("RuntimeDefault"),
                    )
                    .build(),
            ));
        }
    }
    // As the admission does: explicit bad values are reported before (and instead of) the
    // containers that only inherit nothing.
    if !pod_explicitly_bad && !explicit {
        out.extend(implicit);
    }
}

fn sysctls(pod: &PodCtx<'_>, v: Version, out: &mut Vec<Hit>) {
    let mut allowed = vec![
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    ];
    if v.at_least(27) {
        allowed.push("net.ipv4.ip_local_reserved_ports");
    }
    if v.at_least(29) {
        allowed.extend([
            "net.ipv4.tcp_keepalive_time",
            "net.ipv4.tcp_fin_timeout",
            "net.ipv4.tcp_keepalive_intvl",
            "net.ipv4.tcp_keepalive_probes",
        ]);
    }
    if v.at_least(32) {
        allowed.extend(["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"]);
    }
    if v.at_least(37) {
        allowed.extend([
            "net.ipv4.tcp_slow_start_after_idle",
            "net.ipv4.tcp_notsent_lowat",
        ]);
    }
    let Some(list) = pod.psc_at(&["sysctls"]) else {
        return;
    };
    let ptr = format!("{}/sysctls", pod.psc_ptr());
    for (i, s) in list.seq().iter().enumerate() {
        let name = s.get("name").and_then(Node::str).unwrap_or("");
        if allowed.contains(&name) {
            continue;
        }
        out.push(Hit::new(
            "sysctls",
            s.get("name").map_or(s.start, |n| n.start),
            format!("pod sets the unsafe sysctl {name:?}"),
            FixBuilder::new(format!("remove the sysctl {name}"))
                .remove_item(list, &ptr, i)
                .build(),
        ));
    }
}

fn host_probes(pod: &PodCtx<'_>, _: Version, out: &mut Vec<Hit>) {
    for c in &pod.containers {
        let handlers = [
            vec!["livenessProbe"],
            vec!["readinessProbe"],
            vec!["startupProbe"],
            vec!["lifecycle", "postStart"],
            vec!["lifecycle", "preStop"],
        ];
        for h in handlers {
            for kind in ["httpGet", "tcpSocket"] {
                let mut path = h.clone();
                path.push(kind);
                let Some(action) = c.node.at(&path) else {
                    continue;
                };
                let Some(host) = action.get("host").filter(|n| n.str() != Some("")) else {
                    continue;
                };
                let ptr = format!("{}{}", c.ptr, crate::model::pointer(&path));
                out.push(Hit::new(
                    "hostProbesAndHostLifecycle",
                    host.start,
                    format!(
                        "{} {} sets host {:?}",
                        c.label(),
                        path.join("."),
                        host.str().unwrap_or("?")
                    ),
                    FixBuilder::new(format!(
                        "remove {}.host (the pod's IP is used)",
                        path.join(".")
                    ))
                    .remove_key(action, &ptr, "host")
                    .build(),
                ));
            }
        }
    }
}

fn windows_host_process(pod: &PodCtx<'_>, _: Version, out: &mut Vec<Hit>) {
    let path = &["securityContext", "windowsOptions", "hostProcess"];
    if pod.spec.at(path).is_some_and(Node::is_true) {
        set_true_false(
            out,
            "windowsHostProcess",
            pod.spec,
            &pod.spec_ptr,
            path,
            "pod",
            false,
        );
    }
    for c in &pod.containers {
        if c.node.at(path).is_some_and(Node::is_true) {
            set_true_false(
                out,
                "windowsHostProcess",
                c.node,
                &c.ptr,
                path,
                &c.label(),
                false,
            );
        }
    }
}

fn allow_privilege_escalation(pod: &PodCtx<'_>, v: Version, out: &mut Vec<Hit>) {
    if v.at_least(25) && pod.windows() {
        return;
    }
    for c in &pod.containers {
        let ape = c.sc_at(&["allowPrivilegeEscalation"]);
        if ape.and_then(Node::bool) == Some(false) {
            continue;
        }
        out.push(Hit::new(
            "allowPrivilegeEscalation",
            ape.map_or_else(|| near(c, &["securityContext"]), |n| n.start),
            format!(
                "{} must set securityContext.allowPrivilegeEscalation=false",
                c.label()
            ),
            FixBuilder::new("set allowPrivilegeEscalation=false")
                .set(
                    c.node,
                    &c.ptr,
                    &["securityContext", "allowPrivilegeEscalation"],
                    json!(false),
                )
                .build(),
        ));
    }
}

const ALLOWED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn restricted_volumes(pod: &PodCtx<'_>, _: Version, out: &mut Vec<Hit>) {
    for (i, v) in volumes(pod) {
        let sources: Vec<&(Node, Node)> = v
            .map()
            .iter()
            .filter(|(k, val)| k.str() != Some("name") && !val.is_null())
            .collect();
        // A volume without a source is defaulted to an emptyDir by the API server.
        if sources.is_empty()
            || sources
                .iter()
                .any(|(k, _)| k.str().is_some_and(|s| ALLOWED_VOLUMES.contains(&s)))
        {
            continue;
        }
        let (k, _) = sources[0];
        let key = k.str().unwrap_or("?");
        out.push(Hit::new(
            "restrictedVolumes",
            k.start,
            format!(
                "volume {:?} uses the restricted volume type {key}",
                volume_name(v)
            ),
            to_empty_dir(pod, i, v, key),
        ));
    }
}

/// The restricted checks of one boolean or integer field that the pod may set for all its
/// containers: explicit bad values first; containers that inherit nothing good only when none
/// is explicit (as the admission reports them).
fn run_as_non_root(pod: &PodCtx<'_>, v: Version, out: &mut Vec<Hit>) {
    if v.at_least(35) && pod.user_namespace() {
        return;
    }
    let pod_val = pod.psc_at(&["runAsNonRoot"]).and_then(Node::bool);
    let mut explicit = false;
    if pod_val == Some(false) {
        explicit = true;
        set_true_false(
            out,
            "runAsNonRoot",
            pod.spec,
            &pod.spec_ptr,
            &["securityContext", "runAsNonRoot"],
            "pod",
            true,
        );
    }
    let mut implicit = Vec::new();
    for c in &pod.containers {
        let fix = || {
            FixBuilder::new("set runAsNonRoot=true")
                .set(
                    c.node,
                    &c.ptr,
                    &["securityContext", "runAsNonRoot"],
                    json!(true),
                )
                .build()
        };
        match c.sc_at(&["runAsNonRoot"]) {
            Some(n) if n.bool() != Some(true) => {
                explicit = true;
                out.push(Hit::new(
                    "runAsNonRoot",
                    n.start,
                    format!("{} sets securityContext.runAsNonRoot=false", c.label()),
                    fix(),
                ));
            }
            Some(_) => {}
            None if pod_val != Some(true) => implicit.push(Hit::new(
                "runAsNonRoot",
                near(c, &["securityContext"]),
                format!(
                    "pod or {} must set securityContext.runAsNonRoot=true",
                    c.label()
                ),
                fix(),
            )),
            None => {}
        }
    }
    if !explicit {
        out.extend(implicit);
    }
}

fn run_as_user(pod: &PodCtx<'_>, v: Version, out: &mut Vec<Hit>) {
    if v.at_least(35) && pod.user_namespace() {
        return;
    }
    let mut zero = |base: &Node, ptr: &str, who: String| {
        if let Some(n) = base
            .at(&["securityContext", "runAsUser"])
            .filter(|n| n.int() == Some(0))
        {
            out.push(Hit::new(
                "runAsUser",
                n.start,
                format!("{who} sets securityContext.runAsUser=0"),
                FixBuilder::new("run as a non-zero UID the image supports, e.g. 65532")
                    .set(base, ptr, &["securityContext", "runAsUser"], json!(65532))
                    .build(),
            ));
        }
    };
    zero(pod.spec, &pod.spec_ptr, "pod".into());
    for c in &pod.containers {
        zero(c.node, &c.ptr, c.label());
    }
}

//! The built-in binary-drift detection. (A later step moves detections into Falco-format rule
//! files; this one keeps the rule's exact name, priority, tags and output so alerts do not
//! change when it does.)

use crate::enrich::ExecContext;
use crate::text::lossy;
use driftwatch_event::{Alert, Priority};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const BINARY_DRIFT_RULE: &str = "Drift Detected (Container Image Modified Binary)";
pub const BINARY_DRIFT_TAGS: &[&str] = &["container", "drift", "binary", "mitre_execution"];

/// What was done about a drifted execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing (enforcement off).
    None,
    /// Killed in the kernel at exec, before the program ran a user-space instruction.
    Killed,
    /// Killed from userspace after it started (the kernel policy for the container was not set
    /// yet when it executed).
    KilledAfterStart,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Killed => "killed",
            Action::KilledAfterStart => "killed-after-start",
        }
    }
}

/// The alert for a drifted exec, or `None` when the exec is not drift.
pub fn binary_drift(ctx: &ExecContext, action: Action, hostname: &str) -> Option<Alert> {
    if ctx.container.is_none() || !ctx.origin.is_drift() {
        return None;
    }
    let fields = exec_fields(ctx, action);
    let text = |k: &str| match fields.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "<NA>".to_string(),
        Some(v) => v.to_string(),
    };
    let output = format!(
        "Drift detected: new binary executed in container (user={} command={} container={} \
         image={}:{} exe_path={} origin={} action={})",
        text("user.name"),
        text("proc.cmdline"),
        text("container.name"),
        text("container.image.repository"),
        text("container.image.tag"),
        text("proc.exepath"),
        text("proc.exe_origin"),
        text("response.action"),
    );
    Some(Alert {
        time_ns: ctx.event.time_ns,
        rule: BINARY_DRIFT_RULE.to_string(),
        priority: Priority::Warning,
        output,
        output_fields: fields,
        tags: BINARY_DRIFT_TAGS.iter().map(|t| t.to_string()).collect(),
        source: "syscall".to_string(),
        hostname: hostname.to_string(),
    })
}

fn opt_str(v: Option<&str>) -> Value {
    v.filter(|s| !s.is_empty())
        .map_or(Value::Null, |s| Value::String(s.to_string()))
}

/// Falco-named fields of an exec (`null` when unknown).
pub fn exec_fields(ctx: &ExecContext, action: Action) -> BTreeMap<String, Value> {
    let ev = &ctx.event;
    let c = ctx.container.as_deref();
    let mut f = BTreeMap::new();
    let mut put = |k: &str, v: Value| {
        f.insert(k.to_string(), v);
    };
    put("container.id", json!(ctx.container_id()));
    put(
        "container.name",
        json!(c.map_or(driftwatch_event::HOST_CONTAINER_ID, |c| c.name.as_str())),
    );
    put("container.image", opt_str(c.map(|c| c.image_ref.as_str())));
    put(
        "container.image.repository",
        opt_str(c.map(|c| c.image_repository.as_str())),
    );
    put(
        "container.image.tag",
        opt_str(c.map(|c| c.image_tag.as_str())),
    );
    put(
        "container.image.digest",
        opt_str(c.and_then(|c| c.image_digest.as_deref())),
    );
    put(
        "k8s.ns.name",
        opt_str(c.and_then(|c| c.pod_namespace.as_deref())),
    );
    put(
        "k8s.pod.name",
        opt_str(c.and_then(|c| c.pod_name.as_deref())),
    );
    put("k8s.pod.uid", opt_str(c.and_then(|c| c.pod_uid.as_deref())));
    put("proc.pid", json!(ev.task.tgid));
    put("proc.tid", json!(ev.task.pid));
    put("proc.ppid", json!(ev.task.ppid));
    put("proc.name", json!(ev.task.comm));
    put("proc.exepath", json!(lossy(&ev.exepath)));
    put(
        "proc.exe",
        json!(ev.args.first().map(|a| lossy(a)).unwrap_or_default()),
    );
    put("proc.cmdline", json!(ctx.process.cmdline()));
    put(
        "proc.args",
        json!(ctx
            .process
            .args
            .iter()
            .skip(1)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")),
    );
    put("proc.pname", opt_str(ctx.parent.as_ref().map(|p| &*p.comm)));
    put(
        "proc.pcmdline",
        ctx.parent
            .as_ref()
            .map_or(Value::Null, |p| json!(p.cmdline())),
    );
    put("proc.exe_origin", json!(ctx.origin.as_str()));
    put("proc.is_exe_upper_layer", json!(ev.flags.overlay_upper));
    put("proc.is_exe_from_memfd", json!(ev.flags.memfd));
    put("proc.exe_ino", json!(ev.exe.ino));
    put(
        "proc.exe_ino.ctime",
        json!(ev.exe.ctime_sec * 1_000_000_000 + u64::from(ev.exe.ctime_nsec)),
    );
    put(
        "proc.exe_ino.mtime",
        json!(ev.exe.mtime_sec * 1_000_000_000 + u64::from(ev.exe.mtime_nsec)),
    );
    put("user.uid", json!(ev.task.euid));
    put("user.name", opt_str(ctx.user_name.as_deref()));
    put("group.gid", json!(ev.task.egid));
    put("evt.type", json!("execve"));
    put("evt.time", json!(ev.time_ns));
    put("response.action", json!(action.as_str()));
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proctable::ProcEntry;
    use driftwatch_event::{ContainerInfo, ExeOrigin, ExecEvent, TaskInfo};
    use std::sync::Arc;

    fn ctx(origin: ExeOrigin, in_container: bool) -> ExecContext {
        let container = in_container.then(|| {
            Arc::new(ContainerInfo {
                id: "abc".into(),
                name: "web".into(),
                image_ref: "reg/app:1".into(),
                image_repository: "reg/app".into(),
                image_tag: "1".into(),
                pod_name: Some("web-0".into()),
                ..ContainerInfo::default()
            })
        });
        ExecContext {
            event: ExecEvent {
                time_ns: 5,
                task: TaskInfo {
                    tgid: 9,
                    pid: 9,
                    ppid: 1,
                    comm: "evil".into(),
                    ..TaskInfo::default()
                },
                exepath: b"/tmp/evil\xff".to_vec(),
                args: vec![b"/tmp/evil".to_vec(), b"-x".to_vec()],
                ..ExecEvent::default()
            },
            container,
            origin,
            process: ProcEntry {
                tgid: 9,
                comm: Arc::from("evil"),
                args: Arc::from(vec!["/tmp/evil".to_string(), "-x".to_string()]),
                ..ProcEntry::default()
            },
            parent: None,
            user_name: Some("root".into()),
        }
    }

    #[test]
    fn drift_alert_for_each_drift_origin_only() {
        for (origin, expect) in [
            (ExeOrigin::Image, false),
            (ExeOrigin::CopiedUpUnchanged, false),
            (ExeOrigin::Added, true),
            (ExeOrigin::Modified, true),
            (ExeOrigin::WritableMount, true),
            (ExeOrigin::Memfd, true),
            (ExeOrigin::Unknown, true),
        ] {
            assert_eq!(
                binary_drift(&ctx(origin, true), Action::None, "h").is_some(),
                expect,
                "{origin:?}"
            );
        }
        assert!(binary_drift(&ctx(ExeOrigin::Added, false), Action::None, "h").is_none());
    }

    #[test]
    fn drift_alert_has_the_contract_fields() {
        let a = binary_drift(&ctx(ExeOrigin::Added, true), Action::Killed, "node").unwrap();
        assert_eq!(a.rule, BINARY_DRIFT_RULE);
        assert_eq!(a.priority, Priority::Warning);
        assert!(a.tags.contains(&"container".to_string()) && a.tags.contains(&"drift".to_string()));
        for k in [
            "container.id",
            "container.name",
            "container.image.repository",
            "container.image.tag",
            "container.image.digest",
            "k8s.ns.name",
            "k8s.pod.name",
            "proc.pid",
            "proc.name",
            "proc.exepath",
            "proc.cmdline",
            "proc.pname",
            "proc.exe_origin",
            "user.uid",
            "evt.type",
            "evt.time",
        ] {
            assert!(a.output_fields.contains_key(k), "missing {k}");
        }
        assert_eq!(a.output_fields["proc.exepath"], json!("/tmp/evil\\xff"));
        assert_eq!(a.output_fields["proc.cmdline"], json!("evil -x"));
        assert_eq!(a.output_fields["container.image.digest"], Value::Null);
        assert_eq!(a.output_fields["proc.pname"], Value::Null);
        assert_eq!(a.output_fields["response.action"], json!("killed"));
        assert!(a.output.contains("exe_path=/tmp/evil\\xff"), "{}", a.output);
        assert!(a.output.contains("image=reg/app:1"), "{}", a.output);
        assert!(a.output.contains("action=killed"), "{}", a.output);
    }
}

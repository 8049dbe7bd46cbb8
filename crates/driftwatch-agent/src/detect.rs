//! What the agent adds to every alert besides the rule's own output fields (Falco-named context
//! fields and driftwatch's `drift.*`/`response.action`), the response action, and the agent's own
//! alert for tampering with its sensor. Detections themselves are rules (`rules/`).

use crate::enrich::{AlertCtx, Arrival};
use driftwatch_event::text::lossy;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub use driftwatch_event::internal::{tamper_alert, KILLED_RULE, TAMPER_RULE};

/// What was done about a drifted execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing (enforcement off).
    None,
    /// Killed in the kernel before the drifted code ran a user-space instruction.
    Killed,
    /// Killed from userspace after it started (the kernel could not stop it first: a container
    /// not yet in the kernel policy, or a script read by an interpreter).
    KilledAfterStart,
    /// A connection refused in the kernel (network enforcement).
    Denied,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Killed => "killed",
            Action::KilledAfterStart => "killed-after-start",
            Action::Denied => "denied",
        }
    }
}

/// Boot time to wall clock, taken once (the kernel's start times are boot-time ns).
fn boot_offset_ns() -> u64 {
    static OFFSET: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(driftwatch_respond::kill::boot_to_wall_offset_ns)
}

fn opt_str(v: Option<&str>) -> Value {
    v.filter(|s| !s.is_empty())
        .map_or(Value::Null, |s| Value::String(s.to_string()))
}

/// Falco-named fields of an event (`null` when unknown), plus driftwatch's `drift.*` fields.
pub fn fields(
    ctx: &AlertCtx,
    arrival: Option<&Arrival>,
    action: Action,
) -> BTreeMap<String, Value> {
    let c = ctx.container.as_deref();
    let p = &ctx.process;
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
    put("proc.pid", json!(ctx.task.tgid));
    // Falco's proc.pid.ts (the process's start, ns since the epoch): with proc.pid it names one
    // process whatever PIDs are reused (the responder's kill checks it).
    put(
        "proc.pid.ts",
        if ctx.task.start_ns == 0 {
            Value::Null
        } else {
            json!(ctx.task.start_ns + boot_offset_ns())
        },
    );
    put("proc.tid", json!(ctx.task.pid));
    put("proc.ppid", json!(ctx.task.ppid));
    put("proc.name", json!(ctx.task.comm));
    put("proc.exepath", opt_str(Some(&p.exepath)));
    put("proc.exe", opt_str(p.args.first().map(String::as_str)));
    put("proc.cmdline", json!(p.cmdline()));
    put(
        "proc.args",
        json!(p.args.iter().skip(1).cloned().collect::<Vec<_>>().join(" ")),
    );
    put("proc.pname", opt_str(ctx.parent.as_ref().map(|p| &*p.comm)));
    put(
        "proc.pcmdline",
        ctx.parent
            .as_ref()
            .map_or(Value::Null, |p| json!(p.cmdline())),
    );
    put(
        "proc.exe_origin",
        ctx.exe_origin().map_or(Value::Null, |o| json!(o.as_str())),
    );
    put("proc.drifted", json!(p.drifted));
    match &ctx.exe {
        Some((file, flags)) => {
            put("proc.is_exe_upper_layer", json!(flags.overlay_upper));
            put("proc.is_exe_from_memfd", json!(flags.memfd));
            put("proc.exe_ino", json!(file.ino));
            put(
                "proc.exe_ino.ctime",
                json!(file.ctime_sec * 1_000_000_000 + u64::from(file.ctime_nsec)),
            );
            put(
                "proc.exe_ino.mtime",
                json!(file.mtime_sec * 1_000_000_000 + u64::from(file.mtime_nsec)),
            );
        }
        None => {
            for k in [
                "proc.is_exe_upper_layer",
                "proc.is_exe_from_memfd",
                "proc.exe_ino",
                "proc.exe_ino.ctime",
                "proc.exe_ino.mtime",
            ] {
                put(k, Value::Null);
            }
        }
    }
    put("user.uid", json!(ctx.task.euid));
    put("user.name", opt_str(ctx.user_name.as_deref()));
    put("group.gid", json!(ctx.task.egid));
    put("evt.type", json!(ctx.evt_type));
    put("evt.time", json!(ctx.time_ns));
    put("response.action", json!(action.as_str()));
    match arrival {
        Some(a) => {
            put("drift.via", json!(a.via.as_str()));
            put("drift.path", json!(lossy(&a.path)));
            put("drift.origin", json!(a.verdict.origin.as_str()));
            put(
                "drift.image_copy_of",
                a.verdict
                    .image_copy_of
                    .as_deref()
                    .map_or(Value::Null, |p| json!(lossy(p))),
            );
        }
        None => {
            for k in [
                "drift.via",
                "drift.path",
                "drift.origin",
                "drift.image_copy_of",
            ] {
                put(k, Value::Null);
            }
        }
    }
    f
}

/// The agent's alert for drifted code that was killed when no rule alerted on it
/// ([`KILLED_RULE`]): the context fields of any alert, the container and the file.
pub fn killed_alert(
    ctx: &AlertCtx,
    arrival: Option<&Arrival>,
    action: Action,
    hostname: &str,
) -> driftwatch_event::Alert {
    let container = ctx
        .container
        .as_deref()
        .map_or(driftwatch_event::HOST_CONTAINER_ID, |c| c.name.as_str())
        .to_string();
    let file = arrival.map_or_else(|| ctx.process.exepath.to_string(), |a| lossy(&a.path));
    driftwatch_event::internal::killed_alert(
        fields(ctx, arrival, action),
        &container,
        &file,
        action.as_str(),
        hostname,
        ctx.time_ns,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::Via;
    use crate::proctable::ProcEntry;
    use driftwatch_event::{ContainerInfo, ExeFile, ExeOrigin, ExecFlags, TaskInfo};
    use driftwatch_origin::Verdict;
    use std::sync::Arc;

    fn ctx() -> AlertCtx {
        AlertCtx {
            time_ns: 5,
            evt_type: "execve",
            task: TaskInfo {
                tgid: 9,
                pid: 9,
                ppid: 1,
                comm: "evil".into(),
                ..TaskInfo::default()
            },
            container: Some(Arc::new(ContainerInfo {
                id: "abc".into(),
                name: "web".into(),
                image_ref: "reg/app:1".into(),
                image_repository: "reg/app".into(),
                image_tag: "1".into(),
                pod_name: Some("web-0".into()),
                ..ContainerInfo::default()
            })),
            process: ProcEntry {
                tgid: 9,
                comm: Arc::from("evil"),
                exepath: Arc::from("/tmp/evil\\xff"),
                args: Arc::from(vec!["/tmp/evil".to_string(), "-x".to_string()]),
                exe_origin: Some(ExeOrigin::Added),
                ..ProcEntry::default()
            },
            parent: None,
            user_name: Some("root".into()),
            exe: Some((ExeFile::default(), ExecFlags::default())),
        }
    }

    fn arrival(via: Via, origin: ExeOrigin) -> Arrival {
        Arrival {
            via,
            path: b"/tmp/evil\xff".to_vec(),
            verdict: Verdict::of(origin),
        }
    }

    #[test]
    fn context_fields_have_the_contract_fields() {
        let f = fields(
            &ctx(),
            Some(&arrival(Via::Exec, ExeOrigin::Added)),
            Action::Killed,
        );
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
            "drift.via",
            "drift.path",
            "drift.origin",
        ] {
            assert!(f.contains_key(k), "missing {k}");
        }
        assert_eq!(f["proc.exepath"], json!("/tmp/evil\\xff"));
        assert_eq!(f["drift.path"], json!("/tmp/evil\\xff"));
        assert_eq!(f["proc.cmdline"], json!("evil -x"));
        assert_eq!(f["container.image.digest"], Value::Null);
        assert_eq!(f["proc.pname"], Value::Null);
        assert_eq!(f["response.action"], json!("killed"));
        assert_eq!(f["drift.via"], json!("exec"));
    }

    #[test]
    fn an_event_without_drift_has_null_drift_fields() {
        let mut arr = arrival(Via::Interpreter, ExeOrigin::Added);
        arr.verdict.image_copy_of = Some(Arc::from(&b"/usr/lib/tool.py"[..]));
        let f = fields(&ctx(), Some(&arr), Action::None);
        assert_eq!(f["drift.image_copy_of"], json!("/usr/lib/tool.py"));
        let none = fields(&ctx(), None, Action::None);
        for k in [
            "drift.via",
            "drift.path",
            "drift.origin",
            "drift.image_copy_of",
        ] {
            assert_eq!(none[k], Value::Null, "{k}");
        }
    }
}

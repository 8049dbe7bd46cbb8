//! The agent's events as a rule-engine [`FieldSource`]: every field of `driftwatch_rules::FIELDS`
//! read from the event, the process table, the container and the drift arrival, without
//! allocating (computed strings go to the engine's scratch buffer).

use crate::detect::Action;
use crate::enrich::{AlertCtx, Arrival};
use crate::proctable::ProcessTable;
use driftwatch_rules::{EventType, FieldArg, FieldId, FieldSource, Scratch, Value, FIELDS};

/// The agent's meaning of each rule-engine field, indexed by [`FieldId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum F {
    EvtType,
    EvtDir,
    EvtTime,
    EvtNum,
    EvtHostname,
    ProcName,
    ProcPname,
    ProcAname,
    ProcExe,
    ProcExepath,
    ProcCmdline,
    ProcArgs,
    ProcPcmdline,
    ProcCwd,
    ProcPid,
    ProcPpid,
    ProcApid,
    Tid,
    IsUpper,
    IsLower,
    IsMemfd,
    IsWritable,
    ExeIno,
    ExeCtime,
    ExeMtime,
    ExeOrigin,
    UserUid,
    UserName,
    GroupGid,
    ContainerId,
    ContainerName,
    ContainerImage,
    ContainerRepository,
    ContainerTag,
    ContainerDigest,
    K8sNs,
    K8sPod,
    K8sPodUid,
    DriftVia,
    DriftPath,
    DriftOrigin,
    DriftCopyOf,
    Action,
    /// A field the agent cannot provide for its events (no value).
    None,
}

/// Field ids resolved once at start.
#[derive(Debug, Clone)]
pub struct FieldMap(Vec<F>);

impl Default for FieldMap {
    fn default() -> Self {
        FieldMap(
            FIELDS
                .iter()
                .map(|d| match d.name {
                    "evt.type" => F::EvtType,
                    "evt.dir" => F::EvtDir,
                    "evt.time" | "evt.rawtime" => F::EvtTime,
                    "evt.num" => F::EvtNum,
                    "evt.hostname" => F::EvtHostname,
                    "proc.name" => F::ProcName,
                    "proc.pname" => F::ProcPname,
                    "proc.aname" => F::ProcAname,
                    "proc.exe" => F::ProcExe,
                    "proc.exepath" => F::ProcExepath,
                    "proc.cmdline" => F::ProcCmdline,
                    "proc.args" => F::ProcArgs,
                    "proc.pcmdline" => F::ProcPcmdline,
                    "proc.cwd" => F::ProcCwd,
                    "proc.pid" => F::ProcPid,
                    "proc.ppid" => F::ProcPpid,
                    "proc.apid" => F::ProcApid,
                    "proc.tid" | "thread.tid" => F::Tid,
                    "proc.is_exe_upper_layer" => F::IsUpper,
                    "proc.is_exe_lower_layer" => F::IsLower,
                    "proc.is_exe_from_memfd" => F::IsMemfd,
                    "proc.is_exe_writable" => F::IsWritable,
                    "proc.exe_ino" => F::ExeIno,
                    "proc.exe_ino.ctime" => F::ExeCtime,
                    "proc.exe_ino.mtime" => F::ExeMtime,
                    "proc.exe_origin" => F::ExeOrigin,
                    "user.uid" => F::UserUid,
                    "user.name" => F::UserName,
                    "group.gid" => F::GroupGid,
                    "container.id" => F::ContainerId,
                    "container.name" => F::ContainerName,
                    "container.image" => F::ContainerImage,
                    "container.image.repository" => F::ContainerRepository,
                    "container.image.tag" => F::ContainerTag,
                    "container.image.digest" => F::ContainerDigest,
                    "k8s.ns.name" => F::K8sNs,
                    "k8s.pod.name" => F::K8sPod,
                    "k8s.pod.uid" => F::K8sPodUid,
                    "drift.via" => F::DriftVia,
                    "drift.path" => F::DriftPath,
                    "drift.origin" => F::DriftOrigin,
                    "drift.image_copy_of" => F::DriftCopyOf,
                    "response.action" => F::Action,
                    _ => F::None,
                })
                .collect(),
        )
    }
}

/// One event as the rules see it.
#[derive(Debug)]
pub struct EventSource<'a> {
    pub fields: &'a FieldMap,
    pub evt_type: EventType,
    pub num: u64,
    pub ctx: &'a AlertCtx,
    pub arrival: Option<&'a Arrival>,
    pub action: Action,
    pub cwd: Option<&'a [u8]>,
    pub table: &'a ProcessTable,
    pub hostname: &'a str,
}

fn s(v: &str) -> Option<Value<'_>> {
    (!v.is_empty()).then_some(Value::Str(v.as_bytes()))
}

fn cmdline<'s>(comm: &str, args: &[String], out: &'s mut Scratch) -> Value<'s> {
    out.bytes.extend_from_slice(comm.as_bytes());
    for a in args.iter().skip(1) {
        out.bytes.push(b' ');
        out.bytes.extend_from_slice(a.as_bytes());
    }
    Value::Str(&out.bytes)
}

impl FieldSource for EventSource<'_> {
    fn event_type(&self) -> EventType {
        self.evt_type
    }

    fn get<'a>(
        &'a self,
        field: FieldId,
        arg: &FieldArg,
        scratch: &'a mut Scratch,
    ) -> Option<Value<'a>> {
        let c = self.ctx.container.as_deref();
        let p = &self.ctx.process;
        let exe = self.ctx.exe.as_ref();
        let f = self
            .fields
            .0
            .get(usize::from(field.0))
            .copied()
            .unwrap_or(F::None);
        match f {
            F::EvtType => Some(Value::Str(self.ctx.evt_type.as_bytes())),
            F::EvtDir => Some(Value::Str(b"<")),
            F::EvtTime => Some(Value::U64(self.ctx.time_ns)),
            F::EvtNum => Some(Value::U64(self.num)),
            F::EvtHostname => s(self.hostname),
            F::ProcName => s(&self.ctx.task.comm),
            F::ProcPname => self.ctx.parent.as_ref().and_then(|p| s(&p.comm)),
            F::ProcAname | F::ProcApid => {
                let tgid = self.ctx.task.tgid;
                let value = |e: &crate::proctable::ProcEntry| e.comm.clone();
                match arg {
                    FieldArg::Index(n) => {
                        let e = self.table.ancestor(tgid, usize::try_from(*n).ok()?)?;
                        if f == F::ProcApid {
                            Some(Value::U64(u64::from(e.tgid)))
                        } else {
                            scratch.bytes.extend_from_slice(value(e).as_bytes());
                            Some(Value::Str(&scratch.bytes))
                        }
                    }
                    FieldArg::None => {
                        for n in 1..64 {
                            let Some(e) = self.table.ancestor(tgid, n) else {
                                break;
                            };
                            if f == F::ProcApid {
                                scratch.nums.push(u64::from(e.tgid));
                            } else {
                                scratch.push_str(e.comm.as_bytes());
                            }
                        }
                        Some(if f == F::ProcApid {
                            Value::NumList(scratch)
                        } else {
                            Value::StrList(scratch)
                        })
                    }
                }
            }
            F::ProcExe => p.args.first().and_then(|a| s(a)),
            F::ProcExepath => s(&p.exepath),
            F::ProcCmdline => Some(cmdline(&p.comm, &p.args, scratch)),
            F::ProcArgs => {
                for (i, a) in p.args.iter().skip(1).enumerate() {
                    if i > 0 {
                        scratch.bytes.push(b' ');
                    }
                    scratch.bytes.extend_from_slice(a.as_bytes());
                }
                Some(Value::Str(&scratch.bytes))
            }
            F::ProcPcmdline => {
                let parent = self.ctx.parent.as_ref()?;
                Some(cmdline(&parent.comm, &parent.args, scratch))
            }
            F::ProcCwd => self.cwd.map(Value::Str),
            F::ProcPid => Some(Value::U64(u64::from(self.ctx.task.tgid))),
            F::ProcPpid => Some(Value::U64(u64::from(self.ctx.task.ppid))),
            F::Tid => Some(Value::U64(u64::from(self.ctx.task.pid))),
            F::IsUpper => exe.map(|(_, fl)| Value::Bool(fl.overlay_upper)),
            F::IsLower => exe.map(|(file, fl)| {
                Value::Bool(
                    !fl.overlay_upper
                        && fl.on_root_mount
                        && file.s_magic == crate::origin::OVERLAYFS_SUPER_MAGIC,
                )
            }),
            F::IsMemfd => exe.map(|(_, fl)| Value::Bool(fl.memfd)),
            F::IsWritable => exe.map(|(_, fl)| Value::Bool(fl.overlay_upper || !fl.on_root_mount)),
            F::ExeIno => exe.map(|(file, _)| Value::U64(file.ino)),
            F::ExeCtime => exe.map(|(file, _)| {
                Value::U64(file.ctime_sec * 1_000_000_000 + u64::from(file.ctime_nsec))
            }),
            F::ExeMtime => exe.map(|(file, _)| {
                Value::U64(file.mtime_sec * 1_000_000_000 + u64::from(file.mtime_nsec))
            }),
            F::ExeOrigin => p.exe_origin.map(|o| Value::Str(o.as_str().as_bytes())),
            F::UserUid => Some(Value::U64(u64::from(self.ctx.task.euid))),
            F::UserName => self.ctx.user_name.as_deref().and_then(s),
            F::GroupGid => Some(Value::U64(u64::from(self.ctx.task.egid))),
            F::ContainerId => Some(Value::Str(self.ctx.container_id().as_bytes())),
            F::ContainerName => Some(Value::Str(
                c.map_or(driftwatch_event::HOST_CONTAINER_ID, |c| c.name.as_str())
                    .as_bytes(),
            )),
            F::ContainerImage => c.and_then(|c| s(&c.image_ref)),
            F::ContainerRepository => c.and_then(|c| s(&c.image_repository)),
            F::ContainerTag => c.and_then(|c| s(&c.image_tag)),
            F::ContainerDigest => c.and_then(|c| c.image_digest.as_deref()).and_then(s),
            F::K8sNs => c.and_then(|c| c.pod_namespace.as_deref()).and_then(s),
            F::K8sPod => c.and_then(|c| c.pod_name.as_deref()).and_then(s),
            F::K8sPodUid => c.and_then(|c| c.pod_uid.as_deref()).and_then(s),
            F::DriftVia => self.arrival.map(|a| Value::Str(a.via.as_str().as_bytes())),
            F::DriftPath => self.arrival.map(|a| Value::Str(&a.path)),
            F::DriftOrigin => self
                .arrival
                .map(|a| Value::Str(a.verdict.origin.as_str().as_bytes())),
            F::DriftCopyOf => self
                .arrival
                .and_then(|a| a.verdict.image_copy_of.as_deref())
                .map(Value::Str),
            F::Action => Some(Value::Str(self.action.as_str().as_bytes())),
            F::None => None,
        }
    }
}

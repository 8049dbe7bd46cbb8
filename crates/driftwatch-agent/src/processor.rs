//! The processor: one task that takes every decoded kernel event in order, enriches it
//! (process table, container, origins, scripts), evaluates the rules and sends the alerts on.
//! It also keeps the kernel's policy in step with the container registry.
//!
//! Its state is grouped by job: [`Enrichment`] (what an event is enriched with), [`Kernel`]
//! (the sensor's maps, the exec gate and the enforced cgroups), [`Evaluation`] (the compiled
//! rules and their scratch state) and the sensor's [`Health`].

use crate::detect::{self, Action};
use crate::dns::DnsNames;
use crate::enrich::{self, AlertCtx, Arrival, Via};
use crate::fields::{Call, EventSource, FieldMap, NetFacts, SocketRoles};
use crate::health::Health;
use crate::metrics::{gauge, Metrics};
use crate::proctable::ProcessTable;
use crate::users::UserNames;
use driftwatch_baseline::{Proto, Workload};
use driftwatch_bpf::ExecSensor;
use driftwatch_event::{
    Alert, ContainerInfo, DnsEvent, Event, ExeOrigin, ExecEvent, FileEvent, FileLayer, FileOp,
    MapEvent, MapHow, NetEvent, NetOp, TaskInfo,
};
use driftwatch_origin::{script, FileFacts, Origins, Verdict};
use driftwatch_output::Summaries;
use driftwatch_respond::{Approvals, ExecGate, NetEnforcer};
use driftwatch_rules::{EvalCtx, EventType, OutputOptions, RuleSet};
use driftwatch_runtime::{Registry, RegistryUpdate};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What an event is enriched with.
pub(crate) struct Enrichment {
    pub table: ProcessTable,
    pub origins: Origins,
    pub users: UserNames,
    pub registry: Registry,
    /// The agent's (the host's) mount namespace: a task in it is not inside a container.
    pub host_mntns: u64,
    /// Which end of its connections a container process is (for the fields of a dup).
    pub sockets: SocketRoles,
    /// The DNS names each container's own DNS answers gave its peers (`fd.sip.name`, …).
    pub dns: DnsNames,
    /// The workloads' network baselines (`None` when `network.baselines` is off).
    pub baselines: Option<driftwatch_baseline::Baselines>,
}

/// The kernel side: the loaded sensor (policy map, statistics; dropping it detaches), the exec
/// gate (under `--enforce`) and the cgroups written to the policy map.
pub(crate) struct Kernel {
    pub sensor: ExecSensor,
    pub gate: Option<ExecGate>,
    /// cgroup id → policy flags written to `dw_policy`.
    pub policed: HashMap<u64, u32>,
    pub enforce: bool,
    /// Network enforcement (`--enforce` and `network.enforce`), when the kernel can do it.
    pub net: Option<NetEnforcer>,
    /// Approved drift (approvals file and rule allow-lists): not alerted, not killed
    /// (`approve.rs`).
    pub approvals: Arc<Approvals>,
}

/// The compiled rules every event is evaluated against, and their per-event state.
pub(crate) struct Evaluation {
    pub rules: RuleSet,
    pub fields: FieldMap,
    pub ctx: EvalCtx,
    /// Events evaluated so far (`evt.num`).
    pub evt_num: u64,
    pub hostname: String,
}

pub(crate) struct Processor {
    pub enrich: Enrichment,
    pub kernel: Kernel,
    pub eval: Evaluation,
    pub health: Health,
    pub alerts: mpsc::Sender<Alert>,
    /// A copy of every alert for the responder (`None`: no playbooks).
    pub respond: Option<mpsc::Sender<Alert>>,
    /// Per-container drift summaries (told of removed containers).
    pub summaries: Arc<Summaries>,
    pub metrics: Arc<Metrics>,
}

impl Processor {
    pub(crate) async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        mut updates: mpsc::Receiver<RegistryUpdate>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks: u64 = 0;
        let mut updates_open = true;
        loop {
            tokio::select! {
                biased;
                ev = events.recv() => match ev {
                    Some(ev) => self.on_event(ev).await,
                    None => break,
                },
                u = updates.recv(), if updates_open => match u {
                    Some(u) => self.on_update(u),
                    None => updates_open = false,
                },
                _ = tick.tick() => {
                    ticks += 1;
                    self.on_tick(ticks).await;
                }
            }
        }
        self.refresh_stats();
        self.save_baselines(true);
    }

    /// Writes the baselines that changed; every 5 s (and at the end) also reads again the files
    /// a user edited.
    fn save_baselines(&mut self, reload: bool) {
        let Some(b) = self.enrich.baselines.as_mut() else {
            return;
        };
        let mut errors = if reload {
            b.reload_changed()
        } else {
            Vec::new()
        };
        errors.extend(b.flush());
        for e in errors {
            self.metrics.baseline_errors.inc();
            tracing::error!(error = %e, "network baseline");
        }
        self.metrics.baseline_workloads.set(gauge(b.len()));
    }

    async fn on_tick(&mut self, ticks: u64) {
        self.refresh_stats();
        self.save_baselines(ticks.is_multiple_of(5));
        self.sync_net_enforcement();
        self.expire_container_approvals();
        let mut findings = self.health.check(&mut self.kernel, ticks);
        let k = &mut self.kernel;
        if let Some(net) = &k.net {
            match net.check(&mut k.sensor) {
                Ok(f) => findings.extend(f),
                Err(e) => {
                    findings.push(format!("the network enforcement maps cannot be read: {e}"))
                }
            }
        }
        for finding in findings {
            self.metrics.tamper_detections.inc();
            tracing::error!(finding = %finding, "sensor tampering");
            let alert = detect::tamper_alert(&finding, &self.eval.hostname, now_ns());
            self.send(alert).await;
        }
        if ticks.is_multiple_of(30) {
            let gone = self.enrich.table.sweep(Path::new("/proc"));
            tracing::debug!(gone, "process table swept");
        }
    }

    fn refresh_stats(&self) {
        self.health
            .mirror_kernel_stats(&self.kernel.sensor, &self.metrics);
        let m = &self.metrics;
        m.processes_tracked.set(gauge(self.enrich.table.len()));
        m.containers_tracked.set(gauge(self.enrich.registry.len()));
        m.policy_entries.set(gauge(self.kernel.policed.len()));
    }

    /// Puts a container's cgroup in the kernel policy map and has the gate watch its root.
    pub(crate) fn track(&mut self, info: &ContainerInfo) {
        if let Some(b) = self.enrich.baselines.as_mut() {
            let exposed: Vec<(Proto, u16)> = info
                .exposed_ports
                .iter()
                .filter_map(|p| exposed_port(p))
                .collect();
            b.seen(
                &Workload::of(info),
                info.image_digest.as_deref(),
                &exposed,
                now_secs(),
            );
        }
        if let Some(g) = &self.kernel.gate {
            g.watch(info);
        }
        let Some(cg) = info.cgroup_id else { return };
        if self.kernel.policed.contains_key(&cg) {
            return;
        }
        let flags = self.policy_flags(info);
        let k = &mut self.kernel;
        match k.sensor.set_policy(cg, flags) {
            Ok(()) => {
                k.policed.insert(cg, flags);
            }
            Err(e) => {
                tracing::warn!(container = %info.id, error = %e, "cannot write the kernel policy")
            }
        }
    }

    /// Network enforcement of every tracked container whose workload finished learning (once
    /// a second: learning ends, baselines are edited).
    fn sync_net_enforcement(&mut self) {
        if self.kernel.net.is_none() {
            return;
        }
        for info in self.enrich.registry.all() {
            self.enforce_net(&info);
        }
    }

    /// Under network enforcement, a container whose workload finished learning may connect only
    /// to its baseline's peers: the kernel's entries for its cgroup are brought in line.
    fn enforce_net(&mut self, info: &ContainerInfo) {
        let (Some(cg), Some(b)) = (info.cgroup_id, self.enrich.baselines.as_ref()) else {
            return;
        };
        let k = &mut self.kernel;
        let Some(net) = k.net.as_mut() else { return };
        if !k.policed.contains_key(&cg) {
            return;
        }
        let key = Workload::of(info).key;
        let Some(baseline) = b.get(&key) else { return };
        if baseline.is_learning(now_secs()) {
            return;
        }
        let dns = &self.enrich.dns;
        let peers = driftwatch_respond::net::allowed_peers(cg, baseline, b.networks(), &|name| {
            dns.addresses_of(&info.id, name)
        });
        let first = !net.is_enforced(cg);
        match net.sync(&mut k.sensor, cg, peers) {
            Ok(flags) => {
                k.policed.insert(cg, flags);
                if first {
                    tracing::info!(container = %info.id, workload = %key, "network enforcement on: connections outside the baseline are refused");
                }
            }
            Err(e) => {
                tracing::warn!(container = %info.id, error = %e, "cannot write the network enforcement")
            }
        }
    }

    /// A process ran drifted code: remember it, and under network enforcement tell the kernel.
    fn mark_drifted(&mut self, task: &TaskInfo) {
        self.enrich.table.mark_drifted(task.tgid);
        let k = &mut self.kernel;
        if let Some(net) = k.net.as_mut() {
            if let Err(e) = net.mark_drifted(&mut k.sensor, task.tgid, task.start_ns) {
                tracing::warn!(pid = task.tgid, error = %e, "cannot mark a drifted process for network enforcement");
            }
        }
    }

    fn untrack(&mut self, info: &ContainerInfo) {
        let k = &mut self.kernel;
        if let (Some(net), Some(cg)) = (k.net.as_mut(), info.cgroup_id) {
            if let Err(e) = net.release(&mut k.sensor, cg) {
                tracing::debug!(container = %info.id, error = %e, "network enforcement entries already gone");
            }
        }
        if let Some(g) = &k.gate {
            g.unwatch(&info.id);
        }
        if let Some(cg) = info.cgroup_id {
            if k.policed.remove(&cg).is_some() {
                if let Err(e) = k.sensor.remove_policy(cg) {
                    tracing::debug!(container = %info.id, error = %e, "policy entry already gone");
                }
            }
        }
        self.enrich.origins.forget_container(&info.id);
        self.enrich.users.forget(&info.id);
        self.enrich.dns.forget(&info.id);
    }

    fn on_update(&mut self, u: RegistryUpdate) {
        match u {
            RegistryUpdate::Added(info) => {
                tracing::info!(container = %info.id, image = %info.image_ref, "container tracked");
                self.track(&info);
                self.enforce_net(&info);
            }
            RegistryUpdate::Removed(info) => {
                tracing::info!(container = %info.id, "container gone");
                self.untrack(&info);
                self.summaries.removed(&info);
            }
        }
    }

    async fn on_event(&mut self, ev: Event) {
        let counted = &self.metrics.events;
        match ev {
            Event::Fork(f) => {
                counted.fork.inc();
                self.enrich.table.on_fork(&f);
                if self.kernel.net.is_some()
                    && self
                        .enrich
                        .table
                        .get(f.child.tgid)
                        .is_some_and(|p| p.drifted)
                {
                    self.mark_drifted(&f.child);
                }
            }
            Event::Exit(x) => {
                counted.exit.inc();
                self.enrich.table.on_exit(&x);
                let k = &mut self.kernel;
                if let Some(net) = k.net.as_mut() {
                    if let Err(e) = net.exited(&mut k.sensor, x.task.tgid) {
                        tracing::debug!(pid = x.task.tgid, error = %e, "drifted mark already gone");
                    }
                }
            }
            Event::Exec(e) => {
                counted.exec.inc();
                self.on_exec(e).await;
            }
            Event::Map(m) => {
                counted.map.inc();
                self.on_map(m).await;
            }
            Event::File(f) => {
                counted.file.inc();
                self.on_file(f).await;
            }
            Event::Net(n) => {
                counted.net.inc();
                self.on_net(n).await;
            }
            Event::Dns(d) => {
                counted.dns.inc();
                self.on_dns(&d);
            }
        }
    }

    /// A DNS answer a container received: its names for the addresses it resolved. Only
    /// containers the registry knows by cgroup (the kernel copies answers for `dw_policy`
    /// cgroups only, which the processor wrote from the registry).
    fn on_dns(&mut self, d: &DnsEvent) {
        if let Some(c) = self.enrich.registry.by_cgroup(d.cgroup_id) {
            let learned = self.enrich.dns.learn(&c.id, &d.payload);
            tracing::trace!(container = %c.id, learned, "DNS answer");
            // Under network enforcement a baseline's DNS names are allowed at the addresses the
            // container resolved: allow the new ones now.
            if learned > 0
                && self
                    .kernel
                    .net
                    .as_ref()
                    .is_some_and(|n| c.cgroup_id.is_some_and(|cg| n.is_enforced(cg)))
            {
                self.enforce_net(&c);
            }
        }
    }

    async fn container_of(&mut self, t: &TaskInfo) -> Option<Arc<ContainerInfo>> {
        let registry = &self.enrich.registry;
        if let Some(c) = registry.by_cgroup(t.cgroup_id) {
            return Some(c);
        }
        if let Some(c) = registry.by_mntns(t.mntns) {
            return Some(c);
        }
        if t.mntns == self.enrich.host_mntns {
            return None;
        }
        let c = registry
            .resolve_unknown(t.cgroup_id, t.mntns, t.tgid)
            .await?;
        self.track(&c);
        Some(c)
    }

    /// The container of a task, and whether the task is *inside* it: it must also have left
    /// the host's mount namespace (runc's own set-up runs in the container's cgroup but in the
    /// host's mount namespace).
    async fn container_and_inside(&mut self, t: &TaskInfo) -> (Option<Arc<ContainerInfo>>, bool) {
        let c = self.container_of(t).await;
        let inside = c.is_some() && t.mntns != self.enrich.host_mntns;
        (c, inside)
    }

    /// The container a task is inside (see [`Processor::container_and_inside`]).
    async fn inside_container(&mut self, t: &TaskInfo) -> Option<Arc<ContainerInfo>> {
        match self.container_and_inside(t).await {
            (c, true) => c,
            (_, false) => None,
        }
    }

    fn file_verdict(&mut self, facts: FileFacts<'_>, container: &ContainerInfo) -> Verdict {
        let metrics = &self.metrics;
        self.enrich.origins.file(facts, container, |e| {
            metrics.origin_lookup_errors.inc();
            tracing::warn!(error = %e, "cannot decide a file's origin");
        })
    }

    /// What to do about drift the kernel did or did not stop.
    fn respond(&self, killed_in_kernel: bool, tgid: u32) -> Action {
        if killed_in_kernel {
            return Action::Killed;
        }
        if !self.kernel.enforce {
            return Action::None;
        }
        // The kernel could not stop it first: stop it now, and say it ran.
        if driftwatch_respond::kill::kill_process(tgid) {
            self.metrics.userspace_kills.inc();
            Action::KilledAfterStart
        } else {
            Action::None
        }
    }

    /// Alerts are never dropped: wait for room (the ring-buffer reader is decoupled by the
    /// events channel, whose overflow is counted).
    async fn send(&self, alert: Alert) {
        self.metrics.count_alert(&alert.rule);
        if let Some(tx) = &self.respond {
            if tx.try_send(alert.clone()).is_err() {
                self.metrics.response.dropped_alerts.inc();
                tracing::warn!(rule = %alert.rule, "the responder is full: no playbook runs for this alert");
            }
        }
        if self.alerts.send(alert).await.is_err() {
            self.metrics.alert_channel_drops.inc();
        }
    }

    /// Evaluate the rules on one event: once without an arrival, or once per drifted-code
    /// arrival (the same alert twice, e.g. a shell rule on an exec with two arrivals, is sent
    /// once). Every alert carries the agent's context fields besides the rule's own.
    async fn evaluate(
        &mut self,
        ctx: &AlertCtx,
        evt_type: EventType,
        arrivals: &[(Arrival, Action)],
        cwd: Option<&[u8]>,
        call: Call<'_>,
    ) {
        let alerts = self.eval.alerts(
            &self.enrich.table,
            &self.enrich.dns,
            ctx,
            evt_type,
            arrivals,
            cwd,
            call,
        );
        for alert in alerts {
            self.send(alert).await;
        }
    }

    async fn on_exec(&mut self, ev: ExecEvent) {
        self.health.saw_exec(ev.task.tgid);
        self.enrich.table.on_exec(&ev);
        let (container, inside) = self.container_and_inside(&ev.task).await;
        let mut arrivals = Vec::new();
        let exe = match container.as_deref().filter(|_| inside) {
            Some(c) => {
                let facts = FileFacts {
                    path: &ev.exepath,
                    file: &ev.exe,
                    flags: &ev.flags,
                };
                self.file_verdict(facts, c)
            }
            None => Verdict::of(ExeOrigin::Host),
        };
        self.enrich.table.set_exe_origin(ev.task.tgid, exe.origin);
        // Approved drift is neither alerted nor killed nor marked (a kill in the kernel is
        // still reported below).
        let exe_approved = inside
            && exe.origin.is_drift()
            && container
                .as_deref()
                .is_some_and(|c| self.approved(c, &ev.exepath));
        let exe_drift = exe.origin.is_drift() && !exe_approved;
        if inside && exe_drift {
            self.mark_drifted(&ev.task);
        }
        // A kill in the kernel is always reported, whatever userspace decided afterwards; a kill
        // for the script (doomed by the exec gate) is reported on the script's arrival.
        let script = match container.as_deref().filter(|_| inside) {
            Some(c) => self
                .script_arrival(&ev, c)
                .filter(|a| (ev.flags.doomed && ev.flags.killed) || !self.approved(c, &a.path)),
            None => None,
        };
        let exe_killed = ev.flags.killed && !(ev.flags.doomed && script.is_some());
        if inside && (exe_drift || exe_killed) {
            arrivals.push(Arrival {
                via: Via::Exec,
                path: ev.exepath.clone(),
                verdict: exe,
            });
        }
        if script.is_some() {
            self.mark_drifted(&ev.task);
        }
        arrivals.extend(script);
        let ctx = enrich::alert_ctx(
            ev.time_ns,
            "execve",
            &ev.task,
            container,
            Some((ev.exe, ev.flags)),
            &self.enrich.table,
            &mut self.enrich.users,
        );
        let arrivals: Vec<(Arrival, Action)> = arrivals
            .into_iter()
            .map(|a| {
                let killed = match a.via {
                    Via::Exec => exe_killed,
                    _ => ev.flags.doomed && ev.flags.killed,
                };
                let action = self.respond(killed, ev.task.tgid);
                (a, action)
            })
            .collect();
        self.evaluate(
            &ctx,
            EventType::Execve,
            &arrivals,
            ev.cwd.as_deref(),
            Call::None,
        )
        .await;
    }

    /// A script this exec runs: the `#!` script itself, or the program file given to an
    /// interpreter. `Some` only when that script is drift.
    fn script_arrival(&mut self, ev: &ExecEvent, c: &ContainerInfo) -> Option<Arrival> {
        let (via, file) = if ev.flags.script {
            (Via::Shebang, ev.filename.as_slice())
        } else {
            let argv0 = ev.args.first().map(Vec::as_slice);
            let it = script::interpreter_of(&ev.exepath, argv0)?;
            (Via::Interpreter, script::script_argument(it, &ev.args)?)
        };
        let Some(path) = script::absolute(file, ev.cwd.as_deref()) else {
            self.metrics.scripts_unresolved.inc();
            return None;
        };
        let verdict = match self
            .enrich
            .origins
            .script(c, ev.task.tgid, ev.task.mntns, &path)
        {
            Some(v) => v,
            // The gate judged the script drifted and the kernel killed the exec: report it even
            // though the file is gone now.
            None if ev.flags.doomed => Verdict::of(ExeOrigin::Unknown),
            None => return None,
        };
        (verdict.origin.is_drift() || ev.flags.doomed).then_some(Arrival { via, path, verdict })
    }

    async fn on_map(&mut self, m: MapEvent) {
        let Some(container) = self.inside_container(&m.task).await else {
            return;
        };
        let facts = FileFacts {
            path: &m.path,
            file: &m.file,
            flags: &m.flags,
        };
        let verdict = self.file_verdict(facts, &container);
        let drift = verdict.origin.is_drift() && !self.approved(&container, &m.path);
        if !(drift || m.flags.killed) {
            return;
        }
        if drift {
            self.mark_drifted(&m.task);
        }
        let ctx = enrich::alert_ctx(
            m.time_ns,
            m.how.evt_type(),
            &m.task,
            Some(container),
            None,
            &self.enrich.table,
            &mut self.enrich.users,
        );
        let exe = script::basename(ctx.process.exepath.as_bytes());
        let via = if m.how == MapHow::Interp
            || exe.starts_with(b"ld-linux")
            || exe.starts_with(b"ld-musl")
            || exe == b"ld.so"
        {
            Via::Loader
        } else {
            Via::Mapping
        };
        let arrival = Arrival {
            via,
            path: m.path,
            verdict,
        };
        let action = self.respond(m.flags.killed, m.task.tgid);
        let evt_type = match m.how {
            MapHow::Mmap => EventType::Mmap,
            MapHow::Mprotect => EventType::Mprotect,
            MapHow::Interp => EventType::Execve,
        };
        self.evaluate(&ctx, evt_type, &[(arrival, action)], None, Call::None)
            .await;
    }

    /// A file-changing syscall in a container: the rules decide (file and package drift).
    async fn on_file(&mut self, f: FileEvent) {
        let judge = self.kernel.gate.is_some() && may_copy_up(&f);
        let evt_type = Some(EventType::File(f.op)).filter(|t| self.eval.rules.has_rules_for(*t));
        if !judge && evt_type.is_none() {
            return;
        }
        let Some(c) = self.inside_container(&f.task).await else {
            return;
        };
        if judge {
            // An image file may just have been copied up (chmod, chown, an open for write):
            // judge it now, so a copied-up library is allowed before it is mapped.
            if let Some(g) = &self.kernel.gate {
                g.judge_path(&c, &f.path);
            }
        }
        let Some(evt_type) = evt_type else { return };
        let ctx = enrich::alert_ctx(
            f.time_ns,
            f.op.as_str(),
            &f.task,
            Some(c),
            None,
            &self.enrich.table,
            &mut self.enrich.users,
        );
        self.evaluate(&ctx, evt_type, &[], None, Call::File(&f))
            .await;
    }

    /// A network syscall in a container: judged against its workload's network baseline (and
    /// learned from, unless the process ran drifted code), then the rules decide. Like a file
    /// event, an event no rule and no baseline needs is not enriched.
    async fn on_net(&mut self, n: NetEvent) {
        let rules = &self.eval.rules;
        let dups = [NetOp::Dup, NetOp::Dup2, NetOp::Dup3]
            .into_iter()
            .any(|op| rules.has_rules_for(EventType::Net(op)));
        if dups {
            self.enrich.sockets.learn(&n);
        }
        let evt_type = EventType::Net(n.op);
        let has_rules = self.eval.rules.has_rules_for(evt_type);
        let judged = self.enrich.baselines.is_some()
            && driftwatch_baseline::activity_of(&n, |_| false).is_some();
        if !has_rules && !judged {
            return;
        }
        let local_is_server = self.enrich.sockets.local_is_server(&n);
        let Some(c) = self.inside_container(&n.task).await else {
            return;
        };
        let workload = Workload::of(&c);
        let drifted = self
            .enrich
            .table
            .get(n.task.tgid)
            .is_some_and(|p| p.drifted);
        let verdict = match self.enrich.baselines.as_mut() {
            Some(b) => {
                let name = n
                    .remote
                    .and_then(|r| self.enrich.dns.name_of(&c.id, r.ip()));
                match b.activity(&workload.key, &n, name) {
                    Some((a, learnable)) => {
                        let now = now_secs();
                        let v = b.judge(&workload.key, &a, now);
                        // Nothing a drifted process does is ever learned.
                        if learnable && !drifted && b.learn(&workload.key, &a, now) {
                            self.metrics.baseline_learned.inc();
                        }
                        Some((v, a.kind()))
                    }
                    None => None,
                }
            }
            None => None,
        };
        if !has_rules {
            return;
        }
        let ctx = enrich::alert_ctx(
            n.time_ns,
            n.op.as_str(),
            &n.task,
            Some(c),
            None,
            &self.enrich.table,
            &mut self.enrich.users,
        );
        let facts = NetFacts {
            local_is_server,
            workload: Some(&workload.key),
            baseline: verdict.map(|v| v.0),
            activity: verdict.map(|v| v.1),
        };
        self.evaluate(&ctx, evt_type, &[], None, Call::Net(&n, facts))
            .await;
    }
}

impl Evaluation {
    /// The alerts of one event (see [`Processor::evaluate`]).
    #[allow(
        clippy::too_many_arguments,
        reason = "one event's parts, passed through to its field source"
    )]
    fn alerts(
        &mut self,
        table: &ProcessTable,
        dns: &DnsNames,
        ctx: &AlertCtx,
        evt_type: EventType,
        arrivals: &[(Arrival, Action)],
        cwd: Option<&[u8]>,
        call: Call<'_>,
    ) -> Vec<Alert> {
        let mut alerts: Vec<Alert> = Vec::new();
        let targets: Vec<(Option<&Arrival>, Action)> = if arrivals.is_empty() {
            vec![(None, call_action(call))]
        } else {
            arrivals.iter().map(|(a, act)| (Some(a), *act)).collect()
        };
        for (arrival, action) in targets {
            self.evt_num += 1;
            let mut fired = false;
            let src = EventSource {
                fields: &self.fields,
                evt_type,
                num: self.evt_num,
                ctx,
                arrival,
                action,
                cwd,
                call,
                table,
                dns,
                hostname: &self.hostname,
            };
            let hostname = self.hostname.as_str();
            self.rules.eval(&src, &mut self.ctx, |rule| {
                fired = true;
                let mut alert = rule.alert(&src, ctx.time_ns, hostname, &OutputOptions::default());
                for (k, v) in detect::fields(ctx, arrival, action) {
                    alert.output_fields.entry(k).or_insert(v);
                }
                if !alerts
                    .iter()
                    .any(|a| a.rule == alert.rule && a.output == alert.output)
                {
                    alerts.push(alert);
                }
            });
            // Every kill is reported, whatever the rules say.
            if !fired && matches!(action, Action::Killed | Action::KilledAfterStart) {
                alerts.push(detect::killed_alert(ctx, arrival, action, &self.hostname));
            }
        }
        alerts
    }
}

/// What was done about a syscall the kernel saw (a connection refused under network
/// enforcement is `denied`).
fn call_action(call: Call<'_>) -> Action {
    match call {
        Call::Net(n, _) if n.denied => Action::Denied,
        _ => Action::None,
    }
}

/// Now, in seconds since the epoch.
fn now_secs() -> u64 {
    now_ns() / 1_000_000_000
}

/// An `ExposedPorts` key of an image config (`8080/tcp`, `53/udp`; no protocol is TCP).
fn exposed_port(key: &str) -> Option<(Proto, u16)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return None,
    };
    Some((proto, port.parse().ok().filter(|p| *p != 0)?))
}

/// Now, in nanoseconds since the epoch.
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A successful call that copies an image file up without (yet) changing its bytes.
fn may_copy_up(f: &FileEvent) -> bool {
    f.ret >= 0
        && f.resolved
        && matches!(
            f.op,
            FileOp::Chmod
                | FileOp::Fchmod
                | FileOp::Fchmodat
                | FileOp::Chown
                | FileOp::Fchown
                | FileOp::Lchown
                | FileOp::Fchownat
                | FileOp::Open
                | FileOp::Openat
                | FileOp::Openat2
        )
        && !matches!(
            f.layer,
            Some(FileLayer::Upper | FileLayer::WritableMount | FileLayer::Other)
        )
}

//! Wiring: start-up order, the tasks, their channels, and shutdown.

use crate::config::ValidConfig;
use crate::detect::{self, Action};
use crate::enrich::{self, AlertCtx, Arrival, Via};
use crate::fields::{EventSource, FieldMap};
use crate::gate::ExecGate;
use crate::http::{self, HttpState};
use crate::metrics::Metrics;
use crate::origin::{FileFacts, Origins, Verdict};
use crate::output::{FileSink, Sink, StdoutSink};
use crate::proctable::ProcessTable;
use crate::summary::Summaries;
use crate::users::UserNames;
use driftwatch_bpf::{ExecSensor, SensorOptions};
use driftwatch_event::{
    Alert, ContainerInfo, Event, ExeOrigin, ExecEvent, FileEvent, MapEvent, TaskInfo,
};
use driftwatch_rules::{EvalCtx, EventType, OutputOptions, RuleSet};
use driftwatch_runtime::{Registry, RegistryUpdate, RuntimeConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Why the agent could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Rules(#[from] crate::rules::RulesError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open output file {}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load the BPF sensor")]
    Bpf(#[from] driftwatch_bpf::BpfError),
    #[error("container discovery failed")]
    Runtime(#[from] driftwatch_runtime::RuntimeError),
    #[error("cannot read the agent's own mount namespace")]
    HostNamespace(#[source] std::io::Error),
}

/// Run the agent until `shutdown` resolves; then detach, flush the outputs and return.
pub async fn run(
    cfg: ValidConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let c = &cfg.config;
    // Everything that can fail because of the user's input fails before anything is loaded.
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| AgentError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if c.output.stdout {
        sinks.push(Box::new(StdoutSink::new(c.output.json)));
    }
    if let Some(path) = &c.output.file {
        let sink = FileSink::open(path).map_err(|source| AgentError::Output {
            path: path.clone(),
            source,
        })?;
        sinks.push(Box::new(sink));
    }
    // Invalid rules fail before anything is loaded. The compiled set is dropped again while the
    // sensor loads: parsing the kernel's BTF is the agent's memory peak, and the rules need not
    // sit on top of it.
    drop(crate::rules::load(
        &c.rules.paths,
        c.rules.builtin,
        c.rules.skip_unknown,
        true,
    )?);
    let host_mntns = std::fs::metadata("/proc/self/ns/mnt")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .map_err(AgentError::HostNamespace)?;
    let hostname = c.agent.hostname.clone().unwrap_or_else(local_hostname);
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let summaries = Arc::new(Summaries::default());

    let (http_stop_tx, http_stop_rx) = oneshot::channel::<()>();
    let http_state = HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
        summaries: summaries.clone(),
    };
    let http_task = tokio::spawn(http::serve(listener, http_state, async {
        let _ = http_stop_rx.await;
    }));
    tracing::info!(listen = %cfg.listen, "health and metrics listener up");

    // The sensor first, so no exec between the /proc seed and the first event is missed.
    let mut sensor = ExecSensor::load(&SensorOptions {
        enforce: c.agent.enforce,
        agent_tgid: std::process::id(),
        host_mntns_ino: u32::try_from(host_mntns).unwrap_or(0),
        files: true,
    })?;
    let events = sensor.take_events()?;
    tracing::info!(enforce = c.agent.enforce, "BPF exec sensor attached");
    // Under enforcement, the exec gate holds execs of container files until copied-up image
    // files are told from drift; without it, every upper-layer exec is killed.
    let gate = match (c.agent.enforce, sensor.take_gate_maps()) {
        (true, Some(maps)) => match ExecGate::start(maps, metrics.clone()) {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::warn!(error = %e, "exec gate unavailable: copied-up-unchanged image files will be killed like drift");
                None
            }
        },
        _ => None,
    };
    let rules = crate::rules::load(&c.rules.paths, c.rules.builtin, c.rules.skip_unknown, false)?;

    let mut table = ProcessTable::new(c.pipeline.process_table_max);
    let seeded = table.seed_from_proc(Path::new("/proc"));
    tracing::info!(processes = seeded, "process table seeded from /proc");

    let (registry, updates, source) = driftwatch_runtime::start(RuntimeConfig {
        containerd_socket: c.containerd.socket.clone(),
        ..RuntimeConfig::default()
    })
    .await?;
    tracing::info!(containers = registry.len(), source = ?source, "container inventory loaded");
    summaries.set_source(Box::new(registry.clone()));

    let (event_tx, event_rx) = mpsc::channel::<Event>(c.pipeline.event_channel_capacity);
    let (alert_tx, alert_rx) = mpsc::channel::<Alert>(c.pipeline.alert_channel_capacity);
    let (reader_stop_tx, reader_stop_rx) = oneshot::channel::<()>();

    let mut processor = Processor {
        table,
        origins: Origins::new(c.pipeline.origin_cache_max),
        users: UserNames::default(),
        registry: registry.clone(),
        sensor,
        gate,
        policed: HashMap::new(),
        canary: None,
        enforce: c.agent.enforce,
        host_mntns,
        hostname,
        metrics: metrics.clone(),
        alerts: alert_tx,
        rules,
        fields: FieldMap::default(),
        eval: EvalCtx::new(),
        evt_num: 0,
        summaries: summaries.clone(),
    };
    for info in registry.all() {
        processor.track(&info);
    }
    metrics
        .containers_tracked
        .store(registry.len() as u64, Ordering::Relaxed);

    let reader = tokio::spawn(read_events(
        events,
        event_tx,
        metrics.clone(),
        reader_stop_rx,
    ));
    let stats_metrics = metrics.clone();
    let processor_task = tokio::spawn(processor.run(event_rx, updates, stats_metrics));
    let output_task = tokio::spawn(write_alerts(alert_rx, sinks, metrics.clone(), summaries));

    ready.store(true, Ordering::Release);
    tracing::info!("ready");

    shutdown.await;
    ready.store(false, Ordering::Release);
    // Stop reading: the reader drops its sender, the processor drains what is queued and stops,
    // dropping the sensor (programs detach) and the alert sender; the outputs then flush.
    let _ = reader_stop_tx.send(());
    let _ = reader.await;
    let _ = processor_task.await;
    let _ = output_task.await;
    let _ = http_stop_tx.send(());
    let _ = http_task.await;
    tracing::info!("stopped");
    Ok(())
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Ring buffer → decoded events → bounded channel. Never blocks on the channel.
async fn read_events(
    mut events: driftwatch_bpf::EventStream,
    tx: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut on_record = |ev: Result<Event, driftwatch_abi::DecodeError>| match ev {
        Ok(ev) => {
            if tx.try_send(ev).is_err() {
                metrics.event_channel_drops.fetch_add(1, Ordering::Relaxed);
            }
        }
        Err(e) => {
            metrics.decode_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "kernel record rejected");
        }
    };
    loop {
        // for_each_event is cancel-safe: a record is consumed only after its callback ran.
        tokio::select! {
            _ = &mut stop => {
                // What the kernel wrote before we were told to stop is still processed.
                events.drain_events(usize::MAX, &mut on_record);
                break;
            }
            r = events.for_each_event(1024, &mut on_record) => {
                if let Err(e) = r {
                    tracing::error!(error = %e, "ring buffer read failed; stopping the reader");
                    break;
                }
            }
        }
    }
}

struct Processor {
    table: ProcessTable,
    origins: Origins,
    users: UserNames,
    registry: Registry,
    /// The loaded sensor: the kernel policy map and statistics. Dropping it detaches.
    sensor: ExecSensor,
    /// The exec gate (under --enforce).
    gate: Option<ExecGate>,
    /// cgroup ids written to the kernel policy map.
    policed: HashMap<u64, u32>,
    /// The canary process spawned to prove the sensor still delivers execs: (pid, spawned at).
    canary: Option<(u32, std::time::Instant)>,
    enforce: bool,
    host_mntns: u64,
    hostname: String,
    metrics: Arc<Metrics>,
    alerts: mpsc::Sender<Alert>,
    /// The compiled rules every event is evaluated against.
    rules: RuleSet,
    fields: FieldMap,
    eval: EvalCtx,
    /// Events evaluated so far (`evt.num`).
    evt_num: u64,
    /// Per-container drift summaries (told of removed containers).
    summaries: Arc<Summaries>,
}

impl Processor {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        mut updates: mpsc::Receiver<RegistryUpdate>,
        metrics: Arc<Metrics>,
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
                    self.refresh_stats(&metrics);
                    self.check_sensor(ticks).await;
                    if ticks.is_multiple_of(30) {
                        let gone = self.table.sweep(Path::new("/proc"));
                        tracing::debug!(gone, "process table swept");
                    }
                }
            }
        }
        self.refresh_stats(&metrics);
    }

    fn refresh_stats(&self, metrics: &Metrics) {
        if !self.sensor.programs_attached() {
            tracing::error!("the BPF programs are no longer attached");
        }
        match self.sensor.stats() {
            Ok(s) => {
                metrics
                    .ringbuf_lost_exec
                    .store(s.lost_exec, Ordering::Relaxed);
                metrics
                    .ringbuf_lost_fork
                    .store(s.lost_fork, Ordering::Relaxed);
                metrics
                    .ringbuf_lost_exit
                    .store(s.lost_exit, Ordering::Relaxed);
                metrics
                    .ringbuf_lost_map
                    .store(s.lost_map, Ordering::Relaxed);
                metrics
                    .ringbuf_lost_file
                    .store(s.lost_file, Ordering::Relaxed);
                metrics.kernel_kills.store(s.kills, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read sensor statistics"),
        }
        metrics
            .processes_tracked
            .store(self.table.len() as u64, Ordering::Relaxed);
        metrics
            .containers_tracked
            .store(self.registry.len() as u64, Ordering::Relaxed);
        metrics
            .policy_entries
            .store(self.policed.len() as u64, Ordering::Relaxed);
    }

    /// The sensor's own integrity, once a second: its maps hold what the agent wrote (repaired
    /// and reported otherwise), its programs are attached, and — every 10 s — a canary exec
    /// spawned by the agent arrives through the ring buffer within 5 s.
    async fn check_sensor(&mut self, ticks: u64) {
        let mut findings: Vec<String> = Vec::new();
        match self.sensor.check_integrity(&self.policed) {
            Ok(t) => findings.extend(t.iter().map(|t| format!("{t} (repaired)"))),
            Err(e) => findings.push(format!("the sensor maps cannot be read: {e}")),
        }
        if !self.sensor.programs_attached() {
            findings.push("the BPF programs are no longer attached".to_string());
        }
        if let Some((pid, at)) = self.canary {
            if at.elapsed() > Duration::from_secs(5) {
                findings.push(format!(
                    "the canary exec (pid {pid}) did not arrive within 5 s: the exec sensor is not \
                     delivering events"
                ));
                self.canary = None;
            }
        }
        if self.canary.is_none() && ticks.is_multiple_of(10) {
            // A child of the agent is a process of its own: its exec is reported.
            if let Ok(mut child) = std::process::Command::new("/bin/true")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
            {
                self.canary = Some((child.id(), std::time::Instant::now()));
                std::thread::spawn(move || child.wait());
            }
        }
        for finding in findings {
            self.metrics
                .tamper_detections
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(finding = %finding, "sensor tampering");
            let alert = detect::tamper_alert(&finding, &self.hostname);
            self.metrics.count_alert(&alert.rule);
            if self.alerts.send(alert).await.is_err() {
                self.metrics
                    .alert_channel_drops
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Put a container's cgroup in the kernel policy map.
    fn track(&mut self, info: &ContainerInfo) {
        if let Some(g) = &self.gate {
            g.watch(info);
        }
        let Some(cg) = info.cgroup_id else { return };
        if self.policed.contains_key(&cg) {
            return;
        }
        let mut flags = driftwatch_abi::POLICY_F_TRACKED;
        if self.enforce {
            flags |= driftwatch_abi::POLICY_F_ENFORCE;
        }
        match self.sensor.set_policy(cg, flags) {
            Ok(()) => {
                self.policed.insert(cg, flags);
            }
            Err(e) => {
                tracing::warn!(container = %info.id, error = %e, "cannot write the kernel policy")
            }
        }
    }

    fn untrack(&mut self, info: &ContainerInfo) {
        if let Some(g) = &self.gate {
            g.unwatch(&info.id);
        }
        if let Some(cg) = info.cgroup_id {
            if self.policed.remove(&cg).is_some() {
                if let Err(e) = self.sensor.remove_policy(cg) {
                    tracing::debug!(container = %info.id, error = %e, "policy entry already gone");
                }
            }
        }
        self.origins.forget_container(&info.id);
        self.users.forget(&info.id);
    }

    fn on_update(&mut self, u: RegistryUpdate) {
        match u {
            RegistryUpdate::Added(info) => {
                tracing::info!(container = %info.id, image = %info.image_ref, "container tracked");
                self.track(&info);
            }
            RegistryUpdate::Removed(info) => {
                tracing::info!(container = %info.id, "container gone");
                self.untrack(&info);
                self.summaries.removed(&info);
            }
        }
    }

    async fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Fork(f) => {
                self.metrics.fork_events.fetch_add(1, Ordering::Relaxed);
                self.table.on_fork(&f);
            }
            Event::Exit(x) => {
                self.metrics.exit_events.fetch_add(1, Ordering::Relaxed);
                self.table.on_exit(&x);
            }
            Event::Exec(e) => {
                self.metrics.exec_events.fetch_add(1, Ordering::Relaxed);
                self.on_exec(e).await;
            }
            Event::Map(m) => {
                self.metrics.map_events.fetch_add(1, Ordering::Relaxed);
                self.on_map(m).await;
            }
            Event::File(f) => {
                self.metrics.file_events.fetch_add(1, Ordering::Relaxed);
                self.on_file(f).await;
            }
        }
    }

    async fn container_of(&mut self, t: &TaskInfo) -> Option<Arc<ContainerInfo>> {
        if let Some(c) = self.registry.by_cgroup(t.cgroup_id) {
            return Some(c);
        }
        if let Some(c) = self.registry.by_mntns(t.mntns) {
            return Some(c);
        }
        if t.mntns == self.host_mntns {
            return None;
        }
        let c = self
            .registry
            .resolve_unknown(t.cgroup_id, t.mntns, t.tgid)
            .await?;
        self.track(&c);
        Some(c)
    }

    /// The container a task is *inside*: it must also have left the host's mount namespace
    /// (runc's own set-up runs in the container's cgroup but in the host's mount namespace).
    async fn inside_container(&mut self, t: &TaskInfo) -> (Option<Arc<ContainerInfo>>, bool) {
        let c = self.container_of(t).await;
        let inside = c.is_some() && t.mntns != self.host_mntns;
        (c, inside)
    }

    fn file_verdict(&mut self, facts: FileFacts<'_>, container: &ContainerInfo) -> Verdict {
        let metrics = self.metrics.clone();
        self.origins.file(facts, container, |e| {
            metrics.origin_lookup_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "cannot decide a file's origin");
        })
    }

    /// What to do about drift the kernel did or did not stop.
    fn respond(&self, killed_in_kernel: bool, tgid: u32) -> Action {
        if killed_in_kernel {
            return Action::Killed;
        }
        if !self.enforce {
            return Action::None;
        }
        // The kernel could not stop it first: stop it now, and say it ran.
        let pid = rustix::process::Pid::from_raw(tgid as i32);
        match pid.map(|p| rustix::process::kill_process(p, rustix::process::Signal::KILL)) {
            Some(Ok(())) => {
                self.metrics.userspace_kills.fetch_add(1, Ordering::Relaxed);
                Action::KilledAfterStart
            }
            _ => Action::None,
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
        file: Option<&FileEvent>,
    ) {
        let mut alerts: Vec<Alert> = Vec::new();
        let targets: Vec<(Option<&Arrival>, Action)> = if arrivals.is_empty() {
            vec![(None, Action::None)]
        } else {
            arrivals.iter().map(|(a, act)| (Some(a), *act)).collect()
        };
        for (arrival, action) in targets {
            self.evt_num += 1;
            let src = EventSource {
                fields: &self.fields,
                evt_type,
                num: self.evt_num,
                ctx,
                arrival,
                action,
                cwd,
                file,
                table: &self.table,
                hostname: &self.hostname,
            };
            let hostname = self.hostname.as_str();
            self.rules.eval(&src, &mut self.eval, |rule| {
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
        }
        for alert in alerts {
            self.metrics.count_alert(&alert.rule);
            // Alerts are never dropped: wait for room (the ring-buffer reader is decoupled by
            // the events channel, whose overflow is counted).
            if self.alerts.send(alert).await.is_err() {
                self.metrics
                    .alert_channel_drops
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn on_exec(&mut self, ev: ExecEvent) {
        if self.canary.is_some_and(|(pid, _)| pid == ev.task.tgid) {
            self.canary = None;
        }
        self.table.on_exec(&ev);
        let (container, inside) = self.inside_container(&ev.task).await;
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
        self.table.set_exe_origin(ev.task.tgid, exe.origin);
        // A kill in the kernel is always reported, whatever userspace decided afterwards; a kill
        // for the script (doomed by the exec gate) is reported on the script's arrival.
        let script = match container.as_deref().filter(|_| inside) {
            Some(c) => self.script_arrival(&ev, c),
            None => None,
        };
        let exe_killed = ev.flags.killed && !(ev.flags.doomed && script.is_some());
        if inside && (exe.origin.is_drift() || exe_killed) {
            arrivals.push(Arrival {
                via: Via::Exec,
                path: ev.exepath.clone(),
                verdict: exe,
            });
        }
        arrivals.extend(script);
        let ctx = enrich::alert_ctx(
            ev.time_ns,
            "execve",
            &ev.task,
            container,
            Some((ev.exe, ev.flags)),
            &self.table,
            &mut self.users,
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
        self.evaluate(&ctx, EventType::Execve, &arrivals, ev.cwd.as_deref(), None)
            .await;
    }

    /// A script this exec runs: the `#!` script itself, or the program file given to an
    /// interpreter. `Some` only when that script is drift.
    fn script_arrival(&mut self, ev: &ExecEvent, c: &ContainerInfo) -> Option<Arrival> {
        let (via, script) = if ev.flags.script {
            (Via::Shebang, ev.filename.as_slice())
        } else {
            let argv0 = ev.args.first().map(Vec::as_slice);
            let it = crate::script::interpreter_of(&ev.exepath, argv0)?;
            (
                Via::Interpreter,
                crate::script::script_argument(it, &ev.args)?,
            )
        };
        let Some(path) = crate::script::absolute(script, ev.cwd.as_deref()) else {
            self.metrics
                .scripts_unresolved
                .fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let verdict = match self.origins.script(c, ev.task.tgid, ev.task.mntns, &path) {
            Some(v) => v,
            // The gate judged the script drifted and the kernel killed the exec: report it even
            // though the file is gone now.
            None if ev.flags.doomed => Verdict::of(ExeOrigin::Unknown),
            None => return None,
        };
        (verdict.origin.is_drift() || ev.flags.doomed).then_some(Arrival { via, path, verdict })
    }

    async fn on_map(&mut self, m: MapEvent) {
        let (container, inside) = self.inside_container(&m.task).await;
        let Some(c) = container.as_deref().filter(|_| inside) else {
            return;
        };
        let facts = FileFacts {
            path: &m.path,
            file: &m.file,
            flags: &m.flags,
        };
        let verdict = self.file_verdict(facts, c);
        if !(verdict.origin.is_drift() || m.flags.killed) {
            return;
        }
        let evt_type = m.how.evt_type();
        let ctx = enrich::alert_ctx(
            m.time_ns,
            evt_type,
            &m.task,
            container,
            None,
            &self.table,
            &mut self.users,
        );
        let exe = crate::script::basename(ctx.process.exepath.as_bytes());
        let via = if m.how == driftwatch_event::MapHow::Interp
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
            driftwatch_event::MapHow::Mmap => EventType::Mmap,
            driftwatch_event::MapHow::Mprotect => EventType::Mprotect,
            driftwatch_event::MapHow::Interp => EventType::Execve,
        };
        self.evaluate(&ctx, evt_type, &[(arrival, action)], None, None)
            .await;
    }

    /// A file-changing syscall in a container: the rules decide (file and package drift).
    async fn on_file(&mut self, f: FileEvent) {
        let judge = self.gate.is_some() && may_copy_up(&f);
        let evt_type = EventType::file(f.op.as_str()).filter(|t| self.rules.has_rules_for(*t));
        if !judge && evt_type.is_none() {
            return;
        }
        let (container, inside) = self.inside_container(&f.task).await;
        let Some(c) = container.filter(|_| inside) else {
            return;
        };
        if judge {
            // An image file may just have been copied up (chmod, chown, an open for write):
            // judge it now, so a copied-up library is allowed before it is mapped.
            if let Some(g) = &self.gate {
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
            &self.table,
            &mut self.users,
        );
        self.evaluate(&ctx, evt_type, &[], None, Some(&f)).await;
    }
}

/// A successful call that copies an image file up without (yet) changing its bytes.
fn may_copy_up(f: &FileEvent) -> bool {
    use driftwatch_event::{FileLayer, FileOp};
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

/// Alerts → the per-container summaries and every sink. Runs until the alert channel closes,
/// then flushes.
async fn write_alerts(
    mut rx: mpsc::Receiver<Alert>,
    mut sinks: Vec<Box<dyn Sink>>,
    metrics: Arc<Metrics>,
    summaries: Arc<Summaries>,
) {
    let write = |alert: &Alert, sinks: &mut Vec<Box<dyn Sink>>| {
        summaries.record(alert);
        for s in sinks.iter_mut() {
            if let Err(e) = s.write(alert) {
                metrics.output_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(sink = s.name(), error = %e, "alert output failed");
            }
        }
    };
    // Whatever is queued goes out as one batch: an alert storm costs one write per sink per
    // batch, not per alert; a lone alert is written at once.
    while let Some(alert) = rx.recv().await {
        write(&alert, &mut sinks);
        let mut batched = 1;
        while batched < 1024 {
            match rx.try_recv() {
                Ok(a) => write(&a, &mut sinks),
                Err(_) => break,
            }
            batched += 1;
        }
        for s in sinks.iter_mut() {
            if let Err(e) = s.end_batch() {
                metrics.output_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(sink = s.name(), error = %e, "alert output failed");
            }
        }
    }
    for s in sinks.iter_mut() {
        if let Err(e) = s.flush() {
            tracing::error!(sink = s.name(), error = %e, "flush failed");
        }
    }
}

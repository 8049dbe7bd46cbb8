//! The topology, wired in one place: start-up order, the tasks, their bounded channels, and
//! shutdown.
//!
//! ```text
//! sensor ──[EventStream]──► reader ──[events]──► processor ──[alerts]──► outputs
//!   ▲                                              │  ▲
//!   └── policy map, gate verdicts ◄────────────────┘  └── registry updates (containerd, /proc)
//! ```

use crate::config::ValidConfig;
use crate::health::Health;
use crate::http::{self, HttpState};
use crate::metrics::{gauge, Metrics};
use crate::processor::{Enrichment, Evaluation, Kernel, Processor};
use crate::proctable::ProcessTable;
use crate::users::UserNames;
use driftwatch_bpf::{ExecSensor, SensorOptions};
use driftwatch_event::{Alert, ContainerInfo, Event};
use driftwatch_origin::Origins;
use driftwatch_output::{ContainerSource, Outputs, Summaries};
use driftwatch_respond::ExecGate;
use driftwatch_rules::EvalCtx;
use driftwatch_runtime::Registry;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Why the agent could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Rules(#[from] crate::rules::RulesError),
    /// The approvals or the playbooks file.
    #[error(transparent)]
    ResponseFile(#[from] driftwatch_respond::YamlFileError),
    #[error(transparent)]
    Incidents(#[from] driftwatch_respond::incident::IncidentError),
    #[error(transparent)]
    Evidence(#[from] driftwatch_respond::capture::CaptureError),
    /// The response configuration (playbooks, `[response.kubernetes]`).
    #[error("{0}")]
    Response(String),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Output(#[from] driftwatch_output::writer::OpenError),
    #[error("cannot load the network baselines")]
    Baseline(#[from] driftwatch_baseline::BaselineError),
    #[error("cannot load the BPF sensor")]
    Bpf(#[from] driftwatch_bpf::BpfError),
    #[error("container discovery failed")]
    Runtime(#[from] driftwatch_runtime::RuntimeError),
    #[error("cannot read the agent's own mount namespace")]
    HostNamespace(#[source] std::io::Error),
    #[error("the {task} task failed")]
    Task {
        task: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// The registry as the summaries' source of running containers.
struct RunningContainers(Registry);

impl ContainerSource for RunningContainers {
    fn containers(&self) -> Vec<Arc<ContainerInfo>> {
        self.0.all()
    }
}

/// Run the agent until `shutdown` resolves; then detach, flush the outputs and return. A task
/// that panicked is reported (logged, and returned as [`AgentError::Task`]), never discarded.
pub async fn run(
    cfg: ValidConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let c = &cfg.config;
    let metrics = Arc::new(Metrics::default());
    let summaries = Arc::new(Summaries::default());
    // Everything that can fail because of the user's input fails before anything is loaded.
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| AgentError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let hostname = c.agent.hostname.clone().unwrap_or_else(local_hostname);
    // HTTP outputs start delivering what their spools kept from the last run here.
    let outputs = Outputs::open(&c.output, summaries.clone(), metrics.output.clone())?
        .with_hostname(hostname.clone());
    // Invalid rules fail before anything is loaded. The compiled set is dropped again while the
    // sensor loads: parsing the kernel's BTF is the agent's memory peak, and the rules need not
    // sit on top of it.
    let (rules, allow_lists) = crate::rules::load_with_allow_lists(
        &c.rules.paths,
        c.rules.builtin,
        c.rules.skip_unknown,
        true,
    )?;
    drop(rules);
    // Approved drift (the approvals file, then the rule allow-lists) is one decision for the
    // alerts and for enforcement; an invalid file stops the agent here.
    let approvals = Arc::new(crate::approve::load(
        c.response.approvals.as_deref(),
        &allow_lists,
    )?);
    // Playbooks: an invalid file stops the agent here, and so does an incidents file that
    // cannot be opened.
    let playbooks = c
        .response
        .file
        .as_deref()
        .map(driftwatch_respond::Playbooks::from_file)
        .transpose()?;
    let incidents = playbooks
        .as_ref()
        .map(|p| crate::respond::open_incidents(&c.response, p))
        .transpose()?;
    if let Some(p) = &playbooks {
        tracing::info!(
            playbooks = p.playbooks.len(),
            mode = p.mode.as_str(),
            "response playbooks loaded"
        );
    }
    // The HTTP outputs the `notify` actions name: each must be configured.
    let mut notify = std::collections::HashMap::new();
    for (pb, name) in playbooks.iter().flat_map(|p| p.notify_outputs()) {
        match outputs.http_handle(name) {
            Some(h) => {
                notify.insert(name.to_string(), h);
            }
            None => {
                return Err(AgentError::Response(format!(
                    "playbook {pb:?}: notify: no [output.http] output is named {name:?}"
                )))
            }
        }
    }
    let baselines = if c.network.baselines {
        let b = driftwatch_baseline::Baselines::open(&c.network)?;
        tracing::info!(dir = %c.network.baseline_dir.display(), workloads = b.len(), learn_for = %c.network.learn_for, "network baselines loaded");
        Some(b)
    } else {
        None
    };
    let host_mntns = std::fs::metadata("/proc/self/ns/mnt")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .map_err(AgentError::HostNamespace)?;
    let ready = Arc::new(AtomicBool::new(false));

    let (http_stop_tx, http_stop_rx) = oneshot::channel::<()>();
    let http_state = HttpState {
        registry: Arc::new(metrics.registry()),
        ready: ready.clone(),
        summaries: summaries.clone(),
        incidents: incidents.clone(),
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
        net: true,
    })?;
    let events = sensor.take_events()?;
    tracing::info!(enforce = c.agent.enforce, "BPF exec sensor attached");
    // Under enforcement, the exec gate holds execs of container files until copied-up image
    // files are told from drift; without it, every upper-layer exec is killed.
    let gate = match (c.agent.enforce, sensor.take_gate_maps()) {
        (true, Some(maps)) => {
            match ExecGate::start(maps, metrics.gate.clone(), approvals.clone()) {
                Ok(g) => Some(g),
                Err(e) => {
                    tracing::warn!(error = %e, "exec gate unavailable: copied-up-unchanged image files will be killed like drift");
                    None
                }
            }
        }
        _ => None,
    };
    let rules = crate::rules::load(&c.rules.paths, c.rules.builtin, c.rules.skip_unknown, false)?;
    let net_enforcer = match (c.agent.enforce, c.network.enforce, baselines.is_some()) {
        (true, true, true) if sensor.net_enforce_available() => {
            tracing::info!("network enforcement on: workloads that finished learning may connect only to their baseline's peers");
            Some(driftwatch_respond::NetEnforcer::default())
        }
        (true, true, true) => {
            tracing::warn!("network enforcement unavailable (the cgroup connect and sendmsg programs are not attached): network drift is only alerted");
            None
        }
        (false, true, _) => {
            tracing::warn!(
                "network.enforce is set but --enforce is not: network drift is only alerted"
            );
            None
        }
        (true, true, false) => {
            tracing::warn!(
                "network.enforce needs network.baselines: network drift is not enforced"
            );
            None
        }
        _ => None,
    };

    let mut table = ProcessTable::new(c.pipeline.process_table_max);
    let seeded = table.seed_from_proc(Path::new("/proc"));
    tracing::info!(processes = seeded, "process table seeded from /proc");

    let (registry, updates, source) = driftwatch_runtime::start(c.runtime.clone()).await?;
    tracing::info!(containers = registry.len(), source = ?source, "container inventory loaded");
    summaries.set_source(Box::new(RunningContainers(registry.clone())));

    let (event_tx, event_rx) = mpsc::channel::<Event>(c.pipeline.event_channel_capacity);
    let (alert_tx, alert_rx) = mpsc::channel::<Alert>(c.pipeline.alert_channel_capacity);
    let (reader_stop_tx, reader_stop_rx) = oneshot::channel::<()>();
    let (respond_tx, responder) = match (playbooks, incidents) {
        (Some(p), Some(inc)) => {
            let cgroup2 = c.runtime.cgroup2_mount.clone().or_else(|| {
                std::fs::read_to_string("/proc/self/mountinfo")
                    .ok()
                    .and_then(|m| driftwatch_runtime::mountinfo::cgroup2_mount(&m))
            });
            let r = crate::respond::Responder::new(
                &c.response,
                p,
                inc,
                registry.clone(),
                c.runtime.containerd_socket.clone(),
                cgroup2,
                c.runtime.proc_root.clone(),
                metrics.response.clone(),
                notify,
            )?;
            let (tx, rx) = mpsc::channel::<Alert>(c.response.queue);
            (Some(tx), Some((r, rx)))
        }
        _ => (None, None),
    };

    let mut processor = Processor {
        enrich: Enrichment {
            table,
            origins: Origins::new(c.pipeline.origin_cache_max),
            users: UserNames::default(),
            registry: registry.clone(),
            host_mntns,
            sockets: Default::default(),
            dns: crate::dns::DnsNames::new(c.network.dns_cache_max),
            baselines,
        },
        kernel: Kernel {
            sensor,
            gate,
            policed: HashMap::new(),
            enforce: c.agent.enforce,
            net: net_enforcer,
            approvals,
        },
        eval: Evaluation {
            rules,
            fields: Default::default(),
            ctx: EvalCtx::new(),
            evt_num: 0,
            hostname,
        },
        health: Health::default(),
        alerts: alert_tx,
        respond: respond_tx,
        summaries,
        metrics: metrics.clone(),
    };
    for info in registry.all() {
        processor.track(&info);
    }
    metrics.containers_tracked.set(gauge(registry.len()));

    let reader = tokio::spawn(read_events(
        events,
        event_tx,
        metrics.clone(),
        reader_stop_rx,
    ));
    let processor_task = tokio::spawn(processor.run(event_rx, updates));
    let output_task = tokio::spawn(outputs.run(alert_rx));
    let respond_task = responder.map(|(r, rx)| tokio::spawn(r.run(rx)));

    ready.store(true, Ordering::Release);
    tracing::info!("ready");

    shutdown.await;
    ready.store(false, Ordering::Release);
    // Stop reading: the reader drops its sender, the processor drains what is queued and stops,
    // dropping the sensor (programs detach) and the alert sender; the outputs then flush.
    let _ = reader_stop_tx.send(());
    let mut failed = None;
    for (name, task) in [
        ("ring-buffer reader", reader),
        ("processor", processor_task),
        ("output", output_task),
    ] {
        joined(name, task, &mut failed).await;
    }
    if let Some(task) = respond_task {
        joined("responder", task, &mut failed).await;
    }
    let _ = http_stop_tx.send(());
    match http_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "the HTTP listener failed"),
        Err(e) => report("HTTP listener", e, &mut failed),
    }
    tracing::info!("stopped");
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Waits for a task; a panic is reported, and the first one is kept as the run's error.
async fn joined(name: &'static str, task: JoinHandle<()>, failed: &mut Option<AgentError>) {
    if let Err(e) = task.await {
        report(name, e, failed);
    }
}

fn report(task: &'static str, source: tokio::task::JoinError, failed: &mut Option<AgentError>) {
    tracing::error!(task, error = %source, "an agent task panicked");
    failed.get_or_insert(AgentError::Task { task, source });
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
                metrics.event_channel_drops.inc();
            }
        }
        Err(e) => {
            metrics.decode_errors.inc();
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

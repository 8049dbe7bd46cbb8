//! The responder task: alerts in, playbooks planned, incidents recorded, actions run.
//!
//! The processor hands it a copy of every alert through a bounded channel (`try_send`: a full
//! channel drops the copy and counts it, the alert itself still goes to the outputs), so nothing
//! of the response runs on the per-event path. Here each alert is planned against the
//! playbooks (`driftwatch_respond::playbook`); a playbook that starts opens or joins the
//! container's incident, and its steps run in order in a task of their own (an action that
//! takes long — a capture — never holds up another container's response). Observe mode records
//! every step as `would-do` and changes nothing.

use driftwatch_event::Alert;
use driftwatch_respond::capture::{self, CaptureInput, SigningKey};
use driftwatch_respond::incident::{Incidents, Step, StepResult};
use driftwatch_respond::kube::{KubeClient, PodRef};
use driftwatch_respond::playbook::{Action, Guards, KillTarget, PlannedStep, Playbooks};
use driftwatch_respond::{Mode, ResponseConfig, ResponseMetrics};
use driftwatch_runtime::Registry;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Everything a step may need, shared by the step tasks.
#[derive(Debug)]
pub struct Actuators {
    pub registry: Registry,
    pub containerd_socket: PathBuf,
    pub cgroup2: Option<PathBuf>,
    pub proc_root: PathBuf,
    pub evidence_dir: PathBuf,
    pub limits: capture::CaptureLimits,
    pub key: Option<SigningKey>,
    pub incidents: Arc<Mutex<Incidents>>,
    pub metrics: Arc<ResponseMetrics>,
    /// Network isolations (pinned under bpffs).
    pub isolations: driftwatch_respond::isolate::Isolations,
    /// The HTTP outputs `notify` actions send to, by name.
    pub notify: HashMap<String, driftwatch_output::HttpHandle>,
    /// The Kubernetes API (`None`: not configured, the Kubernetes actions fail saying so).
    pub kube: Option<KubeClient>,
    /// Workload → when it was last evicted (at most one eviction per workload per cooldown).
    pub evictions: Mutex<HashMap<String, u64>>,
    /// NetworkPolicies driftwatch created with a TTL: (namespace, name, expiry ns).
    pub policies: Mutex<Vec<(String, String, u64)>>,
}

/// The responder.
#[derive(Debug)]
pub struct Responder {
    playbooks: Arc<Playbooks>,
    guards: Guards,
    act: Arc<Actuators>,
}

/// Opens the incidents file of the playbooks (before the listener serves `/incidents`).
pub fn open_incidents(
    cfg: &ResponseConfig,
    playbooks: &Playbooks,
) -> Result<Arc<Mutex<Incidents>>, crate::AgentError> {
    let incidents = Incidents::open(&cfg.incidents_file, playbooks.incident_window)?;
    if incidents.skipped_lines > 0 {
        tracing::warn!(file = %cfg.incidents_file.display(), lines = incidents.skipped_lines, "incidents file: lines that do not parse were skipped");
    }
    Ok(Arc::new(Mutex::new(incidents)))
}

impl Responder {
    /// The responder of `playbooks`; the signing key is read here (a bad key stops the agent).
    #[allow(
        clippy::too_many_arguments,
        reason = "the wiring of one task, called once"
    )]
    pub fn new(
        cfg: &ResponseConfig,
        playbooks: Playbooks,
        incidents: Arc<Mutex<Incidents>>,
        registry: Registry,
        containerd_socket: PathBuf,
        cgroup2: Option<PathBuf>,
        proc_root: PathBuf,
        metrics: Arc<ResponseMetrics>,
        notify: HashMap<String, driftwatch_output::HttpHandle>,
    ) -> Result<Responder, crate::AgentError> {
        let key = cfg
            .evidence_signing_key
            .as_deref()
            .map(SigningKey::from_file)
            .transpose()?;
        let kube = driftwatch_respond::kube::client_from_config(&cfg.kubernetes)
            .map_err(|e| crate::AgentError::Response(format!("response.kubernetes: {e}")))?;
        if kube.is_none()
            && playbooks
                .playbooks
                .iter()
                .any(|p| p.actions.iter().any(Action::is_kubernetes))
        {
            tracing::warn!("playbooks use Kubernetes actions but no Kubernetes API is configured ([response.kubernetes]; not in a cluster): those steps will fail");
        }
        // NetworkPolicies with a TTL from before a restart (recorded on their incidents).
        let policies = incidents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .list()
            .iter()
            .flat_map(|i| i.steps.iter())
            .filter(|s| s.action == "networkpolicy" && s.result == StepResult::Done)
            .filter_map(|s| parse_policy_detail(s.detail.as_deref()?))
            .collect();
        let isolations = driftwatch_respond::isolate::Isolations::default();
        if playbooks.playbooks.iter().any(|p| {
            p.actions
                .iter()
                .any(|a| matches!(a, Action::Isolate { .. }))
        }) {
            // Verified and pinned now, so the first isolation does not pay for it.
            if let Err(e) = isolations.prepare() {
                tracing::warn!(error = %e, "network isolation cannot be prepared: isolate steps will fail");
            }
        }
        let act = Arc::new(Actuators {
            isolations,
            notify,
            kube,
            evictions: Mutex::new(HashMap::new()),
            policies: Mutex::new(policies),
            registry,
            containerd_socket,
            cgroup2,
            proc_root,
            evidence_dir: cfg.evidence_dir.clone(),
            limits: cfg.capture_limits(),
            key,
            incidents,
            metrics,
        });
        Ok(Responder {
            playbooks: Arc::new(playbooks),
            guards: Guards::default(),
            act,
        })
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Responder {
    /// Takes alerts until the channel closes, then waits for the steps still running. Every
    /// 10 s, NetworkPolicies past their TTL are removed, and so are the pins of isolations that
    /// ended (the kernel already stopped enforcing them) or whose container is gone.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Alert>) {
        let mut running = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                a = rx.recv() => match a {
                    Some(alert) => self.on_alert(alert, &mut running),
                    None => break,
                },
                _ = tick.tick() => {
                    let act = self.act.clone();
                    running.spawn(async move {
                        let _ = tokio::task::spawn_blocking(move || {
                            expire_policies(&act);
                            match act.isolations.expire() {
                                Ok(ids) if !ids.is_empty() => tracing::info!(cgroups = ?ids, "isolations that ended were removed"),
                                Ok(_) => {}
                                Err(driftwatch_respond::isolate::IsolateError::NoBpffs { .. }) => {}
                                Err(e) => tracing::debug!(error = %e, "cannot expire isolations"),
                            }
                        })
                        .await;
                    });
                }
            }
            while running.try_join_next().is_some() {}
        }
        while running.join_next().await.is_some() {}
    }

    fn on_alert(&mut self, alert: Alert, running: &mut tokio::task::JoinSet<()>) {
        let now = now_ns();
        let plans = self.playbooks.plan(&alert, Some(&self.guards), now);
        if plans.is_empty() {
            return;
        }
        let container = alert.container_id().map(str::to_string);
        let alert = Arc::new(alert);
        for plan in plans {
            let Some(pb) = self
                .playbooks
                .playbooks
                .iter()
                .find(|p| p.name == plan.playbook)
            else {
                continue;
            };
            if !plan.starts() {
                tracing::debug!(playbook = %plan.playbook, guard = ?plan.stopped_by, "playbook not started");
                for s in &plan.steps {
                    self.act
                        .metrics
                        .step(s.action.name(), StepResult::Skipped.as_str());
                }
                // The alert still belongs to the container's open incident.
                self.act
                    .incidents
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .join_if_open(&alert, now);
                continue;
            }
            self.guards.started(pb, container.as_deref(), now);
            let incident = {
                let mut inc = self.act.incidents.lock().unwrap_or_else(|e| e.into_inner());
                let before = inc.len();
                let id = inc.record_alert(&alert, now);
                if inc.len() > before {
                    self.act.metrics.incidents.inc();
                }
                id
            };
            tracing::info!(playbook = %plan.playbook, mode = plan.mode.as_str(), incident = %incident, rule = %alert.rule, "playbook started");
            let act = self.act.clone();
            let alert = alert.clone();
            let mode = plan.mode;
            let name = plan.playbook.clone();
            let cooldown = pb.cooldown;
            running.spawn(async move {
                for step in plan.steps {
                    run_step(&act, &alert, &incident, &name, mode, cooldown, step).await;
                }
            });
        }
    }
}

/// How a step that ran ended.
enum Outcome {
    Done(Option<String>),
    /// A guard found at run time (the pod's owner, an eviction within the cooldown).
    Skipped(String),
    Failed(String),
}

impl From<Result<Option<String>, String>> for Outcome {
    fn from(r: Result<Option<String>, String>) -> Outcome {
        match r {
            Ok(d) => Outcome::Done(d),
            Err(e) => Outcome::Failed(e),
        }
    }
}

async fn run_step(
    act: &Arc<Actuators>,
    alert: &Arc<Alert>,
    incident: &str,
    playbook: &str,
    mode: Mode,
    cooldown: Duration,
    step: PlannedStep,
) {
    let started = Instant::now();
    let mut guard = step.guard.clone();
    let (result, error, detail) = match (&step.guard, mode) {
        (Some(g), Mode::Observe) if g == "observe mode" => {
            tracing::info!(incident, playbook, action = step.action.name(), target = %step.target, "would do (observe mode)");
            (StepResult::WouldDo, None, None)
        }
        (Some(g), _) => {
            tracing::info!(incident, playbook, action = step.action.name(), target = %step.target, guard = %g, "step skipped");
            (StepResult::Skipped, None, None)
        }
        (None, _) => match execute(act, alert, incident, cooldown, &step.action).await {
            Outcome::Done(detail) => {
                tracing::info!(incident, playbook, action = step.action.name(), target = %step.target, detail = detail.as_deref().unwrap_or(""), "step done");
                (StepResult::Done, None, detail)
            }
            Outcome::Skipped(g) => {
                tracing::info!(incident, playbook, action = step.action.name(), target = %step.target, guard = %g, "step skipped");
                guard = Some(g);
                (StepResult::Skipped, None, None)
            }
            Outcome::Failed(e) => {
                tracing::warn!(incident, playbook, action = step.action.name(), target = %step.target, error = %e, "step failed");
                (StepResult::Failed, Some(e), None)
            }
        },
    };
    let now = now_ns();
    if result == StepResult::Done {
        act.metrics
            .step_latency
            .observe(now.saturating_sub(alert.time_ns) as f64 / 1e9);
    }
    act.metrics.step(step.action.name(), result.as_str());
    let rec = Step {
        time: driftwatch_event::format_rfc3339_nanos(now),
        playbook: playbook.to_string(),
        action: step.action.name().to_string(),
        target: step.target,
        mode: mode.as_str().to_string(),
        result,
        guard: guard.filter(|_| result != StepResult::WouldDo),
        error,
        detail,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
    };
    act.incidents
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record_step(incident, rec, now);
}

fn field<'a>(alert: &'a Alert, k: &str) -> Option<&'a serde_json::Value> {
    alert.output_fields.get(k).filter(|v| !v.is_null())
}

/// The container of the alert, as the registry knows it.
fn container_of(
    act: &Actuators,
    alert: &Alert,
) -> Result<Arc<driftwatch_event::ContainerInfo>, String> {
    let id = alert.container_id().ok_or("the alert names no container")?;
    act.registry
        .all()
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| format!("container {id} is gone"))
}

fn cgroup_dir(act: &Actuators, c: &driftwatch_event::ContainerInfo) -> Result<PathBuf, String> {
    let mount = act.cgroup2.as_ref().ok_or("no cgroup v2 mount")?;
    let path = c
        .cgroup_path
        .as_deref()
        .ok_or_else(|| format!("container {} has no known cgroup", c.id))?;
    Ok(driftwatch_runtime::cgroup::cgroup_dir(mount, path))
}

/// Runs one action.
async fn execute(
    act: &Arc<Actuators>,
    alert: &Arc<Alert>,
    incident: &str,
    cooldown: Duration,
    action: &Action,
) -> Outcome {
    if action.is_kubernetes() {
        let act = act.clone();
        let alert = alert.clone();
        let incident = incident.to_string();
        let action = action.clone();
        return match tokio::task::spawn_blocking(move || {
            kube_step(&act, &alert, &incident, cooldown, &action)
        })
        .await
        {
            Ok(o) => o,
            Err(e) => Outcome::Failed(format!("the step's task failed: {e}")),
        };
    }
    local_step(act, alert, incident, action).await.into()
}

/// A Kubernetes action (blocking: the API client is).
fn kube_step(
    act: &Actuators,
    alert: &Alert,
    incident: &str,
    cooldown: Duration,
    action: &Action,
) -> Outcome {
    use driftwatch_respond::kube::KubeError;
    let Some(k) = &act.kube else {
        return Outcome::Failed(
            "no Kubernetes API: not in a cluster and no [response.kubernetes] api_server or kubeconfig".into(),
        );
    };
    let pod = match PodRef::of(alert) {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let r = match action {
        Action::Label { allow } => k.quarantine(&pod, incident, allow).map(|removed| {
            Some(format!(
                "{}={} on pod {}/{}; removed from its controller's selector: {}",
                driftwatch_respond::kube::QUARANTINE_LABEL,
                incident,
                pod.namespace,
                pod.name,
                if removed.is_empty() {
                    "-".to_string()
                } else {
                    removed.join(", ")
                }
            ))
        }),
        Action::NetworkPolicy { ttl, allow } => {
            let expires = ttl.map(|t| now_ns() + u64::try_from(t.as_nanos()).unwrap_or(u64::MAX));
            let text = expires.map(driftwatch_event::format_rfc3339_nanos);
            k.deny_all(&pod, incident, text.as_deref(), allow)
                .map(|name| {
                    if let Some(e) = expires {
                        act.policies
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((pod.namespace.clone(), name.clone(), e));
                    }
                    Some(format!(
                        "networkpolicy {}/{name} until {}",
                        pod.namespace,
                        text.as_deref().unwrap_or("released")
                    ))
                })
        }
        Action::Evict { allow } => {
            let workload = driftwatch_respond::playbook::alert_workload(alert).unwrap_or_default();
            let now = now_ns();
            let cd = u64::try_from(cooldown.as_nanos()).unwrap_or(u64::MAX);
            {
                let mut ev = act.evictions.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(last) = ev.get(&workload) {
                    if now.saturating_sub(*last) < cd {
                        return Outcome::Skipped(format!(
                            "an eviction of workload {workload} within the cooldown ({}s)",
                            cooldown.as_secs()
                        ));
                    }
                }
                ev.insert(workload.clone(), now);
            }
            let r = k.evict(&pod, allow);
            if r.is_err() {
                act.evictions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&workload);
            }
            r.map(|()| Some(format!("evicted pod {}/{}", pod.namespace, pod.name)))
        }
        _ => return Outcome::Failed("not a Kubernetes action".into()),
    };
    match r {
        Ok(d) => Outcome::Done(d),
        Err(KubeError::Guard(g)) => Outcome::Skipped(g),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// `networkpolicy NS/NAME until T` (a step's detail) → (NS, NAME, T ns).
fn parse_policy_detail(d: &str) -> Option<(String, String, u64)> {
    let rest = d.strip_prefix("networkpolicy ")?;
    let (obj, until) = rest.split_once(" until ")?;
    let (ns, name) = obj.split_once('/')?;
    let t = driftwatch_event::parse_rfc3339_nanos(until).ok()?;
    Some((ns.to_string(), name.to_string(), t))
}

/// Removes the NetworkPolicies past their TTL.
fn expire_policies(act: &Actuators) {
    let Some(k) = &act.kube else { return };
    let now = now_ns();
    let due: Vec<(String, String, u64)> = {
        let mut p = act.policies.lock().unwrap_or_else(|e| e.into_inner());
        let (due, keep): (Vec<_>, Vec<_>) = p.drain(..).partition(|(_, _, t)| *t <= now);
        *p = keep;
        due
    };
    for (ns, name, t) in due {
        match k.remove_policy(&ns, &name) {
            Ok(_) => {
                tracing::info!(namespace = %ns, policy = %name, "NetworkPolicy past its TTL removed")
            }
            Err(e) => {
                tracing::warn!(namespace = %ns, policy = %name, error = %e, "cannot remove a NetworkPolicy past its TTL; retried");
                act.policies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((ns, name, t));
            }
        }
    }
}

/// A node-local action; `Ok(detail)` when it did what it says.
async fn local_step(
    act: &Arc<Actuators>,
    alert: &Arc<Alert>,
    incident: &str,
    action: &Action,
) -> Result<Option<String>, String> {
    match action {
        Action::Kill {
            target: KillTarget::Process,
        } => {
            let pid = field(alert, "proc.pid")
                .and_then(|v| v.as_u64())
                .and_then(|p| u32::try_from(p).ok())
                .ok_or("the alert names no process")?;
            let ts = field(alert, "proc.pid.ts")
                .and_then(|v| v.as_u64())
                .ok_or("the alert gives no process start time (proc.pid.ts): a PID alone may have been reused")?;
            driftwatch_respond::kill::kill_verified(pid, ts).map_err(|e| e.to_string())?;
            Ok(Some(format!("SIGKILL to process {pid}")))
        }
        Action::Kill {
            target: KillTarget::Container,
        } => {
            let c = container_of(act, alert)?;
            let dir = cgroup_dir(act, &c)?;
            driftwatch_respond::kill::kill_cgroup(&dir).map_err(|e| e.to_string())?;
            Ok(Some(format!("every process of cgroup {}", dir.display())))
        }
        Action::Capture => capture_step(act, alert, incident).await,
        Action::Notify { output } => {
            let h = act
                .notify
                .get(output)
                .ok_or_else(|| format!("no HTTP output {output:?}"))?;
            h.send(alert)
                .map_err(|e| format!("cannot spool the alert for output {output}: {e}"))?;
            Ok(Some(format!("spooled for output {output}")))
        }
        Action::Pause => {
            let c = container_of(act, alert)?;
            let state = driftwatch_runtime::control::apply(
                &act.containerd_socket,
                Duration::from_secs(5),
                &c.namespace,
                &c.id,
                driftwatch_runtime::control::TaskAction::Pause,
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok(Some(format!(
                "container {} {state:?} (driftwatch respond resume {} undoes it)",
                c.id, c.id
            )))
        }
        Action::Isolate { ttl } => {
            let c = container_of(act, alert)?;
            let dir = cgroup_dir(act, &c)?;
            let id = c
                .cgroup_id
                .ok_or_else(|| format!("container {} has no known cgroup id", c.id))?;
            let act = act.clone();
            let ttl = *ttl;
            let iso = tokio::task::spawn_blocking(move || act.isolations.isolate(&dir, id, ttl))
                .await
                .map_err(|e| format!("the isolate task failed: {e}"))?
                .map_err(|e| e.to_string())?;
            Ok(Some(format!(
                "container {} isolated {} (driftwatch respond release {} undoes it)",
                c.id,
                match iso.until {
                    Some(u) => format!(
                        "until {}",
                        driftwatch_event::format_rfc3339_secs(
                            u.duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_secs())
                        )
                    ),
                    None => "until released".to_string(),
                },
                c.id
            )))
        }
        Action::Label { .. } | Action::NetworkPolicy { .. } | Action::Evict { .. } => Err(format!(
            "the {} action is not available in this build",
            action.name()
        )),
    }
}

async fn capture_step(
    act: &Arc<Actuators>,
    alert: &Arc<Alert>,
    incident: &str,
) -> Result<Option<String>, String> {
    let c = container_of(act, alert)?;
    // What containerd knows of it (spec, image config, layers); a container that vanished
    // meanwhile still gets a bundle of what the agent knows.
    let details = driftwatch_runtime::inspect::inspect_container(
        &act.containerd_socket,
        Some(&c.namespace),
        &c.id,
        Duration::from_secs(5),
    )
    .await;
    let (spec, image_config, layers, spec_err) = match details {
        Ok(d) => (d.spec, d.image_config, d.layers, None),
        Err(e) => (None, None, None, Some(e.to_string())),
    };
    let layers = layers.or_else(|| c.rootfs.clone());
    let cgroup = cgroup_dir(act, &c).ok();
    let act2 = act.clone();
    let alert2 = alert.clone();
    let incident2 = incident.to_string();
    let r = tokio::task::spawn_blocking(move || {
        let diff = match layers.clone().filter(|l| l.upperdir.is_some()) {
            Some(l) => capture::render_diff(
                driftwatch_diff_meta(&c, &l),
                l,
                spec.clone(),
                image_config,
                10_000,
            ),
            None => Err(spec_err
                .clone()
                .unwrap_or_else(|| "the container has no overlay upper directory".into())),
        };
        let (diff_json, drifted) = match diff {
            Ok((j, d)) => (Ok(j), d),
            Err(e) => (Err(e), Vec::new()),
        };
        let mut info = (*c).clone();
        if info.rootfs.is_none() {
            info.rootfs = layers;
        }
        let input = CaptureInput {
            alert: &alert2,
            incident: &incident2,
            container: &info,
            spec: spec.as_deref(),
            diff_json,
            drifted,
            proc_root: &act2.proc_root,
            cgroup_dir: cgroup,
        };
        capture::capture(
            &act2.evidence_dir,
            &input,
            &act2.limits,
            act2.key.as_ref(),
            now_ns(),
        )
    })
    .await
    .map_err(|e| format!("the capture task failed: {e}"))?
    .map_err(|e| e.to_string())?;
    act.incidents
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record_evidence(incident, &r.path);
    Ok(Some(format!(
        "{} ({} files, {} bytes)",
        r.path.display(),
        r.files,
        r.bytes
    )))
}

fn driftwatch_diff_meta(
    c: &driftwatch_event::ContainerInfo,
    l: &driftwatch_event::OverlayLayers,
) -> capture::DiffMeta {
    capture::DiffMeta {
        id: c.id.clone(),
        namespace: c.namespace.clone(),
        image: c.image_ref.clone(),
        image_digest: c.image_digest.clone(),
        upperdir: l.upperdir.as_ref().map(|p| p.display().to_string()),
        lowerdirs: l.lowerdirs.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_details_read_back() {
        let d = format!(
            "networkpolicy shop/driftwatch-quarantine-1 until {}",
            driftwatch_event::format_rfc3339_nanos(1_795_980_600_123_456_789)
        );
        assert_eq!(
            parse_policy_detail(&d),
            Some((
                "shop".to_string(),
                "driftwatch-quarantine-1".to_string(),
                1_795_980_600_123_456_789
            ))
        );
        assert_eq!(
            parse_policy_detail("networkpolicy shop/x until released"),
            None
        );
    }
}

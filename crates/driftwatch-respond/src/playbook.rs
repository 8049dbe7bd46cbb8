//! Playbooks (`--response FILE`, `[response] file`): which alerts start which actions, in which
//! mode, with which guards — and the plan of what one alert would make the agent do.
//!
//! ```yaml
//! mode: observe                  # the default for every playbook: plan, record, change nothing
//! incident_window: 10m           # alerts of one container within it join its open incident
//! playbooks:
//!   - name: isolate-and-capture
//!     mode: enforce              # this playbook acts
//!     match:
//!       rules: ["Drift Detected (Container Image Modified Binary)"]
//!       minimum_priority: warning
//!       tags: [binary_drift]     # any of them
//!       fields: {container.image.repository: "registry.example/*"}
//!       namespaces: [prod-*]     # k8s.ns.name
//!       workloads: ["k8s:prod/*"]
//!       containers: [web]        # container.name
//!     cooldown: 5m               # per container
//!     rate_limit: 10/1m          # at most 10 starts of this playbook per minute
//!     actions:
//!       - capture
//!       - isolate: {ttl: 1h}
//!       - kill: {target: container}
//! ```
//!
//! Every selector list matches when any of its items does (`*` and `?` wildcards); every
//! selector given must match. The plan of an alert ([`Playbooks::plan`]) names each action,
//! its target and the guard that stops it, if any; the agent records it on the incident and
//! runs the steps only in `enforce` mode.

use crate::approvals::match_component;
use crate::yaml::checked;
use driftwatch_event::{Alert, Priority};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::time::Duration;

/// The playbooks file cannot be used (the crate's one YAML file error).
pub use crate::yaml::YamlFileError as PlaybookError;

/// Whether a playbook acts or only says what it would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every action is planned, recorded and logged as "would do"; nothing is changed.
    #[default]
    Observe,
    /// The actions run.
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::Enforce => "enforce",
        }
    }
}

/// What `kill` kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KillTarget {
    /// The alert's process (`proc.pid`, checked to be the same process by its start time).
    #[default]
    Process,
    /// Every process of the container (its cgroup's `cgroup.kill`).
    Container,
}

/// One action of a playbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    Kill {
        target: KillTarget,
    },
    /// Freeze the container (containerd's pause); `driftwatch respond resume` undoes it.
    Pause,
    /// Cut the container's network at the node; undone by `driftwatch respond release` or the
    /// TTL.
    Isolate {
        #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
        ttl: Option<Duration>,
    },
    /// An evidence bundle under `response.evidence_dir`.
    Capture,
    /// The alert to a named HTTP output (`[output.http]`), through its spool.
    Notify {
        output: String,
    },
    /// Kubernetes: the pod labelled for quarantine and taken out of its controller's selector.
    Label {
        allow: crate::kube::Allow,
    },
    /// Kubernetes: a deny-all NetworkPolicy selecting the quarantined pod, removed after `ttl`.
    #[serde(rename = "networkpolicy")]
    NetworkPolicy {
        #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
        ttl: Option<Duration>,
        allow: crate::kube::Allow,
    },
    /// Kubernetes: the pod evicted (the Eviction API; PodDisruptionBudgets respected).
    Evict {
        allow: crate::kube::Allow,
    },
}

mod opt_secs {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(d.as_secs()),
            None => s.serialize_none(),
        }
    }
}

impl Action {
    /// The action's name (`kill`, `pause`, `isolate`, `capture`, `notify`).
    pub fn name(&self) -> &'static str {
        match self {
            Action::Kill { .. } => "kill",
            Action::Pause => "pause",
            Action::Isolate { .. } => "isolate",
            Action::Capture => "capture",
            Action::Notify { .. } => "notify",
            Action::Label { .. } => "label",
            Action::NetworkPolicy { .. } => "networkpolicy",
            Action::Evict { .. } => "evict",
        }
    }

    /// Whether it acts through the Kubernetes API (and needs the alert's pod).
    pub fn is_kubernetes(&self) -> bool {
        matches!(
            self,
            Action::Label { .. } | Action::NetworkPolicy { .. } | Action::Evict { .. }
        )
    }

    /// Whether it acts on the container (and needs one).
    fn needs_container(&self) -> bool {
        !matches!(self, Action::Notify { .. })
    }
}

/// `N/DURATION`: at most N starts per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

impl RateLimit {
    fn parse(s: &str) -> Result<RateLimit, String> {
        let (n, per) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not N/DURATION (e.g. \"10/1m\")"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("{n:?} is not a count (e.g. \"10/1m\")"))?;
        if count == 0 {
            return Err("a rate limit of 0 would never run: remove the playbook instead".into());
        }
        let per = driftwatch_event::parse_duration(per)?;
        Ok(RateLimit { count, per })
    }
}

/// A selector item: a value with `*`/`?` wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Pattern(pub String);

impl Pattern {
    pub fn matches(&self, v: &str) -> bool {
        match_component(self.0.as_bytes(), v.as_bytes())
    }
}

fn any(patterns: &[Pattern], v: Option<&str>) -> bool {
    patterns.is_empty() || v.is_some_and(|v| patterns.iter().any(|p| p.matches(v)))
}

/// Which alerts start a playbook.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Match {
    /// Rule names (wildcards allowed).
    pub rules: Vec<Pattern>,
    #[serde(deserialize_with = "priority")]
    pub minimum_priority: Option<Priority>,
    /// Any of these tags.
    pub tags: Vec<String>,
    /// Output fields: each must be present and match one of its patterns (a number or a boolean
    /// is compared as its JSON text).
    #[serde(deserialize_with = "one_or_many_map")]
    pub fields: BTreeMap<String, Vec<Pattern>>,
    /// `k8s.ns.name`.
    pub namespaces: Vec<Pattern>,
    /// The workload key (`k8s:<ns>/<owner>/<container>`, `image:<repository>/<container>`).
    pub workloads: Vec<Pattern>,
    /// `container.name`.
    pub containers: Vec<Pattern>,
}

fn priority<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Priority>, D::Error> {
    checked(d, |s| {
        Priority::parse(s).ok_or_else(|| {
            format!("{s:?} is not a priority (emergency, alert, critical, error, warning, notice, informational, debug)")
        })
    })
}

fn one_or_many_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Vec<Pattern>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let m: BTreeMap<String, OneOrMany> = BTreeMap::deserialize(d)?;
    Ok(m.into_iter()
        .map(|(k, v)| {
            let v = match v {
                OneOrMany::One(s) => vec![Pattern(s)],
                OneOrMany::Many(v) => v.into_iter().map(Pattern).collect(),
            };
            (k, v)
        })
        .collect())
}

/// The workload of an alert's container, from its fields (what `driftwatch_baseline::Workload`
/// computes from the container: the pod's namespace and owner, else the image repository).
pub fn alert_workload(alert: &Alert) -> Option<String> {
    let s = |k: &str| alert.str_field(k);
    if let Some(w) = s("net.workload") {
        return Some(w.to_string());
    }
    let id = alert.container_id()?;
    let mut c = driftwatch_event::ContainerInfo {
        id: id.to_string(),
        ..Default::default()
    };
    c.name = s("container.name").unwrap_or_default().to_string();
    c.image_repository = s("container.image.repository")
        .unwrap_or_default()
        .to_string();
    c.pod_namespace = s("k8s.ns.name").map(str::to_string);
    c.pod_name = s("k8s.pod.name").map(str::to_string);
    Some(driftwatch_baseline::Workload::of(&c).key)
}

impl Match {
    /// Whether `alert` is one of these.
    pub fn matches(&self, alert: &Alert) -> bool {
        let s = |k: &str| alert.str_field(k);
        any(&self.rules, Some(&alert.rule))
            && self.minimum_priority.is_none_or(|p| alert.priority <= p)
            && (self.tags.is_empty() || self.tags.iter().any(|t| alert.tags.contains(t)))
            && self.fields.iter().all(|(k, pats)| {
                alert.output_fields.get(k).is_some_and(|v| {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => return false,
                        other => other.to_string(),
                    };
                    pats.iter().any(|p| p.matches(&text))
                })
            })
            && any(&self.namespaces, s("k8s.ns.name"))
            && any(&self.containers, s("container.name"))
            && (self.workloads.is_empty() || any(&self.workloads, alert_workload(alert).as_deref()))
    }
}

/// One playbook.
#[derive(Debug, Clone, PartialEq)]
pub struct Playbook {
    pub name: String,
    /// Its own mode; `None`: the file's.
    pub mode: Option<Mode>,
    pub matcher: Match,
    /// Per container: after this playbook started for a container, it does not start again for
    /// it within the cooldown.
    pub cooldown: Duration,
    pub rate_limit: Option<RateLimit>,
    pub actions: Vec<Action>,
}

/// Every playbook of the file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Playbooks {
    /// The file's mode (each playbook may set its own).
    pub mode: Mode,
    /// Alerts of a container within this window join its open incident.
    pub incident_window: Duration,
    pub playbooks: Vec<Playbook>,
}

/// The default per-container cooldown of a playbook.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(300);
/// The default incident window.
pub const DEFAULT_INCIDENT_WINDOW: Duration = Duration::from_secs(600);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    mode: Mode,
    #[serde(default, deserialize_with = "duration")]
    incident_window: Option<Duration>,
    playbooks: Vec<RawPlaybook>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    name: String,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(rename = "match")]
    matcher: Match,
    #[serde(default, deserialize_with = "duration")]
    cooldown: Option<Duration>,
    #[serde(default, deserialize_with = "rate_limit")]
    rate_limit: Option<RateLimit>,
    actions: Vec<RawAction>,
}

/// An action as written: `capture`, or a one-key map `isolate: {ttl: 1h}`.
struct RawAction(Action);

impl<'de> Deserialize<'de> for RawAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawAction, D::Error> {
        d.deserialize_any(ActionVisitor).map(RawAction)
    }
}

struct ActionVisitor;

impl<'de> serde::de::Visitor<'de> for ActionVisitor {
    type Value = Action;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an action: a name (`capture`) or a map with one key (`isolate: {ttl: 1h}`)")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Action, E> {
        resolve(v, RawOptions::default()).map_err(E::custom)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Action, A::Error> {
        use serde::de::Error as _;
        let Some(name) = m.next_key::<String>()? else {
            return Err(A::Error::custom("an empty map is not an action"));
        };
        let opts: Option<RawOptions> = m.next_value()?;
        if m.next_key::<String>()?.is_some() {
            return Err(A::Error::custom(
                "an action is a map with one key (`isolate: {ttl: 1h}`): write each action as its own list item",
            ));
        }
        resolve(&name, opts.unwrap_or_default()).map_err(A::Error::custom)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawOptions {
    target: Option<KillTarget>,
    ttl: Option<String>,
    output: Option<String>,
    allow: Option<Vec<String>>,
}

fn unknown_action(name: &str) -> String {
    format!("unknown action {name:?} (actions: kill, pause, isolate, capture, notify, label, networkpolicy, evict)")
}

/// The action `name` with its options.
fn resolve(name: &str, o: RawOptions) -> Result<Action, String> {
    let only = |allowed: &[&str]| -> Result<(), String> {
        let given = [
            ("target", o.target.is_some()),
            ("ttl", o.ttl.is_some()),
            ("output", o.output.is_some()),
            ("allow", o.allow.is_some()),
        ];
        match given.iter().find(|(k, set)| *set && !allowed.contains(k)) {
            Some((k, _)) => Err(format!("{name}: unknown option {k:?}")),
            None => Ok(()),
        }
    };
    let allow = || {
        crate::kube::Allow::parse(o.allow.as_deref().unwrap_or_default())
            .map_err(|e| format!("{name}: {e}"))
    };
    match name {
        "kill" => {
            only(&["target"])?;
            Ok(Action::Kill {
                target: o.target.unwrap_or_default(),
            })
        }
        "pause" => {
            only(&[])?;
            Ok(Action::Pause)
        }
        "capture" => {
            only(&[])?;
            Ok(Action::Capture)
        }
        "isolate" => {
            only(&["ttl"])?;
            let ttl = o
                .ttl
                .as_deref()
                .map(driftwatch_event::parse_duration)
                .transpose()
                .map_err(|e| format!("isolate: ttl: {e}"))?;
            Ok(Action::Isolate { ttl })
        }
        "notify" => {
            only(&["output"])?;
            match o.output {
                Some(output) if !output.is_empty() => Ok(Action::Notify { output }),
                _ => Err(
                    "notify needs its output: `notify: {output: NAME}`, NAME an [output.http] output"
                        .into(),
                ),
            }
        }
        "label" => {
            only(&["allow"])?;
            Ok(Action::Label { allow: allow()? })
        }
        "networkpolicy" => {
            only(&["ttl", "allow"])?;
            let ttl = o
                .ttl
                .as_deref()
                .map(driftwatch_event::parse_duration)
                .transpose()
                .map_err(|e| format!("networkpolicy: ttl: {e}"))?;
            Ok(Action::NetworkPolicy {
                ttl,
                allow: allow()?,
            })
        }
        "evict" => {
            only(&["allow"])?;
            Ok(Action::Evict { allow: allow()? })
        }
        other => Err(unknown_action(other)),
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    checked(d, driftwatch_event::parse_duration)
}

fn rate_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RateLimit>, D::Error> {
    checked(d, RateLimit::parse)
}

impl Playbooks {
    /// Reads a playbooks file; every mistake is `file:line:col`.
    pub fn from_file(path: &Path) -> Result<Playbooks, PlaybookError> {
        let text = crate::yaml::read(path)?;
        Playbooks::from_yaml(path, &text)
    }

    /// Parses playbooks text (`path` names it in errors).
    pub fn from_yaml(path: &Path, text: &str) -> Result<Playbooks, PlaybookError> {
        let err = |line, column, message| PlaybookError::at(path, line, column, message);
        let raw: RawFile = crate::yaml::parse(path, text)?;
        // Positions of each playbook's entries, for the checks serde cannot place itself.
        let spots = playbook_spots(text);
        let mut names = HashMap::new();
        let mut playbooks = Vec::new();
        for (i, p) in raw.playbooks.into_iter().enumerate() {
            let at = spots.get(i).copied().unwrap_or((1, 1));
            let fail = |m: String| err(at.0, at.1, format!("playbooks[{i}] ({:?}): {m}", p.name));
            if p.name.trim().is_empty() {
                return Err(fail("name: must not be empty".into()));
            }
            if names.insert(p.name.clone(), i).is_some() {
                return Err(fail("name: another playbook has this name".into()));
            }
            if p.actions.is_empty() {
                return Err(fail("actions: at least one action".into()));
            }
            let actions = p.actions.into_iter().map(|RawAction(a)| a).collect();
            playbooks.push(Playbook {
                name: p.name,
                mode: p.mode,
                matcher: p.matcher,
                cooldown: p.cooldown.unwrap_or(DEFAULT_COOLDOWN),
                rate_limit: p.rate_limit,
                actions,
            });
        }
        Ok(Playbooks {
            mode: raw.mode,
            incident_window: raw.incident_window.unwrap_or(DEFAULT_INCIDENT_WINDOW),
            playbooks,
        })
    }

    /// The HTTP outputs the `notify` actions name (the agent checks them against `[output]`).
    pub fn notify_outputs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.playbooks.iter().flat_map(|p| {
            p.actions.iter().filter_map(move |a| match a {
                Action::Notify { output } => Some((p.name.as_str(), output.as_str())),
                _ => None,
            })
        })
    }

    /// The mode `p` runs in (`force`: `--response-mode` given on the command line).
    pub fn mode_of(&self, p: &Playbook) -> Mode {
        p.mode.unwrap_or(self.mode)
    }

    /// What `alert` would make the agent do, given the guards' state (`None`: no state, as in
    /// `driftwatch respond plan`).
    pub fn plan(&self, alert: &Alert, state: Option<&Guards>, now_ns: u64) -> Vec<PlaybookPlan> {
        let container = alert.container_id();
        self.playbooks
            .iter()
            .filter(|p| p.matcher.matches(alert))
            .map(|p| {
                let mode = self.mode_of(p);
                let stopped_by = state.and_then(|g| g.stops(p, container, now_ns));
                let steps = p
                    .actions
                    .iter()
                    .map(|a| PlannedStep {
                        action: a.clone(),
                        target: target_of(a, alert),
                        guard: stopped_by
                            .clone()
                            .or_else(|| step_guard(a, alert, container))
                            .or_else(|| (mode == Mode::Observe).then(|| "observe mode".into())),
                    })
                    .collect();
                PlaybookPlan {
                    playbook: p.name.clone(),
                    mode,
                    stopped_by,
                    steps,
                }
            })
            .collect()
    }
}

/// Line and column of each item of the top-level `playbooks:` list (its `- ` dash).
fn playbook_spots(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut indent = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let col = line.len() - trimmed.len();
        if col == 0 {
            inside = trimmed.starts_with("playbooks:");
            continue;
        }
        if inside && trimmed.starts_with("- ") && indent.is_none_or(|i| i == col) {
            indent = Some(col);
            out.push((n + 1, col + 1));
        }
    }
    out
}

/// What an action acts on, as text for the plan and the incident.
fn target_of(a: &Action, alert: &Alert) -> String {
    let s = |k: &str| {
        alert
            .output_fields
            .get(k)
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "<NA>".into())
    };
    match a {
        Action::Kill {
            target: KillTarget::Process,
        } => format!(
            "process {} ({}) of container {}",
            s("proc.pid"),
            s("proc.name"),
            s("container.id")
        ),
        Action::Notify { output } => format!("output {output}"),
        a if a.is_kubernetes() => format!("pod {}/{}", s("k8s.ns.name"), s("k8s.pod.name")),
        _ => format!("container {} ({})", s("container.id"), s("container.name")),
    }
}

/// A guard of the action itself, known from the alert alone.
fn step_guard(a: &Action, alert: &Alert, container: Option<&str>) -> Option<String> {
    if a.needs_container() && container.is_none() {
        return Some("not a container (host activity)".into());
    }
    if a.is_kubernetes() && crate::kube::PodRef::of(alert).is_err() {
        return Some("not a Kubernetes pod (the alert has no k8s.pod.uid)".into());
    }
    if let Action::Kill {
        target: KillTarget::Process,
    } = a
    {
        let action = alert.str_field("response.action");
        if matches!(action, Some("killed" | "killed-after-start")) {
            return Some("already killed".into());
        }
        if alert
            .output_fields
            .get("proc.pid")
            .and_then(|v| v.as_u64())
            .is_none()
        {
            return Some("the alert names no process (proc.pid)".into());
        }
    }
    None
}

/// The plan of one playbook for one alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlaybookPlan {
    pub playbook: String,
    pub mode: Mode,
    /// A guard that stops the whole playbook (cooldown, rate limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    pub steps: Vec<PlannedStep>,
}

impl PlaybookPlan {
    /// Whether it starts at all (no cooldown or rate limit stops it).
    pub fn starts(&self) -> bool {
        self.stopped_by.is_none()
    }
}

/// One action of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedStep {
    #[serde(flatten)]
    pub action: Action,
    pub target: String,
    /// What stops this step: `None` means it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
}

/// Cooldown and rate-limit state of the playbooks (bounded: old entries are forgotten).
#[derive(Debug, Default)]
pub struct Guards {
    /// (playbook, container id) → when it last started, ns.
    last: HashMap<(String, String), u64>,
    /// playbook → the start times within its rate-limit window.
    starts: HashMap<String, VecDeque<u64>>,
}

/// Cooldown entries kept at most; past it, the oldest half is forgotten.
pub const GUARDS_MAX: usize = 16_384;

impl Guards {
    fn stops(&self, p: &Playbook, container: Option<&str>, now: u64) -> Option<String> {
        if let Some(c) = container {
            if let Some(last) = self.last.get(&(p.name.clone(), c.to_string())) {
                let cd = u64::try_from(p.cooldown.as_nanos()).unwrap_or(u64::MAX);
                if now.saturating_sub(*last) < cd {
                    return Some(format!(
                        "cooldown ({}s for this container)",
                        p.cooldown.as_secs()
                    ));
                }
            }
        }
        if let (Some(rl), Some(q)) = (p.rate_limit, self.starts.get(&p.name)) {
            let per = u64::try_from(rl.per.as_nanos()).unwrap_or(u64::MAX);
            let recent = q.iter().filter(|t| now.saturating_sub(**t) < per).count();
            if recent >= rl.count as usize {
                return Some(format!(
                    "rate limit ({} per {}s)",
                    rl.count,
                    rl.per.as_secs()
                ));
            }
        }
        None
    }

    /// Records that `p` started for `container` at `now`.
    pub fn started(&mut self, p: &Playbook, container: Option<&str>, now: u64) {
        if let Some(c) = container {
            if self.last.len() >= GUARDS_MAX {
                let mut times: Vec<u64> = self.last.values().copied().collect();
                times.sort_unstable();
                let cut = times[times.len() / 2];
                self.last.retain(|_, t| *t > cut);
            }
            self.last.insert((p.name.clone(), c.to_string()), now);
        }
        if let Some(rl) = p.rate_limit {
            let per = u64::try_from(rl.per.as_nanos()).unwrap_or(u64::MAX);
            let q = self.starts.entry(p.name.clone()).or_default();
            while q.front().is_some_and(|t| now.saturating_sub(*t) >= per) {
                q.pop_front();
            }
            q.push_back(now);
        }
    }

    /// Forgets `container` (it was removed).
    pub fn forget(&mut self, container: &str) {
        self.last.retain(|(_, c), _| c != container);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Playbooks, PlaybookError> {
        Playbooks::from_yaml(Path::new("pb.yaml"), text)
    }

    fn alert(rule: &str, priority: Priority, fields: &[(&str, serde_json::Value)]) -> Alert {
        Alert {
            time_ns: 1,
            rule: rule.into(),
            priority,
            output: "x".into(),
            output_fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            tags: vec!["binary_drift".into()],
            source: "syscall".into(),
            hostname: "h".into(),
        }
    }

    const FILE: &str = r#"
mode: observe
playbooks:
  - name: iso
    mode: enforce
    match:
      rules: ["Drift Detected*"]
      minimum_priority: warning
      containers: [web, "api-*"]
    cooldown: 1m
    rate_limit: 2/1h
    actions:
      - capture
      - isolate: {ttl: 1h}
      - kill: {target: container}
      - notify: {output: siem}
      - evict: {allow: [statefulset]}
      - networkpolicy: {ttl: 30m}
      - label
  - name: watch
    match: {tags: [file_drift]}
    actions: [pause]
"#;

    fn drift(name: &str) -> Alert {
        alert(
            "Drift Detected (Container Image Modified Binary)",
            Priority::Critical,
            &[
                ("container.id", serde_json::json!("c1")),
                ("container.name", serde_json::json!(name)),
                ("proc.pid", serde_json::json!(42)),
                ("response.action", serde_json::json!("none")),
            ],
        )
    }

    #[test]
    fn a_file_parses_with_its_actions_and_defaults() {
        let p = parse(FILE).unwrap();
        assert_eq!(p.mode, Mode::Observe);
        assert_eq!(p.incident_window, DEFAULT_INCIDENT_WINDOW);
        assert_eq!(p.playbooks.len(), 2);
        let iso = &p.playbooks[0];
        assert_eq!(
            iso.actions,
            vec![
                Action::Capture,
                Action::Isolate {
                    ttl: Some(Duration::from_secs(3600))
                },
                Action::Kill {
                    target: KillTarget::Container
                },
                Action::Notify {
                    output: "siem".into()
                },
                Action::Evict {
                    allow: crate::kube::Allow {
                        statefulset: true,
                        ..Default::default()
                    }
                },
                Action::NetworkPolicy {
                    ttl: Some(Duration::from_secs(1800)),
                    allow: Default::default()
                },
                Action::Label {
                    allow: Default::default()
                },
            ]
        );
        assert_eq!(iso.cooldown, Duration::from_secs(60));
        assert_eq!(
            iso.rate_limit,
            Some(RateLimit {
                count: 2,
                per: Duration::from_secs(3600)
            })
        );
        assert_eq!(p.playbooks[1].cooldown, DEFAULT_COOLDOWN);
        assert_eq!(p.mode_of(&p.playbooks[1]), Mode::Observe);
        assert_eq!(
            p.notify_outputs().collect::<Vec<_>>(),
            vec![("iso", "siem")]
        );
    }

    #[test]
    fn mistakes_are_file_line_col() {
        let cases = [
            ("playbooks:\n  - name: a\n    match: {}\n    actions: [explode]\n", 4, "unknown action \"explode\""),
            ("playbooks:\n  - name: a\n    match: {minimum_priority: loud}\n    actions: [kill]\n", 3, "not a priority"),
            ("playbooks:\n  - name: a\n    match: {}\n    cooldown: 5 minutes\n    actions: [kill]\n", 4, "has no unit"),
            ("playbooks:\n  - name: a\n    match: {}\n    rate_limit: 0/1m\n    actions: [kill]\n", 4, "rate limit of 0"),
            ("playbooks:\n  - name: a\n    match: {colour: red}\n    actions: [kill]\n", 3, "unknown field `colour`"),
            ("playbooks:\n  - name: a\n    match: {}\n    actions: []\n", 2, "at least one action"),
            ("playbooks:\n  - name: a\n    match: {}\n    actions: [kill]\n  - name: a\n    match: {}\n    actions: [kill]\n", 5, "another playbook has this name"),
            ("playbooks:\n  - name: a\n    match: {}\n    actions:\n      - isolate: {ttl: soon}\n", 5, "isolate: ttl"),
            ("playbooks:\n  - name: a\n    match: {}\n    actions:\n      - kill: {ttl: 1h}\n", 5, "kill: unknown option \"ttl\""),
            ("playbooks:\n  - name: a\n    match: {}\n    actions: [notify]\n", 4, "notify needs its output"),
            ("mode: loud\nplaybooks: []\n", 1, "unknown variant `loud`"),
        ];
        for (text, line, msg) in cases {
            match parse(text) {
                Err(PlaybookError::Parse {
                    line: l, message, ..
                }) => {
                    assert_eq!(l, line, "{text}: {message}");
                    assert!(message.contains(msg), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let e = parse("playbooks:\n  - name: a\n    match: {}\n    actions: [explode]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("pb.yaml:4:"), "{e}");
    }

    #[test]
    fn matching_uses_every_selector() {
        let p = parse(FILE).unwrap();
        let plans = p.plan(&drift("web"), None, 0);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].playbook, "iso");
        assert!(p.plan(&drift("api-7"), None, 0).len() == 1);
        assert!(p.plan(&drift("db"), None, 0).is_empty());
        let mut low = drift("web");
        low.priority = Priority::Notice;
        assert!(p.plan(&low, None, 0).is_empty(), "below minimum_priority");
        let mut other = drift("web");
        other.rule = "Something Else".into();
        assert!(p.plan(&other, None, 0).is_empty());
        let m = Match {
            fields: [("proc.pid".to_string(), vec![Pattern("4*".into())])].into(),
            workloads: vec![Pattern("image:unknown/web".into())],
            ..Default::default()
        };
        assert!(m.matches(&drift("web")));
        assert!(!m.matches(&drift("api")), "workload differs");
        let m = Match {
            fields: [("fd.name".to_string(), vec![Pattern("*".into())])].into(),
            ..Default::default()
        };
        assert!(!m.matches(&drift("web")), "a missing field never matches");
    }

    #[test]
    fn plans_name_targets_and_guards() {
        let p = parse(FILE).unwrap();
        let plan = &p.plan(&drift("web"), None, 0)[0];
        assert_eq!(plan.mode, Mode::Enforce);
        assert!(
            plan.steps[..4].iter().all(|s| s.guard.is_none()),
            "{plan:?}"
        );
        assert_eq!(
            plan.steps[4].guard.as_deref(),
            Some("not a Kubernetes pod (the alert has no k8s.pod.uid)")
        );
        let mut pod = drift("web");
        for (k, v) in [
            ("k8s.ns.name", "shop"),
            ("k8s.pod.name", "web-1"),
            ("k8s.pod.uid", "u1"),
        ] {
            pod.output_fields.insert(k.into(), serde_json::json!(v));
        }
        let kplan = &p.plan(&pod, None, 0)[0];
        assert!(kplan.steps.iter().all(|s| s.guard.is_none()), "{kplan:?}");
        assert_eq!(kplan.steps[4].target, "pod shop/web-1");
        assert_eq!(plan.steps[1].target, "container c1 (web)");
        let mut host = drift("web");
        host.output_fields
            .insert("container.id".into(), serde_json::json!("host"));
        let plan = &p.plan(&host, None, 0)[0];
        assert_eq!(
            plan.steps[0].guard.as_deref(),
            Some("not a container (host activity)")
        );
        assert_eq!(plan.steps[3].guard, None, "notify needs no container");
        // observe mode: every step planned, none run.
        let mut watch = drift("web");
        watch.rule = "Write below binary dir".into();
        watch.tags = vec!["file_drift".into()];
        let plan = &p.plan(&watch, None, 0)[0];
        assert_eq!(plan.steps[0].guard.as_deref(), Some("observe mode"));
        // A process the kernel already killed is not killed again.
        let k = parse(
            "playbooks:\n  - name: k\n    mode: enforce\n    match: {}\n    actions: [kill]\n",
        )
        .unwrap();
        let mut killed = drift("web");
        killed
            .output_fields
            .insert("response.action".into(), serde_json::json!("killed"));
        assert_eq!(
            k.plan(&killed, None, 0)[0].steps[0].guard.as_deref(),
            Some("already killed")
        );
        assert_eq!(
            k.plan(&drift("web"), None, 0)[0].steps[0].target,
            "process 42 (<NA>) of container c1"
        );
    }

    #[test]
    fn cooldown_and_rate_limit_stop_a_playbook() {
        let p = parse(FILE).unwrap();
        let mut g = Guards::default();
        let s = 1_000_000_000u64;
        let a = drift("web");
        let first = &p.plan(&a, Some(&g), 10 * s)[0];
        assert!(first.starts());
        g.started(&p.playbooks[0], Some("c1"), 10 * s);
        let again = &p.plan(&a, Some(&g), 20 * s)[0];
        assert_eq!(
            again.stopped_by.as_deref(),
            Some("cooldown (60s for this container)")
        );
        assert!(again.steps.iter().all(|st| st.guard == again.stopped_by));
        assert!(p.plan(&a, Some(&g), 71 * s)[0].starts(), "cooldown over");
        // Rate limit: 2 per hour over all containers.
        g.started(&p.playbooks[0], Some("c2"), 80 * s);
        let mut b = drift("web");
        b.output_fields
            .insert("container.id".into(), serde_json::json!("c3"));
        assert_eq!(
            p.plan(&b, Some(&g), 90 * s)[0].stopped_by.as_deref(),
            Some("rate limit (2 per 3600s)")
        );
        assert!(p.plan(&b, Some(&g), 3700 * s)[0].starts(), "window passed");
        g.forget("c1");
        assert!(p.plan(&a, Some(&g), 21 * s).len() == 1);
    }

    #[test]
    fn wildcards_are_linear_on_hostile_values() {
        let pat = Pattern("*a*a*a*a*a*a*a*a*b".into());
        let v = "a".repeat(5000);
        assert!(!pat.matches(&v));
        assert!(Pattern("a*c?".into()).matches("abbbcd"));
        assert!(!Pattern("a*c?".into()).matches("abbbc"));
        assert!(Pattern("*".into()).matches(""));
    }
}

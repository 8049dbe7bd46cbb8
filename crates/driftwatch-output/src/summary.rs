//! Per-container drift summaries: what `GET /containers` and `driftwatch containers` show.
//!
//! Every alert the agent writes is counted for its container (`container.id`) by kind, taken
//! from the alert's tags ([`DriftKind::of`]): `network_drift`, `binary_drift`, `file_drift`,
//! `package_drift`, `config_drift`, `tamper` (and the agent's own `Driftwatch Sensor Tampered`), anything else is
//! `other`. A summary also keeps the first and last alert times, the last rule, and the paths
//! alerted on most (`drift.path`, else `fd.name`, else `proc.exepath`).
//!
//! Containers come from the agent's registry: a running container without alerts is `clean`,
//! one with alerts `drifted`. When a container is removed, its summary is kept as `exited` for
//! [`EXITED_TTL`] (so the drift of a short-lived container can still be read) and then dropped;
//! a removed container that never drifted disappears at once.
//!
//! The sensor-tamper alert is about the node, not one container: it is counted as `tamper` for
//! every container running when it is raised (their drift detection was compromised), and a
//! running container with no other alert is then `unverified`, not `clean` (nor `drifted`).
//!
//! Bounded memory: at most [`TRACKED_PATHS`] paths per container (when full, the least alerted,
//! least recent path is evicted: counts of paths that come and go are approximate, the
//! container's counts by kind are exact), paths cut at [`MAX_PATH_LEN`] bytes, and at most
//! [`MAX_SUMMARIES`] summaries (the least recently alerted is evicted first).

use driftwatch_event::internal::TAMPER_RULE;
use driftwatch_event::{Alert, ContainerInfo, HOST_CONTAINER_ID};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Paths reported per container.
pub const TOP_PATHS: usize = 10;
/// Paths counted per container.
pub const TRACKED_PATHS: usize = 64;
/// Longest path kept (bytes; cut at a character boundary).
pub const MAX_PATH_LEN: usize = 1024;
/// How long a removed container's summary stays, as `exited`.
pub const EXITED_TTL: Duration = Duration::from_secs(300);
/// Summaries kept at most (running, exited, or known only from alerts).
pub const MAX_SUMMARIES: usize = 8192;

/// What kind of drift an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftKind {
    Binary,
    File,
    Package,
    Config,
    Network,
    Tamper,
    Other,
}

impl DriftKind {
    pub const ALL: [DriftKind; 7] = [
        DriftKind::Binary,
        DriftKind::File,
        DriftKind::Package,
        DriftKind::Config,
        DriftKind::Network,
        DriftKind::Tamper,
        DriftKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::Binary => "binary",
            DriftKind::File => "file",
            DriftKind::Package => "package",
            DriftKind::Config => "config",
            DriftKind::Network => "network",
            DriftKind::Tamper => "tamper",
            DriftKind::Other => "other",
        }
    }

    /// The kind of an alert, from its tags (the first that applies: tamper, network, binary,
    /// package, file, config), else `other`. Network activity by drifted code is network drift.
    pub fn of(rule: &str, tags: &[String]) -> DriftKind {
        let has = |t: &str| tags.iter().any(|x| x == t);
        if rule == TAMPER_RULE || has("tamper") {
            DriftKind::Tamper
        } else if has("network_drift") {
            DriftKind::Network
        } else if has("binary_drift") {
            DriftKind::Binary
        } else if has("package_drift") {
            DriftKind::Package
        } else if has("file_drift") {
            DriftKind::File
        } else if has("config_drift") {
            DriftKind::Config
        } else {
            DriftKind::Other
        }
    }
}

/// Alerts by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    pub binary: u64,
    pub file: u64,
    pub package: u64,
    pub config: u64,
    #[serde(default)]
    pub network: u64,
    pub tamper: u64,
    pub other: u64,
}

impl KindCounts {
    pub fn get(&self, kind: DriftKind) -> u64 {
        match kind {
            DriftKind::Binary => self.binary,
            DriftKind::File => self.file,
            DriftKind::Package => self.package,
            DriftKind::Config => self.config,
            DriftKind::Network => self.network,
            DriftKind::Tamper => self.tamper,
            DriftKind::Other => self.other,
        }
    }

    fn add(&mut self, kind: DriftKind) {
        let c = match kind {
            DriftKind::Binary => &mut self.binary,
            DriftKind::File => &mut self.file,
            DriftKind::Package => &mut self.package,
            DriftKind::Config => &mut self.config,
            DriftKind::Network => &mut self.network,
            DriftKind::Tamper => &mut self.tamper,
            DriftKind::Other => &mut self.other,
        };
        *c = c.saturating_add(1);
    }

    pub fn total(&self) -> u64 {
        DriftKind::ALL.iter().map(|k| self.get(*k)).sum()
    }
}

/// A container's state in its summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Running, no alert.
    Clean,
    /// Alerts raised (running, or known only from its alerts).
    Drifted,
    /// Running, no drift alert of its own, but the node's sensor was tampered with while it
    /// ran: "clean" cannot be vouched for.
    Unverified,
    /// Removed, kept for a while because it drifted.
    Exited,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Clean => "clean",
            State::Drifted => "drifted",
            State::Unverified => "unverified",
            State::Exited => "exited",
        }
    }
}

/// The Kubernetes pod of a container (CRI labels).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub uid: Option<String>,
}

/// A path and how many alerts named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathCount {
    pub path: String,
    pub count: u64,
}

/// One container's drift summary (the JSON of `GET /containers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    /// containerd namespace (empty when unknown).
    pub namespace: String,
    /// Image reference.
    pub image: String,
    #[serde(default)]
    pub pod: Option<PodRef>,
    pub state: State,
    pub counts: KindCounts,
    /// All alerts (the sum of `counts`).
    pub alerts: u64,
    /// RFC 3339 UTC times of the first and last alert.
    #[serde(default)]
    pub first_seen: Option<String>,
    #[serde(default)]
    pub last_seen: Option<String>,
    #[serde(default)]
    pub last_rule: Option<String>,
    /// The most alerted paths, most first (at most [`TOP_PATHS`]).
    #[serde(default)]
    pub top_paths: Vec<PathCount>,
}

#[derive(Debug, Clone, Default)]
struct Identity {
    name: String,
    namespace: String,
    image: String,
    pod: Option<PodRef>,
}

impl Identity {
    fn of(info: &ContainerInfo) -> Identity {
        Identity {
            name: info.name.clone(),
            namespace: info.namespace.clone(),
            image: info.image_ref.clone(),
            pod: info.pod_name.as_ref().map(|n| PodRef {
                name: n.clone(),
                namespace: info.pod_namespace.clone(),
                uid: info.pod_uid.clone(),
            }),
        }
    }

    fn of_alert(id: &str, a: &Alert) -> Identity {
        let s = |k: &str| a.output_fields.get(k).and_then(|v| v.as_str());
        Identity {
            name: s("container.name").unwrap_or(id).to_string(),
            namespace: String::new(),
            image: s("container.image").unwrap_or_default().to_string(),
            pod: s("k8s.pod.name").map(|n| PodRef {
                name: n.to_string(),
                namespace: s("k8s.ns.name").map(str::to_string),
                uid: s("k8s.pod.uid").map(str::to_string),
            }),
        }
    }
}

#[derive(Debug, Default)]
struct Entry {
    identity: Identity,
    counts: KindCounts,
    first_ns: u64,
    last_ns: u64,
    last_rule: Option<String>,
    /// path → (alerts, last alert time)
    paths: HashMap<String, (u64, u64)>,
    /// When the container was removed.
    removed: Option<Instant>,
}

impl Entry {
    fn record(&mut self, kind: DriftKind, rule: &str, time_ns: u64, path: Option<&str>) {
        if self.counts.total() == 0 || time_ns < self.first_ns {
            self.first_ns = time_ns;
        }
        self.last_ns = self.last_ns.max(time_ns);
        self.counts.add(kind);
        if self.last_rule.as_deref() != Some(rule) {
            self.last_rule = Some(rule.to_string());
        }
        let Some(path) = path.filter(|p| !p.is_empty()) else {
            return;
        };
        let path = cut(path, MAX_PATH_LEN);
        if let Some((n, last)) = self.paths.get_mut(path) {
            *n = n.saturating_add(1);
            *last = (*last).max(time_ns);
            return;
        }
        if self.paths.len() >= TRACKED_PATHS {
            let evict = self
                .paths
                .iter()
                .min_by(|a, b| (a.1 .0, a.1 .1, a.0).cmp(&(b.1 .0, b.1 .1, b.0)))
                .map(|(p, _)| p.clone());
            if let Some(p) = evict {
                self.paths.remove(&p);
            }
        }
        self.paths.insert(path.to_string(), (1, time_ns));
    }

    fn summary(&self, id: &str, identity: &Identity, state: State) -> ContainerSummary {
        let alerts = self.counts.total();
        let time = |ns: u64| (alerts > 0).then(|| driftwatch_event::format_rfc3339_nanos(ns));
        let mut top: Vec<PathCount> = self
            .paths
            .iter()
            .map(|(p, (n, _))| PathCount {
                path: p.clone(),
                count: *n,
            })
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.path.cmp(&b.path)));
        top.truncate(TOP_PATHS);
        ContainerSummary {
            id: id.to_string(),
            name: identity.name.clone(),
            namespace: identity.namespace.clone(),
            image: identity.image.clone(),
            pod: identity.pod.clone(),
            state,
            counts: self.counts,
            alerts,
            first_seen: time(self.first_ns),
            last_seen: time(self.last_ns),
            last_rule: self.last_rule.clone(),
            top_paths: top,
        }
    }
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The running containers, as the summaries need them.
pub trait ContainerSource: Send + Sync {
    fn containers(&self) -> Vec<std::sync::Arc<ContainerInfo>>;
}

/// Every container's summary; shared by the alert writer (records), the processor (removals)
/// and the HTTP listener (reads).
#[derive(Default)]
pub struct Summaries {
    entries: Mutex<HashMap<String, Entry>>,
    source: OnceLock<Box<dyn ContainerSource>>,
}

impl std::fmt::Debug for Summaries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Summaries").finish_non_exhaustive()
    }
}

impl Summaries {
    /// Where running containers come from (set once the inventory is loaded).
    pub fn set_source(&self, source: Box<dyn ContainerSource>) {
        let _ = self.source.set(source);
    }

    fn live(&self) -> Vec<std::sync::Arc<ContainerInfo>> {
        self.source
            .get()
            .map(|s| s.containers())
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count one alert.
    pub fn record(&self, alert: &Alert) {
        let kind = DriftKind::of(&alert.rule, &alert.tags);
        let id = alert
            .output_fields
            .get("container.id")
            .and_then(|v| v.as_str())
            .filter(|id| !id.is_empty() && *id != HOST_CONTAINER_ID);
        let path = ["drift.path", "fd.name", "proc.exepath"]
            .iter()
            .find_map(|k| alert.output_fields.get(*k).and_then(|v| v.as_str()));
        match id {
            Some(id) => self.record_for(id, kind, alert, path),
            None if kind == DriftKind::Tamper => {
                // The node's sensor: every running container's detection was at stake.
                for info in self.live() {
                    let mut entries = self.lock();
                    let e = entries.entry(info.id.clone()).or_default();
                    e.identity = Identity::of(&info);
                    e.record(kind, &alert.rule, alert.time_ns, None);
                }
                self.bound();
            }
            None => {}
        }
    }

    fn record_for(&self, id: &str, kind: DriftKind, alert: &Alert, path: Option<&str>) {
        let is_new = !self.lock().contains_key(id);
        // A container first seen in an alert: its identity from the registry when it runs;
        // an alert written after the container went away makes it exited at once.
        let (identity, removed) = if is_new {
            match self.live().into_iter().find(|c| c.id == id) {
                Some(info) => (Identity::of(&info), None),
                None if self.source.get().is_some() => {
                    (Identity::of_alert(id, alert), Some(Instant::now()))
                }
                None => (Identity::of_alert(id, alert), None),
            }
        } else {
            (Identity::default(), None)
        };
        {
            let mut entries = self.lock();
            let e = entries.entry(id.to_string()).or_insert_with(|| Entry {
                identity,
                removed,
                ..Entry::default()
            });
            e.record(kind, &alert.rule, alert.time_ns, path);
        }
        if is_new {
            self.bound();
        }
    }

    /// A container was removed: its summary, if it drifted, stays for [`EXITED_TTL`].
    pub fn removed(&self, info: &ContainerInfo) {
        if let Some(e) = self.lock().get_mut(&info.id) {
            e.identity = Identity::of(info);
            e.removed = Some(Instant::now());
        }
    }

    /// Drop expired exited summaries, then the least recently alerted beyond [`MAX_SUMMARIES`].
    fn bound(&self) {
        let mut entries = self.lock();
        entries.retain(|_, e| e.removed.is_none_or(|t| t.elapsed() < EXITED_TTL));
        if entries.len() > MAX_SUMMARIES {
            let mut by_age: Vec<(u64, String)> = entries
                .iter()
                .map(|(id, e)| (e.last_ns, id.clone()))
                .collect();
            by_age.sort();
            let extra = entries.len() - MAX_SUMMARIES;
            for (_, id) in by_age.into_iter().take(extra) {
                entries.remove(&id);
            }
        }
    }

    /// Every running container (clean or drifted), then exited and alert-only ones; sorted by
    /// namespace, name and id.
    pub fn snapshot(&self) -> Vec<ContainerSummary> {
        self.bound();
        let live = self.live();
        let entries = self.lock();
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(live.len() + entries.len());
        let empty = Entry::default();
        for info in &live {
            if !seen.insert(info.id.as_str()) {
                continue;
            }
            let identity = Identity::of(info);
            let e = entries.get(&info.id).unwrap_or(&empty);
            let state = if e.counts.total() > e.counts.tamper {
                State::Drifted
            } else if e.counts.tamper > 0 {
                State::Unverified
            } else {
                State::Clean
            };
            out.push(e.summary(&info.id, &identity, state));
        }
        for (id, e) in entries.iter() {
            if seen.contains(id.as_str()) {
                continue;
            }
            let state = if e.removed.is_some() {
                State::Exited
            } else {
                State::Drifted
            };
            out.push(e.summary(id, &e.identity, state));
        }
        out.sort_by(|a, b| (&a.namespace, &a.name, &a.id).cmp(&(&b.namespace, &b.name, &b.id)));
        out
    }

    /// One container's summary, by full id.
    pub fn get(&self, id: &str) -> Option<ContainerSummary> {
        self.snapshot().into_iter().find(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on a broken fixture")]
    use super::*;
    use driftwatch_event::Priority;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    struct Fixed(Mutex<Vec<Arc<ContainerInfo>>>);
    impl ContainerSource for Arc<Fixed> {
        fn containers(&self) -> Vec<Arc<ContainerInfo>> {
            self.0.lock().unwrap().clone()
        }
    }

    fn info(id: &str) -> Arc<ContainerInfo> {
        Arc::new(ContainerInfo {
            id: id.into(),
            name: format!("{id}-name"),
            namespace: "ns".into(),
            image_ref: "docker.io/library/app:1".into(),
            pod_name: Some("pod".into()),
            pod_namespace: Some("prod".into()),
            ..ContainerInfo::default()
        })
    }

    fn alert(id: &str, rule: &str, tags: &[&str], path: &str, t: u64) -> Alert {
        let mut f = BTreeMap::new();
        f.insert("container.id".to_string(), json!(id));
        f.insert("drift.path".to_string(), json!(path));
        Alert {
            time_ns: t,
            rule: rule.into(),
            priority: Priority::Warning,
            output: String::new(),
            output_fields: f,
            tags: tags.iter().map(|s| s.to_string()).collect(),
            source: "syscall".into(),
            hostname: "h".into(),
        }
    }

    fn with(ids: &[&str]) -> (Summaries, Arc<Fixed>) {
        let src = Arc::new(Fixed(Mutex::new(ids.iter().map(|i| info(i)).collect())));
        let s = Summaries::default();
        s.set_source(Box::new(Arc::clone(&src)));
        (s, src)
    }

    #[test]
    fn kinds_come_from_tags() {
        let k = |rule: &str, tags: &[&str]| {
            DriftKind::of(
                rule,
                &tags.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(k("x", &["container", "binary_drift"]), DriftKind::Binary);
        assert_eq!(k("x", &["package_drift"]), DriftKind::Package);
        assert_eq!(k("x", &["file_drift"]), DriftKind::File);
        assert_eq!(k("x", &["config_drift"]), DriftKind::Config);
        assert_eq!(
            k("x", &["network_drift", "binary_drift"]),
            DriftKind::Network
        );
        assert_eq!(k("x", &["drift", "shell"]), DriftKind::Other);
        assert_eq!(k(TAMPER_RULE, &[]), DriftKind::Tamper);
        assert_eq!(k("x", &["tamper", "binary_drift"]), DriftKind::Tamper);
        let t = driftwatch_event::internal::tamper_alert("map changed", "h", 1);
        assert_eq!(DriftKind::of(&t.rule, &t.tags), DriftKind::Tamper);
    }

    #[test]
    fn counts_times_and_states() {
        let (s, _) = with(&["a", "b"]);
        s.record(&alert(
            "a",
            "Drift",
            &["binary_drift"],
            "/tmp/x",
            2_000_000_000,
        ));
        s.record(&alert(
            "a",
            "Drift",
            &["binary_drift"],
            "/tmp/x",
            1_000_000_000,
        ));
        s.record(&alert(
            "a",
            "Pkg",
            &["package_drift"],
            "/usr/bin/apt",
            3_000_000_000,
        ));
        s.record(&alert("host", "Drift", &["binary_drift"], "/x", 1));
        let all = s.snapshot();
        assert_eq!(all.len(), 2);
        let a = &all[0];
        assert_eq!((a.id.as_str(), a.state), ("a", State::Drifted));
        assert_eq!((a.counts.binary, a.counts.package, a.alerts), (2, 1, 3));
        assert_eq!(
            a.first_seen.as_deref(),
            Some("1970-01-01T00:00:01.000000000Z")
        );
        assert_eq!(
            a.last_seen.as_deref(),
            Some("1970-01-01T00:00:03.000000000Z")
        );
        assert_eq!(a.last_rule.as_deref(), Some("Pkg"));
        assert_eq!(a.name, "a-name");
        assert_eq!(a.image, "docker.io/library/app:1");
        assert_eq!(a.pod.as_ref().unwrap().namespace.as_deref(), Some("prod"));
        assert_eq!(
            a.top_paths,
            vec![
                PathCount {
                    path: "/tmp/x".into(),
                    count: 2
                },
                PathCount {
                    path: "/usr/bin/apt".into(),
                    count: 1
                }
            ]
        );
        let b = &all[1];
        assert_eq!((b.state, b.alerts), (State::Clean, 0));
        assert!(b.first_seen.is_none() && b.top_paths.is_empty());
        assert_eq!(s.get("b").unwrap().state, State::Clean);
        assert!(s.get("nope").is_none());
        // JSON round trip.
        let v = serde_json::to_value(&all).unwrap();
        assert_eq!(v[0]["state"], "drifted");
        assert_eq!(v[0]["counts"]["binary"], 2);
        let back: Vec<ContainerSummary> = serde_json::from_value(v).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn top_paths_are_bounded() {
        let (s, _) = with(&["a"]);
        // One hot path, then many more distinct paths than are tracked.
        for i in 0..5 {
            s.record(&alert("a", "r", &["binary_drift"], "/hot", i));
        }
        for i in 0..1000u64 {
            s.record(&alert(
                "a",
                "r",
                &["binary_drift"],
                &format!("/p{i}"),
                10 + i,
            ));
        }
        s.record(&alert("a", "r", &["binary_drift"], &"x".repeat(5000), 2000));
        {
            let entries = s.lock();
            assert!(entries["a"].paths.len() <= TRACKED_PATHS);
            assert!(entries["a"].paths.keys().all(|p| p.len() <= MAX_PATH_LEN));
        }
        let a = s.get("a").unwrap();
        assert_eq!(a.counts.binary, 1006, "counts stay exact");
        assert_eq!(a.top_paths.len(), TOP_PATHS);
        assert_eq!(
            a.top_paths[0],
            PathCount {
                path: "/hot".into(),
                count: 5
            }
        );
    }

    #[test]
    fn removed_containers_are_exited_or_gone() {
        let (s, src) = with(&["a", "b"]);
        s.record(&alert("a", "r", &["binary_drift"], "/x", 1));
        src.0.lock().unwrap().clear();
        s.removed(&info("a"));
        s.removed(&info("b"));
        let all = s.snapshot();
        assert_eq!(all.len(), 1, "the clean one is gone: {all:?}");
        assert_eq!((all[0].id.as_str(), all[0].state), ("a", State::Exited));
        assert_eq!(all[0].name, "a-name");
        // An alert that arrives after its container went away.
        s.record(&alert("c", "r", &["binary_drift"], "/y", 2));
        assert_eq!(s.get("c").unwrap().state, State::Exited);
    }

    #[test]
    fn node_tamper_counts_for_every_running_container() {
        let (s, _) = with(&["a", "b"]);
        s.record(&driftwatch_event::internal::tamper_alert(
            "policy map changed",
            "h",
            1,
        ));
        let all = s.snapshot();
        assert!(all
            .iter()
            .all(|c| c.counts.tamper == 1 && c.state == State::Unverified));
        assert!(all[0].top_paths.is_empty());
        // Drift of its own makes it drifted.
        s.record(&alert("b", "r", &["binary_drift"], "/x", 3));
        assert_eq!(s.get("a").unwrap().state, State::Unverified);
        assert_eq!(s.get("b").unwrap().state, State::Drifted);
    }
}

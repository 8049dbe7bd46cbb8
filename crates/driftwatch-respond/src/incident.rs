//! Incidents: an alert that starts a playbook opens one (or joins the open incident of the same
//! container within the incident window), and every step of the response is recorded on it —
//! time, playbook, action, target, mode, result and error.
//!
//! Kept in memory (the newest [`INCIDENTS_MAX`]) and appended, one JSON line per change (the
//! whole incident), to `response.incidents_file`, which is read back at start: the last line of
//! each id wins, a line that does not parse (a crash mid-write) is skipped and counted. The file
//! is compacted (rewritten through a temporary file and a rename) when it holds more than twice
//! as many lines as incidents.

use driftwatch_event::{format_rfc3339_nanos, Alert};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Incidents kept in memory and in the file.
pub const INCIDENTS_MAX: usize = 1000;
/// Alerts listed per incident (the rest are only counted).
pub const ALERTS_PER_INCIDENT: usize = 100;
/// Steps recorded per incident (the rest are only counted).
pub const STEPS_PER_INCIDENT: usize = 200;

/// The incidents file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("cannot open the incidents file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The container an incident is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentContainer {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s_pod: Option<String>,
}

/// An alert of an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentAlert {
    pub time: String,
    pub rule: String,
    pub priority: String,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepResult {
    /// Observe mode: planned and recorded, nothing changed.
    WouldDo,
    /// A guard stopped it (`guard` says which).
    Skipped,
    Done,
    Failed,
}

impl StepResult {
    pub fn as_str(self) -> &'static str {
        match self {
            StepResult::WouldDo => "would-do",
            StepResult::Skipped => "skipped",
            StepResult::Done => "done",
            StepResult::Failed => "failed",
        }
    }
}

/// One step of a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub time: String,
    pub playbook: String,
    pub action: String,
    pub target: String,
    pub mode: String,
    pub result: StepResult,
    /// The guard that stopped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it did (the evidence path, the isolation's expiry, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How long it took, ms.
    #[serde(default)]
    pub duration_ms: f64,
}

/// One incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub opened: String,
    pub updated: String,
    pub opened_ns: u64,
    pub updated_ns: u64,
    pub container: IncidentContainer,
    pub alerts: Vec<IncidentAlert>,
    pub alerts_total: u64,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub steps_total: u64,
    /// The evidence bundles captured for it.
    #[serde(default)]
    pub evidence: Vec<String>,
}

impl Incident {
    /// The container of an alert (`container.*`, `k8s.*` output fields).
    pub fn container_of(alert: &Alert) -> IncidentContainer {
        let s = |k: &str| alert.str_field(k).map(str::to_string);
        IncidentContainer {
            id: s("container.id").unwrap_or_default(),
            name: s("container.name").unwrap_or_default(),
            image: s("container.image").unwrap_or_default(),
            k8s_namespace: s("k8s.ns.name"),
            k8s_pod: s("k8s.pod.name"),
        }
    }
}

/// The incidents and their file.
#[derive(Debug)]
pub struct Incidents {
    window_ns: u64,
    path: Option<PathBuf>,
    file: Option<File>,
    lines: usize,
    by_id: BTreeMap<String, Incident>,
    /// container id → its open incident.
    open: HashMap<String, String>,
    seq: u64,
    /// Lines of the file that did not parse at start.
    pub skipped_lines: usize,
}

impl Incidents {
    /// In memory only (`driftwatch respond plan`, tests).
    pub fn in_memory(window: std::time::Duration) -> Incidents {
        Incidents {
            window_ns: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            path: None,
            file: None,
            lines: 0,
            by_id: BTreeMap::new(),
            open: HashMap::new(),
            seq: 0,
            skipped_lines: 0,
        }
    }

    /// Opens (creating) the incidents file and reads what it holds.
    pub fn open(path: &Path, window: std::time::Duration) -> Result<Incidents, IncidentError> {
        let err = |source| IncidentError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut me = Incidents::in_memory(window);
        match File::open(path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    let Ok(line) = line else {
                        me.skipped_lines += 1;
                        continue;
                    };
                    me.lines += 1;
                    match serde_json::from_str::<Incident>(&line) {
                        Ok(i) => {
                            me.by_id.insert(i.id.clone(), i);
                        }
                        Err(_) => me.skipped_lines += 1,
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        me.trim();
        me.seq = me.by_id.len() as u64;
        me.path = Some(path.to_path_buf());
        if me.lines > 2 * me.by_id.len().max(1) {
            me.compact().map_err(err)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        me.file = Some(file);
        Ok(me)
    }

    /// Keeps the newest [`INCIDENTS_MAX`].
    fn trim(&mut self) {
        while self.by_id.len() > INCIDENTS_MAX {
            let oldest = self
                .by_id
                .values()
                .min_by_key(|i| i.updated_ns)
                .map(|i| i.id.clone());
            match oldest {
                Some(id) => {
                    self.by_id.remove(&id);
                    self.open.retain(|_, v| *v != id);
                }
                None => break,
            }
        }
    }

    fn compact(&mut self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("compact.tmp");
        let mut f = File::create(&tmp)?;
        let mut all: Vec<&Incident> = self.by_id.values().collect();
        all.sort_by_key(|i| i.updated_ns);
        for i in all {
            writeln!(f, "{}", serde_json::to_string(i).unwrap_or_default())?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        self.lines = self.by_id.len();
        self.file = Some(OpenOptions::new().append(true).open(path)?);
        Ok(())
    }

    /// Appends the incident's current state to the file (a failure is logged: the incident is
    /// still in memory).
    fn persist(&mut self, id: &str) {
        if self.file.is_none() {
            return;
        }
        let Some(i) = self.by_id.get(id) else {
            return;
        };
        let line = match serde_json::to_string(i) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "an incident could not be serialised");
                return;
            }
        };
        if let Some(f) = &mut self.file {
            let mut buf = line.into_bytes();
            buf.push(b'\n');
            if let Err(e) = f.write_all(&buf) {
                tracing::warn!(error = %e, "cannot append to the incidents file");
            }
            self.lines += 1;
        }
        if self.lines > 2 * INCIDENTS_MAX.max(self.by_id.len()) {
            if let Err(e) = self.compact() {
                tracing::warn!(error = %e, "cannot compact the incidents file");
            }
        }
    }

    /// The open incident of `alert`'s container, or a new one; the alert is added to it.
    pub fn record_alert(&mut self, alert: &Alert, now_ns: u64) -> String {
        let container = Incident::container_of(alert);
        let joined = self.open.get(&container.id).and_then(|id| {
            self.by_id
                .get(id)
                .filter(|i| now_ns.saturating_sub(i.updated_ns) < self.window_ns)
                .map(|i| i.id.clone())
        });
        let id = match joined {
            Some(id) => id,
            None => {
                self.seq += 1;
                let id = format!("{}-{}", now_ns / 1_000_000, self.seq);
                let now = format_rfc3339_nanos(now_ns);
                self.by_id.insert(
                    id.clone(),
                    Incident {
                        id: id.clone(),
                        opened: now.clone(),
                        updated: now,
                        opened_ns: now_ns,
                        updated_ns: now_ns,
                        container: container.clone(),
                        alerts: Vec::new(),
                        alerts_total: 0,
                        steps: Vec::new(),
                        steps_total: 0,
                        evidence: Vec::new(),
                    },
                );
                self.open.insert(container.id.clone(), id.clone());
                self.trim();
                id
            }
        };
        if let Some(i) = self.by_id.get_mut(&id) {
            i.alerts_total += 1;
            if i.alerts.len() < ALERTS_PER_INCIDENT {
                i.alerts.push(IncidentAlert {
                    time: alert.time_rfc3339(),
                    rule: alert.rule.clone(),
                    priority: alert.priority.to_string(),
                });
            }
            i.updated_ns = now_ns;
            i.updated = format_rfc3339_nanos(now_ns);
        }
        self.persist(&id);
        id
    }

    /// Adds `alert` to its container's open incident, if there is one within the window (an
    /// alert whose playbooks a cooldown stopped still belongs to the story); its id.
    pub fn join_if_open(&mut self, alert: &Alert, now_ns: u64) -> Option<String> {
        let id = alert.str_field("container.id")?;
        let open = self.open.get(id)?;
        let i = self.by_id.get(open)?;
        if now_ns.saturating_sub(i.updated_ns) >= self.window_ns {
            return None;
        }
        Some(self.record_alert(alert, now_ns))
    }

    /// Records a step on incident `id`.
    pub fn record_step(&mut self, id: &str, step: Step, now_ns: u64) {
        if let Some(i) = self.by_id.get_mut(id) {
            i.steps_total += 1;
            if i.steps.len() < STEPS_PER_INCIDENT {
                i.steps.push(step);
            }
            i.updated_ns = now_ns;
            i.updated = format_rfc3339_nanos(now_ns);
        }
        self.persist(id);
    }

    /// Records an evidence bundle of incident `id`.
    pub fn record_evidence(&mut self, id: &str, path: &Path) {
        if let Some(i) = self.by_id.get_mut(id) {
            i.evidence.push(path.display().to_string());
        }
        self.persist(id);
    }

    pub fn get(&self, id: &str) -> Option<&Incident> {
        self.by_id.get(id)
    }

    /// Every incident, newest first.
    pub fn list(&self) -> Vec<&Incident> {
        let mut v: Vec<&Incident> = self.by_id.values().collect();
        v.sort_by(|a, b| b.opened_ns.cmp(&a.opened_ns).then(b.id.cmp(&a.id)));
        v
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The container went away: its incident is closed (a new alert opens a new one).
    pub fn close_container(&mut self, container_id: &str) {
        self.open.remove(container_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn alert(container: &str, rule: &str) -> Alert {
        Alert {
            time_ns: 1_000,
            rule: rule.into(),
            priority: driftwatch_event::Priority::Critical,
            output: "x".into(),
            output_fields: [
                ("container.id".to_string(), serde_json::json!(container)),
                ("container.name".to_string(), serde_json::json!("web")),
            ]
            .into(),
            tags: vec![],
            source: "syscall".into(),
            hostname: "h".into(),
        }
    }

    fn step(action: &str) -> Step {
        Step {
            time: "t".into(),
            playbook: "p".into(),
            action: action.into(),
            target: "container c1".into(),
            mode: "enforce".into(),
            result: StepResult::Done,
            guard: None,
            error: None,
            detail: None,
            duration_ms: 1.5,
        }
    }

    #[test]
    fn alerts_of_a_container_join_its_incident_within_the_window() {
        let mut inc = Incidents::in_memory(Duration::from_secs(10));
        let s = 1_000_000_000;
        let a = inc.record_alert(&alert("c1", "r1"), s);
        let b = inc.record_alert(&alert("c1", "r2"), 5 * s);
        let c = inc.record_alert(&alert("c2", "r1"), 5 * s);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let d = inc.record_alert(&alert("c1", "r3"), 20 * s);
        assert_ne!(a, d, "the window passed");
        assert_eq!(inc.get(&a).unwrap().alerts_total, 2);
        // An alert no playbook started joins the open incident (d, the newest of c1).
        assert_eq!(
            inc.join_if_open(&alert("c1", "r4"), 21 * s).as_deref(),
            Some(d.as_str())
        );
        assert_eq!(inc.get(&d).unwrap().alerts_total, 2);
        assert_eq!(
            inc.join_if_open(&alert("c9", "r4"), 21 * s),
            None,
            "none open"
        );
        assert_eq!(
            inc.join_if_open(&alert("c1", "r5"), 40 * s),
            None,
            "window passed"
        );
        inc.close_container("c2");
        assert_ne!(inc.record_alert(&alert("c2", "r1"), 6 * s), c);
        assert_eq!(inc.len(), 4);
    }

    #[test]
    fn the_file_survives_a_restart_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/incidents.jsonl");
        let id = {
            let mut inc = Incidents::open(&path, Duration::from_secs(60)).unwrap();
            let id = inc.record_alert(&alert("c1", "r1"), 1_000);
            inc.record_step(&id, step("capture"), 2_000);
            inc.record_step(&id, step("isolate"), 3_000);
            inc.record_evidence(&id, Path::new("/ev/1"));
            id
        };
        // A crash in the middle of a line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"id\":\"half").unwrap();
        drop(f);
        let inc = Incidents::open(&path, Duration::from_secs(60)).unwrap();
        assert_eq!(inc.skipped_lines, 1);
        let i = inc.get(&id).unwrap();
        let actions: Vec<&str> = i.steps.iter().map(|s| s.action.as_str()).collect();
        assert_eq!(actions, ["capture", "isolate"]);
        assert_eq!(i.evidence, ["/ev/1"]);
        // Several lines per incident were compacted into one at open.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[test]
    fn memory_is_bounded() {
        let mut inc = Incidents::in_memory(Duration::from_secs(1));
        for n in 0..(INCIDENTS_MAX as u64 + 50) {
            let id = inc.record_alert(&alert(&format!("c{n}"), "r"), n * 10);
            for _ in 0..(STEPS_PER_INCIDENT + 5) {
                inc.record_step(&id, step("kill"), n * 10 + 1);
            }
            if n == 0 {
                assert_eq!(inc.get(&id).unwrap().steps.len(), STEPS_PER_INCIDENT);
                assert_eq!(
                    inc.get(&id).unwrap().steps_total,
                    STEPS_PER_INCIDENT as u64 + 5
                );
            }
        }
        assert_eq!(inc.len(), INCIDENTS_MAX);
        assert!(inc.list()[0].opened_ns > inc.list()[INCIDENTS_MAX - 1].opened_ns);
    }
}

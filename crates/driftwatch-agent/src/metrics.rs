//! Internal counters, rendered in the Prometheus text format. Names follow
//! `driftwatch_<name>_<unit>_total`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Metrics {
    pub exec_events: AtomicU64,
    pub fork_events: AtomicU64,
    pub exit_events: AtomicU64,
    pub map_events: AtomicU64,
    pub file_events: AtomicU64,
    pub scripts_unresolved: AtomicU64,
    pub decode_errors: AtomicU64,
    /// Ring-buffer reservation failures counted in the kernel, by kind (set from the sensor).
    pub ringbuf_lost_exec: AtomicU64,
    pub ringbuf_lost_fork: AtomicU64,
    pub ringbuf_lost_exit: AtomicU64,
    pub ringbuf_lost_map: AtomicU64,
    pub ringbuf_lost_file: AtomicU64,
    pub kernel_kills: AtomicU64,
    pub userspace_kills: AtomicU64,
    pub event_channel_drops: AtomicU64,
    pub alert_channel_drops: AtomicU64,
    pub output_errors: AtomicU64,
    pub tamper_detections: AtomicU64,
    pub containers_tracked: AtomicU64,
    pub processes_tracked: AtomicU64,
    pub policy_entries: AtomicU64,
    pub origin_lookup_errors: AtomicU64,
    /// Exec-gate (fanotify) permission events answered, and what they led to.
    pub gate_events: AtomicU64,
    pub gate_unchanged: AtomicU64,
    pub gate_doomed: AtomicU64,
    pub gate_errors: AtomicU64,
    /// Upper-layer files in the kernel allow map.
    pub gate_allowed_files: AtomicU64,
    alerts_by_rule: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    pub fn count_alert(&self, rule: &str) {
        if let Ok(mut m) = self.alerts_by_rule.lock() {
            *m.entry(rule.to_string()).or_default() += 1;
        }
    }

    pub fn alerts_for(&self, rule: &str) -> u64 {
        self.alerts_by_rule
            .lock()
            .map(|m| m.get(rule).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Render every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::with_capacity(2048);
        family(
            &mut out,
            "driftwatch_events_total",
            "counter",
            "Kernel events processed, by kind.",
        );
        for (kind, v) in [
            ("exec", g(&self.exec_events)),
            ("fork", g(&self.fork_events)),
            ("exit", g(&self.exit_events)),
            ("map", g(&self.map_events)),
            ("file", g(&self.file_events)),
        ] {
            let _ = writeln!(out, "driftwatch_events_total{{kind=\"{kind}\"}} {v}");
        }
        family(
            &mut out,
            "driftwatch_ringbuf_lost_events_total",
            "counter",
            "Events the kernel could not put in the ring buffer (buffer full), by kind.",
        );
        for (kind, v) in [
            ("exec", g(&self.ringbuf_lost_exec)),
            ("fork", g(&self.ringbuf_lost_fork)),
            ("exit", g(&self.ringbuf_lost_exit)),
            ("map", g(&self.ringbuf_lost_map)),
            ("file", g(&self.ringbuf_lost_file)),
        ] {
            let _ = writeln!(
                out,
                "driftwatch_ringbuf_lost_events_total{{kind=\"{kind}\"}} {v}"
            );
        }
        family(
            &mut out,
            "driftwatch_channel_dropped_events_total",
            "counter",
            "Events or alerts dropped because a pipeline channel was full, by channel.",
        );
        let _ = writeln!(
            out,
            "driftwatch_channel_dropped_events_total{{channel=\"events\"}} {}",
            g(&self.event_channel_drops)
        );
        let _ = writeln!(
            out,
            "driftwatch_channel_dropped_events_total{{channel=\"alerts\"}} {}",
            g(&self.alert_channel_drops)
        );
        family(
            &mut out,
            "driftwatch_alerts_total",
            "counter",
            "Alerts raised, by rule.",
        );
        if let Ok(m) = self.alerts_by_rule.lock() {
            for (rule, v) in m.iter() {
                let _ = writeln!(
                    out,
                    "driftwatch_alerts_total{{rule=\"{}\"}} {v}",
                    escape_label(rule)
                );
            }
        }
        for (name, help, v) in [
            (
                "driftwatch_decode_errors_total",
                "Kernel records rejected by the decoder (corrupt, truncated, unknown kind).",
                g(&self.decode_errors),
            ),
            (
                "driftwatch_kernel_kills_total",
                "Drifted executions killed in the kernel before they ran.",
                g(&self.kernel_kills),
            ),
            (
                "driftwatch_userspace_kills_total",
                "Drifted processes killed from userspace (the kernel policy was not yet set).",
                g(&self.userspace_kills),
            ),
            (
                "driftwatch_scripts_unresolved_total",
                "Scripts given to an interpreter by a relative path whose working directory was unknown.",
                g(&self.scripts_unresolved),
            ),
            (
                "driftwatch_tamper_detections_total",
                "Changes to the sensor's maps the agent did not make, detached programs, missing canary execs.",
                g(&self.tamper_detections),
            ),
            (
                "driftwatch_output_errors_total",
                "Failed writes to an output.",
                g(&self.output_errors),
            ),
            (
                "driftwatch_gate_events_total",
                "Exec-permission events held by the exec gate (--enforce) until its verdict was in the kernel.",
                g(&self.gate_events),
            ),
            (
                "driftwatch_gate_unchanged_total",
                "Upper-layer files the exec gate found to hold unchanged image bytes (allowed to run).",
                g(&self.gate_unchanged),
            ),
            (
                "driftwatch_gate_doomed_total",
                "Execs of drifted scripts the exec gate had the kernel kill before the interpreter ran.",
                g(&self.gate_doomed),
            ),
            (
                "driftwatch_gate_errors_total",
                "Exec-gate failures (marks, reads, map writes); the kernel policy then decides alone.",
                g(&self.gate_errors),
            ),
            (
                "driftwatch_origin_lookup_errors_total",
                "Executable-origin lookups that failed (layers unreadable); such execs are 'unknown'.",
                g(&self.origin_lookup_errors),
            ),
        ] {
            family(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {v}");
        }
        family(
            &mut out,
            "driftwatch_containers_tracked",
            "gauge",
            "Containers tracked.",
        );
        let _ = writeln!(
            out,
            "driftwatch_containers_tracked {}",
            g(&self.containers_tracked)
        );
        family(
            &mut out,
            "driftwatch_gate_allowed_files",
            "gauge",
            "Upper-layer files in the kernel allow map (copied-up-unchanged image files).",
        );
        let _ = writeln!(
            out,
            "driftwatch_gate_allowed_files {}",
            g(&self.gate_allowed_files)
        );
        family(
            &mut out,
            "driftwatch_policy_entries",
            "gauge",
            "Container cgroups in the kernel policy map.",
        );
        let _ = writeln!(out, "driftwatch_policy_entries {}", g(&self.policy_entries));
        family(
            &mut out,
            "driftwatch_processes_tracked",
            "gauge",
            "Processes in the process table.",
        );
        let _ = writeln!(
            out,
            "driftwatch_processes_tracked {}",
            g(&self.processes_tracked)
        );
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_contains_families_and_escaped_rule_labels() {
        let m = Metrics::default();
        m.exec_events.store(3, Ordering::Relaxed);
        m.count_alert("Drift \"x\"");
        m.count_alert("Drift \"x\"");
        let text = m.render();
        assert!(text.contains("driftwatch_events_total{kind=\"exec\"} 3\n"));
        assert!(text.contains("driftwatch_alerts_total{rule=\"Drift \\\"x\\\"\"} 2\n"));
        assert!(text.contains("# TYPE driftwatch_ringbuf_lost_events_total counter\n"));
        assert!(text.contains("driftwatch_containers_tracked 0\n"));
        assert_eq!(m.alerts_for("Drift \"x\""), 2);
    }
}

//! The agent's counters and the `/metrics` registry (OpenMetrics text, `prometheus-client`).
//!
//! Every component owns its metrics (`driftwatch_respond::GateMetrics`,
//! `driftwatch_output::OutputMetrics`, the pipeline's here) and registers them under the
//! `driftwatch_` prefix in [`Metrics::registry`], built once at start. Counters are named
//! `driftwatch_<name>_total`; per-kind and per-channel series are created up front, so the hot
//! path increments an atomic and takes no lock.

use driftwatch_output::OutputMetrics;
use driftwatch_respond::GateMetrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;
use std::sync::Arc;

type Label = [(&'static str, &'static str); 1];
type RuleLabel = [(&'static str, String); 1];

/// One counter per kernel event kind, each a series of one family (`{kind="exec"}`, …).
#[derive(Debug, Clone)]
pub struct ByKind {
    family: Family<Label, Counter>,
    pub exec: Counter,
    pub fork: Counter,
    pub exit: Counter,
    pub map: Counter,
    pub file: Counter,
    pub net: Counter,
    pub dns: Counter,
}

impl Default for ByKind {
    fn default() -> Self {
        let family = Family::<Label, Counter>::default();
        let series = |kind: &'static str| family.get_or_create_owned(&[("kind", kind)]);
        ByKind {
            exec: series("exec"),
            fork: series("fork"),
            exit: series("exit"),
            map: series("map"),
            file: series("file"),
            net: series("net"),
            dns: series("dns"),
            family,
        }
    }
}

/// Sets a counter mirrored from elsewhere (the kernel's own counts).
pub fn mirror(counter: &Counter, value: u64) {
    counter.inner().store(value, Ordering::Relaxed);
}

/// A count for a gauge.
pub fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Everything the pipeline counts, and the components' metrics it registers.
#[derive(Debug)]
pub struct Metrics {
    /// Kernel events processed, by kind.
    pub events: ByKind,
    /// Ring-buffer reservation failures counted in the kernel, by kind (mirrored from the
    /// sensor).
    pub ringbuf_lost: ByKind,
    channels: Family<Label, Counter>,
    /// Events dropped because the events channel was full.
    pub event_channel_drops: Counter,
    /// Alerts dropped because the alert channel was closed.
    pub alert_channel_drops: Counter,
    pub decode_errors: Counter,
    pub kernel_kills: Counter,
    pub userspace_kills: Counter,
    pub scripts_unresolved: Counter,
    pub tamper_detections: Counter,
    pub origin_lookup_errors: Counter,
    /// Listeners and peers added to network baselines while learning.
    pub baseline_learned: Counter,
    /// Baseline files that could not be read or written.
    pub baseline_errors: Counter,
    pub baseline_workloads: Gauge,
    pub containers_tracked: Gauge,
    pub processes_tracked: Gauge,
    pub policy_entries: Gauge,
    alerts: Family<RuleLabel, Counter>,
    pub gate: Arc<GateMetrics>,
    pub output: Arc<OutputMetrics>,
    pub response: Arc<driftwatch_respond::ResponseMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        let channels = Family::<Label, Counter>::default();
        Metrics {
            events: ByKind::default(),
            ringbuf_lost: ByKind::default(),
            event_channel_drops: channels.get_or_create_owned(&[("channel", "events")]),
            alert_channel_drops: channels.get_or_create_owned(&[("channel", "alerts")]),
            channels,
            decode_errors: Counter::default(),
            kernel_kills: Counter::default(),
            userspace_kills: Counter::default(),
            scripts_unresolved: Counter::default(),
            tamper_detections: Counter::default(),
            origin_lookup_errors: Counter::default(),
            baseline_learned: Counter::default(),
            baseline_errors: Counter::default(),
            baseline_workloads: Gauge::default(),
            containers_tracked: Gauge::default(),
            processes_tracked: Gauge::default(),
            policy_entries: Gauge::default(),
            alerts: Family::default(),
            gate: Arc::default(),
            output: Arc::default(),
            response: Arc::default(),
        }
    }
}

impl Metrics {
    /// Count one alert of `rule`.
    pub fn count_alert(&self, rule: &str) {
        self.alerts
            .get_or_create(&[("rule", rule.to_string())])
            .inc();
    }

    /// Alerts counted for `rule` so far.
    pub fn alerts_for(&self, rule: &str) -> u64 {
        self.alerts
            .get(&[("rule", rule.to_string())])
            .map_or(0, |c| c.get())
    }

    /// The registry `/metrics` encodes: every metric of the agent and its components.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("driftwatch");
        r.register(
            "events",
            "Kernel events processed, by kind",
            self.events.family.clone(),
        );
        r.register(
            "ringbuf_lost_events",
            "Events the kernel could not put in the ring buffer (buffer full), by kind",
            self.ringbuf_lost.family.clone(),
        );
        r.register(
            "channel_dropped_events",
            "Events or alerts dropped because a pipeline channel was full, by channel",
            self.channels.clone(),
        );
        r.register("alerts", "Alerts raised, by rule", self.alerts.clone());
        for (name, help, c) in [
            (
                "decode_errors",
                "Kernel records rejected by the decoder (corrupt, truncated, unknown kind)",
                &self.decode_errors,
            ),
            (
                "kernel_kills",
                "Drifted executions killed in the kernel before they ran",
                &self.kernel_kills,
            ),
            (
                "userspace_kills",
                "Drifted processes killed from userspace (the kernel policy was not yet set)",
                &self.userspace_kills,
            ),
            (
                "scripts_unresolved",
                "Scripts given to an interpreter by a relative path whose working directory was unknown",
                &self.scripts_unresolved,
            ),
            (
                "tamper_detections",
                "Changes to the sensor's maps the agent did not make, detached programs, missing canary execs",
                &self.tamper_detections,
            ),
            (
                "origin_lookup_errors",
                "Executable-origin lookups that failed (layers unreadable); such execs are 'unknown'",
                &self.origin_lookup_errors,
            ),
            (
                "baseline_learned",
                "Listeners and outbound peers added to network baselines while their workloads learned",
                &self.baseline_learned,
            ),
            (
                "baseline_errors",
                "Network baseline files that could not be read (a mistake in an edit) or written",
                &self.baseline_errors,
            ),
        ] {
            r.register(name, help, c.clone());
        }
        for (name, help, g) in [
            (
                "containers_tracked",
                "Containers tracked",
                &self.containers_tracked,
            ),
            (
                "processes_tracked",
                "Processes in the process table",
                &self.processes_tracked,
            ),
            (
                "policy_entries",
                "Container cgroups in the kernel policy map",
                &self.policy_entries,
            ),
            (
                "baseline_workloads",
                "Workloads with a network baseline",
                &self.baseline_workloads,
            ),
        ] {
            r.register(name, help, g.clone());
        }
        self.gate.register(&mut r);
        self.response.register(&mut r);
        self.output.register(&mut r);
        r
    }
}

/// The OpenMetrics text of `registry` (what `GET /metrics` answers).
pub fn render(registry: &Registry) -> String {
    let mut out = String::with_capacity(4096);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!(error = %e, "cannot encode the metrics");
    }
    out
}

/// `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_contains_families_and_escaped_rule_labels() {
        let m = Metrics::default();
        let registry = m.registry();
        m.events.exec.inc_by(3);
        m.count_alert("Drift \"x\"");
        m.count_alert("Drift \"x\"");
        mirror(&m.ringbuf_lost.file, 7);
        m.gate.events.inc();
        let text = render(&registry);
        assert!(
            text.contains("driftwatch_events_total{kind=\"exec\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("driftwatch_alerts_total{rule=\"Drift \\\"x\\\"\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE driftwatch_ringbuf_lost_events counter\n"));
        assert!(text.contains("driftwatch_ringbuf_lost_events_total{kind=\"file\"} 7\n"));
        assert!(text.contains("driftwatch_containers_tracked 0\n"));
        assert!(text.contains("driftwatch_gate_events_total 1\n"), "{text}");
        assert!(
            text.contains("driftwatch_output_errors_total 0\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(m.alerts_for("Drift \"x\""), 2);
    }
}

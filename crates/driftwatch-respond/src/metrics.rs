//! What the responder counts (`driftwatch_response_*` in `/metrics`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// The responder's metrics.
#[derive(Debug)]
pub struct ResponseMetrics {
    /// Alerts the responder had no room for (they still went to the outputs).
    pub dropped_alerts: Counter,
    /// Incidents opened.
    pub incidents: Counter,
    /// Steps by action and result (`done`, `failed`, `skipped`, `would-do`).
    steps: Family<Labels, Counter>,
    /// Seconds from the alert's time to the end of each step that ran.
    pub step_latency: Histogram,
}

impl Default for ResponseMetrics {
    fn default() -> Self {
        ResponseMetrics {
            dropped_alerts: Counter::default(),
            incidents: Counter::default(),
            steps: Family::default(),
            step_latency: Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        }
    }
}

impl ResponseMetrics {
    /// Counts one step.
    pub fn step(&self, action: &str, result: &str) {
        self.steps
            .get_or_create(&vec![
                ("action", action.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
    }

    /// Steps counted for `action` and `result`.
    pub fn steps_for(&self, action: &str, result: &str) -> u64 {
        self.steps
            .get(&vec![
                ("action", action.to_string()),
                ("result", result.to_string()),
            ])
            .map_or(0, |c| c.get())
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "response_dropped_alerts",
            "Alerts the responder had no room for (they still went to the outputs)",
            self.dropped_alerts.clone(),
        );
        registry.register(
            "response_incidents",
            "Incidents opened by playbooks",
            self.incidents.clone(),
        );
        registry.register(
            "response_steps",
            "Playbook steps by action and result",
            self.steps.clone(),
        );
        registry.register(
            "response_step_latency_seconds",
            "Seconds from an alert to the end of each step it started",
            self.step_latency.clone(),
        );
    }
}

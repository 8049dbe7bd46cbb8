//! The output task: alerts from the pipeline's bounded channel to the per-container summaries
//! and every sink. Whatever is queued when it wakes goes out as one batch (one write per sink),
//! so an alert storm costs one write per sink per batch, and a lone alert is written at once.

use crate::config::OutputConfig;
use crate::http::{HttpHandle, HttpOpenError, HttpSink};
use crate::sink::{FileSink, Sink, StdoutSink};
use crate::summary::Summaries;
use driftwatch_event::Alert;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Alerts taken from the channel at most per batch.
pub const MAX_BATCH: usize = 1024;

/// At most one `Driftwatch Output Alerts Dropped` alert per output this often (the count is
/// the sum since the last one).
pub const DROPPED_NOTICE_EVERY: Duration = Duration::from_secs(10);

type OutputLabel = [(&'static str, String); 1];
type DroppedLabel = [(&'static str, String); 2];

/// What the outputs count (`driftwatch_output_*` in `/metrics`).
#[derive(Debug, Default)]
pub struct OutputMetrics {
    /// Failed writes to a sink.
    pub errors: Counter,
    http_delivered: Family<OutputLabel, Counter>,
    http_retries: Family<OutputLabel, Counter>,
    http_dropped: Family<DroppedLabel, Counter>,
    http_spool_bytes: Family<OutputLabel, Gauge>,
    http_spool_alerts: Family<OutputLabel, Gauge>,
}

impl OutputMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "output_errors",
            "Failed writes to an output",
            self.errors.clone(),
        );
        registry.register(
            "output_http_delivered",
            "Alerts an HTTP output delivered (2xx)",
            self.http_delivered.clone(),
        );
        registry.register(
            "output_http_retries",
            "Failed HTTP deliveries that will be tried again (connection, timeout, 408, 429, 5xx)",
            self.http_retries.clone(),
        );
        registry.register(
            "output_http_dropped",
            "Alerts an HTTP output dropped, by reason (spool_full, rejected, retries_exhausted, corrupt)",
            self.http_dropped.clone(),
        );
        registry.register(
            "output_http_spool_bytes",
            "Bytes of undelivered alerts in an HTTP output's spool",
            self.http_spool_bytes.clone(),
        );
        registry.register(
            "output_http_spool_alerts",
            "Undelivered alerts in an HTTP output's spool",
            self.http_spool_alerts.clone(),
        );
    }

    /// The series of `output` in `family`.
    fn of<M: Clone>(family: &Family<OutputLabel, M>, output: &str) -> M {
        family
            .get_or_create(&[("output", output.to_string())])
            .clone()
    }

    pub fn http_delivered(&self, output: &str) -> Counter {
        Self::of(&self.http_delivered, output)
    }

    pub fn http_retries(&self, output: &str) -> Counter {
        Self::of(&self.http_retries, output)
    }

    /// `reason`: `spool_full`, `rejected`, `retries_exhausted`, `corrupt`.
    pub fn http_dropped(&self, output: &str, reason: &'static str) -> Counter {
        self.http_dropped
            .get_or_create(&[
                ("output", output.to_string()),
                ("reason", reason.to_string()),
            ])
            .clone()
    }

    pub fn http_spool_bytes(&self, output: &str) -> Gauge {
        Self::of(&self.http_spool_bytes, output)
    }

    pub fn http_spool_alerts(&self, output: &str) -> Gauge {
        Self::of(&self.http_spool_alerts, output)
    }
}

/// A sink that could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open output file {}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open HTTP output {name}")]
    Http {
        name: String,
        #[source]
        source: HttpOpenError,
    },
}

/// The wall clock in ns since the epoch.
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Alerts a sink dropped, not yet reported.
#[derive(Debug, Default)]
struct DropNotice {
    pending: u64,
    last: Option<Instant>,
}

/// The configured sinks and the summaries every alert is counted in.
pub struct Outputs {
    sinks: Vec<Box<dyn Sink>>,
    /// One per sink.
    notices: Vec<DropNotice>,
    http: Vec<HttpHandle>,
    summaries: Arc<Summaries>,
    metrics: Arc<OutputMetrics>,
    hostname: String,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs")
            .field(
                "sinks",
                &self.sinks.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Outputs {
    /// Opens the sinks of `[output]` (before anything else starts: a file or a spool that
    /// cannot be opened stops the agent). HTTP outputs start delivering what their spool kept
    /// from an earlier run at once.
    pub fn open(
        cfg: &OutputConfig,
        summaries: Arc<Summaries>,
        metrics: Arc<OutputMetrics>,
    ) -> Result<Outputs, OpenError> {
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        let mut http = Vec::new();
        if cfg.stdout {
            sinks.push(Box::new(StdoutSink::new(cfg.json)));
        }
        if let Some(path) = &cfg.file {
            let sink = FileSink::open(path).map_err(|source| OpenError::File {
                path: path.clone(),
                source,
            })?;
            sinks.push(Box::new(sink));
        }
        for h in &cfg.http {
            let sink = HttpSink::open(h, metrics.clone()).map_err(|source| OpenError::Http {
                name: h.name.clone(),
                source,
            })?;
            http.push(sink.handle());
            sinks.push(Box::new(sink));
        }
        Ok(Outputs {
            notices: sinks.iter().map(|_| DropNotice::default()).collect(),
            sinks,
            http,
            summaries,
            metrics,
            hostname: "localhost".to_string(),
        })
    }

    /// The hostname of the agent's own alerts (`Driftwatch Output Alerts Dropped`).
    pub fn with_hostname(mut self, hostname: String) -> Outputs {
        self.hostname = hostname;
        self
    }

    /// A handle that enqueues alerts into the HTTP output `name` (see [`HttpHandle`]).
    pub fn http_handle(&self, name: &str) -> Option<HttpHandle> {
        self.http.iter().find(|h| h.name() == name).cloned()
    }

    fn write(&mut self, alert: &Alert) {
        self.summaries.record(alert);
        for s in &mut self.sinks {
            if let Err(e) = s.write(alert) {
                self.metrics.errors.inc();
                tracing::error!(sink = s.name(), error = %e, "alert output failed");
            }
        }
    }

    fn end_batch(&mut self) {
        for s in &mut self.sinks {
            if let Err(e) = s.end_batch() {
                self.metrics.errors.inc();
                tracing::error!(sink = s.name(), error = %e, "alert output failed");
            }
        }
        self.report_drops(false);
    }

    /// Alerts a sink dropped become one alert on every other sink, at most once per
    /// [`DROPPED_NOTICE_EVERY`] per sink (`now_or_never`: whatever is pending, at shutdown). One pass:
    /// drops the notices themselves cause are reported by the next one.
    fn report_drops(&mut self, now_or_never: bool) {
        let now = Instant::now();
        let mut notices = Vec::new();
        for (i, s) in self.sinks.iter_mut().enumerate() {
            let n = &mut self.notices[i];
            n.pending += s.take_dropped();
            let due = now_or_never
                || n.last
                    .is_none_or(|t| now.duration_since(t) >= DROPPED_NOTICE_EVERY);
            if n.pending > 0 && due {
                let at = now_ns();
                notices.push((
                    i,
                    driftwatch_event::internal::output_dropped_alert(
                        s.name(),
                        n.pending,
                        &self.hostname,
                        at,
                    ),
                ));
                n.pending = 0;
                n.last = Some(now);
            }
        }
        if notices.is_empty() {
            return;
        }
        for (i, s) in self.sinks.iter_mut().enumerate() {
            let mut wrote = false;
            for (from, alert) in &notices {
                if *from == i {
                    continue;
                }
                wrote = true;
                if let Err(e) = s.write(alert) {
                    self.metrics.errors.inc();
                    tracing::error!(sink = s.name(), error = %e, "alert output failed");
                }
            }
            if wrote {
                if let Err(e) = s.end_batch() {
                    self.metrics.errors.inc();
                    tracing::error!(sink = s.name(), error = %e, "alert output failed");
                }
            }
        }
    }

    /// Runs until the alert channel closes, then flushes every sink (HTTP outputs deliver
    /// for at most [`crate::http::SHUTDOWN_GRACE`] more; the rest stays in their spools).
    pub async fn run(mut self, mut rx: mpsc::Receiver<Alert>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                alert = rx.recv() => {
                    let Some(alert) = alert else { break };
                    self.write(&alert);
                    let mut batched = 1;
                    while batched < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(a) => self.write(&a),
                            Err(_) => break,
                        }
                        batched += 1;
                    }
                    self.end_batch();
                }
                // Drops to report that waited for DROPPED_NOTICE_EVERY.
                _ = tick.tick() => self.report_drops(false),
            }
        }
        self.report_drops(true);
        let sinks = std::mem::take(&mut self.sinks);
        // Flushing stops the HTTP delivery threads (a join): off the async workers.
        let flushed = tokio::task::spawn_blocking(move || {
            for mut s in sinks {
                if let Err(e) = s.flush() {
                    tracing::error!(sink = s.name(), error = %e, "flush failed");
                }
            }
        })
        .await;
        if let Err(e) = flushed {
            tracing::error!(error = %e, "flushing the outputs failed");
        }
    }
}

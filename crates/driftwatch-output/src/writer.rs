//! The output task: alerts from the pipeline's bounded channel to the per-container summaries
//! and every sink. Whatever is queued when it wakes goes out as one batch (one write per sink),
//! so an alert storm costs one write per sink per batch, and a lone alert is written at once.

use crate::config::OutputConfig;
use crate::sink::{FileSink, Sink, StdoutSink};
use crate::summary::Summaries;
use driftwatch_event::Alert;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Alerts taken from the channel at most per batch.
pub const MAX_BATCH: usize = 1024;

/// What the outputs count (`driftwatch_output_*` in `/metrics`).
#[derive(Debug, Default)]
pub struct OutputMetrics {
    /// Failed writes to a sink.
    pub errors: Counter,
}

impl OutputMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "output_errors",
            "Failed writes to an output",
            self.errors.clone(),
        );
    }
}

/// A sink that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open output file {}", path.display())]
pub struct OpenError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The configured sinks and the summaries every alert is counted in.
pub struct Outputs {
    sinks: Vec<Box<dyn Sink>>,
    summaries: Arc<Summaries>,
    metrics: Arc<OutputMetrics>,
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
    /// Opens the sinks of `[output]` (before anything else starts: a file that cannot be opened
    /// stops the agent).
    pub fn open(
        cfg: &OutputConfig,
        summaries: Arc<Summaries>,
        metrics: Arc<OutputMetrics>,
    ) -> Result<Outputs, OpenError> {
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if cfg.stdout {
            sinks.push(Box::new(StdoutSink::new(cfg.json)));
        }
        if let Some(path) = &cfg.file {
            let sink = FileSink::open(path).map_err(|source| OpenError {
                path: path.clone(),
                source,
            })?;
            sinks.push(Box::new(sink));
        }
        Ok(Outputs {
            sinks,
            summaries,
            metrics,
        })
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
    }

    /// Runs until the alert channel closes, then flushes every sink.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Alert>) {
        while let Some(alert) = rx.recv().await {
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
        for s in &mut self.sinks {
            if let Err(e) = s.flush() {
                tracing::error!(sink = s.name(), error = %e, "flush failed");
            }
        }
    }
}

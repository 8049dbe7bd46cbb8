//! driftwatch's outputs: where alerts go once the rules raised them.
//!
//! * [`sink`]: the sinks behind one trait — stdout (text or JSON lines) and an append-only
//!   JSON-lines file —, written in batches of whole lines.
//! * [`http`]: the HTTP output — Falco's JSON alert POSTed to Falcosidekick, Falco Talon or any
//!   webhook, or a [`template`]'s document —, through an on-disk [`spool`] that keeps alerts
//!   across receiver outages and agent restarts; a delivery thread per output does the network
//!   work. [`HttpHandle`] (from [`Outputs::http_handle`]) lets another component (the
//!   playbooks) enqueue one alert into a named HTTP output without waiting on the network.
//! * [`template`]: JSON documents of the user's design filled from an alert's fields.
//! * [`summary`]: the per-container drift summaries (`GET /containers`, `driftwatch
//!   containers`), counted from every alert written.
//! * [`writer`]: the output task: alerts from the pipeline's bounded channel to the summaries
//!   and every sink, a batch per wakeup, flushed at shutdown.
//! * [`OutputConfig`]: the `[output]` section of the agent's configuration.
//!
//! Architecture invariant: an output never blocks the processor on a failed sink (a failed
//! write is counted and logged, and the next batch is tried) nor on the network (HTTP outputs
//! only append to their spool; their own threads post); memory and disk are bounded (the
//! summaries are bounded, a batch is written once it holds [`sink::BATCH_BYTES`], a spool holds
//! at most its `spool_max_bytes` of undelivered alerts and drops its oldest, counted and
//! alerted).
#![forbid(unsafe_code)]

mod config;
pub mod http;
pub mod sink;
pub mod spool;
pub mod summary;
pub mod template;
pub mod writer;

pub use config::{parse_duration, HttpFormat, HttpOutputConfig, OutputConfig};
pub use http::{HttpHandle, HttpSink};
pub use sink::{FileSink, Sink, StdoutSink};
pub use summary::{ContainerSource, Summaries};
pub use template::Template;
pub use writer::{OutputMetrics, Outputs};

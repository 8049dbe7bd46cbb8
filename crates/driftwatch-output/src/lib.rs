//! driftwatch's outputs: where alerts go once the rules raised them.
//!
//! * [`sink`]: the sinks behind one trait — stdout (text or JSON lines) and an append-only
//!   JSON-lines file —, written in batches of whole lines.
//! * [`summary`]: the per-container drift summaries (`GET /containers`, `driftwatch
//!   containers`), counted from every alert written.
//! * [`writer`]: the output task: alerts from the pipeline's bounded channel to the summaries
//!   and every sink, a batch per wakeup, flushed at shutdown.
//! * [`OutputConfig`]: the `[output]` section of the agent's configuration.
//!
//! Architecture invariant: an output never blocks the processor on a failed sink (a failed
//! write is counted and logged, and the next batch is tried); memory is bounded (the summaries
//! are bounded, a batch is written once it holds [`sink::BATCH_BYTES`]).
#![forbid(unsafe_code)]

mod config;
pub mod sink;
pub mod summary;
pub mod writer;

pub use config::OutputConfig;
pub use sink::{FileSink, Sink, StdoutSink};
pub use summary::{ContainerSource, Summaries};
pub use writer::{OutputMetrics, Outputs};

//! The driftwatch agent: the only crate that knows the pipeline topology.
//!
//! ```text
//! sensor (ring buffer) ──► decode ──[events, bounded]──► process table + enrich + detect
//!        ▲                                                      │
//!        └── policy map (cgroup → enforce) ◄── registry updates ┘──[alerts, bounded]──► sinks
//! ```
//!
//! Architecture invariant: a full events channel drops the event and counts it
//! (`driftwatch_channel_dropped_events_total`); the ring-buffer reader never blocks on it.
#![forbid(unsafe_code)]

pub mod config;
pub mod detect;
pub mod enrich;
pub mod fields;
pub mod gate;
pub mod http;
pub mod metrics;
pub mod origin;
pub mod output;
mod pipeline;
pub mod proctable;
pub mod rules;
pub mod script;
pub mod summary;
pub mod users;

pub use pipeline::{run, AgentError};

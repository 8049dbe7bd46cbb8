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

mod approve;
pub mod config;
pub mod detect;
pub mod dns;
pub mod enrich;
pub mod fields;
mod health;
pub mod http;
pub mod metrics;
mod pipeline;
mod processor;
pub mod proctable;
pub mod respond;
pub mod rules;
pub mod users;

pub use pipeline::{run, AgentError};

//! The driftwatch data model. Plain data: no IO, no async.
//!
//! Architecture invariant: this crate depends on nothing in the workspace; every other crate may
//! depend on it.
#![forbid(unsafe_code)]

mod alert;
mod clock;
mod container;
mod dns;
mod file;
pub mod internal;
mod net;
mod origin;
mod process;
pub mod text;

pub use alert::{Alert, Priority, RFC3339_NANOS};
pub use clock::{
    format_rfc3339_nanos, format_rfc3339_secs, parse_duration, parse_rfc3339_nanos,
    parse_rfc3339_secs,
};
pub use container::{ContainerInfo, ContainerKind, OverlayLayers, HOST_CONTAINER_ID};
pub use dns::DnsEvent;
pub use file::{FileEvent, FileLayer, FileOp};
pub use net::{ip_from_raw, IpNet, NetEvent, NetOp, AF_INET, AF_INET6, AF_PACKET, AF_UNIX};
pub use origin::ExeOrigin;
pub use process::{
    Event, ExeFile, ExecEvent, ExecFlags, ExitEvent, ForkEvent, MapEvent, MapHow, TaskInfo,
};

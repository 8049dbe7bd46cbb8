//! Errors of container discovery.

use std::path::PathBuf;

/// Why discovery could not start or a containerd call failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot connect to containerd at {socket}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("timed out after {timeout_ms} ms connecting to containerd at {socket}")]
    ConnectTimeout { socket: PathBuf, timeout_ms: u64 },
    #[error("containerd call {call} failed")]
    Call {
        call: &'static str,
        #[source]
        source: tonic::Status,
    },
    #[error("invalid containerd namespace name {namespace:?}")]
    InvalidNamespace { namespace: String },
    #[error("cannot read {path}")]
    Proc {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("containerd is required by the configuration but not reachable at {socket}")]
    ContainerdRequired {
        socket: PathBuf,
        #[source]
        source: Box<RuntimeError>,
    },
}

/// An error with its sources, `a: b: c`, for log lines.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

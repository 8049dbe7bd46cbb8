//! The one error type of the test kit.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while preparing containerd, images or containers.
///
/// External failures (a missing tool, a failing `ctr`, a timeout) are reported here and never
/// panic, so a test can decide to `unwrap()` or to skip.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A program could not be started at all (usually: not installed).
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// A program ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
    /// A program did not finish in time and was killed.
    #[error("`{command}` timed out after {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    /// containerd did not become ready.
    #[error("containerd at {socket} did not become ready within {timeout:?}; log {log} ends with:\n{log_tail}")]
    ContainerdNotReady {
        socket: PathBuf,
        timeout: Duration,
        log: PathBuf,
        log_tail: String,
    },
    /// Filesystem or pipe I/O around a path failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Compiling a static helper failed.
    #[error("compiling static helper {name} failed: {stderr}")]
    Compile { name: String, stderr: String },
    /// The image description is inconsistent (bad path, empty image, ...).
    #[error("invalid image: {reason}")]
    InvalidImage { reason: String },
    /// Output of an external tool or a kernel file could not be understood.
    #[error("cannot parse {what}: {detail}")]
    Parse { what: String, detail: String },
}

impl TestkitError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias used across the test kit.
pub type Result<T, E = TestkitError> = std::result::Result<T, E>;

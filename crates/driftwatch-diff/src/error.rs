//! Errors of the diff engine.

use std::io;
use std::path::PathBuf;

/// Why a diff could not be completed. Problems with single entries of a hostile tree (a file
/// that vanished, an unreadable name) are not errors: they are reported on the entry.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// The container has no writable (upper) layer to diff.
    #[error("the container has no overlay upper directory")]
    NoUpperDir,
    /// A layer directory could not be opened: the container or its snapshot is gone.
    #[error("cannot open layer directory {}", path.display())]
    Layer {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing the report failed.
    #[error("cannot write the report")]
    Output {
        #[source]
        source: io::Error,
    },
    /// A baseline file could not be read or understood.
    #[error("cannot use baseline {}: {reason}", path.display())]
    Baseline { path: PathBuf, reason: String },
    /// A classification rule is malformed.
    #[error("invalid classification rule {rule:?}: {reason}")]
    Rule { rule: String, reason: &'static str },
}

impl DiffError {
    pub(crate) fn output(source: io::Error) -> Self {
        DiffError::Output { source }
    }
}

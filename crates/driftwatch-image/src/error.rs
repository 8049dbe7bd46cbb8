use crate::lookup::LayerRef;
use std::io;
use std::path::PathBuf;

/// Why a layer lookup, a classification or a hash could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A layer directory does not exist (any more): the container, or its snapshot, is gone.
    #[error("overlay {layer} directory {} is gone", path.display())]
    LayerGone {
        layer: LayerRef,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The container path is longer than `PATH_MAX - 1` bytes.
    #[error("path is {len} bytes long, over the {max}-byte limit")]
    PathTooLong { len: usize, max: usize },
    /// A component of the container path is longer than `NAME_MAX` bytes.
    #[error("path component is {len} bytes long, over the {max}-byte limit")]
    NameTooLong { len: usize, max: usize },
    /// The container path is not an absolute path that can be passed to the kernel.
    #[error("invalid container path: {reason}")]
    InvalidPath { reason: &'static str },
    /// A system call on a layer failed for a reason other than "not there".
    #[error("{op} failed in overlay {layer}")]
    Layer {
        layer: LayerRef,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// A file could not be opened or read for a content comparison, or is not a regular file.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file could not be opened or read for hashing, or is not a regular file.
    #[error("cannot hash {}", path.display())]
    Hash {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ImageError {
    /// An error opening or reading a file for a content comparison.
    pub(crate) fn read(path: impl Into<PathBuf>, source: io::Error) -> ImageError {
        ImageError::Read {
            path: path.into(),
            source,
        }
    }

    /// True when the file (or a directory on its path) does not exist in that layer.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ImageError::Read { source, .. } | ImageError::Hash { source, .. }
            if source.kind() == io::ErrorKind::NotFound)
    }

    /// True for errors about the shape of the input path (as opposed to the layers' state).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            ImageError::PathTooLong { .. }
                | ImageError::NameTooLong { .. }
                | ImageError::InvalidPath { .. }
        )
    }
}

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where the code a process executes came from (ARCHITECTURE.md, "executable origin").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExeOrigin {
    /// A file of the image's lower layers, unchanged.
    Image,
    /// A file present only in the container's upper (writable) layer.
    Added,
    /// A file that exists in the image but was copied up to the upper layer (content may differ).
    Modified,
    /// An image file copied up without a content change (chmod/touch): not a new binary.
    CopiedUpUnchanged,
    /// A file on a mount that is not the image's root filesystem (tmpfs, bind mount, volume).
    WritableMount,
    /// Memory-backed code (memfd_create).
    Memfd,
    /// A deleted or otherwise unnamed file.
    Anonymous,
    /// Not in a container.
    Host,
    /// In a container whose layers could not be read; never treated as the image.
    Unknown,
}

impl ExeOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            ExeOrigin::Image => "image",
            ExeOrigin::Added => "added",
            ExeOrigin::Modified => "modified",
            ExeOrigin::CopiedUpUnchanged => "copied-up-unchanged",
            ExeOrigin::WritableMount => "writable-mount",
            ExeOrigin::Memfd => "memfd",
            ExeOrigin::Anonymous => "anonymous",
            ExeOrigin::Host => "host",
            ExeOrigin::Unknown => "unknown",
        }
    }

    /// True when executing code of this origin inside a container is binary drift.
    pub fn is_drift(self) -> bool {
        !matches!(
            self,
            ExeOrigin::Image | ExeOrigin::Host | ExeOrigin::CopiedUpUnchanged
        )
    }
}

impl fmt::Display for ExeOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

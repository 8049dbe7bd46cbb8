//! The executable-origin decision.
//!
//! Input: the kernel's facts about one exec ([`ExecFacts`]) and, when known, the container's
//! overlay layers. The first matching row decides:
//!
//! | # | facts                                                      | origin          | [`Rule`]         |
//! |---|------------------------------------------------------------|-----------------|------------------|
//! | 1 | not in a container                                         | `Host`          | `NotInContainer` |
//! | 2 | memfd                                                      | `Memfd`         | `Memfd`          |
//! | 3 | `nlink == 0` (deleted file)                                | `Anonymous`     | `Unlinked`       |
//! | 4 | not on the container's root mount                          | `WritableMount` | `OtherMount`     |
//! | 5 | root mount is not overlayfs                                | `Unknown`       | `RootNotOverlay` |
//! | 6 | overlay inode without an upper dentry                      | `Image`         | `NoUpperDentry`  |
//! | 7 | upper dentry, layers not known                             | `Unknown`       | `LayersUnknown`  |
//! | 8 | upper dentry, path not reliable (truncated, unresolved)    | `Unknown`       | `PathUnreliable` |
//! | 9 | upper dentry, [`lookup`] failed (layer gone, I/O error)    | `Unknown`       | `LookupFailed`   |
//! |10 | upper dentry, no regular file in the upper layer at path   | `Unknown`       | `UpperMismatch`  |
//! |11 | upper dentry, a lower layer provides the path              | `Modified`      | `InLower`        |
//! |12 | upper dentry, no lower layer provides the path             | `Added`         | `OnlyInUpper`    |
//!
//! "A lower layer provides the path" is [`LayerLookup::lower`]: it honours whiteouts and
//! opaque directories of the upper layer and of the lower layers themselves, and a lower
//! directory does not count for an upper file (`Replaced`). An upper file over a lower file is
//! `Modified` whether it was copied up or deleted and written anew: overlayfs leaves no
//! reliable trace of the difference (`overlay.origin` is missing on copied-up hard links
//! too); the content comparison (`CopiedUpUnchanged`) will settle it.
//!
//! Row 5: without overlayfs (native/devmapper/btrfs snapshotters) the kernel facts cannot tell
//! image files from added ones. Row 10: the upper layer no longer holds a regular file at
//! the path — it was deleted, renamed or replaced after the exec; whatever ran, it is not
//! known to be the image's. Every `Unknown` is drift ([`ExeOrigin::is_drift`]).

use crate::error::ImageError;
use crate::lookup::{lookup, EntryKind, LayerLookup};
use driftwatch_event::OverlayLayers;
use driftwatch_event::{ExeOrigin, ExecEvent};
use std::fmt;

/// `OVERLAYFS_SUPER_MAGIC` (`include/uapi/linux/magic.h`).
pub const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;

/// What the kernel side reports about one exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecFacts<'a> {
    /// The task is in a container (not the host).
    pub in_container: bool,
    /// The file is a memfd (`memfd_create`).
    pub memfd: bool,
    /// The file is on the container's root mount (not a tmpfs, volume or bind mount).
    pub on_root_mount: bool,
    /// The overlay inode has an upper dentry (`ovl_inode->__upperdentry`).
    pub overlay_upper: bool,
    /// The file's `s_magic` is overlayfs'.
    pub overlay_fs: bool,
    /// Link count of the file (0: deleted).
    pub nlink: u32,
    /// The resolved path inside the container, raw bytes.
    pub path: &'a [u8],
    /// `path` is complete and resolved (not truncated, not a fallback name).
    pub path_reliable: bool,
}

impl<'a> ExecFacts<'a> {
    /// The facts of an exec event; whether the task is in a container is the agent's call.
    pub fn from_exec(ev: &'a ExecEvent, in_container: bool) -> ExecFacts<'a> {
        ExecFacts {
            in_container,
            memfd: ev.flags.memfd,
            on_root_mount: ev.flags.on_root_mount,
            overlay_upper: ev.flags.overlay_upper,
            overlay_fs: ev.exe.s_magic == OVERLAYFS_SUPER_MAGIC,
            nlink: ev.exe.nlink,
            path: &ev.exepath,
            path_reliable: !ev.flags.path_truncated && !ev.flags.path_outside_root,
        }
    }
}

/// The decision-table row that decided (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    NotInContainer,
    Memfd,
    Unlinked,
    OtherMount,
    RootNotOverlay,
    NoUpperDentry,
    LayersUnknown,
    PathUnreliable,
    LookupFailed,
    UpperMismatch,
    InLower,
    OnlyInUpper,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::NotInContainer => "not-in-container",
            Rule::Memfd => "memfd",
            Rule::Unlinked => "unlinked",
            Rule::OtherMount => "other-mount",
            Rule::RootNotOverlay => "root-not-overlay",
            Rule::NoUpperDentry => "no-upper-dentry",
            Rule::LayersUnknown => "layers-unknown",
            Rule::PathUnreliable => "path-unreliable",
            Rule::LookupFailed => "lookup-failed",
            Rule::UpperMismatch => "upper-mismatch",
            Rule::InLower => "in-lower",
            Rule::OnlyInUpper => "only-in-upper",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision with its reasons, for logging and for the content comparison to come.
#[derive(Debug)]
pub struct Decision {
    pub origin: ExeOrigin,
    pub rule: Rule,
    /// The layer lookup, when one was made and succeeded.
    pub lookup: Option<LayerLookup>,
    /// Why the lookup failed (`Rule::LookupFailed`).
    pub error: Option<ImageError>,
}

impl Decision {
    fn by(origin: ExeOrigin, rule: Rule) -> Decision {
        Decision {
            origin,
            rule,
            lookup: None,
            error: None,
        }
    }
}

/// The origin of an exec. `Err` only for a path that cannot be looked up at all (relative,
/// NUL byte, too long: the caller should have set `path_reliable = false`); the caller
/// should treat it as `Unknown`. Layers that cannot be read give `Ok(ExeOrigin::Unknown)`.
pub fn classify(
    facts: &ExecFacts<'_>,
    layers: Option<&OverlayLayers>,
) -> Result<ExeOrigin, ImageError> {
    let d = decide(facts, layers);
    match d.error {
        Some(e) if e.is_invalid_input() => Err(e),
        _ => Ok(d.origin),
    }
}

/// [`classify`] with the row that decided, the lookup and the lookup error. Never fails:
/// every failure is `ExeOrigin::Unknown`.
pub fn decide(facts: &ExecFacts<'_>, layers: Option<&OverlayLayers>) -> Decision {
    use ExeOrigin as O;
    if !facts.in_container {
        return Decision::by(O::Host, Rule::NotInContainer);
    }
    if facts.memfd {
        return Decision::by(O::Memfd, Rule::Memfd);
    }
    if facts.nlink == 0 {
        return Decision::by(O::Anonymous, Rule::Unlinked);
    }
    if !facts.on_root_mount {
        return Decision::by(O::WritableMount, Rule::OtherMount);
    }
    if !facts.overlay_fs {
        return Decision::by(O::Unknown, Rule::RootNotOverlay);
    }
    if !facts.overlay_upper {
        return Decision::by(O::Image, Rule::NoUpperDentry);
    }
    let Some(layers) = layers else {
        return Decision::by(O::Unknown, Rule::LayersUnknown);
    };
    if !facts.path_reliable {
        return Decision::by(O::Unknown, Rule::PathUnreliable);
    }
    let found = match lookup(layers, facts.path) {
        Ok(found) => found,
        Err(e) => {
            return Decision {
                error: Some(e),
                ..Decision::by(O::Unknown, Rule::LookupFailed)
            }
        }
    };
    let (origin, rule) = if found.upper != Some(EntryKind::File) {
        (O::Unknown, Rule::UpperMismatch)
    } else if found.lower.is_some() {
        (O::Modified, Rule::InLower)
    } else {
        (O::Added, Rule::OnlyInUpper)
    };
    Decision {
        lookup: Some(found),
        ..Decision::by(origin, rule)
    }
}

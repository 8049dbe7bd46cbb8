//! Overlay layer lookups and the executable-origin decision (DESIGN.md §3).
//!
//! * [`overlay`]: the one model of how overlayfs merges layers (whiteouts, opaque and renamed
//!   directories, metacopy), shared by [`lookup()`] and `driftwatch diff`'s walk.
//! * [`lookup()`]: where a container path resolves in the container's overlay stack, as
//!   overlayfs would resolve it, without ever following a symlink inside a layer.
//! * [`classify()`] / [`decide`]: the [`ExeOrigin`](driftwatch_event::ExeOrigin) of an
//!   exec from the kernel's facts and that lookup (decision table in [`classify`](mod@classify)).
//! * [`copied_up_unchanged`]: the one "copied up unchanged" check (origin verdicts, exec gate).
//! * [`sha256_file`]: content hash for the copied-up-unchanged comparison.
//!
//! Everything here is synchronous, stateless and cheap; caching is the agent's job.
#![forbid(unsafe_code)]

pub mod classify;
pub mod content;
mod error;
mod hash;
pub mod lookup;
pub mod overlay;

pub use classify::{classify, decide, Decision, ExecFacts, Rule, OVERLAYFS_SUPER_MAGIC};
pub use content::{
    copied_up_unchanged, open_in_layer, read_full, read_link_in_layer, same_content, SizeIndex,
    MAX_COMPARE_BYTES,
};
pub use error::ImageError;
pub use hash::{sha256_fd, sha256_file};
pub use lookup::{
    lookup, lookup_with, EntryKind, Hidden, HideRule, LayerLookup, LayerRef, LookupOptions,
    LowerHit, NAME_MAX, PATH_MAX,
};
pub use overlay::XattrNamespace;

#[cfg(test)]
mod tests;

//! Where the code a container process runs came from (DESIGN.md §3): the origin verdict of an
//! executed, mapped or script file, from the kernel's facts and the container's layers, refined
//! by content (a `chmod`-copied image file is `copied-up-unchanged`, not drift) and cached.
//!
//! Both consumers of verdicts use this crate: the agent's enrichment (every exec, mapping and
//! script gets an origin for its alert) and the exec gate in `driftwatch-respond` (which judges
//! an interpreter's script while the kernel holds its exec). The stateless decision table and
//! the overlay lookups are `driftwatch-image`'s; this crate adds what needs state: the caches,
//! the per-container image size index and mount points, and which file an interpreter was given
//! ([`script`]).
//!
//! Architecture invariant: container files are hostile. Every file is opened beneath its layer
//! directory without following symlinks (through `driftwatch-image`); a symlink in a script path
//! is resolved inside the container's layers, never on the host.
//! Architecture invariant: the caches are bounded (cleared when full) and a removed container's
//! entries are dropped ([`Origins::forget_container`]).
#![forbid(unsafe_code)]

pub mod script;
mod verdict;

pub use verdict::{FileFacts, Origins, Verdict};

//! driftwatch end-to-end test kit.
//!
//! * [`ensure_containerd`] finds or starts containerd (safe from parallel tests);
//!   [`cleanup_namespace`] clears leftovers of crashed runs.
//! * [`ImageBuilder`] builds deterministic multi-layer OCI images by code (busybox, files,
//!   static C helpers, whiteouts, opaque dirs) and imports them with `ctr`.
//! * [`Container`] runs a throwaway container, execs in it, exposes its init pid and overlay
//!   dirs, and removes everything on drop.
//! * [`PeerNet`] gives a container a network peer: a test-made network namespace joined to the
//!   container's by a veth pair, where the test runs its servers; [`NetProbe`] drives a
//!   network probe ([`net_probe_c`]) wherever the test runs it (isolation tests).
//!
//! Needs root, `ctr`/`containerd`/`runc`, busybox-static and `gcc` with a static libc.
#![forbid(unsafe_code)]

mod container;
mod containerd;
mod error;
pub mod image;
mod netns;
mod netprobe;
mod receiver;
mod subprocess;

pub use container::{unique_id, Container, MountSpec, RunOpts, EXEC_TIMEOUT, LOG_DIR};
pub use containerd::{
    cleanup_namespace, ensure_containerd, Containerd, CONTAINERD_LOG, CTR_TIMEOUT, DEFAULT_SOCKET,
    READY_TIMEOUT, SOCKET_ENV,
};
pub use error::{Result, TestkitError};
pub use image::{
    build_deb, compile_helper, compile_static_helper, debian_image, debian_rootfs, BuiltImage,
    Compression, ImageBuilder, ImportedImage, MARKER_HELPER_C, NOOP_HELPER_C,
};
pub use netns::PeerNet;
pub use netprobe::{echo_round_trip, net_probe_c, NetProbe, PROBE_PRELUDE_C};
pub use receiver::{Receiver, Request, TestCa};
pub use subprocess::ExecOutput;

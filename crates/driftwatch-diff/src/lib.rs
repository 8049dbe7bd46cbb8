//! The `driftwatch diff` engine: what changed in a container's filesystem since it started,
//! read from its overlay upper directory against the image's lower layers, which packages
//! changed, and how its runtime configuration deviates from the image and a baseline.
//!
//! * [`diff()`] runs everything and streams the report into a [`ReportSink`]:
//!   [`render::JsonReport`] (`--json`) or [`render::TableReport`] (the human table).
//! * [`walk::walk`]: the streaming upper-layer walk (overlayfs rules, never following
//!   symlinks), usable on its own.
//! * [`Classifier`]: the categories `binary`, `package`, `config`, `log`, `temp`, `cache`, `other`.
//! * [`packages`]: dpkg, apk, rpm (sqlite), Python and npm databases; dpkg MD5 checks.
//! * [`runtime_config`]: runtime spec vs image config vs baseline.
//!
//! No containerd here: the caller passes layer directories and the spec/config bytes.
#![forbid(unsafe_code)]

pub mod classify;
mod engine;
mod error;
pub mod model;
pub mod packages;
pub mod pathfmt;
pub mod render;
pub mod runtime_config;
pub mod view;
pub mod walk;

pub use classify::Classifier;
pub use engine::{diff, ContainerMeta, DiffInput, DiffOptions, ReportSink};
pub use error::DiffError;
pub use model::{
    Category, ChangeKind, ConfigFinding, FileEntry, FileType, PackageChange, PackageChangeKind,
    PackageReport, Risk, Side, Summary, UnmanagedChange,
};
pub use runtime_config::{Baseline, ImageConfig, RuntimeSummary};
pub use walk::{HashMode, WalkOptions, WalkStats};

#[cfg(test)]
mod tests;

//! One diff from layers to report: package databases first (they tell the walk which paths
//! packages own), then the streaming walk, then the configuration comparison.

use crate::classify::Classifier;
use crate::error::DiffError;
use crate::model::{
    Category, ChangeKind, ConfigFinding, FileEntry, PackageReport, Risk, Summary, UnmanagedChange,
};
use crate::packages::{self, dpkg::DpkgFiles};
use crate::runtime_config::{self, Baseline, ImageConfig, RuntimeSummary};
use crate::view::{View, ViewKind};
use crate::walk::{self, WalkOptions, WalkSink, WalkStats};
use driftwatch_event::OverlayLayers;
use serde::{Deserialize, Serialize};

/// Which container the report is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMeta {
    pub id: String,
    pub namespace: String,
    pub image: String,
    pub image_digest: Option<String>,
    pub upperdir: Option<String>,
    pub lowerdirs: usize,
}

/// Everything a diff reads.
#[derive(Debug, Clone, Default)]
pub struct DiffInput {
    pub meta: ContainerMeta,
    pub layers: OverlayLayers,
    /// The OCI runtime spec JSON (containerd's `Container.spec`).
    pub runtime_spec: Option<Vec<u8>>,
    /// The image config blob JSON.
    pub image_config: Option<Vec<u8>>,
    pub baseline: Option<Baseline>,
}

/// How to diff.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    pub walk: WalkOptions,
    pub classifier: Classifier,
    /// Read package databases (and check package-owned files).
    pub packages: bool,
    /// At most this many `/etc` files are repeated as configuration findings.
    pub max_file_findings: usize,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            walk: WalkOptions::default(),
            classifier: Classifier::default(),
            packages: true,
            max_file_findings: 1000,
        }
    }
}

/// Receives the report as it is produced, in this order: `begin`, `file`…, `packages`,
/// `runtime`, `config`, `finish`.
pub trait ReportSink {
    fn begin(&mut self, meta: &ContainerMeta) -> Result<(), DiffError>;
    fn file(&mut self, entry: &FileEntry) -> Result<(), DiffError>;
    fn packages(&mut self, report: &PackageReport) -> Result<(), DiffError>;
    fn runtime(&mut self, runtime: Option<&RuntimeSummary>) -> Result<(), DiffError>;
    fn config(&mut self, findings: &[ConfigFinding]) -> Result<(), DiffError>;
    fn finish(&mut self, summary: &Summary) -> Result<(), DiffError>;
    /// Called during the walk (entries seen, bytes read).
    fn progress(&mut self, _stats: &WalkStats) {}
}

struct Adapter<'a> {
    sink: &'a mut dyn ReportSink,
    summary: Summary,
    etc: Vec<ConfigFinding>,
    etc_dropped: u64,
    max_etc: usize,
    unmanaged: Vec<UnmanagedChange>,
    known: Option<&'a std::collections::BTreeSet<String>>,
}

impl WalkSink for Adapter<'_> {
    fn entry(&mut self, mut e: FileEntry) -> Result<(), DiffError> {
        if e.drift && e.category == Category::Config && e.path.starts_with("/etc/") {
            if self.etc.len() < self.max_etc {
                let what = match e.change {
                    ChangeKind::Metadata => {
                        format!("{} ({})", e.change.as_str(), e.changed.join(", "))
                    }
                    c => c.as_str().to_owned(),
                };
                self.etc.push(runtime_config::etc_file_finding(
                    &crate::pathfmt::escape(&e.path_bytes()),
                    &what,
                ));
            } else {
                self.etc_dropped += 1;
            }
        }
        if self.known.is_some_and(|k| k.contains(&e.path)) {
            e.notes.push("also in the baseline".into());
        }
        self.summary.count(&e);
        self.sink.file(&e)
    }

    fn unmanaged(&mut self, change: UnmanagedChange) {
        self.unmanaged.push(change);
    }

    fn progress(&mut self, stats: &WalkStats) {
        self.sink.progress(stats);
    }
}

/// Run a diff, streaming the report into `sink`; returns the summary (also given to `sink`).
pub fn diff(
    input: &DiffInput,
    opts: &DiffOptions,
    sink: &mut dyn ReportSink,
) -> Result<Summary, DiffError> {
    let xattrs = opts.walk.xattrs;
    let image_view = View::open(&input.layers, ViewKind::Image, xattrs);
    let container_view = View::open(&input.layers, ViewKind::Container, xattrs);
    sink.begin(&input.meta)?;
    let (mut pkg_report, dpkg) = if opts.packages {
        (
            packages::compare(&image_view, &container_view),
            DpkgFiles::read(&container_view),
        )
    } else {
        (PackageReport::default(), None)
    };
    let mut adapter = Adapter {
        sink,
        summary: Summary::default(),
        etc: Vec::new(),
        etc_dropped: 0,
        max_etc: opts.max_file_findings,
        unmanaged: Vec::new(),
        known: input.baseline.as_ref().and_then(|b| b.files.as_ref()),
    };
    let stats = walk::walk(
        &input.layers,
        &opts.walk,
        &opts.classifier,
        dpkg.as_ref(),
        &mut adapter,
    )?;
    let Adapter {
        sink,
        mut summary,
        mut etc,
        etc_dropped,
        unmanaged,
        ..
    } = adapter;
    pkg_report.unmanaged = unmanaged;
    sink.packages(&pkg_report)?;

    let runtime = match input.runtime_spec.as_deref().map(RuntimeSummary::from_spec) {
        Some(Ok(rt)) => Some(rt),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "unreadable runtime spec: no configuration drift");
            None
        }
        None => None,
    };
    sink.runtime(runtime.as_ref())?;
    let image_config = match input.image_config.as_deref().map(ImageConfig::parse) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "unreadable image config");
            None
        }
        None => None,
    };
    let passwd = image_view
        .read_file(b"/etc/passwd", 1 << 20)
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let mut findings = match &runtime {
        Some(rt) => runtime_config::compare(
            rt,
            image_config.as_ref(),
            passwd.as_deref(),
            input.baseline.as_ref(),
        ),
        None => Vec::new(),
    };
    findings.append(&mut etc);
    if etc_dropped > 0 {
        findings.push(ConfigFinding {
            field: "file".into(),
            against: "image".into(),
            risk: Risk::Medium,
            message: format!("{etc_dropped} more files under /etc changed (see the file list)"),
            expected: None,
            actual: None,
        });
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.risk));
    sink.config(&findings)?;

    summary.entries_walked = stats.entries;
    summary.bytes_read = stats.bytes_read;
    summary.incomplete = stats.incomplete;
    summary.package_changes = pkg_report.changes.len() as u64;
    summary.unmanaged_changes = pkg_report.unmanaged.len() as u64;
    summary.config_deviations = findings.iter().filter(|f| f.risk > Risk::Info).count() as u64;
    summary.drift = summary.file_drift > 0
        || summary.package_changes > 0
        || summary.unmanaged_changes > 0
        || summary.config_deviations > 0;
    sink.finish(&summary)?;
    Ok(summary)
}

//! `driftwatch diff`: what changed in a container since it started (files, packages, runtime
//! configuration). Exit codes: 0 no drift, 1 drift found, 2 error.

use crate::containerd_args::ContainerdArgs;
use anyhow::Context as _;
use driftwatch_diff::render::{JsonReport, TableReport};
use driftwatch_diff::{
    Baseline, Classifier, ContainerMeta, DiffInput, DiffOptions, HashMode, ReportSink, WalkStats,
};
use driftwatch_runtime::OverlayLayers;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HashArg {
    /// No SHA-256; content is still compared with the image file when sizes are equal.
    None,
    /// SHA-256 of every reported container file, in the same read as the comparison.
    Changed,
    /// Also the image side of modified and copied-up files.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    Auto,
    Always,
    Never,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// Container id, unique id prefix, or name (CRI/nerdctl name label).
    #[arg(value_name = "CONTAINER", required_unless_present = "upper")]
    container: Option<String>,
    #[command(flatten)]
    containerd: ContainerdArgs,
    /// Print the report as one JSON document.
    #[arg(long)]
    json: bool,
    /// Compare the runtime configuration with this file too: a saved `diff --json` report or a
    /// Kubernetes pod spec (JSON or YAML).
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Container of the baseline pod spec to compare with [default: the first].
    #[arg(long, value_name = "NAME")]
    baseline_container: Option<String>,
    /// Which files get a SHA-256.
    #[arg(long, value_enum, default_value = "changed")]
    hash: HashArg,
    /// Mark more paths as expected to change or as a category: CATEGORY:/PATH (log, temp,
    /// cache, config, binary, package; a `*` component matches one component). Repeatable.
    #[arg(long = "expect", value_name = "CATEGORY:/PATH")]
    expect: Vec<String>,
    /// Drop the built-in expected paths (/tmp, /var/log, /var/cache, /run, …).
    #[arg(long)]
    no_default_expected: bool,
    /// Also list files copied up without any change (touch).
    #[arg(long)]
    show_copied_up: bool,
    /// Skip package databases.
    #[arg(long)]
    no_packages: bool,
    /// Do not walk directories deeper than this.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_depth: usize,
    /// Threads that read, hash and compare files beside the walking thread (0: none, the
    /// walking thread reads them) [default: one per CPU, at most 4].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Diff these layer directories instead of asking containerd (no configuration drift).
    #[arg(
        long,
        value_name = "DIR",
        requires = "lower",
        conflicts_with = "container"
    )]
    upper: Option<PathBuf>,
    /// Lower layer directory, topmost first (repeat, or separate with ':').
    #[arg(long, value_name = "DIR")]
    lower: Vec<String>,
    /// Progress on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressArg,
}

/// Draws the walk's progress on stderr, at most 10 times a second.
struct Progress<S> {
    inner: S,
    enabled: bool,
    last: Instant,
    drawn: bool,
}

impl<S: ReportSink> ReportSink for Progress<S> {
    fn begin(&mut self, meta: &ContainerMeta) -> Result<(), driftwatch_diff::DiffError> {
        self.inner.begin(meta)
    }
    fn file(&mut self, e: &driftwatch_diff::FileEntry) -> Result<(), driftwatch_diff::DiffError> {
        self.inner.file(e)
    }
    fn packages(
        &mut self,
        r: &driftwatch_diff::PackageReport,
    ) -> Result<(), driftwatch_diff::DiffError> {
        self.clear();
        self.inner.packages(r)
    }
    fn runtime(
        &mut self,
        r: Option<&driftwatch_diff::RuntimeSummary>,
    ) -> Result<(), driftwatch_diff::DiffError> {
        self.inner.runtime(r)
    }
    fn config(
        &mut self,
        f: &[driftwatch_diff::ConfigFinding],
    ) -> Result<(), driftwatch_diff::DiffError> {
        self.inner.config(f)
    }
    fn finish(&mut self, s: &driftwatch_diff::Summary) -> Result<(), driftwatch_diff::DiffError> {
        self.inner.finish(s)
    }
    fn progress(&mut self, st: &WalkStats) {
        if !self.enabled || self.last.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last = Instant::now();
        self.drawn = true;
        let mut e = std::io::stderr().lock();
        let _ = write!(
            e,
            "\r\x1b[2Kdiff: {} entries, {} MiB read",
            st.entries,
            st.bytes_read >> 20
        );
        let _ = e.flush();
    }
}

impl<S> Progress<S> {
    fn clear(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}

/// Run `driftwatch diff`; returns the exit code (errors are exit code 2 in `main`).
pub fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let mut classifier = Classifier::default();
    if args.no_default_expected {
        classifier = classifier.without_default_expected();
    }
    for rule in &args.expect {
        classifier.add_rule(rule)?;
    }
    let mut opts = DiffOptions {
        classifier,
        packages: !args.no_packages,
        ..DiffOptions::default()
    };
    opts.walk.hash = match args.hash {
        HashArg::None => HashMode::None,
        HashArg::Changed => HashMode::Changed,
        HashArg::All => HashMode::All,
    };
    opts.walk.max_depth = args.max_depth.max(1);
    opts.walk.threads = args.threads;

    let mut input = match (&args.upper, &args.container) {
        (Some(upper), _) => DiffInput {
            meta: ContainerMeta {
                id: upper.display().to_string(),
                upperdir: Some(upper.display().to_string()),
                lowerdirs: args.lower.len(),
                ..ContainerMeta::default()
            },
            layers: OverlayLayers {
                upperdir: Some(upper.clone()),
                lowerdirs: args
                    .lower
                    .iter()
                    .flat_map(|l| l.split(':'))
                    .filter(|l| !l.is_empty())
                    .map(PathBuf::from)
                    .collect(),
                workdir: None,
            },
            ..DiffInput::default()
        },
        (None, Some(query)) => from_containerd(&args, query)?,
        (None, None) => anyhow::bail!("name a container (or give --upper and --lower)"),
    };
    if let Some(path) = &args.baseline {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read baseline {}", path.display()))?;
        input.baseline = Some(Baseline::parse(
            path,
            &bytes,
            args.baseline_container.as_deref(),
        )?);
    }

    let show_progress = match args.progress {
        ProgressArg::Always => true,
        ProgressArg::Never => false,
        ProgressArg::Auto => std::io::stderr().is_terminal(),
    };
    let stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let summary = if args.json {
        let mut sink = Progress {
            inner: JsonReport::new(stdout),
            enabled: show_progress,
            last: Instant::now(),
            drawn: false,
        };
        let s = driftwatch_diff::diff(&input, &opts, &mut sink);
        sink.clear();
        s?
    } else {
        let mut table = TableReport::new(stdout);
        table.show_copied_up = args.show_copied_up;
        let mut sink = Progress {
            inner: table,
            enabled: show_progress,
            last: Instant::now(),
            drawn: false,
        };
        let s = driftwatch_diff::diff(&input, &opts, &mut sink);
        sink.clear();
        s?
    };
    Ok(if summary.drift {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn from_containerd(args: &DiffArgs, query: &str) -> anyhow::Result<DiffInput> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let d = rt.block_on(driftwatch_runtime::inspect::inspect_container(
        &args.containerd.socket,
        args.containerd.namespace.as_deref(),
        query,
        Duration::from_secs(10),
    ))?;
    let layers = d
        .layers
        .clone()
        .filter(|l| l.upperdir.is_some())
        .with_context(|| {
            format!(
                "container {}/{} has no overlay upper directory (not an overlayfs snapshot?)",
                d.namespace, d.id
            )
        })?;
    Ok(DiffInput {
        meta: ContainerMeta {
            id: d.id.clone(),
            namespace: d.namespace.clone(),
            image: d.image.clone(),
            image_digest: d.image_digest.clone(),
            upperdir: layers.upperdir.as_ref().map(|p| p.display().to_string()),
            lowerdirs: layers.lowerdirs.len(),
        },
        layers,
        runtime_spec: d.spec,
        image_config: d.image_config,
        baseline: None,
    })
}

//! `driftwatch audit`: Kubernetes manifests (files, directories, stdin) against the Pod
//! Security Standards and the immutability checks. Exit codes: 0 no finding, 1 findings,
//! 2 error (unreadable input, malformed YAML with its file:line:col).

use anyhow::Context as _;
use driftwatch_audit::model::{Level, Version};
use driftwatch_audit::{render, Options, Source};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LevelArg {
    Privileged,
    Baseline,
    Restricted,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Manifest file, directory (its *.yaml, *.yml and *.json files, recursively) or `-` for
    /// stdin (e.g. `helm template … | driftwatch audit -f -`). Repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required_unless_present = "list_checks"
    )]
    files: Vec<PathBuf>,
    /// The level of workloads whose Namespace is not in the input or sets no enforce label
    /// (a Namespace's `pod-security.kubernetes.io/enforce` label wins).
    #[arg(long, value_enum, default_value = "restricted")]
    level: LevelArg,
    /// The standards' version, `latest` or `v1.N` [default: the Namespace's enforce-version
    /// label, else latest].
    #[arg(long, value_name = "VERSION", value_parser = parse_version)]
    pss_version: Option<Version>,
    /// Print the report as one JSON document (findings with their JSON patches, namespaces,
    /// workloads).
    #[arg(long, conflicts_with = "sarif")]
    json: bool,
    /// Print the report as SARIF 2.1.0 (results with `fixes`).
    #[arg(long)]
    sarif: bool,
    /// Skip the immutability checks (Pod Security Standards only).
    #[arg(long)]
    no_immutability: bool,
    /// Print every check id with its summary and exit.
    #[arg(long)]
    list_checks: bool,
}

fn parse_version(s: &str) -> Result<Version, String> {
    Version::parse(s).ok_or_else(|| format!("{s:?} is not `latest` or `v1.N`"))
}

/// Directories deeper than this are not walked.
const MAX_DIR_DEPTH: usize = 64;

fn is_manifest(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if depth > MAX_DIR_DEPTH {
        anyhow::bail!(
            "{}: directories nested deeper than {MAX_DIR_DEPTH}",
            dir.display()
        );
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read directory {}", dir.display()))?;
    entries.sort();
    for p in entries {
        // Symbolic links to directories are not followed (no loops); to files they are.
        let meta = std::fs::symlink_metadata(&p)
            .with_context(|| format!("cannot stat {}", p.display()))?;
        if meta.is_dir() {
            walk(&p, depth + 1, out)?;
        } else if is_manifest(&p) && std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
            out.push(p);
        }
    }
    Ok(())
}

pub(crate) fn read_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
    let mut sources = Vec::new();
    let mut stdin_read = false;
    for p in paths {
        if p.as_os_str() == "-" {
            if stdin_read {
                anyhow::bail!("`-f -` given twice");
            }
            stdin_read = true;
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read stdin")?;
            sources.push(Source::from_bytes("<stdin>", buf)?);
            continue;
        }
        let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        let files = if meta.is_dir() {
            let mut files = Vec::new();
            walk(p, 0, &mut files)?;
            files
        } else {
            vec![p.clone()]
        };
        for f in files {
            let bytes =
                std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?;
            sources.push(Source::from_bytes(f.display().to_string(), bytes)?);
        }
    }
    Ok(sources)
}

fn list_checks() {
    for id in driftwatch_audit::all_check_ids() {
        let level = driftwatch_audit::pss::CHECKS
            .iter()
            .find(|c| c.id == id)
            .map_or("-", |c| c.level.as_str());
        println!(
            "{id:<38} {level:<10} {}",
            driftwatch_audit::check_summary(id).unwrap_or("")
        );
    }
}

pub fn run(args: &AuditArgs) -> anyhow::Result<ExitCode> {
    if args.list_checks {
        list_checks();
        return Ok(ExitCode::SUCCESS);
    }
    let sources = read_sources(&args.files)?;
    let opts = Options {
        level: match args.level {
            LevelArg::Privileged => Level::Privileged,
            LevelArg::Baseline => Level::Baseline,
            LevelArg::Restricted => Level::Restricted,
        },
        version: args.pss_version,
        immutability: !args.no_immutability,
    };
    let started = std::time::Instant::now();
    let report = driftwatch_audit::audit(&sources, &opts)?;
    tracing::debug!(
        files = report.files,
        objects = report.objects,
        findings = report.findings.len(),
        elapsed_ms = started.elapsed().as_millis(),
        "audited"
    );
    if args.sarif {
        println!("{}", serde_json::to_string_pretty(&render::sarif(&report))?);
    } else if args.json {
        println!("{}", serde_json::to_string_pretty(&render::json(&report))?);
    } else {
        print!("{}", render::table(&report));
    }
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

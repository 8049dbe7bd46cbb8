//! `driftwatch verify`: the images this node runs (every containerd namespace, or `-n NS`;
//! containers named as arguments) against an approved set — Kubernetes manifests (`-f`, read
//! as `driftwatch audit` reads them) or a lock file (`--lock`). Exit codes: 0 no finding,
//! 1 findings, 2 error.

use crate::containerd_args::ContainerdArgs;
use anyhow::Context as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    containerd: ContainerdArgs,
    /// Approved images from manifest files, directories or `-` for stdin (e.g.
    /// `helm template … | driftwatch verify -f -`). Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    files: Vec<PathBuf>,
    /// Approved images from a lock file (`images.lock`: reference → digest, platforms).
    /// Repeatable.
    #[arg(long, value_name = "FILE")]
    lock: Vec<PathBuf>,
    /// Print the report as one JSON document.
    #[arg(long)]
    json: bool,
    /// Timeout of each containerd call, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    timeout_ms: u64,
    /// Containers to verify (id, unique id prefix of 4+ characters, or name) [default: all].
    containers: Vec<String>,
}

pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut approved = Vec::new();
    if !args.files.is_empty() {
        let sources = crate::audit_cmd::read_sources(&args.files)?;
        approved.extend(driftwatch_verify::approved::from_manifests(&sources)?);
    }
    for l in &args.lock {
        let bytes = std::fs::read(l).with_context(|| format!("cannot read {}", l.display()))?;
        approved.extend(driftwatch_verify::lock::parse(
            &l.display().to_string(),
            &bytes,
        )?);
    }
    let have_set = !args.files.is_empty() || !args.lock.is_empty();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let started = std::time::Instant::now();
    let (containers, facts) = rt.block_on(async {
        let inv = driftwatch_runtime::inventory::inventory(
            &args.containerd.socket,
            args.containerd.namespace.as_deref(),
            Duration::from_millis(args.timeout_ms),
        )
        .await?;
        let facts = driftwatch_verify::store_facts(&inv, &approved).await;
        anyhow::Ok((inv.containers, facts))
    })?;
    let containers =
        driftwatch_verify::select(containers, &args.containers).map_err(|e| anyhow::anyhow!(e))?;
    let report = driftwatch_verify::check(containers, have_set.then_some(&approved[..]), &facts);
    tracing::debug!(
        containers = report.containers.len(),
        findings = report.findings.len(),
        elapsed_ms = started.elapsed().as_millis(),
        "verified"
    );
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&driftwatch_verify::render::json(&report))?
        );
    } else {
        print!("{}", driftwatch_verify::render::table(&report));
    }
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

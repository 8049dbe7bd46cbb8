//! The `driftwatch` command line. The only place `anyhow` is used; errors map to exit codes:
//! 0 ok, 1 runtime failure, 2 usage or configuration error.
#![forbid(unsafe_code)]

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use driftwatch_agent::config::{Config, ConfigError};
use driftwatch_agent::AgentError;
use std::path::PathBuf;
use std::process::ExitCode;

mod audit_cmd;
mod baseline_cmd;
mod containerd_args;
mod containers_cmd;
mod diff_cmd;
mod incidents_cmd;
mod plan_cmd;
mod respond_cmd;
mod rules_cmd;
mod verify_cmd;

#[derive(Debug, Parser)]
#[command(
    name = "driftwatch",
    version,
    about = "Runtime container-drift detection"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Watch every container on this node and alert on drift.
    Agent(AgentArgs),
    /// Validate, list and test rule files; print the fields rules may use.
    Rules(rules_cmd::RulesArgs),
    /// What changed in a container since it started: files, packages, runtime configuration.
    /// Exit code 0 no drift, 1 drift found, 2 error.
    Diff(diff_cmd::DiffArgs),
    /// Kubernetes manifests against the Pod Security Standards (as the pod-security admission
    /// checks them) and immutability checks, with a fix per finding. Exit code 0 no finding,
    /// 1 findings, 2 error.
    Audit(audit_cmd::AuditArgs),
    /// The images this node runs against an approved set (manifests or a lock file):
    /// mutable tags, digest mismatches, unapproved images, mixed digests. Exit code 0 no
    /// finding, 1 findings, 2 error.
    Verify(verify_cmd::VerifyArgs),
    /// Per-container drift summaries of the agent running on this node (read from its
    /// listener). Exit code 0 ok, 1 no agent answered, 2 usage error.
    Containers(containers_cmd::ContainersArgs),
    /// The network baselines the agent learns per workload: list, show, edit, check.
    /// Exit code 0 ok, 1 a file has a mistake (check), 2 error.
    Baseline(baseline_cmd::BaselineArgs),
    /// The response: plan what an alert would make the agent do; act on a container by hand
    /// (isolate its network / release it, pause / resume it, list the isolations). Exit code 0
    /// ok, 1 the action failed (plan: nothing would run), 2 usage error.
    Respond(respond_cmd::RespondArgs),
    /// The responder's incidents: each with its container, alerts, steps and evidence.
    /// Exit code 0 ok, 1 no agent answered, 2 usage error.
    Incidents(incidents_cmd::IncidentsArgs),
}

#[derive(Debug, clap::Args)]
struct AgentArgs {
    /// TOML configuration file (see the README, "Configuration file"); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print alerts on stdout as JSON lines (Falco's JSON shape) instead of text lines.
    #[arg(long)]
    json: bool,
    /// Also append alerts as JSON lines to this file (flushed after each alert).
    #[arg(long, value_name = "PATH")]
    output_file: Option<PathBuf>,
    /// Address of the /healthz, /readyz, /metrics and /containers listener
    /// [default: 127.0.0.1:9376].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Kill drifted executions in containers before they run.
    #[arg(long)]
    enforce: bool,
    /// containerd socket [default: /run/containerd/containerd.sock].
    #[arg(long, value_name = "PATH")]
    containerd_socket: Option<PathBuf>,
    /// Do not print alerts on stdout (use with --output-file).
    #[arg(long)]
    quiet: bool,
    /// Rule file or directory (*.yaml, *.yml) loaded after the built-in rules; repeatable,
    /// later files tune earlier ones.
    #[arg(long = "rules", value_name = "PATH")]
    rules: Vec<PathBuf>,
    /// Skip, with a warning, rules that use fields driftwatch does not provide.
    #[arg(long)]
    skip_unknown: bool,
    /// Do not load the built-in rules (only --rules files).
    #[arg(long)]
    no_builtin_rules: bool,
    /// Directory of the network baselines, one YAML file per workload
    /// [default: /var/lib/driftwatch/baselines].
    #[arg(long, value_name = "DIR")]
    baseline_dir: Option<PathBuf>,
    /// How long a workload learns its network baseline after it is first seen (`1h`, `30m`,
    /// `0s`) [default: 1h].
    #[arg(long, value_name = "DURATION")]
    learn_for: Option<String>,
    /// With --enforce: refuse, in the kernel, connections outside the baseline of workloads
    /// that finished learning, and connections by drifted code.
    #[arg(long)]
    enforce_network: bool,
    /// Approvals file (YAML): approved drift is neither alerted nor killed, under --enforce
    /// too.
    #[arg(long, value_name = "FILE")]
    approvals: Option<PathBuf>,
    /// Playbooks file (YAML): which alerts start which actions (observe mode unless the file
    /// says enforce).
    #[arg(long, value_name = "FILE")]
    response: Option<PathBuf>,
}

/// Exit code for configuration and usage errors.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DRIFTWATCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cli.command {
        Command::Containers(args) => match containers_cmd::run(&args) {
            Ok(code) => code,
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("driftwatch: error: {}", containers_cmd::one_line(&msg));
                ExitCode::FAILURE
            }
        },
        Command::Diff(args) => match diff_cmd::run(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("driftwatch: error: {e:#}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Audit(args) => match audit_cmd::run(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("driftwatch: error: {e:#}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Verify(args) => match verify_cmd::run(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("driftwatch: error: {e:#}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Baseline(args) => match baseline_cmd::run(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("driftwatch: error: {e:#}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Respond(args) => match respond_cmd::run(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("driftwatch: error: {e:#}");
                respond_cmd::exit_code(&e)
            }
        },
        Command::Incidents(args) => match incidents_cmd::run(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("driftwatch: error: {e:#}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Rules(args) => match rules_cmd::run(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("driftwatch: error: {e:#}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Agent(args) => match agent(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("driftwatch: error: {e:#}");
                let usage = e.chain().any(|c| {
                    c.downcast_ref::<ConfigError>().is_some()
                        || matches!(
                            c.downcast_ref::<AgentError>(),
                            Some(
                                AgentError::Config(_)
                                    | AgentError::Rules(_)
                                    | AgentError::ResponseFile(_)
                                    | AgentError::Response(_)
                                    | AgentError::Evidence(_)
                                    | AgentError::Baseline(_)
                            )
                        )
                });
                ExitCode::from(if usage { EXIT_USAGE } else { 1 })
            }
        },
    }
}

fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let mut cfg = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if args.json {
        cfg.output.json = true;
    }
    if let Some(p) = args.output_file {
        cfg.output.file = Some(p);
    }
    if let Some(l) = args.listen {
        cfg.agent.listen = l;
    }
    if args.enforce {
        cfg.agent.enforce = true;
    }
    if let Some(s) = args.containerd_socket {
        cfg.runtime.containerd_socket = s;
    }
    if args.quiet {
        cfg.output.stdout = false;
    }
    cfg.rules.paths.extend(args.rules);
    if args.skip_unknown {
        cfg.rules.skip_unknown = true;
    }
    if args.no_builtin_rules {
        cfg.rules.builtin = false;
    }
    if let Some(d) = args.baseline_dir {
        cfg.network.baseline_dir = d;
    }
    if let Some(l) = args.learn_for {
        cfg.network.learn_for = l;
    }
    if args.enforce_network {
        cfg.network.enforce = true;
    }
    if let Some(a) = args.approvals {
        cfg.response.approvals = Some(a);
    }
    if let Some(r) = args.response {
        cfg.response.file = Some(r);
    }
    let valid = cfg.validate()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("driftwatch")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(driftwatch_agent::run(valid, shutdown_signal()))?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the agent still stops with the default action.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("shutting down");
}

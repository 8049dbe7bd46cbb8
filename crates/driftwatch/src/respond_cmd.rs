//! `driftwatch respond`: `plan` (what the playbooks would do for one alert, `plan_cmd.rs`) and
//! the node-local actions, by hand (the playbook engine calls the same
//! library functions): `isolate` / `release` (the container's network, pinned in the kernel,
//! with an optional TTL), `pause` / `resume` (containerd's freezer), `isolations` (what is
//! isolated) and `expire` (remove what expired or whose container is gone). None needs the
//! agent. Exit codes: 0 ok, 1 the action failed, 2 usage error (no such container, several
//! match, a bad duration).
//!
//! Each action is one variant of [`Action`] and one function below; containers are named as for
//! `driftwatch diff` (id, unique id prefix or name, `-n NS`), resolved by
//! `driftwatch_runtime::control` (the one resolver).

use crate::containerd_args::ContainerdArgs;
use anyhow::Context as _;
use driftwatch_respond::isolate::{Isolation, Isolations, DEFAULT_PIN_DIR};
use driftwatch_runtime::control::{Control, ControlError, Target, TaskAction};
use driftwatch_runtime::inspect::InspectError;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// How long a containerd call may take.
const CONTAINERD_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct RespondArgs {
    #[command(subcommand)]
    action: Action,
}

/// The container an action applies to.
#[derive(Debug, clap::Args)]
struct ContainerArg {
    /// Container id, unique id prefix, or name (CRI/nerdctl name label).
    #[arg(value_name = "CONTAINER")]
    container: String,
    #[command(flatten)]
    containerd: ContainerdArgs,
}

#[derive(Debug, clap::Args)]
struct PinArgs {
    /// bpffs directory holding the isolations.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// What the playbooks would do for one alert, and which guard would stop each step
    /// (offline: no agent, no containerd). Exit code 0 some step would run, 1 nothing would.
    Plan(crate::plan_cmd::PlanArgs),
    /// Cut the container's network at the node: new connections refused, established ones
    /// dropped, both directions; loopback inside it still works. Pinned in the kernel: it lasts
    /// without the agent, until `release` or the TTL.
    Isolate {
        #[command(flatten)]
        target: ContainerArg,
        /// End the isolation after this long (`30s`, `10m`, `1h`) [default: until released].
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        #[command(flatten)]
        pins: PinArgs,
    },
    /// Undo `isolate`.
    Release {
        /// Container id, unique id prefix, or name (CRI/nerdctl name label).
        #[arg(value_name = "CONTAINER", required_unless_present = "cgroup_id")]
        container: Option<String>,
        /// Release by cgroup id (`isolations` lists them), e.g. of a container that is gone.
        #[arg(long, value_name = "ID", conflicts_with = "container")]
        cgroup_id: Option<u64>,
        #[command(flatten)]
        containerd: ContainerdArgs,
        #[command(flatten)]
        pins: PinArgs,
    },
    /// Freeze every process of the container (containerd's pause: the cgroup freezer).
    Pause {
        #[command(flatten)]
        target: ContainerArg,
    },
    /// Undo `pause`.
    Resume {
        #[command(flatten)]
        target: ContainerArg,
    },
    /// The isolated cgroups: their container, since when, until when, in force or expired.
    Isolations {
        /// One JSON document.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        containerd: ContainerdArgs,
        #[command(flatten)]
        pins: PinArgs,
    },
    /// Remove the isolations that expired or whose container is gone.
    Expire {
        #[command(flatten)]
        pins: PinArgs,
    },
}

/// A mistake in the command line (exit code 2).
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code of a failed `respond`: 2 for a usage mistake, 1 for a failed action.
pub fn exit_code(e: &anyhow::Error) -> ExitCode {
    let usage = e.chain().any(|c| {
        c.downcast_ref::<UsageError>().is_some()
            || matches!(
                c.downcast_ref::<ControlError>(),
                Some(ControlError::Find(
                    InspectError::NotFound { .. } | InspectError::Ambiguous { .. }
                ))
            )
    });
    ExitCode::from(if usage { 2 } else { 1 })
}

/// Runs `driftwatch respond`.
pub fn run(args: RespondArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match args.action {
        Action::Plan(a) => {
            crate::plan_cmd::run(&a).map_err(|e| UsageError(format!("{e:#}")).into())
        }
        Action::Isolate { target, ttl, pins } => {
            let ttl = ttl
                .map(|t| driftwatch_event::parse_duration(&t).map_err(UsageError))
                .transpose()?;
            rt.block_on(isolate(&target, ttl, &pins))
        }
        Action::Release {
            container,
            cgroup_id,
            containerd,
            pins,
        } => rt.block_on(release(container, cgroup_id, &containerd, &pins)),
        Action::Pause { target } => rt.block_on(pause(&target, TaskAction::Pause)),
        Action::Resume { target } => rt.block_on(pause(&target, TaskAction::Resume)),
        Action::Isolations {
            json,
            containerd,
            pins,
        } => rt.block_on(isolations(json, &containerd, &pins)),
        Action::Expire { pins } => {
            let released = Isolations::new(&pins.pin_dir).expire()?;
            for id in &released {
                println!("removed the isolation of cgroup {id}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn control(c: &ContainerdArgs) -> anyhow::Result<Control> {
    Ok(Control::connect(&c.socket, CONTAINERD_TIMEOUT).await?)
}

/// The container named on the command line, with its cgroup.
async fn locate(c: &Control, target: &ContainerArg) -> anyhow::Result<Target> {
    Ok(
        c.locate(target.containerd.namespace.as_deref(), &target.container)
            .await?,
    )
}

fn name(t: &Target) -> String {
    format!("{}/{}", t.namespace, t.id)
}

fn time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    driftwatch_event::format_rfc3339_secs(secs)
}

async fn isolate(
    target: &ContainerArg,
    ttl: Option<Duration>,
    pins: &PinArgs,
) -> anyhow::Result<ExitCode> {
    let c = control(&target.containerd).await?;
    let t = locate(&c, target).await?;
    let (Some(dir), Some(id)) = (&t.cgroup_dir, t.cgroup_id) else {
        anyhow::bail!(
            "container {} has no running task ({}): nothing to isolate",
            name(&t),
            t.state
        );
    };
    let iso = Isolations::new(&pins.pin_dir)
        .isolate(dir, id, ttl)
        .with_context(|| format!("cannot isolate container {}", name(&t)))?;
    let until = iso.until.map_or_else(
        || "until released".to_owned(),
        |u| format!("until {}", time(u)),
    );
    println!("isolated {} (cgroup {id}) {until}", name(&t));
    Ok(ExitCode::SUCCESS)
}

async fn release(
    container: Option<String>,
    cgroup_id: Option<u64>,
    containerd: &ContainerdArgs,
    pins: &PinArgs,
) -> anyhow::Result<ExitCode> {
    let (what, id) = match (container, cgroup_id) {
        (_, Some(id)) => (format!("cgroup {id}"), id),
        (Some(container), None) => {
            let c = control(containerd).await?;
            let t = c
                .locate(containerd.namespace.as_deref(), &container)
                .await?;
            let id = t.cgroup_id.with_context(|| {
                format!(
                    "container {} has no running task ({}): release it by --cgroup-id \
                     (see `driftwatch respond isolations`)",
                    name(&t),
                    t.state
                )
            })?;
            (format!("{} (cgroup {id})", name(&t)), id)
        }
        (None, None) => return Err(UsageError("name a container or --cgroup-id".into()).into()),
    };
    if Isolations::new(&pins.pin_dir)
        .release(id)
        .with_context(|| format!("cannot release {what}"))?
    {
        println!("released {what}");
    } else {
        println!("{what} was not isolated");
    }
    Ok(ExitCode::SUCCESS)
}

async fn pause(target: &ContainerArg, action: TaskAction) -> anyhow::Result<ExitCode> {
    let c = control(&target.containerd).await?;
    let t = locate(&c, target).await?;
    let (verb, done) = match action {
        TaskAction::Pause => ("pause", "paused"),
        TaskAction::Resume => ("resume", "resumed"),
    };
    let state = c
        .apply(&t.namespace, &t.id, action)
        .await
        .with_context(|| format!("cannot {verb} container {}", name(&t)))?;
    println!("{done} {} ({state})", name(&t));
    Ok(ExitCode::SUCCESS)
}

async fn isolations(
    json: bool,
    containerd: &ContainerdArgs,
    pins: &PinArgs,
) -> anyhow::Result<ExitCode> {
    let list = Isolations::new(&pins.pin_dir).list()?;
    // Which container each cgroup is: best effort (containerd may be down, the container gone).
    let running = if list.is_empty() {
        Vec::new()
    } else {
        match control(containerd).await {
            Ok(c) => c.running().await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot list containers");
                Vec::new()
            }),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot reach containerd");
                Vec::new()
            }
        }
    };
    let container_of = |iso: &Isolation| {
        running
            .iter()
            .find(|t| t.cgroup_id == Some(iso.cgroup_id))
            .map(name)
    };
    if json {
        let items: Vec<serde_json::Value> = list
            .iter()
            .map(|i| {
                serde_json::json!({
                    "cgroup_id": i.cgroup_id,
                    "container": container_of(i),
                    "since": i.since.map(time),
                    "until": i.until.map(time),
                    "in_force": i.in_force,
                    "links": i.links,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "isolations": items }));
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        println!("no isolations");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<12} {:<40} {:<20} {:<20} STATE",
        "CGROUP", "CONTAINER", "SINCE", "UNTIL"
    );
    for i in &list {
        let state = if i.in_force { "in force" } else { "expired" };
        println!(
            "{:<12} {:<40} {:<20} {:<20} {state}",
            i.cgroup_id,
            driftwatch_event::text::escape_str(&container_of(i).unwrap_or_else(|| "-".into())),
            i.since.map_or_else(|| "-".into(), time),
            i.until.map_or_else(|| "-".into(), time),
        );
    }
    Ok(ExitCode::SUCCESS)
}

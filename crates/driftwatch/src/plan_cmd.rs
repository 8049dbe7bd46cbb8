//! `driftwatch respond plan`: what the agent's playbooks would do for one alert, and which
//! guard would stop each step. Offline: no agent, no containerd; the guards that need state
//! (cooldown, rate limit) are those of a fresh agent. Exit codes: 0 some step would run, 1
//! nothing would run (no playbook matches, or every step is stopped), 2 error.

use anyhow::Context as _;
use driftwatch_agent::config::Config;
use driftwatch_event::Alert;
use driftwatch_respond::Playbooks;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The alert: one Falco-shaped JSON alert (a line of the agent's --json output or
    /// --output-file); `-` reads standard input.
    #[arg(long, value_name = "ALERT.json")]
    alert: PathBuf,
    /// The playbooks file [default: `response.file` of --config].
    #[arg(long, value_name = "FILE")]
    response: Option<PathBuf>,
    /// The agent's configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let file = match (&args.response, &args.config) {
        (Some(f), _) => f.clone(),
        (None, Some(c)) => Config::from_file(c)?
            .response
            .file
            .with_context(|| format!("{} sets no response.file", c.display()))?,
        (None, None) => anyhow::bail!("give the playbooks with --response FILE (or --config)"),
    };
    let playbooks = Playbooks::from_file(&file)?;
    let text = if args.alert.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the alert from stdin")?
    } else {
        std::fs::read_to_string(&args.alert)
            .with_context(|| format!("cannot read the alert {}", args.alert.display()))?
    };
    // A file of JSON lines: the first alert.
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let alert = Alert::from_json(line)
        .map_err(|e| anyhow::anyhow!("{} is not an alert: {e}", args.alert.display()))?;
    let now = alert.time_ns;
    let plans = playbooks.plan(&alert, None, now);
    let runs = plans
        .iter()
        .any(|p| p.steps.iter().any(|s| s.guard.is_none()));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plans)?);
    } else if plans.is_empty() {
        println!(
            "no playbook of {} matches this alert ({}: {})",
            file.display(),
            alert.priority,
            driftwatch_event::text::escape_str(&alert.rule)
        );
    } else {
        for p in &plans {
            println!("playbook {} (mode {}):", p.playbook, p.mode.as_str());
            for (i, s) in p.steps.iter().enumerate() {
                let what = driftwatch_event::text::escape_str(&s.target);
                match &s.guard {
                    None => println!("  {}. {} {what}: would run", i + 1, s.action.name()),
                    Some(g) if g == "observe mode" => println!(
                        "  {}. {} {what}: would do, not done (observe mode)",
                        i + 1,
                        s.action.name()
                    ),
                    Some(g) => println!("  {}. {} {what}: stopped by {g}", i + 1, s.action.name()),
                }
            }
        }
    }
    Ok(if runs {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

//! `driftwatch incidents`: the responder's incidents, read from the agent's listener
//! (`GET /incidents`) or, with `--file`, from its incidents file (the agent need not run).
//! Exit codes: 0 ok, 1 no agent answered, 2 usage error.

use crate::containers_cmd::{fit, get, resolve, short_id};
use anyhow::Context as _;
use driftwatch_agent::config::{Config, DEFAULT_LISTEN};
use driftwatch_respond::incident::{Incident, Incidents};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct IncidentsArgs {
    /// One incident, by id.
    #[arg(value_name = "ID")]
    id: Option<String>,
    /// Address of the agent's listener [default: `agent.listen` of --config, else
    /// 127.0.0.1:9376].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The agent's configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Read the incidents file instead of asking the agent.
    #[arg(long, value_name = "FILE", conflicts_with = "listen")]
    file: Option<PathBuf>,
    /// Print JSON (as `GET /incidents` returns it).
    #[arg(long)]
    json: bool,
}

pub fn run(args: &IncidentsArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.as_deref().map(Config::from_file).transpose()?;
    let mut list: Vec<Incident> = if let Some(f) = &args.file {
        let inc = Incidents::open(f, std::time::Duration::from_secs(600))?;
        inc.list().into_iter().cloned().collect()
    } else {
        let listen = args
            .listen
            .clone()
            .or_else(|| config.as_ref().map(|c| c.agent.listen.clone()))
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let Some(addr) = resolve(&listen) else {
            eprintln!("driftwatch: error: {listen:?} is not an address such as {DEFAULT_LISTEN}");
            return Ok(ExitCode::from(2));
        };
        let body = match get(addr, "/incidents") {
            Ok(b) => b,
            Err(e) => {
                eprintln!("driftwatch: error: no driftwatch agent answers at {addr}: {e:#}");
                return Ok(ExitCode::FAILURE);
            }
        };
        serde_json::from_str(&body).with_context(|| {
            format!("the agent at {addr} answered something else than incidents")
        })?
    };
    if let Some(id) = &args.id {
        list.retain(|i| &i.id == id);
        if list.is_empty() {
            eprintln!("driftwatch: error: no incident {id:?}");
            return Ok(ExitCode::FAILURE);
        }
    }
    let text = if args.json {
        match (&args.id, list.first()) {
            (Some(_), Some(one)) => serde_json::to_string_pretty(one)? + "\n",
            _ => serde_json::to_string_pretty(&list)? + "\n",
        }
    } else {
        table(&list)
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn table(list: &[Incident]) -> String {
    let esc = driftwatch_event::text::escape_str;
    let mut out = String::new();
    if list.is_empty() {
        out.push_str("no incidents\n");
        return out;
    }
    for i in list {
        let _ = writeln!(
            out,
            "incident {}  opened {}  container {} ({})  alerts {}",
            esc(&i.id),
            i.opened,
            short_id(&i.container.id),
            fit(&esc(&i.container.name), 40),
            i.alerts_total
        );
        for a in i.alerts.iter().take(5) {
            let _ = writeln!(out, "  alert  {} {} {}", a.time, a.priority, esc(&a.rule));
        }
        for s in &i.steps {
            let mut line = format!(
                "  step   {} {} {} [{}] {}",
                s.time,
                s.action,
                esc(&s.target),
                s.mode,
                s.result.as_str()
            );
            if let Some(g) = &s.guard {
                let _ = write!(line, " (guard: {})", esc(g));
            }
            if let Some(e) = &s.error {
                let _ = write!(line, " error: {}", esc(e));
            }
            if let Some(d) = &s.detail {
                let _ = write!(line, " — {}", esc(d));
            }
            out.push_str(&line);
            out.push('\n');
        }
        for e in &i.evidence {
            let _ = writeln!(out, "  evidence {}", esc(e));
        }
    }
    out
}

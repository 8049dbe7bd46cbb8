//! `driftwatch baseline`: see, check and edit the network baselines the agent learns (one YAML
//! file per workload under `network.baseline_dir`).

use anyhow::{bail, Context as _};
use driftwatch_agent::config::Config;
use driftwatch_baseline::{Baseline, Loaded, Store};
use driftwatch_event::format_rfc3339_secs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct BaselineArgs {
    #[command(subcommand)]
    command: BaselineCommand,
    /// Baseline directory [default: `network.baseline_dir` of --config, else
    /// /var/lib/driftwatch/baselines].
    #[arg(long, value_name = "DIR", global = true)]
    dir: Option<PathBuf>,
    /// The agent's configuration file (for `network.baseline_dir`).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum BaselineCommand {
    /// Every workload's baseline: learning or learned, how many listeners and peers.
    List {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one workload's baseline file (WORKLOAD: its key, its file name, or a part of the
    /// key that names only one workload).
    Show { workload: String },
    /// Edit one workload's baseline in $VISUAL or $EDITOR (vi); the edit is saved only when it
    /// parses (else its mistakes are shown with line and column and the file is unchanged).
    /// A running agent takes the change within 5 seconds.
    Edit { workload: String },
    /// Check that every baseline file parses. Exit code 0 all good, 1 a file has a mistake.
    Check,
}

fn dir(args: &BaselineArgs) -> anyhow::Result<PathBuf> {
    if let Some(d) = &args.dir {
        return Ok(d.clone());
    }
    let cfg = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    Ok(cfg.network.baseline_dir)
}

pub fn run(args: &BaselineArgs) -> anyhow::Result<ExitCode> {
    let dir = dir(args)?;
    let store = Store::new(&dir);
    match &args.command {
        BaselineCommand::Check => check(&dir),
        BaselineCommand::List { json } => {
            let all = store.load_all()?;
            let mut out = std::io::stdout().lock();
            if *json {
                for l in &all {
                    writeln!(out, "{}", summary_json(l))?;
                }
            } else {
                out.write_all(table(&all, now()).as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        BaselineCommand::Show { workload } => {
            let l = find(&store, workload)?;
            let text = std::fs::read_to_string(&l.path)
                .with_context(|| format!("cannot read {}", l.path.display()))?;
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        BaselineCommand::Edit { workload } => edit(&find(&store, workload)?),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Every file, each mistake on its own line as `file:line:column: message`.
fn check(dir: &Path) -> anyhow::Result<ExitCode> {
    if !dir.exists() {
        println!(
            "no baselines in {} (the directory does not exist)",
            dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let paths = Store::new(dir).files()?;
    let mut bad = 0;
    for p in &paths {
        if let Err(e) = Store::load(p) {
            bad += 1;
            eprintln!("{e}");
        }
    }
    println!("{} baseline files, {bad} with mistakes", paths.len());
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The baseline named by `query`: a workload key, a file name (with or without `.yaml`), or a
/// part of a key that only one workload has.
fn find(store: &Store, query: &str) -> anyhow::Result<Loaded> {
    let all = store.load_all()?;
    let stem = |l: &Loaded| {
        l.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let q = query.strip_suffix(".yaml").unwrap_or(query);
    if let Some(l) = all
        .iter()
        .find(|l| l.baseline.workload == query || stem(l) == q)
    {
        return Ok(l.clone());
    }
    let mut hits: Vec<&Loaded> = all
        .iter()
        .filter(|l| l.baseline.workload.contains(query))
        .collect();
    match hits.len() {
        0 => bail!(
            "no baseline for {query:?} in {} (`driftwatch baseline list` shows them)",
            store.dir().display()
        ),
        1 => Ok(hits.remove(0).clone()),
        _ => bail!(
            "{query:?} names several workloads: {}",
            hits.iter()
                .map(|l| l.baseline.workload.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn state(b: &Baseline, now: u64) -> String {
    if b.is_learning(now) {
        format!("learning until {}", format_rfc3339_secs(b.learning.until))
    } else {
        "learned".to_string()
    }
}

fn table(all: &[Loaded], now: u64) -> String {
    let esc = crate::containers_cmd::one_line;
    let mut rows = vec![[
        "WORKLOAD".to_string(),
        "STATE".to_string(),
        "LISTEN".to_string(),
        "CONNECT".to_string(),
        "IMAGES".to_string(),
        "FILE".to_string(),
    ]];
    for l in all {
        let b = &l.baseline;
        rows.push([
            esc(&b.workload),
            state(b, now),
            b.listen.len().to_string(),
            b.connect.len().to_string(),
            b.images.len().to_string(),
            esc(&l.path.display().to_string()),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn summary_json(l: &Loaded) -> serde_json::Value {
    let b = &l.baseline;
    serde_json::json!({
        "workload": b.workload,
        "file": l.path.display().to_string(),
        "learning_started": format_rfc3339_secs(b.learning.started),
        "learning_until": format_rfc3339_secs(b.learning.until),
        "learning": b.is_learning(now()),
        "images": b.images,
        "listen": b.listen.len(),
        "connect": b.connect.len(),
    })
}

fn edit(l: &Loaded) -> anyhow::Result<ExitCode> {
    let editor = std::env::var("VISUAL")
        .ok()
        .or_else(|| std::env::var("EDITOR").ok())
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".to_string());
    let original =
        std::fs::read(&l.path).with_context(|| format!("cannot read {}", l.path.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("driftwatch-baseline-")
        .suffix(".yaml")
        .tempfile()?;
    std::fs::write(tmp.path(), &original)?;
    // The editor command may have arguments (`code --wait`): run it through the shell with the
    // file as "$1".
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(tmp.path())
        .status()
        .with_context(|| format!("cannot run the editor {editor:?}"))?;
    if !status.success() {
        bail!(
            "the editor {editor:?} failed ({status}); {} is unchanged",
            l.path.display()
        );
    }
    let edited = std::fs::read_to_string(tmp.path())?;
    if edited.as_bytes() == original.as_slice() {
        println!("no change");
        return Ok(ExitCode::SUCCESS);
    }
    match Baseline::from_yaml(&edited) {
        Ok(b) if b.workload != l.baseline.workload => bail!(
            "the edit changes the workload from {:?} to {:?}; {} is unchanged",
            l.baseline.workload,
            b.workload,
            l.path.display()
        ),
        Ok(_) => {
            driftwatch_baseline::write_atomic(&l.path, edited.as_bytes())
                .with_context(|| format!("cannot write {}", l.path.display()))?;
            println!("saved {}", l.path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let (_, kept) = tmp.keep()?;
            bail!(
                "{}:{}:{}: {}; {} is unchanged, the edit is kept in {}",
                l.path.display(),
                e.line,
                e.column,
                e.message,
                l.path.display(),
                kept.display()
            )
        }
    }
}

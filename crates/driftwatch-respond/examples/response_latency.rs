//! The latency of the node-local actions themselves, on real containers (`bench/response` runs
//! this): `Isolations::prepare` (once per node: the six programs verified and pinned, timed
//! apart), `Isolations::isolate` (six links attached and pinned; again: the TTL updated), `release`, and containerd's pause and resume over a kept
//! connection (`driftwatch_runtime::control::Control`). Prints p50, p99 and max of each.
//!
//! ```text
//! response_latency [--runs N] [--namespace NS] [--socket PATH] [--pin-dir DIR] CONTAINER...
//! ```
//!
//! The runs go round the containers named. Needs root, bpffs, cgroup v2 and containerd.

use driftwatch_respond::isolate::Isolations;
use driftwatch_runtime::control::Control;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Args {
    runs: usize,
    namespace: Option<String>,
    socket: PathBuf,
    pin_dir: PathBuf,
    containers: Vec<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        runs: 50,
        namespace: None,
        socket: PathBuf::from("/run/containerd/containerd.sock"),
        pin_dir: PathBuf::from("/sys/fs/bpf/driftwatch-bench-isolate"),
        containers: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--runs" => {
                a.runs = value("--runs")?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?
            }
            "--namespace" | "-n" => a.namespace = Some(value("--namespace")?),
            "--socket" => a.socket = PathBuf::from(value("--socket")?),
            "--pin-dir" => a.pin_dir = PathBuf::from(value("--pin-dir")?),
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            other => a.containers.push(other.to_owned()),
        }
    }
    if a.containers.is_empty() || a.runs == 0 {
        return Err("name at least one container; --runs must be positive".into());
    }
    Ok(a)
}

/// p50, p99 and max of `samples`, in milliseconds.
fn summary(name: &str, samples: &mut [Duration]) -> String {
    samples.sort_unstable();
    let n = samples.len();
    let at = |q: usize| samples[(n * q).div_ceil(100).clamp(1, n) - 1].as_secs_f64() * 1e3;
    format!(
        "{name:<16} n={n:<4} p50={:>8.3} ms  p99={:>8.3} ms  max={:>8.3} ms",
        at(50),
        at(99),
        samples[n - 1].as_secs_f64() * 1e3
    )
}

async fn run(a: Args) -> Result<(), String> {
    let ctl = Control::connect(&a.socket, Duration::from_secs(10))
        .await
        .map_err(|e| format!("containerd: {e}"))?;
    let mut targets = Vec::new();
    for c in &a.containers {
        let t = ctl
            .locate(a.namespace.as_deref(), c)
            .await
            .map_err(|e| format!("{c}: {e}"))?;
        let (Some(dir), Some(id)) = (t.cgroup_dir.clone(), t.cgroup_id) else {
            return Err(format!("{c}: no running task"));
        };
        targets.push((t, dir, id));
    }
    let iso = Isolations::new(&a.pin_dir);
    // The first isolation on the node would load, verify and pin the programs: `prepare` does
    // it ahead (what the agent does at start), timed apart.
    let s = Instant::now();
    iso.prepare().map_err(|e| format!("prepare: {e}"))?;
    let prepare = s.elapsed();
    let (mut first, mut again, mut release, mut pause, mut resume) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..a.runs {
        let (t, dir, id) = &targets[i % targets.len()];
        let s = Instant::now();
        iso.isolate(dir, *id, None)
            .map_err(|e| format!("isolate: {e}"))?;
        first.push(s.elapsed());
        let s = Instant::now();
        iso.isolate(dir, *id, Some(Duration::from_secs(600)))
            .map_err(|e| format!("isolate again: {e}"))?;
        again.push(s.elapsed());
        let s = Instant::now();
        iso.release(*id).map_err(|e| format!("release: {e}"))?;
        release.push(s.elapsed());

        let s = Instant::now();
        ctl.pause(&t.namespace, &t.id)
            .await
            .map_err(|e| format!("pause: {e}"))?;
        pause.push(s.elapsed());
        let s = Instant::now();
        ctl.resume(&t.namespace, &t.id)
            .await
            .map_err(|e| format!("resume: {e}"))?;
        resume.push(s.elapsed());
    }
    println!(
        "prepare (once per node: programs verified and pinned) {:.3} ms",
        prepare.as_secs_f64() * 1e3
    );
    println!("{}", summary("isolate", &mut first));
    println!("{}", summary("isolate (again)", &mut again));
    println!("{}", summary("release", &mut release));
    println!("{}", summary("pause", &mut pause));
    println!("{}", summary("resume", &mut resume));
    iso.remove_unused().map_err(|e| format!("cleanup: {e}"))?;
    Ok(())
}

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("response_latency: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("response_latency: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("response_latency: {e}");
            ExitCode::FAILURE
        }
    }
}

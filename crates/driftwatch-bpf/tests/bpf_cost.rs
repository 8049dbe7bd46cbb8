//! The BPF programs' cost on dynamic execs in a container-like task (a new mount namespace):
//! `/usr/bin/true` maps ~4 image libraries executable, each going through the mmap program
//! without producing a record. Not run by default (it takes a minute and wants a quiet machine):
//!
//! ```text
//! cargo test -p driftwatch-bpf --release --test bpf_cost -- --ignored --nocapture
//! ```
//! Env: `DW_COST_EXECS` (default 2000), `DW_COST_ROUNDS` (default 7), `DW_COST_PROG_STATS=1`
//! (print each program's ns/run; needs `sysctl kernel.bpf_stats_enabled=1`).

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use common::{load_with, ns_ino};
use driftwatch_abi::{decode, Record};
use driftwatch_bpf::EventStream;

const DRIVER_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
        pid_t pid = vfork();
        if (pid == 0) {
            execl("/usr/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        int st;
        if (pid < 0 || waitpid(pid, &st, 0) != pid || st != 0)
            return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    /* CPU time of the driver and its children: what the BPF programs add to, and much less
     * disturbed than wall time by other work on a shared machine. */
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    long long cpu_us = 0;
    struct timeval *tv[] = {&self.ru_utime, &self.ru_stime, &kids.ru_utime, &kids.ru_stime};
    for (int i = 0; i < 4; i++)
        cpu_us += tv[i]->tv_sec * 1000000LL + tv[i]->tv_usec;
    printf("%lld %lld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec),
           cpu_us * 1000);
    return 0;
}
"#;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn driver() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("driftwatch-bpf-cost");
    fs::create_dir_all(&dir).expect("mkdir");
    let src = dir.join(format!("driver.{}.c", std::process::id()));
    // Built under a private name, then renamed into place: concurrent test binaries never see
    // a half-written file.
    let tmp = dir.join(format!("driver.{}.tmp", std::process::id()));
    let bin = dir.join("driver");
    fs::write(&src, DRIVER_C).expect("write driver");
    let st = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&tmp)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success());
    fs::rename(&tmp, &bin).expect("rename driver");
    let _ = fs::remove_file(&src);
    bin
}

/// (wall, CPU) time in ns of `n` execs of /usr/bin/true from a new mount namespace.
fn execs_ns(driver: &PathBuf, n: usize) -> [f64; 2] {
    let out = Command::new("unshare")
        .arg("-m")
        .arg(driver)
        .arg(n.to_string())
        .output()
        .expect("run driver");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().expect("ns"));
    [it.next().expect("wall"), it.next().expect("cpu")]
}

/// Reads records until told to stop, then drains what is left; (exec records of `true`, map
/// records).
async fn drain_until(
    mut events: EventStream,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> (usize, usize) {
    let (mut execs, mut maps) = (0usize, 0usize);
    let mut count = |b: &[u8]| match decode(b) {
        Ok(Record::Exec(e)) if e.task.comm_bytes() == b"true" => execs += 1,
        Ok(Record::Map(_)) => maps += 1,
        _ => {}
    };
    loop {
        tokio::select! {
            r = events.for_each_record(256, &mut count) => { r.expect("ring buffer read"); }
            _ = &mut stop => break,
        }
    }
    events.drain_records(usize::MAX, &mut count);
    (execs, maps)
}

/// Per-program run time and count of the loaded dw_* programs (`bpftool prog show`; needs
/// `sysctl kernel.bpf_stats_enabled=1`).
fn print_prog_stats() {
    let out = Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .expect("bpftool");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines().filter(|l| l.contains(" dw_")) {
        let word_after = |name: &str| -> Option<&str> {
            let mut it = line.split_whitespace();
            it.find(|w| *w == name)?;
            it.next()
        };
        let num = |name: &str| word_after(name).and_then(|w| w.parse::<f64>().ok());
        if let (Some(ns), Some(cnt)) = (num("run_time_ns"), num("run_cnt")) {
            println!(
                "  {:<12} {cnt:>8} runs {:>8.0} ns/run",
                word_after("name").unwrap_or("?"),
                ns / cnt.max(1.0)
            );
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
async fn bpf_cost_of_dynamic_execs_in_a_new_mount_namespace() {
    let n = env_or("DW_COST_EXECS", 2000);
    let rounds = env_or("DW_COST_ROUNDS", 7);
    let driver = driver();
    let host = u32::try_from(ns_ino("mnt")).expect("u32");
    let _ = execs_ns(&driver, n / 4); // warm-up
                                      // [mode][wall, cpu] per round; mode 0 = no sensor, 1 = sensor loaded.
    let mut per_round: Vec<[[f64; 2]; 2]> = Vec::new();
    let (mut execs, mut maps) = (0usize, 0usize);
    for round in 0..rounds {
        // Alternate which mode goes first so drift in machine load does not favour one.
        let mut pair = [[0.0f64; 2]; 2];
        for step in 0..2 {
            let with_sensor = (round + step) % 2 == 0;
            if with_sensor {
                let (sensor, events) = load_with(false, host);
                // Drain as the agent does (the reader polls every 20 ms): a backlog past the
                // wakeup threshold would make every record force a wakeup.
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let reader = tokio::spawn(drain_until(events, stopped));
                let d = driver.clone();
                pair[1] = tokio::task::spawn_blocking(move || execs_ns(&d, n))
                    .await
                    .expect("driver");
                if std::env::var_os("DW_COST_PROG_STATS").is_some() {
                    print_prog_stats();
                }
                let _ = stop.send(());
                let (e, m) = reader.await.expect("reader");
                execs += e;
                maps += m;
                let stats = sensor.stats().expect("stats");
                assert_eq!(stats.lost_exec + stats.lost_map, 0, "{stats:?}");
            } else {
                pair[0] = execs_ns(&driver, n);
            }
        }
        let us = |ns: f64| ns / n as f64 / 1e3;
        println!(
            "round {round}: wall base {:.1} sensor {:.1} us/exec ({:.4}); \
             cpu base {:.1} sensor {:.1} us/exec ({:.4})",
            us(pair[0][0]),
            us(pair[1][0]),
            pair[1][0] / pair[0][0],
            us(pair[0][1]),
            us(pair[1][1]),
            pair[1][1] / pair[0][1],
        );
        per_round.push(pair);
    }
    for (i, what) in ["wall", "cpu"].iter().enumerate() {
        let mut ratios: Vec<f64> = per_round.iter().map(|p| p[1][i] / p[0][i]).collect();
        let mut base: Vec<f64> = per_round.iter().map(|p| p[0][i]).collect();
        let mut with: Vec<f64> = per_round.iter().map(|p| p[1][i]).collect();
        let (b, w) = (median(&mut base), median(&mut with));
        println!(
            "{what}: median over {rounds} rounds of {n} execs: base {:.1} us/exec, sensor {:.1} \
             us/exec, median ratio {:.4}, ratio of medians {:.4}",
            b / n as f64 / 1e3,
            w / n as f64 / 1e3,
            median(&mut ratios),
            w / b
        );
    }
    println!("exec records {execs}, map records {maps}");
    assert_eq!(maps, 0, "image libraries produced map records");
    assert!(execs >= n * rounds, "exec records {execs}");
}

//! The sensor's own health, checked once a second by the processor: its maps hold what the
//! agent wrote (anything else was written by someone with `CAP_BPF`; repaired and reported),
//! its programs are attached, and — every 10 s — a canary exec spawned by the agent arrives
//! through the ring buffer within 5 s. The kernel's own counters (ring-buffer losses, kills)
//! are mirrored into the metrics here too.

use crate::metrics::{mirror, Metrics};
use crate::processor::Kernel;
use driftwatch_bpf::ExecSensor;
use std::time::{Duration, Instant};

/// How long the canary exec may take to arrive.
const CANARY_DEADLINE: Duration = Duration::from_secs(5);
/// A canary is spawned every this many ticks (seconds).
const CANARY_EVERY_TICKS: u64 = 10;

#[derive(Debug, Default)]
pub(crate) struct Health {
    /// The canary process spawned to prove the sensor still delivers execs: (pid, spawned at).
    canary: Option<(u32, Instant)>,
}

impl Health {
    /// An exec arrived: it may be the canary's.
    pub(crate) fn saw_exec(&mut self, tgid: u32) {
        if self.canary.is_some_and(|(pid, _)| pid == tgid) {
            self.canary = None;
        }
    }

    /// The findings of this tick's checks (each becomes a `Driftwatch Sensor Tampered` alert).
    pub(crate) fn check(&mut self, kernel: &mut Kernel, ticks: u64) -> Vec<String> {
        let mut findings: Vec<String> = Vec::new();
        match kernel.sensor.check_integrity(&kernel.policed) {
            Ok(t) => findings.extend(t.iter().map(|t| format!("{t} (repaired)"))),
            Err(e) => findings.push(format!("the sensor maps cannot be read: {e}")),
        }
        if !kernel.sensor.programs_attached() {
            findings.push("the BPF programs are no longer attached".to_string());
        }
        if let Some((pid, at)) = self.canary {
            if at.elapsed() > CANARY_DEADLINE {
                findings.push(format!(
                    "the canary exec (pid {pid}) did not arrive within 5 s: the exec sensor is not \
                     delivering events"
                ));
                self.canary = None;
            }
        }
        if self.canary.is_none() && ticks.is_multiple_of(CANARY_EVERY_TICKS) {
            // A child of the agent is a process of its own: its exec is reported.
            if let Ok(mut child) = std::process::Command::new("/bin/true")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
            {
                self.canary = Some((child.id(), Instant::now()));
                std::thread::spawn(move || child.wait());
            }
        }
        findings
    }

    /// The kernel's counters into the metrics.
    pub(crate) fn mirror_kernel_stats(&self, sensor: &ExecSensor, metrics: &Metrics) {
        if !sensor.programs_attached() {
            tracing::error!("the BPF programs are no longer attached");
        }
        match sensor.stats() {
            Ok(s) => {
                let lost = &metrics.ringbuf_lost;
                mirror(&lost.exec, s.lost_exec);
                mirror(&lost.fork, s.lost_fork);
                mirror(&lost.exit, s.lost_exit);
                mirror(&lost.map, s.lost_map);
                mirror(&lost.file, s.lost_file);
                mirror(&lost.net, s.lost_net);
                mirror(&lost.dns, s.lost_dns);
                mirror(&metrics.kernel_kills, s.kills);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read sensor statistics"),
        }
    }
}

//! Network baselines: what each workload is expected to do on the network (issue 10).
//!
//! A workload ([`Workload`]: a Kubernetes owner and container, or an image repository and
//! container) learns for `network.learn_for` after it is first seen: every listener and every
//! outbound peer its processes have is recorded, merged across replicas, in one YAML file per
//! workload under `network.baseline_dir`. Before anything is learned the listening ports the
//! image declares are expected. Afterwards each listen, accept, connect and new datagram peer is
//! judged [`Verdict::Expected`] or [`Verdict::Unexpected`].
//!
//! Architecture invariants: loopback is never drift and never learned; nothing is learned after
//! `learning.until` (stored in the file, so a restart of the agent neither restarts nor extends
//! learning); the caller never learns from a drifted process ([`Baselines::learn`] is only called
//! for processes that ran no drifted code); a file that does not parse is an error naming its
//! line and column and is never overwritten.
#![forbid(unsafe_code)]

mod activity;
mod config;
mod model;
mod store;
mod workload;

pub use activity::{activity_of, proto_of};
pub use config::{parse_duration, NetworkConfig, DEFAULT_BASELINE_DIR};
pub use model::{
    canonical, name_matches, Baseline, Learning, Listener, Networks, Outbound, ParseError, Peer,
    Port, Proto, Source, FORMAT_VERSION,
};
pub use store::{write_atomic, BaselineError, Loaded, Store};
pub use workload::{pod_owner, Workload};

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// How an activity compares with its workload's baseline (`net.baseline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The workload is still learning: nothing is unexpected yet.
    Learning,
    Expected,
    Unexpected,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Learning => "learning",
            Verdict::Expected => "expected",
            Verdict::Unexpected => "unexpected",
        }
    }
}

/// One network activity of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity<'a> {
    /// A listener (a TCP listen, a UDP bind to a port, an accept or a datagram answered on it);
    /// `loopback` when it is bound to a loopback address (only the container itself can reach
    /// it).
    Listen {
        proto: Proto,
        port: u16,
        loopback: bool,
    },
    /// An outbound connection or datagram; `name` is the DNS name the container resolved for
    /// `ip`, when it did.
    Connect {
        proto: Proto,
        ip: IpAddr,
        port: u16,
        name: Option<&'a str>,
    },
}

impl Activity<'_> {
    /// `listen` or `connect` (`net.activity`).
    pub fn kind(&self) -> &'static str {
        match self {
            Activity::Listen { .. } => "listen",
            Activity::Connect { .. } => "connect",
        }
    }

    /// Loopback (and the unspecified address, which Linux connects to the loopback) is never
    /// drift.
    pub fn is_loopback(&self) -> bool {
        match self {
            Activity::Listen { loopback, .. } => *loopback,
            Activity::Connect { ip, .. } => {
                let ip = canonical(*ip);
                ip.is_loopback() || ip.is_unspecified()
            }
        }
    }
}

#[derive(Debug)]
struct Slot {
    path: PathBuf,
    baseline: Baseline,
    dirty: bool,
    /// The file's modification time when last read or written.
    mtime: Option<SystemTime>,
    /// The modification time of a version that did not parse (reported once).
    broken: Option<Option<SystemTime>>,
}

/// The baselines of every workload the agent has seen, with their files.
#[derive(Debug)]
pub struct Baselines {
    store: Store,
    learn_for: u64,
    networks: Networks,
    slots: HashMap<String, Slot>,
}

impl Baselines {
    /// Reads every file of the configured directory; the first that does not parse is the
    /// error.
    pub fn open(cfg: &NetworkConfig) -> Result<Baselines, BaselineError> {
        let store = Store::new(&cfg.baseline_dir);
        let mut slots = HashMap::new();
        for l in store.load_all()? {
            slots.insert(
                l.baseline.workload.clone(),
                Slot {
                    path: l.path,
                    baseline: l.baseline,
                    dirty: false,
                    mtime: l.mtime,
                    broken: None,
                },
            );
        }
        Ok(Baselines {
            store,
            learn_for: cfg.learn_for().as_secs(),
            networks: cfg.named_networks(),
            slots,
        })
    }

    /// How many workloads have a baseline.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn networks(&self) -> &Networks {
        &self.networks
    }

    pub fn get(&self, key: &str) -> Option<&Baseline> {
        self.slots.get(key).map(|s| &s.baseline)
    }

    /// The file of a workload's baseline.
    pub fn path(&self, key: &str) -> Option<&Path> {
        self.slots.get(key).map(|s| s.path.as_path())
    }

    /// A container of `w` runs image `digest`, which declares `exposed` listening ports: the
    /// first container of a workload starts its learning; the image's ports are expected.
    pub fn seen(&mut self, w: &Workload, digest: Option<&str>, exposed: &[(Proto, u16)], now: u64) {
        let learn_for = self.learn_for;
        let slot = match self.slots.get_mut(&w.key) {
            Some(s) => s,
            None => {
                let path = self
                    .store
                    .path_for(&w.key, |p| self.slots.values().any(|s| s.path == p));
                tracing::info!(workload = %w.key, file = %path.display(), learn_for_s = learn_for, "workload first seen: learning its network baseline");
                self.slots.entry(w.key.clone()).or_insert(Slot {
                    path,
                    baseline: Baseline::new(&w.key, now, learn_for),
                    dirty: true,
                    mtime: None,
                    broken: None,
                })
            }
        };
        if let Some(d) = digest {
            slot.dirty |= slot.baseline.saw_image(d);
        }
        for (proto, port) in exposed {
            slot.dirty |= slot
                .baseline
                .learn_listen(*proto, *port, Source::Image, now);
        }
    }

    /// How `a` compares with the baseline of workload `key` at `now`.
    pub fn judge(&self, key: &str, a: &Activity<'_>, now: u64) -> Verdict {
        if a.is_loopback() {
            return Verdict::Expected;
        }
        let Some(slot) = self.slots.get(key) else {
            return Verdict::Learning;
        };
        let b = &slot.baseline;
        let expected = match *a {
            Activity::Listen { proto, port, .. } => b.expects_listen(proto, port),
            Activity::Connect {
                proto,
                ip,
                port,
                name,
            } => b.expects_peer(proto, ip, port, name, &self.networks),
        };
        match (expected, b.is_learning(now)) {
            (true, _) => Verdict::Expected,
            (false, true) => Verdict::Learning,
            (false, false) => Verdict::Unexpected,
        }
    }

    /// Records `a` in the baseline of `key` while it learns (never loopback, never after
    /// learning); true when the baseline changed.
    pub fn learn(&mut self, key: &str, a: &Activity<'_>, now: u64) -> bool {
        if a.is_loopback() {
            return false;
        }
        let Some(slot) = self.slots.get_mut(key) else {
            return false;
        };
        if !slot.baseline.is_learning(now) {
            return false;
        }
        let changed = match *a {
            Activity::Listen { proto, port, .. } => {
                slot.baseline
                    .learn_listen(proto, port, Source::Learned, now)
            }
            Activity::Connect {
                proto,
                ip,
                port,
                name,
            } => slot
                .baseline
                .learn_peer(proto, ip, port, name, &self.networks, now),
        };
        if changed {
            tracing::debug!(workload = %key, activity = ?a, "learned");
        }
        slot.dirty |= changed;
        changed
    }

    /// The activity a network event of workload `key` is (see [`activity_of`]), with the DNS
    /// name the container resolved for its remote address, and whether it may be learned.
    pub fn activity<'n>(
        &self,
        key: &str,
        ev: &driftwatch_event::NetEvent,
        name: Option<&'n str>,
    ) -> Option<(Activity<'n>, bool)> {
        let b = self.get(key);
        let (a, learnable) = activity_of(ev, |port| {
            b.is_some_and(|b| b.expects_listen(Proto::Udp, port))
        })?;
        let a = match a {
            Activity::Connect {
                proto, ip, port, ..
            } => Activity::Connect {
                proto,
                ip,
                port,
                name,
            },
            Activity::Listen {
                proto,
                port,
                loopback,
            } => Activity::Listen {
                proto,
                port,
                loopback,
            },
        };
        Some((a, learnable))
    }

    /// Writes every changed baseline; the errors of those that could not be written (they stay
    /// changed and are tried again).
    pub fn flush(&mut self) -> Vec<BaselineError> {
        let mut errors = Vec::new();
        for slot in self.slots.values_mut().filter(|s| s.dirty) {
            if slot.broken.is_some() {
                // The user's file does not parse: never overwrite it with ours.
                continue;
            }
            // Someone edited the file since we read it: take theirs first (reload_changed).
            if Store::mtime(&slot.path) != slot.mtime && slot.mtime.is_some() {
                continue;
            }
            match self.store.write(&slot.path, &slot.baseline) {
                Ok(m) => {
                    slot.mtime = m;
                    slot.dirty = false;
                }
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    /// Reads again the files changed by someone else since they were read or written: an edit
    /// takes effect without a restart. A file that does not parse keeps the version in memory
    /// and is reported (once per version); a removed file is written again from memory.
    pub fn reload_changed(&mut self) -> Vec<BaselineError> {
        let mut errors = Vec::new();
        for slot in self.slots.values_mut() {
            let now = Store::mtime(&slot.path);
            if now == slot.mtime {
                continue;
            }
            if now.is_none() {
                if slot.mtime.is_some() {
                    tracing::warn!(file = %slot.path.display(), "baseline file removed: written again");
                    slot.mtime = None;
                    slot.dirty = true;
                }
                continue;
            }
            if slot.broken == Some(now) {
                continue;
            }
            match Store::load(&slot.path) {
                Ok(l) if l.baseline.workload == slot.baseline.workload => {
                    tracing::info!(file = %slot.path.display(), "baseline file changed: reloaded");
                    slot.baseline = l.baseline;
                    slot.mtime = l.mtime;
                    slot.broken = None;
                    slot.dirty = false;
                }
                Ok(l) => {
                    tracing::error!(file = %slot.path.display(), workload = %l.baseline.workload, expected = %slot.baseline.workload, "baseline file now names another workload: ignored");
                    slot.broken = Some(now);
                }
                Err(e) => {
                    slot.broken = Some(now);
                    errors.push(e);
                }
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests;

//! The `[network]` section of the agent's configuration (this crate owns it).

use crate::model::Networks;
use driftwatch_event::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Where baselines are kept unless configured.
pub const DEFAULT_BASELINE_DIR: &str = "/var/lib/driftwatch/baselines";

/// `[network]`: the baselines of the workloads' network behaviour.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Judge listeners and outbound peers against each workload's baseline, and learn it.
    pub baselines: bool,
    /// How long a workload learns after it is first seen (`"1h"`, `"30m"`, `"0s"`: nothing is
    /// learned, only what the image declares and what the files say is expected).
    pub learn_for: String,
    /// One YAML file per workload.
    pub baseline_dir: PathBuf,
    /// Named networks: name → CIDRs. A learned peer in one is recorded as the network.
    pub networks: BTreeMap<String, Vec<String>>,
    /// With `--enforce`: refuse in the kernel every connection outside the baseline of a
    /// workload that finished learning, and every connection by drifted code.
    pub enforce: bool,
    /// Most addresses whose DNS name is kept per container (names come from the DNS answers
    /// the container received).
    pub dns_cache_max: usize,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            baselines: true,
            learn_for: "1h".into(),
            baseline_dir: PathBuf::from(DEFAULT_BASELINE_DIR),
            networks: BTreeMap::new(),
            enforce: false,
            dns_cache_max: 4096,
        }
    }
}

impl NetworkConfig {
    /// Every problem of the section, as `network.<key>: <what is wrong>`.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = crate::parse_duration(&self.learn_for) {
            p.push(format!("network.learn_for: {e}"));
        }
        if self.baseline_dir.as_os_str().is_empty() {
            p.push("network.baseline_dir: must not be empty".into());
        }
        for (name, cidrs) in &self.networks {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            {
                p.push(format!(
                    "network.networks: {name:?} is not a name (letters, digits, - _ .)"
                ));
            }
            if cidrs.is_empty() {
                p.push(format!("network.networks.{name}: no CIDR"));
            }
            for c in cidrs {
                if IpNet::parse(c).is_none() {
                    p.push(format!(
                        "network.networks.{name}: {c:?} is not an address or a CIDR"
                    ));
                }
            }
        }
        if !(16..=1 << 20).contains(&self.dns_cache_max) {
            p.push(format!(
                "network.dns_cache_max: {} is not between 16 and 1048576",
                self.dns_cache_max
            ));
        }
        p
    }

    /// `learn_for`; zero when it does not parse ([`NetworkConfig::problems`] says so).
    pub fn learn_for(&self) -> Duration {
        crate::parse_duration(&self.learn_for).unwrap_or(Duration::ZERO)
    }

    /// The named networks (CIDRs that do not parse are left out; `problems` reports them).
    pub fn named_networks(&self) -> Networks {
        Networks::new(
            self.networks
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.iter().filter_map(|c| IpNet::parse(c)).collect(),
                    )
                })
                .collect(),
        )
    }
}

pub use driftwatch_event::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_named() {
        let mut c = NetworkConfig::default();
        assert!(c.problems().is_empty());
        assert_eq!(c.learn_for(), Duration::from_secs(3600));
        c.learn_for = "soon".into();
        c.networks.insert("db".into(), vec!["10.0.0.0/33".into()]);
        c.networks
            .insert("bad name".into(), vec!["10.0.0.1".into()]);
        c.dns_cache_max = 1;
        let p = c.problems();
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].starts_with("network.learn_for"));
        assert!(p.iter().any(|s| s.contains("10.0.0.0/33")));
        assert!(p.iter().any(|s| s.contains("\"bad name\"")));
        c.networks.clear();
        c.networks
            .insert("cluster".into(), vec!["10.96.0.0/12".into()]);
        assert_eq!(
            c.named_networks()
                .name_of("10.96.0.1".parse().unwrap_or_else(|e| panic!("{e}"))),
            Some("cluster")
        );
    }
}

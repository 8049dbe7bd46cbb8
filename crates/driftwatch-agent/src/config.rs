//! The agent's configuration: one TOML file, one section per component, unknown keys rejected.
//! Each component owns its section's type (`[output]` is `driftwatch_output::OutputConfig`,
//! `[runtime]` is `driftwatch_runtime::RuntimeConfig`, `[response]` is
//! `driftwatch_respond::ResponseConfig`); this root only gathers them.
//! Validation reports every problem at once.

use driftwatch_baseline::NetworkConfig;
use driftwatch_output::OutputConfig;
use driftwatch_respond::ResponseConfig;
use driftwatch_runtime::RuntimeConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9376";

/// The root configuration (`driftwatch agent --config FILE`). Command-line flags override it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub agent: AgentSection,
    pub output: OutputConfig,
    /// Container discovery (containerd socket, timeouts, the /proc fallback).
    pub runtime: RuntimeConfig,
    pub pipeline: PipelineSection,
    pub rules: RulesSection,
    /// Network baselines (learning, their files, named networks, network enforcement).
    pub network: NetworkConfig,
    /// What is done about drift besides alerts (the approvals file).
    pub response: ResponseConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RulesSection {
    /// Load the built-in `driftwatch_rules.yaml` first.
    pub builtin: bool,
    /// Rule files and directories (`*.yaml`/`*.yml`, sorted), loaded in order after the
    /// built-in rules; later files tune earlier ones.
    pub paths: Vec<PathBuf>,
    /// Skip (with a warning) rules using fields driftwatch does not provide.
    pub skip_unknown: bool,
}

impl Default for RulesSection {
    fn default() -> Self {
        RulesSection {
            builtin: true,
            paths: Vec::new(),
            skip_unknown: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSection {
    /// Address of the health/metrics listener.
    pub listen: String,
    /// Kill drifted executions in containers (in the kernel, before they run).
    pub enforce: bool,
    /// Hostname reported in alerts; the machine's hostname when unset.
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSection {
    /// Capacity of the channel between the ring-buffer reader and the event processor.
    pub event_channel_capacity: usize,
    /// Capacity of the channel between the event processor and the outputs.
    pub alert_channel_capacity: usize,
    /// Most processes kept in the process table.
    pub process_table_max: usize,
    /// Most executable-origin verdicts kept in the cache.
    pub origin_cache_max: usize,
}

impl Default for AgentSection {
    fn default() -> Self {
        AgentSection {
            listen: DEFAULT_LISTEN.to_string(),
            enforce: false,
            hostname: None,
        }
    }
}

impl Default for PipelineSection {
    fn default() -> Self {
        PipelineSection {
            event_channel_capacity: 65_536,
            alert_channel_capacity: 4_096,
            process_table_max: 131_072,
            origin_cache_max: 65_536,
        }
    }
}

/// Configuration problems; `Invalid` carries every validation error found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {}", .problems.join("; "))]
    Invalid { problems: Vec<String> },
}

impl Config {
    /// Read and parse a TOML config file (not yet validated).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parse TOML text; the error is a one-line message with the location.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().replace('\n', " ").trim().to_string())
    }

    /// Check the whole configuration and return every problem found.
    pub fn validate(&self) -> Result<ValidConfig, ConfigError> {
        let mut problems = Vec::new();
        let listen = match self.agent.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(format!(
                    "agent.listen: '{}' is not an address such as 127.0.0.1:9376",
                    self.agent.listen
                ));
                None
            }
        };
        if let Some(h) = &self.agent.hostname {
            if h.is_empty() {
                problems.push("agent.hostname: must not be empty".to_string());
            }
        }
        let p = &self.pipeline;
        for (name, v, min) in [
            (
                "pipeline.event_channel_capacity",
                p.event_channel_capacity,
                16,
            ),
            (
                "pipeline.alert_channel_capacity",
                p.alert_channel_capacity,
                16,
            ),
            ("pipeline.process_table_max", p.process_table_max, 1024),
            ("pipeline.origin_cache_max", p.origin_cache_max, 64),
        ] {
            if v < min {
                problems.push(format!("{name}: {v} is below the minimum {min}"));
            }
        }
        problems.extend(self.output.problems());
        problems.extend(self.network.problems());
        problems.extend(self.response.problems());
        if self.runtime.containerd_socket.as_os_str().is_empty() {
            problems.push("runtime.containerd_socket: must not be empty".to_string());
        }
        match (listen, problems.is_empty()) {
            (Some(listen), true) => Ok(ValidConfig {
                config: self.clone(),
                listen,
            }),
            _ => Err(ConfigError::Invalid { problems }),
        }
    }
}

/// A configuration that passed [`Config::validate`].
#[derive(Debug, Clone)]
pub struct ValidConfig {
    pub config: Config,
    pub listen: SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let v = Config::default().validate().unwrap();
        assert_eq!(v.listen.to_string(), DEFAULT_LISTEN);
        assert!(!v.config.agent.enforce);
        assert!(v.config.output.stdout);
    }

    #[test]
    fn unknown_keys_are_rejected_with_location() {
        let err =
            Config::from_toml("[agent]\nlisten = \"127.0.0.1:1\"\nenforse = true\n").unwrap_err();
        assert!(err.contains("enforse"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn validation_reports_all_problems_at_once() {
        let cfg = Config::from_toml(
            "[agent]\nlisten = \"nowhere\"\n[pipeline]\nevent_channel_capacity = 1\n\
             [output]\nfile = \"/nonexistent-dir-dw/x.jsonl\"\n",
        )
        .unwrap();
        match cfg.validate() {
            Err(ConfigError::Invalid { problems }) => {
                assert_eq!(problems.len(), 3, "{problems:?}");
                assert!(problems[0].starts_with("agent.listen"));
                assert!(problems[1].starts_with("pipeline.event_channel_capacity"));
                assert!(problems[2].starts_with("output.file"));
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn sections_parse() {
        let cfg = Config::from_toml(
            "[agent]\nenforce = true\nhostname = \"node-1\"\n[output]\njson = true\n\
             [runtime]\ncontainerd_socket = \"/tmp/c.sock\"\nconnect_timeout_ms = 500\n",
        )
        .unwrap();
        assert!(cfg.agent.enforce);
        assert_eq!(cfg.agent.hostname.as_deref(), Some("node-1"));
        assert!(cfg.output.json);
        assert_eq!(cfg.runtime.containerd_socket, PathBuf::from("/tmp/c.sock"));
        assert_eq!(cfg.runtime.connect_timeout_ms, 500);
        assert_eq!(cfg.agent.listen, DEFAULT_LISTEN);
    }

    #[test]
    fn http_outputs_parse_as_one_table_or_an_array() {
        let cfg = Config::from_toml(
            "[output.http]\nurl = \"http://127.0.0.1:2801/\"\nminimum_priority = \"warning\"\n\
             spool_dir = \"/tmp/dw-spool-test\"\n[output.http.headers]\nX-Team = \"secops\"\n",
        )
        .expect("one table");
        assert_eq!(cfg.output.http.len(), 1);
        let h = &cfg.output.http[0];
        assert_eq!(h.name, "http");
        assert_eq!(h.url, "http://127.0.0.1:2801/");
        assert_eq!(h.headers["X-Team"], "secops");
        assert!(cfg.validate().is_ok());
        let cfg = Config::from_toml(
            "[[output.http]]\nname = \"sidekick\"\nurl = \"http://127.0.0.1:2801/\"\n\
             [[output.http]]\nname = \"siem\"\nurl = \"https://siem.example/in\"\n\
             format = \"template\"\ntemplate = \"/nonexistent-dw/t.json\"\n",
        )
        .expect("an array");
        let names: Vec<&str> = cfg.output.http.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["sidekick", "siem"]);
        match cfg.validate() {
            Err(ConfigError::Invalid { problems }) => {
                assert_eq!(problems.len(), 1, "{problems:?}");
                assert!(problems[0].starts_with("output.http[1].template: cannot read"));
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        let err = Config::from_toml("[output.http]\nurl = \"http://x/\"\nretries = 3\n")
            .expect_err("unknown key");
        assert!(err.contains("retries"), "{err}");
        let err = Config::from_toml("[output.http]\nname = \"x\"\n").expect_err("no url");
        assert!(err.contains("url"), "{err}");
    }

    #[test]
    fn the_response_section_is_the_responders() {
        let cfg = Config::from_toml("[response]\napprovals = \"/etc/driftwatch/approvals.yaml\"\n")
            .expect("parses");
        assert_eq!(
            cfg.response.approvals.as_deref(),
            Some(Path::new("/etc/driftwatch/approvals.yaml"))
        );
        assert!(cfg.validate().is_ok());
        let err = Config::from_toml("[response]\napproval = \"x\"\n").expect_err("unknown key");
        assert!(err.contains("approval"), "{err}");
    }

    #[test]
    fn the_network_section_is_the_baseline_crates() {
        let cfg = Config::from_toml(
            "[network]\nlearn_for = \"30m\"\nbaseline_dir = \"/tmp/b\"\nenforce = true\n\
             [network.networks]\ncluster = [\"10.96.0.0/12\"]\n",
        )
        .unwrap();
        assert_eq!(cfg.network.learn_for().as_secs(), 1800);
        assert!(cfg.network.enforce);
        assert!(cfg.validate().is_ok());
        let bad = Config::from_toml("[network]\nlearn_for = \"soon\"\n").unwrap();
        match bad.validate() {
            Err(ConfigError::Invalid { problems }) => {
                assert!(problems[0].starts_with("network.learn_for"), "{problems:?}")
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        let err = Config::from_toml("[network]\nlearn_four = \"1h\"\n").unwrap_err();
        assert!(err.contains("learn_four"), "{err}");
    }
}

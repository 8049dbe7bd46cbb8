//! The `[output]` section of the agent's configuration: where alerts go.

use serde::Deserialize;
use std::path::PathBuf;

/// `[output]`: stdout (text or JSON lines) and an optional JSON-lines file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Print alerts on stdout.
    pub stdout: bool,
    /// Print alerts on stdout as JSON lines instead of text lines.
    pub json: bool,
    /// Append alerts as JSON lines to this file (written in batches of whole lines).
    pub file: Option<PathBuf>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            stdout: true,
            json: false,
            file: None,
        }
    }
}

impl OutputConfig {
    /// Every problem of this section, each prefixed with its key (`output.file: …`).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(file) = &self.file {
            if file.as_os_str().is_empty() {
                problems.push("output.file: must not be empty".to_string());
            } else if file.is_dir() {
                problems.push(format!("output.file: {} is a directory", file.display()));
            } else if let Some(parent) = file.parent() {
                if !parent.as_os_str().is_empty() && !parent.is_dir() {
                    problems.push(format!(
                        "output.file: directory {} does not exist",
                        parent.display()
                    ));
                }
            }
        }
        problems
    }
}

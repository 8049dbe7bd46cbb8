//! The `[response]` section of the agent's configuration (this crate owns it).

use serde::Deserialize;
use std::path::PathBuf;

/// `[response]`: what the agent does about drift besides reporting it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    /// The approvals file (`--approvals FILE`): approved drift is neither alerted nor killed.
    pub approvals: Option<PathBuf>,
}

impl ResponseConfig {
    /// Every problem of the section, as `response.<key>: <what is wrong>`.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Some(a) = &self.approvals {
            if a.as_os_str().is_empty() {
                p.push("response.approvals: must not be empty".into());
            }
        }
        p
    }
}

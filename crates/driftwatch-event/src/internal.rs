//! The agent's own alerts (`source: internal`): findings about driftwatch itself, not about a
//! container's events. Their rule names are fixed, so outputs and summaries can recognise them.

use crate::{Alert, Priority};
use serde_json::json;
use std::collections::BTreeMap;

/// The rule name of the agent's alert for a kill that no rule alerted on.
pub const KILLED_RULE: &str = "Drifted Code Killed";

/// The rule name of the sensor-tamper alert.
pub const TAMPER_RULE: &str = "Driftwatch Sensor Tampered";

/// The rule name of the alert for alerts an output dropped (its spool was full).
pub const OUTPUT_DROPPED_RULE: &str = "Driftwatch Output Alerts Dropped";

/// The alert for `dropped` alerts the output `output` lost because its spool was full (its
/// receiver was down too long), found at `now` (ns since the epoch). Written to the other
/// outputs.
pub fn output_dropped_alert(output: &str, dropped: u64, hostname: &str, now: u64) -> Alert {
    let mut fields = BTreeMap::new();
    fields.insert("driftwatch.output".to_string(), json!(output));
    fields.insert("driftwatch.dropped".to_string(), json!(dropped));
    fields.insert("evt.time".to_string(), json!(now));
    Alert {
        time_ns: now,
        rule: OUTPUT_DROPPED_RULE.to_string(),
        priority: Priority::Error,
        output: format!(
            "driftwatch output {output} dropped {dropped} alerts: its spool was full              (output={output} dropped={dropped})"
        ),
        output_fields: fields,
        tags: vec!["driftwatch".to_string(), "output".to_string()],
        source: "internal".to_string(),
        hostname: hostname.to_string(),
    }
}

/// The alert for a change to driftwatch's own sensor that driftwatch did not make, found at
/// `now` (ns since the epoch).
pub fn tamper_alert(finding: &str, hostname: &str, now: u64) -> Alert {
    let mut fields = BTreeMap::new();
    fields.insert("driftwatch.finding".to_string(), json!(finding));
    fields.insert("evt.time".to_string(), json!(now));
    Alert {
        time_ns: now,
        rule: TAMPER_RULE.to_string(),
        priority: Priority::Critical,
        output: format!("driftwatch sensor tampered: {finding}"),
        output_fields: fields,
        tags: vec!["driftwatch".to_string(), "tamper".to_string()],
        source: "internal".to_string(),
        hostname: hostname.to_string(),
    }
}

/// The alert for drifted code the kernel or the agent killed when no rule alerted on it (the
/// rule allow-lists or `user_known_drift_activities` silenced the rule, or the rule is
/// disabled): every kill is reported. `fields` are the agent's context fields (container,
/// process, `drift.*`, `response.action`); `action` is `killed` or `killed-after-start`.
pub fn killed_alert(
    fields: BTreeMap<String, serde_json::Value>,
    container: &str,
    file: &str,
    action: &str,
    hostname: &str,
    time_ns: u64,
) -> Alert {
    Alert {
        time_ns,
        rule: KILLED_RULE.to_string(),
        priority: Priority::Warning,
        output: format!(
            "Drifted code killed (no rule alerted): container={container} file={file} action={action}"
        ),
        output_fields: fields,
        tags: vec![
            "driftwatch".to_string(),
            "drift".to_string(),
            "binary_drift".to_string(),
        ],
        source: "internal".to_string(),
        hostname: hostname.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tamper_alert_is_critical() {
        let a = tamper_alert("dw_config was rewritten", "node", 7);
        assert_eq!(a.rule, TAMPER_RULE);
        assert_eq!(a.priority, Priority::Critical);
        assert_eq!(a.time_ns, 7);
        assert!(a.output.contains("dw_config was rewritten"));
        assert!(a.tags.iter().any(|t| t == "tamper"));
    }

    #[test]
    fn output_dropped_alert_names_the_output_and_count() {
        let a = output_dropped_alert("siem", 12, "node", 5);
        assert_eq!(a.rule, OUTPUT_DROPPED_RULE);
        assert_eq!(a.priority, Priority::Error);
        assert_eq!(a.output_fields["driftwatch.output"], "siem");
        assert_eq!(a.output_fields["driftwatch.dropped"], 12);
        assert!(a.output.contains("dropped 12 alerts"), "{}", a.output);
        assert_eq!(a.source, "internal");
    }

    #[test]
    fn killed_alert_names_the_container_file_and_action() {
        let a = killed_alert(BTreeMap::new(), "web", "/opt/x", "killed", "node", 9);
        assert_eq!(a.rule, KILLED_RULE);
        assert_eq!(a.source, "internal");
        assert!(a.output.contains("container=web"), "{}", a.output);
        assert!(a.output.contains("file=/opt/x"), "{}", a.output);
        assert!(a.output.contains("action=killed"), "{}", a.output);
        assert!(a.tags.iter().any(|t| t == "binary_drift"));
    }
}

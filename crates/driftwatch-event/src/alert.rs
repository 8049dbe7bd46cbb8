//! Alerts, serialised in Falco's JSON shape so Falcosidekick and SIEM pipelines take them as-is.

use crate::format_rfc3339_nanos;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// `strftime`-like description of the time format used in alerts: RFC 3339, UTC, nanoseconds.
pub const RFC3339_NANOS: &str = "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ";

/// Falco's priorities, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Emergency,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Informational,
    Debug,
}

impl Priority {
    /// Title-case name as Falco prints it in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Emergency => "Emergency",
            Priority::Alert => "Alert",
            Priority::Critical => "Critical",
            Priority::Error => "Error",
            Priority::Warning => "Warning",
            Priority::Notice => "Notice",
            Priority::Informational => "Informational",
            Priority::Debug => "Debug",
        }
    }

    /// Parse any spelling Falco accepts (case-insensitive; `info` for Informational).
    pub fn parse(s: &str) -> Option<Priority> {
        Some(match s.to_ascii_lowercase().as_str() {
            "emergency" => Priority::Emergency,
            "alert" => Priority::Alert,
            "critical" => Priority::Critical,
            "error" => Priority::Error,
            "warning" => Priority::Warning,
            "notice" => Priority::Notice,
            "informational" | "info" => Priority::Informational,
            "debug" => Priority::Debug,
            _ => return None,
        })
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Priority {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One alert. `output_fields` values are JSON values; `Value::Null` where a field is unknown.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Nanoseconds since the Unix epoch.
    pub time_ns: u64,
    pub rule: String,
    pub priority: Priority,
    pub output: String,
    pub output_fields: BTreeMap<String, serde_json::Value>,
    pub tags: Vec<String>,
    pub source: String,
    pub hostname: String,
}

impl Alert {
    /// The alert time as RFC 3339 UTC with nanoseconds (`2026-11-29T19:30:00.123456789Z`).
    pub fn time_rfc3339(&self) -> String {
        format_rfc3339_nanos(self.time_ns)
    }

    /// One human-readable line, as Falco prints alerts on stdout.
    pub fn to_text_line(&self) -> String {
        format!("{}: {} {}", self.time_rfc3339(), self.priority, self.output)
    }

    /// An alert in Falco's JSON shape (what [`Alert::to_json_line`] writes, or Falco's own:
    /// `time` RFC 3339, `priority` any of Falco's spellings, `output_fields`, `tags`); the
    /// message says what is wrong.
    pub fn from_json(text: &str) -> Result<Alert, String> {
        #[derive(serde::Deserialize)]
        struct Raw {
            time: String,
            rule: String,
            priority: String,
            #[serde(default)]
            output: String,
            #[serde(default)]
            output_fields: BTreeMap<String, serde_json::Value>,
            #[serde(default)]
            tags: Vec<String>,
            #[serde(default)]
            source: String,
            #[serde(default)]
            hostname: String,
        }
        let r: Raw = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(Alert {
            time_ns: crate::parse_rfc3339_nanos(&r.time).map_err(|e| format!("time: {e}"))?,
            priority: Priority::parse(&r.priority)
                .ok_or_else(|| format!("priority: {:?} is not a Falco priority", r.priority))?,
            rule: r.rule,
            output: r.output,
            output_fields: r.output_fields,
            tags: r.tags,
            source: r.source,
            hostname: r.hostname,
        })
    }

    /// The output field `key` when it is a string.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.output_fields.get(key).and_then(|v| v.as_str())
    }

    /// The container the alert is about (`container.id`); `None` for host activity.
    pub fn container_id(&self) -> Option<&str> {
        self.str_field("container.id")
            .filter(|id| *id != crate::HOST_CONTAINER_ID)
    }

    /// One JSON object on one line (Falco's `json_output` shape).
    pub fn to_json_line(&self) -> String {
        // Serialising a map of strings and JSON values cannot fail.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl Serialize for Alert {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(8))?;
        m.serialize_entry("hostname", &self.hostname)?;
        m.serialize_entry("output", &self.output)?;
        m.serialize_entry("output_fields", &self.output_fields)?;
        m.serialize_entry("priority", &self.priority)?;
        m.serialize_entry("rule", &self.rule)?;
        m.serialize_entry("source", &self.source)?;
        m.serialize_entry("tags", &self.tags)?;
        m.serialize_entry("time", &self.time_rfc3339())?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_parses_falco_spellings() {
        assert_eq!(Priority::parse("WARNING"), Some(Priority::Warning));
        assert_eq!(Priority::parse("info"), Some(Priority::Informational));
        assert_eq!(
            Priority::parse("Informational"),
            Some(Priority::Informational)
        );
        assert_eq!(Priority::parse("bogus"), None);
    }

    #[test]
    fn alert_json_has_falco_keys() {
        let mut fields = BTreeMap::new();
        fields.insert("proc.pid".to_string(), serde_json::json!(42));
        fields.insert("k8s.pod.name".to_string(), serde_json::Value::Null);
        let a = Alert {
            time_ns: 1_795_980_600_123_456_789,
            rule: "r".into(),
            priority: Priority::Warning,
            output: "o".into(),
            output_fields: fields,
            tags: vec!["container".into(), "drift".into()],
            source: "syscall".into(),
            hostname: "h".into(),
        };
        let v: serde_json::Value = serde_json::from_str(&a.to_json_line()).unwrap();
        assert_eq!(v["time"], "2026-11-29T19:30:00.123456789Z");
        assert_eq!(v["priority"], "Warning");
        assert_eq!(v["source"], "syscall");
        assert_eq!(v["output_fields"]["proc.pid"], 42);
        assert!(v["output_fields"]["k8s.pod.name"].is_null());
        assert_eq!(v["tags"], serde_json::json!(["container", "drift"]));
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "hostname",
                "output",
                "output_fields",
                "priority",
                "rule",
                "source",
                "tags",
                "time"
            ]
        );
        // What it writes reads back as the same alert.
        assert_eq!(Alert::from_json(&a.to_json_line()), Ok(a.clone()));
        let e = Alert::from_json(r#"{"time":"yesterday","rule":"r","priority":"Warning"}"#);
        assert!(e.unwrap_err().starts_with("time: "));
        let e = Alert::from_json(r#"{"time":"2026-11-29T19:30:00Z","rule":"r","priority":"loud"}"#);
        assert!(e.unwrap_err().contains("not a Falco priority"));
    }
}

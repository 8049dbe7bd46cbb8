//! Alerts, serialised in Falco's JSON shape so Falcosidekick and SIEM pipelines take them as-is.

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

/// Format nanoseconds since the epoch as RFC 3339 UTC with nanosecond precision.
pub fn format_rfc3339_nanos(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let nanos = ns % 1_000_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, mo, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(format_rfc3339_nanos(0), "1970-01-01T00:00:00.000000000Z");
        // 2000-02-29T12:34:56.000000007Z (leap day)
        assert_eq!(
            format_rfc3339_nanos(951_827_696_000_000_007),
            "2000-02-29T12:34:56.000000007Z"
        );
        // 2026-11-29T19:30:00.123456789Z
        assert_eq!(
            format_rfc3339_nanos(1_795_980_600_123_456_789),
            "2026-11-29T19:30:00.123456789Z"
        );
    }

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
    }
}

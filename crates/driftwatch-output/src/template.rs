//! Alert templates: a JSON document of the user's design, filled from each alert.
//!
//! A template file is a JSON object with two keys:
//!
//! ```json
//! { "severity_map": { "Critical": "High", "Warning": "Medium", "…": "…" },
//!   "document": { "kind": "drift", "title": "${rule}", "at": "${time}",
//!                 "container": "${output_fields[container.id]}",
//!                 "summary": "${rule} in ${output_fields[container.name]}" } }
//! ```
//!
//! `document` is any JSON value; every string in it (object keys excepted) may hold
//! placeholders `${field}`:
//!
//! * `rule`, `priority` (Falco's name), `time` (RFC 3339, nanoseconds), `output`, `hostname`,
//!   `source`, `tags` (an array), `output_fields` (the object), `output_fields[NAME]` (one
//!   field, e.g. `output_fields[proc.aname[2]]`), and `severity`: the alert's priority through
//!   `severity_map` (which must then name all eight Falco priorities; its values are any JSON).
//! * A string that is exactly one placeholder is replaced by the field's JSON value (an array
//!   stays an array, a number a number; a missing output field is `null`). Inside a longer
//!   string the value is written as text: strings as they are, `null` as nothing, arrays of
//!   strings joined with `,`, anything else as compact JSON.
//! * `$${` is a literal `${`.
//!
//! An unknown placeholder, an unclosed `${` or a bad `severity_map` is an error when the file is
//! loaded (with `file:line:column`), never a silent empty value.

use driftwatch_event::{Alert, Priority};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Falco's priorities, most severe first (the keys a `severity_map` must have).
const PRIORITIES: [Priority; 8] = [
    Priority::Emergency,
    Priority::Alert,
    Priority::Critical,
    Priority::Error,
    Priority::Warning,
    Priority::Notice,
    Priority::Informational,
    Priority::Debug,
];

/// A template that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read template {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    At {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// A field of the alert a placeholder names.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Rule,
    Priority,
    Severity,
    Time,
    Output,
    Hostname,
    Source,
    Tags,
    OutputFields,
    OutputValue(String),
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "rule" => Field::Rule,
            "priority" => Field::Priority,
            "severity" => Field::Severity,
            "time" => Field::Time,
            "output" => Field::Output,
            "hostname" => Field::Hostname,
            "source" => Field::Source,
            "tags" => Field::Tags,
            "output_fields" => Field::OutputFields,
            _ => {
                let key = name.strip_prefix("output_fields[")?.strip_suffix(']')?;
                if key.is_empty() {
                    return None;
                }
                Field::OutputValue(key.to_string())
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Field(Field),
}

/// The parsed document.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Literal(Value),
    Whole(Field),
    Text(Vec<Piece>),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// A loaded template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    document: Node,
    severity: BTreeMap<Priority, Value>,
}

impl Template {
    /// Reads and checks a template file.
    pub fn load(path: &Path) -> Result<Template, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|error| TemplateError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Template::parse(&text, path)
    }

    /// Checks a template's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Template, TemplateError> {
        let at = |needle: &str, message: String| match text.find(needle) {
            Some(offset) => {
                let before = &text[..offset];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                TemplateError::At {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message,
                }
            }
            None => TemplateError::Invalid {
                path: path.to_path_buf(),
                message,
            },
        };
        let root: Value = serde_json::from_str(text).map_err(|e| TemplateError::At {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: format!("not JSON: {e}"),
        })?;
        let Value::Object(mut root) = root else {
            return Err(TemplateError::Invalid {
                path: path.to_path_buf(),
                message: "a template is a JSON object with \"document\" (and \"severity_map\")"
                    .to_string(),
            });
        };
        let document = root
            .remove("document")
            .ok_or_else(|| TemplateError::Invalid {
                path: path.to_path_buf(),
                message: "no \"document\": the JSON to send".to_string(),
            })?;
        let severity_map = root.remove("severity_map");
        if let Some(key) = root.keys().next() {
            return Err(at(
                &format!("\"{key}\""),
                format!("unknown key {key:?} (a template has \"document\" and \"severity_map\")"),
            ));
        }
        let mut severity = BTreeMap::new();
        if let Some(map) = severity_map {
            let Value::Object(map) = map else {
                return Err(at(
                    "\"severity_map\"",
                    "severity_map is an object: Falco priority → severity".to_string(),
                ));
            };
            for (k, v) in map {
                let Some(p) = Priority::parse(&k) else {
                    return Err(at(
                        &format!("\"{k}\""),
                        format!("severity_map: {k:?} is not a Falco priority"),
                    ));
                };
                severity.insert(p, v);
            }
            let missing: Vec<&str> = PRIORITIES
                .iter()
                .filter(|p| !severity.contains_key(p))
                .map(|p| p.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(at(
                    "\"severity_map\"",
                    format!("severity_map lacks {}", missing.join(", ")),
                ));
            }
        }
        let mut problem = None;
        let document = node(&document, &mut |placeholder, message| {
            if problem.is_none() {
                problem = Some(at(placeholder, message));
            }
        });
        if let Some(e) = problem {
            return Err(e);
        }
        let t = Template { document, severity };
        if t.severity.is_empty() && t.uses(&Field::Severity) {
            return Err(at(
                "${severity}",
                "${severity} needs a severity_map".to_string(),
            ));
        }
        Ok(t)
    }

    fn uses(&self, f: &Field) -> bool {
        fn walk(n: &Node, f: &Field) -> bool {
            match n {
                Node::Literal(_) => false,
                Node::Whole(g) => g == f,
                Node::Text(pieces) => pieces.iter().any(|p| *p == Piece::Field(f.clone())),
                Node::Array(items) => items.iter().any(|i| walk(i, f)),
                Node::Object(entries) => entries.iter().any(|(_, v)| walk(v, f)),
            }
        }
        walk(&self.document, f)
    }

    /// The document for `alert`.
    pub fn render(&self, alert: &Alert) -> Value {
        self.render_node(&self.document, alert)
    }

    fn render_node(&self, n: &Node, alert: &Alert) -> Value {
        match n {
            Node::Literal(v) => v.clone(),
            Node::Whole(f) => self.value(f, alert),
            Node::Text(pieces) => {
                let mut s = String::new();
                for p in pieces {
                    match p {
                        Piece::Text(t) => s.push_str(t),
                        Piece::Field(f) => write_text(&mut s, &self.value(f, alert)),
                    }
                }
                Value::String(s)
            }
            Node::Array(items) => {
                Value::Array(items.iter().map(|i| self.render_node(i, alert)).collect())
            }
            Node::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), self.render_node(v, alert)))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }

    fn value(&self, f: &Field, a: &Alert) -> Value {
        match f {
            Field::Rule => Value::String(a.rule.clone()),
            Field::Priority => Value::String(a.priority.as_str().to_string()),
            Field::Severity => self
                .severity
                .get(&a.priority)
                .cloned()
                .unwrap_or(Value::Null),
            Field::Time => Value::String(a.time_rfc3339()),
            Field::Output => Value::String(a.output.clone()),
            Field::Hostname => Value::String(a.hostname.clone()),
            Field::Source => Value::String(a.source.clone()),
            Field::Tags => Value::Array(a.tags.iter().cloned().map(Value::String).collect()),
            Field::OutputFields => Value::Object(
                a.output_fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            Field::OutputValue(k) => a.output_fields.get(k).cloned().unwrap_or(Value::Null),
        }
    }
}

/// A value written inside a longer string.
fn write_text(s: &mut String, v: &Value) {
    match v {
        Value::Null => {}
        Value::String(t) => s.push_str(t),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let parts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            s.push_str(&parts.join(","));
        }
        other => {
            let _ = write!(s, "{other}");
        }
    }
}

/// Parses the placeholders of a JSON value; `problem(placeholder text, message)` for each
/// error.
fn node(v: &Value, problem: &mut dyn FnMut(&str, String)) -> Node {
    match v {
        Value::String(s) => string_node(s, problem),
        Value::Array(items) => Node::Array(items.iter().map(|i| node(i, problem)).collect()),
        Value::Object(m) => Node::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), node(v, problem)))
                .collect(),
        ),
        other => Node::Literal(other.clone()),
    }
}

fn string_node(s: &str, problem: &mut dyn FnMut(&str, String)) -> Node {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    let mut has_field = false;
    while let Some(i) = rest.find('$') {
        text.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(r) = after.strip_prefix("$${") {
            text.push_str("${");
            rest = r;
        } else if let Some(r) = after.strip_prefix("${") {
            let Some(end) = r.find('}') else {
                problem(after, format!("unclosed placeholder in {s:?}"));
                return Node::Literal(Value::String(s.to_string()));
            };
            let name = &r[..end];
            match Field::parse(name) {
                Some(f) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Field(f));
                    has_field = true;
                }
                None => problem(
                    &after[..end + 3],
                    format!(
                        "unknown placeholder ${{{name}}} (fields: rule, priority, severity, time, \
                         output, hostname, source, tags, output_fields, output_fields[NAME])"
                    ),
                ),
            }
            rest = &r[end + 1..];
        } else {
            text.push('$');
            rest = &after[1..];
        }
    }
    text.push_str(rest);
    if !has_field {
        return Node::Literal(Value::String(text));
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    match pieces.as_slice() {
        [Piece::Field(f)] => Node::Whole(f.clone()),
        _ => Node::Text(pieces),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert() -> Alert {
        let mut fields = BTreeMap::new();
        fields.insert("container.id".to_string(), json!("c0ffee"));
        fields.insert("proc.pid".to_string(), json!(42));
        fields.insert("proc.aname[2]".to_string(), json!("bash"));
        fields.insert("k8s.pod.name".to_string(), Value::Null);
        Alert {
            time_ns: 1_795_980_600_123_456_789,
            rule: "Drift".into(),
            priority: Priority::Warning,
            output: "drift in c0ffee".into(),
            output_fields: fields,
            tags: vec!["container".into(), "drift".into()],
            source: "syscall".into(),
            hostname: "node-1".into(),
        }
    }

    fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::parse(text, Path::new("t.json"))
    }

    const SEVERITY: &str = r#""severity_map": {"emergency": 1, "alert": 1, "critical": 2,
        "error": 3, "warning": "Medium", "notice": 5, "informational": 6, "debug": 7}"#;

    #[test]
    fn whole_placeholders_keep_the_json_type_and_longer_strings_interpolate() {
        let t = parse(&format!(
            r#"{{ {SEVERITY}, "document": {{
                "rule": "${{rule}}", "pid": "${{output_fields[proc.pid]}}",
                "tags": "${{tags}}", "pod": "${{output_fields[k8s.pod.name]}}",
                "absent": "${{output_fields[nope]}}", "sev": "${{severity}}",
                "text": "${{rule}}/${{priority}} pid=${{output_fields[proc.pid]}} tags=${{tags}} pod=${{output_fields[k8s.pod.name]}}.",
                "anc": "${{output_fields[proc.aname[2]]}}",
                "lit": ["$${{rule}}", 3, true, null, "cost $5"],
                "when": "${{time}}", "all": "${{output_fields}}"
            }} }}"#
        ))
        .unwrap();
        let v = t.render(&alert());
        assert_eq!(v["rule"], "Drift");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["tags"], json!(["container", "drift"]));
        assert!(v["pod"].is_null());
        assert!(v["absent"].is_null());
        assert_eq!(v["sev"], "Medium");
        assert_eq!(v["text"], "Drift/Warning pid=42 tags=container,drift pod=.");
        assert_eq!(v["anc"], "bash");
        assert_eq!(v["lit"], json!(["${rule}", 3, true, null, "cost $5"]));
        assert_eq!(v["when"], "2026-11-29T19:30:00.123456789Z");
        assert_eq!(v["all"]["container.id"], "c0ffee");
    }

    #[test]
    fn an_unknown_placeholder_is_an_error_at_its_line_and_column() {
        let e = parse("{\"document\": {\n  \"a\": \"x ${rulez}\"\n}}").unwrap_err();
        assert_eq!(
            e.to_string().split(" (fields").next().unwrap(),
            "t.json:2:11: unknown placeholder ${rulez}"
        );
        let e = parse("{\"document\": \"${rule\"}").unwrap_err();
        assert!(e.to_string().contains("unclosed"), "{e}");
        let e = parse("{\"document\": \"${output_fields[]}\"}").unwrap_err();
        assert!(e.to_string().contains("unknown placeholder"), "{e}");
    }

    #[test]
    fn bad_files_are_errors() {
        let e = parse("{\"document\": [1,}").unwrap_err();
        assert!(e.to_string().starts_with("t.json:1:"), "{e}");
        assert!(parse("[1]").is_err());
        assert!(parse("{}")
            .unwrap_err()
            .to_string()
            .contains("no \"document\""));
        let e = parse("{\"document\": 1, \"extra\": 2}").unwrap_err();
        assert!(e.to_string().contains("unknown key \"extra\""), "{e}");
        let e = parse("{\"document\": \"${severity}\"}").unwrap_err();
        assert!(e.to_string().contains("needs a severity_map"), "{e}");
        let e = parse("{\"document\": 1, \"severity_map\": {\"warning\": \"M\"}}").unwrap_err();
        assert!(e.to_string().contains("lacks Emergency"), "{e}");
        let e = parse("{\"document\": 1, \"severity_map\": {\"loud\": \"M\"}}").unwrap_err();
        assert!(
            e.to_string().contains("\"loud\" is not a Falco priority"),
            "{e}"
        );
        let e = Template::load(Path::new("/nonexistent-dw.json")).unwrap_err();
        assert!(e.to_string().starts_with("cannot read template"), "{e}");
    }
}

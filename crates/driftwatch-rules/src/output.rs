//! Rule outputs: `%field` formats compiled once, rendered per alert as Falco renders them.
//!
//! Format syntax (libsinsp's event formatter): `%name` or `%name[arg]` is replaced by the
//! field's value; `%20name` pads (or truncates) the value to 20 characters; the field name is
//! the longest run of `[A-Za-z0-9_.]` after `%` (a trailing `.` is punctuation). A missing value
//! prints `<NA>` and is `null` in JSON `output_fields`. `%container.info` is Falco's placeholder
//! for `%container.name (id=%container.id)`. Everything else is literal text.

use crate::eval::{write_value, CompiledRule, EVT_TYPE};
use crate::fields::{lookup, ArgKind, FieldId, FieldType};
use crate::value::{FieldArg, FieldSource, Scratch, Value};
use driftwatch_event::Alert;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// One piece of an output format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Text(String),
    Field {
        id: FieldId,
        arg: FieldArg,
        /// The field as written (`proc.aname[2]`): its key in `output_fields`.
        key: String,
        pad: Option<usize>,
    },
    /// A field driftwatch does not provide (kept when such rules load anyway): `<NA>`/`null`.
    Unknown {
        key: String,
    },
}

/// A compiled output format.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutputFormat {
    toks: Vec<Tok>,
}

/// A problem found compiling an output format, at a byte offset of the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OutputIssue {
    UnknownField { offset: usize, name: String },
    Invalid { offset: usize, message: String },
}

/// Fields Falco appends to `output_fields` of container events (its `-pc`/`-pk` set).
pub const CONTAINER_FIELDS: [&str; 6] = [
    "container.id",
    "container.image.repository",
    "container.image.tag",
    "container.name",
    "k8s.ns.name",
    "k8s.pod.name",
];

/// How alerts are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputOptions {
    /// Add [`CONTAINER_FIELDS`] to `output_fields` when the event is in a container.
    pub append_container_fields: bool,
}

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions {
            append_container_fields: true,
        }
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

impl OutputFormat {
    /// Compiles a format; problems are returned with their byte offsets.
    pub(crate) fn parse(text: &str) -> (OutputFormat, Vec<OutputIssue>) {
        let text_owned;
        let text = if text.contains("%container.info") {
            text_owned = text.replace("%container.info", "%container.name (id=%container.id)");
            text_owned.as_str()
        } else {
            text
        };
        let b = text.as_bytes();
        let mut toks = Vec::new();
        let mut issues = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        let mut lit_start = 0;
        while i < b.len() {
            if b[i] != b'%' {
                i += 1;
                continue;
            }
            lit.push_str(&text[lit_start..i]);
            let start = i;
            i += 1;
            let digits = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let pad = text[digits..i].parse::<usize>().ok();
            let name_start = i;
            while i < b.len() && is_name_byte(b[i]) {
                i += 1;
            }
            while i > name_start && b[i - 1] == b'.' {
                i -= 1;
            }
            let name = &text[name_start..i];
            let mut arg_text = None;
            if !name.is_empty() && b.get(i) == Some(&b'[') {
                if let Some(close) = text[i..].find(']') {
                    arg_text = Some(&text[i + 1..i + close]);
                    i += close + 1;
                }
            }
            if name.is_empty() {
                issues.push(OutputIssue::Invalid {
                    offset: start,
                    message: "invalid output format: '%' is not followed by a field name".into(),
                });
                lit_start = i;
                continue;
            }
            match lookup(name) {
                None => {
                    issues.push(OutputIssue::UnknownField {
                        offset: name_start,
                        name: name.to_string(),
                    });
                    if !lit.is_empty() {
                        toks.push(Tok::Text(std::mem::take(&mut lit)));
                    }
                    toks.push(Tok::Unknown {
                        key: text[name_start..i].to_string(),
                    });
                }
                Some(id) => match field_arg(id, arg_text) {
                    Ok(arg) => {
                        if !lit.is_empty() {
                            toks.push(Tok::Text(std::mem::take(&mut lit)));
                        }
                        toks.push(Tok::Field {
                            id,
                            arg,
                            key: text[name_start..i].to_string(),
                            pad,
                        });
                    }
                    Err(message) => issues.push(OutputIssue::Invalid {
                        offset: name_start,
                        message,
                    }),
                },
            }
            lit_start = i;
        }
        lit.push_str(&text[lit_start..]);
        if !lit.is_empty() {
            toks.push(Tok::Text(lit));
        }
        (OutputFormat { toks }, issues)
    }

    /// The `output_fields` keys this format names, in order, without duplicates.
    pub fn field_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        for t in &self.toks {
            if let Tok::Field { key, .. } | Tok::Unknown { key } = t {
                if !keys.contains(&key.as_str()) {
                    keys.push(key);
                }
            }
        }
        keys
    }

    /// Renders the text and the `output_fields` of one event.
    pub fn render<S: FieldSource + ?Sized>(&self, src: &S) -> (String, BTreeMap<String, Json>) {
        let mut text = Vec::new();
        let mut fields = BTreeMap::new();
        let mut scratch = Scratch::default();
        let mut val = Vec::new();
        for t in &self.toks {
            match t {
                Tok::Text(s) => text.extend_from_slice(s.as_bytes()),
                Tok::Unknown { key } => {
                    text.extend_from_slice(b"<NA>");
                    fields.insert(key.clone(), Json::Null);
                }
                Tok::Field { id, arg, key, pad } => {
                    let v = get(src, *id, arg, &mut scratch);
                    val.clear();
                    match &v {
                        None => val.extend_from_slice(b"<NA>"),
                        Some(Value::U64(n)) if id.def().ty == FieldType::AbsTime => {
                            val.extend_from_slice(time_of_day(*n).as_bytes());
                        }
                        Some(Value::StrList(_) | Value::NumList(_)) => {
                            val.push(b'(');
                            if let Some(v) = &v {
                                write_value(v, &mut val);
                            }
                            val.push(b')');
                        }
                        Some(v) => write_value(v, &mut val),
                    }
                    match pad {
                        Some(w) => {
                            let s = String::from_utf8_lossy(&val);
                            let mut s: String = s.chars().take(*w).collect();
                            while s.chars().count() < *w {
                                s.push(' ');
                            }
                            text.extend_from_slice(s.as_bytes());
                        }
                        None => text.extend_from_slice(&val),
                    }
                    fields.insert(key.clone(), to_json(v.as_ref()));
                }
            }
        }
        (escape_invalid(&text), fields)
    }
}

fn field_arg(id: FieldId, arg: Option<&str>) -> Result<FieldArg, String> {
    let name = id.name();
    match (id.def().arg, arg) {
        (ArgKind::None | ArgKind::IndexOrAll, None) => Ok(FieldArg::None),
        (ArgKind::None, Some(_)) => Err(format!("field '{name}' does not take an argument")),
        (ArgKind::Index, None) => Err(format!("field '{name}' needs an index argument")),
        (ArgKind::Index | ArgKind::IndexOrAll, Some(a)) => a
            .trim()
            .parse()
            .map(FieldArg::Index)
            .map_err(|_| format!("invalid index '{a}' for field '{name}'")),
    }
}

fn get<'a, S: FieldSource + ?Sized>(
    src: &'a S,
    id: FieldId,
    arg: &FieldArg,
    scratch: &'a mut Scratch,
) -> Option<Value<'a>> {
    if id == EVT_TYPE {
        return Some(Value::Str(src.event_type().as_str().as_bytes()));
    }
    scratch.clear();
    src.get(id, arg, scratch)
}

/// Bytes as text without losing any (file names from containers need not be UTF-8).
pub use driftwatch_event::text::lossy as escape_invalid;

fn to_json(v: Option<&Value<'_>>) -> Json {
    match v {
        None => Json::Null,
        Some(Value::Str(s)) => Json::String(escape_invalid(s)),
        Some(Value::U64(n)) => Json::from(*n),
        Some(Value::I64(n)) => Json::from(*n),
        Some(Value::Bool(b)) => Json::Bool(*b),
        Some(Value::StrList(l)) => {
            Json::Array(l.strs().map(|s| Json::String(escape_invalid(s))).collect())
        }
        Some(Value::NumList(l)) => Json::Array(l.nums.iter().map(|n| Json::from(*n)).collect()),
    }
}

/// `hh:mm:ss.nnnnnnnnn` (UTC) of a time in nanoseconds since the epoch, as Falco prints
/// `evt.time`.
#[must_use]
pub fn time_of_day(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:09}",
        day / 3600,
        (day / 60) % 60,
        day % 60,
        ns % 1_000_000_000
    )
}

impl CompiledRule {
    /// Builds the alert for an event this rule matched, in Falco's shape.
    pub fn alert<S: FieldSource + ?Sized>(
        &self,
        src: &S,
        time_ns: u64,
        hostname: &str,
        opts: &OutputOptions,
    ) -> Alert {
        let (output, mut output_fields) = self.output.render(src);
        if opts.append_container_fields {
            let mut scratch = Scratch::default();
            let in_container = lookup("container.id").is_some_and(|id| {
                matches!(get(src, id, &FieldArg::None, &mut scratch),
                    Some(Value::Str(s)) if s != b"host")
            });
            if in_container {
                for name in CONTAINER_FIELDS {
                    if output_fields.contains_key(name) {
                        continue;
                    }
                    if let Some(id) = lookup(name) {
                        let v = get(src, id, &FieldArg::None, &mut scratch);
                        output_fields.insert(name.to_string(), to_json(v.as_ref()));
                    }
                }
            }
        }
        Alert {
            time_ns,
            rule: self.name.clone(),
            priority: self.priority,
            output,
            output_fields,
            tags: self.tags.clone(),
            source: self.source.clone(),
            hostname: hostname.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_bytes_are_escaped_not_lost() {
        assert_eq!(escape_invalid(b"/tmp/a\nb\xff"), "/tmp/a\nb\\xff");
    }

    #[test]
    fn tokens_and_issues() {
        let (f, issues) = OutputFormat::parse("a %proc.name b=%proc.aname[2]. %fd.nope1 %");
        assert_eq!(
            f.field_keys(),
            vec!["proc.name", "proc.aname[2]", "fd.nope1"]
        );
        assert_eq!(
            issues,
            vec![
                OutputIssue::UnknownField {
                    offset: 32,
                    name: "fd.nope1".into()
                },
                OutputIssue::Invalid {
                    offset: 41,
                    message: "invalid output format: '%' is not followed by a field name".into()
                }
            ]
        );
        assert_eq!(
            time_of_day(86_400 * 1_000_000_000 + 3_723_000_000_005),
            "01:02:03.000000005"
        );
    }
}

//! A YAML stream as a small tree whose every node knows its line and column, built from
//! `saphyr-parser` events (serde_yaml gives no positions for values).
//!
//! Bounds for hostile input: nesting deeper than [`MAX_DEPTH`] and more than [`MAX_NODES`] nodes
//! in one file (aliases count every node they copy, so alias "bombs" stop early) are errors, as
//! a syntax error is.

use saphyr_parser::{Event, Marker, Parser, ScalarStyle};
use std::collections::HashMap;

/// Deepest nesting accepted (a CronJob's container fields sit at depth 12).
pub const MAX_DEPTH: usize = 100;
/// Most nodes one file may hold, aliases expanded.
pub const MAX_NODES: usize = 5_000_000;

/// A 1-based line and column (columns in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    fn of(m: &Marker) -> Pos {
        Pos {
            line: u32::try_from(m.line()).unwrap_or(u32::MAX),
            column: u32::try_from(m.col()).unwrap_or(u32::MAX).saturating_add(1),
        }
    }
}

/// What a node holds.
#[derive(Debug, Clone)]
pub enum Value {
    /// A scalar's text; `plain` when it was written without quotes or block indicators (only
    /// plain scalars can be booleans, numbers or null).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A node and where it starts and ends in its file.
#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    pub start: Pos,
    pub end: Pos,
    /// Flow style (`[…]`, `{…}`) for collections.
    pub flow: bool,
}

impl Node {
    pub fn str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// A plain scalar that YAML (1.1, as Kubernetes' decoder reads it) takes for `true`.
    pub fn is_true(&self) -> bool {
        self.bool() == Some(true)
    }

    pub fn bool(&self) -> Option<bool> {
        match &self.value {
            Value::Scalar { text, plain: true } => match text.as_str() {
                "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y"
                | "Y" => Some(true),
                "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n"
                | "N" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn int(&self) -> Option<i64> {
        match &self.value {
            Value::Scalar { text, plain: true } => text.trim_start_matches('+').parse().ok(),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn seq(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    pub fn map(&self) -> &[(Node, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    pub fn is_map(&self) -> bool {
        matches!(self.value, Value::Map(_))
    }

    /// The entry (key node, value node) whose key is `key`; of duplicate keys the last, as
    /// Kubernetes' YAML decoder takes it.
    pub fn entry(&self, key: &str) -> Option<&(Node, Node)> {
        self.map().iter().rev().find(|(k, _)| k.str() == Some(key))
    }

    /// Where the node's text ends: a block collection's own end marker is the start of the
    /// next token, so its end is its last child's.
    pub fn text_end(&self) -> Pos {
        if self.flow {
            return self.end;
        }
        match &self.value {
            Value::Scalar { .. } => self.end,
            Value::Seq(items) => items.last().map_or(self.end, Node::text_end),
            Value::Map(entries) => entries.last().map_or(self.end, |(_, v)| v.text_end()),
        }
    }

    /// The value at `key`, unless it is missing or null.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v).filter(|v| !v.is_null())
    }

    /// The value at a path of keys.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |n, k| n.get(k))
    }
}

/// Why a text is not YAML, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos_line}:{pos_column}: {message}", pos_line = pos.line, pos_column = pos.column)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

fn err(pos: Pos, message: impl Into<String>) -> YamlError {
    YamlError {
        pos,
        message: message.into(),
    }
}

struct Open {
    node: Node,
    anchor: usize,
    /// A mapping's key waiting for its value.
    key: Option<Node>,
}

fn size(node: &Node) -> usize {
    match &node.value {
        Value::Scalar { .. } => 1,
        Value::Seq(items) => 1 + items.iter().map(size).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| size(k) + size(v))
                .sum::<usize>()
        }
    }
}

/// Every document of a YAML stream, in order (an empty document is a null scalar).
pub fn parse_stream(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut docs = Vec::new();
    let mut open: Vec<Open> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut budget = MAX_NODES;
    let mut last = Pos { line: 1, column: 1 };
    while let Some(ev) = parser.next_event() {
        let (ev, span) = ev.map_err(|e| err(Pos::of(e.marker()), e.info()))?;
        let start = Pos::of(&span.start);
        let end = Pos::of(&span.end);
        last = start;
        let done = match ev {
            Event::Scalar(text, style, anchor, _) => Some((
                Node {
                    value: Value::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                    start,
                    end,
                    flow: false,
                },
                anchor,
            )),
            Event::Alias(id) => {
                let target = anchors
                    .get(&id)
                    .ok_or_else(|| err(start, "alias of an unknown anchor"))?;
                let n = size(target);
                budget = budget
                    .checked_sub(n)
                    .ok_or_else(|| err(start, too_many()))?;
                let mut node = target.clone();
                node.start = start;
                node.end = end;
                Some((node, 0))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if open.len() >= MAX_DEPTH {
                    return Err(err(
                        start,
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let flow = line_starts
                    .get((start.line as usize).saturating_sub(1))
                    .and_then(|&at| text.get(at..))
                    .and_then(|l| l.chars().nth((start.column as usize).saturating_sub(1)))
                    .is_some_and(|c| c == '[' || c == '{');
                let value = if matches!(ev, Event::SequenceStart(..)) {
                    Value::Seq(Vec::new())
                } else {
                    Value::Map(Vec::new())
                };
                open.push(Open {
                    node: Node {
                        value,
                        start,
                        end: start,
                        flow,
                    },
                    anchor,
                    key: None,
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => open.pop().map(|mut o| {
                o.node.end = end;
                (o.node, o.anchor)
            }),
            Event::DocumentEnd => {
                anchors.clear();
                None
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) | Event::Nothing => {
                None
            }
        };
        let Some((node, anchor)) = done else {
            continue;
        };
        budget = budget
            .checked_sub(1)
            .ok_or_else(|| err(start, too_many()))?;
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match open.last_mut() {
            None => docs.push(node),
            Some(o) => match &mut o.node.value {
                Value::Seq(items) => items.push(node),
                Value::Map(entries) => match o.key.take() {
                    None => o.key = Some(node),
                    Some(k) => entries.push((k, node)),
                },
                Value::Scalar { .. } => {}
            },
        }
    }
    if !open.is_empty() {
        return Err(err(last, "unexpected end of the YAML stream"));
    }
    Ok(docs)
}

fn too_many() -> String {
    format!("more than {MAX_NODES} nodes (aliases expanded)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let docs = parse_stream("a: 1\nb:\n  c: [x, {d: e}]\n---\nf: g\n").expect("parses");
        assert_eq!(docs.len(), 2);
        let c = docs[0].at(&["b", "c"]).expect("c");
        assert_eq!(c.start, Pos { line: 3, column: 6 });
        assert!(c.flow);
        assert_eq!(c.seq()[1].get("d").and_then(Node::str), Some("e"));
        let f = docs[1].get("f").expect("f");
        assert_eq!((f.start.line, f.start.column), (5, 4));
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = parse_stream("a: 1\nb: [1, 2\n").expect_err("unclosed");
        assert!(e.pos.line >= 2, "{e}");
        let e = parse_stream("a: 1\n  b: 2\n").expect_err("bad indentation");
        assert_eq!(e.pos.line, 2, "{e}");
    }

    #[test]
    fn depth_and_alias_bombs_are_refused() {
        let deep = "[".repeat(MAX_DEPTH + 1);
        let e = parse_stream(&deep).expect_err("deep");
        assert!(e.message.contains("nesting"), "{e}");
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                vec![format!("*a{p}"); 10].join(", ")
            ));
        }
        let e = parse_stream(&bomb).expect_err("bomb");
        assert!(e.message.contains("nodes"), "{e}");
    }

    #[test]
    fn yaml_1_1_booleans_as_kubernetes_reads_them() {
        let d = parse_stream("a: yes\nb: \"true\"\nc: False\nd: 0\n").expect("parses");
        let d = &d[0];
        assert_eq!(d.get("a").and_then(Node::bool), Some(true));
        assert_eq!(d.get("b").and_then(Node::bool), None);
        assert_eq!(d.get("c").and_then(Node::bool), Some(false));
        assert_eq!(d.get("d").and_then(Node::int), Some(0));
    }
}

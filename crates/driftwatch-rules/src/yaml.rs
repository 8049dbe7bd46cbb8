//! A small YAML document tree with positions, built from `saphyr-parser` events.
//!
//! Bounds: documents nest at most [`MAX_DEPTH`] levels and hold at most [`MAX_NODES`] nodes
//! (counting nodes copied by aliases, so alias "bombs" stop early). Past either the file is
//! rejected with one error, as a YAML syntax error is.

use crate::source_loc::{SourceLoc, SourceText};
use saphyr_parser::{Event, Marker, Parser, ScalarStyle};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// Deepest nesting of sequences and mappings accepted (Falco's files use 5).
pub const MAX_DEPTH: usize = 64;
/// Most nodes one file may hold, aliases expanded.
pub const MAX_NODES: usize = 2_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: u32,
    /// 0-based, in characters, as `saphyr-parser` reports it.
    pub col0: u32,
}

impl Pos {
    fn from_marker(m: &Marker) -> Pos {
        Pos {
            line: u32::try_from(m.line()).unwrap_or(u32::MAX),
            col0: u32::try_from(m.col()).unwrap_or(u32::MAX),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Scalar { value: String, style: ScalarStyle },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub start: Pos,
    pub end: Pos,
}

impl Node {
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// A YAML null: an empty plain scalar, `~` or `null` in its core-schema spellings.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, style: ScalarStyle::Plain }
            if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value of the first entry whose key is the scalar `key` (as yaml-cpp's `node[key]`).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    pub fn entry(&self, key: &str) -> Option<&(Node, Node)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_scalar() == Some(key))
    }
}

/// One rule file's text, for positions.
///
/// The text may be a copy with blanks inserted at the start of some lines (see
/// [`parse`]); positions are reported in the original file's columns.
#[derive(Debug)]
pub(crate) struct YamlSource<'a> {
    pub file: Arc<str>,
    text: Cow<'a, str>,
    line_starts: Vec<usize>,
    /// Line → blanks inserted at its start.
    pads: HashMap<u32, u32>,
}

impl<'a> YamlSource<'a> {
    pub fn new(file: Arc<str>, text: &'a str) -> YamlSource<'a> {
        let mut src = YamlSource {
            file,
            text: Cow::Borrowed(text),
            line_starts: Vec::new(),
            pads: HashMap::new(),
        };
        src.index_lines();
        src
    }

    fn index_lines(&mut self) {
        self.line_starts = vec![0];
        self.line_starts
            .extend(self.text.match_indices('\n').map(|(i, _)| i + 1));
    }

    fn pad_line(&mut self, line: u32) {
        let Some(&at) = self.line_starts.get((line as usize).saturating_sub(1)) else {
            return;
        };
        self.text.to_mut().insert(at, ' ');
        *self.pads.entry(line).or_insert(0) += 1;
        self.index_lines();
    }

    /// A (line, 1-based column) of the parsed text in the original file's columns.
    fn unpad(&self, line: u32, col: u32) -> (u32, u32) {
        let pad = self.pads.get(&line).copied().unwrap_or(0);
        (line, col.saturating_sub(pad).max(1))
    }

    pub fn loc(&self, pos: Pos) -> SourceLoc {
        let (line, col) = self.unpad(pos.line, pos.col0.saturating_add(1));
        SourceLoc::new(self.file.clone(), line, col)
    }

    /// Byte offset of a position (clamped to the text).
    fn byte_of(&self, pos: Pos) -> usize {
        let line_idx = (pos.line as usize).saturating_sub(1);
        let Some(&start) = self.line_starts.get(line_idx) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        rest.char_indices()
            .nth(pos.col0 as usize)
            .map_or(self.text.len(), |(i, _)| start + i)
    }

    /// The scalar's text with a map back to the file (see [`SourceText`] for the method).
    pub fn source_text(&self, node: &Node) -> SourceText {
        let NodeKind::Scalar { value, style } = &node.kind else {
            return SourceText::new(String::new(), self.loc(node.start));
        };
        let from = self.byte_of(node.start);
        let to = self.byte_of(node.end).max(from);
        // Source characters of the scalar with their 1-based line and column.
        let mut src: Vec<(char, u32, u32)> = Vec::new();
        let (mut line, mut col) = (node.start.line, node.start.col0.saturating_add(1));
        for c in self.text[from..to].chars() {
            src.push((c, line, col));
            if c == '\n' {
                line = line.saturating_add(1);
                col = 1;
            } else {
                col = col.saturating_add(1);
            }
        }
        let end_pos = (line, col);
        let mut i = 0;
        match style {
            ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
                if matches!(src.first(), Some(('\'' | '"', _, _))) {
                    i = 1;
                }
            }
            // Block scalars' spans start at their content, after the header line.
            ScalarStyle::Literal | ScalarStyle::Folded | ScalarStyle::Plain => {}
        }
        let at = |i: usize| {
            let (l, c) = src.get(i).map_or(end_pos, |&(_, l, c)| (l, c));
            self.unpad(l, c)
        };
        let mut map: Vec<(usize, u32, u32)> = Vec::new();
        let mut last: Option<(u32, u32)> = None;
        let mut push = |b: usize, (l, c): (u32, u32), map: &mut Vec<(usize, u32, u32)>| {
            let contiguous = last.is_some_and(|(ll, lc)| ll == l && lc.saturating_add(1) == c);
            if !contiguous {
                map.push((b, l, c));
            }
            last = Some((l, c));
        };
        for (b, c) in value.char_indices() {
            if *style == ScalarStyle::DoubleQuoted {
                // Escaped line breaks disappear; other escapes yield one character.
                while src.get(i).is_some_and(|s| s.0 == '\\')
                    && src.get(i + 1).is_some_and(|s| s.0 == '\n' || s.0 == '\r')
                {
                    i += 2;
                    while src
                        .get(i)
                        .is_some_and(|s| matches!(s.0, ' ' | '\t' | '\n' | '\r'))
                    {
                        i += 1;
                    }
                }
                if src.get(i).is_some_and(|s| s.0 == '\\') {
                    let len = match src.get(i + 1).map(|s| s.0) {
                        Some('x') => 4,
                        Some('u') => 6,
                        Some('U') => 10,
                        _ => 2,
                    };
                    push(b, at(i), &mut map);
                    i += len;
                    continue;
                }
            }
            if c.is_whitespace() {
                push(b, at(i), &mut map);
                if src.get(i).is_some_and(|s| s.0 == c) {
                    i += 1;
                }
                continue;
            }
            if *style == ScalarStyle::SingleQuoted
                && c == '\''
                && src.get(i).is_some_and(|s| s.0 == '\'')
                && src.get(i + 1).is_some_and(|s| s.0 == '\'')
            {
                push(b, at(i), &mut map);
                i += 2;
                continue;
            }
            match src[i.min(src.len())..].iter().position(|s| s.0 == c) {
                Some(j) => {
                    push(b, at(i + j), &mut map);
                    i += j + 1;
                }
                None => push(b, at(i), &mut map),
            }
        }
        if map.is_empty() {
            let (l, c) = at(i);
            map.push((0, l, c));
        }
        SourceText::from_mapped(value.clone(), self.file.clone(), map)
    }
}

/// Why a file could not be parsed as YAML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct YamlError {
    pub pos: Pos,
    pub message: String,
    /// The error is `saphyr-parser`'s strict check of indentation inside a flow collection
    /// (see [`parse_documents`]).
    pub flow_indentation: bool,
}

enum Frame {
    Seq {
        items: Vec<Node>,
        start: Pos,
        anchor: usize,
        flow: bool,
    },
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        start: Pos,
        anchor: usize,
        flow: bool,
    },
}

fn count_nodes(node: &Node) -> usize {
    let mut n = 0;
    let mut stack = vec![node];
    while let Some(x) = stack.pop() {
        n += 1;
        match &x.kind {
            NodeKind::Scalar { .. } => {}
            NodeKind::Seq(items) => stack.extend(items.iter()),
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    stack.push(k);
                    stack.push(v);
                }
            }
        }
    }
    n
}

/// Parses every document of `src`. A document that is empty (`---` alone) is a null scalar.
fn parse_once(src: &YamlSource<'_>) -> Result<Vec<Node>, YamlError> {
    let text: &str = &src.text;
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut budget = MAX_NODES;
    let mut last_pos = Pos { line: 1, col0: 0 };
    while let Some(ev) = parser.next_event() {
        let (ev, span) = ev.map_err(|e| YamlError {
            pos: Pos::from_marker(e.marker()),
            message: e.info().to_string(),
            flow_indentation: e.info() == "invalid indentation"
                && matches!(
                    stack.last(),
                    Some(Frame::Seq { flow: true, .. } | Frame::Map { flow: true, .. })
                ),
        })?;
        let start = Pos::from_marker(&span.start);
        let end = Pos::from_marker(&span.end);
        last_pos = start;
        let complete: Option<(Node, usize)> = match ev {
            Event::Scalar(value, style, anchor, _) => Some((
                Node {
                    kind: NodeKind::Scalar {
                        value: value.into_owned(),
                        style,
                    },
                    start,
                    end,
                },
                anchor,
            )),
            Event::Alias(id) => {
                let Some(target) = anchors.get(&id) else {
                    return Err(YamlError {
                        pos: start,
                        message: "unknown anchor".into(),
                        flow_indentation: false,
                    });
                };
                let n = count_nodes(target);
                if n > budget {
                    return Err(too_large(start));
                }
                budget -= n;
                let mut node = target.clone();
                node.start = start;
                node.end = end;
                Some((node, 0))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError {
                        pos: start,
                        message: format!("yaml nesting deeper than {MAX_DEPTH} levels"),
                        flow_indentation: false,
                    });
                }
                let first = text
                    .get(src.byte_of(start)..)
                    .and_then(|t| t.chars().next());
                let flow = matches!(first, Some('[' | '{'));
                stack.push(if matches!(ev, Event::SequenceStart(..)) {
                    Frame::Seq {
                        items: Vec::new(),
                        start,
                        anchor,
                        flow,
                    }
                } else {
                    Frame::Map {
                        entries: Vec::new(),
                        key: None,
                        start,
                        anchor,
                        flow,
                    }
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq {
                    items,
                    start,
                    anchor,
                    ..
                }) => Some((
                    Node {
                        kind: NodeKind::Seq(items),
                        start,
                        end,
                    },
                    anchor,
                )),
                Some(Frame::Map {
                    entries,
                    start,
                    anchor,
                    ..
                }) => Some((
                    Node {
                        kind: NodeKind::Map(entries),
                        start,
                        end,
                    },
                    anchor,
                )),
                None => None,
            },
            Event::DocumentEnd => {
                anchors.clear();
                None
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) | Event::Nothing => {
                None
            }
        };
        let Some((node, anchor)) = complete else {
            continue;
        };
        budget = budget.checked_sub(1).ok_or_else(|| too_large(start))?;
        if anchor != 0 {
            let n = count_nodes(&node);
            budget = budget.checked_sub(n).ok_or_else(|| too_large(start))?;
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => docs.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
    if !stack.is_empty() {
        return Err(YamlError {
            pos: last_pos,
            message: "unexpected end of yaml stream".into(),
            flow_indentation: false,
        });
    }
    Ok(docs)
}

/// Most lines [`parse`] re-indents in one file.
const MAX_FLOW_PADS: usize = 4096;

/// Parses every document of a rule file.
///
/// `saphyr-parser` follows the YAML spec strictly where a flow collection inside a block
/// mapping continues on a line indented no deeper than the mapping's keys, as Falco's own
/// files do (`items: [` … a closing `]` under `items`). yaml-cpp (Falco) and libyaml accept
/// that, so do we: when the parser reports that error inside a flow collection, the line is
/// indented by one blank and the text parsed again. Leading blanks carry no meaning inside a
/// flow collection, so this accepts no more than yaml-cpp does; positions stay those of the
/// original text. Retries are bounded by [`MAX_FLOW_PADS`] and by the file size.
pub(crate) fn parse<'a>(
    file: Arc<str>,
    text: &'a str,
) -> (YamlSource<'a>, Result<Vec<Node>, YamlError>) {
    let mut src = YamlSource::new(file, text);
    let max_retries = MAX_FLOW_PADS.min((256 * 1024 * 1024 / text.len().max(1)).max(16));
    let mut retries = 0;
    loop {
        match parse_once(&src) {
            Err(e) if e.flow_indentation && retries < max_retries => {
                src.pad_line(e.pos.line);
                retries += 1;
            }
            result => return (src, result),
        }
    }
}

fn too_large(pos: Pos) -> YamlError {
    YamlError {
        pos,
        message: format!("yaml holds more than {MAX_NODES} nodes (aliases expanded)"),
        flow_indentation: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_scalar_text(yaml: &str, key: &str) -> SourceText {
        let (src, docs) = parse(Arc::from("t.yaml"), yaml);
        let docs = docs.expect("yaml parses");
        let item = &docs[0].as_seq().expect("seq")[0];
        src.source_text(item.get(key).expect("key"))
    }

    fn loc_of(t: &SourceText, needle: &str) -> String {
        let off = t.value.find(needle).expect("needle in text");
        t.loc_of_offset(off).to_string()
    }

    #[test]
    fn plain_scalar_positions() {
        let t = first_scalar_text("- macro: m\n  condition: a and bb\n", "condition");
        assert_eq!(t.loc.to_string(), "t.yaml:2:14");
        assert_eq!(loc_of(&t, "bb"), "t.yaml:2:20");
    }

    #[test]
    fn multiline_plain_scalar_positions() {
        let y = "- macro: m\n  condition: a and\n    bb or\n\n    ccc\n";
        let t = first_scalar_text(y, "condition");
        assert_eq!(t.value, "a and bb or\nccc");
        assert_eq!(loc_of(&t, "bb"), "t.yaml:3:5");
        assert_eq!(loc_of(&t, "ccc"), "t.yaml:5:5");
    }

    #[test]
    fn folded_block_positions() {
        let y = "- rule: r\n  condition: >\n    evt.type = open\n    and proc.name = x\n";
        let t = first_scalar_text(y, "condition");
        assert_eq!(t.value, "evt.type = open and proc.name = x\n");
        assert_eq!(t.loc.to_string(), "t.yaml:3:5");
        assert_eq!(loc_of(&t, "and"), "t.yaml:4:5");
        assert_eq!(loc_of(&t, "x"), "t.yaml:4:21");
    }

    #[test]
    fn literal_block_positions() {
        let y = "- rule: r\n  condition: |-\n      a\n      or b\n";
        let t = first_scalar_text(y, "condition");
        assert_eq!(t.value, "a\nor b");
        assert_eq!(loc_of(&t, "or"), "t.yaml:4:7");
        assert_eq!(loc_of(&t, "b"), "t.yaml:4:10");
    }

    #[test]
    fn quoted_scalar_positions() {
        let y = "- rule: r\n  condition: \"a = \\\"x y\\\" and b\"\n";
        let t = first_scalar_text(y, "condition");
        assert_eq!(t.value, "a = \"x y\" and b");
        assert_eq!(t.loc.to_string(), "t.yaml:2:15");
        assert_eq!(loc_of(&t, "and"), "t.yaml:2:27");
        let y = "- rule: r\n  condition: 'it''s or b'\n";
        let t = first_scalar_text(y, "condition");
        assert_eq!(t.value, "it's or b");
        assert_eq!(loc_of(&t, "or"), "t.yaml:2:21");
    }

    #[test]
    fn depth_and_alias_bounds() {
        let deep = "[".repeat(MAX_DEPTH + 5);
        assert!(parse(Arc::from("t"), &deep).1.is_err());
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("b{}", i - 1)
            };
            bomb.push_str(&format!(
                "b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let err = parse(Arc::from("t"), &bomb).1.expect_err("bomb is refused");
        assert!(err.message.contains("nodes"), "{}", err.message);
    }
}

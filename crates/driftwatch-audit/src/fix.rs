//! Fixes: an RFC 6902 JSON patch into the object, and the same change as text edits of the file
//! (for SARIF `fixes`), built from the positioned tree.

use crate::yaml::{Node, Pos, Value};
use serde::Serialize;
use serde_json::Value as Json;

/// One RFC 6902 operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchOp {
    pub op: &'static str,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Json>,
}

/// Replace the text from `start` to `end` (exclusive) with `text`; `start == end` inserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextEdit {
    pub start: Pos,
    pub end: Pos,
    pub text: String,
}

/// A concrete fix: what to do, as a patch of the object and as edits of the file. `edits` is
/// empty when the change cannot be written into the text safely (flow collections, empty
/// values); the patch is always there.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Fix {
    pub description: String,
    pub patch: Vec<PatchOp>,
    #[serde(skip)]
    pub edits: Vec<TextEdit>,
    /// Every edit of the patch has a text edit.
    #[serde(skip)]
    pub complete_edits: bool,
}

/// A JSON pointer's reference token (`~` → `~0`, `/` → `~1`).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Builds a fix for one object: ops relative to the object's root.
#[derive(Debug)]
pub struct FixBuilder {
    fix: Fix,
}

fn json_text(v: &Json) -> String {
    // JSON is YAML flow syntax.
    v.to_string()
}

fn nest(keys: &[&str], value: Json) -> Json {
    keys.iter().rev().fold(value, |v, k| {
        let mut m = serde_json::Map::new();
        m.insert((*k).to_string(), v);
        Json::Object(m)
    })
}

fn pad(n: u32) -> String {
    " ".repeat(n.saturating_sub(1) as usize)
}

impl FixBuilder {
    pub fn new(description: impl Into<String>) -> FixBuilder {
        FixBuilder {
            fix: Fix {
                description: description.into(),
                complete_edits: true,
                ..Fix::default()
            },
        }
    }

    fn push(&mut self, op: PatchOp, edit: Option<TextEdit>) {
        self.fix.patch.push(op);
        match edit {
            Some(e) => self.fix.edits.push(e),
            None => self.fix.complete_edits = false,
        }
    }

    /// Sets `keys` under `base` (at pointer `ptr`) to `value`, creating missing mappings.
    pub fn set(mut self, base: &Node, ptr: &str, keys: &[&str], value: Json) -> FixBuilder {
        let mut node = base;
        let mut path = ptr.to_string();
        for (i, k) in keys.iter().enumerate() {
            path.push('/');
            path.push_str(&escape(k));
            let (op, value, edit) = match node.entry(k) {
                Some((_, v)) if !v.is_null() && (i + 1 == keys.len() || v.is_map()) => {
                    node = v;
                    continue;
                }
                // Present but null or not a mapping: replace it whole.
                Some((_, v)) => {
                    let value = nest(&keys[i + 1..], value);
                    let edit = (v.start != v.end).then(|| TextEdit {
                        start: v.start,
                        end: v.text_end(),
                        text: json_text(&value),
                    });
                    ("replace", value, edit)
                }
                None => {
                    let value = nest(&keys[i + 1..], value);
                    let edit = insert_key(node, k, &value);
                    ("add", value, edit)
                }
            };
            self.push(
                PatchOp {
                    op,
                    path,
                    value: Some(value),
                },
                edit,
            );
            return self;
        }
        let edit = TextEdit {
            start: node.start,
            end: node.text_end(),
            text: json_text(&value),
        };
        self.push(
            PatchOp {
                op: "replace",
                path,
                value: Some(value),
            },
            Some(edit),
        );
        self
    }

    /// Sets every key of `entries` in the mapping at `keys` under `base`: one operation per key
    /// when the mapping exists, else one that adds the mapping with all of them.
    pub fn set_all(
        mut self,
        base: &Node,
        ptr: &str,
        keys: &[&str],
        entries: serde_json::Map<String, Json>,
    ) -> FixBuilder {
        if base.at(keys).is_some_and(Node::is_map) {
            for (k, v) in entries {
                let mut path = keys.to_vec();
                path.push(&k);
                self = self.set(base, ptr, &path, v);
            }
            self
        } else {
            self.set(base, ptr, keys, Json::Object(entries))
        }
    }

    /// Removes the entry `key` of the mapping `map` (at pointer `ptr`).
    pub fn remove_key(mut self, map: &Node, ptr: &str, key: &str) -> FixBuilder {
        let Some((k, v)) = map.entry(key) else {
            return self;
        };
        let edit = (!map.flow).then(|| TextEdit {
            start: k.start,
            end: v.text_end().max(k.end),
            text: String::new(),
        });
        self.push(
            PatchOp {
                op: "remove",
                path: format!("{ptr}/{}", escape(key)),
                value: None,
            },
            edit,
        );
        self
    }

    /// Removes item `index` of the sequence `seq` (at pointer `ptr`). Call with indices in
    /// descending order when removing several.
    pub fn remove_item(mut self, seq: &Node, ptr: &str, index: usize) -> FixBuilder {
        let Some(item) = seq.seq().get(index) else {
            return self;
        };
        let edit = (!seq.flow && item.start.column > 2).then(|| TextEdit {
            start: Pos {
                line: item.start.line,
                column: item.start.column - 2,
            },
            end: item.text_end(),
            text: String::new(),
        });
        self.push(
            PatchOp {
                op: "remove",
                path: format!("{ptr}/{index}"),
                value: None,
            },
            edit,
        );
        self
    }

    /// Appends `value` to the sequence at `keys` under `base`, creating it when missing.
    pub fn append(self, base: &Node, ptr: &str, keys: &[&str], value: Json) -> FixBuilder {
        match base.at(keys) {
            Some(seq) if matches!(seq.value, Value::Seq(_)) => {
                let path = keys
                    .iter()
                    .fold(ptr.to_string(), |p, k| format!("{p}/{}", escape(k)));
                let edit = append_item(seq, &value);
                let mut b = self;
                b.push(
                    PatchOp {
                        op: "add",
                        path: format!("{path}/-"),
                        value: Some(value),
                    },
                    edit,
                );
                b
            }
            _ => self.set(base, ptr, keys, Json::Array(vec![value])),
        }
    }

    pub fn build(self) -> Fix {
        self.fix
    }
}

/// The text that adds `key: value` to a mapping.
fn insert_key(map: &Node, key: &str, value: &Json) -> Option<TextEdit> {
    let entry = format!("{}: {}", json_key(key), json_text(value));
    match (map.map().first(), map.flow) {
        (Some((k, _)), false) => Some(TextEdit {
            start: k.start,
            end: k.start,
            text: format!("{entry}\n{}", pad(k.start.column)),
        }),
        (Some((k, _)), true) => Some(TextEdit {
            start: k.start,
            end: k.start,
            text: format!("{entry}, "),
        }),
        (None, true) => {
            let at = Pos {
                line: map.start.line,
                column: map.start.column.saturating_add(1),
            };
            Some(TextEdit {
                start: at,
                end: at,
                text: entry,
            })
        }
        (None, false) => None,
    }
}

fn append_item(seq: &Node, value: &Json) -> Option<TextEdit> {
    match (seq.seq().first(), seq.flow) {
        (Some(first), false) if first.start.column > 2 => Some(TextEdit {
            start: first.start,
            end: first.start,
            text: format!(
                "{}\n{}- ",
                json_text(value),
                pad(first.start.column.saturating_sub(2))
            ),
        }),
        (Some(first), true) => Some(TextEdit {
            start: first.start,
            end: first.start,
            text: format!("{}, ", json_text(value)),
        }),
        (None, true) => {
            let at = Pos {
                line: seq.start.line,
                column: seq.start.column.saturating_add(1),
            };
            Some(TextEdit {
                start: at,
                end: at,
                text: json_text(value),
            })
        }
        _ => None,
    }
}

/// A mapping key as YAML: plain when safe, else JSON-quoted.
fn json_key(key: &str) -> String {
    if key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
    {
        key.to_string()
    } else {
        Json::String(key.to_string()).to_string()
    }
}

//! Positions in rule files: [`SourceLoc`], [`Located`] values and [`SourceText`], a scalar's text
//! with a map from byte offsets in the text back to `file:line:col`.

use std::fmt;
use std::sync::Arc;

/// A position in a rule file. `line` and `col` are 1-based; `col` counts characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceLoc {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl SourceLoc {
    pub fn new(file: impl Into<Arc<str>>, line: u32, col: u32) -> SourceLoc {
        SourceLoc {
            file: file.into(),
            line,
            col,
        }
    }
}

impl fmt::Display for SourceLoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A value together with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub loc: SourceLoc,
}

impl<T> Located<T> {
    pub fn new(value: T, loc: SourceLoc) -> Located<T> {
        Located { value, loc }
    }
}

/// One run of characters that sit next to each other on one source line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    /// Byte offset in [`SourceText::value`] where the run starts.
    offset: usize,
    line: u32,
    col: u32,
}

/// The part of a [`SourceText`] that came from one YAML scalar.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    /// Byte offset in [`SourceText::value`] where the piece starts.
    offset: usize,
    file: Arc<str>,
    segments: Vec<Segment>,
}

/// The text of a scalar (a condition, an output) as the YAML parser produced it, plus a map
/// from byte offsets in that text back to the file.
///
/// Text built by `append` (`override: append` or the older `append: true`) keeps one piece per
/// contributing scalar, so an offset in the appended part maps into the file that appended it.
///
/// The map is best effort. It is built by walking the source of the scalar alongside the
/// parsed text: every non-blank character of the text is matched with the same character in
/// the source (so plain, single-quoted, double-quoted, `|` literal and `>` folded scalars map
/// exactly for such characters, including across folded line breaks); a blank that YAML
/// produced by folding a line break maps to the end of the line it replaced; a character that
/// a double-quoted escape produced (`\"`, `\x41`, `\n`…) maps to the escape's backslash.
/// The blank that joins appended pieces maps to the end of the earlier piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceText {
    pub value: String,
    /// Where the scalar's value starts (after any quote or block header).
    pub loc: SourceLoc,
    pieces: Vec<Piece>,
}

impl SourceText {
    /// A text whose every character is taken to sit on one line from `loc` on.
    pub fn new(value: impl Into<String>, loc: SourceLoc) -> SourceText {
        let piece = Piece {
            offset: 0,
            file: loc.file.clone(),
            segments: vec![Segment {
                offset: 0,
                line: loc.line,
                col: loc.col,
            }],
        };
        SourceText {
            value: value.into(),
            loc,
            pieces: vec![piece],
        }
    }

    pub(crate) fn from_mapped(
        value: String,
        file: Arc<str>,
        map: Vec<(usize, u32, u32)>,
    ) -> SourceText {
        let mut segments: Vec<Segment> = map
            .into_iter()
            .map(|(offset, line, col)| Segment { offset, line, col })
            .collect();
        if segments.first().is_none_or(|s| s.offset != 0) {
            segments.insert(
                0,
                Segment {
                    offset: 0,
                    line: 1,
                    col: 1,
                },
            );
        }
        let first = segments[0];
        SourceText {
            value,
            loc: SourceLoc::new(file.clone(), first.line, first.col),
            pieces: vec![Piece {
                offset: 0,
                file,
                segments,
            }],
        }
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// Where the character at `byte_offset` of [`Self::value`] was written. Offsets past the
    /// end map just after the last character; offsets inside a character map to it.
    pub fn loc_of_offset(&self, byte_offset: usize) -> SourceLoc {
        let mut off = byte_offset.min(self.value.len());
        while !self.value.is_char_boundary(off) {
            off -= 1;
        }
        let Some(piece) = self.pieces.iter().rev().find(|p| p.offset <= off) else {
            return self.loc.clone();
        };
        let Some(seg) = piece.segments.iter().rev().find(|s| s.offset <= off) else {
            return SourceLoc::new(piece.file.clone(), self.loc.line, self.loc.col);
        };
        let start = seg.offset.min(off);
        let chars = self.value.get(start..off).map_or(0, |s| s.chars().count());
        let col = seg
            .col
            .saturating_add(u32::try_from(chars).unwrap_or(u32::MAX));
        SourceLoc::new(piece.file.clone(), seg.line, col)
    }

    /// `self + " " + other`, as Falco appends conditions, outputs and descriptions.
    pub(crate) fn append(&mut self, other: &SourceText) {
        self.value.push(' ');
        let base = self.value.len();
        self.value.push_str(&other.value);
        for p in &other.pieces {
            self.pieces.push(Piece {
                offset: p.offset + base,
                file: p.file.clone(),
                segments: p
                    .segments
                    .iter()
                    .map(|s| Segment {
                        offset: s.offset + base,
                        ..*s
                    })
                    .collect(),
            });
        }
    }

    /// Trims ASCII blanks at both ends (Falco trims a rule's output), keeping the map.
    pub(crate) fn trimmed(self) -> SourceText {
        let blank = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c');
        let start = self.value.len() - self.value.trim_start_matches(blank).len();
        let end = self.value.trim_end_matches(blank).len().max(start);
        if start == 0 && end == self.value.len() {
            return self;
        }
        let loc = self.loc_of_offset(start);
        let value = self.value[start..end].to_string();
        let mut pieces = Vec::new();
        for p in &self.pieces {
            let mut segments: Vec<Segment> = Vec::new();
            for (i, s) in p.segments.iter().enumerate() {
                let next = p
                    .segments
                    .get(i + 1)
                    .map_or(usize::MAX, |n| n.offset)
                    .min(end);
                if next <= start || s.offset >= end {
                    continue;
                }
                if s.offset < start {
                    let l = self.loc_of_offset(start);
                    segments.push(Segment {
                        offset: 0,
                        line: l.line,
                        col: l.col,
                    });
                } else {
                    segments.push(Segment {
                        offset: s.offset - start,
                        ..*s
                    });
                }
            }
            if !segments.is_empty() {
                let offset = segments[0].offset;
                pieces.push(Piece {
                    offset,
                    file: p.file.clone(),
                    segments,
                });
            }
        }
        if pieces.is_empty() {
            return SourceText::new(value, loc);
        }
        SourceText { value, loc, pieces }
    }
}

impl fmt::Display for SourceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_offsets_advance_columns() {
        let t = SourceText::new("a and b", SourceLoc::new("f", 3, 14));
        assert_eq!(t.loc_of_offset(0).to_string(), "f:3:14");
        assert_eq!(t.loc_of_offset(6).to_string(), "f:3:20");
        assert_eq!(t.loc_of_offset(100).to_string(), "f:3:21");
    }

    #[test]
    fn append_maps_into_the_appending_file() {
        let mut a = SourceText::new("x", SourceLoc::new("a.yaml", 1, 5));
        let b = SourceText::new("or y", SourceLoc::new("b.yaml", 7, 14));
        a.append(&b);
        assert_eq!(a.value, "x or y");
        assert_eq!(a.loc_of_offset(0).to_string(), "a.yaml:1:5");
        assert_eq!(a.loc_of_offset(1).to_string(), "a.yaml:1:6");
        assert_eq!(a.loc_of_offset(5).to_string(), "b.yaml:7:17");
    }

    #[test]
    fn trimming_keeps_the_map() {
        let t = SourceText::new("  ab  ", SourceLoc::new("f", 2, 1)).trimmed();
        assert_eq!(t.value, "ab");
        assert_eq!(t.loc.to_string(), "f:2:3");
        assert_eq!(t.loc_of_offset(1).to_string(), "f:2:4");
    }
}

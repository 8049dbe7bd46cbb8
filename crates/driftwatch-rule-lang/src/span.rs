//! Byte spans into a condition string and their mapping to line/column.

use std::fmt;

/// A half-open byte range `start..end` into the condition source text.
///
/// Offsets are byte offsets and always fall on UTF-8 character boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte of the node.
    pub start: usize,
    /// One past the last byte of the node.
    pub end: usize,
}

impl Span {
    /// Builds a span from `start..end`.
    #[must_use]
    pub const fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// An empty span at `offset` (used for "expected …" at end of input).
    #[must_use]
    pub const fn empty(offset: usize) -> Self {
        Self {
            start: offset,
            end: offset,
        }
    }

    /// The smallest span covering both `self` and `other`.
    #[must_use]
    pub fn cover(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// Length in bytes.
    #[must_use]
    pub const fn len(self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// True when the span covers no bytes.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The text under this span, or `None` if the span does not fit `src`.
    #[must_use]
    pub fn text(self, src: &str) -> Option<&str> {
        src.get(self.start..self.end)
    }

    /// The 1-based line/column of `self.start` in `src`.
    #[must_use]
    pub fn line_col(self, src: &str) -> LineCol {
        line_col(src, self.start)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A 1-based line and column. The column counts Unicode scalar values, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LineCol {
    /// 1-based line number (lines are separated by `\n`).
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl fmt::Display for LineCol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// Maps a byte `offset` in `src` to a 1-based line/column.
///
/// Offsets past the end are clamped to the end; an offset inside a multi-byte character
/// points at that character.
#[must_use]
pub fn line_col(src: &str, offset: usize) -> LineCol {
    let mut line = 1;
    let mut col = 1;
    for (i, c) in src.char_indices() {
        if i >= offset {
            break;
        }
        if i + c.len_utf8() > offset {
            // offset falls inside this character
            break;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    LineCol { line, col }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_chars() {
        let src = "ab\nçd\n\nx";
        assert_eq!(line_col(src, 0), LineCol { line: 1, col: 1 });
        assert_eq!(line_col(src, 2), LineCol { line: 1, col: 3 });
        assert_eq!(line_col(src, 3), LineCol { line: 2, col: 1 });
        // 'ç' is two bytes: 'd' is column 2
        assert_eq!(line_col(src, 5), LineCol { line: 2, col: 2 });
        // inside 'ç' points at it
        assert_eq!(line_col(src, 4), LineCol { line: 2, col: 1 });
        assert_eq!(line_col(src, 8), LineCol { line: 4, col: 1 });
        assert_eq!(line_col(src, 100), LineCol { line: 4, col: 2 });
        assert_eq!(LineCol { line: 3, col: 7 }.to_string(), "3:7");
    }

    #[test]
    fn span_helpers() {
        let s = Span::new(2, 5);
        assert_eq!(s.len(), 3);
        assert!(Span::empty(4).is_empty());
        assert_eq!(s.cover(Span::new(7, 9)), Span::new(2, 9));
        assert_eq!(s.text("abcdefg"), Some("cde"));
        assert_eq!(Span::new(0, 99).text("abc"), None);
    }
}

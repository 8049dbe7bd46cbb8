//! Parse diagnostics: a message and the span it is about.

use crate::span::{LineCol, Span};

/// One syntax error found while parsing a condition.
///
/// Messages are lowercase and name what was expected and where, e.g.
/// `expected a value after 'startswith'`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Diagnostic {
    /// Where in the condition the problem is (may be empty at end of input).
    pub span: Span,
    /// Human-readable, lowercase description.
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn new(span: Span, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
        }
    }

    /// The 1-based line/column where this diagnostic starts in `src`.
    #[must_use]
    pub fn line_col(&self, src: &str) -> LineCol {
        self.span.line_col(src)
    }

    /// `line:col: message`, relative to the condition text `src`.
    #[must_use]
    pub fn render(&self, src: &str) -> String {
        format!("{}: {}", self.line_col(src), self.message)
    }
}

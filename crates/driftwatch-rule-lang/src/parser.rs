//! Hand-written recursive-descent parser with error recovery.
//!
//! The parser never stops at the first error: a broken check becomes [`Expr::Error`], a
//! diagnostic is recorded, and parsing resumes at the next `and`/`or` keyword, unmatched
//! `)` or the end of input. Nesting (parentheses, `not`, transformers) is bounded by
//! [`MAX_DEPTH`]; past it the rest of the input is abandoned with one diagnostic.

use crate::ast::{
    Check, Expr, Field, Ident, Junction, List, Literal, Modifier, Not, Op, Operand, Operator,
    OperatorClass, Quote, Rhs, Transform, TransformArg, TransformKind, TransformList,
};
use crate::diagnostic::Diagnostic;
use crate::escape;
use crate::lexer::{self, Quoted};
use crate::span::Span;

/// Maximum nesting of parentheses, `not`s and transformers.
pub const MAX_DEPTH: usize = 256;

/// The result of [`parse`]: a tree (possibly holding [`Expr::Error`] placeholders) and
/// every diagnostic found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// `None` only for an empty (or all-blank) condition.
    pub expr: Option<Expr>,
    /// Syntax errors, in source order of discovery. Empty means the condition is valid.
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    /// True when there were no diagnostics (then `expr` is `Some` and has no error nodes).
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.diagnostics.is_empty() && self.expr.is_some()
    }

    /// The expression if parsing succeeded without diagnostics.
    #[must_use]
    pub fn ok(self) -> Option<Expr> {
        if self.diagnostics.is_empty() {
            self.expr
        } else {
            None
        }
    }
}

/// Parses a Falco condition.
#[must_use]
pub fn parse(src: &str) -> Parsed {
    let mut p = Parser::new(src);
    p.skip_blank();
    if p.at_end() {
        p.error(Span::new(0, src.len()), "empty condition");
        return Parsed {
            expr: None,
            diagnostics: p.diags,
        };
    }
    let expr = p.parse_or(Ctx::Start);
    debug_assert!(p.at_end(), "top-level parse stops only at the end of input");
    Parsed {
        expr: Some(expr),
        diagnostics: p.diags,
    }
}

/// Parses a lone field or transformed field, e.g. an entry of an exception's `fields:`.
///
/// # Errors
/// Returns every diagnostic if `src` is not exactly one field/transformer (blanks around
/// it are allowed).
pub fn parse_operand(src: &str) -> Result<Operand, Vec<Diagnostic>> {
    let mut p = Parser::new(src);
    p.skip_blank();
    let start = p.pos;
    let res = match p.operand_in_check_position() {
        Head::Operand(Ok(o)) => Some(o),
        Head::Operand(Err(())) => None,
        _ => {
            let tok = p.token_at(start);
            p.error(tok, format!("expected a field{}", p.found(start)));
            None
        }
    };
    p.skip_blank();
    if res.is_some() && !p.at_end() {
        let tok = p.token_at(p.pos);
        p.error(
            tok,
            format!("unexpected '{}' after the field", p.snippet(tok)),
        );
    }
    match res {
        Some(o) if p.diags.is_empty() => Ok(o),
        _ => Err(p.diags),
    }
}

/// What the error message says came before the missing part.
#[derive(Clone, Copy)]
enum Ctx {
    Start,
    After(&'static str),
}

/// What starts a check.
enum Head {
    Operand(Result<Operand, ()>),
    Macro(Ident),
    /// Diagnostic already reported; recover.
    Failed,
    /// Not a check at all (nothing consumed).
    Nothing,
}

struct Parser<'a> {
    src: &'a str,
    s: &'a [u8],
    pos: usize,
    depth: usize,
    parens: usize,
    abandoned: bool,
    diags: Vec<Diagnostic>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            s: src.as_bytes(),
            pos: 0,
            depth: 0,
            parens: 0,
            abandoned: false,
            diags: Vec::new(),
        }
    }

    // ---- low-level helpers -------------------------------------------------------------

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_blank(&mut self) -> bool {
        let end = lexer::blank_end(self.s, self.pos);
        let moved = end > self.pos;
        self.pos = end;
        moved
    }

    fn error(&mut self, span: Span, message: impl Into<String>) {
        if !self.abandoned {
            self.diags.push(Diagnostic::new(span, message));
        }
    }

    /// Too deep: report once and give up on the rest of the input.
    fn abandon(&mut self, at: usize) -> Span {
        self.error(
            Span::new(at, (at + 1).min(self.s.len())),
            format!("condition is nested too deeply (the limit is {MAX_DEPTH} levels)"),
        );
        self.abandoned = true;
        self.pos = self.s.len();
        Span::new(at, self.s.len())
    }

    /// `and` / `or` as a keyword: followed by a blank, a parenthesis or the end.
    fn at_kw(&self, pos: usize, word: &[u8]) -> bool {
        self.s[pos.min(self.s.len())..].starts_with(word)
            && self
                .s
                .get(pos + word.len())
                .is_none_or(|&b| lexer::is_blank(b) || b == b'(' || b == b')')
    }

    fn at_and_or(&self, pos: usize) -> bool {
        self.at_kw(pos, b"and") || self.at_kw(pos, b"or")
    }

    /// The token starting at `pos`, for messages and recovery.
    fn token_at(&self, pos: usize) -> Span {
        Span::new(pos, self.token_end(pos))
    }

    fn token_end(&self, pos: usize) -> usize {
        let s = self.s;
        let Some(&b) = s.get(pos) else {
            return pos;
        };
        match b {
            b'"' | b'\'' => match lexer::quoted_end(s, pos) {
                Quoted::Closed(e) => e,
                Quoted::Unterminated => s.len(),
            },
            b'(' => self.balanced_end(pos),
            b')' => pos + 1,
            _ => {
                let mut e = pos + 1;
                while e < s.len()
                    && !lexer::is_blank(s[e])
                    && !matches!(s[e], b'(' | b')' | b'"' | b'\'')
                {
                    e += 1;
                }
                // stay on a char boundary (all stop bytes are ASCII, but the first byte
                // may start a multi-byte character)
                while !self.src.is_char_boundary(e) {
                    e += 1;
                }
                e
            }
        }
    }

    /// End of the parenthesised group starting at `pos` (quotes respected), or end of input.
    fn balanced_end(&self, pos: usize) -> usize {
        self.balanced_close(pos).unwrap_or(self.s.len())
    }

    /// End of the parenthesised group starting at `pos`, if it is closed.
    fn balanced_close(&self, pos: usize) -> Option<usize> {
        let s = self.s;
        let mut level = 0usize;
        let mut p = pos;
        while p < s.len() {
            match s[p] {
                b'(' => level += 1,
                b')' => {
                    level = level.saturating_sub(1);
                    if level == 0 {
                        return Some(p + 1);
                    }
                }
                b'"' | b'\'' => match lexer::quoted_end(s, p) {
                    Quoted::Closed(e) => {
                        p = e;
                        continue;
                    }
                    Quoted::Unterminated => return None,
                },
                _ => {}
            }
            p += 1;
        }
        None
    }

    fn snippet(&self, span: Span) -> String {
        let text = span.text(self.src).unwrap_or("");
        let mut out: String = text.chars().take(40).collect();
        if out.len() < text.len() {
            out.push('…');
        }
        out.replace('\n', "\\n")
    }

    /// `, found 'X'` or `` at the end.
    fn found(&self, pos: usize) -> String {
        if pos >= self.s.len() {
            String::new()
        } else if lexer::is_blank(self.s[pos]) {
            ", found a blank".to_string()
        } else {
            format!(", found '{}'", self.snippet(self.token_at(pos)))
        }
    }

    /// Skips to the next `and`/`or` keyword, unmatched `)`, or the end; parentheses and
    /// quotes are skipped as a whole.
    fn recover(&mut self) {
        while let Some(b) = self.peek() {
            if lexer::is_blank(b) {
                self.pos += 1;
                continue;
            }
            if b == b')' || self.at_and_or(self.pos) {
                break;
            }
            self.pos = self.token_end(self.pos);
        }
    }

    /// Recovers and returns an error node from `start` to where recovery stopped.
    fn error_node(&mut self, start: usize) -> Expr {
        self.recover();
        Expr::Error(Span::new(start, self.pos.max(start)))
    }

    // ---- boolean structure -------------------------------------------------------------

    fn parse_or(&mut self, ctx: Ctx) -> Expr {
        let mut children = vec![self.parse_and(ctx)];
        loop {
            self.skip_blank();
            if !self.at_kw(self.pos, b"or") {
                break;
            }
            self.pos += 2;
            children.push(self.parse_and(Ctx::After("or")));
        }
        junction(children, Expr::Or)
    }

    fn parse_and(&mut self, ctx: Ctx) -> Expr {
        let mut children = vec![self.parse_not(ctx)];
        loop {
            self.skip_blank();
            let Some(b) = self.peek() else { break };
            if b == b')' {
                if self.parens > 0 {
                    break;
                }
                self.error(Span::new(self.pos, self.pos + 1), "unbalanced ')'");
                self.pos += 1;
                continue;
            }
            if self.at_kw(self.pos, b"and") {
                self.pos += 3;
                children.push(self.parse_not(Ctx::After("and")));
                continue;
            }
            if self.at_kw(self.pos, b"or") {
                break;
            }
            // something that cannot follow a complete condition
            let tok = self.token_at(self.pos);
            let text = self.snippet(tok);
            let msg = if text == "not" {
                "unexpected 'not' after a condition: use 'and not' or 'or not'".to_string()
            } else if self.parens > 0 {
                format!("unexpected '{text}', expected 'and', 'or' or ')'")
            } else {
                format!("unexpected '{text}', expected 'and', 'or' or the end of the condition")
            };
            self.error(tok, msg);
            let before = self.pos;
            self.recover();
            if self.pos == before {
                self.pos = self.token_end(self.pos).max(before + 1);
            }
        }
        junction(children, Expr::And)
    }

    fn parse_not(&mut self, ctx: Ctx) -> Expr {
        let mut nots: Vec<usize> = Vec::new();
        let mut ctx = ctx;
        loop {
            self.skip_blank();
            let s = &self.s[self.pos..];
            if !s.starts_with(b"not") {
                break;
            }
            match s.get(3) {
                Some(&b) if lexer::is_space(b) => {
                    nots.push(self.pos);
                    self.pos += 3;
                    while self.peek().is_some_and(lexer::is_space) {
                        self.pos += 1;
                    }
                    ctx = Ctx::After("not");
                }
                None | Some(b'(' | b')') => {
                    // `not(` … or a dangling `not` (reported by parse_check)
                    nots.push(self.pos);
                    self.pos += 3;
                    ctx = Ctx::After("not");
                    break;
                }
                _ => break,
            }
        }
        if nots.is_empty() {
            return self.parse_check(ctx);
        }
        if self.depth + nots.len() > MAX_DEPTH {
            let at = nots[MAX_DEPTH.saturating_sub(self.depth).min(nots.len() - 1)];
            let span = self.abandon(at);
            return Expr::Error(Span::new(nots[0], span.end));
        }
        self.depth += nots.len();
        let mut e = self.parse_check(ctx);
        self.depth -= nots.len();
        for start in nots.into_iter().rev() {
            let end = e.span().end.max(start + 3);
            e = Expr::Not(Not {
                child: Box::new(e),
                keyword: Span::new(start, start + 3),
                span: Span::new(start, end),
            });
        }
        e
    }

    fn parse_group(&mut self) -> Expr {
        let open = self.pos;
        if self.depth >= MAX_DEPTH {
            return Expr::Error(self.abandon(open));
        }
        self.pos += 1;
        self.depth += 1;
        self.parens += 1;
        let inner = self.parse_or(Ctx::After("("));
        self.skip_blank();
        if self.peek() == Some(b')') {
            self.pos += 1;
        } else {
            self.error(Span::new(open, open + 1), "unclosed '('");
        }
        self.depth -= 1;
        self.parens -= 1;
        inner
    }

    fn expected_condition(&self, ctx: Ctx) -> String {
        let mut m = String::from("expected a condition");
        if let Ctx::After(k) = ctx {
            m.push_str(&format!(" after '{k}'"));
        }
        m.push_str(&self.found(self.pos));
        m
    }

    fn parse_check(&mut self, ctx: Ctx) -> Expr {
        self.skip_blank();
        let start = self.pos;
        match self.peek() {
            None => {
                let msg = self.expected_condition(ctx);
                self.error(Span::empty(start), msg);
                return Expr::Error(Span::empty(start));
            }
            Some(b'(') => return self.parse_group(),
            Some(b')') => {
                let msg = self.expected_condition(ctx);
                self.error(Span::new(start, start + 1), msg);
                return Expr::Error(Span::empty(start));
            }
            _ => {}
        }
        if self.at_and_or(start) {
            let msg = self.expected_condition(ctx);
            let tok = self.token_at(start);
            self.error(tok, msg);
            return Expr::Error(Span::empty(start));
        }
        match self.operand_in_check_position() {
            Head::Operand(Ok(left)) => self.parse_condition(left),
            Head::Operand(Err(())) | Head::Failed => self.error_node(start),
            Head::Macro(ident) => Expr::Macro(ident),
            Head::Nothing => {
                let msg = self.expected_condition(ctx);
                let tok = self.token_at(start);
                self.error(tok, msg);
                self.pos = tok.end.max(start + 1);
                self.error_node(start)
            }
        }
    }

    /// Falco's order in check position: field name, transformer, identifier.
    fn operand_in_check_position(&mut self) -> Head {
        let start = self.pos;
        if let Some(end) = lexer::field_name_end(self.s, start) {
            return Head::Operand(self.parse_field(start, end).map(Operand::Field));
        }
        if let Some(kind) = self.transformer_at(start, false) {
            return Head::Operand(self.parse_transform(kind, start).map(Operand::Transform));
        }
        if let Some(end) = lexer::identifier_end(self.s, start) {
            let name = &self.src[start..end];
            if self.s.get(end) == Some(&b'(') {
                let span = Span::new(start, end);
                if name == "val" {
                    self.error(
                        span,
                        "'val(…)' can only be used on the right-hand side of a comparison",
                    );
                } else if name == "not" {
                    return Head::Nothing;
                } else {
                    self.error(span, format!("unknown field transformer '{name}'"));
                }
                return Head::Failed;
            }
            if matches!(name, "not" | "and" | "or") {
                return Head::Nothing;
            }
            self.pos = end;
            return Head::Macro(Ident {
                name: name.to_string(),
                span: Span::new(start, end),
            });
        }
        Head::Nothing
    }

    // ---- checks ------------------------------------------------------------------------

    fn lex_operator(&mut self) -> Option<(Operator, Span)> {
        let start = self.pos;
        let rest = &self.s[start..];
        for op in Operator::ALL {
            let text = op.as_str().as_bytes();
            if !rest.starts_with(text) {
                continue;
            }
            if op.needs_blank() && !rest.get(text.len()).is_some_and(|&b| lexer::is_blank(b)) {
                continue;
            }
            self.pos += text.len();
            return Some((op, Span::new(start, start + text.len())));
        }
        None
    }

    fn parse_condition(&mut self, left: Operand) -> Expr {
        let start = left.span().start;
        let left_text = self.snippet(left.span());
        self.skip_blank();
        let op_pos = self.pos;
        let Some((kind, op_span)) = self.lex_operator() else {
            return self.operator_error(start, op_pos, &left_text);
        };
        let mut op = Op {
            kind,
            modifier: None,
            span: op_span,
        };
        let right = match kind.class() {
            OperatorClass::Unary => None,
            OperatorClass::Numeric => {
                self.skip_blank();
                match self.numeric_rhs(kind) {
                    Some(r) => Some(r),
                    None => return self.error_node(start),
                }
            }
            OperatorClass::String => {
                let had_blank = self.skip_blank() || kind.needs_blank();
                if had_blank {
                    if let Some(m) = self.lex_modifier() {
                        op.modifier = Some(m);
                    }
                }
                let r = if op.modifier.is_some() {
                    self.list_rhs(kind, false)
                } else {
                    self.string_rhs(kind)
                };
                match r {
                    Some(r) => Some(r),
                    None => return self.error_node(start),
                }
            }
            OperatorClass::List => {
                self.skip_blank();
                match self.list_rhs(kind, true) {
                    Some(r) => Some(r),
                    None => return self.error_node(start),
                }
            }
        };
        let end = right.as_ref().map_or(op_span.end, |r| r.span().end);
        Expr::Check(Box::new(Check {
            left,
            op,
            right,
            span: Span::new(start, end),
        }))
    }

    fn operator_error(&mut self, start: usize, op_pos: usize, left_text: &str) -> Expr {
        if self.at_end() {
            self.error(
                Span::empty(op_pos),
                format!("expected an operator after '{left_text}'"),
            );
            return Expr::Error(Span::new(start, op_pos));
        }
        let tok = self.token_at(op_pos);
        if self.peek() == Some(b')') || self.at_and_or(op_pos) {
            let msg = format!(
                "expected an operator after '{left_text}'{}",
                self.found(op_pos)
            );
            self.error(tok, msg);
            return Expr::Error(Span::new(start, op_pos));
        }
        let word_end = lexer::identifier_end(self.s, op_pos);
        if let Some(we) = word_end {
            let word = &self.src[op_pos..we];
            let span = Span::new(op_pos, we);
            if let Some(op) = Operator::ALL.iter().find(|o| o.as_str() == word) {
                if we >= self.s.len() {
                    self.error(span, format!("expected a value after '{}'", op.as_str()));
                } else {
                    self.error(span, format!("expected a blank after '{}'", op.as_str()));
                }
            } else {
                self.error(span, format!("unknown operator '{word}'"));
            }
        } else {
            let msg = format!(
                "expected an operator after '{left_text}'{}",
                self.found(op_pos)
            );
            self.error(tok, msg);
        }
        self.pos = op_pos;
        self.error_node(start)
    }

    /// `oneof`/`anyof`/`allof` followed by a blank and then a list or a list name (but not
    /// by `and`/`or`/`not`): otherwise the word is an ordinary value.
    fn lex_modifier(&mut self) -> Option<(Modifier, Span)> {
        let start = self.pos;
        for m in Modifier::ALL {
            let w = m.as_str().as_bytes();
            if !self.s[start..].starts_with(w) {
                continue;
            }
            let after_word = start + w.len();
            if !self.s.get(after_word).is_some_and(|&b| lexer::is_blank(b)) {
                continue;
            }
            let next = lexer::blank_end(self.s, after_word);
            let list_follows =
                self.s.get(next) == Some(&b'(') || lexer::identifier_end(self.s, next).is_some();
            let keyword_follows = [&b"and"[..], b"or", b"not"]
                .iter()
                .any(|k| lexer::word_follows(self.s, next, k));
            if list_follows && !keyword_follows {
                self.pos = next;
                return Some((m, Span::new(start, after_word)));
            }
        }
        None
    }

    fn numeric_rhs(&mut self, op: Operator) -> Option<Rhs> {
        let start = self.pos;
        match self.rhs_operand() {
            Head::Operand(Ok(o)) => return Some(Rhs::Operand(o)),
            Head::Operand(Err(())) | Head::Failed => return None,
            _ => {}
        }
        if let Some(end) = lexer::num_value_end(self.s, start) {
            let follow_ok = self
                .s
                .get(end)
                .is_none_or(|&b| lexer::is_blank(b) || b == b')')
                || self.at_and_or(end);
            if follow_ok {
                self.pos = end;
                return Some(Rhs::Value(self.bare_literal(start, end)));
            }
            let tok = self.token_at(start);
            let msg = format!("invalid number '{}'", self.snippet(tok));
            self.error(tok, msg);
            return None;
        }
        let msg = format!(
            "expected a number after '{}'{}",
            op.as_str(),
            self.found(start)
        );
        let tok = self.token_at(start);
        self.error(tok, msg);
        None
    }

    fn string_rhs(&mut self, op: Operator) -> Option<Rhs> {
        let start = self.pos;
        match self.rhs_operand() {
            Head::Operand(Ok(o)) => return Some(Rhs::Operand(o)),
            Head::Operand(Err(())) | Head::Failed => return None,
            _ => {}
        }
        match self.peek() {
            Some(b'"' | b'\'') => return self.quoted_literal().ok().map(Rhs::Value),
            Some(_) => {
                if let Some(end) = lexer::bare_str_end(self.s, start) {
                    if self.s.get(end) == Some(&b'(')
                        && lexer::identifier_end(self.s, start) == Some(end)
                    {
                        let msg = format!("unknown field transformer '{}'", &self.src[start..end]);
                        self.error(Span::new(start, end), msg);
                        return None;
                    }
                    self.pos = end;
                    return Some(Rhs::Value(self.bare_literal(start, end)));
                }
            }
            None => {}
        }
        let msg = format!(
            "expected a value after '{}'{}",
            op.as_str(),
            self.found(start)
        );
        let tok = self.token_at(start);
        self.error(tok, msg);
        None
    }

    /// `in`/`intersects`/`pmatch` (with transformers) or a modifier's list (without).
    fn list_rhs(&mut self, op: Operator, transformers: bool) -> Option<Rhs> {
        let start = self.pos;
        if self.peek() == Some(b'(') {
            return self.list_literal().ok().map(Rhs::List);
        }
        if transformers {
            match self.rhs_operand() {
                Head::Operand(Ok(o)) => return Some(Rhs::Operand(o)),
                Head::Operand(Err(())) | Head::Failed => return None,
                _ => {}
            }
        }
        if let Some(end) = lexer::identifier_end(self.s, start) {
            if self.s.get(end) == Some(&b'(') {
                let msg = format!("unknown field transformer '{}'", &self.src[start..end]);
                self.error(Span::new(start, end), msg);
                return None;
            }
            self.pos = end;
            return Some(Rhs::ListRef(Ident {
                name: self.src[start..end].to_string(),
                span: Span::new(start, end),
            }));
        }
        let msg = format!(
            "expected a list or a list name after '{}'{}",
            op.as_str(),
            self.found(start)
        );
        let tok = self.token_at(start);
        self.error(tok, msg);
        None
    }

    /// A transformer or `val(…)` on the right-hand side.
    fn rhs_operand(&mut self) -> Head {
        let start = self.pos;
        match self.transformer_at(start, true) {
            Some(kind) => Head::Operand(self.parse_transform(kind, start).map(Operand::Transform)),
            None => Head::Nothing,
        }
    }

    fn list_literal(&mut self) -> Result<List, ()> {
        let open = self.pos;
        self.pos += 1;
        let mut items = Vec::new();
        let mut expect_item = true;
        let mut saw_comma = false;
        loop {
            self.skip_blank();
            let Some(b) = self.peek() else {
                self.error(Span::new(open, open + 1), "unclosed '(' of the list");
                return Err(());
            };
            if expect_item {
                match b {
                    b')' if !saw_comma => {
                        self.pos += 1;
                        break;
                    }
                    b')' | b',' => {
                        let msg = if saw_comma {
                            "expected a value after ','"
                        } else {
                            "expected a value or ')' after '('"
                        };
                        self.error(Span::new(self.pos, self.pos + 1), msg);
                        self.pos += 1;
                        if b == b')' {
                            break;
                        }
                        continue;
                    }
                    b'(' => {
                        let tok = self.token_at(self.pos);
                        self.error(tok, "nested lists are not supported");
                        self.pos = tok.end;
                    }
                    b'"' | b'\'' => items.push(self.quoted_literal()?),
                    _ => {
                        let start = self.pos;
                        match lexer::bare_str_end(self.s, start) {
                            Some(end) => {
                                self.pos = end;
                                items.push(self.bare_literal(start, end));
                            }
                            None => {
                                // only '=' can get here
                                let msg = format!("unexpected '{}' in the list", b as char);
                                self.error(Span::new(start, start + 1), msg);
                                self.pos += 1;
                            }
                        }
                    }
                }
                expect_item = false;
            } else {
                match b {
                    b',' => {
                        self.pos += 1;
                        saw_comma = true;
                        expect_item = true;
                    }
                    b')' => {
                        self.pos += 1;
                        break;
                    }
                    _ if self.at_and_or(self.pos) => {
                        self.error(Span::new(open, open + 1), "unclosed '(' of the list");
                        return Err(());
                    }
                    _ => {
                        let tok = self.token_at(self.pos);
                        let msg = format!(
                            "expected ',' or ')' in the list, found '{}'",
                            self.snippet(tok)
                        );
                        self.error(tok, msg);
                        self.skip_list_garbage();
                    }
                }
            }
        }
        Ok(List {
            items,
            span: Span::new(open, self.pos),
        })
    }

    /// Skips to the next `,` or `)` (quotes and parentheses skipped as a whole).
    fn skip_list_garbage(&mut self) {
        let before = self.pos;
        while let Some(b) = self.peek() {
            if b == b',' || b == b')' {
                break;
            }
            if lexer::is_blank(b) {
                self.pos += 1;
                continue;
            }
            if b != b'(' && b != b'"' && b != b'\'' {
                // word: stop at ',' too
                let mut e = self.pos + 1;
                while e < self.s.len()
                    && !lexer::is_blank(self.s[e])
                    && !matches!(self.s[e], b'(' | b')' | b'"' | b'\'' | b',')
                {
                    e += 1;
                }
                while !self.src.is_char_boundary(e) {
                    e += 1;
                }
                self.pos = e;
            } else {
                self.pos = self.token_end(self.pos);
            }
        }
        if self.pos == before {
            self.pos += 1;
        }
    }

    // ---- fields, transformers, literals -------------------------------------------------

    fn transformer_at(&self, pos: usize, allow_val: bool) -> Option<TransformKind> {
        let rest = &self.s[pos..];
        let kinds = TransformKind::TRANSFORMERS
            .iter()
            .chain(allow_val.then_some(&TransformKind::Val));
        kinds.copied().find(|k| {
            let name = k.as_str().as_bytes();
            rest.starts_with(name) && rest.get(name.len()) == Some(&b'(')
        })
    }

    fn parse_field(&mut self, start: usize, name_end: usize) -> Result<Field, ()> {
        self.pos = name_end;
        let arg = self.parse_field_arg()?;
        Ok(Field {
            name: self.src[start..name_end].to_string(),
            name_span: Span::new(start, name_end),
            arg,
            span: Span::new(start, self.pos),
        })
    }

    fn parse_field_arg(&mut self) -> Result<Option<Literal>, ()> {
        if self.peek() != Some(b'[') {
            return Ok(None);
        }
        let open = self.pos;
        self.pos += 1;
        let start = self.pos;
        let lit = match self.peek() {
            Some(b'"' | b'\'') => self.quoted_literal()?,
            _ => match lexer::field_arg_bare_end(self.s, start) {
                Some(end) => {
                    self.pos = end;
                    self.bare_literal(start, end)
                }
                None => {
                    let msg = format!("expected a field argument after '['{}", self.found(start));
                    let span = if self.at_end() || self.peek() == Some(b']') {
                        Span::new(open, (start + 1).min(self.s.len()))
                    } else {
                        self.token_at(start)
                    };
                    self.error(span, msg);
                    return Err(());
                }
            },
        };
        if self.peek() == Some(b']') {
            self.pos += 1;
            Ok(Some(lit))
        } else {
            let msg = format!(
                "expected ']' to close the field argument{}",
                self.found(self.pos)
            );
            self.error(Span::new(open, open + 1), msg);
            Err(())
        }
    }

    fn parse_transform(&mut self, kind: TransformKind, start: usize) -> Result<Transform, ()> {
        if self.depth >= MAX_DEPTH {
            self.abandon(start);
            return Err(());
        }
        self.depth += 1;
        let r = self.parse_transform_inner(kind, start);
        self.depth -= 1;
        if r.is_err() && !self.abandoned {
            // skip to this transformer's closing ')' when it has one, so that one bad
            // argument does not leave stray parentheses behind
            let open = start + kind.as_str().len();
            if let Some(end) = self.balanced_close(open).filter(|&e| e > self.pos) {
                self.pos = end;
            }
        }
        r
    }

    fn parse_transform_inner(
        &mut self,
        kind: TransformKind,
        start: usize,
    ) -> Result<Transform, ()> {
        let name_end = start + kind.as_str().len();
        let name = kind.as_str();
        self.pos = name_end + 1;
        let mut args = Vec::new();
        if kind == TransformKind::Val {
            self.skip_blank();
            let fstart = self.pos;
            let Some(end) = lexer::field_name_end(self.s, fstart) else {
                let msg = if self.transformer_at(fstart, true).is_some() {
                    "'val(…)' takes a plain field, not a transformer".to_string()
                } else {
                    format!("expected a field inside 'val(…)'{}", self.found(fstart))
                };
                let tok = self.token_at(fstart);
                self.error(tok, msg);
                return Err(());
            };
            args.push(TransformArg::Operand(Operand::Field(
                self.parse_field(fstart, end)?,
            )));
            self.skip_blank();
        } else {
            loop {
                self.skip_blank();
                args.push(self.transform_arg(name, true)?);
                self.skip_blank();
                if self.peek() == Some(b',') {
                    self.pos += 1;
                    continue;
                }
                break;
            }
        }
        if self.peek() == Some(b')') {
            self.pos += 1;
        } else {
            let msg = if kind == TransformKind::Val {
                format!("expected ')' to close 'val('{}", self.found(self.pos))
            } else {
                format!(
                    "expected ',' or ')' in the arguments of '{name}('{}",
                    self.found(self.pos)
                )
            };
            let span = if self.at_end() {
                Span::new(start, name_end + 1)
            } else {
                self.token_at(self.pos)
            };
            self.error(span, msg);
            return Err(());
        }
        let arg = self.parse_field_arg()?;
        Ok(Transform {
            kind,
            name_span: Span::new(start, name_end),
            args,
            arg,
            span: Span::new(start, self.pos),
        })
    }

    /// Falco's order: number, quoted string, `(` list, transformer, field.
    fn transform_arg(&mut self, name: &str, allow_list: bool) -> Result<TransformArg, ()> {
        let start = self.pos;
        if let Some(end) = lexer::num_value_end(self.s, start) {
            self.pos = end;
            return Ok(TransformArg::Literal(self.bare_literal(start, end)));
        }
        match self.peek() {
            Some(b'"' | b'\'') => return self.quoted_literal().map(TransformArg::Literal),
            Some(b'(') if allow_list => return self.transform_list(name).map(TransformArg::List),
            Some(b'(') => {
                let tok = self.token_at(start);
                self.error(
                    tok,
                    "nested lists are not supported in transformer arguments",
                );
                return Err(());
            }
            _ => {}
        }
        if let Some(kind) = self.transformer_at(start, false) {
            return self
                .parse_transform(kind, start)
                .map(|t| TransformArg::Operand(Operand::Transform(t)));
        }
        if let Some(end) = lexer::field_name_end(self.s, start) {
            return self
                .parse_field(start, end)
                .map(|f| TransformArg::Operand(Operand::Field(f)));
        }
        let tok = self.token_at(start);
        let msg = if self.transformer_at(start, true).is_some() {
            "'val(…)' cannot be used inside a transformer".to_string()
        } else if let Some(end) =
            lexer::identifier_end(self.s, start).filter(|&e| self.s.get(e) == Some(&b'('))
        {
            format!("unknown field transformer '{}'", &self.src[start..end])
        } else {
            format!(
                "expected a field, a transformer, a quoted string or a number as argument of '{name}('{}",
                self.found(start)
            )
        };
        let span = if self.at_end() {
            Span::empty(start)
        } else {
            tok
        };
        self.error(span, msg);
        Err(())
    }

    fn transform_list(&mut self, name: &str) -> Result<TransformList, ()> {
        let open = self.pos;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_blank();
        if self.peek() == Some(b')') {
            self.pos += 1;
            return Ok(TransformList {
                items,
                span: Span::new(open, self.pos),
            });
        }
        loop {
            self.skip_blank();
            items.push(self.transform_arg(name, false)?);
            self.skip_blank();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b')') => {
                    self.pos += 1;
                    break;
                }
                _ => {
                    let msg = format!("expected ',' or ')' in the list{}", self.found(self.pos));
                    let span = if self.at_end() {
                        Span::new(open, open + 1)
                    } else {
                        self.token_at(self.pos)
                    };
                    self.error(span, msg);
                    return Err(());
                }
            }
        }
        Ok(TransformList {
            items,
            span: Span::new(open, self.pos),
        })
    }

    fn bare_literal(&self, start: usize, end: usize) -> Literal {
        Literal {
            value: self.s[start..end].to_vec(),
            quote: Quote::Bare,
            span: Span::new(start, end),
        }
    }

    /// A quoted string at `self.pos`. Escape errors are reported but the literal is kept;
    /// an unterminated string is an error.
    fn quoted_literal(&mut self) -> Result<Literal, ()> {
        let start = self.pos;
        let quote = if self.s[start] == b'\'' {
            Quote::Single
        } else {
            Quote::Double
        };
        match lexer::quoted_end(self.s, start) {
            Quoted::Unterminated => {
                self.error(Span::new(start, self.s.len()), "unterminated string");
                self.pos = self.s.len();
                Err(())
            }
            Quoted::Closed(end) => {
                let mut errs = Vec::new();
                let value = escape::unescape(&self.src[start..end], &mut errs);
                for e in errs {
                    self.error(Span::new(start + e.start, start + e.end), e.message);
                }
                self.pos = end;
                Ok(Literal {
                    value,
                    quote,
                    span: Span::new(start, end),
                })
            }
        }
    }
}

fn junction(mut children: Vec<Expr>, make: fn(Junction) -> Expr) -> Expr {
    if children.len() == 1 {
        return children.pop().unwrap_or(Expr::Error(Span::default()));
    }
    let start = children.first().map_or(0, |c| c.span().start);
    let end = children.last().map_or(0, |c| c.span().end);
    make(Junction {
        children,
        span: Span::new(start, end),
    })
}

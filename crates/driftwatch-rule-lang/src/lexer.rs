//! Scanning primitives. Falco's filter grammar is scannerless: what a run of characters
//! means depends on where it appears (a bare word is a macro name in check position and a
//! string value after `=`), so the parser asks for one token kind at a time, exactly like
//! libsinsp's `lex_*` helpers. Every function here only looks at bytes from `pos` on and
//! returns the end offset of what it matched.

/// `lex_blank` in Falco: space, tab, backspace, carriage return, line feed.
pub(crate) const fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x08 | b'\r' | b'\n')
}

/// POSIX `[[:space:]]`: space, `\t \n \v \f \r`. Used by `not`, bare strings, field args.
pub(crate) const fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// End of the blank run starting at `pos`.
pub(crate) fn blank_end(s: &[u8], mut pos: usize) -> usize {
    while pos < s.len() && is_blank(s[pos]) {
        pos += 1;
    }
    pos
}

/// `[a-zA-Z][a-zA-Z0-9_]*`
pub(crate) fn identifier_end(s: &[u8], pos: usize) -> Option<usize> {
    if !s.get(pos)?.is_ascii_alphabetic() {
        return None;
    }
    let mut end = pos + 1;
    while end < s.len() && (s[end].is_ascii_alphanumeric() || s[end] == b'_') {
        end += 1;
    }
    Some(end)
}

/// `Identifier ('.' Identifier)+`, longest match.
pub(crate) fn field_name_end(s: &[u8], pos: usize) -> Option<usize> {
    let mut end = identifier_end(s, pos)?;
    let mut segments = 1;
    while s.get(end) == Some(&b'.') {
        match identifier_end(s, end + 1) {
            Some(e) => {
                end = e;
                segments += 1;
            }
            None => break,
        }
    }
    (segments > 1).then_some(end)
}

/// `0[xX][0-9a-fA-F]+`
pub(crate) fn hex_number_end(s: &[u8], pos: usize) -> Option<usize> {
    if s.get(pos) != Some(&b'0') || !matches!(s.get(pos + 1), Some(b'x' | b'X')) {
        return None;
    }
    let start = pos + 2;
    let end = digits_end(s, start, u8::is_ascii_hexdigit);
    (end > start).then_some(end)
}

/// `[+-]?[0-9]+\.?[0-9]*([eE][+-][0-9]+)?`, longest match.
pub(crate) fn number_end(s: &[u8], pos: usize) -> Option<usize> {
    let mut p = pos;
    if matches!(s.get(p), Some(b'+' | b'-')) {
        p += 1;
    }
    let int_end = digits_end(s, p, u8::is_ascii_digit);
    if int_end == p {
        return None;
    }
    p = int_end;
    if s.get(p) == Some(&b'.') {
        p = digits_end(s, p + 1, u8::is_ascii_digit);
    }
    if matches!(s.get(p), Some(b'e' | b'E')) && matches!(s.get(p + 1), Some(b'+' | b'-')) {
        let exp_end = digits_end(s, p + 2, u8::is_ascii_digit);
        if exp_end > p + 2 {
            p = exp_end;
        }
    }
    Some(p)
}

/// A hex number or a decimal number (Falco's `NumValue`).
pub(crate) fn num_value_end(s: &[u8], pos: usize) -> Option<usize> {
    hex_number_end(s, pos).or_else(|| number_end(s, pos))
}

fn digits_end(s: &[u8], mut pos: usize, ok: fn(&u8) -> bool) -> usize {
    while pos < s.len() && ok(&s[pos]) {
        pos += 1;
    }
    pos
}

/// `[^()"'[:space:]=,]+`: a bare string value.
pub(crate) fn bare_str_end(s: &[u8], pos: usize) -> Option<usize> {
    let mut end = pos;
    while end < s.len() && is_bare_byte(s[end]) {
        end += 1;
    }
    (end > pos).then_some(end)
}

pub(crate) const fn is_bare_byte(b: u8) -> bool {
    !is_space(b) && !matches!(b, b'(' | b')' | b'"' | b'\'' | b'=' | b',')
}

/// `[^][\"'[:space:]]+`: a bare field argument.
pub(crate) fn field_arg_bare_end(s: &[u8], pos: usize) -> Option<usize> {
    let mut end = pos;
    while end < s.len() && is_field_arg_byte(s[end]) {
        end += 1;
    }
    (end > pos).then_some(end)
}

pub(crate) const fn is_field_arg_byte(b: u8) -> bool {
    !is_space(b) && !matches!(b, b'[' | b']' | b'"' | b'\'')
}

/// Result of scanning a quoted string.
pub(crate) enum Quoted {
    /// Closed; the end offset (after the closing delimiter).
    Closed(usize),
    /// No closing delimiter before the end of input.
    Unterminated,
}

/// A quoted string starting at `pos` (which must hold `'` or `"`). Like Falco, the closing
/// delimiter is the first one *not preceded by a backslash*.
pub(crate) fn quoted_end(s: &[u8], pos: usize) -> Quoted {
    let delim = s[pos];
    let mut prev = delim;
    let mut p = pos + 1;
    while p < s.len() {
        if s[p] == delim && prev != b'\\' {
            return Quoted::Closed(p + 1);
        }
        prev = s[p];
        p += 1;
    }
    Quoted::Unterminated
}

/// True if `word` starts at `pos` and is followed by a byte that is not alphanumeric
/// (Falco's `bool_keyword_follows` test) or by the end of input.
pub(crate) fn word_follows(s: &[u8], pos: usize, word: &[u8]) -> bool {
    s[pos..].starts_with(word)
        && s.get(pos + word.len())
            .is_none_or(|b| !b.is_ascii_alphanumeric())
}

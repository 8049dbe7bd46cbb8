//! Quoted-string escapes, decoded exactly as Falco's filter parser does, and the inverse
//! used by the canonical printer.
//!
//! Falco's rules (libsinsp `unescape_str`):
//! - `\b \f \n \r \t` are the usual control characters; `\\` is a backslash; `\/` is `/`;
//! - `\"` is allowed only inside `"…"` and `\'` only inside `'…'`;
//! - `\xHH` is one byte from exactly two hex digits (so the result may not be UTF-8);
//! - `\ ` (backslash, space) yields a single backslash and drops the space: a legacy quirk
//!   kept because shipped Falco rules rely on it;
//! - any other escape is an error.
//!
//! Falco finds the end of a quoted string by looking for the delimiter *not preceded by a
//! backslash*, so `"a\\"` is not closed by its last quote. The printer therefore writes a
//! trailing backslash as `\x5c`.

use std::fmt;

use crate::ast::Quote;

/// An escape error: byte range inside the token and the message.
pub(crate) struct EscapeError {
    pub start: usize,
    pub end: usize,
    pub message: String,
}

/// Decodes the inside of a quoted token. `token` includes both delimiters.
pub(crate) fn unescape(token: &str, errors: &mut Vec<EscapeError>) -> Vec<u8> {
    let delim = token.as_bytes()[0];
    let inner = &token[1..token.len() - 1];
    let mut out = Vec::with_capacity(inner.len());
    let mut chars = inner.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some((j, e)) = chars.next() else {
            // cannot happen for tokens found by the lexer (the closing quote would be escaped)
            errors.push(EscapeError {
                start: 1 + i,
                end: 1 + i + 1,
                message: "unterminated escape sequence".into(),
            });
            break;
        };
        let err_end = 1 + j + e.len_utf8();
        match e {
            'b' => out.push(0x08),
            'f' => out.push(0x0c),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            ' ' | '\\' => out.push(b'\\'),
            '/' => out.push(b'/'),
            '"' | '\'' => {
                if e as u32 == u32::from(delim) {
                    out.push(e as u8);
                } else if e == '"' {
                    errors.push(EscapeError {
                        start: 1 + i,
                        end: err_end,
                        message: "invalid '\\\"' escape in a single-quoted string".into(),
                    });
                } else {
                    errors.push(EscapeError {
                        start: 1 + i,
                        end: err_end,
                        message: "invalid '\\'' escape in a double-quoted string".into(),
                    });
                }
            }
            'x' => {
                let digits: Vec<(usize, char)> = chars.clone().take(2).collect();
                if digits.len() < 2 {
                    errors.push(EscapeError {
                        start: 1 + i,
                        end: 1 + inner.len(),
                        message: "truncated '\\x' escape: expected two hex digits".into(),
                    });
                    break;
                }
                let (_, h) = digits[0];
                let (k, l) = digits[1];
                chars.next();
                chars.next();
                match (h.to_digit(16), l.to_digit(16)) {
                    #[allow(clippy::cast_possible_truncation, reason = "two hex digits fit a byte")]
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => errors.push(EscapeError {
                        start: 1 + i,
                        end: 1 + k + l.len_utf8(),
                        message: format!("invalid hex escape '\\x{h}{l}'"),
                    }),
                }
            }
            other => errors.push(EscapeError {
                start: 1 + i,
                end: err_end,
                message: format!("unsupported escape sequence '\\{other}'"),
            }),
        }
    }
    out
}

/// Writes `value` as a quoted literal that Falco's parser decodes back to `value`.
pub(crate) fn write_quoted(f: &mut impl fmt::Write, value: &[u8], quote: Quote) -> fmt::Result {
    let delim = if quote == Quote::Single { '\'' } else { '"' };
    f.write_char(delim)?;
    let last = value.len().checked_sub(1);
    let mut idx = 0;
    for chunk in value.utf8_chunks() {
        for c in chunk.valid().chars() {
            let at = idx;
            idx += c.len_utf8();
            match c {
                '\\' if Some(at) == last => f.write_str("\\x5c")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\u{8}' => f.write_str("\\b")?,
                '\u{c}' => f.write_str("\\f")?,
                c if c == delim => {
                    f.write_char('\\')?;
                    f.write_char(c)?;
                }
                c if c.is_control() && (c as u32) < 0x80 => write!(f, "\\x{:02x}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        for b in chunk.invalid() {
            idx += 1;
            write!(f, "\\x{b:02x}")?;
        }
    }
    f.write_char(delim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn un(token: &str) -> (Vec<u8>, Vec<String>) {
        let mut errs = Vec::new();
        let v = unescape(token, &mut errs);
        (v, errs.into_iter().map(|e| e.message).collect())
    }

    fn quoted(value: &[u8], q: Quote) -> String {
        let mut s = String::new();
        write_quoted(&mut s, value, q).unwrap();
        s
    }

    #[test]
    fn falco_escapes() {
        assert_eq!(un(r#""a\"b""#).0, b"a\"b");
        assert_eq!(un(r"'a\'b'").0, b"a'b");
        assert_eq!(un(r#""\b\f\n\r\t\\\/""#).0, b"\x08\x0c\n\r\t\\/");
        assert_eq!(un(r#""\x41\xff""#).0, b"A\xff");
        // legacy: backslash-space is a backslash and the space is dropped
        assert_eq!(un(r#""\ x""#).0, b"\\x");
        assert_eq!(un(r#""\q""#).1, ["unsupported escape sequence '\\q'"]);
        assert_eq!(
            un(r#""\'""#).1,
            ["invalid '\\'' escape in a double-quoted string"]
        );
        assert_eq!(
            un(r#"'\"'"#).1,
            ["invalid '\\\"' escape in a single-quoted string"]
        );
        assert_eq!(
            un(r#""\x4""#).1,
            ["truncated '\\x' escape: expected two hex digits"]
        );
        assert_eq!(un(r#""\xg1""#).1, ["invalid hex escape '\\xg1'"]);
    }

    #[test]
    fn printer_inverts_unescape() {
        for v in [
            &b"plain"[..],
            b"a\"b'c",
            b"end\\",
            b"\\",
            b"\x00\x7f\xff\n",
            "é".as_bytes(),
        ] {
            for q in [Quote::Single, Quote::Double] {
                let text = quoted(v, q);
                assert_eq!(un(&text), (v.to_vec(), vec![]), "{text}");
            }
        }
        assert_eq!(quoted(b"a\\", Quote::Double), r#""a\x5c""#);
    }
}

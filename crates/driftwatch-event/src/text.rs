//! Bytes from the kernel and from containers as text: the one place where driftwatch decides
//! how a hostile name is shown.
//!
//! * [`lossy`]: text that keeps every byte — valid UTF-8 as is, each invalid byte as `\xNN`.
//!   For values that go on as data (alert fields, JSON), where the consumer escapes for itself.
//! * [`escape`] / [`escape_str`]: one unambiguous line of terminal text — a backslash is `\\`,
//!   `\n` `\r` `\t` are written so, other C0 controls and DEL as `\xNN`, C1 controls and the
//!   bidirectional formatting characters (which can reorder what a terminal shows) as
//!   `\u{NNNN}`, invalid UTF-8 as `\xNN`. Nothing printed can break or rewrite the line.

use std::fmt::Write as _;

/// Bytes as text without losing any: valid UTF-8 is kept, every other byte is written `\xNN`.
pub fn lossy(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Whether a character could reorder or hide what a terminal shows: C1 controls and the
/// bidirectional formatting characters (embeddings, overrides, isolates, marks).
fn is_terminal_hostile(c: char) -> bool {
    ('\u{80}'..='\u{9f}').contains(&c)
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}')
}

fn push_escaped(out: &mut String, valid: &str) {
    for c in valid.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_terminal_hostile(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Bytes as one unambiguous line of terminal text (see the module documentation).
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// A string as one unambiguous line of terminal text; a string without anything to escape is
/// returned as is.
pub fn escape_str(s: &str) -> String {
    if !s
        .chars()
        .any(|c| c == '\\' || c.is_control() || is_terminal_hostile(c))
    {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    push_escaped(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossy_keeps_every_byte() {
        assert_eq!(lossy(b"/tmp/\xffevil"), "/tmp/\\xffevil");
        assert_eq!(lossy("/tmp/é".as_bytes()), "/tmp/é");
        assert_eq!(lossy(b"/tmp/a\nb"), "/tmp/a\nb");
    }

    #[test]
    fn escape_makes_one_unambiguous_line() {
        assert_eq!(escape(b"/etc/passwd"), "/etc/passwd");
        assert_eq!(escape(b"/tmp/a\nb"), "/tmp/a\\nb");
        assert_eq!(escape(b"/tmp/\xff\xfe"), "/tmp/\\xff\\xfe");
        assert_eq!(escape(b"/tmp/\x1b[31m"), "/tmp/\\x1b[31m");
        assert_eq!(escape(b"a\\x41"), "a\\\\x41");
        assert_eq!(
            escape("/tmp/\u{202e}gpj.exe".as_bytes()),
            "/tmp/\\u{202e}gpj.exe"
        );
        assert_eq!(escape("a\u{85}b\u{200f}".as_bytes()), "a\\u{85}b\\u{200f}");
        assert_eq!(escape("/tmp/é".as_bytes()), "/tmp/é");
    }

    #[test]
    fn escape_str_agrees_with_escape() {
        for s in [
            "plain",
            "a\nb\tc\u{1b}",
            "back\\slash",
            "\u{2066}x",
            "é\u{7f}",
        ] {
            assert_eq!(escape_str(s), escape(s.as_bytes()), "{s:?}");
        }
        assert_eq!(escape_str("a\nb\tc\u{1b}"), "a\\nb\\tc\\x1b");
    }
}

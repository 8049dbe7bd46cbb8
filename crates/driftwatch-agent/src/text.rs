//! Turning raw bytes from the kernel and containers into text without losing information:
//! valid UTF-8 is kept, every other byte is written as `\xNN`.

/// Decode bytes as UTF-8, escaping invalid bytes as `\xNN` (and a literal backslash stays as is).
pub fn lossy(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Make text safe to print on one terminal line: control characters are escaped.
pub fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_escaped_not_lost() {
        assert_eq!(lossy(b"/tmp/\xffevil"), "/tmp/\\xffevil");
        assert_eq!(lossy("/tmp/é".as_bytes()), "/tmp/é");
    }

    #[test]
    fn control_characters_do_not_break_lines() {
        assert_eq!(one_line("a\nb\tc\u{1b}"), "a\\nb\\tc\\u{1b}");
        assert_eq!(one_line("plain"), "plain");
    }
}

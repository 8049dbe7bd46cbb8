//! Paths are bytes: how they are shown.
//!
//! * [`escape`]: one line of text, unambiguous: `\\` for a backslash, `\n`, `\t`, `\r`, `\xNN`
//!   for other control bytes, DEL and every byte that is not part of valid UTF-8.
//! * [`json_path`]: the exact string when the bytes are UTF-8 (JSON escapes control characters
//!   itself), else the escaped form plus the bytes in hex, so nothing is lost.

use std::fmt::Write as _;

/// Escape `bytes` for a single line of terminal text.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                // C1 controls and bidi overrides could rewrite the terminal line.
                c if ('\u{80}'..='\u{9f}').contains(&c)
                    || ('\u{202a}'..='\u{202e}').contains(&c)
                    || ('\u{2066}'..='\u{2069}').contains(&c) =>
                {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// The JSON form of a path: `(text, hex)`; `hex` is set when the bytes are not UTF-8 (then
/// `text` is [`escape`]d and only informative).
pub fn json_path(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), None),
        Err(_) => (escape(bytes), Some(hex::encode(bytes))),
    }
}

/// The bytes of a JSON path: `hex` wins when present.
pub fn from_json_path(text: &str, hex: Option<&str>) -> Vec<u8> {
    hex.and_then(|h| hex::decode(h).ok())
        .unwrap_or_else(|| text.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_hostile_names() {
        assert_eq!(escape(b"/etc/passwd"), "/etc/passwd");
        assert_eq!(escape(b"/tmp/a\nb"), "/tmp/a\\nb");
        assert_eq!(escape(b"/tmp/\xff\xfe"), "/tmp/\\xff\\xfe");
        assert_eq!(escape(b"/tmp/\x1b[31m"), "/tmp/\\x1b[31m");
        assert_eq!(escape(b"a\\x41"), "a\\\\x41");
        assert_eq!(
            escape("/tmp/\u{202e}gpj.exe".as_bytes()),
            "/tmp/\\u{202e}gpj.exe"
        );
        assert_eq!(escape("/tmp/é".as_bytes()), "/tmp/é");
    }

    #[test]
    fn json_paths_round_trip() {
        for p in [&b"/a/b"[..], b"/tmp/\xff", b"/x\ny", b"/\\xff"] {
            let (t, h) = json_path(p);
            assert_eq!(from_json_path(&t, h.as_deref()), p);
        }
        assert_eq!(json_path(b"/a\nb").1, None);
    }
}

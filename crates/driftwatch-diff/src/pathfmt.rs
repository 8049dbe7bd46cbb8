//! Paths are bytes: how they are shown.
//!
//! * [`escape`]: one line of text, unambiguous: `\\` for a backslash, `\n`, `\t`, `\r`, `\xNN`
//!   for other control bytes, DEL and every byte that is not part of valid UTF-8.
//! * [`json_path`]: the exact string when the bytes are UTF-8 (JSON escapes control characters
//!   itself), else the escaped form plus the bytes in hex, so nothing is lost.

/// Escape `bytes` for a single line of terminal text (the one escaper, `driftwatch-event`'s).
pub use driftwatch_event::text::escape;

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
    fn json_paths_round_trip() {
        for p in [&b"/a/b"[..], b"/tmp/\xff", b"/x\ny", b"/\\xff"] {
            let (t, h) = json_path(p);
            assert_eq!(from_json_path(&t, h.as_deref()), p);
        }
        assert_eq!(json_path(b"/a\nb").1, None);
    }
}

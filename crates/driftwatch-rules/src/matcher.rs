//! Prepared string matchers: globs (`glob`/`iglob`), path-prefix sets (`pmatch`) and the hex
//! byte strings of `bcontains`/`bstartswith`.

pub(crate) use driftwatch_event::IpNet;

/// One element of a compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Byte(u8),
    /// `?`
    One,
    /// `*`
    Star,
    /// `[…]` / `[!…]`: inclusive byte ranges.
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
}

/// A glob with `fnmatch(3)` semantics as Falco uses them (`FNM_NOESCAPE`, no `FNM_PATHNAME`):
/// `*` matches any bytes including `/`, `?` one byte, `[a-z]`/`[!…]`/`[^…]` a class; a
/// backslash is an ordinary byte. `iglob` folds ASCII case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    toks: Vec<Tok>,
    fold: bool,
}

impl Glob {
    #[must_use]
    pub fn new(pattern: &[u8], fold_case: bool) -> Glob {
        let fold = |b: u8| if fold_case { b.to_ascii_lowercase() } else { b };
        let mut toks = Vec::new();
        let mut i = 0;
        while i < pattern.len() {
            let b = pattern[i];
            match b {
                b'*' => {
                    if toks.last() != Some(&Tok::Star) {
                        toks.push(Tok::Star);
                    }
                    i += 1;
                }
                b'?' => {
                    toks.push(Tok::One);
                    i += 1;
                }
                b'[' => match parse_class(pattern, i + 1, fold_case) {
                    Some((tok, next)) => {
                        toks.push(tok);
                        i = next;
                    }
                    None => {
                        toks.push(Tok::Byte(b'['));
                        i += 1;
                    }
                },
                _ => {
                    toks.push(Tok::Byte(fold(b)));
                    i += 1;
                }
            }
        }
        Glob {
            toks,
            fold: fold_case,
        }
    }

    #[must_use]
    pub fn matches(&self, s: &[u8]) -> bool {
        let fold = |b: u8| if self.fold { b.to_ascii_lowercase() } else { b };
        let (mut p, mut i) = (0usize, 0usize);
        let mut back: Option<(usize, usize)> = None;
        while i < s.len() {
            let c = fold(s[i]);
            let step = match self.toks.get(p) {
                Some(Tok::Star) => {
                    back = Some((p, i));
                    p += 1;
                    continue;
                }
                Some(Tok::One) => true,
                Some(Tok::Byte(b)) => *b == c,
                Some(Tok::Class { negated, ranges }) => {
                    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                }
                None => false,
            };
            if step {
                p += 1;
                i += 1;
            } else if let Some((bp, bi)) = back {
                p = bp + 1;
                i = bi + 1;
                back = Some((bp, bi + 1));
            } else {
                return false;
            }
        }
        self.toks[p..].iter().all(|t| *t == Tok::Star)
    }
}

fn parse_class(pat: &[u8], mut i: usize, fold: bool) -> Option<(Tok, usize)> {
    let negated = matches!(pat.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let &b = pat.get(i)?;
        if b == b']' && !first {
            return Some((Tok::Class { negated, ranges }, i + 1));
        }
        first = false;
        let (lo, next) =
            if pat.get(i + 1) == Some(&b'-') && pat.get(i + 2).is_some_and(|c| *c != b']') {
                ((b, pat[i + 2]), i + 3)
            } else {
                ((b, b), i + 1)
            };
        let (a, z) = lo;
        if fold {
            // add both cases of letters in the range
            ranges.push((a.to_ascii_lowercase(), z.to_ascii_lowercase()));
        }
        ranges.push((a, z));
        i = next;
    }
}

/// A set of path prefixes matched on whole components (`pmatch`): `/usr/bin` matches
/// `/usr/bin` and `/usr/bin/ls`, not `/usr/binx`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrefixSet {
    prefixes: Vec<Vec<u8>>,
}

impl PrefixSet {
    #[must_use]
    pub fn new(items: impl IntoIterator<Item = Vec<u8>>) -> PrefixSet {
        let mut prefixes: Vec<Vec<u8>> = items
            .into_iter()
            .map(|mut p| {
                while p.len() > 1 && p.ends_with(b"/") {
                    p.pop();
                }
                p
            })
            .collect();
        prefixes.sort();
        prefixes.dedup();
        PrefixSet { prefixes }
    }

    #[must_use]
    pub fn matches(&self, path: &[u8]) -> bool {
        self.prefixes.iter().any(|p| {
            path.starts_with(p)
                && (path.len() == p.len() || p.ends_with(b"/") || path[p.len()] == b'/')
        })
    }
}

/// Decodes Falco's hex notation of `bcontains`/`bstartswith` values (`'0x'` not allowed, two
/// hex digits per byte, either case).
#[must_use]
pub fn decode_hex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|c| {
            let h = (c[0] as char).to_digit(16)?;
            let l = (c[1] as char).to_digit(16)?;
            u8::try_from(h * 16 + l).ok()
        })
        .collect()
}

/// `memmem`: does `hay` contain `needle`?
#[must_use]
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Case-insensitive (ASCII) `contains`; `needle` must already be lowercase.
#[must_use]
pub fn icontains(hay: &[u8], needle_lower: &[u8]) -> bool {
    needle_lower.is_empty()
        || hay.windows(needle_lower.len()).any(|w| {
            w.iter()
                .zip(needle_lower)
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_like_fnmatch() {
        let g = |p: &str, s: &str| Glob::new(p.as_bytes(), false).matches(s.as_bytes());
        assert!(g("*", ""));
        assert!(g("/tmp/*", "/tmp/a/b"));
        assert!(!g("/tmp/?", "/tmp/ab"));
        assert!(g("*.sh", "/x/y.sh"));
        assert!(g("a*b*c", "aXbYbZc"));
        assert!(!g("a*b*c", "aXbYbZ"));
        assert!(g("[a-c]x", "bx"));
        assert!(!g("[!a-c]x", "bx"));
        assert!(g("[^a-c]x", "dx"));
        assert!(g("[]]", "]"));
        assert!(g("[", "["));
        assert!(g("a\\b", "a\\b"));
        assert!(Glob::new(b"/USR/*", true).matches(b"/usr/Bin"));
        assert!(Glob::new(b"[A-C]", true).matches(b"b"));
    }

    #[test]
    fn pmatch_whole_components() {
        let p = PrefixSet::new(vec![b"/usr/bin/".to_vec(), b"/opt".to_vec()]);
        assert!(p.matches(b"/usr/bin"));
        assert!(p.matches(b"/usr/bin/ls"));
        assert!(!p.matches(b"/usr/binx"));
        assert!(p.matches(b"/opt/a"));
        assert!(!p.matches(b"/op"));
        assert!(PrefixSet::new(vec![b"/".to_vec()]).matches(b"/etc"));
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex(b"7F454c46"), Some(vec![0x7f, b'E', b'L', b'F']));
        assert_eq!(decode_hex(b"7F4"), None);
        assert_eq!(decode_hex(b"zz"), None);
    }
}

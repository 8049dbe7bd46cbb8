//! Prepared string matchers: globs (`glob`/`iglob`), path-prefix sets (`pmatch`) and the hex
//! byte strings of `bcontains`/`bstartswith`.

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

/// A network for Falco's ipnet fields (`fd.net = "10.0.0.0/8"`): an address and a prefix
/// length. An IPv4 network never contains an IPv6 address, nor the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct IpNet {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `addr/len` or a single address (`/32`, `/128`); `None` when it is neither or
    /// the length is longer than the address.
    pub(crate) fn parse(text: &str) -> Option<IpNet> {
        let text = text.trim();
        let (a, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match len {
            Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => l.parse().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// Whether the address written as `text` (as a field gives it) is in the network.
    pub(crate) fn contains_text(&self, text: &[u8]) -> bool {
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<std::net::IpAddr>().ok())
            .is_some_and(|a| self.contains(a))
    }

    /// Whether `addr` is in the network.
    pub(crate) fn contains(&self, addr: std::net::IpAddr) -> bool {
        use std::net::IpAddr as A;
        let keep = |bits: u32, width: u32| -> u128 {
            if bits == 0 {
                0
            } else {
                (u128::MAX >> (128 - width)) & !((1u128 << (width - bits)) - 1)
            }
        };
        match (self.addr, addr) {
            (A::V4(n), A::V4(a)) => {
                let m = keep(u32::from(self.prefix), 32);
                u128::from(u32::from(n)) & m == u128::from(u32::from(a)) & m
            }
            (A::V6(n), A::V6(a)) => {
                let m = if self.prefix == 128 {
                    u128::MAX
                } else {
                    keep(u32::from(self.prefix), 128)
                };
                u128::from(n) & m == u128::from(a) & m
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod ipnet_tests {
    use super::IpNet;

    #[test]
    fn cidr_membership() {
        let n = IpNet::parse("10.0.0.0/8").unwrap_or_else(|| panic!("parse"));
        assert!(n.contains_text(b"10.1.2.3"));
        assert!(!n.contains_text(b"11.0.0.1"));
        assert!(!n.contains_text(b"::ffff:10.0.0.1"), "no family mixing");
        assert!(!n.contains_text(b"not an address"));
        let n = IpNet::parse("192.168.0.0/16").unwrap_or_else(|| panic!("parse"));
        assert!(n.contains_text(b"192.168.255.1") && !n.contains_text(b"192.169.0.1"));
        let all = IpNet::parse("0.0.0.0/0").unwrap_or_else(|| panic!("parse"));
        assert!(all.contains_text(b"8.8.8.8") && !all.contains_text(b"::1"));
        let one = IpNet::parse("127.0.0.1").unwrap_or_else(|| panic!("parse"));
        assert!(one.contains_text(b"127.0.0.1") && !one.contains_text(b"127.0.0.2"));
        let v6 = IpNet::parse("fd00::/8").unwrap_or_else(|| panic!("parse"));
        assert!(v6.contains_text(b"fd12:3456::1") && !v6.contains_text(b"fe80::1"));
        let host6 = IpNet::parse("::1/128").unwrap_or_else(|| panic!("parse"));
        assert!(host6.contains_text(b"::1") && !host6.contains_text(b"::2"));
        let all6 = IpNet::parse("::/0").unwrap_or_else(|| panic!("parse"));
        assert!(all6.contains_text(b"2001:db8::1"));
        let odd = IpNet::parse("10.0.0.0/9").unwrap_or_else(|| panic!("parse"));
        assert!(odd.contains_text(b"10.127.0.1") && !odd.contains_text(b"10.128.0.1"));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/-1",
        ] {
            assert_eq!(IpNet::parse(bad), None, "{bad}");
        }
    }
}

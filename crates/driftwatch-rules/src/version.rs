//! Engine and plugin versions as rule files state them.

use std::fmt;

/// A `major.minor.patch` version, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EngineVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// The rule-engine version driftwatch implements, in Falco's numbering: the condition language,
/// rule-file keys and exception semantics of Falco's engine 0.57.0, which the falcosecurity
/// rule files this project targets require (`required_engine_version: 0.57.0`).
pub const ENGINE_VERSION: EngineVersion = EngineVersion {
    major: 0,
    minor: 57,
    patch: 0,
};

impl EngineVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> EngineVersion {
        EngineVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses `x.y.z` (decimal numbers; anything after the patch number, such as `-rc1`, is
    /// ignored, as libsinsp's version parser does).
    pub fn parse(s: &str) -> Option<EngineVersion> {
        let mut parts = s.splitn(3, '.');
        let major = parse_num(parts.next()?)?;
        let minor = parse_num(parts.next()?)?;
        let rest = parts.next()?;
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let patch = parse_num(&rest[..digits])?;
        Some(EngineVersion::new(major, minor, patch))
    }

    /// Falco's rule: same major version, and not older than `required`.
    pub fn compatible_with(self, required: EngineVersion) -> bool {
        self.major == required.major && self >= required
    }
}

fn parse_num(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for EngineVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_compares() {
        assert_eq!(
            EngineVersion::parse("0.57.0"),
            Some(EngineVersion::new(0, 57, 0))
        );
        assert_eq!(
            EngineVersion::parse("1.2.3-rc1"),
            Some(EngineVersion::new(1, 2, 3))
        );
        assert_eq!(EngineVersion::parse("1.2"), None);
        assert_eq!(EngineVersion::parse("a.b.c"), None);
        assert!(ENGINE_VERSION.compatible_with(EngineVersion::new(0, 26, 0)));
        assert!(!ENGINE_VERSION.compatible_with(EngineVersion::new(0, 58, 0)));
        assert!(!ENGINE_VERSION.compatible_with(EngineVersion::new(1, 0, 0)));
    }
}

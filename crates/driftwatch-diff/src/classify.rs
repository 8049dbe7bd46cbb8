//! Which category a changed path belongs to (see [`Category`]).
//!
//! Decided in this order: `binary` (an ELF file, a script with an exec bit, or any non-directory
//! in a binary directory — a binary dropped in `/tmp` is a binary, not a temp file), `package`
//! (package databases), `config` (`/etc` and well-known configuration paths), the expected
//! categories `log`/`temp`/`cache` (configurable prefixes), `package` again for paths owned by
//! a package, then `other`.
//!
//! A rule is `CATEGORY:PATTERN`; a pattern is an absolute path prefix matched on whole
//! components, where a `*` component matches any one component (`/home/*/.cache`).

use crate::error::DiffError;
use crate::model::{Category, FileType};

/// Directories whose entries are executables.
pub const BINARY_DIRS: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/usr/libexec",
    "/usr/local/libexec",
];

/// Package databases of the supported managers.
pub const PACKAGE_DB_PATTERNS: &[&str] = &[
    "/var/lib/dpkg",
    "/lib/apk/db",
    "/var/lib/rpm",
    "/usr/lib/sysimage/rpm",
    "/var/lib/apt/extended_states",
];

/// Well-known configuration paths outside `/etc`.
pub const CONFIG_PATTERNS: &[&str] = &[
    "/etc",
    "/usr/local/etc",
    "/root/.ssh",
    "/home/*/.ssh",
    "/root/.bashrc",
    "/root/.profile",
    "/home/*/.bashrc",
    "/home/*/.profile",
    "/var/spool/cron",
    "/usr/lib/systemd/system",
];

/// The default expected-to-change paths.
pub const DEFAULT_EXPECTED: &[(Category, &str)] = &[
    (Category::Log, "/var/log"),
    (Category::Temp, "/tmp"),
    (Category::Temp, "/var/tmp"),
    (Category::Temp, "/run"),
    (Category::Temp, "/var/run"),
    (Category::Temp, "/dev/shm"),
    (Category::Cache, "/var/cache"),
    (Category::Cache, "/root/.cache"),
    (Category::Cache, "/home/*/.cache"),
    (Category::Cache, "/var/lib/apt/lists"),
    (Category::Cache, "/root/.npm"),
];

#[derive(Debug, Clone)]
struct Pattern {
    comps: Vec<Vec<u8>>,
}

impl Pattern {
    fn parse(s: &str) -> Option<Pattern> {
        if !s.starts_with('/') {
            return None;
        }
        let comps: Vec<Vec<u8>> = s
            .split('/')
            .filter(|c| !c.is_empty())
            .map(|c| c.as_bytes().to_vec())
            .collect();
        if comps.iter().any(|c| c == b"." || c == b"..") {
            return None;
        }
        Some(Pattern { comps })
    }

    fn matches(&self, path: &[u8]) -> bool {
        let mut it = path.split(|b| *b == b'/').filter(|c| !c.is_empty());
        self.comps.iter().all(|pc| match it.next() {
            Some(c) => pc == b"*" || pc.as_slice() == c,
            None => false,
        })
    }
}

/// What the classifier knows about an entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts {
    pub file_type: Option<FileType>,
    /// The content starts with `\x7fELF`.
    pub elf: bool,
    /// The content starts with `#!`.
    pub script: bool,
    /// Any exec bit is set.
    pub exec_bits: bool,
    /// A package owns the path.
    pub package_owned: bool,
}

/// Classification rules.
#[derive(Debug, Clone)]
pub struct Classifier {
    binary_dirs: Vec<Pattern>,
    package_dbs: Vec<Pattern>,
    config: Vec<Pattern>,
    expected: Vec<(Category, Pattern)>,
}

impl Default for Classifier {
    fn default() -> Self {
        let p = |v: &[&str]| v.iter().filter_map(|s| Pattern::parse(s)).collect();
        Classifier {
            binary_dirs: p(BINARY_DIRS),
            package_dbs: p(PACKAGE_DB_PATTERNS),
            config: p(CONFIG_PATTERNS),
            expected: DEFAULT_EXPECTED
                .iter()
                .filter_map(|(c, s)| Some((*c, Pattern::parse(s)?)))
                .collect(),
        }
    }
}

impl Classifier {
    /// Without the default expected paths.
    pub fn without_default_expected(mut self) -> Self {
        self.expected.clear();
        self
    }

    /// Add a rule `CATEGORY:PATTERN` (`log`, `temp` or `cache`, or `config`/`binary`/`package`
    /// to mark more paths as such).
    pub fn add_rule(&mut self, rule: &str) -> Result<(), DiffError> {
        let err = |reason| DiffError::Rule {
            rule: rule.to_owned(),
            reason,
        };
        let (cat, pat) = rule
            .split_once(':')
            .ok_or_else(|| err("expected CATEGORY:/PATH"))?;
        let cat = Category::parse(cat).ok_or_else(|| {
            err("category must be one of binary, package, config, log, temp, cache")
        })?;
        let pat = Pattern::parse(pat)
            .ok_or_else(|| err("the pattern must be an absolute path without . or .."))?;
        match cat {
            Category::Binary => self.binary_dirs.push(pat),
            Category::Package => self.package_dbs.push(pat),
            Category::Config => self.config.push(pat),
            Category::Other => return Err(err("`other` is what no rule matches")),
            c => self.expected.push((c, pat)),
        }
        Ok(())
    }

    /// The category of `path` (absolute, bytes).
    pub fn classify(&self, path: &[u8], f: &Facts) -> Category {
        let non_dir = !matches!(f.file_type, Some(FileType::Dir));
        if f.elf || (f.script && f.exec_bits) {
            return Category::Binary;
        }
        if non_dir
            && self
                .binary_dirs
                .iter()
                .any(|p| p.matches(path) && p.comps.len() < depth(path))
        {
            return Category::Binary;
        }
        if self.package_dbs.iter().any(|p| p.matches(path)) {
            return Category::Package;
        }
        if self.config.iter().any(|p| p.matches(path)) {
            return Category::Config;
        }
        if let Some((c, _)) = self.expected.iter().find(|(_, p)| p.matches(path)) {
            return *c;
        }
        if f.package_owned || is_language_package_path(path) {
            return Category::Package;
        }
        Category::Other
    }
}

fn depth(path: &[u8]) -> usize {
    path.split(|b| *b == b'/').filter(|c| !c.is_empty()).count()
}

/// Inside a Python site-packages/dist-packages or a node_modules directory.
fn is_language_package_path(path: &[u8]) -> bool {
    path.split(|b| *b == b'/')
        .any(|c| c == b"site-packages" || c == b"dist-packages" || c == b"node_modules")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Facts {
        Facts {
            file_type: Some(FileType::File),
            ..Facts::default()
        }
    }

    #[test]
    fn categories() {
        let c = Classifier::default();
        let elf = Facts {
            elf: true,
            ..file()
        };
        assert_eq!(c.classify(b"/tmp/x", &elf), Category::Binary);
        let script = Facts {
            script: true,
            exec_bits: true,
            ..file()
        };
        assert_eq!(c.classify(b"/var/log/run.sh", &script), Category::Binary);
        let text_script = Facts {
            script: true,
            ..file()
        };
        assert_eq!(c.classify(b"/var/log/run.sh", &text_script), Category::Log);
        assert_eq!(c.classify(b"/usr/bin/anything", &file()), Category::Binary);
        let dir = Facts {
            file_type: Some(FileType::Dir),
            ..Facts::default()
        };
        assert_eq!(
            c.classify(b"/usr/bin", &file()),
            Category::Other,
            "the dir entry itself"
        );
        assert_eq!(c.classify(b"/usr/bin/sub", &dir), Category::Other);
        assert_eq!(
            c.classify(b"/var/lib/dpkg/status", &file()),
            Category::Package
        );
        assert_eq!(c.classify(b"/etc/passwd", &file()), Category::Config);
        assert_eq!(
            c.classify(b"/etcetera", &file()),
            Category::Other,
            "whole components"
        );
        assert_eq!(
            c.classify(b"/home/bob/.ssh/authorized_keys", &file()),
            Category::Config
        );
        assert_eq!(c.classify(b"/home/bob/.cache/x", &file()), Category::Cache);
        assert_eq!(c.classify(b"/tmp/notes.txt", &file()), Category::Temp);
        assert_eq!(
            c.classify(b"/usr/lib/python3/dist-packages/x.py", &file()),
            Category::Package
        );
        let owned = Facts {
            package_owned: true,
            ..file()
        };
        assert_eq!(c.classify(b"/usr/share/doc/x", &owned), Category::Package);
        assert_eq!(c.classify(b"/srv/data", &file()), Category::Other);
    }

    #[test]
    fn rules() {
        let mut c = Classifier::default().without_default_expected();
        assert_eq!(c.classify(b"/tmp/x", &file()), Category::Other);
        c.add_rule("log:/srv/*/logs").unwrap();
        assert_eq!(c.classify(b"/srv/app/logs/a.log", &file()), Category::Log);
        assert_eq!(c.classify(b"/srv/app/data", &file()), Category::Other);
        assert!(c.add_rule("nope:/x").is_err());
        assert!(c.add_rule("log:relative").is_err());
        assert!(c.add_rule("log:/a/../b").is_err());
        assert!(c.add_rule("other:/x").is_err());
    }
}

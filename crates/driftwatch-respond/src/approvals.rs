//! Approved drift: the approvals file (`--approvals FILE`, `[response] approvals`) and the rule
//! allow-lists, as one set of entries that both the alerts and enforcement consult.
//!
//! An entry matches when all its matchers match. Matchers about the container (`image`,
//! `digest`, `workload`, `container`, `kind`) alone approve the whole container: it is left out
//! of the kernel's enforce policy. Matchers about the file (`path`, `sha256`, and the rules'
//! `drift_allowed_paths` prefixes) approve that file only: the exec gate allows it in the kernel
//! (`dw_allow`) and the agent does not alert on it.
//!
//! ```yaml
//! approvals:
//!   - reason: plugins are installed at start by the entrypoint
//!     image: registry.example/app
//!     path: /opt/plugins/**
//!     expires: 2027-01-31T00:00:00Z
//! ```

use crate::yaml::checked;
use driftwatch_baseline::Workload;
use driftwatch_event::{ContainerInfo, ContainerKind};
use serde::{Deserialize, Deserializer};
use std::path::Path;
use std::sync::Mutex;

/// The approvals file cannot be used (the crate's one YAML file error).
pub use crate::yaml::YamlFileError as ApprovalsError;

/// A path glob: `*` any bytes but `/`, `?` one byte but `/`, a whole component `**` any number
/// of components (none included). Absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathGlob {
    text: String,
    parts: Vec<Vec<u8>>,
}

impl PathGlob {
    /// Parses an absolute glob.
    pub fn parse(text: &str) -> Result<PathGlob, String> {
        if !text.starts_with('/') {
            return Err(format!("{text:?} is not an absolute path"));
        }
        let parts = text
            .split('/')
            .filter(|p| !p.is_empty())
            .map(|p| p.as_bytes().to_vec())
            .collect();
        Ok(PathGlob {
            text: text.to_string(),
            parts,
        })
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether container path `path` matches.
    pub fn matches(&self, path: &[u8]) -> bool {
        let comps: Vec<&[u8]> = path
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        match_parts(&self.parts, &comps)
    }
}

fn match_parts(pat: &[Vec<u8>], comps: &[&[u8]]) -> bool {
    match pat.split_first() {
        None => comps.is_empty(),
        Some((p, rest)) if p.as_slice() == b"**" => {
            (0..=comps.len()).any(|skip| match_parts(rest, &comps[skip..]))
        }
        Some((p, rest)) => match comps.split_first() {
            Some((c, crest)) => match_component(p, c) && match_parts(rest, crest),
            None => false,
        },
    }
}

/// `*` (any bytes) and `?` (one byte) wildcards over the whole of `c` (within one path
/// component for path globs; over a whole value for the playbooks' selectors). The classic
/// backtracking-to-the-last-star walk: O(len(p) × len(c)) at worst, whatever the input (the
/// values matched come from containers).
pub(crate) fn match_component(p: &[u8], c: &[u8]) -> bool {
    let (mut pi, mut ci) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ci < c.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ci));
                pi += 1;
            }
            Some(b'?') => {
                pi += 1;
                ci += 1;
            }
            Some(b) if *b == c[ci] => {
                pi += 1;
                ci += 1;
            }
            _ => match star {
                Some((sp, sc)) => {
                    pi = sp + 1;
                    ci = sc + 1;
                    star = Some((sp, sc + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

/// Whether `path` is `prefix` or under it, whole components (the rules' `pmatch`).
fn under(prefix: &[u8], path: &[u8]) -> bool {
    let prefix = match prefix {
        [rest @ .., b'/'] if !rest.is_empty() => rest,
        p => p,
    };
    path.starts_with(prefix)
        && (path.len() == prefix.len() || prefix == b"/" || path.get(prefix.len()) == Some(&b'/'))
}

/// One approval: every matcher given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approval {
    /// Why it is approved (required in the file).
    pub reason: String,
    /// Where it comes from: `FILE:LINE` style text for the file, the list's name for the rules.
    pub origin: String,
    /// Seconds since the epoch after which it no longer matches.
    pub expires: Option<u64>,
    pub image: Option<String>,
    pub digest: Option<String>,
    pub workload: Option<String>,
    pub container: Option<String>,
    pub kind: Option<ContainerKind>,
    pub path: Option<PathGlob>,
    /// Path prefixes, whole components (from the rules' `drift_allowed_paths`).
    pub path_prefix: Option<Vec<u8>>,
    /// Paths that start with these bytes (a rule exception's `startswith`).
    pub path_starts: Option<Vec<u8>>,
    /// This exact path (a rule exception's `=`).
    pub path_is: Option<Vec<u8>>,
    pub sha256: Option<[u8; 32]>,
}

impl Approval {
    /// It names a file (`path`, `sha256`): it approves files, not the whole container.
    pub fn is_about_files(&self) -> bool {
        self.path.is_some()
            || self.path_prefix.is_some()
            || self.path_starts.is_some()
            || self.path_is.is_some()
            || self.sha256.is_some()
    }

    fn expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }

    /// The container matchers all match `c`.
    fn matches_container(&self, c: &ContainerInfo) -> bool {
        self.image
            .as_ref()
            .is_none_or(|i| *i == c.image_repository || *i == c.image_ref)
            && self
                .digest
                .as_ref()
                .is_none_or(|d| c.image_digest.as_deref() == Some(d.as_str()))
            && self.container.as_ref().is_none_or(|n| *n == c.name)
            && self.kind.is_none_or(|k| k == c.kind)
            && self
                .workload
                .as_ref()
                .is_none_or(|w| *w == Workload::of(c).key)
    }

    /// The path matchers match `path`.
    fn matches_path(&self, path: &[u8]) -> bool {
        self.path.as_ref().is_none_or(|g| g.matches(path))
            && self.path_prefix.as_ref().is_none_or(|p| under(p, path))
            && self
                .path_starts
                .as_ref()
                .is_none_or(|p| path.starts_with(p))
            && self.path_is.as_ref().is_none_or(|p| p.as_slice() == path)
    }
}

/// Every approval the agent knows (the file's, then the rules'), and which expired entries were
/// already logged.
#[derive(Debug, Default)]
pub struct Approvals {
    entries: Vec<Approval>,
    expired_logged: Mutex<Vec<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    approvals: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawFields")]
struct RawEntry(Approval);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFields {
    reason: String,
    #[serde(default, deserialize_with = "rfc3339")]
    expires: Option<u64>,
    image: Option<String>,
    digest: Option<String>,
    workload: Option<String>,
    container: Option<String>,
    #[serde(default, deserialize_with = "kind")]
    kind: Option<ContainerKind>,
    #[serde(default, deserialize_with = "glob")]
    path: Option<PathGlob>,
    #[serde(default, deserialize_with = "sha256")]
    sha256: Option<[u8; 32]>,
}

impl TryFrom<RawFields> for RawEntry {
    type Error = String;

    fn try_from(r: RawFields) -> Result<RawEntry, String> {
        if r.reason.trim().is_empty() {
            return Err("reason: must not be empty".into());
        }
        let a = Approval {
            reason: r.reason,
            origin: String::new(),
            expires: r.expires,
            image: r.image,
            digest: r.digest,
            workload: r.workload,
            container: r.container,
            kind: r.kind,
            path: r.path,
            path_prefix: None,
            path_starts: None,
            path_is: None,
            sha256: r.sha256,
        };
        let any = a.image.is_some()
            || a.digest.is_some()
            || a.workload.is_some()
            || a.container.is_some()
            || a.kind.is_some()
            || a.is_about_files();
        if !any {
            return Err(format!(
                "approval {:?} has no matcher (image, digest, workload, container, kind, path, sha256): it would approve everything",
                a.reason
            ));
        }
        Ok(RawEntry(a))
    }
}

fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    checked(d, |s| {
        driftwatch_event::parse_rfc3339_secs(s).map_err(|e| e.to_string())
    })
}

fn kind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ContainerKind>, D::Error> {
    checked(d, |s| {
        ContainerKind::parse(s)
            .ok_or_else(|| format!("{s:?} is not one of app, init, ephemeral, sandbox, unknown"))
    })
}

fn glob<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathGlob>, D::Error> {
    checked(d, PathGlob::parse)
}

fn sha256<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
    checked(d, parse_sha256)
}

/// 64 hex digits, optionally after `sha256:`.
fn parse_sha256(s: &str) -> Result<[u8; 32], String> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    let bad = || format!("{s:?} is not 64 hex digits");
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(out)
}

impl Approvals {
    /// No approvals.
    pub fn none() -> Approvals {
        Approvals::default()
    }

    /// Reads an approvals file; every mistake is `file:line:col`.
    pub fn from_file(path: &Path) -> Result<Approvals, ApprovalsError> {
        let text = crate::yaml::read(path)?;
        Approvals::from_yaml(path, &text)
    }

    /// Parses approvals text (`path` names it in errors).
    pub fn from_yaml(path: &Path, text: &str) -> Result<Approvals, ApprovalsError> {
        let raw: RawFile = crate::yaml::parse(path, text)?;
        let entries: Vec<Approval> = raw
            .approvals
            .into_iter()
            .enumerate()
            .map(|(i, RawEntry(mut a))| {
                a.origin = format!("{}: approvals[{i}]", path.display());
                a
            })
            .collect();
        Ok(Approvals::from_entries(entries))
    }

    /// Approvals from entries (the file's, the rules').
    pub fn from_entries(entries: Vec<Approval>) -> Approvals {
        let n = entries.len();
        Approvals {
            entries,
            expired_logged: Mutex::new(vec![false; n]),
        }
    }

    /// Adds the rule allow-lists: `drift_allowed_paths` (path prefixes, whole components),
    /// `drift_allowed_images` (image repositories) and `known_init_containers` (container
    /// names).
    pub fn add_rule_lists(&mut self, paths: &[String], images: &[String], init_names: &[String]) {
        let mut add = |list: &str, a: Approval| {
            self.entries.push(Approval {
                reason: format!("rules: {list}"),
                origin: format!("rules list {list}"),
                ..a
            });
        };
        for p in paths.iter().filter(|p| !p.is_empty()) {
            add(
                "drift_allowed_paths",
                Approval {
                    path_prefix: Some(p.as_bytes().to_vec()),
                    ..Approval::default()
                },
            );
        }
        for i in images.iter().filter(|i| !i.is_empty()) {
            add(
                "drift_allowed_images",
                Approval {
                    image: Some(i.clone()),
                    ..Approval::default()
                },
            );
        }
        for n in init_names.iter().filter(|n| !n.is_empty()) {
            add(
                "known_init_containers",
                Approval {
                    container: Some(n.clone()),
                    ..Approval::default()
                },
            );
        }
        if let Ok(mut l) = self.expired_logged.lock() {
            l.resize(self.entries.len(), false);
        }
    }

    /// Adds one entry (the agent's translation of a rule exception).
    pub fn push(&mut self, a: Approval) {
        self.entries.push(a);
        if let Ok(mut l) = self.expired_logged.lock() {
            l.resize(self.entries.len(), false);
        }
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Some entry names files (the exec gate has to judge them).
    pub fn has_file_entries(&self) -> bool {
        self.entries.iter().any(Approval::is_about_files)
    }

    /// The live entries at `now` (expired ones logged once).
    fn live(&self, now: u64) -> impl Iterator<Item = &Approval> {
        self.entries.iter().enumerate().filter_map(move |(i, a)| {
            if !a.expired(now) {
                return Some(a);
            }
            if let Ok(mut l) = self.expired_logged.lock() {
                if let Some(seen) = l.get_mut(i) {
                    if !*seen {
                        *seen = true;
                        tracing::info!(origin = %a.origin, reason = %a.reason, "approval expired: it no longer matches");
                    }
                }
            }
            None
        })
    }

    /// The entry that approves the whole container `c` at `now` (no file matchers).
    pub fn container(&self, c: &ContainerInfo, now: u64) -> Option<&Approval> {
        self.live(now)
            .find(|a| !a.is_about_files() && a.matches_container(c))
    }

    /// The entry that approves the file at container path `path` in `c` at `now`; `sha256`
    /// gives the file's hash when an entry asks for it (`None`: not known, no match).
    pub fn file(
        &self,
        c: &ContainerInfo,
        path: &[u8],
        sha256: &mut dyn FnMut() -> Option<[u8; 32]>,
        now: u64,
    ) -> Option<&Approval> {
        let mut hash: Option<Option<[u8; 32]>> = None;
        self.live(now).find(|a| {
            if !(a.matches_container(c) && a.matches_path(path)) {
                return false;
            }
            match &a.sha256 {
                None => true,
                Some(want) => *hash.get_or_insert_with(&mut *sha256) == Some(*want),
            }
        })
    }
}

impl Approvals {
    /// [`Approvals::file`] for a file of `c`'s root filesystem, hashed (when an entry asks for
    /// a SHA-256) from its upper-layer copy, opened beneath the upper directory without
    /// following symlinks; a file that is not there (a lower file, another mount) has no hash.
    pub fn file_in_container(&self, c: &ContainerInfo, path: &[u8], now: u64) -> Option<&Approval> {
        let mut hash = || {
            let upperdir = c.rootfs.as_ref()?.upperdir.as_deref()?;
            let f = driftwatch_image::open_in_layer(upperdir, path).ok()?;
            if f.metadata().ok()?.len() > MAX_HASH_BYTES {
                return None;
            }
            driftwatch_image::sha256_fd(f).ok()
        };
        self.file(c, path, &mut hash, now)
    }
}

/// Files larger than this are not hashed for a `sha256` matcher (they do not match).
pub const MAX_HASH_BYTES: u64 = 64 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Approvals, ApprovalsError> {
        Approvals::from_yaml(Path::new("approvals.yaml"), text)
    }

    fn web() -> ContainerInfo {
        ContainerInfo {
            id: "abc".into(),
            name: "web".into(),
            image_repository: "registry.example/app".into(),
            image_ref: "registry.example/app:1".into(),
            image_digest: Some("sha256:0123".into()),
            pod_name: Some("web-7d4b9c8f6d-x2x4z".into()),
            pod_namespace: Some("shop".into()),
            kind: ContainerKind::App,
            ..ContainerInfo::default()
        }
    }

    fn no_hash() -> Option<[u8; 32]> {
        None
    }

    #[test]
    fn globs_match_components_and_any_depth() {
        let g = PathGlob::parse("/opt/plugins/**").expect("glob");
        assert!(g.matches(b"/opt/plugins/a.so"));
        assert!(g.matches(b"/opt/plugins/x/y/z"));
        assert!(g.matches(b"/opt/plugins"));
        assert!(!g.matches(b"/opt/pluginsx/a"));
        let g = PathGlob::parse("/usr/local/bin/*.sh").expect("glob");
        assert!(g.matches(b"/usr/local/bin/run.sh"));
        assert!(!g.matches(b"/usr/local/bin/sub/run.sh"));
        assert!(!g.matches(b"/usr/local/bin/run.py"));
        let g = PathGlob::parse("/**/tool-?").expect("glob");
        assert!(g.matches(b"/tool-1"));
        assert!(g.matches(b"/a/b/tool-2"));
        assert!(!g.matches(b"/a/b/tool-22"));
        assert!(PathGlob::parse("opt/x").is_err());
        assert!(under(b"/opt/plugins", b"/opt/plugins/a"));
        assert!(under(b"/opt/plugins/", b"/opt/plugins/a"));
        assert!(under(b"/opt/plugins", b"/opt/plugins"));
        assert!(!under(b"/opt/plugins", b"/opt/pluginsx"));
    }

    #[test]
    fn an_entry_matches_when_all_its_matchers_do() {
        let a = parse(
            "approvals:\n\
             - reason: plugins\n  image: registry.example/app\n  path: /opt/plugins/**\n\
             - reason: debug tools\n  workload: k8s:shop/web/web\n  container: web\n  kind: app\n\
             - reason: other image\n  image: other\n",
        )
        .expect("parses");
        assert_eq!(a.len(), 3);
        let c = web();
        assert_eq!(
            a.container(&c, 0).map(|a| a.reason.as_str()),
            Some("debug tools")
        );
        let f = a.file(&c, b"/opt/plugins/p.so", &mut no_hash, 0);
        assert!(f.is_some());
        let mut other = web();
        other.name = "sidecar".into();
        assert!(a.container(&other, 0).is_none());
        assert!(a
            .file(&other, b"/opt/plugins/p.so", &mut no_hash, 0)
            .is_some());
        assert!(a.file(&other, b"/tmp/p.so", &mut no_hash, 0).is_none());
        other.image_repository = "else".into();
        other.image_ref = "else:1".into();
        assert!(a
            .file(&other, b"/opt/plugins/p.so", &mut no_hash, 0)
            .is_none());
    }

    #[test]
    fn sha256_and_digest_matchers() {
        let hex = "ab".repeat(32);
        let a = parse(&format!(
            "approvals:\n- reason: known tool\n  sha256: {hex}\n- reason: pinned\n  digest: sha256:0123\n"
        ))
        .expect("parses");
        let c = web();
        let mut right = || Some([0xab; 32]);
        let mut wrong = || Some([0xcd; 32]);
        // The digest entry approves the whole container, so any file matches through it.
        assert_eq!(
            a.file(&c, b"/x", &mut right, 0).map(|a| a.reason.as_str()),
            Some("known tool")
        );
        let mut other = web();
        other.image_digest = Some("sha256:9999".into());
        assert!(a.file(&other, b"/x", &mut right, 0).is_some());
        assert!(a.file(&other, b"/x", &mut wrong, 0).is_none());
        assert!(a.file(&other, b"/x", &mut no_hash, 0).is_none());
        assert!(a.container(&c, 0).is_some());
        assert!(a.container(&other, 0).is_none());
    }

    #[test]
    fn expired_entries_do_not_match() {
        let a = parse(
            "approvals:\n- reason: until new year\n  container: web\n  expires: 2027-01-01T00:00:00Z\n",
        )
        .expect("parses");
        let new_year = driftwatch_event::parse_rfc3339_secs("2027-01-01T00:00:00Z").expect("time");
        assert!(a.container(&web(), new_year - 1).is_some());
        assert!(a.container(&web(), new_year).is_none());
        assert!(a.container(&web(), new_year + 10).is_none());
    }

    fn error_at(text: &str) -> (usize, usize, String) {
        match parse(text) {
            Err(ApprovalsError::Parse {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn mistakes_are_errors_with_line_and_column() {
        let (line, _, msg) = error_at("approvals:\n- reason: x\n  imag: app\n");
        assert_eq!(line, 3, "{msg}");
        assert!(msg.contains("imag"), "{msg}");
        let (line, _, msg) = error_at("approvals:\n- image: app\n");
        assert_eq!(line, 2, "{msg}");
        assert!(msg.contains("reason"), "{msg}");
        let (line, col, msg) =
            error_at("approvals:\n- reason: x\n  image: a\n  expires: tomorrow\n");
        assert_eq!((line, col), (4, 12), "{msg}");
        assert!(msg.contains("expires"), "{msg}");
        let (line, _, msg) = error_at("approvals:\n- reason: x\n  sha256: abc\n");
        assert_eq!(line, 3, "{msg}");
        let (line, _, msg) = error_at("approvals:\n- reason: x\n  path: opt/*\n");
        assert_eq!(line, 3, "{msg}");
        assert!(msg.contains("not an absolute path"), "{msg}");
        let (line, _, msg) = error_at("approvals:\n- reason: x\n  kind: pod\n");
        assert_eq!(line, 3, "{msg}");
        let (_, _, msg) = error_at("approvals:\n- reason: everything\n");
        assert!(msg.contains("no matcher"), "{msg}");
        let err = parse("approvals:\n- reason: x\n  imag: app\n").expect_err("error");
        assert!(err.to_string().starts_with("approvals.yaml:3:"), "{err}");
    }

    #[test]
    fn rule_lists_become_entries() {
        let mut a = Approvals::none();
        a.add_rule_lists(
            &["/opt/plugins".into()],
            &["registry.example/app".into()],
            &["installer".into()],
        );
        assert_eq!(a.len(), 3);
        let mut c = web();
        c.image_repository = "other".into();
        c.image_ref = "other".into();
        assert!(a.container(&c, 0).is_none());
        assert!(a.file(&c, b"/opt/plugins/x/y", &mut no_hash, 0).is_some());
        assert!(a.file(&c, b"/opt/pluginsx", &mut no_hash, 0).is_none());
        c.name = "installer".into();
        assert!(a.container(&c, 0).is_some());
        assert!(a.container(&web(), 0).is_some());
        // A rule exception's `startswith` and `=` on drift.path.
        a.push(Approval {
            reason: "exception".into(),
            image: Some("other".into()),
            path_starts: Some(b"/opt/vend".to_vec()),
            ..Approval::default()
        });
        a.push(Approval {
            reason: "exception".into(),
            path_is: Some(b"/usr/local/bin/tool".to_vec()),
            ..Approval::default()
        });
        let mut c = web();
        c.image_repository = "other".into();
        assert!(a.file(&c, b"/opt/vendor/x", &mut no_hash, 0).is_some());
        assert!(a.file(&web(), b"/opt/vendor/x", &mut no_hash, 0).is_some());
        c.name = "x".into();
        c.image_repository = "third".into();
        c.image_ref = "third".into();
        assert!(a.file(&c, b"/opt/vendor/x", &mut no_hash, 0).is_none());
        assert!(a
            .file(&c, b"/usr/local/bin/tool", &mut no_hash, 0)
            .is_some());
        assert!(a
            .file(&c, b"/usr/local/bin/tool2", &mut no_hash, 0)
            .is_none());
    }

    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("## Approvals").expect("section");
        let yaml = readme[start..].split("```yaml\n").nth(1).expect("block");
        let yaml = yaml.split("```").next().expect("end");
        let a = parse(yaml).expect("the README's example parses");
        assert_eq!(a.len(), 4);
    }
}

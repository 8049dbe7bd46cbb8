//! dpkg: `/var/lib/dpkg/status` (installed packages, conffile checksums) and
//! `/var/lib/dpkg/info/*.{list,md5sums}` (owned paths and their MD5s, what `debsums` checks).

use super::{paragraphs, Package, PackageSet, MAX_DB_BYTES};
use crate::model::UnmanagedChange;
use crate::pathfmt;
use crate::view::View;
use std::collections::HashMap;

pub const STATUS: &[u8] = b"/var/lib/dpkg/status";
pub const INFO_DIR: &[u8] = b"/var/lib/dpkg/info";
/// At most this many owned paths are indexed (a bound on memory for hostile databases).
pub const MAX_OWNED_PATHS: usize = 2_000_000;

/// Parse a dpkg status file: installed packages (`Status: … installed`).
pub fn parse_status(text: &str) -> Vec<(String, Package, Option<String>)> {
    let mut out = Vec::new();
    for para in paragraphs(text) {
        let (mut name, mut version, mut status, mut arch) = (None, None, None, None);
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version:") {
                version = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status:") {
                status = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Architecture:") {
                arch = Some(v.trim());
            }
        }
        let (Some(name), Some(status)) = (name, status) else {
            continue;
        };
        // `want flag status`: only what is (at least partly) on disk.
        let state = status.rsplit(' ').next().unwrap_or("");
        if !matches!(
            state,
            "installed"
                | "half-installed"
                | "unpacked"
                | "half-configured"
                | "triggers-awaited"
                | "triggers-pending"
        ) {
            continue;
        }
        out.push((
            name.to_owned(),
            Package {
                name: name.to_owned(),
                version: version.unwrap_or("").to_owned(),
                location: None,
            },
            arch.map(str::to_owned),
        ));
    }
    out
}

/// Conffiles of the status file: `(path, md5 hex, package)`.
pub fn parse_conffiles(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for para in paragraphs(text) {
        let mut name = "";
        let mut in_conf = false;
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = v.trim();
                in_conf = false;
            } else if line.starts_with("Conffiles:") {
                in_conf = true;
            } else if in_conf && line.starts_with(' ') {
                let mut parts = line.split_whitespace();
                if let (Some(p), Some(md5)) = (parts.next(), parts.next()) {
                    if md5.len() == 32 {
                        out.push((p.to_owned(), md5.to_owned(), name.to_owned()));
                    }
                }
            } else {
                in_conf = false;
            }
        }
    }
    out
}

/// Installed dpkg packages of a view.
pub fn read(view: &View) -> PackageSet {
    let mut set = PackageSet::default();
    let Some(bytes) = view.read_file(STATUS, MAX_DB_BYTES) else {
        return set;
    };
    set.present = true;
    let text = String::from_utf8_lossy(&bytes);
    for (name, p, arch) in parse_status(&text) {
        let key = if set.packages.contains_key(&name) {
            format!("{name}:{}", arch.unwrap_or_default())
        } else {
            name
        };
        set.insert(key, p);
    }
    set
}

/// Which package owns which path, and the MD5 dpkg recorded for it.
#[derive(Debug, Default)]
pub struct DpkgFiles {
    packages: Vec<String>,
    owners: HashMap<Vec<u8>, u32>,
    /// path → (md5, package index, conffile)
    md5: HashMap<Vec<u8>, ([u8; 16], u32, bool)>,
}

impl DpkgFiles {
    /// Read the container's (merged) dpkg database; `None` when there is none.
    pub fn read(view: &View) -> Option<DpkgFiles> {
        let status = view.read_file(STATUS, MAX_DB_BYTES)?;
        let status = String::from_utf8_lossy(&status);
        let mut d = DpkgFiles::default();
        let installed: Vec<String> = parse_status(&status)
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        let listing = view.read_dir(INFO_DIR);
        for (name, _) in &listing {
            let Some(stem) = name
                .strip_suffix(b".list")
                .or_else(|| name.strip_suffix(b".md5sums"))
            else {
                continue;
            };
            let pkg = String::from_utf8_lossy(stem);
            let base = pkg.split(':').next().unwrap_or(&pkg);
            if !installed.iter().any(|i| i == base) {
                continue;
            }
            let idx = d.package_index(base);
            let mut path = INFO_DIR.to_vec();
            path.push(b'/');
            path.extend_from_slice(name);
            let Some(content) = view.read_file(&path, MAX_DB_BYTES) else {
                continue;
            };
            if name.ends_with(b".list") {
                for line in content
                    .split(|b| *b == b'\n')
                    .filter(|l| l.starts_with(b"/"))
                {
                    if d.owners.len() >= MAX_OWNED_PATHS {
                        break;
                    }
                    d.owners.entry(line.to_vec()).or_insert(idx);
                }
            } else {
                for line in content.split(|b| *b == b'\n') {
                    // "<32 hex>  path/without/leading/slash"
                    let (Some(sum), Some(rest)) = (line.get(..32), line.get(34..)) else {
                        continue;
                    };
                    let Some(md5) = decode_md5(sum) else { continue };
                    if d.md5.len() >= MAX_OWNED_PATHS {
                        break;
                    }
                    let mut p = Vec::with_capacity(rest.len() + 1);
                    p.push(b'/');
                    p.extend_from_slice(rest);
                    d.md5.insert(p, (md5, idx, false));
                }
            }
        }
        for (path, sum, pkg) in parse_conffiles(&status) {
            let Some(md5) = decode_md5(sum.as_bytes()) else {
                continue;
            };
            if !installed.contains(&pkg) {
                continue;
            }
            let idx = d.package_index(&pkg);
            d.owners.entry(path.clone().into_bytes()).or_insert(idx);
            d.md5.insert(path.into_bytes(), (md5, idx, true));
        }
        Some(d)
    }

    fn package_index(&mut self, name: &str) -> u32 {
        if let Some(i) = self.packages.iter().rposition(|p| p == name) {
            return u32::try_from(i).unwrap_or(0);
        }
        self.packages.push(name.to_owned());
        u32::try_from(self.packages.len() - 1).unwrap_or(0)
    }

    /// The package owning `path`.
    pub fn owner(&self, path: &[u8]) -> Option<&str> {
        let idx = self
            .owners
            .get(path)
            .or_else(|| self.md5.get(path).map(|(_, i, _)| i))?;
        self.packages.get(*idx as usize).map(String::as_str)
    }

    /// dpkg recorded an MD5 for `path`.
    pub fn has_md5(&self, path: &[u8]) -> bool {
        self.md5.contains_key(path)
    }

    /// Number of owned paths known.
    pub fn len(&self) -> usize {
        self.owners.len().max(self.md5.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A change of `path` not made through dpkg: `actual` is the container file's MD5
    /// (`None`: deleted). `None` when dpkg recorded nothing or the MD5 matches.
    pub fn check(&self, path: &[u8], actual: Option<&[u8; 16]>) -> Option<UnmanagedChange> {
        let (md5, idx, conffile) = self.md5.get(path)?;
        if actual == Some(md5) {
            return None;
        }
        let (p, h) = pathfmt::json_path(path);
        Some(UnmanagedChange {
            manager: "dpkg".into(),
            package: self
                .packages
                .get(*idx as usize)
                .cloned()
                .unwrap_or_default(),
            path: p,
            path_hex: h,
            change: if actual.is_some() {
                "modified"
            } else {
                "deleted"
            }
            .into(),
            expected_md5: hex::encode(md5),
            actual_md5: actual.map(hex::encode),
            conffile: *conffile,
        })
    }
}

fn decode_md5(hex_bytes: &[u8]) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(hex_bytes, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS_TEXT: &str = "Package: base-files\nStatus: install ok installed\nVersion: 12.4\nArchitecture: amd64\nConffiles:\n /etc/debian_version 3a1f3e4b0a8d6b2b6c7c0d1e2f3a4b5c\n /etc/issue 00000000000000000000000000000000 obsolete\nDescription: x\n y\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: hello\nStatus: install ok installed\nVersion: 2.10-3\n";

    #[test]
    fn status_and_conffiles() {
        let p = parse_status(STATUS_TEXT);
        let names: Vec<_> = p
            .iter()
            .map(|(n, p, _)| (n.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(names, [("base-files", "12.4"), ("hello", "2.10-3")]);
        let c = parse_conffiles(STATUS_TEXT);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].0, "/etc/debian_version");
        assert_eq!(c[0].2, "base-files");
        assert!(parse_status("garbage\n\n\n\u{0}Package").is_empty());
    }
}

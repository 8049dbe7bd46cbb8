//! Python: `*.dist-info` (`METADATA`) and `*.egg-info` (`PKG-INFO`, or the file itself) in the
//! site-packages/dist-packages directories of `/usr/lib/python3*`, `/usr/local/lib/python3*`,
//! `/usr/lib/python3` and `/opt/*/lib/python3*` (virtualenvs).

use super::{Package, PackageSet, MAX_META_BYTES};
use crate::view::View;
use rustix::fs::FileType;

/// `Name:` and `Version:` of a METADATA / PKG-INFO header.
pub fn parse_metadata(text: &str) -> (Option<String>, Option<String>) {
    let mut name = None;
    let mut version = None;
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Name:") {
            name.get_or_insert_with(|| v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("Version:") {
            version.get_or_insert_with(|| v.trim().to_owned());
        }
    }
    (name, version)
}

/// PEP 503 normalisation.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// The site directories present in a view.
pub fn site_dirs(view: &View) -> Vec<Vec<u8>> {
    let mut roots: Vec<Vec<u8>> = vec![b"/usr/lib".to_vec(), b"/usr/local/lib".to_vec()];
    for (opt, t) in view.read_dir(b"/opt") {
        if t == FileType::Directory {
            roots.push(join(&join(b"/opt", &opt), b"lib"));
        }
    }
    let mut out = Vec::new();
    for root in roots {
        for (name, t) in view.read_dir(&root) {
            if t != FileType::Directory || !name.starts_with(b"python3") {
                continue;
            }
            let py = join(&root, &name);
            for sub in [&b"site-packages"[..], b"dist-packages"] {
                let d = join(&py, sub);
                if view.exists(&d) {
                    out.push(d);
                }
            }
        }
    }
    out
}

pub fn read(view: &View) -> PackageSet {
    let mut set = PackageSet::default();
    for dir in site_dirs(view) {
        let location = String::from_utf8_lossy(&dir).into_owned();
        for (name, t) in view.read_dir(&dir) {
            let (stem, meta) = if let Some(s) = name.strip_suffix(b".dist-info") {
                (
                    s,
                    (t == FileType::Directory).then(|| join(&join(&dir, &name), b"METADATA")),
                )
            } else if let Some(s) = name.strip_suffix(b".egg-info") {
                let p = join(&dir, &name);
                (
                    s,
                    Some(if t == FileType::Directory {
                        join(&p, b"PKG-INFO")
                    } else {
                        p
                    }),
                )
            } else {
                continue;
            };
            let Some(meta) = meta else { continue };
            let text = view
                .read_file(&meta, MAX_META_BYTES)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let (n, v) = parse_metadata(&text);
            // Fall back to `name-version` of the directory name.
            let stem = String::from_utf8_lossy(stem);
            let (sn, sv) = stem
                .split_once('-')
                .map_or((stem.as_ref(), ""), |(a, b)| (a, b));
            let name = n.unwrap_or_else(|| sn.to_owned());
            let version = v.unwrap_or_else(|| sv.to_owned());
            let key = format!("{location}/{}", normalize(&name));
            set.insert(
                key,
                Package {
                    name,
                    version,
                    location: Some(location.clone()),
                },
            );
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_names() {
        let (n, v) = parse_metadata(
            "Metadata-Version: 2.1\nName: Requests\nVersion: 2.31.0\n\nName: body\n",
        );
        assert_eq!(
            (n.as_deref(), v.as_deref()),
            (Some("Requests"), Some("2.31.0"))
        );
        assert_eq!(normalize("Foo_Bar.baz"), "foo-bar-baz");
    }
}

//! npm: `node_modules/*/package.json` and `node_modules/@scope/*/package.json` in the global
//! module directories and the usual application directories (nested `node_modules` are not
//! walked).

use super::{Package, PackageSet, MAX_META_BYTES};
use crate::view::View;
use rustix::fs::FileType;

pub const MODULE_DIRS: &[&[u8]] = &[
    b"/usr/lib/node_modules",
    b"/usr/local/lib/node_modules",
    b"/app/node_modules",
    b"/usr/src/app/node_modules",
    b"/opt/app/node_modules",
    b"/srv/app/node_modules",
    b"/home/node/app/node_modules",
];

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// `name` and `version` of a package.json.
pub fn parse_package_json(bytes: &[u8]) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let name = v.get("name")?.as_str()?.to_owned();
    let version = v
        .get("version")
        .and_then(|x| x.as_str())
        .unwrap_or("")
        .to_owned();
    Some((name, version))
}

pub fn read(view: &View) -> PackageSet {
    let mut set = PackageSet::default();
    for dir in MODULE_DIRS {
        let mut pkg_dirs = Vec::new();
        for (name, t) in view.read_dir(dir) {
            if t != FileType::Directory || name.starts_with(b".") {
                continue;
            }
            if name.starts_with(b"@") {
                let scope = join(dir, &name);
                for (sub, t) in view.read_dir(&scope) {
                    if t == FileType::Directory {
                        pkg_dirs.push(join(&scope, &sub));
                    }
                }
            } else {
                pkg_dirs.push(join(dir, &name));
            }
        }
        let location = String::from_utf8_lossy(dir).into_owned();
        for p in pkg_dirs {
            let Some(bytes) = view.read_file(&join(&p, b"package.json"), MAX_META_BYTES) else {
                continue;
            };
            match parse_package_json(&bytes) {
                Some((name, version)) => {
                    let key = format!("{location}/{name}");
                    set.insert(
                        key,
                        Package {
                            name,
                            version,
                            location: Some(location.clone()),
                        },
                    );
                }
                None => set.notes.push(format!(
                    "{}: unreadable package.json",
                    String::from_utf8_lossy(&p)
                )),
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    #[test]
    fn package_json() {
        assert_eq!(
            super::parse_package_json(br#"{"name":"left-pad","version":"1.3.0","x":[1]}"#),
            Some(("left-pad".into(), "1.3.0".into()))
        );
        assert_eq!(super::parse_package_json(b"{nope"), None);
        assert_eq!(super::parse_package_json(br#"{"name":7}"#), None);
    }
}

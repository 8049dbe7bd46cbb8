//! apk: `/lib/apk/db/installed` (`P:` name, `V:` version, one paragraph per package).

use super::{paragraphs, Package, PackageSet, MAX_DB_BYTES};
use crate::view::View;

pub const INSTALLED: &[u8] = b"/lib/apk/db/installed";

pub fn parse(text: &str) -> Vec<Package> {
    paragraphs(text)
        .filter_map(|para| {
            let mut name = None;
            let mut version = None;
            for line in para.lines() {
                if let Some(v) = line.strip_prefix("P:") {
                    name = Some(v.trim());
                } else if let Some(v) = line.strip_prefix("V:") {
                    version = Some(v.trim());
                }
            }
            Some(Package {
                name: name.filter(|n| !n.is_empty())?.to_owned(),
                version: version.unwrap_or("").to_owned(),
                location: None,
            })
        })
        .collect()
}

pub fn read(view: &View) -> PackageSet {
    let mut set = PackageSet::default();
    let Some(bytes) = view.read_file(INSTALLED, MAX_DB_BYTES) else {
        return set;
    };
    set.present = true;
    for p in parse(&String::from_utf8_lossy(&bytes)) {
        set.insert(p.name.clone(), p);
    }
    set
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_installed() {
        let t = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\n\nP:busybox\nV:1.36.1-r5\n\nV:orphan\n";
        let p = super::parse(t);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), p[0].version.as_str()),
            ("musl", "1.2.4-r2")
        );
    }
}

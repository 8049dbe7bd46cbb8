//! Package databases of the image (lower layers) and of the container (merged view), and what
//! changed between them: dpkg, apk, rpm (sqlite), Python (`*.dist-info`/`*.egg-info`), npm
//! (`node_modules/*/package.json`).

pub mod apk;
pub mod dpkg;
pub mod npm;
pub mod python;
pub mod rpm;

use crate::model::{PackageChange, PackageChangeKind, PackageReport};
use crate::view::View;
use std::collections::BTreeMap;

/// Largest package database read (bytes).
pub const MAX_DB_BYTES: u64 = 256 << 20;
/// Largest metadata file read (`METADATA`, `package.json`).
pub const MAX_META_BYTES: u64 = 1 << 20;

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// Directory it lives in, for language packages.
    pub location: Option<String>,
}

/// The packages one manager knows, by key (name, or location/name for language packages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageSet {
    /// A database for this manager was found.
    pub present: bool,
    pub packages: BTreeMap<String, Package>,
    /// Read problems and unsupported formats.
    pub notes: Vec<String>,
}

impl PackageSet {
    pub(crate) fn insert(&mut self, key: String, p: Package) {
        self.present = true;
        self.packages.insert(key, p);
    }
}

/// Added, removed and changed packages from `old` (image) to `new` (container).
pub fn diff_sets(manager: &str, old: &PackageSet, new: &PackageSet) -> Vec<PackageChange> {
    let mut out = Vec::new();
    for (k, o) in &old.packages {
        match new.packages.get(k) {
            None => out.push(PackageChange {
                manager: manager.to_owned(),
                name: o.name.clone(),
                change: PackageChangeKind::Removed,
                old_version: Some(o.version.clone()),
                new_version: None,
                location: o.location.clone(),
            }),
            Some(n) if n.version != o.version => out.push(PackageChange {
                manager: manager.to_owned(),
                name: n.name.clone(),
                change: PackageChangeKind::Changed,
                old_version: Some(o.version.clone()),
                new_version: Some(n.version.clone()),
                location: n.location.clone(),
            }),
            Some(_) => {}
        }
    }
    for (k, n) in &new.packages {
        if !old.packages.contains_key(k) {
            out.push(PackageChange {
                manager: manager.to_owned(),
                name: n.name.clone(),
                change: PackageChangeKind::Added,
                old_version: None,
                new_version: Some(n.version.clone()),
                location: n.location.clone(),
            });
        }
    }
    out
}

/// Every manager's packages in one view.
pub fn read_all(view: &View) -> Vec<(&'static str, PackageSet)> {
    vec![
        ("dpkg", dpkg::read(view)),
        ("apk", apk::read(view)),
        ("rpm", rpm::read(view)),
        ("python", python::read(view)),
        ("npm", npm::read(view)),
    ]
}

/// Compare the image's and the container's package databases.
pub fn compare(image: &View, container: &View) -> PackageReport {
    let mut report = PackageReport::default();
    let old = read_all(image);
    let new = read_all(container);
    for ((manager, o), (_, n)) in old.iter().zip(new.iter()) {
        if o.present || n.present {
            report.managers.push((*manager).to_owned());
        }
        for note in o
            .notes
            .iter()
            .map(|x| format!("image: {x}"))
            .chain(n.notes.iter().map(|x| format!("container: {x}")))
        {
            if !report.notes.contains(&note) {
                report.notes.push(note);
            }
        }
        report.changes.extend(diff_sets(manager, o, n));
    }
    report
}

/// Split `key: value` paragraphs (dpkg status, apk's `K:value` use [`apk`]).
pub(crate) fn paragraphs(text: &str) -> impl Iterator<Item = &str> {
    text.split("\n\n").filter(|p| !p.trim().is_empty())
}

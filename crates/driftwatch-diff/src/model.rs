//! The report model: file entries, package changes, configuration findings, the summary.
//! Everything serialises to the `--json` form (see the crate docs for the document shape).

use crate::pathfmt;
use serde::{Deserialize, Serialize};

/// What a file entry is about; the table is sorted in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Executable code: an ELF file, a script with exec bits, anything in a binary directory.
    Binary,
    /// Package databases and files owned by a package.
    Package,
    /// `/etc` and well-known configuration paths.
    Config,
    /// Anything else.
    Other,
    /// Logs: expected to change.
    Log,
    /// Temporary files: expected to change.
    Temp,
    /// Caches: expected to change.
    Cache,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Binary,
        Category::Package,
        Category::Config,
        Category::Other,
        Category::Log,
        Category::Temp,
        Category::Cache,
    ];

    /// Paths of this category are expected to change: they are listed, but are not drift.
    pub fn expected(self) -> bool {
        matches!(self, Category::Log | Category::Temp | Category::Cache)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Binary => "binary",
            Category::Package => "package",
            Category::Config => "config",
            Category::Other => "other",
            Category::Log => "log",
            Category::Temp => "temp",
            Category::Cache => "cache",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// How a path differs from the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// Not in the image.
    Added,
    /// In the image; the content (or a symlink's target, or a device number) changed.
    Modified,
    /// In the image, hidden by a whiteout.
    Deleted,
    /// A directory made opaque: everything the image had below it is hidden.
    Replaced,
    /// In the image as another type (file ↔ directory ↔ symlink ↔ other).
    TypeChanged,
    /// Same content, different mode or owner.
    Metadata,
    /// Copied up (e.g. by `touch`) without a change of content, mode or owner: not drift.
    CopiedUp,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Modified => "modified",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Replaced => "replaced",
            ChangeKind::TypeChanged => "type-changed",
            ChangeKind::Metadata => "metadata",
            ChangeKind::CopiedUp => "copied-up",
        }
    }
}

/// The type of a filesystem entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileType {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileType {
    pub fn of_mode(mode: u32) -> FileType {
        match mode & 0o170000 {
            0o100000 => FileType::File,
            0o040000 => FileType::Dir,
            0o120000 => FileType::Symlink,
            0o020000 => FileType::CharDevice,
            0o060000 => FileType::BlockDevice,
            0o010000 => FileType::Fifo,
            _ => FileType::Socket,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FileType::File => "file",
            FileType::Dir => "dir",
            FileType::Symlink => "symlink",
            FileType::CharDevice => "char-device",
            FileType::BlockDevice => "block-device",
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
        }
    }
}

/// Metadata of one side (image or container) of an entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Side {
    #[serde(rename = "type")]
    pub file_type: Option<FileType>,
    /// Permission bits (incl. setuid/setgid/sticky), octal in the JSON.
    #[serde(with = "octal", default)]
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    /// Hex SHA-256 of a regular file's content (when hashed).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    /// A symlink's target (UTF-8, else escaped; see `link_target_hex`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub link_target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub link_target_hex: Option<String>,
    /// Device number of a device node (`major:minor`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rdev: Option<String>,
}

impl Side {
    pub(crate) fn set_link_target(&mut self, target: &[u8]) {
        let (t, h) = pathfmt::json_path(target);
        self.link_target = Some(t);
        self.link_target_hex = h;
    }

    pub fn link_target_bytes(&self) -> Option<Vec<u8>> {
        self.link_target
            .as_deref()
            .map(|t| pathfmt::from_json_path(t, self.link_target_hex.as_deref()))
    }
}

mod octal {
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option, reason = "serde's with-module signature")]
    pub fn serialize<S: Serializer>(v: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(m) => s.serialize_str(&format!("{m:04o}")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        let v: Option<String> = Option::deserialize(d)?;
        Ok(v.and_then(|s| u32::from_str_radix(&s, 8).ok()))
    }
}

/// One changed path of the container's filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The container path (UTF-8; else escaped, with `path_hex` holding the bytes).
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path_hex: Option<String>,
    pub change: ChangeKind,
    pub category: Category,
    /// False for expected changes (log/temp/cache) and unchanged copy-ups.
    pub drift: bool,
    /// The image's entry (none for `added`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub image: Option<Side>,
    /// The container's entry (none for `deleted`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub container: Option<Side>,
    /// For regular files present on both sides: whether the bytes differ.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_changed: Option<bool>,
    /// What changed besides content: `mode`, `owner`, `target`, `type`, `rdev`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub changed: Vec<String>,
    /// The package that owns the path (dpkg), when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub package: Option<String>,
    /// Remarks: a package-owned file changed without the package manager, a subtree not walked.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub notes: Vec<String>,
}

impl FileEntry {
    pub(crate) fn new(path: &[u8], change: ChangeKind) -> FileEntry {
        let (path, path_hex) = pathfmt::json_path(path);
        FileEntry {
            path,
            path_hex,
            change,
            category: Category::Other,
            drift: true,
            image: None,
            container: None,
            content_changed: None,
            changed: Vec::new(),
            package: None,
            notes: Vec::new(),
        }
    }

    /// The raw container path.
    pub fn path_bytes(&self) -> Vec<u8> {
        pathfmt::from_json_path(&self.path, self.path_hex.as_deref())
    }
}

/// How a package changed between the image and the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageChangeKind {
    Added,
    Removed,
    Changed,
}

/// A package added, removed or changed (version) in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageChange {
    /// `dpkg`, `apk`, `rpm`, `python`, `npm`.
    pub manager: String,
    pub name: String,
    pub change: PackageChangeKind,
    pub old_version: Option<String>,
    pub new_version: Option<String>,
    /// Where the package lives (site-packages or node_modules directory) when not global.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub location: Option<String>,
}

/// A package-owned file changed without its package manager (debsums-style check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmanagedChange {
    pub manager: String,
    pub package: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path_hex: Option<String>,
    /// `modified` or `deleted`.
    pub change: String,
    pub expected_md5: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub actual_md5: Option<String>,
    /// A dpkg conffile (local edits are allowed by policy, still configuration drift).
    pub conffile: bool,
}

/// The package part of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageReport {
    /// Package managers whose database was found in the image or the container.
    pub managers: Vec<String>,
    pub changes: Vec<PackageChange>,
    pub unmanaged: Vec<UnmanagedChange>,
    /// Databases found but not read (e.g. a BerkeleyDB rpmdb), and read problems.
    pub notes: Vec<String>,
}

/// How much a configuration deviation matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Risk {
    /// A fact worth knowing, not a deviation (e.g. a writable rootfs when nothing asked for
    /// a read-only one): not drift.
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Info => "info",
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

/// One deviation of the container's runtime configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFinding {
    /// What is compared: `env`, `user`, `args`, `capabilities`, `privileged`, `devices`,
    /// `mounts`, `rootfs`, `namespaces`, `seccomp`, `apparmor`, `no-new-privileges`,
    /// `volumes`, `ports`, `file`.
    pub field: String,
    /// The reference it deviates from: `image`, `baseline`, `default` (runtime defaults).
    pub against: String,
    pub risk: Risk,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub actual: Option<String>,
}

/// Counts, and the verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Entries by category (all entries, drift or not).
    pub files_by_category: std::collections::BTreeMap<String, u64>,
    /// Entries by change kind.
    pub files_by_change: std::collections::BTreeMap<String, u64>,
    /// File entries that are drift.
    pub file_drift: u64,
    pub package_changes: u64,
    pub unmanaged_changes: u64,
    /// Configuration findings above `info`.
    pub config_deviations: u64,
    /// Upper-layer entries examined.
    pub entries_walked: u64,
    /// Bytes read for hashing and comparing.
    pub bytes_read: u64,
    /// Subtrees not walked (too deep, unreadable): the report may be incomplete.
    pub incomplete: bool,
    /// Any drift at all (exit code 1).
    pub drift: bool,
}

impl Summary {
    pub(crate) fn count(&mut self, e: &FileEntry) {
        *self
            .files_by_category
            .entry(e.category.as_str().to_owned())
            .or_default() += 1;
        *self
            .files_by_change
            .entry(e.change.as_str().to_owned())
            .or_default() += 1;
        if e.drift {
            self.file_drift += 1;
        }
    }
}

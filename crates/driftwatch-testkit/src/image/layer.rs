//! One image layer: its entries and their deterministic tar rendering.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::error::{Result, TestkitError};

/// Modification time of every entry (2020-01-01T00:00:00Z): images are reproducible.
pub const FIXED_MTIME: u64 = 1_577_836_800;

/// How layer blobs are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// `application/vnd.oci.image.layer.v1.tar`
    None,
    /// `application/vnd.oci.image.layer.v1.tar+gzip` (the default; what registries serve)
    #[default]
    Gzip,
}

impl Compression {
    /// The OCI media type of a layer stored this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::None => "application/vnd.oci.image.layer.v1.tar",
            Self::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Entry {
    File { bytes: Vec<u8>, mode: u32 },
    Dir { mode: u32 },
    Symlink { target: String },
}

/// Entries of one layer, keyed by normalized path (relative, no trailing slash).
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerSpec {
    pub(crate) entries: BTreeMap<String, Entry>,
    pub(crate) whiteouts: BTreeSet<String>,
    pub(crate) opaques: BTreeSet<String>,
}

/// A rendered layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// `sha256:…` of the stored blob (compressed if compressed).
    pub digest: String,
    /// `sha256:…` of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
    /// Size in bytes of the stored blob.
    pub size: u64,
    /// OCI media type of the stored blob.
    pub media_type: String,
    pub(crate) bytes: Vec<u8>,
}

pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Normalizes an image path: `/usr/bin/x/` → `usr/bin/x`; rejects `..`, `.` and empty paths.
pub(crate) fn normalize(path: &str) -> Result<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(TestkitError::InvalidImage {
            reason: format!("bad path in image: {path:?}"),
        });
    }
    if parts.last().is_some_and(|p| p.starts_with(".wh.")) {
        return Err(TestkitError::InvalidImage {
            reason: format!("{path:?}: use .whiteout()/.opaque() for .wh. entries"),
        });
    }
    Ok(parts.join("/"))
}

fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(FIXED_MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h
}

impl LayerSpec {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.whiteouts.is_empty() && self.opaques.is_empty()
    }

    /// Renders the uncompressed tar. `dir_modes` carries the modes of directories defined in
    /// this or lower layers, used for implicit parent directories (so `/tmp/x` in an upper layer
    /// does not reset `/tmp` to 0755).
    pub(crate) fn render_tar(&self, dir_modes: &BTreeMap<String, u32>) -> Result<Vec<u8>> {
        // Every path that appears, with what it is; parents first thanks to BTreeMap ordering.
        let mut all: BTreeMap<String, Entry> = BTreeMap::new();
        let want_parents = |p: &str, all: &mut BTreeMap<String, Entry>| {
            for parent in parents(p) {
                all.entry(parent.to_owned()).or_insert(Entry::Dir {
                    mode: dir_modes.get(parent).copied().unwrap_or(0o755),
                });
            }
        };
        for (path, e) in &self.entries {
            want_parents(path, &mut all);
            all.insert(path.clone(), e.clone());
        }
        let mut markers: Vec<String> = Vec::new();
        for path in &self.whiteouts {
            want_parents(path, &mut all);
            markers.push(match path.rsplit_once('/') {
                Some((dir, name)) => format!("{dir}/.wh.{name}"),
                None => format!(".wh.{path}"),
            });
        }
        for dir in &self.opaques {
            want_parents(dir, &mut all);
            all.entry(dir.clone()).or_insert(Entry::Dir {
                mode: dir_modes.get(dir).copied().unwrap_or(0o755),
            });
            markers.push(format!("{dir}/.wh..wh..opq"));
        }
        for m in &markers {
            all.insert(
                m.clone(),
                Entry::File {
                    bytes: Vec::new(),
                    mode: 0o644,
                },
            );
        }

        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Deterministic);
        let io = |e| TestkitError::io("<layer tar>", e);
        for (path, e) in &all {
            match e {
                Entry::Dir { mode } => {
                    let mut h = header(tar::EntryType::Directory, *mode, 0);
                    b.append_data(&mut h, format!("{path}/"), std::io::empty())
                        .map_err(io)?;
                }
                Entry::File { bytes, mode } => {
                    let mut h = header(tar::EntryType::Regular, *mode, bytes.len() as u64);
                    b.append_data(&mut h, path, bytes.as_slice()).map_err(io)?;
                }
                Entry::Symlink { target } => {
                    let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                    b.append_link(&mut h, path, target).map_err(io)?;
                }
            }
        }
        b.into_inner().map_err(io)
    }
}

/// Stores `tar` as a blob with `compression`.
pub(crate) fn encode(tar: Vec<u8>, compression: Compression) -> Result<LayerBlob> {
    let diff_id = sha256_digest(&tar);
    let bytes = match compression {
        Compression::None => tar,
        Compression::Gzip => {
            // GzEncoder writes mtime 0 and no file name: deterministic.
            let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&tar)
                .and_then(|()| gz.finish())
                .map_err(|e| TestkitError::io("<gzip layer>", e))?
        }
    };
    Ok(LayerBlob {
        digest: sha256_digest(&bytes),
        diff_id,
        size: bytes.len() as u64,
        media_type: compression.media_type().to_owned(),
        bytes,
    })
}

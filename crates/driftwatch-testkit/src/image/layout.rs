//! OCI image layout: config, manifest, index, the layout tar, and `ctr images import`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::layer::{sha256_digest, LayerBlob, FIXED_MTIME};
use crate::containerd::{lock_file, Containerd};
use crate::error::{Result, TestkitError};

/// `mediaType` of the image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// `mediaType` of the image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// `mediaType` of `index.json`.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// OCI annotation carrying the tag in `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation carrying the full image name (used verbatim by `ctr images import`).
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";
const IMPORT_LOCK: &str = "/tmp/driftwatch-testkit-import.lock";

/// A fully rendered image (all blobs in memory).
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The image name, e.g. `driftwatch-test/busybox:1`.
    pub name: String,
    /// `sha256:…` of the manifest: what containerd reports as the image digest.
    pub manifest_digest: String,
    /// `sha256:…` of the config: containerd's image id.
    pub config_digest: String,
    /// Layer blobs, lowest first.
    pub layers: Vec<LayerBlob>,
    /// The manifest JSON bytes.
    pub manifest: Vec<u8>,
    /// The config JSON bytes.
    pub config: Vec<u8>,
    /// The `index.json` bytes.
    pub index: Vec<u8>,
    /// A multi-platform image ([`BuiltImage::with_second_platform`]): the digest of its OCI
    /// index — what containerd then reports as the image digest —, whose host manifest is
    /// [`manifest_digest`](Self::manifest_digest).
    pub index_digest: Option<String>,
    /// More blobs of the layout (the index, the other platform's manifest and config).
    pub extra_blobs: Vec<(String, Vec<u8>)>,
}

/// An image present in a containerd namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    /// The name to pass to `ctr run` / `Container::run`.
    pub reference: String,
    /// The namespace it was imported into.
    pub namespace: String,
    /// `sha256:…` of its manifest, as containerd lists it (of a multi-platform image: its index).
    pub manifest_digest: String,
    /// `sha256:…` of its config.
    pub config_digest: String,
    /// `rootfs.diff_ids` of the config, lowest layer first.
    pub diff_ids: Vec<String>,
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn to_json(v: &serde_json::Value) -> Vec<u8> {
    // serde_json's Value map is a BTreeMap unless preserve_order: keys come out sorted.
    serde_json::to_vec(v).unwrap_or_default()
}

fn tag_of(name: &str) -> &str {
    let after_slash = name.rsplit('/').next().unwrap_or(name);
    after_slash.split_once(':').map_or("latest", |(_, tag)| tag)
}

pub(crate) fn assemble(
    name: &str,
    layers: Vec<LayerBlob>,
    env: &[String],
    cmd: &[String],
    labels: &BTreeMap<String, String>,
    exposed_ports: &[String],
) -> Result<BuiltImage> {
    let mut image_config = json!({
        "Env": env,
        "Cmd": cmd,
        "WorkingDir": "/",
        "Labels": labels,
    });
    if !exposed_ports.is_empty() {
        let ports: serde_json::Map<String, serde_json::Value> = exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        image_config["ExposedPorts"] = serde_json::Value::Object(ports);
    }
    let config = to_json(&json!({
        "architecture": go_arch(),
        "os": "linux",
        "created": "2020-01-01T00:00:00Z",
        "config": image_config,
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
        },
        "history": layers.iter().enumerate().map(|(i, _)| json!({
            "created": "2020-01-01T00:00:00Z",
            "created_by": format!("driftwatch-testkit layer {i}"),
        })).collect::<Vec<_>>(),
    }));
    let config_digest = sha256_digest(&config);
    let manifest = to_json(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": layers.iter().map(|l| json!({
            "mediaType": l.media_type,
            "digest": l.digest,
            "size": l.size,
        })).collect::<Vec<_>>(),
    }));
    let manifest_digest = sha256_digest(&manifest);
    let index = to_json(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [{
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": { "architecture": go_arch(), "os": "linux" },
            "annotations": {
                CONTAINERD_NAME_ANNOTATION: name,
                REF_NAME_ANNOTATION: tag_of(name),
            },
        }],
    }));
    Ok(BuiltImage {
        name: name.to_owned(),
        manifest_digest,
        config_digest,
        layers,
        manifest,
        config,
        index,
        index_digest: None,
        extra_blobs: Vec::new(),
    })
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

impl BuiltImage {
    /// The same image as a multi-platform one: an OCI index of this (host) manifest and a
    /// manifest for `os/architecture` (the same layers, a config naming that platform), named
    /// by `index.json`. Imported, containerd lists the index digest and runs the host manifest.
    pub fn with_second_platform(mut self, os: &str, architecture: &str) -> Result<BuiltImage> {
        let bad = |what: &str| TestkitError::InvalidImage {
            reason: format!("cannot rewrite the {what} for {os}/{architecture}"),
        };
        let mut cfg: serde_json::Value =
            serde_json::from_slice(&self.config).map_err(|_| bad("config"))?;
        cfg["os"] = json!(os);
        cfg["architecture"] = json!(architecture);
        let config2 = to_json(&cfg);
        let config2_digest = sha256_digest(&config2);
        let mut man: serde_json::Value =
            serde_json::from_slice(&self.manifest).map_err(|_| bad("manifest"))?;
        man["config"]["digest"] = json!(config2_digest);
        man["config"]["size"] = json!(config2.len());
        let manifest2 = to_json(&man);
        let manifest2_digest = sha256_digest(&manifest2);
        let index_blob = to_json(&json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [
                {
                    "mediaType": MANIFEST_MEDIA_TYPE,
                    "digest": self.manifest_digest,
                    "size": self.manifest.len(),
                    "platform": { "architecture": go_arch(), "os": "linux" },
                },
                {
                    "mediaType": MANIFEST_MEDIA_TYPE,
                    "digest": manifest2_digest,
                    "size": manifest2.len(),
                    "platform": { "architecture": architecture, "os": os },
                },
            ],
        }));
        let index_digest = sha256_digest(&index_blob);
        self.index = to_json(&json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [{
                "mediaType": INDEX_MEDIA_TYPE,
                "digest": index_digest,
                "size": index_blob.len(),
                "annotations": {
                    CONTAINERD_NAME_ANNOTATION: self.name,
                    REF_NAME_ANNOTATION: tag_of(&self.name),
                },
            }],
        }));
        self.extra_blobs = vec![
            (index_digest.clone(), index_blob),
            (manifest2_digest, manifest2),
            (config2_digest, config2),
        ];
        self.index_digest = Some(index_digest);
        Ok(self)
    }

    /// The `rootfs.diff_ids` of the config, lowest layer first.
    pub fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }

    /// The OCI layout tar (`oci-layout`, `index.json`, `blobs/sha256/…`), byte-for-byte
    /// deterministic.
    pub fn oci_tar_bytes(&self) -> Result<Vec<u8>> {
        let mut files: BTreeMap<String, &[u8]> = BTreeMap::new();
        for l in &self.layers {
            files.insert(blob_path(&l.digest), &l.bytes);
        }
        files.insert(blob_path(&self.config_digest), &self.config);
        files.insert(blob_path(&self.manifest_digest), &self.manifest);
        for (d, b) in &self.extra_blobs {
            files.insert(blob_path(d), b);
        }
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        let mut b = tar::Builder::new(Vec::new());
        let io = |e| TestkitError::io("<oci layout tar>", e);
        let mut add = |path: &str, kind: tar::EntryType, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(if kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_size(data.len() as u64);
            h.set_mtime(FIXED_MTIME);
            h.set_uid(0);
            h.set_gid(0);
            b.append_data(&mut h, path, data).map_err(io)
        };
        add("oci-layout", tar::EntryType::Regular, layout)?;
        add("index.json", tar::EntryType::Regular, &self.index)?;
        add("blobs/", tar::EntryType::Directory, &[])?;
        add("blobs/sha256/", tar::EntryType::Directory, &[])?;
        for (path, data) in files {
            add(&path, tar::EntryType::Regular, data)?;
        }
        b.into_inner().map_err(io)
    }

    /// Writes [`oci_tar_bytes`](Self::oci_tar_bytes) to `out` (atomically: temp file + rename).
    pub fn write_oci_tar(&self, out: &Path) -> Result<()> {
        let bytes = self.oci_tar_bytes()?;
        let dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| TestkitError::io(dir, e))?;
        std::io::Write::write_all(&mut tmp, &bytes).map_err(|e| TestkitError::io(out, e))?;
        tmp.persist(out)
            .map_err(|e| TestkitError::io(out, e.error))?;
        Ok(())
    }

    /// Imports the image into `namespace` with `ctr images import` (which also unpacks it into
    /// the default snapshotter) and checks that containerd lists it under [`name`](Self::name)
    /// with this manifest digest. Importing the same image again is a no-op.
    ///
    /// The name comes from the `io.containerd.image.name` annotation in `index.json`, which
    /// `ctr` 1.6 uses verbatim (`org.opencontainers.image.ref.name` carries just the tag, as the
    /// OCI spec wants, for other tools).
    pub fn import(&self, containerd: &Containerd, namespace: &str) -> Result<ImportedImage> {
        let dir = tempfile::tempdir().map_err(|e| TestkitError::io("<tempdir>", e))?;
        let tar = dir.path().join("image.tar");
        self.write_oci_tar(&tar)?;
        let tar_arg = tar.to_string_lossy().into_owned();
        {
            // Parallel imports of the same blobs can trip over containerd's ingest locks.
            let _lock = lock_file(Path::new(IMPORT_LOCK))?;
            containerd.ctr_checked(namespace, &["images", "import", &tar_arg])?;
        }
        let listed = containerd.ctr_checked(namespace, &["images", "ls"])?;
        let digest = listed
            .stdout
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cols| cols.first() == Some(&self.name.as_str()))
            .and_then(|cols| cols.get(2).map(|d| (*d).to_owned()));
        let expected = self.index_digest.as_ref().unwrap_or(&self.manifest_digest);
        match digest {
            Some(d) if d == *expected => Ok(ImportedImage {
                reference: self.name.clone(),
                namespace: namespace.to_owned(),
                manifest_digest: d,
                config_digest: self.config_digest.clone(),
                diff_ids: self.diff_ids(),
            }),
            other => Err(TestkitError::CommandFailed {
                command: format!("ctr -n {namespace} images import {tar_arg}"),
                status: "image not listed as expected".into(),
                stderr: format!(
                    "expected {} at {}, containerd lists {:?}",
                    self.name, expected, other
                ),
            }),
        }
    }
}

//! `images.lock`: approved references and their digests, with the platform manifests of a
//! multi-platform image. JSON:
//!
//! ```json
//! {"version": 1,
//!  "images": {
//!    "registry.example/team/web:1.4": {
//!      "digest": "sha256:…",                       // a manifest or an index
//!      "config": "sha256:…",                       // optional: the image config
//!      "platforms": {"linux/amd64": "sha256:…"}    // optional: an index's children
//!    }}}
//! ```
//!
//! Keys are references as the distribution spec reads them (normalised: `nginx:1` is
//! `docker.io/library/nginx:1`); unknown fields are errors.

use crate::approved::{Approved, ApprovedFrom};
use crate::VerifyError;
use driftwatch_audit::image;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLock {
    version: u32,
    images: BTreeMap<String, RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    digest: String,
    #[serde(default)]
    config: Option<String>,
    #[serde(default)]
    platforms: BTreeMap<String, String>,
}

/// Largest lock file read.
pub const MAX_LOCK_BYTES: usize = 16 << 20;

fn digest_ok(d: &str) -> bool {
    // The reference grammar checks a digest; reuse it on a dummy name.
    image::parse(&format!("x@{d}")).is_ok()
}

/// Parses a lock file named `file`.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Vec<Approved>, VerifyError> {
    let err = |message: String| VerifyError::Lock {
        file: file.to_string(),
        message,
    };
    if bytes.len() > MAX_LOCK_BYTES {
        return Err(err(format!("larger than {MAX_LOCK_BYTES} bytes")));
    }
    let raw: RawLock = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
    if raw.version != 1 {
        return Err(err(format!(
            "version {} is not supported (1 is)",
            raw.version
        )));
    }
    let mut out = Vec::with_capacity(raw.images.len());
    for (reference, e) in raw.images {
        let r = image::parse_runtime(&reference)
            .map_err(|m| err(format!("reference {reference:?}: {m}")))?;
        if r.digest.is_some() {
            return Err(err(format!(
                "reference {reference:?}: the key names a tag, the digest goes in \"digest\""
            )));
        }
        for d in std::iter::once(&e.digest)
            .chain(e.config.iter())
            .chain(e.platforms.values())
        {
            if !digest_ok(d) {
                return Err(err(format!(
                    "reference {reference:?}: invalid digest {d:?}"
                )));
            }
        }
        for p in e.platforms.keys() {
            let parts: Vec<&str> = p.split('/').collect();
            if !(2..=3).contains(&parts.len()) || parts.iter().any(|s| s.is_empty()) {
                return Err(err(format!(
                    "reference {reference:?}: platform {p:?} is not os/arch[/variant]"
                )));
            }
        }
        out.push(Approved {
            repository: r.repository(),
            tag: r.tag.clone(),
            digest: Some(e.digest),
            config: e.config,
            platforms: e.platforms.into_iter().collect(),
            from: ApprovedFrom::Lock {
                file: file.to_string(),
                reference,
            },
        });
    }
    Ok(out)
}

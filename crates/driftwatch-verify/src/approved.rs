//! The approved set: image references (with digests when pinned) from Kubernetes manifests or
//! a lock file, each with where it came from.

use crate::VerifyError;
use driftwatch_audit::{image, Source};
use serde::Serialize;

/// Where an approved reference was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ApprovedFrom {
    Manifest {
        file: String,
        line: u32,
        column: u32,
        /// `Kind/namespace/name`.
        object: String,
        container: String,
        image: String,
    },
    Lock {
        file: String,
        reference: String,
    },
}

/// One approved image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approved {
    /// `domain/path`.
    pub repository: String,
    pub tag: Option<String>,
    /// The approved manifest or index digest (`None`: the manifest names a tag only).
    pub digest: Option<String>,
    /// The approved image config, when the lock file says.
    pub config: Option<String>,
    /// Platform manifests of an approved index (`os/arch[/variant]`, digest).
    pub platforms: Vec<(String, String)>,
    pub from: ApprovedFrom,
}

/// Every container image of the manifests in `sources` (see [`driftwatch_audit::images`]).
pub fn from_manifests(sources: &[Source]) -> Result<Vec<Approved>, VerifyError> {
    let mut out = Vec::new();
    for m in driftwatch_audit::images(sources)? {
        let r = image::parse_runtime(&m.image).map_err(|message| VerifyError::Manifest {
            file: m.file.clone(),
            line: m.line,
            column: m.column,
            message: format!("image {:?}: {message}", m.image),
        })?;
        out.push(Approved {
            repository: r.repository(),
            tag: r.tag.clone(),
            digest: r.digest.clone(),
            config: None,
            platforms: Vec::new(),
            from: ApprovedFrom::Manifest {
                file: m.file,
                line: m.line,
                column: m.column,
                object: m.object.to_string(),
                container: m.container,
                image: m.image,
            },
        });
    }
    Ok(out)
}

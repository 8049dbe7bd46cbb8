//! The image inventory of a node, for `driftwatch verify`: every container of one or every
//! containerd namespace with the reference it was started from (the CRI image-name annotation
//! when present), its image's manifest digest and — for a multi-platform image — the index
//! digest and the platform manifest that runs, all resolved from the local content store.

use crate::containerd::Containerd;
use crate::inspect::{read_blob, InspectError, NAME_LABELS};
use containerd_client::services::v1::{GetImageRequest, ListContainersRequest, ListTasksRequest};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// The runtime-spec annotation in which containerd's CRI plugin records the image name the
/// kubelet asked for (the container's `image` is then the image id or a digest reference).
pub const ANNOTATION_CRI_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
/// OCI index and Docker manifest list media types.
const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// What the content store says an image resolves to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResolvedImage {
    /// The image's target digest (a manifest, or an index).
    pub target_digest: String,
    /// The platform manifest that runs.
    pub manifest_digest: String,
    /// The index digest, when the target is an index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
    /// `os/architecture[/variant]` of the manifest picked from the index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The image config digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
}

/// One container and its image.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContainerImage {
    pub namespace: String,
    pub id: String,
    /// The name label ([`NAME_LABELS`]) or the id.
    pub name: String,
    /// `io.kubernetes.pod.{namespace,name,uid}` labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The reference the container was started from: the CRI image-name annotation when
    /// present, else the container's image.
    pub reference: String,
    /// The container's image field as containerd stores it.
    pub image: String,
    /// The task has a process.
    pub running: bool,
    /// `None` when the image is not in the content store (the reason is in `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<ResolvedImage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub labels: BTreeMap<String, String>,
}

/// Why an image could not be resolved (kept on the container, not fatal for the inventory).
fn describe(e: &crate::RuntimeError) -> String {
    crate::error::chain(e)
}

/// The host's platform as OCI writes it.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    ("linux", arch)
}

/// A descriptor of an index's `manifests`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub digest: String,
    pub platform: Option<String>,
    pub os: String,
    pub architecture: String,
}

/// The parsed content of a manifest or index blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blob {
    Manifest { config_digest: Option<String> },
    Index { manifests: Vec<IndexEntry> },
}

/// Reads a manifest or index blob; anything else (or malformed JSON) is an error message.
pub fn parse_blob(bytes: &[u8]) -> Result<Blob, String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JSON manifest or index: {e}"))?;
    let media = v["mediaType"].as_str().unwrap_or("");
    if let Some(ms) = v["manifests"].as_array() {
        if !media.is_empty() && !INDEX_TYPES.contains(&media) {
            return Err(format!("unexpected index media type {media:?}"));
        }
        let manifests = ms
            .iter()
            .filter_map(|m| {
                let digest = m["digest"].as_str()?.to_string();
                let os = m["platform"]["os"].as_str().unwrap_or("").to_string();
                let architecture = m["platform"]["architecture"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let platform = (!os.is_empty()).then(|| {
                    match m["platform"]["variant"].as_str().filter(|v| !v.is_empty()) {
                        Some(var) => format!("{os}/{architecture}/{var}"),
                        None => format!("{os}/{architecture}"),
                    }
                });
                Some(IndexEntry {
                    digest,
                    platform,
                    os,
                    architecture,
                })
            })
            .collect();
        return Ok(Blob::Index { manifests });
    }
    if v["layers"].is_array() || v["config"].is_object() {
        return Ok(Blob::Manifest {
            config_digest: v["config"]["digest"].as_str().map(str::to_string),
        });
    }
    Err("neither an image manifest nor an index".into())
}

/// The index entries the host can run, best first (an exact platform match).
pub fn runnable<'a>(manifests: &'a [IndexEntry]) -> impl Iterator<Item = &'a IndexEntry> + 'a {
    let (os, arch) = host_platform();
    manifests
        .iter()
        .filter(move |m| m.os == os && m.architecture == arch)
}

/// Resolves `target` (an image's target digest) through the content store of `ns`.
pub(crate) async fn resolve(
    cd: &Containerd,
    ns: &str,
    target: &str,
) -> Result<ResolvedImage, String> {
    let bytes = read_blob(cd, ns, target).await.map_err(|e| describe(&e))?;
    match parse_blob(&bytes)? {
        Blob::Manifest { config_digest } => Ok(ResolvedImage {
            target_digest: target.to_string(),
            manifest_digest: target.to_string(),
            index_digest: None,
            platform: None,
            config_digest,
        }),
        Blob::Index { manifests } => {
            // The platform manifest containerd unpacked is the host's one present locally.
            let mut last_err = format!("index {target} has no manifest for this platform");
            for m in runnable(&manifests) {
                match read_blob(cd, ns, &m.digest).await {
                    Ok(b) => match parse_blob(&b)? {
                        Blob::Manifest { config_digest } => {
                            return Ok(ResolvedImage {
                                target_digest: target.to_string(),
                                manifest_digest: m.digest.clone(),
                                index_digest: Some(target.to_string()),
                                platform: m.platform.clone(),
                                config_digest,
                            })
                        }
                        Blob::Index { .. } => {
                            last_err = format!("nested index {} in {target}", m.digest);
                        }
                    },
                    Err(e) => last_err = describe(&e),
                }
            }
            Err(last_err)
        }
    }
}

/// The children of an index in the content store of `ns` (`None`: not in the store, or not an
/// index).
pub(crate) async fn index_children(
    cd: &Containerd,
    ns: &str,
    digest: &str,
) -> Option<Vec<IndexEntry>> {
    let bytes = read_blob(cd, ns, digest).await.ok()?;
    match parse_blob(&bytes).ok()? {
        Blob::Index { manifests } => Some(manifests),
        Blob::Manifest { .. } => None,
    }
}

/// The inventory and the blobs it can look up afterwards.
#[derive(Debug)]
pub struct Inventory {
    cd: Containerd,
    pub containers: Vec<ContainerImage>,
}

impl Inventory {
    /// The children of an index digest, looked up in each namespace of the inventory.
    pub async fn index_children(&self, digest: &str) -> Option<Vec<IndexEntry>> {
        let namespaces: HashSet<&str> = self
            .containers
            .iter()
            .map(|c| c.namespace.as_str())
            .collect();
        for ns in namespaces {
            if let Some(c) = index_children(&self.cd, ns, digest).await {
                return Some(c);
            }
        }
        None
    }

    /// The config digest of a manifest (or of the host's manifest of an index) in the content
    /// store, looked up in each namespace of the inventory.
    pub async fn config_of(&self, digest: &str) -> Option<String> {
        let namespaces: HashSet<&str> = self
            .containers
            .iter()
            .map(|c| c.namespace.as_str())
            .collect();
        for ns in namespaces {
            if let Ok(r) = resolve(&self.cd, ns, digest).await {
                return r.config_digest;
            }
        }
        None
    }
}

/// Lists the containers of `namespace` (or of every namespace) with their images.
pub async fn inventory(
    socket: &Path,
    namespace: Option<&str>,
    timeout: Duration,
) -> Result<Inventory, InspectError> {
    let cd = Containerd::connect(socket, timeout, timeout).await?;
    let namespaces = match namespace {
        Some(n) => vec![n.to_owned()],
        None => cd.namespaces().await?,
    };
    let mut out = Vec::new();
    for ns in &namespaces {
        let req = Containerd::request(ns, ListTasksRequest::default())?;
        let tasks = cd.call("tasks.list", cd.client().tasks().list(req)).await?;
        let running: HashSet<String> = tasks
            .tasks
            .into_iter()
            .filter(|t| t.pid != 0 && crate::control::TaskState::from_raw(t.status).has_process())
            .map(|t| crate::containerd::task_container_id(&t))
            .collect();
        let req = Containerd::request(ns, ListContainersRequest::default())?;
        let list = cd
            .call("containers.list", cd.client().containers().list(req))
            .await?;
        let mut images: HashMap<String, Result<ResolvedImage, String>> = HashMap::new();
        for c in list.containers {
            let annotations = c
                .spec
                .as_ref()
                .and_then(|a| crate::spec::parse(&a.value).ok())
                .map(|s| s.annotations)
                .unwrap_or_default();
            let label = |k: &str| c.labels.get(k).filter(|v| !v.is_empty()).cloned();
            let mut item = ContainerImage {
                namespace: ns.clone(),
                id: c.id.clone(),
                name: NAME_LABELS
                    .iter()
                    .find_map(|l| label(l))
                    .unwrap_or_else(|| c.id.clone()),
                pod_namespace: label(crate::cri::LABEL_POD_NAMESPACE),
                pod_name: label(crate::cri::LABEL_POD_NAME),
                pod_uid: label(crate::cri::LABEL_POD_UID),
                reference: annotations
                    .get(ANNOTATION_CRI_IMAGE_NAME)
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .unwrap_or_else(|| c.image.clone()),
                image: c.image.clone(),
                running: running.contains(&c.id),
                labels: c
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                ..ContainerImage::default()
            };
            if c.image.is_empty() {
                item.error = Some("the container names no image".into());
            } else {
                let r = match images.get(&c.image) {
                    Some(r) => r.clone(),
                    None => {
                        let r = image_target(&cd, ns, &c.image).await;
                        let r = match r {
                            Ok(t) => resolve(&cd, ns, &t).await,
                            Err(e) => Err(e),
                        };
                        images.insert(c.image.clone(), r.clone());
                        r
                    }
                };
                match r {
                    Ok(r) => item.resolved = Some(r),
                    Err(e) => item.error = Some(e),
                }
            }
            out.push(item);
        }
    }
    Ok(Inventory {
        cd,
        containers: out,
    })
}

async fn image_target(cd: &Containerd, ns: &str, image: &str) -> Result<String, String> {
    let req = Containerd::request(
        ns,
        GetImageRequest {
            name: image.to_owned(),
        },
    )
    .map_err(|e| describe(&e))?;
    let resp = cd
        .call("images.get", cd.client().images().get(req))
        .await
        .map_err(|e| describe(&e))?;
    resp.image
        .and_then(|i| i.target)
        .map(|t| t.digest)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| format!("image {image:?} has no target"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_and_indexes_are_told_apart() {
        let m = br#"{"schemaVersion":2,"config":{"digest":"sha256:c"},"layers":[]}"#;
        assert_eq!(
            parse_blob(m),
            Ok(Blob::Manifest {
                config_digest: Some("sha256:c".into())
            })
        );
        let (os, arch) = host_platform();
        let i = format!(
            r#"{{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {{"digest":"sha256:a","platform":{{"os":"linux","architecture":"s390x"}}}},
            {{"digest":"sha256:b","platform":{{"os":"{os}","architecture":"{arch}","variant":"v8"}}}},
            {{"platform":{{"os":"linux"}}}}]}}"#
        );
        let Ok(Blob::Index { manifests }) = parse_blob(i.as_bytes()) else {
            panic!("an index");
        };
        assert_eq!(manifests.len(), 2);
        let picked: Vec<&str> = runnable(&manifests).map(|m| m.digest.as_str()).collect();
        assert_eq!(picked, ["sha256:b"]);
        assert_eq!(
            manifests[1].platform.as_deref(),
            Some(format!("{os}/{arch}/v8").as_str())
        );
    }

    #[test]
    fn hostile_blobs_are_errors() {
        assert!(parse_blob(b"\xff").is_err());
        assert!(parse_blob(b"[]").is_err());
        assert!(parse_blob(br#"{"mediaType":"x","manifests":[]}"#).is_err());
    }
}

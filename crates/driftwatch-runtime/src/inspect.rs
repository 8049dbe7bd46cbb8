//! One container in detail, for `driftwatch diff`: find it by id or name in one or every
//! namespace, and fetch its runtime spec, its image config (from the content store) and its
//! overlay layers (from the snapshotter, falling back to the task's mountinfo).

use crate::containerd::{complete_from_proc, Containerd};
use crate::error::RuntimeError;
use crate::procfs::ProcFs;
use containerd_client::services::v1::{
    Container, GetImageRequest, ListContainersRequest, ReadContentRequest,
};
use driftwatch_event::OverlayLayers;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Labels that carry a container's name.
pub const NAME_LABELS: &[&str] = &["io.kubernetes.container.name", "nerdctl/name", "name"];
/// Largest manifest, index or config blob read.
const MAX_BLOB: usize = 16 << 20;

/// Why a container could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("no container {query:?}{}", namespace.as_ref().map(|n| format!(" in namespace {n}")).unwrap_or_default())]
    NotFound {
        query: String,
        namespace: Option<String>,
    },
    #[error("{query:?} matches several containers: {}", matches.join(", "))]
    Ambiguous { query: String, matches: Vec<String> },
}

/// What `driftwatch diff` needs to know about a container.
#[derive(Debug, Clone, Default)]
pub struct ContainerDetails {
    pub namespace: String,
    pub id: String,
    pub image: String,
    pub image_digest: Option<String>,
    pub labels: HashMap<String, String>,
    /// The OCI runtime spec JSON.
    pub spec: Option<Vec<u8>>,
    /// The image config blob JSON.
    pub image_config: Option<Vec<u8>>,
    pub layers: Option<OverlayLayers>,
    /// Init pid of a running task.
    pub pid: Option<u32>,
}

/// Find `query` (a container id, a unique id prefix, or a name label value) in `namespace`
/// (or in every namespace) and fetch its details.
pub async fn inspect_container(
    socket: &Path,
    namespace: Option<&str>,
    query: &str,
    timeout: Duration,
) -> Result<ContainerDetails, InspectError> {
    let cd = Containerd::connect(socket, timeout, timeout).await?;
    let (ns, c) = find_container(&cd, namespace, query).await?;
    let mut d = ContainerDetails {
        namespace: ns.clone(),
        id: c.id.clone(),
        image: c.image.clone(),
        labels: c.labels.clone(),
        spec: c.spec.as_ref().map(|a| a.value.clone()),
        ..ContainerDetails::default()
    };
    d.image_digest = cd.image_digest(&ns, &c.image).await;
    d.image_config = match image_config(&cd, &ns, &c.image).await {
        Ok(cfg) => cfg,
        Err(e) => {
            tracing::warn!(image = %c.image, error = %crate::error::chain(&e), "cannot read the image config");
            None
        }
    };
    d.layers = cd.snapshot_layers(&ns, &c).await;
    if let Ok(Some(task)) = cd.task(&ns, &c.id).await {
        if task.pid != 0 {
            d.pid = Some(task.pid);
            if d.layers.as_ref().is_none_or(|l| l.upperdir.is_none()) {
                let mut info = driftwatch_event::ContainerInfo::default();
                complete_from_proc(
                    &mut info,
                    task.pid,
                    &ProcFs::new(PathBuf::from("/proc"), None),
                );
                if info.rootfs.is_some() {
                    d.layers = info.rootfs;
                }
            }
        }
    }
    Ok(d)
}

/// The one resolver of a container named on the command line: `query` is a container id, a
/// unique id prefix (at least 4 characters) or a name label value ([`NAME_LABELS`]), looked up
/// in `namespace` or in every namespace; an exact id wins over names and prefixes.
pub(crate) async fn find_container(
    cd: &Containerd,
    namespace: Option<&str>,
    query: &str,
) -> Result<(String, Container), InspectError> {
    let namespaces = match namespace {
        Some(n) => vec![n.to_owned()],
        None => cd.namespaces().await?,
    };
    let mut exact = Vec::new();
    let mut fuzzy = Vec::new();
    for ns in &namespaces {
        let req = Containerd::request(ns, ListContainersRequest::default())?;
        let list = cd
            .call("containers.list", cd.client().containers().list(req))
            .await?;
        for c in list.containers {
            if c.id == query {
                exact.push((ns.clone(), c));
            } else if NAME_LABELS
                .iter()
                .any(|l| c.labels.get(*l).is_some_and(|v| v == query))
                || (query.len() >= 4 && c.id.starts_with(query))
            {
                fuzzy.push((ns.clone(), c));
            }
        }
    }
    let candidates = if exact.is_empty() { fuzzy } else { exact };
    match candidates.len() {
        0 => Err(InspectError::NotFound {
            query: query.to_owned(),
            namespace: namespace.map(str::to_owned),
        }),
        1 => candidates
            .into_iter()
            .next()
            .ok_or_else(|| InspectError::NotFound {
                query: query.to_owned(),
                namespace: None,
            }),
        _ => Err(InspectError::Ambiguous {
            query: query.to_owned(),
            matches: candidates
                .iter()
                .map(|(n, c)| format!("{n}/{}", c.id))
                .collect(),
        }),
    }
}

pub(crate) async fn read_blob(
    cd: &Containerd,
    ns: &str,
    digest: &str,
) -> Result<Vec<u8>, RuntimeError> {
    let req = Containerd::request(
        ns,
        ReadContentRequest {
            digest: digest.to_owned(),
            offset: 0,
            size: 0,
        },
    )?;
    let mut stream = cd
        .call("content.read", cd.client().content().read(req))
        .await?;
    let mut out = Vec::new();
    while let Some(msg) = stream
        .message()
        .await
        .map_err(|source| RuntimeError::Call {
            call: "content.read",
            source,
        })?
    {
        out.extend_from_slice(&msg.data);
        if out.len() > MAX_BLOB {
            return Err(RuntimeError::Call {
                call: "content.read",
                source: tonic::Status::resource_exhausted("blob larger than 16 MiB"),
            });
        }
    }
    Ok(out)
}

/// The image config blob of `image`: target → (index → platform manifest) → config.
pub(crate) async fn image_config(
    cd: &Containerd,
    ns: &str,
    image: &str,
) -> Result<Option<Vec<u8>>, RuntimeError> {
    if image.is_empty() {
        return Ok(None);
    }
    let req = Containerd::request(
        ns,
        GetImageRequest {
            name: image.to_owned(),
        },
    )?;
    let resp = cd.call("images.get", cd.client().images().get(req)).await?;
    let Some(target) = resp.image.and_then(|i| i.target) else {
        return Ok(None);
    };
    let mut digest = target.digest;
    for _ in 0..3 {
        let blob = read_blob(cd, ns, &digest).await?;
        let v: serde_json::Value = match serde_json::from_slice(&blob) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
        if let Some(cfg) = v["config"]["digest"].as_str() {
            return read_blob(cd, ns, cfg).await.map(Some);
        }
        let Some(manifests) = v["manifests"].as_array() else {
            return Ok(None);
        };
        let pick = manifests
            .iter()
            .find(|m| {
                m["platform"]["os"] == crate::inventory::host_platform().0
                    && m["platform"]["architecture"] == crate::inventory::host_platform().1
            })
            .or_else(|| manifests.first());
        match pick.and_then(|m| m["digest"].as_str()) {
            Some(d) => digest = d.to_owned(),
            None => return Ok(None),
        }
    }
    Ok(None)
}

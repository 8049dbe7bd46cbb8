//! `driftwatch verify`: the images a node runs against an approved set.
//!
//! Pipeline: the node's inventory ([`driftwatch_runtime::inventory`]: every container with the
//! reference it was started from and its manifest, index and config digests from the local
//! content store) + the approved set ([`approved::from_manifests`], [`lock::parse`]) + the
//! facts about approved digests the content store has ([`store_facts`]: an index's children,
//! a manifest's config) → [`check`] (pure) → [`Report`] → [`render`].
//!
//! Findings (stable ids): `mutable-tag`, `digest-mismatch` (classified: [`Class`]),
//! `unapproved-image`, `mixed-digests`. Each carries its evidence: the approved entry (a
//! manifest's file:line:col and object, or the lock file's reference), the pod, the reference,
//! and the running manifest / index digests.

#![forbid(unsafe_code)]

pub mod approved;
pub mod lock;
pub mod render;

#[cfg(test)]
mod tests;

pub use approved::{Approved, ApprovedFrom};
use driftwatch_audit::image::{self, ImageRef};
use driftwatch_runtime::inventory::{ContainerImage, Inventory, ResolvedImage};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Why verify could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Audit(#[from] driftwatch_audit::AuditError),
    #[error("{file}:{line}:{column}: {message}")]
    Manifest {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },
    #[error("{file}: {message}")]
    Lock { file: String, message: String },
}

/// The finding ids, with their summaries.
pub const FINDINGS: &[(&str, &str)] = &[
    (
        MUTABLE_TAG,
        "a running container was started from a tag, not a digest",
    ),
    (
        DIGEST_MISMATCH,
        "the running digest is not the approved one",
    ),
    (UNAPPROVED_IMAGE, "no approved entry for the running image"),
    (
        MIXED_DIGESTS,
        "containers of one workload on this node run different digests",
    ),
];
pub const MUTABLE_TAG: &str = "mutable-tag";
pub const DIGEST_MISMATCH: &str = "digest-mismatch";
pub const UNAPPROVED_IMAGE: &str = "unapproved-image";
pub const MIXED_DIGESTS: &str = "mixed-digests";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// How a running digest relates to the approved one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// The running manifest (or its index) is the approved digest.
    Exact,
    /// The running manifest is a platform manifest of the approved index (fine).
    PlatformChild,
    /// Another manifest of the same image config: the approved image under another
    /// repository, or re-pushed.
    SameConfig,
    /// Nothing in common.
    Unrelated,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Exact => "exact",
            Class::PlatformChild => "platform-child",
            Class::SameConfig => "same-config",
            Class::Unrelated => "unrelated",
        }
    }
}

/// A container, as findings name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerId {
    pub namespace: String,
    pub id: String,
    pub name: String,
    /// `namespace/name` of its pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

/// The chain from the approved entry to the running digest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evidence {
    /// The approved entries compared with.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approved: Vec<ApprovedFrom>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    pub reference: String,
    /// The running image's digests (manifest, index, platform, config), flattened.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub running: Option<ResolvedImage>,
    /// `mixed-digests`: the workload and the digests its containers run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workload_digests: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub severity: Severity,
    pub container: ContainerId,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<Class>,
    pub evidence: Evidence,
}

/// One container of the inventory and what verify made of it.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    #[serde(flatten)]
    pub image: ContainerImage,
    /// The match against the approved set (`None`: no set, no entry, or no digest to compare).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<Class>,
    /// Why the reference could not be parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub containers: Vec<Verified>,
    pub findings: Vec<Finding>,
    /// Approved entries (`None`: no approved set given).
    pub approved: Option<usize>,
}

/// What the local content store says about approved digests.
#[derive(Debug, Clone, Default)]
pub struct StoreFacts {
    /// Index digest → its platform manifests.
    pub children: HashMap<String, Vec<String>>,
    /// Manifest (or index) digest → image config digest.
    pub configs: HashMap<String, String>,
}

/// Looks every approved digest up in the content store of the inventory's namespaces.
pub async fn store_facts(inv: &Inventory, approved: &[Approved]) -> StoreFacts {
    let mut facts = StoreFacts::default();
    let digests: BTreeSet<&str> = approved
        .iter()
        .filter_map(|a| a.digest.as_deref())
        .collect();
    for d in digests {
        if let Some(children) = inv.index_children(d).await {
            facts.children.insert(
                d.to_string(),
                children.into_iter().map(|c| c.digest).collect(),
            );
        }
        if let Some(cfg) = inv.config_of(d).await {
            facts.configs.insert(d.to_string(), cfg);
        }
    }
    facts
}

fn container_id(c: &ContainerImage) -> ContainerId {
    ContainerId {
        namespace: c.namespace.clone(),
        id: c.id.clone(),
        name: c.name.clone(),
        pod: pod_of(c),
    }
}

fn pod_of(c: &ContainerImage) -> Option<String> {
    match (&c.pod_namespace, &c.pod_name) {
        (Some(ns), Some(p)) => Some(format!("{ns}/{p}")),
        _ => None,
    }
}

fn evidence(c: &ContainerImage) -> Evidence {
    Evidence {
        pod: pod_of(c),
        reference: c.reference.clone(),
        running: c.resolved.clone(),
        ..Evidence::default()
    }
}

/// The config digest of an approved entry: the lock file's, else the content store's.
fn approved_config<'a>(a: &'a Approved, facts: &'a StoreFacts) -> Option<&'a str> {
    a.config.as_deref().or_else(|| {
        a.digest
            .as_deref()
            .and_then(|d| facts.configs.get(d))
            .map(String::as_str)
    })
}

/// Classifies a running image against approved entries of its repository (each with a
/// digest).
pub fn classify(
    c: &ContainerImage,
    entries: &[&Approved],
    facts: &StoreFacts,
) -> Option<(Class, Option<String>)> {
    let r = c.resolved.as_ref()?;
    let running = |d: &str| d == r.manifest_digest || r.index_digest.as_deref() == Some(d);
    let pinned: Vec<&&Approved> = entries.iter().filter(|a| a.digest.is_some()).collect();
    if pinned.is_empty() {
        return None;
    }
    for a in &pinned {
        let d = a.digest.as_deref().unwrap_or_default();
        if running(d) {
            return Some((Class::Exact, Some(d.to_string())));
        }
    }
    for a in &pinned {
        let d = a.digest.as_deref().unwrap_or_default();
        let child = a.platforms.iter().any(|(_, p)| *p == r.manifest_digest)
            || facts
                .children
                .get(d)
                .is_some_and(|ch| ch.contains(&r.manifest_digest));
        if child {
            return Some((Class::PlatformChild, Some(d.to_string())));
        }
    }
    if let Some(cfg) = r.config_digest.as_deref() {
        for a in &pinned {
            if approved_config(a, facts) == Some(cfg) {
                return Some((Class::SameConfig, a.digest.clone()));
            }
        }
    }
    Some((
        Class::Unrelated,
        pinned.first().and_then(|a| a.digest.clone()),
    ))
}

/// The workload key of a container with a pod identity (see `driftwatch_baseline::Workload`).
fn workload_of(c: &ContainerImage) -> Option<String> {
    c.pod_name.as_ref()?;
    let info = driftwatch_event::ContainerInfo {
        id: c.id.clone(),
        name: c.name.clone(),
        pod_namespace: c.pod_namespace.clone(),
        pod_name: c.pod_name.clone(),
        ..driftwatch_event::ContainerInfo::default()
    };
    Some(driftwatch_baseline::Workload::of(&info).key)
}

/// Verifies `containers` against `approved` (`None`: no approved set; only `mutable-tag` and
/// `mixed-digests` apply). Only running containers get findings.
pub fn check(
    containers: Vec<ContainerImage>,
    approved: Option<&[Approved]>,
    facts: &StoreFacts,
) -> Report {
    let mut by_repo: HashMap<&str, Vec<&Approved>> = HashMap::new();
    for a in approved.unwrap_or_default() {
        by_repo.entry(a.repository.as_str()).or_default().push(a);
    }
    let mut findings = Vec::new();
    let mut out = Vec::with_capacity(containers.len());
    for c in containers {
        let parsed: Result<ImageRef, String> = image::parse_runtime(&c.reference);
        let mut v = Verified {
            class: None,
            reference_error: parsed.as_ref().err().cloned(),
            image: c,
        };
        let c = &v.image;
        if let (true, Ok(r)) = (c.running, &parsed) {
            if r.digest.is_none() {
                let severe = r.mutable_tag();
                findings.push(Finding {
                    id: MUTABLE_TAG,
                    severity: if severe {
                        Severity::Error
                    } else {
                        Severity::Warning
                    },
                    container: container_id(c),
                    message: format!(
                        "started from {}{}, not a digest",
                        r.name_with_tag(),
                        match r.tag.as_deref() {
                            None => " (no tag: latest)",
                            Some("latest") => " (latest)",
                            Some(_) => "",
                        }
                    ),
                    class: None,
                    evidence: evidence(c),
                });
            }
            if let Some(all) = approved {
                let repo = r.repository();
                let entries = by_repo.get(repo.as_str()).map_or(&[][..], Vec::as_slice);
                // Entries of the same tag, when any; else every entry of the repository.
                let tagged: Vec<&Approved> = entries
                    .iter()
                    .copied()
                    .filter(|a| r.tag.is_some() && a.tag == r.tag)
                    .collect();
                let entries: Vec<&Approved> = if tagged.is_empty() {
                    entries.to_vec()
                } else {
                    tagged
                };
                if entries.is_empty() {
                    // The same image approved under another repository?
                    let others: Vec<&Approved> = all.iter().collect();
                    match classify(c, &others, facts) {
                        Some((
                            class @ (Class::Exact | Class::PlatformChild | Class::SameConfig),
                            d,
                        )) => {
                            let a = others
                                .iter()
                                .find(|a| a.digest == d)
                                .map(|a| a.from.clone());
                            let mut e = evidence(c);
                            e.approved = a.into_iter().collect();
                            e.approved_digest = d;
                            v.class = Some(Class::SameConfig);
                            findings.push(Finding {
                                id: DIGEST_MISMATCH,
                                severity: Severity::Warning,
                                container: container_id(c),
                                message: format!(
                                    "{repo} is not approved, but the same image is under another repository ({})",
                                    class.as_str()
                                ),
                                class: Some(Class::SameConfig),
                                evidence: e,
                            });
                        }
                        _ => findings.push(Finding {
                            id: UNAPPROVED_IMAGE,
                            severity: Severity::Error,
                            container: container_id(c),
                            message: format!("no approved entry for {repo}"),
                            class: None,
                            evidence: evidence(c),
                        }),
                    }
                } else if let Some((class, d)) = classify(c, &entries, facts) {
                    v.class = Some(class);
                    if matches!(class, Class::SameConfig | Class::Unrelated) {
                        let mut e = evidence(c);
                        e.approved = entries.iter().map(|a| a.from.clone()).collect();
                        e.approved_digest = d.clone();
                        findings.push(Finding {
                            id: DIGEST_MISMATCH,
                            severity: if class == Class::Unrelated {
                                Severity::Error
                            } else {
                                Severity::Warning
                            },
                            container: container_id(c),
                            message: format!(
                                "runs {} where {} is approved ({})",
                                c.resolved
                                    .as_ref()
                                    .map_or("?", |r| r.manifest_digest.as_str()),
                                d.as_deref().unwrap_or("?"),
                                class.as_str()
                            ),
                            class: Some(class),
                            evidence: e,
                        });
                    }
                }
            }
        }
        out.push(v);
    }
    // mixed-digests: running containers of one workload with different manifest digests.
    let mut workloads: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, v) in out.iter().enumerate() {
        if v.image.running && v.image.resolved.is_some() {
            if let Some(w) = workload_of(&v.image) {
                workloads.entry(w).or_default().push(i);
            }
        }
    }
    for (w, idx) in workloads {
        let digests: BTreeSet<&str> = idx
            .iter()
            .filter_map(|&i| out[i].image.resolved.as_ref())
            .map(|r| r.manifest_digest.as_str())
            .collect();
        if digests.len() < 2 {
            continue;
        }
        let list: Vec<String> = digests.iter().map(|d| (*d).to_string()).collect();
        for &i in &idx {
            let c = &out[i].image;
            let mut e = evidence(c);
            e.workload = Some(w.clone());
            e.workload_digests.clone_from(&list);
            findings.push(Finding {
                id: MIXED_DIGESTS,
                severity: Severity::Error,
                container: container_id(c),
                message: format!("{w}: {} digests on this node", list.len()),
                class: None,
                evidence: e,
            });
        }
    }
    Report {
        containers: out,
        findings,
        approved: approved.map(<[Approved]>::len),
    }
}

/// Keeps the containers that `queries` name (an id, a unique id prefix of at least 4
/// characters, or a name); every query must match; no queries keeps everything.
pub fn select(
    containers: Vec<ContainerImage>,
    queries: &[String],
) -> Result<Vec<ContainerImage>, String> {
    if queries.is_empty() {
        return Ok(containers);
    }
    let mut keep = vec![false; containers.len()];
    for q in queries {
        let exact: Vec<usize> = (0..containers.len())
            .filter(|&i| containers[i].id == *q)
            .collect();
        let hits = if exact.is_empty() {
            (0..containers.len())
                .filter(|&i| {
                    containers[i].name == *q || (q.len() >= 4 && containers[i].id.starts_with(q))
                })
                .collect()
        } else {
            exact
        };
        if hits.is_empty() {
            return Err(format!("no container {q:?}"));
        }
        for i in hits {
            keep[i] = true;
        }
    }
    Ok(containers
        .into_iter()
        .zip(keep)
        .filter_map(|(c, k)| k.then_some(c))
        .collect())
}

//! `driftwatch audit`: Kubernetes manifests (every kind that carries a pod spec, `List`s and
//! Namespaces) against the Pod Security Standards, check for check as the pod-security
//! admission implements them, and immutability checks beyond them. Every finding has the file,
//! line and column of the offending field, a one-line reason and a fix (an RFC 6902 JSON patch,
//! and text edits for SARIF).
//!
//! Pipeline: [`Source`] text → [`yaml::parse_stream`] (a positioned tree, bounded) → objects
//! ([`model`]) → checks ([`pss`], [`immutability`]) → ignores → [`Report`] → [`render`].
//! No IO: the caller reads the files.

#![forbid(unsafe_code)]

pub mod fix;
pub mod hit;
pub mod image;
pub mod immutability;
pub mod model;
pub mod pss;
pub mod render;
pub mod yaml;

#[cfg(test)]
mod tests;

use fix::{Fix, FixBuilder};
use hit::Hit;
use model::{Level, ObjectId, PodCtx, Version};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use yaml::{Node, Pos};

/// The annotation that lists the check ids not to report for an object.
pub const IGNORE_ANNOTATION: &str = "driftwatch.io/ignore";
/// The annotation that says why (required with [`IGNORE_ANNOTATION`]).
pub const IGNORE_REASON_ANNOTATION: &str = "driftwatch.io/ignore-reason";
/// The Namespace labels of the pod-security admission.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";

/// Checks of the audit itself (namespaces, ignores): id and summary.
pub const META_CHECKS: &[(&str, &str)] = &[
    (
        "namespace.enforceMissing",
        "a Namespace must set the pod-security.kubernetes.io/enforce label",
    ),
    (
        "namespace.invalidLevel",
        "the enforce label must be privileged, baseline or restricted",
    ),
    (
        "namespace.invalidVersion",
        "the enforce-version label must be latest or v1.N",
    ),
    (
        "ignore.missingReason",
        "driftwatch.io/ignore needs driftwatch.io/ignore-reason",
    ),
    (
        "ignore.unknownCheck",
        "driftwatch.io/ignore must name known check ids",
    ),
];

/// One input: a file name (as reported) and its text.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

impl Source {
    /// A source from bytes that must be UTF-8.
    pub fn from_bytes(name: impl Into<String>, bytes: Vec<u8>) -> Result<Source, AuditError> {
        let name = name.into();
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Source { name, text }),
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
                let col = valid.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
                Err(AuditError::Syntax {
                    file: name,
                    line: u32::try_from(line).unwrap_or(u32::MAX),
                    column: u32::try_from(col).unwrap_or(u32::MAX),
                    message: "not UTF-8 text".into(),
                })
            }
        }
    }
}

/// Why the audit could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },
}

impl AuditError {
    fn at(file: &str, pos: Pos, message: impl Into<String>) -> AuditError {
        AuditError::Syntax {
            file: file.to_string(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }
}

/// How to audit.
#[derive(Debug, Clone)]
pub struct Options {
    /// The level of workloads whose namespace is not in the input or sets no enforce label.
    pub level: Level,
    /// The standards' version; `None`: the namespace's `enforce-version`, else `latest`.
    pub version: Option<Version>,
    /// Run the immutability checks.
    pub immutability: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            level: Level::Restricted,
            version: None,
            immutability: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: String,
    pub severity: Severity,
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub object: ObjectId,
    pub reason: String,
    pub fix: Fix,
}

/// Where a workload's level came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LevelSource {
    /// The enforce label of its Namespace in the input.
    Namespace,
    /// `--level`: its Namespace is not in the input.
    NamespaceNotInInput,
    /// `--level`: its Namespace sets no (valid) enforce label.
    NamespaceWithoutEnforce,
}

/// Whether a workload passes its level.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub object: ObjectId,
    pub file: String,
    pub line: u32,
    pub level: Level,
    pub level_source: LevelSource,
    pub version: String,
    pub passes: bool,
    /// The standards' checks it fails (not ignored).
    pub failed_checks: Vec<String>,
}

/// A Namespace of the input and the level it enforces.
#[derive(Debug, Clone, Serialize)]
pub struct NamespaceLevel {
    pub name: String,
    pub file: String,
    pub line: u32,
    pub enforce: Option<Level>,
    pub enforce_version: Option<String>,
}

/// The result of an audit.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Findings an object's ignore annotation (with a reason) suppressed.
    pub ignored: Vec<Finding>,
    pub namespaces: Vec<NamespaceLevel>,
    pub workloads: Vec<Verdict>,
    pub files: usize,
    pub objects: usize,
    /// Objects of kinds with no pod spec and not Namespace (not audited).
    pub other_kinds: usize,
}

/// Every check id: the standards', the immutability ones and the audit's own.
pub fn all_check_ids() -> impl Iterator<Item = &'static str> {
    pss::CHECKS
        .iter()
        .map(|c| c.id)
        .chain(immutability::CHECKS.iter().map(|c| c.0))
        .chain(META_CHECKS.iter().map(|c| c.0))
}

/// The one-line summary of a check id.
pub fn check_summary(id: &str) -> Option<&'static str> {
    pss::CHECKS
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.summary)
        .or_else(|| immutability::CHECKS.iter().find(|c| c.0 == id).map(|c| c.1))
        .or_else(|| META_CHECKS.iter().find(|c| c.0 == id).map(|c| c.1))
}

struct Obj<'a> {
    file: &'a str,
    node: &'a Node,
    id: ObjectId,
}

fn object_id(node: &Node) -> ObjectId {
    let meta = node.get("metadata");
    let s = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Node::str)
            .map(str::to_string)
    };
    ObjectId {
        kind: node
            .get("kind")
            .and_then(Node::str)
            .unwrap_or("")
            .to_string(),
        name: s("name").or_else(|| s("generateName")).unwrap_or_default(),
        namespace: s("namespace"),
    }
}

/// The objects of one document: itself, or a `List`'s items (nested lists too).
fn collect<'a>(file: &'a str, node: &'a Node, out: &mut Vec<Obj<'a>>) -> Result<(), AuditError> {
    if node.is_null() {
        return Ok(());
    }
    if !node.is_map() {
        return Err(AuditError::at(
            file,
            node.start,
            "a document must be a Kubernetes object (a mapping)",
        ));
    }
    let Some(kind) = node.get("kind").and_then(Node::str) else {
        return Err(AuditError::at(file, node.start, "object has no kind"));
    };
    if kind == "List" || (kind.ends_with("List") && node.get("items").is_some()) {
        for item in node.get("items").map_or(&[][..], Node::seq) {
            collect(file, item, out)?;
        }
        return Ok(());
    }
    out.push(Obj {
        file,
        node,
        id: object_id(node),
    });
    Ok(())
}

/// The pod spec of an object of a kind that carries one (`None`: another kind, or no spec).
fn pod_of<'a>(o: &Obj<'a>) -> Option<PodCtx<'a>> {
    let (spec_path, meta_path) = model::pod_spec_paths(&o.id.kind)?;
    let spec = o.node.at(spec_path).filter(|s| s.is_map())?;
    Some(PodCtx::new(
        spec,
        model::pointer(spec_path),
        o.node.at(meta_path),
        model::pointer(meta_path),
    ))
}

fn hit_to_finding(h: Hit, o: &Obj<'_>) -> Finding {
    let severity = if h.check.starts_with("immutability.") || h.check.starts_with("ignore.") {
        Severity::Warning
    } else {
        Severity::Error
    };
    Finding {
        check: h.check.to_string(),
        severity,
        file: o.file.to_string(),
        line: h.pos.line,
        column: h.pos.column,
        object: o.id.clone(),
        reason: h.reason,
        fix: h.fix,
    }
}

struct NsInfo {
    level: Option<Level>,
    version: Option<Version>,
}

fn namespace_checks(o: &Obj<'_>, opts: &Options, hits: &mut Vec<Hit>) -> (NamespaceLevel, NsInfo) {
    let meta = o.node.get("metadata");
    let labels = meta.and_then(|m| m.get("labels"));
    let label = |k: &str| labels.and_then(|l| l.get(k));
    let mut info = NsInfo {
        level: None,
        version: None,
    };
    match label(ENFORCE_LABEL) {
        None => {
            let at = meta
                .and_then(|m| m.entry("labels").or_else(|| m.entry("name")))
                .map_or(o.node.start, |(k, _)| k.start);
            let mut fix = FixBuilder::new(format!(
                "label the namespace {ENFORCE_LABEL}={} and {ENFORCE_VERSION_LABEL}=latest",
                opts.level
            ));
            let mut labels = serde_json::Map::new();
            labels.insert(ENFORCE_LABEL.into(), json!(opts.level.as_str()));
            if label(ENFORCE_VERSION_LABEL).is_none() {
                labels.insert(ENFORCE_VERSION_LABEL.into(), json!("latest"));
            }
            fix = fix.set_all(meta.unwrap_or(o.node), "/metadata", &["labels"], labels);
            hits.push(Hit::new(
                "namespace.enforceMissing",
                at,
                format!(
                    "namespace {:?} sets no {ENFORCE_LABEL} label: the cluster's default level applies (audited at --level {})",
                    o.id.name, opts.level
                ),
                fix.build(),
            ));
        }
        Some(v) => match v.str().and_then(Level::parse) {
            Some(l) => info.level = Some(l),
            None => hits.push(Hit::new(
                "namespace.invalidLevel",
                v.start,
                format!(
                    "{ENFORCE_LABEL}={:?} is not a level (audited at --level {})",
                    v.str().unwrap_or(""),
                    opts.level
                ),
                FixBuilder::new(format!("set the label to {}", opts.level))
                    .set(
                        meta.unwrap_or(o.node),
                        "/metadata",
                        &["labels", ENFORCE_LABEL],
                        json!(opts.level.as_str()),
                    )
                    .build(),
            )),
        },
    }
    if let Some(v) = label(ENFORCE_VERSION_LABEL) {
        match v.str().and_then(Version::parse) {
            Some(ver) => info.version = Some(ver),
            None => hits.push(Hit::new(
                "namespace.invalidVersion",
                v.start,
                format!(
                    "{ENFORCE_VERSION_LABEL}={:?} is not latest or v1.N (audited at latest)",
                    v.str().unwrap_or("")
                ),
                FixBuilder::new("set the label to latest")
                    .set(
                        meta.unwrap_or(o.node),
                        "/metadata",
                        &["labels", ENFORCE_VERSION_LABEL],
                        json!("latest"),
                    )
                    .build(),
            )),
        }
    }
    let ns = NamespaceLevel {
        name: o.id.name.clone(),
        file: o.file.to_string(),
        line: o.node.start.line,
        enforce: info.level,
        enforce_version: label(ENFORCE_VERSION_LABEL)
            .and_then(Node::str)
            .map(str::to_string),
    };
    (ns, info)
}

/// The ignored check ids of an object, or the findings its ignore annotation is itself.
fn ignores(o: &Obj<'_>, hits: &mut Vec<Hit>) -> Vec<String> {
    let ann = o.node.at(&["metadata", "annotations"]);
    let Some(ign) = ann.and_then(|a| a.get(IGNORE_ANNOTATION)) else {
        return Vec::new();
    };
    let ids: Vec<String> = ign
        .str()
        .unwrap_or("")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    for id in &ids {
        if !all_check_ids().any(|k| k == id) {
            hits.push(Hit::new(
                "ignore.unknownCheck",
                ign.start,
                format!("{IGNORE_ANNOTATION} names {id:?}, which is no check id"),
                FixBuilder::new("name known check ids (see `driftwatch audit --list-checks`)")
                    .build(),
            ));
        }
    }
    let reason = ann
        .and_then(|a| a.get(IGNORE_REASON_ANNOTATION))
        .and_then(Node::str)
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if reason.is_none() {
        hits.push(Hit::new(
            "ignore.missingReason",
            ign.start,
            format!("{IGNORE_ANNOTATION} without a {IGNORE_REASON_ANNOTATION}: nothing is ignored"),
            FixBuilder::new("say why in the ignore-reason annotation")
                .set(
                    o.node,
                    "",
                    &["metadata", "annotations", IGNORE_REASON_ANNOTATION],
                    json!("<why these checks do not apply>"),
                )
                .build(),
        ));
        return Vec::new();
    }
    ids
}

/// Audits every source.
pub fn audit(sources: &[Source], opts: &Options) -> Result<Report, AuditError> {
    let mut trees = Vec::with_capacity(sources.len());
    for s in sources {
        let docs =
            yaml::parse_stream(&s.text).map_err(|e| AuditError::at(&s.name, e.pos, e.message))?;
        trees.push((s.name.as_str(), docs));
    }
    let mut objs = Vec::new();
    for (file, docs) in &trees {
        for d in docs {
            collect(file, d, &mut objs)?;
        }
    }
    let mut report = Report {
        findings: Vec::new(),
        ignored: Vec::new(),
        namespaces: Vec::new(),
        workloads: Vec::new(),
        files: sources.len(),
        objects: objs.len(),
        other_kinds: 0,
    };
    let mut ns_levels: BTreeMap<String, NsInfo> = BTreeMap::new();
    for o in objs.iter().filter(|o| o.id.kind == "Namespace") {
        let mut hits = Vec::new();
        let skip = ignores(o, &mut hits);
        let (ns, info) = namespace_checks(o, opts, &mut hits);
        report.namespaces.push(ns);
        ns_levels.insert(o.id.name.clone(), info);
        push_hits(&mut report, o, hits, &skip);
    }
    for o in &objs {
        if o.id.kind == "Namespace" {
            continue;
        }
        let Some(pod) = pod_of(o) else {
            report.other_kinds += 1;
            continue;
        };
        let ns = o.id.namespace.as_deref().and_then(|n| ns_levels.get(n));
        let (level, source) = match ns {
            Some(NsInfo { level: Some(l), .. }) => (*l, LevelSource::Namespace),
            Some(_) => (opts.level, LevelSource::NamespaceWithoutEnforce),
            None => (opts.level, LevelSource::NamespaceNotInInput),
        };
        let version = opts
            .version
            .or_else(|| ns.and_then(|n| n.version))
            .unwrap_or(Version::Latest);
        let mut hits = Vec::new();
        let skip = ignores(o, &mut hits);
        let mut pss_hits = Vec::new();
        pss::check(&pod, level, version, &mut pss_hits);
        let mut failed: Vec<String> = pss_hits
            .iter()
            .filter(|h| !skip.iter().any(|s| s == h.check))
            .map(|h| h.check.to_string())
            .collect();
        failed.sort();
        failed.dedup();
        hits.extend(pss_hits);
        if opts.immutability {
            immutability::check(&pod, &mut hits);
        }
        report.workloads.push(Verdict {
            object: o.id.clone(),
            file: o.file.to_string(),
            line: o.node.start.line,
            level,
            level_source: source,
            version: version.to_string(),
            passes: failed.is_empty(),
            failed_checks: failed,
        });
        push_hits(&mut report, o, hits, &skip);
    }
    let order: BTreeMap<&str, usize> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let key = |f: &Finding| {
        (
            order.get(f.file.as_str()).copied().unwrap_or(0),
            f.line,
            f.column,
        )
    };
    report.findings.sort_by_key(key);
    report.ignored.sort_by_key(key);
    Ok(report)
}

fn push_hits(report: &mut Report, o: &Obj<'_>, hits: Vec<Hit>, skip: &[String]) {
    for h in hits {
        let ignored = skip.iter().any(|s| s == h.check) && !h.check.starts_with("ignore.");
        let f = hit_to_finding(h, o);
        if ignored {
            report.ignored.push(f);
        } else {
            report.findings.push(f);
        }
    }
}

/// One container image a manifest names: where, in which object and container.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestImage {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub object: ObjectId,
    pub container: String,
    /// The `image` value as written.
    pub image: String,
}

/// Every container image (init, regular and ephemeral containers) of every object with a pod
/// spec (`List`s included) in `sources`, in input order; a container without an `image` is
/// skipped.
pub fn images(sources: &[Source]) -> Result<Vec<ManifestImage>, AuditError> {
    let mut out = Vec::new();
    for s in sources {
        let docs =
            yaml::parse_stream(&s.text).map_err(|e| AuditError::at(&s.name, e.pos, e.message))?;
        let mut objs = Vec::new();
        for d in &docs {
            collect(&s.name, d, &mut objs)?;
        }
        for o in &objs {
            let Some(pod) = pod_of(o) else {
                continue;
            };
            for c in &pod.containers {
                let Some(img) = c.node.get("image") else {
                    continue;
                };
                out.push(ManifestImage {
                    file: s.name.clone(),
                    line: img.start.line,
                    column: img.start.column,
                    object: o.id.clone(),
                    container: c.name.clone(),
                    image: img.str().unwrap_or("").to_string(),
                });
            }
        }
    }
    Ok(out)
}

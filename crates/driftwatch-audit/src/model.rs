//! Kubernetes objects found in the documents: their identity, their pod spec (every kind that
//! carries one) and the Pod Security levels and versions.

use crate::fix::escape;
use crate::yaml::Node;
use serde::Serialize;
use std::fmt;

/// A Pod Security Standards level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The newest minor version whose checks differ (pod-security admission's `latest`).
pub const LATEST_MINOR: u32 = 37;

/// A Pod Security Standards version: `latest` or `v1.N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Latest,
    V1(u32),
}

impl Version {
    /// Parses `latest` or `v1.N`, as the `pod-security.kubernetes.io/*-version` labels are
    /// written.
    pub fn parse(s: &str) -> Option<Version> {
        if s == "latest" {
            return Some(Version::Latest);
        }
        let minor = s.strip_prefix("v1.")?;
        if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) || minor.len() > 4 {
            return None;
        }
        minor.parse().ok().map(Version::V1)
    }

    /// The minor version whose checks apply (`latest` and newer versions: the newest).
    pub fn minor(self) -> u32 {
        match self {
            Version::Latest => LATEST_MINOR,
            Version::V1(m) => m.min(LATEST_MINOR),
        }
    }

    pub fn at_least(self, minor: u32) -> bool {
        self.minor() >= minor
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::V1(m) => write!(f, "v1.{m}"),
        }
    }
}

/// Which list of the pod spec a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtrList {
    Init,
    Regular,
    Ephemeral,
}

impl CtrList {
    pub fn key(self) -> &'static str {
        match self {
            CtrList::Init => "initContainers",
            CtrList::Regular => "containers",
            CtrList::Ephemeral => "ephemeralContainers",
        }
    }
}

/// One container of a pod spec.
#[derive(Debug)]
pub struct Ctr<'a> {
    pub node: &'a Node,
    /// JSON pointer of the container in its object.
    pub ptr: String,
    pub list: CtrList,
    pub name: String,
}

impl<'a> Ctr<'a> {
    pub fn sc(&self) -> Option<&'a Node> {
        self.node.get("securityContext")
    }

    pub fn sc_at(&self, path: &[&str]) -> Option<&'a Node> {
        self.sc().and_then(|s| s.at(path))
    }

    /// `container "name"` (or `init container`, `ephemeral container`).
    pub fn label(&self) -> String {
        let what = match self.list {
            CtrList::Init => "init container",
            CtrList::Regular => "container",
            CtrList::Ephemeral => "ephemeral container",
        };
        format!("{what} {:?}", self.name)
    }
}

/// A pod spec with the metadata that goes with it (the pod's or the template's).
#[derive(Debug)]
pub struct PodCtx<'a> {
    pub spec: &'a Node,
    pub spec_ptr: String,
    pub meta: Option<&'a Node>,
    pub meta_ptr: String,
    pub containers: Vec<Ctr<'a>>,
}

impl<'a> PodCtx<'a> {
    pub fn new(spec: &'a Node, spec_ptr: String, meta: Option<&'a Node>, meta_ptr: String) -> Self {
        let mut containers = Vec::new();
        for list in [CtrList::Init, CtrList::Regular, CtrList::Ephemeral] {
            if let Some(seq) = spec.get(list.key()) {
                for (i, c) in seq.seq().iter().enumerate() {
                    containers.push(Ctr {
                        node: c,
                        ptr: format!("{spec_ptr}/{}/{i}", list.key()),
                        list,
                        name: c.get("name").and_then(Node::str).unwrap_or("").to_string(),
                    });
                }
            }
        }
        PodCtx {
            spec,
            spec_ptr,
            meta,
            meta_ptr,
            containers,
        }
    }

    pub fn psc(&self) -> Option<&'a Node> {
        self.spec.get("securityContext")
    }

    pub fn psc_at(&self, path: &[&str]) -> Option<&'a Node> {
        self.psc().and_then(|s| s.at(path))
    }

    pub fn psc_ptr(&self) -> String {
        format!("{}/securityContext", self.spec_ptr)
    }

    /// The template's (or pod's) annotations as (key node, value node).
    pub fn annotations(&self) -> &'a [(Node, Node)] {
        self.meta
            .and_then(|m| m.get("annotations"))
            .map_or(&[], Node::map)
    }

    pub fn annotation_ptr(&self, key: &str) -> String {
        format!("{}/annotations/{}", self.meta_ptr, escape(key))
    }

    /// `spec.os.name: windows`.
    pub fn windows(&self) -> bool {
        self.spec.at(&["os", "name"]).and_then(Node::str) == Some("windows")
    }

    /// `spec.hostUsers: false` (a user namespace).
    pub fn user_namespace(&self) -> bool {
        self.spec.get("hostUsers").and_then(Node::bool) == Some(false)
    }
}

/// Where a kind keeps its pod template: the path of the pod spec and of its metadata.
pub fn pod_spec_paths(kind: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match kind {
        "Pod" => (&["spec"], &["metadata"]),
        "PodTemplate" => (&["template", "spec"], &["template", "metadata"]),
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => (
            &["spec", "template", "spec"],
            &["spec", "template", "metadata"],
        ),
        "CronJob" => (
            &["spec", "jobTemplate", "spec", "template", "spec"],
            &["spec", "jobTemplate", "spec", "template", "metadata"],
        ),
        _ => return None,
    })
}

pub fn pointer(keys: &[&str]) -> String {
    keys.iter().map(|k| format!("/{}", escape(k))).collect()
}

/// An object's identity, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectId {
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

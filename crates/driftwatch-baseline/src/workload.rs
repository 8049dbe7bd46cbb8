//! Which workload a container belongs to: the key a baseline is stored under.
//!
//! Kubernetes containers (the CRI labels `io.kubernetes.pod.namespace` and `.name`): the pod's
//! namespace, its owner — the pod name without what its controller appended (a Deployment's
//! `-<pod-template-hash>-<suffix>`, a ReplicaSet's, DaemonSet's or Job's `-<suffix>`, a
//! StatefulSet's `-<ordinal>`) — and the container's name. Elsewhere: the image repository and the
//! container's name. Replicas of one workload share one baseline.

use driftwatch_event::ContainerInfo;

/// A workload: the key of its baseline and its parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Workload {
    /// `k8s:<namespace>/<owner>/<container>` or `image:<repository>/<container>`.
    pub key: String,
}

/// The alphabet of Kubernetes' generated name suffixes (`k8s.io/apimachinery` rand: no vowels,
/// no `0`, `1`, `3`).
fn is_suffix_char(c: u8) -> bool {
    b"bcdfghjklmnpqrstvwxz2456789".contains(&c)
}

fn generated(part: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&part.len()) && part.bytes().all(is_suffix_char)
}

/// The owner of a pod, from its name: `web-5d9c7b8f6-x2x4z` → `web`, `agent-7zq4x` → `agent`,
/// `db-0` → `db`; a name with no generated part is its own owner.
pub fn pod_owner(pod: &str) -> &str {
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    // parts: [suffix, hash-or-base, rest...]
    if parts.len() == 3 && generated(parts[0], 5, 5) && generated(parts[1], 6, 10) {
        return parts[2];
    }
    if let Some((base, last)) = pod.rsplit_once('-') {
        if !base.is_empty()
            && (generated(last, 5, 5)
                || (!last.is_empty() && last.bytes().all(|c| c.is_ascii_digit())))
        {
            return base;
        }
    }
    pod
}

impl Workload {
    /// The workload of a container.
    pub fn of(c: &ContainerInfo) -> Workload {
        let container = if c.name.is_empty() { &c.id } else { &c.name };
        let key = match (c.pod_namespace.as_deref(), c.pod_name.as_deref()) {
            (Some(ns), Some(pod)) if !ns.is_empty() && !pod.is_empty() => {
                format!("k8s:{ns}/{}/{container}", pod_owner(pod))
            }
            _ => {
                let repo = if c.image_repository.is_empty() {
                    "unknown"
                } else {
                    c.image_repository.as_str()
                };
                format!("image:{repo}/{container}")
            }
        };
        Workload { key }
    }

    /// A file name for the key: `[A-Za-z0-9._-]` kept, everything else `_`, at most 200 bytes.
    pub fn file_stem(key: &str) -> String {
        let mut s: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        s.truncate(200);
        if s.starts_with('.') {
            s.replace_range(0..1, "_");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_of_generated_pod_names() {
        assert_eq!(pod_owner("web-5d9c7b8f6-x2x4z"), "web");
        assert_eq!(pod_owner("my-shop-api-7c5b4d9f8d-qwz7r"), "my-shop-api");
        assert_eq!(pod_owner("node-agent-7zq4x"), "node-agent");
        assert_eq!(pod_owner("db-0"), "db");
        assert_eq!(pod_owner("kafka-12"), "kafka");
        assert_eq!(pod_owner("standalone"), "standalone");
        // "admin" has vowels: not a generated suffix.
        assert_eq!(pod_owner("portal-admin"), "portal-admin");
        assert_eq!(pod_owner("-0"), "-0");
    }

    #[test]
    fn keys() {
        let mut c = ContainerInfo {
            id: "abc".into(),
            name: "app".into(),
            image_repository: "docker.io/library/nginx".into(),
            ..Default::default()
        };
        assert_eq!(Workload::of(&c).key, "image:docker.io/library/nginx/app");
        c.pod_namespace = Some("shop".into());
        c.pod_name = Some("web-5d9c7b8f6-x2x4z".into());
        assert_eq!(Workload::of(&c).key, "k8s:shop/web/app");
        c.pod_name = Some("web-5d9c7b8f6-bbbbb".into());
        assert_eq!(
            Workload::of(&c).key,
            "k8s:shop/web/app",
            "replicas share a key"
        );
        assert_eq!(Workload::file_stem("k8s:shop/web/app"), "k8s_shop_web_app");
        assert_eq!(Workload::file_stem("../x"), "_._x");
    }
}

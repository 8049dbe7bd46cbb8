//! CRI labels → container name and pod metadata. The kubelet passes these labels in the CRI
//! config and containerd stores them on the container unchanged.

use driftwatch_event::{ContainerInfo, ContainerKind};
use std::collections::BTreeMap;

pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// containerd's CRI plugin labels each container it creates `sandbox` or `container`.
pub const LABEL_CRI_KIND: &str = "io.cri-containerd.kind";
/// containerd's CRI plugin annotates each runtime spec `sandbox` or `container`.
pub const ANNOTATION_CRI_TYPE: &str = "io.kubernetes.cri.container-type";

/// What a container is to its pod, from what the node sees.
///
/// A pod's sandbox is told by containerd's CRI label or annotation. Everything else the kubelet
/// creates is `container` to the runtime: the kubelet labels init, app and ephemeral containers
/// alike (kubernetes/kubernetes#122723 proposed a label for init containers; it was closed), so
/// a CRI container is `app` unless its name is the one `kubectl debug` generates for an
/// ephemeral container (`debugger-` and five characters of Kubernetes' name alphabet). Init
/// containers cannot be told from app containers on the node; approve them by name
/// (`known_init_containers`, an approvals `container`).
pub fn kind_of(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    name: &str,
) -> ContainerKind {
    let cri = labels
        .get(LABEL_CRI_KIND)
        .or_else(|| annotations.get(ANNOTATION_CRI_TYPE))
        .map(String::as_str);
    match cri {
        Some("sandbox") => ContainerKind::Sandbox,
        Some("container") if is_debugger_name(name) => ContainerKind::Ephemeral,
        Some("container") => ContainerKind::App,
        _ if labels.contains_key(LABEL_POD_UID) => ContainerKind::App,
        _ => ContainerKind::Unknown,
    }
}

/// `debugger-xxxxx`: `kubectl debug`'s generated ephemeral container name.
fn is_debugger_name(name: &str) -> bool {
    name.strip_prefix("debugger-").is_some_and(|s| {
        s.len() == 5
            && s.bytes()
                .all(|c| b"bcdfghjklmnpqrstvwxz2456789".contains(&c))
    })
}

fn label(info: &ContainerInfo, key: &str) -> Option<String> {
    info.labels.get(key).filter(|v| !v.is_empty()).cloned()
}

/// Fill `name` and the pod fields from `info.labels` (and `id`).
pub fn apply_labels(info: &mut ContainerInfo) {
    info.name = label(info, LABEL_CONTAINER_NAME).unwrap_or_else(|| info.id.clone());
    info.pod_name = label(info, LABEL_POD_NAME);
    info.pod_namespace = label(info, LABEL_POD_NAMESPACE);
    info.pod_uid = label(info, LABEL_POD_UID);
    info.kind = kind_of(&info.labels, &BTreeMap::new(), &info.name);
}

/// Fill the image fields from a reference.
pub fn apply_image_ref(info: &mut ContainerInfo, reference: &str) {
    let (repository, tag) = ContainerInfo::split_image_ref(reference);
    info.image_ref = reference.to_string();
    info.image_repository = repository;
    info.image_tag = tag;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(labels: &[(&str, &str)]) -> ContainerInfo {
        ContainerInfo {
            id: "abc".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ContainerInfo::default()
        }
    }

    #[test]
    fn cri_labels_map_to_name_and_pod() {
        let mut i = info(&[
            (LABEL_CONTAINER_NAME, "nginx"),
            (LABEL_POD_NAME, "web-0"),
            (LABEL_POD_NAMESPACE, "prod"),
            (LABEL_POD_UID, "1111-2222"),
            ("other", "x"),
        ]);
        apply_labels(&mut i);
        assert_eq!(i.name, "nginx");
        assert_eq!(i.pod_name.as_deref(), Some("web-0"));
        assert_eq!(i.pod_namespace.as_deref(), Some("prod"));
        assert_eq!(i.pod_uid.as_deref(), Some("1111-2222"));
    }

    #[test]
    fn the_kind_comes_from_containerds_cri_label_or_annotation() {
        let labels = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let none = BTreeMap::new();
        assert_eq!(
            kind_of(&labels(&[(LABEL_CRI_KIND, "sandbox")]), &none, "x"),
            ContainerKind::Sandbox
        );
        assert_eq!(
            kind_of(&labels(&[(LABEL_CRI_KIND, "container")]), &none, "web"),
            ContainerKind::App
        );
        assert_eq!(
            kind_of(
                &none,
                &labels(&[(ANNOTATION_CRI_TYPE, "container")]),
                "debugger-x7k2p"
            ),
            ContainerKind::Ephemeral
        );
        assert_eq!(
            kind_of(
                &labels(&[(LABEL_CRI_KIND, "container")]),
                &none,
                "debugger-tool"
            ),
            ContainerKind::App
        );
        assert_eq!(kind_of(&none, &none, "web"), ContainerKind::Unknown);
        let mut i = info(&[
            (LABEL_CRI_KIND, "container"),
            (LABEL_CONTAINER_NAME, "nginx"),
        ]);
        apply_labels(&mut i);
        assert_eq!(i.kind, ContainerKind::App);
    }

    #[test]
    fn without_cri_labels_the_name_is_the_id() {
        let mut i = info(&[("other", "x"), (LABEL_CONTAINER_NAME, "")]);
        apply_labels(&mut i);
        assert_eq!(i.name, "abc");
        assert_eq!((i.pod_name, i.pod_namespace, i.pod_uid), (None, None, None));
    }

    #[test]
    fn image_ref_is_split() {
        let mut i = info(&[]);
        apply_image_ref(&mut i, "localhost:5000/app:v2");
        assert_eq!(
            (
                i.image_ref.as_str(),
                i.image_repository.as_str(),
                i.image_tag.as_str()
            ),
            ("localhost:5000/app:v2", "localhost:5000/app", "v2")
        );
    }
}

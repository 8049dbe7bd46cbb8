//! CRI labels → container name and pod metadata. The kubelet passes these labels in the CRI
//! config and containerd stores them on the container unchanged.

use driftwatch_event::ContainerInfo;

pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";

fn label(info: &ContainerInfo, key: &str) -> Option<String> {
    info.labels.get(key).filter(|v| !v.is_empty()).cloned()
}

/// Fill `name` and the pod fields from `info.labels` (and `id`).
pub fn apply_labels(info: &mut ContainerInfo) {
    info.name = label(info, LABEL_CONTAINER_NAME).unwrap_or_else(|| info.id.clone());
    info.pod_name = label(info, LABEL_POD_NAME);
    info.pod_namespace = label(info, LABEL_POD_NAMESPACE);
    info.pod_uid = label(info, LABEL_POD_UID);
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

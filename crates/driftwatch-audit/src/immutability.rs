//! Checks beyond the Pod Security Standards that keep a container what its image is: a read-only
//! root filesystem (writes go to `emptyDir` mounts), images pinned by digest, no mutable tags,
//! and a pull policy that agrees with the reference.

use crate::fix::{FixBuilder, PatchOp};
use crate::hit::Hit;
use crate::image;
use crate::model::{Ctr, CtrList, PodCtx};
use crate::yaml::Node;
use serde_json::json;

/// The immutability checks: id and summary.
pub const CHECKS: &[(&str, &str)] = &[
    (
        "immutability.readOnlyRootFilesystem",
        "containers must set readOnlyRootFilesystem=true and write only to emptyDir mounts",
    ),
    (
        "immutability.digestPinned",
        "images must be pinned by digest (name@sha256:…)",
    ),
    (
        "immutability.mutableTag",
        "images must not use the latest tag or no tag",
    ),
    (
        "immutability.imagePullPolicy",
        "an image without a digest must be pulled Always",
    ),
    (
        "immutability.invalidImage",
        "image references must be valid",
    ),
];

/// Paths most images write to at run time: mounted as `emptyDir` by the fix unless a volume is
/// already mounted there.
pub const WRITABLE_PATHS: &[&str] = &["/tmp"];

pub fn check(pod: &PodCtx<'_>, out: &mut Vec<Hit>) {
    for c in &pod.containers {
        read_only_root(pod, c, out);
        image_checks(c, out);
    }
}

fn mounted_paths(c: &Ctr<'_>) -> Vec<String> {
    c.node
        .get("volumeMounts")
        .map_or(&[][..], Node::seq)
        .iter()
        .filter_map(|m| m.get("mountPath").and_then(Node::str))
        .map(str::to_string)
        .collect()
}

fn read_only_root(pod: &PodCtx<'_>, c: &Ctr<'_>, out: &mut Vec<Hit>) {
    let ro = c.sc_at(&["readOnlyRootFilesystem"]);
    if ro.is_some_and(Node::is_true) {
        return;
    }
    let mounted = mounted_paths(c);
    let missing: Vec<&str> = WRITABLE_PATHS
        .iter()
        .copied()
        .filter(|p| !mounted.iter().any(|m| m.trim_end_matches('/') == *p))
        .collect();
    let mut desc = String::from("set readOnlyRootFilesystem=true");
    let mut fix = FixBuilder::new("").set(
        c.node,
        &c.ptr,
        &["securityContext", "readOnlyRootFilesystem"],
        json!(true),
    );
    // Ephemeral containers cannot add volumes of their own; the pod's volumes are set at
    // creation.
    if c.list != CtrList::Ephemeral {
        for path in &missing {
            let name = format!(
                "driftwatch-{}",
                path.trim_start_matches('/').replace('/', "-")
            );
            desc.push_str(&format!("; mount an emptyDir volume {name:?} at {path}"));
            fix = fix.append(
                c.node,
                &c.ptr,
                &["volumeMounts"],
                json!({"name": name, "mountPath": path}),
            );
            let has_volume = pod.spec.get("volumes").is_some_and(|v| {
                v.seq()
                    .iter()
                    .any(|v| v.get("name").and_then(Node::str) == Some(&name))
            });
            if !has_volume {
                fix = fix.append(
                    pod.spec,
                    &pod.spec_ptr,
                    &["volumes"],
                    json!({"name": name, "emptyDir": {}}),
                );
            }
        }
    }
    let mut fix = fix.build();
    fix.description = desc;
    let writable = if mounted.is_empty() {
        "no writable mounts".to_string()
    } else {
        format!("mounts {}", mounted.join(", "))
    };
    out.push(Hit::new(
        "immutability.readOnlyRootFilesystem",
        ro.map_or_else(
            || c.node.entry("name").map_or(c.node.start, |(k, _)| k.start),
            |n| n.start,
        ),
        format!(
            "{} has a writable root filesystem ({writable}): files written there are drift",
            c.label()
        ),
        fix,
    ));
}

fn image_checks(c: &Ctr<'_>, out: &mut Vec<Hit>) {
    let Some(img) = c.node.get("image") else {
        return;
    };
    let text = img.str().unwrap_or("");
    let r = match image::parse(text) {
        Ok(r) => r,
        Err(why) => {
            out.push(Hit::new(
                "immutability.invalidImage",
                img.start,
                format!("{}: image {text:?}: {why}", c.label()),
                FixBuilder::new("write a valid reference, name[:tag]@sha256:<digest>").build(),
            ));
            return;
        }
    };
    let image_ptr = format!("{}/image", c.ptr);
    let pinned_value = format!(
        "{}@sha256:<digest of {}>",
        r.name_with_tag(),
        r.name_with_tag()
    );
    let pin_fix = || {
        let mut f = FixBuilder::new(format!(
            "pin the image by digest: resolve {} (e.g. `crane digest {}`) and write {}@sha256:…",
            r.name_with_tag(),
            r.name_with_tag(),
            r.name_with_tag()
        ))
        .build();
        f.patch.push(PatchOp {
            op: "replace",
            path: image_ptr.clone(),
            value: Some(json!(pinned_value)),
        });
        f.complete_edits = false;
        f
    };
    if r.digest.is_none() {
        out.push(Hit::new(
            "immutability.digestPinned",
            img.start,
            format!(
                "{} image {text:?} is not pinned by digest: the tag can be moved to other content",
                c.label()
            ),
            pin_fix(),
        ));
    }
    if r.mutable_tag() {
        let what = if r.tag.is_some() {
            "the latest tag"
        } else {
            "no tag (latest)"
        };
        out.push(Hit::new(
            "immutability.mutableTag",
            img.start,
            format!("{} image {text:?} uses {what}", c.label()),
            pin_fix(),
        ));
    }
    if r.digest.is_none() {
        let policy = c.node.get("imagePullPolicy");
        let explicit = policy.and_then(Node::str);
        // Kubernetes' default: Always for latest or no tag, IfNotPresent otherwise.
        let effective = explicit.unwrap_or(if r.mutable_tag() {
            "Always"
        } else {
            "IfNotPresent"
        });
        if effective != "Always" {
            let how = if explicit.is_some() {
                ""
            } else {
                " (the default for a tag)"
            };
            out.push(Hit::new(
                "immutability.imagePullPolicy",
                policy.map_or(img.start, |n| n.start),
                format!(
                    "{} image {text:?} has no digest and imagePullPolicy {effective}{how}: nodes keep whatever the tag named when they pulled it",
                    c.label()
                ),
                FixBuilder::new("set imagePullPolicy=Always (better: pin the image by digest)")
                    .set(c.node, &c.ptr, &["imagePullPolicy"], json!("Always"))
                    .build(),
            ));
        }
    }
}

//! `driftwatch verify` against real containerd containers: images built by the testkit and
//! imported, containers run from a tag and from a digest, approved sets from a generated lock
//! file and a generated manifest; each finding where expected and nowhere else; exit codes;
//! the `--json` shape.

use crate::harness::{cli, env, ns};
use driftwatch_testkit::{unique_id, Container, ImageBuilder, RunOpts};
use serde_json::Value;

const A: &str = "driftwatch-test/verify-a:1";
const B: &str = "driftwatch-test/verify-b:1";
/// A's content as a multi-platform image: an index of A's manifest and an s390x one.
const M: &str = "driftwatch-test/verify-multi:1";

fn image_a(name: &str) -> ImageBuilder {
    ImageBuilder::new(name)
        .busybox()
        .file("/etc/which", b"a".to_vec(), 0o644)
}

fn verify(args: &[&str]) -> (Option<i32>, Value, String) {
    let mut all = vec!["--json", "-n", ns()];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = cli("verify", &all);
    let v = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}\nstderr: {stderr}"));
    (code, v, stderr)
}

/// The finding ids of each container, sorted.
fn ids(v: &Value, c: &Container) -> Vec<String> {
    let mut out: Vec<String> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["container"]["id"] == c.id())
        .filter_map(|f| f["id"].as_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

fn finding<'a>(v: &'a Value, c: &Container, id: &str) -> &'a Value {
    v["findings"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|f| f["container"]["id"] == c.id() && f["id"] == id)
        })
        .unwrap_or_else(|| panic!("no {id} for {} in {v:#}", c.id()))
}

fn pod(name: &str) -> RunOpts {
    RunOpts {
        labels: vec![
            ("io.kubernetes.pod.namespace".into(), "prod".into()),
            ("io.kubernetes.pod.name".into(), name.into()),
            ("io.kubernetes.container.name".into(), "web".into()),
        ],
        ..RunOpts::default()
    }
}

#[test]
fn verify_reports_each_finding_where_it_applies() {
    let e = env();
    let cd = &e.containerd;
    let a = image_a(A).import(cd, ns()).expect("import a");
    let multi = image_a(M)
        .build()
        .and_then(|i| i.with_second_platform("linux", "s390x"))
        .and_then(|i| i.import(cd, ns()))
        .expect("import the multi-platform image");
    assert_ne!(multi.manifest_digest, a.manifest_digest, "an index digest");
    let b = ImageBuilder::new(B)
        .busybox()
        .file("/etc/which", b"b".to_vec(), 0o644)
        .import(cd, ns())
        .expect("import b");
    assert_ne!(a.manifest_digest, b.manifest_digest);
    let a_pinned = format!("docker.io/driftwatch-test/verify-a@{}", a.manifest_digest);
    let b_pinned = format!("docker.io/driftwatch-test/verify-b@{}", b.manifest_digest);
    for (src, dst) in [(A, &a_pinned), (B, &b_pinned)] {
        cd.ctr_checked(ns(), &["images", "tag", "--force", src, dst])
            .expect("tag by digest");
    }
    let run = |prefix: &str, image: &str, opts: RunOpts| {
        Container::run(cd, ns(), image, &unique_id(prefix), opts).expect("run container")
    };
    let tagged = run("vtag", A, RunOpts::default());
    let pinned = run("vpin", &a_pinned, RunOpts::default());
    let other = run("voth", &b_pinned, RunOpts::default());
    let multi_c = run("vmul", M, RunOpts::default());
    let web1 = run("vweb", &a_pinned, pod("web-5d9c7b8f6-x2x4z"));
    let web2 = run("vweb", &b_pinned, pod("web-5d9c7b8f6-q7w8z"));

    // No approved set: a tag is mutable-tag (a warning: not latest), a digest is clean.
    let (code, v, err) = verify(&[tagged.id(), pinned.id()]);
    assert_eq!(code, Some(1), "{v:#} {err}");
    assert_eq!(ids(&v, &tagged), ["mutable-tag"]);
    assert!(ids(&v, &pinned).is_empty(), "{v:#}");
    let f = finding(&v, &tagged, "mutable-tag");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["evidence"]["manifest_digest"], a.manifest_digest.as_str());
    assert_eq!(f["evidence"]["reference"], A);
    let (code, v, _) = verify(&[pinned.id()]);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["approved"], Value::Null);
    let c = &v["containers"][0];
    assert_eq!(c["id"], pinned.id());
    assert_eq!(c["running"], true);
    assert_eq!(c["resolved"]["manifest_digest"], a.manifest_digest.as_str());
    assert_eq!(c["resolved"]["config_digest"], a.config_digest.as_str());
    assert_eq!(v["summary"]["findings"]["mutable-tag"], 0);

    // One workload, two digests on this node.
    let (code, v, _) = verify(&[web1.id(), web2.id()]);
    assert_eq!(code, Some(1));
    assert_eq!(ids(&v, &web1), ["mixed-digests"]);
    assert_eq!(ids(&v, &web2), ["mixed-digests"]);
    let f = finding(&v, &web1, "mixed-digests");
    assert_eq!(f["evidence"]["workload"], "k8s:prod/web/web");
    assert_eq!(f["evidence"]["pod"], "prod/web-5d9c7b8f6-x2x4z");
    assert_eq!(f["container"]["pod"], "prod/web-5d9c7b8f6-x2x4z");

    let dir = tempfile::tempdir().expect("tempdir");
    // A lock file approving verify-a:1 at a's digest.
    let lock = dir.path().join("images.lock");
    std::fs::write(
        &lock,
        format!(
            r#"{{"version":1,"images":{{"docker.io/driftwatch-test/verify-a:1":{{"digest":"{}"}}}}}}"#,
            a.manifest_digest
        ),
    )
    .expect("write lock");
    let lock_arg = lock.to_string_lossy().into_owned();
    let (code, v, _) = verify(&["--lock", &lock_arg, tagged.id(), pinned.id(), other.id()]);
    assert_eq!(code, Some(1));
    assert_eq!(ids(&v, &tagged), ["mutable-tag"], "{v:#}");
    assert!(ids(&v, &pinned).is_empty(), "{v:#}");
    assert_eq!(ids(&v, &other), ["unapproved-image"]);
    assert_eq!(v["approved"], 1);
    let classes: Vec<&Value> = v["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter(|c| c["id"] == pinned.id())
        .map(|c| &c["class"])
        .collect();
    assert_eq!(classes, [&Value::from("exact")]);

    // The same lock at b's digest: a's containers run an unrelated digest.
    let wrong = dir.path().join("wrong.lock");
    std::fs::write(
        &wrong,
        format!(
            r#"{{"version":1,"images":{{"driftwatch-test/verify-a:1":{{"digest":"{}"}}}}}}"#,
            b.manifest_digest
        ),
    )
    .expect("write lock");
    let wrong_arg = wrong.to_string_lossy().into_owned();
    let (code, v, _) = verify(&["--lock", &wrong_arg, pinned.id()]);
    assert_eq!(code, Some(1));
    assert_eq!(ids(&v, &pinned), ["digest-mismatch"]);
    let f = finding(&v, &pinned, "digest-mismatch");
    assert_eq!(f["class"], "unrelated");
    assert_eq!(f["evidence"]["approved_digest"], b.manifest_digest.as_str());
    assert_eq!(
        f["evidence"]["approved"][0]["reference"],
        "driftwatch-test/verify-a:1"
    );

    // A generated manifest approving a by digest: the pinned container is clean, b is not
    // approved; the evidence names the manifest's line.
    let manifest = dir.path().join("deploy.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: prod}}\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: driftwatch-test/verify-a@{}\n",
            a.manifest_digest
        ),
    )
    .expect("write manifest");
    let m_arg = manifest.to_string_lossy().into_owned();
    let (code, v, _) = verify(&["-f", &m_arg, pinned.id(), other.id()]);
    assert_eq!(code, Some(1));
    assert!(ids(&v, &pinned).is_empty(), "{v:#}");
    assert_eq!(ids(&v, &other), ["unapproved-image"]);
    let (code, v, _) = verify(&["-f", &m_arg, "--lock", &wrong_arg, pinned.id()]);
    assert_eq!(code, Some(0), "an exact entry wins over another: {v:#}");

    // A multi-platform image: the index and the host's platform manifest (A's) from the
    // content store; A's container is a platform child of the approved index.
    let (_, v, _) = verify(&[multi_c.id()]);
    let r = &v["containers"][0]["resolved"];
    assert_eq!(r["index_digest"], multi.manifest_digest.as_str(), "{v:#}");
    assert_eq!(r["manifest_digest"], a.manifest_digest.as_str());
    assert!(r["platform"]
        .as_str()
        .is_some_and(|p| p.starts_with("linux/") && !p.ends_with("s390x")));
    let idx_lock = dir.path().join("index.lock");
    std::fs::write(
        &idx_lock,
        format!(
            r#"{{"version":1,"images":{{"driftwatch-test/verify-a:1":{{"digest":"{d}"}},"driftwatch-test/verify-multi:1":{{"digest":"{d}"}}}}}}"#,
            d = multi.manifest_digest
        ),
    )
    .expect("write lock");
    let idx_arg = idx_lock.to_string_lossy().into_owned();
    let (code, v, _) = verify(&["--lock", &idx_arg, pinned.id(), multi_c.id()]);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(ids(&v, &pinned).is_empty(), "{v:#}");
    assert_eq!(ids(&v, &multi_c), ["mutable-tag"]);
    let class = |c: &Container| {
        v["containers"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == c.id()))
            .map(|x| x["class"].clone())
    };
    assert_eq!(class(&pinned), Some(Value::from("platform-child")));
    assert_eq!(class(&multi_c), Some(Value::from("exact")));

    // The table for humans names the finding.
    let (code, out, _) = cli("verify", &["-n", ns(), "--lock", &lock_arg, other.id()]);
    assert_eq!(code, Some(1));
    assert!(out.contains("[unapproved-image]"), "{out}");

    // Errors: exit 2 with a message.
    std::fs::write(
        dir.path().join("bad.lock"),
        "{\"version\":1,\"images\":{\"a\":{}}}",
    )
    .expect("write");
    let bad = dir.path().join("bad.lock").to_string_lossy().into_owned();
    let (code, _, err) = cli("verify", &["-n", ns(), "--lock", &bad]);
    assert_eq!(code, Some(2));
    assert!(err.contains("bad.lock"), "{err}");
    let (code, _, err) = cli("verify", &["-n", ns(), "no-such-container-xyz"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no-such-container-xyz"), "{err}");
}

use super::*;
use driftwatch_audit::Source;
use driftwatch_runtime::inventory::ResolvedImage;

fn d(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn ctr(id: &str, reference: &str, manifest: &str, index: Option<&str>) -> ContainerImage {
    ContainerImage {
        namespace: "default".into(),
        id: id.into(),
        name: id.into(),
        reference: reference.into(),
        image: reference.into(),
        running: true,
        resolved: Some(ResolvedImage {
            target_digest: index.unwrap_or(manifest).into(),
            manifest_digest: manifest.into(),
            index_digest: index.map(str::to_string),
            platform: index.map(|_| "linux/amd64".into()),
            config_digest: Some(d('c')),
        }),
        ..ContainerImage::default()
    }
}

fn lock(text: &str) -> Vec<Approved> {
    lock::parse("images.lock", text.as_bytes()).expect("a valid lock file")
}

fn ids(r: &Report, container: &str) -> Vec<&'static str> {
    let mut v: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.container.id == container)
        .map(|f| f.id)
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn a_lock_file_normalises_references_and_keeps_platforms() {
    let a = lock(&format!(
        r#"{{"version":1,"images":{{"web:1.4":{{"digest":"{}","config":"{}","platforms":{{"linux/amd64":"{}","linux/arm64/v8":"{}"}}}}}}}}"#,
        d('a'),
        d('c'),
        d('1'),
        d('2')
    ));
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].repository, "docker.io/library/web");
    assert_eq!(a[0].tag.as_deref(), Some("1.4"));
    assert_eq!(a[0].config, Some(d('c')));
    assert_eq!(a[0].platforms.len(), 2);
}

#[test]
fn bad_lock_files_say_what_is_wrong() {
    let e = |text: &str| {
        lock::parse("images.lock", text.as_bytes())
            .expect_err("invalid")
            .to_string()
    };
    assert!(e("not json").starts_with("images.lock: "));
    assert!(e(r#"{"version":2,"images":{}}"#).contains("version 2"));
    assert!(e(r#"{"version":1,"images":{},"extra":1}"#).contains("extra"));
    assert!(
        e(r#"{"version":1,"images":{"web:1":{"digest":"sha256:abc"}}}"#).contains("invalid digest")
    );
    assert!(e(&format!(
        r#"{{"version":1,"images":{{"Web:1":{{"digest":"{}"}}}}}}"#,
        d('a')
    ))
    .contains("Web"));
    assert!(e(&format!(
        r#"{{"version":1,"images":{{"web@{}":{{"digest":"{}"}}}}}}"#,
        d('a'),
        d('a')
    ))
    .contains("the key names a tag"));
    assert!(e(&format!(
        r#"{{"version":1,"images":{{"web:1":{{"digest":"{}","platforms":{{"amd64":"{}"}}}}}}}}"#,
        d('a'),
        d('b')
    ))
    .contains("os/arch"));
    assert!(lock::parse("x", b"\xff\xfe").is_err());
}

#[test]
fn digests_are_classified() {
    let approved = lock(&format!(
        r#"{{"version":1,"images":{{
            "reg.example/exact:1":{{"digest":"{a}"}},
            "reg.example/multi:1":{{"digest":"{i}","platforms":{{"linux/amd64":"{m}"}}}},
            "reg.example/store:1":{{"digest":"{j}"}},
            "reg.example/recfg:1":{{"digest":"{b}","config":"{c}"}},
            "reg.example/other:1":{{"digest":"{e}"}}}}}}"#,
        a = d('a'),
        i = d('9'),
        m = d('8'),
        j = d('7'),
        b = d('b'),
        c = d('c'),
        e = d('e'),
    ));
    let mut facts = StoreFacts::default();
    facts.children.insert(d('7'), vec![d('6')]);
    let cs = vec![
        ctr(
            "exact",
            &format!("reg.example/exact:1@{}", d('a')),
            &d('a'),
            None,
        ),
        ctr(
            "index",
            &format!("reg.example/multi:1@{}", d('9')),
            &d('5'),
            Some(&d('9')),
        ),
        ctr(
            "child",
            &format!("reg.example/multi:1@{}", d('8')),
            &d('8'),
            None,
        ),
        ctr(
            "store",
            &format!("reg.example/store:1@{}", d('6')),
            &d('6'),
            None,
        ),
        ctr(
            "recfg",
            &format!("reg.example/recfg:1@{}", d('f')),
            &d('f'),
            None,
        ),
        {
            let mut c = ctr(
                "other",
                &format!("reg.example/other:1@{}", d('4')),
                &d('4'),
                None,
            );
            if let Some(r) = c.resolved.as_mut() {
                r.config_digest = Some(d('3'));
            }
            c
        },
    ];
    let r = check(cs, Some(&approved), &facts);
    let class = |id: &str| {
        r.containers
            .iter()
            .find(|v| v.image.id == id)
            .and_then(|v| v.class)
    };
    assert_eq!(class("exact"), Some(Class::Exact));
    assert_eq!(class("index"), Some(Class::Exact));
    assert_eq!(class("child"), Some(Class::PlatformChild));
    assert_eq!(class("store"), Some(Class::PlatformChild));
    assert_eq!(class("recfg"), Some(Class::SameConfig));
    assert_eq!(class("other"), Some(Class::Unrelated));
    for fine in ["exact", "index", "child", "store"] {
        assert!(ids(&r, fine).is_empty(), "{fine}: {:?}", ids(&r, fine));
    }
    assert_eq!(ids(&r, "recfg"), [DIGEST_MISMATCH]);
    assert_eq!(ids(&r, "other"), [DIGEST_MISMATCH]);
    let f = r
        .findings
        .iter()
        .find(|f| f.container.id == "other")
        .expect("a finding");
    assert_eq!(f.class, Some(Class::Unrelated));
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.evidence.approved_digest, Some(d('e')));
    assert!(matches!(
        &f.evidence.approved[..],
        [ApprovedFrom::Lock { reference, .. }] if reference == "reg.example/other:1"
    ));
}

#[test]
fn unapproved_and_approved_elsewhere() {
    let approved = lock(&format!(
        r#"{{"version":1,"images":{{"reg.example/a:1":{{"digest":"{}","config":"{}"}}}}}}"#,
        d('a'),
        d('c')
    ));
    let mut mirror = ctr(
        "mirror",
        &format!("mirror.example/a:1@{}", d('b')),
        &d('b'),
        None,
    );
    mirror.labels.clear();
    let mut stranger = ctr(
        "stranger",
        &format!("reg.example/b@{}", d('e')),
        &d('e'),
        None,
    );
    if let Some(r) = stranger.resolved.as_mut() {
        r.config_digest = Some(d('f'));
    }
    let r = check(
        vec![mirror, stranger],
        Some(&approved),
        &StoreFacts::default(),
    );
    assert_eq!(ids(&r, "mirror"), [DIGEST_MISMATCH]);
    assert_eq!(ids(&r, "stranger"), [UNAPPROVED_IMAGE]);
    // Without an approved set nothing is unapproved.
    let r = check(
        vec![ctr(
            "s",
            &format!("reg.example/b@{}", d('e')),
            &d('e'),
            None,
        )],
        None,
        &StoreFacts::default(),
    );
    assert!(r.findings.is_empty());
}

#[test]
fn mutable_tags_are_errors_for_latest_and_no_tag() {
    let cs = vec![
        ctr("pinned", &format!("busybox@{}", d('a')), &d('a'), None),
        ctr("tagged", "busybox:1.36", &d('a'), None),
        ctr("latest", "busybox:latest", &d('a'), None),
        ctr("none", "docker-pullable://busybox", &d('a'), None),
        {
            let mut c = ctr("stopped", "busybox", &d('a'), None);
            c.running = false;
            c
        },
    ];
    let r = check(cs, None, &StoreFacts::default());
    let sev = |id: &str| {
        r.findings
            .iter()
            .find(|f| f.container.id == id)
            .map(|f| (f.id, f.severity))
    };
    assert_eq!(sev("pinned"), None);
    assert_eq!(sev("tagged"), Some((MUTABLE_TAG, Severity::Warning)));
    assert_eq!(sev("latest"), Some((MUTABLE_TAG, Severity::Error)));
    assert_eq!(sev("none"), Some((MUTABLE_TAG, Severity::Error)));
    assert_eq!(sev("stopped"), None);
}

#[test]
fn one_workload_with_two_digests_is_mixed() {
    let pod = |id: &str, pod: &str, m: &str| {
        let mut c = ctr(id, &format!("reg.example/web@{m}"), m, None);
        c.name = "web".into();
        c.pod_namespace = Some("prod".into());
        c.pod_name = Some(pod.into());
        c
    };
    let cs = vec![
        pod("a", "web-5d9c7b8f6-x2x4z", &d('a')),
        pod("b", "web-5d9c7b8f6-q7w8z", &d('b')),
        pod("c", "api-5d9c7b8f6-x2x4z", &d('a')),
        pod("e", "api-5d9c7b8f6-q7w8z", &d('a')),
    ];
    let r = check(cs, None, &StoreFacts::default());
    assert_eq!(ids(&r, "a"), [MIXED_DIGESTS]);
    assert_eq!(ids(&r, "b"), [MIXED_DIGESTS]);
    assert!(ids(&r, "c").is_empty());
    assert!(ids(&r, "e").is_empty());
    let f = &r.findings[0];
    assert_eq!(f.evidence.workload.as_deref(), Some("k8s:prod/web/web"));
    assert_eq!(f.evidence.workload_digests, [d('a'), d('b')]);
}

#[test]
fn approved_set_from_manifests_with_positions() {
    let text = format!(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {{name: web, namespace: prod}}\n  spec:\n    template:\n      spec:\n        containers:\n        - name: web\n          image: reg.example/web@{}\n---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: nightly}}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          initContainers:\n          - {{name: init, image: busybox}}\n          containers:\n          - {{name: job, image: 'docker-pullable://ghcr.io/o/job:2'}}\n",
        d('a')
    );
    let a = approved::from_manifests(&[Source {
        name: "m.yaml".into(),
        text,
    }])
    .expect("valid manifests");
    let got: Vec<(&str, Option<&str>, Option<&str>)> = a
        .iter()
        .map(|a| (a.repository.as_str(), a.tag.as_deref(), a.digest.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("reg.example/web", None, Some(d('a').as_str())),
            ("docker.io/library/busybox", None, None),
            ("ghcr.io/o/job", Some("2"), None),
        ]
    );
    assert!(matches!(
        &a[0].from,
        ApprovedFrom::Manifest { line: 12, column: 18, object, .. } if object == "Deployment/prod/web"
    ));
    let bad = approved::from_manifests(&[Source {
        name: "b.yaml".into(),
        text: "kind: Pod\nspec:\n  containers:\n  - {name: x, image: 'Bad Image'}\n".into(),
    }])
    .expect_err("invalid image");
    assert!(bad.to_string().starts_with("b.yaml:4:"), "{bad}");
}

#[test]
fn a_tag_only_approval_compares_no_digest() {
    let a = approved::from_manifests(&[Source {
        name: "m.yaml".into(),
        text: "kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: x, image: 'reg.example/x:1'}\n".into(),
    }])
    .expect("valid");
    let r = check(
        vec![ctr("x", "reg.example/x:1", &d('a'), None)],
        Some(&a),
        &StoreFacts::default(),
    );
    assert_eq!(ids(&r, "x"), [MUTABLE_TAG]);
}

#[test]
fn selection_by_id_prefix_and_name() {
    let cs = || {
        vec![
            ctr("abcdef1", "a:1", &d('a'), None),
            ctr("abcdef2", "a:1", &d('a'), None),
            ctr("zzz", "a:1", &d('a'), None),
        ]
    };
    assert_eq!(select(cs(), &["abcd".into()]).expect("matches").len(), 2);
    assert_eq!(select(cs(), &["abcdef1".into()]).expect("matches").len(), 1);
    assert_eq!(select(cs(), &["zzz".into()]).expect("matches").len(), 1);
    assert!(select(cs(), &["abc".into()]).is_err());
    assert_eq!(select(cs(), &[]).expect("all").len(), 3);
}

#[test]
fn hostile_names_are_escaped_in_the_table() {
    let mut c = ctr("x", "a:1", &d('a'), None);
    c.name = "evil\x1b[2J\nname".into();
    let r = check(vec![c], None, &StoreFacts::default());
    let t = render::table(&r);
    assert!(!t.contains('\x1b'));
    assert!(!t.contains("evil\n"));
}

#[test]
fn the_table_shows_the_evidence_chain() {
    let approved = lock(&format!(
        r#"{{"version":1,"images":{{"reg.example/a:1":{{"digest":"{}"}}}}}}"#,
        d('e')
    ));
    let mut c = ctr("x", "reg.example/a:1", &d('a'), Some(&d('9')));
    c.pod_namespace = Some("prod".into());
    c.pod_name = Some("a-0".into());
    let r = check(vec![c], Some(&approved), &StoreFacts::default());
    let t = render::table(&r);
    assert!(t.contains("error [digest-mismatch]"), "{t}");
    assert!(t.contains("approved: images.lock: reg.example/a:1"), "{t}");
    assert!(
        t.contains(&format!(
            "running: pod prod/a-0 → reference reg.example/a:1 → index {} → manifest {} (linux/amd64)",
            d('9'),
            d('a')
        )),
        "{t}"
    );
    let j = render::json(&r);
    assert_eq!(
        j["findings"][1]["evidence"]["index_digest"],
        d('9').as_str()
    );
    assert_eq!(j["summary"]["findings"]["digest-mismatch"], 1);
}

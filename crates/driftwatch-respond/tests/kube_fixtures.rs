//! The Kubernetes actions against request/response fixtures written from the Kubernetes API
//! reference (Pod, ReplicaSet, NetworkPolicy, Eviction, Status objects), served in order by a
//! loopback server that records every request. There is no API server on these machines: this
//! checks the requests driftwatch makes and how it handles each answer, not a cluster.

use driftwatch_respond::kube::{Allow, Backoff, KubeClient, KubeError, PodRef};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    content_type: String,
    auth: String,
    body: Value,
}

/// Serves `answers` (status, body) in order, one per request; records the requests.
fn server(answers: Vec<(u16, Value)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("fixture server");
    let base = format!("http://{}", l.local_addr().expect("fixture server"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for (status, body) in answers {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut r = BufReader::new(s.try_clone().expect("fixture server"));
            let mut line = String::new();
            r.read_line(&mut line).expect("fixture server");
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_string();
            let path = parts.next().unwrap_or_default().to_string();
            let (mut len, mut ct, mut auth) = (0usize, String::new(), String::new());
            loop {
                let mut h = String::new();
                r.read_line(&mut h).expect("fixture server");
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').expect("fixture server");
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().expect("fixture server"),
                    "content-type" => ct = v.trim().to_string(),
                    "authorization" => auth = v.trim().to_string(),
                    _ => {}
                }
            }
            let mut b = vec![0u8; len];
            r.read_exact(&mut b).expect("fixture server");
            log.lock().expect("fixture server").push(Seen {
                method,
                path,
                content_type: ct,
                auth,
                body: serde_json::from_slice(&b).unwrap_or(Value::Null),
            });
            let text = body.to_string();
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (base, seen)
}

fn client(base: &str) -> KubeClient {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut c = KubeClient::new(agent, base, Some("tok".into()));
    c.backoff = Backoff {
        tries: 3,
        first: Duration::from_millis(10),
        max: Duration::from_millis(20),
    };
    c
}

const UID: &str = "6f2b3c1e-0d4a-4e55-9f0e-1a2b3c4d5e6f";

fn pod_ref() -> PodRef {
    PodRef {
        namespace: "shop".into(),
        name: "web-7d9f8b6c5-x2x4z".into(),
        uid: UID.into(),
    }
}

/// A Pod (core/v1) owned by `owner` (kind, name), as the API returns it.
fn pod(ns: &str, owner: Option<(&str, &str)>, uid: &str) -> Value {
    let mut p = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7d9f8b6c5-x2x4z",
            "namespace": ns,
            "uid": uid,
            "resourceVersion": "4711",
            "labels": { "app": "web", "pod-template-hash": "7d9f8b6c5" },
        },
        "spec": { "nodeName": "node-1", "containers": [{ "name": "web", "image": "registry.example/web@sha256:aa" }] },
        "status": { "phase": "Running" }
    });
    if let Some((kind, name)) = owner {
        p["metadata"]["ownerReferences"] = json!([{
            "apiVersion": if kind == "Job" { "batch/v1" } else { "apps/v1" },
            "kind": kind, "name": name, "uid": "0000-owner", "controller": true, "blockOwnerDeletion": true
        }]);
    }
    p
}

fn rs_pod() -> Value {
    pod("shop", Some(("ReplicaSet", "web-7d9f8b6c5")), UID)
}

/// A Status (meta/v1) failure answer.
fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code })
}

fn pdb_429() -> Value {
    let mut s = status(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    s["details"] = json!({ "causes": [{ "reason": "DisruptionBudget", "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently" }] });
    s
}

fn eviction_ok() -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 })
}

#[test]
fn evict_posts_an_eviction_with_the_uid_precondition() {
    let (base, seen) = server(vec![(200, rs_pod()), (201, eviction_ok())]);
    client(&base).evict(&pod_ref(), &Allow::default()).unwrap();
    let s = seen.lock().unwrap();
    assert_eq!(s[0].method, "GET");
    assert_eq!(
        s[0].path,
        "/api/v1/namespaces/shop/pods/web-7d9f8b6c5-x2x4z"
    );
    assert_eq!(s[0].auth, "Bearer tok");
    assert_eq!(s[1].method, "POST");
    assert_eq!(
        s[1].path,
        "/api/v1/namespaces/shop/pods/web-7d9f8b6c5-x2x4z/eviction"
    );
    assert_eq!(s[1].content_type, "application/json");
    assert_eq!(s[1].body["apiVersion"], "policy/v1");
    assert_eq!(s[1].body["kind"], "Eviction");
    assert_eq!(s[1].body["metadata"]["namespace"], "shop");
    assert_eq!(s[1].body["deleteOptions"]["preconditions"]["uid"], UID);
}

#[test]
fn a_disruption_budget_is_waited_for_never_bypassed() {
    let (base, seen) = server(vec![
        (200, rs_pod()),
        (429, pdb_429()),
        (429, pdb_429()),
        (201, eviction_ok()),
    ]);
    client(&base).evict(&pod_ref(), &Allow::default()).unwrap();
    let s = seen.lock().unwrap();
    assert_eq!(
        s.iter().filter(|r| r.path.ends_with("/eviction")).count(),
        3
    );
    assert!(s.iter().all(|r| r.method != "DELETE"), "never a delete");
    // Refused for good: it gives up, still without a delete.
    let (base, seen) = server(vec![
        (200, rs_pod()),
        (429, pdb_429()),
        (429, pdb_429()),
        (429, pdb_429()),
    ]);
    let e = client(&base)
        .evict(&pod_ref(), &Allow::default())
        .unwrap_err();
    assert!(matches!(e, KubeError::GaveUp { tries: 3, .. }), "{e}");
    assert!(e.to_string().contains("disruption budget"), "{e}");
    assert!(seen.lock().unwrap().iter().all(|r| r.method != "DELETE"));
}

#[test]
fn every_answer_is_handled() {
    // 404: the pod is gone.
    let (base, _) = server(vec![(
        404,
        status(404, "NotFound", "pods \"web-7d9f8b6c5-x2x4z\" not found"),
    )]);
    assert!(matches!(
        client(&base).evict(&pod_ref(), &Allow::default()),
        Err(KubeError::Gone(_))
    ));
    // 409: the UID precondition failed (the name is another pod's now).
    let (base, _) = server(vec![
        (200, rs_pod()),
        (
            409,
            status(
                409,
                "Conflict",
                "Precondition failed: UID in precondition: 6f2b, UID in object meta: 9a9a",
            ),
        ),
    ]);
    let e = client(&base)
        .evict(&pod_ref(), &Allow::default())
        .unwrap_err();
    assert!(matches!(e, KubeError::Conflict { .. }), "{e}");
    // 500 then success: retried.
    let (base, seen) = server(vec![
        (200, rs_pod()),
        (
            500,
            status(500, "InternalError", "etcdserver: request timed out"),
        ),
        (201, eviction_ok()),
    ]);
    client(&base).evict(&pod_ref(), &Allow::default()).unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3);
    // 403: RBAC; not retried.
    let (base, seen) = server(vec![(200, rs_pod()), (403, status(403, "Forbidden", "pods \"web\" is forbidden: User \"system:serviceaccount:driftwatch:driftwatch\" cannot create resource \"pods/eviction\""))]);
    let e = client(&base)
        .evict(&pod_ref(), &Allow::default())
        .unwrap_err();
    assert!(matches!(e, KubeError::Forbidden(_)), "{e}");
    assert_eq!(seen.lock().unwrap().len(), 2, "no retry after 403");
    // A pod with another UID under the name: nothing is posted.
    let (base, seen) = server(vec![(
        200,
        pod("shop", Some(("ReplicaSet", "web-7d9f8b6c5")), "another-uid"),
    )]);
    assert!(matches!(
        client(&base).evict(&pod_ref(), &Allow::default()),
        Err(KubeError::Conflict { .. })
    ));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn guards_stop_evictions_of_pods_that_must_stay() {
    let cases = [
        (pod("shop", Some(("DaemonSet", "agent")), UID), "DaemonSet"),
        (pod("shop", Some(("StatefulSet", "db")), UID), "StatefulSet"),
        (pod("shop", Some(("Job", "migrate")), UID), "Job"),
        (pod("shop", None, UID), "standalone"),
        (
            pod("kube-system", Some(("ReplicaSet", "coredns-5d78")), UID),
            "kube-system",
        ),
    ];
    for (p, what) in cases {
        let (base, seen) = server(vec![(200, p)]);
        let e = client(&base)
            .evict(&pod_ref(), &Allow::default())
            .unwrap_err();
        assert!(matches!(e, KubeError::Guard(_)), "{what}: {e}");
        assert!(e.to_string().contains(what), "{what}: {e}");
        assert_eq!(seen.lock().unwrap().len(), 1, "{what}: nothing posted");
    }
    let mut mirror = rs_pod();
    mirror["metadata"]["annotations"] = json!({ "kubernetes.io/config.mirror": "abc" });
    let (base, _) = server(vec![(200, mirror)]);
    assert!(matches!(
        client(&base).evict(&pod_ref(), &Allow::default()),
        Err(KubeError::Guard(_))
    ));
    // A playbook may allow one of them.
    let allow = Allow::parse(&["daemonset".to_string()]).unwrap();
    let (base, _) = server(vec![
        (200, pod("shop", Some(("DaemonSet", "agent")), UID)),
        (201, eviction_ok()),
    ]);
    client(&base).evict(&pod_ref(), &allow).unwrap();
    assert!(Allow::parse(&["everything".to_string()]).is_err());
}

#[test]
fn quarantine_takes_the_pod_out_of_its_owners_selector() {
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": { "name": "web-7d9f8b6c5", "namespace": "shop", "uid": "0000-owner" },
        "spec": { "replicas": 3, "selector": { "matchLabels": { "app": "web", "pod-template-hash": "7d9f8b6c5" } } }
    });
    let mut patched = rs_pod();
    patched["metadata"]["labels"] = json!({ "driftwatch.io/quarantine": "inc-1" });
    let (base, seen) = server(vec![(200, rs_pod()), (200, rs), (200, patched)]);
    let removed = client(&base)
        .quarantine(&pod_ref(), "inc-1", &Allow::default())
        .unwrap();
    assert_eq!(removed, ["app", "pod-template-hash"]);
    let s = seen.lock().unwrap();
    assert_eq!(
        s[1].path,
        "/apis/apps/v1/namespaces/shop/replicasets/web-7d9f8b6c5"
    );
    assert_eq!(s[2].method, "PATCH");
    assert_eq!(s[2].content_type, "application/merge-patch+json");
    assert_eq!(
        s[2].body["metadata"]["uid"], UID,
        "the UID as a precondition"
    );
    assert_eq!(
        s[2].body["metadata"]["labels"]["driftwatch.io/quarantine"],
        "inc-1"
    );
    assert_eq!(s[2].body["metadata"]["labels"]["app"], Value::Null);
    assert!(s[2].body["metadata"]["labels"]
        .as_object()
        .unwrap()
        .contains_key("pod-template-hash"));
}

#[test]
fn a_deny_all_policy_selects_the_quarantined_pod_and_is_undone() {
    let np_created = json!({ "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": { "name": "driftwatch-quarantine-inc-1" } });
    let (base, seen) = server(vec![
        (200, rs_pod()),
        (200, rs_pod()),
        (201, np_created.clone()),
    ]);
    let name = client(&base)
        .deny_all(
            &pod_ref(),
            "inc-1",
            Some("2026-12-08T01:00:00Z"),
            &Allow::default(),
        )
        .unwrap();
    assert_eq!(name, "driftwatch-quarantine-inc-1");
    {
        let s = seen.lock().unwrap();
        assert_eq!(
            s[2].path,
            "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies"
        );
        let np = &s[2].body;
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert!(
            np["spec"].get("ingress").is_none() && np["spec"].get("egress").is_none(),
            "no rule: deny all"
        );
        assert_eq!(
            np["spec"]["podSelector"]["matchLabels"]["driftwatch.io/quarantine"],
            "inc-1"
        );
        assert_eq!(
            np["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "driftwatch"
        );
        assert_eq!(
            np["metadata"]["annotations"]["driftwatch.io/expires"],
            "2026-12-08T01:00:00Z"
        );
    }
    // Already there (409 AlreadyExists): fine.
    let (base, _) = server(vec![
        (200, rs_pod()),
        (200, rs_pod()),
        (
            409,
            status(
                409,
                "AlreadyExists",
                "networkpolicies.networking.k8s.io \"driftwatch-quarantine-inc-1\" already exists",
            ),
        ),
    ]);
    client(&base)
        .deny_all(&pod_ref(), "inc-1", None, &Allow::default())
        .unwrap();
    // Undo: only driftwatch's own policy is deleted.
    let mut ours = np_created.clone();
    ours["metadata"]["labels"] = json!({ "app.kubernetes.io/managed-by": "driftwatch" });
    let (base, seen) = server(vec![(200, ours), (200, status(200, "", "deleted"))]);
    assert!(client(&base)
        .remove_policy("shop", "driftwatch-quarantine-inc-1")
        .unwrap());
    assert_eq!(seen.lock().unwrap()[1].method, "DELETE");
    let (base, seen) = server(vec![(200, np_created)]);
    assert!(matches!(
        client(&base).remove_policy("shop", "driftwatch-quarantine-inc-1"),
        Err(KubeError::Guard(_))
    ));
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "someone else's policy is not deleted"
    );
    let (base, _) = server(vec![(404, status(404, "NotFound", "not found"))]);
    assert!(!client(&base)
        .remove_policy("shop", "driftwatch-quarantine-inc-1")
        .unwrap());
}

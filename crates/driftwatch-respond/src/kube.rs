//! The Kubernetes actions of the playbooks: `label` (quarantine a pod out of its owner's
//! selector), `networkpolicy` (deny all its traffic, with a TTL) and `evict` (the Eviction API,
//! PodDisruptionBudgets respected).
//!
//! A small blocking client of the API server's REST API (the calls, bodies and answers the API
//! reference defines), authenticated by a bearer token — the pod's service account in the
//! cluster (`KUBERNETES_SERVICE_HOST`, `/var/run/secrets/kubernetes.io/serviceaccount`) or a
//! kubeconfig's token user. **There is no API server on the machines this is developed on**: the
//! requests and the handling of every answer (200, 201, 404, 409, 429, 500, 403) are tested
//! against request/response fixtures written from the Kubernetes API reference and served by a
//! loopback server (`tests/kube_fixtures.rs`), not against a cluster.
//!
//! Guards, on by default (a playbook's `allow` lifts them one by one): a pod of a DaemonSet, a
//! StatefulSet or a Job, a standalone pod (no owner), a static pod (the kubelet's mirror), and
//! anything in `kube-system` is not evicted or quarantined; at most one eviction per workload per
//! cooldown (the responder's guards). An eviction refused by a PodDisruptionBudget (429) is
//! retried with backoff, never turned into a delete. Every call carries the pod's UID as a
//! precondition: a pod recreated under the same name is never touched.

use serde_json::{json, Value};
use std::time::Duration;

/// The label that marks a quarantined pod (its value: the incident id).
pub const QUARANTINE_LABEL: &str = "driftwatch.io/quarantine";
/// The annotation of a driftwatch NetworkPolicy that says when it expires (RFC 3339).
pub const EXPIRES_ANNOTATION: &str = "driftwatch.io/expires";
/// The label of the objects driftwatch owns.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "driftwatch");

/// What a Kubernetes action can be stopped by, or fail with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KubeError {
    #[error("guard: {0}")]
    Guard(String),
    #[error("the pod {0} is gone (404)")]
    Gone(String),
    #[error("the pod {name} is another pod now (UID precondition failed, 409): {message}")]
    Conflict { name: String, message: String },
    #[error("forbidden (403): {0} — the agent's RBAC does not allow it")]
    Forbidden(String),
    #[error("still refused after {tries} tries: {last}")]
    GaveUp { tries: u32, last: String },
    #[error("API server: {0}")]
    Api(String),
    #[error("cannot reach the API server: {0}")]
    Transport(String),
    #[error("the alert names no pod (k8s.ns.name, k8s.pod.name, k8s.pod.uid)")]
    NoPod,
}

/// What the guards allow beyond the default (a playbook's `allow:` list).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Allow {
    pub daemonset: bool,
    pub statefulset: bool,
    pub job: bool,
    pub standalone: bool,
    pub static_pods: bool,
    pub kube_system: bool,
}

impl Allow {
    /// Parses `allow:` items (`daemonset`, `statefulset`, `job`, `standalone`, `static`,
    /// `kube-system`).
    pub fn parse(items: &[String]) -> Result<Allow, String> {
        let mut a = Allow::default();
        for i in items {
            match i.as_str() {
                "daemonset" => a.daemonset = true,
                "statefulset" => a.statefulset = true,
                "job" => a.job = true,
                "standalone" => a.standalone = true,
                "static" => a.static_pods = true,
                "kube-system" => a.kube_system = true,
                other => {
                    return Err(format!(
                        "allow: unknown item {other:?} (daemonset, statefulset, job, standalone, static, kube-system)"
                    ))
                }
            }
        }
        Ok(a)
    }
}

/// A pod an alert names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl PodRef {
    /// The pod of an alert (`k8s.ns.name`, `k8s.pod.name`, `k8s.pod.uid`).
    pub fn of(alert: &driftwatch_event::Alert) -> Result<PodRef, KubeError> {
        let s = |k: &str| {
            alert
                .str_field(k)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        match (s("k8s.ns.name"), s("k8s.pod.name"), s("k8s.pod.uid")) {
            (Some(namespace), Some(name), Some(uid)) => Ok(PodRef {
                namespace,
                name,
                uid,
            }),
            _ => Err(KubeError::NoPod),
        }
    }
}

/// How 429 and 5xx answers are retried.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub tries: u32,
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            tries: 6,
            first: Duration::from_millis(500),
            max: Duration::from_secs(8),
        }
    }
}

/// The API server client.
#[derive(Debug, Clone)]
pub struct KubeClient {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
    pub backoff: Backoff,
}

/// One answer: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

/// Largest answer read.
const MAX_ANSWER: u64 = 4 << 20;

fn status_message(body: &Value) -> String {
    body.get("message")
        .and_then(|m| m.as_str())
        .map_or_else(|| body.to_string(), str::to_string)
}

/// Path segments are names the API server validated (DNS labels and subdomains); anything else
/// is refused rather than escaped.
fn segment(s: &str) -> Result<&str, KubeError> {
    if !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        Ok(s)
    } else {
        Err(KubeError::Api(format!(
            "{s:?} is not a Kubernetes object name"
        )))
    }
}

impl KubeClient {
    /// A client of the API server at `base` (`https://10.96.0.1:443`), with `agent` (its TLS
    /// settings: the cluster's CA) and a bearer token.
    pub fn new(agent: ureq::Agent, base: impl Into<String>, token: Option<String>) -> KubeClient {
        KubeClient {
            agent,
            base: base.into().trim_end_matches('/').to_string(),
            token,
            backoff: Backoff::default(),
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> Result<Answer, KubeError> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Accept", "application/json");
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let bad = |e: ureq::http::Error| KubeError::Transport(e.to_string());
        let result = match body {
            None => self.agent.run(req.body(()).map_err(bad)?),
            Some(b) => self.agent.run(
                req.header("Content-Type", content_type)
                    .body(b.to_string())
                    .map_err(bad)?,
            ),
        };
        read(result)
    }

    /// Calls, retrying 429 and 5xx answers and transport errors with backoff.
    fn call_retrying(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> Result<Answer, KubeError> {
        let mut delay = self.backoff.first;
        let mut last = String::new();
        for attempt in 1..=self.backoff.tries.max(1) {
            match self.call(method, path, body, content_type) {
                Ok(a) if a.status == 429 || a.status >= 500 => {
                    last = format!("{} {}", a.status, status_message(&a.body));
                }
                Ok(a) => return Ok(a),
                Err(KubeError::Transport(e)) => last = e,
                Err(e) => return Err(e),
            }
            if attempt < self.backoff.tries {
                tracing::info!(method, path, attempt, answer = %last, "retrying the API call");
                std::thread::sleep(delay);
                delay = (delay * 2).min(self.backoff.max);
            }
        }
        Err(KubeError::GaveUp {
            tries: self.backoff.tries.max(1),
            last,
        })
    }

    fn pod_path(p: &PodRef) -> Result<String, KubeError> {
        Ok(format!(
            "/api/v1/namespaces/{}/pods/{}",
            segment(&p.namespace)?,
            segment(&p.name)?
        ))
    }

    /// The pod, checked to be the one the alert names (same UID).
    pub fn get_pod(&self, p: &PodRef) -> Result<Value, KubeError> {
        let a = self.call_retrying("GET", &Self::pod_path(p)?, None, "")?;
        let pod = expect_ok(a, &p.name)?;
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        if uid != p.uid {
            return Err(KubeError::Conflict {
                name: p.name.clone(),
                message: format!("its UID is {uid}, the alert's pod was {}", p.uid),
            });
        }
        Ok(pod)
    }

    /// The guards for `pod`: `Err(Guard)` when it must not be touched.
    pub fn guard(pod: &Value, allow: &Allow) -> Result<(), KubeError> {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        if ns == "kube-system" && !allow.kube_system {
            return Err(KubeError::Guard("a pod in kube-system".into()));
        }
        if pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string()
            && !allow.static_pods
        {
            return Err(KubeError::Guard(
                "a static pod (the kubelet's mirror)".into(),
            ));
        }
        let owner = controller_of(pod);
        match owner.as_ref().map(|(k, _)| k.as_str()) {
            None if !allow.standalone => Err(KubeError::Guard(
                "a standalone pod (no controller would replace it)".into(),
            )),
            Some("DaemonSet") if !allow.daemonset => Err(KubeError::Guard(
                "a DaemonSet's pod (one per node: it would come back here)".into(),
            )),
            Some("StatefulSet") if !allow.statefulset => Err(KubeError::Guard(
                "a StatefulSet's pod (its identity and volumes)".into(),
            )),
            Some("Job") if !allow.job => Err(KubeError::Guard(
                "a Job's pod (its work would be lost)".into(),
            )),
            _ => Ok(()),
        }
    }

    /// `label`: the quarantine label on the pod, and the labels its controller selects on
    /// removed, so that the controller lets it go and replaces it while it stays for forensics.
    /// Returns the labels removed.
    pub fn quarantine(
        &self,
        p: &PodRef,
        incident: &str,
        allow: &Allow,
    ) -> Result<Vec<String>, KubeError> {
        let pod = self.get_pod(p)?;
        Self::guard(&pod, allow)?;
        let selector = self.controller_selector(&pod)?;
        let mut labels = serde_json::Map::new();
        labels.insert(QUARANTINE_LABEL.to_string(), json!(label_value(incident)));
        for k in &selector {
            labels.insert(k.clone(), Value::Null);
        }
        self.patch_labels(p, labels)?;
        Ok(selector)
    }

    fn patch_labels(
        &self,
        p: &PodRef,
        labels: serde_json::Map<String, Value>,
    ) -> Result<(), KubeError> {
        // A merge patch that names the UID: the API server refuses it (409) for another pod.
        let patch = json!({ "metadata": { "uid": p.uid, "labels": labels } });
        let a = self.call_retrying(
            "PATCH",
            &Self::pod_path(p)?,
            Some(&patch),
            "application/merge-patch+json",
        )?;
        expect_ok(a, &p.name).map(|_| ())
    }

    /// The `matchLabels` keys of the pod's controller (ReplicaSet, ReplicationController,
    /// StatefulSet, DaemonSet, Job): the labels whose removal releases the pod.
    fn controller_selector(&self, pod: &Value) -> Result<Vec<String>, KubeError> {
        let Some((kind, name)) = controller_of(pod) else {
            return Ok(Vec::new());
        };
        let ns = segment(pod["metadata"]["namespace"].as_str().unwrap_or_default())?;
        let path = match kind.as_str() {
            "ReplicaSet" => format!(
                "/apis/apps/v1/namespaces/{ns}/replicasets/{}",
                segment(&name)?
            ),
            "StatefulSet" => format!(
                "/apis/apps/v1/namespaces/{ns}/statefulsets/{}",
                segment(&name)?
            ),
            "DaemonSet" => format!(
                "/apis/apps/v1/namespaces/{ns}/daemonsets/{}",
                segment(&name)?
            ),
            "Job" => format!("/apis/batch/v1/namespaces/{ns}/jobs/{}", segment(&name)?),
            "ReplicationController" => format!(
                "/api/v1/namespaces/{ns}/replicationcontrollers/{}",
                segment(&name)?
            ),
            other => return Err(KubeError::Api(format!("unknown controller kind {other}"))),
        };
        let owner = expect_ok(self.call_retrying("GET", &path, None, "")?, &name)?;
        let sel = if kind == "ReplicationController" {
            &owner["spec"]["selector"]
        } else {
            &owner["spec"]["selector"]["matchLabels"]
        };
        Ok(sel
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// `networkpolicy`: the pod labelled for quarantine and a deny-all (Ingress and Egress)
    /// NetworkPolicy selecting that label in its namespace, owned by driftwatch, expiring at
    /// `expires` (RFC 3339). Returns the policy's name. An existing one (409) is fine.
    pub fn deny_all(
        &self,
        p: &PodRef,
        incident: &str,
        expires: Option<&str>,
        allow: &Allow,
    ) -> Result<String, KubeError> {
        let pod = self.get_pod(p)?;
        if pod["metadata"]["namespace"] == "kube-system" && !allow.kube_system {
            return Err(KubeError::Guard("a pod in kube-system".into()));
        }
        let value = label_value(incident);
        let mut labels = serde_json::Map::new();
        labels.insert(QUARANTINE_LABEL.to_string(), json!(value));
        self.patch_labels(p, labels)?;
        let name = format!("driftwatch-quarantine-{value}");
        let mut annotations = serde_json::Map::new();
        if let Some(e) = expires {
            annotations.insert(EXPIRES_ANNOTATION.to_string(), json!(e));
        }
        annotations.insert("driftwatch.io/pod".to_string(), json!(p.name));
        let np = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": name,
                "namespace": p.namespace,
                "labels": { MANAGED_BY.0: MANAGED_BY.1, QUARANTINE_LABEL: value },
                "annotations": annotations,
            },
            "spec": {
                "podSelector": { "matchLabels": { QUARANTINE_LABEL: value } },
                "policyTypes": ["Ingress", "Egress"],
            }
        });
        let path = format!(
            "/apis/networking.k8s.io/v1/namespaces/{}/networkpolicies",
            segment(&p.namespace)?
        );
        let a = self.call_retrying("POST", &path, Some(&np), "application/json")?;
        match a.status {
            200 | 201 => Ok(name),
            409 => Ok(name),
            _ => expect_ok(a, &name).map(|_| name),
        }
    }

    /// Undoes `networkpolicy`: deletes the policy (only one driftwatch owns). `false` when it
    /// was not there.
    pub fn remove_policy(&self, namespace: &str, name: &str) -> Result<bool, KubeError> {
        let path = format!(
            "/apis/networking.k8s.io/v1/namespaces/{}/networkpolicies/{}",
            segment(namespace)?,
            segment(name)?
        );
        let np = match self.call_retrying("GET", &path, None, "")? {
            a if a.status == 404 => return Ok(false),
            a => expect_ok(a, name)?,
        };
        if np["metadata"]["labels"][MANAGED_BY.0] != MANAGED_BY.1 {
            return Err(KubeError::Guard(format!(
                "NetworkPolicy {name} is not driftwatch's"
            )));
        }
        let a = self.call_retrying("DELETE", &path, None, "")?;
        match a.status {
            200 | 202 => Ok(true),
            404 => Ok(false),
            _ => expect_ok(a, name).map(|_| true),
        }
    }

    /// `evict`: the Eviction API (`policy/v1`) with the pod's UID as a precondition. A
    /// PodDisruptionBudget's refusal (429) and server errors are retried with backoff; nothing
    /// is ever deleted instead.
    pub fn evict(&self, p: &PodRef, allow: &Allow) -> Result<(), KubeError> {
        let pod = self.get_pod(p)?;
        Self::guard(&pod, allow)?;
        let body = json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": { "name": p.name, "namespace": p.namespace },
            "deleteOptions": { "preconditions": { "uid": p.uid } },
        });
        let path = format!("{}/eviction", Self::pod_path(p)?);
        let a = self.call_retrying("POST", &path, Some(&body), "application/json")?;
        expect_ok(a, &p.name).map(|_| ())
    }
}

/// A label value from an incident id (at most 63 characters of `[a-z0-9-]`).
fn label_value(incident: &str) -> String {
    let v: String = incident
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    v.trim_matches('-').to_string()
}

/// The pod's controller: `(kind, name)` of the owner reference with `controller: true`.
fn controller_of(pod: &Value) -> Option<(String, String)> {
    pod["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default().to_string(),
                o["name"].as_str().unwrap_or_default().to_string(),
            )
        })
}

fn read(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Answer, KubeError> {
    match r {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let text = resp
                .body_mut()
                .with_config()
                .limit(MAX_ANSWER)
                .read_to_string()
                .unwrap_or_default();
            Ok(Answer {
                status,
                body: serde_json::from_str(&text).unwrap_or(Value::Null),
            })
        }
        Err(e) => Err(KubeError::Transport(e.to_string())),
    }
}

/// A 2xx answer's body, or the error the status means.
fn expect_ok(a: Answer, name: &str) -> Result<Value, KubeError> {
    match a.status {
        200..=299 => Ok(a.body),
        404 => Err(KubeError::Gone(name.to_string())),
        409 => Err(KubeError::Conflict {
            name: name.to_string(),
            message: status_message(&a.body),
        }),
        403 => Err(KubeError::Forbidden(status_message(&a.body))),
        s => Err(KubeError::Api(format!("{s}: {}", status_message(&a.body)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_valid_labels() {
        assert_eq!(label_value("1733540000000-7"), "1733540000000-7");
        assert_eq!(label_value("A_b c"), "a-b-c");
        assert!(label_value(&"x".repeat(100)).len() <= 63);
    }

    #[test]
    fn names_outside_the_api_grammar_are_refused() {
        assert!(segment("web-7d9f").is_ok());
        for bad in ["", "../secrets", "a/b", "A", "x?y"] {
            assert!(segment(bad).is_err(), "{bad}");
        }
    }
}

/// Where the API server is and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTarget {
    /// `https://host:port`.
    pub server: String,
    /// The cluster's CA certificates (PEM), when not the system's.
    pub ca_pem: Option<Vec<u8>>,
    pub token: Option<String>,
}

/// The pod's service account: `KUBERNETES_SERVICE_HOST`/`_PORT` and
/// `/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}`. `None` outside a cluster.
pub fn in_cluster(secrets: &std::path::Path) -> Option<ApiTarget> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST").ok()?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Some(ApiTarget {
        server: format!("https://{host}:{port}"),
        ca_pem: std::fs::read(secrets.join("ca.crt")).ok(),
        token: std::fs::read_to_string(secrets.join("token"))
            .ok()
            .map(|t| t.trim().to_string()),
    })
}

/// The current context of a kubeconfig: its cluster's server and CA, its user's token (a
/// token or a token file; client certificates and exec plugins are not supported — the
/// message says so).
pub fn from_kubeconfig(path: &std::path::Path) -> Result<ApiTarget, String> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |m: &str| format!("{}: {m}", path.display());
    let current = doc["current-context"]
        .as_str()
        .ok_or_else(|| bad("no current-context"))?;
    let named = |list: &str, name: &str, inner: &str| -> Result<serde_yaml::Value, String> {
        doc[list]
            .as_sequence()
            .and_then(|s| s.iter().find(|e| e["name"].as_str() == Some(name)))
            .map(|e| e[inner].clone())
            .ok_or_else(|| bad(&format!("no {inner} {name:?} in {list}")))
    };
    let ctx = named("contexts", current, "context")?;
    let cluster = named(
        "clusters",
        ctx["cluster"]
            .as_str()
            .ok_or_else(|| bad("the context names no cluster"))?,
        "cluster",
    )?;
    let user = named(
        "users",
        ctx["user"]
            .as_str()
            .ok_or_else(|| bad("the context names no user"))?,
        "user",
    )?;
    let server = cluster["server"]
        .as_str()
        .ok_or_else(|| bad("the cluster has no server"))?
        .to_string();
    let ca_pem = match (
        cluster["certificate-authority-data"].as_str(),
        cluster["certificate-authority"].as_str(),
    ) {
        (Some(d), _) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(d.trim())
                .map_err(|e| bad(&format!("certificate-authority-data: {e}")))?,
        ),
        (None, Some(f)) => {
            let p = path.parent().unwrap_or(std::path::Path::new(".")).join(f);
            Some(std::fs::read(&p).map_err(|e| bad(&format!("{}: {e}", p.display())))?)
        }
        (None, None) => None,
    };
    let token = match (user["token"].as_str(), user["tokenFile"].as_str()) {
        (Some(t), _) => Some(t.trim().to_string()),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| bad(&format!("tokenFile {f}: {e}")))?
                .trim()
                .to_string(),
        ),
        (None, None)
            if !user["client-certificate"].is_null()
                || !user["client-certificate-data"].is_null()
                || !user["exec"].is_null() =>
        {
            return Err(bad("only token users are supported (not client certificates or exec plugins): give the agent a service-account token"));
        }
        (None, None) => None,
    };
    Ok(ApiTarget {
        server,
        ca_pem,
        token,
    })
}

#[cfg(test)]
mod kubeconfig_tests {
    use super::*;

    #[test]
    fn a_kubeconfig_gives_server_ca_and_token() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let ca =
            base64::engine::general_purpose::STANDARD.encode(b"-----BEGIN CERTIFICATE-----\nx\n");
        let kc = dir.path().join("config");
        std::fs::write(
            &kc,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: prod\nclusters:\n- name: c1\n  cluster:\n    server: https://10.0.0.1:6443\n    certificate-authority-data: {ca}\ncontexts:\n- name: prod\n  context: {{cluster: c1, user: u1}}\nusers:\n- name: u1\n  user: {{token: abc}}\n"
            ),
        )
        .unwrap();
        let t = from_kubeconfig(&kc).unwrap();
        assert_eq!(t.server, "https://10.0.0.1:6443");
        assert_eq!(t.token.as_deref(), Some("abc"));
        assert!(t.ca_pem.unwrap().starts_with(b"-----BEGIN"));
        std::fs::write(&kc, "current-context: x\ncontexts: []\n").unwrap();
        assert!(from_kubeconfig(&kc)
            .unwrap_err()
            .contains("no context \"x\""));
        std::fs::write(
            &kc,
            "current-context: p\nclusters:\n- name: c\n  cluster: {server: https://h}\ncontexts:\n- name: p\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {client-certificate-data: eA==}\n",
        )
        .unwrap();
        assert!(from_kubeconfig(&kc)
            .unwrap_err()
            .contains("only token users"));
    }
}

/// The client `[response.kubernetes]` gives: `api_server` (with `token_file`, `ca_file`),
/// else `kubeconfig`, else the pod's service account when `in_cluster` and the agent runs in
/// a cluster; `Ok(None)` when none applies.
pub fn client_from_config(
    cfg: &crate::config::KubernetesConfig,
) -> Result<Option<KubeClient>, String> {
    let target = if let Some(server) = &cfg.api_server {
        ApiTarget {
            server: server.clone(),
            ca_pem: cfg
                .ca_file
                .as_ref()
                .map(|p| std::fs::read(p).map_err(|e| format!("ca_file {}: {e}", p.display())))
                .transpose()?,
            token: cfg
                .token_file
                .as_ref()
                .map(|p| {
                    std::fs::read_to_string(p)
                        .map(|t| t.trim().to_string())
                        .map_err(|e| format!("token_file {}: {e}", p.display()))
                })
                .transpose()?,
        }
    } else if let Some(k) = &cfg.kubeconfig {
        from_kubeconfig(k)?
    } else if cfg.in_cluster {
        match in_cluster(std::path::Path::new(
            "/var/run/secrets/kubernetes.io/serviceaccount",
        )) {
            Some(t) => t,
            None => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    let roots = target
        .ca_pem
        .as_deref()
        .map(driftwatch_output::http::pem_certificates)
        .transpose()
        .map_err(|e| format!("the cluster CA: {e}"))?;
    let tls = driftwatch_output::http::tls_trusting(roots);
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .tls_config(tls)
        .build()
        .new_agent();
    Ok(Some(KubeClient::new(agent, target.server, target.token)))
}

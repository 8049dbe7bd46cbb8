//! The HTTP output against a real receiver on 127.0.0.1 started by each test
//! (`driftwatch_testkit::Receiver`): Falcosidekick's payload, headers and bearer token,
//! `minimum_priority` and `tags`, outages (the receiver down, then up), permanent and
//! retryable statuses, https with a CA file, the spool across a restart and when full, the
//! shipped Defender template, and the playbooks' handle.

use driftwatch_event::{Alert, Priority};
use driftwatch_output::{
    HttpFormat, HttpOutputConfig, OutputConfig, OutputMetrics, Outputs, Summaries,
};
use driftwatch_testkit::{Receiver, Request, TestCa};
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const DRIFT_RULE: &str = "Drift Detected (Container Image Modified Binary)";

/// A binary-drift alert as the agent raises it.
fn drift_alert(n: usize, priority: Priority) -> Alert {
    let mut f = BTreeMap::new();
    for (k, v) in [
        ("container.id", json!("4f1c2a9d7e3b")),
        ("container.name", json!("web")),
        (
            "container.image.repository",
            json!("registry.example/shop/web"),
        ),
        ("container.image.tag", json!("1.4.2")),
        ("container.image.digest", json!("sha256:0123")),
        ("k8s.ns.name", json!("shop")),
        ("k8s.pod.name", json!("web-7d9f")),
        ("proc.exepath", json!(format!("/tmp/evil{n}"))),
        ("proc.cmdline", json!(format!("evil{n} --fast"))),
        ("proc.pname", json!("sh")),
        ("proc.pid", json!(4242)),
        ("user.name", json!("root")),
        ("drift.path", json!(format!("/tmp/evil{n}"))),
        ("drift.origin", json!("added")),
        ("drift.via", json!("exec")),
        ("response.action", json!("none")),
        ("evt.type", json!("execve")),
    ] {
        f.insert(k.to_string(), v);
    }
    Alert {
        time_ns: 1_795_980_600_123_456_789 + n as u64,
        rule: DRIFT_RULE.to_string(),
        priority,
        output: format!("Drift detected: new binary executed in container (exe_path=/tmp/evil{n})"),
        output_fields: f,
        tags: vec!["container".into(), "drift".into(), "binary_drift".into()],
        source: "syscall".into(),
        hostname: "node-1".into(),
    }
}

/// Falcosidekick's `types.FalcoPayload`, strictly: every key it knows, no other.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "decoded to prove the shape; not every field is read"
)]
struct FalcoPayload {
    #[serde(default)]
    uuid: Option<String>,
    output: String,
    priority: String,
    rule: String,
    time: String,
    output_fields: BTreeMap<String, Value>,
    source: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    hostname: String,
}

/// Decodes a body as Falcosidekick does and checks what its handler checks (a known priority,
/// a rule, a time, output fields) plus the time's nanoseconds.
fn falcosidekick_decode(body: &[u8]) -> FalcoPayload {
    let p: FalcoPayload = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "Falcosidekick would reject {}: {e}",
            String::from_utf8_lossy(body)
        )
    });
    assert!(
        [
            "Emergency",
            "Alert",
            "Critical",
            "Error",
            "Warning",
            "Notice",
            "Informational",
            "Debug"
        ]
        .contains(&p.priority.as_str()),
        "{}",
        p.priority
    );
    assert!(!p.rule.is_empty() && !p.output.is_empty());
    assert!(
        !p.output_fields.is_empty(),
        "Falcosidekick needs output_fields"
    );
    assert!(!p.source.is_empty());
    let t = time::OffsetDateTime::parse(&p.time, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("time {:?} is not RFC 3339: {e}", p.time));
    assert_eq!(t.offset(), time::UtcOffset::UTC);
    let frac = p.time.split('.').nth(1).unwrap_or("");
    assert_eq!(frac.len(), 10, "nine digits and Z: {}", p.time);
    p
}

fn http_cfg(name: &str, url: &str, spool: &Path) -> HttpOutputConfig {
    let mut h = HttpOutputConfig::new(name, url);
    h.spool_dir = Some(spool.to_path_buf());
    h.timeout = "2s".into();
    h.retry_backoff = "20ms".into();
    h.retry_backoff_max = "200ms".into();
    h
}

fn output_cfg(http: Vec<HttpOutputConfig>) -> OutputConfig {
    let cfg = OutputConfig {
        stdout: false,
        json: false,
        file: None,
        http,
    };
    assert_eq!(cfg.problems(), Vec::<String>::new());
    cfg
}

/// The outputs task running on its own runtime, fed by a channel.
struct Running {
    rt: tokio::runtime::Runtime,
    tx: Option<mpsc::Sender<Alert>>,
    task: Option<tokio::task::JoinHandle<()>>,
    metrics: Arc<OutputMetrics>,
}

impl Running {
    fn start(cfg: &OutputConfig) -> Running {
        let metrics = Arc::new(OutputMetrics::default());
        let outputs = Outputs::open(cfg, Arc::new(Summaries::default()), metrics.clone())
            .expect("outputs open")
            .with_hostname("node-1".into());
        Running::run(outputs, metrics)
    }

    fn run(outputs: Outputs, metrics: Arc<OutputMetrics>) -> Running {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (tx, rx) = mpsc::channel(64);
        let task = rt.spawn(outputs.run(rx));
        Running {
            rt,
            tx: Some(tx),
            task: Some(task),
            metrics,
        }
    }

    fn send(&self, alert: Alert) {
        let tx = self.tx.clone().expect("running");
        self.rt
            .block_on(async move { tx.send(alert).await.expect("outputs running") });
    }

    /// Closes the channel and waits for the outputs to flush (an agent's shutdown).
    fn stop(mut self) {
        self.tx.take();
        if let Some(t) = self.task.take() {
            self.rt.block_on(t).expect("outputs task");
        }
    }

    fn metric(&self, series: &str) -> Option<f64> {
        metric(&self.metrics, series)
    }

    fn wait_metric(&self, series: &str, pred: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.metric(series);
            if let Some(v) = v.filter(|v| pred(*v)) {
                return v;
            }
            assert!(Instant::now() < deadline, "{series} = {v:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn metric(m: &OutputMetrics, series: &str) -> Option<f64> {
    let mut r = Registry::with_prefix("driftwatch");
    m.register(&mut r);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &r).expect("encode");
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

fn series(name: &str, output: &str) -> String {
    format!("driftwatch_output_http_{name}{{output=\"{output}\"}}")
}

fn counter(name: &str, output: &str) -> String {
    format!("driftwatch_output_http_{name}_total{{output=\"{output}\"}}")
}

fn dropped(output: &str, reason: &str) -> String {
    format!("driftwatch_output_http_dropped_total{{output=\"{output}\",reason=\"{reason}\"}}")
}

/// The `proc.exepath` of each request's alert.
fn exepaths(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .map(|r| {
            let a = r.json();
            a["output_fields"]["proc.exepath"]
                .as_str()
                .unwrap_or_else(|| panic!("no proc.exepath: {a}"))
                .to_string()
        })
        .collect()
}

/// The paths of [`drift_alert`]s `range`.
fn evil_paths(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("/tmp/evil{n}")).collect()
}

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn falco_json_reaches_the_receiver_as_falcosidekick_decodes_it() {
    let rx = Receiver::start();
    let spool = tempfile::tempdir().unwrap();
    let mut h = http_cfg("sidekick", &rx.url("/"), spool.path());
    h.headers.insert("X-Team".into(), "secops".into());
    h.bearer_token = Some("s3cret-token".into());
    h.minimum_priority = "warning".into();
    let out = Running::start(&output_cfg(vec![h]));
    out.send(drift_alert(0, Priority::Notice)); // below the minimum: not sent
    out.send(drift_alert(1, Priority::Warning));
    out.send(drift_alert(2, Priority::Critical));
    let got = rx.wait_accepted(2, WAIT);
    assert_eq!(got.len(), 2);
    for (r, n) in got.iter().zip([1, 2]) {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("authorization"), Some("Bearer s3cret-token"));
        assert_eq!(r.header("x-team"), Some("secops"));
        let p = falcosidekick_decode(&r.body);
        assert_eq!(p.rule, DRIFT_RULE);
        assert_eq!(p.hostname, "node-1");
        assert_eq!(p.source, "syscall");
        assert_eq!(p.tags, ["container", "drift", "binary_drift"]);
        assert_eq!(p.output_fields["proc.exepath"], format!("/tmp/evil{n}"));
        // Exactly the agent's own JSON line.
        assert_eq!(
            r.body,
            drift_alert(n, [Priority::Warning, Priority::Critical][n - 1])
                .to_json_line()
                .into_bytes()
        );
    }
    assert_eq!(got[0].json()["time"], "2026-11-29T19:30:00.123456790Z");
    out.wait_metric(&counter("delivered", "sidekick"), |v| v == 2.0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rx.requests().len(), 2, "the Notice alert was not sent");
    out.stop();
}

#[test]
fn alerts_wait_while_the_receiver_is_down_and_arrive_in_order() {
    let port = free_port();
    let spool = tempfile::tempdir().unwrap();
    let h = http_cfg(
        "http",
        &format!("http://127.0.0.1:{port}/alerts"),
        spool.path(),
    );
    let out = Running::start(&output_cfg(vec![h]));
    for n in 0..20 {
        out.send(drift_alert(n, Priority::Warning));
    }
    out.wait_metric(&counter("retries", "http"), |v| v >= 2.0);
    assert_eq!(out.metric(&series("spool_alerts", "http")), Some(20.0));
    assert!(out.metric(&series("spool_bytes", "http")).unwrap_or(0.0) > 20.0 * 500.0);
    let rx = Receiver::start_on(port);
    let got = rx.wait_accepted(20, WAIT);
    assert_eq!(
        exepaths(&got),
        evil_paths(0..20),
        "every alert, oldest first"
    );
    assert!(got.iter().all(|r| r.path == "/alerts"));
    out.wait_metric(&series("spool_alerts", "http"), |v| v == 0.0);
    assert_eq!(out.metric(&counter("delivered", "http")), Some(20.0));
    out.stop();
}

#[test]
fn a_permanent_4xx_is_dropped_and_counted_while_503_and_429_are_retried() {
    let rx = Receiver::start();
    rx.respond_with(&[400, 503, 429, 500]);
    let spool = tempfile::tempdir().unwrap();
    let out = Running::start(&output_cfg(vec![http_cfg(
        "http",
        &rx.url("/"),
        spool.path(),
    )]));
    out.send(drift_alert(0, Priority::Warning));
    out.send(drift_alert(1, Priority::Warning));
    let got = rx.wait_accepted(1, WAIT);
    let all = rx.requests();
    let statuses: Vec<u16> = all.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 503, 429, 500, 200]);
    assert_eq!(all[0].json()["output_fields"]["proc.exepath"], "/tmp/evil0");
    for r in &all[1..] {
        assert_eq!(r.json()["output_fields"]["proc.exepath"], "/tmp/evil1");
    }
    assert_eq!(got.len(), 1);
    assert_eq!(out.metric(&dropped("http", "rejected")), Some(1.0));
    assert_eq!(out.metric(&counter("retries", "http")), Some(3.0));
    out.wait_metric(&counter("delivered", "http"), |v| v == 1.0);
    out.stop();
}

#[test]
fn retry_after_is_honoured_up_to_the_backoff_bound() {
    let rx = Receiver::start();
    rx.retry_after(1);
    rx.respond_with(&[429, 503]);
    let spool = tempfile::tempdir().unwrap();
    let mut h = http_cfg("http", &rx.url("/"), spool.path());
    h.retry_backoff_max = "700ms".into();
    let out = Running::start(&output_cfg(vec![h]));
    out.send(drift_alert(0, Priority::Warning));
    rx.wait_accepted(1, WAIT);
    let r = rx.requests();
    assert_eq!(
        r.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 503, 200]
    );
    // Backoff alone would wait 20 ms, then 40 ms; Retry-After: 1 asks a second, cut to 700 ms.
    for w in r.windows(2) {
        let gap = w[1].at.duration_since(w[0].at);
        assert!(
            gap >= Duration::from_millis(650) && gap < Duration::from_millis(1000),
            "{gap:?}"
        );
    }
    out.stop();
}

#[test]
fn max_retries_gives_up_on_an_alert_and_counts_it() {
    let rx = Receiver::start();
    rx.respond_with(&[503, 503, 503]);
    let spool = tempfile::tempdir().unwrap();
    let mut h = http_cfg("http", &rx.url("/"), spool.path());
    h.max_retries = Some(2);
    let out = Running::start(&output_cfg(vec![h]));
    out.send(drift_alert(0, Priority::Warning));
    out.send(drift_alert(1, Priority::Warning));
    let got = rx.wait_accepted(1, WAIT);
    assert_eq!(got[0].json()["output_fields"]["proc.exepath"], "/tmp/evil1");
    assert_eq!(
        rx.requests().len(),
        4,
        "one try and two retries, then the next alert"
    );
    assert_eq!(out.metric(&dropped("http", "retries_exhausted")), Some(1.0));
    out.stop();
}

#[test]
fn https_with_a_ca_file_is_verified() {
    let ca = TestCa::new();
    let rx = Receiver::start_tls(&ca);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let url = format!("https://127.0.0.1:{}/", rx.port());
    // Without the CA the receiver's certificate is not trusted: nothing is delivered.
    let mut untrusted = http_cfg("untrusted", &url, &dir.path().join("spool-u"));
    untrusted.retry_backoff = "1s".into();
    let out = Running::start(&output_cfg(vec![untrusted]));
    out.send(drift_alert(0, Priority::Warning));
    out.wait_metric(&counter("retries", "untrusted"), |v| v >= 1.0);
    assert!(
        rx.requests().is_empty(),
        "no request got through the TLS handshake"
    );
    out.stop();
    // With it, the alert goes.
    let mut h = http_cfg("tls", &url, &dir.path().join("spool"));
    h.ca_file = Some(ca_file);
    let out = Running::start(&output_cfg(vec![h]));
    out.send(drift_alert(1, Priority::Warning));
    let got = rx.wait_accepted(1, WAIT);
    falcosidekick_decode(&got[0].body);
    assert_eq!(got[0].json()["output_fields"]["proc.exepath"], "/tmp/evil1");
    out.stop();
}

#[test]
fn the_spool_survives_a_restart_of_the_outputs() {
    let port = free_port();
    let spool = tempfile::tempdir().unwrap();
    let h = http_cfg("http", &format!("http://127.0.0.1:{port}/"), spool.path());
    let cfg = output_cfg(vec![h]);
    let out = Running::start(&cfg);
    for n in 0..5 {
        out.send(drift_alert(n, Priority::Warning));
    }
    out.wait_metric(&counter("retries", "http"), |v| v >= 1.0);
    out.stop();
    // The receiver comes up while no agent runs; the next start delivers what was kept.
    let rx = Receiver::start_on(port);
    let out = Running::start(&cfg);
    let got = rx.wait_accepted(5, WAIT);
    assert_eq!(exepaths(&got), evil_paths(0..5));
    out.stop();
    // And once delivered, a third start sends nothing again.
    let out = Running::start(&cfg);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.requests().len(), 5);
    assert_eq!(out.metric(&series("spool_alerts", "http")), Some(0.0));
    out.stop();
}

#[test]
fn a_full_spool_drops_the_oldest_counts_them_and_says_so_on_the_other_outputs() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts.jsonl");
    let mut h = http_cfg(
        "siem",
        &format!("http://127.0.0.1:{port}/"),
        &dir.path().join("spool"),
    );
    h.spool_max_bytes = 64 * 1024;
    let cfg = OutputConfig {
        file: Some(file.clone()),
        ..output_cfg(vec![h])
    };
    let out = Running::start(&cfg);
    let total = 200;
    for n in 0..total {
        out.send(drift_alert(n, Priority::Warning));
    }
    let lines = |f: &PathBuf| -> Vec<Value> {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    };
    let deadline = Instant::now() + WAIT;
    let notices = loop {
        let n: Vec<Value> = lines(&file)
            .into_iter()
            .filter(|a| a["rule"] == driftwatch_event::internal::OUTPUT_DROPPED_RULE)
            .collect();
        if !n.is_empty() {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "no dropped-alerts alert in the file"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let a = &notices[0];
    assert_eq!(a["priority"], "Error");
    assert_eq!(a["source"], "internal");
    assert_eq!(a["hostname"], "node-1");
    assert_eq!(a["output_fields"]["driftwatch.output"], "siem");
    assert!(
        a["output_fields"]["driftwatch.dropped"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{a}"
    );
    // Every alert is spooled or counted once the writer took them all.
    let deadline = Instant::now() + WAIT;
    let (lost, spooled) = loop {
        let spooled = out.metric(&series("spool_alerts", "siem")).unwrap_or(0.0);
        let lost = out.metric(&dropped("siem", "spool_full")).unwrap_or(0.0);
        if lost + spooled == total as f64 {
            break (lost, spooled);
        }
        assert!(
            Instant::now() < deadline,
            "lost {lost} + spooled {spooled} != {total}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(lost > 0.0);
    let bytes = out.metric(&series("spool_bytes", "siem")).unwrap_or(0.0);
    assert!(bytes <= 64.0 * 1024.0, "{bytes}");
    // The receiver comes back: what is left arrives, the newest, in order.
    let rx = Receiver::start_on(port);
    let got = rx.wait_accepted(spooled as usize, WAIT);
    let first = total - spooled as usize;
    assert_eq!(exepaths(&got), evil_paths(first..total));
    out.stop();
    // Every notice together names every lost alert.
    let told: u64 = lines(&file)
        .iter()
        .filter(|a| a["rule"] == driftwatch_event::internal::OUTPUT_DROPPED_RULE)
        .map(|a| {
            a["output_fields"]["driftwatch.dropped"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(told as f64, lost);
}

fn defender_template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/outputs/defender-binary-drift.json")
}

#[test]
fn the_shipped_defender_template_renders_a_drift_alert() {
    let t = driftwatch_output::Template::load(&defender_template())
        .expect("the shipped template loads");
    let v = t.render(&drift_alert(7, Priority::Warning));
    assert_eq!(v["alertType"], "K8S.NODE_ImageBinaryDrift");
    assert_eq!(v["severity"], "Medium");
    assert_eq!(
        v["description"],
        "Binary executed that was not part of the original container image: /tmp/evil7 (added) in \
         container web of image registry.example/shop/web:1.4.2 on node node-1"
    );
    assert_eq!(
        v["remediationSteps"],
        json!([
            "Investigate the binary origin and purpose",
            "Check if the container was compromised",
            "Rebuild the container from a clean image",
            "Enable readOnlyRootFilesystem"
        ])
    );
    assert_eq!(v["timeGeneratedUtc"], "2026-11-29T19:30:00.123456796Z");
    let p = &v["extendedProperties"];
    assert_eq!(p["rule"], DRIFT_RULE);
    assert_eq!(p["tags"], json!(["container", "drift", "binary_drift"]));
    assert_eq!(p["pod"], "web-7d9f");
    assert_eq!(p["processPath"], "/tmp/evil7");
    assert_eq!(p["commandLine"], "evil7 --fast");
    assert_eq!(
        t.render(&drift_alert(0, Priority::Critical))["severity"],
        "High"
    );
    assert_eq!(
        t.render(&drift_alert(0, Priority::Notice))["severity"],
        "Low"
    );
}

#[test]
fn a_template_output_posts_the_document_for_binary_drift_only() {
    let rx = Receiver::start();
    let spool = tempfile::tempdir().unwrap();
    let mut h = http_cfg("defender", &rx.url("/siem"), spool.path());
    h.format = HttpFormat::Template;
    h.template = Some(defender_template());
    h.tags = vec!["binary_drift".into()];
    let out = Running::start(&output_cfg(vec![h]));
    let mut file_drift = drift_alert(1, Priority::Warning);
    file_drift.tags = vec!["container".into(), "file_drift".into()];
    out.send(file_drift);
    out.send(drift_alert(2, Priority::Error));
    let got = rx.wait_accepted(1, WAIT);
    let v = got[0].json();
    assert_eq!(v["alertType"], "K8S.NODE_ImageBinaryDrift");
    assert_eq!(v["severity"], "High");
    assert_eq!(v["extendedProperties"]["processPath"], "/tmp/evil2");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rx.requests().len(), 1, "the file-drift alert was not sent");
    out.stop();
}

#[test]
fn a_handle_enqueues_into_its_named_output() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let mut quiet = http_cfg("quiet", &rx.url("/quiet"), &dir.path().join("q"));
    quiet.minimum_priority = "emergency".into();
    let loud = http_cfg("loud", &rx.url("/loud"), &dir.path().join("l"));
    let metrics = Arc::new(OutputMetrics::default());
    let outputs = Outputs::open(
        &output_cfg(vec![quiet, loud]),
        Arc::new(Summaries::default()),
        metrics.clone(),
    )
    .expect("open");
    assert!(outputs.http_handle("nope").is_none());
    let handle = outputs.http_handle("quiet").expect("quiet handle");
    assert_eq!(handle.name(), "quiet");
    let out = Running::run(outputs, metrics);
    // The playbook chose to send it: the output's minimum priority does not apply.
    handle
        .clone()
        .send(&drift_alert(3, Priority::Warning))
        .expect("enqueued");
    let got = rx.wait_accepted(1, WAIT);
    assert_eq!(got[0].path, "/quiet");
    assert_eq!(got[0].json()["output_fields"]["proc.exepath"], "/tmp/evil3");
    out.stop();
}

#[test]
fn the_output_task_never_waits_on_the_network() {
    // A receiver that takes connections and never answers: every request runs into the
    // output's timeout.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = hang.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in hang.incoming().take(2) {
            conns.push(c);
        }
        std::thread::sleep(Duration::from_secs(4));
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts.jsonl");
    let mut h = http_cfg(
        "stuck",
        &format!("http://127.0.0.1:{port}/"),
        &dir.path().join("spool"),
    );
    h.timeout = "3s".into();
    let cfg = OutputConfig {
        file: Some(file.clone()),
        ..output_cfg(vec![h])
    };
    let out = Running::start(&cfg);
    let start = Instant::now();
    for n in 0..100 {
        out.send(drift_alert(n, Priority::Warning));
    }
    let deadline = start + Duration::from_secs(2);
    loop {
        let lines = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .count();
        if lines == 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the file output waited on the HTTP output: {lines} of 100 lines after {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(out.metric(&counter("delivered", "stuck")), Some(0.0));
    assert_eq!(out.metric(&series("spool_alerts", "stuck")), Some(100.0));
    out.stop();
    let _ = held.join();
}

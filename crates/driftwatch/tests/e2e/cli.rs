//! The agent's command-line contract: errors, exit codes, the listener, shutdown.

use crate::harness::*;
use std::process::Command;

/// Runs `driftwatch agent ARGS` to its exit: (exit code, stderr).
pub fn run_agent(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(agent_bin())
        .arg("agent")
        .args(args)
        .output()
        .expect("run agent");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn invalid_config_is_a_clear_error_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[agent]\nlisten = \"nowhere\"\n[pipeline]\nprocess_table_max = 1\n",
    )
    .unwrap();
    let (code, err) = run_agent(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("agent.listen") && err.contains("pipeline.process_table_max"),
        "{err}"
    );
    std::fs::write(&cfg, "[agent]\nenforse = true\n").unwrap();
    let (code, err) = run_agent(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("enforse"), "{err}");
    let (code, err) = run_agent(&["--config", "/nonexistent/driftwatch.toml"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/nonexistent/driftwatch.toml"), "{err}");
}

#[test]
fn listen_address_taken_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = run_agent(&["--listen", &addr]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    // The cause is said once, not repeated by every layer.
    assert_eq!(errors[0].matches("in use").count(), 1, "{err}");
}

#[test]
fn bpf_that_cannot_load_names_the_missing_capability() {
    // An unprivileged user cannot create BPF maps.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            agent_bin(),
            "agent",
        ])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .expect("setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("driftwatch: error:"))
        .expect("error line");
    assert!(line.contains("cannot load the BPF sensor"), "{line}");
    assert!(
        line.contains("CAP_BPF") && line.contains("CAP_PERFMON"),
        "{line}"
    );
    assert_eq!(line.matches("run as root").count(), 1, "said once: {line}");
}

#[test]
fn unwritable_output_file_is_a_clear_error() {
    let (code, err) = run_agent(&["--output-file", "/proc/driftwatch-cannot-create.jsonl"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot open output file /proc/driftwatch-cannot-create.jsonl"),
        "{err}"
    );
}

#[test]
fn listener_serves_health_readiness_metrics_and_sigterm_exits_zero() {
    let _env = env();
    let agent = Agent::start(&[]);
    assert_eq!(http_get(agent.port, "/healthz").map(|(s, _)| s), Some(200));
    assert_eq!(http_get(agent.port, "/readyz").map(|(s, _)| s), Some(200));
    let m = agent.metrics();
    for family in [
        "driftwatch_events_total{kind=\"exec\"}",
        "driftwatch_ringbuf_lost_events_total{kind=\"exec\"}",
        "driftwatch_channel_dropped_events_total{channel=\"events\"}",
        "driftwatch_containers_tracked",
        "driftwatch_kernel_kills_total",
    ] {
        assert!(
            metric_value(&m, family).is_some(),
            "{family} missing in\n{m}"
        );
    }
    assert_eq!(http_get(agent.port, "/nope").map(|(s, _)| s), Some(404));
    let status = agent.stop();
    assert_eq!(status.code(), Some(0));
}

fn driftwatch(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(agent_bin())
        .args(args)
        .output()
        .expect("run driftwatch");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn repo_path(rel: &str) -> String {
    format!("{}/../../{rel}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn rules_validate_reports_every_diagnostic_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "- rule: A\n  desc: x\n  condition: proc.nosuch = 1\n  output: x\n  priority: WARNING\n\
         - rule: B\n  desc: x\n  condition: proc.name = sh and (\n  output: x\n  priority: WARNING\n",
    )
    .unwrap();
    let (code, out, err) = driftwatch(&["rules", "validate", bad.to_str().unwrap()]);
    let all = format!("{out}{err}");
    assert_eq!(code, Some(1), "{all}");
    assert!(
        all.contains("bad.yaml:3:") && all.contains("proc.nosuch"),
        "{all}"
    );
    assert!(all.contains("bad.yaml:8:"), "both errors reported: {all}");
    let last = all.trim().lines().last().unwrap_or_default();
    let errors: usize = last
        .rsplit(", ")
        .next()
        .and_then(|e| e.strip_suffix(" errors"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(last.starts_with("rules:") && errors >= 2, "{last}");
    // Only unsupported fields, skipped: exit 0 with a warning.
    let unknown = dir.path().join("unknown.yaml");
    std::fs::write(
        &unknown,
        "- rule: A\n  desc: x\n  condition: proc.nosuch = 1\n  output: x\n  priority: WARNING\n",
    )
    .unwrap();
    let (code, out, err) = driftwatch(&[
        "rules",
        "validate",
        "--skip-unknown",
        unknown.to_str().unwrap(),
    ]);
    let all = format!("{out}{err}");
    assert_eq!(code, Some(0), "{all}");
    assert!(all.contains("warning"), "{all}");
    assert!(
        all.trim()
            .lines()
            .last()
            .unwrap_or_default()
            .contains("1 skipped"),
        "{all}"
    );
}

#[test]
fn shipped_rules_validate_list_and_pass_their_test_cases() {
    let rules = repo_path("rules");
    let (code, out, err) = driftwatch(&["rules", "validate", &rules]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = driftwatch(&["rules", "list", &rules]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("Drift Detected (Container Image Modified Binary)"),
        "{out}"
    );
    let cases = repo_path("rules/driftwatch_rules.tests.yaml");
    let (code, out, err) = driftwatch(&["rules", "test", &cases, "--rules", &rules]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.trim()
            .lines()
            .last()
            .unwrap_or_default()
            .ends_with("0 failed"),
        "{out}"
    );
    // A case that expects the wrong rule fails the run.
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.yaml");
    let text = std::fs::read_to_string(&cases).unwrap();
    std::fs::write(
        &wrong,
        text.replacen("expect: []", "expect: [Container Shell Spawned]", 1),
    )
    .unwrap();
    let (code, out, _) = driftwatch(&["rules", "test", wrong.to_str().unwrap(), "--rules", &rules]);
    assert_eq!(code, Some(1), "{out}");
}

/// `driftwatch baseline`: list, show, check, and edit through $EDITOR — saved only when the edit
/// parses; a mistake names file, line and column and leaves the file alone; and an agent refuses
/// to start on a broken baseline file (exit 2, file:line:col).
#[test]
fn baseline_files_are_listed_checked_and_edited_safely() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let text = "version: 1\nworkload: \"image:docker.io/library/web/app\"\nlearning:\n  started: \"2026-12-07T01:00:00Z\"\n  until: \"2026-12-07T02:00:00Z\"\nimages: []\nlisten:\n  - {proto: tcp, port: 9090, source: learned}\nconnect: []\n";
    let file = dir.path().join("image_docker.io_library_web_app.yaml");
    std::fs::write(&file, text).unwrap();
    let baseline = |args: &[&str], editor: Option<&str>| {
        let mut c = Command::new(agent_bin());
        c.arg("baseline").args(args).args(["--dir", &d]);
        if let Some(e) = editor {
            c.env("EDITOR", e).env_remove("VISUAL");
        }
        let out = c.output().expect("run baseline");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = baseline(&["list"], None);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("image:docker.io/library/web/app") && out.contains("learned"),
        "{out}"
    );
    let (code, out, _) = baseline(&["show", "web/app"], None);
    assert_eq!((code, out.as_str()), (Some(0), text));
    assert_eq!(baseline(&["check"], None).0, Some(0));
    // A good edit is saved.
    let (code, out, err) = baseline(&["edit", "web/app"], Some("sed -i s/9090/9091/"));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("port: 9091"));
    // A mistake: named with line and column, the file unchanged, the edit kept elsewhere.
    let before = std::fs::read_to_string(&file).unwrap();
    let (code, _, err) = baseline(&["edit", "web/app"], Some("sed -i s/9091/nine/"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("{}:8:", file.display())), "{err}");
    assert!(err.contains("is unchanged"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    // check finds a broken file; the agent refuses to start on it.
    std::fs::write(&file, before.replace("9091", "nine")).unwrap();
    let (code, _, err) = baseline(&["check"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains(&format!("{}:8:", file.display())), "{err}");
    let (code, err) = run_agent(&["--baseline-dir", &d, "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("{}:8:", file.display())), "{err}");
}

/// A Falco-shaped alert of the drift rule for container `c1`.
fn drift_alert(dir: &std::path::Path, container: &str) -> String {
    let a = serde_json::json!({
        "time": "2026-12-07T01:00:00.123456789Z",
        "rule": DRIFT_RULE,
        "priority": "Critical",
        "output": "Drift detected",
        "source": "syscall",
        "hostname": "node1",
        "tags": ["container", "binary_drift"],
        "output_fields": {
            "container.id": container,
            "container.name": "web",
            "proc.pid": 4242,
            "proc.name": "evil",
            "response.action": "none"
        }
    });
    let path = dir.join(format!("alert-{container}.json"));
    std::fs::write(&path, a.to_string()).expect("write alert");
    path.to_str().expect("utf-8").to_string()
}

#[test]
fn respond_plan_says_what_an_alert_would_do_and_what_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let example = repo_path("examples/response/isolate-and-capture.yaml");
    let alert = drift_alert(dir.path(), "c1");
    let (code, out, err) =
        driftwatch(&["respond", "plan", "--alert", &alert, "--response", &example]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("playbook isolate-and-capture (mode enforce):"),
        "{out}"
    );
    assert!(
        out.contains("1. capture container c1 (web): would run"),
        "{out}"
    );
    assert!(
        out.contains("2. isolate container c1 (web): would run"),
        "{out}"
    );
    // JSON: the steps with their actions and options.
    let (code, out, _) = driftwatch(&[
        "respond",
        "plan",
        "--json",
        "--alert",
        &alert,
        "--response",
        &example,
    ]);
    assert_eq!(code, Some(0));
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan[0]["steps"][1]["action"], "isolate");
    assert_eq!(plan[0]["steps"][1]["ttl"], 3600);
    // Host activity: nothing to act on.
    let host = drift_alert(dir.path(), "host");
    let (code, out, _) = driftwatch(&["respond", "plan", "--alert", &host, "--response", &example]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("stopped by not a container (host activity)"),
        "{out}"
    );
    // Observe mode plans and does nothing; another rule matches no playbook.
    let observe = dir.path().join("observe.yaml");
    std::fs::write(
        &observe,
        "playbooks:\n  - name: watch\n    match: {tags: [binary_drift]}\n    actions: [pause, \"kill\"]\n",
    )
    .unwrap();
    let (code, out, _) = driftwatch(&[
        "respond",
        "plan",
        "--alert",
        &alert,
        "--response",
        observe.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("1. pause container c1 (web): would do, not done (observe mode)"),
        "{out}"
    );
    assert!(
        out.contains("2. kill process 4242 (evil) of container c1: would do"),
        "{out}"
    );
    // Mistakes are file:line:col, for `respond plan` and for the agent alike.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "playbooks:\n  - name: x\n    match: {}\n    actions: [explode]\n",
    )
    .unwrap();
    let bad = bad.to_str().unwrap();
    let (code, _, err) = driftwatch(&["respond", "plan", "--alert", &alert, "--response", bad]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("{bad}:4:")) && err.contains("unknown action \"explode\""),
        "{err}"
    );
    let (code, err) = run_agent(&["--response", bad]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("{bad}:4:")), "{err}");
    // The example with a playbook per action parses, and its plan names each action.
    let every = repo_path("examples/response/every-action.yaml");
    let pod_alert = dir.path().join("pod-alert.json");
    let mut a: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&alert).unwrap()).unwrap();
    for (k, v) in [
        ("container.name", "batch-1"),
        ("k8s.ns.name", "prod"),
        ("k8s.pod.name", "web-5d8f7c9b4-abcde"),
        ("k8s.pod.uid", "6f2b3c1e"),
    ] {
        a["output_fields"][k] = serde_json::json!(v);
    }
    std::fs::write(&pod_alert, a.to_string()).unwrap();
    let (code, out, err) = driftwatch(&[
        "respond",
        "plan",
        "--json",
        "--alert",
        pod_alert.to_str().unwrap(),
        "--response",
        &every,
    ]);
    assert_eq!(code, Some(1), "observe mode: nothing would run: {out}{err}");
    let plans: serde_json::Value = serde_json::from_str(&out).unwrap();
    let actions: Vec<&str> = plans
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["steps"].as_array().unwrap().iter())
        .filter_map(|s| s["action"].as_str())
        .collect();
    for a in [
        "kill",
        "capture",
        "isolate",
        "label",
        "networkpolicy",
        "evict",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    // Not an alert.
    std::fs::write(dir.path().join("junk.json"), "{\"rule\": 1}").unwrap();
    let junk = dir.path().join("junk.json");
    let (code, _, err) = driftwatch(&[
        "respond",
        "plan",
        "--alert",
        junk.to_str().unwrap(),
        "--response",
        &example,
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("is not an alert"), "{err}");
}

//! The agent runs on rule files: the shipped rules, tuned and extended by the user's.

use crate::harness::*;
use driftwatch_testkit::RunOpts;
use serde_json::Value;

fn f<'a>(a: &'a Value, k: &str) -> &'a Value {
    &a["output_fields"][k]
}

const LOCAL_RULES: &str = r#"
- list: drift_allowed_paths
  items: [/tmp/allowed]
  override:
    items: append

- rule: Test Marker Run
  desc: an image program the test watches for
  condition: spawned_process and container and proc.name = marker
  output: marker ran (command=%proc.cmdline container=%container.id)
  priority: NOTICE
  tags: [test]
"#;

#[test]
fn user_rule_files_tune_and_extend_the_shipped_rules() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local.yaml");
    std::fs::write(&local, LOCAL_RULES).unwrap();
    let agent = Agent::start(&["--rules", local.to_str().unwrap()]);
    let c = env.run("rules-tune", RunOpts::default());
    // Drift under an allowed path raises nothing; elsewhere it does.
    let (code, _) = sh(
        &c,
        "mkdir -p /tmp/allowed && cp /bin/marker /tmp/allowed/tool && /tmp/allowed/tool /tmp/a.ran; true",
    );
    assert_eq!(code, Some(0));
    // The user's own rule fires on an image program.
    assert_eq!(sh(&c, "/bin/marker /tmp/m.ran").0, Some(0));
    let m = agent.wait_alert(30, "Test Marker Run", |a| {
        a["rule"] == "Test Marker Run" && f(a, "container.id") == c.id()
    });
    assert_eq!(m["priority"], "Notice");
    assert_eq!(m["tags"], serde_json::json!(["test"]));
    assert_eq!(
        m["output"],
        format!(
            "marker ran (command=marker /tmp/m.ran container={})",
            c.id()
        )
    );
    let sentinel = agent.sentinel(&c);
    let drift: Vec<Value> = drift_alerts_for(&agent.alerts(), c.id());
    assert_eq!(drift, vec![sentinel], "the allowed path raised nothing");
    assert!(agent.stop().success());
}

#[test]
fn shell_and_package_manager_rules_fire() {
    let env = env();
    let agent = Agent::start(&[]);
    let c = env.run("rules-shell", RunOpts::default());
    // A shell started by a shell (not by the container runtime) in the container. busybox's
    // shell runs its applets in-process; a path with a slash is always exec'd.
    assert_eq!(
        sh(
            &c,
            "ln -s /bin/busybox /tmp/sh && /tmp/sh -c 'echo inner'; true"
        )
        .0,
        Some(0)
    );
    let shell = agent.wait_alert(30, "Container Shell Spawned", |a| {
        a["rule"] == "Container Shell Spawned" && f(a, "container.id") == c.id()
    });
    assert_eq!(shell["priority"], "Warning");
    assert_eq!(f(&shell, "proc.name"), "sh");
    // A package manager run in the container (a dropped binary named apt-get).
    assert_eq!(
        sh(
            &c,
            "cp /bin/marker /tmp/apt-get && /tmp/apt-get /tmp/p.ran; true"
        )
        .0,
        Some(0)
    );
    let pm = agent.wait_alert(30, "Package Manager Execution", |a| {
        a["rule"] == "Package Manager Execution in Container" && f(a, "container.id") == c.id()
    });
    assert_eq!(pm["priority"], "Error");
    // The same exec is binary drift too: every matching rule alerts.
    agent.wait_alert(30, "drift of apt-get", |a| {
        a["rule"] == DRIFT_RULE && f(a, "proc.exepath") == "/tmp/apt-get"
    });
    assert!(agent.stop().success());
}

#[test]
fn invalid_rules_stop_the_agent_with_every_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "- rule: Broken\n  desc: x\n  condition: proc.nosuchfield = 1 and proc.name startswith\n  \
         output: x\n  priority: WARNING\n",
    )
    .unwrap();
    let out = std::process::Command::new(agent_bin())
        .args(["agent", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--rules", bad.to_str().unwrap()])
        .output()
        .expect("run agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.yaml:3:"), "file:line:col: {err}");
}

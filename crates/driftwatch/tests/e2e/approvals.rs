//! Approved drift is one decision for the alerts and for enforcement: what the approvals file
//! or the rule allow-lists approve runs under `--enforce` and raises nothing; everything else
//! is killed and alerted, and a kill no rule alerts on raises the agent's own alert.

use crate::harness::*;
use driftwatch_testkit::{Container, MountSpec, RunOpts};
use serde_json::Value;

fn f<'a>(a: &'a Value, k: &str) -> &'a Value {
    &a["output_fields"][k]
}

/// Runs `path` (a copy of the image's marker helper) in `c`; its exit status.
fn run_copy(c: &Container, path: &str) -> String {
    let dir = path.rsplit_once('/').map_or("/", |(d, _)| d);
    let (_, out) = sh(
        c,
        &format!("mkdir -p {dir} && cp /bin/marker {path} && {path} {path}.ran; echo status=$?"),
    );
    out.trim().to_string()
}

/// The unapproved drift after the approved one: killed, alerted (so every event before it was
/// processed).
fn killed_and_alerted(agent: &Agent, c: &Container, path: &str) -> Value {
    assert_eq!(run_copy(c, path), "status=137", "{path} is killed");
    let a = agent.wait_alert(30, path, |a| {
        f(a, "proc.exepath") == path && f(a, "container.id") == c.id()
    });
    assert_eq!(f(&a, "response.action"), "killed", "{a:#}");
    a
}

/// The alerts about drifted code (an arrival: `drift.via`) of `c` that mention `needle`.
/// (Approvals are about code: file and package drift rules keep their own allow-lists.)
fn alerts_about(agent: &Agent, c: &Container, needle: &str) -> Vec<Value> {
    agent
        .alerts()
        .into_iter()
        .filter(|a| {
            f(a, "container.id") == c.id()
                && !f(a, "drift.via").is_null()
                && a.to_string().contains(needle)
        })
        .collect()
}

#[test]
fn approved_paths_and_hashes_run_under_enforce_and_raise_nothing() {
    let env = env();
    let c = env.run("approve-path", RunOpts::default());
    let sha = sha256_in(&c, "/bin/marker");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("approvals.yaml");
    std::fs::write(
        &file,
        format!(
            "approvals:\n\
             - reason: plugins installed by the entrypoint\n  image: driftwatch-test/e2e\n  path: /opt/plugins/**\n\
             - reason: the marker tool, wherever it is copied\n  sha256: {sha}\n  path: /srv/**\n\
             - reason: expired long ago\n  path: /tmp/expired\n  expires: 2020-01-01T00:00:00Z\n"
        ),
    )
    .expect("write approvals");
    let agent = Agent::start(&["--enforce", "--approvals", file.to_str().expect("utf-8")]);
    assert_eq!(run_copy(&c, "/opt/plugins/sub/plugin"), "status=0");
    let (code, _) = sh(&c, "test -e /opt/plugins/sub/plugin.ran");
    assert_eq!(code, Some(0), "the approved plugin ran");
    assert_eq!(
        run_copy(&c, "/srv/tool"),
        "status=0",
        "approved by its hash"
    );
    // The same path with other bytes is not the approved file.
    let (_, out) = sh(
        &c,
        "cp /usr/bin/hello /srv/other && /srv/other; echo status=$?",
    );
    assert!(out.trim().ends_with("status=137"), "{out}");
    let _ = agent.wait_alert(30, "/srv/other", |a| {
        f(a, "proc.exepath") == "/srv/other" && f(a, "container.id") == c.id()
    });
    assert_eq!(run_copy(&c, "/tmp/expired"), "status=137", "expired");
    killed_and_alerted(&agent, &c, "/tmp/evil");
    assert_eq!(
        alerts_about(&agent, &c, "/opt/plugins"),
        Vec::<Value>::new()
    );
    assert_eq!(alerts_about(&agent, &c, "/srv/tool"), Vec::<Value>::new());
    assert!(
        agent.stderr().contains("approval expired"),
        "{}",
        agent.stderr()
    );
    assert!(agent.stop().success());
}

const ALLOWED_PATHS: &str = r#"
- list: drift_allowed_paths
  items: [/opt/tools]
  override:
    items: append

- rule: Drift Detected (Container Image Modified Binary)
  exceptions:
    - name: image_and_path
      values:
        - [driftwatch-test/e2e, /opt/vendor/]
  override:
    exceptions: append
"#;

#[test]
fn a_drift_allowed_path_from_a_user_rules_file_is_not_killed() {
    let env = env();
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("local.yaml");
    std::fs::write(&rules, ALLOWED_PATHS).expect("write rules");
    let agent = Agent::start(&["--enforce", "--rules", rules.to_str().expect("utf-8")]);
    let c = env.run("approve-rules", RunOpts::default());
    assert_eq!(run_copy(&c, "/opt/tools/t"), "status=0");
    assert_eq!(
        run_copy(&c, "/opt/toolsx/t"),
        "status=137",
        "whole components"
    );
    assert_eq!(
        run_copy(&c, "/opt/vendor/v"),
        "status=0",
        "the rule's exception"
    );
    killed_and_alerted(&agent, &c, "/tmp/evil");
    assert_eq!(alerts_about(&agent, &c, "/opt/tools/"), Vec::<Value>::new());
    assert_eq!(
        alerts_about(&agent, &c, "/opt/vendor/"),
        Vec::<Value>::new()
    );
    assert!(agent.stop().success());
}

#[test]
fn an_approved_container_is_not_killed() {
    let env = env();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("approvals.yaml");
    std::fs::write(
        &file,
        "approvals:\n- reason: the build container compiles and runs its own code\n  container: builder\n",
    )
    .expect("write approvals");
    let agent = Agent::start(&["--enforce", "--approvals", file.to_str().expect("utf-8")]);
    let named = |name: &str| RunOpts {
        labels: vec![("io.kubernetes.container.name".into(), name.into())],
        mounts: vec![MountSpec::tmpfs_exec("/scratch")],
        ..RunOpts::default()
    };
    let approved = env.run("approve-ctr", named("builder"));
    let other = env.run("approve-other", named("web"));
    assert_eq!(run_copy(&approved, "/tmp/built"), "status=0");
    assert_eq!(
        run_copy(&approved, "/scratch/built"),
        "status=0",
        "any mount"
    );
    killed_and_alerted(&agent, &other, "/tmp/built");
    killed_and_alerted(&agent, &other, "/scratch/built");
    assert_eq!(
        alerts_about(&agent, &approved, "built"),
        Vec::<Value>::new()
    );
    assert!(agent.stop().success());
}

const QUIET_DRIFT: &str = r#"
- macro: user_known_drift_activities
  condition: (drift.path startswith /tmp/quiet)
"#;

#[test]
fn a_kill_no_rule_alerts_on_raises_the_agents_kill_alert() {
    let env = env();
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("local.yaml");
    std::fs::write(&rules, QUIET_DRIFT).expect("write rules");
    let agent = Agent::start(&["--enforce", "--rules", rules.to_str().expect("utf-8")]);
    let c = env.run("approve-kill", RunOpts::default());
    // user_known_drift_activities silences the rule but cannot stop the kernel's kill.
    assert_eq!(run_copy(&c, "/tmp/quiet"), "status=137");
    let a = agent.wait_alert(30, "the kill alert", |a| {
        a["rule"] == "Drifted Code Killed" && f(a, "container.id") == c.id()
    });
    assert_eq!(a["source"], "internal");
    assert_eq!(f(&a, "response.action"), "killed");
    assert_eq!(f(&a, "drift.path"), "/tmp/quiet");
    assert_eq!(f(&a, "proc.exepath"), "/tmp/quiet");
    assert!(
        a["output"]
            .as_str()
            .is_some_and(|o| o.contains("action=killed") && o.contains("file=/tmp/quiet")),
        "{a:#}"
    );
    // A kill the drift rule alerts on has no second alert.
    let evil = killed_and_alerted(&agent, &c, "/tmp/evil");
    assert_eq!(evil["rule"], DRIFT_RULE);
    let kill_alerts = agent
        .alerts()
        .into_iter()
        .filter(|a| a["rule"] == "Drifted Code Killed")
        .count();
    assert_eq!(kill_alerts, 1);
    assert!(agent.stop().success());
}

#[test]
fn an_invalid_approvals_file_stops_the_agent_with_file_line_col() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("approvals.yaml");
    let port = free_port().to_string();
    for (text, at) in [
        (
            "approvals:\n- reason: x\n  image: a\n  expires: tomorrow\n",
            ":4:12: ",
        ),
        ("approvals:\n- reason: x\n  paht: /opt/**\n", ":3:3: "),
        ("approvals:\n- image: a\n", ":2:3: "),
    ] {
        std::fs::write(&file, text).expect("write");
        let cfg = dir.path().join("agent.toml");
        std::fs::write(
            &cfg,
            format!(
                "[response]\napprovals = {:?}\n",
                file.to_str().expect("utf-8")
            ),
        )
        .expect("write config");
        // The flag and the configuration key name the same file.
        for args in [
            vec!["--approvals", file.to_str().expect("utf-8")],
            vec!["--config", cfg.to_str().expect("utf-8")],
        ] {
            let out = std::process::Command::new(agent_bin())
                .args(["agent", "--quiet", "--listen", &format!("127.0.0.1:{port}")])
                .args(&args)
                .output()
                .expect("run agent");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{err}");
            let want = format!("{}{at}", file.display());
            assert!(err.contains(&want), "{want} in {err}");
        }
    }
}

#[test]
fn ephemeral_containers_are_told_apart_and_matchable_by_kind() {
    let env = env();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("approvals.yaml");
    std::fs::write(
        &file,
        "approvals:\n- reason: kubectl debug sessions\n  kind: ephemeral\n",
    )
    .expect("write approvals");
    let rules = dir.path().join("kind.yaml");
    std::fs::write(
        &rules,
        "- rule: Test Container Kind\n  desc: the kind of the container a program runs in\n  \
         condition: spawned_process and container and proc.name = marker\n  \
         output: kind=%container.kind\n  priority: NOTICE\n  tags: [test]\n",
    )
    .expect("write rules");
    let agent = Agent::start(&[
        "--enforce",
        "--approvals",
        file.to_str().expect("utf-8"),
        "--rules",
        rules.to_str().expect("utf-8"),
    ]);
    // What containerd's CRI plugin and the kubelet put on a `kubectl debug` container.
    let cri = |name: &str| RunOpts {
        labels: vec![
            ("io.cri-containerd.kind".into(), "container".into()),
            ("io.kubernetes.container.name".into(), name.into()),
            ("io.kubernetes.pod.name".into(), "web-0".into()),
            ("io.kubernetes.pod.namespace".into(), "shop".into()),
            ("io.kubernetes.pod.uid".into(), "1111-2222".into()),
        ],
        ..RunOpts::default()
    };
    let debug = env.run("approve-debug", cri("debugger-x7k2p"));
    let app = env.run("approve-app", cri("web"));
    assert_eq!(sh(&debug, "/bin/marker /tmp/m.ran").0, Some(0));
    let k = agent.wait_alert(30, "the debug container's kind", |a| {
        a["rule"] == "Test Container Kind" && f(a, "container.id") == debug.id()
    });
    assert_eq!(k["output"], "kind=ephemeral");
    assert_eq!(sh(&app, "/bin/marker /tmp/m.ran").0, Some(0));
    let k = agent.wait_alert(30, "the app container's kind", |a| {
        a["rule"] == "Test Container Kind" && f(a, "container.id") == app.id()
    });
    assert_eq!(k["output"], "kind=app");
    assert_eq!(
        run_copy(&debug, "/tmp/tool"),
        "status=0",
        "approved by kind"
    );
    killed_and_alerted(&agent, &app, "/tmp/tool");
    assert_eq!(
        alerts_about(&agent, &debug, "/tmp/tool"),
        Vec::<Value>::new()
    );
    assert!(agent.stop().success());
}

//! Binary drift caught end to end.

use crate::harness::*;
use driftwatch_testkit::{MountSpec, RunOpts};
use serde_json::Value;
use std::time::Duration;

fn field<'a>(a: &'a Value, k: &str) -> &'a Value {
    &a["output_fields"][k]
}

#[test]
fn binary_dropped_in_tmp_is_caught_with_container_identity() {
    let env = env();
    let agent = Agent::start(&[]);
    let c = env.run("tmpdrop", RunOpts::default());
    // `; true` keeps sh from exec'ing the last command in place: sh stays the parent.
    let (code, _) = sh(
        &c,
        "cp /bin/marker /tmp/evil && /tmp/evil /tmp/evil.ran; true",
    );
    assert_eq!(code, Some(0));
    let (code, _) = sh(&c, "test -e /tmp/evil.ran");
    assert_eq!(code, Some(0), "without --enforce the drifted program runs");
    let a = agent.wait_alert(30, "/tmp/evil", |a| field(a, "proc.exepath") == "/tmp/evil");
    assert_eq!(a["rule"], DRIFT_RULE);
    assert_eq!(a["priority"], "Warning");
    assert_eq!(a["source"], "syscall");
    let tags: Vec<&str> = a["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tags.contains(&"container") && tags.contains(&"drift"),
        "{tags:?}"
    );
    assert_eq!(field(&a, "container.id"), c.id());
    assert_eq!(field(&a, "container.name"), c.id(), "no CRI name: the id");
    assert_eq!(
        field(&a, "container.image.repository"),
        "driftwatch-test/e2e"
    );
    assert_eq!(field(&a, "container.image.tag"), "1");
    assert!(
        field(&a, "container.image.digest")
            .as_str()
            .unwrap_or("")
            .starts_with("sha256:"),
        "{a:#}"
    );
    assert_eq!(field(&a, "proc.exe_origin"), "added");
    assert_eq!(field(&a, "proc.name"), "evil");
    assert_eq!(field(&a, "proc.cmdline"), "evil /tmp/evil.ran");
    assert_eq!(field(&a, "proc.pname"), "sh");
    assert!(
        field(&a, "proc.pcmdline")
            .as_str()
            .unwrap_or("")
            .starts_with("sh -c cp /bin/marker"),
        "{a:#}"
    );
    assert_eq!(field(&a, "user.uid"), 0);
    assert_eq!(field(&a, "user.name"), "root");
    assert_eq!(field(&a, "evt.type"), "execve");
    assert_eq!(field(&a, "response.action"), "none");
    assert!(field(&a, "k8s.pod.name").is_null());
    assert!(a["time"].as_str().unwrap().ends_with('Z'));
    // The text output on stdout is one JSON object per line too (--json).
    assert!(
        agent.stdout().lines().any(|l| l.contains("/tmp/evil")),
        "{}",
        agent.stdout()
    );
    assert_eq!(
        agent.metric(&format!("driftwatch_alerts_total{{rule=\"{DRIFT_RULE}\"}}")),
        Some(1.0)
    );
    assert!(agent.stop().success());
}

#[test]
fn image_binaries_never_raise_drift() {
    let env = env();
    let agent = Agent::start(&[]);
    let c = env.run("quiet", RunOpts::default());
    // 3 execs per iteration: 300 execs of image binaries (busybox applets through symlinks, a
    // static helper, a binary from the second layer).
    let (code, out) = sh(
        &c,
        "i=0; while [ $i -lt 100 ]; do /bin/ls / >/dev/null; /usr/bin/hello >/dev/null; \
         /bin/marker /tmp/m; i=$((i+1)); done; echo done",
    );
    assert_eq!((code, out.trim()), (Some(0), "done"));
    let sentinel = agent.sentinel(&c);
    let drift = drift_alerts_for(&agent.alerts(), c.id());
    assert_eq!(drift, vec![sentinel], "only the sentinel is drift");
    let execs = agent
        .metric("driftwatch_events_total{kind=\"exec\"}")
        .unwrap_or(0.0);
    assert!(execs >= 300.0, "the agent saw the execs: {execs}");
    assert_eq!(agent.metric("driftwatch_decode_errors_total"), Some(0.0));
    assert!(agent.stop().success());
}

#[test]
fn image_binary_overwritten_in_place_is_modified() {
    let env = env();
    let agent = Agent::start(&[]);
    let c = env.run("modified", RunOpts::default());
    let (code, out) = sh(&c, "/usr/bin/hello");
    assert_eq!((code, out.as_str()), (Some(0), "hello\n"));
    let (code, _) = sh(
        &c,
        "cat /bin/marker > /usr/bin/hello && /usr/bin/hello /tmp/m.ran",
    );
    assert_eq!(code, Some(0));
    let a = agent.wait_alert(30, "modified /usr/bin/hello", |a| {
        field(a, "proc.exepath") == "/usr/bin/hello" && field(a, "container.id") == c.id()
    });
    assert_eq!(field(&a, "proc.exe_origin"), "modified");
    assert_eq!(field(&a, "proc.is_exe_upper_layer"), true);
    // The first, unmodified run of the same path was not drift.
    assert_eq!(drift_alerts_for(&agent.alerts(), c.id()).len(), 1);
    assert!(agent.stop().success());
}

#[test]
fn binary_on_a_tmpfs_mount_is_writable_mount() {
    let env = env();
    let agent = Agent::start(&[]);
    let c = env.run(
        "tmpfs",
        RunOpts {
            mounts: vec![MountSpec::tmpfs_exec("/scratch")],
            ..RunOpts::default()
        },
    );
    let (code, _) = sh(
        &c,
        "cp /bin/marker /scratch/tool && /scratch/tool /scratch/ran",
    );
    assert_eq!(code, Some(0));
    let a = agent.wait_alert(30, "/scratch/tool", |a| {
        field(a, "proc.exepath") == "/scratch/tool"
    });
    assert_eq!(field(&a, "proc.exe_origin"), "writable-mount");
    assert_eq!(field(&a, "container.id"), c.id());
    assert!(agent.stop().success());
}

#[test]
fn enforce_kills_drifted_exec_before_it_runs_and_image_binaries_still_run() {
    let env = env();
    let agent = Agent::start(&["--enforce"]);
    let c = env.run(
        "enforce",
        RunOpts {
            mounts: vec![MountSpec::tmpfs_exec("/scratch")],
            ..RunOpts::default()
        },
    );
    // Image binaries run normally.
    let (code, out) = sh(
        &c,
        "/bin/marker /tmp/image-ran && /usr/bin/hello && ls /tmp",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("image-ran"), "{out}");
    for (path, setup) in [
        ("/tmp/evil", "cp /bin/marker /tmp/evil"),
        ("/scratch/evil", "cp /bin/marker /scratch/evil"),
        ("/usr/bin/hello", "cat /bin/marker > /usr/bin/hello"),
    ] {
        let (code, _) = sh(&c, setup);
        assert_eq!(code, Some(0), "{setup}");
        // The marker's first act would create /tmp/marker-ran: it must not exist.
        let (_, out) = sh(&c, &format!("{path} /tmp/marker-ran; echo status=$?"));
        assert_eq!(out.trim(), "status=137", "{path}: killed by SIGKILL");
        let (_, ls) = sh(&c, "ls /tmp");
        assert!(!ls.contains("marker-ran"), "{path} ran: {ls}");
        let a = agent.wait_alert(30, path, |a| {
            field(a, "proc.exepath") == path && field(a, "container.id") == c.id()
        });
        assert_eq!(field(&a, "response.action"), "killed", "{a:#}");
        assert!(a["output"].as_str().unwrap().contains("action=killed"));
    }
    // The kernel's counters are read once a second.
    let kills = agent.wait_metric("driftwatch_kernel_kills_total", 10, |v| v >= 3.0);
    assert_eq!(kills, 3.0, "one kernel kill per drifted exec");
    assert!(agent.stop().success());
    // Without the agent, the same binary runs again: nothing stays enforced.
    let (_, out) = sh(&c, "/tmp/evil /tmp/after-agent; echo status=$?");
    assert_eq!(out.trim(), "status=0");
}

#[test]
fn container_started_before_the_agent_is_attributed() {
    let env = env();
    let c = env.run(
        "before",
        RunOpts {
            labels: vec![
                ("io.kubernetes.pod.name".into(), "web-7f9c".into()),
                ("io.kubernetes.pod.namespace".into(), "shop".into()),
                ("io.kubernetes.container.name".into(), "web".into()),
            ],
            ..RunOpts::default()
        },
    );
    let agent = Agent::start(&[]);
    let (code, _) = sh(&c, "cp /bin/marker /tmp/late && /tmp/late /tmp/late.ran");
    assert_eq!(code, Some(0));
    let a = agent.wait_alert(30, "/tmp/late", |a| field(a, "proc.exepath") == "/tmp/late");
    assert_eq!(field(&a, "container.id"), c.id());
    assert_eq!(field(&a, "container.name"), "web");
    assert_eq!(field(&a, "k8s.pod.name"), "web-7f9c");
    assert_eq!(field(&a, "k8s.ns.name"), "shop");
    assert_eq!(
        field(&a, "container.image.repository"),
        "driftwatch-test/e2e"
    );
    assert_eq!(field(&a, "proc.exe_origin"), "added");
    assert!(agent.stop().success());
}

#[test]
fn fifty_containers_started_and_stopped_leave_no_stale_state() {
    let env = env();
    let agent = Agent::start(&[]);
    let baseline = agent
        .metric("driftwatch_containers_tracked")
        .unwrap_or(-1.0);
    let policy_baseline = agent.metric("driftwatch_policy_entries").unwrap_or(-1.0);
    for i in 0..50 {
        let c = env.run(&format!("churn{i}"), RunOpts::default());
        if i % 10 == 0 {
            // Some of them drift while they live, so the per-container caches fill too.
            let (code, _) = sh(&c, "cp /bin/marker /tmp/x && /tmp/x /tmp/x.ran");
            assert_eq!(code, Some(0));
        }
        c.remove().expect("remove");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = agent
            .metric("driftwatch_containers_tracked")
            .unwrap_or(-1.0);
        let pol = agent.metric("driftwatch_policy_entries").unwrap_or(-1.0);
        if now == baseline && pol == policy_baseline {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stale state: {now} containers (baseline {baseline}), {pol} policy entries \
             (baseline {policy_baseline})\n{}",
            agent.metrics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let drift = agent
        .alerts()
        .into_iter()
        .filter(|a| a["output_fields"]["proc.exepath"] == "/tmp/x")
        .count();
    assert_eq!(drift, 5, "one alert per drifting container");
    assert!(agent.stop().success());
}

#[test]
fn host_processes_are_host_and_never_drift() {
    let env = env();
    let agent = Agent::start(&[]);
    // A "dropped" binary on the host: copied to a temp dir and run.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("host-evil");
    std::fs::copy("/bin/true", &bin).unwrap();
    for _ in 0..20 {
        assert!(std::process::Command::new(&bin).status().unwrap().success());
    }
    // A container sentinel after it: the host execs were processed before it.
    let c = env.run("hostcheck", RunOpts::default());
    agent.sentinel(&c);
    let host_alerts: Vec<Value> = agent
        .alerts()
        .into_iter()
        .filter(|a| {
            a["output_fields"]["container.id"] == "host"
                || a["output_fields"]["proc.exepath"]
                    .as_str()
                    .is_some_and(|p| p.contains("host-evil"))
        })
        .collect();
    assert!(host_alerts.is_empty(), "{host_alerts:#?}");
    assert!(agent.stop().success());
}

//! The HTTP output end to end: the real agent sends a real drift alert to a receiver on
//! loopback (`driftwatch_testkit::Receiver`) through an outage that outlasts the agent.

use crate::harness::*;
use driftwatch_testkit::{Receiver, RunOpts};
use serde_json::Value;
use std::time::Duration;

#[test]
fn a_drift_alert_raised_while_the_receiver_is_down_arrives_after_an_agent_restart() {
    let env = env();
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing listens on the receiver's port yet.
    let port = free_port();
    let spool = dir.path().join("spool");
    let cfg = dir.path().join("driftwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[output.http]\nurl = \"http://127.0.0.1:{port}/falco\"\nspool_dir = \"{}\"\n\
             tags = [\"binary_drift\"]\ntimeout = \"2s\"\nretry_backoff = \"100ms\"\n\
             retry_backoff_max = \"500ms\"\n[output.http.headers]\nX-Test = \"e2e\"\n",
            spool.display()
        ),
    )
    .expect("write config");
    let cfg = cfg.to_str().expect("utf-8 path");
    let agent = Agent::start(&["--config", cfg]);
    let c = env.run("httpout", RunOpts::default());
    let (code, _) = sh(
        &c,
        "cp /bin/marker /tmp/sent && /tmp/sent /tmp/sent.ran; true",
    );
    assert_eq!(code, Some(0));
    let alert = agent.wait_alert(30, "/tmp/sent", |a| {
        a["output_fields"]["proc.exepath"] == "/tmp/sent"
    });
    assert_eq!(alert["rule"], DRIFT_RULE);
    // Spooled and retried, not delivered: the receiver is down.
    agent.wait_metric(
        "driftwatch_output_http_retries_total{output=\"http\"}",
        30,
        |v| v >= 1.0,
    );
    assert!(
        agent
            .metric("driftwatch_output_http_spool_alerts{output=\"http\"}")
            .unwrap_or(0.0)
            >= 1.0,
        "{}",
        agent.metrics()
    );
    assert_eq!(
        agent.metric("driftwatch_output_http_delivered_total{output=\"http\"}"),
        Some(0.0)
    );
    assert!(agent.stop().success());

    // The receiver comes up while no agent runs; the next agent delivers the kept alert.
    let rx = Receiver::start_on(port);
    let agent = Agent::start(&["--config", cfg]);
    let got = rx.wait_accepted(1, Duration::from_secs(30));
    let sent: Vec<Value> = got
        .iter()
        .map(|r| r.json())
        .filter(|a| a["output_fields"]["proc.exepath"] == "/tmp/sent")
        .collect();
    assert_eq!(sent.len(), 1, "the alert arrives once: {sent:#?}");
    assert_eq!(sent[0], alert, "the alert the first agent wrote, unchanged");
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/falco");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-test"), Some("e2e"));
    // What Falcosidekick checks: a Falco priority, a rule, RFC 3339 time with nanoseconds,
    // output fields, a source, string tags.
    let a = &sent[0];
    assert_eq!(a["priority"], "Warning");
    assert_eq!(a["source"], "syscall");
    let time = a["time"].as_str().expect("time");
    assert_eq!(time.len(), "2026-12-07T23:00:00.123456789Z".len(), "{time}");
    assert!(a["output_fields"]
        .as_object()
        .is_some_and(|f| !f.is_empty()));
    assert_eq!(a["output_fields"]["container.id"], c.id());
    assert!(a["tags"]
        .as_array()
        .is_some_and(|t| t.iter().all(Value::is_string)));
    agent.wait_metric(
        "driftwatch_output_http_delivered_total{output=\"http\"}",
        30,
        |v| v >= 1.0,
    );
    assert_eq!(
        agent.metric("driftwatch_output_http_spool_alerts{output=\"http\"}"),
        Some(0.0)
    );
    assert!(agent.stop().success());
}

#[test]
fn http_output_problems_stop_the_agent_with_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template = dir.path().join("t.json");
    std::fs::write(&template, "{\"document\": {\n  \"a\": \"${nope}\"\n}}\n").expect("template");
    let cfg = dir.path().join("driftwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[output.http]]\nurl = \"ftp://x\"\nspool_dir = \"{0}/a\"\n\
             [[output.http]]\nname = \"t\"\nurl = \"http://127.0.0.1:1/\"\nformat = \"template\"\n\
             template = \"{1}\"\nspool_dir = \"{0}/b\"\n",
            dir.path().display(),
            template.display()
        ),
    )
    .expect("config");
    let (code, err) = crate::cli::run_agent(&["--config", cfg.to_str().expect("utf-8")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("output.http[0].url: \"ftp://x\""), "{err}");
    assert!(
        err.contains(&format!(
            "output.http[1].template: {}:2:9: unknown placeholder ${{nope}}",
            template.display()
        )),
        "{err}"
    );
    // A spool that cannot be made is a runtime failure, before anything is loaded.
    std::fs::write(
        &cfg,
        "[output.http]\nurl = \"http://127.0.0.1:1/\"\nspool_dir = \"/proc/driftwatch-no-spool\"\n",
    )
    .expect("config");
    let (code, err) = crate::cli::run_agent(&["--config", cfg.to_str().expect("utf-8")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot open HTTP output http"), "{err}");
    assert!(err.contains("/proc/driftwatch-no-spool"), "{err}");
}

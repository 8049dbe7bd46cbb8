//! Per-container drift summaries: the agent's `GET /containers` and `driftwatch containers`.

use crate::harness::*;
use driftwatch_testkit::RunOpts;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

fn summaries(port: u16) -> Vec<Value> {
    let (status, body) = http_get(port, "/containers").expect("GET /containers");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Vec<Value>>(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn find<'a>(all: &'a [Value], id: &str) -> Option<&'a Value> {
    all.iter().find(|c| c["id"] == id)
}

#[test]
fn drifted_and_clean_containers_are_summarised() {
    let env = env();
    let agent = Agent::start(&[]);
    let drifted = env.run("sumdrift", RunOpts::default());
    let idle = env.run("sumidle", RunOpts::default());
    let (code, _) = sh(
        &drifted,
        "cp /bin/marker /tmp/evil && /tmp/evil /tmp/evil.ran; true",
    );
    assert_eq!(code, Some(0));
    agent.wait_alert(30, "/tmp/evil", |a| {
        a["output_fields"]["proc.exepath"] == "/tmp/evil"
    });

    // The summary follows the alert writer: poll briefly.
    let deadline = Instant::now() + Duration::from_secs(10);
    let all = loop {
        let all = summaries(agent.port);
        let ok = find(&all, drifted.id()).is_some_and(|c| c["state"] == "drifted")
            && find(&all, idle.id()).is_some();
        if ok || Instant::now() > deadline {
            break all;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let d = find(&all, drifted.id()).unwrap_or_else(|| panic!("{all:#?}"));
    assert_eq!(d["state"], "drifted", "{d:#}");
    assert!(d["counts"]["binary"].as_u64().unwrap_or(0) >= 1, "{d:#}");
    assert_eq!(d["namespace"], ns());
    assert_eq!(d["name"], drifted.id());
    assert!(
        d["image"]
            .as_str()
            .unwrap_or("")
            .contains("driftwatch-test/e2e"),
        "{d:#}"
    );
    assert_eq!(d["last_rule"], DRIFT_RULE);
    assert!(
        d["first_seen"].as_str().unwrap_or("").ends_with('Z'),
        "{d:#}"
    );
    assert!(
        d["top_paths"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["path"] == "/tmp/evil")),
        "{d:#}"
    );
    let i = find(&all, idle.id()).unwrap_or_else(|| panic!("{all:#?}"));
    assert_eq!(i["state"], "clean", "{i:#}");
    assert_eq!(i["alerts"], 0);

    // One container by id; an unknown id is a JSON 404.
    let (status, body) = http_get(agent.port, &format!("/containers/{}", drifted.id())).unwrap();
    assert_eq!(status, 200, "{body}");
    let one: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(one["id"], drifted.id());
    let (status, body) = http_get(agent.port, "/containers/no-such-container").unwrap();
    assert_eq!(status, 404, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert!(err["error"].as_str().is_some(), "{body}");

    // The CLI: JSON that parses, and a table naming both.
    let listen = format!("127.0.0.1:{}", agent.port);
    let out = Command::new(agent_bin())
        .args(["containers", "--json", "--listen", &listen])
        .output()
        .expect("run driftwatch containers");
    assert!(out.status.success(), "{out:?}");
    let cli: Vec<Value> = serde_json::from_slice(&out.stdout).expect("--json parses");
    let d = find(&cli, drifted.id()).expect("drifted container in the CLI's JSON");
    assert_eq!(d["state"], "drifted");
    let out = Command::new(agent_bin())
        .args(["containers", "--listen", &listen])
        .output()
        .expect("run driftwatch containers");
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    let row = |id: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&id[..id.len().min(20)]))
            .unwrap_or_else(|| panic!("{id} not in\n{table}"))
            .to_string()
    };
    assert!(row(drifted.id()).contains("drifted"), "{table}");
    assert!(row(drifted.id()).contains("/tmp/evil"), "{table}");
    assert!(row(idle.id()).contains("clean"), "{table}");
    assert!(agent.stop().success());

    // No agent: a one-line error, exit 1.
    let out = Command::new(agent_bin())
        .args(["containers", "--listen", &listen])
        .output()
        .expect("run driftwatch containers");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no driftwatch agent answers"), "{err}");
}

//! The response playbooks against real containers: observe mode plans and records every step
//! and changes nothing; enforce mode captures evidence (a manifest whose hashes match, the
//! dropped binary copied byte for byte) and kills the container's task or the drifted process
//! (checked by its start time); incidents are served, shown by `driftwatch incidents` and
//! survive the agent.

use crate::harness::*;
use driftwatch_testkit::{Container, RunOpts};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A configuration file for the agent whose response goes to `dir`, with playbooks `yaml`.
fn response_config(dir: &Path, yaml: &str) -> PathBuf {
    let pb = dir.join("playbooks.yaml");
    std::fs::write(&pb, yaml).expect("write playbooks");
    let cfg = dir.join("driftwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[response]\nfile = {:?}\nevidence_dir = {:?}\nincidents_file = {:?}\n",
            pb,
            dir.join("evidence"),
            dir.join("incidents.jsonl")
        ),
    )
    .expect("write config");
    cfg
}

fn drop_and_run(c: &Container, path: &str) {
    let (code, out) = sh(
        c,
        &format!("cp /bin/marker {path} && {path} {path}.ran; echo status=$?"),
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("status=0"), "{path} did not run: {out}");
}

#[test]
fn observe_mode_records_every_step_and_changes_nothing() {
    let env = env();
    let c = env.run("respond-observe", RunOpts::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = response_config(
        dir.path(),
        &format!(
            "playbooks:\n  - name: contain\n    match:\n      rules: [\"{DRIFT_RULE}\"]\n      fields: {{container.id: \"{}\"}}\n    actions:\n      - capture\n      - kill: {{target: container}}\n",
            c.id()
        ),
    );
    let agent = Agent::start(&["--config", cfg.to_str().expect("utf-8")]);
    drop_and_run(&c, "/tmp/observed");
    let i = wait_incident(&agent, &c, 2);
    assert_eq!(
        step_results(&i),
        [
            ("capture".to_string(), "would-do".to_string()),
            ("kill".to_string(), "would-do".to_string())
        ],
        "{i:#}"
    );
    assert_eq!(i["steps"][0]["mode"], "observe");
    // Nothing changed: the container still runs, no evidence was written.
    let (code, _) = sh(&c, "true");
    assert_eq!(code, Some(0), "the container is alive");
    assert!(!dir.path().join("evidence").exists());
    assert!(
        agent.stderr().contains("would do (observe mode)"),
        "{}",
        agent.stderr()
    );
    // A second drift within the cooldown joins nothing new: the playbook does not start again.
    drop_and_run(&c, "/tmp/observed2");
    let _ = agent.wait_alert(30, "/tmp/observed2", |a| {
        a["output_fields"]["proc.exepath"] == "/tmp/observed2"
    });
    std::thread::sleep(Duration::from_millis(500));
    let again = wait_incident(&agent, &c, 2);
    assert_eq!(
        again["steps"].as_array().map(Vec::len),
        Some(2),
        "{again:#}"
    );
    assert!(agent
        .metrics()
        .contains("driftwatch_response_steps_total{action=\"kill\",result=\"skipped\"} 1"));
    assert!(agent.stop().success());
}

#[test]
fn enforce_mode_captures_evidence_then_kills_the_container() {
    let env = env();
    let c = env.run("respond-enforce", RunOpts::default());
    let sha = sha256_in(&c, "/bin/marker");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = response_config(
        dir.path(),
        &format!(
            "mode: enforce\nplaybooks:\n  - name: capture-and-kill\n    match:\n      rules: [\"{DRIFT_RULE}\"]\n      containers: [\"{}\"]\n    actions:\n      - capture\n      - kill: {{target: container}}\n",
            c.id()
        ),
    );
    let agent = Agent::start(&["--config", cfg.to_str().expect("utf-8")]);
    drop_and_run(&c, "/tmp/evidence-me");
    let i = wait_incident(&agent, &c, 2);
    assert_eq!(
        step_results(&i),
        [
            ("capture".to_string(), "done".to_string()),
            ("kill".to_string(), "done".to_string())
        ],
        "{i:#}"
    );
    // The bundle: every file of the manifest has the hash it lists, the dropped binary is
    // copied byte for byte, the container's processes are listed.
    let bundle = PathBuf::from(i["evidence"][0].as_str().expect("evidence path"));
    assert!(
        bundle.starts_with(dir.path().join("evidence")),
        "{bundle:?}"
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).expect("manifest"))
            .expect("manifest JSON");
    let files = manifest["files"].as_array().expect("files");
    for f in files {
        let data = std::fs::read(bundle.join(f["path"].as_str().expect("path"))).expect("file");
        assert_eq!(f["sha256"], hex::encode(Sha256::digest(&data)), "{f}");
    }
    let names: Vec<&str> = files.iter().filter_map(|f| f["path"].as_str()).collect();
    for want in [
        "alert.json",
        "container.json",
        "spec.json",
        "diff.json",
        "processes.json",
        "sockets.json",
        "files/tmp/evidence-me",
    ] {
        assert!(names.contains(&want), "{want} missing: {names:?}");
    }
    let copied = std::fs::read(bundle.join("files/tmp/evidence-me")).expect("copy");
    assert_eq!(hex::encode(Sha256::digest(&copied)), sha);
    let procs: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("processes.json")).expect("procs"))
            .expect("procs JSON");
    assert!(
        procs
            .as_array()
            .expect("array")
            .iter()
            .any(|p| p["pid"] == c.init_pid()),
        "{procs:#}"
    );
    let diff = std::fs::read_to_string(bundle.join("diff.json")).expect("diff");
    assert!(diff.contains("/tmp/evidence-me"), "{diff}");
    // The container's task was killed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{}", c.init_pid())).exists() {
        assert!(Instant::now() < deadline, "the container's init still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(agent.stop().success());
    // The incident survives the agent: its file, read by `driftwatch incidents --file`.
    let out = std::process::Command::new(agent_bin())
        .args(["incidents", "--json", "--file"])
        .arg(dir.path().join("incidents.jsonl"))
        .output()
        .expect("driftwatch incidents");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).expect("incidents JSON");
    let again = list
        .iter()
        .find(|x| x["container"]["id"] == c.id())
        .expect("the incident is in the file");
    assert_eq!(step_results(again), step_results(&i));
}

#[test]
fn the_kill_action_kills_the_drifted_process_only() {
    let env = env();
    let c = env.run("respond-kill", RunOpts::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = response_config(
        dir.path(),
        &format!(
            "playbooks:\n  - name: kill-it\n    mode: enforce\n    match:\n      rules: [\"{DRIFT_RULE}\"]\n      containers: [\"{}\"]\n    actions: [kill]\n",
            c.id()
        ),
    );
    let agent = Agent::start(&["--config", cfg.to_str().expect("utf-8")]);
    // A long-running drifted process: busybox copied to /tmp/tail runs as `tail`.
    let (_, out) = sh(
        &c,
        "cp /bin/busybox /tmp/tail && (/tmp/tail -f /dev/null >/dev/null 2>&1 &) ; sleep 0.2; pidof tail",
    );
    assert!(!out.trim().is_empty(), "the drifted sleep runs: {out}");
    let i = wait_incident(&agent, &c, 1);
    assert_eq!(
        step_results(&i),
        [("kill".to_string(), "done".to_string())],
        "{i:#}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Killed is gone or a zombie (its parent, the container's init, never reaps it).
        let (_, left) = sh(
            &c,
            "for p in $(pidof tail); do grep -q '^State:.*Z' /proc/$p/status || echo $p; done; true",
        );
        if left.trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the drifted process still runs: {left}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _) = sh(&c, "true");
    assert_eq!(code, Some(0), "the container itself still runs");
    assert!(agent.stop().success());
}

//! `driftwatch respond` against real containers: `isolate` / `release` / `isolations` /
//! `expire` (the container's network cut at the node by pinned cgroup programs) and `pause` /
//! `resume` (containerd's freezer). The container's only peer is a network namespace this test
//! makes (`PeerNet`: a veth pair into the container's namespace); traffic goes there and to
//! loopback, nowhere else. In the container runs the testkit's network probe
//! (`net_probe_c`, through `ctr task exec`, so it is in the container's cgroup).

use crate::harness::*;
use driftwatch_testkit::{
    echo_round_trip, net_probe_c, Container, ImageBuilder, NetProbe, PeerNet, RunOpts,
};
use serde_json::Value;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const EPERM: i32 = 1;
const ETIMEDOUT: i32 = 110;
/// The probe's listener in the container and the peer's echo server.
const CONTAINER_PORT: u16 = 8080;
const PEER_PORT: u16 = 7000;

/// `driftwatch respond ARGS`: (exit code, stdout, stderr).
fn respond(args: &[&str]) -> (Option<i32>, String, String) {
    cli("respond", args)
}

/// `respond ARGS` that must succeed; its stdout.
fn respond_ok(args: &[&str]) -> String {
    let (code, stdout, stderr) = respond(args);
    assert_eq!(code, Some(0), "respond {args:?}: {stdout}{stderr}");
    stdout
}

fn image(env: &Env) -> String {
    ImageBuilder::new("driftwatch-test/respond:1")
        .busybox()
        .static_helper("/usr/bin/netprobe", &net_probe_c())
        .import(&env.containerd, ns())
        .expect("import the respond image")
        .reference
}

/// A container, its probe (listening on CONTAINER_PORT) and its peer (echo on PEER_PORT).
struct Net {
    probe: NetProbe,
    peer: PeerNet,
    c: Container,
}

fn setup(env: &Env, prefix: &str) -> Net {
    let img = image(env);
    let id = driftwatch_testkit::unique_id(prefix);
    let c = Container::run(&env.containerd, ns(), &img, &id, RunOpts::default())
        .expect("run container");
    let peer = PeerNet::attach(c.init_pid()).expect("peer network namespace");
    let mut cmd = env.containerd.ctr(ns());
    cmd.args([
        "task",
        "exec",
        "--exec-id",
        &driftwatch_testkit::unique_id("probe"),
    ])
    .arg(c.id())
    .arg("/usr/bin/netprobe");
    let mut probe = NetProbe::spawn(cmd).expect("start the probe in the container");
    assert_eq!(probe.call("hello"), Ok(()));
    assert_eq!(probe.call(&format!("listen {CONTAINER_PORT}")), Ok(()));
    peer.echo_server(PEER_PORT, 180).expect("peer echo server");
    Net { probe, peer, c }
}

impl Net {
    fn to_peer(&self, v6: bool) -> String {
        let ip: IpAddr = if v6 {
            self.peer.peer_v6.into()
        } else {
            self.peer.peer_v4.into()
        };
        format!("tcp {ip} {PEER_PORT}")
    }

    /// A connect from the peer to the probe's listener in the container.
    fn peer_connects(&self, v6: bool) -> std::io::Result<std::net::TcpStream> {
        self.peer.connect_container(v6, CONTAINER_PORT)
    }

    /// Asserts that the container's connects to the peer are refused, v4 and v6.
    fn assert_refused(&mut self, what: &str) {
        for v6 in [false, true] {
            let cmd = self.to_peer(v6);
            assert_eq!(self.probe.call(&cmd), Err(EPERM), "{what}: {cmd}");
        }
    }

    /// Asserts that the container is cut off: both directions, v4 and v6, loopback fine.
    fn assert_isolated(&mut self, what: &str) {
        self.assert_refused(what);
        for v6 in [false, true] {
            assert!(
                self.peer_connects(v6).is_err(),
                "{what}: the peer connects (v6 {v6})"
            );
        }
        for lo in ["127.0.0.1", "::1"] {
            let cmd = format!("tcp {lo} {CONTAINER_PORT}");
            assert_eq!(self.probe.call(&cmd), Ok(()), "{what}: loopback {cmd}");
        }
    }

    fn assert_reachable(&mut self, what: &str) {
        for v6 in [false, true] {
            let cmd = self.to_peer(v6);
            assert_eq!(self.probe.call(&cmd), Ok(()), "{what}: {cmd}");
            self.peer_connects(v6)
                .unwrap_or_else(|e| panic!("{what}: the peer cannot connect (v6 {v6}): {e}"));
        }
    }
}

/// The programs `bpftool cgroup show` lists on the container's cgroup v2 directory.
fn isolation_programs(c: &Container) -> usize {
    let path = c.cgroup_v2_path().expect("cgroup path");
    let mount = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                let mut f = left.split_whitespace();
                (right.starts_with("cgroup2 ") && f.nth(3)? == "/")
                    .then(|| f.next().map(str::to_owned))?
            })
        })
        .expect("cgroup2 mount");
    let dir = Path::new(&mount).join(path.trim_start_matches('/'));
    let out = Command::new("bpftool")
        .args(["cgroup", "show"])
        .arg(&dir)
        .output()
        .expect("run bpftool");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("dw_iso_"))
        .count()
}

/// Whether the isolation programs leave the container's cgroup within a second (the kernel
/// detaches an unpinned link from a work queue).
fn detached(c: &Container) -> bool {
    (0..50).any(|_| {
        let gone = isolation_programs(c) == 0;
        if !gone {
            std::thread::sleep(Duration::from_millis(20));
        }
        gone
    })
}

/// The entry of `respond isolations --json` for container `c`.
fn isolation_of(c: &Container) -> Option<Value> {
    let out = respond_ok(&["isolations", "--json", "-n", ns()]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"));
    let name = format!("{}/{}", c.namespace(), c.id());
    v["isolations"]
        .as_array()
        .expect("isolations")
        .iter()
        .find(|i| i["container"] == name.as_str())
        .cloned()
}

#[test]
fn isolate_cuts_the_container_off_both_ways_until_release_and_survives_the_agent() {
    let e = env();
    let mut n = setup(&e, "iso");
    let id = n.c.id().to_owned();

    // Before: both directions work; two connections are established, one each way.
    n.assert_reachable("before");
    let hold = format!("hold {} {PEER_PORT}", n.peer.peer_v4);
    assert_eq!(n.probe.call(&hold), Ok(()));
    assert_eq!(n.probe.call("ping"), Ok(()), "outbound connection before");
    let mut inbound = n.peer_connects(false).expect("inbound connection");
    assert!(echo_round_trip(&mut inbound), "inbound connection before");

    let out = respond_ok(&["isolate", "-n", ns(), &id]);
    assert!(
        out.contains("isolated") && out.contains("until released"),
        "{out}"
    );
    // The CLI has exited: what follows is what the pins keep in the kernel.
    n.assert_isolated("isolated");
    assert_eq!(
        n.probe.call("ping"),
        Err(ETIMEDOUT),
        "outbound connection cut"
    );
    assert!(!echo_round_trip(&mut inbound), "inbound connection cut");
    assert_eq!(isolation_programs(&n.c), 6);
    let iso = isolation_of(&n.c).expect("listed");
    assert_eq!(
        (iso["in_force"].as_bool(), iso["links"].as_u64()),
        (Some(true), Some(6))
    );
    assert!(iso["until"].is_null(), "{iso}");

    // An agent starts and is killed: the isolation is not its to hold or to drop.
    let agent = Agent::start(&[]);
    n.assert_isolated("with an agent running");
    drop(agent);
    n.assert_isolated("after the agent was killed");

    // Again, with a TTL: nothing attached twice, the end set.
    respond_ok(&["isolate", "-n", ns(), &id, "--ttl", "1h"]);
    assert_eq!(isolation_programs(&n.c), 6);
    let iso = isolation_of(&n.c).expect("listed");
    assert!(iso["until"].is_string(), "{iso}");
    n.assert_isolated("isolated again");

    let out = respond_ok(&["release", "-n", ns(), &id]);
    assert!(out.contains("released"), "{out}");
    // Both ways at once: the kernel detaches the unpinned links a moment later.
    n.assert_reachable("released");
    assert!(isolation_of(&n.c).is_none());
    assert!(detached(&n.c), "links detached after the release");
    // The established connection passes data again once TCP retransmits.
    assert!(
        (0..15).any(|_| n.probe.call("ping").is_ok()),
        "the outbound connection resumes"
    );
    let out = respond_ok(&["release", "-n", ns(), &id]);
    assert!(out.contains("was not isolated"), "{out}");
}

#[test]
fn an_isolation_with_a_ttl_ends_by_itself_and_expire_removes_it() {
    let e = env();
    let mut n = setup(&e, "isottl");
    let id = n.c.id().to_owned();
    let started = Instant::now();
    respond_ok(&["isolate", "-n", ns(), &id, "--ttl", "2s"]);
    // Within the TTL (quick checks: a peer connect costs its 1 s timeout).
    n.assert_refused("within the TTL");
    assert!(
        n.peer_connects(false).is_err(),
        "within the TTL: the peer connects"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "checks took {elapsed:?}: the TTL test is void"
    );
    std::thread::sleep(Duration::from_millis(2300).saturating_sub(started.elapsed()));
    // Nobody ran anything: the kernel read the end from its map.
    n.assert_reachable("after the TTL");
    let iso = isolation_of(&n.c).expect("still listed until expired");
    assert_eq!(iso["in_force"].as_bool(), Some(false), "{iso}");
    let out = respond_ok(&["expire"]);
    assert!(out.contains("removed"), "{out}");
    assert!(isolation_of(&n.c).is_none());
    assert!(detached(&n.c), "links detached after expire");
}

/// The count the container's init writes ten times a second.
fn count(c: &Container) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/root/tmp/count", c.init_pid()))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn task_status(e: &Env, c: &Container) -> String {
    e.containerd
        .tasks(ns())
        .expect("ctr tasks ls")
        .into_iter()
        .find(|(id, _, _)| id == c.id())
        .map(|(_, _, s)| s)
        .expect("the container's task")
}

#[test]
fn pause_freezes_the_container_and_resume_thaws_it() {
    let e = env();
    let img = image(&e);
    let id = driftwatch_testkit::unique_id("pause");
    let opts = RunOpts {
        args: vec![
            "sh".into(),
            "-c".into(),
            "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done".into(),
        ],
        ..RunOpts::default()
    };
    let c = Container::run(&e.containerd, ns(), &img, &id, opts).expect("run container");
    std::thread::sleep(Duration::from_millis(500));
    assert!(count(&c) > 0, "the counter runs");

    let out = respond_ok(&["pause", "-n", ns(), &id]);
    assert!(out.contains("paused"), "{out}");
    assert_eq!(task_status(&e, &c), "PAUSED");
    assert_eq!(
        driftwatch_runtime::control::frozen(c.init_pid()),
        Some(true)
    );
    let frozen_at = count(&c);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count(&c), frozen_at, "nothing runs while paused");
    // Pausing a paused container is not an error.
    respond_ok(&["pause", "-n", ns(), &id]);

    let out = respond_ok(&["resume", "-n", ns(), &id]);
    assert!(out.contains("resumed"), "{out}");
    assert_eq!(task_status(&e, &c), "RUNNING");
    assert_eq!(
        driftwatch_runtime::control::frozen(c.init_pid()),
        Some(false)
    );
    std::thread::sleep(Duration::from_millis(600));
    assert!(count(&c) > frozen_at, "the process continues");

    // A container that went away: the resolver says so (usage error), and a call that finds
    // it gone mid-way says so too.
    c.remove().expect("remove the container");
    let (code, _, stderr) = respond(&["pause", "-n", ns(), &id]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no container"), "{stderr}");
    let (code, _, stderr) = respond(&["isolate", "-n", ns(), &id]);
    assert_eq!(code, Some(2), "{stderr}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let err = rt
        .block_on(async {
            let ctl = driftwatch_runtime::control::Control::connect(
                e.containerd.socket(),
                Duration::from_secs(10),
            )
            .await
            .expect("connect");
            ctl.pause(ns(), &id).await
        })
        .expect_err("gone");
    assert!(
        matches!(err, driftwatch_runtime::control::ControlError::Gone { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("is gone"), "{err}");
}

#[test]
fn respond_says_what_is_wrong_with_exit_codes() {
    let e = env();
    let img = image(&e);
    let id = driftwatch_testkit::unique_id("respstop");
    let c =
        Container::run(&e.containerd, ns(), &img, &id, RunOpts::default()).expect("run container");
    // Usage mistakes: exit code 2.
    let (code, _, stderr) = respond(&["isolate", "-n", ns(), &id, "--ttl", "5x"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("unknown unit"), "{stderr}");
    let (code, _, stderr) = respond(&["isolate", "-n", ns(), "no-such-container-anywhere"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, stdout, _) = respond(&["release", "--cgroup-id", "1"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("was not isolated"), "{stdout}");

    // A container whose task stopped: nothing to isolate or pause (exit code 1).
    e.containerd
        .ctr_checked(ns(), &["task", "kill", "-s", "SIGKILL", &id])
        .expect("kill the task");
    let deadline = Instant::now() + Duration::from_secs(10);
    while task_status(&e, &c) != "STOPPED" {
        assert!(Instant::now() < deadline, "the task did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _, stderr) = respond(&["isolate", "-n", ns(), &id]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no running task"), "{stderr}");
    let (code, _, stderr) = respond(&["pause", "-n", ns(), &id]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot be paused"), "{stderr}");
}

/// The agent with `[response]` going to `dir`, playbooks `playbooks`, and `extra` TOML.
fn response_agent(dir: &Path, playbooks: &Path, extra: &str) -> Agent {
    let cfg = dir.join("driftwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[response]\nfile = {playbooks:?}\nevidence_dir = {:?}\nincidents_file = {:?}\n{extra}",
            dir.join("evidence"),
            dir.join("incidents.jsonl")
        ),
    )
    .expect("write config");
    Agent::start(&["--config", cfg.to_str().expect("utf-8")])
}

/// The steps of `c`'s incident as (action, result), once it has `n` of them.
fn steps_of(agent: &Agent, c: &Container, n: usize) -> (Value, Vec<(String, String)>) {
    let i = wait_incident(agent, c, n);
    let steps = step_results(&i);
    (i, steps)
}

/// A dropped copy of busybox run as `true` in the container: binary drift.
fn drift(c: &Container) {
    let (code, out) = sh(c, "cp /bin/busybox /tmp/true && /tmp/true; echo status=$?");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("status=0"), "{out}");
}

fn done(steps: &[(&str, &str)]) -> Vec<(String, String)> {
    steps
        .iter()
        .map(|(a, r)| (a.to_string(), r.to_string()))
        .collect()
}

#[test]
fn the_shipped_playbook_captures_evidence_then_isolates_until_release() {
    let e = env();
    let mut n = setup(&e, "pbiso");
    let id = n.c.id().to_owned();
    n.assert_reachable("before");
    let dir = tempfile::tempdir().expect("tempdir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/response/isolate-and-capture.yaml");
    let agent = response_agent(dir.path(), &example, "");
    drift(&n.c);
    let (incident, steps) = steps_of(&agent, &n.c, 2);
    assert_eq!(
        steps,
        done(&[("capture", "done"), ("isolate", "done")]),
        "{incident:#}"
    );
    assert!(
        incident["steps"][1]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("isolated until")),
        "{incident:#}"
    );
    n.assert_isolated("isolated by the playbook");
    let bundle = incident["evidence"][0].as_str().expect("evidence");
    assert!(Path::new(bundle).join("manifest.json").is_file());
    // It outlives the agent; release undoes it.
    assert!(agent.stop().success());
    n.assert_isolated("after the agent stopped");
    let iso = isolation_of(&n.c).expect("listed");
    assert!(iso["until"].is_string(), "the playbook's TTL: {iso}");
    respond_ok(&["release", "-n", ns(), &id]);
    n.assert_reachable("released");
}

#[test]
fn a_pause_playbook_freezes_the_container_and_notify_reaches_the_receiver() {
    let e = env();
    let n = setup(&e, "pbpause");
    let id = n.c.id().to_owned();
    let rx = driftwatch_testkit::Receiver::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pb = dir.path().join("playbooks.yaml");
    std::fs::write(
        &pb,
        format!(
            "mode: enforce\nplaybooks:\n  - name: freeze\n    match:\n      rules: [\"{DRIFT_RULE}\"]\n      containers: [\"{id}\"]\n    actions:\n      - notify: {{output: siem}}\n      - pause\n"
        ),
    )
    .expect("write playbooks");
    let extra = format!(
        "[output.http]\nname = \"siem\"\nurl = {:?}\nspool_dir = {:?}\nminimum_priority = \"emergency\"\n",
        rx.url("/"),
        dir.path().join("spool")
    );
    let agent = response_agent(dir.path(), &pb, &extra);
    drift(&n.c);
    let (incident, steps) = steps_of(&agent, &n.c, 2);
    assert_eq!(
        steps,
        done(&[("notify", "done"), ("pause", "done")]),
        "{incident:#}"
    );
    // Frozen: the cgroup freezer holds the container's processes.
    assert_eq!(
        driftwatch_runtime::control::frozen(n.c.init_pid()),
        Some(true)
    );
    // The receiver got the alert through notify, although the output's own filter
    // (minimum_priority emergency) lets no alert through.
    let got = rx.wait_accepted(1, Duration::from_secs(20));
    let body = got[0].json();
    assert_eq!(body["rule"], DRIFT_RULE);
    assert_eq!(body["output_fields"]["container.id"], id.as_str());
    assert!(agent.stop().success());
    respond_ok(&["resume", "-n", ns(), &id]);
    assert_eq!(
        driftwatch_runtime::control::frozen(n.c.init_pid()),
        Some(false)
    );
    let (code, _) = sh(&n.c, "true");
    assert_eq!(code, Some(0), "the container runs again");
}

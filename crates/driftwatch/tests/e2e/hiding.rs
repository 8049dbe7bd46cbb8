//! Binary drift that hides: execveat on a file descriptor, fileless code, scripts run by
//! interpreters, files mapped executable by the loader, LD_PRELOAD or dlopen — and no false
//! alarm for image files that were merely copied up.

use crate::harness::*;
use driftwatch_testkit::RunOpts;
use serde_json::Value;

fn f<'a>(a: &'a Value, k: &str) -> &'a Value {
    &a["output_fields"][k]
}

fn for_container(a: &Value, c: &driftwatch_testkit::Container) -> bool {
    f(a, "container.id") == c.id()
}

#[test]
fn execveat_on_a_file_descriptor_is_caught() {
    let env = env();
    let agent = Agent::start(&[]);
    let c = env.run("execveat", RunOpts::default());
    let (code, _) = sh(
        &c,
        "cp /bin/marker /tmp/fd-evil && fexec /tmp/fd-evil /tmp/fd.ran; true",
    );
    assert_eq!(code, Some(0));
    assert_eq!(sh(&c, "test -e /tmp/fd.ran").0, Some(0), "it ran");
    let a = agent.wait_alert(30, "execveat", |a| f(a, "proc.exepath") == "/tmp/fd-evil");
    assert_eq!(f(&a, "drift.via"), "exec");
    assert_eq!(f(&a, "proc.exe_origin"), "added");
    assert!(agent.stop().success());
}

#[test]
fn memfd_execution_is_caught_and_killed_under_enforce() {
    let env = env();
    let agent = Agent::start(&[]);
    let c = env.run("memfd", RunOpts::default());
    let (code, _) = sh(&c, "memexec /bin/marker marker /tmp/memfd.ran; true");
    assert_eq!(code, Some(0));
    assert_eq!(sh(&c, "test -e /tmp/memfd.ran").0, Some(0), "it ran");
    let a = agent.wait_alert(30, "memfd exec", |a| {
        for_container(a, &c) && f(a, "proc.exe_origin") == "memfd"
    });
    assert!(
        f(&a, "proc.exepath")
            .as_str()
            .unwrap_or("")
            .contains("memfd:payload"),
        "{a:#}"
    );
    assert_eq!(f(&a, "proc.is_exe_from_memfd"), true);
    assert!(agent.stop().success());

    let agent = Agent::start(&["--enforce"]);
    let (_, out) = sh(
        &c,
        "memexec /bin/marker marker /tmp/memfd2.ran; echo status=$?",
    );
    assert_eq!(out.trim(), "status=137", "killed");
    assert_ne!(
        sh(&c, "test -e /tmp/memfd2.ran").0,
        Some(0),
        "the memfd code never ran"
    );
    let a = agent.wait_alert(30, "memfd kill", |a| {
        for_container(a, &c) && f(a, "proc.exe_origin") == "memfd"
    });
    assert_eq!(f(&a, "response.action"), "killed");
    assert!(agent.stop().success());
}

#[test]
fn scripts_given_to_interpreters_are_judged_by_the_script() {
    let env = env();
    let agent = Agent::start(&[]);
    let c = env.run("scripts", RunOpts::default());
    // An image script through the interpreter and as a #! program: not drift.
    assert_eq!(sh(&c, "sh /usr/local/bin/ok.sh").1.trim(), "ok");
    assert_eq!(sh(&c, "/usr/local/bin/ok.sh").1.trim(), "ok");
    // A dropped script given to the interpreter by absolute path.
    let (code, out) = sh(&c, "printf 'echo dropped\\n' > /tmp/x.sh && sh /tmp/x.sh");
    assert_eq!((code, out.trim()), (Some(0), "dropped"));
    let a = agent.wait_alert(30, "sh /tmp/x.sh", |a| f(a, "drift.path") == "/tmp/x.sh");
    assert_eq!(f(&a, "drift.via"), "interpreter");
    assert_eq!(f(&a, "drift.origin"), "added");
    assert_eq!(
        f(&a, "proc.exe_origin"),
        "image",
        "the interpreter itself is the image's"
    );
    assert!(
        a["output"].as_str().unwrap().contains("file=/tmp/x.sh"),
        "{a:#}"
    );
    // An image script copied elsewhere: still drift, but named as a copy of the image file.
    let (code, _) = sh(
        &c,
        "cp /usr/local/bin/ok.sh /tmp/copy.sh && sh /tmp/copy.sh",
    );
    assert_eq!(code, Some(0));
    let a = agent.wait_alert(30, "copy.sh", |a| f(a, "drift.path") == "/tmp/copy.sh");
    assert_eq!(f(&a, "drift.image_copy_of"), "/usr/local/bin/ok.sh");
    let sentinel = agent.sentinel(&c);
    let drift = drift_alerts_for(&agent.alerts(), c.id());
    let paths: Vec<&str> = drift
        .iter()
        .filter_map(|a| f(a, "drift.path").as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "/tmp/x.sh",
            "/tmp/copy.sh",
            f(&sentinel, "drift.path").as_str().unwrap()
        ],
        "image scripts raised nothing"
    );
    assert!(agent.stop().success());
}

#[test]
fn copied_up_image_binaries_are_not_drift_but_relocated_copies_are() {
    let env = env();
    let agent = Agent::start(&[]);
    let c = env.run("copyup", RunOpts::default());
    // chmod and touch copy the file up to the upper layer without changing its bytes.
    let (code, _) = sh(&c, "chmod 0755 /usr/bin/hello && touch /bin/marker");
    assert_eq!(code, Some(0));
    let upper = c.upper_dir().expect("upper dir");
    assert!(upper.join("usr/bin/hello").exists(), "hello was copied up");
    assert_eq!(sh(&c, "/usr/bin/hello").1, "hello\n");
    assert_eq!(sh(&c, "/bin/marker /tmp/m.ran").0, Some(0));
    // A hard link and a copy of an image binary at a new path are drift (not image paths),
    // named as copies of the image file.
    let (code, _) = sh(&c, "ln /usr/bin/hello /tmp/hl && /tmp/hl && cp /bin/marker /tmp/cp && /tmp/cp /tmp/cp.ran; true");
    assert_eq!(code, Some(0));
    let hl = agent.wait_alert(30, "/tmp/hl", |a| f(a, "proc.exepath") == "/tmp/hl");
    assert_eq!(f(&hl, "drift.image_copy_of"), "/usr/bin/hello");
    let cp = agent.wait_alert(30, "/tmp/cp", |a| f(a, "proc.exepath") == "/tmp/cp");
    assert_eq!(f(&cp, "drift.image_copy_of"), "/bin/marker");
    let sentinel = agent.sentinel(&c);
    let paths: Vec<String> = drift_alerts_for(&agent.alerts(), c.id())
        .iter()
        .filter_map(|a| f(a, "proc.exepath").as_str().map(str::to_string))
        .collect();
    assert_eq!(
        paths,
        [
            "/tmp/hl",
            "/tmp/cp",
            f(&sentinel, "proc.exepath").as_str().unwrap()
        ],
        "the copied-up image binaries raised nothing"
    );
    assert!(agent.stop().success());
}

#[test]
fn ordinary_workload_of_a_thousand_execs_raises_nothing() {
    let env = env();
    let agent = Agent::start(&[]);
    let c = env.run("fp-guard", RunOpts::default());
    // 250 iterations x 4 execs: static and dynamic image binaries, an image library loaded with
    // dlopen, an image script through the interpreter and as a #! program.
    let (code, out) = sh(
        &c,
        "i=0; while [ $i -lt 250 ]; do /usr/bin/hello >/dev/null; /usr/bin/dynhello >/dev/null; \
         /usr/bin/dlopener /usr/lib/libmarker.so; sh /usr/local/bin/ok.sh >/dev/null; \
         i=$((i+1)); done; echo done",
    );
    assert_eq!((code, out.trim()), (Some(0), "done"));
    let sentinel = agent.sentinel(&c);
    assert_eq!(drift_alerts_for(&agent.alerts(), c.id()), vec![sentinel]);
    let execs = agent
        .metric("driftwatch_events_total{kind=\"exec\"}")
        .unwrap_or(0.0);
    assert!(execs >= 1000.0, "{execs}");
    assert!(agent.stop().success());
}

#[test]
fn relative_and_shebang_scripts_are_resolved_in_the_container() {
    let env = env();
    let agent = Agent::start(&[]);
    let c = env.run("script-cwd", RunOpts::default());
    // A relative path, resolved with the working directory the kernel reported.
    let (code, out) = sh(
        &c,
        "mkdir -p /work && cd /work && printf 'echo rel\\n' > r.sh && sh ./r.sh",
    );
    assert_eq!((code, out.trim()), (Some(0), "rel"));
    let a = agent.wait_alert(30, "relative script", |a| {
        f(a, "drift.path") == "/work/r.sh"
    });
    assert_eq!(f(&a, "drift.via"), "interpreter");
    // A dropped #! script run as a program.
    let (code, out) = sh(
        &c,
        "printf '#!/bin/sh\\necho bang\\n' > /tmp/bang.sh && chmod +x /tmp/bang.sh && /tmp/bang.sh",
    );
    assert_eq!((code, out.trim()), (Some(0), "bang"));
    let a = agent.wait_alert(30, "shebang script", |a| {
        f(a, "drift.path") == "/tmp/bang.sh"
    });
    assert_eq!(f(&a, "drift.via"), "shebang");
    assert_eq!(f(&a, "drift.origin"), "added");
    assert!(agent.stop().success());
}

#[test]
fn files_mapped_executable_by_the_loader_preload_or_dlopen_are_caught() {
    let env = env();
    let agent = Agent::start(&[]);
    let c = env.run("mappings", RunOpts::default());
    // New bytes (not a copy of any image file): append to an image library and program.
    let (code, _) = sh(
        &c,
        "cat /usr/lib/libmarker.so > /tmp/evil.so && echo >> /tmp/evil.so && \
         cat /usr/bin/dynhello > /tmp/dyn && echo >> /tmp/dyn && chmod +x /tmp/dyn",
    );
    assert_eq!(code, Some(0));
    // The dynamic loader running a dropped program.
    let (code, out) = sh(&c, "/lib64/ld-linux-x86-64.so.2 /tmp/dyn");
    assert_eq!((code, out.trim()), (Some(0), "dynhello"));
    let a = agent.wait_alert(30, "loader", |a| f(a, "drift.path") == "/tmp/dyn");
    assert_eq!(f(&a, "drift.via"), "loader");
    assert_eq!(f(&a, "drift.origin"), "added");
    assert_eq!(
        f(&a, "proc.exe_origin"),
        "image",
        "the loader is the image's"
    );
    assert!(
        f(&a, "evt.type") == "mmap" || f(&a, "evt.type") == "mprotect",
        "{a:#}"
    );
    // LD_PRELOAD of a dropped library into an image program: its constructor runs.
    let (code, _) = sh(
        &c,
        "MARKER=/tmp/preload.ran LD_PRELOAD=/tmp/evil.so /usr/bin/dynhello",
    );
    assert_eq!(code, Some(0));
    assert_eq!(sh(&c, "test -e /tmp/preload.ran").0, Some(0));
    let a = agent.wait_alert(30, "preload", |a| {
        f(a, "drift.path") == "/tmp/evil.so" && f(a, "proc.name") == "dynhello"
    });
    assert_eq!(f(&a, "drift.via"), "mapping");
    // dlopen of a dropped library.
    assert_eq!(sh(&c, "dlopener /tmp/evil.so").0, Some(0));
    agent.wait_alert(30, "dlopen", |a| {
        f(a, "drift.path") == "/tmp/evil.so" && f(a, "proc.name") == "dlopener"
    });
    assert!(agent.stop().success());

    // Under --enforce the process dies before the library's code runs.
    let agent = Agent::start(&["--enforce"]);
    let (_, out) = sh(
        &c,
        "MARKER=/tmp/preload2.ran LD_PRELOAD=/tmp/evil.so /usr/bin/dynhello; echo status=$?",
    );
    assert!(out.trim().ends_with("status=137"), "{out}");
    assert_ne!(
        sh(&c, "test -e /tmp/preload2.ran").0,
        Some(0),
        "the constructor never ran"
    );
    let (_, out) = sh(&c, "/lib64/ld-linux-x86-64.so.2 /tmp/dyn; echo status=$?");
    assert_eq!(out.trim(), "status=137");
    let a = agent.wait_alert(30, "preload kill", |a| {
        f(a, "drift.path") == "/tmp/evil.so" && f(a, "response.action") == "killed"
    });
    assert_eq!(f(&a, "drift.via"), "mapping");
    // Image programs and libraries still run.
    assert_eq!(sh(&c, "/usr/bin/dynhello").1.trim(), "dynhello");
    assert_eq!(sh(&c, "dlopener /usr/lib/libmarker.so").0, Some(0));
    assert!(agent.stop().success());
}

/// The id of the newest BPF map called `name` (the e2e tests run one agent at a time, and map
/// ids only grow).
fn newest_map_id(name: &str) -> u64 {
    let out = std::process::Command::new("bpftool")
        .args(["map", "show", "-j"])
        .output()
        .expect("bpftool");
    let maps: Value = serde_json::from_slice(&out.stdout).expect("bpftool json");
    maps.as_array()
        .expect("a list")
        .iter()
        .filter(|m| m["name"] == name)
        .filter_map(|m| m["id"].as_u64())
        .max()
        .unwrap_or_else(|| panic!("no map {name}"))
}

fn bpftool(args: &[&str]) -> Value {
    let out = std::process::Command::new("bpftool")
        .args(args)
        .arg("-j")
        .output()
        .expect("bpftool");
    assert!(
        out.status.success(),
        "bpftool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn hex_bytes(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("bytes")
        .iter()
        .map(|b| b.as_str().expect("hex byte").to_string())
        .collect()
}

#[test]
fn sensor_tampering_is_detected_reported_and_repaired() {
    let env = env();
    let agent = Agent::start(&["--enforce"]);
    let c = env.run("tamper", RunOpts::default());
    agent.wait_metric("driftwatch_policy_entries", 15, |v| v >= 1.0);
    assert_eq!(sh(&c, "cp /bin/marker /tmp/t").0, Some(0));

    // Someone with CAP_BPF switches enforcement off behind the agent's back.
    let cfg = newest_map_id("dw_config").to_string();
    let cur = bpftool(&["map", "lookup", "id", &cfg, "key", "0", "0", "0", "0"]);
    let mut value = hex_bytes(&cur["value"]);
    for b in &mut value[4..8] {
        *b = "0".to_string();
    }
    let mut args = vec![
        "map", "update", "id", &cfg, "key", "0", "0", "0", "0", "value",
    ];
    args.extend(value.iter().map(String::as_str));
    bpftool(&args);
    let a = agent.wait_alert(10, "config tamper", |a| {
        a["rule"] == "Driftwatch Sensor Tampered"
            && a["output"].as_str().unwrap_or("").contains("dw_config")
    });
    assert_eq!(a["priority"], "Critical");
    // Repaired: enforcement works again.
    let (_, out) = sh(&c, "/tmp/t /tmp/t.ran; echo status=$?");
    assert_eq!(out.trim(), "status=137", "enforcement restored");

    // Someone deletes the container's policy entry.
    let pol = newest_map_id("dw_policy").to_string();
    let entries = bpftool(&["map", "dump", "id", &pol]);
    let key = hex_bytes(&entries[0]["key"]);
    let mut args = vec!["map", "delete", "id", &pol, "key"];
    args.extend(key.iter().map(String::as_str));
    bpftool(&args);
    agent.wait_alert(10, "policy tamper", |a| {
        a["rule"] == "Driftwatch Sensor Tampered"
            && a["output"].as_str().unwrap_or("").contains("was deleted")
    });
    let (_, out) = sh(&c, "/tmp/t /tmp/t.ran; echo status=$?");
    assert_eq!(out.trim(), "status=137", "policy restored");
    assert!(
        agent
            .metric("driftwatch_tamper_detections_total")
            .unwrap_or(0.0)
            >= 2.0
    );
    // The canary exec keeps arriving: no "not delivering" finding.
    std::thread::sleep(std::time::Duration::from_secs(11));
    assert!(
        !agent
            .alerts()
            .iter()
            .any(|a| a["output"].as_str().unwrap_or("").contains("canary")),
        "{:#?}",
        agent.alerts()
    );
    assert!(agent.stop().success());
}

#[test]
fn copied_up_image_files_still_run_under_enforce_and_drift_never_does() {
    let env = env();
    let c = env.run("gate", RunOpts::default());
    // Copied up before the agent starts: a library (mapped, never exec'd: judged by the
    // agent's scan of the upper layer) and a program.
    let (code, _) = sh(&c, "chmod 0644 /usr/lib/libmarker.so && touch /bin/marker");
    assert_eq!(code, Some(0));
    let agent = Agent::start(&["--enforce"]);
    agent.wait_metric("driftwatch_gate_allowed_files", 30, |v| v >= 2.0);
    let (code, out) = sh(
        &c,
        "MARKER=/tmp/lib.ran dlopener /usr/lib/libmarker.so; echo lib=$?; \
         /bin/marker /tmp/m0.ran; echo m0=$?",
    );
    assert_eq!(code, Some(0));
    assert_eq!(
        out, "lib=0\nm0=0\n",
        "copied up before the agent: still run"
    );
    assert_eq!(
        sh(&c, "test -e /tmp/lib.ran && test -e /tmp/m0.ran").0,
        Some(0)
    );
    // A library chmod'ed again while the agent runs: its new ctime voids the verdict, and the
    // file sensor's chmod event has it judged again before it is mapped.
    let judged = agent
        .metric("driftwatch_gate_unchanged_total")
        .unwrap_or(0.0);
    assert_eq!(sh(&c, "chmod 0600 /usr/lib/libmarker.so").0, Some(0));
    agent.wait_metric("driftwatch_gate_unchanged_total", 30, |v| v > judged);
    let (_, out) = sh(
        &c,
        "MARKER=/tmp/lib2.ran dlopener /usr/lib/libmarker.so; echo lib=$?",
    );
    assert_eq!(out, "lib=0\n", "re-judged after the chmod");
    // Copied up while the agent runs, also right after the same binary ran from the image
    // (its image verdict must not carry over to the copy).
    let (code, out) = sh(
        &c,
        "/usr/bin/hello; chmod 0700 /usr/bin/hello && /usr/bin/hello; echo hello=$?; \
         touch /usr/local/bin/ok.sh && /usr/local/bin/ok.sh; echo script=$?",
    );
    assert_eq!(code, Some(0));
    assert_eq!(out, "hello\nhello\nhello=0\nok\nscript=0\n");
    // The same files changed afterwards: drift, killed before they run.
    let (_, out) = sh(
        &c,
        "echo >> /usr/bin/hello; /usr/bin/hello; echo hello=$?; \
         printf '#!/bin/sh\\ntouch /tmp/script.ran\\n' > /usr/local/bin/ok.sh; \
         /usr/local/bin/ok.sh; echo script=$?",
    );
    assert_eq!(out, "hello=137\nscript=137\n", "modified files are killed");
    assert_ne!(
        sh(&c, "test -e /tmp/script.ran").0,
        Some(0),
        "the interpreter was killed before it ran a line of the drifted script"
    );
    let hello = agent.wait_alert(30, "modified hello", |a| {
        for_container(a, &c) && f(a, "proc.exepath") == "/usr/bin/hello"
    });
    assert_eq!(f(&hello, "proc.exe_origin"), "modified");
    assert_eq!(f(&hello, "response.action"), "killed");
    let script = agent.wait_alert(30, "doomed script", |a| {
        for_container(a, &c) && f(a, "drift.path") == "/usr/local/bin/ok.sh"
    });
    assert_eq!(f(&script, "drift.via"), "shebang");
    assert_eq!(f(&script, "response.action"), "killed");
    // Nothing else: the copied-up files raised no alert.
    let paths: Vec<String> = drift_alerts_for(&agent.alerts(), c.id())
        .iter()
        .filter_map(|a| f(a, "drift.path").as_str().map(str::to_string))
        .collect();
    assert_eq!(
        paths,
        ["/usr/bin/hello", "/usr/local/bin/ok.sh"],
        "{paths:?}"
    );
    assert!(
        agent
            .metric("driftwatch_gate_unchanged_total")
            .unwrap_or(0.0)
            >= 4.0
    );
    assert!(agent.stop().success());
}

#[test]
fn an_exec_held_by_a_stopped_agent_is_released_when_the_agent_dies() {
    use rustix::process::Signal;
    let env = env();
    let c = env.run("gate-death", RunOpts::default());
    let agent = Agent::start(&["--enforce"]);
    // Make sure the gate watches the container: a copied-up file is judged.
    assert_eq!(
        sh(&c, "touch /bin/marker && /bin/marker /tmp/a.ran").0,
        Some(0)
    );
    agent.wait_metric("driftwatch_gate_unchanged_total", 30, |v| v >= 1.0);
    agent.signal(Signal::STOP);
    let (code, out) = std::thread::scope(|s| {
        let (tx, held) = std::sync::mpsc::channel();
        let c = &c;
        s.spawn(move || {
            let _ = tx.send(sh(c, "/bin/marker /tmp/held.ran; echo rc=$?"));
        });
        assert!(
            held.recv_timeout(std::time::Duration::from_secs(2))
                .is_err(),
            "the exec waits for the stopped agent's verdict"
        );
        agent.signal(Signal::KILL);
        held.recv_timeout(std::time::Duration::from_secs(20))
            .expect("released when the agent died")
    });
    assert_eq!((code, out.as_str()), (Some(0), "rc=0\n"));
    assert_eq!(sh(&c, "test -e /tmp/held.ran").0, Some(0));
}

#[test]
fn a_drifted_elf_interpreter_of_an_image_program_is_caught_before_it_runs() {
    let env = env();
    let agent = Agent::start(&[]);
    let c = env.run("interp", RunOpts::default());
    // /usr/bin/oddinterp (image) names /tmp/ld.so as its dynamic loader; the kernel maps that
    // file itself at exec, no mmap call. A copy of the image's loader there: not image code.
    let (code, out) = sh(
        &c,
        "cp /lib64/ld-linux-x86-64.so.2 /tmp/ld.so && MARKER=/tmp/odd.ran oddinterp",
    );
    assert_eq!((code, out.as_str()), (Some(0), "odd\n"));
    let a = agent.wait_alert(30, "interpreter", |a| {
        for_container(a, &c) && f(a, "drift.path") == "/tmp/ld.so"
    });
    assert_eq!(f(&a, "drift.via"), "loader");
    assert_eq!(f(&a, "evt.type"), "execve");
    assert_eq!(f(&a, "drift.origin"), "added");
    assert!(
        f(&a, "drift.image_copy_of")
            .as_str()
            .is_some_and(|p| p.ends_with("/ld-linux-x86-64.so.2")),
        "{a:#}"
    );
    assert_eq!(f(&a, "proc.exepath"), "/usr/bin/oddinterp");
    assert_eq!(f(&a, "proc.exe_origin"), "image");
    assert!(agent.stop().success());

    // Under --enforce the process dies before the loader runs an instruction.
    let agent = Agent::start(&["--enforce"]);
    let (_, out) = sh(&c, "MARKER=/tmp/odd2.ran oddinterp; echo status=$?");
    assert_eq!(out.trim(), "status=137");
    assert_ne!(sh(&c, "test -e /tmp/odd2.ran").0, Some(0), "nothing ran");
    let a = agent.wait_alert(30, "interpreter kill", |a| {
        for_container(a, &c) && f(a, "drift.path") == "/tmp/ld.so"
    });
    assert_eq!(f(&a, "response.action"), "killed");
    // The image's own loader, as every dynamic image program uses it, raises nothing.
    assert_eq!(sh(&c, "dynhello").1.trim(), "dynhello");
    // A last drifted exec (killed): its alert means everything before it was processed.
    sh(&c, "cp /bin/marker /tmp/sentinel && /tmp/sentinel; true");
    agent.wait_alert(30, "sentinel", |a| {
        for_container(a, &c) && f(a, "drift.path") == "/tmp/sentinel"
    });
    let paths: Vec<String> = drift_alerts_for(&agent.alerts(), c.id())
        .iter()
        .filter_map(|a| f(a, "drift.path").as_str().map(str::to_string))
        .collect();
    assert_eq!(paths, ["/tmp/ld.so", "/tmp/sentinel"], "{paths:?}");
    assert!(agent.stop().success());
}

#[test]
fn a_read_only_root_is_not_held_by_the_exec_gate() {
    let env = env();
    let ro = env.run(
        "gate-ro",
        RunOpts {
            read_only: true,
            ..RunOpts::default()
        },
    );
    let rw = env.run("gate-rw", RunOpts::default());
    let agent = Agent::start(&["--enforce"]);
    assert_ne!(
        sh(&ro, "touch /bin/marker").0,
        Some(0),
        "the root is read-only"
    );
    let held = agent.metric("driftwatch_gate_events_total").unwrap_or(0.0);
    assert_eq!(
        sh(&ro, "/usr/bin/hello; /usr/bin/hello").1,
        "hello\nhello\n"
    );
    assert_eq!(
        agent.metric("driftwatch_gate_events_total").unwrap_or(0.0),
        held,
        "execs in a read-only root are not held"
    );
    assert_eq!(sh(&rw, "/usr/bin/hello").1, "hello\n");
    assert!(
        agent.metric("driftwatch_gate_events_total").unwrap_or(0.0) > held,
        "execs in a writable root are"
    );
    assert!(agent.stop().success());
}

#[test]
fn a_drifted_script_given_to_an_interpreter_is_killed_before_it_runs_under_enforce() {
    let env = env();
    let c = env.run("interp-arg", RunOpts::default());
    let (code, _) = sh(
        &c,
        "printf 'touch /tmp/abs.ran\\n' > /tmp/abs.sh && printf 'touch /tmp/rel.ran\\n' > /tmp/rel.sh",
    );
    assert_eq!(code, Some(0));
    let agent = Agent::start(&["--enforce"]);
    // An absolute and a relative script path; the interpreter never reads a line of either.
    let (_, out) = sh(
        &c,
        "sh /tmp/abs.sh; echo abs=$?; cd /tmp && sh -e rel.sh; echo rel=$?",
    );
    assert_eq!(out, "abs=137\nrel=137\n");
    assert_ne!(
        sh(&c, "test -e /tmp/abs.ran || test -e /tmp/rel.ran").0,
        Some(0),
        "no line of the drifted scripts ran"
    );
    for path in ["/tmp/abs.sh", "/tmp/rel.sh"] {
        let a = agent.wait_alert(30, path, |a| {
            for_container(a, &c) && f(a, "drift.path") == path
        });
        assert_eq!(f(&a, "drift.via"), "interpreter");
        assert_eq!(f(&a, "response.action"), "killed", "{a:#}");
    }
    // Image scripts and inline code through the same interpreter still run.
    let (_, out) = sh(&c, "sh /usr/local/bin/ok.sh; sh -c 'echo inline'");
    assert_eq!(out, "ok\ninline\n");
    assert!(agent.metric("driftwatch_gate_doomed_total").unwrap_or(0.0) >= 2.0);
    assert!(agent.stop().success());
}

//! Live file drift: file-changing syscalls in containers reach the rules (issue 5, item 4).

use crate::harness::*;
use driftwatch_testkit::{Container, RunOpts};
use serde_json::Value;

const FS_WRITE: &str = "Container File System Write";
const BIN_DIR: &str = "Binary Directory Modified in Container";
const PKG_DB: &str = "Package Database Modified in Container";

fn field<'a>(a: &'a Value, k: &str) -> &'a Value {
    &a["output_fields"][k]
}

fn tags(a: &Value) -> Vec<&str> {
    a["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn in_container(a: &Value, c: &Container) -> bool {
    field(a, "container.id") == c.id()
}

/// A rule file that reports every file event of the test's containers with its arguments.
fn catch_all_rules(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("files.yaml");
    std::fs::write(
        &path,
        r#"
- rule: Any File Change
  desc: every file event in a container (test)
  condition: >
    evt.type in (open, openat, openat2, creat, unlink, unlinkat, rename, renameat, renameat2,
    link, linkat, symlink, symlinkat, chmod, fchmod, fchmodat, chown, fchown, lchown, fchownat,
    mkdir, mkdirat, rmdir) and container.id != host and
    (fd.name startswith /work or fd.filename = deepfile)
  output: >
    %evt.type %fd.name res=%evt.res raw=%evt.rawres newpath=%evt.arg.newpath
    mode=%evt.arg.mode flags=%evt.arg.flags target=%evt.arg.target dir=%fd.directory
    file=%fd.filename layer=%fd.layer upper=%fd.is_upper_layer uid=%evt.arg.uid
  priority: NOTICE
  tags: [test]
"#,
    )
    .expect("write rules");
    path
}

#[test]
fn writes_below_etc_and_new_binaries_fire_the_file_rules() {
    let env = env();
    let agent = Agent::start(&[]);
    let c = env.run("files-etc", RunOpts::default());
    // An image file (copied up by the write), a new file in /etc, a new program in /usr/bin.
    let (code, _) = sh(
        &c,
        "echo 'dw:x:1:1::/:/bin/sh' >> /etc/passwd && echo x > /etc/dwtest.conf \
         && cp /bin/marker /usr/bin/newtool && echo scratch > /tmp/quiet; true",
    );
    assert_eq!(code, Some(0));
    let passwd = agent.wait_alert(30, "/etc/passwd write", |a| {
        a["rule"] == FS_WRITE && in_container(a, &c) && field(a, "fd.name") == "/etc/passwd"
    });
    assert_eq!(passwd["priority"], "Notice");
    assert!(tags(&passwd).contains(&"file_drift"), "{passwd:#}");
    assert_eq!(field(&passwd, "user.name"), "root");
    assert_eq!(field(&passwd, "user.uid"), 0);
    assert_eq!(field(&passwd, "container.name"), c.id());
    assert_eq!(field(&passwd, "proc.name"), "sh");
    assert_eq!(field(&passwd, "fd.layer"), "copied-up");
    assert!(
        ["open", "openat"].contains(&field(&passwd, "evt.type").as_str().unwrap_or("")),
        "{passwd:#}"
    );
    let conf = agent.wait_alert(30, "/etc/dwtest.conf", |a| {
        a["rule"] == FS_WRITE && in_container(a, &c) && field(a, "fd.name") == "/etc/dwtest.conf"
    });
    assert_eq!(field(&conf, "fd.layer"), "upper");
    let tool = agent.wait_alert(30, "/usr/bin/newtool", |a| {
        a["rule"] == BIN_DIR && in_container(a, &c) && field(a, "fd.name") == "/usr/bin/newtool"
    });
    assert_eq!(tool["priority"], "Warning");
    assert!(tags(&tool).contains(&"file_drift"));
    assert_eq!(field(&tool, "proc.name"), "cp");
    assert_eq!(field(&tool, "fd.layer"), "upper");
    agent.wait_alert(30, "/usr/bin/newtool write", |a| {
        a["rule"] == FS_WRITE && field(a, "fd.name") == "/usr/bin/newtool"
    });
    agent.sentinel(&c);
    let alerts = agent.alerts();
    assert!(
        !alerts.iter().any(|a| field(a, "fd.name")
            .as_str()
            .is_some_and(|n| n.starts_with("/tmp/"))),
        "writes below /tmp are quiet"
    );
    assert!(
        agent
            .metric("driftwatch_events_total{kind=\"file\"}")
            .unwrap_or(0.0)
            >= 3.0,
        "{}",
        agent.metrics()
    );
    assert_eq!(
        agent.metric("driftwatch_ringbuf_lost_events_total{kind=\"file\"}"),
        Some(0.0)
    );
    assert!(agent.stop().success());
}

#[test]
fn unlink_rename_chmod_mkdir_symlink_are_reported_with_resolved_paths() {
    let env = env();
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = catch_all_rules(dir.path());
    let agent = Agent::start(&["--rules", rules.to_str().expect("utf-8")]);
    let c = env.run("files-ops", RunOpts::default());
    // Relative names from a working directory: the agent resolves them against the cwd.
    let (code, out) = sh(
        &c,
        "mkdir /work && cd /work && mkdir sub && echo a > a && mv a b && chmod 4755 b \
         && ln -s ../etc/passwd l && chown 12:34 b && rm b && rmdir sub; echo rc=$?",
    );
    assert!(out.contains("rc=0"), "{out} {code:?}");
    let find = |types: &[&str], name: &str| {
        let types: Vec<String> = types.iter().map(|t| (*t).to_string()).collect();
        agent.wait_alert(30, &format!("{types:?} {name}"), move |a| {
            a["rule"] == "Any File Change"
                && types.iter().any(|t| field(a, "evt.type") == t.as_str())
                && field(a, "fd.name") == name
        })
    };
    let mkdir = find(&["mkdir", "mkdirat"], "/work/sub");
    assert_eq!(field(&mkdir, "evt.res"), "SUCCESS");
    assert_eq!(field(&mkdir, "fd.directory"), "/work");
    assert_eq!(field(&mkdir, "fd.filename"), "sub");
    let create = find(&["open", "openat", "creat"], "/work/a");
    assert_eq!(field(&create, "fd.layer"), "upper");
    assert_eq!(field(&create, "fd.is_upper_layer"), true);
    assert!(
        field(&create, "evt.arg.flags")
            .as_str()
            .is_some_and(|f| f.starts_with("O_WRONLY") && f.contains("O_CREAT")),
        "{create:#}"
    );
    let mv = find(&["rename", "renameat", "renameat2"], "/work/a");
    assert_eq!(field(&mv, "evt.arg.newpath"), "/work/b");
    let chmod = find(&["chmod", "fchmodat", "fchmod"], "/work/b");
    assert!(
        field(&chmod, "evt.arg.mode")
            .as_str()
            .is_some_and(|m| m.contains("S_ISUID") && m.contains("S_IXUSR")),
        "{chmod:#}"
    );
    let ln = find(&["symlink", "symlinkat"], "/work/l");
    assert_eq!(field(&ln, "evt.arg.target"), "../etc/passwd");
    let chown = find(&["chown", "lchown", "fchownat", "fchown"], "/work/b");
    assert_eq!(field(&chown, "evt.arg.uid"), "12");
    find(&["unlink", "unlinkat"], "/work/b");
    find(&["rmdir", "unlinkat"], "/work/sub");
    assert!(agent.stop().success());
}

#[test]
fn hostile_file_names_are_reported_escaped() {
    let env = env();
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = catch_all_rules(dir.path());
    let agent = Agent::start(&["--rules", rules.to_str().expect("utf-8")]);
    let c = env.run("files-hostile", RunOpts::default());
    // A newline and a byte that is not UTF-8; then a path longer than the kernel walk keeps
    // (31 components of 150 bytes: 4.6 KiB, created one directory at a time).
    let comp = "d".repeat(150);
    let script = format!(
        "mkdir /work && cd /work && printf x > \"$(printf 'new\\nline\\377')\" \
         && for i in $(seq 1 31); do mkdir {comp} && cd -P {comp} || exit 9; done \
         && echo deep > deepfile; echo rc=$?"
    );
    let (_, out) = sh(&c, &script);
    assert!(out.contains("rc=0"), "{out}");
    let hostile = agent.wait_alert(30, "hostile name", |a| {
        field(a, "fd.name") == "/work/new\nline\\xff"
    });
    assert!(
        hostile["output"]
            .as_str()
            .is_some_and(|o| o.contains("/work/new\nline\\xff")),
        "JSON keeps the newline escaped by JSON and the invalid byte as \\xff: {hostile:#}"
    );
    // stdout (--json: one alert per line) keeps it on one line, both escapes visible.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !agent.stdout().contains(r"/work/new\nline\\xff") {
        assert!(
            std::time::Instant::now() < deadline,
            "escaped name not on stdout"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The deep file: the kernel walk is cut short, the alert says as much as it knows and the
    // agent goes on.
    let deep = agent.wait_alert(30, "deep file", |a| {
        field(a, "fd.filename") == "deepfile"
            || field(a, "fd.name")
                .as_str()
                .is_some_and(|n| n.ends_with("/deepfile"))
    });
    assert!(
        field(&deep, "fd.name")
            .as_str()
            .is_some_and(|n| n.len() > 3000 && n.ends_with(&format!("{comp}/deepfile"))),
        "{}",
        field(&deep, "fd.name")
    );
    agent.sentinel(&c);
    assert_eq!(agent.metric("driftwatch_decode_errors_total"), Some(0.0));
    assert!(agent.stop().success());
}

#[test]
fn falco_write_below_etc_and_binary_dir_rules_work_unchanged() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers/falco-rules");
    let sandbox = dir.join("falco-sandbox_rules.yaml");
    if !sandbox.is_file() {
        println!("skipped: {} is absent", sandbox.display());
        return;
    }
    let env = env();
    let agent = Agent::start(&[
        "--no-builtin-rules",
        "--skip-unknown",
        "--rules",
        sandbox.to_str().expect("utf-8"),
    ]);
    let c = env.run("files-falco", RunOpts::default());
    let (code, _) = sh(
        &c,
        "echo 'dw:x:1:1::/:/bin/sh' >> /etc/passwd && cp /bin/marker /usr/bin/falcotool; true",
    );
    assert_eq!(code, Some(0));
    let etc = agent.wait_alert(30, "Write below etc", |a| {
        a["rule"] == "Write below etc" && in_container(a, &c)
    });
    assert_eq!(field(&etc, "fd.name"), "/etc/passwd");
    assert_eq!(field(&etc, "user.name"), "root");
    assert!(
        etc["output"]
            .as_str()
            .is_some_and(|o| o.contains("file=/etc/passwd")),
        "{etc:#}"
    );
    let bin = agent.wait_alert(30, "Write below binary dir", |a| {
        a["rule"] == "Write below binary dir" && in_container(a, &c)
    });
    assert_eq!(field(&bin, "fd.name"), "/usr/bin/falcotool");
    assert!(agent.stop().success());
}

#[test]
fn dpkg_install_and_etc_edit_in_debian_are_detected_live() {
    let e = env();
    let agent = Agent::start(&[]);
    let c = debian_after_dpkg_install(&e, "filesdeb", "dwtest-live");
    let pkg = agent.wait_alert(60, "package database", |a| {
        a["rule"] == PKG_DB && in_container(a, &c)
    });
    assert_eq!(pkg["priority"], "Error");
    assert!(tags(&pkg).contains(&"package_drift"), "{pkg:#}");
    assert!(!tags(&pkg).contains(&"file_drift"));
    let fd_name = field(&pkg, "fd.name").as_str().unwrap_or("");
    let newpath = field(&pkg, "evt.arg.newpath").as_str().unwrap_or("");
    assert!(
        fd_name.starts_with("/var/lib/dpkg/") || newpath.starts_with("/var/lib/dpkg/"),
        "{pkg:#}"
    );
    // dpkg's info files for the new package.
    agent.wait_alert(60, "dpkg info of the package", |a| {
        a["rule"] == PKG_DB
            && in_container(a, &c)
            && [field(a, "fd.name"), field(a, "evt.arg.newpath")]
                .iter()
                .any(|v| {
                    v.as_str()
                        .is_some_and(|p| p.starts_with("/var/lib/dpkg/info/dwtest-live."))
                })
    });
    agent.wait_alert(60, "the new binary", |a| {
        a["rule"] == BIN_DIR
            && in_container(a, &c)
            && [field(a, "fd.name"), field(a, "evt.arg.newpath")]
                .iter()
                .any(|v| *v == "/usr/bin/dwtest-live")
    });
    let etc = agent.wait_alert(60, "/etc/bash.bashrc", |a| {
        a["rule"] == FS_WRITE && in_container(a, &c) && field(a, "fd.name") == "/etc/bash.bashrc"
    });
    assert_eq!(field(&etc, "fd.layer"), "copied-up");
    assert!(field(&etc, "container.image.repository").is_string());
    assert!(agent.stop().success());
}

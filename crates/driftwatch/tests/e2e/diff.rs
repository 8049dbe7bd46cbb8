//! `driftwatch diff` against real containerd containers: files, classification, exit codes,
//! and package drift in a debootstrapped Debian image.

use crate::harness::{debian_after_dpkg_install, env, ns, sh};
use driftwatch_testkit::{Container, RunOpts};
use serde_json::Value;

fn diff_bin(args: &[&str]) -> (Option<i32>, String, String) {
    crate::harness::cli("diff", args)
}

fn diff_json(c: &Container) -> (Option<i32>, Value) {
    let (code, stdout, stderr) = diff_bin(&["--json", "-n", c.namespace(), c.id()]);
    let v = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}\nstderr: {stderr}"));
    (code, v)
}

fn file<'a>(v: &'a Value, path: &str) -> &'a Value {
    v["files"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["path"] == path))
        .unwrap_or_else(|| panic!("{path} not in {:#}", v["files"]))
}

#[test]
fn diff_of_a_fresh_container_is_clean_and_drift_is_found() {
    let e = env();
    let c = e.run("diff", RunOpts::default());
    let (code, v) = diff_json(&c);
    assert_eq!(code, Some(0), "fresh container: {v:#}");
    assert_eq!(v["summary"]["drift"], false);
    assert_eq!(v["container"]["id"], c.id());

    let script = "cp /bin/busybox /tmp/evil && echo 'evil:x:0:0::/:/bin/sh' >> /etc/passwd \
        && chmod 600 /etc/group && rm /usr/local/bin/ok.sh && touch /usr/bin/hello \
        && mkdir -p /var/log/app && echo hi > /var/log/app/x.log \
        && ln -sf /etc/shadow /usr/local/bin/link && printf 'x' > \"/tmp/new
line\"";
    let (rc, _) = sh(&c, script);
    assert_eq!(rc, Some(0));
    let (code, v) = diff_json(&c);
    assert_eq!(code, Some(1), "{v:#}");
    let f = file(&v, "/tmp/evil");
    assert_eq!(
        (f["change"].as_str(), f["category"].as_str()),
        (Some("added"), Some("binary"))
    );
    assert_eq!(f["container"]["sha256"].as_str().map(str::len), Some(64));
    let f = file(&v, "/etc/passwd");
    assert_eq!(
        (
            f["change"].as_str(),
            f["category"].as_str(),
            f["content_changed"].as_bool()
        ),
        (Some("modified"), Some("config"), Some(true))
    );
    let f = file(&v, "/etc/group");
    assert_eq!(
        (f["change"].as_str(), f["content_changed"].as_bool()),
        (Some("metadata"), Some(false))
    );
    assert_eq!(file(&v, "/usr/local/bin/ok.sh")["change"], "deleted");
    let f = file(&v, "/usr/bin/hello");
    assert_eq!(
        (f["change"].as_str(), f["drift"].as_bool()),
        (Some("copied-up"), Some(false)),
        "touch is not drift"
    );
    assert_eq!(file(&v, "/var/log/app/x.log")["category"], "log");
    assert_eq!(
        file(&v, "/usr/local/bin/link")["container"]["link_target"],
        "/etc/shadow"
    );
    assert!(file(&v, "/tmp/new\nline")["path"].is_string());
    let cfg = v["config"].as_array().expect("config");
    assert!(
        cfg.iter().any(|f| f["field"] == "file"
            && f["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("/etc/passwd"))),
        "{cfg:#?}"
    );

    // The table: sorted by category, hostile names escaped, same exit code.
    let (code, table, _) = diff_bin(&["-n", ns(), c.id()]);
    assert_eq!(code, Some(1));
    let bin = table.find("binary   added").expect(&table);
    let cfgpos = table.find("config   modified").expect(&table);
    assert!(bin < cfgpos, "{table}");
    assert!(table.contains("/tmp/new\\nline"), "{table}");
    assert!(table.contains("DRIFT"));

    // Errors are exit code 2.
    let (code, _, err) = diff_bin(&["-n", ns(), "no-such-container-xyz"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no container"), "{err}");
}

#[test]
fn package_drift_in_a_debian_container() {
    let e = env();
    let c = debian_after_dpkg_install(&e, "diffdeb", "dwtest-hello");
    let (code, v) = diff_json(&c);
    assert_eq!(code, Some(1));
    let changes = v["packages"]["changes"].as_array().expect("changes");
    assert!(
        changes.iter().any(|p| p["manager"] == "dpkg"
            && p["name"] == "dwtest-hello"
            && p["change"] == "added"
            && p["new_version"] == "1.0"),
        "{changes:#?}"
    );
    assert_eq!(changes.len(), 1, "only the new package: {changes:#?}");
    let f = file(&v, "/usr/bin/dwtest-hello");
    assert_eq!(
        (f["category"].as_str(), f["package"].as_str()),
        (Some("binary"), Some("dwtest-hello"))
    );
    assert_eq!(file(&v, "/etc/bash.bashrc")["category"], "config");
    let unmanaged = v["packages"]["unmanaged"].as_array().expect("unmanaged");
    assert!(
        unmanaged.iter().any(|u| u["path"] == "/etc/bash.bashrc"
            && u["package"] == "bash"
            && u["conffile"] == true),
        "{unmanaged:#?}"
    );
    assert!(
        !unmanaged
            .iter()
            .any(|u| u["path"] == "/usr/bin/dwtest-hello"),
        "installed through dpkg"
    );
    assert!(v["packages"]["managers"]
        .as_array()
        .is_some_and(|m| m.iter().any(|x| x == "dpkg")));
    // Host bind mount shows in the configuration drift.
    assert!(
        v["config"]
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f["field"] == "mounts")),
        "{:#}",
        v["config"]
    );
}

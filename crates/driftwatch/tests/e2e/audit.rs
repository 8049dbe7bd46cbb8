//! `driftwatch audit` as a user runs it: files, directories and stdin; exit codes; the table,
//! `--json` and `--sarif`. Needs no containerd: manifests are generated here.

use crate::harness::*;
use serde_json::Value;
use std::io::Write as _;
use std::process::{Command, Stdio};

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A Deployment that passes the restricted level and the immutability checks.
fn good(name: &str, ns: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      securityContext:\n        runAsNonRoot: true\n        seccompProfile: {{type: RuntimeDefault}}\n      containers:\n      - name: app\n        image: registry.example/{name}:1.0@{DIGEST}\n        securityContext:\n          allowPrivilegeEscalation: false\n          readOnlyRootFilesystem: true\n          capabilities: {{drop: [ALL]}}\n"
    )
}

fn restricted_ns(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    pod-security.kubernetes.io/enforce: restricted\n")
}

fn audit_stdin(args: &[&str], input: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(agent_bin())
        .arg("audit")
        .args(args)
        .env("DRIFTWATCH_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run driftwatch audit");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn audit_exit_codes_clean_findings_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.yaml");
    std::fs::write(
        &clean,
        format!("{}---\n{}", restricted_ns("shop"), good("web", "shop")),
    )
    .unwrap();
    let (code, out, err) = cli("audit", &["-f", clean.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("Deployment/shop/web") && out.contains("passes"),
        "{out}"
    );
    assert!(out.contains("0 finding(s)"), "{out}");

    let bad = dir.path().join("bad.yaml");
    let text = good("web", "shop").replace("runAsNonRoot: true", "runAsNonRoot: false");
    std::fs::write(&bad, &text).unwrap();
    let (code, out, err) = cli("audit", &["-f", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}{err}");
    let line = text
        .lines()
        .position(|l| l.contains("runAsNonRoot: false"))
        .unwrap()
        + 1;
    let want = format!("{}:{line}:23: error [runAsNonRoot]", bad.display());
    assert!(out.contains(&want), "want {want} in\n{out}");
    assert!(
        out.contains("(--level: namespace not in the input): fails runAsNonRoot"),
        "{out}"
    );

    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "kind: Pod\nmetadata:\n  name: x\n  labels: {a: b\n",
    )
    .unwrap();
    let (code, out, err) = cli("audit", &["-f", broken.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}{err}");
    let msg = err
        .lines()
        .find(|l| l.starts_with("driftwatch: error:"))
        .expect("error line");
    let prefix = format!("driftwatch: error: {}:", broken.display());
    assert!(msg.starts_with(&prefix), "{msg}");
    let pos: Vec<&str> = msg[prefix.len()..].splitn(3, ':').collect();
    assert!(
        pos[0].parse::<u32>().is_ok() && pos[1].parse::<u32>().is_ok(),
        "{msg}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let (code, _, err) = cli("audit", &["-f", "/nonexistent/m.yaml"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/nonexistent/m.yaml"), "{err}");
    let (code, _, err) = cli(
        "audit",
        &["-f", clean.to_str().unwrap(), "--pss-version", "1.30"],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("v1.N"), "{err}");
}

#[test]
fn audit_reads_stdin_and_directories() {
    // stdin, as `helm template … | driftwatch audit -f -` gives it.
    let input = format!("# Source: chart/templates/deploy.yaml\n{}---\n# Source: chart/templates/empty.yaml\n---\n{}", good("a", "x"), good("b", "x").replace(&format!("@{DIGEST}"), ""));
    let (code, out, err) = audit_stdin(&["-f", "-"], &input);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("<stdin>:") && out.contains("[immutability.digestPinned]"),
        "{out}"
    );
    assert!(!out.contains("Deployment/x/a:"), "a passes: {out}");

    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("apps/web");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(dir.path().join("ns.yaml"), restricted_ns("x")).unwrap();
    std::fs::write(sub.join("a.yml"), good("a", "x")).unwrap();
    std::fs::write(sub.join("b.json"), r#"{"kind":"Pod","metadata":{"name":"b","namespace":"x"},"spec":{"hostNetwork":true,"containers":[]}}"#).unwrap();
    std::fs::write(sub.join("README.md"), "not: [yaml").unwrap();
    let (code, out, err) = cli("audit", &["-f", dir.path().to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(1), "{out}{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["summary"]["files"], 3, "{out}");
    let f = &v["findings"].as_array().expect("findings");
    assert_eq!(f.len(), 1, "{out}");
    assert_eq!(f[0]["check"], "hostNamespaces");
    assert!(f[0]["file"].as_str().unwrap().ends_with("apps/web/b.json"));
    assert_eq!(f[0]["fix"]["patch"][0]["op"], "replace");
    assert_eq!(f[0]["fix"]["patch"][0]["path"], "/spec/hostNetwork");
    let w: Vec<(&str, &str, bool)> = v["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["object"]["name"].as_str().unwrap(),
                w["level_source"].as_str().unwrap(),
                w["passes"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(w, vec![("a", "namespace", true), ("b", "namespace", false)]);
}

#[test]
fn audit_sarif_is_2_1_0_with_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.yaml");
    let text = format!(
        "{}---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: bare\n",
        good("web", "shop").replace(
            "          readOnlyRootFilesystem: true\n",
            "          privileged: true\n"
        )
    );
    std::fs::write(&m, &text).unwrap();
    let (code, out, err) = cli("audit", &["-f", m.to_str().unwrap(), "--sarif"]);
    assert_eq!(code, Some(1), "{err}");
    let s: Value = serde_json::from_str(&out).expect("sarif is json");
    assert_eq!(s["version"], "2.1.0");
    let run = &s["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "driftwatch");
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let results = run["results"].as_array().expect("results");
    let ids: Vec<&str> = results
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"privileged")
            && ids.contains(&"immutability.readOnlyRootFilesystem")
            && ids.contains(&"namespace.enforceMissing"),
        "{ids:?}"
    );
    for r in results {
        let id = r["ruleId"].as_str().unwrap();
        assert!(rules.contains(&id), "{id} has no rule");
        assert!(matches!(r["level"].as_str(), Some("error" | "warning")));
        assert!(!r["message"]["text"].as_str().unwrap().is_empty());
        let loc = &r["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], m.to_str().unwrap());
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
        assert!(loc["region"]["startColumn"].as_u64().unwrap() >= 1);
        assert!(
            r["properties"]["jsonPatch"]
                .as_array()
                .is_some_and(|p| !p.is_empty()),
            "{r}"
        );
    }
    let p = results
        .iter()
        .find(|r| r["ruleId"] == "privileged")
        .unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("privileged: true"))
        .unwrap()
        + 1;
    assert_eq!(
        p["locations"][0]["physicalLocation"]["region"]["startLine"],
        line
    );
    let change = &p["fixes"][0]["artifactChanges"][0];
    assert!(p["fixes"][0]["description"]["text"].is_string());
    assert_eq!(change["artifactLocation"]["uri"], m.to_str().unwrap());
    let rep = &change["replacements"][0];
    assert_eq!(rep["deletedRegion"]["startLine"], line);
    assert_eq!(rep["insertedContent"]["text"], "false");
}

#[test]
fn audit_lists_its_checks() {
    let (code, out, err) = cli("audit", &["--list-checks"]);
    assert_eq!(code, Some(0), "{err}");
    for id in [
        "privileged",
        "hostProbesAndHostLifecycle",
        "seccompProfile_restricted",
        "capabilities_restricted",
        "immutability.digestPinned",
        "ignore.missingReason",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(id)),
            "{id} missing:\n{out}"
        );
    }
}

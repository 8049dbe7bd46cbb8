//! Manifests generated here for every check, failing and passing, with the expected check ids
//! and lines; namespaces, ignores, Lists and every pod-template kind; malformed and random
//! input.

use crate::model::{Level, Version};
use crate::{audit, render, AuditError, LevelSource, Options, Report, Source};

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Parts of a generated pod; each is YAML lines at its own indentation (added as is).
#[derive(Default, Clone)]
struct PodParts {
    annotations: Vec<String>,
    /// Under `spec:` (2 spaces).
    spec: Vec<String>,
    /// Under `spec.securityContext:` (4 spaces).
    pod_sc: Vec<String>,
    /// Under the container (4 spaces).
    ctr: Vec<String>,
    /// Under the container's `securityContext:` (6 spaces).
    ctr_sc: Vec<String>,
    image: Option<String>,
    no_pod_sc_defaults: bool,
}

fn lines(s: &[&str]) -> Vec<String> {
    s.iter().map(|l| (*l).to_string()).collect()
}

/// A Pod that passes every check at restricted, changed by `p`.
fn pod(p: &PodParts) -> String {
    let mut y = String::from("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: ns\n");
    if !p.annotations.is_empty() {
        y.push_str("  annotations:\n");
        for a in &p.annotations {
            y.push_str(&format!("    {a}\n"));
        }
    }
    y.push_str("spec:\n");
    for l in &p.spec {
        y.push_str(&format!("  {l}\n"));
    }
    y.push_str("  securityContext:\n");
    if !p.no_pod_sc_defaults {
        y.push_str("    runAsNonRoot: true\n    seccompProfile:\n      type: RuntimeDefault\n");
    }
    for l in &p.pod_sc {
        y.push_str(&format!("    {l}\n"));
    }
    if p.no_pod_sc_defaults && p.pod_sc.is_empty() {
        y.push_str("    {}\n");
    }
    let image = p
        .image
        .clone()
        .unwrap_or_else(|| format!("registry.example/app:1.0@{DIGEST}"));
    y.push_str(&format!(
        "  containers:\n  - name: app\n    image: {image}\n"
    ));
    for l in &p.ctr {
        y.push_str(&format!("    {l}\n"));
    }
    y.push_str(
        "    securityContext:\n      allowPrivilegeEscalation: false\n      readOnlyRootFilesystem: true\n",
    );
    if !p.ctr_sc.iter().any(|l| l.starts_with("capabilities")) {
        y.push_str("      capabilities:\n        drop: [\"ALL\"]\n");
    }
    for l in &p.ctr_sc {
        y.push_str(&format!("      {l}\n"));
    }
    y
}

fn run(text: &str, opts: &Options) -> Report {
    audit(
        &[Source {
            name: "m.yaml".into(),
            text: text.into(),
        }],
        opts,
    )
    .unwrap_or_else(|e| panic!("audit fails: {e}\n{text}"))
}

fn at(level: Level) -> Options {
    Options {
        level,
        ..Options::default()
    }
}

/// (check id, line) of every finding.
fn hits(r: &Report) -> Vec<(String, u32)> {
    r.findings
        .iter()
        .map(|f| (f.check.clone(), f.line))
        .collect()
}

/// The 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> u32 {
    let i = text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in\n{text}"));
    u32::try_from(i + 1).expect("small")
}

#[test]
fn the_generated_base_pod_passes_every_check() {
    let y = pod(&PodParts::default());
    let r = run(&y, &at(Level::Restricted));
    assert!(r.findings.is_empty(), "{}\n{y}", render::table(&r));
    assert_eq!(r.workloads.len(), 1);
    assert!(r.workloads[0].passes);
    assert_eq!(
        r.workloads[0].level_source,
        LevelSource::NamespaceNotInInput
    );
}

struct Case {
    check: &'static str,
    level: Level,
    fail: PodParts,
    /// The text on the line the finding must point at.
    needle: &'static str,
    pass: PodParts,
}

fn parts(f: impl FnOnce(&mut PodParts)) -> PodParts {
    let mut p = PodParts::default();
    f(&mut p);
    p
}

fn cases() -> Vec<Case> {
    use Level::{Baseline, Restricted};
    vec![
        Case {
            check: "privileged",
            level: Baseline,
            fail: parts(|p| p.ctr_sc = lines(&["privileged: true"])),
            needle: "privileged: true",
            pass: parts(|p| p.ctr_sc = lines(&["privileged: false"])),
        },
        Case {
            check: "hostNamespaces",
            level: Baseline,
            fail: parts(|p| p.spec = lines(&["hostPID: true"])),
            needle: "hostPID",
            pass: parts(|p| p.spec = lines(&["hostPID: false", "hostNetwork: false"])),
        },
        Case {
            check: "hostPathVolumes",
            level: Baseline,
            fail: parts(|p| {
                p.spec = lines(&["volumes:", "- name: h", "  hostPath:", "    path: /etc"])
            }),
            needle: "hostPath:",
            pass: parts(|p| p.spec = lines(&["volumes:", "- name: e", "  emptyDir: {}"])),
        },
        Case {
            check: "restrictedVolumes",
            level: Restricted,
            fail: parts(|p| {
                p.spec = lines(&[
                    "volumes:",
                    "- name: n",
                    "  nfs:",
                    "    server: x",
                    "    path: /",
                ])
            }),
            needle: "nfs:",
            pass: parts(|p| {
                p.spec = lines(&[
                    "volumes:",
                    "- name: c",
                    "  configMap: {name: c}",
                    "- name: s",
                    "  secret: {secretName: s}",
                    "- name: pvc",
                    "  persistentVolumeClaim: {claimName: x}",
                    "- name: d",
                ])
            }),
        },
        Case {
            check: "hostPorts",
            level: Baseline,
            fail: parts(|p| p.ctr = lines(&["ports:", "- containerPort: 80", "  hostPort: 8080"])),
            needle: "hostPort: 8080",
            pass: parts(|p| p.ctr = lines(&["ports:", "- containerPort: 80", "  hostPort: 0"])),
        },
        Case {
            check: "capabilities_baseline",
            level: Baseline,
            fail: parts(|p| p.ctr_sc = lines(&["capabilities:", "  add: [CHOWN, SYS_ADMIN]"])),
            needle: "SYS_ADMIN",
            pass: parts(|p| p.ctr_sc = lines(&["capabilities:", "  add: [CHOWN, KILL]"])),
        },
        Case {
            check: "capabilities_restricted",
            level: Restricted,
            fail: parts(|p| {
                p.ctr_sc = lines(&["capabilities:", "  drop: [ALL]", "  add:", "  - CHOWN"])
            }),
            needle: "- CHOWN",
            pass: parts(|p| {
                p.ctr_sc = lines(&[
                    "capabilities:",
                    "  drop: [ALL]",
                    "  add: [NET_BIND_SERVICE]",
                ])
            }),
        },
        Case {
            check: "capabilities_restricted",
            level: Restricted,
            fail: parts(|p| p.ctr_sc = lines(&["capabilities:", "  drop: [NET_RAW]"])),
            needle: "drop: [NET_RAW]",
            pass: parts(|p| p.ctr_sc = lines(&["capabilities:", "  drop: [NET_RAW, ALL]"])),
        },
        Case {
            check: "appArmorProfile",
            level: Baseline,
            fail: parts(|p| p.ctr_sc = lines(&["appArmorProfile:", "  type: Unconfined"])),
            needle: "type: Unconfined",
            pass: parts(|p| p.ctr_sc = lines(&["appArmorProfile:", "  type: Localhost"])),
        },
        Case {
            check: "appArmorProfile",
            level: Baseline,
            fail: parts(|p| {
                p.annotations =
                    lines(&["container.apparmor.security.beta.kubernetes.io/app: unconfined"])
            }),
            needle: "apparmor",
            pass: parts(|p| {
                p.annotations =
                    lines(&["container.apparmor.security.beta.kubernetes.io/app: runtime/default"])
            }),
        },
        Case {
            check: "seLinuxOptions",
            level: Baseline,
            fail: parts(|p| p.pod_sc = lines(&["seLinuxOptions:", "  type: spc_t"])),
            needle: "type: spc_t",
            pass: parts(|p| {
                p.pod_sc = lines(&[
                    "seLinuxOptions:",
                    "  type: container_engine_t",
                    "  level: s0:c1",
                ])
            }),
        },
        Case {
            check: "seLinuxOptions",
            level: Baseline,
            fail: parts(|p| p.ctr_sc = lines(&["seLinuxOptions:", "  user: system_u"])),
            needle: "user: system_u",
            pass: parts(|p| p.ctr_sc = lines(&["seLinuxOptions:", "  type: container_t"])),
        },
        Case {
            check: "procMount",
            level: Baseline,
            fail: parts(|p| p.ctr_sc = lines(&["procMount: Unmasked"])),
            needle: "procMount",
            // From v1.35 a pod in a user namespace may unmask /proc at baseline.
            pass: parts(|p| {
                p.spec = lines(&["hostUsers: false"]);
                p.ctr_sc = lines(&["procMount: Unmasked"]);
            }),
        },
        Case {
            check: "procMount_restricted",
            level: Restricted,
            fail: parts(|p| {
                p.spec = lines(&["hostUsers: false"]);
                p.ctr_sc = lines(&["procMount: Unmasked"]);
            }),
            needle: "procMount",
            pass: parts(|p| p.ctr_sc = lines(&["procMount: Default"])),
        },
        Case {
            check: "seccompProfile_baseline",
            level: Baseline,
            fail: parts(|p| p.ctr_sc = lines(&["seccompProfile:", "  type: Unconfined"])),
            needle: "type: Unconfined",
            pass: parts(|p| {
                p.ctr_sc = lines(&[
                    "seccompProfile:",
                    "  type: Localhost",
                    "  localhostProfile: x.json",
                ])
            }),
        },
        Case {
            check: "seccompProfile_restricted",
            level: Restricted,
            fail: parts(|p| {
                p.no_pod_sc_defaults = true;
                p.pod_sc = lines(&["runAsNonRoot: true"]);
            }),
            needle: "    securityContext:",
            pass: parts(|p| {
                p.no_pod_sc_defaults = true;
                p.pod_sc = lines(&["runAsNonRoot: true"]);
                p.ctr_sc = lines(&["seccompProfile: {type: RuntimeDefault}"]);
            }),
        },
        Case {
            check: "sysctls",
            level: Baseline,
            fail: parts(|p| {
                p.pod_sc = lines(&[
                    "sysctls:",
                    "- name: net.ipv4.tcp_syncookies",
                    "  value: '1'",
                    "- name: kernel.msgmax",
                    "  value: '1'",
                ])
            }),
            needle: "kernel.msgmax",
            pass: parts(|p| {
                p.pod_sc = lines(&[
                    "sysctls:",
                    "- name: net.ipv4.tcp_notsent_lowat",
                    "  value: '1'",
                ])
            }),
        },
        Case {
            check: "hostProbesAndHostLifecycle",
            level: Baseline,
            fail: parts(|p| {
                p.ctr = lines(&[
                    "livenessProbe:",
                    "  httpGet:",
                    "    host: 10.0.0.1",
                    "    port: 80",
                ])
            }),
            needle: "host: 10.0.0.1",
            pass: parts(|p| p.ctr = lines(&["livenessProbe:", "  httpGet:", "    port: 80"])),
        },
        Case {
            check: "hostProbesAndHostLifecycle",
            level: Baseline,
            fail: parts(|p| {
                p.ctr = lines(&[
                    "lifecycle:",
                    "  preStop:",
                    "    tcpSocket: {host: example.com, port: 1}",
                ])
            }),
            needle: "tcpSocket",
            pass: parts(|p| {
                p.ctr = lines(&["lifecycle:", "  preStop:", "    exec: {command: [x]}"])
            }),
        },
        Case {
            check: "windowsHostProcess",
            level: Baseline,
            fail: parts(|p| p.pod_sc = lines(&["windowsOptions:", "  hostProcess: true"])),
            needle: "hostProcess",
            pass: parts(|p| p.pod_sc = lines(&["windowsOptions:", "  hostProcess: false"])),
        },
        Case {
            check: "allowPrivilegeEscalation",
            level: Restricted,
            fail: parts(|p| p.ctr_sc = lines(&["allowPrivilegeEscalation: true"])),
            needle: "allowPrivilegeEscalation: true",
            pass: parts(|p| p.spec = lines(&["os: {name: windows}"])),
        },
        Case {
            check: "runAsNonRoot",
            level: Restricted,
            fail: parts(|p| p.ctr_sc = lines(&["runAsNonRoot: false"])),
            needle: "runAsNonRoot: false",
            pass: parts(|p| p.ctr_sc = lines(&["runAsNonRoot: true"])),
        },
        Case {
            check: "runAsNonRoot",
            level: Restricted,
            fail: parts(|p| {
                p.no_pod_sc_defaults = true;
                p.pod_sc = lines(&["seccompProfile: {type: RuntimeDefault}"]);
            }),
            needle: "    securityContext:",
            pass: parts(|p| {
                p.no_pod_sc_defaults = true;
                p.pod_sc = lines(&["seccompProfile: {type: RuntimeDefault}"]);
                p.spec = lines(&["hostUsers: false"]);
            }),
        },
        Case {
            check: "runAsUser",
            level: Restricted,
            fail: parts(|p| p.pod_sc = lines(&["runAsUser: 0"])),
            needle: "runAsUser: 0",
            pass: parts(|p| p.pod_sc = lines(&["runAsUser: 1000"])),
        },
    ]
}

#[test]
fn every_pss_check_fails_and_passes_on_generated_pods() {
    let mut seen = std::collections::BTreeSet::new();
    for c in cases() {
        let y = pod(&c.fail);
        let r = run(&y, &at(c.level));
        let want = (c.check.to_string(), line_of(&y, c.needle));
        assert!(
            hits(&r).contains(&want),
            "{}: want {want:?}, got {:?}\n{y}",
            c.check,
            hits(&r)
        );
        let pss: Vec<_> = hits(&r)
            .into_iter()
            .filter(|(id, _)| !id.starts_with("immutability."))
            .collect();
        assert!(
            pss.iter().all(|(id, _)| id == c.check),
            "{}: other checks fail too: {pss:?}\n{y}",
            c.check
        );
        assert!(!r.workloads[0].passes, "{}", c.check);
        assert_eq!(r.workloads[0].failed_checks, vec![c.check.to_string()]);
        let y = pod(&c.pass);
        let r = run(&y, &at(c.level));
        assert!(
            r.findings.is_empty(),
            "{} pass case: {:?}\n{y}",
            c.check,
            hits(&r)
        );
        assert!(r.workloads[0].passes);
        seen.insert(c.check);
    }
    for c in crate::pss::CHECKS {
        assert!(seen.contains(c.id), "no case for {}", c.id);
    }
}

#[test]
fn findings_fix_the_manifest_when_applied() {
    // Every fix's patch, applied to the object as JSON, makes that finding go away.
    for c in cases() {
        let y = pod(&c.fail);
        let r = run(&y, &at(c.level));
        let f = r
            .findings
            .iter()
            .find(|f| f.check == c.check)
            .unwrap_or_else(|| panic!("{}: no finding", c.check));
        let mut obj = to_json(&y);
        for op in &f.fix.patch {
            apply(&mut obj, op);
        }
        let fixed = serde_json::to_string(&obj).expect("json");
        let r = run(&fixed, &at(c.level));
        assert!(
            !r.findings.iter().any(|g| g.check == c.check),
            "{}: the fix {:?} leaves {:?}",
            c.check,
            f.fix.patch,
            hits(&r)
        );
    }
}

fn to_json(y: &str) -> serde_json::Value {
    let docs = crate::yaml::parse_stream(y).expect("yaml");
    fn conv(n: &crate::yaml::Node) -> serde_json::Value {
        use crate::yaml::Value as V;
        match &n.value {
            V::Scalar { text, plain } => {
                if *plain {
                    if let Some(b) = n.bool() {
                        return b.into();
                    }
                    if let Some(i) = n.int() {
                        return i.into();
                    }
                }
                text.clone().into()
            }
            V::Seq(items) => items.iter().map(conv).collect(),
            V::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.str().unwrap_or("").to_string(), conv(v)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
    conv(&docs[0])
}

/// A small RFC 6902 add/replace/remove for the test.
fn apply(doc: &mut serde_json::Value, op: &crate::fix::PatchOp) {
    let toks: Vec<String> = op
        .path
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let (last, parents) = toks.split_last().expect("path");
    let mut cur = doc;
    for t in parents {
        cur = match cur {
            serde_json::Value::Array(a) => &mut a[t.parse::<usize>().expect("index")],
            v => v.get_mut(t.as_str()).expect("parent exists"),
        };
    }
    match (op.op, cur) {
        ("remove", serde_json::Value::Array(a)) => {
            a.remove(last.parse::<usize>().expect("index"));
        }
        ("remove", serde_json::Value::Object(m)) => {
            m.remove(last.as_str());
        }
        (_, serde_json::Value::Array(a)) if last == "-" => {
            a.push(op.value.clone().expect("value"));
        }
        (_, serde_json::Value::Object(m)) => {
            m.insert(last.clone(), op.value.clone().expect("value"));
        }
        (o, v) => panic!("cannot {o} {} in {v}", op.path),
    }
}

#[test]
fn old_versions_apply_old_checks() {
    // hostProbesAndHostLifecycle exists from v1.34 only.
    let c = &cases()[17];
    assert_eq!(c.check, "hostProbesAndHostLifecycle");
    let y = pod(&c.fail);
    let opts = Options {
        level: Level::Baseline,
        version: Version::parse("v1.33"),
        immutability: false,
    };
    assert!(run(&y, &opts).findings.is_empty());
    // The v1.37 sysctl is unsafe before v1.37.
    let y = pod(&parts(|p| {
        p.pod_sc = lines(&[
            "sysctls:",
            "- name: net.ipv4.tcp_notsent_lowat",
            "  value: '1'",
        ])
    }));
    let opts = Options {
        version: Version::parse("v1.36"),
        ..at(Level::Baseline)
    };
    assert_eq!(
        hits(&run(&y, &opts)),
        vec![("sysctls".into(), line_of(&y, "lowat"))]
    );
    // Before v1.35 hostUsers: false relaxes nothing, and procMount is the baseline check.
    let y = pod(&parts(|p| {
        p.spec = lines(&["hostUsers: false"]);
        p.ctr_sc = lines(&["procMount: Unmasked"]);
    }));
    let opts = Options {
        version: Version::parse("v1.34"),
        ..at(Level::Restricted)
    };
    assert_eq!(
        hits(&run(&y, &opts)),
        vec![("procMount".into(), line_of(&y, "procMount"))]
    );
}

#[test]
fn init_and_ephemeral_containers_are_checked() {
    let y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  initContainers:\n  - name: init\n    image: a@{DIGEST}\n    securityContext: {{privileged: true}}\n  containers:\n  - name: app\n    image: a@{DIGEST}\n  ephemeralContainers:\n  - name: debug\n    image: a@{DIGEST}\n    securityContext:\n      privileged: true\n"
    );
    let r = run(
        &y,
        &Options {
            immutability: false,
            ..at(Level::Baseline)
        },
    );
    assert_eq!(
        hits(&r),
        vec![("privileged".into(), 8), ("privileged".into(), 16)]
    );
    assert!(r.findings[1]
        .reason
        .contains("ephemeral container \"debug\""));
}

#[test]
fn every_pod_template_kind_and_lists_are_found() {
    let ctr = format!(
        "containers: [{{name: c, image: \"a@{DIGEST}\", securityContext: {{privileged: true}}}}]"
    );
    let docs = [
        format!("kind: Pod\nmetadata: {{name: a}}\nspec: {{{ctr}}}\n"),
        format!("kind: Deployment\nmetadata: {{name: b}}\nspec:\n  template:\n    spec: {{{ctr}}}\n"),
        format!("kind: ReplicaSet\nmetadata: {{name: c}}\nspec:\n  template:\n    spec: {{{ctr}}}\n"),
        format!("kind: StatefulSet\nmetadata: {{name: d}}\nspec:\n  template:\n    spec: {{{ctr}}}\n"),
        format!("kind: DaemonSet\nmetadata: {{name: e}}\nspec:\n  template:\n    spec: {{{ctr}}}\n"),
        format!("kind: Job\nmetadata: {{name: f}}\nspec:\n  template:\n    spec: {{{ctr}}}\n"),
        format!("kind: ReplicationController\nmetadata: {{name: g}}\nspec:\n  template:\n    spec: {{{ctr}}}\n"),
        format!("kind: PodTemplate\nmetadata: {{name: h}}\ntemplate:\n  spec: {{{ctr}}}\n"),
        format!("kind: CronJob\nmetadata: {{name: i}}\nspec:\n  schedule: '* * * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec: {{{ctr}}}\n"),
        format!("kind: List\nitems:\n- kind: Pod\n  metadata: {{name: j}}\n  spec: {{{ctr}}}\n- kind: ConfigMap\n  metadata: {{name: k}}\n"),
        "kind: Service\nmetadata: {name: l}\n".to_string(),
    ];
    let text = docs.join("---\n");
    let r = run(
        &text,
        &Options {
            immutability: false,
            ..at(Level::Baseline)
        },
    );
    let names: Vec<&str> = r.findings.iter().map(|f| f.object.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
    );
    assert_eq!(r.other_kinds, 2);
    assert_eq!(r.objects, 12);
    // The patch path goes into the object.
    let cron = r
        .findings
        .iter()
        .find(|f| f.object.kind == "CronJob")
        .expect("cronjob");
    assert_eq!(
        cron.fix.patch[0].path,
        "/spec/jobTemplate/spec/template/spec/containers/0/securityContext/privileged"
    );
    let cron_line = line_of(&text, "kind: CronJob") + 7;
    assert_eq!(cron.line, cron_line);
}

#[test]
fn namespaces_give_levels_and_versions() {
    let w = |ns: &str| {
        format!("kind: Pod\nmetadata: {{name: p-{ns}, namespace: {ns}}}\nspec:\n  containers:\n  - name: c\n    image: a@{DIGEST}\n    securityContext: {{privileged: true}}\n")
    };
    let text = [
        "kind: Namespace\nmetadata:\n  name: open\n  labels:\n    pod-security.kubernetes.io/enforce: privileged\n".to_string(),
        "kind: Namespace\nmetadata:\n  name: base\n  labels:\n    pod-security.kubernetes.io/enforce: baseline\n    pod-security.kubernetes.io/enforce-version: v1.30\n".to_string(),
        "kind: Namespace\nmetadata:\n  name: bare\n".to_string(),
        w("open"),
        w("base"),
        w("bare"),
        w("elsewhere"),
    ]
    .join("---\n");
    let r = run(
        &text,
        &Options {
            immutability: false,
            ..at(Level::Baseline)
        },
    );
    let ws: Vec<(String, Level, LevelSource, String, bool)> = r
        .workloads
        .iter()
        .map(|w| {
            (
                w.object.name.clone(),
                w.level,
                w.level_source,
                w.version.clone(),
                w.passes,
            )
        })
        .collect();
    assert_eq!(
        ws,
        vec![
            (
                "p-open".into(),
                Level::Privileged,
                LevelSource::Namespace,
                "latest".into(),
                true
            ),
            (
                "p-base".into(),
                Level::Baseline,
                LevelSource::Namespace,
                "v1.30".into(),
                false
            ),
            (
                "p-bare".into(),
                Level::Baseline,
                LevelSource::NamespaceWithoutEnforce,
                "latest".into(),
                false
            ),
            (
                "p-elsewhere".into(),
                Level::Baseline,
                LevelSource::NamespaceNotInInput,
                "latest".into(),
                false
            ),
        ]
    );
    let missing: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.check == "namespace.enforceMissing")
        .collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].object.name, "bare");
    assert_eq!(missing[0].line, line_of(&text, "name: bare"));
    assert_eq!(missing[0].fix.patch[0].path, "/metadata/labels");
    // An explicit --pss-version wins over the namespace's.
    let r = run(
        &text,
        &Options {
            version: Version::parse("v1.20"),
            immutability: false,
            ..at(Level::Baseline)
        },
    );
    assert!(r.workloads.iter().all(|w| w.version == "v1.20"));
}

#[test]
fn invalid_namespace_labels_are_findings() {
    let text = "kind: Namespace\nmetadata:\n  name: x\n  labels:\n    pod-security.kubernetes.io/enforce: strict\n    pod-security.kubernetes.io/enforce-version: \"1.30\"\n";
    let r = run(text, &at(Level::Restricted));
    assert_eq!(
        hits(&r),
        vec![
            ("namespace.invalidLevel".into(), 5),
            ("namespace.invalidVersion".into(), 6)
        ]
    );
}

#[test]
fn ignores_need_a_reason() {
    let base = pod(&parts(|p| p.ctr_sc = lines(&["privileged: true"])));
    let with = |ann: &str| {
        base.replace(
            "  namespace: ns\n",
            &format!("  namespace: ns\n  annotations:\n{ann}"),
        )
    };
    let opts = Options {
        immutability: false,
        ..at(Level::Baseline)
    };
    // With a reason: ignored, and the workload passes.
    let y = with("    driftwatch.io/ignore: privileged\n    driftwatch.io/ignore-reason: the node agent needs it\n");
    let r = run(&y, &opts);
    assert!(r.findings.is_empty(), "{:?}", hits(&r));
    assert_eq!(r.ignored.len(), 1);
    assert!(r.workloads[0].passes);
    // Without: the ignore is a finding and ignores nothing.
    let y = with("    driftwatch.io/ignore: privileged, immutability.mutableTag\n");
    let r = run(&y, &opts);
    assert_eq!(
        hits(&r),
        vec![
            (
                "ignore.missingReason".into(),
                line_of(&y, "driftwatch.io/ignore")
            ),
            ("privileged".into(), line_of(&y, "privileged: true")),
        ]
    );
    // An unknown id is a finding too.
    let y = with("    driftwatch.io/ignore: privilegd\n    driftwatch.io/ignore-reason: typo\n");
    let r = run(&y, &opts);
    let ids: Vec<String> = hits(&r).into_iter().map(|h| h.0).collect();
    assert_eq!(ids, vec!["ignore.unknownCheck", "privileged"]);
}

#[test]
fn immutability_checks() {
    let opts = at(Level::Privileged);
    let y = pod(&parts(|p| p.image = Some("nginx".into())));
    let r = run(&y, &opts);
    let l = line_of(&y, "image: nginx");
    assert_eq!(
        hits(&r),
        vec![
            ("immutability.digestPinned".into(), l),
            ("immutability.mutableTag".into(), l),
        ],
        "no tag defaults to Always, which agrees"
    );
    assert!(r.findings[0].fix.patch[0]
        .value
        .as_ref()
        .and_then(|v| v.as_str())
        .is_some_and(|v| v.starts_with("docker.io/library/nginx@sha256:")));
    let y = pod(&parts(|p| p.image = Some("nginx:1.25".into())));
    let ids: Vec<String> = hits(&run(&y, &opts)).into_iter().map(|h| h.0).collect();
    assert_eq!(
        ids,
        vec!["immutability.digestPinned", "immutability.imagePullPolicy"]
    );
    let y = pod(&parts(|p| {
        p.image = Some("nginx:latest".into());
        p.ctr = lines(&["imagePullPolicy: IfNotPresent"]);
    }));
    let r = run(&y, &opts);
    assert_eq!(
        hits(&r),
        vec![
            (
                "immutability.digestPinned".into(),
                line_of(&y, "image: nginx")
            ),
            (
                "immutability.mutableTag".into(),
                line_of(&y, "image: nginx")
            ),
            (
                "immutability.imagePullPolicy".into(),
                line_of(&y, "IfNotPresent")
            ),
        ]
    );
    // A digest: any pull policy is right, the tag does not matter.
    let y = pod(&parts(|p| {
        p.image = Some(format!("nginx:latest@{DIGEST}"));
        p.ctr = lines(&["imagePullPolicy: IfNotPresent"]);
    }));
    assert!(run(&y, &opts).findings.is_empty());
    let y = pod(&parts(|p| p.image = Some("Bad//Ref".into())));
    let ids: Vec<String> = hits(&run(&y, &opts)).into_iter().map(|h| h.0).collect();
    assert_eq!(ids, vec!["immutability.invalidImage"]);
}

#[test]
fn read_only_root_filesystem_says_what_to_mount() {
    let y = pod(&PodParts::default()).replace("      readOnlyRootFilesystem: true\n", "");
    let r = run(&y, &at(Level::Restricted));
    assert_eq!(
        hits(&r),
        vec![(
            "immutability.readOnlyRootFilesystem".into(),
            line_of(&y, "- name: app")
        )]
    );
    let f = &r.findings[0];
    let paths: Vec<&str> = f.fix.patch.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "/spec/containers/0/securityContext/readOnlyRootFilesystem",
            "/spec/containers/0/volumeMounts",
            "/spec/volumes",
        ]
    );
    assert!(f.fix.description.contains("emptyDir") && f.fix.description.contains("/tmp"));
    // The SARIF edits, applied to the text, give a manifest that passes.
    let fixed = apply_edits(&y, &f.fix.edits);
    let r = run(&fixed, &at(Level::Restricted));
    assert!(r.findings.is_empty(), "{:?}\n{fixed}", hits(&r));
}

/// Applies text edits (1-based line/column, exclusive end), last first.
fn apply_edits(text: &str, edits: &[crate::fix::TextEdit]) -> String {
    let offset = |p: crate::yaml::Pos| -> usize {
        let mut off = 0;
        for (i, l) in text.split_inclusive('\n').enumerate() {
            if i + 1 == p.line as usize {
                return off
                    + l.char_indices()
                        .nth(p.column as usize - 1)
                        .map_or(l.len(), |(b, _)| b);
            }
            off += l.len();
        }
        off
    };
    let mut es: Vec<_> = edits.iter().collect();
    es.sort_by_key(|e| std::cmp::Reverse(e.start));
    let mut s = text.to_string();
    for e in es {
        s.replace_range(offset(e.start)..offset(e.end), &e.text);
    }
    s
}

#[test]
fn text_edits_fix_every_case_they_cover() {
    let mut covered = 0;
    for c in cases() {
        let y = pod(&c.fail);
        let r = run(&y, &at(c.level));
        let f = r
            .findings
            .iter()
            .find(|f| f.check == c.check)
            .expect("finding");
        if !f.fix.complete_edits {
            continue;
        }
        covered += 1;
        let fixed = apply_edits(&y, &f.fix.edits);
        let r = audit(
            &[Source {
                name: "m.yaml".into(),
                text: fixed.clone(),
            }],
            &at(c.level),
        )
        .unwrap_or_else(|e| panic!("{}: edited text does not parse: {e}\n{fixed}", c.check));
        assert!(
            !r.findings.iter().any(|g| g.check == c.check),
            "{}: edits leave {:?}\n{fixed}",
            c.check,
            hits(&r)
        );
    }
    assert!(covered >= 18, "only {covered} cases have text edits");
}

#[test]
fn malformed_yaml_is_a_file_line_col_error() {
    let bad = "kind: Pod\nmetadata:\n  name: x\n spec: [\n";
    let e = audit(
        &[Source {
            name: "bad.yaml".into(),
            text: bad.into(),
        }],
        &Options::default(),
    )
    .expect_err("malformed");
    let AuditError::Syntax { file, line, .. } = &e;
    assert_eq!(file, "bad.yaml");
    assert!(*line >= 3, "{e}");
    assert!(e.to_string().starts_with("bad.yaml:"), "{e}");
    let e = audit(
        &[Source {
            name: "s.yaml".into(),
            text: "- a\n- b\n".into(),
        }],
        &Options::default(),
    )
    .expect_err("not an object");
    assert_eq!(
        e.to_string(),
        "s.yaml:1:1: a document must be a Kubernetes object (a mapping)"
    );
    let e = audit(
        &[Source {
            name: "k.yaml".into(),
            text: "---\nmetadata: {}\n".into(),
        }],
        &Options::default(),
    )
    .expect_err("no kind");
    assert_eq!(e.to_string(), "k.yaml:2:1: object has no kind");
    let e = Source::from_bytes("b.yaml", b"kind: Pod\nname: \xff\n".to_vec()).expect_err("utf-8");
    assert_eq!(e.to_string(), "b.yaml:2:7: not UTF-8 text");
}

#[test]
fn sarif_has_the_2_1_0_shape() {
    let y = pod(&parts(|p| p.ctr_sc = lines(&["privileged: true"])));
    let r = run(&y, &at(Level::Baseline));
    let s = render::sarif(&r);
    assert_eq!(s["version"], "2.1.0");
    let res = &s["runs"][0]["results"][0];
    assert_eq!(res["ruleId"], "privileged");
    assert_eq!(res["level"], "error");
    let loc = &res["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "m.yaml");
    assert_eq!(loc["region"]["startLine"], line_of(&y, "privileged: true"));
    assert_eq!(loc["region"]["startColumn"], 19);
    let fix = &res["fixes"][0];
    assert!(fix["description"]["text"].is_string());
    let rep = &fix["artifactChanges"][0]["replacements"][0];
    assert_eq!(rep["insertedContent"]["text"], "false");
    assert_eq!(rep["deletedRegion"]["startColumn"], 19);
    let rules = s["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules");
    assert!(rules.iter().any(|r| r["id"] == "privileged"));
}

proptest::proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        if let Ok(s) = Source::from_bytes("r", bytes) {
            let _ = audit(&[s], &Options::default());
        }
    }

    #[test]
    fn mutated_manifests_never_panic(cut in 0usize..2000, insert in "[ \\-:{}\\[\\],#&*!|>'\"\n a-z0-9]{0,8}") {
        let y = pod(&PodParts::default());
        let at = y.char_indices().map(|(i, _)| i).nth(cut % y.len()).unwrap_or(0);
        let mut m = y.clone();
        m.insert_str(at, &insert);
        if let Ok(r) = audit(&[Source { name: "m".into(), text: m }], &Options::default()) {
            let _ = render::sarif(&r);
            let _ = render::table(&r);
        }
    }
}

#[test]
fn hostile_names_are_escaped_in_the_table() {
    let y = "kind: Pod\nmetadata: {name: \"p\\e]0;owned\\a\"}\nspec:\n  containers:\n  - name: \"c\\e[31m\"\n    image: \"x\\u009b\"\n";
    let r = run(y, &at(Level::Restricted));
    assert!(!r.findings.is_empty());
    let t = render::table(&r);
    assert!(
        !t.chars()
            .any(|c| c == '\u{1b}' || c == '\u{7}' || c == '\u{9b}'),
        "{t:?}"
    );
    assert!(t.contains("Pod/p"), "{t}");
}

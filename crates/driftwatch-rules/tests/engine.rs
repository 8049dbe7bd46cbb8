//! The compile → evaluate → output path against the map-backed source.

use driftwatch_rules::{
    compile, load_str, parse_cases, run_cases, CompileOptions, Compiled, EvalCtx, EventType,
    Loader, MapSource, MatchMode, OutputOptions, Severity,
};

fn build(text: &str, skip_unknown: bool) -> Compiled {
    let load = load_str("t.yaml", text);
    assert!(!load.has_errors(), "{:?}", load.diagnostics);
    compile(
        &load,
        &CompileOptions {
            skip_unknown,
            mode: MatchMode::All,
        },
    )
}

/// One rule with `cond`; returns whether `event` matches it.
fn check(cond: &str, event: &[(&str, &str)]) -> bool {
    let text = format!(
        "- rule: r\n  desc: d\n  condition: {}\n  output: o\n  priority: WARNING\n",
        serde_quote(cond)
    );
    let c = build(&text, false);
    assert!(!c.has_errors(), "{cond}: {:?}", c.diagnostics);
    let mut pairs = vec![("evt.type", "execve")];
    pairs.extend_from_slice(event);
    let src = MapSource::from_pairs(pairs).expect("event");
    c.rules.rules()[0].matches(&src, &mut EvalCtx::new())
}

fn serde_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn errors(text: &str, skip: bool) -> Vec<String> {
    build(text, skip)
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn equality_and_numbers() {
    let ev = [
        ("proc.name", "sh"),
        ("proc.pid", "42"),
        ("proc.is_exe_upper_layer", "true"),
    ];
    assert!(check("proc.name = sh", &ev));
    assert!(check("proc.name == sh", &ev));
    assert!(!check("proc.name != sh", &ev));
    assert!(check(
        "proc.pid = 42 and proc.pid >= 42 and proc.pid < 43",
        &ev
    ));
    assert!(check("proc.pid = 0x2a", &ev));
    assert!(check(
        "proc.pid > 41 and not proc.pid > 42 and proc.pid <= 42",
        &ev
    ));
    assert!(check("proc.is_exe_upper_layer = true", &ev));
    assert!(!check("proc.is_exe_upper_layer = false", &ev));
    // a check on a field with no value is false, whatever the operator
    assert!(!check("proc.pname = x", &ev));
    assert!(!check("proc.pname != x", &ev));
    assert!(check("not proc.pname = x", &ev));
    assert!(check("proc.name exists and not proc.pname exists", &ev));
}

#[test]
fn string_operators() {
    let ev = [
        ("proc.cmdline", "Bash -c \"curl x\""),
        ("proc.exepath", "/usr/bin/bash"),
    ];
    assert!(check("proc.cmdline contains curl", &ev));
    assert!(!check("proc.cmdline contains CURL", &ev));
    assert!(check("proc.cmdline icontains CURL", &ev));
    assert!(check("proc.cmdline icontains bash", &ev));
    assert!(check("proc.exepath startswith /usr/", &ev));
    assert!(check("proc.exepath endswith /bash", &ev));
    assert!(check("proc.exepath glob '/usr/*/ba?h'", &ev));
    assert!(check("proc.exepath glob '*'", &ev));
    assert!(!check("proc.exepath glob '/USR/*'", &ev));
    assert!(check("proc.exepath iglob '/USR/*'", &ev));
    // regex is anchored at both ends, like RE2 FullMatch
    assert!(check("proc.exepath regex '/usr/bin/[a-z]+'", &ev));
    assert!(!check("proc.exepath regex 'bin'", &ev));
    assert!(check("proc.exepath regex '.*bin.*'", &ev));
    // bytes as hex: "/usr" = 2f757372
    assert!(check("proc.exepath bstartswith 2F757372", &ev));
    assert!(check("proc.exepath bcontains 62617368", &ev));
    assert!(!check("proc.exepath bcontains 00", &ev));
}

#[test]
fn list_operators() {
    let ev = [
        ("proc.name", "sh"),
        ("proc.exepath", "/usr/bin/sh"),
        ("proc.pid", "7"),
    ];
    assert!(check("proc.name in (bash, sh)", &ev));
    assert!(!check("proc.name in (bash, 'sh ')", &ev));
    assert!(!check("proc.name in ()", &ev));
    assert!(check("proc.pid in (1, 7)", &ev));
    assert!(check("proc.name intersects (sh, zsh)", &ev));
    let many: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
    assert!(check(
        &format!("proc.name in ({}, sh)", many.join(", ")),
        &ev
    ));
    assert!(!check(&format!("proc.name in ({})", many.join(", ")), &ev));
    // pmatch matches whole path components
    assert!(check("proc.exepath pmatch (/usr/bin)", &ev));
    assert!(check("proc.exepath pmatch (/usr/bin/)", &ev));
    assert!(!check("proc.exepath pmatch (/usr/bi)", &ev));
    assert!(check("proc.exepath pmatch (/opt, /usr/bin/sh)", &ev));
    // modifiers
    assert!(check("proc.exepath startswith anyof (/opt, /usr)", &ev));
    assert!(!check("proc.exepath startswith allof (/opt, /usr)", &ev));
    assert!(check("proc.exepath startswith allof (/usr, /usr/bin)", &ev));
    assert!(check("proc.exepath startswith oneof (/usr, /opt)", &ev));
    assert!(!check(
        "proc.exepath startswith oneof (/usr, /usr/bin)",
        &ev
    ));
}

#[test]
fn ancestors_transformers_and_val() {
    let mut src = MapSource::new(EventType::Execve);
    src.set("proc.name", "Sh").expect("set");
    src.set("proc.pname", "bash").expect("set");
    src.set("proc.exepath", "/usr/bin/sh").expect("set");
    src.set("proc.exe", "/usr/bin/sh").expect("set");
    src.set_list("proc.aname", &["bash", "sshd", "systemd"])
        .expect("set");
    let text = |cond: &str| {
        format!(
            "- rule: r\n  desc: d\n  condition: {}\n  output: o\n  priority: WARNING\n",
            serde_quote(cond)
        )
    };
    let eval = |cond: &str| {
        let c = build(&text(cond), false);
        assert!(!c.has_errors(), "{cond}: {:?}", c.diagnostics);
        c.rules.rules()[0].matches(&src, &mut EvalCtx::new())
    };
    assert!(eval("proc.aname[2] = sshd"));
    assert!(eval("proc.aname[1] = bash"));
    assert!(eval("proc.aname = systemd"));
    assert!(eval("proc.aname in (sshd)"));
    assert!(!eval("proc.aname = init"));
    assert!(eval("tolower(proc.name) = sh"));
    assert!(eval("toupper(proc.name) = SH"));
    assert!(eval("basename(proc.exepath) = sh"));
    assert!(eval("len(proc.exepath) = 11"));
    assert!(eval("concat(proc.pname, \"-\", proc.name) = bash-Sh"));
    assert!(eval("join(\"/\", (proc.pname, proc.name)) = bash/Sh"));
    assert!(eval("proc.exepath = val(proc.exe)"));
    assert!(!eval("proc.exepath != val(proc.exe)"));
    assert!(eval("proc.exepath endswith basename(proc.exe)"));
}

#[test]
fn macros_lists_and_visibility() {
    let text = r#"
- list: a
  items: [sh, "b c"]
- list: b
  items: [a, zsh]
- list: c
  items: [b, fish]
- macro: m1
  condition: proc.name in (c)
- macro: m2
  condition: m1 and container.id != host
- rule: r
  desc: d
  condition: m2 and proc.name in (c, ksh) and proc.name in c
  output: o
  priority: WARNING
"#;
    let c = build(text, false);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let run = |name: &str| {
        let src = MapSource::from_pairs([
            ("evt.type", "execve"),
            ("proc.name", name),
            ("container.id", "abc"),
        ])
        .expect("event");
        c.rules.rules()[0].matches(&src, &mut EvalCtx::new())
    };
    assert!(run("sh"));
    assert!(run("b c"));
    assert!(run("zsh"));
    assert!(run("fish"));
    assert!(!run("ksh"));
    assert!(!run("bash"));
}

#[test]
fn macro_cycles_and_undefined_names_are_errors() {
    let text = r#"
- macro: m
  condition: proc.name = a
- macro: m
  condition: m
  override:
    condition: append
- rule: r
  desc: d
  condition: m and undefined_macro and proc.name in undefined_list
  output: o
  priority: WARNING
"#;
    let mut loader = Loader::default();
    loader.add_str("t.yaml", text);
    let load = loader.finish();
    let c = compile(&load, &CompileOptions::default());
    let msgs: Vec<String> = c.diagnostics.iter().map(ToString::to_string).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("undefined macro 'undefined_macro'")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("undefined list 'undefined_list'")),
        "{msgs:?}"
    );
    assert_eq!(c.stats.loaded, 0);

    // a macro that refers to itself through another one
    let text = r#"
- macro: a
  condition: proc.name = x
- macro: b
  condition: a
- macro: a
  condition: or b
  override:
    condition: append
- rule: r
  desc: d
  condition: a
  output: o
  priority: WARNING
"#;
    let msgs = errors(text, false);
    assert!(
        msgs.iter().any(|m| m.contains("refers to itself")),
        "{msgs:?}"
    );
}

#[test]
fn unknown_fields_point_at_file_line_col() {
    let text = "- rule: r\n  desc: d\n  condition: proc.name = a and fd.rpxxx = b\n  output: o %fd.lpxxx\n  priority: WARNING\n";
    let msgs = errors(text, false);
    assert_eq!(
        msgs,
        vec![
            "t.yaml:3:32: error: rule 'r': field 'fd.rpxxx' is not provided by driftwatch (--skip-unknown or skip-if-unknown-filter: true skips such rules)",
            "t.yaml:4:14: error: rule 'r': field 'fd.lpxxx' is not provided by driftwatch (--skip-unknown or skip-if-unknown-filter: true skips such rules)",
        ]
    );
    let c = build(text, true);
    assert!(!c.has_errors());
    assert_eq!(c.stats.skipped_unknown, 1);
    assert_eq!(c.stats.loaded, 0);
    assert!(c
        .diagnostics
        .iter()
        .all(|d| d.severity == Severity::Warning));
    assert_eq!(c.stats.unsupported_fields.get("fd.rpxxx"), Some(&1));
}

#[test]
fn type_errors_are_reported_all_at_once() {
    let text = "- rule: r\n  desc: d\n  condition: proc.name > 3 and proc.pid = abc and proc.name regex '(' and proc.exepath bcontains xyz\n  output: o\n  priority: WARNING\n";
    let msgs = errors(text, true);
    assert_eq!(msgs.len(), 4, "{msgs:?}");
    assert!(msgs[0].starts_with("t.yaml:3:24: error: rule 'r': operator '>' cannot be used with field 'proc.name' of type string"), "{msgs:?}");
    assert!(msgs[1].contains("invalid value 'abc' for field 'proc.pid' of type u64"));
    assert!(msgs[2].contains("invalid regular expression '('"));
    assert!(msgs[3].contains("invalid hex string 'xyz'"));
}

#[test]
fn exceptions_use_effective_conditions() {
    let text = r#"
- rule: r
  desc: d
  condition: evt.type = execve and proc.name in (sh, bash)
  exceptions:
    - name: known
      fields: [proc.pname, proc.exepath]
      comps: [=, startswith]
      values:
        - [cron, /usr/]
  output: o
  priority: WARNING
"#;
    let c = build(text, false);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let run = |pname: &str, path: &str| {
        let src = MapSource::from_pairs([
            ("evt.type", "execve"),
            ("proc.name", "sh"),
            ("proc.pname", pname),
            ("proc.exepath", path),
        ])
        .expect("event");
        c.rules.rules()[0].matches(&src, &mut EvalCtx::new())
    };
    assert!(!run("cron", "/usr/bin/sh"));
    assert!(run("cron", "/tmp/sh"));
    assert!(run("init", "/usr/bin/sh"));
}

#[test]
fn event_type_index_and_match_modes() {
    let text = r#"
- rule: a
  desc: d
  condition: evt.type = mmap and proc.name = x
  output: o
  priority: WARNING
- rule: b
  desc: d
  condition: not evt.type in (mmap, mprotect) and proc.name = x
  output: o
  priority: WARNING
- rule: c
  desc: d
  condition: proc.name = x
  output: o
  priority: WARNING
"#;
    let mut c = build(text, false);
    let types = |i: usize| {
        c.rules.rules()[i]
            .event_types()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(types(0), ["mmap"]);
    let all: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    let not_map: Vec<&str> = all
        .iter()
        .copied()
        .filter(|t| !["mmap", "mprotect"].contains(t))
        .collect();
    assert_eq!(types(1), not_map);
    assert_eq!(types(1)[..3], ["execve", "execveat", "open"]);
    assert_eq!(types(2), all);
    assert!(c
        .diagnostics
        .iter()
        .any(|d| d.message.contains("rule 'c' does not constrain evt.type")));
    let src = MapSource::from_pairs([("evt.type", "execve"), ("proc.name", "x")]).expect("ev");
    let mut ctx = EvalCtx::new();
    assert_eq!(c.rules.matching_names(&src, &mut ctx), ["b", "c"]);
    c.rules.set_mode(MatchMode::First);
    assert_eq!(c.rules.matching_names(&src, &mut ctx), ["b"]);
}

#[test]
fn output_formatting_na_and_null() {
    let text = r#"
- rule: r
  desc: d
  condition: evt.type = execve
  output: "shell %proc.name parent=%proc.pname (%5proc.pid) a2=%proc.aname[2] t=%evt.time %container.info"
  priority: ERROR
  tags: [b, a]
"#;
    let c = build(text, false);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let src = MapSource::from_pairs([
        ("evt.type", "execve"),
        ("proc.name", "sh"),
        ("proc.pid", "42"),
        ("evt.time", "3723000000005"),
        ("container.id", "0123456789ab"),
        ("container.name", "web"),
    ])
    .expect("event");
    let alert = c.rules.rules()[0].alert(&src, 7, "node1", &OutputOptions::default());
    assert_eq!(
        alert.output,
        "shell sh parent=<NA> (42   ) a2=<NA> t=01:02:03.000000005 web (id=0123456789ab)"
    );
    let f = &alert.output_fields;
    assert_eq!(f["proc.name"], serde_json::json!("sh"));
    assert_eq!(f["proc.pname"], serde_json::Value::Null);
    assert_eq!(f["proc.pid"], serde_json::json!(42));
    assert_eq!(f["proc.aname[2]"], serde_json::Value::Null);
    assert_eq!(f["evt.time"], serde_json::json!(3_723_000_000_005_u64));
    // Falco's container fields are appended for container events
    assert_eq!(f["container.image.repository"], serde_json::Value::Null);
    assert_eq!(f["k8s.pod.name"], serde_json::Value::Null);
    assert_eq!(alert.rule, "r");
    assert_eq!(alert.tags, ["a", "b"]);
    assert_eq!(alert.source, "syscall");
    assert_eq!(alert.hostname, "node1");
    assert_eq!(alert.time_ns, 7);
}

const SHIPPED: &str = include_str!("../../../rules/driftwatch_rules.yaml");
const SHIPPED_CASES: &str = include_str!("../../../rules/driftwatch_rules.tests.yaml");

#[test]
fn shipped_rules_pass_their_cases() {
    let c = build(SHIPPED, false);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    assert_eq!(c.stats.loaded, 13);
    assert_eq!(
        c.stats.skipped_unknown, 0,
        "every shipped rule runs, Container File System Write included"
    );
    let (cases, diags) = parse_cases("cases.yaml", SHIPPED_CASES);
    assert!(diags.is_empty(), "{diags:?}");
    let results = run_cases(&c.rules, &cases);
    let failed: Vec<_> = results.iter().filter(|r| !r.passed).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // every shipped rule that loads has a positive case
    for r in c.rules.rules() {
        assert!(
            results.iter().any(|x| x.matched.contains(&r.name)),
            "no positive case for {}",
            r.name
        );
    }
}

#[test]
fn shipped_drift_exception_can_be_extended() {
    let mut loader = Loader::default();
    loader.add_str("driftwatch_rules.yaml", SHIPPED);
    loader.add_str(
        "local.yaml",
        r#"
- rule: Drift Detected (Container Image Modified Binary)
  exceptions:
    - name: image_and_path
      values:
        - [docker.io/library/allowed, /opt/plugins/]
  override:
    exceptions: append
- list: drift_allowed_paths
  items: [/srv/tools]
  override:
    items: append
"#,
    );
    let load = loader.finish();
    assert!(!load.has_errors(), "{:?}", load.diagnostics);
    let c = compile(&load, &CompileOptions::default());
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let (cases, diags) = parse_cases(
        "c.yaml",
        r#"
- name: allowed image and path
  event: {evt.type: execve, container.id: abc, container.image.repository: docker.io/library/allowed, drift.via: exec, drift.path: /opt/plugins/p, drift.origin: added}
  expect: []
- name: allowed path list
  event: {evt.type: execve, container.id: abc, drift.via: exec, drift.path: /srv/tools/t, drift.origin: added}
  expect: []
- name: other image
  event: {evt.type: execve, container.id: abc, container.image.repository: other, drift.via: exec, drift.path: /opt/plugins/p, drift.origin: added}
  expect: [Drift Detected (Container Image Modified Binary)]
"#,
    );
    assert!(diags.is_empty(), "{diags:?}");
    let results = run_cases(&c.rules, &cases);
    assert!(results.iter().all(|r| r.passed), "{results:#?}");
}

#[test]
fn falco_rule_files_validate_with_skip_unknown() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers/falco-rules");
    if !dir.is_dir() {
        println!("skipped: {} is absent", dir.display());
        return;
    }
    for name in [
        "falco_rules.yaml",
        "falco-incubating_rules.yaml",
        "falco-sandbox_rules.yaml",
        "falco-deprecated_rules.yaml",
    ] {
        let mut loader = Loader::default();
        loader.add_file(&dir.join(name));
        let load = loader.finish();
        let skip = compile(
            &load,
            &CompileOptions {
                skip_unknown: true,
                ..Default::default()
            },
        );
        assert!(
            !skip.has_errors(),
            "{name}: {:?}",
            skip.diagnostics
                .iter()
                .filter(|d| d.is_error())
                .collect::<Vec<_>>()
        );
        let strict = compile(&load, &CompileOptions::default());
        if skip.stats.skipped_unknown > 0 {
            assert!(strict.has_errors(), "{name}");
        }
        println!("{name}: {:?}", skip.stats);
    }
}

#[test]
fn network_fields_compare_as_falco_does() {
    let mut src = MapSource::new(EventType::Net(driftwatch_event::NetOp::Connect));
    src.set("fd.cip", "10.0.0.2").expect("set");
    src.set("fd.sip", "fd00::0:1").expect("set");
    src.set("fd.cnet", "10.0.0.2").expect("set");
    src.set("fd.snet", "fd00::1").expect("set");
    src.set_list("fd.ip", &["10.0.0.2", "192.168.1.1"])
        .expect("set");
    src.set_list("fd.net", &["10.0.0.2", "192.168.1.1"])
        .expect("set");
    src.set("fd.sport", "80").expect("set");
    src.set("evt.res", "EINPROGRESS").expect("set");
    let text = |cond: &str| {
        format!(
            "- rule: r\n  desc: d\n  condition: {}\n  output: o\n  priority: WARNING\n",
            serde_quote(cond)
        )
    };
    let eval = |cond: &str| {
        let c = build(&text(cond), false);
        assert!(!c.has_errors(), "{cond}: {:?}", c.diagnostics);
        assert_eq!(
            c.rules.rules()[0].event_types().collect::<Vec<_>>(),
            vec![EventType::Net(driftwatch_event::NetOp::Connect)],
            "{cond}"
        );
        c.rules.rules()[0].matches(&src, &mut EvalCtx::new())
    };
    let connect = |cond: &str| eval(&format!("evt.type = connect and {cond}"));
    // addresses are compared as addresses
    assert!(connect("fd.sip = \"fd00:0:0::1\""));
    assert!(connect("fd.sip = fd00::1"));
    assert!(connect("fd.cip in (\"10.0.0.1\", \"10.0.0.2\")"));
    assert!(!connect("fd.cip = 10.0.0.3"));
    assert!(connect("fd.cip != 10.0.0.3"));
    // networks
    assert!(connect("fd.cnet = \"10.0.0.0/8\""));
    assert!(connect("fd.cnet in (\"172.16.0.0/12\", \"10.0.0.0/8\")"));
    assert!(!connect("fd.cnet = \"172.16.0.0/12\""));
    assert!(connect("fd.cnet != \"172.16.0.0/12\""));
    assert!(connect("fd.snet = \"fd00::/8\""));
    assert!(!connect("fd.snet = \"10.0.0.0/8\""));
    // either endpoint: `=` when either is, `!=` when neither is (Falco's compare_ip)
    assert!(connect("fd.ip = 192.168.1.1"));
    assert!(connect("fd.ip = 10.0.0.2"));
    assert!(!connect("fd.ip != 10.0.0.2"));
    assert!(connect("fd.ip != 8.8.8.8"));
    assert!(connect("fd.net = \"192.168.0.0/16\""));
    assert!(!connect("fd.net != \"192.168.0.0/16\""));
    assert!(connect("fd.net != \"127.0.0.0/8\""));
    assert!(connect(
        "not fd.net in (\"127.0.0.0/8\", \"169.254.0.0/16\")"
    ));
    assert!(connect("fd.sport = 80 and evt.res = EINPROGRESS"));
    // type errors
    for (cond, msg) in [
        (
            "evt.type = connect and fd.sip = 10.0.0",
            "invalid value '10.0.0' for field 'fd.sip' of type ipaddr",
        ),
        (
            "evt.type = connect and fd.net = \"10.0.0.0/33\"",
            "invalid value '10.0.0.0/33' for field 'fd.net' of type ipnet",
        ),
        (
            "evt.type = connect and fd.sip startswith 10.",
            "operator 'startswith' cannot be used with field 'fd.sip' of type ipaddr",
        ),
    ] {
        let e = errors(&text(cond), false);
        assert!(e.iter().any(|d| d.contains(msg)), "{cond}: {e:?}");
    }
}

/// Falco pastes a list into the condition: an item written in quotes is that quoted string.
#[test]
fn quoted_list_items_are_the_quoted_strings() {
    let text = "- list: rfc_1918_addresses\n  items: ['\"10.0.0.0/8\"', '\"172.16.0.0/12\"']\n\
                - list: cmds\n  items: ['\"sh -c true\"', bare]\n\
                - rule: r\n  desc: d\n  condition: evt.type = connect and fd.snet in (rfc_1918_addresses) and proc.cmdline in (cmds)\n  output: o\n  priority: WARNING\n";
    let c = build(text, false);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let mut src = MapSource::new(EventType::Net(driftwatch_event::NetOp::Connect));
    src.set("fd.snet", "172.16.1.1").expect("set");
    src.set("proc.cmdline", "sh -c true").expect("set");
    assert!(c.rules.rules()[0].matches(&src, &mut EvalCtx::new()));
    src.set("proc.cmdline", "bare").expect("set");
    assert!(c.rules.rules()[0].matches(&src, &mut EvalCtx::new()));
    src.set("fd.snet", "8.8.8.8").expect("set");
    assert!(!c.rules.rules()[0].matches(&src, &mut EvalCtx::new()));
}

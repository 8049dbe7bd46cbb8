//! Unit tests of Falco's rule-file semantics on small generated files.
//!
//! Expected texts come from reading falcosecurity/falco `userspace/engine/`:
//! `rule_loader_reader.cpp` (keys, types, override rules), `rule_loader_collector.cpp`
//! (define/append/replace/enable, exception validation and default comps),
//! `rule_loader_compiler.cpp` (`build_rule_exception_infos`, `quote_item`, `paren_item`).

use crate::*;

fn load(text: &str) -> LoadResult {
    load_str("r.yaml", text)
}

fn load_many(files: &[(&str, &str)]) -> LoadResult {
    let mut l = Loader::default();
    for (name, text) in files {
        l.add_str(name, text);
    }
    l.finish()
}

fn diags(r: &LoadResult) -> Vec<String> {
    r.diagnostics.iter().map(ToString::to_string).collect()
}

fn errors(r: &LoadResult) -> Vec<String> {
    r.errors().map(ToString::to_string).collect()
}

fn assert_clean(r: &LoadResult) {
    assert!(!r.has_errors(), "{:#?}", diags(r));
}

const RULE_R: &str = "- rule: r
  desc: d
  condition: evt.type = open
  output: out %proc.name
  priority: WARNING
  tags: [b, a]
";

fn rule_with_exceptions(exceptions: &str) -> String {
    format!("{RULE_R}  exceptions:\n{exceptions}")
}

fn effective(exceptions: &str) -> String {
    let r = load(&rule_with_exceptions(exceptions));
    assert_clean(&r);
    r.rules[0].effective_condition.clone()
}

// ---- rules: definition, keys, priorities ------------------------------------------------

#[test]
fn rule_definition_fields_and_positions() {
    let r = load(RULE_R);
    assert_clean(&r);
    let rule = &r.rules[0];
    assert_eq!(rule.name, "r");
    assert_eq!(rule.desc, "d");
    assert_eq!(rule.condition.value, "evt.type = open");
    assert_eq!(rule.condition.loc.to_string(), "r.yaml:3:14");
    assert_eq!(rule.condition.loc_of_offset(11).to_string(), "r.yaml:3:25");
    assert_eq!(rule.effective_condition, "evt.type = open");
    assert_eq!(rule.output.value, "out %proc.name");
    assert_eq!(rule.priority, Priority::Warning);
    // Falco keeps tags in a std::set: sorted, unique.
    assert_eq!(rule.tags, vec!["a", "b"]);
    assert!(rule.enabled);
    assert_eq!(rule.source, "syscall");
    assert!(rule.known_source);
    assert!(!rule.skip_if_unknown_filter);
    assert!(rule.warn_evttypes);
    assert_eq!(rule.loc.to_string(), "r.yaml:1:3");
}

#[test]
fn every_priority_spelling_falco_accepts() {
    for (s, p) in [
        ("emergency", Priority::Emergency),
        ("ALERT", Priority::Alert),
        ("Critical", Priority::Critical),
        ("error", Priority::Error),
        ("warning", Priority::Warning),
        ("NOTICE", Priority::Notice),
        ("info", Priority::Informational),
        ("INFO", Priority::Informational),
        ("Informational", Priority::Informational),
        ("debug", Priority::Debug),
    ] {
        let r = load(&RULE_R.replace("WARNING", s));
        assert_clean(&r);
        assert_eq!(r.rules[0].priority, p, "{s}");
    }
}

#[test]
fn bad_priority_is_an_error_at_the_value() {
    let r = load(&RULE_R.replace("WARNING", "urgent"));
    assert_eq!(
        errors(&r),
        vec!["r.yaml:5:13: error: invalid priority 'urgent'"]
    );
    assert!(r.rules.is_empty());
}

#[test]
fn unknown_key_is_a_warning_at_the_key() {
    let r = load(&format!("{RULE_R}  colour: red\n"));
    assert_eq!(
        diags(&r),
        vec!["r.yaml:7:3: warning: unknown key 'colour'; the key will be ignored"]
    );
    assert_eq!(r.rules.len(), 1);
}

#[test]
fn missing_required_key_and_wrong_types() {
    let r = load("- rule: r\n  desc: d\n  condition: a\n  priority: info\n");
    assert_eq!(
        errors(&r),
        vec!["r.yaml:1:3: error: item has no mapping for key 'output'"]
    );
    let r = load(&RULE_R.replace("condition: evt.type = open", "condition: [a, b]"));
    assert_eq!(
        errors(&r),
        vec!["r.yaml:3:14: error: value for key 'condition' is not a scalar value"]
    );
    let r = load(&format!("{RULE_R}  enabled: maybe\n"));
    assert_eq!(
        errors(&r),
        vec!["r.yaml:7:12: error: value for key 'enabled' is not a boolean: 'maybe'"]
    );
    let r = load(&RULE_R.replace("tags: [b, a]", "tags: a"));
    assert_eq!(
        errors(&r),
        vec!["r.yaml:6:9: error: value for key 'tags' is not a sequence"]
    );
}

#[test]
fn optional_rule_keys_are_kept() {
    let r = load(&format!(
        "{RULE_R}  enabled: false\n  skip-if-unknown-filter: true\n  warn_evttypes: false\n  capture: true\n  capture_duration: 5000\n"
    ));
    assert_clean(&r);
    let rule = &r.rules[0];
    assert!(!rule.enabled);
    assert!(rule.skip_if_unknown_filter);
    assert!(!rule.warn_evttypes);
    assert!(rule.capture);
    assert_eq!(rule.capture_duration, 5000);
}

#[test]
fn output_is_trimmed_and_keeps_its_positions() {
    let r = load(&RULE_R.replace("output: out %proc.name", "output: >\n    out %proc.name\n"));
    assert_clean(&r);
    let out = &r.rules[0].output;
    assert_eq!(out.value, "out %proc.name");
    assert_eq!(out.loc_of_offset(4).to_string(), "r.yaml:5:9");
}

#[test]
fn non_mapping_items_and_unknown_items() {
    let r = load("- just a string\n- foo: bar\n");
    assert_eq!(
        diags(&r),
        vec![
            "r.yaml:1:3: error: unexpected element type; each element should be a yaml associative array",
            "r.yaml:2:3: warning: unknown top level item",
        ]
    );
    let r = load("rule: r\n");
    assert_eq!(
        errors(&r),
        vec!["r.yaml:1:1: error: rules content is not a yaml array of objects"]
    );
    // Empty files, empty documents and null items are fine.
    for text in ["", "---\n", "- \n", "# only a comment\n"] {
        assert!(load(text).diagnostics.is_empty(), "{text:?}");
    }
}

#[test]
fn yaml_syntax_errors_reject_the_file() {
    let r = load("- rule: r\n  desc: [unclosed\n- macro: m\n  condition: a\n");
    assert_eq!(r.errors().count(), 1, "{:#?}", diags(&r));
    assert!(errors(&r)[0].starts_with("r.yaml:"), "{:#?}", diags(&r));
    assert!(r.macros.is_empty() && r.rules.is_empty());
}

#[test]
fn non_utf8_file_is_a_diagnostic() {
    let mut l = Loader::default();
    l.add_bytes("bin.yaml", b"- macro: m\n  condition: \xff\xfe\n");
    let r = l.finish();
    assert_eq!(
        errors(&r),
        vec!["bin.yaml:2:14: error: rule file is not valid utf-8"]
    );
}

#[test]
fn flow_lists_closed_under_their_key_parse_as_in_yaml_cpp() {
    // Falco's own files close `items: [` with `]` under `items`.
    let r = load("- list: l\n  items: [\n    \"a\",\n    b\n  ]\n- macro: m\n  condition: x\n");
    assert_clean(&r);
    let items = &r.lists["l"].items;
    assert_eq!(items[0].value, "a");
    assert_eq!(items[1].loc.to_string(), "r.yaml:4:5");
    assert_eq!(r.macros["m"].condition.loc.to_string(), "r.yaml:7:14");
}

// ---- redefinition, append, override ---------------------------------------------------

#[test]
fn redefinition_replaces_in_place() {
    let r = load(&format!(
        "{RULE_R}- rule: s\n  desc: d\n  condition: b\n  output: o\n  priority: info\n{}",
        RULE_R.replace("evt.type = open", "evt.type = close")
    ));
    assert_clean(&r);
    let names: Vec<&str> = r.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["r", "s"],
        "a redefined rule keeps its first place"
    );
    assert_eq!(r.rules[0].condition.value, "evt.type = close");
    assert_eq!(r.rules[0].condition.loc.to_string(), "r.yaml:14:14");
    assert_eq!((r.rules[0].index, r.rules[0].visibility), (0, 2));
}

#[test]
fn macro_append_old_style_and_override() {
    let r = load(
        "- macro: m\n  condition: a\n- macro: m\n  condition: or b\n  append: true\n- macro: m\n  condition: or c\n  override:\n    condition: append\n",
    );
    assert_eq!(
        diags(&r),
        vec!["r.yaml:3:3: warning: 'append' key is deprecated; add an 'append' entry (e.g. 'condition: append') under 'override' instead"]
    );
    let m = &r.macros["m"];
    // Falco: prev->cond += " " + cond.
    assert_eq!(m.condition.value, "a or b or c");
    assert_eq!(m.condition.loc_of_offset(2).to_string(), "r.yaml:4:14");
    assert_eq!(m.condition.loc_of_offset(10).to_string(), "r.yaml:7:17");
    assert_eq!((m.index, m.visibility), (0, 2));
}

#[test]
fn macro_override_replace_defines_even_without_a_previous_macro() {
    // Falco test `macro_override_replace_before_definition`: replace is a plain definition.
    let r = load("- macro: m\n  condition: x\n  override:\n    condition: replace\n");
    assert_clean(&r);
    assert_eq!(r.macros["m"].condition.value, "x");
}

#[test]
fn append_to_undefined_is_an_error_at_the_item() {
    let r = load("- macro: m\n  condition: or b\n  override:\n    condition: append\n");
    assert_eq!(
        errors(&r),
        vec!["r.yaml:1:3: error: macro uses 'append' or 'override.condition: append' but no macro by that name already exists"]
    );
    let r = load("- list: l\n  items: [a]\n  override:\n    items: append\n");
    assert_eq!(
        errors(&r),
        vec!["r.yaml:1:3: error: list uses 'append' or 'override.items: append' but no list by that name already exists"]
    );
    let r = load("- rule: r\n  condition: and b\n  override:\n    condition: append\n");
    assert_eq!(
        errors(&r),
        vec!["r.yaml:1:3: error: rule uses 'append' or 'override.<key>: append' but no rule by that name already exists"]
    );
    let r = load("- rule: r\n  priority: info\n  override:\n    priority: replace\n");
    assert_eq!(
        errors(&r),
        vec!["r.yaml:1:3: error: an 'override.<key>: replace' to a rule was requested but no rule by that name already exists"]
    );
}

#[test]
fn list_append_redefinition_and_nested_lists() {
    let r = load(
        "- list: a\n  items: [x, y]\n- list: b\n  items: [a, z]\n- list: a\n  items: [w]\n  append: true\n- list: c\n  items: [b]\n- list: b\n  items: [v]\n  override:\n    items: append\n",
    );
    assert_eq!(r.warnings().count(), 1, "{:#?}", diags(&r));
    let b: Vec<&str> = r.lists["b"]
        .items
        .iter()
        .map(|i| i.value.as_str())
        .collect();
    assert_eq!(b, vec!["a", "z", "v"]);
    // One level, as Falco's compile_list_infos: `a` in `b` is filled in, `b` in `c` too, but the
    // `a` that `b` brings into `c` stays a name.
    assert_eq!(
        r.expanded_list_items("b").unwrap_or_default(),
        vec!["x", "y", "w", "z", "v"]
    );
    assert_eq!(
        r.expanded_list_items("c").unwrap_or_default(),
        vec!["a", "z", "v"]
    );
    assert_eq!(r.lists["a"].items[2].loc.to_string(), "r.yaml:6:11");
}

#[test]
fn list_may_only_use_lists_defined_before_it() {
    let r = load("- list: b\n  items: [a]\n- list: a\n  items: [x]\n");
    assert_clean(&r);
    assert_eq!(r.expanded_list_items("b").unwrap_or_default(), vec!["a"]);
}

#[test]
fn rule_override_append_every_appendable_key() {
    let r = load(&format!(
        "{RULE_R}- rule: r\n  condition: and proc.name = cat\n  output: more\n  desc: too\n  tags: [c, a]\n  override:\n    condition: append\n    output: append\n    desc: append\n    tags: append\n"
    ));
    assert_clean(&r);
    let rule = &r.rules[0];
    assert_eq!(rule.condition.value, "evt.type = open and proc.name = cat");
    assert_eq!(rule.output.value, "out %proc.name more");
    assert_eq!(rule.desc, "d too");
    assert_eq!(rule.tags, vec!["a", "b", "c"]);
    assert_eq!(rule.condition.loc_of_offset(20).to_string(), "r.yaml:8:18");
    assert_eq!(rule.priority, Priority::Warning);
}

#[test]
fn rule_override_replace_and_append_together() {
    let r = load(&format!(
        "{RULE_R}- rule: r\n  condition: evt.type = close\n  priority: debug\n  enabled: false\n  tags: [z]\n  desc: more\n  override:\n    condition: replace\n    priority: replace\n    enabled: replace\n    tags: replace\n    desc: append\n"
    ));
    assert_clean(&r);
    let rule = &r.rules[0];
    assert_eq!(rule.condition.value, "evt.type = close");
    assert_eq!(rule.priority, Priority::Debug);
    assert!(!rule.enabled);
    assert_eq!(rule.tags, vec!["z"]);
    assert_eq!(rule.desc, "d more");
    assert_eq!(rule.output.value, "out %proc.name");
}

#[test]
fn rule_old_style_append_takes_condition_and_exceptions_only() {
    let r = load(&format!(
        "{RULE_R}- rule: r\n  condition: and proc.name = cat\n  output: ignored\n  append: true\n"
    ));
    assert_eq!(r.errors().count(), 0, "{:#?}", diags(&r));
    assert_eq!(r.warnings().count(), 1);
    assert_eq!(
        r.rules[0].condition.value,
        "evt.type = open and proc.name = cat"
    );
    assert_eq!(r.rules[0].output.value, "out %proc.name");
}

#[test]
fn override_errors_follow_falco() {
    let cases = [
        (
            "  priority: info\n  override:\n    priority: append\n",
            "r.yaml:10:5: error: key 'priority' cannot be appended to, use 'replace' instead",
        ),
        (
            "  source: x\n  override:\n    source: replace\n",
            "r.yaml:10:5: error: key 'source' cannot be replaced",
        ),
        (
            "  desc: x\n  override:\n    desc: merge\n",
            "r.yaml:10:11: error: invalid override operation for key 'desc': 'merge'; allowed values are: append replace",
        ),
        (
            "  override:\n    output: append\n",
            "r.yaml:9:5: error: an append override for 'output' was specified but 'output' is not defined",
        ),
        (
            "  desc: x\n  output: y\n  override:\n    desc: append\n",
            "r.yaml:9:3: error: unexpected key 'output': no corresponding entry under 'override' is defined",
        ),
        (
            "  desc: x\n  append: true\n  override:\n    desc: append\n",
            "r.yaml:7:3: error: keys 'override' and 'append: true' cannot be used together; add an 'append' entry (e.g. 'condition: append') under 'override' instead",
        ),
    ];
    for (body, expected) in cases {
        let r = load(&format!("{RULE_R}- rule: r\n{body}"));
        assert_eq!(errors(&r), vec![expected.to_string()], "{body}");
        assert_eq!(r.rules[0].desc, "d", "nothing of a failing item is applied");
    }
}

#[test]
fn enabled_alone_toggles_an_earlier_rule() {
    let r = load(&format!("{RULE_R}- rule: r\n  enabled: false\n"));
    assert_eq!(r.errors().count(), 0);
    assert_eq!(
        diags(&r),
        vec!["r.yaml:7:3: warning: the standalone 'enabled' key usage is deprecated; the correct approach requires also a 'replace' entry under the 'override' key (i.e. 'enabled: replace')"]
    );
    assert!(!r.rules[0].enabled);
    let r = load("- rule: nope\n  enabled: true\n");
    assert_eq!(
        errors(&r),
        vec!["r.yaml:1:3: error: rule has 'enabled' key but no rule by that name already exists"]
    );
    // Without `enabled` either, the item is incomplete.
    let r = load(&format!("{RULE_R}- rule: r\n  tags: [x]\n"));
    assert_eq!(
        errors(&r),
        vec!["r.yaml:7:3: error: item has no mapping for key 'enabled'"]
    );
}

#[test]
fn later_files_tune_earlier_ones() {
    let r = load_many(&[
        ("base.yaml", RULE_R),
        (
            "local.yaml",
            "- rule: r\n  condition: and proc.name = sh\n  override:\n    condition: append\n- rule: r\n  enabled: false\n  override:\n    enabled: replace\n",
        ),
    ]);
    assert_clean(&r);
    let rule = &r.rules[0];
    assert_eq!(rule.condition.value, "evt.type = open and proc.name = sh");
    assert!(!rule.enabled);
    assert_eq!(rule.loc.file.as_ref(), "base.yaml");
    assert_eq!(
        rule.condition.loc_of_offset(20).to_string(),
        "local.yaml:2:18"
    );
}

#[test]
fn sources_default_to_syscall_and_others_are_kept_but_marked() {
    let r = load(&format!("{RULE_R}- rule: k\n  desc: d\n  condition: ka.verb = get\n  output: o\n  priority: info\n  source: k8s_audit\n"));
    assert_eq!(r.errors().count(), 0);
    assert_eq!(
        diags(&r),
        vec!["r.yaml:7:3: warning: unknown source 'k8s_audit', the rule is kept but skipped"]
    );
    assert!(!r.rules[1].known_source);
    assert_eq!(r.rules[1].source, "k8s_audit");
    let r = load(&format!("{RULE_R}- rule: r\n  condition: x\n  source: k8s_audit\n  override:\n    condition: replace\n"));
    assert_eq!(
        errors(&r),
        vec!["r.yaml:7:3: error: rule has been re-defined with a different source"]
    );
}

#[test]
fn engine_and_plugin_versions() {
    let r = load("- required_engine_version: 0.57.0\n- required_engine_version: 9\n- required_plugin_versions:\n  - name: container\n    version: 0.4.0\n    alternatives:\n      - name: k8smeta\n        version: 0.1.0\n");
    assert_clean(&r);
    let v = r.required_engine_version.as_ref().map(|v| v.version);
    assert_eq!(v, Some(EngineVersion::new(0, 57, 0)));
    let p = &r.required_plugin_versions[0];
    assert_eq!(p.alternatives.len(), 2);
    assert_eq!(p.alternatives[1].name, "k8smeta");
    assert_eq!(p.loc.to_string(), "r.yaml:4:5");

    let r = load("- required_engine_version: 0.99.0\n");
    assert_eq!(
        errors(&r),
        vec![
            "r.yaml:1:3: error: rules require engine version 0.99.0, but engine version is 0.57.0"
        ]
    );
    let r = load("- required_engine_version: latest\n");
    assert_eq!(r.errors().count(), 1);
    let r = load("- required_plugin_versions:\n  - name: c\n    version: one\n");
    assert_eq!(
        errors(&r),
        vec!["r.yaml:2:5: error: invalid required version 'one' for plugin 'c'"]
    );
}

#[test]
fn invalid_names_warn() {
    let r = load("- macro: 1m\n  condition: a\n- list: a b\n  items: []\n");
    let d = diags(&r);
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d[0].starts_with("r.yaml:1:3: warning: macro has an invalid name"));
    assert!(d[1].starts_with("r.yaml:3:3: warning: list has an invalid name"));
}

// ---- exceptions → effective condition -----------------------------------------------------

#[test]
fn exception_scalar_form_defaults_to_in() {
    // Single field: comps defaults to `in`; `(<field> <comp> (<v1>, <v2>))`.
    assert_eq!(
        effective("    - name: e\n      fields: proc.name\n      values: [sshd, sudo]\n"),
        "(evt.type = open) and not (proc.name in (sshd, sudo))"
    );
}

#[test]
fn exception_scalar_form_with_pmatch_and_a_value_with_spaces() {
    // quote_item: a value holding a space, not starting with a quote, gets double quotes.
    assert_eq!(
        effective("    - name: e\n      fields: fd.name\n      comps: pmatch\n      values: [/etc, \"/my dir\"]\n"),
        "(evt.type = open) and not (fd.name pmatch (/etc, \"/my dir\"))"
    );
}

#[test]
fn exception_list_form_single_field() {
    // Tuple form: comps default to `=`, each tuple is `( <f> <c> <v>)` (Falco's leading blank).
    assert_eq!(
        effective("    - name: e\n      fields: [proc.name]\n      values: [[sshd]]\n"),
        "(evt.type = open) and not (( proc.name = sshd))"
    );
}

#[test]
fn exception_multi_field_tuples() {
    // Tuples joined with ` or `, fields within a tuple with ` and ` plus Falco's leading blank.
    assert_eq!(
        effective("    - name: e\n      fields: [proc.name, fd.name]\n      comps: [=, startswith]\n      values:\n        - [cat, /etc/]\n        - [dog, /var/]\n"),
        "(evt.type = open) and not (( proc.name = cat and  fd.name startswith /etc/) or ( proc.name = dog and  fd.name startswith /var/))"
    );
}

#[test]
fn exception_list_operators_take_lists_and_list_names() {
    // `in` with a scalar value: paren_item wraps it, so a list name becomes `(my_list)`;
    // an inline list element becomes `(a, b)`; `=` with a value with a space is quoted.
    assert_eq!(
        effective("    - name: e\n      fields: [proc.name, proc.pname, proc.cmdline]\n      comps: [in, intersects, =]\n      values:\n        - [my_list, [a, b], curl 127.0.0.1]\n"),
        "(evt.type = open) and not (( proc.name in (my_list) and  proc.pname intersects (a, b) and  proc.cmdline = \"curl 127.0.0.1\"))"
    );
}

#[test]
fn exception_modifier_operators_and_comp_trimming() {
    // Falco test exceptions_modifier_op_multi_field_both_compound: comps are trimmed, and
    // `startswith anyof` takes a list like `in`.
    assert_eq!(
        effective("    - name: e\n      fields: [proc.name, fd.name]\n      comps: [\"  contains  \", \"  startswith anyof  \"]\n      values:\n        - [agent, [/etc/, /var/]]\n"),
        "(evt.type = open) and not (( proc.name contains agent and  fd.name startswith anyof (/etc/, /var/)))"
    );
    assert_eq!(
        effective("    - name: e\n      fields: proc.name\n      comps: startswith oneof\n      values: [sshd, sudo]\n"),
        "(evt.type = open) and not (proc.name startswith oneof (sshd, sudo))"
    );
}

#[test]
fn exception_values_with_quotes_are_not_requoted() {
    // quote_item leaves values that already start with a quote alone (no escaping at all).
    assert_eq!(
        effective("    - name: e\n      fields: [proc.cmdline]\n      values:\n        - ['\"a b\"']\n        - [it's]\n"),
        "(evt.type = open) and not (( proc.cmdline = \"a b\") or ( proc.cmdline = it's))"
    );
}

#[test]
fn exceptions_without_values_add_no_clause_but_wrap_the_condition() {
    assert_eq!(
        effective(
            "    - name: e\n      fields: [proc.name]\n    - name: f\n      fields: proc.name\n"
        ),
        "(evt.type = open)"
    );
}

#[test]
fn several_exceptions_each_add_a_clause() {
    let r = load(&rule_with_exceptions(
        "    - name: e\n      fields: proc.name\n      values: [a]\n    - name: f\n      fields: [fd.name]\n      values: [[/x]]\n",
    ));
    assert_clean(&r);
    let rule = &r.rules[0];
    assert_eq!(
        rule.effective_condition,
        "(evt.type = open) and not (proc.name in (a)) and not (( fd.name = /x))"
    );
    // Offsets map back: inside the condition, and inside each clause to its exception.
    assert_eq!(rule.loc_of_effective_offset(1).to_string(), "r.yaml:3:14");
    let f = rule.effective_condition.find("fd.name").unwrap_or(0);
    assert_eq!(rule.loc_of_effective_offset(f).to_string(), "r.yaml:11:7");
    assert_eq!(rule.exceptions.len(), 2);
    assert_eq!(
        rule.exceptions[0].comps,
        ExceptionComps::Single("in".into())
    );
    assert_eq!(
        rule.exceptions[1].comps,
        ExceptionComps::List(vec!["=".into()])
    );
}

#[test]
fn exception_append_adds_values_or_new_exceptions() {
    let base =
        rule_with_exceptions("    - name: e\n      fields: [proc.name]\n      values: [[a]]\n");
    let r = load(&format!(
        "{base}- rule: r\n  exceptions:\n    - name: e\n      values: [[b]]\n    - name: n\n      fields: fd.name\n      values: [/tmp]\n  override:\n    exceptions: append\n"
    ));
    assert_clean(&r);
    assert_eq!(
        r.rules[0].effective_condition,
        "(evt.type = open) and not (( proc.name = a) or ( proc.name = b)) and not (fd.name in (/tmp))"
    );
    // Old-style append does the same.
    let r = load(&format!(
        "{base}- rule: r\n  append: true\n  exceptions:\n    - name: e\n      values: [[c]]\n"
    ));
    assert_eq!(r.errors().count(), 0, "{:#?}", diags(&r));
    assert_eq!(
        r.rules[0].effective_condition,
        "(evt.type = open) and not (( proc.name = a) or ( proc.name = c))"
    );
    // Fields of an existing exception cannot be appended to.
    let r = load(&format!(
        "{base}- rule: r\n  exceptions:\n    - name: e\n      fields: [fd.name]\n      values: [[b]]\n  override:\n    exceptions: append\n"
    ));
    assert_eq!(
        errors(&r),
        vec!["r.yaml:13:7: error: can not append exception fields to existing exception, only values"]
    );
}

#[test]
fn exception_replace_swaps_the_whole_list() {
    let base =
        rule_with_exceptions("    - name: e\n      fields: [proc.name]\n      values: [[a]]\n");
    let r = load(&format!(
        "{base}- rule: r\n  exceptions:\n    - name: x\n      fields: fd.name\n      values: [/tmp]\n  override:\n    exceptions: replace\n"
    ));
    assert_clean(&r);
    assert_eq!(
        r.rules[0].effective_condition,
        "(evt.type = open) and not (fd.name in (/tmp))"
    );
}

#[test]
fn exception_errors_have_positions() {
    // Tuple length differs from the fields (Falco: "Fields and values lists must have equal length").
    let r = load(&rule_with_exceptions(
        "    - name: e\n      fields: [proc.name, fd.name]\n      values:\n        - [a, b]\n        - [c]\n",
    ));
    assert_eq!(
        errors(&r),
        vec!["r.yaml:12:11: error: exception 'e': fields and values lists must have equal length"]
    );
    assert_eq!(
        r.rules[0].effective_condition,
        "(evt.type = open) and not (( proc.name = a and  fd.name = b))"
    );
    // A tuple for a single field.
    let r = load(&rule_with_exceptions(
        "    - name: e\n      fields: proc.name\n      values: [[a, b]]\n",
    ));
    assert_eq!(
        errors(&r),
        vec!["r.yaml:10:16: error: exception 'e': expected values array to contain a list of strings"]
    );
    // Comps and fields of different lengths, bad comps, missing fields.
    let cases = [
        (
            "    - name: e\n      fields: [proc.name, fd.name]\n      comps: [=]\n      values: [[a, b]]\n",
            "r.yaml:8:7: error: exception fields and comps lists must have equal length",
        ),
        (
            "    - name: e\n      fields: [proc.name]\n      comps: [like]\n      values: [[a]]\n",
            "r.yaml:8:7: error: 'like' is not a supported comparison operator",
        ),
        (
            "    - name: e\n      fields: proc.name\n      comps: =\n      values: [a]\n",
            "r.yaml:8:7: error: when fields is a single value, comps must be one of (in, pmatch, intersects) or a modifier operator (e.g. startswith oneof), not '='",
        ),
        (
            "    - name: e\n      values: [a]\n",
            "r.yaml:8:7: error: item has no mapping for key 'fields'",
        ),
        (
            "    - name: e\n      fields: [proc.name]\n      values: a\n",
            "r.yaml:10:15: error: rule exception values must be a sequence",
        ),
    ];
    for (ex, expected) in cases {
        let r = load(&rule_with_exceptions(ex));
        assert_eq!(errors(&r), vec![expected.to_string()], "{ex}");
    }
    let r = load(&rule_with_exceptions(
        "    - name: e\n      fields: proc.name\n      values: [a]\n    - name: e\n      fields: proc.name\n      values: [b]\n",
    ));
    assert_eq!(
        diags(&r),
        vec!["r.yaml:11:7: warning: multiple definitions of exception 'e' in the same rule"]
    );
}

#[test]
fn error_items_are_skipped_and_loading_goes_on() {
    let r = load("- macro: a\n  condition: x\n- macro: b\n- macro: c\n  condition: y\n");
    assert_eq!(
        errors(&r),
        vec!["r.yaml:3:3: error: item has no mapping for key 'condition'"]
    );
    assert_eq!(r.macros.keys().collect::<Vec<_>>(), vec!["a", "c"]);
}

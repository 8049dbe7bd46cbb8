//! Loading never panics: arbitrary text, arbitrary bytes, and arbitrary YAML built from the
//! rule-file vocabulary (so the reader's and collector's paths are exercised, not only the
//! YAML parser's).

use driftwatch_rules::{load_str, Loader};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Value {
    Scalar(String),
    Seq(Vec<Value>),
    Map(Vec<(String, Value)>),
}

const KEYS: &[&str] = &[
    "rule",
    "macro",
    "list",
    "condition",
    "output",
    "desc",
    "priority",
    "tags",
    "enabled",
    "source",
    "exceptions",
    "name",
    "fields",
    "comps",
    "values",
    "override",
    "append",
    "items",
    "required_engine_version",
    "required_plugin_versions",
    "version",
    "alternatives",
    "capture",
    "capture_duration",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "other",
];

const SCALARS: &[&str] = &[
    "r",
    "m",
    "l",
    "append",
    "replace",
    "true",
    "false",
    "info",
    "WARNING",
    "bogus",
    "proc.name",
    "evt.type = open",
    "in",
    "pmatch",
    "startswith oneof",
    "=",
    "0.57.0",
    "9",
    "0.99.0",
    "syscall",
    "k8s_audit",
    "\"a b\"",
    "'it''s'",
    "~",
    "\"\"",
    "x y z",
    "%proc.name",
    "4294967296",
];

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        proptest::sample::select(SCALARS).prop_map(|s| Value::Scalar(s.to_string())),
        "[a-z .=()%]{0,12}".prop_map(Value::Scalar),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Seq),
            proptest::collection::vec(
                (
                    proptest::sample::select(KEYS).prop_map(str::to_string),
                    inner
                ),
                0..6
            )
            .prop_map(Value::Map),
        ]
    })
}

fn render(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Scalar(s) => {
            out.push(' ');
            out.push_str(s);
            out.push('\n');
        }
        Value::Seq(items) if items.is_empty() => out.push_str(" []\n"),
        Value::Map(entries) if entries.is_empty() => out.push_str(" {}\n"),
        Value::Seq(items) => {
            out.push('\n');
            for i in items {
                out.push_str(&pad);
                out.push('-');
                render(i, indent + 2, out);
            }
        }
        Value::Map(entries) => {
            out.push('\n');
            for (k, v) in entries {
                out.push_str(&pad);
                out.push_str(k);
                out.push(':');
                render(v, indent + 2, out);
            }
        }
    }
}

fn document(items: &[Value]) -> String {
    let mut out = String::new();
    for i in items {
        out.push('-');
        render(i, 2, &mut out);
    }
    out
}

fn scalar(s: &str) -> Value {
    Value::Scalar(s.to_string())
}

/// A complete rule plus random keys, so collection and exception building run too.
fn full_rule() -> impl Strategy<Value = Value> {
    let exception = (
        proptest::sample::select(&["e", "f"][..]),
        value(),
        value(),
        value(),
    )
        .prop_map(|(name, fields, comps, values)| {
            Value::Map(vec![
                ("name".into(), scalar(name)),
                ("fields".into(), fields),
                ("comps".into(), comps),
                ("values".into(), values),
            ])
        });
    (
        proptest::collection::vec(exception, 0..3),
        proptest::collection::vec(
            (
                proptest::sample::select(KEYS).prop_map(str::to_string),
                value(),
            ),
            0..3,
        ),
    )
        .prop_map(|(exceptions, extra)| {
            let mut m = vec![
                ("rule".to_string(), scalar("r")),
                ("desc".into(), scalar("d")),
                ("condition".into(), scalar("evt.type = open")),
                ("output".into(), scalar("o")),
                ("priority".into(), scalar("info")),
                ("exceptions".into(), Value::Seq(exceptions)),
            ];
            m.extend(extra);
            Value::Map(m)
        })
}

fn item() -> impl Strategy<Value = Value> {
    prop_oneof![full_rule(), partial_item()]
}

fn partial_item() -> impl Strategy<Value = Value> {
    (
        proptest::sample::select(&["rule", "macro", "list", "required_engine_version"][..]),
        proptest::sample::select(&["r", "m", "l", "0.57.0"][..]),
        proptest::collection::vec(
            (
                proptest::sample::select(KEYS).prop_map(str::to_string),
                value(),
            ),
            0..6,
        ),
    )
        .prop_map(|(kind, name, mut rest)| {
            rest.insert(0, (kind.to_string(), Value::Scalar(name.to_string())));
            Value::Map(rest)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = load_str("t.yaml", &text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut l = Loader::default();
        l.add_bytes("t.yaml", &bytes);
        let _ = l.finish();
    }

    #[test]
    fn yaml_punctuation_soup_never_panics(text in "[-:\\[\\]{}|>'\"&*!#?, \n a-c0-9]{0,300}") {
        let r = load_str("t.yaml", &text);
        for d in &r.diagnostics {
            prop_assert!(d.loc.line >= 1 && d.loc.col >= 1, "{d}");
        }
    }

    #[test]
    fn arbitrary_rule_shaped_yaml_never_panics(items in proptest::collection::vec(item(), 0..8)) {
        let text = document(&items);
        let r = load_str("t.yaml", &text);
        for rule in &r.rules {
            // Offsets anywhere in the texts map somewhere.
            for off in 0..=rule.effective_condition.len() + 1 {
                let _ = rule.loc_of_effective_offset(off);
            }
            for off in 0..=rule.output.value.len() + 1 {
                let _ = rule.output.loc_of_offset(off);
            }
        }
    }

    #[test]
    fn truncated_falco_files_never_panic(cut in any::<proptest::sample::Index>(), drop_line in any::<proptest::sample::Index>()) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/peers/falco-rules/falco_rules.yaml");
        let Ok(text) = std::fs::read_to_string(path) else { return Ok(()); };
        let lines: Vec<&str> = text.lines().collect();
        let dropped = drop_line.index(lines.len());
        let mangled: String = lines.iter().enumerate().filter(|(i, _)| *i != dropped).map(|(_, l)| format!("{l}\n")).collect();
        let mut at = cut.index(mangled.len());
        while !mangled.is_char_boundary(at) { at -= 1; }
        let _ = load_str("falco_rules.yaml", &mangled[..at]);
    }
}

#[test]
fn deep_nesting_and_huge_input_are_diagnostics() {
    let deep = format!("- rule: {}x{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let r = load_str("t.yaml", &deep);
    assert!(r.has_errors());
    let deep_block: String = (0..2_000)
        .map(|i| format!("{}- \n", " ".repeat(i * 2)))
        .collect();
    let r = load_str("t.yaml", &deep_block);
    assert!(r.has_errors());
    let huge = "#".repeat(driftwatch_rules::MAX_FILE_BYTES + 1);
    let r = load_str("t.yaml", &huge);
    assert_eq!(r.errors().count(), 1);
}

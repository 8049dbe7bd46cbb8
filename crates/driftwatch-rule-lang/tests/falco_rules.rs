//! Every `condition:` of every `rule:`/`macro:` in Falco's own rule files must parse with
//! zero diagnostics, and its canonical text must parse back to the same tree.
//!
//! The files live outside the repository (`shared/peers/falco-rules` beside the checkout);
//! when they are absent the test says so and passes.

use std::path::PathBuf;

use driftwatch_rule_lang::parse;
use serde_yaml::Value;

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers/falco-rules")
}

#[test]
fn falco_rule_files_parse_without_errors() {
    let dir = rules_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("skipped: Falco rule files not found at {}", dir.display());
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        println!("skipped: no *.yaml files in {}", dir.display());
        return;
    }

    let mut failures = Vec::new();
    let (mut rules, mut macros, mut lists, mut list_items) = (0, 0, 0, 0);
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable rules file");
        let doc: Value = serde_yaml::from_str(&text).expect("valid YAML");
        {
            let Some(items) = doc.as_sequence() else {
                continue;
            };
            for item in items {
                let Some(h) = item.as_mapping() else { continue };
                let get = |k: &str| h.get(k);
                if let Some(list) = get("list") {
                    lists += 1;
                    list_items += get("items")
                        .and_then(Value::as_sequence)
                        .map_or(0, Vec::len);
                    let _ = list;
                    continue;
                }
                let (kind, name) = if let Some(n) = get("rule") {
                    rules += 1;
                    ("rule", n)
                } else if let Some(n) = get("macro") {
                    macros += 1;
                    ("macro", n)
                } else {
                    continue;
                };
                let name = name.as_str().unwrap_or("?");
                let Some(cond) = get("condition").and_then(Value::as_str) else {
                    failures.push(format!(
                        "{}: {kind} '{name}' has no condition",
                        file.display()
                    ));
                    continue;
                };
                let parsed = parse(cond);
                for d in &parsed.diagnostics {
                    failures.push(format!(
                        "{}: {kind} '{name}': {}: {}\n    {cond}",
                        file.display(),
                        d.line_col(cond),
                        d.message
                    ));
                }
                if let Some(e) = parsed.expr.filter(|_| parsed.diagnostics.is_empty()) {
                    let printed = e.to_string();
                    let again = parse(&printed);
                    if !again.diagnostics.is_empty()
                        || again.expr.as_ref().map(|x| x.without_spans()) != Some(e.without_spans())
                    {
                        failures.push(format!(
                            "{}: {kind} '{name}': canonical text does not round-trip: {printed}",
                            file.display()
                        ));
                    }
                }
            }
        }
    }
    println!(
        "parsed {} conditions ({rules} rules, {macros} macros) from {} files; \
         {lists} lists with {list_items} items; errors = {}",
        rules + macros,
        files.len(),
        failures.len()
    );
    assert!(
        rules + macros > 0,
        "no conditions found in {}",
        dir.display()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! The compatibility target: falcosecurity's own rule files (kept in `shared/peers/falco-rules`
//! beside the repository) load with zero errors, alone and together in Falco's order.

use driftwatch_rules::{load_files, LoadResult, ENGINE_VERSION};
use std::path::PathBuf;

const FILES: &[&str] = &[
    "falco_rules.yaml",
    "falco-incubating_rules.yaml",
    "falco-sandbox_rules.yaml",
    "falco-deprecated_rules.yaml",
];

fn rules_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers/falco-rules");
    if dir.join(FILES[0]).is_file() {
        Some(dir)
    } else {
        println!("skipped: {} is absent", dir.display());
        None
    }
}

fn summary(name: &str, r: &LoadResult) -> String {
    format!(
        "{name}: rules={} enabled={} macros={} lists={} warnings={} errors={}",
        r.rules.len(),
        r.rules.iter().filter(|r| r.enabled).count(),
        r.macros.len(),
        r.lists.len(),
        r.warnings().count(),
        r.errors().count()
    )
}

fn assert_no_errors(name: &str, r: &LoadResult) {
    let errors: Vec<String> = r.errors().map(|d| d.to_string()).collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}");
}

#[test]
fn each_falco_file_loads_alone_without_errors() {
    let Some(dir) = rules_dir() else { return };
    for f in FILES {
        let r = load_files(&[dir.join(f)]);
        println!("{}", summary(f, &r));
        for w in r.warnings() {
            println!("  {w}");
        }
        assert_no_errors(f, &r);
        assert!(!r.rules.is_empty(), "{f} has rules");
        let req = r
            .required_engine_version
            .as_ref()
            .expect("engine version stated");
        assert!(ENGINE_VERSION.compatible_with(req.version), "{f}");
        assert_eq!(r.required_plugin_versions.len(), 1, "{f}");
        assert_eq!(
            r.required_plugin_versions[0].alternatives[0].name,
            "container"
        );
    }
}

#[test]
fn all_falco_files_load_in_order_without_errors() {
    let Some(dir) = rules_dir() else { return };
    let paths: Vec<PathBuf> = FILES.iter().map(|f| dir.join(f)).collect();
    let r = load_files(&paths);
    println!("{}", summary("all four", &r));
    assert_no_errors("all four", &r);
    let req = r
        .required_engine_version
        .as_ref()
        .map(|v| v.version.to_string());
    assert_eq!(req.as_deref(), Some("0.57.0"), "the highest stated version");
    // Every rule keeps a position in its file and a condition position inside the file.
    for rule in &r.rules {
        assert!(
            rule.loc.line > 0 && rule.condition.loc.line > rule.loc.line,
            "{}",
            rule.name
        );
        assert_eq!(
            rule.effective_condition, rule.condition.value,
            "{}",
            rule.name
        );
        assert_eq!(rule.source, "syscall");
        assert!(rule.known_source);
    }
    // Spot check: a well-known stable rule, its position and its condition's first token.
    let rule = r
        .rule("Terminal shell in container")
        .expect("stable rule present");
    assert!(rule.loc.file.ends_with("falco_rules.yaml"));
    assert!(rule.condition.value.starts_with("spawned_process"));
    assert!(rule.tags.windows(2).all(|w| w[0] < w[1]), "tags sorted");
}

#[test]
fn condition_offsets_map_to_the_same_character_in_the_file() {
    let Some(dir) = rules_dir() else { return };
    for f in FILES {
        let path = dir.join(f);
        let Ok(text) = std::fs::read_to_string(&path) else {
            panic!("cannot read {}", path.display());
        };
        let lines: Vec<&str> = text.lines().collect();
        let r = load_files(std::slice::from_ref(&path));
        let texts = r
            .rules
            .iter()
            .flat_map(|r| [&r.condition, &r.output])
            .chain(r.macros.values().map(|m| &m.condition));
        let mut checked = 0;
        for t in texts {
            for (off, c) in t.value.char_indices().filter(|(_, c)| !c.is_whitespace()) {
                let loc = t.loc_of_offset(off);
                let at = lines
                    .get(loc.line as usize - 1)
                    .and_then(|l| l.chars().nth(loc.col as usize - 1));
                assert_eq!(
                    at,
                    Some(c),
                    "{f}: offset {off} of {:?} maps to {loc}",
                    t.value
                );
                checked += 1;
            }
        }
        println!("{f}: {checked} condition/output characters map back exactly");
    }
}

//! The agent's rules: the built-in `rules/driftwatch_rules.yaml` (embedded), then the user's rule
//! files and directories in order, later ones tuning earlier ones as in Falco.

use driftwatch_rules::{CompileOptions, LoadOptions, Loader, MatchMode, RuleSet, Severity};
use std::path::{Path, PathBuf};

/// The shipped rules, embedded in the binary.
pub const BUILTIN_RULES: &str = include_str!("../../../rules/driftwatch_rules.yaml");
/// The name diagnostics use for the built-in file.
pub const BUILTIN_NAME: &str = "driftwatch_rules.yaml (built in)";

/// Rule files that do not load or compile: every diagnostic, `file:line:col: error: message`.
#[derive(Debug, thiserror::Error)]
#[error("invalid rules:\n{}", .diagnostics.join("\n"))]
pub struct RulesError {
    pub diagnostics: Vec<String>,
}

/// Load (built-in first unless `builtin` is false) and compile; warnings are logged (when `log`),
/// errors returned all at once.
pub fn load(
    paths: &[PathBuf],
    builtin: bool,
    skip_unknown: bool,
    log: bool,
) -> Result<RuleSet, RulesError> {
    let mut loader = Loader::new(LoadOptions::default());
    if builtin {
        loader.add_str(BUILTIN_NAME, BUILTIN_RULES);
    }
    let files = driftwatch_rules::rule_files(paths).map_err(|e| RulesError {
        diagnostics: vec![format!(
            "error: {e}: {}",
            std::error::Error::source(&e).map_or(String::new(), |s| s.to_string())
        )],
    })?;
    for f in files {
        loader.add_file(Path::new(&f));
    }
    let loaded = loader.finish();
    let compiled = driftwatch_rules::compile(
        &loaded,
        &CompileOptions {
            skip_unknown,
            mode: MatchMode::All,
        },
    );
    let mut errors = Vec::new();
    for d in loaded.diagnostics.iter().chain(compiled.diagnostics.iter()) {
        match d.severity {
            Severity::Error => errors.push(d.to_string()),
            Severity::Warning if log => tracing::warn!("{d}"),
            Severity::Warning => {}
        }
    }
    if !errors.is_empty() {
        return Err(RulesError {
            diagnostics: errors,
        });
    }
    if !log {
        return Ok(compiled.rules);
    }
    tracing::info!(
        rules = compiled.stats.loaded,
        skipped = compiled.stats.skipped_unknown,
        "rules loaded"
    );
    Ok(compiled.rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_load_and_have_the_seed_rules() {
        let set = load(&[], true, false, false).expect("built-in rules compile");
        let names: Vec<&str> = set.rules().iter().map(|r| r.name.as_str()).collect();
        for n in [
            "Drift Detected (Container Image Modified Binary)",
            "Container Shell Spawned",
            "Package Manager Execution in Container",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
    }

    #[test]
    fn user_files_tune_the_builtin_rules_and_errors_are_all_reported() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("local.yaml");
        std::fs::write(
            &f,
            "- rule: Container Shell Spawned\n  enabled: false\n- rule: Broken\n  desc: x\n  \
             condition: proc.nosuchfield = 1\n  output: x\n  priority: WARNING\n",
        )
        .unwrap();
        let err = load(&[dir.path().to_path_buf()], true, false, false).unwrap_err();
        assert!(
            err.diagnostics.iter().any(|d| d.contains("local.yaml:")),
            "{err}"
        );
        let set = load(&[f], true, true, false).expect("skip-unknown skips the broken rule");
        assert!(!set
            .rules()
            .iter()
            .any(|r| r.name == "Container Shell Spawned"));
        assert!(!set.rules().iter().any(|r| r.name == "Broken"));
    }
}

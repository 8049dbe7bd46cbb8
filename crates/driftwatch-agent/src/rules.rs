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

/// The items of the rules' drift allow-lists as loaded (the built-in lists with the user's
/// appends and overrides): approved drift, which enforcement must not kill either (see
/// `driftwatch_respond::approvals`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowLists {
    /// `drift_allowed_paths`: path prefixes (whole components).
    pub paths: Vec<String>,
    /// `drift_allowed_images`: image repositories.
    pub images: Vec<String>,
    /// `known_init_containers`: container names.
    pub init_containers: Vec<String>,
    /// The values of the drift rule's exceptions that compare only what the kernel can be
    /// told (image repository, container name, `drift.path` by `=` or `startswith`).
    pub exceptions: Vec<ExceptionAllow>,
    /// Values of the drift rule's exceptions on anything else (they silence the rule only).
    pub exceptions_not_enforceable: usize,
}

/// One value of an exception of the drift rule, as matchers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExceptionAllow {
    /// The exception's name.
    pub name: String,
    pub image: Option<String>,
    pub container: Option<String>,
    pub path_starts: Option<String>,
    pub path_is: Option<String>,
}

/// The rule whose exceptions and allow-lists approve drift.
pub const DRIFT_RULE: &str = "Drift Detected (Container Image Modified Binary)";

/// The values of the drift rule's exceptions as matchers, and how many could not be.
fn exception_allows(loaded: &driftwatch_rules::LoadResult) -> (Vec<ExceptionAllow>, usize) {
    use driftwatch_rules::{ExceptionComps, ExceptionFields, ExceptionValue, TupleItem};
    let Some(rule) = loaded.rule(DRIFT_RULE) else {
        return (Vec::new(), 0);
    };
    let mut out = Vec::new();
    let mut other = 0;
    for ex in &rule.exceptions {
        let (fields, comps): (Vec<&str>, Vec<&str>) = match (&ex.fields, &ex.comps) {
            (ExceptionFields::Single(f), ExceptionComps::Single(c)) => {
                (vec![f.as_str()], vec![c.as_str()])
            }
            (ExceptionFields::List(f), ExceptionComps::List(c)) => (
                f.iter().map(String::as_str).collect(),
                c.iter().map(String::as_str).collect(),
            ),
            _ => {
                other += ex.values.len();
                continue;
            }
        };
        for v in &ex.values {
            let items: Vec<&str> = match &v.value {
                ExceptionValue::Scalar(s) => vec![s.as_str()],
                ExceptionValue::Tuple(t) => t
                    .iter()
                    .map(|i| match i {
                        TupleItem::Scalar(s) => Some(s.as_str()),
                        TupleItem::List(_) => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .unwrap_or_default(),
            };
            let mut a = ExceptionAllow {
                name: ex.name.clone(),
                ..ExceptionAllow::default()
            };
            let mut ok = items.len() == fields.len() && fields.len() == comps.len();
            for ((field, comp), item) in fields.iter().zip(&comps).zip(&items) {
                let item = unquote(item).to_string();
                match (*field, *comp) {
                    ("container.image.repository", "=") => a.image = Some(item),
                    ("container.name", "=") => a.container = Some(item),
                    ("drift.path", "startswith") => a.path_starts = Some(item),
                    ("drift.path", "=") => a.path_is = Some(item),
                    _ => ok = false,
                }
            }
            if ok {
                out.push(a);
            } else {
                other += 1;
            }
        }
    }
    (out, other)
}

impl AllowLists {
    fn of(loaded: &driftwatch_rules::LoadResult) -> AllowLists {
        let items = |name: &str| -> Vec<String> {
            loaded
                .expanded_list_items(name)
                .unwrap_or_default()
                .into_iter()
                .map(|i| unquote(&i).to_string())
                .filter(|i| !i.is_empty())
                .collect()
        };
        let (exceptions, exceptions_not_enforceable) = exception_allows(loaded);
        AllowLists {
            paths: items("drift_allowed_paths"),
            images: items("drift_allowed_images"),
            init_containers: items("known_init_containers"),
            exceptions,
            exceptions_not_enforceable,
        }
    }
}

/// A list item written in quotes (`'"/opt/x"'`) is that string.
fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// Load (built-in first unless `builtin` is false) and compile; warnings are logged (when `log`),
/// errors returned all at once.
pub fn load(
    paths: &[PathBuf],
    builtin: bool,
    skip_unknown: bool,
    log: bool,
) -> Result<RuleSet, RulesError> {
    load_with_allow_lists(paths, builtin, skip_unknown, log).map(|(rules, _)| rules)
}

/// [`load`], and the items of the drift allow-lists.
pub fn load_with_allow_lists(
    paths: &[PathBuf],
    builtin: bool,
    skip_unknown: bool,
    log: bool,
) -> Result<(RuleSet, AllowLists), RulesError> {
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
    let allow = AllowLists::of(&loaded);
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
        return Ok((compiled.rules, allow));
    }
    tracing::info!(
        rules = compiled.stats.loaded,
        skipped = compiled.stats.skipped_unknown,
        "rules loaded"
    );
    Ok((compiled.rules, allow))
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
    fn the_allow_lists_are_read_with_the_users_overrides() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("local.yaml");
        std::fs::write(
            &f,
            "- list: drift_allowed_paths\n  items: [/opt/plugins, '\"/srv/x\"']\n  override:\n    items: replace\n\
             - list: drift_allowed_images\n  items: [registry.example/app]\n  override:\n    items: append\n\
             - list: known_init_containers\n  items: [installer]\n  override:\n    items: replace\n",
        )
        .expect("write");
        let (_, allow) =
            load_with_allow_lists(std::slice::from_ref(&f), true, false, false).expect("loads");
        assert_eq!(allow.paths, vec!["/opt/plugins", "/srv/x"]);
        assert_eq!(allow.images, vec!["registry.example/app"]);
        assert_eq!(allow.init_containers, vec!["installer"]);
        std::fs::write(
            &f,
            format!(
                "- rule: {DRIFT_RULE}\n  exceptions:\n    - name: image_and_path\n      values:\n\
                 \x20       - [registry.example/app, /opt/app/bin/]\n  override:\n    exceptions: append\n\
                 - rule: {DRIFT_RULE}\n  exceptions:\n    - name: by_user\n      fields: [user.name]\n\
                 \x20     comps: [=]\n      values:\n        - [builder]\n  override:\n    exceptions: append\n"
            ),
        )
        .expect("write");
        let (_, allow) = load_with_allow_lists(&[f], true, false, false).expect("loads");
        assert_eq!(
            allow.exceptions,
            vec![ExceptionAllow {
                name: "image_and_path".into(),
                image: Some("registry.example/app".into()),
                path_starts: Some("/opt/app/bin/".into()),
                ..ExceptionAllow::default()
            }]
        );
        assert_eq!(allow.exceptions_not_enforceable, 1);
        let (_, none) = load_with_allow_lists(&[], true, false, false).expect("loads");
        assert_eq!(none, AllowLists::default());
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

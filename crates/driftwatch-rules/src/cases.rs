//! Rule test cases (`driftwatch rules test CASES.yaml`): events as field maps in, expected rule
//! names out.
//!
//! ```yaml
//! - name: a shell in a container alerts
//!   event:
//!     evt.type: execve            # required: execve, execveat, mmap or mprotect
//!     proc.name: sh
//!     container.id: 0123456789ab
//!     proc.aname: [bash, containerd-shim]   # ancestor list: parent, grandparent, …
//!   expect: [Container Shell Spawned]       # every rule that must match, any order
//! - name: an image binary is quiet
//!   event: {evt.type: execve, proc.name: nginx, container.id: 0123456789ab}
//!   expect: []
//! ```
//!
//! Field values are converted to the field's type (numbers, `true`/`false`); a field left out
//! has no value. A case passes when the set of matching rules (mode `all`) equals `expect`.
//! Pure: the caller reads the file.

use crate::diagnostic::Diagnostic;
use crate::eval::{EvalCtx, RuleSet};
use crate::source_loc::SourceLoc;
use crate::value::MapSource;
use crate::yaml;
use std::sync::Arc;

/// One test case.
#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    pub loc: SourceLoc,
    pub event: MapSource,
    pub expect: Vec<String>,
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    /// Rules that matched, in load order.
    pub matched: Vec<String>,
    pub expected: Vec<String>,
}

/// Parses a case file; every problem is a diagnostic and the bad case is left out.
pub fn parse_cases(file: &str, text: &str) -> (Vec<TestCase>, Vec<Diagnostic>) {
    let (src, docs) = yaml::parse(Arc::from(file), text);
    let mut cases = Vec::new();
    let mut diags = Vec::new();
    let docs = match docs {
        Ok(d) => d,
        Err(e) => {
            diags.push(Diagnostic::error(
                src.loc(e.pos),
                format!("yaml syntax error: {}", e.message),
            ));
            return (cases, diags);
        }
    };
    for doc in docs.iter().filter(|d| !d.is_null()) {
        let Some(items) = doc.as_seq() else {
            diags.push(Diagnostic::error(
                src.loc(doc.start),
                "test cases must be a yaml list",
            ));
            continue;
        };
        for item in items {
            let loc = src.loc(item.start);
            let name = item
                .get("name")
                .and_then(|n| n.as_scalar())
                .unwrap_or("")
                .to_string();
            if name.is_empty() {
                diags.push(Diagnostic::error(loc, "test case needs a 'name'"));
                continue;
            }
            let Some(event) = item.get("event").and_then(|e| e.as_map()) else {
                diags.push(Diagnostic::error(
                    loc,
                    format!("test case '{name}' needs an 'event' map"),
                ));
                continue;
            };
            let mut pairs_ok = true;
            let mut source = MapSource::new(crate::fields::EventType::Execve);
            let mut typed = false;
            for (k, v) in event {
                let key = k.as_scalar().unwrap_or("");
                typed |= key == "evt.type";
                let r = match (v.as_scalar(), v.as_seq()) {
                    (Some(s), _) => source.set(key, s).map(|_| ()),
                    (_, Some(items)) => {
                        let items: Vec<&str> = items.iter().filter_map(|i| i.as_scalar()).collect();
                        source.set_list(key, &items).map(|_| ())
                    }
                    _ => {
                        diags.push(Diagnostic::error(
                            src.loc(v.start),
                            format!(
                                "test case '{name}': value of '{key}' must be a scalar or a list"
                            ),
                        ));
                        pairs_ok = false;
                        continue;
                    }
                };
                if let Err(e) = r {
                    diags.push(Diagnostic::error(
                        src.loc(k.start),
                        format!("test case '{name}': {e}"),
                    ));
                    pairs_ok = false;
                }
            }
            if !typed {
                diags.push(Diagnostic::error(
                    loc.clone(),
                    format!("test case '{name}': the event needs an evt.type"),
                ));
                pairs_ok = false;
            }
            let expect = match item.get("expect") {
                Some(e) => match e.as_seq() {
                    Some(items) => items
                        .iter()
                        .filter_map(|i| i.as_scalar().map(str::to_string))
                        .collect(),
                    None if e.is_null() => Vec::new(),
                    None => {
                        diags.push(Diagnostic::error(
                            src.loc(e.start),
                            format!("test case '{name}': 'expect' must be a list of rule names"),
                        ));
                        continue;
                    }
                },
                None => {
                    diags.push(Diagnostic::error(
                        loc,
                        format!("test case '{name}' needs 'expect' (use [] for no alert)"),
                    ));
                    continue;
                }
            };
            if pairs_ok {
                cases.push(TestCase {
                    name,
                    loc,
                    event: source,
                    expect,
                });
            }
        }
    }
    (cases, diags)
}

/// Runs cases against a rule set (every matching rule counts, whatever the set's mode).
#[must_use]
pub fn run_cases(rules: &RuleSet, cases: &[TestCase]) -> Vec<CaseResult> {
    let mut ctx = EvalCtx::new();
    cases
        .iter()
        .map(|c| {
            let mut matched = Vec::new();
            for r in rules.rules() {
                if r.event_types & (1 << c.event.event_type_index()) != 0
                    && r.matches(&c.event, &mut ctx)
                {
                    matched.push(r.name.clone());
                }
            }
            let mut a = matched.clone();
            let mut b = c.expect.clone();
            a.sort();
            b.sort();
            CaseResult {
                name: c.name.clone(),
                passed: a == b,
                matched,
                expected: c.expect.clone(),
            }
        })
        .collect()
}

//! Compiling loaded rules into evaluation trees: the driver.
//!
//! For each enabled rule of a known source: parse its effective condition (exceptions already
//! folded in by the loader), lower it ([`lower`]: expand macros and named lists, resolve every
//! field against the field table, check operators against field types and values against the
//! field's type, and prepare every matcher (globs, anchored regexes, sets, prefix sets) up
//! front), parse its output, decide what a field driftwatch does not provide means for the rule
//! (an error, or with skipping on a skipped rule or an output field printing `<NA>`), and index
//! it under the event types it can match ([`evttype`]). Problems are all reported at once as
//! `file:line:col` diagnostics.
//!
//! Visibility follows Falco's compiler (`rule_loader_compiler.cpp`): a macro or list may use
//! only macros and lists whose `index` is lower than its own `visibility`; a rule, compiled
//! after every definition, sees all of them. Named lists inside lists expand recursively
//! (each list already expanded when it is used), with a cycle check.
//!
//! Architecture invariant: no IO.

mod evttype;
mod lower;

use crate::definition::LoadResult;
use crate::diagnostic::Diagnostic;
use crate::eval::{CompiledRule, MatchMode, RuleSet};
use crate::output::{OutputFormat, OutputIssue};
use crate::source_loc::SourceLoc;
use driftwatch_rule_lang::parse;
use evttype::{event_types, lower_type_checks, mentions_evt_type, ALL_TYPES};
use lower::{Env, Lower, Origin};
use std::collections::{BTreeMap, HashMap};

/// Deepest macro nesting accepted.
pub const MAX_MACRO_DEPTH: usize = 64;

/// How to compile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompileOptions {
    /// Skip (with a warning) rules that use fields driftwatch does not provide, instead of
    /// failing (`--skip-unknown`; a rule's own `skip-if-unknown-filter: true` does the same).
    pub skip_unknown: bool,
    pub mode: MatchMode,
}

/// Counts of a compilation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompileStats {
    /// Rules compiled and ready to run.
    pub loaded: usize,
    /// Rules skipped because they use fields driftwatch does not provide.
    pub skipped_unknown: usize,
    /// Rules not loaded because of errors.
    pub failed: usize,
    /// Disabled rules and rules of other sources (not compiled).
    pub not_compiled: usize,
    /// Error diagnostics.
    pub errors: usize,
    /// Each unsupported field used in a condition, and the number of rules using it.
    pub unsupported_fields: BTreeMap<String, usize>,
    /// Each unsupported field used only in outputs of rules that loaded anyway (with
    /// `skip_unknown`, such a field prints `<NA>`), and the number of rules using it.
    pub unsupported_output_fields: BTreeMap<String, usize>,
    /// Rules loaded although their output names unsupported fields.
    pub loaded_with_missing_output_fields: usize,
}

/// The result of [`compile`].
#[derive(Debug)]
pub struct Compiled {
    pub rules: RuleSet,
    /// Compile diagnostics (the loader's are in its own result).
    pub diagnostics: Vec<Diagnostic>,
    pub stats: CompileStats,
}

impl Compiled {
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.stats.errors > 0
    }
}

/// Compiles every enabled rule of a known source.
#[must_use]
pub fn compile(load: &LoadResult, opts: &CompileOptions) -> Compiled {
    let mut diags = Vec::new();
    let lists = expand_lists(load, &mut diags);
    let mut macros = HashMap::new();
    for (name, m) in &load.macros {
        let parsed = parse(&m.condition.value);
        for d in &parsed.diagnostics {
            diags.push(Diagnostic::error(
                m.condition.loc_of_offset(d.span.start),
                format!("macro '{name}': {}", d.message),
            ));
        }
        let expr = if parsed.diagnostics.is_empty() {
            parsed.expr
        } else {
            None
        };
        macros.insert(name.as_str(), expr);
    }
    let env = Env {
        load,
        lists,
        macros,
    };
    let mut stats = CompileStats::default();
    let mut compiled = Vec::new();
    for rule in &load.rules {
        if !rule.enabled || !rule.known_source {
            stats.not_compiled += 1;
            continue;
        }
        let mut l = Lower::new(&env, rule);
        let parsed = parse(&rule.effective_condition);
        for d in &parsed.diagnostics {
            l.errors.push(Diagnostic::error(
                rule.loc_of_effective_offset(d.span.start),
                format!("rule '{}': {}", rule.name, d.message),
            ));
        }
        let node = match (&parsed.expr, parsed.diagnostics.is_empty()) {
            (Some(e), true) => l.expr(e, Origin::Rule),
            (None, true) => {
                l.errors.push(Diagnostic::error(
                    rule.condition.loc.clone(),
                    format!("rule '{}': empty condition", rule.name),
                ));
                None
            }
            _ => None,
        };
        let (output, issues) = OutputFormat::parse(&rule.output.value);
        let mut output_unknown: Vec<(String, SourceLoc)> = Vec::new();
        for issue in issues {
            match issue {
                OutputIssue::UnknownField { offset, name } => {
                    if !l.unknown.iter().any(|(f, _, _)| *f == name) {
                        output_unknown.push((name, rule.output.loc_of_offset(offset)));
                    }
                }
                OutputIssue::Invalid { offset, message } => l.errors.push(Diagnostic::error(
                    rule.output.loc_of_offset(offset),
                    format!("rule '{}': {message}", rule.name),
                )),
            }
        }
        let skip = opts.skip_unknown || rule.skip_if_unknown_filter;
        for (field, _, _) in &l.unknown {
            *stats.unsupported_fields.entry(field.clone()).or_default() += 1;
        }
        // Fields only in the output: with skipping on, the rule still loads and they print
        // <NA>; a rule skipped for its condition does not report them separately.
        if l.unknown.is_empty() && skip {
            for (field, loc) in &output_unknown {
                *stats
                    .unsupported_output_fields
                    .entry(field.clone())
                    .or_default() += 1;
                diags.push(Diagnostic::warning(
                    loc.clone(),
                    format!(
                        "rule '{}': output field '{field}' is not provided by driftwatch; it prints <NA>",
                        rule.name
                    ),
                ));
            }
            if !output_unknown.is_empty() {
                stats.loaded_with_missing_output_fields += 1;
            }
        } else {
            for (field, loc) in output_unknown {
                *stats.unsupported_fields.entry(field.clone()).or_default() += 1;
                l.unknown.push((field, loc, None));
            }
        }
        let unknown_diags: Vec<Diagnostic> = l
            .unknown
            .iter()
            .map(|(field, loc, mac)| {
                let within = mac
                    .as_ref()
                    .map(|m| format!(" (in macro '{m}')"))
                    .unwrap_or_default();
                if skip {
                    Diagnostic::warning(
                        loc.clone(),
                        format!(
                            "rule '{}' skipped: field '{field}'{within} is not provided by driftwatch",
                            rule.name
                        ),
                    )
                } else {
                    Diagnostic::error(
                        loc.clone(),
                        format!(
                            "rule '{}': field '{field}'{within} is not provided by driftwatch \
                             (--skip-unknown or skip-if-unknown-filter: true skips such rules)",
                            rule.name
                        ),
                    )
                }
            })
            .collect();
        let had_unknown = !l.unknown.is_empty();
        let errors = std::mem::take(&mut l.errors);
        diags.extend(unknown_diags);
        if !errors.is_empty() {
            diags.extend(errors);
            stats.failed += 1;
            continue;
        }
        if had_unknown {
            if skip {
                stats.skipped_unknown += 1;
            } else {
                stats.failed += 1;
            }
            continue;
        }
        let Some(node) = node else {
            stats.failed += 1;
            continue;
        };
        let node = lower_type_checks(node);
        let (pos, _) = event_types(&node);
        if pos == ALL_TYPES && rule.warn_evttypes && !mentions_evt_type(&node) {
            diags.push(Diagnostic::warning(
                rule.condition.loc.clone(),
                format!(
                    "rule '{}' does not constrain evt.type: it is evaluated for every event \
                     (execs, executable mappings and file changes)",
                    rule.name
                ),
            ));
        }
        if pos == 0 {
            diags.push(Diagnostic::warning(
                rule.condition.loc.clone(),
                format!(
                    "rule '{}' matches only event types driftwatch does not produce; it never fires",
                    rule.name
                ),
            ));
        }
        stats.loaded += 1;
        compiled.push(CompiledRule {
            name: rule.name.clone(),
            priority: rule.priority,
            tags: rule.tags.clone(),
            source: rule.source.clone(),
            loc: rule.loc.clone(),
            event_types: pos,
            output,
            condition: node,
        });
    }
    stats.errors = diags.iter().filter(|d| d.is_error()).count();
    Compiled {
        rules: RuleSet::new(compiled, opts.mode),
        diagnostics: diags,
        stats,
    }
}

/// A list item as Falco sees it once the list is pasted into a condition: an item written
/// in quotes (`'"10.0.0.0/8"'`, `'"sh -c uname"'`) is the quoted string, without the quotes.
fn unquote(item: &str) -> &str {
    let b = item.as_bytes();
    match (b.first(), b.last()) {
        (Some(&q @ (b'"' | b'\'')), Some(&e)) if b.len() >= 2 && q == e => {
            item.get(1..item.len() - 1).unwrap_or(item)
        }
        _ => item,
    }
}

/// Every list's items with named lists expanded recursively (visibility respected).
fn expand_lists(load: &LoadResult, diags: &mut Vec<Diagnostic>) -> HashMap<String, Vec<Vec<u8>>> {
    fn go(
        load: &LoadResult,
        name: &str,
        memo: &mut HashMap<String, Vec<Vec<u8>>>,
        stack: &mut Vec<String>,
        diags: &mut Vec<Diagnostic>,
    ) -> Vec<Vec<u8>> {
        if let Some(v) = memo.get(name) {
            return v.clone();
        }
        let Some(list) = load.lists.get(name) else {
            return Vec::new();
        };
        stack.push(name.to_string());
        let mut out = Vec::new();
        for item in &list.items {
            match load.lists.get(&item.value) {
                Some(r) if r.index < list.visibility => {
                    if stack.contains(&item.value) {
                        diags.push(Diagnostic::error(
                            item.loc.clone(),
                            format!(
                                "list '{name}' refers to itself through list '{}'",
                                item.value
                            ),
                        ));
                        continue;
                    }
                    if stack.len() > MAX_MACRO_DEPTH {
                        diags.push(Diagnostic::error(
                            item.loc.clone(),
                            format!("lists nest deeper than {MAX_MACRO_DEPTH} levels"),
                        ));
                        continue;
                    }
                    out.extend(go(load, &item.value, memo, stack, diags));
                }
                _ => out.push(unquote(&item.value).as_bytes().to_vec()),
            }
        }
        stack.pop();
        memo.insert(name.to_string(), out.clone());
        out
    }
    let mut memo = HashMap::new();
    for name in load.lists.keys() {
        let mut stack = Vec::new();
        go(load, name, &mut memo, &mut stack, diags);
    }
    memo
}

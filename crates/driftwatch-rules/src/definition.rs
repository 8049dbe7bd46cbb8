//! What loading produces: rules, macros, lists and version requirements, with positions.

use crate::diagnostic::{Diagnostic, Severity};
use crate::exception::Exception;
use crate::source_loc::{Located, SourceLoc, SourceText};
use crate::version::EngineVersion;
use driftwatch_event::Priority;
use indexmap::IndexMap;
use std::ops::Range;

/// A list, items as written (a list may name other lists; see
/// [`LoadResult::expanded_list_items`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListDef {
    pub name: String,
    pub items: Vec<Located<String>>,
    /// Where the list was (last) defined.
    pub loc: SourceLoc,
    /// Falco's ordering: `index` is the load step of the first definition (a redefinition keeps
    /// its place), `visibility` the step of the last definition or append. One counter runs over
    /// lists, macros and rules of all files. A list or macro may only use definitions whose
    /// `index` is lower than its own `visibility`.
    pub index: usize,
    pub visibility: usize,
}

/// A macro, condition as written (appends joined with a blank, as Falco does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroDef {
    pub name: String,
    pub condition: SourceText,
    pub loc: SourceLoc,
    /// See [`ListDef::index`].
    pub index: usize,
    pub visibility: usize,
}

/// A rule after every definition, append, override and `enabled` toggle of all files.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDef {
    pub name: String,
    pub desc: String,
    /// The condition as written, after appends/replaces (appends are joined with a blank).
    pub condition: SourceText,
    /// The condition with the exceptions folded in, exactly as Falco builds it:
    /// `(<condition>) and not <clause> …`, or `condition` unchanged when the rule has no
    /// exceptions. Macros and lists are not expanded here.
    pub effective_condition: String,
    /// For each exception clause in `effective_condition`: its byte range and the exception.
    pub exception_clauses: Vec<(Range<usize>, SourceLoc)>,
    /// The output format, trimmed as Falco trims it.
    pub output: SourceText,
    pub priority: Priority,
    /// Sorted and without duplicates (Falco keeps tags in a set).
    pub tags: Vec<String>,
    pub enabled: bool,
    pub source: String,
    /// False when `source` is not one this engine evaluates: the rule is kept but must not run
    /// (Falco warns and skips it).
    pub known_source: bool,
    pub exceptions: Vec<Exception>,
    pub skip_if_unknown_filter: bool,
    pub warn_evttypes: bool,
    pub capture: bool,
    pub capture_duration: u32,
    /// Where the rule was (last) fully defined.
    pub loc: SourceLoc,
    /// See [`ListDef::index`]; appends and overrides move `visibility`.
    pub index: usize,
    pub visibility: usize,
}

impl RuleDef {
    /// Maps a byte offset in [`Self::effective_condition`] to the file: inside the rule's own
    /// condition it maps through [`Self::condition`]; inside an exception clause it is the
    /// exception's position; the glue Falco adds maps to the condition's start.
    pub fn loc_of_effective_offset(&self, byte_offset: usize) -> SourceLoc {
        if self.exception_clauses.is_empty() && self.effective_condition == self.condition.value {
            return self.condition.loc_of_offset(byte_offset);
        }
        if let Some((_, loc)) = self
            .exception_clauses
            .iter()
            .find(|(r, _)| r.contains(&byte_offset))
        {
            return loc.clone();
        }
        let cond_len = self.condition.value.len();
        if (1..=cond_len).contains(&byte_offset) {
            return self.condition.loc_of_offset(byte_offset - 1);
        }
        self.condition.loc.clone()
    }
}

/// The highest `required_engine_version` stated by the loaded files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredEngineVersion {
    pub version: EngineVersion,
    pub loc: SourceLoc,
}

/// One plugin version requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginVersion {
    pub name: String,
    /// As written; checked to start with `x.y.z`.
    pub version: String,
}

/// One `required_plugin_versions` entry: the plugin, then any accepted `alternatives`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRequirement {
    /// Never empty: the first is the entry's own `name`/`version`.
    pub alternatives: Vec<PluginVersion>,
    pub loc: SourceLoc,
}

/// Everything loaded from a set of rule files, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadResult {
    /// In Falco's order: by first definition.
    pub rules: Vec<RuleDef>,
    pub macros: IndexMap<String, MacroDef>,
    pub lists: IndexMap<String, ListDef>,
    /// In the order they were found; exception-building errors come last.
    pub diagnostics: Vec<Diagnostic>,
    pub required_engine_version: Option<RequiredEngineVersion>,
    pub required_plugin_versions: Vec<PluginRequirement>,
}

impl LoadResult {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    pub fn rule(&self, name: &str) -> Option<&RuleDef> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// A list's items with the lists it names filled in, as Falco's compiler does it: one level
    /// deep, and only lists defined (first) before this list's last definition or append; any
    /// other item stays as written.
    pub fn expanded_list_items(&self, name: &str) -> Option<Vec<String>> {
        let list = self.lists.get(name)?;
        let mut out = Vec::new();
        for item in &list.items {
            match self.lists.get(&item.value) {
                Some(r) if r.index < list.visibility => {
                    out.extend(r.items.iter().map(|i| i.value.clone()));
                }
                _ => out.push(item.value.clone()),
            }
        }
        Some(out)
    }
}

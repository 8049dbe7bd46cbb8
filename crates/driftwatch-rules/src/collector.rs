//! Collecting: definitions, redefinitions, appends, overrides and `enabled` toggles across files,
//! with Falco's semantics (falcosecurity/falco `userspace/engine/rule_loader_collector.cpp`).

use crate::definition::{
    ListDef, LoadResult, MacroDef, PluginRequirement, PluginVersion, RequiredEngineVersion, RuleDef,
};
use crate::diagnostic::Diagnostic;
use crate::exception::{self, Exception, RawException};
use crate::reader::{Entry, PluginEntry, RuleDraft, RuleUpdate};
use crate::source_loc::SourceLoc;
use crate::version::EngineVersion;
use driftwatch_event::Priority;
use indexmap::IndexMap;

type Res<T> = Result<T, Diagnostic>;

const ERROR_NO_PREVIOUS_MACRO: &str =
    "macro uses 'append' or 'override.condition: append' but no macro by that name already exists";
const ERROR_NO_PREVIOUS_LIST: &str =
    "list uses 'append' or 'override.items: append' but no list by that name already exists";
const ERROR_NO_PREVIOUS_RULE_APPEND: &str =
    "rule uses 'append' or 'override.<key>: append' but no rule by that name already exists";
const ERROR_NO_PREVIOUS_RULE_REPLACE: &str =
    "an 'override.<key>: replace' to a rule was requested but no rule by that name already exists";

#[derive(Debug)]
struct RuleState {
    name: String,
    desc: String,
    condition: crate::source_loc::SourceText,
    output: crate::source_loc::SourceText,
    priority: Priority,
    tags: Vec<String>,
    enabled: bool,
    source: String,
    known_source: bool,
    exceptions: Vec<Exception>,
    skip_if_unknown_filter: bool,
    warn_evttypes: bool,
    capture: bool,
    capture_duration: u32,
    loc: SourceLoc,
    index: usize,
    visibility: usize,
}

#[derive(Debug)]
pub(crate) struct Collector {
    engine_version: EngineVersion,
    known_sources: Vec<String>,
    cur_index: usize,
    lists: IndexMap<String, ListDef>,
    macros: IndexMap<String, MacroDef>,
    rules: IndexMap<String, RuleState>,
    required_engine_version: Option<RequiredEngineVersion>,
    required_plugin_versions: Vec<PluginRequirement>,
}

impl Collector {
    pub fn new(engine_version: EngineVersion, known_sources: Vec<String>) -> Collector {
        Collector {
            engine_version,
            known_sources,
            cur_index: 0,
            lists: IndexMap::new(),
            macros: IndexMap::new(),
            rules: IndexMap::new(),
            required_engine_version: None,
            required_plugin_versions: Vec::new(),
        }
    }

    fn next_index(&mut self) -> usize {
        let i = self.cur_index;
        self.cur_index += 1;
        i
    }

    /// Applies one entry; on error nothing of the entry is applied.
    pub fn apply(&mut self, entry: Entry, warnings: &mut Vec<Diagnostic>) -> Res<()> {
        match entry {
            Entry::EngineVersion { version, loc } => self.engine_version(version, loc),
            Entry::PluginVersions(entries) => self.plugin_versions(entries),
            Entry::List {
                name,
                items,
                append,
                loc,
            } => {
                if append {
                    let id = self.next_index_if(self.lists.contains_key(&name));
                    let Some(prev) = self.lists.get_mut(&name) else {
                        return Err(Diagnostic::error(loc, ERROR_NO_PREVIOUS_LIST));
                    };
                    prev.items.extend(items);
                    prev.visibility = id;
                } else {
                    let id = self.next_index();
                    let index = self.lists.get(&name).map_or(id, |p| p.index);
                    self.lists.insert(
                        name.clone(),
                        ListDef {
                            name,
                            items,
                            loc,
                            index,
                            visibility: id,
                        },
                    );
                }
                Ok(())
            }
            Entry::Macro {
                name,
                condition,
                append,
                loc,
            } => {
                if append {
                    let id = self.next_index_if(self.macros.contains_key(&name));
                    let Some(prev) = self.macros.get_mut(&name) else {
                        return Err(Diagnostic::error(loc, ERROR_NO_PREVIOUS_MACRO));
                    };
                    prev.condition.append(&condition);
                    prev.visibility = id;
                } else {
                    let id = self.next_index();
                    let index = self.macros.get(&name).map_or(id, |p| p.index);
                    self.macros.insert(
                        name.clone(),
                        MacroDef {
                            name,
                            condition,
                            loc,
                            index,
                            visibility: id,
                        },
                    );
                }
                Ok(())
            }
            Entry::RuleDefine(draft) => self.define_rule(*draft, warnings),
            Entry::RuleUpdate { append, replace } => {
                // Check both halves of an item before changing anything.
                let append = match append {
                    Some(u) => Some(self.check_update(*u, ERROR_NO_PREVIOUS_RULE_APPEND, true)?),
                    None => None,
                };
                let replace = match replace {
                    Some(u) => {
                        Some(self.check_update(*u, ERROR_NO_PREVIOUS_RULE_REPLACE, false)?)
                    }
                    None => None,
                };
                if let Some(u) = append {
                    self.append_rule(u);
                }
                if let Some(u) = replace {
                    self.replace_rule(u);
                }
                Ok(())
            }
            Entry::RuleEnable { name, enabled, loc } => match self.rules.get_mut(&name) {
                Some(prev) => {
                    prev.enabled = enabled;
                    Ok(())
                }
                None => Err(Diagnostic::error(
                    loc,
                    "rule has 'enabled' key but no rule by that name already exists",
                )),
            },
        }
    }

    /// Falco bumps its counter only when the append succeeds.
    fn next_index_if(&mut self, exists: bool) -> usize {
        if exists {
            self.next_index()
        } else {
            self.cur_index
        }
    }

    fn engine_version(&mut self, version: EngineVersion, loc: SourceLoc) -> Res<()> {
        if !self.engine_version.compatible_with(version) {
            return Err(Diagnostic::error(
                loc,
                format!(
                    "rules require engine version {version}, but engine version is {}",
                    self.engine_version
                ),
            ));
        }
        if self
            .required_engine_version
            .as_ref()
            .is_none_or(|r| r.version < version)
        {
            self.required_engine_version = Some(RequiredEngineVersion { version, loc });
        }
        Ok(())
    }

    fn plugin_versions(&mut self, entries: Vec<PluginEntry>) -> Res<()> {
        let mut checked = Vec::new();
        for e in entries {
            let mut seen: Vec<&str> = Vec::new();
            for (name, version) in &e.alternatives {
                if EngineVersion::parse(version).is_none() {
                    return Err(Diagnostic::error(
                        e.loc.clone(),
                        format!("invalid required version '{version}' for plugin '{name}'"),
                    ));
                }
                if seen.contains(&name.as_str()) {
                    return Err(Diagnostic::error(
                        e.loc.clone(),
                        format!(
                            "defined multiple alternative version requirements for plugin '{name}'"
                        ),
                    ));
                }
                seen.push(name);
            }
            checked.push(PluginRequirement {
                alternatives: e
                    .alternatives
                    .into_iter()
                    .map(|(name, version)| PluginVersion { name, version })
                    .collect(),
                loc: e.loc,
            });
        }
        self.required_plugin_versions.extend(checked);
        Ok(())
    }

    /// Falco's `find_prev_rule` check: a rule may not change its explicit source.
    fn check_source(&self, name: &str, source: &str, loc: &SourceLoc) -> Res<()> {
        if let Some(prev) = self.rules.get(name) {
            if !prev.source.is_empty() && !source.is_empty() && prev.source != source {
                return Err(Diagnostic::error(
                    loc.clone(),
                    "rule has been re-defined with a different source",
                ));
            }
        }
        Ok(())
    }

    fn define_rule(&mut self, d: RuleDraft, warnings: &mut Vec<Diagnostic>) -> Res<()> {
        self.check_source(&d.name, &d.source, &d.loc)?;
        let mut exceptions = Vec::with_capacity(d.exceptions.len());
        for raw in d.exceptions {
            exceptions.push(exception::validate(raw).map_err(|(l, m)| Diagnostic::error(l, m))?);
        }
        let known_source = self.known_sources.contains(&d.source);
        if !known_source {
            warnings.push(Diagnostic::warning(
                d.loc.clone(),
                format!(
                    "unknown source '{}', the rule is kept but skipped",
                    d.source
                ),
            ));
        }
        let id = self.next_index();
        let index = self.rules.get(&d.name).map_or(id, |p| p.index);
        self.rules.insert(
            d.name.clone(),
            RuleState {
                name: d.name,
                desc: d.desc,
                condition: d.condition,
                output: d.output,
                priority: d.priority,
                tags: d.tags,
                enabled: d.enabled,
                source: d.source,
                known_source,
                exceptions,
                skip_if_unknown_filter: d.skip_if_unknown_filter,
                warn_evttypes: d.warn_evttypes,
                capture: d.capture,
                capture_duration: d.capture_duration,
                loc: d.loc,
                index,
                visibility: id,
            },
        );
        Ok(())
    }

    /// Checks an append (`append`) or replace against the existing rule and validates the
    /// exceptions it brings, so that applying it cannot fail.
    fn check_update(&self, mut u: RuleUpdate, no_prev: &str, append: bool) -> Res<RuleUpdate> {
        let loc = u
            .loc
            .clone()
            .unwrap_or_else(|| SourceLoc::new("<unknown>", 0, 0));
        self.check_source(&u.name, &u.source, &loc)?;
        let Some(prev) = self.rules.get(&u.name) else {
            return Err(Diagnostic::error(loc, no_prev));
        };
        if !u.has_any_value() {
            let msg = if append {
                "appended rule must have exceptions or condition property"
            } else {
                "the rule must have at least one field that can be replaced"
            };
            return Err(Diagnostic::error(loc, msg));
        }
        if let Some(exs) = u.exceptions.take() {
            let mut checked: Vec<RawException> = Vec::with_capacity(exs.len());
            for ex in exs {
                let existing = append && prev.exceptions.iter().any(|p| p.name == ex.name);
                if existing {
                    if ex.fields.is_some() {
                        return Err(Diagnostic::error(
                            ex.loc,
                            "can not append exception fields to existing exception, only values",
                        ));
                    }
                    if ex.comps.is_some() {
                        return Err(Diagnostic::error(
                            ex.loc,
                            "can not append exception comps to existing exception, only values",
                        ));
                    }
                } else {
                    if append && ex.values.is_empty() {
                        if ex.fields.is_none() {
                            return Err(Diagnostic::error(
                                ex.loc,
                                "rule exception must have fields property with a list of fields",
                            ));
                        }
                        return Err(Diagnostic::error(
                            ex.loc,
                            "rule exception must have values property with a list of values",
                        ));
                    }
                    // Validated here (Falco validates replaced exceptions only when compiling).
                    exception::validate(ex.clone()).map_err(|(l, m)| Diagnostic::error(l, m))?;
                }
                checked.push(ex);
            }
            u.exceptions = Some(checked);
        }
        Ok(u)
    }

    fn append_rule(&mut self, u: RuleUpdate) {
        let id = self.next_index();
        let Some(prev) = self.rules.get_mut(&u.name) else {
            return;
        };
        if let Some(c) = u.condition.filter(|c| !c.value.is_empty()) {
            prev.condition.append(&c);
        }
        if let Some(o) = u.output.filter(|o| !o.value.is_empty()) {
            prev.output.append(&o);
        }
        if let Some(d) = u.desc.filter(|d| !d.is_empty()) {
            prev.desc.push(' ');
            prev.desc.push_str(&d);
        }
        if let Some(tags) = u.tags {
            prev.tags.extend(tags);
            prev.tags.sort();
            prev.tags.dedup();
        }
        for ex in u.exceptions.unwrap_or_default() {
            match prev.exceptions.iter_mut().find(|p| p.name == ex.name) {
                Some(p) => p.values.extend(ex.values),
                None => {
                    if let Ok(v) = exception::validate(ex) {
                        prev.exceptions.push(v);
                    }
                }
            }
        }
        prev.visibility = id;
    }

    fn replace_rule(&mut self, u: RuleUpdate) {
        let id = self.next_index();
        let Some(prev) = self.rules.get_mut(&u.name) else {
            return;
        };
        if let Some(c) = u.condition {
            prev.condition = c;
        }
        if let Some(o) = u.output {
            prev.output = o;
        }
        if let Some(d) = u.desc {
            prev.desc = d;
        }
        if let Some(t) = u.tags {
            prev.tags = t;
        }
        if let Some(exs) = u.exceptions {
            prev.exceptions = exs
                .into_iter()
                .filter_map(|e| exception::validate(e).ok())
                .collect();
        }
        if let Some(p) = u.priority {
            prev.priority = p;
        }
        if let Some(c) = u.capture {
            prev.capture = c;
        }
        if let Some(c) = u.capture_duration {
            prev.capture_duration = c;
        }
        if let Some(e) = u.enabled {
            prev.enabled = e;
        }
        if let Some(w) = u.warn_evttypes {
            prev.warn_evttypes = w;
        }
        if let Some(s) = u.skip_if_unknown_filter {
            prev.skip_if_unknown_filter = s;
        }
        prev.visibility = id;
    }

    /// Builds every rule's effective condition (Falco does this when compiling, after all files
    /// are collected) and hands out the result.
    pub fn finish(self, mut diagnostics: Vec<Diagnostic>) -> LoadResult {
        let mut rules = Vec::with_capacity(self.rules.len());
        for (_, r) in self.rules {
            let (built, errors) = exception::build_condition(&r.condition.value, &r.exceptions);
            diagnostics.extend(errors.into_iter().map(|(l, m)| Diagnostic::error(l, m)));
            rules.push(RuleDef {
                name: r.name,
                desc: r.desc,
                condition: r.condition,
                effective_condition: built.text,
                exception_clauses: built.clauses,
                output: r.output,
                priority: r.priority,
                tags: r.tags,
                enabled: r.enabled,
                source: r.source,
                known_source: r.known_source,
                exceptions: r.exceptions,
                skip_if_unknown_filter: r.skip_if_unknown_filter,
                warn_evttypes: r.warn_evttypes,
                capture: r.capture,
                capture_duration: r.capture_duration,
                loc: r.loc,
                index: r.index,
                visibility: r.visibility,
            });
        }
        LoadResult {
            rules,
            macros: self.macros,
            lists: self.lists,
            diagnostics,
            required_engine_version: self.required_engine_version,
            required_plugin_versions: self.required_plugin_versions,
        }
    }
}

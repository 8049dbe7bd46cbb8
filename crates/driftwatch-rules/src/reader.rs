//! Reading: one YAML item of a rule file into an [`Entry`] for the collector, with Falco's
//! checks of keys, types and `override` (falcosecurity/falco
//! `userspace/engine/rule_loader_reader.cpp`).
//!
//! An item with an error yields that error and no entry; warnings go to the reader's list.

use crate::diagnostic::Diagnostic;
use crate::exception::{ExceptionComps, ExceptionFields, ExceptionValue, RawException, TupleItem};
use crate::source_loc::{Located, SourceLoc, SourceText};
use crate::version::EngineVersion;
use crate::yaml::{Node, NodeKind, YamlSource};
use driftwatch_event::Priority;
use std::collections::BTreeSet;

type Res<T> = Result<T, Diagnostic>;

pub(crate) const WARNING_APPEND: &str =
    "'append' key is deprecated; add an 'append' entry (e.g. 'condition: append') under 'override' instead";
pub(crate) const WARNING_ENABLED: &str = "the standalone 'enabled' key usage is deprecated; the correct approach requires also a 'replace' entry under the 'override' key (i.e. 'enabled: replace')";
const ERROR_OVERRIDE_APPEND: &str = "keys 'override' and 'append: true' cannot be used together; add an 'append' entry (e.g. 'condition: append') under 'override' instead";

/// What one item asks the collector to do.
#[derive(Debug)]
pub(crate) enum Entry {
    EngineVersion {
        version: EngineVersion,
        loc: SourceLoc,
    },
    PluginVersions(Vec<PluginEntry>),
    List {
        name: String,
        items: Vec<Located<String>>,
        append: bool,
        loc: SourceLoc,
    },
    Macro {
        name: String,
        condition: SourceText,
        append: bool,
        loc: SourceLoc,
    },
    RuleDefine(Box<RuleDraft>),
    RuleUpdate {
        append: Option<Box<RuleUpdate>>,
        replace: Option<Box<RuleUpdate>>,
    },
    RuleEnable {
        name: String,
        enabled: bool,
        loc: SourceLoc,
    },
}

#[derive(Debug)]
pub(crate) struct PluginEntry {
    /// (name, version) pairs; the first is the entry's own.
    pub alternatives: Vec<(String, String)>,
    pub loc: SourceLoc,
}

/// A full rule definition.
#[derive(Debug)]
pub(crate) struct RuleDraft {
    pub name: String,
    pub condition: SourceText,
    pub output: SourceText,
    pub desc: String,
    pub priority: Priority,
    pub source: String,
    pub enabled: bool,
    pub capture: bool,
    pub capture_duration: u32,
    pub warn_evttypes: bool,
    pub skip_if_unknown_filter: bool,
    pub tags: Vec<String>,
    pub exceptions: Vec<RawException>,
    pub loc: SourceLoc,
}

/// An append to, or a selective replace of, an existing rule.
#[derive(Debug, Default)]
pub(crate) struct RuleUpdate {
    pub name: String,
    /// Empty when the item names no source.
    pub source: String,
    pub loc: Option<SourceLoc>,
    pub condition: Option<SourceText>,
    pub output: Option<SourceText>,
    pub desc: Option<String>,
    pub tags: Option<Vec<String>>,
    pub exceptions: Option<Vec<RawException>>,
    pub priority: Option<Priority>,
    pub capture: Option<bool>,
    pub capture_duration: Option<u32>,
    pub enabled: Option<bool>,
    pub warn_evttypes: Option<bool>,
    pub skip_if_unknown_filter: Option<bool>,
}

impl RuleUpdate {
    pub fn has_any_value(&self) -> bool {
        self.condition.is_some()
            || self.output.is_some()
            || self.desc.is_some()
            || self.tags.is_some()
            || self.exceptions.is_some()
            || self.priority.is_some()
            || self.capture.is_some()
            || self.capture_duration.is_some()
            || self.enabled.is_some()
            || self.warn_evttypes.is_some()
            || self.skip_if_unknown_filter.is_some()
    }
}

const RULE_KEYS: &[&str] = &[
    "rule",
    "condition",
    "output",
    "desc",
    "priority",
    "source",
    "enabled",
    "capture",
    "capture_duration",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "tags",
    "exceptions",
    "override",
    "append",
];
const RULE_APPENDABLE: &[&str] = &["condition", "output", "desc", "tags", "exceptions"];
const RULE_REPLACEABLE: &[&str] = &[
    "condition",
    "output",
    "desc",
    "priority",
    "capture",
    "capture_duration",
    "tags",
    "exceptions",
    "enabled",
    "warn_evttypes",
    "skip-if-unknown-filter",
];

pub(crate) struct Reader<'s, 'a> {
    pub src: &'s YamlSource<'a>,
    pub warnings: Vec<Diagnostic>,
}

/// yaml-cpp's boolean spellings.
fn parse_bool(s: &str) -> Option<bool> {
    const TRUE: &[&str] = &["y", "yes", "true", "on"];
    const FALSE: &[&str] = &["n", "no", "false", "off"];
    if s.is_empty() || !s.is_ascii() {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let spelled_ok = s == lower
        || s == s.to_ascii_uppercase()
        || (s[..1] == s[..1].to_ascii_uppercase() && s[1..] == lower[1..]);
    if !spelled_ok {
        return None;
    }
    if TRUE.contains(&lower.as_str()) {
        Some(true)
    } else if FALSE.contains(&lower.as_str()) {
        Some(false)
    } else {
        None
    }
}

fn parse_u32(s: &str) -> Option<u32> {
    let t = s.strip_prefix('+').unwrap_or(s);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Falco's list-name pattern `[^()"'[:space:]=,]+`.
fn is_valid_list_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| matches!(c, '(' | ')' | '"' | '\'' | '=' | ',') || c.is_ascii_whitespace())
}

/// Falco's macro-name pattern `[a-zA-Z]+[a-zA-Z0-9_]*`.
fn is_valid_macro_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl<'s, 'a> Reader<'s, 'a> {
    pub fn new(src: &'s YamlSource<'a>) -> Reader<'s, 'a> {
        Reader {
            src,
            warnings: Vec::new(),
        }
    }

    fn loc(&self, n: &Node) -> SourceLoc {
        self.src.loc(n.start)
    }

    fn err<T>(&self, n: &Node, msg: impl Into<String>) -> Res<T> {
        Err(Diagnostic::error(self.loc(n), msg))
    }

    fn warn(&mut self, loc: SourceLoc, msg: impl Into<String>) {
        self.warnings.push(Diagnostic::warning(loc, msg));
    }

    /// Falco's `decode_val`/`decode_optional_val`: a non-empty scalar, or absent when optional.
    fn scalar<'n>(
        &self,
        item: &'n Node,
        key: &str,
        optional: bool,
    ) -> Res<Option<(&'n Node, &'n str)>> {
        let Some(v) = item.get(key) else {
            if optional {
                return Ok(None);
            }
            return self.err(item, format!("item has no mapping for key '{key}'"));
        };
        if v.is_null() {
            return self.err(v, format!("mapping for key '{key}' is empty"));
        }
        let Some(s) = v.as_scalar() else {
            return self.err(v, format!("value for key '{key}' is not a scalar value"));
        };
        if s.is_empty() {
            return self.err(v, format!("value for key '{key}' must be non-empty"));
        }
        Ok(Some((v, s)))
    }

    fn req_str(&self, item: &Node, key: &str) -> Res<String> {
        match self.scalar(item, key, false)? {
            Some((_, s)) => Ok(s.to_string()),
            None => self.err(item, format!("item has no mapping for key '{key}'")),
        }
    }

    fn req_text(&self, item: &Node, key: &str) -> Res<SourceText> {
        match self.scalar(item, key, false)? {
            Some((v, _)) => Ok(self.src.source_text(v)),
            None => self.err(item, format!("item has no mapping for key '{key}'")),
        }
    }

    fn opt_bool(&self, item: &Node, key: &str) -> Res<Option<bool>> {
        match self.scalar(item, key, true)? {
            None => Ok(None),
            Some((v, s)) => match parse_bool(s) {
                Some(b) => Ok(Some(b)),
                None => self.err(v, format!("value for key '{key}' is not a boolean: '{s}'")),
            },
        }
    }

    fn req_bool(&self, item: &Node, key: &str) -> Res<bool> {
        match self.opt_bool(item, key)? {
            Some(b) => Ok(b),
            None => self.err(item, format!("item has no mapping for key '{key}'")),
        }
    }

    fn opt_u32(&self, item: &Node, key: &str) -> Res<Option<u32>> {
        match self.scalar(item, key, true)? {
            None => Ok(None),
            Some((v, s)) => match parse_u32(s) {
                Some(n) => Ok(Some(n)),
                None => self.err(
                    v,
                    format!("value for key '{key}' is not an unsigned 32-bit integer: '{s}'"),
                ),
            },
        }
    }

    /// Falco's `decode_optional_empty_val`: absent, null or empty give `""`.
    fn opt_empty_str(&self, item: &Node, key: &str) -> Res<String> {
        match item.get(key) {
            None => Ok(String::new()),
            Some(v) if v.is_null() => Ok(String::new()),
            Some(v) => match v.as_scalar() {
                Some(s) => Ok(s.to_string()),
                None => self.err(v, format!("value for key '{key}' is not a scalar value")),
            },
        }
    }

    fn priority(&self, item: &Node) -> Res<Priority> {
        let s = self.req_str(item, "priority")?;
        match Priority::parse(&s) {
            Some(p) => Ok(p),
            None => {
                let v = item.get("priority").unwrap_or(item);
                self.err(v, format!("invalid priority '{s}'"))
            }
        }
    }

    /// Falco's `decode_seq`: a sequence of scalars.
    fn scalar_seq(
        &self,
        item: &Node,
        key: &str,
        optional: bool,
    ) -> Res<Option<Vec<Located<String>>>> {
        let Some(v) = item.get(key) else {
            if optional {
                return Ok(None);
            }
            return self.err(item, format!("item has no mapping for key '{key}'"));
        };
        let Some(seq) = v.as_seq() else {
            return self.err(v, format!("value for key '{key}' is not a sequence"));
        };
        let mut out = Vec::with_capacity(seq.len());
        for n in seq {
            match n.as_scalar() {
                Some(s) => out.push(Located::new(s.to_string(), self.loc(n))),
                None => return self.err(n, format!("sequence value of key '{key}' is not scalar")),
            }
        }
        Ok(Some(out))
    }

    fn tags(&self, item: &Node) -> Res<Option<Vec<String>>> {
        Ok(self.scalar_seq(item, "tags", true)?.map(|tags| {
            let set: BTreeSet<String> = tags.into_iter().map(|t| t.value).collect();
            set.into_iter().collect()
        }))
    }

    fn warn_unknown_keys(&mut self, item: &Node, expected: &[&str]) -> Res<()> {
        let mut unknown = Vec::new();
        for (k, _) in item.as_map().unwrap_or_default() {
            match k.as_scalar() {
                Some(key) if expected.contains(&key) => {}
                Some(key) => unknown.push((
                    self.loc(k),
                    format!("unknown key '{key}'; the key will be ignored"),
                )),
                None => return self.err(k, "mapping keys must be scalars"),
            }
        }
        for (loc, msg) in unknown {
            self.warn(loc, msg);
        }
        Ok(())
    }

    /// Falco's `decode_overrides`: `(append keys, replace keys)` in the order written.
    fn overrides(
        &self,
        item: &Node,
        appendable: &[&str],
        replaceable: &[&str],
    ) -> Res<(Vec<String>, Vec<String>)> {
        let (mut app, mut rep) = (Vec::new(), Vec::new());
        let Some(ov) = item.get("override") else {
            return Ok((app, rep));
        };
        if ov.is_null() {
            return Ok((app, rep));
        }
        let Some(entries) = ov.as_map() else {
            return self.err(ov, "value for key 'override' must be a mapping");
        };
        for (k, v) in entries {
            let Some(key) = k.as_scalar() else {
                return self.err(k, "override keys must be scalars");
            };
            let Some(op) = v.as_scalar() else {
                return self.err(
                    v,
                    format!("override operation for key '{key}' must be a scalar"),
                );
            };
            let can_append = appendable.contains(&key);
            let can_replace = replaceable.contains(&key);
            match op {
                "append" if can_append => app.push(key.to_string()),
                "append" => {
                    return self.err(
                        k,
                        format!("key '{key}' cannot be appended to, use 'replace' instead"),
                    )
                }
                "replace" if can_replace => rep.push(key.to_string()),
                "replace" => return self.err(k, format!("key '{key}' cannot be replaced")),
                _ => {
                    let mut allowed = Vec::new();
                    if can_append {
                        allowed.push("append");
                    }
                    if can_replace {
                        allowed.push("replace");
                    }
                    return self.err(
                        v,
                        format!(
                            "invalid override operation for key '{key}': '{op}'; allowed values are: {}",
                            allowed.join(" ")
                        ),
                    );
                }
            }
        }
        Ok((app, rep))
    }

    /// One top-level item. `None` for an item that asks nothing (an unknown item).
    pub fn read_item(&mut self, item: &Node) -> Res<Option<Entry>> {
        if item.as_map().is_none() {
            return self.err(
                item,
                "unexpected element type; each element should be a yaml associative array",
            );
        }
        if item.get("required_engine_version").is_some() {
            self.read_engine_version(item).map(Some)
        } else if item.get("required_plugin_versions").is_some() {
            self.read_plugin_versions(item).map(Some)
        } else if item.get("list").is_some() {
            self.read_list(item).map(Some)
        } else if item.get("macro").is_some() {
            self.read_macro(item).map(Some)
        } else if item.get("rule").is_some() {
            self.read_rule(item).map(Some)
        } else {
            let loc = self.loc(item);
            self.warn(loc, "unknown top level item");
            Ok(None)
        }
    }

    fn read_engine_version(&mut self, item: &Node) -> Res<Entry> {
        let s = self.req_str(item, "required_engine_version")?;
        let version = match parse_u32(&s) {
            // The old integer form names the minor version.
            Some(minor) => EngineVersion::new(
                crate::version::ENGINE_VERSION.major,
                minor,
                crate::version::ENGINE_VERSION.patch,
            ),
            None => match EngineVersion::parse(&s) {
                Some(v) => v,
                None => {
                    return self.err(
                        item,
                        format!(
                            "unable to parse engine version '{s}' as a semver string; expected \"x.y.z\" semver format"
                        ),
                    )
                }
            },
        };
        self.warn_unknown_keys(item, &["required_engine_version"])?;
        Ok(Entry::EngineVersion {
            version,
            loc: self.loc(item),
        })
    }

    fn read_plugin_versions(&mut self, item: &Node) -> Res<Entry> {
        let Some(v) = item.get("required_plugin_versions") else {
            return self.err(
                item,
                "item has no mapping for key 'required_plugin_versions'",
            );
        };
        let Some(seq) = v.as_seq() else {
            return self.err(v, "value of required_plugin_versions must be a sequence");
        };
        let mut out = Vec::new();
        for plugin in seq {
            if plugin.as_map().is_none() {
                return self.err(plugin, "plugin version must be a mapping");
            }
            let name = self.req_str(plugin, "name")?;
            let version = self.req_str(plugin, "version")?;
            let mut alternatives = vec![(name, version)];
            if let Some(alts) = plugin.get("alternatives") {
                let Some(alts) = alts.as_seq() else {
                    return self.err(
                        alts,
                        "value of plugin version alternatives must be a sequence",
                    );
                };
                for alt in alts {
                    if alt.as_map().is_none() {
                        return self.err(alt, "plugin version alternative must be a mapping");
                    }
                    alternatives.push((self.req_str(alt, "name")?, self.req_str(alt, "version")?));
                }
            }
            out.push(PluginEntry {
                alternatives,
                loc: self.loc(plugin),
            });
        }
        self.warn_unknown_keys(item, &["required_plugin_versions"])?;
        Ok(Entry::PluginVersions(out))
    }

    fn read_list(&mut self, item: &Node) -> Res<Entry> {
        let name = self.req_str(item, "list")?;
        let loc = self.loc(item);
        if !is_valid_list_name(&name) {
            self.warn(
                loc.clone(),
                "list has an invalid name; list names should match a regular expression: ([^()\"'[:space:]=,]+)",
            );
        }
        let items = self.scalar_seq(item, "items", false)?.unwrap_or_default();
        let append = self.append_or_override(item, &loc, "items")?;
        self.warn_unknown_keys(item, &["list", "items", "append", "override"])?;
        Ok(Entry::List {
            name,
            items,
            append,
            loc,
        })
    }

    /// Whether a list or macro entry appends to its earlier definition: the deprecated
    /// `append: true` (with its warning) or `override: {KEY: append}`; both at once is an error.
    fn append_or_override(&mut self, item: &Node, loc: &SourceLoc, key: &str) -> Res<bool> {
        let append = self.opt_bool(item, "append")?.unwrap_or(false);
        if append {
            self.warn(loc.clone(), WARNING_APPEND);
        }
        let (app, rep) = self.overrides(item, &[key], &[key])?;
        if append && !(app.is_empty() && rep.is_empty()) {
            return self.err(item, ERROR_OVERRIDE_APPEND);
        }
        Ok(append || app.iter().any(|k| k == key))
    }

    fn read_macro(&mut self, item: &Node) -> Res<Entry> {
        let name = self.req_str(item, "macro")?;
        let loc = self.loc(item);
        if !is_valid_macro_name(&name) {
            self.warn(
                loc.clone(),
                "macro has an invalid name; macro names should match a regular expression: ([a-zA-Z]+[a-zA-Z0-9_]*)",
            );
        }
        let condition = self.req_text(item, "condition")?;
        let append = self.append_or_override(item, &loc, "condition")?;
        self.warn_unknown_keys(item, &["macro", "condition", "append", "override"])?;
        Ok(Entry::Macro {
            name,
            condition,
            append,
            loc,
        })
    }

    fn read_rule(&mut self, item: &Node) -> Res<Entry> {
        let name = self.req_str(item, "rule")?;
        let loc = self.loc(item);
        let source = self.opt_empty_str(item, "source")?;
        let has_append_flag = self.opt_bool(item, "append")?.unwrap_or(false);
        if has_append_flag {
            self.warn(loc.clone(), WARNING_APPEND);
        }
        let (app, rep) = self.overrides(item, RULE_APPENDABLE, RULE_REPLACEABLE)?;
        let has_overrides = !app.is_empty() || !rep.is_empty();
        if has_append_flag && has_overrides {
            return self.err(item, ERROR_OVERRIDE_APPEND);
        }
        let entry = if has_overrides {
            // Keys that could be overridden and are present must each have an override entry,
            // and each override entry must name a present key.
            let mut expected: Vec<&str> = RULE_APPENDABLE
                .iter()
                .chain(RULE_REPLACEABLE)
                .copied()
                .filter(|k| item.get(k).is_some())
                .collect();
            expected.sort_unstable();
            expected.dedup();
            let append = if app.is_empty() {
                None
            } else {
                Some(Box::new(self.read_update(
                    item,
                    &name,
                    &source,
                    &app,
                    "append",
                    &mut expected,
                )?))
            };
            let replace = if rep.is_empty() {
                None
            } else {
                Some(Box::new(self.read_update(
                    item,
                    &name,
                    &source,
                    &rep,
                    "replace",
                    &mut expected,
                )?))
            };
            if let Some(key) = expected.first() {
                let at = item.entry(key).map_or(item, |(k, _)| k);
                return self.err(
                    at,
                    format!("unexpected key '{key}': no corresponding entry under 'override' is defined"),
                );
            }
            Entry::RuleUpdate { append, replace }
        } else if has_append_flag {
            let mut u = RuleUpdate {
                name: name.clone(),
                source,
                loc: Some(loc.clone()),
                ..RuleUpdate::default()
            };
            if item.get("condition").is_some() {
                u.condition = Some(self.req_text(item, "condition")?);
            }
            if item.get("exceptions").is_some() {
                u.exceptions = Some(self.exceptions(item, true)?);
            }
            Entry::RuleUpdate {
                append: Some(Box::new(u)),
                replace: None,
            }
        } else if ["condition", "output", "desc", "priority"]
            .iter()
            .all(|k| item.get(k).is_none())
        {
            let enabled = self.req_bool(item, "enabled")?;
            self.warn(loc.clone(), WARNING_ENABLED);
            Entry::RuleEnable {
                name: name.clone(),
                enabled,
                loc: loc.clone(),
            }
        } else {
            let condition = self.req_text(item, "condition")?;
            let output = self.req_text(item, "output")?.trimmed();
            let desc = self.req_str(item, "desc")?;
            let priority = self.priority(item)?;
            let source = match self.scalar(item, "source", true)? {
                Some((_, s)) => s.to_string(),
                None => "syscall".to_string(),
            };
            Entry::RuleDefine(Box::new(RuleDraft {
                name: name.clone(),
                condition,
                output,
                desc,
                priority,
                source,
                enabled: self.opt_bool(item, "enabled")?.unwrap_or(true),
                capture: self.opt_bool(item, "capture")?.unwrap_or(false),
                capture_duration: self.opt_u32(item, "capture_duration")?.unwrap_or(0),
                warn_evttypes: self.opt_bool(item, "warn_evttypes")?.unwrap_or(true),
                skip_if_unknown_filter: self
                    .opt_bool(item, "skip-if-unknown-filter")?
                    .unwrap_or(false),
                tags: self.tags(item)?.unwrap_or_default(),
                exceptions: self.exceptions(item, false)?,
                loc: loc.clone(),
            }))
        };
        self.warn_unknown_keys(item, RULE_KEYS)?;
        Ok(entry)
    }

    /// The keys of one override kind (`op` is `append` or `replace`).
    fn read_update(
        &mut self,
        item: &Node,
        name: &str,
        source: &str,
        keys: &[String],
        op: &str,
        expected: &mut Vec<&str>,
    ) -> Res<RuleUpdate> {
        let mut u = RuleUpdate {
            name: name.to_string(),
            loc: Some(self.loc(item)),
            ..RuleUpdate::default()
        };
        let order: &[&str] = if op == "append" {
            RULE_APPENDABLE
        } else {
            RULE_REPLACEABLE
        };
        for &key in order {
            if !keys.iter().any(|k| k == key) {
                continue;
            }
            let Some(pos) = expected.iter().position(|k| *k == key) else {
                let at = item
                    .get("override")
                    .and_then(|o| o.entry(key))
                    .map_or(item, |(k, _)| k);
                return self.err(
                    at,
                    format!(
                        "an {op} override for '{key}' was specified but '{key}' is not defined"
                    ),
                );
            };
            expected.remove(pos);
            match key {
                "condition" => {
                    u.source = source.to_string();
                    u.condition = Some(self.req_text(item, "condition")?);
                }
                "exceptions" => u.exceptions = Some(self.exceptions(item, op == "append")?),
                "output" => u.output = Some(self.req_text(item, "output")?),
                "desc" => u.desc = Some(self.req_str(item, "desc")?),
                "tags" => u.tags = self.tags(item)?,
                "priority" => u.priority = Some(self.priority(item)?),
                "capture" => u.capture = Some(self.req_bool(item, "capture")?),
                "capture_duration" => {
                    u.capture_duration = match self.opt_u32(item, "capture_duration")? {
                        Some(n) => Some(n),
                        None => {
                            return self.err(item, "item has no mapping for key 'capture_duration'")
                        }
                    }
                }
                "enabled" => u.enabled = Some(self.req_bool(item, "enabled")?),
                "warn_evttypes" => u.warn_evttypes = Some(self.req_bool(item, "warn_evttypes")?),
                "skip-if-unknown-filter" => {
                    u.skip_if_unknown_filter = Some(self.req_bool(item, "skip-if-unknown-filter")?)
                }
                _ => {}
            }
        }
        Ok(u)
    }

    /// Falco's `read_rule_exceptions`. `append`: fields may be left out, and an exception with
    /// no values draws a warning.
    fn exceptions(&mut self, item: &Node, append: bool) -> Res<Vec<RawException>> {
        let Some(exs) = item.get("exceptions") else {
            return Ok(Vec::new());
        };
        if exs.is_null() {
            return Ok(Vec::new());
        }
        let Some(seq) = exs.as_seq() else {
            return self.err(exs, "rule exceptions must be a sequence");
        };
        let mut out: Vec<RawException> = Vec::new();
        for ex in seq {
            if ex.as_map().is_none() {
                return self.err(ex, "rule exception must be a mapping");
            }
            let name = self.req_str(ex, "name")?;
            let loc = self.loc(ex);
            if out.iter().any(|e| e.name == name) {
                self.warn(
                    loc.clone(),
                    format!("multiple definitions of exception '{name}' in the same rule"),
                );
            }
            let fields = match ex.get("fields") {
                None if append => None,
                None => return self.err(ex, "item has no mapping for key 'fields'"),
                Some(f) => self.fields_or_comps(f, "fields")?.map(|e| match e {
                    Ok(s) => ExceptionFields::Single(s),
                    Err(l) => ExceptionFields::List(l),
                }),
            };
            let comps = match ex.get("comps") {
                None => None,
                Some(c) => self.fields_or_comps(c, "comps")?.map(|e| match e {
                    Ok(s) => ExceptionComps::Single(s),
                    Err(l) => ExceptionComps::List(l),
                }),
            };
            let mut values = Vec::new();
            match ex.get("values") {
                Some(vals) => {
                    let Some(vals) = vals.as_seq() else {
                        return self.err(vals, "rule exception values must be a sequence");
                    };
                    for v in vals {
                        values.push(Located::new(self.exception_value(v)?, self.loc(v)));
                    }
                }
                None if append => {
                    self.warn(loc.clone(), "overriding/appending exception with no values");
                }
                None => {}
            }
            out.push(RawException {
                name,
                fields,
                comps,
                values,
                loc,
            });
        }
        Ok(out)
    }

    /// `fields`/`comps`: a non-empty scalar (`Ok`) or a list of them (`Err`); `None` for a
    /// null or mapping, which Falco leaves unset.
    #[allow(
        clippy::type_complexity,
        reason = "Ok/Err distinguish the two accepted shapes"
    )]
    fn fields_or_comps(&self, n: &Node, key: &str) -> Res<Option<Result<String, Vec<String>>>> {
        if n.is_null() {
            return Ok(None);
        }
        match &n.kind {
            NodeKind::Scalar { value, .. } if value.is_empty() => {
                self.err(n, format!("value for key '{key}' must be non-empty"))
            }
            NodeKind::Scalar { value, .. } => Ok(Some(Ok(value.clone()))),
            NodeKind::Seq(items) => {
                let mut out = Vec::new();
                for i in items {
                    match i.as_scalar() {
                        Some("") => {
                            return self.err(i, format!("value in '{key}' must be non-empty"))
                        }
                        Some(s) => out.push(s.to_string()),
                        None => {
                            return self
                                .err(i, format!("exception {key} must be a list of strings"))
                        }
                    }
                }
                Ok(Some(Err(out)))
            }
            NodeKind::Map(_) => Ok(None),
        }
    }

    fn exception_value(&self, v: &Node) -> Res<ExceptionValue> {
        let scalar = |n: &Node| -> Res<String> {
            match n.as_scalar() {
                Some("") => self.err(n, "exception value must be non-empty"),
                Some(s) if !n.is_null() => Ok(s.to_string()),
                _ => self.err(n, "exception value must be a string or a list of strings"),
            }
        };
        match &v.kind {
            NodeKind::Seq(items) => {
                let mut tuple = Vec::new();
                for i in items {
                    match &i.kind {
                        NodeKind::Seq(inner) => {
                            let list = inner.iter().map(scalar).collect::<Res<Vec<_>>>()?;
                            tuple.push(TupleItem::List(list));
                        }
                        _ => tuple.push(TupleItem::Scalar(scalar(i)?)),
                    }
                }
                Ok(ExceptionValue::Tuple(tuple))
            }
            _ => Ok(ExceptionValue::Scalar(scalar(v)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_cpp_booleans() {
        for t in ["true", "True", "TRUE", "yes", "Y", "on", "ON"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "False", "no", "n", "off", "OFF"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for x in ["", "tRue", "1", "0", "maybe", "é"] {
            assert_eq!(parse_bool(x), None, "{x}");
        }
    }

    #[test]
    fn names() {
        assert!(is_valid_macro_name("open_write"));
        assert!(!is_valid_macro_name("1open"));
        assert!(!is_valid_macro_name("open-write"));
        assert!(is_valid_list_name("shell-binaries"));
        assert!(!is_valid_list_name("a b"));
        assert!(!is_valid_list_name("a,b"));
    }
}

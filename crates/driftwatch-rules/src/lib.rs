//! driftwatch rule files: reading Falco-compatible YAML rule files with positions, and
//! collecting their rules, macros and lists with Falco's semantics.
//!
//! The stages follow Falco's `rule_loader` (falcosecurity/falco `userspace/engine/`):
//!
//! - **reading** (`reader.rs`, Falco's `rule_loader_reader.cpp`): each top-level item
//!   (`rule`, `macro`, `list`, `required_engine_version`, `required_plugin_versions`) is checked
//!   for keys and types and turned into an entry; every value keeps its `file:line:col`.
//! - **collecting** (`collector.rs`, Falco's `rule_loader_collector.cpp`): definitions in order,
//!   redefinition replaces in place, `append`/`override` need an earlier definition, a rule
//!   item with only `enabled` toggles an earlier rule, later files tune earlier ones.
//! - **exceptions** (`exception.rs`, Falco's `rule_loader_compiler.cpp`): each rule's
//!   [`RuleDef::effective_condition`] is the exact text Falco builds.
//!
//! Conditions, macros and list items stay text; parsing and expansion are the next stage's.
//!
//! Where this loader differs from Falco on purpose:
//! - Falco stops a file at its first error; here an item with an error is skipped (nothing of it
//!   is applied) and loading goes on, so one run reports every error. Any error still means the
//!   rule set must not be used ([`LoadResult::has_errors`]).
//! - Exception errors that Falco finds only when compiling (values of the wrong shape, invalid
//!   comps of replaced exceptions) are reported by [`Loader::finish`].
//! - Exception fields are not checked against the fields the engine provides (that needs the
//!   field table, a later stage).
//!
//! Architecture invariant: no IO except reading the rule files given (`files.rs`); everything
//! else is pure. Nothing here panics on any input: malformed YAML, wrong types, deep nesting,
//! alias bombs, huge or non-UTF-8 files all become [`Diagnostic`]s.
#![forbid(unsafe_code)]

mod cases;
mod collector;
mod compile;
mod definition;
mod diagnostic;
mod eval;
mod exception;
mod fields;
mod files;
mod loader;
mod matcher;
mod output;
mod reader;
mod source_loc;
mod value;
mod version;
mod yaml;

pub use cases::{parse_cases, run_cases, CaseResult, TestCase};
pub use compile::{compile, CompileOptions, CompileStats, Compiled, MAX_MACRO_DEPTH};
pub use definition::{
    ListDef, LoadResult, MacroDef, PluginRequirement, PluginVersion, RequiredEngineVersion, RuleDef,
};
pub use diagnostic::{Diagnostic, Severity};
pub use driftwatch_event::Priority;
pub use eval::{CompiledRule, EvalCtx, MatchMode, RuleSet};
pub use exception::{
    is_operator_for_list, is_str_operator_with_modifier, Exception, ExceptionComps,
    ExceptionFields, ExceptionValue, TupleItem,
};
pub use fields::{
    fields_markdown, fields_text, lookup as lookup_field, ArgKind, EventKind, EventKinds,
    EventType, FieldDef, FieldId, FieldType, FIELDS,
};
pub use files::{load_files, read_rule_file, rule_files, RuleFileError};
pub use loader::{load_str, LoadOptions, Loader, MAX_FILE_BYTES};
pub use output::{time_of_day, OutputFormat, OutputOptions, CONTAINER_FIELDS};
pub use source_loc::{Located, SourceLoc, SourceText};
pub use value::{
    parse_field_ref, FieldArg, FieldSource, MapSource, MapSourceError, OwnedValue, Scratch, Value,
};
pub use version::{EngineVersion, ENGINE_VERSION};
pub use yaml::{MAX_DEPTH, MAX_NODES};

#[cfg(test)]
mod tests;

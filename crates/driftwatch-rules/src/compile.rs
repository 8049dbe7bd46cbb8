//! Compiling loaded rules into evaluation trees.
//!
//! For each enabled rule of a known source: parse its effective condition (exceptions already
//! folded in by the loader), expand macros and named lists, resolve every field against the
//! field table, check operators against field types and values against the field's type, and
//! prepare every matcher (globs, anchored regexes, sets, prefix sets) up front. Problems are
//! all reported at once as `file:line:col` diagnostics.
//!
//! Visibility follows Falco's compiler (`rule_loader_compiler.cpp`): a macro or list may use
//! only macros and lists whose `index` is lower than its own `visibility`; a rule, compiled
//! after every definition, sees all of them. Named lists inside lists expand recursively
//! (each list already expanded when it is used), with a cycle check.
//!
//! Architecture invariant: no IO.

use crate::definition::{LoadResult, MacroDef, RuleDef};
use crate::diagnostic::Diagnostic;
use crate::eval::{
    CheckNode, CompiledRule, FieldOp, MatchMode, Node, OperandNode, OrdOp, RuleSet, Scalar, Set,
    TArgNode, Test, TransformNode, EVT_TYPE,
};
use crate::fields::{lookup, ArgKind, EventType, FieldType};
use crate::matcher::{decode_hex, Glob, PrefixSet};
use crate::output::{OutputFormat, OutputIssue};
use crate::source_loc::SourceLoc;
use crate::value::FieldArg;
use driftwatch_rule_lang::{
    parse, Check, Expr, Literal, Modifier, Operand, Operator, Quote, Rhs, TransformArg,
    TransformKind,
};
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
        let mut l = Lower {
            env: &env,
            rule,
            stack: Vec::new(),
            unknown: Vec::new(),
            errors: Vec::new(),
        };
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
                _ => out.push(item.value.as_bytes().to_vec()),
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

struct Env<'l> {
    load: &'l LoadResult,
    lists: HashMap<String, Vec<Vec<u8>>>,
    macros: HashMap<&'l str, Option<Expr>>,
}

#[derive(Clone, Copy)]
enum Origin<'l> {
    Rule,
    Macro(&'l MacroDef),
}

impl Origin<'_> {
    fn visibility(self) -> usize {
        match self {
            Origin::Rule => usize::MAX,
            Origin::Macro(m) => m.visibility,
        }
    }
}

struct Lower<'l> {
    env: &'l Env<'l>,
    rule: &'l RuleDef,
    stack: Vec<&'l str>,
    /// (field, where, macro it is in)
    unknown: Vec<(String, SourceLoc, Option<String>)>,
    errors: Vec<Diagnostic>,
}

/// A resolved left operand: its node, value type, and whether it may hold several values.
struct Typed {
    node: OperandNode,
    ty: FieldType,
}

impl<'l> Lower<'l> {
    fn loc(&self, origin: Origin<'_>, offset: usize) -> SourceLoc {
        match origin {
            Origin::Rule => self.rule.loc_of_effective_offset(offset),
            Origin::Macro(m) => m.condition.loc_of_offset(offset),
        }
    }

    fn error(&mut self, origin: Origin<'_>, offset: usize, msg: impl std::fmt::Display) {
        let within = match origin {
            Origin::Rule => String::new(),
            Origin::Macro(m) => format!(" (in macro '{}')", m.name),
        };
        let loc = self.loc(origin, offset);
        self.errors.push(Diagnostic::error(
            loc,
            format!("rule '{}': {msg}{within}", self.rule.name),
        ));
    }

    fn unknown(&mut self, field: String, loc: SourceLoc, mac: Option<String>) {
        if !self.unknown.iter().any(|(f, _, _)| *f == field) {
            self.unknown.push((field, loc, mac));
        }
    }

    fn expr(&mut self, e: &'l Expr, origin: Origin<'l>) -> Option<Node> {
        match e {
            Expr::And(j) | Expr::Or(j) => {
                let mut kids = Vec::with_capacity(j.children.len());
                let mut ok = true;
                for c in &j.children {
                    match self.expr(c, origin) {
                        Some(n) => kids.push(n),
                        None => ok = false,
                    }
                }
                let kids = kids.into_boxed_slice();
                ok.then(|| {
                    if matches!(e, Expr::And(_)) {
                        Node::And(kids)
                    } else {
                        Node::Or(kids)
                    }
                })
            }
            Expr::Not(n) => self.expr(&n.child, origin).map(|c| Node::Not(Box::new(c))),
            Expr::Macro(id) => self.macro_ref(&id.name, id.span.start, origin),
            Expr::Check(c) => self.check(c, origin),
            Expr::Error(s) => {
                self.error(origin, s.start, "invalid condition");
                None
            }
        }
    }

    fn macro_ref(&mut self, name: &str, offset: usize, origin: Origin<'l>) -> Option<Node> {
        let env = self.env;
        let Some((key, def)) = env.load.macros.get_key_value(name) else {
            self.error(origin, offset, format_args!("undefined macro '{name}'"));
            return None;
        };
        if def.index >= origin.visibility() {
            self.error(
                origin,
                offset,
                format_args!("macro '{name}' is used before it is defined"),
            );
            return None;
        }
        if self.stack.contains(&key.as_str()) {
            let chain = self.stack.join(" -> ");
            self.error(
                origin,
                offset,
                format_args!("macro '{name}' refers to itself ({chain} -> {name})"),
            );
            return None;
        }
        if self.stack.len() >= MAX_MACRO_DEPTH {
            self.error(
                origin,
                offset,
                format_args!("macros nest deeper than {MAX_MACRO_DEPTH} levels"),
            );
            return None;
        }
        // a macro that failed to parse was reported once already
        let expr = env.macros.get(key.as_str())?.as_ref()?;
        self.stack.push(key.as_str());
        let n = self.expr(expr, Origin::Macro(def));
        self.stack.pop();
        n
    }

    fn operand(&mut self, op: &'l Operand, origin: Origin<'l>) -> Option<Typed> {
        match op {
            Operand::Field(f) => {
                let Some(id) = lookup(&f.name) else {
                    let mac = match origin {
                        Origin::Rule => None,
                        Origin::Macro(m) => Some(m.name.clone()),
                    };
                    let loc = self.loc(origin, f.name_span.start);
                    self.unknown(f.name.clone(), loc, mac);
                    return None;
                };
                let def = id.def();
                let arg = match (def.arg, &f.arg) {
                    (ArgKind::None | ArgKind::IndexOrAll, None) => FieldArg::None,
                    (ArgKind::None, Some(a)) => {
                        self.error(
                            origin,
                            a.span.start,
                            format_args!("field '{}' does not take an argument", f.name),
                        );
                        return None;
                    }
                    (ArgKind::Index, None) => {
                        self.error(
                            origin,
                            f.span.start,
                            format_args!("field '{}' needs an index argument", f.name),
                        );
                        return None;
                    }
                    (_, Some(a)) => match a.as_str().and_then(|s| s.trim().parse().ok()) {
                        Some(n) => FieldArg::Index(n),
                        None => {
                            self.error(
                                origin,
                                a.span.start,
                                format_args!(
                                    "invalid index '{}' for field '{}'",
                                    a.to_str_lossy(),
                                    f.name
                                ),
                            );
                            return None;
                        }
                    },
                };
                Some(Typed {
                    node: OperandNode::Field { id, arg },
                    ty: def.ty,
                })
            }
            Operand::Transform(t) => {
                match t.kind {
                    TransformKind::Getopt => {
                        self.error(
                            origin,
                            t.span.start,
                            "the getopt transformer is not supported",
                        );
                        return None;
                    }
                    TransformKind::Val if t.args.len() == 1 => {
                        if let [TransformArg::Operand(inner)] = t.args.as_slice() {
                            return self.operand(inner, origin);
                        }
                    }
                    _ => {}
                }
                if t.arg.is_some() {
                    self.error(
                        origin,
                        t.span.start,
                        "an argument after a transformer is not supported",
                    );
                    return None;
                }
                let mut args = Vec::new();
                let mut ok = true;
                for a in &t.args {
                    match self.targ(a, origin) {
                        Some(x) => args.push(x),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                let ty = if t.kind == TransformKind::Len {
                    FieldType::U64
                } else {
                    FieldType::String
                };
                Some(Typed {
                    node: OperandNode::Transform(Box::new(TransformNode { kind: t.kind, args })),
                    ty,
                })
            }
        }
    }

    fn targ(&mut self, a: &'l TransformArg, origin: Origin<'l>) -> Option<TArgNode> {
        Some(match a {
            TransformArg::Operand(o) => TArgNode::Operand(self.operand(o, origin)?.node),
            TransformArg::Literal(l) => TArgNode::Literal(l.value.clone().into_boxed_slice()),
            TransformArg::List(l) => {
                let mut items = Vec::new();
                for i in &l.items {
                    items.push(self.targ(i, origin)?);
                }
                TArgNode::List(items)
            }
        })
    }

    /// The items of a list right-hand side, named lists expanded.
    fn list_items(&mut self, rhs: &'l Rhs, origin: Origin<'l>) -> Option<Vec<(Vec<u8>, usize)>> {
        let vis = origin.visibility();
        let env = self.env;
        let visible = |name: &str| env.load.lists.get(name).is_some_and(|l| l.index < vis);
        match rhs {
            Rhs::List(l) => {
                let mut out = Vec::new();
                for item in &l.items {
                    match (item.quote, item.as_str()) {
                        (Quote::Bare, Some(name)) if visible(name) => out.extend(
                            env.lists
                                .get(name)
                                .into_iter()
                                .flatten()
                                .map(|v| (v.clone(), item.span.start)),
                        ),
                        _ => out.push((item.value.clone(), item.span.start)),
                    }
                }
                Some(out)
            }
            Rhs::ListRef(id) => {
                if !visible(&id.name) {
                    self.error(
                        origin,
                        id.span.start,
                        format_args!("undefined list '{}'", id.name),
                    );
                    return None;
                }
                Some(
                    env.lists
                        .get(&id.name)
                        .into_iter()
                        .flatten()
                        .map(|v| (v.clone(), id.span.start))
                        .collect(),
                )
            }
            Rhs::Value(l) => Some(vec![(l.value.clone(), l.span.start)]),
            Rhs::Operand(_) => None,
        }
    }

    fn check(&mut self, c: &'l Check, origin: Origin<'l>) -> Option<Node> {
        let left = self.operand(&c.left, origin);
        let Some(Typed { node: left, ty }) = left else {
            // still look at the right side for unknown fields
            if let Some(Rhs::Operand(o)) = &c.right {
                let _ = self.operand(o, origin);
            }
            return None;
        };
        let op = c.op.kind;
        let name = c.left.to_string();
        let fits = match op {
            Operator::Exists
            | Operator::Eq
            | Operator::EqEq
            | Operator::Ne
            | Operator::In
            | Operator::Intersects => true,
            Operator::Lt | Operator::Le | Operator::Gt | Operator::Ge => ty.is_numeric(),
            _ => ty.is_string(),
        };
        if !fits {
            self.error(
                origin,
                c.op.span.start,
                format_args!(
                    "operator '{}' cannot be used with field '{name}' of type {}",
                    op.as_str(),
                    ty.as_str()
                ),
            );
            return None;
        }
        let test = match (&c.right, c.op.modifier) {
            (None, _) => Test::Exists,
            (Some(Rhs::Operand(o)), _) => {
                let Typed { node: rhs, ty: rty } = self.operand(o, origin)?;
                let fop = match op {
                    Operator::Eq | Operator::EqEq => FieldOp::Eq,
                    Operator::Ne => FieldOp::Ne,
                    Operator::Lt => FieldOp::Ord(OrdOp::Lt),
                    Operator::Le => FieldOp::Ord(OrdOp::Le),
                    Operator::Gt => FieldOp::Ord(OrdOp::Gt),
                    Operator::Ge => FieldOp::Ord(OrdOp::Ge),
                    Operator::Contains => FieldOp::Contains,
                    Operator::IContains => FieldOp::IContains,
                    Operator::StartsWith => FieldOp::StartsWith,
                    Operator::EndsWith => FieldOp::EndsWith,
                    _ => {
                        self.error(
                            origin,
                            c.op.span.start,
                            format_args!("operator '{}' cannot compare with a field", op.as_str()),
                        );
                        return None;
                    }
                };
                let compatible = (ty.is_numeric() && rty.is_numeric())
                    || (ty.is_string() && rty.is_string())
                    || (ty == FieldType::Bool && rty == FieldType::Bool);
                if !compatible {
                    self.error(
                        origin,
                        o.span().start,
                        format_args!(
                            "cannot compare field '{name}' ({}) with '{o}' ({})",
                            ty.as_str(),
                            rty.as_str()
                        ),
                    );
                    return None;
                }
                Test::Operand(fop, rhs)
            }
            (Some(rhs), Some((modifier, _))) => {
                let items = self.list_items(rhs, origin)?;
                let mut tests = Vec::with_capacity(items.len());
                for (v, off) in items {
                    tests.push(self.scalar_test(op, ty, &name, &v, off, origin)?);
                }
                match modifier {
                    Modifier::AnyOf => Test::AnyOf(tests),
                    Modifier::AllOf => Test::AllOf(tests),
                    Modifier::OneOf => Test::OneOf(tests),
                }
            }
            (Some(rhs), None)
                if matches!(op, Operator::In | Operator::Intersects | Operator::PMatch) =>
            {
                let items = self.list_items(rhs, origin)?;
                if op == Operator::PMatch {
                    Test::PMatch(PrefixSet::new(items.into_iter().map(|(v, _)| v)))
                } else {
                    let mut vals = Vec::with_capacity(items.len());
                    let mut ok = true;
                    for (v, off) in items {
                        match self.scalar(ty, &name, &v, off, origin) {
                            Some(s) => vals.push(s),
                            None => ok = false,
                        }
                    }
                    if !ok {
                        return None;
                    }
                    if op == Operator::In {
                        Test::In(Set::new(vals))
                    } else {
                        Test::Intersects(Set::new(vals))
                    }
                }
            }
            (Some(Rhs::Value(l)), None) => {
                self.scalar_test(op, ty, &name, &l.value, l.span.start, origin)?
            }
            (Some(rhs), None) => {
                self.error(
                    origin,
                    rhs.span().start,
                    format_args!("operator '{}' needs a single value", op.as_str()),
                );
                return None;
            }
        };
        Some(Node::Check(Box::new(CheckNode { left, test })))
    }

    /// A value converted to the field's type.
    fn scalar(
        &mut self,
        ty: FieldType,
        name: &str,
        v: &[u8],
        off: usize,
        origin: Origin<'l>,
    ) -> Option<Scalar> {
        let text = String::from_utf8_lossy(v);
        let bad = |this: &mut Self| {
            this.error(
                origin,
                off,
                format_args!(
                    "invalid value '{text}' for field '{name}' of type {}",
                    ty.as_str()
                ),
            );
            None
        };
        match ty {
            FieldType::String | FieldType::Path => Some(Scalar::Str(v.to_vec().into_boxed_slice())),
            FieldType::Bool => match text.trim() {
                "true" => Some(Scalar::Bool(true)),
                "false" => Some(Scalar::Bool(false)),
                _ => bad(self),
            },
            FieldType::U64 | FieldType::AbsTime | FieldType::I64 => {
                let t = text.trim();
                let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                    Some(h) => i128::from_str_radix(h, 16).ok(),
                    None => t.parse::<i128>().ok(),
                };
                match parsed {
                    Some(n) if ty == FieldType::I64 && i64::try_from(n).is_ok() => {
                        Some(Scalar::Num(n))
                    }
                    Some(n) if ty != FieldType::I64 && u64::try_from(n).is_ok() => {
                        Some(Scalar::Num(n))
                    }
                    _ => bad(self),
                }
            }
        }
    }

    fn scalar_test(
        &mut self,
        op: Operator,
        ty: FieldType,
        name: &str,
        v: &[u8],
        off: usize,
        origin: Origin<'l>,
    ) -> Option<Test> {
        let bytes = || v.to_vec().into_boxed_slice();
        Some(match op {
            Operator::Eq | Operator::EqEq => Test::Eq(self.scalar(ty, name, v, off, origin)?),
            Operator::Ne => Test::Ne(self.scalar(ty, name, v, off, origin)?),
            Operator::Lt | Operator::Le | Operator::Gt | Operator::Ge => {
                let Scalar::Num(n) = self.scalar(ty, name, v, off, origin)? else {
                    return None;
                };
                let o = match op {
                    Operator::Lt => OrdOp::Lt,
                    Operator::Le => OrdOp::Le,
                    Operator::Gt => OrdOp::Gt,
                    _ => OrdOp::Ge,
                };
                Test::Ord(o, n)
            }
            Operator::Contains => Test::Contains(bytes()),
            Operator::IContains => Test::IContains(v.to_ascii_lowercase().into_boxed_slice()),
            Operator::StartsWith => Test::StartsWith(bytes()),
            Operator::EndsWith => Test::EndsWith(bytes()),
            Operator::BContains | Operator::BStartsWith => {
                let Some(b) = decode_hex(v) else {
                    self.error(
                        origin,
                        off,
                        format_args!(
                            "invalid hex string '{}' for '{}': expected pairs of hex digits",
                            String::from_utf8_lossy(v),
                            op.as_str()
                        ),
                    );
                    return None;
                };
                if op == Operator::BContains {
                    Test::BContains(b.into_boxed_slice())
                } else {
                    Test::BStartsWith(b.into_boxed_slice())
                }
            }
            Operator::Glob => Test::Glob(Glob::new(v, false)),
            Operator::IGlob => Test::Glob(Glob::new(v, true)),
            Operator::Regex => {
                let pat = String::from_utf8_lossy(v);
                match regex::bytes::Regex::new(&format!("^(?:{pat})$")) {
                    Ok(r) => Test::Regex(r),
                    Err(e) => {
                        let msg = e
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or_default()
                            .to_lowercase();
                        self.error(
                            origin,
                            off,
                            format_args!("invalid regular expression '{pat}': {msg}"),
                        );
                        return None;
                    }
                }
            }
            Operator::In | Operator::Intersects => {
                Test::In(Set::new(vec![self.scalar(ty, name, v, off, origin)?]))
            }
            Operator::PMatch => Test::PMatch(PrefixSet::new([v.to_vec()])),
            Operator::Exists => Test::Exists,
        })
    }
}

/// True when a check on `evt.type` appears anywhere in the condition.
fn mentions_evt_type(n: &Node) -> bool {
    match n {
        Node::And(k) | Node::Or(k) => k.iter().any(mentions_evt_type),
        Node::Not(c) => mentions_evt_type(c),
        Node::Check(c) => matches!(&c.left, OperandNode::Field { id, .. } if *id == EVT_TYPE),
    }
}

/// Bits of every event type.
pub(crate) const ALL_TYPES: u32 = (1 << EventType::ALL.len()) - 1;

fn type_mask(v: &[u8]) -> u32 {
    EventType::parse(v).map_or(0, |t| 1 << t.index())
}

/// For a node: (types for which it can be true, types for which it can be false).
pub(crate) fn event_types(n: &Node) -> (u32, u32) {
    match n {
        Node::And(k) => k
            .iter()
            .map(event_types)
            .fold((ALL_TYPES, 0), |(p, q), (a, b)| (p & a, q | b)),
        Node::Or(k) => k
            .iter()
            .map(event_types)
            .fold((0, ALL_TYPES), |(p, q), (a, b)| (p | a, q & b)),
        Node::Not(c) => {
            let (p, q) = event_types(c);
            (q, p)
        }
        Node::Check(c) => {
            let OperandNode::Field { id, .. } = &c.left else {
                return (ALL_TYPES, ALL_TYPES);
            };
            if *id != EVT_TYPE {
                return (ALL_TYPES, ALL_TYPES);
            }
            let set_mask = |s: &Set| match s {
                Set::Small(items) => items.iter().fold(0, |m, i| match i {
                    Scalar::Str(v) => m | type_mask(v),
                    _ => m,
                }),
                Set::Strs(h) => h.iter().fold(0, |m, v| m | type_mask(v)),
                Set::Nums(_) => 0,
            };
            let m = match &c.test {
                Test::Eq(Scalar::Str(v)) => type_mask(v),
                Test::Ne(Scalar::Str(v)) => return (ALL_TYPES & !type_mask(v), type_mask(v)),
                Test::In(s) | Test::Intersects(s) => set_mask(s),
                _ => return (ALL_TYPES, ALL_TYPES),
            };
            (m, ALL_TYPES & !m)
        }
    }
}

#[allow(
    dead_code,
    reason = "keeps Literal in the public re-exports used by docs"
)]
fn _literal(_: &Literal) {}

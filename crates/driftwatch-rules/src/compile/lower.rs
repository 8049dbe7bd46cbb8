//! Lowering: one rule's condition AST (`driftwatch_rule_lang::Expr`) to an evaluable [`Node`].
//!
//! Macros are expanded in place (visibility, cycle and depth checks), named lists expanded
//! into the right-hand side, every field resolved against the field table (a field driftwatch
//! does not provide is collected as unknown, for the driver to reject or skip the rule), operators
//! checked against the field's type, values converted to it, and every matcher (glob, anchored
//! regex, set, prefix set) prepared once. Errors are collected, not returned at the first one.
//!
//! Architecture invariant: no IO.

use super::MAX_MACRO_DEPTH;
use crate::definition::{LoadResult, MacroDef, RuleDef};
use crate::diagnostic::Diagnostic;
use crate::eval::{
    CheckNode, FieldOp, Node, OperandNode, OrdOp, Scalar, Set, TArgNode, Test, TransformNode,
};
use crate::fields::{lookup, ArgKind, FieldType};
use crate::matcher::{decode_hex, Glob, IpNet, PrefixSet};
use crate::source_loc::SourceLoc;
use crate::value::FieldArg;
use driftwatch_rule_lang::{
    Check, Expr, Modifier, Operand, Operator, Quote, Rhs, TransformArg, TransformKind,
};
use std::collections::HashMap;

/// What every rule's lowering shares: the definitions, the lists already expanded, the macros
/// already parsed (`None` for one that failed to parse, reported once by the driver).
pub(super) struct Env<'l> {
    pub(super) load: &'l LoadResult,
    pub(super) lists: HashMap<String, Vec<Vec<u8>>>,
    pub(super) macros: HashMap<&'l str, Option<Expr>>,
}

/// Where the expression being lowered was written: the rule's own condition, or a macro.
#[derive(Clone, Copy)]
pub(super) enum Origin<'l> {
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

/// The lowering of one rule's condition.
pub(super) struct Lower<'l> {
    env: &'l Env<'l>,
    rule: &'l RuleDef,
    /// The macros being expanded, outermost first.
    stack: Vec<&'l str>,
    /// (field, where, macro it is in)
    pub(super) unknown: Vec<(String, SourceLoc, Option<String>)>,
    pub(super) errors: Vec<Diagnostic>,
}

/// A resolved left operand: its node, value type, and whether it is either of two values
/// (`fd.ip`: `!=` then means neither).
struct Typed {
    node: OperandNode,
    ty: FieldType,
    either: bool,
}

impl<'l> Lower<'l> {
    pub(super) fn new(env: &'l Env<'l>, rule: &'l RuleDef) -> Self {
        Lower {
            env,
            rule,
            stack: Vec::new(),
            unknown: Vec::new(),
            errors: Vec::new(),
        }
    }

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

    pub(super) fn expr(&mut self, e: &'l Expr, origin: Origin<'l>) -> Option<Node> {
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
                    either: def.either,
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
                    either: false,
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
        let Some(Typed {
            node: left,
            ty,
            either,
        }) = left
        else {
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
            // addresses: only equality and sets (Falco's ipaddr and ipnet)
            _ if ty.is_ip() => false,
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
                let Typed {
                    node: rhs, ty: rty, ..
                } = self.operand(o, origin)?;
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
                    || (ty == FieldType::IpAddr && rty == FieldType::IpAddr)
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
                match self.scalar_test(op, ty, &name, &l.value, l.span.start, origin)? {
                    Test::Ne(s) if either => Test::NoneEq(s),
                    t => t,
                }
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
            // compared as the text the agent writes: the address's canonical form
            FieldType::IpAddr => match text.trim().parse::<std::net::IpAddr>() {
                Ok(a) => Some(Scalar::Str(a.to_string().into_bytes().into_boxed_slice())),
                Err(_) => bad(self),
            },
            FieldType::IpNet => match IpNet::parse(&text) {
                Some(n) => Some(Scalar::Net(n)),
                None => bad(self),
            },
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

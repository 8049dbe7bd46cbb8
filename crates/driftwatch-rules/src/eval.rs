//! Evaluation: compiled conditions run against a [`FieldSource`], rules indexed by event type.
//!
//! Architecture invariant: no IO, and no heap allocation per event once the [`EvalCtx`]
//! buffers have grown to their working size (checked by a counting-allocator test).

use crate::fields::{EventType, FieldId};
use crate::matcher::{self, Glob, IpNet, PrefixSet};
use crate::output::OutputFormat;
use crate::source_loc::SourceLoc;
use crate::value::{FieldArg, FieldSource, Scratch, Value};
use driftwatch_event::Priority;
use driftwatch_rule_lang::TransformKind;
use std::collections::HashSet;

/// `evt.type` is the first field of the table; the engine answers it from
/// [`FieldSource::event_type`].
pub(crate) const EVT_TYPE: FieldId = FieldId(0);

/// A boolean node of a compiled condition.
#[derive(Debug)]
pub(crate) enum Node {
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    Check(Box<CheckNode>),
    /// A check on `evt.type` (`=`, `!=`, `in`, `intersects`), lowered to the set of event types
    /// it holds for (bit `i`: [`EventType::ALL`]`[i]`): one AND instead of string compares.
    Types(u64),
}

/// A field or a transformer over fields.
#[derive(Debug)]
pub(crate) enum OperandNode {
    Field { id: FieldId, arg: FieldArg },
    Transform(Box<TransformNode>),
}

#[derive(Debug)]
pub(crate) struct TransformNode {
    pub kind: TransformKind,
    pub args: Vec<TArgNode>,
}

#[derive(Debug)]
pub(crate) enum TArgNode {
    Operand(OperandNode),
    Literal(Box<[u8]>),
    List(Vec<TArgNode>),
}

#[derive(Debug)]
pub(crate) struct CheckNode {
    pub left: OperandNode,
    pub test: Test,
}

/// A prepared right-hand side value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Scalar {
    Str(Box<[u8]>),
    Num(i128),
    Bool(bool),
    /// A network an address value is compared with (ipnet fields): equal when inside.
    Net(IpNet),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrdOp {
    Lt,
    Le,
    Gt,
    Ge,
}

/// A set of values for `in`/`intersects`: a vector when small, a hash set when large.
#[derive(Debug)]
pub(crate) enum Set {
    Small(Vec<Scalar>),
    Strs(HashSet<Box<[u8]>>),
    Nums(HashSet<i128>),
}

impl Set {
    /// Above this many items a hash set is used.
    const HASH_ABOVE: usize = 16;

    pub fn new(mut items: Vec<Scalar>) -> Set {
        items.dedup();
        if items.len() <= Set::HASH_ABOVE {
            return Set::Small(items);
        }
        if items.iter().all(|i| matches!(i, Scalar::Str(_))) {
            return Set::Strs(
                items
                    .into_iter()
                    .filter_map(|i| match i {
                        Scalar::Str(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
            );
        }
        if items.iter().all(|i| matches!(i, Scalar::Num(_))) {
            return Set::Nums(
                items
                    .into_iter()
                    .filter_map(|i| match i {
                        Scalar::Num(n) => Some(n),
                        _ => None,
                    })
                    .collect(),
            );
        }
        Set::Small(items)
    }

    fn contains(&self, v: V<'_>) -> bool {
        match (self, v) {
            (Set::Small(items), v) => items.iter().any(|s| v.eq_scalar(s)),
            (Set::Strs(h), V::S(s)) => h.contains(s),
            (Set::Nums(h), V::N(n)) => h.contains(&n),
            _ => false,
        }
    }
}

/// The test applied to an operand's value.
#[derive(Debug)]
pub(crate) enum Test {
    Exists,
    Eq(Scalar),
    Ne(Scalar),
    /// `!=` on a field that is either of two values (`fd.ip`): no value is equal.
    NoneEq(Scalar),
    Ord(OrdOp, i128),
    Contains(Box<[u8]>),
    IContains(Box<[u8]>),
    BContains(Box<[u8]>),
    StartsWith(Box<[u8]>),
    BStartsWith(Box<[u8]>),
    EndsWith(Box<[u8]>),
    Glob(Glob),
    Regex(regex::bytes::Regex),
    In(Set),
    Intersects(Set),
    PMatch(PrefixSet),
    /// `op anyof (…)`: any item's test holds.
    AnyOf(Vec<Test>),
    /// `op allof (…)`: every item's test holds.
    AllOf(Vec<Test>),
    /// `op oneof (…)`: exactly one item's test holds.
    OneOf(Vec<Test>),
    /// Comparison with another operand (`val(field)` or a transformer).
    Operand(FieldOp, OperandNode),
}

/// Operators usable with a field on the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldOp {
    Eq,
    Ne,
    Ord(OrdOp),
    Contains,
    IContains,
    StartsWith,
    EndsWith,
}

/// One scalar of a value.
#[derive(Debug, Clone, Copy)]
enum V<'a> {
    S(&'a [u8]),
    N(i128),
    B(bool),
}

impl V<'_> {
    fn eq_scalar(self, s: &Scalar) -> bool {
        match (self, s) {
            (V::S(a), Scalar::Str(b)) => a == &**b,
            (V::N(a), Scalar::Num(b)) => a == *b,
            (V::B(a), Scalar::Bool(b)) => a == *b,
            (V::S(a), Scalar::Net(n)) => n.contains_text(a),
            _ => false,
        }
    }
}

impl Test {
    fn holds(&self, v: V<'_>) -> bool {
        match self {
            Test::Exists => true,
            Test::Eq(s) => v.eq_scalar(s),
            Test::Ne(s) | Test::NoneEq(s) => !v.eq_scalar(s),
            Test::Ord(op, n) => match v {
                V::N(x) => ord(*op, x, *n),
                _ => false,
            },
            Test::Contains(n) | Test::BContains(n) => {
                str_of(v).is_some_and(|s| matcher::contains(s, n))
            }
            Test::IContains(n) => str_of(v).is_some_and(|s| matcher::icontains(s, n)),
            Test::StartsWith(n) | Test::BStartsWith(n) => {
                str_of(v).is_some_and(|s| s.starts_with(n))
            }
            Test::EndsWith(n) => str_of(v).is_some_and(|s| s.ends_with(n)),
            Test::Glob(g) => str_of(v).is_some_and(|s| g.matches(s)),
            Test::Regex(r) => str_of(v).is_some_and(|s| r.is_match(s)),
            Test::In(set) | Test::Intersects(set) => set.contains(v),
            Test::PMatch(p) => str_of(v).is_some_and(|s| p.matches(s)),
            Test::AnyOf(ts) => ts.iter().any(|t| t.holds(v)),
            Test::AllOf(ts) => ts.iter().all(|t| t.holds(v)),
            Test::OneOf(ts) => ts.iter().filter(|t| t.holds(v)).count() == 1,
            Test::Operand(..) => false,
        }
    }
}

fn str_of(v: V<'_>) -> Option<&[u8]> {
    match v {
        V::S(s) => Some(s),
        _ => None,
    }
}

fn ord(op: OrdOp, a: i128, b: i128) -> bool {
    match op {
        OrdOp::Lt => a < b,
        OrdOp::Le => a <= b,
        OrdOp::Gt => a > b,
        OrdOp::Ge => a >= b,
    }
}

/// Calls `f` on each scalar of a value (one for scalars, each item for lists) until it returns
/// true; a list holds when any item does (Falco's ancestor fields without index).
fn any_scalar(v: &Value<'_>, mut f: impl FnMut(V<'_>) -> bool) -> bool {
    match *v {
        Value::Str(s) => f(V::S(s)),
        Value::U64(n) => f(V::N(i128::from(n))),
        Value::I64(n) => f(V::N(i128::from(n))),
        Value::Bool(b) => f(V::B(b)),
        Value::StrList(sc) => sc.strs().any(|s| f(V::S(s))),
        Value::NumList(sc) => sc.nums.iter().any(|n| f(V::N(i128::from(*n)))),
    }
}

/// Reusable buffers for evaluation; keep one per thread and pass it to every call.
#[derive(Debug, Default)]
pub struct EvalCtx {
    left: Scratch,
    right: Scratch,
    left_buf: Vec<u8>,
    right_buf: Vec<u8>,
    pool: Vec<Vec<u8>>,
    pool_scratch: Vec<Scratch>,
}

impl EvalCtx {
    #[must_use]
    pub fn new() -> EvalCtx {
        EvalCtx::default()
    }
}

/// Evaluates `op`, writing computed values into `scratch`/`buf`.
fn operand_value<'a, S: FieldSource + ?Sized>(
    op: &OperandNode,
    src: &'a S,
    scratch: &'a mut Scratch,
    buf: &'a mut Vec<u8>,
    ctx: &mut EvalCtx,
) -> Option<Value<'a>> {
    match op {
        OperandNode::Field { id, arg } => {
            if *id == EVT_TYPE {
                return Some(Value::Str(src.event_type().as_str().as_bytes()));
            }
            scratch.clear();
            src.get(*id, arg, scratch)
        }
        OperandNode::Transform(t) => {
            buf.clear();
            transform(t, src, buf, ctx).map(|n| n.map_or(Value::Str(buf.as_slice()), Value::U64))
        }
    }
}

/// Runs a transformer; the string result is in `out`, or a number is returned (`len`).
fn transform<S: FieldSource + ?Sized>(
    t: &TransformNode,
    src: &S,
    out: &mut Vec<u8>,
    ctx: &mut EvalCtx,
) -> Option<Option<u64>> {
    match t.kind {
        TransformKind::ToLower
        | TransformKind::ToUpper
        | TransformKind::Basename
        | TransformKind::B64 => {
            append_arg(t.args.first()?, src, out, ctx)?;
            match t.kind {
                TransformKind::ToLower => out.make_ascii_lowercase(),
                TransformKind::ToUpper => out.make_ascii_uppercase(),
                TransformKind::Basename => {
                    if let Some(i) = out.iter().rposition(|b| *b == b'/') {
                        out.drain(..=i);
                    }
                }
                _ => {
                    let mut tmp = ctx.pool.pop().unwrap_or_default();
                    tmp.clear();
                    let ok = b64_decode(out, &mut tmp);
                    std::mem::swap(out, &mut tmp);
                    ctx.pool.push(tmp);
                    ok?;
                }
            }
            Some(None)
        }
        TransformKind::Len => {
            let arg = t.args.first()?;
            if let TArgNode::Operand(op) = arg {
                let mut sc = ctx.pool_scratch.pop().unwrap_or_default();
                let mut b = ctx.pool.pop().unwrap_or_default();
                let n = match operand_value(op, src, &mut sc, &mut b, ctx) {
                    Some(Value::Str(s)) => Some(s.len()),
                    Some(Value::StrList(l)) => Some(l.ends.len()),
                    Some(Value::NumList(l)) => Some(l.nums.len()),
                    _ => None,
                };
                ctx.pool_scratch.push(sc);
                ctx.pool.push(b);
                return n.map(|n| Some(u64::try_from(n).unwrap_or(u64::MAX)));
            }
            append_arg(arg, src, out, ctx)?;
            Some(Some(u64::try_from(out.len()).unwrap_or(u64::MAX)))
        }
        TransformKind::Concat => {
            for a in &t.args {
                append_arg(a, src, out, ctx)?;
            }
            Some(None)
        }
        TransformKind::Join => {
            let (sep, rest) = t.args.split_first()?;
            let TArgNode::Literal(sep) = sep else {
                return None;
            };
            let items: &[TArgNode] = match rest {
                [TArgNode::List(items)] => items,
                other => other,
            };
            let mut first = true;
            for a in items {
                let mark = out.len();
                if !first {
                    out.extend_from_slice(sep);
                }
                if append_arg(a, src, out, ctx).is_some() {
                    first = false;
                } else {
                    out.truncate(mark);
                }
            }
            Some(None)
        }
        TransformKind::Getopt | TransformKind::Val => None,
    }
}

/// Appends an argument's text to `out`; `None` when a field has no value.
fn append_arg<S: FieldSource + ?Sized>(
    a: &TArgNode,
    src: &S,
    out: &mut Vec<u8>,
    ctx: &mut EvalCtx,
) -> Option<()> {
    match a {
        TArgNode::Literal(l) => {
            out.extend_from_slice(l);
            Some(())
        }
        TArgNode::List(items) => {
            for i in items {
                append_arg(i, src, out, ctx)?;
            }
            Some(())
        }
        TArgNode::Operand(op) => {
            let mut sc = ctx.pool_scratch.pop().unwrap_or_default();
            let mut b = ctx.pool.pop().unwrap_or_default();
            let r = match operand_value(op, src, &mut sc, &mut b, ctx) {
                Some(v) => {
                    write_value(&v, out);
                    Some(())
                }
                None => None,
            };
            ctx.pool_scratch.push(sc);
            ctx.pool.push(b);
            r
        }
    }
}

/// Appends a value as text (numbers in decimal, lists comma-separated).
pub(crate) fn write_value(v: &Value<'_>, out: &mut Vec<u8>) {
    use std::io::Write as _;
    match *v {
        Value::Str(s) => out.extend_from_slice(s),
        Value::U64(n) => {
            let _ = write!(out, "{n}");
        }
        Value::I64(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::StrList(l) => {
            for (i, s) in l.strs().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(s);
            }
        }
        Value::NumList(l) => {
            for (i, n) in l.nums.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = write!(out, "{n}");
            }
        }
    }
}

fn b64_decode(input: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap_or(0));
        }
    }
    Some(())
}

impl Node {
    pub(crate) fn eval<S: FieldSource + ?Sized>(&self, src: &S, ctx: &mut EvalCtx) -> bool {
        match self {
            Node::And(c) => c.iter().all(|n| n.eval(src, ctx)),
            Node::Or(c) => c.iter().any(|n| n.eval(src, ctx)),
            Node::Not(n) => !n.eval(src, ctx),
            Node::Check(c) => c.eval(src, ctx),
            Node::Types(m) => m & (1 << src.event_type().index()) != 0,
        }
    }
}

impl CheckNode {
    fn eval<S: FieldSource + ?Sized>(&self, src: &S, ctx: &mut EvalCtx) -> bool {
        let mut sl = std::mem::take(&mut ctx.left);
        let mut bl = std::mem::take(&mut ctx.left_buf);
        let r = match operand_value(&self.left, src, &mut sl, &mut bl, ctx) {
            None => false,
            Some(lv) => match &self.test {
                Test::Operand(op, rhs) => {
                    let mut sr = std::mem::take(&mut ctx.right);
                    let mut br = std::mem::take(&mut ctx.right_buf);
                    let r = match operand_value(rhs, src, &mut sr, &mut br, ctx) {
                        None => false,
                        Some(rv) => any_scalar(&lv, |a| any_scalar(&rv, |b| field_op(*op, a, b))),
                    };
                    ctx.right = sr;
                    ctx.right_buf = br;
                    r
                }
                Test::NoneEq(s) => !any_scalar(&lv, |v| v.eq_scalar(s)),
                t => any_scalar(&lv, |v| t.holds(v)),
            },
        };
        ctx.left = sl;
        ctx.left_buf = bl;
        r
    }
}

fn field_op(op: FieldOp, a: V<'_>, b: V<'_>) -> bool {
    match (op, a, b) {
        (FieldOp::Eq, V::S(x), V::S(y)) => x == y,
        (FieldOp::Eq, V::N(x), V::N(y)) => x == y,
        (FieldOp::Eq, V::B(x), V::B(y)) => x == y,
        (FieldOp::Ne, V::S(x), V::S(y)) => x != y,
        (FieldOp::Ne, V::N(x), V::N(y)) => x != y,
        (FieldOp::Ne, V::B(x), V::B(y)) => x != y,
        (FieldOp::Ord(o), V::N(x), V::N(y)) => ord(o, x, y),
        (FieldOp::Contains, V::S(x), V::S(y)) => matcher::contains(x, y),
        (FieldOp::IContains, V::S(x), V::S(y)) => {
            // rare path: compare case-folded windows without allocating
            y.is_empty() || x.windows(y.len()).any(|w| w.eq_ignore_ascii_case(y))
        }
        (FieldOp::StartsWith, V::S(x), V::S(y)) => x.starts_with(y),
        (FieldOp::EndsWith, V::S(x), V::S(y)) => x.ends_with(y),
        _ => false,
    }
}

/// How many matching rules an event produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchMode {
    /// Every matching rule alerts (Falco's `rule_matching: all`).
    #[default]
    All,
    /// Only the first matching rule, in load order (Falco's `rule_matching: first`).
    First,
}

/// A rule ready to evaluate.
#[derive(Debug)]
pub struct CompiledRule {
    pub name: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub source: String,
    /// Where the rule was defined.
    pub loc: SourceLoc,
    /// Bit `i` set when the rule can match `EventType::ALL[i]`.
    pub event_types: u64,
    pub output: OutputFormat,
    pub(crate) condition: Node,
}

impl CompiledRule {
    /// Evaluates the rule's condition (whatever the event type).
    pub fn matches<S: FieldSource + ?Sized>(&self, src: &S, ctx: &mut EvalCtx) -> bool {
        self.condition.eval(src, ctx)
    }

    /// The event types the rule can match.
    pub fn event_types(&self) -> impl Iterator<Item = EventType> + '_ {
        EventType::ALL
            .into_iter()
            .filter(|t| self.event_types & (1 << t.index()) != 0)
    }
}

/// Compiled rules, indexed by event type.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    by_type: [Vec<u32>; EventType::ALL.len()],
    mode: MatchMode,
}

impl Default for RuleSet {
    fn default() -> RuleSet {
        RuleSet::new(Vec::new(), MatchMode::default())
    }
}

impl RuleSet {
    pub(crate) fn new(rules: Vec<CompiledRule>, mode: MatchMode) -> RuleSet {
        let mut by_type: [Vec<u32>; EventType::ALL.len()] = std::array::from_fn(|_| Vec::new());
        for (i, r) in rules.iter().enumerate() {
            for t in r.event_types() {
                by_type[t.index()].push(u32::try_from(i).unwrap_or(u32::MAX));
            }
        }
        RuleSet {
            rules,
            by_type,
            mode,
        }
    }

    /// Whether any rule can match events of type `t` (lets callers skip building an event's
    /// context when nothing would look at it).
    #[must_use]
    pub fn has_rules_for(&self, t: EventType) -> bool {
        !self.by_type[t.index()].is_empty()
    }

    /// Every rule, in load order.
    #[must_use]
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    #[must_use]
    pub fn mode(&self) -> MatchMode {
        self.mode
    }

    pub fn set_mode(&mut self, mode: MatchMode) {
        self.mode = mode;
    }

    /// Calls `on_match` for each rule the event matches, in load order (only the first in
    /// [`MatchMode::First`]). Allocates nothing.
    pub fn eval<S: FieldSource + ?Sized>(
        &self,
        src: &S,
        ctx: &mut EvalCtx,
        mut on_match: impl FnMut(&CompiledRule),
    ) {
        for &i in &self.by_type[src.event_type().index()] {
            let Some(rule) = self.rules.get(i as usize) else {
                continue;
            };
            if rule.condition.eval(src, ctx) {
                on_match(rule);
                if self.mode == MatchMode::First {
                    return;
                }
            }
        }
    }

    /// The names of the rules the event matches (convenience; allocates).
    pub fn matching_names<S: FieldSource + ?Sized>(
        &self,
        src: &S,
        ctx: &mut EvalCtx,
    ) -> Vec<String> {
        let mut out = Vec::new();
        self.eval(src, ctx, |r| out.push(r.name.clone()));
        out
    }
}

//! The condition AST. Every node carries a [`Span`] (byte offsets into the parsed string).
//!
//! The tree is shaped for the later compile stage: macro references ([`Expr::Macro`]) and
//! named lists ([`Rhs::ListRef`], unquoted [`List`] items) are explicit so they can be
//! expanded; fields and operators are typed so field names and operator/type fit can be
//! checked; spans let every error point at `file:line:col`.

use std::borrow::Cow;

use crate::span::Span;

/// A boolean condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `a and b and c` (n-ary; an explicitly parenthesised `and` stays a separate child).
    And(Junction),
    /// `a or b or c` (n-ary, like [`Expr::And`]).
    Or(Junction),
    /// `not a`.
    Not(Not),
    /// A bare identifier used as a whole check: a macro reference.
    Macro(Ident),
    /// `field op value`, `field exists`, …
    Check(Box<Check>),
    /// Placeholder for a part that failed to parse; a diagnostic was reported for it.
    Error(Span),
}

impl Expr {
    /// The span of this expression (parentheses around it are not included).
    #[must_use]
    pub fn span(&self) -> Span {
        match self {
            Expr::And(j) | Expr::Or(j) => j.span,
            Expr::Not(n) => n.span,
            Expr::Macro(i) => i.span,
            Expr::Check(c) => c.span,
            Expr::Error(s) => *s,
        }
    }

    /// Calls `f` on this expression and every sub-expression, parents first.
    pub fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::And(j) | Expr::Or(j) => j.children.iter().for_each(|c| c.walk(f)),
            Expr::Not(n) => n.child.walk(f),
            Expr::Macro(_) | Expr::Check(_) | Expr::Error(_) => {}
        }
    }

    /// True when the tree contains an [`Expr::Error`] placeholder.
    #[must_use]
    pub fn has_errors(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| found |= matches!(e, Expr::Error(_)));
        found
    }

    /// A copy of this tree with every span set to `0..0`, for comparing shapes.
    #[must_use]
    pub fn without_spans(&self) -> Expr {
        let mut e = self.clone();
        e.clear_spans();
        e
    }

    fn clear_spans(&mut self) {
        match self {
            Expr::And(j) | Expr::Or(j) => {
                j.span = Span::default();
                j.children.iter_mut().for_each(Expr::clear_spans);
            }
            Expr::Not(n) => {
                n.span = Span::default();
                n.keyword = Span::default();
                n.child.clear_spans();
            }
            Expr::Macro(i) => i.span = Span::default(),
            Expr::Check(c) => c.clear_spans(),
            Expr::Error(s) => *s = Span::default(),
        }
    }
}

/// The children of an `and`/`or`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Junction {
    /// Two or more operands, in source order.
    pub children: Vec<Expr>,
    /// From the first child's start to the last child's end.
    pub span: Span,
}

/// `not child`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Not {
    /// The negated expression.
    pub child: Box<Expr>,
    /// The `not` keyword.
    pub keyword: Span,
    /// From `not` to the end of the child.
    pub span: Span,
}

/// A name: a macro reference or a named-list reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// `[a-zA-Z][a-zA-Z0-9_]*`.
    pub name: String,
    /// The name in the source.
    pub span: Span,
}

/// A field check: `left op right`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The field (possibly transformed) being tested.
    pub left: Operand,
    /// The operator, with its optional `oneof`/`anyof`/`allof` modifier.
    pub op: Op,
    /// `None` exactly when the operator is unary (`exists`).
    pub right: Option<Rhs>,
    /// From the start of `left` to the end of `right` (or of the operator).
    pub span: Span,
}

impl Check {
    fn clear_spans(&mut self) {
        self.span = Span::default();
        self.left.clear_spans();
        self.op.span = Span::default();
        if let Some((_, s)) = &mut self.op.modifier {
            *s = Span::default();
        }
        match &mut self.right {
            None => {}
            Some(Rhs::Value(l)) => l.span = Span::default(),
            Some(Rhs::List(l)) => l.clear_spans(),
            Some(Rhs::ListRef(i)) => i.span = Span::default(),
            Some(Rhs::Operand(o)) => o.clear_spans(),
        }
    }
}

/// An operator as written, e.g. `startswith` or `== oneof`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Which operator.
    pub kind: Operator,
    /// Optional list modifier (`proc.name startswith anyof (/a, /b)`).
    pub modifier: Option<(Modifier, Span)>,
    /// The operator word/symbol (without the modifier).
    pub span: Span,
}

/// Every check operator Falco's parser accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `=`
    Eq,
    /// `==` (same meaning as `=`; kept apart so text round-trips)
    EqEq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `contains`
    Contains,
    /// `icontains`
    IContains,
    /// `bcontains`
    BContains,
    /// `startswith`
    StartsWith,
    /// `bstartswith`
    BStartsWith,
    /// `endswith`
    EndsWith,
    /// `glob`
    Glob,
    /// `iglob`
    IGlob,
    /// `regex`
    Regex,
    /// `in`
    In,
    /// `intersects`
    Intersects,
    /// `pmatch`
    PMatch,
    /// `exists`
    Exists,
}

/// How an operator's right-hand side is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorClass {
    /// `exists`: no right-hand side.
    Unary,
    /// `< <= > >=`: a number or a transformed field.
    Numeric,
    /// `= == != contains …`: a string value or a transformed field (or a modifier + list).
    String,
    /// `in intersects pmatch`: a list, a list name, or a transformed field.
    List,
}

impl Operator {
    /// All operators, in the order Falco tries them (longest first within a family).
    pub const ALL: [Operator; 20] = [
        Operator::Exists,
        Operator::Le,
        Operator::Lt,
        Operator::Ge,
        Operator::Gt,
        Operator::EqEq,
        Operator::Eq,
        Operator::Ne,
        Operator::Glob,
        Operator::IGlob,
        Operator::Contains,
        Operator::IContains,
        Operator::BContains,
        Operator::StartsWith,
        Operator::BStartsWith,
        Operator::EndsWith,
        Operator::Regex,
        Operator::Intersects,
        Operator::In,
        Operator::PMatch,
    ];

    /// The operator as written in conditions.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "=",
            Operator::EqEq => "==",
            Operator::Ne => "!=",
            Operator::Lt => "<",
            Operator::Le => "<=",
            Operator::Gt => ">",
            Operator::Ge => ">=",
            Operator::Contains => "contains",
            Operator::IContains => "icontains",
            Operator::BContains => "bcontains",
            Operator::StartsWith => "startswith",
            Operator::BStartsWith => "bstartswith",
            Operator::EndsWith => "endswith",
            Operator::Glob => "glob",
            Operator::IGlob => "iglob",
            Operator::Regex => "regex",
            Operator::In => "in",
            Operator::Intersects => "intersects",
            Operator::PMatch => "pmatch",
            Operator::Exists => "exists",
        }
    }

    /// Which family the operator belongs to.
    #[must_use]
    pub const fn class(self) -> OperatorClass {
        match self {
            Operator::Exists => OperatorClass::Unary,
            Operator::Lt | Operator::Le | Operator::Gt | Operator::Ge => OperatorClass::Numeric,
            Operator::In | Operator::Intersects | Operator::PMatch => OperatorClass::List,
            _ => OperatorClass::String,
        }
    }

    /// Word operators need a blank after them (`contains x`, not `containsx`).
    #[must_use]
    pub(crate) const fn needs_blank(self) -> bool {
        matches!(self.class(), OperatorClass::String)
            && !matches!(self, Operator::Eq | Operator::EqEq | Operator::Ne)
    }
}

/// The list modifier of a string operator: `proc.name == oneof (a, b)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Modifier {
    /// `oneof`
    OneOf,
    /// `anyof`
    AnyOf,
    /// `allof`
    AllOf,
}

impl Modifier {
    /// All modifiers.
    pub const ALL: [Modifier; 3] = [Modifier::OneOf, Modifier::AnyOf, Modifier::AllOf];

    /// The modifier as written.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Modifier::OneOf => "oneof",
            Modifier::AnyOf => "anyof",
            Modifier::AllOf => "allof",
        }
    }
}

/// The right-hand side of a binary check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rhs {
    /// A single string or number value.
    Value(Literal),
    /// `(a, "b c", 'd')`.
    List(List),
    /// A bare identifier after a list operator or modifier: a named list (`in shell_binaries`).
    ListRef(Ident),
    /// A field compared against another field: `val(field)` or a transformer.
    Operand(Operand),
}

impl Rhs {
    /// The span of the right-hand side.
    #[must_use]
    pub fn span(&self) -> Span {
        match self {
            Rhs::Value(l) => l.span,
            Rhs::List(l) => l.span,
            Rhs::ListRef(i) => i.span,
            Rhs::Operand(o) => o.span(),
        }
    }
}

/// A literal list `( item, item, … )`, possibly empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    /// The items. Unquoted items may name other lists (the compile stage expands them).
    pub items: Vec<Literal>,
    /// From `(` to `)`.
    pub span: Span,
}

impl List {
    fn clear_spans(&mut self) {
        self.span = Span::default();
        self.items.iter_mut().for_each(|i| i.span = Span::default());
    }
}

/// How a literal was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quote {
    /// Unquoted: a bare word (`/usr/bin`, `-1`, `0x1f`, `*.log`).
    Bare,
    /// `'…'`
    Single,
    /// `"…"`
    Double,
}

/// A string or number value, escapes already decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literal {
    /// The value's bytes after unescaping. `\xHH` escapes may make this non-UTF-8.
    pub value: Vec<u8>,
    /// How it was quoted.
    pub quote: Quote,
    /// The literal in the source, quotes included.
    pub span: Span,
}

impl Literal {
    /// The value as text, if it is valid UTF-8.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }

    /// The value as text, invalid UTF-8 replaced by U+FFFD.
    #[must_use]
    pub fn to_str_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }
}

/// A field, possibly wrapped in transformers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// `proc.name`, `proc.aname[2]`, `proc.env[HOME]`.
    Field(Field),
    /// `tolower(proc.name)`, `val(proc.pname)`, `join("-", (fd.name, proc.name))`.
    Transform(Transform),
}

impl Operand {
    /// The span of the operand.
    #[must_use]
    pub fn span(&self) -> Span {
        match self {
            Operand::Field(f) => f.span,
            Operand::Transform(t) => t.span,
        }
    }

    fn clear_spans(&mut self) {
        match self {
            Operand::Field(f) => {
                f.span = Span::default();
                f.name_span = Span::default();
                if let Some(a) = &mut f.arg {
                    a.span = Span::default();
                }
            }
            Operand::Transform(t) => {
                t.span = Span::default();
                t.name_span = Span::default();
                if let Some(a) = &mut t.arg {
                    a.span = Span::default();
                }
                t.args.iter_mut().for_each(TransformArg::clear_spans);
            }
        }
    }
}

/// A field reference: `name` or `name[arg]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Dotted name, e.g. `container.image.repository`.
    pub name: String,
    /// The name in the source.
    pub name_span: Span,
    /// The `[…]` argument (`proc.aname[2]` → `2`, `proc.env[HOME]` → `HOME`).
    pub arg: Option<Literal>,
    /// Name plus argument.
    pub span: Span,
}

/// A field transformer applied to arguments: `tolower(proc.name)`, or `val(field)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// Which transformer.
    pub kind: TransformKind,
    /// The transformer name in the source (without `(`).
    pub name_span: Span,
    /// One or more arguments.
    pub args: Vec<TransformArg>,
    /// Optional `[…]` argument after the closing parenthesis (`getopt(proc.args, "t:")[t]`).
    pub arg: Option<Literal>,
    /// From the name to `)` (or `]`).
    pub span: Span,
}

/// The field transformers Falco knows, plus `val`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransformKind {
    /// `tolower(…)`
    ToLower,
    /// `toupper(…)`
    ToUpper,
    /// `b64(…)`
    B64,
    /// `basename(…)`
    Basename,
    /// `len(…)`
    Len,
    /// `join(sep, (…))`
    Join,
    /// `concat(…)`
    Concat,
    /// `getopt(args, optstring)`
    Getopt,
    /// `val(field)`: only on the right-hand side, exactly one plain field.
    Val,
}

impl TransformKind {
    /// Transformers usable anywhere a field is (i.e. all but `val`).
    pub const TRANSFORMERS: [TransformKind; 8] = [
        TransformKind::ToLower,
        TransformKind::ToUpper,
        TransformKind::B64,
        TransformKind::Basename,
        TransformKind::Len,
        TransformKind::Join,
        TransformKind::Concat,
        TransformKind::Getopt,
    ];

    /// The transformer name as written (without `(`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            TransformKind::ToLower => "tolower",
            TransformKind::ToUpper => "toupper",
            TransformKind::B64 => "b64",
            TransformKind::Basename => "basename",
            TransformKind::Len => "len",
            TransformKind::Join => "join",
            TransformKind::Concat => "concat",
            TransformKind::Getopt => "getopt",
            TransformKind::Val => "val",
        }
    }
}

/// One argument of a transformer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformArg {
    /// A field or a nested transformer.
    Operand(Operand),
    /// A quoted string or a number.
    Literal(Literal),
    /// `( arg, arg, … )` (items are fields, transformers, quoted strings or numbers).
    List(TransformList),
}

impl TransformArg {
    /// The span of the argument.
    #[must_use]
    pub fn span(&self) -> Span {
        match self {
            TransformArg::Operand(o) => o.span(),
            TransformArg::Literal(l) => l.span,
            TransformArg::List(l) => l.span,
        }
    }

    fn clear_spans(&mut self) {
        match self {
            TransformArg::Operand(o) => o.clear_spans(),
            TransformArg::Literal(l) => l.span = Span::default(),
            TransformArg::List(l) => {
                l.span = Span::default();
                l.items.iter_mut().for_each(TransformArg::clear_spans);
            }
        }
    }
}

/// A parenthesised list inside transformer arguments: `join("-", (fd.name, proc.name))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformList {
    /// Items; never another [`TransformArg::List`].
    pub items: Vec<TransformArg>,
    /// From `(` to `)`.
    pub span: Span,
}

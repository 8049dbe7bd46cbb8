//! Canonical condition text for an AST.
//!
//! The output is normalised (single spaces, `, ` in lists, no redundant parentheses) but
//! keeps every distinction the parser makes (`=` vs `==`, quote style), so that
//! `parse(expr.to_string())` yields the same tree up to spans. Parentheses are added where
//! precedence (`not` > `and` > `or`) or an explicit grouping in the source needs them.

use std::fmt::{self, Display as _, Write as _};

use crate::ast::{Check, Expr, Field, Literal, Op, Operand, Quote, Rhs, Transform, TransformArg};
use crate::escape::write_quoted;

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(j) => write_junction(f, &j.children, "and", |c| {
                matches!(c, Expr::And(_) | Expr::Or(_))
            }),
            Expr::Or(j) => write_junction(f, &j.children, "or", |c| matches!(c, Expr::Or(_))),
            Expr::Not(n) => {
                f.write_str("not ")?;
                if matches!(*n.child, Expr::And(_) | Expr::Or(_)) {
                    write!(f, "({})", n.child)
                } else {
                    write!(f, "{}", n.child)
                }
            }
            Expr::Macro(i) => f.write_str(&i.name),
            Expr::Check(c) => c.fmt(f),
            Expr::Error(_) => f.write_str("<error>"),
        }
    }
}

fn write_junction(
    f: &mut fmt::Formatter<'_>,
    children: &[Expr],
    kw: &str,
    needs_parens: impl Fn(&Expr) -> bool,
) -> fmt::Result {
    for (i, c) in children.iter().enumerate() {
        if i > 0 {
            write!(f, " {kw} ")?;
        }
        if needs_parens(c) {
            write!(f, "({c})")?;
        } else {
            write!(f, "{c}")?;
        }
    }
    Ok(())
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.left, self.op)?;
        if let Some(r) = &self.right {
            // After `=`, `==` or `!=` with a blank, a bare value that starts with `oneof`,
            // `anyof` or `allof` and a blank would be read as a list modifier: such a value was
            // written right after the operator, and is printed so.
            let glued = matches!(r, Rhs::Value(l) if l.quote == Quote::Bare
            && !self.op.kind.needs_blank()
            && self.op.modifier.is_none()
            && crate::ast::Modifier::ALL.iter().any(|m| {
                l.value
                    .strip_prefix(m.as_str().as_bytes())
                    .and_then(|rest| rest.first())
                    .is_some_and(|&b| crate::lexer::is_blank(b))
            }));
            if glued {
                write!(f, "{r}")?;
            } else {
                write!(f, " {r}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        if let Some((m, _)) = self.modifier {
            write!(f, " {}", m.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Display for Rhs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rhs::Value(l) => l.fmt(f),
            Rhs::List(l) => {
                f.write_char('(')?;
                for (i, item) in l.items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    item.fmt(f)?;
                }
                f.write_char(')')
            }
            Rhs::ListRef(i) => f.write_str(&i.name),
            Rhs::Operand(o) => o.fmt(f),
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.quote {
            Quote::Bare => f.write_str(&self.to_str_lossy()),
            q => write_quoted(f, &self.value, q),
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Field(x) => x.fmt(f),
            Operand::Transform(t) => t.fmt(f),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        write_field_arg(f, self.arg.as_ref())
    }
}

fn write_field_arg(f: &mut fmt::Formatter<'_>, arg: Option<&Literal>) -> fmt::Result {
    match arg {
        Some(a) => write!(f, "[{a}]"),
        None => Ok(()),
    }
}

impl fmt::Display for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.kind.as_str())?;
        write_args(f, &self.args)?;
        f.write_char(')')?;
        write_field_arg(f, self.arg.as_ref())
    }
}

fn write_args(f: &mut fmt::Formatter<'_>, args: &[TransformArg]) -> fmt::Result {
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        a.fmt(f)?;
    }
    Ok(())
}

impl fmt::Display for TransformArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransformArg::Operand(o) => o.fmt(f),
            TransformArg::Literal(l) => l.fmt(f),
            TransformArg::List(l) => {
                f.write_char('(')?;
                write_args(f, &l.items)?;
                f.write_char(')')
            }
        }
    }
}

// Shared by the integration tests: a compact, span-annotated dump of an AST.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::fmt::Write as _;

use driftwatch_rule_lang::{parse, Expr, Literal, Operand, Quote, Rhs, Span, TransformArg};

pub fn sp(s: Span) -> String {
    format!("@{}..{}", s.start, s.end)
}

fn lit(l: &Literal) -> String {
    let q = match l.quote {
        Quote::Bare => "bare",
        Quote::Single => "sq",
        Quote::Double => "dq",
    };
    format!("{q} {:?} {}", l.to_str_lossy(), sp(l.span))
}

fn operand(out: &mut String, o: &Operand, ind: usize) {
    let pad = "  ".repeat(ind);
    match o {
        Operand::Field(f) => {
            let _ = write!(out, "{pad}field {} {}", f.name, sp(f.span));
            if let Some(a) = &f.arg {
                let _ = write!(out, " arg[{}]", lit(a));
            }
            out.push('\n');
        }
        Operand::Transform(t) => {
            let _ = write!(out, "{pad}transform {} {}", t.kind.as_str(), sp(t.span));
            if let Some(a) = &t.arg {
                let _ = write!(out, " arg[{}]", lit(a));
            }
            out.push('\n');
            for a in &t.args {
                targ(out, a, ind + 1);
            }
        }
    }
}

fn targ(out: &mut String, a: &TransformArg, ind: usize) {
    let pad = "  ".repeat(ind);
    match a {
        TransformArg::Operand(o) => operand(out, o, ind),
        TransformArg::Literal(l) => {
            let _ = writeln!(out, "{pad}{}", lit(l));
        }
        TransformArg::List(l) => {
            let _ = writeln!(out, "{pad}tlist {}", sp(l.span));
            for i in &l.items {
                targ(out, i, ind + 1);
            }
        }
    }
}

pub fn tree(out: &mut String, e: &Expr, ind: usize) {
    let pad = "  ".repeat(ind);
    match e {
        Expr::And(j) | Expr::Or(j) => {
            let kw = if matches!(e, Expr::And(_)) {
                "and"
            } else {
                "or"
            };
            let _ = writeln!(out, "{pad}{kw} {}", sp(j.span));
            for c in &j.children {
                tree(out, c, ind + 1);
            }
        }
        Expr::Not(n) => {
            let _ = writeln!(out, "{pad}not {} kw{}", sp(n.span), sp(n.keyword));
            tree(out, &n.child, ind + 1);
        }
        Expr::Macro(i) => {
            let _ = writeln!(out, "{pad}macro {} {}", i.name, sp(i.span));
        }
        Expr::Error(s) => {
            let _ = writeln!(out, "{pad}error {}", sp(*s));
        }
        Expr::Check(c) => {
            let _ = write!(
                out,
                "{pad}check {} op '{}' {}",
                sp(c.span),
                c.op.kind.as_str(),
                sp(c.op.span)
            );
            if let Some((m, s)) = c.op.modifier {
                let _ = write!(out, " modifier {} {}", m.as_str(), sp(s));
            }
            out.push('\n');
            operand(out, &c.left, ind + 1);
            let pad2 = "  ".repeat(ind + 1);
            match &c.right {
                None => {}
                Some(Rhs::Value(l)) => {
                    let _ = writeln!(out, "{pad2}value {}", lit(l));
                }
                Some(Rhs::List(l)) => {
                    let _ = writeln!(out, "{pad2}list {}", sp(l.span));
                    for i in &l.items {
                        let _ = writeln!(out, "{pad2}  {}", lit(i));
                    }
                }
                Some(Rhs::ListRef(i)) => {
                    let _ = writeln!(out, "{pad2}listref {} {}", i.name, sp(i.span));
                }
                Some(Rhs::Operand(o)) => operand(out, o, ind + 1),
            }
        }
    }
}

/// Canonical text, tree, and diagnostics of `src`, as one golden string.
pub fn render(src: &str) -> String {
    let parsed = parse(src);
    let mut out = String::new();
    match &parsed.expr {
        Some(e) => {
            let _ = writeln!(out, "{e}");
            tree(&mut out, e, 0);
        }
        None => out.push_str("<no expression>\n"),
    }
    for d in &parsed.diagnostics {
        let _ = writeln!(
            out,
            "error {} {}: {}",
            d.line_col(src),
            sp(d.span),
            d.message
        );
    }
    out
}

/// Only the diagnostics (for rejected inputs).
pub fn diags(src: &str) -> String {
    let parsed = parse(src);
    let mut out = String::new();
    if let Some(e) = &parsed.expr {
        let _ = writeln!(out, "{e}");
    }
    for d in &parsed.diagnostics {
        let _ = writeln!(
            out,
            "error {} {}: {}",
            d.line_col(src),
            sp(d.span),
            d.message
        );
    }
    out
}

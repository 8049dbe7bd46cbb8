//! Rule exceptions: their data, Falco's validation of fields and comps, and the condition text
//! Falco builds from them.
//!
//! Sources (falcosecurity/falco, `userspace/engine/`): validation and default comps follow
//! `rule_loader_collector.cpp` (`validate_exception_info`), the text follows
//! `rule_loader_compiler.cpp` (`build_rule_exception_infos`, `quote_item`, `paren_item`,
//! `is_operator_for_list`), the operator sets follow libsinsp's `filter/parser.cpp`
//! (`supported_operators`) and `rule_loader_cmpop.h` (string operators with a list modifier).

use crate::source_loc::{Located, SourceLoc};
use std::ops::Range;

/// `fields:` of an exception: one field (the scalar form) or a tuple of fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExceptionFields {
    Single(String),
    List(Vec<String>),
}

/// `comps:` of an exception, after Falco's defaults: `in` for a single field, `=` for each
/// field of a tuple. Surrounding blanks are trimmed, as Falco does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExceptionComps {
    Single(String),
    List(Vec<String>),
}

/// One element of a value tuple: a scalar, or a list (`[a, b]`) for a list operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleItem {
    Scalar(String),
    List(Vec<String>),
}

/// One entry of `values:`: a scalar (the single-field form) or a tuple (the list form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExceptionValue {
    Scalar(String),
    Tuple(Vec<TupleItem>),
}

/// A validated exception of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    pub name: String,
    pub fields: ExceptionFields,
    pub comps: ExceptionComps,
    pub values: Vec<Located<ExceptionValue>>,
    pub loc: SourceLoc,
}

/// An exception as read, before validation (appends may leave out fields and comps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawException {
    pub name: String,
    pub fields: Option<ExceptionFields>,
    pub comps: Option<ExceptionComps>,
    pub values: Vec<Located<ExceptionValue>>,
    pub loc: SourceLoc,
}

/// Every comparison operator of the condition language (libsinsp `supported_operators()`).
const OPERATORS: &[&str] = &[
    "exists",
    "<=",
    "<",
    ">=",
    ">",
    "==",
    "=",
    "!=",
    "glob",
    "iglob",
    "contains",
    "icontains",
    "bcontains",
    "startswith",
    "bstartswith",
    "endswith",
    "regex",
    "intersects",
    "in",
    "pmatch",
];

/// Operators whose right-hand side is a list (libsinsp `supported_operators(true)`).
const LIST_OPERATORS: &[&str] = &["intersects", "in", "pmatch"];

/// String operators that take a list modifier (`startswith oneof`…), per `rule_loader_cmpop.h`.
const MODIFIABLE_OPERATORS: &[&str] = &[
    "==",
    "=",
    "!=",
    "contains",
    "icontains",
    "bcontains",
    "startswith",
    "bstartswith",
    "endswith",
    "glob",
    "iglob",
    "regex",
];
const MODIFIERS: &[&str] = &["oneof", "anyof", "allof"];

/// `startswith oneof`, `contains allof`, `glob anyof`…: a string operator, blanks, a modifier.
pub fn is_str_operator_with_modifier(op: &str) -> bool {
    let mut words = op.split_ascii_whitespace();
    matches!(
        (words.next(), words.next(), words.next()),
        (Some(base), Some(modifier), None)
            if MODIFIABLE_OPERATORS.contains(&base) && MODIFIERS.contains(&modifier)
    )
}

/// Whether `op` takes a parenthesised list on its right (Falco's `is_operator_for_list`).
pub fn is_operator_for_list(op: &str) -> bool {
    LIST_OPERATORS.contains(&op) || is_str_operator_with_modifier(op)
}

fn is_operator(op: &str) -> bool {
    OPERATORS.contains(&op) || is_str_operator_with_modifier(op)
}

/// Falco's `normalize_comp`: strip ASCII blanks at both ends.
fn normalize_comp(s: &str) -> String {
    s.trim_matches([' ', '\t', '\r', '\n']).to_string()
}

/// Falco's `validate_exception_info` (plus the "must have fields" check done before it):
/// fills in default comps and checks them.
pub(crate) fn validate(raw: RawException) -> Result<Exception, (SourceLoc, String)> {
    let err = |m: String| (raw.loc.clone(), m);
    let fields = match &raw.fields {
        Some(ExceptionFields::Single(f)) if !f.is_empty() => ExceptionFields::Single(f.clone()),
        Some(ExceptionFields::List(fs)) if !fs.is_empty() => ExceptionFields::List(fs.clone()),
        _ => {
            return Err(err(
                "rule exception must have a fields property with a list of fields".into(),
            ))
        }
    };
    // An empty comps list counts as absent (Falco's `entry::is_valid`).
    let given_comps = match &raw.comps {
        Some(ExceptionComps::List(cs)) if cs.is_empty() => None,
        other => other.as_ref(),
    };
    let comps = match &fields {
        ExceptionFields::List(fs) => {
            let comps: Vec<String> = match given_comps {
                None => vec!["=".to_string(); fs.len()],
                Some(ExceptionComps::List(cs)) if !cs.is_empty() => {
                    cs.iter().map(|c| normalize_comp(c)).collect()
                }
                // A scalar comps with list fields: Falco reports the length mismatch.
                Some(_) => Vec::new(),
            };
            if comps.len() != fs.len() {
                return Err(err(
                    "exception fields and comps lists must have equal length".into(),
                ));
            }
            if let Some(bad) = comps.iter().find(|c| !is_operator(c)) {
                return Err(err(format!(
                    "'{bad}' is not a supported comparison operator"
                )));
            }
            ExceptionComps::List(comps)
        }
        ExceptionFields::Single(_) => {
            let comp = match given_comps {
                None => "in".to_string(),
                Some(ExceptionComps::Single(c)) => normalize_comp(c),
                Some(ExceptionComps::List(_)) => {
                    return Err(err("exception fields and comps must both be strings".into()))
                }
            };
            if !LIST_OPERATORS.contains(&comp.as_str()) && !is_str_operator_with_modifier(&comp) {
                return Err(err(format!(
                    "when fields is a single value, comps must be one of (in, pmatch, intersects) \
                     or a modifier operator (e.g. startswith oneof), not '{comp}'"
                )));
            }
            ExceptionComps::Single(comp)
        }
    };
    Ok(Exception {
        name: raw.name,
        fields,
        comps,
        values: raw.values,
        loc: raw.loc,
    })
}

/// Falco's `quote_item`: a value holding a space and not starting with a quote is wrapped in
/// double quotes. Nothing inside is escaped (Falco's own todo notes this breaks escaping).
fn quote_item(v: &str) -> String {
    if v.contains(' ') && !v.starts_with('"') && !v.starts_with('\'') {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

/// Falco's `paren_item`: wrap in parentheses unless it already starts with one (so a list
/// name becomes `(my_list)`, which list expansion later fills in).
fn paren_item(v: &str) -> String {
    if v.starts_with('(') {
        v.to_string()
    } else {
        format!("({v})")
    }
}

/// The effective condition of a rule and the byte range each exception's clause takes in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuiltCondition {
    pub text: String,
    pub clauses: Vec<(Range<usize>, SourceLoc)>,
}

/// Falco's `build_rule_exception_infos`: `(<condition>)` followed by ` and not <clause>` for
/// each exception that has values. With no exceptions at all the condition is kept as is.
///
/// Single field: `(<field> <comp> (<v1>, <v2>))`, each value quoted by `quote_item`.
/// Field tuple: `((<t1>) or (<t2>))` where each tuple `ti` is
/// ` <f1> <c1> <x1> and  <f2> <c2> <x2>` (note Falco's leading blank and the double blank
/// after `and`); `xk` is `(a, b)` for a list element, `paren_item(v)` when `ck` takes a list,
/// else `quote_item(v)`.
///
/// Values of the wrong shape (a tuple for a single field, a tuple whose length differs from the
/// fields') are reported and left out.
pub(crate) fn build_condition(
    condition: &str,
    exceptions: &[Exception],
) -> (BuiltCondition, Vec<(SourceLoc, String)>) {
    let mut errors = Vec::new();
    if exceptions.is_empty() {
        return (
            BuiltCondition {
                text: condition.to_string(),
                clauses: Vec::new(),
            },
            errors,
        );
    }
    let mut text = format!("({condition})");
    let mut clauses = Vec::new();
    for ex in exceptions {
        let mut icond = String::new();
        match (&ex.fields, &ex.comps) {
            (ExceptionFields::Single(field), ExceptionComps::Single(comp)) => {
                for v in &ex.values {
                    let ExceptionValue::Scalar(s) = &v.value else {
                        errors.push((
                            v.loc.clone(),
                            format!(
                                "exception '{}': expected values array to contain a list of strings",
                                ex.name
                            ),
                        ));
                        continue;
                    };
                    if icond.is_empty() {
                        icond = format!("({field} {comp} (");
                    } else {
                        icond.push_str(", ");
                    }
                    icond.push_str(&quote_item(s));
                }
                if !icond.is_empty() {
                    icond.push_str("))");
                }
            }
            (ExceptionFields::List(fields), ExceptionComps::List(comps)) => {
                icond.push('(');
                for v in &ex.values {
                    let items: &[TupleItem] = match &v.value {
                        ExceptionValue::Tuple(items) if items.len() == fields.len() => items,
                        _ => {
                            errors.push((
                                v.loc.clone(),
                                format!(
                                    "exception '{}': fields and values lists must have equal length",
                                    ex.name
                                ),
                            ));
                            continue;
                        }
                    };
                    if icond != "(" {
                        icond.push_str(" or ");
                    }
                    icond.push('(');
                    for (k, ((field, comp), item)) in
                        fields.iter().zip(comps).zip(items).enumerate()
                    {
                        if k > 0 {
                            icond.push_str(" and ");
                        }
                        let rhs = match item {
                            TupleItem::List(vs) => {
                                let quoted: Vec<String> =
                                    vs.iter().map(|v| quote_item(v)).collect();
                                format!("({})", quoted.join(", "))
                            }
                            TupleItem::Scalar(s) if is_operator_for_list(comp) => paren_item(s),
                            TupleItem::Scalar(s) => quote_item(s),
                        };
                        icond.push_str(&format!(" {field} {comp} {rhs}"));
                    }
                    icond.push(')');
                }
                icond.push(')');
                if icond == "()" {
                    icond.clear();
                }
            }
            // `validate` never pairs a single field with list comps or the reverse.
            _ => {}
        }
        if !icond.is_empty() {
            text.push_str(" and not ");
            let start = text.len();
            text.push_str(&icond);
            clauses.push((start..text.len(), ex.loc.clone()));
        }
    }
    (BuiltCondition { text, clauses }, errors)
}

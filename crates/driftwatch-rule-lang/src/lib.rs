//! The Falco condition language: scanner, parser, AST with spans, diagnostics.
//!
//! [`parse`] turns a rule or macro `condition:` into an [`Expr`] plus every
//! [`Diagnostic`] found; it never stops at the first error and never panics. The tree keeps
//! byte [`Span`]s for every node so later stages (macro/list expansion, field and operator
//! checks) can report `file:line:col`. `Display` on [`Expr`] prints canonical condition
//! text that parses back to the same tree.
//!
//! # Grammar
//!
//! This follows libsinsp's filter parser (falcosecurity/libs,
//! `userspace/libsinsp/filter/parser.{h,cpp}`), restated here in our own words.
//!
//! ```text
//! Condition    ::= Or
//! Or           ::= And ( 'or' (Blank And | '(' Or ')') )*
//! And          ::= NotExpr ( 'and' (Blank NotExpr | '(' Or ')') )*
//! NotExpr      ::= ('not' Space+)* ( 'not(' Or ')' | Check )
//! Check        ::= '(' Or ')'
//!                | Operand Condition
//!                | Identifier                         -- a macro reference
//! Operand      ::= Field | Transformer
//! Field        ::= FieldName ( '[' FieldArg ']' )?    -- no blank before '['
//! FieldArg     ::= QuotedStr | FieldArgBare
//! Transformer  ::= TransformerName '(' TArg (',' TArg)* ')' ( '[' FieldArg ']' )?
//! TArg         ::= NumValue | QuotedStr | '(' (TItem (',' TItem)*)? ')' | Transformer | Field
//! TItem        ::= Field | Transformer | QuotedStr | NumValue
//! ValOrTrans   ::= 'val(' Field ')' ( '[' FieldArg ']' )? | Transformer
//! Condition    ::= 'exists'
//!                | NumOp   ( ValOrTrans | NumValue )
//!                | StrOp   ( ValOrTrans | StrValue )
//!                | StrOp Blank Modifier Blank ListValue
//!                | ListOp  ( ListValue | ValOrTrans )
//! ListValue    ::= '(' ( StrValue (',' StrValue)* )? ')' | Identifier   -- a named list
//! StrValue     ::= QuotedStr | BareStr
//! NumValue     ::= HexNumber | Number
//!
//! NumOp        ::= '<=' | '<' | '>=' | '>'
//! StrOp        ::= '==' | '=' | '!='
//!                | ( 'glob' | 'iglob' | 'contains' | 'icontains' | 'bcontains'
//!                  | 'startswith' | 'bstartswith' | 'endswith' | 'regex' ) Blank
//! ListOp       ::= 'intersects' | 'in' | 'pmatch'
//! Modifier     ::= 'oneof' | 'anyof' | 'allof'
//! TransformerName ::= 'tolower' | 'toupper' | 'b64' | 'basename' | 'len'
//!                   | 'join' | 'concat' | 'getopt'        -- '(' must follow with no blank
//!
//! Identifier   ::= [a-zA-Z][a-zA-Z0-9_]*
//! FieldName    ::= Identifier ( '.' Identifier )+
//! FieldArgBare ::= [^][\"'[:space:]]+
//! HexNumber    ::= 0[xX][0-9a-fA-F]+
//! Number       ::= [+-]?[0-9]+\.?[0-9]*([eE][+-][0-9]+)?
//! QuotedStr    ::= '"' … '"' | "'" … "'"   -- ends at the first delimiter not preceded by '\'
//! BareStr      ::= [^()"'[:space:]=,]+
//! Blank        ::= [ \t\b\r\n]+           -- Space is POSIX [:space:]
//! ```
//!
//! Notes that matter when reading conditions:
//! - Precedence is `not` > `and` > `or`; `and`/`or` chains are n-ary.
//! - Keywords may touch parentheses: `a and(b)`, `(a)or(b)`, `not(a)` are all valid; `not`
//!   otherwise needs whitespace after it (`notb` is a macro name).
//! - Blanks and newlines are interchangeable everywhere a blank is allowed.
//! - `=`, `==`, `!=` and the symbolic operators need no blank around them
//!   (`proc.name=bash`); word operators need one after them. As in Falco, `exists`, `in`,
//!   `intersects` and `pmatch` are matched as prefixes (`proc.name existsand m` is
//!   `proc.name exists and m`).
//! - A modifier word is a modifier only when a blank precedes and follows it and a list or
//!   list name comes next (and not `and`/`or`/`not`); otherwise it is a plain value, so
//!   `proc.name == oneof` compares with the string `oneof`.
//! - Escapes in quoted strings are described in the `escape` module: `\b \f \n \r \t \\ \/`,
//!   `\"` only in `"…"`, `\'` only in `'…'`, `\xHH`, and the legacy `\ ` (a backslash).
//!
//! Deliberate differences from libsinsp (both only reject inputs Falco would also reject
//! later, with a better message):
//! - the keywords `and`, `or`, `not` are never taken as macro names (Falco's parser would
//!   accept `and and b` as a reference to a macro called `and`);
//! - a number immediately followed by other characters (`evt.num > 1abc`) is reported as
//!   an invalid number.
//!
//! Nesting is bounded by [`MAX_DEPTH`].

#![forbid(unsafe_code)]

mod ast;
mod diagnostic;
mod display;
mod escape;
mod lexer;
mod parser;
mod span;

pub use ast::{
    Check, Expr, Field, Ident, Junction, List, Literal, Modifier, Not, Op, Operand, Operator,
    OperatorClass, Quote, Rhs, Transform, TransformArg, TransformKind, TransformList,
};
pub use diagnostic::Diagnostic;
pub use parser::{parse, parse_operand, Parsed, MAX_DEPTH};
pub use span::{line_col, LineCol, Span};

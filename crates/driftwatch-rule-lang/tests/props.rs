//! Property tests: the parser never panics, spans stay inside the input, and canonical text
//! round-trips for generated valid trees.

use driftwatch_rule_lang::{
    parse, Check, Expr, Field, Ident, Junction, List, Literal, Modifier, Not, Op, Operand,
    Operator, OperatorClass, Quote, Rhs, Span, Transform, TransformArg, TransformKind,
    TransformList,
};
use proptest::prelude::*;

fn assert_sane(src: &str) {
    let p = parse(src);
    for d in &p.diagnostics {
        assert!(
            d.span.start <= d.span.end && d.span.end <= src.len(),
            "{d:?}"
        );
        assert!(src.is_char_boundary(d.span.start) && src.is_char_boundary(d.span.end));
        let _ = d.line_col(src);
    }
    if let Some(e) = &p.expr {
        e.walk(&mut |x| {
            let s = x.span();
            assert!(s.start <= s.end && s.end <= src.len(), "{s:?} in {src:?}");
        });
        let _ = e.to_string();
        if p.diagnostics.is_empty() {
            assert!(!e.has_errors());
        }
    }
    assert_eq!(
        p.expr.is_none(),
        src.bytes().all(|b| b" \t\r\n\x08".contains(&b))
    );
}

const TOKENS: &[&str] = &[
    "and",
    "or",
    "not",
    "(",
    ")",
    "proc.name",
    "fd.name",
    "evt.arg[0]",
    "=",
    "==",
    "!=",
    "<",
    ">=",
    "in",
    "intersects",
    "pmatch",
    "exists",
    "contains",
    "startswith",
    "glob",
    "regex",
    "oneof",
    "anyof",
    "(a, b)",
    "()",
    "'x'",
    "\"y\"",
    "\"\\x4",
    "'",
    "\"",
    "tolower(",
    "val(",
    "b64(",
    "join(",
    ",",
    "[",
    "]",
    "\\",
    "0x1f",
    "-1",
    "1e+5",
    "macro",
    "list_x",
    "not(",
    "é",
    "\u{0}",
    " ",
    "\n",
    "\t",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(TOKENS), prop::bool::ANY), 0..40).prop_map(|v| {
        let mut s = String::new();
        for (t, space) in v {
            s.push_str(t);
            if space {
                s.push(' ');
            }
        }
        s
    })
}

// ---- generated valid trees ----------------------------------------------------------

const KEYWORDS: &[&str] = &["and", "or", "not"];

fn ident() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,6}".prop_filter("keyword", |s| !KEYWORDS.contains(&s.as_str()))
}

fn lit(value: Vec<u8>, quote: Quote) -> Literal {
    Literal {
        value,
        quote,
        span: Span::default(),
    }
}

fn quoted() -> impl Strategy<Value = Literal> {
    (prop::collection::vec(any::<u8>(), 0..8), prop::bool::ANY)
        .prop_map(|(v, single)| lit(v, if single { Quote::Single } else { Quote::Double }))
}

fn bare_value() -> impl Strategy<Value = Literal> {
    "[a-zA-Z0-9/_.*:!-]{1,8}".prop_map(|s| lit(s.into_bytes(), Quote::Bare))
}

fn number() -> impl Strategy<Value = Literal> {
    prop_oneof![
        "[+-]?[0-9]{1,5}(\\.[0-9]{0,3})?(e[+-][0-9]{1,2})?",
        "0[xX][0-9a-fA-F]{1,6}",
    ]
    .prop_map(|s| lit(s.into_bytes(), Quote::Bare))
}

fn field() -> impl Strategy<Value = Field> {
    (
        "[a-z][a-z0-9_]{0,4}(\\.[a-z][a-z0-9_]{0,4}){1,2}",
        prop::option::of(prop_oneof![
            "[a-zA-Z0-9_./:-]{1,6}".prop_map(|s| lit(s.into_bytes(), Quote::Bare)),
            quoted(),
        ]),
    )
        .prop_map(|(name, arg)| Field {
            name,
            name_span: Span::default(),
            arg,
            span: Span::default(),
        })
}

fn transform_kind() -> impl Strategy<Value = TransformKind> {
    prop::sample::select(TransformKind::TRANSFORMERS.to_vec())
}

fn transform(kind: TransformKind, args: Vec<TransformArg>) -> Transform {
    Transform {
        kind,
        name_span: Span::default(),
        args,
        arg: None,
        span: Span::default(),
    }
}

fn operand() -> impl Strategy<Value = Operand> {
    let leaf = field().prop_map(Operand::Field);
    leaf.prop_recursive(3, 12, 3, |inner| {
        let simple_arg = prop_oneof![
            inner.clone().prop_map(TransformArg::Operand),
            quoted().prop_map(TransformArg::Literal),
            number().prop_map(TransformArg::Literal),
        ];
        let arg = prop_oneof![
            3 => simple_arg.clone(),
            1 => prop::collection::vec(simple_arg, 0..3).prop_map(|items| {
                TransformArg::List(TransformList { items, span: Span::default() })
            }),
        ];
        (transform_kind(), prop::collection::vec(arg, 1..3))
            .prop_map(|(k, args)| Operand::Transform(transform(k, args)))
    })
}

fn transformed() -> impl Strategy<Value = Operand> {
    prop_oneof![
        field().prop_map(|f| Operand::Transform(transform(
            TransformKind::Val,
            vec![TransformArg::Operand(Operand::Field(f))]
        ))),
        (transform_kind(), operand())
            .prop_map(|(k, o)| Operand::Transform(transform(k, vec![TransformArg::Operand(o)]))),
    ]
}

fn list() -> impl Strategy<Value = Rhs> {
    prop::collection::vec(prop_oneof![bare_value(), quoted()], 0..4).prop_map(|items| {
        Rhs::List(List {
            items,
            span: Span::default(),
        })
    })
}

fn list_ref() -> impl Strategy<Value = Rhs> {
    ident().prop_map(|name| {
        Rhs::ListRef(Ident {
            name,
            span: Span::default(),
        })
    })
}

fn check() -> impl Strategy<Value = Expr> {
    let ops = Operator::ALL.to_vec();
    (
        operand(),
        prop::sample::select(ops),
        prop::option::of(prop::sample::select(Modifier::ALL.to_vec())),
    )
        .prop_flat_map(|(left, kind, modifier)| {
            let modifier = modifier.filter(|_| kind.class() == OperatorClass::String);
            let rhs: BoxedStrategy<Option<Rhs>> = match (kind.class(), modifier) {
                (OperatorClass::Unary, _) => Just(None).boxed(),
                (OperatorClass::Numeric, _) => prop_oneof![
                    number().prop_map(Rhs::Value),
                    transformed().prop_map(Rhs::Operand),
                ]
                .prop_map(Some)
                .boxed(),
                (OperatorClass::String, Some(_)) => {
                    prop_oneof![list(), list_ref()].prop_map(Some).boxed()
                }
                (OperatorClass::String, None) => prop_oneof![
                    bare_value().prop_map(Rhs::Value),
                    quoted().prop_map(Rhs::Value),
                    transformed().prop_map(Rhs::Operand),
                ]
                .prop_map(Some)
                .boxed(),
                (OperatorClass::List, _) => {
                    prop_oneof![list(), list_ref(), transformed().prop_map(Rhs::Operand),]
                        .prop_map(Some)
                        .boxed()
                }
            };
            rhs.prop_map(move |right| {
                Expr::Check(Box::new(Check {
                    left: left.clone(),
                    op: Op {
                        kind,
                        modifier: modifier.map(|m| (m, Span::default())),
                        span: Span::default(),
                    },
                    right,
                    span: Span::default(),
                }))
            })
        })
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        ident().prop_map(|name| Expr::Macro(Ident {
            name,
            span: Span::default()
        })),
        check(),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(|children| Expr::And(Junction {
                children,
                span: Span::default()
            })),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|children| Expr::Or(Junction {
                children,
                span: Span::default()
            })),
            inner.prop_map(|c| Expr::Not(Not {
                child: Box::new(c),
                keyword: Span::default(),
                span: Span::default(),
            })),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_strings(s in any::<String>()) {
        assert_sane(&s);
    }

    #[test]
    fn never_panics_on_printable_strings(s in "[ -~\\n\\t]{0,80}") {
        assert_sane(&s);
    }

    #[test]
    fn never_panics_on_token_soup(s in token_soup()) {
        assert_sane(&s);
    }

    #[test]
    fn display_round_trips(e in expr()) {
        let text = e.to_string();
        let p = parse(&text);
        prop_assert!(p.diagnostics.is_empty(), "{text:?}: {:?}", p.diagnostics);
        prop_assert_eq!(p.expr.map(|x| x.without_spans()), Some(e), "{}", text);
    }
}

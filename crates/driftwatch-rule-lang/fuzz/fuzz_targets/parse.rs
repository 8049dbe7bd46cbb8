//! Fuzz `parse`: it must never panic, spans must stay inside the input, and a condition
//! that parses cleanly must print to text that parses back to the same tree.
#![no_main]

use driftwatch_rule_lang::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse(src);
    for d in &parsed.diagnostics {
        assert!(d.span.start <= d.span.end && d.span.end <= src.len());
        assert!(src.is_char_boundary(d.span.start) && src.is_char_boundary(d.span.end));
        let _ = d.render(src);
    }
    if let Some(expr) = &parsed.expr {
        expr.walk(&mut |e| assert!(e.span().end <= src.len()));
        let printed = expr.to_string();
        if parsed.diagnostics.is_empty() {
            let again = parse(&printed);
            assert!(
                again.diagnostics.is_empty(),
                "{printed:?}: {:?}",
                again.diagnostics
            );
            assert_eq!(
                again.expr.map(|e| e.without_spans()),
                Some(expr.without_spans()),
                "{printed:?}"
            );
        }
    }
});

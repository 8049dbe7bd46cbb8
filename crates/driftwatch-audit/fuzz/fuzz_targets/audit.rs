//! Fuzz `audit`: any bytes must give a report or a `file:line:col` error, never a panic;
//! every finding's position is inside the text, and the renderers take every report.
#![no_main]

use driftwatch_audit::{audit, render, AuditError, Options, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src = match Source::from_bytes("f.yaml", data.to_vec()) {
        Ok(s) => s,
        Err(AuditError::Syntax { line, column, .. }) => {
            assert!(line >= 1 && column >= 1);
            return;
        }
    };
    let lines = u32::try_from(src.text.lines().count().max(1)).unwrap_or(u32::MAX);
    match audit(std::slice::from_ref(&src), &Options::default()) {
        Ok(report) => {
            for f in &report.findings {
                assert!(f.line >= 1 && f.line <= lines.saturating_add(1), "{f:?}");
                assert!(f.column >= 1);
            }
            let _ = render::table(&report);
            let _ = render::json(&report);
            let _ = render::sarif(&report);
        }
        Err(AuditError::Syntax { file, line, column, .. }) => {
            assert_eq!(file, "f.yaml");
            assert!(line >= 1 && column >= 1);
        }
    }
});

//! The report as a table, as JSON and as SARIF 2.1.0.

use crate::{check_summary, Finding, Report, Severity};
use driftwatch_event::text::escape_str;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// The report as one JSON document.
pub fn json(report: &Report) -> Value {
    json!({
        "findings": report.findings,
        "ignored": report.ignored,
        "namespaces": report.namespaces,
        "workloads": report.workloads,
        "summary": {
            "files": report.files,
            "objects": report.objects,
            "other_kinds": report.other_kinds,
            "findings": report.findings.len(),
            "ignored": report.ignored.len(),
            "workloads": report.workloads.len(),
            "workloads_failing": report.workloads.iter().filter(|w| !w.passes).count(),
        },
    })
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn sarif_fix(f: &Finding) -> Option<Value> {
    if !f.fix.complete_edits || f.fix.edits.is_empty() {
        return None;
    }
    let replacements: Vec<Value> = f
        .fix
        .edits
        .iter()
        .map(|e| {
            json!({
                "deletedRegion": {
                    "startLine": e.start.line,
                    "startColumn": e.start.column,
                    "endLine": e.end.line,
                    "endColumn": e.end.column,
                },
                "insertedContent": { "text": e.text },
            })
        })
        .collect();
    Some(json!({
        "description": { "text": f.fix.description },
        "artifactChanges": [{
            "artifactLocation": { "uri": f.file },
            "replacements": replacements,
        }],
    }))
}

/// The report as a SARIF 2.1.0 log: one run, a rule per check id that has a finding, a result
/// per finding with its location and, where the change can be written as text, its fix (the
/// JSON patch is in the result's `properties` always).
pub fn sarif(report: &Report) -> Value {
    let ids: BTreeSet<&str> = report.findings.iter().map(|f| f.check.as_str()).collect();
    let rules: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({
                "id": id,
                "shortDescription": { "text": check_summary(id).unwrap_or(id) },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut r = json!({
                "ruleId": f.check,
                "level": sarif_level(f.severity),
                "message": { "text": format!("{}: {} (fix: {})", f.object, f.reason, f.fix.description) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": f.file },
                        "region": { "startLine": f.line, "startColumn": f.column },
                    }
                }],
                "properties": { "object": f.object, "jsonPatch": f.fix.patch },
            });
            if let (Some(fix), Some(obj)) = (sarif_fix(f), r.as_object_mut()) {
                obj.insert("fixes".into(), json!([fix]));
            }
            r
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "driftwatch",
                "informationUri": "https://example.invalid/driftwatch",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

/// The report as text: a line per finding with its fix, then the namespaces' levels and
/// whether each workload passes its level.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let _ = writeln!(
            out,
            "{}:{}:{}: {} [{}] {}: {}",
            escape_str(&f.file),
            f.line,
            f.column,
            sarif_level(f.severity),
            f.check,
            escape_str(&f.object.to_string()),
            escape_str(&f.reason),
        );
        let _ = writeln!(out, "    fix: {}", escape_str(&f.fix.description));
        if let Ok(p) = serde_json::to_string(&f.fix.patch) {
            let _ = writeln!(out, "    patch: {}", escape_str(&p));
        }
    }
    if !report.namespaces.is_empty() {
        let _ = writeln!(out, "\nnamespaces:");
        for n in &report.namespaces {
            let _ = writeln!(
                out,
                "  {:<30} enforce {:<12} version {}",
                escape_str(&n.name),
                n.enforce.map_or("(none)", |l| l.as_str()),
                escape_str(n.enforce_version.as_deref().unwrap_or("(none: latest)")),
            );
        }
    }
    if !report.workloads.is_empty() {
        let _ = writeln!(out, "\nworkloads:");
        for w in &report.workloads {
            let source = match w.level_source {
                crate::LevelSource::Namespace => "its namespace",
                crate::LevelSource::NamespaceNotInInput => "--level: namespace not in the input",
                crate::LevelSource::NamespaceWithoutEnforce => {
                    "--level: namespace sets no enforce label"
                }
            };
            let verdict = if w.passes {
                "passes".to_string()
            } else {
                format!("fails {}", w.failed_checks.join(", "))
            };
            let _ = writeln!(
                out,
                "  {:<40} {} {} ({source}): {verdict}",
                escape_str(&w.object.to_string()),
                w.level,
                w.version,
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} finding(s), {} ignored; {} object(s) in {} file(s), {} of other kinds not audited",
        report.findings.len(),
        report.ignored.len(),
        report.objects,
        report.files,
        report.other_kinds,
    );
    out
}

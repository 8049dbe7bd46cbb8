//! The report as a table for humans, or one JSON document. Every name from the node or the
//! input is escaped in the table (`driftwatch_event::text::escape_str`).

use crate::{Report, Severity, FINDINGS};
use driftwatch_event::text::escape_str;
use serde_json::{json, Value};
use std::fmt::Write as _;

fn short(d: &str) -> &str {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    hex.get(..12).unwrap_or(hex)
}

/// `{"findings": [...], "containers": [...], "approved": N|null, "summary": {...}}`.
pub fn json(report: &Report) -> Value {
    let mut counts = serde_json::Map::new();
    for (id, _) in FINDINGS {
        let n = report.findings.iter().filter(|f| f.id == *id).count();
        counts.insert((*id).to_string(), json!(n));
    }
    json!({
        "findings": report.findings,
        "containers": report.containers,
        "approved": report.approved,
        "summary": {
            "containers": report.containers.len(),
            "running": report.containers.iter().filter(|c| c.image.running).count(),
            "findings": counts,
        },
    })
}

/// The inventory (one line a container), then the findings with their evidence.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<24} {:<28} {:<44} {:<12} {:<12} MATCH",
        "NAMESPACE", "CONTAINER", "POD", "REFERENCE", "MANIFEST", "INDEX"
    );
    for v in &report.containers {
        let c = &v.image;
        let r = c.resolved.as_ref();
        let _ = writeln!(
            out,
            "{:<10} {:<24} {:<28} {:<44} {:<12} {:<12} {}",
            escape_str(&c.namespace),
            escape_str(&c.name),
            escape_str(
                &c.pod_name
                    .as_ref()
                    .map(|p| format!("{}/{p}", c.pod_namespace.as_deref().unwrap_or("")))
                    .unwrap_or_else(|| "-".into())
            ),
            escape_str(&c.reference),
            r.map_or("-", |r| short(&r.manifest_digest)),
            r.and_then(|r| r.index_digest.as_deref()).map_or("-", short),
            if !c.running {
                "(not running)".to_string()
            } else if let Some(e) = &c.error {
                format!("(unresolved: {})", escape_str(e))
            } else {
                v.class.map_or("-", |k| k.as_str()).to_string()
            },
        );
    }
    if !report.findings.is_empty() {
        let _ = writeln!(out);
    }
    for f in &report.findings {
        let sev = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(
            out,
            "{sev} [{}] {}/{}: {}",
            f.id,
            escape_str(&f.container.namespace),
            escape_str(&f.container.name),
            escape_str(&f.message)
        );
        for a in &f.evidence.approved {
            let line = match a {
                crate::ApprovedFrom::Manifest {
                    file,
                    line,
                    column,
                    object,
                    container,
                    image,
                } => format!(
                    "{file}:{line}:{column}: {object} container {container:?} image {image}"
                ),
                crate::ApprovedFrom::Lock { file, reference } => format!("{file}: {reference}"),
            };
            let _ = writeln!(out, "    approved: {}", escape_str(&line));
        }
        let e = &f.evidence;
        let mut chain = Vec::new();
        if let Some(p) = &e.pod {
            chain.push(format!("pod {p}"));
        }
        chain.push(format!("reference {}", e.reference));
        if let Some(r) = &e.running {
            if let Some(i) = &r.index_digest {
                chain.push(format!("index {i}"));
            }
            let platform = r.platform.as_ref().map(|p| format!(" ({p})"));
            chain.push(format!(
                "manifest {}{}",
                r.manifest_digest,
                platform.unwrap_or_default()
            ));
        }
        let _ = writeln!(out, "    running: {}", escape_str(&chain.join(" → ")));
        if !e.workload_digests.is_empty() {
            let _ = writeln!(
                out,
                "    workload digests: {}",
                e.workload_digests.join(", ")
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} finding(s); {} container(s), {} running; {}",
        report.findings.len(),
        report.containers.len(),
        report.containers.iter().filter(|c| c.image.running).count(),
        match report.approved {
            Some(n) => format!("{n} approved entr{}", if n == 1 { "y" } else { "ies" }),
            None => "no approved set".into(),
        }
    );
    out
}

//! Report renderings: [`JsonReport`] (one JSON document, written as it is produced) and
//! [`TableReport`] (a human table sorted by category; rows are spilled to one temporary file
//! per category, so memory stays bounded however many entries there are).
//!
//! The JSON document: `{"version":1, "container":{…}, "files":[FileEntry…],
//! "packages":{managers, changes, unmanaged, notes}, "runtime":RuntimeSummary|null,
//! "config":[ConfigFinding…], "summary":{…}}`.

use crate::engine::{ContainerMeta, ReportSink};
use crate::error::DiffError;
use crate::model::{
    Category, ConfigFinding, FileEntry, PackageChangeKind, PackageReport, Side, Summary,
};
use crate::pathfmt::escape;
use crate::runtime_config::RuntimeSummary;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};

fn out(e: std::io::Error) -> DiffError {
    DiffError::output(e)
}

fn json_err(e: serde_json::Error) -> DiffError {
    DiffError::output(std::io::Error::other(e))
}

/// The `--json` rendering.
#[derive(Debug)]
pub struct JsonReport<W: Write> {
    w: W,
    first_file: bool,
}

impl<W: Write> JsonReport<W> {
    pub fn new(w: W) -> Self {
        JsonReport {
            w,
            first_file: true,
        }
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

impl<W: Write> ReportSink for JsonReport<W> {
    fn begin(&mut self, meta: &ContainerMeta) -> Result<(), DiffError> {
        self.w
            .write_all(b"{\"version\":1,\"container\":")
            .map_err(out)?;
        serde_json::to_writer(&mut self.w, meta).map_err(json_err)?;
        self.w.write_all(b",\"files\":[").map_err(out)
    }

    fn file(&mut self, entry: &FileEntry) -> Result<(), DiffError> {
        if !self.first_file {
            self.w.write_all(b",").map_err(out)?;
        }
        self.first_file = false;
        self.w.write_all(b"\n").map_err(out)?;
        serde_json::to_writer(&mut self.w, entry).map_err(json_err)
    }

    fn packages(&mut self, report: &PackageReport) -> Result<(), DiffError> {
        self.w.write_all(b"\n],\"packages\":").map_err(out)?;
        serde_json::to_writer(&mut self.w, report).map_err(json_err)
    }

    fn runtime(&mut self, runtime: Option<&RuntimeSummary>) -> Result<(), DiffError> {
        self.w.write_all(b",\n\"runtime\":").map_err(out)?;
        serde_json::to_writer(&mut self.w, &runtime).map_err(json_err)
    }

    fn config(&mut self, findings: &[ConfigFinding]) -> Result<(), DiffError> {
        self.w.write_all(b",\n\"config\":").map_err(out)?;
        serde_json::to_writer(&mut self.w, findings).map_err(json_err)
    }

    fn finish(&mut self, summary: &Summary) -> Result<(), DiffError> {
        self.w.write_all(b",\n\"summary\":").map_err(out)?;
        serde_json::to_writer(&mut self.w, summary).map_err(json_err)?;
        self.w.write_all(b"}\n").map_err(out)?;
        self.w.flush().map_err(out)
    }
}

/// The human rendering.
#[derive(Debug)]
pub struct TableReport<W: Write> {
    w: W,
    spill: Vec<Option<BufWriter<File>>>,
    counts: [u64; 7],
    meta: ContainerMeta,
    packages: Option<PackageReport>,
    /// Also list unchanged copy-ups (hidden by default).
    pub show_copied_up: bool,
}

impl<W: Write> TableReport<W> {
    pub fn new(w: W) -> Self {
        TableReport {
            w,
            spill: (0..7).map(|_| None).collect(),
            counts: [0; 7],
            meta: ContainerMeta::default(),
            packages: None,
            show_copied_up: false,
        }
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

fn fmt_side_change(img: Option<&Side>, ctr: Option<&Side>, entry: &FileEntry) -> String {
    let mut parts = Vec::new();
    let o = |v: Option<u32>| v.map_or("-".to_owned(), |m| format!("{m:04o}"));
    match (img, ctr) {
        (Some(i), Some(c)) => {
            if i.size != c.size && c.file_type == Some(crate::model::FileType::File) {
                parts.push(format!(
                    "size {}→{}",
                    i.size.unwrap_or(0),
                    c.size.unwrap_or(0)
                ));
            }
            if entry.changed.iter().any(|x| x == "mode") {
                parts.push(format!("mode {}→{}", o(i.mode), o(c.mode)));
            }
            if entry.changed.iter().any(|x| x == "owner") {
                parts.push(format!(
                    "owner {}:{}→{}:{}",
                    i.uid.unwrap_or(0),
                    i.gid.unwrap_or(0),
                    c.uid.unwrap_or(0),
                    c.gid.unwrap_or(0)
                ));
            }
            if entry.changed.iter().any(|x| x == "type") {
                parts.push(format!(
                    "type {}→{}",
                    i.file_type.map_or("?", |t| t.as_str()),
                    c.file_type.map_or("?", |t| t.as_str())
                ));
            }
            if entry.changed.iter().any(|x| x == "target") {
                parts.push(format!(
                    "target {}→{}",
                    escape(&i.link_target_bytes().unwrap_or_default()),
                    escape(&c.link_target_bytes().unwrap_or_default())
                ));
            }
            if entry.changed.iter().any(|x| x == "rdev") {
                parts.push(format!(
                    "rdev {}→{}",
                    i.rdev.as_deref().unwrap_or("-"),
                    c.rdev.as_deref().unwrap_or("-")
                ));
            }
            if entry.content_changed == Some(false) {
                parts.push("content unchanged".into());
            }
        }
        (None, Some(c)) => {
            if let Some(s) = c
                .size
                .filter(|_| c.file_type == Some(crate::model::FileType::File))
            {
                parts.push(format!("size {s}"));
            }
            parts.push(format!("mode {}", o(c.mode)));
            if let Some(t) = c.link_target_bytes() {
                parts.push(format!("→ {}", escape(&t)));
            }
        }
        (Some(i), None) => parts.push(format!("was {}", i.file_type.map_or("?", |t| t.as_str()))),
        (None, None) => {}
    }
    if let Some(h) = ctr.and_then(|c| c.sha256.as_deref()) {
        parts.push(format!("sha256 {}", &h[..h.len().min(12)]));
    }
    if let Some(p) = &entry.package {
        parts.push(format!("pkg {}", escape(p.as_bytes())));
    }
    for n in &entry.notes {
        parts.push(format!("[{}]", escape(n.as_bytes())));
    }
    if !entry.drift {
        parts.push("(not drift)".into());
    }
    parts.join(" ")
}

impl<W: Write> ReportSink for TableReport<W> {
    fn begin(&mut self, meta: &ContainerMeta) -> Result<(), DiffError> {
        self.meta = meta.clone();
        Ok(())
    }

    fn file(&mut self, entry: &FileEntry) -> Result<(), DiffError> {
        if entry.change == crate::model::ChangeKind::CopiedUp && !self.show_copied_up {
            return Ok(());
        }
        let i = entry.category.index();
        self.counts[i] += 1;
        let slot = match &mut self.spill[i] {
            Some(s) => s,
            s @ None => s.insert(BufWriter::new(tempfile::tempfile().map_err(out)?)),
        };
        let kind = entry
            .container
            .as_ref()
            .or(entry.image.as_ref())
            .and_then(|s| s.file_type)
            .map_or("?", |t| t.as_str());
        // One line per entry: every field is escaped (no raw newline can get through).
        writeln!(
            slot,
            "{:<8} {:<12} {:<8} {}  {}",
            entry.category.as_str(),
            entry.change.as_str(),
            kind,
            escape(&entry.path_bytes()),
            fmt_side_change(entry.image.as_ref(), entry.container.as_ref(), entry)
        )
        .map_err(out)
    }

    fn packages(&mut self, report: &PackageReport) -> Result<(), DiffError> {
        self.packages = Some(report.clone());
        Ok(())
    }

    fn runtime(&mut self, _runtime: Option<&RuntimeSummary>) -> Result<(), DiffError> {
        Ok(())
    }

    fn config(&mut self, findings: &[ConfigFinding]) -> Result<(), DiffError> {
        let w = &mut self.w;
        let m = &self.meta;
        writeln!(
            w,
            "container {} (namespace {}, image {})",
            escape(m.id.as_bytes()),
            escape(m.namespace.as_bytes()),
            escape(m.image.as_bytes())
        )
        .map_err(out)?;
        writeln!(w).map_err(out)?;
        writeln!(w, "FILES").map_err(out)?;
        writeln!(
            w,
            "{:<8} {:<12} {:<8} PATH  DETAILS",
            "CATEGORY", "CHANGE", "TYPE"
        )
        .map_err(out)?;
        for cat in Category::ALL {
            if let Some(s) = self.spill[cat.index()].take() {
                let mut f = s.into_inner().map_err(|e| out(e.into_error()))?;
                f.rewind().map_err(out)?;
                for line in BufReader::new(f).split(b'\n') {
                    w.write_all(&line.map_err(out)?).map_err(out)?;
                    w.write_all(b"\n").map_err(out)?;
                }
            }
        }
        if self.counts.iter().all(|c| *c == 0) {
            writeln!(w, "(no changes)").map_err(out)?;
        }
        if let Some(p) = &self.packages {
            writeln!(w).map_err(out)?;
            writeln!(
                w,
                "PACKAGES ({})",
                if p.managers.is_empty() {
                    "no package database found".to_owned()
                } else {
                    p.managers.join(", ")
                }
            )
            .map_err(out)?;
            for c in &p.changes {
                let change = match c.change {
                    PackageChangeKind::Added => format!(
                        "added    {} {}",
                        c.name,
                        c.new_version.as_deref().unwrap_or("")
                    ),
                    PackageChangeKind::Removed => format!(
                        "removed  {} {}",
                        c.name,
                        c.old_version.as_deref().unwrap_or("")
                    ),
                    PackageChangeKind::Changed => format!(
                        "changed  {} {} → {}",
                        c.name,
                        c.old_version.as_deref().unwrap_or(""),
                        c.new_version.as_deref().unwrap_or("")
                    ),
                };
                let loc = c
                    .location
                    .as_deref()
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default();
                writeln!(
                    w,
                    "{:<7} {}{}",
                    c.manager,
                    escape(change.as_bytes()),
                    escape(loc.as_bytes())
                )
                .map_err(out)?;
            }
            for u in &p.unmanaged {
                writeln!(
                    w,
                    "{:<7} {} {} without the package manager (package {}{})",
                    u.manager,
                    escape(u.path.as_bytes()),
                    u.change,
                    escape(u.package.as_bytes()),
                    if u.conffile { ", conffile" } else { "" }
                )
                .map_err(out)?;
            }
            for n in &p.notes {
                writeln!(w, "note    {}", escape(n.as_bytes())).map_err(out)?;
            }
            if p.changes.is_empty() && p.unmanaged.is_empty() && !p.managers.is_empty() {
                writeln!(w, "(no package changes)").map_err(out)?;
            }
        }
        writeln!(w).map_err(out)?;
        writeln!(w, "CONFIGURATION").map_err(out)?;
        for f in findings {
            let detail = match (&f.expected, &f.actual) {
                (Some(e), Some(a)) => format!(" [{e} → {a}]"),
                (None, Some(a)) => format!(" [{a}]"),
                (Some(e), None) => format!(" [was {e}]"),
                (None, None) => String::new(),
            };
            writeln!(
                w,
                "{:<8} {:<12} {:<9} {}{}",
                f.risk.as_str(),
                escape(f.field.as_bytes()),
                f.against,
                escape(f.message.as_bytes()),
                escape(detail.as_bytes())
            )
            .map_err(out)?;
        }
        if findings.is_empty() {
            writeln!(w, "(no runtime configuration available)").map_err(out)?;
        }
        Ok(())
    }

    fn finish(&mut self, s: &Summary) -> Result<(), DiffError> {
        let w = &mut self.w;
        writeln!(w).map_err(out)?;
        let cats: Vec<String> = s
            .files_by_category
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(
            w,
            "SUMMARY  {} file changes ({}), {} drift; {} package changes, {} files changed outside the package manager; {} configuration deviations{}",
            s.files_by_category.values().sum::<u64>(),
            if cats.is_empty() { "none".to_owned() } else { cats.join(", ") },
            s.file_drift,
            s.package_changes,
            s.unmanaged_changes,
            s.config_deviations,
            if s.incomplete { "; INCOMPLETE (see notes)" } else { "" }
        )
        .map_err(out)?;
        writeln!(w, "{}", if s.drift { "DRIFT" } else { "NO DRIFT" }).map_err(out)?;
        w.flush().map_err(out)
    }
}

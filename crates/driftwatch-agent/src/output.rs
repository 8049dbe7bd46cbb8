//! Alert sinks: stdout (text or JSON lines) and an append-only JSON-lines file flushed after
//! every alert.

use driftwatch_event::Alert;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One place alerts go.
pub trait Sink: Send {
    fn name(&self) -> &str;
    fn write(&mut self, alert: &Alert) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

/// Alerts on stdout, one line each.
#[derive(Debug)]
pub struct StdoutSink {
    json: bool,
}

impl StdoutSink {
    pub fn new(json: bool) -> StdoutSink {
        StdoutSink { json }
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        "stdout"
    }

    fn write(&mut self, alert: &Alert) -> io::Result<()> {
        let line = if self.json {
            alert.to_json_line()
        } else {
            crate::text::one_line(&alert.to_text_line())
        };
        let mut out = io::stdout().lock();
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}

/// Alerts appended to a file as JSON lines; each alert is flushed to the kernel before the next.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: File,
}

impl FileSink {
    pub fn open(path: &Path) -> io::Result<FileSink> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FileSink {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        "file"
    }

    fn write(&mut self, alert: &Alert) -> io::Result<()> {
        let mut line = alert.to_json_line();
        line.push('\n');
        // One write call per alert so concurrent readers never see half a line.
        self.file.write_all(line.as_bytes())?;
        self.file.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftwatch_event::Priority;
    use std::collections::BTreeMap;

    fn alert(rule: &str) -> Alert {
        Alert {
            time_ns: 1,
            rule: rule.into(),
            priority: Priority::Warning,
            output: "line\nbreak".into(),
            output_fields: BTreeMap::new(),
            tags: vec![],
            source: "syscall".into(),
            hostname: "h".into(),
        }
    }

    #[test]
    fn file_sink_appends_one_json_line_per_alert() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        std::fs::write(&path, "{\"earlier\":true}\n").unwrap();
        let mut s = FileSink::open(&path).unwrap();
        s.write(&alert("a")).unwrap();
        s.write(&alert("b")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "existing content is kept: {text}");
        let v: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(v["rule"], "b");
        assert_eq!(v["output"], "line\nbreak");
    }
}

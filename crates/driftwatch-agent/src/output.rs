//! Alert sinks: stdout (text or JSON lines) and an append-only JSON-lines file flushed after
//! every alert.

use driftwatch_event::Alert;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One place alerts go.
pub trait Sink: Send {
    fn name(&self) -> &str;
    /// Adds one alert to the current batch (written by [`Sink::end_batch`], or earlier when the
    /// batch grows past [`BATCH_BYTES`]).
    fn write(&mut self, alert: &Alert) -> io::Result<()>;
    /// Writes the batch: whole lines, one `write` call.
    fn end_batch(&mut self) -> io::Result<()>;
    /// Writes the batch and makes it durable (shutdown).
    fn flush(&mut self) -> io::Result<()>;
}

/// A batch is written once it holds this much.
pub const BATCH_BYTES: usize = 64 * 1024;

/// Alerts on stdout, one line each.
#[derive(Debug)]
pub struct StdoutSink {
    json: bool,
    batch: Vec<u8>,
}

impl StdoutSink {
    pub fn new(json: bool) -> StdoutSink {
        StdoutSink {
            json,
            batch: Vec::new(),
        }
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
        self.batch.extend_from_slice(line.as_bytes());
        self.batch.push(b'\n');
        if self.batch.len() >= BATCH_BYTES {
            self.end_batch()?;
        }
        Ok(())
    }

    fn end_batch(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        let r = out.write_all(&self.batch).and_then(|()| out.flush());
        self.batch.clear();
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        self.end_batch()?;
        io::stdout().flush()
    }
}

/// Alerts appended to a file as JSON lines; each alert is flushed to the kernel before the next.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: File,
    batch: Vec<u8>,
}

impl FileSink {
    pub fn open(path: &Path) -> io::Result<FileSink> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FileSink {
            path: path.to_path_buf(),
            file,
            batch: Vec::new(),
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
        self.batch
            .extend_from_slice(alert.to_json_line().as_bytes());
        self.batch.push(b'\n');
        if self.batch.len() >= BATCH_BYTES {
            self.end_batch()?;
        }
        Ok(())
    }

    fn end_batch(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        // Whole lines in one write call (O_APPEND): readers never see half a line.
        let r = self.file.write_all(&self.batch);
        self.batch.clear();
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        self.end_batch()?;
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
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().lines().count(),
            1,
            "nothing written before the batch ends"
        );
        s.end_batch().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "existing content is kept: {text}");
        let v: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(v["rule"], "b");
        assert_eq!(v["output"], "line\nbreak");
    }
}

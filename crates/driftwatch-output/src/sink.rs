//! Alert sinks: stdout (text or JSON lines) and an append-only JSON-lines file, each written in
//! batches of whole lines (one `write` per batch: a reader never sees half a line). The writer
//! ends a batch whenever the alert channel is empty, so a lone alert is written at once.

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
    /// Alerts this sink lost since the last call because it was full (the HTTP output's spool);
    /// the writer reports them on the other sinks.
    fn take_dropped(&mut self) -> u64 {
        0
    }
}

/// A batch is written once it holds this much.
pub const BATCH_BYTES: usize = 64 * 1024;

/// Whole alert lines waiting to be written together.
#[derive(Debug, Default)]
struct LineBatch(Vec<u8>);

impl LineBatch {
    /// Adds `line` and a newline; true when the batch should be written now.
    fn push(&mut self, line: &str) -> bool {
        self.0.extend_from_slice(line.as_bytes());
        self.0.push(b'\n');
        self.0.len() >= BATCH_BYTES
    }

    /// Writes every line in one `write_all` and empties the batch (also on error: a failed
    /// batch is reported once, not retried forever).
    fn write_to(&mut self, w: &mut impl Write) -> io::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let r = w.write_all(&self.0);
        self.0.clear();
        r
    }
}

/// Alerts on stdout, one line each.
#[derive(Debug)]
pub struct StdoutSink {
    json: bool,
    batch: LineBatch,
}

impl StdoutSink {
    pub fn new(json: bool) -> StdoutSink {
        StdoutSink {
            json,
            batch: LineBatch::default(),
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
            driftwatch_event::text::escape_str(&alert.to_text_line())
        };
        if self.batch.push(&line) {
            self.end_batch()?;
        }
        Ok(())
    }

    fn end_batch(&mut self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        self.batch.write_to(&mut out)?;
        out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.end_batch()?;
        io::stdout().flush()
    }
}

/// Alerts appended to a file as JSON lines, written in batches of whole lines.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: File,
    batch: LineBatch,
}

impl FileSink {
    pub fn open(path: &Path) -> io::Result<FileSink> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FileSink {
            path: path.to_path_buf(),
            file,
            batch: LineBatch::default(),
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
        if self.batch.push(&alert.to_json_line()) {
            self.end_batch()?;
        }
        Ok(())
    }

    fn end_batch(&mut self) -> io::Result<()> {
        // Whole lines in one write call (O_APPEND): readers never see half a line.
        self.batch.write_to(&mut self.file)
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

//! Loading: rule-file text → YAML documents → items → the collector, file after file.
//! Pure: the only IO of the crate is in `files.rs`.

use crate::collector::Collector;
use crate::definition::LoadResult;
use crate::diagnostic::Diagnostic;
use crate::reader::Reader;
use crate::source_loc::SourceLoc;
use crate::version::{EngineVersion, ENGINE_VERSION};
use crate::yaml::{self, Pos};
use std::sync::Arc;

/// Largest rule file accepted, in bytes (Falco's own rule files are about 100 KiB).
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// What the loader checks rule files against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Compared with each file's `required_engine_version`.
    pub engine_version: EngineVersion,
    /// Event sources rules may name; rules for other sources are kept, marked and warned about.
    pub known_sources: Vec<String>,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            engine_version: ENGINE_VERSION,
            known_sources: vec!["syscall".to_string()],
        }
    }
}

/// Loads rule files in order into one result; later files tune earlier ones.
#[derive(Debug)]
pub struct Loader {
    collector: Collector,
    diagnostics: Vec<Diagnostic>,
}

impl Default for Loader {
    fn default() -> Loader {
        Loader::new(LoadOptions::default())
    }
}

impl Loader {
    pub fn new(options: LoadOptions) -> Loader {
        Loader {
            collector: Collector::new(options.engine_version, options.known_sources),
            diagnostics: Vec::new(),
        }
    }

    /// Adds a file's raw bytes; `name` is the file name used in positions.
    pub fn add_bytes(&mut self, name: &str, bytes: &[u8]) {
        if bytes.len() > MAX_FILE_BYTES {
            self.file_error(
                name,
                1,
                1,
                format!("rule file is larger than {MAX_FILE_BYTES} bytes"),
            );
            return;
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => self.add_str(name, text),
            Err(e) => {
                let valid = &bytes[..e.valid_up_to()];
                let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
                let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                let col = String::from_utf8_lossy(&valid[line_start..])
                    .chars()
                    .count()
                    + 1;
                self.file_error(name, line, col, "rule file is not valid utf-8".to_string());
            }
        }
    }

    /// Adds a file's text; `name` is the file name used in positions.
    pub fn add_str(&mut self, name: &str, text: &str) {
        if text.len() > MAX_FILE_BYTES {
            self.file_error(
                name,
                1,
                1,
                format!("rule file is larger than {MAX_FILE_BYTES} bytes"),
            );
            return;
        }
        let file: Arc<str> = Arc::from(name);
        let (src, docs) = yaml::parse(file, text);
        // A YAML error rejects the whole file, as in Falco.
        let docs = match docs {
            Ok(docs) => docs,
            Err(e) => {
                self.diagnostics.push(Diagnostic::error(
                    src.loc(e.pos),
                    format!("yaml syntax error: {}", e.message),
                ));
                return;
            }
        };
        let mut reader = Reader::new(&src);
        for doc in &docs {
            if doc.is_null() {
                continue;
            }
            let Some(items) = doc.as_seq() else {
                let msg = if doc.as_map().is_some() {
                    "rules content is not a yaml array of objects"
                } else {
                    "rules content is not yaml"
                };
                self.diagnostics
                    .push(Diagnostic::error(src.loc(doc.start), msg));
                continue;
            };
            for item in items {
                if item.is_null() {
                    continue;
                }
                let read = reader.read_item(item);
                self.diagnostics.append(&mut reader.warnings);
                let applied = match read {
                    Ok(Some(entry)) => self.collector.apply(entry, &mut self.diagnostics),
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(e) = applied {
                    self.diagnostics.push(e);
                }
            }
        }
    }

    pub(crate) fn file_error(&mut self, name: &str, line: usize, col: usize, message: String) {
        let pos = Pos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col0: u32::try_from(col.saturating_sub(1)).unwrap_or(u32::MAX),
        };
        let loc = SourceLoc::new(name, pos.line, pos.col0.saturating_add(1));
        self.diagnostics.push(Diagnostic::error(loc, message));
    }

    /// Builds effective conditions and returns everything loaded.
    pub fn finish(self) -> LoadResult {
        self.collector.finish(self.diagnostics)
    }
}

/// Loads one rule file given as text (tests, embedded rules).
pub fn load_str(name: &str, text: &str) -> LoadResult {
    let mut loader = Loader::default();
    loader.add_str(name, text);
    loader.finish()
}

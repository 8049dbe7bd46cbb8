//! The baseline directory: one `<workload>.yaml` per workload, read at start and again when a
//! file changes, written atomically (a temporary file in the same directory, then a rename).
//!
//! Invariant: a file that cannot be parsed is an error naming it, its line and column; it is
//! never replaced by what the agent holds in memory.

use crate::model::{Baseline, ParseError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why a baseline could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot read baseline {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{}:{}: {}", .error.line, .error.column, .error.message)]
    Parse { path: PathBuf, error: ParseError },
    #[error("{second} holds the baseline of {workload}, which {first} already holds")]
    Duplicate {
        workload: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("cannot write baseline {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A file as read.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub baseline: Baseline,
    pub mtime: Option<SystemTime>,
}

/// The baseline directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `*.yaml` files of the directory, sorted by name (none when it does not exist yet).
    pub fn files(&self) -> Result<Vec<PathBuf>, BaselineError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(BaselineError::Read {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// Every baseline of the directory ([`Store::files`]). Symbolic links and other non-regular
    /// files are skipped with a warning.
    pub fn load_all(&self) -> Result<Vec<Loaded>, BaselineError> {
        let paths = self.files()?;
        let mut out: Vec<Loaded> = Vec::new();
        for path in paths {
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "not a regular file: skipped");
                    continue;
                }
                Err(source) => return Err(BaselineError::Read { path, source }),
            }
            let loaded = Store::load(&path)?;
            if let Some(first) = out
                .iter()
                .find(|l| l.baseline.workload == loaded.baseline.workload)
            {
                return Err(BaselineError::Duplicate {
                    workload: loaded.baseline.workload,
                    first: first.path.clone(),
                    second: path,
                });
            }
            out.push(loaded);
        }
        Ok(out)
    }

    /// One file.
    pub fn load(path: &Path) -> Result<Loaded, BaselineError> {
        let mtime = mtime(path);
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let baseline = Baseline::from_yaml(&text).map_err(|error| BaselineError::Parse {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(Loaded {
            path: path.to_path_buf(),
            baseline,
            mtime,
        })
    }

    /// The modification time of a file now (to see whether someone changed it).
    pub fn mtime(path: &Path) -> Option<SystemTime> {
        mtime(path)
    }

    /// A path for a new workload's file: its key made a file name, with a counter when another
    /// file already has that name.
    pub fn path_for(&self, key: &str, taken: impl Fn(&Path) -> bool) -> PathBuf {
        let stem = crate::Workload::file_stem(key);
        let mut path = self.dir.join(format!("{stem}.yaml"));
        let mut n = 2;
        while taken(&path) || std::fs::symlink_metadata(&path).is_ok() {
            path = self.dir.join(format!("{stem}-{n}.yaml"));
            n += 1;
        }
        path
    }

    /// Writes a baseline atomically; returns the file's new modification time.
    pub fn write(&self, path: &Path, b: &Baseline) -> Result<Option<SystemTime>, BaselineError> {
        write_atomic(path, b.to_yaml().as_bytes()).map_err(|source| BaselineError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(mtime(path))
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader sees the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map_or_else(
        || std::ffi::OsString::from("baseline"),
        std::ffi::OsStr::to_os_string,
    );
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(&name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

//! The crate's only IO: reading the rule files it is given, bounded in size.

use crate::definition::LoadResult;
use crate::loader::{Loader, MAX_FILE_BYTES};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RuleFileError {
    #[error("cannot read rule file: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rule file is larger than {max} bytes")]
    TooLarge { path: PathBuf, max: usize },
    #[error("cannot read rules directory {}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The rule files to load for `paths`, in order: each file as given, each directory's
/// `*.yaml`/`*.yml` files sorted by name.
pub fn rule_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, RuleFileError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|source| RuleFileError::Dir {
                path: p.clone(),
                source,
            })?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Reads a rule file, refusing more than [`MAX_FILE_BYTES`].
pub fn read_rule_file(path: &Path) -> Result<Vec<u8>, RuleFileError> {
    let read_err = |source| RuleFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_FILE_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    file.take(limit).read_to_end(&mut bytes).map_err(read_err)?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(RuleFileError::TooLarge {
            path: path.to_path_buf(),
            max: MAX_FILE_BYTES,
        });
    }
    Ok(bytes)
}

impl Loader {
    /// Reads and adds one rule file; a file that cannot be read is an error diagnostic.
    pub fn add_file(&mut self, path: &Path) {
        let name = path.display().to_string();
        match read_rule_file(path) {
            Ok(bytes) => self.add_bytes(&name, &bytes),
            Err(e) => self.file_error(&name, 1, 1, e.to_string()),
        }
    }
}

/// Loads rule files in the order given (as Falco does with several `rules_files`).
pub fn load_files(paths: &[PathBuf]) -> LoadResult {
    let mut loader = Loader::default();
    for p in paths {
        loader.add_file(p);
    }
    loader.finish()
}

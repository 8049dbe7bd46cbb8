//! What the YAML files of this crate (approvals, playbooks) share: values checked inside the
//! scalar's visitor, so that serde_yaml puts every mistake at the value's line and column, and
//! serde_yaml's errors split into line, column and message.

use serde::Deserializer;
use std::path::{Path, PathBuf};

/// A YAML file of this crate (approvals, playbooks) cannot be used: which file, where, why.
#[derive(Debug, thiserror::Error)]
pub enum YamlFileError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl YamlFileError {
    /// A mistake at `line`:`column` of `path`.
    pub fn at(path: &Path, line: usize, column: usize, message: String) -> YamlFileError {
        YamlFileError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    }
}

/// Reads `path` as text.
pub(crate) fn read(path: &Path) -> Result<String, YamlFileError> {
    std::fs::read_to_string(path).map_err(|source| YamlFileError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses `text` (of `path`) as a `T`; serde_yaml's error placed at its line and column.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, YamlFileError> {
    serde_yaml::from_str(text).map_err(|e| {
        let (line, column, message) = located(&e);
        YamlFileError::at(path, line, column, message)
    })
}

/// A string checked by `parse` inside the scalar's visitor, so that serde_yaml puts the error
/// at the value's line and column.
struct Checked<T>(fn(&str) -> Result<T, String>);

impl<T> serde::de::Visitor<'_> for Checked<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
}

/// A string value parsed by `parse`; its error is located at the value.
pub(crate) fn checked<'de, D: Deserializer<'de>, T>(
    d: D,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, D::Error> {
    d.deserialize_str(Checked(parse)).map(Some)
}

/// A serde_yaml error as (line, column, message without serde_yaml's " at line L column C").
fn located(e: &serde_yaml::Error) -> (usize, usize, String) {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    let msg = e.to_string();
    let message = match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    };
    (line, column, message)
}

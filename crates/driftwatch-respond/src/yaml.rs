//! What the YAML files of this crate (approvals, playbooks) share: values checked inside the
//! scalar's visitor, so that serde_yaml puts every mistake at the value's line and column, and
//! serde_yaml's errors split into line, column and message.

use serde::Deserializer;

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
pub(crate) fn located(e: &serde_yaml::Error) -> (usize, usize, String) {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    let msg = e.to_string();
    let message = match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    };
    (line, column, message)
}

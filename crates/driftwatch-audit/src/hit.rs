//! What a check reports before the object and file are attached.

use crate::fix::Fix;
use crate::yaml::Pos;

/// One failed check at one field.
#[derive(Debug, Clone)]
pub struct Hit {
    pub check: &'static str,
    pub pos: Pos,
    pub reason: String,
    pub fix: Fix,
}

impl Hit {
    pub fn new(check: &'static str, pos: Pos, reason: impl Into<String>, fix: Fix) -> Hit {
        Hit {
            check,
            pos,
            reason: reason.into(),
            fix,
        }
    }
}

//! ivr — see lib.rs for the layout.
pub mod expr;
pub mod hours;
pub mod pattern;
pub mod values;
pub mod yaml;

use std::path::PathBuf;

/// Errors of the ivr module. `Invalid.at` is a character index inside the scalar being parsed,
/// which the checker turns into a column.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum IvrError {
    #[error("{message}")]
    Invalid { at: usize, message: String },
    #[error("cannot read {path}: {message}")]
    Io { path: PathBuf, message: String },
}

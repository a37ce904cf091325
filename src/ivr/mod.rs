//! ivr — see lib.rs for the layout.
pub mod check;
pub mod events;
pub mod expr;
pub mod flowtest;
pub mod hours;
pub mod interp;
pub mod model;
mod parse;
pub mod pattern;
pub mod prompts;
pub mod sim;
mod steps;
mod testspec;
pub mod values;
pub mod yaml;

pub use check::{load_dir, load_file, parse_str, CheckEnv, Diagnostic, QueueInfo, Severity};
pub use flowtest::{run_tests, TestResult};
pub use interp::{
    AccountKey, Action, AuthState, CallInfo, EndReason, Event, Interpreter, Pin, PinOutcome,
    PromptRef,
};
pub use model::{Flow, FlowSet};
pub use prompts::PromptIndex;
pub use sim::{simulate, NoServices, Outcome, Services, SimReport};

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

#[cfg(test)]
mod check_tests;
#[cfg(test)]
pub(crate) mod interp_tests;
#[cfg(test)]
mod spec_tests;

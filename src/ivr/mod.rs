//! ivr — PURE apart from loading: flow files, their checker, and the interpreter that the
//! server, `switchboard simulate` and the flows' `tests:` all share.
//!
//! How a flow travels: [`yaml`] turns the file into a tree of positioned nodes; `parse` and
//! `steps` build the typed [`model`] from it, reporting every mistake at its `line:column`;
//! [`check`] adds what needs the world outside the file (step graph, prompt files, queues,
//! other flows) and owns [`load_dir`]. An [`Interpreter`] then runs one call of a [`Flow`]
//! from events and virtual time ([`events`] is its contract with the call controller);
//! [`sim`] drives it without a phone and [`flowtest`] runs the flows' `tests:` through `sim`.
//! [`expr`] (templates, conditions), [`hours`], [`pattern`] and [`values`] are the small
//! languages inside a flow. Only [`check`] and [`prompts`] touch the disk.
//!
//! Keys added to the contract in flows.md (the README should list them):
//! * flow: `answer_delay` (duration, default 0) — ring that long before answering.
//! * play: `say: { digits | number: template }` (or a list) beside `play`, or alone; a play
//!   list may also hold `{ digits: … }` / `{ number: … }` items.
//! * menu: `on_invalid` defaults to `on_timeout`; `retries` default 2, `timeout` default 5s.
//! * collect: `retries` (default 2), `invalid_prompt`, and the exit `on_invalid` (default
//!   `on_timeout`); `terminator: ""` means none; defaults `digits: 1-16`, `timeout: 5s`,
//!   `inter_digit_timeout: 3s`, `terminator: "#"`.
//! * pin: `inter_digit_timeout`; defaults `digits: 4-8`, `attempts: 3`.
//! * lookup: `method` (GET or POST; POST when a `body` template is given), `body`; the short
//!   form `lookup: "<url>"`; `on_error` defaults to `next`; an answer that is not a JSON
//!   object lands in `vars.<step>`.
//! * callback: `{ queue: … }`; transfer: `{ target: … }` (templates allowed).
//! * set: `language` and `vars.<name>` keys only.
//! * record: the file lands in the variable `recording`.
//! * tests: `accounts: [{ id, phone | phones, pin, locked, <field>: … }]`, `lookups: { <step>:
//!   <json> | error }`, and `expect: { callback: <queue> }`; `at` defaults to
//!   2026-01-05T12:00:00Z and `caller` to `anonymous`.
//!
//! * queue: `after_agent: <step>` — where the caller goes when the AGENT hangs up first (without
//!   it the call ends then). `survey: { prompt, options: { "<key>": <score> }, bad_below, timeout
//!   (5s), retries (1), invalid_prompt }` with `next` (also taken after no answer): the score lands
//!   on the record (`survey`) and in `vars.survey`; below `bad_below` raises `survey.bad`.
//!   `tests:` may `expect: { survey: <score> | none }`; input left when a queue with `after_agent`
//!   is reached is typed after a simulated agent hangs up.
//!
//! A missing `next` hangs up (with a warning); a missing `on_timeout`/`on_fail` hangs up quietly.
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
#[cfg(test)]
mod survey_tests;

//! Call detail records: one per call, written as the call goes (so a crash leaves an open row that
//! the next start closes as `interrupted`) and read back by the HTTP API and reports.
//!
//! [`CdrStore`] is the seam for a future PostgreSQL store; [`SqliteCdrStore`] is the default, and
//! [`CdrWriter`] keeps its blocking writes off the async threads.

mod record;
pub mod report;
pub(crate) mod sqlite;
mod writer;

pub use record::{
    format_ts, AuthStatus, CallEvent, CallQuery, CallRecord, Direction, Disposition, HangupBy,
};
pub use sqlite::SqliteCdrStore;
pub use writer::{CdrWriter, WriterStats};

use chrono::{DateTime, Utc};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CdrError {
    #[error("call record database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("call record database: {0}")]
    Open(String),
    #[error("call record JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("call record {call_id} is corrupt in the database: {what}")]
    Corrupt { call_id: String, what: String },
}

impl From<sqlite::ConnectError> for CdrError {
    fn from(e: sqlite::ConnectError) -> Self {
        match e {
            sqlite::ConnectError::Db(e) => CdrError::Db(e),
            other => CdrError::Open(other.to_string()),
        }
    }
}

/// Where call records live. Blocking: call it from a writer thread or `spawn_blocking`.
pub trait CdrStore: Send + Sync {
    /// Writes the record as the call starts, so a crash leaves it open rather than missing.
    /// Repeating it changes nothing.
    fn begin(&self, rec: &CallRecord) -> Result<(), CdrError>;
    /// Progress (IVR path, auth, answer, events). Ignored once the record is finished.
    fn update(&self, rec: &CallRecord) -> Result<(), CdrError>;
    /// The final state. Idempotent: the first finish wins and there is never a second record.
    fn finish(&self, rec: &CallRecord) -> Result<(), CdrError>;
    /// One record with its events.
    fn get(&self, call_id: &str) -> Result<Option<CallRecord>, CdrError>;
    /// Newest first (by `started_at`), without events.
    fn list(&self, q: &CallQuery) -> Result<Vec<CallRecord>, CdrError>;
    /// At start-up: records a crash left open become `interrupted`, ended at their last known
    /// progress, hung up by `system`. Returns how many were closed.
    fn close_interrupted(&self, now: DateTime<Utc>) -> Result<usize, CdrError>;
    fn ping(&self) -> Result<(), CdrError>;
    /// Retention deleted the recording `file`: the records linking it lose the link and get a
    /// `recording_deleted` event. Returns how many records changed.
    fn recording_deleted(&self, file: &str, at: DateTime<Utc>) -> Result<usize, CdrError> {
        let _ = (file, at);
        Ok(0)
    }
    /// Every record, with its events, that entered a queue or started in `[from, to)`: what a
    /// report over that range needs. At most [`REPORT_MAX_RECORDS`].
    fn for_report(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CallRecord>, CdrError>;
}

/// A report bigger than this many calls must be asked for in smaller ranges.
pub const REPORT_MAX_RECORDS: usize = 500_000;

#[cfg(test)]
mod tests;

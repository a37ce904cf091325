//! Call detail records: one per call, written as the call goes (so a crash leaves an open row that
//! the next start closes as `interrupted`) and read back by the HTTP API and reports.
//!
//! [`CdrStore`] is the seam between the two backends: [`SqliteCdrStore`] is the embedded default,
//! [`PgCdrStore`] lets several nodes share one PostgreSQL database, and [`CdrWriter`] keeps their
//! blocking writes off the async threads. [`open_store`] picks one from `--database`.

pub mod country;
mod database;
mod postgres;
mod record;
pub mod report;
pub(crate) mod sqlite;
mod writer;

pub use self::postgres::PgCdrStore;
pub use database::{open_store, DatabaseUrl};
pub use report::AgentStateChange;

pub use record::{
    format_ts, AuthStatus, CallEvent, CallLeg, CallQuery, CallRecord, Direction, Disposition,
    HangupBy,
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
    #[error("call record database (PostgreSQL): {}", pg_detail(.0))]
    Pg(#[from] ::postgres::Error),
    #[error("call record JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("call record {call_id} is corrupt in the database: {what}")]
    Corrupt { call_id: String, what: String },
}

impl CdrError {
    /// Every value [`CdrError::reason`] can take.
    pub const REASONS: [&'static str; 6] = [
        "disk_full",
        "read_only",
        "locked",
        "io_error",
        "unavailable",
        "error",
    ];

    /// What kind of fault this is, in a word an operator can act on (and a metric label):
    /// `disk_full`, `read_only`, `locked`, `io_error`, `unavailable`, or `error`. It never
    /// quotes the database's own text, so it is safe on the unauthenticated `/healthz`.
    pub fn reason(&self) -> &'static str {
        use rusqlite::ErrorCode as C;
        match self {
            CdrError::Db(rusqlite::Error::SqliteFailure(e, _)) => match e.code {
                C::DiskFull => "disk_full",
                C::ReadOnly => "read_only",
                C::DatabaseBusy | C::DatabaseLocked => "locked",
                C::SystemIoFailure | C::CannotOpen => "io_error",
                _ => "error",
            },
            CdrError::Pg(e) => match e.as_db_error().map(|d| d.code().code()) {
                // Class 53: insufficient resources; 53100 is disk_full.
                Some("53100") => "disk_full",
                // 25006: read_only_sql_transaction (a standby, or default_transaction_read_only).
                Some("25006") => "read_only",
                Some(_) => "error",
                None => "unavailable",
            },
            CdrError::Open(_) => "unavailable",
            CdrError::Db(_) | CdrError::Json(_) | CdrError::Corrupt { .. } => "error",
        }
    }
}

/// The client's own text says only "db error" for anything the server refused; the server's
/// message ("database … is not currently accepting connections", "no space left on device") is
/// what an operator needs.
fn pg_detail(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{e}: {} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
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
    fn recording_deleted(&self, file: &str, at: DateTime<Utc>) -> Result<usize, CdrError>;
    /// Every record, with its events, that entered a queue or started in `[from, to)`: what a
    /// report over that range needs. At most [`REPORT_MAX_RECORDS`].
    fn for_report(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CallRecord>, CdrError>;
    /// Keeps one agent state change (for occupancy). Repeating it changes nothing.
    fn record_agent_state(&self, change: &AgentStateChange) -> Result<(), CdrError>;
    /// Several at once; a store may write them in one transaction.
    fn record_agent_states(&self, changes: &[AgentStateChange]) -> Result<(), CdrError> {
        changes.iter().try_for_each(|c| self.record_agent_state(c))
    }
    /// Every change in `[from, to)` plus each agent's last change before `from`, so an interval
    /// starting mid-state is right; oldest first. At most [`REPORT_MAX_STATES`].
    fn agent_states(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AgentStateChange>, CdrError>;
}

/// Agent state changes one report reads at most.
pub const REPORT_MAX_STATES: usize = 2_000_000;

/// An agent id or state longer than this is cut before it is stored.
pub(crate) const MAX_AGENT_FIELD: usize = 200;

/// A report bigger than this many calls must be asked for in smaller ranges.
pub const REPORT_MAX_RECORDS: usize = 500_000;

#[cfg(test)]
pub(crate) mod test_db;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_states;

//! Queued callbacks: the SQLite table that makes them survive a restart, and the dial hook.
//!
//! A callback's place in line is its `enqueued_at` (wall clock, since monotonic time does not
//! survive a restart). Ids embed that time zero-padded, so ids sort in enqueue order; callbacks
//! restored from before this run all enter the ACD at the clock's origin and are ordered by id.

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};
use serde::Serialize;

use super::Shared;

/// Pending callbacks re-entered at start, at most (the rest stay stored and are logged).
pub const MAX_RESTORED: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum CallbackStoreError {
    #[error("callback store: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("callback store: cannot create the directory: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatus {
    Queued,
    Dialing,
    Completed,
    Failed,
}

impl CallbackStatus {
    fn as_str(self) -> &'static str {
        match self {
            CallbackStatus::Queued => "queued",
            CallbackStatus::Dialing => "dialing",
            CallbackStatus::Completed => "completed",
            CallbackStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> CallbackStatus {
        match s {
            "dialing" => CallbackStatus::Dialing,
            "completed" => CallbackStatus::Completed,
            "failed" => CallbackStatus::Failed,
            _ => CallbackStatus::Queued,
        }
    }
}

/// One callback as stored. The note is the customer's question, shown to the agent only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Callback {
    pub id: String,
    pub number: String,
    pub queue: String,
    pub note: String,
    pub priority: i64,
    pub enqueued_at: DateTime<Utc>,
    pub status: CallbackStatus,
    pub attempts: u32,
    /// The call this callback took the place of, when an IVR caller asked for it.
    pub from_call: Option<String>,
}

/// An id that sorts by enqueue time: `cb-<unix ms, 14 digits>-<8 hex>`.
pub fn new_id(enqueued_at: DateTime<Utc>) -> String {
    let ms = enqueued_at.timestamp_millis().max(0);
    format!("cb-{ms:014}-{:08x}", rand::random::<u32>())
}

pub struct CallbackStore {
    conn: Mutex<Connection>,
}

impl CallbackStore {
    pub fn open(path: &Path) -> Result<CallbackStore, CallbackStoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS callbacks (
                id TEXT PRIMARY KEY,
                number TEXT NOT NULL,
                queue TEXT NOT NULL,
                note TEXT NOT NULL,
                priority INTEGER NOT NULL,
                enqueued_at TEXT NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                from_call TEXT,
                updated_at TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS callbacks_status ON callbacks(status);",
        )?;
        Ok(CallbackStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, cb: &Callback) -> Result<(), CallbackStoreError> {
        self.conn().execute(
            "INSERT INTO callbacks (id, number, queue, note, priority, enqueued_at, status,
                attempts, from_call, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?6)",
            params![
                cb.id,
                cb.number,
                cb.queue,
                cb.note,
                cb.priority,
                cb.enqueued_at.to_rfc3339(),
                cb.status.as_str(),
                cb.attempts,
                cb.from_call,
            ],
        )?;
        Ok(())
    }

    pub fn set_status(
        &self,
        id: &str,
        status: CallbackStatus,
        now: DateTime<Utc>,
    ) -> Result<(), CallbackStoreError> {
        self.conn().execute(
            "UPDATE callbacks SET status = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, status.as_str(), now.to_rfc3339()],
        )?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<Callback>, CallbackStoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, number, queue, note, priority, enqueued_at, status, attempts, from_call
             FROM callbacks WHERE id = ?1",
        )?;
        let mut rows = st.query_map([id], row)?;
        Ok(rows.next().transpose()?)
    }

    /// Callbacks still waiting for an agent, oldest first. One left `dialing` by a crash goes
    /// back in line: nobody was connected to it.
    pub fn pending(&self) -> Result<Vec<Callback>, CallbackStoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, number, queue, note, priority, enqueued_at, status, attempts, from_call
             FROM callbacks WHERE status IN ('queued', 'dialing')
             ORDER BY enqueued_at, id LIMIT ?1",
        )?;
        let rows = st.query_map([MAX_RESTORED as i64], row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Callback> {
    let at: String = r.get(5)?;
    let status: String = r.get(6)?;
    Ok(Callback {
        id: r.get(0)?,
        number: r.get(1)?,
        queue: r.get(2)?,
        note: r.get(3)?,
        priority: r.get(4)?,
        enqueued_at: DateTime::parse_from_rfc3339(&at)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        status: CallbackStatus::parse(&status),
        attempts: r.get(7)?,
        from_call: r.get(8)?,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("dialing out is not enabled yet (the outbound trunk leg is not built)")]
    NotEnabled,
}

/// Places the outbound call to the customer and bridges it to `agent`. The outbound SIP leg
/// is not part of this build: the caller marks the callback `dialing` and tells the agent.
pub fn dial(_shared: &Shared, _callback: &Callback, _agent: &str) -> Result<(), DialError> {
    Err(DialError::NotEnabled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cb(at_ms: i64, number: &str) -> Callback {
        let at = DateTime::<Utc>::from_timestamp_millis(at_ms).unwrap_or_default();
        Callback {
            id: new_id(at),
            number: number.into(),
            queue: "billing".into(),
            note: "invoice 42 is wrong".into(),
            priority: 0,
            enqueued_at: at,
            status: CallbackStatus::Queued,
            attempts: 0,
            from_call: None,
        }
    }

    #[test]
    fn callbacks_survive_a_reopen_in_enqueue_order_until_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.db");
        let later = cb(1_800_000_005_000, "+5511900000002");
        let earlier = cb(1_800_000_000_000, "+5511900000001");
        let done = cb(1_799_999_000_000, "+5511900000003");
        {
            let store = CallbackStore::open(&path).unwrap();
            store.insert(&later).unwrap();
            store.insert(&earlier).unwrap();
            store.insert(&done).unwrap();
            store
                .set_status(&done.id, CallbackStatus::Completed, Utc::now())
                .unwrap();
            store
                .set_status(&later.id, CallbackStatus::Dialing, Utc::now())
                .unwrap();
        }
        let store = CallbackStore::open(&path).unwrap();
        let pending = store.pending().unwrap();
        let numbers: Vec<&str> = pending.iter().map(|c| c.number.as_str()).collect();
        assert_eq!(numbers, ["+5511900000001", "+5511900000002"]);
        assert_eq!(pending[0], earlier, "every field round-trips");
        assert!(earlier.id < later.id, "ids sort by enqueue time");
        assert_eq!(
            store.get(&done.id).unwrap().map(|c| c.status),
            Some(CallbackStatus::Completed)
        );
    }
}

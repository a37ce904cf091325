//! SQLite: the default store, and the connection settings and migration ledger that `auth` shares
//! (both live in one `data/switchboard.db`).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::record::{
    AuthStatus, CallEvent, CallQuery, CallRecord, Direction, Disposition, HangupBy,
};
use super::{AgentStateChange, CdrError, CdrStore};

/// Opens `path` (creating its directory) with the settings every component relies on: WAL so the
/// HTTP readers never block the writer, a busy timeout instead of instant `SQLITE_BUSY`, and
/// `synchronous=NORMAL`, which in WAL mode loses at most the last commits on power loss, never
/// consistency.
pub(crate) fn connect(path: &Path) -> Result<Connection, ConnectError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(ConnectError::Io)?;
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, "SQLite refused WAL journal mode");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("cannot create the database directory: {0}")]
    Io(std::io::Error),
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    #[error("the database has {component} schema version {found}, newer than this switchboard knows ({known}); upgrade switchboard")]
    TooNew {
        component: &'static str,
        found: i64,
        known: i64,
    },
}

/// Applies `steps[version-1]` for every version of `component` not yet recorded. Each component
/// owns its own numbering, so a future PostgreSQL store can keep the same ledger per component.
pub(crate) fn migrate(
    conn: &mut Connection,
    component: &'static str,
    steps: &[&str],
) -> Result<(), ConnectError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             component TEXT NOT NULL,
             version INTEGER NOT NULL,
             applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
             PRIMARY KEY (component, version)
         )",
    )?;
    // IMMEDIATE: two processes (or the auth and cdr stores) opening at once must not both apply
    // the same step.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = ?1",
        [component],
        |r| r.get(0),
    )?;
    let known = i64::try_from(steps.len()).unwrap_or(i64::MAX);
    if current > known {
        return Err(ConnectError::TooNew {
            component,
            found: current,
            known,
        });
    }
    for (version, sql) in (1..).zip(steps).skip(usize::try_from(current).unwrap_or(0)) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (component, version) VALUES (?1, ?2)",
            params![component, version],
        )?;
    }
    tx.commit()?;
    Ok(())
}

const MIGRATIONS: &[&str] = &[
    // Times are INTEGER milliseconds since the Unix epoch (UTC) so range filters and reports sort
    // numerically; ivr_path and events are JSON arrays.
    "CREATE TABLE cdr_calls (
         call_id TEXT PRIMARY KEY,
         direction TEXT NOT NULL,
         caller TEXT NOT NULL,
         dialed TEXT NOT NULL,
         flow TEXT,
         started_at INTEGER NOT NULL,
         answered_at INTEGER,
         ended_at INTEGER,
         ivr_path TEXT NOT NULL,
         account_id TEXT,
         auth TEXT NOT NULL,
         queue TEXT,
         priority INTEGER,
         enqueued_at INTEGER,
         agent_id TEXT,
         agent_answered_at INTEGER,
         wait_ms INTEGER,
         talk_ms INTEGER,
         disposition TEXT,
         hangup_by TEXT,
         recording TEXT,
         survey INTEGER,
         events TEXT NOT NULL,
         open INTEGER NOT NULL,
         last_progress_at INTEGER NOT NULL
     );
     CREATE INDEX cdr_calls_started ON cdr_calls (started_at);
     CREATE INDEX cdr_calls_queue_started ON cdr_calls (queue, started_at);
     CREATE INDEX cdr_calls_open ON cdr_calls (open) WHERE open = 1;",
    // Version 2: agent state changes, for occupancy. The unique key makes a retried batch
    // harmless; `at` leads an index because every report reads a time range.
    "CREATE TABLE agent_states (
         id INTEGER PRIMARY KEY,
         agent_id TEXT NOT NULL,
         state TEXT NOT NULL,
         reason TEXT,
         at INTEGER NOT NULL,
         UNIQUE (agent_id, at, state)
     );
     CREATE INDEX agent_states_at ON agent_states (at);",
    // Version 3: the dialed number's country (ISO 3166-1 alpha-2); rows written before it keep
    // NULL, so nothing is rewritten and nothing lost.
    "ALTER TABLE cdr_calls ADD COLUMN country TEXT;",
];

/// The SQL both stores use for [`CdrStore::agent_states`] (`?1`/`$1` = from, `?2`/`$2` = to,
/// `?3`/`$3` = limit): the range, plus each agent's last change before it.
pub(super) fn agent_states_sql(p: char) -> String {
    format!(
        "SELECT agent_id, state, reason, at, id FROM agent_states
         WHERE at >= {p}1 AND at < {p}2
         UNION ALL
         SELECT s.agent_id, s.state, s.reason, s.at, s.id FROM agent_states s
         JOIN (SELECT agent_id, MAX(at) AS last FROM agent_states WHERE at < {p}1
               GROUP BY agent_id) b
           ON s.agent_id = b.agent_id AND s.at = b.last
         ORDER BY 4, 5
         LIMIT {p}3"
    )
}

/// What a stored agent state row becomes; a time out of chrono's range is corruption.
pub(super) fn agent_state(
    agent_id: String,
    state: String,
    reason: Option<String>,
    at: i64,
) -> Result<AgentStateChange, CdrError> {
    let at = DateTime::from_timestamp_millis(at).ok_or_else(|| CdrError::Corrupt {
        call_id: format!("agent state of {agent_id}"),
        what: format!("time {at}"),
    })?;
    Ok(AgentStateChange {
        agent_id,
        state,
        at,
        reason,
    })
}

/// Cuts an over-long agent field at a character boundary.
pub(super) fn capped(s: &str) -> &str {
    match s.char_indices().nth(super::MAX_AGENT_FIELD) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

/// A runaway IVR loop or a caller mashing keys must not grow one row without bound.
const MAX_EVENTS: usize = 2000;
const MAX_PATH: usize = 1000;

/// Call detail records in the SQLite file shared with `auth`.
pub struct SqliteCdrStore {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteCdrStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteCdrStore").finish_non_exhaustive()
    }
}

impl SqliteCdrStore {
    /// Opens (or creates) the database and brings the `cdr` schema up to date.
    pub fn open(path: &Path) -> Result<Self, CdrError> {
        let mut conn = connect(path)?;
        migrate(&mut conn, "cdr", MIGRATIONS)?;
        Ok(SqliteCdrStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic elsewhere while holding the lock cannot leave SQLite half-written (an
        // unfinished transaction rolls back on drop), so the connection is still good.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One upsert for all three writes: `open` is what differs, and a finished row is never
    /// touched again so a late or repeated write cannot reopen or rewrite it.
    fn write(&self, rec: &CallRecord, open: bool, on_conflict: &str) -> Result<(), CdrError> {
        let ivr_path = serde_json::to_string(&capped_path(&rec.ivr_path))?;
        let events = serde_json::to_string(&stored_events(&rec.events))?;
        let sql = format!(
            "INSERT INTO cdr_calls (call_id, direction, caller, dialed, flow, started_at,
                 answered_at, ended_at, ivr_path, account_id, auth, queue, priority, enqueued_at,
                 agent_id, agent_answered_at, wait_ms, talk_ms, disposition, hangup_by, recording,
                 survey, events, open, last_progress_at, country)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)
             ON CONFLICT (call_id) {on_conflict}"
        );
        self.conn().prepare_cached(&sql)?.execute(params![
            rec.call_id,
            rec.direction.as_str(),
            rec.from,
            rec.to,
            rec.flow,
            ms(rec.started_at),
            rec.answered_at.map(ms),
            rec.ended_at.map(ms),
            ivr_path,
            rec.account_id,
            rec.auth.as_str(),
            rec.queue,
            rec.priority,
            rec.enqueued_at.map(ms),
            rec.agent_id,
            rec.agent_answered_at.map(ms),
            rec.wait_ms,
            rec.talk_ms,
            rec.disposition.map(Disposition::as_str),
            rec.hangup_by.map(HangupBy::as_str),
            rec.recording,
            rec.survey,
            events,
            open,
            ms(rec.last_progress_at()),
            rec.country,
        ])?;
        Ok(())
    }
}

const UPDATE_OPEN_ROW: &str = "DO UPDATE SET direction = excluded.direction,
     caller = excluded.caller, dialed = excluded.dialed, flow = excluded.flow,
     started_at = excluded.started_at, answered_at = excluded.answered_at,
     ended_at = excluded.ended_at, ivr_path = excluded.ivr_path,
     account_id = excluded.account_id, auth = excluded.auth, queue = excluded.queue,
     priority = excluded.priority, enqueued_at = excluded.enqueued_at,
     agent_id = excluded.agent_id, agent_answered_at = excluded.agent_answered_at,
     wait_ms = excluded.wait_ms, talk_ms = excluded.talk_ms,
     disposition = excluded.disposition, hangup_by = excluded.hangup_by,
     recording = excluded.recording, survey = excluded.survey, events = excluded.events,
     open = excluded.open, last_progress_at = excluded.last_progress_at,
     country = excluded.country
     WHERE cdr_calls.open = 1";

impl CdrStore for SqliteCdrStore {
    fn recording_deleted(&self, file: &str, at: DateTime<Utc>) -> Result<usize, CdrError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let rows = {
            let mut stmt =
                tx.prepare("SELECT call_id, events FROM cdr_calls WHERE recording = ?1")?;
            let rows = stmt
                .query_map(params![file], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        for (call_id, events) in &rows {
            let events = with_recording_deleted(events, file, at)?;
            tx.execute(
                "UPDATE cdr_calls SET recording = NULL, events = ?2 WHERE call_id = ?1",
                params![call_id, events],
            )?;
        }
        tx.commit()?;
        Ok(rows.len())
    }

    fn record_agent_state(&self, change: &AgentStateChange) -> Result<(), CdrError> {
        self.record_agent_states(std::slice::from_ref(change))
    }

    fn record_agent_states(&self, changes: &[AgentStateChange]) -> Result<(), CdrError> {
        let mut conn = self.conn();
        // One transaction per batch: a burst of state changes costs one fsync, not one each.
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO agent_states (agent_id, state, reason, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (agent_id, at, state) DO NOTHING",
            )?;
            for c in changes {
                stmt.execute(params![
                    capped(&c.agent_id),
                    capped(&c.state),
                    c.reason.as_deref().map(capped),
                    ms(c.at)
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn agent_states(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AgentStateChange>, CdrError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&agent_states_sql('?'))?;
        let limit = i64::try_from(super::REPORT_MAX_STATES).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![ms(from), ms(to), limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<Vec<(String, String, Option<String>, i64)>, _>>()?;
        rows.into_iter()
            .map(|(a, s, r, at)| agent_state(a, s, r, at))
            .collect()
    }

    fn begin(&self, rec: &CallRecord) -> Result<(), CdrError> {
        // A retried begin must not roll back progress an update already wrote.
        self.write(rec, true, "DO NOTHING")
    }

    fn update(&self, rec: &CallRecord) -> Result<(), CdrError> {
        self.write(rec, true, UPDATE_OPEN_ROW)
    }

    fn finish(&self, rec: &CallRecord) -> Result<(), CdrError> {
        self.write(rec, false, UPDATE_OPEN_ROW)
    }

    fn for_report(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CallRecord>, CdrError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS}, events FROM cdr_calls
             WHERE (enqueued_at >= ?1 AND enqueued_at < ?2) OR (started_at >= ?1 AND started_at < ?2)
             ORDER BY started_at, rowid
             LIMIT ?3"
        ))?;
        let limit = i64::try_from(super::REPORT_MAX_RECORDS).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![ms(from), ms(to), limit], |r| {
                Ok((RawRecord::from_row(r)?, r.get::<_, String>(EVENTS_AT)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (raw, events) in rows {
            let mut rec = raw.into_record()?;
            rec.events = serde_json::from_str(&events).map_err(|e| CdrError::Corrupt {
                call_id: rec.call_id.clone(),
                what: format!("events: {e}"),
            })?;
            out.push(rec);
        }
        Ok(out)
    }

    fn get(&self, call_id: &str) -> Result<Option<CallRecord>, CdrError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                &format!("SELECT {COLUMNS}, events FROM cdr_calls WHERE call_id = ?1"),
                [call_id],
                |r| Ok((RawRecord::from_row(r)?, r.get::<_, String>(EVENTS_AT)?)),
            )
            .optional()?;
        match row {
            None => Ok(None),
            Some((raw, events)) => {
                let mut rec = raw.into_record()?;
                rec.events = serde_json::from_str(&events).map_err(|e| CdrError::Corrupt {
                    call_id: rec.call_id.clone(),
                    what: format!("events: {e}"),
                })?;
                Ok(Some(rec))
            }
        }
    }

    fn list(&self, q: &CallQuery) -> Result<Vec<CallRecord>, CdrError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM cdr_calls
             WHERE (?1 IS NULL OR started_at >= ?1)
               AND (?2 IS NULL OR started_at < ?2)
               AND (?3 IS NULL OR queue = ?3)
             ORDER BY started_at DESC, rowid DESC
             LIMIT ?4"
        ))?;
        let limit = i64::try_from(q.effective_limit()).unwrap_or(i64::MAX);
        let raws = stmt
            .query_map(
                params![q.from.map(ms), q.to.map(ms), q.queue, limit],
                RawRecord::from_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawRecord::into_record).collect()
    }

    fn close_interrupted(&self, now: DateTime<Utc>) -> Result<usize, CdrError> {
        let n = self.conn().execute(
            "UPDATE cdr_calls
             SET open = 0, disposition = ?1, hangup_by = ?2,
                 ended_at = COALESCE(last_progress_at, ?3)
             WHERE open = 1",
            params![
                Disposition::Interrupted.as_str(),
                HangupBy::System.as_str(),
                ms(now)
            ],
        )?;
        if n > 0 {
            tracing::warn!(
                calls = n,
                "closed call records left open by a crash as interrupted"
            );
        }
        Ok(n)
    }

    fn ping(&self) -> Result<(), CdrError> {
        self.conn().query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }
}

pub(super) const COLUMNS: &str =
    "call_id, direction, caller, dialed, flow, started_at, answered_at, \
     ended_at, ivr_path, account_id, auth, queue, priority, enqueued_at, agent_id, \
     agent_answered_at, wait_ms, talk_ms, disposition, hangup_by, recording, survey, country";

/// Where `events` is when a query selects `{COLUMNS}, events`.
pub(super) const EVENTS_AT: usize = 23;

/// A row as SQLite holds it, before the strings are checked against the contract's enums.
pub(super) struct RawRecord {
    pub(super) call_id: String,
    pub(super) direction: String,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) flow: Option<String>,
    pub(super) started_at: i64,
    pub(super) answered_at: Option<i64>,
    pub(super) ended_at: Option<i64>,
    pub(super) ivr_path: String,
    pub(super) account_id: Option<String>,
    pub(super) auth: String,
    pub(super) queue: Option<String>,
    pub(super) priority: Option<i64>,
    pub(super) enqueued_at: Option<i64>,
    pub(super) agent_id: Option<String>,
    pub(super) agent_answered_at: Option<i64>,
    pub(super) wait_ms: Option<i64>,
    pub(super) talk_ms: Option<i64>,
    pub(super) disposition: Option<String>,
    pub(super) hangup_by: Option<String>,
    pub(super) recording: Option<String>,
    pub(super) survey: Option<i64>,
    pub(super) country: Option<String>,
}

impl RawRecord {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawRecord {
            call_id: r.get(0)?,
            direction: r.get(1)?,
            from: r.get(2)?,
            to: r.get(3)?,
            flow: r.get(4)?,
            started_at: r.get(5)?,
            answered_at: r.get(6)?,
            ended_at: r.get(7)?,
            ivr_path: r.get(8)?,
            account_id: r.get(9)?,
            auth: r.get(10)?,
            queue: r.get(11)?,
            priority: r.get(12)?,
            enqueued_at: r.get(13)?,
            agent_id: r.get(14)?,
            agent_answered_at: r.get(15)?,
            wait_ms: r.get(16)?,
            talk_ms: r.get(17)?,
            disposition: r.get(18)?,
            hangup_by: r.get(19)?,
            recording: r.get(20)?,
            survey: r.get(21)?,
            country: r.get(22)?,
        })
    }

    pub(super) fn into_record(self) -> Result<CallRecord, CdrError> {
        let id = self.call_id.clone();
        let corrupt = |what: String| CdrError::Corrupt {
            call_id: id.clone(),
            what,
        };
        let time =
            |v: i64| DateTime::from_timestamp_millis(v).ok_or_else(|| corrupt(format!("time {v}")));
        let opt_time = |v: Option<i64>| v.map(time).transpose();
        let parse = |field: &str, v: &str| corrupt(format!("{field} `{v}`"));
        Ok(CallRecord {
            direction: Direction::parse(&self.direction)
                .ok_or_else(|| parse("direction", &self.direction))?,
            started_at: time(self.started_at)?,
            answered_at: opt_time(self.answered_at)?,
            ended_at: opt_time(self.ended_at)?,
            ivr_path: serde_json::from_str(&self.ivr_path)
                .map_err(|e| corrupt(format!("ivr_path: {e}")))?,
            auth: AuthStatus::parse(&self.auth).ok_or_else(|| parse("auth", &self.auth))?,
            enqueued_at: opt_time(self.enqueued_at)?,
            agent_answered_at: opt_time(self.agent_answered_at)?,
            disposition: self
                .disposition
                .as_deref()
                .map(|d| Disposition::parse(d).ok_or_else(|| parse("disposition", d)))
                .transpose()?,
            hangup_by: self
                .hangup_by
                .as_deref()
                .map(|h| HangupBy::parse(h).ok_or_else(|| parse("hangup_by", h)))
                .transpose()?,
            call_id: self.call_id,
            from: self.from,
            to: self.to,
            flow: self.flow,
            account_id: self.account_id,
            queue: self.queue,
            priority: self.priority,
            agent_id: self.agent_id,
            wait_ms: self.wait_ms,
            talk_ms: self.talk_ms,
            recording: self.recording,
            survey: self.survey,
            country: self.country,
            events: Vec::new(),
        })
    }
}

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn capped_path(path: &[String]) -> &[String] {
    path.get(..MAX_PATH).unwrap_or(path)
}

/// A record's stored events (JSON) with a `recording_deleted` event for `file` added.
pub(super) fn with_recording_deleted(
    events: &str,
    file: &str,
    at: DateTime<Utc>,
) -> Result<String, CdrError> {
    let mut ev: Vec<CallEvent> = serde_json::from_str(events).unwrap_or_default();
    ev.push(CallEvent {
        at,
        kind: "recording_deleted".into(),
        detail: serde_json::json!({ "file": file, "reason": "retention" }),
    });
    Ok(serde_json::to_string(&stored_events(&ev))?)
}

/// Keeps the first `MAX_EVENTS` (the part of a call that explains it) plus a marker saying how
/// many were dropped, and scrubs anything that could be PIN digits from `pin` events.
pub(super) fn stored_events(events: &[CallEvent]) -> Vec<CallEvent> {
    let mut kept: Vec<CallEvent> = events.iter().take(MAX_EVENTS).map(scrub).collect();
    if let (Some(last), true) = (events.last(), events.len() > MAX_EVENTS) {
        kept.push(CallEvent {
            at: last.at,
            kind: "truncated".into(),
            detail: serde_json::json!({ "dropped": events.len() - MAX_EVENTS }),
        });
    }
    kept
}

fn scrub(e: &CallEvent) -> CallEvent {
    let mut e = e.clone();
    if e.kind == "pin" {
        match &mut e.detail {
            serde_json::Value::Object(map) => {
                for key in ["pin", "digits", "input", "dtmf"] {
                    map.remove(key);
                }
            }
            serde_json::Value::String(_) | serde_json::Value::Number(_) => {
                e.detail = serde_json::Value::Null;
            }
            _ => {}
        }
    }
    e
}

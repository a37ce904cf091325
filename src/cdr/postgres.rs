//! PostgreSQL: one database several switchboard nodes write to. Same semantics as the SQLite
//! store (times are BIGINT milliseconds since the epoch, UTC; the first finish wins), with a `node`
//! column so a node restarting closes only the calls *it* left open, never a live call of another.
//!
//! Blocking (`postgres` crate): it is called from the writer thread and `spawn_blocking`.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row};

use super::record::{CallQuery, CallRecord, Disposition, HangupBy};
use super::sqlite::{
    agent_state, agent_states_sql, capped, capped_path, ms, stored_events, with_recording_deleted,
    RawRecord, COLUMNS, EVENTS_AT,
};
use super::{AgentStateChange, CdrError, CdrStore, DatabaseUrl};

/// Any constant shared by every node: it serialises their migrations.
const MIGRATION_LOCK: i64 = 0x5357_4244_4344_5201;

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE cdr_calls (
         call_id TEXT PRIMARY KEY,
         direction TEXT NOT NULL,
         caller TEXT NOT NULL,
         dialed TEXT NOT NULL,
         flow TEXT,
         started_at BIGINT NOT NULL,
         answered_at BIGINT,
         ended_at BIGINT,
         ivr_path TEXT NOT NULL,
         account_id TEXT,
         auth TEXT NOT NULL,
         queue TEXT,
         priority BIGINT,
         enqueued_at BIGINT,
         agent_id TEXT,
         agent_answered_at BIGINT,
         wait_ms BIGINT,
         talk_ms BIGINT,
         disposition TEXT,
         hangup_by TEXT,
         recording TEXT,
         survey BIGINT,
         events TEXT NOT NULL,
         open BOOLEAN NOT NULL,
         last_progress_at BIGINT NOT NULL,
         node TEXT NOT NULL
     );
     CREATE INDEX cdr_calls_started ON cdr_calls (started_at);
     CREATE INDEX cdr_calls_enqueued ON cdr_calls (enqueued_at);
     CREATE INDEX cdr_calls_queue_started ON cdr_calls (queue, started_at);
     CREATE INDEX cdr_calls_open ON cdr_calls (node) WHERE open;",
    "CREATE TABLE agent_states (
         id BIGSERIAL PRIMARY KEY,
         agent_id TEXT NOT NULL,
         state TEXT NOT NULL,
         reason TEXT,
         at BIGINT NOT NULL,
         UNIQUE (agent_id, at, state)
     );
     CREATE INDEX agent_states_at ON agent_states (at);",
    // Version 3: the dialed number's country; older rows keep NULL.
    "ALTER TABLE cdr_calls ADD COLUMN country TEXT;",
];

/// Call records and agent states in PostgreSQL.
pub struct PgCdrStore {
    url: DatabaseUrl,
    node: String,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for PgCdrStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCdrStore")
            .field("url", &self.url)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Drop for PgCdrStore {
    fn drop(&mut self) {
        // The client's drop blocks on its own runtime, which panics on an async thread (the
        // last `Arc` may go away inside tokio): drop it on a plain thread instead.
        let client = self
            .client
            .get_mut()
            .map_or_else(|e| e.into_inner().take(), Option::take);
        if let Some(client) = client {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

impl PgCdrStore {
    /// Connects and brings the schema up to date. `node` names this switchboard among those
    /// sharing the database (see [`CdrStore::close_interrupted`]).
    pub fn connect(url: &DatabaseUrl, node: &str) -> Result<Self, CdrError> {
        let store = PgCdrStore {
            url: url.clone(),
            node: capped(node).to_string(),
            client: Mutex::new(None),
        };
        store.with(|c| migrate(c, "cdr", MIGRATIONS))?;
        Ok(store)
    }

    fn open_client(&self) -> Result<Client, CdrError> {
        let mut config: postgres::Config = self
            .url
            .expose()
            .parse()
            // The parser's message can quote the URL: say only that it is malformed.
            .map_err(|_| CdrError::Open(format!("cannot parse the database URL {}", self.url)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("switchboard");
        Ok(config.connect(NoTls)?)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Client>> {
        self.client.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the connection, (re)connecting first when there is none; a connection that
    /// broke is dropped and `f` is tried once more on a fresh one.
    fn with<T>(
        &self,
        mut f: impl FnMut(&mut Client) -> Result<T, CdrError>,
    ) -> Result<T, CdrError> {
        let mut guard = self.lock();
        for attempt in 0..2 {
            let client = match guard.take() {
                Some(c) if !c.is_closed() => c,
                _ => self.open_client()?,
            };
            let client = guard.insert(client);
            match f(client) {
                Err(e) if client.is_closed() && attempt == 0 => {
                    tracing::warn!(error = %e, "PostgreSQL connection lost; reconnecting");
                    *guard = None;
                }
                other => return other,
            }
        }
        Err(CdrError::Open("PostgreSQL connection lost".into()))
    }

    fn write(&self, rec: &CallRecord, open: bool, on_conflict: &str) -> Result<(), CdrError> {
        let ivr_path = serde_json::to_string(&capped_path(&rec.ivr_path))?;
        let events = serde_json::to_string(&stored_events(&rec.events))?;
        let sql = format!(
            "INSERT INTO cdr_calls (call_id, direction, caller, dialed, flow, started_at,
                 answered_at, ended_at, ivr_path, account_id, auth, queue, priority, enqueued_at,
                 agent_id, agent_answered_at, wait_ms, talk_ms, disposition, hangup_by, recording,
                 survey, events, open, last_progress_at, node, country)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)
             ON CONFLICT (call_id) {on_conflict}"
        );
        let params: [&(dyn ToSql + Sync); 27] = [
            &rec.call_id,
            &rec.direction.as_str(),
            &rec.from,
            &rec.to,
            &rec.flow,
            &ms(rec.started_at),
            &rec.answered_at.map(ms),
            &rec.ended_at.map(ms),
            &ivr_path,
            &rec.account_id,
            &rec.auth.as_str(),
            &rec.queue,
            &rec.priority,
            &rec.enqueued_at.map(ms),
            &rec.agent_id,
            &rec.agent_answered_at.map(ms),
            &rec.wait_ms,
            &rec.talk_ms,
            &rec.disposition.map(Disposition::as_str),
            &rec.hangup_by.map(HangupBy::as_str),
            &rec.recording,
            &rec.survey,
            &events,
            &open,
            &ms(rec.last_progress_at()),
            &self.node,
            &rec.country,
        ];
        self.with(|c| Ok(c.execute(sql.as_str(), &params).map(drop)?))
    }

    fn records(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        with_events: bool,
    ) -> Result<Vec<CallRecord>, CdrError> {
        let rows = self.with(|c| Ok(c.query(sql, params)?))?;
        rows.iter()
            .map(|r| {
                let mut rec = raw(r)?.into_record()?;
                if with_events {
                    let events: String = r.try_get(EVENTS_AT)?;
                    rec.events = serde_json::from_str(&events).map_err(|e| CdrError::Corrupt {
                        call_id: rec.call_id.clone(),
                        what: format!("events: {e}"),
                    })?;
                }
                Ok(rec)
            })
            .collect()
    }
}

/// Applies every step of `component` not yet recorded, in one transaction holding an advisory
/// lock, so nodes starting together apply each step exactly once.
fn migrate(client: &mut Client, component: &str, steps: &[&str]) -> Result<(), CdrError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             component TEXT NOT NULL,
             version BIGINT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
             PRIMARY KEY (component, version)
         )",
    )?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations WHERE component = $1",
            &[&component],
        )?
        .try_get(0)?;
    let known = i64::try_from(steps.len()).unwrap_or(i64::MAX);
    if current > known {
        return Err(CdrError::Open(format!(
            "the database has {component} schema version {current}, newer than this \
             switchboard knows ({known}); upgrade switchboard"
        )));
    }
    for (version, sql) in (1i64..)
        .zip(steps)
        .skip(usize::try_from(current).unwrap_or(0))
    {
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (component, version) VALUES ($1, $2)",
            &[&component, &version],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn raw(r: &Row) -> Result<RawRecord, postgres::Error> {
    Ok(RawRecord {
        call_id: r.try_get(0)?,
        direction: r.try_get(1)?,
        from: r.try_get(2)?,
        to: r.try_get(3)?,
        flow: r.try_get(4)?,
        started_at: r.try_get(5)?,
        answered_at: r.try_get(6)?,
        ended_at: r.try_get(7)?,
        ivr_path: r.try_get(8)?,
        account_id: r.try_get(9)?,
        auth: r.try_get(10)?,
        queue: r.try_get(11)?,
        priority: r.try_get(12)?,
        enqueued_at: r.try_get(13)?,
        agent_id: r.try_get(14)?,
        agent_answered_at: r.try_get(15)?,
        wait_ms: r.try_get(16)?,
        talk_ms: r.try_get(17)?,
        disposition: r.try_get(18)?,
        hangup_by: r.try_get(19)?,
        recording: r.try_get(20)?,
        survey: r.try_get(21)?,
        country: r.try_get(22)?,
    })
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
     WHERE cdr_calls.open";

impl CdrStore for PgCdrStore {
    fn begin(&self, rec: &CallRecord) -> Result<(), CdrError> {
        self.write(rec, true, "DO NOTHING")
    }

    fn update(&self, rec: &CallRecord) -> Result<(), CdrError> {
        self.write(rec, true, UPDATE_OPEN_ROW)
    }

    fn finish(&self, rec: &CallRecord) -> Result<(), CdrError> {
        self.write(rec, false, UPDATE_OPEN_ROW)
    }

    fn get(&self, call_id: &str) -> Result<Option<CallRecord>, CdrError> {
        let sql = format!("SELECT {COLUMNS}, events FROM cdr_calls WHERE call_id = $1");
        Ok(self.records(&sql, &[&call_id], true)?.into_iter().next())
    }

    fn list(&self, q: &CallQuery) -> Result<Vec<CallRecord>, CdrError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM cdr_calls
             WHERE ($1::BIGINT IS NULL OR started_at >= $1)
               AND ($2::BIGINT IS NULL OR started_at < $2)
               AND ($3::TEXT IS NULL OR queue = $3)
             ORDER BY started_at DESC, call_id DESC
             LIMIT $4"
        );
        let limit = i64::try_from(q.effective_limit()).unwrap_or(i64::MAX);
        let (from, to) = (q.from.map(ms), q.to.map(ms));
        self.records(&sql, &[&from, &to, &q.queue, &limit], false)
    }

    fn close_interrupted(&self, now: DateTime<Utc>) -> Result<usize, CdrError> {
        let n = self.with(|c| {
            Ok(c.execute(
                "UPDATE cdr_calls
                 SET open = FALSE, disposition = $1, hangup_by = $2,
                     ended_at = COALESCE(last_progress_at, $3)
                 WHERE open AND node = $4",
                &[
                    &Disposition::Interrupted.as_str(),
                    &HangupBy::System.as_str(),
                    &ms(now),
                    &self.node,
                ],
            )?)
        })?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn ping(&self) -> Result<(), CdrError> {
        self.with(|c| Ok(c.simple_query("SELECT 1").map(drop)?))
    }

    fn recording_deleted(&self, file: &str, at: DateTime<Utc>) -> Result<usize, CdrError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let rows = tx.query(
                "SELECT call_id, events FROM cdr_calls WHERE recording = $1 FOR UPDATE",
                &[&file],
            )?;
            for r in &rows {
                let call_id: String = r.try_get(0)?;
                let events: String = r.try_get(1)?;
                let events = with_recording_deleted(&events, file, at)?;
                tx.execute(
                    "UPDATE cdr_calls SET recording = NULL, events = $2 WHERE call_id = $1",
                    &[&call_id, &events],
                )?;
            }
            tx.commit()?;
            Ok(rows.len())
        })
    }

    fn for_report(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CallRecord>, CdrError> {
        let sql = format!(
            "SELECT {COLUMNS}, events FROM cdr_calls
             WHERE (enqueued_at >= $1 AND enqueued_at < $2) OR (started_at >= $1 AND started_at < $2)
             ORDER BY started_at, call_id
             LIMIT $3"
        );
        let limit = i64::try_from(super::REPORT_MAX_RECORDS).unwrap_or(i64::MAX);
        self.records(&sql, &[&ms(from), &ms(to), &limit], true)
    }

    fn record_agent_state(&self, change: &AgentStateChange) -> Result<(), CdrError> {
        self.record_agent_states(std::slice::from_ref(change))
    }

    fn record_agent_states(&self, changes: &[AgentStateChange]) -> Result<(), CdrError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let stmt = tx.prepare(
                "INSERT INTO agent_states (agent_id, state, reason, at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (agent_id, at, state) DO NOTHING",
            )?;
            for s in changes {
                tx.execute(
                    &stmt,
                    &[
                        &capped(&s.agent_id),
                        &capped(&s.state),
                        &s.reason.as_deref().map(capped),
                        &ms(s.at),
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn agent_states(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AgentStateChange>, CdrError> {
        let limit = i64::try_from(super::REPORT_MAX_STATES).unwrap_or(i64::MAX);
        let sql = agent_states_sql('$');
        let rows = self.with(|c| Ok(c.query(sql.as_str(), &[&ms(from), &ms(to), &limit])?))?;
        rows.iter()
            .map(|r| agent_state(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
            .collect()
    }
}

//! Queued callbacks: the SQLite table that makes them survive a restart, and the ACD's desk of
//! queued, dialling and retrying callbacks (the dial attempts themselves are `callback_task`).
//!
//! A callback's place in line is its `enqueued_at` (wall clock, since monotonic time does not
//! survive a restart). Ids embed that time zero-padded, so ids sort in enqueue order; callbacks
//! restored from before this run all enter the ACD at the clock's origin and are ordered by id.

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};
use serde::Serialize;

use std::sync::Arc;

use super::acd_task::AgentMsg;
use super::callback_task::{AgentSide, Outcome};
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
    #[error("no SIP trunk is configured (`trunk:`), so callbacks cannot be dialled")]
    NotEnabled,
    #[error("the SIP service is not up")]
    SipDown,
    #[error("the number cannot be dialled")]
    BadNumber,
    #[error("no RTP port is free: {0}")]
    Io(std::io::Error),
}

/// A request to queue a callback, from the API, the widget, or an IVR `callback` step.
#[derive(Debug)]
pub struct Submit {
    pub number: String,
    pub queue: String,
    pub note: String,
    pub priority: i64,
    /// The live call whose place the callback takes.
    pub keep_place_of: Option<String>,
    pub reply: Option<tokio::sync::oneshot::Sender<Result<Accepted, Refused>>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub id: String,
    pub queue: String,
    pub position: usize,
    pub estimated_wait_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("queue: no such queue")]
    UnknownQueue,
    #[error("the queue is full; try again later")]
    QueueFull,
    #[error("callbacks cannot be stored right now")]
    Store,
}

/// What the agent's console is told about a callback ringing them.
#[derive(Debug, Clone, Serialize)]
pub struct CallbackRing {
    pub id: String,
    pub number: String,
    pub note: String,
}

/// The ACD task's side of callbacks: the ones queued now, and the store behind them.
pub struct Desk {
    store: Option<CallbackStore>,
    queued: std::collections::HashMap<String, Callback>,
    /// Callbacks an agent accepted: id → agent.
    accepted: std::collections::HashMap<String, String>,
    /// Attempts in progress: id → their hang-up.
    live: std::collections::HashMap<String, tokio::sync::mpsc::UnboundedSender<()>>,
    /// Callbacks not reached, waiting out their retry delay before they re-enter the queue.
    retrying: std::collections::HashMap<String, Callback>,
}

impl Desk {
    /// Opens the store and puts every pending callback back in its queue, in its old place.
    pub fn start(shared: &Shared, acd: &mut crate::acd::Acd) -> Desk {
        let store = match CallbackStore::open(&shared.config.db_path()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "callbacks will not be stored");
                None
            }
        };
        let mut desk = Desk {
            store,
            queued: Default::default(),
            accepted: Default::default(),
            live: Default::default(),
            retrying: Default::default(),
        };
        let pending = desk
            .store
            .as_ref()
            .map(|s| s.pending().unwrap_or_default())
            .unwrap_or_default();
        let now = shared.clock.now();
        for cb in pending {
            match acd.callback_restore(now, request(&cb), arrival_of(shared, &cb)) {
                Ok(()) => {
                    desk.queued.insert(cb.id.clone(), cb);
                }
                Err(e) => {
                    tracing::warn!(id = %cb.id, queue = %cb.queue, error = %e, "a stored callback could not re-enter its queue")
                }
            }
        }
        if !desk.queued.is_empty() {
            tracing::info!(
                callbacks = desk.queued.len(),
                "callbacks restored to their queues"
            );
        }
        desk
    }

    pub fn is_callback(&self, id: &str) -> bool {
        self.queued.contains_key(id)
    }

    pub fn submit(&mut self, shared: &Shared, acd: &mut crate::acd::Acd, s: Submit) {
        let result = self.enqueue(shared, acd, &s);
        if let Some(reply) = s.reply {
            let _ = reply.send(result);
        }
    }

    fn enqueue(
        &mut self,
        shared: &Shared,
        acd: &mut crate::acd::Acd,
        s: &Submit,
    ) -> Result<Accepted, Refused> {
        let now = shared.clock.now();
        let wall = Utc::now();
        if acd.queue(&s.queue).is_none() {
            return Err(Refused::UnknownQueue);
        }
        let inherited = s.keep_place_of.as_deref().and_then(|c| acd.place_of(c));
        let enqueued_at = inherited.map_or(wall, |(arrival, _)| {
            wall - chrono::Duration::from_std(now.saturating_since(arrival)).unwrap_or_default()
        });
        let cb = Callback {
            id: new_id(enqueued_at),
            number: s.number.clone(),
            queue: s.queue.clone(),
            note: s.note.clone(),
            priority: inherited.map_or(s.priority, |(_, p)| p),
            enqueued_at,
            status: CallbackStatus::Queued,
            attempts: 0,
            from_call: s.keep_place_of.clone(),
        };
        // Room is checked before storing, so a refused callback leaves nothing behind.
        acd.find_room_for(&cb.queue)
            .map_err(|_| Refused::QueueFull)?;
        let store = self.store.as_ref().ok_or(Refused::Store)?;
        store.insert(&cb).map_err(|e| {
            tracing::error!(error = %e, "storing a callback");
            Refused::Store
        })?;
        match acd.callback_enqueue(now, request(&cb), s.keep_place_of.as_deref()) {
            Ok(()) => {}
            Err(e) => {
                let _ = store.set_status(&cb.id, CallbackStatus::Failed, wall);
                return Err(match e {
                    crate::acd::EnqueueError::UnknownQueue => Refused::UnknownQueue,
                    _ => Refused::QueueFull,
                });
            }
        }
        let (position, estimate) = acd.position(&cb.id).unwrap_or((1, None));
        tracing::info!(id = %cb.id, queue = %cb.queue, position, "callback queued");
        let accepted = Accepted {
            id: cb.id.clone(),
            queue: acd.call_queue(&cb.id).unwrap_or(&cb.queue).to_string(),
            position,
            estimated_wait_ms: estimate.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        };
        self.queued.insert(cb.id.clone(), cb);
        Ok(accepted)
    }

    /// The console message for a callback offered to an agent.
    pub fn ring(&self, id: &str) -> Option<(CallbackRing, DateTime<Utc>)> {
        self.queued.get(id).map(|cb| {
            (
                CallbackRing {
                    id: cb.id.clone(),
                    number: cb.number.clone(),
                    note: cb.note.clone(),
                },
                cb.enqueued_at,
            )
        })
    }

    /// The agent accepted: the callback is `dialing` and the customer is dialled through the
    /// trunk, to be bridged to `side`. Returns the message for the agent's console.
    pub fn accepted(
        &mut self,
        shared: &Arc<Shared>,
        id: &str,
        agent: &str,
        agent_tx: tokio::sync::mpsc::UnboundedSender<AgentMsg>,
        side: AgentSide,
    ) -> String {
        let Some(cb) = self.queued.get_mut(id) else {
            return "this callback is no longer queued".into();
        };
        cb.status = CallbackStatus::Dialing;
        cb.attempts += 1;
        if let Some(store) = &self.store {
            if let Err(e) = store.set_status(id, CallbackStatus::Dialing, Utc::now()) {
                tracing::error!(error = %e, "updating a callback");
            }
        }
        self.accepted.insert(id.to_string(), agent.to_string());
        match super::callback_task::spawn(shared, cb, agent, agent_tx, side) {
            Ok(hangup) => {
                self.live.insert(id.to_string(), hangup);
                format!("Dialing {}…", cb.number)
            }
            Err(e) => {
                tracing::warn!(id, error = %e, "callback accepted; it cannot be dialled");
                format!(
                    "Callback to {} accepted, but it cannot be dialled: {e}.",
                    cb.number
                )
            }
        }
    }

    /// The agent hung up during an attempt: the attempt ends and reports back. False when no
    /// attempt is running (the caller settles the agent itself).
    pub fn hang_up(&mut self, id: &str) -> bool {
        self.live.get(id).is_some_and(|h| h.send(()).is_ok())
    }

    /// An attempt ended. Reached: `completed`. Not reached: back in its queue at its original
    /// place after the next `widget.callback_retries` delay, or `failed` after the last one.
    pub fn finished(&mut self, shared: &Arc<Shared>, id: &str, outcome: Outcome) {
        self.live.remove(id);
        self.accepted.remove(id);
        let Some(mut cb) = self.queued.remove(id) else {
            return;
        };
        let delays = &shared.config.widget.callback_retries;
        let delay = match outcome {
            Outcome::Completed => None,
            Outcome::NotReached(_) => usize::try_from(cb.attempts)
                .ok()
                .and_then(|n| delays.get(n.saturating_sub(1)))
                .copied(),
        };
        let status = match (outcome, delay) {
            (Outcome::Completed, _) => CallbackStatus::Completed,
            (_, Some(_)) => CallbackStatus::Queued,
            (_, None) => CallbackStatus::Failed,
        };
        tracing::info!(
            id,
            attempt = cb.attempts,
            ?outcome,
            status = status.as_str(),
            "callback attempt ended"
        );
        if let Some(store) = &self.store {
            if let Err(e) = store.set_status(id, status, Utc::now()) {
                tracing::error!(error = %e, "updating a callback");
            }
        }
        let Some(delay) = delay else { return };
        cb.status = CallbackStatus::Queued;
        self.retrying.insert(id.to_string(), cb);
        if let Some(acd) = shared.acd.clone() {
            let id = id.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = acd.send(super::acd_task::AcdCmd::CallbackRetry { call_id: id });
            });
        }
    }

    /// A retry delay is over: the callback re-enters its queue where it first stood.
    pub fn retry(&mut self, shared: &Shared, acd: &mut crate::acd::Acd, id: &str) {
        let Some(cb) = self.retrying.remove(id) else {
            return;
        };
        let now = shared.clock.now();
        match acd.callback_restore(now, request(&cb), arrival_of(shared, &cb)) {
            Ok(()) => {
                self.queued.insert(cb.id.clone(), cb);
            }
            Err(e) => {
                tracing::warn!(id, error = %e, "a callback could not re-enter its queue");
                if let Some(store) = &self.store {
                    let _ = store.set_status(id, CallbackStatus::Failed, Utc::now());
                }
            }
        }
    }

    /// The agent who accepted this callback, if it is theirs.
    pub fn owner(&self, id: &str) -> Option<&str> {
        self.accepted.get(id).map(String::as_str)
    }

    /// The agent hung up an accepted callback that could not be dialled (no trunk): it is dropped
    /// from the desk and stays `dialing` in the store, so a restart offers it again.
    pub fn released(&mut self, id: &str) {
        self.accepted.remove(id);
        self.queued.remove(id);
    }

    /// The queue gave up on it (its `max_wait` with no overflow): recorded as failed.
    pub fn timed_out(&mut self, id: &str) {
        if self.queued.remove(id).is_some() {
            if let Some(store) = &self.store {
                let _ = store.set_status(id, CallbackStatus::Failed, Utc::now());
            }
        }
    }
}

/// An IVR caller asked for a callback: their number must pass the same checks as the web form
/// (a spoofed caller id must not make us dial a premium number). The ACD converts the call's
/// place; the answer is not awaited, since the caller is already hearing the goodbye.
pub fn from_call(
    shared: &Shared,
    ctl: &mut crate::call::CallController,
    call_id: &str,
    queue: String,
    number: &str,
) {
    let now = shared.clock.now();
    let prefixes = &shared.config.widget.callback_prefixes;
    let number = match crate::acd::callback::validate_request(number, "", prefixes) {
        Ok(n) => n,
        Err(e) => return ctl.callback_refused(now, &e.to_string()),
    };
    let Some(acd) = shared.acd.as_ref() else {
        return ctl.callback_refused(now, "queues are not configured");
    };
    let submit = Submit {
        number,
        queue,
        note: String::new(),
        priority: 0,
        keep_place_of: Some(call_id.to_string()),
        reply: None,
    };
    if acd.send(super::acd_task::AcdCmd::Callback(submit)).is_err() {
        ctl.callback_refused(now, "the queue service is stopped");
    }
}

/// Where a callback stood in line, on the monotonic clock, from its wall-clock enqueue time.
fn arrival_of(shared: &Shared, cb: &Callback) -> crate::time::Instant {
    let now = shared.clock.now();
    let ago = (Utc::now() - cb.enqueued_at).to_std().unwrap_or_default();
    crate::time::Instant::from_micros(
        now.as_micros()
            .saturating_sub(u64::try_from(ago.as_micros()).unwrap_or(u64::MAX)),
    )
}

fn request(cb: &Callback) -> crate::acd::CallRequest {
    crate::acd::CallRequest {
        call_id: cb.id.clone(),
        queue: cb.queue.clone(),
        priority: cb.priority,
        skills: Default::default(),
        timeout: None,
    }
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

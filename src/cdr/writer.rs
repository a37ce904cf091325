//! Keeps the database off the async threads: call tasks hand records (and the ACD its agent state
//! changes) to a channel and one std thread owning the store writes them in order.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::record::CallRecord;
use super::{AgentStateChange, CdrError, CdrStore};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Op {
    Begin,
    Update,
    Finish,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Begin => "begin",
            Op::Update => "update",
            Op::Finish => "finish",
        }
    }
}

enum Msg {
    Write(Op, Box<CallRecord>),
    AgentState(AgentStateChange),
    Flush(Sender<()>),
    /// Shutting down: one last try, then every record still waiting goes to the log.
    Close(Sender<()>),
}

/// Asynchronous front of a [`CdrStore`]. Sending never blocks; [`CdrWriter::flush`] and dropping
/// the writer wait until everything queued is written.
pub struct CdrWriter {
    tx: Option<Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<Stats>,
}

/// What the writer has been through, for /healthz and the logs.
#[derive(Debug, Default)]
struct Stats {
    /// Records waiting for the store to come back.
    pending: AtomicUsize,
    /// Writes the store refused (each retry counts).
    failures: AtomicU64,
    /// Records dropped because the waiting queue was full.
    lost: AtomicU64,
    /// Why the store refused the last write ([`CdrError::reason`]), until it takes one again.
    failing: Mutex<Option<&'static str>>,
}

impl Stats {
    fn failed(&self, error: &CdrError) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.reason());
    }

    fn written(&self) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn failing(&self) -> Option<&'static str> {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A snapshot of [`CdrWriter::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub pending: usize,
    pub failures: u64,
    pub lost: u64,
    /// Why the store is refusing writes (`disk_full`, `read_only`, `locked`, …); None while it
    /// takes them.
    pub failing: Option<&'static str>,
}

/// Writes kept in memory while the store is down (a waiting call is two: its begin and its
/// latest state); beyond this the oldest go, each with an error line carrying the whole record,
/// and `switchboard_cdr_records_lost_total` counts them.
const MAX_PENDING: usize = 100_000;
/// The longest wait between two attempts at a store that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl std::fmt::Debug for CdrWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdrWriter").finish_non_exhaustive()
    }
}

/// How hard the writer tries before giving a record up (with an error in the log).
#[derive(Copy, Clone, Debug)]
struct Retry {
    attempts: u32,
    backoff: Duration,
}

const DEFAULT_RETRY: Retry = Retry {
    attempts: 4,
    backoff: Duration::from_millis(100),
};

impl CdrWriter {
    pub fn spawn(store: Arc<dyn CdrStore>) -> CdrWriter {
        Self::spawn_with(store, DEFAULT_RETRY)
    }

    fn spawn_with(store: Arc<dyn CdrStore>, retry: Retry) -> CdrWriter {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(Stats::default());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("cdr-writer".into())
            .spawn(move || run(&*store, &rx, retry, &thread_stats));
        match thread {
            Ok(handle) => CdrWriter {
                tx: Some(tx),
                thread: Some(handle),
                stats,
            },
            Err(e) => {
                // Without a thread every record would vanish: say so loudly, once per write.
                tracing::error!(error = %e, "cannot start the CDR writer thread");
                CdrWriter {
                    tx: None,
                    thread: None,
                    stats,
                }
            }
        }
    }

    /// Records waiting for the store, failed writes, records lost to a full queue.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            pending: self.stats.pending.load(Ordering::Relaxed),
            failures: self.stats.failures.load(Ordering::Relaxed),
            lost: self.stats.lost.load(Ordering::Relaxed),
            failing: self.stats.failing(),
        }
    }

    pub fn begin(&self, rec: CallRecord) {
        self.send(Op::Begin, rec);
    }

    pub fn update(&self, rec: CallRecord) {
        self.send(Op::Update, rec);
    }

    pub fn finish(&self, rec: CallRecord) {
        self.send(Op::Finish, rec);
    }

    /// Queues an agent state change; changes that arrive together are written in one batch.
    pub fn agent_state(&self, change: AgentStateChange) {
        let sent = match &self.tx {
            Some(tx) => tx.send(Msg::AgentState(change)).is_ok(),
            None => false,
        };
        if !sent {
            tracing::error!("CDR writer is not running; agent state change lost");
        }
    }

    /// Blocks until everything queued before this call has been written, or — while the store
    /// is failing — has had one more try and is kept in memory for later.
    pub fn flush(&self) {
        self.wait_for(Msg::Flush);
    }

    /// At shutdown: like [`CdrWriter::flush`], but what the store still refuses is given up,
    /// each record in full in an error line (the process is about to exit, and with it the
    /// memory they wait in). Records sent afterwards are lost with an error.
    pub fn close(&self) {
        self.wait_for(Msg::Close);
    }

    fn wait_for(&self, msg: fn(Sender<()>) -> Msg) {
        let (ack_tx, ack_rx) = mpsc::channel();
        if let Some(tx) = &self.tx {
            if tx.send(msg(ack_tx)).is_ok() {
                // An Err means the thread is gone, and with it anything left to wait for.
                let _ = ack_rx.recv();
            }
        }
    }

    fn send(&self, op: Op, rec: CallRecord) {
        let sent = match &self.tx {
            Some(tx) => tx
                .send(Msg::Write(op, Box::new(rec)))
                .map_err(|e| match e.0 {
                    Msg::Write(_, rec) => rec.call_id,
                    Msg::AgentState(_) | Msg::Flush(_) | Msg::Close(_) => String::new(),
                }),
            None => Err(rec.call_id),
        };
        if let Err(call_id) = sent {
            tracing::error!(%call_id, op = op.name(), "CDR writer is not running; record lost");
        }
    }
}

impl Drop for CdrWriter {
    fn drop(&mut self) {
        // Closing the channel lets the thread drain what is queued and stop; joining makes
        // shutdown wait for the last records.
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("CDR writer thread panicked");
            }
        }
    }
}

fn run(store: &dyn CdrStore, rx: &Receiver<Msg>, retry: Retry, stats: &Stats) {
    let mut q = Pending {
        items: VecDeque::new(),
        popped: 0,
        latest: HashMap::new(),
        backoff: retry.backoff,
        min_backoff: retry.backoff,
        stats,
    };
    let mut closing = None;
    while closing.is_none() {
        let first = if q.items.is_empty() {
            match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            }
        } else {
            match rx.recv_timeout(q.backoff.max(Duration::from_millis(1))) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    q.retry(store);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        };
        // Drain whatever else is already queued so superseded updates can be skipped: a call
        // that sends an update per digit should not cost a write per digit when the disk is slow.
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let mut last_write: HashMap<&str, usize> = HashMap::new();
        for (i, msg) in batch.iter().enumerate() {
            if let Msg::Write(Op::Update | Op::Finish, rec) = msg {
                last_write.insert(rec.call_id.as_str(), i);
            }
        }
        let superseded: Vec<bool> = batch
            .iter()
            .enumerate()
            .map(|(i, msg)| match msg {
                Msg::Write(Op::Update, rec) => last_write.get(rec.call_id.as_str()) != Some(&i),
                _ => false,
            })
            .collect();
        let mut states = Vec::new();
        for (msg, skip) in batch.into_iter().zip(superseded) {
            match msg {
                Msg::Write(_, _) if skip => {}
                // Behind records already waiting, a new one waits too: a call's begin must
                // never land after its finish.
                Msg::Write(op, rec) if !q.items.is_empty() => q.push(Item::Call(op, rec)),
                Msg::Write(op, rec) => {
                    if !write_with_retry(store, op, &rec, retry, stats) {
                        q.push(Item::Call(op, rec));
                    }
                }
                Msg::AgentState(change) => states.push(change),
                Msg::Flush(ack) => {
                    q.retry(store);
                    // Everything queued before the flush must be written (or kept) before the ack.
                    write_states(store, &mut q, &mut states, retry);
                    let _ = ack.send(());
                }
                Msg::Close(ack) => closing = Some(ack),
            }
        }
        write_states(store, &mut q, &mut states, retry);
    }
    // Shutting down: one last try, then say exactly what could not be saved.
    q.retry(store);
    for item in &q.items {
        let (call_id, op) = item.describe();
        tracing::error!(%call_id, op, record = %item.dump(),
            "CDR store still failing at shutdown; record not saved (it is in this line)");
    }
    if let Some(ack) = closing {
        let _ = ack.send(());
    }
}

/// What waits for the store: a call's record, or a batch of agent state changes (the reports'
/// occupancy needs them as much as the calls).
enum Item {
    Call(Op, Box<CallRecord>),
    States(Vec<AgentStateChange>),
}

impl Item {
    fn write(&self, store: &dyn CdrStore) -> Result<(), CdrError> {
        match self {
            Item::Call(op, rec) => write_once(store, *op, rec),
            Item::States(changes) => store.record_agent_states(changes),
        }
    }

    fn describe(&self) -> (String, &'static str) {
        match self {
            Item::Call(op, rec) => (rec.call_id.clone(), op.name()),
            Item::States(changes) => (format!("{} changes", changes.len()), "agent_states"),
        }
    }

    /// The item as JSON for an error line, so a record that could not be saved is still in the
    /// log (with PIN digits scrubbed as in the database).
    fn dump(&self) -> String {
        let json = match self {
            Item::Call(_, rec) => {
                let mut rec = rec.as_ref().clone();
                rec.events = super::sqlite::stored_events(&rec.events);
                serde_json::to_string(&rec)
            }
            Item::States(changes) => serde_json::to_string(changes),
        };
        json.unwrap_or_else(|e| format!("(cannot encode: {e})"))
    }
}

/// Writes the batch of agent state changes, or keeps it with the records already waiting (behind
/// them, or after a few quick tries fail).
fn write_states(
    store: &dyn CdrStore,
    q: &mut Pending<'_>,
    states: &mut Vec<AgentStateChange>,
    retry: Retry,
) {
    if states.is_empty() {
        return;
    }
    let batch = std::mem::take(states);
    if !q.items.is_empty() || !write_states_with_retry(store, &batch, retry, q.stats) {
        q.push(Item::States(batch));
    }
}

/// Records the store refused, oldest first, retried with exponential back-off.
struct Pending<'a> {
    items: VecDeque<Item>,
    /// How many items have left the front (written or dropped): item number `n` is at
    /// `n - popped`.
    popped: u64,
    /// Per call, the number of its queued update, which a newer update or its finish replaces in
    /// place (each carries the whole record): a call waits as its begin and its latest state, so
    /// the bound counts calls, not digits pressed.
    latest: HashMap<String, u64>,
    backoff: Duration,
    min_backoff: Duration,
    stats: &'a Stats,
}

impl Pending<'_> {
    fn pop_front(&mut self) -> Option<Item> {
        let item = self.items.pop_front()?;
        if let Item::Call(_, rec) = &item {
            if self.latest.get(&rec.call_id) == Some(&self.popped) {
                self.latest.remove(&rec.call_id);
            }
        }
        self.popped += 1;
        Some(item)
    }

    /// Puts `item` in place of the call's queued update, if there is one; gives it back if not.
    fn supersede(&mut self, item: Item) -> Option<Item> {
        let Item::Call(Op::Update | Op::Finish, rec) = &item else {
            return Some(item);
        };
        let slot = self
            .latest
            .get(&rec.call_id)
            .and_then(|n| n.checked_sub(self.popped))
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.items.get_mut(i));
        match slot {
            Some(slot @ Item::Call(Op::Update, _)) => {
                *slot = item;
                None
            }
            _ => Some(item),
        }
    }

    fn push(&mut self, item: Item) {
        let Some(item) = self.supersede(item) else {
            return;
        };
        if self.items.len() >= MAX_PENDING {
            if let Some(old) = self.pop_front() {
                self.stats.lost.fetch_add(1, Ordering::Relaxed);
                let (call_id, op) = old.describe();
                tracing::error!(%call_id, op, queued = MAX_PENDING, record = %old.dump(),
                    "CDR store down too long: queue full, oldest record dropped (it is in this line)");
            }
        }
        if self.items.is_empty() {
            let (call_id, _) = item.describe();
            tracing::error!(%call_id, reason = self.stats.failing().unwrap_or("error"),
                "CDR store failing: keeping call records in memory and retrying");
        }
        if let Item::Call(Op::Update, rec) = &item {
            let n = self.popped + self.items.len() as u64;
            self.latest.insert(rec.call_id.clone(), n);
        }
        self.items.push_back(item);
        self.stats
            .pending
            .store(self.items.len(), Ordering::Relaxed);
    }

    /// Writes what it can, in order; stops at the first failure and backs off further.
    fn retry(&mut self, store: &dyn CdrStore) {
        let before = self.items.len();
        while let Some(item) = self.items.front() {
            match item.write(store) {
                Ok(()) => {
                    self.pop_front();
                }
                Err(error) => {
                    self.stats.failed(&error);
                    self.backoff = self
                        .backoff
                        .saturating_mul(2)
                        .clamp(self.min_backoff.max(Duration::from_millis(1)), MAX_BACKOFF);
                    tracing::warn!(%error, reason = error.reason(), pending = self.items.len(),
                        retry_in_ms = u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX),
                        "CDR store still failing");
                    break;
                }
            }
        }
        if self.items.is_empty() {
            self.backoff = self.min_backoff;
            self.stats.written();
            if before > 0 {
                tracing::info!(written = before, "CDR store back: queued records written");
            }
        }
        self.stats
            .pending
            .store(self.items.len(), Ordering::Relaxed);
    }
}

fn write_once(store: &dyn CdrStore, op: Op, rec: &CallRecord) -> Result<(), CdrError> {
    match op {
        Op::Begin => store.begin(rec),
        Op::Update => store.update(rec),
        Op::Finish => store.finish(rec),
    }
}

/// A few quick tries for a passing hiccup (a locked database); false hands the record to the
/// pending queue.
fn write_with_retry(
    store: &dyn CdrStore,
    op: Op,
    rec: &CallRecord,
    retry: Retry,
    stats: &Stats,
) -> bool {
    let attempts = retry.attempts.max(1);
    for attempt in 1..=attempts {
        match write_once(store, op, rec) {
            Ok(()) => {
                stats.written();
                return true;
            }
            Err(error) => {
                stats.failed(&error);
                tracing::warn!(call_id = %rec.call_id, op = op.name(), attempt, %error,
                    reason = error.reason(), "CDR write failed");
                if attempt < attempts {
                    std::thread::sleep(retry.backoff.saturating_mul(attempt));
                }
            }
        }
    }
    false
}

/// Like [`write_with_retry`] for a batch of agent state changes; false keeps them waiting.
fn write_states_with_retry(
    store: &dyn CdrStore,
    states: &[AgentStateChange],
    retry: Retry,
    stats: &Stats,
) -> bool {
    let attempts = retry.attempts.max(1);
    for attempt in 1..=attempts {
        match store.record_agent_states(states) {
            Ok(()) => {
                stats.written();
                return true;
            }
            Err(error) => {
                stats.failed(&error);
                tracing::warn!(changes = states.len(), attempt, %error,
                    reason = error.reason(), "agent state write failed");
                if attempt < attempts {
                    std::thread::sleep(retry.backoff.saturating_mul(attempt));
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdr::record::{CallQuery, Direction, Disposition};
    use crate::cdr::SqliteCdrStore;
    use chrono::{DateTime, Utc};
    use std::sync::Mutex;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap_or_default()
    }

    /// Fails the first `fail_first` writes, and every write while `down`; records what it
    /// was asked to write otherwise.
    struct Flaky {
        fail_first: Mutex<u32>,
        down: std::sync::atomic::AtomicBool,
        calls: Mutex<Vec<(Op, String, Vec<String>)>>,
        states: Mutex<Vec<String>>,
    }

    impl Flaky {
        fn new(fail_first: u32) -> Self {
            Flaky {
                fail_first: Mutex::new(fail_first),
                down: std::sync::atomic::AtomicBool::new(false),
                calls: Mutex::new(Vec::new()),
                states: Mutex::new(Vec::new()),
            }
        }
        fn set_down(&self, down: bool) {
            self.down.store(down, Ordering::SeqCst);
        }
        fn op(&self, op: Op, rec: &CallRecord) -> Result<(), CdrError> {
            let mut left = self.fail_first.lock().unwrap_or_else(|e| e.into_inner());
            if self.down.load(Ordering::SeqCst) {
                return Err(CdrError::Open("disk full".into()));
            }
            if *left > 0 {
                *left -= 1;
                return Err(CdrError::Corrupt {
                    call_id: rec.call_id.clone(),
                    what: "disk on fire".into(),
                });
            }
            self.calls.lock().unwrap_or_else(|e| e.into_inner()).push((
                op,
                rec.call_id.clone(),
                rec.ivr_path.clone(),
            ));
            Ok(())
        }
        fn calls(&self) -> Vec<(Op, String, Vec<String>)> {
            self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }
    }

    impl CdrStore for Flaky {
        fn begin(&self, rec: &CallRecord) -> Result<(), CdrError> {
            self.op(Op::Begin, rec)
        }
        fn update(&self, rec: &CallRecord) -> Result<(), CdrError> {
            self.op(Op::Update, rec)
        }
        fn finish(&self, rec: &CallRecord) -> Result<(), CdrError> {
            self.op(Op::Finish, rec)
        }
        fn get(&self, _: &str) -> Result<Option<CallRecord>, CdrError> {
            Ok(None)
        }
        fn list(&self, _: &CallQuery) -> Result<Vec<CallRecord>, CdrError> {
            Ok(Vec::new())
        }
        fn close_interrupted(&self, _: DateTime<Utc>) -> Result<usize, CdrError> {
            Ok(0)
        }
        fn for_report(
            &self,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
        ) -> Result<Vec<CallRecord>, CdrError> {
            Ok(Vec::new())
        }
        fn ping(&self) -> Result<(), CdrError> {
            Ok(())
        }
        fn recording_deleted(&self, _: &str, _: DateTime<Utc>) -> Result<usize, CdrError> {
            Ok(0)
        }
        fn record_agent_state(&self, c: &AgentStateChange) -> Result<(), CdrError> {
            let mut left = self.fail_first.lock().unwrap_or_else(|e| e.into_inner());
            if self.down.load(Ordering::SeqCst) {
                return Err(CdrError::Open("disk full".into()));
            }
            if *left > 0 {
                *left -= 1;
                return Err(CdrError::Open("disk on fire".into()));
            }
            self.states
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(c.state.clone());
            Ok(())
        }
        fn agent_states(
            &self,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
        ) -> Result<Vec<AgentStateChange>, CdrError> {
            Ok(Vec::new())
        }
    }

    const NO_WAIT: Retry = Retry {
        attempts: 3,
        backoff: Duration::ZERO,
    };

    #[test]
    fn transient_failures_are_retried_not_dropped() {
        let store = Arc::new(Flaky::new(2));
        let writer = CdrWriter::spawn_with(store.clone(), NO_WAIT);
        writer.finish(CallRecord::new("c1", Direction::Inbound, "a", "b", t(0)));
        writer.flush();
        assert_eq!(store.calls().len(), 1, "third try succeeds");
    }

    #[test]
    fn a_record_the_store_refuses_waits_and_lands_once_the_store_is_back() {
        let store = Arc::new(Flaky::new(0));
        let writer = CdrWriter::spawn_with(store.clone(), NO_WAIT);
        store.set_down(true);
        writer.begin(CallRecord::new("a", Direction::Inbound, "x", "y", t(0)));
        writer.finish(CallRecord::new("a", Direction::Inbound, "x", "y", t(0)));
        writer.finish(CallRecord::new("b", Direction::Inbound, "x", "y", t(0)));
        writer.flush();
        assert!(
            store.calls().is_empty(),
            "nothing can be written while down"
        );
        let s = writer.stats();
        assert_eq!(s.pending, 3, "all three kept, none dropped");
        assert!(s.failures >= 3);
        store.set_down(false);
        writer.flush();
        let got: Vec<(Op, String)> = store.calls().into_iter().map(|c| (c.0, c.1)).collect();
        assert_eq!(
            got,
            vec![
                (Op::Begin, "a".to_string()),
                (Op::Finish, "a".to_string()),
                (Op::Finish, "b".to_string())
            ],
            "each record once, in the order the calls produced them"
        );
        assert_eq!(writer.stats().pending, 0);
        assert_eq!(writer.stats().lost, 0);
    }

    #[test]
    fn the_writer_retries_on_its_own_without_a_flush() {
        let store = Arc::new(Flaky::new(0));
        let writer = CdrWriter::spawn_with(store.clone(), NO_WAIT);
        store.set_down(true);
        writer.finish(CallRecord::new("late", Direction::Inbound, "x", "y", t(0)));
        writer.flush();
        store.set_down(false);
        // The back-off timer, not a flush or a new record, must bring the record in.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.calls().is_empty() && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(store.calls().len(), 1);
    }

    #[test]
    fn dropping_the_writer_makes_a_last_attempt() {
        let store = Arc::new(Flaky::new(0));
        let writer = CdrWriter::spawn_with(store.clone(), NO_WAIT);
        store.set_down(true);
        writer.finish(CallRecord::new("s", Direction::Inbound, "x", "y", t(0)));
        writer.flush();
        store.set_down(false);
        drop(writer);
        assert_eq!(store.calls().len(), 1);
    }

    #[test]
    fn closing_writes_what_it_can_and_does_not_wait_for_a_store_that_is_down() {
        let store = Arc::new(Flaky::new(0));
        let writer = CdrWriter::spawn_with(store.clone(), NO_WAIT);
        writer.finish(CallRecord::new("ok", Direction::Inbound, "x", "y", t(0)));
        writer.flush();
        store.set_down(true);
        writer.finish(CallRecord::new("late", Direction::Inbound, "x", "y", t(0)));
        writer.close();
        assert_eq!(
            writer.stats().pending,
            1,
            "still refused, given up to the log"
        );
        assert_eq!(writer.stats().failing, Some("unavailable"));
        store.set_down(false);
        drop(writer);
        let got: Vec<String> = store.calls().into_iter().map(|c| c.1).collect();
        assert_eq!(got, vec!["ok".to_string()]);
    }

    #[test]
    fn a_waiting_call_keeps_its_begin_and_only_its_latest_state() {
        let store = Arc::new(Flaky::new(0));
        let writer = CdrWriter::spawn_with(store.clone(), NO_WAIT);
        store.set_down(true);
        let mut rec = CallRecord::new("a", Direction::Inbound, "x", "y", t(0));
        writer.begin(rec.clone());
        for step in ["welcome", "menu", "billing"] {
            writer.flush(); // one batch each, so the batch's own skipping does not hide it
            rec.ivr_path.push(step.into());
            writer.update(rec.clone());
            writer.finish(CallRecord::new(step, Direction::Inbound, "x", "y", t(0)));
        }
        writer.flush();
        writer.finish(rec.clone());
        writer.flush();
        assert_eq!(
            writer.stats().pending,
            5,
            "a's begin and finish, three others"
        );
        store.set_down(false);
        writer.flush();
        let got: Vec<(Op, String, usize)> = store
            .calls()
            .into_iter()
            .map(|(op, id, path)| (op, id, path.len()))
            .collect();
        let want = [
            (Op::Begin, "a", 0),
            (Op::Finish, "a", 3),
            (Op::Finish, "welcome", 0),
            (Op::Finish, "menu", 0),
            (Op::Finish, "billing", 0),
        ];
        let want: Vec<(Op, String, usize)> = want
            .iter()
            .map(|(o, i, n)| (*o, i.to_string(), *n))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_waiting_queue_is_bounded_and_counts_what_it_drops() {
        let stats = Stats::default();
        let mut q = Pending {
            items: VecDeque::new(),
            popped: 0,
            latest: HashMap::new(),
            backoff: Duration::ZERO,
            min_backoff: Duration::ZERO,
            stats: &stats,
        };
        for i in 0..MAX_PENDING + 2 {
            let rec = CallRecord::new(format!("c{i}"), Direction::Inbound, "x", "y", t(0));
            q.push(Item::Call(Op::Finish, Box::new(rec)));
        }
        assert_eq!(q.items.len(), MAX_PENDING);
        assert_eq!(stats.lost.load(Ordering::Relaxed), 2);
        assert_eq!(
            q.items.front().map(|x| x.describe().0),
            Some("c2".to_string())
        );
    }

    #[test]
    fn writes_in_order_and_the_last_state_of_a_call_wins() {
        let dir = tempfile::tempdir().ok();
        let Some(path) = dir.as_ref().map(|d| d.path().join("data/switchboard.db")) else {
            panic!("no tempdir");
        };
        let store = SqliteCdrStore::open(&path).map(Arc::new);
        let Ok(store) = store else {
            panic!("open failed")
        };
        let writer = CdrWriter::spawn(store.clone());
        let mut rec = CallRecord::new("w1", Direction::Inbound, "+551", "+552", t(1_000));
        writer.begin(rec.clone());
        for step in ["welcome", "identify", "menu"] {
            rec.ivr_path.push(step.into());
            writer.update(rec.clone());
        }
        rec.disposition = Some(Disposition::Completed);
        rec.ended_at = Some(t(9_000));
        writer.finish(rec.clone());
        drop(writer); // dropping waits for the queue, like a shutdown
        let got = store.get("w1").ok().flatten();
        assert_eq!(got, Some(rec));
    }

    #[test]
    fn superseded_updates_are_skipped_but_begin_and_finish_are_not() {
        // The thread is started only after everything is queued, so it sees one batch.
        let (tx, rx) = mpsc::channel();
        let mut rec = CallRecord::new("c", Direction::Inbound, "a", "b", t(0));
        let _ = tx.send(Msg::Write(Op::Begin, Box::new(rec.clone())));
        for step in ["a", "b", "c"] {
            rec.ivr_path.push(step.into());
            let _ = tx.send(Msg::Write(Op::Update, Box::new(rec.clone())));
        }
        let other = CallRecord::new("d", Direction::Inbound, "a", "b", t(0));
        let _ = tx.send(Msg::Write(Op::Update, Box::new(other)));
        drop(tx);
        let store = Flaky::new(0);
        run(&store, &rx, NO_WAIT, &Stats::default());
        let calls = store.calls();
        let summary: Vec<(Op, &str, usize)> = calls
            .iter()
            .map(|(op, id, path)| (*op, id.as_str(), path.len()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (Op::Begin, "c", 0),
                (Op::Update, "c", 3),
                (Op::Update, "d", 0)
            ]
        );
    }

    fn change(agent: &str, state: &str, at: i64) -> AgentStateChange {
        AgentStateChange {
            agent_id: agent.into(),
            state: state.into(),
            at: t(at),
            reason: Some("test".into()),
        }
    }

    #[test]
    fn agent_states_are_written_in_order_and_retried() {
        let store = Arc::new(Flaky::new(1));
        let writer = CdrWriter::spawn_with(store.clone(), NO_WAIT);
        for (i, s) in ["available", "ringing", "on_call", "wrap_up"]
            .iter()
            .enumerate()
        {
            writer.agent_state(change("ana", s, i64::try_from(i).unwrap_or(0)));
        }
        writer.flush();
        let got = store
            .states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        assert_eq!(got, vec!["available", "ringing", "on_call", "wrap_up"]);
    }

    #[test]
    fn agent_state_changes_wait_for_the_store_like_records() {
        let store = Arc::new(Flaky::new(0));
        let writer = CdrWriter::spawn_with(store.clone(), NO_WAIT);
        store.set_down(true);
        writer.finish(CallRecord::new("c", Direction::Inbound, "x", "y", t(0)));
        writer.agent_state(change("ana", "available", 1));
        writer.flush();
        writer.agent_state(change("ana", "on_call", 2));
        writer.flush();
        let states = || {
            store
                .states
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        };
        assert!(states().is_empty());
        assert_eq!(
            writer.stats().pending,
            3,
            "the record and both batches wait"
        );
        store.set_down(false);
        writer.flush();
        assert_eq!(states(), vec!["available", "on_call"]);
        assert_eq!(store.calls().len(), 1);
        assert_eq!(writer.stats().pending, 0);
        assert_eq!(writer.stats().lost, 0);
    }

    #[test]
    fn agent_states_reach_sqlite_through_the_writer() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = SqliteCdrStore::open(&dir.path().join("s.db"))
            .map(Arc::new)
            .unwrap_or_else(|e| panic!("{e}"));
        let writer = CdrWriter::spawn(store.clone());
        writer.agent_state(change("ana", "available", 1_000));
        writer.agent_state(change("ana", "on_call", 2_000));
        drop(writer);
        let got = store.agent_states(t(0), t(10_000)).unwrap_or_default();
        assert_eq!(
            got,
            vec![
                change("ana", "available", 1_000),
                change("ana", "on_call", 2_000)
            ]
        );
    }
}

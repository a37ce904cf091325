//! Store tests against a real SQLite file in a temporary directory, and against PostgreSQL when
//! `SWITCHBOARD_TEST_PG` is set.

use super::*;
use chrono::TimeZone;
use serde_json::json;

fn t(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// 2026-11-23T13:00:00.000Z
const BASE: i64 = 1_795_438_800_000;

use super::test_db::{each_backend, Db};

fn open(db: &Db) -> std::sync::Arc<dyn CdrStore> {
    db.open()
}

fn full_record() -> CallRecord {
    CallRecord {
        call_id: "a84b4c76e66710@pc33.example".into(),
        direction: Direction::Callback,
        from: "+5511987650000".into(),
        to: "+551130001000".into(),
        country: Some("BR".into()),
        flow: Some("merchant-support".into()),
        started_at: t(BASE + 123),
        answered_at: Some(t(BASE + 400)),
        ended_at: Some(t(BASE + 95_000)),
        ivr_path: vec!["welcome".into(), "identify".into(), "menu".into()],
        account_id: Some("M-1001".into()),
        auth: AuthStatus::Ok,
        queue: Some("billing".into()),
        priority: Some(10),
        enqueued_at: Some(t(BASE + 20_000)),
        agent_id: Some("agent-7".into()),
        agent_answered_at: Some(t(BASE + 35_500)),
        wait_ms: Some(15_500),
        talk_ms: Some(59_500),
        disposition: Some(Disposition::Transferred),
        hangup_by: Some(HangupBy::Agent),
        recording: Some("recordings/a84b.wav".into()),
        survey: Some(4),
        events: vec![
            CallEvent {
                at: t(BASE + 500),
                kind: "step".into(),
                detail: json!({ "step": "welcome" }),
            },
            CallEvent {
                at: t(BASE + 9_000),
                kind: "queue".into(),
                detail: json!({ "queue": "billing", "position": 3 }),
            },
        ],
    }
}

#[test]
fn begin_update_finish_round_trips_every_field() {
    each_backend(
        "begin_update_finish_round_trips_every_field",
        begin_update_finish_round_trips_every_field_on,
    );
}

fn begin_update_finish_round_trips_every_field_on(db: &Db) {
    let store = open(db);
    let done = full_record();

    let mut start = CallRecord::new(
        done.call_id.clone(),
        done.direction,
        done.from.clone(),
        done.to.clone(),
        done.started_at,
    );
    store.begin(&start).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.get(&done.call_id).ok().flatten(), Some(start.clone()));

    start.ivr_path.push("welcome".into());
    start.answered_at = done.answered_at;
    store.update(&start).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store.get(&done.call_id).ok().flatten().map(|r| r.ivr_path),
        Some(vec!["welcome".to_string()])
    );

    store.finish(&done).unwrap_or_else(|e| panic!("{e}"));
    drop(store);
    // Reopening proves it reached the file, not just a cache.
    let store = open(db);
    assert_eq!(store.get(&done.call_id).ok().flatten(), Some(done.clone()));
    assert_eq!(store.get("no-such-call").ok().flatten(), None);
}

#[test]
fn a_crashed_call_is_closed_as_interrupted_exactly_once() {
    each_backend(
        "a_crashed_call_is_closed_as_interrupted_exactly_once",
        a_crashed_call_is_closed_as_interrupted_exactly_once_on,
    );
}

fn a_crashed_call_is_closed_as_interrupted_exactly_once_on(db: &Db) {
    let store = open(db);
    let mut rec = CallRecord::new("crashed", Direction::Inbound, "+1", "+2", t(BASE));
    store.begin(&rec).unwrap_or_else(|e| panic!("{e}"));
    rec.ivr_path.push("menu".into());
    rec.events.push(CallEvent {
        at: t(BASE + 7_250),
        kind: "digit".into(),
        detail: json!("2"),
    });
    store.update(&rec).unwrap_or_else(|e| panic!("{e}"));
    let finished = {
        let mut r = CallRecord::new("fine", Direction::Inbound, "+1", "+2", t(BASE));
        r.disposition = Some(Disposition::Completed);
        r.ended_at = Some(t(BASE + 1_000));
        r
    };
    store.begin(&finished).unwrap_or_else(|e| panic!("{e}"));
    store.finish(&finished).unwrap_or_else(|e| panic!("{e}"));
    drop(store); // the crash

    let store = open(db);
    let now = t(BASE + 3_600_000);
    assert_eq!(store.close_interrupted(now).ok(), Some(1));
    assert_eq!(store.close_interrupted(now).ok(), Some(0), "only once");

    let got = store.get("crashed").ok().flatten();
    let got = got.unwrap_or_else(|| panic!("record missing"));
    assert_eq!(got.disposition, Some(Disposition::Interrupted));
    assert_eq!(got.hangup_by, Some(HangupBy::System));
    assert_eq!(
        got.ended_at,
        Some(t(BASE + 7_250)),
        "last progress, not restart time"
    );
    assert_eq!(got.ivr_path, vec!["menu".to_string()]);
    assert_eq!(store.get("fine").ok().flatten(), Some(finished));

    // The real finish arriving late cannot turn the closed record back into something else.
    let mut late = rec.clone();
    late.disposition = Some(Disposition::Completed);
    store.finish(&late).unwrap_or_else(|e| panic!("{e}"));
    let again = store
        .get("crashed")
        .ok()
        .flatten()
        .and_then(|r| r.disposition);
    assert_eq!(again, Some(Disposition::Interrupted));
}

#[test]
fn finish_is_idempotent_and_later_writes_do_not_reopen() {
    each_backend(
        "finish_is_idempotent_and_later_writes_do_not_reopen",
        finish_is_idempotent_and_later_writes_do_not_reopen_on,
    );
}

fn finish_is_idempotent_and_later_writes_do_not_reopen_on(db: &Db) {
    let store = open(db);
    let mut rec = CallRecord::new("c", Direction::Outbound, "+1", "+2", t(BASE));
    rec.disposition = Some(Disposition::Abandoned);
    store.finish(&rec).unwrap_or_else(|e| panic!("{e}")); // finish without begin still records
    let mut other = rec.clone();
    other.disposition = Some(Disposition::Completed);
    store.finish(&other).unwrap_or_else(|e| panic!("{e}"));
    store.update(&other).unwrap_or_else(|e| panic!("{e}"));
    store.begin(&other).unwrap_or_else(|e| panic!("{e}"));

    let all = store.list(&CallQuery::default()).unwrap_or_default();
    assert_eq!(all.len(), 1, "one record per call");
    assert_eq!(
        all.first().and_then(|r| r.disposition),
        Some(Disposition::Abandoned)
    );
    assert_eq!(store.close_interrupted(t(BASE)).ok(), Some(0));
}

#[test]
fn list_is_newest_first_and_filters_by_time_and_queue() {
    each_backend(
        "list_is_newest_first_and_filters_by_time_and_queue",
        list_is_newest_first_and_filters_by_time_and_queue_on,
    );
}

fn list_is_newest_first_and_filters_by_time_and_queue_on(db: &Db) {
    let store = open(db);
    for (i, queue) in ["sales", "billing", "sales", "billing", "sales"]
        .iter()
        .enumerate()
    {
        let i = i64::try_from(i).unwrap_or_default();
        let mut r = CallRecord::new(
            format!("c{i}"),
            Direction::Inbound,
            "+1",
            "+2",
            t(BASE + i * 60_000),
        );
        r.queue = Some((*queue).to_string());
        r.events.push(CallEvent {
            at: r.started_at,
            kind: "step".into(),
            detail: json!({}),
        });
        store.finish(&r).unwrap_or_else(|e| panic!("{e}"));
    }
    let ids = |q: CallQuery| -> Vec<String> {
        store
            .list(&q)
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.call_id)
            .collect()
    };
    assert_eq!(ids(CallQuery::default()), ["c4", "c3", "c2", "c1", "c0"]);
    let window = CallQuery {
        from: Some(t(BASE + 60_000)),
        to: Some(t(BASE + 180_000)),
        ..CallQuery::default()
    };
    assert_eq!(ids(window), ["c2", "c1"], "from inclusive, to exclusive");
    let sales = CallQuery {
        queue: Some("sales".into()),
        limit: 2,
        ..CallQuery::default()
    };
    assert_eq!(ids(sales), ["c4", "c2"]);
    let listed = store.list(&CallQuery::default()).unwrap_or_default();
    assert!(
        listed.iter().all(|r| r.events.is_empty()),
        "lists leave events out"
    );
}

#[test]
fn pin_events_never_keep_digits() {
    each_backend(
        "pin_events_never_keep_digits",
        pin_events_never_keep_digits_on,
    );
}

fn pin_events_never_keep_digits_on(db: &Db) {
    let store = open(db);
    let mut rec = CallRecord::new("p", Direction::Inbound, "+1", "+2", t(BASE));
    rec.events.push(CallEvent {
        at: t(BASE),
        kind: "pin".into(),
        detail: json!({ "result": "invalid", "pin": "4321", "digits": "4321#" }),
    });
    store.finish(&rec).unwrap_or_else(|e| panic!("{e}"));
    let got = store
        .get("p")
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("missing"));
    let json = serde_json::to_string(&got).unwrap_or_default();
    assert!(!json.contains("4321"), "{json}");
    assert!(json.contains("invalid"));
}

#[test]
fn runaway_event_lists_are_capped_with_a_marker() {
    each_backend(
        "runaway_event_lists_are_capped_with_a_marker",
        runaway_event_lists_are_capped_with_a_marker_on,
    );
}

fn runaway_event_lists_are_capped_with_a_marker_on(db: &Db) {
    let store = open(db);
    let mut rec = CallRecord::new("loop", Direction::Inbound, "+1", "+2", t(BASE));
    rec.events = (0..2_500)
        .map(|i| CallEvent {
            at: t(BASE + i),
            kind: "digit".into(),
            detail: json!("1"),
        })
        .collect();
    store.finish(&rec).unwrap_or_else(|e| panic!("{e}"));
    let got = store
        .get("loop")
        .ok()
        .flatten()
        .map(|r| r.events)
        .unwrap_or_default();
    assert_eq!(got.len(), 2_001);
    assert_eq!(got.last().map(|e| e.kind.as_str()), Some("truncated"));
    assert_eq!(
        got.last().map(|e| e.detail.clone()),
        Some(json!({ "dropped": 500 }))
    );
}

#[test]
fn migrations_are_recorded_and_a_newer_schema_is_refused() {
    let db = Db::sqlite();
    drop(open(&db));
    drop(open(&db)); // a second open must not re-apply a version
    let Db::Sqlite { path, .. } = &db else {
        return;
    };
    let conn = rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("{e}"));
    let versions: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM schema_migrations WHERE component = 'cdr'",
            [],
            |r| r.get(0),
        )
        .unwrap_or_default();
    assert_eq!(versions, 3);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap_or_default();
    assert_eq!(mode, "wal");
    conn.execute(
        "INSERT INTO schema_migrations (component, version) VALUES ('cdr', 99)",
        [],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    drop(conn);
    let err = SqliteCdrStore::open(path).err().map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("newer")));
}

#[test]
fn ping_answers_on_a_live_store() {
    each_backend(
        "ping_answers_on_a_live_store",
        ping_answers_on_a_live_store_on,
    );
}

fn ping_answers_on_a_live_store_on(db: &Db) {
    assert!(open(db).ping().is_ok());
}

#[test]
fn retention_unlinks_a_deleted_recording_and_says_so_on_the_record() {
    each_backend(
        "retention_unlinks_a_deleted_recording_and_says_so_on_the_record",
        retention_unlinks_a_deleted_recording_and_says_so_on_the_record_on,
    );
}

fn retention_unlinks_a_deleted_recording_and_says_so_on_the_record_on(db: &Db) {
    let store = open(db);
    let rec = full_record();
    let file = rec.recording.clone().unwrap_or_default();
    store.finish(&rec).unwrap_or_else(|e| panic!("{e}"));
    let mut other = CallRecord::new("other", Direction::Inbound, "+1", "+2", t(BASE));
    other.recording = Some("recordings/other.wav".into());
    store.finish(&other).unwrap_or_else(|e| panic!("{e}"));

    let changed = store
        .recording_deleted(&file, t(BASE + 86_400_000))
        .unwrap_or_else(|e| panic!("{}: {e}", db.name()));
    assert_eq!(changed, 1, "{}", db.name());
    let got = store
        .get(&rec.call_id)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("{}: record gone", db.name()));
    assert_eq!(got.recording, None, "{}", db.name());
    let ev = got
        .events
        .last()
        .map(|e| (e.kind.clone(), e.detail.clone()));
    assert_eq!(
        ev,
        Some((
            "recording_deleted".to_string(),
            json!({"file": file, "reason": "retention"})
        )),
        "{}",
        db.name()
    );
    assert_eq!(got.events.len(), rec.events.len() + 1, "{}", db.name());
    let untouched = store.get("other").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        untouched.and_then(|r| r.recording).as_deref(),
        Some("recordings/other.wav")
    );
    assert_eq!(store.recording_deleted(&file, t(BASE)).ok(), Some(0));
}

#[test]
fn store_faults_are_named_by_what_an_operator_can_do_about_them() {
    use rusqlite::ffi;
    let sqlite = |code| CdrError::Db(rusqlite::Error::SqliteFailure(ffi::Error::new(code), None));
    for (code, reason) in [
        (ffi::SQLITE_FULL, "disk_full"),
        (ffi::SQLITE_READONLY, "read_only"),
        (ffi::SQLITE_BUSY, "locked"),
        (ffi::SQLITE_LOCKED, "locked"),
        (ffi::SQLITE_IOERR_WRITE, "io_error"),
        (ffi::SQLITE_IOERR_SHMSIZE, "io_error"),
        (ffi::SQLITE_CANTOPEN, "io_error"),
        (ffi::SQLITE_CONSTRAINT, "error"),
    ] {
        assert_eq!(sqlite(code).reason(), reason, "{code}");
        assert!(CdrError::REASONS.contains(&reason));
    }
    assert_eq!(
        CdrError::Open("PostgreSQL connection lost".into()).reason(),
        "unavailable"
    );
}

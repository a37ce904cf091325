//! Agent state changes in the stores, schema upgrades, and several nodes on one database.

use super::test_db::{each_backend, Db};
use super::*;

fn t(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn change(agent: &str, state: &str, at: i64, reason: Option<&str>) -> AgentStateChange {
    AgentStateChange {
        agent_id: agent.into(),
        state: state.into(),
        at: t(at),
        reason: reason.map(str::to_owned),
    }
}

#[test]
fn a_range_of_agent_states_starts_with_each_agents_state_before_it() {
    each_backend("agent states", |db| {
        let store = db.open();
        let all = [
            change("ana", "available", 1_000, Some("login")),
            change("ana", "away", 2_000, Some("agent_away")),
            change("bob", "available", 2_500, None),
            change("ana", "available", 5_000, None),
            change("bob", "on_call", 6_000, Some("answer")),
            change("ana", "logged_out", 12_000, Some("logout")),
        ];
        store
            .record_agent_states(&all)
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .record_agent_states(&all[..2])
            .unwrap_or_else(|e| panic!("{e}"));
        let got = store.agent_states(t(4_000), t(12_000)).unwrap_or_default();
        let want = vec![
            all[1].clone(), // ana was away at 04:00
            all[2].clone(), // bob was available
            all[3].clone(),
            all[4].clone(),
        ];
        assert_eq!(got, want, "{}", db.name());
        let later = store.agent_states(t(20_000), t(30_000)).unwrap_or_default();
        assert_eq!(later, vec![all[4].clone(), all[5].clone()], "{}", db.name());
    });
}

/// The schema of the first release, exactly as it created databases.
const V1_SCHEMA: &str = "CREATE TABLE schema_migrations (
         component TEXT NOT NULL, version INTEGER NOT NULL,
         applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
         PRIMARY KEY (component, version));
     CREATE TABLE cdr_calls (call_id TEXT PRIMARY KEY, direction TEXT NOT NULL,
         caller TEXT NOT NULL, dialed TEXT NOT NULL, flow TEXT, started_at INTEGER NOT NULL,
         answered_at INTEGER, ended_at INTEGER, ivr_path TEXT NOT NULL, account_id TEXT,
         auth TEXT NOT NULL, queue TEXT, priority INTEGER, enqueued_at INTEGER, agent_id TEXT,
         agent_answered_at INTEGER, wait_ms INTEGER, talk_ms INTEGER, disposition TEXT,
         hangup_by TEXT, recording TEXT, survey INTEGER, events TEXT NOT NULL,
         open INTEGER NOT NULL, last_progress_at INTEGER NOT NULL);
     CREATE INDEX cdr_calls_started ON cdr_calls (started_at);
     INSERT INTO schema_migrations (component, version) VALUES ('cdr', 1);
     INSERT INTO cdr_calls VALUES ('old-call', 'inbound', '+1', '+2', NULL, 1000, NULL, 5000,
         '[\"menu\"]', NULL, 'none', NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'completed',
         'caller', NULL, NULL, '[]', 0, 5000);";

#[test]
fn a_database_from_the_first_release_upgrades_in_place() {
    let db = Db::sqlite();
    let Db::Sqlite { path, .. } = &db else {
        return;
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    }
    let conn = rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("{e}"));
    conn.execute_batch(V1_SCHEMA)
        .unwrap_or_else(|e| panic!("{e}"));
    drop(conn);

    let store = db.open();
    let old = store.get("old-call").ok().flatten();
    assert_eq!(
        old.map(|r| (r.ivr_path, r.to, r.country)),
        Some((vec!["menu".to_string()], "+2".to_string(), None)),
        "an old row keeps every field and has no country"
    );
    store
        .record_agent_state(&change("ana", "available", 1_000, None))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        store.agent_states(t(0), t(2_000)).unwrap_or_default().len(),
        1
    );
    drop(store);
    let conn = rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("{e}"));
    let version: i64 = conn
        .query_row(
            "SELECT MAX(version) FROM schema_migrations WHERE component = 'cdr'",
            [],
            |r| r.get(0),
        )
        .unwrap_or_default();
    assert_eq!(version, 3);
}

#[test]
fn nodes_starting_together_migrate_once_and_close_only_their_own_calls() {
    let Some(db) = Db::postgres("nodes on one database") else {
        return;
    };
    let db = std::sync::Arc::new(db);
    let starts: Vec<_> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|n| {
            let db = db.clone();
            std::thread::spawn(move || db.open_as(n).ping().is_ok())
        })
        .collect();
    for s in starts {
        assert!(s.join().unwrap_or(false), "every node opens the database");
    }
    let a = db.open_as("node-a");
    let b = db.open_as("node-b");
    a.begin(&CallRecord::new(
        "live-on-a",
        Direction::Inbound,
        "+1",
        "+2",
        t(1_000),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    b.begin(&CallRecord::new(
        "left-by-b",
        Direction::Inbound,
        "+1",
        "+2",
        t(1_000),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    // node-b restarts: its own open call is closed, node-a's live call is untouched.
    assert_eq!(
        db.open_as("node-b").close_interrupted(t(9_000)).ok(),
        Some(1)
    );
    let disp = |id: &str| a.get(id).ok().flatten().and_then(|r| r.disposition);
    assert_eq!(disp("left-by-b"), Some(Disposition::Interrupted));
    assert_eq!(disp("live-on-a"), None);
}

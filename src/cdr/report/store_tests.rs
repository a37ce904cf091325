//! The report over data that went through a store: what `/api/reports` and `switchboard report`
//! really compute from.

use super::tests::{at, day, hours, query, states, targets};
use super::{compute, Interval, Report};
use crate::cdr::test_db::Db;

/// Writes the hand-computed day into `db` and computes 09:00–12:00 by hour from what it reads back.
fn via_store(db: &Db) -> Report {
    let store = db.open();
    for rec in day() {
        store
            .begin(&rec)
            .unwrap_or_else(|e| panic!("{}: {e}", db.name()));
        store
            .finish(&rec)
            .unwrap_or_else(|e| panic!("{}: {e}", db.name()));
    }
    // Split in two batches, as the writer would, and one repeated: a retried batch is harmless.
    let all = states();
    let (first, second) = all.split_at(all.len() / 2);
    for batch in [first, second, first] {
        store
            .record_agent_states(batch)
            .unwrap_or_else(|e| panic!("{}: {e}", db.name()));
    }
    let (from, to) = (at(9, 0, 0), at(12, 0, 0));
    let records = store.for_report(from, to).unwrap_or_default();
    let got_states = store.agent_states(from, to).unwrap_or_default();
    compute(
        &records,
        &got_states,
        &query(from, to, Interval::Hour),
        &targets(),
    )
}

/// Runs `check` on the report computed in memory, then through SQLite, then through PostgreSQL
/// when `SWITCHBOARD_TEST_PG` is set (saying so when it is not).
pub(super) fn each_report_source(test: &str, check: impl Fn(&Report)) {
    check(&hours());
    let sqlite = via_store(&Db::sqlite());
    check(&sqlite);
    assert_eq!(sqlite, hours(), "SQLite gives the in-memory report");
    if let Some(pg) = Db::postgres(test) {
        let rep = via_store(&pg);
        check(&rep);
        assert_eq!(rep, hours(), "PostgreSQL gives the in-memory report");
    }
}

#[test]
fn without_stored_states_occupancy_is_unknown_not_zero() {
    // Guards the wiring: the report over a store with calls but no state changes has handled
    // calls and no occupancy, so a store that silently drops states is visible.
    let db = Db::sqlite();
    let store = db.open();
    for rec in day() {
        store.finish(&rec).unwrap_or_else(|e| panic!("{e}"));
    }
    let (from, to) = (at(9, 0, 0), at(12, 0, 0));
    let states = store.agent_states(from, to).unwrap_or_default();
    assert!(states.is_empty());
    let rep = compute(
        &store.for_report(from, to).unwrap_or_default(),
        &states,
        &query(from, to, Interval::Hour),
        &targets(),
    );
    assert!(rep.agent_totals.iter().all(|a| a.occupancy.is_none()));
    assert!(rep.agent_totals.iter().any(|a| a.handled > 0));
}

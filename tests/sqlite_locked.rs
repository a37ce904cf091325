//! Another process holds the SQLite database's write lock (a backup tool, an operator's `sqlite3`
//! session left in a transaction): calls are still answered and completed, /healthz and /metrics
//! say records are waiting, and when the lock goes every call's record is written exactly once.
//!
//! The one SQLite fault a test can make without root or a mount; a full or read-only disk is
//! tests/sqlite_disk_full.rs (root, its own small file systems).

mod common;

use common::ops::{menu_call, metric, metrics_text, wait_healthz};
use common::*;

#[test]
fn calls_keep_working_while_the_sqlite_file_is_locked_and_no_record_is_lost() {
    let server = Server::start(ServerOpts::new().flow("locked", &menu_flow("locked", "7300")));
    let first = menu_call(&server, "7300");
    wait_call_record(&server, &first, secs(10));

    let db = server.data_dir().join("switchboard.db");
    let other = rusqlite::Connection::open(&db).expect("open the server's database");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");

    let during: Vec<String> = (0..3).map(|_| menu_call(&server, "7300")).collect();
    // Each write waits out SQLite's busy timeout a few times before the record is queued.
    let down = wait_healthz(&server, secs(60), "records queued", |s, b| {
        s == 503 && b["cdr_queue"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(down["database"], false, "{down}");
    assert_eq!(down["status"], "degraded", "{down}");
    let metrics = metrics_text(&server);
    assert!(metric(&metrics, "switchboard_cdr_queue") > 0.0, "{metrics}");
    let late = menu_call(&server, "7300");

    other.execute_batch("COMMIT").expect("release the lock");
    wait_healthz(&server, secs(30), "the queue written", |s, b| {
        s == 200 && b["database"] == true && b["cdr_queue"] == 0
    });
    let all: Vec<&String> = [&first].into_iter().chain(&during).chain([&late]).collect();
    for id in &all {
        let rec = wait_call_record(&server, id, secs(10));
        assert_eq!(field(&rec, "hangup_by"), "caller", "{rec}");
    }
    let rows: i64 = other
        .query_row("SELECT count(*) FROM cdr_calls", [], |r| r.get(0))
        .expect("count records");
    assert_eq!(rows, all.len() as i64, "each call's record exactly once");
    assert_eq!(
        metric(&metrics_text(&server), "switchboard_cdr_records_lost_total"),
        0.0
    );
    let log = server.log();
    assert!(
        log.contains("CDR store failing"),
        "the fault is not in the log"
    );
    assert!(log.contains("locked"), "the log does not say why");
}

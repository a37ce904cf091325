//! The PostgreSQL database goes away while switchboard is taking calls: calls are still answered
//! and completed, /healthz says the database is down and how many records wait in memory, and once
//! the database is back every call's record is in it exactly once.
//!
//! Needs `SWITCHBOARD_TEST_PG` and `SWITCHBOARD_TEST_PG_ADMIN` (a superuser URL on the same
//! server; scripts/test-postgres sets both); without them the test says it was skipped. The outage
//! is real: the test's own database is closed to new connections (`ALLOW_CONNECTIONS false`) and
//! switchboard's sessions are terminated, which is what a crashed or restarting server looks like
//! to a client.

mod common;

use common::ops::{menu_call, metric, metrics_text, wait_healthz};
use common::*;

const DB: &str = "switchboard_outage";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|u| !u.trim().is_empty())
}

/// A superuser session on the test cluster (the `postgres` database, which stays open).
fn admin(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("superuser connection to PostgreSQL")
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("database URL ends in /<name>");
    format!("{base}/{db}")
}

/// The user name in `postgres://user[:password]@host/db`.
fn url_user(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let creds = rest.split_once('@').map_or("", |(c, _)| c);
    creds.split(':').next().unwrap_or_default().to_string()
}

/// Closes (or reopens) the database: no new connections, and the open ones are cut.
fn set_database_up(admin: &mut postgres::Client, up: bool) {
    admin
        .batch_execute(&format!("ALTER DATABASE {DB} ALLOW_CONNECTIONS {up}"))
        .expect("alter database");
    if !up {
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&DB],
            )
            .expect("terminate sessions");
    }
}

#[test]
fn calls_keep_working_while_postgres_is_down_and_no_record_is_lost() {
    let (Some(url), Some(admin_url)) =
        (env("SWITCHBOARD_TEST_PG"), env("SWITCHBOARD_TEST_PG_ADMIN"))
    else {
        eprintln!(
            "SKIPPED: calls_keep_working_while_postgres_is_down_and_no_record_is_lost \
             (SWITCHBOARD_TEST_PG and SWITCHBOARD_TEST_PG_ADMIN are not set; run scripts/test-postgres)"
        );
        return;
    };
    let mut su = admin(&admin_url);
    let owner = url_user(&url);
    su.batch_execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .expect("drop old test database");
    su.batch_execute(&format!("CREATE DATABASE {DB} OWNER {owner}"))
        .expect("create test database");
    let db_url = with_database(&url, DB);

    let server = Server::start(
        ServerOpts::new()
            .flow("pg-outage", &menu_flow("pg-outage", "7200"))
            .config(&format!("database: \"{db_url}\"\n")),
    );
    let before: Vec<String> = (0..2).map(|_| menu_call(&server, "7200")).collect();
    for id in &before {
        wait_call_record(&server, id, secs(10));
    }

    set_database_up(&mut su, false);
    let during: Vec<String> = (0..3).map(|_| menu_call(&server, "7200")).collect();
    let down = wait_healthz(
        &server,
        secs(30),
        "the database down with records queued",
        |s, b| s == 503 && b["database"] == false && b["cdr_queue"].as_u64().unwrap_or(0) > 0,
    );
    assert_eq!(down["status"], "degraded", "{down}");
    assert!(
        down["cdr_write_failures"].as_u64().unwrap_or(0) > 0,
        "{down}"
    );
    let metrics = metrics_text(&server);
    assert!(metric(&metrics, "switchboard_cdr_queue") > 0.0, "{metrics}");
    assert!(metric(&metrics, "switchboard_cdr_write_failures_total") > 0.0);
    assert_eq!(metric(&metrics, "switchboard_cdr_records_lost_total"), 0.0);
    // The records of the calls made during the outage are not readable yet: the API says why.
    let (status, body) = http_get_json(
        &server,
        &format!("/api/calls/{}", common::server::percent_encode(&during[0])),
    );
    assert_eq!(status, 503, "{body}");
    // And SIP still answers a new call while the queue waits.
    let late = menu_call(&server, "7200");

    set_database_up(&mut su, true);
    let back = wait_healthz(
        &server,
        secs(30),
        "the database back with the queue written",
        |s, b| s == 200 && b["database"] == true && b["cdr_queue"] == 0,
    );
    assert_eq!(back["status"], "ok", "{back}");
    let metrics = metrics_text(&server);
    assert_eq!(metric(&metrics, "switchboard_cdr_queue"), 0.0, "{metrics}");

    let all: Vec<String> = before
        .iter()
        .chain(&during)
        .chain([&late])
        .cloned()
        .collect();
    for id in &all {
        let rec = wait_call_record(&server, id, secs(10));
        assert_eq!(field(&rec, "hangup_by"), "caller", "{rec}");
        assert_path(&rec, &["menu"]);
    }
    // Exactly once each, and nothing else: the database itself, not the API's view of it.
    let mut db = admin(&with_database(&admin_url, DB));
    let rows = db
        .query(
            "SELECT call_id, ended_at IS NOT NULL FROM cdr_calls ORDER BY call_id",
            &[],
        )
        .expect("read cdr_calls");
    let mut stored: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut expected: Vec<(String, bool)> = all.iter().map(|id| (id.clone(), true)).collect();
    stored.sort();
    expected.sort();
    assert_eq!(stored, expected);
    let log = server.log();
    assert!(
        log.contains("CDR store failing"),
        "the outage is not in the log"
    );
    assert!(
        log.contains("not currently accepting connections"),
        "the log does not say why the database failed"
    );
    assert!(
        !log.contains("record lost") && !log.contains("record not saved"),
        "{log}"
    );
    assert!(
        !log.contains("s3cr3t"),
        "the database password is in the log"
    );

    drop(server);
    drop(db);
    let _ = su.batch_execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"));
}

//! Two switchboard processes share one PostgreSQL database: each takes a SIP call, and both
//! records are visible from either node and from `switchboard report --database`.
//! Needs `SWITCHBOARD_TEST_PG` (scripts/test-postgres sets it); without it the test says it was
//! skipped.

mod common;

use common::*;

fn pg_url() -> Option<String> {
    let url = std::env::var("SWITCHBOARD_TEST_PG")
        .ok()
        .filter(|u| !u.trim().is_empty());
    if url.is_none() {
        eprintln!(
            "SKIPPED: two_nodes_write_to_one_postgres_database (SWITCHBOARD_TEST_PG is not set)"
        );
    }
    url
}

fn node(url: &str) -> Server {
    Server::start(
        ServerOpts::new()
            .flow("pg-hello", &menu_flow("pg-hello", "7100"))
            .config(&format!("database: \"{url}\"\n")),
    )
}

fn one_call(server: &Server) -> String {
    let prompts = english_prompts(&["main-menu"]);
    let mut phone = Phone::udp(server);
    phone.call("7100", CALLER).must();
    phone.wait_heard(&prompts, "main-menu", 1, secs(10)).must();
    let id = phone.call_id().to_string();
    phone.hangup().must();
    id
}

#[test]
fn two_nodes_write_to_one_postgres_database() {
    let Some(url) = pg_url() else {
        return;
    };
    let a = node(&url);
    let b = node(&url);
    let call_a = one_call(&a);
    let call_b = one_call(&b);

    // Each node sees the other's call: the records live in the shared database.
    let rec = wait_call_record(&b, &call_a, secs(10));
    assert_eq!(field(&rec, "call_id"), call_a, "{rec}");
    let rec = wait_call_record(&a, &call_b, secs(10));
    assert_eq!(field(&rec, "call_id"), call_b, "{rec}");
    assert!(!field(&rec, "ended_at").is_empty(), "{rec}");
    assert!(!a.log().contains("s3cr3t") && !b.log().contains("s3cr3t"));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "report",
            "--database",
            &url,
            "--format",
            "json",
            "--interval",
            "1d",
        ])
        .output()
        .expect("run switchboard report");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&text).expect("report JSON");
    assert!(report.get("totals").is_some(), "{report}");
}

//! The supervisors' dashboard against the real server: its data routes and socket refuse anyone
//! without the API token or a supervisor's login (agents included), and a logged-in supervisor's
//! socket shows a caller entering the queue and hanging up — pushed, not polled — with the
//! abandon counted in today's figures.

mod common;

use std::time::{Duration, Instant};

use common::agent::{billing_centre, post_json};
use common::http::{get, API_TOKEN};
use common::ws::{self, Ws};
use common::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const AGENT_PW: &str = "agent password 1";
const SUP_PW: &str = "supervisor password 1";

fn server() -> Server {
    billing_centre(AGENT_PW, SUP_PW, "")
}

/// Opens `/dashboard/ws`; `Err(status)` when the server refuses the handshake.
fn open_ws(server: &Server, token: &str, origin: Option<&str>) -> Result<Ws, u16> {
    ws::open_ws(server.http, &format!("/dashboard/ws?token={token}"), origin)
}

/// Reads board messages until one satisfies `pred`; every board seen is kept for the message.
fn wait_board(ws: &mut Ws, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match ws.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(&t).expect("board is JSON");
                assert_eq!(v["type"], "board", "{v}");
                if pred(&v) {
                    return v;
                }
                seen.push(v);
            }
            Ok(Message::Close(f)) => panic!("socket closed waiting for {what}: {f:?}"),
            Ok(_) => {}
            Err(e) if ws::timed_out(&e) => {}
            Err(e) => panic!("socket error waiting for {what}: {e}"),
        }
    }
    panic!(
        "no board with {what} within {timeout:?}; last boards: {:?}",
        seen.iter().rev().take(3).collect::<Vec<_>>()
    );
}

fn billing(board: &Value) -> &Value {
    board["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["name"] == "billing"))
        .unwrap_or(&Value::Null)
}

fn status(server: &Server, path: &str, token: Option<&str>) -> u16 {
    get(server.http, path, token).expect("GET").status
}

#[test]
fn the_board_and_reports_need_the_api_token_or_a_supervisor_not_an_agent() {
    let server = server();
    for path in ["/api/queues", "/api/agents", "/api/reports"] {
        assert_eq!(status(&server, path, None), 401, "{path} without a token");
        assert_eq!(
            status(&server, path, Some("guess")),
            401,
            "{path} with a wrong token"
        );
        assert_eq!(
            status(&server, path, Some(API_TOKEN)),
            200,
            "{path} with the API token"
        );
    }
    assert_eq!(
        status(&server, "/dashboard", None),
        200,
        "the page itself is public"
    );

    let (code, body) = post_json(
        server.http,
        "/api/agent/login",
        &json!({"agent": "alice", "password": AGENT_PW}),
    )
    .expect("agent login");
    assert_eq!(code, 200, "{body}");
    let agent_token = body["token"].as_str().expect("agent token").to_string();
    assert_eq!(status(&server, "/api/queues", Some(&agent_token)), 401);
    assert_eq!(open_ws(&server, &agent_token, None).err(), Some(401));
    assert_eq!(open_ws(&server, "", None).err(), Some(401));

    let (code, body) = post_json(
        server.http,
        "/api/supervisor/login",
        &json!({"supervisor": "mia", "password": "not her secret 9"}),
    )
    .expect("login");
    assert_eq!(code, 401, "{body}");
    assert!(!body.to_string().contains("not her secret"), "{body}");

    let sup = supervisor_login(&server);
    assert_eq!(status(&server, "/api/queues", Some(&sup)), 200);
    assert_eq!(status(&server, "/api/reports", Some(&sup)), 200);
    // Supervisors see the board, not the call records.
    assert_eq!(status(&server, "/api/calls", Some(&sup)), 401);
    // Another site open in the supervisor's browser cannot read the board.
    assert_eq!(
        open_ws(&server, &sup, Some("http://evil.example")).err(),
        Some(403)
    );
    let same = format!("http://{}", server.http);
    assert!(open_ws(&server, &sup, Some(&same)).is_ok());

    assert_eq!(
        ws::post_bearer(server.http, "/api/supervisor/logout", &sup),
        204
    );
    assert_eq!(
        status(&server, "/api/queues", Some(&sup)),
        401,
        "logged out"
    );
}

fn supervisor_login(server: &Server) -> String {
    let (code, body) = post_json(
        server.http,
        "/api/supervisor/login",
        &json!({"supervisor": "mia", "password": SUP_PW}),
    )
    .expect("login");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["supervisor"]["name"], "Mia Supervisor", "{body}");
    body["token"].as_str().expect("token").to_string()
}

#[test]
fn a_queued_caller_and_their_abandon_are_pushed_to_the_supervisor() {
    let server = server();
    let sup = supervisor_login(&server);
    let mut ws = open_ws(&server, &sup, None).expect("socket opens");
    let first = wait_board(&mut ws, secs(5), "the first board", |_| true);
    assert_eq!(billing(&first)["waiting"], 0, "{first}");
    assert_eq!(first["today"]["abandoned"], 0, "{first}");
    assert!(
        first["agents"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["id"] == "alice")),
        "{first}"
    );

    let mut phone = Phone::udp(&server);
    phone.call("7100", CALLER).must();
    let queued = wait_board(&mut ws, secs(10), "billing waiting=1", |b| {
        billing(b)["waiting"] == 1
    });
    assert_eq!(billing(&queued)["agents"]["logged_out"], 1, "{queued}");

    assert_eq!(phone.hangup().must(), 200);
    wait_board(&mut ws, secs(10), "billing waiting=0", |b| {
        billing(b)["waiting"] == 0
    });
    // The record is written as the call ends and today's figures follow within seconds.
    let today = wait_board(&mut ws, secs(15), "today's abandoned=1", |b| {
        b["today"]["abandoned"] == 1
    });
    assert_eq!(today["today"]["offered"], 1, "{today}");
    assert_eq!(today["today"]["answered"], 0, "{today}");
    let q = today["today"]["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["name"] == "billing"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(q["abandoned"], 1, "{today}");
}

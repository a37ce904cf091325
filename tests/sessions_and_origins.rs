//! Sign-ins against the real server: the agent console's socket refuses another site's page (a
//! browser applies no CORS to WebSockets), signing out closes the sockets that sign-in opened
//! (agent and supervisor) and the token is worthless after; failed sign-ins count against the
//! source address like wrong PINs, so guessing passwords gets that address blocked.

mod common;

use std::time::{Duration, Instant};

use common::agent::{billing_centre, post_json};
use common::http::{get, API_TOKEN};
use common::sipmsg;
use common::ws::{open_ws, post_bearer, wait_close};
use common::*;
use serde_json::{json, Value};

const AGENT_PW: &str = "agent password 1";
const SUP_PW: &str = "supervisor password 1";
/// The close code that makes the pages drop their token and show the sign-in form.
const SIGNED_OUT: u16 = 4001;

fn server(extra: &str) -> Server {
    billing_centre(AGENT_PW, SUP_PW, extra)
}

fn sign_in(server: &Server, path: &str, body: Value) -> (u16, Value) {
    post_json(server.http, path, &body).expect("sign-in request")
}

fn agent_login(server: &Server, password: &str) -> (u16, Value) {
    sign_in(
        server,
        "/api/agent/login",
        json!({"agent": "alice", "password": password}),
    )
}

fn supervisor_login(server: &Server, password: &str) -> (u16, Value) {
    sign_in(
        server,
        "/api/supervisor/login",
        json!({"supervisor": "mia", "password": password}),
    )
}

fn token(answer: (u16, Value)) -> String {
    assert_eq!(answer.0, 200, "{}", answer.1);
    answer.1["token"].as_str().expect("token").to_string()
}

/// Alice's state on the board, as the API token sees it.
fn alice_state(server: &Server) -> String {
    let r = get(server.http, "/api/agents", Some(API_TOKEN)).expect("GET /api/agents");
    let agents = r.json().expect("agents JSON");
    agents
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == "alice"))
        .and_then(|a| a["state"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn wait_alice(server: &Server, state: &str) {
    let deadline = Instant::now() + secs(5);
    while alice_state(server) != state {
        assert!(
            Instant::now() < deadline,
            "alice is {} on the board, not {state}",
            alice_state(server)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn another_sites_page_cannot_open_the_console_and_signing_out_closes_it() {
    let server = server("");
    let alice = token(agent_login(&server, AGENT_PW));
    let path = format!("/agent/ws?token={alice}");
    let ours = format!("http://{}", server.http);

    // A page on another site open in the agent's browser: the browser sends that site's origin
    // and applies no CORS to a WebSocket, so the server must refuse the upgrade itself.
    assert_eq!(
        open_ws(server.http, &path, Some("http://evil.example")).err(),
        Some(403)
    );
    assert_eq!(alice_state(&server), "logged_out");

    let mut ws = open_ws(server.http, &path, Some(&ours)).expect("our own page's socket");
    wait_alice(&server, "away");
    assert_eq!(wait_close(&mut ws, Duration::from_millis(1500)), None);

    assert_eq!(post_bearer(server.http, "/api/agent/logout", &alice), 204);
    assert_eq!(
        wait_close(&mut ws, secs(5)),
        Some(SIGNED_OUT),
        "signing out leaves the console's socket open"
    );
    wait_alice(&server, "logged_out");
    // The token is worthless now: a new socket with it is closed at once.
    let mut again = open_ws(server.http, &path, Some(&ours)).expect("handshake");
    assert_eq!(wait_close(&mut again, secs(5)), Some(SIGNED_OUT));
    assert_eq!(alice_state(&server), "logged_out");

    // The supervisor's board socket goes with their sign-out the same way.
    let mia = token(supervisor_login(&server, SUP_PW));
    let mut board = open_ws(
        server.http,
        &format!("/dashboard/ws?token={mia}"),
        Some(&ours),
    )
    .expect("board socket");
    assert_eq!(
        post_bearer(server.http, "/api/supervisor/logout", &mia),
        204
    );
    assert_eq!(wait_close(&mut board, secs(5)), Some(SIGNED_OUT));
}

#[test]
fn guessing_passwords_blocks_the_source_even_for_the_right_one() {
    let server = server("security: { auth_failures: 3, window: 10m, block_for: 30m }\n");
    // A right password first: sign-ins that succeed do not count.
    token(agent_login(&server, AGENT_PW));
    for _ in 0..2 {
        assert_eq!(agent_login(&server, "guess number 1").0, 401);
    }
    assert_eq!(supervisor_login(&server, "guess number 2").0, 401);

    // Three failures across both sign-ins: this address is blocked, right password or not.
    let (code, body) = agent_login(&server, AGENT_PW);
    assert_eq!(code, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("try again later"),
        "{body}"
    );
    assert_eq!(supervisor_login(&server, SUP_PW).0, 429);
    let health = get(server.http, "/healthz", None)
        .expect("healthz")
        .json()
        .expect("healthz JSON");
    assert_eq!(health["auth_blocks"], 1, "{health}");
    // The same block as a PIN or REGISTER brute force: the address's SIP requests are refused too.
    let mut phone = Phone::udp(&server);
    assert_eq!(
        phone
            .invite("7100", CALLER, sipmsg::DESK_PHONE_CODECS)
            .expect("answer"),
        403
    );

    let log = server.log();
    assert!(log.contains("source blocked"), "the block is not logged");
    assert!(
        !log.contains("guess number") && !log.contains(AGENT_PW),
        "a password is in the log"
    );
}

#[test]
fn a_sign_in_ends_after_the_configured_lifetime_and_its_sockets_close() {
    let server = server("security: { session_lifetime: 3s }\n");
    let ours = format!("http://{}", server.http);
    let (code, body) = agent_login(&server, AGENT_PW);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["expires_in_s"], 3, "{body}");
    let alice = token((code, body));
    let mia = token(supervisor_login(&server, SUP_PW));
    let signed_in = Instant::now();

    let mut ws = open_ws(
        server.http,
        &format!("/agent/ws?token={alice}"),
        Some(&ours),
    )
    .expect("console socket");
    let mut board = open_ws(
        server.http,
        &format!("/dashboard/ws?token={mia}"),
        Some(&ours),
    )
    .expect("board socket");
    wait_alice(&server, "away");

    // Nobody signs out: the lifetime alone ends both sign-ins and closes their sockets.
    assert_eq!(wait_close(&mut ws, secs(10)), Some(SIGNED_OUT));
    assert!(
        signed_in.elapsed() >= Duration::from_millis(2500),
        "the console closed after {:?}, before its 3 s lifetime",
        signed_in.elapsed()
    );
    assert_eq!(wait_close(&mut board, secs(5)), Some(SIGNED_OUT));
    wait_alice(&server, "logged_out");
    // The expired tokens open nothing any more.
    let mut again = open_ws(
        server.http,
        &format!("/agent/ws?token={alice}"),
        Some(&ours),
    )
    .expect("handshake");
    assert_eq!(wait_close(&mut again, secs(5)), Some(SIGNED_OUT));
    let r = get(server.http, "/api/reports", Some(&mia)).expect("GET /api/reports");
    assert_eq!(
        r.status, 401,
        "an expired supervisor token still reads reports"
    );
    // A fresh sign-in works as before.
    token(agent_login(&server, AGENT_PW));
}

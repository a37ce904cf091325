//! `trunk.register: true`: the server registers with the carrier (a MOCK registrar,
//! tests/common/registrar.rs, that challenges with 401, checks the digest against the configured
//! password and grants only 2 s), refreshes before the binding lapses, shows `registered` on
//! /healthz and /metrics, and removes the binding on SIGTERM. A registrar that refuses (403)
//! shows as `failed`. The password never reaches the log.

mod common;

use std::time::Duration;

use common::ops::sigterm;
use common::registrar::{Answer, MockRegistrar};
use common::*;

const USER: &str = "acme-centre";
const PASSWORD: &str = "reg-secret-7f3";

fn server(registrar: &MockRegistrar) -> Server {
    let config = format!(
        "trunk:\n  address: \"{}\"\n  username: {USER}\n  password: {PASSWORD}\n  register: true\n  register_expires: 600\n",
        registrar.addr
    );
    Server::start(ServerOpts::new().config(&config))
}

fn registration_state(server: &Server) -> String {
    let (_, body) = http_get_json(server, "/healthz");
    body["trunk_registration"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn wait_state(server: &Server, want: &str, timeout: Duration) -> String {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let s = registration_state(server);
        if s == want || std::time::Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn gauge(server: &Server) -> Option<String> {
    let r = common::http::get(server.http, "/metrics", Some(common::http::API_TOKEN)).ok()?;
    r.text().lines().find_map(|l| {
        l.strip_prefix("switchboard_trunk_registered ")
            .map(str::to_string)
    })
}

#[test]
fn registers_through_a_401_refreshes_before_the_short_expiry_and_unregisters_on_sigterm() {
    let registrar = MockRegistrar::start(USER, PASSWORD, Answer::Grant(2));
    let mut server = server(&registrar);
    assert_eq!(wait_state(&server, "registered", secs(5)), "registered");
    assert_eq!(gauge(&server).as_deref(), Some("1"));

    // Granted 2 s: the refreshes must keep coming, each before the previous binding lapsed.
    assert!(
        registrar.wait_until(secs(6), |s| s.iter().filter(|r| r.status == 200).count()
            >= 3),
        "no refreshes: {:?}",
        registrar
            .seen()
            .iter()
            .map(|s| s.status)
            .collect::<Vec<_>>()
    );
    let granted = registrar.granted();
    for pair in granted.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap < Duration::from_secs(2),
            "refresh after {gap:?}, the binding lasted 2 s"
        );
    }
    let seen = registrar.seen();
    let first = &seen[0];
    assert_eq!(first.status, 401, "the first REGISTER is challenged");
    assert_eq!(
        first.expires(),
        Some(600),
        "asks for trunk.register_expires"
    );
    assert!(
        first
            .msg
            .header("Contact")
            .unwrap_or_default()
            .contains(&server.sip.port().to_string()),
        "the Contact is our SIP address: {:?}",
        first.msg.header("Contact")
    );
    assert!(
        granted.iter().all(|s| s.digest_ok),
        "every binding came with valid credentials"
    );
    assert!(
        granted
            .windows(2)
            .all(|p| p[0].msg.call_id() == p[1].msg.call_id()),
        "refreshes keep the Call-ID"
    );
    assert_eq!(registration_state(&server), "registered");

    sigterm(&server);
    assert!(
        registrar.wait_until(secs(5), |s| s
            .iter()
            .any(|r| r.expires() == Some(0) && r.status == 200)),
        "no un-REGISTER (Expires: 0) on shutdown"
    );
    assert!(server.wait_exit(secs(10)).is_some(), "the server exits");
    let log = server.log();
    assert!(
        log.contains("trunk registration: registered"),
        "the log says so:\n{log}"
    );
    assert!(!log.contains(PASSWORD), "the password is in the log");
}

#[test]
fn a_registrar_that_refuses_shows_failed_without_hammering_it() {
    let registrar = MockRegistrar::start(USER, PASSWORD, Answer::Forbid);
    let server = server(&registrar);
    assert_eq!(wait_state(&server, "failed", secs(5)), "failed");
    assert_eq!(gauge(&server).as_deref(), Some("0"));
    std::thread::sleep(Duration::from_secs(1));
    let statuses: Vec<u16> = registrar.seen().iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        vec![401, 403],
        "one challenge, one refusal, then a slow retry"
    );
    assert!(
        registrar.seen()[1].digest_ok,
        "the credentials were right; the account is refused"
    );
    let log = server.log();
    assert_eq!(
        log.matches("trunk registration: failed").count(),
        1,
        "logged once:\n{log}"
    );
    assert!(!log.contains(PASSWORD));
}

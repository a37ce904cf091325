//! Callbacks dial out: an agent on a SIP desk phone accepts a queued callback, the server dials
//! the customer through the trunk (a MOCK carrier, tests/common/trunk.rs, that challenges with
//! 401 or 407 and checks the digest against the configured password), and the bridge carries
//! audio both ways. A busy customer puts the callback back in its queue; after the last retry it
//! is `failed`; every attempt is a `callback` call record.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::agent::{agent_yaml, tone_pcm, tone_windows, Agent};
use common::deskphone::{sip_ha1, DeskPhone};
use common::trunk::MockTrunk;
use common::*;
use serde_json::json;

const TRUNK_USER: &str = "acme-centre";
const TRUNK_PW: &str = "trunk-secret-9";
const NUMBER: &str = "+5511912345678";
const CALLER_ID: &str = "+551130000000";
const AGENT_HZ: f64 = 500.0;
const CUSTOMER_HZ: f64 = 1000.0;
const ONE_SECOND: usize = 10;

fn server(trunk: &MockTrunk) -> Server {
    let agent = format!(
        "{}    sip: {{ user: alice, ha1: \"{}\" }}\n",
        agent_yaml("alice", "console pw 1", &[("billing", 3)], &["billing"]),
        sip_ha1("alice", "phone-secret-1")
    );
    let config = [
        "queues:\n  - name: billing\n    wrap_up: 5s\n    ring_timeout: 20s\n".to_string(),
        format!("agents:\n{agent}"),
        "widget:\n  callback_prefixes: [\"+55\"]\n  callback_retries: [\"1s\"]\n".to_string(),
        format!("trunk:\n  address: \"{}\"\n", trunk.addr),
        format!("  username: {TRUNK_USER}\n  password: {TRUNK_PW}\n"),
        format!("  caller_ids: {{ \"+55\": \"{CALLER_ID}\", \"+351\": \"+351210000000\" }}\n"),
    ];
    Server::start(ServerOpts::new().config(&config.concat()))
}

/// Alice's phone registers, a callback is queued, her phone rings with the number and answers.
fn accept_callback(server: &Server) -> DeskPhone {
    let mut desk = DeskPhone::new(server.sip, "alice", "phone-secret-1");
    assert_eq!(desk.register(300).must(), vec![401, 200]);
    queue_callback(server);
    let invite = desk.wait_invite(secs(15)).must();
    assert!(
        invite.header("From").unwrap_or_default().contains(NUMBER),
        "the phone shows the customer's number: {:?}",
        invite.header("From")
    );
    desk.answer().must();
    desk
}

fn queue_callback(server: &Server) {
    let body = json!({"number": NUMBER, "queue": "billing", "note": "invoice 42"}).to_string();
    let mut s = TcpStream::connect(server.http).expect("connect");
    write!(
        s,
        "POST /api/callbacks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-token\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read");
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
}

fn audio(pkts: &[common::rtp::RxPacket]) -> Vec<u8> {
    pkts.iter()
        .filter(|p| p.pt == 0)
        .flat_map(|p| p.payload.clone())
        .collect()
}

fn callbacks_waiting(server: &Server) -> u64 {
    let (_, body) = http_get_json(server, "/api/queues");
    body.as_array()
        .and_then(|qs| qs.iter().find(|q| q["name"] == "billing"))
        .and_then(|q| q["callbacks"].as_u64())
        .unwrap_or(0)
}

#[test]
fn accepted_callback_dials_through_a_401_trunk_and_bridges_audio_both_ways() {
    let mut trunk = MockTrunk::bind(TRUNK_USER, TRUNK_PW);
    let server = server(&trunk);
    let mut desk = accept_callback(&server);
    let seen = trunk.take_call(401, 200, secs(15)).must();
    seen.dialled(NUMBER, trunk.addr, CALLER_ID).must();
    assert!(
        !server.log().contains(TRUNK_PW),
        "the trunk password is never logged"
    );

    desk.queue_pcm(&tone_pcm(AGENT_HZ, 8.0));
    trunk.queue_pcm(&tone_pcm(CUSTOMER_HZ, 8.0));
    let deadline = Instant::now() + secs(10);
    loop {
        let at_agent = tone_windows(&audio(&desk.received()), CUSTOMER_HZ);
        let at_customer = tone_windows(&audio(&trunk.received()), AGENT_HZ);
        if at_agent >= ONE_SECOND && at_customer >= ONE_SECOND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent heard {at_agent} windows of the customer, the customer {at_customer} of the agent"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(desk.hangup().must(), 200);
    trunk.wait_bye(secs(10)).must();

    let record = wait_call_record(&server, seen.first.call_id().unwrap_or_default(), secs(10));
    assert_eq!(field(&record, "direction"), "callback", "{record}");
    assert_eq!(field(&record, "from"), CALLER_ID, "{record}");
    assert_eq!(field(&record, "to"), NUMBER, "{record}");
    assert_eq!(
        field(&record, "country"),
        "BR",
        "the customer's country: {record}"
    );
    assert_eq!(field(&record, "agent_id"), "alice", "{record}");
    assert_eq!(field(&record, "disposition"), "completed", "{record}");
    assert_eq!(callbacks_waiting(&server), 0);
}

#[test]
fn busy_customer_behind_a_407_trunk_goes_back_in_the_queue_and_the_attempt_is_recorded() {
    let mut trunk = MockTrunk::bind(TRUNK_USER, TRUNK_PW);
    let server = server(&trunk);
    let mut desk = accept_callback(&server);
    let seen = trunk.take_call(407, 486, secs(15)).must();
    desk.wait_bye(secs(10)).must();

    let record = wait_call_record(&server, seen.first.call_id().unwrap_or_default(), secs(10));
    assert_eq!(field(&record, "direction"), "callback", "{record}");
    assert_eq!(field(&record, "disposition"), "failed", "{record}");
    assert_eq!(field(&record, "agent_id"), "alice", "{record}");

    // After the 1 s retry delay it waits in its queue again while alice is in wrap-up.
    let deadline = Instant::now() + secs(4);
    while callbacks_waiting(&server) != 1 {
        assert!(
            Instant::now() < deadline,
            "the callback is not back in its queue"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stored_status(&server), "queued");

    // Her wrap-up over, it rings her again; busy once more and `callback_retries` is spent.
    let invite = desk.wait_invite(secs(15)).must();
    assert!(invite.header("From").unwrap_or_default().contains(NUMBER));
    desk.answer().must();
    let second = trunk.take_call(407, 486, secs(15)).must();
    assert_ne!(second.first.call_id(), seen.first.call_id());
    desk.wait_bye(secs(10)).must();
    let record = wait_call_record(
        &server,
        second.first.call_id().unwrap_or_default(),
        secs(10),
    );
    assert_eq!(field(&record, "disposition"), "failed", "{record}");
    let deadline = Instant::now() + secs(5);
    while stored_status(&server) != "failed" {
        assert!(
            Instant::now() < deadline,
            "the callback is not marked failed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(callbacks_waiting(&server), 0, "no third attempt");
}

/// The one callback's status in the `callbacks` table.
fn stored_status(server: &Server) -> String {
    let db = rusqlite::Connection::open(server.data_dir().join("switchboard.db")).expect("open db");
    db.query_row("SELECT status FROM callbacks", [], |r| r.get(0))
        .expect("one callback")
}

#[test]
fn a_console_agent_accepts_and_the_browser_is_bridged_to_the_customer() {
    let trunk = MockTrunk::bind(TRUNK_USER, TRUNK_PW);
    let server = server(&trunk);
    let mut alice = Agent::login(&server, "alice", "console pw 1").must();
    alice.set_available().must();
    queue_callback(&server);
    let ring = alice.wait_ring(secs(15)).must();
    assert_eq!(ring["callback"]["number"], NUMBER, "{ring}");
    assert_eq!(ring["callback"]["note"], "invoice 42", "{ring}");
    let call_id = ring["call_id"].as_str().unwrap_or_default().to_string();
    // The carrier answers while the console waits for the server's SDP answer.
    let carrier = std::thread::spawn(move || {
        let mut trunk = trunk;
        let seen = trunk.take_call(401, 200, secs(15));
        (trunk, seen)
    });
    alice.answer(&call_id).must();
    let (mut trunk, seen) = carrier.join().expect("carrier thread");
    let seen = seen.must();

    alice.send_tone_pcmu(AGENT_HZ);
    trunk.queue_pcm(&tone_pcm(CUSTOMER_HZ, 8.0));
    let deadline = Instant::now() + secs(10);
    loop {
        let at_agent = tone_windows(&alice.received_audio(), CUSTOMER_HZ);
        let at_customer = tone_windows(&audio(&trunk.received()), AGENT_HZ);
        if at_agent >= ONE_SECOND && at_customer >= ONE_SECOND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent heard {at_agent} windows of the customer, the customer {at_customer} of the agent"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    alice.hangup(&call_id).must();
    trunk.wait_bye(secs(10)).must();
    let record = wait_call_record(&server, seen.first.call_id().unwrap_or_default(), secs(10));
    assert_eq!(field(&record, "direction"), "callback", "{record}");
    assert_eq!(field(&record, "disposition"), "completed", "{record}");
    assert_eq!(field(&record, "hangup_by"), "agent", "{record}");
}

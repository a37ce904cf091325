//! A flow's `transfer` step to a number goes out through the trunk (a MOCK carrier,
//! tests/common/trunk.rs, that challenges with 407 and checks the digest against the configured
//! password): the caller and the far end hear each other, the caller's hang-up reaches the trunk
//! as a BYE, and the record says `transferred` with a leg for the number. A busy number hangs
//! the caller up and the record says `failed` with the carrier's 486.

mod common;

use std::time::{Duration, Instant};

use common::agent::{tone_pcm, tone_windows};
use common::talk::{caller_audio_since, ONE_SECOND};
use common::trunk::MockTrunk;
use common::*;

const TRUNK_USER: &str = "acme-centre";
const TRUNK_PW: &str = "trunk-secret-4b";
const NUMBER: &str = "+5511912345678";
const CALLER_ID: &str = "+551130000000";
const CALLER_HZ: f64 = 500.0;
const FAR_HZ: f64 = 1000.0;

/// 100 ms windows of µ-law that are not near-silence.
fn loud_windows(ulaw: &[u8]) -> usize {
    ulaw.chunks_exact(800)
        .filter(|w| {
            let energy: f64 = w
                .iter()
                .map(|&b| f64::from(common::g711::Law::Mu.decode(b)).powi(2))
                .sum();
            (energy / w.len() as f64).sqrt() > 300.0
        })
        .count()
}

fn server(trunk: &MockTrunk) -> Server {
    server_to(trunk, NUMBER)
}

fn server_to(trunk: &MockTrunk, target: &str) -> Server {
    server_on(trunk, target, "udp")
}

fn server_on(trunk: &MockTrunk, target: &str, transport: &str) -> Server {
    let flow = format!(
        "flow: out\nnumbers: [\"7000\"]\nlanguage: en\nstart: out\nsteps:\n  out:\n    transfer: \"{target}\"\n"
    );
    let config = format!(
        "trunk:\n  address: \"{}\"\n  transport: {transport}\n  username: {TRUNK_USER}\n  password: {TRUNK_PW}\n  caller_ids: {{ \"+55\": \"{CALLER_ID}\" }}\n",
        trunk.addr
    );
    Server::start(ServerOpts::new().flow("out", &flow).config(&config))
}

#[test]
fn a_number_is_dialled_through_a_407_trunk_and_bridged_until_the_caller_hangs_up() {
    let mut trunk = MockTrunk::bind(TRUNK_USER, TRUNK_PW);
    trunk.ring_for = Duration::from_millis(1500);
    let server = server(&trunk);
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    let called = Instant::now();
    let seen = trunk.take_call(407, 200, secs(15)).must();
    seen.dialled(NUMBER, trunk.addr, CALLER_ID).must();
    // While it rang the caller heard music, not silence.
    let ringing: Vec<u8> = phone
        .received()
        .iter()
        .filter(|p| p.at >= called && p.pt == 0)
        .flat_map(|p| p.payload.clone())
        .collect();
    assert!(
        loud_windows(&ringing) >= 5,
        "the caller heard {} loud 100 ms windows while it rang",
        loud_windows(&ringing)
    );

    // Each side plays its own tone; each must hear the other's.
    let since = Instant::now();
    phone.queue_pcm(&tone_pcm(CALLER_HZ, 8.0));
    trunk.queue_pcm(&tone_pcm(FAR_HZ, 8.0));
    let deadline = since + secs(10);
    loop {
        let at_caller = tone_windows(&caller_audio_since(&phone, since), FAR_HZ);
        let at_far_end = tone_windows(&trunk.received_pcmu(), CALLER_HZ);
        if at_caller >= ONE_SECOND && at_far_end >= ONE_SECOND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the caller heard {at_caller} windows of the far end, the far end {at_far_end} of the caller"
        );
        phone.rtp_arriving_during(Duration::from_millis(100));
    }
    assert_eq!(
        tone_windows(&caller_audio_since(&phone, since), CALLER_HZ),
        0,
        "the caller hears their own voice back"
    );
    // A key the caller presses (RFC 4733) reaches the far end; this carrier offered no
    // telephone-event, so it comes as the key's two tones.
    phone.wait_sent(secs(10)).must();
    let heard_before = trunk.received_pcmu().len();
    phone.send_digits_rfc4733("5").must();
    let deadline = Instant::now() + secs(5);
    loop {
        let pcm: Vec<i16> = trunk
            .received_pcmu()
            .get(heard_before..)
            .unwrap_or_default()
            .iter()
            .map(|&b| common::g711::Law::Mu.decode(b))
            .collect();
        if pcm
            .chunks_exact(400)
            .any(|w| common::dtmf::detect_key(w) == Some('5'))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the far end never heard the caller's 5"
        );
        phone.rtp_arriving_during(Duration::from_millis(100));
    }
    assert_eq!(phone.hangup().must(), 200);
    trunk.wait_bye(secs(10)).must();

    let rec = wait_call_record(&server, phone.call_id(), secs(10));
    assert_eq!(field(&rec, "disposition"), "transferred", "{rec}");
    assert_eq!(field(&rec, "hangup_by"), "caller", "{rec}");
    let legs = rec["legs"].as_array().cloned().unwrap_or_default();
    assert_eq!(legs.len(), 1, "{rec}");
    assert_eq!(legs[0]["target"], NUMBER, "{rec}");
    assert_eq!(legs[0]["sip_status"], 200, "{rec}");
    assert!(legs[0]["talk_ms"].as_i64().unwrap_or(0) >= 1000, "{rec}");
    assert!(
        legs[0]["answered_at"].is_string() && legs[0]["ended_at"].is_string(),
        "{rec}"
    );
    let events = rec["events"].as_array().cloned().unwrap_or_default();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "transfer" && e["detail"]["target"] == NUMBER),
        "{rec}"
    );
    assert!(
        !server.log().contains(TRUNK_PW),
        "the trunk password is never logged"
    );
}

#[test]
fn a_busy_number_hangs_the_caller_up_and_the_record_says_failed() {
    let mut trunk = MockTrunk::bind(TRUNK_USER, TRUNK_PW);
    let server = server(&trunk);
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    trunk.take_call(407, 486, secs(15)).must();
    phone.wait_for_bye(secs(10)).must();

    let rec = wait_call_record(&server, phone.call_id(), secs(10));
    assert_eq!(field(&rec, "disposition"), "failed", "{rec}");
    assert_eq!(field(&rec, "hangup_by"), "system", "{rec}");
    assert!(rec["legs"].as_array().is_none_or(|l| l.is_empty()), "{rec}");
    let events = rec["events"].as_array().cloned().unwrap_or_default();
    let failed = events
        .iter()
        .find(|e| e["kind"] == "transfer_failed")
        .unwrap_or_else(|| panic!("no transfer_failed event: {rec}"));
    assert_eq!(failed["detail"]["status"], 486, "{rec}");
    assert_eq!(failed["detail"]["target"], NUMBER, "{rec}");
}

#[test]
fn a_sip_uri_with_an_ip_host_is_dialled_there_and_the_far_end_hanging_up_ends_the_call() {
    let mut trunk = MockTrunk::bind(TRUNK_USER, TRUNK_PW);
    let target = format!("sip:operator@{}", trunk.addr);
    let server = server_to(&trunk, &target);
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    let seen = trunk.take_call(401, 200, secs(15)).must();
    seen.dialled("operator", trunk.addr, CALLER).must();
    trunk.hang_up().must();
    phone.wait_for_bye(secs(10)).must();
    let rec = wait_call_record(&server, phone.call_id(), secs(10));
    assert_eq!(field(&rec, "disposition"), "transferred", "{rec}");
    assert_eq!(field(&rec, "hangup_by"), "agent", "{rec}");
    assert_eq!(rec["legs"][0]["target"], target.as_str(), "{rec}");
    assert_eq!(rec["legs"][0]["ended_by"], "target", "{rec}");
}

#[test]
fn a_trunk_over_tcp_gets_a_connection_from_the_server_and_carries_the_call() {
    let mut trunk = MockTrunk::bind_on(common::link::Transport::Tcp, TRUNK_USER, TRUNK_PW);
    let server = server_on(&trunk, NUMBER, "tcp");
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    let seen = trunk.take_call(407, 200, secs(15)).must();
    seen.dialled(NUMBER, trunk.addr, CALLER_ID).must();
    assert!(
        seen.authorized
            .header("Via")
            .is_some_and(|v| v.starts_with("SIP/2.0/TCP")),
        "{:?}",
        seen.authorized.header("Via")
    );
    phone.queue_pcm(&tone_pcm(CALLER_HZ, 3.0));
    let deadline = Instant::now() + secs(10);
    while tone_windows(&trunk.received_pcmu(), CALLER_HZ) < ONE_SECOND {
        assert!(Instant::now() < deadline, "no caller audio at the far end");
        phone.rtp_arriving_during(Duration::from_millis(100));
    }
    // The far end hangs up over the same connection; the server answers on it.
    trunk.hang_up().must();
    phone.wait_for_bye(secs(10)).must();
    let rec = wait_call_record(&server, phone.call_id(), secs(10));
    assert_eq!(field(&rec, "disposition"), "transferred", "{rec}");
}

#[test]
fn a_sip_uri_with_a_host_name_is_looked_up_and_dialled() {
    let mut trunk = MockTrunk::bind(TRUNK_USER, TRUNK_PW);
    let target = format!("sip:operator@localhost:{}", trunk.addr.port());
    let server = server_to(&trunk, &target);
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    let seen = trunk.take_call(401, 200, secs(15)).must();
    assert!(
        seen.request_line().contains("@localhost:"),
        "{}",
        seen.request_line()
    );
    // Talk a little: a hang-up in the same instant as the answer may count as before it.
    phone.rtp_arriving_during(Duration::from_millis(500));
    assert_eq!(phone.hangup().must(), 200);
    trunk.wait_bye(secs(10)).must();
    let rec = wait_call_record(&server, phone.call_id(), secs(10));
    assert_eq!(field(&rec, "disposition"), "transferred", "{rec}");
}

#[test]
fn a_host_name_that_does_not_resolve_fails_the_transfer() {
    let trunk = MockTrunk::bind(TRUNK_USER, TRUNK_PW);
    let server = server_to(&trunk, "sip:operator@no-such-host.invalid");
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    phone.wait_for_bye(secs(15)).must();
    let rec = wait_call_record(&server, phone.call_id(), secs(10));
    assert_eq!(field(&rec, "disposition"), "failed", "{rec}");
    let events = rec["events"].as_array().cloned().unwrap_or_default();
    assert!(
        events.iter().any(|e| e["kind"] == "transfer_failed"
            && e["detail"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("no-such-host.invalid"))),
        "{rec}"
    );
}

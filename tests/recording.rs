//! A queue with `record: true`: the conversation lands in a two-channel WAV linked from the CDR
//! (caller left, agent right), fetched with the API token only; retention deletes it and the CDR
//! says so. The agent's keypad reaches the caller's phone as RFC 4733.

mod common;

use std::time::{Duration, Instant};

use common::agent::{agent_yaml, tone_pcm, tone_windows, Agent};
use common::g711::Law;
use common::*;

const PW: &str = "correct horse battery";
const CALLER_HZ: f64 = 1000.0;
const AGENT_HZ: f64 = 500.0;

const SUP_PW: &str = "supervisor password 1";

fn config(extra: &str) -> String {
    format!(
        "queues:\n  - name: billing\n    record: true\n    wrap_up: 1s\n    announce_every: 60s\nagents:\n{}{extra}",
        agent_yaml("alice", PW, &[], &["billing"])
    )
}

/// Dials, answers as alice, and plays a tone each way until each side heard a second of it.
fn talk(server: &Server, alice: &mut Agent) -> (Phone, String) {
    let mut phone = Phone::udp(server);
    phone.call("7100", CALLER).must();
    let ring = alice.wait_ring(secs(15)).must();
    let call_id = ring["call_id"].as_str().expect("call_id").to_string();
    alice.answer(&call_id).must();
    let since = Instant::now();
    alice.send_tone_pcmu(AGENT_HZ);
    phone.queue_pcm(&tone_pcm(CALLER_HZ, 3.0));
    let deadline = since + secs(10);
    loop {
        let heard: Vec<u8> = phone
            .received()
            .iter()
            .filter(|p| p.at >= since && p.pt == 0)
            .flat_map(|p| p.payload.clone())
            .collect();
        if tone_windows(&alice.received_audio(), CALLER_HZ) >= 10
            && tone_windows(&heard, AGENT_HZ) >= 10
        {
            return (phone, call_id);
        }
        assert!(Instant::now() < deadline, "no audio both ways");
        phone.rtp_arriving_during(Duration::from_millis(100));
    }
}

/// The `data` chunk of a 16-bit stereo WAV, as (left, right) µ-law for `tone_windows`.
fn wav_channels(wav: &[u8]) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 2, "two channels");
    assert_eq!(
        u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]),
        8000
    );
    let mut at = 12;
    let data = loop {
        let id = &wav[at..at + 4];
        let len = u32::from_le_bytes([wav[at + 4], wav[at + 5], wav[at + 6], wav[at + 7]]) as usize;
        if id == b"data" {
            break &wav[at + 8..at + 8 + len];
        }
        at += 8 + len;
    };
    let samples: Vec<i16> = data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let left = samples
        .iter()
        .step_by(2)
        .map(|&s| Law::Mu.encode(s))
        .collect();
    let right = samples
        .iter()
        .skip(1)
        .step_by(2)
        .map(|&s| Law::Mu.encode(s))
        .collect();
    (left, right)
}

#[test]
fn recorded_call_has_caller_left_agent_right_and_only_the_token_or_a_supervisor_may_fetch_it() {
    let hash = switchboard::auth::hash_password(SUP_PW).expect("8+ bytes");
    let server = Server::start(
        ServerOpts::new()
            .flow("queue-rec", &queue_flow("queue-rec", "7100", "billing"))
            .config(&config(&format!(
            "supervisors:\n  - id: mia\n    name: Mia Supervisor\n    password_hash: \"{hash}\"\n"
        ))),
    );
    let mut alice = Agent::login(&server, "alice", PW).must();
    alice.set_available().must();
    let (mut phone, call_id) = talk(&server, &mut alice);

    // The agent's keypad: the caller's phone gets the digit as RFC 4733 events.
    let since = Instant::now();
    alice.dtmf(&call_id, '5').must();
    let deadline = since + secs(5);
    let events = loop {
        phone.rtp_arriving_during(Duration::from_millis(100));
        let ev: Vec<_> = phone
            .received()
            .into_iter()
            .filter(|p| p.at >= since && p.pt == 101)
            .collect();
        if ev
            .iter()
            .filter(|p| p.payload.len() >= 4 && p.payload[1] & 0x80 != 0)
            .count()
            >= 3
        {
            break ev;
        }
        assert!(
            Instant::now() < deadline,
            "no RFC 4733 end packets at the caller"
        );
    };
    assert!(events.iter().all(|p| p.ts == events[0].ts), "one key press");
    let digit = common::dtmf::parse_event(&events[0].payload).expect("event");
    assert_eq!(digit.event, common::dtmf::event_code('5').unwrap());

    assert_eq!(phone.hangup().must(), 200);
    let record = wait_call_record(&server, &call_id, secs(10));
    let file = record["recording"]
        .as_str()
        .expect("recording linked")
        .to_string();
    assert!(
        record["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "recording"),
        "{record}"
    );
    let path = format!("/api/calls/{}/recording", server::percent_encode(&call_id));

    // Written off the call path: wait until it is there.
    let deadline = Instant::now() + secs(10);
    let wav = loop {
        let r = http::get(server.http, &path, Some(http::API_TOKEN)).must();
        if r.status == 200 {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no recording: {} {}",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let header = |name: &str| {
        wav.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "audio/wav");
    assert!(header("content-disposition").contains(&file));
    let (left, right) = wav_channels(&wav.body);
    assert!(
        tone_windows(&left, CALLER_HZ) >= 10,
        "the caller on the left"
    );
    assert!(
        tone_windows(&right, AGENT_HZ) >= 10,
        "the agent on the right"
    );
    assert_eq!(tone_windows(&left, AGENT_HZ), 0, "no agent on the left");
    assert_eq!(tone_windows(&right, CALLER_HZ), 0, "no caller on the right");

    assert_eq!(http::get(server.http, &path, None).must().status, 401);
    assert_eq!(
        http::get(server.http, &path, Some(&alice.token))
            .must()
            .status,
        403
    );
    // A supervisor reviewing the call gets the same file, and the fetch is logged by whom.
    let (code, body) = common::agent::post_json(
        server.http,
        "/api/supervisor/login",
        &serde_json::json!({"supervisor": "mia", "password": SUP_PW}),
    )
    .must();
    assert_eq!(code, 200, "{body}");
    let sup = body["token"].as_str().expect("token").to_string();
    let by_sup = http::get(server.http, &path, Some(&sup)).must();
    assert_eq!(by_sup.status, 200);
    assert_eq!(by_sup.body, wav.body, "the same recording");
    assert!(
        server.log().contains("supervisor:mia"),
        "the fetch is logged"
    );
    assert!(!server.log().contains(&sup), "the session token is not");
    assert_eq!(
        http::get(
            server.http,
            "/api/calls/nope/recording",
            Some(http::API_TOKEN)
        )
        .must()
        .status,
        404
    );
}

#[test]
fn retention_deletes_the_recording_and_the_cdr_says_so() {
    let server = Server::start(
        ServerOpts::new()
            .flow("queue-rec", &queue_flow("queue-rec", "7100", "billing"))
            .config(&config("recordings:\n  retention: 1s\n")),
    );
    let mut alice = Agent::login(&server, "alice", PW).must();
    alice.set_available().must();
    let (mut phone, call_id) = talk(&server, &mut alice);
    assert_eq!(phone.hangup().must(), 200);
    let first = wait_call_record(&server, &call_id, secs(10));
    // The sweeper may already have cleared `recording`; the `recording` event keeps the name.
    let file = first["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "recording"))
        .and_then(|e| e["detail"]["file"].as_str())
        .unwrap_or_else(|| panic!("no recording event: {first}"))
        .to_string();

    let deadline = Instant::now() + secs(15);
    let path = format!("/api/calls/{}", server::percent_encode(&call_id));
    loop {
        let (_, rec) = http_get_json(&server, &path);
        let deleted = rec["events"].as_array().is_some_and(|e| {
            e.iter()
                .any(|e| e["kind"] == "recording_deleted" && e["detail"]["file"] == file.as_str())
        });
        if deleted {
            assert!(rec["recording"].is_null(), "{rec}");
            break;
        }
        assert!(Instant::now() < deadline, "never deleted: {rec}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!server.data_dir().join("recordings").join(&file).exists());
    let r = http::get(
        server.http,
        &format!("/api/calls/{}/recording", server::percent_encode(&call_id)),
        Some(http::API_TOKEN),
    )
    .must();
    assert_eq!(r.status, 404);
}

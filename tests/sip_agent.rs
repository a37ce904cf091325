//! Agents on SIP phones: a desk phone registers (digest challenge answered), a caller reaches a
//! queue, the phone rings with the caller's number, answers, and the two hear each other's tones;
//! either side hangs up and the record names the agent. A phone that never answers loses the call
//! to the next agent and is set away. REGISTER's refusals: wrong password, too-brief expiry.

mod common;

use std::time::{Duration, Instant};

use common::agent::{agent_yaml, tone_pcm, tone_windows};
use common::deskphone::{sip_ha1, DeskPhone};
use common::*;

const CONSOLE_PW: &str = "correct horse battery";
const CALLER_HZ: f64 = 1000.0;
const AGENT_HZ: f64 = 500.0;
const ONE_SECOND: usize = 10;

fn sip_agent(id: &str, user: &str, password: &str) -> String {
    format!(
        "{}    sip: {{ user: {user}, ha1: \"{}\" }}\n",
        agent_yaml(id, CONSOLE_PW, &[("billing", 3)], &["billing"]),
        sip_ha1(user, password)
    )
}

fn server(agents: &[String], ring_timeout: &str) -> Server {
    Server::start(ServerOpts::new().flow("queue-billing", &queue_flow("queue-billing", "7100", "billing")).config(&format!(
        "queues:\n  - name: billing\n    wrap_up: 1s\n    ring_timeout: {ring_timeout}\n    announce_every: 60s\nagents:\n{}",
        agents.concat()
    )))
}

fn agent_state(server: &Server, id: &str) -> String {
    let (_, agents) = http_get_json(server, "/api/agents");
    agents
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == id))
        .map(|a| a["state"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

fn wait_state(server: &Server, id: &str, state: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let now = agent_state(server, id);
        if now == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} is {now:?}, expected {state:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn caller_audio_since(phone: &Phone, since: Instant) -> Vec<u8> {
    phone
        .received()
        .iter()
        .filter(|p| p.at >= since && p.pt == 0)
        .flat_map(|p| p.payload.clone())
        .collect()
}

fn prove_audio_both_ways(phone: &mut Phone, desk: &DeskPhone) {
    let since = Instant::now();
    desk.queue_pcm(&tone_pcm(AGENT_HZ, 8.0));
    phone.queue_pcm(&tone_pcm(CALLER_HZ, 8.0));
    let deadline = since + secs(10);
    loop {
        let at_agent = tone_windows(&desk.audio(), CALLER_HZ);
        let at_caller = tone_windows(&caller_audio_since(phone, since), AGENT_HZ);
        if at_agent >= ONE_SECOND && at_caller >= ONE_SECOND {
            assert_eq!(tone_windows(&desk.audio(), AGENT_HZ), 0, "no echo");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the agent's phone heard {at_agent} windows of the caller's tone, the caller {at_caller} of the agent's"
        );
        phone.rtp_arriving_during(Duration::from_millis(100));
    }
}

/// Caller dials the queue; `desk` rings with the caller's number and the queue, answers, audio
/// flows both ways.
fn connect(server: &Server, desk: &mut DeskPhone) -> Phone {
    let mut phone = Phone::udp(server);
    phone.call("7100", CALLER).must();
    let invite = desk.wait_invite(secs(15)).must();
    assert!(
        invite.header("From").unwrap_or_default().contains(CALLER),
        "the phone shows the caller: {:?}",
        invite.header("From")
    );
    assert_eq!(invite.header("X-Switchboard-Queue"), Some("billing"));
    desk.answer().must();
    prove_audio_both_ways(&mut phone, desk);
    phone
}

fn num(record: &serde_json::Value, name: &str) -> u64 {
    record[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {record}"))
}

#[test]
fn register_is_challenged_refuses_wrong_passwords_and_brief_expiry_and_unregisters() {
    let server = server(&[sip_agent("alice", "alice", "phone-secret-1")], "10s");
    let mut desk = DeskPhone::new(server.sip, "alice", "phone-secret-1");
    assert_eq!(
        desk.register_with("wrong-password", 120).must(),
        vec![401, 403]
    );
    assert_eq!(agent_state(&server, "alice"), "logged_out");
    assert_eq!(desk.register(30).must(), vec![401, 423]);
    let mut stranger = DeskPhone::new(server.sip, "mallory", "phone-secret-1");
    assert_eq!(
        stranger.register(120).must(),
        vec![401, 403],
        "unknown users get the same challenge, then 403"
    );
    assert_eq!(desk.register(120).must(), vec![401, 200]);
    wait_state(&server, "alice", "available", secs(5));
    assert_eq!(desk.register(0).must(), vec![401, 200]);
    wait_state(&server, "alice", "logged_out", secs(5));
}

#[test]
fn sip_agent_answers_a_queued_call_talks_both_ways_and_hangs_up() {
    let server = server(&[sip_agent("alice", "alice", "phone-secret-1")], "10s");
    let mut desk = DeskPhone::new(server.sip, "alice", "phone-secret-1");
    assert_eq!(desk.register(300).must(), vec![401, 200]);
    wait_state(&server, "alice", "available", secs(5));

    let mut phone = connect(&server, &mut desk);
    assert_eq!(agent_state(&server, "alice"), "on_call");
    assert_eq!(desk.hangup().must(), 200);
    phone.wait_for_bye(secs(10)).must();

    let record = wait_call_record(&server, phone.call_id(), secs(10));
    assert_eq!(field(&record, "agent_id"), "alice", "{record}");
    assert!(!field(&record, "agent_answered_at").is_empty(), "{record}");
    assert_eq!(field(&record, "hangup_by"), "agent", "{record}");
    // A second of tone each way was heard; a loaded test machine's senders catch up in bursts.
    assert!(num(&record, "talk_ms") >= 800, "{record}");
    // Wrap-up, then available again without anyone touching a console.
    wait_state(&server, "alice", "available", secs(5));
}

#[test]
fn caller_hangs_up_and_the_agents_phone_gets_bye() {
    let server = server(&[sip_agent("alice", "alice", "phone-secret-1")], "10s");
    let mut desk = DeskPhone::new(server.sip, "alice", "phone-secret-1");
    assert_eq!(desk.register(300).must(), vec![401, 200]);
    wait_state(&server, "alice", "available", secs(5));
    let mut phone = connect(&server, &mut desk);
    assert_eq!(phone.hangup().must(), 200);
    desk.wait_bye(secs(10)).must();
    let record = wait_call_record(&server, phone.call_id(), secs(10));
    assert_eq!(field(&record, "agent_id"), "alice", "{record}");
    assert_eq!(field(&record, "hangup_by"), "caller", "{record}");
    // A second of tone each way was heard; a loaded test machine's senders catch up in bursts.
    assert!(num(&record, "talk_ms") >= 800, "{record}");
    wait_state(&server, "alice", "available", secs(5));
}

#[test]
fn a_phone_that_never_answers_loses_the_call_to_the_next_agent_and_goes_away() {
    let server = server(
        &[
            sip_agent("alice", "alice", "phone-secret-1"),
            sip_agent("bob", "bob", "phone-secret-2"),
        ],
        "3s",
    );
    let mut alice = DeskPhone::new(server.sip, "alice", "phone-secret-1");
    let mut bob = DeskPhone::new(server.sip, "bob", "phone-secret-2");
    assert_eq!(alice.register(300).must(), vec![401, 200]);
    assert_eq!(bob.register(300).must(), vec![401, 200]);
    wait_state(&server, "alice", "available", secs(5));
    wait_state(&server, "bob", "available", secs(5));

    let mut phone = Phone::udp(&server);
    phone.call("7100", CALLER).must();
    // Whoever rings first never answers.
    let (first_id, mut first, mut second) = {
        let deadline = Instant::now() + secs(15);
        loop {
            if alice.wait_invite(Duration::from_millis(200)).is_ok() {
                break ("alice", alice, bob);
            }
            if bob.wait_invite(Duration::from_millis(200)).is_ok() {
                break ("bob", bob, alice);
            }
            assert!(Instant::now() < deadline, "no phone rang");
        }
    };
    assert!(
        first.wait_cancel(secs(10)),
        "the unanswered phone is cancelled"
    );
    second.wait_invite(secs(10)).must();
    second.answer().must();
    prove_audio_both_ways(&mut phone, &second);
    assert_eq!(agent_state(&server, first_id), "away");
    assert_eq!(phone.hangup().must(), 200);
    second.wait_bye(secs(10)).must();
}

#[test]
fn the_desk_phones_hold_button_plays_music_to_the_caller_and_its_keypad_reaches_the_caller() {
    let server = server(&[sip_agent("alice", "alice", "phone-secret-1")], "10s");
    let mut desk = DeskPhone::new(server.sip, "alice", "phone-secret-1");
    assert_eq!(desk.register(300).must(), vec![401, 200]);
    wait_state(&server, "alice", "available", secs(5));
    let mut phone = connect(&server, &mut desk);
    // The caller heard the music while queued; hold must start it again.
    let moh = english_prompts(&["moh"]);
    let queued_music = phone.wait_heard(&moh, "moh", 0, secs(1)).must().len();
    desk.wait_sent(secs(10)).must();

    // Hold on the phone: a sendonly re-INVITE is answered 200 recvonly (not 488, which made
    // phones drop the call) and the caller hears the queue's music.
    let (status, answer) = desk.reinvite("sendonly").must();
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("a=recvonly"), "{answer}");
    phone
        .wait_heard(&moh, "moh", queued_music + 1, secs(10))
        .must();

    // Resume: sendrecv again, and the two hear each other's tones afresh.
    let (status, answer) = desk.reinvite("sendrecv").must();
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("a=sendrecv"), "{answer}");
    let since = Instant::now();
    // Short tones: the key press below queues behind the phone's tone.
    desk.queue_pcm(&tone_pcm(AGENT_HZ, 2.5));
    phone.queue_pcm(&tone_pcm(CALLER_HZ, 2.5));
    let deadline = since + secs(10);
    loop {
        let at_desk: Vec<u8> = desk
            .received()
            .iter()
            .filter(|p| p.pt == 0 && p.at >= since)
            .flat_map(|p| p.payload.clone())
            .collect();
        let at_agent = tone_windows(&at_desk, CALLER_HZ);
        let at_caller = tone_windows(&caller_audio_since(&phone, since), AGENT_HZ);
        if at_agent >= ONE_SECOND && at_caller >= ONE_SECOND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after resume the phone heard {at_agent} windows of the caller, the caller {at_caller} of the agent"
        );
        phone.rtp_arriving_during(Duration::from_millis(100));
    }

    // The agent types 5 on the phone's keypad (RFC 4733): the caller receives a 5 as RFC 4733.
    desk.wait_sent(secs(10)).must();
    let since = Instant::now();
    desk.press("5").must();
    let deadline = since + secs(8);
    loop {
        phone.rtp_arriving_during(Duration::from_millis(100));
        let keys: Vec<u8> = phone
            .received()
            .iter()
            .filter(|p| p.at >= since && p.pt == 101)
            .filter_map(|p| common::dtmf::parse_event(&p.payload).map(|e| e.event))
            .collect();
        if !keys.is_empty() {
            assert!(keys.iter().all(|k| *k == 5), "{keys:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the caller got no key from the agent's phone"
        );
    }

    assert_eq!(desk.hangup().must(), 200);
    phone.wait_for_bye(secs(10)).must();
    let record = wait_call_record(&server, phone.call_id(), secs(10));
    let holds: Vec<bool> = record["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "hold")
        .filter_map(|e| e["detail"]["on"].as_bool())
        .collect();
    assert_eq!(holds, [true, false], "{record}");
}

#[test]
fn a_register_brute_force_blocks_its_source_while_a_phone_elsewhere_still_registers() {
    let server = Server::start(ServerOpts::new().flow("queue-billing", &queue_flow("queue-billing", "7100", "billing")).config(&format!(
        "security: {{ auth_failures: 3, window: 1m, block_for: 1m }}\nqueues:\n  - name: billing\n    wrap_up: 1s\n    ring_timeout: 10s\nagents:\n{}",
        sip_agent("alice", "alice", "phone-secret-1")
    )));
    // Someone on 127.0.0.2 guesses alice's phone password.
    let mut guesser = DeskPhone::new_at("127.0.0.2", server.sip, "alice", "guess");
    for guess in ["123456", "password", "alice2026"] {
        assert_eq!(guesser.register_with(guess, 120).must(), vec![401, 403]);
    }
    // Blocked now: not even a challenge, so the right password does not help from there.
    assert_eq!(
        guesser.register_with("phone-secret-1", 120).must(),
        vec![403]
    );
    assert_eq!(agent_state(&server, "alice"), "logged_out");
    // Alice's real phone, on another address, registers and takes calls.
    let mut desk = DeskPhone::new(server.sip, "alice", "phone-secret-1");
    assert_eq!(desk.register(300).must(), vec![401, 200]);
    wait_state(&server, "alice", "available", secs(5));
    let (_, health) = http_get_json(&server, "/healthz");
    assert_eq!(health["auth_blocks"], 1, "the block is counted: {health}");
    let log = server.log();
    assert!(
        !log.contains("guess") && !log.contains("phone-secret-1"),
        "no password in the log"
    );
}

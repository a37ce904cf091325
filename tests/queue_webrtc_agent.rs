//! A caller who reaches a `queue` step waits with music, the right agent's console rings, the
//! agent answers over WebRTC and the two hear each other; either side hangs up and the record says
//! who, where and how long. The agent is `RtcTestPeer` (the offering side of the server's own
//! WebRTC stack) behind the console's real login and WebSocket; the caller is the SIP softphone.

mod common;

use std::time::{Duration, Instant};

use common::agent::{agent_yaml, tone_pcm, tone_windows, Agent};
use common::*;

const FLOW: &str = r##"
flow: queue-billing
numbers: ["7100"]
language: en
start: welcome
steps:
  welcome:
    play: welcome
    next: billing
  billing:
    queue: { name: billing, skills: { billing: 1 }, timeout: 2m }
    on_timeout: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

/// The same queue, for callers who need an expert (billing 3 or better).
const EXPERT_FLOW: &str = r##"
flow: queue-billing-expert
numbers: ["7103"]
language: en
start: billing
steps:
  billing:
    queue: { name: billing, skills: { billing: 3 }, timeout: 2m }
    on_timeout: hangup
"##;

const PW: &str = "correct horse battery";
const CALLER_HZ: f64 = 1000.0;
const AGENT_HZ: f64 = 500.0;
/// One second of a tone, in the 100 ms windows `tone_windows` counts.
const ONE_SECOND: usize = 10;

fn config(wrap_up: &str, ring_timeout: &str, agents: &[String]) -> String {
    format!(
        "queues:\n  - name: billing\n    wrap_up: {wrap_up}\n    ring_timeout: {ring_timeout}\n    announce_every: 60s\nagents:\n{}",
        agents.concat()
    )
}

fn billing_agent(id: &str, level: u8) -> String {
    agent_yaml(id, PW, &[("billing", level)], &["billing"])
}

fn call_id_of(ring: &serde_json::Value) -> String {
    ring["call_id"]
        .as_str()
        .unwrap_or_else(|| panic!("ring without call_id: {ring}"))
        .to_string()
}

/// What the caller received since `since`, as µ-law.
fn caller_audio_since(phone: &Phone, since: Instant) -> Vec<u8> {
    phone
        .received()
        .iter()
        .filter(|p| p.at >= since && p.pt == 0)
        .flat_map(|p| p.payload.clone())
        .collect()
}

/// Plays a tone each way and waits (bounded) until each side has heard a second of the other's.
fn prove_audio_both_ways(phone: &mut Phone, agent: &Agent) {
    let since = Instant::now();
    agent.send_tone_pcmu(AGENT_HZ);
    phone.queue_pcm(&tone_pcm(CALLER_HZ, 8.0));
    let deadline = since + secs(8);
    loop {
        let at_agent = tone_windows(&agent.received_audio(), CALLER_HZ);
        let at_caller = tone_windows(&caller_audio_since(phone, since), AGENT_HZ);
        if at_agent >= ONE_SECOND && at_caller >= ONE_SECOND {
            // Each side hears the other, not itself echoed back.
            assert_eq!(tone_windows(&agent.received_audio(), AGENT_HZ), 0);
            assert_eq!(
                tone_windows(&caller_audio_since(phone, since), CALLER_HZ),
                0
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {:?}: the agent heard {at_agent} windows of the caller's {CALLER_HZ} Hz \
             ({} bytes), the caller heard {at_caller} windows of the agent's {AGENT_HZ} Hz",
            since.elapsed(),
            agent.received_audio().len()
        );
        // Waits while answering any SIP the server sends.
        phone.rtp_arriving_during(Duration::from_millis(100));
    }
}

fn num(record: &serde_json::Value, name: &str) -> u64 {
    record[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} is not a number in {record}"))
}

/// Dials the queue, waits for `agent`'s ring, answers and proves audio both ways.
fn connect(server: &Server, agent: &mut Agent) -> (Phone, String) {
    let mut phone = Phone::udp(server);
    phone.call("7100", CALLER).must();
    let ring = agent.wait_ring(secs(15)).must();
    assert_eq!(ring["queue"], "billing", "ring: {ring}");
    assert!(
        field(&ring, "caller").contains(CALLER),
        "the screen pop shows the caller's number: {ring}"
    );
    let call_id = call_id_of(&ring);
    agent.answer(&call_id).must();
    prove_audio_both_ways(&mut phone, agent);
    (phone, call_id)
}

#[test]
fn agent_answers_talks_both_ways_and_hangs_up() {
    let server = Server::start(
        ServerOpts::new()
            .flow("queue-billing", FLOW)
            .config(&config("2s", "10s", &[billing_agent("alice", 4)])),
    );
    let mut alice = Agent::login(&server, "alice", PW).must();
    alice.set_available().must();

    let (mut phone, call_id) = connect(&server, &mut alice);

    alice.hangup(&call_id).must();
    phone.wait_for_bye(secs(10)).must();
    let ended = alice
        .wait_msg("call_ended", secs(5), |m| m["type"] == "call_ended")
        .must();
    assert_eq!(ended["by"], "agent");
    let wrap = alice.wait_state("wrap_up", secs(5)).must();
    assert_eq!(wrap["wrap_up_ms"], 2000, "{wrap}");

    let record = wait_call_record(&server, &call_id, secs(10));
    assert_eq!(field(&record, "queue"), "billing", "{record}");
    assert_eq!(field(&record, "agent_id"), "alice", "{record}");
    assert!(!field(&record, "agent_answered_at").is_empty(), "{record}");
    assert!(!field(&record, "enqueued_at").is_empty(), "{record}");
    assert_eq!(field(&record, "disposition"), "completed", "{record}");
    assert_eq!(field(&record, "hangup_by"), "agent", "{record}");
    // The talk lasted at least the second of tone each way; the wait at least the ring.
    assert!(num(&record, "talk_ms") >= 1000, "{record}");
    assert!(num(&record, "talk_ms") < 60_000, "{record}");
    assert!(num(&record, "wait_ms") > 0, "{record}");
    assert!(num(&record, "wait_ms") < 30_000, "{record}");
}

#[test]
fn caller_hangs_up_and_the_agent_wraps_up_then_is_available() {
    let server = Server::start(
        ServerOpts::new()
            .flow("queue-billing", FLOW)
            .config(&config("2s", "10s", &[billing_agent("alice", 4)])),
    );
    let mut alice = Agent::login(&server, "alice", PW).must();
    alice.set_available().must();
    let (mut phone, call_id) = connect(&server, &mut alice);

    assert_eq!(phone.hangup().must(), 200);
    let ended = alice
        .wait_msg("call_ended", secs(5), |m| m["type"] == "call_ended")
        .must();
    assert_eq!(ended["by"], "caller", "{ended}");
    alice.wait_state("wrap_up", secs(5)).must();
    let wrap_started = Instant::now();
    alice.wait_state("available", secs(8)).must();
    // Back only after the queue's 2 s of wrap-up, not at once (a little slack for the clocks).
    assert!(
        wrap_started.elapsed() >= Duration::from_millis(1500),
        "available after {:?}",
        wrap_started.elapsed()
    );

    let record = wait_call_record(&server, &call_id, secs(10));
    assert_eq!(field(&record, "agent_id"), "alice", "{record}");
    assert_eq!(field(&record, "disposition"), "completed", "{record}");
    assert_eq!(field(&record, "hangup_by"), "caller", "{record}");
    assert!(num(&record, "talk_ms") >= 1000, "{record}");
}

#[test]
fn a_call_needing_billing_3_rings_only_the_proficient_agent() {
    let server = Server::start(
        ServerOpts::new()
            .flow("queue-billing", FLOW)
            .flow("queue-billing-expert", EXPERT_FLOW)
            .config(&config(
                "2s",
                "10s",
                &[billing_agent("novice", 1), billing_agent("expert", 4)],
            )),
    );
    // The novice has been idle longest, so only the skill requirement keeps the call from them.
    let mut novice = Agent::login(&server, "novice", PW).must();
    novice.set_available().must();
    let mut expert = Agent::login(&server, "expert", PW).must();
    expert.set_available().must();

    let mut hard = Phone::udp(&server);
    hard.call("7103", CALLER).must();
    let ring = expert.wait_ring(secs(15)).must();
    let hard_id = call_id_of(&ring);
    expert.answer(&hard_id).must();
    assert!(
        !novice.has_pending("ring"),
        "the billing-1 agent was rung for a call needing billing 3"
    );

    // The novice was routable all along: a plain billing call goes to them while the expert talks.
    let mut easy = Phone::udp(&server);
    easy.call("7100", "+5511900000002").must();
    let ring = novice.wait_ring(secs(15)).must();
    assert_ne!(call_id_of(&ring), hard_id);
    assert!(!expert.has_pending("ring"), "the busy expert was rung");
    novice.answer(&call_id_of(&ring)).must();

    hard.hangup().must();
    easy.hangup().must();
    let record = wait_call_record(&server, &hard_id, secs(10));
    assert_eq!(field(&record, "agent_id"), "expert", "{record}");
}

#[test]
fn a_waiting_caller_hears_music_shows_on_the_boards_and_abandons() {
    let server = Server::start(
        ServerOpts::new()
            .flow("queue-billing", FLOW)
            .config(&config("2s", "10s", &[billing_agent("alice", 4)])),
    );
    // Logged in but away: the queue has an agent, none available.
    let alice = Agent::login(&server, "alice", PW).must();
    let prompts = english_prompts(&["welcome", "moh"]);

    let mut phone = Phone::udp(&server);
    phone.call("7100", CALLER).must();
    phone.wait_heard(&prompts, "moh", 1, secs(15)).must();
    phone.rtp_arriving_during(Duration::from_millis(500));

    let (status, queues) = http_get_json(&server, "/api/queues");
    assert_eq!(status, 200, "{queues}");
    let billing = queues
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["name"] == "billing"))
        .unwrap_or_else(|| panic!("no billing in /api/queues: {queues}"));
    assert_eq!(billing["waiting"], 1, "{billing}");
    assert!(num(billing, "longest_wait_ms") >= 500, "{billing}");
    let (status, agents) = http_get_json(&server, "/api/agents");
    assert_eq!(status, 200, "{agents}");
    let a = agents
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == "alice"))
        .unwrap_or_else(|| panic!("no alice in /api/agents: {agents}"));
    assert_eq!(a["state"], "away", "{a}");
    // The boards are not public.
    let unauth = common::http::get(server.http, "/api/queues", None).must();
    assert_eq!(unauth.status, 401);

    assert_eq!(phone.hangup().must(), 200);
    assert!(!alice.has_pending("ring"), "an away agent was rung");
    let record = wait_call_record(&server, phone.call_id(), secs(10));
    assert_eq!(field(&record, "queue"), "billing", "{record}");
    assert_eq!(field(&record, "disposition"), "abandoned", "{record}");
    assert_eq!(field(&record, "agent_id"), "", "{record}");
    let (_, queues) = http_get_json(&server, "/api/queues");
    let billing = queues
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["name"] == "billing"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        billing["waiting"], 0,
        "the abandoned call left the queue: {billing}"
    );
}

#[test]
fn a_ring_whose_agent_drops_is_offered_to_the_other_agent() {
    // A ring timeout far beyond the test's bound: only the dropped socket can move the call.
    let server = Server::start(
        ServerOpts::new()
            .flow("queue-billing", FLOW)
            .config(&config(
                "2s",
                "60s",
                &[billing_agent("ana", 4), billing_agent("bea", 4)],
            )),
    );
    let mut ana = Agent::login(&server, "ana", PW).must();
    ana.set_available().must();
    let mut bea = Agent::login(&server, "bea", PW).must();
    bea.set_available().must();

    let mut phone = Phone::udp(&server);
    phone.call("7100", CALLER).must();
    // Whoever the router picks first loses their socket while it rings.
    let deadline = Instant::now() + secs(15);
    let (first, second) = loop {
        if ana.has_pending("ring") {
            break (&mut ana, &mut bea);
        }
        if bea.has_pending("ring") {
            break (&mut bea, &mut ana);
        }
        assert!(Instant::now() < deadline, "no agent was rung");
        phone.rtp_arriving_during(Duration::from_millis(50));
    };
    let ring = first.wait_ring(secs(1)).must();
    let call_id = call_id_of(&ring);
    let dropped_at = Instant::now();
    first.drop_socket();

    let again = second.wait_ring(secs(5)).must();
    assert_eq!(call_id_of(&again), call_id);
    assert!(dropped_at.elapsed() < secs(5));
    second.answer(&call_id).must();
    prove_audio_both_ways(&mut phone, second);
    let second_id = second.id.clone();
    phone.hangup().must();

    let record = wait_call_record(&server, &call_id, secs(10));
    assert_eq!(field(&record, "agent_id"), second_id, "{record}");
    let (_, agents) = http_get_json(&server, "/api/agents");
    let dropped = agents
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == first.id.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_ne!(dropped["state"], "available", "{agents}");
}

//! Issue 3: an agent hands a caller to a colleague. The caller identified themselves with a PIN,
//! agent ana answers and talks, transfers to agent bea; bea's console rings with the same screen
//! pop (caller, account, IVR path), bea answers and talks with the caller, the caller hangs up.
//! The record names bea, holds a `transfer` event and one leg per agent, and its talk time is
//! the two conversations added up.

mod common;

use common::agent::{agent_yaml, Agent};
use common::talk::prove_audio_both_ways;
use common::*;

const FLOW: &str = r##"
flow: pin-billing
numbers: ["7100"]
language: en
start: identify
steps:
  identify:
    pin:
      account: caller
      prompt: enter-pin
      digits: 4-8
      terminator: "#"
      timeout: 6s
      attempts: 3
      retry_prompt: pin-invalid
    on_ok: billing
    on_fail: goodbye
  billing:
    queue: { name: billing, skills: { billing: 1 }, timeout: 2m }
    on_timeout: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

const PW: &str = "correct horse battery";
const PIN: &str = "73829461";

fn config() -> String {
    format!(
        "queues:\n  - name: billing\n    wrap_up: 1s\n    ring_timeout: 20s\n    announce_every: 60s\nagents:\n{}{}",
        agent_yaml("ana", PW, &[("billing", 3)], &["billing"]),
        agent_yaml("bea", PW, &[("billing", 3)], &["billing"]),
    )
}

fn num(v: &serde_json::Value, name: &str) -> i64 {
    v[name]
        .as_i64()
        .unwrap_or_else(|| panic!("{name} is not a number in {v}"))
}

#[test]
fn a_transferred_caller_keeps_their_context_and_the_record_has_a_leg_per_agent() {
    let server = Server::start(
        ServerOpts::new()
            .flow("pin-billing", FLOW)
            .account(Account::new("m-100", CALLER, PIN).tier("gold"))
            .config(&config()),
    );
    let mut ana = Agent::login(&server, "ana", PW).must();
    ana.set_available().must();
    // bea is logged in but away, so the first ring can only go to ana.
    let mut bea = Agent::login(&server, "bea", PW).must();

    let prompts = english_prompts(&["enter-pin", "pin-invalid", "goodbye"]);
    let mut phone = Phone::udp(&server);
    phone.call("7100", CALLER).must();
    phone.wait_heard(&prompts, "enter-pin", 1, secs(10)).must();
    phone.send_digits_rfc4733(&format!("{PIN}#")).must();

    let first = ana.wait_ring(secs(15)).must();
    let call_id = first["call_id"].as_str().unwrap_or_default().to_string();
    assert!(!call_id.is_empty(), "{first}");
    assert_eq!(
        first["account"]["id"], "m-100",
        "the pop shows the account: {first}"
    );
    ana.answer(&call_id).must();
    prove_audio_both_ways(&mut phone, &ana, 1000.0, 500.0).must();

    bea.set_available().must();
    ana.transfer(&call_id, None, Some("bea")).must();
    let ended = ana
        .wait_msg("call_ended", secs(5), |m| m["type"] == "call_ended")
        .must();
    assert_eq!(ended["by"], "transfer", "{ended}");

    let second = bea.wait_ring(secs(10)).must();
    assert_eq!(second["call_id"], call_id.as_str(), "{second}");
    for key in ["caller", "dialed", "account", "ivr_path", "digits", "queue"] {
        assert_eq!(
            second[key], first[key],
            "bea's screen pop differs from ana's in `{key}`: {second} vs {first}"
        );
    }
    assert!(field(&second, "caller").contains(CALLER), "{second}");
    assert!(!ana.has_pending("ring"), "a transfer to bea rang ana again");
    bea.answer(&call_id).must();
    prove_audio_both_ways(&mut phone, &bea, 1200.0, 700.0).must();
    assert_eq!(phone.hangup().must(), 200);

    let record = wait_call_record(&server, &call_id, secs(10));
    assert_eq!(field(&record, "agent_id"), "bea", "{record}");
    assert_eq!(field(&record, "account_id"), "m-100", "{record}");
    assert_eq!(field(&record, "disposition"), "completed", "{record}");
    assert_eq!(field(&record, "hangup_by"), "caller", "{record}");
    let events = record["events"].as_array().cloned().unwrap_or_default();
    let transfers: Vec<_> = events.iter().filter(|e| e["kind"] == "transfer").collect();
    assert_eq!(transfers.len(), 1, "{record}");
    let t = &transfers[0];
    assert_eq!(t["detail"]["from_agent"], "ana", "{t}");
    assert_eq!(t["detail"]["to_agent"], "bea", "{t}");
    assert_eq!(t["detail"]["to_queue"], "billing", "{t}");
    assert!(t["at"].is_string(), "{t}");

    let legs = record["legs"].as_array().cloned().unwrap_or_default();
    let who: Vec<(&str, &str)> = legs
        .iter()
        .map(|l| {
            (
                l["agent_id"].as_str().unwrap_or(""),
                l["ended_by"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(who, [("ana", "transfer"), ("bea", "caller")], "{record}");
    // Each agent talked at least the second of tone each way.
    for leg in &legs {
        assert!(num(leg, "talk_ms") >= 1000, "{leg}");
        assert!(
            leg["answered_at"].as_str() < leg["ended_at"].as_str(),
            "{leg}"
        );
    }
    // bea picked up after ana left; the talk is the two legs, not the time in between.
    assert!(
        legs[1]["answered_at"].as_str() >= legs[0]["ended_at"].as_str(),
        "{record}"
    );
    assert_eq!(
        num(&record, "talk_ms"),
        num(&legs[0], "talk_ms") + num(&legs[1], "talk_ms"),
        "{record}"
    );
    // The wait is the caller's first one, until ana answered.
    assert!(num(&record, "wait_ms") < 15_000, "{record}");
}

//! Webhooks and `/metrics` against the real server. The receiver is a MOCK of the customer's CRM
//! (tests/common/crm.rs), an external system we do not run.

mod common;

use common::crm::Crm;
use common::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const FLOW: &str = r##"
flow: hooks
numbers: ["7100"]
language: en
start: bye
steps:
  bye:
    play: goodbye
    next: hangup
"##;

fn config(crm: &Crm, extra: &str) -> String {
    format!(
        "webhooks:\n  - url: \"{}\"\n    secret: \"crm-secret\"\n    backoff: 200ms\n{extra}",
        crm.url()
    )
}

fn expected_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(b"crm-secret").expect("hmac key");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// One call to the goodbye flow; the server hangs up after the prompt.
fn one_call(server: &Server) -> String {
    let mut phone = Phone::udp(server);
    phone.call("7100", CALLER).must();
    phone.wait_for_bye(secs(15)).must();
    let id = phone.call_id().to_string();
    wait_call_record(server, &id, secs(5));
    id
}

#[test]
fn a_call_posts_signed_started_and_ended_events() {
    let crm = Crm::start(&[]);
    let server = Server::start(
        ServerOpts::new()
            .flow("hooks", FLOW)
            .config(&config(&crm, "    events: [call.started, call.ended]\n")),
    );
    let call_id = one_call(&server);
    let started = crm.wait_for("call.started", 1, secs(10));
    let ended = crm.wait_for("call.ended", 1, secs(10));
    for h in started.iter().chain(&ended) {
        assert_eq!(
            h.header("x-switchboard-signature"),
            Some(expected_signature(&h.body).as_str()),
            "{:?}",
            h.headers
        );
        assert!(h
            .header("x-switchboard-delivery")
            .is_some_and(|d| d.len() >= 16));
        let v = h.json();
        assert_eq!(v["data"]["call_id"], call_id.as_str(), "{v}");
        assert!(v["id"].is_string() && v["at"].is_string(), "{v}");
    }
    let end = ended[0].json();
    assert_eq!(end["type"], "call.ended");
    assert_eq!(end["data"]["hangup_by"], "system", "{end}");
    assert!(end["data"]["disposition"].is_string(), "{end}");
    // Events the hook did not ask for are not sent.
    assert!(crm.hooks().iter().all(|h| matches!(
        h.header("x-switchboard-event"),
        Some("call.started" | "call.ended")
    )));
}

#[test]
fn a_failing_receiver_gets_the_same_delivery_again_until_it_answers_2xx() {
    let crm = Crm::start(&[500, 503]);
    let server = Server::start(
        ServerOpts::new()
            .flow("hooks", FLOW)
            .config(&config(&crm, "    events: [call.ended]\n")),
    );
    one_call(&server);
    let got = crm.wait_for("call.ended", 3, secs(15));
    let ids: Vec<_> = got
        .iter()
        .map(|h| h.header("x-switchboard-delivery").unwrap_or("").to_string())
        .collect();
    assert_eq!(got.len(), 3, "{ids:?}");
    assert!(ids.iter().all(|d| d == &ids[0] && !d.is_empty()), "{ids:?}");
    assert_eq!(got[0].body, got[2].body);

    // The retries and the final success show in /metrics.
    let text = metrics_text(&server);
    assert_eq!(
        sample(
            &text,
            "switchboard_webhook_deliveries_total{result=\"retried\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "switchboard_webhook_deliveries_total{result=\"delivered\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn sigterm_right_after_a_call_still_delivers_its_event_through_a_retry() {
    // The CRM refuses the first POST: the retry (200 ms later) comes after the SIGTERM.
    let crm = Crm::start(&[503]);
    let mut server = Server::start(
        ServerOpts::new()
            .flow("hooks", FLOW)
            .config(&config(&crm, "    events: [call.ended]\n")),
    );
    let call_id = one_call(&server);
    common::ops::sigterm(&server);
    let status = server.wait_exit(secs(15)).expect("the server exits");
    assert!(status.success(), "{status:?}");
    let got: Vec<_> = crm
        .hooks()
        .into_iter()
        .filter(|h| h.header("x-switchboard-event") == Some("call.ended"))
        .collect();
    assert_eq!(got.len(), 2, "refused once, then delivered before the exit");
    assert_eq!(got[1].json()["data"]["call_id"], call_id.as_str());
}

fn metrics_text(server: &Server) -> String {
    let r = common::http::get(server.http, "/metrics", Some(common::http::API_TOKEN)).must();
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_count_calls_and_need_the_token() {
    let crm = Crm::start(&[]);
    let server = Server::start(
        ServerOpts::new()
            .flow("hooks", FLOW)
            .config(&config(&crm, "")),
    );
    let anonymous = common::http::get(server.http, "/metrics", None).must();
    assert_eq!(anonymous.status, 401);
    one_call(&server);
    one_call(&server);
    let text = metrics_text(&server);
    let total: f64 = text
        .lines()
        .filter(|l| l.starts_with("switchboard_calls_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(total, 2.0, "{text}");
    assert_eq!(
        sample(&text, "switchboard_active_calls"),
        Some(0.0),
        "{text}"
    );
    assert!(
        sample(&text, "switchboard_sip_requests_total{method=\"INVITE\"}").unwrap_or(0.0) >= 2.0
    );
    assert!(
        sample(&text, "switchboard_rtp_packets_total{direction=\"out\"}").unwrap_or(0.0) > 10.0,
        "{text}"
    );
    // Every sample is `name{labels} value`; comments are HELP or TYPE.
    for l in text.lines() {
        if let Some(c) = l.strip_prefix("# ") {
            assert!(c.starts_with("HELP ") || c.starts_with("TYPE "), "{l}");
            continue;
        }
        let (name, v) = l.rsplit_once(' ').unwrap_or(("", ""));
        assert!(name.starts_with("switchboard_"), "{l}");
        assert!(v.parse::<f64>().is_ok(), "{l}");
    }
}

#[test]
fn metrics_can_be_public_when_configured() {
    let server = Server::start(
        ServerOpts::new()
            .flow("hooks", FLOW)
            .config("metrics:\n  public: true\n"),
    );
    let r = common::http::get(server.http, "/metrics", None).must();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("# TYPE switchboard_active_calls gauge"));
}

const SURVEY_FLOW: &str = r##"
flow: survey
numbers: ["7200"]
language: en
start: billing
steps:
  billing:
    queue: { name: billing, timeout: 2m }
    on_timeout: goodbye
    after_agent: rate
  rate:
    survey:
      prompt: survey
      options: { "1": 5, "2": 3, "3": 1 }
      bad_below: 3
      timeout: 5s
      retries: 1
    next: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

#[test]
fn after_the_agent_hangs_up_a_bad_rating_reaches_the_record_and_the_crm() {
    use common::agent::{agent_yaml, Agent};
    let crm = Crm::start(&[]);
    let pw = "correct horse battery";
    let cfg = format!(
        "queues:\n  - name: billing\n    wrap_up: 1s\n    ring_timeout: 10s\nagents:\n{}{}",
        agent_yaml("alice", pw, &[("billing", 3)], &["billing"]),
        config(
            &crm,
            "    events: [call.answered, survey.bad, agent.state]\n"
        )
    );
    let server = Server::start(ServerOpts::new().flow("survey", SURVEY_FLOW).config(&cfg));
    let mut alice = Agent::login(&server, "alice", pw).must();
    alice.set_available().must();
    crm.wait_for("agent.state", 1, secs(10));

    let prompts = english_prompts(&["survey", "goodbye"]);
    let mut phone = Phone::udp(&server);
    phone.call("7200", CALLER).must();
    let ring = alice.wait_ring(secs(15)).must();
    let call_id = ring["call_id"].as_str().unwrap_or_default().to_string();
    alice.answer(&call_id).must();
    let answered = crm.wait_for("call.answered", 1, secs(15));
    assert_eq!(answered[0].json()["data"]["agent_id"], "alice");

    alice.hangup(&call_id).must();
    // The caller is not hung up on: they hear the survey and rate the call 3 (score 1, bad).
    phone.wait_heard(&prompts, "survey", 1, secs(10)).must();
    phone.send_digits_rfc4733("3").must();
    phone.wait_for_bye(secs(15)).must();

    let rec = wait_call_record(&server, &call_id, secs(10));
    assert_eq!(rec["survey"], 1, "{rec}");
    assert_eq!(field(&rec, "agent_id"), "alice", "{rec}");
    assert_path(&rec, &["billing", "rate", "goodbye"]);
    let bad = crm.wait_for("survey.bad", 1, secs(10));
    let v = bad[0].json();
    assert_eq!(v["data"]["score"], 1, "{v}");
    assert_eq!(v["data"]["call_id"], call_id.as_str(), "{v}");
    assert_eq!(v["data"]["agent_id"], "alice", "{v}");
    assert_eq!(
        bad[0].header("x-switchboard-signature"),
        Some(expected_signature(&bad[0].body).as_str())
    );
}

//! Callbacks keep their place against phone callers in the real server: while the agent is away,
//! a caller waits, a second caller leaves the queue with the exit key for a callback (keeping
//! the place they had), a visitor asks for a callback from the widget, and a third caller
//! waits. When the agent comes back they are served in exactly that order; the callbacks are
//! dialled through a MOCK carrier trunk (a carrier is out of reach).

mod common;

use std::time::Duration;

use common::agent::{agent_yaml, post_json_with, Agent};
use common::trunk::{accept_callback, MockTrunk};
use common::*;

const PW: &str = "correct horse battery";
const SHOP: &str = "http://shop.example";

fn config(trunk: &MockTrunk) -> String {
    format!(
        "queues:\n  - name: billing\n    wrap_up: 1s\n    ring_timeout: 30s\n    announce_every: 60s\n    exit_key: \"9\"\n\
         agents:\n{}\
         widget:\n  allowed_origins: [\"{SHOP}\"]\n  callback_prefixes: [\"+55\"]\n  callback_queue: billing\n\
         trunk:\n  address: \"{}\"\n  username: acme\n  password: trunk-pw-1\n  default_caller_id: \"+551130000000\"\n",
        agent_yaml("ana", PW, &[("billing", 3)], &["billing"]),
        trunk.addr,
    )
}

/// A phone caller rings the agent: answered, then the caller hangs up.
fn serve_phone_call(ana: &mut Agent, phone: &mut Phone, number: &str) {
    let ring = ana.wait_ring(secs(15)).must();
    assert_eq!(ring["caller"], number, "{ring}");
    assert!(ring.get("callback").is_none(), "{ring}");
    let call_id = ring["call_id"].as_str().unwrap_or_default().to_string();
    ana.answer(&call_id).must();
    assert_eq!(phone.hangup().must(), 200);
    ana.wait_state("available", secs(10)).must();
}

#[test]
fn widget_and_ivr_callbacks_are_served_in_their_places_among_phone_callers() {
    let trunk = MockTrunk::bind("acme", "trunk-pw-1");
    let server = Server::start(
        ServerOpts::new()
            .flow(
                "billing",
                &queue_callback_flow("billing", "7100", "billing"),
            )
            .config(&config(&trunk)),
    );
    let mut ana = Agent::login(&server, "ana", PW).must();

    let (first, ivr_cb, web_cb, last) = (
        "+5511900000001",
        "+5511900000002",
        "+5511900000003",
        "+5511900000004",
    );
    let mut phone_first = Phone::udp(&server);
    phone_first.call("7100", first).must();
    phone_first.rtp_arriving_during(Duration::from_millis(500));

    let mut leaving = Phone::udp(&server);
    leaving.call("7100", ivr_cb).must();
    leaving.rtp_arriving_during(Duration::from_millis(1_000));
    leaving.send_digits_rfc4733("9").must();
    leaving.wait_for_bye(secs(15)).must();

    let (status, body) = post_json_with(
        server.http,
        "/api/widget/callback",
        &serde_json::json!({"number": web_cb, "note": "where is my order?"}),
        &[("Origin", SHOP)],
    )
    .must();
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["position"], 3,
        "behind the two callers who came first: {body}"
    );

    let mut phone_last = Phone::udp(&server);
    phone_last.call("7100", last).must();
    phone_last.rtp_arriving_during(Duration::from_millis(500));
    let (_, queues) = http_get_json(&server, "/api/queues");
    let billing = queues
        .as_array()
        .and_then(|q| q.iter().find(|q| q["name"] == "billing").cloned())
        .unwrap_or_default();
    assert_eq!(billing["waiting"], 4, "{queues}");

    ana.set_available().must();
    serve_phone_call(&mut ana, &mut phone_first, first);
    let (trunk, rec) = accept_callback(&server, &mut ana, trunk, ivr_cb);
    assert_eq!(field(&rec, "agent_id"), "ana", "{rec}");
    let (_trunk, rec) = accept_callback(&server, &mut ana, trunk, web_cb);
    assert_eq!(field(&rec, "agent_id"), "ana", "{rec}");
    serve_phone_call(&mut ana, &mut phone_last, last);

    let rec = wait_call_record(&server, leaving.call_id(), secs(10));
    assert_eq!(field(&rec, "disposition"), "callback", "{rec}");
}

//! The server is killed (-9) in the middle of a call and started again: the call's record is
//! closed as `interrupted`, once, instead of staying open forever or being lost.

mod common;

use common::*;

const FLOW: &str = r##"
flow: crash-menu
numbers: ["7000"]
language: en
start: menu
steps:
  menu:
    menu:
      prompt: main-menu
      options: { "1": orders, "2": billing }
      timeout: 5s
      retries: 1
    on_timeout: goodbye
    on_invalid: goodbye
  orders:
    play: orders-info
    next: goodbye
  billing:
    play: billing-info
    next: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

#[test]
fn a_call_cut_by_a_crash_is_recorded_once_as_interrupted() {
    let mut server = Server::start(ServerOpts::new().flow("crash-menu", FLOW));
    let prompts = english_prompts(&["main-menu"]);
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    phone.wait_heard(&prompts, "main-menu", 1, secs(10)).must();
    let call_id = phone.call_id().to_string();

    server.kill9();
    server.restart();

    let rec = wait_call_record(&server, &call_id, secs(5));
    assert_eq!(field(&rec, "disposition"), "interrupted", "{rec}");
    assert_eq!(field(&rec, "call_id"), call_id, "{rec}");
    assert!(!field(&rec, "answered_at").is_empty(), "{rec}");
    let (status, all) = http_get_json(&server, "/api/calls");
    assert_eq!(status, 200, "{all}");
    let list = all.as_array().expect("GET /api/calls is an array");
    let mine = list
        .iter()
        .filter(|r| field(r, "call_id") == call_id)
        .count();
    assert_eq!(mine, 1, "records for the call: {all}");
}

//! A whole call over SIP/TCP (as many PBXs and carriers connect): answered, prompts heard, a key
//! pressed, and the server's BYE arrives back over TCP.

mod common;

use common::link::Transport;
use common::*;

const FLOW: &str = r##"
flow: tcp-menu
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
fn a_call_over_tcp_works_end_to_end() {
    let server = Server::start(ServerOpts::new().flow("tcp-menu", FLOW));
    let prompts = english_prompts(&["main-menu", "orders-info", "billing-info", "goodbye"]);
    let mut phone = Phone::tcp(&server);
    assert_eq!(phone.transport(), Transport::Tcp);
    phone.call("7000", CALLER).must();
    phone.wait_heard(&prompts, "main-menu", 1, secs(10)).must();
    phone.send_digits_rfc4733("2").must();
    phone.wait_for_bye(secs(15)).must();

    assert_eq!(
        prompts.names(&phone.received()),
        ["main-menu", "billing-info", "goodbye"]
    );
    check_continuity(&phone.received()).must();
    let rec = wait_call_record(&server, phone.call_id(), secs(5));
    assert_path(&rec, &["menu", "billing", "goodbye"]);
    assert_eq!(field(&rec, "disposition"), "completed", "{rec}");
    assert_eq!(field(&rec, "hangup_by"), "system", "{rec}");
}

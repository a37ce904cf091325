//! Some PBXs send key presses as SIP INFO (application/dtmf-relay) instead of RTP events: the
//! INFO is accepted and the key drives the menu like any other.

mod common;

use common::*;

const FLOW: &str = r##"
flow: info-menu
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
fn a_sip_info_key_chooses_the_menu_option() {
    let server = Server::start(ServerOpts::new().flow("info-menu", FLOW));
    let prompts = english_prompts(&["main-menu", "orders-info", "billing-info", "goodbye"]);
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    phone.wait_heard(&prompts, "main-menu", 1, secs(10)).must();
    assert_eq!(phone.send_info("1").must(), 200);
    phone.wait_for_bye(secs(15)).must();

    assert_eq!(
        prompts.names(&phone.received()),
        ["main-menu", "orders-info", "goodbye"]
    );
    let rec = wait_call_record(&server, phone.call_id(), secs(5));
    assert_path(&rec, &["menu", "orders", "goodbye"]);
}

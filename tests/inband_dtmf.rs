//! Carriers that do not offer telephone-event send key presses as tones in the audio: the server
//! hears them in PCMU and in PCMA calls alike, and talks back in the codec it agreed to.

mod common;

use common::*;

const FLOW: &str = r##"
flow: inband-menu
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

fn key_by_tone(codec: (u8, &str), key: &str, branch_prompt: &str, branch_step: &str) {
    let server = Server::start(ServerOpts::new().flow("inband-menu", FLOW));
    let prompts = english_prompts(&["main-menu", "orders-info", "billing-info", "goodbye"]);
    let mut phone = Phone::udp(&server);
    assert_eq!(phone.invite("7000", CALLER, &[codec]).must(), 200);
    let answer = phone.answer.clone().expect("answered with SDP");
    assert_eq!(answer.payload_types.first(), Some(&codec.0), "{answer:?}");
    assert_eq!(answer.telephone_event, None, "events were not offered");

    phone.wait_heard(&prompts, "main-menu", 1, secs(10)).must();
    phone.send_inband(key).must();
    phone.wait_for_bye(secs(15)).must();

    let rx = phone.received();
    assert!(
        rx.iter().all(|p| p.pt == codec.0),
        "audio in another codec than agreed"
    );
    assert_eq!(prompts.names(&rx), ["main-menu", branch_prompt, "goodbye"]);
    let rec = wait_call_record(&server, phone.call_id(), secs(5));
    assert_path(&rec, &["menu", branch_step, "goodbye"]);
}

#[test]
fn an_inband_key_in_a_pcmu_call_chooses_the_option() {
    key_by_tone((0, "PCMU/8000"), "2", "billing-info", "billing");
}

#[test]
fn an_inband_key_in_a_pcma_call_chooses_the_option() {
    key_by_tone((8, "PCMA/8000"), "1", "orders-info", "orders");
}

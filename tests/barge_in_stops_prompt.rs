//! A caller who knows the menu presses a key while it is still being read out: the prompt stops
//! at once (about 100 ms of audio at most) and the chosen branch starts speaking.

mod common;

use std::time::Duration;

use common::*;

const FLOW: &str = r##"
flow: barge-in
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
fn a_key_during_the_menu_prompt_stops_it_and_the_next_prompt_starts() {
    let server = Server::start(ServerOpts::new().flow("barge-in", FLOW));
    let prompts = english_prompts(&["main-menu", "orders-info", "billing-info", "goodbye"]);
    let menu_frames = prompts
        .get("main-menu")
        .map(|p| p.total_frames())
        .unwrap_or(0);
    assert!(
        menu_frames > 60,
        "the menu prompt must be long enough to interrupt"
    );

    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    let started = phone.wait_heard(&prompts, "main-menu", 1, secs(10)).must();
    // Let a good half second of the menu play, as a caller would before deciding.
    let first = started[0].first_packet;
    let deadline = std::time::Instant::now() + secs(5);
    while phone.received().len() < first + 30 {
        assert!(
            std::time::Instant::now() < deadline,
            "RTP stopped mid-prompt"
        );
        phone.rtp_arriving_during(Duration::from_millis(20));
    }
    phone.send_digits_rfc4733("2").must();
    let key_at = phone
        .sent()
        .iter()
        .find(|p| p.pt != 0 && p.pt != 8)
        .map(|p| p.at)
        .expect("the key press went out");
    phone
        .wait_heard(&prompts, "billing-info", 1, secs(5))
        .must();
    phone.wait_for_bye(secs(10)).must();

    let rx = phone.received();
    let heard = prompts.hear(&rx);
    let names: Vec<&str> = heard.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["main-menu", "billing-info", "goodbye"]);
    let menu = &heard[0];
    assert!(
        !menu.complete(),
        "the menu played to its end despite the key"
    );
    // Menu audio that arrived after the key went out: at most ~100 ms (5 frames), with a little
    // slack for a busy machine.
    let after_key = rx[menu.first_packet..=menu.last_packet]
        .iter()
        .filter(|p| p.at > key_at)
        .count();
    assert!(
        after_key <= 7,
        "{after_key} frames ({} ms) of the menu after the key",
        after_key * 20
    );
    let next_start = rx[heard[1].first_packet].at;
    assert!(
        next_start - key_at < Duration::from_millis(1000),
        "billing-info started {:?} after the key",
        next_start - key_at
    );
    check_continuity(&rx).must();

    let rec = wait_call_record(&server, phone.call_id(), secs(5));
    assert_path(&rec, &["menu", "billing", "goodbye"]);
}

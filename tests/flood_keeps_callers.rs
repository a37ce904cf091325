//! Floods and scanners: one address blasting SIP must not keep callers from another address
//! from getting through; a source that guesses PINs is blocked; an allow-list keeps strangers'
//! INVITEs out.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ops::{flood, invite_from, request_from};
use common::*;

const MENU: &str = r##"
flow: menu
numbers: ["7000"]
language: en
start: menu
steps:
  menu:
    menu:
      prompt: main-menu
      options: { "1": goodbye }
      timeout: 20s
      retries: 1
    on_timeout: goodbye
    on_invalid: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

#[test]
fn callers_get_through_while_another_address_floods() {
    let server = Server::start(ServerOpts::new().flow("menu", MENU));
    let prompts = english_prompts(&["main-menu"]);
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood("127.0.0.2", server.sip, stop.clone(), secs(20));
    // Let the flood build up before the first call.
    std::thread::sleep(Duration::from_millis(300));

    let mut setup_times = Vec::new();
    for _ in 0..3 {
        let mut phone = Phone::udp(&server);
        let t0 = Instant::now();
        phone.call("7000", CALLER).must();
        setup_times.push(t0.elapsed());
        phone.wait_heard(&prompts, "main-menu", 1, secs(10)).must();
        assert_eq!(phone.hangup().must(), 200);
    }
    stop.store(true, Ordering::Relaxed);
    let report = flooder.join().expect("flooder");
    eprintln!("flood: {report:?}; call setup times {setup_times:?}");

    assert!(report.sent > 5_000, "the flood was not a flood: {report:?}");
    assert!(
        report.answered * 4 < report.sent,
        "the flooder was not rate-limited: {report:?}"
    );
    for t in &setup_times {
        assert!(
            *t < secs(8),
            "call setup took {t:?} during the flood ({setup_times:?})"
        );
    }
    let health = common::http::get(server.http, "/healthz", None).must();
    assert_eq!(health.status, 200, "{}", health.text());
}

const PIN_FLOW: &str = r##"
flow: pin
numbers: ["7000"]
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
    on_ok: menu
    on_fail: goodbye
  menu:
    menu:
      prompt: main-menu
      options: { "1": goodbye }
      timeout: 5s
      retries: 1
    on_timeout: goodbye
    on_invalid: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

const GUESSES: [&str; 3] = ["40917263", "51028374", "62139485"];

#[test]
fn a_source_that_guesses_pins_is_blocked_and_other_sources_are_not() {
    let server = Server::start(
        ServerOpts::new()
            .flow("pin", PIN_FLOW)
            .account(Account::new("m-1", CALLER, "73829461"))
            .config("security: { auth_failures: 3, window: 10m, block_for: 30m }\n"),
    );
    let prompts = english_prompts(&["enter-pin", "pin-invalid", "goodbye"]);
    let mut guesser = Phone::udp(&server);
    guesser.call("7000", CALLER).must();
    guesser
        .wait_heard(&prompts, "enter-pin", 1, secs(10))
        .must();
    for (i, pin) in GUESSES.iter().enumerate() {
        if i > 0 {
            guesser
                .wait_heard_complete(&prompts, "pin-invalid", i, secs(10))
                .must();
        }
        guesser.send_digits_rfc4733(&format!("{pin}#")).must();
    }
    guesser.wait_for_bye(secs(15)).must();

    // Same address, new call: refused before any flow runs.
    let (status, _) = invite_from("127.0.0.1", server.sip, "7000", secs(5));
    assert_eq!(status, Some(403), "the guessing source is blocked");
    // Another address is not.
    let (status, _) = invite_from("127.0.0.3", server.sip, "7000", secs(5));
    assert_eq!(status, Some(200), "a different source still gets in");

    let log = server.log();
    assert!(log.contains("source blocked"), "the block is logged");
    for pin in GUESSES {
        assert!(!log.contains(pin), "PIN {pin} reached the log");
    }
}

#[test]
fn the_trunk_allow_list_refuses_strangers_but_answers_their_options() {
    let server = Server::start(
        ServerOpts::new()
            .flow("menu", MENU)
            .config("sip: { trunk_allow: [\"127.0.0.1/32\"] }\n"),
    );
    let (status, stranger) = invite_from("127.0.0.2", server.sip, "7000", secs(5));
    assert_eq!(status, Some(403), "a source outside the list is refused");
    let (status, _) = request_from("127.0.0.2", server.sip, "OPTIONS", "7000", secs(5));
    assert_eq!(status, Some(200), "OPTIONS is still answered");
    let (status, _) = invite_from("127.0.0.1", server.sip, "7000", secs(5));
    assert_eq!(status, Some(200), "a listed source gets in");
    let rec = wait_call_record(&server, &stranger, secs(5));
    assert_eq!(field(&rec, "disposition"), "rejected", "{rec}");
    assert!(
        rec.to_string().contains("source not allowed"),
        "the record says why: {rec}"
    );
}

//! A menu that gets no answer asks again after its timeout, `retries` more times, then follows
//! `on_timeout`; a key that is not an option gets `invalid_prompt` and the menu again.

mod common;

use common::*;

const FLOW: &str = r##"
flow: menu-retries
numbers: ["7000"]
language: en
start: menu
steps:
  menu:
    menu:
      prompt: main-menu
      options: { "1": orders }
      timeout: 1s
      retries: 2
      invalid_prompt: invalid-option
    on_timeout: goodbye
    on_invalid: too-many
  orders:
    play: orders-info
    next: goodbye
  too-many:
    play: too-many-attempts
    next: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

fn prompts() -> PromptSet {
    english_prompts(&[
        "main-menu",
        "invalid-option",
        "orders-info",
        "too-many-attempts",
        "goodbye",
    ])
}

#[test]
fn silence_replays_the_menu_twice_then_follows_on_timeout() {
    let server = Server::start(ServerOpts::new().flow("menu-retries", FLOW));
    let prompts = prompts();
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    phone.wait_for_bye(secs(25)).must();

    let rx = phone.received();
    let heard = prompts.hear(&rx);
    let names: Vec<&str> = heard.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["main-menu", "main-menu", "main-menu", "goodbye"]);
    assert!(heard.iter().all(|h| h.complete()), "{heard:?}");
    // The caller gets the 1 s timeout to answer after each playing, not an instant replay.
    for pair in heard.windows(2).take(2) {
        let gap = rx[pair[1].first_packet].at - rx[pair[0].last_packet].at;
        assert!(
            gap >= std::time::Duration::from_millis(800) && gap <= secs(3),
            "menu replayed {gap:?} after the previous playing ended"
        );
    }

    let rec = wait_call_record(&server, phone.call_id(), secs(5));
    assert_path(&rec, &["menu", "goodbye"]);
    assert_eq!(field(&rec, "hangup_by"), "system", "{rec}");
    assert_eq!(field(&rec, "auth"), "none", "{rec}");
}

#[test]
fn an_invalid_key_gets_the_invalid_prompt_and_the_menu_again() {
    let server = Server::start(ServerOpts::new().flow("menu-retries", FLOW));
    let prompts = prompts();
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    phone
        .wait_heard_complete(&prompts, "main-menu", 1, secs(10))
        .must();
    phone.send_digits_rfc4733("7").must();
    phone.wait_heard(&prompts, "main-menu", 2, secs(10)).must();
    phone.send_digits_rfc4733("1").must();
    phone.wait_for_bye(secs(15)).must();

    let names = prompts.names(&phone.received());
    assert_eq!(
        names,
        [
            "main-menu",
            "invalid-option",
            "main-menu",
            "orders-info",
            "goodbye"
        ]
    );
    let rec = wait_call_record(&server, phone.call_id(), secs(5));
    assert_path(&rec, &["menu", "orders", "goodbye"]);
    assert_eq!(field(&rec, "disposition"), "completed", "{rec}");
}

#[test]
fn three_invalid_keys_follow_on_invalid() {
    let server = Server::start(ServerOpts::new().flow("menu-retries", FLOW));
    let prompts = prompts();
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    for n in 1..=3 {
        phone.wait_heard(&prompts, "main-menu", n, secs(10)).must();
        phone.send_digits_rfc4733("5").must();
    }
    phone.wait_for_bye(secs(15)).must();

    let names = prompts.names(&phone.received());
    assert!(!names.iter().any(|n| n == "orders-info"), "{names:?}");
    let tail: Vec<&str> = names
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["too-many-attempts", "goodbye"], "{names:?}");
    let rec = wait_call_record(&server, phone.call_id(), secs(5));
    assert_path(&rec, &["menu", "too-many", "goodbye"]);
}

//! Wrong PINs count against the account across calls: after five failures (the default lockout)
//! even the right PIN is refused, also after a server restart. No PIN ever reaches the log or the
//! call records.

mod common;

use common::*;

const FLOW: &str = r##"
flow: pin-lockout
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
    on_fail: locked-out
  menu:
    menu:
      prompt: main-menu
      options: { "1": goodbye }
      timeout: 5s
      retries: 1
    on_timeout: goodbye
    on_invalid: goodbye
  locked-out:
    play: too-many-attempts
    next: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

const RIGHT: &str = "73829461";
const WRONG: [&str; 5] = ["51906284", "62817395", "73928406", "84039517", "95140628"];

fn prompts() -> PromptSet {
    english_prompts(&[
        "enter-pin",
        "pin-invalid",
        "main-menu",
        "too-many-attempts",
        "goodbye",
    ])
}

/// Types `pins` one after the other, each after the prompt asking for it has been heard in full.
fn type_pins(phone: &mut Phone, prompts: &PromptSet, pins: &[&str]) {
    phone.wait_heard(prompts, "enter-pin", 1, secs(10)).must();
    for (i, pin) in pins.iter().enumerate() {
        if i > 0 {
            phone
                .wait_heard_complete(prompts, "pin-invalid", i, secs(10))
                .must();
        }
        phone.send_digits_rfc4733(&format!("{pin}#")).must();
    }
}

/// The prompts of one call, checked for a refused caller: asked for the PIN, never let into the
/// menu, told "too many attempts", then goodbye.
#[track_caller]
fn assert_refused(names: &[String], invalid_range: std::ops::RangeInclusive<usize>) {
    assert_eq!(
        names.first().map(String::as_str),
        Some("enter-pin"),
        "{names:?}"
    );
    let invalid = names.iter().filter(|n| *n == "pin-invalid").count();
    assert!(
        invalid_range.contains(&invalid),
        "pin-invalid x{invalid}: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n == "main-menu"),
        "a refused caller reached the menu: {names:?}"
    );
    let tail: Vec<&str> = names
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["too-many-attempts", "goodbye"], "{names:?}");
}

#[test]
fn five_wrong_pins_lock_the_account_for_the_next_call_even_with_the_right_pin() {
    let mut server = Server::start(
        ServerOpts::new()
            .flow("pin-lockout", FLOW)
            .account(Account::new("m-100", CALLER, RIGHT)),
    );
    let prompts = prompts();

    // Call 1: three wrong PINs use up the call's attempts.
    let mut first = Phone::udp(&server);
    first.call("7000", CALLER).must();
    type_pins(&mut first, &prompts, &WRONG[..3]);
    first.wait_for_bye(secs(15)).must();
    assert_refused(&prompts.names(&first.received()), 2..=3);
    let rec1 = wait_call_record(&server, first.call_id(), secs(5));
    assert_eq!(field(&rec1, "auth"), "failed", "{rec1}");
    assert_eq!(field(&rec1, "disposition"), "auth_failed", "{rec1}");

    // Call 2: two more wrong PINs make five for the account. Whether the fifth is answered
    // "invalid" or already "locked" is the server's choice; the caller hangs up after it.
    let mut second = Phone::udp(&server);
    second.call("7000", CALLER).must();
    type_pins(&mut second, &prompts, &WRONG[3..5]);
    let heard_after = |p: &mut Phone| {
        let names = prompts.names(&p.received());
        names.iter().filter(|n| *n == "pin-invalid").count() >= 2
            || names.iter().any(|n| n == "too-many-attempts")
    };
    let deadline = std::time::Instant::now() + secs(10);
    while !heard_after(&mut second) {
        assert!(
            std::time::Instant::now() < deadline,
            "no answer to the fifth wrong PIN"
        );
        second.rtp_arriving_during(std::time::Duration::from_millis(100));
    }
    assert_eq!(second.hangup().must(), 200);
    let rec2 = wait_call_record(&server, second.call_id(), secs(5));
    assert!(
        ["failed", "locked"].contains(&field(&rec2, "auth")),
        "{rec2}"
    );

    // The lock is stored, not held in memory: it survives a restart.
    server.restart();

    // Call 3: the RIGHT PIN, at the first attempt, is refused.
    let mut third = Phone::udp(&server);
    third.call("7000", CALLER).must();
    type_pins(&mut third, &prompts, &[RIGHT]);
    third.wait_for_bye(secs(15)).must();
    assert_refused(&prompts.names(&third.received()), 0..=0);
    let rec3 = wait_call_record(&server, third.call_id(), secs(5));
    assert_eq!(field(&rec3, "auth"), "locked", "{rec3}");
    assert_eq!(field(&rec3, "disposition"), "auth_failed", "{rec3}");

    // No PIN, right or wrong, anywhere an operator or an attacker could read it.
    let log = server.log();
    let (_, all) = http_get_json(&server, "/api/calls");
    let records = [rec1, rec2, rec3, all]
        .iter()
        .map(|r| r.to_string())
        .collect::<String>();
    for pin in WRONG.iter().chain([&RIGHT]) {
        assert!(!log.contains(pin), "PIN {pin} appears in the server log");
        assert!(!records.contains(pin), "PIN {pin} appears in a call record");
    }
}

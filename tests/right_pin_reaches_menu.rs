//! A merchant calls from the number on their account, types the right PIN, reaches the menu,
//! chooses orders, hears the answer and goodbye, and the line hangs up. The call's record says who
//! they were and how it went.

mod common;

use common::*;

const FLOW: &str = r##"
flow: pin-menu
numbers: ["7000"]
language: en
start: welcome
steps:
  welcome:
    play: welcome
    next: identify
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
      options: { "1": orders, "2": billing }
      timeout: 5s
      retries: 2
      invalid_prompt: invalid-option
    on_timeout: goodbye
    on_invalid: goodbye
  orders:
    play: orders-info
    next: goodbye
  billing:
    play: billing-info
    next: goodbye
  locked-out:
    play: too-many-attempts
    next: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

const PIN: &str = "73829461";

#[test]
fn right_pin_reaches_menu_and_the_record_says_so() {
    let server = Server::start(
        ServerOpts::new()
            .flow("pin-menu", FLOW)
            .account(Account::new("m-100", CALLER, PIN).tier("gold"))
            .account(Account::new("m-200", "+5511900000002", "1357")),
    );
    let prompts = english_prompts(&[
        "welcome",
        "enter-pin",
        "pin-invalid",
        "main-menu",
        "orders-info",
        "billing-info",
        "too-many-attempts",
        "goodbye",
    ]);
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();

    phone.wait_heard(&prompts, "enter-pin", 1, secs(10)).must();
    phone.send_digits_rfc4733(&format!("{PIN}#")).must();
    phone.wait_heard(&prompts, "main-menu", 1, secs(10)).must();
    phone.send_digits_rfc4733("1").must();
    phone.wait_for_bye(secs(15)).must();

    let rx = phone.received();
    let heard = prompts.hear(&rx);
    let names: Vec<&str> = heard.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "welcome",
            "enter-pin",
            "main-menu",
            "orders-info",
            "goodbye"
        ]
    );
    for h in &heard {
        if ["welcome", "orders-info", "goodbye"].contains(&h.name.as_str()) {
            assert!(h.complete(), "{} was cut short: {h:?}", h.name);
        }
    }
    check_continuity(&rx).must();

    let rec = wait_call_record(&server, phone.call_id(), secs(5));
    assert_eq!(field(&rec, "auth"), "ok", "{rec}");
    assert_eq!(field(&rec, "account_id"), "m-100", "{rec}");
    assert_eq!(field(&rec, "disposition"), "completed", "{rec}");
    assert_eq!(field(&rec, "hangup_by"), "system", "the IVR hung up: {rec}");
    assert_eq!(field(&rec, "direction"), "inbound", "{rec}");
    assert_eq!(field(&rec, "flow"), "pin-menu", "{rec}");
    assert_eq!(field(&rec, "from"), CALLER, "{rec}");
    assert_eq!(field(&rec, "to"), "7000", "{rec}");
    assert!(!field(&rec, "answered_at").is_empty(), "{rec}");
    assert_path(&rec, &["welcome", "identify", "menu", "orders", "goodbye"]);
    assert!(
        !rec.to_string().contains(PIN),
        "the PIN leaked into the record"
    );
    assert!(!server.log().contains(PIN), "the PIN leaked into the log");
}

//! Flow files reload while the server runs: a good edit serves the next call, a call in progress
//! finishes on the version it started with, and a broken edit is refused with its position in
//! the log while the last good version keeps serving.

mod common;

use common::*;

fn flow(option_one_plays: &str) -> String {
    format!(
        r##"
flow: reload
numbers: ["7300"]
language: en
start: menu
steps:
  menu:
    menu: {{ prompt: main-menu, options: {{ "1": answer }}, timeout: 8s, retries: 1 }}
    on_timeout: hangup
    on_invalid: hangup
  answer:
    play: {option_one_plays}
    next: hangup
"##
    )
}

/// Calls, waits for the menu, presses 1, and returns the prompts heard until the server hung up.
fn call_and_press_one(phone: &mut Phone, prompts: &PromptSet) -> Vec<String> {
    phone.wait_heard(prompts, "main-menu", 1, secs(10)).must();
    phone.send_digits_rfc4733("1").must();
    phone.wait_for_bye(secs(15)).must();
    prompts
        .hear(&phone.received())
        .into_iter()
        .map(|h| h.name)
        .collect()
}

fn wait_for_log(server: &Server, needle: &str, nth: usize) {
    let deadline = std::time::Instant::now() + secs(10);
    while server.log().matches(needle).count() < nth {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never logged `{needle}` (x{nth}):\n{}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn edits_reload_calls_keep_their_version_and_broken_edits_are_refused() {
    let server = Server::start(ServerOpts::new().flow("reload", &flow("orders-info")));
    let prompts = english_prompts(&["main-menu", "orders-info", "billing-info"]);
    let file = server.flows_dir().join("reload.yaml");

    // A call starts on version 1 and is still in the menu when the file changes.
    let mut first = Phone::udp(&server);
    first.call("7300", "+15550001").must();
    first.wait_heard(&prompts, "main-menu", 1, secs(10)).must();
    std::fs::write(&file, flow("billing-info")).expect("edit");
    wait_for_log(&server, "flows loaded", 2);
    let heard = call_and_press_one(&mut first, &prompts);
    assert_eq!(
        heard,
        ["main-menu", "orders-info"],
        "the call in progress kept version 1"
    );

    // The next call gets version 2.
    let mut second = Phone::udp(&server);
    second.call("7300", "+15550002").must();
    let heard = call_and_press_one(&mut second, &prompts);
    assert_eq!(
        heard,
        ["main-menu", "billing-info"],
        "a new call runs the edited flow"
    );

    // A broken edit (unknown key on line 13) is refused, with its position in the log...
    let broken = flow("orders-info").replace(
        "    play: orders-info",
        "    play: orders-info\n    colour: red",
    );
    std::fs::write(&file, broken).expect("broken edit");
    let name = file.display().to_string();
    wait_for_log(&server, &format!("{name}:"), 1);
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("{name}:")) && l.contains("colour"))
        .unwrap_or_else(|| panic!("the error does not name the key:\n{log}"));
    assert!(
        line.contains(&format!("{name}:13:")),
        "the error gives the line of the unknown key: {line}"
    );

    // ...and the last good version keeps answering the number.
    let mut third = Phone::udp(&server);
    third.call("7300", "+15550003").must();
    let heard = call_and_press_one(&mut third, &prompts);
    assert_eq!(
        heard,
        ["main-menu", "billing-info"],
        "version 2 keeps serving after a broken edit"
    );
}

//! SIGTERM drains: new calls get 503, the call in progress goes on until its caller hangs up,
//! the process exits 0 and both calls have their records. A call that outlasts the drain
//! timeout is hung up by the system.

mod common;

use std::time::{Duration, Instant};

use common::ops::sigterm;
use common::*;

const FLOW: &str = r##"
flow: drain
numbers: ["7000"]
language: en
start: menu
steps:
  menu:
    menu:
      prompt: main-menu
      options: { "1": goodbye }
      timeout: 60s
      retries: 1
    on_timeout: goodbye
    on_invalid: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

fn wait_health(server: &Server, status: u16, timeout: Duration) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(r) = common::http::get(server.http, "/healthz", None) {
            if r.status == status {
                return r.json().unwrap_or_default();
            }
        }
        assert!(Instant::now() < deadline, "/healthz never said {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_refuses_new_calls_lets_the_current_one_finish_and_exits_zero() {
    let mut server = Server::start(
        ServerOpts::new()
            .flow("drain", FLOW)
            .config("shutdown: { drain_timeout: 30s }\n"),
    );
    let prompts = english_prompts(&["main-menu"]);
    let mut first = Phone::udp(&server);
    first.call("7000", CALLER).must();
    first.wait_heard(&prompts, "main-menu", 1, secs(10)).must();

    sigterm(&server);
    let health = wait_health(&server, 503, secs(5));
    assert_eq!(field(&health, "status"), "draining", "{health}");

    let mut second = Phone::udp(&server);
    let status = second
        .invite("7000", CALLER, common::sipmsg::DESK_PHONE_CODECS)
        .must();
    assert_eq!(status, 503, "a new call during the drain is refused");
    assert!(
        server.is_running(),
        "the call in progress keeps the server up"
    );

    // The first caller is still being served: the prompt keeps coming.
    assert!(first.rtp_arriving_during(Duration::from_millis(300)) > 0);
    assert_eq!(first.hangup().must(), 200);

    let status = server
        .wait_exit(secs(10))
        .expect("server exits after the last call");
    assert_eq!(status.code(), Some(0), "exit status {status}");

    server.restart();
    let rec = wait_call_record(&server, first.call_id(), secs(5));
    assert_eq!(field(&rec, "hangup_by"), "caller", "{rec}");
    assert_ne!(field(&rec, "disposition"), "interrupted", "{rec}");
    let rec = wait_call_record(&server, second.call_id(), secs(5));
    assert_eq!(field(&rec, "disposition"), "rejected", "{rec}");
}

#[test]
fn calls_beyond_the_drain_timeout_are_hung_up_by_the_system() {
    let mut server = Server::start(
        ServerOpts::new()
            .flow("drain", FLOW)
            .config("shutdown: { drain_timeout: 1s }\n"),
    );
    let prompts = english_prompts(&["main-menu"]);
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    phone.wait_heard(&prompts, "main-menu", 1, secs(10)).must();

    sigterm(&server);
    phone.wait_for_bye(secs(10)).must();
    let status = server.wait_exit(secs(10)).expect("server exits");
    assert_eq!(status.code(), Some(0), "exit status {status}");

    server.restart();
    let rec = wait_call_record(&server, phone.call_id(), secs(5));
    assert_eq!(field(&rec, "hangup_by"), "system", "{rec}");
    assert_ne!(field(&rec, "disposition"), "interrupted", "{rec}");
}

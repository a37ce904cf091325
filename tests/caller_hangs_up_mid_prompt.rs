//! The caller hangs up while a prompt is playing: the BYE is answered, the audio stops, and the
//! record is closed as hung up by the caller.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn caller_bye_mid_prompt_stops_audio_and_closes_the_record() {
    let server = Server::start(ServerOpts::new().flow("hang-up", &menu_flow("hang-up", "7000")));
    let prompts = english_prompts(&["main-menu", "goodbye"]);
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    phone.wait_heard(&prompts, "main-menu", 1, secs(10)).must();
    assert_eq!(phone.hangup().must(), 200);

    // Packets already in flight may still land; after that the server must be silent.
    phone.rtp_arriving_during(Duration::from_millis(300));
    let late = phone.rtp_arriving_during(Duration::from_millis(500));
    assert_eq!(
        late, 0,
        "the server kept sending RTP after the caller hung up"
    );
    let heard = prompts.hear(&phone.received());
    assert!(
        heard.iter().all(|h| h.name == "main-menu" && !h.complete()),
        "{heard:?}"
    );

    let rec = wait_call_record(&server, phone.call_id(), secs(5));
    assert_eq!(field(&rec, "hangup_by"), "caller", "{rec}");
    assert!(!field(&rec, "ended_at").is_empty(), "{rec}");
    assert!(!field(&rec, "answered_at").is_empty(), "{rec}");
    assert!(
        !["", "interrupted", "failed"].contains(&field(&rec, "disposition")),
        "{rec}"
    );
    assert_path(&rec, &["menu"]);
}

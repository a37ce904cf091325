//! A caller who gives up while the line is still ringing: the CANCEL is accepted, the INVITE ends
//! 487, the server never answers afterwards, and the record says the caller abandoned the call.

mod common;

use common::sipmsg::DESK_PHONE_CODECS;
use common::*;

const FLOW: &str = r##"
flow: slow-answer
numbers: ["7000"]
language: en
answer_delay: 2s
start: welcome
steps:
  welcome:
    play: welcome
    next: hangup
"##;

#[test]
fn cancel_while_ringing_gets_487_and_an_abandoned_record() {
    let server = Server::start(ServerOpts::new().flow("slow-answer", FLOW));
    let mut phone = Phone::udp(&server);
    phone.send_invite("7000", CALLER, DESK_PHONE_CODECS).must();
    phone.wait_provisional(180, secs(2)).must();
    let (cancel, invite) = phone.cancel().must();
    assert_eq!((cancel, invite), (200, 487));

    // The answer_delay runs out after the CANCEL: the server must not answer the call anyway.
    let late = phone.wait_message(secs(3), |m| {
        m.status() == Some(200) && m.cseq().is_some_and(|(_, meth)| meth == "INVITE")
    });
    assert!(
        late.is_none(),
        "the server answered a cancelled call: {late:?}"
    );

    let rec = wait_call_record(&server, phone.call_id(), secs(5));
    assert_eq!(field(&rec, "disposition"), "abandoned", "{rec}");
    assert_eq!(field(&rec, "hangup_by"), "caller", "{rec}");
    assert!(
        rec.get("answered_at").is_none_or(|v| v.is_null()),
        "a call that was never answered has no answered_at: {rec}"
    );
}

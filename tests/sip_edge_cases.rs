//! What other SIP devices will throw at the server: keep-alive OPTIONS, a registering phone,
//! calls to numbers nobody configured, codecs we do not speak, a BYE for no call, and garbage.
//! Each gets a proper answer, and none of them stops the server taking the next call.

mod common;

use std::time::Duration;

use common::link::Transport;
use common::*;

const FLOW: &str = r##"
flow: edge
numbers: ["7000"]
language: en
start: welcome
steps:
  welcome:
    play: welcome
    next: hangup
"##;

fn server() -> Server {
    Server::start(ServerOpts::new().flow("edge", FLOW))
}

/// The proof that the server is still fine: a normal call is answered and can be hung up.
#[track_caller]
fn next_call_is_answered(server: &Server, transport: Transport) {
    let mut phone = Phone::new(transport, server.sip);
    phone.call("7000", CALLER).must();
    assert_eq!(phone.hangup().must(), 200);
}

#[test]
fn options_gets_200() {
    let server = server();
    let mut phone = Phone::udp(&server);
    let r = phone.options().must();
    assert_eq!(r.status(), Some(200), "{r:?}");
    let mut tcp = Phone::tcp(&server);
    assert_eq!(tcp.options().must().status(), Some(200));
}

#[test]
fn register_gets_a_final_response() {
    let server = server();
    let mut phone = Phone::udp(&server);
    // A gateway is no registrar; any final answer (200, 403, 405, 501…) is fine, silence is not,
    // because the phone would retransmit for 32 s and then report the server dead.
    let r = phone.register().must();
    assert!(r.status().is_some_and(|s| s >= 200), "{r:?}");
}

#[test]
fn unknown_number_gets_404() {
    let server = server();
    let mut phone = Phone::udp(&server);
    assert_eq!(
        phone
            .invite("7999", CALLER, common::sipmsg::DESK_PHONE_CODECS)
            .must(),
        404
    );
    next_call_is_answered(&server, Transport::Udp);
}

#[test]
fn an_offer_without_a_common_codec_gets_488() {
    let server = server();
    let mut phone = Phone::udp(&server);
    assert_eq!(
        phone.invite("7000", CALLER, &[(18, "G729/8000")]).must(),
        488
    );
    next_call_is_answered(&server, Transport::Udp);
}

#[test]
fn bye_for_no_call_gets_481() {
    let server = server();
    let mut phone = Phone::udp(&server);
    let r = phone.out_of_dialog("BYE", "7000", &[]).must();
    assert_eq!(r.status(), Some(481), "{r:?}");
}

#[test]
fn garbage_gets_400_or_silence_and_the_server_keeps_working() {
    let server = server();
    let mut phone = Phone::udp(&server);
    let junk: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\xff\xfe binary noise".to_vec(),
        b"INVITE sip:7000@127.0.0.1 SIP/2.0\r\n\r\n".to_vec(),
        b"INVITE sip:7000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKj\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:7000@b>\r\nCall-ID: junk-1\r\nCSeq: x INVITE\r\n\
Content-Length: 5000\r\n\r\nv=0"
            .to_vec(),
        b"OPTIONS sip:x SIP/2.0\r\nVia: \xff\xfe\r\nCSeq: 1 OPTIONS\r\n\r\n".to_vec(),
        vec![b'A'; 60_000],
        "SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n".into(),
    ];
    for j in &junk {
        phone.send_raw(j).must();
    }
    // Whatever the server answered to that must be a 400, never a success or a crash.
    while let Some(m) = phone.wait_message(Duration::from_millis(500), |_| true) {
        assert_eq!(m.status(), Some(400), "answer to garbage: {m:?}");
    }
    next_call_is_answered(&server, Transport::Udp);

    // The same over TCP: the server may close that connection, but must accept the next one.
    let tcp = Phone::tcp(&server);
    tcp.send_raw(b"\x16\x03\x01 not sip at all\r\n\r\n").must();
    tcp.send_raw(&vec![b'x'; 70_000]).ok();
    drop(tcp);
    next_call_is_answered(&server, Transport::Tcp);
    assert!(server.log().len() < 5_000_000, "garbage flooded the log");
}

use super::*;
use crate::sip::fixtures::*;
use crate::sip::message::{from_tag, header, headers_named, parse, to_bytes, to_tag};

fn contact() -> rsip::Uri {
    message::parse_uri("sip:gw@10.0.0.1:5060").unwrap()
}

fn response(msg: rsip::SipMessage) -> Response {
    match msg {
        rsip::SipMessage::Response(r) => r,
        rsip::SipMessage::Request(_) => panic!("expected a response"),
    }
}

#[test]
fn answering_a_proxied_invite_echoes_record_route_and_offers_a_contact() {
    let invite = request(&linphone_invite());
    let d = Dialog::uas(&invite, udp("10.0.0.9:5060"), "gw-tag", contact()).unwrap();
    assert_eq!(d.call_id, "3848276298220188511@192.168.1.20");
    assert_eq!(d.remote_tag, "9fxced76sl");
    assert_eq!(
        d.remote_target().to_string(),
        "sip:maria@203.0.113.7:40123;transport=UDP"
    );
    assert_eq!(d.route_set(), ["<sip:10.0.0.9;lr>"]);

    let sdp = b"v=0\r\n";
    let ok = d.response(&invite, 200, Some(("application/sdp", sdp)));
    let wire = response(parse(&to_bytes(&ok.into())).unwrap());
    assert_eq!(wire.status_code.code(), 200);
    assert_eq!(to_tag(&wire).as_deref(), Some("gw-tag"));
    assert_eq!(
        header(&wire, "Contact").as_deref(),
        Some("<sip:gw@10.0.0.1:5060>")
    );
    assert_eq!(
        headers_named(&wire, "Record-Route"),
        vec!["<sip:10.0.0.9;lr>"]
    );
    assert!(header(&wire, "Allow").unwrap().contains("INFO"));
    assert_eq!(
        header(&wire, "Content-Type").as_deref(),
        Some("application/sdp")
    );
    assert_eq!(wire.body, sdp);
    assert_eq!(headers_named(&wire, "Via").len(), 2);

    let trying = d.response(&invite, 100, None);
    assert_eq!(to_tag(&trying), None, "100 Trying carries no tag");
    assert_eq!(header(&trying, "Contact"), None);
    let busy = d.response(&invite, 486, None);
    assert_eq!(header(&busy, "Contact"), None);
    assert_eq!(to_tag(&busy).as_deref(), Some("gw-tag"));
}

#[test]
fn a_bye_from_the_answering_side_is_addressed_to_the_callers_contact_via_the_route_set() {
    let invite = request(&linphone_invite());
    let mut d = Dialog::uas(&invite, udp("10.0.0.9:5060"), "gw-tag", contact()).unwrap();
    let bye = d.request(rsip::Method::Bye, None);
    assert_eq!(
        bye.uri.to_string(),
        "sip:maria@203.0.113.7:40123;transport=UDP"
    );
    assert_eq!(headers_named(&bye, "Route"), vec!["<sip:10.0.0.9;lr>"]);
    assert_eq!(from_tag(&bye).as_deref(), Some("gw-tag"));
    assert_eq!(to_tag(&bye).as_deref(), Some("9fxced76sl"));
    assert!(
        header(&bye, "To").unwrap().contains("maria@example.com"),
        "the caller's From becomes our To"
    );
    assert!(header(&bye, "From").unwrap().contains("+551130000000"));
    assert_eq!(
        headers_named(&bye, "Via"),
        Vec::<String>::new(),
        "the transaction layer adds the Via"
    );
    assert_eq!(message::cseq(&bye).map(|c| c.0), Some(1));
    let relay = b"Signal=5\r\nDuration=160\r\n";
    let info = d.request(rsip::Method::Info, Some(("application/dtmf-relay", relay)));
    assert_eq!(message::cseq(&info), Some((2, rsip::Method::Info)));
    assert_eq!(
        header(&info, "Content-Length"),
        Some(relay.len().to_string())
    );
    assert_eq!(info.body, relay);
    // What the layer serialises is valid SIP once it has a Via.
    let mut with_via = info.clone();
    let mut headers: Vec<Header> = vec![Header::Via(
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx"
            .to_string()
            .into(),
    )];
    headers.extend(with_via.headers.iter().cloned());
    with_via.headers = headers.into();
    assert!(parse(&to_bytes(&with_via.into())).is_ok());
}

#[test]
fn a_strict_router_becomes_the_request_uri() {
    let text = linphone_invite().replace(
        "Record-Route: <sip:10.0.0.9;lr>",
        "Record-Route: <sip:10.0.0.9>, <sip:10.0.0.8;lr>",
    );
    let invite = request(&text);
    let mut d = Dialog::uas(&invite, udp("10.0.0.9:5060"), "t", contact()).unwrap();
    let bye = d.request(rsip::Method::Bye, None);
    assert_eq!(bye.uri.to_string(), "sip:10.0.0.9");
    assert_eq!(
        headers_named(&bye, "Route"),
        vec![
            "<sip:10.0.0.8;lr>",
            "<sip:maria@203.0.113.7:40123;transport=UDP>"
        ]
    );
}

fn outbound() -> Request {
    invite(&OutboundCall {
        request_uri: message::parse_uri("sip:+5511911112222@trunk.example").unwrap(),
        from_uri: "sip:+551130000000@gw.example",
        from_display: Some("Contact \"Centre\""),
        to_uri: "sip:+5511911112222@trunk.example",
        call_id: "cb-1@gw",
        from_tag: "gw1",
        contact: contact(),
        cseq: 10,
        body: Some(("application/sdp", b"v=0\r\n")),
    })
}

/// Our outbound INVITE answered by a UAS built from the same code: both ends agree on the dialog.
#[test]
fn both_ends_of_a_call_agree_and_reject_out_of_order_requests() {
    let mut inv = outbound();
    assert_eq!(
        header(&inv, "From").as_deref(),
        Some("\"Contact Centre\" <sip:+551130000000@gw.example>;tag=gw1")
    );
    inv.headers.push(Header::Via(
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKo"
            .to_string()
            .into(),
    ));
    let inv = request(&String::from_utf8(to_bytes(&inv.into())).unwrap());

    let far_contact = message::parse_uri("sip:far@198.51.100.1:5060").unwrap();
    let mut uas = Dialog::uas(&inv, udp("10.0.0.1:5060"), "far1", far_contact).unwrap();
    let ok = uas.response(&inv, 200, None);
    let mut uac = Dialog::uac(&inv, &ok, udp("198.51.100.1:5060")).unwrap();
    assert_eq!(
        (uac.local_tag.as_str(), uac.remote_tag.as_str()),
        ("gw1", "far1")
    );
    assert_eq!(uac.remote_target().to_string(), "sip:far@198.51.100.1:5060");

    let ack = uac.ack();
    assert_eq!(
        message::cseq(&ack),
        Some((10, rsip::Method::Ack)),
        "ACK reuses the INVITE CSeq"
    );
    assert!(uas.matches(&ack) && uas.check_remote_cseq(&ack));

    let bye = uac.request(rsip::Method::Bye, None);
    assert_eq!(message::cseq(&bye), Some((11, rsip::Method::Bye)));
    assert!(uas.matches(&bye));
    assert!(uas.check_remote_cseq(&bye));
    assert!(
        !uas.check_remote_cseq(&bye),
        "the same CSeq again is out of order"
    );

    let from_uas = uas.request(rsip::Method::Bye, None);
    assert!(uac.matches(&from_uas));
    assert!(uac.check_remote_cseq(&from_uas));
    assert!(
        !uas.matches(&from_uas),
        "a dialog does not match its own requests"
    );

    let mut stranger = bye.clone();
    stranger.headers.retain(|h| !matches!(h, Header::CallId(_)));
    stranger
        .headers
        .push(Header::CallId("other@x".to_string().into()));
    assert!(!uas.matches(&stranger));
}

#[test]
fn dialogs_need_a_contact_and_an_establishing_response() {
    let no_contact: String = sipp_invite("z9hG4bKnc", "nc@x")
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("Contact"))
        .collect();
    let inv = request(&no_contact);
    assert_eq!(
        Dialog::uas(&inv, udp("127.0.0.1:5061"), "t", contact()).unwrap_err(),
        DialogError::NoContact
    );
    let inv = request(&sipp_invite("z9hG4bKnc", "nc@x"));
    let busy = message::response_to(&inv, 486, Some("x"));
    assert_eq!(
        Dialog::uac(&inv, &busy, udp("127.0.0.1:5061")).unwrap_err(),
        DialogError::NotEstablishing(486)
    );
    let untagged = message::response_to(&inv, 200, None);
    assert_eq!(
        Dialog::uac(&inv, &untagged, udp("127.0.0.1:5061")).unwrap_err(),
        DialogError::Header("To")
    );
    // A compact-form INVITE works like any other.
    let d = Dialog::uas(
        &request(&compact_invite()),
        tcp("10.1.1.1:5060"),
        "t",
        contact(),
    )
    .unwrap();
    assert_eq!(
        d.remote_target().to_string(),
        "sip:caller@10.1.1.1:5060;transport=TCP"
    );
}

#[test]
fn a_reinvite_moves_the_remote_target() {
    let invite = request(&sipp_invite("z9hG4bKre", "re@x"));
    let mut d = Dialog::uas(&invite, udp("127.0.0.1:5061"), "t", contact()).unwrap();
    let re = sipp_invite("z9hG4bKre2", "re@x").replace(
        "Contact: sip:sipp@127.0.0.1:5061",
        "Contact: <sip:sipp@127.0.0.2:5999>",
    );
    d.refresh_target(&request(&re));
    assert_eq!(
        d.request(rsip::Method::Bye, None).uri.to_string(),
        "sip:sipp@127.0.0.2:5999"
    );
}

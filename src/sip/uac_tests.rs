use super::*;
use crate::sip::dialog::{invite, OutboundCall};
use crate::sip::fixtures::udp;
use crate::sip::message::{header, response_to};

fn leg(now: Instant) -> Uac {
    let req = invite(&OutboundCall {
        request_uri: rsip::Uri::try_from("sip:alice@10.0.0.9:5070").unwrap(),
        from_uri: "sip:+5511999990000@switchboard",
        from_display: Some("Maria"),
        to_uri: "sip:alice@10.0.0.9:5070",
        call_id: "leg1@switchboard",
        from_tag: "ft",
        contact: rsip::Uri::try_from("sip:switchboard@10.0.0.1:5060").unwrap(),
        cseq: 1,
        body: Some(("application/sdp", b"v=0\r\n")),
    });
    Uac::new(req, udp("10.0.0.9:5070"), now, Duration::from_secs(15))
}

fn invite_of(uac: &Uac) -> Request {
    uac.invite.clone()
}

fn reply(req: &Request, code: u16, extra: &[(&str, &str)]) -> Response {
    let mut r = response_to(req, code, (code > 100).then_some("pt"));
    r.headers.push(rsip::Header::Contact(
        "<sip:alice@10.0.0.9:5070>".to_string().into(),
    ));
    for (n, v) in extra {
        r.headers
            .push(rsip::Header::Other((*n).into(), (*v).to_string()));
    }
    if code == 200 {
        r.body = b"v=0 answer".to_vec();
    }
    r
}

fn drain(uac: &mut Uac) -> Vec<Action> {
    std::iter::from_fn(|| uac.poll_action()).collect()
}

fn reports(actions: &[Action]) -> Vec<LegEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Report(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn ringing_then_answer_acks_reports_the_sdp_and_their_bye_ends_it() {
    let t0 = Instant::from_millis(0);
    let mut uac = leg(t0);
    assert!(matches!(drain(&mut uac).as_slice(), [Action::Invite(_)]));
    let inv = invite_of(&uac);
    uac.on_response(t0, &reply(&inv, 100, &[]), None, "c");
    uac.on_response(t0, &reply(&inv, 180, &[]), None, "c");
    uac.on_response(t0, &reply(&inv, 200, &[]), None, "c");
    let acts = drain(&mut uac);
    assert_eq!(
        reports(&acts),
        vec![
            LegEvent::Trying,
            LegEvent::Ringing,
            LegEvent::Answered {
                sdp: "v=0 answer".into()
            }
        ]
    );
    let ack = acts
        .iter()
        .find_map(|a| match a {
            Action::Ack(r) => Some(r.clone()),
            _ => None,
        })
        .expect("the 2xx is ACKed");
    assert_eq!(ack.uri.to_string(), "sip:alice@10.0.0.9:5070");
    assert_eq!(uac.poll_timeout(), None, "no ring timeout once answered");
    // Their BYE, built from the dialog's point of view.
    let bye = crate::sip::fixtures::request(
        "BYE sip:switchboard@10.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKb\r\n\
From: <sip:alice@10.0.0.9:5070>;tag=pt\r\nTo: \"Maria\" <sip:+5511999990000@switchboard>;tag=ft\r\n\
Call-ID: leg1@switchboard\r\nCSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(uac.on_request(&bye), 200);
    assert_eq!(
        reports(&drain(&mut uac)),
        vec![LegEvent::Ended(EndedBy::Remote)]
    );
    assert!(uac.is_done());
}

#[test]
fn a_challenge_is_answered_once_and_a_second_one_fails_the_leg() {
    let t0 = Instant::from_millis(0);
    let mut uac = leg(t0);
    drain(&mut uac);
    let inv = invite_of(&uac);
    let ch = [(
        "WWW-Authenticate",
        "Digest realm=\"pbx\", nonce=\"n1\", qop=\"auth\"",
    )];
    let creds = Credentials {
        username: "sb",
        password: "pw-1234",
    };
    uac.on_response(t0, &reply(&inv, 401, &ch), Some(&creds), "cn");
    let acts = drain(&mut uac);
    let Some(Action::Invite(retry)) = acts.first() else {
        panic!("expected a retry, got {acts:?}");
    };
    assert!(header(retry, "Authorization").is_some());
    assert_eq!(message::cseq(retry), Some((2, Method::Invite)));
    uac.on_response(t0, &reply(retry, 401, &ch), Some(&creds), "cn");
    assert_eq!(reports(&drain(&mut uac)), vec![LegEvent::Failed(401)]);
    assert!(uac.is_done());
}

#[test]
fn no_answer_before_the_ring_timeout_cancels_and_busy_fails_at_once() {
    let t0 = Instant::from_millis(0);
    let mut uac = leg(t0);
    drain(&mut uac);
    let inv = invite_of(&uac);
    uac.on_response(t0, &reply(&inv, 180, &[]), None, "c");
    drain(&mut uac);
    uac.on_timeout(t0 + Duration::from_secs(14));
    assert!(drain(&mut uac).is_empty(), "still ringing at 14 s");
    uac.on_timeout(t0 + Duration::from_secs(15));
    let acts = drain(&mut uac);
    assert!(matches!(acts.first(), Some(Action::Cancel)));
    assert_eq!(reports(&acts), vec![LegEvent::Failed(408)]);
    uac.on_response(t0, &reply(&inv, 487, &[]), None, "c");
    assert!(uac.is_done());
    assert!(reports(&drain(&mut uac)).is_empty(), "reported once");

    let mut busy = leg(t0);
    drain(&mut busy);
    let inv = invite_of(&busy);
    busy.on_response(t0, &reply(&inv, 486, &[]), None, "c");
    assert_eq!(reports(&drain(&mut busy)), vec![LegEvent::Failed(486)]);
}

#[test]
fn hanging_up_an_answered_leg_sends_bye_and_ends_on_its_answer() {
    let t0 = Instant::from_millis(0);
    let mut uac = leg(t0);
    drain(&mut uac);
    let inv = invite_of(&uac);
    uac.on_response(t0, &reply(&inv, 200, &[]), None, "c");
    drain(&mut uac);
    uac.hangup(t0);
    let acts = drain(&mut uac);
    let Some(Action::Request(bye)) = acts.first() else {
        panic!("expected BYE, got {acts:?}");
    };
    assert_eq!(bye.method, Method::Bye);
    let ok = response_to(bye, 200, None);
    uac.on_response(t0, &ok, None, "c");
    assert_eq!(
        reports(&drain(&mut uac)),
        vec![LegEvent::Ended(EndedBy::Local)]
    );
}

fn their_reinvite(cseq: u32, contact: &str) -> Request {
    crate::sip::fixtures::request(&format!(
        "INVITE sip:switchboard@10.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKr{cseq}\r\n\
From: <sip:alice@10.0.0.9:5070>;tag=pt\r\nTo: \"Maria\" <sip:+5511999990000@switchboard>;tag=ft\r\n\
Call-ID: leg1@switchboard\r\nCSeq: {cseq} INVITE\r\nContact: <{contact}>\r\nContent-Length: 0\r\n\r\n"
    ))
}

#[test]
fn a_phones_hold_reinvite_gets_a_200_with_our_sdp_and_moves_the_target() {
    let t0 = Instant::from_millis(0);
    let mut uac = leg(t0);
    let inv = invite_of(&uac);
    // Before the call is up, a re-INVITE is refused with 481 (no dialog yet).
    assert_eq!(
        uac.reinvite_response(&their_reinvite(2, "sip:alice@10.0.0.9:5070"), Some("v=0"))
            .unwrap_err(),
        481
    );
    uac.on_response(t0, &reply(&inv, 200, &[]), None, "c");
    drain(&mut uac);
    let hold = their_reinvite(2, "sip:alice@10.0.0.77:5070");
    let ok = uac
        .reinvite_response(&hold, Some("v=0 ours"))
        .expect("answered");
    assert_eq!(ok.status_code, rsip::StatusCode::OK);
    assert_eq!(ok.body, b"v=0 ours".to_vec());
    assert_eq!(
        header(&ok, "Content-Type").as_deref(),
        Some("application/sdp")
    );
    assert!(
        header(&ok, "Contact").is_some(),
        "a 2xx to INVITE carries our Contact"
    );
    // The phone moved: our BYE goes to its new Contact.
    uac.hangup(t0);
    let bye = drain(&mut uac)
        .into_iter()
        .find_map(|a| match a {
            Action::Request(r) if r.method == Method::Bye => Some(r),
            _ => None,
        })
        .expect("BYE");
    assert_eq!(bye.uri.to_string(), "sip:alice@10.0.0.77:5070");
    // A retransmitted or stale re-INVITE (same CSeq) is not a new one.
    assert_eq!(uac.reinvite_response(&hold, None).unwrap_err(), 500);
}

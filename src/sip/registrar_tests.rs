use super::*;
use crate::sip::digest::{authorize, Credentials};
use crate::sip::fixtures::request;
use crate::sip::message::{self, header, response_to};
use std::time::Duration;

const SECRET: &str = "server-secret";

fn register() -> rsip::Request {
    request(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKr1\r\n\
From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: reg@phone\r\nCSeq: 1 REGISTER\r\n\
Contact: <sip:alice@10.0.0.9:5070>\r\nContent-Length: 0\r\n\r\n",
    )
}

/// The phone's answer to our challenge, computed by the client-side digest code.
fn answer(decision: &Decision, password: &str) -> String {
    let Decision::Challenge { nonce, stale } = decision else {
        panic!("expected a challenge, got {decision:?}");
    };
    let mut c = response_to(&register(), 401, Some("t"));
    c.headers.push(rsip::Header::Other(
        "WWW-Authenticate".into(),
        www_authenticate("switchboard", nonce, *stale),
    ));
    let c = match message::parse(&message::to_bytes(&c.into())).unwrap() {
        rsip::SipMessage::Response(r) => r,
        rsip::SipMessage::Request(_) => unreachable!(),
    };
    let creds = Credentials {
        username: "alice",
        password,
    };
    let retry = authorize(&register(), &c, &creds, "c0ffee", 1).unwrap();
    header(&retry, "Authorization").unwrap()
}

fn known(user: &str) -> Option<String> {
    (user == "alice").then(|| ha1("alice", "switchboard", "open sesame"))
}

fn reg<'a>(auth: Option<&'a str>, expires: Option<u32>) -> Register<'a> {
    Register {
        authorization: auth,
        expires,
        to_user: "alice",
    }
}

#[test]
fn a_phone_without_credentials_is_challenged_then_bound_with_the_right_password() {
    let p = Policy::new("switchboard");
    let now = Instant::from_millis(10_000);
    let first = decide(&p, SECRET, now, &reg(None, Some(120)), known);
    assert!(matches!(first, Decision::Challenge { stale: false, .. }));
    let auth = answer(&first, "open sesame");
    let later = now + Duration::from_secs(2);
    assert_eq!(
        decide(&p, SECRET, later, &reg(Some(&auth), Some(120)), known),
        Decision::Bind {
            user: "alice".into(),
            expires: 120
        }
    );
    // Expiry is bounded above and defaults to an hour.
    assert_eq!(
        decide(&p, SECRET, later, &reg(Some(&auth), Some(99_999)), known),
        Decision::Bind {
            user: "alice".into(),
            expires: 3600
        }
    );
    assert_eq!(
        decide(&p, SECRET, later, &reg(Some(&auth), Some(0)), known),
        Decision::Unbind {
            user: "alice".into()
        }
    );
    assert_eq!(
        decide(&p, SECRET, later, &reg(Some(&auth), Some(30)), known),
        Decision::TooBrief { min: 60 }
    );
}

#[test]
fn wrong_password_and_unknown_user_are_refused_alike() {
    let p = Policy::new("switchboard");
    let now = Instant::from_millis(5_000);
    let ch = decide(&p, SECRET, now, &reg(None, None), known);
    let wrong = answer(&ch, "guess");
    assert_eq!(
        decide(&p, SECRET, now, &reg(Some(&wrong), None), known),
        Decision::Forbidden
    );
    let nobody = |_: &str| None;
    let ch2 = decide(&p, SECRET, now, &reg(None, None), nobody);
    assert!(
        matches!(ch2, Decision::Challenge { stale: false, .. }),
        "unknown users are challenged like known ones"
    );
    let right = answer(&ch2, "open sesame");
    assert_eq!(
        decide(&p, SECRET, now, &reg(Some(&right), None), nobody),
        Decision::Forbidden
    );
    // Credentials of alice cannot register someone else's binding.
    let mut bob = reg(Some(&right), None);
    bob.to_user = "bob";
    assert_eq!(decide(&p, SECRET, now, &bob, known), Decision::Forbidden);
}

#[test]
fn old_nonces_get_a_stale_challenge_and_forged_ones_a_fresh_one() {
    let p = Policy::new("switchboard");
    let now = Instant::from_millis(1_000);
    let ch = decide(&p, SECRET, now, &reg(None, None), known);
    let auth = answer(&ch, "open sesame");
    let much_later = now + Duration::from_secs(301);
    assert!(matches!(
        decide(&p, SECRET, much_later, &reg(Some(&auth), None), known),
        Decision::Challenge { stale: true, .. }
    ));
    let forged = auth.replace(".", "x.");
    assert!(matches!(
        decide(&p, SECRET, now, &reg(Some(&forged), None), known),
        Decision::Challenge { stale: false, .. }
    ));
    assert!(matches!(
        decide(&p, "another-secret", now, &reg(Some(&auth), None), known),
        Decision::Challenge { stale: false, .. }
    ));
}

#[test]
fn malformed_authorization_is_refused_and_never_echoes_the_response() {
    let p = Policy::new("switchboard");
    let now = Instant::from_millis(1_000);
    for bad in [
        "Basic YWxpY2U6cHc=",
        "Digest username=\"alice\"",
        "Digest username=\"alice, realm=\"x",
    ] {
        assert_eq!(
            decide(&p, SECRET, now, &reg(Some(bad), None), known),
            Decision::Forbidden,
            "{bad}"
        );
    }
    let huge = format!("Digest username=\"{}\"", "a".repeat(5000));
    assert_eq!(
        decide(&p, SECRET, now, &reg(Some(&huge), None), known),
        Decision::Forbidden
    );
    let parsed = parse_authorization(
        "Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"deadbeef\"",
    )
    .unwrap();
    assert!(!format!("{parsed:?}").contains("deadbeef"));
}

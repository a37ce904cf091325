use super::*;
use crate::sip::message::{header, response_to};
use crate::sip::registrar::{ha1, parse_authorization, verify};

const CREDS: Credentials<'static> = Credentials {
    username: "acme",
    password: "reg-s3cret",
};

fn t(secs: u64) -> Instant {
    Instant::ZERO + Duration::from_secs(secs)
}

fn client(now: Instant) -> RegisterClient {
    RegisterClient::new(
        RegisterParams {
            registrar: rsip::Uri::try_from("sip:10.0.0.9:5070").unwrap(),
            aor: "sip:acme@10.0.0.9:5070".into(),
            contact: "sip:acme@10.0.0.1:5060".into(),
            call_id: "reg1@switchboard".into(),
            from_tag: "rt".into(),
            expires: 600,
        },
        now,
    )
}

fn drain(c: &mut RegisterClient) -> (Vec<Request>, Vec<RegState>) {
    let (mut sent, mut states) = (Vec::new(), Vec::new());
    while let Some(a) = c.poll_action() {
        match a {
            RegAction::Send(r) => sent.push(*r),
            RegAction::State(s) => states.push(s),
        }
    }
    (sent, states)
}

fn reply(req: &Request, code: u16, extra: &[(&str, &str)]) -> Response {
    let mut r = response_to(req, code, Some("regtag"));
    for (n, v) in extra {
        r.headers
            .push(rsip::Header::Other((*n).into(), (*v).to_string()));
    }
    r
}

fn challenge(req: &Request) -> Response {
    reply(
        req,
        401,
        &[(
            "WWW-Authenticate",
            "Digest realm=\"carrier.example\", nonce=\"n1\", qop=\"auth\"",
        )],
    )
}

/// Registers through one challenge; returns the authorized REGISTER.
fn register(c: &mut RegisterClient, now: Instant, granted: &str) -> Request {
    let (sent, _) = drain(c);
    let first = sent.last().cloned().expect("a REGISTER");
    c.on_response(now, &challenge(&first), Some(&CREDS), "cn1");
    let (sent, _) = drain(c);
    let authorized = sent.last().cloned().expect("the authorized REGISTER");
    c.on_response(
        now,
        &reply(&authorized, 200, &[("Contact", granted)]),
        Some(&CREDS),
        "x",
    );
    authorized
}

#[test]
fn a_challenge_is_answered_with_a_valid_digest_and_the_binding_refreshed_before_it_lapses() {
    let mut c = client(t(0));
    let (sent, states) = drain(&mut c);
    assert_eq!(states, vec![RegState::Trying]);
    let first = sent.first().cloned().unwrap();
    assert_eq!(first.method, Method::Register);
    assert_eq!(header(&first, "Expires").as_deref(), Some("600"));
    assert_eq!(
        header(&first, "Contact").as_deref(),
        Some("<sip:acme@10.0.0.1:5060>")
    );
    assert_eq!(header(&first, "Authorization"), None);

    c.on_response(t(0), &challenge(&first), Some(&CREDS), "cn1");
    let (sent, states) = drain(&mut c);
    assert!(states.is_empty(), "still trying: {states:?}");
    let authorized = sent.first().cloned().unwrap();
    let auth = parse_authorization(&header(&authorized, "Authorization").unwrap()).unwrap();
    assert!(verify(
        &auth,
        "REGISTER",
        &ha1("acme", "carrier.example", "reg-s3cret")
    ));
    assert_eq!(message::cseq(&authorized), Some((2, Method::Register)));
    assert!(!format!("{authorized:?}").contains("reg-s3cret"));

    // The registrar grants 2 s in the Contact: refresh at 1 s, before the binding lapses.
    let ok = reply(
        &authorized,
        200,
        &[
            ("Contact", "<sip:acme@10.0.0.1:5060>;expires=2"),
            ("Expires", "3600"),
        ],
    );
    c.on_response(t(0), &ok, Some(&CREDS), "x");
    assert_eq!(drain(&mut c).1, vec![RegState::Registered]);
    assert_eq!(c.poll_timeout(), Some(t(1)));
    c.on_timeout(t(0) + Duration::from_millis(999));
    assert!(drain(&mut c).0.is_empty(), "no refresh early");
    c.on_timeout(t(1));
    let (sent, states) = drain(&mut c);
    assert!(
        states.is_empty(),
        "a refresh does not flap the state: {states:?}"
    );
    let refresh = sent.first().cloned().unwrap();
    assert_eq!(
        message::call_id(&refresh).as_deref(),
        Some("reg1@switchboard")
    );
    assert_eq!(message::cseq(&refresh), Some((3, Method::Register)));

    // The refresh is challenged again (a new nonce) and answered again.
    c.on_response(t(1), &challenge(&refresh), Some(&CREDS), "cn2");
    let (sent, _) = drain(&mut c);
    assert!(header(sent.first().unwrap(), "Authorization").is_some());
    assert_eq!(c.state(), RegState::Registered);
}

#[test]
fn the_expires_header_counts_when_the_contact_has_none_and_refreshes_come_early_enough() {
    let mut c = client(t(0));
    let authorized = register(&mut c, t(10), "<sip:someone-else@10.0.0.7>;expires=5");
    let _ = authorized;
    // No expires on our Contact and no Expires header: what we asked for (600 s) → 300 s.
    assert_eq!(c.poll_timeout(), Some(t(310)));

    let mut c = client(t(0));
    let (sent, _) = drain(&mut c);
    let ok = reply(
        sent.first().unwrap(),
        200,
        &[("Contact", "<sip:acme@10.0.0.1:5060>"), ("Expires", "3600")],
    );
    c.on_response(t(0), &ok, None, "x");
    assert_eq!(c.poll_timeout(), Some(t(1800)));

    assert_eq!(refresh_after(3600), Duration::from_secs(1800));
    assert_eq!(
        refresh_after(40),
        Duration::from_secs(10),
        "30 s before expiry"
    );
    assert_eq!(
        refresh_after(20),
        Duration::from_secs(5),
        "but not sooner than 5 s"
    );
    assert_eq!(
        refresh_after(2),
        Duration::from_secs(1),
        "unless the expiry is shorter"
    );
}

#[test]
fn refused_credentials_mean_failed_once_and_a_slow_retry() {
    let mut c = client(t(0));
    let (sent, _) = drain(&mut c);
    c.on_response(t(0), &challenge(sent.first().unwrap()), Some(&CREDS), "cn");
    let (sent, _) = drain(&mut c);
    c.on_response(
        t(0),
        &reply(sent.first().unwrap(), 403, &[]),
        Some(&CREDS),
        "cn",
    );
    assert_eq!(drain(&mut c), (vec![], vec![RegState::Failed]));
    assert_eq!(c.poll_timeout(), Some(t(0) + REFUSED_RETRY));
    c.on_timeout(t(0) + REFUSED_RETRY);
    let (sent, states) = drain(&mut c);
    assert!(states.is_empty(), "still failed while retrying: {states:?}");
    assert_eq!(sent.len(), 1);

    // A second challenge for the authorized REGISTER: the password is wrong, not retried at once.
    let mut c = client(t(0));
    let (sent, _) = drain(&mut c);
    c.on_response(t(0), &challenge(sent.first().unwrap()), Some(&CREDS), "cn");
    let (sent, _) = drain(&mut c);
    c.on_response(t(0), &challenge(sent.first().unwrap()), Some(&CREDS), "cn");
    assert_eq!(drain(&mut c), (vec![], vec![RegState::Failed]));

    // No credentials configured: the challenge is a refusal too.
    let mut c = client(t(0));
    let (sent, _) = drain(&mut c);
    c.on_response(t(0), &challenge(sent.first().unwrap()), None, "cn");
    assert_eq!(drain(&mut c).1, vec![RegState::Failed]);
}

#[test]
fn silence_and_server_errors_back_off_doubling_up_to_the_cap() {
    let mut c = client(t(0));
    drain(&mut c);
    let mut now = t(0);
    let mut waits = Vec::new();
    for round in 0..7 {
        if round % 2 == 0 {
            c.request_timeout(now);
        } else {
            let pending = c.pending.clone().unwrap();
            c.on_response(now, &reply(&pending, 503, &[]), None, "x");
        }
        let (_, states) = drain(&mut c);
        assert_eq!(
            states,
            if round == 0 {
                vec![RegState::Failed]
            } else {
                vec![]
            }
        );
        let next = c.poll_timeout().unwrap();
        waits.push(next.saturating_since(now).as_secs());
        now = next;
        c.on_timeout(now);
        let (sent, states) = drain(&mut c);
        assert_eq!(sent.len(), 1, "retried at {now:?}");
        assert!(states.is_empty(), "logged once, not per retry");
    }
    assert_eq!(waits, vec![30, 60, 120, 240, 480, 600, 600]);
    // A success resets the back-off.
    let r = c.pending.clone().unwrap();
    c.on_response(now, &reply(&r, 200, &[("Expires", "600")]), None, "x");
    assert_eq!(drain(&mut c).1, vec![RegState::Registered]);
    assert_eq!(c.backoff, FIRST_BACKOFF);
    // No answer at all within the guard counts as a timeout as well.
    let mut c = client(t(0));
    drain(&mut c);
    c.on_timeout(t(40));
    assert_eq!(drain(&mut c).1, vec![RegState::Failed]);
    assert_eq!(c.poll_timeout(), Some(t(70)));
}

#[test]
fn a_423_raises_the_expiry_to_the_registrars_minimum() {
    let mut c = client(t(0));
    let (sent, _) = drain(&mut c);
    c.on_response(
        t(0),
        &reply(sent.first().unwrap(), 423, &[("Min-Expires", "1800")]),
        None,
        "x",
    );
    let (sent, states) = drain(&mut c);
    assert!(states.is_empty());
    assert_eq!(
        header(sent.first().unwrap(), "Expires").as_deref(),
        Some("1800")
    );
}

#[test]
fn shutdown_unregisters_a_binding_and_answers_its_challenge() {
    let mut c = client(t(0));
    register(&mut c, t(0), "<sip:acme@10.0.0.1:5060>;expires=600");
    c.unregister(t(5));
    let (sent, _) = drain(&mut c);
    let unreg = sent.first().cloned().unwrap();
    assert_eq!(header(&unreg, "Expires").as_deref(), Some("0"));
    c.on_response(t(5), &challenge(&unreg), Some(&CREDS), "cn");
    let (sent, _) = drain(&mut c);
    let authorized = sent.first().cloned().unwrap();
    assert!(header(&authorized, "Authorization").is_some());
    assert_eq!(header(&authorized, "Expires").as_deref(), Some("0"));
    assert!(!c.is_done());
    c.on_response(t(5), &reply(&authorized, 200, &[]), Some(&CREDS), "x");
    assert!(c.is_done());

    // Nothing registered: nothing to remove.
    let mut c = client(t(0));
    drain(&mut c);
    c.request_timeout(t(1));
    c.unregister(t(2));
    assert!(c.is_done());
    assert!(drain(&mut c).0.is_empty());
}

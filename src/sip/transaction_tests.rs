use super::*;
use crate::sip::fixtures::*;
use crate::sip::message::{header, parse, response_to};

const CALLER: &str = "127.0.0.1:5061";

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

fn layer() -> TransactionLayer {
    let mut l = TransactionLayer::new(TimerConfig::default(), 0xfeed);
    l.set_local_addr(Transport::Udp, "127.0.0.1:5060".parse().unwrap());
    l.set_local_addr(Transport::Tcp, "127.0.0.1:5060".parse().unwrap());
    l
}

fn transmits(l: &mut TransactionLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| l.poll_transmit()).collect()
}

fn events(l: &mut TransactionLayer) -> Vec<TxEvent> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

fn status(t: &Transmit) -> u16 {
    match parse(&t.bytes).expect("we only transmit valid SIP") {
        rsip::SipMessage::Response(r) => r.status_code.code(),
        rsip::SipMessage::Request(r) => panic!("expected a response, got {}", r.method),
    }
}

fn sent_request(t: &Transmit) -> rsip::Request {
    match parse(&t.bytes).expect("we only transmit valid SIP") {
        rsip::SipMessage::Request(r) => r,
        rsip::SipMessage::Response(_) => panic!("expected a request"),
    }
}

/// Runs timers up to `until`, returning (time, transmit) pairs in order.
fn run_until(l: &mut TransactionLayer, until: Instant) -> Vec<(Instant, Transmit)> {
    let mut out = Vec::new();
    while let Some(at) = l.poll_timeout().filter(|t| *t <= until) {
        l.handle_timeout(at);
        out.extend(transmits(l).into_iter().map(|t| (at, t)));
    }
    out
}

fn times(sent: &[(Instant, Transmit)]) -> Vec<u64> {
    sent.iter().map(|(t, _)| t.as_micros() / 1000).collect()
}

fn incoming_invite(
    l: &mut TransactionLayer,
    branch: &str,
    call_id: &str,
) -> (ServerTxKey, rsip::Request) {
    l.handle_datagram(ms(0), udp(CALLER), sipp_invite(branch, call_id).as_bytes());
    let sent = transmits(l);
    assert_eq!(sent.len(), 1);
    assert_eq!(status(&sent[0]), 100, "100 Trying goes out at once");
    match events(l).as_slice() {
        [TxEvent::Request { key, request, .. }] => (key.clone(), request.clone()),
        other => panic!("expected one request, got {other:?}"),
    }
}

fn ack_for_2xx(branch: &str, call_id: &str) -> String {
    format!(
        "ACK sip:7000@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch={branch}\r\n\
From: sipp <sip:+551199990000@127.0.0.1:5061>;tag=12345SIPpTag001\r\nTo: service <sip:7000@127.0.0.1:5060>;tag=srv\r\n\
Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn a_retransmitted_invite_gets_the_same_answers_and_reaches_the_tu_once() {
    let mut l = layer();
    let (key, invite) = incoming_invite(&mut l, "z9hG4bK-r1", "r1@x");
    l.handle_datagram(
        ms(500),
        udp(CALLER),
        sipp_invite("z9hG4bK-r1", "r1@x").as_bytes(),
    );
    let again = transmits(&mut l);
    assert_eq!(again.iter().map(status).collect::<Vec<_>>(), vec![100]);
    assert!(events(&mut l).is_empty(), "retransmission absorbed");

    l.respond(ms(600), &key, response_to(&invite, 200, Some("srv")))
        .unwrap();
    let ok = transmits(&mut l);
    l.handle_datagram(
        ms(700),
        udp(CALLER),
        sipp_invite("z9hG4bK-r1", "r1@x").as_bytes(),
    );
    let replay = transmits(&mut l);
    assert_eq!(replay.len(), 1);
    assert_eq!(
        replay[0].bytes, ok[0].bytes,
        "the very same 200 is repeated"
    );
    assert!(events(&mut l).is_empty());
}

#[test]
fn a_lost_2xx_is_retransmitted_t1_doubling_to_t2_until_the_ack() {
    let mut l = layer();
    let (key, invite) = incoming_invite(&mut l, "z9hG4bK-2xx", "2xx@x");
    l.respond(ms(0), &key, response_to(&invite, 200, Some("srv")))
        .unwrap();
    assert_eq!(
        transmits(&mut l).iter().map(status).collect::<Vec<_>>(),
        vec![200]
    );
    // The network drops the 200 and its first retransmissions; the caller never ACKs yet.
    let resent = run_until(&mut l, ms(11_600));
    assert_eq!(times(&resent), vec![500, 1500, 3500, 7500, 11_500]);
    assert!(resent
        .iter()
        .all(|(_, t)| status(t) == 200 && t.peer == udp(CALLER)));

    l.handle_datagram(
        ms(12_000),
        udp(CALLER),
        ack_for_2xx("z9hG4bK-ack1", "2xx@x").as_bytes(),
    );
    assert!(matches!(events(&mut l).as_slice(), [TxEvent::Ack { .. }]));
    assert!(
        run_until(&mut l, ms(31_000)).is_empty(),
        "the ACK stopped the retransmissions"
    );
    // A retransmitted ACK is absorbed; Timer L then cleans up without an AckTimeout.
    l.handle_datagram(
        ms(13_000),
        udp(CALLER),
        ack_for_2xx("z9hG4bK-ack1", "2xx@x").as_bytes(),
    );
    run_until(&mut l, ms(40_000));
    assert!(events(&mut l).is_empty());
    assert!(l.is_empty());
}

#[test]
fn no_ack_for_a_2xx_within_64_t1_tells_the_tu_to_hang_up() {
    let mut l = layer();
    let (key, invite) = incoming_invite(&mut l, "z9hG4bK-noack", "noack@x");
    l.respond(ms(0), &key, response_to(&invite, 200, Some("srv")))
        .unwrap();
    transmits(&mut l);
    run_until(&mut l, ms(31_999));
    assert!(events(&mut l).is_empty());
    assert_eq!(l.poll_timeout(), Some(ms(32_000)));
    run_until(&mut l, ms(32_000));
    match events(&mut l).as_slice() {
        [TxEvent::AckTimeout { invite, call_id }] => {
            assert_eq!(invite, &key);
            assert_eq!(call_id, "noack@x");
        }
        other => panic!("expected AckTimeout, got {other:?}"),
    }
    assert!(l.is_empty());
}

#[test]
fn a_rejected_invite_is_retransmitted_by_timer_g_until_the_ack_then_timer_i() {
    let mut l = layer();
    let (key, invite) = incoming_invite(&mut l, "z9hG4bK-busy", "busy@x");
    l.respond(ms(0), &key, response_to(&invite, 486, Some("srv")))
        .unwrap();
    transmits(&mut l);
    let resent = run_until(&mut l, ms(4000));
    assert_eq!(times(&resent), vec![500, 1500, 3500]);
    // The ACK for a non-2xx reuses the INVITE branch and is absorbed by the transaction.
    let ack = ack_for_2xx("z9hG4bK-busy", "busy@x");
    l.handle_datagram(ms(4000), udp(CALLER), ack.as_bytes());
    assert!(
        events(&mut l).is_empty(),
        "ACK for a failure is not the TU's business"
    );
    assert_eq!(l.poll_timeout(), Some(ms(9000)), "Timer I = T4");
    l.handle_datagram(
        ms(5000),
        udp(CALLER),
        sipp_invite("z9hG4bK-busy", "busy@x").as_bytes(),
    );
    assert!(
        transmits(&mut l).is_empty(),
        "Confirmed absorbs INVITE retransmissions too"
    );
    run_until(&mut l, ms(9000));
    assert!(l.is_empty());
}

#[test]
fn timer_h_gives_up_on_a_missing_ack_at_64_t1() {
    let mut l = layer();
    let (key, invite) = incoming_invite(&mut l, "z9hG4bK-h", "h@x");
    l.respond(ms(0), &key, response_to(&invite, 404, Some("srv")))
        .unwrap();
    transmits(&mut l);
    let resent = run_until(&mut l, ms(31_999));
    assert_eq!(
        times(&resent),
        vec![500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
    );
    assert_eq!(l.len(), 1);
    run_until(&mut l, ms(32_000));
    assert!(l.is_empty());
    assert!(events(&mut l).is_empty());
}

fn cancel_for(branch: &str, call_id: &str) -> String {
    format!(
        "CANCEL sip:7000@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch={branch}\r\n\
From: sipp <sip:+551199990000@127.0.0.1:5061>;tag=12345SIPpTag001\r\nTo: service <sip:7000@127.0.0.1:5060>\r\n\
Call-ID: {call_id}\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn cancel_is_answered_200_and_the_invite_487_with_one_tag() {
    let mut l = layer();
    let (key, invite) = incoming_invite(&mut l, "z9hG4bK-c", "c@x");
    l.respond(ms(100), &key, response_to(&invite, 180, Some("ring1")))
        .unwrap();
    transmits(&mut l);
    l.handle_datagram(
        ms(2000),
        udp(CALLER),
        cancel_for("z9hG4bK-c", "c@x").as_bytes(),
    );
    let sent = transmits(&mut l);
    assert_eq!(sent.iter().map(status).collect::<Vec<_>>(), vec![200, 487]);
    for t in &sent {
        let m = parse(&t.bytes).unwrap();
        assert_eq!(
            message::to_tag(&m).as_deref(),
            Some("ring1"),
            "same To tag as the 180"
        );
    }
    assert_eq!(
        message::cseq(&parse(&sent[0].bytes).unwrap()).unwrap().1,
        rsip::Method::Cancel
    );
    assert!(matches!(events(&mut l).as_slice(), [TxEvent::Cancelled { invite }] if *invite == key));
    assert_eq!(
        l.respond(ms(2100), &key, response_to(&invite, 200, Some("ring1"))),
        Err(TxError::AlreadyFinal)
    );
    // A retransmitted CANCEL gets its 200 again; nothing new for the TU.
    l.handle_datagram(
        ms(2500),
        udp(CALLER),
        cancel_for("z9hG4bK-c", "c@x").as_bytes(),
    );
    let sent = transmits(&mut l);
    assert_eq!(sent.iter().map(status).collect::<Vec<_>>(), vec![200]);
    assert!(events(&mut l).is_empty());
}

#[test]
fn cancel_without_a_transaction_is_481_and_after_the_answer_only_200() {
    let mut l = layer();
    l.handle_datagram(
        ms(0),
        udp(CALLER),
        cancel_for("z9hG4bK-none", "none@x").as_bytes(),
    );
    assert_eq!(
        transmits(&mut l).iter().map(status).collect::<Vec<_>>(),
        vec![481]
    );

    let (key, invite) = incoming_invite(&mut l, "z9hG4bK-late", "late@x");
    l.respond(ms(10), &key, response_to(&invite, 200, Some("srv")))
        .unwrap();
    transmits(&mut l);
    l.handle_datagram(
        ms(20),
        udp(CALLER),
        cancel_for("z9hG4bK-late", "late@x").as_bytes(),
    );
    assert_eq!(
        transmits(&mut l).iter().map(status).collect::<Vec<_>>(),
        vec![200]
    );
    assert!(events(&mut l).is_empty(), "the call stays up");
}

#[test]
fn non_invite_requests_absorb_retransmissions_and_replay_the_final() {
    let mut l = layer();
    let bye = "BYE sip:7000@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-bye\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:7000@c>;tag=2\r\nCall-ID: bye@x\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
    l.handle_datagram(ms(0), udp(CALLER), bye.as_bytes());
    let Some(TxEvent::Request { key, request, .. }) = l.poll_event() else {
        panic!("BYE delivered")
    };
    assert!(transmits(&mut l).is_empty(), "no 100 for non-INVITE");
    l.handle_datagram(ms(500), udp(CALLER), bye.as_bytes());
    assert!(transmits(&mut l).is_empty() && events(&mut l).is_empty());
    l.respond(ms(600), &key, response_to(&request, 200, None))
        .unwrap();
    assert_eq!(transmits(&mut l).len(), 1);
    l.handle_datagram(ms(1000), udp(CALLER), bye.as_bytes());
    assert_eq!(
        transmits(&mut l).iter().map(status).collect::<Vec<_>>(),
        vec![200]
    );
    assert_eq!(l.poll_timeout(), Some(ms(600 + 32_000)), "Timer J");
    run_until(&mut l, ms(40_000));
    assert!(l.is_empty());
    assert_eq!(
        l.respond(ms(40_000), &key, response_to(&request, 200, None)),
        Err(TxError::UnknownTransaction)
    );
}

#[test]
fn over_tcp_nothing_is_retransmitted_and_completed_states_end_at_once() {
    let mut l = layer();
    let peer = tcp("10.0.0.5:49152");
    l.handle_datagram(ms(0), peer, compact_invite().as_bytes());
    assert_eq!(
        transmits(&mut l)
            .iter()
            .map(|t| (status(t), t.peer))
            .collect::<Vec<_>>(),
        vec![(100, peer)]
    );
    let Some(TxEvent::Request { key, request, .. }) = l.poll_event() else {
        panic!()
    };
    l.respond(ms(0), &key, response_to(&request, 200, Some("t")))
        .unwrap();
    transmits(&mut l);
    assert!(
        run_until(&mut l, ms(31_000)).is_empty(),
        "no 2xx retransmission over TCP"
    );
    run_until(&mut l, ms(32_000));
    assert!(
        matches!(events(&mut l).as_slice(), [TxEvent::AckTimeout { .. }]),
        "but the ACK is still awaited"
    );

    let options = "OPTIONS sip:gw SIP/2.0\r\nv: SIP/2.0/TCP 10.0.0.5:5060;branch=z9hG4bKo\r\nf: <sip:a@b>;tag=1\r\n\
t: <sip:gw>\r\ni: o@x\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n";
    l.handle_datagram(ms(0), peer, options.as_bytes());
    let Some(TxEvent::Request { key, request, .. }) = l.poll_event() else {
        panic!()
    };
    l.respond(ms(0), &key, response_to(&request, 200, Some("t")))
        .unwrap();
    assert!(l.is_empty(), "Timer J is zero on TCP");
}

#[test]
fn responses_follow_via_rport_and_received() {
    let mut l = layer();
    // No rport: the source IP at the Via port, and `received` because the Via names another host.
    let natted = sipp_invite("z9hG4bK-n", "n@x").replace(
        "Via: SIP/2.0/UDP 127.0.0.1:5061",
        "Via: SIP/2.0/UDP 192.168.0.9:5061",
    );
    l.handle_datagram(ms(0), udp("203.0.113.7:40000"), natted.as_bytes());
    let sent = transmits(&mut l);
    assert_eq!(sent[0].peer, udp("203.0.113.7:5061"));
    let via = header(&parse(&sent[0].bytes).unwrap(), "Via").unwrap();
    assert!(via.ends_with(";received=203.0.113.7"), "{via}");
    // rport: straight back to the source port, with rport filled in (RFC 3581).
    let rport =
        sipp_invite("z9hG4bK-p", "p@x").replace(";branch=z9hG4bK-p", ";rport;branch=z9hG4bK-p");
    l.handle_datagram(ms(0), udp("203.0.113.7:40001"), rport.as_bytes());
    let sent = transmits(&mut l);
    assert_eq!(sent[0].peer, udp("203.0.113.7:40001"));
    let via = header(&parse(&sent[0].bytes).unwrap(), "Via").unwrap();
    assert_eq!(
        via,
        "SIP/2.0/UDP 127.0.0.1:5061;rport=40001;branch=z9hG4bK-p;received=203.0.113.7"
    );
}

#[test]
fn malformed_requests_get_400_and_noise_gets_silence() {
    let mut l = layer();
    let bad =
        sipp_invite("z9hG4bK-bad", "bad@x").replace("Content-Length:   129", "Content-Length: 999");
    l.handle_datagram(ms(0), udp(CALLER), bad.as_bytes());
    assert_eq!(
        transmits(&mut l).iter().map(status).collect::<Vec<_>>(),
        vec![400]
    );
    l.handle_datagram(ms(0), udp(CALLER), b"\x16\x03\x01\x02\x00garbage");
    l.handle_datagram(ms(0), udp(CALLER), b"\r\n\r\n");
    assert!(transmits(&mut l).is_empty() && events(&mut l).is_empty() && l.is_empty());
    l.handle_datagram(ms(0), tcp(CALLER), b"\r\n\r\n");
    assert_eq!(
        transmits(&mut l)
            .iter()
            .map(|t| t.bytes.clone())
            .collect::<Vec<_>>(),
        vec![b"\r\n".to_vec()]
    );
}

fn outbound_invite() -> rsip::Request {
    let text = "INVITE sip:+5511911112222@trunk.example SIP/2.0\r\nFrom: <sip:7000@gw>;tag=out1\r\n\
To: <sip:+5511911112222@trunk.example>\r\nCall-ID: out@gw\r\nCSeq: 1 INVITE\r\nContact: <sip:gw@127.0.0.1:5060>\r\n\
Via: SIP/2.0/UDP placeholder;branch=z9hG4bKx\r\nContent-Length: 0\r\n\r\n";
    let mut r = request(text);
    r.headers.retain(|h| !matches!(h, Header::Via(_)));
    r
}

fn reply(to: &rsip::Request, code: u16, tag: &str) -> Vec<u8> {
    message::to_bytes(&response_to(to, code, Some(tag)).into())
}

const TRUNK: &str = "198.51.100.1:5060";

#[test]
fn an_unanswered_invite_is_retransmitted_by_timer_a_and_times_out_at_32s() {
    let mut l = layer();
    let key = l.send_request(ms(0), udp(TRUNK), outbound_invite());
    let first = transmits(&mut l);
    let sent = sent_request(&first[0]);
    let via = header(&sent, "Via").unwrap();
    assert!(
        via.starts_with("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK") && via.ends_with(";rport"),
        "{via}"
    );
    assert_eq!(header(&sent, "Max-Forwards").as_deref(), Some("70"));
    // Every transmit is lost.
    let resent = run_until(&mut l, ms(31_999));
    assert_eq!(times(&resent), vec![500, 1500, 3500, 7500, 15_500, 31_500]);
    assert!(resent.iter().all(|(_, t)| t.bytes == first[0].bytes));
    assert!(events(&mut l).is_empty());
    run_until(&mut l, ms(32_000));
    assert!(matches!(events(&mut l).as_slice(), [TxEvent::ClientTimeout { key: k }] if *k == key));
    assert!(l.is_empty());
}

#[test]
fn a_failed_outbound_invite_is_acked_by_the_layer_and_repeats_absorbed() {
    let mut l = layer();
    let key = l.send_request(ms(0), udp(TRUNK), outbound_invite());
    let sent = sent_request(&transmits(&mut l)[0]);
    l.handle_datagram(ms(100), udp(TRUNK), &reply(&sent, 100, ""));
    l.handle_datagram(ms(200), udp(TRUNK), &reply(&sent, 180, "far"));
    let evs = events(&mut l);
    assert_eq!(evs.len(), 2, "each distinct provisional reaches the TU");
    assert!(
        run_until(&mut l, ms(20_000)).is_empty(),
        "provisional stops Timer A and B"
    );
    l.handle_datagram(ms(20_000), udp(TRUNK), &reply(&sent, 486, "far"));
    let acks = transmits(&mut l);
    let ack = sent_request(&acks[0]);
    assert_eq!(ack.method, rsip::Method::Ack);
    assert_eq!(
        message::branch(&ack),
        message::branch(&sent),
        "non-2xx ACK reuses the branch"
    );
    assert_eq!(message::to_tag(&ack).as_deref(), Some("far"));
    assert_eq!(message::cseq(&ack), Some((1, rsip::Method::Ack)));
    assert!(
        matches!(events(&mut l).as_slice(), [TxEvent::Response { key: k, response }] if *k == key && response.status_code.code() == 486)
    );
    l.handle_datagram(ms(20_500), udp(TRUNK), &reply(&sent, 486, "far"));
    assert_eq!(
        transmits(&mut l),
        acks,
        "the retransmitted 486 is ACKed again"
    );
    assert!(events(&mut l).is_empty());
    run_until(&mut l, ms(52_000));
    assert!(l.is_empty(), "Timer D");
}

#[test]
fn a_retransmitted_2xx_is_re_acked_and_a_forked_2xx_is_reported() {
    let mut l = layer();
    l.send_request(ms(0), udp(TRUNK), outbound_invite());
    let sent = sent_request(&transmits(&mut l)[0]);
    l.handle_datagram(ms(300), udp(TRUNK), &reply(&sent, 200, "far"));
    assert_eq!(events(&mut l).len(), 1);
    let mut ack = outbound_invite();
    ack.method = rsip::Method::Ack;
    ack.headers
        .retain(|h| !matches!(h, Header::CSeq(_) | Header::To(_)));
    ack.headers.push(Header::CSeq("1 ACK".to_string().into()));
    ack.headers.push(Header::To(
        "<sip:+5511911112222@trunk.example>;tag=far"
            .to_string()
            .into(),
    ));
    l.send_ack(udp(TRUNK), ack);
    let our_ack = transmits(&mut l);
    assert_ne!(
        message::branch(&sent_request(&our_ack[0])),
        message::branch(&sent),
        "2xx ACK has its own branch"
    );
    l.handle_datagram(ms(800), udp(TRUNK), &reply(&sent, 200, "far"));
    assert_eq!(transmits(&mut l), our_ack);
    assert!(events(&mut l).is_empty());
    l.handle_datagram(ms(900), udp(TRUNK), &reply(&sent, 200, "fork2"));
    assert_eq!(
        events(&mut l).len(),
        1,
        "a second dialog must be visible to the TU"
    );
    run_until(&mut l, ms(33_000));
    assert!(l.is_empty(), "Timer M");
}

#[test]
fn non_invite_requests_use_timer_e_capped_at_t2_and_timer_f() {
    let mut l = layer();
    let mut bye = outbound_invite();
    bye.method = rsip::Method::Bye;
    bye.headers.retain(|h| !matches!(h, Header::CSeq(_)));
    bye.headers.push(Header::CSeq("2 BYE".to_string().into()));
    let key = l.send_request(ms(0), udp(TRUNK), bye);
    transmits(&mut l);
    let resent = run_until(&mut l, ms(31_999));
    assert_eq!(
        times(&resent),
        vec![500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
    );
    run_until(&mut l, ms(32_000));
    assert!(matches!(events(&mut l).as_slice(), [TxEvent::ClientTimeout { key: k }] if *k == key));
}

#[test]
fn cancel_waits_for_a_provisional_and_reuses_the_invite_branch() {
    let mut l = layer();
    let key = l.send_request(ms(0), udp(TRUNK), outbound_invite());
    let sent = sent_request(&transmits(&mut l)[0]);
    let cancel_key = l.cancel(ms(10), &key).unwrap();
    assert!(
        transmits(&mut l).is_empty(),
        "no CANCEL before a provisional (RFC 3261 §9.1)"
    );
    l.handle_datagram(ms(100), udp(TRUNK), &reply(&sent, 180, "far"));
    let cancel = sent_request(&transmits(&mut l)[0]);
    assert_eq!(cancel.method, rsip::Method::Cancel);
    assert_eq!(message::branch(&cancel), message::branch(&sent));
    assert_eq!(message::cseq(&cancel), Some((1, rsip::Method::Cancel)));
    events(&mut l);
    l.handle_datagram(ms(150), udp(TRUNK), &reply(&cancel, 200, "far"));
    l.handle_datagram(ms(160), udp(TRUNK), &reply(&sent, 487, "far"));
    let evs = events(&mut l);
    assert!(matches!(&evs[0], TxEvent::Response { key: k, .. } if *k == cancel_key));
    assert!(
        matches!(&evs[1], TxEvent::Response { key: k, response } if *k == key && response.status_code.code() == 487)
    );
    assert_eq!(
        sent_request(&transmits(&mut l)[0]).method,
        rsip::Method::Ack
    );
    assert_eq!(l.cancel(ms(200), &key), Err(TxError::AlreadyFinal));
}

#[test]
fn a_transport_failure_ends_pending_requests_to_that_peer() {
    let mut l = layer();
    let key = l.send_request(ms(0), tcp(TRUNK), outbound_invite());
    l.send_request(ms(0), udp("192.0.2.1:5060"), outbound_invite());
    l.transport_error(tcp(TRUNK));
    assert!(matches!(events(&mut l).as_slice(), [TxEvent::ClientTimeout { key: k }] if *k == key));
    assert_eq!(l.len(), 1);
}

/// Two layers talking through a network that loses the first two packets in each direction.
#[test]
fn a_call_set_up_and_torn_down_across_a_lossy_network() {
    let (uac_addr, uas_addr) = (udp("127.0.0.1:5070"), udp("127.0.0.1:5060"));
    let mut uac = TransactionLayer::new(TimerConfig::default(), 1);
    uac.set_local_addr(Transport::Udp, uac_addr.addr);
    let mut uas = layer();
    let mut drops = [2u32, 2u32];
    let mut now = ms(0);
    let mut uas_request = None;
    let mut answered = false;
    let mut uac_response = None;
    uac.send_request(now, uas_addr, outbound_invite());
    for _ in 0..200 {
        for t in transmits(&mut uac) {
            if drops[0] > 0 {
                drops[0] -= 1;
                continue;
            }
            uas.handle_datagram(now, uac_addr, &t.bytes);
        }
        for t in transmits(&mut uas) {
            assert_eq!(t.peer, uac_addr);
            if drops[1] > 0 {
                drops[1] -= 1;
                continue;
            }
            uac.handle_datagram(now, uas_addr, &t.bytes);
        }
        for e in events(&mut uas) {
            match e {
                TxEvent::Request { key, request, .. } => {
                    assert!(uas_request.is_none(), "INVITE delivered twice");
                    uas.respond(now, &key, response_to(&request, 200, Some("uas")))
                        .unwrap();
                    uas_request = Some(request);
                }
                TxEvent::Ack { .. } => answered = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        for e in events(&mut uac) {
            if let TxEvent::Response { response, .. } = e {
                if response.status_code.code() == 200 {
                    let mut ack = outbound_invite();
                    ack.method = rsip::Method::Ack;
                    ack.headers
                        .retain(|h| !matches!(h, Header::CSeq(_) | Header::To(_)));
                    ack.headers.push(Header::CSeq("1 ACK".to_string().into()));
                    ack.headers
                        .push(Header::To(header(&response, "To").unwrap().into()));
                    uac.send_ack(uas_addr, ack);
                    uac_response = Some(response);
                }
            }
        }
        if answered {
            break;
        }
        now = [uac.poll_timeout(), uas.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .unwrap();
        uac.handle_timeout(now);
        uas.handle_timeout(now);
    }
    assert!(
        answered,
        "the call was answered and acknowledged despite the losses"
    );
    assert!(uac_response.is_some());
    assert!(
        now <= ms(4000),
        "recovered within a few retransmissions, at {now:?}"
    );
}

#[test]
fn unanswered_requests_are_forgotten_and_floods_get_503() {
    let mut l = layer();
    l.set_max_server_transactions(2);
    let options = |n: u32| {
        format!(
            "OPTIONS sip:gw SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-o{n}\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:gw>\r\nCall-ID: o{n}@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    for n in 0..3 {
        l.handle_datagram(ms(0), udp(CALLER), options(n).as_bytes());
    }
    assert_eq!(events(&mut l).len(), 2);
    let sent = transmits(&mut l);
    assert_eq!(sent.iter().map(status).collect::<Vec<_>>(), vec![503]);
    assert_eq!(
        header(&parse(&sent[0].bytes).unwrap(), "Retry-After").as_deref(),
        Some("5")
    );
    // The TU never answered: the transactions go away once the client has surely given up.
    run_until(&mut l, ms(32_000));
    assert!(l.is_empty());
    l.handle_datagram(ms(32_000), udp(CALLER), options(9).as_bytes());
    assert_eq!(events(&mut l).len(), 1, "capacity is back");
}

#[test]
fn a_table_full_of_finished_calls_makes_room_instead_of_refusing_new_callers() {
    // The 503 storm after an overload: every finished call leaves its INVITE (acknowledged 2xx,
    // Timer L) and its BYE (Timer J) lingering for 32 s; a full table of those must not turn
    // the next caller away.
    let mut l = layer();
    l.set_max_server_transactions(4);
    for n in 0..2 {
        let (branch, call_id) = (format!("z9hG4bK-f{n}"), format!("f{n}@x"));
        let (key, invite) = incoming_invite(&mut l, &branch, &call_id);
        l.respond(ms(0), &key, response_to(&invite, 200, Some("srv")))
            .unwrap();
        l.handle_datagram(
            ms(0),
            udp(CALLER),
            ack_for_2xx("z9hG4bK-a", &call_id).as_bytes(),
        );
        let bye = format!(
            "BYE sip:7000@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-b{n}\r\n\
From: <sip:a@b>;tag=12345SIPpTag001\r\nTo: <sip:7000@c>;tag=srv\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        );
        l.handle_datagram(ms(0), udp(CALLER), bye.as_bytes());
        let bye_key = events(&mut l)
            .into_iter()
            .find_map(|e| match e {
                TxEvent::Request { key, request, .. } if request.method == rsip::Method::Bye => {
                    Some((key, request))
                }
                _ => None,
            })
            .expect("the BYE reaches the TU");
        l.respond(ms(0), &bye_key.0, response_to(&bye_key.1, 200, None))
            .unwrap();
        transmits(&mut l);
    }
    assert_eq!(l.len(), 4, "two finished calls fill the table");
    // A second later (long before Timer L/J), a new caller is let in, not told 503.
    l.handle_datagram(
        ms(1000),
        udp(CALLER),
        sipp_invite("z9hG4bK-new", "new@x").as_bytes(),
    );
    assert_eq!(
        transmits(&mut l).iter().map(status).collect::<Vec<_>>(),
        vec![100]
    );
    assert!(matches!(
        events(&mut l).as_slice(),
        [TxEvent::Request { .. }]
    ));
    assert!(l.len() <= 4, "the table stays bounded: {}", l.len());
}

#[test]
fn event_debug_output_never_contains_message_bodies() {
    let mut l = layer();
    let info = "INFO sip:7000@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-info\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:7000@c>;tag=2\r\nCall-ID: info@x\r\nCSeq: 3 INFO\r\n\
Content-Type: application/dtmf-relay\r\nContent-Length: 26\r\n\r\nSignal=7\r\nDuration=160\r\n\r\n";
    l.handle_datagram(ms(0), udp(CALLER), info.as_bytes());
    let shown = format!("{:?}", events(&mut l));
    assert!(
        shown.contains("info@x") && shown.contains("Info"),
        "{shown}"
    );
    assert!(
        !shown.contains("Signal"),
        "a PIN digit must not reach logs: {shown}"
    );
}

/// What `poll_timeout` answered before the timer heap: the earliest timer of all transactions.
fn earliest_by_scan(l: &TransactionLayer) -> Option<Instant> {
    let servers = l
        .servers
        .values()
        .map(|t| earliest(t.retransmit, t.deadline));
    let clients = l
        .clients
        .values()
        .map(|t| earliest(t.retransmit, t.deadline));
    servers.chain(clients).flatten().min()
}

#[test]
fn the_next_timer_is_the_earliest_of_all_however_the_timers_move() {
    let mut l = layer();
    // 300 callers at staggered times: answered 200 (Timer G until the ACK, then L) or 486
    // (Timer G until the ACK, then I; or H without one); every third one ACKs at once, which
    // moves its next timer later; every seventh never gets an answer; and a client INVITE.
    let mut keys = Vec::new();
    for i in 0..300u64 {
        let now = ms(i * 37);
        let branch = format!("z9hG4bK-heap{i}");
        let call_id = format!("heap{i}@x");
        l.handle_datagram(now, udp(CALLER), sipp_invite(&branch, &call_id).as_bytes());
        let Some(TxEvent::Request { key, request, .. }) = events(&mut l).pop() else {
            panic!("the INVITE reaches the TU");
        };
        if i % 7 != 0 {
            let code = if i % 2 == 0 { 200 } else { 486 };
            l.respond(now, &key, response_to(&request, code, Some("srv")))
                .unwrap();
            if i % 3 == 0 {
                // The INVITE's own branch: the ACK of a 486, or a 2xx ACK from a client that
                // reuses the branch.
                let ack = ack_for_2xx(&branch, &call_id);
                l.handle_datagram(now + Duration::from_millis(5), udp(CALLER), ack.as_bytes());
            }
        }
        keys.push(key);
        assert_eq!(l.poll_timeout(), earliest_by_scan(&l), "after caller {i}");
    }
    l.send_request(ms(100), udp(CALLER), outbound_invite());
    assert_eq!(l.poll_timeout(), earliest_by_scan(&l));
    transmits(&mut l);
    events(&mut l);
    let mut steps = 0;
    while let Some(at) = l.poll_timeout() {
        assert_eq!(Some(at), earliest_by_scan(&l), "step {steps}");
        l.handle_timeout(at);
        transmits(&mut l);
        events(&mut l);
        steps += 1;
        assert!(steps < 100_000, "timers never ran out");
    }
    // Every answered transaction ended by its own timers; the unanswered INVITEs wait for the
    // TU, without a timer, as they should.
    let unanswered: Vec<_> = keys.iter().step_by(7).cloned().collect();
    let left: Vec<_> = l.servers.keys().cloned().collect();
    assert_eq!(left, {
        let mut u = unanswered;
        u.sort();
        u
    });
    assert!(l.clients.is_empty());
    assert_eq!(earliest_by_scan(&l), None);
}

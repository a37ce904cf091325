use super::*;
use crate::sip::fixtures::*;

fn req(msg: rsip::SipMessage) -> rsip::Request {
    match msg {
        rsip::SipMessage::Request(r) => r,
        rsip::SipMessage::Response(_) => panic!("expected a request"),
    }
}

#[test]
fn compact_header_names_are_understood() {
    let msg = parse(compact_invite().as_bytes()).expect("compact INVITE parses");
    assert_eq!(call_id(&msg).as_deref(), Some("compact-call-1@10.1.1.1"));
    assert_eq!(from_tag(&msg).as_deref(), Some("ct1"));
    assert_eq!(from_user(&msg).as_deref(), Some("+5511988887777"));
    assert_eq!(to_user(&msg).as_deref(), Some("7000"));
    assert_eq!(
        header(&msg, "Contact").as_deref(),
        Some("<sip:caller@10.1.1.1:5060;transport=tcp>")
    );
    assert_eq!(header(&msg, "m"), header(&msg, "contact"));
    assert_eq!(header(&msg, "Supported").as_deref(), Some("timer"));
    assert_eq!(
        header(&msg, "Content-Type").as_deref(),
        Some("application/sdp")
    );
    assert_eq!(branch(&msg).as_deref(), Some("z9hG4bKcompact1"));
    assert!(msg.body().starts_with(b"v=0"));
    // The typed view rsip offers works too, because names were expanded before rsip saw them.
    use rsip::prelude::HeadersExt;
    assert!(msg.via_header().is_ok() && msg.from_header().is_ok() && msg.call_id_header().is_ok());
}

#[test]
fn a_sipp_invite_routes_by_request_uri_and_caller() {
    let msg = parse(sipp_invite("z9hG4bK-1-1-0", "1-123@127.0.0.1").as_bytes()).unwrap();
    assert_eq!(cseq(&msg), Some((1, rsip::Method::Invite)));
    assert_eq!(from_user(&msg).as_deref(), Some("+551199990000"));
    let r = req(msg);
    assert_eq!(r.method, rsip::Method::Invite);
    assert_eq!(request_uri_user(&r).as_deref(), Some("7000"));
    assert_eq!(r.body, SIPP_SDP.as_bytes());
    assert_eq!(to_tag(&r), None);
}

#[test]
fn a_proxied_linphone_invite_keeps_every_via_in_order() {
    let msg = parse(linphone_invite().as_bytes()).unwrap();
    let vias = headers_named(&msg, "Via");
    assert_eq!(vias.len(), 2, "comma-joined Vias are split: {vias:?}");
    assert!(vias[0].contains("z9hG4bK-proxy-1"));
    assert!(vias[1].contains("z9hG4bK.abcdef"));
    assert_eq!(branch(&msg).as_deref(), Some("z9hG4bK-proxy-1"));
    assert_eq!(from_display_name(&msg).as_deref(), Some("Silva, Maria"));
    assert_eq!(from_user(&msg).as_deref(), Some("maria"));
    assert_eq!(
        request_uri_user(&req(msg.clone())).as_deref(),
        Some("+551130000000")
    );
    // The folded Allow line is one header value again.
    let allow = header(&msg, "Allow").unwrap();
    assert!(allow.contains("BYE, REFER"), "{allow}");
    assert_eq!(msg.body(), LINPHONE_SDP.as_bytes());
}

#[test]
fn bare_lf_line_endings_and_leading_keepalives_are_tolerated() {
    let text = sipp_invite("z9hG4bKlf", "lf@x").replace("\r\n", "\n");
    let declared = SIPP_SDP.replace("\r\n", "\n").len();
    let text = text.replace(
        &format!("Content-Length:   {}", SIPP_SDP.len()),
        &format!("Content-Length: {declared}"),
    );
    let msg = parse(format!("\r\n\r\n{text}").as_bytes()).unwrap();
    assert_eq!(call_id(&msg).as_deref(), Some("lf@x"));
    assert_eq!(msg.body().len(), declared);
}

#[test]
fn content_length_mismatches_are_rejected_or_trimmed() {
    let good = sipp_invite("z9hG4bKcl", "cl@x");
    let short = good.replace(
        &format!("Content-Length:   {}", SIPP_SDP.len()),
        "Content-Length: 500",
    );
    assert_eq!(
        parse(short.as_bytes()),
        Err(ParseError::ContentLength {
            declared: 500,
            actual: SIPP_SDP.len()
        })
    );
    // Extra bytes after the declared body in a datagram are discarded (RFC 3261 §18.3).
    let padded = format!("{good}\0\0garbage");
    assert_eq!(
        parse(padded.as_bytes()).unwrap().body(),
        SIPP_SDP.as_bytes()
    );
    let nonsense = good.replace(
        &format!("Content-Length:   {}", SIPP_SDP.len()),
        "Content-Length: -3",
    );
    assert_eq!(
        parse(nonsense.as_bytes()),
        Err(ParseError::InvalidHeader("Content-Length"))
    );
    let twice = good.replace("Max-Forwards: 70", "Content-Length: 1");
    assert_eq!(
        parse(twice.as_bytes()),
        Err(ParseError::InvalidHeader("Content-Length"))
    );
}

#[test]
fn each_mandatory_header_is_required_but_max_forwards_is_not() {
    let good = sipp_invite("z9hG4bKm", "m@x");
    for (line_start, name) in [
        ("Via:", "Via"),
        ("From:", "From"),
        ("To:", "To"),
        ("Call-ID:", "Call-ID"),
        ("CSeq:", "CSeq"),
    ] {
        let text: String = good
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with(line_start))
            .collect();
        assert_eq!(
            parse(text.as_bytes()),
            Err(ParseError::MissingHeader(name)),
            "{name}"
        );
    }
    let no_mf: String = good
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("Max-Forwards"))
        .collect();
    assert!(parse(no_mf.as_bytes()).is_ok());
    let mismatch = good.replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
    assert_eq!(parse(mismatch.as_bytes()), Err(ParseError::CSeqMismatch));
    let bad_via = good.replace("Via: SIP/2.0/UDP 127.0.0.1:5061", "Via: nonsense");
    assert_eq!(
        parse(bad_via.as_bytes()),
        Err(ParseError::InvalidHeader("Via"))
    );
}

#[test]
fn unknown_methods_foreign_schemes_and_versions_are_classified() {
    let good = sipp_invite("z9hG4bKu", "u@x");
    let foo = good
        .replace("INVITE sip:7000", "FOO sip:7000")
        .replace("CSeq: 1 INVITE", "CSeq: 1 FOO");
    let err = parse(foo.as_bytes()).unwrap_err();
    assert_eq!(err, ParseError::UnknownMethod("FOO".into()));
    assert_eq!(err.response_status(), Some(501));
    let tel = good.replace(
        "INVITE sip:7000@127.0.0.1:5060 ",
        "INVITE tel:+551130000000 ",
    );
    assert_eq!(
        parse(tel.as_bytes()).unwrap_err().response_status(),
        Some(416)
    );
    let v3 = good.replace(" SIP/2.0\r\nVia", " SIP/3.0\r\nVia");
    assert_eq!(
        parse(v3.as_bytes()).unwrap_err().response_status(),
        Some(505)
    );
}

#[test]
fn responses_parse_even_without_a_reason_phrase() {
    let text = "SIP/2.0 180\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKr\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:c@d>;tag=2\r\nCall-ID: r@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let msg = parse(text.as_bytes()).unwrap();
    let rsip::SipMessage::Response(r) = msg else {
        panic!("response expected")
    };
    assert_eq!(r.status_code.code(), 180);
    assert_eq!(to_tag(&r).as_deref(), Some("2"));
}

#[test]
fn oversize_input_is_refused_before_parsing() {
    let mut big = sipp_invite("z9hG4bKbig", "big@x").into_bytes();
    big.resize(MAX_MESSAGE + 1, b'a');
    assert_eq!(parse(&big), Err(ParseError::TooLarge));
    assert_eq!(parse(b"\r\n\r\n"), Err(ParseError::Empty));
}

#[test]
fn no_truncation_of_a_valid_message_panics_or_parses_as_complete() {
    for text in [
        sipp_invite("z9hG4bKt", "t@x"),
        linphone_invite(),
        compact_invite(),
    ] {
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            let r = parse(&bytes[..cut]);
            // A cut inside the body must never be accepted: Content-Length catches it.
            if cut > bytes.len() - 10 {
                assert!(r.is_err(), "cut at {cut} accepted");
            }
            let _ = stream_frame_len(&bytes[..cut]);
        }
        assert!(parse(bytes).is_ok());
    }
}

#[test]
fn random_byte_mutations_and_binary_noise_never_panic() {
    let mut rng = Lcg(42);
    let seeds = [
        sipp_invite("z9hG4bKmut", "mut@x"),
        linphone_invite(),
        compact_invite(),
    ];
    let mut accepted = 0;
    for round in 0..3000 {
        let mut bytes = seeds[round % seeds.len()].clone().into_bytes();
        for _ in 0..(1 + rng.next() % 8) {
            let i = (rng.next() as usize) % bytes.len();
            match rng.next() % 4 {
                0 => bytes[i] = rng.next() as u8,
                1 => bytes[i] = b"\r\n:;<>\", @=\0\xff"[(rng.next() % 13) as usize],
                2 => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i, rng.next() as u8),
            }
        }
        if let Ok(msg) = parse(&bytes) {
            accepted += 1;
            // Whatever is accepted can be serialised and read back.
            let _ = (call_id(&msg), cseq(&msg), from_user(&msg), to_tag(&msg));
            assert!(parse(&to_bytes(&msg)).is_ok());
        }
        let _ = stream_frame_len(&bytes);
        let _ = reject_malformed(&bytes, &ParseError::Grammar, "t");
    }
    assert!(accepted > 0, "mutations should leave some messages valid");
    for len in [0usize, 1, 7, 64, 1500] {
        let noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(parse(&noise).is_err());
    }
}

#[test]
fn stream_framing_waits_for_whole_messages_and_counts_keepalives() {
    let a = sipp_invite("z9hG4bKa", "a@x");
    let b = compact_invite();
    let joined = format!("\r\n\r\n{a}{b}");
    let first = stream_frame_len(joined.as_bytes()).unwrap().unwrap();
    assert_eq!(first, 4 + a.len());
    assert_eq!(
        parse(&joined.as_bytes()[..first])
            .map(|m| call_id(&m))
            .unwrap()
            .as_deref(),
        Some("a@x")
    );
    let rest = &joined.as_bytes()[first..];
    assert_eq!(stream_frame_len(rest).unwrap(), Some(b.len()));
    // Everything short of the full frame asks for more bytes.
    for cut in 0..a.len() {
        assert_eq!(
            stream_frame_len(&a.as_bytes()[..cut]).unwrap(),
            None,
            "{cut}"
        );
    }
    assert_eq!(stream_frame_len(b"\r\n\r\n").unwrap(), Some(4));
    assert_eq!(stream_frame_len(b"").unwrap(), None);
    let endless = vec![b'a'; MAX_MESSAGE + 10];
    assert_eq!(stream_frame_len(&endless), Err(ParseError::TooLarge));
    let huge_body = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 999999\r\n\r\n";
    assert!(stream_frame_len(huge_body.as_bytes()).is_err());
}

#[test]
fn response_to_copies_the_dialog_headers_and_adds_the_tag_once() {
    let r = req(parse(linphone_invite().as_bytes()).unwrap());
    let resp = response_to(&r, 486, Some("srv1"));
    assert_eq!(resp.status_code.code(), 486);
    assert_eq!(headers_named(&resp, "Via"), headers_named(&r, "Via"));
    assert_eq!(to_tag(&resp).as_deref(), Some("srv1"));
    assert_eq!(from_tag(&resp).as_deref(), Some("9fxced76sl"));
    assert_eq!(call_id(&resp), call_id(&r));
    assert_eq!(cseq(&resp), Some((20, rsip::Method::Invite)));
    assert_eq!(header(&resp, "Contact"), None);
    let wire = String::from_utf8(to_bytes(&resp.clone().into())).unwrap();
    assert!(wire.starts_with("SIP/2.0 486 Busy Here\r\n"), "{wire}");
    assert_eq!(wire.matches("Content-Length").count(), 1);
    // A To that already has a tag keeps it.
    let in_dialog =
        linphone_invite().replace("To: <sip:+551130000000@10.0.0.1>", "To: <sip:x@y>;tag=old");
    let tagged = response_to(&req(parse(in_dialog.as_bytes()).unwrap()), 200, Some("new"));
    assert_eq!(to_tag(&tagged).as_deref(), Some("old"));
}

#[test]
fn serialised_messages_round_trip() {
    let original = parse(linphone_invite().as_bytes()).unwrap();
    let again = parse(&to_bytes(&original)).unwrap();
    assert_eq!(
        headers_named(&again, "Via"),
        headers_named(&original, "Via")
    );
    assert_eq!(again.body(), original.body());
    assert_eq!(call_id(&again), call_id(&original));
}

#[test]
fn malformed_requests_get_an_addressable_error_response_or_silence() {
    let short =
        sipp_invite("z9hG4bKbad", "bad@x").replace("Content-Length:   129", "Content-Length: 300");
    let err = parse(short.as_bytes()).unwrap_err();
    let resp = reject_malformed(short.as_bytes(), &err, "rej1").expect("a 400 can be addressed");
    let resp = parse(&resp).expect("the 400 is itself valid SIP");
    let rsip::SipMessage::Response(r) = &resp else {
        panic!()
    };
    assert_eq!(r.status_code.code(), 400);
    assert_eq!(call_id(&resp).as_deref(), Some("bad@x"));
    assert_eq!(branch(&resp).as_deref(), Some("z9hG4bKbad"));
    assert_eq!(to_tag(&resp).as_deref(), Some("rej1"));
    assert!(header(&resp, "Warning").unwrap().contains("Content-Length"));
    // Even an unreadable CSeq is echoed so the client can match the 400 as best it can.
    let bad_cseq = sipp_invite("z9hG4bKbad", "bad@x").replace("CSeq: 1 INVITE", "CSeq: one INVITE");
    let err = parse(bad_cseq.as_bytes()).unwrap_err();
    let text =
        String::from_utf8(reject_malformed(bad_cseq.as_bytes(), &err, "t").unwrap()).unwrap();
    assert!(
        text.starts_with("SIP/2.0 400 Bad Request\r\n") && text.contains("CSeq: one INVITE\r\n"),
        "{text}"
    );

    let foo = sipp_invite("z9hG4bKfoo", "foo@x").replace("INVITE sip:7000", "FOO sip:7000");
    let err = parse(foo.as_bytes()).unwrap_err();
    let resp = parse(&reject_malformed(foo.as_bytes(), &err, "t").unwrap()).unwrap();
    let rsip::SipMessage::Response(r) = resp else {
        panic!()
    };
    assert_eq!(r.status_code.code(), 501);

    let ack = bad_cseq.replace("INVITE sip:", "ACK sip:");
    assert_eq!(
        reject_malformed(ack.as_bytes(), &ParseError::Grammar, "t"),
        None
    );
    let no_via: String = bad_cseq
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("Via"))
        .collect();
    assert_eq!(
        reject_malformed(no_via.as_bytes(), &ParseError::MissingHeader("Via"), "t"),
        None
    );
    assert_eq!(
        reject_malformed(b"\x00\x01\x02", &ParseError::BadStartLine, "t"),
        None
    );
}

/// The sipp INVITE with `header`'s line replaced by `line` (or the line added when absent).
fn with_line(header: &str, line: &str) -> String {
    let base = sipp_invite("z9hG4bKrfc", "rfc4475@x");
    let prefix = format!("\r\n{header}:");
    match base.find(&prefix) {
        Some(at) => {
            let start = at + 2;
            let end = start + base[start..].find("\r\n").unwrap();
            format!("{}{line}{}", &base[..start], &base[end..])
        }
        None => base.replacen("\r\n", &format!("\r\n{line}\r\n"), 1),
    }
}

#[test]
fn lws_around_the_slashes_of_a_via_is_legal_and_read_as_usual() {
    // RFC 4475 §3.1.1.1 (wsinv): SLASH = SWS "/" SWS, here across folded lines.
    let text = with_line(
        "Via",
        "Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=z9hG4bKws ,\r\n SIP / 2.0 / TCP spindle.example.com ; branch = z9hG4bK2",
    );
    let msg = parse(text.as_bytes()).expect("LWS in a Via is legal");
    assert_eq!(branch(&msg).as_deref(), Some("z9hG4bKws"));
    let vias = headers_named(&msg, "Via");
    assert_eq!(vias[0], "SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKws");
    assert!(
        vias[1].starts_with("SIP/2.0/TCP spindle.example.com"),
        "{vias:?}"
    );
    // A slash with nothing around it, or a protocol glued to its sent-by, is still malformed.
    for bad in [
        "Via: SIP/2.0/ 192.0.2.2;branch=z9hG4bKx",
        "Via: SIP/2.0/UDP/TLS 192.0.2.2;branch=z9hG4bKx",
        "Via: SIP / 2.0 / UDP",
    ] {
        assert!(parse(with_line("Via", bad).as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn a_semicolon_in_the_request_uri_user_part_is_legal() {
    // RFC 4475 §3.1.1.9 (semiuri): the user part is `user;par=u%40example.net`.
    let text = sipp_invite("z9hG4bKsemi", "semi@x").replace(
        "INVITE sip:7000@127.0.0.1:5060",
        "INVITE sip:7000;par=u%40example.net@127.0.0.1:5060",
    );
    let r = req(parse(text.as_bytes()).expect("a `;` in the user part is legal"));
    assert_eq!(request_uri_user(&r).as_deref(), Some("7000"));
    // A Request-URI rsip reads as sent is not rewritten.
    let plain = sipp_invite("z9hG4bKdot", "dot@x").replace("sip:7000@", "sip:first.last@");
    let r = req(parse(plain.as_bytes()).unwrap());
    assert_eq!(r.uri.to_string(), "sip:first.last@127.0.0.1:5060");
}

#[test]
fn empty_parameters_and_list_elements_in_address_headers_are_refused() {
    // RFC 4475 §3.1.2.1 (badinv01).
    for (header, line) in [
        ("Via", "Via: SIP/2.0/UDP 192.0.2.15;;,;,,"),
        ("Via", "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKa;"),
        ("Contact", "Contact: \"Joe\" <sip:joe@example.org>;;;;"),
        ("Contact", "Contact: <sip:a@b>, , <sip:c@d>"),
        ("To", "To: <sip:7000@127.0.0.1>; ;x=1"),
    ] {
        let text = with_line(header, line);
        let err = parse(text.as_bytes()).expect_err(line);
        assert!(
            matches!(err, ParseError::HeaderGrammar(h, _) if h == header),
            "{line}: {err}"
        );
        let answer = reject_malformed(text.as_bytes(), &err, "t").expect("answered");
        let answer = String::from_utf8(answer).unwrap();
        assert!(
            answer.starts_with("SIP/2.0 400 Bad Request\r\n"),
            "{answer}"
        );
    }
    // Parameters with LWS around `;` and `=`, and quoted values holding `;`, are fine.
    let ok = with_line(
        "Contact",
        "Contact: \"a;b\" <sip:a@b;lr> ; q = 0.5 ; x=\"1;2\", <sip:c@d>",
    );
    assert!(parse(ok.as_bytes()).is_ok());
}

#[test]
fn an_addr_spec_with_uri_headers_must_be_enclosed_in_angle_brackets() {
    // RFC 4475 §3.1.2.13 (regbadct) and RFC 3261 §20.
    let bare = with_line(
        "Contact",
        "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E",
    );
    assert!(matches!(
        parse(bare.as_bytes()),
        Err(ParseError::HeaderGrammar("Contact", _))
    ));
    let enclosed = with_line(
        "Contact",
        "Contact: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
    );
    assert!(parse(enclosed.as_bytes()).is_ok());
    assert!(parse(with_line("Contact", "Contact: *").as_bytes()).is_ok());
}

#[test]
fn single_valued_headers_may_not_repeat() {
    // RFC 4475 §3.3.8 (multi01): the first one must not silently win.
    for (name, extra) in [
        ("Call-ID", "Call-ID: other@x"),
        ("CSeq", "CSeq: 59 INVITE"),
        ("From", "From: <sip:caller@example.net>;tag=2"),
        ("To", "To: sip:other@example.net"),
        ("Max-Forwards", "Max-Forwards: 5"),
        ("Call-ID", "i: other@x"),
    ] {
        let text =
            sipp_invite("z9hG4bKm", "multi@x").replacen("\r\n", &format!("\r\n{extra}\r\n"), 1);
        assert_eq!(
            parse(text.as_bytes()),
            Err(ParseError::Repeated(name)),
            "{extra}"
        );
        let answer = String::from_utf8(
            reject_malformed(text.as_bytes(), &ParseError::Repeated(name), "t").unwrap(),
        )
        .unwrap();
        assert!(answer.starts_with("SIP/2.0 400 "), "{answer}");
    }
    // List headers may.
    let two_vias = sipp_invite("z9hG4bKm", "multi@x").replacen(
        "\r\n",
        "\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKv2\r\n",
        1,
    );
    assert!(parse(two_vias.as_bytes()).is_ok());
}

#[test]
fn control_characters_are_legal_only_as_quoted_pairs() {
    // RFC 4475 §3.1.1.2 (intmeth): BEL, NUL and DEL escaped inside a quoted display name.
    let to = "To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:7000@127.0.0.1:5060>";
    let text = with_line("To", to);
    let msg = parse(text.as_bytes()).expect("quoted-pairs may carry control characters");
    assert_eq!(to_user(&msg).as_deref(), Some("7000"));
    // An unknown method with that To still gets its 501, with the To echoed and tagged.
    let unknown = text
        .replace("INVITE sip:", "FROB sip:")
        .replace("1 INVITE", "1 FROB");
    let err = parse(unknown.as_bytes()).unwrap_err();
    let answer =
        String::from_utf8(reject_malformed(unknown.as_bytes(), &err, "t9").unwrap()).unwrap();
    assert!(
        answer.starts_with("SIP/2.0 501 Not Implemented\r\n"),
        "{answer}"
    );
    assert!(answer.contains(&format!("{to};tag=t9\r\n")), "{answer:?}");
    // Outside a quoted string, or unescaped, or a bare CR anywhere: refused, and never echoed.
    for bad in [
        "To: <sip:7000@127.0.0.1>;x=\x07",
        "To: \"a\x07b\" <sip:7000@127.0.0.1>",
        "To: \"a\\\rb\" <sip:7000@127.0.0.1>",
    ] {
        let text = with_line("To", bad);
        assert!(parse(text.as_bytes()).is_err(), "{bad:?}");
        let unknown = text
            .replace("INVITE sip:", "FROB sip:")
            .replace("1 INVITE", "1 FROB");
        let err = parse(unknown.as_bytes()).unwrap_err();
        assert_eq!(
            reject_malformed(unknown.as_bytes(), &err, "t"),
            None,
            "{bad:?}"
        );
    }
}

use super::*;
use crate::sip::fixtures::{Lcg, LINPHONE_SDP, SIPP_SDP};

const BOTH: [AudioCodec; 2] = [AudioCodec::Pcma, AudioCodec::Pcmu];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn local() -> IpAddr {
    ip("10.0.0.1")
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn answering_sipp_agrees_on_pcmu_and_points_rtp_at_us() {
    let (n, text) = answer(SIPP_SDP, local(), 20_000, 42, &BOTH).unwrap();
    assert_eq!(n.codec, AudioCodec::Pcmu);
    assert_eq!(n.payload_type, 0);
    assert_eq!(n.dtmf_payload_type, None);
    assert_eq!(n.remote_rtp, Some("127.0.0.1:6000".parse().unwrap()));
    assert_eq!(n.ptime_ms, 20);
    assert_eq!(n.direction, Direction::SendRecv);
    let l = lines(&text);
    assert_eq!(l[0], "v=0");
    assert!(l.contains(&"c=IN IP4 10.0.0.1"));
    assert!(l.contains(&"m=audio 20000 RTP/AVP 0"));
    assert!(l.contains(&"a=rtpmap:0 PCMU/8000"));
    assert!(l.contains(&"a=ptime:20"));
    assert!(l.contains(&"a=sendrecv"));
    assert!(text.ends_with("\r\n") && !text.contains("\n\n"));
    // The caller reading our answer reaches the same agreement.
    let back = negotiate_answer(&text).unwrap();
    assert_eq!((back.codec, back.payload_type), (AudioCodec::Pcmu, 0));
    assert_eq!(back.remote_rtp, Some("10.0.0.1:20000".parse().unwrap()));
}

#[test]
fn the_offerers_order_wins_and_video_is_refused_with_port_zero() {
    let (n, text) = answer(LINPHONE_SDP, local(), 20_002, 7, &BOTH).unwrap();
    assert_eq!(
        n.codec,
        AudioCodec::Pcmu,
        "PCMU is offered before PCMA, opus and speex are skipped"
    );
    assert_eq!(n.dtmf_payload_type, Some(101));
    assert_eq!(n.remote_rtp, Some("192.168.1.20:7078".parse().unwrap()));
    let l = lines(&text);
    assert!(l.contains(&"m=audio 20002 RTP/AVP 0 101"), "{text}");
    assert!(l.contains(&"a=rtpmap:101 telephone-event/8000"));
    assert!(l.contains(&"a=fmtp:101 0-16"));
    assert!(
        l.contains(&"m=video 0 RTP/AVP 96"),
        "one answer line per offered stream"
    );
    assert_eq!(l.iter().filter(|x| x.starts_with("m=")).count(), 2);
    let only_a = answer(LINPHONE_SDP, local(), 20_002, 7, &[AudioCodec::Pcma])
        .unwrap()
        .0;
    assert_eq!((only_a.codec, only_a.payload_type), (AudioCodec::Pcma, 8));
}

#[test]
fn dynamic_payload_types_are_read_through_rtpmap() {
    let offer = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 96 97\r\na=rtpmap:96 PCMA/8000\r\na=rtpmap:97 telephone-event/8000\r\na=fmtp:97 0-15\r\n";
    let (n, text) = answer(offer, local(), 30_000, 1, &BOTH).unwrap();
    assert_eq!(
        (n.codec, n.payload_type, n.dtmf_payload_type),
        (AudioCodec::Pcma, 96, Some(97))
    );
    assert!(text.contains("m=audio 30000 RTP/AVP 96 97\r\n"));
    assert!(text.contains("a=rtpmap:96 PCMA/8000\r\n"));
    assert!(
        text.contains("a=fmtp:97 0-15\r\n"),
        "the offer's event range is echoed"
    );
    // A static number remapped to something else by rtpmap is not G.711.
    let remapped = offer
        .replace("RTP/AVP 96 97", "RTP/AVP 0")
        .replace("a=rtpmap:96 PCMA/8000", "a=rtpmap:0 opus/48000");
    assert_eq!(
        answer(&remapped, local(), 1, 1, &BOTH).unwrap_err(),
        SdpError::NoCommonCodec
    );
}

#[test]
fn hold_and_one_way_offers_get_mirrored_directions() {
    let hold = SIPP_SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0") + "a=sendonly\r\n";
    let (n, text) = answer(&hold, local(), 20_000, 1, &BOTH).unwrap();
    assert_eq!(n.direction, Direction::RecvOnly);
    assert_eq!(n.remote_rtp, None, "0.0.0.0 means do not send");
    assert!(text.contains("a=recvonly\r\n"));
    let recv = SIPP_SDP.to_string() + "a=recvonly\r\n";
    assert_eq!(
        answer(&recv, local(), 1, 1, &BOTH).unwrap().0.direction,
        Direction::SendOnly
    );
    // Session-level attributes apply to streams that do not override them.
    let inactive = SIPP_SDP.replace("t=0 0\r\n", "t=0 0\r\na=inactive\r\n");
    let (n, text) = answer(&inactive, local(), 1, 1, &BOTH).unwrap();
    assert_eq!(n.direction, Direction::Inactive);
    assert!(text.contains("a=inactive\r\n"));
}

#[test]
fn offers_we_cannot_take_are_classified_for_a_488() {
    let opus_only = LINPHONE_SDP.replace("RTP/AVP 96 97 98 0 8 101", "RTP/AVP 96 101");
    assert_eq!(
        answer(&opus_only, local(), 1, 1, &BOTH).unwrap_err(),
        SdpError::NoCommonCodec
    );
    let srtp = SIPP_SDP.replace("RTP/AVP", "RTP/SAVP");
    assert_eq!(
        answer(&srtp, local(), 1, 1, &BOTH).unwrap_err(),
        SdpError::NoCommonCodec
    );
    let video = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n";
    assert_eq!(
        answer(video, local(), 1, 1, &BOTH).unwrap_err(),
        SdpError::NoAudio
    );
    assert_eq!(
        answer(SIPP_SDP, local(), 1, 1, &[]).unwrap_err(),
        SdpError::NoCommonCodec
    );
}

#[test]
fn a_second_audio_stream_is_used_when_the_first_has_no_common_codec() {
    let two = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 9\r\nc=IN IP4 1.2.3.4\r\nm=audio 4002 RTP/AVP 8\r\nc=IN IP4 1.2.3.5\r\n";
    let (n, text) = answer(two, local(), 20_000, 1, &BOTH).unwrap();
    assert_eq!(
        n.remote_rtp,
        Some("1.2.3.5:4002".parse().unwrap()),
        "media-level c= wins"
    );
    assert!(
        text.contains("m=audio 0 RTP/AVP 9\r\n") && text.contains("m=audio 20000 RTP/AVP 8\r\n"),
        "{text}"
    );
}

#[test]
fn our_offer_round_trips_through_an_answerer() {
    let ours = offer(local(), 20_010, 99, &[AudioCodec::Pcma, AudioCodec::Pcmu]);
    assert!(ours.contains("m=audio 20010 RTP/AVP 8 0 101\r\n"));
    assert!(ours.contains("o=switchboard 99 99 IN IP4 10.0.0.1\r\n"));
    let (theirs, answer_text) = answer(
        &ours,
        ip("198.51.100.9"),
        40_000,
        5,
        &[AudioCodec::Pcmu, AudioCodec::Pcma],
    )
    .unwrap();
    assert_eq!(
        theirs.codec,
        AudioCodec::Pcma,
        "the answerer follows our preference"
    );
    assert_eq!(theirs.remote_rtp, Some("10.0.0.1:20010".parse().unwrap()));
    let n = negotiate_answer(&answer_text).unwrap();
    assert_eq!(
        (n.codec, n.payload_type, n.dtmf_payload_type),
        (AudioCodec::Pcma, 8, Some(101))
    );
    assert_eq!(n.remote_rtp, Some("198.51.100.9:40000".parse().unwrap()));
    let v6 = offer(ip("2001:db8::1"), 20_000, 1, &[AudioCodec::Pcmu]);
    assert!(v6.contains("c=IN IP6 2001:db8::1\r\n"));
    assert_eq!(
        negotiate_answer(&v6).unwrap().remote_rtp,
        Some("[2001:db8::1]:20000".parse().unwrap())
    );
    let refused = answer_text.replace("m=audio 40000", "m=audio 0");
    assert_eq!(
        negotiate_answer(&refused).unwrap_err(),
        SdpError::NoCommonCodec
    );
}

#[test]
fn parsing_tolerates_unknown_lines_but_not_broken_structure() {
    let sd = parse(LINPHONE_SDP).unwrap();
    assert_eq!(sd.media.len(), 2);
    assert_eq!(sd.session_name, "Talk");
    assert_eq!(sd.attributes[0].name, "rtcp-xr");
    assert_eq!(sd.media[0].rtpmap(96), Some(("opus".to_string(), 48_000)));
    assert_eq!(sd.media[0].fmtp(96), Some("useinbandfec=1"));
    let multicast =
        parse("v=0\nc=IN IP4 224.2.1.1/127\nm=audio 5000/2 RTP/AVP 0\nb=AS:64\nz=whatever\n")
            .unwrap();
    assert_eq!(multicast.connection, Some(ip("224.2.1.1")));
    assert_eq!(multicast.media[0].port, 5000);
    assert_eq!(
        parse("o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n"),
        Err(SdpError::BadVersion)
    );
    assert_eq!(parse(""), Err(SdpError::BadVersion));
    assert_eq!(parse("v=0\r\nnonsense\r\n"), Err(SdpError::BadLine(2)));
    assert_eq!(parse("v=0\r\nm=audio\r\n"), Err(SdpError::BadMedia(2)));
    assert_eq!(
        parse("v=0\r\nm=audio 70000 RTP/AVP 0\r\n"),
        Err(SdpError::BadMedia(2))
    );
    assert_eq!(parse(&"v=0\r\n".repeat(10_000)), Err(SdpError::TooLarge));
    let many = format!("v=0\r\n{}", "m=audio 1 RTP/AVP 0\r\n".repeat(MAX_MEDIA + 1));
    assert_eq!(parse(&many), Err(SdpError::TooManyMedia));
}

#[test]
fn mutated_offers_never_panic() {
    let mut rng = Lcg(7);
    for round in 0..3000 {
        let mut bytes = if round % 2 == 0 {
            LINPHONE_SDP
        } else {
            SIPP_SDP
        }
        .as_bytes()
        .to_vec();
        for _ in 0..(1 + rng.next() % 6) {
            let i = (rng.next() as usize) % bytes.len();
            let alphabet = b"=: /\r\n0123456789amcv";
            bytes[i] = alphabet[(rng.next() as usize) % alphabet.len()];
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = answer(&text, local(), 1, 1, &BOTH);
        let _ = negotiate_answer(&text);
    }
    for cut in 0..LINPHONE_SDP.len() {
        let _ = answer(&LINPHONE_SDP[..cut], local(), 1, 1, &BOTH);
    }
}

#[test]
fn a_desk_phones_hold_and_resume_reoffers_are_answered_with_the_same_codec_and_a_new_version() {
    // Phones hold either with a=sendonly (RFC 3264) or with c=0.0.0.0 (RFC 2543); resume is a
    // plain sendrecv re-offer. Both kinds must read as hold, and resume must not.
    let sendonly = LINPHONE_SDP.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    let (n, text) = reanswer(&sendonly, local(), 20_000, 7, 8, AudioCodec::Pcma).unwrap();
    assert!(n.on_hold());
    assert_eq!(n.codec, AudioCodec::Pcma, "the codec in use is kept");
    assert!(text.contains("o=switchboard 7 8 "), "{text}");
    assert!(text.contains("a=recvonly\r\n"));
    let zero = SIPP_SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    assert!(reanswer(&zero, local(), 1, 7, 9, AudioCodec::Pcmu)
        .unwrap()
        .0
        .on_hold());
    let inactive = SIPP_SDP.to_string() + "a=inactive\r\n";
    assert!(reanswer(&inactive, local(), 1, 7, 9, AudioCodec::Pcmu)
        .unwrap()
        .0
        .on_hold());
    let (resumed, text) = reanswer(SIPP_SDP, local(), 1, 7, 10, AudioCodec::Pcmu).unwrap();
    assert!(!resumed.on_hold());
    assert_eq!(
        resumed.remote_rtp,
        Some(SocketAddr::new(ip("127.0.0.1"), 6000))
    );
    assert!(text.contains("a=sendrecv\r\n"));
    // A re-offer that drops the codec in use cannot be taken mid-call.
    assert_eq!(
        reanswer(SIPP_SDP, local(), 1, 7, 11, AudioCodec::Pcma).unwrap_err(),
        SdpError::NoCommonCodec
    );
}

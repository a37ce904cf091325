//! The softphone's own pieces, proven without the server: G.711, RFC 4733 and in-band key presses,
//! the prompt matcher, SIP parsing, and whole calls against a scripted fake server. If these fail,
//! a call test's failure would say nothing about switchboard.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::dtmf;
use common::g711::Law;
use common::link::Transport;
use common::phone::{response_to, Phone};
use common::prompts::{check_continuity, PromptSet};
use common::rtp::{build_rtp, parse_rtp, RxPacket, FRAME};
use common::sipmsg::{parse_sdp_answer, stream_frame_len, Msg};

// ---------------------------------------------------------------- G.711

#[test]
fn g711_known_vectors_match_the_itu_tables() {
    assert_eq!(Law::Mu.encode(0), 0xFF);
    assert_eq!(Law::Mu.decode(0xFF), 0);
    assert_eq!(Law::Mu.decode(0x00), -32124);
    assert_eq!(Law::Mu.decode(0x80), 32124);
    assert_eq!(Law::Mu.encode(i16::MAX), 0x80);
    assert_eq!(Law::A.encode(0), 0xD5);
    assert_eq!(Law::A.decode(0xD5), 8);
    assert_eq!(Law::A.decode(0x55), -8);
    assert_eq!(Law::A.decode(0xAA), 32256);
    assert_eq!(Law::A.decode(0x2A), -32256);
    assert_eq!(Law::A.encode(i16::MIN), 0x2A);
}

#[test]
fn g711_round_trip_is_monotone_and_close_for_both_laws() {
    for law in [Law::Mu, Law::A] {
        let mut prev = i32::MIN;
        for s in i16::MIN..=i16::MAX {
            let d = i32::from(law.decode(law.encode(s)));
            let err = (d - i32::from(s)).abs();
            assert!(d >= prev, "{law:?}: decode(encode) not monotone at {s}");
            assert!(
                err <= i32::from(s).abs() / 16 + 16,
                "{law:?}: {s} came back as {d}"
            );
            prev = d;
        }
    }
}

/// A differently-rounding encoder (nearest level instead of the ITU truncation) is still accepted
/// by the matcher's one-rank tolerance, so a correct server encoder of either kind is recognised.
#[test]
fn any_correct_rounding_is_within_one_rank_of_ours() {
    for law in [Law::Mu, Law::A] {
        let rank = law.rank_table();
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let nearest = nearest_code(law, s);
            let ours = law.encode(s);
            assert!(
                rank[usize::from(nearest)].abs_diff(rank[usize::from(ours)]) <= 1,
                "{law:?} {s}: nearest {nearest:#x} vs ours {ours:#x}"
            );
        }
    }
}

fn nearest_code(law: Law, s: i16) -> u8 {
    (0..=255u8)
        .min_by_key(|&b| (i32::from(law.decode(b)) - i32::from(s)).abs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- DTMF

#[test]
fn a_key_press_is_growing_durations_then_three_end_packets() {
    let p = dtmf::key_press_payloads('#', 100).expect("# is a key");
    let events: Vec<dtmf::Event> = p.iter().filter_map(|b| dtmf::parse_event(b)).collect();
    assert_eq!(events.len(), 7);
    assert!(events.iter().all(|e| e.event == 11 && e.volume == 10));
    let durations: Vec<u16> = events.iter().map(|e| e.duration).collect();
    assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
    let ends: Vec<bool> = events.iter().map(|e| e.end).collect();
    assert_eq!(ends, [false, false, false, false, true, true, true]);
    assert_eq!(dtmf::event_code('0'), Some(0));
    assert_eq!(dtmf::event_code('*'), Some(10));
    assert_eq!(dtmf::event_code('D'), Some(15));
    assert_eq!(dtmf::event_code('x'), None);
}

#[test]
fn inband_tones_carry_the_right_key_through_g711() {
    for key in "0123456789*#ABCD".chars() {
        let tone = dtmf::tone(key, 100, 5000.0).expect("a key");
        for law in [Law::Mu, Law::A] {
            let back: Vec<i16> = tone.iter().map(|&s| law.decode(law.encode(s))).collect();
            assert_eq!(dtmf::detect_key(&back), Some(key), "{key} via {law:?}");
        }
    }
    assert_eq!(dtmf::detect_key(&[0i16; 800]), None);
    let one_tone: Vec<i16> = (0..800)
        .map(|i| (5000.0 * (std::f64::consts::TAU * 697.0 * f64::from(i) / 8000.0).sin()) as i16)
        .collect();
    assert_eq!(dtmf::detect_key(&one_tone), None, "a single tone is no key");
}

// ---------------------------------------------------------------- prompt matcher

/// A prompt-like signal: a short silent head then a deterministic, speech-ish mixture.
fn synth(seed: u32, frames: usize) -> Vec<i16> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    let mut out = vec![0i16; 2 * FRAME];
    for i in 0..frames * FRAME {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let noise = f64::from((x % 2000) as i16 - 1000);
        let t = i as f64 / 8000.0;
        let voice = 6000.0 * (std::f64::consts::TAU * (150.0 + f64::from(seed) * 37.0) * t).sin();
        out.push((voice + noise) as i16);
    }
    out
}

fn write_wav(dir: &Path, name: &str, pcm: &[i16]) -> PathBuf {
    let path = dir.join(format!("{name}.wav"));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create wav");
    for &s in pcm {
        w.write_sample(s).expect("write sample");
    }
    w.finalize().expect("finalize wav");
    path
}

struct Stream {
    packets: Vec<RxPacket>,
    seq: u16,
    ts: u32,
}

impl Stream {
    fn new() -> Stream {
        Stream {
            packets: Vec::new(),
            seq: 65_530, // wraps inside the test, as a real stream may
            ts: u32::MAX - 1000,
        }
    }

    fn push(&mut self, pt: u8, payload: Vec<u8>) {
        self.packets.push(RxPacket {
            seq: self.seq,
            ts: self.ts,
            marker: false,
            pt,
            ssrc: 7,
            payload,
            at: Instant::now(),
            from: "127.0.0.1:1".parse().expect("addr"),
        });
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(FRAME as u32);
    }

    fn silence(&mut self, law: Law, n: usize) {
        for _ in 0..n {
            self.push(law.payload_type(), vec![law.silence_byte(); FRAME]);
        }
    }

    /// Frames of `pcm` encoded by `enc`, at most `limit` of them (barge-in cuts a prompt short).
    fn prompt(&mut self, law: Law, pcm: &[i16], limit: usize, enc: impl Fn(i16) -> u8) {
        for chunk in pcm.chunks(FRAME).take(limit) {
            let mut f: Vec<u8> = chunk.iter().map(|&s| enc(s)).collect();
            f.resize(FRAME, law.silence_byte());
            self.push(law.payload_type(), f);
        }
    }
}

#[test]
fn matcher_names_prompts_in_order_with_repeats_and_barge_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (synth(1, 40), synth(2, 30), synth(3, 25));
    let set = PromptSet::load(&[
        ("alpha", write_wav(dir.path(), "alpha", &a)),
        ("beta", write_wav(dir.path(), "beta", &b)),
        ("gamma", write_wav(dir.path(), "gamma", &c)),
    ]);
    let mut s = Stream::new();
    s.silence(Law::Mu, 10);
    // Encoded by a rounding encoder, not ours: still recognised.
    s.prompt(Law::Mu, &a, usize::MAX, |x| nearest_code(Law::Mu, x));
    s.prompt(Law::Mu, &b, 12, |x| Law::Mu.encode(x)); // barged in after 12 frames
    s.silence(Law::Mu, 5);
    s.prompt(Law::Mu, &a, usize::MAX, |x| Law::Mu.encode(x));
    let heard = set.hear(&s.packets);
    let names: Vec<&str> = heard.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta", "alpha"]);
    assert!(heard[0].complete() && heard[2].complete());
    assert!(!heard[1].complete());
    assert_eq!(heard[1].frames, 12);
    assert_eq!(heard[0].first_packet, 10);
    assert_eq!(heard[1].first_packet, 10 + heard[0].total_frames);
    check_continuity(&s.packets).expect("a synthetic continuous stream");

    // A-law and a stream with none of the prompts.
    let mut s = Stream::new();
    s.prompt(Law::A, &c, usize::MAX, |x| Law::A.encode(x));
    assert_eq!(set.names(&s.packets), ["gamma"]);
    let mut s = Stream::new();
    s.silence(Law::Mu, 50);
    s.prompt(Law::Mu, &synth(9, 20), usize::MAX, |x| Law::Mu.encode(x));
    assert!(
        set.hear(&s.packets).is_empty(),
        "an unknown sound is no prompt"
    );
}

#[test]
fn continuity_check_catches_gaps_jumps_and_new_sources() {
    let mut s = Stream::new();
    s.silence(Law::Mu, 5);
    check_continuity(&s.packets).expect("continuous");
    let mut gap = s.packets.clone();
    gap.remove(2);
    assert!(check_continuity(&gap).is_err());
    let mut jump = s.packets.clone();
    jump[3].ts = jump[3].ts.wrapping_add(FRAME as u32 * 10);
    assert!(check_continuity(&jump).is_err());
    let mut ssrc = s.packets.clone();
    ssrc[4].ssrc = 8;
    assert!(check_continuity(&ssrc).is_err());
}

// ---------------------------------------------------------------- SIP text

#[test]
fn sip_parser_reads_compact_and_folded_headers_and_frames_tcp() {
    let raw = b"SIP/2.0 180 Ringing\r\nv: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKx\r\n\
f: <sip:a@b>;tag=1\r\nt: <sip:7000@b>\r\n ;tag=srv\r\ni: abc@h\r\nCSeq: 3 INVITE\r\nl: 0\r\n\r\n";
    let m = Msg::parse(raw).expect("parses");
    assert_eq!(m.status(), Some(180));
    assert_eq!(m.call_id(), Some("abc@h"));
    assert_eq!(m.to_tag().as_deref(), Some("srv"));
    assert_eq!(m.tag_of_from().as_deref(), Some("1"));
    assert_eq!(m.cseq(), Some((3, "INVITE".into())));
    assert_eq!(m.branch().as_deref(), Some("z9hG4bKx"));

    let mut stream = b"\r\n\r\n".to_vec();
    let msg = Msg::request("INFO", "sip:x@y")
        .with("Call-ID", "c")
        .with("CSeq", "2 INFO")
        .with_body("application/dtmf-relay", b"Signal=1\r\nDuration=160\r\n")
        .to_bytes();
    stream.extend_from_slice(&msg[..msg.len() - 5]);
    assert_eq!(stream_frame_len(&stream), Ok(None), "body incomplete");
    stream.extend_from_slice(&msg[msg.len() - 5..]);
    assert_eq!(stream_frame_len(&stream), Ok(Some(stream.len())));
    let back = Msg::parse(&stream[4..]).expect("round trip");
    assert_eq!(back.body_text(), "Signal=1\r\nDuration=160\r\n");
    assert!(Msg::parse(b"\x00\x01garbage").is_err());
}

#[test]
fn sdp_answer_gives_address_codec_and_event_type() {
    let a = parse_sdp_answer(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 20002 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\n",
    )
    .expect("parses");
    assert_eq!(
        a.addr,
        "127.0.0.1:20002".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(a.payload_types, [8, 96]);
    assert_eq!(a.telephone_event, Some(96));
}

// ---------------------------------------------------------------- whole calls against a fake server

/// A scripted UAS: reads and writes SIP messages over UDP or one TCP connection.
enum FakeConn {
    Udp(UdpSocket, Option<SocketAddr>),
    Tcp(TcpListener, Option<TcpStream>, Vec<u8>),
}

struct FakeUas {
    conn: FakeConn,
    rtp: UdpSocket,
}

impl FakeUas {
    fn new(t: Transport) -> FakeUas {
        let conn = match t {
            Transport::Udp => {
                let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
                s.set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                FakeConn::Udp(s, None)
            }
            Transport::Tcp => FakeConn::Tcp(
                TcpListener::bind("127.0.0.1:0").expect("bind"),
                None,
                Vec::new(),
            ),
        };
        let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind rtp");
        rtp.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        FakeUas { conn, rtp }
    }

    fn addr(&self) -> SocketAddr {
        match &self.conn {
            FakeConn::Udp(s, _) => s.local_addr().expect("addr"),
            FakeConn::Tcp(l, _, _) => l.local_addr().expect("addr"),
        }
    }

    fn recv(&mut self) -> Msg {
        match &mut self.conn {
            FakeConn::Udp(s, peer) => {
                let mut buf = [0u8; 65_536];
                let (n, from) = s.recv_from(&mut buf).expect("fake UAS: no message in time");
                *peer = Some(from);
                Msg::parse(&buf[..n]).expect("phone sends valid SIP")
            }
            FakeConn::Tcp(l, stream, buf) => {
                if stream.is_none() {
                    let (s, _) = l.accept().expect("accept");
                    s.set_read_timeout(Some(Duration::from_secs(5)))
                        .expect("timeout");
                    *stream = Some(s);
                }
                let s = stream.as_mut().expect("stream");
                loop {
                    if let Ok(Some(n)) = stream_frame_len(buf) {
                        let frame: Vec<u8> = buf.drain(..n).collect();
                        return Msg::parse(&frame).expect("phone sends valid SIP");
                    }
                    let mut chunk = [0u8; 4096];
                    let n = s.read(&mut chunk).expect("fake UAS: no message in time");
                    assert!(n > 0, "phone closed the connection");
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }

    /// The next request, skipping retransmissions of `skip_method`.
    fn recv_method(&mut self, method: &str) -> Msg {
        loop {
            let m = self.recv();
            if m.method() == Some(method) {
                return m;
            }
        }
    }

    fn send(&mut self, m: &Msg) {
        let bytes = m.to_bytes();
        match &mut self.conn {
            FakeConn::Udp(s, peer) => {
                s.send_to(&bytes, peer.expect("peer known")).expect("send");
            }
            FakeConn::Tcp(_, stream, _) => {
                stream
                    .as_mut()
                    .expect("stream")
                    .write_all(&bytes)
                    .expect("send");
            }
        }
    }

    fn answer_sdp(&self) -> String {
        let port = self.rtp.local_addr().expect("addr").port();
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        )
    }
}

fn ok_with_contact(req: &Msg, status: u16, reason: &str, contact: SocketAddr) -> Msg {
    response_to(req, status, reason, Some("uas-tag"))
        .with("Contact", format!("<sip:uas@{contact}>"))
}

fn call_against_fake(t: Transport) {
    let mut uas = FakeUas::new(t);
    let uas_addr = uas.addr();
    let prompt = synth(4, 30);
    let dir = tempfile::tempdir().expect("tempdir");
    let set = PromptSet::load(&[("hello", write_wav(dir.path(), "hello", &prompt))]);
    let prompt_frames: Vec<Vec<u8>> = prompt
        .chunks(FRAME)
        .map(|c| {
            let mut f = Law::Mu.encode_all(c);
            f.resize(FRAME, 0xFF);
            f
        })
        .collect();

    let phone_thread = std::thread::spawn(move || {
        let mut phone = Phone::new(t, uas_addr);
        phone.call("7000", "+5511987650000").expect("fake answers");
        let heard = phone
            .wait_heard(&set, "hello", 1, Duration::from_secs(5))
            .expect("heard");
        phone.send_digits_rfc4733("4#").expect("digits");
        assert_eq!(phone.send_info("1").expect("INFO"), 200);
        phone.wait_for_bye(Duration::from_secs(5)).expect("BYE");
        (
            phone.provisional.clone(),
            heard,
            phone.sent(),
            phone.received(),
        )
    });

    let invite = uas.recv_method("INVITE");
    assert!(invite
        .body_text()
        .contains("a=rtpmap:101 telephone-event/8000"));
    assert!(
        invite.body_text().contains("m=audio "),
        "offer: {}",
        invite.body_text()
    );
    let offer = parse_sdp_answer(&invite.body_text()).expect("offer parses");
    assert_eq!(offer.payload_types, [0, 8, 101]);
    uas.send(&response_to(&invite, 100, "Trying", None));
    uas.send(&ok_with_contact(&invite, 180, "Ringing", uas_addr));
    let sdp = uas.answer_sdp();
    uas.send(
        &ok_with_contact(&invite, 200, "OK", uas_addr).with_body("application/sdp", sdp.as_bytes()),
    );
    let ack = uas.recv_method("ACK");
    assert_eq!(
        ack.cseq(),
        Some((invite.cseq().expect("cseq").0, "ACK".into()))
    );
    assert_eq!(ack.to_tag().as_deref(), Some("uas-tag"));

    // Symmetric RTP: the phone's first packet tells us where to send.
    let mut buf = [0u8; 2048];
    let (_, phone_rtp) = uas
        .rtp
        .recv_from(&mut buf)
        .expect("phone sends RTP after ACK");
    for (i, f) in prompt_frames.iter().enumerate() {
        let pkt = build_rtp(0, i == 0, 100 + i as u16, 16_000 + 160 * i as u32, 42, f);
        uas.rtp.send_to(&pkt, phone_rtp).expect("send rtp");
    }

    let info = uas.recv_method("INFO");
    assert_eq!(info.header("Content-Type"), Some("application/dtmf-relay"));
    assert_eq!(info.body_text(), "Signal=1\r\nDuration=160\r\n");
    assert_eq!(info.to_tag().as_deref(), Some("uas-tag"));
    uas.send(&response_to(&info, 200, "OK", None));

    let bye = Msg::request(
        "BYE",
        &format!(
            "sip:phone@{}",
            ack.header("Contact")
                .map(common::sipmsg::uri_of)
                .unwrap_or_default()
        ),
    )
    .with(
        "Via",
        format!("SIP/2.0/{} {uas_addr};branch=z9hG4bKbye", t.via_name()),
    )
    .with(
        "From",
        invite
            .header("To")
            .map(|v| format!("{v};tag=uas-tag"))
            .unwrap_or_default(),
    )
    .with("To", invite.header("From").unwrap_or_default().to_string())
    .with("Call-ID", invite.call_id().unwrap_or_default().to_string())
    .with("CSeq", "1 BYE");
    uas.send(&bye);
    let ok = loop {
        let m = uas.recv();
        if m.status().is_some() && m.cseq() == Some((1, "BYE".into())) {
            break m;
        }
    };
    assert_eq!(ok.status(), Some(200));

    let (provisional, heard, sent, received) = phone_thread.join().expect("phone thread");
    assert_eq!(provisional, [100, 180]);
    assert!(heard[0].complete() || heard[0].frames >= 3);
    assert!(received.iter().all(|p| p.pt == 0));

    // What went out on RTP: silence from the start, then two RFC 4733 events.
    let events: Vec<_> = sent.iter().filter(|p| p.pt == 101).collect();
    assert_eq!(events.len(), 14, "7 packets per key");
    let (first, second) = events.split_at(7);
    for ev in [first, second] {
        assert!(ev[0].marker && ev[1..].iter().all(|p| !p.marker));
        assert!(
            ev.iter().all(|p| p.ts == ev[0].ts),
            "one timestamp per key press"
        );
    }
    assert_eq!(
        dtmf::parse_event(&first[0].payload).map(|e| e.event),
        Some(4)
    );
    assert_eq!(
        dtmf::parse_event(&second[0].payload).map(|e| e.event),
        Some(11)
    );
    // Key starts are 7 event slots (4 while down, 3 end copies) + 3 gap slots apart on the 8 kHz clock.
    assert_eq!(second[0].ts.wrapping_sub(first[0].ts), 10 * 160);
    for w in sent.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "our own RTP must be continuous"
        );
    }
    let span = sent.last().expect("sent").at - sent[0].at;
    let per = span.as_secs_f64() * 1000.0 / (sent.len() - 1) as f64;
    assert!(
        (15.0..30.0).contains(&per),
        "packets every {per:.1} ms, expected 20"
    );
    assert!(parse_rtp(
        &build_rtp(0, true, 1, 2, 3, &[0xFF; 160]),
        Instant::now(),
        "127.0.0.1:1".parse().expect("a")
    )
    .is_some());
}

#[test]
fn phone_places_a_call_hears_audio_sends_digits_over_udp() {
    call_against_fake(Transport::Udp);
}

#[test]
fn phone_places_a_call_hears_audio_sends_digits_over_tcp() {
    call_against_fake(Transport::Tcp);
}

#[test]
fn phone_cancels_a_ringing_call_and_acks_the_487() {
    let mut uas = FakeUas::new(Transport::Udp);
    let addr = uas.addr();
    let phone_thread = std::thread::spawn(move || {
        let mut phone = Phone::new(Transport::Udp, addr);
        phone
            .send_invite("7000", "+5511987650000", common::sipmsg::DESK_PHONE_CODECS)
            .expect("send");
        phone
            .wait_provisional(180, Duration::from_secs(5))
            .expect("ringing");
        phone.cancel().expect("cancel")
    });
    let invite = uas.recv_method("INVITE");
    uas.send(&ok_with_contact(&invite, 180, "Ringing", addr));
    let cancel = uas.recv_method("CANCEL");
    assert_eq!(
        cancel.branch(),
        invite.branch(),
        "CANCEL matches the INVITE's transaction"
    );
    assert_eq!(cancel.cseq().map(|c| c.0), invite.cseq().map(|c| c.0));
    uas.send(&response_to(&cancel, 200, "OK", Some("uas-tag")));
    uas.send(&response_to(
        &invite,
        487,
        "Request Terminated",
        Some("uas-tag"),
    ));
    let ack = uas.recv_method("ACK");
    assert_eq!(
        ack.branch(),
        invite.branch(),
        "ACK for a non-2xx is in the INVITE transaction"
    );
    assert_eq!(ack.to_tag().as_deref(), Some("uas-tag"));
    assert_eq!(phone_thread.join().expect("phone thread"), (200, 487));
}

/// On the real prompts the tests listen for: each is recognised, complete and in order, in a
/// stream where they follow each other back to back, and none is mistaken for another.
#[test]
fn the_shipped_prompts_are_told_apart() {
    let mut names: Vec<String> = [
        "welcome",
        "enter-pin",
        "pin-invalid",
        "main-menu",
        "invalid-option",
        "goodbye",
        "too-many-attempts",
        "thank-you",
        "orders-info",
        "billing-info",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.extend((0..10).map(|d| format!("digits/{d}")));
    let list: Vec<(&str, PathBuf)> = names
        .iter()
        .map(|n| (n.as_str(), common::server::prompt_path("en", n)))
        .collect();
    for (n, p) in &list {
        assert!(
            p.exists(),
            "prompt {n} not found at {} (set SWITCHBOARD_TEST_SOUNDS to a sounds dir until the \
             prompts are committed)",
            p.display()
        );
    }
    let set = PromptSet::load(&list);
    let mut s = Stream::new();
    for p in set.prompts.iter().chain(set.prompts.iter().rev()) {
        s.prompt(Law::Mu, &p.pcm, usize::MAX, |x| Law::Mu.encode(x));
    }
    let heard = set.hear(&s.packets);
    let want: Vec<&str> = names
        .iter()
        .chain(names.iter().rev())
        .map(String::as_str)
        .collect();
    let got: Vec<&str> = heard.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(got, want);
    assert!(heard.iter().all(|h| h.complete()), "{heard:?}");
}

#[test]
fn phone_acks_a_rejection_and_reads_out_of_dialog_answers() {
    let mut uas = FakeUas::new(Transport::Udp);
    let addr = uas.addr();
    let phone_thread = std::thread::spawn(move || {
        let mut phone = Phone::new(Transport::Udp, addr);
        let status = phone
            .invite("7999", "+5511987650000", &[(18, "G729/8000")])
            .expect("answered");
        let options = phone.options().expect("OPTIONS answered");
        (status, options.status())
    });
    let invite = uas.recv_method("INVITE");
    assert!(invite.body_text().contains("m=audio ") && invite.body_text().contains(" 18\r\n"));
    uas.send(&response_to(&invite, 404, "Not Found", Some("t")));
    let ack = uas.recv_method("ACK");
    assert_eq!(ack.branch(), invite.branch());
    let options = uas.recv_method("OPTIONS");
    assert_ne!(
        options.call_id(),
        invite.call_id(),
        "out of dialog: its own Call-ID"
    );
    uas.send(&response_to(&options, 200, "OK", Some("t")));
    assert_eq!(phone_thread.join().expect("phone"), (404, Some(200)));
}

use super::*;
use crate::media::dtmf::event_payloads;
use crate::media::goertzel::tone;
use crate::media::testutil::g711_round_trip;
use crate::media::wav::{decode_wav, encode_wav};

const PEER: SocketAddr = SocketAddr::new(
    core::net::IpAddr::V4(core::net::Ipv4Addr::new(192, 0, 2, 10)),
    4000,
);
const SDP_ADDR: SocketAddr = SocketAddr::new(
    core::net::IpAddr::V4(core::net::Ipv4Addr::new(10, 0, 0, 5)),
    30000,
);
const STRANGER: SocketAddr = SocketAddr::new(
    core::net::IpAddr::V4(core::net::Ipv4Addr::new(203, 0, 113, 66)),
    4000,
);

fn cfg(law: Law, remote: Option<SocketAddr>) -> SessionConfig {
    SessionConfig {
        law,
        payload_type: law.payload_type(),
        dtmf_payload_type: Some(101),
        ssrc: 0xCAFE_F00D,
        initial_seq: 65_530,
        initial_timestamp: u32::MAX - 500,
        remote,
        inband_dtmf: true,
    }
}

fn ms(t: u64) -> Instant {
    Instant::from_millis(t)
}

#[derive(Debug)]
struct Sent {
    at: Instant,
    to: SocketAddr,
    bytes: Vec<u8>,
}

impl Sent {
    fn rtp(&self) -> rtp::RtpPacket<'_> {
        rtp::parse(&self.bytes).unwrap()
    }
}

/// Runs the session as the runtime would, waking exactly at each poll_timeout, until `end`.
fn run_until(s: &mut RtpSession, end: Instant) -> Vec<Sent> {
    let mut out = Vec::new();
    loop {
        let at = s.poll_timeout();
        if at > end {
            return out;
        }
        while let Some(t) = s.poll_transmit(at) {
            out.push(Sent {
                at,
                to: t.to,
                bytes: t.bytes.to_vec(),
            });
        }
    }
}

fn events(s: &mut RtpSession) -> Vec<MediaEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    rtp::write(pt, false, seq, ts, 0x1234, payload, &mut out);
    out
}

/// A prompt as it would be loaded from disk.
fn wav_prompt(len: usize, seed: i32) -> Samples {
    let pcm: Vec<i16> = (0..len as i32)
        .map(|i| ((i * seed) % 16000 - 8000) as i16)
        .collect();
    let (pcm, _) = decode_wav(&encode_wav(&pcm, 1).unwrap()[..]).unwrap();
    pcm.into()
}

fn padded(pcm: &[i16]) -> Vec<i16> {
    let mut v = pcm.to_vec();
    v.resize(pcm.len().div_ceil(FRAME_SAMPLES) * FRAME_SAMPLES, 0);
    v
}

#[test]
fn two_prompts_go_out_every_20ms_with_continuous_numbering_and_exact_audio() {
    let start = ms(1_000);
    let mut s = RtpSession::new(cfg(Law::Mu, Some(SDP_ADDR)), start);
    let (a, b) = (wav_prompt(1000, 37), wav_prompt(700, 91));
    s.play(1, vec![a.clone()]);
    s.play(2, vec![b.clone()]);
    let sent = run_until(&mut s, start + Duration::from_millis(20 * 15 - 1));
    assert_eq!(sent.len(), 15);
    for (n, p) in sent.iter().enumerate() {
        assert_eq!(
            p.at,
            start + Duration::from_millis(20 * n as u64),
            "packet {n} on the 20 ms grid"
        );
        assert_eq!(p.to, SDP_ADDR);
        let r = p.rtp();
        assert_eq!(r.payload_type, 0);
        assert_eq!(r.ssrc, 0xCAFE_F00D);
        assert_eq!(
            r.sequence,
            65_530u16.wrapping_add(n as u16),
            "sequence wraps and continues"
        );
        assert_eq!(r.timestamp, (u32::MAX - 500).wrapping_add(160 * n as u32));
        assert_eq!(
            r.marker,
            n == 0,
            "marker only at the start of the talkspurt"
        );
        assert_eq!(r.payload.len(), FRAME_SAMPLES);
    }
    let mut heard = Vec::new();
    for p in &sent {
        g711::decode_into(Law::Mu, p.rtp().payload, &mut heard);
    }
    // Prompt one is 7 frames (1000 samples padded), prompt two 5 frames, then silence.
    let mut expected = g711_round_trip(Law::Mu, &padded(&a));
    expected.extend(g711_round_trip(Law::Mu, &padded(&b)));
    expected.resize(15 * FRAME_SAMPLES, 0);
    assert_eq!(heard, expected);
    assert_eq!(
        events(&mut s),
        vec![
            MediaEvent::PlaybackDone {
                id: 1,
                interrupted: false
            },
            MediaEvent::PlaybackDone {
                id: 2,
                interrupted: false
            },
        ]
    );
    assert_eq!(s.stats().sent, 15);
}

#[test]
fn playback_done_comes_with_the_last_packet_of_the_prompt() {
    let mut s = RtpSession::new(cfg(Law::A, Some(PEER)), ms(0));
    s.play(7, vec![wav_prompt(320, 3)]);
    run_until(&mut s, ms(0));
    assert_eq!(events(&mut s), vec![]);
    run_until(&mut s, ms(20));
    assert_eq!(
        events(&mut s),
        vec![MediaEvent::PlaybackDone {
            id: 7,
            interrupted: false
        }]
    );
    assert!(!s.is_playing());
}

#[test]
fn silence_is_sent_when_idle_and_a_new_prompt_sets_the_marker() {
    let mut s = RtpSession::new(cfg(Law::A, Some(PEER)), ms(0));
    let idle = run_until(&mut s, ms(40));
    assert!(
        idle.iter()
            .all(|p| p.rtp().payload.iter().all(|&b| b == 0xD5)),
        "A-law silence"
    );
    assert_eq!(
        idle.iter().map(|p| p.rtp().marker).collect::<Vec<_>>(),
        [true, false, false]
    );
    s.play(1, vec![wav_prompt(160, 5)]);
    let talk = run_until(&mut s, ms(80));
    assert!(talk[0].rtp().marker, "first audio after silence");
    assert!(!talk[1].rtp().marker);
}

#[test]
fn a_late_runtime_gets_a_capped_burst_and_no_timestamp_jump() {
    let mut s = RtpSession::new(cfg(Law::Mu, Some(PEER)), ms(0));
    assert!(s.poll_transmit(ms(0)).is_some());
    assert!(s.poll_transmit(ms(0)).is_none());
    // Three slots late: all three go out now.
    let mut n = 0;
    while s.poll_transmit(ms(60)).is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
    assert_eq!(s.poll_timeout(), ms(80), "the grid did not drift");
    // A second-long stall: at most five packets, then back on a grid 20 ms apart.
    let mut burst = Vec::new();
    while let Some(t) = s.poll_transmit(ms(1_080)) {
        burst.push(rtp::parse(t.bytes).unwrap().timestamp);
    }
    assert_eq!(burst.len(), 5);
    let first_ts = (u32::MAX - 500).wrapping_add(4 * 160);
    assert_eq!(
        burst,
        (0..5)
            .map(|i| first_ts.wrapping_add(160 * i))
            .collect::<Vec<_>>()
    );
    assert_eq!(s.poll_timeout(), ms(1_100));
    assert_eq!(s.stats().skipped_slots, 46);
}

#[test]
fn rfc4733_with_three_end_packets_is_one_digit() {
    let mut s = RtpSession::new(cfg(Law::Mu, Some(PEER)), ms(0));
    for (i, p) in event_payloads('8', 100).iter().enumerate() {
        s.on_datagram(
            ms(i as u64 * 20),
            PEER,
            &packet(101, 10 + i as u16, 48_000, p),
        );
    }
    assert_eq!(
        events(&mut s),
        vec![MediaEvent::Digit {
            digit: '8',
            source: DigitSource::Rfc4733
        }]
    );
    assert_eq!(s.stats().received, 7);
}

fn send_audio(s: &mut RtpSession, from: SocketAddr, law: Law, pcm: &[i16], seq0: u16, ts0: u32) {
    for (i, frame) in pcm.chunks(FRAME_SAMPLES).enumerate() {
        let mut payload = Vec::new();
        g711::encode_into(law, frame, &mut payload);
        let (seq, ts) = (
            seq0.wrapping_add(i as u16),
            ts0.wrapping_add(160 * i as u32),
        );
        s.on_datagram(
            ms(20 * i as u64),
            from,
            &packet(law.payload_type(), seq, ts, &payload),
        );
    }
}

#[test]
fn inband_detection_pauses_while_bridged_and_resumes_after() {
    let mut s = RtpSession::new(cfg(Law::Mu, Some(PEER)), ms(0));
    let mut pcm = vec![0; 800];
    pcm.extend(tone('3', 60, 3277));
    pcm.extend(vec![0; 800]);
    s.start_bridge();
    send_audio(&mut s, PEER, Law::Mu, &pcm, 0, 0);
    assert_eq!(events(&mut s), vec![], "the agent hears the key; no digit");
    s.stop_bridge();
    send_audio(&mut s, PEER, Law::Mu, &pcm, 100, 16_000);
    assert_eq!(
        events(&mut s),
        vec![MediaEvent::Digit {
            digit: '3',
            source: DigitSource::Inband
        }]
    );
}

#[test]
fn an_inband_tone_in_ulaw_rtp_is_a_digit() {
    let mut s = RtpSession::new(cfg(Law::Mu, Some(PEER)), ms(0));
    let mut pcm = vec![0; 800];
    pcm.extend(tone('3', 60, 3277));
    pcm.extend(vec![0; 800]);
    send_audio(&mut s, PEER, Law::Mu, &pcm, 0, 0);
    assert_eq!(
        events(&mut s),
        vec![MediaEvent::Digit {
            digit: '3',
            source: DigitSource::Inband
        }]
    );
}

#[test]
fn inband_detection_is_off_unless_asked_and_after_rfc4733_is_seen() {
    let key = tone('5', 100, 3277);
    let mut off = RtpSession::new(
        SessionConfig {
            inband_dtmf: false,
            ..cfg(Law::Mu, Some(PEER))
        },
        ms(0),
    );
    send_audio(&mut off, PEER, Law::Mu, &key, 0, 0);
    assert_eq!(events(&mut off), vec![]);
    // A phone that sends RFC 4733 and also leaks the tone into its audio: one digit, not two.
    let mut both = RtpSession::new(cfg(Law::Mu, Some(PEER)), ms(0));
    both.on_datagram(
        ms(0),
        PEER,
        &packet(101, 0, 0, &event_payloads('5', 100)[0]),
    );
    send_audio(&mut both, PEER, Law::Mu, &key, 1, 0);
    assert_eq!(
        events(&mut both),
        vec![MediaEvent::Digit {
            digit: '5',
            source: DigitSource::Rfc4733
        }]
    );
}

#[test]
fn the_first_packet_latches_the_peer_and_strangers_are_ignored() {
    let mut s = RtpSession::new(cfg(Law::Mu, Some(SDP_ADDR)), ms(0));
    // RTCP is neither latched on nor counted.
    s.on_datagram(ms(0), STRANGER, &[0x81, 201, 0, 1, 0, 0, 0, 1]);
    assert_eq!(s.remote(), Some(SDP_ADDR));
    // The phone is behind NAT: its packets come from PEER, not the SDP address.
    s.on_datagram(ms(5), PEER, &packet(0, 1, 0, &[0xFF; 160]));
    assert_eq!(s.remote(), Some(PEER));
    assert_eq!(s.last_received(), Some(ms(5)));
    // A stranger's key presses and audio change nothing.
    let presses = event_payloads('0', 60);
    for p in &presses {
        s.on_datagram(ms(10), STRANGER, &packet(101, 50, 9_999, p));
    }
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(s.remote(), Some(PEER));
    assert_eq!(s.last_received(), Some(ms(5)));
    let stats = s.stats();
    assert_eq!((stats.received, stats.ignored), (1, presses.len() as u64));
    let sent = run_until(&mut s, ms(0));
    assert_eq!(sent[0].to, PEER);
    // A re-INVITE moves the peer; the next packet latches again.
    s.set_remote(Some(SDP_ADDR));
    s.on_datagram(ms(30), STRANGER, &packet(0, 2, 160, &[0xFF; 160]));
    assert_eq!(s.remote(), Some(STRANGER));
}

#[test]
fn without_an_address_nothing_is_sent_but_time_and_prompts_go_on() {
    let mut s = RtpSession::new(cfg(Law::Mu, None), ms(0));
    s.play(4, vec![wav_prompt(300, 7)]);
    assert!(run_until(&mut s, ms(100)).is_empty());
    assert_eq!(
        events(&mut s),
        vec![MediaEvent::PlaybackDone {
            id: 4,
            interrupted: false
        }]
    );
    s.on_datagram(ms(110), PEER, &packet(0, 1, 0, &[0xFF; 160]));
    let sent = run_until(&mut s, ms(120));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, PEER);
    let r = sent[0].rtp();
    assert!(r.marker);
    assert_eq!(
        r.sequence, 65_530,
        "no sequence numbers were burnt while nothing was sent"
    );
    assert_eq!(
        r.timestamp,
        (u32::MAX - 500).wrapping_add(6 * 160),
        "but the clock ran"
    );
}

#[test]
fn barge_in_interrupts_the_prompt_and_silence_follows() {
    let mut s = RtpSession::new(cfg(Law::Mu, Some(PEER)), ms(0));
    s.play(1, vec![wav_prompt(4000, 13)]);
    s.play(2, vec![wav_prompt(4000, 17)]);
    let before = run_until(&mut s, ms(100));
    assert!(before
        .iter()
        .all(|p| p.rtp().payload.iter().any(|&b| b != 0xFF)));
    s.stop_playback();
    assert_eq!(
        events(&mut s),
        vec![
            MediaEvent::PlaybackDone {
                id: 1,
                interrupted: true
            },
            MediaEvent::PlaybackDone {
                id: 2,
                interrupted: true
            },
        ]
    );
    let after = run_until(&mut s, ms(200));
    assert_eq!(after.len(), 5);
    assert!(after
        .iter()
        .all(|p| p.rtp().payload.iter().all(|&b| b == 0xFF)));
    let seqs: Vec<u16> = before
        .iter()
        .chain(&after)
        .map(|p| p.rtp().sequence)
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "no gap at the barge-in"
    );
    assert_eq!(events(&mut s), vec![], "nothing finishes twice");
}

#[test]
fn loss_is_counted_from_sequence_gaps() {
    let mut s = RtpSession::new(cfg(Law::Mu, Some(PEER)), ms(0));
    // 65534, 65535, (0 lost), 1, 3, then 2 arrives late, 1 duplicated; (4, 5 lost), 6.
    for seq in [65_534u16, 65_535, 1, 3, 2, 1, 6] {
        s.on_datagram(ms(0), PEER, &packet(0, seq, 0, &[0xFF; 10]));
    }
    let st = s.stats();
    assert_eq!(st.received, 7);
    assert_eq!(
        st.lost, 2,
        "0, 4, 5 missing; the duplicate offsets one, as RFC 3550 counts"
    );
    // A new SSRC starts counting afresh and keeps the loss already seen.
    let mut other = Vec::new();
    rtp::write(0, false, 100, 0, 0x9999, &[0xFF; 10], &mut other);
    s.on_datagram(ms(0), PEER, &other);
    rtp::write(0, false, 103, 0, 0x9999, &[0xFF; 10], &mut other);
    s.on_datagram(ms(0), PEER, &other);
    assert_eq!(s.stats().lost, 4);
    s.on_datagram(ms(0), PEER, &[0x80, 0, 1]);
    assert_eq!(s.stats().malformed, 1);
}

#[test]
fn recording_keeps_real_time_and_stops_at_its_limit() {
    let mut s = RtpSession::new(cfg(Law::A, Some(PEER)), ms(0));
    let speech: Vec<i16> = (0..480).map(|i| (i * 50 % 8000) as i16).collect();
    // Audio before the recording starts is not kept.
    send_audio(&mut s, PEER, Law::A, &[1000; 160], 0, 0);
    s.start_recording(750);
    // Frames at ts 160 and 320, one packet lost (ts 480), then 640; a duplicate of 320 arrives.
    for (seq, ts, frame) in [
        (1u16, 160u32, 0usize),
        (2, 320, 1),
        (4, 640, 2),
        (2, 320, 1),
    ] {
        let mut payload = Vec::new();
        g711::encode_into(
            Law::A,
            &speech[frame * 160..(frame + 1) * 160],
            &mut payload,
        );
        s.on_datagram(ms(0), PEER, &packet(8, seq, ts, &payload));
    }
    assert_eq!(events(&mut s), vec![]);
    // 110 of the next 160 samples fill it to the limit.
    s.on_datagram(ms(0), PEER, &packet(8, 5, 800, &[0xD5; 160]));
    assert_eq!(
        events(&mut s),
        vec![MediaEvent::RecordingDone { samples: 750 }]
    );
    s.on_datagram(ms(0), PEER, &packet(8, 6, 960, &[0xD5; 160]));
    assert_eq!(events(&mut s), vec![], "done only once");
    let rec = s.stop_recording();
    let heard = g711_round_trip(Law::A, &speech);
    assert_eq!(rec.len(), 750);
    assert_eq!(rec[..320], heard[..320]);
    assert!(
        rec[320..480].iter().all(|&x| x == 0),
        "the lost packet is silence, not skipped"
    );
    assert_eq!(rec[480..640], heard[320..480]);
    assert!(rec[640..].iter().all(|&x| x == g711::decode(Law::A, 0xD5)));
    assert!(s.stop_recording().is_empty());
}

#[test]
fn a_bridge_relays_both_ways_converting_a_law_callers_to_mu_law() {
    let mut s = RtpSession::new(cfg(Law::A, Some(PEER)), ms(0));
    // Before the bridge, the caller's audio is not kept for anyone.
    let speech: Vec<i16> = (0..160).map(|i| ((i * 97) % 4000 - 2000) as i16).collect();
    let mut alaw = Vec::new();
    g711::encode_into(Law::A, &speech, &mut alaw);
    s.on_datagram(ms(5), PEER, &packet(8, 1, 160, &alaw));
    assert!(s.poll_bridged_audio().is_none());

    s.start_bridge();
    s.on_datagram(ms(25), PEER, &packet(8, 2, 320, &alaw));
    let to_agent = s
        .poll_bridged_audio()
        .expect("the caller's frame for the agent");
    let mut back = Vec::new();
    g711::decode_into(Law::Mu, to_agent, &mut back);
    let mut want = Vec::new();
    g711::decode_into(Law::A, &alaw, &mut want);
    for (a, b) in back.iter().zip(&want) {
        assert!(
            (i32::from(*a) - i32::from(*b)).abs() <= 64,
            "µ-law conversion too lossy: {a} vs {b}"
        );
    }

    // The agent's µ-law frames reach the caller as A-law, one per slot, seq/ts continuous.
    let agent: Vec<u8> = (0..160).map(|i| (i as u8).wrapping_mul(3)).collect();
    s.push_bridged_audio(&agent);
    s.push_bridged_audio(&agent);
    let sent = run_until(&mut s, ms(60));
    let audio: Vec<&Sent> = sent
        .iter()
        .filter(|p| p.rtp().payload != [0xD5; 160])
        .collect();
    assert_eq!(audio.len(), 2, "two relayed frames, silence after");
    for p in &audio {
        let got: Vec<i16> = p
            .rtp()
            .payload
            .iter()
            .map(|&x| g711::decode(Law::A, x))
            .collect();
        let want: Vec<i16> = agent.iter().map(|&x| g711::decode(Law::Mu, x)).collect();
        for (a, b) in got.iter().zip(&want) {
            assert!((i32::from(*a) - i32::from(*b)).abs() <= i32::from(b.unsigned_abs() / 8) + 16);
        }
        assert_eq!(p.rtp().payload_type, 8);
    }
    for w in sent.windows(2) {
        assert_eq!(w[1].rtp().sequence, w[0].rtp().sequence.wrapping_add(1));
        assert_eq!(w[1].rtp().timestamp, w[0].rtp().timestamp.wrapping_add(160));
    }

    // A prompt (music on hold) takes precedence over relayed audio; stopping the bridge drops it.
    s.stop_bridge();
    s.push_bridged_audio(&agent);
    let later = run_until(&mut s, ms(120));
    assert!(later.iter().all(|p| p.rtp().payload == [0xD5; 160]));
}

#[test]
fn a_relayed_frame_goes_to_the_caller_on_arrival_and_the_grid_only_fills_a_pause() {
    let mut s = RtpSession::new(cfg(Law::Mu, Some(PEER)), ms(0));
    s.start_bridge();
    let grid = run_until(&mut s, ms(40));
    assert_eq!(grid.len(), 3, "silence on the grid before the agent talks");
    let (seq0, ts0) = (grid[2].rtp().sequence, grid[2].rtp().timestamp);

    // The agent's frames arrive 7 ms after the grid's slots; the sixth is lost on the way.
    let mut relayed = Vec::new();
    for n in (0..10u64).filter(|n| *n != 5) {
        let at = ms(47 + 20 * n);
        assert!(
            s.poll_transmit(ms(46 + 20 * n)).is_none(),
            "the grid sends nothing of its own between relayed frames"
        );
        let t = s
            .relay_to_caller(at, &[n as u8 + 1; 160])
            .expect("sent as it arrives, not on the next slot");
        assert_eq!(t.to, PEER);
        relayed.push(t.bytes.to_vec());
    }
    fn rtp_of(b: &[u8]) -> rtp::RtpPacket<'_> {
        rtp::parse(b).unwrap()
    }
    let first = rtp_of(&relayed[0]);
    assert_eq!(first.sequence, seq0.wrapping_add(1));
    assert_eq!(first.timestamp, ts0.wrapping_add(160));
    assert_eq!(first.payload, [1; 160]);
    for (k, w) in relayed.windows(2).enumerate() {
        let (a, b) = (rtp_of(&w[0]), rtp_of(&w[1]));
        assert_eq!(
            b.sequence,
            a.sequence.wrapping_add(1),
            "no gap in sequence numbers"
        );
        let gap = if k == 4 { 320 } else { 160 };
        assert_eq!(
            b.timestamp,
            a.timestamp.wrapping_add(gap),
            "the lost frame stays a gap in time"
        );
    }

    // The agent pauses: 80 ms after their last frame the grid sends silence again, every 20 ms.
    let last = rtp_of(relayed.last().unwrap());
    let after = run_until(&mut s, ms(400));
    let at: Vec<u64> = after.iter().map(|p| p.at.as_micros() / 1000).collect();
    assert_eq!(at, vec![307, 327, 347, 367, 387]);
    assert_eq!(after[0].rtp().sequence, last.sequence.wrapping_add(1));
    assert_eq!(after[0].rtp().timestamp, last.timestamp.wrapping_add(160));
    assert!(after.iter().all(|p| p.rtp().payload == [0xFF; 160]));
}

#[test]
fn relayed_frames_wait_for_a_playing_prompt_and_are_dropped_when_not_bridged() {
    let mut s = RtpSession::new(cfg(Law::Mu, Some(PEER)), ms(0));
    assert!(s.relay_to_caller(ms(5), &[7; 160]).is_none(), "not bridged");
    s.start_bridge();
    s.play(1, vec![wav_prompt(320, 11)]);
    assert!(
        s.relay_to_caller(ms(6), &[7; 160]).is_none(),
        "the prompt has the slot"
    );
    let sent = run_until(&mut s, ms(40));
    let payloads: Vec<u8> = sent.iter().map(|p| p.rtp().payload[0]).collect();
    assert_eq!(sent.len(), 3);
    assert_eq!(payloads[2], 7, "the frame follows the prompt on the grid");
    assert!(events(&mut s).contains(&MediaEvent::PlaybackDone {
        id: 1,
        interrupted: false
    }));
    // Nothing waits any more: the next frame goes out on arrival.
    assert!(s.relay_to_caller(ms(45), &[8; 160]).is_some());
}

#[test]
fn a_standing_backlog_of_relayed_frames_is_trimmed_so_the_delay_does_not_last() {
    let mut s = RtpSession::new(cfg(Law::Mu, Some(PEER)), ms(0));
    s.start_bridge();
    // A burst of 6 frames after a stall, then one frame per slot: without a trim the caller
    // would hear the agent 100 ms late for the rest of the call.
    let frame = |n: u8| vec![n; 160];
    for n in 1..=6 {
        s.push_bridged_audio(&frame(n));
    }
    let mut heard = Vec::new();
    for slot in 0..150u64 {
        s.push_bridged_audio(&frame(7 + (slot % 200) as u8));
        for p in run_until(&mut s, ms(slot * 20)) {
            heard.push((slot, p.rtp().payload[0]));
        }
    }
    // By the third second the frame pushed in a slot goes out within two slots.
    let late: Vec<_> = heard
        .iter()
        .filter(|(slot, b)| *slot >= 100 && u64::from(*b) + 2 < 7 + slot)
        .collect();
    assert!(
        late.is_empty(),
        "still late: {:?}",
        &late[..late.len().min(5)]
    );
    assert!(s.stats().bridge_trimmed >= 4, "{:?}", s.stats());
    assert!(
        s.stats().bridge_trimmed <= 6,
        "only the backlog is dropped: {:?}",
        s.stats()
    );
}

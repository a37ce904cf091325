//! The call recording and the DTMF sender, driven through the session with virtual time.

use super::*;
use crate::media::dtmf::Rfc4733Receiver;
use crate::media::goertzel::{tone, InbandDetector};

const PEER: SocketAddr = SocketAddr::new(
    core::net::IpAddr::V4(core::net::Ipv4Addr::new(192, 0, 2, 10)),
    4000,
);

fn session(dtmf: Option<u8>) -> RtpSession {
    let cfg = SessionConfig {
        law: Law::Mu,
        payload_type: 0,
        dtmf_payload_type: dtmf,
        ssrc: 0xCAFE_F00D,
        initial_seq: 65_500,
        initial_timestamp: u32::MAX - 1000,
        remote: Some(PEER),
        inband_dtmf: false,
    };
    RtpSession::new(cfg, Instant::from_millis(0))
}

fn slot_at(n: u64) -> Instant {
    Instant::from_millis(20 * n)
}

/// Sends everything due at slot `n`, returning the packets.
fn tick(s: &mut RtpSession, n: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(t) = s.poll_transmit(slot_at(n)) {
        out.push(t.bytes.to_vec());
    }
    out
}

fn caller_packet(seq: u16, pcm: &[i16]) -> Vec<u8> {
    let mut payload = Vec::new();
    g711::encode_into(Law::Mu, pcm, &mut payload);
    let mut out = Vec::new();
    rtp::write(
        0,
        false,
        seq,
        u32::from(seq) * 160,
        0x1234,
        &payload,
        &mut out,
    );
    out
}

fn channels(interleaved: &[i16]) -> (Vec<i16>, Vec<i16>) {
    let left = interleaved.iter().step_by(2).copied().collect();
    let right = interleaved.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

fn energy(pcm: &[i16]) -> f64 {
    pcm.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / pcm.len().max(1) as f64
}

fn digits(pcm: &[i16]) -> Vec<char> {
    InbandDetector::new().push(pcm)
}

/// A bridged, recorded call of 50 frames: the caller says '1', the agent '9'. Each agent frame is
/// handed over by `agent(session, slot, frame)`; the recording's channels come back.
fn bridged_recording(mut agent: impl FnMut(&mut RtpSession, u64, &[u8])) -> (Vec<i16>, Vec<i16>) {
    let mut s = session(Some(101));
    s.start_bridge();
    s.start_call_recording(8000 * 60);
    let said = tone('1', 1000, 6000);
    let theirs = tone('9', 1000, 6000);
    for n in 0..50u64 {
        let i = n as usize * FRAME_SAMPLES;
        let frame = &said[i..i + FRAME_SAMPLES];
        s.on_datagram(slot_at(n), PEER, &caller_packet(n as u16, frame));
        let mut pcmu = Vec::new();
        g711::encode_into(Law::Mu, &theirs[i..i + FRAME_SAMPLES], &mut pcmu);
        agent(&mut s, n, &pcmu);
    }
    channels(&s.stop_call_recording().unwrap())
}

#[test]
fn caller_goes_left_and_agent_goes_right_in_step() {
    let (left, right) = bridged_recording(|s, n, pcmu| {
        s.push_bridged_audio(pcmu);
        tick(s, n);
    });
    assert_eq!(left.len(), 50 * FRAME_SAMPLES);
    assert_eq!(right.len(), left.len());
    assert_eq!(digits(&left), vec!['1']);
    assert_eq!(digits(&right), vec!['9']);
}

#[test]
fn relayed_on_arrival_the_agent_still_goes_right_in_step_with_the_caller() {
    let (left, right) = bridged_recording(|s, n, pcmu| {
        let late = slot_at(n) + std::time::Duration::from_millis(3);
        assert!(s.relay_to_caller(late, pcmu).is_some());
        assert!(tick(s, n).is_empty(), "no grid packet while frames flow");
    });
    assert_eq!(left.len(), 50 * FRAME_SAMPLES);
    assert_eq!(right.len(), left.len());
    assert_eq!(digits(&left), vec!['1']);
    assert_eq!(digits(&right), vec!['9']);
}

#[test]
fn lost_caller_packets_leave_silence_in_place_not_a_shift() {
    let mut s = session(Some(101));
    s.start_call_recording(8000 * 60);
    let loud = vec![8000i16; FRAME_SAMPLES];
    for n in 0..30u64 {
        // Slots 10..15 lose the caller's packets; the rest arrive on time.
        if !(10..15).contains(&n) {
            s.on_datagram(slot_at(n), PEER, &caller_packet(n as u16, &loud));
        }
        tick(&mut s, n);
    }
    let (left, right) = channels(&s.stop_call_recording().unwrap());
    assert_eq!(
        left.len(),
        30 * FRAME_SAMPLES,
        "one frame per slot, loss or not"
    );
    let frame_energy = |k: usize| energy(&left[k * FRAME_SAMPLES..(k + 1) * FRAME_SAMPLES]);
    for k in 0..30 {
        if (10..15).contains(&k) {
            assert_eq!(frame_energy(k), 0.0, "slot {k} is silence");
        } else {
            assert!(frame_energy(k) > 1e7, "slot {k} holds the caller's audio");
        }
    }
    assert_eq!(energy(&right), 0.0, "nothing was sent to the caller");
}

#[test]
fn recording_stops_growing_at_its_maximum() {
    let mut s = session(Some(101));
    s.start_call_recording(10 * FRAME_SAMPLES);
    for n in 0..40u64 {
        s.on_datagram(slot_at(n), PEER, &caller_packet(n as u16, &[500; 160]));
        tick(&mut s, n);
    }
    let rec = s.stop_call_recording().unwrap();
    assert_eq!(rec.len(), 2 * 10 * FRAME_SAMPLES);
}

#[test]
fn rfc4733_digit_goes_out_once_in_the_audio_stream() {
    let mut s = session(Some(101));
    let mut sent = Vec::new();
    for n in 0..3 {
        sent.extend(tick(&mut s, n));
    }
    assert!(s.send_dtmf('7', Duration::from_millis(100)));
    for n in 3..20 {
        sent.extend(tick(&mut s, n));
    }
    let pkts: Vec<_> = sent.iter().map(|b| rtp::parse(b).unwrap()).collect();
    assert_eq!(pkts.len(), 20, "one packet per slot, events included");
    for w in pkts.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
        assert_eq!(w[1].ssrc, w[0].ssrc);
    }
    let events: Vec<_> = pkts.iter().filter(|p| p.payload_type == 101).collect();
    // 100 ms: updates at 20..80 ms, then three end packets.
    assert_eq!(events.len(), 4 + 3);
    assert!(events[0].marker && events[1..].iter().all(|p| !p.marker));
    assert!(events.iter().all(|p| p.timestamp == events[0].timestamp));
    let ends = events.iter().filter(|p| p.payload[1] & 0x80 != 0).count();
    assert_eq!(ends, 3);
    // Audio stops while the key is sent and resumes on the same clock.
    let first_event = pkts.iter().position(|p| p.payload_type == 101).unwrap();
    assert!(pkts[first_event + 7..].iter().all(|p| p.payload_type == 0));
    let after = &pkts[first_event + 7];
    assert_eq!(
        after.timestamp.wrapping_sub(events[0].timestamp),
        7 * FRAME_SAMPLES as u32
    );
    let mut rx = Rfc4733Receiver::new();
    let got: Vec<char> = events
        .iter()
        .filter_map(|p| rx.on_packet(p.timestamp, p.payload))
        .collect();
    assert_eq!(got, vec!['7']);
}

#[test]
fn without_telephone_event_the_digit_is_sent_as_tones() {
    let mut s = session(None);
    assert!(s.send_dtmf('5', Duration::from_millis(100)));
    assert!(s.send_dtmf('#', Duration::from_millis(100)));
    assert!(!s.send_dtmf('x', Duration::from_millis(100)));
    let mut pcm = Vec::new();
    for n in 0..40 {
        for b in tick(&mut s, n) {
            let p = rtp::parse(&b).unwrap();
            assert_eq!(p.payload_type, 0);
            g711::decode_into(Law::Mu, p.payload, &mut pcm);
        }
    }
    assert_eq!(digits(&pcm), vec!['5', '#']);
}

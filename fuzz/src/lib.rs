//! The fuzz targets' bodies, shared by the libFuzzer entry points (`fuzz_targets/`) and the
//! stable-toolchain runner (`src/bin/stable_fuzz.rs`), so both exercise exactly the same code.
//!
//! Each target feeds untrusted bytes to what the network or an operator's file reaches first and
//! then drives the state machine behind it a little, since a parser that accepts something odd is
//! only half the story: the code that trusts its output must not fall over either. A target
//! "fails" only by panicking (or, under the sanitizer build, by any memory error).

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use switchboard::media::{self, Law, RtpSession, SessionConfig};
use switchboard::sip::sdp::{self, AudioCodec};
use switchboard::sip::transaction::{TimerConfig, TransactionLayer, TxEvent};
use switchboard::sip::{self, Peer, Transport};
use switchboard::time::Instant;

/// One fuzz target: takes any bytes, fails only by panicking.
pub type Target = fn(&[u8]);

/// The targets by name, as `scripts/fuzz` and the stable runner know them.
pub const TARGETS: &[(&str, Target)] = &[
    ("sip_message", sip_message),
    ("sdp", sdp),
    ("rtp", rtp),
    ("rfc4733", rfc4733),
    ("flow", flow),
];

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060))
}

/// A datagram or TCP frame: the message parser, TCP framing, and the transaction layer (which
/// also builds the stateless 400 for what does not parse), over UDP and TCP, answering any
/// request it surfaces and letting every timer run out.
pub fn sip_message(data: &[u8]) {
    let _ = sip::message::parse(data);
    let _ = sip::message::stream_frame_len(data);
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut layer = TransactionLayer::new(TimerConfig::default(), 0x5eed);
        layer.set_local_addr(transport, addr("127.0.0.1:5060"));
        let peer = Peer {
            transport,
            addr: addr("192.0.2.10:5062"),
        };
        let mut now = Instant::from_millis(1_000);
        layer.handle_datagram(now, peer, data);
        // The same bytes again are a retransmission, the path absorbing duplicates.
        layer.handle_datagram(now, peer, data);
        while let Some(event) = layer.poll_event() {
            if let TxEvent::Request { key, request, .. } = event {
                let _ = sip::message::request_uri_user(&request);
                let _ = sip::message::from_user(&request);
                let _ = sip::message::branch(&request);
                for status in [100, 486] {
                    let tag = layer.new_tag();
                    let response = sip::message::response_to(&request, status, Some(&tag));
                    let _ = layer.respond(now, &key, response);
                }
            }
        }
        for _ in 0..8 {
            while layer.poll_transmit().is_some() {}
            match layer.poll_timeout() {
                Some(deadline) if deadline > now => now = deadline,
                _ => now += std::time::Duration::from_secs(40),
            }
            layer.handle_timeout(now);
        }
        while layer.poll_event().is_some() {}
    }
}

/// An SDP body: parsing, and building our answer to it (as for an incoming INVITE), and reading
/// it as the answer to an offer of ours.
pub fn sdp(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sdp::parse(text);
    let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    let codecs = [AudioCodec::Pcmu, AudioCodec::Pcma];
    let _ = sdp::answer(text, local, 40_000, 1, &codecs);
    let _ = sdp::answer(text, local, 40_000, 1, &[AudioCodec::Pcma]);
    let _ = sdp::negotiate_answer(text);
}

fn session() -> RtpSession {
    let cfg = SessionConfig {
        law: Law::Mu,
        payload_type: 0,
        dtmf_payload_type: Some(101),
        ssrc: 0x1234_5678,
        initial_seq: 1,
        initial_timestamp: 0,
        remote: Some(addr("192.0.2.20:4000")),
        inband_dtmf: true,
    };
    RtpSession::new(cfg, Instant::from_millis(0))
}

/// RTP (and RTCP) packets: the header parser, then a call's media session fed the input cut
/// into packets at 0xFF bytes, as a stream of datagrams 20 ms apart, from the peer and from a
/// stranger, recording all the while.
pub fn rtp(data: &[u8]) {
    let _ = media::rtp::parse(data);
    let _ = media::rtp::looks_like_rtcp(data);
    let mut s = session();
    s.start_recording(8_000);
    let peer = addr("192.0.2.20:4000");
    let stranger = addr("198.51.100.9:4000");
    let mut now = Instant::from_millis(0);
    for (i, packet) in data.split(|b| *b == 0xFF).enumerate().take(256) {
        now += std::time::Duration::from_millis(20);
        let from = if i % 7 == 6 { stranger } else { peer };
        s.on_datagram(now, from, packet);
        while s.poll_transmit(now).is_some() {}
        while s.poll_event().is_some() {}
    }
    s.on_datagram(now, peer, data);
    let _ = s.stats();
    let _ = s.stop_recording();
}

/// RFC 4733 telephone-event payloads: the event parser, and the receiver that turns packets
/// (4-byte RTP timestamp + payload, 8 bytes each) into key presses.
pub fn rfc4733(data: &[u8]) {
    let _ = media::dtmf::parse_event(data);
    let mut rx = media::dtmf::Rfc4733Receiver::new();
    for chunk in data.chunks(8) {
        let (ts, payload) = chunk.split_at(chunk.len().min(4));
        let mut ts_bytes = [0u8; 4];
        ts_bytes[..ts.len()].copy_from_slice(ts);
        let _ = rx.on_packet(u32::from_be_bytes(ts_bytes), payload);
    }
}

/// A flow file (YAML) from an operator: the parser and checker, all diagnostics rendered.
pub fn flow(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (_flow, diagnostics) = switchboard::ivr::parse_str(Path::new("fuzz.yaml"), text);
    for d in &diagnostics {
        let _ = d.to_string();
    }
}

//! The WebRTC leg: an agent's browser as one end of a call, carrying PCMU both ways so that a
//! SIP caller who speaks G.711 µ-law is bridged without transcoding.
//!
//! The browser offers (non-trickle: it sends the offer once ICE gathering is complete) and
//! [`RtcLeg::answer`] answers with PCMU (payload type 0 unless the browser mapped it elsewhere),
//! DTLS-SRTP, and every host candidate in the answer. After that the leg is a pair of queues:
//! [`RtcLeg::send_pcmu`] takes 20 ms frames, [`RtcLeg::recv`] yields [`RtcEvent`]s — `Connected`,
//! the browser's audio frames as received, RFC 4733 key presses, and `Closed` when either side
//! hangs up or the connection fails.
//!
//! This is the only module that touches the WebRTC stack.
//!
//! # Why webrtc 0.21
//!
//! Measured here (2026-11, the 2-core machine CI runs on) against the other candidate, str0m
//! 0.24:
//!
//! * **It interoperates as required.** `webrtc` 0.21 (webrtc-rs's async layer over its sans-IO
//!   `rtc` core) answers a Chrome-style offer (BUNDLE, opus/red/G722/PCMU/PCMA/CN and two
//!   telephone-events, extmaps, rtcp-mux, `setup:actpass`) with PCMU, and carries audio
//!   byte-exact both ways with DTLS-SRTP (`tests.rs`). The 0.17 line leaks per connection and is
//!   frozen; neither it nor its separate `rtp` crate is used (packets are `rtc::rtp::Packet`).
//! * **Build cost**, clean builds of each stack alone in an empty crate, `nice -n 19 cargo build
//!   -j2 --timings` (dev profile, deps at opt-level 1): webrtc 542 CPU-s (506 user + 36 sys, 180
//!   crates); str0m with its default `aws-lc-rs` backend 408 CPU-s (84 crates), but 287 s of
//!   that is the aws-lc C library, which nothing else here shares. Counting only crates
//!   switchboard did not already build, from the same timing reports: webrtc adds 80 crates,
//!   551 unit-seconds; str0m adds 41 crates, 789 unit-seconds. webrtc reuses ring, rustls and
//!   tokio, so it is the cheaper addition to this crate.
//! * **CPU per leg**: one bridged call (a leg and its browser stand-in in one process, 20 ms
//!   PCMU both ways for 20 s, loopback) uses 1.5 % of a core per leg in the debug build
//!   (`cargo test --lib rtc::tests::cpu_of_one_bridged_leg -- --ignored --nocapture`); the issue
//!   measured 0.35 % per leg for the same async API in an optimised build. str0m's CPU was not
//!   measured: it needs a UDP/ICE driver of our own first, which is the work that would pay off
//!   only at thousands of legs per process. If the performance targets come to need that, the
//!   sans-IO `rtc` core under this crate (or str0m) lets one UDP port and one event loop serve
//!   every peer behind this same API.
//!
//! # Stack quirks handled here
//!
//! * webrtc matches codecs by name only, so Chrome's `telephone-event/48000` would be answered
//!   in place of the 8 kHz one; offers are narrowed to PCMU + telephone-event/8000 first
//!   (`sdp::restrict_offer_to_pcmu`).
//! * Its 1:1 NAT setting is accepted but not applied; [`RtcConfig::public_ip`] is applied by
//!   rewriting our host candidates (`sdp::advertise_public`).
//! * A far-end DTLS close_notify changes no connection state; a watcher polls the DTLS
//!   transport so that a browser's hang-up reaches [`RtcEvent::Closed`] within 100 ms.
//! * Its tokio runtime switches UDP GRO on and then sizes two 96 KB receive buffers per
//!   connection for it; the legs run on a wrapper with GRO off (`socket.rs`), 2000 bytes each.
//! * A browser that vanishes without closing is reported `Closed` after 15 s of failed ICE
//!   consent checks (5 s to disconnected, 10 s more to failed).

mod peer;
mod sdp;
mod socket;

#[cfg(test)]
mod tests;

use core::net::{IpAddr, Ipv4Addr};
use peer::Peer;
use thiserror::Error;

pub use peer::MAX_FRAME_BYTES;
pub use sdp::MAX_SDP_BYTES;

/// Where the leg's ICE candidates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcConfig {
    /// The address the UDP socket binds; its host candidate is what the browser dials.
    pub bind_ip: IpAddr,
    /// A 1:1 NAT's public address: advertised in place of `bind_ip` (cloud hosts).
    pub public_ip: Option<IpAddr>,
    /// A STUN server (`host:port` or `stun:host:port`) for a server-reflexive candidate.
    pub stun: Option<String>,
    /// Bind only within these UDP ports (inclusive), for firewalls that open a range.
    pub port_range: Option<(u16, u16)>,
}

impl Default for RtcConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            public_ip: None,
            stun: None,
            port_range: None,
        }
    }
}

/// What a leg reports, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcEvent {
    /// ICE and DTLS are up: audio can flow.
    Connected,
    /// One PCMU frame as the browser sent it, with its RTP timestamp (8 kHz clock).
    Audio { payload: Vec<u8>, timestamp: u32 },
    /// A key pressed on the browser's keypad (RFC 4733), reported once per press.
    Dtmf(char),
    /// The far end hung up, the connection failed, or the leg was closed; the last event.
    Closed,
}

/// Why a leg could not be set up or used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RtcError {
    #[error("SDP of {0} bytes exceeds the {max}-byte limit", max = MAX_SDP_BYTES)]
    SdpTooLarge(usize),
    #[error("malformed SDP: {0}")]
    MalformedSdp(String),
    #[error("the offer has no audio section with PCMU")]
    NoCommonCodec,
    #[error("invalid WebRTC configuration: {0}")]
    InvalidConfig(String),
    #[error("no free UDP port in {0}..={1}")]
    NoFreePort(u16, u16),
    #[error("frame of {0} bytes: expected 1..={max} bytes of PCMU", max = MAX_FRAME_BYTES)]
    BadFrame(usize),
    #[error("not a DTMF key: {0:?}")]
    BadDigit(char),
    #[error("send queue full: the connection is not draining frames")]
    QueueFull,
    #[error("the WebRTC connection is closed")]
    Closed,
    #[error("WebRTC stack: {0}")]
    Stack(String),
}

fn advertised(cfg: &RtcConfig, sdp: String) -> String {
    match cfg.public_ip {
        Some(ip) => sdp::advertise_public(&sdp, ip),
        None => sdp,
    }
}

/// One browser's audio, answered by us.
pub struct RtcLeg {
    peer: Peer,
}

impl std::fmt::Debug for RtcLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RtcLeg")
    }
}

impl RtcLeg {
    /// Answers a browser's offer (non-trickle: the browser sends its offer after ICE gathering
    /// completes; our answer also carries all our host candidates). PCMU is negotiated; offers
    /// without PCMU → [`RtcError::NoCommonCodec`]. DTLS-SRTP and ICE as browsers require.
    pub async fn answer(cfg: &RtcConfig, offer_sdp: &str) -> Result<(RtcLeg, String), RtcError> {
        let offer = sdp::parse(offer_sdp, true)?;
        // Refused before binding anything: an offer we cannot serve costs no socket.
        sdp::audio_pts(&offer)?;
        let offer = sdp::restrict_offer_to_pcmu(&offer)?;
        let peer = Peer::new(cfg).await?;
        peer.set_remote(offer).await?;
        // After the remote description, so the track takes the browser's audio transceiver and
        // the answer says sendrecv instead of adding a second audio section.
        peer.add_audio_track().await?;
        let answer = peer.create_answer().await?;
        let answer_sdp = peer.set_local_and_gather(answer).await?;
        let pts = sdp::audio_pts(&sdp::parse(&answer_sdp, false)?)?;
        peer.set_pts(pts);
        Ok((RtcLeg { peer }, advertised(cfg, answer_sdp)))
    }

    /// Queues one PCMU frame (160 bytes for 20 ms) to the browser; the caller paces calls at
    /// 20 ms. Never blocks. Frames queued before `Connected` are discarded.
    pub fn send_pcmu(&self, frame: &[u8]) -> Result<(), RtcError> {
        self.peer.send_pcmu(frame)
    }

    /// The next event; `None` after [`RtcEvent::Closed`] has been returned.
    pub async fn recv(&mut self) -> Option<RtcEvent> {
        self.peer.recv().await
    }

    /// Hangs up: the browser is told (DTLS close_notify) and the socket is released.
    pub async fn close(self) {
        self.peer.close().await;
    }
}

/// A browser stand-in on the same stack: the offering side, as `/agent` is. For tests (the
/// integration tests in `tests/` included) and `loadgen rtc-bridge`'s agents, so not `cfg(test)`.
pub struct RtcTestPeer {
    peer: Peer,
}

impl std::fmt::Debug for RtcTestPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RtcTestPeer")
    }
}

impl RtcTestPeer {
    /// Builds an offer with one PCMU + telephone-event audio section, gathering complete.
    pub async fn offer(cfg: &RtcConfig) -> Result<(RtcTestPeer, String), RtcError> {
        let peer = Peer::new(cfg).await?;
        peer.add_audio_track().await?;
        peer.offer_all_codecs().await?;
        let offer = peer.create_offer().await?;
        let offer_sdp = peer.set_local_and_gather(offer).await?;
        Ok((RtcTestPeer { peer }, advertised(cfg, offer_sdp)))
    }

    /// Applies the answer; `Connected` follows from [`RtcTestPeer::recv`].
    pub async fn accept_answer(&mut self, answer_sdp: &str) -> Result<(), RtcError> {
        let answer = sdp::parse(answer_sdp, false)?;
        let pts = sdp::audio_pts(&answer)?;
        self.peer.set_remote(answer).await?;
        self.peer.set_pts(pts);
        Ok(())
    }

    /// Queues one PCMU frame, as [`RtcLeg::send_pcmu`].
    pub fn send_pcmu(&self, frame: &[u8]) -> Result<(), RtcError> {
        self.peer.send_pcmu(frame)
    }

    /// Presses a key on the "browser's" keypad: one RFC 4733 event of 100 ms.
    pub async fn send_dtmf(&self, digit: char) -> Result<(), RtcError> {
        self.peer.send_dtmf(digit).await
    }

    /// The next event; `None` after [`RtcEvent::Closed`].
    pub async fn recv(&mut self) -> Option<RtcEvent> {
        self.peer.recv().await
    }

    /// Hangs up, as a browser closing its `RTCPeerConnection`.
    pub async fn close(self) {
        self.peer.close().await;
    }
}

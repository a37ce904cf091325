//! What [`RtcLeg`](super::RtcLeg) and [`RtcTestPeer`](super::RtcTestPeer) share: one webrtc
//! `PeerConnection` with a single send-and-receive PCMU audio transceiver, its event handler, and
//! the tasks that move frames between it and our channels.
//!
//! Three tasks per connection besides webrtc's own driver: one turns queued frames into RTP, one
//! turns the remote track's RTP into [`RtcEvent`]s, and one notices that the far end closed DTLS
//! (the stack reports that only as a transport state, not as an event).

use super::sdp::AudioPts;
use super::{RtcConfig, RtcError, RtcEvent};
use crate::media::dtmf::{event_payloads, Rfc4733Receiver};
use ::rtc::media_stream::MediaStreamTrack;
use ::rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_PCMU, MIME_TYPE_TELEPHONE_EVENT,
};
use ::rtc::peer_connection::sdp::RTCSessionDescription;
use ::rtc::peer_connection::transport::RTCDtlsTransportState;
use ::rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use bytes::Bytes;
use core::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    configure_rtcp_reports, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCIceServer, RTCPeerConnectionState, Registry,
    SettingEngineBuilder,
};

/// Received events waiting for `recv`: about five seconds of audio. Past that the reader is
/// stalled and stale audio is worth less than memory, so further frames are dropped.
const EVENT_QUEUE: usize = 256;
/// Frames waiting to be sent: one second. The caller paces at 20 ms, so a full queue means the
/// connection is not draining it and `send_pcmu` reports that instead of buffering without end.
const FRAME_QUEUE: usize = 50;
/// The largest frame `send_pcmu` takes: 60 ms, the longest ptime a browser asks for.
pub const MAX_FRAME_BYTES: usize = 480;
/// How long to wait for candidate gathering. Host candidates come at once; a STUN server that
/// does not answer must not hold up the call, so after this the description goes out with what
/// has been gathered.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the transport watcher looks at the DTLS state.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);
/// Consent checks unanswered this long: the browser is unreachable (webrtc's default).
const ICE_DISCONNECTED: Duration = Duration::from_secs(5);
/// Then unreachable this much longer: the call is over. Long enough for a Wi-Fi roam.
const ICE_FAILED: Duration = Duration::from_secs(10);
/// Our payload type for telephone-event when we offer; an answer takes the offerer's.
const OFFERED_TELEPHONE_EVENT_PT: u8 = 101;
/// A silence between frames longer than this starts a new talk spurt: the RTP clock jumps with
/// the wall clock and the marker bit is set (RFC 3551 §4.1), so the browser's jitter buffer does
/// not mistake a pause for network delay.
const TALKSPURT_GAP: Duration = Duration::from_millis(200);

struct Shared {
    events: mpsc::Sender<RtcEvent>,
    closed: watch::Sender<bool>,
    gathered: watch::Sender<bool>,
    connected: AtomicBool,
    pts: OnceLock<AudioPts>,
}

struct Handler(Arc<Shared>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.0.gathered.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(%state, "webrtc connection state");
        match state {
            // Once only: ICE may drop to disconnected and recover without a new call.
            RTCPeerConnectionState::Connected if !self.0.connected.swap(true, Ordering::AcqRel) => {
                // Awaited: Connected must not be lost, and nothing else is queued before it.
                let _ = self.0.events.send(RtcEvent::Connected).await;
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                self.0.closed.send_replace(true);
            }
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // Handlers run on the connection's driver; the track is read on a task of its own.
        tokio::spawn(receive(track, Arc::clone(&self.0)));
    }
}

fn pcmu_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_PCMU.to_owned(),
        clock_rate: 8000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

fn pcmu_params() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: pcmu_codec(),
        payload_type: 0,
    }
}

fn telephone_event_params() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_TELEPHONE_EVENT.to_owned(),
            clock_rate: 8000,
            channels: 0,
            sdp_fmtp_line: "0-15".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: OFFERED_TELEPHONE_EVENT_PT,
    }
}

fn media_engine() -> Result<MediaEngine, RtcError> {
    let mut media = MediaEngine::default();
    // Only PCMU and telephone-event: whatever else the browser offers, the answer can then pick
    // nothing but PCMU, which the SIP side carries without transcoding.
    for codec in [pcmu_params(), telephone_event_params()] {
        media
            .register_codec(codec, RtpCodecKind::Audio)
            .map_err(stack)?;
    }
    Ok(media)
}

pub(super) fn stack(e: impl std::fmt::Display) -> RtcError {
    RtcError::Stack(e.to_string())
}

fn stun_url(s: &str) -> String {
    if s.starts_with("stun:") || s.starts_with("stuns:") {
        s.to_owned()
    } else {
        format!("stun:{s}")
    }
}

/// The ports to try, in order: the whole range from a random start, so concurrent legs spread
/// out instead of all racing for the first port.
fn candidate_ports(range: Option<(u16, u16)>) -> Result<Vec<u16>, RtcError> {
    match range {
        None => Ok(vec![0]),
        Some((lo, hi)) if lo == 0 || lo > hi => Err(RtcError::InvalidConfig(format!(
            "port range {lo}..={hi} is empty or starts at 0"
        ))),
        Some((lo, hi)) => {
            let len = u32::from(hi - lo) + 1;
            let start = rand::random_range(0..len);
            Ok((0..len)
                .filter_map(|i| u16::try_from(u32::from(lo) + (start + i) % len).ok())
                .collect())
        }
    }
}

/// A port for the leg's socket: 0 (the kernel picks) without a range, else the first port of
/// the range, tried from a random start so concurrent legs spread out, that binds now. Probing
/// with a plain socket keeps a busy port from costing a whole connection setup; the port can
/// still be taken between the probe and webrtc's bind, which then fails the call like any other
/// bind error.
fn free_port(cfg: &RtcConfig) -> Result<u16, RtcError> {
    let Some((lo, hi)) = cfg.port_range else {
        return Ok(0);
    };
    candidate_ports(Some((lo, hi)))?
        .into_iter()
        .find(|&port| std::net::UdpSocket::bind(SocketAddr::new(cfg.bind_ip, port)).is_ok())
        .ok_or(RtcError::NoFreePort(lo, hi))
}

pub(super) struct Peer {
    pc: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    track: Arc<TrackLocalStaticRTP>,
    frames: mpsc::Sender<Outgoing>,
    events: mpsc::Receiver<RtcEvent>,
    closed: watch::Receiver<bool>,
    finished: bool,
    tasks: Vec<JoinHandle<()>>,
    close_called: bool,
}

impl Peer {
    pub(super) async fn new(cfg: &RtcConfig) -> Result<Peer, RtcError> {
        let settings = SettingEngineBuilder::new()
            // mDNS would bind the shared port 5353 per connection; browsers' `.local` host
            // candidates are not needed because their connectivity checks reach us anyway and
            // are learnt as peer-reflexive candidates.
            .with_multicast_dns_mode(::rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(cfg.bind_ip.is_loopback())
            // A browser that vanishes without a close (crash, cable pulled) is declared gone
            // after ICE_DISCONNECTED + ICE_FAILED instead of webrtc's default 30 s, which a
            // caller would spend listening to nothing.
            .with_ice_timeouts(Some(ICE_DISCONNECTED), Some(ICE_FAILED), None)
            .build();
        let ice_servers: Vec<RTCIceServer> = cfg
            .stun
            .iter()
            .map(|s| RTCIceServer {
                urls: vec![stun_url(s)],
                ..Default::default()
            })
            .collect();

        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (closed_tx, closed) = watch::channel(false);
        let shared = Arc::new(Shared {
            events: events_tx,
            closed: closed_tx,
            gathered: watch::channel(false).0,
            connected: AtomicBool::new(false),
            pts: OnceLock::new(),
        });

        let port = free_port(cfg)?;
        let pc = PeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_ice_servers(ice_servers)
                    .build(),
            )
            .with_media_engine(media_engine()?)
            .with_interceptor_registry(configure_rtcp_reports(Registry::new()))
            .with_setting_engine(settings)
            .with_runtime(super::socket::runtime())
            .with_handler(Arc::new(Handler(Arc::clone(&shared))))
            .with_udp_addrs(vec![SocketAddr::new(cfg.bind_ip, port)])
            .build()
            .await
            .map_err(stack)?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "switchboard".to_owned(),
            "switchboard-audio".to_owned(),
            "switchboard-audio".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(rand::random()),
                    ..Default::default()
                },
                codec: pcmu_codec(),
                ..Default::default()
            }],
        )));
        let (frames, frames_rx) = mpsc::channel(FRAME_QUEUE);
        let tasks = vec![
            tokio::spawn(send_loop(
                frames_rx,
                Arc::clone(&track),
                Arc::clone(&shared),
            )),
            tokio::spawn(watch_transport(Arc::downgrade(&pc), Arc::clone(&shared))),
        ];
        Ok(Peer {
            pc,
            shared,
            track,
            frames,
            events,
            closed,
            finished: false,
            tasks,
            close_called: false,
        })
    }

    pub(super) async fn add_audio_track(&self) -> Result<(), RtcError> {
        let track: Arc<dyn TrackLocal> = Arc::clone(&self.track) as Arc<dyn TrackLocal>;
        self.pc.add_track(track).await.map_err(stack)?;
        Ok(())
    }

    /// Offers telephone-event beside PCMU: a transceiver made by `add_track` would offer only
    /// the track's own codec.
    pub(super) async fn offer_all_codecs(&self) -> Result<(), RtcError> {
        let codecs = vec![pcmu_params(), telephone_event_params()];
        for transceiver in self.pc.get_transceivers().await {
            transceiver
                .set_codec_preferences(codecs.clone())
                .await
                .map_err(stack)?;
        }
        Ok(())
    }

    pub(super) async fn set_remote(&self, desc: RTCSessionDescription) -> Result<(), RtcError> {
        self.pc.set_remote_description(desc).await.map_err(stack)
    }

    /// Applies `desc` locally, waits for gathering, and returns the description with every
    /// candidate in it (non-trickle: the other side gets one message).
    pub(super) async fn set_local_and_gather(
        &self,
        desc: RTCSessionDescription,
    ) -> Result<String, RtcError> {
        let mut gathered = self.shared.gathered.subscribe();
        self.pc.set_local_description(desc).await.map_err(stack)?;
        // Reduced to a bool at once: the watch guard must not live across the awaits below, or
        // this future stops being Send.
        let in_time = tokio::time::timeout(GATHER_TIMEOUT, gathered.wait_for(|g| *g))
            .await
            .is_ok();
        if !in_time {
            tracing::warn!(
                timeout_ms = GATHER_TIMEOUT.as_millis() as u64,
                "ICE gathering incomplete; sending the candidates gathered so far"
            );
        }
        let local = self.pc.local_description().await.ok_or(RtcError::Closed)?;
        Ok(local.sdp)
    }

    pub(super) async fn create_offer(&self) -> Result<RTCSessionDescription, RtcError> {
        self.pc.create_offer(None).await.map_err(stack)
    }

    pub(super) async fn create_answer(&self) -> Result<RTCSessionDescription, RtcError> {
        self.pc.create_answer(None).await.map_err(stack)
    }

    /// Records the negotiated payload types; before this no audio moves either way.
    pub(super) fn set_pts(&self, pts: AudioPts) {
        let _ = self.shared.pts.set(pts);
    }

    pub(super) fn send_pcmu(&self, frame: &[u8]) -> Result<(), RtcError> {
        if frame.is_empty() || frame.len() > MAX_FRAME_BYTES {
            return Err(RtcError::BadFrame(frame.len()));
        }
        if *self.closed.borrow() {
            return Err(RtcError::Closed);
        }
        self.frames
            .try_send(Outgoing::Audio(frame.to_vec()))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => RtcError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => RtcError::Closed,
            })
    }

    /// Sends one RFC 4733 key press (the test peer plays the browser's keypad with it). It goes
    /// through the frame queue because telephone-events share the audio's SSRC, sequence numbers
    /// and clock: a jump in either would make SRTP and the receiver discard them.
    pub(super) async fn send_dtmf(&self, digit: char) -> Result<(), RtcError> {
        if event_payloads(digit, DTMF_MS).is_empty() {
            return Err(RtcError::BadDigit(digit));
        }
        let pts = *self.shared.pts.get().ok_or(RtcError::Closed)?;
        if pts.telephone_event.is_none() {
            return Err(RtcError::NoCommonCodec);
        }
        self.frames
            .send(Outgoing::Dtmf(digit))
            .await
            .map_err(|_| RtcError::Closed)
    }

    pub(super) async fn recv(&mut self) -> Option<RtcEvent> {
        if self.finished {
            return None;
        }
        let event = tokio::select! {
            // Queued audio is delivered before the close that followed it.
            biased;
            event = self.events.recv() => event,
            () = closed(&mut self.closed) => None,
        };
        if event.is_none() {
            self.finished = true;
        }
        Some(event.unwrap_or(RtcEvent::Closed))
    }

    pub(super) async fn close(mut self) {
        self.close_called = true;
        self.shared.closed.send_replace(true);
        if let Err(e) = self.pc.close().await {
            tracing::debug!(error = %e, "webrtc close");
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.shared.closed.send_replace(true);
        if !self.close_called {
            // webrtc's driver outlives a dropped connection on the tokio runtime; closing it is
            // what releases the socket and sends DTLS close_notify to the browser.
            let pc = Arc::clone(&self.pc);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = pc.close().await;
                });
            }
        }
    }
}

/// Resolves once the connection is closed (or its state is gone).
async fn closed(rx: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send; dropping it here keeps `recv` spawnable.
    let _ = rx.wait_for(|c| *c).await.map(|_| ());
}

async fn ssrc_of(track: &TrackLocalStaticRTP) -> Result<u32, RtcError> {
    use webrtc::media_stream::Track;
    track
        .ssrcs()
        .await
        .first()
        .copied()
        .ok_or_else(|| RtcError::Stack("local track has no SSRC".to_owned()))
}

fn rtp_packet(
    payload_type: u8,
    marker: bool,
    sequence_number: u16,
    timestamp: u32,
    ssrc: u32,
    payload: Vec<u8>,
) -> ::rtc::rtp::Packet {
    ::rtc::rtp::Packet {
        header: ::rtc::rtp::Header {
            version: 2,
            marker,
            payload_type,
            sequence_number,
            timestamp,
            ssrc,
            ..Default::default()
        },
        payload: Bytes::from(payload),
    }
}

enum Outgoing {
    Audio(Vec<u8>),
    Dtmf(char),
}

/// One RTP stream's numbering: sequence and timestamp advance together for audio and
/// telephone-events alike.
struct Stream {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    /// When the previous frame went out and how many samples it held.
    last: Option<(tokio::time::Instant, u32)>,
}

impl Stream {
    /// Stamps a frame of `samples` going out at `now`; returns (timestamp, marker).
    fn stamp(&mut self, now: tokio::time::Instant, samples: u32) -> (u32, bool) {
        let marker = match self.last {
            None => true,
            Some((at, prev)) => {
                let gap = now.saturating_duration_since(at);
                if gap > TALKSPURT_GAP {
                    let elapsed = u32::try_from(gap.as_micros() / 125).unwrap_or(u32::MAX);
                    self.timestamp = self.timestamp.wrapping_add(elapsed);
                    true
                } else {
                    self.timestamp = self.timestamp.wrapping_add(prev);
                    false
                }
            }
        };
        self.last = Some((now, samples));
        (self.timestamp, marker)
    }

    fn packet(
        &mut self,
        pt: u8,
        marker: bool,
        timestamp: u32,
        payload: Vec<u8>,
    ) -> ::rtc::rtp::Packet {
        let packet = rtp_packet(pt, marker, self.seq, timestamp, self.ssrc, payload);
        self.seq = self.seq.wrapping_add(1);
        packet
    }
}

/// How long a key press sent by [`Peer::send_dtmf`] lasts.
const DTMF_MS: u32 = 100;

async fn send_loop(
    mut outgoing: mpsc::Receiver<Outgoing>,
    track: Arc<TrackLocalStaticRTP>,
    shared: Arc<Shared>,
) {
    let Ok(ssrc) = ssrc_of(&track).await else {
        return;
    };
    let mut stream = Stream {
        ssrc,
        seq: rand::random(),
        timestamp: rand::random(),
        last: None,
    };
    while let Some(item) = outgoing.recv().await {
        // Before DTLS is up there are no SRTP keys: a frame queued that early is simply late.
        let Some(pts) = shared.pts.get() else {
            continue;
        };
        if !shared.connected.load(Ordering::Acquire) {
            continue;
        }
        let now = tokio::time::Instant::now();
        let packets = match item {
            Outgoing::Audio(frame) => {
                let samples = u32::try_from(frame.len()).unwrap_or(u32::MAX);
                let (timestamp, marker) = stream.stamp(now, samples);
                vec![stream.packet(pts.pcmu, marker, timestamp, frame)]
            }
            Outgoing::Dtmf(digit) => {
                let Some(pt) = pts.telephone_event else {
                    continue;
                };
                // The event occupies the stream's clock like the audio it replaces.
                let (timestamp, _) = stream.stamp(now, DTMF_MS * 8);
                event_payloads(digit, DTMF_MS)
                    .into_iter()
                    .enumerate()
                    .map(|(i, payload)| stream.packet(pt, i == 0, timestamp, payload))
                    .collect()
            }
        };
        for packet in packets {
            if let Err(e) = track.write_rtp(packet).await {
                tracing::debug!(error = %e, "RTP packet not sent");
            }
        }
    }
}

async fn receive(track: Arc<dyn TrackRemote>, shared: Arc<Shared>) {
    let mut dtmf = Rfc4733Receiver::new();
    let mut dropped: u64 = 0;
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else {
            continue;
        };
        let Some(pts) = shared.pts.get() else {
            continue;
        };
        let pt = packet.header.payload_type;
        if pt == pts.pcmu {
            let audio = RtcEvent::Audio {
                payload: packet.payload.to_vec(),
                timestamp: packet.header.timestamp,
            };
            match shared.events.try_send(audio) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    dropped += 1;
                    if dropped.is_power_of_two() {
                        tracing::warn!(dropped, "WebRTC audio dropped: reader is not keeping up");
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        } else if Some(pt) == pts.telephone_event {
            if let Some(digit) = dtmf.on_packet(packet.header.timestamp, &packet.payload) {
                if shared.events.send(RtcEvent::Dtmf(digit)).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn watch_transport(pc: Weak<dyn PeerConnection>, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut transport = None;
    loop {
        tick.tick().await;
        if *shared.closed.borrow() {
            return;
        }
        if !shared.connected.load(Ordering::Acquire) {
            continue;
        }
        if transport.is_none() {
            let Some(pc) = pc.upgrade() else { return };
            for sender in pc.get_senders().await {
                if let Ok(Some(t)) = sender.transport().await {
                    transport = Some(t);
                    break;
                }
            }
        }
        let Some(t) = &transport else { continue };
        // A close_notify from the far end leaves ICE up and the connection state untouched;
        // only the DTLS transport says the call is over.
        if let Ok(RTCDtlsTransportState::Closed | RTCDtlsTransportState::Failed) = t.state().await {
            shared.closed.send_replace(true);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_range_is_tried_whole_and_only_within_itself() {
        let mut ports = candidate_ports(Some((40000, 40009))).unwrap();
        ports.sort_unstable();
        assert_eq!(ports, (40000..=40009).collect::<Vec<_>>());
        assert_eq!(candidate_ports(None).unwrap(), vec![0]);
        assert!(matches!(
            candidate_ports(Some((5000, 4000))),
            Err(RtcError::InvalidConfig(_))
        ));
        assert!(matches!(
            candidate_ports(Some((0, 10))),
            Err(RtcError::InvalidConfig(_))
        ));
    }

    #[test]
    fn a_bare_stun_host_gets_the_scheme_browsers_and_webrtc_expect() {
        assert_eq!(
            stun_url("stun.example.org:3478"),
            "stun:stun.example.org:3478"
        );
        assert_eq!(stun_url("stun:10.0.0.1"), "stun:10.0.0.1");
    }

    #[test]
    fn a_range_whose_ports_are_all_taken_is_reported_not_retried_forever() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let cfg = RtcConfig {
            port_range: Some((port, port)),
            ..RtcConfig::default()
        };
        assert!(matches!(
            free_port(&cfg),
            Err(RtcError::NoFreePort(lo, hi)) if lo == port && hi == port
        ));
        drop(taken);
        assert_eq!(free_port(&cfg).unwrap(), port);
    }
}

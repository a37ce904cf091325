//! One RTP session per call leg, driven like a quinn connection: the runtime hands in datagrams
//! and the time, and asks what to send and when to wake up.
//!
//! Sending runs on a fixed 20 ms grid anchored at the session's start, so the packet rate never
//! drifts however late the runtime polls. A packet goes out in every slot — prompt audio or
//! encoded silence — so NAT bindings stay open and the far end's jitter buffer sees one unbroken
//! stream. While bridged, the other leg's frames go out as they arrive
//! ([`RtpSession::relay_to_caller`]) and the grid steps back: it only fills a gap in their flow. Receiving decodes audio for the in-band DTMF detector and the recorder, turns RFC 4733
//! packets into digits and counts loss.

use super::dtmf::Rfc4733Receiver;
use super::dtmf_send::{DtmfSender, DtmfSlot};
use super::g711::{self, Law};
use super::goertzel::InbandDetector;
use super::player::{FrameInfo, Player, Samples};
use super::recorder::StereoRecorder;
use super::{rtp, FRAME_SAMPLES};
use crate::time::Instant;
use core::net::SocketAddr;
use std::collections::VecDeque;
use std::time::Duration;

const FRAME: Duration = Duration::from_millis(20);
const FRAME_MICROS: u64 = 20_000;
/// Most packets sent back to back when the runtime polls late; older slots are skipped.
const MAX_BURST: u64 = 5;
/// A jump in sequence numbers larger than this is a restarted sender, not loss (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// A timestamp gap the recorder fills with silence (lost packets, silence suppression); larger
/// jumps are a discontinuity in the sender's clock and are not filled.
const MAX_FILL: u32 = 2 * super::SAMPLE_RATE;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub law: Law,
    /// The audio payload type from SDP (0 for PCMU, 8 for PCMA).
    pub payload_type: u8,
    /// The telephone-event payload type from SDP, if the peer offered it.
    pub dtmf_payload_type: Option<u8>,
    pub ssrc: u32,
    pub initial_seq: u16,
    pub initial_timestamp: u32,
    /// Where SDP says to send; replaced by the source of the first RTP packet received.
    pub remote: Option<SocketAddr>,
    /// Listen for DTMF tones in the audio, for carriers that do not send RFC 4733.
    pub inband_dtmf: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitSource {
    Rfc4733,
    Inband,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Digit {
        digit: char,
        source: DigitSource,
    },
    /// A `play` item finished, or was cut off by `stop_playback` (`interrupted`).
    PlaybackDone {
        id: u64,
        interrupted: bool,
    },
    /// The recording reached its maximum length; `stop_recording` returns it.
    RecordingDone {
        samples: usize,
    },
}

/// One datagram to send; `bytes` borrows the session's buffer until the next call.
#[derive(Debug, PartialEq, Eq)]
pub struct Transmit<'a> {
    pub to: SocketAddr,
    pub bytes: &'a [u8],
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// RTP packets sent.
    pub sent: u64,
    /// RTP packets accepted from the peer.
    pub received: u64,
    /// Packets missing from the peer's sequence numbers.
    pub lost: u64,
    /// Packets from an address other than the latched peer.
    pub ignored: u64,
    /// Datagrams that were neither RTP nor RTCP.
    pub malformed: u64,
    /// 20 ms send slots dropped because the runtime polled too late.
    pub skipped_slots: u64,
    /// Relayed frames dropped because they stood waiting (a lasting delay) for a whole second.
    pub bridge_trimmed: u64,
}

/// Sequence tracking for one sender, after RFC 3550 appendix A.1 (extended to 64 bits).
#[derive(Debug, Clone, Copy)]
struct Incoming {
    ssrc: u32,
    base: u64,
    max: u64,
    received: u64,
}

impl Incoming {
    fn new(ssrc: u32, seq: u16) -> Self {
        // Start one cycle up so that packets reordered before the first one cannot underflow.
        let ext = (1u64 << 16) + u64::from(seq);
        Incoming {
            ssrc,
            base: ext,
            max: ext,
            received: 1,
        }
    }

    fn lost(&self) -> u64 {
        (self.max - self.base + 1).saturating_sub(self.received)
    }
}

#[derive(Debug)]
struct Recorder {
    samples: Vec<i16>,
    max: usize,
    next_ts: Option<u32>,
    full: bool,
}

#[derive(Debug)]
pub struct RtpSession {
    cfg: SessionConfig,
    /// Anchor of the send grid: slot n is due at `anchor + n * 20 ms`.
    anchor: Instant,
    slot: u64,
    seq: u16,
    ts: u32,
    remote: Option<SocketAddr>,
    latched: bool,
    sent_any: bool,
    last_audio: bool,
    player: Player,
    rfc4733: Rfc4733Receiver,
    inband: Option<InbandDetector>,
    incoming: Option<Incoming>,
    lost_before: u64,
    last_received: Option<Instant>,
    recorder: Option<Recorder>,
    events: VecDeque<MediaEvent>,
    stats: SessionStats,
    frame: [i16; FRAME_SAMPLES],
    payload: Vec<u8>,
    packet: Vec<u8>,
    decoded: Vec<i16>,
    bridge: Option<Bridge>,
    call_rec: Option<StereoRecorder>,
    dtmf_out: DtmfSender,
    heard: Vec<i16>,
    /// When the last packet went out, for the timestamps of frames relayed on arrival.
    last_sent_at: Option<Instant>,
    /// A relayed frame in the caller's law, reused for every frame.
    relay: Vec<u8>,
}

/// Audio relayed between this leg and another (an agent's browser), always as µ-law towards the
/// other leg: a PCMU caller's frames pass untouched, a PCMA caller's are converted sample by sample.
#[derive(Debug, Default)]
struct Bridge {
    /// The caller's latest frame as µ-law, waiting for the runtime to hand it to the other leg
    /// (one buffer reused for every frame: the runtime takes each right after its datagram).
    from_caller: Vec<u8>,
    from_caller_ready: bool,
    /// The other leg's frames that could not go out on arrival (a prompt playing, frames already
    /// waiting), sent to the caller one per 20 ms slot.
    to_caller: VecDeque<Vec<u8>>,
    /// The fewest frames left waiting after a send, over the current window of slots.
    low_water: Option<usize>,
    window_slots: u32,
}

/// Frames queued either way beyond this are dropped oldest first: late audio is worse than lost.
const BRIDGE_DEPTH: usize = 8;

/// Both legs send one frame per 20 ms, so frames that piled up once (a burst after a stall, a
/// phone that talked before the bridge) would stay as a lasting delay. Over each window, frames
/// that never stopped waiting beyond `STANDING_SLACK` (kept to absorb jitter) are dropped.
const STANDING_WINDOW_SLOTS: u32 = 50;
const STANDING_SLACK: usize = 1;

/// After a frame relayed on arrival, the grid waits this long beyond one frame before it sends
/// (silence) on its own: the other leg's jitter or a lost frame is not filled, a pause is.
const RELAY_GAP: Duration = Duration::from_millis(60);

impl Bridge {
    /// The next frame for the caller, trimming a standing backlog once per window.
    fn next_to_caller(&mut self, stats: &mut SessionStats) -> Option<Vec<u8>> {
        let frame = self.to_caller.pop_front();
        let waiting = self.to_caller.len();
        self.low_water = Some(self.low_water.map_or(waiting, |l| l.min(waiting)));
        self.window_slots += 1;
        if self.window_slots >= STANDING_WINDOW_SLOTS {
            let standing = self.low_water.unwrap_or(0).saturating_sub(STANDING_SLACK);
            self.to_caller.drain(..standing.min(self.to_caller.len()));
            stats.bridge_trimmed += standing as u64;
            self.low_water = None;
            self.window_slots = 0;
        }
        frame
    }
}

impl RtpSession {
    /// Starts relaying: from now on the caller's audio is kept for [`Self::poll_bridged_audio`]
    /// and frames pushed with [`Self::push_bridged_audio`] are sent to the caller when no prompt
    /// is playing.
    /// In-band DTMF detection pauses meanwhile: the caller's tones reach the other leg as audio.
    pub fn start_bridge(&mut self) {
        self.bridge = Some(Bridge::default());
    }

    /// Whether frames are relayed to and from another leg: between [`Self::start_bridge`] and
    /// [`Self::stop_bridge`].
    pub fn is_bridged(&self) -> bool {
        self.bridge.is_some()
    }

    /// Whether an event waits for [`Self::poll_event`].
    pub fn has_event(&self) -> bool {
        !self.events.is_empty()
    }

    pub fn stop_bridge(&mut self) {
        self.bridge = None;
        if let Some(det) = self.inband.as_mut() {
            det.reset();
        }
    }

    /// The caller's frame from the last datagram as µ-law (160 bytes), once, if bridged.
    pub fn poll_bridged_audio(&mut self) -> Option<&[u8]> {
        let b = self.bridge.as_mut()?;
        if !std::mem::take(&mut b.from_caller_ready) {
            return None;
        }
        Some(&b.from_caller)
    }

    /// One 20 ms µ-law frame from the other leg, sent to the caller as it arrives: the packet to
    /// send now. Its timestamp advances by the frames' worth of time since the last packet, so a
    /// frame lost on the way stays a gap. While a prompt plays or earlier frames still wait, the
    /// frame queues for the grid instead ([`Self::push_bridged_audio`]) and `None` is returned,
    /// as it is when not bridged (the frame is dropped).
    pub fn relay_to_caller(&mut self, now: Instant, pcmu: &[u8]) -> Option<Transmit<'_>> {
        let waiting = !self.bridge.as_ref()?.to_caller.is_empty();
        if waiting || !self.player.is_idle() {
            self.push_bridged_audio(pcmu);
            return None;
        }
        let mut frame = std::mem::take(&mut self.relay);
        frame.clear();
        match self.cfg.law {
            Law::Mu => frame.extend_from_slice(pcmu),
            law => frame.extend(
                pcmu.iter()
                    .map(|&x| g711::encode(law, g711::decode(Law::Mu, x))),
            ),
        }
        if let Some(last) = self.last_sent_at {
            let frames = ((now - last).as_micros() + u128::from(FRAME_MICROS / 2))
                / u128::from(FRAME_MICROS);
            let skipped = u32::try_from(frames.clamp(1, u128::from(MAX_BURST))).unwrap_or(1) - 1;
            self.ts = self
                .ts
                .wrapping_add(skipped.saturating_mul(FRAME_SAMPLES as u32));
        }
        let to = self.send_slot(now, Some(&frame));
        self.relay = frame;
        // The grid steps back: its next slot only comes if the other leg pauses.
        self.anchor = now + FRAME + RELAY_GAP;
        self.slot = 0;
        Some(Transmit {
            to: to?,
            bytes: &self.packet,
        })
    }

    /// One 20 ms µ-law frame from the other leg, queued for the caller's next free slot.
    pub fn push_bridged_audio(&mut self, pcmu: &[u8]) {
        let law = self.cfg.law;
        let Some(b) = self.bridge.as_mut() else {
            return;
        };
        let frame = if law == Law::Mu {
            pcmu.to_vec()
        } else {
            pcmu.iter()
                .map(|&x| g711::encode(law, g711::decode(Law::Mu, x)))
                .collect()
        };
        if b.to_caller.len() >= BRIDGE_DEPTH {
            b.to_caller.pop_front();
        }
        b.to_caller.push_back(frame);
    }

    pub fn new(cfg: SessionConfig, now: Instant) -> Self {
        RtpSession {
            anchor: now,
            slot: 0,
            seq: cfg.initial_seq,
            ts: cfg.initial_timestamp,
            remote: cfg.remote,
            latched: false,
            sent_any: false,
            last_audio: false,
            player: Player::new(),
            rfc4733: Rfc4733Receiver::new(),
            inband: cfg.inband_dtmf.then(InbandDetector::new),
            incoming: None,
            lost_before: 0,
            last_received: None,
            recorder: None,
            events: VecDeque::new(),
            stats: SessionStats::default(),
            frame: [0; FRAME_SAMPLES],
            payload: Vec::with_capacity(FRAME_SAMPLES),
            packet: Vec::with_capacity(rtp::HEADER_LEN + FRAME_SAMPLES),
            decoded: Vec::with_capacity(FRAME_SAMPLES),
            bridge: None,
            call_rec: None,
            dtmf_out: DtmfSender::default(),
            heard: Vec::with_capacity(FRAME_SAMPLES),
            last_sent_at: None,
            relay: Vec::with_capacity(FRAME_SAMPLES),
            cfg,
        }
    }

    /// Handles one datagram that arrived on this session's RTP port.
    pub fn on_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if rtp::looks_like_rtcp(bytes) {
            return;
        }
        let Ok(pkt) = rtp::parse(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        if self.latched && self.remote != Some(from) {
            self.stats.ignored += 1;
            return;
        }
        // Symmetric RTP: answer where the peer really sends from, which behind NAT is rarely
        // the address its SDP announced.
        self.remote = Some(from);
        self.latched = true;
        self.last_received = Some(now);
        self.count(pkt.ssrc, pkt.sequence);

        if Some(pkt.payload_type) == self.cfg.dtmf_payload_type {
            // A peer that sends RFC 4733 may still leak the tones into its audio; listening to
            // both would report every key twice.
            self.inband = None;
            if let Some(digit) = self.rfc4733.on_packet(pkt.timestamp, pkt.payload) {
                self.events.push_back(MediaEvent::Digit {
                    digit,
                    source: DigitSource::Rfc4733,
                });
            }
            return;
        }
        if pkt.payload_type != self.cfg.payload_type {
            return; // comfort noise and anything else we did not negotiate
        }
        // While bridged the caller talks to a person: in-band detection pauses (their tones reach
        // the other leg as audio), and a µ-law frame that nothing records is relayed undecoded.
        let bridged = self.bridge.is_some();
        let inband = self.inband.as_mut().filter(|_| !bridged);
        let needs_pcm = inband.is_some()
            || self.call_rec.is_some()
            || self.recorder.is_some()
            || (bridged && self.cfg.law != Law::Mu);
        self.decoded.clear();
        if needs_pcm {
            g711::decode_into(self.cfg.law, pkt.payload, &mut self.decoded);
        }
        if let Some(det) = inband {
            for digit in det.push(&self.decoded) {
                self.events.push_back(MediaEvent::Digit {
                    digit,
                    source: DigitSource::Inband,
                });
            }
        }
        if let Some(r) = self.call_rec.as_mut() {
            r.caller_audio(&self.decoded);
        }
        if let Some(b) = self.bridge.as_mut() {
            b.from_caller.clear();
            if self.cfg.law == Law::Mu {
                b.from_caller.extend_from_slice(pkt.payload);
            } else {
                g711::encode_into(Law::Mu, &self.decoded, &mut b.from_caller);
            }
            b.from_caller_ready = true;
        }
        if let Some(rec) = self.recorder.as_mut() {
            if let Some(samples) = record(rec, pkt.timestamp, &self.decoded) {
                self.events.push_back(MediaEvent::RecordingDone { samples });
            }
        }
    }

    fn count(&mut self, ssrc: u32, seq: u16) {
        self.stats.received += 1;
        let inc = match self.incoming.as_mut() {
            Some(inc) if inc.ssrc == ssrc => inc,
            _ => return self.restart_counting(ssrc, seq),
        };
        let ahead = seq.wrapping_sub(inc.max as u16);
        if ahead == 0 || ahead >= 0x8000 {
            // Duplicate or reordered: it fills a hole counted as lost.
            inc.received += 1;
        } else if ahead < MAX_DROPOUT {
            inc.max += u64::from(ahead);
            inc.received += 1;
        } else {
            self.restart_counting(ssrc, seq);
        }
    }

    /// A new sender (SSRC) or a restarted one: keep the loss counted so far, track afresh.
    fn restart_counting(&mut self, ssrc: u32, seq: u16) {
        self.lost_before += self.incoming.map_or(0, |i| i.lost());
        self.incoming = Some(Incoming::new(ssrc, seq));
    }

    /// The next packet to send, if one is due by `now`. Call until it returns `None`, then sleep
    /// until [`poll_timeout`](Self::poll_timeout).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit<'_>> {
        loop {
            let due = self.slot_time(self.slot);
            if now < due {
                return None;
            }
            let overdue =
                u64::try_from((now - due).as_micros() / FRAME.as_micros()).unwrap_or(u64::MAX);
            if overdue >= MAX_BURST {
                // Shift the grid instead of jumping the timestamp: the far end hears a short
                // pause, not a burst and not a skip in the audio.
                let skip = overdue + 1 - MAX_BURST;
                self.anchor += Duration::from_micros(skip.saturating_mul(FRAME_MICROS));
                self.stats.skipped_slots += skip;
            }
            let relayed = if self.player.is_idle() {
                let stats = &mut self.stats;
                self.bridge.as_mut().and_then(|b| b.next_to_caller(stats))
            } else {
                None
            };
            if let Some(to) = self.send_slot(now, relayed.as_deref()) {
                return Some(Transmit {
                    to,
                    bytes: &self.packet,
                });
            }
        }
    }

    /// Fills the next 20 ms slot — a key being sent, else `relayed` (a frame already in the
    /// caller's law; only given while no prompt plays), else the prompt or silence — into the
    /// packet buffer. Returns where it goes; `None` when there is nowhere to send yet (the slot
    /// passes all the same).
    fn send_slot(&mut self, now: Instant, relayed: Option<&[u8]>) -> Option<SocketAddr> {
        let info = if relayed.is_some() {
            FrameInfo {
                audio: true,
                finished: None,
            }
        } else {
            self.player.next_frame(&mut self.frame)
        };
        if let Some(id) = info.finished {
            self.events.push_back(MediaEvent::PlaybackDone {
                id,
                interrupted: false,
            });
        }
        let ts = self.ts;
        self.slot += 1;
        self.ts = self.ts.wrapping_add(FRAME_SAMPLES as u32);
        // A key being sent takes the slot: the audio of this slot is dropped, not delayed.
        let mut event = None;
        let mut tone = false;
        match self.dtmf_out.next_slot(ts) {
            Some(DtmfSlot::Event {
                payload,
                first,
                start_ts,
            }) => {
                self.payload.clear();
                self.payload.extend_from_slice(payload);
                event = Some((first, start_ts));
            }
            Some(DtmfSlot::Tone(pcm)) => {
                self.frame = [0; FRAME_SAMPLES];
                for (d, s) in self.frame.iter_mut().zip(pcm) {
                    *d = *s;
                }
                tone = true;
            }
            None => {}
        }
        let relayed = relayed.filter(|_| event.is_none() && !tone);
        let audio = event.is_none() && (tone || info.audio);
        if let Some(rec) = self.call_rec.as_mut() {
            self.heard.clear();
            if let Some(frame) = relayed.as_ref() {
                g711::decode_into(self.cfg.law, frame, &mut self.heard);
            } else if audio {
                self.heard.extend_from_slice(&self.frame);
            }
            rec.slot(Some(&self.heard));
        }
        let was_audio = std::mem::replace(&mut self.last_audio, audio);
        let to = self.remote?;
        let (pt, pkt_ts, marker) = match (event, self.cfg.dtmf_payload_type) {
            (Some((first, start_ts)), Some(pt)) => (pt, start_ts, first),
            _ => {
                self.payload.clear();
                if let Some(frame) = relayed {
                    self.payload.extend_from_slice(frame);
                } else if audio {
                    g711::encode_into(self.cfg.law, &self.frame, &mut self.payload);
                } else {
                    self.payload.resize(FRAME_SAMPLES, self.cfg.law.silence());
                }
                let marker = !self.sent_any || (audio && !was_audio);
                (self.cfg.payload_type, ts, marker)
            }
        };
        rtp::write(
            pt,
            marker,
            self.seq,
            pkt_ts,
            self.cfg.ssrc,
            &self.payload,
            &mut self.packet,
        );
        self.seq = self.seq.wrapping_add(1);
        self.sent_any = true;
        self.stats.sent += 1;
        self.last_sent_at = Some(now);
        Some(to)
    }

    /// When the next packet is due.
    pub fn poll_timeout(&self) -> Instant {
        self.slot_time(self.slot)
    }

    fn slot_time(&self, slot: u64) -> Instant {
        self.anchor + Duration::from_micros(slot.saturating_mul(FRAME_MICROS))
    }

    /// Queues prompts after whatever is playing; `PlaybackDone { id }` follows when they end.
    pub fn play(&mut self, id: u64, prompts: Vec<Samples>) {
        self.player.play(id, prompts);
    }

    /// Barge-in: cuts off the playing item and drops the queued ones, each reported as
    /// `PlaybackDone { interrupted: true }`. Silence follows.
    pub fn stop_playback(&mut self) {
        for id in self.player.stop() {
            self.events.push_back(MediaEvent::PlaybackDone {
                id,
                interrupted: true,
            });
        }
    }

    pub fn is_playing(&self) -> bool {
        !self.player.is_idle()
    }

    /// Starts keeping the caller's audio, up to `max_samples` (8 kHz), discarding any recording
    /// in progress. Lost packets and silence suppression are filled with silence so the
    /// recording keeps real time.
    pub fn start_recording(&mut self, max_samples: usize) {
        self.recorder = Some(Recorder {
            samples: Vec::with_capacity(max_samples.min(60 * super::SAMPLE_RATE as usize)),
            max: max_samples,
            next_ts: None,
            full: false,
        });
    }

    /// Ends the recording and hands over its samples (empty if none was running).
    pub fn stop_recording(&mut self) -> Vec<i16> {
        self.recorder.take().map(|r| r.samples).unwrap_or_default()
    }

    /// Starts the two-channel call recording (see [`StereoRecorder`]), up to `max_samples` per
    /// channel; one already running carries on.
    pub fn start_call_recording(&mut self, max_samples: usize) {
        if self.call_rec.is_none() {
            self.call_rec = Some(StereoRecorder::new(max_samples));
        }
    }

    pub fn is_call_recording(&self) -> bool {
        self.call_rec.is_some()
    }

    /// Ends the call recording: interleaved caller (left) / heard (right) samples.
    pub fn stop_call_recording(&mut self) -> Option<Vec<i16>> {
        self.call_rec.take().map(StereoRecorder::into_samples)
    }

    /// Sends one key towards the peer: RFC 4733 events when it negotiated telephone-event,
    /// otherwise the key's tones in the audio. Keys queue behind each other. False for a key
    /// that is not DTMF or a full queue.
    pub fn send_dtmf(&mut self, digit: char, duration: Duration) -> bool {
        let ms = u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
        self.dtmf_out
            .push(digit, ms, self.cfg.dtmf_payload_type.is_some())
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// Where packets go: the latched peer, else the SDP address.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// A new SDP address (re-INVITE): send there, and latch again on the next packet received.
    pub fn set_remote(&mut self, remote: Option<SocketAddr>) {
        self.remote = remote;
        self.latched = false;
    }

    /// When the last RTP packet was accepted, for media timeouts.
    pub fn last_received(&self) -> Option<Instant> {
        self.last_received
    }

    pub fn stats(&self) -> SessionStats {
        SessionStats {
            lost: self.lost_before + self.incoming.map_or(0, |i| i.lost()),
            ..self.stats
        }
    }
}

/// Appends one packet's audio; returns the length once the recording becomes full.
fn record(rec: &mut Recorder, ts: u32, pcm: &[i16]) -> Option<usize> {
    if rec.full {
        return None;
    }
    if let Some(expected) = rec.next_ts {
        let gap = ts.wrapping_sub(expected);
        if gap >= 0x8000_0000 {
            return None; // late or duplicate: its place in the recording has passed
        }
        if gap <= MAX_FILL {
            let fill = (gap as usize).min(rec.max.saturating_sub(rec.samples.len()));
            rec.samples.resize(rec.samples.len() + fill, 0);
        }
    }
    let room = rec.max.saturating_sub(rec.samples.len());
    rec.samples
        .extend_from_slice(pcm.get(..room.min(pcm.len())).unwrap_or(&[]));
    rec.next_ts = Some(ts.wrapping_add(pcm.len() as u32));
    if rec.samples.len() >= rec.max {
        rec.full = true;
        return Some(rec.samples.len());
    }
    None
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "session_rec_tests.rs"]
mod rec_tests;

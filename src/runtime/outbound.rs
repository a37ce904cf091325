//! An outbound call leg (UAC) as a task: it owns a fresh RTP socket, carries out the decisions of
//! the pure [`crate::sip::uac::Uac`], and exchanges PCMU frames with whoever holds its
//! [`LegMedia`]. Responses and in-dialog requests reach it through the SIP task's router, keyed by
//! the leg's Call-ID ([`SipCmd::AddLeg`]).
//!
//! A holder that relays every frame (a bridged call) takes the socket over instead
//! ([`LegMedia::into_direct`]): it reads and writes the leg's RTP itself, so a frame crosses no
//! channel and wakes no second task; the leg task keeps the signalling (a re-INVITE that moves
//! the far end or holds the call updates the state both share).
//!
//! Used for agents' SIP phones today; callbacks and trunk transfers are the same leg.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use std::net::UdpSocket;
use tokio::sync::mpsc;

use crate::media::dtmf::Rfc4733Receiver;
use crate::media::dtmf_send::{DtmfSender, DtmfSlot};
use crate::media::g711::{self, Law};
use crate::media::rtp;
use crate::sip::dialog::{invite, OutboundCall};
use crate::sip::digest::Credentials;
use crate::sip::sdp::{self, AudioCodec};
use crate::sip::uac::{Action, LegEvent, Uac};
use crate::sip::{Peer, Transport};

use super::call_task::CallIn;
use super::media_engine::RelayLeg;
use super::sip_task::{random_tag, SipCmd};
use super::Shared;

/// Bound on queued frames each way: a stalled consumer loses audio, not memory.
const MAX_QUEUED_FRAMES: usize = 50;

/// What to call and how.
#[derive(Clone)]
pub struct OutboundRequest {
    pub target: rsip::Uri,
    pub peer: Peer,
    pub from_user: String,
    pub from_display: Option<String>,
    /// `(user, password)` for a 401/407; never logged.
    pub credentials: Option<(String, String)>,
    pub ring_timeout: Duration,
    pub extra_headers: Vec<(String, String)>,
}

impl std::fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundRequest")
            .field("target", &self.target.to_string())
            .field("peer", &self.peer)
            .field("from_user", &self.from_user)
            .finish_non_exhaustive()
    }
}

/// What the holder of a leg can ask of it.
#[derive(Debug)]
pub enum LegCtl {
    /// One 20 ms PCMU frame towards the far end.
    Audio(Vec<u8>),
    /// CANCEL while ringing, BYE once answered.
    Hangup,
    /// A key press towards the far end: RFC 4733 if it took telephone-event, else the tones,
    /// sent in the slots of the frames that follow.
    Dtmf(char),
    /// The holder reads the RTP socket itself from now on ([`LegMedia::into_direct`]).
    Detach,
}

/// What the far end did besides talking: a desk phone's hold button, its keypad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegSignal {
    /// A re-INVITE put the call on hold (`true`: sendonly, inactive or 0.0.0.0) or resumed it.
    Hold(bool),
    /// A key pressed on the far end's keypad (RFC 4733), once per press.
    Dtmf(char),
}

/// The audio half of a leg, handed to the call it is bridged to.
#[derive(Debug)]
pub struct LegMedia {
    /// PCMU frames from the far end; closed when the leg ends.
    pub audio_in: mpsc::Receiver<Vec<u8>>,
    /// Hold and keypad from the far end; whoever does not care may leave it unread.
    pub signals: mpsc::UnboundedReceiver<LegSignal>,
    pub ctl: mpsc::UnboundedSender<LegCtl>,
    /// Frames sent with [`Self::send_pcmu`] that the leg has not taken yet.
    pub audio_out_backlog: Arc<AtomicUsize>,
    rtp: Arc<LegRtp>,
}

impl LegMedia {
    /// One frame towards the far end. Beyond `MAX_QUEUED_FRAMES` not yet taken by a starved leg
    /// the frame is dropped: the bench saw seconds of audio (and memory) pile up otherwise.
    pub fn send_pcmu(&self, frame: &[u8]) {
        if self.audio_out_backlog.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED_FRAMES {
            self.audio_out_backlog.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        if self.ctl.send(LegCtl::Audio(frame.to_vec())).is_err() {
            self.audio_out_backlog.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Takes the leg's audio over: from now on the holder receives and sends its RTP itself.
    /// What the far end sent before is stale (relayed, it would be a lasting delay): dropped.
    pub fn into_direct(self) -> DirectLeg {
        let _ = self.ctl.send(LegCtl::Detach);
        DirectLeg {
            rtp: self.rtp,
            ended: self.audio_in,
            signals: self.signals,
            ctl: self.ctl,
        }
    }
}

/// Bytes in one 20 ms G.711 frame.
const FRAME_BYTES: usize = 160;

/// The leg's RTP socket and the state its packets are stamped and read with, shared by the leg
/// task (a re-INVITE moves the far end, holds the call, changes telephone-event) and a
/// [`DirectLeg`] holder.
#[derive(Debug)]
struct LegRtp {
    socket: UdpSocket,
    /// Set once the far end answered with a usable session.
    media: Mutex<Option<Media>>,
}

/// What one datagram from the far end was.
pub enum LegPacket<'a> {
    /// A frame of audio as µ-law.
    Audio(&'a [u8]),
    /// A key pressed on the far end's keypad (RFC 4733), once per press.
    Dtmf(char),
}

impl LegRtp {
    fn media(&self) -> MutexGuard<'_, Option<Media>> {
        self.media.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One frame towards the far end, stamped in place into the leg's reused packet buffer;
    /// nothing while the far end holds the call.
    fn send_frame(&self, frame: &[u8]) {
        let mut media = self.media();
        if let Some(m) = media.as_mut().filter(|m| !m.held) {
            m.write_frame(frame);
            let _ = self.socket.send_to(&m.out, m.remote);
        }
    }

    /// Reads one datagram: its audio (an A-law far end's converted into `conv`) or its key.
    fn read<'a>(&self, bytes: &'a [u8], conv: &'a mut Vec<u8>) -> Option<LegPacket<'a>> {
        let pkt = rtp::parse(bytes).ok()?;
        let mut media = self.media();
        let m = media.as_mut()?;
        if Some(pkt.payload_type) == m.dtmf_pt {
            return m
                .dtmf
                .on_packet(pkt.timestamp, pkt.payload)
                .map(LegPacket::Dtmf);
        }
        if pkt.payload_type != m.pt {
            return None;
        }
        match m.law {
            Law::Mu => Some(LegPacket::Audio(pkt.payload)),
            Law::A => {
                conv.clear();
                conv.extend(
                    pkt.payload
                        .iter()
                        .map(|b| g711::encode(Law::Mu, g711::decode(Law::A, *b))),
                );
                Some(LegPacket::Audio(conv))
            }
        }
    }
}

/// A leg whose audio its holder has the media threads relay on the leg's own socket
/// ([`LegMedia::into_direct`], [`Self::relay_leg`]).
#[derive(Debug)]
pub struct DirectLeg {
    rtp: Arc<LegRtp>,
    /// Closes when the leg ends (frames still queued from before are dropped).
    ended: mpsc::Receiver<Vec<u8>>,
    signals: mpsc::UnboundedReceiver<LegSignal>,
    ctl: mpsc::UnboundedSender<LegCtl>,
}

/// What a direct leg's far end did besides sending audio.
#[derive(Debug)]
pub enum DirectIn {
    Signal(LegSignal),
    /// The leg ended.
    Ended,
}

impl DirectLeg {
    /// The next hold or key change, or the end of the leg. Cancel-safe.
    pub async fn recv(&mut self) -> DirectIn {
        loop {
            tokio::select! {
                Some(s) = self.signals.recv() => return DirectIn::Signal(s),
                f = self.ended.recv() => {
                    if f.is_none() {
                        return DirectIn::Ended;
                    }
                }
            }
        }
    }

    /// One µ-law frame towards the far end, sent now.
    pub fn send_pcmu(&self, frame: &[u8]) {
        self.rtp.send_frame(frame);
    }

    /// The leg's RTP for the media threads to relay ([`super::media_engine::MediaHandle::set_relay`]).
    pub fn relay_leg(&self) -> Arc<dyn RelayLeg> {
        self.rtp.clone()
    }
}

impl AsRef<UdpSocket> for LegRtp {
    fn as_ref(&self) -> &UdpSocket {
        &self.socket
    }
}

impl RelayLeg for LegRtp {
    fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    fn read<'a>(&self, bytes: &'a [u8], conv: &'a mut Vec<u8>) -> Option<LegPacket<'a>> {
        LegRtp::read(self, bytes, conv)
    }

    fn send_frame(&self, frame: &[u8]) {
        LegRtp::send_frame(self, frame);
    }
}

/// Nobody relays the leg any more: it hangs up (the leg task no longer reads its socket, so it
/// would not notice otherwise).
impl Drop for DirectLeg {
    fn drop(&mut self) {
        let _ = self.ctl.send(LegCtl::Hangup);
    }
}

/// A placed leg: its events, its media (taken when it is bridged) and its control channel.
pub struct OutboundLeg {
    pub call_id: String,
    pub events: mpsc::UnboundedReceiver<LegEvent>,
    pub media: Option<LegMedia>,
    pub ctl: mpsc::UnboundedSender<LegCtl>,
}

impl OutboundLeg {
    /// Places the call; events arrive on `events`. Fails only when no RTP port is free.
    pub fn place(
        shared: Arc<Shared>,
        sip: mpsc::UnboundedSender<SipCmd>,
        local_sip: SocketAddr,
        req: OutboundRequest,
    ) -> std::io::Result<OutboundLeg> {
        let socket = shared.ports.bind(shared.local_ip)?;
        let io = Arc::new(LegRtp {
            socket,
            media: Mutex::new(None),
        });
        let call_id = format!("{}@switchboard", random_tag());
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::channel(MAX_QUEUED_FRAMES);
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        let (sip_tx, sip_rx) = mpsc::unbounded_channel();
        let (sig_tx, sig_rx) = mpsc::unbounded_channel();
        let _ = sip.send(SipCmd::AddLeg {
            call_id: call_id.clone(),
            tx: sip_tx,
        });
        let task = LegTask {
            shared,
            sip,
            local_sip,
            call_id: call_id.clone(),
            req,
            events: ev_tx,
            audio_in: in_tx,
            signals: sig_tx,
            ctl: ctl_rx,
            audio_out_backlog: backlog.clone(),
            inbox: sip_rx,
        };
        tokio::spawn(task.run(io.clone()));
        Ok(OutboundLeg {
            call_id,
            events: ev_rx,
            media: Some(LegMedia {
                audio_in: in_rx,
                signals: sig_rx,
                ctl: ctl_tx.clone(),
                audio_out_backlog: backlog,
                rtp: io,
            }),
            ctl: ctl_tx,
        })
    }
}

struct LegTask {
    shared: Arc<Shared>,
    sip: mpsc::UnboundedSender<SipCmd>,
    local_sip: SocketAddr,
    call_id: String,
    req: OutboundRequest,
    events: mpsc::UnboundedSender<LegEvent>,
    audio_in: mpsc::Sender<Vec<u8>>,
    signals: mpsc::UnboundedSender<LegSignal>,
    ctl: mpsc::UnboundedReceiver<LegCtl>,
    audio_out_backlog: Arc<AtomicUsize>,
    inbox: mpsc::UnboundedReceiver<CallIn>,
}

/// Our side of the session description, for answers to re-offers.
#[derive(Clone, Copy)]
struct SdpAt {
    ip: std::net::IpAddr,
    port: u16,
    session_id: u64,
    version: u64,
}

/// Where RTP goes once the far end answered, and how to stamp it.
#[derive(Debug)]
struct Media {
    remote: SocketAddr,
    law: Law,
    codec: AudioCodec,
    pt: u8,
    dtmf_pt: Option<u8>,
    dtmf: Rfc4733Receiver,
    dtmf_out: DtmfSender,
    /// The far end holds the call: send nothing until it resumes.
    held: bool,
    ssrc: u32,
    seq: u16,
    ts: u32,
    /// The packet being sent, and a frame converted to A-law or a key's tone: reused buffers.
    out: Vec<u8>,
    conv: Vec<u8>,
}

/// How long a key relayed to the far end is held.
const DTMF_MS: u32 = 120;

impl Media {
    /// One 20 ms send slot into `out`: a key being sent takes it (its event, or its tone),
    /// else the frame of µ-law audio in the far end's law. No allocation.
    fn write_frame(&mut self, frame: &[u8]) {
        let samples = u32::try_from(frame.len()).unwrap_or(160);
        let (seq, ts, ssrc) = (self.seq, self.ts, self.ssrc);
        match (self.dtmf_out.next_slot(ts), self.dtmf_pt) {
            (
                Some(DtmfSlot::Event {
                    payload,
                    first,
                    start_ts,
                }),
                Some(dpt),
            ) => rtp::write(dpt, first, seq, start_ts, ssrc, payload, &mut self.out),
            (Some(DtmfSlot::Tone(tone)), _) => {
                self.conv.clear();
                g711::encode_into(self.law, tone, &mut self.conv);
                rtp::write(self.pt, false, seq, ts, ssrc, &self.conv, &mut self.out);
            }
            _ => match self.law {
                Law::Mu => rtp::write(self.pt, false, seq, ts, ssrc, frame, &mut self.out),
                Law::A => {
                    self.conv.clear();
                    self.conv.extend(
                        frame
                            .iter()
                            .map(|b| g711::encode(Law::A, g711::decode(Law::Mu, *b))),
                    );
                    rtp::write(self.pt, false, seq, ts, ssrc, &self.conv, &mut self.out);
                }
            },
        }
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(samples);
    }
}

impl LegTask {
    async fn run(mut self, io: Arc<LegRtp>) {
        let socket = &io.socket;
        let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
        let session_id: u64 = rand::random::<u32>().into();
        let mut sdp_version = session_id;
        let offer = sdp::offer(
            self.shared.local_ip,
            port,
            session_id,
            &[AudioCodec::Pcmu, AudioCodec::Pcma],
        );
        let tp = match self.req.peer.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        let local = self.local_sip;
        let from_uri = format!("sip:{}@{local}", sanitize_user(&self.req.from_user));
        let target = self.req.target.to_string();
        let contact = rsip::Uri::try_from(format!("sip:switchboard@{local}{tp}").as_str());
        let Ok(contact) = contact else {
            let _ = self.events.send(LegEvent::Failed(500));
            self.ended();
            return;
        };
        let from_tag = random_tag();
        let mut request = invite(&OutboundCall {
            request_uri: self.req.target.clone(),
            from_uri: &from_uri,
            from_display: self.req.from_display.as_deref(),
            to_uri: &target,
            call_id: &self.call_id,
            from_tag: &from_tag,
            contact,
            cseq: 1,
            body: Some(("application/sdp", offer.as_bytes())),
        });
        for (name, value) in &self.req.extra_headers {
            request
                .headers
                .push(rsip::Header::Other(name.clone(), value.clone()));
        }
        let clock = self.shared.clock;
        let mut uac = Uac::new(request, self.req.peer, clock.now(), self.req.ring_timeout);
        let mut buf = vec![0u8; 2048];
        let mut conv = Vec::with_capacity(FRAME_BYTES);
        // Read here until the holder relays the socket itself (LegCtl::Detach).
        let mut reader = match super::udp::register_reads(&io) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(error = %e, "an outbound leg's RTP socket cannot be read");
                None
            }
        };
        loop {
            while let Some(action) = uac.poll_action() {
                self.act(action, &uac, &io);
            }
            if uac.is_done() {
                break;
            }
            let deadline = uac.poll_timeout().map(|t| clock.to_tokio(t));
            tokio::select! {
                msg = self.inbox.recv() => {
                    let now = clock.now();
                    match msg {
                        Some(CallIn::Response(r)) => {
                            let creds = self.req.credentials.as_ref().map(|(u, p)| Credentials { username: u, password: p });
                            uac.on_response(now, &r, creds.as_ref(), &random_tag());
                        }
                        Some(CallIn::Request { key, request }) if request.method == rsip::Method::Invite => {
                            sdp_version += 1;
                            let at = SdpAt { ip: self.shared.local_ip, port, session_id, version: sdp_version };
                            let response = self.reinvite(&mut uac, &request, &io, &offer, at);
                            let _ = self.sip.send(SipCmd::Respond { key, response });
                        }
                        Some(CallIn::Request { key, request }) => {
                            let status = uac.on_request(&request);
                            let response = crate::sip::message::response_to(&request, status, None);
                            let _ = self.sip.send(SipCmd::Respond { key, response });
                        }
                        Some(CallIn::RequestTimeout) => uac.request_timeout(),
                        Some(_) => {}
                        None => break,
                    }
                }
                ctl = self.ctl.recv() => match ctl {
                    Some(LegCtl::Audio(frame)) => {
                        self.audio_out_backlog.fetch_sub(1, Ordering::Relaxed);
                        io.send_frame(&frame);
                    }
                    Some(LegCtl::Dtmf(d)) => {
                        if let Some(m) = io.media().as_mut() {
                            let rfc4733 = m.dtmf_pt.is_some();
                            m.dtmf_out.push(d, DTMF_MS, rfc4733);
                        }
                    }
                    Some(LegCtl::Detach) => reader = None,
                    Some(LegCtl::Hangup) | None => uac.hangup(clock.now()),
                },
                r = super::udp::recv_registered(&reader, &mut buf) => {
                    let Ok((n, _from)) = r else { continue };
                    match buf.get(..n).and_then(|b| io.read(b, &mut conv)) {
                        Some(LegPacket::Dtmf(d)) => {
                            let _ = self.signals.send(LegSignal::Dtmf(d));
                        }
                        Some(LegPacket::Audio(frame)) => {
                            // A full queue means a slow listener: drop the frame. A closed
                            // one means nobody will ever bridge this leg: hang it up.
                            if let Err(mpsc::error::TrySendError::Closed(_)) = self.audio_in.try_send(frame.to_vec()) {
                                uac.hangup(clock.now());
                            }
                        }
                        None => {}
                    }
                }
                _ = super::clock::sleep_until(deadline) => uac.on_timeout(clock.now()),
            }
        }
        self.ended();
    }

    fn act(&mut self, action: Action, uac: &Uac, io: &LegRtp) {
        match action {
            Action::Invite(request) | Action::Request(request) => {
                let _ = self.sip.send(SipCmd::Request {
                    call_id: self.call_id.clone(),
                    peer: uac.peer(),
                    request,
                });
            }
            Action::Ack(request) => {
                let _ = self.sip.send(SipCmd::Ack {
                    peer: uac.peer(),
                    request,
                });
            }
            Action::Cancel => {
                let _ = self.sip.send(SipCmd::Cancel {
                    call_id: self.call_id.clone(),
                });
            }
            Action::Report(ev) => {
                if let LegEvent::Answered { sdp } = &ev {
                    match sdp::negotiate_answer(sdp) {
                        Ok(n) => {
                            *io.media() = n.remote_rtp.map(|remote| Media {
                                remote,
                                law: match n.codec {
                                    AudioCodec::Pcmu => Law::Mu,
                                    AudioCodec::Pcma => Law::A,
                                },
                                codec: n.codec,
                                pt: n.payload_type,
                                dtmf_pt: n.dtmf_payload_type,
                                dtmf: Rfc4733Receiver::new(),
                                dtmf_out: DtmfSender::default(),
                                held: false,
                                ssrc: rand::random(),
                                seq: rand::random(),
                                ts: rand::random(),
                                out: Vec::with_capacity(rtp::HEADER_LEN + FRAME_BYTES),
                                conv: Vec::with_capacity(FRAME_BYTES),
                            });
                        }
                        Err(e) => {
                            tracing::info!(error = %e, "the far end's SDP answer is unusable")
                        }
                    }
                }
                tracing::debug!(event = ?ev, "outbound leg");
                let _ = self.events.send(ev);
            }
        }
    }

    /// Answers a re-INVITE from the far end: a new offer gets our answer (same codec, new
    /// version) and may hold or resume the call or move its media; an offerless one gets our
    /// session again as the offer. The holder of the media hears of hold changes.
    fn reinvite(
        &self,
        uac: &mut Uac,
        request: &rsip::Request,
        io: &LegRtp,
        our_offer: &str,
        at: SdpAt,
    ) -> rsip::Response {
        let refuse = |status| crate::sip::message::response_to(request, status, None);
        let mut media = io.media();
        let Some(m) = media.as_mut() else {
            return refuse(if uac.is_done() { 481 } else { 491 });
        };
        let offer = std::str::from_utf8(&request.body).unwrap_or_default();
        if offer.trim().is_empty() {
            // Offerless re-INVITE (a session refresh): offer what we had; its answer comes in the
            // ACK, and the codec in use stays.
            return uac
                .reinvite_response(request, Some(our_offer))
                .unwrap_or_else(refuse);
        }
        let (n, answer) =
            match sdp::reanswer(offer, at.ip, at.port, at.session_id, at.version, m.codec) {
                Ok(a) => a,
                Err(e) => {
                    tracing::info!(error = %e, "a re-offer we cannot take mid-call");
                    return refuse(488);
                }
            };
        let response = match uac.reinvite_response(request, Some(&answer)) {
            Ok(r) => r,
            Err(status) => return refuse(status),
        };
        if let Some(remote) = n.remote_rtp {
            m.remote = remote;
        }
        m.dtmf_pt = n.dtmf_payload_type.or(m.dtmf_pt);
        let held = n.on_hold();
        if held != m.held {
            m.held = held;
            tracing::info!(held, "the far end changed hold");
            let _ = self.signals.send(LegSignal::Hold(held));
        }
        response
    }

    fn ended(&self) {
        let _ = self.sip.send(SipCmd::CallEnded {
            call_id: self.call_id.clone(),
        });
    }
}

/// A caller's number as the user part of our From: anything but digits, letters and `+-._` goes.
fn sanitize_user(user: &str) -> String {
    let s: String = user
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'))
        .take(64)
        .collect();
    if s.is_empty() {
        "anonymous".into()
    } else {
        s
    }
}

#[cfg(test)]
mod backlog_tests {
    use super::*;

    #[tokio::test]
    async fn audio_for_a_starved_leg_is_dropped_beyond_a_second_not_queued_without_bound() {
        let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel();
        let (_in_tx, in_rx) = mpsc::channel(1);
        let (_sig_tx, sig_rx) = mpsc::unbounded_channel();
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
        let media = LegMedia {
            audio_in: in_rx,
            signals: sig_rx,
            ctl: ctl_tx,
            audio_out_backlog: Arc::new(AtomicUsize::new(0)),
            rtp: Arc::new(LegRtp {
                socket,
                media: Mutex::new(None),
            }),
        };
        for _ in 0..500 {
            media.send_pcmu(&[0xFF; 160]);
        }
        let mut queued = 0;
        while let Ok(LegCtl::Audio(_)) = ctl_rx.try_recv() {
            queued += 1;
            // What the leg does as it takes each frame.
            media.audio_out_backlog.fetch_sub(1, Ordering::Relaxed);
        }
        assert_eq!(queued, MAX_QUEUED_FRAMES);
        // Once the leg catches up, audio flows again.
        media.send_pcmu(&[0xFF; 160]);
        assert!(matches!(ctl_rx.try_recv(), Ok(LegCtl::Audio(_))));
    }
}

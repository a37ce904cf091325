//! One task per call: the RTP socket, the media session, the call controller and the blocking jobs
//! (PIN checks, CRM look-ups, writing a voicemail) that the controller waits for.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::acd::CallRequest;
use crate::auth::{AccountKey as AuthKey, Verdict};
use crate::call::{CallController, Command, NewCall};
use crate::cdr::Direction;
use crate::rtc::{RtcEvent, RtcLeg};

use super::acd_task::{AcdCmd, AgentMsg};
use super::transfer::{TransferIn, TransferSide};
use crate::ivr::{AccountKey, Flow, PinOutcome, PromptIndex};
use crate::media::g711::Law;
use crate::media::session::{DigitSource, MediaEvent, RtpSession, SessionConfig};

use super::media_engine::{CallMedia, AGENT_DTMF};
use super::udp::{recv_registered, register_reads, SocketFd};
use crate::sip::dialog::Dialog;
use crate::sip::sdp::{AudioCodec, Negotiated};
use crate::sip::transaction::ServerTxKey;
use crate::sip::uac::LegEvent;
use crate::sip::{Peer, Transport};

use super::outbound::{DirectIn, DirectLeg, LegSignal};
use super::sip_task::{random_tag, SipCmd};
use super::widget_call::Phase;
use super::Shared;

/// What the SIP task forwards to a call.
#[derive(Debug)]
pub enum CallIn {
    Ack,
    Cancelled(ServerTxKey),
    Request {
        key: ServerTxKey,
        request: rsip::Request,
    },
    Response(rsip::Response),
    RequestTimeout,
    AckTimeout,
    // From the ACD task:
    Enqueued {
        music: Option<PathBuf>,
        announce_every: Option<std::time::Duration>,
        exit_key: Option<char>,
    },
    QueueTimeout(String),
    Position(usize),
    Requeued {
        queue: String,
        why: String,
    },
    /// The agent handed the call on: to `queue`, and to `agent` in it when one was named.
    Transferred {
        from_agent: String,
        queue: String,
        agent: Option<String>,
    },
    /// An agent clicked answer: their browser's SDP offer, and their console to answer to.
    AgentAnswer {
        agent_id: String,
        sdp: String,
        agent: mpsc::UnboundedSender<AgentMsg>,
    },
    /// A SIP agent's phone answered: its RTP leg's audio, and their stand-in console.
    AgentAnswerSip {
        agent_id: String,
        media: super::outbound::LegMedia,
        agent: mpsc::UnboundedSender<AgentMsg>,
    },
    AgentHungUp,
    Hold(bool),
    AgentDtmf(char),
}

pub struct NewCallTask {
    pub shared: Arc<Shared>,
    pub sip: mpsc::UnboundedSender<SipCmd>,
    pub inbox: mpsc::UnboundedReceiver<CallIn>,
    pub invite_key: ServerTxKey,
    pub invite: rsip::Request,
    pub peer: Peer,
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub flow: Arc<Flow>,
    pub prompts: Arc<PromptIndex>,
    pub negotiated: Negotiated,
    pub answer_sdp: String,
    pub rtp: std::net::UdpSocket,
    pub local_sip: SocketAddr,
    /// This call's own inbox, handed to the ACD so it can reach the call.
    pub self_tx: mpsc::UnboundedSender<CallIn>,
    pub direction: Direction,
    /// The widget call this is (a browser caller through the gateway): told how the call goes.
    pub widget: Option<String>,
}

enum JobDone {
    Pin(u64, PinOutcome),
    Lookup(u64, Result<serde_json::Value, String>),
    /// A `record` step's file: written (its path), nothing to write, or the write failed (the
    /// file name and why).
    Recording(u64, Result<Option<String>, (String, String)>),
    /// A transfer target looked up (`Ok(None)`: nothing to look up).
    TransferTarget {
        target: String,
        resolved: Result<Option<std::net::SocketAddr>, String>,
    },
    AgentLeg {
        agent_id: String,
        agent: mpsc::UnboundedSender<AgentMsg>,
        result: Result<(RtcLeg, String), String>,
    },
}

/// The agent's side of a bridged call.
struct AgentSide {
    leg: AgentLeg,
    agent: mpsc::UnboundedSender<AgentMsg>,
    relaying: bool,
}

/// What the agent's leg reports: the browser's events, or a desk phone's hold button.
enum AgentEvent {
    Rtc(RtcEvent),
    Hold(bool),
}

/// How the agent is reached: a browser (WebRTC) or a SIP phone (an outbound RTP leg that the
/// media threads relay while the call is bridged).
enum AgentLeg {
    WebRtc(RtcLeg),
    Sip(DirectLeg),
}

impl AgentLeg {
    fn send_pcmu(&self, frame: &[u8]) {
        match self {
            AgentLeg::WebRtc(l) => {
                let _ = l.send_pcmu(frame);
            }
            AgentLeg::Sip(d) => d.send_pcmu(frame),
        }
    }

    async fn recv(&mut self) -> Option<AgentEvent> {
        match self {
            AgentLeg::WebRtc(l) => l.recv().await.map(AgentEvent::Rtc),
            AgentLeg::Sip(d) => Some(match d.recv().await {
                DirectIn::Signal(LegSignal::Hold(on)) => AgentEvent::Hold(on),
                DirectIn::Signal(LegSignal::Dtmf(k)) => AgentEvent::Rtc(RtcEvent::Dtmf(k)),
                DirectIn::Ended => AgentEvent::Rtc(RtcEvent::Closed),
            }),
        }
    }

    async fn close(self) {
        match self {
            AgentLeg::WebRtc(l) => l.close().await,
            // Dropping the leg hangs it up.
            AgentLeg::Sip(d) => drop(d),
        }
    }
}

/// A key from the agent (their console's keypad, their phone or media stream) to the caller as
/// RFC 4733 or tones.
fn agent_dtmf(media: &CallMedia, digit: char, from: &'static str) {
    let sent = media
        .session()
        .as_mut()
        .is_some_and(|s| s.send_dtmf(digit, AGENT_DTMF));
    tracing::debug!(sent, from, "agent DTMF towards the caller");
}

/// A frame from the agent's or the transfer target's leg, to the caller as it arrives.
fn relay_to_caller(media: &CallMedia, now: crate::time::Instant, frame: &[u8]) {
    if let Some(tx) = media
        .session()
        .as_mut()
        .and_then(|s| s.relay_to_caller(now, frame))
    {
        let _ = media.socket.send_to(tx.bytes, tx.to);
    }
}

async fn next_agent_event(side: &mut Option<AgentSide>) -> Option<AgentEvent> {
    match side.as_mut() {
        Some(s) => s.leg.recv().await,
        None => std::future::pending().await,
    }
}

/// Id for the beep before a recording: its PlaybackDone is ours, not the interpreter's.
const BEEP_ID: u64 = u64::MAX;

pub async fn run(t: NewCallTask) {
    use tracing::Instrument;
    let span = tracing::info_span!("call", call_id = %t.call_id);
    let shared = t.shared.clone();
    let call_id = t.call_id.clone();
    let sip = t.sip.clone();
    call(t).instrument(span).await;
    shared.active_calls.fetch_sub(1, Ordering::SeqCst);
    let _ = sip.send(SipCmd::CallEnded { call_id });
}

/// Tells the widget call behind this call (if it is one) how it goes.
fn tell(shared: &Shared, widget: &Option<String>, phase: Phase) {
    if let Some(w) = widget {
        shared.widget_calls.set(w, phase);
    }
}

fn contact_uri(local: SocketAddr, transport: Transport) -> Option<rsip::Uri> {
    let s = match transport {
        Transport::Udp => format!("sip:switchboard@{local}"),
        Transport::Tcp => format!("sip:switchboard@{local};transport=tcp"),
    };
    rsip::Uri::try_from(s.as_str()).ok()
}

/// `Signal=5` (application/dtmf-relay) or a bare `5` (application/dtmf).
fn info_digit(body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body).ok()?;
    for line in text.lines() {
        let line = line.trim();
        if let Some((k, v)) = line.split_once('=') {
            if k.trim().eq_ignore_ascii_case("signal") {
                return v.trim().chars().next().filter(|c| is_dtmf(*c));
            }
        } else if line.len() == 1 {
            return line.chars().next().filter(|c| is_dtmf(*c));
        }
    }
    None
}

fn is_dtmf(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '*' | '#' | 'A' | 'B' | 'C' | 'D')
}

async fn call(t: NewCallTask) {
    let shared = t.shared.clone();
    let clock = shared.clock;
    let NewCallTask {
        sip,
        mut inbox,
        invite_key,
        invite,
        peer,
        call_id,
        from,
        to,
        flow,
        prompts,
        negotiated,
        answer_sdp,
        rtp,
        local_sip,
        self_tx,
        direction,
        widget,
        ..
    } = t;

    let Some(contact) = contact_uri(local_sip, peer.transport) else {
        tracing::error!("cannot build a Contact URI");
        return;
    };
    let mut dialog = match Dialog::uas(&invite, peer, &random_tag(), contact) {
        Ok(d) => d,
        Err(e) => {
            tracing::info!(error = %e, "INVITE cannot start a dialog");
            let resp = crate::sip::message::response_to(&invite, 400, Some(&random_tag()));
            let _ = sip.send(SipCmd::Respond {
                key: invite_key,
                response: resp,
            });
            return;
        }
    };
    // The media engine reads and sends on the socket until the call is bridged.
    let media = shared.media.attach(rtp);
    let mut bridged_fd: Option<AsyncFd<SocketFd<CallMedia>>> = None;
    let mut media_events: Vec<MediaEvent> = Vec::new();

    let started = clock.now();
    let flow_records = flow.record_calls;
    tracing::info!(from = %from, to = %to, flow = %flow.name, codec = ?negotiated.codec, "call started");
    shared.webhooks.emit(
        "call.started",
        serde_json::json!({ "call_id": call_id, "from": from, "to": to, "flow": flow.name }),
    );
    let caller = from.clone();
    let mut ctl = CallController::new(
        flow,
        prompts,
        NewCall {
            call_id: call_id.clone(),
            from,
            to,
            direction,
            started,
            started_wall: chrono::Utc::now(),
            queues_enabled: shared.acd.is_some(),
        },
    );
    let session_cfg = SessionConfig {
        law: match negotiated.codec {
            AudioCodec::Pcmu => Law::Mu,
            AudioCodec::Pcma => Law::A,
        },
        payload_type: negotiated.payload_type,
        dtmf_payload_type: negotiated.dtmf_payload_type,
        ssrc: rand::random(),
        initial_seq: rand::random(),
        initial_timestamp: rand::random(),
        remote: negotiated.remote_rtp,
        inband_dtmf: shared.config.inband_dtmf,
    };
    let (job_tx, mut job_rx) = mpsc::unbounded_channel::<JobDone>();
    let mut buf = vec![0u8; 2048];
    let mut recording_id: Option<u64> = None;
    let mut acked = false;
    let mut agent_side: Option<AgentSide> = None;
    let mut transfer: Option<TransferSide> = None;
    let mut survey_sent = false;
    let mut hangup_all = shared.hangup_all.subscribe();
    let shutdown = hangup_all.wait_for(|h| *h);
    tokio::pin!(shutdown);
    let mut shutting_down = false;
    // One timer for the call, moved only when its deadline comes sooner: a later deadline (the
    // media grid stepping back while relayed frames flow) lets it fire early once and re-arm.
    let timer = tokio::time::sleep(std::time::Duration::ZERO);
    tokio::pin!(timer);
    let mut timer_at: Option<tokio::time::Instant> = None;

    loop {
        // Everything the controller asked for, then the packets that are due.
        while let Some(cmd) = ctl.poll_command() {
            match cmd {
                Command::Ring => {
                    let r = dialog.response(&invite, 180, None);
                    let _ = sip.send(SipCmd::Respond {
                        key: invite_key.clone(),
                        response: r,
                    });
                }
                Command::Answer => {
                    let r = dialog.response(
                        &invite,
                        200,
                        Some(("application/sdp", answer_sdp.as_bytes())),
                    );
                    let _ = sip.send(SipCmd::Respond {
                        key: invite_key.clone(),
                        response: r,
                    });
                    *media.session() = Some(RtpSession::new(session_cfg.clone(), clock.now()));
                }
                Command::Play { id, prompts } => {
                    tracing::debug!(id, prompts = ?prompts, "play");
                    let mut samples = Vec::with_capacity(prompts.len());
                    for p in &prompts {
                        match shared.prompts.get(p) {
                            Ok(s) => samples.push(s),
                            Err(e) => tracing::error!(error = %e, "prompt cannot be played"),
                        }
                    }
                    if let Some(s) = media.session().as_mut() {
                        s.play(id, samples);
                    }
                }
                Command::StopPlayback => {
                    tracing::debug!("stop playback");
                    if let Some(s) = media.session().as_mut() {
                        s.stop_playback();
                    }
                }
                Command::StartRecording { id, max, beep } => {
                    if let Some(s) = media.session().as_mut() {
                        if beep {
                            let path = shared.config.sounds_dir.join("beep.wav");
                            if let Ok(b) = shared.prompts.get(&path) {
                                s.play(BEEP_ID, vec![b]);
                            }
                        }
                        let max_samples = (max.as_millis() as usize).saturating_mul(8);
                        s.start_recording(max_samples);
                        recording_id = Some(id);
                    }
                }
                Command::StopRecording { id } => {
                    let samples = media
                        .session()
                        .as_mut()
                        .map(|s| s.stop_recording())
                        .unwrap_or_default();
                    recording_id = None;
                    let dir = shared.config.recordings_dir();
                    let file = dir.join(format!("{}-{id}.wav", sanitize(&call_id)));
                    let tx = job_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let out = write_recording(&file, &samples);
                        let _ = tx.send(JobDone::Recording(id, out));
                    });
                }
                Command::VerifyPin { id, key, pin } => {
                    let auth = shared.auth.clone();
                    let tx = job_tx.clone();
                    let cid = call_id.clone();
                    let limiter_shared = shared.clone();
                    let source = peer.addr.ip();
                    tokio::task::spawn_blocking(move || {
                        let key = match key {
                            AccountKey::Phone(p) => AuthKey::Phone(p),
                            AccountKey::Id(i) => AuthKey::Id(i),
                        };
                        let verdict = auth.verify(&key, pin.expose(), &cid, chrono::Utc::now());
                        let outcome = match verdict {
                            Verdict::Ok {
                                account_id,
                                mut fields,
                            } => {
                                // Flows say `account.id`; the CSV column is `account_id`.
                                fields.insert("id".into(), account_id.clone());
                                PinOutcome::Ok { account_id, fields }
                            }
                            Verdict::Invalid { .. } => PinOutcome::Invalid,
                            Verdict::Locked { .. } => PinOutcome::Locked,
                        };
                        if !matches!(outcome, PinOutcome::Ok { .. }) {
                            let now = limiter_shared.clock.now();
                            limiter_shared.auth_limiter.failed(source, now);
                        }
                        let _ = tx.send(JobDone::Pin(id, outcome));
                    });
                }
                Command::Lookup {
                    id,
                    method,
                    url,
                    body,
                    timeout,
                } => {
                    let client = shared.http_client.clone();
                    let tx = job_tx.clone();
                    tokio::spawn(async move {
                        let r = lookup(&client, &method, &url, body, timeout).await;
                        let _ = tx.send(JobDone::Lookup(id, r));
                    });
                }
                Command::Hangup => {
                    let bye = dialog.request(rsip::Method::Bye, None);
                    let _ = sip.send(SipCmd::Request {
                        call_id: call_id.clone(),
                        peer: dialog.peer,
                        request: bye,
                    });
                }
                Command::Enqueue {
                    queue,
                    priority,
                    skills,
                    timeout,
                    pop,
                } => match shared.acd.as_ref() {
                    Some(acd) => {
                        shared.webhooks.emit("call.queued", serde_json::json!({ "call_id": call_id, "queue": queue, "priority": priority }));
                        let req = CallRequest {
                            call_id: call_id.clone(),
                            queue,
                            priority,
                            skills,
                            timeout,
                        };
                        let _ = acd.send(AcdCmd::Enqueue {
                            req,
                            pop,
                            call: self_tx.clone(),
                        });
                    }
                    None => ctl.queue_timeout(clock.now(), "queues are not configured"),
                },
                Command::Callback { queue, number } => {
                    super::callbacks::from_call(&shared, &mut ctl, &call_id, queue, &number)
                }
                Command::LeaveQueue => {
                    if let Some(acd) = shared.acd.as_ref() {
                        let _ = acd.send(AcdCmd::Leave {
                            call_id: call_id.clone(),
                        });
                    }
                }
                Command::Bridge { .. } => {
                    if let Some(s) = media.session().as_mut() {
                        s.start_bridge();
                        let queue_records = ctl.in_queue().is_some_and(|q| {
                            shared.config.queues.iter().any(|c| c.name == q && c.record)
                        });
                        if (flow_records || queue_records) && !s.is_call_recording() {
                            let max = shared.config.recording_max.as_millis() as usize;
                            s.start_call_recording(max.saturating_mul(8));
                            let file = super::retention::recording_name(&call_id);
                            ctl.call_recording_started(clock.now(), &file);
                        }
                    }
                    if let Some(a) = agent_side.as_mut() {
                        a.relaying = true;
                    }
                }
                Command::Unbridge => {
                    if let Some(s) = media.session().as_mut() {
                        s.stop_bridge();
                    }
                    if let Some(a) = agent_side.take() {
                        tokio::spawn(a.leg.close());
                    }
                }
                Command::Hold(on) => {
                    if let Some(a) = agent_side.as_mut() {
                        a.relaying = !on;
                    }
                    if let Some(s) = media.session().as_mut() {
                        if on {
                            s.stop_bridge();
                        } else {
                            s.start_bridge();
                        }
                    }
                }
                Command::EndAgentLeg => {
                    if let Some(a) = agent_side.take() {
                        tokio::spawn(a.leg.close());
                    }
                    if let Some(acd) = shared.acd.as_ref() {
                        let _ = acd.send(AcdCmd::CallEnded {
                            call_id: call_id.clone(),
                        });
                    }
                }
                Command::Dial { target } => {
                    // Looked up off this loop (a host name may take a while), then dialled.
                    let tx = job_tx.clone();
                    let local = shared.sip_out.get().map(|(_, a)| *a);
                    tokio::spawn(async move {
                        let resolved = super::transfer::resolve(&target, local).await;
                        let _ = tx.send(JobDone::TransferTarget { target, resolved });
                    });
                }
                Command::BridgeTransfer => {
                    if let Some(s) = media.session().as_mut() {
                        s.start_bridge();
                    }
                    if let Some(t) = transfer.as_mut() {
                        t.bridged = true;
                    }
                }
                Command::EndTransferLeg => {
                    if let Some(t) = transfer.take() {
                        t.hangup();
                    }
                }
                Command::CdrUpdate(rec) => {
                    super::events::record_updated(&shared, &rec, &mut survey_sent);
                    shared.cdr.update(*rec)
                }
                Command::CdrFinish(mut rec) => {
                    let samples = media
                        .session()
                        .as_mut()
                        .and_then(|s| s.stop_call_recording());
                    if let Some(samples) = samples {
                        save_call_recording(&shared, &call_id, samples, Some(&mut rec)).await;
                    }
                    let by = rec.hangup_by.map_or("system", |b| b.as_str());
                    tell(
                        &shared,
                        &widget,
                        Phase::Ended {
                            by: by.to_string(),
                            reason: None,
                        },
                    );
                    tracing::info!(disposition = ?rec.disposition, hangup_by = ?rec.hangup_by, path = ?rec.ivr_path, "call ended");
                    super::events::call_ended(
                        &shared,
                        &rec,
                        media.session().as_ref().map(|s| s.stats()),
                        &mut survey_sent,
                    );
                    shared.cdr.finish(*rec);
                }
            }
        }
        if ctl.is_ended() {
            break;
        }
        let now = clock.now();
        // A call bridged to a SIP agent is relayed by the media threads; one bridged to a browser
        // or a transfer target, by this task (frames relayed on arrival); any other is carried
        // by the media threads on their tick. The events of each go to the controller before
        // sleeping.
        let bridged = media.session().as_ref().is_some_and(|s| s.is_bridged());
        let sip_agent = agent_side
            .as_ref()
            .filter(|a| a.relaying && bridged)
            .and_then(|a| match &a.leg {
                AgentLeg::Sip(d) => Some(d),
                AgentLeg::WebRtc(_) => None,
            });
        if sip_agent.is_some() != media.is_relayed() {
            media.set_relay(sip_agent.map(|d| d.relay_leg()));
        }
        let mut call_drives = false;
        let mut next_frame = None;
        if let Some(s) = media.session().as_mut() {
            if media.task_drives(s) {
                call_drives = true;
                while let Some(tx) = s.poll_transmit(now) {
                    let _ = media.socket.send_to(tx.bytes, tx.to);
                }
                next_frame = Some(s.poll_timeout());
            }
            media_events.extend(std::iter::from_fn(|| s.poll_event()));
        }
        if call_drives != bridged_fd.is_some() {
            bridged_fd = None;
            if call_drives {
                match register_reads(media.shared()) {
                    Ok(fd) => bridged_fd = Some(fd),
                    Err(e) => {
                        tracing::error!(error = %e, "RTP socket cannot be read while bridged")
                    }
                }
            }
        }
        if !media_events.is_empty() {
            for ev in media_events.drain(..) {
                match ev {
                    MediaEvent::Digit { digit, source } => {
                        let src = match source {
                            DigitSource::Rfc4733 => "rfc4733",
                            DigitSource::Inband => "inband",
                        };
                        tracing::debug!(source = src, "digit");
                        // In-band keys reach a transfer's far end in the audio already.
                        if let (Some(t), DigitSource::Rfc4733) = (transfer.as_ref(), source) {
                            t.dtmf(digit);
                        }
                        ctl.digit(now, digit, src);
                    }
                    MediaEvent::PlaybackDone { id, interrupted } => {
                        if id != BEEP_ID {
                            ctl.playback_done(now, id, interrupted);
                        }
                    }
                    MediaEvent::RecordingDone { .. } => {
                        // The recorder reached its maximum: the controller's own timer stops it too.
                        if let Some(id) = recording_id.take() {
                            let samples = media
                                .session()
                                .as_mut()
                                .map(|s| s.stop_recording())
                                .unwrap_or_default();
                            let file = shared
                                .config
                                .recordings_dir()
                                .join(format!("{}-{id}.wav", sanitize(&call_id)));
                            let tx = job_tx.clone();
                            tokio::task::spawn_blocking(move || {
                                let out = write_recording(&file, &samples);
                                let _ = tx.send(JobDone::Recording(id, out));
                            });
                        }
                    }
                }
            }
            continue;
        }

        let mut deadline = ctl.poll_timeout();
        if let Some(m) = next_frame {
            deadline = Some(deadline.map_or(m, |d| d.min(m)));
        }
        if let Some(d) = deadline.map(|d| clock.to_tokio(d)) {
            if timer_at.is_none_or(|at| d < at) {
                timer.as_mut().reset(d);
                timer_at = Some(d);
            }
        }
        // Biased, control first: the call's inbox, jobs, shutdown and timer are cheap to poll
        // and a flood of datagrams cannot starve them; then the media sockets.
        tokio::select! {
            biased;
            msg = inbox.recv() => {
                let now = clock.now();
                match msg {
                    None => ctl.failed(now, "SIP task gone"),
                    Some(CallIn::Ack) => {
                        acked = true;
                        ctl.confirmed(now);
                    }
                    Some(CallIn::Cancelled(key)) => {
                        if key == invite_key && !acked {
                            ctl.caller_hung_up(now);
                        }
                    }
                    Some(CallIn::Request { key, request }) => {
                        let ok = crate::sip::message::response_to(&request, 200, None);
                        match request.method {
                            rsip::Method::Bye => {
                                let _ = sip.send(SipCmd::Respond { key, response: ok });
                                ctl.caller_hung_up(now);
                            }
                            rsip::Method::Info => {
                                if !dialog.check_remote_cseq(&request) {
                                    let r = crate::sip::message::response_to(&request, 500, None);
                                    let _ = sip.send(SipCmd::Respond { key, response: r });
                                    continue;
                                }
                                let _ = sip.send(SipCmd::Respond { key, response: ok });
                                if let Some(d) = info_digit(&request.body) {
                                    ctl.digit(now, d, "info");
                                }
                            }
                            rsip::Method::Invite => {
                                // A re-INVITE (hold, session refresh): answer with our session unchanged.
                                let r = dialog.response(&request, 200, Some(("application/sdp", answer_sdp.as_bytes())));
                                let _ = sip.send(SipCmd::Respond { key, response: r });
                            }
                            _ => {
                                let _ = sip.send(SipCmd::Respond { key, response: ok });
                            }
                        }
                    }
                    Some(CallIn::Response(_)) | Some(CallIn::RequestTimeout) => {}
                    Some(CallIn::Enqueued { music, announce_every, exit_key }) => {
                        tell(&shared, &widget, Phase::Queued { position: None });
                        ctl.enqueued(now, music, announce_every, exit_key);
                    }
                    Some(CallIn::QueueTimeout(why)) => ctl.queue_timeout(now, &why),
                    Some(CallIn::Position(p)) => {
                        tell(&shared, &widget, Phase::Queued { position: Some(p) });
                        ctl.queue_position(p)
                    }
                    Some(CallIn::Requeued { queue, why }) => {
                        if let Some(a) = agent_side.take() {
                            tokio::spawn(a.leg.close());
                        }
                        tell(&shared, &widget, Phase::Queued { position: None });
                        ctl.requeued(now, &queue, &why);
                    }
                    Some(CallIn::Transferred { from_agent, queue, agent }) => {
                        if let Some(a) = agent_side.take() {
                            tokio::spawn(a.leg.close());
                        }
                        tell(&shared, &widget, Phase::Queued { position: None });
                        ctl.transferred(now, &from_agent, &queue, agent.as_deref());
                    }
                    Some(CallIn::AgentAnswer { agent_id, sdp, agent }) => {
                        let cfg = shared.rtc.clone();
                        let tx = job_tx.clone();
                        tokio::spawn(async move {
                            let result = RtcLeg::answer(&cfg, &sdp).await.map_err(|e| e.to_string());
                            let _ = tx.send(JobDone::AgentLeg { agent_id, agent, result });
                        });
                    }
                    Some(CallIn::AgentAnswerSip { agent_id, media, agent }) => {
                        if ctl.is_ended() {
                            let _ = media.ctl.send(super::outbound::LegCtl::Hangup);
                        } else {
                            // From here this task relays the phone's RTP itself; what it sent
                            // between its 200 and now is stale and dropped.
                            let direct = media.into_direct();
                            let _ = agent.send(AgentMsg::Connected { call_id: call_id.clone() });
                            agent_side = Some(AgentSide { leg: AgentLeg::Sip(direct), agent, relaying: false });
                            shared.webhooks.emit("call.answered", serde_json::json!({ "call_id": call_id, "agent_id": agent_id }));
                            tell(&shared, &widget, Phase::Connected);
                            ctl.agent_connected(now, &agent_id);
                        }
                    }
                    Some(CallIn::AgentHungUp) => {
                        if let Some(a) = agent_side.take() {
                            tokio::spawn(a.leg.close());
                        }
                        tell(&shared, &widget, Phase::InIvr);
                        ctl.agent_hung_up(now);
                    }
                    Some(CallIn::Hold(on)) => ctl.hold(now, on),
                    Some(CallIn::AgentDtmf(d)) => agent_dtmf(&media, d, "console"),
                    Some(CallIn::AckTimeout) => {
                        ctl.failed(now, "no ACK for our 200 OK");
                        let bye = dialog.request(rsip::Method::Bye, None);
                        let _ = sip.send(SipCmd::Request { call_id: call_id.clone(), peer: dialog.peer, request: bye });
                    }
                }
            }
            Some(job) = job_rx.recv() => {
                let now = clock.now();
                match job {
                    JobDone::Pin(id, outcome) => ctl.pin_checked(now, id, outcome),
                    JobDone::Lookup(id, r) => ctl.lookup_done(now, id, r),
                    JobDone::Recording(id, Ok(file)) => ctl.recording_done(now, id, file),
                    JobDone::Recording(id, Err((file, error))) => {
                        ctl.recording_failed(now, &file, &error);
                        ctl.recording_done(now, id, None)
                    }
                    JobDone::TransferTarget { target, resolved } => {
                        let leg = resolved.and_then(|addr| {
                            super::transfer::dial(&shared, &target, &caller, addr)
                        });
                        match leg {
                            Ok(leg) if !ctl.is_ended() => {
                                tracing::info!(%target, leg = %leg.call_id, "transfer: dialling");
                                transfer = Some(TransferSide {
                                    leg,
                                    media: None,
                                    bridged: false,
                                });
                                ctl.transfer_dialling(super::transfer::ringing_music(&shared));
                            }
                            Ok(leg) => {
                                let _ = leg.ctl.send(super::outbound::LegCtl::Hangup);
                            }
                            Err(why) => {
                                tracing::warn!(%target, reason = %why, "transfer cannot be dialled");
                                ctl.transfer_failed(now, None, &why);
                            }
                        }
                    }
                    JobDone::AgentLeg { agent_id, agent, result } => match result {
                        Ok((leg, sdp)) if !ctl.is_ended() => {
                            let _ = agent.send(AgentMsg::AnswerSdp { call_id: call_id.clone(), sdp });
                            let _ = agent.send(AgentMsg::Connected { call_id: call_id.clone() });
                            agent_side = Some(AgentSide { leg: AgentLeg::WebRtc(leg), agent, relaying: false });
                            shared.webhooks.emit("call.answered", serde_json::json!({ "call_id": call_id, "agent_id": agent_id }));
                            tell(&shared, &widget, Phase::Connected);
                            ctl.agent_connected(now, &agent_id);
                        }
                        Ok((leg, _)) => {
                            tokio::spawn(leg.close());
                        }
                        Err(e) => {
                            tracing::warn!(agent = %agent_id, error = %e, "agent's WebRTC answer failed");
                            let _ = agent.send(AgentMsg::Error { message: format!("WebRTC: {e}") });
                            let _ = agent.send(AgentMsg::CallEnded { call_id: call_id.clone(), by: "system".into() });
                            if let Some(acd) = shared.acd.as_ref() {
                                let _ = acd.send(AcdCmd::CallEnded { call_id: call_id.clone() });
                            }
                            ctl.failed(now, "the agent's browser could not be connected");
                            let bye = dialog.request(rsip::Method::Bye, None);
                            let _ = sip.send(SipCmd::Request { call_id: call_id.clone(), peer: dialog.peer, request: bye });
                        }
                    },
                }
            }
            _ = &mut shutdown, if !shutting_down => {
                shutting_down = true;
                // The drain after SIGTERM ran out: the system ends the call.
                ctl.failed(clock.now(), "server shutting down");
                if acked {
                    let bye = dialog.request(rsip::Method::Bye, None);
                    let _ = sip.send(SipCmd::Request { call_id: call_id.clone(), peer: dialog.peer, request: bye });
                }
            }
            _ = &mut timer, if timer_at.is_some() => {
                timer_at = None;
                ctl.handle_timeout(clock.now());
            }
            _ = media.wake.notified(), if !call_drives => {}
            r = recv_registered(&bridged_fd, &mut buf) => {
                if let Ok((n, from)) = r {
                    if let (Some(s), Some(bytes)) = (media.session().as_mut(), buf.get(..n)) {
                        s.on_datagram(clock.now(), from, bytes);
                        if let Some(frame) = s.poll_bridged_audio() {
                            if let Some(a) = agent_side.as_ref().filter(|a| a.relaying) {
                                a.leg.send_pcmu(frame);
                            } else if let Some(t) = transfer.as_ref() {
                                t.send_pcmu(frame);
                            }
                        }
                    }
                }
            }
            ev = next_agent_event(&mut agent_side) => {
                let now = clock.now();
                match ev {
                    Some(AgentEvent::Rtc(RtcEvent::Audio { payload, .. })) => {
                        if agent_side.as_ref().is_some_and(|a| a.relaying) {
                            relay_to_caller(&media, now, &payload);
                        }
                    }
                    Some(AgentEvent::Rtc(RtcEvent::Connected)) => {}
                    // Keys from the agent's own phone or media stream go to the caller as
                    // RFC 4733, like the console's keypad.
                    Some(AgentEvent::Rtc(RtcEvent::Dtmf(d))) => agent_dtmf(&media, d, "phone"),
                    // A desk phone's hold button: the same hold as the console's.
                    Some(AgentEvent::Hold(on)) => ctl.hold(now, on),
                    Some(AgentEvent::Rtc(RtcEvent::Closed)) | None => {
                        // The browser went away (closed, reloaded): the call ends for the caller.
                        if let Some(a) = agent_side.take() {
                            let _ = a.agent.send(AgentMsg::CallEnded { call_id: call_id.clone(), by: "agent".into() });
                        }
                        if let Some(acd) = shared.acd.as_ref() {
                            let _ = acd.send(AcdCmd::CallEnded { call_id: call_id.clone() });
                        }
                        tell(&shared, &widget, Phase::InIvr);
                        ctl.agent_hung_up(now);
                    }
                }
            }
            got = TransferSide::next(&mut transfer) => {
                let now = clock.now();
                let ev = match got {
                    TransferIn::Event(ev) => ev,
                    TransferIn::Frame(Some(f)) => {
                        if transfer.as_ref().is_some_and(|t| t.bridged) {
                            relay_to_caller(&media, now, &f);
                        }
                        continue;
                    }
                    // The leg closed; its end comes as an event.
                    TransferIn::Frame(None) => {
                        if let Some(t) = transfer.as_mut() {
                            t.media = None;
                        }
                        continue;
                    }
                };
                match ev {
                    Some(LegEvent::Answered { .. }) => {
                        tracing::info!("transfer: the target answered");
                        if let Some(t) = transfer.as_mut() {
                            t.media = t.leg.media.take();
                        }
                        ctl.transfer_answered(now);
                    }
                    Some(LegEvent::Failed(code)) => {
                        tracing::info!(status = code, "transfer: the target was not reached");
                        transfer = None;
                        ctl.transfer_failed(now, Some(code), super::callback_task::reason(code));
                    }
                    Some(LegEvent::Ended(_)) | None => {
                        transfer = None;
                        ctl.transfer_ended(now);
                    }
                    Some(LegEvent::Trying | LegEvent::Ringing) => {}
                }
            }
        }
    }
    let samples = media
        .session()
        .as_mut()
        .and_then(|s| s.stop_call_recording());
    if let Some(samples) = samples {
        save_call_recording(&shared, &call_id, samples, None).await;
    }
}

/// Writes the call recording once the call is over (off the async threads). One that cannot be
/// written — a full disk — holds nothing up: the call's final record, when given, loses the link
/// to the missing file and gets a `recording_failed` event saying why.
async fn save_call_recording(
    shared: &Shared,
    call_id: &str,
    samples: Vec<i16>,
    rec: Option<&mut crate::cdr::CallRecord>,
) {
    let dir = shared.config.recordings_dir();
    let name = super::retention::recording_name(call_id);
    let file = name.clone();
    let written = tokio::task::spawn_blocking(move || {
        super::retention::write_call_recording(&dir, &file, &samples)
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    if let (Err(error), Some(rec)) = (written, rec) {
        super::retention::recording_failed(rec, &name, &error, chrono::Utc::now());
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A `record` step's WAV: its path, None when nothing was heard, or the file's name and why it
/// could not be written (a full disk).
fn write_recording(file: &PathBuf, samples: &[i16]) -> Result<Option<String>, (String, String)> {
    if samples.is_empty() {
        return Ok(None);
    }
    let name = || {
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let bytes = match crate::media::wav::encode_wav(samples, 1) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode recording");
            return Err((name(), e.to_string()));
        }
    };
    match std::fs::write(file, bytes) {
        Ok(()) => Ok(Some(file.display().to_string())),
        Err(e) => {
            tracing::error!(error = %e, file = %file.display(), "cannot write recording");
            // A partly written file is no recording.
            let _ = std::fs::remove_file(file);
            Err((name(), e.to_string()))
        }
    }
}

async fn lookup(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<String>,
    timeout: std::time::Duration,
) -> Result<serde_json::Value, String> {
    let m = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("bad method {method}"))?;
    let mut req = client.request(m, url).timeout(timeout);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    // Bound what a CRM can make us hold.
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    if bytes.len() > 1024 * 1024 {
        return Err("answer larger than 1 MiB".into());
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_bodies_of_both_common_kinds_give_a_digit() {
        assert_eq!(info_digit(b"Signal=5\r\nDuration=160\r\n"), Some('5'));
        assert_eq!(info_digit(b"signal= #\r\n"), Some('#'));
        assert_eq!(info_digit(b"7"), Some('7'));
        assert_eq!(info_digit(b"Signal=x"), None);
        assert_eq!(info_digit(&[0xff, 0xfe]), None);
    }
}

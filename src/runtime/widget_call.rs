//! Browser calls from the click-to-call widget. The browser's WebRTC leg is answered here, and a
//! SIP leg is placed from the internal gateway endpoint (see `sip_task`) to our own public
//! listener, so the browser caller walks the flow, the queue and the record exactly as a phone
//! caller does (the record says `direction: webrtc`). This task relays audio and keypad presses
//! between the two legs; the call task publishes how the call goes (queued, connected, ended)
//! for the widget's event stream.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;
use tokio::sync::{mpsc, watch};

use crate::rtc::{RtcError, RtcEvent, RtcLeg};
use crate::sip::uac::LegEvent;
use crate::sip::{Peer, Transport};

use super::outbound::{LegCtl, OutboundLeg, OutboundRequest};
use super::sip_task::{gateway_target, WIDGET_FLOW_HEADER, WIDGET_HEADER};
use super::Shared;

/// How long the gateway lets our own listener take to answer (it answers at once; a flow with
/// a long `answer_delay` rings that long).
const RING_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the browser has to connect its audio (ICE and DTLS) after our answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// After the SIP leg ends, how long the call task has to say who ended the call.
const END_GRACE: Duration = Duration::from_secs(2);

/// Where a browser call stands, as the widget shows it (`state` plus its fields, in JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Phase {
    Connecting,
    Ringing,
    /// Answered by the flow: prompts and menus, the keypad works.
    InIvr,
    /// Waiting in a queue; the position once the queue has told it.
    Queued {
        position: Option<usize>,
    },
    /// Talking to an agent.
    Connected,
    /// Over: who ended it (caller, agent, system) and, when it never got going, why.
    Ended {
        by: String,
        reason: Option<String>,
    },
}

impl Phase {
    pub fn is_ended(&self) -> bool {
        matches!(self, Phase::Ended { .. })
    }
}

struct Entry {
    phase: watch::Sender<Phase>,
    hangup: mpsc::UnboundedSender<()>,
}

/// The browser calls up now, by the id the widget was given (an unguessable token: whoever
/// holds it may follow and end that call, nobody else).
#[derive(Default)]
pub struct WidgetCalls {
    calls: Mutex<HashMap<String, Entry>>,
}

impl WidgetCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A call's new phase; an ended call keeps its end.
    pub fn set(&self, id: &str, phase: Phase) {
        if let Some(e) = self.lock().get(id) {
            e.phase.send_if_modified(|p| {
                if p.is_ended() || *p == phase {
                    return false;
                }
                *p = phase;
                true
            });
        }
    }

    /// Follows a call: its phase now and every change; `None` for an unknown id.
    pub fn subscribe(&self, id: &str) -> Option<watch::Receiver<Phase>> {
        self.lock().get(id).map(|e| e.phase.subscribe())
    }

    /// Hangs a call up from the page; false for an unknown id.
    pub fn hangup(&self, id: &str) -> bool {
        self.lock()
            .get(id)
            .is_some_and(|e| e.hangup.send(()).is_ok())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn phase(&self, id: &str) -> Option<Phase> {
        self.lock().get(id).map(|e| e.phase.borrow().clone())
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// Why a browser call could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("all lines are busy; try again later")]
    Busy,
    #[error("browser calls are not available on this server")]
    NoGateway,
    #[error("the flow does not exist")]
    NoFlow,
    #[error("the browser's offer cannot be used: {0}")]
    Offer(RtcError),
}

/// A started call: its id (for the event stream and hang-up) and the SDP answer.
#[derive(Debug)]
pub struct Started {
    pub id: String,
    pub sdp: String,
}

/// Answers the browser's offer and places its call into `flow`.
pub async fn start(
    shared: Arc<Shared>,
    flow: &str,
    offer: &str,
    client: IpAddr,
) -> Result<Started, StartError> {
    if shared.draining.load(std::sync::atomic::Ordering::Relaxed)
        || shared.active_calls() >= shared.config.max_calls
    {
        return Err(StartError::Busy);
    }
    let (gw_tx, gw_addr) = shared
        .gateway_out
        .get()
        .cloned()
        .ok_or(StartError::NoGateway)?;
    let public = shared
        .sip_out
        .get()
        .map(|(_, a)| gateway_target(*a))
        .ok_or(StartError::NoGateway)?;
    if shared.flows.for_name(flow).is_none() {
        return Err(StartError::NoFlow);
    }
    let (rtc, sdp) = RtcLeg::answer(&shared.rtc, offer)
        .await
        .map_err(StartError::Offer)?;
    let id = format!("{:032x}", rand::random::<u128>());
    let user = dialed_for(flow);
    let Ok(target) = rsip::Uri::try_from(format!("sip:{user}@{public}").as_str()) else {
        rtc.close().await;
        return Err(StartError::NoGateway);
    };
    let req = OutboundRequest {
        target,
        peer: Peer {
            transport: Transport::Udp,
            addr: public,
        },
        from_user: "webrtc".into(),
        from_display: Some("Web caller".into()),
        credentials: None,
        ring_timeout: RING_TIMEOUT,
        extra_headers: vec![
            (WIDGET_HEADER.into(), id.clone()),
            (WIDGET_FLOW_HEADER.into(), flow.into()),
        ],
    };
    let (hangup_tx, hangup_rx) = mpsc::unbounded_channel();
    shared.widget_calls.lock().insert(
        id.clone(),
        Entry {
            phase: watch::channel(Phase::Connecting).0,
            hangup: hangup_tx,
        },
    );
    tracing::info!(%client, flow, "browser call from the widget");
    let place = Place {
        sip: gw_tx,
        local: gw_addr,
        req,
    };
    tokio::spawn(relay(shared, id.clone(), rtc, place, hangup_rx));
    Ok(Started { id, sdp })
}

/// The SIP leg to place once the browser's media is up.
struct Place {
    sip: mpsc::UnboundedSender<super::sip_task::SipCmd>,
    local: std::net::SocketAddr,
    req: OutboundRequest,
}

/// Waits for the browser's audio path (ICE, DTLS) before the flow starts, so the caller hears
/// the greeting from its first word. `Err((by, reason))`: the page hung up, or the media never
/// connected.
async fn browser_connected(
    rtc: &mut RtcLeg,
    hangup: &mut mpsc::UnboundedReceiver<()>,
) -> Result<(), (&'static str, Option<String>)> {
    let wait = async {
        loop {
            match rtc.recv().await {
                Some(RtcEvent::Connected) => return Ok(()),
                Some(RtcEvent::Closed) | None => return Err(("caller", None)),
                Some(_) => {}
            }
        }
    };
    tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, wait) => r.unwrap_or_else(|_| {
            Err(("system", Some("the browser's audio did not connect (network or firewall)".into())))
        }),
        _ = hangup.recv() => Err(("caller", None)),
    }
}

/// The dialed "number" on a browser call's record: `widget-<flow>`, kept to characters a SIP
/// user part takes.
pub fn dialed_for(flow: &str) -> String {
    let clean: String = flow
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(48)
        .collect();
    format!("widget-{clean}")
}

/// What the page is told when the call never reached the flow.
fn failure_reason(status: u16) -> String {
    match status {
        503 => "all lines are busy; try again later".into(),
        404 => "this service is not available".into(),
        408 => "no answer".into(),
        486 | 600 => "busy".into(),
        s => format!("the call could not be placed (SIP {s})"),
    }
}

async fn relay(
    shared: Arc<Shared>,
    id: String,
    mut rtc: RtcLeg,
    place: Place,
    mut hangup: mpsc::UnboundedReceiver<()>,
) {
    let calls = &shared.widget_calls;
    let end = |by: &str, reason: Option<String>| {
        calls.set(
            &id,
            Phase::Ended {
                by: by.into(),
                reason,
            },
        );
        calls.remove(&id);
    };
    if let Err((by, reason)) = browser_connected(&mut rtc, &mut hangup).await {
        end(by, reason);
        rtc.close().await;
        return;
    }
    let mut leg = match OutboundLeg::place(shared.clone(), place.sip, place.local, place.req) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "no RTP port for a browser call");
            end("system", Some("no line is free; try again later".into()));
            rtc.close().await;
            return;
        }
    };
    let Some(mut media) = leg.media.take() else {
        end("system", None);
        rtc.close().await;
        return;
    };
    let mut browser_open = true;
    let mut caller_hung_up = false;
    loop {
        tokio::select! {
            ev = leg.events.recv() => match ev {
                Some(LegEvent::Ringing) => {
                    if calls.phase(&id) == Some(Phase::Connecting) {
                        calls.set(&id, Phase::Ringing);
                    }
                }
                Some(LegEvent::Answered { .. }) => {
                    if matches!(calls.phase(&id), Some(Phase::Connecting | Phase::Ringing)) {
                        calls.set(&id, Phase::InIvr);
                    }
                }
                Some(LegEvent::Failed(status)) => {
                    let (by, reason) = if caller_hung_up {
                        ("caller", None)
                    } else {
                        ("system", Some(failure_reason(status)))
                    };
                    calls.set(&id, Phase::Ended { by: by.into(), reason });
                    break;
                }
                Some(LegEvent::Trying) => {}
                Some(LegEvent::Ended(_)) | None => break,
            },
            Some(frame) = media.audio_in.recv() => {
                // Nothing queued before the browser connects; a full queue drops a frame.
                let _ = rtc.send_pcmu(&frame);
            }
            ev = rtc.recv(), if browser_open => match ev {
                Some(RtcEvent::Audio { payload, .. }) => media.send_pcmu(&payload),
                Some(RtcEvent::Dtmf(d)) => {
                    let _ = leg.ctl.send(LegCtl::Dtmf(d));
                }
                Some(RtcEvent::Connected) => {}
                Some(RtcEvent::Closed) | None => {
                    browser_open = false;
                    caller_hung_up = true;
                    let _ = leg.ctl.send(LegCtl::Hangup);
                }
            },
            Some(()) = hangup.recv() => {
                caller_hung_up = true;
                let _ = leg.ctl.send(LegCtl::Hangup);
            }
        }
    }
    // The call task names who ended the call; give it a moment, then say it ourselves.
    if let Some(mut rx) = calls.subscribe(&id) {
        let _ = tokio::time::timeout(END_GRACE, rx.wait_for(Phase::is_ended)).await;
    }
    end(if caller_hung_up { "caller" } else { "system" }, None);
    rtc.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_call_keeps_its_end_and_unknown_ids_are_refused() {
        let calls = WidgetCalls::default();
        let (tx, _) = mpsc::unbounded_channel();
        calls.lock().insert(
            "a".into(),
            Entry {
                phase: watch::channel(Phase::Connecting).0,
                hangup: tx,
            },
        );
        let rx = calls.subscribe("a").expect("known id");
        calls.set("a", Phase::Queued { position: Some(2) });
        assert_eq!(*rx.borrow(), Phase::Queued { position: Some(2) });
        let agent_ended = Phase::Ended {
            by: "agent".into(),
            reason: None,
        };
        calls.set("a", agent_ended.clone());
        calls.set("a", Phase::Connected);
        assert_eq!(*rx.borrow(), agent_ended, "the end is final");
        assert!(calls.subscribe("b").is_none());
        assert!(!calls.hangup("b"));
        let json = serde_json::to_value(Phase::Queued { position: Some(3) }).unwrap_or_default();
        assert_eq!(json, serde_json::json!({"state": "queued", "position": 3}));
    }

    #[test]
    fn the_dialed_name_keeps_only_what_a_sip_user_part_takes() {
        assert_eq!(dialed_for("main"), "widget-main");
        assert_eq!(dialed_for("sales desk;x=1"), "widget-salesdeskx1");
    }
}

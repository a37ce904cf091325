//! One dial attempt of an accepted callback: the customer's leg goes out through the trunk
//! (digest answered by [`OutboundLeg`]), and once it answers, its PCMU is relayed to and from the
//! agent's leg (their SIP phone's RTP or their browser's WebRTC) until either side hangs up.
//! The outcome goes back to the ACD task, which frees the agent and retries or settles the
//! callback; every attempt is its own call record.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;

use crate::cdr::{CallEvent, CallRecord, Direction, Disposition, HangupBy};
use crate::rtc::{RtcEvent, RtcLeg};
use crate::sip::uac::LegEvent;

use super::acd_task::{AcdCmd, AgentMsg};
use super::callbacks::{Callback, DialError};
use super::outbound::{LegCtl, LegMedia, OutboundLeg, OutboundRequest};
use super::Shared;

/// How long the customer's phone may ring before the attempt counts as unanswered.
pub const RING_TIMEOUT: Duration = Duration::from_secs(30);

/// The agent's half of the bridge, as their answer brought it.
pub enum AgentSide {
    /// The browser's SDP offer, answered here with a WebRTC leg.
    WebRtc(String),
    /// Their SIP phone's answered leg.
    Sip(LegMedia),
}

/// How an attempt ended, for the ACD task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The customer answered and the conversation is over.
    Completed,
    /// Busy, no answer or a failure: the SIP status (408 for no answer).
    NotReached(u16),
}

/// What the agent is told about an attempt that did not reach the customer.
pub fn reason(code: u16) -> &'static str {
    match code {
        486 | 600 => "busy",
        408 | 480 | 487 => "no_answer",
        _ => "failed",
    }
}

/// Starts the attempt; the outcome arrives at the ACD task as [`AcdCmd::CallbackDone`].
/// Returns the sender that hangs the attempt up (the agent's console hang-up).
pub fn spawn(
    shared: &Arc<Shared>,
    cb: &Callback,
    agent_id: &str,
    agent: mpsc::UnboundedSender<AgentMsg>,
    side: AgentSide,
) -> Result<mpsc::UnboundedSender<()>, DialError> {
    let trunk = shared.config.trunk.as_ref().ok_or(DialError::NotEnabled)?;
    let peer = trunk.peer().ok_or(DialError::NotEnabled)?;
    let (sip, local_sip) = shared.sip_out.get().cloned().ok_or(DialError::SipDown)?;
    let user: String = cb
        .number
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .take(32)
        .collect();
    let target =
        rsip::Uri::try_from(format!("sip:{user}@{}{}", peer.addr, trunk.uri_params()).as_str())
            .map_err(|_| DialError::BadNumber)?;
    let from = trunk
        .caller_id_for(&cb.number)
        .unwrap_or("anonymous")
        .to_string();
    let req = OutboundRequest {
        target,
        peer,
        from_user: from.clone(),
        from_display: None,
        credentials: trunk.credentials(),
        ring_timeout: RING_TIMEOUT,
        extra_headers: Vec::new(),
    };
    let leg = OutboundLeg::place(shared.clone(), sip, local_sip, req).map_err(DialError::Io)?;
    let mut rec = CallRecord::new(
        leg.call_id.clone(),
        Direction::Callback,
        from,
        cb.number.clone(),
        Utc::now(),
    );
    rec.queue = Some(cb.queue.clone());
    rec.priority = Some(cb.priority);
    rec.agent_id = Some(agent_id.to_string());
    rec.events.push(CallEvent {
        at: Utc::now(),
        kind: "callback_attempt".into(),
        detail: serde_json::json!({ "callback_id": cb.id, "attempt": cb.attempts }),
    });
    shared.cdr.begin(rec.clone());
    let (hangup_tx, hangup_rx) = mpsc::unbounded_channel();
    let attempt = Attempt {
        shared: shared.clone(),
        callback_id: cb.id.clone(),
        agent_id: agent_id.to_string(),
        agent,
        rec,
    };
    tokio::spawn(attempt.run(leg, side, hangup_rx));
    Ok(hangup_tx)
}

struct Attempt {
    shared: Arc<Shared>,
    callback_id: String,
    agent_id: String,
    agent: mpsc::UnboundedSender<AgentMsg>,
    rec: CallRecord,
}

impl Attempt {
    async fn run(
        mut self,
        mut leg: OutboundLeg,
        side: AgentSide,
        mut hangup: mpsc::UnboundedReceiver<()>,
    ) {
        let outcome = self.dial(&mut leg, side, &mut hangup).await;
        let now = Utc::now();
        self.rec.ended_at = Some(now);
        match outcome {
            Outcome::Completed => {
                self.rec.disposition = Some(Disposition::Completed);
                if let Some(at) = self.rec.answered_at {
                    self.rec.talk_ms = Some((now - at).num_milliseconds());
                }
            }
            Outcome::NotReached(code) => {
                self.rec.disposition = Some(Disposition::Failed);
                self.rec.hangup_by = Some(HangupBy::System);
                self.rec.events.push(CallEvent {
                    at: now,
                    kind: "callback_not_reached".into(),
                    detail: serde_json::json!({ "status": code, "reason": reason(code) }),
                });
            }
        }
        self.shared.cdr.finish(self.rec.clone());
        if let Some(acd) = &self.shared.acd {
            let _ = acd.send(AcdCmd::CallbackDone {
                call_id: self.callback_id.clone(),
                agent_id: self.agent_id.clone(),
                outcome,
            });
        }
    }

    async fn dial(
        &mut self,
        leg: &mut OutboundLeg,
        mut side: AgentSide,
        hangup: &mut mpsc::UnboundedReceiver<()>,
    ) -> Outcome {
        // Ringing: only the customer's answer, a refusal or the agent giving up matter.
        let answered = loop {
            tokio::select! {
                ev = leg.events.recv() => match ev {
                    Some(LegEvent::Answered { .. }) => break true,
                    Some(LegEvent::Failed(code)) => {
                        self.status_event(code);
                        close_agent(side).await;
                        return Outcome::NotReached(code);
                    }
                    Some(LegEvent::Ended(_)) | None => {
                        close_agent(side).await;
                        return Outcome::NotReached(408);
                    }
                    Some(_) => {}
                },
                _ = hangup.recv() => {
                    let _ = leg.ctl.send(LegCtl::Hangup);
                    break false;
                }
                _ = agent_gone(&mut side) => {
                    let _ = leg.ctl.send(LegCtl::Hangup);
                    break false;
                }
            }
        };
        if !answered {
            close_agent(side).await;
            self.rec.hangup_by = Some(HangupBy::Agent);
            return Outcome::NotReached(487);
        }
        self.status_event(200);
        self.rec.answered_at = Some(Utc::now());
        self.rec.agent_answered_at = self.rec.answered_at;
        self.shared.cdr.update(self.rec.clone());
        let Some(mut customer) = leg.media.take() else {
            close_agent(side).await;
            return Outcome::Completed;
        };
        let mut agent = match side {
            AgentSide::Sip(m) => Bridge::Sip(m),
            AgentSide::WebRtc(offer) => match RtcLeg::answer(&self.shared.rtc, &offer).await {
                Ok((rtc, sdp)) => {
                    let _ = self.agent.send(AgentMsg::AnswerSdp {
                        call_id: self.callback_id.clone(),
                        sdp,
                    });
                    Bridge::WebRtc(rtc)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the agent's WebRTC answer failed");
                    let _ = leg.ctl.send(LegCtl::Hangup);
                    self.rec.hangup_by = Some(HangupBy::System);
                    return Outcome::Completed;
                }
            },
        };
        let _ = self.agent.send(AgentMsg::Connected {
            call_id: self.callback_id.clone(),
        });
        let by = loop {
            tokio::select! {
                frame = customer.audio_in.recv() => match frame {
                    Some(f) => agent.send_pcmu(&f),
                    None => break HangupBy::Caller,
                },
                frame = agent.recv() => match frame {
                    Some(f) => customer.send_pcmu(&f),
                    None => break HangupBy::Agent,
                },
                _ = hangup.recv() => break HangupBy::Agent,
            }
        };
        self.rec.hangup_by = Some(by);
        let _ = customer.ctl.send(LegCtl::Hangup);
        agent.close().await;
        Outcome::Completed
    }

    fn status_event(&mut self, code: u16) {
        self.rec.events.push(CallEvent {
            at: Utc::now(),
            kind: "trunk_response".into(),
            detail: serde_json::json!({ "status": code }),
        });
    }
}

/// Resolves when a SIP agent's phone hangs up while the customer still rings (what it says
/// meanwhile is dropped: nobody is there to hear it).
async fn agent_gone(side: &mut AgentSide) {
    match side {
        AgentSide::Sip(m) => while m.audio_in.recv().await.is_some() {},
        AgentSide::WebRtc(_) => std::future::pending().await,
    }
}

async fn close_agent(side: AgentSide) {
    if let AgentSide::Sip(m) = side {
        let _ = m.ctl.send(LegCtl::Hangup);
    }
}

enum Bridge {
    WebRtc(RtcLeg),
    Sip(LegMedia),
}

impl Bridge {
    fn send_pcmu(&self, frame: &[u8]) {
        match self {
            Bridge::WebRtc(l) => {
                let _ = l.send_pcmu(frame);
            }
            Bridge::Sip(m) => m.send_pcmu(frame),
        }
    }

    /// The agent's next frame; `None` once they are gone.
    async fn recv(&mut self) -> Option<Vec<u8>> {
        match self {
            Bridge::Sip(m) => m.audio_in.recv().await,
            Bridge::WebRtc(l) => loop {
                match l.recv().await? {
                    RtcEvent::Audio { payload, .. } => return Some(payload),
                    RtcEvent::Closed => return None,
                    _ => {}
                }
            },
        }
    }

    async fn close(self) {
        match self {
            Bridge::WebRtc(l) => l.close().await,
            Bridge::Sip(m) => {
                let _ = m.ctl.send(LegCtl::Hangup);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_silence_are_told_apart_for_the_agent() {
        assert_eq!(reason(486), "busy");
        assert_eq!(reason(408), "no_answer");
        assert_eq!(reason(480), "no_answer");
        assert_eq!(reason(503), "failed");
    }
}

//! A SIP agent: while an agent's phone is registered, this task stands in for their console.
//! It logs them in to the ACD and available (like Asterisk's dynamic queue members), turns a ring
//! into an INVITE to the phone, and the phone's answer, refusal or silence into the console's
//! answer or decline. Unregistering or expiry logs them out (a ringing call is re-offered).
//!
//! An open console wins: the ACD refuses a SIP login while the agent's console is logged in.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::sip::uac::LegEvent;
use crate::sip::Peer;

use super::acd_task::{AcdCmd, AgentMsg};
use super::outbound::{LegCtl, OutboundLeg, OutboundRequest};
use super::sip_task::SipCmd;
use super::Shared;

/// Session ids of SIP logins carry this bit, so the ACD can tell them from consoles.
pub const SIP_SESSION: u64 = 1 << 63;
static SESSIONS: AtomicU64 = AtomicU64::new(1);

/// The phone keeps ringing until the queue's own ring timeout withdraws the offer; this only
/// bounds a leg nobody cancels.
const LEG_RING_LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub enum AgentUpdate {
    Binding {
        contact: Box<rsip::Uri>,
        peer: Peer,
        expires: Duration,
    },
    Unbind,
}

struct Ringing {
    call_id: String,
    leg: OutboundLeg,
    answered: bool,
}

pub fn spawn(
    shared: Arc<Shared>,
    sip: mpsc::UnboundedSender<SipCmd>,
    local_sip: SocketAddr,
    agent_id: String,
    name: String,
) -> mpsc::UnboundedSender<AgentUpdate> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(shared, sip, local_sip, agent_id, name, rx));
    tx
}

async fn next_leg_event(current: &mut Option<Ringing>) -> Option<LegEvent> {
    match current.as_mut() {
        Some(r) => r.leg.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn run(
    shared: Arc<Shared>,
    sip: mpsc::UnboundedSender<SipCmd>,
    local_sip: SocketAddr,
    agent_id: String,
    name: String,
    mut updates: mpsc::UnboundedReceiver<AgentUpdate>,
) {
    let Some(acd) = shared.acd.clone() else {
        tracing::info!(agent = %agent_id, "a SIP phone registered but no queues are configured");
        return;
    };
    let session = SIP_SESSION | SESSIONS.fetch_add(1, Ordering::Relaxed);
    let (agent_tx, mut agent_rx) = mpsc::unbounded_channel::<AgentMsg>();
    let mut binding: Option<(rsip::Uri, Peer)> = None;
    let mut expires_at = tokio::time::Instant::now();
    let mut logged_in = false;
    let mut current: Option<Ringing> = None;
    tracing::debug!(agent = %agent_id, name = %name, "SIP agent task started");
    loop {
        tokio::select! {
            u = updates.recv() => match u {
                Some(AgentUpdate::Binding { contact, peer, expires }) => {
                    binding = Some((*contact, peer));
                    expires_at = tokio::time::Instant::now() + expires;
                    if !logged_in {
                        logged_in = true;
                        let _ = acd.send(AcdCmd::Login { agent_id: agent_id.clone(), session, tx: agent_tx.clone() });
                        let _ = acd.send(AcdCmd::SetState { agent_id: agent_id.clone(), available: true });
                    }
                }
                Some(AgentUpdate::Unbind) | None => break,
            },
            _ = tokio::time::sleep_until(expires_at), if binding.is_some() => {
                tracing::info!(agent = %agent_id, "SIP registration expired");
                break;
            }
            msg = agent_rx.recv() => match msg {
                Some(AgentMsg::Ring { call_id, queue, caller, .. }) => {
                    let Some((contact, peer)) = binding.clone() else { continue };
                    if current.is_some() {
                        let _ = acd.send(AcdCmd::Decline { agent_id: agent_id.clone(), call_id });
                        continue;
                    }
                    let req = OutboundRequest {
                        target: contact,
                        peer,
                        from_user: caller.clone(),
                        from_display: Some(caller),
                        credentials: None,
                        ring_timeout: LEG_RING_LIMIT,
                        extra_headers: vec![("X-Switchboard-Queue".into(), queue)],
                    };
                    match OutboundLeg::place(shared.clone(), sip.clone(), local_sip, req) {
                        Ok(leg) => current = Some(Ringing { call_id, leg, answered: false }),
                        Err(e) => {
                            tracing::warn!(error = %e, "no RTP port for a SIP agent's leg");
                            let _ = acd.send(AcdCmd::Decline { agent_id: agent_id.clone(), call_id });
                        }
                    }
                }
                Some(AgentMsg::RingCancelled { call_id, .. }) | Some(AgentMsg::CallEnded { call_id, .. }) => {
                    if let Some(r) = current.as_ref().filter(|r| r.call_id == call_id) {
                        let _ = r.leg.ctl.send(LegCtl::Hangup);
                    }
                }
                Some(AgentMsg::Replaced) => {
                    // The console logged in: it has the agent until it closes.
                    logged_in = false;
                }
                Some(_) => {}
                None => break,
            },
            ev = next_leg_event(&mut current) => {
                let Some(r) = current.as_mut() else { continue };
                match ev {
                    Some(LegEvent::Trying) | Some(LegEvent::Ringing) => {}
                    Some(LegEvent::Answered { .. }) => {
                        r.answered = true;
                        if let Some(media) = r.leg.media.take() {
                            let _ = acd.send(AcdCmd::AnswerSip { agent_id: agent_id.clone(), call_id: r.call_id.clone(), media });
                        }
                    }
                    Some(LegEvent::Failed(code)) => {
                        tracing::info!(agent = %agent_id, status = code, "the agent's phone did not answer");
                        let _ = acd.send(AcdCmd::Decline { agent_id: agent_id.clone(), call_id: r.call_id.clone() });
                        current = None;
                    }
                    // The call's side learns of the agent's BYE from its media channel closing.
                    Some(LegEvent::Ended(_)) | None => current = None,
                }
            }
        }
    }
    if let Some(r) = current.take() {
        let _ = r.leg.ctl.send(LegCtl::Hangup);
    }
    if logged_in {
        let _ = acd.send(AcdCmd::Logout { agent_id, session });
    }
}

//! Client transactions: INVITE (RFC 3261 §17.1.1 + RFC 6026) and non-INVITE (§17.1.2), the ACK
//! for non-2xx finals, and CANCEL (§9.1).

use std::time::Duration;

use rsip::{Header, Method, Request, Response, SipMessage};

use super::{ClientTxKey, Retransmit, TimerKey, TransactionLayer, TxError, TxEvent};
use crate::sip::message;
use crate::sip::syntax::ViaInfo;
use crate::sip::{Peer, Transport};
use crate::time::Instant;

/// Timer D on unreliable transports: long enough to absorb every retransmitted final response.
const TIMER_D: Duration = Duration::from_secs(32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClientState {
    /// INVITE "Calling" / non-INVITE "Trying": nothing heard yet.
    Calling,
    Proceeding,
    Completed,
    /// INVITE only: a 2xx arrived; further 2xx (retransmissions, forks) for Timer M.
    Accepted,
}

pub(super) struct ClientTx {
    invite: bool,
    state: ClientState,
    request: Request,
    pub(super) peer: Peer,
    bytes: Vec<u8>,
    pub(super) retransmit: Option<Retransmit>,
    pub(super) deadline: Option<Instant>,
    /// The ACK the layer generated for a non-2xx final.
    ack: Option<Vec<u8>>,
    /// ACKs the TU sent for 2xx responses, by To tag, re-sent when that 2xx is retransmitted.
    acks_2xx: Vec<(String, Vec<u8>)>,
    seen_2xx: Vec<String>,
    last_provisional: Option<(u16, Option<String>)>,
    cancel_pending: bool,
}

impl ClientTx {
    pub(super) fn awaiting_final(&self) -> bool {
        matches!(self.state, ClientState::Calling | ClientState::Proceeding)
    }
}

/// Headers shared by the ACK for a non-2xx and by CANCEL: the INVITE's top Via (same branch),
/// its Route set, From, Call-ID, and `to` — with CSeq rewritten to `method`.
fn derived_request(invite: &Request, method: Method, to: Option<&Header>) -> Request {
    let mut headers: Vec<Header> = Vec::new();
    if let Some(via) = invite.headers.iter().find(|h| matches!(h, Header::Via(_))) {
        headers.push(via.clone());
    }
    headers.extend(
        invite
            .headers
            .iter()
            .filter(|h| matches!(h, Header::Route(_)))
            .cloned(),
    );
    for h in invite.headers.iter() {
        match h {
            Header::From(_) | Header::CallId(_) => headers.push(h.clone()),
            Header::To(_) => headers.push(to.cloned().unwrap_or_else(|| h.clone())),
            _ => {}
        }
    }
    let seq = message::cseq(invite).map_or(1, |(n, _)| n);
    headers.push(Header::CSeq(format!("{seq} {method}").into()));
    headers.push(Header::MaxForwards(String::from("70").into()));
    Request {
        method,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

impl TransactionLayer {
    pub(super) fn start_client(
        &mut self,
        now: Instant,
        peer: Peer,
        request: Request,
        branch: String,
    ) -> ClientTxKey {
        let key = ClientTxKey {
            branch,
            method: request.method.to_string(),
        };
        let bytes = message::to_bytes(&SipMessage::Request(request.clone()));
        self.send(peer, bytes.clone());
        if request.method == Method::Ack {
            return key;
        }
        let invite = request.method == Method::Invite;
        let cap = (!invite).then_some(self.cfg.t2);
        let tx = ClientTx {
            invite,
            state: ClientState::Calling,
            request,
            peer,
            bytes,
            retransmit: Retransmit::start(now, peer.transport, self.cfg.t1, cap),
            deadline: Some(now + self.cfg.long()),
            ack: None,
            acks_2xx: Vec::new(),
            seen_2xx: Vec::new(),
            last_provisional: None,
            cancel_pending: false,
        };
        self.clients.insert(key.clone(), tx);
        self.schedule(TimerKey::Client(key.clone()));
        key
    }

    /// Cancels a pending outbound INVITE (RFC 3261 §9.1). Returns the CANCEL's own key. Before any
    /// provisional response the CANCEL is held back and sent when one arrives, as §9.1 requires.
    pub fn cancel(&mut self, now: Instant, key: &ClientTxKey) -> Result<ClientTxKey, TxError> {
        let cancel_key = ClientTxKey {
            branch: key.branch.clone(),
            method: "CANCEL".into(),
        };
        let already_sent = self.clients.contains_key(&cancel_key);
        let tx = self
            .clients
            .get_mut(key)
            .ok_or(TxError::UnknownTransaction)?;
        if !tx.invite {
            return Err(TxError::NotAnInvite);
        }
        let state = tx.state;
        if matches!(state, ClientState::Completed | ClientState::Accepted) {
            return Err(TxError::AlreadyFinal);
        }
        if already_sent || tx.cancel_pending {
            return Ok(cancel_key);
        }
        match state {
            ClientState::Calling => tx.cancel_pending = true,
            ClientState::Proceeding => self.send_cancel(now, key),
            ClientState::Completed | ClientState::Accepted => return Err(TxError::AlreadyFinal),
        }
        Ok(cancel_key)
    }

    fn send_cancel(&mut self, now: Instant, invite_key: &ClientTxKey) {
        let Some(tx) = self.clients.get_mut(invite_key) else {
            return;
        };
        tx.cancel_pending = false;
        let (peer, cancel) = (tx.peer, derived_request(&tx.request, Method::Cancel, None));
        self.start_client(now, peer, cancel, invite_key.branch.clone());
    }

    pub(super) fn remember_2xx_ack(&mut self, ack: &Request, bytes: &[u8]) {
        let (Some(call_id), Some((seq, _))) = (message::call_id(ack), message::cseq(ack)) else {
            return;
        };
        let tag = message::to_tag(ack).unwrap_or_default();
        let matching = self.clients.values_mut().find(|tx| {
            tx.invite
                && tx.state == ClientState::Accepted
                && message::call_id(&tx.request).as_deref() == Some(call_id.as_str())
                && message::cseq(&tx.request).map(|(n, _)| n) == Some(seq)
        });
        if let Some(tx) = matching {
            tx.acks_2xx.retain(|(t, _)| *t != tag);
            tx.acks_2xx.push((tag, bytes.to_vec()));
        }
    }

    pub(super) fn handle_response(&mut self, now: Instant, peer: Peer, resp: Response) {
        let branch = message::header(&resp, "Via")
            .and_then(|v| ViaInfo::parse(&v)?.branch().map(str::to_string));
        let (Some(branch), Some((_, method))) = (branch, message::cseq(&resp)) else {
            tracing::debug!(peer = %peer.addr, "response without branch or CSeq dropped");
            return;
        };
        let key = ClientTxKey {
            branch,
            method: method.to_string(),
        };
        let Some(tx) = self.clients.get_mut(&key) else {
            tracing::debug!(peer = %peer.addr, "response matches no client transaction");
            return;
        };
        let code = resp.status_code.code();
        let to_tag = message::to_tag(&resp);
        let (cfg, reliable) = (self.cfg, tx.peer.transport == Transport::Tcp);
        let mut emit = false;
        let mut remove = false;
        let mut cancel_now = false;
        match (tx.state, code) {
            (ClientState::Calling | ClientState::Proceeding, 100..=199) => {
                tx.state = ClientState::Proceeding;
                if tx.invite {
                    // Timers A and B only run in Calling; from here the TU decides how long to ring.
                    tx.retransmit = None;
                    tx.deadline = None;
                    cancel_now = tx.cancel_pending;
                } else if let Some(r) = tx.retransmit.as_mut() {
                    r.interval = cfg.t2;
                }
                let provisional = Some((code, to_tag));
                emit = tx.last_provisional != provisional;
                tx.last_provisional = provisional;
            }
            (ClientState::Calling | ClientState::Proceeding, 200..=299) if tx.invite => {
                tx.state = ClientState::Accepted;
                tx.retransmit = None;
                tx.deadline = Some(now + cfg.long());
                tx.seen_2xx.push(to_tag.unwrap_or_default());
                tx.cancel_pending = false;
                emit = true;
            }
            (ClientState::Calling | ClientState::Proceeding, _) => {
                tx.state = ClientState::Completed;
                tx.retransmit = None;
                tx.cancel_pending = false;
                if tx.invite {
                    let to = resp.headers.iter().find(|h| matches!(h, Header::To(_)));
                    let ack = message::to_bytes(&SipMessage::Request(derived_request(
                        &tx.request,
                        Method::Ack,
                        to,
                    )));
                    self.transmits.push_back(super::Transmit {
                        peer: tx.peer,
                        bytes: ack.clone(),
                    });
                    tx.ack = Some(ack);
                    tx.deadline = Some(now + TIMER_D);
                } else {
                    tx.deadline = Some(now + cfg.t4);
                }
                remove = reliable;
                emit = true;
            }
            (ClientState::Accepted, 200..=299) => {
                let tag = to_tag.unwrap_or_default();
                if tx.seen_2xx.contains(&tag) {
                    if let Some((_, ack)) = tx.acks_2xx.iter().find(|(t, _)| *t == tag) {
                        self.transmits.push_back(super::Transmit {
                            peer: tx.peer,
                            bytes: ack.clone(),
                        });
                    }
                } else {
                    // Another fork answered: the TU must ACK (and probably BYE) this dialog too.
                    tx.seen_2xx.push(tag);
                    emit = true;
                }
            }
            (ClientState::Completed, 300..=699) if tx.invite => {
                if let Some(ack) = tx.ack.clone() {
                    self.transmits.push_back(super::Transmit {
                        peer: tx.peer,
                        bytes: ack,
                    });
                }
            }
            _ => {}
        }
        if remove {
            self.clients.remove(&key);
        }
        self.schedule(TimerKey::Client(key.clone()));
        if cancel_now {
            self.send_cancel(now, &key);
        }
        if emit {
            self.events.push_back(TxEvent::Response {
                key,
                response: resp,
            });
        }
    }

    /// Fires the due timers of the transactions `due` (from the timer heap).
    pub(super) fn client_timeouts(&mut self, now: Instant, due: &[ClientTxKey]) {
        let mut expired = Vec::new();
        for key in due {
            let Some(tx) = self.clients.get_mut(key) else {
                continue;
            };
            if let Some(r) = tx.retransmit.as_mut().filter(|r| r.at <= now) {
                r.advance();
                self.transmits.push_back(super::Transmit {
                    peer: tx.peer,
                    bytes: tx.bytes.clone(),
                });
            }
            if tx.deadline.is_some_and(|d| d <= now) {
                expired.push(key.clone());
            }
        }
        for key in expired {
            if self
                .clients
                .remove(&key)
                .is_some_and(|tx| tx.awaiting_final())
            {
                self.events.push_back(TxEvent::ClientTimeout { key });
            }
        }
    }
}

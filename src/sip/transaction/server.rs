//! Server transactions: INVITE (RFC 3261 §17.2.1 + RFC 6026) and non-INVITE (§17.2.2), CANCEL
//! handling (§9.2) and ACK matching.

use rsip::{Header, Method, Request, SipMessage};

use super::{AckKey, Retransmit, ServerTxKey, TimerKey, TransactionLayer, TxError, TxEvent};
use crate::sip::message;
use crate::sip::syntax::ViaInfo;
use crate::sip::{Peer, Transport};
use crate::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ServerState {
    /// Non-INVITE, no response yet: retransmissions are absorbed silently.
    Trying,
    Proceeding,
    /// A final response sent (non-2xx for INVITE); retransmitted requests get it again.
    Completed,
    /// INVITE only: ACK received for the non-2xx; absorbing ACK retransmissions for Timer I.
    Confirmed,
    /// INVITE only: 2xx sent; retransmitting it until the ACK, Timer L (RFC 6026).
    Accepted,
}

pub(super) struct ServerTx {
    invite: bool,
    state: ServerState,
    request: Request,
    reply_to: Peer,
    last: Option<Vec<u8>>,
    pub(super) retransmit: Option<Retransmit>,
    pub(super) deadline: Option<Instant>,
    acked: bool,
    to_tag: Option<String>,
    ack_key: Option<AckKey>,
}

/// Where responses go (RFC 3261 §18.2.2, RFC 3581): back to the source for TCP or `rport`,
/// otherwise to the source IP at the port in the Via's sent-by.
fn reply_destination(peer: Peer, via: &ViaInfo) -> Peer {
    if peer.transport == Transport::Tcp || via.has_param("rport") {
        return peer;
    }
    let addr = core::net::SocketAddr::new(peer.addr.ip(), via.port.unwrap_or(5060));
    Peer {
        transport: peer.transport,
        addr,
    }
}

/// Adds `received` (and fills `rport`) to the top Via, as a server transport must (§18.2.1).
fn stamp_top_via(req: &mut Request, via: &ViaInfo, peer: Peer) {
    let ip = peer.addr.ip().to_string();
    let rport = via.has_param("rport");
    let needs_received = rport || via.host.trim_matches(['[', ']']) != ip;
    if !needs_received {
        return;
    }
    let Some(Header::Via(top)) = req.headers.iter_mut().find(|h| matches!(h, Header::Via(_)))
    else {
        return;
    };
    let value = rsip::headers::UntypedHeader::value(top).to_string();
    let mut parts = value.split(';');
    let mut out = parts.next().unwrap_or_default().trim_end().to_string();
    for p in parts {
        let name = p.split('=').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("received") {
            continue;
        }
        out.push(';');
        if name.eq_ignore_ascii_case("rport") {
            out.push_str(&format!("rport={}", peer.addr.port()));
        } else {
            out.push_str(p.trim());
        }
    }
    out.push_str(&format!(";received={ip}"));
    *top = out.into();
}

fn server_key(req: &Request, via: &ViaInfo) -> ServerTxKey {
    let method = match req.method {
        Method::Ack => "INVITE".to_string(),
        ref m => m.to_string(),
    };
    let sent_by = via.sent_by();
    match via.branch() {
        Some(b) if b.starts_with("z9hG4bK") => ServerTxKey {
            branch: b.to_string(),
            sent_by,
            method,
        },
        // RFC 2543 peers: match on what §17.2.3 lists instead of the branch.
        _ => {
            let call_id = message::call_id(req).unwrap_or_default();
            let from_tag = message::from_tag(req).unwrap_or_default();
            let seq = message::cseq(req).map_or(0, |(n, _)| n);
            let uri = req.uri.to_string();
            ServerTxKey {
                branch: format!("2543|{call_id}|{from_tag}|{seq}|{uri}"),
                sent_by,
                method,
            }
        }
    }
}

fn ack_key(req: &Request) -> Option<AckKey> {
    Some((
        message::call_id(req)?,
        message::from_tag(req).unwrap_or_default(),
        message::cseq(req)?.0,
    ))
}

impl TransactionLayer {
    pub(super) fn handle_request(&mut self, now: Instant, peer: Peer, req: Request) {
        if let Some(key) = self.handle_request_for(now, peer, req) {
            self.schedule(TimerKey::Server(key));
        }
    }

    /// Handles a request; the key of the transaction it went to, if any.
    fn handle_request_for(
        &mut self,
        now: Instant,
        peer: Peer,
        mut req: Request,
    ) -> Option<ServerTxKey> {
        let Some(via) = message::header(&req, "Via").and_then(|v| ViaInfo::parse(&v)) else {
            tracing::debug!(peer = %peer.addr, "request without a usable Via dropped");
            return None;
        };
        let key = server_key(&req, &via);
        if req.method == Method::Ack {
            self.handle_ack(now, peer, req, key.clone());
            return Some(key);
        }
        stamp_top_via(&mut req, &via, peer);
        if let Some(tx) = self.servers.get(&key) {
            // A retransmission: repeat the last response, never bother the TU again.
            let absorbing = tx.state == ServerState::Confirmed;
            if let Some(bytes) = tx.last.clone().filter(|_| !absorbing) {
                let to = tx.reply_to;
                self.send(to, bytes);
            }
            return None;
        }
        let reply_to = reply_destination(peer, &via);
        if self.servers.len() >= self.max_servers && !self.evict_lingering() {
            // A flood must not grow memory without bound; well-behaved clients retry later.
            let mut busy = message::response_to(&req, 503, None);
            busy.headers
                .push(Header::RetryAfter("5".to_string().into()));
            self.send(reply_to, message::to_bytes(&SipMessage::Response(busy)));
            return None;
        }
        if req.method == Method::Cancel {
            self.handle_cancel(now, reply_to, req, key);
            return None;
        }
        let invite = req.method == Method::Invite;
        let mut tx = ServerTx {
            invite,
            state: if invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            request: req.clone(),
            reply_to,
            last: None,
            retransmit: None,
            // A TU that never answers a non-INVITE must not leak it; the client gave up by
            // Timer F anyway. INVITEs wait for the TU however long it rings.
            deadline: (!invite).then(|| now + self.cfg.long()),
            acked: false,
            to_tag: None,
            ack_key: None,
        };
        if invite {
            // 100 Trying at once stops the caller's INVITE retransmissions (§17.2.1).
            let trying =
                message::to_bytes(&SipMessage::Response(message::response_to(&req, 100, None)));
            tx.last = Some(trying.clone());
            self.send(reply_to, trying);
        }
        self.servers.insert(key.clone(), tx);
        self.events.push_back(TxEvent::Request {
            key: key.clone(),
            peer,
            request: req,
        });
        Some(key)
    }

    fn handle_ack(&mut self, now: Instant, peer: Peer, req: Request, key: ServerTxKey) {
        let t4 = self.cfg.t4;
        if let Some(tx) = self.servers.get_mut(&key) {
            match tx.state {
                ServerState::Completed => {
                    tx.state = ServerState::Confirmed;
                    tx.retransmit = None;
                    if tx.reply_to.transport == Transport::Tcp {
                        self.servers.remove(&key);
                    } else {
                        tx.deadline = Some(now + t4);
                    }
                }
                // Some clients reuse the INVITE branch for the 2xx ACK.
                ServerState::Accepted if !tx.acked => {
                    tx.acked = true;
                    tx.retransmit = None;
                    self.events.push_back(TxEvent::Ack { peer, request: req });
                }
                _ => {}
            }
            return;
        }
        let accepted = ack_key(&req)
            .and_then(|k| self.accepted.get(&k))
            .and_then(|k| self.servers.get_mut(k));
        match accepted {
            Some(tx) if tx.acked => {}
            Some(tx) => {
                tx.acked = true;
                tx.retransmit = None;
                self.events.push_back(TxEvent::Ack { peer, request: req });
            }
            None => self.events.push_back(TxEvent::Ack { peer, request: req }),
        }
    }

    fn handle_cancel(&mut self, now: Instant, reply_to: Peer, cancel: Request, key: ServerTxKey) {
        let invite_key = ServerTxKey {
            method: "INVITE".into(),
            ..key.clone()
        };
        let (status, cancel_invite, tag) = match self.servers.get(&invite_key) {
            None => (481, false, None),
            Some(tx) => (200, tx.state == ServerState::Proceeding, tx.to_tag.clone()),
        };
        let tag = tag.unwrap_or_else(|| self.new_tag());
        // The CANCEL is its own non-INVITE transaction, so its retransmissions get this answer again.
        self.servers.insert(
            key.clone(),
            ServerTx {
                invite: false,
                state: ServerState::Trying,
                request: cancel.clone(),
                reply_to,
                last: None,
                retransmit: None,
                deadline: None,
                acked: false,
                to_tag: None,
                ack_key: None,
            },
        );
        let answer = message::response_to(&cancel, status, Some(&tag));
        let _ = self.respond(now, &key, answer);
        if cancel_invite {
            if let Some(invite) = self.servers.get(&invite_key).map(|tx| tx.request.clone()) {
                let terminated = message::response_to(&invite, 487, Some(&tag));
                let _ = self.respond(now, &invite_key, terminated);
                self.events
                    .push_back(TxEvent::Cancelled { invite: invite_key });
            }
        }
    }

    /// Sends the TU's response in server transaction `key`. Provisional responses may repeat;
    /// the first final response moves the transaction on and starts its timers.
    pub fn respond(
        &mut self,
        now: Instant,
        key: &ServerTxKey,
        response: rsip::Response,
    ) -> Result<(), TxError> {
        let r = self.respond_in(now, key, response);
        self.schedule(TimerKey::Server(key.clone()));
        r
    }

    fn respond_in(
        &mut self,
        now: Instant,
        key: &ServerTxKey,
        response: rsip::Response,
    ) -> Result<(), TxError> {
        let cfg = self.cfg;
        let code = response.status_code.code();
        if !(100..=699).contains(&code) {
            return Err(TxError::InvalidStatus(code));
        }
        let tx = self
            .servers
            .get_mut(key)
            .ok_or(TxError::UnknownTransaction)?;
        if !matches!(tx.state, ServerState::Trying | ServerState::Proceeding) {
            return Err(TxError::AlreadyFinal);
        }
        if let Some(tag) = message::to_tag(&response) {
            tx.to_tag = Some(tag);
        }
        let bytes = message::to_bytes(&SipMessage::Response(response));
        let transport = tx.reply_to.transport;
        tx.last = Some(bytes.clone());
        let mut finished = false;
        match (code, tx.invite) {
            (100..=199, _) => tx.state = ServerState::Proceeding,
            (200..=299, true) => {
                tx.state = ServerState::Accepted;
                tx.retransmit = Retransmit::start(now, transport, cfg.t1, Some(cfg.t2));
                tx.deadline = Some(now + cfg.long());
                tx.ack_key = ack_key(&tx.request);
            }
            (_, true) => {
                tx.state = ServerState::Completed;
                tx.retransmit = Retransmit::start(now, transport, cfg.t1, Some(cfg.t2));
                tx.deadline = Some(now + cfg.long());
            }
            (_, false) => {
                tx.state = ServerState::Completed;
                // Timer J: 64*T1 to absorb retransmissions on UDP, nothing to wait for on TCP.
                finished = transport == Transport::Tcp;
                tx.deadline = Some(now + cfg.long());
            }
        }
        let to = tx.reply_to;
        if let Some(k) = tx.ack_key.clone() {
            self.accepted.insert(k, key.clone());
        }
        if finished {
            self.servers.remove(key);
        }
        self.send(to, bytes);
        Ok(())
    }

    /// Makes room in a full table by dropping the transactions that only linger to absorb
    /// retransmissions (a non-INVITE answered, an INVITE whose final answer was acknowledged),
    /// the ones closest to their own end first: up to an eighth of the table at a time, so the
    /// pass is rare. Forgetting one early costs at most a late retransmission handled as new
    /// (a BYE then gets 481). Without this, a burst of finished calls held the table full for
    /// 64*T1 and every new caller got 503 until those timers ran out. False when nothing was
    /// lingering: the table is full of work in progress, and new requests are refused.
    fn evict_lingering(&mut self) -> bool {
        let mut lingering: Vec<(Option<Instant>, ServerTxKey)> = self
            .servers
            .iter()
            .filter(|(_, tx)| match tx.state {
                ServerState::Completed => !tx.invite,
                ServerState::Confirmed => true,
                ServerState::Accepted => tx.acked,
                ServerState::Trying | ServerState::Proceeding => false,
            })
            .map(|(k, tx)| (tx.deadline, k.clone()))
            .collect();
        if lingering.is_empty() {
            return false;
        }
        let n = (self.max_servers / 8).clamp(1, lingering.len());
        lingering.select_nth_unstable_by(n - 1, |a, b| a.0.cmp(&b.0));
        for (_, key) in lingering.into_iter().take(n) {
            if let Some(tx) = self.servers.remove(&key) {
                if let Some(k) = &tx.ack_key {
                    self.accepted.remove(k);
                }
            }
        }
        true
    }

    /// Fires the due timers of the transactions `due` (from the timer heap).
    pub(super) fn server_timeouts(&mut self, now: Instant, due: &[ServerTxKey]) {
        let mut expired = Vec::new();
        for key in due {
            let Some(tx) = self.servers.get_mut(key) else {
                continue;
            };
            if let Some(r) = tx.retransmit.as_mut().filter(|r| r.at <= now) {
                r.advance();
                if let Some(bytes) = &tx.last {
                    self.transmits.push_back(super::Transmit {
                        peer: tx.reply_to,
                        bytes: bytes.clone(),
                    });
                }
            }
            if tx.deadline.is_some_and(|d| d <= now) {
                expired.push(key.clone());
            }
        }
        for key in expired {
            let Some(tx) = self.servers.remove(&key) else {
                continue;
            };
            if let Some(k) = &tx.ack_key {
                self.accepted.remove(k);
            }
            match tx.state {
                ServerState::Accepted if !tx.acked => {
                    let call_id = message::call_id(&tx.request).unwrap_or_default();
                    self.events.push_back(TxEvent::AckTimeout {
                        invite: key,
                        call_id,
                    });
                }
                ServerState::Completed if tx.invite => {
                    tracing::debug!(method = %key.method, "Timer H: no ACK for the final response");
                }
                _ => {}
            }
        }
    }
}

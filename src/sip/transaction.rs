//! RFC 3261 §17 transactions (with the RFC 6026 Accepted state), driven like quinn-proto: the
//! runtime feeds bytes and `now` in, then drains transmits, events and the next deadline.
//!
//! Timers are plain deadlines compared against the `now` the caller passes, so a test can lose a
//! packet, jump 32 seconds ahead and watch Timer B fire without a socket or a sleep.

mod client;
mod server;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use core::net::SocketAddr;
use rsip::{Header, Request, SipMessage};

use super::message;
use super::{Peer, Transport};
use crate::time::Instant;

/// RFC 3261 timer base values; the defaults are the RFC's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// Round-trip estimate: first retransmission interval.
    pub t1: Duration,
    /// Cap on the retransmission interval of non-INVITE requests and of responses.
    pub t2: Duration,
    /// How long the network may keep a message alive.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64*T1: Timers B, F, H, J, L and M.
    fn long(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// Identifies a server transaction: top Via branch + sent-by + method (ACK maps to INVITE).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxKey {
    branch: String,
    sent_by: String,
    method: String,
}

impl ServerTxKey {
    /// The request method this transaction serves (`"INVITE"`, `"BYE"`…).
    pub fn method(&self) -> &str {
        &self.method
    }
}

/// Identifies a client transaction: the branch we generated + the method.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxKey {
    branch: String,
    method: String,
}

impl ClientTxKey {
    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }
}

/// Bytes to put on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub peer: Peer,
    pub bytes: Vec<u8>,
}

/// What the transaction user (the runtime's call handling) must hear about.
#[derive(Clone)]
pub enum TxEvent {
    /// A new request (retransmissions are absorbed; never ACK or CANCEL). Answer with `respond`.
    Request {
        key: ServerTxKey,
        peer: Peer,
        request: rsip::Request,
    },
    /// An ACK for a 2xx we sent (its retransmission has stopped), or an ACK no transaction knows.
    Ack { peer: Peer, request: rsip::Request },
    /// The caller cancelled: the layer already answered the CANCEL 200 and the INVITE 487.
    Cancelled { invite: ServerTxKey },
    /// A response to a request we sent (retransmitted responses are absorbed).
    Response {
        key: ClientTxKey,
        response: rsip::Response,
    },
    /// Timer B / F expired, or the transport failed: the request got no final response.
    ClientTimeout { key: ClientTxKey },
    /// We sent a 2xx to an INVITE and no ACK came within 64*T1: the TU should send BYE.
    AckTimeout {
        invite: ServerTxKey,
        call_id: String,
    },
}

/// Summarises messages instead of dumping them: bodies can carry DTMF digits of a PIN (SIP INFO),
/// and events are what a runtime is most tempted to log with `{:?}`.
impl std::fmt::Debug for TxEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxEvent::Request { key, peer, request } => f
                .debug_struct("Request")
                .field("key", key)
                .field("peer", peer)
                .field("method", &request.method)
                .field("call_id", &message::call_id(request))
                .field("body_len", &request.body.len())
                .finish(),
            TxEvent::Ack { peer, request } => f
                .debug_struct("Ack")
                .field("peer", peer)
                .field("call_id", &message::call_id(request))
                .finish(),
            TxEvent::Cancelled { invite } => {
                f.debug_struct("Cancelled").field("invite", invite).finish()
            }
            TxEvent::Response { key, response } => f
                .debug_struct("Response")
                .field("key", key)
                .field("status", &response.status_code.code())
                .field("call_id", &message::call_id(response))
                .field("body_len", &response.body.len())
                .finish(),
            TxEvent::ClientTimeout { key } => {
                f.debug_struct("ClientTimeout").field("key", key).finish()
            }
            TxEvent::AckTimeout { invite, call_id } => f
                .debug_struct("AckTimeout")
                .field("invite", invite)
                .field("call_id", call_id)
                .finish(),
        }
    }
}

/// Why the TU's call into the layer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    #[error("no such transaction (finished or never existed)")]
    UnknownTransaction,
    #[error("the transaction already has a final response")]
    AlreadyFinal,
    #[error("{0} is not a valid response status")]
    InvalidStatus(u16),
    #[error("only INVITE transactions can be cancelled")]
    NotAnInvite,
}

/// A retransmission schedule: next firing time and the interval that led to it.
#[derive(Clone, Copy, Debug)]
struct Retransmit {
    at: Instant,
    interval: Duration,
    cap: Option<Duration>,
}

impl Retransmit {
    /// Only unreliable transports retransmit (RFC 3261 §17: timers A, E, G and 2xx resends).
    fn start(
        now: Instant,
        transport: Transport,
        t1: Duration,
        cap: Option<Duration>,
    ) -> Option<Retransmit> {
        (transport == Transport::Udp).then_some(Retransmit {
            at: now + t1,
            interval: t1,
            cap,
        })
    }

    fn advance(&mut self) {
        let doubled = self.interval.saturating_mul(2);
        self.interval = self.cap.map_or(doubled, |cap| doubled.min(cap));
        self.at += self.interval;
    }
}

const DEFAULT_MAX_SERVER_TRANSACTIONS: usize = 10_000;

/// Matches ACKs for a 2xx (a new branch) to the INVITE they acknowledge: Call-ID, From tag, CSeq.
type AckKey = (String, String, u32);

/// Whose timer an entry of the timer heap is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Server(ServerTxKey),
    Client(ClientTxKey),
}

/// The earlier of a transaction's retransmission and its deadline.
fn earliest(retransmit: Option<Retransmit>, deadline: Option<Instant>) -> Option<Instant> {
    [retransmit.map(|r| r.at), deadline]
        .into_iter()
        .flatten()
        .min()
}

/// All transactions of one SIP endpoint.
pub struct TransactionLayer {
    cfg: TimerConfig,
    seed: u64,
    counter: u64,
    local_udp: Option<SocketAddr>,
    local_tcp: Option<SocketAddr>,
    servers: BTreeMap<ServerTxKey, server::ServerTx>,
    clients: BTreeMap<ClientTxKey, client::ClientTx>,
    accepted: HashMap<AckKey, ServerTxKey>,
    max_servers: usize,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TxEvent>,
    /// Every transaction's next timer, soonest first, so finding the next deadline and the due
    /// transactions does not walk the whole table (a scan per datagram was a fifth of the
    /// server's CPU at 1200 calls/s). Entries go stale when a transaction ends or its timer moves;
    /// they are checked against the transaction when they reach the top.
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
}

impl TransactionLayer {
    /// `branch_seed` makes branches and tags unique across restarts; the runtime draws it from its
    /// own random source so this layer never needs one.
    pub fn new(cfg: TimerConfig, branch_seed: u64) -> Self {
        TransactionLayer {
            cfg,
            seed: branch_seed,
            counter: 0,
            local_udp: None,
            local_tcp: None,
            servers: BTreeMap::new(),
            clients: BTreeMap::new(),
            accepted: HashMap::new(),
            max_servers: DEFAULT_MAX_SERVER_TRANSACTIONS,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timers: BinaryHeap::new(),
        }
    }

    /// The address written in the Via of requests we send on `transport`.
    pub fn set_local_addr(&mut self, transport: Transport, addr: SocketAddr) {
        match transport {
            Transport::Udp => self.local_udp = Some(addr),
            Transport::Tcp => self.local_tcp = Some(addr),
        }
    }

    /// Beyond `max` live server transactions, new requests are answered 503 (Retry-After: 5)
    /// without keeping state, so a flood cannot grow memory without bound.
    pub fn set_max_server_transactions(&mut self, max: usize) {
        self.max_servers = max;
    }

    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        match transport {
            Transport::Udp => self.local_udp.or(self.local_tcp),
            Transport::Tcp => self.local_tcp.or(self.local_udp),
        }
    }

    pub fn timer_config(&self) -> TimerConfig {
        self.cfg
    }

    fn next_id(&mut self) -> String {
        self.counter += 1;
        format!("{:x}.{:x}", self.seed, self.counter)
    }

    /// A fresh RFC 3261 branch (`z9hG4bK` magic cookie + seed + counter).
    pub fn new_branch(&mut self) -> String {
        format!("z9hG4bK{}", self.next_id())
    }

    /// A fresh tag for From/To headers, unique within this layer's seed.
    pub fn new_tag(&mut self) -> String {
        format!("sb{}", self.next_id())
    }

    /// Parses one datagram (or TCP frame) and dispatches it. Malformed requests are answered with
    /// 400 (or 501/416/505/513) when they can be addressed, otherwise dropped.
    pub fn handle_datagram(&mut self, now: Instant, peer: Peer, bytes: &[u8]) {
        match message::parse(bytes) {
            Ok(msg) => self.handle_message(now, peer, msg),
            Err(message::ParseError::Empty) => {
                // RFC 5626 §3.5.1: a CRLF CRLF ping on a connection is answered with a CRLF pong.
                if peer.transport == Transport::Tcp && bytes.len() >= 4 {
                    self.transmits.push_back(Transmit {
                        peer,
                        bytes: b"\r\n".to_vec(),
                    });
                }
            }
            Err(err) => {
                tracing::debug!(peer = %peer.addr, error = %err, "malformed SIP message");
                let tag = self.new_tag();
                if let Some(bytes) = message::reject_malformed(bytes, &err, &tag) {
                    self.transmits.push_back(Transmit { peer, bytes });
                }
            }
        }
    }

    /// Dispatches an already parsed message.
    pub fn handle_message(&mut self, now: Instant, peer: Peer, msg: SipMessage) {
        match msg {
            SipMessage::Request(req) => self.handle_request(now, peer, req),
            SipMessage::Response(resp) => self.handle_response(now, peer, resp),
        }
    }

    /// Sends `request` in a new client transaction, adding the top Via (fresh branch, `rport`) and
    /// Max-Forwards if missing. Use [`cancel`](Self::cancel) for CANCEL and
    /// [`send_ack`](Self::send_ack) for the ACK of a 2xx.
    pub fn send_request(&mut self, now: Instant, peer: Peer, request: Request) -> ClientTxKey {
        let branch = self.new_branch();
        let request = self.with_our_via(request, peer.transport, &branch);
        self.start_client(now, peer, request, branch)
    }

    /// Sends the ACK for a 2xx we received (a transaction of its own, so no state beyond letting
    /// the layer re-send this ACK if the 2xx is retransmitted).
    pub fn send_ack(&mut self, peer: Peer, ack: Request) {
        let branch = self.new_branch();
        let ack = self.with_our_via(ack, peer.transport, &branch);
        let bytes = message::to_bytes(&SipMessage::Request(ack.clone()));
        self.remember_2xx_ack(&ack, &bytes);
        self.transmits.push_back(Transmit { peer, bytes });
    }

    /// Reports that the connection or path to `peer` failed: its pending client transactions end
    /// with `ClientTimeout`.
    pub fn transport_error(&mut self, peer: Peer) {
        let failed: Vec<ClientTxKey> = self
            .clients
            .iter()
            .filter(|(_, tx)| tx.peer == peer && tx.awaiting_final())
            .map(|(k, _)| k.clone())
            .collect();
        for key in failed {
            self.clients.remove(&key);
            self.events.push_back(TxEvent::ClientTimeout { key });
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut servers = Vec::new();
        let mut clients = Vec::new();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            match self.timers.pop() {
                Some(Reverse((_, TimerKey::Server(k)))) => servers.push(k),
                Some(Reverse((_, TimerKey::Client(k)))) => clients.push(k),
                None => break,
            }
        }
        // A transaction may have had more than one entry due; it is handled once.
        servers.sort_unstable();
        servers.dedup();
        clients.sort_unstable();
        clients.dedup();
        self.server_timeouts(now, &servers);
        self.client_timeouts(now, &clients);
        for k in servers {
            self.schedule(TimerKey::Server(k));
        }
        for k in clients {
            self.schedule(TimerKey::Client(k));
        }
    }

    /// The earliest instant at which `handle_timeout` has work to do.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, key))) = self.timers.peek() {
            let (at, key) = (*at, key.clone());
            match self.next_timer(&key) {
                Some(t) if t == at => return Some(at),
                // Ended, or its timer moved: a later one gets its own entry.
                next => {
                    self.timers.pop();
                    if next.is_some_and(|t| t > at) {
                        self.schedule(key);
                    }
                }
            }
        }
        None
    }

    /// The transaction's next timer, if it is live and has one.
    fn next_timer(&self, key: &TimerKey) -> Option<Instant> {
        match key {
            TimerKey::Server(k) => self
                .servers
                .get(k)
                .and_then(|tx| earliest(tx.retransmit, tx.deadline)),
            TimerKey::Client(k) => self
                .clients
                .get(k)
                .and_then(|tx| earliest(tx.retransmit, tx.deadline)),
        }
    }

    /// Puts the transaction's next timer on the heap: called wherever a transaction starts or its
    /// timers may have come closer.
    fn schedule(&mut self, key: TimerKey) {
        if let Some(at) = self.next_timer(&key) {
            self.timers.push(Reverse((at, key)));
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    /// Live transactions (server and client).
    pub fn len(&self) -> usize {
        self.servers.len() + self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with_our_via(&self, request: Request, transport: Transport, branch: &str) -> Request {
        let (proto, local) = match transport {
            Transport::Udp => ("UDP", self.local_addr(Transport::Udp)),
            Transport::Tcp => ("TCP", self.local_addr(Transport::Tcp)),
        };
        let sent_by = local.map_or_else(|| "0.0.0.0:5060".to_string(), |a| a.to_string());
        let via = Header::Via(format!("SIP/2.0/{proto} {sent_by};branch={branch};rport").into());
        let mut headers: Vec<Header> = Vec::with_capacity(request.headers.iter().count() + 2);
        headers.push(via);
        headers.extend(request.headers.iter().cloned());
        if !headers.iter().any(|h| matches!(h, Header::MaxForwards(_))) {
            headers.push(Header::MaxForwards(String::from("70").into()));
        }
        Request {
            headers: headers.into(),
            ..request
        }
    }

    fn send(&mut self, peer: Peer, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit { peer, bytes });
    }
}

#[cfg(test)]
#[path = "transaction_tests.rs"]
mod tests;

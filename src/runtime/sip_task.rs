//! The SIP task: sockets + the sans-IO transaction layer + routing by Call-ID.
//!
//! It does no call work. A new INVITE is checked (number, capacity, codecs) and handed to a fresh
//! call task; later requests of that call go to the same task through its channel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

use crate::cdr::{CallRecord, Direction, Disposition, HangupBy};
use crate::sip::message::{self, response_to};
use crate::sip::sdp::{self, AudioCodec, SdpError};
use crate::sip::transaction::{ClientTxKey, ServerTxKey, TimerConfig, TransactionLayer, TxEvent};
use crate::sip::{Peer, Transport};

use super::call_task::{self, CallIn, NewCallTask};
use super::{RuntimeError, Shared};

/// What call tasks ask of the SIP task.
#[derive(Debug)]
pub enum SipCmd {
    Respond {
        key: ServerTxKey,
        response: rsip::Response,
    },
    Request {
        call_id: String,
        peer: Peer,
        request: rsip::Request,
    },
    CallEnded {
        call_id: String,
    },
    /// An outbound leg: route responses and in-dialog requests with this Call-ID to `tx`.
    AddLeg {
        call_id: String,
        tx: mpsc::UnboundedSender<CallIn>,
    },
    /// The ACK for a 2xx an outbound leg received.
    Ack {
        peer: Peer,
        request: rsip::Request,
    },
    /// CANCEL the leg's pending INVITE.
    Cancel {
        call_id: String,
    },
}

enum TcpEvent {
    Open(SocketAddr, mpsc::UnboundedSender<Vec<u8>>),
    Data(SocketAddr, Vec<u8>),
    Closed(SocketAddr),
}

pub struct SipTask {
    shared: Arc<Shared>,
    udp: UdpSocket,
    tcp: Option<TcpListener>,
    local: SocketAddr,
    role: Role,
}

/// The public SIP listener, or the internal one that browser calls from the widget are placed
/// from: a second endpoint on loopback that dials the public one, so a browser caller walks the
/// same path (flow, queue, record) as a phone caller. The gateway accepts nothing new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Public,
    Gateway,
}

/// Header on a gateway INVITE naming the widget call (trusted only from the gateway's address).
pub const WIDGET_HEADER: &str = "X-Switchboard-Widget";
/// Header on a gateway INVITE naming the flow the browser asked for.
pub const WIDGET_FLOW_HEADER: &str = "X-Switchboard-Flow";

const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO";
/// A TCP peer that sends more than this without completing a message is cut off.
const MAX_TCP_BUFFER: usize = 2 * message::MAX_MESSAGE;

async fn bind_udp(
    addr: SocketAddr,
    what: &'static str,
) -> Result<(UdpSocket, SocketAddr), RuntimeError> {
    let udp = UdpSocket::bind(addr)
        .await
        .map_err(|source| RuntimeError::Bind { what, addr, source })?;
    let local = udp
        .local_addr()
        .map_err(|e| RuntimeError::Other(e.to_string()))?;
    Ok((udp, local))
}

impl SipTask {
    pub async fn bind(shared: Arc<Shared>) -> Result<SipTask, RuntimeError> {
        let (udp, local) = bind_udp(shared.config.sip_listen, "SIP/UDP").await?;
        // TCP on the same port as UDP, as phones expect.
        let tcp = TcpListener::bind(local)
            .await
            .map_err(|source| RuntimeError::Bind {
                what: "SIP/TCP",
                addr: local,
                source,
            })?;
        Ok(SipTask {
            shared,
            udp,
            tcp: Some(tcp),
            local,
            role: Role::Public,
        })
    }

    /// The internal endpoint for browser calls: UDP only, on the public listener's address with
    /// a free port (loopback when the listener is on all addresses).
    pub async fn bind_gateway(
        shared: Arc<Shared>,
        public: SocketAddr,
    ) -> Result<SipTask, RuntimeError> {
        let addr = SocketAddr::new(gateway_target(public).ip(), 0);
        let (udp, local) = bind_udp(addr, "SIP gateway/UDP").await?;
        Ok(SipTask {
            shared,
            udp,
            tcp: None,
            local,
            role: Role::Gateway,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let SipTask {
            shared,
            udp,
            tcp,
            local,
            role,
        } = self;
        let seed: u64 = rand::random();
        let mut layer = TransactionLayer::new(TimerConfig::default(), seed);
        layer.set_local_addr(Transport::Udp, local);
        layer.set_local_addr(Transport::Tcp, local);

        let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<SipCmd>();
        let (tcp_tx, mut tcp_rx) = mpsc::unbounded_channel::<TcpEvent>();
        match role {
            Role::Public => {
                let _ = shared.sip_out.set((cmd_tx.clone(), local));
            }
            Role::Gateway => {
                let _ = shared.gateway_out.set((cmd_tx.clone(), local));
            }
        }
        if let Some(tcp) = tcp {
            tokio::spawn(accept_loop(tcp, tcp_tx.clone()));
        }

        let mut router = Router {
            shared: shared.clone(),
            calls: HashMap::new(),
            client_tx: HashMap::new(),
            invites: HashMap::new(),
            tcp_conns: HashMap::new(),
            registrar: super::registrar::Registrar::new(&shared),
            cmd_tx,
            local,
            role,
        };
        if role == Role::Public {
            shared.sip_up.store(true, Ordering::SeqCst);
        }
        // A scanner or a flood from one address must not starve real callers: each source gets
        // a token bucket; what exceeds it is dropped before any parsing.
        let mut limiter = crate::sip::ratelimit::RateLimiter::new(
            shared.config.sip_rate_per_source,
            shared.config.sip_rate_per_source.saturating_mul(2),
            100_000,
        );
        let mut buf = vec![0u8; message::MAX_MESSAGE + 1];
        loop {
            let deadline = layer.poll_timeout().map(|t| shared.clock.to_tokio(t));
            tokio::select! {
                r = udp.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let now = shared.clock.now();
                        accept_udp(&mut limiter, &mut layer, now, from, buf.get(..n));
                        // Under a flood most datagrams are dropped unread: emptying the socket
                        // in a burst keeps the kernel queue short, so a real caller's packet is
                        // not lost behind the flood's.
                        for _ in 0..UDP_BURST {
                            match udp.try_recv_from(&mut buf) {
                                Ok((n, from)) => {
                                    accept_udp(&mut limiter, &mut layer, now, from, buf.get(..n));
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    // ICMP errors surface here on Linux; they concern one peer, not the socket.
                    Err(e) => tracing::debug!(error = %e, "udp receive error"),
                },
                Some(ev) = tcp_rx.recv() => match ev {
                    TcpEvent::Open(addr, tx) => { router.tcp_conns.insert(addr, tx); }
                    TcpEvent::Closed(addr) => { router.tcp_conns.remove(&addr); }
                    TcpEvent::Data(addr, bytes) => {
                        let now = shared.clock.now();
                        if !limiter.allow(now, addr.ip()) {
                            continue;
                        }
                        layer.handle_datagram(now, Peer { transport: Transport::Tcp, addr }, &bytes);
                    }
                },
                Some(cmd) = cmd_rx.recv() => router.command(&mut layer, cmd),
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending::<()>().await,
                    }
                } => {
                    layer.handle_timeout(shared.clock.now());
                }
                _ = stop.wait_for(|s| *s) => break,
            }
            // Commands that arrived together are handled before transmitting.
            while let Ok(cmd) = cmd_rx.try_recv() {
                router.command(&mut layer, cmd);
            }
            loop {
                let mut progressed = false;
                while let Some(ev) = layer.poll_event() {
                    progressed = true;
                    router.event(&mut layer, ev);
                }
                while let Some(t) = layer.poll_transmit() {
                    progressed = true;
                    match t.peer.transport {
                        Transport::Udp => {
                            if let Err(e) = udp.send_to(&t.bytes, t.peer.addr).await {
                                tracing::debug!(error = %e, to = %t.peer.addr, "udp send failed");
                            }
                        }
                        Transport::Tcp => {
                            let tx = match router.tcp_conns.get(&t.peer.addr) {
                                Some(tx) if !tx.is_closed() => tx.clone(),
                                _ => {
                                    // No connection to this peer (a trunk, a phone whose
                                    // connection dropped): open one; what is sent meanwhile waits.
                                    let (tx, rx) = mpsc::unbounded_channel();
                                    router.tcp_conns.insert(t.peer.addr, tx.clone());
                                    tokio::spawn(tcp_dial(t.peer.addr, rx, tcp_tx.clone()));
                                    tx
                                }
                            };
                            let _ = tx.send(t.bytes);
                        }
                    }
                }
                if !progressed {
                    break;
                }
            }
        }
        if role == Role::Public {
            shared.sip_up.store(false, Ordering::SeqCst);
        }
    }
}

/// Where the gateway sends its INVITEs: the public listener, on loopback if it listens on all
/// addresses.
pub fn gateway_target(public: SocketAddr) -> SocketAddr {
    if public.ip().is_unspecified() {
        let lo: std::net::IpAddr = if public.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(lo, public.port())
    } else {
        public
    }
}

/// Datagrams read in one go after a wake-up, before timers and commands get their turn.
const UDP_BURST: usize = 512;

fn accept_udp(
    limiter: &mut crate::sip::ratelimit::RateLimiter,
    layer: &mut TransactionLayer,
    now: crate::time::Instant,
    from: SocketAddr,
    bytes: Option<&[u8]>,
) {
    if !limiter.allow(now, from.ip()) {
        return;
    }
    if let Some(bytes) = bytes {
        layer.handle_datagram(
            now,
            Peer {
                transport: Transport::Udp,
                addr: from,
            },
            bytes,
        );
    }
}

async fn accept_loop(listener: TcpListener, events: mpsc::UnboundedSender<TcpEvent>) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(tcp_conn(stream, addr, events.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn tcp_conn(stream: TcpStream, addr: SocketAddr, events: mpsc::UnboundedSender<TcpEvent>) {
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    if events.send(TcpEvent::Open(addr, tx)).is_err() {
        return;
    }
    tcp_io(stream, addr, events, rx).await;
}

/// How long opening a TCP connection to a peer may take.
const TCP_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A connection we open (outbound requests over TCP); `rx` already holds what waits to be sent.
async fn tcp_dial(
    addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::UnboundedSender<TcpEvent>,
) {
    match tokio::time::timeout(TCP_CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            tracing::debug!(peer = %addr, "TCP connection opened");
            tcp_io(stream, addr, events, rx).await;
        }
        Ok(Err(e)) => {
            tracing::warn!(peer = %addr, error = %e, "cannot open a TCP connection");
            let _ = events.send(TcpEvent::Closed(addr));
        }
        Err(_) => {
            tracing::warn!(peer = %addr, "TCP connection timed out");
            let _ = events.send(TcpEvent::Closed(addr));
        }
    }
}

async fn tcp_io(
    stream: TcpStream,
    addr: SocketAddr,
    events: mpsc::UnboundedSender<TcpEvent>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    'read: loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        loop {
            match message::stream_frame_len(&buf) {
                Ok(Some(len)) => {
                    let len = len.min(buf.len());
                    let frame: Vec<u8> = buf.drain(..len).collect();
                    let is_keepalive = frame.iter().all(|b| *b == b'\r' || *b == b'\n');
                    if !is_keepalive && events.send(TcpEvent::Data(addr, frame)).is_err() {
                        break 'read;
                    }
                }
                Ok(None) => {
                    if buf.len() > MAX_TCP_BUFFER {
                        tracing::warn!(peer = %addr, "TCP peer sent an oversize message; closing");
                        break 'read;
                    }
                    break;
                }
                Err(e) => {
                    tracing::debug!(peer = %addr, error = %e, "unframeable TCP stream; closing");
                    break 'read;
                }
            }
        }
    }
    let _ = events.send(TcpEvent::Closed(addr));
    writer.abort();
}

struct Router {
    shared: Arc<Shared>,
    calls: HashMap<String, mpsc::UnboundedSender<CallIn>>,
    client_tx: HashMap<ClientTxKey, String>,
    invites: HashMap<ServerTxKey, String>,
    tcp_conns: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>,
    registrar: super::registrar::Registrar,
    cmd_tx: mpsc::UnboundedSender<SipCmd>,
    local: SocketAddr,
    role: Role,
}

impl Router {
    fn command(&mut self, layer: &mut TransactionLayer, cmd: SipCmd) {
        let now = self.shared.clock.now();
        match cmd {
            SipCmd::Respond { key, response } => {
                if let Err(e) = layer.respond(now, &key, response) {
                    tracing::debug!(error = %e, "response for a finished transaction");
                }
            }
            SipCmd::Request {
                call_id,
                peer,
                request,
            } => {
                let key = layer.send_request(now, peer, request);
                self.client_tx.insert(key, call_id);
            }
            SipCmd::AddLeg { call_id, tx } => {
                self.calls.insert(call_id, tx);
            }
            SipCmd::Ack { peer, request } => layer.send_ack(peer, request),
            SipCmd::Cancel { call_id } => {
                let invite = self
                    .client_tx
                    .iter()
                    .find(|(k, c)| **c == call_id && k.method() == "INVITE")
                    .map(|(k, _)| k.clone());
                if let Some(key) = invite {
                    match layer.cancel(now, &key) {
                        Ok(cancel) => {
                            self.client_tx.insert(cancel, call_id);
                        }
                        Err(e) => tracing::debug!(error = %e, "nothing to cancel"),
                    }
                }
            }
            SipCmd::CallEnded { call_id } => {
                self.calls.remove(&call_id);
                self.client_tx.retain(|_, c| *c != call_id);
                self.invites.retain(|_, c| *c != call_id);
            }
        }
    }

    fn send_to_call(&mut self, call_id: &str, msg: CallIn) -> bool {
        match self.calls.get(call_id) {
            Some(tx) => tx.send(msg).is_ok(),
            None => false,
        }
    }

    fn event(&mut self, layer: &mut TransactionLayer, ev: TxEvent) {
        let now = self.shared.clock.now();
        match ev {
            TxEvent::Request { key, peer, request } => self.request(layer, key, peer, request),
            TxEvent::Ack { request, .. } => {
                if let Some(cid) = message::call_id(&rsip::SipMessage::Request(request.clone())) {
                    self.send_to_call(&cid, CallIn::Ack);
                }
            }
            TxEvent::Cancelled { invite } => {
                // The layer answered 487 already; tell the call that owned this INVITE.
                if let Some(cid) = self.invites.remove(&invite) {
                    self.send_to_call(&cid, CallIn::Cancelled(invite));
                }
            }
            TxEvent::Response { key, response } => {
                if let Some(cid) = self.client_tx.get(&key).cloned() {
                    if response.status_code.code() >= 200 {
                        self.client_tx.remove(&key);
                    }
                    self.send_to_call(&cid, CallIn::Response(response));
                }
            }
            TxEvent::ClientTimeout { key } => {
                if let Some(cid) = self.client_tx.remove(&key) {
                    self.send_to_call(&cid, CallIn::RequestTimeout);
                }
            }
            TxEvent::AckTimeout { call_id, .. } => {
                self.send_to_call(&call_id, CallIn::AckTimeout);
            }
        }
        let _ = now;
    }

    fn reply(
        &self,
        layer: &mut TransactionLayer,
        key: &ServerTxKey,
        req: &rsip::Request,
        status: u16,
        extra: &[(&str, String)],
    ) {
        let mut resp = response_to(req, status, Some(&random_tag()));
        for (name, value) in extra {
            resp.headers
                .push(rsip::Header::Other((*name).to_string(), value.clone()));
        }
        let _ = layer.respond(self.shared.clock.now(), key, resp);
    }

    fn request(
        &mut self,
        layer: &mut TransactionLayer,
        key: ServerTxKey,
        peer: Peer,
        req: rsip::Request,
    ) {
        self.shared.metrics.sip_request(&req.method.to_string());
        let msg = rsip::SipMessage::Request(req.clone());
        let Some(call_id) = message::call_id(&msg) else {
            self.reply(layer, &key, &req, 400, &[]);
            return;
        };
        let in_dialog = message::to_tag(&msg).is_some();
        if self.role == Role::Gateway
            && !self.calls.contains_key(&call_id)
            && req.method != rsip::Method::Ack
        {
            // The gateway only carries the calls it placed.
            self.reply(layer, &key, &req, 403, &[]);
            return;
        }
        // A source blocked for failed authentications gets nothing new (403: a transaction
        // must end, and the rate limit keeps the answers from being an amplifier); its calls
        // already up may still hang up.
        if !self.calls.contains_key(&call_id)
            && req.method != rsip::Method::Ack
            && self
                .shared
                .auth_limiter
                .is_blocked(peer.addr.ip(), self.shared.clock.now())
        {
            self.shared.auth_limiter.refused();
            self.reply(layer, &key, &req, 403, &[]);
            return;
        }
        match req.method {
            rsip::Method::Invite if self.calls.contains_key(&call_id) => {
                self.send_to_call(&call_id, CallIn::Request { key, request: req });
            }
            rsip::Method::Invite if in_dialog => {
                self.reply(layer, &key, &req, 481, &[]);
            }
            rsip::Method::Invite => self.new_call(layer, key, peer, req, call_id),
            rsip::Method::Options => {
                self.reply(
                    layer,
                    &key,
                    &req,
                    200,
                    &[
                        ("Allow", ALLOW.to_string()),
                        (
                            "Accept",
                            "application/sdp, application/dtmf-relay, application/dtmf".to_string(),
                        ),
                    ],
                );
            }
            rsip::Method::Register if self.registrar.enabled() => {
                let (status, extra) =
                    self.registrar
                        .register(&self.shared, &self.cmd_tx, self.local, &req, peer);
                let extra: Vec<(&str, String)> = extra.into_iter().collect();
                self.reply(layer, &key, &req, status, &extra);
            }
            rsip::Method::Register => {
                // Without agents' SIP phones configured, switchboard is not a registrar.
                self.reply(
                    layer,
                    &key,
                    &req,
                    403,
                    &[(
                        "Warning",
                        "399 switchboard \"registration is not offered here\"".to_string(),
                    )],
                );
            }
            rsip::Method::Bye | rsip::Method::Info | rsip::Method::Update => {
                let r = req.clone();
                let k = key.clone();
                if !self.send_to_call(&call_id, CallIn::Request { key, request: req }) {
                    self.reply(layer, &k, &r, 481, &[]);
                }
            }
            _ => {
                self.reply(layer, &key, &req, 405, &[("Allow", ALLOW.to_string())]);
            }
        }
    }

    fn rejected(&self, req: &rsip::Request, call_id: &str, from: &str, to: &str, why: &str) {
        let now = chrono::Utc::now();
        let mut rec = CallRecord::new(call_id, Direction::Inbound, from, to, now);
        rec.ended_at = Some(now);
        rec.disposition = Some(Disposition::Rejected);
        rec.hangup_by = Some(HangupBy::System);
        rec.events.push(crate::cdr::CallEvent {
            at: now,
            kind: "rejected".into(),
            detail: serde_json::json!({ "reason": why }),
        });
        let _ = req;
        self.shared.cdr.finish(rec);
    }

    fn new_call(
        &mut self,
        layer: &mut TransactionLayer,
        key: ServerTxKey,
        peer: Peer,
        req: rsip::Request,
        call_id: String,
    ) {
        let msg = rsip::SipMessage::Request(req.clone());
        let from = message::from_user(&msg).unwrap_or_default();
        let to = message::request_uri_user(&req)
            .or_else(|| message::to_user(&msg))
            .unwrap_or_default();
        // A browser call from the widget arrives from our own gateway endpoint; only from there
        // are its headers believed.
        let from_gateway = self.shared.gateway_out.get().map(|(_, a)| *a) == Some(peer.addr);
        let widget = from_gateway
            .then(|| message::header(&req, WIDGET_HEADER))
            .flatten();
        if widget.is_none() && !self.shared.config.trunk_allow.allows(peer.addr.ip()) {
            tracing::info!(%call_id, source = %peer.addr.ip(), "INVITE from a source not in sip.trunk_allow");
            self.reply(layer, &key, &req, 403, &[]);
            self.rejected(&req, &call_id, &from, &to, "source not allowed");
            return;
        }
        if self.shared.draining.load(Ordering::Relaxed)
            || self.shared.active_calls() >= self.shared.config.max_calls
        {
            self.reply(layer, &key, &req, 503, &[("Retry-After", "5".to_string())]);
            let why = if self.shared.draining.load(Ordering::Relaxed) {
                "shutting down"
            } else {
                "overload"
            };
            self.rejected(&req, &call_id, &from, &to, why);
            return;
        }
        let found = match &widget {
            Some(_) => message::header(&req, WIDGET_FLOW_HEADER)
                .and_then(|name| self.shared.flows.for_name(&name)),
            None => self.shared.flows.for_number(&to),
        };
        let Some((flow, prompts)) = found else {
            tracing::info!(%call_id, dialed = %to, "no flow owns this number");
            self.reply(layer, &key, &req, 404, &[]);
            self.rejected(&req, &call_id, &from, &to, "unknown number");
            return;
        };
        let offer = String::from_utf8_lossy(&req.body).to_string();
        if offer.trim().is_empty() {
            // Offerless INVITEs (offer in our 200, answer in ACK) are not supported yet.
            self.reply(
                layer,
                &key,
                &req,
                488,
                &[(
                    "Warning",
                    "399 switchboard \"an SDP offer is required\"".to_string(),
                )],
            );
            self.rejected(&req, &call_id, &from, &to, "no SDP offer");
            return;
        }
        let socket = match self.shared.ports.bind(self.shared.local_ip) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "no RTP port");
                self.reply(layer, &key, &req, 503, &[("Retry-After", "5".to_string())]);
                self.rejected(&req, &call_id, &from, &to, "no RTP port");
                return;
            }
        };
        let rtp_port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
        let session_id: u64 = rand::random::<u32>().into();
        let (negotiated, answer) = match sdp::answer(
            &offer,
            self.shared.local_ip,
            rtp_port,
            session_id,
            &[AudioCodec::Pcmu, AudioCodec::Pcma],
        ) {
            Ok(x) => x,
            Err(SdpError::NoCommonCodec) => {
                self.reply(
                    layer,
                    &key,
                    &req,
                    488,
                    &[(
                        "Warning",
                        "304 switchboard \"no common codec: PCMU or PCMA\"".to_string(),
                    )],
                );
                self.rejected(&req, &call_id, &from, &to, "no common codec");
                return;
            }
            Err(e) => {
                self.reply(
                    layer,
                    &key,
                    &req,
                    400,
                    &[("Warning", format!("399 switchboard \"bad SDP: {e}\""))],
                );
                self.rejected(&req, &call_id, &from, &to, "bad SDP");
                return;
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let self_tx = tx.clone();
        self.calls.insert(call_id.clone(), tx);
        self.invites.insert(key.clone(), call_id.clone());
        self.shared.active_calls.fetch_add(1, Ordering::SeqCst);
        let task = NewCallTask {
            shared: self.shared.clone(),
            sip: self.cmd_tx.clone(),
            inbox: rx,
            invite_key: key,
            invite: req,
            peer,
            call_id,
            from,
            to,
            flow,
            prompts,
            negotiated,
            answer_sdp: answer,
            rtp: socket,
            local_sip: self.local,
            self_tx,
            direction: if widget.is_some() {
                Direction::Webrtc
            } else {
                Direction::Inbound
            },
            widget,
        };
        tokio::spawn(call_task::run(task));
    }
}

pub fn random_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

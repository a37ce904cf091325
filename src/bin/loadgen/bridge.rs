//! `loadgen bridge`: SIP callers bridged to SIP agents through the server. N agents register
//! with digest auth (like desk phones), M callers dial a flow whose step is a `queue:`; the
//! server rings an agent with an INVITE, the agent answers (200 with PCMU), and both ends send
//! 20 ms PCMU for as long as the call is held.
//!
//! Every frame carries, in its first bytes, the caller's index, a sequence number and the send
//! time (the two ends share this process's clock), written as quiet µ-law nibbles so the audio
//! stays near silence. The far end checks it got its own partner's frames and measures loss
//! (gaps in the sequence between the first and the last frame heard) and the latency the server
//! adds each way.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard::media::rtp;
use switchboard::sip::{digest, md5, registrar};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch, Semaphore};

use super::sip::{next_datagram, parse, sdp_remote, tag_of, Incoming, Msg, Ua};
use super::stats::{percentile, udp_drops, Probe, ProbeResult};

pub struct Args {
    pub calls: usize,
    pub agents: usize,
    pub duration: Duration,
    pub ramp_rate: f64,
    pub did: String,
    pub agent_prefix: String,
    pub agent_password: String,
    /// Each call slot hangs up after this long bridged and dials again (soak); None holds every
    /// call for the whole run.
    pub hold: Option<Duration>,
    pub pid: Option<u32>,
    pub drop_ports: Vec<(u16, u16)>,
}

/// The caller's number for call slot `i`; the agent reads `i` back from the INVITE's From.
fn caller_number(i: usize) -> String {
    format!("+1777{i:07}")
}

pub(super) fn index_from(from_header: &str) -> Option<u32> {
    let user = from_header.split("sip:").nth(1)?.split('@').next()?;
    user.strip_prefix("+1777")?.parse().ok()
}

/// All send times are microseconds since this instant (both ends live in this process).
pub(super) static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

pub(super) fn now_us() -> u64 {
    EPOCH.elapsed().as_micros() as u64
}

const MAGIC: [u8; 4] = [0xF5, 0xFA, 0xF5, 0xFA];
const TAG_LEN: usize = 4 + 2 * (4 + 4 + 8);

/// One 160-byte PCMU frame: magic, call index, sequence and send time as nibbles in quiet µ-law
/// codes (0xF0..0xFF), then µ-law silence.
pub(super) fn tagged_frame(index: u32, seq: u32, sent_us: u64) -> [u8; 160] {
    let mut f = [0xFFu8; 160];
    f[..4].copy_from_slice(&MAGIC);
    let mut at = 4;
    let mut put = |bytes: &[u8]| {
        for b in bytes {
            f[at] = 0xF0 | (b >> 4);
            f[at + 1] = 0xF0 | (b & 0x0F);
            at += 2;
        }
    };
    put(&index.to_be_bytes());
    put(&seq.to_be_bytes());
    put(&sent_us.to_be_bytes());
    f
}

/// (index, seq, sent_us) from a frame written by [`tagged_frame`].
fn read_tag(payload: &[u8]) -> Option<(u32, u32, u64)> {
    if payload.len() < TAG_LEN || payload.get(..4)? != MAGIC {
        return None;
    }
    let nib = payload.get(4..TAG_LEN)?;
    let mut bytes = [0u8; 16];
    for (k, b) in bytes.iter_mut().enumerate() {
        let (hi, lo) = (nib.get(2 * k)?, nib.get(2 * k + 1)?);
        if hi & 0xF0 != 0xF0 || lo & 0xF0 != 0xF0 {
            return None;
        }
        *b = (hi & 0x0F) << 4 | (lo & 0x0F);
    }
    let index = u32::from_be_bytes(bytes[0..4].try_into().ok()?);
    let seq = u32::from_be_bytes(bytes[4..8].try_into().ok()?);
    let sent = u64::from_be_bytes(bytes[8..16].try_into().ok()?);
    Some((index, seq, sent))
}

/// What one end of one call heard from the other.
#[derive(Default)]
pub(super) struct Heard {
    received: u64,
    first_seq: Option<u32>,
    max_seq: u32,
    /// Frames carrying another call's index: audio bridged to the wrong party.
    misrouted: u64,
    latency_us: Vec<u64>,
}

impl Heard {
    pub fn frame(&mut self, expect: u32, payload: &[u8]) -> bool {
        let Some((index, seq, sent)) = read_tag(payload) else {
            return false;
        };
        if index != expect {
            self.misrouted += 1;
            return false;
        }
        self.received += 1;
        self.first_seq = Some(self.first_seq.map_or(seq, |f| f.min(seq)));
        self.max_seq = self.max_seq.max(seq);
        self.latency_us.push(now_us().saturating_sub(sent));
        true
    }

    fn lost(&self) -> u64 {
        match self.first_seq {
            Some(f) => (u64::from(self.max_seq - f) + 1).saturating_sub(self.received),
            None => 0,
        }
    }
}

/// One end's sending half: a tagged frame every 20 ms to `remote`.
struct MediaTx<'a> {
    sock: &'a UdpSocket,
    remote: SocketAddr,
    index: u32,
    ssrc: u32,
    seq: u32,
    ts: u32,
    pkt: Vec<u8>,
    tick: tokio::time::Interval,
}

impl MediaTx<'_> {
    fn new(sock: &UdpSocket, remote: SocketAddr, index: u32) -> MediaTx<'_> {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        MediaTx {
            sock,
            remote,
            index,
            ssrc: rand::random(),
            seq: 0,
            ts: rand::random(),
            pkt: Vec::with_capacity(200),
            tick,
        }
    }

    /// Waits for the next 20 ms tick and sends a frame.
    async fn send_next(&mut self) {
        self.tick.tick().await;
        let frame = tagged_frame(self.index, self.seq, now_us());
        let seq16 = self.seq as u16;
        rtp::write(
            0,
            self.seq == 0,
            seq16,
            self.ts,
            self.ssrc,
            &frame,
            &mut self.pkt,
        );
        let _ = self.sock.send_to(&self.pkt, self.remote).await;
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
    }
}

/// One end's receiving half: what arrives goes into a [`Heard`].
struct MediaRx<'a> {
    sock: &'a UdpSocket,
    index: u32,
    buf: [u8; 2048],
}

impl MediaRx<'_> {
    /// Waits for a datagram; true when it was a frame from this call's far end.
    async fn recv(&mut self, heard: &mut Heard) -> bool {
        let Ok((n, _)) = self.sock.recv_from(&mut self.buf).await else {
            return false;
        };
        match self.buf.get(..n).map(rtp::parse) {
            Some(Ok(p)) if p.payload_type == 0 => heard.frame(self.index, p.payload),
            _ => false,
        }
    }
}

// ---- agents ---------------------------------------------------------------------------------

/// A REGISTER's final status and its `WWW-Authenticate` challenge, if any.
type RegAnswer = (u16, Option<String>);

enum AgentIn {
    Ack,
    Bye,
    InviteAgain,
}

/// One socket for every agent's phone: REGISTER responses by Call-ID, the server's INVITEs
/// (each answered by its own task), ACK, BYE and CANCEL routed to the call.
struct AgentUa {
    sock: UdpSocket,
    local: SocketAddr,
    server: SocketAddr,
    regs: Mutex<HashMap<String, mpsc::UnboundedSender<RegAnswer>>>,
    calls: Mutex<HashMap<String, mpsc::UnboundedSender<AgentIn>>>,
    outcomes: mpsc::UnboundedSender<AgentOutcome>,
    answered: AtomicUsize,
}

struct AgentOutcome {
    index: Option<u32>,
    heard: Heard,
    error: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A response to `m` copying Via, From, To (with `to_tag` added if it has none), Call-ID, CSeq.
fn response(m: &Msg<'_>, status: u16, reason: &str, to_tag: Option<&str>, extra: &str) -> String {
    let mut r = format!("SIP/2.0 {status} {reason}\r\n");
    for (name, value) in &m.headers {
        let n = name.to_ascii_lowercase();
        match n.as_str() {
            "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq" => {
                r.push_str(&format!("{name}: {value}\r\n"));
            }
            "to" | "t" => match to_tag {
                Some(t) if tag_of(value).is_none() => {
                    r.push_str(&format!("{name}: {value};tag={t}\r\n"))
                }
                _ => r.push_str(&format!("{name}: {value}\r\n")),
            },
            _ => {}
        }
    }
    r.push_str(extra);
    r
}

impl AgentUa {
    async fn bind(
        server: SocketAddr,
    ) -> std::io::Result<(Arc<AgentUa>, mpsc::UnboundedReceiver<AgentOutcome>)> {
        let sock = UdpSocket::bind("127.0.0.1:0").await?;
        let local = sock.local_addr()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let ua = Arc::new(AgentUa {
            sock,
            local,
            server,
            regs: Mutex::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
            outcomes: tx,
            answered: AtomicUsize::new(0),
        });
        tokio::spawn(agent_dispatch(ua.clone()));
        Ok((ua, rx))
    }

    /// REGISTER, answering the 401 challenge; Ok on 200.
    async fn register(&self, user: &str, password: &str, expires: u32) -> Result<(), String> {
        let call_id = format!("reg-{user}-{:x}@loadgen", rand::random::<u32>());
        let (tx, mut rx) = mpsc::unbounded_channel();
        lock(&self.regs).insert(call_id.clone(), tx);
        let result = self
            .register_inner(user, password, expires, &call_id, &mut rx)
            .await;
        lock(&self.regs).remove(&call_id);
        result
    }

    async fn register_inner(
        &self,
        user: &str,
        password: &str,
        expires: u32,
        call_id: &str,
        rx: &mut mpsc::UnboundedReceiver<RegAnswer>,
    ) -> Result<(), String> {
        let uri = format!("sip:{}", self.server);
        let mut auth: Option<String> = None;
        for cseq in 1..=3u32 {
            let auth_line = auth
                .as_ref()
                .map(|a| format!("Authorization: {a}\r\n"))
                .unwrap_or_default();
            let req = format!(
                "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-{cseq};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@{srv}>;tag=r{cseq}\r\nTo: <sip:{user}@{srv}>\r\n\
                 Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{me}>\r\n\
                 Expires: {expires}\r\n{auth_line}Content-Length: 0\r\n\r\n",
                me = self.local,
                srv = self.server,
            );
            let (status, challenge) = self.transact(req.as_bytes(), rx).await?;
            match status {
                200..=299 => return Ok(()),
                401 => {
                    let ch = challenge.ok_or("401 without WWW-Authenticate")?;
                    auth = Some(authorization(&ch, user, password, &uri)?);
                }
                s => return Err(format!("REGISTER answered {s}")),
            }
        }
        Err("REGISTER challenged again and again".into())
    }

    /// Sends `req` (retransmitting on T1, doubling) until a final response.
    async fn transact(
        &self,
        req: &[u8],
        rx: &mut mpsc::UnboundedReceiver<RegAnswer>,
    ) -> Result<RegAnswer, String> {
        let deadline = Instant::now() + Duration::from_secs(16);
        let mut iv = Duration::from_millis(500);
        loop {
            self.sock
                .send_to(req, self.server)
                .await
                .map_err(|e| e.to_string())?;
            let wake = (Instant::now() + iv).min(deadline);
            loop {
                match tokio::time::timeout_at(wake.into(), rx.recv()).await {
                    Err(_) => break,
                    Ok(None) => return Err("dispatcher gone".into()),
                    Ok(Some((s, _))) if s < 200 => {}
                    Ok(Some(r)) => return Ok(r),
                }
            }
            if Instant::now() >= deadline {
                return Err("no answer to REGISTER".into());
            }
            iv = (iv * 2).min(Duration::from_secs(4));
        }
    }
}

/// The `Authorization` value answering `challenge` (MD5, qop=auth when offered).
fn authorization(challenge: &str, user: &str, password: &str, uri: &str) -> Result<String, String> {
    // The server's parser, so a quoted list (`qop="auth,auth-int"`) is read as one value.
    let params = digest::challenge_params(challenge).ok_or("not a Digest challenge")?;
    let param = |name: &str| -> Option<String> {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let realm = param("realm").ok_or("challenge without realm")?;
    let nonce = param("nonce").ok_or("challenge without nonce")?;
    let ha1 = registrar::ha1(user, &realm, password);
    let ha2 = md5::hex(format!("REGISTER:{uri}").as_bytes());
    let qop = param("qop").is_some_and(|q| q.split(',').any(|x| x.trim() == "auth"));
    let cnonce = format!("{:08x}", rand::random::<u32>());
    Ok(if qop {
        let response = md5::hex(format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}").as_bytes());
        format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\""
        )
    } else {
        let response = md5::hex(format!("{ha1}:{nonce}:{ha2}").as_bytes());
        format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=MD5"
        )
    })
}

async fn agent_dispatch(ua: Arc<AgentUa>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (text, from) = next_datagram(&ua.sock, &mut buf).await;
        let Some(msg) = parse(text) else { continue };
        let call_id = msg.header("call-id", "i").unwrap_or_default().to_string();
        if let Some(status) = msg.status {
            let challenge = msg.header("www-authenticate", "").map(str::to_string);
            if let Some(tx) = lock(&ua.regs).get(&call_id) {
                let _ = tx.send((status, challenge));
            }
            continue;
        }
        let method = msg.method.clone().unwrap_or_default();
        let route = |m: AgentIn| {
            if let Some(tx) = lock(&ua.calls).get(&call_id) {
                let _ = tx.send(m);
            }
        };
        match method.as_str() {
            "INVITE" => {
                let known = lock(&ua.calls).contains_key(&call_id);
                if known {
                    route(AgentIn::InviteAgain);
                } else {
                    let (tx, rx) = mpsc::unbounded_channel();
                    lock(&ua.calls).insert(call_id.clone(), tx);
                    tokio::spawn(agent_call(ua.clone(), text.to_string(), from, call_id, rx));
                }
            }
            "ACK" => route(AgentIn::Ack),
            "BYE" | "CANCEL" => {
                let ok = response(&msg, 200, "OK", None, "Content-Length: 0\r\n\r\n");
                let _ = ua.sock.send_to(ok.as_bytes(), from).await;
                route(AgentIn::Bye);
            }
            _ => {
                let ok = response(&msg, 200, "OK", None, "Content-Length: 0\r\n\r\n");
                let _ = ua.sock.send_to(ok.as_bytes(), from).await;
            }
        }
    }
}

/// The agent's phone answers the server's INVITE at once and talks until the BYE.
async fn agent_call(
    ua: Arc<AgentUa>,
    invite: String,
    from: SocketAddr,
    call_id: String,
    mut rx: mpsc::UnboundedReceiver<AgentIn>,
) {
    let mut heard = Heard::default();
    let result = agent_call_inner(&ua, &invite, from, &mut rx, &mut heard).await;
    lock(&ua.calls).remove(&call_id);
    let index = parse(&invite).and_then(|m| m.header("from", "f").and_then(index_from));
    let _ = ua.outcomes.send(AgentOutcome {
        index,
        heard,
        error: result.err(),
    });
}

async fn agent_call_inner(
    ua: &AgentUa,
    invite: &str,
    from: SocketAddr,
    rx: &mut mpsc::UnboundedReceiver<AgentIn>,
    heard: &mut Heard,
) -> Result<(), String> {
    let msg = parse(invite).ok_or("unparsable INVITE")?;
    let index = msg
        .header("from", "f")
        .and_then(index_from)
        .ok_or("the INVITE's From is not one of our callers")?;
    let remote = sdp_remote(msg.body).ok_or("the INVITE has no usable SDP offer")?;
    let sock = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = sock.local_addr().map_err(|e| e.to_string())?.port();
    let user = msg
        .header("to", "t")
        .and_then(|t| t.split("sip:").nth(1))
        .and_then(|u| u.split('@').next())
        .unwrap_or("agent")
        .to_string();
    let sdp = format!(
        "v=0\r\no=agent 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    );
    let tag = format!("a{:x}", rand::random::<u32>());
    let ok = response(
        &msg,
        200,
        "OK",
        Some(&tag),
        &format!(
            "Contact: <sip:{user}@{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len(),
            me = ua.local
        ),
    );
    ua.answered.fetch_add(1, Ordering::Relaxed);
    // 200 until the ACK (T1, doubling to T2), as a UAS must over UDP.
    let deadline = Instant::now() + Duration::from_secs(32);
    let mut iv = Duration::from_millis(500);
    'acked: loop {
        ua.sock
            .send_to(ok.as_bytes(), from)
            .await
            .map_err(|e| e.to_string())?;
        let wake = (Instant::now() + iv).min(deadline);
        loop {
            match tokio::time::timeout_at(wake.into(), rx.recv()).await {
                Err(_) => break,
                Ok(Some(AgentIn::Ack)) => break 'acked,
                Ok(Some(AgentIn::InviteAgain)) => {}
                Ok(Some(AgentIn::Bye)) | Ok(None) => {
                    return Err("the call ended before the ACK".into())
                }
            }
        }
        if Instant::now() >= deadline {
            return Err("no ACK for the agent's 200".into());
        }
        iv = (iv * 2).min(Duration::from_secs(4));
    }
    let mut tx = MediaTx::new(&sock, remote, index);
    let mut mrx = MediaRx {
        sock: &sock,
        index,
        buf: [0; 2048],
    };
    loop {
        tokio::select! {
            _ = tx.send_next() => {}
            _ = mrx.recv(heard) => {}
            m = rx.recv() => {
                if matches!(m, Some(AgentIn::Bye) | None) {
                    return Ok(());
                }
            }
        }
    }
}

// ---- callers --------------------------------------------------------------------------------

#[derive(Default)]
struct CallerOutcome {
    heard: Heard,
    /// Calls that reached an agent, and the time from INVITE to the agent's first frame.
    bridged: u64,
    to_agent_us: Vec<u64>,
    failures: BTreeMap<String, u64>,
}

/// Call slot `i`: dials, waits to hear its agent, talks, hangs up; with `hold`, dials again
/// after each `hold` bridged, until `stop`.
async fn caller_slot(
    ua: Arc<Ua>,
    i: usize,
    did: String,
    hold: Option<Duration>,
    bridged_now: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) -> CallerOutcome {
    let mut out = CallerOutcome::default();
    let from = caller_number(i);
    while !*stop.borrow() {
        let sock = match UdpSocket::bind("127.0.0.1:0").await {
            Ok(s) => s,
            Err(e) => {
                *out.failures.entry(format!("socket: {e}")).or_default() += 1;
                break;
            }
        };
        let port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
        let started = Instant::now();
        let mut d = match ua.invite(&did, &from, port).await {
            Ok(d) => d,
            Err(e) => {
                *out.failures.entry(e.to_string()).or_default() += 1;
                if hold.is_none() {
                    break;
                }
                // A soak keeps its slot busy: dial again after a pause.
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(remote) = d.remote_rtp else {
            *out.failures.entry("no remote RTP".into()).or_default() += 1;
            break;
        };
        let mut tx = MediaTx::new(&sock, remote, i as u32);
        let mut mrx = MediaRx {
            sock: &sock,
            index: i as u32,
            buf: [0; 2048],
        };
        let mut bridged_at: Option<Instant> = None;
        let mut hold_until: Option<tokio::time::Instant> = None;
        loop {
            let held = async {
                match hold_until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tx.send_next() => {}
                first = mrx.recv(&mut out.heard) => {
                    if first && bridged_at.is_none() {
                        bridged_at = Some(Instant::now());
                        bridged_now.fetch_add(1, Ordering::SeqCst);
                        hold_until = hold.map(|h| tokio::time::Instant::now() + h);
                    }
                }
                m = d.rx.recv() => {
                    if matches!(m, Some(Incoming::ServerBye) | None) {
                        d.server_hung_up = true;
                        break;
                    }
                }
                _ = stop.changed() => break,
                _ = held => break,
            }
        }
        match bridged_at {
            Some(t) => {
                out.bridged += 1;
                out.to_agent_us
                    .push(t.duration_since(started).as_micros() as u64);
                bridged_now.fetch_sub(1, Ordering::SeqCst);
            }
            // Cut short by the end of the run before an agent could take it: not a failure.
            None if *stop.borrow() && started.elapsed() < Duration::from_secs(10) => {}
            None => {
                *out.failures
                    .entry("never reached an agent".into())
                    .or_default() += 1
            }
        }
        if d.server_hung_up {
            *out.failures.entry("the server hung up".into()).or_default() += 1;
        }
        if let Err(e) = ua.bye(&mut d, &from).await {
            *out.failures.entry(e.to_string()).or_default() += 1;
        }
        if hold.is_none() {
            break;
        }
    }
    out
}

pub(super) fn agent_user(prefix: &str, k: usize) -> String {
    format!("{prefix}{k}")
}

/// Registers (or with `expires` 0 unregisters) every agent, a few at a time; the errors.
async fn register_all(agents: &Arc<AgentUa>, a: &Args, expires: u32) -> BTreeMap<String, u64> {
    let gate = Arc::new(Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..a.agents {
        let (ua, gate) = (agents.clone(), gate.clone());
        let (user, pw) = (agent_user(&a.agent_prefix, k), a.agent_password.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            ua.register(&user, &pw, expires).await
        });
    }
    let mut errors = BTreeMap::new();
    while let Some(r) = tasks.join_next().await {
        let e = match r {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(e) => format!("task: {e}"),
        };
        *errors.entry(format!("agent REGISTER: {e}")).or_default() += 1;
    }
    errors
}

/// p50, p99 and max of `us` in milliseconds.
fn ms_summary(us: &mut [u64]) -> Value {
    let ms = |v: Option<u64>| v.map(|x| x as f64 / 1000.0);
    json!({
        "p50": ms(percentile(us, 50.0)),
        "p99": ms(percentile(us, 99.0)),
        "max": ms(percentile(us, 100.0)),
    })
}

fn loss_pct(received: u64, lost: u64) -> f64 {
    if received + lost == 0 {
        0.0
    } else {
        100.0 * lost as f64 / (received + lost) as f64
    }
}

/// Loss above this (either way, in %) fails the run, like a failed call.
pub const MAX_LOSS_PCT: f64 = 0.5;

/// Frames one side heard, summed over its calls (each call's loss counted within that call).
#[derive(Default)]
pub(super) struct Tally {
    pub frames: u64,
    pub lost: u64,
    pub misrouted: u64,
    pub latency_us: Vec<u64>,
}

impl Tally {
    pub fn add(&mut self, h: &Heard) {
        self.frames += h.received;
        self.lost += h.lost();
        self.misrouted += h.misrouted;
        self.latency_us.extend(h.latency_us.iter());
    }

    pub fn merge(&mut self, t: Tally) {
        self.frames += t.frames;
        self.lost += t.lost;
        self.misrouted += t.misrouted;
        self.latency_us.extend(t.latency_us);
    }

    fn summary(&mut self) -> Value {
        json!({
            "frames": self.frames,
            "lost": self.lost,
            "loss_pct": loss_pct(self.frames, self.lost),
            "latency_ms": ms_summary(&mut self.latency_us),
        })
    }
}

/// What the callers of one run did, and the server over the measured window.
pub(super) struct CallerPhase {
    /// Calls hearing their agent when the window opened.
    pub bridged: usize,
    pub ramp_s: f64,
    pub probe: ProbeResult,
    /// The load generator itself over the same window: near a core, it is what limits the run.
    pub generator: ProbeResult,
    /// Calls that reached an agent over the whole run (several per slot with `hold`).
    pub calls_bridged_total: u64,
    pub to_agent_us: Vec<u64>,
    pub heard: Tally,
    pub failures: BTreeMap<String, u64>,
}

/// Dials every call slot at the ramp rate, waits (at most `settle`) until every call hears its
/// agent, measures the server for `a.duration`, then hangs every call up and collects them.
pub(super) async fn run_callers(ua: &Arc<Ua>, a: &Args, settle: Duration) -> CallerPhase {
    LazyLock::force(&EPOCH);
    let bridged_now = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / a.ramp_rate.max(1.0));
    for i in 0..a.calls {
        tasks.spawn(caller_slot(
            ua.clone(),
            i,
            a.did.clone(),
            a.hold,
            bridged_now.clone(),
            stop_rx.clone(),
        ));
        tokio::time::sleep_until((started + gap * (i as u32 + 1)).into()).await;
    }
    let wait_until = Instant::now() + settle;
    while bridged_now.load(Ordering::SeqCst) < a.calls && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bridged = bridged_now.load(Ordering::SeqCst);
    let ramp_s = started.elapsed().as_secs_f64();
    let probe = Probe::start(a.pid);
    let generator = Probe::start(Some(std::process::id()));
    tokio::time::sleep(a.duration).await;
    let probe = probe.finish();
    let generator = generator.finish();
    let _ = stop_tx.send(true);

    let mut phase = CallerPhase {
        bridged,
        ramp_s,
        probe,
        generator,
        calls_bridged_total: 0,
        to_agent_us: Vec::new(),
        heard: Tally::default(),
        failures: BTreeMap::new(),
    };
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(o) => {
                phase.heard.add(&o.heard);
                phase.calls_bridged_total += o.bridged;
                phase.to_agent_us.extend(o.to_agent_us);
                for (k, v) in o.failures {
                    *phase.failures.entry(k).or_default() += v;
                }
            }
            Err(e) => *phase.failures.entry(format!("task: {e}")).or_default() += 1,
        }
    }
    phase
}

/// The run's JSON: `failures` are the agents' and the callers' together; `ok` is false when a
/// call failed or audio was lost (above [`MAX_LOSS_PCT`]) or misrouted, never because of a time.
pub(super) fn report(
    mode: &str,
    a: &Args,
    mut phase: CallerPhase,
    mut at_agents: Tally,
    idle_rss: Option<u64>,
    drops0: u64,
) -> Value {
    let failures = std::mem::take(&mut phase.failures);
    let failed: u64 = failures.values().sum();
    let bridged = phase.bridged;
    let misrouted = phase.heard.misrouted + at_agents.misrouted;
    let loss_to_agent = loss_pct(at_agents.frames, at_agents.lost);
    let loss_to_caller = loss_pct(phase.heard.frames, phase.heard.lost);
    let ok = failed == 0
        && misrouted == 0
        && bridged == a.calls
        && loss_to_agent <= MAX_LOSS_PCT
        && loss_to_caller <= MAX_LOSS_PCT;
    let per_call = |v: Option<f64>| v.map(|c| c / bridged.max(1) as f64);
    json!({
        "mode": mode,
        "calls": a.calls,
        "agents": a.agents,
        "hold_s": a.hold.map(|h| h.as_secs_f64()),
        "ramp_s": phase.ramp_s,
        "bridged": bridged,
        "calls_placed": phase.calls_bridged_total + failed,
        "calls_bridged_total": phase.calls_bridged_total,
        "failed": failed,
        "failures": failures,
        "misrouted_frames": misrouted,
        "time_to_agent_ms": ms_summary(&mut phase.to_agent_us),
        "caller_to_agent": at_agents.summary(),
        "agent_to_caller": phase.heard.summary(),
        "max_loss_pct": MAX_LOSS_PCT,
        "ok": ok,
        "server_cpu_pct_core_per_call": per_call(phase.probe.server_cpu_pct_core),
        "server_rss_idle_kib": idle_rss,
        "server_rss_kib_per_call": match (phase.probe.server_rss_kib, idle_rss) {
            (Some(r), Some(i)) if bridged > 0 => Some(r.saturating_sub(i) as f64 / bridged as f64),
            _ => None,
        },
        "udp_drops": udp_drops(&a.drop_ports).saturating_sub(drops0),
        "server": phase.probe,
        "generator_cpu_pct_core": phase.generator.server_cpu_pct_core,
    })
}

pub async fn run(ua: Arc<Ua>, a: Args) -> anyhow::Result<Value> {
    let drops0 = udp_drops(&a.drop_ports);
    let idle_rss = a.pid.and_then(super::stats::rss_kib);
    let (agents, mut agent_outcomes) = AgentUa::bind(ua.server).await?;
    let mut failures = register_all(&agents, &a, 3600).await;
    // The server logs a registered phone's agent in; give the ACD a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Measure once every call hears its agent (or 30 s have passed).
    let mut phase = run_callers(&ua, &a, Duration::from_secs(30)).await;

    // Every agent leg ends with the server's BYE after the caller's.
    let answered = agents.answered.load(Ordering::Relaxed);
    let mut at_agents = Tally::default();
    let mut agent_legs = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while agent_legs < answered {
        let Ok(Some(o)) = tokio::time::timeout_at(deadline, agent_outcomes.recv()).await else {
            *failures
                .entry("agent leg without a BYE".into())
                .or_default() += (answered - agent_legs) as u64;
            break;
        };
        agent_legs += 1;
        if o.index.is_none() {
            *failures
                .entry("agent INVITE from an unknown caller".into())
                .or_default() += 1;
        }
        if let Some(e) = o.error {
            *failures.entry(format!("agent: {e}")).or_default() += 1;
        }
        at_agents.add(&o.heard);
    }
    for (k, v) in register_all(&agents, &a, 0).await {
        *failures
            .entry(k.replace("REGISTER", "unREGISTER"))
            .or_default() += v;
    }
    for (k, v) in failures {
        *phase.failures.entry(k).or_default() += v;
    }
    Ok(report("bridge", &a, phase, at_agents, idle_rss, drops0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagged_frame_reads_back_and_stays_quiet() {
        let f = tagged_frame(417, 99_001, 1_234_567_890_123);
        assert_eq!(read_tag(&f), Some((417, 99_001, 1_234_567_890_123)));
        // µ-law 0xF0..0xFF and 0x7F..: near silence, no tone for in-band DTMF to find.
        assert!(f.iter().skip(4).all(|b| *b >= 0xF0));
        assert_eq!(
            read_tag(&[0xFF; 160]),
            None,
            "music on hold is not a tagged frame"
        );
    }

    #[test]
    fn loss_counts_gaps_between_the_first_and_last_frame() {
        let mut h = Heard::default();
        for seq in [10u32, 11, 13, 14, 17] {
            assert!(h.frame(3, &tagged_frame(3, seq, 0)));
        }
        assert!(!h.frame(3, &tagged_frame(4, 12, 0)), "another call's frame");
        assert_eq!((h.received, h.lost(), h.misrouted), (5, 3, 1));
    }

    #[test]
    fn the_agent_knows_its_caller_from_the_from_header() {
        assert_eq!(
            index_from("\"+17770000042\" <sip:+17770000042@127.0.0.1>;tag=x"),
            Some(42)
        );
        assert_eq!(index_from("<sip:alice@127.0.0.1>"), None);
        assert_eq!(caller_number(42), "+17770000042");
    }
}

//! An agent at the console, as the browser page is: logs in over HTTP, keeps the `/agent/ws`
//! WebSocket open, and answers with a WebRTC peer (`switchboard::rtc::RtcTestPeer`, the offering
//! side on the same stack the server uses) that can play a tone and keeps what it hears.
//!
//! The tests stay synchronous like the rest of the harness: the WebSocket runs on its own thread
//! (tungstenite's blocking client) and the WebRTC peer on a small tokio runtime the agent owns.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard::rtc::{RtcConfig, RtcEvent, RtcTestPeer};
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::{self, Message};

use super::dtmf::goertzel_power;
use super::g711::Law;
use super::server::Server;

/// A YAML `agents:` entry with a freshly hashed password.
pub fn agent_yaml(id: &str, password: &str, skills: &[(&str, u8)], queues: &[&str]) -> String {
    let hash = switchboard::auth::hash_password(password).expect("test passwords are 8+ bytes");
    let skills: Vec<String> = skills.iter().map(|(s, l)| format!("{s}: {l}")).collect();
    format!(
        "  - id: {id}\n    name: Agent {id}\n    password_hash: \"{hash}\"\n    skills: {{ {} }}\n    queues: [{}]\n",
        skills.join(", "),
        queues.join(", ")
    )
}

/// A server with one queue, `billing` (number 7100, callers go straight in), agent `alice` and
/// supervisor `mia` ("Mia Supervisor") with the given passwords; `extra` is appended to the config.
pub fn billing_centre(agent_password: &str, supervisor_password: &str, extra: &str) -> Server {
    let hash = switchboard::auth::hash_password(supervisor_password).expect("8+ bytes");
    let config = format!(
        "queues:\n  - name: billing\n    announce_every: 60s\nagents:\n{}supervisors:\n  - id: mia\n    name: Mia Supervisor\n    password_hash: \"{hash}\"\n{extra}",
        agent_yaml("alice", agent_password, &[], &["billing"])
    );
    Server::start(
        super::server::ServerOpts::new()
            .flow(
                "queue-billing",
                &super::queue_flow("queue-billing", "7100", "billing"),
            )
            .config(&config),
    )
}

/// `POST path` with a JSON body; the status and the body as JSON (Null when it is not JSON).
pub fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Result<(u16, Value), String> {
    post_json_with(addr, path, body, &[])
}

/// [`post_json`] with extra request headers (`Authorization`, `Origin`…).
pub fn post_json_with(
    addr: SocketAddr,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> Result<(u16, Value), String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let body = body.to_string();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or("no end of HTTP headers")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    // axum answers these with Content-Length, so the rest is the body.
    Ok((status, serde_json::from_str(rest).unwrap_or(Value::Null)))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Messages from the server not yet consumed by a `wait_*`, and everything ever received.
#[derive(Default)]
struct Inbox {
    state: Mutex<InboxState>,
    changed: Condvar,
}

#[derive(Default)]
struct InboxState {
    pending: VecDeque<Value>,
    history: Vec<String>,
    closed: Option<String>,
}

enum Out {
    Text(String),
    /// Drop the TCP connection without a close frame, as a crashed tab or a lost network does.
    Drop,
}

/// The WebRTC peer's task, running on the agent's runtime.
struct Media {
    heard: Arc<Mutex<Vec<u8>>>,
    connected: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
    tone: watch::Sender<Option<f64>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

pub struct Agent {
    pub id: String,
    pub token: String,
    rt: tokio::runtime::Runtime,
    out: std_mpsc::Sender<Out>,
    inbox: Arc<Inbox>,
    ws_thread: Option<JoinHandle<()>>,
    media: Option<Media>,
}

impl Agent {
    /// Logs in (`POST /api/agent/login`), opens `/agent/ws?token=…` and waits for `hello`.
    pub fn login(server: &Server, id: &str, password: &str) -> Result<Agent, String> {
        let (status, body) = post_json(
            server.http,
            "/api/agent/login",
            &json!({"agent": id, "password": password}),
        )?;
        if status != 200 {
            return Err(format!("login of {id} got {status}: {body}"));
        }
        let token = body
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("login answer without a token: {body}"))?
            .to_string();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let mut agent = Agent {
            id: id.to_string(),
            token,
            rt,
            out: std_mpsc::channel().0,
            inbox: Arc::new(Inbox::default()),
            ws_thread: None,
            media: None,
        };
        agent.connect(server)?;
        Ok(agent)
    }

    /// Opens the WebSocket (again, after [`Agent::drop_socket`]: a page reload) and waits for
    /// `hello`, which it returns.
    pub fn connect(&mut self, server: &Server) -> Result<Value, String> {
        let stream = TcpStream::connect_timeout(&server.http, Duration::from_secs(2))
            .map_err(|e| format!("connect {}: {e}", server.http))?;
        let url = format!("ws://{}/agent/ws?token={}", server.http, self.token);
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let (ws, _) = tungstenite::client::client(url, stream)
            .map_err(|e| format!("WebSocket handshake for {}: {e}", self.id))?;
        // Short reads from here on, so one thread can both read and send.
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(20)))
            .map_err(|e| e.to_string())?;
        let (tx, rx) = std_mpsc::channel();
        self.inbox = Arc::new(Inbox::default());
        let inbox = self.inbox.clone();
        self.out = tx;
        self.ws_thread = Some(std::thread::spawn(move || ws_loop(ws, rx, inbox)));
        self.wait_type("hello", Duration::from_secs(5))
    }

    fn send(&self, msg: Value) -> Result<(), String> {
        self.out
            .send(Out::Text(msg.to_string()))
            .map_err(|_| format!("{}'s WebSocket is gone", self.id))
    }

    /// Drops the WebSocket without a close frame (tab crash, network loss).
    pub fn drop_socket(&mut self) {
        let _ = self.out.send(Out::Drop);
        if let Some(t) = self.ws_thread.take() {
            let _ = t.join();
        }
    }

    pub fn set_available(&self) -> Result<(), String> {
        self.send(json!({"type": "state", "state": "available"}))?;
        self.wait_state("available", Duration::from_secs(5))
            .map(|_| ())
    }

    /// Waits for a message `pred` accepts and consumes it, with every earlier message of its type
    /// (so a stale `state` cannot satisfy a later wait).
    pub fn wait_msg(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.inbox.state);
        loop {
            if let Some(i) = st.pending.iter().position(&pred) {
                let found = st.pending.remove(i).unwrap_or(Value::Null);
                let kind = found.get("type").cloned();
                let (mut j, mut earlier) = (0, i);
                while j < earlier {
                    if st.pending.get(j).and_then(|m| m.get("type")) == kind.as_ref() {
                        st.pending.remove(j);
                        earlier -= 1;
                    } else {
                        j += 1;
                    }
                }
                return Ok(found);
            }
            let now = Instant::now();
            if now >= deadline || st.closed.is_some() {
                let interesting: Vec<&String> = st
                    .history
                    .iter()
                    .filter(|m| !m.starts_with(r#"{"type":"queues""#))
                    .filter(|m| !m.starts_with(r#"{"type":"agents""#))
                    .collect();
                return Err(format!(
                    "agent {}: no {what} within {timeout:?} (socket {}); got: {interesting:#?}",
                    self.id,
                    st.closed.as_deref().unwrap_or("open"),
                ));
            }
            st = self
                .inbox
                .changed
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    pub fn wait_type(&self, kind: &str, timeout: Duration) -> Result<Value, String> {
        self.wait_msg(kind, timeout, |m| m["type"] == kind)
    }

    /// Waits for `{"type":"state","state":s}`.
    pub fn wait_state(&self, s: &str, timeout: Duration) -> Result<Value, String> {
        self.wait_msg(&format!("state {s:?}"), timeout, |m| {
            m["type"] == "state" && m["state"] == s
        })
    }

    pub fn wait_ring(&self, timeout: Duration) -> Result<Value, String> {
        self.wait_type("ring", timeout)
    }

    /// Whether a message of `kind` is waiting (non-blocking, not consumed).
    pub fn has_pending(&self, kind: &str) -> bool {
        lock(&self.inbox.state)
            .pending
            .iter()
            .any(|m| m["type"] == kind)
    }

    /// Answers as the page does: offer (gathering complete), `answer`, `answer_sdp`, apply it,
    /// `connected`, and the peer's own ICE/DTLS `Connected`.
    pub fn answer(&mut self, call_id: &str) -> Result<(), String> {
        let timeout = Duration::from_secs(10);
        let (mut peer, offer) = self
            .rt
            .block_on(RtcTestPeer::offer(&RtcConfig::default()))
            .map_err(|e| format!("offer: {e}"))?;
        self.send(json!({"type": "answer", "call_id": call_id, "sdp": offer}))?;
        let answer = self.wait_msg("answer_sdp", timeout, |m| {
            m["type"] == "answer_sdp" && m["call_id"] == call_id
        })?;
        let sdp = answer["sdp"].as_str().ok_or("answer_sdp without sdp")?;
        self.rt
            .block_on(peer.accept_answer(sdp))
            .map_err(|e| format!("accept_answer: {e}"))?;
        self.media = Some(self.start_media(peer));
        self.wait_msg("connected", timeout, |m| {
            m["type"] == "connected" && m["call_id"] == call_id
        })?;
        let deadline = Instant::now() + timeout;
        while !self.media_connected() {
            if Instant::now() > deadline || self.media_closed() {
                return Err(format!("the WebRTC peer of {} did not connect", self.id));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn start_media(&self, mut peer: RtcTestPeer) -> Media {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let connected = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicBool::new(false));
        let (tone, mut tone_rx) = watch::channel::<Option<f64>>(None);
        let (stop, mut stop_rx) = oneshot::channel::<()>();
        let (h, c, x) = (heard.clone(), connected.clone(), closed.clone());
        let task = self.rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut n: u64 = 0;
            loop {
                tokio::select! {
                    ev = peer.recv() => match ev {
                        Some(RtcEvent::Connected) => c.store(true, Ordering::SeqCst),
                        Some(RtcEvent::Audio { payload, .. }) => lock(&h).extend_from_slice(&payload),
                        Some(RtcEvent::Dtmf(_)) => {}
                        Some(RtcEvent::Closed) | None => {
                            x.store(true, Ordering::SeqCst);
                            return;
                        }
                    },
                    _ = tick.tick() => {
                        let hz = *tone_rx.borrow_and_update();
                        if let Some(hz) = hz {
                            let frame = tone_frame(hz, n);
                            n += 160;
                            let _ = peer.send_pcmu(&frame);
                        }
                    }
                    _ = &mut stop_rx => {
                        peer.close().await;
                        x.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            }
        });
        Media {
            heard,
            connected,
            closed,
            tone,
            stop: Some(stop),
            task,
        }
    }

    pub fn media_connected(&self) -> bool {
        self.media
            .as_ref()
            .is_some_and(|m| m.connected.load(Ordering::SeqCst))
    }

    /// Whether the WebRTC connection has ended (the server closed it, or we did).
    pub fn media_closed(&self) -> bool {
        self.media
            .as_ref()
            .is_some_and(|m| m.closed.load(Ordering::SeqCst))
    }

    /// Starts sending a continuous sine of `hz` as PCMU, paced at 20 ms, until the call ends.
    pub fn send_tone_pcmu(&self, hz: f64) {
        if let Some(m) = &self.media {
            let _ = m.tone.send(Some(hz));
        }
    }

    /// Everything the agent's peer has received so far, as µ-law bytes.
    pub fn received_audio(&self) -> Vec<u8> {
        self.media
            .as_ref()
            .map(|m| lock(&m.heard).clone())
            .unwrap_or_default()
    }

    /// Hangs up from the console (`hangup`); the WebRTC peer stays up until the server closes it.
    pub fn hangup(&self, call_id: &str) -> Result<(), String> {
        self.send(json!({"type": "hangup", "call_id": call_id}))
    }

    /// A key on the console's keypad, for the caller's side.
    pub fn dtmf(&self, call_id: &str, digit: char) -> Result<(), String> {
        self.send(json!({"type": "dtmf", "call_id": call_id, "digit": digit.to_string()}))
    }

    /// Hands the call on from the console: to a queue, or to one agent.
    pub fn transfer(
        &self,
        call_id: &str,
        queue: Option<&str>,
        agent: Option<&str>,
    ) -> Result<(), String> {
        self.send(json!({"type": "transfer", "call_id": call_id, "queue": queue, "agent": agent}))
    }

    pub fn decline(&self, call_id: &str) -> Result<(), String> {
        self.send(json!({"type": "decline", "call_id": call_id}))
    }

    /// Closes the WebRTC peer, as the browser closing its `RTCPeerConnection`.
    pub fn close_media(&mut self) {
        if let Some(mut m) = self.media.take() {
            if let Some(stop) = m.stop.take() {
                let _ = stop.send(());
            }
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), &mut m.task).await
            });
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.close_media();
        self.drop_socket();
    }
}

fn ws_loop(
    mut ws: tungstenite::WebSocket<TcpStream>,
    out: std_mpsc::Receiver<Out>,
    inbox: Arc<Inbox>,
) {
    let close = |why: String| {
        lock(&inbox.state).closed = Some(why);
        inbox.changed.notify_all();
    };
    loop {
        loop {
            match out.try_recv() {
                Ok(Out::Text(t)) => {
                    if let Err(e) = ws.send(Message::text(t)) {
                        return close(format!("send failed: {e}"));
                    }
                }
                Ok(Out::Drop) | Err(std_mpsc::TryRecvError::Disconnected) => {
                    return close("dropped by the test".into());
                }
                Err(std_mpsc::TryRecvError::Empty) => break,
            }
        }
        match ws.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                let mut st = lock(&inbox.state);
                st.history.push(t.as_str().to_string());
                st.pending.push_back(v);
                drop(st);
                inbox.changed.notify_all();
            }
            Ok(Message::Close(frame)) => {
                return close(format!(
                    "closed by the server: {}",
                    frame.map(|f| f.code.to_string()).unwrap_or_default()
                ));
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return close(format!("read failed: {e}")),
        }
    }
}

/// 20 ms of a sine at about -12 dBFS starting at sample `n`, µ-law encoded.
pub fn tone_frame(hz: f64, n: u64) -> Vec<u8> {
    (0..160u64)
        .map(|i| {
            let t = (n + i) as f64 / 8000.0;
            let s = 8000.0 * (std::f64::consts::TAU * hz * t).sin();
            Law::Mu.encode(s as i16)
        })
        .collect()
}

/// `secs` seconds of a sine as 8 kHz samples (for the softphone's sender).
pub fn tone_pcm(hz: f64, secs: f64) -> Vec<i16> {
    let n = (secs * 8000.0) as usize;
    (0..n)
        .map(|i| (8000.0 * (std::f64::consts::TAU * hz * i as f64 / 8000.0).sin()) as i16)
        .collect()
}

/// How many 100 ms windows of `ulaw` are dominated by a tone at `hz`: the share of the window's
/// energy at that frequency (1.0 for a pure tone) above one half, and not near-silence.
pub fn tone_windows(ulaw: &[u8], hz: f64) -> usize {
    let pcm: Vec<i16> = ulaw.iter().map(|&b| Law::Mu.decode(b)).collect();
    pcm.chunks_exact(800)
        .filter(|w| {
            let energy: f64 = w.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            let rms = (energy / w.len() as f64).sqrt();
            let share = goertzel_power(w, hz) * 2.0 / (w.len() as f64 * energy.max(1.0));
            rms > 300.0 && share > 0.5
        })
        .count()
}

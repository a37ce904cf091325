//! The load generator's user agent: one UDP socket for every call's signalling, a dispatcher
//! that routes what arrives by Call-ID, and the caller's side of INVITE/200/ACK and BYE/200 with
//! the retransmissions RFC 3261 asks of a UAC over UDP. Messages are written as text: the point
//! is to cost the server, not the generator, as little as possible to parse.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// What the dispatcher hands a call: a response, or the server's own BYE (already answered).
#[derive(Debug)]
pub enum Incoming {
    Response {
        status: u16,
        cseq_method: String,
        to_tag: Option<String>,
        body: String,
    },
    ServerBye,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no final answer to the INVITE within {0:?}")]
    InviteTimeout(Duration),
    #[error("the INVITE was refused with {0}")]
    Refused(u16),
    #[error("the 200 OK carried no usable SDP answer")]
    BadAnswer,
    #[error("no 200 OK to the BYE within {0:?}")]
    ByeTimeout(Duration),
    #[error("the BYE was answered with {0}")]
    ByeRefused(u16),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Ua {
    sock: UdpSocket,
    pub local: SocketAddr,
    pub server: SocketAddr,
    calls: Mutex<HashMap<String, mpsc::UnboundedSender<Incoming>>>,
    next: AtomicU64,
    run_id: u64,
}

/// One established call: what the caller needs to hang up and to send media.
pub struct Dialog {
    pub call_id: String,
    pub from_tag: String,
    pub to_tag: String,
    pub did: String,
    pub remote_rtp: Option<SocketAddr>,
    pub setup: Duration,
    pub rx: mpsc::UnboundedReceiver<Incoming>,
    pub server_hung_up: bool,
}

const T1: Duration = Duration::from_millis(500);
const INVITE_TIMEOUT: Duration = Duration::from_secs(16);
const BYE_TIMEOUT: Duration = Duration::from_secs(8);

impl Ua {
    pub async fn bind(server: SocketAddr) -> std::io::Result<Arc<Ua>> {
        let sock = UdpSocket::bind("127.0.0.1:0").await?;
        let local = sock.local_addr()?;
        let ua = Arc::new(Ua {
            sock,
            local,
            server,
            calls: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            run_id: u64::from(std::process::id()) << 20 ^ rand::random::<u64>() >> 44,
        });
        tokio::spawn(dispatch(ua.clone()));
        Ok(ua)
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Incoming>>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// INVITE → (1xx) → 200 → ACK. `rtp_port` goes in the offer; `from_user` in From.
    pub async fn invite(
        &self,
        did: &str,
        from_user: &str,
        rtp_port: u16,
    ) -> Result<Dialog, CallError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let call_id = format!("lg-{:x}-{n}@loadgen", self.run_id);
        let from_tag = format!("t{n}");
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.calls().insert(call_id.clone(), tx);
        let result = self
            .invite_inner(did, from_user, rtp_port, &call_id, &from_tag, &mut rx)
            .await;
        match result {
            Ok((to_tag, remote_rtp, setup)) => Ok(Dialog {
                call_id,
                from_tag,
                to_tag,
                did: did.to_string(),
                remote_rtp,
                setup,
                rx,
                server_hung_up: false,
            }),
            Err(e) => {
                self.calls().remove(&call_id);
                Err(e)
            }
        }
    }

    async fn invite_inner(
        &self,
        did: &str,
        from_user: &str,
        rtp_port: u16,
        call_id: &str,
        from_tag: &str,
        rx: &mut mpsc::UnboundedReceiver<Incoming>,
    ) -> Result<(String, Option<SocketAddr>, Duration), CallError> {
        let branch = format!("z9hG4bK-{call_id}-1");
        let sdp = format!(
            "v=0\r\no=loadgen 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        let invite = format!(
            "INVITE sip:{did}@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{from_user}@{me}>;tag={from_tag}\r\nTo: <sip:{did}@{srv}>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:{from_user}@{me}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            srv = self.server,
            me = self.local,
            len = sdp.len()
        );
        let started = Instant::now();
        let deadline = started + INVITE_TIMEOUT;
        self.sock.send_to(invite.as_bytes(), self.server).await?;
        let mut retransmit = Some(T1);
        let mut next_send = started + T1;
        loop {
            let wake = match retransmit {
                Some(_) => next_send.min(deadline),
                None => deadline,
            };
            let got = tokio::time::timeout_at(wake.into(), rx.recv()).await;
            match got {
                Err(_) => {
                    if Instant::now() >= deadline {
                        return Err(CallError::InviteTimeout(INVITE_TIMEOUT));
                    }
                    if let Some(iv) = retransmit {
                        self.sock.send_to(invite.as_bytes(), self.server).await?;
                        let iv = (iv * 2).min(Duration::from_secs(4));
                        retransmit = Some(iv);
                        next_send = Instant::now() + iv;
                    }
                }
                Ok(None) => return Err(CallError::InviteTimeout(INVITE_TIMEOUT)),
                Ok(Some(Incoming::ServerBye)) => return Err(CallError::Refused(0)),
                Ok(Some(Incoming::Response {
                    status,
                    cseq_method,
                    to_tag,
                    body,
                })) => {
                    if cseq_method != "INVITE" {
                        continue;
                    }
                    if status < 200 {
                        retransmit = None;
                        continue;
                    }
                    let setup = started.elapsed();
                    let to_tag = to_tag.unwrap_or_default();
                    // Every final answer is acknowledged; a non-2xx ACK is part of the INVITE
                    // transaction (same branch), a 2xx ACK is a new one.
                    let ack_branch = if status < 300 {
                        format!("z9hG4bK-{call_id}-ack")
                    } else {
                        branch.clone()
                    };
                    let ack = format!(
                        "ACK sip:{did}@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={ack_branch};rport\r\n\
                         Max-Forwards: 70\r\nFrom: <sip:{from_user}@{me}>;tag={from_tag}\r\n\
                         To: <sip:{did}@{srv}>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\n\
                         Content-Length: 0\r\n\r\n",
                        srv = self.server,
                        me = self.local,
                    );
                    self.sock.send_to(ack.as_bytes(), self.server).await?;
                    if status >= 300 {
                        return Err(CallError::Refused(status));
                    }
                    let remote = sdp_remote(&body).ok_or(CallError::BadAnswer)?;
                    return Ok((to_tag, Some(remote), setup));
                }
            }
        }
    }

    /// BYE → 200, unless the server hung up first (then there is nothing to do).
    pub async fn bye(&self, d: &mut Dialog, from_user: &str) -> Result<(), CallError> {
        let result = self.bye_inner(d, from_user).await;
        self.calls().remove(&d.call_id);
        result
    }

    async fn bye_inner(&self, d: &mut Dialog, from_user: &str) -> Result<(), CallError> {
        // Drain what came meanwhile: a BYE from the server ends the call without ours.
        while let Ok(m) = d.rx.try_recv() {
            if matches!(m, Incoming::ServerBye) {
                d.server_hung_up = true;
            }
        }
        if d.server_hung_up {
            return Ok(());
        }
        let bye = format!(
            "BYE sip:{did}@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{cid}-bye;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{from_user}@{me}>;tag={ft}\r\nTo: <sip:{did}@{srv}>;tag={tt}\r\n\
             Call-ID: {cid}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
            did = d.did,
            srv = self.server,
            me = self.local,
            cid = d.call_id,
            ft = d.from_tag,
            tt = d.to_tag,
        );
        let deadline = Instant::now() + BYE_TIMEOUT;
        let mut iv = T1;
        loop {
            self.sock.send_to(bye.as_bytes(), self.server).await?;
            let wake = (Instant::now() + iv).min(deadline);
            loop {
                match tokio::time::timeout_at(wake.into(), d.rx.recv()).await {
                    Err(_) => break,
                    Ok(None) => return Err(CallError::ByeTimeout(BYE_TIMEOUT)),
                    Ok(Some(Incoming::ServerBye)) => {
                        d.server_hung_up = true;
                        return Ok(());
                    }
                    Ok(Some(Incoming::Response {
                        status,
                        cseq_method,
                        ..
                    })) => {
                        if cseq_method != "BYE" || status < 200 {
                            continue;
                        }
                        if status == 481 && server_bye_follows(&mut d.rx).await {
                            // Our BYE crossed the flow's own hang-up: the call is over either way.
                            d.server_hung_up = true;
                            return Ok(());
                        }
                        if status >= 300 {
                            return Err(CallError::ByeRefused(status));
                        }
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(CallError::ByeTimeout(BYE_TIMEOUT));
            }
            iv = (iv * 2).min(Duration::from_secs(4));
        }
    }
}

/// Whether the server's own BYE for this call arrives within a second (after a 481 to ours, the
/// flow hung up as we did).
async fn server_bye_follows(rx: &mut mpsc::UnboundedReceiver<Incoming>) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if matches!(m, Incoming::ServerBye) {
            return true;
        }
    }
    false
}

/// Reads every datagram on the SIP socket: responses go to their call; a request from the
/// server (its BYE when the flow hangs up) is answered 200 here and the call told.
async fn dispatch(ua: Arc<Ua>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (text, from) = next_datagram(&ua.sock, &mut buf).await;
        let Some(msg) = parse(text) else { continue };
        let call_id = msg.header("call-id", "i").unwrap_or_default().to_string();
        let cseq = msg.header("cseq", "").unwrap_or_default();
        let cseq_method = cseq.split_whitespace().nth(1).unwrap_or("").to_string();
        if let Some(status) = msg.status {
            let to_tag = msg.header("to", "t").and_then(tag_of);
            let tx = ua.calls().get(&call_id).cloned();
            if let Some(tx) = tx {
                let _ = tx.send(Incoming::Response {
                    status,
                    cseq_method,
                    to_tag,
                    body: msg.body.to_string(),
                });
            }
            continue;
        }
        // A request: answer it (BYE and anything else) with 200, copying the dialog headers.
        let mut resp = String::from("SIP/2.0 200 OK\r\n");
        for (name, value) in &msg.headers {
            let n = name.to_ascii_lowercase();
            if matches!(
                n.as_str(),
                "via" | "v" | "from" | "f" | "to" | "t" | "call-id" | "i" | "cseq"
            ) {
                resp.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        resp.push_str("Content-Length: 0\r\n\r\n");
        let _ = ua.sock.send_to(resp.as_bytes(), from).await;
        if msg.method.as_deref() == Some("BYE") {
            let tx = ua.calls().get(&call_id).cloned();
            if let Some(tx) = tx {
                let _ = tx.send(Incoming::ServerBye);
            }
        }
    }
}

/// A parsed SIP message, borrowing the datagram's text.
pub struct Msg<'a> {
    pub status: Option<u16>,
    pub method: Option<String>,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a str,
}

impl Msg<'_> {
    pub fn header(&self, long: &str, compact: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| {
                n.eq_ignore_ascii_case(long)
                    || (!compact.is_empty() && n.eq_ignore_ascii_case(compact))
            })
            .map(|(_, v)| *v)
    }
}

/// The next datagram on `sock` that is UTF-8 text (SIP is), and where it came from.
pub async fn next_datagram<'b>(
    sock: &tokio::net::UdpSocket,
    buf: &'b mut [u8],
) -> (&'b str, std::net::SocketAddr) {
    let (n, from) = loop {
        if let Ok((n, from)) = sock.recv_from(buf).await {
            if buf.get(..n).is_some_and(|b| std::str::from_utf8(b).is_ok()) {
                break (n, from);
            }
        }
    };
    // Checked just above; the empty string cannot be reached.
    let text = buf
        .get(..n)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("");
    (text, from)
}

pub fn parse(text: &str) -> Option<Msg<'_>> {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.split("\r\n");
    let first = lines.next()?;
    let (status, method) = if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
        (Some(rest.get(..3)?.parse().ok()?), None)
    } else {
        (None, Some(first.split_whitespace().next()?.to_string()))
    };
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim(), v.trim()))
        .collect();
    Some(Msg {
        status,
        method,
        headers,
        body,
    })
}

pub fn tag_of(to: &str) -> Option<String> {
    to.split(';')
        .find_map(|p| p.trim().strip_prefix("tag="))
        .map(str::to_string)
}

/// The answer's `c=` address and `m=audio` port.
pub fn sdp_remote(body: &str) -> Option<SocketAddr> {
    let mut ip = None;
    let mut port = None;
    for line in body.lines() {
        if let Some(c) = line.trim().strip_prefix("c=IN IP4 ") {
            ip = c.trim().parse::<std::net::IpAddr>().ok();
        } else if let Some(m) = line.trim().strip_prefix("m=audio ") {
            port = m
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok());
        }
    }
    Some(SocketAddr::new(ip?, port?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_routed_by_its_call_id_with_the_to_tag() {
        let text = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bK1\r\n\
                    To: <sip:3000@x>;tag=abc\r\ni: c1@x\r\nCSeq: 1 INVITE\r\n\r\nv=0\r\n";
        let m = parse(text).unwrap();
        assert_eq!(m.status, Some(200));
        assert_eq!(m.header("call-id", "i"), Some("c1@x"));
        assert_eq!(m.header("to", "t").and_then(tag_of).as_deref(), Some("abc"));
        assert_eq!(m.body, "v=0\r\n");
    }

    #[test]
    fn the_answer_sdp_gives_where_to_send_rtp() {
        let sdp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 20004 RTP/AVP 0 101\r\n";
        assert_eq!(sdp_remote(sdp), Some("127.0.0.1:20004".parse().unwrap()));
        assert_eq!(sdp_remote("v=0\r\nm=audio 1 RTP/AVP 0\r\n"), None);
    }
}

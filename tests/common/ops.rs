//! Operations on the running server from outside: signals, a flooder that blasts SIP from its
//! own loopback address, and what an operator watches (`/healthz`, `/metrics`).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::server::Server;

/// Sends SIGTERM to the server, as systemd or `docker stop` would.
pub fn sigterm(server: &Server) {
    let pid = server.pid().expect("server is running");
    let pid = libc::pid_t::try_from(pid).expect("pid fits");
    // SAFETY: kill(2) with a pid we spawned and a valid signal number has no memory effects.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill(SIGTERM) failed");
}

/// What a flood achieved.
#[derive(Debug, Default, Clone, Copy)]
pub struct FloodReport {
    pub sent: u64,
    pub answered: u64,
    pub send_errors: u64,
}

/// Blasts OPTIONS, INVITE (no SDP, unknown number), REGISTER and garbage from `from` (an
/// address of its own, e.g. 127.0.0.2) at `server` as fast as it can until `stop` is set or
/// `max` has passed; counts the answers it got back.
pub fn flood(
    from: &str,
    server: SocketAddr,
    stop: Arc<AtomicBool>,
    max: Duration,
) -> std::thread::JoinHandle<FloodReport> {
    let sock = UdpSocket::bind(format!("{from}:0")).expect("bind flooder");
    sock.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let local = sock.local_addr().expect("local addr");
        let mut report = FloodReport::default();
        let mut buf = vec![0u8; 65536];
        let started = Instant::now();
        let mut n: u64 = 0;
        while !stop.load(Ordering::Relaxed) && started.elapsed() < max {
            n += 1;
            let msg = match n % 4 {
                0 => sip("OPTIONS", "sip:scan@x", n, local),
                1 => sip("INVITE", "sip:999000@x", n, local),
                2 => sip("REGISTER", "sip:x", n, local),
                _ => format!("GARBAGE {n} \r\n\r\n\x01\x02\x7f"),
            };
            match sock.send_to(msg.as_bytes(), server) {
                Ok(_) => report.sent += 1,
                Err(_) => report.send_errors += 1,
            }
            while let Ok((_, _)) = sock.recv_from(&mut buf) {
                report.answered += 1;
            }
        }
        report
    })
}

fn sip(method: &str, uri: &str, n: u64, local: SocketAddr) -> String {
    format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKflood{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:scanner@{local}>;tag=f{n}\r\nTo: <{uri}>\r\n\
         Call-ID: flood{n}@{local}\r\nCSeq: 1 {method}\r\nContact: <sip:scanner@{local}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Sends one INVITE with a G.711 offer from a socket on `from_ip`; the final status (None if
/// nothing final came within `timeout`) and the Call-ID used.
pub fn invite_from(
    from_ip: &str,
    server: SocketAddr,
    to: &str,
    timeout: Duration,
) -> (Option<u16>, String) {
    request_from(from_ip, server, "INVITE", to, timeout)
}

/// Sends `method` (INVITE with a G.711 offer, anything else bare) from a socket on `from_ip`,
/// retransmitting like a phone would; the final status and the Call-ID used.
pub fn request_from(
    from_ip: &str,
    server: SocketAddr,
    method: &str,
    to: &str,
    timeout: Duration,
) -> (Option<u16>, String) {
    let n: u64 = rand::random();
    let call_id = format!("req{n}@{from_ip}");
    (
        try_request(from_ip, server, method, to, timeout, n, &call_id),
        call_id,
    )
}

fn try_request(
    from_ip: &str,
    server: SocketAddr,
    method: &str,
    to: &str,
    timeout: Duration,
    n: u64,
    call_id: &str,
) -> Option<u16> {
    let sock = UdpSocket::bind(format!("{from_ip}:0")).ok()?;
    let local = sock.local_addr().ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .ok()?;
    let mut sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        ip = local.ip(),
        port = local.port() + 2
    );
    let content_type = if method == "INVITE" {
        "Content-Type: application/sdp\r\n"
    } else {
        sdp.clear();
        ""
    };
    let msg = format!(
        "{method} sip:{to}@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKinv{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+5511900000000@{local}>;tag=i{n}\r\nTo: <sip:{to}@{server}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:caller@{local}>\r\n\
         {content_type}Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let deadline = Instant::now() + timeout;
    let mut next_send = Instant::now();
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if Instant::now() >= next_send {
            sock.send_to(msg.as_bytes(), server).ok()?;
            next_send = Instant::now() + Duration::from_millis(500);
        }
        if let Ok((len, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(buf.get(..len).unwrap_or_default()).into_owned();
            let status: Option<u16> = text
                .strip_prefix("SIP/2.0 ")
                .and_then(|r| r.get(..3))
                .and_then(|c| c.parse().ok());
            match status {
                Some(s) if s >= 200 => return Some(s),
                Some(_) => next_send = deadline,
                None => {}
            }
        }
    }
    None
}

/// `/healthz`: its status and JSON (Null when the server did not answer in time: a health check
/// that times out counts as a bad one).
pub fn healthz(server: &Server) -> (u16, serde_json::Value) {
    match super::http::get(server.http, "/healthz", None) {
        Ok(r) => (r.status, r.json().unwrap_or(serde_json::Value::Null)),
        Err(_) => (0, serde_json::Value::Null),
    }
}

/// Polls `/healthz` until `ok` holds; panics naming `what` after `timeout`.
pub fn wait_healthz(
    server: &Server,
    timeout: Duration,
    what: &str,
    ok: impl Fn(u16, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = healthz(server);
        if ok(status, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never showed {what}: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `/metrics` with the API token, as text.
pub fn metrics_text(server: &Server) -> String {
    super::http::get(server.http, "/metrics", Some(super::http::API_TOKEN))
        .expect("GET /metrics")
        .text()
}

/// A sample's value in the Prometheus text; -1 when it is missing.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(-1.0)
}

/// One complete call to a [`super::menu_flow`] number: answered, the menu prompt heard, hung up
/// by the caller (BYE answered 200). Its Call-ID.
pub fn menu_call(server: &Server, number: &str) -> String {
    let prompts = super::english_prompts(&["main-menu"]);
    let mut phone = super::Phone::udp(server);
    phone.call(number, super::CALLER).expect("call answered");
    phone
        .wait_heard(&prompts, "main-menu", 1, super::secs(10))
        .expect("menu heard");
    let id = phone.call_id().to_string();
    assert_eq!(phone.hangup().expect("BYE answered"), 200);
    id
}

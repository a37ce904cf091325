//! Browser-page sockets and sign-outs on the wire: a WebSocket handshake with or without an
//! `Origin` (tungstenite's blocking client), its close code, and a bare `POST` with a bearer token.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::{self, Message};

pub type Ws = tungstenite::WebSocket<TcpStream>;

/// Opens `ws://<addr><path>` (path with its query), sending `Origin` when given as a browser
/// would; `Err(status)` when the server refuses the handshake. Reads then time out every 200 ms.
pub fn open_ws(addr: SocketAddr, path: &str, origin: Option<&str>) -> Result<Ws, u16> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let url = format!("ws://{addr}{path}");
    let mut req = tungstenite::client::IntoClientRequest::into_client_request(url).expect("url");
    if let Some(o) = origin {
        req.headers_mut()
            .insert("Origin", o.parse().expect("header value"));
    }
    match tungstenite::client::client(req, stream) {
        Ok((ws, _)) => {
            ws.get_ref()
                .set_read_timeout(Some(Duration::from_millis(200)))
                .expect("timeout");
            Ok(ws)
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            Err(resp.status().as_u16())
        }
        Err(e) => panic!("WebSocket handshake: {e}"),
    }
}

/// Whether a read error is only the short read timeout.
pub fn timed_out(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(e) if matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ))
}

/// Reads (and drops) messages until the server closes the socket: its close code, 0 for a close
/// without a code or a dropped connection; `None` when it is still open after `timeout`.
pub fn wait_close(ws: &mut Ws, timeout: Duration) -> Option<u16> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match ws.read() {
            Ok(Message::Close(frame)) => return Some(frame.map_or(0, |f| u16::from(f.code))),
            Ok(_) => {}
            Err(e) if timed_out(&e) => {}
            Err(_) => return Some(0),
        }
    }
    None
}

/// `POST path` with no body and `Authorization: Bearer <token>`; the status.
pub fn post_bearer(addr: SocketAddr, path: &str, token: &str) -> u16 {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

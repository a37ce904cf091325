//! A browser call from the click-to-call widget, with webrtc-rs standing in for the visitor's
//! browser (the real Chromium run is scripts/test-widget-browser): the page posts its offer,
//! hears the menu, presses 1 on the keypad (RFC 4733 in the media stream), waits in the queue,
//! is answered by an agent's SIP phone, and the two hear each other's tones. The event stream
//! tells the page each step; the page hangs up and the record says `webrtc`. Other origins and
//! unknown calls are refused.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::agent::{agent_yaml, tone_frame, tone_pcm, tone_windows};
use common::deskphone::{sip_ha1, DeskPhone};
use common::rtp::RxPacket;
use common::*;
use serde_json::Value;
use switchboard::rtc::{RtcConfig, RtcEvent, RtcTestPeer};

const FLOW: &str = r##"
flow: web-help
numbers: ["7300"]
language: en
start: menu
steps:
  menu:
    menu: { prompt: main-menu, options: { "1": support }, timeout: 20s, retries: 1 }
    on_timeout: goodbye
    on_invalid: goodbye
  support:
    queue: { name: web, timeout: 2m }
    on_timeout: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

const SHOP: &str = "http://shop.example";
const CALLER_HZ: f64 = 1000.0;
const AGENT_HZ: f64 = 500.0;
const ONE_SECOND: usize = 10;

fn server() -> Server {
    let agent = format!(
        "{}    sip: {{ user: alice, ha1: \"{}\" }}\n",
        agent_yaml("alice", "console pw 1", &[("web", 3)], &["web"]),
        sip_ha1("alice", "phone-secret-1")
    );
    Server::start(ServerOpts::new().flow("web-help", FLOW).config(&format!(
        "queues:\n  - name: web\n    wrap_up: 1s\n    ring_timeout: 20s\n    announce_every: 60s\n\
         agents:\n{agent}\
         widget:\n  flows: [web-help]\n  allowed_origins: [\"{SHOP}\"]\n  rate_per_minute: 20\n"
    )))
}

/// One HTTP request with an `Origin`; the status, headers (lower-case names) and JSON body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    origin: &str,
    body: &str,
) -> (u16, String, Value) {
    let mut s = TcpStream::connect_timeout(&addr, secs(2)).expect("connect");
    s.set_read_timeout(Some(secs(15))).expect("timeout");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// The call's server-sent events, read on a thread as the page's `EventSource` would.
struct Events {
    seen: Arc<Mutex<Vec<Value>>>,
    head: Arc<Mutex<String>>,
}

impl Events {
    fn open(addr: SocketAddr, path: &str) -> Events {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let head = Arc::new(Mutex::new(String::new()));
        let (s2, h2) = (seen.clone(), head.clone());
        let path = path.to_string();
        std::thread::spawn(move || {
            let Ok(mut s) = TcpStream::connect_timeout(&addr, secs(2)) else {
                return;
            };
            let _ = s.set_read_timeout(Some(secs(120)));
            // HTTP/1.0: the stream comes unchunked and ends when the call does.
            let req = format!(
                "GET {path} HTTP/1.0\r\nHost: {addr}\r\nOrigin: {SHOP}\r\nAccept: text/event-stream\r\n\r\n"
            );
            if s.write_all(req.as_bytes()).is_err() {
                return;
            }
            let mut in_head = true;
            for line in BufReader::new(s).lines() {
                let Ok(line) = line else { return };
                if in_head {
                    if line.is_empty() {
                        in_head = false;
                    } else if let Ok(mut h) = h2.lock() {
                        h.push_str(&line.to_ascii_lowercase());
                        h.push('\n');
                    }
                } else if let Some(data) = line.strip_prefix("data:") {
                    if let (Ok(v), Ok(mut seen)) =
                        (serde_json::from_str::<Value>(data.trim()), s2.lock())
                    {
                        seen.push(v);
                    }
                }
            }
        });
        Events { seen, head }
    }

    fn states(&self) -> Vec<String> {
        self.seen
            .lock()
            .map(|v| {
                v.iter()
                    .map(|e| e["state"].as_str().unwrap_or("?").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn wait(&self, state: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self
                .seen
                .lock()
                .ok()
                .and_then(|v| v.iter().find(|e| e["state"] == state).cloned())
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no `{state}` event; saw {:?}",
                self.states()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The visitor's browser: a WebRTC peer that records what it hears and plays a tone on demand.
struct Browser {
    rt: tokio::runtime::Runtime,
    peer: Arc<tokio::sync::Mutex<Option<RtcTestPeer>>>,
    heard: Arc<Mutex<Vec<u8>>>,
    connected: Arc<AtomicBool>,
    tone: tokio::sync::watch::Sender<Option<f64>>,
}

impl Browser {
    fn offer() -> (Browser, String) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (peer, offer) = rt
            .block_on(RtcTestPeer::offer(&RtcConfig::default()))
            .expect("offer");
        let b = Browser {
            rt,
            peer: Arc::new(tokio::sync::Mutex::new(Some(peer))),
            heard: Arc::new(Mutex::new(Vec::new())),
            connected: Arc::new(AtomicBool::new(false)),
            tone: tokio::sync::watch::channel(None).0,
        };
        (b, offer)
    }

    fn accept(&self, answer: &str) {
        let (peer, heard, connected) = (
            self.peer.clone(),
            self.heard.clone(),
            self.connected.clone(),
        );
        let mut tone = self.tone.subscribe();
        let answer = answer.to_string();
        self.rt.block_on(async {
            if let Some(p) = peer.lock().await.as_mut() {
                p.accept_answer(&answer).await.expect("accept answer");
            }
        });
        self.rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut n = 0u64;
            loop {
                let mut guard = peer.lock().await;
                let Some(p) = guard.as_mut() else { return };
                tokio::select! {
                    ev = p.recv() => match ev {
                        Some(RtcEvent::Connected) => connected.store(true, Ordering::SeqCst),
                        Some(RtcEvent::Audio { payload, .. }) => {
                            if let Ok(mut h) = heard.lock() {
                                h.extend_from_slice(&payload);
                            }
                        }
                        Some(RtcEvent::Dtmf(_)) => {}
                        Some(RtcEvent::Closed) | None => return,
                    },
                    _ = tick.tick() => {
                        // A browser sends audio all the time: silence until the tone starts.
                        let frame = match *tone.borrow_and_update() {
                            Some(hz) => tone_frame(hz, n),
                            None => vec![0xFF; 160],
                        };
                        n += 160;
                        let _ = p.send_pcmu(&frame);
                    }
                }
            }
        });
    }

    fn press(&self, digit: char) {
        let peer = self.peer.clone();
        self.rt.block_on(async {
            if let Some(p) = peer.lock().await.as_ref() {
                p.send_dtmf(digit).await.expect("dtmf");
            }
        });
    }

    fn heard(&self) -> Vec<u8> {
        self.heard.lock().map(|h| h.clone()).unwrap_or_default()
    }

    fn close(&self) {
        let peer = self.peer.clone();
        self.rt.block_on(async {
            if let Some(p) = peer.lock().await.take() {
                p.close().await;
            }
        });
    }
}

/// The µ-law the browser heard, as packets for the prompt matcher.
fn as_packets(ulaw: &[u8]) -> Vec<RxPacket> {
    let at = Instant::now();
    let from: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    ulaw.chunks(160)
        .enumerate()
        .map(|(i, c)| RxPacket {
            seq: i as u16,
            ts: (i * 160) as u32,
            marker: false,
            pt: 0,
            ssrc: 1,
            payload: c.to_vec(),
            at,
            from,
        })
        .collect()
}

#[test]
fn a_browser_caller_walks_the_menu_with_the_keypad_queues_and_talks_to_an_agent() {
    let server = server();
    let mut desk = DeskPhone::new(server.sip, "alice", "phone-secret-1");
    assert_eq!(desk.register(300).must(), vec![401, 200]);

    let (browser, offer) = Browser::offer();
    let body = serde_json::json!({"flow": "web-help", "sdp": offer}).to_string();
    let (status, head, answer) = request(server.http, "POST", "/api/widget/call", SHOP, &body);
    assert_eq!(status, 200, "{answer}");
    assert!(
        head.contains(&format!("access-control-allow-origin: {SHOP}")),
        "{head}"
    );
    let id = answer["call_id"].as_str().expect("call_id").to_string();
    let events_path = answer["events"].as_str().expect("events").to_string();
    assert_eq!(events_path, format!("/api/widget/call/{id}/events"));
    let events = Events::open(server.http, &events_path);
    browser.accept(answer["sdp"].as_str().expect("sdp"));

    // The flow answers: the page says so and the browser hears the menu.
    events.wait("in_ivr", secs(10));
    let prompts = english_prompts(&["main-menu"]);
    let deadline = Instant::now() + secs(15);
    while !prompts
        .hear(&as_packets(&browser.heard()))
        .iter()
        .any(|h| h.name == "main-menu")
    {
        assert!(
            Instant::now() < deadline,
            "the browser never heard the menu prompt: {} bytes heard, connected {}, events {:?}",
            browser.heard().len(),
            browser.connected.load(Ordering::SeqCst),
            events.states()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(browser.connected.load(Ordering::SeqCst));

    // The on-screen keypad: 1 → the queue, where the agent's phone rings.
    browser.press('1');
    let queued = events.wait("queued", secs(10));
    assert!(queued.get("position").is_some(), "{queued}");
    let invite = desk.wait_invite(secs(15)).must();
    assert!(
        invite.header("From").unwrap_or_default().contains("webrtc"),
        "the agent sees a web caller: {:?}",
        invite.header("From")
    );
    desk.answer().must();
    events.wait("connected", secs(10));

    // Audio both ways, checked by content.
    desk.queue_pcm(&tone_pcm(AGENT_HZ, 8.0));
    let _ = browser.tone.send(Some(CALLER_HZ));
    let since = browser.heard().len();
    let deadline = Instant::now() + secs(10);
    loop {
        let at_agent = tone_windows(&desk.audio(), CALLER_HZ);
        let at_browser = tone_windows(browser.heard().get(since..).unwrap_or_default(), AGENT_HZ);
        if at_agent >= ONE_SECOND && at_browser >= ONE_SECOND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent heard {at_agent} windows of the browser's tone, the browser {at_browser} of the agent's"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The page hangs up: the agent's phone gets BYE, the stream says who ended it.
    let (status, head, _) = request(
        server.http,
        "DELETE",
        &format!("/api/widget/call/{id}"),
        SHOP,
        "",
    );
    assert_eq!(status, 204);
    assert!(head.contains("access-control-allow-origin"), "{head}");
    desk.wait_bye(secs(10)).must();
    let ended = events.wait("ended", secs(10));
    assert_eq!(ended["by"], "caller", "{ended}");
    let states = events.states();
    assert_eq!(
        states.last().map(String::as_str),
        Some("ended"),
        "{states:?}"
    );
    assert!(events
        .head
        .lock()
        .is_ok_and(|h| h.contains("text/event-stream") && h.contains(SHOP)));
    browser.close();

    // One record, like a phone caller's, marked as a browser call.
    let (_, list) = http_get_json(&server, "/api/calls?limit=5");
    let rec = list
        .as_array()
        .and_then(|l| l.iter().find(|r| r["direction"] == "webrtc"))
        .cloned()
        .unwrap_or_else(|| panic!("no webrtc record in {list}"));
    let rec = wait_call_record(
        &server,
        rec["call_id"].as_str().unwrap_or_default(),
        secs(10),
    );
    assert_eq!(field(&rec, "to"), "widget-web-help", "{rec}");
    assert_eq!(field(&rec, "flow"), "web-help");
    assert_eq!(field(&rec, "agent_id"), "alice");
    assert_eq!(field(&rec, "hangup_by"), "caller");
    assert_eq!(field(&rec, "queue"), "web");
    let path = ivr_path(&rec);
    assert!(
        path.starts_with(&["menu".to_string(), "support".to_string()]),
        "{path:?}"
    );
    assert!(
        !server.log().contains(&id),
        "the call's token is not logged"
    );

    // The token is gone with the call.
    let (status, _, _) = request(server.http, "GET", &events_path, SHOP, "");
    assert_eq!(status, 404);
}

#[test]
fn other_origins_bad_offers_and_unknown_calls_are_refused() {
    let server = server();
    let (_browser, offer) = Browser::offer();
    let body = serde_json::json!({"flow": "web-help", "sdp": offer}).to_string();
    let (status, head, v) = request(
        server.http,
        "POST",
        "/api/widget/call",
        "http://evil.example",
        &body,
    );
    assert_eq!(status, 403, "{v}");
    assert!(!head.contains("access-control-allow-origin"));
    let (status, _, v) = request(
        server.http,
        "POST",
        "/api/widget/call",
        SHOP,
        r#"{"flow": "web-help", "sdp": "v=0\r\nm=video 9 RTP/AVP 96\r\n"}"#,
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("offer")),
        "{v}"
    );
    let (status, _, v) = request(
        server.http,
        "POST",
        "/api/widget/call",
        SHOP,
        r#"{"flow": "web-help"}"#,
    );
    assert_eq!(status, 400, "{v}");
    for (method, path) in [
        ("GET", "/api/widget/call/0123456789abcdef/events"),
        ("DELETE", "/api/widget/call/0123456789abcdef"),
    ] {
        let (status, _, v) = request(server.http, method, path, SHOP, "");
        assert_eq!(status, 404, "{method} {path}: {v}");
    }
    let (status, _, list) = {
        let (s, l) = http_get_json(&server, "/api/calls?limit=5");
        (s, (), l)
    };
    assert_eq!(status, 200);
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(0),
        "no call was placed: {list}"
    );
}

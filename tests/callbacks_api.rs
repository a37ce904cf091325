//! Queued callbacks against the real server: the CRM API (token) and the widget's endpoint
//! (origin-checked, rate-limited), validation answers, queue order visible in `/api/queues`,
//! and callbacks that survive a restart in their place.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const CONFIG: &str = r#"
queues:
  - name: sales
    max_size: 2
  - name: web
widget:
  flows: [main]
  allowed_origins: ["http://shop.example"]
  callback_prefixes: ["+55", "+351"]
  rate_per_minute: 3
  callback_queue: web
"#;

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

const AUTH: (&str, &str) = ("Authorization", "Bearer test-token");

fn api(server: &Server, body: Value) -> Resp {
    request(
        server.http,
        "POST",
        "/api/callbacks",
        &[AUTH],
        &body.to_string(),
    )
}

fn waiting(server: &Server, queue: &str) -> (u64, u64) {
    let (status, body) = http_get_json(server, "/api/queues");
    assert_eq!(status, 200, "{body}");
    let q = body
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["name"] == queue))
        .unwrap_or_else(|| panic!("no queue {queue} in {body}"));
    (
        q["waiting"].as_u64().unwrap_or(0),
        q["callbacks"].as_u64().unwrap_or(0),
    )
}

#[test]
fn the_api_validates_queues_in_order_and_survives_a_restart() {
    let mut server = Server::start(ServerOpts::new().config(CONFIG));

    let no_token = request(
        server.http,
        "POST",
        "/api/callbacks",
        &[],
        r#"{"number":"+5511912345678"}"#,
    );
    assert_eq!(no_token.status, 401);

    let bad = api(
        &server,
        json!({"number": "011 912345678", "queue": "sales"}),
    );
    assert_eq!(
        (bad.status, bad.body["field"].as_str()),
        (422, Some("number")),
        "{}",
        bad.body
    );
    let toll = api(
        &server,
        json!({"number": "+882345678901", "queue": "sales"}),
    );
    assert_eq!(
        toll.status, 422,
        "a prefix not in callback_prefixes is refused"
    );
    assert!(toll.body["error"]
        .as_str()
        .is_some_and(|e| e.contains("prefix")));
    let unknown = api(
        &server,
        json!({"number": "+5511912345678", "queue": "nope"}),
    );
    assert_eq!(
        (unknown.status, unknown.body["field"].as_str()),
        (422, Some("queue"))
    );

    let first = api(
        &server,
        json!({"number": "+55 11 91234-5678", "queue": "sales", "note": "invoice"}),
    );
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["position"], 1);
    assert_eq!(first.body["queue"], "sales");
    let second = api(
        &server,
        json!({"number": "+351912345678", "queue": "sales"}),
    );
    assert_eq!((second.status, &second.body["position"]), (201, &json!(2)));
    let full = api(
        &server,
        json!({"number": "+351912345679", "queue": "sales"}),
    );
    assert_eq!(full.status, 503, "max_size 2: {}", full.body);
    assert_eq!(waiting(&server, "sales"), (2, 2));

    server.restart();
    assert_eq!(
        waiting(&server, "sales"),
        (2, 2),
        "stored callbacks re-enter their queue"
    );
    let later = api(&server, json!({"number": "+5511900000000", "queue": "web"}));
    assert_eq!((later.status, &later.body["position"]), (201, &json!(1)));
}

#[test]
fn the_widget_endpoint_checks_origin_rate_and_flow() {
    let server = Server::start(ServerOpts::new().config(CONFIG));
    let shop = ("Origin", "http://shop.example");
    let evil = ("Origin", "http://evil.example");
    let body = r#"{"number":"+5511912345678","note":"my order"}"#;

    let pre = request(
        server.http,
        "OPTIONS",
        "/api/widget/callback",
        &[shop, ("Access-Control-Request-Method", "POST")],
        "",
    );
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("http://shop.example")
    );
    let pre_evil = request(server.http, "OPTIONS", "/api/widget/callback", &[evil], "");
    assert_eq!(pre_evil.status, 403);
    assert_eq!(pre_evil.header("access-control-allow-origin"), None);

    let refused = request(server.http, "POST", "/api/widget/callback", &[evil], body);
    assert_eq!(refused.status, 403);
    assert!(refused.body["error"]
        .as_str()
        .is_some_and(|e| e.contains("not allowed")));

    let ok = request(server.http, "POST", "/api/widget/callback", &[shop], body);
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert_eq!(
        (&ok.body["queue"], &ok.body["position"]),
        (&json!("web"), &json!(1))
    );
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("http://shop.example")
    );

    let call = request(
        server.http,
        "POST",
        "/api/widget/call",
        &[shop],
        r#"{"flow":"main","sdp":"v=0"}"#,
    );
    // `main` is open to the widget but no flow file defines it here.
    assert_eq!(call.status, 404, "{}", call.body);
    assert!(
        call.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("flow does not exist")),
        "{}",
        call.body
    );

    let other = request(
        server.http,
        "POST",
        "/api/widget/call",
        &[shop],
        r#"{"flow":"other"}"#,
    );
    assert_eq!(
        other.status, 403,
        "a flow not in widget.flows: {}",
        other.body
    );

    // rate_per_minute is 3 (a refused origin does not count): the fourth is refused.
    let limited = request(
        server.http,
        "POST",
        "/api/widget/call",
        &[shop],
        r#"{"flow":"main"}"#,
    );
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|s| s >= 1));
    assert_eq!(waiting(&server, "web"), (1, 1));

    let js = request(server.http, "GET", "/widget.js", &[], "");
    assert_eq!(js.status, 200);
}

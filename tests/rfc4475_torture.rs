//! The SIP torture messages of RFC 4475 against the parser and against the running server: each
//! well-formed request gets a proper final answer, each malformed one a 400 (or silence), nobody's
//! unsolicited response is answered, the server never dies, and a normal call still works after.
//!
//! The vectors live in `tests/vectors/rfc4475/` (`index.tsv` says what each one should produce). A
//! run prints one line per vector with the RFC's preferred answer next to ours; where they differ
//! but stay within what the RFC allows, that is a difference of choice, not a failure.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::sipmsg::{Msg, StartLine};
use common::*;
use switchboard::sip::transaction::{TimerConfig, TransactionLayer, TxEvent};
use switchboard::sip::{Peer, Transport};

/// How long we listen before calling it silence, when silence is a right answer.
const WAIT: Duration = Duration::from_millis(1000);
/// How long a vector that must be answered may take (the wait ends at the answer, so a generous
/// bound costs nothing on a healthy server and spares a loaded CI machine a false failure).
const WAIT_FOR_ANSWER: Duration = Duration::from_secs(3);

const FLOW: &str = r##"
flow: torture
numbers: ["7000"]
language: en
start: welcome
steps:
  welcome:
    play: welcome
    next: hangup
"##;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Syntax {
    Valid,
    Invalid,
    Either,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Answer,
    Final,
    Reject,
    Any,
    Drop,
}

struct Vector {
    name: String,
    section: String,
    syntax: Syntax,
    expect: Expect,
    rfc: String,
    bytes: Vec<u8>,
}

fn vector_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/rfc4475")
}

fn vectors() -> Vec<Vector> {
    let dir = vector_dir();
    let index = std::fs::read_to_string(dir.join("index.tsv")).expect("read index.tsv");
    let mut out = Vec::new();
    for line in index.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, section, _kind, syntax, server, rfc, _title] = cols[..] else {
            panic!("index.tsv line has {} columns: {line:?}", cols.len());
        };
        let syntax = match syntax {
            "valid" => Syntax::Valid,
            "invalid" => Syntax::Invalid,
            "either" => Syntax::Either,
            other => panic!("{name}: unknown syntax {other:?}"),
        };
        let expect = match server {
            "answer" => Expect::Answer,
            "final" => Expect::Final,
            "reject" => Expect::Reject,
            "any" => Expect::Any,
            "drop" => Expect::Drop,
            other => panic!("{name}: unknown server expectation {other:?}"),
        };
        let bytes = std::fs::read(dir.join(format!("{name}.sip")))
            .unwrap_or_else(|e| panic!("read {name}.sip: {e}"));
        out.push(Vector {
            name: name.to_string(),
            section: section.to_string(),
            syntax,
            expect,
            rfc: rfc.to_string(),
            bytes,
        });
    }
    assert_eq!(out.len(), 49, "RFC 4475 has 49 test messages");
    out
}

#[test]
fn the_parser_accepts_and_rejects_what_rfc_4475_says() {
    let mut disagree = Vec::new();
    for v in vectors() {
        let result = switchboard::sip::message::parse(&v.bytes);
        let ok = result.is_ok();
        // A well-formed request the stack cannot represent (unknown method or URI scheme) comes
        // back as an error carrying exactly the answer the RFC asks for (501, 416): that agrees.
        let answered_as_rfc = result
            .as_ref()
            .err()
            .and_then(|e| e.response_status())
            .is_some_and(|s| v.rfc.parse() == Ok(s));
        let agrees = match v.syntax {
            Syntax::Valid => ok || answered_as_rfc,
            Syntax::Invalid => !ok,
            Syntax::Either => true,
        };
        let verdict = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("err ({e})"),
        };
        println!(
            "{:<11} {:<8} rfc={:<7} parse={verdict}",
            v.name,
            v.section,
            format!("{:?}", v.syntax).to_lowercase()
        );
        if !agrees {
            disagree.push(v.name.clone());
        }
    }
    // Each vector as RFC 4475 says, by name: wsinv (LWS around a Via's `/`) and semiuri (`;` in
    // the user part) are accepted; badinv01 (empty Via/Contact parameters), regbadct (`?` in an
    // addr-spec Contact) and multi01 (repeated Call-ID, CSeq, From, To, Max-Forwards) refused.
    assert!(
        disagree.is_empty(),
        "sip::message::parse and RFC 4475 disagree on {disagree:?}"
    );
}

/// The transaction layer on its own: no vector panics it, and no malformed request ever reaches
/// the transaction user as if it were a real one.
#[test]
fn the_transaction_layer_never_hands_a_malformed_request_to_the_call_logic() {
    let peer = Peer {
        transport: Transport::Udp,
        addr: "192.0.2.7:5060".parse().expect("addr"),
    };
    for v in vectors() {
        let mut layer = TransactionLayer::new(TimerConfig::default(), 7);
        layer.set_local_addr(Transport::Udp, "127.0.0.1:5060".parse().expect("addr"));
        let now = switchboard::time::Instant::from_millis(1_000);
        layer.handle_datagram(now, peer, &v.bytes);
        let mut requests = 0;
        while let Some(ev) = layer.poll_event() {
            if matches!(ev, TxEvent::Request { .. }) {
                requests += 1;
            }
        }
        let answers: Vec<u16> = std::iter::from_fn(|| layer.poll_transmit())
            .filter_map(|t| Msg::parse(&t.bytes).ok().and_then(|m| m.status()))
            .collect();
        if v.syntax == Syntax::Invalid && v.expect != Expect::Drop {
            assert_eq!(
                requests, 0,
                "{}: a malformed request reached the TU",
                v.name
            );
        }
        if v.expect == Expect::Drop {
            assert!(
                answers.is_empty(),
                "{}: answered a response: {answers:?}",
                v.name
            );
        }
        // Time passing must not trip anything either (retransmissions of whatever was sent).
        layer.handle_timeout(switchboard::time::Instant::from_millis(40_000));
    }
}

/// The vector with its Request-URI aimed at the server; every other byte as in the RFC.
fn aim_at(bytes: &[u8], server: SocketAddr) -> Vec<u8> {
    let line_end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(bytes.len());
    let line = &bytes[..line_end];
    if line.starts_with(b"SIP/") {
        return bytes.to_vec();
    }
    let Some(method_end) = line.iter().position(|&b| b == b' ') else {
        return bytes.to_vec();
    };
    let uri_start = method_end
        + line[method_end..]
            .iter()
            .take_while(|&&b| b == b' ')
            .count();
    let uri_end = uri_start
        + line[uri_start..]
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(line.len() - uri_start);
    let uri = &line[uri_start..uri_end];
    let inner = uri.strip_prefix(b"<").unwrap_or(uri);
    let lower: Vec<u8> = inner.iter().map(u8::to_ascii_lowercase).collect();
    let scheme_len = if lower.starts_with(b"sip:") {
        4
    } else if lower.starts_with(b"sips:") {
        5
    } else {
        return bytes.to_vec();
    };
    let offset = uri_start + (uri.len() - inner.len());
    let host_start = match inner.iter().rposition(|&b| b == b'@') {
        Some(at) => offset + at + 1,
        None => offset + scheme_len,
    };
    let host_end = host_start
        + line[host_start..uri_end]
            .iter()
            .position(|b| b";?> ".contains(b))
            .unwrap_or(uri_end - host_start);
    let mut out = bytes[..host_start].to_vec();
    out.extend_from_slice(server.to_string().as_bytes());
    out.extend_from_slice(&bytes[host_end..]);
    out
}

fn header_lines(bytes: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end])
        .split("\r\n")
        .skip(1)
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        })
        .collect::<Vec<_>>()
        .into_iter()
}

fn call_id_of(bytes: &[u8]) -> Option<String> {
    header_lines(bytes)
        .find(|(n, _)| n.eq_ignore_ascii_case("Call-ID") || n.eq_ignore_ascii_case("i"))
        .map(|(_, v)| v)
}

/// What RFC 3261 §17.2.3 matches a server transaction on: top Via branch and sent-by, and the
/// method. Several vectors share all three, which makes the later one a retransmission of the
/// earlier one, answered with the earlier one's response.
fn transaction_key(bytes: &[u8]) -> (String, String, String) {
    let via = header_lines(bytes)
        .find(|(n, _)| n.eq_ignore_ascii_case("Via") || n.eq_ignore_ascii_case("v"))
        .map(|(_, v)| v)
        .unwrap_or_default();
    let (sent_by, params) = via.split_once(';').unwrap_or((&via, ""));
    let sent_by: String = sent_by.split_whitespace().collect();
    let branch = params
        .split(';')
        .find_map(|p| p.trim().strip_prefix("branch="))
        .map(str::to_string)
        .unwrap_or_else(|| call_id_of(bytes).unwrap_or_default());
    let method = header_lines(bytes)
        .find(|(n, _)| n.eq_ignore_ascii_case("CSeq"))
        .and_then(|(_, v)| v.split_whitespace().last().map(str::to_string))
        .unwrap_or_default();
    (branch, sent_by, method)
}

/// Ports named in the vectors' Via sent-by: a UDP server answers there (RFC 3261 §18.2.2).
fn via_ports(vectors: &[Vector]) -> BTreeSet<u16> {
    let mut ports = BTreeSet::from([5060]);
    for v in vectors {
        for (name, value) in header_lines(&v.bytes) {
            if !(name.eq_ignore_ascii_case("Via") || name.eq_ignore_ascii_case("v")) {
                continue;
            }
            let sent_by = value.split(';').next().unwrap_or("");
            let host = sent_by.split_whitespace().last().unwrap_or("");
            if let Some(port) = host.rsplit_once(':').and_then(|(_, p)| p.parse().ok()) {
                ports.insert(port);
            }
        }
    }
    ports
}

/// One sender socket plus listeners on every port the server may answer to, all on a loopback
/// address of our own: the vectors' Vias carry no rport, so answers go to the source IP at the
/// sent-by port (5060 unless named), and a private 127/8 address keeps that free of other tests.
struct Sender5060 {
    sock: UdpSocket,
    stop: Arc<AtomicBool>,
    readers: Vec<JoinHandle<()>>,
    rx: Receiver<Vec<u8>>,
}

impl Sender5060 {
    fn bind(ports: &BTreeSet<u16>) -> Sender5060 {
        for _ in 0..200 {
            let ip = IpAddr::V4(Ipv4Addr::new(
                127,
                rand::random_range(16..250),
                rand::random_range(1..250),
                rand::random_range(1..250),
            ));
            let socks: Result<Vec<UdpSocket>, _> =
                ports.iter().map(|p| UdpSocket::bind((ip, *p))).collect();
            let Ok(socks) = socks else { continue };
            let (tx, rx) = mpsc::channel();
            let stop = Arc::new(AtomicBool::new(false));
            let mut readers = Vec::new();
            let mut main = None;
            for s in socks {
                s.set_read_timeout(Some(Duration::from_millis(50)))
                    .expect("timeout");
                let port = s.local_addr().expect("addr").port();
                let reader = s.try_clone().expect("clone");
                readers.push(spawn_reader(reader, tx.clone(), stop.clone()));
                if port == 5060 {
                    main = Some(s);
                }
            }
            return Sender5060 {
                sock: main.expect("5060 bound"),
                stop,
                readers,
                rx,
            };
        }
        panic!("no free 127/8 address with the Via ports {ports:?}");
    }
}

impl Drop for Sender5060 {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

fn spawn_reader(sock: UdpSocket, tx: Sender<Vec<u8>>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_535];
        while !stop.load(Ordering::SeqCst) {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        }
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Silence,
    Provisional(u16),
    Final(u16),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Silence => write!(f, "-"),
            Outcome::Provisional(s) => write!(f, "{s} only"),
            Outcome::Final(s) => write!(f, "{s}"),
        }
    }
}

fn exchange(link: &Sender5060, server: SocketAddr, v: &Vector) -> Outcome {
    let call_id = call_id_of(&v.bytes);
    link.sock
        .send_to(&aim_at(&v.bytes, server), server)
        .expect("send vector");
    let wait = match v.expect {
        Expect::Answer | Expect::Final => WAIT_FOR_ANSWER,
        Expect::Reject | Expect::Any | Expect::Drop => WAIT,
    };
    let deadline = Instant::now() + wait;
    let mut outcome = Outcome::Silence;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(bytes) = link.rx.recv_timeout(left) else {
            break;
        };
        let Ok(msg) = Msg::parse(&bytes) else {
            panic!("{}: the server sent something that is not SIP", v.name);
        };
        // Retransmitted answers to earlier vectors may still arrive; only this Call-ID counts.
        if call_id.is_none() || msg.call_id().map(str::trim) != call_id.as_deref() {
            continue;
        }
        match msg.start {
            StartLine::Response { status, .. } if status >= 200 => return Outcome::Final(status),
            StartLine::Response { status, .. } => outcome = Outcome::Provisional(status),
            StartLine::Request { .. } => {}
        }
    }
    outcome
}

fn acceptable(v: &Vector, got: &Outcome) -> bool {
    let rfc_status: Option<u16> = v.rfc.parse().ok();
    match (v.expect, got) {
        (Expect::Answer, Outcome::Final(s)) => *s != 400,
        (Expect::Final, Outcome::Final(_)) => true,
        (Expect::Reject, Outcome::Silence) => true,
        (Expect::Reject, Outcome::Final(s)) => *s == 400 || Some(*s) == rfc_status,
        (Expect::Any, Outcome::Silence | Outcome::Final(_)) => true,
        (Expect::Drop, Outcome::Silence) => true,
        _ => false,
    }
}

fn matches_rfc(v: &Vector, got: &Outcome) -> bool {
    match (v.rfc.as_str(), got) {
        ("-", Outcome::Silence) => true,
        ("final", Outcome::Final(_)) => true,
        (s, Outcome::Final(code)) => s.parse() == Ok(*code),
        _ => false,
    }
}

#[test]
fn every_torture_message_gets_the_right_answer_and_a_call_still_works() {
    let all = vectors();
    let mut server = Server::start(ServerOpts::new().flow("torture", FLOW));
    let link = Sender5060::bind(&via_ports(&all));
    let mut failures = Vec::new();
    let mut transactions = BTreeSet::new();
    println!("vector      section  expect  rfc     got");
    for v in &all {
        if !transactions.insert(transaction_key(&v.bytes)) {
            // Same branch, sent-by and method as an earlier vector: a fresh server, so that this
            // one is judged on its own rather than as that one's retransmission.
            server.restart();
            transactions = BTreeSet::from([transaction_key(&v.bytes)]);
        }
        let got = exchange(&link, server.sip, v);
        let note = if !acceptable(v, &got) {
            failures.push(format!(
                "{} ({}): expected {:?}, got {got}",
                v.name, v.section, v.expect
            ));
            "  <-- NOT ACCEPTABLE"
        } else if !matches_rfc(v, &got) {
            "  (differs from the RFC's preference)"
        } else {
            ""
        };
        println!(
            "{:<11} {:<8} {:<7} {:<7} {got}{note}",
            v.name,
            v.section,
            format!("{:?}", v.expect).to_lowercase(),
            v.rfc
        );
        assert!(
            server.is_running(),
            "the server died on vector {} ({})",
            v.name,
            v.section
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let prompts = english_prompts(&["welcome"]);
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    phone.wait_heard(&prompts, "welcome", 1, secs(10)).must();
    assert_eq!(phone.hangup().must(), 200);
}

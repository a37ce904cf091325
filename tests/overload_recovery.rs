//! After an overload the server takes calls again as soon as it can: a burst of finished SIP
//! transactions (each lingers 32 s to absorb retransmissions) must not turn every new caller
//! away with 503 — the bench saw ~25 s of nothing but 503 after a failed 600 calls/s step — and
//! calls refused for `max_calls` get in as soon as earlier calls end.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;

const FLOW: &str = r##"
flow: answer
numbers: ["7000"]
language: en
start: wait
steps:
  wait:
    collect: { prompt: main-menu, digits: 1-1, timeout: 30s }
    next: hangup
    on_timeout: hangup
"##;

/// More than the transaction table holds (10 000 server transactions).
const BURST: u64 = 10_500;

fn options(n: u64, local: std::net::SocketAddr) -> String {
    format!(
        "OPTIONS sip:probe@x SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKburst{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:burst@{local}>;tag=b{n}\r\nTo: <sip:probe@x>\r\n\
         Call-ID: burst{n}@{local}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends OPTIONS a batch at a time (so the socket buffers keep up) until `BURST` were answered,
/// within the 32 s their transactions linger; the statuses counted.
fn burst_of_finished_transactions(server: &Server) -> std::collections::BTreeMap<u16, u64> {
    let sock = UdpSocket::bind("127.0.0.3:0").expect("bind");
    let local = sock.local_addr().expect("local");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut statuses = std::collections::BTreeMap::new();
    let mut buf = vec![0u8; 65536];
    let (mut sent, mut answered) = (0u64, 0u64);
    let deadline = Instant::now() + secs(25);
    while answered < BURST && Instant::now() < deadline {
        for _ in 0..200 {
            sent += 1;
            sock.send_to(options(sent, local).as_bytes(), server.sip)
                .expect("send");
        }
        // Wait for most of the batch's answers before the next one.
        while answered + 20 < sent {
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                break;
            };
            let text = String::from_utf8_lossy(&buf[..n]);
            let status = text
                .strip_prefix("SIP/2.0 ")
                .and_then(|r| r.get(..3))
                .and_then(|s| s.parse::<u16>().ok())
                .unwrap_or(0);
            *statuses.entry(status).or_default() += 1;
            answered += 1;
        }
    }
    statuses
}

#[test]
fn a_burst_of_finished_transactions_does_not_lock_callers_out() {
    let server = Server::start(
        ServerOpts::new()
            .flow("answer", FLOW)
            .config("sip:\n  rate_per_source: 1000000\nmax_calls: 10000\n"),
    );
    let statuses = burst_of_finished_transactions(&server);
    let ok = statuses.get(&200).copied().unwrap_or(0);
    assert!(ok >= BURST, "the burst was answered: {statuses:?}");
    assert_eq!(
        statuses.get(&503),
        None,
        "finished transactions filled the table and new requests were refused: {statuses:?}"
    );
    // Right after the burst (long before its transactions' 32 s are up) a caller gets in.
    let t0 = Instant::now();
    let mut phone = Phone::udp(&server);
    phone.call("7000", CALLER).must();
    assert!(t0.elapsed() < secs(5), "set-up took {:?}", t0.elapsed());
    assert_eq!(phone.hangup().must(), 200);
}

#[test]
fn callers_refused_for_max_calls_get_in_as_soon_as_calls_end() {
    let server = Server::start(
        ServerOpts::new()
            .flow("answer", FLOW)
            .config("max_calls: 2\n"),
    );
    let mut first = Phone::udp(&server);
    let mut second = Phone::udp(&server);
    first.call("7000", CALLER).must();
    second.call("7000", CALLER).must();
    // The burst beyond max_calls: each extra caller is refused at once, with Retry-After.
    for _ in 0..3 {
        let mut extra = Phone::udp(&server);
        extra
            .send_invite("7000", CALLER, &[(0, "PCMU/8000")])
            .must();
        let refused = extra.wait_invite_final(secs(5)).must();
        assert_eq!(refused.status(), Some(503));
        assert!(refused.header("Retry-After").is_some(), "{refused:?}");
    }
    assert_eq!(first.hangup().must(), 200);
    assert_eq!(second.hangup().must(), 200);
    // The ended calls free their places at once: a new caller is answered within a few seconds.
    let t0 = Instant::now();
    loop {
        let mut phone = Phone::udp(&server);
        match phone.invite("7000", CALLER, &[(0, "PCMU/8000")]).must() {
            200 => {
                assert_eq!(phone.hangup().must(), 200);
                break;
            }
            s => assert!(
                t0.elapsed() < secs(3),
                "still {s} {:?} after both calls ended",
                t0.elapsed()
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

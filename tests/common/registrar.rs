//! A MOCK of the carrier's registrar (the carrier is out of reach in tests): a UDP responder on
//! loopback that challenges every REGISTER without credentials with a 401 and a fresh nonce,
//! checks the digest of the retry with the server's own verifier against the password the test
//! configured, and then grants a binding (its own short expiry in the Contact) or refuses (403).
//! It records every REGISTER with when it arrived and what it was answered.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::phone::response_to;
use super::sipmsg::Msg;

pub const REALM: &str = "carrier.example";

/// How the registrar answers a REGISTER whose digest is right.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// 200, the binding granted for this many seconds.
    Grant(u32),
    /// 403 Forbidden.
    Forbid,
}

/// One REGISTER as the registrar saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub msg: Msg,
    /// The status it was answered with.
    pub status: u16,
    /// It carried credentials and the digest matched the configured password.
    pub digest_ok: bool,
}

impl Seen {
    /// The `Expires` the REGISTER asked for.
    pub fn expires(&self) -> Option<u32> {
        self.msg.header("Expires")?.trim().parse().ok()
    }
}

pub struct MockRegistrar {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MockRegistrar {
    pub fn start(user: &str, password: &str, answer: Answer) -> MockRegistrar {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind registrar");
        let addr = sock.local_addr().expect("registrar addr");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let ha1 = switchboard::sip::registrar::ha1(user, REALM, password);
        let (user, seen2, stop2) = (user.to_string(), seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut nonces: Vec<String> = Vec::new();
            let mut buf = vec![0u8; 65536];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(msg) = Msg::parse(&buf[..n]) else {
                    continue;
                };
                if msg.method() != Some("REGISTER") {
                    continue;
                }
                let digest_ok = msg.header("Authorization").is_some_and(|v| {
                    switchboard::sip::registrar::parse_authorization(v).is_ok_and(|a| {
                        a.username == user
                            && nonces.contains(&a.nonce)
                            && switchboard::sip::registrar::verify(&a, "REGISTER", &ha1)
                    })
                });
                let tag = format!("{:08x}", rand::random::<u32>());
                let reply = if msg.header("Authorization").is_none() {
                    let nonce = format!("{:016x}", rand::random::<u64>());
                    nonces.push(nonce.clone());
                    response_to(&msg, 401, "Unauthorized", Some(&tag)).with(
                        "WWW-Authenticate",
                        format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\""),
                    )
                } else if !digest_ok {
                    response_to(&msg, 403, "Forbidden", Some(&tag))
                } else {
                    match answer {
                        Answer::Forbid => response_to(&msg, 403, "Forbidden", Some(&tag)),
                        Answer::Grant(secs) => {
                            let contact = msg.header("Contact").unwrap_or_default().to_string();
                            let asked = msg.header("Expires").unwrap_or("0").trim().to_string();
                            let granted = if asked == "0" { 0 } else { secs };
                            response_to(&msg, 200, "OK", Some(&tag))
                                .with("Contact", format!("{contact};expires={granted}"))
                        }
                    }
                };
                let status = reply.status().unwrap_or(0);
                let _ = sock.send_to(&reply.to_bytes(), from);
                if let Ok(mut s) = seen2.lock() {
                    s.push(Seen {
                        at: Instant::now(),
                        msg,
                        status,
                        digest_ok,
                    });
                }
            }
        });
        MockRegistrar {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Every REGISTER so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The REGISTERs that got a 200 and asked to keep the binding (not the un-REGISTER).
    pub fn granted(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.status == 200 && s.expires() != Some(0))
            .collect()
    }

    /// Waits until `pred` holds for what the registrar saw.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&[Seen]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&self.seen()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        pred(&self.seen())
    }
}

impl Drop for MockRegistrar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

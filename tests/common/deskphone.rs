//! An agent's desk phone: registers with digest auth, is called by the server, rings, answers
//! (or not), carries RTP and hangs up. Digest is computed with `rsip`'s generator, not the
//! server's verifier, so the two are checked against each other.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::g711::Law;
use super::link::{Incoming, Origin, SipLink, Transport};
use super::phone::response_to;
use super::rtp::{RtpEndpoint, RxPacket};
use super::sipmsg::{param, parse_sdp_answer, sdp_offer, uri_of, Msg};

/// The `ha1` for a phone's password, from the real `switchboard sip-ha1` command.
pub fn sip_ha1(user: &str, password: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["sip-ha1", "--user", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sip-ha1");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("write password");
    let out = child.wait_with_output().expect("sip-ha1 output");
    assert!(out.status.success());
    let ha1 = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(ha1.len(), 32, "{ha1}");
    assert!(!ha1.contains(password));
    ha1
}

fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The call the server placed to this phone.
struct Leg {
    invite: Msg,
    origin: Origin,
    tag: String,
    cseq: u32,
}

pub struct DeskPhone {
    link: SipLink,
    rtp: RtpEndpoint,
    pub user: String,
    password: String,
    reg_call_id: String,
    reg_cseq: u32,
    leg: Option<Leg>,
    remote_rtp: Option<SocketAddr>,
}

impl DeskPhone {
    pub fn new(server: SocketAddr, user: &str, password: &str) -> DeskPhone {
        Self::new_at("127.0.0.1", server, user, password)
    }

    /// A phone whose SIP comes from another loopback address (e.g. `127.0.0.2`).
    pub fn new_at(ip: &str, server: SocketAddr, user: &str, password: &str) -> DeskPhone {
        DeskPhone {
            link: SipLink::open_at(Transport::Udp, server, ip).expect("open SIP link"),
            rtp: RtpEndpoint::bind().expect("bind RTP"),
            user: user.into(),
            password: password.into(),
            reg_call_id: format!("{}@deskphone", token()),
            reg_cseq: 0,
            leg: None,
            remote_rtp: None,
        }
    }

    fn register_msg(&mut self, expires: u32, auth: Option<String>) -> Msg {
        self.reg_cseq += 1;
        let uri = format!("sip:{}", self.link.server);
        let aor = format!("<sip:{}@{}>", self.user, self.link.server);
        let mut m = Msg::request("REGISTER", &uri)
            .with(
                "Via",
                format!(
                    "SIP/2.0/UDP {};branch=z9hG4bK{};rport",
                    self.link.local,
                    token()
                ),
            )
            .with("Max-Forwards", "70")
            .with("From", format!("{aor};tag={}", token()))
            .with("To", aor)
            .with("Call-ID", self.reg_call_id.clone())
            .with("CSeq", format!("{} REGISTER", self.reg_cseq))
            .with(
                "Contact",
                format!("<sip:{}@{}>", self.user, self.link.local),
            )
            .with("Expires", expires.to_string());
        if let Some(a) = auth {
            m = m.with("Authorization", a);
        }
        m
    }

    fn send_wait(&mut self, m: Msg) -> Result<Msg, String> {
        let call_id = m.call_id().unwrap_or_default().to_string();
        let cseq = m.cseq();
        self.link.send(&m.to_bytes())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(inc) = self.link.recv(deadline) {
            if let Incoming::Msg(r, _) = inc {
                if r.status().is_some_and(|s| s >= 200)
                    && r.call_id() == Some(call_id.as_str())
                    && r.cseq() == cseq
                {
                    return Ok(r);
                }
            }
        }
        Err("no final response".into())
    }

    /// `Digest …` answering `challenge` (a WWW-Authenticate value) with `password`.
    fn authorization(&self, challenge: &str, password: &str) -> String {
        let realm = param_q(challenge, "realm");
        let nonce = param_q(challenge, "nonce");
        let uri = rsip::Uri::try_from(format!("sip:{}", self.link.server).as_str()).unwrap();
        let qop = rsip::headers::auth::AuthQop::Auth {
            cnonce: "0a4f113b".into(),
            nc: 1,
        };
        let response = rsip::services::DigestGenerator {
            username: &self.user,
            password,
            nonce: &nonce,
            uri: &uri,
            realm: &realm,
            method: &rsip::Method::Register,
            qop: Some(&qop),
            algorithm: rsip::headers::auth::Algorithm::Md5,
        }
        .compute();
        format!(
            "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"",
            self.user
        )
    }

    /// REGISTER, answering one challenge with `password`; the statuses seen (e.g. [401, 200]).
    pub fn register_with(&mut self, password: &str, expires: u32) -> Result<Vec<u16>, String> {
        let first = self.register_msg(expires, None);
        let r = self.send_wait(first)?;
        let mut seen = vec![r.status().unwrap_or(0)];
        if r.status() == Some(401) {
            let ch = r
                .header("WWW-Authenticate")
                .ok_or("401 without challenge")?;
            let auth = self.authorization(ch, password);
            let second = self.register_msg(expires, Some(auth));
            let r2 = self.send_wait(second)?;
            seen.push(r2.status().unwrap_or(0));
        }
        Ok(seen)
    }

    pub fn register(&mut self, expires: u32) -> Result<Vec<u16>, String> {
        let pw = self.password.clone();
        self.register_with(&pw, expires)
    }

    /// Waits for the server's INVITE and rings (100 + 180).
    pub fn wait_invite(&mut self, timeout: Duration) -> Result<Msg, String> {
        let deadline = Instant::now() + timeout;
        while let Some(inc) = self.link.recv(deadline) {
            let Incoming::Msg(m, origin) = inc else {
                continue;
            };
            if m.method() == Some("INVITE") {
                let tag = token();
                self.link
                    .reply(origin, &response_to(&m, 100, "Trying", None).to_bytes())?;
                self.link.reply(
                    origin,
                    &response_to(&m, 180, "Ringing", Some(&tag)).to_bytes(),
                )?;
                self.leg = Some(Leg {
                    invite: m.clone(),
                    origin,
                    tag,
                    cseq: 0,
                });
                return Ok(m);
            }
        }
        Err(format!("no INVITE within {timeout:?}"))
    }

    /// Whether a CANCEL for the ringing leg arrives within `timeout` (answered 200 + 487).
    pub fn wait_cancel(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(inc) = self.link.recv(deadline) {
            let Incoming::Msg(m, origin) = inc else {
                continue;
            };
            if m.method() == Some("CANCEL") {
                let _ = self
                    .link
                    .reply(origin, &response_to(&m, 200, "OK", None).to_bytes());
                if let Some(leg) = &self.leg {
                    let r = response_to(&leg.invite, 487, "Request Terminated", Some(&leg.tag));
                    let _ = self.link.reply(leg.origin, &r.to_bytes());
                }
                return true;
            }
        }
        false
    }

    /// Answers with PCMU and starts sending RTP to the server's offer; waits for the ACK.
    pub fn answer(&mut self) -> Result<(), String> {
        let leg = self.leg.as_ref().ok_or("no INVITE to answer")?;
        let offer = parse_sdp_answer(&leg.invite.body_text())?;
        let sdp = sdp_offer(
            self.rtp.port(),
            42,
            &[(0, "PCMU/8000"), (101, "telephone-event/8000")],
        );
        let ok = response_to(&leg.invite, 200, "OK", Some(&leg.tag))
            .with(
                "Contact",
                format!("<sip:{}@{}>", self.user, self.link.local),
            )
            .with_body("application/sdp", sdp.as_bytes());
        self.link.reply(leg.origin, &ok.to_bytes())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(inc) = self.link.recv(deadline) {
            if let Incoming::Msg(m, _) = inc {
                if m.method() == Some("ACK") {
                    self.rtp.start_sending(offer.addr, Law::Mu, Some(101));
                    self.remote_rtp = Some(offer.addr);
                    return Ok(());
                }
            }
        }
        Err("no ACK for our 200".into())
    }

    /// Refuses the ringing call with `status` (486 busy, 603 decline).
    pub fn reject(&mut self, status: u16) -> Result<(), String> {
        let leg = self.leg.as_ref().ok_or("no INVITE")?;
        let r = response_to(&leg.invite, status, "Busy Here", Some(&leg.tag));
        self.link.reply(leg.origin, &r.to_bytes())
    }

    pub fn queue_pcm(&self, pcm: &[i16]) {
        self.rtp.queue_pcm(pcm);
    }

    /// The PCMU the phone has heard so far, as one µ-law run.
    pub fn audio(&self) -> Vec<u8> {
        self.received()
            .iter()
            .filter(|p| p.pt == 0)
            .flat_map(|p| p.payload.clone())
            .collect()
    }

    pub fn received(&self) -> Vec<RxPacket> {
        self.rtp.received()
    }

    /// The agent presses hold (`"sendonly"`, or `"inactive"`) or resume (`"sendrecv"`): a
    /// re-INVITE in the server's dialog with that direction, ACKed; the final status and the
    /// server's SDP answer.
    pub fn reinvite(&mut self, direction: &str) -> Result<(u16, String), String> {
        let leg = self.leg.as_mut().ok_or("no call")?;
        leg.cseq += 1;
        let inv = &leg.invite;
        let target = uri_of(inv.header("Contact").ok_or("INVITE without Contact")?);
        let from = format!("{};tag={}", inv.header("To").unwrap_or_default(), leg.tag);
        let to = inv.header("From").unwrap_or_default().to_string();
        let call_id = inv.call_id().unwrap_or_default().to_string();
        let cseq = leg.cseq;
        let sdp = sdp_offer(
            self.rtp.port(),
            42,
            &[(0, "PCMU/8000"), (101, "telephone-event/8000")],
        )
        .replace("a=sendrecv", &format!("a={direction}"));
        let local = self.link.local;
        let via = move || format!("SIP/2.0/UDP {local};branch=z9hG4bK{};rport", token());
        let reinvite = Msg::request("INVITE", &target)
            .with("Via", via())
            .with("Max-Forwards", "70")
            .with("From", from.clone())
            .with("To", to.clone())
            .with("Call-ID", call_id.clone())
            .with("CSeq", format!("{cseq} INVITE"))
            .with(
                "Contact",
                format!("<sip:{}@{}>", self.user, self.link.local),
            )
            .with_body("application/sdp", sdp.as_bytes());
        let answer = self.send_wait(reinvite)?;
        let status = answer.status().unwrap_or(0);
        if (200..300).contains(&status) {
            let ack = Msg::request("ACK", &target)
                .with("Via", via())
                .with("Max-Forwards", "70")
                .with("From", from)
                .with("To", answer.header("To").unwrap_or(&to).to_string())
                .with("Call-ID", call_id)
                .with("CSeq", format!("{cseq} ACK"));
            self.link.send(&ack.to_bytes())?;
            // A held phone stops sending (it would send its own hold music at most).
            if direction == "sendrecv" {
                if let Some(remote) = self.remote_rtp {
                    self.rtp.start_sending(remote, Law::Mu, Some(101));
                }
            } else {
                self.rtp.stop_sending();
            }
        }
        Ok((status, answer.body_text()))
    }

    /// Waits until everything queued (tones, keys) has been sent.
    pub fn wait_sent(&self, timeout: Duration) -> Result<(), String> {
        self.rtp.wait_queue_drained(timeout)
    }

    /// Keys pressed on the phone's keypad, sent as RFC 4733 events (PT 101).
    pub fn press(&self, digits: &str) -> Result<(), String> {
        self.rtp.queue_rfc4733(digits, 120, 80)
    }

    /// The agent hangs up: BYE in the server's dialog; the BYE's final status.
    pub fn hangup(&mut self) -> Result<u16, String> {
        let leg = self.leg.as_mut().ok_or("no call")?;
        leg.cseq += 1;
        let inv = &leg.invite;
        let target = uri_of(inv.header("Contact").ok_or("INVITE without Contact")?);
        let from = format!("{};tag={}", inv.header("To").unwrap_or_default(), leg.tag);
        let bye = Msg::request("BYE", &target)
            .with(
                "Via",
                format!(
                    "SIP/2.0/UDP {};branch=z9hG4bK{};rport",
                    self.link.local,
                    token()
                ),
            )
            .with("Max-Forwards", "70")
            .with("From", from)
            .with("To", inv.header("From").unwrap_or_default().to_string())
            .with("Call-ID", inv.call_id().unwrap_or_default().to_string())
            .with("CSeq", format!("{} BYE", leg.cseq));
        self.rtp.stop_sending();
        let r = self.send_wait(bye)?;
        Ok(r.status().unwrap_or(0))
    }

    /// Waits for the server's BYE and answers 200.
    pub fn wait_bye(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while let Some(inc) = self.link.recv(deadline) {
            let Incoming::Msg(m, origin) = inc else {
                continue;
            };
            if m.method() == Some("BYE") {
                self.rtp.stop_sending();
                return self
                    .link
                    .reply(origin, &response_to(&m, 200, "OK", None).to_bytes());
            }
        }
        Err(format!("no BYE within {timeout:?}"))
    }
}

/// A parameter of a challenge, quotes removed.
fn param_q(value: &str, name: &str) -> String {
    let v = value.trim_start_matches("Digest").trim();
    for part in v.split(',') {
        if let Some((k, val)) = part.trim().split_once('=') {
            if k.trim().eq_ignore_ascii_case(name) {
                return val.trim().trim_matches('"').to_string();
            }
        }
    }
    let _ = param;
    String::new()
}

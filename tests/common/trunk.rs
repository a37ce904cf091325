//! A MOCK of the carrier's SIP trunk, standing in for the customer's phone behind it: a UDP
//! responder that challenges the first INVITE (401 or 407), checks the digest of the retry with
//! the server's own verifier against the password the test configured, then answers (or refuses,
//! e.g. 486 busy) and carries RTP like the customer's phone would.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::agent::Agent;
use super::g711::Law;
use super::link::{Incoming, Origin, SipLink, Transport};
use super::phone::response_to;
use super::rtp::{RtpEndpoint, RxPacket};
use super::server::Server;
use super::sipmsg::{parse_sdp_answer, sdp_offer, Msg};
use super::Must;

pub const REALM: &str = "carrier.example";

/// What the trunk saw of one dial attempt.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The first INVITE (the one challenged).
    pub first: Msg,
    /// The INVITE that carried credentials.
    pub authorized: Msg,
}

impl Seen {
    /// The authorized INVITE's request line (`INVITE sip:… SIP/2.0`).
    pub fn request_line(&self) -> String {
        String::from_utf8_lossy(&self.authorized.to_bytes())
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// The INVITE went to `sip:<user>@<at>` and its From shows `from`.
    pub fn dialled(&self, user: &str, at: SocketAddr, from: &str) -> Result<(), String> {
        let line = self.request_line();
        if !line.contains(&format!("sip:{user}@{at}")) {
            return Err(format!("dialled {line}, expected sip:{user}@{at}"));
        }
        let from_header = self.first.header("From").unwrap_or_default();
        if !from_header.contains(from) {
            return Err(format!("From: {from_header}, expected {from} in it"));
        }
        Ok(())
    }
}

pub struct MockTrunk {
    link: SipLink,
    pub addr: SocketAddr,
    user: String,
    password: String,
    rtp: RtpEndpoint,
    call: Option<(Msg, Origin, String)>,
    /// How long the far end rings (after 180) before it answers.
    pub ring_for: Duration,
}

impl MockTrunk {
    pub fn bind(user: &str, password: &str) -> MockTrunk {
        Self::bind_on(Transport::Udp, user, password)
    }

    /// The carrier's proxy on `transport` (TCP: the server opens the connection).
    pub fn bind_on(transport: Transport, user: &str, password: &str) -> MockTrunk {
        let link = SipLink::listen(transport).expect("bind trunk");
        let addr = link.local;
        MockTrunk {
            link,
            addr,
            user: user.into(),
            password: password.into(),
            rtp: RtpEndpoint::bind().expect("bind RTP"),
            call: None,
            ring_for: Duration::ZERO,
        }
    }

    fn recv(&self, deadline: Instant) -> Option<(Msg, Origin)> {
        loop {
            match self.link.recv(deadline)? {
                Incoming::Msg(m, origin) => return Some((m, origin)),
                Incoming::Garbage(_) => {}
            }
        }
    }

    fn wait_method(&self, method: &str, deadline: Instant) -> Result<(Msg, Origin), String> {
        while let Some((m, from)) = self.recv(deadline) {
            if m.method() == Some(method) {
                return Ok((m, from));
            }
        }
        Err(format!("no {method} reached the trunk"))
    }

    fn send(&self, m: &Msg, to: Origin) -> Result<(), String> {
        self.link.reply(to, &m.to_bytes())
    }

    /// Takes one dial attempt: challenges with `challenge` (401 or 407), checks the digest, then
    /// answers with `final_status` (200 answers with PCMU and starts RTP).
    pub fn take_call(
        &mut self,
        challenge: u16,
        final_status: u16,
        timeout: Duration,
    ) -> Result<Seen, String> {
        let deadline = Instant::now() + timeout;
        let (first, from) = self.wait_method("INVITE", deadline)?;
        let nonce = format!("{:016x}", rand::random::<u64>());
        let (header, reason) = match challenge {
            407 => ("Proxy-Authenticate", "Proxy Authentication Required"),
            _ => ("WWW-Authenticate", "Unauthorized"),
        };
        let tag = format!("{:08x}", rand::random::<u32>());
        let c = response_to(&first, challenge, reason, Some(&tag)).with(
            header,
            format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\""),
        );
        self.send(&c, from)?;
        let (authorized, from) = loop {
            let (m, from) = self.wait_method("INVITE", deadline)?;
            if m.call_id() == first.call_id() && m.cseq() != first.cseq() {
                break (m, from);
            }
            // A retransmission of the first INVITE: the challenge again.
            self.send(&c, from)?;
        };
        let auth_header = match challenge {
            407 => "Proxy-Authorization",
            _ => "Authorization",
        };
        let value = authorized
            .header(auth_header)
            .ok_or_else(|| format!("the retry has no {auth_header}"))?;
        let auth = switchboard::sip::registrar::parse_authorization(value)
            .map_err(|e| format!("bad {auth_header}: {e}"))?;
        let ha1 = switchboard::sip::registrar::ha1(&self.user, REALM, &self.password);
        if auth.username != self.user
            || auth.nonce != nonce
            || !switchboard::sip::registrar::verify(&auth, "INVITE", &ha1)
        {
            self.send(
                &response_to(&authorized, 403, "Forbidden", Some(&tag)),
                from,
            )?;
            return Err("the digest does not match the configured password".into());
        }
        let tag = format!("{:08x}", rand::random::<u32>());
        if final_status != 200 {
            self.send(
                &response_to(&authorized, final_status, "Busy Here", Some(&tag)),
                from,
            )?;
            return Ok(Seen { first, authorized });
        }
        self.send(&response_to(&authorized, 180, "Ringing", Some(&tag)), from)?;
        std::thread::sleep(self.ring_for);
        let offer = parse_sdp_answer(&authorized.body_text())?;
        let sdp = sdp_offer(self.rtp.port(), 7, &[(0, "PCMU/8000")]);
        let tp = match self.link.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        let ok = response_to(&authorized, 200, "OK", Some(&tag))
            .with("Contact", format!("<sip:customer@{}{tp}>", self.addr))
            .with_body("application/sdp", sdp.as_bytes());
        self.send(&ok, from)?;
        self.wait_method("ACK", deadline)?;
        self.rtp.start_sending(offer.addr, Law::Mu, None);
        self.call = Some((authorized.clone(), from, tag));
        Ok(Seen { first, authorized })
    }

    pub fn queue_pcm(&self, pcm: &[i16]) {
        self.rtp.queue_pcm(pcm);
    }

    pub fn received(&self) -> Vec<RxPacket> {
        self.rtp.received()
    }

    /// The PCMU the far end received, in order.
    pub fn received_pcmu(&self) -> Vec<u8> {
        self.rtp
            .received()
            .iter()
            .filter(|p| p.pt == 0)
            .flat_map(|p| p.payload.clone())
            .collect()
    }

    /// The far end hangs up the answered call: BYE, and waits for the server's 200.
    pub fn hang_up(&mut self) -> Result<(), String> {
        let (invite, to, tag) = self.call.take().ok_or("no answered call to hang up")?;
        self.rtp.stop_sending();
        let from = invite.header("To").unwrap_or_default().to_string();
        let target = invite
            .header("Contact")
            .map(super::sipmsg::uri_of)
            .unwrap_or_default();
        let bye = Msg::request("BYE", &target)
            .with(
                "Via",
                format!(
                    "SIP/2.0/{} {};branch=z9hG4bK{:016x}",
                    self.link.transport.via_name(),
                    self.addr,
                    rand::random::<u64>()
                ),
            )
            .with("Max-Forwards", "70")
            .with("From", format!("{from};tag={tag}"))
            .with("To", invite.header("From").unwrap_or_default().to_string())
            .with("Call-ID", invite.call_id().unwrap_or_default().to_string())
            .with("CSeq", "1 BYE");
        self.send(&bye, to)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some((m, _)) = self.recv(deadline) {
            if m.status() == Some(200) && m.cseq().is_some_and(|(_, method)| method == "BYE") {
                return Ok(());
            }
        }
        Err("the server did not answer the BYE".into())
    }

    /// Waits for the server's BYE for the answered call and answers 200.
    pub fn wait_bye(&mut self, timeout: Duration) -> Result<(), String> {
        let (bye, from) = self.wait_method("BYE", Instant::now() + timeout)?;
        self.rtp.stop_sending();
        self.send(&response_to(&bye, 200, "OK", None), from)
    }
}

/// The agent accepts the callback ringing them; the carrier challenges (401), the customer
/// answers, they talk briefly, the agent hangs up. The attempt's record.
pub fn accept_callback(
    server: &Server,
    ana: &mut Agent,
    trunk: MockTrunk,
    number: &str,
) -> (MockTrunk, serde_json::Value) {
    let ring = ana.wait_ring(super::secs(15)).must();
    assert_eq!(ring["callback"]["number"], number, "{ring}");
    let call_id = ring["call_id"].as_str().unwrap_or_default().to_string();
    let carrier = std::thread::spawn(move || {
        let mut trunk = trunk;
        let seen = trunk.take_call(401, 200, super::secs(15));
        (trunk, seen)
    });
    ana.answer(&call_id).must();
    let (mut trunk, seen) = carrier
        .join()
        .unwrap_or_else(|_| panic!("the carrier's thread failed"));
    let seen = seen.must();
    std::thread::sleep(Duration::from_millis(300));
    ana.hangup(&call_id).must();
    trunk.wait_bye(super::secs(10)).must();
    ana.wait_state("available", super::secs(10)).must();
    let rec = super::server::wait_call_record(
        server,
        seen.first.call_id().unwrap_or_default(),
        super::secs(10),
    );
    assert_eq!(super::field(&rec, "direction"), "callback", "{rec}");
    assert_eq!(super::field(&rec, "to"), number, "{rec}");
    (trunk, rec)
}

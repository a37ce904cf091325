//! A softphone that calls the server the way a desk phone or a carrier would: SIP over UDP or TCP
//! built as text, SDP offering PCMU/PCMA/telephone-event, RTP both ways, DTMF three ways.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::g711::Law;
use super::link::{Incoming, Origin, SipLink, Transport};
use super::prompts::{Heard, PromptSet};
use super::rtp::{RtpEndpoint, RxPacket, TxRecord};
use super::server::Server;
use super::sipmsg::{parse_sdp_answer, sdp_offer, uri_of, Msg, SdpAnswer, DESK_PHONE_CODECS};

/// How long any single SIP exchange may take before the test fails instead of hanging.
pub const SIP_TIMEOUT: Duration = Duration::from_secs(10);
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

fn random_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The dialog after a 2xx: what in-dialog requests need.
struct Dialog {
    to: String,
    remote_target: String,
}

pub struct Phone {
    link: SipLink,
    rtp: RtpEndpoint,
    call_id: String,
    from_tag: String,
    from: String,
    to: String,
    cseq: u32,
    invite: Option<Msg>,
    dialog: Option<Dialog>,
    ack: Option<Msg>,
    stash: VecDeque<(Msg, Origin)>,
    /// Provisional statuses the INVITE got, in order (e.g. [100, 180]).
    pub provisional: Vec<u16>,
    pub answer: Option<SdpAnswer>,
    /// Bytes from the server that did not parse as SIP.
    pub garbage: Vec<String>,
}

impl Phone {
    pub fn udp(server: &Server) -> Phone {
        Phone::new(Transport::Udp, server.sip)
    }

    pub fn tcp(server: &Server) -> Phone {
        Phone::new(Transport::Tcp, server.sip)
    }

    pub fn new(transport: Transport, server: SocketAddr) -> Phone {
        let link = SipLink::open(transport, server)
            .unwrap_or_else(|e| panic!("open {transport:?} link to {server}: {e}"));
        let rtp = RtpEndpoint::bind().expect("bind RTP socket");
        Phone {
            link,
            rtp,
            call_id: format!("{}@127.0.0.1", random_token()),
            from_tag: random_token(),
            from: "phone".into(),
            to: String::new(),
            cseq: 0,
            invite: None,
            dialog: None,
            ack: None,
            stash: VecDeque::new(),
            provisional: Vec::new(),
            answer: None,
            garbage: Vec::new(),
        }
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn transport(&self) -> Transport {
        self.link.transport
    }

    fn server_uri(&self, user: &str) -> String {
        let tp = match self.link.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        if user.is_empty() {
            format!("sip:{}{tp}", self.link.server)
        } else {
            format!("sip:{user}@{}{tp}", self.link.server)
        }
    }

    fn contact(&self) -> String {
        let tp = match self.link.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        format!("<sip:{}@{}{tp}>", self.from, self.link.local)
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.link.transport.via_name(),
            self.link.local
        )
    }

    fn our_from(&self) -> String {
        format!("<sip:{}@127.0.0.1>;tag={}", self.from, self.from_tag)
    }

    fn request(&mut self, method: &str, uri: &str, to: &str) -> Msg {
        self.cseq += 1;
        Msg::request(method, uri)
            .with("Via", self.via(&format!("z9hG4bK{}", random_token())))
            .with("Max-Forwards", "70")
            .with("From", self.our_from())
            .with("To", to)
            .with("Call-ID", self.call_id.clone())
            .with("CSeq", format!("{} {method}", self.cseq))
            .with("Contact", self.contact())
            .with("User-Agent", "switchboard-test-phone/1")
    }

    /// Calls `to` as `from`, expecting the server to answer 200; then ACKs and starts RTP.
    pub fn call(&mut self, to: &str, from: &str) -> Result<(), String> {
        match self.invite(to, from, DESK_PHONE_CODECS)? {
            200 => Ok(()),
            s => Err(format!("INVITE to {to} got {s}, expected 200")),
        }
    }

    /// Sends an INVITE offering `codecs` and returns its final status (ACKing it either way).
    pub fn invite(&mut self, to: &str, from: &str, codecs: &[(u8, &str)]) -> Result<u16, String> {
        self.send_invite(to, from, codecs)?;
        let resp = self.wait_invite_final(SIP_TIMEOUT)?;
        Ok(resp.status().unwrap_or(0))
    }

    /// Sends the INVITE and returns at once (for CANCEL tests and ringing assertions).
    pub fn send_invite(
        &mut self,
        to: &str,
        from: &str,
        codecs: &[(u8, &str)],
    ) -> Result<(), String> {
        self.from = from.to_string();
        self.to = to.to_string();
        let sdp = sdp_offer(self.rtp.port(), rand::random::<u32>().into(), codecs);
        let uri = self.server_uri(to);
        let to_h = format!("<{}>", self.server_uri(to));
        let invite = self
            .request("INVITE", &uri, &to_h)
            .with_body("application/sdp", sdp.as_bytes());
        self.link.send(&invite.to_bytes())?;
        self.invite = Some(invite);
        Ok(())
    }

    fn invite_cseq(&self) -> Option<u32> {
        self.invite.as_ref().and_then(|i| i.cseq()).map(|(n, _)| n)
    }

    /// Waits for a provisional response `status` (e.g. 180) to the INVITE.
    pub fn wait_provisional(&mut self, status: u16, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let invite = self.invite.clone().ok_or("no INVITE sent")?;
        let mut next_retransmit = Instant::now() + T1;
        let mut interval = T1;
        loop {
            if self.provisional.contains(&status) {
                return Ok(());
            }
            let now = Instant::now();
            if now > deadline {
                return Err(format!(
                    "no {status} within {timeout:?} (provisionals: {:?})",
                    self.provisional
                ));
            }
            if self.link.transport == Transport::Udp
                && self.provisional.is_empty()
                && now >= next_retransmit
            {
                self.link.send(&invite.to_bytes())?;
                interval = (interval * 2).min(T2);
                next_retransmit = now + interval;
            }
            let cseq = self.invite_cseq();
            let found = self.take_matching(next_retransmit.min(deadline), |m| {
                m.status().is_some_and(|s| s < 200)
                    && m.cseq() == cseq.map(|n| (n, "INVITE".into()))
            });
            if let Some((m, _)) = found {
                self.provisional.extend(m.status());
            }
            // A final response while waiting for ringing is left in the stash for wait_invite_final.
            let cseq = self.invite_cseq();
            if let Some((m, _)) = self.stash.iter().find(|(m, _)| {
                m.status().is_some_and(|s| s >= 200)
                    && m.cseq() == cseq.map(|n| (n, "INVITE".into()))
            }) {
                return Err(format!(
                    "INVITE already got final {:?} before {status}",
                    m.status()
                ));
            }
        }
    }

    /// Waits for the INVITE's final response, ACKs it, and on 2xx sets up the dialog and RTP.
    pub fn wait_invite_final(&mut self, timeout: Duration) -> Result<Msg, String> {
        let invite = self.invite.clone().ok_or("no INVITE sent")?;
        let cseq = self.invite_cseq();
        let is_final = move |m: &Msg| {
            m.status().is_some_and(|s| s >= 200) && m.cseq() == cseq.map(|n| (n, "INVITE".into()))
        };
        let resp = self.transact_wait(&invite, timeout, true, is_final)?;
        let status = resp.status().unwrap_or(0);
        if (200..300).contains(&status) {
            let answer = parse_sdp_answer(&resp.body_text())
                .map_err(|e| format!("200 OK SDP: {e}\n{}", resp.body_text()))?;
            let to = resp.header("To").ok_or("200 without To")?.to_string();
            let remote_target = resp
                .header("Contact")
                .map(uri_of)
                .unwrap_or_else(|| self.server_uri(&self.to.clone()));
            let ack = self.build_ack_2xx(&remote_target, &to);
            self.link.send(&ack.to_bytes())?;
            self.ack = Some(ack);
            self.dialog = Some(Dialog { to, remote_target });
            let law = answer
                .payload_types
                .iter()
                .find_map(|&pt| Law::from_payload_type(pt))
                .ok_or_else(|| format!("answer has no PCMU/PCMA: {:?}", answer.payload_types))?;
            self.rtp
                .start_sending(answer.addr, law, answer.telephone_event);
            self.answer = Some(answer);
        } else {
            // RFC 3261 §17.1.1.3: the ACK for a non-2xx final reuses the INVITE's branch.
            let ack = self.ack_for_non_2xx(&invite, &resp);
            self.link.send(&ack.to_bytes())?;
        }
        Ok(resp)
    }

    fn build_ack_2xx(&self, remote_target: &str, to: &str) -> Msg {
        let n = self.invite_cseq().unwrap_or(1);
        Msg::request("ACK", remote_target)
            .with("Via", self.via(&format!("z9hG4bK{}", random_token())))
            .with("Max-Forwards", "70")
            .with("From", self.our_from())
            .with("To", to)
            .with("Call-ID", self.call_id.clone())
            .with("CSeq", format!("{n} ACK"))
            .with("Contact", self.contact())
    }

    fn ack_for_non_2xx(&self, invite: &Msg, resp: &Msg) -> Msg {
        let (uri, n) = match (&invite.start, invite.cseq()) {
            (super::sipmsg::StartLine::Request { uri, .. }, Some((n, _))) => (uri.clone(), n),
            _ => (self.server_uri(&self.to), 1),
        };
        Msg::request("ACK", &uri)
            .with("Via", invite.header("Via").unwrap_or_default().to_string())
            .with("Max-Forwards", "70")
            .with("From", self.our_from())
            .with("To", resp.header("To").unwrap_or_default().to_string())
            .with("Call-ID", self.call_id.clone())
            .with("CSeq", format!("{n} ACK"))
    }

    /// Sends `req` (already sent once) again on UDP with Timer A/E spacing until `done` matches a
    /// response; INVITE retransmission stops at the first provisional.
    fn transact_wait(
        &mut self,
        req: &Msg,
        timeout: Duration,
        is_invite: bool,
        done: impl Fn(&Msg) -> bool,
    ) -> Result<Msg, String> {
        let deadline = Instant::now() + timeout;
        let mut interval = T1;
        let mut next_retransmit = Instant::now() + T1;
        let mut got_provisional = is_invite && !self.provisional.is_empty();
        let (cseq_n, method) = req.cseq().ok_or("request without CSeq")?;
        loop {
            let now = Instant::now();
            if now > deadline {
                return Err(format!(
                    "no final response to {method} within {timeout:?} (provisionals {:?})",
                    self.provisional
                ));
            }
            if self.link.transport == Transport::Udp && !got_provisional && now >= next_retransmit {
                self.link.send(&req.to_bytes())?;
                interval = (interval * 2).min(T2);
                next_retransmit = now + interval;
            }
            let wake = if self.link.transport == Transport::Udp && !got_provisional {
                next_retransmit.min(deadline)
            } else {
                deadline
            };
            let m2 = method.clone();
            let found = self.take_matching(wake, |m| {
                done(m)
                    || (m.status().is_some_and(|s| s < 200)
                        && m.cseq() == Some((cseq_n, m2.clone())))
            });
            if let Some((m, _)) = found {
                match m.status() {
                    Some(s) if s < 200 => {
                        if is_invite {
                            self.provisional.push(s);
                            got_provisional = true;
                        }
                    }
                    _ => return Ok(m),
                }
            }
        }
    }

    /// Removes and returns the first stashed or newly received message that satisfies `pred`,
    /// waiting until `deadline`; other messages are absorbed (automatic answers) or stashed.
    fn take_matching(
        &mut self,
        deadline: Instant,
        pred: impl Fn(&Msg) -> bool,
    ) -> Option<(Msg, Origin)> {
        if let Some(i) = self.stash.iter().position(|(m, _)| pred(m)) {
            return self.stash.remove(i);
        }
        loop {
            let item = self.link.recv(deadline)?;
            match item {
                Incoming::Garbage(e) => self.garbage.push(e),
                Incoming::Msg(m, origin) => {
                    if pred(&m) {
                        return Some((m, origin));
                    }
                    self.absorb(m, origin);
                }
            }
        }
    }

    /// What a phone does without being asked: re-ACK a retransmitted 200, answer OPTIONS pings.
    fn absorb(&mut self, m: Msg, origin: Origin) {
        let is_invite_2xx = m.status().is_some_and(|s| (200..300).contains(&s))
            && m.cseq().is_some_and(|(_, meth)| meth == "INVITE");
        if is_invite_2xx {
            if let Some(ack) = &self.ack {
                let _ = self.link.send(&ack.to_bytes());
                return;
            }
        }
        if m.method() == Some("OPTIONS") {
            let _ = self
                .link
                .reply(origin, &response_to(&m, 200, "OK", None).to_bytes());
            return;
        }
        self.stash.push_back((m, origin));
    }

    /// Ends the call from the phone: BYE, expecting 200. Returns the status.
    pub fn hangup(&mut self) -> Result<u16, String> {
        let d = self
            .dialog
            .as_ref()
            .ok_or("hangup without an answered call")?;
        let (target, to) = (d.remote_target.clone(), d.to.clone());
        let bye = self.request("BYE", &target, &to);
        self.link.send(&bye.to_bytes())?;
        self.rtp.stop_sending();
        let (n, _) = bye.cseq().ok_or("BYE without CSeq")?;
        let resp = self.transact_wait(&bye, SIP_TIMEOUT, false, |m| {
            m.status().is_some_and(|s| s >= 200) && m.cseq() == Some((n, "BYE".into()))
        })?;
        self.dialog = None;
        Ok(resp.status().unwrap_or(0))
    }

    /// Waits for the server to hang up (BYE for this call), answers 200, stops RTP.
    pub fn wait_for_bye(&mut self, timeout: Duration) -> Result<Msg, String> {
        let call_id = self.call_id.clone();
        let deadline = Instant::now() + timeout;
        let (bye, origin) = self
            .take_matching(deadline, |m| {
                m.method() == Some("BYE") && m.call_id() == Some(call_id.as_str())
            })
            .ok_or_else(|| format!("the server did not hang up within {timeout:?}"))?;
        self.link
            .reply(origin, &response_to(&bye, 200, "OK", None).to_bytes())?;
        self.rtp.stop_sending();
        self.dialog = None;
        Ok(bye)
    }

    /// Whether the server sent a BYE that nobody has consumed yet (non-blocking).
    pub fn bye_pending(&mut self) -> bool {
        let call_id = self.call_id.clone();
        let found = self.take_matching(Instant::now(), |m| {
            m.method() == Some("BYE") && m.call_id() == Some(call_id.as_str())
        });
        match found {
            Some(item) => {
                self.stash.push_front(item);
                true
            }
            None => false,
        }
    }

    /// CANCELs the pending INVITE. Returns (status of the CANCEL, final status of the INVITE).
    pub fn cancel(&mut self) -> Result<(u16, u16), String> {
        let invite = self.invite.clone().ok_or("cancel without an INVITE")?;
        let (n, _) = invite.cseq().ok_or("INVITE without CSeq")?;
        let uri = match &invite.start {
            super::sipmsg::StartLine::Request { uri, .. } => uri.clone(),
            _ => return Err("INVITE is not a request".into()),
        };
        // RFC 3261 §9.1: same Request-URI, Call-ID, From, To, CSeq number and top Via as the INVITE.
        let cancel = Msg::request("CANCEL", &uri)
            .with("Via", invite.header("Via").unwrap_or_default().to_string())
            .with("Max-Forwards", "70")
            .with("From", self.our_from())
            .with("To", invite.header("To").unwrap_or_default().to_string())
            .with("Call-ID", self.call_id.clone())
            .with("CSeq", format!("{n} CANCEL"));
        self.link.send(&cancel.to_bytes())?;
        let c = self.transact_wait(&cancel, SIP_TIMEOUT, false, |m| {
            m.status().is_some_and(|s| s >= 200) && m.cseq() == Some((n, "CANCEL".into()))
        })?;
        let inv = self.wait_invite_final(SIP_TIMEOUT)?;
        Ok((c.status().unwrap_or(0), inv.status().unwrap_or(0)))
    }

    /// SIP INFO DTMF (application/dtmf-relay) in the dialog; returns the status.
    pub fn send_info(&mut self, digit: &str) -> Result<u16, String> {
        let d = self
            .dialog
            .as_ref()
            .ok_or("INFO without an answered call")?;
        let (target, to) = (d.remote_target.clone(), d.to.clone());
        let body = format!("Signal={digit}\r\nDuration=160\r\n");
        let info = self
            .request("INFO", &target, &to)
            .with_body("application/dtmf-relay", body.as_bytes());
        self.link.send(&info.to_bytes())?;
        let (n, _) = info.cseq().ok_or("INFO without CSeq")?;
        let resp = self.transact_wait(&info, SIP_TIMEOUT, false, |m| {
            m.status().is_some_and(|s| s >= 200) && m.cseq() == Some((n, "INFO".into()))
        })?;
        Ok(resp.status().unwrap_or(0))
    }

    /// An out-of-dialog request (OPTIONS, REGISTER…) with its own Call-ID; returns the final response.
    pub fn out_of_dialog(
        &mut self,
        method: &str,
        user: &str,
        extra: &[(&str, &str)],
    ) -> Result<Msg, String> {
        let saved = std::mem::replace(&mut self.call_id, format!("{}@127.0.0.1", random_token()));
        let uri = self.server_uri(user);
        let to = match method {
            "REGISTER" => format!("<sip:{}@127.0.0.1>", self.from),
            _ => format!("<{uri}>"),
        };
        let mut req = self.request(method, &uri, &to);
        for (n, v) in extra {
            req = req.with(n, *v);
        }
        let sent = self.link.send(&req.to_bytes());
        let (n, _) = req.cseq().ok_or("request without CSeq")?;
        let m = method.to_string();
        let resp = sent.and_then(|_| {
            self.transact_wait(&req, SIP_TIMEOUT, false, |r| {
                r.status().is_some_and(|s| s >= 200) && r.cseq() == Some((n, m.clone()))
            })
        });
        self.call_id = saved;
        resp
    }

    pub fn options(&mut self) -> Result<Msg, String> {
        self.out_of_dialog("OPTIONS", "", &[("Accept", "application/sdp")])
    }

    pub fn register(&mut self) -> Result<Msg, String> {
        self.out_of_dialog("REGISTER", "", &[("Expires", "60")])
    }

    /// Bytes straight onto the SIP transport (for malformed-input tests).
    pub fn send_raw(&self, bytes: &[u8]) -> Result<(), String> {
        self.link.send(bytes)
    }

    /// Waits for any message for `pred` (e.g. a response to raw bytes), up to `timeout`.
    pub fn wait_message(&mut self, timeout: Duration, pred: impl Fn(&Msg) -> bool) -> Option<Msg> {
        self.take_matching(Instant::now() + timeout, pred)
            .map(|(m, _)| m)
    }

    /// Key presses as RFC 4733 events like a desk phone: 100 ms per key, 3 end packets, 60 ms gaps.
    /// Returns when the last packet has been sent.
    pub fn send_digits_rfc4733(&self, digits: &str) -> Result<(), String> {
        self.rtp.queue_rfc4733(digits, 100, 60)?;
        self.rtp.wait_queue_drained(
            Duration::from_secs(2) + Duration::from_millis(300) * digits.len() as u32,
        )
    }

    /// Key presses as audio (in-band DTMF): 100 ms tones at about -10 dBFS, 100 ms silences.
    pub fn send_inband(&self, digits: &str) -> Result<(), String> {
        for d in digits.chars() {
            let tone =
                super::dtmf::tone(d, 100, 5000.0).ok_or_else(|| format!("{d:?} is not a key"))?;
            self.rtp.queue_pcm(&tone);
            self.rtp.queue_pcm(&[0i16; 800]);
        }
        self.rtp.wait_queue_drained(
            Duration::from_secs(2) + Duration::from_millis(300) * digits.len() as u32,
        )
    }

    /// Returns once everything queued has been sent.
    pub fn wait_sent(&self, timeout: Duration) -> Result<(), String> {
        self.rtp.wait_queue_drained(timeout)
    }

    /// Queues 8 kHz audio (e.g. a test tone) after whatever is queued; returns at once.
    pub fn queue_pcm(&self, pcm: &[i16]) {
        self.rtp.queue_pcm(pcm);
    }

    /// Every RTP packet received so far, in arrival order.
    pub fn received(&self) -> Vec<RxPacket> {
        self.rtp.received()
    }

    /// How many RTP packets arrive during the next `d` (to prove the server went quiet).
    pub fn rtp_arriving_during(&mut self, d: Duration) -> usize {
        let before = self.rtp.received_count();
        let end = Instant::now() + d;
        while Instant::now() < end {
            // Keep answering SIP meanwhile instead of sleeping blind.
            let _ = self.take_matching(end.min(Instant::now() + Duration::from_millis(40)), |_| {
                false
            });
        }
        self.rtp.received_count() - before
    }

    pub fn sent(&self) -> Vec<TxRecord> {
        self.rtp.sent()
    }

    /// Waits until the caller has heard `name` start `count` times; returns those occurrences.
    pub fn wait_heard(
        &mut self,
        prompts: &PromptSet,
        name: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Heard>, String> {
        self.wait_prompts(prompts, timeout, |heard| {
            let of: Vec<Heard> = heard.iter().filter(|h| h.name == name).cloned().collect();
            (of.len() >= count).then_some(of)
        })
        .map_err(|(e, heard)| {
            format!("waiting to hear {name:?} x{count}: {e}; heard so far {heard:?}")
        })
    }

    /// Waits until the `count`-th playing of `name` has been heard to its end.
    pub fn wait_heard_complete(
        &mut self,
        prompts: &PromptSet,
        name: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Heard, String> {
        self.wait_prompts(prompts, timeout, |heard| {
            heard
                .iter()
                .filter(|h| h.name == name)
                .nth(count - 1)
                .filter(|h| h.complete())
                .cloned()
        })
        .map_err(|(e, heard)| {
            format!("waiting to hear all of {name:?} (#{count}): {e}; heard so far {heard:?}")
        })
    }

    fn wait_prompts<T>(
        &mut self,
        prompts: &PromptSet,
        timeout: Duration,
        check: impl Fn(&[Heard]) -> Option<T>,
    ) -> Result<T, (String, Vec<String>)> {
        let deadline = Instant::now() + timeout;
        loop {
            let heard = prompts.hear(&self.rtp.received());
            if let Some(t) = check(&heard) {
                return Ok(t);
            }
            let names: Vec<String> = heard.iter().map(|h| h.name.clone()).collect();
            if Instant::now() > deadline {
                let why = if self.bye_pending() {
                    "the server hung up"
                } else {
                    "timed out"
                };
                return Err((format!("{why} after {timeout:?}"), names));
            }
            // Answer anything the server asks meanwhile (OPTIONS pings, 200 retransmissions).
            let _ = self.take_matching(Instant::now() + Duration::from_millis(40), |_| false);
        }
    }
}

/// A response to a request from the server, echoing the headers RFC 3261 §8.2.6 requires.
pub fn response_to(req: &Msg, status: u16, reason: &str, to_tag: Option<&str>) -> Msg {
    let mut r = Msg::response(status, reason);
    for via in req.headers("Via") {
        r = r.with("Via", via.to_string());
    }
    let to = req.header("To").unwrap_or_default().to_string();
    let to = match to_tag {
        Some(t) if req.to_tag().is_none() => format!("{to};tag={t}"),
        _ => to,
    };
    r.with("From", req.header("From").unwrap_or_default().to_string())
        .with("To", to)
        .with("Call-ID", req.call_id().unwrap_or_default().to_string())
        .with("CSeq", req.header("CSeq").unwrap_or_default().to_string())
}

//! Messages real peers send, shared by the sip tests.

use super::{Peer, Transport};

pub const SIPP_SDP: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

/// What `sipp -sn uac` sends (branch and Call-ID parameterised so tests can make several).
pub fn sipp_invite(branch: &str, call_id: &str) -> String {
    format!(
        "INVITE sip:7000@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch}\r\n\
From: sipp <sip:+551199990000@127.0.0.1:5061>;tag=12345SIPpTag001\r\n\
To: service <sip:7000@127.0.0.1:5060>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 INVITE\r\n\
Contact: sip:sipp@127.0.0.1:5061\r\n\
Max-Forwards: 70\r\n\
Subject: Performance Test\r\n\
Content-Type: application/sdp\r\n\
Content-Length:   {}\r\n\
\r\n{SIPP_SDP}",
        SIPP_SDP.len()
    )
}

pub const LINPHONE_SDP: &str = "v=0\r\n\
o=alice 1234 5678 IN IP4 192.168.1.20\r\n\
s=Talk\r\n\
c=IN IP4 192.168.1.20\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 101\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=rtpmap:98 speex/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
m=video 9078 RTP/AVP 96\r\n\
a=rtpmap:96 VP8/90000\r\n";

/// A Linphone/Zoiper-style INVITE that went through a proxy: two Vias (one comma-joined line plus
/// one more), Record-Route, a folded Allow, rport, a quoted display name with a comma.
pub fn linphone_invite() -> String {
    format!(
        "INVITE sip:+551130000000@10.0.0.1:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-proxy-1;rport , SIP/2.0/UDP 192.168.1.20:5070;received=203.0.113.7;rport=40123;branch=z9hG4bK.abcdef\r\n\
Record-Route: <sip:10.0.0.9;lr>\r\n\
From: \"Silva, Maria\" <sip:maria@example.com>;tag=9fxced76sl\r\n\
To: <sip:+551130000000@10.0.0.1>\r\n\
Call-ID: 3848276298220188511@192.168.1.20\r\n\
CSeq: 20 INVITE\r\n\
Contact: <sip:maria@203.0.113.7:40123;transport=udp>;+sip.instance=\"<urn:uuid:1234>\"\r\n\
Max-Forwards: 69\r\n\
User-Agent: Linphone/5.2.0 (belle-sip/5.2.0)\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE,\r\n\
\tREFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO, UPDATE\r\n\
Supported: replaces, outbound, gruu\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\
\r\n{LINPHONE_SDP}",
        LINPHONE_SDP.len()
    )
}

/// The same kind of INVITE written entirely with compact header names.
pub fn compact_invite() -> String {
    let body = "v=0\r\no=- 1 1 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n";
    format!(
        "INVITE sip:7000@gw.example SIP/2.0\r\n\
v: SIP/2.0/TCP 10.1.1.1:5060;branch=z9hG4bKcompact1\r\n\
f: <sip:+5511988887777@10.1.1.1>;tag=ct1\r\n\
t: <sip:7000@gw.example>\r\n\
i: compact-call-1@10.1.1.1\r\n\
CSeq: 7 INVITE\r\n\
m: <sip:caller@10.1.1.1:5060;transport=tcp>\r\n\
k: timer\r\n\
c: application/sdp\r\n\
l: {}\r\n\
\r\n{body}",
        body.len()
    )
}

pub fn udp(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
    }
}

pub fn tcp(addr: &str) -> Peer {
    Peer {
        transport: Transport::Tcp,
        addr: addr.parse().unwrap(),
    }
}

pub fn request(text: &str) -> rsip::Request {
    match super::message::parse(text.as_bytes()).unwrap() {
        rsip::SipMessage::Request(r) => r,
        rsip::SipMessage::Response(_) => panic!("expected a request"),
    }
}

/// A tiny deterministic generator for mutation tests (tests must not depend on a real RNG).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

//! SDP (RFC 4566) and the offer/answer model (RFC 3264) for what this gateway speaks: one audio
//! stream of G.711 (PCMU/PCMA) plus RFC 4733 telephone-events.
//!
//! SDP crosses to the media side as text; the `call` module pairs the [`Negotiated`] result with
//! an RTP session, so `sip` never needs to know about media.

use core::net::{IpAddr, SocketAddr};

/// Larger descriptions are refused rather than parsed.
pub const MAX_SDP: usize = 32 * 1024;
const MAX_MEDIA: usize = 16;
const DEFAULT_DTMF_EVENTS: &str = "0-16";
/// The dynamic payload type we offer telephone-event on.
pub const OFFER_DTMF_PT: u8 = 101;
const PTIME_MS: u32 = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    #[error("SDP larger than {MAX_SDP} bytes")]
    TooLarge,
    #[error("SDP must start with v=0")]
    BadVersion,
    #[error("malformed SDP line {0}")]
    BadLine(usize),
    #[error("malformed m= line {0}")]
    BadMedia(usize),
    #[error("more than {MAX_MEDIA} media sections")]
    TooManyMedia,
    #[error("no audio stream offered")]
    NoAudio,
    #[error("no audio codec in common")]
    NoCommonCodec,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    Pcmu,
    Pcma,
}

impl AudioCodec {
    /// The static RTP payload type (RFC 3551).
    pub fn static_payload_type(self) -> u8 {
        match self {
            AudioCodec::Pcmu => 0,
            AudioCodec::Pcma => 8,
        }
    }

    fn encoding_name(self) -> &'static str {
        match self {
            AudioCodec::Pcmu => "PCMU",
            AudioCodec::Pcma => "PCMA",
        }
    }
}

/// Media direction, from the point of view of whoever wrote the description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction that answers this one (sendonly ↔ recvonly).
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attributes(attributes: &[Attribute]) -> Option<Direction> {
        attributes.iter().rev().find_map(|a| match a.name.as_str() {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, …
    pub media: String,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<String>,
    /// The media-level `c=` address, if any.
    pub connection: Option<IpAddr>,
    pub attributes: Vec<Attribute>,
}

impl MediaDescription {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.value.as_deref())
    }

    /// `a=rtpmap:<pt> <encoding>/<clock>[/channels]` → (encoding, clock rate).
    pub fn rtpmap(&self, pt: u8) -> Option<(String, u32)> {
        self.payload_attribute("rtpmap", pt).and_then(|v| {
            let mut parts = v.split('/');
            let name = parts.next()?.trim().to_string();
            let clock = parts.next()?.trim().parse().ok()?;
            Some((name, clock))
        })
    }

    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.payload_attribute("fmtp", pt)
    }

    fn payload_attribute(&self, name: &str, pt: u8) -> Option<&str> {
        self.attributes
            .iter()
            .filter(|a| a.name == name)
            .find_map(|a| {
                let (p, rest) = a.value.as_deref()?.split_once(' ')?;
                (p.trim().parse::<u8>().ok()? == pt).then_some(rest.trim())
            })
    }

    fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|pt| *pt < 128)
    }

    /// G.711 by rtpmap, or by static payload type when there is no rtpmap (RFC 3551).
    fn codec(&self, pt: u8) -> Option<AudioCodec> {
        match self.rtpmap(pt) {
            Some((name, 8000)) if name.eq_ignore_ascii_case("PCMU") => Some(AudioCodec::Pcmu),
            Some((name, 8000)) if name.eq_ignore_ascii_case("PCMA") => Some(AudioCodec::Pcma),
            Some(_) => None,
            None => match pt {
                0 => Some(AudioCodec::Pcmu),
                8 => Some(AudioCodec::Pcma),
                _ => None,
            },
        }
    }

    fn telephone_event(&self) -> Option<u8> {
        self.payload_types().find(|pt| {
            self.rtpmap(*pt).is_some_and(|(name, clock)| {
                name.eq_ignore_ascii_case("telephone-event") && clock == 8000
            })
        })
    }

    fn is_rtp_audio(&self) -> bool {
        // Plain RTP only: there is no SRTP here, so SAVP offers are not ours to accept.
        self.media == "audio"
            && matches!(
                self.proto.to_ascii_uppercase().as_str(),
                "RTP/AVP" | "RTP/AVPF"
            )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: String,
    pub session_name: String,
    /// The session-level `c=` address, if any.
    pub connection: Option<IpAddr>,
    pub attributes: Vec<Attribute>,
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    fn direction_of(&self, m: &MediaDescription) -> Direction {
        Direction::from_attributes(&m.attributes)
            .or_else(|| Direction::from_attributes(&self.attributes))
            .unwrap_or(Direction::SendRecv)
    }

    /// Where the peer wants RTP for `m`; `None` for the 0.0.0.0 of a hold or a rejected stream.
    fn rtp_address(&self, m: &MediaDescription) -> Option<SocketAddr> {
        let ip = m.connection.or(self.connection)?;
        (!ip.is_unspecified() && m.port != 0).then(|| SocketAddr::new(ip, m.port))
    }
}

/// The outcome of offer/answer, from our point of view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: AudioCodec,
    pub payload_type: u8,
    pub dtmf_payload_type: Option<u8>,
    /// Where to send RTP; `None` for 0.0.0.0 / port 0 (on hold, or not yet known).
    pub remote_rtp: Option<SocketAddr>,
    pub ptime_ms: u32,
    /// Whether we may send and should expect to receive.
    pub direction: Direction,
}

fn parse_connection(value: &str) -> Option<IpAddr> {
    let mut parts = value.split_ascii_whitespace();
    let (net, _addrtype, addr) = (parts.next()?, parts.next()?, parts.next()?);
    if net != "IN" {
        return None;
    }
    // Multicast addresses carry /ttl[/count]; hostnames are not resolvable here.
    addr.split('/').next()?.parse().ok()
}

fn parse_media(value: &str, line: usize) -> Result<MediaDescription, SdpError> {
    let mut parts = value.split_ascii_whitespace();
    let (Some(media), Some(port), Some(proto)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SdpError::BadMedia(line));
    };
    let port = port
        .split('/')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or(SdpError::BadMedia(line))?;
    Ok(MediaDescription {
        media: media.to_ascii_lowercase(),
        port,
        proto: proto.to_string(),
        formats: parts.map(str::to_string).collect(),
        connection: None,
        attributes: Vec::new(),
    })
}

/// Parses a session description. Unknown line types and attributes are kept or skipped, never
/// fatal; only structure we rely on (v=, m=) must be well formed.
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    if text.len() > MAX_SDP {
        return Err(SdpError::TooLarge);
    }
    let mut sd = SessionDescription {
        origin: String::new(),
        session_name: String::new(),
        connection: None,
        attributes: vec![],
        media: vec![],
    };
    let mut seen_version = false;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = raw.trim_end();
        if line.is_empty() {
            continue;
        }
        let (kind, value) = match line.split_once('=') {
            Some((k, v)) if k.len() == 1 => (k, v),
            _ => return Err(SdpError::BadLine(line_no)),
        };
        if !seen_version {
            if kind != "v" || value.trim() != "0" {
                return Err(SdpError::BadVersion);
            }
            seen_version = true;
            continue;
        }
        match kind {
            "o" => sd.origin = value.to_string(),
            "s" => sd.session_name = value.to_string(),
            "c" => {
                let addr = parse_connection(value);
                match sd.media.last_mut() {
                    Some(m) => m.connection = addr,
                    None => sd.connection = addr,
                }
            }
            "m" => {
                if sd.media.len() >= MAX_MEDIA {
                    return Err(SdpError::TooManyMedia);
                }
                sd.media.push(parse_media(value, line_no)?);
            }
            "a" => {
                let attribute = match value.split_once(':') {
                    Some((name, v)) => Attribute {
                        name: name.to_string(),
                        value: Some(v.to_string()),
                    },
                    None => Attribute {
                        name: value.to_string(),
                        value: None,
                    },
                };
                match sd.media.last_mut() {
                    Some(m) => m.attributes.push(attribute),
                    None => sd.attributes.push(attribute),
                }
            }
            _ => {}
        }
    }
    if !seen_version {
        return Err(SdpError::BadVersion);
    }
    Ok(sd)
}

fn ip_kind(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

fn session_header(ip: IpAddr, session_id: u64) -> String {
    let kind = ip_kind(ip);
    format!("v=0\r\no=switchboard {session_id} {session_id} IN {kind} {ip}\r\ns=switchboard\r\nc=IN {kind} {ip}\r\nt=0 0\r\n")
}

/// Only digits, ranges and commas are echoed from the offer's telephone-event fmtp.
fn safe_events(fmtp: Option<&str>) -> &str {
    fmtp.filter(|f| {
        !f.is_empty()
            && f.len() <= 64
            && f.bytes()
                .all(|b| b.is_ascii_digit() || b == b'-' || b == b',')
    })
    .unwrap_or(DEFAULT_DTMF_EVENTS)
}

/// Answers `offer` (RFC 3264 §6): the first offered codec we support wins, telephone-event is
/// echoed with the offer's payload type, direction is mirrored, other streams are refused with
/// port 0. `SdpError::NoCommonCodec` means the call should be answered 488.
pub fn answer(
    offer: &str,
    local_ip: IpAddr,
    local_port: u16,
    session_id: u64,
    supported: &[AudioCodec],
) -> Result<(Negotiated, String), SdpError> {
    let sd = parse(offer)?;
    let chosen = sd
        .media
        .iter()
        .enumerate()
        .filter(|(_, m)| m.is_rtp_audio() && m.port != 0)
        .find_map(|(i, m)| {
            let (pt, codec) = m.payload_types().find_map(|pt| {
                m.codec(pt)
                    .filter(|c| supported.contains(c))
                    .map(|c| (pt, c))
            })?;
            Some((i, pt, codec))
        });
    let Some((index, payload_type, codec)) = chosen else {
        let any_audio = sd.media.iter().any(|m| m.media == "audio" && m.port != 0);
        return Err(if any_audio {
            SdpError::NoCommonCodec
        } else {
            SdpError::NoAudio
        });
    };
    let Some(offered) = sd.media.get(index) else {
        return Err(SdpError::NoAudio);
    };
    let dtmf = offered.telephone_event();
    let direction = sd.direction_of(offered).reversed();

    let mut text = session_header(local_ip, session_id);
    for (i, m) in sd.media.iter().enumerate() {
        if i != index {
            let formats = if m.formats.is_empty() {
                "0".to_string()
            } else {
                m.formats.join(" ")
            };
            text.push_str(&format!("m={} 0 {} {}\r\n", m.media, m.proto, formats));
            continue;
        }
        let formats = match dtmf {
            Some(d) => format!("{payload_type} {d}"),
            None => payload_type.to_string(),
        };
        text.push_str(&format!("m=audio {local_port} {} {formats}\r\n", m.proto));
        text.push_str(&format!(
            "a=rtpmap:{payload_type} {}/8000\r\n",
            codec.encoding_name()
        ));
        if let Some(d) = dtmf {
            text.push_str(&format!(
                "a=rtpmap:{d} telephone-event/8000\r\na=fmtp:{d} {}\r\n",
                safe_events(m.fmtp(d))
            ));
        }
        text.push_str(&format!(
            "a=ptime:{PTIME_MS}\r\na={}\r\n",
            direction.attribute()
        ));
    }
    let negotiated = Negotiated {
        codec,
        payload_type,
        dtmf_payload_type: dtmf,
        remote_rtp: sd.rtp_address(offered),
        ptime_ms: PTIME_MS,
        direction,
    };
    Ok((negotiated, text))
}

/// An offer for outbound calls: one audio stream with `codecs` in preference order and
/// telephone-event on payload type 101.
pub fn offer(local_ip: IpAddr, local_port: u16, session_id: u64, codecs: &[AudioCodec]) -> String {
    let mut pts: Vec<String> = codecs
        .iter()
        .map(|c| c.static_payload_type().to_string())
        .collect();
    pts.push(OFFER_DTMF_PT.to_string());
    let mut text = session_header(local_ip, session_id);
    text.push_str(&format!(
        "m=audio {local_port} RTP/AVP {}\r\n",
        pts.join(" ")
    ));
    for c in codecs {
        text.push_str(&format!(
            "a=rtpmap:{} {}/8000\r\n",
            c.static_payload_type(),
            c.encoding_name()
        ));
    }
    text.push_str(&format!(
        "a=rtpmap:{OFFER_DTMF_PT} telephone-event/8000\r\na=fmtp:{OFFER_DTMF_PT} {DEFAULT_DTMF_EVENTS}\r\na=ptime:{PTIME_MS}\r\na=sendrecv\r\n"
    ));
    text
}

/// Reads the answer to our [`offer`]: the codec and address the far end chose.
pub fn negotiate_answer(answer: &str) -> Result<Negotiated, SdpError> {
    let sd = parse(answer)?;
    let m = sd
        .media
        .iter()
        .find(|m| m.is_rtp_audio())
        .ok_or(SdpError::NoAudio)?;
    if m.port == 0 {
        return Err(SdpError::NoCommonCodec);
    }
    let (payload_type, codec) = m
        .payload_types()
        .find_map(|pt| m.codec(pt).map(|c| (pt, c)))
        .ok_or(SdpError::NoCommonCodec)?;
    Ok(Negotiated {
        codec,
        payload_type,
        dtmf_payload_type: m.telephone_event(),
        remote_rtp: sd.rtp_address(m),
        ptime_ms: PTIME_MS,
        direction: sd.direction_of(m).reversed(),
    })
}

impl Negotiated {
    /// Whether the far end put the call on hold: it stopped sending to us (sendonly/inactive,
    /// so we answer recvonly/inactive) or pointed its media at 0.0.0.0 (RFC 2543 style).
    pub fn on_hold(&self) -> bool {
        self.direction != Direction::SendRecv || self.remote_rtp.is_none()
    }
}

/// Answers a re-offer inside an established call (hold, resume, a moved peer): only the codec
/// already in use may be kept, so audio never changes format mid-call, and the origin's version
/// is `version`, which must grow with every new answer of the session (RFC 3264 §8).
pub fn reanswer(
    offer: &str,
    local_ip: IpAddr,
    local_port: u16,
    session_id: u64,
    version: u64,
    codec: AudioCodec,
) -> Result<(Negotiated, String), SdpError> {
    let (negotiated, text) = answer(offer, local_ip, local_port, session_id, &[codec])?;
    let old = format!("o=switchboard {session_id} {session_id} ");
    let new = format!("o=switchboard {session_id} {version} ");
    Ok((negotiated, text.replacen(&old, &new, 1)))
}

#[cfg(test)]
#[path = "sdp_tests.rs"]
mod tests;

//! SIP messages as text: the softphone's own tiny parser and builder. Deliberately not
//! `switchboard::sip`, so a bug there cannot hide itself from these tests.

use std::fmt::Write as _;

/// Anything bigger is not a message this test client expects from the server.
pub const MAX_MESSAGE: usize = 65_535;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request { method: String, uri: String },
    Response { status: u16, reason: String },
}

#[derive(Clone, Debug)]
pub struct Msg {
    pub start: StartLine,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// RFC 3261 §7.3.3 compact forms, so a server that prefers them is still understood.
fn expand_compact(name: &str) -> &str {
    match name.to_ascii_lowercase().as_str() {
        "v" => "Via",
        "f" => "From",
        "t" => "To",
        "i" => "Call-ID",
        "m" => "Contact",
        "l" => "Content-Length",
        "c" => "Content-Type",
        "k" => "Supported",
        "s" => "Subject",
        "e" => "Content-Encoding",
        _ => name,
    }
}

impl Msg {
    pub fn request(method: &str, uri: &str) -> Msg {
        Msg {
            start: StartLine::Request {
                method: method.to_string(),
                uri: uri.to_string(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn response(status: u16, reason: &str) -> Msg {
        Msg {
            start: StartLine::Response {
                status,
                reason: reason.to_string(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with(mut self, name: &str, value: impl Into<String>) -> Msg {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn with_body(mut self, content_type: &str, body: &[u8]) -> Msg {
        self.headers
            .push(("Content-Type".to_string(), content_type.to_string()));
        self.body = body.to_vec();
        self
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }

    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The first value of a header, by full or compact name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).into_iter().next()
    }

    pub fn headers(&self, name: &str) -> Vec<&str> {
        let want = expand_compact(name);
        self.headers
            .iter()
            .filter(|(n, _)| expand_compact(n).eq_ignore_ascii_case(want))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID")
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, String)> {
        let v = self.header("CSeq")?;
        let mut it = v.split_whitespace();
        let n = it.next()?.parse().ok()?;
        let m = it.next()?.to_ascii_uppercase();
        Some((n, m))
    }

    pub fn to_tag(&self) -> Option<String> {
        self.header("To").and_then(tag_param)
    }

    pub fn tag_of_from(&self) -> Option<String> {
        self.header("From").and_then(tag_param)
    }

    /// The top Via's branch parameter.
    pub fn branch(&self) -> Option<String> {
        let via = self.header("Via")?;
        let first = via.split(',').next()?;
        param(first, "branch")
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::new();
        match &self.start {
            StartLine::Request { method, uri } => {
                let _ = write!(s, "{method} {uri} SIP/2.0\r\n");
            }
            StartLine::Response { status, reason } => {
                let _ = write!(s, "SIP/2.0 {status} {reason}\r\n");
            }
        }
        for (n, v) in &self.headers {
            if !n.eq_ignore_ascii_case("Content-Length") {
                let _ = write!(s, "{n}: {v}\r\n");
            }
        }
        let _ = write!(s, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    /// Parses one complete message (the whole of a datagram, or one frame cut from a TCP stream).
    pub fn parse(bytes: &[u8]) -> Result<Msg, String> {
        if bytes.len() > MAX_MESSAGE {
            return Err(format!("message of {} bytes is too big", bytes.len()));
        }
        let head_end =
            find(bytes, b"\r\n\r\n").ok_or_else(|| "no blank line after headers".to_string())?;
        let head = std::str::from_utf8(&bytes[..head_end]).map_err(|e| e.to_string())?;
        let body = &bytes[head_end + 4..];
        let mut lines = head.split("\r\n");
        let first = lines.next().ok_or("empty message")?;
        let start = parse_start_line(first)?;
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // Folded continuation line (RFC 3261 §7.3.1).
                let (_, v) = headers.last_mut().ok_or("continuation before any header")?;
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            let (n, v) = line
                .split_once(':')
                .ok_or_else(|| format!("header line without colon: {line:?}"))?;
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let mut msg = Msg {
            start,
            headers,
            body: Vec::new(),
        };
        let len = match msg.header("Content-Length") {
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| format!("bad Content-Length {v:?}"))?,
            None => body.len(),
        };
        msg.body = body
            .get(..len)
            .ok_or_else(|| format!("body shorter than Content-Length {len}"))?
            .to_vec();
        Ok(msg)
    }
}

fn parse_start_line(line: &str) -> Result<StartLine, String> {
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let status = code
            .parse::<u16>()
            .map_err(|_| format!("bad status line {line:?}"))?;
        return Ok(StartLine::Response {
            status,
            reason: reason.to_string(),
        });
    }
    let mut it = line.split(' ');
    match (it.next(), it.next(), it.next()) {
        (Some(method), Some(uri), Some("SIP/2.0")) => Ok(StartLine::Request {
            method: method.to_string(),
            uri: uri.to_string(),
        }),
        _ => Err(format!("bad start line {line:?}")),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A `;name=value` parameter of a header value.
pub fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn tag_param(value: &str) -> Option<String> {
    // The tag is a header parameter, after the closing '>' when the URI is bracketed.
    let params = match value.rfind('>') {
        Some(i) => &value[i..],
        None => value,
    };
    param(params, "tag")
}

/// The URI inside `<...>` of a Contact/From/To value, or the bare value.
pub fn uri_of(value: &str) -> String {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => value[a + 1..b].to_string(),
        _ => value.split(';').next().unwrap_or(value).trim().to_string(),
    }
}

/// How many bytes of `buf` make the first complete message of a TCP stream, after any leading CRLF
/// keep-alives (which are counted so the caller drains them). `None` when more bytes are needed.
pub fn stream_frame_len(buf: &[u8]) -> Result<Option<usize>, String> {
    let skip = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let rest = &buf[skip..];
    let Some(head_end) = find(rest, b"\r\n\r\n") else {
        if rest.len() > MAX_MESSAGE {
            return Err("headers too long".into());
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&rest[..head_end]);
    let mut len = 0usize;
    for line in head.split("\r\n").skip(1) {
        if let Some((n, v)) = line.split_once(':') {
            if expand_compact(n.trim()).eq_ignore_ascii_case("Content-Length") {
                len = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad Content-Length {v:?}"))?;
            }
        }
    }
    let total = skip + head_end + 4 + len;
    if total > MAX_MESSAGE + skip {
        return Err("message too long".into());
    }
    Ok((buf.len() >= total).then_some(total))
}

/// What the answer SDP told us: where to send RTP and with which payload types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdpAnswer {
    pub addr: core::net::SocketAddr,
    /// Payload types of the m=audio line, in the answerer's order; the first is the one in use.
    pub payload_types: Vec<u8>,
    pub telephone_event: Option<u8>,
}

pub fn parse_sdp_answer(body: &str) -> Result<SdpAnswer, String> {
    let mut ip: Option<core::net::IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut pts = Vec::new();
    let mut te = None;
    for line in body.lines() {
        let line = line.trim();
        if let Some(c) = line.strip_prefix("c=") {
            let addr = c.split_whitespace().nth(2).ok_or("bad c= line")?;
            // A media-level c= overrides the session-level one; both come before their use here.
            ip = Some(
                addr.parse()
                    .map_err(|_| format!("bad c= address {addr:?}"))?,
            );
        } else if let Some(m) = line.strip_prefix("m=audio ") {
            let mut it = m.split_whitespace();
            port = Some(
                it.next()
                    .and_then(|p| p.parse().ok())
                    .ok_or("bad m= port")?,
            );
            let _proto = it.next();
            pts = it.filter_map(|p| p.parse().ok()).collect();
        } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
            if let Some((pt, enc)) = map.split_once(' ') {
                if enc.to_ascii_lowercase().starts_with("telephone-event/8000") {
                    te = pt.trim().parse().ok();
                }
            }
        }
    }
    let ip = ip.ok_or("no c= line")?;
    let port = port.ok_or("no m=audio line")?;
    Ok(SdpAnswer {
        addr: core::net::SocketAddr::new(ip, port),
        payload_types: pts,
        telephone_event: te,
    })
}

/// An SDP offer from `rtp_port` with the given static/dynamic payload types and rtpmaps.
pub fn sdp_offer(rtp_port: u16, session: u64, codecs: &[(u8, &str)]) -> String {
    let pts: Vec<String> = codecs.iter().map(|(pt, _)| pt.to_string()).collect();
    let mut s = format!(
        "v=0\r\no=phone {session} {session} IN IP4 127.0.0.1\r\ns=phone\r\nc=IN IP4 127.0.0.1\r\n\
         t=0 0\r\nm=audio {rtp_port} RTP/AVP {}\r\n",
        pts.join(" ")
    );
    for (pt, map) in codecs {
        let _ = write!(s, "a=rtpmap:{pt} {map}\r\n");
        if map.starts_with("telephone-event") {
            let _ = write!(s, "a=fmtp:{pt} 0-16\r\n");
        }
    }
    s.push_str("a=ptime:20\r\na=sendrecv\r\n");
    s
}

/// What an ordinary desk phone offers: PCMU, PCMA and RFC 4733 events on PT 101.
pub const DESK_PHONE_CODECS: &[(u8, &str)] = &[
    (0, "PCMU/8000"),
    (8, "PCMA/8000"),
    (101, "telephone-event/8000"),
];

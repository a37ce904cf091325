//! SIP messages on the wire: parsing (with rsip underneath), TCP framing, serialising, and the few
//! accessors the rest of the crate routes calls with.
//!
//! Bytes from the network are normalised before rsip sees them — line endings, folded lines, compact
//! header names, comma-joined Via/Route lists, Content-Length — and the fields the stack depends on
//! are checked here, so rsip only ever receives text it handles well.

use super::syntax::{self, NameAddr, ViaInfo};
use rsip::headers::UntypedHeader;
use rsip::message::HasHeaders;
use rsip::{Header, Method};

/// The largest message accepted on any transport (the UDP payload limit).
pub const MAX_MESSAGE: usize = 65_535;
const MAX_HEADER_LINES: usize = 256;

/// Methods rsip 0.4 can represent; anything else is answered 501 instead of failing deep inside rsip.
const KNOWN_METHODS: [&str; 14] = [
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

/// Why bytes were not accepted as a SIP message. Messages never echo header values, which may
/// carry credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("message larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("empty message")]
    Empty,
    #[error("message ends before the blank line after the headers")]
    Truncated,
    #[error("headers are not valid UTF-8")]
    NotUtf8,
    #[error("malformed start line")]
    BadStartLine,
    #[error("unsupported SIP version")]
    BadVersion,
    #[error("method {0} not implemented")]
    UnknownMethod(String),
    #[error("unsupported Request-URI scheme")]
    UnsupportedScheme,
    #[error("malformed header line {0}")]
    BadHeaderLine(usize),
    #[error("more than {MAX_HEADER_LINES} header lines")]
    TooManyHeaders,
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    #[error("malformed {0} header")]
    InvalidHeader(&'static str),
    #[error("{0} header has {1}")]
    HeaderGrammar(&'static str, &'static str),
    #[error("{0} header appears more than once")]
    Repeated(&'static str),
    #[error("Content-Length says {declared} bytes but the body has {actual}")]
    ContentLength { declared: usize, actual: usize },
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
    #[error("message grammar rejected")]
    Grammar,
}

impl ParseError {
    /// The status a request failing this way should be answered with (RFC 3261 §21).
    pub fn response_status(&self) -> Option<u16> {
        match self {
            ParseError::Empty => None,
            ParseError::TooLarge => Some(513),
            ParseError::UnknownMethod(_) => Some(501),
            ParseError::UnsupportedScheme => Some(416),
            ParseError::BadVersion => Some(505),
            _ => Some(400),
        }
    }
}

enum StartLine {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

/// A message split into normalised lines, before rsip.
struct Raw<'a> {
    start: StartLine,
    headers: Vec<(String, String)>,
    body: &'a [u8],
}

fn skip_keepalive(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count()
}

/// Where the header block ends: `(head_len, body_start)`, accepting CRLF or bare LF line ends.
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf.get(i) == Some(&b'\n') {
            match (buf.get(i + 1), buf.get(i + 2)) {
                (Some(b'\n'), _) => return Some((i, i + 2)),
                (Some(b'\r'), Some(b'\n')) => return Some((i, i + 3)),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Header lines with folding undone and compact names expanded. `strict` rejects lines a lenient
/// reader (used to build a 400) would skip.
fn header_lines(lines: &[&str], strict: bool) -> Result<Vec<(String, String)>, ParseError> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let line_no = n + 2;
        if line.starts_with([' ', '\t']) {
            match headers.last_mut() {
                Some((_, value)) => {
                    value.push(' ');
                    value.push_str(line.trim());
                    continue;
                }
                None if strict => return Err(ParseError::BadHeaderLine(line_no)),
                None => continue,
            }
        }
        let parsed = line.split_once(':').and_then(|(name, value)| {
            let name = name.trim_end();
            syntax::is_token(name).then(|| (name, value.trim()))
        });
        match parsed {
            Some((name, value)) => {
                let name =
                    syntax::expand_compact(name).map_or_else(|| name.to_string(), str::to_string);
                headers.push((name, value.to_string()));
            }
            None if strict => return Err(ParseError::BadHeaderLine(line_no)),
            None => {}
        }
        if headers.len() > MAX_HEADER_LINES {
            return Err(ParseError::TooManyHeaders);
        }
    }
    if strict {
        // Control characters would let a value smuggle extra lines into what we render for rsip;
        // inside a quoted string, as a quoted-pair, they are legal and kept.
        if let Some(i) = headers
            .iter()
            .position(|(_, v)| syntax::has_stray_control(v))
        {
            return Err(ParseError::BadHeaderLine(i + 2));
        }
    }
    let named = |list: &[&'static str], name: &str| {
        list.iter().copied().find(|h| h.eq_ignore_ascii_case(name))
    };
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let listed = named(&LIST_HEADERS, &name);
        let parts = match listed {
            Some(_) => syntax::split_list(&value),
            None => vec![value.as_str()],
        };
        if let (true, Some(header)) = (strict, named(&ADDRESS_HEADERS, &name)) {
            if let Some(problem) = parts.iter().find_map(|p| syntax::element_problem(p)) {
                return Err(ParseError::HeaderGrammar(header, problem));
            }
        }
        match listed {
            // One Via/Route/Record-Route per line: what rsip and the routing code expect; a Via's
            // sent-protocol without the LWS RFC 3261 allows around its `/`.
            Some(list) if list != "Contact" => {
                for part in parts.into_iter().filter(|p| !p.is_empty()) {
                    let part = match list {
                        "Via" => syntax::compact_via(part).unwrap_or_else(|| part.to_string()),
                        _ => part.to_string(),
                    };
                    out.push((name.clone(), part));
                }
            }
            _ => out.push((name, value)),
        }
    }
    Ok(out)
}

/// Headers whose value may be a comma-separated list.
const LIST_HEADERS: [&str; 4] = ["Via", "Route", "Record-Route", "Contact"];
/// Headers whose every element [`syntax::element_problem`] checks.
const ADDRESS_HEADERS: [&str; 6] = ["Via", "Route", "Record-Route", "Contact", "From", "To"];
/// RFC 3261 §7.3: only list headers may appear more than once; these, which the stack reads,
/// must not (RFC 4475 §3.3.8).
const SINGLE_HEADERS: [&str; 6] = [
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Max-Forwards",
    "Content-Type",
];

fn check_single(headers: &[(String, String)]) -> Result<(), ParseError> {
    for name in SINGLE_HEADERS {
        let count = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count();
        if count > 1 {
            return Err(ParseError::Repeated(name));
        }
    }
    Ok(())
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    if line.len() >= 4
        && line
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        let (version, rest) = line.split_once(' ').ok_or(ParseError::BadStartLine)?;
        if !version.eq_ignore_ascii_case("SIP/2.0") {
            return Err(ParseError::BadVersion);
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::BadStartLine);
        }
        let code: u16 = code.parse().map_err(|_| ParseError::BadStartLine)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::BadStartLine);
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.trim().to_string(),
        });
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadStartLine);
    };
    if !syntax::is_token(method) || uri.is_empty() {
        return Err(ParseError::BadStartLine);
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(ParseError::BadVersion);
    }
    let method = method.to_ascii_uppercase();
    if !KNOWN_METHODS.contains(&method.as_str()) {
        return Err(ParseError::UnknownMethod(method.chars().take(32).collect()));
    }
    let scheme = uri.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("sip" | "sips")) {
        return Err(ParseError::UnsupportedScheme);
    }
    Ok(StartLine::Request {
        method,
        uri: uri.to_string(),
    })
}

fn parse_content_length(value: &str) -> Result<usize, ParseError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 6 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::InvalidHeader("Content-Length"));
    }
    v.parse()
        .map_err(|_| ParseError::InvalidHeader("Content-Length"))
}

fn parse_raw(bytes: &[u8]) -> Result<Raw<'_>, ParseError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(ParseError::TooLarge);
    }
    let bytes = bytes.get(skip_keepalive(bytes)..).unwrap_or_default();
    if bytes.is_empty() {
        return Err(ParseError::Empty);
    }
    let (head_len, body_start) = find_head_end(bytes).ok_or(ParseError::Truncated)?;
    let head = std::str::from_utf8(bytes.get(..head_len).unwrap_or_default())
        .map_err(|_| ParseError::NotUtf8)?;
    let body = bytes.get(body_start..).unwrap_or_default();
    let lines: Vec<&str> = head
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let (first, rest) = lines.split_first().ok_or(ParseError::Empty)?;
    let start = parse_start_line(first)?;
    let mut headers = header_lines(rest, true)?;
    check_single(&headers)?;

    let mut declared = None;
    for (_, v) in headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
    {
        let len = parse_content_length(v)?;
        if declared.is_some_and(|d| d != len) {
            return Err(ParseError::InvalidHeader("Content-Length"));
        }
        declared = Some(len);
    }
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case("Content-Length"));
    // RFC 3261 §18.3: a datagram may carry bytes past Content-Length (discarded); fewer is an error.
    let body = match declared {
        Some(d) if d > body.len() => {
            return Err(ParseError::ContentLength {
                declared: d,
                actual: body.len(),
            })
        }
        Some(d) => body.get(..d).unwrap_or_default(),
        None => body,
    };
    Ok(Raw {
        start,
        headers,
        body,
    })
}

fn first<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn check_mandatory(raw: &Raw<'_>) -> Result<(), ParseError> {
    let get = |name: &'static str| first(&raw.headers, name).ok_or(ParseError::MissingHeader(name));
    ViaInfo::parse(get("Via")?).ok_or(ParseError::InvalidHeader("Via"))?;
    NameAddr::parse(get("From")?).ok_or(ParseError::InvalidHeader("From"))?;
    NameAddr::parse(get("To")?).ok_or(ParseError::InvalidHeader("To"))?;
    if get("Call-ID")?.is_empty() {
        return Err(ParseError::InvalidHeader("Call-ID"));
    }
    let (_, cseq_method) =
        syntax::parse_cseq(get("CSeq")?).ok_or(ParseError::InvalidHeader("CSeq"))?;
    if let StartLine::Request { method, .. } = &raw.start {
        if cseq_method != method {
            return Err(ParseError::CSeqMismatch);
        }
    }
    Ok(())
}

fn render(raw: &Raw<'_>) -> Vec<u8> {
    let mut out = match &raw.start {
        StartLine::Request { method, uri } => format!("{method} {uri} SIP/2.0\r\n"),
        StartLine::Response { code, reason } => {
            let reason = if reason.is_empty() {
                reason_phrase(*code)
            } else {
                reason
            };
            format!("SIP/2.0 {code} {reason}\r\n")
        }
    };
    for (name, value) in &raw.headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", raw.body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(raw.body);
    bytes
}

/// Parses one complete SIP message (a datagram, or a frame cut by [`stream_frame_len`]).
pub fn parse(bytes: &[u8]) -> Result<rsip::SipMessage, ParseError> {
    let raw = parse_raw(bytes)?;
    check_mandatory(&raw)?;
    let parsed = rsip_parse(&render(&raw));
    // rsip ends a URI's user part at its first `.` unless an `@` comes first, so a user part
    // holding both `;` or `:` and a `.` (RFC 4475 §3.1.1.9: `sip:user;par=u%40example.net@…`)
    // fails its grammar. `%2E` means the same as `.` there (RFC 3261 §19.1.4, `.` is unreserved),
    // so such a Request-URI is handed over with its dots escaped. Only messages rsip refused take
    // this path: every other Request-URI reaches the stack exactly as sent.
    match (parsed, &raw.start) {
        (Err(ParseError::Grammar), StartLine::Request { method, uri }) => {
            let escaped = syntax::escape_user_dots(uri).ok_or(ParseError::Grammar)?;
            let raw = Raw {
                start: StartLine::Request {
                    method: method.clone(),
                    uri: escaped,
                },
                headers: raw.headers,
                body: raw.body,
            };
            rsip_parse(&render(&raw))
        }
        (parsed, _) => parsed,
    }
}

fn rsip_parse(text: &[u8]) -> Result<rsip::SipMessage, ParseError> {
    // rsip is a nom parser over text we have already validated; the unwind guard is a last line
    // of defence so that a grammar corner it mishandles costs one message, not the process.
    std::panic::catch_unwind(|| rsip::SipMessage::try_from(text))
        .map_err(|_| ParseError::Grammar)?
        .map_err(|_| ParseError::Grammar)
}

/// TCP framing: the length of the first complete message in `buf` (leading CRLF keep-alives
/// included, so the caller drains them), or `None` while more bytes are needed. A buffer holding
/// only keep-alives is one frame of its own.
pub fn stream_frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let ka = skip_keepalive(buf);
    let rest = buf.get(ka..).unwrap_or_default();
    if rest.is_empty() {
        return Ok((ka > 0).then_some(ka));
    }
    let Some((head_len, body_start)) = find_head_end(rest) else {
        return if rest.len() > MAX_MESSAGE {
            Err(ParseError::TooLarge)
        } else {
            Ok(None)
        };
    };
    let head = String::from_utf8_lossy(rest.get(..head_len).unwrap_or_default());
    let lines: Vec<&str> = head
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip(1)
        .collect();
    let mut content_length = 0;
    for (name, value) in header_lines(&lines, false)? {
        if name.eq_ignore_ascii_case("Content-Length") {
            content_length = parse_content_length(&value)?;
        }
    }
    let total = body_start.saturating_add(content_length);
    if total > MAX_MESSAGE {
        return Err(ParseError::TooLarge);
    }
    Ok((rest.len() >= total).then_some(ka + total))
}

/// Builds the stateless answer to a request that failed to parse, if enough of it is readable to
/// address one (Via, From, To, Call-ID, CSeq) and it is not an ACK. `to_tag` is used when the To
/// header has none.
pub(crate) fn reject_malformed(bytes: &[u8], err: &ParseError, to_tag: &str) -> Option<Vec<u8>> {
    let status = err.response_status()?;
    let bytes = bytes.get(..bytes.len().min(MAX_MESSAGE))?;
    let bytes = bytes.get(skip_keepalive(bytes)..)?;
    let head_len = find_head_end(bytes).map_or(bytes.len(), |(h, _)| h);
    let head = String::from_utf8_lossy(bytes.get(..head_len)?);
    let lines: Vec<&str> = head
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let (start, rest) = lines.split_first()?;
    let method = start.split(' ').next()?;
    if !syntax::is_token(method)
        || method.eq_ignore_ascii_case("ACK")
        || start.get(..4)?.eq_ignore_ascii_case("SIP/")
    {
        return None;
    }
    let headers = header_lines(rest, false).ok()?;
    let clean = |v: &str| !v.is_empty() && !syntax::has_stray_control(v);
    let vias: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Via"))
        .map(|(_, v)| v.as_str())
        .collect();
    let top_via = vias.first()?;
    ViaInfo::parse(top_via)?;
    let mut out = format!("SIP/2.0 {status} {}\r\n", reason_phrase(status));
    for via in vias.iter().filter(|v| clean(v)) {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        let value = first(&headers, name).filter(|v| clean(v))?;
        let value = if name == "To" {
            syntax::with_tag(value, to_tag)
        } else {
            value.to_string()
        };
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if status == 400 {
        out.push_str(&format!("Warning: 399 switchboard \"{err}\"\r\n"));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// The standard reason phrase for a status code.
pub fn reason_phrase(code: u16) -> &'static str {
    known_reason(code).unwrap_or(match code {
        100..=199 => "Session Progress",
        200..=299 => "OK",
        300..=399 => "Redirection",
        400..=499 => "Client Error",
        500..=599 => "Server Error",
        _ => "Global Failure",
    })
}

fn known_reason(code: u16) -> Option<&'static str> {
    Some(match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => return None,
    })
}

fn split_header(h: &Header) -> (String, String) {
    let text = h.to_string();
    match text.split_once(':') {
        Some((n, v)) => (
            n.trim().to_string(),
            v.strip_prefix(' ').unwrap_or(v).to_string(),
        ),
        None => (text, String::new()),
    }
}

fn is_content_length(h: &Header) -> bool {
    matches!(h, Header::ContentLength(_))
        || matches!(h, Header::Other(n, _) if n.eq_ignore_ascii_case("Content-Length") || n.eq_ignore_ascii_case("l"))
}

/// Serialises a message for the wire with a correct Content-Length and standard reason phrases.
pub fn to_bytes(msg: &rsip::SipMessage) -> Vec<u8> {
    let mut out = match msg {
        rsip::SipMessage::Request(r) => format!("{} {} SIP/2.0\r\n", r.method, r.uri),
        rsip::SipMessage::Response(r) => {
            let code = r.status_code.code();
            let reason = match &r.status_code {
                rsip::StatusCode::Other(_, reason) if !reason.is_empty() && reason != "Other" => {
                    reason.as_str()
                }
                _ => reason_phrase(code),
            };
            format!("SIP/2.0 {code} {reason}\r\n")
        }
    };
    for h in msg.headers().iter().filter(|h| !is_content_length(h)) {
        out.push_str(&h.to_string());
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", msg.body().len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(msg.body());
    bytes
}

/// A response to `req` (RFC 3261 §8.2.6): Vias, From, To (+ `to_tag` unless To has one), Call-ID,
/// CSeq, and an empty body.
pub fn response_to(req: &rsip::Request, status: u16, to_tag: Option<&str>) -> rsip::Response {
    let mut headers = rsip::Headers::default();
    for h in req.headers.iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(h.clone())
            }
            Header::To(to) => {
                let value = match to_tag {
                    Some(tag) if !tag.is_empty() => syntax::with_tag(to.value(), tag),
                    _ => to.value().to_string(),
                };
                headers.push(Header::To(rsip::headers::To::from(value)));
            }
            _ => {}
        }
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::from(
        String::from("0"),
    )));
    rsip::Response {
        status_code: status.into(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// Parses a sip:/sips: URI as found in Contact or Route (angle brackets and URI headers dropped),
/// guarding rsip against input it was never meant to see.
pub fn parse_uri(text: &str) -> Option<rsip::Uri> {
    let text = text.trim().trim_start_matches('<').trim_end_matches('>');
    let text = text.split('?').next()?;
    let scheme = text.split_once(':')?.0.to_ascii_lowercase();
    if text.len() > 1024
        || text.contains(char::is_whitespace)
        || !matches!(scheme.as_str(), "sip" | "sips")
    {
        return None;
    }
    let uri = std::panic::catch_unwind(|| rsip::Uri::try_from(text))
        .ok()?
        .ok()?;
    uri.scheme.is_some().then_some(uri)
}

/// The first value of the header `name` (full or compact name, any case).
pub fn header(msg: &impl HasHeaders, name: &str) -> Option<String> {
    headers_named(msg, name).into_iter().next()
}

/// Every value of the header `name`, in message order.
pub fn headers_named(msg: &impl HasHeaders, name: &str) -> Vec<String> {
    let name = syntax::expand_compact(name).unwrap_or(name);
    msg.headers()
        .iter()
        .map(split_header)
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

pub fn call_id(msg: &impl HasHeaders) -> Option<String> {
    header(msg, "Call-ID").filter(|c| !c.is_empty())
}

pub fn cseq(msg: &impl HasHeaders) -> Option<(u32, Method)> {
    let value = header(msg, "CSeq")?;
    let (seq, method) = syntax::parse_cseq(&value)?;
    Some((seq, method.parse().ok()?))
}

pub fn from_tag(msg: &impl HasHeaders) -> Option<String> {
    syntax::tag_of(&header(msg, "From")?)
}

pub fn to_tag(msg: &impl HasHeaders) -> Option<String> {
    syntax::tag_of(&header(msg, "To")?)
}

/// The caller: the user part of the From URI (`"+551199990000"`).
pub fn from_user(msg: &impl HasHeaders) -> Option<String> {
    syntax::uri_user(&NameAddr::parse(&header(msg, "From")?)?.uri)
}

/// The To user part; see [`request_uri_user`] for the number actually dialled.
pub fn to_user(msg: &impl HasHeaders) -> Option<String> {
    syntax::uri_user(&NameAddr::parse(&header(msg, "To")?)?.uri)
}

/// The dialled number or extension: the Request-URI's user part (`"7000"`).
pub fn request_uri_user(req: &rsip::Request) -> Option<String> {
    syntax::uri_user(&req.uri.to_string())
}

/// The From display name, if the caller sent one (`"Alice"`).
pub fn from_display_name(msg: &impl HasHeaders) -> Option<String> {
    NameAddr::parse(&header(msg, "From")?)?.display
}

/// The branch parameter of the top Via.
pub fn branch(msg: &impl HasHeaders) -> Option<String> {
    ViaInfo::parse(&header(msg, "Via")?)?
        .branch()
        .map(str::to_string)
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;

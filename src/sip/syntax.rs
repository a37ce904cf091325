//! Small, forgiving readers for the header values the stack itself relies on (Via, name-addr, CSeq).
//!
//! rsip's typed headers are strict in some places and lenient in odd ones (a bare `<sip:a@b>` parses
//! as user `<sip`), so the values that drive routing and matching are read here, from the untyped
//! strings, with rules that never panic on hostile input.

/// Full names for the compact forms of RFC 3261 §7.3.3 and the extensions that define one.
pub(crate) fn expand_compact(name: &str) -> Option<&'static str> {
    let [c] = name.as_bytes() else {
        return None;
    };
    Some(match c.to_ascii_lowercase() {
        b'a' => "Accept-Contact",
        b'b' => "Referred-By",
        b'c' => "Content-Type",
        b'd' => "Request-Disposition",
        b'e' => "Content-Encoding",
        b'f' => "From",
        b'i' => "Call-ID",
        b'j' => "Reject-Contact",
        b'k' => "Supported",
        b'l' => "Content-Length",
        b'm' => "Contact",
        b'n' => "Identity-Info",
        b'o' => "Event",
        b'r' => "Refer-To",
        b's' => "Subject",
        b't' => "To",
        b'u' => "Allow-Events",
        b'v' => "Via",
        b'x' => "Session-Expires",
        b'y' => "Identity",
        _ => return None,
    })
}

/// RFC 3261 `token` characters, the only ones allowed in header names and methods.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
                )
        })
}

/// Walks `value`, calling `visit(index, char)` for every character outside quoted strings (the
/// quotes and their quoted-pairs, `\"` `\\`…, excluded) until it returns `false`. Returns whether
/// a quoted string was left open.
fn outside_quotes(value: &str, mut visit: impl FnMut(usize, char) -> bool) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    for (i, ch) in value.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ if quoted => {}
            _ if !visit(i, ch) => return false,
            _ => {}
        }
    }
    quoted
}

/// Splits at every `sep` outside quoted strings and `<...>`, keeping empty pieces.
fn split_outside(value: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut angle, mut start) = (false, 0);
    outside_quotes(value, |i, ch| {
        match ch {
            '<' => angle = true,
            '>' => angle = false,
            c if c == sep && !angle => {
                parts.push(value.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
        true
    });
    parts.push(value.get(start..).unwrap_or(""));
    parts
}

/// Splits a header value at top-level commas (outside quotes and `<...>`), as allowed for Via,
/// Route, Record-Route and Contact lists. Elements are trimmed; empty ones (`a,,b`) are kept, for
/// the caller to refuse or skip.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    split_outside(value, ',')
        .into_iter()
        .map(str::trim)
        .collect()
}

/// Where the `<` of a name-addr is (outside a quoted display name), and whether a quoted string
/// was left open.
fn angle_open(value: &str) -> (Option<usize>, bool) {
    let mut open = None;
    let unterminated = outside_quotes(value, |i, ch| {
        if ch == '<' {
            open = Some(i);
        }
        open.is_none()
    });
    (open, unterminated)
}

/// Whether a header value carries a control character outside a quoted-pair. RFC 3261 lets a
/// quoted string hold any octet but CR and LF as `\` + octet (RFC 4475 §3.1.1.2 puts BEL, NUL and
/// DEL in a display name); anywhere else, and CR or LF anywhere, a control character is either an
/// error or an attempt to smuggle a line into what is rendered from the value.
pub(crate) fn has_stray_control(value: &str) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    for ch in value.chars() {
        if ch == '\r' || ch == '\n' {
            return true;
        }
        if escaped {
            escaped = false;
            continue;
        }
        match ch {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c.is_control() && c != '\t' => return true,
            _ => {}
        }
    }
    false
}

/// What RFC 3261's grammar forbids in one element of an address header (From, To, Contact, Route,
/// Record-Route) or a Via, and lenient readers would silently skip (RFC 4475 §3.1.2.1, §3.1.2.13):
/// an empty parameter (`;;`, a trailing `;`), and an addr-spec (no `<>`) whose URI holds `?` or
/// `,`, which §20 requires to be enclosed in `<>`.
pub(crate) fn element_problem(value: &str) -> Option<&'static str> {
    let value = value.trim();
    if value.is_empty() {
        return Some("an empty list element");
    }
    let (open, quoted) = angle_open(value);
    if quoted {
        return Some("an unterminated quoted string");
    }
    let tail = match open {
        Some(i) => {
            let after = value.get(i..).unwrap_or("");
            after
                .find('>')
                .and_then(|c| after.get(c + 1..))
                .unwrap_or("")
        }
        None => value,
    };
    let mut parts = split_outside(tail, ';').into_iter();
    let head = parts.next().unwrap_or("");
    if open.is_none() && head.contains(['?', ',']) {
        return Some("a URI with `?` or `,` outside `<>`");
    }
    if parts.any(|p| p.trim().is_empty()) {
        return Some("an empty parameter");
    }
    None
}

/// Parses `;name=value;flag` parameter lists. Leading text before the first `;` is ignored.
pub(crate) fn params(s: &str) -> Vec<(String, Option<String>)> {
    s.split(';')
        .skip(1)
        .filter_map(|p| {
            let p = p.trim();
            if p.is_empty() {
                return None;
            }
            Some(match p.split_once('=') {
                Some((n, v)) => (
                    n.trim().to_string(),
                    Some(v.trim().trim_matches('"').to_string()),
                ),
                None => (p.to_string(), None),
            })
        })
        .collect()
}

fn find_param<'a>(
    params: &'a [(String, Option<String>)],
    name: &str,
) -> Option<&'a (String, Option<String>)> {
    params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// A From/To/Contact/Route value: `"Display" <uri>;params` or `uri;params`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NameAddr {
    pub display: Option<String>,
    pub uri: String,
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    pub fn parse(value: &str) -> Option<NameAddr> {
        let value = value.trim();
        let (open, quoted) = angle_open(value);
        if quoted {
            return None;
        }
        let (display, uri, rest) = match open {
            Some(i) => {
                let after = value.get(i + 1..)?;
                let close = after.find('>')?;
                let display = value.get(..i)?.trim().trim_matches('"').trim();
                let display = (!display.is_empty()).then(|| display.to_string());
                (display, after.get(..close)?.trim(), after.get(close + 1..)?)
            }
            // In the addr-spec form, parameters after the URI belong to the header (RFC 3261 §20).
            None => match value.find(';') {
                Some(i) => (None, value.get(..i)?.trim(), value.get(i..)?),
                None => (None, value, ""),
            },
        };
        if uri.is_empty() || uri.contains(['<', '>', '"', ' ']) {
            return None;
        }
        Some(NameAddr {
            display,
            uri: uri.to_string(),
            params: params(rest),
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name).and_then(|(_, v)| v.as_deref())
    }

    /// Whether the URI itself (not the header) carries `;name`, as in `<sip:proxy;lr>`.
    pub fn uri_has_param(&self, name: &str) -> bool {
        let uri = self.uri.split('?').next().unwrap_or_default();
        find_param(&params(uri), name).is_some()
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag").filter(|t| !t.is_empty())
    }
}

/// The tag parameter of a From or To value.
pub(crate) fn tag_of(value: &str) -> Option<String> {
    NameAddr::parse(value).and_then(|n| n.tag().map(str::to_string))
}

/// The value without its tag parameter (what a dialog stores as the local or remote URI).
pub(crate) fn without_tag(value: &str) -> String {
    match NameAddr::parse(value) {
        Some(n) => {
            let mut out = match &n.display {
                Some(d) => format!("\"{}\" <{}>", d.replace('"', ""), n.uri),
                None => format!("<{}>", n.uri),
            };
            for (name, v) in n
                .params
                .iter()
                .filter(|(name, _)| !name.eq_ignore_ascii_case("tag"))
            {
                out.push(';');
                out.push_str(name);
                if let Some(v) = v {
                    out.push('=');
                    out.push_str(v);
                }
            }
            out
        }
        None => value.trim().to_string(),
    }
}

/// Appends `;tag=` unless the value already carries a tag.
pub(crate) fn with_tag(value: &str, tag: &str) -> String {
    if tag_of(value).is_some() {
        value.to_string()
    } else {
        format!("{};tag={}", value.trim_end(), tag)
    }
}

/// The user part of a sip:, sips: or tel: URI, percent-decoded (`sip:%2B5511@x` → `+5511`).
pub(crate) fn uri_user(uri: &str) -> Option<String> {
    let uri = uri.trim().trim_start_matches('<').trim_end_matches('>');
    let (scheme, rest) = uri.split_once(':')?;
    let user = if scheme.eq_ignore_ascii_case("tel") {
        rest.split(';').next()?
    } else if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        let (userinfo, _) = rest.split_once('@')?;
        // user;param=x:password — the user ends at ':' (password) or ';' (user params)
        userinfo.split([':', ';']).next()?
    } else {
        return None;
    };
    let user = percent_decode(user);
    (!user.is_empty()).then_some(user)
}

/// The URI with every `.` of its user part written `%2E` (the same URI, RFC 3261 §19.1.4), or
/// `None` when it has no user part or no dot there. A literal `@` only ever ends the user part.
pub(crate) fn escape_user_dots(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    let (user, host) = rest.split_once('@')?;
    user.contains('.')
        .then(|| format!("{scheme}:{}@{host}", user.replace('.', "%2E")))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        if b == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parts of one Via value the transaction layer needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ViaInfo {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
}

impl ViaInfo {
    /// `SIP/2.0/UDP host[:port];params`; LWS around each `/` is allowed (`SIP / 2.0 / UDP`).
    pub fn parse(value: &str) -> Option<ViaInfo> {
        let ([name, version, transport], rest) = sent_protocol(value)?;
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return None;
        }
        let rest = rest.trim_start();
        let sent_by = rest.split(';').next()?.trim();
        let (host, port) = match sent_by.rsplit_once(':') {
            // Bracketed IPv6 without a port has a ':' inside the brackets.
            Some((h, p)) if !p.contains(']') => (h.trim(), Some(p.trim().parse::<u16>().ok()?)),
            _ => (sent_by, None),
        };
        if host.is_empty() || host.contains(|c: char| c.is_ascii_whitespace()) {
            return None;
        }
        Some(ViaInfo {
            transport: transport.to_ascii_uppercase(),
            host: host.to_string(),
            port,
            params: params(rest),
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name).and_then(|(_, v)| v.as_deref())
    }

    pub fn has_param(&self, name: &str) -> bool {
        find_param(&self.params, name).is_some()
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch").filter(|b| !b.is_empty())
    }

    /// `host:port` as written, lower-cased: the sent-by used to match transactions.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{}", self.host.to_ascii_lowercase(), p),
            None => self.host.to_ascii_lowercase(),
        }
    }
}

/// The three tokens of a Via's sent-protocol and what follows it. RFC 3261 writes the `/` as
/// SLASH = SWS "/" SWS, so `SIP  /   2.0 /UDP` (RFC 4475 §3.1.1.1) is the same as `SIP/2.0/UDP`;
/// at least one LWS must then separate the protocol from the sent-by.
fn sent_protocol(value: &str) -> Option<([&str; 3], &str)> {
    let mut rest = value.trim_start();
    let mut tokens = [""; 3];
    for (i, token) in tokens.iter_mut().enumerate() {
        if i > 0 {
            rest = rest.trim_start().strip_prefix('/')?.trim_start();
        }
        let end = rest
            .find(|c: char| c == '/' || c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        *token = rest.get(..end).filter(|t| is_token(t))?;
        rest = rest.get(end..)?;
    }
    rest.starts_with(|c: char| c.is_ascii_whitespace())
        .then_some((tokens, rest))
}

/// A Via value with its sent-protocol written without LWS (`SIP/2.0/UDP host;…`), the form
/// rsip and every reader after the parser expect; `None` when it has no valid sent-protocol.
pub(crate) fn compact_via(value: &str) -> Option<String> {
    let ([name, version, transport], rest) = sent_protocol(value)?;
    Some(format!("{name}/{version}/{transport} {}", rest.trim()))
}

/// `CSeq: 4711 INVITE` → (4711, "INVITE").
pub(crate) fn parse_cseq(value: &str) -> Option<(u32, &str)> {
    let mut it = value.split_ascii_whitespace();
    let seq = it.next()?.parse::<u32>().ok()?;
    let method = it.next()?;
    if it.next().is_some() || !is_token(method) {
        return None;
    }
    Some((seq, method))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_reads_display_names_tags_and_bare_uris() {
        let n =
            NameAddr::parse("\"Alice, <the> caller\" <sip:alice@10.0.0.2;transport=udp>;tag=a1;x")
                .unwrap();
        assert_eq!(n.display.as_deref(), Some("Alice, <the> caller"));
        assert_eq!(n.uri, "sip:alice@10.0.0.2;transport=udp");
        assert_eq!(n.tag(), Some("a1"));

        let bare = NameAddr::parse("sip:bob@example.com;tag=xyz").unwrap();
        assert_eq!(bare.uri, "sip:bob@example.com");
        assert_eq!(bare.tag(), Some("xyz"));
        assert_eq!(NameAddr::parse("<>"), None);
        assert_eq!(NameAddr::parse("\"unterminated <sip:a@b"), None);
    }

    #[test]
    fn tags_are_added_once_and_removed_cleanly() {
        assert_eq!(with_tag("<sip:7000@gw>", "t1"), "<sip:7000@gw>;tag=t1");
        assert_eq!(
            with_tag("<sip:7000@gw>;tag=old", "t1"),
            "<sip:7000@gw>;tag=old"
        );
        assert_eq!(
            without_tag("Bob <sip:b@x>;tag=9;foo=bar"),
            "\"Bob\" <sip:b@x>;foo=bar"
        );
    }

    #[test]
    fn users_are_read_from_sip_sips_and_tel_uris() {
        assert_eq!(
            uri_user("sip:+551130000000@10.0.0.1:5060;user=phone").as_deref(),
            Some("+551130000000")
        );
        assert_eq!(uri_user("sips:7000@pbx.example").as_deref(), Some("7000"));
        assert_eq!(
            uri_user("tel:+551130000000;phone-context=x").as_deref(),
            Some("+551130000000")
        );
        assert_eq!(uri_user("sip:%2B5511@gw").as_deref(), Some("+5511"));
        assert_eq!(uri_user("sip:alice:secret@gw").as_deref(), Some("alice"));
        assert_eq!(uri_user("sip:gw.example"), None);
        assert_eq!(uri_user("mailto:a@b"), None);
        assert_eq!(uri_user("sip:%@gw").as_deref(), Some("%"));
    }

    #[test]
    fn via_values_yield_transport_sent_by_and_params() {
        let v =
            ViaInfo::parse("SIP/2.0/udp 192.0.2.4:5062;branch=z9hG4bK77;rport;received=1.2.3.4")
                .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.sent_by(), "192.0.2.4:5062");
        assert_eq!(v.branch(), Some("z9hG4bK77"));
        assert!(v.has_param("rport"));
        assert_eq!(v.param("rport"), None);
        assert_eq!(v.param("received"), Some("1.2.3.4"));
        assert_eq!(
            ViaInfo::parse("SIP/2.0/TCP pbx.example").unwrap().port,
            None
        );
        let spaced =
            ViaInfo::parse("SIP  / 2.0 /tcp  pbx.example:5070 ; branch = z9hG4bK1").unwrap();
        assert_eq!(
            (spaced.transport.as_str(), spaced.sent_by()),
            ("TCP", "pbx.example:5070".into())
        );
        assert_eq!(spaced.branch(), Some("z9hG4bK1"));
        for bad in [
            "",
            "SIP/2.0/UDP",
            "SIP/3.0/UDP h",
            "SIP/2.0/UDP h:99999",
            "HTTP/2.0/UDP h",
            "x",
        ] {
            assert_eq!(ViaInfo::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn lists_split_only_at_top_level_commas() {
        assert_eq!(
            split_list("SIP/2.0/UDP a;branch=1 , SIP/2.0/UDP b;branch=2"),
            vec!["SIP/2.0/UDP a;branch=1", "SIP/2.0/UDP b;branch=2"]
        );
        assert_eq!(
            split_list("\"a, b\" <sip:x@y>, <sip:z@w;a=1,2>"),
            vec!["\"a, b\" <sip:x@y>", "<sip:z@w;a=1,2>"]
        );
        assert_eq!(parse_cseq("12 INVITE"), Some((12, "INVITE")));
        assert_eq!(parse_cseq("x INVITE"), None);
        assert_eq!(parse_cseq("1 INVITE extra"), None);
    }

    #[test]
    fn every_compact_form_expands_case_insensitively() {
        for (c, full) in [
            ("i", "Call-ID"),
            ("M", "Contact"),
            ("v", "Via"),
            ("l", "Content-Length"),
            ("k", "Supported"),
        ] {
            assert_eq!(expand_compact(c), Some(full));
        }
        assert_eq!(expand_compact("q"), None);
        assert_eq!(expand_compact("via"), None);
    }
}

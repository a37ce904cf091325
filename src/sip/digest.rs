//! Digest authentication towards a SIP trunk (RFC 3261 §22, RFC 2617, RFC 8760): answering a
//! 401/407 challenge by re-sending the request with credentials.
//!
//! The client nonce comes in as an argument so this stays free of randomness. The password is
//! only ever hashed: it is not stored, logged, or put in any error.

use rsip::headers::auth::{Algorithm, AuthQop};
use rsip::{Header, Request, Response};

use super::message;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    #[error("response {0} is not an authentication challenge")]
    NotAChallenge(u16),
    #[error("the challenge has no usable Digest parameters")]
    BadChallenge,
    #[error("digest algorithm {0} is not supported")]
    UnsupportedAlgorithm(String),
    #[error("the challenge only allows qop=auth-int")]
    UnsupportedQop,
    #[error("the request has no CSeq to advance")]
    NoCSeq,
}

/// Trunk credentials. `Debug` never shows the password.
#[derive(Clone)]
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `Digest key=value, key="quoted, value"` → pairs, lower-cased keys (None when not Digest).
pub fn challenge_params(value: &str) -> Option<Vec<(String, String)>> {
    let (scheme, rest) = value.trim().split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut params = Vec::new();
    let mut rest = rest.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (val, remaining) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (quoted.get(..end)?, quoted.get(end + 1..)?)
            }
            None => match after.find(',') {
                Some(i) => (after.get(..i)?.trim(), after.get(i..)?),
                None => (after.trim(), ""),
            },
        };
        params.push((key.trim().to_ascii_lowercase(), val.to_string()));
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(params)
}

fn quote_safe(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

/// Re-issues `request` answering the 401/407 `challenge`: CSeq advanced by one, Via removed (the
/// transaction layer adds a fresh one), and an Authorization / Proxy-Authorization header added.
/// `nc` counts how many times this nonce was used (1 for the first).
pub fn authorize(
    request: &Request,
    challenge: &Response,
    credentials: &Credentials<'_>,
    cnonce: &str,
    nc: u8,
) -> Result<Request, DigestError> {
    let code = challenge.status_code.code();
    let (challenge_header, proxy) = match code {
        401 => ("WWW-Authenticate", false),
        407 => ("Proxy-Authenticate", true),
        _ => return Err(DigestError::NotAChallenge(code)),
    };
    let params = message::headers_named(challenge, challenge_header)
        .iter()
        .find_map(|v| challenge_params(v))
        .ok_or(DigestError::BadChallenge)?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (Some(realm), Some(nonce)) = (get("realm"), get("nonce")) else {
        return Err(DigestError::BadChallenge);
    };
    let algorithm = match get("algorithm") {
        None => Algorithm::Md5,
        Some(a) if a.eq_ignore_ascii_case("MD5") => Algorithm::Md5,
        Some(a) if a.eq_ignore_ascii_case("SHA-256") || a.eq_ignore_ascii_case("SHA256") => {
            Algorithm::Sha256
        }
        Some(a) => {
            return Err(DigestError::UnsupportedAlgorithm(
                quote_safe(a).chars().take(32).collect(),
            ))
        }
    };
    let qop = match get("qop") {
        None => None,
        Some(list)
            if list
                .split(',')
                .any(|q| q.trim().eq_ignore_ascii_case("auth")) =>
        {
            Some(AuthQop::Auth {
                cnonce: quote_safe(cnonce),
                nc: nc.max(1),
            })
        }
        Some(_) => return Err(DigestError::UnsupportedQop),
    };
    let digest = rsip::services::DigestGenerator {
        username: credentials.username,
        password: credentials.password,
        nonce,
        uri: &request.uri,
        realm,
        method: &request.method,
        qop: qop.as_ref(),
        algorithm,
    }
    .compute();

    let algorithm_name = if algorithm == Algorithm::Sha256 {
        "SHA-256"
    } else {
        "MD5"
    };
    let mut value = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{digest}\", algorithm={algorithm_name}",
        quote_safe(credentials.username),
        quote_safe(realm),
        quote_safe(nonce),
        request.uri,
    );
    if let Some(AuthQop::Auth { cnonce, nc }) = &qop {
        // rsip hashes nc in decimal; servers hash the nc string as sent, so send it the same way.
        value.push_str(&format!(", qop=auth, nc={nc:08}, cnonce=\"{cnonce}\""));
    }
    if let Some(opaque) = get("opaque") {
        value.push_str(&format!(", opaque=\"{}\"", quote_safe(opaque)));
    }

    let (seq, method) = message::cseq(request).ok_or(DigestError::NoCSeq)?;
    let mut headers: Vec<Header> = request
        .headers
        .iter()
        .filter(|h| {
            !matches!(
                h,
                Header::Via(_)
                    | Header::CSeq(_)
                    | Header::Authorization(_)
                    | Header::ProxyAuthorization(_)
            )
        })
        .cloned()
        .collect();
    headers.push(Header::CSeq(
        format!("{} {method}", seq.wrapping_add(1)).into(),
    ));
    headers.push(if proxy {
        Header::ProxyAuthorization(value.into())
    } else {
        Header::Authorization(value.into())
    });
    Ok(Request {
        headers: headers.into(),
        ..request.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::fixtures::request;
    use crate::sip::message::{header, response_to};

    fn invite() -> Request {
        request(
            "INVITE sip:+5511911112222@trunk.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa\r\n\
From: <sip:7000@gw>;tag=g1\r\nTo: <sip:+5511911112222@trunk.example>\r\nCall-ID: auth@gw\r\nCSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n",
        )
    }

    fn challenge(code: u16, name: &str, value: &str) -> Response {
        let mut r = response_to(&invite(), code, Some("t"));
        r.headers.push(Header::Other(name.into(), value.into()));
        // Reparse so the header is typed the way a received one would be.
        match message::parse(&message::to_bytes(&r.into())).unwrap() {
            rsip::SipMessage::Response(r) => r,
            rsip::SipMessage::Request(_) => unreachable!(),
        }
    }

    const CREDS: Credentials<'static> = Credentials {
        username: "gw-user",
        password: "s3cret-pw",
    };

    // Expected responses computed independently (Python hashlib) from RFC 2617's formulas.
    #[test]
    fn a_401_with_qop_auth_is_answered_with_the_rfc_2617_digest() {
        let c = challenge(401, "WWW-Authenticate", "Digest realm=\"trunk.example\", nonce=\"abc123\", qop=\"auth,auth-int\", opaque=\"xyz\"");
        let retry = authorize(&invite(), &c, &CREDS, "0a4f113b", 1).unwrap();
        let auth = header(&retry, "Authorization").unwrap();
        assert!(
            auth.contains("response=\"faa4ed007931168ba39aa3f316d7e6a6\""),
            "{auth}"
        );
        assert!(auth.contains("qop=auth, nc=00000001, cnonce=\"0a4f113b\""));
        assert!(
            auth.contains("opaque=\"xyz\"")
                && auth.contains("uri=\"sip:+5511911112222@trunk.example\"")
        );
        assert_eq!(
            message::cseq(&retry),
            Some((2, rsip::Method::Invite)),
            "a new transaction needs a new CSeq"
        );
        assert_eq!(message::headers_named(&retry, "Via"), Vec::<String>::new());
        assert_eq!(message::call_id(&retry).as_deref(), Some("auth@gw"));
        assert!(
            !format!("{retry:?}{CREDS:?}").contains("s3cret-pw"),
            "the password never shows"
        );
    }

    #[test]
    fn a_407_without_qop_gets_proxy_authorization() {
        let c = challenge(
            407,
            "Proxy-Authenticate",
            "Digest realm=\"proxy\",nonce=\"n0nce\",algorithm=MD5",
        );
        let retry = authorize(&invite(), &c, &CREDS, "cn", 1).unwrap();
        let auth = header(&retry, "Proxy-Authorization").unwrap();
        assert!(
            auth.contains("response=\"8ab4fa7369637e2a4f8eec43c06996e9\""),
            "{auth}"
        );
        assert!(!auth.contains("qop"));
        assert_eq!(header(&retry, "Authorization"), None);
    }

    #[test]
    fn unusable_challenges_are_refused_without_echoing_secrets() {
        let ok = response_to(&invite(), 200, Some("t"));
        assert_eq!(
            authorize(&invite(), &ok, &CREDS, "c", 1).unwrap_err(),
            DigestError::NotAChallenge(200)
        );
        let basic = challenge(401, "WWW-Authenticate", "Basic realm=\"x\"");
        assert_eq!(
            authorize(&invite(), &basic, &CREDS, "c", 1).unwrap_err(),
            DigestError::BadChallenge
        );
        let sess = challenge(
            401,
            "WWW-Authenticate",
            "Digest realm=\"x\", nonce=\"n\", algorithm=MD5-sess",
        );
        assert!(matches!(
            authorize(&invite(), &sess, &CREDS, "c", 1),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        let int = challenge(
            401,
            "WWW-Authenticate",
            "Digest realm=\"x\", nonce=\"n\", qop=\"auth-int\"",
        );
        assert_eq!(
            authorize(&invite(), &int, &CREDS, "c", 1).unwrap_err(),
            DigestError::UnsupportedQop
        );
        let broken = challenge(401, "WWW-Authenticate", "Digest realm=\"x, nonce=\"n");
        assert_eq!(
            authorize(&invite(), &broken, &CREDS, "c", 1).unwrap_err(),
            DigestError::BadChallenge
        );
    }
}

//! RFC 3261 §12 dialogs: the state two user agents share after an INVITE succeeds — tags, route
//! set, remote target, CSeq counters — and the in-dialog requests and responses built from it.

use rsip::{Header, Method, Request, Response};

use super::message;
use super::syntax::{self, NameAddr};
use super::Peer;

/// Methods we put in `Allow` on a 2xx, so phones know INFO (DTMF) works.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO";

/// Why a dialog could not be created from the messages given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    #[error("missing or malformed {0} header")]
    Header(&'static str),
    #[error("no usable Contact to send in-dialog requests to")]
    NoContact,
    #[error("status {0} does not establish a dialog")]
    NotEstablishing(u16),
}

/// Which side of the call we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We placed the call (outbound, callbacks).
    Uac,
    /// We answered it (inbound).
    Uas,
}

#[derive(Clone, Debug)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// Where in-dialog requests go: the signalling source, which survives NAT better than the
    /// Contact a phone behind it advertises.
    pub peer: Peer,
    pub role: Role,
    local_uri: String,
    remote_uri: String,
    remote_target: rsip::Uri,
    route_set: Vec<String>,
    local_contact: rsip::Uri,
    local_cseq: u32,
    remote_cseq: Option<u32>,
    invite_cseq: u32,
}

fn contact_uri(msg: &impl rsip::message::HasHeaders) -> Option<rsip::Uri> {
    let contact = message::header(msg, "Contact")?;
    message::parse_uri(&NameAddr::parse(&contact)?.uri)
}

fn required(
    msg: &impl rsip::message::HasHeaders,
    name: &'static str,
) -> Result<String, DialogError> {
    message::header(msg, name)
        .filter(|v| NameAddr::parse(v).is_some())
        .ok_or(DialogError::Header(name))
}

fn with_body(headers: &mut Vec<Header>, body: Option<(&str, &[u8])>) -> Vec<u8> {
    headers.retain(|h| !matches!(h, Header::ContentLength(_) | Header::ContentType(_)));
    let body = match body {
        Some((content_type, bytes)) => {
            headers.push(Header::ContentType(content_type.to_string().into()));
            bytes.to_vec()
        }
        None => Vec::new(),
    };
    headers.push(Header::ContentLength(body.len().to_string().into()));
    body
}

impl Dialog {
    /// The dialog an incoming INVITE creates once we answer it with `local_tag` (RFC 3261 §12.1.1).
    pub fn uas(
        invite: &Request,
        peer: Peer,
        local_tag: &str,
        local_contact: rsip::Uri,
    ) -> Result<Dialog, DialogError> {
        let call_id = message::call_id(invite).ok_or(DialogError::Header("Call-ID"))?;
        let from = required(invite, "From")?;
        let to = required(invite, "To")?;
        let (seq, _) = message::cseq(invite).ok_or(DialogError::Header("CSeq"))?;
        let remote_target = contact_uri(invite).ok_or(DialogError::NoContact)?;
        Ok(Dialog {
            call_id,
            local_tag: local_tag.to_string(),
            // RFC 2543 callers send no From tag; an empty one still matches their requests.
            remote_tag: syntax::tag_of(&from).unwrap_or_default(),
            peer,
            role: Role::Uas,
            local_uri: syntax::without_tag(&to),
            remote_uri: syntax::without_tag(&from),
            remote_target,
            route_set: message::headers_named(invite, "Record-Route"),
            local_contact,
            local_cseq: 0,
            remote_cseq: Some(seq),
            invite_cseq: seq,
        })
    }

    /// The dialog a 2xx (or a tagged 1xx, for an early dialog) to our INVITE creates (§12.1.2).
    pub fn uac(invite: &Request, response: &Response, peer: Peer) -> Result<Dialog, DialogError> {
        let code = response.status_code.code();
        if !(101..=299).contains(&code) {
            return Err(DialogError::NotEstablishing(code));
        }
        let call_id = message::call_id(invite).ok_or(DialogError::Header("Call-ID"))?;
        let from = required(invite, "From")?;
        let to = required(response, "To")?;
        let remote_tag = syntax::tag_of(&to).ok_or(DialogError::Header("To"))?;
        let local_tag = syntax::tag_of(&from).ok_or(DialogError::Header("From"))?;
        let (seq, _) = message::cseq(invite).ok_or(DialogError::Header("CSeq"))?;
        let mut route_set = message::headers_named(response, "Record-Route");
        route_set.reverse();
        Ok(Dialog {
            call_id,
            local_tag,
            remote_tag,
            peer,
            role: Role::Uac,
            local_uri: syntax::without_tag(&from),
            remote_uri: syntax::without_tag(&to),
            // Some servers forget the Contact in their 2xx; the Request-URI still reaches them.
            remote_target: contact_uri(response).unwrap_or_else(|| invite.uri.clone()),
            route_set,
            local_contact: contact_uri(invite).unwrap_or_else(|| invite.uri.clone()),
            local_cseq: seq,
            remote_cseq: None,
            invite_cseq: seq,
        })
    }

    /// Where in-dialog requests are addressed (the peer's Contact).
    pub fn remote_target(&self) -> &rsip::Uri {
        &self.remote_target
    }

    /// Record-Route URIs, in the order our requests must visit them.
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    /// Our response to the dialog-creating INVITE: To tag, Contact, Record-Route echoed on
    /// dialog-establishing responses, Allow on 2xx, and the optional body.
    pub fn response(&self, invite: &Request, status: u16, body: Option<(&str, &[u8])>) -> Response {
        let tag = (status != 100).then_some(self.local_tag.as_str());
        let mut response = message::response_to(invite, status, tag);
        let mut headers: Vec<Header> = response.headers.iter().cloned().collect();
        if (101..=299).contains(&status) {
            let rr = invite
                .headers
                .iter()
                .filter(|h| matches!(h, Header::RecordRoute(_)))
                .cloned();
            headers.extend(rr);
            headers.push(Header::Contact(format!("<{}>", self.local_contact).into()));
        }
        if (200..=299).contains(&status) {
            headers.push(Header::Allow(ALLOW.to_string().into()));
        }
        response.body = with_body(&mut headers, body);
        response.headers = headers.into();
        response
    }

    /// A request inside the dialog (BYE, INFO, re-INVITE, ACK for our INVITE's 2xx). The
    /// transaction layer adds the Via.
    pub fn request(&mut self, method: Method, body: Option<(&str, &[u8])>) -> Request {
        let seq = match method {
            // ACK and CANCEL reuse the INVITE's number (§13.2.2.4, §9.1).
            Method::Ack | Method::Cancel => self.invite_cseq,
            _ => {
                self.local_cseq = self.local_cseq.wrapping_add(1).max(1);
                self.local_cseq
            }
        };
        if method == Method::Invite {
            self.invite_cseq = seq;
        }
        self.build(method, seq, body)
    }

    /// The ACK for the 2xx that created this (UAC) dialog.
    pub fn ack(&self) -> Request {
        self.build(Method::Ack, self.invite_cseq, None)
    }

    fn build(&self, method: Method, seq: u32, body: Option<(&str, &[u8])>) -> Request {
        let mut uri = self.remote_target.clone();
        let mut routes = self.route_set.clone();
        let strict = routes
            .first()
            .and_then(|r| NameAddr::parse(r))
            .filter(|r| !r.uri_has_param("lr"));
        if let Some(first) = strict {
            // A strict router (RFC 2543) wants to be the Request-URI, with the target as last Route.
            if let Some(first_uri) = message::parse_uri(&first.uri) {
                routes.remove(0);
                routes.push(format!("<{uri}>"));
                uri = first_uri;
            }
        }
        let mut headers: Vec<Header> = routes
            .into_iter()
            .map(|r| Header::Route(r.into()))
            .collect();
        headers.push(Header::MaxForwards("70".to_string().into()));
        headers.push(Header::From(
            syntax::with_tag(&self.local_uri, &self.local_tag).into(),
        ));
        let to = if self.remote_tag.is_empty() {
            self.remote_uri.clone()
        } else {
            syntax::with_tag(&self.remote_uri, &self.remote_tag)
        };
        headers.push(Header::To(to.into()));
        headers.push(Header::CallId(self.call_id.clone().into()));
        headers.push(Header::CSeq(format!("{seq} {method}").into()));
        if matches!(method, Method::Invite | Method::Update) {
            headers.push(Header::Contact(format!("<{}>", self.local_contact).into()));
        }
        let body = with_body(&mut headers, body);
        Request {
            method,
            uri,
            version: rsip::Version::V2,
            headers: headers.into(),
            body,
        }
    }

    /// Whether `req` belongs to this dialog: Call-ID, our tag in To, theirs in From.
    pub fn matches(&self, req: &Request) -> bool {
        message::call_id(req).as_deref() == Some(self.call_id.as_str())
            && message::to_tag(req).as_deref() == Some(self.local_tag.as_str())
            && message::from_tag(req).unwrap_or_default() == self.remote_tag
    }

    /// Records the remote CSeq of an in-dialog request; `false` means it is out of order and must
    /// be answered 500 (§12.2.2). ACK and CANCEL reuse the INVITE's number and always pass.
    pub fn check_remote_cseq(&mut self, req: &Request) -> bool {
        if matches!(req.method, Method::Ack | Method::Cancel) {
            return true;
        }
        let Some((seq, _)) = message::cseq(req) else {
            return false;
        };
        if self.remote_cseq.is_some_and(|last| seq <= last) {
            return false;
        }
        self.remote_cseq = Some(seq);
        true
    }

    /// A target-refresh request (re-INVITE, UPDATE) may move the peer: follow its new Contact.
    pub fn refresh_target(&mut self, req: &Request) {
        if let Some(uri) = contact_uri(req) {
            self.remote_target = uri;
        }
    }
}

/// What an outbound INVITE needs; the runtime picks ids and tags from its own random source.
#[derive(Clone, Debug)]
pub struct OutboundCall<'a> {
    pub request_uri: rsip::Uri,
    /// Our identity, a URI such as `sip:+551130000000@gw.example`.
    pub from_uri: &'a str,
    pub from_display: Option<&'a str>,
    pub to_uri: &'a str,
    pub call_id: &'a str,
    pub from_tag: &'a str,
    pub contact: rsip::Uri,
    pub cseq: u32,
    /// `(content type, body)`, normally `("application/sdp", offer)`.
    pub body: Option<(&'a str, &'a [u8])>,
}

/// Builds an outbound INVITE (no Via: the transaction layer adds it).
pub fn invite(call: &OutboundCall<'_>) -> Request {
    let from = match call.from_display {
        Some(name) => format!(
            "\"{}\" <{}>;tag={}",
            name.replace(['"', '\\'], ""),
            call.from_uri,
            call.from_tag
        ),
        None => format!("<{}>;tag={}", call.from_uri, call.from_tag),
    };
    let mut headers = vec![
        Header::MaxForwards("70".to_string().into()),
        Header::From(from.into()),
        Header::To(format!("<{}>", call.to_uri).into()),
        Header::CallId(call.call_id.to_string().into()),
        Header::CSeq(format!("{} INVITE", call.cseq).into()),
        Header::Contact(format!("<{}>", call.contact).into()),
        Header::Allow(ALLOW.to_string().into()),
    ];
    let body = with_body(&mut headers, call.body);
    Request {
        method: Method::Invite,
        uri: call.request_uri.clone(),
        version: rsip::Version::V2,
        headers: headers.into(),
        body,
    }
}

#[cfg(test)]
#[path = "dialog_tests.rs"]
mod tests;

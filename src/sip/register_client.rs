//! Registering with the carrier (RFC 3261 §10.2): REGISTER our Contact, answer one 401/407 with
//! digest, refresh before the granted expiry, retry with back-off when the registrar is away or
//! refuses, and unregister (`Expires: 0`) on shutdown. Sans-IO with virtual time: the runtime
//! feeds responses, transaction timeouts and `now`, sends the [`RegAction::Send`] requests and
//! logs the [`RegAction::State`] changes.

use std::collections::VecDeque;
use std::time::Duration;

use rsip::{Header, Method, Request, Response};

use super::digest::{authorize, Credentials};
use super::message;
use crate::time::Instant;

/// First retry after a failure; doubled each time up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// After the registrar refused our credentials (403/404, or a second challenge): retry slowly.
pub const REFUSED_RETRY: Duration = Duration::from_secs(600);
/// A REGISTER with no answer at all by then counts as timed out (64*T1 + margin), in case the
/// transaction layer's own timeout never reaches us.
const ANSWER_GUARD: Duration = Duration::from_secs(40);
/// Refreshes never come sooner than this after a 200 (unless the expiry itself is shorter).
const MIN_REFRESH: Duration = Duration::from_secs(5);

/// What operators see (`/healthz` `trunk_registration`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegState {
    Trying,
    Registered,
    Failed,
}

impl RegState {
    pub fn as_str(self) -> &'static str {
        match self {
            RegState::Trying => "trying",
            RegState::Registered => "registered",
            RegState::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug)]
pub enum RegAction {
    /// Send this REGISTER in a new client transaction (no Via: the layer adds it).
    Send(Box<Request>),
    /// The state changed (reported once per change, for the log and the health check).
    State(RegState),
}

/// Who we register as and where.
#[derive(Clone, Debug)]
pub struct RegisterParams {
    /// Request-URI: `sip:<registrar domain>`.
    pub registrar: rsip::Uri,
    /// Address of record, From and To: `sip:<user>@<domain>`.
    pub aor: String,
    /// Our Contact: `sip:<user>@<our SIP address>`.
    pub contact: String,
    pub call_id: String,
    pub from_tag: String,
    /// The expiry we ask for, in seconds.
    pub expires: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing outstanding; the next REGISTER goes at `deadline`.
    Idle,
    /// A REGISTER is outstanding.
    Waiting,
    /// The un-REGISTER is outstanding.
    Unregistering,
    Done,
}

pub struct RegisterClient {
    params: RegisterParams,
    cseq: u32,
    /// The REGISTER outstanding (to answer a challenge with).
    pending: Option<Request>,
    auth_tried: bool,
    state: RegState,
    phase: Phase,
    deadline: Option<Instant>,
    backoff: Duration,
    /// Expiry asked for after a 423 (Min-Expires), when above ours.
    min_expires: Option<u32>,
    actions: VecDeque<RegAction>,
}

impl RegisterClient {
    /// Starts registering: the first actions are the state `trying` and the REGISTER.
    pub fn new(params: RegisterParams, now: Instant) -> RegisterClient {
        let mut c = RegisterClient {
            params,
            cseq: 0,
            pending: None,
            auth_tried: false,
            state: RegState::Trying,
            phase: Phase::Idle,
            deadline: None,
            backoff: FIRST_BACKOFF,
            min_expires: None,
            actions: VecDeque::new(),
        };
        c.actions.push_back(RegAction::State(RegState::Trying));
        c.send(now, false);
        c
    }

    pub fn poll_action(&mut self) -> Option<RegAction> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn state(&self) -> RegState {
        self.state
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    fn expires(&self) -> u32 {
        self.params
            .expires
            .max(self.min_expires.unwrap_or_default())
    }

    fn request(&mut self, expires: u32) -> Request {
        self.cseq = self.cseq.wrapping_add(1);
        let p = &self.params;
        let headers = vec![
            Header::MaxForwards("70".to_string().into()),
            Header::From(format!("<{}>;tag={}", p.aor, p.from_tag).into()),
            Header::To(format!("<{}>", p.aor).into()),
            Header::CallId(p.call_id.clone().into()),
            Header::CSeq(format!("{} REGISTER", self.cseq).into()),
            Header::Contact(format!("<{}>", p.contact).into()),
            Header::Expires(expires.to_string().into()),
            Header::ContentLength("0".to_string().into()),
        ];
        Request {
            method: Method::Register,
            uri: p.registrar.clone(),
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        }
    }

    fn send(&mut self, now: Instant, unregister: bool) {
        let expires = if unregister { 0 } else { self.expires() };
        let r = self.request(expires);
        self.auth_tried = false;
        self.pending = Some(r.clone());
        self.phase = if unregister {
            Phase::Unregistering
        } else {
            Phase::Waiting
        };
        self.deadline = Some(now + ANSWER_GUARD);
        self.actions.push_back(RegAction::Send(Box::new(r)));
    }

    fn set_state(&mut self, state: RegState) {
        if state != self.state {
            self.state = state;
            self.actions.push_back(RegAction::State(state));
        }
    }

    /// No usable answer: failed for now, next try after the back-off (doubling, capped).
    fn retry_later(&mut self, now: Instant, after: Duration) {
        self.pending = None;
        self.set_state(RegState::Failed);
        self.phase = Phase::Idle;
        self.deadline = Some(now + after);
    }

    fn backoff_retry(&mut self, now: Instant) {
        let after = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.retry_later(now, after);
    }

    /// A response to our REGISTER. `credentials` answer one 401/407; `cnonce` is fresh.
    pub fn on_response(
        &mut self,
        now: Instant,
        response: &Response,
        credentials: Option<&Credentials<'_>>,
        cnonce: &str,
    ) {
        let Some(pending) = self.pending.clone() else {
            return;
        };
        if message::cseq(response) != message::cseq(&pending)
            || message::call_id(response) != message::call_id(&pending)
        {
            return; // A late answer to an earlier REGISTER.
        }
        let code = response.status_code.code();
        if code < 200 {
            return;
        }
        if self.phase == Phase::Unregistering {
            match (code, credentials) {
                (401 | 407, Some(c)) if !self.auth_tried => {
                    self.answer_challenge(now, &pending, response, c, cnonce)
                }
                _ => self.finish(),
            }
            return;
        }
        match code {
            200..=299 => {
                let granted = granted_expiry(response, &self.params.contact)
                    .unwrap_or_else(|| self.expires());
                if granted == 0 {
                    // The registrar kept no binding: treat as a refusal to try again later.
                    self.backoff_retry(now);
                    return;
                }
                self.pending = None;
                self.backoff = FIRST_BACKOFF;
                self.set_state(RegState::Registered);
                self.phase = Phase::Idle;
                self.deadline = Some(now + refresh_after(granted));
            }
            401 | 407 if !self.auth_tried && credentials.is_some() => {
                if let Some(c) = credentials {
                    self.answer_challenge(now, &pending, response, c, cnonce);
                }
            }
            423 => {
                let min = message::header(response, "Min-Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .filter(|m| *m > self.expires() && *m <= 86_400);
                match min {
                    Some(m) => {
                        self.min_expires = Some(m);
                        self.send(now, false);
                    }
                    None => self.backoff_retry(now),
                }
            }
            // The credentials were refused (or none were configured): no point retrying soon.
            401 | 403 | 404 | 407 => self.retry_later(now, REFUSED_RETRY),
            _ => self.backoff_retry(now),
        }
    }

    fn answer_challenge(
        &mut self,
        now: Instant,
        pending: &Request,
        challenge: &Response,
        credentials: &Credentials<'_>,
        cnonce: &str,
    ) {
        self.auth_tried = true;
        match authorize(pending, challenge, credentials, cnonce, 1) {
            Ok(r) => {
                self.cseq = message::cseq(&r).map_or(self.cseq, |(n, _)| n);
                self.pending = Some(r.clone());
                self.actions.push_back(RegAction::Send(Box::new(r)));
            }
            Err(_) if self.phase == Phase::Unregistering => self.finish(),
            Err(_) => self.retry_later(now, REFUSED_RETRY),
        }
    }

    fn finish(&mut self) {
        self.pending = None;
        self.phase = Phase::Done;
        self.deadline = None;
    }

    /// Our REGISTER got no response at all (the transaction timed out).
    pub fn request_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Waiting => self.backoff_retry(now),
            Phase::Unregistering => self.finish(),
            Phase::Idle | Phase::Done => {}
        }
    }

    /// The refresh or retry time, or the answer guard, has come.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        match self.phase {
            // Retries after a failure keep the state `failed` until one succeeds.
            Phase::Idle => self.send(now, false),
            Phase::Waiting => self.backoff_retry(now),
            Phase::Unregistering => self.finish(),
            Phase::Done => self.deadline = None,
        }
    }

    /// Shutting down: remove our binding (`Expires: 0`) if we hold one; done otherwise.
    pub fn unregister(&mut self, now: Instant) {
        match (self.phase, self.state) {
            (Phase::Done | Phase::Unregistering, _) => {}
            (_, RegState::Registered) => self.send(now, true),
            _ => self.finish(),
        }
    }
}

/// The expiry the registrar granted: our Contact's `expires` parameter, else the Expires header.
fn granted_expiry(response: &Response, our_contact: &str) -> Option<u32> {
    let from_contact = message::headers_named(response, "Contact")
        .iter()
        .flat_map(|v| split_contacts(v))
        .find(|c| c.contains(our_contact))
        .and_then(|c| {
            c.split(';').skip(1).find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("expires")
                    .then(|| v.trim().trim_matches('"').parse::<u32>().ok())
                    .flatten()
            })
        });
    from_contact
        .or_else(|| message::header(response, "Expires").and_then(|v| v.trim().parse::<u32>().ok()))
}

/// A Contact header value may list several contacts separated by commas outside `<>`/quotes.
fn split_contacts(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut cur, mut angle, mut quote) = (String::new(), false, false);
    for ch in value.chars() {
        match ch {
            '"' => quote = !quote,
            '<' if !quote => angle = true,
            '>' if !quote => angle = false,
            ',' if !quote && !angle => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    out.push(cur);
    out
}

/// When to refresh a binding granted for `granted` seconds: half of it, or 30 s before it
/// lapses when that is sooner, but not sooner than a few seconds (nor later than half).
pub fn refresh_after(granted: u32) -> Duration {
    let g = Duration::from_secs(granted.into());
    let half = g / 2;
    let early = g.saturating_sub(Duration::from_secs(30));
    half.min(early).max(MIN_REFRESH.min(half))
}

#[cfg(test)]
#[path = "register_client_tests.rs"]
mod tests;

//! An outbound call leg's protocol decisions (RFC 3261 §13.2, §9.1, §15): what to send on each
//! response to our INVITE, when to give up ringing, and how the leg ends. Sans-IO: the runtime
//! feeds responses, requests and `now`, and carries out the [`Action`]s.

use std::collections::VecDeque;
use std::time::Duration;

use rsip::{Method, Request, Response};

use super::dialog::Dialog;
use super::digest::{authorize, Credentials};
use super::message;
use super::Peer;
use crate::time::Instant;

/// How long a CANCEL may take to end the INVITE before the leg is dropped anyway (64*T1).
const CANCEL_GRACE: Duration = Duration::from_secs(32);

/// What the owner of the leg hears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegEvent {
    Trying,
    Ringing,
    /// The far end answered; its SDP answer.
    Answered {
        sdp: String,
    },
    /// No answer: the final status (408 for our ring timeout or no response at all).
    Failed(u16),
    /// The answered call ended.
    Ended(EndedBy),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndedBy {
    /// They sent BYE.
    Remote,
    /// We hung up.
    Local,
}

/// What the runtime must do.
#[derive(Clone, Debug)]
pub enum Action {
    /// Send an INVITE in a new client transaction (the first, or one answering a challenge).
    Invite(Request),
    /// Send the ACK for a 2xx (its own transaction-less message).
    Ack(Request),
    /// CANCEL the pending INVITE transaction.
    Cancel,
    /// Send an in-dialog request (BYE).
    Request(Request),
    Report(LegEvent),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Calling,
    Ringing,
    Cancelling,
    Confirmed,
    Ending,
    Done,
}

/// One outbound leg, from INVITE to the end of its dialog.
pub struct Uac {
    invite: Request,
    peer: Peer,
    state: State,
    auth_tried: bool,
    dialog: Option<Dialog>,
    deadline: Option<Instant>,
    actions: VecDeque<Action>,
}

impl Uac {
    /// Starts the leg: the first action is the INVITE. `ring_timeout` counts from `now`.
    pub fn new(invite: Request, peer: Peer, now: Instant, ring_timeout: Duration) -> Uac {
        let mut actions = VecDeque::new();
        actions.push_back(Action::Invite(invite.clone()));
        Uac {
            invite,
            peer,
            state: State::Calling,
            auth_tried: false,
            dialog: None,
            deadline: Some(now + ring_timeout),
            actions,
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    pub fn is_answered(&self) -> bool {
        self.state == State::Confirmed
    }

    fn finish(&mut self, event: LegEvent) {
        self.state = State::Done;
        self.deadline = None;
        self.actions.push_back(Action::Report(event));
    }

    /// A response to one of our requests. `credentials` answer one 401/407; `cnonce` is fresh.
    pub fn on_response(
        &mut self,
        now: Instant,
        response: &Response,
        credentials: Option<&Credentials<'_>>,
        cnonce: &str,
    ) {
        let code = response.status_code.code();
        let method = message::cseq(response).map(|(_, m)| m);
        if method != Some(Method::Invite) {
            // The answer to our BYE ends the leg (whatever it says: the dialog is over for us).
            if self.state == State::Ending && code >= 200 {
                self.finish(LegEvent::Ended(EndedBy::Local));
            }
            return;
        }
        match (self.state, code) {
            (State::Calling | State::Ringing, 100) => {
                self.actions.push_back(Action::Report(LegEvent::Trying));
            }
            (State::Calling, 101..=199) => {
                self.state = State::Ringing;
                self.actions.push_back(Action::Report(LegEvent::Ringing));
            }
            (State::Calling | State::Ringing | State::Cancelling, 200..=299) => {
                let Ok(mut dialog) = Dialog::uac(&self.invite, response, self.peer) else {
                    self.finish(LegEvent::Failed(502));
                    return;
                };
                self.actions.push_back(Action::Ack(dialog.ack()));
                if self.state == State::Cancelling {
                    // The answer crossed our CANCEL: the call must still be torn down.
                    self.actions
                        .push_back(Action::Request(dialog.request(Method::Bye, None)));
                    self.state = State::Ending;
                    self.deadline = Some(now + CANCEL_GRACE);
                    self.dialog = Some(dialog);
                    return;
                }
                self.state = State::Confirmed;
                self.deadline = None;
                self.dialog = Some(dialog);
                let sdp = String::from_utf8_lossy(&response.body).to_string();
                self.actions
                    .push_back(Action::Report(LegEvent::Answered { sdp }));
            }
            (State::Confirmed | State::Ending, 200..=299) => {
                // A retransmitted 2xx: our ACK was lost.
                if let Some(d) = &self.dialog {
                    self.actions.push_back(Action::Ack(d.ack()));
                }
            }
            (State::Calling | State::Ringing, 401 | 407) if !self.auth_tried => {
                self.auth_tried = true;
                let retry =
                    credentials.and_then(|c| authorize(&self.invite, response, c, cnonce, 1).ok());
                match retry {
                    Some(r) => {
                        self.invite = r.clone();
                        self.actions.push_back(Action::Invite(r));
                    }
                    None => self.finish(LegEvent::Failed(code)),
                }
            }
            (State::Calling | State::Ringing, 300..=699) => self.finish(LegEvent::Failed(code)),
            (State::Cancelling, 300..=699) => {
                self.state = State::Done;
                self.deadline = None;
            }
            _ => {}
        }
    }

    /// Our INVITE (or BYE) got no response at all.
    pub fn request_timeout(&mut self) {
        match self.state {
            State::Calling | State::Ringing => self.finish(LegEvent::Failed(408)),
            State::Ending => self.finish(LegEvent::Ended(EndedBy::Local)),
            State::Cancelling => {
                self.state = State::Done;
                self.deadline = None;
            }
            State::Confirmed | State::Done => {}
        }
    }

    /// The ring timeout, or the CANCEL/BYE grace period, has passed.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        match self.state {
            State::Calling | State::Ringing => {
                self.actions.push_back(Action::Cancel);
                self.actions
                    .push_back(Action::Report(LegEvent::Failed(408)));
                self.state = State::Cancelling;
                self.deadline = Some(now + CANCEL_GRACE);
            }
            State::Cancelling => {
                self.state = State::Done;
                self.deadline = None;
            }
            State::Ending => self.finish(LegEvent::Ended(EndedBy::Local)),
            State::Confirmed | State::Done => self.deadline = None,
        }
    }

    /// We want the leg gone: CANCEL while it rings, BYE once answered.
    pub fn hangup(&mut self, now: Instant) {
        match self.state {
            State::Calling | State::Ringing => {
                self.actions.push_back(Action::Cancel);
                self.actions
                    .push_back(Action::Report(LegEvent::Failed(487)));
                self.state = State::Cancelling;
                self.deadline = Some(now + CANCEL_GRACE);
            }
            State::Confirmed => {
                if let Some(d) = self.dialog.as_mut() {
                    self.actions
                        .push_back(Action::Request(d.request(Method::Bye, None)));
                }
                self.state = State::Ending;
                self.deadline = Some(now + CANCEL_GRACE);
            }
            State::Cancelling | State::Ending | State::Done => {}
        }
    }

    /// An in-dialog request from the far end. Returns the status to answer it with.
    pub fn on_request(&mut self, request: &Request) -> u16 {
        let Some(d) = self.dialog.as_mut() else {
            return 481;
        };
        if !d.matches(request) {
            return 481;
        }
        if !d.check_remote_cseq(request) {
            return 500;
        }
        match request.method {
            Method::Bye => {
                if matches!(self.state, State::Confirmed | State::Ending) {
                    self.finish(LegEvent::Ended(EndedBy::Remote));
                }
                200
            }
            _ => 200,
        }
    }

    /// A re-INVITE from the far end (hold, resume, a moved phone, a session refresh): checked like
    /// any request of the dialog, the target refreshed, and the 200 built around `body` (our
    /// answer, or our offer when the re-INVITE came without one). `Err` is the status to refuse
    /// it with: 481 outside the dialog, 500 for an old CSeq, 491 while the call is not up.
    pub fn reinvite_response(
        &mut self,
        request: &Request,
        body: Option<&str>,
    ) -> Result<Response, u16> {
        let Some(d) = self.dialog.as_mut() else {
            return Err(481);
        };
        if !d.matches(request) {
            return Err(481);
        }
        if !d.check_remote_cseq(request) {
            return Err(500);
        }
        if self.state != State::Confirmed {
            return Err(491);
        }
        d.refresh_target(request);
        Ok(d.response(
            request,
            200,
            body.map(|b| ("application/sdp", b.as_bytes())),
        ))
    }

    /// Where in-dialog messages go.
    pub fn peer(&self) -> Peer {
        self.dialog.as_ref().map_or(self.peer, |d| d.peer)
    }

    /// The Call-ID of the leg.
    pub fn call_id(&self) -> Option<String> {
        message::call_id(&self.invite)
    }
}

#[cfg(test)]
#[path = "uac_tests.rs"]
mod tests;

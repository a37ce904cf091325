//! The ACD task: one task owns the pure [`crate::acd::Acd`] and carries its decisions to the
//! calls (their inboxes) and to the agents (their console sockets).
//!
//! Everything that changes who gets which call passes through here, in order, so two agents can
//! never take the same call and an agent never gets two.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::acd::{Acd, AcdEvent, AgentSnapshot, CallRequest, QueueSnapshot};
use crate::call::ScreenPop;

use super::call_task::CallIn;
use super::Shared;

/// What the ACD task tells an agent's console (serialised as the WebSocket protocol).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMsg {
    State {
        state: String,
        since_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        wrap_up_ms: Option<u64>,
    },
    Ring {
        call_id: String,
        queue: String,
        caller: String,
        dialed: String,
        waited_ms: u64,
        account: Option<std::collections::BTreeMap<String, String>>,
        ivr_path: Vec<String>,
        digits: std::collections::BTreeMap<String, String>,
        vars: std::collections::BTreeMap<String, String>,
        /// Set when this is a queued callback rather than a live caller.
        #[serde(skip_serializing_if = "Option::is_none")]
        callback: Option<Box<super::callbacks::CallbackRing>>,
    },
    /// The agent accepted a callback; `message` says what happens next.
    CallbackAccepted {
        call_id: String,
        number: String,
        message: String,
    },
    RingCancelled {
        call_id: String,
        reason: String,
    },
    AnswerSdp {
        call_id: String,
        sdp: String,
    },
    Connected {
        call_id: String,
    },
    CallEnded {
        call_id: String,
        by: String,
    },
    Queues {
        queues: Vec<QueueSnapshot>,
    },
    Agents {
        agents: Vec<AgentSnapshot>,
    },
    Error {
        message: String,
    },
    /// The session was replaced by a newer login of the same agent.
    Replaced,
}

/// The live board (queues and agents) as the dashboard shows it. The ACD task publishes it in
/// `Shared::board` whenever something a supervisor would see changes, at most every
/// [`BOARD_MIN_GAP`]; times in it are relative to when it was published.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Board {
    pub queues: Vec<QueueSnapshot>,
    pub agents: Vec<AgentSnapshot>,
}

/// Under churn the dashboard gets at most four boards a second.
pub const BOARD_MIN_GAP: std::time::Duration = std::time::Duration::from_millis(250);

/// What changes the board as a supervisor sees it: counts and states, not the ticking times
/// (the page ticks those itself).
fn board_key(b: &Board) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for q in &b.queues {
        let a = &q.agents;
        (
            &q.name,
            q.waiting,
            q.callbacks,
            q.entered,
            q.answered,
            q.abandoned,
            q.timed_out,
        )
            .hash(&mut h);
        (
            a.logged_out,
            a.available,
            a.away,
            a.ringing,
            a.on_call,
            a.wrap_up,
        )
            .hash(&mut h);
    }
    for a in &b.agents {
        (&a.id, a.state, &a.call_id).hash(&mut h);
    }
    h.finish()
}

pub enum AcdCmd {
    Enqueue {
        req: CallRequest,
        pop: Box<ScreenPop>,
        call: mpsc::UnboundedSender<CallIn>,
    },
    Leave {
        call_id: String,
    },
    /// The call ended while an agent had it (caller hung up, failure).
    CallEnded {
        call_id: String,
    },
    Login {
        agent_id: String,
        session: u64,
        tx: mpsc::UnboundedSender<AgentMsg>,
    },
    Logout {
        agent_id: String,
        session: u64,
    },
    SetState {
        agent_id: String,
        available: bool,
    },
    WrapUpDone {
        agent_id: String,
    },
    Answer {
        agent_id: String,
        call_id: String,
        sdp: String,
    },
    Decline {
        agent_id: String,
        call_id: String,
    },
    /// A SIP agent's phone answered: its RTP leg is bridged instead of a browser's WebRTC.
    AnswerSip {
        agent_id: String,
        call_id: String,
        media: super::outbound::LegMedia,
    },
    /// Hang-up, hold, DTMF from the agent for the call they have.
    ToCall {
        agent_id: String,
        call_id: String,
        msg: AgentAction,
    },
    Transfer {
        agent_id: String,
        call_id: String,
        queue: Option<String>,
        agent: Option<String>,
    },
    Snapshot {
        reply: oneshot::Sender<(Vec<QueueSnapshot>, Vec<AgentSnapshot>)>,
    },
    /// Queue a callback (API, widget, or an IVR `callback` step).
    Callback(super::callbacks::Submit),
    /// A callback's dial attempt ended (see `callback_task`).
    CallbackDone {
        call_id: String,
        agent_id: String,
        outcome: super::callback_task::Outcome,
    },
    /// A callback's retry delay is over: back into its queue.
    CallbackRetry {
        call_id: String,
    },
}

#[derive(Debug)]
pub enum AgentAction {
    Hangup,
    Hold(bool),
    Dtmf(char),
}

struct CallEntry {
    inbox: mpsc::UnboundedSender<CallIn>,
    pop: Box<ScreenPop>,
    queue: String,
    enqueued: crate::time::Instant,
    position: Option<usize>,
    agent: Option<String>,
}

struct Task {
    shared: Arc<Shared>,
    acd: Acd,
    calls: HashMap<String, CallEntry>,
    agents: HashMap<String, (u64, mpsc::UnboundedSender<AgentMsg>)>,
    /// offer id → (call, agent)
    offers: HashMap<u64, (String, String)>,
    /// The last board published, by [`board_key`], and when; whether a newer one waits for the gap.
    board_key: Option<u64>,
    board_sent: Option<tokio::time::Instant>,
    board_due: bool,
    /// What caused the events being drained, for the stored agent state changes.
    cause: &'static str,
    desk: super::callbacks::Desk,
}

pub fn spawn(
    shared: Arc<Shared>,
    acd: Acd,
    mut rx: mpsc::UnboundedReceiver<AcdCmd>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut acd = acd;
        let desk = super::callbacks::Desk::start(&shared, &mut acd);
        let mut t = Task {
            desk,
            shared: shared.clone(),
            acd,
            calls: HashMap::new(),
            agents: HashMap::new(),
            offers: HashMap::new(),
            board_key: None,
            board_sent: None,
            board_due: false,
            cause: "start",
        };
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            let deadline = t.acd.poll_timeout().map(|d| shared.clock.to_tokio(d));
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => t.command(cmd),
                    None => break,
                },
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending::<()>().await,
                    }
                } => {
                    t.cause = "timeout";
                    t.acd.handle_timeout(shared.clock.now());
                }
                _ = tick.tick() => t.broadcast_boards(),
                _ = async {
                    match t.board_sent.filter(|_| t.board_due) {
                        Some(at) => tokio::time::sleep_until(at + BOARD_MIN_GAP).await,
                        None => std::future::pending::<()>().await,
                    }
                } => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            t.drain();
            t.publish_board();
        }
    });
}

/// The reason stored with the agent state changes a command causes.
fn cause_of(cmd: &AcdCmd) -> &'static str {
    match cmd {
        AcdCmd::Login { .. } => "login",
        AcdCmd::Logout { .. } => "logout",
        AcdCmd::SetState {
            available: true, ..
        } => "agent_available",
        AcdCmd::SetState { .. } => "agent_away",
        AcdCmd::WrapUpDone { .. } => "wrap_up_done",
        AcdCmd::Answer { .. } => "answer",
        AcdCmd::Decline { .. } => "decline",
        AcdCmd::Enqueue { .. } => "call_queued",
        AcdCmd::CallEnded { .. } => "call_ended",
        AcdCmd::Leave { .. } => "caller_left",
        AcdCmd::Transfer { .. } => "transfer",
        _ => "command",
    }
}

impl Task {
    fn now(&self) -> crate::time::Instant {
        self.shared.clock.now()
    }

    fn to_agent(&self, agent_id: &str, msg: AgentMsg) {
        if let Some((_, tx)) = self.agents.get(agent_id) {
            let _ = tx.send(msg);
        }
    }

    fn to_call(&self, call_id: &str, msg: CallIn) {
        if let Some(c) = self.calls.get(call_id) {
            let _ = c.inbox.send(msg);
        }
    }

    /// The agent took the call ringing for them: tell the call, with `msg` carrying their media.
    fn answer(
        &mut self,
        now: crate::time::Instant,
        agent_id: String,
        call_id: String,
        msg: impl FnOnce(String, mpsc::UnboundedSender<AgentMsg>) -> CallIn,
    ) {
        let offer = self
            .offers
            .iter()
            .find(|(_, (c, a))| *c == call_id && *a == agent_id)
            .map(|(id, _)| *id);
        let Some(offer_id) = offer else {
            self.to_agent(
                &agent_id,
                AgentMsg::Error {
                    message: "this call is no longer ringing for you".into(),
                },
            );
            return;
        };
        if self.desk.is_callback(&call_id) {
            // A callback has no caller yet: accepting it starts the dial-out.
            let Some((_, tx)) = self.agents.get(&agent_id) else {
                return;
            };
            let tx = tx.clone();
            let side = match msg(agent_id.clone(), tx.clone()) {
                CallIn::AgentAnswer { sdp, .. } => super::callback_task::AgentSide::WebRtc(sdp),
                CallIn::AgentAnswerSip { media, .. } => super::callback_task::AgentSide::Sip(media),
                _ => return,
            };
            if self.acd.offer_answered(now, offer_id) {
                let shared = self.shared.clone();
                let message = self.desk.accepted(&shared, &call_id, &agent_id, tx, side);
                let number = self.desk.ring(&call_id).map(|r| r.0.number);
                self.to_agent(
                    &agent_id,
                    AgentMsg::CallbackAccepted {
                        call_id,
                        number: number.unwrap_or_default(),
                        message,
                    },
                );
            }
            return;
        }
        if self.acd.offer_answered(now, offer_id) {
            if let Some((_, tx)) = self.agents.get(&agent_id) {
                let tx = tx.clone();
                if let Some(c) = self.calls.get_mut(&call_id) {
                    c.agent = Some(agent_id.clone());
                }
                self.to_call(&call_id, msg(agent_id, tx));
            }
        } else {
            self.to_agent(
                &agent_id,
                AgentMsg::Error {
                    message: "the call was taken or left before you answered".into(),
                },
            );
        }
    }

    fn command(&mut self, cmd: AcdCmd) {
        let now = self.now();
        self.cause = cause_of(&cmd);
        match cmd {
            AcdCmd::Enqueue { req, pop, call } => {
                let call_id = req.call_id.clone();
                let queue = req.queue.clone();
                match self.acd.enqueue(now, req) {
                    Ok(()) => {
                        let cfg = self.shared.queue_config(&queue);
                        let _ = call.send(CallIn::Enqueued {
                            music: cfg.as_ref().and_then(|c| c.music.clone()),
                            announce_every: cfg.as_ref().and_then(|c| c.announce_every),
                            exit_key: cfg.as_ref().and_then(|c| c.exit_key),
                        });
                        self.calls.insert(
                            call_id,
                            CallEntry {
                                inbox: call,
                                pop,
                                queue,
                                enqueued: now,
                                position: None,
                                agent: None,
                            },
                        );
                    }
                    Err(e) => {
                        let _ = call.send(CallIn::QueueTimeout(format!("{e:?}")));
                    }
                }
            }
            AcdCmd::Leave { call_id } => {
                self.acd.leave(now, &call_id);
                self.calls.remove(&call_id);
            }
            AcdCmd::CallEnded { call_id } => {
                if let Some(c) = self.calls.remove(&call_id) {
                    if let Some(agent) = c.agent {
                        self.acd.call_finished(now, &agent);
                        self.to_agent(
                            &agent,
                            AgentMsg::CallEnded {
                                call_id,
                                by: "caller".into(),
                            },
                        );
                    } else {
                        self.acd.leave(now, &call_id);
                    }
                }
            }
            AcdCmd::Login {
                agent_id,
                session,
                tx,
            } => {
                let sip = super::sip_agent::SIP_SESSION;
                let console_open = self
                    .agents
                    .get(&agent_id)
                    .is_some_and(|(s, _)| s & sip == 0);
                if session & sip != 0 && console_open {
                    // An open console wins over the agent's SIP phone.
                    let _ = tx.send(AgentMsg::Replaced);
                    return;
                }
                if let Some((old, old_tx)) = self.agents.insert(agent_id.clone(), (session, tx)) {
                    if old != session {
                        let _ = old_tx.send(AgentMsg::Replaced);
                    }
                }
                self.acd.agent_login(now, &agent_id);
                self.send_boards_to(&agent_id);
            }
            AcdCmd::Logout { agent_id, session } => {
                if self
                    .agents
                    .get(&agent_id)
                    .is_some_and(|(s, _)| *s == session)
                {
                    self.agents.remove(&agent_id);
                    self.acd.agent_logout(now, &agent_id);
                }
            }
            AcdCmd::SetState {
                agent_id,
                available,
            } => {
                if available {
                    self.acd.set_available(now, &agent_id);
                } else {
                    self.acd.set_away(now, &agent_id);
                }
            }
            AcdCmd::WrapUpDone { agent_id } => self.acd.wrap_up_done(now, &agent_id),
            AcdCmd::Answer {
                agent_id,
                call_id,
                sdp,
            } => self.answer(now, agent_id, call_id, |agent_id, agent| {
                CallIn::AgentAnswer {
                    agent_id,
                    sdp,
                    agent,
                }
            }),
            AcdCmd::AnswerSip {
                agent_id,
                call_id,
                media,
            } => self.answer(now, agent_id, call_id, |agent_id, agent| {
                CallIn::AgentAnswerSip {
                    agent_id,
                    media,
                    agent,
                }
            }),
            AcdCmd::Decline { agent_id, call_id } => {
                let offer = self
                    .offers
                    .iter()
                    .find(|(_, (c, a))| *c == call_id && *a == agent_id)
                    .map(|(id, _)| *id);
                if let Some(id) = offer {
                    self.acd.offer_declined(now, id);
                }
            }
            AcdCmd::ToCall {
                agent_id,
                call_id,
                msg,
            } => {
                if self.desk.owner(&call_id) == Some(agent_id.as_str()) {
                    if let AgentAction::Hangup = msg {
                        if self.desk.hang_up(&call_id) {
                            // The attempt reports back as CallbackDone, which frees the agent.
                            return;
                        }
                        self.desk.released(&call_id);
                        self.acd.call_finished(now, &agent_id);
                        self.to_agent(
                            &agent_id,
                            AgentMsg::CallEnded {
                                call_id,
                                by: "agent".into(),
                            },
                        );
                    }
                    return;
                }
                let owns = self
                    .calls
                    .get(&call_id)
                    .is_some_and(|c| c.agent.as_deref() == Some(agent_id.as_str()));
                if !owns {
                    self.to_agent(
                        &agent_id,
                        AgentMsg::Error {
                            message: "you are not on this call".into(),
                        },
                    );
                    return;
                }
                match msg {
                    AgentAction::Hangup => {
                        self.to_call(&call_id, CallIn::AgentHungUp);
                        self.calls.remove(&call_id);
                        self.acd.call_finished(now, &agent_id);
                        self.to_agent(
                            &agent_id,
                            AgentMsg::CallEnded {
                                call_id,
                                by: "agent".into(),
                            },
                        );
                    }
                    AgentAction::Hold(on) => self.to_call(&call_id, CallIn::Hold(on)),
                    AgentAction::Dtmf(d) => self.to_call(&call_id, CallIn::AgentDtmf(d)),
                }
            }
            AcdCmd::Transfer {
                agent_id,
                call_id,
                queue,
                agent,
            } => {
                let owns = self
                    .calls
                    .get(&call_id)
                    .is_some_and(|c| c.agent.as_deref() == Some(agent_id.as_str()));
                if !owns {
                    return;
                }
                match self
                    .acd
                    .transfer(now, &call_id, queue.as_deref(), agent.as_deref())
                {
                    Ok(()) => {
                        let target = queue
                            .clone()
                            .or_else(|| self.calls.get(&call_id).map(|c| c.queue.clone()))
                            .unwrap_or_default();
                        if let Some(c) = self.calls.get_mut(&call_id) {
                            c.agent = None;
                            c.queue = target.clone();
                        }
                        self.to_call(
                            &call_id,
                            CallIn::Transferred {
                                from_agent: agent_id.clone(),
                                queue: target,
                                agent: agent.clone(),
                            },
                        );
                        self.to_agent(
                            &agent_id,
                            AgentMsg::CallEnded {
                                call_id,
                                by: "transfer".into(),
                            },
                        );
                    }
                    Err(e) => self.to_agent(
                        &agent_id,
                        AgentMsg::Error {
                            message: format!("transfer refused: {e:?}"),
                        },
                    ),
                }
            }
            AcdCmd::Callback(submit) => self.desk.submit(&self.shared, &mut self.acd, submit),
            AcdCmd::CallbackDone {
                call_id,
                agent_id,
                outcome,
            } => {
                let shared = self.shared.clone();
                self.desk.finished(&shared, &call_id, outcome);
                self.acd.call_finished(now, &agent_id);
                let by = match outcome {
                    super::callback_task::Outcome::Completed => "callback",
                    super::callback_task::Outcome::NotReached(code) => {
                        let why = super::callback_task::reason(code);
                        self.to_agent(
                            &agent_id,
                            AgentMsg::Error {
                                message: format!("the customer was not reached: {why} ({code})"),
                            },
                        );
                        why
                    }
                };
                self.to_agent(
                    &agent_id,
                    AgentMsg::CallEnded {
                        call_id,
                        by: by.into(),
                    },
                );
            }
            AcdCmd::CallbackRetry { call_id } => {
                let shared = self.shared.clone();
                self.desk.retry(&shared, &mut self.acd, &call_id);
            }
            AcdCmd::Snapshot { reply } => {
                let _ = reply.send((self.acd.queues_snapshot(now), self.acd.agents_snapshot(now)));
            }
        }
    }

    fn drain(&mut self) {
        let now = self.now();
        while let Some(ev) = self.acd.poll_event() {
            match ev {
                AcdEvent::Offer {
                    offer_id,
                    call_id,
                    agent_id,
                    queue,
                } => {
                    self.offers
                        .insert(offer_id, (call_id.clone(), agent_id.clone()));
                    if let Some((cb, enqueued_at)) = self.desk.ring(&call_id) {
                        let waited = (chrono::Utc::now() - enqueued_at).num_milliseconds();
                        let msg = AgentMsg::Ring {
                            call_id: call_id.clone(),
                            queue,
                            caller: cb.number.clone(),
                            dialed: String::new(),
                            waited_ms: u64::try_from(waited).unwrap_or(0),
                            account: None,
                            ivr_path: Vec::new(),
                            digits: Default::default(),
                            vars: Default::default(),
                            callback: Some(Box::new(cb)),
                        };
                        self.to_agent(&agent_id, msg);
                    } else if let Some(c) = self.calls.get(&call_id) {
                        let p = &c.pop;
                        let msg = AgentMsg::Ring {
                            call_id: call_id.clone(),
                            queue,
                            caller: p.caller.clone(),
                            dialed: p.dialed.clone(),
                            waited_ms: now.saturating_since(c.enqueued).as_millis() as u64,
                            account: p.account.clone(),
                            ivr_path: p.ivr_path.clone(),
                            digits: p.digits.clone(),
                            vars: p.vars.clone(),
                            callback: None,
                        };
                        self.to_agent(&agent_id, msg);
                    }
                }
                AcdEvent::OfferCancelled {
                    offer_id,
                    call_id,
                    agent_id,
                    reason,
                } => {
                    self.offers.remove(&offer_id);
                    let reason = format!("{reason:?}");
                    self.to_agent(
                        &agent_id,
                        AgentMsg::RingCancelled {
                            call_id,
                            reason: snake(&reason),
                        },
                    );
                }
                AcdEvent::Connected { offer_id, .. } => {
                    self.offers.remove(&offer_id);
                }
                AcdEvent::QueueTimeout { call_id } => {
                    self.desk.timed_out(&call_id);
                    self.to_call(&call_id, CallIn::QueueTimeout("timeout".into()));
                    self.calls.remove(&call_id);
                }
                AcdEvent::Overflowed { call_id, to, .. } => {
                    if let Some(c) = self.calls.get_mut(&call_id) {
                        c.queue = to.clone();
                    }
                    self.to_call(
                        &call_id,
                        CallIn::Requeued {
                            queue: to,
                            why: "overflow".into(),
                        },
                    );
                }
                AcdEvent::AgentState {
                    agent_id,
                    state,
                    since,
                } => {
                    let wrap_up_ms = match state {
                        crate::acd::AgentState::WrapUp => self
                            .shared
                            .wrap_up_for(&agent_id)
                            .map(|d| d.as_millis() as u64),
                        _ => None,
                    };
                    let state = snake(&format!("{state:?}"));
                    self.shared.webhooks.emit(
                        "agent.state",
                        serde_json::json!({ "agent_id": agent_id, "state": state }),
                    );
                    let ago = chrono::TimeDelta::from_std(now.saturating_since(since));
                    self.shared.cdr.agent_state(crate::cdr::AgentStateChange {
                        agent_id: agent_id.clone(),
                        state: state.clone(),
                        at: chrono::Utc::now() - ago.unwrap_or_default(),
                        reason: Some(self.cause.to_string()),
                    });
                    self.to_agent(
                        &agent_id,
                        AgentMsg::State {
                            state,
                            since_ms: now.saturating_since(since).as_millis() as u64,
                            wrap_up_ms,
                        },
                    );
                }
            }
        }
        // Positions, for the announcements.
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        for id in ids {
            let pos = self.acd.position(&id).map(|(p, _)| p);
            if let Some(c) = self.calls.get_mut(&id) {
                if c.position != pos {
                    c.position = pos;
                    if let Some(p) = pos {
                        let _ = c.inbox.send(CallIn::Position(p));
                    }
                }
            }
        }
    }

    fn send_boards_to(&self, agent_id: &str) {
        let now = self.now();
        self.to_agent(
            agent_id,
            AgentMsg::Queues {
                queues: self.acd.queues_snapshot(now),
            },
        );
        self.to_agent(
            agent_id,
            AgentMsg::Agents {
                agents: self.acd.agents_snapshot(now),
            },
        );
    }

    /// Publishes the board for the dashboards when it changed, unless one went out less than
    /// [`BOARD_MIN_GAP`] ago; then it is due and the loop wakes for it.
    fn publish_board(&mut self) {
        if self.shared.board.receiver_count() == 0 {
            // Nobody watches: the next watcher starts from a fresh board.
            self.board_key = None;
            return;
        }
        let now = self.now();
        let board = Board {
            queues: self.acd.queues_snapshot(now),
            agents: self.acd.agents_snapshot(now),
        };
        let key = board_key(&board);
        if self.board_key == Some(key) && !self.board_due {
            return;
        }
        let at = tokio::time::Instant::now();
        if self
            .board_sent
            .is_some_and(|sent| at.duration_since(sent) < BOARD_MIN_GAP)
        {
            self.board_due = true;
            return;
        }
        self.board_key = Some(key);
        self.board_sent = Some(at);
        self.board_due = false;
        self.shared.board.send_replace(board);
    }

    fn broadcast_boards(&self) {
        if self.agents.is_empty() {
            return;
        }
        let now = self.now();
        let q = AgentMsg::Queues {
            queues: self.acd.queues_snapshot(now),
        };
        let a = AgentMsg::Agents {
            agents: self.acd.agents_snapshot(now),
        };
        for (_, tx) in self.agents.values() {
            let _ = tx.send(q.clone());
            let _ = tx.send(a.clone());
        }
    }
}

/// `RingTimeout` → `ring_timeout`.
fn snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acd::{Acd, AgentConfig, QueueConfig};
    use crate::time::Instant;

    #[test]
    fn the_board_changes_with_counts_and_states_not_with_ticking_times() {
        let agent = AgentConfig {
            id: "ana".into(),
            name: "Ana".into(),
            password_hash: String::new(),
            skills: Default::default(),
            queues: vec!["billing".into()],
            sip: None,
        };
        let mut acd = Acd::new(vec![QueueConfig::new("billing")], vec![agent]);
        let board = |acd: &Acd, ms| Board {
            queues: acd.queues_snapshot(Instant::from_millis(ms)),
            agents: acd.agents_snapshot(Instant::from_millis(ms)),
        };
        let start = board_key(&board(&acd, 0));
        assert_eq!(start, board_key(&board(&acd, 60_000)), "time alone");
        acd.agent_login(Instant::from_millis(1_000), "ana");
        let logged_in = board_key(&board(&acd, 1_000));
        assert_ne!(start, logged_in, "an agent logged in");
        acd.set_available(Instant::from_millis(2_000), "ana");
        assert_ne!(
            logged_in,
            board_key(&board(&acd, 2_000)),
            "she is available"
        );
    }
}

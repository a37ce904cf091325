//! acd — PURE: skill-based routing of waiting calls to agents. No clock, no sockets: every input
//! carries `now`, and the runtime (one task owns the [`Acd`]) drains [`Acd::poll_event`] after each
//! input and sleeps until [`Acd::poll_timeout`], then calls [`Acd::handle_timeout`].
//!
//! # Routing rules
//! * **Order of calls.** Among waiting calls, higher `priority` first, then the earliest arrival,
//!   then the call id (so simultaneous arrivals are ordered the same way every run). A call that
//!   overflows or is transferred keeps its arrival; a callback may inherit a queued call's.
//! * **Matching.** A call is offered only to an Available agent who serves its queue and has
//!   every asked skill at or above the asked level. After waiting (since arrival) a queue's
//!   `relax` step's `after`, every need drops to at most that step's `level`; level 0 means the
//!   skill is no longer needed at all.
//! * **Choice of agent.** Among matching agents: the greatest sum of proficiencies on the asked
//!   skills, then the greatest weakest one, then the longest idle (since they became Available),
//!   then the agent id. Calls are served greedily in call order, so a call nobody can take does
//!   not hold up the calls behind it.
//! * **One at a time.** A call rings one agent at a time ([`AcdEvent::Offer`]); an agent has at
//!   most one offer or call. No answer within the queue's `ring_timeout` →
//!   [`CancelReason::RingTimeout`], the agent goes Away and the call is offered to the next agent.
//!   An agent who logs out or goes away while rung → [`CancelReason::AgentLeft`], re-offered.
//!   An agent who declines stays Available but is skipped for that call while it waits in that
//!   queue (no `OfferCancelled` is emitted: the decline came from the runtime).
//! * **Deadlines.** The flow step's `timeout` counts from enqueue (or from a transfer) and ends in
//!   [`AcdEvent::QueueTimeout`]. A queue's `max_wait` counts from entering that queue: the call
//!   overflows if `overflow` is set (and that queue, or one down its chain, has room), otherwise
//!   times out. A call ringing an agent when its deadline falls is withdrawn
//!   ([`CancelReason::CallerLeft`]).
//! * **Full queue.** `max_size` counts waiting calls, ringing ones included. A full queue passes
//!   a new call down its overflow chain; with no room anywhere, [`EnqueueError::QueueFull`].
//! * **After the call.** [`Acd::call_finished`] → WrapUp for the queue's `wrap_up`, then
//!   Available (or Away if the agent asked for it during the call).
//! * **Estimated wait** = position × the queue's average handle time (answer to end of wrap-up),
//!   falling back to the average over all queues; `None` before any call was handled.

mod config;
pub mod routing;
mod snapshot;
#[cfg(test)]
mod tests;

pub use config::{
    duration, opt_duration, parse_duration, validate, AgentConfig, QueueConfig, Relax,
    DEFAULT_ANNOUNCE_EVERY, DEFAULT_MUSIC, MAX_PROFICIENCY, MIN_PROFICIENCY,
};
pub use snapshot::{AgentSnapshot, QueueSnapshot, StateCounts};

use crate::time::Instant;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// Calls held at once, all queues together; beyond it new calls are refused as `QueueFull`.
pub const MAX_CALLS: usize = 100_000;
/// How many departed calls' arrival times are kept for `callback_enqueue(.., keep_place_of)`.
const DEPARTED_MEMORY: usize = 1024;

/// What a flow's `queue` step asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequest {
    pub call_id: String,
    pub queue: String,
    pub priority: i64,
    pub skills: BTreeMap<String, u8>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    LoggedOut,
    Available,
    Away,
    Ringing,
    OnCall,
    WrapUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    CallerLeft,
    RingTimeout,
    AgentLeft,
}

/// What the runtime must do; drained with [`Acd::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcdEvent {
    /// Ring this agent for this call.
    Offer {
        offer_id: u64,
        call_id: String,
        agent_id: String,
        queue: String,
    },
    /// Stop ringing; the call (if still here) waits for the next agent.
    OfferCancelled {
        offer_id: u64,
        call_id: String,
        agent_id: String,
        reason: CancelReason,
    },
    /// The agent answered: bridge them. `waited` counts from enqueue (or transfer).
    Connected {
        offer_id: u64,
        call_id: String,
        agent_id: String,
        waited: Duration,
    },
    /// The call left the ACD; the flow follows `on_timeout`.
    QueueTimeout { call_id: String },
    /// The call now waits in `to` (announcements and music follow that queue's config).
    Overflowed {
        call_id: String,
        from: String,
        to: String,
    },
    AgentState {
        agent_id: String,
        state: AgentState,
        since: Instant,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnqueueError {
    #[error("no such queue")]
    UnknownQueue,
    #[error("the queue is full and has no overflow with room")]
    QueueFull,
    #[error("this call is already queued")]
    DuplicateCall,
    #[error("no connected call with this id")]
    UnknownCall,
    #[error("no such agent")]
    UnknownAgent,
    #[error("the agent is not available")]
    AgentUnavailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Waiting,
    Ringing {
        offer_id: u64,
        agent_id: String,
        until: Instant,
    },
    Connected {
        agent_id: String,
    },
}

#[derive(Debug, Clone)]
struct CallEntry {
    req: CallRequest,
    /// Orders calls and drives relaxation; kept across overflow and transfer.
    arrival: Instant,
    /// Start of the current wait: the flow's timeout and `waited` count from it.
    wait_start: Instant,
    /// When the call entered its current queue: `max_wait` counts from it.
    queue_entered: Instant,
    callback: bool,
    phase: Phase,
    /// Agents who declined this call in this queue.
    declined: BTreeSet<String>,
    /// A transfer to a named agent: offered to them only, once.
    target_agent: Option<String>,
}

impl CallEntry {
    fn holds_place(&self) -> bool {
        !matches!(self.phase, Phase::Connected { .. })
    }
}

#[derive(Debug, Clone)]
struct AgentEntry {
    config: AgentConfig,
    state: AgentState,
    since: Instant,
    idle_since: Instant,
    /// The call ringing them, on the line, or (in wrap-up) just ended.
    call: Option<String>,
    wrap_until: Option<Instant>,
    /// Asked to go Away while on a call: applied when wrap-up ends.
    away_after: bool,
    /// The queue and the answer time of the call being handled, for the average handle time.
    handling: Option<(String, Instant)>,
}

#[derive(Debug, Clone, Default)]
struct QueueStats {
    entered: u64,
    answered: u64,
    answered_in_sl: u64,
    abandoned: u64,
    timed_out: u64,
    handled: u64,
    handle_total: Duration,
}

/// The whole routing state. Deterministic: the same inputs give the same events.
#[derive(Debug)]
pub struct Acd {
    queues: BTreeMap<String, QueueConfig>,
    queue_order: Vec<String>,
    agents: BTreeMap<String, AgentEntry>,
    calls: BTreeMap<String, CallEntry>,
    offers: BTreeMap<u64, String>,
    next_offer: u64,
    events: VecDeque<AcdEvent>,
    stats: BTreeMap<String, QueueStats>,
    departed: VecDeque<(String, Instant)>,
    last_now: Instant,
}

impl Acd {
    /// Duplicated names or ids keep their first entry; [`validate`] reports them.
    pub fn new(queues: Vec<QueueConfig>, agents: Vec<AgentConfig>) -> Acd {
        let mut acd = Acd {
            queues: BTreeMap::new(),
            queue_order: Vec::new(),
            agents: BTreeMap::new(),
            calls: BTreeMap::new(),
            offers: BTreeMap::new(),
            next_offer: 1,
            events: VecDeque::new(),
            stats: BTreeMap::new(),
            departed: VecDeque::new(),
            last_now: Instant::ZERO,
        };
        for q in queues {
            if !acd.queues.contains_key(&q.name) {
                acd.queue_order.push(q.name.clone());
                acd.stats.insert(q.name.clone(), QueueStats::default());
                acd.queues.insert(q.name.clone(), q);
            }
        }
        for a in agents {
            acd.agents.entry(a.id.clone()).or_insert(AgentEntry {
                config: a,
                state: AgentState::LoggedOut,
                since: Instant::ZERO,
                idle_since: Instant::ZERO,
                call: None,
                wrap_until: None,
                away_after: false,
                handling: None,
            });
        }
        acd
    }

    pub fn agent(&self, id: &str) -> Option<&AgentConfig> {
        self.agents.get(id).map(|a| &a.config)
    }

    pub fn agent_state(&self, id: &str) -> Option<AgentState> {
        self.agents.get(id).map(|a| a.state)
    }

    pub fn queue(&self, name: &str) -> Option<&QueueConfig> {
        self.queues.get(name)
    }

    /// The queue a call currently waits in (or was answered from).
    pub fn call_queue(&self, call_id: &str) -> Option<&str> {
        self.calls.get(call_id).map(|c| c.req.queue.as_str())
    }

    pub fn enqueue(&mut self, now: Instant, req: CallRequest) -> Result<(), EnqueueError> {
        self.admit(now, req, now, false)
    }

    /// A callback waits like a caller. With `keep_place_of` naming a call that is queued (or
    /// left recently), the callback inherits its arrival time; a call still queued is withdrawn
    /// (not counted as abandoned), since its caller has just chosen to be called back.
    pub fn callback_enqueue(
        &mut self,
        now: Instant,
        req: CallRequest,
        keep_place_of: Option<&str>,
    ) -> Result<(), EnqueueError> {
        let inherited = keep_place_of.and_then(|id| {
            self.calls.get(id).filter(|c| c.holds_place()).map(|c| c.arrival).or_else(|| {
                self.departed
                    .iter()
                    .rev()
                    .find(|(d, _)| d == id)
                    .map(|(_, t)| *t)
            })
        });
        let arrival = inherited.map_or(now, |t| t.min(now));
        let old = keep_place_of.filter(|id| self.calls.get(*id).is_some_and(|c| c.holds_place()));
        if let Some(old) = old {
            // Refuse before withdrawing the old call, so a mistake does not cost its place.
            if self.calls.contains_key(&req.call_id) {
                return Err(EnqueueError::DuplicateCall);
            }
            if !self.queues.contains_key(&req.queue) {
                return Err(EnqueueError::UnknownQueue);
            }
            let old = old.to_string();
            self.remove_call(now, &old, false);
        }
        self.admit(now, req, arrival, true)
    }

    fn admit(
        &mut self,
        now: Instant,
        req: CallRequest,
        arrival: Instant,
        callback: bool,
    ) -> Result<(), EnqueueError> {
        self.last_now = now;
        if self.calls.contains_key(&req.call_id) {
            return Err(EnqueueError::DuplicateCall);
        }
        if !self.queues.contains_key(&req.queue) {
            return Err(EnqueueError::UnknownQueue);
        }
        if self.calls.len() >= MAX_CALLS {
            return Err(EnqueueError::QueueFull);
        }
        let hops = self.find_room(&req.queue)?;
        let mut req = req;
        let first = req.queue.clone();
        if let Some(last) = hops.last() {
            req.queue = last.clone();
        }
        let call_id = req.call_id.clone();
        self.count(&first, |s| s.entered += 1);
        self.calls.insert(
            call_id.clone(),
            CallEntry {
                req,
                arrival,
                wait_start: now,
                queue_entered: now,
                callback,
                phase: Phase::Waiting,
                declined: BTreeSet::new(),
                target_agent: None,
            },
        );
        self.emit_hops(&call_id, &first, &hops);
        self.dispatch(now);
        Ok(())
    }

    /// The overflow hops needed to reach a queue with room, starting at `queue` (empty if it has
    /// room itself). A chain that loops back is treated as having no room.
    fn find_room(&self, queue: &str) -> Result<Vec<String>, EnqueueError> {
        let mut hops = Vec::new();
        let mut seen = BTreeSet::new();
        let mut at = queue.to_string();
        loop {
            let cfg = self.queues.get(&at).ok_or(EnqueueError::UnknownQueue)?;
            if self.has_room(cfg) {
                return Ok(hops);
            }
            seen.insert(at.clone());
            match &cfg.overflow {
                Some(next) if !seen.contains(next) && self.queues.contains_key(next) => {
                    hops.push(next.clone());
                    at = next.clone();
                }
                _ => return Err(EnqueueError::QueueFull),
            }
        }
    }

    fn has_room(&self, cfg: &QueueConfig) -> bool {
        let Some(max) = cfg.max_size else {
            return true;
        };
        let waiting = self
            .calls
            .values()
            .filter(|c| c.req.queue == cfg.name && c.holds_place())
            .count();
        waiting < max
    }

    fn emit_hops(&mut self, call_id: &str, first: &str, hops: &[String]) {
        let mut from = first.to_string();
        for to in hops {
            self.count(to, |s| s.entered += 1);
            self.events.push_back(AcdEvent::Overflowed {
                call_id: call_id.to_string(),
                from: std::mem::replace(&mut from, to.clone()),
                to: to.clone(),
            });
        }
    }

    /// The caller hung up or pressed the exit key: removed at once. On a connected call this is
    /// the caller ending the conversation: the agent goes to wrap-up.
    pub fn leave(&mut self, now: Instant, call_id: &str) {
        self.last_now = now;
        if self.calls.contains_key(call_id) {
            self.remove_call(now, call_id, true);
            self.dispatch(now);
        }
    }

    /// Removes a call, cancelling its offer or ending its conversation. `abandoned` counts a
    /// waiting call as abandoned in the stats.
    fn remove_call(&mut self, now: Instant, call_id: &str, abandoned: bool) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        if call.holds_place() {
            if abandoned {
                self.count(&call.req.queue, |s| s.abandoned += 1);
            }
            self.departed.push_back((call_id.to_string(), call.arrival));
            while self.departed.len() > DEPARTED_MEMORY {
                self.departed.pop_front();
            }
        }
        match call.phase {
            Phase::Waiting => {}
            Phase::Ringing {
                offer_id, agent_id, ..
            } => {
                self.offers.remove(&offer_id);
                self.events.push_back(AcdEvent::OfferCancelled {
                    offer_id,
                    call_id: call_id.to_string(),
                    agent_id: agent_id.clone(),
                    reason: CancelReason::CallerLeft,
                });
                self.back_to_available(now, &agent_id);
            }
            Phase::Connected { agent_id } => {
                self.start_wrap_up(now, &agent_id, &call.req.queue);
            }
        }
    }

    /// Returns false for an unknown agent. A logged-in agent starts Away; logging in again
    /// changes nothing.
    pub fn agent_login(&mut self, now: Instant, agent_id: &str) -> bool {
        self.last_now = now;
        let Some(a) = self.agents.get(agent_id) else {
            return false;
        };
        if a.state == AgentState::LoggedOut {
            self.set_state(now, agent_id, AgentState::Away);
        }
        true
    }

    /// A call ringing them is re-offered; a call they were on leaves the ACD (the runtime ends
    /// it); wrap-up ends.
    pub fn agent_logout(&mut self, now: Instant, agent_id: &str) {
        self.last_now = now;
        let Some(a) = self.agents.get(agent_id) else {
            return;
        };
        match a.state {
            AgentState::LoggedOut => return,
            AgentState::Ringing => self.withdraw_offer_from(now, agent_id, CancelReason::AgentLeft),
            AgentState::OnCall => {
                if let Some(call_id) = a.call.clone() {
                    self.calls.remove(&call_id);
                }
                self.finish_handling(now, agent_id);
            }
            AgentState::WrapUp => self.finish_handling(now, agent_id),
            AgentState::Available | AgentState::Away => {}
        }
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.call = None;
            a.wrap_until = None;
            a.away_after = false;
        }
        self.set_state(now, agent_id, AgentState::LoggedOut);
        self.dispatch(now);
    }

    /// From Away (or wrap-up, ending it early). Ignored while logged out, ringing or on a call.
    pub fn set_available(&mut self, now: Instant, agent_id: &str) {
        self.last_now = now;
        match self.agents.get(agent_id).map(|a| a.state) {
            Some(AgentState::Away) => {
                self.become_available(now, agent_id);
                self.dispatch(now);
            }
            Some(AgentState::WrapUp) => {
                if let Some(a) = self.agents.get_mut(agent_id) {
                    a.away_after = false;
                }
                self.end_wrap_up(now, agent_id);
                self.dispatch(now);
            }
            Some(AgentState::OnCall) => {
                if let Some(a) = self.agents.get_mut(agent_id) {
                    a.away_after = false;
                }
            }
            _ => {}
        }
    }

    /// Available → Away at once; while rung the offer is withdrawn and re-offered; on a call the
    /// agent goes Away when the wrap-up ends; in wrap-up the wrap-up ends now.
    pub fn set_away(&mut self, now: Instant, agent_id: &str) {
        self.last_now = now;
        match self.agents.get(agent_id).map(|a| a.state) {
            Some(AgentState::Available) => self.set_state(now, agent_id, AgentState::Away),
            Some(AgentState::Ringing) => {
                self.withdraw_offer_from(now, agent_id, CancelReason::AgentLeft);
                self.set_state(now, agent_id, AgentState::Away);
                self.dispatch(now);
            }
            Some(AgentState::OnCall) => {
                if let Some(a) = self.agents.get_mut(agent_id) {
                    a.away_after = true;
                }
            }
            Some(AgentState::WrapUp) => {
                if let Some(a) = self.agents.get_mut(agent_id) {
                    a.away_after = true;
                }
                self.end_wrap_up(now, agent_id);
            }
            _ => {}
        }
    }

    /// The agent picked up. False if the offer is gone (cancelled, timed out, raced).
    pub fn offer_answered(&mut self, now: Instant, offer_id: u64) -> bool {
        self.last_now = now;
        let Some(call_id) = self.offers.remove(&offer_id) else {
            return false;
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return false;
        };
        let Phase::Ringing { agent_id, .. } = &call.phase else {
            return false;
        };
        let agent_id = agent_id.clone();
        call.phase = Phase::Connected {
            agent_id: agent_id.clone(),
        };
        call.target_agent = None;
        let waited = now.saturating_since(call.wait_start);
        let queue = call.req.queue.clone();
        let in_sl = self
            .queues
            .get(&queue)
            .is_some_and(|q| waited <= q.service_level);
        self.count(&queue, |s| {
            s.answered += 1;
            if in_sl {
                s.answered_in_sl += 1;
            }
        });
        if let Some(a) = self.agents.get_mut(&agent_id) {
            a.handling = Some((queue, now));
        }
        self.events.push_back(AcdEvent::Connected {
            offer_id,
            call_id,
            agent_id: agent_id.clone(),
            waited,
        });
        self.set_state(now, &agent_id, AgentState::OnCall);
        true
    }

    /// The agent refused: they stay Available but are skipped for this call in this queue, and
    /// the call goes to the next agent.
    pub fn offer_declined(&mut self, now: Instant, offer_id: u64) {
        self.last_now = now;
        let Some(call_id) = self.offers.remove(&offer_id) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        let Phase::Ringing { agent_id, .. } = std::mem::replace(&mut call.phase, Phase::Waiting)
        else {
            return;
        };
        call.declined.insert(agent_id.clone());
        call.target_agent = None;
        self.back_to_available(now, &agent_id);
        self.dispatch(now);
    }

    /// The conversation ended (either side hung up): the call leaves the ACD and the agent
    /// starts wrap-up. Ignored unless the agent is on a call.
    pub fn call_finished(&mut self, now: Instant, agent_id: &str) {
        self.last_now = now;
        let Some(a) = self.agents.get(agent_id) else {
            return;
        };
        if a.state != AgentState::OnCall {
            return;
        }
        let queue = a
            .call
            .as_ref()
            .and_then(|c| self.calls.remove(c))
            .map(|c| c.req.queue)
            .or_else(|| a.handling.as_ref().map(|h| h.0.clone()))
            .unwrap_or_default();
        self.start_wrap_up(now, agent_id, &queue);
        self.dispatch(now);
    }

    /// The agent ends wrap-up early.
    pub fn wrap_up_done(&mut self, now: Instant, agent_id: &str) {
        self.last_now = now;
        if self.agents.get(agent_id).map(|a| a.state) == Some(AgentState::WrapUp) {
            self.end_wrap_up(now, agent_id);
            self.dispatch(now);
        }
    }

    /// A connected call goes back to waiting, in `to_queue` (default: its own queue), or rings
    /// the named agent first (bypassing queue membership and skills; if they do not answer, the
    /// call waits in the queue). The transferring agent goes to wrap-up. Moving to another queue
    /// drops the skill needs asked for the old one; the call keeps its arrival time, and its
    /// flow timeout and `waited` start again. On error nothing changes.
    pub fn transfer(
        &mut self,
        now: Instant,
        call_id: &str,
        to_queue: Option<&str>,
        to_agent: Option<&str>,
    ) -> Result<(), EnqueueError> {
        self.last_now = now;
        let call = self.calls.get(call_id).ok_or(EnqueueError::UnknownCall)?;
        let Phase::Connected { agent_id: from_agent } = &call.phase else {
            return Err(EnqueueError::UnknownCall);
        };
        let from_agent = from_agent.clone();
        let old_queue = call.req.queue.clone();
        let first = to_queue.unwrap_or(&old_queue).to_string();
        if !self.queues.contains_key(&first) {
            return Err(EnqueueError::UnknownQueue);
        }
        let hops = match to_agent {
            Some(target) => {
                let a = self.agents.get(target).ok_or(EnqueueError::UnknownAgent)?;
                if a.state != AgentState::Available {
                    return Err(EnqueueError::AgentUnavailable);
                }
                Vec::new()
            }
            None => self.find_room(&first)?,
        };
        let dest = hops.last().cloned().unwrap_or_else(|| first.clone());
        if let Some(call) = self.calls.get_mut(call_id) {
            if dest != old_queue {
                call.req.skills.clear();
            }
            call.req.queue = dest;
            call.phase = Phase::Waiting;
            call.wait_start = now;
            call.queue_entered = now;
            call.declined.clear();
            call.target_agent = to_agent.map(str::to_string);
        }
        if first != old_queue {
            self.count(&first, |s| s.entered += 1);
        }
        self.emit_hops(call_id, &first, &hops);
        self.start_wrap_up(now, &from_agent, &old_queue);
        if let Some(target) = to_agent {
            // Before general dispatch, so a waiting call cannot take the named agent first.
            self.offer(now, call_id, target);
        }
        self.dispatch(now);
        Ok(())
    }

    /// Fires every deadline at or before `now`, then routes.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        let rung_out: Vec<String> = self
            .calls
            .iter()
            .filter_map(|(id, c)| match &c.phase {
                Phase::Ringing { until, .. } if *until <= now => Some(id.clone()),
                _ => None,
            })
            .collect();
        for call_id in rung_out {
            self.ring_timeout(now, &call_id);
        }
        let wrapped: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| a.state == AgentState::WrapUp && a.wrap_until.is_some_and(|t| t <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for agent_id in wrapped {
            self.end_wrap_up(now, &agent_id);
        }
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        for call_id in ids {
            self.call_deadlines(now, &call_id);
        }
        self.dispatch(now);
    }

    fn ring_timeout(&mut self, now: Instant, call_id: &str) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Phase::Ringing {
            offer_id, agent_id, ..
        } = std::mem::replace(&mut call.phase, Phase::Waiting)
        else {
            return;
        };
        call.target_agent = None;
        self.offers.remove(&offer_id);
        self.events.push_back(AcdEvent::OfferCancelled {
            offer_id,
            call_id: call_id.to_string(),
            agent_id: agent_id.clone(),
            reason: CancelReason::RingTimeout,
        });
        if let Some(a) = self.agents.get_mut(&agent_id) {
            a.call = None;
        }
        self.set_state(now, &agent_id, AgentState::Away);
    }

    fn call_deadlines(&mut self, now: Instant, call_id: &str) {
        let Some(call) = self.calls.get(call_id).filter(|c| c.holds_place()) else {
            return;
        };
        if call.req.timeout.is_some_and(|t| call.wait_start + t <= now) {
            self.time_out(now, call_id);
            return;
        }
        let queue = call.req.queue.clone();
        let Some(cfg) = self.queues.get(&queue) else {
            return;
        };
        if !cfg.max_wait.is_some_and(|m| call.queue_entered + m <= now) {
            return;
        }
        let hops = cfg
            .overflow
            .as_ref()
            .and_then(|next| self.find_room(next).ok().map(|h| (next.clone(), h)));
        let Some((next, mut hops)) = hops.filter(|(next, h)| {
            // A chain leading back here would bounce the call forever.
            *next != queue && !h.contains(&queue)
        }) else {
            self.time_out(now, call_id);
            return;
        };
        hops.insert(0, next);
        self.withdraw_offer(now, call_id, CancelReason::CallerLeft);
        let dest = hops.last().cloned().unwrap_or_default();
        if let Some(call) = self.calls.get_mut(call_id) {
            call.req.queue = dest;
            call.queue_entered = now;
            call.declined.clear();
            call.target_agent = None;
        }
        self.emit_hops(call_id, &queue, &hops);
    }

    fn time_out(&mut self, now: Instant, call_id: &str) {
        if let Some(q) = self.calls.get(call_id).map(|c| c.req.queue.clone()) {
            self.count(&q, |s| s.timed_out += 1);
        }
        self.remove_call(now, call_id, false);
        self.events.push_back(AcdEvent::QueueTimeout {
            call_id: call_id.to_string(),
        });
    }

    /// The next deadline: a ring timeout, a wrap-up's end, a flow timeout or `max_wait`, or a
    /// relax step that may let a waiting call match an agent already free.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.calls.values().flat_map(|c| {
            let mut due = Vec::new();
            match &c.phase {
                Phase::Ringing { until, .. } => due.push(*until),
                Phase::Connected { .. } => return due,
                Phase::Waiting => {}
            }
            if let Some(t) = c.req.timeout {
                due.push(c.wait_start + t);
            }
            if let Some(q) = self.queues.get(&c.req.queue) {
                if let Some(m) = q.max_wait {
                    due.push(c.queue_entered + m);
                }
                if c.phase == Phase::Waiting && !c.req.skills.is_empty() {
                    due.extend(routing::next_relax(c.arrival, &q.relax, self.last_now));
                }
            }
            due
        });
        let agents = self
            .agents
            .values()
            .filter(|a| a.state == AgentState::WrapUp)
            .filter_map(|a| a.wrap_until);
        calls.chain(agents).min()
    }

    pub fn poll_event(&mut self) -> Option<AcdEvent> {
        self.events.pop_front()
    }

    /// 1-based position among the calls waiting in the same queue, and the estimated wait.
    /// `None` for an unknown or connected call.
    pub fn position(&self, call_id: &str) -> Option<(usize, Option<Duration>)> {
        let me = self.calls.get(call_id).filter(|c| c.holds_place())?;
        let key = routing::call_key(me.req.priority, me.arrival, call_id);
        let ahead = self
            .calls
            .iter()
            .filter(|(id, c)| {
                c.holds_place()
                    && c.req.queue == me.req.queue
                    && routing::call_key(c.req.priority, c.arrival, id) < key
            })
            .count();
        let position = ahead + 1;
        let estimate = self
            .average_handle(&me.req.queue)
            .map(|aht| aht.saturating_mul(u32::try_from(position).unwrap_or(u32::MAX)));
        Some((position, estimate))
    }

    fn average_handle(&self, queue: &str) -> Option<Duration> {
        let avg = |n: u64, total: Duration| {
            (n > 0).then(|| {
                let micros = total.as_micros() / u128::from(n);
                Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
            })
        };
        let own = self.stats.get(queue).and_then(|s| avg(s.handled, s.handle_total));
        own.or_else(|| {
            let (n, total) = self.stats.values().fold((0, Duration::ZERO), |(n, t), s| {
                (n + s.handled, t.saturating_add(s.handle_total))
            });
            avg(n, total)
        })
    }

    /// Offers every waiting call that can be served, best call first.
    fn dispatch(&mut self, now: Instant) {
        let mut waiting: Vec<(&String, &CallEntry)> = self
            .calls
            .iter()
            .filter(|(_, c)| c.phase == Phase::Waiting)
            .collect();
        waiting.sort_by(|(a_id, a), (b_id, b)| {
            routing::call_key(a.req.priority, a.arrival, a_id)
                .cmp(&routing::call_key(b.req.priority, b.arrival, b_id))
        });
        let order: Vec<String> = waiting.into_iter().map(|(id, _)| id.clone()).collect();
        for call_id in order {
            if let Some(agent_id) = self.best_agent(now, &call_id) {
                self.offer(now, &call_id, &agent_id);
            }
        }
    }

    fn best_agent(&self, now: Instant, call_id: &str) -> Option<String> {
        let call = self.calls.get(call_id)?;
        if let Some(target) = &call.target_agent {
            let a = self.agents.get(target)?;
            return (a.state == AgentState::Available).then(|| target.clone());
        }
        let cfg = self.queues.get(&call.req.queue)?;
        let waited = now.saturating_since(call.arrival);
        self.agents
            .iter()
            .filter(|(id, a)| {
                a.state == AgentState::Available
                    && a.config.queues.contains(&call.req.queue)
                    && !call.declined.contains(*id)
            })
            .filter_map(|(id, a)| {
                let fit = routing::fit(&a.config.skills, &call.req.skills, &cfg.relax, waited)?;
                Some((routing::agent_key(fit, a.idle_since, id), id))
            })
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, id)| id.clone())
    }

    fn offer(&mut self, now: Instant, call_id: &str, agent_id: &str) {
        let available = self
            .agents
            .get(agent_id)
            .is_some_and(|a| a.state == AgentState::Available);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if !available || call.phase != Phase::Waiting {
            return;
        }
        let ring = self
            .queues
            .get(&call.req.queue)
            .map_or(Duration::from_secs(15), |q| q.ring_timeout);
        let offer_id = self.next_offer;
        self.next_offer += 1;
        call.phase = Phase::Ringing {
            offer_id,
            agent_id: agent_id.to_string(),
            until: now + ring,
        };
        let queue = call.req.queue.clone();
        self.offers.insert(offer_id, call_id.to_string());
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.call = Some(call_id.to_string());
        }
        self.events.push_back(AcdEvent::Offer {
            offer_id,
            call_id: call_id.to_string(),
            agent_id: agent_id.to_string(),
            queue,
        });
        self.set_state(now, agent_id, AgentState::Ringing);
    }

    /// Cancels the offer ringing `agent_id` (who is leaving); the call waits again.
    fn withdraw_offer_from(&mut self, now: Instant, agent_id: &str, reason: CancelReason) {
        let call_id = self.agents.get(agent_id).and_then(|a| a.call.clone());
        if let Some(call_id) = call_id {
            self.withdraw_offer(now, &call_id, reason);
        }
    }

    /// Cancels the call's offer if it is ringing. The agent returns to Available (they did
    /// nothing wrong) unless the reason is theirs.
    fn withdraw_offer(&mut self, now: Instant, call_id: &str, reason: CancelReason) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Phase::Ringing {
            offer_id, agent_id, ..
        } = std::mem::replace(&mut call.phase, Phase::Waiting)
        else {
            return;
        };
        call.target_agent = None;
        self.offers.remove(&offer_id);
        self.events.push_back(AcdEvent::OfferCancelled {
            offer_id,
            call_id: call_id.to_string(),
            agent_id: agent_id.clone(),
            reason,
        });
        if let Some(a) = self.agents.get_mut(&agent_id) {
            a.call = None;
        }
        if reason == CancelReason::CallerLeft {
            self.back_to_available(now, &agent_id);
        }
    }

    /// After an offer ended through no fault of theirs: Available again, keeping their place in
    /// the longest-idle order.
    fn back_to_available(&mut self, now: Instant, agent_id: &str) {
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.call = None;
            if a.state == AgentState::Ringing {
                self.set_state(now, agent_id, AgentState::Available);
            }
        }
    }

    fn become_available(&mut self, now: Instant, agent_id: &str) {
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.idle_since = now;
            a.call = None;
        }
        self.set_state(now, agent_id, AgentState::Available);
    }

    fn start_wrap_up(&mut self, now: Instant, agent_id: &str, queue: &str) {
        let wrap = self.queues.get(queue).map_or(Duration::ZERO, |q| q.wrap_up);
        let Some(a) = self.agents.get_mut(agent_id) else {
            return;
        };
        if a.state != AgentState::OnCall {
            return;
        }
        if wrap.is_zero() {
            self.end_wrap_up(now, agent_id);
            return;
        }
        a.wrap_until = Some(now + wrap);
        self.set_state(now, agent_id, AgentState::WrapUp);
    }

    fn end_wrap_up(&mut self, now: Instant, agent_id: &str) {
        self.finish_handling(now, agent_id);
        let Some(a) = self.agents.get_mut(agent_id) else {
            return;
        };
        a.wrap_until = None;
        let away = std::mem::take(&mut a.away_after);
        if away {
            a.call = None;
            self.set_state(now, agent_id, AgentState::Away);
        } else {
            self.become_available(now, agent_id);
        }
    }

    /// Adds the agent's current call to the average handle time.
    fn finish_handling(&mut self, now: Instant, agent_id: &str) {
        let Some((queue, since)) = self.agents.get_mut(agent_id).and_then(|a| a.handling.take())
        else {
            return;
        };
        let took = now.saturating_since(since);
        self.count(&queue, |s| {
            s.handled += 1;
            s.handle_total = s.handle_total.saturating_add(took);
        });
    }

    fn set_state(&mut self, now: Instant, agent_id: &str, state: AgentState) {
        let Some(a) = self.agents.get_mut(agent_id) else {
            return;
        };
        a.state = state;
        a.since = now;
        self.events.push_back(AcdEvent::AgentState {
            agent_id: agent_id.to_string(),
            state,
            since: now,
        });
    }

    fn count(&mut self, queue: &str, f: impl FnOnce(&mut QueueStats)) {
        if let Some(s) = self.stats.get_mut(queue) {
            f(s);
        }
    }
}

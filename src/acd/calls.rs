//! The caller's side: entering a queue (or a callback), leaving, transfers, and the deadlines
//! that move or end a waiting call.

use super::{
    routing, Acd, AcdEvent, AgentState, CallEntry, CallRequest, CancelReason, EnqueueError, Phase,
    QueueConfig, DEPARTED_MEMORY, MAX_CALLS,
};
use crate::time::Instant;
use std::collections::BTreeSet;

impl Acd {
    pub fn enqueue(&mut self, now: Instant, req: CallRequest) -> Result<(), EnqueueError> {
        self.admit(now, req, now, false)
    }

    /// A callback waits like a caller. With `keep_place_of` naming a call that is queued (or
    /// left recently), the callback inherits its arrival time and priority; a call still queued is withdrawn
    /// (not counted as abandoned), since its caller has just chosen to be called back.
    pub fn callback_enqueue(
        &mut self,
        now: Instant,
        req: CallRequest,
        keep_place_of: Option<&str>,
    ) -> Result<(), EnqueueError> {
        let inherited = keep_place_of.and_then(|id| self.place_of(id));
        let mut req = req;
        if let Some((_, priority)) = inherited {
            req.priority = priority;
        }
        let inherited = inherited.map(|(t, _)| t);
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

    pub(super) fn admit(
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
    pub(super) fn find_room(&self, queue: &str) -> Result<Vec<String>, EnqueueError> {
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

    pub(super) fn has_room(&self, cfg: &QueueConfig) -> bool {
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

    pub(super) fn emit_hops(&mut self, call_id: &str, first: &str, hops: &[String]) {
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
    pub(super) fn remove_call(&mut self, now: Instant, call_id: &str, abandoned: bool) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        if call.holds_place() {
            if abandoned {
                self.count(&call.req.queue, |s| s.abandoned += 1);
            }
            self.departed
                .push_back((call_id.to_string(), call.arrival, call.req.priority));
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
        let Phase::Connected {
            agent_id: from_agent,
        } = &call.phase
        else {
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
            .filter(|(_, a)| {
                a.state == AgentState::WrapUp && a.wrap_until.is_some_and(|t| t <= now)
            })
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

    pub(super) fn ring_timeout(&mut self, now: Instant, call_id: &str) {
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

    pub(super) fn call_deadlines(&mut self, now: Instant, call_id: &str) {
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
        if cfg.max_wait.is_none_or(|m| call.queue_entered + m > now) {
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

    pub(super) fn time_out(&mut self, now: Instant, call_id: &str) {
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
}

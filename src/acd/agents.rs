//! The agent's side: logging in and out, availability, answering or declining an offer,
//! wrap-up, and the dispatcher that picks who gets which call.

use super::{routing, Acd, AcdEvent, AgentState, CallEntry, CancelReason, Phase};
use crate::time::Instant;
use std::time::Duration;

impl Acd {
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

    /// Offers every waiting call that can be served, best call first.
    pub(super) fn dispatch(&mut self, now: Instant) {
        let mut waiting: Vec<(&String, &CallEntry)> = self
            .calls
            .iter()
            .filter(|(_, c)| c.phase == Phase::Waiting)
            .collect();
        waiting.sort_by(|(a_id, a), (b_id, b)| {
            routing::call_key(a.req.priority, a.arrival, a_id).cmp(&routing::call_key(
                b.req.priority,
                b.arrival,
                b_id,
            ))
        });
        let order: Vec<String> = waiting.into_iter().map(|(id, _)| id.clone()).collect();
        for call_id in order {
            if let Some(agent_id) = self.best_agent(now, &call_id) {
                self.offer(now, &call_id, &agent_id);
            }
        }
    }

    pub(super) fn best_agent(&self, now: Instant, call_id: &str) -> Option<String> {
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

    pub(super) fn offer(&mut self, now: Instant, call_id: &str, agent_id: &str) {
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
    pub(super) fn withdraw_offer_from(
        &mut self,
        now: Instant,
        agent_id: &str,
        reason: CancelReason,
    ) {
        let call_id = self.agents.get(agent_id).and_then(|a| a.call.clone());
        if let Some(call_id) = call_id {
            self.withdraw_offer(now, &call_id, reason);
        }
    }

    /// Cancels the call's offer if it is ringing. The agent returns to Available (they did
    /// nothing wrong) unless the reason is theirs.
    pub(super) fn withdraw_offer(&mut self, now: Instant, call_id: &str, reason: CancelReason) {
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
    pub(super) fn back_to_available(&mut self, now: Instant, agent_id: &str) {
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.call = None;
            if a.state == AgentState::Ringing {
                self.set_state(now, agent_id, AgentState::Available);
            }
        }
    }

    pub(super) fn become_available(&mut self, now: Instant, agent_id: &str) {
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.idle_since = now;
            a.call = None;
        }
        self.set_state(now, agent_id, AgentState::Available);
    }

    pub(super) fn start_wrap_up(&mut self, now: Instant, agent_id: &str, queue: &str) {
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

    pub(super) fn end_wrap_up(&mut self, now: Instant, agent_id: &str) {
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
    pub(super) fn finish_handling(&mut self, now: Instant, agent_id: &str) {
        let Some((queue, since)) = self
            .agents
            .get_mut(agent_id)
            .and_then(|a| a.handling.take())
        else {
            return;
        };
        let took = now.saturating_since(since);
        self.count(&queue, |s| {
            s.handled += 1;
            s.handle_total = s.handle_total.saturating_add(took);
        });
    }

    pub(super) fn set_state(&mut self, now: Instant, agent_id: &str, state: AgentState) {
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
}

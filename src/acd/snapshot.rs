//! Live views for `GET /api/queues`, `GET /api/agents` and the WebSocket that pushes them.
//! Nothing secret is in them: agents' password hashes never leave [`super::AgentConfig`].

use super::{Acd, AgentState};
use crate::time::Instant;
use serde::Serialize;
use std::collections::BTreeMap;

/// Agents serving a queue, by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    pub logged_out: usize,
    pub available: usize,
    pub away: usize,
    pub ringing: usize,
    pub on_call: usize,
    pub wrap_up: usize,
}

impl StateCounts {
    fn add(&mut self, state: AgentState) {
        let slot = match state {
            AgentState::LoggedOut => &mut self.logged_out,
            AgentState::Available => &mut self.available,
            AgentState::Away => &mut self.away,
            AgentState::Ringing => &mut self.ringing,
            AgentState::OnCall => &mut self.on_call,
            AgentState::WrapUp => &mut self.wrap_up,
        };
        *slot += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueSnapshot {
    pub name: String,
    /// Calls waiting, including one ringing an agent and callbacks.
    pub waiting: usize,
    /// Of `waiting`, how many are callbacks.
    pub callbacks: usize,
    /// The longest current wait (from enqueue, or from a transfer), 0 when nobody waits.
    pub longest_wait_ms: u64,
    /// Estimated wait for a call joining now, once a call has been handled.
    pub estimated_wait_ms: Option<u64>,
    pub agents: StateCounts,
    pub service_level_ms: u64,
    /// Since start: calls that entered (overflows count in each queue they reach), were
    /// answered (and of those, within the service level), hung up waiting, or timed out.
    pub entered: u64,
    pub answered: u64,
    pub answered_within_service_level: u64,
    pub abandoned: u64,
    pub timed_out: u64,
    pub average_handle_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentSnapshot {
    pub id: String,
    pub name: String,
    pub state: AgentState,
    pub since_ms_ago: u64,
    /// The call ringing them or on the line; in wrap-up, the call just ended.
    pub call_id: Option<String>,
    /// Time left of the wrap-up, for the console's countdown.
    pub wrap_up_left_ms: Option<u64>,
    pub queues: Vec<String>,
    pub skills: BTreeMap<String, u8>,
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Acd {
    /// One entry per queue, in config order.
    pub fn queues_snapshot(&self, now: Instant) -> Vec<QueueSnapshot> {
        self.queue_order
            .iter()
            .filter_map(|name| {
                let cfg = self.queues.get(name)?;
                let stats = self.stats.get(name).cloned().unwrap_or_default();
                let waiting: Vec<_> = self
                    .calls
                    .values()
                    .filter(|c| c.holds_place() && &c.req.queue == name)
                    .collect();
                let longest = waiting
                    .iter()
                    .map(|c| now.saturating_since(c.wait_start))
                    .max()
                    .unwrap_or_default();
                let mut agents = StateCounts::default();
                for a in self
                    .agents
                    .values()
                    .filter(|a| a.config.queues.contains(name))
                {
                    agents.add(a.state);
                }
                let aht = self.average_handle(name);
                let joiner = u32::try_from(waiting.len().saturating_add(1)).unwrap_or(u32::MAX);
                Some(QueueSnapshot {
                    name: name.clone(),
                    waiting: waiting.len(),
                    callbacks: waiting.iter().filter(|c| c.callback).count(),
                    longest_wait_ms: ms(longest),
                    estimated_wait_ms: aht.map(|d| ms(d.saturating_mul(joiner))),
                    agents,
                    service_level_ms: ms(cfg.service_level),
                    entered: stats.entered,
                    answered: stats.answered,
                    answered_within_service_level: stats.answered_in_sl,
                    abandoned: stats.abandoned,
                    timed_out: stats.timed_out,
                    average_handle_ms: aht.map(ms),
                })
            })
            .collect()
    }

    /// One entry per agent, by id.
    pub fn agents_snapshot(&self, now: Instant) -> Vec<AgentSnapshot> {
        self.agents
            .iter()
            .map(|(id, a)| AgentSnapshot {
                id: id.clone(),
                name: a.config.name.clone(),
                state: a.state,
                since_ms_ago: ms(now.saturating_since(a.since)),
                call_id: a.call.clone(),
                wrap_up_left_ms: a
                    .wrap_until
                    .filter(|_| a.state == AgentState::WrapUp)
                    .map(|t| ms(t.saturating_since(now))),
                queues: a.config.queues.clone(),
                skills: a.config.skills.clone(),
            })
            .collect()
    }
}

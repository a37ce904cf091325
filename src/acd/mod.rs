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

mod agents;
pub mod callback;
mod calls;
mod config;
pub mod routing;
mod snapshot;
#[cfg(test)]
mod tests;

pub use config::{
    duration, opt_duration, opt_key, parse_duration, validate, AgentConfig, QueueConfig, Relax,
    SipPhone, DEFAULT_ANNOUNCE_EVERY, DEFAULT_MUSIC, MAX_PROFICIENCY, MIN_PROFICIENCY,
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
    departed: VecDeque<(String, Instant, i64)>,
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
        let own = self
            .stats
            .get(queue)
            .and_then(|s| avg(s.handled, s.handle_total));
        own.or_else(|| {
            let (n, total) = self.stats.values().fold((0, Duration::ZERO), |(n, t), s| {
                (n + s.handled, t.saturating_add(s.handle_total))
            });
            avg(n, total)
        })
    }

    fn count(&mut self, queue: &str, f: impl FnOnce(&mut QueueStats)) {
        if let Some(s) = self.stats.get_mut(queue) {
            f(s);
        }
    }
}

//! The matching rules as small pure functions: what a call needs after relaxation, how well an
//! agent covers it, and the orders in which calls and agents are considered.

use super::config::Relax;
use crate::time::Instant;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::time::Duration;

/// A call's need for one skill once it has waited `waited`: the asked level, lowered to the
/// smallest `level` among the relax steps already reached.
pub fn effective_need(asked: u8, relax: &[Relax], waited: Duration) -> u8 {
    relax
        .iter()
        .filter(|r| waited >= r.after)
        .map(|r| r.level)
        .fold(asked, u8::min)
}

/// How well an agent covers a call's skills, or `None` if some need is not met. Better is
/// greater: the sum of the agent's proficiencies on the asked skills, then the weakest of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fit {
    pub sum: u32,
    pub weakest: u8,
}

pub fn fit(
    agent_skills: &BTreeMap<String, u8>,
    asked: &BTreeMap<String, u8>,
    relax: &[Relax],
    waited: Duration,
) -> Option<Fit> {
    let mut sum = 0u32;
    let mut weakest = u8::MAX;
    for (skill, level) in asked {
        let has = agent_skills.get(skill).copied().unwrap_or(0);
        if has < effective_need(*level, relax, waited) {
            return None;
        }
        sum += u32::from(has);
        weakest = weakest.min(has);
    }
    if asked.is_empty() {
        weakest = 0;
    }
    Some(Fit { sum, weakest })
}

/// Sort key for calls: smallest first means served first. Higher priority, then earlier
/// arrival, then call id so simultaneous arrivals are still ordered the same way every run.
pub fn call_key(priority: i64, arrival: Instant, call_id: &str) -> (Reverse<i64>, Instant, &str) {
    (Reverse(priority), arrival, call_id)
}

/// Sort key for candidate agents: smallest first means chosen. Best fit, then idle longest,
/// then agent id.
pub fn agent_key(fit: Fit, idle_since: Instant, agent_id: &str) -> (Reverse<Fit>, Instant, &str) {
    (Reverse(fit), idle_since, agent_id)
}

/// The next instant after `after` at which a call that arrived at `arrival` reaches a relax
/// step; the runtime must wake then, since the call may now match someone already free.
pub fn next_relax(arrival: Instant, relax: &[Relax], after: Instant) -> Option<Instant> {
    relax
        .iter()
        .map(|r| arrival + r.after)
        .filter(|t| *t > after)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skills(list: &[(&str, u8)]) -> BTreeMap<String, u8> {
        list.iter().map(|(s, l)| (s.to_string(), *l)).collect()
    }

    #[test]
    fn relaxation_lowers_needs_only_once_reached() {
        let relax = [
            Relax {
                after: Duration::from_secs(60),
                level: 2,
            },
            Relax {
                after: Duration::from_secs(120),
                level: 0,
            },
        ];
        assert_eq!(effective_need(4, &relax, Duration::from_secs(59)), 4);
        assert_eq!(effective_need(4, &relax, Duration::from_secs(60)), 2);
        assert_eq!(effective_need(1, &relax, Duration::from_secs(60)), 1);
        assert_eq!(effective_need(4, &relax, Duration::from_secs(120)), 0);
        // At level 0 an agent without the skill at all is acceptable.
        let need = skills(&[("billing", 4)]);
        assert_eq!(
            fit(&skills(&[]), &need, &relax, Duration::from_secs(90)),
            None
        );
        assert!(fit(&skills(&[]), &need, &relax, Duration::from_secs(120)).is_some());
    }

    #[test]
    fn fit_prefers_the_sum_then_the_weakest_skill() {
        let need = skills(&[("billing", 1), ("spanish", 1)]);
        let balanced = fit(
            &skills(&[("billing", 3), ("spanish", 3)]),
            &need,
            &[],
            Duration::ZERO,
        );
        let lopsided = fit(
            &skills(&[("billing", 5), ("spanish", 1)]),
            &need,
            &[],
            Duration::ZERO,
        );
        let strong = fit(
            &skills(&[("billing", 5), ("spanish", 2)]),
            &need,
            &[],
            Duration::ZERO,
        );
        assert!(balanced > lopsided, "same sum: the weakest skill decides");
        assert!(strong > balanced, "a higher sum wins");
        // Skills nobody asked for do not count.
        let extra = fit(
            &skills(&[("billing", 3), ("spanish", 3), ("french", 5)]),
            &need,
            &[],
            Duration::ZERO,
        );
        assert_eq!(extra, balanced);
    }
}

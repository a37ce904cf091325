//! Agent figures: state changes become half-open segments that are cut at interval edges, and
//! each wrap-up is given to the call the agent answered last before it started.

use super::{passes_filters, ratio, AgentRow, AgentStateChange, Grid, ReportQuery};
use crate::cdr::CallRecord;
use chrono::{DateTime, FixedOffset};
use std::collections::{BTreeMap, HashMap};

/// One agent's state history as half-open segments.
pub(super) struct Timeline<'a> {
    /// (state, start ms, end ms); the last one ends at the query's `to`.
    segments: Vec<(&'a str, i64, i64)>,
    /// When the agent answered each of their calls, sorted: a wrap-up belongs to the call
    /// answered last before it started.
    answers: Vec<i64>,
}

impl Timeline<'_> {
    pub(super) fn wrap_after(&self, answered_ms: i64) -> Option<u64> {
        let next_call = self
            .answers
            .get(self.answers.partition_point(|&a| a <= answered_ms))
            .copied()
            .unwrap_or(i64::MAX);
        let first = self.segments.partition_point(|s| s.1 < answered_ms);
        let (_, start, end) = self
            .segments
            .get(first..)?
            .iter()
            .find(|s| s.0 == "wrap_up")?;
        (*start < next_call && end > start).then(|| u64::try_from(end - start).unwrap_or(0))
    }
}

pub(super) fn timelines<'a>(
    records: &[CallRecord],
    states: &'a [AgentStateChange],
    end_ms: i64,
) -> HashMap<&'a str, Timeline<'a>> {
    let mut by_agent: HashMap<&str, Vec<&AgentStateChange>> = HashMap::new();
    for s in states {
        by_agent.entry(s.agent_id.as_str()).or_default().push(s);
    }
    let mut out = HashMap::new();
    for (agent, mut changes) in by_agent {
        changes.sort_by_key(|c| c.at);
        let segments = changes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let start = c.at.timestamp_millis();
                let end = changes
                    .get(i + 1)
                    .map_or(end_ms.max(start), |n| n.at.timestamp_millis());
                (c.state.as_str(), start, end)
            })
            .collect();
        let mut answers: Vec<i64> = records
            .iter()
            .filter(|r| r.agent_id.as_deref() == Some(agent))
            .filter_map(|r| r.agent_answered_at.map(|t| t.timestamp_millis()))
            .collect();
        answers.sort_unstable();
        out.insert(agent, Timeline { segments, answers });
    }
    out
}

#[derive(Default, Clone)]
struct AgentAcc {
    handled: u64,
    talk: u64,
    wrap: u64,
    logged_in: u64,
    away: u64,
}

impl AgentAcc {
    fn row(&self, start: DateTime<FixedOffset>, agent: &str) -> AgentRow {
        let handle = self.talk.saturating_add(self.wrap);
        AgentRow {
            interval_start: start,
            agent_id: agent.to_owned(),
            handled: self.handled,
            talk_ms: self.talk,
            wrap_up_ms: self.wrap,
            handle_ms: handle,
            logged_in_ms: self.logged_in,
            away_ms: self.away,
            occupancy: ratio(handle, self.logged_in.saturating_sub(self.away), 4),
        }
    }
}

pub(super) fn agent_rows(
    records: &[CallRecord],
    states: &[AgentStateChange],
    q: &ReportQuery,
    grid: &Grid,
    tl: &HashMap<&str, Timeline<'_>>,
) -> (Vec<AgentRow>, Vec<AgentRow>) {
    let wanted = |a: &str| q.agent.as_deref().is_none_or(|f| f == a);
    let mut per: BTreeMap<&str, Vec<AgentAcc>> = BTreeMap::new();
    let blank = vec![AgentAcc::default(); grid.count];

    for r in records.iter().filter(|r| passes_filters(r, q)) {
        let (Some(agent), Some(at)) = (r.agent_id.as_deref(), r.agent_answered_at) else {
            continue;
        };
        if let Some(i) = grid.index(at.timestamp_millis()) {
            let accs = per.entry(agent).or_insert_with(|| blank.clone());
            if let Some(acc) = accs.get_mut(i) {
                acc.handled += 1;
            }
        }
    }
    for s in states.iter().filter(|s| wanted(&s.agent_id)) {
        per.entry(s.agent_id.as_str())
            .or_insert_with(|| blank.clone());
    }
    for (agent, accs) in per.iter_mut() {
        let Some(timeline) = tl.get(agent) else {
            continue;
        };
        for &(state, start, end) in &timeline.segments {
            let (start, end) = (start.max(grid.from_ms), end.min(grid.end_ms));
            let mut i = match grid.index(start) {
                Some(i) if end > start => i,
                _ => continue,
            };
            while let Some(acc) = accs.get_mut(i) {
                let edge = grid.start_ms(i + 1);
                let part = u64::try_from(end.min(edge) - start.max(grid.start_ms(i))).unwrap_or(0);
                match state {
                    "logged_out" => {}
                    "on_call" => acc.talk += part,
                    "wrap_up" => acc.wrap += part,
                    "away" => acc.away += part,
                    _ => {}
                }
                if state != "logged_out" {
                    acc.logged_in += part;
                }
                if edge >= end {
                    break;
                }
                i += 1;
            }
        }
    }

    let mut rows = Vec::new();
    for i in 0..grid.count {
        for (agent, accs) in &per {
            if let Some(acc) = accs.get(i).filter(|a| a.logged_in > 0 || a.handled > 0) {
                rows.push(acc.row(grid.local(grid.start_ms(i)), agent));
            }
        }
    }
    let from = grid.local(q.from.timestamp_millis());
    let totals = per
        .iter()
        .map(|(agent, accs)| {
            let sum = accs.iter().fold(AgentAcc::default(), |mut s, a| {
                s.handled += a.handled;
                s.talk += a.talk;
                s.wrap += a.wrap;
                s.logged_in += a.logged_in;
                s.away += a.away;
                s
            });
            sum.row(from, agent)
        })
        .filter(|r| r.logged_in_ms > 0 || r.handled > 0)
        .collect();
    (rows, totals)
}

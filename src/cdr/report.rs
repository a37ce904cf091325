//! Report figures computed from call records and agent state changes: the numbers behind
//! `GET /api/reports`, `switchboard report` and the dashboard charts.
//!
//! PURE: no clock, no I/O. The caller loads the records and state changes and passes the range.
//! Every definition here is written for users in `docs/reports.md`; the two must agree.
//!
//! * A queue figure belongs to the interval in which the call was offered (its `enqueued_at`),
//!   even if it was answered or abandoned in the next one, so the ratios of one row always
//!   describe the same calls.
//! * An agent figure is time-based: state durations are cut at interval edges, and a handled
//!   call counts where the agent answered it.

mod agents;
#[cfg(test)]
mod edge_tests;
mod format;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tests;

pub use format::{to_agents_csv, to_csv, to_table};

use super::country::country_of;
use super::{CallRecord, Direction, Disposition};
use agents::{agent_rows, timelines, Timeline};
use chrono::{DateTime, FixedOffset, Offset, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::time::Duration;

/// The service level target of a queue with none configured.
pub const DEFAULT_SERVICE_LEVEL: Duration = Duration::from_secs(20);
/// Callers who hang up within this wait are "short abandons", shown apart.
pub const SHORT_ABANDON_MS: u64 = 5_000;
/// One report holds at most this many intervals (104 days of 15-minute ones) so a careless range
/// cannot exhaust memory.
pub const MAX_INTERVALS: u64 = 10_000;
/// Real offsets lie within ±14 h; this leaves room without reaching chrono's 24 h limit.
pub const MAX_TZ_OFFSET_MINUTES: i32 = 18 * 60;
/// A survey score is 1 (good), 2 (normal) or 3 (bad); anything else is ignored.
const SURVEY_SCORES: std::ops::RangeInclusive<i64> = 1..=3;
const SURVEY_BAD: i64 = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("unknown interval `{0}`: use 15m, 1h or 1d")]
    Interval(String),
    #[error(
        "the range holds {intervals} intervals, at most {max} fit in one report: \
         choose a longer interval or a shorter range"
    )]
    TooManyIntervals { intervals: u64, max: u64 },
    #[error("time zone offset of {0} minutes is outside ±{MAX_TZ_OFFSET_MINUTES}")]
    TzOffset(i32),
}

/// The width of one report row.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Interval {
    Min15,
    Hour,
    Day,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Min15 => "15m",
            Interval::Hour => "1h",
            Interval::Day => "1d",
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            Interval::Min15 => 15 * 60_000,
            Interval::Hour => 3_600_000,
            Interval::Day => 86_400_000,
        }
    }

    /// "15m", "1h"/"hour", "1d"/"day" (any case, surrounding blanks ignored).
    pub fn parse(s: &str) -> Result<Self, ReportError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "15m" => Ok(Interval::Min15),
            "1h" | "hour" => Ok(Interval::Hour),
            "1d" | "day" => Ok(Interval::Day),
            _ => Err(ReportError::Interval(s.chars().take(32).collect())),
        }
    }
}

impl FromStr for Interval {
    type Err = ReportError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Interval::parse(s)
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What to report on. `from` is inclusive, `to` exclusive.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportQuery {
    pub from: DateTime<Utc>,
    /// Pass no later than now: an agent's last known state is taken to last until `to`.
    pub to: DateTime<Utc>,
    pub interval: Interval,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub dialed: Option<String>,
    /// ISO 3166-1 alpha-2, upper case: only calls whose dialed number is in that country.
    pub country: Option<String>,
    /// Interval edges fall on local time with this offset from UTC (-180 = UTC−03:00); 0 = UTC.
    pub tz_offset_minutes: i32,
}

impl ReportQuery {
    /// The checks an HTTP handler turns into a 400; [`compute`] itself never fails and clamps.
    pub fn validate(&self) -> Result<(), ReportError> {
        if self.tz_offset_minutes.abs() > MAX_TZ_OFFSET_MINUTES {
            return Err(ReportError::TzOffset(self.tz_offset_minutes));
        }
        let intervals = Grid::intervals_in(self);
        if intervals > MAX_INTERVALS {
            return Err(ReportError::TooManyIntervals {
                intervals,
                max: MAX_INTERVALS,
            });
        }
        Ok(())
    }

    /// What a row's `country` column says: the country filter, or the dialed filter's country.
    fn row_country(&self) -> Option<String> {
        self.country.clone().or_else(|| {
            let dialed = self.dialed.as_deref()?;
            country_of(dialed).map(str::to_owned)
        })
    }

    fn offset(&self) -> FixedOffset {
        let minutes = self
            .tz_offset_minutes
            .clamp(-MAX_TZ_OFFSET_MINUTES, MAX_TZ_OFFSET_MINUTES);
        FixedOffset::east_opt(minutes * 60).unwrap_or_else(|| Utc.fix())
    }
}

/// Per-queue service level targets; a queue not listed has [`DEFAULT_SERVICE_LEVEL`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueTargets {
    pub service_level: BTreeMap<String, Duration>,
}

impl QueueTargets {
    pub fn target(&self, queue: &str) -> Duration {
        self.service_level
            .get(queue)
            .copied()
            .unwrap_or(DEFAULT_SERVICE_LEVEL)
    }
}

/// An agent entered `state` at `at`: one of logged_out, available, away, ringing, on_call,
/// wrap_up. An unknown state counts as logged in but not handling a call. `reason` says what
/// caused it (login, answer, ring_timeout…) when known; it does not change any figure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AgentStateChange {
    pub agent_id: String,
    pub state: String,
    #[serde(with = "super::record::ts")]
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The figures of one interval for one queue (`queue: None` = all queues together).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    #[serde(serialize_with = "local_ts")]
    pub interval_start: DateTime<FixedOffset>,
    pub queue: Option<String>,
    /// The dialed-number filter the row was computed under (`None` = every number).
    pub dialed: Option<String>,
    /// The country filter the row was computed under, else the country of the `dialed` filter
    /// (`None` = every country).
    pub country: Option<String>,
    pub offered: u64,
    pub answered: u64,
    /// Includes the short abandons.
    pub abandoned: u64,
    pub abandoned_within_5s: u64,
    /// Left the queue unanswered without hanging up: queue timeout, exit key, crash.
    pub timed_out: u64,
    /// abandoned ÷ offered.
    pub abandon_rate: Option<f64>,
    /// Average speed of answer: mean wait of answered calls.
    pub asa_ms: Option<u64>,
    /// Mean wait of every offered call whose wait is known.
    pub avg_wait_ms: Option<u64>,
    pub max_wait_ms: Option<u64>,
    pub avg_talk_ms: Option<u64>,
    /// Talk plus the agent's wrap-up after the call when known, else talk alone.
    pub avg_handle_ms: Option<u64>,
    /// answered within target ÷ (offered − abandoned within 5 s).
    pub service_level: Option<f64>,
    /// The queue's target; `None` on an all-queues row, where each call uses its own queue's.
    pub service_level_target_ms: Option<u64>,
    pub answered_within_target: u64,
    /// Callers who asked to be called back (callback disposition or a `callback` event).
    pub callbacks: u64,
    /// Offered calls that were themselves callbacks (direction callback).
    pub callbacks_made: u64,
    pub survey_count: u64,
    /// Mean of the 1 (good) … 3 (bad) scores.
    pub survey_avg: Option<f64>,
    pub survey_bad: u64,
}

/// One agent in one interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentRow {
    #[serde(serialize_with = "local_ts")]
    pub interval_start: DateTime<FixedOffset>,
    pub agent_id: String,
    /// Calls the agent answered in the interval.
    pub handled: u64,
    /// Time on_call.
    pub talk_ms: u64,
    pub wrap_up_ms: u64,
    /// talk + wrap-up.
    pub handle_ms: u64,
    /// Time in any state but logged_out.
    pub logged_in_ms: u64,
    /// Time `away` (breaks, not ready): logged in but not offered calls.
    pub away_ms: u64,
    /// handle ÷ (logged in − away): the share of the time the agent was available for calls
    /// that went to calls, as Amazon Connect and Flex count it (breaks do not lower it).
    pub occupancy: Option<f64>,
}

/// The answer of `GET /api/reports`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Per interval, the all-queues row first (when no queue filter) then one per queue by name.
    pub rows: Vec<Row>,
    /// Per interval, each agent by id; intervals where the agent was logged out and answered
    /// nothing are left out.
    pub agents: Vec<AgentRow>,
    /// The whole range, all queues (or the filtered queue); `interval_start` is `from`.
    pub totals: Row,
    /// The whole range per agent; `interval_start` is `from`.
    pub agent_totals: Vec<AgentRow>,
}

fn local_ts<S: Serializer>(t: &DateTime<FixedOffset>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The interval edges of a query, in UTC milliseconds.
struct Grid {
    first_ms: i64,
    size_ms: i64,
    count: usize,
    /// `to`, cut so that no more than [`MAX_INTERVALS`] intervals exist.
    end_ms: i64,
    from_ms: i64,
    offset: FixedOffset,
}

impl Grid {
    fn bucket_start(t_ms: i64, size_ms: i64, offset_ms: i64) -> i64 {
        let local = t_ms.saturating_add(offset_ms);
        local.div_euclid(size_ms).saturating_mul(size_ms) - offset_ms
    }

    fn intervals_in(q: &ReportQuery) -> u64 {
        let (from, to) = (q.from.timestamp_millis(), q.to.timestamp_millis());
        if to <= from {
            return 0;
        }
        let size = q.interval.millis();
        let offset_ms = i64::from(q.offset().local_minus_utc()) * 1000;
        let first = Self::bucket_start(from, size, offset_ms);
        u64::try_from((to - 1 - first) / size + 1).unwrap_or(u64::MAX)
    }

    fn new(q: &ReportQuery) -> Grid {
        let offset = q.offset();
        let size_ms = q.interval.millis();
        let from_ms = q.from.timestamp_millis();
        let offset_ms = i64::from(offset.local_minus_utc()) * 1000;
        let first_ms = Self::bucket_start(from_ms, size_ms, offset_ms);
        let count = Self::intervals_in(q).min(MAX_INTERVALS);
        let count_i = i64::try_from(count).unwrap_or(0);
        let end_ms =
            q.to.timestamp_millis()
                .min(first_ms.saturating_add(count_i.saturating_mul(size_ms)));
        Grid {
            first_ms,
            size_ms,
            count: usize::try_from(count).unwrap_or(0),
            end_ms,
            from_ms,
            offset,
        }
    }

    /// The interval holding `t`, if `t` is inside the (possibly cut) range.
    fn index(&self, t_ms: i64) -> Option<usize> {
        if t_ms < self.from_ms || t_ms >= self.end_ms {
            return None;
        }
        usize::try_from((t_ms - self.first_ms).div_euclid(self.size_ms)).ok()
    }

    fn start_ms(&self, i: usize) -> i64 {
        let i = i64::try_from(i).unwrap_or(i64::MAX);
        self.first_ms.saturating_add(i.saturating_mul(self.size_ms))
    }

    fn local(&self, ms: i64) -> DateTime<FixedOffset> {
        DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .with_timezone(&self.offset)
    }
}

/// What one offered call contributes to a row.
struct Offered<'a> {
    queue: Option<&'a str>,
    at_ms: i64,
    answered: bool,
    abandoned: bool,
    short_abandon: bool,
    callback: bool,
    callback_made: bool,
    /// A callback attempt dialled for a callback queued outside a call (web form, CRM): it is
    /// counted in `callbacks_made` only; the request itself is not a call and was never offered.
    made_only: bool,
    within_target: bool,
    wait_ms: Option<u64>,
    talk_ms: Option<u64>,
    handle_ms: Option<u64>,
    survey: Option<i64>,
}

#[derive(Default)]
struct Acc {
    offered: u64,
    answered: u64,
    abandoned: u64,
    short: u64,
    timed_out: u64,
    callbacks: u64,
    callbacks_made: u64,
    within: u64,
    asa: Mean,
    wait: Mean,
    max_wait: Option<u64>,
    talk: Mean,
    handle: Mean,
    survey: Mean,
    survey_bad: u64,
}

#[derive(Default)]
struct Mean {
    sum: u64,
    n: u64,
}

impl Mean {
    fn add(&mut self, v: u64) {
        self.sum = self.sum.saturating_add(v);
        self.n += 1;
    }

    /// Rounded half up to a whole millisecond.
    fn ms(&self) -> Option<u64> {
        (self.n > 0).then(|| self.sum.saturating_add(self.n / 2) / self.n)
    }
}

fn ratio(num: u64, den: u64, decimals: i32) -> Option<f64> {
    if den == 0 {
        return None;
    }
    let scale = 10f64.powi(decimals);
    Some((num as f64 / den as f64 * scale).round() / scale)
}

impl Acc {
    fn add(&mut self, c: &Offered<'_>) {
        if c.made_only {
            self.callbacks_made += 1;
            return;
        }
        self.offered += 1;
        if c.answered {
            self.answered += 1;
            if let Some(w) = c.wait_ms {
                self.asa.add(w);
            }
            if let Some(t) = c.talk_ms {
                self.talk.add(t);
            }
            if let Some(h) = c.handle_ms {
                self.handle.add(h);
            }
        }
        if c.abandoned {
            self.abandoned += 1;
        }
        if c.short_abandon {
            self.short += 1;
        }
        if c.callback {
            self.callbacks += 1;
        }
        if !c.answered && !c.abandoned && !c.callback {
            self.timed_out += 1;
        }
        if c.callback_made {
            self.callbacks_made += 1;
        }
        if c.within_target {
            self.within += 1;
        }
        if let Some(w) = c.wait_ms {
            self.wait.add(w);
            self.max_wait = self.max_wait.max(Some(w));
        }
        if let Some(s) = c.survey {
            self.survey.add(s.unsigned_abs());
            if s == SURVEY_BAD {
                self.survey_bad += 1;
            }
        }
    }

    fn row(
        &self,
        start: DateTime<FixedOffset>,
        queue: Option<&str>,
        q: &ReportQuery,
        t: &QueueTargets,
    ) -> Row {
        Row {
            interval_start: start,
            queue: queue.map(str::to_owned),
            dialed: q.dialed.clone(),
            country: q.row_country(),
            offered: self.offered,
            answered: self.answered,
            abandoned: self.abandoned,
            abandoned_within_5s: self.short,
            timed_out: self.timed_out,
            abandon_rate: ratio(self.abandoned, self.offered, 4),
            asa_ms: self.asa.ms(),
            avg_wait_ms: self.wait.ms(),
            max_wait_ms: self.max_wait,
            avg_talk_ms: self.talk.ms(),
            avg_handle_ms: self.handle.ms(),
            service_level: ratio(self.within, self.offered.saturating_sub(self.short), 4),
            service_level_target_ms: queue.map(|name| millis(t.target(name))),
            answered_within_target: self.within,
            callbacks: self.callbacks,
            callbacks_made: self.callbacks_made,
            survey_count: self.survey.n,
            survey_avg: ratio(self.survey.sum, self.survey.n, 2),
            survey_bad: self.survey_bad,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn span_ms(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_milliseconds()).unwrap_or(0)
}

fn wait_of(r: &CallRecord, enqueued: DateTime<Utc>) -> Option<u64> {
    if let Some(w) = r.wait_ms {
        return Some(w.max(0).unsigned_abs());
    }
    r.agent_answered_at
        .or(r.ended_at)
        .map(|end| span_ms(enqueued, end))
}

fn talk_of(r: &CallRecord) -> Option<u64> {
    if let Some(t) = r.talk_ms {
        return Some(t.max(0).unsigned_abs());
    }
    Some(span_ms(r.agent_answered_at?, r.ended_at?))
}

/// The record's country; a record written before the field existed gets it from its `to`.
fn record_country(r: &CallRecord) -> Option<&str> {
    r.country.as_deref().or_else(|| country_of(&r.to))
}

fn passes_filters(r: &CallRecord, q: &ReportQuery) -> bool {
    q.queue.as_ref().is_none_or(|f| r.queue.as_ref() == Some(f))
        && q.dialed.as_ref().is_none_or(|d| &r.to == d)
        && q.country
            .as_deref()
            .is_none_or(|c| record_country(r) == Some(c))
        && q.agent
            .as_ref()
            .is_none_or(|a| r.agent_id.as_ref() == Some(a) && r.agent_answered_at.is_some())
}

fn offered<'a>(
    r: &'a CallRecord,
    q: &ReportQuery,
    t: &QueueTargets,
    tl: &HashMap<&str, Timeline<'_>>,
) -> Option<Offered<'a>> {
    if !passes_filters(r, q) {
        return None;
    }
    let Some(enqueued) = r.enqueued_at else {
        // A callback attempt (each one dialled, answered or not) counts where it was dialled.
        return (r.direction == Direction::Callback).then(|| Offered {
            queue: r.queue.as_deref(),
            at_ms: r.started_at.timestamp_millis(),
            answered: false,
            abandoned: false,
            short_abandon: false,
            callback: false,
            callback_made: true,
            made_only: true,
            within_target: false,
            wait_ms: None,
            talk_ms: None,
            handle_ms: None,
            survey: None,
        });
    };
    let answered = r.agent_answered_at.is_some();
    let wait_ms = wait_of(r, enqueued);
    let abandoned = !answered && r.disposition == Some(Disposition::Abandoned);
    let talk_ms = answered.then(|| talk_of(r)).flatten();
    let wrap = match (&r.agent_id, r.agent_answered_at) {
        (Some(a), Some(at)) => tl
            .get(a.as_str())
            .and_then(|t| t.wrap_after(at.timestamp_millis())),
        _ => None,
    };
    let target = r
        .queue
        .as_deref()
        .map_or(DEFAULT_SERVICE_LEVEL, |name| t.target(name));
    Some(Offered {
        queue: r.queue.as_deref(),
        at_ms: enqueued.timestamp_millis(),
        answered,
        abandoned,
        short_abandon: abandoned && wait_ms.is_some_and(|w| w <= SHORT_ABANDON_MS),
        callback: r.disposition == Some(Disposition::Callback)
            || r.events.iter().any(|e| e.kind == "callback"),
        callback_made: r.direction == Direction::Callback,
        made_only: false,
        within_target: answered && wait_ms.is_some_and(|w| w <= millis(target)),
        wait_ms,
        talk_ms,
        handle_ms: talk_ms.map(|t| t.saturating_add(wrap.unwrap_or(0))),
        survey: r.survey.filter(|s| SURVEY_SCORES.contains(s)),
    })
}

/// Computes every figure for `q`. `records` must hold at least every call enqueued or answered
/// by an agent in `[from, to)` (others are ignored); `agent_states` every change in that range
/// plus each agent's last change before `from` (without it the agent counts as logged out until
/// their first change). Never panics and never yields NaN: an undefined ratio or mean is `None`.
pub fn compute(
    records: &[CallRecord],
    agent_states: &[AgentStateChange],
    q: &ReportQuery,
    t: &QueueTargets,
) -> Report {
    let grid = Grid::new(q);
    let tl = timelines(records, agent_states, grid.end_ms);

    let calls: Vec<Offered<'_>> = records
        .iter()
        .filter_map(|r| offered(r, q, t, &tl))
        .filter(|c| grid.index(c.at_ms).is_some())
        .collect();

    // Scope 0 is all queues together unless the query names one queue.
    let mut scopes: Vec<Option<String>> = Vec::new();
    match &q.queue {
        Some(name) => scopes.push(Some(name.clone())),
        None => {
            let names: BTreeSet<&str> = t
                .service_level
                .keys()
                .map(String::as_str)
                .chain(calls.iter().filter_map(|c| c.queue))
                .collect();
            scopes.push(None);
            scopes.extend(names.into_iter().map(|n| Some(n.to_owned())));
        }
    }
    let scope_of: HashMap<&str, usize> = scopes
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((s.as_deref()?, i)))
        .collect();

    let mut accs: Vec<Acc> = (0..grid.count * scopes.len())
        .map(|_| Acc::default())
        .collect();
    let mut total = Acc::default();
    for c in &calls {
        let Some(i) = grid.index(c.at_ms) else {
            continue;
        };
        total.add(c);
        let mut targets = vec![i * scopes.len()];
        if q.queue.is_none() {
            if let Some(&s) = c.queue.and_then(|name| scope_of.get(name)) {
                targets.push(i * scopes.len() + s);
            }
        }
        for k in targets {
            if let Some(acc) = accs.get_mut(k) {
                acc.add(c);
            }
        }
    }

    let rows = accs
        .iter()
        .enumerate()
        .map(|(k, acc)| {
            let (i, s) = (k / scopes.len(), k % scopes.len());
            let queue = scopes.get(s).and_then(|s| s.as_deref());
            acc.row(grid.local(grid.start_ms(i)), queue, q, t)
        })
        .collect();
    let totals = total.row(
        grid.local(q.from.timestamp_millis()),
        q.queue.as_deref(),
        q,
        t,
    );
    let (agents, agent_totals) = agent_rows(records, agent_states, q, &grid, &tl);
    Report {
        rows,
        agents,
        totals,
        agent_totals,
    }
}

//! A day worked out by hand: every figure below was computed on paper from the records and
//! state changes in `day()` and `states()`; the comments show the arithmetic. The two big checks
//! also run on the same data written to and read back from each store.

use super::*;
use chrono::TimeZone;

const SALES: &str = "+551130000001";
pub(super) const SUPPORT: &str = "+551130000002";

pub(super) fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, h, m, s)
        .single()
        .unwrap_or_default()
}

pub(super) fn plus_ms(t: DateTime<Utc>, ms: i64) -> DateTime<Utc> {
    t + chrono::Duration::milliseconds(ms)
}

/// A call that reached a queue at `enq` after half a minute in the IVR.
fn queued(id: &str, queue: &str, enq: DateTime<Utc>) -> CallRecord {
    let to = if queue == "sales" { SALES } else { SUPPORT };
    let mut r = CallRecord::new(
        id,
        Direction::Inbound,
        "+5511900000000",
        to,
        plus_ms(enq, -30_000),
    );
    r.answered_at = Some(r.started_at);
    r.queue = Some(queue.into());
    r.enqueued_at = Some(enq);
    r
}

pub(super) fn answered(
    id: &str,
    queue: &str,
    enq: DateTime<Utc>,
    wait_s: i64,
    agent: &str,
    talk_s: i64,
    survey: Option<i64>,
) -> CallRecord {
    let mut r = queued(id, queue, enq);
    let picked = plus_ms(enq, wait_s * 1000);
    r.agent_id = Some(agent.into());
    r.agent_answered_at = Some(picked);
    r.wait_ms = Some(wait_s * 1000);
    r.talk_ms = Some(talk_s * 1000);
    r.ended_at = Some(plus_ms(picked, talk_s * 1000));
    r.disposition = Some(Disposition::Completed);
    r.hangup_by = Some(HangupBy::Agent);
    r.survey = survey;
    r
}

/// Left the queue without an agent after `wait_ms`.
pub(super) fn unanswered(
    id: &str,
    queue: &str,
    enq: DateTime<Utc>,
    wait_ms: i64,
    d: Disposition,
) -> CallRecord {
    let mut r = queued(id, queue, enq);
    r.wait_ms = Some(wait_ms);
    r.ended_at = Some(plus_ms(enq, wait_ms));
    r.disposition = Some(d);
    r
}

use crate::cdr::HangupBy;

fn change(agent: &str, state: &str, t: DateTime<Utc>) -> AgentStateChange {
    AgentStateChange {
        agent_id: agent.into(),
        state: state.into(),
        at: t,
        reason: None,
    }
}

/// 09:00–12:00 UTC on 2026-11-23, two queues (sales target 20 s, support 30 s), agents ana and bob.
pub(super) fn day() -> Vec<CallRecord> {
    use Disposition::*;
    let mut s4 = unanswered("S4", "sales", at(9, 15, 0), 40_000, Abandoned);
    s4.wait_ms = None; // wait known only from ended_at − enqueued_at = 40 s
    let mut s9 = answered("S9", "sales", at(11, 0, 0), 5, "ana", 90, Some(2));
    s9.talk_ms = None; // talk known only from ended_at − agent_answered_at = 90 s
    let mut s14 = answered("S14", "support", at(11, 45, 0), 15, "ana", 240, None);
    s14.direction = Direction::Callback;
    s14.to = "+5511988887777".into(); // a callback dials the customer
    let mut s15 = unanswered("S15", "sales", at(9, 25, 0), 30_000, Abandoned);
    s15.agent_id = Some("bob".into()); // bob was ringing when the caller gave up
    let mut n1 = CallRecord::new("N1", Direction::Inbound, "+5511", SALES, at(9, 30, 0));
    n1.disposition = Some(Completed);
    n1.survey = Some(2);
    let mut n2 = CallRecord::new("N2", Direction::Inbound, "+5511", SALES, at(10, 30, 0));
    n2.disposition = Some(AuthFailed);
    vec![
        // 09:00–10:00
        answered("S1", "sales", at(9, 0, 0), 10, "ana", 120, Some(1)),
        answered("S2", "sales", at(9, 5, 0), 25, "bob", 60, Some(3)),
        unanswered("S3", "sales", at(9, 10, 0), 3_000, Abandoned),
        s4,
        answered("S5", "sales", at(9, 20, 0), 20, "ana", 200, Some(9)), // 9 is no valid score
        s15,
        answered("S6", "support", at(9, 57, 0), 30, "bob", 300, Some(2)),
        unanswered("S7", "support", at(9, 40, 0), 120_000, Voicemail),
        unanswered("S8", "support", at(9, 50, 0), 60_000, Callback),
        // 10:00–11:00: nothing offered
        // 11:00–12:00
        s9,
        unanswered("S10", "sales", at(11, 10, 0), 8_000, Abandoned),
        answered("S11", "support", at(11, 20, 0), 45, "bob", 100, Some(3)),
        unanswered("S12", "support", at(11, 30, 0), 2_000, Abandoned),
        unanswered("S13", "sales", at(11, 40, 0), 90_000, Completed),
        s14,
        // Never counted: no queue, or enqueued outside [09:00, 12:00).
        n1,
        n2,
        unanswered("N3", "sales", plus_ms(at(9, 0, 0), -1), 2_000, Abandoned),
        unanswered("N4", "sales", at(12, 0, 0), 1_000, Abandoned),
    ]
}

pub(super) fn states() -> Vec<AgentStateChange> {
    vec![
        change("ana", "available", at(8, 30, 0)), // before the range: ana is in at 09:00
        change("ana", "ringing", at(9, 0, 4)),
        change("ana", "on_call", at(9, 0, 10)), // S1
        change("ana", "wrap_up", at(9, 2, 10)),
        change("ana", "available", at(9, 2, 25)), // 15 s wrap-up
        change("ana", "on_call", at(9, 20, 20)),  // S5
        change("ana", "wrap_up", at(9, 23, 40)),
        change("ana", "available", at(9, 23, 50)), // 10 s
        change("ana", "away", at(9, 30, 0)),
        change("ana", "available", at(9, 45, 0)),
        change("ana", "logged_out", at(10, 0, 0)),
        change("ana", "available", at(11, 0, 0)),
        change("ana", "on_call", at(11, 0, 5)), // S9
        change("ana", "wrap_up", at(11, 1, 35)),
        change("ana", "available", at(11, 1, 45)), // 10 s
        change("ana", "on_call", at(11, 45, 15)),  // S14
        change("ana", "wrap_up", at(11, 49, 15)),
        change("ana", "available", at(11, 49, 35)), // 20 s
        change("ana", "logged_out", at(11, 55, 0)),
        // bob, given out of order: the report sorts them.
        change("bob", "on_call", at(9, 5, 25)), // S2
        change("bob", "available", at(9, 4, 0)),
        change("bob", "wrap_up", at(9, 6, 25)),
        change("bob", "available", at(9, 6, 55)), // 30 s
        change("bob", "ringing", at(9, 25, 10)),  // S15, abandoned while ringing
        change("bob", "available", at(9, 25, 30)),
        change("bob", "on_call", at(9, 57, 30)), // S6, talks across 10:00
        change("bob", "wrap_up", at(10, 2, 30)),
        change("bob", "available", at(10, 2, 40)), // 10 s
        change("bob", "on_call", at(11, 20, 45)),  // S11
        change("bob", "wrap_up", at(11, 22, 25)),
        change("bob", "logged_out", at(11, 22, 45)), // 20 s wrap-up, then gone
    ]
}

pub(super) fn targets() -> QueueTargets {
    QueueTargets {
        service_level: [
            ("sales".to_owned(), Duration::from_secs(20)),
            ("support".to_owned(), Duration::from_secs(30)),
        ]
        .into(),
    }
}

pub(super) fn query(from: DateTime<Utc>, to: DateTime<Utc>, interval: Interval) -> ReportQuery {
    ReportQuery {
        from,
        to,
        interval,
        queue: None,
        agent: None,
        dialed: None,
        country: None,
        tz_offset_minutes: 0,
    }
}

pub(super) fn hours() -> Report {
    compute(
        &day(),
        &states(),
        &query(at(9, 0, 0), at(12, 0, 0), Interval::Hour),
        &targets(),
    )
}

/// The figures a row should hold, in the order of the `Row` fields after `dialed`.
#[allow(clippy::type_complexity)]
fn figures(r: &Row) -> (u64, u64, u64, u64, u64, u64, u64, u64, u64, u64) {
    (
        r.offered,
        r.answered,
        r.abandoned,
        r.abandoned_within_5s,
        r.timed_out,
        r.answered_within_target,
        r.callbacks,
        r.callbacks_made,
        r.survey_count,
        r.survey_bad,
    )
}

#[allow(clippy::type_complexity)]
fn measures(
    r: &Row,
) -> (
    Option<f64>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<f64>,
    Option<f64>,
) {
    (
        r.abandon_rate,
        r.asa_ms,
        r.avg_wait_ms,
        r.max_wait_ms,
        r.avg_talk_ms,
        r.avg_handle_ms,
        r.service_level,
        r.survey_avg,
    )
}

pub(super) fn row<'a>(rep: &'a Report, hour: u32, queue: Option<&str>) -> &'a Row {
    let start = at(hour, 0, 0);
    rep.rows
        .iter()
        .find(|r| r.interval_start == start && r.queue.as_deref() == queue)
        .unwrap_or_else(|| panic!("no row {hour}:00 {queue:?}"))
}

/// In memory, then read back from SQLite (and PostgreSQL when configured): the stores must
/// hand the report exactly what it needs, including each agent's state before 09:00.
#[test]
fn a_day_by_hour_matches_the_hand_computed_queue_figures() {
    super::store_tests::each_report_source(
        "a_day_by_hour_matches_the_hand_computed_queue_figures",
        a_day_by_hour_matches_the_hand_computed_queue_figures_in,
    );
}

fn a_day_by_hour_matches_the_hand_computed_queue_figures_in(rep: &Report) {
    // 3 hours × (all, sales, support), in that order.
    let order: Vec<(u32, Option<&str>)> = rep
        .rows
        .iter()
        .map(|r| {
            let h = r
                .interval_start
                .format("%H")
                .to_string()
                .parse()
                .unwrap_or(99);
            (h, r.queue.as_deref())
        })
        .collect();
    assert_eq!(
        order,
        [9, 10, 11]
            .iter()
            .flat_map(|&h| [(h, None), (h, Some("sales")), (h, Some("support"))])
            .collect::<Vec<_>>()
    );

    // 09 sales: S1 (10 s, ana), S2 (25 s, bob), S3 abandoned 3 s, S4 abandoned 40 s, S5 (20 s, ana),
    // S15 abandoned 30 s. Offered 6, answered 3, abandoned 3 of which 1 short.
    // Within 20 s: S1, S5 (exactly 20 s counts) = 2; SL = 2 / (6 − 1) = 0.4.
    // ASA (10+25+20)/3 = 18.333 s; wait over all (10+25+3+40+20+30)/6 = 128/6 = 21.333 s, max 40 s.
    // Talk (120+60+200)/3 = 126.667 s; handle adds wrap-ups 15, 30, 10: (135+90+210)/3 = 145 s.
    // Surveys 1 and 3 (S5's 9 is ignored): 2 scores, mean 2.0, 1 bad.
    let s = row(rep, 9, Some("sales"));
    assert_eq!(figures(s), (6, 3, 3, 1, 0, 2, 0, 0, 2, 1));
    assert_eq!(
        measures(s),
        (
            Some(0.5),
            Some(18_333),
            Some(21_333),
            Some(40_000),
            Some(126_667),
            Some(145_000),
            Some(0.4),
            Some(2.0)
        )
    );
    assert_eq!(s.service_level_target_ms, Some(20_000));

    // 09 support: S6 answered 30 s (target 30 s: within), S7 voicemail after 120 s (a timeout),
    // S8 asked for a callback after 60 s. SL = 1/3; wait (30+120+60)/3 = 70 s;
    // handle 300 + 10 wrap-up (bob's wrap-up after 10:00 still belongs to S6).
    let p = row(rep, 9, Some("support"));
    assert_eq!(figures(p), (3, 1, 0, 0, 1, 1, 1, 0, 1, 0));
    assert_eq!(
        measures(p),
        (
            Some(0.0),
            Some(30_000),
            Some(70_000),
            Some(120_000),
            Some(300_000),
            Some(310_000),
            Some(0.3333),
            Some(2.0)
        )
    );
    assert_eq!(p.service_level_target_ms, Some(30_000));

    // 09 all: 9 offered, 4 answered, 3 abandoned (1 short), 1 timeout, 1 callback.
    // Abandon rate 3/9; ASA (10+25+20+30)/4 = 21.25 s; wait (128+210)/9 = 37.556 s;
    // talk 680/4 = 170 s; handle 745/4 = 186.25 s; SL 3/(9−1) = 0.375; surveys 1,3,2 → 2.0.
    let a = row(rep, 9, None);
    assert_eq!(figures(a), (9, 4, 3, 1, 1, 3, 1, 0, 3, 1));
    assert_eq!(
        measures(a),
        (
            Some(0.3333),
            Some(21_250),
            Some(37_556),
            Some(120_000),
            Some(170_000),
            Some(186_250),
            Some(0.375),
            Some(2.0)
        )
    );
    assert_eq!(a.service_level_target_ms, None);

    // 10: nothing offered — the rows are there, with zeros and undefined ratios.
    for queue in [None, Some("sales"), Some("support")] {
        let z = row(rep, 10, queue);
        assert_eq!(figures(z), (0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
        assert_eq!(
            measures(z),
            (None, None, None, None, None, None, None, None)
        );
    }

    // 11 sales: S9 answered 5 s (talk from timestamps, 90 s, +10 s wrap-up), S10 abandoned 8 s
    // (not short), S13 left after 90 s (a timeout). SL 1/3; wait 103/3 = 34.333 s.
    let s = row(rep, 11, Some("sales"));
    assert_eq!(figures(s), (3, 1, 1, 0, 1, 1, 0, 0, 1, 0));
    assert_eq!(
        measures(s),
        (
            Some(0.3333),
            Some(5_000),
            Some(34_333),
            Some(90_000),
            Some(90_000),
            Some(100_000),
            Some(0.3333),
            Some(2.0)
        )
    );

    // 11 support: S11 answered 45 s (outside 30 s), S12 abandoned 2 s (short), S14 a callback
    // call answered 15 s. SL = 1 / (3 − 1) = 0.5; ASA 60/2 = 30 s; wait 62/3 = 20.667 s;
    // talk (100+240)/2 = 170 s; handle (120+260)/2 = 190 s; one survey, 3 = bad.
    let p = row(rep, 11, Some("support"));
    assert_eq!(figures(p), (3, 2, 1, 1, 0, 1, 0, 1, 1, 1));
    assert_eq!(
        measures(p),
        (
            Some(0.3333),
            Some(30_000),
            Some(20_667),
            Some(45_000),
            Some(170_000),
            Some(190_000),
            Some(0.5),
            Some(3.0)
        )
    );

    // 11 all: ASA 65/3 = 21.667 s; wait 165/6 = 27.5 s; talk 430/3 = 143.333 s; handle 480/3 = 160 s;
    // SL 2/(6−1) = 0.4; surveys 2 and 3 → 2.5.
    let a = row(rep, 11, None);
    assert_eq!(figures(a), (6, 3, 2, 1, 1, 2, 0, 1, 2, 1));
    assert_eq!(
        measures(a),
        (
            Some(0.3333),
            Some(21_667),
            Some(27_500),
            Some(90_000),
            Some(143_333),
            Some(160_000),
            Some(0.4),
            Some(2.5)
        )
    );

    // The whole range: 15 offered, 7 answered, 5 abandoned (2 short). ASA 150/7 = 21.429 s;
    // wait 503/15 = 33.533 s; talk 1110/7 = 158.571 s; handle 1225/7 = 175 s;
    // SL 5/(15−2) = 0.3846; surveys 1,3,2,2,3 → 2.2.
    let t = &rep.totals;
    assert_eq!(t.interval_start, at(9, 0, 0));
    assert_eq!(t.queue, None);
    assert_eq!(figures(t), (15, 7, 5, 2, 2, 5, 1, 1, 5, 2));
    assert_eq!(
        measures(t),
        (
            Some(0.3333),
            Some(21_429),
            Some(33_533),
            Some(120_000),
            Some(158_571),
            Some(175_000),
            Some(0.3846),
            Some(2.2)
        )
    );
}

/// In memory, then read back from SQLite (and PostgreSQL when configured): the stores must
/// hand the report exactly what it needs, including each agent's state before 09:00.
#[test]
fn a_day_by_hour_matches_the_hand_computed_agent_figures() {
    super::store_tests::each_report_source(
        "a_day_by_hour_matches_the_hand_computed_agent_figures",
        a_day_by_hour_matches_the_hand_computed_agent_figures_in,
    );
}

fn a_day_by_hour_matches_the_hand_computed_agent_figures_in(rep: &Report) {
    type Figures<'a> = (String, &'a str, u64, u64, u64, u64, u64, u64, Option<f64>);
    let got: Vec<Figures<'_>> = rep
        .agents
        .iter()
        .map(|a| {
            (
                a.interval_start.format("%H").to_string(),
                a.agent_id.as_str(),
                a.handled,
                a.talk_ms,
                a.wrap_up_ms,
                a.handle_ms,
                a.logged_in_ms,
                a.away_ms,
                a.occupancy,
            )
        })
        .collect();
    let h = |s: &str| s.to_owned();
    assert_eq!(
        got,
        vec![
            // ana 09: in all hour, away 09:30–09:45 (900 s); talk 120+200, wrap 15+10;
            // 345 s / (3600 − 900) s. Her 4 s of ringing is neither talk nor wrap-up.
            (
                h("09"),
                "ana",
                2,
                320_000,
                25_000,
                345_000,
                3_600_000,
                900_000,
                Some(0.1278)
            ),
            // bob 09: in from 09:04 (3360 s); talk S2 60 s + S6 until 10:00 150 s; wrap 30 s.
            (
                h("09"),
                "bob",
                2,
                210_000,
                30_000,
                240_000,
                3_360_000,
                0,
                Some(0.0714)
            ),
            // 10: ana logged out all hour (no row); bob finishes S6 (150 s) and wraps 10 s.
            (
                h("10"),
                "bob",
                0,
                150_000,
                10_000,
                160_000,
                3_600_000,
                0,
                Some(0.0444)
            ),
            // ana 11: in 11:00–11:55 (3300 s); talk 90+240, wrap 10+20 → 360/3300.
            (
                h("11"),
                "ana",
                2,
                330_000,
                30_000,
                360_000,
                3_300_000,
                0,
                Some(0.1091)
            ),
            // bob 11: in until 11:22:45 (1365 s); talk 100, wrap 20 → 120/1365.
            (
                h("11"),
                "bob",
                1,
                100_000,
                20_000,
                120_000,
                1_365_000,
                0,
                Some(0.0879)
            ),
        ]
    );
    // Totals: ana 705 s / (6900 − 900) s, bob 520 s / 8325 s. bob's S15 rang but was not handled.
    let totals: Vec<(&str, u64, u64, u64, Option<f64>)> = rep
        .agent_totals
        .iter()
        .map(|a| {
            (
                a.agent_id.as_str(),
                a.handled,
                a.handle_ms,
                a.logged_in_ms,
                a.occupancy,
            )
        })
        .collect();
    assert_eq!(
        totals,
        vec![
            ("ana", 4, 705_000, 6_900_000, Some(0.1175)),
            ("bob", 3, 520_000, 8_325_000, Some(0.0625)),
        ]
    );
}

#[test]
fn a_one_day_interval_holds_every_call_of_the_local_day() {
    let q = query(at(0, 0, 0), plus_ms(at(23, 59, 59), 1000), Interval::Day);
    let day_rep = compute(&day(), &states(), &q, &targets());
    assert_eq!(day_rep.rows.len(), 3);
    let all = row(&day_rep, 0, None);
    // N3 (08:59:59.999, 2 s) and N4 (12:00, 1 s) now fall inside the day: two more offered,
    // both short abandons — 17 offered, 7 abandoned, 4 short.
    assert_eq!(
        (all.offered, all.abandoned, all.abandoned_within_5s),
        (17, 7, 4)
    );
    assert_eq!(all.interval_start, at(0, 0, 0));
    let hours = hours();
    let sales = row(&day_rep, 0, Some("sales"));
    let by_hour: u64 = hours
        .rows
        .iter()
        .filter(|r| r.queue.as_deref() == Some("sales"))
        .map(|r| r.offered)
        .sum();
    assert_eq!(sales.offered, by_hour + 2);
}

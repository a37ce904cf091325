//! The edges: filters, boundaries, empty ranges, local-time intervals, validation, output formats.

use super::tests::{
    answered, at, day, hours, plus_ms, query, row, states, targets, unanswered, SUPPORT,
};
use super::*;
use crate::cdr::CallEvent;

#[test]
fn filters_narrow_rows_to_one_queue_agent_or_dialed_number() {
    let mut q = query(at(9, 0, 0), at(12, 0, 0), Interval::Hour);
    q.queue = Some("support".into());
    let rep = compute(&day(), &states(), &q, &targets());
    assert_eq!(rep.rows.len(), 3, "one row per hour, only support");
    assert!(rep
        .rows
        .iter()
        .all(|r| r.queue.as_deref() == Some("support")));
    assert_eq!((rep.totals.offered, rep.totals.answered), (6, 3));
    assert_eq!(rep.totals.service_level_target_ms, Some(30_000));
    // Agents handled only the support calls: ana S14, bob S6 and S11.
    let handled: Vec<(&str, u64)> = rep
        .agent_totals
        .iter()
        .map(|a| (a.agent_id.as_str(), a.handled))
        .collect();
    assert_eq!(handled, [("ana", 1), ("bob", 2)]);

    let mut q = query(at(9, 0, 0), at(12, 0, 0), Interval::Hour);
    q.agent = Some("bob".into());
    let rep = compute(&day(), &states(), &q, &targets());
    // bob answered S2, S6, S11; the call that rang him and was abandoned is not his.
    assert_eq!(
        (
            rep.totals.offered,
            rep.totals.answered,
            rep.totals.abandoned
        ),
        (3, 3, 0)
    );
    assert!(rep.agents.iter().all(|a| a.agent_id == "bob"));
    assert_eq!(rep.agent_totals.len(), 1);

    let mut q = query(at(9, 0, 0), at(12, 0, 0), Interval::Hour);
    q.dialed = Some(SUPPORT.into());
    let rep = compute(&day(), &states(), &q, &targets());
    // S6, S7, S8, S11, S12: the callback S14 dialed the customer, not the support number.
    assert_eq!((rep.totals.offered, rep.totals.callbacks_made), (5, 0));
    assert!(rep
        .rows
        .iter()
        .all(|r| r.dialed.as_deref() == Some(SUPPORT)));
}

#[test]
fn without_wrap_up_states_handle_time_is_talk_time() {
    let rep = compute(
        &day(),
        &[],
        &query(at(9, 0, 0), at(12, 0, 0), Interval::Hour),
        &targets(),
    );
    assert_eq!(rep.totals.avg_handle_ms, rep.totals.avg_talk_ms);
    assert_eq!(rep.totals.avg_talk_ms, Some(158_571));
    // Handled calls still show per agent, with no logged-in time to divide by.
    let bob = rep.agent_totals.iter().find(|a| a.agent_id == "bob");
    assert_eq!(bob.map(|a| (a.handled, a.occupancy)), Some((3, None)));
}

#[test]
fn short_abandon_and_service_level_edges_are_inclusive() {
    let t0 = at(9, 0, 0);
    let recs = vec![
        unanswered("a", "sales", t0, 5_000, Disposition::Abandoned),
        unanswered("b", "sales", t0, 5_001, Disposition::Abandoned),
        answered("c", "sales", t0, 20, "ana", 10, None),
        {
            let mut r = answered("d", "sales", t0, 20, "ana", 10, None);
            r.wait_ms = Some(20_001);
            r
        },
    ];
    let rep = compute(
        &recs,
        &[],
        &query(t0, at(9, 15, 0), Interval::Min15),
        &QueueTargets::default(),
    );
    let r = &rep.totals;
    assert_eq!((r.abandoned, r.abandoned_within_5s), (2, 1));
    // Default 20 s target: 20.000 s is within, 20.001 s is not; 1 / (4 − 1).
    assert_eq!(r.answered_within_target, 1);
    assert_eq!(r.service_level, Some(0.3333));
    assert_eq!(r.service_level_target_ms, None);
    assert_eq!(
        rep.rows
            .iter()
            .find(|r| r.queue.is_some())
            .and_then(|r| r.service_level_target_ms),
        Some(20_000)
    );
}

#[test]
fn a_callback_event_counts_once_as_a_callback() {
    let mut r = unanswered("cb", "sales", at(9, 1, 0), 30_000, Disposition::Callback);
    r.events.push(CallEvent {
        at: at(9, 1, 30),
        kind: "callback".into(),
        detail: serde_json::Value::Null,
    });
    let mut e = unanswered("ev", "sales", at(9, 2, 0), 30_000, Disposition::Completed);
    e.events.push(CallEvent {
        at: at(9, 2, 30),
        kind: "callback".into(),
        detail: serde_json::Value::Null,
    });
    let rep = compute(
        &[r, e],
        &[],
        &query(at(9, 0, 0), at(10, 0, 0), Interval::Hour),
        &targets(),
    );
    assert_eq!((rep.totals.callbacks, rep.totals.timed_out), (2, 0));
}

#[test]
fn an_empty_or_reversed_range_gives_no_rows_and_no_nan() {
    for (from, to) in [(at(9, 0, 0), at(9, 0, 0)), (at(10, 0, 0), at(9, 0, 0))] {
        let rep = compute(
            &day(),
            &states(),
            &query(from, to, Interval::Min15),
            &targets(),
        );
        assert!(rep.rows.is_empty() && rep.agents.is_empty() && rep.agent_totals.is_empty());
        assert_eq!(rep.totals.offered, 0);
        let json = serde_json::to_string(&rep).unwrap_or_default();
        assert!(json.contains("\"abandon_rate\":null"), "{json}");
        assert!(!json.contains("NaN") && !json.contains("inf"), "{json}");
        assert_eq!(to_csv(&rep).lines().count(), 1, "header only");
        assert!(to_table(&rep).contains("total"));
    }
}

#[test]
fn empty_intervals_between_calls_are_zero_rows_with_null_ratios() {
    let recs = vec![answered("x", "sales", at(9, 50, 0), 4, "ana", 60, None)];
    let mut q = query(at(9, 0, 0), at(11, 0, 0), Interval::Min15);
    q.queue = Some("sales".into());
    let rep = compute(&recs, &[], &q, &targets());
    let offered: Vec<u64> = rep.rows.iter().map(|r| r.offered).collect();
    assert_eq!(offered, [0, 0, 0, 1, 0, 0, 0, 0]);
    let json = serde_json::to_value(&rep).unwrap_or_default();
    assert_eq!(json["rows"][0]["service_level"], serde_json::Value::Null);
    assert_eq!(json["rows"][0]["offered"], 0);
    assert_eq!(json["rows"][3]["service_level"], 1.0);
    assert_eq!(
        json["rows"][3]["interval_start"],
        "2026-11-23T09:45:00.000Z"
    );
}

#[test]
fn intervals_follow_local_time_of_the_offset() {
    // São Paulo, UTC−03:00: days start at 03:00 UTC.
    let late = answered("late", "sales", at(2, 30, 0), 5, "ana", 10, None); // 23:30 on the 22nd
    let early = answered("early", "sales", at(3, 30, 0), 5, "ana", 10, None); // 00:30 on the 23rd
    let mut q = query(at(0, 0, 0), at(12, 0, 0), Interval::Day);
    q.tz_offset_minutes = -180;
    q.queue = Some("sales".into());
    let rep = compute(&[late, early], &[], &q, &targets());
    let got: Vec<(String, u64)> = rep
        .rows
        .iter()
        .map(|r| {
            (
                serde_json::to_value(r).unwrap_or_default()["interval_start"].to_string(),
                r.offered,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("\"2026-11-22T00:00:00.000-03:00\"".to_owned(), 1),
            ("\"2026-11-23T00:00:00.000-03:00\"".to_owned(), 1),
        ]
    );
    // The totals start at `from`, shown in local time.
    assert_eq!(
        rep.totals.interval_start.to_rfc3339(),
        "2026-11-22T21:00:00-03:00"
    );

    // India, UTC+05:30: hours start at :30 UTC, and the first one begins before `from`.
    let mut q = query(at(9, 0, 0), at(11, 0, 0), Interval::Hour);
    q.tz_offset_minutes = 330;
    let rep = compute(&[], &[], &q, &targets());
    let starts: Vec<DateTime<Utc>> = rep
        .rows
        .iter()
        .filter(|r| r.queue.is_none())
        .map(|r| r.interval_start.with_timezone(&Utc))
        .collect();
    assert_eq!(starts, [at(8, 30, 0), at(9, 30, 0), at(10, 30, 0)]);
}

#[test]
fn interval_names_parse_and_bad_queries_are_refused() {
    for (s, i) in [
        ("15m", Interval::Min15),
        ("1h", Interval::Hour),
        ("HOUR", Interval::Hour),
        (" 1d ", Interval::Day),
        ("day", Interval::Day),
    ] {
        assert_eq!(s.parse::<Interval>(), Ok(i));
    }
    assert_eq!(
        Interval::parse("5m").map_err(|e| e.to_string()),
        Err("unknown interval `5m`: use 15m, 1h or 1d".to_owned())
    );

    let year = query(
        at(0, 0, 0),
        at(0, 0, 0) + chrono::Duration::days(365),
        Interval::Min15,
    );
    assert_eq!(
        year.validate(),
        Err(ReportError::TooManyIntervals {
            intervals: 35_040,
            max: MAX_INTERVALS
        })
    );
    // compute stays bounded even when the caller skipped validate.
    let rep = compute(&[], &[], &year, &QueueTargets::default());
    assert_eq!(rep.rows.len(), 10_000);
    assert!(query(
        at(0, 0, 0),
        at(0, 0, 0) + chrono::Duration::days(365),
        Interval::Day
    )
    .validate()
    .is_ok());

    let mut q = query(at(9, 0, 0), at(10, 0, 0), Interval::Hour);
    q.tz_offset_minutes = 24 * 60;
    assert_eq!(q.validate(), Err(ReportError::TzOffset(1440)));
}

#[test]
fn csv_has_the_documented_header_and_exact_rows() {
    let mut q = query(at(9, 0, 0), at(10, 0, 0), Interval::Hour);
    q.queue = Some("sales".into());
    let rep = compute(&day(), &states(), &q, &targets());
    let csv = to_csv(&rep);
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(
        lines,
        [
            "interval_start,queue,dialed,country,offered,answered,abandoned,abandoned_within_5s,timed_out,\
             abandon_rate,asa_ms,avg_wait_ms,max_wait_ms,avg_talk_ms,avg_handle_ms,service_level,\
             service_level_target_ms,answered_within_target,callbacks,callbacks_made,survey_count,\
             survey_avg,survey_bad",
            // The 09 sales figures worked out above.
            "2026-11-23T09:00:00.000Z,sales,,,6,3,3,1,0,0.5,18333,21333,40000,126667,145000,0.4,20000,2,0,0,2,2,1",
            "",
        ]
    );

    let agents = to_agents_csv(&rep);
    assert_eq!(
        agents.split("\r\n").take(2).collect::<Vec<_>>(),
        [
            "interval_start,agent_id,handled,talk_ms,wrap_up_ms,handle_ms,logged_in_ms,away_ms,occupancy",
            "2026-11-23T09:00:00.000Z,ana,2,320000,25000,345000,3600000,900000,0.1278",
        ]
    );
}

#[test]
fn csv_quotes_and_defuses_hostile_names() {
    let mut r = answered(
        "x",
        "=HYPERLINK(\"http://evil\")",
        at(9, 0, 0),
        1,
        "ana",
        1,
        None,
    );
    r.queue = Some("=cmd,\"x\"".into());
    let mut q = query(at(9, 0, 0), at(10, 0, 0), Interval::Hour);
    q.queue = r.queue.clone();
    let csv = to_csv(&compute(&[r], &[], &q, &targets()));
    let second = csv.split("\r\n").nth(1).unwrap_or_default();
    assert!(
        second.starts_with("2026-11-23T09:00:00.000Z,\"'=cmd,\"\"x\"\"\",,,1,"),
        "{second}"
    );
}

#[test]
fn the_table_shows_local_times_durations_and_percentages() {
    let rep = hours();
    let table = to_table(&rep);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines
        .first()
        .is_some_and(|l| l.starts_with("interval") && l.contains("SL")));
    let sales9 = lines
        .iter()
        .find(|l| l.starts_with("2026-11-23 09:00  sales"))
        .unwrap_or(&"");
    // 6 offered, 3 answered, 3 abandoned (1 short), 50.0%, ASA 0:18, SL 40.0%, surveys 2.00 (2).
    let cells: Vec<&str> = sales9
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells,
        [
            "2026-11-23 09:00",
            "sales",
            "6",
            "3",
            "3 (1)",
            "0",
            "50.0%",
            "0:18",
            "0:21",
            "0:40",
            "2:07",
            "2:25",
            "40.0%",
            "0",
            "2.00 (2)"
        ]
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("total") && l.contains("(all)")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("2026-11-23 11:00  bob") && l.ends_with("8.8%")));
    // The empty hour shows dashes, not zeros pretending to be averages.
    assert!(lines
        .iter()
        .any(|l| l.starts_with("2026-11-23 10:00  (all)") && l.contains(" - ")));
}

#[test]
fn a_transferred_call_is_offered_once_and_its_talk_is_the_sum_of_its_legs() {
    // Waited 10 s, ana talked 60 s and transferred, bob answered 5 s later and talked 30 s.
    let enq = at(9, 0, 0);
    let mut r = answered("T1", "sales", enq, 10, "bob", 90, None);
    let leg = |agent: &str, from_s: i64, to_s: i64, by: &str| CallEvent {
        at: plus_ms(enq, to_s * 1000),
        kind: crate::cdr::CallLeg::EVENT.into(),
        detail: serde_json::json!({
            "agent_id": agent,
            "answered_at": crate::cdr::format_ts(&plus_ms(enq, from_s * 1000)),
            "ended_at": crate::cdr::format_ts(&plus_ms(enq, to_s * 1000)),
            "talk_ms": (to_s - from_s) * 1000,
            "ended_by": by,
        }),
    };
    r.events = vec![
        leg("ana", 10, 70, "transfer"),
        CallEvent {
            at: plus_ms(enq, 70_000),
            kind: "transfer".into(),
            detail: serde_json::json!({ "from_agent": "ana", "to_queue": "sales", "to_agent": "bob" }),
        },
        leg("bob", 75, 105, "caller"),
    ];
    // What the call controller writes: the talk of every leg, not the gap between them.
    r.talk_ms = Some(r.legs().iter().map(|l| l.talk_ms).sum());
    r.ended_at = Some(plus_ms(enq, 105_000));
    assert_eq!(r.talk_ms, Some(90_000));

    let other = answered("O1", "sales", at(9, 30, 0), 30, "ana", 30, None);
    let rep = compute(
        &[r, other],
        &[],
        &query(at(9, 0, 0), at(10, 0, 0), Interval::Hour),
        &targets(),
    );
    let t = &rep.totals;
    assert_eq!((t.offered, t.answered, t.abandoned), (2, 2, 0));
    // (90 + 30) / 2 calls; the first wait only: (10 + 30) / 2; 1 of 2 within sales' 20 s.
    assert_eq!(t.avg_talk_ms, Some(60_000));
    assert_eq!(t.asa_ms, Some(20_000));
    assert_eq!(t.answered_within_target, 1);
    // The call is handled once, by the agent who finished it.
    let handled: Vec<(&str, u64)> = rep
        .agent_totals
        .iter()
        .map(|a| (a.agent_id.as_str(), a.handled))
        .collect();
    assert_eq!(handled, [("ana", 1), ("bob", 1)]);
}

#[test]
fn callback_attempts_from_a_web_form_count_as_made_where_dialled_never_as_offered() {
    // A callback asked for on the web site is dialled twice at 10:05 (busy) and 10:20 (answered
    // by ana): two attempts made in the 10:00 hour for sales; the hour's offered calls and
    // answers do not change, because the request was never a call waiting in the queue.
    let attempt = |id: &str, t: DateTime<Utc>, answered_by: Option<&str>| {
        let mut r = CallRecord::new(
            id,
            Direction::Callback,
            "+551130000001",
            "+5511912345678",
            t,
        );
        r.queue = Some("sales".into());
        r.agent_id = Some("ana".into());
        r.agent_answered_at = answered_by.map(|_| plus_ms(t, 4_000));
        r.disposition = Some(if answered_by.is_some() {
            Disposition::Completed
        } else {
            Disposition::Failed
        });
        r.ended_at = Some(plus_ms(t, 60_000));
        r
    };
    let q = query(at(9, 0, 0), at(12, 0, 0), Interval::Hour);
    let before = compute(&day(), &states(), &q, &targets());
    let mut records = day();
    records.push(attempt("CB1", at(10, 5, 0), None));
    records.push(attempt("CB2", at(10, 20, 0), Some("ana")));
    let after = compute(&records, &states(), &q, &targets());
    let hour10 = |r: &Report| {
        r.rows
            .iter()
            .find(|x| x.queue.as_deref() == Some("sales") && x.interval_start == at(10, 0, 0))
            .map(|x| (x.offered, x.answered, x.callbacks_made))
    };
    let (offered, answered, made) = hour10(&before).unwrap_or_default();
    assert_eq!(hour10(&after), Some((offered, answered, made + 2)));
    assert_eq!(
        after.totals.callbacks_made,
        before.totals.callbacks_made + 2
    );
    assert_eq!(after.totals.offered, before.totals.offered);
}

/// The day's calls all dialled Brazilian numbers; add an Argentine DID's calls, a Portuguese
/// customer's callback, an extension and a record from before the `country` column.
fn day_with_other_countries() -> Vec<CallRecord> {
    let mut recs = day();
    // AR1: answered after 12 s, 60 s of talk, on sales at 09:30.
    let mut ar1 = answered("AR1", "sales", at(9, 30, 0), 12, "ana", 60, None);
    ar1.to = "+541150000000".into();
    ar1.country = Some("AR".into());
    // AR2: the same DID, abandoned after 4 s at 11:05, stored before the column existed (no
    // country): the report takes it from the number.
    let mut ar2 = unanswered(
        "AR2",
        "support",
        at(11, 5, 0),
        4_000,
        Disposition::Abandoned,
    );
    ar2.to = "+541150000000".into();
    ar2.country = None;
    // PT1: a callback attempt dialled to a Portuguese customer, never queued.
    let mut pt1 = CallRecord::new(
        "PT1",
        Direction::Callback,
        "+551130000001",
        "+351912345678",
        at(10, 15, 0),
    );
    pt1.queue = Some("sales".into());
    // EXT: a call to extension 7000 has no country and is in no country's figures.
    let mut ext = answered("EXT", "sales", at(9, 40, 0), 1, "bob", 10, None);
    ext.to = "7000".into();
    ext.country = None;
    recs.extend([ar1, ar2, pt1, ext]);
    recs
}

#[test]
fn a_country_filter_keeps_only_calls_to_that_countrys_numbers() {
    let recs = day_with_other_countries();
    assert_eq!(
        recs.iter()
            .find(|r| r.call_id == "PT1")
            .and_then(|r| r.country.as_deref()),
        Some("PT")
    );
    let by = |country: Option<&str>| {
        let mut q = query(at(9, 0, 0), at(12, 0, 0), Interval::Hour);
        q.country = country.map(str::to_owned);
        compute(&recs, &states(), &q, &targets())
    };

    // Argentina: AR1 (answered, 12 s ≤ 20 s target) and AR2 (abandoned, 4 s: a short abandon).
    let ar = by(Some("AR"));
    let t = &ar.totals;
    assert_eq!(t.country.as_deref(), Some("AR"));
    assert_eq!(
        (t.offered, t.answered, t.abandoned, t.abandoned_within_5s),
        (2, 1, 1, 1)
    );
    // ASA 12 000; mean wait (12 000 + 4 000) / 2 = 8 000; SL 1 ÷ (2 − 1) = 1.
    assert_eq!(
        (t.asa_ms, t.avg_wait_ms, t.service_level),
        (Some(12_000), Some(8_000), Some(1.0))
    );
    assert_eq!(row(&ar, 9, Some("sales")).offered, 1);
    assert_eq!(row(&ar, 11, Some("support")).abandoned, 1);
    assert!(ar.rows.iter().all(|r| r.country.as_deref() == Some("AR")));

    // Portugal: only the callback attempt, counted as made, never offered.
    let pt = by(Some("PT"));
    assert_eq!((pt.totals.offered, pt.totals.callbacks_made), (0, 1));
    assert_eq!(row(&pt, 10, None).callbacks_made, 1);

    // Brazil: exactly the hand-computed day (every call of `day()` dialled +55).
    let br = by(Some("BR"));
    let mut want = hours().totals;
    want.country = Some("BR".into());
    assert_eq!(br.totals, want);

    // No filter: every call, the extension's too: the day's 15 + AR1 + AR2 + EXT = 18 offered.
    let all = by(None);
    assert_eq!(all.totals.offered, 18);
    assert_eq!(all.totals.country, None);
    // Nobody dialled Germany.
    assert_eq!(by(Some("DE")).totals.offered, 0);
}

#[test]
fn a_dialed_filter_names_its_country_in_every_row_and_the_csv() {
    let mut q = query(at(9, 0, 0), at(10, 0, 0), Interval::Hour);
    q.dialed = Some("+541150000000".into());
    let rep = compute(&day_with_other_countries(), &states(), &q, &targets());
    assert_eq!(rep.totals.offered, 1, "AR1 only");
    assert!(rep.rows.iter().all(|r| r.country.as_deref() == Some("AR")));
    let csv = to_csv(&rep);
    let second = csv.split("\r\n").nth(1).unwrap_or_default();
    assert!(
        second.starts_with("2026-11-23T09:00:00.000Z,,+541150000000,AR,1,1,0,0,0,"),
        "{second}"
    );
    assert!(
        to_table(&rep).contains("country AR\n"),
        "{}",
        to_table(&rep)
    );
}

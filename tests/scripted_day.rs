//! Issue 4: a scripted day through the real server, then every report figure checked against
//! numbers worked out here from the script. On SQLite by default; scripts/test-postgres plays it
//! again on a real PostgreSQL server.
//!
//! The script: ten callers abandon while no agent is available (six after 1 s, four after
//! 6.5 s), one caller fails the PIN, one presses the queue's exit key for a callback that keeps
//! their place, and a CRM posts another callback. Then ana accepts both callbacks (the server
//! dials the customers through a MOCK carrier trunk — a carrier is out of reach — and bridges
//! them), answers six calls at once (two end with a survey) and three after letting them ring
//! 3 s, and finally takes one call and transfers it to bea. 24 calls in all (and one CRM request).
//! Counts are exact. Waits are timed by the server, so for each call the test keeps bounds it
//! can prove: at least the delay it scripted, at most the span it measured around the server's
//! own timestamps (the server's wait starts after the call is answered and ends before the
//! agent's `connected` arrives / the BYE is answered), and the ms figures must fall within them.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::agent::{agent_yaml, post_json_with, Agent};
use common::reports::{csv_rows, get_csv};
use common::trunk::{accept_callback, MockTrunk};
use common::*;

const FLOW: &str = r##"
flow: day
numbers: ["7100"]
language: en
start: billing
steps:
  billing:
    queue: { name: billing, timeout: 2m }
    on_timeout: goodbye
    after_agent: rate
  rate:
    survey:
      prompt: survey
      options: { "1": 1, "2": 2, "3": 3 }
      timeout: 5s
      retries: 1
    next: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

const PIN_FLOW: &str = r##"
flow: pin
numbers: ["7300"]
language: en
start: identify
steps:
  identify:
    pin:
      account: caller
      prompt: enter-pin
      digits: 4-8
      terminator: "#"
      timeout: 6s
      attempts: 1
    on_ok: billing
    on_fail: hangup
  billing:
    queue: billing
"##;

const PW: &str = "correct horse battery";
const TRUNK_USER: &str = "acme-centre";
const TRUNK_PW: &str = "trunk-secret-9";
const CRM_NUMBER: &str = "+5511912345678";
/// The queue's service level target, short so the script runs quickly.
const SL_MS: u64 = 2_000;
/// Where the server's wait may start after the test's clock: enqueueing follows the answer.
const ENQUEUE_SLACK_MS: u64 = 1_000;

fn config(trunk: &MockTrunk) -> String {
    format!(
        "queues:\n  - name: billing\n    service_level: 2s\n    wrap_up: 1s\n    ring_timeout: 30s\n    announce_every: 60s\n    exit_key: \"9\"\nagents:\n{}{}\
         widget:\n  callback_prefixes: [\"+55\"]\n  callback_retries: [\"1s\"]\n\
         trunk:\n  address: \"{}\"\n  username: {TRUNK_USER}\n  password: {TRUNK_PW}\n  default_caller_id: \"+551130000000\"\n",
        agent_yaml("ana", PW, &[("billing", 3)], &["billing"]),
        agent_yaml("bea", PW, &[("billing", 3)], &["billing"]),
        trunk.addr,
    )
}

/// With `SWITCHBOARD_TEST_PG` set (scripts/test-postgres), the day is played on PostgreSQL, in
/// a schema of its own so other tests' records do not count; else on the default SQLite file.
fn database() -> (String, Option<(String, String)>) {
    let Some(base) = std::env::var("SWITCHBOARD_TEST_PG")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        return (String::new(), None);
    };
    let schema = format!("day_{}", std::process::id());
    let mut client = postgres::Client::connect(&base, postgres::NoTls)
        .unwrap_or_else(|e| panic!("SWITCHBOARD_TEST_PG: {e}"));
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap_or_else(|e| panic!("create schema: {e}"));
    let sep = if base.contains('?') { '&' } else { '?' };
    eprintln!("the scripted day runs on PostgreSQL (schema {schema})");
    (
        format!("database: \"{base}{sep}options=-c%20search_path%3D{schema}\"\n"),
        Some((base, schema)),
    )
}

/// What the test knows about one offered call's wait, in ms.
#[derive(Debug, Clone, Copy)]
struct Wait {
    lo: u64,
    hi: u64,
    answered: bool,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Lets `d` pass while the phone answers any SIP the server sends.
fn pause(phone: &mut Phone, d: Duration) {
    phone.rtp_arriving_during(d);
}

/// One answered call: ana rings, answers after `ring_for`, they talk briefly, then either the
/// caller hangs up or (with `survey`) ana does and the caller rates the call.
fn answered_call(
    server: &Server,
    ana: &mut Agent,
    ring_for: Duration,
    survey: Option<char>,
    prompts: &PromptSet,
) -> Wait {
    let mut phone = Phone::udp(server);
    phone.call("7100", CALLER).must();
    let t0 = Instant::now();
    let ring = ana.wait_ring(secs(10)).must();
    let call_id = ring["call_id"].as_str().unwrap_or_default().to_string();
    pause(&mut phone, ring_for);
    ana.answer(&call_id).must();
    let hi = ms(t0.elapsed());
    pause(&mut phone, Duration::from_millis(300));
    match survey {
        Some(key) => {
            ana.hangup(&call_id).must();
            phone.wait_heard(prompts, "survey", 1, secs(10)).must();
            phone.send_digits_rfc4733(&key.to_string()).must();
            phone.wait_for_bye(secs(15)).must();
        }
        None => assert_eq!(phone.hangup().must(), 200),
    }
    ana.wait_state("available", secs(10)).must();
    let rec = wait_call_record(server, &call_id, secs(10));
    assert_eq!(field(&rec, "agent_id"), "ana", "{rec}");
    Wait {
        lo: ms(ring_for),
        hi,
        answered: true,
    }
}

fn num(v: &serde_json::Value, name: &str) -> u64 {
    v[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} is not a number in {v}"))
}

fn within(what: &str, got: u64, lo: u64, hi: u64) {
    assert!(
        (lo..=hi).contains(&got),
        "{what} = {got}, expected within [{lo}, {hi}]"
    );
}

#[test]
fn a_scripted_day_adds_up_in_the_report() {
    let trunk = MockTrunk::bind(TRUNK_USER, TRUNK_PW);
    let (db_yaml, pg) = database();
    let server = Server::start(
        ServerOpts::new()
            .flow("day", FLOW)
            .flow("pin", PIN_FLOW)
            .flow("cb", &queue_callback_flow("cb", "7400", "billing"))
            .account(Account::new("m-100", "+5511900000099", "73829461"))
            .config(&format!("{}{db_yaml}", config(&trunk))),
    );
    let mut ana = Agent::login(&server, "ana", PW).must();
    let mut bea = Agent::login(&server, "bea", PW).must();
    let prompts = english_prompts(&["survey", "goodbye", "enter-pin"]);
    let mut waits: Vec<Wait> = Vec::new();

    // Morning: both agents logged in but away. Ten callers give up, one fails the PIN.
    let hang_after = [
        1_000u64, 1_000, 1_000, 1_000, 1_000, 1_000, 6_500, 6_500, 6_500, 6_500,
    ];
    let auth_id = std::thread::scope(|s| {
        let auth = s.spawn(|| {
            let mut phone = Phone::udp(&server);
            phone.call("7300", "+5511900000099").must();
            phone.wait_heard(&prompts, "enter-pin", 1, secs(10)).must();
            phone.send_digits_rfc4733("1111#").must();
            phone.wait_for_bye(secs(15)).must();
            phone.call_id().to_string()
        });
        let mut phones: Vec<(Phone, Instant, u64)> = hang_after
            .iter()
            .map(|&after| {
                let mut p = Phone::udp(&server);
                p.call("7100", CALLER).must();
                (p, Instant::now(), after)
            })
            .collect();
        for (phone, t0, after) in phones.iter_mut() {
            let left = Duration::from_millis(*after).saturating_sub(t0.elapsed());
            pause(phone, left);
            assert_eq!(phone.hangup().must(), 200);
            waits.push(Wait {
                lo: after.saturating_sub(ENQUEUE_SLACK_MS),
                hi: ms(t0.elapsed()),
                answered: false,
            });
        }
        for (phone, _, _) in &phones {
            let rec = wait_call_record(&server, phone.call_id(), secs(10));
            assert_eq!(field(&rec, "disposition"), "abandoned", "{rec}");
        }
        auth.join()
            .unwrap_or_else(|_| panic!("the PIN caller's thread failed"))
    });
    let rec = wait_call_record(&server, &auth_id, secs(10));
    assert_eq!(field(&rec, "disposition"), "auth_failed", "{rec}");

    // Late morning: a caller leaves the queue with the exit key for a callback that keeps their
    // place; then a CRM asks for a callback to another customer.
    let mut phone = Phone::udp(&server);
    phone.call("7400", CALLER).must();
    let t0 = Instant::now();
    pause(&mut phone, Duration::from_millis(1_000));
    phone.send_digits_rfc4733("9").must();
    phone.wait_for_bye(secs(15)).must();
    waits.push(Wait {
        lo: 1_000u64.saturating_sub(ENQUEUE_SLACK_MS),
        hi: ms(t0.elapsed()),
        answered: false,
    });
    let rec = wait_call_record(&server, phone.call_id(), secs(10));
    assert_eq!(field(&rec, "disposition"), "callback", "{rec}");
    let (status, cb) = post_json_with(
        server.http,
        "/api/callbacks",
        &serde_json::json!({"number": CRM_NUMBER, "queue": "billing", "note": "invoice 42"}),
        &[("Authorization", "Bearer test-token")],
    )
    .must();
    assert_eq!(
        (status, &cb["position"]),
        (201, &serde_json::json!(2)),
        "{cb}"
    );

    // Midday: ana comes back. The callbacks come first, the caller's in their original place.
    ana.set_available().must();
    let (trunk, first) = accept_callback(&server, &mut ana, trunk, CALLER);
    let (_trunk, second) = accept_callback(&server, &mut ana, trunk, CRM_NUMBER);
    for rec in [&first, &second] {
        assert_eq!(field(rec, "agent_id"), "ana", "{rec}");
        assert_eq!(field(rec, "disposition"), "completed", "{rec}");
    }

    // Then calls. Quick ones (within the 2 s target), two ending with a survey scored 1 and 3,
    // then three she lets ring 3 s (beyond it).
    let script: [(u64, Option<char>); 9] = [
        (0, None),
        (0, Some('1')),
        (0, None),
        (0, Some('3')),
        (0, None),
        (0, None),
        (3_000, None),
        (3_000, None),
        (3_000, None),
    ];
    for (ring_ms, survey) in script {
        let w = answered_call(
            &server,
            &mut ana,
            Duration::from_millis(ring_ms),
            survey,
            &prompts,
        );
        waits.push(w);
    }

    // Evening: ana answers at once and hands the caller to bea, who finishes the call.
    let mut phone = Phone::udp(&server);
    phone.call("7100", CALLER).must();
    let t0 = Instant::now();
    let ring = ana.wait_ring(secs(10)).must();
    let call_id = ring["call_id"].as_str().unwrap_or_default().to_string();
    ana.answer(&call_id).must();
    waits.push(Wait {
        lo: 0,
        hi: ms(t0.elapsed()),
        answered: true,
    });
    bea.set_available().must();
    ana.transfer(&call_id, None, Some("bea")).must();
    bea.wait_ring(secs(10)).must();
    bea.answer(&call_id).must();
    pause(&mut phone, Duration::from_millis(300));
    assert_eq!(phone.hangup().must(), 200);
    let rec = wait_call_record(&server, &call_id, secs(10));
    assert_eq!(field(&rec, "agent_id"), "bea", "{rec}");

    // By hand: 10 abandoned + 1 callback asked from the queue + 9 answered by ana + 1
    // transferred = 21 offered, 10 answered; 6 abandons within 5 s; the auth failure never
    // reached the queue; the two callback attempts are callbacks made, not offered calls.
    let offered = 21u64;
    let (answered, abandoned, short) = (10u64, 10u64, 6u64);
    assert_eq!(waits.len() as u64, offered);
    // Within 2 s: the six quick calls and the transferred one. On a loaded machine a "quick"
    // WebRTC answer could take longer than the target; such a call is then counted as either.
    let sure = waits.iter().filter(|w| w.answered && w.hi <= SL_MS).count() as u64;
    let maybe = waits
        .iter()
        .filter(|w| w.answered && w.lo <= SL_MS && w.hi > SL_MS)
        .count() as u64;
    assert_eq!(sure + maybe, 7, "the script's quick answers: {waits:?}");
    let answered_waits: Vec<&Wait> = waits.iter().filter(|w| w.answered).collect();
    let mean =
        |ws: &[&Wait], f: fn(&Wait) -> u64| ws.iter().map(|w| f(w)).sum::<u64>() / ws.len() as u64;
    let all: Vec<&Wait> = waits.iter().collect();

    let (status, report) = http_get_json(&server, "/api/reports?interval=day");
    assert_eq!(status, 200, "{report}");
    let t = &report["totals"];
    assert_eq!(num(t, "offered"), offered, "{t}");
    assert_eq!(num(t, "answered"), answered, "{t}");
    assert_eq!(num(t, "abandoned"), abandoned, "{t}");
    assert_eq!(num(t, "abandoned_within_5s"), short, "{t}");
    assert_eq!(num(t, "timed_out"), 0, "{t}");
    assert_eq!(num(t, "callbacks"), 1, "{t}");
    assert_eq!(num(t, "callbacks_made"), 2, "{t}");
    let within_target = num(t, "answered_within_target");
    within("answered_within_target", within_target, sure, sure + maybe);
    // 10 / 21 and (normally 7) / (21 − 6), to the report's four decimals.
    assert_eq!(t["abandon_rate"].as_f64(), Some(0.4762), "{t}");
    let sl = (within_target as f64 / (offered - short) as f64 * 10_000.0).round() / 10_000.0;
    assert_eq!(t["service_level"].as_f64(), Some(sl), "{t}");
    // Scores 1 and 3: two surveys, mean 2, one bad.
    assert_eq!(num(t, "survey_count"), 2, "{t}");
    assert_eq!(t["survey_avg"].as_f64(), Some(2.0), "{t}");
    assert_eq!(num(t, "survey_bad"), 1, "{t}");
    // The ms figures: between the means/maxima of the bounds (+1 for the report's rounding).
    within(
        "asa_ms",
        num(t, "asa_ms"),
        mean(&answered_waits, |w| w.lo).saturating_sub(1),
        mean(&answered_waits, |w| w.hi) + 1,
    );
    within(
        "avg_wait_ms",
        num(t, "avg_wait_ms"),
        mean(&all, |w| w.lo).saturating_sub(1),
        mean(&all, |w| w.hi) + 1,
    );
    within(
        "max_wait_ms",
        num(t, "max_wait_ms"),
        waits.iter().map(|w| w.lo).max().unwrap_or(0),
        waits.iter().map(|w| w.hi).max().unwrap_or(0) + 1,
    );
    let handled: BTreeMap<String, u64> = report["agent_totals"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| (field(a, "agent_id").to_string(), num(a, "handled")))
        .collect();
    // The transferred call is handled once, by bea who finished it; ana's two callback
    // conversations are calls she handled.
    assert_eq!(
        handled,
        BTreeMap::from([("ana".to_string(), 11), ("bea".to_string(), 1)]),
        "{report}"
    );
    // ana was away the whole morning (at least the 6.5 s abandons and the callback request),
    // and her occupancy is her handling time over the time she could take calls.
    let ana_row = report["agent_totals"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["agent_id"] == "ana").cloned())
        .unwrap_or_default();
    let away = num(&ana_row, "away_ms");
    assert!(away >= 7_500, "ana's away time {away} ms: {ana_row}");
    let available_ms = num(&ana_row, "logged_in_ms") - away;
    let occupancy =
        (num(&ana_row, "handle_ms") as f64 / available_ms as f64 * 10_000.0).round() / 10_000.0;
    assert_eq!(ana_row["occupancy"].as_f64(), Some(occupancy), "{ana_row}");
    assert!(occupancy > 0.0 && occupancy <= 1.0, "{ana_row}");

    // The CSV says the same for the billing row.
    let (status, csv) = get_csv(
        server.http,
        "/api/reports?interval=day",
        common::http::API_TOKEN,
    )
    .must();
    assert_eq!(status, 200, "{csv}");
    let rows = csv_rows(&csv);
    let billing = rows
        .iter()
        .find(|r| r.get("queue").map(String::as_str) == Some("billing"))
        .unwrap_or_else(|| panic!("no billing row in {csv}"));
    let cell = |k: &str| billing.get(k).cloned().unwrap_or_default();
    assert_eq!(cell("offered"), offered.to_string(), "{csv}");
    assert_eq!(cell("answered"), answered.to_string(), "{csv}");
    assert_eq!(cell("abandoned"), abandoned.to_string(), "{csv}");
    assert_eq!(cell("abandoned_within_5s"), short.to_string(), "{csv}");
    assert_eq!(cell("abandon_rate"), "0.4762", "{csv}");
    assert_eq!(cell("callbacks"), "1", "{csv}");
    assert_eq!(cell("callbacks_made"), "2", "{csv}");
    assert_eq!(cell("service_level"), sl.to_string(), "{csv}");
    assert_eq!(cell("service_level_target_ms"), SL_MS.to_string(), "{csv}");
    assert_eq!(cell("survey_count"), "2", "{csv}");
    assert_eq!(cell("survey_avg"), "2", "{csv}");
    assert_eq!(cell("asa_ms"), num(t, "asa_ms").to_string(), "{csv}");
    assert_eq!(
        cell("max_wait_ms"),
        num(t, "max_wait_ms").to_string(),
        "{csv}"
    );

    // On PostgreSQL, the records the report was computed from are really there: every call of
    // the day (offered, the PIN failure and the two callback attempts).
    if let Some((base, schema)) = pg {
        let mut client = postgres::Client::connect(&base, postgres::NoTls)
            .unwrap_or_else(|e| panic!("SWITCHBOARD_TEST_PG: {e}"));
        let row = client
            .query_one(&format!("SELECT count(*) FROM {schema}.cdr_calls"), &[])
            .unwrap_or_else(|e| panic!("count: {e}"));
        let n: i64 = row.get(0);
        assert_eq!(n as u64, offered + 3, "records in PostgreSQL");
    }
}

//! The post-call survey step and `after_agent`: parse, check, interpreter, simulator.

use super::interp::*;
use super::interp_tests::{flow, prompts};
use crate::time::Instant;
use std::path::Path;

const FLOW: &str = r##"
flow: s
numbers: ["7000"]
language: en
start: q
steps:
  q:
    queue: billing
    on_timeout: goodbye
    after_agent: rate
  rate:
    survey:
      prompt: menu
      options: { "1": 5, "2": 3, "3": 1 }
      bad_below: 3
      timeout: 5s
      retries: 1
    next: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

fn start() -> Interpreter {
    let info = CallInfo {
        call_id: "c1".into(),
        caller: "+15551230000".into(),
        dialed: "7000".into(),
        started_wall: chrono::DateTime::parse_from_rfc3339("2026-01-05T12:00:00Z")
            .map(|d| d.with_timezone(&chrono::Utc))
            .unwrap_or_default(),
        started: Instant::from_millis(0),
    };
    let mut it = Interpreter::new(flow(FLOW), prompts(&["menu", "goodbye"]), info);
    it.start(Instant::from_millis(0));
    it
}

fn drain(it: &mut Interpreter) -> Vec<Action> {
    std::iter::from_fn(|| it.poll_action()).collect()
}

#[test]
fn after_the_agent_the_caller_rates_and_a_low_score_is_bad() {
    let mut it = start();
    let a = drain(&mut it);
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::Queue { name, .. } if name == "billing")));
    assert!(it.continues_after_agent());
    it.handle(Instant::from_millis(60_000), Event::AgentHungUp);
    let a = drain(&mut it);
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::StepEntered { step } if step == "rate")),
        "{a:?}"
    );
    it.handle(Instant::from_millis(60_500), Event::Digit('3'));
    let a = drain(&mut it);
    assert!(
        a.contains(&Action::Survey {
            step: "rate".into(),
            score: 1,
            bad: true
        }),
        "{a:?}"
    );
    assert_eq!(it.vars().get("survey").map(String::as_str), Some("1"));
    assert_eq!(it.path(), ["q", "rate", "goodbye"]);
}

#[test]
fn a_good_score_is_not_bad_and_silence_records_nothing() {
    let mut it = start();
    drain(&mut it);
    it.handle(Instant::from_millis(1_000), Event::AgentHungUp);
    drain(&mut it);
    it.handle(Instant::from_millis(1_100), Event::Digit('1'));
    let a = drain(&mut it);
    assert!(a.contains(&Action::Survey {
        step: "rate".into(),
        score: 5,
        bad: false
    }));

    let mut it = start();
    drain(&mut it);
    it.handle(Instant::from_millis(1_000), Event::AgentHungUp);
    let mut all = drain(&mut it);
    // The prompt plays with barge-in, then two silent waits (first try and one retry).
    for _ in 0..6 {
        if let Some(Action::Play { id, .. }) = all
            .iter()
            .rev()
            .find(|a| matches!(a, Action::Play { .. }))
            .cloned()
        {
            it.handle(
                Instant::from_millis(2_000),
                Event::PlaybackDone {
                    id,
                    interrupted: false,
                },
            );
        }
        if let Some(t) = it.poll_timeout() {
            it.handle_timeout(t);
        }
        all = drain(&mut it);
        if it.path().last().map(String::as_str) == Some("goodbye") {
            break;
        }
    }
    assert_eq!(it.path(), ["q", "rate", "goodbye"]);
    assert_eq!(it.vars().get("survey"), None);
}

#[test]
fn without_after_agent_the_agent_hanging_up_ends_the_flow() {
    let yaml = FLOW
        .replace("    after_agent: rate\n", "")
        .replace("on_timeout: goodbye", "on_timeout: rate");
    let info = CallInfo {
        call_id: "c1".into(),
        caller: "+1".into(),
        dialed: "7000".into(),
        started_wall: chrono::DateTime::default(),
        started: Instant::from_millis(0),
    };
    let mut it = Interpreter::new(flow(&yaml), prompts(&["menu", "goodbye"]), info);
    it.start(Instant::from_millis(0));
    drain(&mut it);
    assert!(!it.continues_after_agent());
}

fn errors(yaml: &str) -> Vec<String> {
    let (_, diags) = super::check::parse_str(Path::new("f.yaml"), yaml);
    diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn bad_keys_scores_and_targets_are_reported_where_they_are() {
    let e = errors(&FLOW.replace("\"3\": 1 }", "\"33\": 1 }"));
    assert!(
        e.iter()
            .any(|m| m.starts_with("f.yaml:14:") && m.contains("survey option `33`")),
        "{e:#?}"
    );
    let e = errors(&FLOW.replace("\"3\": 1 }", "\"3\": bad }"));
    assert!(e.iter().any(|m| m.contains("score of `3`")), "{e:#?}");
    let e = errors(&FLOW.replace("after_agent: rate", "after_agent: rat"));
    assert!(
        e.iter()
            .any(|m| m.starts_with("f.yaml:10:") && m.contains("rat")),
        "{e:#?}"
    );
    let e = errors(&FLOW.replace(
        "    next: goodbye\n  goodbye",
        "    on_invalid: goodbye\n  goodbye",
    ));
    assert!(e.iter().any(|m| m.contains("on_invalid")), "{e:#?}");
}

#[test]
fn flow_tests_and_simulate_follow_the_caller_past_the_agent() {
    let flow = flow(FLOW);
    let p = prompts(&["menu", "goodbye"]);
    let inputs = vec!["2".to_string()];
    let at = chrono::DateTime::parse_from_rfc3339("2026-01-05T12:00:00Z").unwrap_or_default();
    let r = super::simulate(
        flow.clone(),
        p.clone(),
        "+1",
        at,
        &inputs,
        &mut super::NoServices,
    );
    assert_eq!(r.vars.get("survey").map(String::as_str), Some("3"));
    assert!(r.queued.is_some(), "{r}");
    assert!(r.to_string().contains("survey score 3"), "{r}");
    // Without input left the simulation stops in the queue, as before.
    let r = super::simulate(
        flow.clone(),
        p.clone(),
        "+1",
        at,
        &[],
        &mut super::NoServices,
    );
    assert!(matches!(r.outcome, super::Outcome::Queue { .. }), "{r}");
}

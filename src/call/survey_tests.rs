//! The controller keeps the caller when the agent hangs up first and the flow has `after_agent`.

use std::path::Path;
use std::sync::Arc;

use chrono::TimeZone;

use super::{CallController, Command, NewCall};
use crate::cdr::{Direction, Disposition, HangupBy};
use crate::ivr::PromptIndex;
use crate::time::Instant;

const FLOW: &str = r##"
flow: q
numbers: ["7400"]
language: en
start: billing
steps:
  billing:
    queue: billing
    on_timeout: goodbye
    after_agent: rate
  rate:
    survey:
      prompt: survey
      options: { "1": 5, "2": 3, "3": 1 }
      bad_below: 3
    next: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn drain(c: &mut CallController) -> Vec<Command> {
    std::iter::from_fn(|| c.poll_command()).collect()
}

fn plays(cmds: &[Command]) -> Vec<u64> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Play { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

#[test]
fn the_caller_stays_after_the_agent_and_the_score_lands_on_the_record() {
    let (flow, diags) = crate::ivr::parse_str(Path::new("t.yaml"), FLOW);
    let flow = flow.unwrap_or_else(|| panic!("{diags:?}"));
    let mut c = CallController::new(
        Arc::new(flow),
        Arc::new(PromptIndex::scan(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("sounds"),
        )),
        NewCall {
            call_id: "c1".into(),
            from: "+5511987650000".into(),
            to: "7400".into(),
            direction: Direction::Inbound,
            started: t(1_000),
            started_wall: chrono::Utc
                .with_ymd_and_hms(2026, 11, 23, 13, 0, 0)
                .single()
                .unwrap_or_default(),
            queues_enabled: true,
        },
    );
    drain(&mut c);
    c.confirmed(t(1_040));
    let cmds = drain(&mut c);
    assert!(
        cmds.iter().any(|c| matches!(c, Command::Enqueue { .. })),
        "{cmds:?}"
    );
    c.enqueued(t(1_100), None, None, None);
    drain(&mut c);
    c.agent_connected(t(5_000), "alice");
    drain(&mut c);

    c.agent_hung_up(t(65_000));
    let cmds = drain(&mut c);
    assert!(!c.is_ended(), "the caller is kept: {cmds:?}");
    assert!(
        !cmds.iter().any(|c| matches!(c, Command::Hangup)),
        "{cmds:?}"
    );
    assert!(
        cmds.iter().any(|c| matches!(c, Command::Unbridge)),
        "{cmds:?}"
    );
    assert_eq!(c.record().talk_ms, Some(60_000));
    let survey_prompt = plays(&cmds);
    assert!(
        !survey_prompt.is_empty(),
        "the survey prompt plays: {cmds:?}"
    );

    c.digit(t(66_000), '3', "rfc4733");
    let cmds = drain(&mut c);
    assert_eq!(c.record().survey, Some(1));
    assert!(c
        .record()
        .events
        .iter()
        .any(|e| e.kind == "survey" && e.detail["bad"] == true && e.detail["score"] == 1));
    for id in plays(&cmds) {
        c.playback_done(t(68_000), id, false);
    }
    let cmds = drain(&mut c);
    let rec = cmds
        .iter()
        .find_map(|c| match c {
            Command::CdrFinish(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the call ends after goodbye: {cmds:?}"));
    assert!(cmds.iter().any(|c| matches!(c, Command::Hangup)));
    assert_eq!(rec.survey, Some(1));
    assert_eq!(rec.agent_id.as_deref(), Some("alice"));
    assert_eq!(rec.disposition, Some(Disposition::Completed));
    assert_eq!(rec.hangup_by, Some(HangupBy::System));
    assert_eq!(rec.ivr_path, ["billing", "rate", "goodbye", "hangup"]);
}

//! Whole calls through the controller on virtual time: no sockets, no sleeps.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;

use super::*;
use crate::ivr::PromptIndex;

const FLOW: &str = r##"
flow: t
numbers: ["7000"]
language: en
answer_delay: 2s
start: identify
steps:
  identify:
    pin: { account: caller, prompt: enter-pin, digits: 4-8, terminator: "#", timeout: 6s, attempts: 3, retry_prompt: pin-invalid }
    on_ok: menu
    on_fail: locked-out
  menu:
    menu: { prompt: main-menu, options: { "1": billing }, timeout: 5s, retries: 1 }
    on_timeout: goodbye
    on_invalid: goodbye
  billing:
    queue: { name: billing, timeout: 10m }
    on_timeout: goodbye
  locked-out:
    play: too-many-attempts
    next: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

pub(super) fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn controller() -> CallController {
    controller_with(FLOW, false)
}

pub(super) fn controller_with(yaml: &str, queues_enabled: bool) -> CallController {
    let (flow, diags) = crate::ivr::parse_str(Path::new("t.yaml"), yaml);
    let flow = flow.unwrap_or_else(|| panic!("flow parses: {diags:?}"));
    CallController::new(
        Arc::new(flow),
        Arc::new(PromptIndex::scan(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("sounds"),
        )),
        NewCall {
            call_id: "c1".into(),
            from: "+5511987650000".into(),
            to: "7000".into(),
            direction: Direction::Inbound,
            started: t(1_000),
            started_wall: Utc
                .with_ymd_and_hms(2026, 11, 23, 13, 0, 0)
                .single()
                .expect("time"),
            queues_enabled,
        },
    )
}

pub(super) fn drain(c: &mut CallController) -> Vec<Command> {
    std::iter::from_fn(|| c.poll_command()).collect()
}

/// Finishes every prompt the controller asked for, as the media session would.
pub(super) fn finish_prompts(
    c: &mut CallController,
    now: Instant,
    cmds: &[Command],
) -> Vec<Command> {
    let mut out = Vec::new();
    for cmd in cmds {
        if let Command::Play { id, .. } = cmd {
            c.playback_done(now, *id, false);
            out.extend(drain(c));
        }
    }
    out
}

pub(super) fn finished(cmds: &[Command]) -> Option<&CallRecord> {
    cmds.iter().find_map(|c| match c {
        Command::CdrFinish(r) => Some(r.as_ref()),
        _ => None,
    })
}

#[test]
fn rings_for_answer_delay_then_answers_and_asks_for_the_pin() {
    let mut c = controller();
    let first = drain(&mut c);
    assert!(
        matches!(first[0], Command::CdrUpdate(_)),
        "the record is opened first: {first:?}"
    );
    assert!(first.iter().any(|c| matches!(c, Command::Ring)));
    assert!(!first.iter().any(|c| matches!(c, Command::Answer)));
    assert_eq!(c.poll_timeout(), Some(t(3_000)));
    c.handle_timeout(t(2_999));
    assert!(!drain(&mut c).iter().any(|c| matches!(c, Command::Answer)));
    c.handle_timeout(t(3_000));
    let cmds = drain(&mut c);
    assert!(matches!(cmds[0], Command::Answer), "{cmds:?}");
    assert!(
        !cmds.iter().any(|c| matches!(c, Command::Play { .. })),
        "no prompt before the caller's ACK confirms the answer: {cmds:?}"
    );
    c.confirmed(t(3_040));
    let cmds = drain(&mut c);
    assert!(
        cmds.iter().any(|c| matches!(c, Command::Play { .. })),
        "enter-pin is played: {cmds:?}"
    );
    let two_s_after_invite = c.started_wall() + chrono::Duration::seconds(2);
    assert_eq!(c.record().answered_at, Some(two_s_after_invite));
}

#[test]
fn without_an_ack_the_flow_starts_half_a_second_after_the_answer() {
    let mut c = controller();
    drain(&mut c);
    c.handle_timeout(t(3_000));
    drain(&mut c);
    assert_eq!(c.poll_timeout(), Some(t(3_500)));
    c.handle_timeout(t(3_500));
    let cmds = drain(&mut c);
    assert!(
        cmds.iter().any(|c| matches!(c, Command::Play { .. })),
        "{cmds:?}"
    );
}

#[test]
fn cancel_while_ringing_is_an_abandoned_call_hung_up_by_the_caller() {
    let mut c = controller();
    drain(&mut c);
    c.caller_hung_up(t(1_500));
    let cmds = drain(&mut c);
    let rec = finished(&cmds).expect("a final record");
    assert_eq!(rec.disposition, Some(Disposition::Abandoned));
    assert_eq!(rec.hangup_by, Some(HangupBy::Caller));
    assert!(rec.answered_at.is_none());
    assert!(c.is_ended());
    assert_eq!(c.poll_timeout(), None, "nothing left to wake up for");
}

#[test]
fn a_locked_account_ends_as_auth_failed_without_the_pin_in_the_record() {
    let mut c = controller();
    drain(&mut c);
    c.handle_timeout(t(3_000));
    c.confirmed(t(3_040));
    let cmds = drain(&mut c);
    finish_prompts(&mut c, t(4_000), &cmds);
    for (i, d) in "73829461#".chars().enumerate() {
        c.digit(t(4_100 + i as u64 * 100), d, "rfc4733");
    }
    let cmds = drain(&mut c);
    let (id, key, pin) = cmds
        .iter()
        .find_map(|c| match c {
            Command::VerifyPin { id, key, pin } => {
                Some((*id, key.clone(), pin.expose().to_string()))
            }
            _ => None,
        })
        .expect("the PIN goes to be verified");
    assert_eq!(pin, "73829461");
    assert!(matches!(key, AccountKey::Phone(ref p) if p == "+5511987650000"));
    c.pin_checked(t(5_000), id, PinOutcome::Locked);
    let mut cmds = drain(&mut c);
    let mut now = 5_000;
    while finished(&cmds).is_none() {
        now += 1_000;
        let next = finish_prompts(&mut c, t(now), &cmds);
        assert!(!next.is_empty() || c.is_ended(), "the call got stuck");
        cmds = next;
    }
    assert!(
        cmds.iter().any(|c| matches!(c, Command::Hangup)),
        "the server hangs up: {cmds:?}"
    );
    let rec = finished(&cmds).expect("final");
    assert_eq!(rec.disposition, Some(Disposition::AuthFailed));
    assert_eq!(rec.auth, AuthStatus::Locked);
    assert_eq!(rec.hangup_by, Some(HangupBy::System));
    assert!(rec
        .ivr_path
        .starts_with(&["identify".to_string(), "locked-out".to_string()]));
    let json = serde_json::to_string(rec).expect("json");
    assert!(
        !json.contains("73829461"),
        "the PIN reached the record: {json}"
    );
}

#[test]
fn a_queue_step_is_not_yet_routed_and_the_call_follows_on_timeout() {
    let mut c = controller();
    drain(&mut c);
    c.handle_timeout(t(3_000));
    c.confirmed(t(3_040));
    let cmds = drain(&mut c);
    finish_prompts(&mut c, t(4_000), &cmds);
    for d in "1234#".chars() {
        c.digit(t(4_100), d, "info");
    }
    let id = drain(&mut c)
        .iter()
        .find_map(|c| match c {
            Command::VerifyPin { id, .. } => Some(*id),
            _ => None,
        })
        .expect("verify");
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("tier".to_string(), "gold".to_string());
    c.pin_checked(
        t(4_500),
        id,
        PinOutcome::Ok {
            account_id: "1001".into(),
            fields,
        },
    );
    let cmds = drain(&mut c);
    finish_prompts(&mut c, t(6_000), &cmds);
    c.digit(t(6_100), '1', "rfc4733");
    let _ = drain(&mut c);
    let path = c.record().ivr_path.clone();
    assert!(
        path.windows(2)
            .any(|w| w[0] == "billing" && w[1] == "goodbye"),
        "the queue step gives up at once and on_timeout is followed: {path:?}"
    );
    assert_eq!(c.record().account_id.as_deref(), Some("1001"));
    assert_eq!(c.record().auth, AuthStatus::Ok);
}

const QUEUE_FLOW: &str = r##"
flow: q
numbers: ["7400"]
language: en
start: welcome
steps:
  welcome:
    play: welcome
    next: billing
  billing:
    queue: { name: billing, priority: 5, skills: { billing: 3 }, timeout: 10m }
    on_timeout: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

/// Answers, confirms and plays the welcome prompt to its end: the call is then in the queue.
fn queued_call() -> (CallController, Vec<Command>) {
    let mut c = controller_with(QUEUE_FLOW, true);
    drain(&mut c);
    c.confirmed(t(1_040));
    let cmds = drain(&mut c);
    let cmds = finish_prompts(&mut c, t(4_000), &cmds);
    (c, cmds)
}

#[test]
fn a_queue_step_waits_with_music_and_announcements_then_bridges_the_agent() {
    let (mut c, cmds) = queued_call();
    let (queue, priority, pop) = cmds
        .iter()
        .find_map(|c| match c {
            Command::Enqueue {
                queue,
                priority,
                pop,
                ..
            } => Some((queue.clone(), *priority, pop.clone())),
            _ => None,
        })
        .expect("the caller is put in the queue");
    assert_eq!((queue.as_str(), priority), ("billing", 5));
    assert_eq!(pop.caller, "+5511987650000");
    assert_eq!(pop.ivr_path, ["welcome", "billing"]);
    assert_eq!(c.record().queue.as_deref(), Some("billing"));
    assert!(c.record().enqueued_at.is_some());

    let moh = Path::new("/sounds/moh.wav").to_path_buf();
    c.enqueued(
        t(4_000),
        Some(moh.clone()),
        Some(Duration::from_secs(30)),
        Some('*'),
    );
    let cmds = drain(&mut c);
    let music_id = match cmds.as_slice() {
        [Command::Play { id, prompts }] if prompts == std::slice::from_ref(&moh) => *id,
        other => panic!("music on hold expected: {other:?}"),
    };
    // The music loops.
    c.playback_done(t(24_000), music_id, false);
    assert!(
        matches!(drain(&mut c).as_slice(), [Command::Play { prompts, .. }] if prompts == std::slice::from_ref(&moh))
    );

    // Thirty seconds in, the position is announced over the music, then the music comes back.
    c.queue_position(3);
    assert_eq!(c.poll_timeout(), Some(t(34_000)));
    c.handle_timeout(t(34_000));
    let cmds = drain(&mut c);
    assert!(matches!(cmds[0], Command::StopPlayback), "{cmds:?}");
    let (ann_id, names) = match &cmds[1] {
        Command::Play { id, prompts } => (
            *id,
            prompts
                .iter()
                .map(|p| {
                    p.file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .to_string()
                })
                .collect::<Vec<_>>(),
        ),
        other => panic!("{other:?}"),
    };
    assert_eq!(names, ["queue-position", "3"]);
    c.playback_done(t(36_000), ann_id, false);
    assert!(
        matches!(drain(&mut c).as_slice(), [Command::Play { prompts, .. }] if prompts == std::slice::from_ref(&moh))
    );

    // Other keys do nothing; the agent answers; the music stops and the audio is bridged.
    c.digit(t(40_000), '5', "rfc4733");
    assert!(drain(&mut c).is_empty());
    c.agent_connected(t(41_000), "alice");
    let cmds = drain(&mut c);
    assert!(matches!(cmds[0], Command::StopPlayback));
    assert!(matches!(&cmds[1], Command::Bridge { agent_id } if agent_id == "alice"));
    assert_eq!(c.record().agent_id.as_deref(), Some("alice"));
    assert_eq!(
        c.record().wait_ms,
        Some(37_000),
        "from entering the queue to the answer"
    );

    c.agent_hung_up(t(101_000));
    let cmds = drain(&mut c);
    assert!(
        cmds.iter().any(|c| matches!(c, Command::Hangup)),
        "the caller gets a BYE"
    );
    let rec = finished(&cmds).expect("final record");
    assert_eq!(rec.disposition, Some(Disposition::Completed));
    assert_eq!(rec.hangup_by, Some(HangupBy::Agent));
    assert_eq!(rec.talk_ms, Some(60_000));
}

#[test]
fn a_caller_who_hangs_up_in_the_queue_is_abandoned_and_taken_out() {
    let (mut c, _) = queued_call();
    c.enqueued(t(4_000), None, None, None);
    drain(&mut c);
    c.caller_hung_up(t(9_000));
    let cmds = drain(&mut c);
    assert!(
        cmds.iter().any(|c| matches!(c, Command::LeaveQueue)),
        "{cmds:?}"
    );
    let rec = finished(&cmds).expect("final");
    assert_eq!(rec.disposition, Some(Disposition::Abandoned));
    assert_eq!(rec.hangup_by, Some(HangupBy::Caller));
    assert_eq!(rec.queue.as_deref(), Some("billing"));
    assert!(rec.agent_id.is_none());
}

#[test]
fn the_exit_key_or_a_queue_timeout_sends_the_caller_to_on_timeout() {
    let (mut c, _) = queued_call();
    c.enqueued(t(4_000), None, None, Some('*'));
    drain(&mut c);
    c.digit(t(5_000), '*', "rfc4733");
    let cmds = drain(&mut c);
    assert!(cmds.iter().any(|c| matches!(c, Command::LeaveQueue)));
    assert!(
        c.record().ivr_path.ends_with(&["goodbye".to_string()]),
        "{:?}",
        c.record().ivr_path
    );

    let (mut c, _) = queued_call();
    c.enqueued(t(4_000), None, None, None);
    c.queue_timeout(t(604_000), "timeout");
    let _ = drain(&mut c);
    assert!(c.record().ivr_path.ends_with(&["goodbye".to_string()]));
}

const CALLBACK_FLOW: &str = r##"
flow: cb
numbers: ["7500"]
language: en
start: welcome
steps:
  welcome:
    play: welcome
    next: offer
  offer:
    callback: billing
    next: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

#[test]
fn a_callback_step_hands_the_place_to_the_acd_and_ends_as_callback() {
    let mut c = controller_with(CALLBACK_FLOW, true);
    drain(&mut c);
    c.confirmed(t(1_040));
    let cmds = drain(&mut c);
    let cmds = finish_prompts(&mut c, t(4_000), &cmds);
    assert!(
        cmds.iter().any(|cmd| matches!(cmd,
            Command::Callback { queue, number } if queue == "billing" && number == "+5511987650000")),
        "the runtime is asked to queue a callback to the caller: {cmds:?}"
    );
    let end = finish_prompts(&mut c, t(6_000), &cmds);
    let rec = finished(&end).expect("the flow hangs up after the goodbye");
    assert_eq!(rec.disposition, Some(Disposition::Callback));
    assert_eq!(rec.queue.as_deref(), Some("billing"));
    assert!(rec.ivr_path.iter().any(|s| s == "goodbye"));
}

#[test]
fn a_transfer_ends_the_first_leg_keeps_the_context_and_sums_the_talk() {
    let (mut c, _) = queued_call();
    c.enqueued(t(4_000), None, None, None);
    c.agent_connected(t(6_000), "ana");
    drain(&mut c);

    c.transferred(t(16_000), "ana", "billing", Some("bea"));
    let cmds = drain(&mut c);
    assert!(
        cmds.iter().any(|c| matches!(c, Command::Unbridge)),
        "ana's audio leaves the caller: {cmds:?}"
    );
    assert!(c.bridged_agent().is_none());
    assert_eq!(c.in_queue(), Some("billing"), "the caller waits again");
    let transfer = c
        .record()
        .events
        .iter()
        .find(|e| e.kind == "transfer")
        .expect("a transfer event");
    assert_eq!(transfer.detail["from_agent"], "ana");
    assert_eq!(transfer.detail["to_queue"], "billing");
    assert_eq!(transfer.detail["to_agent"], "bea");

    c.agent_connected(t(20_000), "bea");
    c.caller_hung_up(t(25_000));
    let cmds = drain(&mut c);
    let rec = finished(&cmds).expect("final record");
    assert_eq!(rec.agent_id.as_deref(), Some("bea"));
    assert_eq!(rec.disposition, Some(Disposition::Completed));
    // The wait is the first one (to ana's answer); the talk is both conversations, not the gap.
    assert_eq!(rec.wait_ms, Some(2_000));
    assert_eq!(rec.talk_ms, Some(10_000 + 5_000));
    let legs = rec.legs();
    let summary: Vec<_> = legs
        .iter()
        .map(|l| (l.agent_id.as_str(), l.talk_ms, l.ended_by.as_str()))
        .collect();
    assert_eq!(
        summary,
        [("ana", 10_000, "transfer"), ("bea", 5_000, "caller")]
    );
    // bea answered four seconds after ana left.
    assert_eq!(
        legs[1].answered_at - legs[0].ended_at,
        chrono::Duration::seconds(4)
    );
}

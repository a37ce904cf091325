//! A flow's `transfer` step through the controller on virtual time.

use crate::call::tests::{controller_with, drain, finish_prompts, finished, t};
use crate::call::{CallController, Command};
use crate::cdr::{Disposition, HangupBy};

const FLOW: &str = r##"
flow: t
numbers: ["7000"]
language: en
start: welcome
steps:
  welcome:
    play: goodbye
    next: out
  out:
    transfer: "+5511912345678"
"##;

/// Answered, the welcome played, the transfer asked for: returns the controller.
fn transferring() -> CallController {
    let mut c = controller_with(FLOW, false);
    drain(&mut c);
    c.confirmed(t(1_100));
    let cmds = drain(&mut c);
    let cmds = finish_prompts(&mut c, t(3_000), &cmds);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::Dial { target } if target == "+5511912345678")),
        "{cmds:?}"
    );
    let ev = c
        .record()
        .events
        .iter()
        .find(|e| e.kind == "transfer")
        .expect("event");
    assert_eq!(ev.detail["target"], "+5511912345678");
    c.transfer_dialling(Some("sounds/moh.wav".into()));
    c
}

#[test]
fn the_caller_hears_music_while_it_rings_then_is_bridged_and_the_record_has_the_leg() {
    let mut c = transferring();
    let cmds = drain(&mut c);
    let Some(Command::Play { id, prompts }) = cmds.first() else {
        panic!("music while it rings: {cmds:?}");
    };
    assert_eq!(prompts[0].to_string_lossy(), "sounds/moh.wav");
    // The music loops.
    c.playback_done(t(5_000), *id, false);
    assert!(matches!(drain(&mut c).first(), Some(Command::Play { .. })));

    c.transfer_answered(t(6_000));
    let cmds = drain(&mut c);
    assert!(
        matches!(cmds.first(), Some(Command::StopPlayback)),
        "{cmds:?}"
    );
    assert!(cmds.iter().any(|c| matches!(c, Command::BridgeTransfer)));

    c.caller_hung_up(t(16_000));
    let cmds = drain(&mut c);
    assert!(
        cmds.iter().any(|c| matches!(c, Command::EndTransferLeg)),
        "the target gets a BYE"
    );
    let rec = finished(&cmds).expect("final record");
    assert_eq!(rec.disposition, Some(Disposition::Transferred));
    assert_eq!(rec.hangup_by, Some(HangupBy::Caller));
    assert_eq!(rec.talk_ms, Some(10_000));
    let legs = rec.legs();
    assert_eq!(legs.len(), 1);
    assert_eq!(legs[0].target.as_deref(), Some("+5511912345678"));
    assert_eq!(legs[0].sip_status, Some(200));
    assert_eq!(
        (legs[0].talk_ms, legs[0].ended_by.as_str()),
        (10_000, "caller")
    );
    assert_eq!(legs[0].agent_id, "");
}

#[test]
fn the_target_hanging_up_ends_the_call_for_the_caller() {
    let mut c = transferring();
    c.transfer_answered(t(6_000));
    drain(&mut c);
    c.transfer_ended(t(9_000));
    let cmds = drain(&mut c);
    assert!(
        cmds.iter().any(|c| matches!(c, Command::Hangup)),
        "the caller gets a BYE"
    );
    let rec = finished(&cmds).expect("final record");
    assert_eq!(rec.disposition, Some(Disposition::Transferred));
    assert_eq!(rec.legs()[0].ended_by, "target");
}

#[test]
fn busy_or_no_trunk_hangs_up_as_failed_with_the_status() {
    for (status, reason) in [(Some(486), "busy"), (None, "no SIP trunk is configured")] {
        let mut c = transferring();
        drain(&mut c);
        c.transfer_failed(t(7_000), status, reason);
        let cmds = drain(&mut c);
        assert!(
            cmds.iter().any(|c| matches!(c, Command::Hangup)),
            "{cmds:?}"
        );
        let rec = finished(&cmds).expect("final record");
        assert_eq!(rec.disposition, Some(Disposition::Failed));
        assert!(rec.legs().is_empty());
        let ev = rec
            .events
            .iter()
            .find(|e| e.kind == "transfer_failed")
            .expect("event");
        assert_eq!(ev.detail["status"], serde_json::json!(status));
        assert_eq!(ev.detail["target"], "+5511912345678");
    }
}

#[test]
fn a_caller_who_hangs_up_while_it_rings_abandons_and_the_ringing_leg_is_cancelled() {
    let mut c = transferring();
    drain(&mut c);
    c.caller_hung_up(t(5_000));
    let cmds = drain(&mut c);
    assert!(cmds.iter().any(|c| matches!(c, Command::EndTransferLeg)));
    assert_eq!(
        finished(&cmds).and_then(|r| r.disposition),
        Some(Disposition::Abandoned)
    );
    // A late answer changes nothing.
    c.transfer_answered(t(6_000));
    assert!(drain(&mut c).is_empty());
}

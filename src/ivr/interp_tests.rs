//! The interpreter on virtual time: what a caller hears and where they end up.

use super::interp::*;
use super::model::Flow;
use super::prompts::{PromptFile, PromptIndex, WavInfo};
use crate::time::Instant;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn flow(yaml: &str) -> Arc<Flow> {
    let (flow, diags) = super::check::parse_str(std::path::Path::new("t.yaml"), yaml);
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    Arc::new(flow.expect("flow loads"))
}

/// Every name exists in `en/` and lasts one second; `de/` only has `welcome`.
pub(crate) fn prompts(names: &[&str]) -> Arc<PromptIndex> {
    let mut idx = PromptIndex::new();
    let info = WavInfo {
        sample_rate: 8000,
        channels: 1,
        bits: 16,
        float: false,
        duration: Duration::from_secs(1),
    };
    for lang_name in names
        .iter()
        .map(|n| format!("en/{n}"))
        .chain(["de/welcome".to_string()])
    {
        idx.insert(
            &lang_name,
            PromptFile {
                path: PathBuf::from(format!("/sounds/{lang_name}.wav")),
                info: Ok(info.clone()),
            },
        );
    }
    Arc::new(idx)
}

struct Call {
    it: Interpreter,
    now: Instant,
}

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

impl Call {
    fn start_at(yaml: &str, wall: &str) -> (Call, Vec<Action>) {
        let f = flow(yaml);
        let all: Vec<String> = [
            "welcome", "menu", "invalid", "pin", "bad-pin", "goodbye", "beep-msg", "thanks",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain((0..10).map(|d| format!("digits/{d}")))
        .chain((0..100).map(|n| format!("numbers/{n}")))
        .collect();
        let names: Vec<&str> = all.iter().map(String::as_str).collect();
        let info = CallInfo {
            call_id: "c1".into(),
            caller: "+15551230000".into(),
            dialed: "7000".into(),
            started_wall: DateTime::parse_from_rfc3339(wall)
                .unwrap()
                .with_timezone(&Utc),
            started: ms(1000),
        };
        let mut c = Call {
            it: Interpreter::new(f, prompts(&names), info),
            now: ms(1000),
        };
        c.it.start(c.now);
        let a = c.drain();
        (c, a)
    }

    fn start(yaml: &str) -> (Call, Vec<Action>) {
        Self::start_at(yaml, "2026-01-05T12:00:00Z")
    }

    fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.it.poll_action()).collect()
    }

    fn send(&mut self, ev: Event) -> Vec<Action> {
        self.it.handle(self.now, ev);
        self.drain()
    }

    fn digits(&mut self, keys: &str) -> Vec<Action> {
        keys.chars()
            .flat_map(|c| self.send(Event::Digit(c)))
            .collect()
    }

    /// Jumps to the next deadline and fires it.
    fn wait(&mut self) -> Vec<Action> {
        let t = self
            .it
            .poll_timeout()
            .expect("the flow is waiting for a deadline");
        self.now = t;
        self.it.handle_timeout(t);
        self.drain()
    }

    /// Finishes the prompt in `actions` (the last Play).
    fn played(&mut self, actions: &[Action]) -> Vec<Action> {
        let id = last_play(actions).expect("a prompt was played").0;
        self.now += Duration::from_secs(1);
        self.send(Event::PlaybackDone {
            id,
            interrupted: false,
        })
    }
}

fn last_play(actions: &[Action]) -> Option<(u64, Vec<String>, bool)> {
    actions.iter().rev().find_map(|a| match a {
        Action::Play {
            id,
            prompts,
            barge_in,
        } => Some((
            *id,
            prompts.iter().map(|p| p.name.clone()).collect(),
            *barge_in,
        )),
        _ => None,
    })
}

fn entered(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StepEntered { step } => Some(step.clone()),
            _ => None,
        })
        .collect()
}

fn hangup(actions: &[Action]) -> Option<EndReason> {
    actions.iter().find_map(|a| match a {
        Action::Hangup { reason } => Some(reason.clone()),
        _ => None,
    })
}

const MENU: &str = r#"
flow: t
numbers: ["7000"]
language: en
start: welcome
steps:
  welcome: { play: welcome, next: main }
  main:
    menu: { prompt: menu, options: { "1": sales, "2": support }, timeout: 5s, retries: 2, invalid_prompt: invalid }
    on_timeout: operator
    on_invalid: goodbye
  sales: { play: thanks, next: hangup }
  support: { play: thanks, next: hangup }
  operator: { play: thanks, next: hangup }
  goodbye: { play: goodbye, next: hangup }
"#;

#[test]
fn menu_replays_on_silence_then_follows_on_timeout() {
    let (mut c, a) = Call::start(MENU);
    assert_eq!(entered(&a), ["welcome"]);
    let a = c.played(&a);
    assert_eq!(entered(&a), ["main"]);
    let (_, names, barge_in) = last_play(&a).unwrap();
    assert_eq!((names, barge_in), (vec!["menu".to_string()], true));
    assert!(c.played(&a).is_empty(), "the menu listens after its prompt");
    let mut plays = 1;
    for _ in 0..2 {
        assert_eq!(
            c.it.poll_timeout(),
            Some(c.now + Duration::from_secs(5)),
            "5s to answer"
        );
        let a = c.wait();
        assert_eq!(
            last_play(&a).unwrap().1,
            ["menu"],
            "silence replays the prompt alone"
        );
        plays += 1;
        assert!(c.played(&a).is_empty());
    }
    assert_eq!(plays, 3, "the first play and two retries");
    let a = c.wait();
    assert_eq!(entered(&a), ["operator"]);
    let a = c.played(&a);
    assert_eq!(hangup(&a), Some(EndReason::NoInput));
    assert_eq!(c.it.path(), ["welcome", "main", "operator", "hangup"]);
    assert!(c.it.is_finished());
}

#[test]
fn invalid_digits_play_the_invalid_prompt_then_follow_on_invalid() {
    let (mut c, a) = Call::start(MENU);
    let a = c.played(&a);
    let _ = c.played(&a);
    let a = c.digits("7");
    assert_eq!(last_play(&a).unwrap().1, ["invalid", "menu"]);
    let _ = c.played(&a);
    let a = c.digits("8");
    assert_eq!(last_play(&a).unwrap().1, ["invalid", "menu"]);
    let _ = c.played(&a);
    let a = c.digits("9");
    assert_eq!(entered(&a), ["goodbye"], "third wrong key with retries: 2");
}

#[test]
fn barge_in_stops_the_menu_prompt_and_takes_the_digit() {
    let (mut c, a) = Call::start(MENU);
    let a = c.played(&a);
    let menu_id = last_play(&a).unwrap().0;
    let a = c.digits("2");
    assert_eq!(a.first(), Some(&Action::StopPlayback));
    assert_eq!(entered(&a), ["support"]);
    // The controller's late report of the stopped prompt changes nothing.
    let late = c.send(Event::PlaybackDone {
        id: menu_id,
        interrupted: true,
    });
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(c.it.current_step(), Some("support"));
}

#[test]
fn digits_typed_during_a_plain_prompt_are_kept_for_the_menu() {
    let (mut c, a) = Call::start(MENU);
    let typed = c.digits("1");
    assert!(
        typed.is_empty(),
        "a plain prompt is not interrupted: {typed:?}"
    );
    let a = c.played(&a);
    assert_eq!(
        entered(&a),
        ["main", "sales"],
        "the menu takes the typed-ahead key"
    );
    assert!(
        last_play(&a).unwrap().1 == ["thanks"],
        "and skips its own prompt: {a:?}"
    );
}

const COLLECT: &str = r##"
flow: t
numbers: ["7000"]
language: en
start: acct
steps:
  acct:
    collect: { prompt: welcome, digits: 4-6, terminator: "#", timeout: 5s, inter_digit_timeout: 2s, pattern: "[1-9][0-9]*", retries: 1, invalid_prompt: invalid }
    next: check
    on_timeout: goodbye
    on_invalid: goodbye
  check:
    branch:
      - when: "digits.acct starts_with '9' and digits.acct > 95000"
        next: vip
      - when: "digits.acct in ['1234', '4321']"
        next: test-acct
    else: regular
  vip: { play: thanks, next: hangup }
  test-acct: { play: thanks, next: hangup }
  regular: { play: thanks, next: hangup }
  goodbye: { play: goodbye, next: hangup }
"##;

#[test]
fn collect_ends_at_the_terminator_and_branches_on_the_digits() {
    let (mut c, a) = Call::start(COLLECT);
    let _ = c.played(&a);
    let a = c.digits("99123#");
    assert_eq!(entered(&a), ["check", "vip"]);
    assert_eq!(
        c.it.vars().get("digits.acct").map(String::as_str),
        Some("99123")
    );
}

#[test]
fn collect_ends_at_max_digits_and_at_the_inter_digit_timeout() {
    let (mut c, a) = Call::start(COLLECT);
    let _ = c.played(&a);
    let a = c.digits("123456");
    assert_eq!(
        entered(&a),
        ["check", "regular"],
        "six digits is the maximum"
    );

    let (mut c, a) = Call::start(COLLECT);
    let _ = c.played(&a);
    assert!(c.digits("4321").is_empty());
    assert_eq!(
        c.it.poll_timeout(),
        Some(c.now + Duration::from_secs(2)),
        "inter-digit timeout"
    );
    let a = c.wait();
    assert_eq!(entered(&a), ["check", "test-acct"]);
}

#[test]
fn collect_rejects_short_or_unmatched_input_then_gives_up() {
    let (mut c, a) = Call::start(COLLECT);
    let _ = c.played(&a);
    let a = c.digits("12#");
    assert_eq!(
        last_play(&a).unwrap().1,
        ["invalid", "welcome"],
        "too short"
    );
    let _ = c.played(&a);
    let a = c.digits("01234#");
    assert_eq!(
        entered(&a),
        ["goodbye"],
        "leading 0 fails the pattern; retries: 1 used up"
    );
    assert_eq!(c.it.vars().get("digits.acct"), None);
}

const PIN: &str = r#"
flow: t
numbers: ["7000"]
language: en
start: login
steps:
  login:
    pin: { account: caller, prompt: pin, digits: 4-8, attempts: 3, retry_prompt: bad-pin }
    on_ok: hello
    on_fail: goodbye
  hello: { play: thanks, say: { digits: "{{ account.id }}" }, next: hangup }
  goodbye: { play: goodbye, next: hangup }
"#;

fn verify(actions: &[Action]) -> (u64, AccountKey, Pin) {
    actions
        .iter()
        .find_map(|a| match a {
            Action::VerifyPin { id, key, pin } => Some((*id, key.clone(), pin.clone())),
            _ => None,
        })
        .expect("a PIN check")
}

#[test]
fn three_wrong_pins_fail_and_each_retry_says_why() {
    let (mut c, a) = Call::start(PIN);
    let _ = c.played(&a);
    for attempt in 1..=3 {
        let a = c.digits("1111#");
        let (id, key, pin) = verify(&a);
        assert_eq!(key, AccountKey::Phone("+15551230000".into()));
        assert_eq!(pin.expose(), "1111");
        assert_eq!(format!("{pin:?} {pin}"), "**** ****");
        assert!(!format!("{a:?}").contains("1111"), "no PIN in Debug output");
        let a = c.send(Event::PinChecked {
            id,
            outcome: PinOutcome::Invalid,
        });
        if attempt < 3 {
            assert_eq!(last_play(&a).unwrap().1, ["bad-pin", "pin"]);
            let _ = c.played(&a);
        } else {
            assert_eq!(entered(&a), ["goodbye"]);
            let a = c.played(&a);
            assert_eq!(hangup(&a), Some(EndReason::AuthFailed));
        }
    }
    assert_eq!(c.it.auth(), AuthState::Failed);
    assert_eq!(c.it.account_id(), None);
}

#[test]
fn a_locked_account_fails_at_once() {
    let (mut c, a) = Call::start(PIN);
    let _ = c.played(&a);
    let (id, ..) = verify(&c.digits("12345678"));
    let a = c.send(Event::PinChecked {
        id,
        outcome: PinOutcome::Locked,
    });
    assert_eq!(entered(&a), ["goodbye"]);
    assert_eq!(c.it.auth(), AuthState::Locked);
}

#[test]
fn a_good_pin_sets_account_fields_but_never_the_pin() {
    let (mut c, a) = Call::start(PIN);
    let _ = c.played(&a);
    let (id, ..) = verify(&c.digits("4321#"));
    let fields = BTreeMap::from([
        ("tier".to_string(), "gold".to_string()),
        ("pin_hash".to_string(), "$argon2id$...".to_string()),
    ]);
    let a = c.send(Event::PinChecked {
        id,
        outcome: PinOutcome::Ok {
            account_id: "507".into(),
            fields,
        },
    });
    assert_eq!(entered(&a), ["hello"]);
    assert_eq!(
        last_play(&a).unwrap().1,
        ["thanks", "digits/5", "digits/0", "digits/7"]
    );
    assert_eq!(c.it.auth(), AuthState::Ok);
    assert_eq!(c.it.account_id(), Some("507"));
    assert_eq!(
        c.it.vars().get("account.tier").map(String::as_str),
        Some("gold")
    );
    assert!(
        c.it.vars().keys().all(|k| !k.contains("pin")),
        "{:?}",
        c.it.vars()
    );
    assert!(c.it.vars().values().all(|v| v != "4321"));
}

#[test]
fn a_pin_can_be_checked_against_a_collected_account_number() {
    let yaml = r#"
flow: t
numbers: ["7000"]
start: acct
steps:
  acct: { collect: { prompt: welcome, digits: 6 }, next: login }
  login: { pin: { account: acct, prompt: pin }, on_ok: hangup, on_fail: hangup }
"#;
    let (mut c, a) = Call::start(yaml);
    let _ = c.played(&a);
    let a = c.digits("123456");
    let _ = c.played(&a);
    let (_, key, _) = verify(&c.digits("9876#"));
    assert_eq!(key, AccountKey::Id("123456".into()));
}

#[test]
fn hours_are_judged_at_the_wall_time_the_step_is_reached() {
    let yaml = r#"
flow: t
numbers: ["7000"]
start: welcome
steps:
  welcome: { play: welcome, next: when }
  when:
    hours: { timezone: America/New_York, open: { mon-fri: "09:00-17:00" } }
    on_open: open
    on_closed: closed
  open: { play: thanks, next: hangup }
  closed: { play: goodbye, next: hangup }
"#;
    // 08:59:30 EDT on the Monday after the DST switch; the welcome prompt lasts 60s.
    let (mut c, a) = Call::start_at(yaml, "2026-03-09T12:59:30Z");
    let id = last_play(&a).unwrap().0;
    c.now += Duration::from_secs(60);
    let a = c.send(Event::PlaybackDone {
        id,
        interrupted: false,
    });
    assert_eq!(entered(&a), ["when", "open"]);
    // The same UTC instant a week earlier is 07:59 EST: closed.
    let (mut c, a) = Call::start_at(yaml, "2026-03-02T12:59:30Z");
    let id = last_play(&a).unwrap().0;
    c.now += Duration::from_secs(60);
    let a = c.send(Event::PlaybackDone {
        id,
        interrupted: false,
    });
    assert_eq!(entered(&a), ["when", "closed"]);
}

const LOOKUP: &str = r#"
flow: t
numbers: ["7000"]
start: orders
steps:
  orders:
    lookup: { url: "https://crm.example/api?caller={{ caller }}", timeout: 2s }
    next: route
    on_error: fallback
  route:
    branch:
      - when: "vars.order.status == 'shipped' and vars.count >= 2"
        next: shipped
    else: fallback
  shipped: { play: thanks, next: hangup }
  fallback: { play: goodbye, next: hangup }
"#;

fn lookup_id(actions: &[Action]) -> (u64, String) {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Lookup {
                id,
                url,
                method,
                timeout,
                ..
            } => {
                assert_eq!((method.as_str(), *timeout), ("GET", Duration::from_secs(2)));
                Some((*id, url.clone()))
            }
            _ => None,
        })
        .expect("a lookup")
}

#[test]
fn lookup_answers_land_in_vars() {
    let (mut c, a) = Call::start(LOOKUP);
    let (id, url) = lookup_id(&a);
    assert_eq!(url, "https://crm.example/api?caller=+15551230000");
    let answer =
        serde_json::json!({"order": {"status": "shipped", "items": ["a", "b"]}, "count": 2});
    let a = c.send(Event::LookupDone {
        id,
        result: Ok(answer),
    });
    assert_eq!(entered(&a), ["route", "shipped"]);
    assert_eq!(
        c.it.vars().get("vars.order.items.1").map(String::as_str),
        Some("b")
    );
}

#[test]
fn lookup_errors_and_timeouts_follow_on_error() {
    let (mut c, a) = Call::start(LOOKUP);
    let (id, _) = lookup_id(&a);
    let a = c.send(Event::LookupDone {
        id,
        result: Err("503".into()),
    });
    assert_eq!(entered(&a), ["fallback"]);

    let (mut c, a) = Call::start(LOOKUP);
    let (id, _) = lookup_id(&a);
    assert_eq!(c.it.poll_timeout(), Some(c.now + Duration::from_secs(2)));
    let a = c.wait();
    assert_eq!(entered(&a), ["fallback"]);
    let late = c.send(Event::LookupDone {
        id,
        result: Ok(serde_json::json!({"count": 9})),
    });
    assert!(late.is_empty());
    assert_eq!(c.it.vars().get("vars.count"), None);
}

#[test]
fn set_language_changes_which_files_play() {
    let yaml = r#"
flow: t
numbers: ["7000"]
language: en
start: hello
steps:
  hello: { play: welcome, next: german }
  german: { set: { language: de, vars.reason: "from {{ dialed }}" }, next: again }
  again: { play: welcome, next: hangup }
"#;
    let (mut c, a) = Call::start(yaml);
    let path = |a: &[Action]| match a.iter().find(|x| matches!(x, Action::Play { .. })) {
        Some(Action::Play { prompts, .. }) => prompts[0].path.clone(),
        _ => panic!("no play"),
    };
    assert_eq!(path(&a), PathBuf::from("/sounds/en/welcome.wav"));
    let a = c.played(&a);
    assert_eq!(path(&a), PathBuf::from("/sounds/de/welcome.wav"));
    assert_eq!(
        c.it.vars().get("vars.reason").map(String::as_str),
        Some("from 7000")
    );
    assert_eq!(c.it.vars().get("language").map(String::as_str), Some("de"));
}

#[test]
fn queue_waits_for_the_controller_and_follows_on_timeout() {
    let yaml = r#"
flow: t
numbers: ["7000"]
start: vip
steps:
  vip: { set: { vars.prio: "7" }, next: q }
  q:
    queue: { name: billing, priority: "{{ vars.prio }}", skills: { billing: 2 }, timeout: 10m }
    on_timeout: cb
  cb: { callback: billing, next: bye }
  bye: { play: goodbye, next: hangup }
"#;
    let (mut c, a) = Call::start(yaml);
    let q = a
        .iter()
        .find(|x| matches!(x, Action::Queue { .. }))
        .unwrap();
    assert_eq!(
        q,
        &Action::Queue {
            step: "q".into(),
            name: "billing".into(),
            priority: 7,
            skills: BTreeMap::from([("billing".into(), 2)]),
            timeout: Some(Duration::from_secs(600)),
        }
    );
    assert_eq!(
        c.it.poll_timeout(),
        None,
        "the controller owns the queue timeout"
    );
    let a = c.send(Event::QueueResult { timed_out: true });
    assert_eq!(entered(&a), ["cb"]);
    assert!(a.contains(&Action::Callback {
        step: "cb".into(),
        queue: "billing".into()
    }));
    let a = c.send(Event::QueueResult { timed_out: false });
    assert_eq!(entered(&a), ["bye"]);
}

#[test]
fn voicemail_records_until_hash_and_ends_as_voicemail() {
    let yaml = r#"
flow: t
numbers: ["7000"]
start: vm
steps:
  vm: { record: { prompt: beep-msg, max: 2m, beep: true }, next: hangup }
"#;
    let (mut c, a) = Call::start(yaml);
    let a = c.played(&a);
    let id = match a.as_slice() {
        [Action::Record {
            id,
            max,
            beep: true,
        }] if *max == Duration::from_secs(120) => *id,
        other => panic!("{other:?}"),
    };
    assert_eq!(c.digits("#"), [Action::StopRecording]);
    let a = c.send(Event::RecordingDone {
        id,
        file: Some("rec/c1.wav".into()),
    });
    assert_eq!(hangup(&a), Some(EndReason::Voicemail));
    assert_eq!(
        c.it.vars().get("recording").map(String::as_str),
        Some("rec/c1.wav")
    );
}

#[test]
fn the_caller_hanging_up_ends_the_flow_without_a_hangup_action() {
    let (mut c, _) = Call::start(MENU);
    let a = c.send(Event::Hangup);
    assert!(a.is_empty());
    assert!(c.it.is_finished());
    assert_eq!(c.it.end_reason(), Some(&EndReason::CallerHangup));
    assert!(c.digits("1").is_empty(), "nothing happens after the end");
}

#[test]
fn numbers_are_spoken_with_number_prompts_and_missing_prompts_are_skipped() {
    let yaml = r#"
flow: t
numbers: ["7000"]
start: a
steps:
  a: { set: { vars.n: "42", vars.big: "1250" }, next: b }
  b: { play: [thanks, not-recorded], say: [{ number: "{{ vars.n }}" }, { number: "{{ vars.big }}" }], next: c }
  c: { play: not-recorded, next: hangup }
"#;
    let (mut c, a) = Call::start(yaml);
    assert_eq!(
        last_play(&a).unwrap().1,
        [
            "thanks",
            "numbers/42",
            "digits/1",
            "digits/2",
            "digits/5",
            "digits/0"
        ]
    );
    let a = c.played(&a);
    assert_eq!(entered(&a), ["c", "hangup"], "nothing to play: straight on");
    assert!(last_play(&a).is_none());
}

#[test]
fn a_loop_the_checker_missed_is_cut_by_the_guard() {
    let yaml = "flow: t\nstart: a\nsteps:\n  a: { set: { vars.x: y }, next: b }\n  b: { set: { vars.x: z }, next: a }\n";
    let root = super::yaml::parse(yaml).unwrap();
    let (f, _, _) = super::parse::parse_flow(std::path::Path::new("t.yaml"), &root);
    let info = CallInfo {
        call_id: "c".into(),
        caller: "1".into(),
        dialed: "2".into(),
        started_wall: DateTime::parse_from_rfc3339("2026-01-05T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
        started: Instant::ZERO,
    };
    let mut it = Interpreter::new(Arc::new(f.unwrap()), prompts(&[]), info);
    it.start(Instant::ZERO);
    let actions: Vec<Action> = std::iter::from_fn(|| it.poll_action()).collect();
    assert!(matches!(hangup(&actions), Some(EndReason::Error(e)) if e.contains("1000 steps")));
    assert_eq!(it.path().len(), MAX_STEPS_WITHOUT_INPUT as usize);
}

#[test]
fn a_transfer_that_cannot_happen_hangs_up() {
    let yaml = "flow: t\nnumbers: [\"7000\"]\nstart: op\nsteps:\n  op: { transfer: \"sip:op@pbx.example\" }\n";
    let (mut c, a) = Call::start(yaml);
    assert!(a.contains(&Action::Transfer {
        step: "op".into(),
        target: "sip:op@pbx.example".into()
    }));
    let a = c.send(Event::QueueResult { timed_out: true });
    assert_eq!(hangup(&a), Some(EndReason::Completed));
    assert_eq!(c.it.path(), ["op", "hangup"]);
    // Once the caller is with an agent, the flow is over without a word.
    let (mut c, _) = Call::start(yaml);
    assert!(c.send(Event::QueueResult { timed_out: false }).is_empty());
    assert!(c.it.is_finished());
}

#[test]
fn a_terminator_after_a_full_length_pin_is_not_a_second_attempt() {
    let (mut c, a) = Call::start(PIN);
    let _ = c.played(&a);
    // digits: 4-8, so the eighth digit completes the PIN; the caller's `#` comes anyway.
    let a = c.digits("12345678");
    let (id, ..) = verify(&a);
    let a = c.send(Event::PinChecked {
        id,
        outcome: PinOutcome::Invalid,
    });
    let retry = last_play(&a).expect("the retry prompt").0;
    let late = c.digits("#");
    assert!(
        !late
            .iter()
            .any(|x| matches!(x, Action::StopPlayback | Action::VerifyPin { .. })),
        "the late # neither stops the retry prompt nor counts as an empty PIN: {late:?}"
    );
    let _ = c.send(Event::PlaybackDone {
        id: retry,
        interrupted: false,
    });
    let (_, _, pin) = verify(&c.digits("4321#"));
    assert_eq!(pin.expose(), "4321", "the next entry is whole");
}

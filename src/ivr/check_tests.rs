//! Every kind of check error, asserted at its `line:column`.

use super::check::*;
use super::model::*;
use super::prompts::tests::write_wav;
use super::prompts::PromptIndex;
use std::path::Path;

/// `line:column: message` (or `line:column: warning: message`) for each diagnostic.
fn report(yaml: &str) -> (Option<Flow>, Vec<String>) {
    let (flow, diags) = parse_str(Path::new("f.yaml"), yaml);
    let lines = diags
        .iter()
        .map(|d| d.to_string().trim_start_matches("f.yaml:").to_string())
        .collect();
    (flow, lines)
}

/// Asserts exactly one error, at `at` ("line:column"), whose message contains `text`.
fn one_error(yaml: &str, at: &str, text: &str) -> Option<Flow> {
    let (flow, lines) = report(yaml);
    let errors: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains(": warning: "))
        .collect();
    assert_eq!(errors.len(), 1, "{lines:#?}");
    assert!(
        errors[0].starts_with(&format!("{at}: ")),
        "expected at {at}: {lines:#?}"
    );
    assert!(errors[0].contains(text), "expected `{text}` in {lines:#?}");
    flow
}

const HEAD: &str = "flow: t\nnumbers: [\"7000\"]\nstart: a\nsteps:\n";

#[test]
fn yaml_syntax_errors_keep_their_position() {
    let flow = one_error(
        &format!("{HEAD}  a: {{ play: x, next: hangup\n"),
        "5:6",
        "unclosed bracket",
    );
    assert!(flow.is_none());
}

#[test]
fn unknown_keys_are_reported_at_the_key() {
    let flow = one_error(
        &format!("{HEAD}  a: {{ play: x, next: hangup }}\nlangauge: en\n"),
        "6:1",
        "unknown key `langauge` in a flow file; did you mean `language`?",
    );
    assert!(flow.is_none(), "an unknown key makes the file unusable");
    one_error(
        &format!("{HEAD}  a:\n    menu:\n      prompt: m\n      options: {{ \"1\": hangup }}\n      retires: 2\n"),
        "9:7",
        "unknown key `retires` in a menu; did you mean `retries`?",
    );
    one_error(
        &format!("{HEAD}  a: {{ play: x, nxt: hangup }}\n"),
        "5:17",
        "unknown key `nxt` in step `a`; did you mean `next`?",
    );
    one_error(
        &format!("{HEAD}  a: {{ play: x, on_ok: hangup }}\n"),
        "5:17",
        "`on_ok` does not apply to a play step (it leaves by next, say)",
    );
    one_error(
        &format!("{HEAD}  a: {{ play: x, menu: {{}} }}\n"),
        "5:17",
        "step `a` is already a `play` step",
    );
    one_error(
        &format!("{HEAD}  a: {{ next: hangup }}\n"),
        "5:3",
        "step `a` does nothing",
    );
}

#[test]
fn a_step_pointing_nowhere_is_reported_at_the_reference() {
    let yaml = format!("{HEAD}  a: {{ play: x, next: b }}\n  bb: {{ play: x, next: hangup }}\n");
    let flow = one_error(&yaml, "5:23", "step `a` goes to `b`, which is not a step");
    assert!(flow.is_none());
    one_error(
        "flow: t\nstart: welcom\nsteps:\n  welcome: { play: x, next: hangup }\n",
        "2:8",
        "`start` names `welcom`, which is not a step; did you mean `welcome`?",
    );
}

#[test]
fn unreachable_steps_fail_the_check_but_not_the_flow() {
    let yaml =
        format!("{HEAD}  a: {{ play: x, next: hangup }}\n  orphan: {{ play: x, next: a }}\n");
    let flow = one_error(
        &yaml,
        "6:3",
        "step `orphan` is never reached from `start` (a)",
    );
    assert!(flow.is_some());
}

#[test]
fn loops_without_input_are_fatal_and_name_the_cycle() {
    let yaml = format!(
        "{HEAD}  a: {{ play: x, next: b }}\n  b: {{ set: {{ vars.n: \"1\" }}, next: c }}\n  c:\n    branch:\n      - when: \"vars.n == '1'\"\n        next: a\n    else: m\n  m:\n    menu: {{ prompt: x, options: {{ \"1\": a }} }}\n"
    );
    let flow = one_error(
        &yaml,
        "5:3",
        "these steps loop forever without waiting for the caller: a → b → c → a",
    );
    assert!(flow.is_none());
    // The same loop through the menu is fine: the caller is asked each time round.
    let ok = format!("{HEAD}  a: {{ play: x, next: m }}\n  m:\n    menu: {{ prompt: x, options: {{ \"1\": a }} }}\n");
    let (flow, lines) = report(&ok);
    assert!(flow.is_some() && lines.is_empty(), "{lines:#?}");
}

#[test]
fn malformed_durations_point_inside_the_value() {
    one_error(
        &format!(
            "{HEAD}  a:\n    menu: {{ prompt: x, options: {{ \"1\": hangup }}, timeout: 6sec }}\n"
        ),
        "6:60",
        "`timeout`: `sec` is not a duration unit",
    );
    one_error(
        &format!("{HEAD}  a: {{ record: {{ max: \"10\" }}, next: hangup }}\n"),
        "5:26",
        "`10` needs a unit",
    );
    one_error(
        &format!("answer_delay: 2 s\n{HEAD}  a: {{ play: x, next: hangup }}\n"),
        "1:16",
        "`answer_delay`",
    );
    let (flow, _) = report(&format!(
        "answer_delay: 500ms\n{HEAD}  a: {{ play: x, next: hangup }}\n"
    ));
    assert_eq!(
        flow.unwrap().answer_delay,
        std::time::Duration::from_millis(500)
    );
    let (flow, _) = report(&format!(
        "record_calls: true\n{HEAD}  a: {{ play: x, next: hangup }}\n"
    ));
    assert!(flow.unwrap().record_calls);
    let (flow, _) = report(&format!("{HEAD}  a: {{ play: x, next: hangup }}\n"));
    assert!(!flow.unwrap().record_calls, "off unless asked");
    one_error(
        &format!("record_calls: maybe\n{HEAD}  a: {{ play: x, next: hangup }}\n"),
        "1:15",
        "`record_calls`",
    );
}

#[test]
fn malformed_schedules_point_at_the_word() {
    let hours = |open: &str, extra: &str| {
        format!("{HEAD}  a:\n    hours:\n      timezone: America/Sao_Paulo\n      open: {{ {open} }}\n{extra}    on_open: hangup\n    on_closed: hangup\n")
    };
    one_error(
        &hours("mon-fry: \"08:00-20:00\"", ""),
        "8:19",
        "`fry` is not a day",
    );
    one_error(
        &hours("mon-fri: \"08:00-20:60\"", ""),
        "8:31",
        "`20:60` is not a time of day",
    );
    one_error(
        &hours("sat: 24h, sat: 09:00-13:00", ""),
        "8:25",
        "duplicate mapping key: sat",
    );
    one_error(
        &hours("mon-fri: 24h, fri: 09:00-13:00", ""),
        "8:29",
        "`fri` already has opening hours from `mon-fri`",
    );
    one_error(
        &hours("sun: 24h", "      closed_dates: [\"2026-02-30\"]\n"),
        "9:23",
        "`2026-02-30` is not a date",
    );
    one_error(
        &format!("{HEAD}  a:\n    hours: {{ timezone: Mars/Olympus, open: {{ sun: 24h }} }}\n    on_open: hangup\n    on_closed: hangup\n"),
        "6:24",
        "`Mars/Olympus` is not a time zone",
    );
}

#[test]
fn malformed_templates_and_conditions_point_inside_the_string() {
    one_error(
        &format!("{HEAD}  a:\n    lookup: {{ url: \"https://crm/x?id={{{{ acount.id }}}}\" }}\n    next: hangup\n"),
        "6:41",
        "unknown variable `acount.id`",
    );
    one_error(
        &format!("{HEAD}  a:\n    branch:\n      - when: \"caller starts_with '+55' and account.tier = 'gold'\"\n        next: hangup\n    else: hangup\n"),
        "7:58",
        "use `==` to compare",
    );
    one_error(
        &format!("{HEAD}  a:\n    branch:\n      - when: \"digits.acct == '1'\"\n        next: hangup\n    else: hangup\n"),
        "7:16",
        "`digits.acct`: there is no collect step called `acct`",
    );
    one_error(
        &format!("{HEAD}  a:\n    collect: {{ digits: 4-3 }}\n    next: hangup\n"),
        "6:24",
        "`digits`: `4-3`: the minimum is above the maximum",
    );
    one_error(
        &format!("{HEAD}  a:\n    collect: {{ pattern: \"[0-9]{{4}}x\" }}\n    next: hangup\n"),
        "6:34",
        "`x` cannot be typed on a phone keypad",
    );
}

#[test]
fn hangup_is_reserved() {
    one_error(
        &format!("{HEAD}  a: {{ play: x, next: hangup }}\n  hangup: {{ play: x }}\n"),
        "6:3",
        "`hangup` is the built-in step",
    );
}

#[test]
fn pin_accounts_must_come_from_a_collect_step() {
    one_error(
        &format!("{HEAD}  a:\n    pin: {{ account: callr, prompt: p }}\n    on_ok: hangup\n"),
        "6:21",
        "there is no collect step `callr`",
    );
}

#[test]
fn short_forms_mean_the_long_forms() {
    let short = format!("{HEAD}  a: {{ play: welcome, next: q }}\n  q: {{ queue: orders, on_timeout: c }}\n  c: {{ callback: billing, next: t }}\n  t: {{ transfer: \"sip:op@pbx.example\" }}\n");
    let long = format!("{HEAD}  a: {{ play: [welcome], next: q }}\n  q: {{ queue: {{ name: orders }}, on_timeout: c }}\n  c: {{ callback: {{ queue: billing }}, next: t }}\n  t: {{ transfer: {{ target: \"sip:op@pbx.example\" }} }}\n");
    let (s, sd) = report(&short);
    let (l, ld) = report(&long);
    let (s, l) = (s.unwrap(), l.unwrap());
    assert_eq!(sd.len(), 0, "{sd:#?}");
    assert_eq!(ld.len(), 0, "{ld:#?}");
    for name in ["a", "q", "c", "t"] {
        let (a, b) = (&s.steps[name].kind, &l.steps[name].kind);
        assert_eq!(
            format!("{a:?}").replace(char::is_numeric, ""),
            format!("{b:?}").replace(char::is_numeric, ""),
            "step {name}"
        );
    }
    match &s.steps["q"].kind {
        StepKind::Queue(q) => assert_eq!(
            (q.name.as_str(), &q.priority),
            ("orders", &Priority::Fixed(0))
        ),
        other => panic!("{other:?}"),
    }
    one_error(
        &format!("{HEAD}  a: {{ transfer: \"operator at pbx\" }}\n"),
        "5:18",
        "is neither a SIP URI",
    );
}

#[test]
fn flow_tests_are_checked_too() {
    let yaml = format!(
        "{HEAD}  a: {{ play: x, next: hangup }}\ntests:\n  - name: one\n    input: [\"12a\"]\n    expect: {{ path_ends: [a, b], outcome: finished }}\n"
    );
    let (flow, lines) = report(&yaml);
    assert!(flow.is_none());
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].starts_with("8:16: `a` is not a phone key"),
        "{lines:#?}"
    );
    assert!(
        lines[1].starts_with("9:30: `path_ends`: there is no step `b`"),
        "{lines:#?}"
    );
    assert!(
        lines[2].starts_with("9:43: `finished` is not an outcome"),
        "{lines:#?}"
    );
}

fn env_with(dir: &Path, files: &[(&str, u32, u16)]) -> (CheckEnv, PromptIndex) {
    for (name, rate, channels) in files {
        write_wav(
            &dir.join("sounds").join(format!("{name}.wav")),
            *rate,
            *channels,
            10,
        );
    }
    let env = CheckEnv {
        sounds_dir: dir.join("sounds"),
        queues: None,
        trunk: None,
    };
    let idx = PromptIndex::scan(&env.sounds_dir);
    (env, idx)
}

fn asset_report(yaml: &str, env: &CheckEnv, idx: &PromptIndex) -> Vec<String> {
    let (flow, diags) = parse_str(Path::new("f.yaml"), yaml);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:#?}");
    check_assets(&flow.unwrap(), env, idx)
        .iter()
        .map(|d| d.to_string().trim_start_matches("f.yaml:").to_string())
        .collect()
}

#[test]
fn prompts_are_needed_in_every_language_the_caller_can_be_in() {
    let dir = tempfile::tempdir().unwrap();
    let (env, idx) = env_with(
        dir.path(),
        &[
            ("en/welcome", 8000, 1),
            ("en/menu", 8000, 1),
            ("es/welcome", 8000, 1),
        ],
    );
    let yaml = "flow: t\nlanguage: en\nstart: a\nsteps:\n  a: { play: welcome, next: m }\n  m:\n    menu: { prompt: menu, options: { \"9\": es } }\n  es: { set: { language: es }, next: b }\n  b: { play: welcome, next: m }\n";
    let lines = asset_report(yaml, &env, &idx);
    let sounds = env.sounds_dir.display();
    assert_eq!(
        lines,
        [format!("7:21: prompt `menu` has no sound file for language es: add {sounds}/es/menu.wav or {sounds}/menu.wav")],
        "welcome exists in both languages; menu only in en, and the menu is reached in Spanish"
    );
}

#[test]
fn say_needs_the_digit_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = (0..9).map(|d| format!("en/digits/{d}")).collect();
    let specs: Vec<(&str, u32, u16)> = files.iter().map(|f| (f.as_str(), 8000, 1)).collect();
    let (env, idx) = env_with(dir.path(), &specs);
    let yaml =
        "flow: t\nstart: a\nsteps:\n  a: { say: { digits: \"{{ caller }}\" }, next: hangup }\n";
    let lines = asset_report(yaml, &env, &idx);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with(
            "4:23: `say: digits` needs sound files for language en that are missing: digits/9"
        ),
        "{lines:#?}"
    );
}

#[test]
fn wav_files_that_need_converting_are_warnings_and_broken_ones_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (env, _) = env_with(dir.path(), &[("welcome", 44100, 2)]);
    std::fs::write(env.sounds_dir.join("bye.wav"), b"RIFF....").unwrap();
    let idx = PromptIndex::scan(&env.sounds_dir);
    let yaml = "flow: t\nstart: a\nsteps:\n  a: { play: [welcome, bye], next: hangup }\n";
    let lines = asset_report(yaml, &env, &idx);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].starts_with("4:15: warning: "), "{lines:#?}");
    assert!(lines[0].contains("welcome.wav is 44100 Hz, 2 channel(s), 16-bit, not 8 kHz mono 16-bit PCM: it will be resampled from 44100 Hz to 8 kHz, mixed down from 2 channels to mono"), "{lines:#?}");
    assert!(
        lines[1].starts_with("4:24: ")
            && lines[1].contains("bye.wav cannot be read as a PCM WAV file"),
        "{lines:#?}"
    );
}

#[test]
fn queues_and_skills_are_checked_against_the_server_config() {
    let dir = tempfile::tempdir().unwrap();
    let (mut env, idx) = env_with(dir.path(), &[]);
    let yaml = "flow: t\nstart: q\nsteps:\n  q:\n    queue: { name: biling, skills: { billing: 2, klingon: 1 } }\n    on_timeout: c\n  c: { callback: billing, next: hangup }\n";
    let without = asset_report(yaml, &env, &idx);
    assert!(
        without.iter().all(|l| l.contains(": warning: ")),
        "no queue config, no queue errors: {without:#?}"
    );
    env.queues = Some(vec![QueueInfo {
        name: "billing".into(),
        skills: vec!["billing".into()],
    }]);
    let lines: Vec<String> = asset_report(yaml, &env, &idx)
        .into_iter()
        .filter(|l| !l.contains(": warning: "))
        .collect();
    assert_eq!(
        lines,
        ["5:20: queue `biling` is not defined in the server config; did you mean `billing`?"]
    );
    let fixed = yaml.replace("biling", "billing");
    let lines: Vec<String> = asset_report(&fixed, &env, &idx)
        .into_iter()
        .filter(|l| !l.contains(": warning: "))
        .collect();
    assert_eq!(
        lines,
        ["5:51: skill `klingon` is not defined for queue `billing` in the server config"]
    );
}

#[test]
fn numbers_claimed_twice_and_duplicate_names_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let body = "start: a\nsteps:\n  a: { play: x, next: hangup }\n";
    std::fs::write(
        flows.join("a.yaml"),
        format!("flow: sales\nnumbers: [\"7000\", \"7001\"]\n{body}"),
    )
    .unwrap();
    std::fs::write(
        flows.join("b.yml"),
        format!("flow: support\nnumbers: [\"7002\", \"7001\"]\n{body}"),
    )
    .unwrap();
    std::fs::write(
        flows.join("c.yaml"),
        format!("flow: sales\nnumbers: [\"7003\"]\n{body}"),
    )
    .unwrap();
    std::fs::write(flows.join("d.yaml"), "flow: [broken\n").unwrap();
    std::fs::write(flows.join("notes.txt"), "not a flow").unwrap();
    let env = CheckEnv {
        sounds_dir: dir.path().join("sounds"),
        queues: None,
        trunk: None,
    };
    let (set, diags) = load_dir(&flows, &env);
    let text: Vec<String> = diags
        .iter()
        .filter(|d| !d.message.contains("prompt"))
        .map(|d| d.to_string())
        .collect();
    let find = |file: &str, at: &str| {
        text.iter()
            .find(|l| l.contains(&format!("{file}:{at}: ")))
            .unwrap_or_else(|| panic!("nothing at {file}:{at}: {text:#?}"))
            .clone()
    };
    assert!(find("a.yaml", "2:19").contains("the number 7001 is also claimed by flow `support`"));
    assert!(find("b.yml", "2:19").contains("the number 7001 is already claimed by flow `sales`"));
    assert!(find("c.yaml", "1:7").contains("the flow name `sales` is already used by"));
    assert!(find("d.yaml", "1:7").contains("unclosed bracket"));
    assert_eq!(
        set.len(),
        2,
        "sales (a.yaml) and support load; c.yaml and d.yaml do not"
    );
    assert_eq!(
        set.by_number("7001").unwrap().name,
        "sales",
        "the first file keeps the number"
    );
    assert_eq!(set.by_number("7002").unwrap().name, "support");
    assert!(set.by_number("7003").is_none());
}

#[test]
fn a_transfer_to_a_number_needs_a_trunk_and_a_sip_uri_is_taken_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut env, idx) = env_with(dir.path(), &[]);
    let number = format!("{HEAD}  a: {{ transfer: \"+5511912345678\" }}\n");
    assert!(
        asset_report(&number, &env, &idx).is_empty(),
        "trunk unknown: not checked"
    );
    env.trunk = Some(false);
    assert_eq!(
        asset_report(&number, &env, &idx),
        ["5:3: the transfer to `+5511912345678` needs a SIP trunk: add `trunk:` to the server config"]
    );
    env.trunk = Some(true);
    assert!(asset_report(&number, &env, &idx).is_empty());
    let ip = format!("{HEAD}  a: {{ transfer: \"sip:op@192.0.2.10:5070\" }}\n");
    assert!(asset_report(&ip, &env, &idx).is_empty());
    // A host name is looked up when the step runs.
    let name = format!("{HEAD}  a: {{ transfer: \"sip:op@pbx.example\" }}\n");
    assert!(asset_report(&name, &env, &idx).is_empty());
    one_error(
        &format!("{HEAD}  a: {{ transfer: \"5511912345678\" }}\n"),
        "5:18",
        "is neither a SIP URI",
    );
}

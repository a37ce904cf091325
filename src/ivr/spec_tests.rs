//! The spec's merchant-support example, end to end: it loads from a directory, checks clean
//! with its prompts present, its two tests pass, and the simulator tells the story.

use super::interp::{AccountKey, AuthState, EndReason, PinOutcome};
use super::prompts::tests::write_wav;
use super::sim::{simulate, Outcome, Services};
use super::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub(crate) const MERCHANT: &str = include_str!("testdata/merchant-support.yaml");

const MERCHANT_PROMPTS: &[&str] = &[
    "welcome",
    "enter-pin",
    "pin-invalid",
    "main-menu",
    "invalid-option",
    "closed",
    "leave-message",
    "too-many-attempts",
    "goodbye",
];

/// What the real accounts file would answer: one gold merchant.
pub(crate) struct Accounts {
    pub checks: Vec<AccountKey>,
}

impl Services for Accounts {
    fn verify_pin(&mut self, key: &AccountKey, pin: &str) -> PinOutcome {
        self.checks.push(key.clone());
        match (key, pin) {
            (AccountKey::Phone(p), "4321") if p == "+5511987650000" => PinOutcome::Ok {
                account_id: "M-1001".to_string(),
                fields: BTreeMap::from([
                    ("name".to_string(), "Padaria Central".to_string()),
                    ("tier".to_string(), "gold".to_string()),
                    ("priority".to_string(), "10".to_string()),
                ]),
            },
            _ => PinOutcome::Invalid,
        }
    }
    fn lookup(&mut self, _: &str, _: &str, _: Option<&str>) -> Result<serde_json::Value, String> {
        Ok(serde_json::json!({"orders": 2}))
    }
}

fn setup(dir: &Path, prompts: &[&str]) -> CheckEnv {
    let flows = dir.join("ivr-flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("merchant-support.yaml"), MERCHANT).unwrap();
    for p in prompts {
        write_wav(&dir.join(format!("sounds/pt-BR/{p}.wav")), 8000, 1, 1000);
    }
    CheckEnv {
        sounds_dir: dir.join("sounds"),
        queues: None,
        trunk: None,
    }
}

#[test]
fn spec_example_checks_clean_with_prompts_present() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), MERCHANT_PROMPTS);
    let (set, diags) = load_dir(&dir.path().join("ivr-flows"), &env);
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(set.len(), 1);
    let flow = set.by_number("7000").expect("7000 routes to the flow");
    assert_eq!(flow.name, "merchant-support");
    assert!(set.by_number("+541150000000").is_some());
    // Checked without a server config: the only warnings are the steps that need queues, one
    // per queue/callback step.
    let warnings: Vec<&Diagnostic> = diags.iter().filter(|d| !d.is_error()).collect();
    assert_eq!(warnings.len(), 4, "{warnings:#?}");
    let billing_vip = warnings
        .iter()
        .find(|d| d.line == 48)
        .expect("warning at billing-vip");
    assert_eq!(billing_vip.column, 3);
    assert!(billing_vip.to_string().contains(
        ": warning: queue steps need queues and none are configured (add `queues:` to the server config): at run time the call follows on_timeout (or ends)"
    ));
}

#[test]
fn spec_example_tests_pass_against_the_accounts_file() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), MERCHANT_PROMPTS);
    let (set, _) = load_dir(&dir.path().join("ivr-flows"), &env);
    let prompts = Arc::new(PromptIndex::scan(&env.sounds_dir));
    let mut factory = || -> Box<dyn Services> { Box::new(Accounts { checks: Vec::new() }) };
    let results = run_tests(&set, &prompts, &mut factory);
    assert_eq!(results.len(), 2);
    for r in &results {
        assert!(r.passed(), "{}\n{}", r.failure.as_ref().unwrap(), r.report);
    }
    let gold = &results[0];
    assert_eq!(gold.report.auth, AuthState::Ok);
    assert_eq!(
        gold.report.vars.get("account.tier").map(String::as_str),
        Some("gold")
    );
    let locked = &results[1];
    assert_eq!(
        locked.report.outcome,
        Outcome::Hangup(EndReason::AuthFailed)
    );
    assert_eq!(locked.report.auth, AuthState::Failed);
}

#[test]
fn a_failing_flow_test_is_reported_at_its_name_with_expected_and_got() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), MERCHANT_PROMPTS);
    let (set, _) = load_dir(&dir.path().join("ivr-flows"), &env);
    let prompts = Arc::new(PromptIndex::scan(&env.sounds_dir));
    // Nobody's PIN is right: the gold merchant never reaches the billing queue.
    let mut factory = || -> Box<dyn Services> { Box::new(super::sim::NoServices) };
    let results = run_tests(&set, &prompts, &mut factory);
    let d = results[0].failure.clone().expect("the first test fails");
    assert_eq!((d.line, d.column), (94, 11));
    let text = d.to_string();
    assert!(text.contains("merchant-support.yaml:94:11: test `gold merchant reaches billing ahead of others` failed: expected queue `billing`, got: hung up (auth_failed)"), "{text}");
    assert!(text.contains("expected priority 10"), "{text}");
    assert!(results[1].passed(), "the lockout test passes either way");
}

#[test]
fn missing_prompts_are_errors_at_their_use() {
    let dir = tempfile::tempdir().unwrap();
    let without_goodbye: Vec<&str> = MERCHANT_PROMPTS
        .iter()
        .copied()
        .filter(|p| *p != "goodbye")
        .collect();
    let env = setup(dir.path(), &without_goodbye);
    let (set, diags) = load_dir(&dir.path().join("ivr-flows"), &env);
    let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!((errors[0].line, errors[0].column), (90, 11));
    assert!(
        errors[0]
            .message
            .contains("prompt `goodbye` has no sound file for language pt-BR"),
        "{}",
        errors[0]
    );
    assert_eq!(
        set.len(),
        1,
        "a missing prompt fails the check but keeps the line answering"
    );
}

#[test]
fn simulate_prints_a_readable_story() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), MERCHANT_PROMPTS);
    let (set, _) = load_dir(&dir.path().join("ivr-flows"), &env);
    let flow = set.get("merchant-support").unwrap();
    let prompts = Arc::new(PromptIndex::scan(&env.sounds_dir));
    let mut accounts = Accounts { checks: Vec::new() };
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00-03:00").unwrap();
    let report = simulate(
        flow.clone(),
        prompts,
        "+5511987650000",
        at,
        &["4321#".into(), "2".into()],
        &mut accounts,
    );
    assert_eq!(
        accounts.checks,
        [AccountKey::Phone("+5511987650000".into())]
    );
    let text = report.to_string();
    assert!(text.contains("Outcome: queued in `billing` with priority 10, skills billing ≥ 2, portuguese ≥ 1, timeout 10m"), "{text}");
    assert!(
        text.contains("Path: welcome → hours → identify → menu → billing → billing-vip"),
        "{text}"
    );
    assert!(text.contains("caller types a PIN (5 keys)"), "{text}");
    assert!(!text.contains("4321"), "the PIN never shows: {text}");
    assert!(
        text.contains("Prompts: welcome, enter-pin, main-menu"),
        "{text}"
    );
    assert!(text.contains("account.tier = gold"), "{text}");
    // welcome (1s) + enter-pin (1s) + main-menu (1s) of prompts.
    assert_eq!(report.duration, std::time::Duration::from_secs(3));
}

#[test]
fn after_hours_the_caller_reaches_voicemail() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), MERCHANT_PROMPTS);
    let (set, _) = load_dir(&dir.path().join("ivr-flows"), &env);
    let flow = set.get("merchant-support").unwrap();
    let prompts = Arc::new(PromptIndex::scan(&env.sounds_dir));
    let sunday = chrono::DateTime::parse_from_rfc3339("2026-11-29T10:00:00-03:00").unwrap();
    let report = simulate(
        flow.clone(),
        prompts,
        "+5511987650000",
        sunday,
        &[],
        &mut super::sim::NoServices,
    );
    assert_eq!(
        report.path,
        [
            "welcome",
            "hours",
            "after-hours",
            "voicemail",
            "goodbye",
            "hangup"
        ]
    );
    assert_eq!(report.outcome, Outcome::Hangup(EndReason::Voicemail));
    assert_eq!(
        report.vars.get("recording").map(String::as_str),
        Some(super::sim::SIMULATED_RECORDING)
    );
}

//! Authenticator tests against a real SQLite file: lockout across calls and restarts.

use super::*;
use chrono::TimeZone;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Distinctive so a byte search of the database can prove it was never stored.
const PIN: &str = "97531864";

fn pin_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_pin(PIN).unwrap_or_else(|e| panic!("{e}")))
}

fn accounts(dir: &Path, rows: &[(&str, &str)]) -> Accounts {
    let mut csv = String::from("account_id,name,phones,pin_hash,tier,priority\n");
    for (id, phone) in rows {
        csv.push_str(&format!("{id},Name {id},{phone},{},gold,5\n", pin_hash()));
    }
    let path = dir.join("accounts.csv");
    std::fs::write(&path, csv).unwrap_or_else(|e| panic!("{e}"));
    Accounts::load_csv(&path).unwrap_or_else(|e| panic!("{e}"))
}

struct Fixture {
    dir: tempfile::TempDir,
    db: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = dir.path().join("data").join("switchboard.db");
    Fixture { dir, db }
}

impl Fixture {
    fn open(&self) -> Authenticator {
        let accounts = accounts(self.dir.path(), &[("M-1", "+5511900000001")]);
        Authenticator::open(&self.db, accounts, LockoutPolicy::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

fn at(minutes: i64, seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 13, 0, 0)
        .single()
        .unwrap_or_default()
        + chrono::Duration::seconds(minutes * 60 + seconds)
}

fn phone() -> AccountKey {
    AccountKey::Phone("+5511900000001".into())
}

fn is_ok(v: &Verdict) -> bool {
    matches!(v, Verdict::Ok { .. })
}

fn is_invalid(v: &Verdict) -> bool {
    matches!(v, Verdict::Invalid { account_id: Some(id) } if id == "M-1")
}

#[test]
fn right_pin_gives_the_account_fields() {
    let f = fixture();
    let auth = f.open();
    let v = auth.verify(&AccountKey::Id("M-1".into()), PIN, "call-1", at(0, 0));
    let Verdict::Ok { account_id, fields } = v else {
        panic!("expected Ok, got {v:?}");
    };
    assert_eq!(account_id, "M-1");
    assert_eq!(fields.get("tier").map(String::as_str), Some("gold"));
    assert_eq!(fields.get("name").map(String::as_str), Some("Name M-1"));
    let attempts = auth.attempts("M-1").unwrap_or_default();
    assert_eq!(attempts.len(), 1);
    assert!(attempts
        .iter()
        .all(|a| a.ok() && a.key_kind == KeyKind::Id && a.call_id == "call-1"));
}

#[test]
fn five_failures_lock_even_the_right_pin_until_lock_for_passes() {
    let f = fixture();
    let auth = f.open();
    // Spread over two calls: the count is per account, not per call.
    for i in 0..4 {
        let call = if i < 2 { "call-a" } else { "call-b" };
        let v = auth.verify(&phone(), "0000", call, at(1, i));
        assert!(is_invalid(&v), "try {i}: {v:?}");
    }
    let v = auth.verify(&phone(), "0000", "call-b", at(1, 10));
    let until = at(1, 10) + chrono::Duration::minutes(15);
    assert_eq!(
        v,
        Verdict::Locked {
            account_id: "M-1".into(),
            until
        },
        "the fifth failure locks"
    );
    let v = auth.verify(&phone(), PIN, "call-c", at(2, 0));
    assert!(
        matches!(v, Verdict::Locked { .. }),
        "right PIN while locked: {v:?}"
    );
    let v = auth.verify(&phone(), PIN, "call-c", at(16, 9));
    assert!(
        matches!(v, Verdict::Locked { .. }),
        "one second before the end: {v:?}"
    );

    let outcomes: Vec<AttemptOutcome> = auth
        .attempts("M-1")
        .unwrap_or_default()
        .iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(
        outcomes.len(),
        7,
        "every attempt is recorded, locked ones too"
    );
    assert_eq!(outcomes.get(5), Some(&AttemptOutcome::Locked));

    let v = auth.verify(&phone(), PIN, "call-d", at(16, 10));
    assert!(is_ok(&v), "after lock_for it works again: {v:?}");
}

#[test]
fn a_lock_that_expired_gives_a_fresh_set_of_tries() {
    let f = fixture();
    let auth = f.open();
    for i in 0..5 {
        auth.verify(&phone(), "0000", "c1", at(0, i));
    }
    // Unlocked at 15:04; the five old failures must not re-lock on the next mistake.
    let v = auth.verify(&phone(), "0000", "c2", at(15, 30));
    assert!(is_invalid(&v), "{v:?}");
}

#[test]
fn success_resets_the_failure_count() {
    let f = fixture();
    let auth = f.open();
    for i in 0..4 {
        auth.verify(&phone(), "1111", "c1", at(0, i));
    }
    assert!(is_ok(&auth.verify(&phone(), PIN, "c1", at(0, 10))));
    for i in 0..4 {
        let v = auth.verify(&phone(), "1111", "c2", at(1, i));
        assert!(is_invalid(&v), "failure {i} after a success: {v:?}");
    }
}

#[test]
fn failures_older_than_the_window_do_not_count() {
    let f = fixture();
    let auth = f.open();
    for i in 0..4 {
        auth.verify(&phone(), "1111", "c1", at(0, i));
    }
    // 15 minutes and a bit later the first failures have slid out of the window.
    let v = auth.verify(&phone(), "1111", "c2", at(15, 2));
    assert!(is_invalid(&v), "{v:?}");
    let v = auth.verify(&phone(), "1111", "c2", at(15, 3));
    assert!(is_invalid(&v), "{v:?}");
}

#[test]
fn counts_survive_a_restart() {
    let f = fixture();
    let auth = f.open();
    for i in 0..3 {
        auth.verify(&phone(), "2222", "c1", at(0, i));
    }
    drop(auth);
    let auth = f.open();
    assert!(is_invalid(&auth.verify(&phone(), "2222", "c2", at(1, 0))));
    let v = auth.verify(&phone(), "2222", "c2", at(1, 1));
    assert!(matches!(v, Verdict::Locked { .. }), "{v:?}");
    drop(auth);
    let auth = f.open();
    let v = auth.verify(&phone(), PIN, "c3", at(2, 0));
    assert!(
        matches!(v, Verdict::Locked { .. }),
        "the lock survives too: {v:?}"
    );
}

#[test]
fn unknown_accounts_look_like_wrong_pins_and_are_recorded_without_an_id() {
    let f = fixture();
    let auth = f.open();
    let v = auth.verify(
        &AccountKey::Phone("+15550000000".into()),
        PIN,
        "c1",
        at(0, 0),
    );
    assert_eq!(v, Verdict::Invalid { account_id: None });
    let v = auth.verify(&AccountKey::Id("M-404".into()), PIN, "c1", at(0, 1));
    assert_eq!(v, Verdict::Invalid { account_id: None });
    drop(auth);
    let conn = rusqlite::Connection::open(&f.db).unwrap_or_else(|e| panic!("{e}"));
    let unknown: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM auth_attempts WHERE account_id IS NULL AND outcome = 'invalid'",
            [],
            |r| r.get(0),
        )
        .unwrap_or_default();
    assert_eq!(unknown, 2);
}

#[test]
fn the_pin_never_reaches_the_database_or_debug_output() {
    let f = fixture();
    let auth = f.open();
    let wrong = "86420135";
    let verdicts = [
        auth.verify(&phone(), wrong, "c1", at(0, 0)),
        auth.verify(&phone(), PIN, "c1", at(0, 1)),
    ];
    let shown = format!(
        "{verdicts:?} {auth:?} {:?}",
        auth.attempts("M-1").unwrap_or_default()
    );
    assert!(!shown.contains(PIN) && !shown.contains(wrong), "{shown}");
    drop(auth);
    for entry in std::fs::read_dir(f.db.parent().unwrap_or(&f.db))
        .into_iter()
        .flatten()
        .flatten()
    {
        let bytes = std::fs::read(entry.path()).unwrap_or_default();
        for secret in [PIN, wrong] {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{secret} found in {}", entry.path().display());
        }
    }
}

#[test]
fn reloaded_accounts_take_effect_and_keep_their_lockouts() {
    let f = fixture();
    let auth = f.open();
    for i in 0..5 {
        auth.verify(&phone(), "3333", "c1", at(0, i));
    }
    // The admin moves M-1 to a new number and adds M-2.
    auth.replace_accounts(accounts(
        f.dir.path(),
        &[("M-1", "+5511900000009"), ("M-2", "+5511900000001")],
    ));
    assert_eq!(auth.accounts().len(), 2);
    let v = auth.verify(
        &AccountKey::Phone("+5511900000009".into()),
        PIN,
        "c2",
        at(1, 0),
    );
    assert!(
        matches!(v, Verdict::Locked { ref account_id, .. } if account_id == "M-1"),
        "{v:?}"
    );
    let v = auth.verify(&phone(), PIN, "c2", at(1, 1));
    assert!(
        matches!(v, Verdict::Ok { ref account_id, .. } if account_id == "M-2"),
        "{v:?}"
    );
    assert!(auth.ping().is_ok());
}

#[test]
fn parallel_calls_cannot_race_past_the_limit() {
    let f = fixture();
    let auth = f.open();
    let policy = LockoutPolicy::default();
    // Five calls have each started a check and none has finished: a sixth must not get a guess.
    for call in ["p1", "p2", "p3", "p4", "p5"] {
        let started = auth
            .ledger
            .start("M-1", KeyKind::Phone, call, at(0, 0), &policy);
        assert!(matches!(started, Ok(Start::Pending(_))), "{call}");
    }
    let v = auth.verify(&phone(), PIN, "p6", at(0, 1));
    assert!(matches!(v, Verdict::Locked { .. }), "{v:?}");
}

#[test]
fn a_check_cut_short_by_a_crash_counts_as_a_failure() {
    let f = fixture();
    let auth = f.open();
    let policy = LockoutPolicy::default();
    let started = auth
        .ledger
        .start("M-1", KeyKind::Phone, "c1", at(0, 0), &policy);
    assert!(matches!(started, Ok(Start::Pending(_))));
    drop(auth);
    let auth = f.open();
    let outcomes: Vec<AttemptOutcome> = auth
        .attempts("M-1")
        .unwrap_or_default()
        .iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(outcomes, [AttemptOutcome::Invalid]);
}

//! The lockout ledger: every PIN attempt, and per account the point from which failures count
//! and how long it is locked. Kept in SQLite so a restart does not hand an attacker fresh tries.
//!
//! An attempt is written as `pending` *before* the hash is checked and counts as a failure until
//! settled, so parallel calls against one account cannot get more than `max_failures` guesses
//! in by racing each other.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{AuthError, LockoutPolicy};
use crate::cdr::sqlite::{connect, migrate};

const MIGRATIONS: &[&str] = &["CREATE TABLE auth_attempts (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         account_id TEXT,
         key_kind TEXT NOT NULL,
         call_id TEXT NOT NULL,
         outcome TEXT NOT NULL,
         at INTEGER NOT NULL
     );
     CREATE INDEX auth_attempts_account ON auth_attempts (account_id, id);
     CREATE TABLE auth_lockout (
         account_id TEXT PRIMARY KEY,
         counted_after INTEGER NOT NULL DEFAULT 0,
         locked_until INTEGER
     );"];

/// How the caller named the account.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Phone,
    Id,
}

impl KeyKind {
    fn as_str(self) -> &'static str {
        match self {
            KeyKind::Phone => "phone",
            KeyKind::Id => "id",
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Ok,
    Invalid,
    /// Refused without checking the PIN because the account was locked.
    Locked,
    /// Being checked right now (or the process died while checking: it counts as a failure).
    Pending,
}

impl AttemptOutcome {
    fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Ok => "ok",
            AttemptOutcome::Invalid => "invalid",
            AttemptOutcome::Locked => "locked",
            AttemptOutcome::Pending => "pending",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Ok, Self::Invalid, Self::Locked, Self::Pending]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// One recorded attempt. There is no PIN in it, by construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// None when the caller named no known account.
    pub account_id: Option<String>,
    pub key_kind: KeyKind,
    pub call_id: String,
    pub outcome: AttemptOutcome,
    pub at: DateTime<Utc>,
}

impl Attempt {
    pub fn ok(&self) -> bool {
        self.outcome == AttemptOutcome::Ok
    }
}

pub(super) enum Start {
    Locked(DateTime<Utc>),
    /// Go ahead and check the PIN, then settle this attempt.
    Pending(i64),
}

pub(super) enum Settled {
    Ok,
    Invalid,
    Locked(DateTime<Utc>),
}

pub(super) struct Ledger {
    conn: Mutex<Connection>,
}

impl Ledger {
    pub(super) fn open(path: &Path) -> Result<Self, AuthError> {
        let mut conn = connect(path)?;
        migrate(&mut conn, "auth", MIGRATIONS)?;
        // Left pending by a crash mid-check: it was a guess whose answer nobody got.
        conn.execute(
            "UPDATE auth_attempts SET outcome = 'invalid' WHERE outcome = 'pending'",
            [],
        )?;
        Ok(Ledger {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // Transactions roll back on drop, so a panic elsewhere leaves the connection usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn record_unknown(
        &self,
        kind: KeyKind,
        call_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        insert(
            &self.conn(),
            None,
            kind,
            call_id,
            AttemptOutcome::Invalid,
            now,
        )?;
        Ok(())
    }

    pub(super) fn start(
        &self,
        account_id: &str,
        kind: KeyKind,
        call_id: &str,
        now: DateTime<Utc>,
        policy: &LockoutPolicy,
    ) -> Result<Start, AuthError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let locked_until: Option<i64> = tx
            .query_row(
                "SELECT locked_until FROM auth_lockout WHERE account_id = ?1",
                [account_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let locked = match locked_until {
            Some(until) if until > ms(now) => Some(until),
            _ if failures(&tx, account_id, now, policy)? >= policy.max_failures.max(1) => {
                // Only reachable when parallel attempts are still pending: lock now rather
                // than let one more guess through.
                Some(lock(&tx, account_id, now, policy)?)
            }
            _ => None,
        };
        let start = match locked {
            Some(until) => {
                insert(
                    &tx,
                    Some(account_id),
                    kind,
                    call_id,
                    AttemptOutcome::Locked,
                    now,
                )?;
                Start::Locked(time(until))
            }
            None => Start::Pending(insert(
                &tx,
                Some(account_id),
                kind,
                call_id,
                AttemptOutcome::Pending,
                now,
            )?),
        };
        tx.commit()?;
        Ok(start)
    }

    pub(super) fn settle(
        &self,
        account_id: &str,
        attempt: i64,
        pin_ok: bool,
        now: DateTime<Utc>,
        policy: &LockoutPolicy,
    ) -> Result<Settled, AuthError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcome = if pin_ok {
            AttemptOutcome::Ok
        } else {
            AttemptOutcome::Invalid
        };
        tx.execute(
            "UPDATE auth_attempts SET outcome = ?1 WHERE id = ?2",
            params![outcome.as_str(), attempt],
        )?;
        let settled = if pin_ok {
            // Success wipes the slate: earlier failures stop counting.
            tx.execute(
                "INSERT INTO auth_lockout (account_id, counted_after) VALUES (?1, ?2)
                 ON CONFLICT (account_id)
                 DO UPDATE SET counted_after = MAX(counted_after, excluded.counted_after)",
                params![account_id, attempt],
            )?;
            Settled::Ok
        } else if failures(&tx, account_id, now, policy)? >= policy.max_failures.max(1) {
            Settled::Locked(time(lock(&tx, account_id, now, policy)?))
        } else {
            Settled::Invalid
        };
        tx.commit()?;
        Ok(settled)
    }

    pub(super) fn attempts(&self, account_id: &str) -> Result<Vec<Attempt>, AuthError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT account_id, key_kind, call_id, outcome, at FROM auth_attempts
             WHERE account_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([account_id], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(account_id, kind, call_id, outcome, at)| {
                let key_kind = match kind.as_str() {
                    "phone" => KeyKind::Phone,
                    "id" => KeyKind::Id,
                    _ => return Err(AuthError::Corrupt(format!("key kind `{kind}`"))),
                };
                let outcome = AttemptOutcome::parse(&outcome)
                    .ok_or_else(|| AuthError::Corrupt(format!("outcome `{outcome}`")))?;
                Ok(Attempt {
                    account_id,
                    key_kind,
                    call_id,
                    outcome,
                    at: time(at),
                })
            })
            .collect()
    }

    pub(super) fn ping(&self) -> Result<(), AuthError> {
        self.conn().query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }
}

fn insert(
    conn: &Connection,
    account_id: Option<&str>,
    kind: KeyKind,
    call_id: &str,
    outcome: AttemptOutcome,
    now: DateTime<Utc>,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO auth_attempts (account_id, key_kind, call_id, outcome, at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            account_id,
            kind.as_str(),
            call_id,
            outcome.as_str(),
            ms(now)
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Failed (or still pending) attempts since the slate was last wiped, within the window.
fn failures(
    conn: &Connection,
    account_id: &str,
    now: DateTime<Utc>,
    policy: &LockoutPolicy,
) -> rusqlite::Result<u32> {
    let since = ms(now).saturating_sub(millis(policy.window));
    conn.query_row(
        "SELECT COUNT(*) FROM auth_attempts
         WHERE account_id = ?1 AND outcome IN ('invalid', 'pending') AND at > ?2
           AND id > COALESCE((SELECT counted_after FROM auth_lockout WHERE account_id = ?1), 0)",
        params![account_id, since],
        |r| r.get(0),
    )
}

/// Locks the account for `lock_for` from `now`; the failures that caused it stop counting, so
/// the account comes back with a full set of tries.
fn lock(
    conn: &Connection,
    account_id: &str,
    now: DateTime<Utc>,
    policy: &LockoutPolicy,
) -> rusqlite::Result<i64> {
    let until = ms(now).saturating_add(millis(policy.lock_for));
    conn.execute(
        "INSERT INTO auth_lockout (account_id, counted_after, locked_until)
         VALUES (?1, (SELECT COALESCE(MAX(id), 0) FROM auth_attempts), ?2)
         ON CONFLICT (account_id)
         DO UPDATE SET counted_after = excluded.counted_after, locked_until = excluded.locked_until",
        params![account_id, until],
    )?;
    tracing::warn!(account_id, "account locked after too many failed PINs");
    Ok(until)
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

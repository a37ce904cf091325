//! Caller authentication for `pin` steps: accounts from the admin's CSV, argon2 PIN hashes, and
//! a lockout ledger in SQLite that counts failures per account across calls and restarts.
//!
//! Blocking (argon2 and SQLite): the runtime calls [`Authenticator::verify`] from
//! `spawn_blocking`. PINs are only ever compared, never stored, logged or put in an error.

mod accounts;
pub mod limiter;
mod lockout;
mod pin;

pub use accounts::{Account, Accounts, AccountsError, AccountsProblem};
pub use limiter::{AuthLimiter, LimiterStats, SecurityPolicy};
pub use lockout::{Attempt, AttemptOutcome, KeyKind};
pub use pin::{
    hash_password, hash_pin, verify_password, verify_pin, verify_unknown_user, PIN_MAX_DIGITS,
    PIN_MIN_DIGITS,
};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::cdr::sqlite::ConnectError;
use lockout::{Ledger, Settled, Start};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("a PIN is {PIN_MIN_DIGITS} to {PIN_MAX_DIGITS} digits")]
    PinFormat,
    #[error("the operating system's random source failed")]
    Random,
    #[error("hashing the PIN failed")]
    Hash,
    #[error("authentication database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("authentication database: {0}")]
    Open(String),
    #[error("authentication database holds an unexpected {0}")]
    Corrupt(String),
}

impl From<ConnectError> for AuthError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Db(e) => AuthError::Db(e),
            other => AuthError::Open(other.to_string()),
        }
    }
}

/// `max_failures` failed PINs for one account within `window` lock it for `lock_for`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// 0 is treated as 1: lockout cannot be switched off by accident.
    pub max_failures: u32,
    pub window: Duration,
    pub lock_for: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
            lock_for: Duration::from_secs(15 * 60),
        }
    }
}

/// How the `pin` step names the account: the caller's number, or digits a `collect` step got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountKey {
    Phone(String),
    Id(String),
}

impl AccountKey {
    pub fn kind(&self) -> KeyKind {
        match self {
            AccountKey::Phone(_) => KeyKind::Phone,
            AccountKey::Id(_) => KeyKind::Id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `fields` are the account's CSV columns (without the hash) for `account.*` in flows.
    Ok {
        account_id: String,
        fields: BTreeMap<String, String>,
    },
    /// Wrong PIN, or no such account (`account_id: None`): the caller must hear the same thing.
    Invalid { account_id: Option<String> },
    /// Too many failures. Also the answer to the failure that trips the lock.
    Locked {
        account_id: String,
        until: DateTime<Utc>,
    },
}

pub struct Authenticator {
    accounts: RwLock<Arc<Accounts>>,
    ledger: Ledger,
    policy: LockoutPolicy,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("accounts", &self.accounts().len())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Opens the ledger in the shared database (creating it and migrating the `auth` schema).
    pub fn open(
        db_path: &Path,
        accounts: Accounts,
        policy: LockoutPolicy,
    ) -> Result<Self, AuthError> {
        Ok(Authenticator {
            accounts: RwLock::new(Arc::new(accounts)),
            ledger: Ledger::open(db_path)?,
            policy,
        })
    }

    /// Swaps in a reloaded accounts file. Calls mid-check finish against the old list;
    /// lockouts, being keyed by account id, carry over.
    pub fn replace_accounts(&self, accounts: Accounts) {
        *self.accounts.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(accounts);
    }

    /// The accounts in force now.
    pub fn accounts(&self) -> Arc<Accounts> {
        self.accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Checks `pin` for the account named by `key` and records the attempt. If the ledger
    /// cannot be read or written the answer is `Invalid`: without it, lockout cannot be
    /// enforced, and letting guesses through unbounded is worse than a failed call.
    pub fn verify(
        &self,
        key: &AccountKey,
        pin: &str,
        call_id: &str,
        now: DateTime<Utc>,
    ) -> Verdict {
        let accounts = self.accounts();
        let account = match key {
            AccountKey::Phone(number) => accounts.by_phone(number),
            AccountKey::Id(id) => accounts.by_id(id),
        };
        let Some(account) = account else {
            // Same work as a wrong PIN, so timing does not tell which accounts exist.
            std::hint::black_box(verify_pin(pin::DUMMY_HASH, pin));
            if let Err(error) = self.ledger.record_unknown(key.kind(), call_id, now) {
                tracing::error!(%call_id, %error, "cannot record a PIN attempt");
            }
            return Verdict::Invalid { account_id: None };
        };
        let id = account.id.clone();
        let fail_closed = |error: AuthError| {
            tracing::error!(%call_id, account_id = %id, %error,
                "lockout ledger unavailable; refusing the PIN");
            Verdict::Invalid {
                account_id: Some(id.clone()),
            }
        };
        let attempt = match self
            .ledger
            .start(&id, key.kind(), call_id, now, &self.policy)
        {
            Ok(Start::Pending(attempt)) => attempt,
            Ok(Start::Locked(until)) => {
                return Verdict::Locked {
                    account_id: id,
                    until,
                }
            }
            Err(e) => return fail_closed(e),
        };
        let pin_ok = verify_pin(&account.pin_hash, pin);
        match self.ledger.settle(&id, attempt, pin_ok, now, &self.policy) {
            Ok(Settled::Ok) => Verdict::Ok {
                account_id: id,
                fields: account.fields.clone(),
            },
            Ok(Settled::Invalid) => Verdict::Invalid {
                account_id: Some(id),
            },
            Ok(Settled::Locked(until)) => Verdict::Locked {
                account_id: id,
                until,
            },
            Err(e) => fail_closed(e),
        }
    }

    /// Every attempt against `account_id`, oldest first.
    pub fn attempts(&self, account_id: &str) -> Result<Vec<Attempt>, AuthError> {
        self.ledger.attempts(account_id)
    }

    pub fn ping(&self) -> Result<(), AuthError> {
        self.ledger.ping()
    }
}

#[cfg(test)]
mod tests;

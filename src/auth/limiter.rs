//! Failed authentications per source address, across calls and protocols: PIN steps today,
//! REGISTER digest and trunk authentication as they arrive. A source that fails too often in a
//! window is blocked for a while; the SIP task refuses new requests from it.
//!
//! A thin, thread-safe front of the pure [`FailureLimiter`]: time comes in as an argument, so
//! tests drive it with virtual time.

use core::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::sip::ratelimit::FailureLimiter;
use crate::time::Instant;

/// Sources remembered at once; a flood of fresh addresses evicts the least important first.
const MAX_SOURCES: usize = 100_000;

/// `security:` in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecurityPolicy {
    /// Failures from one address within `window` that block it.
    pub auth_failures: u32,
    pub window: Duration,
    pub block_for: Duration,
    /// `security.session_lifetime`: how long an agent's or supervisor's sign-in lasts
    /// (12 h by default: a working day and then some).
    pub session_lifetime: Duration,
}

impl Default for SecurityPolicy {
    fn default() -> Self {
        SecurityPolicy {
            auth_failures: 10,
            window: Duration::from_secs(10 * 60),
            block_for: Duration::from_secs(30 * 60),
            session_lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

/// Counters for /healthz and the logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimiterStats {
    pub failures: u64,
    pub blocks: u64,
    pub refused: u64,
}

#[derive(Debug)]
pub struct AuthLimiter {
    inner: Mutex<FailureLimiter>,
    failures: AtomicU64,
    blocks: AtomicU64,
    refused: AtomicU64,
}

impl AuthLimiter {
    pub fn new(policy: SecurityPolicy) -> Self {
        AuthLimiter {
            inner: Mutex::new(FailureLimiter::new(
                policy.auth_failures,
                policy.window,
                policy.block_for,
                MAX_SOURCES,
            )),
            failures: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Reports one failed authentication (wrong PIN, bad digest) from `ip`. Returns true when
    /// this failure started a block.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> bool {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let started = self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record_failure(now, ip);
        if started.is_some() {
            self.blocks.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(source = %ip, "too many failed authentications: source blocked");
        }
        started.is_some()
    }

    /// Whether `ip` is blocked at `now`.
    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_blocked(now, ip)
            .is_some()
    }

    /// Counts a request refused because its source is blocked.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> LimiterStats {
        LimiterStats {
            failures: self.failures.load(Ordering::Relaxed),
            blocks: self.blocks.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Instant {
        Instant::from_millis(secs * 1000)
    }

    fn policy() -> SecurityPolicy {
        SecurityPolicy {
            auth_failures: 3,
            window: Duration::from_secs(600),
            block_for: Duration::from_secs(1800),
            ..SecurityPolicy::default()
        }
    }

    #[test]
    fn a_guessing_source_is_blocked_for_block_for_and_others_are_not() {
        let l = AuthLimiter::new(policy());
        let guesser: IpAddr = "192.0.2.7".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let honest: IpAddr = "192.0.2.8".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert!(!l.failed(guesser, at(0)));
        assert!(!l.failed(guesser, at(1)));
        assert!(!l.is_blocked(guesser, at(1)), "two typos are not an attack");
        assert!(
            l.failed(guesser, at(2)),
            "the third failure in the window blocks"
        );
        assert!(l.is_blocked(guesser, at(3)));
        assert!(l.is_blocked(guesser, at(2 + 1799)));
        assert!(
            !l.is_blocked(guesser, at(2 + 1800)),
            "the block ends on time"
        );
        l.failed(honest, at(3));
        assert!(!l.is_blocked(honest, at(3)));
        let s = l.stats();
        assert_eq!((s.failures, s.blocks), (4, 1));
    }

    #[test]
    fn failures_slower_than_the_window_never_block() {
        let l = AuthLimiter::new(policy());
        let ip: IpAddr = "2001:db8::1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        for i in 0..20 {
            assert!(!l.failed(ip, at(i * 700)));
        }
        assert!(!l.is_blocked(ip, at(20 * 700)));
    }
}

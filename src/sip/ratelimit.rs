//! Per-source limits that keep one noisy address from starving everyone else: a token bucket for
//! SIP requests ([`RateLimiter`]) and a failure counter with lockout for authentication
//! ([`FailureLimiter`]: REGISTER, trunk digest, PIN).
//!
//! Both are pure: the runtime passes `now` and the source IP, and acts on the answer. Memory is
//! bounded by `max_sources`: entries whose state has fully decayed (a full bucket, no recent
//! failures, no block) carry no information and are dropped as they are met; when the table is
//! full of live entries, the one closest to decaying goes first, so a flood of fresh addresses
//! cannot push a blocked address out while there is anything less important to drop.

use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::time::Instant;

/// Fixed-point scale: one token (or one failure) is this many units, so refills of a fraction of
/// a token per microsecond stay exact in integers.
const UNIT: u64 = 1_000_000;

/// Expired entries dropped per call, so idle sources leave the table without a full sweep.
const PURGE_PER_CALL: usize = 2;

/// A map from source address to state, ordered by when each entry stops mattering.
#[derive(Debug)]
struct ExpiryTable<V> {
    entries: BTreeMap<IpAddr, (V, Instant)>,
    by_expiry: BTreeSet<(Instant, IpAddr)>,
    max: usize,
}

impl<V> ExpiryTable<V> {
    fn new(max: usize) -> Self {
        ExpiryTable {
            entries: BTreeMap::new(),
            by_expiry: BTreeSet::new(),
            max: max.max(1),
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, ip: &IpAddr) -> Option<&V> {
        self.entries.get(ip).map(|(v, _)| v)
    }

    fn take(&mut self, ip: &IpAddr) -> Option<V> {
        let (v, expiry) = self.entries.remove(ip)?;
        self.by_expiry.remove(&(expiry, *ip));
        Some(v)
    }

    /// Stores `v` for `ip`, irrelevant from `expiry` on. Makes room first if `ip` is new.
    fn put(&mut self, ip: IpAddr, v: V, expiry: Instant) {
        if let Some((_, old)) = self.entries.remove(&ip) {
            self.by_expiry.remove(&(old, ip));
        }
        while self.entries.len() >= self.max {
            if !self.pop_first() {
                break;
            }
        }
        self.entries.insert(ip, (v, expiry));
        self.by_expiry.insert((expiry, ip));
    }

    fn pop_first(&mut self) -> bool {
        match self.by_expiry.pop_first() {
            Some((_, ip)) => {
                self.entries.remove(&ip);
                true
            }
            None => false,
        }
    }

    /// Drops up to `limit` entries that expired at or before `now`.
    fn purge(&mut self, now: Instant, limit: usize) {
        for _ in 0..limit {
            match self.by_expiry.first() {
                Some((expiry, _)) if *expiry <= now => {
                    self.pop_first();
                }
                _ => return,
            }
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens left, in `UNIT`s, as of `at`.
    tokens: u64,
    at: Instant,
}

/// A token bucket per source address: `burst` requests at once, then `rate_per_sec` sustained.
#[derive(Debug)]
pub struct RateLimiter {
    /// Refill in units per microsecond (= tokens per second).
    rate: u64,
    capacity: u64,
    table: ExpiryTable<Bucket>,
}

impl RateLimiter {
    /// `rate_per_sec` and `burst` below 1 are taken as 1; `max_sources` bounds the memory.
    pub fn new(rate_per_sec: u32, burst: u32, max_sources: usize) -> Self {
        RateLimiter {
            rate: u64::from(rate_per_sec.max(1)),
            capacity: u64::from(burst.max(1)).saturating_mul(UNIT),
            table: ExpiryTable::new(max_sources),
        }
    }

    /// Whether a request from `ip` at `now` is within its budget (and spends one token if so).
    pub fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        self.table.purge(now, PURGE_PER_CALL);
        let bucket = self.table.take(&ip).map_or(
            Bucket {
                tokens: self.capacity,
                at: now,
            },
            |b| self.refilled(b, now),
        );
        let allowed = bucket.tokens >= UNIT;
        let tokens = if allowed {
            bucket.tokens - UNIT
        } else {
            bucket.tokens
        };
        let full_in = (self.capacity - tokens).div_ceil(self.rate);
        let bucket = Bucket { tokens, at: now };
        self.table
            .put(ip, bucket, now + Duration::from_micros(full_in));
        allowed
    }

    fn refilled(&self, b: Bucket, now: Instant) -> Bucket {
        let elapsed = micros(now.saturating_since(b.at));
        Bucket {
            tokens: b
                .tokens
                .saturating_add(elapsed.saturating_mul(self.rate))
                .min(self.capacity),
            at: now,
        }
    }

    /// Drops every source whose bucket has refilled completely: they are indistinguishable from
    /// sources never seen. The runtime may call this on a timer; `allow` also does a little of it.
    pub fn purge_idle(&mut self, now: Instant) {
        self.table.purge(now, usize::MAX);
    }

    /// Sources currently tracked.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    /// Recent failures in `UNIT`s, leaking one failure per window, as of `at`.
    level: u64,
    at: Instant,
    blocked_until: Option<Instant>,
}

/// Failed authentications per source: `max_failures` within `window` blocks the source for
/// `block_for`. Failures are forgotten gradually (one per `window`), so a slow trickle of typos
/// never adds up to a block while a burst of guesses does.
#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u64,
    window_us: u64,
    block_for: Duration,
    table: ExpiryTable<Failures>,
}

impl FailureLimiter {
    /// `max_failures` below 1 is taken as 1, a zero `window` as one microsecond.
    pub fn new(
        max_failures: u32,
        window: Duration,
        block_for: Duration,
        max_sources: usize,
    ) -> Self {
        FailureLimiter {
            max_failures: u64::from(max_failures.max(1)),
            window_us: micros(window).max(1),
            block_for,
            table: ExpiryTable::new(max_sources),
        }
    }

    /// Records a failed attempt from `ip`; returns the end of the block if this one started it.
    /// Failures while already blocked neither extend nor stack the block.
    pub fn record_failure(&mut self, now: Instant, ip: IpAddr) -> Option<Instant> {
        self.table.purge(now, PURGE_PER_CALL);
        let mut f = match self.table.take(&ip) {
            Some(f) => self.leaked(f, now),
            None => Failures {
                level: 0,
                at: now,
                blocked_until: None,
            },
        };
        let mut started = None;
        if f.blocked_until.is_none() {
            f.level = f.level.saturating_add(UNIT);
            // Above max-1 means max failures arrived before even one could leak away.
            if f.level > (self.max_failures - 1) * UNIT {
                let until = now + self.block_for;
                f.blocked_until = Some(until);
                f.level = 0;
                started = Some(until);
            }
        }
        let expiry = self.expiry(&f);
        self.table.put(ip, f, expiry);
        started
    }

    /// Until when `ip` is blocked, if it is blocked at `now`.
    pub fn is_blocked(&self, now: Instant, ip: IpAddr) -> Option<Instant> {
        self.table
            .get(&ip)
            .and_then(|f| f.blocked_until)
            .filter(|until| *until > now)
    }

    /// Drops every source with no recent failures and no block in force.
    pub fn purge_idle(&mut self, now: Instant) {
        self.table.purge(now, usize::MAX);
    }

    /// Sources currently tracked.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn leaked(&self, f: Failures, now: Instant) -> Failures {
        let elapsed = u128::from(micros(now.saturating_since(f.at)));
        let leak = elapsed * u128::from(UNIT) / u128::from(self.window_us);
        Failures {
            level: u64::try_from(u128::from(f.level).saturating_sub(leak)).unwrap_or(0),
            at: now,
            blocked_until: f.blocked_until.filter(|until| *until > now),
        }
    }

    /// When the entry no longer matters: its block is over and its failures have leaked away.
    fn expiry(&self, f: &Failures) -> Instant {
        let drain_us = u128::from(f.level) * u128::from(self.window_us) / u128::from(UNIT);
        let drained = f.at + Duration::from_micros(u64::try_from(drain_us).unwrap_or(u64::MAX));
        f.blocked_until.map_or(drained, |until| until.max(drained))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n))
    }

    fn at_ms(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn a_flood_from_one_address_is_cut_to_the_rate_while_another_gets_through() {
        let mut rl = RateLimiter::new(10, 20, 1_000);
        let (flooder, caller) = (ip(1), ip(2));
        let (mut flood_ok, mut caller_ok, mut caller_sent) = (0, 0, 0);
        // 10 s of a request every millisecond from one address, one every 500 ms from another.
        for ms in 0..10_000 {
            if rl.allow(at_ms(ms), flooder) {
                flood_ok += 1;
            }
            if ms % 500 == 0 {
                caller_sent += 1;
                if rl.allow(at_ms(ms), caller) {
                    caller_ok += 1;
                }
            }
        }
        // The burst, then 10/s for the 10 s that followed it.
        assert!(
            (118..=121).contains(&flood_ok),
            "flooder got {flood_ok} through"
        );
        assert_eq!(caller_ok, caller_sent, "the quiet caller was limited");
    }

    #[test]
    fn the_burst_is_available_at_once_and_refills_with_time() {
        let mut rl = RateLimiter::new(2, 5, 10);
        let a = ip(7);
        let first: Vec<bool> = (0..7).map(|_| rl.allow(at_ms(0), a)).collect();
        assert_eq!(first, [true, true, true, true, true, false, false]);
        assert!(!rl.allow(at_ms(499), a), "half a token is not a token");
        assert!(rl.allow(at_ms(500), a), "one token after 1/rate seconds");
        assert!(!rl.allow(at_ms(500), a));
    }

    #[test]
    fn memory_stays_bounded_under_100k_distinct_sources() {
        let mut rl = RateLimiter::new(5, 10, 1_000);
        let regular = ip(0xff_fff0);
        for n in 0..100_000u32 {
            let now = Instant::from_micros(u64::from(n) * 10);
            rl.allow(now, ip(n));
            assert!(rl.len() <= 1_000, "{} sources tracked", rl.len());
            if n % 10_000 == 0 {
                assert!(
                    rl.allow(now, regular),
                    "a regular caller was refused mid-flood"
                );
            }
        }
        assert!(
            rl.allow(at_ms(1_000), ip(0xff_fff1)),
            "a new source is still let in"
        );
    }

    #[test]
    fn idle_sources_are_forgotten() {
        let mut rl = RateLimiter::new(10, 10, 100);
        for n in 0..50 {
            rl.allow(at_ms(0), ip(n));
        }
        assert_eq!(rl.len(), 50);
        // One token spent refills in 100 ms; by then every bucket is full again.
        rl.purge_idle(at_ms(99));
        assert_eq!(rl.len(), 50);
        rl.purge_idle(at_ms(100));
        assert!(rl.is_empty());
        // Without an explicit purge, ordinary traffic drains idle entries as it goes.
        for n in 0..50 {
            rl.allow(at_ms(1_000), ip(n));
        }
        for n in 0..30 {
            rl.allow(at_ms(5_000), ip(1_000 + n));
        }
        assert!(rl.len() < 50, "{} sources tracked", rl.len());
    }

    #[test]
    fn failures_in_a_burst_block_and_the_block_expires() {
        let block = Duration::from_secs(600);
        let mut fl = FailureLimiter::new(5, Duration::from_secs(60), block, 1_000);
        let (guesser, other) = (ip(1), ip(2));
        for n in 0..4 {
            assert_eq!(fl.record_failure(at_ms(n * 1_000), guesser), None);
            assert_eq!(fl.is_blocked(at_ms(n * 1_000), guesser), None);
        }
        let until = fl.record_failure(at_ms(4_000), guesser);
        assert_eq!(until, Some(at_ms(4_000) + block));
        assert_eq!(fl.is_blocked(at_ms(4_001), guesser), until);
        assert_eq!(
            fl.is_blocked(at_ms(4_001), other),
            None,
            "others unaffected"
        );
        // More guesses during the block do not stretch it.
        assert_eq!(fl.record_failure(at_ms(300_000), guesser), None);
        assert_eq!(fl.is_blocked(at_ms(300_000), guesser), until);
        assert_eq!(
            fl.is_blocked(at_ms(604_000), guesser),
            None,
            "the block expired"
        );
        // After the block the slate is clean: one failure does not re-block.
        assert_eq!(fl.record_failure(at_ms(604_000), guesser), None);
        assert_eq!(fl.is_blocked(at_ms(604_001), guesser), None);
    }

    #[test]
    fn failures_spread_wider_than_the_window_never_block() {
        let mut fl = FailureLimiter::new(3, Duration::from_secs(60), Duration::from_secs(600), 10);
        let typist = ip(9);
        // Three failures spanning just over a window: the first has leaked away by the third.
        for t in [0, 30_001, 60_002] {
            assert_eq!(
                fl.record_failure(at_ms(t), typist),
                None,
                "blocked at {t} ms"
            );
        }
        // Three failures within a window block.
        let mut fl = FailureLimiter::new(3, Duration::from_secs(60), Duration::from_secs(600), 10);
        assert_eq!(fl.record_failure(at_ms(0), typist), None);
        assert_eq!(fl.record_failure(at_ms(29_000), typist), None);
        assert!(fl.record_failure(at_ms(59_000), typist).is_some());
    }

    #[test]
    fn a_flood_of_new_sources_neither_grows_memory_nor_lifts_a_block() {
        let mut fl =
            FailureLimiter::new(3, Duration::from_secs(60), Duration::from_secs(900), 1_000);
        let guesser = ip(0xff_ffff);
        for _ in 0..3 {
            fl.record_failure(at_ms(0), guesser);
        }
        let until = fl.is_blocked(at_ms(1), guesser).expect("blocked");
        for n in 0..100_000u32 {
            fl.record_failure(Instant::from_micros(1_000 + u64::from(n) * 10), ip(n));
            assert!(fl.len() <= 1_000, "{} sources tracked", fl.len());
        }
        assert_eq!(fl.is_blocked(at_ms(2_000), guesser), Some(until));
        fl.purge_idle(until);
        assert!(
            fl.is_empty(),
            "{} left after every block and failure expired",
            fl.len()
        );
    }
}

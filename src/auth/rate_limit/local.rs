//! The limits in this process's memory: one process, one count.
//!
//! Each table is a bounded `quick_cache` map, not a map swept when it grows: a spray of
//! client addresses or usernames cannot grow it, nor make every attempt scan it under a
//! lock. When a table is full, a key seen once goes before one seen again (CLOCK-Pro's
//! cold entries before hot ones), so a flood of one-off keys does not push out the client
//! or username being counted over and over, which is what the limits are for. An entry
//! that did go only forgets its count: the next attempt starts a new one.

use std::hash::Hash;
use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};
use quick_cache::Equivalent;
use quick_cache::sync::{Cache, EntryAction, EntryResult};

use super::{
    LOGIN_FAILURE_WINDOW, LOGIN_FAILURES_BEFORE_LOCK, LOGIN_RECORD_TTL, Limited, WINDOW, limited_until,
    lockout_after,
};
use crate::clock::Clock;

/// Keys each table holds at most (about 1 MB of IP windows; the username records are
/// larger, a few MB when full).
pub const MAX_TRACKED_KEYS: usize = 10_000;

/// A table of at most [`MAX_TRACKED_KEYS`] entries.
fn table<K: Eq + Hash, V: Clone>() -> Cache<K, V> {
    Cache::new(MAX_TRACKED_KEYS)
}

/// Runs `update` on the entry of `key` under its shard's lock, or on a `new()` one that
/// is then stored; returns what `update` returned.
fn upsert<K, V, Q, T>(
    table: &Cache<K, V>,
    key: &Q,
    new: impl FnOnce() -> V,
    mut update: impl FnMut(&mut V) -> T,
) -> T
where
    K: Eq + Hash,
    V: Clone,
    Q: Hash + Equivalent<K> + ToOwned<Owned = K> + ?Sized,
{
    match table.entry(key, None, |_, value| EntryAction::Retain(update(value))) {
        EntryResult::Retained(result) => result,
        // `Removed` and `Replaced` answer other `EntryAction`s, and `Timeout` a timeout,
        // none of which is asked for: they are counted like a new key, not stored.
        other => {
            let mut value = new();
            let result = update(&mut value);
            if let EntryResult::Vacant(slot) = other {
                // Err only if a success removed the key meanwhile, which resets it anyway.
                let _ = slot.insert(value);
            }
            result
        }
    }
}

/// A client's current window: when it started, and the attempts counted in it.
#[derive(Clone, Copy)]
struct Window {
    start: DateTime<Utc>,
    count: u32,
}

/// A fixed one-minute window per client IP.
pub struct RateLimiter {
    per_minute: u32,
    clock: Clock,
    windows: Cache<IpAddr, Window>,
}

impl RateLimiter {
    pub fn new(per_minute: u32, clock: Clock) -> Self {
        Self { per_minute, clock, windows: table() }
    }

    /// Counts one attempt from `ip`; errs with the wait once over the limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), Limited> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = self.clock.now();
        let count = |window: &mut Window| {
            if now - window.start >= WINDOW {
                *window = Window { start: now, count: 0 };
            }
            if window.count >= self.per_minute {
                return Err(limited_until(window.start + WINDOW, now));
            }
            window.count += 1;
            Ok(())
        };
        upsert(&self.windows, &ip, || Window { start: now, count: 0 }, count)
    }

    /// The clients tracked now, at most [`MAX_TRACKED_KEYS`].
    pub fn tracked(&self) -> usize {
        self.windows.len()
    }
}

#[derive(Default, Clone)]
struct LoginRecord {
    failures: Vec<DateTime<Utc>>,
    lockouts: u32,
    locked_until: Option<DateTime<Utc>>,
    last_seen: Option<DateTime<Utc>>,
}

impl LoginRecord {
    fn forgotten(&self, now: DateTime<Utc>) -> bool {
        self.last_seen.is_none_or(|seen| now - seen >= LOGIN_RECORD_TTL)
    }
}

/// Locks a username after repeated wrong passwords (the rules are in the parent module).
pub struct LoginThrottle {
    clock: Clock,
    records: Cache<String, LoginRecord>,
}

impl LoginThrottle {
    pub fn new(clock: Clock) -> Self {
        Self { clock, records: table() }
    }

    /// Refuses the attempt while the username is locked; else whether it has a record.
    fn check(&self, key: &str) -> Result<bool, Limited> {
        let now = self.clock.now();
        let Some(record) = self.records.get(key).filter(|r| !r.forgotten(now)) else {
            return Ok(false);
        };
        match record.locked_until {
            Some(until) if until > now => Err(limited_until(until, now)),
            _ => Ok(true),
        }
    }

    /// Counts a failure; returns the lockout it started, if it did.
    fn record_failure(&self, key: &str) -> Option<TimeDelta> {
        let now = self.clock.now();
        let fail = |record: &mut LoginRecord| {
            if record.forgotten(now) {
                *record = LoginRecord::default();
            }
            record.last_seen = Some(now);
            record.failures.retain(|at| now - *at < LOGIN_FAILURE_WINDOW);
            record.failures.push(now);
            if record.failures.len() < LOGIN_FAILURES_BEFORE_LOCK {
                return None;
            }
            let lockout = lockout_after(record.lockouts);
            record.lockouts += 1;
            record.locked_until = Some(now + lockout);
            record.failures.clear();
            Some(lockout)
        };
        upsert(&self.records, key, LoginRecord::default, fail)
    }

    /// The usernames tracked now, at most [`MAX_TRACKED_KEYS`].
    pub fn tracked(&self) -> usize {
        self.records.len()
    }
}

/// Both limits of [`super::AbuseLimits`], per process.
pub struct LocalLimits {
    attempts: RateLimiter,
    logins: LoginThrottle,
}

impl LocalLimits {
    pub fn new(per_minute: u32, clock: Clock) -> Self {
        Self { attempts: RateLimiter::new(per_minute, clock.clone()), logins: LoginThrottle::new(clock) }
    }

    pub(super) fn check(&self, ip: Option<IpAddr>, key: Option<&str>) -> Result<bool, Limited> {
        if let Some(ip) = ip {
            self.attempts.check(ip)?;
        }
        key.map_or(Ok(false), |key| self.logins.check(key))
    }

    pub(super) fn record_failure(&self, key: &str) -> Option<TimeDelta> {
        self.logins.record_failure(key)
    }

    pub(super) fn record_success(&self, key: &str) {
        self.logins.records.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn twenty_thousand_distinct_keys_keep_each_table_bounded() {
        let limits = LocalLimits::new(3, ManualClock::new().clock());
        // Before the flood: a client at its limit, a username with failures on record.
        let client = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..3 {
            limits.check(Some(client), None).unwrap();
        }
        assert!(limits.check(Some(client), None).is_err());
        for _ in 0..5 {
            assert_eq!(limits.record_failure("victim"), None);
        }

        for i in 0..20_000u32 {
            let username = format!("sprayed{i}");
            let ip = IpAddr::from(Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(limits.check(Some(ip), Some(&username)), Ok(false));
            limits.record_failure(&username);
        }
        assert!(limits.attempts.tracked() <= MAX_TRACKED_KEYS, "{}", limits.attempts.tracked());
        assert!(limits.logins.tracked() <= MAX_TRACKED_KEYS, "{}", limits.logins.tracked());
        // The one-off keys made the room; the client and the username counted repeatedly
        // are still counted.
        assert!(limits.check(Some(client), None).is_err());
        assert_eq!(limits.logins.check("victim"), Ok(true));
    }
}

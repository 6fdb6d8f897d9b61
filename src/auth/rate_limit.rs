//! Abuse limits: attempts per client IP, and failed logins per username.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

use crate::clock::Clock;

const WINDOW: TimeDelta = TimeDelta::seconds(60);
/// Above this many tracked clients, expired windows are swept on the next attempt, so a
/// spray of source addresses cannot grow the table without bound.
const SWEEP_THRESHOLD: usize = 10_000;

/// An attempt refused: the caller may try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many attempts, retry after {retry_after_secs}s")]
pub struct Limited {
    pub retry_after_secs: u64,
}

/// Whole seconds until `until`, at least 1 (a `Retry-After` of 0 invites a hot loop).
fn limited_until(until: DateTime<Utc>, now: DateTime<Utc>) -> Limited {
    let millis = (until - now).num_milliseconds().max(0) as u64;
    Limited { retry_after_secs: millis.div_ceil(1000).max(1) }
}

/// A fixed one-minute window per client IP.
pub struct RateLimiter {
    per_minute: u32,
    clock: Clock,
    windows: Mutex<HashMap<IpAddr, (DateTime<Utc>, u32)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32, clock: Clock) -> Self {
        Self { per_minute, clock, windows: Mutex::new(HashMap::new()) }
    }

    /// Counts one attempt from `ip`; errs with the wait once over the limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), Limited> {
        if self.per_minute == 0 {
            return Ok(());
        }
        self.count(ip, self.clock.now())
    }

    fn count(&self, ip: IpAddr, now: DateTime<Utc>) -> Result<(), Limited> {
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() > SWEEP_THRESHOLD {
            windows.retain(|_, (start, _)| now - *start < WINDOW);
        }
        let (start, count) = windows.entry(ip).or_insert((now, 0));
        if now - *start >= WINDOW {
            (*start, *count) = (now, 0);
        }
        if *count >= self.per_minute {
            let wait = (WINDOW - (now - *start)).num_seconds().clamp(1, WINDOW.num_seconds());
            return Err(Limited { retry_after_secs: wait as u64 });
        }
        *count += 1;
        Ok(())
    }
}

/// Failed logins per username before the username is locked.
const LOGIN_FAILURES_BEFORE_LOCK: usize = 10;
/// Failures older than this are forgotten.
const LOGIN_FAILURE_WINDOW: TimeDelta = TimeDelta::seconds(15 * 60);
const FIRST_LOCKOUT: TimeDelta = TimeDelta::seconds(60);
const MAX_LOCKOUT: TimeDelta = TimeDelta::seconds(15 * 60);
/// Usernames longer than any valid one are keyed by this prefix, which bounds memory.
const MAX_KEY_CHARS: usize = 64;

#[derive(Default)]
struct LoginRecord {
    failures: Vec<DateTime<Utc>>,
    lockouts: u32,
    locked_until: Option<DateTime<Utc>>,
    last_seen: Option<DateTime<Utc>>,
}

/// Locks a username after repeated wrong passwords: 60 s at first, doubling with each
/// further lockout up to 15 minutes, so guessing is slow and no one is locked out for
/// long. Unknown usernames are counted exactly like real ones, so a lock reveals nothing.
/// The state is per process; several instances each keep their own.
pub struct LoginThrottle {
    clock: Clock,
    records: Mutex<HashMap<String, LoginRecord>>,
}

impl LoginThrottle {
    pub fn new(clock: Clock) -> Self {
        Self { clock, records: Mutex::default() }
    }

    /// Refuses the attempt while the username is locked.
    pub fn check(&self, username: &str) -> Result<(), Limited> {
        self.check_at(username, self.clock.now())
    }

    pub fn record_failure(&self, username: &str) {
        self.failure_at(username, self.clock.now());
    }

    /// A successful login clears the count and the lockout level.
    pub fn record_success(&self, username: &str) {
        self.lock().remove(&key(username));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LoginRecord>> {
        self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn check_at(&self, username: &str, now: DateTime<Utc>) -> Result<(), Limited> {
        let records = self.lock();
        match records.get(&key(username)).and_then(|r| r.locked_until) {
            Some(until) if until > now => Err(limited_until(until, now)),
            _ => Ok(()),
        }
    }

    fn failure_at(&self, username: &str, now: DateTime<Utc>) {
        let mut records = self.lock();
        if records.len() > SWEEP_THRESHOLD {
            records.retain(|_, r| {
                r.last_seen.is_some_and(|seen| now - seen < LOGIN_FAILURE_WINDOW + MAX_LOCKOUT)
            });
        }
        let record = records.entry(key(username)).or_default();
        record.last_seen = Some(now);
        record.failures.retain(|at| now - *at < LOGIN_FAILURE_WINDOW);
        record.failures.push(now);
        if record.failures.len() >= LOGIN_FAILURES_BEFORE_LOCK {
            let lockout = (FIRST_LOCKOUT * (1 << record.lockouts.min(10))).min(MAX_LOCKOUT);
            record.lockouts += 1;
            record.locked_until = Some(now + lockout);
            record.failures.clear();
            log::warn!("login locked for {}s after repeated failures", lockout.num_seconds());
        }
    }
}

fn key(username: &str) -> String {
    username.chars().take(MAX_KEY_CHARS).collect::<String>().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: i64) -> TimeDelta {
        TimeDelta::seconds(n)
    }

    #[test]
    fn the_window_allows_the_limit_then_refuses_until_it_passes() {
        let limiter = RateLimiter::new(3, Clock::system());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Utc::now();
        for _ in 0..3 {
            limiter.count(ip, t0).unwrap();
        }
        match limiter.count(ip, t0 + secs(20)) {
            Err(Limited { retry_after_secs }) => assert_eq!(retry_after_secs, 40),
            other => panic!("expected a limit, got {other:?}"),
        }
        limiter.count(other, t0).unwrap();
        limiter.count(ip, t0 + WINDOW).unwrap();
    }

    #[test]
    fn a_username_locks_after_ten_failures_for_doubling_periods_capped_at_15_minutes() {
        let throttle = LoginThrottle::new(Clock::system());
        let mut now = Utc::now();
        let mut lockouts = Vec::new();
        for _ in 0..6 {
            for _ in 0..LOGIN_FAILURES_BEFORE_LOCK {
                throttle.check_at("Alice", now).unwrap();
                throttle.failure_at("alice", now);
            }
            let Err(Limited { retry_after_secs }) = throttle.check_at("ALICE", now) else {
                panic!("expected a lock");
            };
            lockouts.push(retry_after_secs);
            now += secs(retry_after_secs as i64);
        }
        assert_eq!(lockouts, [60, 120, 240, 480, 900, 900]);
        throttle.record_success("alice");
        for _ in 0..LOGIN_FAILURES_BEFORE_LOCK - 1 {
            throttle.failure_at("alice", now);
        }
        throttle.check_at("alice", now).unwrap();
    }

    #[test]
    fn old_failures_are_forgotten() {
        let throttle = LoginThrottle::new(Clock::system());
        let start = Utc::now();
        for _ in 0..LOGIN_FAILURES_BEFORE_LOCK - 1 {
            throttle.failure_at("bob", start);
        }
        let later = start + LOGIN_FAILURE_WINDOW;
        throttle.failure_at("bob", later);
        throttle.check_at("bob", later).unwrap();
    }
}

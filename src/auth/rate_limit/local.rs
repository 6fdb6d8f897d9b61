//! The limits in this process's memory: one process, one count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, TimeDelta, Utc};

use super::{
    LOGIN_FAILURE_WINDOW, LOGIN_FAILURES_BEFORE_LOCK, LOGIN_RECORD_TTL, Limited, WINDOW, limited_until,
    lockout_after,
};
use crate::clock::Clock;

/// Above this many tracked clients, expired windows are swept on the next attempt, so a
/// spray of source addresses cannot grow the table without bound.
const SWEEP_THRESHOLD: usize = 10_000;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let now = self.clock.now();
        let mut windows = lock(&self.windows);
        if windows.len() > SWEEP_THRESHOLD {
            windows.retain(|_, (start, _)| now - *start < WINDOW);
        }
        let (start, count) = windows.entry(ip).or_insert((now, 0));
        if now - *start >= WINDOW {
            (*start, *count) = (now, 0);
        }
        if *count >= self.per_minute {
            return Err(limited_until(*start + WINDOW, now));
        }
        *count += 1;
        Ok(())
    }
}

#[derive(Default)]
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
    records: Mutex<HashMap<String, LoginRecord>>,
}

impl LoginThrottle {
    pub fn new(clock: Clock) -> Self {
        Self { clock, records: Mutex::default() }
    }

    /// Refuses the attempt while the username is locked; else whether it has a record.
    fn check(&self, key: &str) -> Result<bool, Limited> {
        let now = self.clock.now();
        let records = lock(&self.records);
        let Some(record) = records.get(key).filter(|r| !r.forgotten(now)) else {
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
        let mut records = lock(&self.records);
        if records.len() > SWEEP_THRESHOLD {
            records.retain(|_, r| !r.forgotten(now));
        }
        let record = records.entry(key.to_owned()).or_default();
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
        lock(&self.logins.records).remove(key);
    }
}

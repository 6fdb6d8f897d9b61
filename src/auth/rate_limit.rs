//! Abuse limits: attempts per client IP, and failed logins per username.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;

use crate::error::ApiError;

const WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked clients, expired windows are swept on the next attempt, so a
/// spray of source addresses cannot grow the table without bound.
const SWEEP_THRESHOLD: usize = 10_000;

/// A fixed one-minute window per client IP.
pub struct RateLimiter {
    per_minute: u32,
    trust_proxy_headers: bool,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32, trust_proxy_headers: bool) -> Self {
        Self { per_minute, trust_proxy_headers, windows: Mutex::new(HashMap::new()) }
    }

    /// Counts one attempt from the request's client; errs with the wait once over the limit.
    pub fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let Some(ip) = self.client_ip(req) else {
            return Ok(());
        };
        self.count(ip, Instant::now())
    }

    fn count(&self, ip: IpAddr, now: Instant) -> Result<(), ApiError> {
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() > SWEEP_THRESHOLD {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let (start, count) = windows.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            (*start, *count) = (now, 0);
        }
        if *count >= self.per_minute {
            let wait = WINDOW.saturating_sub(now.duration_since(*start));
            return Err(ApiError::RateLimited { retry_after_secs: wait.as_secs().max(1) });
        }
        *count += 1;
        Ok(())
    }

    /// The socket's address, unless the operator said a trusted proxy sets the headers.
    fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        if self.trust_proxy_headers {
            let info = req.connection_info();
            if let Some(ip) = info.realip_remote_addr().and_then(parse_ip) {
                return Some(ip);
            }
        }
        req.peer_addr().map(|addr| addr.ip())
    }
}

/// `realip_remote_addr` may be `ip`, `ip:port` or `[v6]:port`.
fn parse_ip(raw: &str) -> Option<IpAddr> {
    raw.parse().ok().or_else(|| raw.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

/// Failed logins per username before the username is locked.
const LOGIN_FAILURES_BEFORE_LOCK: usize = 10;
/// Failures older than this are forgotten.
const LOGIN_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
const FIRST_LOCKOUT: Duration = Duration::from_secs(60);
const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Usernames longer than any valid one are keyed by this prefix, which bounds memory.
const MAX_KEY_CHARS: usize = 64;

#[derive(Default)]
struct LoginRecord {
    failures: Vec<Instant>,
    lockouts: u32,
    locked_until: Option<Instant>,
    last_seen: Option<Instant>,
}

/// Locks a username after repeated wrong passwords: 60 s at first, doubling with each
/// further lockout up to 15 minutes, so guessing is slow and no one is locked out for
/// long. Unknown usernames are counted exactly like real ones, so a lock reveals nothing.
/// The state is per process; several instances each keep their own.
#[derive(Default)]
pub struct LoginThrottle {
    records: Mutex<HashMap<String, LoginRecord>>,
}

impl LoginThrottle {
    /// Refuses the attempt while the username is locked.
    pub fn check(&self, username: &str) -> Result<(), ApiError> {
        self.check_at(username, Instant::now())
    }

    pub fn record_failure(&self, username: &str) {
        self.failure_at(username, Instant::now());
    }

    /// A successful login clears the count and the lockout level.
    pub fn record_success(&self, username: &str) {
        self.lock().remove(&key(username));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LoginRecord>> {
        self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn check_at(&self, username: &str, now: Instant) -> Result<(), ApiError> {
        let records = self.lock();
        match records.get(&key(username)).and_then(|r| r.locked_until) {
            Some(until) if until > now => {
                let wait = until.duration_since(now).as_secs_f64().ceil() as u64;
                Err(ApiError::RateLimited { retry_after_secs: wait.max(1) })
            }
            _ => Ok(()),
        }
    }

    fn failure_at(&self, username: &str, now: Instant) {
        let mut records = self.lock();
        if records.len() > SWEEP_THRESHOLD {
            records.retain(|_, r| {
                r.last_seen.is_some_and(|seen| now.duration_since(seen) < LOGIN_FAILURE_WINDOW + MAX_LOCKOUT)
            });
        }
        let record = records.entry(key(username)).or_default();
        record.last_seen = Some(now);
        record.failures.retain(|at| now.duration_since(*at) < LOGIN_FAILURE_WINDOW);
        record.failures.push(now);
        if record.failures.len() >= LOGIN_FAILURES_BEFORE_LOCK {
            let lockout = FIRST_LOCKOUT.saturating_mul(1 << record.lockouts.min(10)).min(MAX_LOCKOUT);
            record.lockouts += 1;
            record.locked_until = Some(now + lockout);
            record.failures.clear();
            log::warn!("login locked for {}s after repeated failures", lockout.as_secs());
        }
    }
}

fn key(username: &str) -> String {
    username.chars().take(MAX_KEY_CHARS).collect::<String>().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_allows_the_limit_then_refuses_until_it_passes() {
        let limiter = RateLimiter::new(3, false);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.count(ip, t0).unwrap();
        }
        match limiter.count(ip, t0 + Duration::from_secs(20)) {
            Err(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 40),
            other => panic!("expected a limit, got {other:?}"),
        }
        limiter.count(other, t0).unwrap();
        limiter.count(ip, t0 + WINDOW).unwrap();
    }

    #[test]
    fn a_username_locks_after_ten_failures_for_doubling_periods_capped_at_15_minutes() {
        let throttle = LoginThrottle::default();
        let mut now = Instant::now();
        let mut lockouts = Vec::new();
        for _ in 0..6 {
            for _ in 0..LOGIN_FAILURES_BEFORE_LOCK {
                throttle.check_at("Alice", now).unwrap();
                throttle.failure_at("alice", now);
            }
            let Err(ApiError::RateLimited { retry_after_secs }) = throttle.check_at("ALICE", now) else {
                panic!("expected a lock");
            };
            lockouts.push(retry_after_secs);
            now += Duration::from_secs(retry_after_secs);
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
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..LOGIN_FAILURES_BEFORE_LOCK - 1 {
            throttle.failure_at("bob", start);
        }
        let later = start + LOGIN_FAILURE_WINDOW;
        throttle.failure_at("bob", later);
        throttle.check_at("bob", later).unwrap();
    }

    #[test]
    fn addresses_with_ports_parse() {
        assert_eq!(parse_ip("10.0.0.1:443"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(parse_ip("[::1]:80"), Some("::1".parse().unwrap()));
        assert_eq!(parse_ip("2001:db8::1"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(parse_ip("unknown"), None);
    }
}

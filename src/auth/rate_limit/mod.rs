//! Abuse limits: attempts per client IP, and failed logins per username.
//!
//! [`AbuseLimits`] is what the handlers ask. It is chosen at start-up: kept in this
//! process's memory ([`local`], enough for SQLite's one process), or in the PostgreSQL
//! database ([`shared`]), so that any number of instances on one database enforce one
//! limit together instead of each its own. Both follow the same rules, set out here.

pub mod local;
pub mod shared;

use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};

use crate::clock::Clock;
use crate::db::{DbError, Pool};

pub use local::RateLimiter;

/// The per-IP limit counts attempts in fixed windows of this length.
const WINDOW: TimeDelta = TimeDelta::seconds(60);
/// Failed logins per username before the username is locked.
const LOGIN_FAILURES_BEFORE_LOCK: usize = 10;
/// Failures older than this are forgotten.
const LOGIN_FAILURE_WINDOW: TimeDelta = TimeDelta::seconds(15 * 60);
const FIRST_LOCKOUT: TimeDelta = TimeDelta::seconds(60);
const MAX_LOCKOUT: TimeDelta = TimeDelta::seconds(15 * 60);
/// A username without a failure for this long is forgotten altogether, its lockout level
/// included: by then no failure counts and no lock holds any more.
const LOGIN_RECORD_TTL: TimeDelta =
    TimeDelta::seconds(LOGIN_FAILURE_WINDOW.num_seconds() + MAX_LOCKOUT.num_seconds());
/// Usernames longer than any valid one are keyed by this prefix, which bounds the state.
const MAX_KEY_CHARS: usize = 64;

/// An attempt refused: the caller may try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many attempts, retry after {retry_after_secs}s")]
pub struct Limited {
    pub retry_after_secs: u64,
}

/// Why an attempt may not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error(transparent)]
    Limited(#[from] Limited),
    /// The shared limits could not be consulted; the attempt must not go ahead unchecked.
    #[error(transparent)]
    Database(#[from] DbError),
}

/// Whole seconds until `until`, at least 1 (a `Retry-After` of 0 invites a hot loop).
fn limited_until(until: DateTime<Utc>, now: DateTime<Utc>) -> Limited {
    let millis = (until - now).num_milliseconds().max(0) as u64;
    Limited { retry_after_secs: millis.div_ceil(1000).max(1) }
}

/// The lockout that the `lockouts`-th earlier one is followed by: 60 s, doubling, capped.
fn lockout_after(lockouts: u32) -> TimeDelta {
    (FIRST_LOCKOUT * (1 << lockouts.min(10))).min(MAX_LOCKOUT)
}

/// The name a username's failures are counted under: case-blind, and bounded in length
/// whatever the request sent. PostgreSQL text cannot hold NUL, which no valid username
/// has; it stands in as U+FFFD, so that such a name is still counted, not an error.
fn key(username: &str) -> String {
    let key = username.chars().take(MAX_KEY_CHARS).map(|c| if c == '\0' { '\u{fffd}' } else { c });
    key.collect::<String>().to_lowercase()
}

/// A login let through the limits, to be reported back as failed or succeeded.
pub struct LoginAttempt {
    key: String,
    /// Whether failures or a lockout were on record at the check: only then does a
    /// success have anything to reset.
    on_record: bool,
}

/// The per-IP limit on signup, login and password change (`AUTH_RATE_LIMIT_PER_MIN`,
/// 0 disables it) and the per-username login lockout, in one of two places.
pub enum AbuseLimits {
    Local(local::LocalLimits),
    Shared(shared::SharedLimits),
}

impl AbuseLimits {
    /// Limits kept in this process.
    pub fn local(per_minute: u32, clock: Clock) -> Self {
        Self::Local(local::LocalLimits::new(per_minute, clock))
    }

    /// Limits kept in the PostgreSQL database behind `pool`, shared with every instance on it.
    pub fn shared(pool: Pool, per_minute: u32, clock: Clock) -> Self {
        Self::Shared(shared::SharedLimits::new(pool, per_minute, clock))
    }

    /// Counts one signup or password-change attempt from `ip`.
    pub async fn attempt(&self, ip: Option<IpAddr>) -> Result<(), LimitError> {
        self.check(ip, None).await.map(|_| ())
    }

    /// Counts one login attempt from `ip`, and refuses it while `username` is locked.
    pub async fn login_attempt(
        &self,
        ip: Option<IpAddr>,
        username: &str,
    ) -> Result<LoginAttempt, LimitError> {
        let key = key(username);
        let on_record = self.check(ip, Some(&key)).await?;
        Ok(LoginAttempt { key, on_record })
    }

    /// Whether `key` has failures or a lockout on record, after counting the IP.
    async fn check(&self, ip: Option<IpAddr>, key: Option<&str>) -> Result<bool, LimitError> {
        match self {
            Self::Local(limits) => Ok(limits.check(ip, key)?),
            Self::Shared(limits) => limits.check(ip, key).await,
        }
    }

    /// A wrong password: counts towards locking the username.
    pub async fn login_failed(&self, attempt: &LoginAttempt) -> Result<(), DbError> {
        let locked_for = match self {
            Self::Local(limits) => limits.record_failure(&attempt.key),
            Self::Shared(limits) => limits.record_failure(&attempt.key).await?,
        };
        if let Some(lockout) = locked_for {
            log::warn!("login locked for {}s after repeated failures", lockout.num_seconds());
        }
        Ok(())
    }

    /// Clears the username's failures and lockout (a password reset: its owner proved it
    /// holds the address).
    pub async fn clear_lockout(&self, username: &str) -> Result<(), DbError> {
        self.login_succeeded(&LoginAttempt { key: key(username), on_record: true }).await
    }

    /// The right password: clears the count and the lockout level.
    pub async fn login_succeeded(&self, attempt: &LoginAttempt) -> Result<(), DbError> {
        match self {
            Self::Local(limits) => limits.record_success(&attempt.key),
            // Nothing on record, nothing to write: the usual login costs no statement here.
            Self::Shared(_) if !attempt.on_record => {}
            Self::Shared(limits) => limits.record_success(&attempt.key).await?,
        }
        Ok(())
    }
}

//! The Prometheus metrics of one app: the HTTP layer counts requests, the core its
//! logins, signups and refreshes. Each app has its own registry, so that several apps in one process (the tests) each count only their own.
//!
//! Every label value comes from a fixed set: routes are the matched templates (or
//! [`UNMATCHED_ROUTE`]), results the `as_str` of the enums below. Nothing a client sends
//! (a path, an id, a username) becomes a label, so the number of series stays bounded.

use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::auth::Error;

/// The `route` of a request that matched no route (404).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Request durations: from a sub-millisecond health check to an argon2 login waiting in
/// the queue (`ARGON2_QUEUE_TIMEOUT_MS`, 1 s by default).
const DURATION_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    logins: IntCounterVec,
    signups: IntCounter,
    refreshes: IntCounterVec,
    refresh_reuse_detected: IntCounter,
    rate_limited: IntCounter,
    argon2_queue_depth: IntGauge,
    db_connections_in_use: IntGauge,
    mails: IntCounterVec,
}

/// How an attempt to send a mail ended: `tollgate_mails_total{kind,result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailResult {
    Sent,
    /// It failed and is tried again later.
    Retried,
    /// It failed for good, or too many times: given up.
    Dropped,
}

impl MailResult {
    pub fn as_str(self) -> &'static str {
        match self {
            MailResult::Sent => "sent",
            MailResult::Retried => "retried",
            MailResult::Dropped => "dropped",
        }
    }
}

/// How a login ended: `tollgate_logins_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    Success,
    InvalidCredentials,
    AccountDisabled,
    RateLimited,
    /// 503: the argon2 queue was full.
    Overloaded,
    /// Anything else (the database unavailable, an internal error).
    Error,
}

impl LoginResult {
    pub const ALL: [LoginResult; 6] = [
        LoginResult::Success,
        LoginResult::InvalidCredentials,
        LoginResult::AccountDisabled,
        LoginResult::RateLimited,
        LoginResult::Overloaded,
        LoginResult::Error,
    ];

    pub fn of<T>(result: &Result<T, Error>) -> Self {
        match result {
            Ok(_) => LoginResult::Success,
            Err(Error::InvalidCredentials) => LoginResult::InvalidCredentials,
            Err(Error::AccountDisabled) => LoginResult::AccountDisabled,
            Err(Error::RateLimited { .. }) => LoginResult::RateLimited,
            Err(Error::Overloaded) => LoginResult::Overloaded,
            Err(_) => LoginResult::Error,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LoginResult::Success => "success",
            LoginResult::InvalidCredentials => "invalid_credentials",
            LoginResult::AccountDisabled => "account_disabled",
            LoginResult::RateLimited => "rate_limited",
            LoginResult::Overloaded => "overloaded",
            LoginResult::Error => "error",
        }
    }
}

/// How a refresh ended: `tollgate_refreshes_total{result}`. A reuse detection is
/// `refused` here too; `tollgate_refresh_reuse_detected_total` counts it apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshResult {
    /// A new pair, or the same successor again within the grace window.
    Rotated,
    /// 401: unknown, expired, revoked, malformed or replayed token.
    Refused,
    /// 429: too many refused from this IP.
    RateLimited,
    Error,
}

impl RefreshResult {
    pub const ALL: [RefreshResult; 4] =
        [RefreshResult::Rotated, RefreshResult::Refused, RefreshResult::RateLimited, RefreshResult::Error];

    pub fn of<T>(result: &Result<T, Error>) -> Self {
        match result {
            Ok(_) => RefreshResult::Rotated,
            Err(Error::InvalidRefreshToken) => RefreshResult::Refused,
            Err(Error::RateLimited { .. }) => RefreshResult::RateLimited,
            Err(_) => RefreshResult::Error,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RefreshResult::Rotated => "rotated",
            RefreshResult::Refused => "refused",
            RefreshResult::RateLimited => "rate_limited",
            RefreshResult::Error => "error",
        }
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let metrics = Self {
            http_requests: registered(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "tollgate_http_requests_total",
                        "Requests answered, by route template and status",
                    ),
                    &["route", "status"],
                ),
            ),
            http_duration: registered(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "tollgate_http_request_duration_seconds",
                        "Time to answer a request, by route template",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                    &["route"],
                ),
            ),
            logins: registered(
                &registry,
                IntCounterVec::new(
                    Opts::new("tollgate_logins_total", "Login attempts, by result"),
                    &["result"],
                ),
            ),
            signups: registered(
                &registry,
                IntCounter::new("tollgate_signups_total", "Accounts created by signup"),
            ),
            refreshes: registered(
                &registry,
                IntCounterVec::new(
                    Opts::new("tollgate_refreshes_total", "Refresh attempts, by result"),
                    &["result"],
                ),
            ),
            refresh_reuse_detected: registered(
                &registry,
                IntCounter::new(
                    "tollgate_refresh_reuse_detected_total",
                    "Rotated refresh tokens replayed after the grace window (the session was revoked)",
                ),
            ),
            rate_limited: registered(
                &registry,
                IntCounter::new("tollgate_rate_limited_total", "Requests answered 429"),
            ),
            argon2_queue_depth: registered(
                &registry,
                IntGauge::new("tollgate_argon2_queue_depth", "Password hashes waiting for a hashing thread"),
            ),
            db_connections_in_use: registered(
                &registry,
                IntGauge::new(
                    "tollgate_db_connections_in_use",
                    "Database connections checked out of the pool",
                ),
            ),
            mails: registered(
                &registry,
                IntCounterVec::new(
                    Opts::new("tollgate_mails_total", "Attempts to send a mail, by kind and result"),
                    &["kind", "result"],
                ),
            ),
            registry,
        };
        // Every result is shown from the start, at 0, so that a rate over it is defined
        // before the first event.
        for result in LoginResult::ALL {
            metrics.logins.with_label_values(&[result.as_str()]);
        }
        for result in RefreshResult::ALL {
            metrics.refreshes.with_label_values(&[result.as_str()]);
        }
        metrics
    }

    /// One answered request; `route` is its template or [`UNMATCHED_ROUTE`], `status` its
    /// three digits.
    pub fn request(&self, route: &str, status: &str, elapsed: Duration) {
        self.http_requests.with_label_values(&[route, status]).inc();
        self.http_duration.with_label_values(&[route]).observe(elapsed.as_secs_f64());
        if status == "429" {
            self.rate_limited.inc();
        }
    }

    pub fn login(&self, result: LoginResult) {
        self.logins.with_label_values(&[result.as_str()]).inc();
    }

    /// One attempt to send a mail of `kind` (a template's name).
    pub fn mail(&self, kind: &str, result: MailResult) {
        self.mails.with_label_values(&[kind, result.as_str()]).inc();
    }

    pub fn signup(&self) {
        self.signups.inc();
    }

    pub fn refresh(&self, result: RefreshResult) {
        self.refreshes.with_label_values(&[result.as_str()]).inc();
    }

    pub fn refresh_reuse_detected(&self) {
        self.refresh_reuse_detected.inc();
    }

    /// The text exposition format, with the gauges set to the values given (read at
    /// scrape time, so they are never stale).
    pub fn render(
        &self,
        argon2_queue_depth: usize,
        db_connections_in_use: u32,
    ) -> prometheus::Result<Vec<u8>> {
        self.argon2_queue_depth.set(i64::try_from(argon2_queue_depth).unwrap_or(i64::MAX));
        self.db_connections_in_use.set(i64::from(db_connections_in_use));
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        Ok(text)
    }
}

/// The metric, registered; the names are constants, so failing is a programming error
/// met at start-up, never by a request.
fn registered<M: Collector + Clone + 'static>(registry: &Registry, metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("a valid metric");
    registry.register(Box::new(metric.clone())).expect("each metric name registered once");
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

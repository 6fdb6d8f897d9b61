//! What every handler shares, built once at start-up (see `startup`).

use std::net::SocketAddr;
use std::sync::Arc;

use secrecy::SecretString;

use super::cookie::CookieMode;
use super::metrics::Metrics;
use super::routes::discovery::IssuerMetadata;
use crate::auth::keys::KeyStore;
use crate::auth::password::Passwords;
use crate::auth::rate_limit::{AbuseLimits, RateLimiter};
use crate::auth::refresh::RefreshSessions;
use crate::auth::tokens::AccessTokens;
use crate::auth::user_cache::UserCache;
use crate::clock::Clock;
use crate::config::{DemoUi, Proxies};
use crate::db::Pool;

pub struct AppState {
    pub pool: Pool,
    pub clock: Clock,
    pub tokens: AccessTokens,
    pub sessions: RefreshSessions,
    pub passwords: Passwords,
    pub users: UserCache,
    /// Signup, login and password-change attempts per client IP, failed logins per username.
    pub limits: AbuseLimits,
    /// Refresh tokens refused per client IP (refresh, logout), limited like logins. Kept
    /// per process even where the limits above are shared: it holds off junk floods,
    /// which no instance should pay a database write for, while guessing a refresh token
    /// is hopeless at any rate.
    pub refresh_failures: RateLimiter,
    /// The proxies whose forwarding header names the client IP, if any.
    pub proxies: Option<Proxies>,
    pub keys: Arc<KeyStore>,
    pub jwks_max_age_secs: u64,
    pub revocation_feed_token: Option<SecretString>,
    pub cookie_mode: CookieMode,
    pub issuer_metadata: IssuerMetadata,
    /// Whether, and from where, the demo page is served.
    pub demo_ui: Option<DemoUi>,
    /// The roles of every signup (`DEFAULT_ROLES`).
    pub default_roles: Vec<String>,
    pub metrics: Metrics,
    /// Where `/metrics` is served when not on the main listener (`METRICS_BIND_ADDR`).
    pub metrics_bind_addr: Option<SocketAddr>,
}
